/* lp/lp_quant.c: the tensor quantizer.
**
** A float's bit pattern is monotonic in its magnitude, so rounding |x| to the nearest code is
** counting the thresholds T[i] (the smallest float bits that round to code >= i) at or below
** bits(|x|). The quantizer splits float-bit space into buckets of 2^shift patterns; when no
** bucket holds two distinct thresholds (every n <= 8 format), one table lookup and one
** compare give the code and its value. Otherwise a binary search inside the bucket does. */
#include "lp/lp_internal.h"

#include <float.h>
#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define BUCKETS_MAX (1u << 16)
#define F32_INF_BITS 0x7f800000u
/* A bucket without a threshold: only the all-ones NaN pattern reaches it, and NaNs are masked,
** so signed and unsigned compares agree (the SIMD paths compare signed). */
#define NO_THRESHOLD 0x7fffffffu

static uint32_t f2u(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}

static float u2f(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

/* The smallest non-negative float bits that round up across midpoint m towards a code of
** parity `hi_even` (ties go to the even code). Beyond float's range: +Inf's bits. */
static uint32_t threshold_bits(double m, int hi_even) {
  if (m >= (double)FLT_MAX) /* no finite float reaches it; only +Inf saturates */
    return (m == (double)FLT_MAX && hi_even) ? f2u(FLT_MAX) : F32_INF_BITS;
  float fl = (float)m;
  if ((double)fl > m) /* want the largest float <= m */
    fl = nextafterf(fl, 0.0f);
  if ((double)fl == m && hi_even)
    return f2u(fl);
  return f2u(fl) + 1u; /* next float up (fl >= 0 here) */
}

/* Largest number of distinct thresholds in one bucket for a shift. */
static uint32_t max_per_bucket(const uint32_t *thr, uint32_t npos, int shift) {
  uint32_t best = 0, run = 0;
  uint32_t prev_bucket = UINT32_MAX, prev_thr = UINT32_MAX;
  for (uint32_t i = 1; i <= npos; i++) {
    uint32_t b = thr[i] >> shift;
    run = b != prev_bucket ? 1 : run + (thr[i] != prev_thr);
    prev_bucket = b;
    prev_thr = thr[i];
    if (run > best)
      best = run;
  }
  return best;
}

/* Code count(thr <= u) by binary search in [lo, hi]. */
static uint32_t count_le(const uint32_t *thr, uint32_t lo, uint32_t hi, uint32_t u) {
  /* invariant: thr[lo] <= u (or lo == 0), answer in [lo, hi] */
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo + 1) / 2;
    if (thr[mid] <= u)
      lo = mid;
    else
      hi = mid - 1;
  }
  return lo;
}

/* The packed table, when the format allows it (see struct lp_quantizer_t). */
static int build_packed(lp_quantizer_t *q) {
  const uint32_t np = q->npos;
  if (np > 255)
    return 0;
  for (uint32_t i = 2; i <= np; i++)
    if (q->thr[i] == q->thr[i - 1])
      return 0;
  const int ps = q->shift < 23 ? q->shift : 23; /* offsets fit 24 bits */
  const int32_t first = (int32_t)(q->thr[1] >> ps);
  const int32_t count = (int32_t)(q->thr[np] >> ps) - first + 1;
  if ((uint32_t)count > BUCKETS_MAX)
    return 0;
  q->packed = malloc((size_t)count * sizeof *q->packed);
  if (!q->packed)
    return -1;
  uint32_t c = 0;
  for (int32_t b = 0; b < count; b++) {
    uint32_t start = (uint32_t)(first + b) << ps;
    while (c < np && q->thr[c + 1] < start)
      c++;
    uint32_t off = 1u << ps;
    if (c < np && (q->thr[c + 1] >> ps) == (uint32_t)(first + b))
      off = q->thr[c + 1] - start;
    q->packed[b] = (off << 8) | c;
  }
  q->pshift = ps;
  q->pfirst = first;
  q->pcount = count;
  return 0;
}

