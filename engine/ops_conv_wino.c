/* engine/ops_conv_wino.c: Winograd F(2x2, 3x3) and F(4x4, 3x3) for dense 3x3 stride-1
** undilated convolutions (ResNet's bulk): a 2x2 output tile costs 16 multiplies per input
** channel instead of 36, a 4x4 one 36 instead of 144.
** Weights: U = G g G^T, 16 (36) matrices [M, C] packed for lpq's GEMM kernel (at load, or per
** run when a hook replaced the weights). A run walks blocks of tiles, one task each: the input
** tiles' V = B^T d B straight into the kernel's B panels, 16 (36) GEMMs Y = U V, and the output
** transform A^T Y A with bias, residual and activation on the way to the output. The F(2x2)
** transforms take 16 tiles a call: on maps whose tile rows are shorter (28x28 and below) a
** call covers 16 consecutive tiles of the block over several tile rows and images. */
#include "engine/ops_conv_wino.h"

/* -O2's "very cheap" vectoriser skips loops whose trip count is unknown; these need it. */
#if defined(__GNUC__) && !defined(__clang__) /* clang vectorises at -O2 and has no such pragma */
#pragma GCC optimize("tree-vectorize", "vect-cost-model=dynamic")
/* short variable zero fills stay loops: a memset call costs more than they do */
#pragma GCC optimize("no-tree-loop-distribute-patterns")
#endif

#include <stdlib.h>
#include <string.h>

#define WINO_SLACK 34 /* floats past a line's 2 tw + 2 (a run's last lane reads 36 from 2a) */

int lpq__wino_row_path;
int lpq__wino_any_batch;

/* x rounded up to the GEMM kernel's panel width */
static int64_t panels(int64_t x) { return (x + SGEMM_NR - 1) / SGEMM_NR * SGEMM_NR; }

int lpq__wino_applies(const conv_params_t *p) {
  static int enabled = -1; /* LPQ_WINOGRAD=0: the implicit GEMM for these too */
  if (enabled < 0) {
    const char *e = getenv("LPQ_WINOGRAD");
    enabled = !(e && strcmp(e, "0") == 0);
  }
  return enabled && lpq__sgemm_packs_a() && p->k[0] == 3 && p->k[1] == 3 && p->s[0] == 1 &&
         p->s[1] == 1 && p->d[0] == 1 && p->d[1] == 1 && p->groups == 1 && p->C >= 8 &&
         p->M >= 8 && p->OH >= 2 && p->OW >= 2 &&
         (lpq__wino_any_batch || 16 * panels(p->N * ((p->OH + 1) / 2) * ((p->OW + 1) / 2)) <
                                     9 * panels(p->N * p->OH * p->OW));
}

/* Output tile: 4x4 (F(4x4, 3x3), 36 transformed points, 4 multiplies per output instead of 9)
** on maps of at least 14x14 with 64 channels or more in and out (with fewer the transforms
** cost more than the multiplies saved: the bundled 28x28 resnet18's 16-channel layers ran 20%
** slower; at 14x14 the last tile is half empty and still resnet18's 256-channel layers ran in
** 7.0 ms instead of 9.1, at 7x7 no faster); 2x2 (16 points) otherwise. LPQ_WINOGRAD=2: always
** 2x2. 4x4 needs the AVX-512 run kernels (ops_kernels_wino4.c) or AVX2's intrinsics
** (ops_kernels_wino4_avx2.c, tile row by tile row: from 28x28 on, 14x14 ran slower than 2x2
** tiles, 28x28 ran 14.5 ms instead of 21, 56x56 14.3 instead of 29.9); the generic loops of
** ops_kernels_wino_body.h were slower than 2x2 tiles and remain only the AVX-512 row path the
** tests compare with (lpq__wino_row_path). The choice is fixed per process (the weights are
** transformed at load for it). */
static int wino_tile(const conv_params_t *p) {
  static int only2 = -1;
  if (only2 < 0) {
    const char *e = getenv("LPQ_WINOGRAD");
    only2 = e && strcmp(e, "2") == 0;
  }
  const int64_t least = lpq__kern_wino4_runs() ? 14 : lpq__kern_wino4_avx2() ? 28 : INT64_MAX;
  return !only2 && p->OH >= least && p->OW >= least && p->C >= 64 && p->M >= 64 ? 4 : 2;
}

