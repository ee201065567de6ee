/* engine/ops_kernels_dw_avx2.c: lpq__kern_dw3_rows with AVX2 intrinsics, 8 outputs a vector.
** Stride 1: the rows whose three input rows are all in the plane run as one flat run (the rows
** back to back); the taps that would cross a row's edge are zeroed by lane masks, and these
** repeat every W / gcd(W, 8) vectors, so they are built once per width and thread. The first
** and last rows, and the run's first and last vectors, use masked loads (nothing outside the
** plane's columns is read). Stride 2: each tap's columns are the even or odd lanes of two plain
** loads of the row (rows_s2_direct). Narrow planes (rows of 8 or fewer at
** stride 1, 16 or fewer at stride 2: mobilenet_v2's 7x7 and 14x14 maps) keep each input row in
** registers and make its taps' columns by lane moves. The arithmetic is the other kernels':
** bias, then taps 0 to 8 each by one multiply-add (a zeroed tap adds nothing), then the clamp
** (a NaN stays NaN). */
#include "engine/engine_internal.h"

#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>

#include "engine/ops_avx2.h"

#pragma GCC push_options
#pragma GCC target("arch=x86-64-v3")

typedef struct dwv_t {
  __m256 w[9], b, lo, hi;
} dwv_t;

static inline void dwv_init(dwv_t *k, const float *w, float bias, float lo, float hi) {
  for (int t = 0; t < 9; t++)
    k->w[t] = _mm256_set1_ps(w[t]);
  k->b = _mm256_set1_ps(bias), k->lo = _mm256_set1_ps(lo), k->hi = _mm256_set1_ps(hi);
}

static inline __m256 clampv(const dwv_t *k, __m256 a) {
  return _mm256_min_ps(k->hi, _mm256_max_ps(k->lo, a));
}

/* n (1 to 8) outputs of v to y. */
static inline void store_n(float *y, __m256 v, int64_t n) {
  if (n >= 8) {
    _mm256_storeu_ps(y, v);
    return;
  }
  float t[8];
  _mm256_storeu_ps(t, v);
  memcpy(y, t, (size_t)n * sizeof *y);
}

/* One stride-1 output row of W from input rows r[0..2] (a zero row where outside the plane):
** the vectors whose windows stay inside the row with plain loads, the others masked. */
static void row_s1(float *y, const float *const *r, const dwv_t *k, int64_t W) {
  for (int64_t x0 = 0; x0 < W; x0 += 8) {
    __m256 a = k->b;
    if (x0 >= 1 && x0 + 9 <= W) {
#pragma GCC unroll 3
      for (int ky = 0; ky < 3; ky++)
#pragma GCC unroll 3
        for (int kx = 0; kx < 3; kx++)
          a = _mm256_fmadd_ps(k->w[3 * ky + kx], _mm256_loadu_ps(r[ky] + x0 - 1 + kx), a);
    } else { /* lane i of tap kx reads column x0 - 1 + kx + i: inside [0, W), i < n */
      const int64_t n = W - x0 < 8 ? W - x0 : 8;
      __m256i m[3];
      for (int kx = 0; kx < 3; kx++) {
        const int64_t hi = W + 1 - x0 - kx;
        m[kx] = lpq__avx2_lanes(1 - x0 - kx, hi < n ? hi : n);
      }
#pragma GCC unroll 3
      for (int ky = 0; ky < 3; ky++)
#pragma GCC unroll 3
        for (int kx = 0; kx < 3; kx++)
          a = _mm256_fmadd_ps(k->w[3 * ky + kx],
                              _mm256_maskload_ps(lpq__avx2_at(r[ky], x0 - 1 + kx), m[kx]), a);
    }
    store_n(y + x0, clampv(k, a), W - x0);
  }
}

/* The lane masks of a flat run of rows of W, vector v's at v % P: L clears the lanes at column
** 0 (their left taps fall off the row), R those at column W - 1. */
#define PMAX 64
typedef struct ptab_t {
  int64_t W, P;
  uint32_t L[PMAX][8], R[PMAX][8];
} ptab_t;
static __thread ptab_t ptab;

