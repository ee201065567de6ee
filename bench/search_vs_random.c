/* bench/search_vs_random.c: the LPQ search against its peer, random search, with the same
** number of evaluations, on a synthetic stand-in for a network (scoring core not wired yet):
** 20 layers, each a Gaussian weight tensor and a half-normal activation tensor of 2048
** values; L_CO = sum of relative squared quantization errors (lp_quantizer_t), L_CR = mean
** weight bits / 32, constraint mean activation bits <= 6. Prints the hypervolume of each
** method's feasible front (mean and spread over seeds), then the search's own overhead per
** evaluation and the size and time of a state save.
** Usage: search_vs_random [evaluations (2000)] [seeds (5)] */
#include "bench/bench_verdict.h"
#include "coordinator/search/search.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LAYERS 20
#define ELEMS 2048

typedef struct synthetic_t {
  float weight[LAYERS][ELEMS], act[LAYERS][ELEMS];
  lpq_layer_spec_t spec[LAYERS];
} synthetic_t;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double gaussian(lpq_rng_t *rng) {
  double u = lpq_rng_uniform(rng), v = lpq_rng_uniform(rng);
  return sqrt(-2.0 * log(1.0 - u)) * cos(2.0 * M_PI * v);
}

static void synthetic_init(synthetic_t *sy) {
  lpq_rng_t rng;
  lpq_rng_seed(&rng, 12345);
  memset(sy->spec, 0, sizeof sy->spec);
  for (int l = 0; l < LAYERS; l++) {
    double sw = 0.5 * pow(2.0, -(l % 5)), sa = pow(2.0, l % 3);
    for (int i = 0; i < ELEMS; i++) {
      /* Heavier tails in some layers: a distribution shape the formats must fit. */
      double g = gaussian(&rng);
      sy->weight[l][i] = (float)(sw * (l % 2 ? g * g * g / 3.0 : g));
      sy->act[l][i] = (float)fabs(sa * gaussian(&rng));
    }
    sy->spec[l].weight_sf_seed = (int)lround(-log2(sw));
    sy->spec[l].act_sf_seed = (int)lround(-log2(sa));
  }
}

static double relative_error(const lp_format_t *f, const float *x) {
  lp_quantizer_t *q = lp_quantizer_new(f, NULL);
  static __thread float out[ELEMS];
  if (!q || lp_quantize_f32(q, x, out, ELEMS, NULL)) {
    lp_quantizer_free(&q);
    return NAN;
  }
  lp_quantizer_free(&q);
  double e = 0.0, s = 0.0;
  for (size_t i = 0; i < ELEMS; i++) {
    e += (double)(out[i] - x[i]) * (out[i] - x[i]);
    s += (double)x[i] * x[i];
  }
  return e / s;
}

static int synthetic_score(void *ctx, size_t thread, const lpq_layer_formats_t *g,
                           size_t layers, lpq_eval_result_t *out) {
  (void)thread;
  const synthetic_t *sy = ctx;
  double co = 0.0, act_bits = 0.0;
  for (size_t l = 0; l < layers; l++) {
    co += relative_error(&g[l].weight, sy->weight[l]) + relative_error(&g[l].act, sy->act[l]);
    act_bits += g[l].act.n;
  }
  out->l_co = co;
  out->l_cr = lpq_genome_weight_bits(g, layers, NULL) / 32.0;
  out->constraint[0] = act_bits / (double)layers - 6.0;
  return isnan(co) ? LPQ_ENAN : 0;
}

static const double REF[2] = {2.0 * LAYERS, 8.0 / 32.0 + 1e-9};

static double front_hv(const lpq_eval_result_t *r, size_t count) {
  double *pts = malloc((count + 1) * 2 * sizeof *pts);
  size_t m = 0;
  for (size_t i = 0; i < count; i++)
    if (r[i].status == 0 && r[i].constraint[0] <= 0) {
      pts[2 * m] = r[i].l_co;
      pts[2 * m + 1] = r[i].l_cr;
      m++;
    }
  double hv = lpq_hypervolume_2d(pts, m, REF);
  free(pts);
  return hv;
}

typedef struct variant_t {
  const char *name;
  int random, scalar;
  size_t siblings;
} variant_t;

