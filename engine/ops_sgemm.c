/* engine/ops_sgemm.c: single-precision GEMM for the convolution and matmul kernels.
**
** OpenBLAS is the reference and the fallback. With AVX-512 or AVX2+FMA (lpq__isa()) lpq uses its
** own blocked kernel: A packed once (at load for constant weights) in panels of 8 rows, B packed
** per block in panels of 32 columns, an 8x32 register tile (AVX-512: 16 accumulators; AVX2: four
** 4x16 sub-tiles of 8). Debian's OpenBLAS 0.3.21 may run its AVX2 or even SSE3 kernels on CPUs
** it does not know, which halves the convolution throughput or worse. Both instruction sets
** share the packed layouts, so weights packed under one run under the other. */
#include "engine/engine_internal.h"

/* -O2's "very cheap" vectoriser skips loops whose trip count is unknown; these need it. */
#if defined(__GNUC__) && !defined(__clang__) /* clang vectorises at -O2 and has no such pragma */
#pragma GCC optimize("tree-vectorize", "vect-cost-model=dynamic")
#endif

#include <cblas.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>

#include "engine/ops_avx2.h"
#define HAVE_AVX512_KERNEL 1 /* the x86 kernels: AVX-512 and AVX2 */
#endif

/* The epilogue on a stored tile (still in L1): C = clamp(C + bias[i] + res[i * ldr + j]).
** Inlined into each micro-kernel, so it is vectorised for that kernel's instruction set. */
static inline __attribute__((always_inline)) void epi_apply(float *C, size_t ldc, size_t mr,
                                                            size_t nr, const sgemm_epi_t *e) {
  for (size_t i = 0; i < mr; i++) {
    float *c = C + i * ldc;
    const float b = e->bias ? e->bias[i] : 0.0f, lo = e->lo, hi = e->hi;
    if (e->res) {
      const float *r = e->res + i * e->ldr;
      for (size_t j = 0; j < nr; j++) {
        float v = c[j] + b + r[j];
        v = v < lo ? lo : v;
        c[j] = v > hi ? hi : v;
      }
    } else {
      for (size_t j = 0; j < nr; j++) {
        float v = c[j] + b;
        v = v < lo ? lo : v;
        c[j] = v > hi ? hi : v;
      }
    }
  }
}

size_t lpq__sgemm_pack_floats(size_t N) {
  (void)N;
#ifdef HAVE_AVX512_KERNEL
  return SGEMM_KC * (SGEMM_NC + 32) + 64;
#else
  return 0;
#endif
}

#ifdef HAVE_AVX512_KERNEL
#define MR SGEMM_MR
#define NR 32
#define AVX512 __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,fma")))
#define AVX2 __attribute__((target("avx2,fma")))

/* Ap[panel][k][r]: MR rows per panel, zero-padded. */
static void pack_a_scalar(const float *A, size_t lda, size_t mc, size_t kc, float *Ap) {
  for (size_t p = 0; p < mc; p += MR)
    for (size_t k = 0; k < kc; k++)
      for (size_t r = 0; r < MR; r++)
        *Ap++ = p + r < mc ? A[(p + r) * lda + k] : 0.0f;
}

/* The same, 8 x 8 blocks transposed in registers (a MatMul's or a hooked layer's A is packed on
** every run: the scalar loop's strided loads were 7% of the bundled ViT's time). */
AVX2 static void pack_a_avx2(const float *A, size_t lda, size_t mc, size_t kc, float *Ap) {
  const size_t full = mc / MR * MR, k8 = kc / 8 * 8;
  for (size_t p = 0; p < full; p += MR, Ap += MR * kc) {
    const float *a = A + p * lda;
    for (size_t k = 0; k < k8; k += 8) /* column k + j of the 8 rows */
      lpq__avx2_transpose8(a + k, lda, Ap + k * MR, MR);
    for (size_t k = k8; k < kc; k++)
      for (size_t r = 0; r < MR; r++)
        Ap[k * MR + r] = a[r * lda + k];
  }
  if (full < mc)
    pack_a_scalar(A + full * lda, lda, mc - full, kc, Ap);
}

static void pack_a(const float *A, size_t lda, size_t mc, size_t kc, float *Ap) {
  if (lpq__isa() >= LPQ_ISA_AVX2)
    pack_a_avx2(A, lda, mc, kc, Ap);
  else
    pack_a_scalar(A, lda, mc, kc, Ap);
}

