/* bench/local_estimate.c: the cheaper estimates of L_CO's local terms (lpq_local_mode_t,
** issue 14) against the exact loss. For each model: a search-like population (random genomes of
** the search's default space, statistics-seeded genomes at every width, and families of
** children that regenerate a block of 1 to 3 consecutive layers of a random parent: the close
** pairs a search compares), each scored exactly and with each estimate on the same calibration
** batch. Prints the Spearman rank agreement of each estimate's L_CO with the exact L_CO over the
** population and, the harder part, inside the families (their mean and worst), and the median
** time per candidate of each mode over the FP pass's, timed in the same run (one FP pass every
** few candidates, with a score of the global term alone: the floor). VERDICT: Spearman >= 0.99
** on every model, and a candidate's score <= 1.3x FP.
** Usage: local_estimate [--random N] [--families F] [--children C] [--dim K] [--seed S]
**                       [CALIB.npy MODEL.onnx...]
** (default: models/fashion_calib_256.npy and the three bundled models, N 100, F 5, C 10) */
#include "bench/bench_verdict.h"
#include "coordinator/search/search.h"
#include "engine/engine.h"
#include "worker/worker.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MODES 3 /* exact, projected, pooled */

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return 1e3 * (double)ts.tv_sec + 1e-6 * (double)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, size_t n) {
  qsort(v, n, sizeof *v, cmp_d);
  return n ? (n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2])) : NAN;
}

/* ranks 1..n, ties get their mean rank */
static void ranks(const double *x, size_t n, double *r) {
  size_t *idx = malloc(n * sizeof *idx);
  for (size_t i = 0; i < n; i++)
    idx[i] = i;
  for (size_t i = 1; i < n; i++) /* insertion sort: populations are small */
    for (size_t j = i; j > 0 && x[idx[j - 1]] > x[idx[j]]; j--) {
      size_t t = idx[j];
      idx[j] = idx[j - 1];
      idx[j - 1] = t;
    }
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j + 1 < n && x[idx[j + 1]] == x[idx[i]])
      j++;
    for (size_t k = i; k <= j; k++)
      r[idx[k]] = 0.5 * (double)(i + j) + 1.0;
    i = j + 1;
  }
  free(idx);
}

static double spearman(const double *a, const double *b, size_t n) {
  double *ra = malloc(n * sizeof *ra), *rb = malloc(n * sizeof *rb);
  ranks(a, n, ra);
  ranks(b, n, rb);
  double ma = 0, mb = 0, sab = 0, saa = 0, sbb = 0;
  for (size_t i = 0; i < n; i++)
    ma += ra[i], mb += rb[i];
  ma /= (double)n, mb /= (double)n;
  for (size_t i = 0; i < n; i++) {
    sab += (ra[i] - ma) * (rb[i] - mb);
    saa += (ra[i] - ma) * (ra[i] - ma);
    sbb += (rb[i] - mb) * (rb[i] - mb);
  }
  free(ra);
  free(rb);
  return saa > 0 && sbb > 0 ? sab / sqrt(saa * sbb) : NAN;
}

typedef struct cfg_t {
  size_t random, families, children, dim;
  uint64_t seed;
} cfg_t;

/* The population of one model: count genomes of nl layers, family[i] the family of genome i
** (-1: not in one). */
static lpq_layer_formats_t *population(const lpq_graph_t *g, const float *calib, const cfg_t *c,
                                       size_t *count, long **family, lpq_error_t *err) {
  size_t nl = lpq_graph_num_layers(g);
  lpq_job_settings_t js;
  lpq_job_settings_default(&js);
  int *sf = calloc(2 * nl, sizeof *sf);
  lpq_layer_spec_t *specs = calloc(nl, sizeof *specs);
  lpq_search_space_t space;
  lpq_search_settings_t set;
  if (!sf || !specs || lpq_graph_sf_seeds(g, calib, sf, sf + nl, err) != 0 ||
      lpq_search_from_job(&js, nl, sf, sf + nl, specs, &space, &set, err) != 0) {
    free(sf);
    free(specs);
    return NULL;
  }
  int widths = space.n_max - space.n_min + 1;
  size_t n = c->random + (size_t)widths + c->families * (1 + c->children);
  lpq_layer_formats_t *pop = calloc(n * nl, sizeof *pop), *fresh = calloc(nl, sizeof *fresh);
  *family = calloc(n, sizeof **family);
  lpq_rng_t rng;
  lpq_rng_seed(&rng, c->seed);
  size_t k = 0;
  for (size_t i = 0; i < c->random; i++, k++) {
    lpq_genome_random(&space, &rng, pop + k * nl);
    (*family)[k] = -1;
  }
  for (int b = space.n_min; b <= space.n_max; b++, k++) {
    lpq_genome_seeded(&space, b, b, pop + k * nl);
    (*family)[k] = -1;
  }
  for (size_t f = 0; f < c->families; f++) {
    lpq_layer_formats_t *parent = pop + k * nl;
    lpq_genome_random(&space, &rng, parent);
    (*family)[k++] = (long)f;
    for (size_t ch = 0; ch < c->children; ch++, k++) {
      memcpy(pop + k * nl, parent, nl * sizeof *parent);
      lpq_genome_random(&space, &rng, fresh);
      size_t len = 1 + lpq_rng_below(&rng, 3), at = lpq_rng_below(&rng, nl);
      for (size_t l = at; l < at + len && l < nl; l++)
        pop[k * nl + l] = fresh[l];
      (*family)[k] = (long)f;
    }
  }
  free(fresh);
  free(sf);
  free(specs);
  *count = k;
  return pop;
}

