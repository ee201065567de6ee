/* lp/lp_quant_x86.c: lp_quantize_f32's vector kernels for x86-64 (AVX2 and AVX-512F), each
** chosen at run time by lp_quant.c's dispatch (lp_simd_level) and each equal, bit for bit, to
** the scalar loop (tests/test_lp_quant.c forces each against brute force). */
#include "lp/lp_internal.h"

#include <immintrin.h>

#if defined(__x86_64__) && defined(__GNUC__)
/* What the AVX2 kernels share: 8 elements' magnitudes, NaN lanes and bucket indices (a table of
** `count` buckets of 2^shift patterns from bucket `first`), and the store of their values with
** the inputs' signs (NaN lanes 0). */
typedef struct {
  __m256i absmask, inf, signmask, first, last, zero;
  __m128i shift;
} lanes_t;

__attribute__((target("avx2"))) static inline lanes_t lanes_init(int32_t first, int32_t count,
                                                                 int shift) {
  const lanes_t k = {_mm256_set1_epi32(0x7fffffff), _mm256_set1_epi32(F32_INF_BITS),
                     _mm256_set1_epi32((int)0x80000000u), _mm256_set1_epi32(first),
                     _mm256_set1_epi32(count - 1), _mm256_setzero_si256(),
                     _mm_cvtsi32_si128(shift)};
  return k;
}

__attribute__((target("avx2"))) static inline __m256i lanes_bucket(const lanes_t *k, __m256i u,
                                                                   __m256i *a, __m256i *nan) {
  *a = _mm256_and_si256(u, k->absmask);
  *nan = _mm256_cmpgt_epi32(*a, k->inf);
  const __m256i b = _mm256_sub_epi32(_mm256_srl_epi32(*a, k->shift), k->first);
  return _mm256_min_epi32(_mm256_max_epi32(b, k->zero), k->last);
}

__attribute__((target("avx2"))) static inline void lanes_store(const lanes_t *k, float *out,
                                                               __m256i u, __m256i r,
                                                               __m256i nan) {
  r = _mm256_or_si256(r, _mm256_and_si256(u, k->signmask));
  _mm256_storeu_si256((__m256i *)(void *)out, _mm256_andnot_si256(nan, r));
}

#define LANES_LOOP(BODY)                                                                      \
  __m256i nan_acc = _mm256_setzero_si256();                                                   \
  size_t i = 0;                                                                               \
  for (; i + 8 <= count; i += 8) {                                                            \
    const __m256i u = _mm256_loadu_si256((const __m256i *)(const void *)(in + i));           \
    __m256i a, nan, r;                                                                        \
    const __m256i b = lanes_bucket(&k, u, &a, &nan);                                          \
    BODY                                                                                      \
    lanes_store(&k, out + i, u, r, nan);                                                      \
    nan_acc = _mm256_or_si256(nan_acc, nan);                                                  \
  }                                                                                           \
  return lpq__quantize_f32_fast(q, in + i, out + i, count - i) |                              \
         (size_t)!_mm256_testz_si256(nan_acc, nan_acc)

/* The same loop, 8 lanes: three gathers (threshold, low value, high value) per vector. */
__attribute__((target("avx2"))) size_t lpq__quantize_f32_avx2(const lp_quantizer_t *q,
                                                                 const float *in, float *out,
                                                                 size_t count) {
  const int *tab = (const int *)(const void *)q->bucket;
  const lanes_t k = lanes_init(q->first, q->nbuckets, q->shift);
  LANES_LOOP({
    const __m256i idx = _mm256_slli_epi32(b, 2); /* 16-byte entries */
    const __m256i thr = _mm256_i32gather_epi32(tab, idx, 4);
    const __m256i lo = _mm256_i32gather_epi32(tab + 1, idx, 4);
    const __m256i hi = _mm256_i32gather_epi32(tab + 2, idx, 4);
    r = _mm256_blendv_epi8(hi, lo, _mm256_cmpgt_epi32(thr, a));
  });
}

/* The code of each lane in a bucket (first + b) << shift whose entry e holds the threshold's
** offset in the bucket (e >> 8, masked by off) and the low code (e & 0xff). */
__attribute__((target("avx2"))) static inline __m256i bucket_code(const lanes_t *k, __m256i b,
                                                                  __m256i a, __m256i e,
                                                                  __m256i off) {
  const __m256i start = _mm256_sll_epi32(_mm256_add_epi32(b, k->first), k->shift);
  const __m256i thr = _mm256_add_epi32(start, _mm256_and_si256(_mm256_srli_epi32(e, 8), off));
  const __m256i up = _mm256_andnot_si256(_mm256_cmpgt_epi32(thr, a), _mm256_set1_epi32(1));
  return _mm256_add_epi32(_mm256_and_si256(e, _mm256_set1_epi32(0xff)), up);
}