/* Bp[panel][k][c]: NR columns per panel, zero-padded. */
__attribute__((target("avx512f"))) static void pack_b(const float *B, size_t ldb, size_t kc,
                                                      size_t nc, float *Bp) {
  for (size_t q = 0; q < nc; q += NR) {
    const size_t w = nc - q < NR ? nc - q : NR;
    if (w == NR) { /* the common case: two vector copies per row */
      for (size_t k = 0; k < kc; k++, Bp += NR) {
        const float *src = B + k * ldb + q;
        _mm512_storeu_ps(Bp, _mm512_loadu_ps(src));
        _mm512_storeu_ps(Bp + 16, _mm512_loadu_ps(src + 16));
      }
      continue;
    }
    for (size_t k = 0; k < kc; k++, Bp += NR) {
      memcpy(Bp, B + k * ldb + q, w * sizeof *Bp);
      memset(Bp + w, 0, (NR - w) * sizeof *Bp);
    }
  }
}

AVX2 static void pack_b_avx2(const float *B, size_t ldb, size_t kc, size_t nc, float *Bp) {
  for (size_t q = 0; q < nc; q += NR) {
    const size_t w = nc - q < NR ? nc - q : NR;
    for (size_t k = 0; k < kc; k++, Bp += NR) {
      const float *src = B + k * ldb + q;
      if (w == NR) {
        for (int h = 0; h < NR; h += 8)
          _mm256_storeu_ps(Bp + h, _mm256_loadu_ps(src + h));
      } else { /* masked loads (zero past w): no library call per row */
        for (int h = 0; h < NR; h += 8)
          _mm256_storeu_ps(Bp + h, _mm256_maskload_ps(lpq__avx2_at(src, h),
                                                       lpq__avx2_lanes(0, (int64_t)w - h)));
      }
    }
  }
}

#define ROW(i)                                                                                 \
  a = _mm512_set1_ps(ap[i]);                                                                   \
  c##i##0 = _mm512_fmadd_ps(a, b0, c##i##0);                                                   \
  c##i##1 = _mm512_fmadd_ps(a, b1, c##i##1)

