/* engine/graph_pool.c: the worker threads of one execution context (lpq_exec_set_threads).
** A job is a count of independent tasks; every thread, the caller included, takes the next
** task until none is left. Tasks are coarse (a GEMM column chunk, a channel plane), so one
** mutex guards the counters. */
#include "engine/engine_internal.h"

#include <pthread.h>
#include <stdlib.h>

struct threads_t {
  pthread_mutex_t mu;
  pthread_cond_t wake, done;
  int nthreads, started, quit;
  pthread_t *tids;
  struct threads_arg_t *args;
  void (*fn)(void *arg, size_t task, int tid);
  void *arg;
  size_t ntasks, next, finished;
  unsigned long gen;
  int active;
};

typedef struct threads_arg_t {
  threads_t *pool;
  int tid;
} threads_arg_t;

/* Takes tasks of the current job until none is left; called with mu held. */
static void take_tasks(threads_t *p, int tid) {
  p->active++;
  while (p->next < p->ntasks) {
    const size_t t = p->next++;
    pthread_mutex_unlock(&p->mu);
    p->fn(p->arg, t, tid);
    pthread_mutex_lock(&p->mu);
    p->finished++;
  }
  p->active--;
  if (p->finished == p->ntasks && p->active == 0)
    pthread_cond_broadcast(&p->done);
}

static void *worker(void *v) {
  threads_arg_t *a = v;
  threads_t *p = a->pool;
  unsigned long seen = 0;
  pthread_mutex_lock(&p->mu);
  for (;;) {
    while (p->gen == seen && !p->quit)
      pthread_cond_wait(&p->wake, &p->mu);
    if (p->quit)
      break;
    seen = p->gen;
    take_tasks(p, a->tid);
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

threads_t *lpq__threads_new(int nthreads) {
  if (nthreads < 2)
    return NULL;
  threads_t *p = calloc(1, sizeof *p);
  if (!p)
    return NULL;
  p->nthreads = nthreads;
  p->tids = calloc((size_t)nthreads, sizeof *p->tids);
  p->args = calloc((size_t)nthreads, sizeof *p->args);
  if (!p->tids || !p->args || pthread_mutex_init(&p->mu, NULL) != 0) {
    free(p->tids), free(p->args), free(p);
    return NULL;
  }
  pthread_cond_init(&p->wake, NULL);
  pthread_cond_init(&p->done, NULL);
  for (int t = 1; t < nthreads; t++) {
    p->args[t] = (threads_arg_t){p, t};
    if (pthread_create(&p->tids[t], NULL, worker, &p->args[t]) != 0)
      break;
    p->started++;
  }
  if (p->started != nthreads - 1) {
    lpq__threads_free(&p);
    return NULL;
  }
  return p;
}

void lpq__threads_free(threads_t **pp) {
  if (!pp || !*pp)
    return;
  threads_t *p = *pp;
  pthread_mutex_lock(&p->mu);
  p->quit = 1;
  pthread_cond_broadcast(&p->wake);
  pthread_mutex_unlock(&p->mu);
  for (int t = 1; t <= p->started; t++)
    pthread_join(p->tids[t], NULL);
  pthread_cond_destroy(&p->wake);
  pthread_cond_destroy(&p->done);
  pthread_mutex_destroy(&p->mu);
  free(p->tids), free(p->args), free(p);
  *pp = NULL;
}

int lpq__threads_count(const threads_t *p) { return p ? p->nthreads : 1; }

void lpq__threads_run(threads_t *p, size_t ntasks, void (*fn)(void *arg, size_t task, int tid), void *arg) {
  if (!p || ntasks < 2) {
    for (size_t t = 0; t < ntasks; t++)
      fn(arg, t, 0);
    return;
  }
  pthread_mutex_lock(&p->mu);
  p->fn = fn, p->arg = arg, p->ntasks = ntasks, p->next = 0, p->finished = 0;
  p->gen++;
  pthread_cond_broadcast(&p->wake);
  take_tasks(p, 0);
  while (p->finished < p->ntasks || p->active > 0)
    pthread_cond_wait(&p->done, &p->mu);
  pthread_mutex_unlock(&p->mu);
}
