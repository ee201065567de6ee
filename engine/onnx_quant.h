/* engine/onnx_quant.h: what the quantized export's files share (onnx_quant.c rewrites the
** model, onnx_quant_tables.c stores the value tables once, onnx_quant_enc.c writes the
** encodings JSON). Private to engine/. */
#ifndef LPQ_ENGINE_ONNX_QUANT_H
#define LPQ_ENGINE_ONNX_QUANT_H

#include "engine/engine_internal.h"

typedef struct lpq_strbuf_t {
  char *p;
  size_t len, cap;
} lpq_strbuf_t;

typedef struct xl_t {
  const lpq_layer_t *L;
  lpq_numfmt_t w, a;    /* resolved (a per-channel weight format keeps its text form) */
  lpq_numfmt_t *wch;    /* per channel: each channel's resolved format */
  Onnx__NodeProto *node;
  Onnx__TensorProto *winit;
  int axis;             /* the output-channel axis of the ONNX weight */
  int transposed;       /* the ONNX weight is [K, N], lpq's [N, K] */
  Onnx__NodeProto **pre, **post; /* nodes inserted before and after the layer's node */
  size_t npre, npost;
  const float *shift;   /* bias correction: M floats added to the output, or NULL */
  char *old_bias;       /* the conv bias the corrected one replaced (dropped if unread) */
  float *sample;        /* FP input sample for activation calibration */
  size_t nsample;
} xl_t;

typedef struct qx_t {
  lpq_pb_t pb;
  Onnx__ModelProto *m;
  const lpq_graph_t *g;
  xl_t *xl;
  size_t nl;
  int use_deq, q_steps, ntensors; /* functions needed (q_steps: LPQuantize's binary search depth) */
  Onnx__TensorProto **tables; /* the value tables written so far, each once (lpq/table_<k>, ...) */
  size_t ntables;
  lpq_strbuf_t enc;     /* the encodings JSON being written (the file beside the model) */
  lpq_strbuf_t meta;    /* its copy in metadata_props: per-channel scales by initializer name */
  lpq_error_t *err;
} qx_t;

void lpq__qx_add_init(qx_t *x, Onnx__TensorProto *t);

/* The power of two s that factors out of f's n values v (f's value multiplier when it is one
** and v / s * s == v for every value, v / s a normal float or 0, Inf, NaN), else 1; with
** s != 1, v is divided by s in place. Multiplying or dividing by s is exact in float then, so a
** table shared at the base scale gives the same values bit for bit. */
float lpq__qx_unscale(const lpq_numfmt_t *f, float *v, size_t n);
/* The name of a float table (kind "table", "thresholds" or "magnitudes") holding v[0..n): an
** equal one written before is shared, else it is added as lpq/<kind>_<k>. NULL on no memory. */
const char *lpq__qx_table(qx_t *x, const char *kind, const float *v, size_t n);
/* Pads the LPQuantize tables to the search depth (thresholds +Inf, magnitudes the largest). */
void lpq__qx_pad_tables(qx_t *x);

/* The encodings JSON (docs/FORMATS.md): printf into both x->enc and x->meta; a JSON string;
** a tensor's entry up to its format fields (the caller adds its own fields and the brace). */
void lpq__qx_enc_printf(qx_t *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void lpq__qx_enc_str(qx_t *x, const char *s);
void lpq__qx_enc_format(qx_t *x, const xl_t *l, const lpq_numfmt_t *f, const char *tensor,
                        const char *role);

#endif
