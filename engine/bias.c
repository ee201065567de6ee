/* engine/bias.c: bias correction after weight quantization, as NNCF's FastBiasCorrection and
** AIMET's bias correction do it: per output channel, the mean shift of the layer's output that
** weight quantization causes on the calibration batch is subtracted from the bias. With the
** FP input x that shift is E[(Wq - W) x] = (Wq - W) E[x], where for a conv E[x] is the mean
** of each weight tap's input over the batch and the output positions, zero padding included
** (on the small feature maps of the bundled models a border tap sees far less than the
** channel's mean), so the correction is exact for the layer's FP input. In the engine (it needs
** nothing else) so that the worker's scorer and every export (lpq export, the coordinator's
** job.export) compute the same shifts. */
#include "engine/engine.h"

#include <stdlib.h>
#include <string.h>

/* Conv: mean input of every (input channel, tap) over the batch and the output positions. */
static float *conv_tap_means(const lpq_layer_t *L, const float *x, size_t count,
                             size_t *entries) {
  const int two_d = L->in_ndim == 4;
  const size_t N = (size_t)L->in_shape[0], C = (size_t)L->in_shape[1];
  const size_t H = two_d ? (size_t)L->in_shape[2] : 1, W = (size_t)L->in_shape[L->in_ndim - 1];
  const size_t OH = L->out_ndim == 4 ? (size_t)L->out_shape[2] : 1;
  const size_t OW = (size_t)L->out_shape[L->out_ndim - 1];
  const size_t KH = (size_t)L->kernel[0], KW = (size_t)L->kernel[1], taps = KH * KW;
  if (N * C * H * W != count || N == 0 || OH * OW == 0)
    return NULL;
  double *plane = malloc(H * W * sizeof *plane);
  float *mean = malloc(C * taps * sizeof *mean);
  if (!plane || !mean) {
    free(plane);
    free(mean);
    return NULL;
  }
  for (size_t c = 0; c < C; c++) {
    for (size_t i = 0; i < H * W; i++) /* the channel summed over the batch */
      plane[i] = 0.0;
    for (size_t n = 0; n < N; n++) {
      const float *xp = x + (n * C + c) * H * W;
      for (size_t i = 0; i < H * W; i++)
        plane[i] += (double)xp[i];
    }
    for (size_t kh = 0; kh < KH; kh++)
      for (size_t kw = 0; kw < KW; kw++) {
        double s = 0.0;
        for (size_t oh = 0; oh < OH; oh++) {
          long ih = (long)(oh * (size_t)L->stride[0] + kh * (size_t)L->dilation[0]) - L->pads[0];
          if (ih < 0 || ih >= (long)H)
            continue; /* zero padding */
          for (size_t ow = 0; ow < OW; ow++) {
            long iw = (long)(ow * (size_t)L->stride[1] + kw * (size_t)L->dilation[1]) - L->pads[1];
            if (iw >= 0 && iw < (long)W)
              s += plane[(size_t)ih * W + (size_t)iw];
          }
        }
        mean[c * taps + kh * KW + kw] = (float)(s / (double)(N * OH * OW));
      }
  }
  free(plane);
  *entries = C * taps;
  return mean;
}

float *lpq_bias_input_means(const lpq_layer_t *L, const float *x, size_t count, size_t *entries) {
  if (L->kind == LPQ_LAYER_CONV)
    return conv_tap_means(L, x, count, entries);
  const int axis = L->in_ndim - 1; /* gemm, matmul: the last axis */
  if (axis < 0 || L->in_shape[axis] <= 0)
    return NULL;
  const size_t ch = (size_t)L->in_shape[axis], rows = count / ch;
  if (rows * ch != count || rows == 0)
    return NULL;
  double *sum = calloc(ch, sizeof *sum);
  float *mean = malloc(ch * sizeof *mean);
  if (!sum || !mean) {
    free(sum);
    free(mean);
    return NULL;
  }
  for (size_t r = 0; r < rows; r++)
    for (size_t c = 0; c < ch; c++)
      sum[c] += (double)x[r * ch + c];
  for (size_t c = 0; c < ch; c++)
    mean[c] = (float)(sum[c] / (double)rows);
  free(sum);
  *entries = ch;
  return mean;
}

