/* coordinator/daemon/advance.c: a job's generation is complete; the step to the next one off the
** loop. Applying it (lpq_search_commit: the archive, NSGA-II survival, ranks), making its rows
** for the store (ranks over the population, one genome JSON each) and asking for the next
** batch take seconds for a population of 100000 (bench/generation_commit), so they run on
** libuv's work queue while the loop serves the API and the pool; the loop only reads the search
** again once they are back (job.get shows the stored progress meanwhile). The rows are then
** written WRITE_ROWS a transaction, for at most WRITE_SLICE_NS per loop iteration (the feed
** idle handle carries on), and the job steps on once the last is stored. */
#include "coordinator/daemon/daemon.h"

#include <stdlib.h>

#define WRITE_ROWS 64          /* individuals a transaction (~1 KB of genome JSON each) */
#define WRITE_SLICE_NS 2000000 /* the loop writes for this long, then serves the rest */

static void advance_work(uv_work_t *w) {
  job_t *j = w->data;
  lpq_error_t *err = &j->advance_err;
  int rc = lpq_search_commit(j->search, err);
  if (rc == 0)
    rc = lpq_store_generation_rows(j->id, j->search, &j->rows, err);
  /* the next batch too, when the search goes on: job_step's ask finds it made (the same batch
  ** it would make; a failure here is met again, and reported, by that ask) */
  if (rc == 0 && lpq_search_should_stop(j->search) == LPQ_STOP_NONE) {
    const lpq_layer_formats_t *genomes;
    size_t count;
    lpq_error_t ask_err;
    lpq_search_ask(j->search, &genomes, &count, &ask_err);
  }
  j->advance_rc = rc;
}

static void advance_done(uv_work_t *w, int status) {
  job_t *j = w->data;
  daemon_t *d = j->d;
  j->advancing = 0;
  if (j->cancel) {
    job_end(j, LPQ_STORE_JOB_CANCELED, "canceled");
    return;
  }
  if (d->stopping || status == UV_ECANCELED)
    return; /* the job resumes at the next start; its rows are freed with it */
  if (j->advance_rc != 0) {
    job_end(j, LPQ_STORE_JOB_FAILED, j->advance_err.msg);
    return;
  }
  j->asked = 0; /* applied: no result of it is told any more, and job.get counts it once */
  j->gen_unsaved = 1;
  job_write_rows(j);
}

void job_advance(job_t *j) {
  j->advancing = 1;
  j->advance.data = j;
  uv_queue_work(j->d->loop, &j->advance, advance_work, advance_done);
}

void job_write_rows(job_t *j) {
  daemon_t *d = j->d;
  uint64_t until = uv_hrtime() + WRITE_SLICE_NS;
  for (int done = 0; !done;) {
    lpq_error_t err;
    if (lpq_store_generation_write(d->store, j->rows, WRITE_ROWS, &done, &err) != 0) {
      if (store_error_transient(&err)) {
        store_failed(d, &err); /* the retry timer writes the rest */
        return;
      }
      job_end(j, LPQ_STORE_JOB_FAILED, err.msg);
      return;
    }
    if (!done && uv_hrtime() > until) {
      jobs_feed_start(d); /* the rest after the loop's other events */
      return;
    }
  }
  lpq_store_generation_rows_free(&j->rows);
  j->gen_unsaved = 0;
  notify_watchers(j);
  job_step(j);
}
