/* worker/score.c: scoring a candidate (DESIGN section 2): the quantized forward pass through the
** graph's hooks, the global-local contrastive loss against the cached FP reference, the
** compression term and the scalar fitness. */
#include "worker/worker_internal.h"
#include "worker/worker.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return 1e3 * (double)ts.tv_sec + 1e-6 * (double)ts.tv_nsec;
}

static lpq_exec_t *exec_get(lpq_scorer_t *s, lpq_error_t *err) {
  pthread_mutex_lock(&s->pool_mu);
  lpq_exec_t *x = s->npool ? s->pool[--s->npool] : NULL;
  pthread_mutex_unlock(&s->pool_mu);
  return x ? x : lpq_exec_new(s->g, err);
}

/* An evaluation's work space (normalised layer output, B x B similarities, logits), kept for
** the next one: a fresh 10+ MB allocation per candidate costs its page faults every time. */
static size_t work_floats(const lpq_scorer_t *s) {
  return s->batch * (s->max_dim > s->classes ? s->max_dim : s->classes) + s->batch * s->batch +
         s->out_count;
}

static float *work_get(lpq_scorer_t *s) {
  pthread_mutex_lock(&s->pool_mu);
  float *w = s->nwork ? s->work[--s->nwork] : NULL;
  pthread_mutex_unlock(&s->pool_mu);
  return w ? w : malloc(work_floats(s) * sizeof *w);
}

static void work_put(lpq_scorer_t *s, float *w) {
  pthread_mutex_lock(&s->pool_mu);
  if (w && s->nwork < LPQ__EXEC_POOL_MAX) {
    s->work[s->nwork++] = w;
    w = NULL;
  }
  pthread_mutex_unlock(&s->pool_mu);
  free(w);
}

static void exec_put(lpq_scorer_t *s, lpq_exec_t *x) {
  pthread_mutex_lock(&s->pool_mu);
  if (s->npool < LPQ__EXEC_POOL_MAX) {
    s->pool[s->npool++] = x;
    x = NULL;
  }
  pthread_mutex_unlock(&s->pool_mu);
  lpq_exec_free(&x);
}

static size_t argmax_row(const float *row, size_t n) {
  size_t best = 0;
  for (size_t i = 1; i < n; i++)
    if (row[i] > row[best])
      best = i;
  return best;
}

/* ---- the FP reference pass ---- */

/* Hooks report into their own error: the engine replaces the run's message with its own
** ("the output hook of layer 3 failed"), so the hook's reason is copied back afterwards. */
typedef struct ref_pass_t {
  lpq_scorer_t *s;
  lpq_error_t *err;
  lpq_error_t hook_err;
} ref_pass_t;

static int hook_failed(int rc, const lpq_error_t *hook_err, lpq_error_t *err) {
  if (rc != 0 && hook_err->code != 0 && err)
    *err = *hook_err;
  return rc;
}

static int ref_input(void *user, size_t layer, float *x, size_t count) {
  ref_pass_t *rp = user;
  lpq__layer_ref_t *r = &rp->s->ref[layer];
  if (!(r->in_sample = lpq_act_sample(x, count, &r->in_count)))
    return lpq_errorf(rp->err, LPQ_ENOMEM, "scorer: out of memory");
  r->in_total = count;
  if (rp->s->opts.bias_correction) {
    size_t channels;
    const lpq_layer_t *L = lpq_graph_layer(rp->s->g, layer);
    if (!(r->in_mean = lpq__bias_input_means(L, x, count, &channels)))
      return lpq_errorf(rp->err, LPQ_ENOMEM, "scorer: layer %zu (%s): no input means for bias "
                        "correction (out of memory, or %zu inputs do not fit its shape)", layer,
                        L->name, count);
  }
  return 0;
}

static int ref_output(void *user, size_t layer, const float *y, size_t count) {
  ref_pass_t *rp = user;
  lpq_scorer_t *s = rp->s;
  lpq__layer_ref_t *r = &s->ref[layer];
  if (count % s->batch != 0)
    return lpq_errorf(rp->err, LPQ_EFORMAT, "scorer: layer %zu output (%zu values) does not split "
                      "into %zu samples", layer, count, s->batch);
  int rc = lpq__local_setup(s, layer, count / s->batch, rp->err);
  if (rc != 0)
    return rc;
  if (!(r->out_norm = malloc(s->batch * r->rdim * sizeof *r->out_norm)))
    return lpq_errorf(rp->err, LPQ_ENOMEM, "scorer: out of memory for layer %zu outputs", layer);
  return lpq__local_rows(s, layer, y, r->out_norm, rp->err); /* the FP side, once */
}

