/* bench/service_harness.h: the real lpq-coordinator and lpq-worker processes for the service
** benchmarks (bench/service_*.c): started from the build's bin/ folder (next to bench/), driven
** by JSON-RPC on the Unix socket. Static functions only; a failure ends the benchmark. */
#ifndef LPQ_BENCH_SERVICE_HARNESS_H
#define LPQ_BENCH_SERVICE_HARNESS_H

#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define B_FN __attribute__((unused)) static

typedef struct bsvc_t {
  char dir[64], db[128], sock[128], endpoint[64], bin[PATH_MAX];
  pid_t coord, workers[8];
  int nworkers;
} bsvc_t;

B_FN double b_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static const char *b_logs; /* the service's folder, kept when the benchmark fails */

B_FN void b_die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "bench: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  if (b_logs)
    fprintf(stderr, "bench: the logs are in %s\n", b_logs);
  exit(1);
}

B_FN pid_t b_spawn(char *const argv[], const char *log) {
  pid_t p = fork();
  if (p < 0)
    b_die("fork failed");
  if (p == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    FILE *f = freopen(log, "a", stderr);
    (void)f;
    execv(argv[0], argv);
    _exit(127);
  }
  return p;
}

/* A temporary folder and the programs' folder: BUILD/bench/NAME -> BUILD/bin. */
B_FN void b_init(bsvc_t *s, const char *argv0) {
  memset(s, 0, sizeof *s);
  signal(SIGPIPE, SIG_IGN);
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0)
    snprintf(self, sizeof self, "%s", argv0);
  else
    self[n] = 0;
  snprintf(s->bin, sizeof s->bin, "%s/../bin", dirname(self));
  snprintf(s->dir, sizeof s->dir, "/tmp/lpq-bench-XXXXXX");
  if (!mkdtemp(s->dir))
    b_die("mkdtemp failed");
  b_logs = s->dir;
  snprintf(s->db, sizeof s->db, "%s/lpq.db", s->dir);
  snprintf(s->sock, sizeof s->sock, "%s/lpq.sock", s->dir);
  srand((unsigned)getpid() ^ (unsigned)time(NULL));
  snprintf(s->endpoint, sizeof s->endpoint, "tcp://127.0.0.1:%d", 21000 + rand() % 20000);
}

B_FN int b_file_has(const char *path, const char *text) {
  FILE *f = fopen(path, "r");
  char line[4096];
  int found = 0;
  while (f && !found && fgets(line, sizeof line, f))
    found = strstr(line, text) != NULL;
  if (f)
    fclose(f);
  return found;
}

/* Starts the daemon and waits for its "ready" line; a random port another program holds makes
** it exit, and then another port is tried. */
B_FN void b_start_coordinator(bsvc_t *s) {
  char prog[PATH_MAX + 32], log[128];
  snprintf(prog, sizeof prog, "%s/lpq-coordinator", s->bin);
  snprintf(log, sizeof log, "%s/coordinator.log", s->dir);
  for (int attempt = 0; attempt < 5; attempt++) {
    char *argv[] = {prog, "--db", s->db, "--socket", s->sock, "--workers", s->endpoint,
                    "--log-level", "1", NULL};
    s->coord = b_spawn(argv, log);
    for (int i = 0; i < 1200; i++) {
      if (b_file_has(log, "lpq-coordinator: ready:"))
        return;
      if (waitpid(s->coord, NULL, WNOHANG) == s->coord)
        break;
      usleep(25000);
    }
    if (!b_file_has(log, "Address already in use"))
      break;
    snprintf(s->endpoint, sizeof s->endpoint, "tcp://127.0.0.1:%d", 21000 + rand() % 20000);
  }
  b_die("the coordinator did not start (see %s)", log);
}

/* synthetic_ms NULL: the real evaluator. */
B_FN void b_start_worker(bsvc_t *s, const char *synthetic_ms, const char *threads) {
  char prog[PATH_MAX + 32], log[128], cache[128], id[32];
  snprintf(prog, sizeof prog, "%s/lpq-worker", s->bin);
  snprintf(log, sizeof log, "%s/worker%d.log", s->dir, s->nworkers);
  snprintf(cache, sizeof cache, "%s/cache%d", s->dir, s->nworkers);
  snprintf(id, sizeof id, "w%d", s->nworkers);
  char *argv[16] = {prog, "--connect", s->endpoint, "--cache-dir", cache, "--id", id,
                    "--threads", (char *)threads};
  int k = 9;
  if (synthetic_ms) {
    argv[k++] = "--synthetic";
    argv[k++] = (char *)synthetic_ms;
  }
  argv[k] = NULL;
  s->workers[s->nworkers++] = b_spawn(argv, log);
}

