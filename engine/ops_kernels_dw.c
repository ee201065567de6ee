/* engine/ops_kernels_dw.c: the inner loops of the fused depthwise path (ops_dwfuse.c), each
** compiled for AVX-512 (x86-64-v4), AVX2+FMA (x86-64-v3) and baseline x86-64 like
** ops_kernels.c's, the copy lpq__isa() names called. */
#include "engine/engine_internal.h"

#include <stdint.h>

/* -O2's "very cheap" vectoriser skips loops whose trip count is unknown; these need it. */
#if defined(__GNUC__) && !defined(__clang__) /* clang vectorises at -O2 and has no such pragma */
#pragma GCC optimize("tree-vectorize", "vect-cost-model=dynamic")
#pragma GCC optimize("no-tree-loop-distribute-patterns")
#endif

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define LPQ_X86_VARIANTS 1
#endif

#define KSUF _generic
#include "engine/ops_kernels_dw_body.h"
#undef KSUF

#ifdef LPQ_X86_VARIANTS
#pragma GCC push_options
#pragma GCC target("arch=x86-64-v3")
#define KSUF _avx2
#include "engine/ops_kernels_dw_body.h"
#undef KSUF
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("arch=x86-64-v4")
#define KSUF _avx512
#include "engine/ops_kernels_dw_body.h"
#undef KSUF
#pragma GCC pop_options

#define DISPATCH(name, ...)                                                                    \
  switch (lpq__isa()) {                                                                        \
  case LPQ_ISA_AVX512: name##_avx512(__VA_ARGS__); return;                                     \
  case LPQ_ISA_AVX2: name##_avx2(__VA_ARGS__); return;                                         \
  default: name##_generic(__VA_ARGS__); return;                                                \
  }
#else
#define DISPATCH(name, ...) name##_generic(__VA_ARGS__)
#endif

#ifdef LPQ_X86_VARIANTS
#include <immintrin.h>
#define AVX512 __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,fma")))

/* The rows' last partial vector with masks (loads never touch the lanes past n), where the
** compiled loops would finish one lane at a time; the same arithmetic order as the loops:
** bias, then tap 0 to 8 each by one multiply-add, then the clamp (a NaN stays NaN). */
static inline AVX512 __mmask16 tail_mask(size_t left) {
  return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
}

static AVX512 void dw9_512(float *y, const float *const *taps, const float *w, float bias,
                           float lo, float hi, size_t n) {
  __m512 wv[9];
  for (int t = 0; t < 9; t++)
    wv[t] = _mm512_set1_ps(w[t]);
  const __m512 vb = _mm512_set1_ps(bias), vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    __m512 acc = vb;
    for (int t = 0; t < 9; t++)
      acc = _mm512_fmadd_ps(wv[t], _mm512_maskz_loadu_ps(m, taps[t] + i), acc);
    acc = _mm512_min_ps(vhi, _mm512_max_ps(vlo, acc));
    _mm512_mask_storeu_ps(y + i, m, acc);
  }
}

static AVX512 void dw9s2_512(float *y, const float *const *taps, const float *w, float bias,
                             float lo, float hi, size_t n) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  __m512 wv[9];
  for (int t = 0; t < 9; t++)
    wv[t] = _mm512_set1_ps(w[t]);
  const __m512 vb = _mm512_set1_ps(bias), vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
  for (size_t i = 0; i < n; i += 16) {
    const size_t left = n - i, lanes = left >= 16 ? 31 : 2 * left - 1; /* elements read */
    const __mmask16 m = tail_mask(left), m0 = tail_mask(lanes);
    const __mmask16 m1 = lanes > 16 ? tail_mask(lanes - 16) : 0;
    __m512 acc = vb;
    for (int t = 0; t < 9; t++) {
      const float *p = taps[t] + 2 * i;
      const __m512 a = _mm512_maskz_loadu_ps(m0, p), b = _mm512_maskz_loadu_ps(m1, p + 16);
      acc = _mm512_fmadd_ps(wv[t], _mm512_permutex2var_ps(a, even, b), acc);
    }
    acc = _mm512_min_ps(vhi, _mm512_max_ps(vlo, acc));
    _mm512_mask_storeu_ps(y + i, m, acc);
  }
}

