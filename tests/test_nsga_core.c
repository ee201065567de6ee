/* tests/test_nsga_core.c: the NSGA-II core against brute force: constrained domination, the
** fronts, crowding distance, survival, tournament, the exact 2-D hypervolume; and the PRNG. */
#include "coordinator/search/search_internal.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

Test(nsga_core, constrained_domination) {
  double a[2] = {1, 2}, b[2] = {2, 3}, c[2] = {0, 5};
  cr_assert_eq(lpq_nsga_compare(a, 0, b, 0, 2), -1);
  cr_assert_eq(lpq_nsga_compare(b, 0, a, 0, 2), 1);
  cr_assert_eq(lpq_nsga_compare(a, 0, c, 0, 2), 0);
  cr_assert_eq(lpq_nsga_compare(a, 0, a, 0, 2), 0);
  /* Feasible beats infeasible whatever the objectives; less violation beats more. */
  cr_assert_eq(lpq_nsga_compare(b, 0, a, 0.5, 2), -1);
  cr_assert_eq(lpq_nsga_compare(b, 1.0, a, 0.5, 2), 1);
  cr_assert_eq(lpq_nsga_compare(b, 0.5, a, 0.5, 2), 0);
}

/* Random points with a few exact duplicates and ties, and some infeasible. */
static void random_points(lpq_rng_t *rng, double *obj, double *viol, size_t count) {
  for (size_t i = 0; i < count; i++) {
    obj[2 * i] = (double)lpq_rng_range(rng, 0, 20);
    obj[2 * i + 1] = (double)lpq_rng_range(rng, 0, 20);
    viol[i] = lpq_rng_uniform(rng) < 0.2 ? (double)lpq_rng_range(rng, 1, 3) : 0.0;
  }
}

Test(nsga_core, fronts_match_brute_force) {
  lpq_rng_t rng;
  lpq_rng_seed(&rng, 7);
  enum { N = 150 };
  double obj[2 * N], viol[N], crowd[N];
  size_t rank[N];
  for (int trial = 0; trial < 20; trial++) {
    random_points(&rng, obj, viol, N);
    cr_assert_eq(lpq_nsga_rank(obj, viol, N, 2, rank, crowd, NULL), 0);
    for (size_t i = 0; i < N; i++) {
      /* Rank r: dominated by someone of rank r - 1 and by nobody of rank >= r. */
      int by_previous = 0;
      for (size_t j = 0; j < N; j++) {
        int c = lpq_nsga_compare(obj + 2 * j, viol[j], obj + 2 * i, viol[i], 2);
        if (c < 0) {
          cr_assert_lt(rank[j], rank[i], "point %zu rank %zu dominated by %zu rank %zu", i,
                       rank[i], j, rank[j]);
          by_previous |= rank[j] + 1 == rank[i];
        }
      }
      cr_assert(rank[i] == 0 || by_previous, "point %zu of rank %zu has no dominator above",
                i, rank[i]);
    }
  }
}

Test(nsga_core, crowding_distance_of_a_line) {
  /* Five points on f2 = 4 - f1 at f1 = 0, 1, 3, 3.5, 4: extremes infinite, the inner ones
  ** the sum over objectives of (next - previous) / range. */
  double obj[] = {3, 1, 0, 4, 4, 0, 1, 3, 3.5, 0.5};
  double crowd[5];
  size_t rank[5];
  cr_assert_eq(lpq_nsga_rank(obj, NULL, 5, 2, rank, crowd, NULL), 0);
  for (int i = 0; i < 5; i++)
    cr_assert_eq(rank[i], 0);
  cr_assert(isinf(crowd[1]) && isinf(crowd[2]));
  cr_assert_float_eq(crowd[3], 2 * (3.0 - 0.0) / 4, 1e-12); /* f1 = 1 */
  cr_assert_float_eq(crowd[0], 2 * (3.5 - 1.0) / 4, 1e-12); /* f1 = 3 */
  cr_assert_float_eq(crowd[4], 2 * (4.0 - 3.0) / 4, 1e-12); /* f1 = 3.5 */
}

