/* tests/test_formats.c: the table of number formats (LP and the baselines). */
#include "lp/lp.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static lpq_numfmt_t parse_ok(const char *text) {
  lpq_numfmt_t f;
  lpq_error_t err = {0};
  int rc = lpq_numfmt_parse(text, &f, &err);
  cr_assert_eq(rc, 0, "'%s': %s", text, err.msg);
  return f;
}

/* largest and smallest positive value of a resolved format, through its quantizer */
static void extremes(const lpq_numfmt_t *f, double *minpos, double *maxpos) {
  lpq_error_t err;
  lp_quantizer_t *q = lpq_numfmt_quantizer(f, &err);
  cr_assert_not_null(q, "%s", err.msg);
  *minpos = lp_quantizer_value(q, 1);
  *maxpos = 0;
  for (uint32_t c = 1; c < (1u << (lp_quantizer_bits(q) - 1)); c++) {
    double v = lp_quantizer_value(q, c);
    if (!isnan(v) && v > *maxpos)
      *maxpos = v;
  }
  lp_quantizer_free(&q);
}

Test(formats, names_round_trip) {
  const char *names[][2] = {
      {"fp32", "fp32"},           {"lp<8,2,2,0>", "lp<8,2,2,0>"}, {"lp<6,1,3,auto>", "lp<6,1,3,auto>"},
      {"int8", "int<8>"},         {"int<4,ch>", "int<4,ch>"},     {"int4_ch", "int<4,ch>"},
      {"posit8", "posit<8,2>"},   {"posit<8,0>", "posit<8,0>"},   {"afloat<8,3>", "afloat<8,3>"},
      {"fp8", "fp8_e4m3"},        {"fp8_e5m2", "fp8_e5m2"},       {"minifloat<3,2>", "minifloat<3,2>"},
  };
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    lpq_numfmt_t f = parse_ok(names[i][0]);
    char buf[LPQ_NUMFMT_TEXT_MAX];
    cr_assert_str_eq(lpq_numfmt_str(&f, buf, sizeof buf), names[i][1]);
    lpq_numfmt_t g = parse_ok(buf);
    cr_assert_eq(g.family, f.family);
    cr_assert_eq(g.bits, f.bits, "%s", buf);
  }
  cr_assert_eq(parse_ok("fp32").bits, 32);
  cr_assert_eq(parse_ok("int<4,ch>").per_channel, 1);
  cr_assert_eq(parse_ok("fp8_e5m2").bits, 8);
  cr_assert_eq(parse_ok("lp<6,1,3,auto>").auto_scale, 1);
}

