/* engine/ops_conv_pack.c: the implicit GEMM of a convolution: the GEMM kernel asks for
** panels of the im2col matrix and they are copied straight from the input, so the matrix is
** never stored. */
#include "engine/engine_internal.h"

#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>

#include "engine/ops_avx2.h"
#define PACK_TARGET __attribute__((target("avx512f")))
/* d[0..n) = s[0..n), n <= 32, without a call: masked lanes are neither read nor written. */
PACK_TARGET static inline void copy_upto32(float *d, const float *s, int64_t n) {
  const __mmask16 m0 = n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1);
  const __mmask16 m1 = n >= 32 ? (__mmask16)0xffff
                       : n > 16 ? (__mmask16)((1u << (n - 16)) - 1) : (__mmask16)0;
  _mm512_mask_storeu_ps(d, m0, _mm512_maskz_loadu_ps(m0, s));
  if (m1)
    _mm512_mask_storeu_ps(d + 16, m1, _mm512_maskz_loadu_ps(m1, s + 16));
}
#define AVX2_TARGET __attribute__((target("avx2,fma")))
/* The same with AVX2, 8 outputs a step (lanes by engine/ops_avx2.h). */
AVX2_TARGET static inline void copy_stride2_avx2(float *d, const float *s, int64_t lo,
                                                 int64_t hi, int64_t n) {
  for (int64_t h = 0; 8 * h < n; h++) {
    const int64_t j0 = 16 * h; /* source index of lane 0 of the first load */
    const float *p0 = lpq__avx2_at(s, j0);
    __m256 a, b;
    if (2 * lo <= j0 && j0 + 16 <= 2 * hi - 1) { /* all 16 inside [2 lo, 2 hi - 1) */
      a = _mm256_loadu_ps(p0), b = _mm256_loadu_ps(p0 + 8);
    } else {
      a = _mm256_maskload_ps(p0, lpq__avx2_lanes(2 * lo - j0, 2 * hi - 1 - j0));
      b = _mm256_maskload_ps(lpq__avx2_at(p0, 8),
                             lpq__avx2_lanes(2 * lo - j0 - 8, 2 * hi - 1 - j0 - 8));
    }
    const __m256 pairs = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)); /* a0 a2 b0 b2 | .. */
    const __m256 ev = _mm256_castpd_ps(
        _mm256_permute4x64_pd(_mm256_castps_pd(pairs), _MM_SHUFFLE(3, 1, 2, 0)));
    _mm256_storeu_ps(d + 8 * h, ev); /* whole vectors: see conv_pack */
  }
}
/* d[0..n) = s[0..n) by whole vectors (only s[0..n) is read). */
AVX2_TARGET static inline void copy_avx2(float *d, const float *s, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(d + i, _mm256_loadu_ps(s + i));
  if (i < n)
    _mm256_storeu_ps(d + i, _mm256_maskload_ps(s + i, lpq__avx2_lanes(0, n - i)));
}
#define HAVE_STRIDE2_COPY 1
#else
#define PACK_TARGET
static inline void copy_upto32(float *d, const float *s, int64_t n) {
  memcpy(d, s, (size_t)n * sizeof *d);
}
#endif

