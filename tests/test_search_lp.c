/* tests/test_search_lp.c: the LPQ search on LP genomes. A synthetic objective stands in for
** the network: L_CO = the sum over layers of the relative squared quantization error of a
** Gaussian weight tensor and a half-normal activation tensor (through lp_quantizer_t), L_CR =
** mean weight bits / 32, and one constraint, mean activation bits <= 6. The search must find a
** better front (hypervolume) than random search with the same number of evaluations. Also:
** the genome space, pins, the hash, de-duplication, scalar mode, the stopping rules. */
#include "coordinator/search/search.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LAYERS 8
#define ELEMS 512
#define ACT_BITS_MAX 6.0

typedef struct synthetic_t {
  float weight[LAYERS][ELEMS], act[LAYERS][ELEMS];
  lpq_layer_spec_t spec[LAYERS];
} synthetic_t;

static double gaussian(lpq_rng_t *rng) {
  double u = lpq_rng_uniform(rng), v = lpq_rng_uniform(rng);
  return sqrt(-2.0 * log(1.0 - u)) * cos(2.0 * M_PI * v);
}

/* Layers of different scales; each sf seed centres the format on its tensor's scale. */
static void synthetic_init(synthetic_t *sy, uint64_t seed) {
  lpq_rng_t rng;
  lpq_rng_seed(&rng, seed);
  memset(sy->spec, 0, sizeof sy->spec);
  for (int l = 0; l < LAYERS; l++) {
    double sw = 0.5 * pow(2.0, -(l % 4)), sa = pow(2.0, l % 3);
    for (int i = 0; i < ELEMS; i++) {
      sy->weight[l][i] = (float)(sw * gaussian(&rng));
      sy->act[l][i] = (float)fabs(sa * gaussian(&rng));
    }
    sy->spec[l].weight_sf_seed = (int)lround(-log2(sw));
    sy->spec[l].act_sf_seed = (int)lround(-log2(sa));
  }
}

static double relative_error(const lp_format_t *f, const float *x, size_t n) {
  lp_quantizer_t *q = lp_quantizer_new(f, NULL);
  cr_assert_not_null(q);
  float out[ELEMS];
  cr_assert_eq(lp_quantize_f32(q, x, out, n, NULL), 0);
  lp_quantizer_free(&q);
  double e = 0.0, s = 0.0;
  for (size_t i = 0; i < n; i++) {
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
    co += relative_error(&g[l].weight, sy->weight[l], ELEMS);
    if (g[l].act.n) {
      co += relative_error(&g[l].act, sy->act[l], ELEMS);
      act_bits += g[l].act.n;
    }
  }
  out->l_co = co;
  out->l_cr = lpq_genome_weight_bits(g, layers, NULL) / 32.0;
  out->constraint[0] = act_bits / (double)layers - ACT_BITS_MAX;
  return 0;
}

static lpq_search_space_t synthetic_space(synthetic_t *sy) {
  lpq_search_space_t sp;
  lpq_search_space_default(&sp);
  sp.layer_count = LAYERS;
  sp.layers = sy->spec;
  return sp;
}

static lpq_search_settings_t synthetic_settings(uint64_t seed, size_t max_evaluations) {
  lpq_search_settings_t set;
  lpq_search_settings_default(&set);
  set.seed = seed;
  set.constraint_count = 1;
  set.max_generations = 0;
  set.max_evaluations = max_evaluations;
  return set;
}

/* The hypervolume of the feasible non-dominated points among `count` results; the reference
** point bounds every possible score: L_CO <= 2 per layer (each relative error <= 1, since
** 0 is representable), L_CR <= 8/32. */
static const double REF[2] = {2.0 * LAYERS, 8.0 / 32.0 + 1e-9};

