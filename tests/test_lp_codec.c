/* tests/test_lp_codec.c: LP decode/encode properties, exhaustively for n <= 10. */
#include "lp/lp.h"
#include "tests/lp_reference.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const int sfs[] = {-5, 0, 3};

/* Calls fn for every format with n <= 10, es <= 4, every rs and sf in sfs. */
#define FOR_EACH_SMALL_FORMAT(f)                                                              \
  for (int n_ = 2; n_ <= 10; n_++)                                                            \
    for (int es_ = 0; es_ <= 4; es_++)                                                        \
      for (int rs_ = 1; rs_ <= n_ - 1; rs_++)                                                 \
        for (size_t s_ = 0; s_ < sizeof sfs / sizeof sfs[0]; s_++)                            \
          for (lp_format_t f = {n_, es_, rs_, sfs[s_]}, *once_ = &f; once_; once_ = NULL)

static char *fmt(const lp_format_t *f) {
  static char buf[LP_TEXT_MAX];
  return lp_format_str(f, buf, sizeof buf);
}

/* lp_decode against the decoder written from DESIGN's formula (tests/lp_reference.c): every
** code of every format with n <= 10, es <= 4, every rs and every sf in -64..64, bit for bit.
** Both compute 2^x for the same exact x (exp2 and ldexp there, pow here); glibc rounds both
** to the nearest double on every one of these codes, so any difference, one ulp included, is
** an error of lp_decode (a tolerance of 4 ulp let a decoder off by one ulp pass). Under
** valgrind (50x slower) every 8th sf, -64, -56, .., 0, .., 64. */
Test(lp_codec, decode_equals_design_formula_every_small_format) {
  size_t formats = 0, codes = 0;
  const int sf_step = getenv("LPQ_VALGRIND") ? 8 : 1;
  for (int n = 2; n <= 10; n++)
    for (int es = 0; es <= 4; es++)
      for (int rs = 1; rs <= n - 1; rs++)
        for (int sf = -64; sf <= 64; sf += sf_step, formats++) {
          lp_format_t f = {n, es, rs, sf};
          for (uint32_t c = 0; c <= lp_code_mask(&f); c++, codes++) {
            double got = lp_decode(&f, c), want = lp_reference_decode(n, es, rs, sf, c);
            if (isnan(want)) {
              cr_assert(isnan(got), "%s: code %u is NaR, lp_decode gave %.17g", fmt(&f), c, got);
              continue;
            }
            cr_assert(got == want,
                      "%s: code %u: lp_decode %.17g, DESIGN's formula %.17g (%+.0f ulp)", fmt(&f),
                      c, got, want, (got - want) / (nextafter(fabs(want), INFINITY) - fabs(want)));
          }
        }
  cr_log_info("%zu formats, %zu codes, every one bit-equal", formats, codes);
}

Test(lp_codec, positive_codes_strictly_increase) {
  FOR_EACH_SMALL_FORMAT(f) {
    double prev = 0.0;
    for (uint32_t c = 1; c <= lp_maxpos(&f); c++) {
      double v = lp_decode(&f, c);
      cr_assert(v > prev, "%s: code %u = %.17g not above code %u = %.17g", fmt(&f), c, v, c - 1,
                prev);
      prev = v;
    }
  }
}

Test(lp_codec, negation_is_symmetric) {
  FOR_EACH_SMALL_FORMAT(f) {
    for (uint32_t c = 0; c <= lp_code_mask(&f); c++) {
      if (c == lp_nar(&f))
        continue;
      double v = lp_decode(&f, c), w = lp_decode(&f, lp_neg(&f, c));
      cr_assert(v == -w, "%s: decode(%u) = %g but decode(-%u) = %g", fmt(&f), c, v, c, w);
    }
  }
}

Test(lp_codec, encode_inverts_decode) {
  FOR_EACH_SMALL_FORMAT(f) {
    for (uint32_t c = 0; c <= lp_code_mask(&f); c++) {
      if (c == lp_nar(&f))
        continue;
      uint32_t back = 12345;
      cr_assert_eq(lp_encode(&f, lp_decode(&f, c), &back), 0);
      cr_assert_eq(back, c, "%s: encode(decode(%u)) = %u", fmt(&f), c, back);
    }
  }
}

Test(lp_codec, regime_stays_within_cap) {
  FOR_EACH_SMALL_FORMAT(f) {
    int kmin = 1000, kmax = -1000;
    for (uint32_t c = 1; c <= lp_maxpos(&f); c++) {
      lp_fields_t fl;
      lp_fields(&f, c, &fl);
      cr_assert(fl.k >= -f.rs && fl.k <= f.rs - 1, "%s: code %u has k = %d", fmt(&f), c, fl.k);
      kmin = fl.k < kmin ? fl.k : kmin;
      kmax = fl.k > kmax ? fl.k : kmax;
    }
    /* both ends of the regime range are used (uncapped: all-zero bits are the zero code) */
    cr_assert_eq(kmin, f.rs == f.n - 1 ? -(f.n - 2) : -f.rs, "%s", fmt(&f));
    cr_assert_eq(kmax, f.rs - 1, "%s", fmt(&f));
  }
}

