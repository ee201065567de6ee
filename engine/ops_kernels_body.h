/* engine/ops_kernels_body.h: the bodies of ops_kernels.c's loops, included once per instruction
** set with KSUF naming the copy (ops_kernels.c sets the target before each inclusion). Plain
** loops the compiler vectorises for that target. Only ops_kernels.c includes this file. */
#define KCAT_(a, b) a##b
#define KCAT(a, b) KCAT_(a, b)
#define KNAME(n) KCAT(n, KSUF)

static void KNAME(axpy_)(float *restrict y, const float *restrict x, float w, size_t n) {
  for (size_t i = 0; i < n; i++)
    y[i] += w * x[i];
}

static void KNAME(max_)(float *restrict y, const float *restrict x, size_t n) {
  for (size_t i = 0; i < n; i++)
    y[i] = x[i] > y[i] ? x[i] : y[i];
}

static void KNAME(add_)(float *restrict y, const float *restrict x, size_t n) {
  for (size_t i = 0; i < n; i++)
    y[i] += x[i];
}

static void KNAME(bias_clamp_)(float *y, float bias, float lo, float hi, size_t n) {
  for (size_t i = 0; i < n; i++) {
    float v = y[i] + bias;
    v = v < lo ? lo : v;
    y[i] = v > hi ? hi : v;
  }
}

static void KNAME(bias_add_clamp_)(float *restrict y, const float *restrict r, float bias,
                                   float lo, float hi, size_t n) {
  for (size_t i = 0; i < n; i++) {
    float v = y[i] + bias + r[i];
    v = v < lo ? lo : v;
    y[i] = v > hi ? hi : v;
  }
}

static void KNAME(dw9_)(float *restrict y, const float *const *taps, const float *w, float bias,
                        float lo, float hi, size_t n) {
  const float *restrict t0 = taps[0], *restrict t1 = taps[1], *restrict t2 = taps[2];
  const float *restrict t3 = taps[3], *restrict t4 = taps[4], *restrict t5 = taps[5];
  const float *restrict t6 = taps[6], *restrict t7 = taps[7], *restrict t8 = taps[8];
  const float w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3], w4 = w[4], w5 = w[5], w6 = w[6],
              w7 = w[7], w8 = w[8];
  for (size_t i = 0; i < n; i++) {
    float v = bias + w0 * t0[i] + w1 * t1[i] + w2 * t2[i] + w3 * t3[i] + w4 * t4[i] +
              w5 * t5[i] + w6 * t6[i] + w7 * t7[i] + w8 * t8[i];
    v = v < lo ? lo : v;
    y[i] = v > hi ? hi : v;
  }
}

/* Winograd F(2x2, 3x3) input transform of n <= 16 tiles of one channel (inlined with n = 16,
** so the copies are fixed-size moves, and with the tail's n): every loop runs over the 16 tiles
** innermost and vectorises. E[r], O[r] are input row r's even and odd columns (u0 + 17 floats
** readable, garbage past the row is computed and dropped); V_xi of tile u (block column
** col = col0 + u) goes to dst[xi * vstride + col / 32 * pstride + col % 32]: B panels. */
static inline __attribute__((always_inline)) void KNAME(wino_in16_)(
    size_t n, const float *const *E, const float *const *O, size_t u0, float *dst,
    size_t vstride, size_t col0, size_t pstride) {
  float d[4][4][16], e[4][4][16], v[16][16];
  for (int r = 0; r < 4; r++) { /* 17 floats of each row readable (the caller's slack) */
    memcpy(d[r][0], E[r] + u0, sizeof d[r][0]);
    memcpy(d[r][1], O[r] + u0, sizeof d[r][1]);
    memcpy(d[r][2], E[r] + u0 + 1, sizeof d[r][2]);
    memcpy(d[r][3], O[r] + u0 + 1, sizeof d[r][3]);
  }
  for (int r = 0; r < 4; r++)
    for (int u = 0; u < 16; u++) {
      e[r][0][u] = d[r][0][u] - d[r][2][u];
      e[r][1][u] = d[r][1][u] + d[r][2][u];
      e[r][2][u] = d[r][2][u] - d[r][1][u];
      e[r][3][u] = d[r][1][u] - d[r][3][u];
    }
  for (int q = 0; q < 4; q++)
    for (int u = 0; u < 16; u++) {
      v[q][u] = e[0][q][u] - e[2][q][u];
      v[4 + q][u] = e[1][q][u] + e[2][q][u];
      v[8 + q][u] = e[2][q][u] - e[1][q][u];
      v[12 + q][u] = e[1][q][u] - e[3][q][u];
    }
  /* tile u is column col0 + u0 + u of the block: panel (col / 32) at col / 32 * pstride */
  const size_t col = col0 + u0, first = 32 - col % 32 < n ? 32 - col % 32 : n;
  float *out = dst + col / 32 * pstride + col % 32;
  for (int xi = 0; xi < 16; xi++) {
    float *dx = out + (size_t)xi * vstride;
    if (first == 16) {
      memcpy(dx, v[xi], sizeof v[xi]);
      continue;
    }
    for (size_t u = 0; u < first; u++)
      dx[u] = v[xi][u];
    for (size_t u = first; u < n; u++) /* the rest at the start of the next panel */
      dx[pstride - col % 32 + (u - first)] = v[xi][u];
  }
}

