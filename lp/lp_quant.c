/* lp/lp_quant.c: the tensor quantizer.
**
** A float's bit pattern is monotonic in its magnitude, so rounding |x| to the nearest code is
** counting the thresholds T[i] (the smallest float bits that round to code >= i) at or below
** bits(|x|). The quantizer splits float-bit space into buckets of 2^shift patterns; when no
** bucket holds two distinct thresholds (every n <= 8 format), one table lookup and one
** compare give the code and its value. Otherwise a binary search inside the bucket does. */
#include "lp/lp_internal.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define BUCKETS_MAX (1u << 16)
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

size_t lpq__quant_fine_min = LPQ__FINE_MIN;

/* Buckets of 2^s patterns the fine table needs: one either side of the thresholds' range. */
static int64_t fine_count(const lp_quantizer_t *q, int s, int32_t *first) {
  const uint32_t lo = q->thr[1] >> s;
  *first = lo > 0 ? (int32_t)lo - 1 : 0;
  return (int64_t)(q->thr[q->npos] >> s) + 2 - *first;
}

/* The fine table's bucket size (lp_fine_t), or -1 when the format does not suit one: the
** finest within LPQ__FINE_MAX entries, and at most 1/32 of the closest thresholds' gap (in a
** threshold's bucket an element costs a second lookup: then at most 1 in 32 of them). */
static int fine_shift(const lp_quantizer_t *q) {
  const uint32_t np = q->npos;
  if (!q->packed || np < 1 || np > 255) /* packed: distinct thresholds */
    return -1;
  uint32_t gap = UINT32_MAX;
  for (uint32_t i = 2; i <= np; i++)
    gap = q->thr[i] - q->thr[i - 1] < gap ? q->thr[i] - q->thr[i - 1] : gap;
  int s = 23; /* offsets fit the entry's 23 bits */
  while (s > 0 && ((uint64_t)32 << s) > gap)
    s--;
  int32_t first;
  if (((uint64_t)32 << s) > gap)
    return -1;
  if (fine_count(q, s, &first) > LPQ__FINE_MAX)
    return -1;
  while (s > 0 && fine_count(q, s - 1, &first) <= LPQ__FINE_MAX)
    s--;
  return s;
}

static lp_fine_t *build_fine(const lp_quantizer_t *q) {
  const uint32_t np = q->npos;
  const int s = q->fshift;
  int32_t first;
  const int64_t count = fine_count(q, s, &first);
  lp_fine_t *t = malloc(sizeof *t + (size_t)count * sizeof *t->e);
  if (!t)
    return NULL;
  uint32_t c = 0; /* thresholds at or below the bucket's start: its first pattern's code */
  for (int64_t b = 0; b < count; b++) {
    const uint32_t start = (uint32_t)(first + b) << s, end = start + ((1u << s) - 1u);
    while (c < np && q->thr[c + 1] <= start)
      c++;
    /* one threshold at most in (start, end]: s is below the closest gap */
    t->e[b] = c < np && q->thr[c + 1] <= end ? 0x80000000u | (q->thr[c + 1] - start) << 8 | c
                                               : q->fbits[c];
  }
  t->shift = s, t->first = first, t->count = (int32_t)count;
  return t;
}

/* q's fine table, built now if this quantization is large enough (NULL: not now, or no memory:
** the other kernels run). The first of two threads building it at once publishes its own. */
static const lp_fine_t *fine_table(const lp_quantizer_t *q, size_t count) {
  lp_fine_t *t = __atomic_load_n(&q->fine, __ATOMIC_ACQUIRE);
  if (t || q->fshift < 0 || count < lpq__quant_fine_min)
    return t;
  if (!(t = build_fine(q)))
    return NULL;
  lp_fine_t *none = NULL;
  if (!__atomic_compare_exchange_n(&((lp_quantizer_t *)q)->fine, &none, t, 0, __ATOMIC_ACQ_REL,
                                   __ATOMIC_ACQUIRE)) {
    free(t);
    return none;
  }
  return t;
}

size_t lp_quantizer_bytes(const lp_quantizer_t *q) {
  size_t b = sizeof *q + (q->npos + 1) * (sizeof *q->value + sizeof *q->fvalue +
                                          sizeof *q->fbits + sizeof *q->thr);
  if (q->bucket)
    b += (size_t)q->nbuckets * sizeof *q->bucket;
  if (q->packed)
    b += (size_t)q->pcount * sizeof *q->packed;
  if (q->base)
    b += ((size_t)q->nbuckets + 1) * sizeof *q->base;
  if (q->search)
    b += (7 * 64 + 128) * sizeof *q->search;
  int32_t first;
  if (q->fshift >= 0) /* built or not: what q may come to hold */
    b += sizeof(lp_fine_t) + (size_t)fine_count(q, q->fshift, &first) * sizeof(uint32_t);
  return b;
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
  q->fshift = q->fast ? fine_shift(q) : -1;
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
  free(q->fine);
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
size_t lpq__quantize_f32_fast(const lp_quantizer_t *q, const float *in, float *out,
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
enum { K_GENERIC, K_SCALAR, K_AVX2, K_AVX2_PACKED, K_AVX2_FINE, K_AVX512, K_AVX512_SEARCH };
static int select_kernel(const lp_quantizer_t *q) {
  const int level = lp_simd_level();
  if (!q->fast)
    return K_GENERIC;
  if (level == 2 && q->search)
    return K_AVX512_SEARCH;
  if (level >= 1 && q->fshift >= 0) /* AVX-512 too when no search; packed until it is built */
    return K_AVX2_FINE;
  if (level >= 1 && q->packed)
    return K_AVX2_PACKED;
  return level == 2 ? K_AVX512 : level == 1 ? K_AVX2 : K_SCALAR;
}

const char *lp_quantizer_kernel(const lp_quantizer_t *q) {
  static const char *const names[] = {"generic", "scalar", "avx2",  "avx2",
                                      "avx2",    "avx512", "avx512"};
  return q ? names[select_kernel(q)] : "none";
}

static size_t quantize_f32_dispatch(const lp_quantizer_t *q, const float *in, float *out,
                                    size_t count) {
  switch (select_kernel(q)) {
#if defined(__x86_64__) && defined(__GNUC__)
  case K_AVX512_SEARCH: return lpq__quantize_f32_avx512_search(q, in, out, count);
  case K_AVX512: return lpq__quantize_f32_avx512(q, in, out, count);
  case K_AVX2_FINE: {
    const lp_fine_t *t = fine_table(q, count);
    return t ? lpq__quantize_f32_avx2_fine(q, t, in, out, count)
             : lpq__quantize_f32_avx2_packed(q, in, out, count);
  }
  case K_AVX2_PACKED: return lpq__quantize_f32_avx2_packed(q, in, out, count);
  case K_AVX2: return lpq__quantize_f32_avx2(q, in, out, count);
#endif
  default: return lpq__quantize_f32_fast(q, in, out, count);
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
