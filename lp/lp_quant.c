/* lp/lp_quant.c: the tensor quantizer.
**
** A float's bit pattern is monotonic in its magnitude, so rounding |x| to the nearest code is
** counting the thresholds T[i] (the smallest float bits that round to code >= i) at or below
** bits(|x|). The quantizer splits float-bit space into buckets of 2^shift patterns; when no
** bucket holds two distinct thresholds (every n <= 8 format), one table lookup and one
** compare give the code and its value. Otherwise a binary search inside the bucket does. */
#include "lp/lp.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define BUCKETS_MAX (1u << 16)
#define F32_INF_BITS 0x7f800000u

typedef struct {
  uint32_t thr;        /* bits >= thr take the high side */
  uint32_t lo_val;     /* float bits of the low side's value */
  uint32_t hi_val;     /* float bits of the high side's value */
  uint16_t lo_code;    /* magnitude codes of both sides */
  uint16_t hi_code;
} bucket_t;

struct lp_quantizer_t {
  int bits;          /* code width */
  uint32_t npos;     /* positive codes 1..npos */
  double *value;     /* value[c], c in 0..npos */
  float *fvalue;     /* value[c] as float, clamped to FLT_MAX */
  uint32_t *fbits;   /* bits of fvalue */
  uint32_t *thr;     /* thr[i], i in 1..npos; thr[0] = 0 unused */
  int shift;         /* bucket = (bits >> shift) - first */
  int32_t first;
  int32_t nbuckets;
  int fast;          /* at most one distinct threshold per bucket */
  bucket_t *bucket;  /* fast path */
  uint32_t *base;    /* general path: code at the start of each bucket, nbuckets + 1 entries */
};

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
    if (b != prev_bucket) {
      run = 1;
    } else if (thr[i] != prev_thr) {
      run++;
    }
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

static int build_tables(lp_quantizer_t *q, lpq_error_t *err) {
  const uint32_t np = q->npos;
  q->fvalue = malloc((np + 1) * sizeof *q->fvalue);
  q->fbits = malloc((np + 1) * sizeof *q->fbits);
  q->thr = malloc((np + 1) * sizeof *q->thr);
  if (!q->fvalue || !q->fbits || !q->thr)
    return lpq_errorf(err, LPQ_ENOMEM, "quantizer: out of memory");
  for (uint32_t c = 0; c <= np; c++) {
    double v = q->value[c];
    q->fvalue[c] = v > (double)FLT_MAX ? FLT_MAX : (float)v;
    q->fbits[c] = f2u(q->fvalue[c]);
  }
  q->thr[0] = 0;
  for (uint32_t i = 1; i <= np; i++)
    q->thr[i] = threshold_bits(lp_midpoint(q->value[i - 1], q->value[i]), (i & 1u) == 0);

  /* Coarsest buckets that still hold at most one distinct threshold. */
  int shift = -1;
  for (int s = 31; s >= 0; s--) {
    if (max_per_bucket(q->thr, np, s) <= 1) {
      shift = s;
      break;
    }
  }
  int32_t first, count;
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
      uint32_t t = UINT32_MAX;
      if (c < np && (q->thr[c + 1] >> shift) == (uint32_t)(first + b)) {
        t = q->thr[c + 1];
        while (hi < np && q->thr[hi + 1] == t)
          hi++;
      }
      q->bucket[b] = (bucket_t){t, q->fbits[c], q->fbits[hi], (uint16_t)c, (uint16_t)hi};
    }
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

static lp_quantizer_t *quantizer_alloc(int bits, uint32_t npos, lpq_error_t *err) {
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
  lp_quantizer_t *q = quantizer_alloc(f->n, lp_maxpos(f), err);
  if (!q)
    return NULL;
  for (uint32_t c = 0; c <= q->npos; c++)
    q->value[c] = lp_decode(f, c);
  if (build_tables(q, err) != 0)
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
  for (size_t i = 0; i < count; i++) {
    if (!(values[i] > (i ? values[i - 1] : 0.0)) || isinf(values[i])) {
      lpq_errorf(err, LPQ_EINVAL,
                 "quantizer: values[%zu] = %g is not finite, positive and increasing", i,
                 values[i]);
      return NULL;
    }
  }
  lp_quantizer_t *q = quantizer_alloc(bits, (uint32_t)count, err);
  if (!q)
    return NULL;
  q->value[0] = 0.0;
  memcpy(q->value + 1, values, count * sizeof *values);
  if (build_tables(q, err) != 0)
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
  free(q->base);
  free(q);
  *qp = NULL;
}

int lp_quantizer_bits(const lp_quantizer_t *q) { return q->bits; }

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
    if (quantize_f32_fast(q, in, out, count) == 0)
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
