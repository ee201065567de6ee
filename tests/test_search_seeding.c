/* tests/test_search_seeding.c: the search's use of per-layer sensitivity (issue 13, item 3):
** the initial population holds the allocation of bits that minimises the summed rise of L_CO
** under the budget (checked against a brute force over every allocation), the mutation's lean
** toward more bits on sensitive layers, and that the search stays deterministic with both on.
** The objective is synthetic and is the sensitivity itself: L_CO = the sum over layers of the
** layer's rise at its width, so the best genome under the budget is known exactly. */
#include "coordinator/search/search_internal.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LAYERS 5
#define BUDGET 4.0

/* layer 1 is small and sensitive (a depthwise conv's shape), layer 2 large and robust */
static const size_t counts[LAYERS] = {1000, 100, 2000, 500, 1000};
static const double scale[LAYERS] = {1.0, 60.0, 0.5, 5.0, 2.0};

static double rise(size_t l, int n) { return scale[l] * pow(4.0, -n); }

static lpq_layer_spec_t specs[LAYERS];

static void specs_init(int with_sensitivity) {
  memset(specs, 0, sizeof specs);
  for (size_t l = 0; l < LAYERS; l++) {
    specs[l].weight_count = with_sensitivity ? counts[l] : 0;
    for (int n = 2; with_sensitivity && n <= 8; n++)
      specs[l].weight_sens[n] = rise(l, n);
  }
}

static double mean_bits(const lpq_layer_formats_t *g) {
  double c[LAYERS];
  for (size_t l = 0; l < LAYERS; l++)
    c[l] = (double)counts[l];
  return lpq_genome_weight_bits(g, LAYERS, c);
}

static int score(void *ctx, size_t thread, const lpq_layer_formats_t *g, size_t layers,
                 lpq_eval_result_t *out) {
  (void)ctx, (void)thread;
  double co = 0;
  for (size_t l = 0; l < layers; l++)
    co += rise(l, g[l].weight.n);
  out->l_co = co;
  out->l_cr = mean_bits(g) / 32.0;
  out->constraint[0] = mean_bits(g) - BUDGET;
  return 0;
}

/* The tests' space: LAYERS weight-only layers of 2..8 bits (specs_init first). */
static void space(lpq_search_space_t *sp) {
  lpq_search_space_default(sp);
  sp->layer_count = LAYERS;
  sp->layers = specs;
  sp->n_min = 2;
  sp->n_max = 8;
  sp->quantize_acts = 0;
}

static lpq_search_t *run(int with_sensitivity, size_t evaluations, size_t threads, uint64_t seed) {
  specs_init(with_sensitivity);
  lpq_search_space_t sp;
  space(&sp);
  lpq_search_settings_t set;
  lpq_search_settings_default(&set);
  set.max_generations = 0;
  set.max_evaluations = evaluations;
  set.population = 16;
  set.constraint_count = 1;
  set.seed = seed;
  set.seed_budget = with_sensitivity ? BUDGET : 0;
  lpq_error_t err = {0};
  lpq_search_t *s = lpq_search_new(&sp, &set, &err);
  cr_assert_not_null(s, "%s", err.msg);
  lpq_thread_evaluator_t *ev = lpq_thread_evaluator_new(threads, score, NULL, &err);
  cr_assert_not_null(ev, "%s", err.msg);
  cr_assert_eq(lpq_search_run(s, lpq_thread_evaluator_iface(ev), &err), 0, "%s", err.msg);
  lpq_thread_evaluator_free(&ev);
  return s;
}

/* The lowest summed rise over every allocation of 2..8 bits within the budget. */
static double brute_force_best(void) {
  double best = INFINITY;
  int n[LAYERS];
  for (long code = 0; code < 16807; code++) { /* 7^5 */
    long c = code;
    double bits = 0, total = 0, cost = 0;
    for (size_t l = 0; l < LAYERS; l++, c /= 7) {
      n[l] = 2 + (int)(c % 7);
      bits += (double)counts[l] * n[l];
      total += (double)counts[l];
      cost += rise(l, n[l]);
    }
    if (bits <= BUDGET * total + 1e-9 && cost < best)
      best = cost;
  }
  return best;
}

/* The lowest L_CO among feasible records of the first `first` evaluations. */
static double best_feasible(const lpq_search_t *s, size_t first) {
  double best = INFINITY;
  for (size_t i = 0; i < lpq_search_archive_count(s) && i < first; i++) {
    lpq_search_record_t r;
    cr_assert_eq(lpq_search_archive_get(s, i, &r), 0);
    if (r.violation == 0 && r.result.l_co < best)
      best = r.result.l_co;
  }
  return best;
}

TestSuite(search_seeding, .timeout = 60);

