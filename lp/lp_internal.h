/* lp/lp_internal.h: what lp/'s files share and no other folder sees (non-static names lpq__*).
** Everyone else uses lp/lp.h. */
#ifndef LPQ_LP_INTERNAL_H
#define LPQ_LP_INTERNAL_H

#include "lp/lp.h"

#include <stddef.h>
#include <stdint.h>

/* ---- the tensor quantizer (lp_quant.c; lp_quant_qdq.c builds QuantizeLinear's thresholds) ---- */
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
  /* Packed fast path (<= 255 positive codes, distinct thresholds): one 32-bit entry per
  ** bucket, (threshold offset in the bucket << 8) | low code, the high code being low + 1.
  ** An offset of 2^pshift means no threshold in the bucket. */
  uint32_t *packed;
  int pshift;
  int32_t pfirst, pcount;
  uint32_t *base;    /* general path: code at the start of each bucket, nbuckets + 1 entries */
  /* The AVX-512 binary search's tables (fast formats of at most 127 positive codes; else NULL):
  ** search[64 s + m] for step s < 7, then the 128 values' float bits at search + 448. */
  uint32_t *search;
  /* The fine table, built on the first lp_quantize_f32 of at least LPQ__FINE_MIN values when
  ** fshift >= 0 (distinct thresholds, <= 255 positive codes, and buckets of 2^fshift patterns
  ** at most 1/32 of the closest thresholds' gap, at most LPQ__FINE_MAX of them); NULL until
  ** then. A cache of what q's tables already say: published once by an atomic swap, so q
  ** stays shareable by threads. */
  struct lp_fine_t *fine;
  int fshift;
};
#define LPQ__FINE_MAX 32768 /* entries: 128 KB */
#define LPQ__FINE_MIN 65536 /* values: a call as long as the build (75-120 us on a Zen 3) */

/* Buckets of 2^shift patterns from bucket `first` on (one either side of the thresholds'
** range): one without a threshold holds its value's float bits (sign clear), one with a
** threshold 0x80000000 | (threshold - bucket start) << 8 | low code (the high code is low + 1).
** One lookup gives most elements their value; those in a threshold's bucket take a second. */
typedef struct lp_fine_t {
  int shift;
  int32_t first, count;
  uint32_t e[];
} lp_fine_t;

#define F32_INF_BITS 0x7f800000u /* +Inf's bits: above them, a NaN */

/* The fake-quantizer's loops (lp_quant.c: scalar; lp_quant_x86.c: x86-64 vector kernels, the
** tails by the scalar loop): nonzero when an element was NaN (its output is 0). */
size_t lpq__quantize_f32_fast(const lp_quantizer_t *q, const float *in, float *out, size_t count);
#if defined(__x86_64__) && defined(__GNUC__)
size_t lpq__quantize_f32_avx2(const lp_quantizer_t *q, const float *in, float *out, size_t count);
size_t lpq__quantize_f32_avx2_packed(const lp_quantizer_t *q, const float *in, float *out,
                                     size_t count);
size_t lpq__quantize_f32_avx2_fine(const lp_quantizer_t *q, const lp_fine_t *t, const float *in,
                                   float *out, size_t count);
size_t lpq__quantize_f32_avx512(const lp_quantizer_t *q, const float *in, float *out,
                                size_t count);
size_t lpq__quantize_f32_avx512_search(const lp_quantizer_t *q, const float *in, float *out,
                                       size_t count);
#endif
/* The values a quantization needs to build q's fine table (LPQ__FINE_MIN; tests set 0 to run
** the fine kernel on every call, SIZE_MAX to run the kernels without it). */
extern size_t lpq__quant_fine_min;

/* A quantizer of npos positive codes, value[] to fill (thr NULL), or NULL after an error. */
lp_quantizer_t *lpq__quantizer_alloc(int bits, uint32_t npos, lpq_error_t *err);
/* The lookup tables from q->value (and q->thr when set; else the midpoint rule, ties to the
** even code): 0, or LPQ_ENOMEM. */
int lpq__quantizer_build(lp_quantizer_t *q, lpq_error_t *err);

/* LP "auto" (lp_calibrate.c): sets f's sf (p[3]) to the sf in a window around the centre of
** x's log-magnitudes with the least squared error, plus f->sf_offset, clamped to the sf range;
** f is then resolved. LPQ_ENOMEM, or LPQ_ENAN for a NaN in x. */
int lpq__lp_calibrate_sf(lpq_numfmt_t *f, const float *x, size_t count, lpq_error_t *err);

#endif