Test(lp_codec, minpos_maxpos_zero_nar) {
  FOR_EACH_SMALL_FORMAT(f) {
    cr_assert_eq(lp_decode(&f, 0), 0.0);
    cr_assert(isnan(lp_decode(&f, lp_nar(&f))), "%s: NaR must decode to NaN", fmt(&f));
    double minpos = lp_decode(&f, 1), maxpos = lp_decode(&f, lp_maxpos(&f));
    uint32_t c;
    /* saturation */
    cr_assert_eq(lp_encode(&f, maxpos * 4, &c), 0);
    cr_assert_eq(c, lp_maxpos(&f), "%s", fmt(&f));
    cr_assert_eq(lp_encode(&f, INFINITY, &c), 0);
    cr_assert_eq(c, lp_maxpos(&f));
    cr_assert_eq(lp_encode(&f, -INFINITY, &c), 0);
    cr_assert_eq(c, lp_neg(&f, lp_maxpos(&f)));
    /* tiny values go to 0 or minpos, whichever is nearer */
    cr_assert_eq(lp_encode(&f, minpos * 0.49, &c), 0);
    cr_assert_eq(c, 0u, "%s", fmt(&f));
    cr_assert_eq(lp_encode(&f, minpos * 0.51, &c), 0);
    cr_assert_eq(c, 1u, "%s", fmt(&f));
    cr_assert_eq(lp_encode(&f, -minpos * 0.51, &c), 0);
    cr_assert_eq(c, lp_neg(&f, 1), "%s", fmt(&f));
    /* exactly half of minpos ties to the even code: 0 */
    cr_assert_eq(lp_encode(&f, minpos * 0.5, &c), 0);
    cr_assert_eq(c, 0u, "%s", fmt(&f));
    cr_assert_eq(lp_encode(&f, -0.0, &c), 0);
    cr_assert_eq(c, 0u);
    /* NaN is reported and the code left alone */
    c = 77;
    cr_assert_eq(lp_encode(&f, NAN, &c), LPQ_ENAN);
    cr_assert_eq(c, 77u);
  }
}

Test(lp_codec, encode_is_nearest_with_ties_to_even) {
  FOR_EACH_SMALL_FORMAT(f) {
    for (uint32_t c = 0; c < lp_maxpos(&f); c++) {
      double lo = lp_decode(&f, c), hi = lp_decode(&f, c + 1);
      double m = 0.5 * (lo + hi);
      uint32_t got;
      lp_encode(&f, m, &got);
      uint32_t even = (c & 1u) ? c + 1 : c;
      cr_assert_eq(got, even, "%s: tie between %u and %u went to %u", fmt(&f), c, c + 1, got);
      lp_encode(&f, nextafter(m, 0), &got);
      cr_assert_eq(got, c, "%s: just below the midpoint of %u..%u", fmt(&f), c, c + 1);
      lp_encode(&f, nextafter(m, INFINITY), &got);
      cr_assert_eq(got, c + 1, "%s: just above the midpoint of %u..%u", fmt(&f), c, c + 1);
    }
  }
}

Test(lp_codec, uncapped_rs_matches_posit_regime) {
  /* rs = n-1: the regime runs until the opposite bit or the end, as in standard posits:
  ** for lp<n,0,n-1,0>, maxpos = 2^(n-2) and minpos = 2^-(n-2), as posit<n,0>. */
  for (int n = 3; n <= 10; n++) {
    lp_format_t f = {n, 0, n - 1, 0};
    cr_assert_eq(lp_decode(&f, lp_maxpos(&f)), ldexp(1.0, n - 2), "n=%d", n);
    cr_assert_eq(lp_decode(&f, 1), ldexp(1.0, -(n - 2)), "n=%d", n);
    lp_fields_t fl;
    lp_fields(&f, lp_maxpos(&f), &fl);
    cr_assert_eq(fl.regime_len, n - 1);
    cr_assert_eq(fl.frac_bits, 0);
  }
  /* a capped regime frees bits: lp<8,0,2,0> maxpos has 5 fraction bits */
  lp_format_t g = {8, 0, 2, 0};
  lp_fields_t fl;
  lp_fields(&g, lp_maxpos(&g), &fl);
  cr_assert_eq(fl.regime_len, 2);
  cr_assert_eq(fl.k, 1);
  cr_assert_eq(fl.frac_bits, 5);
}

