/* coordinator/daemon/jobs.c: the job scheduler. A job is prepared on the thread pool (model,
** calibration batch, per-layer seeds), then its search runs generation by generation: every
** genome the search asks for is looked up in SQLite first (a restarted coordinator replays its
** jobs this way) and dispatched to the pool otherwise; results are committed in one
** transaction per loop iteration before the search is told; each generation is committed with
** its population and front. */
#include "coordinator/daemon/daemon.h"

#include <malloc.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void daemon_log(daemon_t *d, int level, const char *fmt, ...) {
  if (level > d->log_level)
    return;
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  time_t t = time(NULL);
  struct tm tm;
  char stamp[32];
  strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
  fprintf(stderr, "%s lpq-coordinator: %s\n", stamp, line);
}

double daemon_now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

job_t *job_find(daemon_t *d, int64_t id) {
  for (job_t *j = d->jobs; j; j = j->next)
    if (j->id == id)
      return j;
  return NULL;
}

static void job_unlink(job_t *j) {
  for (job_t **p = &j->d->jobs; *p; p = &(*p)->next)
    if (*p == j) {
      *p = j->next;
      return;
    }
}

static void job_free(job_t *j) {
  if (!j)
    return;
  for (size_t i = 0; j->layer_names && i < j->nl; i++)
    free(j->layer_names[i]);
  free(j->layer_names);
  free(j->weight_counts);
  free(j->sens_genomes);
  free(j->sens_refs);
  free(j->sens_l_co);
  free(j->sens_top1);
  pick_free(j);
  free(j->val_path);
  free(j->seeds);
  free(j->specs);
  free(j->refs);
  free(j->told_flag);
  free(j->settings_json);
  json_decref(j->settings_obj);
  free(j->model_path);
  free(j->data_path);
  for (size_t i = 0; i < j->nsubs; i++)
    lpq_api_unsubscribe(&j->subs[i]);
  free(j->subs);
  lpq_search_free(&j->search);
  lpq_search_free(&j->built);
  lpq_store_generation_rows_free(&j->rows);
  free(j);
}

void job_unwatch(job_t *j, lpq_api_sub_t *sub) {
  for (size_t i = 0; i < j->nsubs; i++)
    if (j->subs[i] == sub) {
      j->subs[i] = j->subs[--j->nsubs];
      return;
    }
}

void notify_watchers(job_t *j) {
  if (!j->nsubs)
    return;
  json_t *p = job_progress_json(j->d, j->id, NULL);
  for (size_t i = 0; p && i < j->nsubs; i++)
    lpq_api_notify(j->subs[i], "job.progress", json_incref(p));
  json_decref(p);
}

/* Ends a job: status and message stored, watchers told, the job forgotten. While the store
** cannot be written the job stays, `ending`, and the retry timer ends it. */
void job_end(job_t *j, lpq_store_job_status_t status, const char *message) {
  daemon_t *d = j->d;
  lpq_error_t err;
  if (lpq_store_job_set_status(d->store, j->id, status, message, &err) != 0) {
    if (store_error_transient(&err) && !d->stopping) {
      if (!j->ending) {
        j->ending = 1;
        j->end_status = status;
        snprintf(j->end_message, sizeof j->end_message, "%s", message);
        lpq_dispatch_cancel_job(d->pool, j->id);
      }
      store_failed(d, &err);
      return;
    }
    daemon_log(d, 0, "job %lld: %s", (long long)j->id, err.msg);
  }
  lpq_store_event_append(d->store, j->id,
                         status == LPQ_STORE_JOB_FAILED ? LPQ_STORE_ERROR : LPQ_STORE_INFO,
                         message, NULL, NULL);
  daemon_log(d, 1, "job %lld %s: %s", (long long)j->id, lpq_store_job_status_name(status),
             message);
  lpq_dispatch_cancel_job(d->pool, j->id);
  /* results of this job still waiting for their transaction are dropped */
  size_t k = 0;
  for (size_t i = 0; i < d->npending; i++)
    if (d->pending[i].job != j)
      d->pending[k++] = d->pending[i];
  d->npending = k;
  notify_watchers(j);
  job_unlink(j);
  job_free(j);
  malloc_trim(0); /* a large job's population goes back to the system, not only to malloc */
}

/* ---- running ---- */

void job_tell(job_t *j, size_t index, const lpq_store_eval_t *e) {
  if (!j->asked || index >= j->batch_count || j->told_flag[index])
    return; /* a result after the deadline cut its generation, or a repeat */
  j->told_flag[index] = 1;
  lpq_eval_result_t r;
  const lpq_layer_formats_t *genome = j->batch + index * j->nl;
  lpq_search_result_from_fields(&j->js, genome, j->nl, e->status, e->l_co, e->l_cr,
                                e->mean_weight_bits, e->latency_s, &r);
  lpq_search_tell(j->search, index, &r, NULL);
  j->told++;
  if (e->status != 0) {
    j->failed_now++;
    if (!j->first_error[0])
      snprintf(j->first_error, sizeof j->first_error, "%s", e->error);
  }
}