Test(nsga_core, survivors_take_whole_fronts_then_the_least_crowded) {
  lpq_rng_t rng;
  lpq_rng_seed(&rng, 11);
  enum { N = 120, KEEP = 50 };
  double obj[2 * N], viol[N], crowd[N];
  size_t rank[N], chosen[KEEP];
  random_points(&rng, obj, viol, N);
  cr_assert_eq(lpq_nsga_rank(obj, viol, N, 2, rank, crowd, NULL), 0);
  cr_assert_eq(lpq_nsga_survivors(obj, viol, N, 2, KEEP, chosen, NULL), 0);
  int in[N] = {0};
  for (size_t i = 0; i < KEEP; i++) {
    cr_assert(i == 0 || chosen[i] > chosen[i - 1], "chosen not increasing");
    in[chosen[i]] = 1;
  }
  /* Nobody left out is better by (rank, crowding) than anybody kept. */
  for (size_t out = 0; out < N; out++)
    for (size_t k = 0; k < N; k++)
      if (!in[out] && in[k])
        cr_assert(rank[out] > rank[k] || (rank[out] == rank[k] && crowd[out] <= crowd[k]),
                  "left out %zu (rank %zu, crowding %g) beats kept %zu (rank %zu, %g)", out,
                  rank[out], crowd[out], k, rank[k], crowd[k]);
}

Test(nsga_core, tournament_prefers_lower_rank) {
  size_t rank[2] = {0, 1};
  double crowd[2] = {0.1, 5.0};
  lpq_rng_t rng;
  lpq_rng_seed(&rng, 3);
  size_t wins[2] = {0, 0};
  for (int i = 0; i < 4000; i++)
    wins[lpq_nsga_tournament(&rng, rank, crowd, 2)]++;
  /* Point 1 wins only when drawn twice: a quarter of the time. */
  cr_assert(wins[1] > 800 && wins[1] < 1200, "rank-1 point won %zu of 4000", wins[1]);
}

Test(nsga_core, hypervolume_matches_a_grid_count) {
  lpq_rng_t rng;
  lpq_rng_seed(&rng, 5);
  for (int trial = 0; trial < 10; trial++) {
    enum { N = 12, G = 40 };
    double pts[2 * N], ref[2] = {G, G};
    for (int i = 0; i < N; i++) {
      pts[2 * i] = lpq_rng_range(&rng, 0, G + 5); /* some beyond the reference */
      pts[2 * i + 1] = lpq_rng_range(&rng, 0, G + 5);
    }
    /* Integer points: count the unit cells dominated by some point. */
    double cells = 0;
    for (int x = 0; x < G; x++)
      for (int y = 0; y < G; y++) {
        int dominated = 0;
        for (int i = 0; i < N && !dominated; i++)
          dominated = pts[2 * i] <= x && pts[2 * i + 1] <= y;
        cells += dominated;
      }
    cr_assert_float_eq(lpq_hypervolume_2d(pts, N, ref), cells, 1e-9);
  }
  cr_assert_float_eq(lpq_hypervolume_2d(NULL, 0, (double[2]){1, 1}), 0.0, 0);
}

Test(nsga_core, rng_is_seeded_and_uniform) {
  lpq_rng_t a, b;
  lpq_rng_seed(&a, 42);
  lpq_rng_seed(&b, 42);
  for (int i = 0; i < 100; i++)
    cr_assert_eq(lpq_rng_next(&a), lpq_rng_next(&b));
  lpq_rng_seed(&b, 43);
  cr_assert_neq(lpq_rng_next(&a), lpq_rng_next(&b));
  size_t hist[7] = {0};
  for (int i = 0; i < 70000; i++) {
    int v = lpq_rng_range(&a, -3, 3);
    cr_assert(v >= -3 && v <= 3);
    hist[v + 3]++;
  }
  for (int i = 0; i < 7; i++)
    cr_assert(hist[i] > 9500 && hist[i] < 10500, "value %d drawn %zu times", i - 3, hist[i]);
  for (int i = 0; i < 1000; i++) {
    double u = lpq_rng_uniform(&a);
    cr_assert(u >= 0.0 && u < 1.0);
  }
}

Test(nsga_core, sbx_and_mutation_stay_in_bounds) {
  lpq_rng_t rng;
  lpq_rng_seed(&rng, 9);
  double lo[4] = {0, -1, 2, 5}, hi[4] = {1, 1, 3, 5}, p1[4] = {0, -1, 3, 5}, p2[4] = {1, 1, 2, 5};
  double c1[4], c2[4];
  for (int i = 0; i < 2000; i++) {
    lpq__sbx(&rng, p1, p2, c1, c2, lo, hi, 4, 2.0);
    lpq__polynomial_mutation(&rng, c1, lo, hi, 4, 5.0, 1.0);
    for (int v = 0; v < 4; v++)
      cr_assert(c1[v] >= lo[v] && c1[v] <= hi[v] && c2[v] >= lo[v] && c2[v] <= hi[v],
                "variable %d out of bounds: %g %g", v, c1[v], c2[v]);
  }
}

