/* engine/ops_conv_wino.c: Winograd F(2x2, 3x3) for dense 3x3 stride-1 undilated convolutions
** (ResNet's bulk): each 2x2 output tile costs 16 multiplies per input channel instead of 36.
** Weights: U = G g G^T, 16 matrices [M, C] packed for lpq's GEMM kernel (at load, or per run
** when a hook replaced the weights). A run walks blocks of tiles, one task each: the input
** tiles' V = B^T d B straight into the kernel's B panels, 16 GEMMs Y = U V, and the output
** transform A^T Y A with bias, residual and activation on the way to the output. */
#include "engine/engine_internal.h"

/* -O2's "very cheap" vectoriser skips loops whose trip count is unknown; these need it. */
#if defined(__GNUC__) && !defined(__clang__) /* clang vectorises at -O2 and has no such pragma */
#pragma GCC optimize("tree-vectorize", "vect-cost-model=dynamic")
#endif

#include <stdlib.h>
#include <string.h>

#define NR SGEMM_NR

int lpq__wino_applies(const conv_params_t *p) {
  static int enabled = -1; /* LPQ_WINOGRAD=0: the implicit GEMM for these too */
  if (enabled < 0) {
    const char *e = getenv("LPQ_WINOGRAD");
    enabled = !(e && strcmp(e, "0") == 0);
  }
  return enabled && lpq__sgemm_packs_a() && p->k[0] == 3 && p->k[1] == 3 && p->s[0] == 1 &&
         p->s[1] == 1 && p->d[0] == 1 && p->d[1] == 1 && p->groups == 1 && p->C >= 8 &&
         p->M >= 8 && p->OH >= 2 && p->OW >= 2;
}

/* Tiles per task: V and Y of a block (16 (C + M) floats per tile) within about 1 MB of L2. */
static int64_t wino_block(const conv_params_t *p) {
  int64_t tb = (1 << 18) / (16 * (p->C + p->M)) / NR * NR;
  return tb < NR ? NR : tb > 8 * NR ? 8 * NR : tb;
}

size_t lpq__wino_packed_floats(const conv_params_t *p) {
  return 16 * lpq__sgemm_packed_a_floats((size_t)p->M, (size_t)p->C);
}

/* Per-thread scratch: V, Y, the de-interleaved input rows and two output rows. */
static void wino_layout(const conv_params_t *p, size_t *v_off, size_t *y_off, size_t *row_off,
                        size_t *out_off, size_t *total) {
  const size_t tb = (size_t)wino_block(p), tw = (size_t)(p->OW + 1) / 2;
  size_t at = 0;
  *v_off = at, at += 16 * (size_t)p->C * tb + 16;
  *y_off = at, at += 16 * (size_t)p->M * tb + 16;
  /* 8 rows of tw + 2, then a line of 2 tw + 2, 17 floats of slack (lpq__kern_wino_in) */
  *row_off = at, at += 10 * (tw + 2) + 32;
  *out_off = at, at += 4 * (tw + 1) + 16;
  *total = at;
}

size_t lpq__wino_scratch(const conv_params_t *p) {
  size_t v, y, r, o, total;
  wino_layout(p, &v, &y, &r, &o, &total);
  /* the hooked weights' transform and pack (thread 0's area) */
  return total + lpq__wino_packed_floats(p) + (size_t)(p->M * p->C) + 32;
}

/* U_xi = (G g G^T)[i][j] for every (m, c), xi = 4i + j, each [M, C] written straight into
** lpq's packed-A layout (one pass over the weights: this runs per forward pass when a hook
** replaced them). tmp is unused (kept for the caller's scratch layout). */
void lpq__wino_pack_weights(const conv_params_t *p, const float *w, float *out, float *tmp) {
  (void)tmp;
  const size_t M = (size_t)p->M, C = (size_t)p->C, per = lpq__sgemm_packed_a_floats(M, C);
  for (size_t m0 = 0; m0 < M; m0 += SGEMM_MC) {
    const size_t mc = M - m0 < SGEMM_MC ? M - m0 : SGEMM_MC;
    const size_t mcr = (mc + SGEMM_MR - 1) / SGEMM_MR * SGEMM_MR;
    for (size_t k0 = 0; k0 < C; k0 += SGEMM_KC) {
      const size_t kc = C - k0 < SGEMM_KC ? C - k0 : SGEMM_KC;
      for (size_t pr = 0; pr < mc; pr += SGEMM_MR) { /* one panel: MR rows, k-major */
        float *o = out + m0 * C + mcr * k0 + pr * kc;
        for (size_t k = k0; k < k0 + kc; k++, o += SGEMM_MR) {
          float u[16][SGEMM_MR];
          for (size_t r = 0; r < SGEMM_MR; r++) {
            const size_t m = m0 + pr + r;
            if (m >= m0 + mc) { /* padding rows of the last panel */
              for (int xi = 0; xi < 16; xi++)
                u[xi][r] = 0.0f;
              continue;
            }
            const float *g = w + (m * C + k) * 9;
            float t[4][3];
            for (int b = 0; b < 3; b++) { /* t = G g */
              t[0][b] = g[b], t[3][b] = g[6 + b];
              t[1][b] = 0.5f * (g[b] + g[3 + b] + g[6 + b]);
              t[2][b] = 0.5f * (g[b] - g[3 + b] + g[6 + b]);
            }
            for (int i = 0; i < 4; i++) { /* u = t G^T */
              u[4 * i][r] = t[i][0], u[4 * i + 3][r] = t[i][2];
              u[4 * i + 1][r] = 0.5f * (t[i][0] + t[i][1] + t[i][2]);
              u[4 * i + 2][r] = 0.5f * (t[i][0] - t[i][1] + t[i][2]);
            }
          }
          for (int xi = 0; xi < 16; xi++)
            memcpy(o + (size_t)xi * per, u[xi], sizeof u[xi]);
        }
      }
    }
  }
}