void job_task(const job_t *j, const lpq_layer_formats_t *genome, lpq_task_t *t) {
  memset(t, 0, sizeof *t);
  t->job_id = j->id;
  memcpy(t->model_hash, j->js.model, sizeof t->model_hash);
  memcpy(t->data_hash, j->js.data, sizeof t->data_hash);
  memcpy(t->labels_hash, j->js.labels, sizeof t->labels_hash);
  t->settings_json = j->settings_json;
  t->layer_count = j->nl;
  t->layers = genome;
}

static int dispatch_genome(job_t *j, size_t index, uint64_t hash, lpq_error_t *err) {
  lpq_task_t t;
  job_task(j, j->batch + index * j->nl, &t);
  j->refs[index] = (task_ref_t){.job = j, .index = index, .hash = hash};
  uint64_t task_id;
  int rc = lpq_dispatch_submit(j->d->pool, &t, &j->refs[index], &task_id, err);
  if (rc == 0)
    j->dispatched++;
  return rc;
}

/* Looks up (a replay) or dispatches the batch's genomes from next_dispatch on, for at most
** DISPATCH_SLICE_NS, so that a generation of 100000 genomes is spread over many loop iterations
** and nothing else waits for it. 0, or -1 when the job ended. */
#define DISPATCH_SLICE_NS 2000000
static int dispatch_some(job_t *j) {
  uint64_t until = uv_hrtime() + DISPATCH_SLICE_NS;
  lpq_error_t err = {0};
  while (j->next_dispatch < j->batch_count) {
    size_t i = j->next_dispatch++;
    uint64_t h = lpq_genome_hash(j->batch + i * j->nl, j->nl);
    lpq_store_eval_t e;
    int rc = j->replay ? lpq_store_eval_get(j->d->store, j->id, h, &e, &err) : LPQ_ENOTFOUND;
    if (rc == 0) {
      job_tell(j, i, &e); /* replayed from the database */
      j->replayed++;
    } else if (rc != LPQ_ENOTFOUND || dispatch_genome(j, i, h, &err) != 0) {
      job_end(j, LPQ_STORE_JOB_FAILED, err.msg);
      return -1;
    }
    if ((i & 63) == 63 && uv_hrtime() > until)
      break;
  }
  return 0;
}

/* 1 when j has rows to write now (not while the store is failing: its retry timer writes). */
static int rows_waiting(const job_t *j) {
  return j->rows && !j->advancing && !j->ending && !store_paused(j->d);
}

/* An idle handle while a generation is being dispatched, or its rows written: the next slice
** of each such job. */
static void on_feed(uv_idle_t *h) {
  daemon_t *d = h->data;
  int more = 0;
  for (job_t *j = d->jobs, *next; j; j = next) {
    next = j->next; /* job_step and job_write_rows may end j */
    if (rows_waiting(j))
      job_write_rows(j);
    else if (j->asked && j->next_dispatch < j->batch_count && !j->ending)
      job_step(j);
  }
  for (job_t *j = d->jobs; j && !more; j = j->next)
    more = rows_waiting(j) || (j->asked && j->next_dispatch < j->batch_count && !j->ending);
  if (!more)
    uv_idle_stop(h);
}

void jobs_feed_start(daemon_t *d) { uv_idle_start(&d->feed, on_feed); }

void jobs_feed_init(daemon_t *d) {
  uv_idle_init(d->loop, &d->feed);
  d->feed.data = d;
}

