/* engine/onnx_quant_tables.c: the value tables of the quantized export, each stored once. A
** table is kept at its format's base scale (LP sf = 0, the power of two the format's scale is
** divided out) and every layer multiplies by its own power of two inside lpq.LPDequantize /
** lpq.LPQuantize: exact in float, so the values are the layer's own bit for bit, and the
** layers of one base format (every lp<8,1,3,auto> activation, say) share one table. */
#include "engine/onnx_quant.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void lpq__qx_add_init(qx_t *x, Onnx__TensorProto *t) {
  Onnx__GraphProto *gp = x->m->graph;
  lpq__pb_push(&x->pb, &gp->initializer, &gp->n_initializer, t);
}

float lpq__qx_unscale(const lpq_numfmt_t *f, float *v, size_t n) {
  double s = lpq__fmt_scale(f);
  int e;
  if (!(s > 0) || frexp(s, &e) != 0.5 || e < -100 || e > 100)
    return 1.0f; /* not a power of two (an INT or minifloat scale): the table keeps it */
  const float sf = (float)s;
  for (size_t i = 0; i < n; i++) {
    if (v[i] == 0 || !isfinite(v[i]))
      continue;
    float b = v[i] / sf;
    if (!isnormal(b) || b * sf != v[i])
      return 1.0f; /* an edge of the float range: the layer keeps its own table */
  }
  if (sf != 1.0f)
    for (size_t i = 0; i < n; i++)
      v[i] /= sf;
  return sf;
}

const char *lpq__qx_table(qx_t *x, const char *kind, const float *v, size_t n) {
  const size_t klen = strlen(kind);
  for (size_t i = 0; i < x->ntables; i++) {
    const Onnx__TensorProto *t = x->tables[i];
    if (!strncmp(t->name + 4, kind, klen) && t->name[4 + klen] == '_' &&
        t->raw_data.len == n * sizeof *v && !memcmp(t->raw_data.data, v, n * sizeof *v))
      return t->name;
  }
  char name[64];
  snprintf(name, sizeof name, "lpq/%s_%zu", kind, x->ntables);
  int64_t dim = (int64_t)n;
  Onnx__TensorProto *t = lpq__pb_tensor(&x->pb, name, LPQ_DT_F32, 1, &dim, v, n * sizeof *v);
  if (!t)
    return NULL;
  lpq__qx_add_init(x, t);
  lpq__pb_push(&x->pb, &x->tables, &x->ntables, t);
  return x->pb.oom ? NULL : t->name;
}

/* Pads one table to `want` entries with `pad` (NAN: repeat its last entry). */
static void pad_table(qx_t *x, Onnx__TensorProto *t, size_t want, float pad) {
  size_t have = t->raw_data.len / 4;
  if (have >= want || have == 0)
    return;
  float *p = realloc(t->raw_data.data, want * 4);
  if (!p) {
    x->pb.oom = 1;
    return;
  }
  if (isnan(pad))
    memcpy(&pad, p + have - 1, 4);
  for (size_t i = have; i < want; i++)
    p[i] = pad;
  t->raw_data.data = (uint8_t *)p;
  t->raw_data.len = want * 4;
  t->dims[0] = (int64_t)want;
}

void lpq__qx_pad_tables(qx_t *x) {
  for (size_t i = 0; x->q_steps && i < x->ntables; i++) {
    Onnx__TensorProto *t = x->tables[i];
    if (!strncmp(t->name, "lpq/thresholds_", 15))
      pad_table(x, t, ((size_t)1 << x->q_steps) - 1, INFINITY);
    else if (!strncmp(t->name, "lpq/magnitudes_", 15))
      pad_table(x, t, (size_t)1 << x->q_steps, NAN);
  }
}
