/* coordinator/daemon/pause.c: the daemon while its store cannot be written (a full disk, an
** I/O error). Nothing is lost and nothing fails: the results that arrived stay queued, a
** generation applied in memory waits to be stored, every running job shows status "paused"
** with the store's error (job.get, job.watch, the log), and a timer retries the writes every
** STORE_RETRY_MS. The first retry that stores everything resumes the jobs; the pause is then
** recorded in each job's events (it could not be while the store refused writes). */
#include "coordinator/daemon/daemon.h"

#include <stdio.h>
#include <string.h>

int store_error_transient(const lpq_error_t *err) {
  return err != NULL && (err->code == LPQ_EIO || err->code == LPQ_ETIMEDOUT);
}

int store_paused(const daemon_t *d) { return d->store_error[0] != 0; }

/* Marks one job paused; the store is told if it takes the write (best effort). */
static void pause_job(job_t *j) {
  daemon_t *d = j->d;
  if (j->paused || j->preparing)
    return;
  j->paused = 1;
  lpq_store_job_set_status(d->store, j->id, LPQ_STORE_JOB_PAUSED, d->store_error, NULL);
  char msg[LPQ_STORE_TEXT_MAX + 32];
  snprintf(msg, sizeof msg, "paused: %s", d->store_error);
  lpq_store_event_append(d->store, j->id, LPQ_STORE_WARN, msg, NULL, NULL);
  daemon_log(d, 1, "job %lld paused: waiting for the store", (long long)j->id);
  notify_watchers(j);
}

static void resume_jobs(daemon_t *d) {
  double waited = daemon_now_s() - d->store_failing_since;
  daemon_log(d, 1, "the store can be written again after %.1f s; jobs resume", waited);
  char msg[LPQ_STORE_TEXT_MAX + 64];
  snprintf(msg, sizeof msg, "paused %.1f s (%s); resumed", waited, d->store_error);
  d->store_error[0] = 0;
  uv_timer_stop(&d->store_retry);
  for (job_t *j = d->jobs; j; j = j->next) {
    if (!j->paused)
      continue;
    j->paused = 0;
    lpq_error_t err;
    if (lpq_store_job_set_status(d->store, j->id, LPQ_STORE_JOB_RUNNING, "", &err) != 0)
      daemon_log(d, 0, "job %lld: %s", (long long)j->id, err.msg);
    lpq_store_event_append(d->store, j->id, LPQ_STORE_WARN, msg, NULL, NULL);
    daemon_log(d, 1, "job %lld running again", (long long)j->id);
    notify_watchers(j);
  }
}

/* Stores what waits: queued results (with the search steps they allow), generations, final
** statuses. Resumes the jobs when no write failed. */
static void on_retry(uv_timer_t *t) {
  daemon_t *d = t->data;
  size_t failures = d->store_failures;
  d->retrying = 1;
  jobs_flush(&d->flush);
  for (job_t *j = d->jobs, *next; j && d->store_failures == failures; j = next) {
    next = j->next; /* job_end and job_step may free j (never another job) */
    if (j->ending) {
      job_end(j, j->end_status, j->end_message);
      continue;
    }
    if (j->rows && !j->advancing)
      job_write_rows(j); /* the generation's rows not written yet; then the job steps on */
  }
  d->retrying = 0;
  if (d->store_failures == failures && d->npending == 0)
    resume_jobs(d);
}

void store_retry_init(daemon_t *d) {
  uv_timer_init(d->loop, &d->store_retry);
  d->store_retry.data = d;
}

void store_failed(daemon_t *d, const lpq_error_t *err) {
  d->store_failures++;
  if (!store_paused(d)) {
    snprintf(d->store_error, sizeof d->store_error, "%s", err->msg);
    d->store_failing_since = daemon_now_s();
    daemon_log(d, 0, "%s: jobs paused (%zu results kept), retrying every %d ms", err->msg,
               d->npending, STORE_RETRY_MS);
    uv_timer_start(&d->store_retry, on_retry, STORE_RETRY_MS, STORE_RETRY_MS);
  }
  for (job_t *j = d->jobs; j; j = j->next)
    pause_job(j);
}