static const float *ref_weight(void *user, size_t layer, const float *w, size_t count) {
  (void)user, (void)layer, (void)count;
  return w;
}

lpq_scorer_t *lpq_scorer_new(const lpq_graph_t *g, const float *calib, const int64_t *labels,
                             const lpq_score_opts_t *opts, lpq_error_t *err) {
  if (!g || !calib) {
    lpq_errorf(err, LPQ_EINVAL, "scorer: NULL graph or data");
    return NULL;
  }
  lpq_tensor_info_t in, out;
  if (lpq_graph_num_inputs(g) != 1 || lpq_graph_num_outputs(g) != 1 ||
      lpq_graph_input(g, 0, &in) != 0 || lpq_graph_output(g, 0, &out) != 0 ||
      in.dtype != LPQ_DT_F32 || out.dtype != LPQ_DT_F32) {
    lpq_errorf(err, LPQ_EUNSUP, "scorer: the model must have one float input and one float output");
    return NULL;
  }
  if (opts && !lpq_local_mode_name(opts->local)) {
    lpq_errorf(err, LPQ_EINVAL, "scorer: local terms mode %d is unknown", (int)opts->local);
    return NULL;
  }
  lpq_scorer_t *s = calloc(1, sizeof *s);
  if (!s) {
    lpq_errorf(err, LPQ_ENOMEM, "scorer: out of memory");
    return NULL;
  }
  s->g = g;
  if (opts)
    s->opts = *opts;
  if (s->opts.temperature <= 0)
    s->opts.temperature = 0.5;
  if (s->opts.lambda == 0)
    s->opts.lambda = 1.0;
  if (s->opts.cache_bytes == 0)
    s->opts.cache_bytes = (size_t)256 << 20;
  pthread_mutex_init(&s->pool_mu, NULL);
  s->batch = (size_t)lpq_graph_batch(g);
  s->nlayers = lpq_graph_num_layers(g);
  s->in_count = in.count;
  s->out_count = out.count;
  s->classes = s->batch ? out.count / s->batch : 0;
  if (s->opts.prefix_bytes == 0)
    s->opts.prefix_bytes = (size_t)4 << 20;
  if (lpq__qcache_init(&s->cache, s->opts.cache_bytes) != 0 || lpq__cuts_init(s) != 0 ||
      (!s->opts.no_cache && !s->opts.no_prefix && lpq__prefix_init(&s->prefix, s->opts.prefix_bytes) != 0) ||
      !(s->ref = calloc(s->nlayers ? s->nlayers : 1, sizeof *s->ref)) ||
      !(s->out_fp = malloc(out.count * sizeof *s->out_fp)) ||
      !(s->calib = malloc(in.count * sizeof *s->calib)) ||
      !(s->out_norm = malloc(out.count * sizeof *s->out_norm))) {
    lpq_errorf(err, LPQ_ENOMEM, "scorer: out of memory");
    goto fail;
  }
  if (s->batch < 2) {
    lpq_errorf(err, LPQ_EINVAL, "scorer: the contrastive loss needs a batch of at least 2 samples");
    goto fail;
  }
  memcpy(s->calib, calib, in.count * sizeof *calib);
  /* the FP reference pass, once */
  lpq_exec_t *x = exec_get(s, err);
  if (!x)
    goto fail;
  ref_pass_t rp = {s, NULL, {0}};
  rp.err = &rp.hook_err;
  lpq_hooks_t hooks = {&rp, ref_weight, ref_input, ref_output, NULL, NULL};
  int rc = hook_failed(lpq_exec_run(x, calib, s->out_fp, &hooks, err), &rp.hook_err, err);
  exec_put(s, x);
  if (rc != 0)
    goto fail;
  for (size_t i = 0; i < out.count; i++)
    if (!isfinite(s->out_fp[i])) {
      lpq_errorf(err, LPQ_ENAN, "scorer: the FP model's output %zu of sample %zu is %s",
                 i % s->classes, i / s->classes, lpq_nonfinite_name(s->out_fp[i]));
      goto fail;
    }
  memcpy(s->out_norm, s->out_fp, out.count * sizeof *s->out_fp);
  if (lpq_normalize_rows(s->out_norm, s->batch, s->classes, err) != 0)
    goto fail;
  float *scratch = malloc(s->batch * s->batch * sizeof *scratch);
  if (!scratch) {
    lpq_errorf(err, LPQ_ENOMEM, "scorer: out of memory");
    goto fail;
  }
  s->self_global = lpq_infonce_normalized(s->out_norm, s->out_norm, s->batch, s->classes,
                                          s->opts.temperature, scratch);
  double sum = 0;
  for (size_t l = 0; l < s->nlayers; l++) {
    lpq__layer_ref_t *r = &s->ref[l];
    if (!r->out_norm) {
      free(scratch);
      lpq_errorf(err, LPQ_ESTATE, "scorer: layer %zu did not run in the FP pass", l);
      goto fail;
    }
    r->self_loss = lpq_infonce_normalized(r->out_norm, r->out_norm, s->batch, r->rdim,
                                          s->opts.temperature, scratch);
    sum += r->self_loss;
    if (r->dim > s->max_dim)
      s->max_dim = r->dim;
  }
  free(scratch);
  s->self_local = s->nlayers ? sum / (double)s->nlayers : 0.0;
  s->top1_fp = -1;
  if (labels) {
    s->labels = malloc(s->batch * sizeof *s->labels);
    if (!s->labels) {
      lpq_errorf(err, LPQ_ENOMEM, "scorer: out of memory");
      goto fail;
    }
    memcpy(s->labels, labels, s->batch * sizeof *labels);
    size_t hit = 0;
    for (size_t i = 0; i < s->batch; i++)
      hit += (int64_t)argmax_row(s->out_fp + i * s->classes, s->classes) == labels[i];
    s->top1_fp = (double)hit / (double)s->batch;
  }
  return s;
fail:
  lpq_scorer_free(&s);
  return NULL;
}