/* Bits [lo, hi) of 16 (clamped to [0, 16]). */
static inline uint32_t bits16(int64_t lo, int64_t hi) {
  lo = lo < 0 ? 0 : lo > 16 ? 16 : lo, hi = hi < 0 ? 0 : hi > 16 ? 16 : hi;
  return lo >= hi ? 0 : ((1u << hi) - 1) & ~((1u << lo) - 1);
}

/* p + off floats as an address (masked-off lanes may point outside the row). */
static inline const float *at(const float *p, int64_t off) {
  return (const float *)((uintptr_t)p + (uintptr_t)(off * (int64_t)sizeof(float)));
}

/* One vector of output (16 lanes from column 16 v) of rows r[0..2]: bias, then taps 0 to 8
** in order, each one multiply-add (the loops' arithmetic), then the clamp. m0/m1: the raw
** loads' masks per kx (stride 2: two loads, even elements). */
static inline AVX512 __m512 dw3_vec(const float *const *r, int64_t v, int s, const __m512 *wv,
                                    __m512 vb, const __mmask16 *m0, const __mmask16 *m1,
                                    __m512i even) {
  __m512 a = vb;
  if (s == 1) {
    const int64_t c = 16 * v - 1;
#pragma GCC unroll 3
    for (int ky = 0; ky < 3; ky++)
#pragma GCC unroll 3
      for (int kx = 0; kx < 3; kx++)
        a = _mm512_fmadd_ps(wv[ky * 3 + kx], _mm512_maskz_loadu_ps(m0[kx], at(r[ky], c + kx)), a);
  } else {
    const int64_t c = 32 * v - 1;
#pragma GCC unroll 3
    for (int ky = 0; ky < 3; ky++)
#pragma GCC unroll 3
      for (int kx = 0; kx < 3; kx++) {
        const __m512 lo = _mm512_maskz_loadu_ps(m0[kx], at(r[ky], c + kx));
        const __m512 hi = _mm512_maskz_loadu_ps(m1[kx], at(r[ky], c + kx + 16));
        a = _mm512_fmadd_ps(wv[ky * 3 + kx], _mm512_permutex2var_ps(lo, even, hi), a);
      }
  }
  return a;
}

/* Output rows [oy0, oy1) of one channel (see lpq__kern_dw3_rows): the masks of each vector
** of a row computed once; the (row, vector) units two at a time, each its own accumulator. */
#define DW3_MAXV 16 /* vectors per output row: OW up to 256 */
static AVX512 void dw3_rows512(float *out, const float *E, int64_t lo_row, const float *zero,
                               const float *w, float bias, float lo, float hi, int64_t H,
                               int64_t W, int64_t OW, int s, int64_t oy0, int64_t oy1) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  __m512 wv[9];
#pragma GCC unroll 9
  for (int t = 0; t < 9; t++)
    wv[t] = _mm512_set1_ps(w[t]);
  const __m512 vb = _mm512_set1_ps(bias), vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
  const int64_t nv = (OW + 15) / 16, units = (oy1 - oy0) * nv;
  __mmask16 m0[DW3_MAXV][3], m1[DW3_MAXV][3], ms[DW3_MAXV];
  for (int64_t v = 0; v < nv; v++) {
    const int64_t ox = 16 * v, lanes = OW - ox < 16 ? OW - ox : 16;
    ms[v] = (__mmask16)bits16(0, lanes);
    for (int kx = 0; kx < 3; kx++) {
      const int64_t c0 = ox * s - 1 + kx; /* column of lane 0 (raw element 0) */
      const int64_t end = s == 1 ? (lanes < W - c0 ? lanes : W - c0)
                                 : (2 * lanes - 1 < W - c0 ? 2 * lanes - 1 : W - c0);
      m0[v][kx] = (__mmask16)bits16(-c0, end);
      m1[v][kx] = (__mmask16)bits16(-c0 - 16, end - 16);
    }
  }
