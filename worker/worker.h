/*
** worker/worker.h: the evaluation core of an lpq worker (DESIGN sections 2 and 3): the
** global-local contrastive loss, the quantized forward pass of a candidate, its score.
*/
#ifndef LPQ_WORKER_H
#define LPQ_WORKER_H

#include "common/common.h"

#include <stddef.h>

/* ---- the contrastive loss --------------------------------------------------------------- */

/* InfoNCE over a batch (DESIGN section 2):
**   l = -1/B * sum_i log( exp(q_i.p_i / T) / sum_j exp(q_i.p_j / T) )
** where q_i and p_j are the L2-normalised rows of q and p, both [batch, dim] float32 in C order
** (a zero row stays zero). The positive of q_i is p_i; the negatives are the other rows of p.
** LPQ_EINVAL for batch 0, dim 0 or T <= 0; LPQ_ENAN when an input holds NaN or Inf. */
int lpq_infonce(const float *q, const float *p, size_t batch, size_t dim, double temperature,
                double *loss, lpq_error_t *err);

/* Normalises each row of x ([rows, dim]) to unit L2 length in place; NaN/Inf: LPQ_ENAN with
** the row in the message. */
int lpq_normalize_rows(float *x, size_t rows, size_t dim, lpq_error_t *err);

/* InfoNCE of already-normalised rows (the cached FP side is normalised once). scratch holds
** batch*batch floats. */
double lpq_infonce_normalized(const float *qn, const float *pn, size_t batch, size_t dim,
                              double temperature, float *scratch);

#endif