/* The binary search's tables (see quantize_f32_avx512_search), once per quantizer. */
static int build_search(lp_quantizer_t *q) {
  uint32_t thr[128];
  if (!(q->search = malloc((7 * 64 + 128) * sizeof *q->search)))
    return -1;
  for (uint32_t j = 0; j < 128; j++) {
    thr[j] = j < q->npos ? q->thr[j + 1] : NO_THRESHOLD;
    q->search[7 * 64 + j] = j <= q->npos ? q->fbits[j] : 0;
  }
  for (uint32_t s = 0; s < 7; s++) {
    uint32_t bit = 64u >> s, n = 64u / bit;
    for (uint32_t m = 0; m < 64; m++)
      q->search[64 * s + m] = m < n ? thr[m * 2 * bit + bit - 1] : NO_THRESHOLD;
  }
  return 0;
}

int lpq__quantizer_build(lp_quantizer_t *q, lpq_error_t *err) {
  const uint32_t np = q->npos;
  const int preset = q->thr != NULL; /* thresholds of another rule (lp_quant_qdq.c) */
  q->fvalue = malloc((np + 1) * sizeof *q->fvalue);
  q->fbits = malloc((np + 1) * sizeof *q->fbits);
  q->thr = preset ? q->thr : malloc((np + 1) * sizeof *q->thr);
  if (!q->fvalue || !q->fbits || !q->thr)
    return lpq_errorf(err, LPQ_ENOMEM, "quantizer: out of memory");
  for (uint32_t c = 0; c <= np; c++) {
    double v = q->value[c];
    q->fvalue[c] = v > (double)FLT_MAX ? FLT_MAX : (float)v;
    q->fbits[c] = f2u(q->fvalue[c]);
  }
  q->thr[0] = 0;
  for (uint32_t i = 1; i <= np && !preset; i++)
    q->thr[i] = threshold_bits(lp_midpoint(q->value[i - 1], q->value[i]), (i & 1u) == 0);

  /* Coarsest buckets that still hold at most one distinct threshold. */
  int shift = -1;
  for (int s = 31; s >= 0 && shift < 0; s--)
    if (max_per_bucket(q->thr, np, s) <= 1)
      shift = s;
  int32_t first = 0, count = 0;
  if (shift >= 0) {
    first = (int32_t)(q->thr[1] >> shift);
    count = (int32_t)(q->thr[np] >> shift) - first + 1;
    q->fast = (uint32_t)count <= BUCKETS_MAX;
  }
  if (shift < 0 || !q->fast) {
    /* General path: the finest shift whose bucket count fits. */
    for (shift = 0; shift < 32; shift++) {
      first = (int32_t)(q->thr[1] >> shift);
      count = (int32_t)(q->thr[np] >> shift) - first + 1;
      if ((uint32_t)count <= BUCKETS_MAX)
        break;
    }
  }
  q->shift = shift;
  q->first = first;
  q->nbuckets = count;
  if (q->fast && np <= 127 && build_search(q) != 0)
    return lpq_errorf(err, LPQ_ENOMEM, "quantizer: out of memory");
  if (q->fast) {
    q->bucket = calloc((size_t)count, sizeof *q->bucket);
    if (!q->bucket)
      return lpq_errorf(err, LPQ_ENOMEM, "quantizer: out of memory");
    uint32_t c = 0; /* codes whose threshold lies below the bucket's start */
    for (int32_t b = 0; b < count; b++) {
      uint32_t start = (uint32_t)(first + b) << shift;
      while (c < np && q->thr[c + 1] < start)
        c++;
      uint32_t hi = c;
      uint32_t t = NO_THRESHOLD;
      if (c < np && (q->thr[c + 1] >> shift) == (uint32_t)(first + b)) {
        t = q->thr[c + 1];
        while (hi < np && q->thr[hi + 1] == t)
          hi++;
      }
      q->bucket[b] = (bucket_t){t, q->fbits[c], q->fbits[hi], (uint16_t)c, (uint16_t)hi};
    }
    if (build_packed(q) != 0)
      return lpq_errorf(err, LPQ_ENOMEM, "quantizer: out of memory");
  } else {
    q->base = malloc(((size_t)count + 1) * sizeof *q->base);
    if (!q->base)
      return lpq_errorf(err, LPQ_ENOMEM, "quantizer: out of memory");
    /* base[b] = thresholds below bucket b's start: a lower bound for every pattern in it,
    ** and base[b + 1] an upper bound. */
    uint32_t c = 0;
    for (int32_t b = 0; b <= count; b++) {
      uint64_t start = (uint64_t)(uint32_t)(first + b) << shift;
      while (c < np && q->thr[c + 1] < start)
        c++;
      q->base[b] = c;
    }
  }
  return 0;
}

