/*
** coordinator/dispatch/sched.c: who runs what. Jobs with queued tasks form a ring served
** round-robin (one task per job per turn: fair sharing); workers with a free slot form a ring
** used in turn. Retries, failures, timeouts and workers that leave or expire end up here.
*/
#include "coordinator/dispatch/dispatch_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void lpq__free_task(d_task_t *t)
{
  free(t->frame);
  free(t->failed_on);
  free(t);
}

/* ---- rings ------------------------------------------------------------------------------- */

void lpq__job_ring_insert(lpq_dispatch_t *d, d_job_t *j)
{
  if (d->rr == NULL) {
    j->rr_prev = j->rr_next = j;
    d->rr = j;
  } else { /* just before the cursor: last in this round */
    j->rr_next = d->rr;
    j->rr_prev = d->rr->rr_prev;
    j->rr_prev->rr_next = j;
    d->rr->rr_prev = j;
  }
  j->in_ring = 1;
  d->ring_jobs++;
}

static void job_ring_remove(lpq_dispatch_t *d, d_job_t *j)
{
  if (!j->in_ring)
    return;
  if (j->rr_next == j) {
    d->rr = NULL;
  } else {
    j->rr_prev->rr_next = j->rr_next;
    j->rr_next->rr_prev = j->rr_prev;
    if (d->rr == j)
      d->rr = j->rr_next;
  }
  j->rr_prev = j->rr_next = NULL;
  j->in_ring = 0;
  d->ring_jobs--;
}

/* A job with nothing queued or running is forgotten. */
static void job_release(lpq_dispatch_t *d, d_job_t *j)
{
  if (j->live == 0 && j->queued == 0) {
    job_ring_remove(d, j);
    lpq__dmap_remove(&d->jobs, (uint64_t)j->id);
    free(j);
  }
}

void lpq__avail_update(lpq_dispatch_t *d, d_worker_t *w)
{
  int want = !w->draining && w->n_assigned < w->ready.threads;
  if (want && !w->in_avail) {
    if (d->avail == NULL) {
      w->av_prev = w->av_next = w;
      d->avail = w;
    } else {
      w->av_next = d->avail;
      w->av_prev = d->avail->av_prev;
      w->av_prev->av_next = w;
      d->avail->av_prev = w;
    }
    w->in_avail = 1;
  } else if (!want && w->in_avail) {
    if (w->av_next == w) {
      d->avail = NULL;
    } else {
      w->av_prev->av_next = w->av_next;
      w->av_next->av_prev = w->av_prev;
      if (d->avail == w)
        d->avail = w->av_next;
    }
    w->av_prev = w->av_next = NULL;
    w->in_avail = 0;
  }
}

/* ---- tasks ------------------------------------------------------------------------------- */

static void run_append(lpq_dispatch_t *d, d_task_t *t)
{
  t->run_prev = d->run_tail;
  t->run_next = NULL;
  if (d->run_tail != NULL)
    d->run_tail->run_next = t;
  else
    d->run_head = t;
  d->run_tail = t;
  d->running++;
}

void lpq__task_unrun(lpq_dispatch_t *d, d_task_t *t)
{
  if (t->worker == NULL)
    return;
  if (t->run_prev != NULL)
    t->run_prev->run_next = t->run_next;
  else
    d->run_head = t->run_next;
  if (t->run_next != NULL)
    t->run_next->run_prev = t->run_prev;
  else
    d->run_tail = t->run_prev;
  t->run_prev = t->run_next = NULL;
  t->worker = NULL;
  d->running--;
}

void lpq__task_requeue_front(lpq_dispatch_t *d, d_task_t *t)
{
  lpq__task_unrun(d, t);
  d_job_t *j = t->job;
  t->next_queued = j->head;
  j->head = t;
  if (j->tail == NULL)
    j->tail = t;
  j->queued++;
  if (!j->in_ring)
    lpq__job_ring_insert(d, j);
  lpq__dispatch_kick(d);
}

