/* worker/bias.c: bias correction after weight quantization, as NNCF's FastBiasCorrection and
** AIMET's bias correction do it: per output channel, the mean shift of the layer's output that
** weight quantization causes on the calibration batch is subtracted from the bias. With the
** FP input x that shift is E[(Wq - W) x] = (Wq - W) E[x], so the per-input-channel mean of the
** FP input is all the scorer keeps. (A conv's zero padding makes border positions see less
** than E[x]; the per-channel mean ignores that, as the peers' analytic variants do.) */
#include "worker/worker_internal.h"

#include <stdlib.h>

float *lpq__bias_input_means(const lpq_layer_t *L, const float *x, size_t count, size_t *channels) {
  const int axis = L->kind == LPQ_LAYER_CONV ? 1 : L->in_ndim - 1;
  if (axis < 0 || axis >= L->in_ndim || L->in_shape[axis] <= 0)
    return NULL;
  size_t outer = 1, inner = 1;
  const size_t ch = (size_t)L->in_shape[axis];
  for (int d = 0; d < axis; d++)
    outer *= (size_t)L->in_shape[d];
  for (int d = axis + 1; d < L->in_ndim; d++)
    inner *= (size_t)L->in_shape[d];
  if (outer * ch * inner != count)
    return NULL;
  double *sum = calloc(ch, sizeof *sum);
  float *mean = malloc(ch * sizeof *mean);
  if (!sum || !mean) {
    free(sum);
    free(mean);
    return NULL;
  }
  for (size_t o = 0; o < outer; o++)
    for (size_t c = 0; c < ch; c++) {
      const float *row = x + (o * ch + c) * inner;
      double s = 0.0;
      for (size_t i = 0; i < inner; i++)
        s += (double)row[i];
      sum[c] += s;
    }
  for (size_t c = 0; c < ch; c++)
    mean[c] = (float)(sum[c] / (double)(outer * inner));
  free(sum);
  *channels = ch;
  return mean;
}

void lpq__bias_shift(const lpq_layer_t *L, const float *wq, const float *in_mean, float *shift) {
  const size_t M = (size_t)L->weight_shape[0], per = L->weight_count / M;
  /* weight row m: [C/groups input channels][taps]; gemm/matmul: K channels, one tap */
  const size_t cg = (size_t)L->weight_shape[1], taps = per / cg;
  const size_t groups = L->kind == LPQ_LAYER_CONV && L->groups > 0 ? (size_t)L->groups : 1;
  const size_t mg = M / groups;
  for (size_t m = 0; m < M; m++) {
    const float *w = L->weight + m * per, *q = wq + m * per;
    const float *mean = in_mean + (m / mg) * cg;
    double s = 0.0;
    for (size_t c = 0; c < cg; c++) {
      double dw = 0.0;
      for (size_t t = 0; t < taps; t++)
        dw += (double)q[c * taps + t] - (double)w[c * taps + t];
      s += dw * (double)mean[c];
    }
    shift[m] = (float)-s;
  }
}
