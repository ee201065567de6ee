/* coordinator/daemon/progress.c: a job's progress as job.watch and job.get show it (live from
** the running search, or from the store for a job that ended or has not started). */
#include "coordinator/daemon/daemon.h"

#include <math.h>

static double fraction(const lpq_job_settings_t *js, double generation, double evals,
                       double elapsed) {
  double f = 0;
  if (js->generations)
    f = fmax(f, generation / (double)js->generations);
  if (js->max_evaluations)
    f = fmax(f, evals / (double)js->max_evaluations);
  if (js->max_seconds > 0)
    f = fmax(f, elapsed / js->max_seconds);
  return fmin(f, 1.0);
}

static json_t *num_or_null(double v) { return isfinite(v) ? json_real(v) : json_null(); }

json_t *job_progress_json(daemon_t *d, int64_t id, lpq_error_t *err) {
  lpq_store_job_t sj;
  if (lpq_store_job_get(d->store, id, &sj, err) != 0)
    return NULL;
  job_t *j = job_find(d, id);
  lpq_job_settings_t js;
  if (j)
    js = j->js; /* parsed when it started */
  else
    lpq_job_settings_parse(sj.settings, &js, NULL);
  double elapsed = isfinite(sj.started) ? ((isfinite(sj.finished) ? sj.finished : daemon_now_s()) -
                                           sj.started)
                                        : 0;
  /* generation: the last committed one, 0 the initial population */
  size_t gen = sj.generation >= 0 ? (size_t)sj.generation : 0;
  size_t evals = sj.evaluations_stored, failed = 0;
  if (j && j->search && !j->advancing) { /* else on the work queue: the stored progress */
    size_t applied = lpq_search_generation(j->search);
    gen = applied ? applied - 1 : 0;
    evals = lpq_search_evaluations(j->search) + (j->asked ? j->told : 0);
    const lpq_search_progress_t *h;
    size_t nh = lpq_search_history(j->search, &h);
    failed = nh ? h[nh - 1].failed : 0;
  }
  double f = lpq_store_job_status_final(sj.status) && sj.status == LPQ_STORE_JOB_DONE
                 ? 1.0
                 : fraction(&js, (double)gen, (double)evals, elapsed);
  double eta = (f > 0 && f < 1 && !lpq_store_job_status_final(sj.status))
                   ? elapsed * (1 - f) / f
                   : (f >= 1 ? 0 : NAN);
  /* a live job waiting for the store shows "paused" and the store's error, whatever the
  ** database still says (it could not be told) */
  int paused = j && j->paused && !lpq_store_job_status_final(sj.status);
  lpq_store_job_status_t status = paused ? LPQ_STORE_JOB_PAUSED : sj.status;
  json_t *o = json_pack("{s:I, s:s, s:b, s:I, s:I, s:I, s:I, s:f, s:f}", "job", (json_int_t)id,
                        "status", lpq_store_job_status_name(status), "final",
                        lpq_store_job_status_final(sj.status), "generation", (json_int_t)gen,
                        "generations", (json_int_t)js.generations, "evaluations",
                        (json_int_t)evals, "evaluations_failed", (json_int_t)failed, "progress",
                        f, "elapsed_s", elapsed);
  json_object_set_new(o, "eta_s", num_or_null(eta));
  json_object_set_new(o, "best_l_co", num_or_null(sj.best_l_co));
  json_object_set_new(o, "front_size", json_integer((json_int_t)sj.front_size));
  json_object_set_new(o, "hypervolume", num_or_null(sj.hypervolume));
  json_object_set_new(o, "workers", json_integer(j ? (json_int_t)(j->dispatched - j->told) : 0));
  json_object_set_new(o, "error", paused ? json_string(d->store_error)
                                  : (sj.status == LPQ_STORE_JOB_FAILED ||
                                     sj.status == LPQ_STORE_JOB_PAUSED) && sj.message[0]
                                      ? json_string(sj.message)
                                      : json_null());
  lpq_store_job_clear(&sj);
  return o;
}

