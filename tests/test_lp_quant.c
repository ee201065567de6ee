/* tests/test_lp_quant.c: the tensor quantizer against brute force over all codes (values from
** tests/lp_reference.c, DESIGN's formula, not lp_decode), each kernel forced in turn, and the
** log-domain product. */
#include "lp/lp.h"
#include "lp/lp_internal.h"
#include "tests/lp_reference.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static char *fmt(const lp_format_t *f) {
  static char buf[LP_TEXT_MAX];
  return lp_format_str(f, buf, sizeof buf);
}

/* Brute force: scan every positive code; |x| rounds up past code c-1 when it is above the
** midpoint, or on it and c is even (DESIGN section 1). */
static uint32_t brute_code(const lp_format_t *f, const double *values, double x) {
  double a = fabs(x);
  uint32_t best = 0;
  double prev = 0.0;
  for (uint32_t c = 1; c <= lp_maxpos(f); c++) {
    double v = values[c];
    double m = lp_midpoint(prev, v);
    if (a > m || (a == m && (c & 1u) == 0))
      best = c;
    else
      break;
    prev = v;
  }
  return (x < 0 && best) ? lp_neg(f, best) : best;
}

static float as_float_value(double v) {
  if (v > FLT_MAX)
    return FLT_MAX;
  if (v < -FLT_MAX)
    return -FLT_MAX;
  return (float)v;
}

/* The reference value of code c of f (c may be a negative code). */
static double ref_value(const lp_format_t *f, uint32_t c) {
  return lp_reference_decode(f->n, f->es, f->rs, f->sf, c);
}

/* xorshift for reproducible test inputs */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

/* Inputs that probe every rounding boundary of f: each value, the float nearest each midpoint
** and its neighbours, random magnitudes across the range, specials. Returns the count. */
static size_t probe_inputs(const lp_format_t *f, float *xs, size_t cap, size_t nrandom) {
  size_t k = 0;
  /* large formats: every boundary near zero and maxpos, a stride in between */
  const uint32_t stride = f->n > 10 ? 61 : 1;
  for (uint32_t c = 1; c <= lp_maxpos(f) && k + 8 < cap; c++) {
    if (stride > 1 && c > 64 && c + 64 < lp_maxpos(f) && c % stride != 0)
      continue;
    double prev = c > 1 ? lp_decode(f, c - 1) : 0.0;
    double v = lp_decode(f, c), m = lp_midpoint(prev, v);
    float fm = (float)m;
    xs[k++] = (float)v;
    xs[k++] = fm;
    xs[k++] = nextafterf(fm, 0.0f);
    xs[k++] = nextafterf(fm, INFINITY);
    xs[k++] = -fm;
    xs[k++] = -(float)v;
  }
  double lo = log2(lp_decode(f, 1)) - 2, hi = log2(lp_decode(f, lp_maxpos(f))) + 2;
  for (size_t r = 0; r < nrandom && k + 8 < cap; r++) {
    double t = lo + (hi - lo) * (double)(rnd() >> 11) / 9007199254740992.0;
    float x = (float)exp2(t);
    xs[k++] = (rnd() & 1) ? -x : x;
  }
  xs[k++] = 0.0f;
  xs[k++] = -0.0f;
  xs[k++] = INFINITY;
  xs[k++] = -INFINITY;
  xs[k++] = FLT_MAX;
  xs[k++] = FLT_TRUE_MIN;
  return k;
}

/* The kernel a test forced (NULL: whatever the CPU runs). The kernel is chosen per format:
** formats with more than one threshold per bucket (none with n <= 8) run the generic search,
** and at the AVX-512 level a format with 128-255 positive codes (n = 9) runs the AVX2 packed
** kernel; every other format must run the forced one, not fall back silently. */
static const char *forced_kernel;

static void check_kernel(const lp_format_t *f, const lp_quantizer_t *q) {
  if (forced_kernel == NULL)
    return;
  const char *got = lp_quantizer_kernel(q);
  if (f->n > 8 && strcmp(got, "generic") == 0)
    return;
  if (f->n == 9 && strcmp(forced_kernel, "avx512") == 0 && strcmp(got, "avx2") == 0)
    return;
  cr_assert_str_eq(got, forced_kernel, "%s: LPQ_SIMD forced %s, the quantizer runs %s", fmt(f),
                   forced_kernel, got);
}

