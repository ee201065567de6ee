/* engine/ops_conv_direct.c: a direct convolution for layers with few input channels and a
** large kernel (the stem of an image network: 3 -> 64 channels, 7x7, stride 2 at 224x224).
** As an implicit GEMM it packs K = C kh kw = 147 rows of input columns for only M = 64 output
** channels, so the packing costs as much as the multiplies. Here each output row is computed
** from vectors of 16 output columns: the band's input rows are split once by column phase
** (ix mod stride), so tap (ky, kx)'s inputs for 16 consecutive outputs are one unaligned load;
** a block of 3 output channels x 7 vectors (112 columns) stays in 21 registers over all taps
** (4 channels would need more registers than there are with the broadcasts); with AVX2 2
** channels x 6 vectors of 8 in 12 of its 16 registers. resnet18's stem (batch 8, one thread,
** AVX-512): 18.9 ms instead of 23.6 in the model. Without AVX2 the implicit GEMM runs these,
** and only windows of 5x5 or more: on an AVX2-only EPYC (2026-12-07) mobilenet_v2's 3x3 stem
** (3 -> 32) took 16-19 ms a batch of 8 here and 7.5-8.3 as the implicit GEMM (its stride-2
** packing vectorised), resnet18's 7x7 stem the same either way; on an AVX-512 Zen 5 EPYC
** (2026-12-08) the 3x3 stem 2.5-2.7 ms here, 2.0-2.3 as the implicit GEMM, the 7x7 one 10.7
** here, 12.7 as the implicit GEMM. */
#include "engine/engine_internal.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define DR 3     /* output channels per block (AVX-512) */
#define DV 7     /* vectors of 16 output columns per block */
#define DR2 2    /* the same with AVX2: 2 channels x 6 vectors of 8 columns */
#define DV2 6
#define DBAND 8  /* output rows per task */

int lpq__direct_applies(const conv_params_t *p) {
  static int enabled = -1; /* LPQ_DIRECT=0: the implicit GEMM for these too */
  if (enabled < 0) {
    const char *e = getenv("LPQ_DIRECT");
    enabled = !(e && strcmp(e, "0") == 0);
  }
  return enabled && lpq__isa() >= LPQ_ISA_AVX2 && p->spatial == 2 && p->groups == 1 &&
         p->C <= 4 && p->k[0] >= 3 && p->k[1] >= 3 && p->k[0] <= 11 && p->k[1] <= 11 &&
         p->d[0] == 1 && p->d[1] == 1 && p->s[0] == p->s[1] && p->s[1] <= 4 && p->OW >= 8 &&
         !lpq__wino_applies(p) && p->k[0] * p->k[1] >= 25;
}

/* Phase row length: output columns (rounded up to whole vectors) plus the taps' reach. */
static size_t phase_len(const conv_params_t *p) {
  const size_t ow = ((size_t)p->OW + 15) / 16 * 16;
  return (ow + (size_t)(p->k[1] - 1) / (size_t)p->s[1] + 1 + 15) / 16 * 16;
}

static size_t band_rows(const conv_params_t *p) {
  return (size_t)(p->s[0] * (DBAND - 1) + p->k[0]);
}

static size_t packed_floats(const conv_params_t *p) { /* M rounded up to DR or DR2 */
  return (size_t)((p->M + DR) * p->C * p->k[0] * p->k[1]);
}

size_t lpq__direct_scratch(const conv_params_t *p) {
  /* the band's phase rows, a padded input line, up to 16 floats to align them to 64 bytes;
  ** thread 0: the packed weights past them */
  const size_t rows = (size_t)p->C * band_rows(p) * (size_t)p->s[1] * phase_len(p);
  const size_t line = (size_t)p->s[1] * phase_len(p) + 16;
  return rows + line + packed_floats(p) + 32;
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) /* the kernels */
#include <immintrin.h>

/* w[m][c][ky][kx] -> wp[m / dr][c][ky][kx][m % dr], zero for m >= M. */
static void pack_weights(const conv_params_t *p, const float *w, int64_t dr, float *wp) {
  const int64_t taps = p->C * p->k[0] * p->k[1], blocks = (p->M + dr - 1) / dr;
  for (int64_t b = 0; b < blocks; b++)
    for (int64_t t = 0; t < taps; t++)
      for (int64_t r = 0; r < dr; r++) {
        const int64_t m = b * dr + r;
        wp[(b * taps + t) * dr + r] = m < p->M ? w[m * taps + t] : 0.0f;
      }
}