#define DW3_ROWS(oy, r)                                                                        \
  for (int ky_ = 0; ky_ < 3; ky_++) {                                                          \
    const int64_t iy_ = (oy) * s - 1 + ky_;                                                    \
    r[ky_] = iy_ < 0 || iy_ >= H ? zero : E + (iy_ - lo_row) * W;                              \
  }
  for (int64_t u = 0; u < units; u += 2) {
    const int64_t oa = oy0 + u / nv, va = u % nv;
    const float *ra[3];
    DW3_ROWS(oa, ra);
    __m512 a = dw3_vec(ra, va, s, wv, vb, m0[va], m1[va], even);
    if (u + 1 < units) {
      const int64_t ob = oy0 + (u + 1) / nv, vb2 = (u + 1) % nv;
      const float *rb[3];
      DW3_ROWS(ob, rb);
      __m512 b = dw3_vec(rb, vb2, s, wv, vb, m0[vb2], m1[vb2], even);
      b = _mm512_min_ps(vhi, _mm512_max_ps(vlo, b));
      _mm512_mask_storeu_ps(out + (ob - oy0) * OW + 16 * vb2, ms[vb2], b);
    }
    a = _mm512_min_ps(vhi, _mm512_max_ps(vlo, a));
    _mm512_mask_storeu_ps(out + (oa - oy0) * OW + 16 * va, ms[va], a);
  }
#undef DW3_ROWS
}

/* The same for rows of two vectors or more: two vectors of a row at a time, the taps written
** out (an odd count's last pair has an empty vector, all lanes masked). */
static AVX512 void dw3_pairs512(float *out, const float *E, int64_t lo_row, const float *zero,
                               const float *w, float bias, float lo, float hi, int64_t H,
                               int64_t W, int64_t OW, int s, int64_t oy0, int64_t oy1) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  __m512 wv[9];
  for (int t = 0; t < 9; t++)
    wv[t] = _mm512_set1_ps(w[t]);
  const __m512 vb = _mm512_set1_ps(bias), vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
  const int64_t nv = (OW + 15) / 16;
  __mmask16 m0[DW3_MAXV + 1][3], m1[DW3_MAXV + 1][3], ms[DW3_MAXV + 1];
  for (int64_t v = 0; v <= nv; v++) { /* v == nv: an empty vector (odd counts) */
    const int64_t ox = 16 * v, lanes = v < nv ? (OW - ox < 16 ? OW - ox : 16) : 0;
    ms[v] = (__mmask16)bits16(0, lanes);
    for (int kx = 0; kx < 3; kx++) {
      const int64_t c0 = ox * s - 1 + kx; /* column of lane 0 (raw element 0) */
      const int64_t end = s == 1 ? (lanes < W - c0 ? lanes : W - c0)
                                 : (2 * lanes - 1 < W - c0 ? 2 * lanes - 1 : W - c0);
      m0[v][kx] = (__mmask16)bits16(-c0, end);
      m1[v][kx] = (__mmask16)bits16(-c0 - 16, end - 16);
    }
  }
  const __m512 w0 = wv[0], w1 = wv[1], w2 = wv[2], w3 = wv[3], w4 = wv[4], w5 = wv[5];
  const __m512 w6 = wv[6], w7 = wv[7], w8 = wv[8];
  for (int64_t oy = oy0; oy < oy1; oy++) {
    const float *r[3];
    for (int ky = 0; ky < 3; ky++) {
      const int64_t iy = oy * s - 1 + ky;
      r[ky] = iy < 0 || iy >= H ? zero : E + (iy - lo_row) * W;
    }
    const float *r0 = r[0], *r1 = r[1], *r2 = r[2];
    float *y = out + (oy - oy0) * OW;
    for (int64_t v = 0; v < nv; v += 2) {
      __m512 a0 = vb, a1 = vb;
      if (s == 1) { /* lane e of tap (ky, kx) reads column 16 v - 1 + kx + e */
        const int64_t c = 16 * v - 1;
        const __mmask16 p0 = m0[v][0], p1 = m0[v][1], p2 = m0[v][2];
        const __mmask16 q0 = m0[v + 1][0], q1 = m0[v + 1][1], q2 = m0[v + 1][2];
#define DW3_S1(R, WA, WB, WC)                                                                  \
  a0 = _mm512_fmadd_ps(WA, _mm512_maskz_loadu_ps(p0, at(R, c)), a0);                           \
  a1 = _mm512_fmadd_ps(WA, _mm512_maskz_loadu_ps(q0, at(R, c + 16)), a1);                      \
  a0 = _mm512_fmadd_ps(WB, _mm512_maskz_loadu_ps(p1, at(R, c + 1)), a0);                       \
  a1 = _mm512_fmadd_ps(WB, _mm512_maskz_loadu_ps(q1, at(R, c + 17)), a1);                      \
  a0 = _mm512_fmadd_ps(WC, _mm512_maskz_loadu_ps(p2, at(R, c + 2)), a0);                       \
  a1 = _mm512_fmadd_ps(WC, _mm512_maskz_loadu_ps(q2, at(R, c + 18)), a1)
        DW3_S1(r0, w0, w1, w2);
        DW3_S1(r1, w3, w4, w5);
        DW3_S1(r2, w6, w7, w8);
#undef DW3_S1
      } else { /* raw element e of tap (ky, kx) is column 32 v - 1 + kx + e, lane e/2 */
        const int64_t c = 32 * v - 1;
#define DW3_LD(R, OFF, M0, M1)                                                                 \
  _mm512_permutex2var_ps(_mm512_maskz_loadu_ps(M0, at(R, OFF)), even,                          \
                         _mm512_maskz_loadu_ps(M1, at(R, (OFF) + 16)))
#define DW3_S2(R, WA, WB, WC)                                                                  \
  a0 = _mm512_fmadd_ps(WA, DW3_LD(R, c, m0[v][0], m1[v][0]), a0);                              \
  a1 = _mm512_fmadd_ps(WA, DW3_LD(R, c + 32, m0[v + 1][0], m1[v + 1][0]), a1);                 \
  a0 = _mm512_fmadd_ps(WB, DW3_LD(R, c + 1, m0[v][1], m1[v][1]), a0);                          \
  a1 = _mm512_fmadd_ps(WB, DW3_LD(R, c + 33, m0[v + 1][1], m1[v + 1][1]), a1);                 \
  a0 = _mm512_fmadd_ps(WC, DW3_LD(R, c + 2, m0[v][2], m1[v][2]), a0);                          \
  a1 = _mm512_fmadd_ps(WC, DW3_LD(R, c + 34, m0[v + 1][2], m1[v + 1][2]), a1)
        DW3_S2(r0, w0, w1, w2);
        DW3_S2(r1, w3, w4, w5);
        DW3_S2(r2, w6, w7, w8);
#undef DW3_S2
#undef DW3_LD
      }
      _mm512_mask_storeu_ps(y + 16 * v, ms[v], _mm512_min_ps(vhi, _mm512_max_ps(vlo, a0)));
      _mm512_mask_storeu_ps(y + 16 * v + 16, ms[v + 1], _mm512_min_ps(vhi, _mm512_max_ps(vlo, a1)));
    }
  }
}