static void KNAME(wino_in_)(size_t len, const float *const *E, const float *const *O, float *dst,
                            size_t vstride, size_t col0, size_t pstride) {
  size_t u0 = 0;
  for (; u0 + 16 <= len; u0 += 16)
    KNAME(wino_in16_)(16, E, O, u0, dst, vstride, col0, pstride);
  if (u0 < len)
    KNAME(wino_in16_)(len - u0, E, O, u0, dst, vstride, col0, pstride);
}

/* The output transform of n <= 16 tiles (from tile u0) of one output channel: s[xi * ystride + u]
** is Y_xi of tile u (u0 + 16 floats readable); the 2x2 outputs, with bias, residual and clamp,
** go to o->y[0] and o->y[1] (the tiles' two output rows), columns [2 u0, o->w). */
static inline __attribute__((always_inline)) void KNAME(wino_out16_)(
    size_t n, const float *s, size_t ystride, size_t u0, const wino_out_t *o) {
  float v[16][16], q[2][4][16], r[4][16], w[2][32];
  for (int xi = 0; xi < 16; xi++)
    memcpy(v[xi], s + (size_t)xi * ystride + u0, sizeof v[xi]);
  for (int c = 0; c < 4; c++)
    for (int u = 0; u < 16; u++) {
      q[0][c][u] = v[c][u] + v[4 + c][u] + v[8 + c][u];
      q[1][c][u] = v[4 + c][u] - v[8 + c][u] - v[12 + c][u];
    }
  for (int i = 0; i < 2; i++)
    for (int u = 0; u < 16; u++) {
      r[2 * i][u] = q[i][0][u] + q[i][1][u] + q[i][2][u];
      r[2 * i + 1][u] = q[i][1][u] - q[i][2][u] - q[i][3][u];
    }
  for (int u = 0; u < 16; u++) {
    w[0][2 * u] = r[0][u], w[0][2 * u + 1] = r[1][u];
    w[1][2 * u] = r[2][u], w[1][2 * u + 1] = r[3][u];
  }
  const size_t x0 = 2 * u0, cnt = o->w - x0 < 2 * n ? o->w - x0 : 2 * n;
  const float bias = o->bias, lo = o->lo, hi = o->hi; /* locals: the stores cannot alias them */
  for (int i = 0; i < o->rows; i++) {
    float *restrict yr = o->y[i] + x0;
    const float *restrict rr = o->res ? o->res[i] + x0 : NULL;
    if (cnt == 32) {
      float t[32] = {0};
      if (rr)
        memcpy(t, rr, sizeof t);
      for (int c = 0; c < 32; c++) {
        float x = w[i][c] + bias + t[c];
        x = x < lo ? lo : x;
        t[c] = x > hi ? hi : x;
      }
      memcpy(yr, t, sizeof t);
    } else if (rr) {
      for (size_t c = 0; c < cnt; c++) {
        float x = w[i][c] + bias + rr[c];
        x = x < lo ? lo : x;
        yr[c] = x > hi ? hi : x;
      }
    } else {
      for (size_t c = 0; c < cnt; c++) {
        float x = w[i][c] + bias;
        x = x < lo ? lo : x;
        yr[c] = x > hi ? hi : x;
      }
    }
  }
}

