/* tests/test_store_worker_counts.c: a batch of results from many workers adds to each worker's
** evaluations_done exactly its new rows (the store updates each worker once per batch). */
#include "coordinator/store/store.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static lpq_store_eval_t row(int64_t job, uint64_t hash, const char *worker) {
  lpq_store_eval_t e;
  memset(&e, 0, sizeof e);
  e.job = job;
  e.genome_hash = hash;
  snprintf(e.worker, sizeof e.worker, "%s", worker);
  e.l_co = (double)hash;
  e.top1 = e.edp_js = NAN;
  return e;
}

Test(store_worker_counts, each_worker_counts_its_new_rows) {
  char dir[] = "/tmp/lpq-counts-XXXXXX", path[64], cmd[96];
  cr_assert_not_null(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/lpq.db", dir);
  lpq_error_t err = {0};
  lpq_store_t *st = lpq_store_open(path, &err);
  cr_assert_not_null(st, "%s", err.msg);
  int64_t job;
  cr_assert_eq(lpq_store_job_insert(st, "j", "{}", &job, &err), 0, "%s", err.msg);
  const char *names[] = {"w0", "w1", "w2", "w3", "w4", "w5", "w6"};
  for (size_t w = 0; w < 7; w++)
    cr_assert_eq(lpq_store_worker_upsert(st, names[w], "h", 1, "ready", &err), 0);
  /* 3 batches; row i comes from worker (i * i) % 7, every 5th row has no worker, and the
  ** second batch repeats 10 rows of the first (skipped, so not counted) */
  size_t expect[7] = {0};
  lpq_store_eval_t batch[100];
  for (int b = 0; b < 3; b++) {
    size_t n = 0;
    for (uint64_t i = 0; i < 100; i++) {
      uint64_t hash = b == 1 && i < 10 ? i : 1000 * (uint64_t)b + i;
      int fresh = !(b == 1 && i < 10);
      const char *w = i % 5 == 4 ? "" : names[(i * i) % 7];
      batch[n++] = row(job, hash, w);
      if (fresh && w[0])
        expect[(i * i) % 7]++;
    }
    size_t inserted = 0;
    cr_assert_eq(lpq_store_eval_commit(st, batch, n, &inserted, &err), 0, "%s", err.msg);
    cr_assert_eq(inserted, b == 1 ? 90 : 100);
  }
  lpq_store_worker_t *ws = NULL;
  size_t count = 0;
  cr_assert_eq(lpq_store_worker_list(st, &ws, &count, &err), 0);
  cr_assert_eq(count, 7);
  for (size_t k = 0; k < count; k++) {
    int w = ws[k].id[1] - '0';
    cr_assert_eq(ws[k].evaluations_done, expect[w], "%s: %zu, not %zu", ws[k].id,
                 ws[k].evaluations_done, expect[w]);
  }
  free(ws);
  lpq_store_close(&st);
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  cr_assert_eq(system(cmd), 0);
}
