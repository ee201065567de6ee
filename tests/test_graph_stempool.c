/* tests/test_graph_stempool.c: a direct conv (few input channels, a window of 5x5 or more: an
** image network's stem) + Relu whose output only a MaxPool reads, fused on runs without hooks
** (engine/ops_conv_direct.c lpq__direct_pool_run: the pooled rows made as the conv rows are, the
** conv's output never written). The fused run must equal a reference loop in double and, bit
** for bit, the hooked run (node by node), over odd maps and channel counts, pooling windows of
** 2x3 to 5x5 with strides 1 and 2, padding and ceil_mode, batch 1 to 3 (images split into
** slices of pooled rows), one and two threads; AVX-512, LPQ_ISA=avx2 and LPQ_ISA=generic (no
** direct conv there: no fusion). A MaxPool the row path does not take (width stride 3) stays
** a node of its own. */
#include "engine/engine.h"
#include "engine/engine_internal.h"
#include "onnx/onnx.pb-c.h"
#include "tests/isa_tests.h"
#include "tests/onnx_build.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct sp_case_t {
  int64_t n, c, m, h, w;
  int64_t ck, cs;         /* conv window (square, pads ck / 2) and stride */
  int64_t kh, kw, ps, pp; /* pool window, stride (both axes) and pads (all four) */
  int ceil, fusable;      /* ceil_mode; whether the pool is one the fused run takes */
} sp_case_t;

static int64_t conv_dim(const sp_case_t *t, int64_t in) {
  return (in + 2 * (t->ck / 2) - t->ck) / t->cs + 1;
}

/* relu(conv(x)) in double, then the max over each window of the pooled shape oh x ow (the
** graph's: ceil_mode's rule is the loader's). */
static void reference(const sp_case_t *t, const float *x, const float *w, const float *b,
                      int64_t oh, int64_t ow, float *y) {
  const int64_t CH = conv_dim(t, t->h), CW = conv_dim(t, t->w), pad = t->ck / 2;
  double *c = malloc((size_t)(t->n * t->m * CH * CW) * sizeof *c);
  cr_assert_not_null(c);
  for (int64_t n = 0; n < t->n; n++)
    for (int64_t m = 0; m < t->m; m++)
      for (int64_t cy = 0; cy < CH; cy++)
        for (int64_t cx = 0; cx < CW; cx++) {
          double acc = b[m];
          for (int64_t ci = 0; ci < t->c; ci++)
            for (int64_t ky = 0; ky < t->ck; ky++)
              for (int64_t kx = 0; kx < t->ck; kx++) {
                const int64_t iy = cy * t->cs - pad + ky, ix = cx * t->cs - pad + kx;
                if (iy >= 0 && iy < t->h && ix >= 0 && ix < t->w)
                  acc += (double)w[((m * t->c + ci) * t->ck + ky) * t->ck + kx] *
                         x[((n * t->c + ci) * t->h + iy) * t->w + ix];
              }
          c[((n * t->m + m) * CH + cy) * CW + cx] = acc < 0 ? 0 : acc;
        }
  for (int64_t nm = 0; nm < t->n * t->m; nm++)
    for (int64_t py = 0; py < oh; py++)
      for (int64_t px = 0; px < ow; px++) {
        double mx = -INFINITY;
        for (int64_t ky = 0; ky < t->kh; ky++)
          for (int64_t kx = 0; kx < t->kw; kx++) {
            const int64_t cy = py * t->ps - t->pp + ky, cx = px * t->ps - t->pp + kx;
            if (cy >= 0 && cy < CH && cx >= 0 && cx < CW && c[(nm * CH + cy) * CW + cx] > mx)
              mx = c[(nm * CH + cy) * CW + cx];
          }
        y[(nm * oh + py) * ow + px] = (float)mx;
      }
  free(c);
}

static Onnx__AttributeProto *ints_attr(Onnx__AttributeProto *a, const char *name, size_t n,
                                       int64_t *v) {
  onnx__attribute_proto__init(a);
  a->name = (char *)name, a->has_type = 1, a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
  a->n_ints = n, a->ints = v;
  return a;
}