static double feasible_hv(const lpq_eval_result_t *r, size_t count) {
  double *pts = malloc((count + 1) * 2 * sizeof *pts);
  size_t m = 0;
  for (size_t i = 0; i < count; i++)
    if (r[i].status == 0 && r[i].constraint[0] <= 0) {
      cr_assert(r[i].l_co <= REF[0] && r[i].l_cr <= REF[1], "score beyond the reference");
      pts[2 * m] = r[i].l_co;
      pts[2 * m + 1] = r[i].l_cr;
      m++;
    }
  double hv = lpq_hypervolume_2d(pts, m, REF);
  free(pts);
  return hv;
}

static double search_hv(const lpq_search_t *s) {
  size_t n = lpq_search_archive_count(s);
  lpq_eval_result_t *r = malloc((n + 1) * sizeof *r);
  for (size_t i = 0; i < n; i++) {
    lpq_search_record_t rec;
    cr_assert_eq(lpq_search_archive_get(s, i, &rec), 0);
    r[i] = rec.result;
  }
  double hv = feasible_hv(r, n);
  free(r);
  return hv;
}

static lpq_search_t *run_synthetic(synthetic_t *sy, lpq_search_settings_t *set, size_t threads) {
  lpq_search_space_t sp = synthetic_space(sy);
  lpq_error_t err = {0};
  lpq_search_t *s = lpq_search_new(&sp, set, &err);
  cr_assert_not_null(s, "%s", err.msg);
  lpq_thread_evaluator_t *ev = lpq_thread_evaluator_new(threads, synthetic_score, sy, &err);
  cr_assert_not_null(ev, "%s", err.msg);
  cr_assert_eq(lpq_search_run(s, lpq_thread_evaluator_iface(ev), &err), 0, "%s", err.msg);
  lpq_thread_evaluator_free(&ev);
  return s;
}

Test(search_lp, beats_random_search_with_the_same_evaluations) {
  static synthetic_t sy;
  synthetic_init(&sy, 100);
  lpq_search_space_t sp = synthetic_space(&sy);
  lpq_search_space_t resolved;
  cr_assert_eq(lpq_search_space_resolve(&sp, &resolved, NULL), 0);
  const size_t budget = 1200;
  for (uint64_t seed = 1; seed <= 3; seed++) {
    lpq_search_settings_t set = synthetic_settings(seed, budget);
    lpq_search_t *s = run_synthetic(&sy, &set, 2);
    cr_assert_eq(lpq_search_evaluations(s), budget);
    cr_assert_eq(lpq_search_should_stop(s), LPQ_STOP_EVALUATIONS);
    double hv = search_hv(s);

    /* Random search: the same number of genomes drawn uniformly from the same space. */
    lpq_rng_t rng;
    lpq_rng_seed(&rng, 1000 + seed);
    lpq_layer_formats_t g[LAYERS];
    lpq_eval_result_t *r = calloc(budget, sizeof *r);
    for (size_t i = 0; i < budget; i++) {
      lpq_genome_random(&resolved, &rng, g);
      synthetic_score(&sy, 0, g, LAYERS, &r[i]);
    }
    double hv_random = feasible_hv(r, budget);
    free(r);
    cr_log_info("seed %lu: %zu evaluations, search hypervolume %.5f, random search %.5f",
                (unsigned long)seed, budget, hv, hv_random);
    cr_assert_gt(hv, hv_random, "seed %lu: search %.5f not above random search %.5f",
                 (unsigned long)seed, hv, hv_random);
    lpq_search_free(&s);
  }
}

/* Archive records as comparable bytes (genome, result, generation). */
static void assert_same_archive(const lpq_search_t *a, const lpq_search_t *b) {
  size_t n = lpq_search_archive_count(a);
  cr_assert_eq(n, lpq_search_archive_count(b));
  for (size_t i = 0; i < n; i++) {
    lpq_search_record_t ra, rb;
    lpq_search_archive_get(a, i, &ra);
    lpq_search_archive_get(b, i, &rb);
    cr_assert_eq(ra.hash, rb.hash, "record %zu differs", i);
    cr_assert_eq(memcmp(&ra.result, &rb.result, sizeof ra.result), 0, "record %zu result", i);
    cr_assert_eq(ra.generation, rb.generation);
  }
}

