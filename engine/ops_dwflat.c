/* engine/ops_dwflat.c: depthwise convolution of any window (EfficientNet's and ConvNeXt's 5x5
** and 7x7, dilated ones), stride 1 or 2, as long vectorised passes. The channel plane is
** copied once into a zero-padded plane; stride 2 splits it into its four phases (even and odd
** rows by even and odd columns). Then every output row sits at a fixed pitch in a flat buffer,
** and output (oy, ox) of tap (ky, kx) reads the padded plane at a constant offset from its own
** flat index: each tap is one y += w * x pass over the whole buffer (lpq__kern_axpy), or on
** AVX2 every output's taps are summed in a register in the same order (the same bits). The
** columns past OW in each row are computed and dropped: pitch - OW of them, k*d - 1 at stride 1
** and about half that at stride 2. The row-by-row kernel this replaces made k*k calls per output
** row on vectors as short as the row (7 to 28 floats).
**
** Stride 1: pitch wp (the padded width); tap offset ky*d*wp + kx*d.
** Stride 2: phase (py, px) holds the padded plane's P[2r + py][2c + px] at [r][c], rows of
** we = ceil(wp / 2), hp2 = ceil(hp / 2) rows, the four phases one after another (py*2 + px).
** The output pitch is we; tap (dy, dx) = (ky*d, kx*d) reads phase (dy & 1, dx & 1) at offset
** (dy / 2) * we + dx / 2. */
#include "engine/engine_internal.h"

#include <string.h>

/* Floats past the planes that a rounded-up vector pass may read (zeros) or write (dropped). */
#define DWFLAT_SLACK 16

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>

#include "engine/ops_avx2.h"
#define DWFLAT_AVX2 1
#define DWFLAT_TAPS 64 /* windows of up to 8x8 taps in one pass; larger ones tap by tap */

/* out[i .. i + 8*J) = clamp(bias + the taps' w[t] * pad[off[t] + i], lo, hi), the taps in
** order, each by one fused multiply-add: what the tap-by-tap axpy passes and
** lpq__kern_bias_clamp compute (the same bits), each output's sum in a register. J independent
** sums: one sum's chain of taps waits 4 cycles a tap (the FMA's latency), so 2 sums a step
** left the FMA units three-quarters idle. */
__attribute__((always_inline, target("avx2,fma"))) static inline void
taps_block(float *out, const float *pad, const int64_t *off, const float *w, int64_t taps,
           float bias, __m256 vlo, __m256 vhi, size_t i, const int J) {
  __m256 a[8];
#pragma GCC unroll 8
  for (int j = 0; j < J; j++)
    a[j] = _mm256_set1_ps(bias);
  for (int64_t t = 0; t < taps; t++) {
    const __m256 wt = _mm256_set1_ps(w[t]);
    const float *q = pad + off[t] + i;
#pragma GCC unroll 8
    for (int j = 0; j < J; j++)
      a[j] = _mm256_fmadd_ps(wt, _mm256_loadu_ps(q + 8 * j), a[j]);
  }
#pragma GCC unroll 8
  for (int j = 0; j < J; j++)
    _mm256_storeu_ps(out + i + 8 * j, lpq__avx2_clamp0(a[j], vlo, vhi));
}

/* Outputs i < n rounded up to 8: blocks of 64, then of 32, 16 and 16 or 8 as needed.
** The outputs past n read the zeroed slack and are dropped, so there is no scalar tail. */
__attribute__((target("avx2,fma"))) static void taps_avx2(float *out, const float *pad,
                                                          const int64_t *off, const float *w,
                                                          int64_t taps, float bias, float lo,
                                                          float hi, size_t n) {
  const __m256 vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
  size_t i = 0;
  for (; i + 64 <= n; i += 64)
    taps_block(out, pad, off, w, taps, bias, vlo, vhi, i, 8);
  if (i + 32 <= n) {
    taps_block(out, pad, off, w, taps, bias, vlo, vhi, i, 4);
    i += 32;
  }
  if (i + 8 < n) /* 9 to 31 left: 16 now, at most 15 after */
    taps_block(out, pad, off, w, taps, bias, vlo, vhi, i, 2), i += 16;
  if (i + 8 < n)
    taps_block(out, pad, off, w, taps, bias, vlo, vhi, i, 2);
  else if (i < n)
    taps_block(out, pad, off, w, taps, bias, vlo, vhi, i, 1);
}
#endif

/* The padded plane: rows x pitch at stride 1; at stride 2 the four phases, each hp2 x pitch. */
typedef struct dwflat_dims_t {
  int64_t hp, pitch, hp2, plane, flat; /* plane: floats of the padded plane (all phases) */
} dwflat_dims_t;