/* Most tiles per task: V and Y of a block (nxi (C + M) floats per tile) within about 4 MB (L2
** and the next level; fewer, larger blocks stream the transformed weights fewer times). F(4x4)
** within 512 KB, in L2 (the input transform's stores to 36 matrices and the output transform's
** loads stay there: resnet18's 56x56 layers ran 25% faster at 32 tiles than at 224). */
static int64_t wino_block(const conv_params_t *p) {
  const int64_t ts = wino_tile(p), nxi = (ts + 2) * (ts + 2);
  int64_t tb = (ts == 4 ? 1 << 17 : 1 << 20) / (nxi * (p->C + p->M)) / NR * NR;
  return tb < NR ? NR : tb > 8 * NR ? 8 * NR : tb;
}

size_t lpq__wino_packed_floats(const conv_params_t *p) {
  const size_t ts = (size_t)wino_tile(p);
  return (ts + 2) * (ts + 2) * lpq__sgemm_packed_a_floats((size_t)p->M, (size_t)p->C);
}

/* The input lines a channel of a block needs on the multi-row path: at most 2 per tile row it
** touches and 2 more per image. */
static int64_t wino_lines(const conv_params_t *p) {
  const int64_t tb = wino_block(p), tw = (p->OW + 1) / 2, th = (p->OH + 1) / 2;
  return 2 * ((tb - 1) / tw + 2) + 2 * ((tb - 1) / (tw * th) + 2);
}

/* Per-thread scratch: V, Y, the input rows split by column phase, a line. */
static void wino_layout(const conv_params_t *p, size_t *v_off, size_t *y_off, size_t *row_off,
                        size_t *line_off, size_t *total) {
  const size_t ts = (size_t)wino_tile(p), nxi = (ts + 2) * (ts + 2);
  const size_t tb = (size_t)wino_block(p), tw = ((size_t)p->OW + ts - 1) / ts;
  size_t at = 0;
  *v_off = at, at += nxi * ((size_t)p->C * tb + WINO_PAD) + 16;
  *y_off = at, at += nxi * ((size_t)p->M * tb + WINO_PAD) + 16;
  /* (ts + 2) rows x ts phases of tw + 2, a line of ts tw + 2, 17 floats of slack (the
  ** transform kernels read 16 past a row's start) */
  *row_off = at, at += (ts + 2) * ts * (tw + 2) + ts * tw + 4 + 32;
  *line_off = at; /* the multi-row path's lines */
  if (ts == 2 && tw < WINO_RUN)
    at += (size_t)wino_lines(p) * (2 * tw + 2 + WINO_SLACK);
  *total = at;
}

size_t lpq__wino_scratch(const conv_params_t *p) {
  size_t v, y, r, l, total;
  wino_layout(p, &v, &y, &r, &l, &total);
  return total + lpq__wino_packed_floats(p) + 32; /* and the hooked weights' pack (thread 0) */
}

/* Column b of t = G x for MR rows side by side (x0, x1, x2: the three taps), G of F(2x2) or
** F(4x4); the divisions as multiplications by the reciprocals. */
static inline void wino_g(int ts, const float *x0, const float *x1, const float *x2,
                          float t[6][3][SGEMM_MR], int b) {
  const float s6 = 1.0f / 6.0f, s12 = 1.0f / 12.0f, s24 = 1.0f / 24.0f;
  for (int r = 0; r < SGEMM_MR; r++) {
    const float g0 = x0[r], g1 = x1[r], g2 = x2[r];
    if (ts == 2) {
      t[0][b][r] = g0, t[1][b][r] = 0.5f * (g0 + g1 + g2);
      t[2][b][r] = 0.5f * (g0 - g1 + g2), t[3][b][r] = g2;
    } else {
      t[0][b][r] = 0.25f * g0, t[1][b][r] = -(g0 + g1 + g2) * s6;
      t[2][b][r] = -(g0 - g1 + g2) * s6, t[3][b][r] = g0 * s24 + g1 * s12 + g2 * s6;
      t[4][b][r] = g0 * s24 - g1 * s12 + g2 * s6, t[5][b][r] = g2;
    }
  }
}