static void check_quantizer(const lp_format_t *f, size_t nrandom) {
  lpq_error_t err;
  lp_quantizer_t *q = lp_quantizer_new(f, &err);
  cr_assert_not_null(q, "%s: %s", fmt(f), err.msg);
  check_kernel(f, q);
  size_t cap = 6 * (lp_maxpos(f) + 1) + nrandom + 16;
  float *xs = malloc(cap * sizeof *xs), *out = malloc(cap * sizeof *out);
  uint8_t *c8 = malloc(cap);
  uint16_t *c16 = malloc(cap * sizeof *c16);
  float *back = malloc(cap * sizeof *back);
  cr_assert(xs && out && c8 && c16 && back);
  size_t n = probe_inputs(f, xs, cap, nrandom);
  double *values = malloc((lp_maxpos(f) + 1) * sizeof *values);
  cr_assert_not_null(values);
  for (uint32_t c = 0; c <= lp_maxpos(f); c++)
    values[c] = ref_value(f, c);
  cr_assert_eq(lp_quantize_f32(q, xs, out, n, &err), 0, "%s", err.msg);
  if (forced_kernel && strcmp(forced_kernel, "avx2") == 0) /* the fine table when asked for */
    cr_assert_eq(q->fine != NULL, q->fshift >= 0 && lpq__quant_fine_min <= n,
                 "%s: fine table %s, fshift %d", fmt(f), q->fine ? "built" : "not built",
                 q->fshift);
  cr_assert_eq(lp_quantize_codes_u16(q, xs, c16, n, &err), 0, "%s", err.msg);
  if (f->n <= 8)
    cr_assert_eq(lp_quantize_codes_u8(q, xs, c8, n, &err), 0, "%s", err.msg);
  else
    cr_assert_eq(lp_quantize_codes_u8(q, xs, c8, n, &err), LPQ_EINVAL);
  lp_dequantize_u16(q, c16, back, n);
  for (size_t i = 0; i < n; i++) {
    uint32_t want = brute_code(f, values, (double)xs[i]);
    float want_v = as_float_value(ref_value(f, want));
    cr_assert_eq(c16[i], want, "%s: x = %.9g gave code %u, brute force %u", fmt(f), xs[i],
                 c16[i], want);
    if (f->n <= 8)
      cr_assert_eq(c8[i], want, "%s: u8 code for %.9g", fmt(f), xs[i]);
    cr_assert(out[i] == want_v, "%s: x = %.9g gave %.9g, want %.9g", fmt(f), xs[i], out[i],
              want_v);
    cr_assert(back[i] == want_v, "%s: dequantize of code %u", fmt(f), c16[i]);
  }
  free(xs);
  free(out);
  free(c8);
  free(c16);
  free(back);
  free(values);
  lp_quantizer_free(&q);
  cr_assert_null(q);
}

static void check_all_small_formats(void) {
  const int sfs[] = {-5, 0, 3};
  size_t nrandom = getenv("LPQ_ASAN") ? 200 : 1000;
  for (int n = 2; n <= 10; n++)
    for (int es = 0; es <= 4; es++)
      for (int rs = 1; rs <= n - 1; rs++)
        for (size_t s = 0; s < 3; s++) {
          lp_format_t f = {n, es, rs, sfs[s]};
          check_quantizer(&f, nrandom);
        }
}

/* Each Criterion test runs in its own process, so LPQ_SIMD picks the kernel for that test
** (the choice is cached at the first quantization). */
static void force_kernel(const char *name) {
  forced_kernel = name;
  setenv("LPQ_SIMD", name, 1);
}

Test(lp_quant, nearest_against_brute_force_scalar_kernel) {
  force_kernel("scalar");
  check_all_small_formats();
}

Test(lp_quant, nearest_against_brute_force_avx2_kernel) {
#if defined(__x86_64__)
  if (!__builtin_cpu_supports("avx2")) {
    fprintf(stderr, "lp_quant: AVX2 kernel test skipped: this CPU has no AVX2\n");
    cr_skip_test("this CPU has no AVX2: the AVX2 kernel cannot run here");
  }
  force_kernel("avx2");
  lpq__quant_fine_min = 0; /* the fine table on every call (lp_internal.h) */
  check_all_small_formats();
  /* which formats have one: every n <= 8 format but the densest few */
  int with = 0, without = 0;
  for (int n = 2; n <= 8; n++)
    for (int es = 0; es <= 4; es++)
      for (int rs = 1; rs <= n - 1; rs++) {
        const lp_format_t f = {n, es, rs, 0};
        lp_quantizer_t *q = lp_quantizer_new(&f, NULL);
        cr_assert_not_null(q);
        with += q->fshift >= 0, without += q->fshift < 0;
        lp_quantizer_free(&q);
      }
  cr_assert_gt(with, 3 * without, "%d formats with a fine table, %d without", with, without);
#else
  fprintf(stderr, "lp_quant: AVX2 kernel test skipped: not x86-64\n");
  cr_skip_test("not x86-64: lp/ has no AVX2 kernel here");
#endif
}

