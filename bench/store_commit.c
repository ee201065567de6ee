/* bench/store_commit.c: how fast the coordinator's store commits evaluation results (issue 7's
** bar: >= 20,000 evaluations/s) and answers the replay's lookups by (job, genome).
** Batches of 100 rows (one transaction each) into a fresh database in WAL mode with
** synchronous=NORMAL, as lpq-coordinator runs it; also with a 1 kB genome JSON per row (the
** optional column), and single-row transactions, the naive peer. Prints evaluations/s and the
** batch latency (p50, p99, max: how long the libuv loop is held).
** Usage: store_commit [ROWS]   (default 200000; TMPDIR chooses the disk) */
#include "bench/bench_verdict.h"
#include "coordinator/store/store.h"

#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int compare_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static uint64_t mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  return x;
}

/* Commits rows evaluations of a new job in batches of batch; returns evaluations/s. */
static double run(const char *path, size_t rows, size_t batch, const char *genome_json,
                  const char *label) {
  lpq_error_t err = {0};
  lpq_store_t *st = lpq_store_open(path, &err);
  if (st == NULL) {
    fprintf(stderr, "store_commit: %s\n", err.msg);
    exit(1);
  }
  int64_t job;
  if (lpq_store_job_insert(st, label, "{\"mode\": \"pareto\"}", &job, &err) != 0 ||
      lpq_store_worker_upsert(st, "bench-worker", "localhost", getpid(), "ready", &err) != 0) {
    fprintf(stderr, "store_commit: %s\n", err.msg);
    exit(1);
  }
  lpq_store_eval_t *ev = calloc(batch, sizeof *ev);
  size_t batches = (rows + batch - 1) / batch;
  double *lat = calloc(batches, sizeof *lat);
  if (ev == NULL || lat == NULL)
    exit(1);
  double t0 = now_s();
  size_t done = 0;
  for (size_t b = 0; b < batches; b++) {
    size_t n = rows - done < batch ? rows - done : batch;
    for (size_t i = 0; i < n; i++) {
      lpq_store_eval_t *e = &ev[i];
      memset(e, 0, sizeof *e);
      e->job = job;
      e->genome_hash = mix(((uint64_t)job << 40) + done + i);
      e->l_co = 1.0 / (double)(done + i + 1);
      e->l_co_global = e->l_co * 0.5;
      e->l_co_local = e->l_co * 0.5;
      e->l_cr = 0.2;
      e->mean_weight_bits = 4.25;
      e->mean_act_bits = 6.0;
      e->top1 = 0.69;
      e->latency_s = 1.5e-3;
      e->energy_pj = 3e6;
      e->edp_js = 4.5e-12;
      e->eval_ms = 80;
      memcpy(e->worker, "bench-worker", sizeof "bench-worker");
      e->genome_json = genome_json;
    }
    double tb = now_s();
    if (lpq_store_eval_commit(st, ev, n, NULL, &err) != 0) {
      fprintf(stderr, "store_commit: %s\n", err.msg);
      exit(1);
    }
    lat[b] = now_s() - tb;
    done += n;
  }
  double seconds = now_s() - t0, rate = (double)rows / seconds;
  qsort(lat, batches, sizeof *lat, compare_double);
  printf("%-34s %8zu rows  %7.3f s  %9.0f evaluations/s  batch p50 %.3f ms p99 %.3f ms "
         "max %.3f ms\n",
         label, rows, seconds, rate, 1e3 * lat[batches / 2], 1e3 * lat[batches * 99 / 100],
         1e3 * lat[batches - 1]);

  /* The replay: look every stored genome up once, in another order. */
  if (genome_json == NULL && batch > 1) {
    lpq_store_eval_t got;
    double tl = now_s();
    for (size_t i = 0; i < rows; i++) {
      size_t k = (i * 7919) % rows;
      if (lpq_store_eval_get(st, job, mix(((uint64_t)job << 40) + k), &got, &err) != 0) {
        fprintf(stderr, "store_commit: lookup %zu: %s\n", k, err.msg);
        exit(1);
      }
    }
    double ls = now_s() - tl;
    printf("%-34s %8zu rows  %7.3f s  %9.0f lookups/s\n", "replay lookups (job, genome)", rows,
           ls, (double)rows / ls);
  }
  free(ev);
  free(lat);
  lpq_store_close(&st);
  return rate;
}

int main(int argc, char **argv) {
  size_t rows = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) : 200000;
  if (rows == 0) {
    fprintf(stderr, "usage: store_commit [ROWS]\n");
    return 2;
  }
  const char *base = getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp";
  char dir[256], path[300], cmd[400];
  snprintf(dir, sizeof dir, "%s/lpq-bench-store-XXXXXX", base);
  if (mkdtemp(dir) == NULL) {
    perror("store_commit: mkdtemp");
    return 1;
  }
  snprintf(path, sizeof path, "%s/lpq.db", dir);
  char *json = malloc(1100);
  if (json == NULL)
    return 1;
  /* About 1 kB: 21 layers of weight and activation formats, as for ResNet-18. */
  size_t len = (size_t)snprintf(json, 1100, "[");
  for (int l = 0; l < 21; l++)
    len += (size_t)snprintf(json + len, 1100 - len, "%s{\"w\":\"lp<4,1,3,2>\",\"a\":\"lp<8,2,7,0>\"}",
                            l ? "," : "");
  snprintf(json + len, 1100 - len, "]");

  printf("store_commit: %s (SQLite %s, WAL, synchronous=NORMAL)\n", path, sqlite3_libversion());
  double batched = run(path, rows, 100, NULL, "batches of 100");
  run(path, rows, 100, json, "batches of 100, 1 kB genome JSON");
  run(path, rows / 20, 1, NULL, "one row per transaction (peer)");
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0)
    fprintf(stderr, "store_commit: could not remove %s\n", dir);
  free(json);
  bench_verdict("store_commit", "evaluations committed per second (batches of 100)", batched,
                ">=", 20000, "/s");
  return 0;
}