static dwflat_dims_t dims(const conv_params_t *p) {
  dwflat_dims_t d;
  const int64_t wp = p->W + p->p[1] + p->p[3];
  d.hp = p->H + p->p[0] + p->p[2];
  d.pitch = p->s[1] == 1 ? wp : (wp + 1) / 2;
  d.hp2 = (d.hp + 1) / 2;
  d.plane = p->s[0] == 1 ? d.hp * d.pitch : 4 * d.hp2 * d.pitch;
  d.flat = (p->OH - 1) * d.pitch + p->OW;
  return d;
}

/* Where tap (ky, kx) of the window reads the padded plane, relative to its output's flat index. */
static int64_t tap_off(const conv_params_t *p, const dwflat_dims_t *d, int64_t ky, int64_t kx) {
  const int64_t dy = ky * p->d[0], dx = kx * p->d[1];
  if (p->s[0] == 1)
    return dy * d->pitch + dx;
  return ((dy & 1) * 2 + (dx & 1)) * d->hp2 * d->pitch + dy / 2 * d->pitch + dx / 2;
}

int lpq__dwflat_applies(const conv_params_t *p) {
  if (p->s[0] != p->s[1] || (p->s[0] != 1 && p->s[0] != 2))
    return 0;
  return dims(p).plane < ((int64_t)1 << 26);
}

size_t lpq__dwflat_scratch(const conv_params_t *p) {
  const dwflat_dims_t d = dims(p);
  return (size_t)(d.plane + d.pitch + d.flat + 3 * DWFLAT_SLACK);
}

/* The channel plane x into the zero-padded plane (phases at stride 2), and the slack zeroed. */
static void fill(const conv_params_t *p, const dwflat_dims_t *d, const float *x, float *pad) {
  const int64_t H = p->H, W = p->W, pt = p->p[0], pl = p->p[1], pitch = d->pitch;
  const size_t tail = (size_t)(d->pitch + DWFLAT_SLACK);
  if (p->s[0] == 1) { /* zero the pad rows, and each row around its copy */
    memset(pad, 0, (size_t)(pt * pitch) * sizeof *pad);
    memset(pad + (pt + H) * pitch, 0, ((size_t)((d->hp - pt - H) * pitch) + tail) * sizeof *pad);
    for (int64_t iy = 0; iy < H; iy++) {
      float *row = pad + (iy + pt) * pitch;
      memset(row, 0, (size_t)pl * sizeof *row);
      memcpy(row + pl, x + iy * W, (size_t)W * sizeof *row);
      memset(row + pl + W, 0, (size_t)(pitch - pl - W) * sizeof *row);
    }
    return;
  }
  memset(pad, 0, ((size_t)d->plane + tail) * sizeof *pad);
  const int64_t ph = d->hp2 * pitch; /* one phase */
  for (int64_t iy = 0; iy < H; iy++) { /* padded row r = iy + pt: phase row r / 2 of r & 1 */
    const int64_t r = iy + pt;
    float *p0 = pad + (r & 1) * 2 * ph + r / 2 * pitch, *p1 = p0 + ph; /* columns even, odd */
    if (pl % 2 == 0) /* padded column c = ix + pl: x's even columns land on even c */
      lpq__kern_deinterleave(p0 + pl / 2, p1 + pl / 2, x + iy * W, (size_t)W);
    else
      lpq__kern_deinterleave(p1 + (pl - 1) / 2, p0 + (pl + 1) / 2, x + iy * W, (size_t)W);
  }
}

void lpq__dwflat_plane(const conv_params_t *p, const float *x, const float *w, float bias,
                       float lo, float hi, float *y, float *scratch) {
  const int64_t OH = p->OH, OW = p->OW;
  const dwflat_dims_t d = dims(p);
  float *pad = scratch, *out = scratch + d.plane + d.pitch + 2 * DWFLAT_SLACK;
  fill(p, &d, x, pad);
  const size_t n = (size_t)d.flat;
  const int64_t taps = (int64_t)p->k[0] * p->k[1];
  int clamped = 0;
#ifdef DWFLAT_AVX2
  if (lpq__isa() >= LPQ_ISA_AVX2 && taps <= DWFLAT_TAPS) {
    int64_t offs[DWFLAT_TAPS];
    for (int64_t ky = 0; ky < p->k[0]; ky++)
      for (int64_t kx = 0; kx < p->k[1]; kx++)
        offs[ky * p->k[1] + kx] = tap_off(p, &d, ky, kx);
    taps_avx2(out, pad, offs, w, taps, bias, lo, hi, n);
    clamped = 1;
  } else
#endif
  {
    for (size_t i = 0; i < n; i++)
      out[i] = bias;
    for (int64_t ky = 0; ky < p->k[0]; ky++)
      for (int64_t kx = 0; kx < p->k[1]; kx++)
        lpq__kern_axpy(out, pad + tap_off(p, &d, ky, kx), w[ky * p->k[1] + kx], n);
  }
  for (int64_t oy = 0; oy < OH; oy++)
    memcpy(y + oy * OW, out + oy * d.pitch, (size_t)OW * sizeof *y);
  if (!clamped)
    lpq__kern_bias_clamp(y, 0.0f, lo, hi, (size_t)(OH * OW));
}