lp_quantizer_t *lpq__quantizer_alloc(int bits, uint32_t npos, lpq_error_t *err) {
  lp_quantizer_t *q = calloc(1, sizeof *q);
  if (q)
    q->value = malloc((npos + 1) * sizeof *q->value);
  if (!q || !q->value) {
    free(q);
    lpq_errorf(err, LPQ_ENOMEM, "quantizer: out of memory");
    return NULL;
  }
  q->bits = bits;
  q->npos = npos;
  return q;
}

lp_quantizer_t *lp_quantizer_new(const lp_format_t *f, lpq_error_t *err) {
  if (lp_format_validate(f, err) != 0)
    return NULL;
  lp_quantizer_t *q = lpq__quantizer_alloc(f->n, lp_maxpos(f), err);
  if (!q)
    return NULL;
  for (uint32_t c = 0; c <= q->npos; c++)
    q->value[c] = lp_decode(f, c);
  if (lpq__quantizer_build(q, err) != 0)
    lp_quantizer_free(&q);
  return q;
}

lp_quantizer_t *lp_quantizer_new_values(const double *values, size_t count, int bits,
                                        lpq_error_t *err) {
  if (values == NULL || count == 0 || bits < 2 || bits > 16 ||
      count > ((size_t)1 << (bits - 1)) - 1) {
    lpq_errorf(err, LPQ_EINVAL, "quantizer: %zu values do not fit %d-bit codes", count, bits);
    return NULL;
  }
  for (size_t i = 0; i < count; i++)
    if (!(values[i] > (i ? values[i - 1] : 0.0)) || isinf(values[i])) {
      lpq_errorf(err, LPQ_EINVAL,
                 "quantizer: values[%zu] = %g is not finite, positive and increasing", i,
                 values[i]);
      return NULL;
    }
  lp_quantizer_t *q = lpq__quantizer_alloc(bits, (uint32_t)count, err);
  if (!q)
    return NULL;
  q->value[0] = 0.0;
  memcpy(q->value + 1, values, count * sizeof *values);
  if (lpq__quantizer_build(q, err) != 0)
    lp_quantizer_free(&q);
  return q;
}

void lp_quantizer_free(lp_quantizer_t **qp) {
  if (qp == NULL || *qp == NULL)
    return;
  lp_quantizer_t *q = *qp;
  free(q->value);
  free(q->fvalue);
  free(q->fbits);
  free(q->thr);
  free(q->bucket);
  free(q->packed);
  free(q->base);
  free(q->search);
  free(q);
  *qp = NULL;
}

int lp_quantizer_bits(const lp_quantizer_t *q) { return q->bits; }

uint32_t lp_quantizer_magnitudes(const lp_quantizer_t *q, float *thr, float *mag) {
  for (uint32_t i = 1; thr && i <= q->npos; i++)
    thr[i - 1] = u2f(q->thr[i]);
  for (uint32_t c = 0; mag && c <= q->npos; c++)
    mag[c] = q->fvalue[c];
  return q->npos;
}

double lp_quantizer_value(const lp_quantizer_t *q, uint32_t code) {
  const uint32_t mask = (1u << q->bits) - 1u;
  code &= mask;
  if (code == 1u << (q->bits - 1))
    return NAN;
  int neg = (code >> (q->bits - 1)) & 1u;
  uint32_t mag = neg ? (0u - code) & mask : code;
  if (mag > q->npos)
    return NAN;
  return neg ? -q->value[mag] : q->value[mag];
}

/* Magnitude code of |x| given its bits a (sign cleared, not NaN). */
static inline uint32_t magnitude_code(const lp_quantizer_t *q, uint32_t a) {
  int32_t b = (int32_t)(a >> q->shift) - q->first;
  b = b < 0 ? 0 : (b >= q->nbuckets ? q->nbuckets - 1 : b);
  if (q->fast) {
    const bucket_t *e = &q->bucket[b];
    return a >= e->thr ? e->hi_code : e->lo_code;
  }
  return count_le(q->thr, q->base[b], q->base[b + 1], a);
}

