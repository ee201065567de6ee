/* engine/ops_kernels_dw.c: the inner loops of the fused depthwise path (ops_dwfuse.c), each
** compiled for AVX-512 (x86-64-v4), AVX2+FMA (x86-64-v3) and baseline x86-64 like
** ops_kernels.c's, the copy lpq__isa() names called. */
#include "engine/engine_internal.h"

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

void lpq__kern_dw9s2(float *restrict y, const float *const *taps, const float *w, float bias,
                     float lo, float hi, size_t n) {
  DISPATCH(dw9s2_, y, taps, w, bias, lo, hi, n);
}

void lpq__kern_dwblk_row(float *restrict y, const float *restrict r0, const float *restrict r1,
                         const float *restrict r2, const float *restrict w,
                         const float *restrict b, float lo, float hi, size_t ow, size_t s) {
  DISPATCH(dwblk_row_, y, r0, r1, r2, w, b, lo, hi, ow, s);
}
