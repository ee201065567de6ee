/* tests/test_sgemm.c: lpq's SGEMM kernel alone (engine/ops_sgemm.c), against a loop in double:
** row counts on and off the 8-row panel and its 4-row halves, column counts on and off the
** 32-column panel and its 16- and 8-column parts, K across the K block (256) and AVX2's K step
** (192), with and without the epilogue (bias, residual, clamp), B packed per block by the
** kernel and packed in full by the caller. A column's bits must not depend on the tile it
** falls in: the same product with the columns padded to whole panels gives the same bits.
** At the CPU's best kernel set, LPQ_ISA=avx2 and LPQ_ISA=generic (OpenBLAS). And
** lpq_blas_single_thread: OpenBLAS's own threads gone, its products still right. */
#include "engine/engine_internal.h"
#include "tests/isa_tests.h"

#include <cblas.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <dlfcn.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static float *randoms(size_t n, unsigned *seed) {
  float *v = malloc(n * sizeof *v);
  cr_assert_not_null(v);
  for (size_t i = 0; i < n; i++)
    v[i] = (float)rand_r(seed) / (float)RAND_MAX - 0.5f;
  return v;
}

/* clamp(A x B + bias + res) in double (no epilogue: bias, res NULL and no clamp). */
static void reference(size_t M, size_t N, size_t K, const float *A, const float *B,
                      const sgemm_epi_t *e, double *C) {
  for (size_t i = 0; i < M; i++)
    for (size_t j = 0; j < N; j++) {
      double acc = 0;
      for (size_t q = 0; q < K; q++)
        acc += (double)A[i * K + q] * B[q * N + j];
      if (e) {
        acc += (e->bias ? e->bias[i] : 0.0) + (e->res ? e->res[i * e->ldr + j] : 0.0);
        acc = acc < e->lo ? e->lo : acc > e->hi ? e->hi : acc;
      }
      C[i * N + j] = acc;
    }
}

/* B [K, N] copied into the first N of Nw columns (the rest zero). */
static float *widen(const float *B, size_t K, size_t N, size_t Nw) {
  float *w = calloc(K * Nw, sizeof *w);
  cr_assert_not_null(w);
  for (size_t q = 0; q < K; q++)
    memcpy(w + q * Nw, B + q * N, N * sizeof *w);
  return w;
}

/* B packed in full: SGEMM_NR-column panels over all K, k-major, zero past column N. */
static float *pack_full(const float *B, size_t K, size_t N) {
  const size_t panels = (N + SGEMM_NR - 1) / SGEMM_NR;
  float *p = calloc(panels * SGEMM_NR * K + 1, sizeof *p);
  cr_assert_not_null(p);
  for (size_t q = 0; q < K; q++)
    for (size_t j = 0; j < N; j++)
      p[j / SGEMM_NR * SGEMM_NR * K + q * SGEMM_NR + j % SGEMM_NR] = B[q * N + j];
  return p;
}