/* The packed table: one gather for the code, one for its value. */
__attribute__((target("avx2"))) size_t lpq__quantize_f32_avx2_packed(const lp_quantizer_t *q,
                                                                        const float *in,
                                                                        float *out,
                                                                        size_t count) {
  const int *tab = (const int *)(const void *)q->packed;
  const int *val = (const int *)(const void *)q->fbits;
  const __m256i off = _mm256_set1_epi32(0xffffff);
  const lanes_t k = lanes_init(q->pfirst, q->pcount, q->pshift);
  LANES_LOOP({
    const __m256i code = bucket_code(&k, b, a, _mm256_i32gather_epi32(tab, b, 4), off);
    r = _mm256_i32gather_epi32(val, code, 4);
  });
}

/* The fine table (lp_fine_t): one gather gives the value of every element outside a
** threshold's bucket; a vector with an element inside one gathers those elements' values
** again by code (a masked gather: the others keep theirs). On a Zen 3 EPYC 1.3-1.6x the packed
** kernel's rate (its two gathers a vector were its cost). */
__attribute__((target("avx2"))) size_t lpq__quantize_f32_avx2_fine(const lp_quantizer_t *q,
                                                                   const lp_fine_t *t,
                                                                   const float *in, float *out,
                                                                   size_t count) {
  const int *tab = (const int *)(const void *)t->e, *val = (const int *)(const void *)q->fbits;
  const __m256i off = _mm256_set1_epi32(0x7fffff);
  const lanes_t k = lanes_init(t->first, t->count, t->shift);
  LANES_LOOP({
    r = _mm256_i32gather_epi32(tab, b, 4);
    if (_mm256_movemask_ps(_mm256_castsi256_ps(r))) /* some in a threshold's bucket */
      r = _mm256_mask_i32gather_epi32(r, val, bucket_code(&k, b, a, r, off), r, 4);
  });
}
#undef LANES_LOOP

/* n <= 8 on AVX-512: no gathers at all. The 127 thresholds and 128 values live in sixteen
** registers; a branch-free binary search (7 steps, each a 128-entry lookup: four two-register
** vpermi2d and three blends) counts the thresholds at or below |x|, which is the code; one
** more lookup gives its value. Used when the format has at most 127 positive codes. */
__attribute__((target("avx512f"))) static inline __m512i lookup128(const __m512i t[8],
                                                                   __m512i idx) {
  __m512i b0 = _mm512_permutex2var_epi32(t[0], idx, t[1]); /* entries 0..31 by idx & 31 */
  __m512i b1 = _mm512_permutex2var_epi32(t[2], idx, t[3]); /* 32..63 */
  __m512i b2 = _mm512_permutex2var_epi32(t[4], idx, t[5]); /* 64..95 */
  __m512i b3 = _mm512_permutex2var_epi32(t[6], idx, t[7]); /* 96..127 */
  __mmask16 bit5 = _mm512_test_epi32_mask(idx, _mm512_set1_epi32(32));
  __mmask16 bit6 = _mm512_test_epi32_mask(idx, _mm512_set1_epi32(64));
  __m512i lo = _mm512_mask_blend_epi32(bit5, b0, b1), hi = _mm512_mask_blend_epi32(bit5, b2, b3);
  return _mm512_mask_blend_epi32(bit6, lo, hi);
}