/* U_xi = (G g G^T)[i][j] for every (m, c), xi = 4i + j, each [M, C] written straight into
** lpq's packed-A layout (one pass over the weights: this runs per forward pass when a hook
** replaced them). */
void lpq__wino_pack_weights(const conv_params_t *p, const float *w, float *out) {
  const int ts = wino_tile(p), na = ts + 2, nxi = na * na;
  const size_t M = (size_t)p->M, C = (size_t)p->C, per = lpq__sgemm_packed_a_floats(M, C);
  for (size_t m0 = 0; m0 < M; m0 += SGEMM_MC) {
    const size_t mc = M - m0 < SGEMM_MC ? M - m0 : SGEMM_MC;
    const size_t mcr = (mc + SGEMM_MR - 1) / SGEMM_MR * SGEMM_MR;
    for (size_t k0 = 0; k0 < C; k0 += SGEMM_KC) {
      const size_t kc = C - k0 < SGEMM_KC ? C - k0 : SGEMM_KC;
      for (size_t pr = 0; pr < mc; pr += SGEMM_MR) { /* one panel: MR rows, k-major */
        float *o = out + m0 * C + mcr * k0 + pr * kc;
        for (size_t k = k0; k < k0 + kc; k++, o += SGEMM_MR) {
          /* the panel's MR rows side by side (padding rows zero): every step below is a
          ** loop over them, vectorised */
          float g[9][SGEMM_MR], t[6][3][SGEMM_MR], u[36][SGEMM_MR];
          for (size_t r = 0; r < SGEMM_MR; r++)
            for (size_t i = 0; i < 9; i++)
              g[i][r] = pr + r < mc ? w[((m0 + pr + r) * C + k) * 9 + i] : 0.0f;
          for (int b = 0; b < 3; b++) /* t = G g, by columns b */
            wino_g(ts, g[b], g[3 + b], g[6 + b], t, b);
          for (int i = 0; i < na; i++) { /* u = t G^T, row i */
            float ti[6][3][SGEMM_MR];
            wino_g(ts, t[i][0], t[i][1], t[i][2], ti, 0);
            for (int j = 0; j < na; j++)
              memcpy(u[i * na + j], ti[j][0], sizeof u[0]);
          }
          for (int xi = 0; xi < nxi; xi++)
            memcpy(o + (size_t)xi * per, u[xi], sizeof u[xi]);
        }
      }
    }
  }
}

