/* bench/lp_quant.c: LP tensor quantization speed against memcpy and an INT8 fake-quantizer.
**
** 64 Mi Gaussian float32 values; each kernel runs REPS times on the same buffers, the median
** is reported. Target (issue 2): LP fake quantization within 2x of memcpy's time and no slower
** than the INT8 per-tensor fake-quantizer (x/s rounded, clamped, times s). The INT8 peer is
** vectorised with the same effort as LP's kernels: AVX-512 and AVX2 intrinsics (one multiply,
** round, two clamps, one multiply per vector), and LP is compared with the INT8 kernel of the
** instruction set its own kernel uses (LPQ_SIMD=avx2 runs both at AVX2). The plain scalar loop
** is shown too. Usage: build/bench/lp_quant [count_mi] [reps]   (defaults 64 and 7) */
#include "bench/bench_verdict.h"
#include "lp/lp.h"

#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* CPU time of this thread: on a machine shared with other work, wall time swings with the
** load, CPU time much less (both kernels of a ratio still see the same caches and memory). */
static double now_s(void) {
  struct timespec ts;
  clock_gettime(getenv("LPQ_BENCH_WALL") ? CLOCK_MONOTONIC : CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static uint64_t rng = 0x243f6a8885a308d3ull;
static double uniform01(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return ((double)(rng >> 11) + 0.5) / 9007199254740992.0;
}

/* The simplest per-tensor INT8 fake quantizer any framework has (built -O2, no -march). */
static void int8_fake_quant(const float *in, float *out, size_t n, float scale) {
  const float inv = 1.0f / scale;
  for (size_t i = 0; i < n; i++) {
    float q = rintf(in[i] * inv);
    q = q < -127.0f ? -127.0f : (q > 127.0f ? 127.0f : q);
    out[i] = q * scale;
  }
}

/* The same, 8 lanes: round to nearest even as rintf does. */
__attribute__((target("avx2"))) static void int8_fake_quant_avx2(const float *in, float *out,
                                                                 size_t n, float scale) {
  const __m256 inv = _mm256_set1_ps(1.0f / scale), s = _mm256_set1_ps(scale);
  const __m256 lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 q = _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(in + i), inv),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    q = _mm256_min_ps(_mm256_max_ps(q, lo), hi);
    _mm256_storeu_ps(out + i, _mm256_mul_ps(q, s));
  }
  int8_fake_quant(in + i, out + i, n - i, scale);
}

/* 16 lanes. */
__attribute__((target("avx512f"))) static void int8_fake_quant_avx512(const float *in, float *out,
                                                                      size_t n, float scale) {
  const __m512 inv = _mm512_set1_ps(1.0f / scale), s = _mm512_set1_ps(scale);
  const __m512 lo = _mm512_set1_ps(-127.0f), hi = _mm512_set1_ps(127.0f);
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512 q = _mm512_roundscale_ps(_mm512_mul_ps(_mm512_loadu_ps(in + i), inv),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    q = _mm512_min_ps(_mm512_max_ps(q, lo), hi);
    _mm512_storeu_ps(out + i, _mm512_mul_ps(q, s));
  }
  int8_fake_quant(in + i, out + i, n - i, scale);
}

enum { K_MEMCPY, K_INT8, K_INT8_AVX2, K_INT8_AVX512, K_LP };

typedef struct {
  const char *name;
  int kind;
  lp_quantizer_t *q;
} kernel_t;

