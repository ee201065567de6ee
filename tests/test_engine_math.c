/* tests/test_engine_math.c: the vectorised activations (engine/ops_kernels_math.c, libmvec)
** against the defining formulas in double, at each instruction set (AVX-512 where the CPU
** has it, LPQ_ISA=avx2, LPQ_ISA=generic): values across the range, huge ones, +-0, +-Inf and
** NaN, every length from 1 to 40 (partial vectors), in place and not. */
#include "engine/engine_internal.h"
#include "tests/isa_tests.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static double reference(int kind, double x) {
  switch (kind) {
  case LPQ_MATH_SIGMOID: return 1.0 / (1.0 + exp(-x));
  case LPQ_MATH_SILU: return x / (1.0 + exp(-x));
  case LPQ_MATH_TANH: return tanh(x);
  case LPQ_MATH_ERF: return erf(x);
  case LPQ_MATH_EXP: return exp(x);
  case LPQ_MATH_GELU: return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
  default: return 0.5 * x * (1.0 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
  }
}

static const char *const names[] = {"sigmoid", "silu", "tanh", "erf", "exp", "gelu", "gelu_tanh"};

/* |got - want| within 8 float ulps of want, plus 1e-30 absolute (below that float overflow in the intermediate exp is no error); NaN where the
** formula gives NaN (and only there); infinities equal. */
static void check_one(int kind, float x, float got) {
  const double want = reference(kind, (double)x);
  if (isnan(want)) {
    cr_assert(isnan(got), "%s(%g) = %g, expected NaN", names[kind], x, got);
    return;
  }
  cr_assert(!isnan(got), "%s(%g) = NaN, expected %g", names[kind], x, want);
  if (isinf(want) || fabs(want) > 3.0e38) {
    cr_assert(isinf(got) || fabs(got) > 3.0e38, "%s(%g) = %g, expected %g", names[kind], x, got, want);
    return;
  }
  const double ulp = fabs(want) > 1e-37 ? ldexp(1.0, ilogb(want) - 23) : 1e-45;
  /* GELU's 1 + erf (or tanh) cancels for negative x in float, as the formula does in any float
  ** engine: there a few ulps of x */
  const double cancel = kind >= LPQ_MATH_GELU ? 4 * fabs((double)x) * 0x1p-23 : 0.0;
  cr_assert_leq(fabs((double)got - want), 8 * ulp + cancel + 1e-30, "%s(%g) = %.9g, expected %.9g",
                names[kind], x, got, want);
}

static void all_kinds(void) {
  enum { N = 2000 };
  float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
  unsigned s = 12345;
  for (int i = 0; i < N; i++) { /* uniform in [-12, 12], with some wide magnitudes */
    s = s * 1103515245u + 12345u;
    const float u = (float)((s >> 8) & 0xffffff) / 16777216.0f;
    x[i] = i % 10 == 0 ? (u - 0.5f) * 200.0f : (u - 0.5f) * 24.0f;
  }
  const float special[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 88.0f, -88.0f, 1e-30f, -1e-30f,
                           60.0f, -60.0f, 3.0e38f};
  memcpy(x, special, sizeof special);
  for (int kind = LPQ_MATH_SIGMOID; kind <= LPQ_MATH_GELU_TANH; kind++) {
    if (kind == LPQ_MATH_GELU_TANH || kind == LPQ_MATH_SILU)
      x[11] = 60.0f; /* x^3 and x / (1 + e^-x) overflow differently in float and double */
    else
      x[11] = 3.0e38f;
    lpq__kern_math(kind, x, y, N);
    for (int i = 0; i < N; i++)
      check_one(kind, x[i], y[i]);
    for (size_t n = 1; n <= 40; n++) { /* partial vectors: the lanes past n are left alone */
      float out[48];
      for (int i = 0; i < 48; i++)
        out[i] = -7.0f;
      lpq__kern_math(kind, x + 100, out, n);
      for (size_t i = 0; i < n; i++)
        cr_assert_eq(out[i], y[100 + i], "%s, length %zu: element %zu differs from the long run",
                     names[kind], n, i);
      for (int i = (int)n; i < 48; i++)
        cr_assert_eq(out[i], -7.0f, "%s, length %zu wrote past its end", names[kind], n);
    }
    float inplace[37];
    memcpy(inplace, x + 200, sizeof inplace);
    lpq__kern_math(kind, inplace, inplace, 37);
    cr_assert_arr_eq(inplace, y + 200, sizeof inplace, "%s in place differs", names[kind]);
  }
  free(x), free(y);
}