void lpq_scorer_free(lpq_scorer_t **sp) {
  if (!sp || !*sp)
    return;
  lpq_scorer_t *s = *sp;
  for (size_t l = 0; s->ref && l < s->nlayers; l++) {
    free(s->ref[l].out_norm);
    free(s->ref[l].in_sample);
    free(s->ref[l].in_mean);
    free(s->ref[l].sign);
  }
  free(s->ref);
  free(s->out_fp);
  free(s->out_norm);
  free(s->calib);
  free(s->labels);
  for (size_t i = 0; i < s->npool; i++)
    lpq_exec_free(&s->pool[i]);
  for (size_t i = 0; i < s->nwork; i++)
    free(s->work[i]);
  lpq__qcache_destroy(&s->cache);
  lpq__prefix_destroy(&s->prefix);
  lpq__cuts_destroy(s);
  pthread_mutex_destroy(&s->pool_mu);
  free(s);
  *sp = NULL;
}

double lpq_scorer_self_contrast(const lpq_scorer_t *s) {
  return s->self_global + (s->opts.no_local ? 0.0 : s->self_local);
}

/* ---- one evaluation ---- */

typedef struct eval_t {
  lpq_scorer_t *s;
  lpq_error_t *err;
  qentry_t **wq;       /* per layer: quantized weights or NULL (fp32) */
  qentry_t **aq;       /* per layer: activation quantizer or NULL (fp32) */
  double *local;       /* per layer InfoNCE */
  uint64_t *prefix;    /* per layer: the hash of layers 0..l's formats (two words) */
  unsigned char *held; /* per layer: local[l] came from the prefix cache or a cut */
  lpq_numfmt_t *rw, *ra; /* per layer: the resolved formats */
  qentry_t *cut;       /* the cut this pass resumes at (pinned), or NULL */
  size_t resume;       /* its layer (0: the whole pass) */
  const lpq_exec_t *x; /* the context running the pass (cuts are saved from it) */
  int on_calib;        /* the pass runs on the calibration batch: cuts found and saved (never
                          for lpq_scorer_predict's data: its tensors are another input's) */
  float *buf, *scratch;
  int want_local;
  size_t pending;      /* layer + 1 whose output is the next layer's input, reduced as that is
                          quantized (lpq__local_term); 0: none */
  lpq_error_t hook_err;
} eval_t;

