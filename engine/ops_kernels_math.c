/* engine/ops_kernels_math.c: element-wise transcendental activations over float arrays
** (Sigmoid, SiLU, Tanh, Erf, Exp, GELU exact and tanh), 16 (AVX-512) or 8 (AVX2) lanes at a
** time through glibc's libmvec (_ZGVeN16v_expf, ...: the vector variants of libm's expf, erff,
** tanhf, documented within 4 ulp); the last partial vector goes through the same vector call on
** a padded copy, so every element of a tensor sees the same function. Without AVX2 (or with
** LPQ_ISA=generic) libm's scalar functions. EfficientNet's SiLU and the transformers' GELU
** spent most of their time here one scalar call at a time. With AVX2, Sigmoid and SiLU take
** their exponential from an inline polynomial instead (exp_neg256). */
#include "engine/engine_internal.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define LPQ_X86_VARIANTS 1
#include <immintrin.h>
#define AVX512 __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,fma")))
#define AVX2 __attribute__((target("avx2,fma")))
/* libmvec's entry points (the x86_64 vector function ABI names) */
AVX512 __m512 _ZGVeN16v_expf(__m512);
AVX512 __m512 _ZGVeN16v_erff(__m512);
AVX512 __m512 _ZGVeN16v_tanhf(__m512);
AVX2 __m256 _ZGVdN8v_expf(__m256);
AVX2 __m256 _ZGVdN8v_erff(__m256);
AVX2 __m256 _ZGVdN8v_tanhf(__m256);
#endif

static float scalar(int kind, float x) {
  switch (kind) {
  case LPQ_MATH_SIGMOID: return 1.0f / (1.0f + expf(-x));
  case LPQ_MATH_SILU: return x / (1.0f + expf(-x));
  case LPQ_MATH_TANH: return tanhf(x);
  case LPQ_MATH_ERF: return erff(x);
  case LPQ_MATH_EXP: return expf(x);
  case LPQ_MATH_GELU: return 0.5f * x * (1.0f + erff(x * (float)M_SQRT1_2));
  default: /* LPQ_MATH_GELU_TANH */
    return 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
  }
}

#ifdef LPQ_X86_VARIANTS
static inline AVX512 __m512 v512(int kind, __m512 x) {
  const __m512 one = _mm512_set1_ps(1.0f), half = _mm512_set1_ps(0.5f);
  switch (kind) {
  case LPQ_MATH_SIGMOID:
    return _mm512_div_ps(one, _mm512_add_ps(one, _ZGVeN16v_expf(_mm512_sub_ps(_mm512_setzero_ps(), x))));
  case LPQ_MATH_SILU:
    return _mm512_div_ps(x, _mm512_add_ps(one, _ZGVeN16v_expf(_mm512_sub_ps(_mm512_setzero_ps(), x))));
  case LPQ_MATH_TANH: return _ZGVeN16v_tanhf(x);
  case LPQ_MATH_ERF: return _ZGVeN16v_erff(x);
  case LPQ_MATH_EXP: return _ZGVeN16v_expf(x);
  case LPQ_MATH_GELU: {
    const __m512 e = _ZGVeN16v_erff(_mm512_mul_ps(x, _mm512_set1_ps((float)M_SQRT1_2)));
    return _mm512_mul_ps(_mm512_mul_ps(half, x), _mm512_add_ps(one, e));
  }
  default: {
    const __m512 x3 = _mm512_mul_ps(_mm512_mul_ps(x, x), x);
    const __m512 u = _mm512_mul_ps(_mm512_set1_ps(0.7978845608028654f),
                                   _mm512_add_ps(x, _mm512_mul_ps(_mm512_set1_ps(0.044715f), x3)));
    return _mm512_mul_ps(_mm512_mul_ps(half, x), _mm512_add_ps(one, _ZGVeN16v_tanhf(u)));
  }
  }
}

static AVX512 void run512(int kind, const float *x, float *y, size_t n) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(y + i, v512(kind, _mm512_loadu_ps(x + i)));
  if (i < n) {
    const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(y + i, m, v512(kind, _mm512_maskz_loadu_ps(m, x + i)));
  }
}