static int report_nan(size_t first_nan, lpq_error_t *err) {
  return lpq_errorf(err, LPQ_ENAN, "quantizer: input element %zu is NaN", first_nan);
}

/* The fast fake-quantizer's loop: branch-free, one table entry per element. */
static size_t quantize_f32_fast(const lp_quantizer_t *q, const float *in, float *out,
                                size_t count) {
  const bucket_t *tab = q->bucket;
  const int shift = q->shift;
  const int32_t first = q->first, last = q->nbuckets - 1;
  uint32_t nan_seen = 0;
  for (size_t i = 0; i < count; i++) {
    uint32_t u = f2u(in[i]);
    uint32_t a = u & 0x7fffffffu;
    uint32_t is_nan = a > F32_INF_BITS;
    nan_seen |= is_nan;
    int32_t b = (int32_t)(a >> shift) - first;
    b = b < 0 ? 0 : b;
    b = b > last ? last : b;
    const bucket_t *e = &tab[b];
    uint32_t r = a >= e->thr ? e->hi_val : e->lo_val;
    r = is_nan ? 0u : (r | (u & 0x80000000u));
    out[i] = u2f(r);
  }
  return nan_seen ? 1 : 0;
}

#if defined(__x86_64__) && defined(__GNUC__)
/* The same loop, 8 lanes: three gathers (threshold, low value, high value) per vector. */
__attribute__((target("avx2"))) static size_t quantize_f32_avx2(const lp_quantizer_t *q,
                                                                 const float *in, float *out,
                                                                 size_t count) {
  const int *tab = (const int *)(const void *)q->bucket;
  const __m256i absmask = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(F32_INF_BITS);
  const __m256i signmask = _mm256_set1_epi32((int)0x80000000u);
  const __m256i first = _mm256_set1_epi32(q->first), last = _mm256_set1_epi32(q->nbuckets - 1);
  const __m256i zero = _mm256_setzero_si256();
  const __m128i shift = _mm_cvtsi32_si128(q->shift);
  __m256i nan_acc = zero;
  size_t i = 0;
  for (; i + 8 <= count; i += 8) {
    __m256i u = _mm256_loadu_si256((const __m256i *)(const void *)(in + i));
    __m256i a = _mm256_and_si256(u, absmask);
    __m256i nan = _mm256_cmpgt_epi32(a, inf);
    __m256i b = _mm256_sub_epi32(_mm256_srl_epi32(a, shift), first);
    b = _mm256_min_epi32(_mm256_max_epi32(b, zero), last);
    __m256i idx = _mm256_slli_epi32(b, 2); /* 16-byte entries */
    __m256i thr = _mm256_i32gather_epi32(tab, idx, 4);
    __m256i lo = _mm256_i32gather_epi32(tab + 1, idx, 4);
    __m256i hi = _mm256_i32gather_epi32(tab + 2, idx, 4);
    __m256i below = _mm256_cmpgt_epi32(thr, a);
    __m256i r = _mm256_blendv_epi8(hi, lo, below);
    r = _mm256_or_si256(r, _mm256_and_si256(u, signmask));
    r = _mm256_andnot_si256(nan, r);
    _mm256_storeu_si256((__m256i *)(void *)(out + i), r);
    nan_acc = _mm256_or_si256(nan_acc, nan);
  }
  size_t tail = quantize_f32_fast(q, in + i, out + i, count - i);
  return tail | (size_t)!_mm256_testz_si256(nan_acc, nan_acc);
}