void lpq__task_unqueue(lpq_dispatch_t *d, d_task_t *t)
{
  d_job_t *j = t->job;
  d_task_t **p = &j->head, *prev = NULL;
  while (*p != NULL && *p != t) {
    prev = *p;
    p = &(*p)->next_queued;
  }
  if (*p == NULL)
    return;
  *p = t->next_queued;
  if (j->tail == t)
    j->tail = prev;
  t->next_queued = NULL;
  if (--j->queued == 0)
    job_ring_remove(d, j);
}

void lpq__task_forget(lpq_dispatch_t *d, d_task_t *t)
{
  lpq__task_unrun(d, t);
  lpq__dmap_remove(&d->tasks, t->id);
  d_job_t *j = t->job;
  j->live--;
  lpq__free_task(t);
  job_release(d, j);
}

static int failed_on(const d_task_t *t, uint32_t serial)
{
  for (unsigned i = 0; i < t->distinct; i++)
    if (t->failed_on[i] == serial)
      return 1;
  return 0;
}

void lpq__task_failed(lpq_dispatch_t *d, d_task_t *t, d_worker_t *w, int status, const char *why)
{
  lpq__task_unrun(d, t);
  t->failures++;
  snprintf(t->last_error, sizeof t->last_error, "%s", why);
  if (w != NULL && !failed_on(t, w->serial)) {
    uint32_t *a = realloc(t->failed_on, (t->distinct + 1) * sizeof *a);
    if (a != NULL) {
      a[t->distinct++] = w->serial;
      t->failed_on = a;
    }
  }
  unsigned limit = (unsigned)d->opts.max_failures;
  if (t->distinct < limit && t->failures < 2 * limit) {
    d->stats.retried++;
    lpq__task_requeue_front(d, t);
    return;
  }
  lpq_result_t r;
  lpq_result_init(&r, t->id);
  r.status = status < 0 ? status : LPQ_EIO;
  snprintf(r.error, sizeof r.error, "failed %u times on %u workers; last: %.180s", t->failures,
           t->distinct, t->last_error);
  r.l_co = r.l_cr = NAN;
  lpq_dispatch_task_t info = {t->id, t->job_id, t->user, t->attempts};
  lpq__dispatch_log(d, 1, "task %llu (job %lld): %s", (unsigned long long)t->id,
               (long long)t->job_id, r.error);
  d->stats.failed++;
  lpq__task_forget(d, t);
  d->cb.on_result(d->cb.ctx, &info, &r);
}

/* ---- workers ----------------------------------------------------------------------------- */

int lpq__worker_release(lpq_dispatch_t *d, d_worker_t *w, uint64_t task_id)
{
  for (size_t i = 0; i < w->n_assigned; i++)
    if (w->assigned[i] == task_id) {
      w->assigned[i] = w->assigned[--w->n_assigned];
      lpq__avail_update(d, w);
      return 1;
    }
  return 0;
}

void lpq__worker_info(const lpq_dispatch_t *d, const d_worker_t *w, lpq_worker_info_t *out)
{
  memset(out, 0, sizeof *out);
  memcpy(out->worker_id, w->ready.worker_id, sizeof out->worker_id);
  memcpy(out->host, w->ready.host, sizeof out->host);
  out->pid = w->ready.pid;
  out->threads = w->ready.threads;
  memcpy(out->capabilities, w->ready.capabilities, sizeof out->capabilities);
  memcpy(out->version, w->ready.version, sizeof out->version);
  out->running = w->n_assigned;
  for (size_t i = 0; i < w->n_assigned && out->job == 0; i++) {
    const d_task_t *t = lpq__dmap_get(&d->tasks, w->assigned[i]);
    out->job = t && t->worker == w ? t->job_id : 0;
  }
  out->done = w->done;
  out->failed = w->failed;
  out->idle_s = (double)(uv_now(d->loop) - w->last_seen_ms) / 1000;
  out->draining = w->draining;
}

