/* engine/ops_dwflat.c: depthwise convolution of any window (EfficientNet's and ConvNeXt's 5x5
** and 7x7, dilated ones), stride 1 or 2, as long vectorised passes. The channel plane is
** copied once into a zero-padded plane; stride 2 splits it into its even and odd columns. Then
** every output row sits at a fixed pitch in a flat buffer, and each kernel tap is one
** y += w * x pass (lpq__kern_axpy) over the whole buffer: output (oy, ox) of tap (ky, kx) reads
** the padded plane at a constant offset from its own flat index. The columns past OW in each
** row are computed and dropped. The row-by-row kernel this replaces made k*k calls per output
** row on vectors as short as the row (7 to 28 floats).
**
** Stride 1: pitch wp (the padded width); tap offset ky*d*wp + kx*d.
** Stride 2: columns split, E[r][c] = P[r][2c], O[r][c] = P[r][2c+1] (half width we each, E then
** O in one row of 2*we); the output pitch is 2*we, an output row oy reading padded row 2*oy+ky:
** offset ky*d*2*we + (kx*d even ? (kx*d)/2 : we + (kx*d-1)/2). */
#include "engine/engine_internal.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>
#define DWFLAT_AVX2 1
#define DWFLAT_TAPS 64 /* windows of up to 8x8 taps in one pass; larger ones tap by tap */

/* out[i] = bias + the taps' w[t] * pad[off[t] + i] for i < n, the taps in order, each by one
** fused multiply-add: what the tap-by-tap axpy passes compute (the same bits), with each
** output's sum in a register instead of stored and reloaded per tap (ConvNeXt-T's 7x7 windows:
** its convs 9.35 -> 7.89 ms a batch on a Zen 3; stride-2 5x5 windows on small maps cost in the
** columns computed and dropped, which this does not change). */
__attribute__((target("avx2,fma"))) static void taps_avx2(float *out, const float *pad,
                                                          const int64_t *off, const float *w,
                                                          int64_t taps, float bias, size_t n) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256 a0 = _mm256_set1_ps(bias), a1 = a0;
    for (int64_t t = 0; t < taps; t++) {
      const __m256 wt = _mm256_set1_ps(w[t]);
      const float *q = pad + off[t] + i;
      a0 = _mm256_fmadd_ps(wt, _mm256_loadu_ps(q), a0);
      a1 = _mm256_fmadd_ps(wt, _mm256_loadu_ps(q + 8), a1);
    }
    _mm256_storeu_ps(out + i, a0);
    _mm256_storeu_ps(out + i + 8, a1);
  }
  for (; i < n; i++) {
    float a = bias;
    for (int64_t t = 0; t < taps; t++)
      a = fmaf(w[t], pad[off[t] + i], a);
    out[i] = a;
  }
}
#endif

/* Where tap t of the window reads the padded plane, relative to its output's flat index. */
static int64_t tap_off(const conv_params_t *p, int64_t t, int64_t pitch) {
  const int64_t dy = t / p->k[1] * p->d[0], dx = t % p->k[1] * p->d[1];
  return dy * pitch + (p->s[0] == 1 ? dx : (dx & 1) * (pitch / 2) + dx / 2);
}

/* Padded plane size (rows x pitch) and the flat output's floats. */
static void dims(const conv_params_t *p, int64_t *hp, int64_t *pitch, int64_t *flat) {
  const int64_t wp = p->W + p->p[1] + p->p[3];
  *hp = p->H + p->p[0] + p->p[2];
  *pitch = p->s[1] == 1 ? wp : 2 * ((wp + 1) / 2);
  *flat = (p->OH - 1) * (p->s[0] == 1 ? 1 : 2) * *pitch + *pitch;
}

int lpq__dwflat_applies(const conv_params_t *p) {
  if (p->s[0] != p->s[1] || (p->s[0] != 1 && p->s[0] != 2))
    return 0;
  int64_t hp, pitch, flat;
  dims(p, &hp, &pitch, &flat);
  /* the last tap's reads stay inside the padded plane (+ pitch of slack) */
  return hp * pitch < ((int64_t)1 << 26);
}

size_t lpq__dwflat_scratch(const conv_params_t *p) {
  int64_t hp, pitch, flat;
  dims(p, &hp, &pitch, &flat);
  return (size_t)(hp * pitch + pitch + flat + 32);
}

void lpq__dwflat_plane(const conv_params_t *p, const float *x, const float *w, float bias,
                       float lo, float hi, float *y, float *scratch) {
  const int64_t H = p->H, W = p->W, OH = p->OH, OW = p->OW, s = p->s[0];
  int64_t hp, pitch, flat;
  dims(p, &hp, &pitch, &flat);
  const int64_t we = pitch / 2, pt = p->p[0], pl = p->p[1];
  float *pad = scratch, *out = scratch + hp * pitch + pitch + 16;
  /* the padded plane (zeros past the input, and one row of slack the last taps may read) */
  memset(pad, 0, (size_t)(pt * pitch) * sizeof *pad);
  memset(pad + (pt + H) * pitch, 0, (size_t)((hp - pt - H + 1) * pitch) * sizeof *pad);
  for (int64_t iy = 0; iy < H; iy++) {
    float *row = pad + (iy + pt) * pitch;
    const float *xr = x + iy * W;
    memset(row, 0, (size_t)pitch * sizeof *row);
    if (s == 1) {
      memcpy(row + pl, xr, (size_t)W * sizeof *row);
    } else { /* padded column c = ix + pl goes to E[c/2] or O[c/2] */
      for (int64_t ix = 0; ix < W; ix++) {
        const int64_t c = ix + pl;
        row[(c & 1) * we + c / 2] = xr[ix];
      }
    }
  }
  const int64_t rows = s == 1 ? 1 : 2; /* padded rows per output row */
  const size_t n = (size_t)((OH - 1) * rows * pitch + OW);
  const int64_t taps = (int64_t)p->k[0] * p->k[1];
#ifdef DWFLAT_AVX2
  if (lpq__isa() >= LPQ_ISA_AVX2 && taps <= DWFLAT_TAPS) {
    int64_t offs[DWFLAT_TAPS];
    for (int64_t t = 0; t < taps; t++)
      offs[t] = tap_off(p, t, pitch);
    taps_avx2(out, pad, offs, w, taps, bias, n);
  } else
#endif
  {
    for (size_t i = 0; i < n; i++)
      out[i] = bias;
    for (int64_t t = 0; t < taps; t++)
      lpq__kern_axpy(out, pad + tap_off(p, t, pitch), w[t], n);
  }
  for (int64_t oy = 0; oy < OH; oy++)
    memcpy(y + oy * OW, out + oy * rows * pitch, (size_t)OW * sizeof *y);
  lpq__kern_bias_clamp(y, 0.0f, lo, hi, (size_t)(OH * OW));
}
