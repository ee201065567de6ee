/* coordinator/search/nsga_real.c: NSGA-II on real-valued problems: simulated binary crossover,
** polynomial mutation and the generational loop around the core of nsga.c. The LP search
** shares the core; this driver is what holds it to the known fronts of the test problems. */
#include "coordinator/search/search_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static double clamp(double x, double lo, double hi) { return x < lo ? lo : x > hi ? hi : x; }

/* The spread factor for one side of the bounded SBX (Deb's reference implementation). */
static double sbx_betaq(double u, double beta, double eta) {
  double alpha = 2.0 - pow(beta, -(eta + 1.0));
  if (u <= 1.0 / alpha)
    return pow(u * alpha, 1.0 / (eta + 1.0));
  return pow(1.0 / (2.0 - u * alpha), 1.0 / (eta + 1.0));
}

void lpq__sbx(lpq_rng_t *rng, const double *p1, const double *p2, double *c1, double *c2,
             const double *lower, const double *upper, size_t var_count, double eta) {
  for (size_t i = 0; i < var_count; i++) {
    double a = p1[i], b = p2[i];
    if (lpq_rng_uniform(rng) > 0.5 || fabs(a - b) <= 1e-14) {
      c1[i] = a;
      c2[i] = b;
      continue;
    }
    double y1 = fmin(a, b), y2 = fmax(a, b), lo = lower[i], hi = upper[i];
    double u = lpq_rng_uniform(rng);
    double bq1 = sbx_betaq(u, 1.0 + 2.0 * (y1 - lo) / (y2 - y1), eta);
    double bq2 = sbx_betaq(u, 1.0 + 2.0 * (hi - y2) / (y2 - y1), eta);
    double x1 = clamp(0.5 * ((y1 + y2) - bq1 * (y2 - y1)), lo, hi);
    double x2 = clamp(0.5 * ((y1 + y2) + bq2 * (y2 - y1)), lo, hi);
    if (lpq_rng_uniform(rng) <= 0.5) {
      c1[i] = x2;
      c2[i] = x1;
    } else {
      c1[i] = x1;
      c2[i] = x2;
    }
  }
}

void lpq__polynomial_mutation(lpq_rng_t *rng, double *x, const double *lower,
                             const double *upper, size_t var_count, double eta, double prob) {
  for (size_t i = 0; i < var_count; i++) {
    if (lpq_rng_uniform(rng) >= prob)
      continue;
    double lo = lower[i], hi = upper[i], y = x[i];
    if (!(hi > lo))
      continue;
    double d1 = (y - lo) / (hi - lo), d2 = (hi - y) / (hi - lo);
    double u = lpq_rng_uniform(rng), power = 1.0 / (eta + 1.0), dq;
    if (u < 0.5) {
      double v = 2.0 * u + (1.0 - 2.0 * u) * pow(1.0 - d1, eta + 1.0);
      dq = pow(v, power) - 1.0;
    } else {
      double v = 2.0 * (1.0 - u) + 2.0 * (u - 0.5) * pow(1.0 - d2, eta + 1.0);
      dq = 1.0 - pow(v, power);
    }
    x[i] = clamp(y + dq * (hi - lo), lo, hi);
  }
}

void lpq__real_result_clear(lpq__real_result_t *r) {
  if (!r)
    return;
  free(r->x);
  free(r->obj);
  free(r->violation);
  memset(r, 0, sizeof *r);
}

/* Scores solutions [from, to) of the pool. */
static void evaluate_range(const lpq__real_problem_t *p, double *x, double *obj, double *viol,
                           double *g, size_t from, size_t to) {
  for (size_t i = from; i < to; i++) {
    p->evaluate(p->ctx, x + i * p->var_count, obj + i * p->obj_count, g);
    double v = 0.0;
    for (size_t j = 0; j < p->constraint_count; j++)
      v += g[j] > 0 ? g[j] : 0.0;
    viol[i] = v;
  }
}

