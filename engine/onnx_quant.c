/* engine/onnx_quant.c: the quantized ONNX export (docs/FORMATS.md). Each quantizable layer of
** the model keeps its node; its weight initializer becomes narrow storage plus a decoding node,
** and its input a quantizing node, so the exported model computes what lpq's quantized pass
** computes:
**   int<k> / int<k,ch>      weights intK (int4, int8, int16) -> DequantizeLinear (axis if ch);
**                           activations Clip(+-max) -> QuantizeLinear/DequantizeLinear (int8/16)
**   fp8_e4m3 / fp8_e5m2     float8e4m3fn / float8e5m2 -> DequantizeLinear; activations QDQ
**   lp, posit, afloat, other minifloats
**                           codes uint4/uint8/uint16 + value table -> lpq.LPDequantize;
**                           activations lpq.LPQuantize (lpq's thresholds: same rounding)
** The model moves to opset 21 / IR 10 (4-bit and FP8 types). */
#include "engine/onnx_quant.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static void add_pre(qx_t *x, xl_t *l, Onnx__NodeProto *n) {
  lpq__pb_push(&x->pb, &l->pre, &l->npre, n);
}

/* The layer's codes in lpq's layout (axis 0 the output channel). */
static int weight_codes(const xl_t *l, uint16_t *codes, lpq_error_t *err) {
  const lpq_layer_t *L = l->L;
  size_t ch = (size_t)L->weight_shape[0], per = L->weight_count / ch;
  size_t parts = l->w.per_channel ? ch : 1, len = l->w.per_channel ? per : L->weight_count;
  int rc = 0;
  for (size_t c = 0; rc == 0 && c < parts; c++) {
    lp_quantizer_t *q = lpq_numfmt_quantizer(l->w.per_channel ? &l->wch[c] : &l->w, err);
    if (!q)
      return err ? err->code : LPQ_ENOMEM;
    rc = lp_quantize_codes_u16(q, L->weight + c * len, codes + c * len, len, err);
    lp_quantizer_free(&q);
  }
  return rc;
}