/* e^-x for the logistic functions, inline: z = -x = n ln 2 + r with |r| <= ln 2 / 2 (ln 2 in
** two parts), e^r by Cephes's degree-7 expf polynomial, 2^n into the exponent bits; about 2 ulp.
** z is clamped to [-87.3, 88.3] so 2^n stays a normal float (e^-87.3 beside 1 is nothing, and
** e^88.3 makes 1 / (1 + e) as good as 0); past 88.72, where expf overflows, it gives Inf as
** expf does (so SiLU(-Inf) is NaN, as -Inf / (1 + e^Inf) is); NaN stays NaN. libmvec's
** _ZGVdN8v_expf, a call (every live vector spilled around it) with its own range checks, made
** EfficientNet-B0's SiLU 30 cycles per 8 floats on a Zen 3, a fifth of the model's time; the
** SiLU is 13 cycles per 8 with this (run256). */
static inline AVX2 __m256 exp_neg256(__m256 x) {
  const __m256 z0 = _mm256_sub_ps(_mm256_setzero_ps(), x);
  /* min(hi, z) and max(lo, .) return z when it is NaN */
  const __m256 z =
      _mm256_max_ps(_mm256_set1_ps(-87.3f), _mm256_min_ps(_mm256_set1_ps(88.3f), z0));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(z, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), z);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 q = _mm256_set1_ps(1.9875691500e-4f);
  q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(1.3981999507e-3f));
  q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(8.3334519073e-3f));
  q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(4.1665795894e-2f));
  q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(1.6666665459e-1f));
  q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(5.0000001201e-1f));
  q = _mm256_fmadd_ps(q, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i e =
      _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  const __m256 v = _mm256_mul_ps(q, _mm256_castsi256_ps(e));
  return _mm256_blendv_ps(v, _mm256_set1_ps(INFINITY),
                          _mm256_cmp_ps(z0, _mm256_set1_ps(88.7228394f), _CMP_GT_OQ));
}

static inline AVX2 __m256 v256(int kind, __m256 x) {
  const __m256 one = _mm256_set1_ps(1.0f), half = _mm256_set1_ps(0.5f);
  switch (kind) {
  case LPQ_MATH_SIGMOID: return _mm256_div_ps(one, _mm256_add_ps(one, exp_neg256(x)));
  case LPQ_MATH_SILU: return _mm256_div_ps(x, _mm256_add_ps(one, exp_neg256(x)));
  case LPQ_MATH_TANH: return _ZGVdN8v_tanhf(x);
  case LPQ_MATH_ERF: return _ZGVdN8v_erff(x);
  case LPQ_MATH_EXP: return _ZGVdN8v_expf(x);
  case LPQ_MATH_GELU: {
    const __m256 e = _ZGVdN8v_erff(_mm256_mul_ps(x, _mm256_set1_ps((float)M_SQRT1_2)));
    return _mm256_mul_ps(_mm256_mul_ps(half, x), _mm256_add_ps(one, e));
  }
  default: {
    const __m256 x3 = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
    const __m256 u = _mm256_mul_ps(_mm256_set1_ps(0.7978845608028654f),
                                   _mm256_add_ps(x, _mm256_mul_ps(_mm256_set1_ps(0.044715f), x3)));
    return _mm256_mul_ps(_mm256_mul_ps(half, x), _mm256_add_ps(one, _ZGVdN8v_tanhf(u)));
  }
  }
}

static AVX2 void run256(int kind, const float *x, float *y, size_t n) {
  size_t i = 0;
  if (kind == LPQ_MATH_SIGMOID || kind == LPQ_MATH_SILU) /* two vectors a step (the chain is
    ** long): 13 instead of 18 cycles per 8 floats */
    for (; i + 16 <= n; i += 16) {
      const __m256 a = _mm256_loadu_ps(x + i), b = _mm256_loadu_ps(x + i + 8);
      const __m256 ea = exp_neg256(a), eb = exp_neg256(b), one = _mm256_set1_ps(1.0f);
      const int silu = kind == LPQ_MATH_SILU;
      _mm256_storeu_ps(y + i, _mm256_div_ps(silu ? a : one, _mm256_add_ps(one, ea)));
      _mm256_storeu_ps(y + i + 8, _mm256_div_ps(silu ? b : one, _mm256_add_ps(one, eb)));
    }
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, v256(kind, _mm256_loadu_ps(x + i)));
  if (i < n) { /* a zero-padded copy: the lanes past n compute on zeros and are dropped */
    float t[8] = {0};
    memcpy(t, x + i, (n - i) * sizeof *t);
    _mm256_storeu_ps(t, v256(kind, _mm256_loadu_ps(t)));
    memcpy(y + i, t, (n - i) * sizeof *t);
  }
}

