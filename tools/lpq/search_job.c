/* tools/lpq/search_job.c: a search on this machine: candidates scored in-process (worker/'s
** candidate evaluation) behind the search library's evaluator, with the same job mapping the
** coordinator uses (coordinator/search/job.c). */
#include "tools/lpq/search_job.h"

#include <math.h>
#include <stdio.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void search_genome_formats(const lpq_layer_formats_t *genome, size_t nl, lpq_numfmt_t *w,
                           lpq_numfmt_t *a) {
  for (size_t i = 0; i < nl; i++)
    lpq_layer_formats_numfmt(&genome[i], &w[i], &a[i]);
}

int search_job_score(search_job_t *j, const lpq_layer_formats_t *genome, lpq_eval_result_t *out,
                     lpq_candidate_result_t *detail, lpq_error_t *err) {
  lpq_numfmt_t *w = calloc(2 * (j->nl ? j->nl : 1), sizeof *w);
  if (!w)
    return lpq_errorf(err, LPQ_ENOMEM, "out of memory");
  search_genome_formats(genome, j->nl, w, w + j->nl);
  lpq_candidate_result_t cr;
  int rc = lpq_candidate_eval(j->cand, w, w + j->nl, j->js.objective, &cr, err);
  free(w);
  lpq_search_result_from_fields(&j->js, genome, j->nl, rc, cr.score.l_co, cr.l_cr,
                                cr.score.mean_w_bits, cr.latency_s, out);
  if (detail)
    *detail = cr;
  return rc;
}

static int score_fn(void *ctx, size_t thread, const lpq_layer_formats_t *genome,
                    size_t layer_count, lpq_eval_result_t *out) {
  (void)thread, (void)layer_count;
  lpq_error_t err = {0};
  return search_job_score(ctx, genome, out, NULL, &err);
}

int search_job_init(search_job_t *j, const lpq_graph_t *g, lpq_scorer_t *scorer,
                    const float *calib, int threads, lpq_search_space_t *space,
                    lpq_search_settings_t *set, lpq_error_t *err) {
  j->g = g;
  j->nl = lpq_graph_num_layers(g);
  size_t n = j->nl ? j->nl : 1;
  int *wsf = calloc(2 * n, sizeof *wsf);
  j->specs = calloc(n, sizeof *j->specs);
  if (!wsf || !j->specs) {
    free(wsf);
    return lpq_errorf(err, LPQ_ENOMEM, "out of memory");
  }
  int rc = lpq_graph_sf_seeds(g, calib, wsf, j->js.weight_only ? NULL : wsf + n, err);
  if (rc == 0)
    rc = lpq_search_from_job(&j->js, j->nl, wsf, wsf + n, j->specs, space, set, err);
  free(wsf);
  if (rc == 0 && !(j->cand = lpq_candidate_ctx_new(g, scorer, err)))
    rc = err ? err->code : LPQ_ENOMEM;
  if (rc == 0 && !(j->evaluator = lpq_thread_evaluator_new((size_t)threads, score_fn, j, err)))
    rc = err ? err->code : LPQ_ENOMEM;
  return rc;
}

void search_job_destroy(search_job_t *j) {
  lpq_thread_evaluator_free(&j->evaluator);
  lpq_candidate_ctx_free(&j->cand);
  free(j->specs);
  j->specs = NULL;
}

lpq_evaluator_t search_job_evaluator(search_job_t *j) {
  return lpq_thread_evaluator_iface(j->evaluator);
}

int search_job_sensitivity(search_job_t *j, const char *model, const float *calib, size_t ncal,
                           int threads, lpq_search_settings_t *set, double *seconds,
                           lpq_error_t *err) {
  const lpq_job_settings_t *js = &j->js;
  int lo, hi;
  lpq_sensitivity_widths(js, &lo, &hi);
  lpq_graph_t *g = lpq_graph_load(model, (int)ncal, err);
  if (!g)
    return err ? err->code : LPQ_EIO;
  lpq_score_opts_t so = {.temperature = js->temperature, .lambda = js->lambda,
                         .bias_correction = js->bias_correction};
  lpq_scorer_t *sc = lpq_scorer_new(g, calib, NULL, &so, err);
  lpq_sensitivity_opts_t o = {.bits_lo = lo, .bits_hi = hi, .threads = (unsigned)threads,
                              .family = js->weight_sf == LPQ_SF_TENSOR ? LPQ_SENS_LP
                                                                       : LPQ_SENS_LP_CH};
  lpq_sensitivity_t *m = NULL;
  int rc = sc ? lpq_sensitivity_compute(g, sc, &o, &m, err) : (err ? err->code : LPQ_ENOMEM);
  if (rc == 0 && m->layers != j->nl)
    rc = lpq_errorf(err, LPQ_ESTATE, "sensitivity: %zu layers, the search %zu", m->layers, j->nl);
  if (rc == 0) {
    lpq_search_set_sensitivity(js, j->nl, m->delta_l_co, lo, hi, m->weight_count, j->specs, set);
    *seconds = m->elapsed_ms / 1e3;
  }
  lpq_sensitivity_free(&m);
  lpq_scorer_free(&sc);
  lpq_graph_free(&g);
  return rc;
}

