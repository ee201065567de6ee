/* tests/test_cpuid_shim.c: bench/engine/cpuid_avx2.c, the LD_PRELOAD shim with which
** bench/engine/run.sh makes lpq, ONNX Runtime and PyTorch run their AVX2 code on an AVX-512
** machine (CPUID faulting). A process under it sees no AVX-512 in CPUID, keeps AVX2, and lpq's
** own runtime dispatch (no LPQ_ISA) then picks its AVX2 kernels and OpenBLAS a non-AVX-512 core:
** what lpq does on an AVX2-only machine. Skipped where the CPU has no CPUID faulting. */
#include "common/common.h"

#include <cpuid.h>
#include <criterion/criterion.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* CPUID's answers this test cares about: AVX512F, AVX2, FMA and the ZMM state bits of XCR0. */
typedef struct {
  unsigned avx512f, avx2, fma, zmm_state;
} bits_t;

static bits_t read_bits(void) {
  unsigned a, b, c, d;
  bits_t r = {0, 0, 0, 0};
  if (__get_cpuid_count(1, 0, &a, &b, &c, &d))
    r.fma = (c >> 12) & 1;
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
    r.avx512f = (b >> 16) & 1;
    r.avx2 = (b >> 5) & 1;
  }
  if (__get_cpuid_count(0xd, 0, &a, &b, &c, &d))
    r.zmm_state = (a >> 5) & 7;
  return r;
}

/* The probe: with LPQ_CPUID_PROBE set, this program prints what CPUID tells it and exits before
** Criterion starts (the shim's constructor has run by then: preloaded libraries come first). */
__attribute__((constructor)) static void probe(void) {
  if (!getenv("LPQ_CPUID_PROBE"))
    return;
  const bits_t r = read_bits();
  printf("%u %u %u %u\n", r.avx512f, r.avx2, r.fma, r.zmm_state);
  fflush(stdout);
  _exit(0);
}

static const char *build_dir(void) { return getenv("LPQ_BUILD") ? getenv("LPQ_BUILD") : "build"; }

static int have_cpuid_fault(void) {
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (!f)
    return 0;
  char line[8192];
  int yes = 0;
  while (!yes && fgets(line, sizeof line, f))
    yes = strncmp(line, "flags", 5) == 0 && strstr(line, " cpuid_fault");
  fclose(f);
  return yes;
}

