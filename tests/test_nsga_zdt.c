/* tests/test_nsga_zdt.c: the known answers. NSGA-II (population 100, 250 generations,
** SBX eta 20 with probability 0.9, polynomial mutation eta 20 with probability 1/n) on ZDT1,
** ZDT2, ZDT3 (30 variables) and the constrained BNH and TNK reaches a hypervolume within 1% of
** the true front's. The true hypervolume is the exact area of a dense sampling (10^6 points) of
** the known Pareto front (checked against the analytic value for ZDT1 and ZDT2).
**
** Reference points: ZDT (2, 2), BNH (140, 55), TNK (1.2, 1.2). At the conventional (1.1, 1.1)
** (BNH: (137, 51)) even a perfectly converged 100-point set on ZDT2 misses about 0.9% of the
** continuous front's area (the gaps of the staircase), so the bar there is 98.5% (measured
** 98.7-99.7%); and IGD (the mean distance from the true front to the found set, in objectives
** scaled by the front's range) at most 0.007 (measured 0.0034-0.0062), the bound
** docs/MEASUREMENTS.md states, so closeness and spread stay held. */
#include "coordinator/search/search_internal.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

#define ZDT_VARS 30
#define ZDT_REF 2.0 /* reference point (2, 2) for every ZDT problem */

static double zdt_g(const double *x) {
  double sum = 0.0;
  for (int i = 1; i < ZDT_VARS; i++)
    sum += x[i];
  return 1.0 + 9.0 * sum / (ZDT_VARS - 1);
}

static void zdt1(void *ctx, const double *x, double *f, double *g) {
  (void)ctx, (void)g;
  double gx = zdt_g(x);
  f[0] = x[0];
  f[1] = gx * (1.0 - sqrt(x[0] / gx));
}

static void zdt2(void *ctx, const double *x, double *f, double *g) {
  (void)ctx, (void)g;
  double gx = zdt_g(x);
  f[0] = x[0];
  f[1] = gx * (1.0 - (x[0] / gx) * (x[0] / gx));
}

static double zdt3_h(double f1, double gx) {
  return 1.0 - sqrt(f1 / gx) - (f1 / gx) * sin(10.0 * M_PI * f1);
}

static void zdt3(void *ctx, const double *x, double *f, double *g) {
  (void)ctx, (void)g;
  double gx = zdt_g(x);
  f[0] = x[0];
  f[1] = gx * zdt3_h(x[0], gx);
}

/* BNH (Binh and Korn 1997): two constraints, x1 in [0,5], x2 in [0,3]. */
static void bnh(void *ctx, const double *x, double *f, double *g) {
  (void)ctx;
  f[0] = 4 * x[0] * x[0] + 4 * x[1] * x[1];
  f[1] = (x[0] - 5) * (x[0] - 5) + (x[1] - 5) * (x[1] - 5);
  g[0] = (x[0] - 5) * (x[0] - 5) + x[1] * x[1] - 25.0;
  g[1] = 7.7 - ((x[0] - 8) * (x[0] - 8) + (x[1] + 3) * (x[1] + 3));
}

/* TNK (Tanaka 1995): the front lies on the wavy constraint boundary, in pieces. */
static void tnk(void *ctx, const double *x, double *f, double *g) {
  (void)ctx;
  f[0] = x[0];
  f[1] = x[1];
  g[0] = 1.0 + 0.1 * cos(16.0 * atan2(x[0], x[1])) - x[0] * x[0] - x[1] * x[1];
  g[1] = (x[0] - 0.5) * (x[0] - 0.5) + (x[1] - 0.5) * (x[1] - 0.5) - 0.5;
}

typedef void (*problem_fn)(void *, const double *, double *, double *);
/* A point of the true front for t in [0, 1]; *valid = 0 drops it. */
typedef void (*front_fn)(double t, double *f1, double *f2, int *valid);

static int cmp_point(const void *pa, const void *pb) {
  const double *a = pa, *b = pb;
  return a[0] != b[0] ? (a[0] < b[0] ? -1 : 1) : (a[1] > b[1]) - (a[1] < b[1]);
}

/* Dense samples of the true front, reduced to its non-dominated points (by increasing f1). */
static double *front_samples(front_fn front, size_t samples, size_t *count) {
  double *pts = malloc(samples * 2 * sizeof *pts);
  cr_assert_not_null(pts);
  size_t m = 0;
  for (size_t i = 0; i < samples; i++) {
    int valid = 1;
    front((double)i / (double)(samples - 1), &pts[2 * m], &pts[2 * m + 1], &valid);
    m += valid ? 1 : 0;
  }
  qsort(pts, m, 2 * sizeof *pts, cmp_point);
  size_t kept = 0;
  for (size_t i = 0; i < m; i++)
    if (kept == 0 || pts[2 * i + 1] < pts[2 * (kept - 1) + 1]) {
      pts[2 * kept] = pts[2 * i];
      pts[2 * kept + 1] = pts[2 * i + 1];
      kept++;
    }
  *count = kept;
  return pts;
}