/* Replaces the layer's weight input by its narrow form and a decoding node. */
static int export_weight(qx_t *x, xl_t *l) {
  const lpq_layer_t *L = l->L;
  const size_t n = L->weight_count, ch = (size_t)L->weight_shape[0];
  const Onnx__TensorProto *w = l->winit;
  uint16_t *codes = malloc(n * sizeof *codes), *oc = malloc(n * sizeof *oc);
  int rc = codes && oc ? weight_codes(l, codes, x->err)
                       : lpq_errorf(x->err, LPQ_ENOMEM, "out of memory");
  if (rc != 0) {
    free(codes), free(oc);
    return rc;
  }
  if (l->transposed) { /* lpq's [N, K] back to the model's [K, N] */
    size_t N = ch, K = n / ch;
    for (size_t a = 0; a < N; a++)
      for (size_t k = 0; k < K; k++)
        oc[k * N + a] = codes[a * K + k];
  } else {
    memcpy(oc, codes, n * sizeof *oc);
  }
  free(codes);
  char base[600], qname[640], sname[640], out[640];
  snprintf(base, sizeof base, "lpq/%s", w->name);
  snprintf(qname, sizeof qname, "%s/codes", base);
  snprintf(sname, sizeof sname, "%s/scale", base);
  snprintf(out, sizeof out, "%s/dequantized", base);
  int dtype;
  size_t len;
  uint8_t *raw = lpq__store_codes(&l->w, oc, n, &dtype, &len);
  free(oc);
  if (!raw)
    return lpq_errorf(x->err, LPQ_ENOMEM, "out of memory");
  lpq__qx_add_init(x, lpq__pb_tensor(&x->pb, qname, dtype, (int)w->n_dims, w->dims, raw, len));
  free(raw);
  const int qdq = lpq__qdq_family(&l->w);
  float table_scale = 1.0f;
  const char *tname = NULL;
  if (!qdq) {
    /* the table of every code at the base scale (per channel the sf = 0 one), shared by the
    ** layers of that base format; the layer multiplies by its power of two (per channel 2^-sf) */
    lpq_numfmt_t tf = l->w.per_channel ? l->wch[0] : l->w;
    if (l->w.per_channel)
      tf.p[3] = 0;
    size_t ncodes = (size_t)1 << tf.bits;
    float *table = malloc(ncodes * sizeof *table);
    uint16_t *all = malloc(ncodes * sizeof *all);
    lp_quantizer_t *q = table && all ? lpq_numfmt_quantizer(&tf, x->err) : NULL;
    if (!q) {
      free(table), free(all);
      return x->err && x->err->code ? x->err->code : lpq_errorf(x->err, LPQ_ENOMEM, "out of memory");
    }
    for (size_t c = 0; c < ncodes; c++)
      all[c] = (uint16_t)c;
    lp_dequantize_u16(q, all, table, ncodes);
    lp_quantizer_free(&q);
    table_scale = lpq__qx_unscale(&tf, table, ncodes);
    tname = lpq__qx_table(x, "table", table, ncodes);
    free(table), free(all);
    if (!tname)
      return lpq_errorf(x->err, LPQ_ENOMEM, "out of memory");
  }
  size_t nscale = l->w.per_channel ? ch : 1;
  float *scale = malloc(nscale * sizeof *scale);
  if (!scale)
    return lpq_errorf(x->err, LPQ_ENOMEM, "out of memory");
  for (size_t c = 0; c < nscale; c++) /* a per-tensor table's own power of two, or 1 */
    scale[c] = (float)(!qdq && !l->w.per_channel ? table_scale
                                                 : lpq__fmt_scale(l->w.per_channel ? &l->wch[c] : &l->w));
  int64_t sdims[LPQ_MAX_DIMS] = {(int64_t)ch};
  int sndim = l->w.per_channel ? 1 : 0;
  if (l->w.per_channel && !qdq) /* broadcast along the channel axis */
    for (int d = l->axis + 1; d < (int)w->n_dims; d++)
      sdims[sndim++] = 1;
  lpq__qx_add_init(x, lpq__pb_tensor(&x->pb, sname, LPQ_DT_F32, sndim, sdims, scale, nscale * 4));
  free(scale);
  Onnx__NodeProto *dn;
  if (qdq) {
    const char *in[] = {qname, sname}, *o[] = {out};
    dn = lpq__pb_node(&x->pb, "DequantizeLinear", NULL, out, 2, in, 1, o);
    if (l->w.per_channel)
      lpq__pb_attr_int(&x->pb, dn, "axis", l->axis);
  } else {
    const char *in[] = {qname, tname, sname}, *o[] = {out};
    dn = lpq__pb_node(&x->pb, "LPDequantize", LPQ_ONNX_DOMAIN, out, 3, in, 1, o);
    x->use_deq = 1;
  }
  add_pre(x, l, dn);
  lpq__qx_enc_format(x, l, &l->w, w->name, "weight");
  lpq__qx_enc_printf(x, ", \"storage\": \"%s\", \"codes\": ", lpq__onnx_type_name(dtype));
  lpq__qx_enc_str(x, qname);
  if (!qdq) {
    lpq__qx_enc_printf(x, ", \"table\": ");
    lpq__qx_enc_str(x, tname);
  }
  lpq__qx_enc_printf(x, "}");
  free(l->node->input[1]);
  l->node->input[1] = lpq__pb_str(&x->pb, out);
  return 0;
}

