/* worker/sensitivity.c: per-layer sensitivity (issue 13, item 3): every quantizable layer
** alone at each weight width, the other layers and every activation fp32, scored with the
** scorer's L_CO against the all-fp32 candidate, and top-1 over labelled data when given.
** The (layer, width) candidates are independent: `threads` threads take them from a shared
** counter, each writing its own cell, so the matrix is the same whatever the thread count. */
#include "worker/worker.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SENS_THREADS_MAX 256

/* LP's es and rs at a width: lp_weight_shape (lp/lp.h), one rule for every caller. */
int lpq_sensitivity_format(lpq_sens_family_t family, int bits, lpq_numfmt_t *out,
                           lpq_error_t *err) {
  if (!out || bits < 2 || bits > 16)
    return lpq_errorf(err, LPQ_EINVAL, "sensitivity: width %d outside 2..16", bits);
  char text[LPQ_NUMFMT_TEXT_MAX];
  int es, rs;
  lp_weight_shape(bits, &es, &rs);
  switch (family) {
  case LPQ_SENS_LP_CH: snprintf(text, sizeof text, "lp<%d,%d,%d,auto_ch>", bits, es, rs); break;
  case LPQ_SENS_LP: snprintf(text, sizeof text, "lp<%d,%d,%d,auto>", bits, es, rs); break;
  case LPQ_SENS_INT_CH: snprintf(text, sizeof text, "int<%d,ch>", bits); break;
  default: return lpq_errorf(err, LPQ_EINVAL, "sensitivity: unknown format family %d", family);
  }
  return lpq_numfmt_parse(text, out, err);
}

const char *lpq_sens_family_name(lpq_sens_family_t family) {
  switch (family) {
  case LPQ_SENS_LP_CH: return "lp_ch";
  case LPQ_SENS_LP: return "lp";
  case LPQ_SENS_INT_CH: return "int_ch";
  }
  return "?";
}

typedef struct sens_run_t {
  const lpq_graph_t *g;
  lpq_scorer_t *scorer;
  const lpq_sensitivity_opts_t *opts;
  lpq_sensitivity_t *out;
  lpq_numfmt_t *wfmt; /* per width */
  pthread_mutex_t mu;
  size_t next, total;
  int rc;
  lpq_error_t err;
} sens_run_t;

/* Scores cell k (layer k / widths at width lo + k % widths) into the matrix. */
static int sens_cell(sens_run_t *r, size_t k, lpq_numfmt_t *w, lpq_numfmt_t *a,
                     lpq_error_t *err) {
  lpq_sensitivity_t *o = r->out;
  size_t layer = k / o->widths, col = k % o->widths;
  lpq_numfmt_t fp32;
  lpq_numfmt_parse("fp32", &fp32, NULL);
  for (size_t i = 0; i < o->layers; i++)
    w[i] = a[i] = fp32;
  w[layer] = r->wfmt[col];
  lpq_score_t sc;
  int rc = lpq_scorer_eval(r->scorer, w, a, &sc, err);
  if (rc == 0 && r->opts->labels)
    rc = lpq_scorer_accuracy(r->scorer, w, a, r->opts->data, r->opts->labels, r->opts->count,
                             NULL, &o->top1[k], err);
  if (rc != 0)
    return lpq_error_prefix(err, "sensitivity: layer %zu (%s) at %d bits: ", layer,
                            o->names[layer], o->bits_lo + (int)col);
  o->delta_l_co[k] = sc.l_co - o->base_l_co;
  return 0;
}

static void *sens_thread(void *arg) {
  sens_run_t *r = arg;
  size_t n = r->out->layers ? r->out->layers : 1;
  lpq_numfmt_t *w = calloc(2 * n, sizeof *w);
  lpq_error_t err = {0};
  int rc = w ? 0 : lpq_errorf(&err, LPQ_ENOMEM, "sensitivity: out of memory");
  for (;;) {
    pthread_mutex_lock(&r->mu);
    if (rc != 0 && r->rc == 0) {
      r->rc = rc;
      r->err = err;
    }
    size_t k = r->rc == 0 && r->next < r->total ? r->next++ : r->total;
    pthread_mutex_unlock(&r->mu);
    if (k == r->total)
      break;
    rc = sens_cell(r, k, w, w + n, &err);
  }
  free(w);
  return NULL;
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return 1e3 * (double)ts.tv_sec + 1e-6 * (double)ts.tv_nsec;
}

