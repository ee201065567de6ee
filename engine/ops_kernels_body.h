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

#include "engine/ops_kernels_wino_body.h"

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