/* A whole plane, stride 1, pads 1, as one flat run of outputs (the plane's rows back to back, 16
** outputs a vector whatever the row length): tap (ky, kx) of output q reads input
** q + (ky - 1) W + kx - 1, masked where it falls outside the plane's rows or columns. */
static AVX512 void dw3_flat512(float *y, const float *x, const float *w, float bias, float lo,
                               float hi, int64_t H, int64_t W) {
  __m512 wv[9];
#pragma GCC unroll 9
  for (int t = 0; t < 9; t++)
    wv[t] = _mm512_set1_ps(w[t]);
  const __m512 vb = _mm512_set1_ps(bias), vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
  const int64_t n = H * W;
  /* column and row of each lane's output, advanced 16 outputs a vector */
  __m512i ox = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  __m512i oy = _mm512_setzero_si512();
  const __m512i vW = _mm512_set1_epi32((int)W), one = _mm512_set1_epi32(1);
  while (_mm512_cmpge_epi32_mask(ox, vW)) { /* W < 16: lanes past the first row */
    const __mmask16 m = _mm512_cmpge_epi32_mask(ox, vW);
    ox = _mm512_mask_sub_epi32(ox, m, ox, vW);
    oy = _mm512_mask_add_epi32(oy, m, oy, one);
  }
  const __m512i zero = _mm512_setzero_si512(), Wm1 = _mm512_set1_epi32((int)W - 1);
  const __m512i Hm1 = _mm512_set1_epi32((int)H - 1), v16 = _mm512_set1_epi32(16);
  for (int64_t q = 0; q < n; q += 16) {
    const __mmask16 in = (__mmask16)bits16(0, n - q);
    const __mmask16 l = _mm512_cmpgt_epi32_mask(ox, zero), r = _mm512_cmplt_epi32_mask(ox, Wm1);
    const __mmask16 t = _mm512_cmpgt_epi32_mask(oy, zero), b = _mm512_cmplt_epi32_mask(oy, Hm1);
    const __mmask16 mk[3][3] = {{in & t & l, in & t, in & t & r},
                                {in & l, in, in & r},
                                {in & b & l, in & b, in & b & r}};
    __m512 a = vb;
#pragma GCC unroll 3
    for (int ky = 0; ky < 3; ky++)
#pragma GCC unroll 3
      for (int kx = 0; kx < 3; kx++)
        a = _mm512_fmadd_ps(wv[ky * 3 + kx],
                            _mm512_maskz_loadu_ps(mk[ky][kx], at(x, q + (ky - 1) * W + kx - 1)), a);
    _mm512_mask_storeu_ps(y + q, in, _mm512_min_ps(vhi, _mm512_max_ps(vlo, a)));
    ox = _mm512_add_epi32(ox, v16);
    for (__mmask16 m; (m = _mm512_cmpge_epi32_mask(ox, vW));) {
      ox = _mm512_mask_sub_epi32(ox, m, ox, vW);
      oy = _mm512_mask_add_epi32(oy, m, oy, one);
    }
  }
}

