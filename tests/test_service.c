/* tests/test_service.c: lpq as its users meet it: the real lpq-coordinator and lpq-worker
** processes on loopback, driven through lpqctl and raw JSON-RPC on the Unix socket. */
#include "tests/faults_harness.h"
#include "tests/proc_harness.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define HB "200" /* heartbeat ms: failures are noticed in 0.6 s */

static void start_coordinator(proc_svc_t *s) {
  cr_assert_eq(proc_svc_start_coordinator(s), 0, "the coordinator did not start (see %s)",
               s->log);
}

/* A service in /tmp/lpq-svc-*: the coordinator and nworkers workers (--synthetic when
** synthetic_ms is not NULL, else the real evaluator). */
static void start_service(proc_svc_t *s, int nworkers, const char *synthetic_ms) {
  cr_assert_eq(proc_svc_init(s, "lpq-svc"), 0, "mkdtemp /tmp/lpq-svc-*");
  s->heartbeat_ms = HB;
  start_coordinator(s);
  for (int i = 0; i < nworkers; i++)
    cr_assert_eq(proc_svc_start_worker(s, synthetic_ms, NULL), 0, "worker %d did not start", i);
}

/* lpqctl --json ARGS -> parsed JSON (the last JSON line of its output) */
static json_t *ctl(const proc_svc_t *s, const char *args) {
  return proc_lpqctl(NULL, s->sock, args);
}

static int64_t submit(const proc_svc_t *s, const char *settings) {
  int64_t id = proc_lpqctl_submit(NULL, s->sock, settings);
  cr_assert_gt(id, 0, "submit gave no job (see %s)", s->log);
  return id;
}

/* Waits until the job is done (asserted); its last front as "genome l_co l_cr;..." text. */
static char *front_when_done(const proc_svc_t *s, int64_t id, double timeout_s) {
  char *st = proc_lpqctl_wait(NULL, s->sock, id, timeout_s);
  cr_assert_str_eq(st, "done", "job %lld (see %s)", (long long)id, s->log);
  free(st);
  char *out = proc_lpqctl_front(NULL, s->sock, id);
  cr_assert_not_null(out, "empty front");
  return out;
}

#define SMALL_JOB "--set population=8 --set generations=3 --set calib=16 --seed 5"

Test(service, submit_to_finish_and_export, .disabled = 0) {
  proc_svc_t s;
  start_service(&s, 1, NULL);
  int64_t id = submit(&s, SMALL_JOB);
  free(front_when_done(&s, id, 60));
  char args[256];
  /* a new job without local_terms is scored with lpq search's default, written into its
  ** settings (a stored job without the field stays exact: tests/test_job_settings.c) */
  snprintf(args, sizeof args, "status %lld", (long long)id);
  json_t *st = ctl(&s, args);
  cr_assert_str_eq(json_string_value(json_object_get(json_object_get(st, "settings"),
                                                     "local_terms")), "projected",
                   "see %s", s.log);
  json_decref(st);
  snprintf(args, sizeof args, "export %lld --what config,onnx,packed,quantized --remote-dir %s", (long long)id, s.dir);
  json_t *r = ctl(&s, args);
  json_decref(r);
  const char *files[] = {"config.json", "model_lp.onnx", "weights.lpw", "model_q.onnx",
                         "model_q.encodings.json"};
  for (int i = 0; i < 5; i++) {
    char p[256];
    struct stat stt;
    snprintf(p, sizeof p, "%s/%s", s.dir, files[i]);
    cr_assert_eq(stat(p, &stt), 0, "%s missing", p);
    cr_assert_gt(stt.st_size, 16);
  }
  proc_svc_stop(&s);
}

Test(service, one_and_two_workers_give_the_same_front) {
  char *fronts[2];
  for (int w = 1; w <= 2; w++) {
    proc_svc_t s;
    start_service(&s, w, NULL);
    fronts[w - 1] = front_when_done(&s, submit(&s, SMALL_JOB), 60);
    proc_svc_stop(&s);
  }
  cr_assert_str_eq(fronts[0], fronts[1]);
  free(fronts[0]);
  free(fronts[1]);
}

/* ---- kill -9 at a stated state, then what must have happened ----------------------------
** The reference is the same synthetic job run undisturbed (tests/faults_harness.h); the
** state is read from the coordinator (job.get, worker.list, server.stats) and from the
** database with a connection of the test's own. */

