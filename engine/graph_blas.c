/* engine/graph_blas.c: choosing OpenBLAS's kernel set (see lpq_blas_select_kernels). */
#include "engine/engine.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void lpq_blas_select_kernels(char **argv) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (!argv || !argv[0] || getenv("OPENBLAS_CORETYPE"))
    return;
  const char *core = openblas_get_corename();
  if (!core || (strcmp(core, "Haswell") != 0 && strcmp(core, "Zen") != 0))
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