Test(lp_quant, nearest_against_brute_force_avx2_kernels_without_fine_table) {
#if defined(__x86_64__)
  if (!__builtin_cpu_supports("avx2")) {
    fprintf(stderr, "lp_quant: AVX2 kernel test skipped: this CPU has no AVX2\n");
    cr_skip_test("this CPU has no AVX2: the AVX2 kernel cannot run here");
  }
  force_kernel("avx2");
  lpq__quant_fine_min = SIZE_MAX; /* the packed and three-gather kernels */
  check_all_small_formats();
#else
  fprintf(stderr, "lp_quant: AVX2 kernel test skipped: not x86-64\n");
  cr_skip_test("not x86-64: lp/ has no AVX2 kernel here");
#endif
}

/* A large quantization builds the fine table (LPQ__FINE_MIN), and vectors mixing elements in
** and out of thresholds' buckets agree bit for bit with the packed kernel (itself checked
** against brute force above). */
Test(lp_quant, fine_table_built_by_a_large_call_matches_packed_kernel) {
#if defined(__x86_64__)
  if (!__builtin_cpu_supports("avx2"))
    cr_skip_test("this CPU has no AVX2");
  force_kernel("avx2"); /* on AVX-512 the binary search would run instead */
  const lp_format_t fs[] = {{8, 2, 2, 0}, {6, 1, 3, 2}, {4, 1, 2, 0}, {8, 1, 4, -3}};
  const size_t n = LPQ__FINE_MIN + 13;
  float *x = malloc(n * sizeof *x), *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
  cr_assert(x && a && b);
  for (size_t k = 0; k < sizeof fs / sizeof fs[0]; k++) {
    lp_quantizer_t *q = lp_quantizer_new(&fs[k], NULL);
    cr_assert_not_null(q);
    cr_assert_geq(q->fshift, 0, "%s: no fine table", fmt(&fs[k]));
    float thr[255];
    const uint32_t np = lp_quantizer_magnitudes(q, thr, NULL);
    for (size_t i = 0; i < n; i++) { /* thresholds and their neighbours among Gaussian-ish data */
      const float t = thr[rnd() % np];
      const uint64_t r = rnd();
      x[i] = r % 3 == 0   ? t
             : r % 3 == 1 ? nextafterf(t, 0.0f)
                          : (float)((double)(rnd() >> 11) / 9007199254740992.0 * 8.0 - 4.0);
      if (r & 8)
        x[i] = -x[i];
    }
    cr_assert_eq(lp_quantize_f32(q, x, a, n - 1, NULL), 0);
    cr_assert_not_null(q->fine, "%s: a call of %zu values built no fine table", fmt(&fs[k]), n - 1);
    const size_t saved = lpq__quant_fine_min;
    lpq__quant_fine_min = SIZE_MAX;
    lp_quantizer_t *p = lp_quantizer_new(&fs[k], NULL); /* the same format, no fine table */
    cr_assert_eq(lp_quantize_f32(p, x, b, n - 1, NULL), 0);
    cr_assert_null(p->fine);
    lpq__quant_fine_min = saved;
    for (size_t i = 0; i < n - 1; i++)
      cr_assert(memcmp(&a[i], &b[i], sizeof a[i]) == 0, "%s: x = %.9g: %.9g (fine) vs %.9g",
                fmt(&fs[k]), x[i], a[i], b[i]);
    lp_quantizer_free(&p);
    lp_quantizer_free(&q);
  }
  free(x), free(a), free(b);
#else
  cr_skip_test("not x86-64");
#endif
}

/* Threads sharing a quantizer that has no fine table yet: each large call may build one, one
** is published, the others' are freed (ASan's leak check), and every thread gets the same bits
** as the packed kernel. */
typedef struct {
  const lp_quantizer_t *q;
  const float *x;
  float *y;
  size_t n;
} share_t;

static void *quantize_shared(void *arg) {
  share_t *a = arg;
  return lp_quantize_f32(a->q, a->x, a->y, a->n, NULL) == 0 ? arg : NULL;
}