/* ---- a parallel loop for the scoring after the search ---- */

typedef struct par_t {
  int (*fn)(void *ctx, size_t i, lpq_error_t *err);
  void *ctx;
  size_t n;
  atomic_size_t next;
  atomic_int failed;
  pthread_mutex_t mu;
  lpq_error_t *err; /* the first failure's */
} par_t;

static void *par_main(void *arg) {
  par_t *p = arg;
  for (size_t i; !atomic_load(&p->failed) && (i = atomic_fetch_add(&p->next, 1)) < p->n;) {
    lpq_error_t e = {0};
    if (p->fn(p->ctx, i, &e) != 0) {
      pthread_mutex_lock(&p->mu);
      if (!atomic_exchange(&p->failed, 1) && p->err)
        *p->err = e;
      pthread_mutex_unlock(&p->mu);
    }
  }
  return NULL;
}

int search_par_for(size_t n, int threads, int (*fn)(void *ctx, size_t i, lpq_error_t *err),
                   void *ctx, lpq_error_t *err) {
  par_t p = {.fn = fn, .ctx = ctx, .n = n, .err = err};
  atomic_init(&p.next, 0);
  atomic_init(&p.failed, 0);
  pthread_mutex_init(&p.mu, NULL);
  size_t nt = threads < 1 ? 1 : (size_t)threads;
  nt = nt > n ? (n ? n : 1) : nt;
  pthread_t th[64];
  size_t started = 0;
  for (; started + 1 < nt && started < 64; started++)
    if (pthread_create(&th[started], NULL, par_main, &p) != 0)
      break;
  par_main(&p); /* the calling thread works too */
  for (size_t i = 0; i < started; i++)
    pthread_join(th[i], NULL);
  pthread_mutex_destroy(&p.mu);
  return atomic_load(&p.failed) ? (err && err->code ? err->code : LPQ_EIO) : 0;
}

/* ---- top-1 and re-scoring after the search (lpq search) ---- */

/* Top-1 of a genome (fp32 when genome is NULL) over n samples of x with their labels. */
int genome_top1(lpq_scorer_t *sc, const lpq_layer_formats_t *genome, size_t nl,
                       const lpq_array_t *x, const int64_t *labels, size_t n, double *top1,
                       lpq_error_t *err) {
  lpq_numfmt_t *w = calloc(2 * (nl ? nl : 1), sizeof *w);
  if (!w)
    return lpq_errorf(err, LPQ_ENOMEM, "out of memory");
  if (genome)
    search_genome_formats(genome, nl, w, w + nl);
  for (size_t i = 0; !genome && i < 2 * nl; i++)
    lpq_numfmt_parse("fp32", &w[i], NULL);
  int rc = lpq_scorer_accuracy(sc, w, w + nl, x->data, labels, n, NULL, top1, err);
  free(w);
  return rc;
}

int member_pass_seconds(lpq_scorer_t *sc, size_t nl, const lpq_array_t *x, const int64_t *labels,
                        size_t batch, double *seconds, lpq_error_t *err) {
  const size_t n = (size_t)x->shape[0], slice = batch < n ? batch : n;
  lpq_numfmt_t *w = calloc(2 * (nl ? nl : 1), sizeof *w);
  if (!w)
    return lpq_errorf(err, LPQ_ENOMEM, "out of memory");
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < 2 * nl; i++)
    rc = lpq_numfmt_parse("int8", &w[i], err);
  double top1 = 0, t = now_s();
  if (rc == 0)
    rc = lpq_scorer_accuracy(sc, w, w + nl, x->data, labels, slice, NULL, &top1, err);
  *seconds = (now_s() - t) * (double)((n + slice - 1) / (slice ? slice : 1));
  free(w);
  return rc;
}

double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Top-1 of several genomes (NULL: fp32) over one labelled set, a genome per thread. */


int top1_fn(void *ctx, size_t i, lpq_error_t *err) {
  top1_job_t *j = ctx;
  return genome_top1(j->sc, j->genome[i], j->nl, j->x, j->labels, j->n, j->out[i], err);
}



int detail_fn(void *ctx, size_t i, lpq_error_t *err) {
  detail_job_t *j = ctx;
  return search_job_score(j->job, j->m[i].genome, &j->m[i].result, &j->m[i].detail, err);
}

/* The layer specs with every weight count (the sensitivity pass sets them; without it, the
** graph's), for the fill's bit accounting; NULL when out of memory. */
static lpq_layer_spec_t *counted_specs(const search_job_t *j) {
  lpq_layer_spec_t *sp = malloc((j->nl ? j->nl : 1) * sizeof *sp);
  for (size_t l = 0; sp && l < j->nl; l++) {
    sp[l] = j->specs[l];
    sp[l].weight_count = lpq_graph_layer(j->g, l)->weight_count;
  }
  return sp;
}

