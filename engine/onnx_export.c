/* engine/onnx_export.c: a candidate's deliverables: the ONNX model with every quantizable
** layer's weights rounded to its LP format (any ONNX runtime runs it), and the packed LP codes
** of those weights (.lpw, a small documented binary format). */
#include "engine/engine.h"
#include "onnx/onnx.pb-c.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MODEL_MAX_BYTES ((size_t)2 << 30)

static int read_file(const char *path, uint8_t **data, size_t *len, lpq_error_t *err) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return lpq_errorf(err, LPQ_EIO, "%s: %s", path, strerror(errno));
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  if (n < 0 || (size_t)n > MODEL_MAX_BYTES) {
    fclose(f);
    return lpq_errorf(err, LPQ_ERANGE, "%s: size %ld out of range", path, n);
  }
  *data = malloc((size_t)n + 1);
  if (!*data) {
    fclose(f);
    return lpq_errorf(err, LPQ_ENOMEM, "%s: out of memory", path);
  }
  size_t got = fread(*data, 1, (size_t)n, f);
  fclose(f);
  if (got != (size_t)n) {
    free(*data);
    return lpq_errorf(err, LPQ_EIO, "%s: short read", path);
  }
  *len = got;
  return 0;
}

/* The layer's node name as the engine names it ("<OpType>_<index>" for an unnamed node). */
static void node_name(const Onnx__NodeProto *n, size_t index, char *buf, size_t len) {
  if (n->name && n->name[0])
    snprintf(buf, len, "%s", n->name);
  else
    snprintf(buf, len, "%s_%zu", n->op_type ? n->op_type : "node", index);
}

/* Rounds a float32 initializer in place (raw_data or float_data). */
static int round_tensor(Onnx__TensorProto *t, const lp_format_t *f, lpq_error_t *err) {
  if (t->data_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
    return lpq_errorf(err, LPQ_EUNSUP, "initializer '%s' is not float32", t->name);
  lp_quantizer_t *q = lp_quantizer_new(f, err);
  if (!q)
    return err ? err->code : LPQ_ENOMEM;
  int rc = 0;
  if (t->has_raw_data) {
    size_t n = t->raw_data.len / 4;
    float *tmp = malloc((n ? n : 1) * sizeof *tmp);
    if (!tmp)
      rc = lpq_errorf(err, LPQ_ENOMEM, "out of memory");
    else {
      memcpy(tmp, t->raw_data.data, n * 4); /* little-endian hosts (checked by the loader) */
      rc = lp_quantize_f32(q, tmp, tmp, n, err);
      memcpy(t->raw_data.data, tmp, n * 4);
      free(tmp);
    }
  } else {
    rc = lp_quantize_f32(q, t->float_data, t->float_data, t->n_float_data, err);
  }
  lp_quantizer_free(&q);
  return rc;
}

int lpq_onnx_export_rounded(const char *model_path, size_t nlayers, const char *const *names,
                            const lp_format_t *weight_formats, void **out, size_t *out_len,
                            lpq_error_t *err) {
  uint8_t *data = NULL;
  size_t len = 0;
  int rc = read_file(model_path, &data, &len, err);
  if (rc != 0)
    return rc;
  Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, len, data);
  free(data);
  if (!m || !m->graph)
    return lpq_errorf(err, LPQ_EFORMAT, "%s: not an ONNX model", model_path);
  Onnx__GraphProto *gp = m->graph;
  size_t done = 0;
  for (size_t l = 0; rc == 0 && l < nlayers; l++) {
    if (weight_formats[l].n == 0)
      continue; /* fp32: the weights stay */
    const Onnx__NodeProto *node = NULL;
    for (size_t i = 0; i < gp->n_node && !node; i++) {
      char nm[512];
      node_name(gp->node[i], i, nm, sizeof nm);
      if (strcmp(nm, names[l]) == 0)
        node = gp->node[i];
    }
    if (!node || node->n_input < 2) {
      rc = lpq_errorf(err, LPQ_ENOTFOUND, "%s: no node '%s' with a weight input", model_path,
                      names[l]);
      break;
    }
    Onnx__TensorProto *w = NULL;
    for (size_t i = 0; i < gp->n_initializer && !w; i++)
      if (strcmp(gp->initializer[i]->name, node->input[1]) == 0)
        w = gp->initializer[i];
    if (!w) {
      rc = lpq_errorf(err, LPQ_EUNSUP, "%s: layer '%s': its weight '%s' is not an initializer "
                      "(a Constant node); lpq exports initializer weights", model_path, names[l],
                      node->input[1]);
      break;
    }
    rc = round_tensor(w, &weight_formats[l], err);
    if (rc != 0)
      lpq_error_prefix(err, "layer '%s': ", names[l]);
    done++;
  }
  if (rc == 0) {
    size_t n = onnx__model_proto__get_packed_size(m);
    *out = malloc(n ? n : 1);
    if (!*out)
      rc = lpq_errorf(err, LPQ_ENOMEM, "out of memory");
    else
      *out_len = onnx__model_proto__pack(m, *out);
  }
  onnx__model_proto__free_unpacked(m, NULL);
  (void)done;
  return rc;
}