typedef struct direct_job_t direct_job_t;
/* Output row (rel rows into the band), columns from ox0 (nv vectors), channel block b. */
typedef void (*direct_block_fn)(const direct_job_t *j, const float *P, int64_t rel, int64_t iy0,
                                int64_t b, int64_t ox0, int64_t nv, float *y, const float *res);
struct direct_job_t {
  const kctx_t *k;
  const conv_params_t *p;
  const float *wp, *residual;
  float lo, hi;
  int64_t bands; /* per image */
  size_t plen, brows;
  int64_t dr, lanes, dv; /* channels per block, floats per vector, vectors per block */
  int64_t ystride;       /* floats between output channels (OH OW, or OW in a pooled run) */
  /* pooled run (lpq__direct_pool_run): the MaxPool's window and output, slices per image and
  ** pooled rows per slice, and where each thread's rows and ring of row maxima are */
  const conv_params_t *pw;
  float *py;
  int64_t slices, per;
  size_t rows_off, ring_off;
};

/* Input rows [iy0, iy0 + brows) of image x split by column phase: P[(c brows + r) s + q][j] =
** x[c][iy0 + r][s j + q - pl], zero outside the plane. */
static void split_rows(const direct_job_t *j, const float *x, int64_t iy0, float *P,
                       float *line) {
  const conv_params_t *p = j->p;
  const int64_t s = p->s[1], H = p->H, W = p->W, n = s * (int64_t)j->plen;
  for (int64_t c = 0; c < p->C; c++)
    for (int64_t r = 0; r < (int64_t)j->brows; r++) {
      const int64_t iy = iy0 + r;
      float *dst = P + (size_t)((c * (int64_t)j->brows + r) * s) * j->plen;
      if (iy < 0 || iy >= H) /* never read: the taps of rows outside the plane are skipped */
        continue;
      const float *row = x + (c * H + iy) * W;
      const int64_t x0 = -p->p[1], lo = x0 < 0 ? (-x0 < n ? -x0 : n) : 0;
      const int64_t hi = W - x0 < n ? W - x0 : n;
      float *L = s == 1 ? dst : line;
      for (int64_t i = 0; i < lo; i++)
        L[i] = 0.0f;
      if (hi > lo)
        memcpy(L + lo, row + x0 + lo, (size_t)(hi - lo) * sizeof *L);
      for (int64_t i = hi > lo ? hi : lo; i < n; i++)
        L[i] = 0.0f;
      if (s == 2) {
        lpq__kern_deinterleave(dst, dst + j->plen, line, (size_t)n);
      } else if (s > 2) {
        for (int64_t q = 0; q < s; q++)
          for (size_t u = 0; u < j->plen; u++)
            dst[(size_t)q * j->plen + u] = line[(size_t)s * u + (size_t)q];
      }
    }
}

/* Output rows [oy0, oy1) of image img (at most a band): the band's input rows split into P,
** then the rows block by block, row oy at y + (oy - oy0) * yrow (block: the ISA's kernel, a
** constant where this is inlined, so the kernel is inlined too). */
static inline __attribute__((always_inline)) void conv_rows(const direct_job_t *j, float *P,
                                                             int64_t img, int64_t oy0,
                                                             int64_t oy1, float *y, int64_t yrow,
                                                             direct_block_fn block) {
  const conv_params_t *p = j->p;
  const int64_t iy0 = p->s[0] * oy0 - p->p[0], OHW = p->OH * p->OW;
  float *line = P + (size_t)p->C * j->brows * (size_t)p->s[1] * j->plen;
  split_rows(j, (const float *)j->k->in[0] + img * p->C * p->H * p->W, iy0, P, line);
  const int64_t blocks = (p->M + j->dr - 1) / j->dr;
  /* the row's vectors in column blocks of even length (AVX2's 14 for 112 columns: 5, 5, 4) */
  const int64_t nvec = (p->OW + j->lanes - 1) / j->lanes, ncb = (nvec + j->dv - 1) / j->dv;
  const int64_t per = (nvec + ncb - 1) / ncb, cols = per * j->lanes;
  for (int64_t oy = oy0; oy < oy1; oy++) {
    float *yo = y + (oy - oy0) * yrow;
    const float *res = j->residual ? j->residual + img * p->M * OHW + oy * p->OW : NULL;
    for (int64_t ox0 = 0; ox0 < p->OW; ox0 += cols) {
      const int64_t left = (p->OW - ox0 + j->lanes - 1) / j->lanes;
      for (int64_t b = 0; b < blocks; b++)
        block(j, P, oy - oy0, iy0, b, ox0, left < per ? left : per, yo, res);
    }
  }
}