/* Conv -> Relu -> MaxPool as a serialized model. */
static uint8_t *build(const sp_case_t *t, const float *w, const float *b, size_t *len) {
  const int64_t pad = t->ck / 2;
  int64_t xd[4] = {t->n, t->c, t->h, t->w}, yd[4] = {t->n, t->m, 1, 1}; /* y: the loader's */
  int64_t wd[4] = {t->m, t->c, t->ck, t->ck}, bd[1] = {t->m};
  test_io_t io;
  Onnx__TensorProto wt = ONNX__TENSOR_PROTO__INIT, bt = ONNX__TENSOR_PROTO__INIT, *inits[2];
  wt.name = "W", wt.n_dims = 4, wt.dims = wd, wt.has_data_type = 1, wt.data_type = 1;
  wt.has_raw_data = 1, wt.raw_data.len = (size_t)(t->m * t->c * t->ck * t->ck) * 4;
  wt.raw_data.data = (uint8_t *)w;
  bt.name = "B", bt.n_dims = 1, bt.dims = bd, bt.has_data_type = 1, bt.data_type = 1;
  bt.has_raw_data = 1, bt.raw_data.len = (size_t)t->m * 4, bt.raw_data.data = (uint8_t *)b;
  inits[0] = &wt, inits[1] = &bt;
  Onnx__AttributeProto ca[2], *cap[2], pa[4], *pap[4];
  int64_t cst[2] = {t->cs, t->cs}, cpd[4] = {pad, pad, pad, pad};
  int64_t pks[2] = {t->kh, t->kw}, pst[2] = {t->ps, t->ps}, ppd[4] = {t->pp, t->pp, t->pp, t->pp};
  cap[0] = ints_attr(&ca[0], "strides", 2, cst), cap[1] = ints_attr(&ca[1], "pads", 4, cpd);
  pap[0] = ints_attr(&pa[0], "kernel_shape", 2, pks), pap[1] = ints_attr(&pa[1], "strides", 2, pst);
  pap[2] = ints_attr(&pa[2], "pads", 4, ppd);
  onnx__attribute_proto__init(&pa[3]);
  pa[3].name = "ceil_mode", pa[3].has_type = 1;
  pa[3].type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT, pa[3].has_i = 1, pa[3].i = t->ceil;
  pap[3] = &pa[3];
  Onnx__NodeProto nd[3], *nodes[3];
  char *cin[3] = {"x", "W", "B"}, *cout[1] = {"c"}, *rin[1] = {"c"}, *rout[1] = {"r"};
  char *pin[1] = {"r"}, *pout[1] = {"y"};
  for (int i = 0; i < 3; i++)
    onnx__node_proto__init(&nd[i]), nodes[i] = &nd[i];
  nd[0].op_type = "Conv", nd[0].n_input = 3, nd[0].input = cin, nd[0].n_output = 1;
  nd[0].output = cout, nd[0].n_attribute = 2, nd[0].attribute = cap;
  nd[1].op_type = "Relu", nd[1].n_input = 1, nd[1].input = rin, nd[1].n_output = 1;
  nd[1].output = rout;
  nd[2].op_type = "MaxPool", nd[2].n_input = 1, nd[2].input = pin, nd[2].n_output = 1;
  nd[2].output = pout, nd[2].n_attribute = 4, nd[2].attribute = pap;
  Onnx__GraphProto gp = ONNX__GRAPH_PROTO__INIT;
  gp.name = "stempool", gp.n_node = 3, gp.node = nodes, gp.n_initializer = 2;
  gp.initializer = inits;
  test_io(&io, xd, yd, &gp);
  io.tt[1].shape = NULL; /* y's shape: the loader's */
  return test_pack_model(&gp, len);
}

static int fused_nodes(const lpq_graph_t *g) {
  int count = 0;
  for (size_t k = 0; k < g->nnodes; k++)
    count += !g->nodes[k].dead && g->nodes[k].fuse != NULL;
  return count;
}

