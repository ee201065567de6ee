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
#include <immintrin.h>
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

void lpq__kern_wino_in_segs(size_t nt, const wino_iseg_t *seg, const int *first, size_t nruns,
                            float *dst, size_t vstride, size_t pstride) {
  DISPATCH(wino_in_segs_, nt, seg, first, nruns, dst, vstride, pstride);
}

void lpq__kern_wino_out_segs(const float *s, size_t ystride, const wino_oseg_t *seg,
                             size_t nseg, size_t off, float bias, float lo, float hi) {
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
