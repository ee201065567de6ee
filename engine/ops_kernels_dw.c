/* engine/ops_kernels_dw.c: the inner loops of the fused depthwise path (ops_dwfuse.c), each
** compiled for AVX-512 (x86-64-v4), AVX2+FMA (x86-64-v3) and baseline x86-64 like
** ops_kernels.c's, the copy lpq__isa() names called. */
#include "engine/engine_internal.h"

#include <stdint.h>

/* -O2's "very cheap" vectoriser skips loops whose trip count is unknown; these need it. */
#if defined(__GNUC__) && !defined(__clang__) /* clang vectorises at -O2 and has no such pragma */
#pragma GCC optimize("tree-vectorize", "vect-cost-model=dynamic")
#pragma GCC optimize("no-tree-loop-distribute-patterns")
#endif

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define LPQ_X86_VARIANTS 1
#endif

#define KSUF _generic
#include "engine/ops_kernels_dw_body.h"
#undef KSUF

#ifdef LPQ_X86_VARIANTS
#pragma GCC push_options
#pragma GCC target("arch=x86-64-v3")
#define KSUF _avx2
#include "engine/ops_kernels_dw_body.h"
#undef KSUF
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("arch=x86-64-v4")
#define KSUF _avx512
#include "engine/ops_kernels_dw_body.h"
#undef KSUF
#pragma GCC pop_options

#define DISPATCH(name, ...)                                                                    \
  switch (lpq__isa()) {                                                                        \
  case LPQ_ISA_AVX512: name##_avx512(__VA_ARGS__); return;                                     \
  case LPQ_ISA_AVX2: name##_avx2(__VA_ARGS__); return;                                         \
  default: name##_generic(__VA_ARGS__); return;                                                \
  }
#else
#define DISPATCH(name, ...) name##_generic(__VA_ARGS__)
#endif

#ifdef LPQ_X86_VARIANTS
#include <immintrin.h>
#define AVX512 __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,fma")))

/* The rows' last partial vector with masks (loads never touch the lanes past n), where the
** compiled loops would finish one lane at a time; the same arithmetic order as the loops:
** bias, then tap 0 to 8 each by one multiply-add, then the clamp (a NaN stays NaN). */
static inline AVX512 __mmask16 tail_mask(size_t left) {
  return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
}

static AVX512 void dw9_512(float *y, const float *const *taps, const float *w, float bias,
                           float lo, float hi, size_t n) {
  __m512 wv[9];
  for (int t = 0; t < 9; t++)
    wv[t] = _mm512_set1_ps(w[t]);
  const __m512 vb = _mm512_set1_ps(bias), vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    __m512 acc = vb;
    for (int t = 0; t < 9; t++)
      acc = _mm512_fmadd_ps(wv[t], _mm512_maskz_loadu_ps(m, taps[t] + i), acc);
    acc = _mm512_min_ps(vhi, _mm512_max_ps(vlo, acc));
    _mm512_mask_storeu_ps(y + i, m, acc);
  }
}

static AVX512 void dw9s2_512(float *y, const float *const *taps, const float *w, float bias,
                             float lo, float hi, size_t n) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  __m512 wv[9];
  for (int t = 0; t < 9; t++)
    wv[t] = _mm512_set1_ps(w[t]);
  const __m512 vb = _mm512_set1_ps(bias), vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
  for (size_t i = 0; i < n; i += 16) {
    const size_t left = n - i, lanes = left >= 16 ? 31 : 2 * left - 1; /* elements read */
    const __mmask16 m = tail_mask(left), m0 = tail_mask(lanes);
    const __mmask16 m1 = lanes > 16 ? tail_mask(lanes - 16) : 0;
    __m512 acc = vb;
    for (int t = 0; t < 9; t++) {
      const float *p = taps[t] + 2 * i;
      const __m512 a = _mm512_maskz_loadu_ps(m0, p), b = _mm512_maskz_loadu_ps(m1, p + 16);
      acc = _mm512_fmadd_ps(wv[t], _mm512_permutex2var_ps(a, even, b), acc);
    }
    acc = _mm512_min_ps(vhi, _mm512_max_ps(vlo, acc));
    _mm512_mask_storeu_ps(y + i, m, acc);
  }
}

