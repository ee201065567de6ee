/* coordinator/daemon/prepare.c: a job's preparation on libuv's work queue: the model and
** calibration batch loaded, the layer names and sf seeds, and the search built with its first
** batch (a population of 100000 takes a while); the loop only starts what comes back. With a
** sensitivity run the search is built after it, on the work queue too. */
#include "coordinator/daemon/daemon.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The job's search space and settings from its settings and seeds (with the stored
** sensitivity, read on the loop, when the job has one). */
static int search_settings(job_t *j, lpq_error_t *err) {
  int rc = lpq_search_from_job(&j->js, j->nl, j->seeds, j->seeds + j->nl, j->specs, &j->space,
                               &j->set, err);
  if (rc == 0 && j->js.sensitivity)
    sens_fill_specs(j, j->specs, &j->set);
  return rc;
}

/* The search and its first batch, on the work queue: a large population takes a while, and the
** loop serves the API and the pool meanwhile. It goes to j->built; the loop makes it j->search
** when the work is back (job.get reads j->search meanwhile). */
static int search_make(job_t *j, lpq_error_t *err) {
  if (j->js.max_seconds > 0) /* the preparation (and sensitivity) counted already */
    j->set.max_seconds = fmax(deadline_left_s(j), 1e-3);
  const lpq_layer_formats_t *genomes;
  size_t count;
  if (!(j->built = lpq_search_new(&j->space, &j->set, err)))
    return err->code ? err->code : LPQ_ENOMEM;
  return lpq_search_ask(j->built, &genomes, &count, err);
}

/* Off the loop: the model and calibration batch, the layer names and the sf seeds. */
static void prep_work(uv_work_t *w) {
  job_t *j = w->data;
  lpq_error_t *err = &j->prep_err;
  lpq_array_t *x = NULL;
  lpq_graph_t *g = NULL;
  int rc = lpq_load_inputs(j->data_path, j->js.norm_mean, j->js.norm_std, &x, err);
  if (rc != 0)
    lpq_error_prefix(err, "data: ");
  size_t n = x ? (size_t)x->shape[0] : 0, ncal = n < j->js.calib ? n : j->js.calib;
  if (rc == 0 && ncal < 2)
    rc = lpq_errorf(err, LPQ_EINVAL, "data: %zu samples; the contrastive loss needs 2", n);
  if (rc == 0 && !(g = lpq_graph_load(j->model_path, (int)ncal, err)))
    rc = err->code;
  if (rc == 0) {
    lpq_tensor_info_t in;
    lpq_graph_input(g, 0, &in);
    if (lpq_graph_num_inputs(g) != 1 || x->count / n * ncal != in.count)
      rc = lpq_errorf(err, LPQ_EFORMAT, "data: samples of %zu values do not fit the model's "
                      "input (%zu values per sample)", x->count / n, in.count / ncal);
  }
  if (rc == 0 && (j->nl = lpq_graph_num_layers(g)) == 0)
    rc = lpq_errorf(err, LPQ_EUNSUP, "the model has no quantizable layer (Conv, Gemm, MatMul "
                    "with a constant weight)");
  if (rc == 0) {
    j->seeds = calloc(2 * j->nl, sizeof *j->seeds);
    j->layer_names = calloc(j->nl, sizeof *j->layer_names);
    j->weight_counts = calloc(j->nl, sizeof *j->weight_counts);
    j->specs = calloc(j->nl, sizeof *j->specs);
    if (!j->seeds || !j->layer_names || !j->weight_counts || !j->specs)
      rc = lpq_errorf(err, LPQ_ENOMEM, "out of memory");
  }
  for (size_t i = 0; rc == 0 && i < j->nl; i++) {
    j->weight_counts[i] = lpq_graph_layer(g, i)->weight_count;
    if (!(j->layer_names[i] = strdup(lpq_graph_layer(g, i)->name)))
      rc = lpq_errorf(err, LPQ_ENOMEM, "out of memory");
  }
  if (rc == 0)
    rc = lpq_graph_sf_seeds(g, x->data, j->seeds, j->js.weight_only ? NULL : j->seeds + j->nl,
                            err);
  lpq_array_t *v = NULL;
  if (rc == 0 && j->val_path) { /* checked at submit; only its size is needed here */
    if ((rc = lpq_load_array(j->val_path, &v, err)) != 0)
      lpq_error_prefix(err, "val_data: ");
    else
      j->val_samples = (size_t)v->shape[0];
    lpq_array_free(&v);
  }
  lpq_graph_free(&g);
  lpq_array_free(&x);
  /* without sensitivity the search is built here, so bad settings fail the job before it runs */
  if (rc == 0 && !j->js.sensitivity && (rc = search_settings(j, err)) == 0)
    rc = search_make(j, err);
  j->prep_rc = rc;
}

