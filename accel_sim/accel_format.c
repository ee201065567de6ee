/* accel_sim/accel_format.c: the number-format families the accelerators compute, and the
** assignment of widths to layers (uniform or a mix of 2/4/8 bits). */
#include "accel_sim/accel_sim.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* One row per family: its name, the text prefix of a format, and the widths it allows. */
typedef struct family_row_t {
  const char *name;
  const char *prefix;
  int bits_min, bits_max;
} family_row_t;

static const family_row_t families[ACCEL_FMT_COUNT] = {
    [ACCEL_FMT_LP] = {"lp", "lp", LP_N_MIN, LP_N_MAX},
    [ACCEL_FMT_INT] = {"int", "int", 2, 32},
    [ACCEL_FMT_POSIT] = {"posit", "posit", 2, 32},
    [ACCEL_FMT_ADAPTIVFLOAT] = {"adaptivfloat", "af", 3, 16},
    [ACCEL_FMT_FLOAT] = {"float", "fp", 4, 32},
};

const char *accel_family_name(accel_family_t fam) {
  return (unsigned)fam < ACCEL_FMT_COUNT ? families[fam].name : "?";
}

int accel_family_from_name(const char *name) {
  for (int i = 0; i < ACCEL_FMT_COUNT; i++)
    if (strcasecmp(name, families[i].name) == 0 || strcasecmp(name, families[i].prefix) == 0)
      return i;
  return -1;
}

accel_format_t accel_format_make(accel_family_t fam, int bits) {
  accel_format_t f = {fam, bits, {0, 0, 0, 0}};
  if (fam == ACCEL_FMT_LP) {
    f.lp.n = bits;
    f.lp.es = bits > 2 ? 1 : 0;
    f.lp.rs = bits - 1;
  }
  return f;
}

int accel_format_parse(const char *text, accel_format_t *out, lpq_error_t *err) {
  if (text == NULL || out == NULL)
    return lpq_errorf(err, LPQ_EINVAL, "format: no text");
  if (strncasecmp(text, "lp<", 3) == 0) {
    lp_format_t lf;
    int rc = lp_format_parse(text, &lf, err);
    if (rc != 0)
      return rc;
    *out = (accel_format_t){ACCEL_FMT_LP, lf.n, lf};
    return 0;
  }
  /* The longest prefix first: "posit" before "p..." and "af" before "a...". */
  for (int i = 0; i < ACCEL_FMT_COUNT; i++) {
    if (i == ACCEL_FMT_LP)
      continue;
    size_t len = strlen(families[i].prefix);
    if (strncasecmp(text, families[i].prefix, len) != 0)
      continue;
    const char *digits = text + len;
    if (!isdigit((unsigned char)digits[0]))
      break;
    char *end;
    long bits = strtol(digits, &end, 10);
    if (*end != '\0')
      break;
    if (bits < families[i].bits_min || bits > families[i].bits_max)
      return lpq_errorf(err, LPQ_EINVAL, "format '%s': %s width %ld is out of range %d..%d",
                        text, families[i].name, bits, families[i].bits_min,
                        families[i].bits_max);
    *out = accel_format_make((accel_family_t)i, (int)bits);
    return 0;
  }
  return lpq_errorf(err, LPQ_EFORMAT,
                    "format '%s': expected lp<n,es,rs,sf>, intN, positN, afN or fpN", text);
}

char *accel_format_str(const accel_format_t *f, char *buf, size_t len) {
  if (f->family == ACCEL_FMT_LP && f->lp.n > 0)
    return lp_format_str(&f->lp, buf, len);
  snprintf(buf, len, "%s%d",
           (unsigned)f->family < ACCEL_FMT_COUNT ? families[f->family].prefix : "?", f->bits);
  return buf;
}

void accel_uniform_formats(const accel_network_t *net, accel_family_t fam, int bits,
                           accel_layer_formats_t *out) {
  accel_format_t f = accel_format_make(fam, bits);
  for (size_t i = 0; i < net->count; i++)
    out[i] = (accel_layer_formats_t){f, f};
}

int accel_mix_formats(const accel_network_t *net, const double share[3], accel_family_t fam,
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