static const float *eval_weight(void *user, size_t layer, const float *w, size_t count) {
  eval_t *ev = user;
  (void)count;
  return ev->wq[layer] ? ev->wq[layer]->data : w;
}

static const float *eval_bias(void *user, size_t layer, size_t channels) {
  eval_t *ev = user;
  (void)channels;
  if (!ev->s->opts.bias_correction || !ev->wq[layer])
    return NULL;
  return ev->wq[layer]->data + lpq_graph_layer(ev->s->g, layer)->weight_count;
}

/* The layer's input quantized into dst (1), or taken as it is for an fp32 layer (0). */
static int eval_input(void *user, size_t layer, const float *x, float *dst, size_t count) {
  eval_t *ev = user;
  int done = 0;
  if (ev->pending) { /* x is layer pending - 1's output: one pass for its rows and for dst */
    size_t l = ev->pending - 1;
    ev->pending = 0;
    if (lpq__local_term(ev->s, l, x, ev->aq[layer]->q, dst, ev->buf, ev->scratch, &ev->local[l],
                        &ev->hook_err) != 0)
      return -1;
    done = 1;
  }
  if (ev->on_calib && ev->s->ncuts) /* after: the state saved holds every earlier local term */
    lpq__cuts_offer(ev->s, ev->x, layer, ev->resume, ev->prefix, ev->local);
  if (!ev->aq[layer] || done)
    return done;
  if (lp_quantize_f32(ev->aq[layer]->q, x, dst, count, &ev->hook_err) != 0)
    return lpq_error_prefix(&ev->hook_err, "layer %zu input: ", layer), -1;
  return 1;
}

static int eval_output(void *user, size_t layer, const float *y, size_t count) {
  eval_t *ev = user;
  (void)count;
  if (!ev->want_local || ev->held[layer])
    return 0;
  if (ev->s->ref[layer].feeds_next && ev->aq[layer + 1]) {
    ev->pending = layer + 1;
    return 0;
  }
  return lpq__local_term(ev->s, layer, y, NULL, NULL, ev->buf, ev->scratch, &ev->local[layer],
                         &ev->hook_err);
}

static void eval_release(eval_t *ev) {
  lpq_scorer_t *s = ev->s;
  for (size_t l = 0; l < s->nlayers; l++) {
    if (ev->wq)
      lpq__score_weights_release(s, ev->wq[l]);
    if (ev->aq && ev->aq[l])
      lpq__qcache_release(&s->cache, ev->aq[l]);
  }
  lpq__cuts_release(s, ev->cut);
  free(ev->wq);
  free(ev->aq);
  free(ev->local);
  free(ev->prefix);
  free(ev->held);
  free(ev->rw);
  free(ev->ra);
}

