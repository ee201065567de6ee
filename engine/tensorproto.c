/* engine/tensorproto.c: ONNX TensorProto -> lpq_array_t, every size checked against the data. */
#include "engine/engine_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *onnx_dtype_name(int t) {
  static const char *names[] = {"undefined", "float",   "uint8",    "int8",      "uint16",
                                "int16",     "int32",   "int64",    "string",    "bool",
                                "float16",   "double",  "uint32",   "uint64",    "complex64",
                                "complex128", "bfloat16"};
  return t >= 0 && t < (int)(sizeof names / sizeof names[0]) ? names[t] : "unknown";
}

/* Copies n typed values of the field into a (whose dtype decides the conversion). */
static void copy_int32_field(lpq_array_t *a, const int32_t *src) {
  for (size_t i = 0; i < a->count; i++) {
    switch (a->dtype) {
    case LPQ_DT_U8: case LPQ_DT_BOOL: ((uint8_t *)a->data)[i] = (uint8_t)src[i]; break;
    case LPQ_DT_I8: ((int8_t *)a->data)[i] = (int8_t)src[i]; break;
    default: ((int32_t *)a->data)[i] = src[i]; break;
    }
  }
}

int lpq__tensorproto_to_array(const Onnx__TensorProto *t, lpq_array_t **out, lpq_error_t *err) {
  *out = NULL;
  const char *tname = t->name && t->name[0] ? t->name : "(unnamed)";
  if (t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL || t->n_external_data)
    return lpq_errorf(err, LPQ_EUNSUP, "tensor '%s': external data is not supported", tname);
  if (t->segment)
    return lpq_errorf(err, LPQ_EUNSUP, "tensor '%s': segmented tensors are not supported", tname);
  int dt = t->has_data_type ? t->data_type : 0;
  switch (dt) {
  case LPQ_DT_F32: case LPQ_DT_U8: case LPQ_DT_I8: case LPQ_DT_I32: case LPQ_DT_I64:
  case LPQ_DT_BOOL: case LPQ_DT_F64: break;
  default:
    return lpq_errorf(err, LPQ_EUNSUP, "tensor '%s': data type %d (%s) is not supported", tname,
                      dt, onnx_dtype_name(dt));
  }
  if (t->n_dims > LPQ_MAX_DIMS)
    return lpq_errorf(err, LPQ_EUNSUP, "tensor '%s': %zu dimensions (at most %d)", tname,
                      t->n_dims, LPQ_MAX_DIMS);
  size_t esize = lpq_dtype_size((lpq_dtype_t)dt), count;
  if (lpq_shape_count((int)t->n_dims, t->dims, esize, GRAPH_MAX_TENSOR_BYTES, &count, err) != 0)
    return lpq_error_prefix(err, "tensor '%s': dims", tname);
  char sbuf[160];
  lpq_shape_str((int)t->n_dims, t->dims, sbuf, sizeof sbuf);
  size_t have;
  const char *field;
  if (t->has_raw_data) {
    have = t->raw_data.len, field = "raw_data";
    if (have != count * esize)
      return lpq_errorf(err, LPQ_EFORMAT,
                        "tensor '%s': raw_data has %zu bytes, shape %s of %s needs %zu", tname,
                        have, sbuf, onnx_dtype_name(dt), count * esize);
  } else {
    switch (dt) {
    case LPQ_DT_F32: have = t->n_float_data, field = "float_data"; break;
    case LPQ_DT_I64: have = t->n_int64_data, field = "int64_data"; break;
    case LPQ_DT_F64: have = t->n_double_data, field = "double_data"; break;
    default: have = t->n_int32_data, field = "int32_data"; break;
    }
    if (have != count)
      return lpq_errorf(err, LPQ_EFORMAT, "tensor '%s': %s has %zu values, shape %s needs %zu",
                        tname, field, have, sbuf, count);
  }
  lpq_array_t *a = lpq_array_new((lpq_dtype_t)dt, (int)t->n_dims, t->dims, err);
  if (!a)
    return lpq_error_prefix(err, "tensor '%s': ", tname);
  if (count > 0) {
    if (t->has_raw_data)
      memcpy(a->data, t->raw_data.data, count * esize); /* little-endian host, as ONNX */
    else if (dt == LPQ_DT_F32)
      memcpy(a->data, t->float_data, count * 4);
    else if (dt == LPQ_DT_I64)
      memcpy(a->data, t->int64_data, count * 8);
    else if (dt == LPQ_DT_F64)
      memcpy(a->data, t->double_data, count * 8);
    else
      copy_int32_field(a, t->int32_data);
  }
  *out = a;
  return 0;
}

int lpq__array_to_engine_dtype(lpq_array_t *a, lpq_error_t *err) {
  if (a->dtype == LPQ_DT_F32 || a->dtype == LPQ_DT_I64 || a->dtype == LPQ_DT_BOOL)
    return 0;
  if (a->dtype != LPQ_DT_I32 && a->dtype != LPQ_DT_I8 && a->dtype != LPQ_DT_U8)
    return lpq_errorf(err, LPQ_EUNSUP, "data type %s is not supported by the engine",
                      lpq_dtype_name(a->dtype));
  int64_t *d = malloc((a->count ? a->count : 1) * sizeof *d);
  if (!d)
    return lpq_errorf(err, LPQ_ENOMEM, "out of memory converting %zu integers", a->count);
  for (size_t i = 0; i < a->count; i++)
    d[i] = a->dtype == LPQ_DT_I32  ? ((int32_t *)a->data)[i]
           : a->dtype == LPQ_DT_I8 ? ((int8_t *)a->data)[i]
                                   : ((uint8_t *)a->data)[i];
  free(a->data);
  a->data = d;
  a->dtype = LPQ_DT_I64;
  return 0;
}

int lpq_tensorproto_load(const void *data, size_t len, lpq_array_t **out, char *name,
                         size_t name_len, lpq_error_t *err) {
  if (!out || (!data && len))
    return lpq_errorf(err, LPQ_EINVAL, "lpq_tensorproto_load: NULL argument");
  *out = NULL;
  Onnx__TensorProto *t = onnx__tensor_proto__unpack(NULL, len, data);
  if (!t)
    return lpq_errorf(err, LPQ_EFORMAT, "not a valid TensorProto (%zu bytes)", len);
  if (name && name_len)
    snprintf(name, name_len, "%s", t->name ? t->name : "");
  int rc = lpq__tensorproto_to_array(t, out, err);
  onnx__tensor_proto__free_unpacked(t, NULL);
  return rc;
}