Test(search_lp, same_seed_same_search_other_seed_other_search) {
  static synthetic_t sy;
  synthetic_init(&sy, 7);
  lpq_search_settings_t set = synthetic_settings(5, 600);
  set.seed_ladders = 0; /* the seeded ladders are the same for every seed */
  lpq_search_t *a = run_synthetic(&sy, &set, 1), *b = run_synthetic(&sy, &set, 1);
  assert_same_archive(a, b);
  set.seed = 6;
  lpq_search_t *c = run_synthetic(&sy, &set, 1);
  lpq_search_record_t ra, rc;
  size_t differ = 0;
  for (size_t i = 0; i < 40; i++) {
    lpq_search_archive_get(a, i, &ra);
    lpq_search_archive_get(c, i, &rc);
    differ += ra.hash != rc.hash;
  }
  cr_assert_gt(differ, 30, "seeds 5 and 6 gave nearly the same first generation");
  lpq_search_free(&a);
  lpq_search_free(&b);
  lpq_search_free(&c);
}

Test(search_lp, never_scores_a_genome_twice_and_stays_in_the_space) {
  static synthetic_t sy;
  synthetic_init(&sy, 3);
  /* A small space (4..5 bits, es 0..1, sf window 1) with pins: duplicates would be common. */
  sy.spec[0].weight_n_pin = sy.spec[0].act_n_pin = 8;
  sy.spec[LAYERS - 1].pinned = 1;
  sy.spec[LAYERS - 1].formats = (lpq_layer_formats_t){{8, 1, 7, 2}, {8, 2, 7, 0}, 0};
  lpq_search_space_t sp = synthetic_space(&sy);
  sp.n_min = 4;
  sp.n_max = 5;
  sp.es_max = 1;
  sp.sf_window = 1;
  lpq_search_settings_t set = synthetic_settings(11, 0);
  set.max_generations = 25;
  lpq_error_t err = {0};
  lpq_search_t *s = lpq_search_new(&sp, &set, &err);
  cr_assert_not_null(s, "%s", err.msg);
  lpq_thread_evaluator_t *ev = lpq_thread_evaluator_new(2, synthetic_score, &sy, &err);
  cr_assert_eq(lpq_search_run(s, lpq_thread_evaluator_iface(ev), &err), 0, "%s", err.msg);
  size_t n = lpq_search_archive_count(s);
  cr_assert_eq(n, lpq_search_evaluations(s));
  lpq_search_space_t resolved;
  cr_assert_eq(lpq_search_space_resolve(&sp, &resolved, NULL), 0);
  for (size_t i = 0; i < n; i++) {
    lpq_search_record_t ri;
    lpq_search_archive_get(s, i, &ri);
    cr_assert_eq(lpq_genome_check(&resolved, ri.genome, &err), 0, "record %zu: %s", i, err.msg);
    cr_assert_eq(ri.genome[0].weight.n, 8);
    cr_assert_eq(ri.genome[0].act.n, 8);
    for (size_t j = 0; j < i; j++) {
      lpq_search_record_t rj;
      lpq_search_archive_get(s, j, &rj);
      cr_assert(memcmp(ri.genome, rj.genome, LAYERS * sizeof *ri.genome) != 0,
                "records %zu and %zu are the same genome", j, i);
    }
  }
  lpq_thread_evaluator_free(&ev);
  lpq_search_free(&s);
}