Test(lp_codec, no_exponent_and_no_fraction_bits) {
  /* es = 0: the fraction alone fills the log value */
  lp_format_t a = {6, 0, 1, 0};
  lp_fields_t fl;
  lp_fields(&a, 0x1f, &fl); /* 0 11111: k = 0 (one-bit regime, capped), f = 1111 */
  cr_assert_eq(fl.k, 0);
  cr_assert_eq(fl.e, 0u);
  cr_assert_eq(fl.frac_bits, 4);
  cr_assert_float_eq(lp_decode(&a, 0x1f), exp2(15.0 / 16.0), 1e-15);
  /* no fraction bits: n = 4, es = 2, rs = 1 leaves 0 fraction bits, values are powers of 2 */
  lp_format_t b = {4, 2, 1, 0};
  for (uint32_t c = 1; c <= lp_maxpos(&b); c++) {
    lp_fields(&b, c, &fl);
    cr_assert_eq(fl.frac_bits, 0);
    double v = lp_decode(&b, c);
    cr_assert_eq(v, exp2(round(log2(v))), "code %u = %g is a power of two", c, v);
  }
  /* exponent bits past the end count as 0 */
  lp_format_t c3 = {3, 2, 2, 0};
  lp_fields(&c3, 0x2, &fl); /* 0 10: k = 0, terminator consumed, e has no bits left */
  cr_assert_eq(fl.k, 0);
  cr_assert_eq(fl.e, 0u);
  cr_assert_eq(lp_decode(&c3, 0x2), 1.0);
}

Test(lp_codec, scale_factor_shifts_values) {
  lp_format_t a = {8, 1, 3, 0}, b = {8, 1, 3, 5};
  for (uint32_t c = 1; c <= lp_maxpos(&a); c++)
    cr_assert_eq(lp_decode(&b, c), lp_decode(&a, c) / 32.0);
}

Test(lp_codec, spot_checks_n12_n16) {
  const lp_format_t fs[] = {{12, 2, 3, 0}, {12, 0, 11, -7}, {16, 1, 4, 2}, {16, 4, 15, 0},
                            {16, 3, 1, -64}, {16, 0, 15, 64}};
  for (size_t i = 0; i < sizeof fs / sizeof fs[0]; i++) {
    const lp_format_t f = fs[i];
    double prev = 0.0;
    for (uint32_t c = 1; c <= lp_maxpos(&f); c++) {
      double v = lp_decode(&f, c);
      cr_assert(v > prev, "%s: code %u", fmt(&f), c);
      prev = v;
      cr_assert_eq(lp_decode(&f, lp_neg(&f, c)), -v);
      if (c % 97 == 1 || c == lp_maxpos(&f)) {
        uint32_t back;
        lp_encode(&f, v, &back);
        cr_assert_eq(back, c, "%s: encode(decode(%u)) = %u", fmt(&f), c, back);
      }
    }
  }
}

Test(lp_format, parse_print_and_validation) {
  lp_format_t f;
  lpq_error_t err;
  cr_assert_eq(lp_format_parse("lp<8,2,2,0>", &f, &err), 0);
  cr_assert(f.n == 8 && f.es == 2 && f.rs == 2 && f.sf == 0);
  cr_assert_eq(lp_format_parse("LP< 6, 1, 3, -1 >", &f, &err), 0);
  cr_assert(f.n == 6 && f.es == 1 && f.rs == 3 && f.sf == -1);
  char buf[LP_TEXT_MAX];
  cr_assert_str_eq(lp_format_str(&f, buf, sizeof buf), "lp<6,1,3,-1>");

  struct {
    const char *text;
    int code;
    const char *needle;
  } bad[] = {
      {"lp<1,0,1,0>", LPQ_EINVAL, "n = 1 is out of range 2..16"},
      {"lp<17,0,1,0>", LPQ_EINVAL, "n = 17"},
      {"lp<8,5,2,0>", LPQ_EINVAL, "es = 5 is out of range 0..4"},
      {"lp<8,-1,2,0>", LPQ_EINVAL, "es = -1"},
      {"lp<8,2,8,0>", LPQ_EINVAL, "rs = 8 is out of range 1..7"},
      {"lp<8,2,0,0>", LPQ_EINVAL, "rs = 0"},
      {"lp<8,2,2,65>", LPQ_EINVAL, "sf = 65 is out of range -64..64"},
      {"lp<8,2,2,-65>", LPQ_EINVAL, "sf = -65"},
      {"lp<8,2,2>", LPQ_EFORMAT, "expected ','"},
      {"lp<8,x,2,0>", LPQ_EFORMAT, "field es is not an integer"},
      {"posit<8,2>", LPQ_EFORMAT, "expected the form"},
      {"lp<8,2,2,0>junk", LPQ_EFORMAT, "unexpected text"},
      {"", LPQ_EFORMAT, "expected the form"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    memset(&err, 0, sizeof err);
    int rc = lp_format_parse(bad[i].text, &f, &err);
    cr_assert_eq(rc, bad[i].code, "'%s' gave %d", bad[i].text, rc);
    cr_assert(strstr(err.msg, bad[i].needle) != NULL, "'%s': message '%s' lacks '%s'",
              bad[i].text, err.msg, bad[i].needle);
  }
}