/* 64-byte aligned: the kernels' loads split fewer cache lines (6% on resnet18's stem, AVX2) */
static float *phase_rows(const direct_job_t *j, int tid) {
  return (float *)(((uintptr_t)thread_scratch(j->k, tid) + 63) & ~(uintptr_t)63);
}

/* One task: a band of DBAND output rows of one image. */
static inline __attribute__((always_inline)) void task_body(void *arg, size_t task, int tid,
                                                            direct_block_fn block) {
  const direct_job_t *j = arg;
  const conv_params_t *p = j->p;
  const int64_t img = (int64_t)task / j->bands, oy0 = (int64_t)task % j->bands * DBAND;
  const int64_t oy1 = oy0 + DBAND < p->OH ? oy0 + DBAND : p->OH;
  float *y = (float *)j->k->out[0] + img * p->M * p->OH * p->OW + oy0 * p->OW;
  conv_rows(j, phase_rows(j, tid), img, oy0, oy1, y, p->OW, block);
}

/* One task of a pooled run: pooled rows [py0, py1) of one image. The conv rows they need are
** made a band at a time, each row's max over every window's width kept in a ring (slot r % ring
** for row r), and each pooled row is the max of its window's rows in order: the MaxPool's own
** order (ops_pool.c), so the same bits. A slice's first row beyond the first is made twice. */
static inline __attribute__((always_inline)) void pooled_body(void *arg, size_t task, int tid,
                                                              direct_block_fn block) {
  const direct_job_t *j = arg;
  const conv_params_t *p = j->p, *w = j->pw;
  const int64_t img = (int64_t)task / j->slices, py0 = (int64_t)task % j->slices * j->per;
  const int64_t py1 = py0 + j->per < w->OH ? py0 + j->per : w->OH, M = p->M, OW = p->OW;
  const int64_t ring = DBAND + w->k[0], OPW = w->OW;
  float *P = phase_rows(j, tid), *sc = thread_scratch(j->k, tid);
  float *rows = sc + j->rows_off, *hm = sc + j->ring_off, *even = hm + ring * M * OPW;
  float *odd = even + (OW + 1) / 2;
  int64_t next = -1; /* conv rows [.., next) are in the ring */
  const int64_t last = (py1 - 1) * w->s[0] - w->p[0] + w->k[0]; /* past the slice's last row */
  for (int64_t oy = py0; oy < py1; oy++) {
    const int64_t a0 = oy * w->s[0] - w->p[0], a = a0 < 0 ? 0 : a0;
    const int64_t b = a0 + w->k[0] < p->OH ? a0 + w->k[0] : p->OH;
    if (next < a)
      next = a;
    while (next < b) { /* the next band of conv rows, up to the slice's last one needed */
      const int64_t end = next + DBAND < last ? next + DBAND : last;
      const int64_t e = end < p->OH ? end : p->OH;
      conv_rows(j, P, img, next, e, rows, M * OW, block);
      for (int64_t r = next; r < e; r++)
        for (int64_t m = 0; m < M; m++)
          lpq__maxpool_row(w, rows + ((r - next) * M + m) * OW, even, odd,
                           hm + (r % ring * M + m) * OPW);
      next = e;
    }
    for (int64_t m = 0; m < M; m++) {
      float *yr = j->py + ((img * M + m) * w->OH + oy) * OPW;
      for (int64_t x = 0; x < OPW; x++)
        yr[x] = -INFINITY;
      for (int64_t r = a; r < b; r++)
        lpq__kern_max(yr, hm + (r % ring * M + m) * OPW, (size_t)OPW);
    }
  }
}

#pragma GCC push_options
#pragma GCC target("arch=x86-64-v4")