static const ptab_t *period(int64_t W) {
  if (ptab.W == W && ptab.P > 0)
    return &ptab;
  const int64_t g = W % 8 == 0 ? 8 : W % 4 == 0 ? 4 : W % 2 == 0 ? 2 : 1, P = W / g;
  if (W <= 0 || P > PMAX)
    return NULL;
  for (int64_t v = 0; v < P; v++)
    for (int i = 0; i < 8; i++) {
      const int64_t c = (8 * v + i) % W;
      ptab.L[v][i] = c != 0 ? 0xffffffffu : 0u;
      ptab.R[v][i] = c != W - 1 ? 0xffffffffu : 0u;
    }
  ptab.W = W, ptab.P = P;
  return &ptab;
}

/* n outputs (whole rows of W) whose windows' rows are all in the plane: output q reads x at
** q + (ky - 1) W + kx - 1. The first and last vectors are masked (they would read one column
** before the first row or after the last). */
static void flat_s1(float *y, const float *x, int64_t n, int64_t W, const dwv_t *k,
                    const ptab_t *t) {
  int64_t p = 0;
  for (int64_t q = 0; q < n; q += 8, p = p + 1 == t->P ? 0 : p + 1) {
    const __m256 L = _mm256_loadu_ps((const float *)t->L[p]);
    const __m256 R = _mm256_loadu_ps((const float *)t->R[p]);
    __m256 a = k->b;
    if (q > 0 && q + 8 < n) {
#pragma GCC unroll 3
      for (int ky = 0; ky < 3; ky++) {
        const float *rp = x + q + (ky - 1) * W;
        a = _mm256_fmadd_ps(k->w[3 * ky], _mm256_and_ps(_mm256_loadu_ps(rp - 1), L), a);
        a = _mm256_fmadd_ps(k->w[3 * ky + 1], _mm256_loadu_ps(rp), a);
        a = _mm256_fmadd_ps(k->w[3 * ky + 2], _mm256_and_ps(_mm256_loadu_ps(rp + 1), R), a);
      }
      _mm256_storeu_ps(y + q, clampv(k, a));
      continue;
    }
    const __m256i in = lpq__avx2_lanes(0, n - q);
    const __m256i mL = _mm256_and_si256(in, _mm256_castps_si256(L));
    const __m256i mR = _mm256_and_si256(in, _mm256_castps_si256(R));
#pragma GCC unroll 3
    for (int ky = 0; ky < 3; ky++) {
      const int64_t off = q + (ky - 1) * W;
      a = _mm256_fmadd_ps(k->w[3 * ky], _mm256_maskload_ps(lpq__avx2_at(x, off - 1), mL), a);
      a = _mm256_fmadd_ps(k->w[3 * ky + 1], _mm256_maskload_ps(lpq__avx2_at(x, off), in), a);
      a = _mm256_fmadd_ps(k->w[3 * ky + 2], _mm256_maskload_ps(lpq__avx2_at(x, off + 1), mR), a);
    }
    store_n(y + q, clampv(k, a), n - q);
  }
}

static void rows_s1(float *out, const float *E, int64_t lo_row, const float *zero,
                    const dwv_t *k, int64_t H, int64_t W, int64_t oy0, int64_t oy1) {
  const int64_t a = oy0 > 1 ? oy0 : 1, b = oy1 < H - 1 ? oy1 : H - 1;
  const ptab_t *t = a < b ? period(W) : NULL;
  for (int64_t oy = oy0; oy < oy1; oy++) {
    if (t && oy == a) { /* rows [a, b) back to back */
      flat_s1(out + (a - oy0) * W, E + (a - lo_row) * W, (b - a) * W, W, k, t);
      oy = b - 1;
      continue;
    }
    const float *r[3];
    for (int ky = 0; ky < 3; ky++) {
      const int64_t iy = oy - 1 + ky;
      r[ky] = iy < 0 || iy >= H ? zero : E + (iy - lo_row) * W;
    }
    row_s1(out + (oy - oy0) * W, r, k, W);
  }
}