static lpq_sensitivity_t *sens_alloc(const lpq_graph_t *g, int lo, int hi) {
  lpq_sensitivity_t *o = calloc(1, sizeof *o);
  if (!o)
    return NULL;
  o->layers = lpq_graph_num_layers(g);
  o->widths = (size_t)(hi - lo + 1);
  o->bits_lo = lo;
  o->bits_hi = hi;
  size_t n = o->layers ? o->layers : 1, cells = n * o->widths;
  o->names = calloc(n, sizeof *o->names);
  o->weight_count = calloc(n, sizeof *o->weight_count);
  o->delta_l_co = malloc(cells * sizeof *o->delta_l_co);
  o->top1 = malloc(cells * sizeof *o->top1);
  if (!o->names || !o->weight_count || !o->delta_l_co || !o->top1) {
    lpq_sensitivity_free(&o);
    return NULL;
  }
  for (size_t i = 0; i < cells; i++)
    o->delta_l_co[i] = o->top1[i] = NAN;
  for (size_t l = 0; l < o->layers; l++) {
    const lpq_layer_t *L = lpq_graph_layer(g, l);
    o->weight_count[l] = L->weight_count;
    if (!(o->names[l] = strdup(L->name))) {
      lpq_sensitivity_free(&o);
      return NULL;
    }
  }
  o->base_top1 = NAN;
  return o;
}

int lpq_sensitivity_compute(const lpq_graph_t *g, lpq_scorer_t *s,
                            const lpq_sensitivity_opts_t *opts, lpq_sensitivity_t **out,
                            lpq_error_t *err) {
  if (!g || !s || !out)
    return lpq_errorf(err, LPQ_EINVAL, "sensitivity: NULL argument");
  *out = NULL;
  lpq_sensitivity_opts_t o = opts ? *opts : (lpq_sensitivity_opts_t){0};
  if (o.bits_lo == 0 && o.bits_hi == 0) {
    o.bits_lo = 2;
    o.bits_hi = 8;
  }
  if (o.bits_lo < 2 || o.bits_hi > 16 || o.bits_lo > o.bits_hi)
    return lpq_errorf(err, LPQ_EINVAL, "sensitivity: widths %d..%d: expected 2 <= lo <= hi <= 16",
                      o.bits_lo, o.bits_hi);
  if (o.labels && (!o.data || o.count == 0))
    return lpq_errorf(err, LPQ_EINVAL, "sensitivity: labels without data");
  unsigned threads = o.threads ? o.threads : 1;
  if (threads > SENS_THREADS_MAX)
    threads = SENS_THREADS_MAX;
  double t0 = now_ms();
  sens_run_t r = {.g = g, .scorer = s, .opts = &o};
  if (!(r.out = sens_alloc(g, o.bits_lo, o.bits_hi)) ||
      !(r.wfmt = calloc(r.out->widths, sizeof *r.wfmt))) {
    lpq_sensitivity_free(&r.out);
    return lpq_errorf(err, LPQ_ENOMEM, "sensitivity: out of memory");
  }
  r.out->family = o.family;
  int rc = 0;
  for (size_t c = 0; rc == 0 && c < r.out->widths; c++)
    rc = lpq_sensitivity_format(o.family, o.bits_lo + (int)c, &r.wfmt[c], err);
  /* the reference: the all-fp32 candidate through the same path as every cell */
  size_t n = r.out->layers ? r.out->layers : 1;
  lpq_numfmt_t *fp = rc == 0 ? calloc(n, sizeof *fp) : NULL;
  if (rc == 0 && !fp)
    rc = lpq_errorf(err, LPQ_ENOMEM, "sensitivity: out of memory");
  for (size_t i = 0; rc == 0 && i < r.out->layers; i++)
    lpq_numfmt_parse("fp32", &fp[i], NULL);
  lpq_score_t base;
  if (rc == 0 && (rc = lpq_scorer_eval(s, fp, fp, &base, err)) == 0) {
    r.out->base_l_co = base.l_co;
    if (o.labels)
      rc = lpq_scorer_accuracy(s, fp, fp, o.data, o.labels, o.count, NULL, &r.out->base_top1,
                               err);
  }
  free(fp);
  r.total = r.out->layers * r.out->widths;
  if (rc == 0) {
    pthread_mutex_init(&r.mu, NULL);
    pthread_t tid[SENS_THREADS_MAX];
    unsigned started = 0;
    for (unsigned t = 1; t < threads && t < r.total; t++, started++)
      if (pthread_create(&tid[started], NULL, sens_thread, &r) != 0)
        break;
    sens_thread(&r); /* the calling thread works too */
    for (unsigned t = 0; t < started; t++)
      pthread_join(tid[t], NULL);
    pthread_mutex_destroy(&r.mu);
    if ((rc = r.rc) != 0 && err)
      *err = r.err;
  }
  free(r.wfmt);
  if (rc != 0) {
    lpq_sensitivity_free(&r.out);
    return rc;
  }
  r.out->elapsed_ms = now_ms() - t0;
  *out = r.out;
  return 0;
}

void lpq_sensitivity_free(lpq_sensitivity_t **sp) {
  if (!sp || !*sp)
    return;
  lpq_sensitivity_t *s = *sp;
  for (size_t l = 0; s->names && l < s->layers; l++)
    free(s->names[l]);
  free(s->names);
  free(s->weight_count);
  free(s->delta_l_co);
  free(s->top1);
  free(s);
  *sp = NULL;
}
