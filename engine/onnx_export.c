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

/* Rounds n values x in place to format f: calibrated on x when f's scale depends on the data. */
static int round_values(const lpq_numfmt_t *f, float *x, size_t n, lpq_error_t *err) {
  lpq_numfmt_t r = *f;
  int rc = r.resolved ? 0 : lpq_numfmt_calibrate(&r, x, n, err);
  lp_quantizer_t *q = rc == 0 ? lpq_numfmt_quantizer(&r, err) : NULL;
  if (!q)
    return rc ? rc : (err ? err->code : LPQ_ENOMEM);
  rc = lp_quantize_f32(q, x, x, n, err);
  lp_quantizer_free(&q);
  return rc;
}

/* Rounds a float32 initializer in place (raw_data or float_data) to f; a per-channel format
** (auto_ch) takes one scale per output channel, `axis` of the initializer's dims (a Conv's 0, a
** Gemm's 0 or 1 by transB, a MatMul's last), each calibrated on its own channel. */
static int round_tensor(Onnx__TensorProto *t, const lpq_numfmt_t *f, int axis,
                        lpq_error_t *err) {
  if (t->data_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
    return lpq_errorf(err, LPQ_EUNSUP, "initializer '%s' is not float32", t->name);
  size_t n = t->has_raw_data ? t->raw_data.len / 4 : t->n_float_data;
  float *x = malloc((n ? n : 1) * sizeof *x);
  if (!x)
    return lpq_errorf(err, LPQ_ENOMEM, "out of memory");
  /* little-endian hosts (checked by the loader) */
  memcpy(x, t->has_raw_data ? (const void *)t->raw_data.data : (const void *)t->float_data, n * 4);
  int rc = 0;
  if (!f->per_channel) {
    rc = round_values(f, x, n, err);
  } else {
    size_t outer = 1, channels = 1, inner = 1;
    for (size_t d = 0; d < t->n_dims; d++) {
      size_t v = (size_t)t->dims[d];
      if ((int)d < axis)
        outer *= v;
      else if ((int)d == axis)
        channels = v;
      else
        inner *= v;
    }
    size_t slice = outer * inner;
    float *ch = malloc((slice ? slice : 1) * sizeof *ch);
    if (!ch || outer * channels * inner != n)
      rc = ch ? lpq_errorf(err, LPQ_EFORMAT, "initializer '%s': dims do not match its data",
                           t->name)
              : lpq_errorf(err, LPQ_ENOMEM, "out of memory");
    for (size_t c = 0; rc == 0 && c < channels; c++) { /* gather, round, scatter */
      for (size_t o = 0; o < outer; o++)
        memcpy(ch + o * inner, x + (o * channels + c) * inner, inner * sizeof *ch);
      lpq_numfmt_t one = *f;
      one.per_channel = 0; /* this channel's own sf, as the scorer takes it */
      if ((rc = round_values(&one, ch, outer * inner, err)) != 0)
        lpq_error_prefix(err, "channel %zu: ", c);
      for (size_t o = 0; rc == 0 && o < outer; o++)
        memcpy(x + (o * channels + c) * inner, ch + o * inner, inner * sizeof *ch);
    }
    free(ch);
  }
  if (rc == 0)
    memcpy(t->has_raw_data ? (void *)t->raw_data.data : (void *)t->float_data, x, n * 4);
  free(x);
  return rc;
}

/* The output-channel axis of a node's weight initializer. */
static int weight_axis(const Onnx__NodeProto *node, const Onnx__TensorProto *w) {
  if (node->op_type && strcmp(node->op_type, "MatMul") == 0)
    return w->n_dims ? (int)w->n_dims - 1 : 0;
  if (node->op_type && strcmp(node->op_type, "Gemm") == 0) {
    for (size_t i = 0; i < node->n_attribute; i++)
      if (node->attribute[i]->name && strcmp(node->attribute[i]->name, "transB") == 0)
        return node->attribute[i]->i ? 0 : 1;
    return 1; /* transB = 0: [K, N] */
  }
  return 0; /* Conv: [M, C/g, kH, kW] */
}

int lpq_onnx_export_rounded(const char *model_path, size_t nlayers, const char *const *names,
                            const lpq_numfmt_t *weight_formats, void **out, size_t *out_len,
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
    if (weight_formats[l].family == LPQ_FAM_FP32)
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
    rc = round_tensor(w, &weight_formats[l], weight_axis(node, w), err);
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

/* .lpw: "LPQW" | u32 version 2 | u32 layers; per layer: u32 name length, name bytes, i32 n, es,
** rs, sf, u32 per_channel (0 or 1; then i32 sf[M], one per output channel, and the layer's sf
** field is 0), u32 ndim, i64 dims[ndim], u64 count, then count codes of 1 byte (n <= 8) or 2
** bytes (little-endian), in the layout lpq runs the layer with (axis 0 the output channel; the
** weights of the loaded graph, BatchNormalization folded). All integers little-endian. Only
** LP weights (and fp32 ones, with no codes) are packed: other formats' codes are not LP's. */
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

int lpq_pack_weights(const lpq_graph_t *g, const lpq_numfmt_t *weight_formats, void **out,
                     size_t *out_len, lpq_error_t *err) {
  buf_t b = {0};
  size_t nl = lpq_graph_num_layers(g);
  put(&b, "LPQW", 4);
  put_u32(&b, 2);
  put_u32(&b, (uint32_t)nl);
  int rc = 0;
  for (size_t l = 0; rc == 0 && l < nl; l++) {
    const lpq_layer_t *L = lpq_graph_layer(g, l);
    const lpq_numfmt_t *f = &weight_formats[l];
    if (f->family != LPQ_FAM_FP32 && f->family != LPQ_FAM_LP) {
      rc = lpq_errorf(err, LPQ_EUNSUP, "layer '%s': .lpw packs LP codes; its format is %s",
                      L->name, lpq_family_name(f->family));
      break;
    }
    int is_lp = f->family == LPQ_FAM_LP;
    size_t channels = (size_t)L->weight_shape[0], per = L->weight_count / channels;
    lpq_numfmt_t *cf = calloc(channels, sizeof *cf); /* each channel's resolved format */
    if (!cf) {
      rc = lpq_errorf(err, LPQ_ENOMEM, "out of memory");
      break;
    }
    if (is_lp && (rc = lpq_numfmt_calibrate_channels(f, L->weight, channels, per, cf, err)) != 0) {
      lpq_error_prefix(err, "layer '%s': ", L->name);
      free(cf);
      break;
    }
    lp_format_t lf = is_lp ? lpq_numfmt_lp(&cf[0]) : (lp_format_t){0, 0, 0, 0};
    if (f->per_channel)
      lf.sf = 0;
    put_u32(&b, (uint32_t)strlen(L->name));
    put(&b, L->name, strlen(L->name));
    int32_t fv[4] = {lf.n, lf.es, lf.rs, lf.sf};
    put(&b, fv, sizeof fv);
    put_u32(&b, is_lp && f->per_channel);
    for (size_t c = 0; is_lp && f->per_channel && c < channels; c++) {
      int32_t sf = cf[c].p[3];
      put(&b, &sf, 4);
    }
    put_u32(&b, (uint32_t)L->weight_ndim);
    put(&b, L->weight_shape, (size_t)L->weight_ndim * sizeof(int64_t));
    uint64_t count = is_lp ? L->weight_count : 0; /* fp32 layers carry no codes */
    put(&b, &count, 8);
    size_t width = lf.n <= 8 ? 1 : 2;
    uint8_t *codes = count ? malloc(count * width) : NULL;
    if (count && !codes)
      rc = lpq_errorf(err, LPQ_ENOMEM, "out of memory");
    for (size_t c = 0; rc == 0 && count && c < channels; c++) {
      lp_format_t cl = lpq_numfmt_lp(&cf[f->per_channel ? c : 0]);
      lp_quantizer_t *q = lp_quantizer_new(&cl, err);
      if (!q) {
        rc = err ? err->code : LPQ_EINVAL;
        break;
      }
      rc = width == 1 ? lp_quantize_codes_u8(q, L->weight + c * per, codes + c * per, per, err)
                      : lp_quantize_codes_u16(q, L->weight + c * per,
                                              (uint16_t *)(void *)codes + c * per, per, err);
      lp_quantizer_free(&q);
      if (rc != 0)
        lpq_error_prefix(err, "layer '%s': ", L->name);
    }
    if (rc == 0 && count)
      put(&b, codes, count * width);
    free(codes);
    free(cf);
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
