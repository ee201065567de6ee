/* engine/ops_quant.c: QuantizeLinear and DequantizeLinear (opset 10..21, per tensor or along an
** axis; no blocks), what `lpq export` writes for int and FP8 formats (docs/FORMATS.md), so that
** lpq runs its own exports. Narrow integer tensors (int4, uint4, int8, uint8, int16, uint16) are
** int64 inside the engine and FP8 ones their float values (tensorproto.c); QuantizeLinear's
** target type is its zero point's ONNX type (an initializer) or its output_dtype attribute
** (default uint8), and it keeps its output as the engine does: int64, or float on the FP8 grid. */
#include "engine/engine_internal.h"

#include <math.h>
#include <stdlib.h>

enum { T_U8 = 2, T_I8 = 3 };

typedef struct quant_params_t {
  int quantize;        /* 1: QuantizeLinear, 0: DequantizeLinear */
  int type;            /* QuantizeLinear's target (ONNX data type) */
  int saturate;        /* FP8 targets */
  size_t outer, ch, inner; /* x as [outer, ch, inner] around the axis (ch 1 per tensor) */
  int64_t lo, hi;      /* integer targets' range */
} quant_params_t;

static const char *const quant_attrs[] = {"axis", "saturate", "output_dtype", "block_size", NULL};

static int quant_prepare(lpq_graph_t *g, gnode_t *n, lpq_error_t *err, int quantize) {
  int rc;
  int64_t axis, block = 0, sat = 1, odt = 0;
  if ((rc = lpq__check_arity(n, 2, 3, 1, 1, err)) ||
      (rc = lpq__need_dtype(g, n, 0, quantize ? DT(LPQ_DT_F32) : DT_NUM, err)) ||
      (rc = lpq__need_dtype(g, n, 1, DT(LPQ_DT_F32), err)) ||
      (rc = lpq__attr_int(n, "axis", 1, &axis, err)) ||
      (rc = lpq__attr_int(n, "block_size", 0, &block, err)) ||
      (rc = lpq__attr_int(n, "saturate", 1, &sat, err)) ||
      (rc = lpq__attr_int(n, "output_dtype", 0, &odt, err)))
    return rc;
  if (block != 0)
    return lpq__node_err(err, LPQ_EUNSUP, n, "blocked quantization (block_size %lld) is not "
                         "supported", (long long)block);
  const gval_t *x = gv(g, n->in[0]), *s = gv(g, n->in[1]);
  const gval_t *z = n->nin > 2 && n->in[2] >= 0 ? gv(g, n->in[2]) : NULL;
  quant_params_t *p = calloc(1, sizeof *p);
  if (!p)
    return lpq__node_err(err, LPQ_ENOMEM, n, "out of memory");
  n->params = p;
  p->quantize = quantize;
  p->saturate = sat != 0;
  p->ch = s->count;
  if (s->ndim > 1 || (z && z->count != s->count))
    return lpq__node_err(err, LPQ_EUNSUP, n, "scale must be a scalar or 1-D, the zero point "
                         "shaped as the scale");
  p->outer = 1, p->inner = 1;
  if (s->ndim == 1 && s->count > 1) {
    int ax;
    if ((rc = lpq__norm_axis(n, axis, x->ndim, &ax, err)))
      return rc;
    if ((size_t)x->shape[ax] != s->count)
      return lpq__node_err(err, LPQ_EFORMAT, n, "%zu scales for axis %d of %lld", s->count, ax,
                           (long long)x->shape[ax]);
    for (int d = 0; d < ax; d++)
      p->outer *= (size_t)x->shape[d];
    for (int d = ax + 1; d < x->ndim; d++)
      p->inner *= (size_t)x->shape[d];
  } else {
    p->ch = 1;
    p->inner = x->count;
  }
  if (!quantize)
    return lpq__set_output(g, n, 0, LPQ_DT_F32, x->ndim, x->shape, err);
  p->type = z && z->onnx_type ? z->onnx_type : odt ? (int)odt : T_U8;
  switch (p->type) {
  case T_U8: p->lo = 0, p->hi = 255; break;
  case T_I8: p->lo = -128, p->hi = 127; break;
  case ONNX_DT_U16: p->lo = 0, p->hi = 65535; break;
  case ONNX_DT_I16: p->lo = -32768, p->hi = 32767; break;
  case ONNX_DT_U4: p->lo = 0, p->hi = 15; break;
  case ONNX_DT_I4: p->lo = -8, p->hi = 7; break;
  case ONNX_DT_F8E4M3FN: case ONNX_DT_F8E5M2: break;
  default:
    return lpq__node_err(err, LPQ_EUNSUP, n, "target data type %d is not supported", p->type);
  }
  const int fp8 = p->type == ONNX_DT_F8E4M3FN || p->type == ONNX_DT_F8E5M2;
  if (z && z->dtype != (fp8 ? LPQ_DT_F32 : LPQ_DT_I64))
    return lpq__node_err(err, LPQ_EFORMAT, n, "the zero point's type does not match the target");
  return lpq__set_output(g, n, 0, fp8 ? LPQ_DT_F32 : LPQ_DT_I64, x->ndim, x->shape, err);
}

static int quantize_prepare(lpq_graph_t *g, gnode_t *n, lpq_error_t *err) {
  return quant_prepare(g, n, err, 1);
}

static int dequantize_prepare(lpq_graph_t *g, gnode_t *n, lpq_error_t *err) {
  return quant_prepare(g, n, err, 0);
}

static int quant_run(const kctx_t *k) {
  const quant_params_t *p = k->n->params;
  const gval_t *x = gv(k->g, k->n->in[0]);
  const float *scale = k->in[1];
  const void *zp = k->n->nin > 2 && k->n->in[2] >= 0 ? k->in[2] : NULL;
  const int fp8 = p->type == ONNX_DT_F8E4M3FN || p->type == ONNX_DT_F8E5M2;
  for (size_t o = 0, i = 0; o < p->outer; o++)
    for (size_t c = 0; c < p->ch; c++) {
      const float s = scale[c];
      if (!p->quantize) { /* y = (x - zero point) * scale */
        const double z = !zp ? 0 : x->dtype == LPQ_DT_F32 ? ((const float *)zp)[c]
                                                          : (double)((const int64_t *)zp)[c];
        for (size_t e = 0; e < p->inner; e++, i++) {
          double v = x->dtype == LPQ_DT_F32 ? ((const float *)k->in[0])[i]
                                            : (double)((const int64_t *)k->in[0])[i];
          ((float *)k->out[0])[i] = (float)((v - z) * s);
        }
        continue;
      }
      for (size_t e = 0; e < p->inner; e++, i++) {
        const float v = ((const float *)k->in[0])[i] / s;
        if (fp8) { /* the FP8 value, plus a zero point on the same grid */
          const float z = zp ? ((const float *)zp)[c] : 0.0f;
          ((float *)k->out[0])[i] = lpq__fp8_round(p->type, v + z, p->saturate);
          continue;
        }
        const int64_t z = zp ? ((const int64_t *)zp)[c] : 0;
        double r = isnan(v) ? 0.0 : rint((double)v) + (double)z; /* ties to even */
        r = r < (double)p->lo ? (double)p->lo : r > (double)p->hi ? (double)p->hi : r;
        ((int64_t *)k->out[0])[i] = (int64_t)r;
      }
    }
  return 0;
}

const op_def_t lpq__ops_quant_table[] = {
    {"QuantizeLinear", quant_attrs, quantize_prepare, quant_run},
    {"DequantizeLinear", quant_attrs, dequantize_prepare, quant_run},
    {NULL, NULL, NULL, NULL}};
