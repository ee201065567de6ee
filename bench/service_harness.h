/* bench/service_harness.h: the real lpq-coordinator and lpq-worker processes for the service
** benchmarks (bench/service_*.c): started from the build's bin/ folder (next to bench/), driven
** by JSON-RPC on the Unix socket, through tests/proc_harness.h. Static functions only; a
** failure ends the benchmark. */
#ifndef LPQ_BENCH_SERVICE_HARNESS_H
#define LPQ_BENCH_SERVICE_HARNESS_H

/* The process helpers the tests share, compiled into each benchmark (a benchmark links only
** the libraries); first, as it defines _GNU_SOURCE. */
#include "tests/proc_harness.c"

#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define B_FN __attribute__((unused)) static

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

/* A temporary folder; the programs are those of the benchmark's build (BUILD/bench/NAME ->
** BUILD/bin). */
B_FN void b_init(proc_svc_t *s, const char *argv0) {
  proc_bin_dir_from_exe(argv0);
  if (proc_svc_init(s, "lpq-bench") != 0)
    b_die("mkdtemp /tmp/lpq-bench-* failed");
  s->log_level = "1";
  b_logs = s->dir;
}

B_FN void b_start_coordinator(proc_svc_t *s) {
  if (proc_svc_start_coordinator(s) != 0)
    b_die("the coordinator did not start (see %s)", s->log);
}

/* synthetic_ms NULL: the real evaluator. */
B_FN void b_start_worker(proc_svc_t *s, const char *synthetic_ms, const char *threads) {
  if (proc_svc_start_worker(s, synthetic_ms, threads) != 0)
    b_die("the worker did not start");
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

B_FN int b_connect(const proc_svc_t *s) {
  int fd = proc_unix_connect(s->sock);
  if (fd < 0)
    b_die("cannot connect to %s", s->sock);
  return fd;
}

/* One request line, one answer line on fd (no notifications are subscribed). buf holds
** cap bytes; returns the answer's length. */
B_FN size_t b_roundtrip(int fd, const char *line, size_t len, char *buf, size_t cap) {
  ssize_t n = proc_roundtrip(fd, line, len, buf, cap);
  if (n < 0)
    b_die("no answer from the server");
  return (size_t)n;
}

/* A call's result (a new reference), on a connection of its own; a JSON-RPC error ends the
** benchmark. */
B_FN json_t *b_call(const proc_svc_t *s, const char *method, json_t *params) {
  proc_rpc_t c;
  proc_rpc_init(&c, s->sock);
  json_t *res = proc_rpc_result(&c, method, params);
  proc_rpc_close(&c);
  if (!res)
    b_die("%s", c.error);
  return res;
}

/* Submits model and data files (paths relative to the working folder) with settings; the id. */
B_FN int64_t b_submit(const proc_svc_t *s, const char *model, const char *data, json_t *settings,
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

B_FN json_t *b_job(const proc_svc_t *s, int64_t id) {
  return b_call(s, "job.get", json_pack("{s:I}", "job", (json_int_t)id));
}

B_FN long long b_evaluations(const proc_svc_t *s, int64_t id, char *status, size_t len) {
  json_t *g = b_job(s, id);
  long long e = (long long)json_integer_value(json_object_get(g, "evaluations"));
  if (status)
    snprintf(status, len, "%s", json_string_value(json_object_get(g, "status")));
  json_decref(g);
  return e;
}

B_FN void b_cancel(const proc_svc_t *s, int64_t id) {
  json_decref(b_call(s, "job.cancel", json_pack("{s:I}", "job", (json_int_t)id)));
}

#endif
