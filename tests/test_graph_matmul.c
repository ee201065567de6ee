/* tests/test_graph_matmul.c: MatMul with a constant weight (a transformer's linear layer) against
** a plain reference loop: the weight packed at load for lpq's kernel, A of rank 2 and 3 (the
** rows of every batch as one product), row counts off and on the 8-row panel and over several
** 128-row blocks, column counts off the 32-column panel, long K; one, two and three threads
** give the same bits; a weight hook (the weight swapped and packed per run) gives the reference
** of its weight, and the same weight through the hook the plain run's bits. AVX-512,
** LPQ_ISA=avx2 and LPQ_ISA=generic (OpenBLAS). */
#include "engine/engine.h"
#include "onnx/onnx.pb-c.h"
#include "tests/isa_tests.h"
#include "tests/onnx_build.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct mm_case_t {
  int64_t batch, m, k, n; /* A [batch, m, k] (rank 2 when batch is 0), B [k, n] */
} mm_case_t;

/* y = a x b by the definition (b [K, N]) over all batch x m rows. */
static void reference(const mm_case_t *t, const float *a, const float *b, float *y) {
  const int64_t rows = (t->batch ? t->batch : 1) * t->m;
  for (int64_t i = 0; i < rows; i++)
    for (int64_t j = 0; j < t->n; j++) {
      double acc = 0;
      for (int64_t q = 0; q < t->k; q++)
        acc += (double)a[i * t->k + q] * b[q * t->n + j];
      y[i * t->n + j] = (float)acc;
    }
}

static void expect_close(const mm_case_t *t, const float *got, const float *want, size_t ny,
                         int threads, int hooked) {
  for (size_t i = 0; i < ny; i++)
    cr_assert(fabsf(got[i] - want[i]) <= 1e-4f * (1.0f + fabsf(want[i])),
              "batch %lld m%lld k%lld n%lld threads %d hooked %d: y[%zu] = %g, want %g",
              (long long)t->batch, (long long)t->m, (long long)t->k, (long long)t->n, threads,
              hooked, i, got[i], want[i]);
}