static void KNAME(wino_out_)(size_t len, const float *s, size_t ystride, const wino_out_t *o) {
  size_t u0 = 0;
  for (; u0 + 16 <= len; u0 += 16)
    KNAME(wino_out16_)(16, s, ystride, u0, o);
  if (u0 < len)
    KNAME(wino_out16_)(len - u0, s, ystride, u0, o);
}

/* F(4x4, 3x3): V = B^T d B of n <= 16 tiles of one channel. P[4 r + q] is input row r's
** column phase q (column 4u + q of tile u's window; u0 + 17 floats readable); V_xi of tile u
** goes to dst as in wino_in16. B^T rows: (4 0 -5 0 1 0) (0 -4 -4 1 1 0) (0 4 -4 -1 1 0)
** (0 -2 -1 2 1 0) (0 2 -1 -2 1 0) (0 4 0 -5 0 1). */
#define BT6(o, d)                                                                              \
  for (int u = 0; u < 16; u++) {                                                               \
    o[0][u] = 4.0f * d[0][u] - 5.0f * d[2][u] + d[4][u];                                       \
    o[1][u] = -4.0f * (d[1][u] + d[2][u]) + d[3][u] + d[4][u];                                 \
    o[2][u] = 4.0f * (d[1][u] - d[2][u]) - d[3][u] + d[4][u];                                  \
    o[3][u] = 2.0f * (d[3][u] - d[1][u]) - d[2][u] + d[4][u];                                  \
    o[4][u] = 2.0f * (d[1][u] - d[3][u]) - d[2][u] + d[4][u];                                  \
    o[5][u] = 4.0f * d[1][u] - 5.0f * d[3][u] + d[5][u];                                       \
  }
static inline __attribute__((always_inline)) void KNAME(wino4_in16_)(
    size_t n, const float *const *P, size_t u0, float *dst, size_t vstride, size_t col0,
    size_t pstride) {
  float d[6][6][16], e[6][6][16], v[36][16];
  for (int r = 0; r < 6; r++) {
    for (int q = 0; q < 4; q++)
      memcpy(d[r][q], P[4 * r + q] + u0, sizeof d[r][q]);
    memcpy(d[r][4], P[4 * r] + u0 + 1, sizeof d[r][4]);
    memcpy(d[r][5], P[4 * r + 1] + u0 + 1, sizeof d[r][5]);
  }
  for (int r = 0; r < 6; r++) { /* e[r] = d[r] B: along the row */
    float(*o)[16] = e[r];
    float(*x)[16] = d[r];
    BT6(o, x)
  }
  for (int q = 0; q < 6; q++) { /* V = B^T e: down the columns */
    float col[6][16], out[6][16];
    for (int r = 0; r < 6; r++)
      memcpy(col[r], e[r][q], sizeof col[r]);
    BT6(out, col)
    for (int r = 0; r < 6; r++)
      memcpy(v[6 * r + q], out[r], sizeof v[0]);
  }
  const size_t col = col0 + u0, first = 32 - col % 32 < n ? 32 - col % 32 : n;
  float *base = dst + col / 32 * pstride + col % 32;
  for (int xi = 0; xi < 36; xi++) {
    float *dx = base + (size_t)xi * vstride;
    if (first == 16) {
      memcpy(dx, v[xi], sizeof v[xi]);
      continue;
    }
    for (size_t u = 0; u < first; u++)
      dx[u] = v[xi][u];
    for (size_t u = first; u < n; u++)
      dx[pstride - col % 32 + (u - first)] = v[xi][u];
  }
}
#undef BT6

static void KNAME(wino4_in_)(size_t len, const float *const *P, float *dst, size_t vstride,
                             size_t col0, size_t pstride) {
  size_t u0 = 0;
  for (; u0 + 16 <= len; u0 += 16)
    KNAME(wino4_in16_)(16, P, u0, dst, vstride, col0, pstride);
  if (u0 < len)
    KNAME(wino4_in16_)(len - u0, P, u0, dst, vstride, col0, pstride);
}