/* Generations of job `job` committed to the database. */
static long long generations_committed(const proc_svc_t *s, int64_t job) {
  char sql[96];
  snprintf(sql, sizeof sql, "SELECT count(*) FROM generations WHERE job = %lld", (long long)job);
  return f_sql_int(s->db, sql);
}

static long long evaluations_stored(const proc_svc_t *s, int64_t job) {
  char sql[96];
  snprintf(sql, sizeof sql, "SELECT count(*) FROM evaluations WHERE job = %lld", (long long)job);
  return f_sql_int(s->db, sql);
}

/* worker.list's state of the worker with process id pid ("busy", "idle"; "" when absent). */
static void worker_state(proc_svc_t *s, pid_t pid, char *out, size_t size) {
  json_t *r = f_ok(s, "worker.list", NULL);
  json_t *arr = json_is_array(r) ? r : json_object_get(r, "workers");
  snprintf(out, size, "%s", "");
  for (size_t i = 0; i < json_array_size(arr); i++) {
    json_t *w = json_array_get(arr, i);
    if (json_integer_value(json_object_get(w, "pid")) == (json_int_t)pid)
      snprintf(out, size, "%s", json_string_value(json_object_get(w, "state")));
  }
  json_decref(r);
}

Test(service, a_worker_killed_with_a_task_in_flight_loses_nothing) {
  char *ref = f_reference_front(F_LONG_JOB, F_LONG_SEED);
  proc_svc_t s;
  f_init(&s);
  f_start_coordinator(&s);
  f_start_worker(&s, "40");
  f_start_worker(&s, "40");
  int64_t id = f_submit(&s, F_LONG_JOB, F_LONG_SEED);
  /* The state: generation 2 of 8 committed and a task in flight on the victim. The victim is
  ** stopped first, so that what worker.list says stays true until the kill (a stopped worker
  ** sends nothing; it is "busy" twice 100 ms apart only if it holds a task). */
  pid_t victim = s.workers[0];
  int held = 0;
  double t0 = proc_now_s();
  while (!held) {
    cr_assert_lt(proc_now_s() - t0, 60, "no generation 2 with the victim busy (see %s)", s.log);
    if (generations_committed(&s, id) < 2) {
      usleep(20000);
      continue;
    }
    kill(victim, SIGSTOP);
    char a[16], b[16];
    worker_state(&s, victim, a, sizeof a);
    usleep(100000);
    worker_state(&s, victim, b, sizeof b);
    held = strcmp(a, "busy") == 0 && strcmp(b, "busy") == 0;
    if (!held)
      kill(victim, SIGCONT), usleep(300000); /* its heartbeats catch up: not expired by us */
  }
  long long gens = generations_committed(&s, id);
  cr_assert_lt(gens, 8, "the job ended before the kill");
  long long retried0 = f_pool_stat(&s, "retried");
  proc_stop(&s.workers[0], SIGKILL, 10);
  char *st = f_wait_job(&s, id, 60);
  cr_assert_str_eq(st, "done", "(see %s)", s.log);
  free(st);
  /* the victim was expired and the task it held went to the other worker */
  cr_assert_geq(f_pool_stat(&s, "workers_expired"), 1, "the killed worker was not expired");
  cr_assert_gt(f_pool_stat(&s, "retried"), retried0, "the victim's task was not re-dispatched");
  cr_assert_eq(f_pool_stat(&s, "failed"), 0);
  char *f = f_front(&s, id);
  cr_assert_str_eq(f, ref);
  cr_log_info("killed at generation %lld of 8 with a task in flight; re-dispatched, same front",
              gens);
  free(f);
  free(ref);
  proc_svc_stop(&s);
}

