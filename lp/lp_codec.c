/* lp/lp_codec.c: decoding and encoding single LP codes (DESIGN section 1). */
#include "lp/lp.h"

#include <math.h>

void lp_fields(const lp_format_t *f, uint32_t c, lp_fields_t *out) {
  const uint32_t mask = lp_code_mask(f);
  c &= mask;
  *out = (lp_fields_t){0};
  if (c == 0) {
    out->is_zero = 1;
    return;
  }
  if (c == lp_nar(f)) {
    out->is_nar = 1;
    return;
  }
  out->sign = (int)((c >> (f->n - 1)) & 1u);
  if (out->sign)
    c = (0u - c) & mask;
  const int nb = f->n - 1; /* bits after the sign */
  int pos = nb - 1;        /* next bit to read, high to low */
  const uint32_t r = (c >> pos) & 1u;
  int m = 0;
  while (pos >= 0 && ((c >> pos) & 1u) == r && m < f->rs) {
    m++;
    pos--;
  }
  out->regime_len = m;
  if (pos >= 0 && m < f->rs) { /* the run ended at an opposite bit: consume it */
    pos--;
    out->regime_len++;
  }
  out->k = r ? m - 1 : -m;
  int remaining = pos + 1;
  const uint32_t low = remaining > 0 ? c & ((1u << remaining) - 1u) : 0;
  if (remaining >= f->es) {
    out->e = f->es > 0 ? (low >> (remaining - f->es)) & ((1u << f->es) - 1u) : 0;
    remaining -= f->es;
  } else {
    out->e = low << (f->es - remaining); /* bits past the end count as 0 */
    remaining = 0;
  }
  out->frac_bits = remaining;
  out->f = remaining > 0 ? low & ((1u << remaining) - 1u) : 0;
}

int64_t lp_log_fixed(const lp_format_t *f, const lp_fields_t *fl) {
  int64_t integer = (int64_t)fl->k * (1 << f->es) + (int64_t)fl->e - f->sf;
  return integer * ((int64_t)1 << LP_LOG_FRAC) +
         ((int64_t)fl->f << (LP_LOG_FRAC - fl->frac_bits));
}

double lp_decode(const lp_format_t *f, uint32_t c) {
  lp_fields_t fl;
  lp_fields(f, c, &fl);
  if (fl.is_zero)
    return 0.0;
  if (fl.is_nar)
    return NAN;
  int scale = fl.k * (1 << f->es) + (int)fl.e - f->sf;
  double frac = fl.frac_bits > 0 ? exp2((double)fl.f / (double)(1u << fl.frac_bits)) : 1.0;
  double v = ldexp(frac, scale);
  return fl.sign ? -v : v;
}

double lp_midpoint(double vlo, double vhi) { return 0.5 * (vlo + vhi); }

int lp_encode(const lp_format_t *f, double x, uint32_t *code) {
  if (isnan(x))
    return LPQ_ENAN;
  const double a = fabs(x);
  const uint32_t maxpos = lp_maxpos(f);
  /* Largest code c in [0, maxpos] with value(c) <= a: positive codes are monotonic. */
  uint32_t lo = 0, hi = maxpos;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo + 1) / 2;
    if (lp_decode(f, mid) <= a)
      lo = mid;
    else
      hi = mid - 1;
  }
  uint32_t c = lo;
  if (c < maxpos) {
    double m = lp_midpoint(c == 0 ? 0.0 : lp_decode(f, c), lp_decode(f, c + 1));
    if (a > m || (a == m && ((c + 1) & 1u) == 0))
      c++;
  }
  *code = (x < 0 && c != 0) ? lp_neg(f, c) : c;
  return 0;
}