/* .lpw: "LPQW" | u32 version 1 | u32 layers; per layer: u32 name length, name bytes, i32 n, es,
** rs, sf, u32 ndim, i64 dims[ndim], u64 count, then count codes of 1 byte (n <= 8) or 2 bytes
** (little-endian), in the layout lpq runs the layer with (axis 0 the output channel; the
** weights of the loaded graph, BatchNormalization folded). All integers little-endian. */
typedef struct buf_t {
  uint8_t *p;
  size_t len, cap;
  int oom;
} buf_t;

static void put(buf_t *b, const void *src, size_t n) {
  if (b->oom)
    return;
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n)
      cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (!p) {
      b->oom = 1;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, src, n);
  b->len += n;
}

static void put_u32(buf_t *b, uint32_t v) { put(b, &v, 4); }

int lpq_pack_weights(const lpq_graph_t *g, const lp_format_t *weight_formats, void **out,
                     size_t *out_len, lpq_error_t *err) {
  buf_t b = {0};
  size_t nl = lpq_graph_num_layers(g);
  put(&b, "LPQW", 4);
  put_u32(&b, 1);
  put_u32(&b, (uint32_t)nl);
  int rc = 0;
  for (size_t l = 0; rc == 0 && l < nl; l++) {
    const lpq_layer_t *L = lpq_graph_layer(g, l);
    const lp_format_t *f = &weight_formats[l];
    put_u32(&b, (uint32_t)strlen(L->name));
    put(&b, L->name, strlen(L->name));
    int32_t fv[4] = {f->n, f->es, f->rs, f->sf};
    put(&b, fv, sizeof fv);
    put_u32(&b, (uint32_t)L->weight_ndim);
    put(&b, L->weight_shape, (size_t)L->weight_ndim * sizeof(int64_t));
    uint64_t count = f->n ? L->weight_count : 0; /* fp32 layers carry no codes */
    put(&b, &count, 8);
    if (!count)
      continue;
    lp_quantizer_t *q = lp_quantizer_new(f, err);
    size_t width = f->n <= 8 ? 1 : 2;
    void *codes = q ? malloc(count * width) : NULL;
    if (!q || !codes) {
      rc = q ? lpq_errorf(err, LPQ_ENOMEM, "out of memory") : (err ? err->code : LPQ_EINVAL);
    } else {
      rc = width == 1 ? lp_quantize_codes_u8(q, L->weight, codes, count, err)
                      : lp_quantize_codes_u16(q, L->weight, codes, count, err);
      if (rc == 0)
        put(&b, codes, count * width);
      else
        lpq_error_prefix(err, "layer '%s': ", L->name);
    }
    free(codes);
    lp_quantizer_free(&q);
  }
  if (rc == 0 && b.oom)
    rc = lpq_errorf(err, LPQ_ENOMEM, "out of memory");
  if (rc != 0) {
    free(b.p);
    return rc;
  }
  *out = b.p;
  *out_len = b.len;
  return 0;
}
