/* engine/ops_avx2.h: helpers the engine's AVX2 kernels share (ops_conv_pack.c,
** ops_kernels_dw_avx2.c, ops_kernels_wino2_avx2.c, ops_kernels_wino4_avx2.c): the lane masks of
** masked loads, and the addresses of lanes that may lie outside an object. Internal to engine/;
** only for the x86-64 GCC builds that compile those kernels. */
#ifndef LPQ_ENGINE_OPS_AVX2_H
#define LPQ_ENGINE_OPS_AVX2_H

#include <immintrin.h>
#include <stdint.h>

/* p + off floats, computed as an address (a masked-off lane's may lie outside the object, which
** pointer arithmetic may not express). */
static inline const float *lpq__avx2_at(const float *p, int64_t off) {
  return (const float *)((uintptr_t)p + (uintptr_t)(off * (int64_t)sizeof(float)));
}

/* Lanes i with lo <= i < hi of an 8-lane mask (for _mm256_maskload_ps); any lo and hi. */
static inline __attribute__((always_inline, target("avx2"))) __m256i lpq__avx2_lanes(int64_t lo,
                                                                                    int64_t hi) {
  lo = lo < -1 ? -1 : lo > 8 ? 8 : lo, hi = hi < 0 ? 0 : hi > 8 ? 8 : hi;
  const __m256i i = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_set1_epi32((int)lo), i),
                             _mm256_cmpgt_epi32(_mm256_set1_epi32((int)hi), i));
}

#endif
