/* engine/onnx_pb.c: building ONNX protobuf messages by hand (nodes, attributes, tensors,
** functions) for the quantized export. Everything is malloc'd piece by piece, as protobuf-c's
** unpacker lays a message out, so onnx__model_proto__free_unpacked frees a model that mixes
** unpacked and built parts. A failed allocation sets pb->oom and returns NULL: the caller
** checks the flag once at the end. */
#include "engine/engine_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *lpq__pb_push(lpq_pb_t *pb, void *array_p, size_t *count, void *item) {
  void ***arr = array_p;
  if (!item) {
    pb->oom = 1;
    return NULL;
  }
  void **p = realloc(*arr, (*count + 1) * sizeof **arr);
  if (!p) {
    pb->oom = 1;
    return NULL;
  }
  p[(*count)++] = item;
  *arr = p;
  return item;
}

char *lpq__pb_str(lpq_pb_t *pb, const char *s) {
  char *d = strdup(s ? s : "");
  if (!d)
    pb->oom = 1;
  return d;
}

Onnx__NodeProto *lpq__pb_node(lpq_pb_t *pb, const char *op, const char *domain, const char *name,
                              size_t nin, const char *const *in, size_t nout,
                              const char *const *out) {
  Onnx__NodeProto *n = malloc(sizeof *n);
  if (!n) {
    pb->oom = 1;
    return NULL;
  }
  onnx__node_proto__init(n);
  n->op_type = lpq__pb_str(pb, op);
  n->domain = domain ? lpq__pb_str(pb, domain) : NULL;
  n->name = lpq__pb_str(pb, name);
  for (size_t i = 0; i < nin; i++)
    lpq__pb_push(pb, &n->input, &n->n_input, lpq__pb_str(pb, in[i]));
  for (size_t i = 0; i < nout; i++)
    lpq__pb_push(pb, &n->output, &n->n_output, lpq__pb_str(pb, out[i]));
  return n;
}

static Onnx__AttributeProto *attr_new(lpq_pb_t *pb, Onnx__NodeProto *n, const char *name,
                                      Onnx__AttributeProto__AttributeType type) {
  Onnx__AttributeProto *a = malloc(sizeof *a);
  if (!a || !n) {
    free(a);
    pb->oom = 1;
    return NULL;
  }
  onnx__attribute_proto__init(a);
  a->name = lpq__pb_str(pb, name);
  a->has_type = 1;
  a->type = type;
  return lpq__pb_push(pb, &n->attribute, &n->n_attribute, a);
}