Test(lp_quant, fine_table_built_once_by_threads_sharing_a_quantizer) {
#if defined(__x86_64__)
  if (!__builtin_cpu_supports("avx2"))
    cr_skip_test("this CPU has no AVX2");
  force_kernel("avx2");
  enum { T = 4 };
  const lp_format_t f = {8, 2, 2, 0};
  const size_t n = LPQ__FINE_MIN + 40;
  float *x = malloc(n * sizeof *x), *want = malloc(n * sizeof *want);
  float *y = malloc(T * n * sizeof *y);
  cr_assert(x && want && y);
  for (size_t i = 0; i < n; i++)
    x[i] = (float)((double)(rnd() >> 11) / 9007199254740992.0 * 6.0 - 3.0);
  const size_t saved = lpq__quant_fine_min;
  lpq__quant_fine_min = SIZE_MAX;
  lp_quantizer_t *p = lp_quantizer_new(&f, NULL);
  cr_assert_eq(lp_quantize_f32(p, x, want, n, NULL), 0);
  lpq__quant_fine_min = saved;
  for (int round = 0; round < 8; round++) {
    lp_quantizer_t *q = lp_quantizer_new(&f, NULL);
    cr_assert_not_null(q);
    pthread_t tid[T];
    share_t args[T];
    for (int t = 0; t < T; t++) {
      args[t] = (share_t){q, x, y + (size_t)t * n, n};
      cr_assert_eq(pthread_create(&tid[t], NULL, quantize_shared, &args[t]), 0);
    }
    for (int t = 0; t < T; t++) {
      void *ok = NULL;
      pthread_join(tid[t], &ok);
      cr_assert_not_null(ok, "thread %d: quantization failed", t);
      cr_assert(memcmp(y + (size_t)t * n, want, n * sizeof *want) == 0,
                "round %d thread %d: not the packed kernel's bits", round, t);
    }
    cr_assert_not_null(q->fine);
    lp_quantizer_free(&q);
  }
  lp_quantizer_free(&p);
  free(x), free(want), free(y);
#else
  cr_skip_test("not x86-64");
#endif
}

Test(lp_quant, nearest_against_brute_force_avx512_kernel) {
#if defined(__x86_64__)
  if (!__builtin_cpu_supports("avx512f")) {
    fprintf(stderr, "lp_quant: AVX-512 kernel test skipped: this CPU has no AVX-512F\n");
    cr_skip_test("this CPU has no AVX-512F: the AVX-512 kernels cannot run here");
  }
  force_kernel("avx512");
  check_all_small_formats();
  /* n = 10 formats with one threshold per bucket run the AVX-512 table kernel */
  const lp_format_t f = {10, 1, 3, 0};
  lp_quantizer_t *q = lp_quantizer_new(&f, NULL);
  cr_assert_not_null(q);
  cr_assert_str_eq(lp_quantizer_kernel(q), "avx512", "%s runs %s", fmt(&f), lp_quantizer_kernel(q));
  lp_quantizer_free(&q);
#else
  fprintf(stderr, "lp_quant: AVX-512 kernel test skipped: not x86-64\n");
  cr_skip_test("not x86-64: lp/ has no AVX-512 kernel here");
#endif
}

Test(lp_quant, spot_checks_n12_n16_and_extreme_ranges) {
  /* n = 16 exercises the general (binary search) path; es = 4 with large k leaves float range */
  const lp_format_t fs[] = {{12, 2, 3, 0}, {12, 1, 11, -9}, {16, 1, 4, 2}, {16, 0, 15, 0},
                            {16, 4, 15, 0}, {10, 4, 9, 64}, {10, 4, 9, -64}, {8, 4, 7, 0}};
  for (size_t i = 0; i < sizeof fs / sizeof fs[0]; i++)
    check_quantizer(&fs[i], getenv("LPQ_ASAN") ? 300 : 2000);
}

Test(lp_quant, nan_is_reported_with_its_index) {
  lp_format_t f = {8, 2, 2, 0};
  lp_quantizer_t *q = lp_quantizer_new(&f, NULL);
  float in[5] = {1.0f, -2.0f, NAN, 0.5f, NAN}, out[5];
  uint8_t codes[5];
  lpq_error_t err = {0};
  cr_assert_eq(lp_quantize_f32(q, in, out, 5, &err), LPQ_ENAN);
  cr_assert(strstr(err.msg, "element 2") != NULL, "message: %s", err.msg);
  cr_assert_eq(out[2], 0.0f);
  cr_assert_eq(out[0], 1.0f);
  cr_assert_eq(out[3], 0.5f);
  cr_assert_eq(lp_quantize_codes_u8(q, in, codes, 5, &err), LPQ_ENAN);
  cr_assert(strstr(err.msg, "element 2") != NULL);
  lp_quantizer_free(&q);
}

