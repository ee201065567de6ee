/* worker/blas_kernels.c: OpenBLAS's kernel set for the scorer's GEMMs (see lpq_blas_for_scoring). */
#include "worker/worker.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void lpq_blas_for_scoring(char **argv) {
  lpq_blas_select_kernels(argv); /* Haswell or Zen on an AVX-512 CPU: re-executes */
#if defined(__x86_64__) && defined(__GNUC__)
  if (!argv || !argv[0] || getenv("OPENBLAS_CORETYPE"))
    return;
  /* OpenBLAS 0.3.21 falls back to Prescott (SSE3) on Intel CPUs it does not know, such as
  ** Sapphire and Emerald Rapids: 4.5x slower than its SkylakeX kernels on the local terms'
  ** B x B x D products (30 against 135 GFLOPS at B = 256, one thread) */
  const char *core = openblas_get_corename();
  if (!core || strcmp(core, "Prescott") != 0)
    return;
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw") ||
      !__builtin_cpu_supports("avx512dq") || !__builtin_cpu_supports("avx512vl"))
    return;
  if (setenv("OPENBLAS_CORETYPE", "SkylakeX", 1) != 0)
    return;
  execv("/proc/self/exe", argv); /* returns only on failure: keep running as we are */
#else
  (void)argv;
#endif
}