/* Two objectives are ranked by one sort, not by comparing every pair: the ranks and crowding
** distances must be the pairwise sort's, bit for bit, also with many ties, duplicates, negative
** violations (feasible), infinities and infeasible groups. */
Test(nsga_core, two_objective_sort_equals_pairwise) {
  lpq_rng_t rng;
  lpq_rng_seed(&rng, 11);
  enum { N = 400 };
  static double obj[2 * N], viol[N], crowd_a[N], crowd_b[N];
  static size_t rank_a[N], rank_b[N];
  for (int trial = 0; trial < 60; trial++) {
    size_t n = 1 + (size_t)lpq_rng_range(&rng, 0, N - 1);
    int spread = trial % 3 == 0 ? 4 : trial % 3 == 1 ? 40 : 100000;
    for (size_t i = 0; i < n; i++) {
      obj[2 * i] = (double)lpq_rng_range(&rng, 0, spread) / 7.0;
      obj[2 * i + 1] = (double)lpq_rng_range(&rng, 0, spread) / 3.0;
      if (lpq_rng_uniform(&rng) < 0.05)
        obj[2 * i + lpq_rng_range(&rng, 0, 1)] = INFINITY;
      double u = lpq_rng_uniform(&rng);
      viol[i] = u < 0.15 ? (double)lpq_rng_range(&rng, 1, 4) / 2.0 : u < 0.2 ? -0.5
                : u < 0.22 ? INFINITY : 0.0;
    }
    double *v = trial % 5 == 4 ? NULL : viol;
    cr_assert_eq(lpq_nsga_rank(obj, v, n, 2, rank_a, crowd_a, NULL), 0);
    cr_assert_eq(lpq__nsga_rank_pairwise(obj, v, n, 2, rank_b, crowd_b, NULL), 0);
    for (size_t i = 0; i < n; i++) {
      cr_assert_eq(rank_a[i], rank_b[i], "trial %d, solution %zu of %zu", trial, i, n);
      cr_assert(crowd_a[i] == crowd_b[i] || (isnan(crowd_a[i]) && isnan(crowd_b[i])),
                "trial %d, solution %zu: crowding %g, pairwise %g", trial, i, crowd_a[i],
                crowd_b[i]);
    }
    /* ranks only, and with NaN objectives (the pairwise sort's meaning is kept) */
    cr_assert_eq(lpq_nsga_rank(obj, v, n, 2, rank_a, NULL, NULL), 0);
    for (size_t i = 0; i < n; i++)
      cr_assert_eq(rank_a[i], rank_b[i]);
    obj[0] = NAN;
    cr_assert_eq(lpq_nsga_rank(obj, v, n, 2, rank_a, crowd_a, NULL), 0);
    cr_assert_eq(lpq__nsga_rank_pairwise(obj, v, n, 2, rank_b, crowd_b, NULL), 0);
    for (size_t i = 0; i < n; i++)
      cr_assert_eq(rank_a[i], rank_b[i]);
  }
}

/* A population of 100000 selects from a pool of 300000: the pairwise sort needed about
** 4.5 x 10^10 comparisons and edges (minutes, more memory than the machine). */
Test(nsga_core, two_objective_sort_scales) {
  enum { N = 300000 };
  double *obj = malloc(2 * N * sizeof *obj), *viol = malloc(N * sizeof *viol);
  size_t *chosen = malloc(N / 3 * sizeof *chosen);
  cr_assert(obj && viol && chosen);
  lpq_rng_t rng;
  lpq_rng_seed(&rng, 5);
  for (size_t i = 0; i < N; i++) {
    obj[2 * i] = lpq_rng_uniform(&rng);
    obj[2 * i + 1] = (double)lpq_rng_range(&rng, 2, 8) / 32.0; /* a few distinct sizes */
    viol[i] = lpq_rng_uniform(&rng) < 0.1 ? lpq_rng_uniform(&rng) : 0.0;
  }
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  cr_assert_eq(lpq_nsga_survivors(obj, viol, N, 2, N / 3, chosen, NULL), 0);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double took = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
  cr_assert_lt(took, 20.0, "survivors of %d took %.1f s", N, took); /* ~0.2 s; ASan, idle */
  for (size_t i = 1; i < N / 3; i++)
    cr_assert_gt(chosen[i], chosen[i - 1]);
  free(obj);
  free(viol);
  free(chosen);
}