/* Softmax rows of every length from 1 to 70 (partial vectors), shifted far from zero, with
** -Inf entries (probability 0), against the formula in double; a NaN spreads to its row. */
static void softmax_rows(void) {
  unsigned s = 777;
  for (size_t n = 1; n <= 70; n++) {
    float x[70], y[72];
    for (size_t i = 0; i < n; i++) {
      s = s * 1103515245u + 12345u;
      x[i] = (float)((s >> 8) & 0xffff) / 4096.0f - 8.0f + (n % 3 == 0 ? 80.0f : 0.0f);
    }
    if (n > 3)
      x[n / 2] = -INFINITY;
    y[n] = y[n + 1] = 42.0f;
    lpq__kern_softmax_row(x, y, n);
    double mx = -INFINITY, sum = 0;
    for (size_t i = 0; i < n; i++)
      mx = fmax(mx, x[i]);
    for (size_t i = 0; i < n; i++)
      sum += exp((double)x[i] - mx);
    for (size_t i = 0; i < n; i++) {
      const double want = exp((double)x[i] - mx) / sum;
      cr_assert_leq(fabs(y[i] - want), 8 * 0x1p-24 * want + 1e-30, "length %zu: y[%zu] = %.9g, "
                    "expected %.9g", n, i, y[i], want);
    }
    cr_assert(y[n] == 42.0f && y[n + 1] == 42.0f, "length %zu wrote past its end", n);
    float inplace[70];
    memcpy(inplace, x, n * sizeof *x);
    lpq__kern_softmax_row(inplace, inplace, n);
    cr_assert_arr_eq(inplace, y, n * sizeof *y, "length %zu in place differs", n);
    x[0] = NAN;
    lpq__kern_softmax_row(x, y, n);
    for (size_t i = 0; i < n; i++)
      cr_assert(isnan(y[i]), "length %zu: a NaN input left y[%zu] = %g", n, i, y[i]);
  }
}

ISA_TESTS(engine_math, softmax_rows_at_the_best_isa,
          softmax_rows_with_avx2,
          softmax_rows_generic, softmax_rows)

/* ops_norm.c's plain LayerNormalization row: eight partial double sums added pairwise. */
static void plain_layernorm(const float *x, float *y, size_t n, const float *sc, const float *b) {
  double s[8] = {0}, q[8] = {0};
  const size_t n8 = n / 8 * 8;
  for (size_t i = 0; i < n8; i += 8)
    for (int l = 0; l < 8; l++)
      s[l] += x[i + l];
  for (size_t i = n8; i < n; i++)
    s[0] += x[i];
  const double m = (((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]))) / (double)n;
  for (size_t i = 0; i < n8; i += 8)
    for (int l = 0; l < 8; l++) {
      const double d = x[i + l] - m;
      q[l] += d * d;
    }
  for (size_t i = n8; i < n; i++) {
    const double d = x[i] - m;
    q[0] += d * d;
  }
  const double v = ((q[0] + q[1]) + (q[2] + q[3])) + ((q[4] + q[5]) + (q[6] + q[7]));
  const double is = 1.0 / sqrt(v / (double)n + 1e-5);
  for (size_t i = 0; i < n; i++) {
    const float t = (float)((x[i] - m) * is) * sc[i];
    y[i] = b ? t + b[i] : t;
  }
}