Test(formats, bad_names_say_what_is_wrong) {
  const char *bad[][2] = {
      {"float7", "unknown"},         {"lp<8,5,2,0>", "es = 5"},      {"lp<8,2,2>", "takes 4"},
      {"int<1>", "bits = 1"},        {"int<8,xx>", "not an integer"}, {"posit<8,7>", "es = 7"},
      {"int<8,auto>", "cannot be 'auto'"}, {"minifloat<9,2>", "e = 9"}, {"lp<8,2,2,0", "expected ','"},
      {"afloat<8,0>", "e = 0"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    lpq_numfmt_t f;
    lpq_error_t err = {0};
    cr_assert_neq(lpq_numfmt_parse(bad[i][0], &f, &err), 0, "'%s' accepted", bad[i][0]);
    cr_assert(strstr(err.msg, bad[i][1]) != NULL, "'%s': '%s' lacks '%s'", bad[i][0], err.msg,
              bad[i][1]);
  }
}

Test(formats, baseline_value_sets_match_their_definitions) {
  double lo, hi;
  lpq_numfmt_t f = parse_ok("posit<8,0>");
  extremes(&f, &lo, &hi);
  cr_assert_eq(hi, 64.0);
  cr_assert_eq(lo, 1.0 / 64.0);
  f = parse_ok("posit<8,2>");
  extremes(&f, &lo, &hi);
  cr_assert_eq(hi, ldexp(1, 24));
  cr_assert_eq(lo, ldexp(1, -24));
  /* posit<8,1>: code 0x41 = 0 10 0 0001 -> 1 + 1/16 */
  f = parse_ok("posit<8,1>");
  lp_quantizer_t *q = lpq_numfmt_quantizer(&f, NULL);
  cr_assert_eq(lp_quantizer_value(q, 0x41), 1.0625);
  lp_quantizer_free(&q);
  f = parse_ok("fp8_e4m3");
  cr_assert_eq(lpq_numfmt_calibrate(&f, (float[]){448.0f}, 1, NULL), 0);
  extremes(&f, &lo, &hi);
  cr_assert_eq(hi, 448.0);
  cr_assert_eq(lo, ldexp(1, -9));
  f = parse_ok("fp8_e5m2");
  cr_assert_eq(lpq_numfmt_calibrate(&f, (float[]){57344.0f}, 1, NULL), 0);
  extremes(&f, &lo, &hi);
  cr_assert_eq(hi, 57344.0);
  cr_assert_eq(lo, ldexp(1, -16));
  f = parse_ok("int<4>");
  cr_assert_eq(lpq_numfmt_calibrate(&f, (float[]){-3.5f, 1.0f}, 2, NULL), 0);
  cr_assert_float_eq(f.scale, 0.5, 1e-12);
  extremes(&f, &lo, &hi);
  cr_assert_eq(hi, 3.5);
  cr_assert_eq(lo, 0.5);
  /* AdaptivFloat: the top exponent covers max |x|; zero replaces the smallest value */
  f = parse_ok("afloat<8,3>");
  cr_assert_eq(lpq_numfmt_calibrate(&f, (float[]){3.0f, -0.1f}, 2, NULL), 0);
  extremes(&f, &lo, &hi);
  cr_assert_float_eq(hi, 2.0 * (1 + 15.0 / 16.0), 1e-12);
  cr_assert(hi >= 3.0);
  cr_assert_float_eq(lo, ldexp(1 + 1.0 / 16, -6), 1e-15);
}

Test(formats, auto_sf_follows_the_data) {
  size_t n = 20000;
  float *x = malloc(n * sizeof *x);
  uint64_t s = 12345;
  for (size_t i = 0; i < n; i++) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    double u = ((double)(s >> 11) + 0.5) / 9007199254740992.0;
    x[i] = (float)((u - 0.5) * ldexp(1, -5)); /* uniform in +-2^-6 */
  }
  lpq_numfmt_t a = parse_ok("lp<8,1,3,auto>");
  cr_assert_eq(a.resolved, 0);
  lpq_error_t err;
  cr_assert_null(lpq_numfmt_quantizer(&a, &err), "an uncalibrated auto format has no quantizer");
  cr_assert_eq(lpq_numfmt_calibrate(&a, x, n, &err), 0);
  cr_assert(a.resolved);
  /* the chosen sf beats its neighbours on this data */
  for (int d = -3; d <= 3; d += 6) {
    lpq_numfmt_t b = a;
    b.p[3] += d;
    lp_quantizer_t *qa = lpq_numfmt_quantizer(&a, NULL), *qb = lpq_numfmt_quantizer(&b, NULL);
    float *ya = malloc(n * sizeof *ya), *yb = malloc(n * sizeof *yb);
    lp_quantize_f32(qa, x, ya, n, NULL);
    lp_quantize_f32(qb, x, yb, n, NULL);
    double ea = 0, eb = 0;
    for (size_t i = 0; i < n; i++) {
      ea += (ya[i] - x[i]) * (ya[i] - x[i]);
      eb += (yb[i] - x[i]) * (yb[i] - x[i]);
    }
    cr_assert(ea < eb, "sf %d (err %g) vs sf %d (err %g)", a.p[3], ea, b.p[3], eb);
    free(ya);
    free(yb);
    lp_quantizer_free(&qa);
    lp_quantizer_free(&qb);
  }
  cr_assert(a.p[3] >= 4 && a.p[3] <= 12, "sf %d for data of magnitude 2^-7", a.p[3]);
  x[7] = NAN;
  lpq_numfmt_t c = parse_ok("int8");
  cr_assert_eq(lpq_numfmt_calibrate(&c, x, n, &err), LPQ_ENAN);
  cr_assert(strstr(err.msg, "element 7") != NULL);
  free(x);
}