/* Output row oy, columns [ox0, ox0 + 16 nv), channels [DR b, DR b + DR): the sum over every
** input channel and tap, then bias, residual and clamp; the last vector stored with mask. */
static inline __attribute__((always_inline)) void block16(const direct_job_t *j, const float *P,
                                                          int64_t rel, int64_t iy0, int64_t b,
                                                          int64_t ox0, const int nv, float *y,
                                                          const float *res) {
  const conv_params_t *p = j->p;
  const int64_t s = p->s[1], kh = p->k[0], kw = p->k[1], H = p->H;
  __m512 acc[DR][DV];
#pragma GCC unroll 3
  for (int r = 0; r < DR; r++)
#pragma GCC unroll 7
    for (int v = 0; v < nv; v++)
      acc[r][v] = _mm512_setzero_ps();
  const float *w = j->wp + (size_t)(b * p->C * kh * kw * DR);
  for (int64_t c = 0; c < p->C; c++)
    for (int64_t ky = 0; ky < kh; ky++, w += kw * DR) {
      const int64_t r = s * rel + ky; /* row of the band */
      if (iy0 + r < 0 || iy0 + r >= H)
        continue;
      const float *row = P + (size_t)((c * (int64_t)j->brows + r) * s) * j->plen + ox0;
      for (int64_t q = 0; q < s; q++) /* taps kx = q + s u read phase q from column u on */
        for (int64_t kx = q, u = 0; kx < kw; kx += s, u++) {
          const float *xs = row + (size_t)q * j->plen + u;
          const float *wk = w + kx * DR;
#pragma GCC unroll 7
          for (int v = 0; v < nv; v++) {
            __m512 xv = _mm512_loadu_ps(xs + 16 * v);
            __asm__("" : "+v"(xv)); /* one load per vector, not one per multiply */
#pragma GCC unroll 3
            for (int rr = 0; rr < DR; rr++)
              acc[rr][v] = _mm512_fmadd_ps(_mm512_set1_ps(wk[rr]), xv, acc[rr][v]);
          }
        }
    }
  const int64_t OW = p->OW, OHW = p->OH * OW;
  const __m512 vlo = _mm512_set1_ps(j->lo), vhi = _mm512_set1_ps(j->hi);
  for (int r = 0; r < DR; r++) {
    const int64_t m = DR * b + r;
    if (m >= p->M)
      break;
    const __m512 vb = _mm512_set1_ps(j->k->bias ? j->k->bias[m] : 0.0f);
    float *yr = y + m * j->ystride;
    const float *rr = res ? res + m * OHW : NULL;
#pragma GCC unroll 7
    for (int v = 0; v < nv; v++) {
      const int64_t left = OW - ox0 - 16 * v;
      const __mmask16 mk = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
      __m512 o = _mm512_add_ps(acc[r][v], vb);
      if (rr)
        o = _mm512_add_ps(o, _mm512_maskz_loadu_ps(mk, rr + ox0 + 16 * v));
      o = _mm512_mask_mov_ps(o, _mm512_cmp_ps_mask(o, vlo, _CMP_LT_OQ), vlo);
      o = _mm512_mask_mov_ps(o, _mm512_cmp_ps_mask(o, vhi, _CMP_GT_OQ), vhi);
      _mm512_mask_storeu_ps(yr + ox0 + 16 * v, mk, o);
    }
  }
}

static inline __attribute__((always_inline)) void block16_any(
    const direct_job_t *j, const float *P, int64_t rel, int64_t iy0, int64_t b, int64_t ox0,
    int64_t nv, float *y, const float *res) {
  switch (nv) { /* the vector count a constant: the accumulators stay in registers */
  case 7: block16(j, P, rel, iy0, b, ox0, 7, y, res); break;
  case 6: block16(j, P, rel, iy0, b, ox0, 6, y, res); break;
  case 5: block16(j, P, rel, iy0, b, ox0, 5, y, res); break;
  case 4: block16(j, P, rel, iy0, b, ox0, 4, y, res); break;
  case 3: block16(j, P, rel, iy0, b, ox0, 3, y, res); break;
  case 2: block16(j, P, rel, iy0, b, ox0, 2, y, res); break;
  default: block16(j, P, rel, iy0, b, ox0, 1, y, res); break;
  }
}

static void direct_task16(void *arg, size_t task, int tid) {
  task_body(arg, task, tid, block16_any);
}

