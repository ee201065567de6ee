/* engine/ops_depthwise.c: depthwise convolution (one input channel per output channel): a
** fused 3x3 kernel for stride 1 and 2, and a general row-pass kernel for other windows. */
#include "engine/engine_internal.h"

/* -O2's "very cheap" vectoriser skips loops whose trip count is unknown; these need it. */
#if defined(__GNUC__) && !defined(__clang__) /* clang vectorises at -O2 and has no such pragma */
#pragma GCC optimize("tree-vectorize", "vect-cost-model=dynamic")
#endif

#include <string.h>

/* 3x3 depthwise, undilated, stride 1 or 2: the channel plane is copied once into a zero-padded
** plane (stride 2: split into even and odd columns), then each output row is one fused pass of
** nine taps, bias and activation. scratch: see dw3_scratch. */
static size_t dw3_scratch(const conv_params_t *p) {
  const size_t hp = (size_t)(p->H + p->p[0] + p->p[2]), wp = (size_t)(p->W + p->p[1] + p->p[3]);
  /* plane, one padded line for stride 2, and stride 1's flat output (DW_FLAT_OW) */
  return hp * (wp + 2) + wp + 16 + hp * wp + 16;
}

/* Stride 1 with output rows shorter than this: one kernel call over the whole plane, row
** length the padded input's (the columns past OW are computed and dropped), so the vector
** loop runs long instead of a scalar tail per row. */
#define DW_FLAT_OW 64

static int dw3_applies(const conv_params_t *p) {
  return p->k[0] == 3 && p->k[1] == 3 && p->d[0] == 1 && p->d[1] == 1 && p->s[0] == p->s[1] &&
         (p->s[0] == 1 || p->s[0] == 2);
}

static void depthwise3(const conv_params_t *p, const float *x, const float *w, float bias,
                       float lo, float hi, float *y, float *pad) {
  const int64_t H = p->H, W = p->W, OH = p->OH, OW = p->OW, s = p->s[0];
  const int64_t wp = W + p->p[1] + p->p[3];
  const int64_t we = (wp + 1) / 2, ld = s == 1 ? wp : we + wp / 2; /* padded row length */
  const int64_t hp = H + p->p[0] + p->p[2], pl = p->p[1];
  const int small = hp * ld <= 4096; /* zero the whole plane at once: fewer calls */
  if (small) {
    memset(pad, 0, (size_t)(hp * ld) * sizeof *pad);
  } else { /* zero only what the input does not cover: pad rows, and each row before its copy */
    memset(pad, 0, (size_t)(p->p[0] * ld) * sizeof *pad);
    memset(pad + (p->p[0] + H) * ld, 0, (size_t)(p->p[2] * ld) * sizeof *pad);
  }
  for (int64_t iy = 0; iy < H; iy++) {
    float *row = pad + (iy + p->p[0]) * ld;
    const float *xr = x + iy * W;
    if (s == 1) {
      if (!small)
        memset(row, 0, (size_t)pl * sizeof *row);
      memcpy(row + pl, xr, (size_t)W * sizeof *row);
      if (!small)
        memset(row + pl + W, 0, (size_t)p->p[3] * sizeof *row);
    } else { /* padded column c = ix + pl goes to even[c/2] or odd[c/2] */
      if (!small)
        memset(row, 0, (size_t)ld * sizeof *row);
      if (pl % 2 == 0)
        lpq__kern_deinterleave(row + pl / 2, row + we + pl / 2, xr, (size_t)W);
      else /* x's even columns land on odd padded columns and vice versa */
        lpq__kern_deinterleave(row + we + (pl - 1) / 2, row + (pl + 1) / 2, xr, (size_t)W);
    }
  }
  if (s == 1 && OW < DW_FLAT_OW) { /* flat: output (oy, ox) at oy * ld + ox of flat */
    float *flat = pad + hp * ld + 16;
    const float *taps[9];
    for (int t = 0; t < 9; t++)
      taps[t] = pad + (t / 3) * ld + t % 3;
    lpq__kern_dw9(flat, taps, w, bias, lo, hi, (size_t)((OH - 1) * ld + OW));
    for (int64_t oy = 0; oy < OH; oy++)
      memcpy(y + oy * OW, flat + oy * ld, (size_t)OW * sizeof *y);
    return;
  }
  for (int64_t oy = 0; oy < OH; oy++) {
    const float *r[3];
    for (int ky = 0; ky < 3; ky++)
      r[ky] = pad + (oy * s + ky) * ld;
    const float *taps[9];
    for (int ky = 0; ky < 3; ky++) {
      if (s == 1) {
        taps[ky * 3 + 0] = r[ky], taps[ky * 3 + 1] = r[ky] + 1, taps[ky * 3 + 2] = r[ky] + 2;
      } else { /* padded column 2*ox + kx */
        taps[ky * 3 + 0] = r[ky], taps[ky * 3 + 1] = r[ky] + we, taps[ky * 3 + 2] = r[ky] + 1;
      }
    }
    lpq__kern_dw9(y + oy * OW, taps, w, bias, lo, hi, (size_t)OW);
  }
}