/* The packed table: one gather for the code, one for its value. */
__attribute__((target("avx2"))) static size_t quantize_f32_avx2_packed(const lp_quantizer_t *q,
                                                                        const float *in,
                                                                        float *out,
                                                                        size_t count) {
  const int *tab = (const int *)(const void *)q->packed;
  const int *val = (const int *)(const void *)q->fbits;
  const __m256i absmask = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(F32_INF_BITS);
  const __m256i signmask = _mm256_set1_epi32((int)0x80000000u);
  const __m256i first = _mm256_set1_epi32(q->pfirst), last = _mm256_set1_epi32(q->pcount - 1);
  const __m256i zero = _mm256_setzero_si256(), low8 = _mm256_set1_epi32(0xff);
  const __m128i shift = _mm_cvtsi32_si128(q->pshift);
  __m256i nan_acc = zero;
  size_t i = 0;
  for (; i + 8 <= count; i += 8) {
    __m256i u = _mm256_loadu_si256((const __m256i *)(const void *)(in + i));
    __m256i a = _mm256_and_si256(u, absmask);
    __m256i nan = _mm256_cmpgt_epi32(a, inf);
    __m256i b = _mm256_sub_epi32(_mm256_srl_epi32(a, shift), first);
    b = _mm256_min_epi32(_mm256_max_epi32(b, zero), last);
    __m256i e = _mm256_i32gather_epi32(tab, b, 4);
    __m256i start = _mm256_sll_epi32(_mm256_add_epi32(b, first), shift);
    __m256i thr = _mm256_add_epi32(start, _mm256_srli_epi32(e, 8));
    __m256i up = _mm256_andnot_si256(_mm256_cmpgt_epi32(thr, a), _mm256_set1_epi32(1));
    __m256i code = _mm256_add_epi32(_mm256_and_si256(e, low8), up);
    __m256i r = _mm256_i32gather_epi32(val, code, 4);
    r = _mm256_or_si256(r, _mm256_and_si256(u, signmask));
    r = _mm256_andnot_si256(nan, r);
    _mm256_storeu_si256((__m256i *)(void *)(out + i), r);
    nan_acc = _mm256_or_si256(nan_acc, nan);
  }
  size_t tail = quantize_f32_fast(q, in + i, out + i, count - i);
  return tail | (size_t)!_mm256_testz_si256(nan_acc, nan_acc);
}

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

__attribute__((target("avx512f"))) static size_t quantize_f32_avx512_search(
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
  size_t tail = quantize_f32_fast(q, in + i, out + i, count - i);
  return tail | (size_t)(nan_acc != 0);
}

/* 16 lanes with mask registers. */
__attribute__((target("avx512f"))) static size_t quantize_f32_avx512(const lp_quantizer_t *q,
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
  size_t tail = quantize_f32_fast(q, in + i, out + i, count - i);
  return tail | (size_t)(nan_acc != 0);
}
#endif

int lp_simd_level(void) {
  int level = 0;
#if defined(__x86_64__) && defined(__GNUC__)
  static int cached = -1; /* every thread computes the same value */
  level = __atomic_load_n(&cached, __ATOMIC_RELAXED);
  if (level < 0) {
    const char *env = getenv("LPQ_SIMD");
    level = __builtin_cpu_supports("avx512f") ? 2 : __builtin_cpu_supports("avx2") ? 1 : 0;
    if (env && strcmp(env, "scalar") == 0)
      level = 0;
    else if (env && strcmp(env, "avx2") == 0 && level >= 1)
      level = 1;
    __atomic_store_n(&cached, level, __ATOMIC_RELAXED);
  }
#endif
  return level;
}

/* The kernels of lp_quantize_f32 (generic: more than one threshold per bucket, scalar). The
** widest this CPU runs for q is chosen (lp_simd_level). */
enum { K_GENERIC, K_SCALAR, K_AVX2, K_AVX2_PACKED, K_AVX512, K_AVX512_SEARCH };
static int select_kernel(const lp_quantizer_t *q) {
  const int level = lp_simd_level();
  if (!q->fast)
    return K_GENERIC;
  if (level == 2)
    return q->search ? K_AVX512_SEARCH : q->packed ? K_AVX2_PACKED : K_AVX512;
  if (level == 1)
    return q->packed ? K_AVX2_PACKED : K_AVX2;
  return K_SCALAR;
}

const char *lp_quantizer_kernel(const lp_quantizer_t *q) {
  static const char *const names[] = {"generic", "scalar", "avx2", "avx2", "avx512", "avx512"};
  return q ? names[select_kernel(q)] : "none";
}