#define STORE(i)                                                                               \
  if (full) {                                                                                  \
    float *cr = C + (i) * ldc;                                                                 \
    if (acc) {                                                                                 \
      c##i##0 = _mm512_add_ps(c##i##0, _mm512_loadu_ps(cr));                                   \
      c##i##1 = _mm512_add_ps(c##i##1, _mm512_loadu_ps(cr + 16));                              \
    }                                                                                          \
    if (e) { /* the epilogue in registers */                                                   \
      const __m512 bi = _mm512_set1_ps(e->bias ? e->bias[i] : 0.0f);                           \
      c##i##0 = _mm512_add_ps(c##i##0, bi);                                                    \
      c##i##1 = _mm512_add_ps(c##i##1, bi);                                                    \
      if (e->res) {                                                                            \
        c##i##0 = _mm512_add_ps(c##i##0, _mm512_loadu_ps(e->res + (i) * e->ldr));              \
        c##i##1 = _mm512_add_ps(c##i##1, _mm512_loadu_ps(e->res + (i) * e->ldr + 16));         \
      }                                                                                        \
      c##i##0 = _mm512_min_ps(hi, _mm512_max_ps(lo, c##i##0)); /* NaN stays NaN */           \
      c##i##1 = _mm512_min_ps(hi, _mm512_max_ps(lo, c##i##1));                                 \
    }                                                                                          \
    _mm512_storeu_ps(cr, c##i##0);                                                             \
    _mm512_storeu_ps(cr + 16, c##i##1);                                                        \
  } else {                                                                                     \
    _mm512_storeu_ps(tile + (i) * NR, c##i##0);                                                \
    _mm512_storeu_ps(tile + (i) * NR + 16, c##i##1);                                           \
  }

/* C[0..mr)[0..nr) (+)= Ap panel x Bp panel over kc, then the epilogue e (NULL: none). */
AVX512 static void micro_8x32(size_t kc, const float *ap, const float *bp, float *C, size_t ldc,
                              size_t mr, size_t nr, int acc, const sgemm_epi_t *e) {
  __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
  __m512 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00, c60 = c00;
  __m512 c61 = c00, c70 = c00, c71 = c00, a, b0, b1;
  for (size_t k = 0; k < kc; k++, ap += MR, bp += NR) {
    b0 = _mm512_loadu_ps(bp);
    b1 = _mm512_loadu_ps(bp + 16);
    ROW(0); ROW(1); ROW(2); ROW(3); ROW(4); ROW(5); ROW(6); ROW(7);
  }
  const int full = mr == MR && nr == NR;
  const __m512 lo = _mm512_set1_ps(e ? e->lo : 0.0f), hi = _mm512_set1_ps(e ? e->hi : 0.0f);
  float tile[MR * NR];
  STORE(0) STORE(1) STORE(2) STORE(3) STORE(4) STORE(5) STORE(6) STORE(7)
  if (full)
    return;
  for (size_t i = 0; i < mr; i++)
    for (size_t j = 0; j < nr; j++)
      C[i * ldc + j] = acc ? C[i * ldc + j] + tile[i * NR + j] : tile[i * NR + j];
  if (e)
    epi_apply(C, ldc, mr, nr, e);
}

/* AVX2: rows [r0, r0 + 4) and columns [c0, c0 + 16) of the 8x32 tile (C: their first), 8
** accumulators; the tile's epilogue e (NULL: none) in registers as they are stored, in
** epi_apply's order: (C + bias) + residual, then the clamp (a NaN stays NaN). */
#define ROW2(i)                                                                                \
  a = _mm256_broadcast_ss(ap + (i));                                                           \
  d##i##0 = _mm256_fmadd_ps(a, b0, d##i##0);                                                   \
  d##i##1 = _mm256_fmadd_ps(a, b1, d##i##1)
#define STORE2(i)                                                                              \
  if (acc) {                                                                                   \
    d##i##0 = _mm256_add_ps(d##i##0, _mm256_loadu_ps(C + (i) * ldc));                          \
    d##i##1 = _mm256_add_ps(d##i##1, _mm256_loadu_ps(C + (i) * ldc + 8));                      \
  }                                                                                            \
  if (e) {                                                                                     \
    const __m256 bi = _mm256_set1_ps(e->bias ? e->bias[r0 + (i)] : 0.0f);                     \
    d##i##0 = _mm256_add_ps(d##i##0, bi);                                                      \
    d##i##1 = _mm256_add_ps(d##i##1, bi);                                                      \
    if (e->res) {                                                                              \
      const float *rr = e->res + (r0 + (i)) * e->ldr + c0;                                     \
      d##i##0 = _mm256_add_ps(d##i##0, _mm256_loadu_ps(rr));                                   \
      d##i##1 = _mm256_add_ps(d##i##1, _mm256_loadu_ps(rr + 8));                               \
    }                                                                                          \
    d##i##0 = _mm256_min_ps(hi, _mm256_max_ps(lo, d##i##0));                                   \
    d##i##1 = _mm256_min_ps(hi, _mm256_max_ps(lo, d##i##1));                                   \
  }                                                                                            \
  _mm256_storeu_ps(C + (i) * ldc, d##i##0);                                                    \
  _mm256_storeu_ps(C + (i) * ldc + 8, d##i##1)

AVX2 static void micro_4x16_avx2(size_t kc, const float *ap, const float *bp, float *C,
                                 size_t ldc, int acc, const sgemm_epi_t *e, size_t r0,
                                 size_t c0) {
  __m256 d00 = _mm256_setzero_ps(), d01 = d00, d10 = d00, d11 = d00, d20 = d00, d21 = d00;
  __m256 d30 = d00, d31 = d00, a, b0, b1;
#pragma GCC unroll 4 /* 96 against 73 GFLOPS from L1 on an EPYC: the loop's overhead */
  for (size_t k = 0; k < kc; k++, ap += MR, bp += NR) {
    b0 = _mm256_loadu_ps(bp);
    b1 = _mm256_loadu_ps(bp + 8);
    ROW2(0); ROW2(1); ROW2(2); ROW2(3);
  }
  const __m256 lo = _mm256_set1_ps(e ? e->lo : 0.0f), hi = _mm256_set1_ps(e ? e->hi : 0.0f);
  STORE2(0); STORE2(1); STORE2(2); STORE2(3);
}

/* Rows [0, 8) and 8 columns of the 8x32 tile (bp: their first) into T (row stride NR), 8
** accumulators: a partial tile's last 8 columns or fewer at about the 4x16 sub-tiles' rate, not
** 16 columns. Each sum in the same order as theirs, so a column's bits do not depend on the
** tile it falls in. */
AVX2 static void micro_8x8_avx2(size_t kc, const float *ap, const float *bp, float *T) {
  __m256 d0 = _mm256_setzero_ps(), d1 = d0, d2 = d0, d3 = d0, d4 = d0, d5 = d0, d6 = d0, d7 = d0;
#pragma GCC unroll 4
  for (size_t k = 0; k < kc; k++, ap += MR, bp += NR) {
    const __m256 b = _mm256_loadu_ps(bp);
    d0 = _mm256_fmadd_ps(_mm256_broadcast_ss(ap + 0), b, d0);
    d1 = _mm256_fmadd_ps(_mm256_broadcast_ss(ap + 1), b, d1);
    d2 = _mm256_fmadd_ps(_mm256_broadcast_ss(ap + 2), b, d2);
    d3 = _mm256_fmadd_ps(_mm256_broadcast_ss(ap + 3), b, d3);
    d4 = _mm256_fmadd_ps(_mm256_broadcast_ss(ap + 4), b, d4);
    d5 = _mm256_fmadd_ps(_mm256_broadcast_ss(ap + 5), b, d5);
    d6 = _mm256_fmadd_ps(_mm256_broadcast_ss(ap + 6), b, d6);
    d7 = _mm256_fmadd_ps(_mm256_broadcast_ss(ap + 7), b, d7);
  }
  _mm256_storeu_ps(T, d0), _mm256_storeu_ps(T + NR, d1), _mm256_storeu_ps(T + 2 * NR, d2);
  _mm256_storeu_ps(T + 3 * NR, d3), _mm256_storeu_ps(T + 4 * NR, d4);
  _mm256_storeu_ps(T + 5 * NR, d5), _mm256_storeu_ps(T + 6 * NR, d6);
  _mm256_storeu_ps(T + 7 * NR, d7);
}

/* A partial tile's mr x nr results from T (row stride NR) into C: C + T (acc) or T, then the
** epilogue, the same operations in the same order as epi_apply (and as the whole tiles'
** STORE2), 8 columns a step (batch-1 MnasNet 0.98x the time of the scalar loops; MobileNetV3
** level: their partial tiles' time is the multiply-adds, not this). */
AVX2 static void tile_out_avx2(float *C, size_t ldc, const float *T, size_t mr, size_t nr,
                               int acc, const sgemm_epi_t *e) {
  const size_t n8 = nr / 8 * 8;
  const __m256 lo = _mm256_set1_ps(e ? e->lo : 0.0f), hi = _mm256_set1_ps(e ? e->hi : 0.0f);
  for (size_t i = 0; i < mr; i++) {
    float *c = C + i * ldc;
    const float *t = T + i * NR;
    const __m256 b = _mm256_set1_ps(e && e->bias ? e->bias[i] : 0.0f);
    const float *r = e && e->res ? e->res + i * e->ldr : NULL;
    for (size_t j = 0; j < n8; j += 8) {
      __m256 v = _mm256_loadu_ps(t + j);
      if (acc)
        v = _mm256_add_ps(_mm256_loadu_ps(c + j), v);
      if (e) {
        v = _mm256_add_ps(v, b);
        if (r)
          v = _mm256_add_ps(v, _mm256_loadu_ps(r + j));
        v = _mm256_min_ps(hi, _mm256_max_ps(lo, v));
      }
      _mm256_storeu_ps(c + j, v);
    }
    for (size_t j = n8; j < nr; j++)
      c[j] = acc ? c[j] + t[j] : t[j];
  }
  if (e && n8 < nr) { /* the last columns' epilogue: epi_apply, its residual moved on */
    sgemm_epi_t tail = *e;
    tail.res = e->res ? e->res + n8 : NULL;
    epi_apply(C + n8, ldc, mr, nr - n8, &tail);
  }
}

/* The 8x32 tile as four 4x16 sub-tiles; a partial tile goes through a local copy, its last 8
** columns or fewer (of more than 4 rows) by micro_8x8_avx2. With mobilenet_v2's 7x7 maps at two
** threads (196 columns a task) the 4x16 sub-tiles computed 6% more columns than there are. */
AVX2 static void micro_8x32_avx2(size_t kc, const float *ap, const float *bp, float *C,
                                 size_t ldc, size_t mr, size_t nr, int acc, const sgemm_epi_t *e) {
  if (mr == MR && nr == NR) {
    for (size_t r = 0; r < MR; r += 4)
      for (size_t c = 0; c < NR; c += 16)
        micro_4x16_avx2(kc, ap + r, bp + c, C + r * ldc + c, ldc, acc, e, r, c);
    return;
  }
  float tile[MR * NR];
  /* the 4x16 sub-tiles up to column c8, the last 8 columns or fewer by micro_8x8_avx2 */
  const size_t c8 = mr > 4 && nr % 16 && nr % 16 <= 8 ? nr / 16 * 16 : nr;
  for (size_t r = 0; r < mr; r += 4)
    for (size_t c = 0; c < c8; c += 16)
      micro_4x16_avx2(kc, ap + r, bp + c, tile + r * NR + c, NR, 0, NULL, r, c);
  if (c8 < nr)
    micro_8x8_avx2(kc, ap, bp + c8, tile + c8);
  tile_out_avx2(C, ldc, tile, mr, nr, acc, e);
}

typedef void (*micro_fn)(size_t, const float *, const float *, float *, size_t, size_t, size_t,
                         int, const sgemm_epi_t *);

/* The epilogue of the tile at row m, column n of C, on the last K block only (else NULL). */
static inline const sgemm_epi_t *tile_epi(const sgemm_epi_t *e, size_t m, size_t n, int last,
                                          sgemm_epi_t *t) {
  if (!e || !last)
    return NULL;
  *t = *e;
  t->bias = e->bias ? e->bias + m : NULL;
  t->res = e->res ? e->res + m * e->ldr + n : NULL;
  return t;
}

/* Packs rows [k0, k0 + kc) and columns [n0, n0 + nc) of B into Bp, panels of NR columns
** (k-major inside a panel), zero beyond the last column. */
typedef void (*pack_b_fn)(const void *ctx, size_t k0, size_t kc, size_t n0, size_t nc, float *Bp);

typedef struct dense_b_t {
  const float *B;
  size_t ldb;
} dense_b_t;

static void pack_dense_b(const void *ctx, size_t k0, size_t kc, size_t n0, size_t nc, float *Bp) {
  const dense_b_t *d = ctx;
  if (lpq__isa() == LPQ_ISA_AVX512)
    pack_b(d->B + k0 * d->ldb + n0, d->ldb, kc, nc, Bp);
  else
    pack_b_avx2(d->B + k0 * d->ldb + n0, d->ldb, kc, nc, Bp);
}

/* The K step of panel_run: AVX2 machines have 32 KB L1 data caches (Zen 3), and a B panel of
** SGEMM_KC rows x 32 columns is 32 KB itself, so the A panels streaming past evicted it. The AVX2
** micro-kernel from L1 on an EPYC: 96 GFLOPS up to 192 rows, 75 at 224, 67 at 256 (about the most
** any AVX2 tile gets there: its loads, not its FMAs, set the pace; docs/MEASUREMENTS.md);
** so blocks of more than 192 rows go in two halves (resnet18's stride-2 convolutions 2-5% faster,
** mobilenet_v2's 14x14 and 7x7 blocks 4%). */
static size_t k_step(size_t kc) {
  return lpq__isa() == LPQ_ISA_AVX2 && kc > 192 ? (kc + 1) / 2 : kc;
}

/* One B panel (kc rows from row k0 of K; nr of its NR columns: C column n) against the block's
** A panels (mc rows from row m0), in steps of k_step(kc) rows of K. */
static void panel_run(micro_fn micro, size_t kc, const float *Ab, const float *bq, float *Cq,
                      size_t ldc, size_t mc, size_t nr, size_t k0, size_t K,
                      const sgemm_epi_t *epi, size_t m0, size_t n) {
  const size_t ks = k_step(kc);
  sgemm_epi_t te;
  for (size_t h = 0; h < kc; h += ks) {
    const size_t kh = kc - h < ks ? kc - h : ks;
    for (size_t p = 0; p < mc; p += MR)
      micro(kh, Ab + p * kc + h * MR, bq + h * NR, Cq + p * ldc, ldc, mc - p < MR ? mc - p : MR,
            nr, k0 + h > 0, tile_epi(epi, m0 + p, n, k0 + h + kh == K, &te));
  }
}

/* Ap holds all of A packed by lpq__sgemm_pack_a: block (m0, k0) at m0*K + mcr*k0 where mcr is the
** block's row count rounded up to MR; inside, panels of MR rows, k-major. */
static void sgemm_blocked(size_t M, size_t N, size_t K, const float *Ap, pack_b_fn pack,
                          const void *ctx, float *C, size_t ldc, float *Bp,
                          const sgemm_epi_t *epi) {
  const micro_fn micro = lpq__isa() == LPQ_ISA_AVX512 ? micro_8x32 : micro_8x32_avx2;
  for (size_t n0 = 0; n0 < N; n0 += SGEMM_NC) {
    const size_t nc = N - n0 < SGEMM_NC ? N - n0 : SGEMM_NC;
    for (size_t k0 = 0; k0 < K; k0 += SGEMM_KC) {
      const size_t kc = K - k0 < SGEMM_KC ? K - k0 : SGEMM_KC;
      pack(ctx, k0, kc, n0, nc, Bp);
      for (size_t m0 = 0; m0 < M; m0 += SGEMM_MC) {
        const size_t mc = M - m0 < SGEMM_MC ? M - m0 : SGEMM_MC, mcr = (mc + MR - 1) / MR * MR;
        const float *Ab = Ap + m0 * K + mcr * k0;
        for (size_t q = 0; q < nc; q += NR)
          panel_run(micro, kc, Ab, Bp + q * kc, C + m0 * ldc + n0 + q, ldc, mc,
                    nc - q < NR ? nc - q : NR, k0, K, epi, m0, n0 + q);
      }
    }
  }
}


/* Rows [r0, r1) (r0 a multiple of MR) of the product with B already packed over all of K, row r0
** at C: panel q (NR columns) at Bp + q/NR * K * NR, k-major; the epilogue (NULL: none, indexed by
** the whole product's rows) on the last K block. Each row's tiles are the same micro-kernel
** calls whatever the range. */
static void sgemm_packed_rows(size_t M, size_t r0, size_t r1, size_t N, size_t K,
                              const float *Ap, const float *Bp, float *C, size_t ldc,
                              const sgemm_epi_t *epi) {
  const micro_fn micro = lpq__isa() == LPQ_ISA_AVX512 ? micro_8x32 : micro_8x32_avx2;
  for (size_t k0 = 0; k0 < K; k0 += SGEMM_KC) {
    const size_t kc = K - k0 < SGEMM_KC ? K - k0 : SGEMM_KC;
    for (size_t m0 = r0 / SGEMM_MC * SGEMM_MC; m0 < r1; m0 += SGEMM_MC) {
      const size_t mc = M - m0 < SGEMM_MC ? M - m0 : SGEMM_MC, mcr = (mc + MR - 1) / MR * MR;
      const size_t a = r0 > m0 ? r0 : m0, b = r1 < m0 + mc ? r1 : m0 + mc;
      const float *Ab = Ap + m0 * K + mcr * k0 + (a - m0) * kc;
      for (size_t q = 0; q < N; q += NR)
        panel_run(micro, kc, Ab, Bp + q * K + k0 * NR, C + (a - r0) * ldc + q, ldc, b - a,
                  N - q < NR ? N - q : NR, k0, K, epi, a, q);
    }
  }
}

/* All rows; one row panel (a classifier's batch) with each B panel streamed once, in full. */
static void sgemm_packed_b(size_t M, size_t N, size_t K, const float *Ap, const float *Bp,
                           float *C, size_t ldc, const sgemm_epi_t *epi) {
  if (M > MR) {
    sgemm_packed_rows(M, 0, M, N, K, Ap, Bp, C, ldc, epi);
    return;
  }
  const micro_fn micro = lpq__isa() == LPQ_ISA_AVX512 ? micro_8x32 : micro_8x32_avx2;
  sgemm_epi_t te;
  for (size_t q = 0; q < N; q += NR)
    micro(K, Ap, Bp + q * K, C + q, ldc, M, N - q < NR ? N - q : NR, 0,
          tile_epi(epi, 0, q, 1, &te));
}
#endif

void lpq__kern_sgemm_packed_rows(size_t M, size_t r0, size_t r1, size_t N, size_t K,
                                 const float *Ap, const float *Bp, float *C, size_t ldc,
                                 const sgemm_epi_t *epi) {
#ifdef HAVE_AVX512_KERNEL
  if (r0 < r1 && r1 <= M && r0 % MR == 0 && N && K)
    sgemm_packed_rows(M, r0, r1, N, K, Ap, Bp, C, ldc, epi);
#else
  (void)M, (void)r0, (void)r1, (void)N, (void)K, (void)Ap, (void)Bp, (void)C, (void)ldc;
  (void)epi;
#endif
}

void lpq__kern_sgemm_packed(size_t M, size_t N, size_t K, const float *Ap, const float *Bp,
                            float *C, size_t ldc) {
  lpq__kern_sgemm_packed_epi(M, N, K, Ap, Bp, C, ldc, NULL);
}

void lpq__kern_sgemm_packed_epi(size_t M, size_t N, size_t K, const float *Ap, const float *Bp,
                                float *C, size_t ldc, const sgemm_epi_t *epi) {
#ifdef HAVE_AVX512_KERNEL
  if (M && N && K)
    sgemm_packed_b(M, N, K, Ap, Bp, C, ldc, epi);
#else
  (void)M, (void)N, (void)K, (void)Ap, (void)Bp, (void)C, (void)ldc, (void)epi;
#endif
}

int lpq__sgemm_packs_a(void) {
#ifdef HAVE_AVX512_KERNEL
  return lpq__isa() >= LPQ_ISA_AVX2;
#else
  return 0;
#endif
}

size_t lpq__sgemm_packed_a_floats(size_t M, size_t K) {
#ifdef HAVE_AVX512_KERNEL
  return (M + MR - 1) / MR * MR * K;
#else
  (void)M, (void)K;
  return 0;
#endif
}

void lpq__sgemm_pack_a(size_t M, size_t K, const float *A, size_t lda, float *Ap) {
#ifdef HAVE_AVX512_KERNEL
  for (size_t m0 = 0; m0 < M; m0 += SGEMM_MC) {
    const size_t mc = M - m0 < SGEMM_MC ? M - m0 : SGEMM_MC, mcr = (mc + MR - 1) / MR * MR;
    for (size_t k0 = 0; k0 < K; k0 += SGEMM_KC) {
      const size_t kc = K - k0 < SGEMM_KC ? K - k0 : SGEMM_KC;
      pack_a(A + m0 * lda + k0, lda, mc, kc, Ap + m0 * K + mcr * k0);
    }
  }
#else
  (void)M, (void)K, (void)A, (void)lda, (void)Ap;
#endif
}

void lpq__kern_sgemm_implicit(size_t M, size_t N, size_t K, const float *Ap,
                         void (*pack)(const void *ctx, size_t k0, size_t kc, size_t n0,
                                      size_t nc, float *Bp),
                         const void *ctx, float *C, size_t ldc, float *Bp,
                         const sgemm_epi_t *epi) {
#ifdef HAVE_AVX512_KERNEL
  if (M && N && K)
    sgemm_blocked(M, N, K, Ap, pack, ctx, C, ldc, Bp, epi);
#else
  (void)M, (void)N, (void)K, (void)Ap, (void)pack, (void)ctx, (void)C, (void)ldc, (void)Bp;
  (void)epi;
#endif
}

void lpq__kern_sgemm(size_t M, size_t N, size_t K, const float *A, size_t lda, const float *Ap,
                const float *B, size_t ldb, float *C, size_t ldc, float *pack,
                const sgemm_epi_t *epi) {
  if (M == 0 || N == 0)
    return;
  if (K == 0) {
    for (size_t i = 0; i < M; i++)
      memset(C + i * ldc, 0, N * sizeof *C);
    if (epi)
      epi_apply(C, ldc, M, N, epi);
    return;
  }
#ifdef HAVE_AVX512_KERNEL
  if (Ap && pack && lpq__sgemm_packs_a()) {
    const dense_b_t d = {B, ldb};
    sgemm_blocked(M, N, K, Ap, pack_dense_b, &d, C, ldc, pack, epi);
    return;
  }
#else
  (void)Ap, (void)pack;
#endif
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)M, (int)N, (int)K, 1.0f, A,
              (int)lda, B, (int)ldb, 0.0f, C, (int)ldc);
  if (epi)
    epi_apply(C, ldc, M, N, epi);
}