/* Prepares the per-layer quantized weights and activation quantizers of a candidate, from
** the latest cut held for its formats on (the layers before it do not run). */
static int eval_prepare(eval_t *ev, const lpq_numfmt_t *w, const lpq_numfmt_t *a,
                        double *wbits, double *abits) {
  lpq_scorer_t *s = ev->s;
  size_t nl = s->nlayers ? s->nlayers : 1;
  ev->wq = calloc(nl, sizeof *ev->wq);
  ev->aq = calloc(nl, sizeof *ev->aq);
  ev->local = calloc(nl, sizeof *ev->local);
  ev->prefix = calloc(2 * nl, sizeof *ev->prefix);
  ev->held = calloc(nl, 1);
  ev->rw = calloc(nl, sizeof *ev->rw);
  ev->ra = calloc(nl, sizeof *ev->ra);
  if (!ev->wq || !ev->aq || !ev->local || !ev->prefix || !ev->held || !ev->rw || !ev->ra)
    return lpq_errorf(ev->err, LPQ_ENOMEM, "scorer: out of memory");
  double wsum = 0, wcount = 0, asum = 0, acount = 0;
  uint64_t h[2];
  lpq__prefix_start(h);
  for (size_t l = 0; l < s->nlayers; l++) {
    const lpq_layer_t *L = lpq_graph_layer(s->g, l);
    lpq_numfmt_t *rw = &ev->rw[l], *ra = &ev->ra[l];
    int rc = lpq__score_resolve(s, l, 'w', &w[l], rw, ev->err);
    if (rc == 0)
      rc = lpq__score_resolve(s, l, 'a', &a[l], ra, ev->err);
    if (rc != 0)
      return rc;
    lpq__prefix_extend(h, rw, ra);
    ev->prefix[2 * l] = h[0];
    ev->prefix[2 * l + 1] = h[1];
    wsum += (double)rw->bits * (double)L->weight_count;
    wcount += (double)L->weight_count;
    asum += (double)ra->bits * (double)s->ref[l].in_total;
    acount += (double)s->ref[l].in_total;
  }
  if (ev->on_calib && s->ncuts &&
      (ev->cut = lpq__cuts_find(s, ev->prefix, &ev->resume)) != NULL) {
    const double *local;
    size_t bytes;
    lpq__cuts_state(s, ev->cut, ev->resume, &local, &bytes);
    memcpy(ev->local, local, ev->resume * sizeof *local);
    memset(ev->held, 1, ev->resume);
    pthread_mutex_lock(&s->cuts.mu);
    s->cut_resumes++;
    s->cut_layers_skipped += ev->resume;
    pthread_mutex_unlock(&s->cuts.mu);
  }
  for (size_t l = ev->resume; l < s->nlayers; l++) {
    const lpq_layer_t *L = lpq_graph_layer(s->g, l);
    const lpq_numfmt_t *rw = &ev->rw[l], *ra = &ev->ra[l];
    if (ev->want_local && s->prefix.slots &&
        lpq__prefix_get(&s->prefix, ev->prefix + 2 * l, &ev->local[l]))
      ev->held[l] = 1;
    if (rw->family != LPQ_FAM_FP32 && !(ev->wq[l] = lpq__score_weights(s, l, rw, ev->err)))
      return ev->err ? ev->err->code : LPQ_ENOMEM;
    if (ra->family != LPQ_FAM_FP32 && !(ev->aq[l] = lpq__score_quantizer(s, ra, ev->err)))
      return lpq_error_prefix(ev->err, "layer %zu (%s) activations: ", l, L->name);
  }
  *wbits = wcount > 0 ? wsum / wcount : 32.0;
  *abits = acount > 0 ? asum / acount : 32.0;
  return 0;
}

int lpq_scorer_eval(lpq_scorer_t *s, const lpq_numfmt_t *w, const lpq_numfmt_t *a,
                    lpq_score_t *out, lpq_error_t *err) {
  int rc = lpq__score_check_args(s, w, a, err);
  if (rc != 0 || !out)
    return rc ? rc : lpq_errorf(err, LPQ_EINVAL, "scorer: NULL result");
  double t0 = now_ms();
  eval_t ev = {.s = s, .err = err, .want_local = !s->opts.no_local, .on_calib = 1};
  float *logits = NULL;
  lpq_exec_t *x = NULL;
  memset(out, 0, sizeof *out);
  if ((rc = eval_prepare(&ev, w, a, &out->mean_w_bits, &out->mean_a_bits)) != 0)
    goto done;
  if ((ev.buf = work_get(s)) != NULL) {
    ev.scratch = ev.buf + s->batch * (s->max_dim > s->classes ? s->max_dim : s->classes);
    logits = ev.scratch + s->batch * s->batch;
  }
  if (!ev.buf) {
    rc = lpq_errorf(err, LPQ_ENOMEM, "scorer: out of memory");
    goto done;
  }
  if (!(x = exec_get(s, err))) {
    rc = err ? err->code : LPQ_ENOMEM;
    goto done;
  }
  lpq_hooks_t hooks = {&ev, eval_weight, NULL, eval_output, eval_bias, eval_input};
  ev.x = x;
  if (ev.cut) {
    const double *local;
    size_t bytes;
    const void *state = lpq__cuts_state(s, ev.cut, ev.resume, &local, &bytes);
    rc = lpq_exec_run_from(x, ev.resume, state, bytes, s->calib, logits, &hooks, err);
  } else {
    rc = lpq_exec_run(x, s->calib, logits, &hooks, err);
  }
  if ((rc = hook_failed(rc, &ev.hook_err, err)) != 0)
    goto done;
  for (size_t i = 0; i < s->out_count; i++)
    if (!isfinite(logits[i])) {
      rc = lpq_errorf(err, LPQ_ENAN, "scorer: the quantized model's output %zu of sample %zu "
                      "is %s", i % s->classes, i / s->classes, lpq_nonfinite_name(logits[i]));
      goto done;
    }
  memcpy(ev.buf, logits, s->out_count * sizeof *logits);
  if ((rc = lpq_normalize_rows(ev.buf, s->batch, s->classes, err)) != 0)
    goto done;
  out->l_global = lpq_infonce_normalized(ev.buf, s->out_norm, s->batch, s->classes,
                                         s->opts.temperature, ev.scratch);
  double sum = 0;
  for (size_t l = 0; l < s->nlayers; l++) {
    sum += ev.local[l];
    if (ev.want_local && s->prefix.slots && !ev.held[l])
      lpq__prefix_put(&s->prefix, ev.prefix + 2 * l, ev.local[l]);
  }
  out->l_local = (ev.want_local && s->nlayers) ? sum / (double)s->nlayers : 0.0;
  out->l_co = out->l_global + out->l_local;
  out->l_cr = out->mean_w_bits / 32.0;
  out->l_f = out->l_co * pow(out->l_cr, s->opts.lambda);
  out->top1 = out->top1_fp = -1;
  if (s->labels) {
    size_t hit = 0;
    for (size_t i = 0; i < s->batch; i++)
      hit += (int64_t)argmax_row(logits + i * s->classes, s->classes) == s->labels[i];
    out->top1 = (double)hit / (double)s->batch;
    out->top1_fp = s->top1_fp;
  }
  out->eval_ms = now_ms() - t0;
done:
  eval_release(&ev);
  work_put(s, ev.buf);
  if (x)
    exec_put(s, x);
  return rc;
}