/* One product through both entries: within tolerance of the reference, and with the epilogue
** on, bit-equal to the same rows and columns of the product padded to whole 8 x 32 tiles
** through the same entry. */
static void check(size_t M, size_t N, size_t K, int with_epi, unsigned seed) {
  const int own = lpq__sgemm_packs_a();
  const size_t Mw = (M + 7) / 8 * 8, Nw = (N + SGEMM_NR - 1) / SGEMM_NR * SGEMM_NR;
  float *A = randoms(Mw * K, &seed), *B = randoms(K * N, &seed);
  float *bias = randoms(Mw, &seed), *res = randoms(Mw * Nw, &seed);
  /* lo, hi cut about a tenth of the values at each end */
  const float lo = -0.35f * sqrtf((float)K) / 3.0f, hi = -lo;
  const sgemm_epi_t epi = {bias, res, Nw, lo, hi};
  const sgemm_epi_t *e = with_epi ? &epi : NULL;
  double *want = malloc(M * N * sizeof *want);
  float *C = malloc((M * N + 1) * sizeof *C), *Cw = malloc(Mw * Nw * sizeof *Cw);
  float *pack = malloc((lpq__sgemm_pack_floats(N > Nw ? N : Nw) + 16) * sizeof *pack);
  float *Ap = NULL, *Apw = NULL;
  cr_assert(want && C && Cw && pack);
  reference(M, N, K, A, B, e, want);
  if (own) {
    Ap = malloc((lpq__sgemm_packed_a_floats(M, K) + 16) * sizeof *Ap);
    Apw = malloc((lpq__sgemm_packed_a_floats(Mw, K) + 16) * sizeof *Apw);
    cr_assert(Ap && Apw);
    lpq__sgemm_pack_a(M, K, A, K, Ap);
    lpq__sgemm_pack_a(Mw, K, A, K, Apw);
  }
  const double tol = 2e-6 * (double)K + 1e-6;
  for (int entry = 0; entry < (own ? 2 : 1); entry++) {
    C[M * N] = 12345.0f; /* a sentinel past C */
    if (entry == 0) {
      lpq__kern_sgemm(M, N, K, A, K, Ap, B, N, C, N, pack, e);
    } else {
      float *Bp = pack_full(B, K, N);
      lpq__kern_sgemm_packed_epi(M, N, K, Ap, Bp, C, N, e);
      free(Bp);
    }
    cr_assert_eq(C[M * N], 12345.0f, "M %zu N %zu K %zu: a store past C", M, N, K);
    for (size_t i = 0; i < M * N; i++)
      cr_assert(fabs(C[i] - want[i]) <= tol, "M %zu N %zu K %zu epi %d entry %d: C[%zu][%zu] %.9g, want %.9g",
                M, N, K, with_epi, entry, i / N, i % N, C[i], want[i]);
    if (!own || !with_epi)
      continue;
    float *Bw = widen(B, K, N, Nw);
    float *Bp = pack_full(Bw, K, Nw);
    if (entry == 0)
      lpq__kern_sgemm(Mw, Nw, K, A, K, Apw, Bw, Nw, Cw, Nw, pack, e);
    else
      lpq__kern_sgemm_packed_epi(Mw, Nw, K, Apw, Bp, Cw, Nw, e);
    for (size_t i = 0; i < M; i++)
      for (size_t j = 0; j < N; j++)
        cr_assert(memcmp(&C[i * N + j], &Cw[i * Nw + j], sizeof *C) == 0,
                  "M %zu N %zu K %zu entry %d: C[%zu][%zu] %.9g, in whole tiles %.9g", M, N, K,
                  entry, i, j, C[i * N + j], Cw[i * Nw + j]);
    free(Bw), free(Bp);
  }
  free(A), free(B), free(bias), free(res), free(want), free(C), free(Cw), free(pack), free(Ap);
  free(Apw);
}

static void cases(void) {
  static const size_t ms[] = {1, 3, 4, 5, 8, 13, 17};
  static const size_t ns[] = {1, 4, 7, 8, 9, 15, 16, 17, 24, 25, 31, 32, 33, 40, 49, 70, 196};
  static const size_t ks[] = {1, 7, 33, 200, 300};
  unsigned seed = 7;
  for (size_t a = 0; a < sizeof ms / sizeof *ms; a++)
    for (size_t b = 0; b < sizeof ns / sizeof *ns; b++)
      for (size_t c = 0; c < sizeof ks / sizeof *ks; c++)
        check(ms[a], ns[b], ks[c], (int)((a + b + c) % 2), seed++);
  check(136, 400, 520, 1, seed++); /* several row blocks (128), column blocks (384), K blocks */
  check(136, 400, 520, 0, seed++);
}

TestSuite(sgemm, .timeout = 300);

