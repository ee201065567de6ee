/* accel_sim/accel_graph.c: a model's quantizable layers and a candidate's formats as the cost
** model's descriptors, so `lpq accel --model` and the search's L_CR use the real network. */
#include "accel_sim/accel_sim.h"

#include <stdio.h>
#include <string.h>

/* The symmetric pad that reproduces the graph's output size (ONNX allows asymmetric pads). */
static size_t fit_pad(size_t in, size_t k, size_t stride, size_t dil, size_t out, int lo, int hi) {
  for (size_t p = 0; p <= (size_t)(lo + hi); p++) {
    size_t span = in + 2 * p, need = dil * (k - 1) + 1;
    if (span >= need && (span - need) / stride + 1 == out)
      return p;
  }
  return (size_t)(lo + hi + 1) / 2;
}

accel_network_t *accel_network_from_graph(const lpq_graph_t *g, const char *name,
                                          lpq_error_t *err) {
  size_t n = lpq_graph_num_layers(g);
  accel_network_t *net = accel_network_new(name ? name : "model", n, err);
  if (!net)
    return NULL;
  const size_t batch = (size_t)lpq_graph_batch(g) ? (size_t)lpq_graph_batch(g) : 1;
  for (size_t i = 0; i < n; i++) {
    const lpq_layer_t *L = lpq_graph_layer(g, i);
    accel_layer_t *a = &net->layers[i];
    snprintf(a->name, sizeof a->name, "%s", L->name);
    a->batch = 1; /* the cost of one inference */
    if (L->kind == LPQ_LAYER_CONV) {
      a->kind = ACCEL_CONV;
      a->in_channels = (size_t)L->in_shape[1];
      a->out_channels = (size_t)L->out_shape[1];
      a->groups = (size_t)L->groups;
      int two_d = L->in_ndim == 4;
      a->in_h = two_d ? (size_t)L->in_shape[2] : 1;
      a->in_w = (size_t)L->in_shape[L->in_ndim - 1];
      a->out_h = two_d ? (size_t)L->out_shape[2] : 1;
      a->out_w = (size_t)L->out_shape[L->out_ndim - 1];
      a->kernel_h = (size_t)L->kernel[0];
      a->kernel_w = (size_t)L->kernel[1];
      a->stride_h = (size_t)L->stride[0];
      a->stride_w = (size_t)L->stride[1];
      a->dilation_h = (size_t)L->dilation[0];
      a->dilation_w = (size_t)L->dilation[1];
      a->pad_h = fit_pad(a->in_h, a->kernel_h, a->stride_h, a->dilation_h, a->out_h, L->pads[0],
                         L->pads[2]);
      a->pad_w = fit_pad(a->in_w, a->kernel_w, a->stride_w, a->dilation_w, a->out_w, L->pads[1],
                         L->pads[3]);
    } else {
      a->kind = ACCEL_GEMM; /* a MatMul with a constant weight is a gemm to the array */
      a->m = L->M / batch ? L->M / batch : 1;
      a->n = L->N;
      a->k = L->K;
      a->batch_count = 1;
    }
    if (accel_layer_validate(a, err) != 0) {
      lpq_error_prefix(err, "layer %zu (%s): ", i, L->name);
      accel_network_free(&net);
      return NULL;
    }
  }
  return net;
}

int accel_format_from_numfmt(const lpq_numfmt_t *f, accel_format_t *out) {
  memset(out, 0, sizeof *out);
  if ((unsigned)f->family >= LPQ_FAM_COUNT)
    return LPQ_EINVAL;
  out->family = lpq_numfmt_arith(f); /* the format's row says which arithmetic it needs */
  out->bits = f->bits;
  if (out->family == LPQ_ARITH_LP)
    out->lp = lpq_numfmt_lp(f);
  out->has_fmt = 1;
  out->fmt = *f;
  return 0;
}

void accel_formats_on(const accel_t *a, accel_layer_formats_t *f, size_t count) {
  for (size_t i = 0; i < count; i++) {
    accel_format_t *ops[2] = {&f[i].weight, &f[i].act};
    for (int k = 0; k < 2; k++) {
      if (ops[k]->family == a->family)
        continue;
      /* an operand the accelerator cannot compute natively runs at 16 bits, sliced over its
      ** widest mode (an unquantized fp32 operand on the LPA, say) */
      int bits = ops[k]->bits < 16 ? ops[k]->bits : 16;
      *ops[k] = accel_format_make(a->family, bits);
    }
  }
}
