/* bench/generation_commit.c: what a complete generation of a large population costs the
** coordinator (issue 17): the search's next batch (lpq_search_ask), the generation applied
** (lpq_search_commit: archive, NSGA-II survival, ranks) and its rows made for the store
** (lpq_store_generation_rows: ranks again, genome JSON) run on libuv's work queue
** (coordinator/daemon/advance.c); the rows are then written on the loop, WRITE_ROWS a
** transaction (lpq_store_generation_write), one transaction at a time between the loop's other
** events: the 99th percentile of one is the target. The steps' total is about what the loop
** held at once before they moved (the rows were then one transaction). Synthetic results,
** ResNet-18's 21 layers, the job defaults otherwise (pareto, 2 siblings: a batch is 3 x the
** population); the generation after the first, the median of REPEATS runs.
** Usage: generation_commit [POPULATION ...]   (default 1000 10000 100000; TMPDIR: the disk) */
#include "bench/bench_verdict.h"
#include "coordinator/search/search.h"
#include "coordinator/store/store.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LAYERS 21
#define REPEATS 3
#define WRITE_ROWS 64 /* as advance.c */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int compare_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static void die(const char *what, const lpq_error_t *err) {
  fprintf(stderr, "generation_commit: %s: %s\n", what, err->msg);
  exit(1);
}

/* One run: generation 0, then generation 1 timed; seconds of ask, commit, rows, all writes and
** the 99th percentile of one write. */
static void run(const char *dir, size_t population, int repeat, double t[5]) {
  lpq_job_settings_t js;
  lpq_job_settings_default(&js);
  js.population = population;
  js.generations = 2;
  js.seed = (uint64_t)repeat + 1;
  int seeds[2 * LAYERS] = {0};
  lpq_layer_spec_t specs[LAYERS];
  lpq_search_space_t space;
  lpq_search_settings_t set;
  lpq_error_t err = {0};
  if (lpq_search_from_job(&js, LAYERS, seeds, seeds + LAYERS, specs, &space, &set, &err) != 0)
    die("settings", &err);
  char path[300];
  snprintf(path, sizeof path, "%s/run%zu-%d.db", dir, population, repeat);
  lpq_store_t *st = lpq_store_open(path, &err);
  int64_t job;
  if (st == NULL || lpq_store_job_insert(st, "bench", "{\"mode\": \"pareto\"}", &job, &err) != 0)
    die("store", &err);
  lpq_search_t *s = lpq_search_new(&space, &set, &err);
  if (s == NULL)
    die("search", &err);
  for (int g = 0; g < 2; g++) {
    const lpq_layer_formats_t *batch;
    size_t n;
    double t0 = now_s();
    if (lpq_search_ask(s, &batch, &n, &err) != 0)
      die("ask", &err);
    double t1 = now_s();
    for (size_t i = 0; i < n; i++) { /* a loss that falls with the widths, a bit of noise */
      const lpq_layer_formats_t *genome = batch + i * LAYERS;
      double l_co = 1e-6 * (double)(lpq_genome_hash(genome, LAYERS) % 1000);
      for (size_t l = 0; l < LAYERS; l++)
        l_co += pow(2.0, -genome[l].weight.n) + pow(2.0, -genome[l].act.n);
      double bits = lpq_genome_weight_bits(genome, LAYERS, NULL);
      lpq_eval_result_t r;
      lpq_search_result_from_fields(&js, genome, LAYERS, 0, l_co, bits / 32.0, bits, NAN, &r);
      if (lpq_search_tell(s, i, &r, &err) != 0)
        die("tell", &err);
    }
    double t2 = now_s();
    if (lpq_search_commit(s, &err) != 0)
      die("commit", &err);
    double t3 = now_s();
    lpq_store_generation_rows_t *rows = NULL;
    if (lpq_store_generation_rows(job, s, &rows, &err) != 0)
      die("rows", &err);
    double t4 = now_s();
    size_t writes = 0, cap = population / WRITE_ROWS + 2;
    double *lat = malloc(cap * sizeof *lat);
    if (lat == NULL)
      exit(1);
    for (int done = 0; !done && writes < cap;) {
      double tw = now_s();
      if (lpq_store_generation_write(st, rows, WRITE_ROWS, &done, &err) != 0)
        die("write", &err);
      lat[writes++] = now_s() - tw;
    }
    lpq_store_generation_rows_free(&rows);
    qsort(lat, writes, sizeof *lat, compare_double);
    double p99 = lat[writes * 99 / 100];
    free(lat);
    t[0] = t1 - t0;
    t[1] = t3 - t2;
    t[2] = t4 - t3;
    t[3] = now_s() - t4;
    t[4] = p99;
  }
  lpq_search_free(&s);
  lpq_store_close(&st);
}

int main(int argc, char **argv) {
  size_t defaults[] = {1000, 10000, 100000}, count = argc > 1 ? (size_t)argc - 1 : 3;
  const char *base = getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp";
  char dir[256], cmd[400];
  snprintf(dir, sizeof dir, "%s/lpq-bench-generation-XXXXXX", base);
  if (mkdtemp(dir) == NULL) {
    perror("generation_commit: mkdtemp");
    return 1;
  }
  double largest_hold = 0;
  size_t largest = 0;
  for (size_t k = 0; k < count; k++) {
    size_t population = argc > 1 ? (size_t)strtoull(argv[k + 1], NULL, 10) : defaults[k];
    if (population < 4) {
      fprintf(stderr, "usage: generation_commit [POPULATION ...] (each >= 4)\n");
      return 2;
    }
    double m[5][REPEATS], steps[REPEATS];
    for (int r = 0; r < REPEATS; r++) {
      double t[5];
      run(dir, population, r, t);
      for (int k = 0; k < 5; k++)
        m[k][r] = t[k];
      steps[r] = t[0] + t[1] + t[2] + t[3];
    }
    for (int k = 0; k < 5; k++)
      qsort(m[k], REPEATS, sizeof m[k][0], compare_double);
    qsort(steps, REPEATS, sizeof *steps, compare_double);
    printf("population %6zu (batch %6zu, %d layers), work queue: ask %7.1f ms commit %7.1f ms "
           "rows %7.1f ms; loop: writes %7.1f ms in all, each p99 %5.2f ms; all steps on the "
           "loop (before): %8.1f ms (medians of %d)\n", population, 3 * population, LAYERS,
           1e3 * m[0][REPEATS / 2], 1e3 * m[1][REPEATS / 2], 1e3 * m[2][REPEATS / 2],
           1e3 * m[3][REPEATS / 2], 1e3 * m[4][REPEATS / 2], 1e3 * steps[REPEATS / 2], REPEATS);
    fflush(stdout);
    if (population >= largest) {
      largest = population;
      largest_hold = m[4][REPEATS / 2];
    }
  }
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0)
    fprintf(stderr, "generation_commit: could not remove %s\n", dir);
  char target[128];
  snprintf(target, sizeof target, "the loop held at once by a generation (p99), population %zu",
           largest);
  bench_verdict("generation_commit", target, 1e3 * largest_hold, "<=", 10, "ms");
  return 0;
}
