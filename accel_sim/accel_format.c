/* accel_sim/accel_format.c: the number-format families the accelerators compute, and the
** assignment of widths to layers (uniform or a mix of 2/4/8 bits). */
#include "accel_sim/accel_sim.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

accel_format_t accel_format_make(lpq_arith_t fam, int bits) {
  accel_format_t f;
  memset(&f, 0, sizeof f);
  f.family = fam;
  f.bits = bits;
  /* what the cost model needs is the family and the width; the text is lp/'s representative */
  f.has_fmt = lpq_numfmt_representative(fam, bits, &f.fmt, NULL) == 0;
  if (fam == LPQ_ARITH_LP)
    f.lp = (lp_format_t){bits, bits > 2 ? 1 : 0, bits - 1, 0};
  return f;
}

char *accel_format_str(const accel_format_t *f, char *buf, size_t len) {
  if (f->has_fmt)
    return lpq_numfmt_str(&f->fmt, buf, len);
  snprintf(buf, len, "%s, %d bits", lpq_arith_name(f->family), f->bits);
  return buf;
}

void accel_uniform_formats(const accel_network_t *net, lpq_arith_t fam, int bits,
                           accel_layer_formats_t *out) {
  accel_format_t f = accel_format_make(fam, bits);
  for (size_t i = 0; i < net->count; i++)
    out[i] = (accel_layer_formats_t){f, f};
}

int accel_mix_formats(const accel_network_t *net, const double share[3], lpq_arith_t fam,
                      accel_layer_formats_t *out, lpq_error_t *err) {
  static const int widths[3] = {2, 4, 8};
  double sum = 0;
  for (int j = 0; j < 3; j++) {
    if (!(share[j] >= 0) || share[j] > 1)
      return lpq_errorf(err, LPQ_EINVAL, "mix: share of %d-bit layers %g is not in 0..1",
                        widths[j], share[j]);
    sum += share[j];
  }
  if (fabs(sum - 1.0) > 1e-6)
    return lpq_errorf(err, LPQ_EINVAL, "mix: shares %g:%g:%g do not sum to 1", share[0],
                      share[1], share[2]);
  /* Largest-remainder counts, so the counts sum to the number of layers exactly. */
  const size_t n = net->count;
  size_t quota[3], given = 0;
  double rem[3];
  for (int j = 0; j < 3; j++) {
    double exact = share[j] * (double)n;
    quota[j] = (size_t)floor(exact);
    rem[j] = exact - (double)quota[j];
    given += quota[j];
  }
  while (given < n) {
    int best = 0;
    for (int j = 1; j < 3; j++)
      if (rem[j] > rem[best])
        best = j;
    quota[best]++;
    rem[best] = -1;
    given++;
  }
  /* Spread: layer i takes the width furthest behind its pro-rata count (ties go to the wider
  ** width), so each width's layers are spread evenly over the depth. */
  size_t used[3] = {0, 0, 0};
  for (size_t i = 0; i < n; i++) {
    int best = -1;
    double best_lag = 0;
    for (int j = 2; j >= 0; j--) {
      if (used[j] >= quota[j])
        continue;
      double lag = (double)quota[j] * (double)(i + 1) / (double)n - (double)used[j];
      if (best < 0 || lag > best_lag + 1e-12) {
        best = j;
        best_lag = lag;
      }
    }
    used[best]++;
    accel_format_t f = accel_format_make(fam, widths[best]);
    out[i] = (accel_layer_formats_t){f, f};
  }
  return 0;
}
