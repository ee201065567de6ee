/* engine/ops_kernels_wino2_avx2.c: the multi-row Winograd F(2x2) input transform with AVX2 (the
** AVX-512 one is in ops_kernels.c): 16 tiles over several tile rows, each lane's window
** gathered with masked loads straight from the input plane's rows (zero outside the plane), as
** two halves of 8 lanes, so the padded row copies the loops of ops_kernels_wino_body.h need are
** not made. The same arithmetic per lane as those loops (adds and subtracts only): the results
** are the row path's bit for bit. */
#include "engine/ops_conv_wino.h"

#include <stdlib.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>

#include "engine/ops_avx2.h"

#pragma GCC push_options
#pragma GCC target("arch=x86-64-v3")

/* Even and odd elements of (a, b): elements 0, 2, .., 14 and 1, 3, .., 15. */
static inline void split2(__m256 a, __m256 b, __m256 *even, __m256 *odd) {
  const __m256 e = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
  const __m256 o = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
  *even = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), _MM_SHUFFLE(3, 1, 2, 0)));
  *odd = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(o), _MM_SHUFFLE(3, 1, 2, 0)));
}

void lpq__kern_wino_in_segs_avx2(size_t nt, const wino_iseg_t *seg, const int *first,
                                 size_t nruns, int64_t W, size_t C, size_t HW, float *dst,
                                 size_t vstride, size_t pstride) {
  for (size_t k = 0; k < nruns; k++) {
    /* the run's segments' masks, the same for every channel: lanes (lm), the raw elements of
    ** columns 0, 1 (ma) and 2, 3 (mb), for the two halves of 8 lanes */
    enum { MAXS = WINO_RUN + 1 };
    __m256i lm[MAXS][2], ma[MAXS][2][2], mb[MAXS][2][2];
    int64_t sh[MAXS];
    const int s0 = first[k], ns = first[k + 1] - first[k];
    for (int i = 0; i < ns; i++) {
      const wino_iseg_t *g = &seg[s0 + i];
      /* raw element e of the 32 from column sh is lane e / 2's column e % 2; from sh + 2 its
      ** columns 2 and 3 */
      const int64_t e0 = 2 * (int64_t)g->l0, e1 = e0 + 2 * (int64_t)g->len;
      sh[i] = g->x0 - e0;
      const int64_t alo = e0 > -sh[i] ? e0 : -sh[i], ahi = e1 < W - sh[i] ? e1 : W - sh[i];
      const int64_t blo = e0 > -sh[i] - 2 ? e0 : -sh[i] - 2;
      const int64_t bhi = e1 < W - sh[i] - 2 ? e1 : W - sh[i] - 2;
      for (int h = 0; h < 2; h++) {
        lm[i][h] = lpq__avx2_lanes((int64_t)g->l0 - 8 * h, (int64_t)(g->l0 + g->len) - 8 * h);
        for (int64_t v = 0; v < 2; v++) { /* source lanes 16 h + 8 v + i */
          ma[i][h][v] = lpq__avx2_lanes(alo - 16 * h - 8 * v, ahi - 16 * h - 8 * v);
          mb[i][h][v] = lpq__avx2_lanes(blo - 16 * h - 8 * v, bhi - 16 * h - 8 * v);
        }
      }
    }
    /* run k is block columns [16 k, 16 k + n): within one 32-column panel */
    const size_t col = 16 * k, n = nt - col < 16 ? nt - col : 16;
    for (size_t c = 0; c < C; c++) {
      const size_t off = c * HW;
      __m256 d[4][4][2]; /* input row R, window column Q, lanes 8h .. 8h + 7 */
      for (int r = 0; r < 4; r++)
        for (int q = 0; q < 4; q++)
          d[r][q][0] = d[r][q][1] = _mm256_setzero_ps();
      for (int i = 0; i < ns; i++) {
        const wino_iseg_t *g = &seg[s0 + i];
        for (int h = 0; h < 2; h++) {
          if (_mm256_testz_si256(lm[i][h], lm[i][h]))
            continue;
          const __m256 lmf = _mm256_castsi256_ps(lm[i][h]);
          for (int r = 0; r < 4; r++) {
            if (!g->row[r])
              continue;
            const float *a = lpq__avx2_at(g->row[r] + off, sh[i] + 16 * h);
            const float *b = lpq__avx2_at(a, 2);
            __m256 c0, c1, c2, c3;
            split2(_mm256_maskload_ps(a, ma[i][h][0]),
                   _mm256_maskload_ps(lpq__avx2_at(a, 8), ma[i][h][1]), &c0, &c1);
            split2(_mm256_maskload_ps(b, mb[i][h][0]),
                   _mm256_maskload_ps(lpq__avx2_at(b, 8), mb[i][h][1]), &c2, &c3);
            d[r][0][h] = _mm256_blendv_ps(d[r][0][h], c0, lmf);
            d[r][1][h] = _mm256_blendv_ps(d[r][1][h], c1, lmf);
            d[r][2][h] = _mm256_blendv_ps(d[r][2][h], c2, lmf);
            d[r][3][h] = _mm256_blendv_ps(d[r][3][h], c3, lmf);
          }
        }
      }
      float *out = dst + c * NR + col / 32 * pstride + col % 32;
      for (int h = 0; h < 2; h++) {
        const size_t nh = n > 8 * (size_t)h ? n - 8 * (size_t)h : 0;
        if (!nh)
          break;
        const __m256i sm = lpq__avx2_lanes(0, (int64_t)nh);
        float *o = out + 8 * h;
        for (int q = 0; q < 4; q++) { /* e_R = (d B)[R][q], then V_xi (xi = 4 i + q) */
          __m256 e[4];
          for (int r = 0; r < 4; r++) {
            const __m256 a0 = d[r][0][h], a1 = d[r][1][h], a2 = d[r][2][h], a3 = d[r][3][h];
            e[r] = q == 0   ? _mm256_sub_ps(a0, a2)
                   : q == 1 ? _mm256_add_ps(a1, a2)
                   : q == 2 ? _mm256_sub_ps(a2, a1)
                            : _mm256_sub_ps(a1, a3);
          }
          const __m256 v[4] = {_mm256_sub_ps(e[0], e[2]), _mm256_add_ps(e[1], e[2]),
                               _mm256_sub_ps(e[2], e[1]), _mm256_sub_ps(e[1], e[3])};
          for (int i = 0; i < 4; i++) { /* masked stores (slow on AMD's CPUs) only when short */
            if (nh >= 8)
              _mm256_storeu_ps(o + (size_t)(4 * i + q) * vstride, v[i]);
            else
              _mm256_maskstore_ps(o + (size_t)(4 * i + q) * vstride, sm, v[i]);
          }
        }
      }
    }
  }
}
#pragma GCC pop_options

#else /* no AVX2 variants in this build: never called (lpq__kern_wino4_avx2() is 0) */
void lpq__kern_wino_in_segs_avx2(size_t nt, const wino_iseg_t *seg, const int *first,
                                 size_t nruns, int64_t W, size_t C, size_t HW, float *dst,
                                 size_t vstride, size_t pstride) {
  (void)nt, (void)seg, (void)first, (void)nruns, (void)W, (void)C, (void)HW, (void)dst;
  (void)vstride, (void)pstride;
  abort();
}
#endif
