/* tests/proc_harness.h: lpq's programs as real processes, for the suites and benchmarks that
** drive them (tests/test_service.c, tests/test_faults*.c through tests/faults_harness.h,
** tests/test_multihost.c, bench/service_*.c through bench/service_harness.h): the programs'
** folder, spawning (optionally inside a network namespace), one lpq-coordinator and its
** lpq-workers in a temporary folder, stopping with a timeout, JSON-RPC on the Unix socket and
** lpqctl --json.
**
** No test framework here (the benchmarks have none): a function that can fail returns 0 or -1
** (a NULL pointer), and the caller asserts or dies with the reason it was handed. Processes
** spawned here die with the process that spawned them (PR_SET_PDEATHSIG). The suites link
** tests/proc_harness.c (the Makefile links every tests/ file that is not a suite into each); the
** benchmarks include it (bench/service_harness.h). */
#ifndef LPQ_TESTS_PROC_HARNESS_H
#define LPQ_TESTS_PROC_HARNESS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Seconds on the monotonic clock. */
double proc_now_s(void);

/* The path of program `name` (lpq-coordinator, lpq-worker, lpqctl) in the programs' folder:
** $LPQ_BUILD/bin, else build/bin, unless proc_bin_dir_from_exe set another. The string lives
** until four more calls. */
const char *proc_bin(const char *name);
/* For a program in BUILD/SUB/ (a benchmark in BUILD/bench/): the programs' folder becomes
** BUILD/bin. */
void proc_bin_dir_from_exe(const char *argv0);

/* fork and exec argv[0] with stderr appended to log, inside the network namespace netns
** (/run/netns/NAME) when not NULL; the child dies with this process. The child's id, or -1 when
** fork failed. A child that cannot enter netns exits 125, open the log 126, exec 127. */
pid_t proc_spawn(char *const argv[], const char *log, const char *netns);

/* Sends sig to *pid (and SIGCONT, so a stopped process gets it), waits up to timeout_s, then
** SIGKILLs; *pid becomes 0. The exit status, or -1 when the process died of a signal or was
** killed for the timeout; 0 when *pid was not a process. */
int proc_stop(pid_t *pid, int sig, double timeout_s);

/* 1 when a line of the file at path contains text (0 when it cannot be read). */
int proc_file_has(const char *path, const char *text);
/* Polls proc_file_has for up to timeout_s: a line the program writes after a state the caller
** waited for (the coordinator logs "job N resumes" just after its "ready" line). */
int proc_wait_file_has(const char *path, const char *text, double timeout_s);

/* Waits up to timeout_s for lpq-coordinator's "ready" line in log, after its first `from`
** bytes; endpoint (when not NULL) gets the workers' endpoint it names. 0, or -1 when the process
** pid exited first (it is then reaped) or the time ran out. */
int proc_wait_ready(const char *log, long from, pid_t pid, double timeout_s, char *endpoint,
                    size_t endpoint_size);

/* A JSON-RPC client connection on a Unix socket, opened on the first call. */
typedef struct proc_rpc_t {
  char sock[128];
  int fd; /* -1: not connected */
  char *buf; /* received bytes not yet framed */
  size_t len, cap;
  long next_id;
  char error[512]; /* why the last call failed */
} proc_rpc_t;

void proc_rpc_init(proc_rpc_t *c, const char *sock);
/* Closes the connection and frees its buffer; the next call connects again. */
void proc_rpc_close(proc_rpc_t *c);
/* Calls method with params (stolen; NULL: none) and returns the whole reply object (result or
** error; the caller owns it), skipping notifications; NULL with c->error on a broken
** connection or a reply that is not JSON. */
json_t *proc_rpc_call(proc_rpc_t *c, const char *method, json_t *params);
/* As proc_rpc_call, but the reply's result (a new reference); NULL with c->error
** ("METHOD failed: REPLY") also when the reply is an error. */
json_t *proc_rpc_result(proc_rpc_t *c, const char *method, json_t *params);

