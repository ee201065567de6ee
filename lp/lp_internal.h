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
};

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
