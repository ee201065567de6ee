/* engine/ops_kernels_wino4.c: the Winograd F(4x4, 3x3) transforms with AVX-512, 16 tiles per
** call over several tile rows (and images): a 28x28 map has 7 tiles per row, a 56x56 one 14, so
** a row at a time fills 7 or 14 of the 16 lanes. The input windows are gathered straight from
** the plane's rows with masked loads (zero outside the plane: no padded copies), the outputs
** stored with masks. Used when lpq__isa() is AVX-512; otherwise ops_conv_wino.c runs the
** row-by-row loops of ops_kernels_wino_body.h. */
#include "engine/ops_conv_wino.h"

#include <stdlib.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>

int lpq__kern_wino4_runs(void) {
  return lpq__isa() == LPQ_ISA_AVX512;
}

#pragma GCC push_options
#pragma GCC target("arch=x86-64-v4")

/* Bits [lo, hi) of 64 (lo, hi clamped to [0, 64]). */
static inline uint64_t bits64(int64_t lo, int64_t hi) {
  lo = lo < 0 ? 0 : lo > 64 ? 64 : lo, hi = hi < 0 ? 0 : hi > 64 ? 64 : hi;
  if (lo >= hi)
    return 0;
  const uint64_t top = hi == 64 ? ~0ull : (1ull << hi) - 1;
  return top & ~((1ull << lo) - 1);
}

/* p + off floats, computed as an address (masked-off lanes may lie outside the object). */
static inline const float *at_off(const float *p, int64_t off) {
  return (const float *)((uintptr_t)p + (uintptr_t)(off * (int64_t)sizeof(float)));
}

/* B^T d of 6 vectors (rows of B^T: (4 0 -5 0 1 0) (0 -4 -4 1 1 0) (0 4 -4 -1 1 0)
** (0 -2 -1 2 1 0) (0 2 -1 -2 1 0) (0 4 0 -5 0 1)). */
static inline __attribute__((always_inline)) void bt6(const __m512 *d, __m512 *o) {
  const __m512 four = _mm512_set1_ps(4.0f), five = _mm512_set1_ps(5.0f);
  const __m512 two = _mm512_set1_ps(2.0f);
  const __m512 s12 = _mm512_add_ps(d[1], d[2]), s34 = _mm512_add_ps(d[3], d[4]);
  const __m512 m12 = _mm512_sub_ps(d[1], d[2]), m43 = _mm512_sub_ps(d[4], d[3]);
  const __m512 m31 = _mm512_sub_ps(d[3], d[1]), m42 = _mm512_sub_ps(d[4], d[2]);
  o[0] = _mm512_fmadd_ps(four, d[0], _mm512_fnmadd_ps(five, d[2], d[4]));
  o[1] = _mm512_fnmadd_ps(four, s12, s34);
  o[2] = _mm512_fmadd_ps(four, m12, m43);
  o[3] = _mm512_fmadd_ps(two, m31, m42);
  o[4] = _mm512_fnmadd_ps(two, m31, m42);
  o[5] = _mm512_fmadd_ps(four, d[1], _mm512_fnmadd_ps(five, d[3], d[5]));
}

/* A^T y of 6 vectors (rows of A^T: (1 1 1 1 1 0) (0 1 -1 2 -2 0) (0 1 1 4 4 0)
** (0 1 -1 8 -8 1)). */
static inline __attribute__((always_inline)) void at6(const __m512 *y, __m512 *o) {
  const __m512 s12 = _mm512_add_ps(y[1], y[2]), d12 = _mm512_sub_ps(y[1], y[2]);
  const __m512 s34 = _mm512_add_ps(y[3], y[4]), d34 = _mm512_sub_ps(y[3], y[4]);
  o[0] = _mm512_add_ps(_mm512_add_ps(y[0], s12), s34);
  o[1] = _mm512_fmadd_ps(_mm512_set1_ps(2.0f), d34, d12);
  o[2] = _mm512_fmadd_ps(_mm512_set1_ps(4.0f), s34, s12);
  o[3] = _mm512_add_ps(_mm512_fmadd_ps(_mm512_set1_ps(8.0f), d34, d12), y[5]);
}

