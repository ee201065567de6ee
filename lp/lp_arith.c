/* lp/lp_arith.c: log-domain arithmetic, the operations of an LPA processing element. */
#include "lp/lp.h"

#include <math.h>

lp_logval_t lp_to_log(const lp_format_t *f, uint32_t c) {
  lp_fields_t fl;
  lp_fields(f, c, &fl);
  lp_logval_t v = {fl.is_zero, fl.is_nar, fl.sign, 0};
  if (!fl.is_zero && !fl.is_nar)
    v.log_fixed = lp_log_fixed(f, &fl);
  return v;
}

lp_logval_t lp_mul_log(const lp_format_t *fa, uint32_t a, const lp_format_t *fb, uint32_t b) {
  lp_logval_t x = lp_to_log(fa, a), y = lp_to_log(fb, b);
  lp_logval_t r = {0, 0, 0, 0};
  if (x.is_nar || y.is_nar) {
    r.is_nar = 1;
    return r;
  }
  if (x.is_zero || y.is_zero) {
    r.is_zero = 1;
    return r;
  }
  r.sign = x.sign ^ y.sign;
  r.log_fixed = x.log_fixed + y.log_fixed; /* regime, exponent and fraction add as one integer */
  return r;
}

double lp_log_to_linear(lp_logval_t v) {
  if (v.is_nar)
    return NAN;
  if (v.is_zero)
    return 0.0;
  const int64_t one = (int64_t)1 << LP_LOG_FRAC;
  int64_t ip = v.log_fixed >> LP_LOG_FRAC; /* floor */
  int64_t fp = v.log_fixed - ip * one;    /* in [0, one) */
  double m = exp2((double)fp / (double)one);
  double r = ldexp(m, (int)ip);
  return v.sign ? -r : r;
}
