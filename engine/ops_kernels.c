/* engine/ops_kernels.c: the inner loops the convolution, pooling and activation kernels spend
** their time in, and the choice of instruction set (lpq__isa). Each loop is compiled three times
** (ops_kernels_body.h): for AVX-512 (x86-64-v4), AVX2+FMA (x86-64-v3) and baseline x86-64, and
** the wrapper calls the copy lpq__isa() names, so one binary runs everywhere, fast where it can,
** and LPQ_ISA=avx2 checks the AVX2 code on an AVX-512 machine. */
#include "engine/engine_internal.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* -O2's "very cheap" vectoriser skips loops whose trip count is unknown; these need it. */
#if defined(__GNUC__) && !defined(__clang__) /* clang vectorises at -O2 and has no such pragma */
#pragma GCC optimize("tree-vectorize", "vect-cost-model=dynamic")
/* short variable copies stay loops: a memcpy call (or rep movs) costs more than they do */
#pragma GCC optimize("no-tree-loop-distribute-patterns")
#endif

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define LPQ_X86_VARIANTS 1
#include <immintrin.h>
#include <stdint.h>
#endif

static int isa_detect(void) {
#ifdef LPQ_X86_VARIANTS
  __builtin_cpu_init();
  int best = LPQ_ISA_GENERIC;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    best = LPQ_ISA_AVX2;
  if (best == LPQ_ISA_AVX2 && __builtin_cpu_supports("avx512f") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512bw"))
    best = LPQ_ISA_AVX512;
  const char *env = getenv("LPQ_ISA"); /* a lower level only: never one the CPU lacks */
  int want = best;
  if (env && strcmp(env, "avx2") == 0)
    want = LPQ_ISA_AVX2;
  else if (env && strcmp(env, "generic") == 0)
    want = LPQ_ISA_GENERIC;
  return want < best ? want : best;
#else
  return LPQ_ISA_GENERIC;
#endif
}

int lpq__isa(void) {
  static atomic_int cached = -1;
  int v = atomic_load_explicit(&cached, memory_order_relaxed);
  if (v < 0) {
    v = isa_detect();
    atomic_store_explicit(&cached, v, memory_order_relaxed);
  }
  return v;
}

const char *lpq_engine_isa(void) {
  static const char *const names[] = {"generic", "avx2", "avx512"};
  return names[lpq__isa()];
}

#define KSUF _generic
#include "engine/ops_kernels_body.h"
#undef KSUF

#ifdef LPQ_X86_VARIANTS
#pragma GCC push_options
#pragma GCC target("arch=x86-64-v3")
#define KSUF _avx2
#include "engine/ops_kernels_body.h"
#undef KSUF
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("arch=x86-64-v4")
#define KSUF _avx512
#include "engine/ops_kernels_body.h"
#undef KSUF

/* The multi-row Winograd F(2x2) transforms with AVX-512 masks: the input lanes gathered
** straight from the plane's rows in registers (masked loads: no padded copies, no partial
** stores read back), the outputs stored with masks. The same arithmetic per lane as the
** loops (ops_kernels_wino_body.h). */
/* Bits [lo, hi) of 32 (lo, hi clamped to [0, 32]). */
static inline uint32_t wino_bits(int64_t lo, int64_t hi) {
  lo = lo < 0 ? 0 : lo > 32 ? 32 : lo, hi = hi < 0 ? 0 : hi > 32 ? 32 : hi;
  return lo >= hi ? 0 : (uint32_t)(((1ull << hi) - 1) & ~((1ull << lo) - 1));
}

/* p + off floats, computed as an address (the masked-off lanes may lie outside the object). */
static inline const float *wino_at(const float *p, int64_t off) {
  return (const float *)((uintptr_t)p + (uintptr_t)(off * (int64_t)sizeof(float)));
}

/* Lanes lm of D0..D3 (window columns 0..3) from row: raw element e of the first 32 is column
** sh + e (lane e / 2), masks ma (columns 0, 1) and mb (2, 3, two further). A macro: the 16
** accumulators stay in registers. */
#define WINO_ROW512(row, D0, D1, D2, D3)                                                       \
  do {                                                                                         \
    const float *b_ = wino_at(row, sh), *b2_ = wino_at(row, sh + 2);                           \
    const __m512 a0_ = _mm512_maskz_loadu_ps((__mmask16)ma, b_);                               \
    const __m512 a1_ = _mm512_maskz_loadu_ps((__mmask16)(ma >> 16), wino_at(b_, 16));          \
    const __m512 c0_ = _mm512_maskz_loadu_ps((__mmask16)mb, b2_);                              \
    const __m512 c1_ = _mm512_maskz_loadu_ps((__mmask16)(mb >> 16), wino_at(b2_, 16));         \
    D0 = _mm512_mask_mov_ps(D0, lm, _mm512_permutex2var_ps(a0_, ie, a1_));                     \
    D1 = _mm512_mask_mov_ps(D1, lm, _mm512_permutex2var_ps(a0_, io, a1_));                     \
    D2 = _mm512_mask_mov_ps(D2, lm, _mm512_permutex2var_ps(c0_, ie, c1_));                     \
    D3 = _mm512_mask_mov_ps(D3, lm, _mm512_permutex2var_ps(c0_, io, c1_));                     \
  } while (0)

static void wino_in_segs512(size_t nt, const wino_iseg_t *seg, const int *first, size_t nruns,
                            int64_t W, size_t off, float *dst, size_t vstride, size_t pstride) {
  const __m512i ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i io = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  for (size_t k = 0; k < nruns; k++) {
    /* dRQ: input row R, window column Q */
    __m512 d00 = _mm512_setzero_ps(), d01 = d00, d02 = d00, d03 = d00, d10 = d00, d11 = d00;
    __m512 d12 = d00, d13 = d00, d20 = d00, d21 = d00, d22 = d00, d23 = d00, d30 = d00;
    __m512 d31 = d00, d32 = d00, d33 = d00;
    for (int s = first[k]; s < first[k + 1]; s++) {
      const wino_iseg_t *g = &seg[s];
      const int64_t e0 = 2 * (int64_t)g->l0, e1 = e0 + 2 * (int64_t)g->len, sh = g->x0 - e0;
      const uint32_t ma = wino_bits(e0 > -sh ? e0 : -sh, e1 < W - sh ? e1 : W - sh);
      const uint32_t mb = wino_bits(e0 > -sh - 2 ? e0 : -sh - 2, e1 < W - sh - 2 ? e1 : W - sh - 2);
      const __mmask16 lm = (__mmask16)(((1u << g->len) - 1) << g->l0);
      if (g->row[0])
        WINO_ROW512(g->row[0] + off, d00, d01, d02, d03);
      if (g->row[1])
        WINO_ROW512(g->row[1] + off, d10, d11, d12, d13);
      if (g->row[2])
        WINO_ROW512(g->row[2] + off, d20, d21, d22, d23);
      if (g->row[3])
        WINO_ROW512(g->row[3] + off, d30, d31, d32, d33);
    }
    /* run k is block columns [16 k, 16 k + n): within one 32-column panel */
    const size_t col = 16 * k, n = nt - col < 16 ? nt - col : 16;
    const __mmask16 sm = (__mmask16)((1u << n) - 1);
    float *out = dst + col / 32 * pstride + col % 32;
    /* window column q: eR = (d B)[R][q], then V_xi (xi = 4i + q) stored at once */
#define WINO_V(q, e0, e1, e2, e3)                                                              \
  do {                                                                                         \
    _mm512_mask_storeu_ps(out + (size_t)(q) * vstride, sm, _mm512_sub_ps(e0, e2));             \
    _mm512_mask_storeu_ps(out + (size_t)(4 + (q)) * vstride, sm, _mm512_add_ps(e1, e2));       \
    _mm512_mask_storeu_ps(out + (size_t)(8 + (q)) * vstride, sm, _mm512_sub_ps(e2, e1));       \
    _mm512_mask_storeu_ps(out + (size_t)(12 + (q)) * vstride, sm, _mm512_sub_ps(e1, e3));      \
  } while (0)
    WINO_V(0, _mm512_sub_ps(d00, d02), _mm512_sub_ps(d10, d12), _mm512_sub_ps(d20, d22),
           _mm512_sub_ps(d30, d32));
    WINO_V(1, _mm512_add_ps(d01, d02), _mm512_add_ps(d11, d12), _mm512_add_ps(d21, d22),
           _mm512_add_ps(d31, d32));
    WINO_V(2, _mm512_sub_ps(d02, d01), _mm512_sub_ps(d12, d11), _mm512_sub_ps(d22, d21),
           _mm512_sub_ps(d32, d31));
    WINO_V(3, _mm512_sub_ps(d01, d03), _mm512_sub_ps(d11, d13), _mm512_sub_ps(d21, d23),
           _mm512_sub_ps(d31, d33));
#undef WINO_V
  }
}
#undef WINO_ROW512

static void wino_out_segs512(const float *s, size_t ystride, const wino_oseg_t *seg, size_t nseg,
                             size_t off, float bias, float lo, float hi) {
  float w[2][32];
  wino_out_core__avx512(s, ystride, 0, w);
  const __m512 vb = _mm512_set1_ps(bias), vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
  __m512 x[2][2];
  for (int i = 0; i < 2; i++)
    for (int h = 0; h < 2; h++)
      x[i][h] = _mm512_add_ps(_mm512_loadu_ps(w[i] + 16 * h), vb);
  for (size_t k = 0; k < nseg; k++) {
    const wino_oseg_t *g = &seg[k];
    const int64_t e0 = 2 * (int64_t)g->l0;
    const uint32_t m = wino_bits(e0, e0 + (int64_t)g->w);
    for (int i = 0; i < g->rows; i++) {
      float *yb = (float *)wino_at(g->y[i] + off, -e0);
      const float *rb = g->res[i] ? wino_at(g->res[i] + off, -e0) : NULL;
      for (int h = 0; h < 2; h++) {
        const __mmask16 mh = (__mmask16)(m >> (16 * h));
        if (!mh)
          continue;
        __m512 v = x[i][h];
        if (rb) /* (w + bias) + res, as the loops */
          v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mh, wino_at(rb, 16 * h)));
        v = _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, vlo, _CMP_LT_OQ), vlo);
        v = _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, vhi, _CMP_GT_OQ), vhi);
        _mm512_mask_storeu_ps((float *)wino_at(yb, 16 * h), mh, v);
      }
    }
  }
}
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

