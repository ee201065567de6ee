/* bench/lp_quant.c: LP tensor quantization speed against memcpy and an INT8 fake-quantizer.
**
** 64 Mi Gaussian float32 values; each kernel runs REPS times on the same buffers, the median
** is reported. Target (issue 2): LP fake quantization within 2x of memcpy's time and no slower
** than the INT8 per-tensor fake-quantizer (x/s rounded, clamped, times s).
** Usage: build/bench/lp_quant [count_mi] [reps]   (defaults 64 and 7) */
#include "lp/lp.h"

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

/* The simplest per-tensor INT8 fake quantizer any framework has. */
static void int8_fake_quant(const float *in, float *out, size_t n, float scale) {
  const float inv = 1.0f / scale;
  for (size_t i = 0; i < n; i++) {
    float q = rintf(in[i] * inv);
    q = q < -127.0f ? -127.0f : (q > 127.0f ? 127.0f : q);
    out[i] = q * scale;
  }
}

enum { K_MEMCPY, K_INT8, K_LP };

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
  kernel_t ks[5] = {{"memcpy", K_MEMCPY, NULL}, {"int8 fake-quant", K_INT8, NULL}};
  size_t nk = 2;
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

  double median[5];
  for (size_t k = 0; k < nk; k++) {
    double t[101];
    for (int r = 0; r < reps; r++) {
      double t0 = now_s();
      if (ks[k].kind == K_MEMCPY)
        memcpy(out, in, n * sizeof *in);
      else if (ks[k].kind == K_INT8)
        int8_fake_quant(in, out, n, maxabs / 127.0f);
      else if (lp_quantize_f32(ks[k].q, in, out, n, NULL) != 0) {
        fprintf(stderr, "lp_quant: quantization failed\n");
        return 1;
      }
      t[r] = now_s() - t0;
    }
    qsort(t, (size_t)reps, sizeof t[0], cmp_double);
    median[k] = t[reps / 2];
  }

  printf("lp_quant: %zu Mi float32 Gaussian values, median of %d runs, 1 thread, %s time\n", mi,
         reps, getenv("LPQ_BENCH_WALL") ? "wall" : "thread CPU");
  printf("%-18s %10s %12s %10s %10s\n", "kernel", "ms", "Mvalues/s", "x memcpy", "x int8");
  for (size_t k = 0; k < nk; k++)
    printf("%-18s %10.2f %12.1f %10.2f %10.2f\n", ks[k].name, 1e3 * median[k],
           (double)n / median[k] / 1e6, median[k] / median[0], median[k] / median[1]);
  int ok = 1;
  for (size_t k = 2; k < nk; k++)
    ok &= median[k] <= 2.0 * median[0] && median[k] <= median[1];
  printf("target (LP <= 2x memcpy and <= int8): %s\n", ok ? "met" : "missed");
  for (size_t k = 2; k < nk; k++)
    lp_quantizer_free(&ks[k].q);
  free(in);
  free(out);
  return 0;
}