/* Softmax of one row: max, exp(x - max) stored with its sum (in double: each vector's lanes
** converted and added to double accumulators, reduced in a fixed order), then the scale. */
static AVX512 void softmax512(const float *x, float *y, size_t n) {
  const __m512 ninf = _mm512_set1_ps(-INFINITY);
  __m512 m = ninf;
  size_t i = 0;
  for (; i + 16 <= n; i += 16)
    m = _mm512_max_ps(m, _mm512_loadu_ps(x + i));
  const __mmask16 tail = (__mmask16)((1u << (n - i)) - 1);
  if (i < n)
    m = _mm512_max_ps(m, _mm512_mask_loadu_ps(ninf, tail, x + i));
  const __m512 mx = _mm512_set1_ps(_mm512_reduce_max_ps(m));
  __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
  for (i = 0; i + 16 <= n; i += 16) {
    const __m512 e = _ZGVeN16v_expf(_mm512_sub_ps(_mm512_loadu_ps(x + i), mx));
    _mm512_storeu_ps(y + i, e);
    s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
    s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm512_extractf32x8_ps(e, 1)));
  }
  if (i < n) {
    const __m512 e = _mm512_maskz_mov_ps(
        tail, _ZGVeN16v_expf(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, x + i), mx)));
    _mm512_mask_storeu_ps(y + i, tail, e);
    s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
    s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm512_extractf32x8_ps(e, 1)));
  }
  const __m512 inv = _mm512_set1_ps((float)(1.0 / _mm512_reduce_add_pd(_mm512_add_pd(s0, s1))));
  for (i = 0; i + 16 <= n; i += 16)
    _mm512_storeu_ps(y + i, _mm512_mul_ps(_mm512_loadu_ps(y + i), inv));
  if (i < n)
    _mm512_mask_storeu_ps(y + i, tail, _mm512_mul_ps(_mm512_maskz_loadu_ps(tail, y + i), inv));
}

/* The same with AVX2: the last partial vector through a copy padded with -Inf (exp gives 0). */
static AVX2 void softmax256(const float *x, float *y, size_t n) {
  const size_t full = n / 8 * 8;
  float t[8];
  for (int l = 0; l < 8; l++)
    t[l] = full + (size_t)l < n ? x[full + (size_t)l] : -INFINITY;
  __m256 m = _mm256_loadu_ps(t);
  for (size_t i = 0; i < full; i += 8)
    m = _mm256_max_ps(m, _mm256_loadu_ps(x + i));
  __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  h = _mm_max_ps(h, _mm_movehl_ps(h, h));
  h = _mm_max_ss(h, _mm_shuffle_ps(h, h, 1));
  const __m256 mx = _mm256_set1_ps(_mm_cvtss_f32(h));
  __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
  for (size_t i = 0; i <= full; i += 8) {
    const int last = i == full;
    if (last && full == n)
      break;
    const __m256 e = _ZGVdN8v_expf(_mm256_sub_ps(_mm256_loadu_ps(last ? t : x + i), mx));
    if (last)
      _mm256_storeu_ps(t, e);
    else
      _mm256_storeu_ps(y + i, e);
    s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
    s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
  }
  double d[4];
  _mm256_storeu_pd(d, _mm256_add_pd(s0, s1));
  const float inv = (float)(1.0 / ((d[0] + d[1]) + (d[2] + d[3])));
  const __m256 iv = _mm256_set1_ps(inv);
  for (size_t i = 0; i < full; i += 8)
    _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(y + i), iv));
  for (size_t i = full; i < n; i++)
    y[i] = t[i - full] * inv;
}