static double run_variant(synthetic_t *sy, const variant_t *v, uint64_t seed, size_t budget,
                          lpq_thread_evaluator_t *ev) {
  lpq_search_space_t sp;
  lpq_search_space_default(&sp);
  sp.layer_count = LAYERS;
  sp.layers = sy->spec;
  lpq_eval_result_t *r = calloc(budget, sizeof *r);
  if (!r)
    exit(1);
  size_t n = 0;
  if (v->random) {
    lpq_search_space_t resolved;
    lpq_search_space_resolve(&sp, &resolved, NULL);
    lpq_layer_formats_t *g = malloc(budget * LAYERS * sizeof *g);
    lpq_rng_t rng;
    lpq_rng_seed(&rng, seed);
    for (size_t i = 0; i < budget; i++)
      lpq_genome_random(&resolved, &rng, g + i * LAYERS);
    lpq_thread_evaluator_iface(ev).evaluate(ev, g, LAYERS, budget, r, NULL);
    n = budget;
    free(g);
  } else {
    lpq_search_settings_t set;
    lpq_search_settings_default(&set);
    set.seed = seed;
    set.mode = v->scalar ? LPQ_SEARCH_SCALAR : LPQ_SEARCH_PARETO;
    set.siblings = v->siblings;
    set.constraint_count = 1;
    set.max_generations = 0;
    set.max_evaluations = budget;
    lpq_error_t err = {0};
    lpq_search_t *s = lpq_search_new(&sp, &set, &err);
    if (!s || lpq_search_run(s, lpq_thread_evaluator_iface(ev), &err)) {
      fprintf(stderr, "search: %s\n", err.msg);
      exit(1);
    }
    n = lpq_search_archive_count(s);
    for (size_t i = 0; i < n; i++) {
      lpq_search_record_t rec;
      lpq_search_archive_get(s, i, &rec);
      r[i] = rec.result;
    }
    lpq_search_free(&s);
  }
  double hv = front_hv(r, n);
  free(r);
  return hv;
}

/* A score that costs nothing, to time the search's own work. */
static int free_score(void *ctx, size_t thread, const lpq_layer_formats_t *g,
                      size_t layers, lpq_eval_result_t *out) {
  (void)ctx, (void)thread;
  double co = 0.0;
  for (size_t l = 0; l < layers; l++)
    co += pow(2.0, -g[l].weight.n) * (1 + 0.1 * g[l].weight.es) + pow(2.0, -g[l].act.n);
  out->l_co = co;
  out->l_cr = lpq_genome_weight_bits(g, layers, NULL) / 32.0;
  return 0;
}

int main(int argc, char **argv) {
  size_t budget = argc > 1 ? (size_t)atol(argv[1]) : 2000;
  int seeds = argc > 2 ? atoi(argv[2]) : 5;
  static synthetic_t sy;
  synthetic_init(&sy);
  lpq_thread_evaluator_t *ev = lpq_thread_evaluator_new(2, synthetic_score, &sy, NULL);
  static const variant_t variants[] = {
      {"LPQ NSGA-II, 2 siblings", 0, 0, 2},
      {"LPQ NSGA-II, no siblings", 0, 0, 0},
      {"LPQ scalar (lambda 1)", 0, 1, 2},
      {"random search", 1, 0, 0},
  };
  printf("%d layers, %d values per tensor, %zu evaluations, %d seeds; hypervolume of the "
         "feasible front, reference (%g, %g)\n", LAYERS, ELEMS, budget, seeds, REF[0], REF[1]);
  double hv_mean[4] = {0};
  for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++) {
    double sum = 0, sum2 = 0, lo = INFINITY, hi = -INFINITY, t0 = now();
    for (int k = 0; k < seeds; k++) {
      double hv = run_variant(&sy, &variants[v], (uint64_t)k + 1, budget, ev);
      sum += hv;
      sum2 += hv * hv;
      lo = fmin(lo, hv);
      hi = fmax(hi, hv);
    }
    double mean = sum / seeds, sd = sqrt(fmax(0.0, sum2 / seeds - mean * mean));
    hv_mean[v] = mean;
    printf("  %-26s hypervolume %.4f +- %.4f (min %.4f, max %.4f), %.1f s\n", variants[v].name,
           mean, sd, lo, hi, now() - t0);
  }
  lpq_thread_evaluator_free(&ev);
  bench_verdict("search_vs_random", "mean hypervolume, LPQ NSGA-II / random search",
                hv_mean[0] / hv_mean[3], ">", 1.0, "x");

  /* Overhead: 100 genomes per generation with 2 siblings each, a free objective. */
  lpq_search_space_t sp;
  lpq_search_space_default(&sp);
  sp.layer_count = LAYERS;
  sp.layers = sy.spec;
  lpq_search_settings_t set;
  lpq_search_settings_default(&set);
  set.population = 100;
  set.max_generations = 0;
  set.max_evaluations = 20000;
  lpq_search_t *s = lpq_search_new(&sp, &set, NULL);
  lpq_thread_evaluator_t *fe = lpq_thread_evaluator_new(1, free_score, NULL, NULL);
  double t0 = now();
  lpq_search_run(s, lpq_thread_evaluator_iface(fe), NULL);
  double t_run = now() - t0;
  char *json = NULL;
  t0 = now();
  lpq_search_save(s, &json, NULL);
  double t_save = now() - t0;
  size_t json_len = json ? strlen(json) : 0;
  t0 = now();
  lpq_search_t *back = lpq_search_restore(&sp, &set, json, NULL);
  double t_restore = now() - t0;
  printf("search overhead: %zu evaluations in %zu generations, %.1f us per evaluation (objective "
         "included, near free); save %.2f MB in %.3f s, restore %.3f s (%s)\n",
         lpq_search_evaluations(s), lpq_search_generation(s), 1e6 * t_run / 20000.0,
         json_len / 1e6, t_save, t_restore, back ? "ok" : "FAILED");
  free(json);
  lpq_search_free(&back);
  lpq_search_free(&s);
  lpq_thread_evaluator_free(&fe);
  return 0;
}
