/*
** coordinator/dispatch/dispatch.c: the dispatcher's life and its loop handles: the ROUTER socket under
** uv_poll, the pump (drain, assign, re-check ZMQ_EVENTS), the periodic tick (heartbeats,
** expiry, task timeouts), submit, cancel and stats.
*/
#include "coordinator/dispatch/dispatch_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

void lpq__dispatch_log(lpq_dispatch_t *d, int level, const char *fmt, ...)
{
  if (level > d->opts.log_level)
    return;
  char line[768];
  va_list ap;
  va_start(ap, fmt);
  int n = snprintf(line, sizeof line, "dispatch: ");
  vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
  va_end(ap);
  if (d->cb.on_log != NULL)
    d->cb.on_log(d->cb.ctx, level, line);
  else
    fprintf(stderr, "%s\n", line);
}

int lpq__dispatch_send_to(lpq_dispatch_t *d, const void *identity, size_t len, const void *frame,
                     size_t frame_len)
{
  if (zmq_send(d->sock, identity, len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
    return errno == EHOSTUNREACH ? LPQ_ENOTFOUND : LPQ_EIO;
  if (zmq_send(d->sock, frame, frame_len, ZMQ_DONTWAIT) < 0)
    return LPQ_EIO;
  return 0;
}

int lpq__dispatch_send(lpq_dispatch_t *d, d_worker_t *w, const void *frame, size_t len)
{
  int rc = lpq__dispatch_send_to(d, w->identity, w->identity_len, frame, len);
  if (rc == 0) {
    w->last_sent_ms = uv_now(d->loop);
    return 0;
  }
  /* ROUTER_MANDATORY: the peer's connection is gone, so is the worker. */
  lpq__dispatch_log(d, 1, "worker %s: send failed (%s); expiring it", w->ready.worker_id,
               zmq_strerror(errno));
  lpq__worker_remove(d, w, LPQ_WORKER_EXPIRED);
  return LPQ_EIO;
}

/* ---- the pump ------------------------------------------------------------------------------ */

void lpq__dispatch_pump(lpq_dispatch_t *d)
{
  if (d->pumping || d->sock == NULL)
    return;
  d->pumping = 1;
  size_t total = 0;
  for (;;) {
    total += lpq__dispatch_drain(d, DISPATCH_DRAIN_MAX - total);
    lpq__dispatch_assign(d);
    if (total >= DISPATCH_DRAIN_MAX) {
      /* Let the loop's other handles run; the kick brings us back, since the edge-triggered
      ** ZMQ_FD will not signal messages that are already waiting. */
      lpq__dispatch_kick(d);
      break;
    }
    int events = 0;
    size_t size = sizeof events;
    if (zmq_getsockopt(d->sock, ZMQ_EVENTS, &events, &size) != 0 || !(events & ZMQ_POLLIN))
      break;
  }
  d->pumping = 0;
}

static void on_poll(uv_poll_t *h, int status, int events)
{
  (void)status;
  (void)events;
  lpq__dispatch_pump(h->data);
}

static void on_kick(uv_timer_t *h) { lpq__dispatch_pump(h->data); }

void lpq__dispatch_kick(lpq_dispatch_t *d)
{
  if (!uv_is_active((uv_handle_t *)&d->kick))
    uv_timer_start(&d->kick, on_kick, 0, 0);
}

/* Heartbeats to workers we have not written to for an interval, expiry of silent workers,
** and task timeouts. */
static void on_tick(uv_timer_t *h)
{
  lpq_dispatch_t *d = h->data;
  uint64_t now = uv_now(d->loop);
  size_t count = d->workers.count, n = 0;
  d_worker_t **snap = count ? malloc(count * sizeof *snap) : NULL;
  if (count && snap == NULL) {
    lpq__dispatch_log(d, 0, "out of memory in the heartbeat tick");
    return;
  }
  for (size_t i = 0; i < d->workers.cap && n < count; i++)
    if (d->workers.slots[i].val != NULL)
      snap[n++] = d->workers.slots[i].val;
  lpq_error_t err;
  lpq_wire_encode_empty(&d->out, LPQ_MSG_HEARTBEAT, &err);
  /* The heartbeat frame is copied: a callback below may reuse d->out. */
  uint8_t beat[LPQ_WIRE_HEADER];
  memcpy(beat, d->out.data, sizeof beat);
  for (size_t i = 0; i < n; i++) {
    d_worker_t *w = snap[i];
    if (now - w->last_seen_ms > d->expiry_ms) {
      lpq__dispatch_log(d, 1, "worker %s (%s, pid %u): silent for %.1f s, expired with %zu tasks",
                   w->ready.worker_id, w->ready.host, w->ready.pid,
                   (double)(now - w->last_seen_ms) / 1000, w->n_assigned);
      lpq__worker_remove(d, w, LPQ_WORKER_EXPIRED);
    } else if (now - w->last_sent_ms >= d->heartbeat_ms) {
      lpq__dispatch_send(d, w, beat, sizeof beat);
    }
  }
  free(snap);
  while (d->run_head != NULL && d->run_head->deadline_ms <= now) {
    d_task_t *t = d->run_head;
    d_worker_t *w = t->worker;
    char why[256];
    snprintf(why, sizeof why, "no result within %.3g s from worker %s", d->opts.task_timeout_s,
             w ? w->ready.worker_id : "?");
    lpq__task_unrun(d, t);
    d->stats.timeouts++;
    lpq__dispatch_log(d, 1, "task %llu (job %lld): %s", (unsigned long long)t->id,
                 (long long)t->job_id, why);
    lpq__task_failed(d, t, w, LPQ_ETIMEDOUT, why);
  }
  lpq__dispatch_pump(d);
}

static void on_closed(uv_handle_t *h);

/* ---- life ------------------------------------------------------------------------------------ */

static int opts_resolve(lpq_dispatch_opts_t *o, lpq_error_t *err)
{
  if (o->heartbeat_s == 0)
    o->heartbeat_s = 1;
  if (o->liveness == 0)
    o->liveness = 3;
  if (o->task_timeout_s == 0)
    o->task_timeout_s = 600;
  if (o->max_failures == 0)
    o->max_failures = 3;
  if (o->log_level == 0)
    o->log_level = 2;
  else if (o->log_level < 0)
    o->log_level = 0; /* errors only */
  if (!(o->heartbeat_s >= 0.01 && o->heartbeat_s <= 3600))
    return lpq_errorf(err, LPQ_EINVAL, "dispatch: heartbeat_s = %g is out of range 0.01..3600",
                      o->heartbeat_s);
  if (o->liveness < 1 || o->liveness > 100)
    return lpq_errorf(err, LPQ_EINVAL, "dispatch: liveness = %d is out of range 1..100",
                      o->liveness);
  if (!(o->task_timeout_s > 0 && o->task_timeout_s <= 1e7))
    return lpq_errorf(err, LPQ_EINVAL, "dispatch: task_timeout_s = %g is out of range",
                      o->task_timeout_s);
  if (o->max_failures < 1 || o->max_failures > 100)
    return lpq_errorf(err, LPQ_EINVAL, "dispatch: max_failures = %d is out of range 1..100",
                      o->max_failures);
  return 0;
}

lpq_dispatch_t *lpq_dispatch_new(struct uv_loop_s *loop, const char *endpoint,
                                 const lpq_dispatch_opts_t *opts,
                                 const lpq_dispatch_callbacks_t *callbacks, lpq_error_t *err)
{
  if (loop == NULL || endpoint == NULL || callbacks == NULL || callbacks->on_result == NULL) {
    lpq_errorf(err, LPQ_EINVAL, "dispatch: a loop, an endpoint and on_result are required");
    return NULL;
  }
  lpq_dispatch_t *d = calloc(1, sizeof *d);
  if (d == NULL) {
    lpq_errorf(err, LPQ_ENOMEM, "dispatch: out of memory");
    return NULL;
  }
  if (opts != NULL)
    d->opts = *opts;
  if (opts_resolve(&d->opts, err) != 0) {
    free(d);
    return NULL;
  }
  d->loop = loop;
  d->cb = *callbacks;
  d->heartbeat_ms = (uint64_t)(d->opts.heartbeat_s * 1000 + 0.5);
  d->expiry_ms = d->heartbeat_ms * (uint64_t)d->opts.liveness;
  d->timeout_ms = (uint64_t)(d->opts.task_timeout_s * 1000 + 0.5);
  d->next_task_id = 1;
  d->next_serial = 1;

  int one = 1, zero = 0, linger = 0;
  d->zctx = zmq_ctx_new();
  if (d->zctx == NULL || (d->sock = zmq_socket(d->zctx, ZMQ_ROUTER)) == NULL) {
    lpq_errorf(err, LPQ_EIO, "dispatch: cannot create a ZeroMQ socket: %s",
               zmq_strerror(errno));
    goto fail;
  }
  /* Unknown routes fail loudly (a gone worker) instead of dropping; no high-water mark, so a
  ** TASK is never silently dropped (slots bound what is in flight). */
  zmq_setsockopt(d->sock, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
  zmq_setsockopt(d->sock, ZMQ_SNDHWM, &zero, sizeof zero);
  zmq_setsockopt(d->sock, ZMQ_RCVHWM, &zero, sizeof zero);
  zmq_setsockopt(d->sock, ZMQ_LINGER, &linger, sizeof linger);
  if (lpq__dispatch_curve_setup(d, endpoint, err) != 0)
    goto fail;
  if (zmq_bind(d->sock, endpoint) != 0) {
    lpq_errorf(err, LPQ_EIO, "dispatch: cannot bind %s: %s", endpoint, zmq_strerror(errno));
    goto fail;
  }
  size_t size = sizeof d->endpoint;
  if (zmq_getsockopt(d->sock, ZMQ_LAST_ENDPOINT, d->endpoint, &size) != 0)
    snprintf(d->endpoint, sizeof d->endpoint, "%s", endpoint);
  int fd;
  size = sizeof fd;
  if (zmq_getsockopt(d->sock, ZMQ_FD, &fd, &size) != 0) {
    lpq_errorf(err, LPQ_EIO, "dispatch: ZMQ_FD: %s", zmq_strerror(errno));
    goto fail;
  }
  if (uv_poll_init(loop, &d->poll, fd) != 0) {
    lpq_errorf(err, LPQ_EIO, "dispatch: uv_poll_init on ZMQ_FD %d failed", fd);
    goto fail;
  }
  uv_timer_init(loop, &d->tick);
  uv_timer_init(loop, &d->kick);
  d->poll.data = d->tick.data = d->kick.data = d;
  d->handles_open = 3 + d->has_zap_poll;
  uv_poll_start(&d->poll, UV_READABLE, on_poll);
  uint64_t tick_ms = d->heartbeat_ms / 4 ? d->heartbeat_ms / 4 : 1;
  uv_timer_start(&d->tick, on_tick, tick_ms, tick_ms);
  lpq__dispatch_kick(d); /* messages may already be waiting behind the first edge */
  lpq__dispatch_log(d, 2, "listening on %s%s%s", d->endpoint,
               d->zap ? ", CURVE public key " : " in plain text", d->curve_public);
  return d;
fail:
  if (d->has_zap_poll)
    uv_poll_stop(&d->zap_poll);
  if (d->zap != NULL)
    zmq_close(d->zap);
  if (d->sock != NULL)
    zmq_close(d->sock);
  if (d->zctx != NULL)
    zmq_ctx_term(d->zctx);
  if (d->has_zap_poll) { /* d goes with the handle, when the loop runs next */
    d->handles_open = 1;
    uv_close((uv_handle_t *)&d->zap_poll, on_closed);
    return NULL;
  }
  free(d);
  return NULL;
}

const char *lpq_dispatch_endpoint(const lpq_dispatch_t *d) { return d->endpoint; }

const char *lpq_dispatch_curve_public(const lpq_dispatch_t *d)
{
  return d->zap != NULL ? d->curve_public : NULL;
}

static void on_closed(uv_handle_t *h)
{
  lpq_dispatch_t *d = h->data;
  if (--d->handles_open == 0)
    free(d);
}

void lpq_dispatch_free(lpq_dispatch_t **dp)
{
  if (dp == NULL || *dp == NULL)
    return;
  lpq_dispatch_t *d = *dp;
  *dp = NULL;
  for (size_t i = 0; i < d->tasks.cap; i++)
    if (d->tasks.slots[i].val != NULL)
      lpq__free_task(d->tasks.slots[i].val);
  for (size_t i = 0; i < d->jobs.cap; i++)
    free(d->jobs.slots[i].val);
  for (size_t i = 0; i < d->workers.cap; i++)
    if (d->workers.slots[i].val != NULL) {
      d_worker_t *w = d->workers.slots[i].val;
      free(w->assigned);
      free(w);
    }
  lpq__dmap_clear(&d->tasks);
  lpq__dmap_clear(&d->jobs);
  lpq__dmap_clear(&d->workers);
  lpq_wire_buf_clear(&d->out);
  uv_poll_stop(&d->poll);
  if (d->has_zap_poll) {
    uv_poll_stop(&d->zap_poll);
    uv_close((uv_handle_t *)&d->zap_poll, on_closed);
  }
  if (d->zap != NULL)
    zmq_close(d->zap);
  zmq_close(d->sock);
  zmq_ctx_term(d->zctx);
  d->sock = d->zctx = d->zap = NULL;
  uv_close((uv_handle_t *)&d->poll, on_closed);
  uv_close((uv_handle_t *)&d->tick, on_closed);
  uv_close((uv_handle_t *)&d->kick, on_closed);
}

/* ---- submit, cancel, reading -------------------------------------------------------------- */

int lpq_dispatch_submit(lpq_dispatch_t *d, const lpq_task_t *task, void *user,
                        uint64_t *task_id, lpq_error_t *err)
{
  if (d == NULL || task == NULL)
    return lpq_errorf(err, LPQ_EINVAL, "dispatch_submit: no task");
  lpq_task_t copy = *task;
  copy.task_id = d->next_task_id;
  int rc = lpq_wire_encode_task(&d->out, &copy, err);
  if (rc != 0)
    return rc;
  d_task_t *t = calloc(1, sizeof *t);
  d_job_t *j = lpq__dmap_get(&d->jobs, (uint64_t)task->job_id);
  int new_job = j == NULL;
  if (new_job)
    j = calloc(1, sizeof *j);
  if (t == NULL || j == NULL || (t->frame = malloc(d->out.len)) == NULL ||
      (new_job && lpq__dmap_put(&d->jobs, (uint64_t)task->job_id, j) != 0) ||
      lpq__dmap_put(&d->tasks, copy.task_id, t) != 0) {
    if (new_job && j != NULL) {
      lpq__dmap_remove(&d->jobs, (uint64_t)task->job_id);
      free(j);
    }
    if (t != NULL)
      free(t->frame);
    free(t);
    return lpq_errorf(err, LPQ_ENOMEM, "dispatch_submit: out of memory");
  }
  memcpy(t->frame, d->out.data, d->out.len);
  t->frame_len = d->out.len;
  t->id = copy.task_id;
  t->job_id = task->job_id;
  t->user = user;
  t->job = j;
  j->id = task->job_id;
  j->live++;
  d->next_task_id++;
  /* append to the job's FIFO */
  if (j->tail != NULL)
    j->tail->next_queued = t;
  else
    j->head = t;
  j->tail = t;
  j->queued++;
  if (!j->in_ring)
    lpq__job_ring_insert(d, j);
  d->stats.submitted++;
  if (task_id != NULL)
    *task_id = t->id;
  lpq__dispatch_kick(d);
  return 0;
}

void lpq_dispatch_stats(const lpq_dispatch_t *d, lpq_dispatch_stats_t *out)
{
  *out = d->stats;
  out->workers = d->workers.count;
  out->slots = 0;
  for (size_t i = 0; i < d->workers.cap; i++)
    if (d->workers.slots[i].val != NULL) {
      const d_worker_t *w = d->workers.slots[i].val;
      out->slots += w->draining ? 0 : w->ready.threads;
    }
  out->tasks_running = d->running;
  out->tasks_queued = d->tasks.count - out->tasks_running;
}

int lpq_dispatch_workers(const lpq_dispatch_t *d, lpq_worker_info_t **list, size_t *count,
                         lpq_error_t *err)
{
  *list = NULL;
  *count = 0;
  if (d->workers.count == 0)
    return 0;
  lpq_worker_info_t *a = calloc(d->workers.count, sizeof *a);
  if (a == NULL)
    return lpq_errorf(err, LPQ_ENOMEM, "dispatch: out of memory listing workers");
  size_t n = 0;
  for (size_t i = 0; i < d->workers.cap; i++)
    if (d->workers.slots[i].val != NULL)
      lpq__worker_info(d, d->workers.slots[i].val, &a[n++]);
  *list = a;
  *count = n;
  return 0;
}