static void pooled_task16(void *arg, size_t task, int tid) {
  pooled_body(arg, task, tid, block16_any);
}
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("arch=x86-64-v3")
/* One input row's taps for block8: all of them unrolled when s and kw are constants. */
static inline __attribute__((always_inline)) void row_taps8(__m256 acc[DR2][DV2],
                                                            const float *row, size_t plen,
                                                            const float *w, const int64_t s,
                                                            const int64_t kw, const int nv) {
#pragma GCC unroll 4
  for (int64_t q = 0; q < s; q++)
#pragma GCC unroll 4
    for (int64_t kx = q, u = 0; kx < kw; kx += s, u++) {
      const float *xs = row + (size_t)q * plen + u;
      const float *wk = w + kx * DR2;
#pragma GCC unroll 6
      for (int v = 0; v < nv; v++) {
        __m256 xv = _mm256_loadu_ps(xs + 8 * v);
        __asm__("" : "+x"(xv)); /* one load per vector */
#pragma GCC unroll 2
        for (int rr = 0; rr < DR2; rr++)
          acc[rr][v] = _mm256_fmadd_ps(_mm256_set1_ps(wk[rr]), xv, acc[rr][v]);
      }
    }
}

/* block16 with AVX2: DR2 channels x nv <= DV2 vectors of 8 columns. */
static inline __attribute__((always_inline)) void block8(const direct_job_t *j, const float *P,
                                                         int64_t rel, int64_t iy0, int64_t b,
                                                         int64_t ox0, const int nv, float *y,
                                                         const float *res) {
  const conv_params_t *p = j->p;
  const int64_t s = p->s[1], kh = p->k[0], kw = p->k[1], H = p->H;
  __m256 acc[DR2][DV2];
#pragma GCC unroll 2
  for (int r = 0; r < DR2; r++)
#pragma GCC unroll 6
    for (int v = 0; v < nv; v++)
      acc[r][v] = _mm256_setzero_ps();
  const float *w = j->wp + (size_t)(b * p->C * kh * kw * DR2);
  for (int64_t c = 0; c < p->C; c++)
    for (int64_t ky = 0; ky < kh; ky++, w += kw * DR2) {
      const int64_t r = s * rel + ky;
      if (iy0 + r < 0 || iy0 + r >= H)
        continue;
      const float *row = P + (size_t)((c * (int64_t)j->brows + r) * s) * j->plen + ox0;
      if (s == 2 && kw == 7) /* the ResNets' stem, its 7 taps unrolled: 3% faster (EPYC) */
        row_taps8(acc, row, j->plen, w, 2, 7, nv);
      else
        row_taps8(acc, row, j->plen, w, s, kw, nv);
    }
  const int64_t OW = p->OW, OHW = p->OH * OW;
  const __m256 vlo = _mm256_set1_ps(j->lo), vhi = _mm256_set1_ps(j->hi);
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (int r = 0; r < DR2; r++) {
    const int64_t m = DR2 * b + r;
    if (m >= p->M)
      break;
    const __m256 vb = _mm256_set1_ps(j->k->bias ? j->k->bias[m] : 0.0f);
    float *yr = y + m * j->ystride;
    const float *rr = res ? res + m * OHW : NULL;
#pragma GCC unroll 6
    for (int v = 0; v < nv; v++) {
      const int64_t left = OW - ox0 - 8 * v;
      const __m256i mk = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(left < 8 ? left : 8)), idx);
      __m256 o = _mm256_add_ps(acc[r][v], vb);
      if (rr)
        o = _mm256_add_ps(o, left >= 8 ? _mm256_loadu_ps(rr + ox0 + 8 * v)
                                       : _mm256_maskload_ps(rr + ox0 + 8 * v, mk));
      o = _mm256_blendv_ps(o, vlo, _mm256_cmp_ps(o, vlo, _CMP_LT_OQ));
      o = _mm256_blendv_ps(o, vhi, _mm256_cmp_ps(o, vhi, _CMP_GT_OQ));
      if (left >= 8) /* a masked store is slow on some CPUs (AMD's): only for the last */
        _mm256_storeu_ps(yr + ox0 + 8 * v, o);
      else
        _mm256_maskstore_ps(yr + ox0 + 8 * v, mk, o);
    }
  }
}

static inline __attribute__((always_inline)) void block8_any(
    const direct_job_t *j, const float *P, int64_t rel, int64_t iy0, int64_t b, int64_t ox0,
    int64_t nv, float *y, const float *res) {
  switch (nv) {
  case 6: block8(j, P, rel, iy0, b, ox0, 6, y, res); break;
  case 5: block8(j, P, rel, iy0, b, ox0, 5, y, res); break;
  case 4: block8(j, P, rel, iy0, b, ox0, 4, y, res); break;
  case 3: block8(j, P, rel, iy0, b, ox0, 3, y, res); break;
  case 2: block8(j, P, rel, iy0, b, ox0, 2, y, res); break;
  default: block8(j, P, rel, iy0, b, ox0, 1, y, res); break;
  }
}