static int run_model(const char *model, const lpq_array_t *x, const cfg_t *c, double *rho,
                     double *ratio) {
  lpq_error_t err = {0};
  lpq_graph_t *g = lpq_graph_load(model, (int)x->shape[0], &err);
  lpq_exec_t *ex = g ? lpq_exec_new(g, &err) : NULL;
  lpq_scorer_t *sc[MODES] = {0}, *glob = NULL; /* glob: the global term alone (the floor) */
  size_t n = 0, nl = g ? lpq_graph_num_layers(g) : 0;
  long *fam = NULL;
  lpq_layer_formats_t *pop = g ? population(g, x->data, c, &n, &fam, &err) : NULL;
  for (int m = 0; pop && m < MODES; m++) {
    /* every local term computed (no prefix cache, no cuts): a candidate that shares nothing */
    lpq_score_opts_t o = {.local = (lpq_local_mode_t)m, .local_dim = m ? c->dim : 0,
                          .no_prefix = 1, .no_cuts = 1};
    if (!(sc[m] = lpq_scorer_new(g, x->data, NULL, &o, &err)))
      break;
  }
  lpq_score_opts_t og = {.no_local = 1, .no_prefix = 1, .no_cuts = 1};
  if (sc[MODES - 1])
    glob = lpq_scorer_new(g, x->data, NULL, &og, &err);
  if (!glob || !ex) {
    fprintf(stderr, "local_estimate: %s: %s\n", model, err.msg);
    return 1;
  }
  lpq_tensor_info_t out;
  lpq_graph_output(g, 0, &out);
  float *logits = malloc(out.count * sizeof *logits);
  lpq_numfmt_t *w = calloc(2 * nl, sizeof *w);
  double *l_co = calloc(MODES * n, sizeof *l_co), *ms = calloc(MODES * n, sizeof *ms);
  double *fp_ms = calloc(n, sizeof *fp_ms), *glob_ms = calloc(n, sizeof *glob_ms);
  size_t nfp = 0;
  lpq_score_t s;
  for (size_t i = 0; i < n; i++) {
    for (size_t l = 0; l < nl; l++)
      lpq_layer_formats_numfmt(&pop[i * nl + l], &w[l], &w[nl + l]);
    if (i % 4 == 0) {
      double t0 = now_ms();
      lpq_exec_run(ex, x->data, logits, NULL, &err);
      fp_ms[nfp] = now_ms() - t0;
      if (lpq_scorer_eval(glob, w, w + nl, &s, &err) != 0) {
        fprintf(stderr, "local_estimate: %s: candidate %zu: %s\n", model, i, err.msg);
        return 1;
      }
      glob_ms[nfp++] = s.eval_ms;
    }
    for (int m = 0; m < MODES; m++) {
      if (lpq_scorer_eval(sc[m], w, w + nl, &s, &err) != 0) {
        fprintf(stderr, "local_estimate: %s: candidate %zu: %s\n", model, i, err.msg);
        return 1;
      }
      l_co[m * n + i] = s.l_co;
      ms[m * n + i] = s.eval_ms;
    }
  }
  double fp = median(fp_ms, nfp), gl = median(glob_ms, nfp);
  printf("%s: %zu candidates (%zu families), %zu layers, batch %lld; FP pass %.1f ms, the global "
         "term alone %.1f ms (%.2fx FP)\n", model, n, c->families, nl, (long long)x->shape[0], fp,
         gl, gl / fp);
  for (int m = 0; m < MODES; m++) {
    lpq_scorer_stats_t st;
    lpq_scorer_stats(sc[m], &st);
    double all = spearman(l_co, l_co + m * n, n), worst = 1, mean = 0;
    size_t nf = 0;
    double *a = calloc(n, sizeof *a), *b = calloc(n, sizeof *b);
    for (size_t f = 0; f < c->families; f++) {
      size_t k = 0;
      for (size_t i = 0; i < n; i++)
        if (fam[i] == (long)f)
          a[k] = l_co[i], b[k++] = l_co[m * n + i];
      double r = spearman(a, b, k);
      if (isfinite(r))
        mean += r, worst = fmin(worst, r), nf++;
    }
    free(a);
    free(b);
    double t = median(ms + m * n, n);
    printf("  %-9s local dims %7zu  Spearman %.4f  in families mean %.4f worst %.4f  "
           "%7.1f ms  %.2fx FP\n", lpq_local_mode_name((lpq_local_mode_t)m), st.local_dims, all,
           nf ? mean / (double)nf : NAN, nf ? worst : NAN, t, t / fp);
    rho[m] = all;
    ratio[m] = t / fp;
  }
  fflush(stdout);
  for (int m = 0; m < MODES; m++)
    lpq_scorer_free(&sc[m]);
  lpq_scorer_free(&glob);
  free(glob_ms);
  free(logits);
  free(w);
  free(l_co);
  free(ms);
  free(fp_ms);
  free(pop);
  free(fam);
  lpq_exec_free(&ex);
  lpq_graph_free(&g);
  return 0;
}

