/* engine/ops_kernels_dw_body.h: the bodies of ops_kernels_dw.c's loops (the fused depthwise
** path's), included once per instruction set with KSUF naming the copy. Plain loops the
** compiler vectorises for that target. Only ops_kernels_dw.c includes this file. */
#define KCAT_(a, b) a##b
#define KCAT(a, b) KCAT_(a, b)
#define KNAME(n) KCAT(n, KSUF)

/* One output row of a 3x3 stride-2 depthwise conv: y[i] = clamp(bias + sum w[t] taps[t][2i]). */
static void KNAME(dw9s2_)(float *restrict y, const float *const *taps, const float *w, float bias,
                          float lo, float hi, size_t n) {
  const float *restrict t0 = taps[0], *restrict t1 = taps[1], *restrict t2 = taps[2];
  const float *restrict t3 = taps[3], *restrict t4 = taps[4], *restrict t5 = taps[5];
  const float *restrict t6 = taps[6], *restrict t7 = taps[7], *restrict t8 = taps[8];
  const float w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3], w4 = w[4], w5 = w[5], w6 = w[6],
              w7 = w[7], w8 = w[8];
  for (size_t i = 0; i < n; i++) {
    float v = bias + w0 * t0[2 * i] + w1 * t1[2 * i] + w2 * t2[2 * i] + w3 * t3[2 * i] +
              w4 * t4[2 * i] + w5 * t5[2 * i] + w6 * t6[2 * i] + w7 * t7[2 * i] +
              w8 * t8[2 * i];
    v = v < lo ? lo : v;
    y[i] = v > hi ? hi : v;
  }
}

/* One output row of a 3x3 depthwise conv over DWB channels interleaved (pixel-major, DWB
** floats a pixel): y[ox][c] = clamp(b[c] + sum w[ky][kx][c] * r_ky[(ox*s + kx)][c]). */
static void KNAME(dwblk_row_)(float *restrict y, const float *restrict r0,
                              const float *restrict r1, const float *restrict r2,
                              const float *restrict w, const float *restrict b, float lo,
                              float hi, size_t ow, size_t s) {
  for (size_t ox = 0; ox < ow; ox++) {
    const float *a0 = r0 + ox * s * DWB, *a1 = r1 + ox * s * DWB, *a2 = r2 + ox * s * DWB;
    float acc[DWB];
    for (int c = 0; c < DWB; c++)
      acc[c] = b[c] + w[0 * DWB + c] * a0[c] + w[1 * DWB + c] * a0[DWB + c] +
               w[2 * DWB + c] * a0[2 * DWB + c] + w[3 * DWB + c] * a1[c] +
               w[4 * DWB + c] * a1[DWB + c] + w[5 * DWB + c] * a1[2 * DWB + c] +
               w[6 * DWB + c] * a2[c] + w[7 * DWB + c] * a2[DWB + c] +
               w[8 * DWB + c] * a2[2 * DWB + c];
    for (int c = 0; c < DWB; c++) {
      const float v = acc[c] < lo ? lo : acc[c];
      y[ox * DWB + c] = v > hi ? hi : v;
    }
  }
}

#undef KNAME
#undef KCAT
#undef KCAT_