/* Window columns 0..5 of lanes lm of one input row: raw element e of the 64 from column sh is
** lane e / 4, column e % 4 (masks ma), and of the 64 from column sh + 4 columns 4, 5 (mb). */
static inline __attribute__((always_inline)) void gather_row(const float *row, int64_t sh,
                                                             uint64_t ma, uint64_t mb,
                                                             __mmask16 lm, __m512 *D) {
  const __m512i i01 = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 1, 5, 9, 13, 17, 21, 25, 29);
  const __m512i i23 = _mm512_setr_epi32(2, 6, 10, 14, 18, 22, 26, 30, 3, 7, 11, 15, 19, 23, 27,
                                        31);
  __m512 a[4], b[4];
  const float *pa = at_off(row, sh), *pb = at_off(row, sh + 4);
  for (int h = 0; h < 4; h++) {
    a[h] = _mm512_maskz_loadu_ps((__mmask16)(ma >> (16 * h)), at_off(pa, 16 * h));
    b[h] = _mm512_maskz_loadu_ps((__mmask16)(mb >> (16 * h)), at_off(pb, 16 * h));
  }
  /* x: lanes 0-7 columns 0 | 1, x2: lanes 8-15 columns 0 | 1; y, y2 columns 2 | 3 */
  const __m512 x = _mm512_permutex2var_ps(a[0], i01, a[1]);
  const __m512 x2 = _mm512_permutex2var_ps(a[2], i01, a[3]);
  const __m512 y = _mm512_permutex2var_ps(a[0], i23, a[1]);
  const __m512 y2 = _mm512_permutex2var_ps(a[2], i23, a[3]);
  const __m512 z = _mm512_permutex2var_ps(b[0], i01, b[1]);
  const __m512 z2 = _mm512_permutex2var_ps(b[2], i01, b[3]);
  D[0] = _mm512_mask_mov_ps(D[0], lm, _mm512_shuffle_f32x4(x, x2, 0x44));
  D[1] = _mm512_mask_mov_ps(D[1], lm, _mm512_shuffle_f32x4(x, x2, 0xee));
  D[2] = _mm512_mask_mov_ps(D[2], lm, _mm512_shuffle_f32x4(y, y2, 0x44));
  D[3] = _mm512_mask_mov_ps(D[3], lm, _mm512_shuffle_f32x4(y, y2, 0xee));
  D[4] = _mm512_mask_mov_ps(D[4], lm, _mm512_shuffle_f32x4(z, z2, 0x44));
  D[5] = _mm512_mask_mov_ps(D[5], lm, _mm512_shuffle_f32x4(z, z2, 0xee));
}

void lpq__kern_wino4_masks(wino4_iseg_t *seg, int n, int64_t W) {
  for (int s = 0; s < n; s++) {
    wino4_iseg_t *g = &seg[s];
    const int64_t e0 = 4 * (int64_t)g->l0, e1 = e0 + 4 * (int64_t)g->len, sh = g->x0 - e0;
    g->sh = sh;
    g->ma = bits64(e0 > -sh ? e0 : -sh, e1 < W - sh ? e1 : W - sh);
    g->mb = bits64(e0 > -sh - 4 ? e0 : -sh - 4, e1 < W - sh - 4 ? e1 : W - sh - 4) &
            0x3333333333333333ull; /* columns 4 and 5 only */
    g->lm = ((1u << g->len) - 1) << g->l0;
  }
}

void lpq__kern_wino4_in_runs(const wino4_iseg_t *seg, const int *first, size_t nruns,
                             size_t off, float *dst, size_t vstride, size_t pstride) {
  for (size_t k = 0; k < nruns; k++) {
    __m512 e[6][6]; /* e[r] = d[r] B: row r's window along its columns */
    for (int r = 0; r < 6; r++) {
      __m512 D[6];
      for (int q = 0; q < 6; q++)
        D[q] = _mm512_setzero_ps();
      for (int s = first[k]; s < first[k + 1]; s++) {
        const wino4_iseg_t *g = &seg[s];
        if (!g->row[r])
          continue;
        gather_row(g->row[r] + off, g->sh, g->ma, g->mb, (__mmask16)g->lm, D);
      }
      bt6(D, e[r]);
    }
    /* run k: block columns [16 k, 16 k + 16), inside one 32-column panel */
    float *out = dst + 16 * k / 32 * pstride + 16 * k % 32;
    for (int q = 0; q < 6; q++) {
      __m512 col[6], v[6];
      for (int r = 0; r < 6; r++)
        col[r] = e[r][q];
      bt6(col, v);
      for (int i = 0; i < 6; i++)
        _mm512_storeu_ps(out + (size_t)(6 * i + q) * vstride, v[i]);
    }
  }
}