/* g planes of lpq__kern_dw3_flat run back to back as one: vector v's nine taps masked by
** m[9 v .. 9 v + 8] (lpq__kern_dw3_flat_masks), no index arithmetic nor branch in the loop, so
** the vectors' chains of nine multiply-adds overlap. The same arithmetic as dw3_flat512. */
static AVX512 void dw3_run512(float *y, size_t panel, const float *x, const uint16_t *m,
                              size_t nvec, int64_t W, const float *w, float bias, float lo,
                              float hi) {
  __m512 wv[9];
#pragma GCC unroll 9
  for (int t = 0; t < 9; t++)
    wv[t] = _mm512_set1_ps(w[t]);
  const __m512 vb = _mm512_set1_ps(bias), vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
  const int64_t off[9] = {-W - 1, -W, -W + 1, -1, 0, 1, W - 1, W, W + 1};
  for (size_t v = 0; v < nvec; v++, m += 9) {
    const float *xq = x + 16 * v;
    __m512 a = vb;
#pragma GCC unroll 9
    for (int t = 0; t < 9; t++)
      a = _mm512_fmadd_ps(wv[t], _mm512_maskz_loadu_ps((__mmask16)m[t], at(xq, off[t])), a);
    _mm512_mask_storeu_ps(y + (v >> 1) * panel + (v & 1) * 16, (__mmask16)m[4],
                          _mm512_min_ps(vhi, _mm512_max_ps(vlo, a)));
  }
}
#endif

int lpq__kern_dw3_flat(float *y, const float *x, const float *w, float bias, float lo, float hi,
                       int64_t H, int64_t W) {
#ifdef LPQ_X86_VARIANTS
  if (lpq__isa() == LPQ_ISA_AVX512 && H * W < ((int64_t)1 << 30)) {
    dw3_flat512(y, x, w, bias, lo, hi, H, W);
    return 1;
  }
#endif
  (void)y, (void)x, (void)w, (void)bias, (void)lo, (void)hi, (void)H, (void)W;
  return 0;
}

