/* worker/daemon/eval_real.c: the real evaluation behind lpq-worker: a task's candidate scored by
** the scoring core (quantized pass, contrastive loss) and costed on the LPA (accel_sim).
** Models and calibration batches are loaded once per (model, data, labels, calib, norm,
** temperature) and kept (a few at most), with their FP reference passes and weight caches, so
** a job's thousands of tasks pay the set-up once per worker. */
#include "worker/daemon/worker_daemon.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MODELS_KEPT 4

typedef struct loaded_t {
  char key[512];
  int ready, failed;      /* set under the lock; waiters sleep on the cond */
  lpq_error_t err;        /* why loading failed */
  unsigned users;
  uint64_t last_use;
  lpq_graph_t *g;
  lpq_scorer_t *scorer;
  lpq_candidate_ctx_t *cand;
  lpq_array_t *all;     /* settings.eval "top1": every sample of data, and its labels */
  int64_t *all_labels;
} loaded_t;

typedef struct real_ctx_t {
  pthread_mutex_t mu;
  pthread_cond_t cond;
  loaded_t *slot[MODELS_KEPT];
  uint64_t clock;
  long cut_mb; /* --cut-cache-mb: each loaded model's cut cache (0: off, -1: the default) */
} real_ctx_t;

static void loaded_free(loaded_t *l) {
  if (!l)
    return;
  lpq_candidate_ctx_free(&l->cand);
  lpq_array_free(&l->all);
  free(l->all_labels);
  lpq_scorer_free(&l->scorer);
  lpq_graph_free(&l->g);
  free(l);
}

/* Loads graph, calibration batch and scorer for a key (outside the lock). */
static int load(loaded_t *l, const lpq_job_settings_t *js, const char *model_path,
                const char *data_path, const char *labels_path, long cut_mb, lpq_error_t *err) {
  lpq_array_t *x = NULL, *lab = NULL;
  int64_t *labels = NULL;
  int rc = lpq_load_inputs(data_path, js->norm_mean, js->norm_std, &x, err);
  if (rc != 0)
    lpq_error_prefix(err, "data blob: ");
  size_t n = x ? (size_t)x->shape[0] : 0, ncal = n < js->calib ? n : js->calib;
  if (rc == 0 && ncal < 2)
    rc = lpq_errorf(err, LPQ_EINVAL, "data blob: %zu samples; the contrastive loss needs 2", n);
  if (rc == 0 && !(l->g = lpq_graph_load(model_path, (int)ncal, err)))
    rc = err->code;
  size_t nlab = js->eval_top1 ? n : ncal; /* top-1 over every sample needs every label */
  if (rc == 0 && js->eval_top1 && !labels_path)
    rc = lpq_errorf(err, LPQ_EINVAL, "a top-1 task without labels");
  if (rc == 0 && labels_path) {
    rc = lpq_load_array(labels_path, &lab, err);
    if (rc == 0 && (lab->ndim != 1 || (size_t)lab->shape[0] < nlab ||
                    (lab->dtype != LPQ_DT_I64 && lab->dtype != LPQ_DT_U8)))
      rc = lpq_errorf(err, LPQ_EFORMAT, "labels blob: expected %zu or more int64 or uint8 labels",
                      nlab);
    if (rc == 0 && !(labels = malloc(nlab * sizeof *labels)))
      rc = lpq_errorf(err, LPQ_ENOMEM, "out of memory");
    for (size_t i = 0; rc == 0 && i < nlab; i++)
      labels[i] = lab->dtype == LPQ_DT_I64 ? ((const int64_t *)lab->data)[i]
                                           : ((const uint8_t *)lab->data)[i];
  }
  if (rc == 0) {
    lpq_tensor_info_t in;
    lpq_graph_input(l->g, 0, &in);
    if (x->count / n * ncal != in.count)
      rc = lpq_errorf(err, LPQ_EFORMAT, "data blob: samples of %zu values do not fit the model's "
                      "input '%s' (%zu values per sample)", x->count / n, in.name,
                      in.count / ncal);
  }
  lpq_score_opts_t so = {.temperature = js->temperature, .lambda = js->lambda,
                         .bias_correction = js->bias_correction, .no_cuts = cut_mb == 0,
                         .cut_bytes = cut_mb > 0 ? (size_t)cut_mb << 20 : 0,
                         .local = (lpq_local_mode_t)js->local_terms, .local_dim = js->local_dim};
  if (rc == 0 && !(l->scorer = lpq_scorer_new(l->g, x->data, labels, &so, err)))
    rc = err->code;
  if (rc == 0 && !(l->cand = lpq_candidate_ctx_new(l->g, l->scorer, err)))
    rc = err->code;
  if (rc == 0 && js->eval_top1) { /* kept for the top-1 over all of data */
    l->all = x;
    l->all_labels = labels;
    x = NULL;
    labels = NULL;
  }
  lpq_array_free(&x);
  lpq_array_free(&lab);
  free(labels);
  return rc;
}

