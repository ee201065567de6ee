/* worker/bias.h: bias correction after weight quantization (worker-internal; see bias.c). */
#ifndef LPQ_WORKER_BIAS_H
#define LPQ_WORKER_BIAS_H

#include "worker/worker.h"

/* The mean of layer L's input x (count floats, L's input shape) per input channel: axis 1 of
** a conv's input, the last axis of a gemm's or matmul's, averaged over every other axis.
** Returns a new array of *channels floats (the caller frees it), or NULL when memory runs out
** or the count does not match the shape. */
float *bias_input_means(const lpq_layer_t *L, const float *x, size_t count, size_t *channels);

/* The shift that cancels the mean output error of quantized weights wq against L's FP weights:
** shift[m] = -sum_k E[x_k] (wq - w)[m, k] for every output channel m (axis 0 of the weight;
** groups respected), where E[x_k] is in_mean of the input channel that weight column k reads.
** in_mean has the count bias_input_means gave for L. */
void bias_shift(const lpq_layer_t *L, const float *wq, const float *in_mean, float *shift);

#endif
