/* coordinator/search_eval.c: the in-process evaluator: a batch is shared by `threads` pthreads
** that take the next unscored genome in turn. Results land at their genome's index, so the
** search sees the same batch whatever the thread count or the order of completion. */
#include "coordinator/coordinator.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct lpq_thread_evaluator_t {
  size_t threads;
  lpq_score_fn score;
  void *ctx;
};

typedef struct batch_job_t {
  const lpq_thread_evaluator_t *e;
  const lpq_layer_formats_t *genomes;
  size_t layer_count, count;
  lpq_eval_result_t *results;
  atomic_size_t next;
} batch_job_t;

static void *worker_main(void *arg) {
  batch_job_t *job = arg;
  for (;;) {
    size_t i = atomic_fetch_add(&job->next, 1);
    if (i >= job->count)
      break;
    lpq_eval_result_t *r = &job->results[i];
    memset(r, 0, sizeof *r);
    int rc = job->e->score(job->e->ctx, job->genomes + i * job->layer_count, job->layer_count,
                           r);
    if (rc)
      r->status = rc < 0 ? rc : LPQ_EINVAL;
  }
  return NULL;
}

static int evaluate_batch(void *self, const lpq_layer_formats_t *genomes, size_t layer_count,
                          size_t count, lpq_eval_result_t *results, lpq_error_t *err) {
  lpq_thread_evaluator_t *e = self;
  batch_job_t job = {e, genomes, layer_count, count, results, 0};
  size_t threads = e->threads < count ? e->threads : count;
  if (threads <= 1) {
    worker_main(&job);
    return 0;
  }
  pthread_t *tids = malloc(threads * sizeof *tids);
  if (!tids)
    return lpq_errorf(err, LPQ_ENOMEM, "evaluator: out of memory for %zu threads", threads);
  size_t started = 0;
  for (; started < threads; started++)
    if (pthread_create(&tids[started], NULL, worker_main, &job) != 0)
      break;
  /* If some threads could not start, the calling thread and the started ones finish the batch. */
  worker_main(&job);
  for (size_t t = 0; t < started; t++)
    pthread_join(tids[t], NULL);
  free(tids);
  return 0;
}

lpq_thread_evaluator_t *lpq_thread_evaluator_new(size_t threads, lpq_score_fn score, void *ctx,
                                                 lpq_error_t *err) {
  if (!score || threads == 0 || threads > 1024) {
    lpq_errorf(err, LPQ_EINVAL, "evaluator: %zu threads (1..1024) and a score function",
               threads);
    return NULL;
  }
  lpq_thread_evaluator_t *e = malloc(sizeof *e);
  if (!e) {
    lpq_errorf(err, LPQ_ENOMEM, "evaluator: out of memory");
    return NULL;
  }
  e->threads = threads;
  e->score = score;
  e->ctx = ctx;
  return e;
}

void lpq_thread_evaluator_free(lpq_thread_evaluator_t **e) {
  if (!e || !*e)
    return;
  free(*e);
  *e = NULL;
}

lpq_evaluator_t lpq_thread_evaluator_iface(lpq_thread_evaluator_t *e) {
  lpq_evaluator_t it = {evaluate_batch, e};
  return it;
}
