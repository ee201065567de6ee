/* engine/ops_kernels_wino_body.h: the Winograd transforms' loops, part of ops_kernels_body.h
** (included from it once per instruction set, KNAME naming the copy). Only that file includes
** this one. */

/* Winograd F(2x2, 3x3) input transform of n <= 16 tiles (lanes) of one channel: d[r][q][u] is
** the input at row r, column q of lane u's 4x4 window (u < 16; lanes past n are computed and
** dropped). Every loop runs over the 16 lanes innermost and vectorises. V_xi of lane u (block
** column col + u) goes to dst[xi * vstride + (col + u) / 32 * pstride + (col + u) % 32]: B
** panels. */
static inline __attribute__((always_inline)) void KNAME(wino_in_core_)(
    size_t n, float d[4][4][32], float *dst, size_t vstride, size_t col, size_t pstride) {
  float e[4][4][16], v[16][16];
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
  /* lane u is column col + u of the block: panel (col / 32) at col / 32 * pstride */
  const size_t first = 32 - col % 32 < n ? 32 - col % 32 : n;
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

/* n <= 16 tiles of one tile row (inlined with n = 16, so the copies are fixed-size moves, and
** with the tail's n): E[r], O[r] are input row r's even and odd columns (u0 + 17 floats
** readable, garbage past the row is computed and dropped); tile u is block column col0 + u. */
static inline __attribute__((always_inline)) void KNAME(wino_in16_)(
    size_t n, const float *const *E, const float *const *O, size_t u0, float *dst,
    size_t vstride, size_t col0, size_t pstride) {
  float d[4][4][32];
  for (int r = 0; r < 4; r++) { /* 17 floats of each row readable (the caller's slack) */
    memcpy(d[r][0], E[r] + u0, 16 * sizeof(float));
    memcpy(d[r][1], O[r] + u0, 16 * sizeof(float));
    memcpy(d[r][2], E[r] + u0 + 1, 16 * sizeof(float));
    memcpy(d[r][3], O[r] + u0 + 1, 16 * sizeof(float));
  }
  KNAME(wino_in_core_)(n, d, dst, vstride, col0 + u0, pstride);
}

static void KNAME(wino_in_)(size_t len, const float *const *E, const float *const *O, float *dst,
                            size_t vstride, size_t col0, size_t pstride) {
  size_t u0 = 0;
  for (; u0 + 16 <= len; u0 += 16)
    KNAME(wino_in16_)(16, E, O, u0, dst, vstride, col0, pstride);
  if (u0 < len)
    KNAME(wino_in16_)(len - u0, E, O, u0, dst, vstride, col0, pstride);
}

/* Lanes [l0, 16) of d from segment g's padded lines (lane l0 + i's window: row[r][x0 + 2i ..
** x0 + 2i + 3]). */
static inline __attribute__((always_inline)) void KNAME(wino_gather_)(const wino_iseg_t *g,
                                                                      size_t off,
                                                                      float d[4][4][32]) {
  const size_t l0 = g->l0;
  for (int r = 0; r < 4; r++) {
    const float *restrict x = g->row[r] + off + g->x0;
    float *restrict d0 = d[r][0] + l0, *restrict d1 = d[r][1] + l0;
    float *restrict d2 = d[r][2] + l0, *restrict d3 = d[r][3] + l0;
    for (int i = 0; i < 16; i++) {
      d0[i] = x[2 * i], d1[i] = x[2 * i + 1];
      d2[i] = x[2 * i + 2], d3[i] = x[2 * i + 3];
    }
  }
}

/* The nt tiles of a block over several tile rows, runs of 16 lanes (block columns 16k on):
** run k's segments are seg[first[k]] to seg[first[k + 1]], by increasing l0 (the first at 0),
** each overwriting the lanes of the one before from its l0 on. Two buffers: run k + 1 is
** gathered before run k is transformed, so run k's overlapping stores are in the cache by
** then (a load spanning stores still in flight waits for them). */
static void KNAME(wino_in_segs_)(size_t nt, const wino_iseg_t *seg, const int *first,
                                 size_t nruns, int64_t W, size_t off, float *dst,
                                 size_t vstride, size_t pstride) {
  float d[2][4][4][32];
  (void)W; /* lines: every column readable */
  for (int s = first[0]; s < first[1]; s++)
    KNAME(wino_gather_)(&seg[s], off, d[0]);
  for (size_t k = 0; k < nruns; k++) {
    if (k + 1 < nruns)
      for (int s = first[k + 1]; s < first[k + 2]; s++)
        KNAME(wino_gather_)(&seg[s], off, d[(k + 1) % 2]);
    const size_t n = nt - 16 * k < 16 ? nt - 16 * k : 16;
    KNAME(wino_in_core_)(n, d[k % 2], dst, vstride, 16 * k, pstride);
  }
}

/* The output transform of 16 lanes (from tile u0) of one output channel: s[xi * ystride + u]
** is Y_xi of tile u (u0 + 16 floats readable); w[i][2u + j] is lane u's output (i, j). */
static inline __attribute__((always_inline)) void KNAME(wino_out_core_)(
    const float *s, size_t ystride, size_t u0, float w[2][32]) {
  float v[16][16], q[2][4][16], r[4][16];
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
}

/* n <= 16 tiles of one tile row: the 2x2 outputs, with bias, residual and clamp, go to o->y[0]
** and o->y[1] (the tiles' two output rows), columns [2 u0, o->w). */
static inline __attribute__((always_inline)) void KNAME(wino_out16_)(
    size_t n, const float *s, size_t ystride, size_t u0, const wino_out_t *o) {
  float w[2][32];
  KNAME(wino_out_core_)(s, ystride, u0, w);
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

/* 16 lanes of one output channel over several tile rows (s as wino_out16, u0 = 0): segment k's
** lanes [l0, ...) go to its rows y[i] + off (i < rows, w columns from lane l0's first), with
** the bias, its residual rows res[i] + off (res[0] NULL: none) and the clamp. */
static void KNAME(wino_out_segs_)(const float *s, size_t ystride, const wino_oseg_t *seg,
                                  size_t nseg, size_t off, float bias, float lo, float hi) {
  float w[2][32], t[2][32];
  KNAME(wino_out_core_)(s, ystride, 0, w);
  if (seg[0].res[0]) { /* x = w + bias + res, as wino_out16 */
    memset(t, 0, sizeof t);
    for (size_t k = 0; k < nseg; k++)
      for (int i = 0; i < seg[k].rows; i++)
        for (size_t c = 0; c < seg[k].w; c++)
          t[i][2 * seg[k].l0 + c] = seg[k].res[i][off + c];
    for (int i = 0; i < 2; i++)
      for (int c = 0; c < 32; c++) {
        float x = w[i][c] + bias + t[i][c];
        x = x < lo ? lo : x;
        t[i][c] = x > hi ? hi : x;
      }
  } else {
    for (int i = 0; i < 2; i++)
      for (int c = 0; c < 32; c++) {
        float x = w[i][c] + bias;
        x = x < lo ? lo : x;
        t[i][c] = x > hi ? hi : x;
      }
  }
  for (size_t k = 0; k < nseg; k++)
    for (int i = 0; i < seg[k].rows; i++) {
      float *restrict yr = seg[k].y[i] + off;
      const float *restrict tr = t[i] + 2 * seg[k].l0;
      for (size_t c = 0; c < seg[k].w; c++)
        yr[c] = tr[c];
    }
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

