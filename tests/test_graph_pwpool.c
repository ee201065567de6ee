/* tests/test_graph_pwpool.c: a 1x1 conv [+ Relu] whose output only a GlobalAveragePool reads,
** fused on runs without hooks (engine/ops_dwfuse.c: the conv's output never written, each
** task's channel blocks pooled from a cached tile). The fused run must equal a reference loop
** in double, and the hooked run (node by node, the weight swapped) its own reference, over
** channel counts off the 8-row and 128-row blocks and the 32-column panels, maps of 1x1 to
** 14x14, batch 1 to 5, images split over several tasks (a small band), one and two threads;
** AVX-512, LPQ_ISA=avx2 and LPQ_ISA=generic (no fusion there: the plain nodes). */
#include "engine/engine.h"
#include "engine/engine_internal.h"
#include "onnx/onnx.pb-c.h"
#include "tests/isa_tests.h"
#include "tests/onnx_build.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct pw_case_t {
  int64_t n, c, m, h, w;
  int relu;
  int64_t band; /* lpq__dwfuse_band_floats at load (0: the default) */
} pw_case_t;

/* y[n][m] = mean over the map of relu?(w x + b). */
static void reference(const pw_case_t *t, const float *x, const float *w, const float *b,
                      float *y) {
  const int64_t HW = t->h * t->w;
  for (int64_t n = 0; n < t->n; n++)
    for (int64_t m = 0; m < t->m; m++) {
      double sum = 0;
      for (int64_t q = 0; q < HW; q++) {
        double acc = b[m];
        for (int64_t c = 0; c < t->c; c++)
          acc += (double)w[m * t->c + c] * x[(n * t->c + c) * HW + q];
        sum += t->relu && acc < 0 ? 0 : acc;
      }
      y[n * t->m + m] = (float)(sum / (double)HW);
    }
}

static int fused_nodes(const lpq_graph_t *g) {
  int count = 0;
  for (size_t k = 0; k < g->nnodes; k++)
    count += !g->nodes[k].dead && g->nodes[k].fuse != NULL;
  return count;
}

static void expect_close(const pw_case_t *t, const float *got, const float *want, int threads,
                         int hooked) {
  for (int64_t i = 0; i < t->n * t->m; i++)
    cr_assert(fabsf(got[i] - want[i]) <= 1e-4f * (1.0f + fabsf(want[i])),
              "n%lld c%lld m%lld %lldx%lld relu %d band %lld threads %d hooked %d: y[%lld] = "
              "%g, want %g", (long long)t->n, (long long)t->c, (long long)t->m, (long long)t->h,
              (long long)t->w, t->relu, (long long)t->band, threads, hooked, (long long)i,
              got[i], want[i]);
}