/* lpq__kern_sgemm_packed_rows: rows [r0, r1) (r0 on the 8-row panel, starting inside a 128-row
** block too) bit for bit those rows of the whole packed product, the other rows untouched.
** Like every packed entry, only where lpq's kernel runs (not with LPQ_ISA=generic). */
static void rows_cases(void) {
  /* (M <= 8: the whole product takes its one-panel path, whose bits differ past a K block) */
  static const size_t ms[] = {9, 65, 136, 200}, ns[] = {7, 25, 32, 40}, ks[] = {3, 300};
  unsigned seed = 90;
  if (!lpq__sgemm_packs_a()) {
    cr_assert_str_eq(lpq_engine_isa(), "generic");
    return;
  }
  for (size_t a = 0; a < 4; a++)
    for (size_t b = 0; b < 4; b++)
      for (size_t c = 0; c < 2; c++) {
        const size_t M = ms[a], N = ns[b], K = ks[c];
        float *A = randoms(M * K, &seed), *B = randoms(K * N, &seed), *Bp = pack_full(B, K, N);
        float *Ap = malloc((lpq__sgemm_packed_a_floats(M, K) + 16) * sizeof *Ap);
        float *whole = malloc(M * N * sizeof *whole), *part = malloc(M * N * sizeof *part);
        cr_assert(Ap && whole && part);
        lpq__sgemm_pack_a(M, K, A, K, Ap);
        lpq__kern_sgemm_packed(M, N, K, Ap, Bp, whole, N);
        const size_t cuts[][2] = {{0, 8}, {8, 16}, {8, M}, {64, M}, {128, M}, {0, M}, {16, 72}};
        for (size_t u = 0; u < 7; u++) {
          const size_t r0 = cuts[u][0], r1 = cuts[u][1] < M ? cuts[u][1] : M;
          if (r0 >= r1)
            continue;
          for (size_t i = 0; i < M * N; i++)
            part[i] = 777.0f;
          lpq__kern_sgemm_packed_rows(M, r0, r1, N, K, Ap, Bp, part + r0 * N, N, NULL);
          for (size_t i = 0; i < M; i++)
            for (size_t j = 0; j < N; j++) {
              const int in = i >= r0 && i < r1;
              cr_assert(in ? memcmp(&part[i * N + j], &whole[i * N + j], sizeof *part) == 0
                           : part[i * N + j] == 777.0f,
                        "M %zu N %zu K %zu rows [%zu, %zu): C[%zu][%zu] %.9g, whole %.9g", M, N,
                        K, r0, r1, i, j, part[i * N + j], whole[i * N + j]);
            }
        }
        free(A), free(B), free(Bp), free(Ap), free(whole), free(part);
      }
}

ISA_TESTS(sgemm, rows_equal_the_whole_product, avx2_rows_equal_the_whole_product,
          generic_has_no_packed_rows, rows_cases)

ISA_TESTS(sgemm, equals_reference_and_whole_tiles, avx2_equals_reference_and_whole_tiles,
          generic_equals_reference, cases)

/* The threads of this process (entries of /proc/self/task). */
static int threads_now(void) {
  DIR *d = opendir("/proc/self/task");
  cr_assert_not_null(d);
  int n = 0;
  for (struct dirent *e; (e = readdir(d));)
    n += e->d_name[0] != '.';
  closedir(d);
  return n;
}

/* C = A x B on OpenBLAS, 256 x 256 x 256 (large enough for its threads), checked at one entry. */
static void blas_product(void) {
  enum { N = 256 };
  float *A = malloc(N * N * sizeof *A), *B = malloc(N * N * sizeof *B), *C = malloc(N * N * 4);
  for (int i = 0; i < N * N; i++)
    A[i] = (float)(i % 7) - 3.0f, B[i] = (float)(i % 5) - 2.0f;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, N, N, 1.0f, A, N, B, N, 0.0f, C, N);
  double want = 0;
  for (int q = 0; q < N; q++)
    want += (double)A[3 * N + q] * B[q * N + 5];
  cr_assert_float_eq(C[3 * N + 5], (float)want, 1e-3, "C[3][5] = %g, want %g", C[3 * N + 5], want);
  free(A), free(B), free(C);
}

Test(sgemm, blas_single_thread_stops_openblas_threads) {
  openblas_set_num_threads(2);
  blas_product(); /* the pthread build runs this on its server thread too */
  const int with = threads_now();
  lpq_blas_single_thread();
  const int after = threads_now();
  /* the pthread build has at least one server thread to stop; a serial or OpenMP one none */
  if (dlsym(RTLD_DEFAULT, "blas_thread_shutdown_"))
    cr_assert_lt(after, with, "%d threads after lpq_blas_single_thread, %d before", after, with);
  else
    cr_assert_eq(after, with, "%d threads after lpq_blas_single_thread, %d before", after, with);
  blas_product(); /* on the caller's thread now */
  cr_assert_eq(threads_now(), after, "a product after lpq_blas_single_thread started threads");
}
