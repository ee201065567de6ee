/* engine/ops_avx2.h: helpers the engine's AVX2 kernels share (ops_conv_pack.c, ops_dwblock.c,
** ops_dwflat.c, ops_kernels_dw_avx2.c, ops_kernels_wino2_avx2.c, ops_kernels_wino4_avx2.c,
** ops_sgemm.c): the lane masks of masked loads, the addresses of lanes that may lie outside an
** object, the bias pass's clamp, and an 8 x 8 transpose. Internal to engine/; only for the x86-64
** GCC builds that compile those kernels. */
#ifndef LPQ_ENGINE_OPS_AVX2_H
#define LPQ_ENGINE_OPS_AVX2_H

#include <immintrin.h>
#include <stddef.h>
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

/* What lpq__kern_bias_clamp(y, 0, lo, hi) does to 8 sums: v + 0 (-0 becomes +0), then
** v < lo ? lo : v, then v > hi ? hi : v (a NaN stays NaN). */
static inline __attribute__((always_inline, target("avx2"))) __m256 lpq__avx2_clamp0(__m256 v,
                                                                                    __m256 lo,
                                                                                    __m256 hi) {
  return _mm256_min_ps(hi, _mm256_max_ps(lo, _mm256_add_ps(v, _mm256_setzero_ps())));
}

/* dst[j * ldd + i] = src[i * lds + j] for i, j < 8, in registers. */
static inline __attribute__((always_inline, target("avx2"))) void
lpq__avx2_transpose8(const float *src, size_t lds, float *dst, size_t ldd) {
  __m256 r0 = _mm256_loadu_ps(src), r1 = _mm256_loadu_ps(src + lds);
  __m256 r2 = _mm256_loadu_ps(src + 2 * lds), r3 = _mm256_loadu_ps(src + 3 * lds);
  __m256 r4 = _mm256_loadu_ps(src + 4 * lds), r5 = _mm256_loadu_ps(src + 5 * lds);
  __m256 r6 = _mm256_loadu_ps(src + 6 * lds), r7 = _mm256_loadu_ps(src + 7 * lds);
  const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
  const __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
  const __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
  const __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
  r0 = _mm256_shuffle_ps(t0, t2, 0x44), r1 = _mm256_shuffle_ps(t0, t2, 0xee);
  r2 = _mm256_shuffle_ps(t1, t3, 0x44), r3 = _mm256_shuffle_ps(t1, t3, 0xee);
  r4 = _mm256_shuffle_ps(t4, t6, 0x44), r5 = _mm256_shuffle_ps(t4, t6, 0xee);
  r6 = _mm256_shuffle_ps(t5, t7, 0x44), r7 = _mm256_shuffle_ps(t5, t7, 0xee);
  _mm256_storeu_ps(dst, _mm256_permute2f128_ps(r0, r4, 0x20));
  _mm256_storeu_ps(dst + ldd, _mm256_permute2f128_ps(r1, r5, 0x20));
  _mm256_storeu_ps(dst + 2 * ldd, _mm256_permute2f128_ps(r2, r6, 0x20));
  _mm256_storeu_ps(dst + 3 * ldd, _mm256_permute2f128_ps(r3, r7, 0x20));
  _mm256_storeu_ps(dst + 4 * ldd, _mm256_permute2f128_ps(r0, r4, 0x31));
  _mm256_storeu_ps(dst + 5 * ldd, _mm256_permute2f128_ps(r1, r5, 0x31));
  _mm256_storeu_ps(dst + 6 * ldd, _mm256_permute2f128_ps(r2, r6, 0x31));
  _mm256_storeu_ps(dst + 7 * ldd, _mm256_permute2f128_ps(r3, r7, 0x31));
}

#endif