B_FN void b_stop(bsvc_t *s) {
  for (int i = 0; i < s->nworkers; i++) {
    kill(s->workers[i], SIGKILL);
    waitpid(s->workers[i], NULL, 0);
  }
  s->nworkers = 0;
  if (s->coord > 0) {
    kill(s->coord, SIGTERM);
    waitpid(s->coord, NULL, 0);
    s->coord = 0;
  }
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", s->dir);
  if (system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", s->dir);
}

/* The machine's load average and core count, printed with the figures: on a shared machine
** they say how much of it the benchmark had. */
B_FN void b_print_load(const char *when) {
  FILE *f = fopen("/proc/loadavg", "r");
  double l1 = 0, l5 = 0;
  if (f) {
    if (fscanf(f, "%lf %lf", &l1, &l5) != 2)
      l1 = l5 = 0;
    fclose(f);
  }
  printf("  (%s: load average %.2f over 1 min, %.2f over 5, on %ld cores)\n", when, l1, l5,
         sysconf(_SC_NPROCESSORS_ONLN));
}

B_FN int b_connect(const bsvc_t *s) {
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  snprintf(a.sun_path, sizeof a.sun_path, "%.100s", s->sock);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
    b_die("cannot connect to %s", s->sock);
  return fd;
}

/* One request line, one answer line on fd (no notifications are subscribed). buf holds
** cap bytes; returns the answer's length. */
B_FN size_t b_roundtrip(int fd, const char *line, size_t len, char *buf, size_t cap) {
  size_t off = 0;
  while (off < len) {
    ssize_t w = write(fd, line + off, len - off);
    if (w <= 0)
      b_die("the server closed the connection");
    off += (size_t)w;
  }
  size_t n = 0;
  for (;;) {
    ssize_t r = read(fd, buf + n, cap - 1 - n);
    if (r <= 0)
      b_die("no answer from the server");
    n += (size_t)r;
    if (buf[n - 1] == '\n' || n == cap - 1)
      break;
  }
  buf[n] = 0;
  return n;
}

/* A call's result (a new reference); a JSON-RPC error ends the benchmark. */
B_FN json_t *b_call(const bsvc_t *s, const char *method, json_t *params) {
  json_t *req = json_pack("{s:s, s:s, s:i, s:o}", "jsonrpc", "2.0", "method", method, "id", 1,
                          "params", params ? params : json_object());
  char *line = json_dumps(req, JSON_COMPACT);
  json_decref(req);
  size_t n = strlen(line);
  line = realloc(line, n + 2);
  line[n++] = '\n';
  size_t cap = (size_t)64 << 20;
  char *buf = malloc(cap);
  int fd = b_connect(s);
  b_roundtrip(fd, line, n, buf, cap);
  close(fd);
  free(line);
  json_t *r = json_loads(buf, 0, NULL);
  free(buf);
  json_t *res = r ? json_object_get(r, "result") : NULL;
  if (!res)
    b_die("%s failed: %s", method, r ? json_dumps(r, JSON_COMPACT) : "no JSON");
  json_incref(res);
  json_decref(r);
  return res;
}

/* Submits model and data files (paths relative to the working folder) with settings; the id. */
B_FN int64_t b_submit(const bsvc_t *s, const char *model, const char *data, json_t *settings,
                      uint64_t seed) {
  char mp[PATH_MAX], dp[PATH_MAX];
  if (!realpath(model, mp) || !realpath(data, dp))
    b_die("%s or %s not found (run from the repository's top folder)", model, data);
  json_t *r = b_call(s, "job.submit",
                     json_pack("{s:{s:s}, s:{s:s}, s:o, s:I}", "model", "path", mp, "data",
                               "path", dp, "settings", settings, "seed", (json_int_t)seed));
  int64_t id = (int64_t)json_integer_value(json_object_get(r, "job"));
  json_decref(r);
  return id;
}

B_FN json_t *b_job(const bsvc_t *s, int64_t id) {
  return b_call(s, "job.get", json_pack("{s:I}", "job", (json_int_t)id));
}

B_FN long long b_evaluations(const bsvc_t *s, int64_t id, char *status, size_t len) {
  json_t *g = b_job(s, id);
  long long e = (long long)json_integer_value(json_object_get(g, "evaluations"));
  if (status)
    snprintf(status, len, "%s", json_string_value(json_object_get(g, "status")));
  json_decref(g);
  return e;
}

B_FN void b_cancel(const bsvc_t *s, int64_t id) {
  json_decref(b_call(s, "job.cancel", json_pack("{s:I}", "job", (json_int_t)id)));
}

#endif