Test(service, the_coordinator_killed_and_restarted_replays_to_the_same_front) {
  char *ref = f_reference_front(F_LONG_JOB, F_LONG_SEED);
  proc_svc_t s;
  f_init(&s);
  f_start_coordinator(&s);
  f_start_worker(&s, "30");
  f_start_worker(&s, "30");
  int64_t id = f_submit(&s, F_LONG_JOB, F_LONG_SEED);
  /* The state: generation 3 of 8 committed, tasks in flight. */
  double t0 = proc_now_s();
  while (generations_committed(&s, id) < 3 || f_pool_stat(&s, "tasks_running") < 1) {
    cr_assert_lt(proc_now_s() - t0, 60, "no generation 3 with tasks in flight (see %s)", s.log);
    usleep(20000);
  }
  proc_stop(&s.coord, SIGKILL, 10); /* kill -9 mid-job */
  proc_rpc_close(&s.api);
  /* what the dead coordinator left: the stored evaluations the restart must replay */
  long long gens = generations_committed(&s, id), stored = evaluations_stored(&s, id);
  cr_assert(gens >= 3 && gens < 8, "%lld generations committed at the kill", gens);
  cr_assert_gt(stored, 0);
  f_start_coordinator(&s); /* the same database: the job resumes */
  cr_assert(proc_wait_file_has(s.log, "resumes", 10), "no \"job %lld resumes\" in %s",
            (long long)id, s.log);
  char *st = f_wait_job(&s, id, 90);
  cr_assert_str_eq(st, "done", "(see %s)", s.log);
  free(st);
  /* Replayed: every evaluation stored before the kill came back from the database, none was
  ** dispatched again; the restarted coordinator dispatched only the rest. */
  long long total = evaluations_stored(&s, id), dispatched = f_pool_stat(&s, "submitted");
  cr_assert_eq(dispatched + stored, total,
               "%lld stored before the kill, %lld dispatched after it, %lld in all", stored,
               dispatched, total);
  char *f = f_front(&s, id);
  cr_assert_str_eq(f, ref);
  cr_log_info("killed at generation %lld of 8: %lld evaluations replayed, %lld dispatched, "
              "same front", gens, stored, dispatched);
  free(f);
  free(ref);
  proc_svc_stop(&s);
}

/* One raw line to the socket, one line back. */
static json_t *raw(const proc_svc_t *s, const char *line, size_t len) {
  int fd = proc_unix_connect(s->sock);
  cr_assert_geq(fd, 0, "connect %s", s->sock);
  static char buf[1 << 16];
  proc_roundtrip(fd, line, len, buf, sizeof buf);
  close(fd);
  return json_loads(buf, JSON_DISABLE_EOF_CHECK, NULL);
}

static long err_code(json_t *r) {
  return (long)json_integer_value(json_object_get(json_object_get(r, "error"), "code"));
}

Test(service, bad_requests_get_errors_and_the_daemon_keeps_serving) {
  proc_svc_t s;
  start_service(&s, 0, NULL);
  struct {
    const char *line;
    long code;
  } cases[] = {
      {"{not json\n", -32700},
      {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"job.fly\"}\n", -32601},
      {"{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"job.get\",\"params\":{\"job\":\"x\"}}\n", -32602},
      {"{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"job.get\",\"params\":{\"job\":999}}\n", -32010},
      {"{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"job.submit\",\"params\":{\"model\":{\"path\":\"/no/such.onnx\"},\"data\":{\"path\":\"/no/x.npy\"}}}\n", -32014},
      {"{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"job.submit\",\"params\":{\"model\":{\"hash\":\"0000000000000000000000000000000000000000000000000000000000000000\"},\"data\":{\"path\":\"/x\"}}}\n", -32011},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    json_t *r = raw(&s, cases[i].line, strlen(cases[i].line));
    cr_assert_not_null(r, "no answer to %s", cases[i].line);
    cr_assert_eq(err_code(r), cases[i].code, "%s -> %s", cases[i].line,
                 json_dumps(r, JSON_COMPACT));
    json_decref(r);
  }
  /* an unsupported model: a .npy file where the ONNX model should be */
  char line[1024];
  snprintf(line, sizeof line, "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"job.submit\",\"params\":"
           "{\"model\":{\"path\":\"%s\"},\"data\":{\"path\":\"%s\"}}}\n",
           proc_fixture("score_small_x.npy"), proc_fixture("score_small_x.npy"));
  json_t *r = raw(&s, line, strlen(line));
  long c = err_code(r);
  cr_assert(c == -32012 || c == -32015, "not-a-model gave %ld", c);
  json_decref(r);
  /* a huge message */
  size_t big = (size_t)70 << 20;
  char *huge = malloc(big + 2);
  memset(huge, 'a', big);
  huge[0] = '"';
  huge[big] = '\n';
  r = raw(&s, huge, big + 1);
  free(huge);
  cr_assert_eq(err_code(r), -32002);
  json_decref(r);
  /* still serving */
  r = ctl(&s, "list");
  cr_assert_not_null(r);
  json_decref(r);
  proc_svc_stop(&s);
}