/* F(4x4, 3x3) output transform A^T Y A of n <= 16 tiles of one output channel, 4 rows of 4
** columns per tile, with bias, residual and clamp (as wino_out16). A^T rows: (1 1 1 1 1 0)
** (0 1 -1 2 -2 0) (0 1 1 4 4 0) (0 1 -1 8 -8 1). */
#define AT6(o, y)                                                                              \
  for (int u = 0; u < 16; u++) {                                                               \
    const float s12 = y[1][u] + y[2][u], d12 = y[1][u] - y[2][u];                              \
    const float s34 = y[3][u] + y[4][u], d34 = y[3][u] - y[4][u];                              \
    o[0][u] = y[0][u] + s12 + s34;                                                             \
    o[1][u] = d12 + 2.0f * d34;                                                                \
    o[2][u] = s12 + 4.0f * s34;                                                                \
    o[3][u] = d12 + 8.0f * d34 + y[5][u];                                                      \
  }
static inline __attribute__((always_inline)) void KNAME(wino4_out16_)(
    size_t n, const float *s, size_t ystride, size_t u0, const wino_out_t *o) {
  float v[6][6][16], q[4][6][16], w[4][64];
  for (int xi = 0; xi < 36; xi++)
    memcpy(v[xi / 6][xi % 6], s + (size_t)xi * ystride + u0, sizeof v[0][0]);
  for (int c = 0; c < 6; c++) { /* q = A^T v: down the columns */
    float col[6][16], out[4][16];
    for (int r = 0; r < 6; r++)
      memcpy(col[r], v[r][c], sizeof col[r]);
    AT6(out, col)
    for (int i = 0; i < 4; i++)
      memcpy(q[i][c], out[i], sizeof out[i]);
  }
  for (int i = 0; i < 4; i++) { /* r = q A: along the rows, interleaved into w[i] */
    float out[4][16];
    float(*y)[16] = q[i];
    AT6(out, y)
    for (int u = 0; u < 16; u++)
      for (int jj = 0; jj < 4; jj++)
        w[i][4 * u + jj] = out[jj][u];
  }
  const size_t x0 = 4 * u0, cnt = o->w - x0 < 4 * n ? o->w - x0 : 4 * n;
  const float bias = o->bias, lo = o->lo, hi = o->hi;
  for (int i = 0; i < o->rows; i++) {
    float *restrict yr = o->y[i] + x0;
    const float *restrict rr = o->res ? o->res[i] + x0 : NULL;
    float t[64];
    if (rr && cnt == 64)
      memcpy(t, rr, sizeof t);
    else
      for (size_t c = 0; c < 64; c++)
        t[c] = rr && c < cnt ? rr[c] : 0.0f;
    for (int c = 0; c < 64; c++) { /* all 64 lanes, vectorised; only cnt are stored */
      float x = w[i][c] + bias + t[c];
      x = x < lo ? lo : x;
      t[c] = x > hi ? hi : x;
    }
    if (cnt == 64)
      memcpy(yr, t, sizeof t);
    else
      for (size_t c = 0; c < cnt; c++)
        yr[c] = t[c];
  }
}
#undef AT6

static void KNAME(wino4_out_)(size_t len, const float *s, size_t ystride, const wino_out_t *o) {
  size_t u0 = 0;
  for (; u0 + 16 <= len; u0 += 16)
    KNAME(wino4_out16_)(16, s, ystride, u0, o);
  if (u0 < len)
    KNAME(wino4_out16_)(len - u0, s, ystride, u0, o);
}

/* p_q[u] = x[4u + q] for u < n (q < 4). */
static void KNAME(deinterleave4_)(float *restrict p0, float *restrict p1, float *restrict p2,
                                  float *restrict p3, const float *restrict x, size_t n) {
  for (size_t u = 0; u < n; u++) {
    p0[u] = x[4 * u], p1[u] = x[4 * u + 1];
    p2[u] = x[4 * u + 2], p3[u] = x[4 * u + 3];
  }
}

static void KNAME(deinterleave_)(float *restrict even, float *restrict odd,
                                 const float *restrict x, size_t n) {
  for (size_t i = 0; i < n / 2; i++) {
    even[i] = x[2 * i];
    odd[i] = x[2 * i + 1];
  }
  if (n % 2)
    even[n / 2] = x[n - 1];
}

#undef KNAME
#undef KCAT
#undef KCAT_
