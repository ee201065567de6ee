/* tests/test_graph_gemm.c: Gemm against a plain reference loop: B constant and packed at load
** for lpq's kernel (transB 0 and 1, row counts off and on the 8-row panel, column counts off the
** 32-column panel, long K), C as a row, a matrix or absent, alpha and beta, a fused Relu, one and
** two threads, and with a weight hook (B swapped and packed per run; the same weight through the
** hook gives the plain run's bits). Each case is a
** one-node ONNX model built here and packed; AVX-512, LPQ_ISA=avx2 and LPQ_ISA=generic. */
#include "engine/engine.h"
#include "onnx/onnx.pb-c.h"
#include "tests/isa_tests.h"
#include "tests/onnx_build.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct gemm_case_t {
  int64_t m, k, n;
  int trans_b, c_kind; /* c_kind: 0 none, 1 a row [N], 2 a matrix [M, N] */
  float alpha, beta;
  int relu;
} gemm_case_t;

/* y = relu?(alpha * a x b + beta * c) by the definition (b as stored: [N, K] when trans_b). */
static void reference(const gemm_case_t *t, const float *a, const float *b, const float *c,
                      float *y) {
  for (int64_t i = 0; i < t->m; i++)
    for (int64_t j = 0; j < t->n; j++) {
      double acc = 0;
      for (int64_t q = 0; q < t->k; q++)
        acc += (double)a[i * t->k + q] * (t->trans_b ? b[j * t->k + q] : b[q * t->n + j]);
      acc *= t->alpha;
      if (t->c_kind)
        acc += (double)t->beta * c[t->c_kind == 1 ? j : i * t->n + j];
      y[i * t->n + j] = (float)(t->relu && acc < 0 ? 0 : acc);
    }
}

static void expect_close(const gemm_case_t *t, const float *got, const float *want, size_t ny,
                         int threads, int hooked) {
  for (size_t i = 0; i < ny; i++)
    cr_assert(fabsf(got[i] - want[i]) <= 1e-4f * (1.0f + fabsf(want[i])),
              "m%lld k%lld n%lld transB %d C %d alpha %g beta %g relu %d threads %d hooked %d: "
              "y[%zu] = %g, want %g", (long long)t->m, (long long)t->k, (long long)t->n,
              t->trans_b, t->c_kind, t->alpha, t->beta, t->relu, threads, hooked, i, got[i],
              want[i]);
}

