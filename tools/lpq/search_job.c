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

size_t search_fill_budget(const search_job_t *j, const lpq_layer_formats_t *genome, double budget,
                          lpq_layer_formats_t *out) {
  return lpq_search_fill_budget(&j->js, j->specs, j->nl, genome, budget, out);
}