/* One depthwise channel: y = bias + sum over the window, as one vectorised y += w * x pass
** over each output row per kernel tap. Stride 2 reads de-interleaved rows (tmp, W + 2 floats)
** so every pass is contiguous. */
static void depthwise_channel(const conv_params_t *p, const float *x, const float *w, float bias,
                              float *y, float *tmp) {
  const int64_t H = p->H, W = p->W, OH = p->OH, OW = p->OW;
  const int sx = p->s[1];
  float *even = tmp, *odd = tmp + (W + 1) / 2;
  for (int64_t oy = 0; oy < OH; oy++) {
    float *yr = y + oy * OW;
    for (int64_t ox = 0; ox < OW; ox++)
      yr[ox] = bias;
    for (int ky = 0; ky < p->k[0]; ky++) {
      const int64_t iy = oy * p->s[0] - p->p[0] + (int64_t)ky * p->d[0];
      if (iy < 0 || iy >= H)
        continue;
      const float *xr = x + iy * W;
      if (sx == 2)
        lpq__kern_deinterleave(even, odd, xr, (size_t)W);
      for (int kx = 0; kx < p->k[1]; kx++) {
        const float wv = w[ky * p->k[1] + kx];
        const int64_t off = (int64_t)kx * p->d[1] - p->p[1];
        int64_t lo = off >= 0 ? 0 : (-off + sx - 1) / sx;
        int64_t hi = W - off <= 0 ? 0 : (W - off - 1) / sx + 1;
        if (hi > OW)
          hi = OW;
        if (hi <= lo)
          continue;
        if (sx == 1) {
          lpq__kern_axpy(yr + lo, xr + off + lo, wv, (size_t)(hi - lo));
        } else if (sx == 2) { /* x[2*ox + off] */
          const float *src = off % 2 == 0 ? even + (lo + off / 2) : odd + (lo + (off - 1) / 2);
          lpq__kern_axpy(yr + lo, src, wv, (size_t)(hi - lo));
        } else {
          for (int64_t ox = lo; ox < hi; ox++)
            yr[ox] += wv * xr[ox * sx + off];
        }
      }
    }
  }
}

/* Output (oy, ox) of channel plane rows r[3] by the definition (a row r[ky] is zeros when
** outside the plane), as the row kernels compute it: the columns they cannot. */
static inline float dw_point(const float *const r[3], const float *w, float b, float lo,
                             float hi, int64_t ox, int64_t s, int64_t W) {
  const int64_t ix0 = ox * s - 1;
  const int k0 = ix0 < 0 ? (int)-ix0 : 0, k1 = ix0 + 3 > W ? (int)(W - ix0) : 3;
  float v = b;
  for (int ky = 0; ky < 3; ky++)
    for (int kx = k0; kx < k1; kx++)
      v += w[ky * 3 + kx] * r[ky][ix0 + kx];
  v = v < lo ? lo : v;
  return v > hi ? hi : v;
}