static void check(const gemm_case_t *t, unsigned seed) {
  const size_t na = (size_t)(t->m * t->k), nb = (size_t)(t->k * t->n), ny = (size_t)(t->m * t->n);
  float *a = malloc(na * 4), *b = malloc(nb * 4), *b2 = malloc(nb * 4), *c = malloc(ny * 4);
  float *want = malloc(ny * 4), *want2 = malloc(ny * 4), *got = malloc(ny * 4);
  for (size_t i = 0; i < na; i++)
    a[i] = test_frand(&seed);
  for (size_t i = 0; i < nb; i++)
    b[i] = test_frand(&seed) * 0.3f, b2[i] = 0.5f * b[i] + 0.01f * test_frand(&seed);
  for (size_t i = 0; i < ny; i++)
    c[i] = test_frand(&seed);
  reference(t, a, b, c, want);
  reference(t, a, b2, c, want2);
  /* the hook's weight in the layer's layout, [N, K] (a Gemm's B is transposed at load) */
  float *b2nk = malloc(nb * 4), *bnk = malloc(nb * 4), *plain = malloc(ny * 4);
  for (int64_t j = 0; j < t->n; j++)
    for (int64_t q = 0; q < t->k; q++) {
      b2nk[j * t->k + q] = t->trans_b ? b2[j * t->k + q] : b2[q * t->n + j];
      bnk[j * t->k + q] = t->trans_b ? b[j * t->k + q] : b[q * t->n + j];
    }

  int64_t ad[2] = {t->m, t->k}, yd[2] = {t->m, t->n};
  int64_t bd[2] = {t->trans_b ? t->n : t->k, t->trans_b ? t->k : t->n};
  int64_t cd[2] = {t->c_kind == 2 ? t->m : t->n, t->n};
  Onnx__TensorShapeProto__Dimension d[2][2], *dp[2][2];
  Onnx__TensorShapeProto sh[2];
  Onnx__TypeProto__Tensor tt[2];
  Onnx__TypeProto tp[2];
  Onnx__ValueInfoProto vi[2], *ins[1], *outs[1];
  ins[0] = test_value_info("a", 2, ad, d[0], dp[0], &sh[0], &tt[0], &tp[0], &vi[0]);
  outs[0] = test_value_info("y", 2, yd, d[1], dp[1], &sh[1], &tt[1], &tp[1], &vi[1]);
  Onnx__TensorProto bt = ONNX__TENSOR_PROTO__INIT, ct = ONNX__TENSOR_PROTO__INIT, *inits[2];
  bt.name = "B", bt.n_dims = 2, bt.dims = bd, bt.has_data_type = 1, bt.data_type = 1;
  bt.has_raw_data = 1, bt.raw_data.len = nb * 4, bt.raw_data.data = (uint8_t *)b;
  ct.name = "C", ct.n_dims = t->c_kind == 2 ? 2 : 1, ct.dims = t->c_kind == 2 ? cd : cd + 1;
  ct.has_data_type = 1, ct.data_type = 1, ct.has_raw_data = 1;
  ct.raw_data.len = (size_t)(t->c_kind == 2 ? t->m * t->n : t->n) * 4;
  ct.raw_data.data = (uint8_t *)c;
  inits[0] = &bt, inits[1] = &ct;
  Onnx__AttributeProto at[3], *atp[3];
  const char *an[3] = {"transB", "alpha", "beta"};
  for (int i = 0; i < 3; i++) {
    onnx__attribute_proto__init(&at[i]);
    at[i].name = (char *)an[i], at[i].has_type = 1, atp[i] = &at[i];
  }
  at[0].type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT, at[0].has_i = 1, at[0].i = t->trans_b;
  at[1].type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT, at[1].has_f = 1, at[1].f = t->alpha;
  at[2].type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT, at[2].has_f = 1, at[2].f = t->beta;
  Onnx__NodeProto gemm = ONNX__NODE_PROTO__INIT, relu = ONNX__NODE_PROTO__INIT, *nodes[2];
  char *gin[3] = {"a", "B", "C"}, *gout[1] = {"g"}, *rin[1] = {"g"}, *rout[1] = {"y"};
  gemm.op_type = "Gemm", gemm.n_input = t->c_kind ? 3 : 2, gemm.input = gin;
  gemm.n_output = 1, gemm.output = gout, gemm.n_attribute = 3, gemm.attribute = atp;
  relu.op_type = t->relu ? "Relu" : "Identity", relu.n_input = 1, relu.input = rin;
  relu.n_output = 1, relu.output = rout;
  nodes[0] = &gemm, nodes[1] = &relu;
  Onnx__GraphProto gp = ONNX__GRAPH_PROTO__INIT;
  gp.name = "gemm", gp.n_node = 2, gp.node = nodes;
  gp.n_initializer = t->c_kind ? 2 : 1, gp.initializer = inits;
  gp.n_input = 1, gp.input = ins, gp.n_output = 1, gp.output = outs;
  size_t len;
  uint8_t *buf = test_pack_model(&gp, &len);

  for (int threads = 1; threads <= 2; threads++) {
    lpq_error_t err;
    lpq_graph_t *g = lpq_graph_load_buffer(buf, len, "gemm.onnx", 0, &err);
    cr_assert_not_null(g, "%s", err.msg);
    lpq_exec_t *ex = lpq_exec_new(g, &err);
    cr_assert_not_null(ex, "%s", err.msg);
    cr_assert_eq(lpq_exec_set_threads(ex, threads, &err), 0, "%s", err.msg);
    const void *inputs[1] = {a};
    void *outputs[1] = {got};
    cr_assert_eq(lpq_exec_run_multi(ex, inputs, outputs, NULL, &err), 0, "%s", err.msg);
    expect_close(t, got, want, ny, threads, 0);
    const lpq_hooks_t hooks = {.user = b2nk, .weight = test_swap_weight};
    cr_assert_eq(lpq_exec_run_multi(ex, inputs, outputs, &hooks, &err), 0, "%s", err.msg);
    expect_close(t, got, want2, ny, threads, 1);
    /* and back: the packed B again, not the hook's */
    cr_assert_eq(lpq_exec_run_multi(ex, inputs, outputs, NULL, &err), 0, "%s", err.msg);
    expect_close(t, got, want, ny, threads, 0);
    /* a hook returning the same weight: the same bits as the plain run (lpq eval against lpq
    ** run on an export) */
    memcpy(plain, got, ny * 4);
    const lpq_hooks_t same = {.user = bnk, .weight = test_swap_weight};
    cr_assert_eq(lpq_exec_run_multi(ex, inputs, outputs, &same, &err), 0, "%s", err.msg);
    cr_assert_eq(memcmp(plain, got, ny * 4), 0, "m%lld k%lld n%lld threads %d: hooked with the "
                 "same weight differs from the plain run", (long long)t->m, (long long)t->k,
                 (long long)t->n, threads);
    lpq_exec_free(&ex);
    lpq_graph_free(&g);
  }
  free(buf), free(a), free(b), free(b2), free(b2nk), free(bnk), free(plain), free(c);
  free(want), free(want2), free(got);
}

static void cases(void) {
  static const int64_t ms[] = {1, 3, 8, 11};
  static const int64_t kn[][2] = {{5, 1}, {37, 33}, {300, 70}, {1280, 100}};
  unsigned seed = 5;
  int count = 0;
  for (size_t mi = 0; mi < 4; mi++)
    for (size_t ki = 0; ki < 4; ki++)
      for (int tb = 0; tb <= 1; tb++) {
        const int ck = (int)((mi + ki + (size_t)tb) % 3);
        const gemm_case_t t = {ms[mi], kn[ki][0], kn[ki][1], tb, ck,
                               ki == 1 ? 0.5f : 1.0f, ki == 2 ? 2.0f : 1.0f, (int)(mi % 2)};
        check(&t, seed++);
        count++;
      }
  cr_assert_eq(count, 32);
}

TestSuite(graph_gemm, .timeout = 300);

ISA_TESTS(graph_gemm, packed_equals_reference_and_hooked,
          avx2_packed_equals_reference_and_hooked,
          generic_equals_reference_and_hooked, cases)
