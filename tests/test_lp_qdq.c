/* tests/test_lp_qdq.c: lpq's int and FP8 quantizers round as ONNX's QuantizeLinear and
** DequantizeLinear do with the format's float scale (lp_quantizer_new_scaled), so an exported
** QDQ model computes lpq's values bit for bit: checked against the engine's own QuantizeLinear
** arithmetic (engine/ops_quant.c: the float quotient, rint, ties to even; FP8 by
** lpq__fp8_round), on every float within 16 ulps of each rounding boundary and on random
** values, for formats calibrated on random data (scales that are not powers of two). */
#include "engine/engine_internal.h"
#include "lp/lp.h"

#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

TestSuite(lp_qdq, .timeout = 120);

/* What the engine's QuantizeLinear then DequantizeLinear give for x (int: symmetric k bits, after
** the export's Clip to the largest value; FP8: saturating). */
static float qdq_ref(const lpq_numfmt_t *f, float x) {
  const float s = (float)f->scale;
  if (f->family == LPQ_FAM_INT) {
    const double top = (double)((1 << (f->p[0] - 1)) - 1);
    const float hi = (float)(top * (double)s);
    float c = x < -hi ? -hi : x > hi ? hi : x;
    double q = rint((double)(c / s));
    q = q < -top ? -top : q > top ? top : q;
    return (float)(q * (double)s);
  }
  const int type = f->p[0] == 4 ? ONNX_DT_F8E4M3FN : ONNX_DT_F8E5M2;
  return (float)((double)lpq__fp8_round(type, x / s, 1) * (double)s);
}

static void check_format(const char *text, unsigned seed) {
  lpq_error_t err = {0};
  lpq_numfmt_t f;
  cr_assert_eq(lpq_numfmt_parse(text, &f, &err), 0, "%s: %s", text, err.msg);
  srand(seed);
  float cal[512];
  for (size_t i = 0; i < 512; i++)
    cal[i] = (float)((rand() / (double)RAND_MAX - 0.5) * 7.3);
  cr_assert_eq(lpq_numfmt_calibrate(&f, cal, 512, &err), 0, "%s", err.msg);
  cr_assert_neq(frexp(f.scale, &(int){0}), 0.5, "%s: want a scale that is not a power of two",
                text);
  lp_quantizer_t *q = lpq_numfmt_quantizer(&f, &err);
  cr_assert_not_null(q, "%s: %s", text, err.msg);
  uint32_t npos = lp_quantizer_magnitudes(q, NULL, NULL);
  float *thr = malloc(2 * ((size_t)npos + 1) * sizeof *thr), *mag = thr + npos;
  lp_quantizer_magnitudes(q, thr, mag);
  /* every float within 16 ulps of each boundary (both signs), and random values */
  size_t n = (size_t)npos * 66 + 4096, k = 0;
  float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
  for (uint32_t i = 0; i < npos; i++) {
    float t = thr[i];
    for (int d = 0; d < 16 && t > 0; d++)
      t = nextafterf(t, 0.0f);
    for (int d = 0; d < 33 && isfinite(t); d++, t = nextafterf(t, INFINITY)) {
      x[k++] = t;
      x[k++] = -t;
    }
  }
  for (size_t i = 0; i < 4096; i++)
    x[k++] = (float)((rand() / (double)RAND_MAX - 0.5) * 9.0);
  cr_assert_eq(lp_quantize_f32(q, x, y, k, &err), 0, "%s", err.msg);
  size_t bad = 0;
  for (size_t i = 0; i < k; i++)
    if (y[i] != qdq_ref(&f, x[i]) && bad++ < 5)
      cr_log_error("%s: x = %.9g: lpq %.9g, QuantizeLinear %.9g", text, x[i], y[i],
                   qdq_ref(&f, x[i]));
  cr_expect_eq(bad, 0, "%s: %zu of %zu values round otherwise than QuantizeLinear", text, bad, k);
  free(x);
  free(y);
  free(thr);
  lp_quantizer_free(&q);
}

Test(lp_qdq, int_rounds_as_quantizelinear) {
  check_format("int4", 1);
  check_format("int8", 2);
  check_format("int<12>", 3);
}

Test(lp_qdq, fp8_rounds_as_quantizelinear) {
  check_format("fp8_e4m3", 4);
  check_format("fp8_e5m2", 5);
}

/* The scale is a float: what DequantizeLinear multiplies by, so every value is its product. */
Test(lp_qdq, values_are_dequantizelinear_products) {
  lpq_error_t err = {0};
  lpq_numfmt_t f;
  cr_assert_eq(lpq_numfmt_parse("int8", &f, &err), 0);
  float cal[3] = {0.1f, -1.2345f, 0.7f};
  cr_assert_eq(lpq_numfmt_calibrate(&f, cal, 3, &err), 0);
  cr_assert_eq(f.scale, (double)(float)f.scale);
  lp_quantizer_t *q = lpq_numfmt_quantizer(&f, &err);
  cr_assert_not_null(q);
  float mag[128], thr[127];
  cr_assert_eq(lp_quantizer_magnitudes(q, thr, mag), 127);
  for (int i = 0; i <= 127; i++)
    cr_expect_eq(mag[i], (float)i * (float)f.scale, "value %d", i);
  lp_quantizer_free(&q);
}