size_t search_fill_budget(const search_job_t *j, const lpq_layer_formats_t *genome, double budget,
                          const double *gain, lpq_layer_formats_t *out) {
  lpq_layer_spec_t *sp = counted_specs(j);
  size_t r = sp ? lpq_search_fill_budget(&j->js, sp, j->nl, genome, budget, gain, out) : 0;
  free(sp);
  return r;
}

/* Mean over n rows of KL(softmax(p) || softmax(q)), classes wide; NAN when not finite. */
static double mean_kl(const float *p, const float *q, size_t n, size_t classes) {
  double sum = 0;
  for (size_t i = 0; i < n; i++) {
    const float *a = p + i * classes, *b = q + i * classes;
    double ma = a[0], mb = b[0], za = 0, zb = 0, kl = 0;
    for (size_t c = 1; c < classes; c++)
      ma = a[c] > ma ? a[c] : ma, mb = b[c] > mb ? b[c] : mb;
    for (size_t c = 0; c < classes; c++)
      za += exp(a[c] - ma), zb += exp(b[c] - mb);
    for (size_t c = 0; c < classes; c++) {
      double la = a[c] - ma - log(za), lb = b[c] - mb - log(zb);
      kl += exp(la) * (la - lb);
    }
    sum += kl;
  }
  return isfinite(sum) ? sum / (double)(n ? n : 1) : NAN;
}

typedef struct fill_job_t {
  const search_job_t *j;
  const lpq_layer_spec_t *specs; /* counted_specs(j), made once */
  lpq_scorer_t *sc;
  const lpq_layer_formats_t *genome;
  const float *x, *ref; /* n inputs; the fp32 outputs over them */
  size_t n, classes;
  double *kl;           /* per layer raised alone; [nl]: the genome as it is */
} fill_job_t;

/* Index i < nl: the genome with layer i one bit wider (NAN where it cannot be); nl: as it is. */
static int fill_fn(void *ctx, size_t i, lpq_error_t *err) {
  fill_job_t *f = ctx;
  const size_t nl = f->j->nl;
  lpq_layer_formats_t *gi = malloc((nl ? nl : 1) * sizeof *gi);
  lpq_numfmt_t *w = calloc(2 * (nl ? nl : 1), sizeof *w);
  float *z = malloc(f->n * f->classes * sizeof *z);
  double *one = calloc(nl ? nl : 1, sizeof *one);
  int rc = !gi || !w || !z || !one ? lpq_errorf(err, LPQ_ENOMEM, "out of memory") : 0;
  f->kl[i] = NAN;
  if (rc == 0 && i < nl)
    one[i] = 1;
  if (rc == 0 && (i == nl || lpq_search_fill_budget(&f->j->js, f->specs, nl, f->genome, INFINITY,
                                                    one, gi) == 1)) {
    search_genome_formats(i == nl ? f->genome : gi, nl, w, w + nl);
    rc = lpq_scorer_predict(f->sc, w, w + nl, f->x, NULL, f->n, NULL, NULL, z, err);
    if (rc == 0)
      f->kl[i] = mean_kl(f->ref, z, f->n, f->classes);
  }
  free(gi), free(w), free(z), free(one);
  return rc;
}

int search_fill_gains(const search_job_t *j, lpq_scorer_t *sc, const lpq_layer_formats_t *genome,
                      const float *x, size_t n, int threads, double *gain, lpq_error_t *err) {
  const size_t nl = j->nl;
  lpq_tensor_info_t out;
  lpq_graph_output(j->g, 0, &out);
  const size_t classes = out.count / (size_t)lpq_graph_batch(j->g);
  lpq_numfmt_t *w = calloc(2 * (nl ? nl : 1), sizeof *w);
  float *ref = malloc((n ? n : 1) * (classes ? classes : 1) * sizeof *ref);
  double *kl = malloc((nl + 1) * sizeof *kl);
  lpq_layer_spec_t *sp = counted_specs(j);
  int rc = !w || !ref || !kl || !sp ? lpq_errorf(err, LPQ_ENOMEM, "out of memory") : 0;
  for (size_t i = 0; rc == 0 && i < 2 * nl; i++)
    lpq_numfmt_parse("fp32", &w[i], NULL);
  if (rc == 0)
    rc = lpq_scorer_predict(sc, w, w + nl, x, NULL, n, NULL, NULL, ref, err);
  fill_job_t f = {j, sp, sc, genome, x, ref, n, classes, kl};
  if (rc == 0)
    rc = search_par_for(nl + 1, threads, fill_fn, &f, err);
  for (size_t l = 0; rc == 0 && l < nl; l++)
    gain[l] = isfinite(kl[l]) && isfinite(kl[nl]) ? kl[nl] - kl[l] : NAN;
  free(w), free(ref), free(kl), free(sp);
  return rc;
}
