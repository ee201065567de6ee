/* engine/ops_dwblock.c: the 3x3 depthwise conv (stride 1 or 2, any pads) on small maps, vectorised
** over channels: a task takes DWB channels of one image, interleaves them pixel by pixel into a
** zero-padded block (DWB floats a pixel), computes every output pixel's DWB channels at once
** (nine multiply-adds of DWB lanes, bias and clamp) and writes them back plane by plane. On
** small maps the per-plane kernel (ops_depthwise.c) spends its time on short rows and on
** padding each plane; here the vectors are always full. Runs plain and hooked alike. */
#include "engine/engine_internal.h"

#include <math.h>
#include <string.h>

/* Output rows of at most this many pixels go through the blocks (longer ones vectorise well
** enough along the row in ops_depthwise.c, and the interleaving costs more than it saves). */
#define DWBLK_MAX_OW 7

typedef struct dwblk_job_t {
  const kctx_t *k;
  const conv_params_t *p;
  float lo, hi;
} dwblk_job_t;

static int dwblk_applies(const conv_params_t *p) {
  /* AVX-512 runs a stride-1 plane with pads 1 flat (lpq__kern_dw3_flat), faster still */
  const int flat = lpq__isa() == LPQ_ISA_AVX512 && p->s[0] == 1 && p->p[0] == 1 &&
                   p->p[1] == 1 && p->p[2] == 1 && p->p[3] == 1;
  return p->spatial == 2 && p->k[0] == 3 && p->k[1] == 3 && p->d[0] == 1 && p->d[1] == 1 &&
         p->s[0] == p->s[1] && (p->s[0] == 1 || p->s[0] == 2) && p->OW <= DWBLK_MAX_OW && !flat;
}

size_t lpq__dwblock_scratch(const conv_params_t *p) {
  if (!dwblk_applies(p))
    return 0;
  const size_t hp = (size_t)(p->H + p->p[0] + p->p[2]), wp = (size_t)(p->W + p->p[1] + p->p[3]);
  return (hp * wp + (size_t)(p->OH * p->OW) + 10) * DWB + 16;
}

static void dwblk_task(void *arg, size_t task, int tid) {
  const dwblk_job_t *j = arg;
  const conv_params_t *p = j->p;
  const kctx_t *k = j->k;
  const int64_t C = p->C, H = p->H, W = p->W, HW = H * W, OH = p->OH, OW = p->OW;
  const int64_t OHW = OH * OW, nblk = (C + DWB - 1) / DWB, s = p->s[0];
  const int64_t img = (int64_t)task / nblk, c0 = (int64_t)task % nblk * DWB;
  const int64_t cb = C - c0 < DWB ? C - c0 : DWB;
  const int64_t hp = H + p->p[0] + p->p[2], wp = W + p->p[1] + p->p[3];
  float *P = thread_scratch(k, tid), *Y = P + hp * wp * DWB, *wt = Y + OHW * DWB;
  float *bb = wt + 9 * DWB;
  for (int t = 0; t < 9; t++)
    for (int64_t c = 0; c < DWB; c++)
      wt[t * DWB + c] = c < cb ? k->weight[(c0 + c) * 9 + t] : 0.0f;
  for (int64_t c = 0; c < DWB; c++)
    bb[c] = c < cb && k->bias ? k->bias[c0 + c] : 0.0f;
  /* the pads (and the lanes past cb) are zeros; the plane's pixels interleaved */
  memset(P, 0, (size_t)(hp * wp * DWB) * sizeof *P);
  const float *x = (const float *)k->in[0] + (img * C + c0) * HW;
  for (int64_t c = 0; c < cb; c++)
    for (int64_t iy = 0; iy < H; iy++) {
      float *dst = P + ((iy + p->p[0]) * wp + p->p[1]) * DWB + c;
      const float *src = x + c * HW + iy * W;
      for (int64_t ix = 0; ix < W; ix++)
        dst[ix * DWB] = src[ix];
    }
  for (int64_t oy = 0; oy < OH; oy++) {
    const float *r = P + oy * s * wp * DWB;
    lpq__kern_dwblk_row(Y + oy * OW * DWB, r, r + wp * DWB, r + 2 * wp * DWB, wt, bb, j->lo,
                        j->hi, (size_t)OW, (size_t)s);
  }
  float *y = (float *)k->out[0] + (img * C + c0) * OHW;
  for (int64_t c = 0; c < cb; c++)
    for (int64_t i = 0; i < OHW; i++)
      y[c * OHW + i] = Y[i * DWB + c];
}

int lpq__dwblock_run(const kctx_t *k, float lo, float hi) {
  const conv_params_t *p = k->n->params;
  if (!dwblk_applies(p) || k->n->scratch_floats < lpq__dwblock_scratch(p))
    return 0;
  dwblk_job_t j = {k, p, lo, hi};
  lpq__threads_run(k->pool, (size_t)(p->N * ((p->C + DWB - 1) / DWB)), dwblk_task, &j);
  return 1;
}