/* F(4x4): input row iy of plane x for tiles [a, b) split by column phase: P[q][u] = column
** 4(a + u) + q - pl (u <= b - a), zero outside the plane. */
static void load_row4(const conv_params_t *p, const float *x, int64_t iy, int64_t a, int64_t b,
                      float *line, float *const *P) {
  const int64_t len = b - a, n = 4 * (len + 1), x0 = 4 * a - p->p[1];
  if (iy < 0 || iy >= p->H) {
    for (int q = 0; q < 4; q++)
      memset(P[q], 0, (size_t)(len + 1) * sizeof *line);
    return;
  }
  const float *row = x + iy * p->W;
  const int64_t lo = x0 < 0 ? -x0 : 0, hi = p->W - x0 < n ? p->W - x0 : n;
  for (int64_t i = 0; i < lo && i < n; i++)
    line[i] = 0.0f;
  if (hi > lo)
    memcpy(line + lo, row + x0 + lo, (size_t)(hi - lo) * sizeof *line);
  for (int64_t i = hi > lo ? hi : lo; i < n; i++)
    line[i] = 0.0f;
  lpq__kern_deinterleave4(P[0], P[1], P[2], P[3], line, (size_t)(len + 1));
}

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
  const int64_t C = p->C, HW = p->H * p->W, per_img = j->th * j->tw, ts = j->ts, nr = ts + 2;
  const size_t ld = (size_t)j->tw + 2, vstride = j->vstride;
  float *line = buf + (size_t)(nr * ts) * ld;
  for (int64_t c = 0; c < C; c++) {
    float *R[6][4]; /* row r's phases */
    for (int r = 0; r < nr; r++)
      for (int q = 0; q < ts; q++)
        R[r][q] = buf + (size_t)(r * ts + q) * ld;
    int64_t pimg = -1, pty = -1, pa = -1, pb = -1;
    for (int64_t done = 0; done < nt;) {
      const int64_t t = t0 + done, img = t / per_img, ty = t % per_img / j->tw, a = t % j->tw;
      const int64_t b = j->tw - a < nt - done ? j->tw : a + (nt - done), len = b - a;
      const float *xc = x + (img * C + c) * HW;
      int first = 0;
      if (img == pimg && ty == pty + 1 && a == pa && b == pb) { /* rows ts, ts + 1 -> 0, 1 */
        for (int q = 0; q < ts; q++) {
          float *old[6];
          for (int r = 0; r < nr; r++)
            old[r] = R[r][q];
          R[0][q] = old[ts], R[1][q] = old[ts + 1];
          for (int r = 0, at = 2; r < nr; r++)
            if (r != ts && r != ts + 1)
              R[at++][q] = old[r];
        }
        first = 2;
      }
      for (int r = first; r < nr; r++) {
        const int64_t iy = ts * ty - p->p[0] + r;
        if (ts == 2)
          load_row(p, xc, iy, a, b, line, R[r][0], R[r][1], ld);
        else
          load_row4(p, xc, iy, a, b, line, R[r]);
      }
      const int64_t col = t - tblock;
      if (ts == 2) {
        const float *E[4] = {R[0][0], R[1][0], R[2][0], R[3][0]};
        const float *O[4] = {R[0][1], R[1][1], R[2][1], R[3][1]};
        lpq__kern_wino_in((size_t)len, E, O, V + (size_t)(c * NR), vstride, (size_t)col,
                          (size_t)(C * NR));
      } else {
        const float *P[24];
        for (int r = 0; r < 6; r++)
          for (int q = 0; q < 4; q++)
            P[r * 4 + q] = R[r][q];
        if (lpq__kern_wino4_avx2())
          lpq__kern_wino4_in_avx2((size_t)len, P, V + (size_t)(c * NR), vstride, (size_t)col,
                                  (size_t)(C * NR));
        else
          lpq__kern_wino4_in((size_t)len, P, V + (size_t)(c * NR), vstride, (size_t)col,
                             (size_t)(C * NR));
      }
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
  const size_t ystride = j->ystride;
  float *y = k->out[0];
  for (int64_t done = 0; done < nt;) {
    const int64_t t = t0 + done, img = t / per_img, ty = t % per_img / j->tw, a = t % j->tw;
    const int64_t len = j->tw - a < nt - done ? j->tw - a : nt - done;
    const int64_t ts = j->ts, ox0 = ts * a, w = ts * len < OW - ox0 ? ts * len : OW - ox0;
    const int rows = (int)(OH - ts * ty < ts ? OH - ts * ty : ts);
    for (int64_t m = 0; m < M; m++) {
      const size_t at = (size_t)((img * M + m) * OHW + ts * ty * OW + ox0);
      wino_out_t o = {{NULL}, NULL, k->bias ? k->bias[m] : 0.0f, j->lo, j->hi, (size_t)w, rows};
      const float *res[4];
      for (int i = 0; i < rows; i++) {
        o.y[i] = y + at + (size_t)(i * OW);
        res[i] = j->residual ? j->residual + at + (size_t)(i * OW) : NULL;
      }
      o.res = j->residual ? res : NULL;
      if (ts == 2)
        lpq__kern_wino_out((size_t)len, Y + (size_t)m * ldy + (size_t)done, ystride, &o);
      else if (lpq__kern_wino4_avx2())
        lpq__kern_wino4_out_avx2((size_t)len, Y + (size_t)m * ldy + (size_t)done, ystride, &o);
      else
        lpq__kern_wino4_out((size_t)len, Y + (size_t)m * ldy + (size_t)done, ystride, &o);
    }
    done += len;
  }
}

int lpq__wino_block_segs(const wino_job_t *j, int64_t t0, int64_t nt, tile_seg_t *sg,
                         int *first) {
  const int64_t per_img = j->th * j->tw;
  int ns = 0, nr = 0;
  for (int64_t done = 0; done < nt;) {
    const int64_t t = t0 + done, a = t % j->tw, l0 = done % WINO_RUN;
    const int64_t left = nt - done < WINO_RUN - l0 ? nt - done : WINO_RUN - l0;
    if (l0 == 0)
      first[nr++] = ns;
    sg[ns] = (tile_seg_t){t / per_img, t % per_img / j->tw, a, j->tw - a < left ? j->tw - a : left,
                          l0};
    done += sg[ns++].len;
  }
  first[nr] = ns;
  return nr;
}

/* Columns [-pl, 2 tw + 2 - pl) of input row iy of plane xc into L (zero outside the plane), or
** a zero line for a row outside it. */
static const float *load_line(const conv_params_t *p, const float *xc, int64_t iy, int64_t n,
                              float *L) {
  static const float zeros[2 * WINO_RUN + 2 + WINO_SLACK];
  if (iy < 0 || iy >= p->H)
    return zeros;
  const float *row = xc + iy * p->W;
  const int64_t x0 = -p->p[1], lo = x0 < 0 ? (-x0 < n ? -x0 : n) : 0;
  const int64_t hi = p->W - x0 < n ? p->W - x0 : n;
  for (int64_t i = 0; i < lo; i++)
    L[i] = 0.0f;
  if (hi > lo)
    memcpy(L + lo, row + x0 + lo, (size_t)(hi - lo) * sizeof *L);
  for (int64_t i = hi > lo ? hi : lo; i < n; i++)
    L[i] = 0.0f;
  return L;
}

/* input_transform for tile rows shorter than WINO_RUN: channel by channel, the rows of the
** block's segments (nt tiles; a tile row shares two input rows with the one before), then one
** kernel call for its runs. The kernel reads the plane's rows with masks where it can, else
** zero-padded copies (lines). */
static void input_transform_segs(const wino_job_t *j, const float *x, const tile_seg_t *sg,
                                 const int *first, int nruns, int64_t nt, float *V,
                                 float *lines) {
  const conv_params_t *p = j->p;
  const int64_t C = p->C, HW = p->H * p->W, n = 2 * j->tw + 2;
  const size_t lw = (size_t)n + WINO_SLACK, vstride = j->vstride;
  const int avx2 = lpq__kern_wino4_avx2(), masked = lpq__kern_wino_masked() || avx2;
  if (!masked)
    for (int64_t i = 0; i < wino_lines(p); i++) /* the slack a run's last lanes read: finite */
      memset(lines + (size_t)i * lw + n, 0, WINO_SLACK * sizeof *lines);
  wino_iseg_t is[WINO_MAX_SEGS];
  for (int64_t c = 0; c < C; c++) {
    if (masked && c > 0) { /* the same segments, the plane c HW floats further */
      lpq__kern_wino_in_segs((size_t)nt, is, first, (size_t)nruns, p->W, (size_t)(c * HW),
                             V + (size_t)(c * NR), vstride, (size_t)(C * NR));
      continue;
    }
    const float *r0 = NULL, *r1 = NULL, *r2 = NULL, *r3 = NULL;
    int64_t pimg = -1, pty = -1;
    float *L = lines;
    for (int s = 0; s < first[nruns]; s++) {
      const tile_seg_t *g = &sg[s];
      const float *xc = x + (g->img * C + c) * HW;
      const int64_t iy = 2 * g->ty - p->p[0];
      if (masked) {
        r0 = iy >= 0 && iy < p->H ? xc + iy * p->W : NULL;
        r1 = iy + 1 >= 0 && iy + 1 < p->H ? xc + (iy + 1) * p->W : NULL;
        r2 = iy + 2 >= 0 && iy + 2 < p->H ? xc + (iy + 2) * p->W : NULL;
        r3 = iy + 3 >= 0 && iy + 3 < p->H ? xc + (iy + 3) * p->W : NULL;
      } else if (g->img != pimg || g->ty != pty) { /* else the rest of the last run's tile row */
        if (g->img == pimg && g->ty == pty + 1) { /* rows 2, 3 -> 0, 1 */
          r0 = r2, r1 = r3;
        } else {
          r0 = load_line(p, xc, iy, n, L), L += lw;
          r1 = load_line(p, xc, iy + 1, n, L), L += lw;
        }
        r2 = load_line(p, xc, iy + 2, n, L), L += lw;
        r3 = load_line(p, xc, iy + 3, n, L), L += lw;
      }
      is[s].row[0] = r0, is[s].row[1] = r1, is[s].row[2] = r2, is[s].row[3] = r3;
      is[s].x0 = 2 * g->a - (masked ? p->p[1] : 0);
      is[s].l0 = (size_t)g->l0, is[s].len = (size_t)g->len;
      pimg = g->img, pty = g->ty;
    }
    if (avx2) { /* every channel in one call, run by run (its masks computed once) */
      lpq__kern_wino_in_segs_avx2((size_t)nt, is, first, (size_t)nruns, p->W, (size_t)C,
                                  (size_t)HW, V, vstride, (size_t)(C * NR));
      return;
    }
    lpq__kern_wino_in_segs((size_t)nt, is, first, (size_t)nruns, p->W, 0, V + (size_t)(c * NR),
                           vstride, (size_t)(C * NR));
  }
}

/* output_transform for tile rows shorter than WINO_RUN: a call per run and output channel
** m in [m0, m1). */
static void output_transform_segs(const wino_job_t *j, const float *Y, size_t ldy,
                                  const tile_seg_t *sg, const int *first, int nruns, int64_t m0,
                                  int64_t m1) {
  const conv_params_t *p = j->p;
  const kctx_t *k = j->k;
  const int64_t M = p->M, OH = p->OH, OW = p->OW, OHW = OH * OW;
  const size_t ystride = j->ystride;
  float *y = k->out[0];
  wino_oseg_t os[WINO_MAX_SEGS];
  for (int s = 0; s < first[nruns]; s++) {
    const tile_seg_t *g = &sg[s];
    const int64_t at = g->img * M * OHW + 2 * g->ty * OW + 2 * g->a;
    os[s].rows = OH - 2 * g->ty < 2 ? 1 : 2;
    os[s].w = (size_t)(2 * g->len < OW - 2 * g->a ? 2 * g->len : OW - 2 * g->a);
    os[s].l0 = (size_t)g->l0;
    for (int i = 0; i < 2; i++) {
      const int64_t r = at + (i < os[s].rows ? i : 0) * OW;
      os[s].y[i] = y + r;
      os[s].res[i] = j->residual ? j->residual + r : NULL;
    }
  }
  for (int64_t m = m0; m < m1; m++) {
    const float bias = k->bias ? k->bias[m] : 0.0f;
    for (int r = 0; r < nruns; r++)
      lpq__kern_wino_out_segs(Y + (size_t)m * ldy + (size_t)(r * WINO_RUN), ystride,
                              os + first[r], (size_t)(first[r + 1] - first[r]),
                              (size_t)(m * OHW), bias, j->lo, j->hi);
  }
}

static void wino_task(void *arg, size_t task, int tid) {
  const wino_job_t *j = arg;
  const conv_params_t *p = j->p;
  float *scratch = thread_scratch(j->k, tid);
  float *V = scratch + j->v_off, *Y = scratch + j->y_off;
  const int64_t part = (int64_t)task % j->mparts, blk = (int64_t)task / j->mparts;
  const int64_t t0 = blk * j->tpt, nt = j->tiles - t0 < j->tpt ? j->tiles - t0 : j->tpt;
  /* output channels [m0, m1): whole A panels of SGEMM_MR rows */
  const int64_t m0 = p->M * part / j->mparts / SGEMM_MR * SGEMM_MR;
  const int64_t m1 =
      part + 1 == j->mparts ? p->M : p->M * (part + 1) / j->mparts / SGEMM_MR * SGEMM_MR;
  const int64_t ncols = (nt + NR - 1) / NR * NR;
  const size_t vstride = j->vstride, ystride = j->ystride;
  if (nt < ncols) /* the last panel's unused columns: zero, so they stay finite */
    for (int xi = 0; xi < j->nxi; xi++)
      for (int64_t c = 0; c < p->C; c++)
        memset(V + xi * vstride + (size_t)((ncols - NR) * p->C + c * NR + nt % NR), 0,
               (size_t)(NR - nt % NR) * sizeof *V);
  tile_seg_t sg[WINO_MAX_SEGS];
  int first[8 * NR / WINO_RUN + 1], nruns = 0;
  if (j->segs || j->segs4)
    nruns = lpq__wino_block_segs(j, t0, nt, sg, first);
  if (j->segs4) {
    lpq__wino4_input_segs(j, sg, first, nruns, nt, V);
  } else if (j->segs) {
    input_transform_segs(j, j->k->in[0], sg, first, nruns, nt, V, scratch + j->line_off);
  } else {
    input_transform(j, j->k->in[0], t0, t0, nt, V, scratch + j->row_off);
  }
  const size_t per = lpq__sgemm_packed_a_floats((size_t)p->M, (size_t)p->C);
  for (int xi = 0; xi < j->nxi; xi++)
    if (j->mparts > 1) /* the task's output channels (M > 8: the same bits as the whole) */
      lpq__kern_sgemm_packed_rows((size_t)p->M, (size_t)m0, (size_t)m1, (size_t)nt,
                                  (size_t)p->C, j->U + xi * per, V + xi * vstride,
                                  Y + xi * ystride + (size_t)m0 * j->tb, (size_t)j->tb, NULL);
    else
      lpq__kern_sgemm_packed((size_t)p->M, (size_t)nt, (size_t)p->C, j->U + xi * per,
                             V + xi * vstride, Y + xi * ystride, (size_t)j->tb);
  if (j->segs4)
    lpq__wino4_output_segs(j, Y, (size_t)j->tb, sg, first, nruns, m0, m1);
  else if (j->segs)
    output_transform_segs(j, Y, (size_t)j->tb, sg, first, nruns, m0, m1);
  else
    output_transform(j, Y, (size_t)j->tb, t0, nt);
}

int lpq__wino_run(const kctx_t *k, float lo, float hi) {
  const gnode_t *n = k->n;
  const conv_params_t *p = n->params;
  wino_job_t j = {.k = k, .p = p, .lo = lo, .hi = hi};
  j.residual = n->residual ? (const float *)k->in[3] : NULL;
  j.ts = wino_tile(p), j.nxi = (j.ts + 2) * (j.ts + 2), j.tb = wino_block(p);
  j.th = (p->OH + j.ts - 1) / j.ts, j.tw = (p->OW + j.ts - 1) / j.ts;
  j.vstride = (size_t)(p->C * j.tb) + WINO_PAD, j.ystride = (size_t)(p->M * j.tb) + WINO_PAD;
  j.tiles = p->N * j.th * j.tw;
  size_t total;
  wino_layout(p, &j.v_off, &j.y_off, &j.row_off, &j.line_off, &total);
  j.segs = j.ts == 2 && j.tw < WINO_RUN && !lpq__wino_row_path;
  j.segs4 = j.ts == 4 && lpq__kern_wino4_runs() && !lpq__wino_row_path;
  const float *base = n->wdata ? n->wdata : (const float *)k->in[1];
  if (n->wpack && k->weight == base) {
    j.U = n->wpack;
  } else { /* thread 0's area past its own layout: read by every thread */
    float *U = k->scratch + total + 16;
    lpq__wino_pack_weights(p, k->weight, U);
    j.U = U;
  }
  /* as many tasks as blocks of tb, rounded up to a multiple of the threads, evenly filled; a
  ** map of at most one panel of tiles (a small map at batch 1) instead in one block whose
  ** output channels the threads share: split, its tiles would pad two panels of 32 columns */
  const int64_t thr = lpq__threads_count(k->pool);
  j.mparts = 1;
  if ((j.segs || j.segs4) && thr > 1 && j.tiles <= NR && p->M >= 2 * SGEMM_MR * thr) {
    j.mparts = thr, j.tpt = j.tiles;
  } else {
    int64_t ntasks = (j.tiles + j.tb - 1) / j.tb;
    ntasks = (ntasks + thr - 1) / thr * thr;
    j.tpt = (j.tiles + ntasks - 1) / ntasks;
  }
  lpq__threads_run(k->pool, (size_t)((j.tiles + j.tpt - 1) / j.tpt * j.mparts), wino_task, &j);
  return 0;
}
