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
** readable, garbage past the row is computed and dropped); V_xi of tile u goes to
** dst[xi * vstride + u]. */
static inline __attribute__((always_inline)) void KNAME(wino_in16_)(
    size_t n, const float *const *E, const float *const *O, size_t u0, float *dst,
    size_t vstride) {
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
  for (int xi = 0; xi < 16; xi++) {
    if (n == 16)
      memcpy(dst + (size_t)xi * vstride + u0, v[xi], sizeof v[xi]);
    else
      for (size_t u = 0; u < n; u++)
        dst[(size_t)xi * vstride + u0 + u] = v[xi][u];
  }
}

static void KNAME(wino_in_)(size_t len, const float *const *E, const float *const *O, float *dst,
                            size_t vstride) {
  size_t u0 = 0;
  for (; u0 + 16 <= len; u0 += 16)
    KNAME(wino_in16_)(16, E, O, u0, dst, vstride);
  if (u0 < len)
    KNAME(wino_in16_)(len - u0, E, O, u0, dst, vstride);
}

/* The output transform of n <= 16 tiles of one output channel: s[xi * ystride + u] is Y_xi of
** tile u (u0 + 16 floats readable); the 2x2 outputs go to r0 (row 0) and r1 (row 1),
** interleaved, 2 n floats each. */
static inline __attribute__((always_inline)) void KNAME(wino_out16_)(
    size_t n, const float *s, size_t ystride, size_t u0, float *r0, float *r1) {
  float v[16][16], q[2][4][16], o[4][16], w[2][32];
  for (int xi = 0; xi < 16; xi++) /* 16 floats readable (the caller's slack) */
    memcpy(v[xi], s + (size_t)xi * ystride + u0, sizeof v[xi]);
  for (int c = 0; c < 4; c++)
    for (int u = 0; u < 16; u++) {
      q[0][c][u] = v[c][u] + v[4 + c][u] + v[8 + c][u];
      q[1][c][u] = v[4 + c][u] - v[8 + c][u] - v[12 + c][u];
    }
  for (int i = 0; i < 2; i++)
    for (int u = 0; u < 16; u++) {
      o[2 * i][u] = q[i][0][u] + q[i][1][u] + q[i][2][u];
      o[2 * i + 1][u] = q[i][1][u] - q[i][2][u] - q[i][3][u];
    }
  for (int u = 0; u < 16; u++) {
    w[0][2 * u] = o[0][u], w[0][2 * u + 1] = o[1][u];
    w[1][2 * u] = o[2][u], w[1][2 * u + 1] = o[3][u];
  }
  if (n == 16) {
    memcpy(r0 + 2 * u0, w[0], sizeof w[0]);
    memcpy(r1 + 2 * u0, w[1], sizeof w[1]);
  } else {
    for (size_t u = 0; u < 2 * n; u++)
      r0[2 * u0 + u] = w[0][u], r1[2 * u0 + u] = w[1][u];
  }
}

static void KNAME(wino_out_)(size_t len, const float *s, size_t ystride, float *r0, float *r1) {
  size_t u0 = 0;
  for (; u0 + 16 <= len; u0 += 16)
    KNAME(wino_out16_)(16, s, ystride, u0, r0, r1);
  if (u0 < len)
    KNAME(wino_out16_)(len - u0, s, ystride, u0, r0, r1);
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
