/* lp/lp_format.c: validation, parsing and printing of LP<n, es, rs, sf>. */
#include "lp/lp.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int lp_format_validate(const lp_format_t *f, lpq_error_t *err) {
  if (f == NULL)
    return lpq_errorf(err, LPQ_EINVAL, "lp format: NULL");
  if (f->n < LP_N_MIN || f->n > LP_N_MAX)
    return lpq_errorf(err, LPQ_EINVAL, "lp format: n = %d is out of range %d..%d", f->n, LP_N_MIN,
                      LP_N_MAX);
  if (f->es < 0 || f->es > LP_ES_MAX)
    return lpq_errorf(err, LPQ_EINVAL, "lp format: es = %d is out of range 0..%d", f->es,
                      LP_ES_MAX);
  if (f->rs < 1 || f->rs > f->n - 1)
    return lpq_errorf(err, LPQ_EINVAL, "lp format: rs = %d is out of range 1..%d (n - 1 for n = %d)",
                      f->rs, f->n - 1, f->n);
  if (f->sf < LP_SF_MIN || f->sf > LP_SF_MAX)
    return lpq_errorf(err, LPQ_EINVAL, "lp format: sf = %d is out of range %d..%d", f->sf,
                      LP_SF_MIN, LP_SF_MAX);
  return 0;
}

/* Reads one decimal integer field; advances *p past it and any spaces. */
static int parse_int(const char **p, int *out) {
  while (isspace((unsigned char)**p))
    (*p)++;
  char *end;
  errno = 0;
  long v = strtol(*p, &end, 10);
  if (end == *p || errno != 0 || v < -100000 || v > 100000)
    return -1;
  *out = (int)v;
  *p = end;
  while (isspace((unsigned char)**p))
    (*p)++;
  return 0;
}

int lp_format_parse(const char *text, lp_format_t *out, lpq_error_t *err) {
  if (text == NULL || out == NULL)
    return lpq_errorf(err, LPQ_EINVAL, "lp format: NULL argument");
  static const char *names[4] = {"n", "es", "rs", "sf"};
  const char *p = text;
  while (isspace((unsigned char)*p))
    p++;
  if (strncasecmp(p, "lp<", 3) != 0)
    return lpq_errorf(err, LPQ_EFORMAT, "lp format '%s': expected the form lp<n,es,rs,sf>", text);
  p += 3;
  int v[4];
  for (int i = 0; i < 4; i++) {
    if (parse_int(&p, &v[i]) != 0)
      return lpq_errorf(err, LPQ_EFORMAT, "lp format '%s': field %s is not an integer", text,
                        names[i]);
    char want = i < 3 ? ',' : '>';
    if (*p != want)
      return lpq_errorf(err, LPQ_EFORMAT, "lp format '%s': expected '%c' after field %s", text,
                        want, names[i]);
    p++;
  }
  while (isspace((unsigned char)*p))
    p++;
  if (*p != '\0')
    return lpq_errorf(err, LPQ_EFORMAT, "lp format '%s': unexpected text after '>'", text);
  lp_format_t f = {v[0], v[1], v[2], v[3]};
  int rc = lp_format_validate(&f, err);
  if (rc != 0) {
    lpq_error_prefix(err, "'%s': ", text);
    return rc;
  }
  *out = f;
  return 0;
}

char *lp_format_str(const lp_format_t *f, char *buf, size_t len) {
  snprintf(buf, len, "lp<%d,%d,%d,%d>", f->n, f->es, f->rs, f->sf);
  return buf;
}

void lp_weight_shape(int n, int *es, int *rs) {
  *es = n >= 6 ? 1 : 0;
  *rs = n - 1 < 3 ? n - 1 : 3;
}
