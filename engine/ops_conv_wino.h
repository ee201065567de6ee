/* engine/ops_conv_wino.h: what the Winograd convolution's files share (ops_conv_wino.c, the
** F(4x4) multi-row path ops_conv_wino4.c and its AVX-512 kernels ops_kernels_wino4.c). Private
** to engine/; only those files include it. */
#ifndef LPQ_OPS_CONV_WINO_H
#define LPQ_OPS_CONV_WINO_H

#include "engine/engine_internal.h"

#define NR SGEMM_NR
/* Maps whose tile rows are shorter than 16 tiles: a transform covers a run of 16 tiles of the
** block over several tile rows (and images), one segment per tile row it touches; a block
** (<= 8 NR tiles) has at most one segment per tile and one more per run. */
#define WINO_RUN 16
#define WINO_MAX_SEGS (8 * NR + 8 * NR / WINO_RUN)
/* Floats between consecutive matrices V_xi (Y_xi) past their C tb (M tb): one cache line, so
** the transforms' 16 or 36 stores (loads) per lane vector fall in different L1 sets (C tb
** floats is often a multiple of 4 KB: 64 channels x 32 tiles). */
#define WINO_PAD 16

typedef struct wino_job_t {
  const kctx_t *k;
  const conv_params_t *p;
  const float *U;
  const float *residual;
  float lo, hi;
  int64_t ts, nxi, tb, th, tw, tiles; /* output tile side, transformed points */
  int64_t tpt; /* tiles per task (<= tb, the row length of V and Y) */
  int64_t mparts; /* tasks per block, each its share of the output channels (few tiles) */
  int segs;    /* F(2x2) tile rows shorter than WINO_RUN: runs over several tile rows */
  int segs4;   /* F(4x4) in runs of WINO_RUN tiles over tile rows (AVX-512) */
  size_t v_off, y_off, row_off, line_off;
  size_t vstride, ystride; /* floats from V_xi to V_xi+1, from Y_xi to Y_xi+1 */
} wino_job_t;

/* Part of a run of WINO_RUN tiles in one tile row: tiles [a, a + len) of tile row ty of image
** img, lanes [l0, l0 + len) of the run. */
typedef struct tile_seg_t {
  int64_t img, ty, a, len, l0;
} tile_seg_t;

/* The segments of the block's tiles [t0, t0 + nt) in runs of WINO_RUN lanes; run k's are
** first[k] to first[k + 1]. Returns the number of runs. (ops_conv_wino.c) */
int lpq__wino_block_segs(const wino_job_t *j, int64_t t0, int64_t nt, tile_seg_t *sg,
                         int *first);

/* F(4x4) over runs of 16 tiles (ops_conv_wino4.c): V of the block's nt tiles (B panels, row
** length tb), and the outputs of channels [m0, m1) from Y (row length ldy), bias, residual and
** clamp. */
void lpq__wino4_input_segs(const wino_job_t *j, const tile_seg_t *sg, const int *first,
                           int nruns, int64_t nt, float *V);
void lpq__wino4_output_segs(const wino_job_t *j, const float *Y, size_t ldy,
                            const tile_seg_t *sg, const int *first, int nruns, int64_t m0,
                            int64_t m1);

/* The kernels (ops_kernels_wino4.c). Lane l0 + i of a segment (i < len) has its 6x6 window at
** rows row[r] (the plane's rows, NULL: outside the plane, zero), columns x0 + 4i .. x0 + 4i + 5
** (only [0, W) read, zero elsewhere). Output segments: rows y[i] (i < rows) and residual rows
** res[i] (NULL: none) from the segment's first tile's first column, w columns valid. */
typedef struct wino4_iseg_t {
  const float *row[6];
  int64_t x0;
  size_t l0, len;
  /* set by lpq__kern_wino4_masks: the same for every channel and row */
  int64_t sh;
  uint64_t ma, mb;
  unsigned lm;
} wino4_iseg_t;
typedef struct wino4_oseg_t {
  float *y[4];
  const float *res[4];
  size_t l0, w;
  int rows;
} wino4_oseg_t;
/* Whether the F(4x4) run kernels exist here (AVX-512 in use). */
int lpq__kern_wino4_runs(void);
/* The load masks of n segments (plane width W), once per block. */
void lpq__kern_wino4_masks(wino4_iseg_t *seg, int n, int64_t W);
/* V of the nt tiles of a block for one channel: run k (block columns [16 k, 16 k + 16)) has
** segments first[k] to first[k + 1] (masks set); off is added to every row pointer read.
** V_xi of block column t goes to dst[xi * vstride + t / 32 * pstride + t % 32] (16 lanes
** stored per run; lanes past nt are zero). */
void lpq__kern_wino4_in_runs(const wino4_iseg_t *seg, const int *first, size_t nruns,
                             size_t off, float *dst, size_t vstride, size_t pstride);
/* One run of one output channel: Y_xi of its 16 lanes at s + xi * ystride; off is added to
** every y and res pointer. */
void lpq__kern_wino4_out_run(const float *s, size_t ystride, const wino4_oseg_t *seg,
                             size_t nseg, size_t off, float bias, float lo, float hi);

/* The row-by-row F(4x4) transforms with AVX2 intrinsics (ops_kernels_wino4_avx2.c), as
** lpq__kern_wino4_in and lpq__kern_wino4_out; lpq__kern_wino4_avx2(): AVX2 is in use. */
int lpq__kern_wino4_avx2(void);
/* lpq__kern_wino_in_segs with AVX2 from the plane's rows (as with lpq__kern_wino_masked()),
** for all C channels at once: channel c's rows are c HW floats past channel 0's, its V columns
** at dst + c NR (ops_kernels_wino2_avx2.c). */
void lpq__kern_wino_in_segs_avx2(size_t nt, const wino_iseg_t *seg, const int *first,
                                 size_t nruns, int64_t W, size_t C, size_t HW, float *dst,
                                 size_t vstride, size_t pstride);
void lpq__kern_wino4_in_avx2(size_t len, const float *const *P, float *dst, size_t vstride,
                             size_t col0, size_t pstride);
void lpq__kern_wino4_out_avx2(size_t len, const float *s, size_t ystride, const wino_out_t *o);

#endif