/* Narrow planes (a row in one or two vectors): each input row loaded once, by masked loads
** (zeros past the row), and its taps' columns made in registers. */

/* Input row iy of the plane, lanes past W zero (a zero row outside the plane). */
static inline __m256 row8(const float *E, int64_t lo_row, int64_t iy, int64_t H, int64_t W,
                          int64_t c0, __m256i m) {
  return iy < 0 || iy >= H ? _mm256_setzero_ps()
                           : _mm256_maskload_ps(lpq__avx2_at(E, (iy - lo_row) * W + c0), m);
}

/* Stride 1, W <= 8: lane ox of a row vector is column ox; the taps' columns ox - 1 and ox + 1
** are the vector moved up and down a lane, a zero coming in. */
typedef struct row3_t {
  __m256 l, c, r; /* columns ox - 1, ox, ox + 1 */
} row3_t;

static inline row3_t shifts(__m256 x) {
  const __m256i up = _mm256_setr_epi32(7, 0, 1, 2, 3, 4, 5, 6);
  const __m256i down = _mm256_setr_epi32(1, 2, 3, 4, 5, 6, 7, 0);
  const __m256 z = _mm256_setzero_ps();
  const row3_t t = {_mm256_blend_ps(_mm256_permutevar8x32_ps(x, up), z, 0x01), x,
                    _mm256_blend_ps(_mm256_permutevar8x32_ps(x, down), z, 0x80)};
  return t;
}

static inline __m256 taps3(const dwv_t *k, int ky, row3_t t, __m256 a) {
  a = _mm256_fmadd_ps(k->w[3 * ky], t.l, a);
  a = _mm256_fmadd_ps(k->w[3 * ky + 1], t.c, a);
  return _mm256_fmadd_ps(k->w[3 * ky + 2], t.r, a);
}

static void rows_s1_narrow(float *out, const float *E, int64_t lo_row, const dwv_t *k,
                           int64_t H, int64_t W, int64_t oy0, int64_t oy1) {
  const __m256i m = lpq__avx2_lanes(0, W);
  row3_t r0 = shifts(row8(E, lo_row, oy0 - 1, H, W, 0, m));
  row3_t r1 = shifts(row8(E, lo_row, oy0, H, W, 0, m));
  for (int64_t oy = oy0; oy < oy1; oy++) {
    const row3_t r2 = shifts(row8(E, lo_row, oy + 1, H, W, 0, m));
    const __m256 a = taps3(k, 2, r2, taps3(k, 1, r1, taps3(k, 0, r0, k->b)));
    store_n(out + (oy - oy0) * W, clampv(k, a), W);
    r0 = r1, r1 = r2;
  }
}

/* Stride 2, W <= 16: a row's even and odd columns as two vectors (lane j: columns 2j, 2j + 1);
** output ox reads odd column ox - 1 (the odd vector moved up a lane), even ox and odd ox. */
static inline row3_t split16(__m256 A, __m256 B) {
  const __m256 ev = _mm256_castpd_ps(_mm256_permute4x64_pd(
      _mm256_castps_pd(_mm256_shuffle_ps(A, B, _MM_SHUFFLE(2, 0, 2, 0))), _MM_SHUFFLE(3, 1, 2, 0)));
  const __m256 od = _mm256_castpd_ps(_mm256_permute4x64_pd(
      _mm256_castps_pd(_mm256_shuffle_ps(A, B, _MM_SHUFFLE(3, 1, 3, 1))), _MM_SHUFFLE(3, 1, 2, 0)));
  const __m256i up = _mm256_setr_epi32(7, 0, 1, 2, 3, 4, 5, 6);
  const row3_t t = {_mm256_blend_ps(_mm256_permutevar8x32_ps(od, up), _mm256_setzero_ps(), 0x01),
                    ev, od};
  return t;
}