/* Puts a quantizing node before the layer's input. */
static int export_activation(qx_t *x, xl_t *l) {
  const lpq_numfmt_t *f = &l->a;
  char base[600], out[640], n1[640], n2[640], n3[640];
  snprintf(base, sizeof base, "lpq/%s/input", l->L->name);
  snprintf(out, sizeof out, "%s/quantized", base);
  const char *xin = l->node->input[0];
  lp_quantizer_t *q = lpq_numfmt_quantizer(f, x->err);
  if (!q)
    return lpq_error_prefix(x->err, "layer '%s' activations: ", l->L->name);
  uint32_t npos = lp_quantizer_magnitudes(q, NULL, NULL);
  float *thr = malloc((2 * (size_t)npos + 1) * sizeof *thr), *mag = thr + npos;
  if (!thr) {
    lp_quantizer_free(&q);
    return lpq_errorf(x->err, LPQ_ENOMEM, "out of memory");
  }
  lp_quantizer_magnitudes(q, thr, mag);
  lp_quantizer_free(&q);
  if (lpq__qdq_family(f)) {
    float scale = (float)f->scale;
    snprintf(n1, sizeof n1, "%s/scale", base);
    snprintf(n2, sizeof n2, "%s/zero_point", base);
    lpq__qx_add_init(x, lpq__pb_scalar(&x->pb, n1, LPQ_DT_F32, &scale, 4));
    const char *qin = xin;
    if (f->family == LPQ_FAM_INT) { /* symmetric: +-max, never QuantizeLinear's -2^(k-1) */
      int16_t zero = 0;
      lpq__qx_add_init(x, lpq__pb_scalar(&x->pb, n2, f->bits <= 8 ? LPQ_DT_I8 : ONNX_DT_I16, &zero,
                                 f->bits <= 8 ? 1 : 2));
      char lo[640], hi[640];
      float vlo = -mag[npos], vhi = mag[npos];
      snprintf(lo, sizeof lo, "%s/min", base);
      snprintf(hi, sizeof hi, "%s/max", base);
      snprintf(n3, sizeof n3, "%s/clipped", base);
      lpq__qx_add_init(x, lpq__pb_scalar(&x->pb, lo, LPQ_DT_F32, &vlo, 4));
      lpq__qx_add_init(x, lpq__pb_scalar(&x->pb, hi, LPQ_DT_F32, &vhi, 4));
      const char *cin[] = {xin, lo, hi}, *co[] = {n3};
      add_pre(x, l, lpq__pb_node(&x->pb, "Clip", NULL, n3, 3, cin, 1, co));
      qin = n3;
    } else {
      uint8_t zero = 0;
      lpq__qx_add_init(x, lpq__pb_scalar(&x->pb, n2, lpq__fp8_type(f), &zero, 1));
    }
    char qn[640];
    snprintf(qn, sizeof qn, "%s/q", base);
    const char *qi[] = {qin, n1, n2}, *qo[] = {qn}, *di[] = {qn, n1, n2}, *dout[] = {out};
    add_pre(x, l, lpq__pb_node(&x->pb, "QuantizeLinear", NULL, qn, 3, qi, 1, qo));
    add_pre(x, l, lpq__pb_node(&x->pb, "DequantizeLinear", NULL, out, 3, di, 1, dout));
  } else {
    int steps = 1;
    while (((size_t)1 << steps) - 1 < npos)
      steps++;
    if (steps > x->q_steps)
      x->q_steps = steps;
    /* both tables at the base scale, shared by every layer of the base format: the layer
    ** divides |x| by its power of two before the search and multiplies the magnitude after */
    float scale = lpq__qx_unscale(f, thr, 2 * (size_t)npos + 1);
    const char *tn = lpq__qx_table(x, "thresholds", thr, npos);
    const char *mn = tn ? lpq__qx_table(x, "magnitudes", mag, (size_t)npos + 1) : NULL;
    snprintf(n3, sizeof n3, "%s/scale", base);
    lpq__qx_add_init(x, lpq__pb_scalar(&x->pb, n3, LPQ_DT_F32, &scale, 4));
    if (!mn) {
      free(thr);
      return lpq_errorf(x->err, LPQ_ENOMEM, "out of memory");
    }
    snprintf(n1, sizeof n1, "%s", tn);
    snprintf(n2, sizeof n2, "%s", mn);
    const char *in[] = {xin, n1, n2, n3}, *o[] = {out};
    add_pre(x, l, lpq__pb_node(&x->pb, "LPQuantize", LPQ_ONNX_DOMAIN, out, 4, in, 1, o));
  }
  free(thr);
  lpq__qx_enc_format(x, l, f, xin, "activation");
  if (!lpq__qdq_family(f)) {
    lpq__qx_enc_printf(x, ", \"thresholds\": ");
    lpq__qx_enc_str(x, n1);
    lpq__qx_enc_printf(x, ", \"magnitudes\": ");
    lpq__qx_enc_str(x, n2);
  }
  lpq__qx_enc_printf(x, "}");
  free(l->node->input[0]);
  l->node->input[0] = lpq__pb_str(&x->pb, out);
  return 0;
}