void lpq__kern_axpy(float *restrict y, const float *restrict x, float w, size_t n) {
  DISPATCH(axpy_, y, x, w, n);
}

void lpq__kern_max(float *restrict y, const float *restrict x, size_t n) {
  DISPATCH(max_, y, x, n);
}

void lpq__kern_add(float *restrict y, const float *restrict x, size_t n) {
  DISPATCH(add_, y, x, n);
}

void lpq__kern_bias_clamp(float *y, float bias, float lo, float hi, size_t n) {
  DISPATCH(bias_clamp_, y, bias, lo, hi, n);
}

void lpq__kern_bias_add_clamp(float *restrict y, const float *restrict r, float bias, float lo,
                              float hi, size_t n) {
  DISPATCH(bias_add_clamp_, y, r, bias, lo, hi, n);
}

void lpq__kern_dw9(float *restrict y, const float *const *taps, const float *w, float bias,
                   float lo, float hi, size_t n) {
  DISPATCH(dw9_, y, taps, w, bias, lo, hi, n);
}

#ifdef LPQ_X86_VARIANTS
/* 16 pairs per step: two loads, a two-source permute for each half, two stores. */
__attribute__((target("avx512f"))) static size_t deinterleave_avx512(float *even, float *odd,
                                                                     const float *x, size_t n) {
  const __m512i ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i io = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512 a = _mm512_loadu_ps(x + i), b = _mm512_loadu_ps(x + i + 16);
    _mm512_storeu_ps(even + i / 2, _mm512_permutex2var_ps(a, ie, b));
    _mm512_storeu_ps(odd + i / 2, _mm512_permutex2var_ps(a, io, b));
  }
  return i;
}
#endif