/* Mean distance from each true-front sample to the nearest found point, objectives scaled by
** the true front's range. */
static double igd(const double *front, size_t front_count, const double *found, size_t count) {
  double lo[2] = {INFINITY, INFINITY}, hi[2] = {-INFINITY, -INFINITY};
  for (size_t i = 0; i < front_count; i++)
    for (int k = 0; k < 2; k++) {
      lo[k] = fmin(lo[k], front[2 * i + k]);
      hi[k] = fmax(hi[k], front[2 * i + k]);
    }
  double sum = 0.0;
  for (size_t i = 0; i < front_count; i++) {
    double best = INFINITY;
    for (size_t j = 0; j < count; j++) {
      double d0 = (front[2 * i] - found[2 * j]) / (hi[0] - lo[0]);
      double d1 = (front[2 * i + 1] - found[2 * j + 1]) / (hi[1] - lo[1]);
      best = fmin(best, d0 * d0 + d1 * d1);
    }
    sum += sqrt(best);
  }
  return sum / (double)front_count;
}

typedef struct problem_t {
  const char *name;
  problem_fn fn;
  size_t vars, constraints;
  const double *lo, *hi;
  front_fn front;
  double ref[2];       /* the asserted reference point */
  double tight_ref[2]; /* the conventional reference: TIGHT_HV_MIN of the true front's */
  double analytic_hv;  /* the true hypervolume at ref when known in closed form, else 0 */
  uint64_t seed;
} problem_t;

#define IGD_MAX 0.007      /* of the front's range: both close to the front and spread along it */
#define TIGHT_HV_MIN 0.985 /* at the tight reference point */

static void check_problem(const problem_t *pb) {
  size_t front_count;
  double *front = front_samples(pb->front, 1000001, &front_count);
  double truth = lpq_hypervolume_2d(front, front_count, pb->ref);
  double tight_truth = lpq_hypervolume_2d(front, front_count, pb->tight_ref);
  if (pb->analytic_hv > 0)
    cr_assert(fabs(truth - pb->analytic_hv) < 1e-5 * pb->analytic_hv,
              "%s: sampled front's hypervolume %.8f, analytic %.8f", pb->name, truth,
              pb->analytic_hv);

  lpq__real_problem_t p = {pb->vars, 2, pb->constraints, pb->lo, pb->hi, pb->fn, NULL};
  lpq__real_settings_t s = {.population = 100, .generations = 250, .crossover_prob = 0.9,
                           .eta_c = 20, .eta_m = 20, .seed = pb->seed};
  lpq__real_result_t r;
  lpq_error_t err = {0};
  cr_assert_eq(lpq__nsga_real_run(&p, &s, &r, &err), 0, "%s", err.msg);
  cr_assert_eq(r.evaluations, 100 + 250 * 100);
  double *found = malloc(r.count * 2 * sizeof *found);
  size_t m = 0;
  for (size_t i = 0; i < r.count; i++)
    if (r.violation[i] == 0) {
      found[2 * m] = r.obj[2 * i];
      found[2 * m + 1] = r.obj[2 * i + 1];
      m++;
    }
  double hv = lpq_hypervolume_2d(found, m, pb->ref);
  double tight_hv = lpq_hypervolume_2d(found, m, pb->tight_ref);
  /* IGD against every 100th sample keeps the test quick. */
  size_t every = 100, sparse_count = (front_count + every - 1) / every;
  double *sparse = malloc(sparse_count * 2 * sizeof *sparse);
  for (size_t i = 0; i < sparse_count; i++) {
    sparse[2 * i] = front[2 * i * every];
    sparse[2 * i + 1] = front[2 * i * every + 1];
  }
  double distance = igd(sparse, sparse_count, found, m);
  cr_log_info("%s: %zu feasible; hypervolume %.6f of %.6f (%.4f) at (%g, %g); %.4f at (%g, %g); "
              "IGD %.5f; %zu evaluations",
              pb->name, m, hv, truth, hv / truth, pb->ref[0], pb->ref[1], tight_hv / tight_truth,
              pb->tight_ref[0], pb->tight_ref[1], distance, r.evaluations);
  cr_assert(hv >= 0.99 * truth, "%s: hypervolume %.6f is %.2f%% below the true %.6f", pb->name,
            hv, 100 * (1 - hv / truth), truth);
  cr_assert(hv <= truth * (1 + 1e-6), "%s: hypervolume %.6f above the true front's %.6f",
            pb->name, hv, truth);
  cr_assert(distance <= IGD_MAX, "%s: IGD %.5f above %.3f", pb->name, distance, IGD_MAX);
  cr_assert(tight_hv >= TIGHT_HV_MIN * tight_truth, "%s: hypervolume at (%g, %g) %.4f of the "
            "true front's, below %.3f", pb->name, pb->tight_ref[0], pb->tight_ref[1],
            tight_hv / tight_truth, TIGHT_HV_MIN);
  free(sparse);
  free(found);
  free(front);
  lpq__real_result_clear(&r);
}