void lpq_bias_shift(const lpq_layer_t *L, const float *wq, const float *in_mean, float *shift) {
  const size_t M = (size_t)L->weight_shape[0], per = L->weight_count / M;
  /* weight row m: [C/groups input channels][taps], in_mean: [C][taps]; gemm/matmul: one tap */
  const size_t groups = L->kind == LPQ_LAYER_CONV && L->groups > 0 ? (size_t)L->groups : 1;
  const size_t mg = M / groups;
  for (size_t m = 0; m < M; m++) {
    const float *w = L->weight + m * per, *q = wq + m * per;
    const float *mean = in_mean + (m / mg) * per;
    double s = 0.0;
    for (size_t k = 0; k < per; k++)
      s += ((double)q[k] - (double)w[k]) * (double)mean[k];
    shift[m] = (float)-s;
  }
}

typedef struct means_t {
  const lpq_graph_t *g;
  const lpq_numfmt_t *w;
  float **mean;
  lpq_error_t *err;
} means_t;

static int means_input(void *user, size_t layer, float *x, size_t count) {
  means_t *m = user;
  if (m->w[layer].family == LPQ_FAM_FP32 || m->mean[layer])
    return 0;
  size_t entries;
  const lpq_layer_t *L = lpq_graph_layer(m->g, layer);
  if (!(m->mean[layer] = lpq_bias_input_means(L, x, count, &entries)))
    return lpq_errorf(m->err, LPQ_ENOMEM, "layer '%s': no input means for bias correction (out "
                      "of memory, or %zu inputs do not fit its shape)", L->name, count);
  return 0;
}

/* The layer's weights quantized to f as the scorer quantizes them (per channel: each
** channel's own format; per tensor: resolved on the weight). */
static int quantize_weights(const lpq_layer_t *L, const lpq_numfmt_t *f, float *wq,
                            lpq_error_t *err) {
  const size_t ch = (size_t)L->weight_shape[0], per = L->weight_count / ch;
  const size_t parts = f->per_channel ? ch : 1, len = f->per_channel ? per : L->weight_count;
  lpq_numfmt_t *fc = malloc(parts * sizeof *fc);
  int rc = !fc ? lpq_errorf(err, LPQ_ENOMEM, "out of memory")
           : f->per_channel ? lpq_numfmt_calibrate_channels(f, L->weight, ch, per, fc, err) : 0;
  if (rc == 0 && !f->per_channel) {
    fc[0] = *f;
    if (!fc[0].resolved)
      rc = lpq_numfmt_calibrate(&fc[0], L->weight, L->weight_count, err);
  }
  for (size_t c = 0; rc == 0 && c < parts; c++) {
    lp_quantizer_t *q = lpq_numfmt_quantizer(&fc[c], err);
    rc = q ? lp_quantize_f32(q, L->weight + c * len, wq + c * len, len, err)
           : (err && err->code ? err->code : LPQ_ENOMEM);
    lp_quantizer_free(&q);
  }
  free(fc);
  return rc;
}

int lpq_bias_shifts(const lpq_graph_t *g, const lpq_numfmt_t *w, const float *calib,
                    float **shift, lpq_error_t *err) {
  if (!g || !w || !calib || !shift)
    return lpq_errorf(err, LPQ_EINVAL, "lpq_bias_shifts: NULL argument");
  const size_t nl = lpq_graph_num_layers(g);
  memset(shift, 0, nl * sizeof *shift);
  means_t m = {g, w, calloc(nl + 1, sizeof(float *)), err};
  lpq_exec_t *ex = m.mean ? lpq_exec_new(g, err) : NULL;
  lpq_tensor_info_t out;
  lpq_graph_output(g, 0, &out);
  float *y = ex ? malloc(out.count * sizeof *y) : NULL;
  lpq_hooks_t hooks = {.user = &m, .input = means_input};
  int rc = y ? lpq_exec_run(ex, calib, y, &hooks, err)
             : (err && err->code ? err->code : lpq_errorf(err, LPQ_ENOMEM, "out of memory"));
  free(y);
  lpq_exec_free(&ex);
  for (size_t i = 0; rc == 0 && i < nl; i++) {
    if (w[i].family == LPQ_FAM_FP32)
      continue;
    const lpq_layer_t *L = lpq_graph_layer(g, i);
    float *wq = malloc(L->weight_count * sizeof *wq);
    shift[i] = malloc((size_t)L->weight_shape[0] * sizeof *shift[i]);
    rc = wq && shift[i] ? quantize_weights(L, &w[i], wq, err)
                        : lpq_errorf(err, LPQ_ENOMEM, "out of memory");
    if (rc == 0)
      lpq_bias_shift(L, wq, m.mean[i], shift[i]);
    else
      lpq_error_prefix(err, "layer '%s' weights: ", L->name);
    free(wq);
  }
  for (size_t i = 0; m.mean && i < nl; i++) {
    free(m.mean[i]);
    if (rc != 0) {
      free(shift[i]);
      shift[i] = NULL;
    }
  }
  free(m.mean);
  return rc;
}