void lpq__kern_deinterleave(float *restrict even, float *restrict odd, const float *restrict x,
                       size_t n) {
#ifdef LPQ_X86_VARIANTS
  if (lpq__isa() == LPQ_ISA_AVX512) {
    const size_t i = deinterleave_avx512(even, odd, x, n);
    deinterleave__avx512(even + i / 2, odd + i / 2, x + i, n - i);
    return;
  }
#endif
  DISPATCH(deinterleave_, even, odd, x, n);
}

void lpq__kern_wino_in(size_t len, const float *const *E, const float *const *O, float *dst,
                       size_t vstride, size_t col0, size_t pstride) {
  DISPATCH(wino_in_, len, E, O, dst, vstride, col0, pstride);
}

void lpq__kern_wino_out(size_t len, const float *s, size_t ystride, const wino_out_t *o) {
  DISPATCH(wino_out_, len, s, ystride, o);
}

int lpq__kern_wino_masked(void) {
  return lpq__isa() == LPQ_ISA_AVX512;
}

void lpq__kern_wino_in_segs(size_t nt, const wino_iseg_t *seg, const int *first, size_t nruns,
                            int64_t W, size_t off, float *dst, size_t vstride, size_t pstride) {
#ifdef LPQ_X86_VARIANTS
  if (lpq__isa() == LPQ_ISA_AVX512) {
    wino_in_segs512(nt, seg, first, nruns, W, off, dst, vstride, pstride);
    return;
  }
#endif
  DISPATCH(wino_in_segs_, nt, seg, first, nruns, W, off, dst, vstride, pstride);
}

void lpq__kern_wino_out_segs(const float *s, size_t ystride, const wino_oseg_t *seg,
                             size_t nseg, size_t off, float bias, float lo, float hi) {
#ifdef LPQ_X86_VARIANTS
  if (lpq__isa() == LPQ_ISA_AVX512) {
    wino_out_segs512(s, ystride, seg, nseg, off, bias, lo, hi);
    return;
  }
#endif
  DISPATCH(wino_out_segs_, s, ystride, seg, nseg, off, bias, lo, hi);
}

void lpq__kern_deinterleave4(float *restrict p0, float *restrict p1, float *restrict p2,
                             float *restrict p3, const float *restrict x, size_t n) {
  DISPATCH(deinterleave4_, p0, p1, p2, p3, x, n);
}

void lpq__kern_wino4_in(size_t len, const float *const *P, float *dst, size_t vstride,
                        size_t col0, size_t pstride) {
  DISPATCH(wino4_in_, len, P, dst, vstride, col0, pstride);
}

void lpq__kern_wino4_out(size_t len, const float *s, size_t ystride, const wino_out_t *o) {
  DISPATCH(wino4_out_, len, s, ystride, o);
}
