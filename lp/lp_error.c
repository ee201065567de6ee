/* lp/lp_error.c: the project-wide error values and messages. */
#include "lp/lp.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int lpq_errorf(lpq_error_t *err, int code, const char *fmt, ...) {
  if (err == NULL)
    return code;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->msg, sizeof err->msg, fmt, ap);
  va_end(ap);
  err->code = code;
  return code;
}

int lpq_error_prefix(lpq_error_t *err, const char *fmt, ...) {
  if (err == NULL)
    return LPQ_EINVAL;
  char prefix[sizeof err->msg];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(prefix, sizeof prefix, fmt, ap);
  va_end(ap);
  size_t plen = strlen(prefix), olen = strnlen(err->msg, sizeof err->msg - 1);
  if (plen >= sizeof err->msg)
    plen = sizeof err->msg - 1;
  if (plen + olen >= sizeof err->msg)
    olen = sizeof err->msg - 1 - plen;
  memmove(err->msg + plen, err->msg, olen);
  memcpy(err->msg, prefix, plen);
  err->msg[plen + olen] = '\0';
  return err->code;
}

const char *lpq_nonfinite_name(double x) {
  if (isnan(x))
    return "NaN";
  if (isinf(x))
    return x > 0 ? "infinite (+inf)" : "infinite (-inf)";
  return "finite";
}

const char *lpq_strerror(int code) {
  switch (code) {
  case LPQ_OK: return "success";
  case LPQ_EINVAL: return "invalid argument";
  case LPQ_ENOMEM: return "out of memory";
  case LPQ_EIO: return "input/output error";
  case LPQ_EFORMAT: return "malformed input";
  case LPQ_ENAN: return "NaN in input";
  case LPQ_EUNSUP: return "not supported";
  case LPQ_ERANGE: return "value out of range";
  case LPQ_ENOTFOUND: return "not found";
  case LPQ_ESTATE: return "wrong state";
  case LPQ_ETIMEDOUT: return "timed out";
  case LPQ_ECANCELED: return "canceled";
  case LPQ_ECORRUPT: return "stored data damaged";
  default: return "unknown error";
  }
}