typedef struct wino_job_t {
  const kctx_t *k;
  const conv_params_t *p;
  const float *U;
  const float *residual;
  float lo, hi;
  int64_t tb, th, tw, tiles;
  size_t v_off, y_off, row_off, out_off;
} wino_job_t;

/* Input row iy of channel plane x for tiles tx in [a, b), de-interleaved: E[u] = column
** 2(a + u) - pl, O[u] = the next one; zero outside the plane. line: 2 (b - a) + 2 floats. */
static void load_row(const conv_params_t *p, const float *x, int64_t iy, int64_t a, int64_t b,
                     float *line, float *E, float *O, size_t ld) {
  const int64_t n = 2 * (b - a) + 2, x0 = 2 * a - p->p[1];
  if (iy < 0 || iy >= p->H) {
    memset(E, 0, ld * sizeof *E);
    memset(O, 0, ld * sizeof *O);
    return;
  }
  const float *row = x + iy * p->W;
  if (n < 32) { /* short rows: straight into E and O, no calls */
    for (int64_t i = 0; i < n; i++) {
      const int64_t ix = x0 + i;
      (i % 2 ? O : E)[i / 2] = ix >= 0 && ix < p->W ? row[ix] : 0.0f;
    }
    return;
  }
  const int64_t lo = x0 < 0 ? -x0 : 0, hi = p->W - x0 < n ? p->W - x0 : n;
  for (int64_t i = 0; i < lo && i < n; i++)
    line[i] = 0.0f;
  if (hi > lo)
    memcpy(line + lo, row + x0 + lo, (size_t)(hi - lo) * sizeof *line);
  for (int64_t i = hi > lo ? hi : lo; i < n; i++)
    line[i] = 0.0f;
  lpq__kern_deinterleave(E, O, line, (size_t)n);
}

/* V for tiles [t0, t0 + nt) of the block starting at tile tblock: V_xi[c][t] in B panels. Runs
** of tiles in one tile row; channel by channel, so the next tile row of the same image reuses
** the two input rows it shares with this one. */
static void input_transform(const wino_job_t *j, const float *x, int64_t tblock, int64_t t0,
                            int64_t nt, float *V, float *buf) {
  const conv_params_t *p = j->p;
  const int64_t C = p->C, HW = p->H * p->W, per_img = j->th * j->tw;
  const size_t ld = (size_t)j->tw + 2, vstride = (size_t)(C * j->tb);
  float *line = buf + 8 * ld;
  for (int64_t c = 0; c < C; c++) {
    float *E[4], *O[4];
    for (int r = 0; r < 4; r++)
      E[r] = buf + (size_t)(2 * r) * ld, O[r] = buf + (size_t)(2 * r + 1) * ld;
    int64_t pimg = -1, pty = -1, pa = -1, pb = -1;
    for (int64_t done = 0; done < nt;) {
      const int64_t t = t0 + done, img = t / per_img, ty = t % per_img / j->tw, a = t % j->tw;
      const int64_t b = j->tw - a < nt - done ? j->tw : a + (nt - done), len = b - a;
      const float *xc = x + (img * C + c) * HW;
      int first = 0;
      if (img == pimg && ty == pty + 1 && a == pa && b == pb) { /* rows 2, 3 become 0, 1 */
        float *e0 = E[0], *e1 = E[1], *o0 = O[0], *o1 = O[1];
        E[0] = E[2], E[1] = E[3], O[0] = O[2], O[1] = O[3];
        E[2] = e0, E[3] = e1, O[2] = o0, O[3] = o1;
        first = 2;
      }
      for (int r = first; r < 4; r++)
        load_row(p, xc, 2 * ty - p->p[0] + r, a, b, line, E[r], O[r], ld);
      const int64_t col = t - tblock;
      lpq__kern_wino_in((size_t)len, (const float *const *)E, (const float *const *)O,
                        V + (size_t)(c * NR), vstride, (size_t)col, (size_t)(C * NR));
      pimg = img, pty = ty, pa = a, pb = b;
      done += len;
    }
  }
}