#endif

int lpq__kern_dw3_rows(float *out, const float *E, int64_t lo_row, const float *zero,
                       const float *w, float bias, float lo, float hi, int64_t H, int64_t W,
                       int64_t OW, int s, int64_t oy0, int64_t oy1) {
#ifdef LPQ_X86_VARIANTS
  if (lpq__isa() >= LPQ_ISA_AVX2)
    return lpq__kern_dw3_rows_avx2(out, E, lo_row, zero, w, bias, lo, hi, H, W, OW, s, oy0, oy1);
#endif
  (void)out, (void)E, (void)lo_row, (void)zero, (void)w, (void)bias, (void)lo, (void)hi;
  (void)H, (void)W, (void)OW, (void)s, (void)oy0, (void)oy1;
  return 0;
}

void lpq__kern_dw9s2(float *restrict y, const float *const *taps, const float *w, float bias,
                     float lo, float hi, size_t n) {
#ifdef LPQ_X86_VARIANTS
  if (lpq__isa() == LPQ_ISA_AVX512) {
    dw9s2_512(y, taps, w, bias, lo, hi, n);
    return;
  }
#endif
  DISPATCH(dw9s2_, y, taps, w, bias, lo, hi, n);
}

void lpq__kern_dw9m(float *restrict y, const float *const *taps, const float *w, float bias,
                    float lo, float hi, size_t n) {
#ifdef LPQ_X86_VARIANTS
  if (lpq__isa() == LPQ_ISA_AVX512) {
    dw9_512(y, taps, w, bias, lo, hi, n);
    return;
  }
#endif
  lpq__kern_dw9(y, taps, w, bias, lo, hi, n);
}

void lpq__kern_dwblk_row(float *restrict y, const float *restrict r0, const float *restrict r1,
                         const float *restrict r2, const float *restrict w,
                         const float *restrict b, float lo, float hi, size_t ow, size_t s) {
  DISPATCH(dwblk_row_, y, r0, r1, r2, w, b, lo, hi, ow, s);
}

size_t lpq__kern_dw3_flat_masks(uint16_t *m, size_t cap, int64_t g, int64_t H, int64_t W) {
  const int64_t n = g * H * W;
  const size_t nvec = n > 0 ? (size_t)((n + 15) / 16) : 0;
#ifdef LPQ_X86_VARIANTS
  const int isa = lpq__isa();
  if ((isa == LPQ_ISA_AVX512 || isa == LPQ_ISA_AVX2) && nvec > 0 && nvec <= cap) {
    for (size_t i = 0; i < 9 * nvec; i++)
      m[i] = 0;
    int64_t ox = 0, oy = 0; /* output p's column and row in its plane */
    for (int64_t p = 0; p < n; p++) {
      const int rows[3] = {oy > 0, 1, oy < H - 1}, cols[3] = {ox > 0, 1, ox < W - 1};
      uint16_t *mv = m + (p / 16) * 9;
      const uint16_t bit = (uint16_t)(1u << (p % 16));
      for (int t = 0; t < 9; t++)
        mv[t] = rows[t / 3] && cols[t % 3] ? (uint16_t)(mv[t] | bit) : mv[t];
      if (++ox == W && (ox = 0, ++oy == H))
        oy = 0;
    }
    return nvec;
  }
#endif
  (void)m, (void)cap;
  return 0;
}

void lpq__kern_dw3_flat_run(float *y, size_t panel, const float *x, const uint16_t *m,
                            size_t nvec, int64_t g, int64_t H, int64_t W, const float *w,
                            float bias, float lo, float hi) {
#ifdef LPQ_X86_VARIANTS
  lpq__kern_dw3_flat_run_avx2(y, panel, x, m, nvec, g, H, W, w, bias, lo, hi);
#else
  (void)y, (void)panel, (void)x, (void)m, (void)nvec, (void)g, (void)H, (void)W, (void)w;
  (void)bias, (void)lo, (void)hi;
#endif
}
