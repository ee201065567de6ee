/* tests/test_pool_harness.h: a dispatcher on a libuv loop in the test process, and real
** lpq-worker processes (fork/exec of the built binary next to this test's build directory).
** Static functions only: included by tests/test_pool*.c. */
#ifndef LPQ_TEST_POOL_HARNESS_H
#define LPQ_TEST_POOL_HARNESS_H

#include "coordinator/dispatch/dispatch.h"
#include "worker/worker.h"

#include <criterion/criterion.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

/* Each suite uses only some of these. */
#define H_FN __attribute__((unused)) static

#define H_MAX_TASKS 4096
#define H_MAX_WORKERS 8

typedef struct harness_t {
  uv_loop_t loop;
  uv_timer_t wake; /* keeps uv_run(ONCE) returning often */
  lpq_dispatch_t *d;
  char dir[PATH_MAX];  /* temp dir: blobs, caches */
  size_t results, ok, failed;
  unsigned got[H_MAX_TASKS];       /* results per task id */
  lpq_result_t res[H_MAX_TASKS];
  lpq_dispatch_task_t info[H_MAX_TASKS];
  uint64_t order[H_MAX_TASKS];     /* task ids in result order */
  int joined, left, expired;
  double expired_at;
  size_t dropped_logs;
  pid_t pids[H_MAX_WORKERS];
  int nworkers;
  const char *worker_stderr; /* when set, the next workers' stderr goes to this file */
  const char *connect;       /* when set, workers connect here instead of the dispatcher */
} harness_t;

H_FN double h_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

H_FN void h_on_result(void *ctx, const lpq_dispatch_task_t *t, const lpq_result_t *r) {
  harness_t *h = ctx;
  cr_assert_lt(t->task_id, H_MAX_TASKS);
  h->order[h->results++] = t->task_id;
  h->got[t->task_id]++;
  h->res[t->task_id] = *r;
  h->info[t->task_id] = *t;
  if (r->status == 0)
    h->ok++;
  else
    h->failed++;
}

H_FN void h_on_worker(void *ctx, lpq_worker_event_t ev, const lpq_worker_info_t *w) {
  harness_t *h = ctx;
  (void)w;
  if (ev == LPQ_WORKER_JOINED)
    h->joined++;
  else if (ev == LPQ_WORKER_LEFT)
    h->left++;
  else {
    h->expired++;
    h->expired_at = h_now();
  }
}

H_FN void h_on_log(void *ctx, int level, const char *line) {
  harness_t *h = ctx;
  if (strstr(line, "dropped") != NULL)
    h->dropped_logs++;
  if (level <= 1)
    fprintf(stderr, "%s\n", line);
}

/* Blobs live in h->dir/blobs/HASH. */
H_FN int h_blob_path(void *ctx, const char *hash, char *path, size_t len) {
  harness_t *h = ctx;
  snprintf(path, len, "%s/blobs/%s", h->dir, hash);
  return access(path, R_OK) == 0 ? 0 : LPQ_ENOTFOUND;
}

H_FN void h_wake(uv_timer_t *t) { (void)t; }

H_FN void h_start(harness_t *h, const lpq_dispatch_opts_t *opts) {
  memset(h, 0, sizeof *h);
  snprintf(h->dir, sizeof h->dir, "/tmp/lpq_pool_XXXXXX");
  cr_assert_not_null(mkdtemp(h->dir));
  char blobs[PATH_MAX + 8];
  snprintf(blobs, sizeof blobs, "%s/blobs", h->dir);
  mkdir(blobs, 0755);
  cr_assert_eq(uv_loop_init(&h->loop), 0);
  uv_timer_init(&h->loop, &h->wake);
  uv_timer_start(&h->wake, h_wake, 10, 10);
  lpq_dispatch_callbacks_t cb = {h_on_result, h_on_worker, h_blob_path, h_on_log, h};
  lpq_error_t err;
  h->d = lpq_dispatch_new(&h->loop, "tcp://127.0.0.1:*", opts, &cb, &err);
  cr_assert_not_null(h->d, "%s", err.msg);
}

/* Runs the loop until cond(h) holds or `seconds` pass; returns cond's last value. */
H_FN int h_run_until(harness_t *h, int (*cond)(harness_t *h), double seconds) {
  double end = h_now() + seconds;
  while (!cond(h) && h_now() < end)
    uv_run(&h->loop, UV_RUN_ONCE);
  return cond(h);
}

