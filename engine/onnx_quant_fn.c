/* engine/onnx_quant_fn.c: the model-local functions of the quantized export, in domain "lpq",
** bodies of standard ONNX ops only (opset 21), so any runtime that inlines model-local
** functions runs them (docs/FORMATS.md):
**   LPDequantize(codes, table, scale) = Gather(table, codes) * scale
**   LPQuantize(x, thresholds, magnitudes, scale)
**     = Sign(x) * magnitudes[count(thresholds <= |x| / scale)] * scale
** LPQuantize counts by a binary search of `steps` unrolled steps over thresholds padded with
** +Inf to 2^steps - 1 entries: lpq's own rounding (lp_quantizer_magnitudes), ties included.
** The tables are the base format's (LP sf = 0) and scale the layer's power of two, so the
** division and the product are exact and the layers of one base format share the tables. */
#include "engine/engine_internal.h"

#include <stdio.h>

static void body(lpq_pb_t *pb, Onnx__FunctionProto *f, Onnx__NodeProto *n) {
  if (f)
    lpq__pb_push(pb, &f->node, &f->n_node, n);
  else if (n)
    onnx__node_proto__free_unpacked(n, NULL);
}

static void op1(lpq_pb_t *pb, Onnx__FunctionProto *f, const char *op, const char *a,
                const char *y) {
  const char *in[] = {a}, *out[] = {y};
  body(pb, f, lpq__pb_node(pb, op, NULL, y, 1, in, 1, out));
}

static void op2(lpq_pb_t *pb, Onnx__FunctionProto *f, const char *op, const char *a,
                const char *b, const char *y) {
  const char *in[] = {a, b}, *out[] = {y};
  body(pb, f, lpq__pb_node(pb, op, NULL, y, 2, in, 1, out));
}

static void constant_i64(lpq_pb_t *pb, Onnx__FunctionProto *f, const char *y, int64_t v) {
  const char *out[] = {y};
  Onnx__NodeProto *n = lpq__pb_node(pb, "Constant", NULL, y, 0, NULL, 1, out);
  lpq__pb_attr_tensor(pb, n, "value", lpq__pb_scalar(pb, NULL, 7, &v, sizeof v));
  body(pb, f, n);
}

Onnx__FunctionProto *lpq__fn_lpdequantize(lpq_pb_t *pb) {
  const char *in[] = {"codes", "table", "scale"}, *out[] = {"y"};
  Onnx__FunctionProto *f = lpq__pb_function(pb, LPQ_ONNX_DOMAIN, "LPDequantize", 3, in, 1, out,
                                            21);
  /* codes are uint4, uint8 or uint16: DequantizeLinear with scale 1 reads any of them (Cast
  ** from 4-bit types is younger in runtimes), then Cast to the Gather index */
  const char *cout[] = {"one"};
  Onnx__NodeProto *c = lpq__pb_node(pb, "Constant", NULL, "one", 0, NULL, 1, cout);
  float one = 1.0f;
  lpq__pb_attr_tensor(pb, c, "value", lpq__pb_scalar(pb, NULL, 1, &one, sizeof one));
  body(pb, f, c);
  op2(pb, f, "DequantizeLinear", "codes", "one", "codes_f");
  const char *cin[] = {"codes_f"}, *cidx[] = {"index"};
  Onnx__NodeProto *cast = lpq__pb_node(pb, "Cast", NULL, "index", 1, cin, 1, cidx);
  lpq__pb_attr_int(pb, cast, "to", 7);
  body(pb, f, cast);
  op2(pb, f, "Gather", "table", "index", "values");
  op2(pb, f, "Mul", "values", "scale", "y");
  return f;
}

Onnx__FunctionProto *lpq__fn_lpquantize(lpq_pb_t *pb, int steps) {
  const char *in[] = {"x", "thresholds", "magnitudes", "scale"}, *out[] = {"y"};
  Onnx__FunctionProto *f = lpq__pb_function(pb, LPQ_ONNX_DOMAIN, "LPQuantize", 4, in, 1, out,
                                            21);
  op1(pb, f, "Abs", "x", "abs");
  op2(pb, f, "Div", "abs", "scale", "a");
  op2(pb, f, "Less", "a", "a", "none"); /* all false, NaN too: the search starts at code 0 */
  const char *cin[] = {"none"}, *cout[] = {"lo0"};
  Onnx__NodeProto *cast = lpq__pb_node(pb, "Cast", NULL, "lo0", 1, cin, 1, cout);
  lpq__pb_attr_int(pb, cast, "to", 7);
  body(pb, f, cast);
  constant_i64(pb, f, "one", 1);
  char lo[32] = "lo0";
  for (int k = steps - 1; k >= 0; k--) {
    char s[32], cand[32], idx[32], t[32], ge[32], next[32];
    snprintf(s, sizeof s, "step%d", k);
    snprintf(cand, sizeof cand, "cand%d", k);
    snprintf(idx, sizeof idx, "idx%d", k);
    snprintf(t, sizeof t, "thr%d", k);
    snprintf(ge, sizeof ge, "ge%d", k);
    snprintf(next, sizeof next, "lo%d", steps - k);
    constant_i64(pb, f, s, (int64_t)1 << k);
    op2(pb, f, "Add", lo, s, cand);
    op2(pb, f, "Sub", cand, "one", idx);
    op2(pb, f, "Gather", "thresholds", idx, t);
    op2(pb, f, "GreaterOrEqual", "a", t, ge);
    const char *win[] = {ge, cand, lo}, *wout[] = {next};
    body(pb, f, lpq__pb_node(pb, "Where", NULL, next, 3, win, 1, wout));
    snprintf(lo, sizeof lo, "%s", next);
  }
  op2(pb, f, "Gather", "magnitudes", lo, "m");
  op2(pb, f, "Mul", "m", "scale", "ms");
  op1(pb, f, "Sign", "x", "s");
  op2(pb, f, "Mul", "s", "ms", "y");
  return f;
}