static double zero_one_lo[ZDT_VARS], zero_one_hi[ZDT_VARS];

static void zdt_bounds(void) {
  for (int i = 0; i < ZDT_VARS; i++) {
    zero_one_lo[i] = 0.0;
    zero_one_hi[i] = 1.0;
  }
}

static void zdt1_front(double t, double *f1, double *f2, int *valid) {
  *f1 = t;
  *f2 = 1.0 - sqrt(t);
  *valid = 1;
}

static void zdt2_front(double t, double *f1, double *f2, int *valid) {
  *f1 = t;
  *f2 = 1.0 - t * t;
  *valid = 1;
}

static void zdt3_front(double t, double *f1, double *f2, int *valid) {
  *f1 = t;
  *f2 = zdt3_h(t, 1.0); /* g = 1 on the Pareto set; the sweep drops the dominated parts */
  *valid = 1;
}

static void bnh_front(double t, double *f1, double *f2, int *valid) {
  /* Pareto set: x1 = x2 in [0, 3], then x2 = 3 with x1 in [3, 5]. */
  double x[2] = {5.0 * t, 5.0 * t < 3.0 ? 5.0 * t : 3.0}, g[2];
  double f[2];
  bnh(NULL, x, f, g);
  *f1 = f[0];
  *f2 = f[1];
  *valid = g[0] <= 0 && g[1] <= 0;
}

static void tnk_front(double t, double *f1, double *f2, int *valid) {
  /* The boundary of the first constraint in polar form, kept where the second holds. */
  double theta = t * M_PI / 2, r = sqrt(1.0 + 0.1 * cos(16.0 * theta));
  double x[2] = {r * sin(theta), r * cos(theta)}, f[2], g[2];
  tnk(NULL, x, f, g);
  *f1 = f[0];
  *f2 = f[1];
  *valid = g[1] <= 0;
}

Test(nsga_zdt, zdt1_within_one_percent) {
  zdt_bounds();
  double r = ZDT_REF;
  problem_t pb = {"ZDT1", zdt1, ZDT_VARS, 0, zero_one_lo, zero_one_hi, zdt1_front,
                  {r, r}, {1.1, 1.1}, (r - 1.0 + 2.0 / 3.0) + (r - 1.0) * r, 1};
  check_problem(&pb);
}

Test(nsga_zdt, zdt2_within_one_percent) {
  zdt_bounds();
  double r = ZDT_REF;
  problem_t pb = {"ZDT2", zdt2, ZDT_VARS, 0, zero_one_lo, zero_one_hi, zdt2_front,
                  {r, r}, {1.1, 1.1}, (r - 1.0 + 1.0 / 3.0) + (r - 1.0) * r, 2};
  check_problem(&pb);
}

Test(nsga_zdt, zdt3_within_one_percent) {
  zdt_bounds();
  problem_t pb = {"ZDT3", zdt3, ZDT_VARS, 0, zero_one_lo, zero_one_hi, zdt3_front,
                  {ZDT_REF, ZDT_REF}, {1.1, 1.1}, 0, 3};
  check_problem(&pb);
}

Test(nsga_zdt, bnh_within_one_percent) {
  static const double lo[2] = {0, 0}, hi[2] = {5, 3};
  problem_t pb = {"BNH", bnh, 2, 2, lo, hi, bnh_front, {140, 55}, {137, 51}, 0, 4};
  check_problem(&pb);
}

Test(nsga_zdt, tnk_within_one_percent) {
  static const double lo[2] = {0, 0}, hi[2] = {M_PI, M_PI};
  problem_t pb = {"TNK", tnk, 2, 2, lo, hi, tnk_front, {1.2, 1.2}, {1.1, 1.1}, 0, 5};
  check_problem(&pb);
}
