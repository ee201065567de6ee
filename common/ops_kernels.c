/* common/ops_kernels.c: the inner loops the convolution, pooling and activation kernels spend
** their time in. Each is a plain loop the compiler vectorises; target_clones builds it for
** AVX-512, AVX2+FMA and baseline x86-64, and the dynamic loader picks the best for the CPU, so
** one binary runs everywhere and fast where it can. */
#include "common/graph_internal.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define HOT __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define HOT
#endif

HOT void kern_axpy(float *restrict y, const float *restrict x, float w, size_t n) {
  for (size_t i = 0; i < n; i++)
    y[i] += w * x[i];
}

HOT void kern_max(float *restrict y, const float *restrict x, size_t n) {
  for (size_t i = 0; i < n; i++)
    y[i] = x[i] > y[i] ? x[i] : y[i];
}

HOT void kern_add(float *restrict y, const float *restrict x, size_t n) {
  for (size_t i = 0; i < n; i++)
    y[i] += x[i];
}

HOT void kern_bias_clamp(float *y, float bias, float lo, float hi, size_t n) {
  for (size_t i = 0; i < n; i++) {
    float v = y[i] + bias;
    v = v < lo ? lo : v;
    y[i] = v > hi ? hi : v;
  }
}

HOT void kern_deinterleave(float *restrict even, float *restrict odd, const float *restrict x,
                           size_t n) {
  for (size_t i = 0; i + 1 < n; i += 2) {
    even[i / 2] = x[i];
    odd[i / 2] = x[i + 1];
  }
  if (n % 2)
    even[n / 2] = x[n - 1];
}