static void check(const pw_case_t *t, unsigned seed) {
  const size_t nx = (size_t)(t->n * t->c * t->h * t->w), nw = (size_t)(t->m * t->c);
  const size_t ny = (size_t)(t->n * t->m);
  float *x = malloc(nx * 4), *w = malloc(nw * 4), *w2 = malloc(nw * 4), *b = malloc(t->m * 4);
  float *want = malloc(ny * 4), *want2 = malloc(ny * 4), *got = malloc(ny * 4);
  for (size_t i = 0; i < nx; i++)
    x[i] = test_frand(&seed);
  for (size_t i = 0; i < nw; i++)
    w[i] = test_frand(&seed) * 0.3f, w2[i] = 0.5f * w[i] + 0.01f * test_frand(&seed);
  for (int64_t i = 0; i < t->m; i++)
    b[i] = test_frand(&seed) * 0.1f;
  reference(t, x, w, b, want);
  reference(t, x, w2, b, want2);

  int64_t xd[4] = {t->n, t->c, t->h, t->w}, yd[4] = {t->n, t->m, 1, 1};
  int64_t wd[4] = {t->m, t->c, 1, 1}, bd[1] = {t->m};
  test_io_t io;
  Onnx__TensorProto wt = ONNX__TENSOR_PROTO__INIT, bt = ONNX__TENSOR_PROTO__INIT, *inits[2];
  wt.name = "W", wt.n_dims = 4, wt.dims = wd, wt.has_data_type = 1, wt.data_type = 1;
  wt.has_raw_data = 1, wt.raw_data.len = nw * 4, wt.raw_data.data = (uint8_t *)w;
  bt.name = "B", bt.n_dims = 1, bt.dims = bd, bt.has_data_type = 1, bt.data_type = 1;
  bt.has_raw_data = 1, bt.raw_data.len = (size_t)t->m * 4, bt.raw_data.data = (uint8_t *)b;
  inits[0] = &wt, inits[1] = &bt;
  Onnx__NodeProto conv = ONNX__NODE_PROTO__INIT, relu = ONNX__NODE_PROTO__INIT;
  Onnx__NodeProto gap = ONNX__NODE_PROTO__INIT, *nodes[3];
  char *cin[3] = {"x", "W", "B"}, *cout[1] = {t->relu ? "c" : "r"}, *rin[1] = {"c"};
  char *rout[1] = {"r"};
  char *gin[1] = {"r"}, *gout[1] = {"y"};
  conv.op_type = "Conv", conv.n_input = 3, conv.input = cin, conv.n_output = 1;
  conv.output = cout;
  relu.op_type = "Relu", relu.n_input = 1, relu.input = rin;
  relu.n_output = 1, relu.output = rout;
  gap.op_type = "GlobalAveragePool", gap.n_input = 1, gap.input = gin, gap.n_output = 1;
  gap.output = gout;
  size_t nn = 0; /* Conv [-> Relu] -> GlobalAveragePool */
  nodes[nn++] = &conv;
  if (t->relu)
    nodes[nn++] = &relu;
  nodes[nn++] = &gap;
  Onnx__GraphProto gp = ONNX__GRAPH_PROTO__INIT;
  gp.name = "pwpool", gp.n_node = nn, gp.node = nodes, gp.n_initializer = 2;
  gp.initializer = inits;
  test_io(&io, xd, yd, &gp);
  size_t len;
  uint8_t *buf = test_pack_model(&gp, &len);

  for (int threads = 1; threads <= 2; threads++) {
    lpq_error_t err;
    const int64_t saved = lpq__dwfuse_band_floats;
    if (t->band)
      lpq__dwfuse_band_floats = t->band;
    lpq_graph_t *g = lpq_graph_load_buffer(buf, len, "pwpool.onnx", 0, &err);
    lpq__dwfuse_band_floats = saved;
    cr_assert_not_null(g, "%s", err.msg);
    cr_assert_eq(fused_nodes(g), lpq__sgemm_packs_a() ? 1 : 0, "conv + pool fused: %d",
                 fused_nodes(g));
    lpq_exec_t *ex = lpq_exec_new(g, &err);
    cr_assert_not_null(ex, "%s", err.msg);
    cr_assert_eq(lpq_exec_set_threads(ex, threads, &err), 0, "%s", err.msg);
    const void *inputs[1] = {x};
    void *outputs[1] = {got};
    cr_assert_eq(lpq_exec_run_multi(ex, inputs, outputs, NULL, &err), 0, "%s", err.msg);
    expect_close(t, got, want, threads, 0);
    /* a hook returning the same weight runs node by node: the same bits as the fused run */
    float *plain = malloc(ny * 4);
    memcpy(plain, got, ny * 4);
    const lpq_hooks_t same = {.user = w, .weight = test_swap_weight};
    cr_assert_eq(lpq_exec_run_multi(ex, inputs, outputs, &same, &err), 0, "%s", err.msg);
    cr_assert_eq(memcmp(plain, got, ny * 4), 0, "n%lld c%lld m%lld %lldx%lld threads %d: node "
                 "by node differs from the fused run", (long long)t->n, (long long)t->c,
                 (long long)t->m, (long long)t->h, (long long)t->w, threads);
    free(plain);
    const lpq_hooks_t hooks = {.user = w2, .weight = test_swap_weight};
    cr_assert_eq(lpq_exec_run_multi(ex, inputs, outputs, &hooks, &err), 0, "%s", err.msg);
    expect_close(t, got, want2, threads, 1);
    lpq_exec_free(&ex);
    lpq_graph_free(&g);
  }
  free(buf), free(x), free(w), free(w2), free(b), free(want), free(want2), free(got);
}

static void cases(void) {
  static const pw_case_t list[] = {
      /* n, c, m, h, w, relu, band */
      {1, 3, 1, 1, 1, 1, 0},     {3, 37, 13, 7, 7, 1, 0},  {3, 20, 130, 5, 3, 0, 0},
      {2, 64, 300, 7, 7, 1, 0},  {1, 8, 257, 14, 14, 0, 0}, {5, 16, 40, 3, 3, 1, 320},
      {4, 9, 129, 6, 5, 1, 300}, {3, 33, 17, 2, 9, 0, 600},
  };
  for (size_t i = 0; i < sizeof list / sizeof list[0]; i++)
    check(&list[i], 31 + (unsigned)i);
}

TestSuite(graph_pwpool, .timeout = 300);

ISA_TESTS(graph_pwpool, fused_equals_reference_and_hooked,
          avx2_fused_equals_reference_and_hooked,
          generic_equals_reference_and_hooked, cases)