/* Writes len bytes of line on fd (stopping early when the server closes: its answer may still
** be there), then reads until a newline or cap - 1 bytes; buf is NUL-terminated. The answer's
** length, or -1 when nothing came. */
ssize_t proc_roundtrip(int fd, const char *line, size_t len, char *buf, size_t cap);
/* A connected stream socket on the Unix socket at path, or -1. */
int proc_unix_connect(const char *path);

/* One lpq-coordinator and its lpq-workers, their database, socket and logs in a temporary
** folder. The workers' endpoint is tcp://127.0.0.1:* until the first start reads the port the
** daemon chose from its "ready" line; a restart keeps it (the workers know it). */
typedef struct proc_svc_t {
  char dir[64];      /* the temporary folder; removed by proc_svc_stop */
  char db[160], sock[128], endpoint[64];
  char log[128];     /* the coordinator's log of its current start (earlier ones: log.N) */
  const char *heartbeat_ms; /* --heartbeat-ms of both programs; NULL: their default */
  const char *log_level;    /* the coordinator's --log-level */
  const char *extra[8];     /* more coordinator options, NULL-terminated (e.g. --tcp H:P) */
  pid_t coord, workers[8];
  int nworkers, starts;
  proc_rpc_t api;    /* a connection to the API, held between calls */
} proc_svc_t;

/* A fresh temporary folder /tmp/PREFIX-XXXXXX and the paths in it (log level 2, default
** heartbeat); SIGPIPE is ignored from now on (the server may close a connection being written
** to). 0, or -1 when the folder cannot be made. */
int proc_svc_init(proc_svc_t *s, const char *prefix);
/* Starts lpq-coordinator and waits for its "ready" line; a restart whose port is still taken
** is tried again. 0, or -1 (the log, s->log, says why). */
int proc_svc_start_coordinator(proc_svc_t *s);
/* Starts an lpq-worker (id wN, cache in the folder) with --threads when threads is not NULL and
** --synthetic when synthetic_ms is not NULL. 0, or -1 when there is no room or fork failed. */
int proc_svc_start_worker(proc_svc_t *s, const char *synthetic_ms, const char *threads);
/* Closes the held connection and SIGTERMs the coordinator: its exit status, -1 when it died of
** a signal or did not end within timeout_s (then it is killed). */
int proc_svc_stop_coordinator(proc_svc_t *s, double timeout_s);
/* Kills the workers, stops the coordinator (10 s) and removes the folder, unless
** $LPQ_KEEP_LOGS is set (then its path is printed). */
void proc_svc_stop(proc_svc_t *s);

/* 1 when a job's status is final: done, failed or canceled. */
int proc_job_final(const char *status);
/* The absolute path of a file in tests/fixtures/ (run from the repository's top folder); the
** string lives until four more calls. */
const char *proc_fixture(const char *name);
/* The individuals of a job.pareto result as "genome l_co l_cr;..." text, for comparing fronts
** (the caller frees it); NULL when there are none. */
char *proc_front_text(const json_t *pareto);

/* lpqctl --socket SOCK --json ARGS (in network namespace netns when not NULL): its answer, the
** JSON document it printed or the last of its JSON lines; NULL when there is none. */
json_t *proc_lpqctl(const char *netns, const char *sock, const char *args);
/* lpqctl submit of the fixture model score_small.onnx and its data with --detach and options;
** the job's id, or -1. */
int64_t proc_lpqctl_submit(const char *netns, const char *sock, const char *options);
/* Polls lpqctl status every 0.1 s until the job ends; its final status, or "timeout" (the
** caller frees it). */
char *proc_lpqctl_wait(const char *netns, const char *sock, int64_t job, double timeout_s);
/* The job's last front through lpqctl pareto, as proc_front_text; NULL when there is none. */
char *proc_lpqctl_front(const char *netns, const char *sock, int64_t job);

#endif