/* Writes the layer's bias correction into the model as lpq adds it: a Conv's bias becomes
** bias + shift (one float addition per channel, as the engine's), a Gemm or MatMul gets
** Add(shift) on its output, before anything that follows (the engine adds it to the output). */
static int export_bias(qx_t *x, xl_t *l) {
  const lpq_layer_t *L = l->L;
  const size_t M = (size_t)L->weight_shape[0];
  Onnx__NodeProto *n = l->node;
  char name[640], raw[640];
  int64_t dim = (int64_t)M;
  if (strcmp(n->op_type, "Conv") == 0) {
    int has = n->n_input > 2 && n->input[2][0];
    if (has != (L->bias != NULL) || (L->bias && L->bias_count != M))
      return lpq_errorf(x->err, LPQ_EUNSUP, "layer '%s': lpq runs another bias than its node "
                        "reads; export cannot correct it", L->name);
    float *b = malloc(M * sizeof *b);
    if (!b)
      return lpq_errorf(x->err, LPQ_ENOMEM, "out of memory");
    for (size_t c = 0; c < M; c++)
      b[c] = (L->bias ? L->bias[c] : 0.0f) + l->shift[c];
    snprintf(name, sizeof name, "lpq/%s/corrected_bias", L->name);
    lpq__qx_add_init(x, lpq__pb_tensor(&x->pb, name, LPQ_DT_F32, 1, &dim, b, M * sizeof *b));
    free(b);
    if (has) {
      l->old_bias = n->input[2];
      n->input[2] = lpq__pb_str(&x->pb, name);
    } else {
      lpq__pb_push(&x->pb, &n->input, &n->n_input, lpq__pb_str(&x->pb, name));
    }
  } else {
    snprintf(name, sizeof name, "lpq/%s/bias_shift", L->name);
    snprintf(raw, sizeof raw, "lpq/%s/uncorrected", L->name);
    lpq__qx_add_init(x, lpq__pb_tensor(&x->pb, name, LPQ_DT_F32, 1, &dim, l->shift,
                                       M * sizeof *l->shift));
    const char *in[] = {raw, name}, *out[] = {n->output[0]};
    lpq__pb_push(&x->pb, &l->post, &l->npost, lpq__pb_node(&x->pb, "Add", NULL, name, 2, in, 1,
                                                           out));
    free(n->output[0]);
    n->output[0] = lpq__pb_str(&x->pb, raw);
  }
  return x->pb.oom ? lpq_errorf(x->err, LPQ_ENOMEM, "out of memory") : 0;
}

static int sample_input(void *user, size_t layer, float *x, size_t count) {
  qx_t *q = user;
  xl_t *l = &q->xl[layer];
  if (l->a.family == LPQ_FAM_FP32 || l->a.resolved || l->sample)
    return 0;
  return (l->sample = lpq_act_sample(x, count, &l->nsample)) ? 0 : LPQ_ENOMEM;
}