__attribute__((target("avx512f"))) size_t lpq__quantize_f32_avx512_search(
    const lp_quantizer_t *q, const float *in, float *out, size_t count) {
  /* thr[j]: where code j+1 starts; the search's step with bit b probes thr[pos + b - 1] where
  ** pos is a multiple of 2b, so each step needs only the 64/b entries thr[m*2b + b - 1]:
  ** 1, 2, 4, 8, 16 (one register), 32 (two), 64 (four) */
  const uint32_t(*step)[64] = (const uint32_t(*)[64])q->search, *val = q->search + 7 * 64;
  __m512i S2 = _mm512_loadu_si512((const void *)step[2]), S3 = _mm512_loadu_si512((const void *)step[3]);
  __m512i S4 = _mm512_loadu_si512((const void *)step[4]);
  __m512i S5a = _mm512_loadu_si512((const void *)step[5]),
          S5b = _mm512_loadu_si512((const void *)(step[5] + 16));
  __m512i S6[4], V[8];
  for (int k = 0; k < 4; k++)
    S6[k] = _mm512_loadu_si512((const void *)(step[6] + 16 * k));
  for (int k = 0; k < 8; k++)
    V[k] = _mm512_loadu_si512((const void *)(val + 16 * k));
  const __m512i t64 = _mm512_set1_epi32((int)step[0][0]);
  const __m512i t32lo = _mm512_set1_epi32((int)step[1][0]), t32hi = _mm512_set1_epi32((int)step[1][1]);
  const __m512i absmask = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(F32_INF_BITS);
  const __m512i signmask = _mm512_set1_epi32((int)0x80000000u);
  const __m512i b32 = _mm512_set1_epi32(32), b64 = _mm512_set1_epi32(64);
  __mmask16 nan_acc = 0;
  size_t i = 0;
  _Pragma("GCC unroll 4")
  for (; i + 16 <= count; i += 16) {
    __m512i u = _mm512_loadu_si512((const void *)(in + i));
    __m512i a = _mm512_and_si512(u, absmask);
    __mmask16 nan = _mm512_cmpgt_epi32_mask(a, inf);
    /* bit 64 */
    __mmask16 ge = _mm512_cmple_epi32_mask(t64, a);
    __m512i pos = _mm512_maskz_mov_epi32(ge, b64);
    /* bit 32: thr[31] or thr[95] */
    __m512i t = _mm512_mask_blend_epi32(ge, t32lo, t32hi);
    pos = _mm512_mask_add_epi32(pos, _mm512_cmple_epi32_mask(t, a), pos, b32);
    /* bits 16, 8, 4: tables of 4, 8, 16 in one register, index pos / 2b */
    t = _mm512_permutexvar_epi32(_mm512_srli_epi32(pos, 5), S2);
    pos = _mm512_mask_add_epi32(pos, _mm512_cmple_epi32_mask(t, a), pos, _mm512_set1_epi32(16));
    t = _mm512_permutexvar_epi32(_mm512_srli_epi32(pos, 4), S3);
    pos = _mm512_mask_add_epi32(pos, _mm512_cmple_epi32_mask(t, a), pos, _mm512_set1_epi32(8));
    t = _mm512_permutexvar_epi32(_mm512_srli_epi32(pos, 3), S4);
    pos = _mm512_mask_add_epi32(pos, _mm512_cmple_epi32_mask(t, a), pos, _mm512_set1_epi32(4));
    /* bit 2: 32 entries in two registers */
    t = _mm512_permutex2var_epi32(S5a, _mm512_srli_epi32(pos, 2), S5b);
    pos = _mm512_mask_add_epi32(pos, _mm512_cmple_epi32_mask(t, a), pos, _mm512_set1_epi32(2));
    /* bit 1: 64 entries in four */
    __m512i m = _mm512_srli_epi32(pos, 1);
    __m512i lo = _mm512_permutex2var_epi32(S6[0], m, S6[1]);
    __m512i hi = _mm512_permutex2var_epi32(S6[2], m, S6[3]);
    t = _mm512_mask_blend_epi32(_mm512_test_epi32_mask(m, b32), lo, hi);
    pos = _mm512_mask_add_epi32(pos, _mm512_cmple_epi32_mask(t, a), pos, _mm512_set1_epi32(1));
    __m512i r = lookup128(V, pos);
    r = _mm512_or_si512(r, _mm512_and_si512(u, signmask));
    r = _mm512_maskz_mov_epi32((__mmask16)~nan, r);
    _mm512_storeu_si512((void *)(out + i), r);
    nan_acc |= nan;
  }
  size_t tail = lpq__quantize_f32_fast(q, in + i, out + i, count - i);
  return tail | (size_t)(nan_acc != 0);
}

/* 16 lanes with mask registers. */
__attribute__((target("avx512f"))) size_t lpq__quantize_f32_avx512(const lp_quantizer_t *q,
                                                                     const float *in,
                                                                     float *out, size_t count) {
  const int *tab = (const int *)(const void *)q->bucket;
  const __m512i absmask = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(F32_INF_BITS);
  const __m512i signmask = _mm512_set1_epi32((int)0x80000000u);
  const __m512i first = _mm512_set1_epi32(q->first), last = _mm512_set1_epi32(q->nbuckets - 1);
  const __m512i zero = _mm512_setzero_si512();
  const __m128i shift = _mm_cvtsi32_si128(q->shift);
  __mmask16 nan_acc = 0;
  size_t i = 0;
  for (; i + 16 <= count; i += 16) {
    __m512i u = _mm512_loadu_si512((const void *)(in + i));
    __m512i a = _mm512_and_si512(u, absmask);
    __mmask16 nan = _mm512_cmpgt_epi32_mask(a, inf);
    __m512i b = _mm512_sub_epi32(_mm512_srl_epi32(a, shift), first);
    b = _mm512_min_epi32(_mm512_max_epi32(b, zero), last);
    __m512i idx = _mm512_slli_epi32(b, 2);
    __m512i thr = _mm512_i32gather_epi32(idx, tab, 4);
    __m512i lo = _mm512_i32gather_epi32(idx, tab + 1, 4);
    __m512i hi = _mm512_i32gather_epi32(idx, tab + 2, 4);
    __mmask16 below = _mm512_cmpgt_epi32_mask(thr, a);
    __m512i r = _mm512_mask_blend_epi32(below, hi, lo);
    r = _mm512_or_si512(r, _mm512_and_si512(u, signmask));
    r = _mm512_maskz_mov_epi32((__mmask16)~nan, r);
    _mm512_storeu_si512((void *)(out + i), r);
    nan_acc |= nan;
  }
  size_t tail = lpq__quantize_f32_fast(q, in + i, out + i, count - i);
  return tail | (size_t)(nan_acc != 0);
}
#endif