H_FN void h_run_for(harness_t *h, double seconds) {
  double end = h_now() + seconds;
  while (h_now() < end)
    uv_run(&h->loop, UV_RUN_ONCE);
}

/* The lpq-worker binary: ../bin/lpq-worker from this test's directory (build or build-asan). */
H_FN void h_worker_path(char *out, size_t len) {
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  cr_assert(n > 0);
  exe[n] = '\0';
  char *dir = dirname(dirname(exe));
  snprintf(out, len, "%s/bin/lpq-worker", dir);
  cr_assert_eq(access(out, X_OK), 0, "%s is not built", out);
}

/* Starts an lpq-worker; extra: NULL-terminated further arguments. Returns its index. */
H_FN int h_spawn(harness_t *h, const char *id, int threads, int synthetic_ms,
                   const char *const *extra) {
  char path[PATH_MAX], th[16], ms[16], cache[PATH_MAX + 16];
  h_worker_path(path, sizeof path);
  snprintf(th, sizeof th, "%d", threads);
  snprintf(ms, sizeof ms, "%d", synthetic_ms);
  snprintf(cache, sizeof cache, "%s/cache-%s", h->dir, id);
  const char *ep = h->connect ? h->connect : lpq_dispatch_endpoint(h->d);
  const char *argv[32] = {path, "--connect", ep, "--threads", th,
                          "--synthetic", ms, "--id", id, "--cache-dir", cache,
                          "--log-level", "1"};
  int argc = 13;
  for (int i = 0; extra && extra[i] && argc < 31; i++)
    argv[argc++] = extra[i];
  argv[argc] = NULL;
  pid_t pid = fork();
  cr_assert(pid >= 0);
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed assertion ends the test: the workers too */
    if (h->worker_stderr != NULL)
      if (freopen(h->worker_stderr, "w", stderr) == NULL)
        _exit(126);
    execv(path, (char *const *)argv);
    _exit(127);
  }
  cr_assert_lt(h->nworkers, H_MAX_WORKERS);
  h->pids[h->nworkers] = pid;
  return h->nworkers++;
}

/* Waits for a worker process to exit; its exit status, or -1 on a timeout / signal. */
H_FN int h_wait_exit(harness_t *h, int i, double seconds) {
  double end = h_now() + seconds;
  while (h_now() < end) {
    int status;
    pid_t r = waitpid(h->pids[i], &status, WNOHANG);
    if (r == h->pids[i]) {
      h->pids[i] = 0;
      return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    uv_run(&h->loop, UV_RUN_ONCE); /* keep serving: BYE and last results */
  }
  return -1;
}

H_FN int h_cond_joined_all(harness_t *h) { return h->joined >= h->nworkers; }

H_FN void h_stop(harness_t *h) {
  for (int i = 0; i < h->nworkers; i++)
    if (h->pids[i] > 0) {
      kill(h->pids[i], SIGCONT);
      kill(h->pids[i], SIGKILL);
      waitpid(h->pids[i], NULL, 0);
      h->pids[i] = 0;
    }
  lpq_dispatch_free(&h->d);
  cr_assert_null(h->d);
  uv_close((uv_handle_t *)&h->wake, NULL);
  uv_run(&h->loop, UV_RUN_DEFAULT);
  cr_assert_eq(uv_loop_close(&h->loop), 0);
  char cmd[PATH_MAX + 16];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", h->dir);
  cr_assert_eq(system(cmd), 0);
}

/* A task of `layers` layers whose genome depends on seed (so results are checkable). */
H_FN lpq_task_t h_task(int64_t job, unsigned seed, lpq_layer_formats_t *layers, size_t count) {
  for (size_t i = 0; i < count; i++) {
    int n = 2 + (int)((seed + i) % 7);
    layers[i].weight = (lp_format_t){n, (int)(seed % 3), n - 1, (int)(seed % 5) - 2};
    layers[i].act = (seed + i) % 4 == 0 ? (lp_format_t){0, 0, 0, 0}
                                        : (lp_format_t){8, 1, 7, 0};
  }
  lpq_task_t t = {.job_id = job, .layer_count = count, .layers = layers,
                  .settings_json = "{\"objective\":\"bits\"}"};
  return t;
}

/* Submits a task and returns its id. */
H_FN uint64_t h_submit(harness_t *h, const lpq_task_t *t) {
  uint64_t id;
  lpq_error_t err;
  cr_assert_eq(lpq_dispatch_submit(h->d, t, NULL, &id, &err), 0, "%s", err.msg);
  cr_assert_lt(id, H_MAX_TASKS);
  return id;
}

#endif