void job_step(job_t *j) {
  daemon_t *d = j->d;
  lpq_error_t err = {0};
  if (j->ending || j->gen_unsaved || j->advancing || !j->search)
    return; /* advance.c or the retry timer carries on; no search yet while the sensitivity is
            ** scored */
  while (!d->stopping) {
    if (!j->asked) {
      lpq_search_stop_t why = j->time_up ? LPQ_STOP_TIME : lpq_search_should_stop(j->search);
      if (why == LPQ_STOP_TIME && lpq_search_generation(j->search) == 0) {
        char msg[128];
        snprintf(msg, sizeof msg, "max_seconds (%g s) passed before a generation was scored",
                 j->js.max_seconds);
        job_end(j, LPQ_STORE_JOB_FAILED, msg);
        return;
      }
      if (why != LPQ_STOP_NONE) {
        char msg[128];
        snprintf(msg, sizeof msg, "stopped: %s", lpq_search_stop_name(why));
        if (j->pick_count || pick_start(j, msg) > 0)
          return; /* pick.c ends the job once the validation results are back */
        job_end(j, LPQ_STORE_JOB_DONE, msg);
        return;
      }
      size_t count;
      if (lpq_search_ask(j->search, &j->batch, &count, &err) != 0) {
        job_end(j, LPQ_STORE_JOB_FAILED, err.msg);
        return;
      }
      if (count == 0) {
        job_end(j, LPQ_STORE_JOB_DONE, "stopped: search space exhausted");
        return;
      }
      free(j->refs);
      free(j->told_flag);
      j->refs = calloc(count, sizeof *j->refs);
      j->told_flag = calloc(count, 1);
      if (!j->refs || !j->told_flag) {
        job_end(j, LPQ_STORE_JOB_FAILED, "out of memory");
        return;
      }
      j->asked = 1;
      j->batch_count = count;
      j->told = j->failed_now = j->dispatched = 0;
      j->next_dispatch = j->replayed = 0;
      j->first_error[0] = 0;
    }
    if (j->next_dispatch < j->batch_count) {
      if (dispatch_some(j) != 0)
        return; /* the job ended */
      if (j->next_dispatch < j->batch_count) {
        uv_idle_start(&d->feed, on_feed); /* the rest after the loop's other events */
        return;
      }
      /* an earlier run stored results of the batches it asked for, in order: once a batch
      ** finds none, no later batch can, and the lookups stop */
      if (j->replayed == 0)
        j->replay = 0;
    }
    if (j->told < j->batch_count)
      return; /* results will come */
    int first = lpq_search_generation(j->search) == 0;
    if (first && j->failed_now == j->batch_count) {
      char msg[LPQ_STORE_TEXT_MAX + 64];
      snprintf(msg, sizeof msg, "every genome of the first generation failed: %s",
               j->first_error);
      job_end(j, LPQ_STORE_JOB_FAILED, msg);
      return;
    }
    job_advance(j); /* off the loop; advance.c stores the generation and steps on */
    return;
  }
}

void jobs_on_result(void *ctx, const lpq_dispatch_task_t *task, const lpq_result_t *r) {
  daemon_t *d = ctx;
  task_ref_t *ref = task->user;
  if (!ref || !ref->job)
    return;
  if (ref->sensitivity) {
    sens_on_result(ref->job, ref->index, r); /* not an evaluation of the search */
    return;
  }
  if (ref->pick) {
    pick_on_result(ref->job, ref->index, r); /* top-1 on the validation set */
    return;
  }
  if (d->npending == d->cap_pending) {
    size_t cap = d->cap_pending ? 2 * d->cap_pending : 256;
    pending_t *p = realloc(d->pending, cap * sizeof *p);
    if (!p) {
      daemon_log(d, 0, "out of memory queueing a result of job %lld", (long long)ref->job->id);
      return;
    }
    d->pending = p;
    d->cap_pending = cap;
  }
  pending_t *p = &d->pending[d->npending++];
  memset(p, 0, sizeof *p);
  p->job = ref->job;
  p->index = ref->index;
  lpq_store_eval_t *e = &p->eval;
  e->job = ref->job->id;
  e->genome_hash = ref->hash;
  e->status = r->status;
  snprintf(e->error, sizeof e->error, "%s", r->status ? r->error : "");
  snprintf(e->worker, sizeof e->worker, "%s", r->worker_id);
  e->l_co = r->l_co;
  e->l_co_global = r->l_co_global;
  e->l_co_local = r->l_co_local;
  e->l_cr = r->l_cr;
  e->mean_weight_bits = r->mean_weight_bits;
  e->mean_act_bits = r->mean_act_bits;
  e->top1 = r->top1;
  e->latency_s = r->latency_s;
  e->energy_pj = r->energy_pj;
  e->edp_js = r->edp_js;
  e->eval_ms = r->eval_ms;
}

/* After every loop iteration: the results that arrived, in one transaction, then the search. */
void jobs_flush(uv_check_t *h) {
  daemon_t *d = h->data;
  if (d->npending == 0)
    return;
  if (store_paused(d) && !d->retrying && !d->stopping)
    return; /* the retry timer tries again, not every loop iteration */
  lpq_store_eval_t *evals = malloc(d->npending * sizeof *evals);
  if (!evals)
    return; /* try again next iteration */
  for (size_t i = 0; i < d->npending; i++)
    evals[i] = d->pending[i].eval;
  lpq_error_t err;
  int rc = lpq_store_eval_commit(d->store, evals, d->npending, NULL, &err);
  free(evals);
  if (rc != 0) {
    /* nothing is lost: the results stay queued and the search waits (e.g. a full disk) */
    if (d->stopping)
      daemon_log(d, 0, "%s (%zu results not stored; they are evaluated again after the "
                 "restart)", err.msg, d->npending);
    else
      store_failed(d, &err);
    return;
  }
  size_t n = d->npending;
  pending_t *batch = d->pending;
  d->pending = NULL;
  d->npending = d->cap_pending = 0;
  for (size_t i = 0; i < n; i++)
    job_tell(batch[i].job, batch[i].index, &batch[i].eval);
  /* step each job with a complete generation (a job may end inside job_step: check it is
  ** still active before touching it) */
  for (size_t i = 0; i < n; i++) {
    job_t *j = batch[i].job;
    int alive = 0;
    for (job_t *x = d->jobs; x && !alive; x = x->next)
      alive = x == j;
    if (alive && j->asked && j->told == j->batch_count)
      job_step(j);
  }
  free(batch);
}