Test(lp_quant, in_place_and_invalid_format) {
  lp_format_t f = {6, 1, 3, 2};
  lp_quantizer_t *q = lp_quantizer_new(&f, NULL);
  float x[3] = {0.3f, -0.07f, 100.0f}, y[3];
  memcpy(y, x, sizeof x);
  cr_assert_eq(lp_quantize_f32(q, x, y, 3, NULL), 0);
  cr_assert_eq(lp_quantize_f32(q, x, x, 3, NULL), 0);
  cr_assert(memcmp(x, y, sizeof x) == 0);
  lp_quantizer_free(&q);
  lp_format_t bad = {8, 2, 9, 0};
  lpq_error_t err;
  cr_assert_null(lp_quantizer_new(&bad, &err));
  cr_assert(strstr(err.msg, "rs = 9") != NULL, "%s", err.msg);
}

Test(lp_quant, value_set_quantizer_for_baselines) {
  /* INT4 with scale 0.5: values 0.5 .. 3.5 */
  double v[7];
  for (int i = 0; i < 7; i++)
    v[i] = 0.5 * (i + 1);
  lp_quantizer_t *q = lp_quantizer_new_values(v, 7, 4, NULL);
  cr_assert_not_null(q);
  float in[6] = {0.24f, 0.26f, 1.25f, 1.75f, -9.0f, 3.3f}, out[6];
  float want[6] = {0.0f, 0.5f, 1.0f, 2.0f, -3.5f, 3.5f}; /* ties to even codes: 2 and 4 */
  cr_assert_eq(lp_quantize_f32(q, in, out, 6, NULL), 0);
  for (int i = 0; i < 6; i++)
    cr_assert_eq(out[i], want[i], "x=%g got %g want %g", in[i], out[i], want[i]);
  lp_quantizer_free(&q);
  double bad[3] = {1.0, 0.5, 2.0};
  lpq_error_t err;
  cr_assert_null(lp_quantizer_new_values(bad, 3, 4, &err));
  cr_assert(strstr(err.msg, "values[1]") != NULL, "%s", err.msg);
  cr_assert_null(lp_quantizer_new_values(v, 7, 3, &err));
}

Test(lp_arith, log_domain_product_equals_linear_product) {
  const lp_format_t fs[] = {{6, 1, 3, 0}, {5, 0, 4, 2}, {6, 2, 2, -3}, {7, 1, 1, 1}};
  size_t nf = sizeof fs / sizeof fs[0];
  for (size_t i = 0; i < nf; i++)
    for (size_t j = 0; j < nf; j++) {
      const lp_format_t *fa = &fs[i], *fb = &fs[j];
      for (uint32_t a = 0; a <= lp_code_mask(fa); a++)
        for (uint32_t b = 0; b <= lp_code_mask(fb); b++) {
          double want = lp_decode(fa, a) * lp_decode(fb, b);
          double got = lp_log_to_linear(lp_mul_log(fa, a, fb, b));
          if (isnan(want)) {
            cr_assert(isnan(got), "NaR times anything is NaR");
            continue;
          }
          cr_assert(fabs(got - want) <= 1e-14 * fabs(want), "%u * %u: %.17g vs %.17g", a, b, got,
                    want);
        }
    }
}

Test(lp_arith, log_value_is_exact_fixed_point) {
  lp_format_t f = {8, 2, 2, 1};
  for (uint32_t c = 1; c <= lp_maxpos(&f); c++) {
    lp_logval_t v = lp_to_log(&f, c);
    double l = (double)v.log_fixed / (double)(1 << LP_LOG_FRAC);
    cr_assert(fabs(exp2(l) - lp_decode(&f, c)) <= 1e-15 * lp_decode(&f, c));
    /* the product of a code with itself doubles the log exactly */
    lp_logval_t sq = lp_mul_log(&f, c, &f, c);
    cr_assert_eq(sq.log_fixed, 2 * v.log_fixed);
    cr_assert_eq(sq.sign, 0);
  }
  lp_logval_t neg = lp_mul_log(&f, lp_neg(&f, 5), &f, 9);
  cr_assert_eq(neg.sign, 1);
  cr_assert(lp_mul_log(&f, 0, &f, 9).is_zero);
  cr_assert(lp_mul_log(&f, lp_nar(&f), &f, 0).is_nar);
}