static void check(const mm_case_t *t, unsigned seed) {
  const int64_t rows = (t->batch ? t->batch : 1) * t->m;
  const size_t na = (size_t)(rows * t->k), nb = (size_t)(t->k * t->n), ny = (size_t)(rows * t->n);
  float *a = malloc(na * 4), *b = malloc(nb * 4), *b2 = malloc(nb * 4);
  float *want = malloc(ny * 4), *want2 = malloc(ny * 4), *got = malloc(ny * 4);
  float *one = malloc(ny * 4), *plain = malloc(ny * 4);
  for (size_t i = 0; i < na; i++)
    a[i] = test_frand(&seed);
  for (size_t i = 0; i < nb; i++)
    b[i] = test_frand(&seed) * 0.3f, b2[i] = 0.5f * b[i] + 0.01f * test_frand(&seed);
  reference(t, a, b, want);
  reference(t, a, b2, want2);
  /* the hook's weight in the layer's layout, [N, K] (a MatMul's weight is transposed at load) */
  float *b2nk = malloc(nb * 4), *bnk = malloc(nb * 4);
  for (int64_t j = 0; j < t->n; j++)
    for (int64_t q = 0; q < t->k; q++)
      b2nk[j * t->k + q] = b2[q * t->n + j], bnk[j * t->k + q] = b[q * t->n + j];

  const int rank = t->batch ? 3 : 2;
  int64_t ad[3] = {t->batch, t->m, t->k}, yd[3] = {t->batch, t->m, t->n}, bd[2] = {t->k, t->n};
  Onnx__TensorShapeProto__Dimension d[2][3], *dp[2][3];
  Onnx__TensorShapeProto sh[2];
  Onnx__TypeProto__Tensor tt[2];
  Onnx__TypeProto tp[2];
  Onnx__ValueInfoProto vi[2], *ins[1], *outs[1];
  ins[0] = test_value_info("a", rank, ad + 3 - rank, d[0], dp[0], &sh[0], &tt[0], &tp[0], &vi[0]);
  outs[0] = test_value_info("y", rank, yd + 3 - rank, d[1], dp[1], &sh[1], &tt[1], &tp[1], &vi[1]);
  Onnx__TensorProto bt = ONNX__TENSOR_PROTO__INIT, *inits[1] = {&bt};
  bt.name = "B", bt.n_dims = 2, bt.dims = bd, bt.has_data_type = 1, bt.data_type = 1;
  bt.has_raw_data = 1, bt.raw_data.len = nb * 4, bt.raw_data.data = (uint8_t *)b;
  Onnx__NodeProto mm = ONNX__NODE_PROTO__INIT, *nodes[1] = {&mm};
  char *in[2] = {"a", "B"}, *out[1] = {"y"};
  mm.op_type = "MatMul", mm.n_input = 2, mm.input = in, mm.n_output = 1, mm.output = out;
  Onnx__GraphProto gp = ONNX__GRAPH_PROTO__INIT;
  gp.name = "matmul", gp.n_node = 1, gp.node = nodes, gp.n_initializer = 1, gp.initializer = inits;
  gp.n_input = 1, gp.input = ins, gp.n_output = 1, gp.output = outs;
  size_t len;
  uint8_t *buf = test_pack_model(&gp, &len);

  /* lpq's kernel (packed at load) where the engine has one, else OpenBLAS */
  const int packed = strcmp(lpq_engine_isa(), "generic") != 0;
  lpq_error_t err;
  lpq_graph_t *g = lpq_graph_load_buffer(buf, len, "matmul.onnx", 0, &err);
  cr_assert_not_null(g, "%s", err.msg);
  cr_assert_eq(lpq_graph_num_layers(g), 1, "the MatMul is a quantizable layer");
  for (int threads = 1; threads <= 3; threads++) {
    lpq_exec_t *ex = lpq_exec_new(g, &err);
    cr_assert_not_null(ex, "%s", err.msg);
    cr_assert_eq(lpq_exec_set_threads(ex, threads, &err), 0, "%s", err.msg);
    const void *inputs[1] = {a};
    void *outputs[1] = {got};
    cr_assert_eq(lpq_exec_run_multi(ex, inputs, outputs, NULL, &err), 0, "%s", err.msg);
    expect_close(t, got, want, ny, threads, 0);
    memcpy(plain, got, ny * 4);
    if (threads == 1)
      memcpy(one, got, ny * 4);
    else if (packed) /* the split over threads changes no sum's order */
      cr_assert_eq(memcmp(one, got, ny * 4), 0, "batch %lld m%lld k%lld n%lld: %d threads "
                   "differ from one", (long long)t->batch, (long long)t->m, (long long)t->k,
                   (long long)t->n, threads);
    else /* OpenBLAS on fewer rows a call: close, not always the same bits */
      expect_close(t, got, one, ny, threads, 0);
    const lpq_hooks_t hooks = {.user = b2nk, .weight = test_swap_weight};
    cr_assert_eq(lpq_exec_run_multi(ex, inputs, outputs, &hooks, &err), 0, "%s", err.msg);
    expect_close(t, got, want2, ny, threads, 1);
    /* and back: the weight packed at load again, not the hook's */
    cr_assert_eq(lpq_exec_run_multi(ex, inputs, outputs, NULL, &err), 0, "%s", err.msg);
    cr_assert_eq(memcmp(plain, got, ny * 4), 0, "threads %d: the plain run after a hooked "
                 "one changed", threads);
    /* a hook returning the same weight: the plain run's bits */
    const lpq_hooks_t same = {.user = bnk, .weight = test_swap_weight};
    cr_assert_eq(lpq_exec_run_multi(ex, inputs, outputs, &same, &err), 0, "%s", err.msg);
    cr_assert_eq(memcmp(plain, got, ny * 4), 0, "batch %lld m%lld k%lld n%lld threads %d: "
                 "hooked with the same weight differs from the plain run", (long long)t->batch,
                 (long long)t->m, (long long)t->k, (long long)t->n, threads);
    lpq_exec_free(&ex);
  }
  lpq_graph_free(&g);
  free(buf), free(a), free(b), free(b2), free(b2nk), free(bnk), free(plain), free(one);
  free(want), free(want2), free(got);
}

static void cases(void) {
  /* rows (batch x m): 1, 9, 24, 37, 144 (two blocks of 72), 300 (three of 104, the last 92) */
  static const mm_case_t t[] = {
      {0, 1, 5, 1},     {0, 9, 768, 70},  {3, 8, 37, 33},    {0, 37, 300, 100},
      {2, 72, 64, 257}, {3, 100, 96, 40}, {0, 300, 260, 65}, {4, 6, 1, 31},
  };
  unsigned seed = 9;
  for (size_t i = 0; i < sizeof t / sizeof *t; i++)
    check(&t[i], seed++);
}

TestSuite(graph_matmul, .timeout = 300);

ISA_TESTS(graph_matmul, packed_equals_reference_and_hooked,
          avx2_packed_equals_reference_and_hooked, generic_equals_reference_and_hooked, cases)
