/* coordinator/search/eval.c: the in-process evaluator: a batch is shared by the caller and
** threads - 1 pthreads that take the next unscored genome in turn. Results land at their
** genome's index, so the search sees the same batch whatever the thread count or the order of
** completion. */
#include "coordinator/search/search.h"

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

typedef struct worker_arg_t {
  batch_job_t *job;
  size_t thread;
} worker_arg_t;

static void *worker_main(void *arg) {
  worker_arg_t *w = arg;
  batch_job_t *job = w->job;
  for (;;) {
    size_t i = atomic_fetch_add(&job->next, 1);
    if (i >= job->count)
      break;
    lpq_eval_result_t *r = &job->results[i];
    memset(r, 0, sizeof *r);
    int rc = job->e->score(job->e->ctx, w->thread, job->genomes + i * job->layer_count,
                           job->layer_count, r);
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
  worker_arg_t *args = malloc((threads ? threads : 1) * sizeof *args);
  pthread_t *tids = malloc((threads ? threads : 1) * sizeof *tids);
  if (!args || !tids) {
    free(args);
    free(tids);
    return lpq_errorf(err, LPQ_ENOMEM, "evaluator: out of memory for %zu threads", threads);
  }
  for (size_t t = 0; t < threads; t++)
    args[t] = (worker_arg_t){&job, t};
  /* Thread 0 is the caller. If some threads cannot start, the others finish the batch. */
  size_t started = 1;
  for (; started < threads; started++)
    if (pthread_create(&tids[started], NULL, worker_main, &args[started]) != 0)
      break;
  worker_arg_t self_arg = {&job, 0};
  worker_main(&self_arg);
  for (size_t t = 1; t < started; t++)
    pthread_join(tids[t], NULL);
  free(args);
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