int lpq__kern_dw3_rows(float *out, const float *E, int64_t lo_row, const float *zero,
                       const float *w, float bias, float lo, float hi, int64_t H, int64_t W,
                       int64_t OW, int s, int64_t oy0, int64_t oy1) {
#ifdef LPQ_X86_VARIANTS
  if (lpq__isa() == LPQ_ISA_AVX512 && OW <= 16 * DW3_MAXV) {
    if (OW > 16) /* whole rows of vectors */
      dw3_pairs512(out, E, lo_row, zero, w, bias, lo, hi, H, W, OW, s, oy0, oy1);
    else /* one vector a row: two rows at a time */
      dw3_rows512(out, E, lo_row, zero, w, bias, lo, hi, H, W, OW, s, oy0, oy1);
    return 1;
  }
  if (lpq__isa() == LPQ_ISA_AVX2)
    return lpq__kern_dw3_rows_avx2(out, E, lo_row, zero, w, bias, lo, hi, H, W, OW, s, oy0, oy1);
#endif
  (void)out, (void)E, (void)lo_row, (void)zero, (void)w, (void)bias, (void)lo, (void)hi;
  (void)H, (void)W, (void)OW, (void)s, (void)oy0, (void)oy1;
  return 0;
}

void lpq__kern_dw9s2(float *restrict y, const float *const *taps, const float *w, float bias,
                     float lo, float hi, size_t n) {
#ifdef LPQ_X86_VARIANTS
  if (lpq__isa() == LPQ_ISA_AVX512) {
    dw9s2_512(y, taps, w, bias, lo, hi, n);
    return;
  }
#endif
  DISPATCH(dw9s2_, y, taps, w, bias, lo, hi, n);
}

void lpq__kern_dw9m(float *restrict y, const float *const *taps, const float *w, float bias,
                    float lo, float hi, size_t n) {
#ifdef LPQ_X86_VARIANTS
  if (lpq__isa() == LPQ_ISA_AVX512) {
    dw9_512(y, taps, w, bias, lo, hi, n);
    return;
  }
#endif
  lpq__kern_dw9(y, taps, w, bias, lo, hi, n);
}

void lpq__kern_dwblk_row(float *restrict y, const float *restrict r0, const float *restrict r1,
                         const float *restrict r2, const float *restrict w,
                         const float *restrict b, float lo, float hi, size_t ow, size_t s) {
  DISPATCH(dwblk_row_, y, r0, r1, r2, w, b, lo, hi, ow, s);
}

size_t lpq__kern_dw3_flat_masks(uint16_t *m, size_t cap, int64_t g, int64_t H, int64_t W) {
  const int64_t n = g * H * W;
  const size_t nvec = n > 0 ? (size_t)((n + 15) / 16) : 0;
#ifdef LPQ_X86_VARIANTS
  const int isa = lpq__isa();
  if ((isa == LPQ_ISA_AVX512 || isa == LPQ_ISA_AVX2) && nvec > 0 && nvec <= cap) {
    for (size_t i = 0; i < 9 * nvec; i++)
      m[i] = 0;
    int64_t ox = 0, oy = 0; /* output p's column and row in its plane */
    for (int64_t p = 0; p < n; p++) {
      const int rows[3] = {oy > 0, 1, oy < H - 1}, cols[3] = {ox > 0, 1, ox < W - 1};
      uint16_t *mv = m + (p / 16) * 9;
      const uint16_t bit = (uint16_t)(1u << (p % 16));
      for (int t = 0; t < 9; t++)
        mv[t] = rows[t / 3] && cols[t % 3] ? (uint16_t)(mv[t] | bit) : mv[t];
      if (++ox == W && (ox = 0, ++oy == H))
        oy = 0;
    }
    return nvec;
  }
#endif
  (void)m, (void)cap;
  return 0;
}

void lpq__kern_dw3_flat_run(float *y, size_t panel, const float *x, const uint16_t *m,
                            size_t nvec, int64_t g, int64_t H, int64_t W, const float *w,
                            float bias, float lo, float hi) {
#ifdef LPQ_X86_VARIANTS
  if (lpq__isa() == LPQ_ISA_AVX2)
    lpq__kern_dw3_flat_run_avx2(y, panel, x, m, nvec, g, H, W, w, bias, lo, hi);
  else
    dw3_run512(y, panel, x, m, nvec, W, w, bias, lo, hi);
  (void)g, (void)H;
#else
  (void)y, (void)panel, (void)x, (void)m, (void)nvec, (void)g, (void)H, (void)W, (void)w;
  (void)bias, (void)lo, (void)hi;
#endif
}