void job_forget(job_t *j) {
  job_unlink(j);
  job_free(j);
}

int job_start(daemon_t *d, int64_t id, lpq_error_t *err) {
  if (job_find(d, id))
    return 0;
  lpq_store_job_t sj;
  int rc = lpq_store_job_get(d->store, id, &sj, err);
  if (rc != 0)
    return rc;
  job_t *j = calloc(1, sizeof *j);
  if (!j) {
    lpq_store_job_clear(&sj);
    return lpq_errorf(err, LPQ_ENOMEM, "out of memory");
  }
  j->d = d;
  j->id = id;
  snprintf(j->name, sizeof j->name, "%s", sj.name);
  j->replay = sj.evaluations_stored > 0 || sj.generation >= 0;
  rc = lpq_job_settings_parse(sj.settings, &j->js, err);
  lpq_store_job_clear(&sj);
  if (rc == 0 && !(j->settings_json = lpq_job_settings_json(&j->js)))
    rc = lpq_errorf(err, LPQ_ENOMEM, "out of memory");
  if (rc == 0 && (rc = lpq_store_blob_path(d->store, j->js.model, &j->model_path, err)) == 0)
    rc = lpq_store_blob_path(d->store, j->js.data, &j->data_path, err);
  if (rc == 0 && j->js.val_data[0])
    rc = lpq_store_blob_path(d->store, j->js.val_data, &j->val_path, err);
  if (rc != 0) {
    lpq_store_job_set_status(d->store, id, LPQ_STORE_JOB_FAILED, err->msg, NULL);
    free(j->model_path);
    free(j->data_path);
    job_free(j);
    return rc;
  }
  j->next = d->jobs;
  d->jobs = j;
  if (j->js.max_seconds > 0) {
    j->deadline_ms = uv_hrtime() / 1000000 + (uint64_t)(j->js.max_seconds * 1000.0);
    deadline_arm(d);
  }
  job_prepare(j);
  return 0;
}

int job_cancel(daemon_t *d, int64_t id, lpq_error_t *err) {
  int rc = lpq_store_job_request_cancel(d->store, id, err);
  if (rc != 0)
    return rc;
  job_t *j = job_find(d, id);
  if (j && (j->preparing || j->advancing)) {
    j->cancel = 1; /* prep_done or advance_done ends it */
    return 0;
  }
  if (j)
    job_end(j, LPQ_STORE_JOB_CANCELED, "canceled");
  else
    rc = lpq_store_job_set_status(d->store, id, LPQ_STORE_JOB_CANCELED, "canceled", err);
  return rc;
}

int jobs_resume(daemon_t *d, lpq_error_t *err) {
  lpq_store_job_t *list = NULL;
  size_t n = 0;
  int rc = lpq_store_job_list(d->store, LPQ_STORE_JOBS_UNFINISHED, &list, &n, err);
  for (size_t i = 0; rc == 0 && i < n; i++) {
    if (list[i].cancel_requested) {
      lpq_store_job_set_status(d->store, list[i].id, LPQ_STORE_JOB_CANCELED, "canceled", NULL);
      continue;
    }
    lpq_error_t jerr;
    if (job_start(d, list[i].id, &jerr) != 0)
      daemon_log(d, 0, "job %lld cannot resume: %s", (long long)list[i].id, jerr.msg);
    else
      daemon_log(d, 1, "job %lld resumes", (long long)list[i].id);
  }
  lpq_store_job_list_free(&list, n);
  return rc;
}

void jobs_free_all(daemon_t *d) {
  while (d->jobs) {
    job_t *j = d->jobs;
    d->jobs = j->next;
    job_free(j);
  }
  free(d->pending);
  d->pending = NULL;
  d->npending = d->cap_pending = 0;
  for (size_t i = 0; i < DAEMON_BEST_CACHE; i++) {
    json_decref(d->best_cache[i].row);
    json_decref(d->best_cache[i].best);
  }
  memset(d->best_cache, 0, sizeof d->best_cache);
}