Test(search_seeding, initial_population_holds_the_best_allocation_under_the_budget) {
  const double want = brute_force_best();
  lpq_search_t *s = run(1, 16, 2, 1);
  double got = best_feasible(s, 16);
  cr_assert_float_eq(got, want, 1e-12 * want, "seeded generation 0: %.9g, brute force %.9g",
                     got, want);
  /* every seed stays within the budget */
  lpq_search_record_t r;
  cr_assert_eq(lpq_search_archive_get(s, 0, &r), 0);
  cr_assert_leq(mean_bits(r.genome), BUDGET + 1e-9);
  lpq_search_free(&s);
  /* without sensitivity the same generation 0 (ladders and random genomes) is further off */
  lpq_search_t *u = run(0, 16, 2, 1);
  double plain = best_feasible(u, 16);
  cr_assert_gt(plain, want, "unseeded generation 0 reached the optimum %.9g", plain);
  lpq_search_free(&u);
}

Test(search_seeding, lean_ranks_layers_by_rise_per_weight) {
  lpq_search_t *s = run(1, 16, 1, 1);
  cr_assert_not_null(s->lean, "sensitivity given, no lean");
  /* rise per weight at the budget's width: layer 1 highest, layer 2 lowest */
  for (size_t l = 0; l < LAYERS; l++)
    cr_assert(s->lean[l] >= 0.3 - 1e-12 && s->lean[l] <= 0.7 + 1e-12, "lean[%zu] %g", l,
              s->lean[l]);
  cr_assert_float_eq(s->lean[1], 0.7, 1e-12);
  cr_assert_float_eq(s->lean[2], 0.3, 1e-12);
  lpq_search_free(&s);
  lpq_search_t *u = run(0, 16, 1, 1);
  cr_assert_null(u->lean, "no sensitivity, yet a lean");
  lpq_search_free(&u);
}

/* Mutation under the lean: a width step goes up with the layer's lean (0.7 / 0.3), evenly
** without one. */
Test(search_seeding, mutation_steps_up_with_the_lean) {
  specs_init(1);
  lpq_search_space_t sp0, sp;
  space(&sp0);
  cr_assert_eq(lpq_search_space_resolve(&sp0, &sp, NULL), 0);
  lpq_layer_formats_t parent[LAYERS], child[LAYERS];
  lpq_genome_seeded(&sp, 5, 8, parent);
  const double lean[LAYERS] = {0.5, 0.7, 0.3, 0.5, 0.5};
  for (int leaning = 0; leaning < 2; leaning++) {
    lpq_rng_t rng;
    lpq_rng_seed(&rng, 7);
    size_t up[LAYERS] = {0}, moved[LAYERS] = {0};
    for (int t = 0; t < 20000; t++) {
      search_block_t all = {0, LAYERS};
      lpq__genome_cross_block(&sp, leaning ? lean : NULL, &rng, parent, parent, all, 1.0, child);
      for (size_t l = 0; l < LAYERS; l++)
        if (child[l].weight.n != parent[l].weight.n) {
          moved[l]++;
          up[l] += child[l].weight.n > parent[l].weight.n;
        }
    }
    for (size_t l = 1; l <= 2; l++) {
      cr_assert_gt(moved[l], 2000, "layer %zu: %zu width steps", l, moved[l]);
      double p = (double)up[l] / (double)moved[l], want = leaning ? lean[l] : 0.5;
      cr_assert(fabs(p - want) < 0.05, "layer %zu, lean %s: %.3f of width steps up (want %.2f)",
                l, leaning ? "on" : "off", p, want);
    }
  }
}

Test(search_seeding, same_seed_same_run_whatever_the_threads) {
  lpq_search_t *a = run(1, 160, 1, 3), *b = run(1, 160, 3, 3), *c = run(1, 160, 1, 4);
  cr_assert_eq(lpq_search_archive_count(a), lpq_search_archive_count(b));
  size_t same_c = 0;
  for (size_t i = 0; i < lpq_search_archive_count(a); i++) {
    lpq_search_record_t ra, rb, rc;
    lpq_search_archive_get(a, i, &ra);
    lpq_search_archive_get(b, i, &rb);
    cr_assert_eq(ra.hash, rb.hash, "record %zu", i);
    cr_assert_eq(ra.result.l_co, rb.result.l_co, "record %zu", i);
    if (i < lpq_search_archive_count(c) && lpq_search_archive_get(c, i, &rc) == 0)
      same_c += rc.hash == ra.hash;
  }
  size_t *fa = NULL, *fb = NULL, na = 0, nb = 0;
  cr_assert_eq(lpq_search_front(a, &fa, &na, NULL), 0);
  cr_assert_eq(lpq_search_front(b, &fb, &nb, NULL), 0);
  cr_assert_eq(na, nb);
  cr_assert_arr_eq(fa, fb, na * sizeof *fa);
  /* the seeds are the same whatever the seed; the rest of another seed's run is not */
  cr_assert_lt(same_c, lpq_search_archive_count(a), "seed 4 ran seed 3's search");
  free(fa), free(fb);
  lpq_search_free(&a);
  lpq_search_free(&b);
  lpq_search_free(&c);
}