int main(int argc, char **argv) {
  lpq_blas_select_kernels(argv);
  cfg_t c = {.random = 100, .families = 5, .children = 10, .dim = 0, .seed = 14};
  int i = 1;
  for (; i + 1 < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
    unsigned long long v = strtoull(argv[i + 1], NULL, 10);
    if (!strcmp(argv[i], "--random")) c.random = v;
    else if (!strcmp(argv[i], "--families")) c.families = v;
    else if (!strcmp(argv[i], "--children")) c.children = v;
    else if (!strcmp(argv[i], "--dim")) c.dim = v;
    else if (!strcmp(argv[i], "--seed")) c.seed = v;
    else break;
  }
  if (i < argc && argv[i][0] == '-') {
    fprintf(stderr, "usage: local_estimate [--random N] [--families F] [--children C] "
                    "[--dim K] [--seed S] [CALIB.npy MODEL.onnx...]\n");
    return 2;
  }
  static const char *defaults[] = {"models/resnet18.onnx", "models/mobilenetv2.onnx",
                                   "models/vit.onnx"};
  const char *calib = i < argc ? argv[i++] : "models/fashion_calib_256.npy";
  const char **models = i < argc ? (const char **)argv + i : defaults;
  int nmodels = i < argc ? argc - i : 3;
  lpq_blas_single_thread();
  lpq_error_t err;
  lpq_array_t *x = NULL;
  if (lpq_load_npy(calib, &x, &err) != 0 || x->dtype != LPQ_DT_F32) {
    fprintf(stderr, "local_estimate: %s\n", x ? "calibration data must be float32" : err.msg);
    return 1;
  }
  printf("local_estimate: %s, estimates' dim %zu (0: default), seed %llu, 1 thread\n", calib,
         c.dim, (unsigned long long)c.seed);
  double worst_rho[MODES], worst_ratio[MODES];
  for (int m = 0; m < MODES; m++)
    worst_rho[m] = 1, worst_ratio[m] = 0;
  for (int k = 0; k < nmodels; k++) {
    double rho[MODES], ratio[MODES];
    if (run_model(models[k], x, &c, rho, ratio) != 0)
      return 1;
    for (int m = 0; m < MODES; m++)
      worst_rho[m] = fmin(worst_rho[m], rho[m]), worst_ratio[m] = fmax(worst_ratio[m], ratio[m]);
  }
  for (int m = 1; m < MODES; m++) {
    char what[160];
    snprintf(what, sizeof what, "local=%s: Spearman with exact L_CO, worst model",
             lpq_local_mode_name((lpq_local_mode_t)m));
    bench_verdict("local_estimate", what, worst_rho[m], ">=", 0.99, "");
  }
  for (int m = 0; m < MODES; m++) {
    char what[160];
    snprintf(what, sizeof what, "local=%s: a candidate's score / FP pass, worst model",
             lpq_local_mode_name((lpq_local_mode_t)m));
    bench_verdict("local_estimate", what, worst_ratio[m], "<=", 1.3, "x");
  }
  lpq_array_free(&x);
  return 0;
}