/* The loaded model for a key, pinned (users++); loads it when absent. */
static loaded_t *acquire(real_ctx_t *c, const char *key, const lpq_job_settings_t *js,
                         const char *model_path, const char *data_path, const char *labels_path,
                         lpq_error_t *err) {
  pthread_mutex_lock(&c->mu);
  loaded_t *l = NULL;
  for (int i = 0; i < MODELS_KEPT && !l; i++)
    if (c->slot[i] && strcmp(c->slot[i]->key, key) == 0)
      l = c->slot[i];
  if (l) {
    l->users++;
    while (!l->ready)
      pthread_cond_wait(&c->cond, &c->mu);
  } else {
    /* a free slot, or the least recently used one nobody holds */
    int victim = -1;
    for (int i = 0; i < MODELS_KEPT && victim < 0; i++)
      if (!c->slot[i])
        victim = i;
    int have_free = victim >= 0;
    for (int i = 0; i < MODELS_KEPT && !have_free; i++)
      if (c->slot[i]->users == 0 && c->slot[i]->ready &&
          (victim < 0 || c->slot[i]->last_use < c->slot[victim]->last_use))
        victim = i;
    l = calloc(1, sizeof *l);
    if (!l || victim < 0) {
      pthread_mutex_unlock(&c->mu);
      free(l);
      lpq_errorf(err, victim < 0 ? LPQ_ESTATE : LPQ_ENOMEM,
                 "worker: every model slot is busy (%d models at once)", MODELS_KEPT);
      return NULL;
    }
    loaded_free(c->slot[victim]);
    snprintf(l->key, sizeof l->key, "%s", key);
    l->users = 1;
    c->slot[victim] = l;
    pthread_mutex_unlock(&c->mu);
    int rc = load(l, js, model_path, data_path, labels_path, c->cut_mb, &l->err);
    pthread_mutex_lock(&c->mu);
    l->failed = rc != 0;
    l->ready = 1;
    pthread_cond_broadcast(&c->cond);
  }
  l->last_use = ++c->clock;
  if (l->failed) {
    if (err)
      *err = l->err;
    l->users--;
    pthread_mutex_unlock(&c->mu);
    return NULL;
  }
  pthread_mutex_unlock(&c->mu);
  return l;
}

static void release(real_ctx_t *c, loaded_t *l) {
  pthread_mutex_lock(&c->mu);
  l->users--;
  pthread_mutex_unlock(&c->mu);
}

