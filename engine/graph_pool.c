/* engine/graph_pool.c: the worker threads of one execution context (lpq_exec_set_threads).
** A job is a count of independent tasks; every thread, the caller included, takes the next
** task (an atomic counter, no lock) until none is left. The threads are started once; between
** jobs a worker spins briefly (a forward pass hands out one job per operator, microseconds
** apart) and then sleeps on a condition variable. The job's function and argument are read
** under the mutex, and a new job starts only when every worker that joined the last one has
** left it, so a late worker never mixes two jobs. */
#include "engine/engine_internal.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

/* Spin iterations (about 0.1 ms) before a worker sleeps, and before the waiting caller yields. */
#define POOL_SPIN 4000

struct threads_t {
  pthread_mutex_t mu;
  pthread_cond_t wake;
  int nthreads, started, quit;
  pthread_t *tids;
  struct threads_arg_t *args;
  void (*fn)(void *arg, size_t task, int tid); /* the job, set under mu */
  void *arg;
  size_t ntasks;
  _Alignas(64) atomic_size_t next;     /* taken by every thread: a cache line of its own */
  _Alignas(64) atomic_size_t finished; /* and the count of finished tasks another */
  _Alignas(64) char pad_;
  atomic_ulong gen;  /* job number, incremented under mu */
  atomic_int active; /* workers inside the current job */
  int sleepers;      /* workers waiting on wake (under mu) */
};

typedef struct threads_arg_t {
  threads_t *pool;
  int tid;
} threads_arg_t;

static void take_tasks(threads_t *p, void (*fn)(void *, size_t, int), void *arg, size_t ntasks,
                       int tid) {
  for (;;) {
    const size_t t = atomic_fetch_add_explicit(&p->next, 1, memory_order_relaxed);
    if (t >= ntasks)
      break;
    fn(arg, t, tid);
    atomic_fetch_add_explicit(&p->finished, 1, memory_order_release);
  }
}

static void *worker(void *v) {
  threads_arg_t *a = v;
  threads_t *p = a->pool;
  unsigned long seen = 0;
  for (;;) {
    for (int i = 0; i < POOL_SPIN && atomic_load_explicit(&p->gen, memory_order_acquire) == seen;
         i++)
      CPU_RELAX();
    pthread_mutex_lock(&p->mu);
    while (atomic_load(&p->gen) == seen && !p->quit) {
      p->sleepers++;
      pthread_cond_wait(&p->wake, &p->mu);
      p->sleepers--;
    }
    if (p->quit) {
      pthread_mutex_unlock(&p->mu);
      break;
    }
    seen = atomic_load(&p->gen);
    void (*fn)(void *, size_t, int) = p->fn;
    void *arg = p->arg;
    const size_t ntasks = p->ntasks;
    atomic_fetch_add(&p->active, 1);
    pthread_mutex_unlock(&p->mu);
    take_tasks(p, fn, arg, ntasks, a->tid);
    atomic_fetch_sub_explicit(&p->active, 1, memory_order_release);
  }
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
  atomic_init(&p->next, 0);
  atomic_init(&p->finished, 0);
  atomic_init(&p->gen, 0);
  atomic_init(&p->active, 0);
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
  /* a worker that joined the previous job after its last task must leave before next resets
  ** (joining takes mu, so none can join now) */
  while (atomic_load_explicit(&p->active, memory_order_acquire) > 0)
    CPU_RELAX();
  p->fn = fn, p->arg = arg, p->ntasks = ntasks;
  atomic_store(&p->next, 0);
  atomic_store(&p->finished, 0);
  atomic_fetch_add(&p->gen, 1);
  if (p->sleepers)
    pthread_cond_broadcast(&p->wake);
  pthread_mutex_unlock(&p->mu);
  take_tasks(p, fn, arg, ntasks, 0);
  /* every task done (a worker still inside the job only finds the counter past the end) */
  for (int i = 0; atomic_load_explicit(&p->finished, memory_order_acquire) < ntasks; i++) {
    if (i < POOL_SPIN)
      CPU_RELAX();
    else
      sched_yield();
  }
}