void lpq__pb_attr_int(lpq_pb_t *pb, Onnx__NodeProto *n, const char *name, int64_t v) {
  Onnx__AttributeProto *a = attr_new(pb, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
  if (a) {
    a->has_i = 1;
    a->i = v;
  }
}

void lpq__pb_attr_tensor(lpq_pb_t *pb, Onnx__NodeProto *n, const char *name,
                         Onnx__TensorProto *t) {
  Onnx__AttributeProto *a = attr_new(pb, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR);
  if (a)
    a->t = t;
  else if (t)
    onnx__tensor_proto__free_unpacked(t, NULL);
}

Onnx__TensorProto *lpq__pb_tensor(lpq_pb_t *pb, const char *name, int dtype, int ndim,
                                  const int64_t *dims, const void *raw, size_t raw_len) {
  Onnx__TensorProto *t = malloc(sizeof *t);
  if (!t) {
    pb->oom = 1;
    return NULL;
  }
  onnx__tensor_proto__init(t);
  t->name = name ? lpq__pb_str(pb, name) : NULL;
  t->has_data_type = 1;
  t->data_type = dtype;
  if (ndim > 0 && (t->dims = malloc((size_t)ndim * sizeof *t->dims)) != NULL) {
    memcpy(t->dims, dims, (size_t)ndim * sizeof *dims);
    t->n_dims = (size_t)ndim;
  } else if (ndim > 0) {
    pb->oom = 1;
  }
  t->has_raw_data = 1;
  t->raw_data.len = raw_len;
  t->raw_data.data = malloc(raw_len ? raw_len : 1);
  if (!t->raw_data.data)
    pb->oom = 1;
  else if (raw_len)
    memcpy(t->raw_data.data, raw, raw_len);
  return t;
}

Onnx__TensorProto *lpq__pb_scalar(lpq_pb_t *pb, const char *name, int dtype, const void *v,
                                  size_t size) {
  return lpq__pb_tensor(pb, name, dtype, 0, NULL, v, size);
}

/* A 4-bit tensor's raw_data: two elements a byte, the first in the low nibble (ONNX's
** INT4/UINT4 layout), an odd count's last high nibble 0. */
void lpq__pack_nibbles(const uint8_t *v, size_t count, uint8_t *out) {
  for (size_t i = 0; i < count; i += 2)
    out[i / 2] = (uint8_t)((v[i] & 0xf) | (i + 1 < count ? (v[i + 1] & 0xf) << 4 : 0));
}

Onnx__FunctionProto *lpq__pb_function(lpq_pb_t *pb, const char *domain, const char *name,
                                      size_t nin, const char *const *in, size_t nout,
                                      const char *const *out, int opset) {
  Onnx__FunctionProto *f = malloc(sizeof *f);
  Onnx__OperatorSetIdProto *o = malloc(sizeof *o);
  if (!f || !o) {
    free(f), free(o);
    pb->oom = 1;
    return NULL;
  }
  onnx__function_proto__init(f);
  onnx__operator_set_id_proto__init(o);
  f->name = lpq__pb_str(pb, name);
  f->domain = lpq__pb_str(pb, domain);
  for (size_t i = 0; i < nin; i++)
    lpq__pb_push(pb, &f->input, &f->n_input, lpq__pb_str(pb, in[i]));
  for (size_t i = 0; i < nout; i++)
    lpq__pb_push(pb, &f->output, &f->n_output, lpq__pb_str(pb, out[i]));
  o->domain = lpq__pb_str(pb, "");
  o->has_version = 1;
  o->version = opset;
  lpq__pb_push(pb, &f->opset_import, &f->n_opset_import, o);
  return f;
}

void lpq__pb_metadata(lpq_pb_t *pb, Onnx__ModelProto *m, const char *key, const char *value) {
  Onnx__StringStringEntryProto *e = malloc(sizeof *e);
  if (!e) {
    pb->oom = 1;
    return;
  }
  onnx__string_string_entry_proto__init(e);
  e->key = lpq__pb_str(pb, key);
  e->value = lpq__pb_str(pb, value);
  lpq__pb_push(pb, &m->metadata_props, &m->n_metadata_props, e);
}

void lpq__pb_opset(lpq_pb_t *pb, Onnx__ModelProto *m, const char *domain, int64_t version) {
  for (size_t i = 0; i < m->n_opset_import; i++) {
    const char *d = m->opset_import[i]->domain ? m->opset_import[i]->domain : "";
    if (strcmp(d, domain) == 0 || (!domain[0] && strcmp(d, "ai.onnx") == 0)) {
      m->opset_import[i]->has_version = 1;
      m->opset_import[i]->version = version;
      return;
    }
  }
  Onnx__OperatorSetIdProto *o = malloc(sizeof *o);
  if (!o) {
    pb->oom = 1;
    return;
  }
  onnx__operator_set_id_proto__init(o);
  o->domain = lpq__pb_str(pb, domain);
  o->has_version = 1;
  o->version = version;
  lpq__pb_push(pb, &m->opset_import, &m->n_opset_import, o);
}

int lpq__qdq_family(const lpq_numfmt_t *f) {
  return f->family == LPQ_FAM_INT ||
         (f->family == LPQ_FAM_MINIFLOAT && ((f->p[0] == 4 && f->p[1] == 3) ||
                                             (f->p[0] == 5 && f->p[1] == 2)));
}

int lpq__fp8_type(const lpq_numfmt_t *f) {
  return f->p[0] == 4 ? ONNX_DT_F8E4M3FN : ONNX_DT_F8E5M2;
}

const char *lpq__onnx_type_name(int t) {
  switch (t) {
  case ONNX_DT_I4: return "int4";
  case ONNX_DT_U4: return "uint4";
  case LPQ_DT_I8: return "int8";
  case LPQ_DT_U8: return "uint8";
  case ONNX_DT_I16: return "int16";
  case ONNX_DT_U16: return "uint16";
  case ONNX_DT_F8E4M3FN: return "float8e4m3fn";
  case ONNX_DT_F8E5M2: return "float8e5m2";
  default: return "float";
  }
}

/* The value multiplier a resolved format carries: INT and minifloat scale, afloat 2^bias,
** LP 2^-sf, posit 1. */
double lpq__fmt_scale(const lpq_numfmt_t *f) {
  if (f->family == LPQ_FAM_LP)
    return ldexp(1.0, -f->p[3]);
  return f->family == LPQ_FAM_POSIT ? 1.0 : f->scale;
}

/* Narrow storage of n codes (lpq's codes: two's complement over `bits` of sign and magnitude
** index) as `dtype`'s raw_data; *len gets its size. */
uint8_t *lpq__store_codes(const lpq_numfmt_t *f, const uint16_t *codes, size_t n, int *dtype,
                            size_t *len) {
  const int b = f->bits;
  const int qdq = lpq__qdq_family(f);
  *dtype = f->family == LPQ_FAM_INT ? (b <= 4 ? ONNX_DT_I4 : b <= 8 ? LPQ_DT_I8 : ONNX_DT_I16)
           : qdq                    ? lpq__fp8_type(f)
                                    : (b <= 4 ? ONNX_DT_U4 : b <= 8 ? LPQ_DT_U8 : ONNX_DT_U16);
  const int wide = *dtype == ONNX_DT_I16 || *dtype == ONNX_DT_U16;
  const int nib = *dtype == ONNX_DT_I4 || *dtype == ONNX_DT_U4;
  uint8_t *v = malloc(n ? n * 2 : 1), *out = nib ? malloc(n / 2 + 1) : v;
  if (!v || !out) {
    free(v);
    if (out != v)
      free(out);
    return NULL;
  }
  for (size_t i = 0; i < n; i++) {
    uint32_t c = codes[i], mask = (1u << b) - 1u, sign = (c >> (b - 1)) & 1u;
    uint32_t s; /* the stored bits */
    if (f->family == LPQ_FAM_INT) /* sign-extend: the integer itself */
      s = c & mask;
    else if (qdq) /* FP8: sign bit and magnitude index, which is the float8 pattern */
      s = (sign << 7) | (sign ? (0u - c) & mask : c);
    else
      s = c;
    if (wide) {
      uint16_t w16 = (uint16_t)(f->family == LPQ_FAM_INT && sign ? s | ~mask : s);
      memcpy(v + 2 * i, &w16, 2);
    } else {
      v[i] = (uint8_t)(f->family == LPQ_FAM_INT && sign ? s | ~mask : s);
    }
  }
  if (nib) {
    lpq__pack_nibbles(v, n, out);
    free(v);
  }
  *len = nib ? (n + 1) / 2 : wide ? 2 * n : n;
  return out;
}


float *lpq_act_sample(const float *x, size_t count, size_t *n) {
  size_t stride = count > LPQ_ACT_SAMPLE_MAX ? (count + LPQ_ACT_SAMPLE_MAX - 1) / LPQ_ACT_SAMPLE_MAX
                                             : 1;
  *n = (count + stride - 1) / stride;
  float *s = malloc((*n ? *n : 1) * sizeof *s);
  for (size_t i = 0, k = 0; s && i < count; i += stride)
    s[k++] = x[i];
  return s;
}


#define MODEL_MAX_BYTES ((size_t)2 << 30)

int lpq__onnx_read_model(const char *path, Onnx__ModelProto **m, lpq_error_t *err) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return lpq_errorf(err, LPQ_EIO, "%s: %s", path, strerror(errno));
  long n = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
  uint8_t *data = n >= 0 && (size_t)n <= MODEL_MAX_BYTES && fseek(f, 0, SEEK_SET) == 0
                      ? malloc((size_t)n + 1) : NULL;
  int ok = data && fread(data, 1, (size_t)n, f) == (size_t)n;
  fclose(f);
  *m = ok ? onnx__model_proto__unpack(NULL, (size_t)n, data) : NULL;
  free(data);
  if (!ok)
    return lpq_errorf(err, LPQ_EIO, "%s: cannot read (size %ld)", path, n);
  return *m && (*m)->graph ? 0 : lpq_errorf(err, LPQ_EFORMAT, "%s: not an ONNX model", path);
}