static int real_eval(void *ctx, const lpq_task_t *task, const char *model_path,
                     const char *data_path, const char *labels_path, lpq_result_t *out,
                     lpq_error_t *err) {
  real_ctx_t *c = ctx;
  if (!model_path || !data_path)
    return lpq_errorf(err, LPQ_EINVAL, "task %llu names no model or no data",
                      (unsigned long long)task->task_id);
  lpq_job_settings_t js;
  int rc = lpq_job_settings_parse(task->settings_json, &js, err);
  if (rc != 0)
    return rc;
  char key[512];
  snprintf(key, sizeof key, "%s|%s|%s|%zu|%.17g|%.17g|%.17g|%.17g|%d|%d|%d|%zu",
           task->model_hash, task->data_hash, task->labels_hash, js.calib, js.norm_mean,
           js.norm_std, js.temperature, js.lambda, js.bias_correction, js.eval_top1,
           js.local_terms, js.local_dim);
  loaded_t *l = acquire(c, key, &js, model_path, data_path, labels_path, err);
  if (!l)
    return err ? err->code : LPQ_ENOMEM;
  size_t nl = lpq_graph_num_layers(l->g);
  lpq_numfmt_t *w = NULL;
  if (task->layer_count != nl) {
    rc = lpq_errorf(err, LPQ_EINVAL, "task genome has %zu layers; the model has %zu",
                    task->layer_count, nl);
    goto done;
  }
  if (!(w = calloc(2 * (nl ? nl : 1), sizeof *w))) {
    rc = lpq_errorf(err, LPQ_ENOMEM, "out of memory");
    goto done;
  }
  for (size_t i = 0; i < nl; i++) {
    lpq_error_t ferr;
    if ((task->layers[i].weight.n && lp_format_validate(&task->layers[i].weight, &ferr) != 0) ||
        (task->layers[i].act.n && lp_format_validate(&task->layers[i].act, &ferr) != 0)) {
      rc = lpq_errorf(err, ferr.code, "task layer %zu: %s", i, ferr.msg);
      goto done;
    }
    lpq_layer_formats_numfmt(&task->layers[i], &w[i], &w[nl + i]);
  }
  if (js.eval_top1) { /* a validation task: the genome's top-1 over every sample of data */
    double top1 = NAN;
    size_t n = (size_t)l->all->shape[0];
    if ((rc = lpq_scorer_accuracy(l->scorer, w, w + nl, l->all->data, l->all_labels, n, NULL,
                                  &top1, err)) != 0)
      goto done;
    out->status = 0;
    out->top1 = top1; /* the rest stays as lpq_result_init left it */
    goto done;
  }
  lpq_candidate_result_t cr;
  if ((rc = lpq_candidate_eval(l->cand, w, w + nl, js.objective, &cr, err)) != 0)
    goto done;
  out->status = 0;
  out->l_co = cr.score.l_co;
  out->l_co_global = cr.score.l_global;
  out->l_co_local = cr.score.l_local;
  out->l_cr = cr.l_cr;
  out->mean_weight_bits = cr.score.mean_w_bits;
  out->mean_act_bits = cr.score.mean_a_bits;
  out->top1 = cr.score.top1 >= 0 ? cr.score.top1 : NAN;
  out->latency_s = cr.latency_s;
  out->energy_pj = cr.energy_pj;
  out->edp_js = cr.edp_js;
  out->eval_ms = cr.score.eval_ms;
done:
  free(w);
  release(c, l);
  return rc;
}

static void real_free(void *ctx) {
  real_ctx_t *c = ctx;
  for (int i = 0; i < MODELS_KEPT; i++)
    loaded_free(c->slot[i]);
  pthread_mutex_destroy(&c->mu);
  pthread_cond_destroy(&c->cond);
  free(c);
}

int lpq_eval_real_create(const char *arg, lpq_worker_evaluator_t *out, lpq_error_t *err) {
  char *end = NULL;
  long cut_mb = arg ? strtol(arg, &end, 10) : -1;
  if (arg && (end == arg || *end != '\0' || cut_mb < 0 || cut_mb > 1 << 20))
    return lpq_errorf(err, LPQ_EINVAL, "--cut-cache-mb '%s': expected MiB 0..1048576", arg);
  real_ctx_t *c = calloc(1, sizeof *c);
  if (!c)
    return lpq_errorf(err, LPQ_ENOMEM, "out of memory");
  c->cut_mb = cut_mb;
  pthread_mutex_init(&c->mu, NULL);
  pthread_cond_init(&c->cond, NULL);
  /* one BLAS thread per evaluation: the worker's threads run evaluations side by side, and the
  ** numbers stay the same whatever the thread count */
  lpq_blas_single_thread();
  out->name = "real";
  out->eval = real_eval;
  out->ctx = c;
  out->free_ctx = real_free;
  return 0;
}
