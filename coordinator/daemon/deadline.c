/* coordinator/daemon/deadline.c: a job's max_seconds is a deadline in the service, as it is for
** `lpq search --time`. The search itself starts no generation that the last one's length says
** would end past it, but a first generation (or a slower one than the last) has no such
** forecast: one timer, armed at the nearest deadline of the running jobs, cuts the generation
** in flight. Results that arrived are kept (committed first), the genomes still out count as
** failed "not evaluated within max_seconds", the generation is committed and the job stops
** ("stopped: time"); a first generation with nothing scored fails the job, saying so. The
** clock runs from the job's start in this process (a restarted coordinator counts afresh). */
#include "coordinator/daemon/daemon.h"

#include <stdio.h>

double deadline_left_s(const job_t *j) {
  if (!j->deadline_ms)
    return j->js.max_seconds;
  uint64_t now = uv_hrtime() / 1000000;
  return now >= j->deadline_ms ? 0.0 : (double)(j->deadline_ms - now) / 1000.0;
}

/* The deadline of job j passed: cut its generation in flight. */
static void cut(job_t *j) {
  daemon_t *d = j->d;
  j->time_up = 1;
  if (j->sens_count && !j->ending) { /* the sensitivity in flight: no search can run in time */
    char msg[128];
    snprintf(msg, sizeof msg, "max_seconds (%g s) passed while the sensitivity was scored",
             j->js.max_seconds);
    job_end(j, LPQ_STORE_JOB_FAILED, msg);
    return;
  }
  if (!j->search || !j->asked || j->ending || j->gen_unsaved || j->advancing)
    return; /* preparing, the generation complete, or its rows being stored: job_step stops it */
  lpq_dispatch_cancel_job(d->pool, j->id);
  j->next_dispatch = j->batch_count; /* nothing more is dispatched */
  lpq_store_eval_t e = {.job = j->id, .status = LPQ_ETIMEDOUT};
  snprintf(e.error, sizeof e.error, "not evaluated within max_seconds (%g s)", j->js.max_seconds);
  size_t cut_count = 0;
  for (size_t i = 0; i < j->batch_count; i++)
    if (!j->told_flag[i]) {
      e.genome_hash = j->refs[i].hash;
      job_tell(j, i, &e);
      cut_count++;
    }
  daemon_log(d, 1, "job %lld: max_seconds (%g s) passed; %zu of %zu genomes of the generation "
             "in flight not evaluated", (long long)j->id, j->js.max_seconds, cut_count,
             j->batch_count);
  job_step(j);
}

static void on_deadline(uv_timer_t *t) {
  daemon_t *d = t->data;
  /* results that already arrived count: commit them before cutting */
  jobs_flush(&d->flush);
  uint64_t now = uv_hrtime() / 1000000;
  for (int again = 1; again;) {
    again = 0;
    for (job_t *j = d->jobs; j; j = j->next)
      if (j->deadline_ms && j->deadline_ms <= now && !j->time_up) {
        cut(j); /* may end and free j: walk the list again */
        again = 1;
        break;
      }
  }
  deadline_arm(d);
}

void deadline_init(daemon_t *d) {
  uv_timer_init(d->loop, &d->deadline);
  d->deadline.data = d;
}

void deadline_arm(daemon_t *d) {
  uint64_t next = 0, now = uv_hrtime() / 1000000;
  for (job_t *j = d->jobs; j; j = j->next)
    if (j->deadline_ms && !j->time_up && (next == 0 || j->deadline_ms < next))
      next = j->deadline_ms;
  if (next == 0) {
    uv_timer_stop(&d->deadline);
    return;
  }
  uv_timer_start(&d->deadline, on_deadline, next > now ? next - now : 0, 0);
}