/* The even floats of the 16 in A, B, and the odd ones, each within its 128-bit half only
** (vshufps): lane order [0, 1, 4, 5, 2, 3, 6, 7] of the 8 (floats 0, 2, 8, 10, 4, 6, 12, 14).
** Every tap comes in the same order, so the sum is put in order once, before the store: one
** lane-crossing permute per 8 outputs instead of one per tap (they took 2 cycles each). */
static inline __m256 evens_p(__m256 A, __m256 B) {
  return _mm256_shuffle_ps(A, B, _MM_SHUFFLE(2, 0, 2, 0));
}
static inline __m256 odds_p(__m256 A, __m256 B) {
  return _mm256_shuffle_ps(A, B, _MM_SHUFFLE(3, 1, 3, 1));
}
static inline __m256 unpermute(__m256 a) {
  return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(a), _MM_SHUFFLE(3, 1, 2, 0)));
}

/* Stride 2, rows of more than 16 columns: output ox reads columns 2 ox - 1, 2 ox and 2 ox + 1,
** taken for 8 outputs at once from the row's 16 floats at 2 ox0 (their even and odd lanes) and
** the 16 at 2 ox0 - 1 (their even lanes). Every load lies inside the row: the first vector's
** column -1 (the left pad) is a zero moved into lane 0; a partial last vector is computed as the
** 8 outputs ending at OW instead (some again, with the same bits); when W is odd the last
** output's column W (the right pad) is a zero moved into lane 7. The split rows this replaces
** (each input row's even, odd and moved-odd columns stored, then loaded back) made 4 to 14
** cycles an output on a Zen 3, and masked loads at the row's ends cost more than the rest. */
static void rows_s2_direct(float *out, const float *E, int64_t lo_row, const float *zero,
                           const dwv_t *k, int64_t H, int64_t W, int64_t OW, int64_t oy0,
                           int64_t oy1) {
  const __m256i up = _mm256_setr_epi32(7, 0, 1, 2, 3, 4, 5, 6);
  const __m256i down = _mm256_setr_epi32(1, 2, 3, 4, 5, 6, 7, 0);
  const __m256 z = _mm256_setzero_ps();
  for (int64_t oy = oy0; oy < oy1; oy++) {
    const float *r[3];
    for (int ky = 0; ky < 3; ky++) {
      const int64_t iy = 2 * oy - 1 + ky;
      r[ky] = iy < 0 || iy >= H ? zero : E + (iy - lo_row) * W;
    }
    float *y = out + (oy - oy0) * OW;
    for (int64_t x0 = 0; x0 < OW; x0 += 8) {
      if (x0 + 8 > OW)
        x0 = OW - 8; /* the last 8 outputs */
      const int64_t c = 2 * x0;
      const int first = x0 == 0, odd_end = c + 16 > W; /* column W, W odd */
      __m256 a = k->b; /* the bias in every lane: its order does not matter */
#pragma GCC unroll 3
      for (int ky = 0; ky < 3; ky++) {
        const float *q = r[ky] + c;
        const __m256 A = _mm256_loadu_ps(q);
        const __m256 B = odd_end ? _mm256_blend_ps(_mm256_permutevar8x32_ps(
                                                       _mm256_loadu_ps(q + 7), down), z, 0x80)
                                 : _mm256_loadu_ps(q + 8);
        const __m256 A1 = first ? _mm256_blend_ps(_mm256_permutevar8x32_ps(A, up), z, 0x01)
                                : _mm256_loadu_ps(q - 1);
        const __m256 U = evens_p(A1, _mm256_loadu_ps(q + 7));
        a = _mm256_fmadd_ps(k->w[3 * ky], U, a);
        a = _mm256_fmadd_ps(k->w[3 * ky + 1], evens_p(A, B), a);
        a = _mm256_fmadd_ps(k->w[3 * ky + 2], odds_p(A, B), a);
      }
      _mm256_storeu_ps(y + x0, clampv(k, unpermute(a)));
    }
  }
}

