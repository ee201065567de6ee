/* engine/ops_dwblock.c: the depthwise conv (stride 1 or 2, any pads) on small maps, vectorised
** over channels: a task takes DWB channels of one image, interleaves them pixel by pixel into a
** zero-padded block (DWB floats a pixel), computes every output pixel's DWB channels at once
** (a multiply-add of DWB lanes per tap, bias and clamp) and writes them back plane by plane. On
** small maps the per-plane kernels (ops_depthwise.c, ops_dwflat.c) spend their time on short
** rows and on padding each plane; here the vectors are always full. Runs plain and hooked alike.
**
** 3x3 undilated windows: lpq__kern_dwblk_row (every ISA). Other windows (MobileNetV3's and
** EfficientNet's 5x5, dilated 3x3, ConvNeXt's 7x7), on AVX2 and up: row_avx2 here, four pixels
** at a time, each output's sum bias + the taps in order by fused multiply-adds, then clamped:
** the bits of the flat path (ops_dwflat.c) at the same ISA. */
#include "engine/engine_internal.h"

#include <string.h>

/* Output rows of at most this many pixels go through the blocks (longer ones vectorise well
** enough along the row in ops_depthwise.c, and the interleaving costs more than it saves). */
#define DWBLK_MAX_OW 7
/* The same for other windows, whose short rows cost k*k taps each in the flat path. Measured on
** a Zen 3 (whole models, in-process alternation): 7 was 1-2% slower than 14 on MobileNetV3-Small
** and MnasNet; 28 and 56 were level with 14 on EfficientNet-B0, ConvNeXt-T and MobileNetV3-Large
** (2-3% slower before the interleaving used AVX2 transposes). */
#define DWBLK_ANY_MAX_OW 14
#define DWBLK_ANY_TAPS 64 /* windows of up to 8x8 */

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>

#include "engine/ops_avx2.h"
#define DWBLK_AVX2 1

/* Output pixels ox .. ox + P of a row: y[ox][c] = clamp(b[c] + the taps' w[t][c] * r[off[t] +
** ox*s*DWB + c], lo, hi), the taps in order. 2P sums of 8 lanes in flight. */
__attribute__((always_inline, target("avx2,fma"))) static inline void
pix_block(float *y, const float *r, const int64_t *off, int64_t taps, const float *w,
          const float *b, __m256 vlo, __m256 vhi, int64_t ox, int64_t step, const int P) {
  __m256 a[4][2];
#pragma GCC unroll 4
  for (int q = 0; q < P; q++)
    a[q][0] = _mm256_loadu_ps(b), a[q][1] = _mm256_loadu_ps(b + 8);
  const float *r0 = r + ox * step;
  for (int64_t t = 0; t < taps; t++) {
    const __m256 w0 = _mm256_loadu_ps(w + t * DWB), w1 = _mm256_loadu_ps(w + t * DWB + 8);
    const float *x = r0 + off[t];
#pragma GCC unroll 4
    for (int q = 0; q < P; q++) {
      a[q][0] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + q * step), a[q][0]);
      a[q][1] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + q * step + 8), a[q][1]);
    }
  }
#pragma GCC unroll 4
  for (int q = 0; q < P; q++)
    for (int h = 0; h < 2; h++)
      _mm256_storeu_ps(y + (ox + q) * DWB + 8 * h, lpq__avx2_clamp0(a[q][h], vlo, vhi));
}

/* One output row of ow pixels from the block's rows at r (the window's top-left at pixel 0),
** tap t at r + off[t]; stride s. */
__attribute__((target("avx2,fma"))) static void row_avx2(float *y, const float *r,
                                                         const int64_t *off, int64_t taps,
                                                         const float *w, const float *b,
                                                         float lo, float hi, int64_t ow,
                                                         int64_t s) {
  const __m256 vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
  const int64_t step = s * DWB;
  int64_t ox = 0;
  for (; ox + 4 <= ow; ox += 4)
    pix_block(y, r, off, taps, w, b, vlo, vhi, ox, step, 4);
  if (ox + 2 <= ow)
    pix_block(y, r, off, taps, w, b, vlo, vhi, ox, step, 2), ox += 2;
  if (ox < ow)
    pix_block(y, r, off, taps, w, b, vlo, vhi, ox, step, 1);
}
#endif

typedef struct dwblk_job_t {
  const kctx_t *k;
  const conv_params_t *p;
  float lo, hi;
} dwblk_job_t;

/* A 3x3 undilated window: lpq__kern_dwblk_row's; others take row_avx2. */
static int three_by_three(const conv_params_t *p) {
  return p->k[0] == 3 && p->k[1] == 3 && p->d[0] == 1 && p->d[1] == 1;
}

static int dwblk3_applies(const conv_params_t *p) {
  return p->spatial == 2 && three_by_three(p) && p->s[0] == p->s[1] &&
         (p->s[0] == 1 || p->s[0] == 2) && p->OW <= DWBLK_MAX_OW;
}

/* Other windows, through row_avx2. */
int lpq__dwblock_any_off;