/* One LayerNormalization row with a full scale (and bias, or none): mean and variance in
** double (16 floats converted per step into two double accumulators each), the normalised value
** rounded to float, then * scale + bias in float. */
static AVX512 void layernorm512(const float *x, float *y, size_t n, double eps, const float *scale,
                                const float *bias, double *mean_out, double *istd_out) {
  __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
  size_t i = 0;
  const __mmask16 tail = (__mmask16)((1u << (n % 16)) - 1);
  const size_t full = n / 16 * 16;
  for (; i < full; i += 16) {
    const __m512 v = _mm512_loadu_ps(x + i);
    s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(v)));
    s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1)));
  }
  if (tail) {
    const __m512 v = _mm512_maskz_loadu_ps(tail, x + i);
    s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(v)));
    s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1)));
  }
  const double mean = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1)) / (double)n;
  const __m512d m = _mm512_set1_pd(mean);
  __m512d q0 = _mm512_setzero_pd(), q1 = _mm512_setzero_pd();
  for (i = 0; i < n; i += 16) {
    const __mmask16 k = i + 16 <= n ? (__mmask16)0xffff : tail;
    const __m512 v = _mm512_maskz_loadu_ps(k, x + i);
    const __m512d d0 = _mm512_maskz_sub_pd((__mmask8)k, _mm512_cvtps_pd(_mm512_castps512_ps256(v)), m);
    const __m512d d1 =
        _mm512_maskz_sub_pd((__mmask8)(k >> 8), _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1)), m);
    q0 = _mm512_fmadd_pd(d0, d0, q0);
    q1 = _mm512_fmadd_pd(d1, d1, q1);
  }
  const double istd = 1.0 / sqrt(_mm512_reduce_add_pd(_mm512_add_pd(q0, q1)) / (double)n + eps);
  const __m512d is = _mm512_set1_pd(istd);
  for (i = 0; i < n; i += 16) {
    const __mmask16 k = i + 16 <= n ? (__mmask16)0xffff : tail;
    const __m512 v = _mm512_maskz_loadu_ps(k, x + i);
    const __m256 lo = _mm512_cvtpd_ps(_mm512_mul_pd(
        _mm512_sub_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(v)), m), is));
    const __m256 hi = _mm512_cvtpd_ps(_mm512_mul_pd(
        _mm512_sub_pd(_mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1)), m), is));
    __m512 r = _mm512_insertf32x8(_mm512_castps256_ps512(lo), hi, 1);
    r = _mm512_mul_ps(r, _mm512_maskz_loadu_ps(k, scale + i));
    if (bias)
      r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(k, bias + i));
    _mm512_mask_storeu_ps(y + i, k, r);
  }
  *mean_out = mean, *istd_out = istd;
}

/* ops_norm.c's plain row 8 floats at a time, with its arithmetic: eight partial double sums (two
** vectors of four), the same pairwise total, no fused multiply-add (target avx2 alone), so the
** same bits as LPQ_ISA=generic. The plain loop was 9% of the bundled ViT's time on AVX2. */
static __attribute__((target("avx2"))) void layernorm256(const float *x, float *y, size_t n,
                                                         double eps, const float *scale,
                                                         const float *bias, double *mean_out,
                                                         double *istd_out) {
  const size_t n8 = n / 8 * 8;
  __m256d s0 = _mm256_setzero_pd(), s1 = s0;
  for (size_t i = 0; i < n8; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
    s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
  }
  double s[8];
  _mm256_storeu_pd(s, s0), _mm256_storeu_pd(s + 4, s1);
  for (size_t i = n8; i < n; i++)
    s[0] += x[i];
  const double mean = lpq__sum8(s) / (double)n;
  const __m256d m = _mm256_set1_pd(mean);
  s0 = _mm256_setzero_pd(), s1 = s0;
  for (size_t i = 0; i < n8; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    const __m256d d0 = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)), m);
    const __m256d d1 = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)), m);
    s0 = _mm256_add_pd(s0, _mm256_mul_pd(d0, d0));
    s1 = _mm256_add_pd(s1, _mm256_mul_pd(d1, d1));
  }
  _mm256_storeu_pd(s, s0), _mm256_storeu_pd(s + 4, s1);
  for (size_t i = n8; i < n; i++) {
    const double d = x[i] - mean;
    s[0] += d * d;
  }
  const double istd = 1.0 / sqrt(lpq__sum8(s) / (double)n + eps);
  const __m256d is = _mm256_set1_pd(istd);
  for (size_t i = 0; i < n8; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    const __m128 lo = _mm256_cvtpd_ps(
        _mm256_mul_pd(_mm256_sub_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)), m), is));
    const __m128 hi = _mm256_cvtpd_ps(
        _mm256_mul_pd(_mm256_sub_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)), m), is));
    __m256 r = _mm256_mul_ps(_mm256_set_m128(hi, lo), _mm256_loadu_ps(scale + i));
    if (bias)
      r = _mm256_add_ps(r, _mm256_loadu_ps(bias + i));
    _mm256_storeu_ps(y + i, r);
  }
  for (size_t i = n8; i < n; i++) {
    const float v = (float)((x[i] - mean) * istd) * scale[i];
    y[i] = bias ? v + bias[i] : v;
  }
  *mean_out = mean, *istd_out = istd;
}

int lpq__kern_layernorm_row(const float *x, float *y, size_t n, double eps, const float *scale,
                            const float *bias, double *mean, double *istd) {
  if (n == 0 || !scale || lpq__isa() == LPQ_ISA_GENERIC)
    return 0;
  if (lpq__isa() == LPQ_ISA_AVX512)
    layernorm512(x, y, n, eps, scale, bias, mean, istd);
  else
    layernorm256(x, y, n, eps, scale, bias, mean, istd);
  return 1;
}
#else
int lpq__kern_layernorm_row(const float *x, float *y, size_t n, double eps, const float *scale,
                            const float *bias, double *mean, double *istd) {
  (void)x, (void)y, (void)n, (void)eps, (void)scale, (void)bias, (void)mean, (void)istd;
  return 0;
}
#endif

