/* engine/ops_conv_wino4.c: Winograd F(4x4, 3x3) in runs of 16 tiles over tile rows (and
** images), for lpq__kern_wino4_runs() (AVX-512): the kernels (ops_kernels_wino4.c) read the
** input planes' rows with masks and store the outputs with masks, one call per channel for
** the input transform of a block and one per run and output channel for the output. */
#include "engine/ops_conv_wino.h"

void lpq__wino4_input_segs(const wino_job_t *j, const tile_seg_t *sg, const int *first,
                           int nruns, int64_t nt, float *V) {
  (void)nt;
  const conv_params_t *p = j->p;
  const float *x = j->k->in[0];
  const int64_t C = p->C, HW = p->H * p->W;
  wino4_iseg_t is[WINO_MAX_SEGS];
  for (int s = 0; s < first[nruns]; s++) { /* channel 0's rows; channel c is c HW further */
    const tile_seg_t *g = &sg[s];
    const float *xc = x + g->img * C * HW;
    const int64_t iy = 4 * g->ty - p->p[0];
    for (int r = 0; r < 6; r++)
      is[s].row[r] = iy + r >= 0 && iy + r < p->H ? xc + (iy + r) * p->W : NULL;
    is[s].x0 = 4 * g->a - p->p[1];
    is[s].l0 = (size_t)g->l0, is[s].len = (size_t)g->len;
  }
  lpq__kern_wino4_masks(is, first[nruns], p->W);
  /* the block's input rows (channel 0), each once: prefetched two channels ahead (they come
  ** from the previous layer's output, in L3: a few short rows per plane the hardware
  ** prefetcher does not follow) */
  const float *rows[WINO_MAX_SEGS];
  int nrows = 0;
  for (int s = 0; s < first[nruns]; s++)
    for (int r = 0; r < 6; r++) {
      const float *row = is[s].row[r];
      int seen = !row;
      for (int i = nrows - 1; i >= 0 && i >= nrows - 12 && !seen; i--)
        seen = rows[i] == row;
      if (!seen && nrows < WINO_MAX_SEGS)
        rows[nrows++] = row;
    }
  const size_t vstride = j->vstride;
  for (int64_t c = 0; c < C; c++) {
    if (c + 2 < C)
      for (int i = 0; i < nrows; i++)
        for (int64_t x0 = 0; x0 < p->W; x0 += 16)
          __builtin_prefetch(rows[i] + (c + 2) * HW + x0);
    lpq__kern_wino4_in_runs(is, first, (size_t)nruns, (size_t)(c * HW),
                            V + (size_t)(c * NR), vstride, (size_t)(C * NR));
  }
}

void lpq__wino4_output_segs(const wino_job_t *j, const float *Y, size_t ldy,
                            const tile_seg_t *sg, const int *first, int nruns, int64_t m0,
                            int64_t m1) {
  const conv_params_t *p = j->p;
  const kctx_t *k = j->k;
  const int64_t M = p->M, OH = p->OH, OW = p->OW, OHW = OH * OW;
  const size_t ystride = j->ystride;
  float *y = k->out[0];
  wino4_oseg_t os[WINO_MAX_SEGS];
  for (int s = 0; s < first[nruns]; s++) { /* output channel 0's rows */
    const tile_seg_t *g = &sg[s];
    const int64_t at = g->img * M * OHW + 4 * g->ty * OW + 4 * g->a;
    os[s].rows = (int)(OH - 4 * g->ty < 4 ? OH - 4 * g->ty : 4);
    os[s].w = (size_t)(4 * g->len < OW - 4 * g->a ? 4 * g->len : OW - 4 * g->a);
    os[s].l0 = (size_t)g->l0;
    for (int i = 0; i < 4; i++) {
      const int64_t r = at + (i < os[s].rows ? i : 0) * OW;
      os[s].y[i] = y + r;
      os[s].res[i] = j->residual ? j->residual + r : NULL;
    }
  }
  for (int64_t m = m0; m < m1; m++) {
    const float bias = k->bias ? k->bias[m] : 0.0f;
    for (int r = 0; r < nruns; r++)
      lpq__kern_wino4_out_run(Y + (size_t)m * ldy + (size_t)(r * WINO_RUN), ystride,
                              os + first[r], (size_t)(first[r + 1] - first[r]),
                              (size_t)(m * OHW), bias, j->lo, j->hi);
  }
}
