/* tests/test_graph_split.c: the cheap element-wise ops (Relu, LeakyRelu, HardSigmoid, Sqrt, Neg,
** Reciprocal; engine/ops_unary.c) and the global pools (GlobalAveragePool, GlobalMaxPool;
** engine/ops_pool.c) split over the context's threads: on tensors of several tasks (and a last
** partial one), one and two threads equal a reference loop and each other bit for bit. Each is
** a one-node ONNX model built here. */
#include "engine/engine.h"
#include "onnx/onnx.pb-c.h"
#include "tests/onnx_build.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* One node op(x) of x's dims (4) to y's dims, with float attribute alpha (NAN: none). */
static lpq_graph_t *one_node(const char *op, const int64_t *xd, const int64_t *yd, float alpha) {
  test_io_t io;
  Onnx__AttributeProto a, *ap[1] = {&a};
  onnx__attribute_proto__init(&a);
  a.name = "alpha", a.has_type = 1, a.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
  a.has_f = 1, a.f = alpha;
  Onnx__NodeProto nd = ONNX__NODE_PROTO__INIT, *nodes[1] = {&nd};
  char *in[1] = {"x"}, *out[1] = {"y"};
  nd.op_type = (char *)op, nd.n_input = 1, nd.input = in, nd.n_output = 1, nd.output = out;
  nd.n_attribute = isnan(alpha) ? 0 : 1, nd.attribute = ap;
  Onnx__GraphProto gp = ONNX__GRAPH_PROTO__INIT;
  gp.name = "one", gp.n_node = 1, gp.node = nodes;
  test_io(&io, xd, yd, &gp);
  size_t len;
  uint8_t *buf = test_pack_model(&gp, &len);
  lpq_error_t err;
  lpq_graph_t *g = lpq_graph_load_buffer(buf, len, "one.onnx", 0, &err);
  free(buf);
  cr_assert_not_null(g, "%s: %s", op, err.msg);
  return g;
}

/* Runs g on x with 1 and 2 threads: both within tol of want (relative), and equal. */
static void run_both(const char *op, const lpq_graph_t *g, const float *x, const float *want,
                     size_t ny, float tol) {
  float *y[2] = {malloc(ny * 4), malloc(ny * 4)};
  cr_assert(y[0] && y[1]);
  for (int t = 0; t < 2; t++) {
    lpq_error_t err;
    lpq_exec_t *ex = lpq_exec_new(g, &err);
    cr_assert_not_null(ex, "%s", err.msg);
    cr_assert_eq(lpq_exec_set_threads(ex, t + 1, &err), 0, "%s", err.msg);
    cr_assert_eq(lpq_exec_run(ex, x, y[t], NULL, &err), 0, "%s: %s", op, err.msg);
    for (size_t i = 0; i < ny; i++)
      cr_assert(y[t][i] == want[i] || fabsf(y[t][i] - want[i]) <= tol * (1.0f + fabsf(want[i])),
                "%s, %d threads: y[%zu] = %g, want %g", op, t + 1, i, y[t][i], want[i]);
    lpq_exec_free(&ex);
  }
  cr_assert_eq(memcmp(y[0], y[1], ny * 4), 0, "%s: two threads differ from one", op);
  free(y[0]), free(y[1]);
}

Test(graph_split, cheap_unary_ops_over_threads) {
  const int64_t xd[4] = {3, 37, 41, 29}; /* 131,979 floats: 8 tasks of 16 Ki and a part */
  const size_t n = 3 * 37 * 41 * 29;
  float *x = malloc(n * 4), *want = malloc(n * 4);
  cr_assert(x && want);
  unsigned seed = 17;
  for (size_t i = 0; i < n; i++)
    x[i] = 4.0f * test_frand(&seed);
  static const char *ops[] = {"Relu", "LeakyRelu", "HardSigmoid", "Sqrt", "Neg", "Reciprocal"};
  for (int o = 0; o < 6; o++) {
    const float alpha = o == 1 ? 0.07f : o == 2 ? 0.25f : NAN;
    if (o == 3) /* Sqrt, and the ops after it, of magnitudes */
      for (size_t i = 0; i < n; i++)
        x[i] = fabsf(x[i]);
    for (size_t i = 0; i < n; i++) {
      const double v = x[i];
      want[i] = (float)(o == 0 ? (v > 0 ? v : 0)
                        : o == 1 ? (v >= 0 ? v : 0.07 * v)
                        : o == 2 ? fmin(1.0, fmax(0.0, 0.25 * v + 0.5))
                        : o == 3 ? sqrt(v)
                        : o == 4 ? -v
                                 : 1.0 / v);
    }
    lpq_graph_t *g = one_node(ops[o], xd, xd, alpha);
    run_both(ops[o], g, x, want, n, 1e-6f);
    lpq_graph_free(&g);
  }
  free(x), free(want);
}

Test(graph_split, global_pools_over_threads) {
  /* channels of 3 floats (many to a task), of 7,000 (9 to a task) and of 70,000 (one each) */
  static const int64_t shapes[][4] = {{5, 9001, 1, 3}, {2, 31, 70, 100}, {3, 5, 250, 280}};
  unsigned seed = 29;
  for (int s = 0; s < 3; s++)
    for (int mx = 0; mx < 2; mx++) {
      const int64_t *xd = shapes[s], yd[4] = {xd[0], xd[1], 1, 1};
      const size_t S = (size_t)(xd[2] * xd[3]), rows = (size_t)(xd[0] * xd[1]), n = rows * S;
      float *x = malloc(n * 4), *want = malloc(rows * 4);
      cr_assert(x && want);
      for (size_t i = 0; i < n; i++)
        x[i] = test_frand(&seed);
      for (size_t r = 0; r < rows; r++) {
        double acc = mx ? -INFINITY : 0.0;
        for (size_t i = 0; i < S; i++)
          acc = mx ? fmax(acc, x[r * S + i]) : acc + x[r * S + i];
        want[r] = (float)(mx ? acc : acc / (double)S);
      }
      const char *op = mx ? "GlobalMaxPool" : "GlobalAveragePool";
      lpq_graph_t *g = one_node(op, xd, yd, NAN);
      run_both(op, g, x, want, rows, 1e-4f);
      lpq_graph_free(&g);
      free(x), free(want);
    }
}