static void rows_s2_narrow(float *out, const float *E, int64_t lo_row, const dwv_t *k,
                           int64_t H, int64_t W, int64_t OW, int64_t oy0, int64_t oy1) {
  const __m256i m0 = lpq__avx2_lanes(0, W), m1 = lpq__avx2_lanes(0, W - 8);
#define SPLIT_ROW(iy)                                                                              \
  split16(row8(E, lo_row, (iy), H, W, 0, m0), row8(E, lo_row, (iy), H, W, 8, m1))
  row3_t r0 = SPLIT_ROW(2 * oy0 - 1);
  for (int64_t oy = oy0; oy < oy1; oy++) {
    const row3_t r1 = SPLIT_ROW(2 * oy), r2 = SPLIT_ROW(2 * oy + 1);
    const __m256 a = taps3(k, 2, r2, taps3(k, 1, r1, taps3(k, 0, r0, k->b)));
    store_n(out + (oy - oy0) * OW, clampv(k, a), OW);
    r0 = r2;
  }
#undef SPLIT_ROW
}

int lpq__kern_dw3_rows_avx2(float *out, const float *E, int64_t lo_row, const float *zero,
                            const float *w, float bias, float lo, float hi, int64_t H, int64_t W,
                            int64_t OW, int s, int64_t oy0, int64_t oy1) {
  if (H <= 0 || W <= 0 || W > ((int64_t)1 << 30) || OW != (s == 1 ? W : (W + 1) / 2))
    return 0;
  dwv_t k;
  dwv_init(&k, w, bias, lo, hi);
  if (s == 2 && W <= 16)
    rows_s2_narrow(out, E, lo_row, &k, H, W, OW, oy0, oy1);
  else if (s == 2)
    rows_s2_direct(out, E, lo_row, zero, &k, H, W, OW, oy0, oy1);
  else if (s == 1 && W <= 8)
    rows_s1_narrow(out, E, lo_row, &k, H, W, oy0, oy1);
  else if (s == 1)
    rows_s1(out, E, lo_row, zero, &k, H, W, oy0, oy1);
  else
    return 0;
  return 1;
}

/* Bits 0..7 of b as lanes of a mask. */
static inline __m256i bits8(unsigned b) {
  const __m256i sel = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
  return _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32((int)b), sel), sel);
}

/* lpq__kern_dw3_flat_run with AVX2 (engine_kernels.h): the depthwise output of a channel's
** planes goes straight into the projection GEMM's packed panels. The 8-output vectors of a
** plane's inner rows (every output's rows above and below in its plane) run in one tight loop
** per plane: the column edges' lane masks come from the period table and the loads are plain,
** but for the two taps that could reach one float before or after the planes (up-left,
** down-right: masked loads). Which vectors those are follows from g, H and W: a branch per
** vector on its masks, or a scan of the masks before each run, made the run 1.3-2x slower (14x14
** and 28x28 planes from L1 on an EPYC). The vectors on a plane's first or last row expand their
** taps' bits into masks and load every tap masked. Output vector u (8 floats) goes to
** y + (u / 4) * panel + (u % 4) * 8. */
static inline unsigned byte8(uint16_t m, size_t u) {
  return (unsigned)(m >> (8 * (u & 1))) & 0xffu;
}

