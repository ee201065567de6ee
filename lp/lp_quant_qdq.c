/* lp/lp_quant_qdq.c: quantizers that round as ONNX's QuantizeLinear rounds, for the formats an
** export writes as QuantizeLinear/DequantizeLinear (int, FP8; engine/onnx_quant.c): the code of
** x is the unit value nearest to the float quotient fl(|x| / scale), ties to the even code (int:
** round half to even; FP8: the float-to-FP8 cast's nearest-even), and code i's value is
** fl(unit[i] * scale), DequantizeLinear's float product. The thresholds on |x| are found on the
** float line itself: no midpoint computed in double can say where fl(|x| / scale) crosses one
** (with a scale that is not a power of two the two rules disagree on values whose quotient lies
** within about an ulp of a midpoint, which then move a whole step). */
#include "lp/lp_internal.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Does quotient y reach code i (midpoint m of unit[i-1] and unit[i], i even or not)? */
static int reaches(float y, double m, int hi_even) {
  return (double)y > m || ((double)y == m && hi_even);
}

static uint32_t bits_of(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}

/* The smallest non-negative float x whose quotient fl(x / scale) reaches the code above
** midpoint m; +Inf when no finite float does. */
static float qdq_threshold(double m, int hi_even, float scale) {
  double t = m * (double)scale;
  if (t >= (double)FLT_MAX)
    return reaches((float)(FLT_MAX / scale), m, hi_even) ? FLT_MAX : INFINITY;
  float x = (float)t; /* within an ulp or two of the answer: walk to it */
  while (x > 0.0f && reaches((float)(nextafterf(x, 0.0f) / scale), m, hi_even))
    x = nextafterf(x, 0.0f);
  while (x < FLT_MAX && !reaches((float)(x / scale), m, hi_even))
    x = nextafterf(x, INFINITY);
  return reaches((float)(x / scale), m, hi_even) ? x : INFINITY;
}

lp_quantizer_t *lp_quantizer_new_scaled(const double *unit, size_t count, int bits, float scale,
                                        lpq_error_t *err) {
  if (!(scale >= FLT_MIN) || isinf(scale)) {
    lpq_errorf(err, LPQ_EINVAL, "quantizer: scale %g is not a positive normal float", scale);
    return NULL;
  }
  if (unit == NULL || count == 0 || bits < 2 || bits > 16 ||
      count > ((size_t)1 << (bits - 1)) - 1) {
    lpq_errorf(err, LPQ_EINVAL, "quantizer: %zu values do not fit %d-bit codes", count, bits);
    return NULL;
  }
  for (size_t i = 0; i < count; i++)
    if (!(unit[i] > (i ? unit[i - 1] : 0.0)) || isinf(unit[i] * scale)) {
      lpq_errorf(err, LPQ_EINVAL, "quantizer: values[%zu] = %g is not finite, positive and "
                 "increasing", i, unit[i] * scale);
      return NULL;
    }
  lp_quantizer_t *q = lpq__quantizer_alloc(bits, (uint32_t)count, err);
  if (!q)
    return NULL;
  q->thr = malloc((count + 1) * sizeof *q->thr);
  if (!q->thr) {
    lpq_errorf(err, LPQ_ENOMEM, "quantizer: out of memory");
    lp_quantizer_free(&q);
    return NULL;
  }
  q->value[0] = 0.0;
  q->thr[0] = 0;
  for (size_t i = 1; i <= count; i++) {
    q->value[i] = unit[i - 1] * (double)scale; /* exact: a few significant bits times a float */
    double m = lp_midpoint(i > 1 ? unit[i - 2] : 0.0, unit[i - 1]);
    q->thr[i] = bits_of(qdq_threshold(m, (i & 1u) == 0, scale));
  }
  if (lpq__quantizer_build(q, err) != 0)
    lp_quantizer_free(&q);
  return q;
}
