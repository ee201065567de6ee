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