static int dwblk_any_applies(const conv_params_t *p) {
#ifdef DWBLK_AVX2
  return !lpq__dwblock_any_off && lpq__isa() >= LPQ_ISA_AVX2 && p->spatial == 2 &&
         !three_by_three(p) &&
         p->s[0] == p->s[1] && (p->s[0] == 1 || p->s[0] == 2) && p->OW <= DWBLK_ANY_MAX_OW &&
         (int64_t)p->k[0] * p->k[1] <= DWBLK_ANY_TAPS;
#else
  (void)p;
  return 0;
#endif
}

static int dwblk_applies(const conv_params_t *p) {
  return dwblk3_applies(p) || dwblk_any_applies(p);
}

size_t lpq__dwblock_scratch(const conv_params_t *p) {
  if (!dwblk_applies(p))
    return 0;
  const size_t hp = (size_t)(p->H + p->p[0] + p->p[2]), wp = (size_t)(p->W + p->p[1] + p->p[3]);
  const size_t taps = (size_t)p->k[0] * (size_t)p->k[1];
  return (hp * wp + (size_t)(p->OH * p->OW) + taps + 1) * DWB + 16;
}

/* dst[j * ldd + i] = src[i * lds + j] for i < rows, j < cols: a plane row of each channel
** into pixel-major order, or back. AVX2: 8 x 8 blocks transposed in registers (the scalar loop
** was more of the blocks' time than their taps); returns the rows done. */
#ifdef DWBLK_AVX2
__attribute__((target("avx2"))) static int64_t interleave_avx2(float *dst, int64_t ldd,
                                                               const float *src, int64_t lds,
                                                               int64_t rows, int64_t cols) {
  int64_t i0 = 0;
  for (; i0 + 8 <= rows; i0 += 8) {
    int64_t j = 0;
    for (; j + 8 <= cols; j += 8)
      lpq__avx2_transpose8(src + i0 * lds + j, (size_t)lds, dst + j * ldd + i0, (size_t)ldd);
    for (; j < cols; j++)
      for (int64_t i = i0; i < i0 + 8; i++)
        dst[j * ldd + i] = src[i * lds + j];
  }
  return i0;
}
#endif

static void interleave(float *dst, int64_t ldd, const float *src, int64_t lds, int64_t rows,
                       int64_t cols) {
  int64_t i0 = 0;
#ifdef DWBLK_AVX2
  if (lpq__isa() >= LPQ_ISA_AVX2)
    i0 = interleave_avx2(dst, ldd, src, lds, rows, cols);
#endif
  for (int64_t i = i0; i < rows; i++)
    for (int64_t j = 0; j < cols; j++)
      dst[j * ldd + i] = src[i * lds + j];
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
  const int64_t taps = (int64_t)p->k[0] * p->k[1];
  float *bb = wt + taps * DWB;
  for (int64_t t = 0; t < taps; t++)
    for (int64_t c = 0; c < DWB; c++)
      wt[t * DWB + c] = c < cb ? k->weight[(c0 + c) * taps + t] : 0.0f;
  for (int64_t c = 0; c < DWB; c++)
    bb[c] = c < cb && k->bias ? k->bias[c0 + c] : 0.0f;
  /* the pads (and the lanes past cb) are zeros; the plane's pixels interleaved */
  memset(P, 0, (size_t)(hp * wp * DWB) * sizeof *P);
  const float *x = (const float *)k->in[0] + (img * C + c0) * HW;
  for (int64_t iy = 0; iy < H; iy++) /* row iy of every channel: pixels (iy + pt, pl ..) */
    interleave(P + ((iy + p->p[0]) * wp + p->p[1]) * DWB, DWB, x + iy * W, HW, cb, W);
#ifdef DWBLK_AVX2
  if (!three_by_three(p)) { /* dwblk_any_applies */
    int64_t off[DWBLK_ANY_TAPS];
    for (int64_t ky = 0; ky < p->k[0]; ky++)
      for (int64_t kx = 0; kx < p->k[1]; kx++)
        off[ky * p->k[1] + kx] = (ky * p->d[0] * wp + kx * p->d[1]) * DWB;
    for (int64_t oy = 0; oy < OH; oy++)
      row_avx2(Y + oy * OW * DWB, P + oy * s * wp * DWB, off, taps, wt, bb, j->lo, j->hi, OW, s);
  } else
#endif
  {
    for (int64_t oy = 0; oy < OH; oy++) {
      const float *r = P + oy * s * wp * DWB;
      lpq__kern_dwblk_row(Y + oy * OW * DWB, r, r + wp * DWB, r + 2 * wp * DWB, wt, bb, j->lo,
                          j->hi, (size_t)OW, (size_t)s);
    }
  }
  float *y = (float *)k->out[0] + (img * C + c0) * OHW;
  for (int64_t c = 0; c < cb; c += 8) /* the transpose back: 8 pixels of 8 channels at a time */
    interleave(y + c * OHW, OHW, Y + c, DWB, OHW, cb - c < 8 ? cb - c : 8);
}

int lpq__dwblock_run(const kctx_t *k, float lo, float hi) {
  const conv_params_t *p = k->n->params;
  if (!dwblk_applies(p) || k->n->scratch_floats < lpq__dwblock_scratch(p))
    return 0;
  dwblk_job_t j = {k, p, lo, hi};
  lpq__threads_run(k->pool, (size_t)(p->N * ((p->C + DWB - 1) / DWB)), dwblk_task, &j);
  return 1;
}
