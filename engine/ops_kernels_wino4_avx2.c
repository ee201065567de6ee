/* engine/ops_kernels_wino4_avx2.c: the Winograd F(4x4, 3x3) transforms of one tile row with
** AVX2 intrinsics, 8 tiles a vector: the input rows come split by column phase (as for
** lpq__kern_wino4_in), the outputs are interleaved back into rows with in-lane shuffles. The
** loops of ops_kernels_wino_body.h compiled for AVX2 interleaved the outputs element by
** element and made F(4x4) slower there than F(2x2). */
#include "engine/ops_conv_wino.h"

#include <stdlib.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>

#include "engine/ops_avx2.h"

int lpq__kern_wino4_avx2(void) {
  return lpq__isa() == LPQ_ISA_AVX2;
}

#pragma GCC push_options
#pragma GCC target("arch=x86-64-v3")

/* B^T d and A^T y of 6 vectors, as the AVX-512 kernels (ops_kernels_wino4.c). */
static inline __attribute__((always_inline)) void bt6(const __m256 *d, __m256 *o) {
  const __m256 four = _mm256_set1_ps(4.0f), five = _mm256_set1_ps(5.0f);
  const __m256 two = _mm256_set1_ps(2.0f);
  const __m256 s12 = _mm256_add_ps(d[1], d[2]), s34 = _mm256_add_ps(d[3], d[4]);
  const __m256 m12 = _mm256_sub_ps(d[1], d[2]), m43 = _mm256_sub_ps(d[4], d[3]);
  const __m256 m31 = _mm256_sub_ps(d[3], d[1]), m42 = _mm256_sub_ps(d[4], d[2]);
  o[0] = _mm256_fmadd_ps(four, d[0], _mm256_fnmadd_ps(five, d[2], d[4]));
  o[1] = _mm256_fnmadd_ps(four, s12, s34);
  o[2] = _mm256_fmadd_ps(four, m12, m43);
  o[3] = _mm256_fmadd_ps(two, m31, m42);
  o[4] = _mm256_fnmadd_ps(two, m31, m42);
  o[5] = _mm256_fmadd_ps(four, d[1], _mm256_fnmadd_ps(five, d[3], d[5]));
}

static inline __attribute__((always_inline)) void at6(const __m256 *y, __m256 *o) {
  const __m256 s12 = _mm256_add_ps(y[1], y[2]), d12 = _mm256_sub_ps(y[1], y[2]);
  const __m256 s34 = _mm256_add_ps(y[3], y[4]), d34 = _mm256_sub_ps(y[3], y[4]);
  o[0] = _mm256_add_ps(_mm256_add_ps(y[0], s12), s34);
  o[1] = _mm256_fmadd_ps(_mm256_set1_ps(2.0f), d34, d12);
  o[2] = _mm256_fmadd_ps(_mm256_set1_ps(4.0f), s34, s12);
  o[3] = _mm256_add_ps(_mm256_fmadd_ps(_mm256_set1_ps(8.0f), d34, d12), y[5]);
}


void lpq__kern_wino4_in_avx2(size_t len, const float *const *P, float *dst, size_t vstride,
                             size_t col0, size_t pstride) {
  for (size_t u0 = 0; u0 < len; u0 += 8) {
    const size_t n = len - u0 < 8 ? len - u0 : 8, col = col0 + u0;
    __m256 e[6][6];
    for (int r = 0; r < 6; r++) {
      __m256 d[6];
      for (int q = 0; q < 4; q++)
        d[q] = _mm256_loadu_ps(P[4 * r + q] + u0);
      d[4] = _mm256_loadu_ps(P[4 * r] + u0 + 1);
      d[5] = _mm256_loadu_ps(P[4 * r + 1] + u0 + 1);
      bt6(d, e[r]);
    }
    /* lanes in one 32-column panel: stored at once (masked for a short run), else by lane */
    const int whole = col % 32 + n <= 32;
    const __m256i mk = lpq__avx2_lanes(0, (int64_t)n);
    float *base = dst + col / 32 * pstride + col % 32;
    for (int q = 0; q < 6; q++) {
      __m256 c[6], v[6];
      for (int r = 0; r < 6; r++)
        c[r] = e[r][q];
      bt6(c, v);
      for (int i = 0; i < 6; i++) {
        const size_t xi = (size_t)(6 * i + q);
        if (whole && n == 8) {
          _mm256_storeu_ps(base + xi * vstride, v[i]);
        } else if (whole) {
          _mm256_maskstore_ps(base + xi * vstride, mk, v[i]);
        } else {
          float t[8];
          _mm256_storeu_ps(t, v[i]);
          for (size_t u = 0; u < n; u++)
            dst[xi * vstride + (col + u) / 32 * pstride + (col + u) % 32] = t[u];
        }
      }
    }
  }
}

