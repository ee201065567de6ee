/* engine/graph_blas.c: choosing OpenBLAS's kernel set (see lpq_blas_select_kernels) and running
** it on one thread (lpq_blas_single_thread). */
#include "engine/engine.h"

#include <cblas.h>
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void lpq_blas_select_kernels(char **argv) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (!argv || !argv[0] || getenv("OPENBLAS_CORETYPE"))
    return;
  const char *core = openblas_get_corename();
  if (!core)
    return;
  __builtin_cpu_init();
  const int avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                     __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
  const int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  /* a CPU OpenBLAS does not know gets its SSE3 kernels ("Prescott"); one it half knows, AVX2 */
  const int generic = strcmp(core, "Prescott") == 0 || strcmp(core, "Core2") == 0 ||
                      strcmp(core, "Nehalem") == 0 || strcmp(core, "Sandybridge") == 0;
  const int avx2_only = strcmp(core, "Haswell") == 0 || strcmp(core, "Zen") == 0;
  const char *want = avx512 && (generic || avx2_only) ? "SkylakeX"
                     : avx2 && generic                ? "Haswell"
                                                      : NULL;
  if (!want || setenv("OPENBLAS_CORETYPE", want, 1) != 0)
    return;
  execv("/proc/self/exe", argv); /* returns only on failure: keep running as we are */
#else
  (void)argv;
#endif
}

void lpq_blas_single_thread(void) {
  openblas_set_num_threads(1);
  /* the pthread build's own shutdown (what its fork handler calls): it joins the idle threads,
  ** and a later call wanting threads starts them again; looked up, since other builds lack it */
  int (*shutdown)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "blas_thread_shutdown_");
  if (shutdown)
    shutdown();
}