void lpq__kern_dw3_flat_run_avx2(float *y, size_t panel, const float *x, const uint16_t *m,
                                 size_t nvec, int64_t g, int64_t H, int64_t W, const float *w,
                                 float bias, float lo, float hi) {
  dwv_t k;
  dwv_init(&k, w, bias, lo, hi);
  const ptab_t *t = period(W);
  const int64_t off[9] = {-W - 1, -W, -W + 1, -1, 0, 1, W - 1, W, W + 1}, HW = H * W;
  const size_t nu = 2 * nvec;
  size_t u = 0;
  for (int64_t i = 0; i <= g; i++) {
    /* plane i's inner rows: vectors [a, b), whole and inside rows 1 .. H - 2 */
    size_t a = nu, b = nu;
    if (i < g && t && H > 2) {
      a = (size_t)((i * HW + W + 7) / 8), b = (size_t)((i * HW + (H - 1) * W) / 8);
      a = a > nu ? nu : a, b = b > nu ? nu : b < a ? a : b;
    }
    for (; u < a; u++) { /* rows on an edge of a plane: every tap masked */
      const uint16_t *mv = m + 9 * (u >> 1);
      const unsigned out = byte8(mv[4], u);
      if (!out)
        continue;
      const float *xq = x + 8 * u;
      float *yq = y + (u >> 2) * panel + (u & 3) * 8;
      __m256 acc = k.b;
#pragma GCC unroll 9
      for (int q = 0; q < 9; q++)
        acc = _mm256_fmadd_ps(
            k.w[q], _mm256_maskload_ps(lpq__avx2_at(xq, off[q]), bits8(byte8(mv[q], u))), acc);
      acc = clampv(&k, acc);
      if (out == 0xffu) /* a masked store is slow on AMD's CPUs: only for a last vector */
        _mm256_storeu_ps(yq, acc);
      else
        _mm256_maskstore_ps(yq, bits8(out), acc);
    }
    if (u >= b)
      continue;
    for (int64_t p = (int64_t)(u % (size_t)t->P); u < b; u++, p = p + 1 == t->P ? 0 : p + 1) {
      const float *xq = x + 8 * u, *r0 = xq - W, *r2 = xq + W;
      const __m256 L = _mm256_loadu_ps((const float *)t->L[p]);
      const __m256 R = _mm256_loadu_ps((const float *)t->R[p]);
      __m256 acc = _mm256_fmadd_ps(
          k.w[0], _mm256_maskload_ps(lpq__avx2_at(r0, -1), _mm256_castps_si256(L)), k.b);
      acc = _mm256_fmadd_ps(k.w[1], _mm256_loadu_ps(r0), acc);
      acc = _mm256_fmadd_ps(k.w[2], _mm256_and_ps(_mm256_loadu_ps(r0 + 1), R), acc);
      acc = _mm256_fmadd_ps(k.w[3], _mm256_and_ps(_mm256_loadu_ps(xq - 1), L), acc);
      acc = _mm256_fmadd_ps(k.w[4], _mm256_loadu_ps(xq), acc);
      acc = _mm256_fmadd_ps(k.w[5], _mm256_and_ps(_mm256_loadu_ps(xq + 1), R), acc);
      acc = _mm256_fmadd_ps(k.w[6], _mm256_and_ps(_mm256_loadu_ps(r2 - 1), L), acc);
      acc = _mm256_fmadd_ps(k.w[7], _mm256_loadu_ps(r2), acc);
      acc = _mm256_fmadd_ps(
          k.w[8], _mm256_maskload_ps(lpq__avx2_at(r2, 1), _mm256_castps_si256(R)), acc);
      _mm256_storeu_ps(y + (u >> 2) * panel + (u & 3) * 8, clampv(&k, acc));
    }
    u = b;
  }
}

#pragma GCC pop_options

#else

void lpq__kern_dw3_flat_run_avx2(float *y, size_t panel, const float *x, const uint16_t *m,
                                 size_t nvec, int64_t g, int64_t H, int64_t W, const float *w,
                                 float bias, float lo, float hi) {
  (void)y, (void)panel, (void)x, (void)m, (void)nvec, (void)g, (void)H, (void)W, (void)w;
  (void)bias, (void)lo, (void)hi;
}

int lpq__kern_dw3_rows_avx2(float *out, const float *E, int64_t lo_row, const float *zero,
                            const float *w, float bias, float lo, float hi, int64_t H, int64_t W,
                            int64_t OW, int s, int64_t oy0, int64_t oy1) {
  (void)out, (void)E, (void)lo_row, (void)zero, (void)w, (void)bias, (void)lo, (void)hi;
  (void)H, (void)W, (void)OW, (void)s, (void)oy0, (void)oy1;
  return 0;
}

#endif