/* Resolves every layer's formats as lpq's scorer does: weights on the layer's (folded) weight,
** per channel on each channel; activations on a strided sample of the FP input over calib. */
static int resolve_formats(qx_t *x, const lpq_numfmt_t *w, const lpq_numfmt_t *a,
                           const float *calib) {
  int need_pass = 0;
  for (size_t i = 0; i < x->nl; i++) {
    xl_t *l = &x->xl[i];
    const lpq_layer_t *L = l->L = lpq_graph_layer(x->g, i);
    l->w = w[i];
    l->a = a[i];
    if (l->a.per_channel)
      return lpq_errorf(x->err, LPQ_EINVAL, "layer '%s': per-channel formats apply to weights "
                        "only (activation format %s)", L->name, lpq_family_name(a[i].family));
    size_t ch = (size_t)L->weight_shape[0];
    int rc = 0;
    if (l->w.family != LPQ_FAM_FP32 && l->w.per_channel) {
      if (!(l->wch = malloc(ch * sizeof *l->wch)))
        return lpq_errorf(x->err, LPQ_ENOMEM, "out of memory");
      rc = lpq_numfmt_calibrate_channels(&l->w, L->weight, ch, L->weight_count / ch, l->wch,
                                         x->err);
      if (rc == 0)
        l->w.bits = l->wch[0].bits;
    } else if (l->w.family != LPQ_FAM_FP32 && !l->w.resolved) {
      rc = lpq_numfmt_calibrate(&l->w, L->weight, L->weight_count, x->err);
    }
    if (rc != 0)
      return lpq_error_prefix(x->err, "layer '%s' weights: ", L->name);
    if (l->a.family != LPQ_FAM_FP32 && !l->a.resolved)
      need_pass = 1;
  }
  if (!need_pass)
    return 0;
  if (!calib)
    return lpq_errorf(x->err, LPQ_EINVAL, "the config's activation formats are calibrated on "
                      "data: give calibration inputs (--calib-data)");
  lpq_exec_t *ex = lpq_exec_new(x->g, x->err);
  if (!ex)
    return x->err ? x->err->code : LPQ_ENOMEM;
  lpq_tensor_info_t out;
  lpq_graph_output(x->g, 0, &out);
  float *y = malloc(out.count * sizeof *y);
  lpq_hooks_t hooks = {.user = x, .input = sample_input};
  int rc = y ? lpq_exec_run(ex, calib, y, &hooks, x->err)
             : lpq_errorf(x->err, LPQ_ENOMEM, "out of memory");
  free(y);
  lpq_exec_free(&ex);
  for (size_t i = 0; rc == 0 && i < x->nl; i++) {
    xl_t *l = &x->xl[i];
    if (l->a.family != LPQ_FAM_FP32 && !l->a.resolved &&
        (rc = lpq_numfmt_calibrate(&l->a, l->sample, l->nsample, x->err)) != 0)
      lpq_error_prefix(x->err, "layer '%s' activations: ", l->L->name);
  }
  return rc;
}

static void node_name(const Onnx__NodeProto *n, size_t index, char *buf, size_t len) {
  if (n->name && n->name[0])
    snprintf(buf, len, "%s", n->name);
  else
    snprintf(buf, len, "%.60s_%zu", n->op_type ? n->op_type : "node", index);
}