/* The packer, inlined into an AVX2 copy (wide 1: masked loads, and whole-vector stores: masked
** stores are slow on AMD's CPUs, and a variable memcpy per segment cost more than the copy) and
** a plain one. A whole-vector store writes up to 7 floats past its segment; those are written
** again later: by the next segment, the row's zero fill, the next row (kk + 1), the next panel's
** first row, or past the last panel into the pack buffer's slack (lpq__sgemm_pack_floats: KC x
** 32 floats and more). */
static inline __attribute__((always_inline)) void conv_pack(const void *ctx, size_t k0,
                                                            size_t kc, size_t n0, size_t nc,
                                                            float *Bp, const int wide) {
  const conv_implicit_t *ib = ctx;
  const conv_params_t *p = ib->p;
  const int64_t kh = p->k[0], kw = p->k[1], H = p->H, W = p->W, OW = p->OW, OHW = p->OH * OW;
  const int64_t sy = p->s[0], sx = p->s[1], dy = p->d[0], dx = p->d[1];
  for (size_t q = 0; q < nc; q += SGEMM_NR) {
    const int64_t w = (int64_t)(nc - q < SGEMM_NR ? nc - q : SGEMM_NR);
    /* the panel's columns as runs within one output row: start column, oy, ox, length */
    int64_t seg_t[SGEMM_NR + 1], seg_oy[SGEMM_NR + 1], seg_ox[SGEMM_NR + 1], seg_len[SGEMM_NR + 1];
    int64_t seg_img[SGEMM_NR + 1]; /* the image's offset from x (rows never span two images) */
    int nseg = 0;
    for (int64_t t = 0; t < w;) {
      const int64_t g = ib->pos0 + (int64_t)(n0 + q) + t, pos = g % OHW, ox = pos % OW;
      const int64_t len = OW - ox < w - t ? OW - ox : w - t;
      seg_t[nseg] = t, seg_oy[nseg] = pos / OW, seg_ox[nseg] = ox, seg_len[nseg] = len;
      seg_img[nseg] = g / OHW * ib->img_stride;
      nseg++;
      t += len;
    }
    float *dst = Bp + q * kc;
    int64_t r = (int64_t)k0, c = r / (kh * kw), ky = r % (kh * kw) / kw, kx = r % kw;
    for (size_t kk = 0; kk < kc; kk++, dst += SGEMM_NR) {
      const float *xc = ib->x + c * H * W;
      for (int i = 0; i < nseg; i++) {
        float *d = dst + seg_t[i];
        const int64_t len = seg_len[i];
        const int64_t iy = seg_oy[i] * sy - p->p[0] + ky * dy;
        const int64_t ix0 = seg_ox[i] * sx - p->p[1] + kx * dx;
        if (iy < 0 || iy >= H) {
          memset(d, 0, (size_t)len * sizeof *d);
          continue;
        }
        const float *row = xc + seg_img[i] + iy * W;
#ifdef HAVE_STRIDE2_COPY
        if (wide && kx == 0 && iy + 2 * sy < H) {
          /* prefetch the row two output rows on: the panels after this one read it, and a stem's
          ** rows in three planes are more streams than the prefetchers follow (mobilenet_v2's
          ** stem chain 4-6% faster on an EPYC, resnet18's stride-2 convs 3%; a prefetch never
          ** faults, so the row's end needs no check) */
          const char *nx = (const char *)(row + 2 * sy * W + (ix0 > 0 ? ix0 : 0));
          for (int64_t b = 0; b < len * sx * 4 + 64; b += 64)
            _mm_prefetch(nx + b, _MM_HINT_T0);
        }
#endif
        if (sx == 1 && ix0 >= 0 && ix0 + len <= W) {
#ifdef HAVE_STRIDE2_COPY
          if (wide)
            copy_avx2(d, row + ix0, len);
          else
#endif
            memcpy(d, row + ix0, (size_t)len * sizeof *d);
#ifdef HAVE_STRIDE2_COPY
        } else if (wide && sx == 2) { /* valid t: 0 <= ix0 + 2t < W */
          const int64_t lo = ix0 >= 0 ? 0 : (-ix0 + 1) / 2;
          int64_t hi = W - ix0 <= 0 ? 0 : (W - ix0 - 1) / 2 + 1;
          hi = hi < len ? hi : len;
          const float *s = lpq__avx2_at(row, ix0); /* lanes before the row are masked */
          copy_stride2_avx2(d, s, lo < hi ? lo : hi, hi, len);
#endif
        } else {
          for (int64_t t = 0; t < len; t++) {
            const int64_t ix = ix0 + t * sx;
            d[t] = ix >= 0 && ix < W ? row[ix] : 0.0f;
          }
        }
      }
      for (int64_t t = w; t < SGEMM_NR; t++)
        dst[t] = 0.0f;
      if (++kx == kw) { /* next row of the im2col matrix: (c, ky, kx) advance */
        kx = 0;
        if (++ky == kh)
          ky = 0, c++;
      }
    }
  }
}


