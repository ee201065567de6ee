/* worker/bias.h: bias correction after weight quantization (worker-internal; see bias.c). */
#ifndef LPQ_WORKER_BIAS_H
#define LPQ_WORKER_BIAS_H

#include "worker/worker.h"

/* The mean FP input each weight element of layer L multiplies, over the batch and the output
** positions: [C][kH*kW] for a conv (input channel, tap; zero padding counts as 0), [K] for a
** gemm or matmul (the last axis of its input). x holds count floats of L's input shape.
** Returns a new array of *entries floats (the caller frees it), or NULL when memory runs out
** or the count does not match the shape. */
float *bias_input_means(const lpq_layer_t *L, const float *x, size_t count, size_t *entries);

/* The shift that cancels the mean output error of quantized weights wq against L's FP weights:
** shift[m] = -sum_k (wq - w)[m, k] E[x_k] for every output channel m (axis 0 of the weight;
** groups respected), E[x_k] from bias_input_means. */
void bias_shift(const lpq_layer_t *L, const float *wq, const float *in_mean, float *shift);

#endif