int lpq_scorer_resolve(lpq_scorer_t *s, const lpq_numfmt_t *w, const lpq_numfmt_t *a,
                       lpq_numfmt_t *w_out, lpq_numfmt_t *a_out, lpq_error_t *err) {
  int rc = lpq__score_check_args(s, w, a, err);
  for (size_t l = 0; rc == 0 && l < s->nlayers; l++) {
    rc = lpq__score_resolve(s, l, 'w', &w[l], &w_out[l], err);
    if (rc == 0)
      rc = lpq__score_resolve(s, l, 'a', &a[l], &a_out[l], err);
  }
  return rc;
}

int lpq_scorer_accuracy(lpq_scorer_t *s, const lpq_numfmt_t *w, const lpq_numfmt_t *a,
                        const float *data, const int64_t *labels, size_t count, double *top1_fp,
                        double *top1_q, lpq_error_t *err) {
  if (!labels)
    return lpq_errorf(err, LPQ_EINVAL, "accuracy: no labels");
  return lpq_scorer_predict(s, w, a, data, labels, count, top1_fp, top1_q, NULL, err);
}

/* lpq_scorer_predict's shared state: batches handed out in order, hits summed; the first
** failing batch's error wins (the same one whatever the number of threads). */
typedef struct predict_t {
  lpq_scorer_t *s;
  const eval_t *ev;
  const float *data;
  const int64_t *labels;
  size_t count;
  float *logits;
  int want_fp;
  pthread_mutex_t mu;
  size_t next, hit_fp, hit_q, fail_at;
  int rc;
  lpq_error_t err;
} predict_t;

/* One batch into in/lf/lq; the hits of its samples into *hf, *hq. */
static int predict_batch(predict_t *p, lpq_exec_t *x, eval_t *ev, size_t start, float *in,
                         float *lf, float *lq, size_t *hf, size_t *hq, lpq_error_t *err) {
  lpq_scorer_t *s = p->s;
  const size_t per = s->in_count / s->batch;
  size_t n = p->count - start < s->batch ? p->count - start : s->batch;
  memcpy(in, p->data + start * per, n * per * sizeof *in);
  memset(in + n * per, 0, (s->batch - n) * per * sizeof *in); /* pad the last batch */
  lpq_hooks_t hooks = {ev, eval_weight, NULL, NULL, eval_bias, eval_input};
  int rc;
  /* the FP pass only when its top-1 is wanted */
  if ((p->want_fp && (rc = lpq_exec_run(x, in, lf, NULL, err)) != 0) ||
      (rc = hook_failed(lpq_exec_run(x, in, lq, &hooks, err), &ev->hook_err, err)) != 0)
    return rc;
  if (p->logits)
    memcpy(p->logits + start * s->classes, lq, n * s->classes * sizeof *lq);
  for (size_t i = 0; p->labels && i < n; i++) {
    int64_t y = p->labels[start + i];
    if (y < 0 || (size_t)y >= s->classes)
      return lpq_errorf(err, LPQ_EINVAL, "accuracy: label %zu is %lld, outside 0..%zu",
                        start + i, (long long)y, s->classes - 1);
    if (p->want_fp)
      *hf += (int64_t)argmax_row(lf + i * s->classes, s->classes) == y;
    *hq += (int64_t)argmax_row(lq + i * s->classes, s->classes) == y;
  }
  return 0;
}