double lpq__kern_exp_shift(const float *x, float *y, size_t n, float *max) {
  float mx = -INFINITY;
  for (size_t i = 0; i < n; i++)
    mx = x[i] > mx ? x[i] : mx;
  for (size_t i = 0; i < n; i++)
    y[i] = x[i] - mx;
  lpq__kern_math(LPQ_MATH_EXP, y, y, n);
  double s[4] = {0, 0, 0, 0};
  size_t i = 0;
  for (; i + 4 <= n; i += 4)
    s[0] += y[i], s[1] += y[i + 1], s[2] += y[i + 2], s[3] += y[i + 3];
  for (; i < n; i++)
    s[0] += y[i];
  *max = mx;
  return (s[0] + s[1]) + (s[2] + s[3]);
}

void lpq__kern_softmax_row(const float *x, float *y, size_t n) {
#ifdef LPQ_X86_VARIANTS
  if (lpq__isa() == LPQ_ISA_AVX512 && n > 0) {
    softmax512(x, y, n);
    return;
  }
  if (lpq__isa() == LPQ_ISA_AVX2 && n > 0) {
    softmax256(x, y, n);
    return;
  }
#endif
  float mx;
  const float inv = (float)(1.0 / lpq__kern_exp_shift(x, y, n, &mx));
  for (size_t i = 0; i < n; i++)
    y[i] *= inv;
}

/* y = clamp(a x + b, 0, 1), times x when times_x (HardSigmoid, and HardSwish as x times it).
** max/min take the value as their second operand (the one they return for a NaN), so a NaN x
** stays NaN; the plain loop compares the same way. */
static void hard_plain(int times_x, float a, float b, const float *x, float *y, size_t n) {
  for (size_t i = 0; i < n; i++) {
    float h = a * x[i] + b;
    h = 0.0f > h ? 0.0f : h; /* NaN: h, as max_ps */
    h = 1.0f < h ? 1.0f : h;
    y[i] = times_x ? x[i] * h : h;
  }
}

#ifdef LPQ_X86_VARIANTS
static AVX512 void hard512(int times_x, float a, float b, const float *x, float *y, size_t n) {
  const __m512 va = _mm512_set1_ps(a), vb = _mm512_set1_ps(b);
  const __m512 zero = _mm512_setzero_ps(), one = _mm512_set1_ps(1.0f);
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 k = i + 16 <= n ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
    const __m512 v = _mm512_maskz_loadu_ps(k, x + i);
    __m512 h = _mm512_min_ps(one, _mm512_max_ps(zero, _mm512_add_ps(_mm512_mul_ps(va, v), vb)));
    if (times_x)
      h = _mm512_mul_ps(v, h);
    _mm512_mask_storeu_ps(y + i, k, h);
  }
}

static AVX2 void hard256(int times_x, float a, float b, const float *x, float *y, size_t n) {
  const __m256 va = _mm256_set1_ps(a), vb = _mm256_set1_ps(b);
  const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.0f);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    __m256 h = _mm256_min_ps(one, _mm256_max_ps(zero, _mm256_add_ps(_mm256_mul_ps(va, v), vb)));
    _mm256_storeu_ps(y + i, times_x ? _mm256_mul_ps(v, h) : h);
  }
  hard_plain(times_x, a, b, x + i, y + i, n - i);
}
#endif

void lpq__kern_hard(int times_x, float a, float b, const float *x, float *y, size_t n) {
#ifdef LPQ_X86_VARIANTS
  if (lpq__isa() == LPQ_ISA_AVX512) {
    hard512(times_x, a, b, x, y, n);
    return;
  }
  if (lpq__isa() == LPQ_ISA_AVX2) {
    hard256(times_x, a, b, x, y, n);
    return;
  }
#endif
  hard_plain(times_x, a, b, x, y, n);
}

void lpq__kern_math(int kind, const float *x, float *y, size_t n) {
#ifdef LPQ_X86_VARIANTS
  switch (lpq__isa()) {
  case LPQ_ISA_AVX512: run512(kind, x, y, n); return;
  case LPQ_ISA_AVX2: run256(kind, x, y, n); return;
  default: break;
  }
#endif
  for (size_t i = 0; i < n; i++)
    y[i] = scalar(kind, x[i]);
}