static void check(const sp_case_t *t, unsigned seed) {
  const size_t nx = (size_t)(t->n * t->c * t->h * t->w), nw = (size_t)(t->m * t->c * t->ck * t->ck);
  float *x = malloc(nx * 4), *xo = malloc(nx * 4), *w = malloc(nw * 4), *b = malloc(t->m * 4);
  cr_assert(x && xo && w && b);
  for (size_t i = 0; i < nx; i++)
    x[i] = test_frand(&seed), xo[i] = test_frand(&seed);
  for (size_t i = 0; i < nw; i++)
    w[i] = test_frand(&seed) * 0.3f;
  for (int64_t i = 0; i < t->m; i++)
    b[i] = test_frand(&seed) * 0.1f;
  size_t len;
  uint8_t *buf = build(t, w, b, &len);
  lpq_error_t err;
  lpq_graph_t *g = lpq_graph_load_buffer(buf, len, "stempool.onnx", 0, &err);
  cr_assert_not_null(g, "%s", err.msg);
  const gval_t *yv = gv(g, g->outputs[0]);
  cr_assert_eq(yv->ndim, 4);
  const int64_t oh = yv->shape[2], ow = yv->shape[3];
  const size_t ny = (size_t)(t->n * t->m * oh * ow);
  const int fused = t->fusable && lpq__isa() != LPQ_ISA_GENERIC;
  cr_assert_eq(fused_nodes(g), fused, "n%lld %lldx%lld pool %lldx%lld s%lld: fused %d, want %d",
               (long long)t->n, (long long)t->h, (long long)t->w, (long long)t->kh,
               (long long)t->kw, (long long)t->ps, fused_nodes(g), fused);
  float *want = malloc(ny * 4), *got = malloc(ny * 4), *hooked = malloc(ny * 4);
  cr_assert(want && got && hooked);
  reference(t, x, w, b, oh, ow, want);
  const lpq_hooks_t same = {.user = w, .weight = test_swap_weight}; /* node by node */
  for (int threads = 1; threads <= 2; threads++) {
    lpq_exec_t *ex = lpq_exec_new(g, &err);
    cr_assert_not_null(ex, "%s", err.msg);
    cr_assert_eq(lpq_exec_set_threads(ex, threads, &err), 0, "%s", err.msg);
    /* other inputs first: an output the fused run does not write keeps their value */
    cr_assert_eq(lpq_exec_run(ex, xo, got, &same, &err), 0, "%s", err.msg);
    cr_assert_eq(lpq_exec_run(ex, x, got, NULL, &err), 0, "%s", err.msg);
    cr_assert_eq(lpq_exec_run(ex, x, hooked, &same, &err), 0, "%s", err.msg);
    for (size_t i = 0; i < ny; i++)
      cr_assert(fabsf(got[i] - want[i]) <= 1e-4f * (1.0f + fabsf(want[i])),
                "n%lld c%lld m%lld %lldx%lld conv %lld/%lld pool %lldx%lld s%lld p%lld ceil %d "
                "threads %d: y[%zu] = %g, want %g", (long long)t->n, (long long)t->c,
                (long long)t->m, (long long)t->h, (long long)t->w, (long long)t->ck,
                (long long)t->cs, (long long)t->kh, (long long)t->kw, (long long)t->ps,
                (long long)t->pp, t->ceil, threads, i, got[i], want[i]);
    cr_assert_eq(memcmp(got, hooked, ny * 4), 0, "%lldx%lld pool %lldx%lld threads %d: the "
                 "fused run differs from node by node", (long long)t->h, (long long)t->w,
                 (long long)t->kh, (long long)t->kw, threads);
    lpq_exec_free(&ex);
  }
  lpq_graph_free(&g);
  free(buf), free(x), free(xo), free(w), free(b), free(want), free(got), free(hooked);
}

static void cases(void) {
  static const sp_case_t all[] = {
      /* n, c, m, h, w, conv k, s, pool kh, kw, s, pads, ceil, fusable */
      {1, 3, 7, 37, 37, 7, 2, 3, 3, 2, 1, 0, 1}, /* a ResNet stem, odd */
      {3, 3, 5, 30, 45, 5, 1, 3, 3, 2, 1, 0, 1},
      {2, 1, 4, 20, 20, 5, 2, 3, 3, 1, 1, 0, 1},
      {1, 4, 3, 26, 19, 7, 2, 2, 3, 1, 0, 0, 1},
      {3, 3, 6, 33, 33, 7, 2, 3, 3, 2, 0, 1, 1}, /* ceil_mode: a last window past the map */
      {2, 3, 9, 64, 70, 7, 2, 5, 5, 2, 2, 0, 1}, /* a 5-row window: a deeper ring */
      {1, 3, 4, 40, 40, 7, 2, 3, 3, 3, 0, 0, 0}, /* width stride 3: the MaxPool alone */
  };
  unsigned seed = 3;
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    check(&all[i], seed++);
}

TestSuite(graph_stempool, .timeout = 300);

ISA_TESTS(graph_stempool, fused_equals_reference_and_node_by_node,
          avx2_fused_equals_reference_and_node_by_node, generic_runs_node_by_node, cases)