Test(search_lp, weight_only_leaves_activations_alone) {
  static synthetic_t sy;
  synthetic_init(&sy, 4);
  lpq_search_space_t sp = synthetic_space(&sy);
  sp.quantize_acts = 0;
  lpq_search_settings_t set = synthetic_settings(2, 300);
  set.constraint_count = 0;
  lpq_error_t err = {0};
  lpq_search_t *s = lpq_search_new(&sp, &set, &err);
  cr_assert_not_null(s, "%s", err.msg);
  lpq_thread_evaluator_t *ev = lpq_thread_evaluator_new(1, synthetic_score, &sy, &err);
  cr_assert_eq(lpq_search_run(s, lpq_thread_evaluator_iface(ev), &err), 0, "%s", err.msg);
  for (size_t i = 0; i < lpq_search_archive_count(s); i++) {
    lpq_search_record_t r;
    lpq_search_archive_get(s, i, &r);
    for (int l = 0; l < LAYERS; l++)
      cr_assert(r.genome[l].act.n == 0 && r.genome[l].act.sf == 0, "record %zu layer %d", i, l);
  }
  lpq_thread_evaluator_free(&ev);
  lpq_search_free(&s);
}

Test(search_lp, scalar_mode_never_loses_its_best) {
  static synthetic_t sy;
  synthetic_init(&sy, 9);
  lpq_search_settings_t set = synthetic_settings(3, 0);
  set.mode = LPQ_SEARCH_SCALAR;
  set.lambda = 2.0;
  set.max_generations = 15;
  lpq_search_t *s = run_synthetic(&sy, &set, 2);
  const lpq_search_progress_t *h;
  size_t n = lpq_search_history(s, &h);
  cr_assert_eq(n, 16);
  for (size_t i = 1; i < n; i++)
    cr_assert(h[i].best_l_f <= h[i - 1].best_l_f, "generation %zu: best L_F %g after %g", i,
              h[i].best_l_f, h[i - 1].best_l_f);
  cr_assert_lt(h[n - 1].best_l_f, h[0].best_l_f, "no progress in 15 generations");
  /* The population is ordered best first, and its head is the archive's best feasible L_F. */
  const size_t *pop;
  size_t pn = lpq_search_population(s, &pop);
  cr_assert_eq(pn, set.population);
  lpq_search_record_t best;
  lpq_search_archive_get(s, pop[0], &best);
  cr_assert_eq(best.l_f, h[n - 1].best_l_f);
  for (size_t i = 0; i < lpq_search_archive_count(s); i++) {
    lpq_search_record_t r;
    lpq_search_archive_get(s, i, &r);
    if (r.violation == 0)
      cr_assert(r.l_f >= best.l_f, "record %zu has L_F %g below the best %g", i, r.l_f,
                best.l_f);
  }
  lpq_search_free(&s);
}

/* FNV-1a 64 over the documented encoding, written out here independently. */
static uint64_t reference_hash(const lpq_layer_formats_t *g, size_t layers) {
  uint64_t h = 0xcbf29ce484222325ull;
  int64_t vals[1 + 8 * LAYERS];
  size_t m = 0;
  vals[m++] = (int64_t)layers;
  for (size_t l = 0; l < layers; l++) {
    const lp_format_t *f[2] = {&g[l].weight, &g[l].act};
    for (int k = 0; k < 2; k++) {
      vals[m++] = f[k]->n;
      vals[m++] = f[k]->es;
      vals[m++] = f[k]->rs;
      vals[m++] = f[k]->sf;
    }
  }
  for (size_t i = 0; i < m; i++)
    for (int b = 0; b < 8; b++) {
      h ^= (uint8_t)((uint64_t)vals[i] >> (8 * b));
      h *= 0x100000001b3ull;
    }
  return h;
}