static void *predict_main(void *arg) {
  predict_t *p = arg;
  lpq_scorer_t *s = p->s;
  eval_t ev = *p->ev; /* its own hook error; the weights and quantizers are shared, read only */
  memset(&ev.hook_err, 0, sizeof ev.hook_err);
  lpq_error_t err = {0};
  float *in = malloc(s->in_count * sizeof *in), *lq = malloc(s->out_count * sizeof *lq);
  float *lf = malloc(s->out_count * sizeof *lf);
  lpq_exec_t *x = NULL;
  size_t hf = 0, hq = 0, start = 0;
  int rc = 0;
  if (!in || !lq || !lf)
    rc = lpq_errorf(&err, LPQ_ENOMEM, "accuracy: out of memory");
  else if (!(x = exec_get(s, &err)))
    rc = err.code ? err.code : LPQ_ENOMEM;
  for (;;) {
    pthread_mutex_lock(&p->mu);
    if (rc != 0 && start < p->fail_at) {
      p->fail_at = start;
      p->rc = rc;
      p->err = err;
    }
    int stop = rc != 0 || p->next >= p->count || p->next >= p->fail_at;
    start = p->next;
    p->next += s->batch;
    pthread_mutex_unlock(&p->mu);
    if (stop)
      break;
    rc = predict_batch(p, x, &ev, start, in, lf, lq, &hf, &hq, &err);
  }
  pthread_mutex_lock(&p->mu);
  p->hit_fp += hf;
  p->hit_q += hq;
  pthread_mutex_unlock(&p->mu);
  free(in);
  free(lq);
  free(lf);
  if (x)
    exec_put(s, x);
  return NULL;
}

int lpq_scorer_predict(lpq_scorer_t *s, const lpq_numfmt_t *w, const lpq_numfmt_t *a,
                       const float *data, const int64_t *labels, size_t count, double *top1_fp,
                       double *top1_q, float *logits, lpq_error_t *err) {
  int rc = lpq__score_check_args(s, w, a, err);
  if (rc != 0)
    return rc;
  if (!data || count == 0)
    return lpq_errorf(err, LPQ_EINVAL, "accuracy: no data");
  if (!labels)
    top1_fp = top1_q = NULL;
  eval_t ev = {.s = s, .err = err, .want_local = 0};
  double wb, ab;
  if ((rc = eval_prepare(&ev, w, a, &wb, &ab)) != 0) {
    eval_release(&ev);
    return rc;
  }
  predict_t p = {.s = s, .ev = &ev, .data = data, .labels = labels, .count = count,
                 .logits = logits, .want_fp = top1_fp != NULL, .fail_at = SIZE_MAX};
  pthread_mutex_init(&p.mu, NULL);
  size_t batches = (count + s->batch - 1) / s->batch;
  size_t nt = s->opts.threads > 1 ? (size_t)s->opts.threads : 1;
  if (nt > batches)
    nt = batches;
  if (nt > LPQ__EXEC_POOL_MAX)
    nt = LPQ__EXEC_POOL_MAX;
  pthread_t th[LPQ__EXEC_POOL_MAX];
  size_t started = 0;
  while (started + 1 < nt && pthread_create(&th[started], NULL, predict_main, &p) == 0)
    started++;
  predict_main(&p); /* the calling thread works too */
  for (size_t i = 0; i < started; i++)
    pthread_join(th[i], NULL);
  pthread_mutex_destroy(&p.mu);
  eval_release(&ev);
  if (p.rc != 0) {
    if (err)
      *err = p.err;
    return p.rc;
  }
  if (top1_fp)
    *top1_fp = (double)p.hit_fp / (double)count;
  if (top1_q)
    *top1_q = (double)p.hit_q / (double)count;
  return 0;
}
