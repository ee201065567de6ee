/* worker/bias.c: the scorer's names for the engine's bias correction (engine/bias.c), which the
** coordinator's job.export computes too: the coordinator may use the engine, not the worker. */
#include "worker/worker_internal.h"

float *lpq__bias_input_means(const lpq_layer_t *L, const float *x, size_t count, size_t *entries) {
  return lpq_bias_input_means(L, x, count, entries);
}

void lpq__bias_shift(const lpq_layer_t *L, const float *wq, const float *in_mean, float *shift) {
  lpq_bias_shift(L, wq, in_mean, shift);
}