Test(search_lp, genome_hash_is_the_documented_fnv1a) {
  static synthetic_t sy;
  synthetic_init(&sy, 1);
  lpq_search_space_t sp = synthetic_space(&sy), resolved;
  cr_assert_eq(lpq_search_space_resolve(&sp, &resolved, NULL), 0);
  lpq_rng_t rng;
  lpq_rng_seed(&rng, 8);
  lpq_layer_formats_t g[LAYERS], h[LAYERS];
  for (int trial = 0; trial < 50; trial++) {
    lpq_genome_random(&resolved, &rng, g);
    uint64_t hg = lpq_genome_hash(g, LAYERS);
    cr_assert_eq(hg, reference_hash(g, LAYERS));
    /* Every single-field change moves the hash. */
    for (int l = 0; l < LAYERS; l++)
      for (int k = 0; k < 8; k++) {
        memcpy(h, g, sizeof h);
        int *field = k < 4 ? &(&h[l].weight.n)[k] : &(&h[l].act.n)[k - 4];
        (*field)++;
        cr_assert_neq(lpq_genome_hash(h, LAYERS), hg, "layer %d field %d", l, k);
      }
  }
}

Test(search_lp, invalid_spaces_and_settings_name_the_field) {
  static synthetic_t sy;
  synthetic_init(&sy, 1);
  lpq_search_space_t sp = synthetic_space(&sy), out;
  lpq_error_t err = {0};
  sp.n_max = 17;
  cr_assert_eq(lpq_search_space_resolve(&sp, &out, &err), LPQ_EINVAL);
  cr_assert(strstr(err.msg, "weight bits"), "%s", err.msg);
  sp = synthetic_space(&sy);
  sy.spec[2].pinned = 1;
  sy.spec[2].formats.weight = (lp_format_t){8, 5, 2, 0};
  cr_assert_eq(lpq_search_space_resolve(&sp, &out, &err), LPQ_EINVAL);
  cr_assert(strstr(err.msg, "layer 2") && strstr(err.msg, "es"), "%s", err.msg);
  sy.spec[2].pinned = 0;
  lpq_search_settings_t set = synthetic_settings(1, 10);
  set.constraint_count = 5;
  cr_assert_null(lpq_search_new(&sp, &set, &err));
  cr_assert(strstr(err.msg, "constraints"), "%s", err.msg);
  set = synthetic_settings(1, 0);
  set.max_generations = 0;
  lpq_search_t *s = lpq_search_new(&sp, &set, &err);
  cr_assert_not_null(s);
  lpq_thread_evaluator_t *ev = lpq_thread_evaluator_new(1, synthetic_score, &sy, &err);
  cr_assert_eq(lpq_search_run(s, lpq_thread_evaluator_iface(ev), &err), LPQ_EINVAL);
  cr_assert(strstr(err.msg, "stopping"), "%s", err.msg);
  lpq_thread_evaluator_free(&ev);
  lpq_search_free(&s);
}

Test(search_lp, offspring_change_one_block_of_consecutive_layers) {
  static synthetic_t sy;
  synthetic_init(&sy, 5);
  lpq_search_settings_t set = synthetic_settings(4, 0);
  set.max_generations = 6;
  set.block_max = 2;
  lpq_search_t *s = run_synthetic(&sy, &set, 1);
  size_t n = lpq_search_archive_count(s), children = 0;
  for (size_t i = 0; i < n; i++) {
    lpq_search_record_t r;
    lpq_search_archive_get(s, i, &r);
    if (r.generation == 0)
      continue;
    children++;
    /* Some genome of an earlier generation equals it outside a window of 2 layers. */
    int found = 0;
    for (size_t j = 0; j < n && !found; j++) {
      lpq_search_record_t p;
      lpq_search_archive_get(s, j, &p);
      if (p.generation >= r.generation)
        continue;
      int first = -1, last = -1;
      for (int l = 0; l < LAYERS; l++)
        if (memcmp(&r.genome[l], &p.genome[l], sizeof r.genome[l]) != 0) {
          if (first < 0)
            first = l;
          last = l;
        }
      found = first >= 0 && last - first < 2;
    }
    cr_assert(found, "record %zu (generation %zu) is no block change of an earlier genome", i,
              r.generation);
  }
  cr_assert_gt(children, 100);
  lpq_search_free(&s);
}