static void direct_task8(void *arg, size_t task, int tid) {
  task_body(arg, task, tid, block8_any);
}

static void pooled_task8(void *arg, size_t task, int tid) {
  pooled_body(arg, task, tid, block8_any);
}
#pragma GCC pop_options

/* The job of conv k (weights packed into thread 0's scratch at wp_off, read by every thread). */
static void job_init(direct_job_t *j, const kctx_t *k, float lo, float hi, size_t wp_off) {
  const conv_params_t *p = k->n->params;
  *j = (direct_job_t){.k = k, .p = p, .lo = lo, .hi = hi, .ystride = p->OH * p->OW};
  j->residual = k->n->residual ? (const float *)k->in[3] : NULL;
  j->plen = phase_len(p), j->brows = band_rows(p);
  j->bands = (p->OH + DBAND - 1) / DBAND;
  const int wide = lpq__isa() == LPQ_ISA_AVX512;
  j->dr = wide ? DR : DR2, j->lanes = wide ? 16 : 8, j->dv = wide ? DV : DV2;
  pack_weights(p, k->weight, j->dr, k->scratch + wp_off);
  j->wp = k->scratch + wp_off;
}

int lpq__direct_run(const kctx_t *k, float lo, float hi) {
  const conv_params_t *p = k->n->params;
  direct_job_t j;
  job_init(&j, k, lo, hi, lpq__direct_scratch(p) - packed_floats(p) - 16);
  const int wide = lpq__isa() == LPQ_ISA_AVX512;
  lpq__threads_run(k->pool, (size_t)(p->N * j.bands), wide ? direct_task16 : direct_task8, &j);
  return 0;
}

/* Per thread past the conv's own: a band of conv rows, the ring of row maxima, even and odd. */
static size_t pool_extra(const conv_params_t *p, const conv_params_t *w) {
  return (size_t)(DBAND * p->M * p->OW) + (size_t)((DBAND + w->k[0]) * p->M * w->OW) +
         (size_t)p->OW + 2 + 16;
}

size_t lpq__direct_pool_scratch(const conv_params_t *p, const conv_params_t *w) {
  if (!lpq__direct_applies(p) || !w || w->N != p->N || w->C != p->M || w->H != p->OH ||
      w->W != p->OW || w->OH < 1 || w->OW < 1)
    return 0;
  return lpq__direct_scratch(p) + pool_extra(p, w);
}

int lpq__direct_pool_run(const kctx_t *k, float lo, float hi, const conv_params_t *w, float *y) {
  const conv_params_t *p = k->n->params;
  direct_job_t j;
  const size_t own = lpq__direct_scratch(p) - packed_floats(p) - 16;
  job_init(&j, k, lo, hi, own + pool_extra(p, w));
  j.pw = w, j.py = y, j.ystride = p->OW;
  j.rows_off = (own + 16) / 16 * 16;
  j.ring_off = j.rows_off + (size_t)(DBAND * p->M * p->OW);
  /* whole images a task when they are two a thread or more, else slices of pooled rows */
  const int64_t threads = lpq__threads_count(k->pool), want = threads > 1 ? 2 * threads : 1;
  j.slices = p->N >= want ? 1 : (want + p->N - 1) / p->N;
  j.slices = j.slices > w->OH ? w->OH : j.slices;
  j.per = (w->OH + j.slices - 1) / j.slices;
  j.slices = (w->OH + j.per - 1) / j.per;
  const int wide = lpq__isa() == LPQ_ISA_AVX512;
  lpq__threads_run(k->pool, (size_t)(p->N * j.slices), wide ? pooled_task16 : pooled_task8, &j);
  return 0;
}
#else
int lpq__direct_run(const kctx_t *k, float lo, float hi) {
  (void)k, (void)lo, (void)hi;
  abort(); /* lpq__direct_applies() is 0 without the x86 kernels */
}

size_t lpq__direct_pool_scratch(const conv_params_t *p, const conv_params_t *w) {
  (void)p, (void)w;
  return 0;
}

int lpq__direct_pool_run(const kctx_t *k, float lo, float hi, const conv_params_t *w, float *y) {
  (void)k, (void)lo, (void)hi, (void)w, (void)y;
  abort();
}
#endif