/* Lane u of a[jj] is tile u's output column jj: z[h] holds tiles 4h..4h+3, 4 columns each. */
static inline __attribute__((always_inline)) void interleave4(const __m512 *a, __m512 *z) {
  const __m512 t0 = _mm512_unpacklo_ps(a[0], a[1]), t1 = _mm512_unpackhi_ps(a[0], a[1]);
  const __m512 t2 = _mm512_unpacklo_ps(a[2], a[3]), t3 = _mm512_unpackhi_ps(a[2], a[3]);
  const __m512d p0 = _mm512_castps_pd(t0), p1 = _mm512_castps_pd(t1);
  const __m512d p2 = _mm512_castps_pd(t2), p3 = _mm512_castps_pd(t3);
  const __m512 r0 = _mm512_castpd_ps(_mm512_unpacklo_pd(p0, p2));
  const __m512 r1 = _mm512_castpd_ps(_mm512_unpackhi_pd(p0, p2));
  const __m512 r2 = _mm512_castpd_ps(_mm512_unpacklo_pd(p1, p3));
  const __m512 r3 = _mm512_castpd_ps(_mm512_unpackhi_pd(p1, p3));
  /* rJ's 128-bit block L: tile 4L + J */
  const __m512 u0 = _mm512_shuffle_f32x4(r0, r1, 0x44), u1 = _mm512_shuffle_f32x4(r2, r3, 0x44);
  const __m512 u2 = _mm512_shuffle_f32x4(r0, r1, 0xee), u3 = _mm512_shuffle_f32x4(r2, r3, 0xee);
  z[0] = _mm512_shuffle_f32x4(u0, u1, 0x88);
  z[1] = _mm512_shuffle_f32x4(u0, u1, 0xdd);
  z[2] = _mm512_shuffle_f32x4(u2, u3, 0x88);
  z[3] = _mm512_shuffle_f32x4(u2, u3, 0xdd);
}

void lpq__kern_wino4_out_run(const float *s, size_t ystride, const wino4_oseg_t *seg,
                             size_t nseg, size_t off, float bias, float lo, float hi) {
  __m512 q[4][6]; /* q = A^T v, by columns */
  for (int c = 0; c < 6; c++) {
    __m512 v[6], o[4];
    for (int r = 0; r < 6; r++)
      v[r] = _mm512_loadu_ps(s + (size_t)(6 * r + c) * ystride);
    at6(v, o);
    for (int i = 0; i < 4; i++)
      q[i][c] = o[i];
  }
  const __m512 vb = _mm512_set1_ps(bias), vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
  for (int i = 0; i < 4; i++) { /* output row i of every tile: q[i] A, interleaved */
    __m512 o[4], z[4];
    at6(q[i], o);
    interleave4(o, z);
    for (int h = 0; h < 4; h++)
      z[h] = _mm512_add_ps(z[h], vb);
    for (size_t k = 0; k < nseg; k++) {
      const wino4_oseg_t *g = &seg[k];
      if (i >= g->rows)
        continue;
      const int64_t e0 = 4 * (int64_t)g->l0;
      const uint64_t m = bits64(e0, e0 + (int64_t)g->w);
      float *yb = (float *)at_off(g->y[i] + off, -e0);
      const float *rb = g->res[i] ? at_off(g->res[i] + off, -e0) : NULL;
      for (int h = (int)(e0 / 16); h < 4; h++) {
        const __mmask16 mh = (__mmask16)(m >> (16 * h));
        if (!mh)
          break;
        __m512 v = z[h];
        if (rb) /* (w + bias) + res */
          v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mh, at_off(rb, 16 * h)));
        v = _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, vlo, _CMP_LT_OQ), vlo);
        v = _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, vhi, _CMP_GT_OQ), vhi);
        _mm512_mask_storeu_ps((float *)at_off(yb, 16 * h), mh, v);
      }
    }
  }
}
#pragma GCC pop_options

#else /* no AVX-512 variants in this build: never called */
int lpq__kern_wino4_runs(void) {
  return 0;
}

void lpq__kern_wino4_masks(wino4_iseg_t *seg, int n, int64_t W) {
  (void)seg, (void)n, (void)W;
  abort();
}

void lpq__kern_wino4_in_runs(const wino4_iseg_t *seg, const int *first, size_t nruns,
                             size_t off, float *dst, size_t vstride, size_t pstride) {
  (void)seg, (void)first, (void)nruns, (void)off, (void)dst, (void)vstride;
  (void)pstride;
  abort();
}

void lpq__kern_wino4_out_run(const float *s, size_t ystride, const wino4_oseg_t *seg,
                             size_t nseg, size_t off, float bias, float lo, float hi) {
  (void)s, (void)ystride, (void)seg, (void)nseg, (void)off, (void)bias, (void)lo, (void)hi;
  abort();
}
#endif