void lpq__dw3_rows(const conv_params_t *p, const float *E, int64_t lo_row, const float *zero,
                   const float *w, float b, float lo, float hi, int64_t oy0, int64_t oy1,
                   float *out) {
  const int64_t H = p->H, W = p->W, OW = p->OW, s = p->s[0];
#define ROW(iy) ((iy) < 0 || (iy) >= H ? zero : E + ((iy) - lo_row) * W)
  if (lpq__kern_dw3_rows(out, E, lo_row, zero, w, b, lo, hi, H, W, OW, (int)s, oy0, oy1))
    return; /* AVX2 or AVX-512: whole rows (ops_kernels_dw_avx2.c) */
  /* the last column's window reaches past the row: its value comes from dw_point */
  const int64_t last = (OW - 1) * s + 1 >= W ? OW - 1 : OW;
  int64_t a = oy0, bnd = oy0; /* stride 1: rows [a, bnd) in one pass over the flat rows */
  if (s == 1 && W > 2) {
    a = oy0 > 1 ? oy0 : 1;
    bnd = oy1 < H - 1 ? oy1 : H - 1;
    if (a < bnd) { /* columns 1 .. W-2 of every row, and the pairs (W-1, 0) between rows */
      const float *taps[9];
      for (int t = 0; t < 9; t++)
        taps[t] = ROW(a - 1 + t / 3) + t % 3;
      lpq__kern_dw9m(out + (a - oy0) * OW + 1, taps, w, b, lo, hi, (size_t)((bnd - a) * W - 2));
    } else {
      a = bnd = oy0;
    }
  }
  for (int64_t oy = oy0; oy < oy1; oy++) {
    const float *r[3] = {ROW(oy * s - 1), ROW(oy * s), ROW(oy * s + 1)};
    float *o = out + (oy - oy0) * OW;
    if ((oy < a || oy >= bnd) && last > 1) { /* columns 1 .. last-1 */
      const float *taps[9];
      for (int t = 0; t < 9; t++)
        taps[t] = r[t / 3] + s - 1 + t % 3;
      if (s == 1)
        lpq__kern_dw9m(o + 1, taps, w, b, lo, hi, (size_t)(last - 1));
      else
        lpq__kern_dw9s2(o + 1, taps, w, b, lo, hi, (size_t)(last - 1));
    }
    o[0] = dw_point(r, w, b, lo, hi, 0, s, W);
    for (int64_t ox = last > 1 ? last : 1; ox < OW; ox++)
      o[ox] = dw_point(r, w, b, lo, hi, ox, s, W);
  }
#undef ROW
}

size_t lpq__depthwise_scratch(const conv_params_t *p) {
  const size_t own = dw3_applies(p)           ? dw3_scratch(p)
                     : lpq__dwflat_applies(p) ? lpq__dwflat_scratch(p)
                                              : (size_t)p->W + 4;
  return own > lpq__dwblock_scratch(p) ? own : lpq__dwblock_scratch(p);
}

void lpq__depthwise_plane(const conv_params_t *p, const float *x, const float *w, float bias,
                     float lo, float hi, float *y, float *scratch) {
  const int pads1 = p->p[0] == 1 && p->p[1] == 1 && p->p[2] == 1 && p->p[3] == 1;
  if (dw3_applies(p) && pads1 && lpq__isa() >= LPQ_ISA_AVX2) { /* AVX2 or AVX-512: rows */
    memset(scratch, 0, (size_t)p->W * sizeof *scratch);
    if (lpq__kern_dw3_rows(y, x, 0, scratch, w, bias, lo, hi, p->H, p->W, p->OW, (int)p->s[0], 0,
                           p->OH))
      return;
  }
  if (dw3_applies(p)) {
    depthwise3(p, x, w, bias, lo, hi, y, scratch);
  } else if (lpq__dwflat_applies(p)) { /* other windows: flat passes (ops_dwflat.c) */
    lpq__dwflat_plane(p, x, w, bias, lo, hi, y, scratch);
  } else {
    depthwise_channel(p, x, w, bias, y, scratch);
    lpq__kern_bias_clamp(y, 0.0f, lo, hi, (size_t)(p->OH * p->OW));
  }
}