int main(int argc, char **argv) {
  size_t mi = argc > 1 ? (size_t)atol(argv[1]) : 64;
  int reps = argc > 2 ? atoi(argv[2]) : 7;
  if (mi == 0 || reps <= 0 || reps > 101) {
    fprintf(stderr, "usage: lp_quant [count_mi >= 1] [reps 1..101]\n");
    return 2;
  }
  size_t n = mi << 20;
  float *in = malloc(n * sizeof *in), *out = malloc(n * sizeof *out);
  if (!in || !out) {
    fprintf(stderr, "lp_quant: out of memory for %zu values\n", n);
    return 1;
  }
  float maxabs = 0.0f;
  for (size_t i = 0; i + 1 < n; i += 2) { /* Box-Muller */
    double r = sqrt(-2.0 * log(uniform01())), t = 2.0 * M_PI * uniform01();
    in[i] = (float)(r * cos(t));
    in[i + 1] = (float)(r * sin(t));
    maxabs = fmaxf(maxabs, fmaxf(fabsf(in[i]), fabsf(in[i + 1])));
  }
  memset(out, 0, n * sizeof *out); /* fault the pages in before timing */

  const char *lp_names[] = {"lp<8,2,2,0>", "lp<4,1,2,0>", "lp<6,1,3,2>"};
  kernel_t ks[8] = {{"memcpy", K_MEMCPY, NULL}, {"int8 plain loop", K_INT8, NULL}};
  size_t nk = 2;
  int have_avx2 = __builtin_cpu_supports("avx2"), have_avx512 = __builtin_cpu_supports("avx512f");
  if (have_avx2)
    ks[nk++] = (kernel_t){"int8 avx2", K_INT8_AVX2, NULL};
  if (have_avx512)
    ks[nk++] = (kernel_t){"int8 avx512", K_INT8_AVX512, NULL};
  size_t first_lp = nk;
  for (size_t i = 0; i < 3; i++) {
    lp_format_t f;
    lpq_error_t err;
    if (lp_format_parse(lp_names[i], &f, &err) != 0 || !(ks[nk].q = lp_quantizer_new(&f, &err))) {
      fprintf(stderr, "lp_quant: %s\n", err.msg);
      return 1;
    }
    ks[nk].name = lp_names[i];
    ks[nk].kind = K_LP;
    nk++;
  }
  /* The INT8 peer of LP's instruction set. */
  const char *lp_kernel = lp_quantizer_kernel(ks[first_lp].q);
  int peer_kind = strcmp(lp_kernel, "avx512") == 0 ? K_INT8_AVX512
                  : strcmp(lp_kernel, "avx2") == 0 ? K_INT8_AVX2
                                                   : K_INT8;
  size_t peer = 1;
  for (size_t k = 0; k < nk; k++)
    if (ks[k].kind == peer_kind)
      peer = k;

  double median[8];
  const float scale = maxabs / 127.0f;
  for (size_t k = 0; k < nk; k++) {
    double t[101];
    for (int r = 0; r < reps; r++) {
      double t0 = now_s();
      if (ks[k].kind == K_MEMCPY)
        memcpy(out, in, n * sizeof *in);
      else if (ks[k].kind == K_INT8)
        int8_fake_quant(in, out, n, scale);
      else if (ks[k].kind == K_INT8_AVX2)
        int8_fake_quant_avx2(in, out, n, scale);
      else if (ks[k].kind == K_INT8_AVX512)
        int8_fake_quant_avx512(in, out, n, scale);
      else if (lp_quantize_f32(ks[k].q, in, out, n, NULL) != 0) {
        fprintf(stderr, "lp_quant: quantization failed\n");
        return 1;
      }
      t[r] = now_s() - t0;
    }
    qsort(t, (size_t)reps, sizeof t[0], cmp_double);
    median[k] = t[reps / 2];
  }

  printf("lp_quant: %zu Mi float32 Gaussian values, median of %d runs, 1 thread, %s time; "
         "LP kernel %s, compared with %s\n",
         mi, reps, getenv("LPQ_BENCH_WALL") ? "wall" : "thread CPU", lp_kernel, ks[peer].name);
  printf("%-18s %10s %12s %10s %10s\n", "kernel", "ms", "Mvalues/s", "x memcpy", "x int8");
  for (size_t k = 0; k < nk; k++)
    printf("%-18s %10.2f %12.1f %10.2f %10.2f\n", ks[k].name, 1e3 * median[k],
           (double)n / median[k] / 1e6, median[k] / median[0], median[k] / median[peer]);
  /* The slowest LP format stands for LP. */
  size_t worst = first_lp;
  for (size_t k = first_lp; k < nk; k++)
    if (median[k] > median[worst])
      worst = k;
  char target[128];
  snprintf(target, sizeof target, "LP (slowest of 3 formats, %s) time / memcpy's", lp_kernel);
  bench_verdict("lp_quant", target, median[worst] / median[0], "<=", 2.0, "x");
  snprintf(target, sizeof target, "LP (slowest, %s) time / INT8 fake-quant's (%s)", lp_kernel,
           ks[peer].name);
  bench_verdict("lp_quant", target, median[worst] / median[peer], "<=", 1.0, "x");
  for (size_t k = first_lp; k < nk; k++)
    lp_quantizer_free(&ks[k].q);
  free(in);
  free(out);
  return 0;
}