/* Runs the shell command cmd; its standard output (at most cap - 1 bytes) in out; exit status. */
static int run(const char *cmd, char *out, size_t cap) {
  FILE *p = popen(cmd, "r");
  cr_assert_not_null(p, "%s", cmd);
  size_t n = fread(out, 1, cap - 1, p);
  out[n] = 0;
  const int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The environment prefix that preloads the shim (for check-asan's build: ASan's runtime wants to
** come first, told not to check; and it must let the shim install its SIGSEGV handler). */
static void shim_env(char *buf, size_t cap) {
  char shim[PATH_MAX];
  snprintf(shim, sizeof shim, "%s/bench/cpuid_avx2.so", build_dir());
  char *abs = realpath(shim, NULL);
  cr_assert_not_null(abs, "%s missing: make builds it", shim);
  snprintf(buf, cap,
           "ASAN_OPTIONS=$ASAN_OPTIONS:verify_asan_link_order=0:allow_user_segv_handler=1 "
           "LD_PRELOAD=%s",
           abs);
  free(abs);
}

TestSuite(cpuid_shim, .timeout = 120);

Test(cpuid_shim, hides_avx512_keeps_avx2) {
  if (!have_cpuid_fault())
    cr_skip_test("no CPUID faulting on this CPU");
  char self[PATH_MAX], env[PATH_MAX + 128], cmd[3 * PATH_MAX], out[256];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  cr_assert_gt(n, 0);
  self[n] = 0;
  shim_env(env, sizeof env);
  snprintf(cmd, sizeof cmd, "LPQ_CPUID_PROBE=1 '%s'", self);
  bits_t plain, shimmed;
  cr_assert_eq(run(cmd, out, sizeof out), 0, "%s", out);
  cr_assert_eq(
      sscanf(out, "%u %u %u %u", &plain.avx512f, &plain.avx2, &plain.fma, &plain.zmm_state), 4,
      "%s", out);
  const bits_t here = read_bits();
  cr_assert_eq(plain.avx512f, here.avx512f, "without the shim the probe sees the real CPU");
  snprintf(cmd, sizeof cmd, "%s LPQ_CPUID_PROBE=1 '%s'", env, self);
  cr_assert_eq(run(cmd, out, sizeof out), 0, "%s", out);
  cr_assert_eq(sscanf(out, "%u %u %u %u", &shimmed.avx512f, &shimmed.avx2, &shimmed.fma,
                      &shimmed.zmm_state), 4, "%s", out);
  cr_expect_eq(shimmed.avx512f, 0, "AVX512F still visible under the shim");
  cr_expect_eq(shimmed.zmm_state, 0, "XCR0's ZMM state bits still reported by CPUID leaf 0xD");
  cr_expect_eq(shimmed.avx2, here.avx2, "the shim must keep AVX2 as it is");
  cr_expect_eq(shimmed.fma, here.fma, "the shim must keep FMA as it is");
}

/* lpq run --json on the small fixture with extra environment env: its isa and blas_core, and the
** logits in out_npy. */
static void lpq_run(const char *env, const char *out_npy, char *isa, char *core) {
  char cmd[3 * PATH_MAX], out[4096];
  snprintf(cmd, sizeof cmd,
           "%s %s/bin/lpq run --model tests/fixtures/score_small.onnx --data "
           "tests/fixtures/score_small_x.npy --out %s --json",
           env, build_dir(), out_npy);
  cr_assert_eq(run(cmd, out, sizeof out), 0, "%s: %s", cmd, out);
  const char *last = strrchr(out, '{');
  cr_assert_not_null(last, "%s", out);
  json_error_t err;
  json_t *o = json_loads(last, 0, &err);
  cr_assert_not_null(o, "%s: %s", err.text, out);
  const char *i = json_string_value(json_object_get(o, "isa"));
  const char *c = json_string_value(json_object_get(o, "blas_core"));
  cr_assert(i && c, "%s", out);
  snprintf(isa, 32, "%s", i);
  snprintf(core, 64, "%s", c);
  json_decref(o);
}

Test(cpuid_shim, lpq_dispatch_picks_avx2) {
  if (!have_cpuid_fault())
    cr_skip_test("no CPUID faulting on this CPU");
  const bits_t here = read_bits();
  if (!here.avx2 || !here.fma)
    cr_skip_test("no AVX2+FMA: nothing to force");
  char env[PATH_MAX + 128], dir[] = "/tmp/lpq_cpuid_XXXXXX", a[PATH_MAX], b[PATH_MAX];
  cr_assert_not_null(mkdtemp(dir));
  snprintf(a, sizeof a, "%s/plain.npy", dir);
  snprintf(b, sizeof b, "%s/shim.npy", dir);
  shim_env(env, sizeof env);
  char isa0[32], core0[64], isa1[32], core1[64];
  lpq_run("env -u LPQ_ISA -u OPENBLAS_CORETYPE", a, isa0, core0);
  lpq_run(env, b, isa1, core1); /* no LPQ_ISA: lpq's own dispatch decides */
  cr_assert_str_eq(isa0, here.avx512f ? "avx512" : "avx2");
  cr_expect_str_eq(isa1, "avx2", "under the shim lpq must pick its AVX2 kernels (got %s)", isa1);
  const char *wide[] = {"SkylakeX", "Cooperlake", "SapphireRapids"};
  for (size_t k = 0; k < sizeof wide / sizeof *wide; k++)
    cr_expect_str_neq(core1, wide[k], "OpenBLAS picked its AVX-512 core %s under the shim", core1);
  /* the same logits, up to the kernels' rounding */
  lpq_array_t *x = NULL, *y = NULL;
  lpq_error_t err;
  cr_assert_eq(lpq_load_npy(a, &x, &err), 0, "%s", err.msg);
  cr_assert_eq(lpq_load_npy(b, &y, &err), 0, "%s", err.msg);
  cr_assert(x->dtype == LPQ_DT_F32 && y->dtype == LPQ_DT_F32 && x->count == y->count && x->count);
  double diff = 0.0, scale = 0.0;
  for (size_t k = 0; k < x->count; k++) {
    const double u = ((const float *)x->data)[k], v = ((const float *)y->data)[k];
    diff = fmax(diff, fabs(u - v));
    scale = fmax(scale, fabs(u));
  }
  cr_expect_leq(diff, 1e-4 * scale, "logits differ by %g (max |logit| %g)", diff, scale);
  lpq_array_free(&x);
  lpq_array_free(&y);
  char cmd[2 * PATH_MAX];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  cr_assert_eq(system(cmd), 0);
}
