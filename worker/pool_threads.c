/*
** worker/pool_threads.c: the evaluation threads. Each takes tasks from a mutex-guarded queue,
** runs the evaluator, and sends the encoded RESULT over its own inproc PUSH socket to the I/O
** thread, which alone owns the DEALER.
*/
#include "worker/worker_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

void lpq__pw_task_free(pw_task_t *t)
{
  if (t == NULL)
    return;
  lpq_task_clear(&t->task);
  free(t);
}

static double now_ms_f(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void evaluate(pw_t *p, pw_task_t *t, void *push, lpq_wire_buf_t *buf)
{
  char model[PATH_MAX], data[PATH_MAX], labels[PATH_MAX];
  const lpq_task_t *task = &t->task;
  int has_m = task->model_hash[0] && lpq__pw_cache_has(p, task->model_hash, model, sizeof model);
  int has_d = task->data_hash[0] && lpq__pw_cache_has(p, task->data_hash, data, sizeof data);
  int has_l = task->labels_hash[0] && lpq__pw_cache_has(p, task->labels_hash, labels, sizeof labels);
  lpq_result_t r;
  lpq_result_init(&r, task->task_id);
  lpq_error_t err = {0};
  double t0 = now_ms_f();
  int rc = p->o.evaluator.eval(p->o.evaluator.ctx, task, has_m ? model : NULL,
                               has_d ? data : NULL, has_l ? labels : NULL, &r, &err);
  r.task_id = task->task_id;
  r.eval_ms = now_ms_f() - t0;
  r.fetch_ms = t->fetch_ms;
  if (rc != 0) {
    r.status = rc < 0 ? rc : LPQ_EIO;
    snprintf(r.error, sizeof r.error, "%s", err.msg[0] ? err.msg : lpq_strerror(r.status));
  } else {
    r.status = 0;
    r.error[0] = '\0';
  }
  lpq_error_t werr;
  if (lpq_wire_encode_result(buf, &r, &werr) != 0) {
    fprintf(stderr, "lpq-worker: %s\n", werr.msg);
    return;
  }
  zmq_send(push, buf->data, buf->len, 0);
}

static void *eval_main(void *arg)
{
  pw_t *p = arg;
  void *push = zmq_socket(p->zctx, ZMQ_PUSH);
  int linger = -1, hwm = 0;
  zmq_setsockopt(push, ZMQ_LINGER, &linger, sizeof linger);
  zmq_setsockopt(push, ZMQ_SNDHWM, &hwm, sizeof hwm);
  zmq_connect(push, p->results_ep);
  lpq_wire_buf_t buf = {0};
  for (;;) {
    pthread_mutex_lock(&p->mu);
    while (p->q_head == NULL && !p->quit)
      pthread_cond_wait(&p->cv, &p->mu);
    pw_task_t *t = p->q_head;
    if (t != NULL) {
      p->q_head = t->next;
      if (p->q_head == NULL)
        p->q_tail = NULL;
    }
    pthread_mutex_unlock(&p->mu);
    if (t == NULL)
      break;
    evaluate(p, t, push, &buf);
    lpq__pw_task_free(t);
  }
  lpq_wire_buf_clear(&buf);
  zmq_close(push);
  return NULL;
}

int lpq__pw_threads_start(pw_t *p, lpq_error_t *err)
{
  p->threads = calloc(p->o.threads, sizeof *p->threads);
  if (p->threads == NULL)
    return lpq_errorf(err, LPQ_ENOMEM, "lpq-worker: out of memory for %u threads",
                      p->o.threads);
  for (size_t i = 0; i < p->o.threads; i++) {
    if (pthread_create(&p->threads[i], NULL, eval_main, p) != 0) {
      lpq__pw_threads_stop(p);
      return lpq_errorf(err, LPQ_EIO, "lpq-worker: cannot start evaluation thread %zu", i);
    }
    p->nthreads++;
  }
  return 0;
}

void lpq__pw_threads_push(pw_t *p, pw_task_t *t)
{
  t->next = NULL;
  pthread_mutex_lock(&p->mu);
  if (p->q_tail != NULL)
    p->q_tail->next = t;
  else
    p->q_head = t;
  p->q_tail = t;
  p->running++;
  pthread_cond_signal(&p->cv);
  pthread_mutex_unlock(&p->mu);
}

pw_task_t *lpq__pw_threads_take_queued(pw_t *p)
{
  pthread_mutex_lock(&p->mu);
  pw_task_t *list = p->q_head;
  for (pw_task_t *t = list; t != NULL; t = t->next)
    p->running--;
  p->q_head = p->q_tail = NULL;
  pthread_mutex_unlock(&p->mu);
  return list;
}

void lpq__pw_threads_stop(pw_t *p)
{
  pthread_mutex_lock(&p->mu);
  p->quit = 1;
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
  for (size_t i = 0; i < p->nthreads; i++)
    pthread_join(p->threads[i], NULL);
  p->nthreads = 0;
  free(p->threads);
  p->threads = NULL;
  for (pw_task_t *t = p->q_head, *next; t != NULL; t = next) {
    next = t->next;
    lpq__pw_task_free(t);
  }
  p->q_head = p->q_tail = NULL;
}
