/* common/array.c: dense arrays with checked shapes. */
#include "common/common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* No array lpq creates may exceed this (64 GiB): a shape beyond it is hostile or a mistake. */
#define ARRAY_MAX_BYTES ((size_t)64 << 30)

size_t lpq_dtype_size(lpq_dtype_t t) {
  switch (t) {
  case LPQ_DT_F32: return 4;
  case LPQ_DT_U8: return 1;
  case LPQ_DT_I8: return 1;
  case LPQ_DT_I32: return 4;
  case LPQ_DT_I64: return 8;
  case LPQ_DT_BOOL: return 1;
  case LPQ_DT_F64: return 8;
  }
  return 0;
}

const char *lpq_dtype_name(lpq_dtype_t t) {
  switch (t) {
  case LPQ_DT_F32: return "float32";
  case LPQ_DT_U8: return "uint8";
  case LPQ_DT_I8: return "int8";
  case LPQ_DT_I32: return "int32";
  case LPQ_DT_I64: return "int64";
  case LPQ_DT_BOOL: return "bool";
  case LPQ_DT_F64: return "float64";
  }
  return "unknown";
}

int lpq_shape_count(int ndim, const int64_t *shape, size_t elem_size, size_t max_bytes,
                    size_t *count, lpq_error_t *err) {
  if (ndim < 0 || ndim > LPQ_MAX_DIMS)
    return lpq_errorf(err, LPQ_ERANGE, "%d dimensions (at most %d)", ndim, LPQ_MAX_DIMS);
  size_t n = 1;
  for (int i = 0; i < ndim; i++) {
    if (shape[i] < 0)
      return lpq_errorf(err, LPQ_ERANGE, "dimension %d is negative (%lld)", i,
                        (long long)shape[i]);
    if (shape[i] != 0 && n > SIZE_MAX / (size_t)shape[i])
      return lpq_errorf(err, LPQ_ERANGE, "shape overflows at dimension %d", i);
    n *= (size_t)shape[i];
  }
  if (elem_size != 0 && (n > SIZE_MAX / elem_size || n * elem_size > max_bytes)) {
    char buf[160];
    return lpq_errorf(err, LPQ_ERANGE, "shape %s is too large (more than %zu bytes)",
                      lpq_shape_str(ndim, shape, buf, sizeof buf), max_bytes);
  }
  *count = n;
  return 0;
}

lpq_array_t *lpq_array_new(lpq_dtype_t dtype, int ndim, const int64_t *shape, lpq_error_t *err) {
  size_t esize = lpq_dtype_size(dtype), count;
  if (esize == 0) {
    lpq_errorf(err, LPQ_EUNSUP, "unsupported element type %d", (int)dtype);
    return NULL;
  }
  if (lpq_shape_count(ndim, shape, esize, ARRAY_MAX_BYTES, &count, err) != 0)
    return NULL;
  lpq_array_t *a = calloc(1, sizeof *a);
  if (a)
    a->data = calloc(count ? count : 1, esize);
  if (!a || !a->data) {
    free(a);
    lpq_errorf(err, LPQ_ENOMEM, "out of memory for %zu elements", count);
    return NULL;
  }
  a->dtype = dtype;
  a->ndim = ndim;
  if (ndim > 0)
    memcpy(a->shape, shape, (size_t)ndim * sizeof *shape);
  a->count = count;
  return a;
}

void lpq_array_free(lpq_array_t **a) {
  if (a == NULL || *a == NULL)
    return;
  free((*a)->data);
  free(*a);
  *a = NULL;
}

char *lpq_shape_str(int ndim, const int64_t *shape, char *buf, size_t len) {
  size_t used = 0;
  used += (size_t)snprintf(buf, len, "[");
  for (int i = 0; i < ndim && used < len; i++)
    used += (size_t)snprintf(buf + used, len - used, "%s%lld", i ? "," : "", (long long)shape[i]);
  if (used < len)
    snprintf(buf + used, len - used, "]");
  return buf;
}