static size_t quantize_f32_dispatch(const lp_quantizer_t *q, const float *in, float *out,
                                    size_t count) {
  switch (select_kernel(q)) {
#if defined(__x86_64__) && defined(__GNUC__)
  case K_AVX512_SEARCH: return quantize_f32_avx512_search(q, in, out, count);
  case K_AVX512: return quantize_f32_avx512(q, in, out, count);
  case K_AVX2_PACKED: return quantize_f32_avx2_packed(q, in, out, count);
  case K_AVX2: return quantize_f32_avx2(q, in, out, count);
#endif
  default: return quantize_f32_fast(q, in, out, count);
  }
}

static size_t find_nan(const float *in, size_t count) {
  for (size_t i = 0; i < count; i++)
    if (isnan(in[i]))
      return i;
  return count;
}

int lp_quantize_f32(const lp_quantizer_t *q, const float *in, float *out, size_t count,
                    lpq_error_t *err) {
  if (q == NULL || (count > 0 && (in == NULL || out == NULL)))
    return lpq_errorf(err, LPQ_EINVAL, "quantizer: NULL argument");
  if (q->fast) {
    if (quantize_f32_dispatch(q, in, out, count) == 0)
      return 0;
    /* the NaN's output is already 0; find it for the message */
    size_t at = find_nan(in, count);
    return report_nan(at, err);
  }
  size_t first_nan = count;
  for (size_t i = 0; i < count; i++) {
    uint32_t u = f2u(in[i]);
    uint32_t a = u & 0x7fffffffu;
    if (a > F32_INF_BITS) {
      if (first_nan == count)
        first_nan = i;
      out[i] = 0.0f;
      continue;
    }
    out[i] = u2f(q->fbits[magnitude_code(q, a)] | (u & 0x80000000u));
  }
  return first_nan < count ? report_nan(first_nan, err) : 0;
}

#define DEFINE_QUANTIZE_CODES(NAME, TYPE)                                                     \
  int NAME(const lp_quantizer_t *q, const float *in, TYPE *out, size_t count,                \
           lpq_error_t *err) {                                                               \
    if (q == NULL || (count > 0 && (in == NULL || out == NULL)))                             \
      return lpq_errorf(err, LPQ_EINVAL, "quantizer: NULL argument");                       \
    if ((size_t)q->bits > 8 * sizeof(TYPE))                                                  \
      return lpq_errorf(err, LPQ_EINVAL, "quantizer: %d-bit codes do not fit %s", q->bits,  \
                        #TYPE);                                                              \
    const uint32_t mask = (1u << q->bits) - 1u;                                              \
    size_t first_nan = count;                                                                \
    for (size_t i = 0; i < count; i++) {                                                     \
      uint32_t u = f2u(in[i]);                                                               \
      uint32_t a = u & 0x7fffffffu;                                                          \
      if (a > F32_INF_BITS) {                                                                \
        if (first_nan == count)                                                              \
          first_nan = i;                                                                     \
        out[i] = 0;                                                                          \
        continue;                                                                            \
      }                                                                                      \
      uint32_t mag = magnitude_code(q, a);                                                   \
      uint32_t neg = 0u - (u >> 31);                                                         \
      out[i] = (TYPE)(((mag ^ neg) - neg) & mask);                                           \
    }                                                                                        \
    return first_nan < count ? report_nan(first_nan, err) : 0;                               \
  }
DEFINE_QUANTIZE_CODES(lp_quantize_codes_u8, uint8_t)
DEFINE_QUANTIZE_CODES(lp_quantize_codes_u16, uint16_t)

static inline float code_value(const lp_quantizer_t *q, uint32_t code) {
  const uint32_t mask = (1u << q->bits) - 1u;
  uint32_t neg = 0u - ((code >> (q->bits - 1)) & 1u);
  uint32_t mag = ((code ^ neg) - neg) & mask;
  if (mag > q->npos) /* NaR or a code outside a baseline's value set */
    return NAN;
  return u2f(q->fbits[mag] | (neg & 0x80000000u));
}

void lp_dequantize_u8(const lp_quantizer_t *q, const uint8_t *codes, float *out, size_t count) {
  for (size_t i = 0; i < count; i++)
    out[i] = code_value(q, codes[i]);
}

void lp_dequantize_u16(const lp_quantizer_t *q, const uint16_t *codes, float *out,
                       size_t count) {
  for (size_t i = 0; i < count; i++)
    out[i] = code_value(q, codes[i]);
}