/* The vector LayerNormalization row (AVX-512 or AVX2, where the kernel set has one) against the
** formula in double: lengths 1 to 70, an offset mean, bias or none; mean and 1/std returned too.
** The AVX2 row does the plain loop's arithmetic: the same bits. */
static void layernorm_rows(void) {
  unsigned s = 99;
  float x[70], y[72], sc[70], b[70];
  for (size_t n = 1; n <= 70; n++) {
    for (size_t i = 0; i < n; i++) {
      s = s * 1103515245u + 12345u;
      x[i] = (float)((s >> 8) & 0xffff) / 8192.0f + 3.0f;
      sc[i] = 0.5f + (float)(i % 7) / 7.0f, b[i] = (float)(i % 5) - 2.0f;
    }
    for (int with_bias = 0; with_bias < 2; with_bias++) {
      y[n] = y[n + 1] = 42.0f;
      double mean, istd;
      if (!lpq__kern_layernorm_row(x, y, n, 1e-5, sc, with_bias ? b : NULL, &mean, &istd)) {
        cr_assert_eq(lpq__isa(), LPQ_ISA_GENERIC, "no vector row on the %s kernel set",
                     lpq_engine_isa());
        return;
      }
      if (lpq__isa() == LPQ_ISA_AVX2) {
        float plain[70];
        plain_layernorm(x, plain, n, sc, with_bias ? b : NULL);
        cr_assert_eq(memcmp(plain, y, n * sizeof *y), 0, "length %zu: the AVX2 row differs "
                     "from the plain loop", n);
      }
      double m = 0, v = 0;
      for (size_t i = 0; i < n; i++)
        m += x[i];
      m /= (double)n;
      for (size_t i = 0; i < n; i++)
        v += (x[i] - m) * (x[i] - m);
      const double is = 1.0 / sqrt(v / (double)n + 1e-5);
      cr_assert_leq(fabs(mean - m), 1e-12 * fabs(m), "length %zu: mean %.17g, expected %.17g", n,
                    mean, m);
      cr_assert_leq(fabs(istd - is), 1e-9 * is, "length %zu: 1/std %.17g, expected %.17g", n, istd,
                    is);
      for (size_t i = 0; i < n; i++) {
        const double want = (x[i] - m) * is * sc[i] + (with_bias ? b[i] : 0.0);
        cr_assert_leq(fabs(y[i] - want), 4e-7 * (fabs((x[i] - m) * is * sc[i]) + fabs(want)) + 1e-6,
                      "length %zu: y[%zu] = %.9g, expected %.9g", n, i, y[i], want);
      }
      cr_assert(y[n] == 42.0f && y[n + 1] == 42.0f, "length %zu wrote past its end", n);
    }
  }
}

ISA_TESTS(engine_math, layernorm_rows_at_the_best_isa, layernorm_rows_with_avx2,
          layernorm_rows_generic, layernorm_rows)

/* HardSigmoid and x * HardSigmoid(x) (HardSwish): the clamp exact, NaN kept, partial vectors. */
static void hard_rows(void) {
  float x[41], y[43];
  for (int i = 0; i < 41; i++)
    x[i] = (float)(i - 20) * 0.37f;
  x[7] = NAN, x[8] = INFINITY, x[9] = -INFINITY;
  for (int times_x = 0; times_x < 2; times_x++)
    for (size_t n = 1; n <= 41; n++) {
      y[n] = y[n + 1] = 42.0f;
      lpq__kern_hard(times_x, 1.0f / 6.0f, 0.5f, x, y, n);
      for (size_t i = 0; i < n; i++) {
        float h = x[i] / 6.0f + 0.5f;
        h = h < 0 ? 0 : h > 1 ? 1 : h;
        const float want = times_x ? x[i] * h : h;
        if (isnan(x[i]) || (times_x && isinf(x[i]) && x[i] < 0)) /* -Inf * 0: NaN */
          cr_assert(isnan(y[i]), "x = %g: %g, expected NaN", x[i], y[i]);
        else if (isinf(want))
          cr_assert(y[i] == want, "x = %g: %g, expected %g", x[i], y[i], want);
        else
          cr_assert_float_eq(y[i], want, 1e-6f * (1 + fabsf(want)), "x = %g: %g, expected %g",
                             x[i], y[i], want);
      }
      cr_assert(y[n] == 42.0f && y[n + 1] == 42.0f, "length %zu wrote past its end", n);
    }
}

ISA_TESTS(engine_math, hard_sigmoid_and_swish,
          hard_sigmoid_and_swish_avx2,
          hard_sigmoid_and_swish_generic, hard_rows)

Test(engine_math, every_activation_at_the_best_isa) { all_kinds(); }

Test(engine_math, every_activation_with_avx2) {
  cr_assert_eq(setenv("LPQ_ISA", "avx2", 1), 0);
  all_kinds();
}

Test(engine_math, every_activation_generic) {
  cr_assert_eq(setenv("LPQ_ISA", "generic", 1), 0);
  cr_assert_str_eq(lpq_engine_isa(), "generic");
  all_kinds();
}