/* Finds the layer's node and weight initializer, and checks that the initializer holds what
** lpq runs (a weight lpq changed at load, e.g. a folded BatchNormalization, is refused). */
static int bind_layer(qx_t *x, xl_t *l) {
  Onnx__GraphProto *gp = x->m->graph;
  const lpq_layer_t *L = l->L;
  for (size_t i = 0; i < gp->n_node && !l->node; i++) {
    char nm[512];
    node_name(gp->node[i], i, nm, sizeof nm);
    if (strcmp(nm, L->name) == 0)
      l->node = gp->node[i];
  }
  if (!l->node || l->node->n_input < 2)
    return lpq_errorf(x->err, LPQ_ENOTFOUND, "layer '%s': no such node with a weight input",
                      L->name);
  for (size_t i = 0; i < gp->n_initializer && !l->winit; i++)
    if (gp->initializer[i]->name && strcmp(gp->initializer[i]->name, l->node->input[1]) == 0)
      l->winit = gp->initializer[i];
  const Onnx__TensorProto *w = l->winit;
  if (!w || w->data_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
    return lpq_errorf(x->err, LPQ_EUNSUP, "layer '%s': its weight '%s' is not a float32 "
                      "initializer; lpq exports initializer weights", L->name,
                      l->node->input[1]);
  const char *op = l->node->op_type;
  l->axis = 0;
  if (strcmp(op, "MatMul") == 0) {
    l->axis = 1;
  } else if (strcmp(op, "Gemm") == 0) {
    l->axis = 1;
    for (size_t i = 0; i < l->node->n_attribute; i++)
      if (l->node->attribute[i]->name && !strcmp(l->node->attribute[i]->name, "transB"))
        l->axis = l->node->attribute[i]->i ? 0 : 1;
  }
  l->transposed = l->axis == 1;
  if (l->transposed && w->n_dims != 2)
    return lpq_errorf(x->err, LPQ_EUNSUP, "layer '%s': a %zu-D weight; export handles 2-D "
                      "MatMul/Gemm weights", L->name, w->n_dims);
  size_t n = w->has_raw_data ? w->raw_data.len / 4 : w->n_float_data;
  if (n != L->weight_count)
    return lpq_errorf(x->err, LPQ_EFORMAT, "layer '%s': weight '%s' has %zu values, lpq runs "
                      "%zu", L->name, w->name, n, L->weight_count);
  const float *src = w->has_raw_data ? (const float *)(const void *)w->raw_data.data
                                     : w->float_data;
  size_t N = (size_t)L->weight_shape[0], K = n / N;
  for (size_t i = 0; i < n; i++) {
    float v;
    memcpy(&v, l->transposed ? src + (i % K) * N + i / K : src + i, sizeof v);
    if (memcmp(&v, &L->weight[i], sizeof v) != 0)
      return lpq_errorf(x->err, LPQ_EUNSUP, "layer '%s': lpq runs other weights than the "
                        "initializer '%s' holds (a BatchNormalization folded at load?); export "
                        "needs models whose quantized layers' weights are initializers as run",
                        L->name, w->name);
  }
  return 0;
}

/* Drops a float weight nothing reads any more (from the initializers and graph inputs). */
static void drop_unused(Onnx__GraphProto *gp, const char *name) {
  for (size_t i = 0; i < gp->n_node; i++)
    for (size_t k = 0; k < gp->node[i]->n_input; k++)
      if (gp->node[i]->input[k] && strcmp(gp->node[i]->input[k], name) == 0)
        return;
  for (size_t i = 0; i < gp->n_output; i++)
    if (gp->output[i]->name && strcmp(gp->output[i]->name, name) == 0)
      return;
  for (size_t i = 0; i < gp->n_input; i++)
    if (gp->input[i]->name && strcmp(gp->input[i]->name, name) == 0) {
      onnx__value_info_proto__free_unpacked(gp->input[i], NULL);
      memmove(gp->input + i, gp->input + i + 1, (--gp->n_input - i) * sizeof *gp->input);
      break;
    }
  for (size_t i = 0; i < gp->n_initializer; i++)
    if (strcmp(gp->initializer[i]->name, name) == 0) {
      onnx__tensor_proto__free_unpacked(gp->initializer[i], NULL);
      memmove(gp->initializer + i, gp->initializer + i + 1,
              (--gp->n_initializer - i) * sizeof *gp->initializer);
      return;
    }
}

/* Moves the model to opset 21: checks its opset, and gives Reduce* nodes of opsets below 18
** their axes as an input (the attribute became one in opset 18; ReduceSum's in 13). */
static int upgrade_opset(qx_t *x) {
  int opset = 1;
  for (size_t i = 0; i < x->m->n_opset_import; i++) {
    const char *d = x->m->opset_import[i]->domain;
    if (!d || !d[0] || !strcmp(d, "ai.onnx"))
      opset = (int)x->m->opset_import[i]->version;
  }
  if (opset < 13 || opset > 21)
    return lpq_errorf(x->err, LPQ_EUNSUP, "the model's opset is %d; export writes opset 21 and "
                      "takes models of opsets 13..21", opset);
  const Onnx__GraphProto *gp = x->m->graph;
  for (size_t i = 0; opset < 18 && i < gp->n_node; i++) {
    Onnx__NodeProto *n = gp->node[i];
    for (size_t k = 0; !strncmp(n->op_type, "Reduce", 6) && k < n->n_attribute; k++) {
      Onnx__AttributeProto *at = n->attribute[k];
      if (strcmp(at->name, "axes") != 0 || !strcmp(n->op_type, "ReduceSum"))
        continue;
      char name[600];
      int64_t count = (int64_t)at->n_ints;
      snprintf(name, sizeof name, "lpq/%s/axes", n->name ? n->name : n->op_type);
      lpq__qx_add_init(x, lpq__pb_tensor(&x->pb, name, LPQ_DT_I64, 1, &count, at->ints, at->n_ints * 8));
      lpq__pb_push(&x->pb, &n->input, &n->n_input, lpq__pb_str(&x->pb, name));
      onnx__attribute_proto__free_unpacked(at, NULL);
      memmove(n->attribute + k, n->attribute + k + 1, (--n->n_attribute - k) * sizeof *n->attribute);
      break;
    }
  }
  return x->pb.oom ? lpq_errorf(x->err, LPQ_ENOMEM, "out of memory") : 0;
}

static int rewrite(qx_t *x) {
  Onnx__GraphProto *gp = x->m->graph;
  Onnx__NodeProto **nodes = NULL;
  size_t nn = 0;
  for (size_t i = 0; i < gp->n_node; i++) {
    for (size_t l = 0; l < x->nl; l++)
      if (x->xl[l].node == gp->node[i])
        for (size_t k = 0; k < x->xl[l].npre; k++)
          lpq__pb_push(&x->pb, &nodes, &nn, x->xl[l].pre[k]);
    lpq__pb_push(&x->pb, &nodes, &nn, gp->node[i]);
    for (size_t l = 0; l < x->nl; l++)
      if (x->xl[l].node == gp->node[i])
        for (size_t k = 0; k < x->xl[l].npost; k++)
          lpq__pb_push(&x->pb, &nodes, &nn, x->xl[l].post[k]);
  }
  if (x->pb.oom) {
    free(nodes);
    return lpq_errorf(x->err, LPQ_ENOMEM, "out of memory");
  }
  for (size_t l = 0; l < x->nl; l++) { /* the nodes moved into the graph's list */
    free(x->xl[l].pre);
    free(x->xl[l].post);
    x->xl[l].pre = x->xl[l].post = NULL;
    x->xl[l].npre = x->xl[l].npost = 0;
  }
  free(gp->node);
  gp->node = nodes;
  gp->n_node = nn;
  lpq__qx_pad_tables(x);
  for (size_t l = 0; l < x->nl; l++) {
    xl_t *L = &x->xl[l];
    if (L->old_bias) {
      drop_unused(gp, L->old_bias);
      free(L->old_bias);
      L->old_bias = NULL;
    }
    if (L->w.family != LPQ_FAM_FP32 && L->winit) {
      char *name = strdup(L->winit->name);
      if (name)
        drop_unused(gp, name);
      free(name);
      L->winit = NULL;
    }
  }
  if (x->use_deq)
    lpq__pb_push(&x->pb, &x->m->functions, &x->m->n_functions, lpq__fn_lpdequantize(&x->pb));
  if (x->q_steps)
    lpq__pb_push(&x->pb, &x->m->functions, &x->m->n_functions,
                 lpq__fn_lpquantize(&x->pb, x->q_steps));
  lpq__pb_opset(&x->pb, x->m, "", 21);
  if (x->use_deq || x->q_steps)
    lpq__pb_opset(&x->pb, x->m, LPQ_ONNX_DOMAIN, 1);
  x->m->has_ir_version = 1;
  x->m->ir_version = 10; /* 4-bit types */
  free(x->m->producer_name);
  x->m->producer_name = lpq__pb_str(&x->pb, "lpq");
  for (size_t l = 0; l < x->nl; l++) {
    char key[600], val[128], wt[LPQ_NUMFMT_TEXT_MAX], at[LPQ_NUMFMT_TEXT_MAX];
    snprintf(key, sizeof key, "lpq.layer.%s", x->xl[l].L->name);
    snprintf(val, sizeof val, "w=%s a=%s", lpq_numfmt_str(&x->xl[l].w, wt, sizeof wt),
             lpq_numfmt_str(&x->xl[l].a, at, sizeof at));
    lpq__pb_metadata(&x->pb, x->m, key, val);
  }
  lpq__pb_metadata(&x->pb, x->m, "lpq.encodings", x->meta.p ? x->meta.p : "");
  return x->pb.oom ? lpq_errorf(x->err, LPQ_ENOMEM, "out of memory") : 0;
}

int lpq_onnx_export_quantized(const char *model_path, const lpq_graph_t *g,
                              const lpq_numfmt_t *w, const lpq_numfmt_t *a, const float *calib,
                              const float *const *bias_shift, lpq_qexport_t *out,
                              lpq_error_t *err) {
  if (!model_path || !g || !out || (lpq_graph_num_layers(g) && (!w || !a)))
    return lpq_errorf(err, LPQ_EINVAL, "export: NULL argument");
  memset(out, 0, sizeof *out);
  qx_t x = {.g = g, .nl = lpq_graph_num_layers(g), .err = err};
  x.xl = calloc(x.nl + 1, sizeof *x.xl);
  int rc = x.xl ? resolve_formats(&x, w, a, calib) : lpq_errorf(err, LPQ_ENOMEM, "out of memory");
  if (rc == 0)
    rc = lpq__onnx_read_model(model_path, &x.m, err);
  if (rc == 0)
    rc = upgrade_opset(&x);
  lpq__qx_enc_printf(&x, "{\"version\": 1, \"producer\": \"lpq\", \"tensors\": [");
  for (size_t l = 0; rc == 0 && l < x.nl; l++) {
    xl_t *L = &x.xl[l];
    if (L->w.family == LPQ_FAM_FP32 && L->a.family == LPQ_FAM_FP32)
      continue;
    if ((rc = bind_layer(&x, L)) == 0 && L->w.family != LPQ_FAM_FP32)
      rc = export_weight(&x, L);
    if (rc == 0 && L->a.family != LPQ_FAM_FP32)
      rc = export_activation(&x, L);
    if (rc == 0 && bias_shift && bias_shift[l] && L->w.family != LPQ_FAM_FP32 &&
        (L->shift = bias_shift[l]) != NULL)
      rc = export_bias(&x, L);
  }
  if (rc == 0 && bias_shift)
    lpq__pb_metadata(&x.pb, x.m, "lpq.bias_correction", "on");
  lpq__qx_enc_printf(&x, "\n  ]}\n");
  if (rc == 0)
    rc = rewrite(&x);
  if (rc == 0) {
    size_t n = onnx__model_proto__get_packed_size(x.m);
    if (!(out->onnx = malloc(n ? n : 1)))
      rc = lpq_errorf(err, LPQ_ENOMEM, "out of memory");
    else
      out->onnx_len = onnx__model_proto__pack(x.m, out->onnx);
  }
  if (rc == 0 && x.pb.oom)
    rc = lpq_errorf(err, LPQ_ENOMEM, "out of memory");
  for (size_t l = 0; x.xl && l < x.nl; l++) {
    for (size_t k = 0; k < x.xl[l].npre; k++)
      onnx__node_proto__free_unpacked(x.xl[l].pre[k], NULL);
    for (size_t k = 0; k < x.xl[l].npost; k++)
      onnx__node_proto__free_unpacked(x.xl[l].post[k], NULL);
    free(x.xl[l].pre);
    free(x.xl[l].post);
    free(x.xl[l].old_bias);
    free(x.xl[l].wch);
    free(x.xl[l].sample);
  }
  free(x.xl);
  free(x.tables);
  free(x.meta.p);
  if (x.m)
    onnx__model_proto__free_unpacked(x.m, NULL);
  if (rc == 0) {
    out->encodings = x.enc.p;
  } else {
    free(x.enc.p);
    lpq_qexport_clear(out);
  }
  return rc;
}

void lpq_qexport_clear(lpq_qexport_t *x) {
  if (!x)
    return;
  free(x->onnx);
  free(x->encodings);
  memset(x, 0, sizeof *x);
}