static void build_work(uv_work_t *w) {
  job_t *j = w->data;
  j->prep_rc = search_make(j, &j->prep_err);
}

/* A job that was canceled, or a daemon stopping, while j was on the work queue: 1 (then j is
** gone), else 0. */
static int gone_while_queued(job_t *j, int status) {
  j->preparing = 0;
  if (j->built && !j->search) {
    j->search = j->built; /* on the loop now: freed with the job */
    j->built = NULL;
  }
  if (!j->cancel && !j->d->stopping && status != UV_ECANCELED)
    return 0;
  if (j->cancel)
    job_end(j, LPQ_STORE_JOB_CANCELED, "canceled");
  else
    job_forget(j);
  return 1;
}

static void build_done(uv_work_t *w, int status) {
  job_t *j = w->data;
  if (gone_while_queued(j, status))
    return;
  if (j->prep_rc != 0) {
    job_end(j, LPQ_STORE_JOB_FAILED, j->prep_err.msg);
    return;
  }
  daemon_log(j->d, 2, "job %lld running: %zu layers", (long long)j->id, j->nl);
  notify_watchers(j);
  job_step(j);
}

void job_begin_search(job_t *j) {
  lpq_error_t err;
  if (search_settings(j, &err) != 0) {
    job_end(j, LPQ_STORE_JOB_FAILED, err.msg);
    return;
  }
  j->preparing = 1;
  j->prep.data = j;
  uv_queue_work(j->d->loop, &j->prep, build_work, build_done);
}

static void prep_done(uv_work_t *w, int status) {
  job_t *j = w->data;
  daemon_t *d = j->d;
  free(j->model_path);
  free(j->data_path);
  j->model_path = j->data_path = NULL;
  if (gone_while_queued(j, status))
    return;
  if (j->prep_rc != 0) {
    job_end(j, LPQ_STORE_JOB_FAILED, j->prep_err.msg);
    return;
  }
  lpq_error_t err;
  if (lpq_store_job_set_status(d->store, j->id, LPQ_STORE_JOB_RUNNING, "", &err) != 0) {
    if (!store_error_transient(&err)) {
      job_end(j, LPQ_STORE_JOB_FAILED, err.msg);
      return;
    }
    store_failed(d, &err); /* it runs, paused at its first commit until the store recovers */
  }
  int sens = j->js.sensitivity ? sens_start(j) : 0;
  if (sens < 0) {
    job_end(j, LPQ_STORE_JOB_FAILED, "out of memory");
    return;
  }
  if (sens > 0) {
    notify_watchers(j); /* sensitivity.c begins the search when the last result is in */
    return;
  }
  if (j->js.sensitivity) {
    job_begin_search(j);
    return;
  }
  daemon_log(d, 2, "job %lld running: %zu layers", (long long)j->id, j->nl);
  notify_watchers(j);
  job_step(j);
}

void job_prepare(job_t *j) {
  j->preparing = 1;
  j->prep.data = j;
  uv_queue_work(j->d->loop, &j->prep, prep_work, prep_done);
}
