/* tests/test_loss.c: InfoNCE against the NumPy reference of tools/loss_reference.py. */
#include "worker/worker.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static void matrices(size_t batch, size_t dim, float *q, float *p) {
  for (size_t i = 0; i < batch; i++)
    for (size_t j = 0; j < dim; j++) {
      q[i * dim + j] = (float)sin(0.7 * (double)i + 0.3 * (double)j + 0.1);
      p[i * dim + j] = (float)(sin(0.7 * (double)i + 0.3 * (double)j) +
                               0.05 * cos(1.3 * (double)i * (double)j));
    }
}

/* batch, dim, T, loss(q, p), loss(p, p): printed by tools/loss_reference.py (NumPy, float64) */
static const struct {
  size_t batch, dim;
  double t, qp, pp;
} ref[] = {
    {8, 5, 0.5, 1.095007624398, 1.085498848226},
    {16, 33, 0.5, 1.625622794473, 1.612672756064},
    {32, 200, 0.1, 1.490817898414, 1.435684993395},
    {4, 3, 2.0, 1.339513278389, 1.336993588726},
};

Test(loss, infonce_matches_numpy_reference) {
  for (size_t k = 0; k < sizeof ref / sizeof ref[0]; k++) {
    size_t b = ref[k].batch, d = ref[k].dim;
    float *q = malloc(b * d * sizeof *q), *p = malloc(b * d * sizeof *p);
    matrices(b, d, q, p);
    double l;
    lpq_error_t err;
    cr_assert_eq(lpq_infonce(q, p, b, d, ref[k].t, &l, &err), 0, "%s", err.msg);
    cr_assert(fabs(l - ref[k].qp) < 1e-5, "case %zu: %.9f vs %.9f", k, l, ref[k].qp);
    cr_assert_eq(lpq_infonce(p, p, b, d, ref[k].t, &l, &err), 0);
    cr_assert(fabs(l - ref[k].pp) < 1e-5, "case %zu self: %.9f vs %.9f", k, l, ref[k].pp);
    free(q);
    free(p);
  }
}

Test(loss, perturbing_the_quantized_side_raises_the_loss) {
  size_t b = 16, d = 40;
  float *q = malloc(b * d * sizeof *q), *p = malloc(b * d * sizeof *p);
  matrices(b, d, q, p);
  double base, prev;
  lpq_infonce(p, p, b, d, 0.5, &base, NULL);
  prev = base;
  for (int step = 1; step <= 4; step++) {
    memcpy(q, p, b * d * sizeof *q);
    for (size_t i = 0; i < b * d; i++)
      q[i] += (float)(0.15 * step * sin(17.0 * (double)i));
    double l;
    lpq_infonce(q, p, b, d, 0.5, &l, NULL);
    cr_assert(l > prev, "noise step %d: %.6f not above %.6f", step, l, prev);
    prev = l;
  }
  free(q);
  free(p);
}

Test(loss, scale_invariant_and_bad_input) {
  size_t b = 8, d = 5;
  float q[40], p[40], q2[40];
  matrices(b, d, q, p);
  for (int i = 0; i < 40; i++)
    q2[i] = 3.0f * q[i];
  double l1, l2;
  lpq_infonce(q, p, b, d, 0.5, &l1, NULL);
  lpq_infonce(q2, p, b, d, 0.5, &l2, NULL);
  cr_assert(fabs(l1 - l2) < 1e-6, "rows are normalised");
  lpq_error_t err;
  cr_assert_eq(lpq_infonce(q, p, b, d, 0.0, &l1, &err), LPQ_EINVAL);
  cr_assert_eq(lpq_infonce(q, p, 0, d, 0.5, &l1, &err), LPQ_EINVAL);
  q[13] = NAN;
  cr_assert_eq(lpq_infonce(q, p, b, d, 0.5, &l1, &err), LPQ_ENAN);
  cr_assert(strstr(err.msg, "row 2") != NULL, "%s", err.msg);
}

/* An infinity is called infinite, never NaN (issue 17). */
Test(loss, infinities_are_named_infinite) {
  size_t b = 8, d = 5;
  float q[40], p[40];
  matrices(b, d, q, p);
  lpq_error_t err;
  double l;
  q[13] = INFINITY;
  cr_assert_eq(lpq_infonce(q, p, b, d, 0.5, &l, &err), LPQ_ENAN);
  cr_assert(strstr(err.msg, "row 2, value 3 is infinite (+inf)") && !strstr(err.msg, "NaN"),
            "%s", err.msg);
  q[13] = -INFINITY;
  lpq_infonce(q, p, b, d, 0.5, &l, &err);
  cr_assert(strstr(err.msg, "infinite (-inf)"), "%s", err.msg);
  q[13] = NAN;
  lpq_infonce(q, p, b, d, 0.5, &l, &err);
  cr_assert(strstr(err.msg, "is NaN"), "%s", err.msg);
  cr_assert_str_eq(lpq_nonfinite_name(-INFINITY), "infinite (-inf)");
  cr_assert_str_eq(lpq_nonfinite_name(NAN), "NaN");
}

/* The rows' log-sum-exp (4 lanes and libmvec's exp where AVX2 runs) against the plain double
** formula over the same similarities (lpq_infonce_normalized leaves S in its scratch): batches
** that are not a multiple of the lanes (the padded tail), 1, and the default 256; temperatures
** that make the terms large and small. */
Test(loss, vector_rows_match_the_scalar_formula) {
  const size_t batches[] = {1, 3, 5, 8, 13, 31, 256}, d = 19;
  const double temps[] = {0.05, 0.5, 4.0};
  for (size_t k = 0; k < sizeof batches / sizeof *batches; k++)
    for (size_t t = 0; t < sizeof temps / sizeof *temps; t++) {
      size_t b = batches[k];
      float *q = malloc(b * d * sizeof *q), *p = malloc(b * d * sizeof *p);
      float *s = malloc(b * b * sizeof *s);
      matrices(b, d, q, p);
      cr_assert_eq(lpq_normalize_rows(q, b, d, NULL), 0);
      cr_assert_eq(lpq_normalize_rows(p, b, d, NULL), 0);
      double got = lpq_infonce_normalized(q, p, b, d, temps[t], s), want = 0;
      for (size_t i = 0; i < b; i++) {
        double mx = -INFINITY, sum = 0;
        for (size_t j = 0; j < b; j++)
          mx = fmax(mx, (double)s[i * b + j] / temps[t]);
        for (size_t j = 0; j < b; j++)
          sum += exp((double)s[i * b + j] / temps[t] - mx);
        want += mx + log(sum) - (double)s[i * b + i] / temps[t];
      }
      want /= (double)b;
      cr_assert(fabs(got - want) <= 1e-12 * fmax(1.0, fabs(want)),
                "batch %zu, T %g: %.17g vs %.17g", b, temps[t], got, want);
      free(q);
      free(p);
      free(s);
    }
}
