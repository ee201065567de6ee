/* worker/bias.c: bias correction after weight quantization, as NNCF's FastBiasCorrection and
** AIMET's bias correction do it: per output channel, the mean shift of the layer's output that
** weight quantization causes on the calibration batch is subtracted from the bias. With the
** FP input x that shift is E[(Wq - W) x] = (Wq - W) E[x], where for a conv E[x] is the mean
** of each weight tap's input over the batch and the output positions, zero padding included
** (on the small feature maps of the bundled models a border tap sees far less than the
** channel's mean), so the correction is exact for the layer's FP input. */
#include "worker/worker_internal.h"

#include <stdlib.h>

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

float *lpq__bias_input_means(const lpq_layer_t *L, const float *x, size_t count, size_t *entries) {
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

void lpq__bias_shift(const lpq_layer_t *L, const float *wq, const float *in_mean, float *shift) {
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