void lpq__kern_wino4_out_avx2(size_t len, const float *s, size_t ystride, const wino_out_t *o) {
  const __m256 vb = _mm256_set1_ps(o->bias), vlo = _mm256_set1_ps(o->lo);
  const __m256 vhi = _mm256_set1_ps(o->hi);
  for (size_t u0 = 0; u0 < len; u0 += 8) {
    const size_t n = len - u0 < 8 ? len - u0 : 8, x0 = 4 * u0;
    const size_t cnt = o->w - x0 < 4 * n ? o->w - x0 : 4 * n; /* valid columns of the 32 */
    __m256 q[4][6];
    for (int c = 0; c < 6; c++) {
      __m256 v[6], t[4];
      for (int r = 0; r < 6; r++)
        v[r] = _mm256_loadu_ps(s + (size_t)(6 * r + c) * ystride + u0);
      at6(v, t);
      for (int i = 0; i < 4; i++)
        q[i][c] = t[i];
    }
    for (int i = 0; i < o->rows; i++) {
      __m256 a[4];
      at6(q[i], a);
      /* lane u of a[j]: tile u's column j -> z[h]: tiles 2h, 2h + 1, 4 columns each */
      const __m256 t0 = _mm256_unpacklo_ps(a[0], a[1]), t1 = _mm256_unpackhi_ps(a[0], a[1]);
      const __m256 t2 = _mm256_unpacklo_ps(a[2], a[3]), t3 = _mm256_unpackhi_ps(a[2], a[3]);
      const __m256 r0 = _mm256_castpd_ps(
          _mm256_unpacklo_pd(_mm256_castps_pd(t0), _mm256_castps_pd(t2)));
      const __m256 r1 = _mm256_castpd_ps(
          _mm256_unpackhi_pd(_mm256_castps_pd(t0), _mm256_castps_pd(t2)));
      const __m256 r2 = _mm256_castpd_ps(
          _mm256_unpacklo_pd(_mm256_castps_pd(t1), _mm256_castps_pd(t3)));
      const __m256 r3 = _mm256_castpd_ps(
          _mm256_unpackhi_pd(_mm256_castps_pd(t1), _mm256_castps_pd(t3)));
      const __m256 z[4] = {_mm256_permute2f128_ps(r0, r1, 0x20),
                           _mm256_permute2f128_ps(r2, r3, 0x20),
                           _mm256_permute2f128_ps(r0, r1, 0x31),
                           _mm256_permute2f128_ps(r2, r3, 0x31)};
      float *yr = o->y[i] + x0;
      const float *rr = o->res ? o->res[i] + x0 : NULL;
      for (size_t h = 0; h < 4 && 8 * h < cnt; h++) {
        const size_t k = cnt - 8 * h < 8 ? cnt - 8 * h : 8;
        const __m256i mk = lpq__avx2_lanes(0, (int64_t)k);
        __m256 v = _mm256_add_ps(z[h], vb);
        if (rr) /* (w + bias) + res, as the loops */
          v = _mm256_add_ps(v, k == 8 ? _mm256_loadu_ps(rr + 8 * h)
                                      : _mm256_maskload_ps(rr + 8 * h, mk));
        v = _mm256_blendv_ps(v, vlo, _mm256_cmp_ps(v, vlo, _CMP_LT_OQ));
        v = _mm256_blendv_ps(v, vhi, _mm256_cmp_ps(v, vhi, _CMP_GT_OQ));
        if (k == 8)
          _mm256_storeu_ps(yr + 8 * h, v);
        else
          _mm256_maskstore_ps(yr + 8 * h, mk, v);
      }
    }
  }
}
#pragma GCC pop_options

#else /* no AVX2 variants in this build: never called */
int lpq__kern_wino4_avx2(void) {
  return 0;
}

void lpq__kern_wino4_in_avx2(size_t len, const float *const *P, float *dst, size_t vstride,
                             size_t col0, size_t pstride) {
  (void)len, (void)P, (void)dst, (void)vstride, (void)col0, (void)pstride;
  abort();
}

void lpq__kern_wino4_out_avx2(size_t len, const float *s, size_t ystride, const wino_out_t *o) {
  (void)len, (void)s, (void)ystride, (void)o;
  abort();
}
#endif