void lpq__worker_remove(lpq_dispatch_t *d, d_worker_t *w, lpq_worker_event_t why)
{
  lpq_worker_info_t info;
  lpq__worker_info(d, w, &info);
  lpq__dmap_remove(&d->workers, w->key);
  w->draining = 1;
  lpq__avail_update(d, w);
  if (why == LPQ_WORKER_EXPIRED)
    d->stats.workers_expired++;
  char reason[160];
  snprintf(reason, sizeof reason, "worker %s (%s, pid %u) %s", w->ready.worker_id,
           w->ready.host, w->ready.pid, why == LPQ_WORKER_LEFT ? "left" : "was lost");
  /* Its tasks: a worker that said BYE gave back what it held (no cost); one that was lost
  ** counts as a failure of each task it held, so a task that kills workers ends. */
  for (size_t i = 0; i < w->n_assigned; i++) {
    d_task_t *t = lpq__dmap_get(&d->tasks, w->assigned[i]);
    if (t == NULL || t->worker != w)
      continue;
    if (why == LPQ_WORKER_LEFT)
      lpq__task_requeue_front(d, t);
    else
      lpq__task_failed(d, t, w, LPQ_EIO, reason);
  }
  lpq__dispatch_log(d, 2, "%s", reason);
  free(w->assigned);
  free(w);
  if (d->cb.on_worker_change != NULL)
    d->cb.on_worker_change(d->cb.ctx, why, &info);
}

/* The worker for t: the next one in turn. A task that failed before goes to a worker it has
** not failed on; if none of those is free but one exists, it waits for it (NULL). Only when
** every worker has failed it does it go back to one of them. */
static d_worker_t *pick_worker(lpq_dispatch_t *d, const d_task_t *t)
{
  d_worker_t *w = d->avail;
  if (t->distinct == 0)
    return w;
  do {
    if (!failed_on(t, w->serial))
      return w;
    w = w->av_next;
  } while (w != d->avail);
  for (size_t i = 0; i < d->workers.cap; i++) {
    const d_worker_t *o = d->workers.slots[i].val;
    if (o != NULL && !o->draining && !failed_on(t, o->serial))
      return NULL;
  }
  return d->avail;
}

void lpq__dispatch_assign(lpq_dispatch_t *d)
{
  size_t skipped = 0; /* jobs passed over in a row because their head task waits */
  while (d->avail != NULL && d->rr != NULL && skipped < d->ring_jobs) {
    d_job_t *j = d->rr;
    d_task_t *t = j->head;
    d_worker_t *w = pick_worker(d, t);
    d->rr = j->rr_next; /* round-robin: the next job goes next */
    if (w == NULL) {
      skipped++;
      continue;
    }
    skipped = 0;
    j->head = t->next_queued;
    if (j->head == NULL)
      j->tail = NULL;
    t->next_queued = NULL;
    if (--j->queued == 0)
      job_ring_remove(d, j);

    w->assigned[w->n_assigned++] = t->id;
    t->worker = w;
    t->attempts++;
    t->sent_ns = uv_hrtime();
    t->deadline_ms = uv_now(d->loop) + d->timeout_ms;
    run_append(d, t);
    d->avail = w->av_next;
    lpq__avail_update(d, w);
    lpq__dispatch_send(d, w, t->frame, t->frame_len); /* on failure w is gone and t queued again */
  }
}

size_t lpq_dispatch_cancel_job(lpq_dispatch_t *d, int64_t job_id)
{
  if (d == NULL)
    return 0;
  d_job_t *j = lpq__dmap_get(&d->jobs, (uint64_t)job_id);
  if (j == NULL)
    return 0;
  size_t n = 0;
  while (j->head != NULL) {
    d_task_t *t = j->head;
    j->head = t->next_queued;
    j->queued--;
    lpq__dmap_remove(&d->tasks, t->id);
    j->live--;
    lpq__free_task(t);
    n++;
  }
  j->tail = NULL;
  job_ring_remove(d, j);
  /* Running ones: forgotten here; their workers keep the slot until they answer. Every live
  ** task is running now, and forgetting the last one frees the job. */
  size_t running = j->live;
  if (running == 0)
    job_release(d, j);
  for (d_task_t *t = d->run_head, *next; t != NULL && running > 0; t = next) {
    next = t->run_next;
    if (t->job == j) {
      running--;
      n++;
      lpq__task_forget(d, t);
    }
  }
  lpq__dispatch_log(d, 2, "job %lld canceled: %zu tasks forgotten", (long long)job_id, n);
  return n;
}
