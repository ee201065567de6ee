/* engine/tensorproto.c: ONNX TensorProto -> lpq_array_t, every size checked against the data. */
#include "engine/engine_internal.h"

#include <math.h>
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

float lpq__fp8_value(int onnx_type, uint8_t b) {
  const int e4 = onnx_type == ONNX_DT_F8E4M3FN, mb = e4 ? 3 : 2, bias = e4 ? 7 : 15;
  const int e = (b >> mb) & (e4 ? 0xF : 0x1F), m = b & ((1 << mb) - 1);
  float v;
  if (e4 && (b & 0x7F) == 0x7F)
    v = NAN;
  else if (!e4 && e == 31)
    v = m ? NAN : INFINITY;
  else if (e == 0)
    v = ldexpf((float)m, 1 - bias - mb);
  else
    v = ldexpf((float)((1 << mb) + m), e - bias - mb);
  return b & 0x80 ? -v : v;
}

float lpq__fp8_round(int onnx_type, float x, int saturate) {
  const int e4 = onnx_type == ONNX_DT_F8E4M3FN, mb = e4 ? 3 : 2, emin = e4 ? -6 : -14;
  const float max = e4 ? 448.0f : 57344.0f;
  if (isnan(x))
    return NAN;
  if (isinf(x))
    return saturate ? copysignf(max, x) : (e4 ? NAN : x);
  int e;
  frexpf(fabsf(x), &e); /* |x| = f * 2^e, f in [0.5, 1) */
  e = e - 1 < emin ? emin : e - 1;
  const float step = ldexpf(1.0f, e - mb);
  float q = rintf(x / step) * step; /* the current rounding mode: to nearest, ties to even */
  if (fabsf(q) > max)
    return saturate ? copysignf(max, x) : (e4 ? NAN : copysignf(INFINITY, x));
  return q;
}

/* The export's narrow types (int4/uint4 two a byte, low nibble first; int16/uint16; FP8) as the
** engine's int64 or float. */
static int narrow_to_array(const Onnx__TensorProto *t, const char *tname, int dt, lpq_array_t **out,
                           lpq_error_t *err) {
  const int fp8 = dt == ONNX_DT_F8E4M3FN || dt == ONNX_DT_F8E5M2;
  if (t->n_dims > LPQ_MAX_DIMS)
    return lpq_errorf(err, LPQ_EUNSUP, "tensor '%s': %zu dimensions (at most %d)", tname,
                      t->n_dims, LPQ_MAX_DIMS);
  size_t count;
  if (lpq_shape_count((int)t->n_dims, t->dims, 8, GRAPH_MAX_TENSOR_BYTES, &count, err) != 0)
    return lpq_error_prefix(err, "tensor '%s': dims", tname);
  const size_t bytes = dt == ONNX_DT_U4 || dt == ONNX_DT_I4 ? (count + 1) / 2
                       : dt == ONNX_DT_U16 || dt == ONNX_DT_I16 ? 2 * count : count;
  if (t->has_raw_data ? t->raw_data.len != bytes : t->n_int32_data != count)
    return lpq_errorf(err, LPQ_EFORMAT, "tensor '%s': %s has %zu %s, its shape needs %zu", tname,
                      t->has_raw_data ? "raw_data" : "int32_data",
                      t->has_raw_data ? t->raw_data.len : t->n_int32_data,
                      t->has_raw_data ? "bytes" : "values", t->has_raw_data ? bytes : count);
  lpq_array_t *a = lpq_array_new(fp8 ? LPQ_DT_F32 : LPQ_DT_I64, (int)t->n_dims, t->dims, err);
  if (!a)
    return lpq_error_prefix(err, "tensor '%s': ", tname);
  const uint8_t *r = t->has_raw_data ? t->raw_data.data : NULL;
  for (size_t i = 0; i < count; i++) {
    int64_t v;
    if (!r)
      v = t->int32_data[i];
    else if (dt == ONNX_DT_U4 || dt == ONNX_DT_I4)
      v = (r[i / 2] >> (4 * (i % 2))) & 0xF;
    else if (dt == ONNX_DT_U16 || dt == ONNX_DT_I16)
      v = (int64_t)r[2 * i] | (int64_t)r[2 * i + 1] << 8;
    else
      v = r[i];
    if (dt == ONNX_DT_I4)
      v = (v & 0xF) >= 8 ? (v & 0xF) - 16 : (v & 0xF);
    else if (dt == ONNX_DT_I16)
      v = (int16_t)(uint16_t)v;
    if (fp8)
      ((float *)a->data)[i] = lpq__fp8_value(dt, (uint8_t)v);
    else
      ((int64_t *)a->data)[i] = v;
  }
  *out = a;
  return 0;
}

int lpq__tensorproto_to_array(const Onnx__TensorProto *t, lpq_array_t **out, lpq_error_t *err) {
  *out = NULL;
  const char *tname = t->name && t->name[0] ? t->name : "(unnamed)";
  if (t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL || t->n_external_data)
    return lpq_errorf(err, LPQ_EUNSUP, "tensor '%s': external data is not supported", tname);
  if (t->segment)
    return lpq_errorf(err, LPQ_EUNSUP, "tensor '%s': segmented tensors are not supported", tname);
  int dt = t->has_data_type ? t->data_type : 0;
  if (dt == ONNX_DT_U4 || dt == ONNX_DT_I4 || dt == ONNX_DT_U16 || dt == ONNX_DT_I16 ||
      dt == ONNX_DT_F8E4M3FN || dt == ONNX_DT_F8E5M2)
    return narrow_to_array(t, tname, dt, out, err);
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