/* y for tiles [t0, t0 + nt) from Y_xi[m][t - t0] (row length ldy), bias, residual, clamp. */
static void output_transform(const wino_job_t *j, const float *Y, size_t ldy, int64_t t0,
                             int64_t nt) {
  const conv_params_t *p = j->p;
  const kctx_t *k = j->k;
  const int64_t M = p->M, OH = p->OH, OW = p->OW, OHW = OH * OW, per_img = j->th * j->tw;
  const size_t ystride = (size_t)M * ldy;
  float *y = k->out[0];
  for (int64_t done = 0; done < nt;) {
    const int64_t t = t0 + done, img = t / per_img, ty = t % per_img / j->tw, a = t % j->tw;
    const int64_t len = j->tw - a < nt - done ? j->tw - a : nt - done;
    const int64_t ox0 = 2 * a, w = 2 * len < OW - ox0 ? 2 * len : OW - ox0;
    const int rows = 2 * ty + 1 < OH ? 2 : 1;
    for (int64_t m = 0; m < M; m++) {
      const size_t at = (size_t)((img * M + m) * OHW + 2 * ty * OW + ox0);
      const float *res[2] = {j->residual ? j->residual + at : NULL,
                             j->residual ? j->residual + at + OW : NULL};
      const wino_out_t o = {{y + at, y + at + OW}, j->residual ? res : NULL,
                            k->bias ? k->bias[m] : 0.0f, j->lo, j->hi, (size_t)w, rows};
      lpq__kern_wino_out((size_t)len, Y + (size_t)m * ldy + (size_t)done, ystride, &o);
    }
    done += len;
  }
}

static void wino_task(void *arg, size_t task, int tid) {
  const wino_job_t *j = arg;
  const conv_params_t *p = j->p;
  float *scratch = thread_scratch(j->k, tid);
  float *V = scratch + j->v_off, *Y = scratch + j->y_off;
  const int64_t t0 = (int64_t)task * j->tb, nt = j->tiles - t0 < j->tb ? j->tiles - t0 : j->tb;
  const int64_t ncols = (nt + NR - 1) / NR * NR;
  const size_t vstride = (size_t)(p->C * j->tb), ystride = (size_t)(p->M * j->tb);
  if (nt < ncols) /* the last panel's unused columns: zero, so they stay finite */
    for (int xi = 0; xi < 16; xi++)
      for (int64_t c = 0; c < p->C; c++)
        memset(V + xi * vstride + (size_t)((ncols - NR) * p->C + c * NR + nt % NR), 0,
               (size_t)(NR - nt % NR) * sizeof *V);
  input_transform(j, j->k->in[0], t0, t0, nt, V, scratch + j->row_off);
  const size_t per = lpq__sgemm_packed_a_floats((size_t)p->M, (size_t)p->C);
  for (int xi = 0; xi < 16; xi++)
    lpq__kern_sgemm_packed((size_t)p->M, (size_t)nt, (size_t)p->C, j->U + xi * per,
                           V + xi * vstride, Y + xi * ystride, (size_t)j->tb);
  output_transform(j, Y, (size_t)j->tb, t0, nt);
}

int lpq__wino_run(const kctx_t *k, float lo, float hi) {
  const gnode_t *n = k->n;
  const conv_params_t *p = n->params;
  wino_job_t j = {.k = k, .p = p, .lo = lo, .hi = hi};
  j.residual = n->residual ? (const float *)k->in[3] : NULL;
  j.tb = wino_block(p), j.th = (p->OH + 1) / 2, j.tw = (p->OW + 1) / 2;
  j.tiles = p->N * j.th * j.tw;
  size_t total;
  wino_layout(p, &j.v_off, &j.y_off, &j.row_off, &j.out_off, &total);
  const float *base = n->wdata ? n->wdata : (const float *)k->in[1];
  if (n->wpack && k->weight == base) {
    j.U = n->wpack;
  } else { /* thread 0's area past its own layout: read by every thread */
    float *U = k->scratch + total + 16;
    lpq__wino_pack_weights(p, k->weight, U, U + lpq__wino_packed_floats(p) + 16);
    j.U = U;
  }
  lpq__threads_run(k->pool, (size_t)((j.tiles + j.tb - 1) / j.tb), wino_task, &j);
  return 0;
}