#ifdef HAVE_STRIDE2_COPY
__attribute__((target("avx2,fma"))) static void conv_pack_avx2(const void *ctx, size_t k0,
                                                               size_t kc, size_t n0, size_t nc,
                                                               float *Bp) {
  conv_pack(ctx, k0, kc, n0, nc, Bp, 1);
}
#endif

/* Only called by lpq's GEMM kernel (lpq__sgemm_packs_a()), so on AVX2 or AVX-512 CPUs; both
** run the AVX2 copies (with AVX-512 ones, masked loads and stores 16 floats a step,
** mobilenet_v2 took 1.07x the time on a Zen 5 EPYC). */
void lpq__conv_pack_b(const void *ctx, size_t k0, size_t kc, size_t n0, size_t nc, float *Bp) {
#ifdef HAVE_STRIDE2_COPY
  conv_pack_avx2(ctx, k0, kc, n0, nc, Bp);
#else
  conv_pack(ctx, k0, kc, n0, nc, Bp, 0);
#endif
}

/* Pointwise (1x1, stride 1, no pads) over several images side by side: column g of B is output
** position g % OHW of image g / OHW, row k its input channel k. */
static inline __attribute__((always_inline)) void pointwise_pack(const void *ctx, size_t k0,
                                                                 size_t kc, size_t n0, size_t nc,
                                                                 float *Bp, const int wide) {
  const conv_pointwise_t *pw = ctx;
  for (size_t q = 0; q < nc; q += SGEMM_NR) {
    const int64_t w = (int64_t)(nc - q < SGEMM_NR ? nc - q : SGEMM_NR);
    const float *src[SGEMM_NR];
    int64_t seg_t[SGEMM_NR + 1], seg_len[SGEMM_NR + 1];
    int nseg = 0;
    for (int64_t t = 0; t < w;) {
      const int64_t g = pw->c0 + (int64_t)(n0 + q) + t, img = g / pw->OHW, pos = g % pw->OHW;
      const int64_t len = pw->OHW - pos < w - t ? pw->OHW - pos : w - t;
      src[nseg] = pw->x + img * pw->img_stride + (int64_t)k0 * pw->HW + pos;
      seg_t[nseg] = t, seg_len[nseg] = len;
      nseg++;
      t += len;
    }
    float *dst = Bp + q * kc;
    for (size_t kk = 0; kk < kc; kk++, dst += SGEMM_NR) {
      for (int i = 0; i < nseg; i++) {
        const float *sr = src[i] + (int64_t)kk * pw->HW;
        if (wide)
          copy_upto32(dst + seg_t[i], sr, seg_len[i]);
        else
          memcpy(dst + seg_t[i], sr, (size_t)seg_len[i] * sizeof *dst);
      }
      for (int64_t t = w; t < SGEMM_NR; t++)
        dst[t] = 0.0f;
    }
  }
}

#ifdef HAVE_STRIDE2_COPY
PACK_TARGET static void pointwise_pack_avx512(const void *ctx, size_t k0, size_t kc, size_t n0,
                                              size_t nc, float *Bp) {
  pointwise_pack(ctx, k0, kc, n0, nc, Bp, 1);
}
#endif

void lpq__conv_pack_pointwise(const void *ctx, size_t k0, size_t kc, size_t n0, size_t nc,
                              float *Bp) {
#ifdef HAVE_STRIDE2_COPY
  if (lpq__isa() == LPQ_ISA_AVX512) {
    pointwise_pack_avx512(ctx, k0, kc, n0, nc, Bp);
    return;
  }
#endif
  pointwise_pack(ctx, k0, kc, n0, nc, Bp, 0);
}
