/* engine/ops_kernels.c: the inner loops the convolution, pooling and activation kernels spend
** their time in. Each is a plain loop the compiler vectorises; target_clones builds it for
** AVX-512, AVX2+FMA and baseline x86-64, and the dynamic loader picks the best for the CPU, so
** one binary runs everywhere and fast where it can. */
#include "engine/engine_internal.h"

/* -O2's "very cheap" vectoriser skips loops whose trip count is unknown; these need it. */
#if defined(__GNUC__) && !defined(__clang__) /* clang vectorises at -O2 and has no such pragma */
#pragma GCC optimize("tree-vectorize", "vect-cost-model=dynamic")
#endif

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define HOT __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define HOT
#endif

HOT void lpq__kern_axpy(float *restrict y, const float *restrict x, float w, size_t n) {
  for (size_t i = 0; i < n; i++)
    y[i] += w * x[i];
}

HOT void lpq__kern_max(float *restrict y, const float *restrict x, size_t n) {
  for (size_t i = 0; i < n; i++)
    y[i] = x[i] > y[i] ? x[i] : y[i];
}

HOT void lpq__kern_add(float *restrict y, const float *restrict x, size_t n) {
  for (size_t i = 0; i < n; i++)
    y[i] += x[i];
}

HOT void lpq__kern_bias_clamp(float *y, float bias, float lo, float hi, size_t n) {
  for (size_t i = 0; i < n; i++) {
    float v = y[i] + bias;
    v = v < lo ? lo : v;
    y[i] = v > hi ? hi : v;
  }
}

HOT void lpq__kern_bias_add_clamp(float *restrict y, const float *restrict r, float bias, float lo,
                             float hi, size_t n) {
  for (size_t i = 0; i < n; i++) {
    float v = y[i] + bias + r[i];
    v = v < lo ? lo : v;
    y[i] = v > hi ? hi : v;
  }
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>
/* 16 pairs per step: two loads, a two-source permute for each half, two stores. */
__attribute__((target("avx512f"))) static size_t deinterleave_avx512(float *even, float *odd,
                                                                     const float *x, size_t n) {
  const __m512i ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i io = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512 a = _mm512_loadu_ps(x + i), b = _mm512_loadu_ps(x + i + 16);
    _mm512_storeu_ps(even + i / 2, _mm512_permutex2var_ps(a, ie, b));
    _mm512_storeu_ps(odd + i / 2, _mm512_permutex2var_ps(a, io, b));
  }
  return i;
}
#endif

void lpq__kern_deinterleave(float *restrict even, float *restrict odd, const float *restrict x,
                       size_t n) {
  size_t i = 0;
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
  if (__builtin_cpu_supports("avx512f"))
    i = deinterleave_avx512(even, odd, x, n);
#endif
  for (; i + 1 < n; i += 2) {
    even[i / 2] = x[i];
    odd[i / 2] = x[i + 1];
  }
  if (n % 2)
    even[n / 2] = x[n - 1];
}

/* y[i] = clamp(bias + sum_j w[j] * taps[j][i]): one output row of a 3x3 depthwise conv. */
HOT void lpq__kern_dw9(float *restrict y, const float *const *taps, const float *w, float bias,
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