int lpq__nsga_real_run(const lpq__real_problem_t *problem, const lpq__real_settings_t *settings,
                      lpq__real_result_t *out, lpq_error_t *err) {
  const lpq__real_problem_t *p = problem;
  const lpq__real_settings_t *s = settings;
  if (!p || !s || !out || !p->evaluate || !p->lower || !p->upper || p->var_count == 0 ||
      p->obj_count == 0)
    return lpq_errorf(err, LPQ_EINVAL, "nsga real: incomplete problem");
  if (s->population < 4 || s->population % 2)
    return lpq_errorf(err, LPQ_EINVAL, "nsga real: population = %zu must be even and >= 4",
                      s->population);
  memset(out, 0, sizeof *out);
  size_t n = s->population, nv = p->var_count, no = p->obj_count;
  double pm = s->mutation_prob > 0 ? s->mutation_prob : 1.0 / (double)nv;
  /* The pool holds the population in [0, n) and the offspring in [n, 2n). */
  double *x = malloc(2 * n * nv * sizeof *x), *obj = malloc(2 * n * no * sizeof *obj);
  double *viol = malloc(2 * n * sizeof *viol), *crowd = malloc(n * sizeof *crowd);
  double *g = malloc((p->constraint_count + 1) * sizeof *g);
  size_t *rank = malloc(n * sizeof *rank), *chosen = malloc(n * sizeof *chosen);
  double *tx = malloc(n * nv * sizeof *tx), *tobj = malloc(n * no * sizeof *tobj);
  double *tviol = malloc(n * sizeof *tviol);
  int rc = 0;
  if (!x || !obj || !viol || !crowd || !g || !rank || !chosen || !tx || !tobj || !tviol) {
    rc = lpq_errorf(err, LPQ_ENOMEM, "nsga real: out of memory for population %zu", n);
    goto fail;
  }
  lpq_rng_t rng;
  lpq_rng_seed(&rng, s->seed);
  for (size_t i = 0; i < n; i++)
    for (size_t v = 0; v < nv; v++)
      x[i * nv + v] = p->lower[v] + lpq_rng_uniform(&rng) * (p->upper[v] - p->lower[v]);
  evaluate_range(p, x, obj, viol, g, 0, n);
  size_t evaluations = n;
  for (size_t gen = 0; gen < s->generations; gen++) {
    if ((rc = lpq_nsga_rank(obj, viol, n, no, rank, crowd, err)))
      goto fail;
    for (size_t c = n; c < 2 * n; c += 2) {
      size_t a = lpq_nsga_tournament(&rng, rank, crowd, n);
      size_t b = lpq_nsga_tournament(&rng, rank, crowd, n);
      double *c1 = x + c * nv, *c2 = x + (c + 1) * nv;
      if (lpq_rng_uniform(&rng) < s->crossover_prob) {
        lpq__sbx(&rng, x + a * nv, x + b * nv, c1, c2, p->lower, p->upper, nv, s->eta_c);
      } else {
        memcpy(c1, x + a * nv, nv * sizeof *c1);
        memcpy(c2, x + b * nv, nv * sizeof *c2);
      }
      lpq__polynomial_mutation(&rng, c1, p->lower, p->upper, nv, s->eta_m, pm);
      lpq__polynomial_mutation(&rng, c2, p->lower, p->upper, nv, s->eta_m, pm);
    }
    evaluate_range(p, x, obj, viol, g, n, 2 * n);
    evaluations += n;
    if ((rc = lpq_nsga_survivors(obj, viol, 2 * n, no, n, chosen, err)))
      goto fail;
    for (size_t i = 0; i < n; i++) {
      memcpy(tx + i * nv, x + chosen[i] * nv, nv * sizeof *tx);
      memcpy(tobj + i * no, obj + chosen[i] * no, no * sizeof *tobj);
      tviol[i] = viol[chosen[i]];
    }
    memcpy(x, tx, n * nv * sizeof *x);
    memcpy(obj, tobj, n * no * sizeof *obj);
    memcpy(viol, tviol, n * sizeof *viol);
  }
  out->count = n;
  out->var_count = nv;
  out->obj_count = no;
  out->x = tx;
  out->obj = tobj;
  out->violation = tviol;
  out->evaluations = evaluations;
  memcpy(tx, x, n * nv * sizeof *tx);
  memcpy(tobj, obj, n * no * sizeof *tobj);
  memcpy(tviol, viol, n * sizeof *tviol);
  tx = tobj = tviol = NULL;
fail:
  free(x);
  free(obj);
  free(viol);
  free(crowd);
  free(g);
  free(rank);
  free(chosen);
  free(tx);
  free(tobj);
  free(tviol);
  return rc;
}
