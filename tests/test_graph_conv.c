/* tests/test_graph_conv.c: the convolution kernels (implicit GEMM, im2col over several images,
** 1x1 straight from the input, the 3x3 depthwise kernel, the generic depthwise kernel, fused
** Relu and residual Add) against a plain reference loop, over shapes, strides, pads,
** dilations and groups. Each case is a one-node ONNX model built here and packed. Winograd
** F(2x2) on small maps (tile rows shorter than 16 tiles, transformed 16 tiles at a time over
** several rows) must also equal the row-by-row path bit for bit (lpq__wino_row_path). */
#include "engine/engine.h"
#include "engine/engine_internal.h"
#include "onnx/onnx.pb-c.h"
#include "tests/onnx_build.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct conv_case_t {
  int64_t n, c, h, w, m, k, stride, pad, dil, groups;
  int relu, residual; /* Conv -> [Add(skip)] -> [Relu] */
} conv_case_t;

/* Set by nan_cases: x[0] is NaN, and every output it reaches must be NaN (not clamped away);
** Winograd may spread it to the rest of its output tile, so there a NaN is no error either. */
static int nan_input;
/* Set by small_map_cases: every run again with lpq__wino_row_path set, compared with memcmp;
** by wino4_cases: the same within 1e-5 (F(4x4) in runs of 16 tiles with AVX-512 against the
** row-by-row loops: the same sums, but the compiler may fuse them into FMAs differently). */
static int rows_too, rows_close;
/* 1 or 0: the conv must (not) run with its window cropped to the taps that read the input
** (ops_conv.c); -1: either */
static int expect_cropped = -1;
/* also compare the depthwise channel blocks with the flat path (other windows, small maps) */
static int flat_too;

static int64_t out_dim(const conv_case_t *c, int64_t in) {
  return (in + 2 * c->pad - c->dil * (c->k - 1) - 1) / c->stride + 1;
}

/* y = relu?(conv(x, w) + b + skip?) by the definition. */
static void reference(const conv_case_t *c, const float *x, const float *w, const float *b,
                      const float *skip, float *y) {
  const int64_t oh = out_dim(c, c->h), ow = out_dim(c, c->w), cg = c->c / c->groups,
                mg = c->m / c->groups;
  for (int64_t n = 0; n < c->n; n++)
    for (int64_t m = 0; m < c->m; m++)
      for (int64_t oy = 0; oy < oh; oy++)
        for (int64_t ox = 0; ox < ow; ox++) {
          double acc = b[m];
          const int64_t g = m / mg;
          for (int64_t ci = 0; ci < cg; ci++)
            for (int64_t ky = 0; ky < c->k; ky++)
              for (int64_t kx = 0; kx < c->k; kx++) {
                const int64_t iy = oy * c->stride - c->pad + ky * c->dil;
                const int64_t ix = ox * c->stride - c->pad + kx * c->dil;
                if (iy < 0 || iy >= c->h || ix < 0 || ix >= c->w)
                  continue;
                acc += (double)x[((n * c->c + g * cg + ci) * c->h + iy) * c->w + ix] *
                       w[((m * cg + ci) * c->k + ky) * c->k + kx];
              }
          const size_t at = (size_t)(((n * c->m + m) * oh + oy) * ow + ox);
          if (skip)
            acc += skip[at];
          y[at] = (float)(c->relu && acc < 0 ? 0 : acc);
        }
}

/* Runs ex again with every F(2x2) layer tile row by tile row: the same bits as got. */
/* Runs ex again with *path set (another kernel path for the same conv) and compares with got:
** bit for bit, or within 1e-5 where close (the row path's different summation order). */
static void check_path(lpq_exec_t *ex, const void *const *inputs, const float *got, size_t ny,
                       const lpq_hooks_t *hooks, const conv_case_t *c, int threads, int *path,
                       int close, const char *name) {
  float *rows = malloc(ny * 4);
  void *outputs[1] = {rows};
  lpq_error_t err;
  *path = 1;
  const int rc = lpq_exec_run_multi(ex, inputs, outputs, hooks, &err);
  *path = 0;
  cr_assert_eq(rc, 0, "%s", err.msg);
  size_t i = 0;
  while (i < ny && (memcmp(&got[i], &rows[i], 4) == 0 ||
                    (close && fabsf(got[i] - rows[i]) <= 1e-5f * (1.0f + fabsf(rows[i])))))
    i++;
  cr_assert_eq(i, ny,
               "%s differs: n%lld c%lld %lldx%lld m%lld k%lld s%lld p%lld relu%d res%d "
               "threads %d hooked %d: y[%zu] = %a, that path %a", name, (long long)c->n,
               (long long)c->c, (long long)c->h, (long long)c->w, (long long)c->m,
               (long long)c->k, (long long)c->stride, (long long)c->pad, c->relu, c->residual,
               threads, hooks != NULL, i, got[i < ny ? i : 0], rows[i < ny ? i : 0]);
  free(rows);
}

/* Runs one case through the engine and compares with the reference. */
static void check(const conv_case_t *c, unsigned seed) {
  lpq__conv_min_parallel_macs = 0; /* these small convs split over two threads too */
  const int64_t cg = c->c / c->groups, oh = out_dim(c, c->h), ow = out_dim(c, c->w);
  const size_t nx = (size_t)(c->n * c->c * c->h * c->w), nw = (size_t)(c->m * cg * c->k * c->k);
  const size_t ny = (size_t)(c->n * c->m * oh * ow);
  float *x = malloc(nx * 4), *w = malloc(nw * 4), *b = malloc((size_t)c->m * 4);
  float *skip = malloc(ny * 4), *want = malloc(ny * 4), *got = malloc(ny * 4);
  for (size_t i = 0; i < nx; i++)
    x[i] = test_frand(&seed);
  if (nan_input)
    x[0] = NAN;
  for (size_t i = 0; i < nw; i++)
    w[i] = test_frand(&seed) * 0.3f;
  for (int64_t i = 0; i < c->m; i++)
    b[i] = test_frand(&seed) * 0.1f;
  for (size_t i = 0; i < ny; i++)
    skip[i] = test_frand(&seed);
  reference(c, x, w, b, c->residual ? skip : NULL, want);
  float *w2 = malloc(nw * 4), *want2 = malloc(ny * 4);
  for (size_t i = 0; i < nw; i++)
    w2[i] = 0.5f * w[i] + 0.01f * test_frand(&seed);
  reference(c, x, w2, b, c->residual ? skip : NULL, want2);

  /* model: x, skip (graph inputs); W, B (initializers); Conv [-> Add] [-> Relu] -> y */
  int64_t xd[4] = {c->n, c->c, c->h, c->w}, yd[4] = {c->n, c->m, oh, ow};
  int64_t wd[4] = {c->m, cg, c->k, c->k}, bd[1] = {c->m};
  Onnx__TensorShapeProto__Dimension d[3][4], *dp[3][4];
  Onnx__TensorShapeProto sh[3];
  Onnx__TypeProto__Tensor tt[3];
  Onnx__TypeProto tp[3];
  Onnx__ValueInfoProto vi[3], *ins[2], *outs[1];
  ins[0] = test_value_info("x", 4, xd, d[0], dp[0], &sh[0], &tt[0], &tp[0], &vi[0]);
  ins[1] = test_value_info("skip", 4, yd, d[1], dp[1], &sh[1], &tt[1], &tp[1], &vi[1]);
  outs[0] = test_value_info("y", 4, yd, d[2], dp[2], &sh[2], &tt[2], &tp[2], &vi[2]);
  Onnx__TensorProto wt = ONNX__TENSOR_PROTO__INIT, bt = ONNX__TENSOR_PROTO__INIT, *inits[2];
  wt.name = "W", wt.n_dims = 4, wt.dims = wd, wt.has_data_type = 1, wt.data_type = 1;
  wt.has_raw_data = 1, wt.raw_data.len = nw * 4, wt.raw_data.data = (uint8_t *)w;
  bt.name = "B", bt.n_dims = 1, bt.dims = bd, bt.has_data_type = 1, bt.data_type = 1;
  bt.has_raw_data = 1, bt.raw_data.len = (size_t)c->m * 4, bt.raw_data.data = (uint8_t *)b;
  inits[0] = &wt, inits[1] = &bt;
  Onnx__AttributeProto a[4], *ap[4];
  const char *an[4] = {"strides", "pads", "dilations", "group"};
  int64_t av[3][4] = {{c->stride, c->stride}, {c->pad, c->pad, c->pad, c->pad}, {c->dil, c->dil}};
  for (int i = 0; i < 4; i++) {
    onnx__attribute_proto__init(&a[i]);
    a[i].name = (char *)an[i], a[i].has_type = 1;
    ap[i] = &a[i];
    if (i < 3) {
      a[i].type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
      a[i].n_ints = i == 1 ? 4 : 2, a[i].ints = av[i];
    } else {
      a[i].type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT, a[i].has_i = 1, a[i].i = c->groups;
    }
  }
  Onnx__NodeProto conv = ONNX__NODE_PROTO__INIT, add = ONNX__NODE_PROTO__INIT,
                  relu = ONNX__NODE_PROTO__INIT, *nodes[3];
  char *cin[3] = {"x", "W", "B"}, *cout[1] = {"c"}, *ain[2] = {"skip", "c"}, *aout[1] = {"s"};
  char *rin[1] = {c->residual ? "s" : "c"}, *rout[1] = {"y"};
  conv.op_type = "Conv", conv.n_input = 3, conv.input = cin, conv.n_output = 1;
  conv.output = cout, conv.n_attribute = 4, conv.attribute = ap;
  add.op_type = "Add", add.n_input = 2, add.input = ain, add.n_output = 1, add.output = aout;
  relu.op_type = c->relu ? "Relu" : "Identity", relu.n_input = 1, relu.input = rin;
  relu.n_output = 1, relu.output = rout;
  size_t nn = 0;
  nodes[nn++] = &conv;
  if (c->residual)
    nodes[nn++] = &add;
  nodes[nn++] = &relu;
  Onnx__GraphProto gp = ONNX__GRAPH_PROTO__INIT;
  gp.name = "conv", gp.n_node = nn, gp.node = nodes, gp.n_initializer = 2, gp.initializer = inits;
  gp.n_input = c->residual ? 2 : 1, gp.input = ins, gp.n_output = 1, gp.output = outs;
  size_t len;
  uint8_t *buf = test_pack_model(&gp, &len);

  for (int threads = 1; threads <= 2; threads++) {
    lpq_error_t err;
    lpq_graph_t *g = lpq_graph_load_buffer(buf, len, "conv.onnx", 0, &err);
    cr_assert_not_null(g, "%s", err.msg);
    for (size_t i = 0; i < g->nnodes && expect_cropped >= 0; i++)
      if (!g->nodes[i].dead && strcmp(g->nodes[i].op_type, "Conv") == 0)
        cr_assert_eq(((const conv_params_t *)g->nodes[i].params)->cropped, expect_cropped,
                     "k%lld d%lld p%lld on %lldx%lld: cropped %d, want %d", (long long)c->k,
                     (long long)c->dil, (long long)c->pad, (long long)c->h, (long long)c->w,
                     ((const conv_params_t *)g->nodes[i].params)->cropped, expect_cropped);
    lpq_exec_t *ex = lpq_exec_new(g, &err);
    cr_assert_not_null(ex, "%s", err.msg);
    cr_assert_eq(lpq_exec_set_threads(ex, threads, &err), 0, "%s", err.msg);
    const void *inputs[2] = {x, skip};
    void *outputs[1] = {got};
    cr_assert_eq(lpq_exec_run_multi(ex, inputs, outputs, NULL, &err), 0, "%s", err.msg);
    for (size_t i = 0; i < ny; i++)
      cr_assert(isnan(want[i]) ? isnan(got[i])
                               : fabsf(got[i] - want[i]) <= 1e-4f * (1.0f + fabsf(want[i])) ||
                                     (nan_input && isnan(got[i])),
                    "n%lld c%lld %lldx%lld m%lld k%lld s%lld p%lld d%lld g%lld relu%d res%d "
                    "threads %d: y[%zu] = %g, want %g",
                    (long long)c->n, (long long)c->c, (long long)c->h, (long long)c->w,
                    (long long)c->m, (long long)c->k, (long long)c->stride, (long long)c->pad,
                    (long long)c->dil, (long long)c->groups, c->relu, c->residual, threads, i,
                    got[i], want[i]);
    if (rows_too)
      check_path(ex, inputs, got, ny, NULL, c, threads, &lpq__wino_row_path, rows_close,
                 "row path");
    if (flat_too)
      check_path(ex, inputs, got, ny, NULL, c, threads, &lpq__dwblock_any_off, 0, "flat path");
    const lpq_hooks_t hooks = {.user = w2, .weight = test_swap_weight};
    cr_assert_eq(lpq_exec_run_multi(ex, inputs, outputs, &hooks, &err), 0, "%s", err.msg);
    for (size_t i = 0; i < ny; i++)
      cr_assert(isnan(want2[i]) ? isnan(got[i])
                                : fabsf(got[i] - want2[i]) <= 1e-4f * (1.0f + fabsf(want2[i])) ||
                                      (nan_input && isnan(got[i])),
                    "hooked weights, n%lld c%lld %lldx%lld m%lld k%lld s%lld g%lld threads %d: "
                    "y[%zu] = %g, want %g", (long long)c->n, (long long)c->c, (long long)c->h,
                    (long long)c->w, (long long)c->m, (long long)c->k, (long long)c->stride,
                    (long long)c->groups, threads, i, got[i], want2[i]);
    if (rows_too)
      check_path(ex, inputs, got, ny, &hooks, c, threads, &lpq__wino_row_path, rows_close,
                 "row path");
    if (flat_too)
      check_path(ex, inputs, got, ny, &hooks, c, threads, &lpq__dwblock_any_off, 0, "flat path");
    lpq_exec_free(&ex);
    lpq_graph_free(&g);
  }
  free(buf), free(x), free(w), free(b), free(skip), free(want), free(got), free(w2), free(want2);
}

/* The AVX2 kernels on any x86 CPU with AVX2 (Criterion runs each test in its own process, and
** the engine reads LPQ_ISA once per process). */
static void force_avx2(void) {
  cr_assert_eq(setenv("LPQ_ISA", "avx2", 1), 0);
}

static void dense_cases(void) {
  static const int64_t sizes[][2] = {{7, 7}, {12, 9}, {33, 30}};
  static const int64_t chans[][3] = {{3, 16, 1}, {8, 12, 2}, {16, 40, 1}}; /* c, m, groups */
  unsigned seed = 7;
  int cases = 0;
  for (size_t si = 0; si < 3; si++)
    for (size_t ci = 0; ci < 3; ci++)
      for (int64_t k = 1; k <= 5; k += 2)
        for (int64_t stride = 1; stride <= 2; stride++)
          for (int64_t pad = 0; pad <= 2; pad += 2)
            for (int64_t dil = 1; dil <= 2; dil++) {
              conv_case_t c = {3, chans[ci][0], sizes[si][0], sizes[si][1], chans[ci][1], k,
                               stride, k == 1 ? 0 : pad, dil, chans[ci][2], (int)(k % 2),
                               (int)(dil == 1)};
              if (out_dim(&c, c.h) < 1 || out_dim(&c, c.w) < 1)
                continue;
              check(&c, seed++);
              cases++;
            }
  cr_assert_gt(cases, 100);
}

static void depthwise_cases(void) {
  unsigned seed = 11;
  for (int64_t size = 5; size <= 14; size += 3)
    for (int64_t k = 3; k <= 5; k += 2)
      for (int64_t stride = 1; stride <= 2; stride++)
        for (int64_t pad = 0; pad <= 2; pad++) {
          conv_case_t c = {2, 6, size, size + 1, 6, k, stride, pad, 1, 6, (int)(pad % 2), 0};
          if (out_dim(&c, c.h) >= 1)
            check(&c, seed++);
        }
  /* wide rows: the vectorised de-interleave of stride 2 and its scalar tail */
  conv_case_t wide[] = {{1, 4, 9, 70, 4, 3, 2, 1, 1, 4, 1, 0}, {1, 4, 9, 67, 4, 3, 2, 0, 1, 4, 0, 0},
                        /* stride 2, pads 1, rows of 17 to 34 (lpq__kern_dw3_rows): odd and even
                        ** widths, a partial last vector, the first vector's left pad */
                        {2, 3, 11, 17, 3, 3, 2, 1, 1, 3, 1, 0},
                        {1, 3, 12, 33, 3, 3, 2, 1, 1, 3, 0, 0},
                        {1, 3, 9, 34, 3, 3, 2, 1, 1, 3, 1, 0},
                        {1, 4, 9, 99, 4, 3, 1, 1, 1, 4, 1, 0},
                        /* rows of 7 or less: channels in blocks of DWB (ops_dwblock.c), the
                        ** last block partial, batch 1 and 3 */
                        {3, 37, 7, 7, 37, 3, 1, 1, 1, 37, 1, 0}, {3, 37, 13, 15, 37, 3, 2, 1, 1, 37, 0, 0},
                        {1, 20, 8, 5, 20, 3, 1, 0, 1, 20, 1, 0}, {1, 33, 6, 9, 33, 3, 2, 2, 1, 33, 1, 0}};
  for (size_t i = 0; i < sizeof wide / sizeof wide[0]; i++)
    check(&wide[i], seed++);
  /* other windows, dilations, 1x1: the flat passes (ops_dwflat.c), batch 1 and 3 */
  conv_case_t flat[] = {{3, 5, 14, 13, 5, 7, 1, 3, 1, 5, 1, 0}, {1, 5, 15, 16, 5, 7, 2, 3, 1, 5, 0, 0},
                        {1, 3, 11, 12, 3, 3, 1, 2, 2, 3, 1, 0}, {3, 3, 12, 11, 3, 3, 2, 2, 2, 3, 0, 0},
                        {1, 4, 13, 9, 4, 5, 2, 4, 2, 4, 1, 0}, {1, 4, 6, 7, 4, 1, 1, 0, 1, 4, 0, 0},
                        {1, 4, 9, 8, 4, 1, 2, 0, 1, 4, 0, 0},  {1, 2, 5, 6, 2, 5, 1, 0, 1, 2, 0, 0},
                        /* stride 2 as four phases: MobileNetV3's 5x5 on 25x25, an odd
                        ** dilation (odd row and column offsets), rows not a multiple of 8 */
                        {3, 6, 25, 25, 6, 5, 2, 2, 1, 6, 1, 0},
                        {1, 3, 10, 13, 3, 3, 2, 3, 3, 3, 0, 0},
                        {1, 2, 17, 6, 2, 5, 2, 1, 1, 2, 1, 0}};
  /* other windows on maps of at most 14 columns run in channel blocks on AVX2 (ops_dwblock.c):
  ** the same bits as the flat path. Blocks of 16 channels, the last partial; 14 and 15 columns;
  ** rows of 1 to 3 pixel groups of four */
  conv_case_t blocks[] = {
      {3, 37, 13, 13, 37, 5, 1, 2, 1, 37, 1, 0}, {1, 20, 27, 27, 20, 5, 2, 2, 1, 20, 0, 0},
      {1, 17, 7, 7, 17, 7, 1, 3, 1, 17, 1, 0},   {1, 16, 14, 14, 16, 5, 1, 2, 1, 16, 0, 0},
      {1, 16, 15, 15, 16, 5, 1, 2, 1, 16, 1, 0}, {2, 9, 10, 11, 9, 3, 2, 2, 2, 9, 1, 0},
      {1, 5, 3, 3, 5, 5, 1, 2, 1, 5, 0, 0}};
  flat_too = 1;
  for (size_t i = 0; i < sizeof flat / sizeof flat[0]; i++)
    check(&flat[i], seed++);
  for (size_t i = 0; i < sizeof blocks / sizeof blocks[0]; i++)
    check(&blocks[i], seed++);
  flat_too = 0;
}

/* Windows whose outer taps read only padding for every output run cropped (DeepLabV3's ASPP:
** dilation 12-36 on small maps): to 1x1 (pointwise, grouped with a residual, strided), to 3x3
** (Winograd), rows only; each against the reference, plain and with hooked weights (cropped per
** run), at 1 and 2 threads. And windows that keep every tap, depthwise ones included, do not. */
static void cropped_cases(void) {
  conv_case_t crop[] = {
      {1, 8, 6, 6, 16, 3, 1, 12, 12, 1, 1, 0}, {2, 6, 6, 7, 10, 3, 1, 24, 24, 2, 0, 1},
      {1, 4, 2, 2, 8, 5, 1, 2, 1, 1, 1, 0},    {3, 5, 1, 9, 7, 3, 1, 1, 1, 1, 0, 0},
      {1, 3, 4, 5, 6, 3, 2, 6, 6, 1, 1, 0}};
  conv_case_t keep[] = {{1, 4, 8, 8, 6, 3, 1, 1, 1, 1, 1, 0}, {1, 4, 6, 6, 6, 3, 1, 2, 2, 1, 0, 0},
                        {1, 6, 1, 1, 6, 3, 1, 1, 1, 6, 0, 0}};
  unsigned seed = 300;
  expect_cropped = 1;
  for (size_t i = 0; i < sizeof crop / sizeof crop[0]; i++)
    check(&crop[i], seed++);
  expect_cropped = 0;
  for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++)
    check(&keep[i], seed++);
  expect_cropped = -1;
}

static void large_map_cases(void) {
  /* maps big enough for single-image column chunks (and several chunks per image) */
  conv_case_t cases[] = {
      {2, 16, 40, 40, 24, 3, 1, 1, 1, 1, 1, 1},
      {2, 8, 45, 37, 16, 3, 2, 1, 1, 1, 1, 0},
      {1, 3, 64, 64, 8, 7, 2, 3, 1, 1, 1, 0},
      {2, 32, 30, 30, 32, 1, 1, 0, 1, 1, 0, 1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    check(&cases[i], 100 + (unsigned)i);
}

/* Channel counts off the 8-row and 32-column blocks, batch 1 and 3, through every path. */
static void odd_channel_cases(void) {
  conv_case_t cases[] = {
      {1, 5, 31, 29, 13, 3, 1, 1, 1, 1, 1, 1},  {3, 7, 17, 19, 9, 3, 2, 1, 1, 1, 1, 0},
      {1, 6, 23, 41, 33, 3, 1, 2, 2, 3, 0, 1},  {3, 9, 11, 13, 17, 1, 1, 0, 1, 1, 1, 1},
      {1, 10, 35, 33, 15, 1, 2, 0, 1, 5, 1, 0}, {3, 3, 40, 37, 7, 5, 1, 2, 1, 1, 0, 1},
      {1, 12, 9, 9, 65, 3, 1, 1, 1, 1, 1, 1},   {3, 66, 6, 7, 10, 3, 2, 1, 2, 2, 1, 0},
      /* more than 128 output channels: two threads split them in blocks (few column chunks) */
      {2, 16, 9, 9, 200, 3, 1, 1, 2, 1, 1, 1},  {3, 24, 7, 7, 300, 1, 1, 0, 1, 1, 1, 1},
      {1, 8, 30, 30, 140, 3, 2, 1, 1, 1, 1, 0}, {1, 20, 40, 40, 257, 1, 1, 0, 1, 1, 0, 1},
      /* Winograd's 4x4 tiles: maps of 14 and more, 64 channels or more in and out */
      {1, 64, 30, 29, 70, 3, 1, 1, 1, 1, 1, 1},  {2, 65, 30, 33, 64, 3, 1, 0, 1, 1, 0, 1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    check(&cases[i], 200 + (unsigned)i);
}

/* Winograd F(2x2) on maps whose tile rows are shorter than 16 tiles: runs of 16 tiles over
** several tile rows and images, odd sizes (a partial last tile), pads 0, 1 and 2, residual and
** clamp, batches 1 and 3, channels off 8 and 16, blocks starting mid-row (two threads split
** the tiles) and several blocks per thread (batch 20). */
static void small_map_cases(void) {
  static const int64_t sizes[][2] = {{2, 2}, {3, 3}, {5, 7}, {7, 7}, {9, 9}};
  static const int64_t chans[][2] = {{9, 10}, {13, 21}};
  unsigned seed = 400;
  int cases = 0;
  rows_too = 1;
  lpq__wino_any_batch = 1; /* these maps and batches are below Winograd's rule */
  for (size_t si = 0; si < 5; si++)
    for (int64_t pad = 0; pad <= 1; pad++)
      for (int64_t n = 1; n <= 3; n += 2) {
        const size_t ci = (si + (size_t)pad + (size_t)n / 3) % 2;
        conv_case_t c = {n, chans[ci][0], sizes[si][0], sizes[si][1], chans[ci][1], 3, 1, pad,
                         1, 1, (int)((si + (size_t)n) % 2), (int)((si + (size_t)pad) % 2)};
        if (out_dim(&c, c.h) < 2 || out_dim(&c, c.w) < 2)
          continue;
        check(&c, seed++);
        cases++;
      }
  conv_case_t more[] = {
      {20, 9, 7, 7, 10, 3, 1, 1, 1, 1, 1, 1}, {3, 40, 9, 9, 24, 3, 1, 1, 1, 1, 0, 1},
      {2, 8, 4, 4, 8, 3, 1, 1, 1, 1, 1, 0},   {3, 12, 3, 11, 17, 3, 1, 1, 1, 1, 0, 0},
      {1, 9, 5, 5, 9, 3, 1, 2, 1, 1, 1, 1},   {1, 16, 29, 30, 16, 3, 1, 1, 1, 1, 1, 1},
      {3, 17, 6, 31, 8, 3, 1, 0, 1, 1, 1, 1},
  };
  for (size_t i = 0; i < sizeof more / sizeof more[0]; i++, cases++)
    check(&more[i], seed++);
  rows_too = 0;
  lpq__wino_any_batch = 0;
  cr_assert_gt(cases, 20);
}

/* Winograd's rule (lpq__wino_applies): a 512-channel 5x5 map at batch 1 (9 tiles: a GEMM panel
** nearly empty) runs as the implicit GEMM; the same at batch 8, and 10x10 at batch 1 (25 tiles
** against 100 outputs), as Winograd. */
static void wino_rule_cases(void) {
  conv_params_t p = {.groups = 1, .k = {3, 3}, .s = {1, 1}, .d = {1, 1}, .p = {1, 1, 1, 1},
                     .N = 1, .C = 512, .H = 5, .W = 5, .M = 512, .OH = 5, .OW = 5, .spatial = 2};
  const int kernel = lpq__sgemm_packs_a(); /* Winograd needs lpq's GEMM kernel */
  cr_assert_eq(lpq__wino_applies(&p), 0);
  p.N = 8;
  cr_assert_eq(lpq__wino_applies(&p), kernel);
  p.N = 1, p.H = p.W = p.OH = p.OW = 10;
  cr_assert_eq(lpq__wino_applies(&p), kernel);
  p.H = p.W = p.OH = p.OW = 2; /* 1 tile, 4 outputs */
  cr_assert_eq(lpq__wino_applies(&p), 0);
  lpq__wino_any_batch = 1;
  cr_assert_eq(lpq__wino_applies(&p), kernel);
  lpq__wino_any_batch = 0;
}

/* Winograd F(4x4) (maps of 14 and more, 64 channels or more; AVX2: 28 and more, row by row):
** with AVX-512 in runs of 16 tiles over tile rows (4 per row at 14 wide, 7 at 28, 14 at 56) and
** images. Odd sizes (a partial last tile, a tile row of 8 or 15), pads 0, 1 and 2, channels off
** the 8 and 32 blocks, batches 1 and 3, rows of 16 tiles and more (a run continues on the next
** row), several blocks per thread. */
static void wino4_cases(void) {
  conv_case_t cases[] = {
      {1, 64, 28, 28, 64, 3, 1, 1, 1, 1, 1, 1},  {3, 65, 29, 31, 70, 3, 1, 1, 1, 1, 0, 1},
      {1, 67, 30, 30, 64, 3, 1, 0, 1, 1, 1, 0},  {2, 64, 30, 31, 72, 3, 1, 2, 1, 1, 1, 1},
      {1, 64, 58, 57, 66, 3, 1, 1, 1, 1, 1, 1},  {6, 64, 28, 28, 64, 3, 1, 1, 1, 1, 0, 1},
      {1, 64, 66, 67, 64, 3, 1, 1, 1, 1, 1, 0},  {3, 72, 28, 29, 65, 3, 1, 1, 1, 1, 1, 1},
      {3, 64, 14, 15, 70, 3, 1, 1, 1, 1, 1, 1},  {2, 66, 16, 17, 64, 3, 1, 0, 1, 1, 0, 1},
      /* at most one panel of tiles: two threads share the output channels (72: 32 + 40) */
      {1, 64, 14, 14, 72, 3, 1, 1, 1, 1, 1, 1},  {1, 65, 15, 13, 67, 3, 1, 1, 1, 1, 0, 0},
  };
  rows_too = rows_close = 1;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    check(&cases[i], 500 + (unsigned)i);
  rows_too = rows_close = 0;
}

/* The direct kernel (few input channels, kernels of 3 to 11: an image network's stem): strides
** 1 to 4, pads 0 to 3, batches 1 and 3, odd sizes, output channels off its blocks (3 with
** AVX-512, 2 with AVX2), rows longer than one column block (112 columns, 48 with AVX2; a masked
** last vector), residual and clamp, several row bands per image. With AVX2 the windows under
** 5x5 run as the implicit GEMM instead (lpq__direct_applies), checked the same way. */
static void stem_cases(void) {
  conv_case_t cases[] = {
      {1, 3, 64, 64, 13, 7, 2, 3, 1, 1, 1, 0},  {3, 3, 37, 41, 64, 7, 2, 3, 1, 1, 1, 1},
      {1, 1, 30, 250, 5, 5, 2, 2, 1, 1, 0, 1},  {3, 4, 19, 23, 17, 3, 1, 1, 1, 1, 1, 0},
      {1, 2, 40, 131, 8, 11, 3, 0, 1, 1, 0, 0}, {1, 3, 35, 70, 32, 4, 4, 1, 1, 1, 1, 1},
      {2, 3, 33, 35, 7, 7, 1, 3, 1, 1, 1, 1},   {1, 3, 80, 33, 66, 3, 2, 0, 1, 1, 0, 1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    check(&cases[i], 600 + (unsigned)i);
}

/* A NaN input stays NaN through every kernel and the fused Relu (a clamp by max/min must not
** turn it into 0). */
static void nan_cases(void) {
  conv_case_t cases[] = {
      {2, 16, 40, 40, 24, 3, 1, 1, 1, 1, 1, 0}, {2, 16, 9, 9, 24, 3, 1, 1, 1, 1, 1, 0},
      {1, 8, 30, 30, 40, 3, 2, 1, 1, 1, 1, 0},  {3, 24, 7, 7, 40, 1, 1, 0, 1, 1, 1, 0},
      {1, 20, 40, 40, 40, 1, 1, 0, 1, 1, 1, 0}, {2, 6, 12, 12, 6, 3, 1, 1, 1, 6, 1, 0},
      {1, 64, 30, 30, 64, 3, 1, 1, 1, 1, 1, 0}, {3, 16, 7, 7, 24, 3, 1, 1, 1, 1, 1, 0},
  };
  nan_input = 1;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    check(&cases[i], 300 + (unsigned)i);
  nan_input = 0;
}

Test(graph_conv, nan_propagates) { nan_cases(); }
Test(graph_conv, avx2_nan_propagates) {
  force_avx2();
  nan_cases();
}
Test(graph_conv, dense_strided_padded_dilated_grouped) { dense_cases(); }
Test(graph_conv, depthwise) { depthwise_cases(); }
Test(graph_conv, large_maps_use_the_implicit_gemm) { large_map_cases(); }
Test(graph_conv, odd_channels_and_batches) { odd_channel_cases(); }
Test(graph_conv, winograd_small_maps) { small_map_cases(); }
Test(graph_conv, winograd_only_where_its_gemm_fills_panels) { wino_rule_cases(); }
Test(graph_conv, avx2_winograd_rule) {
  force_avx2();
  wino_rule_cases();
}
Test(graph_conv, avx2_winograd_small_maps) {
  force_avx2();
  small_map_cases();
}

Test(graph_conv, direct_stem) { stem_cases(); }
Test(graph_conv, avx2_stem) {
  force_avx2();
  stem_cases();
}
Test(graph_conv, winograd4_runs) { wino4_cases(); }
Test(graph_conv, avx2_winograd4) {
  force_avx2();
  wino4_cases();
}

Test(graph_conv, avx2_dense_strided_padded_dilated_grouped) {
  force_avx2();
  dense_cases();
}

Test(graph_conv, avx2_depthwise) {
  force_avx2();
  depthwise_cases();
}

Test(graph_conv, cropped_windows) { cropped_cases(); }
Test(graph_conv, avx2_cropped_windows) {
  force_avx2();
  cropped_cases();
}
Test(graph_conv, generic_cropped_windows) {
  cr_assert_eq(setenv("LPQ_ISA", "generic", 1), 0);
  cropped_cases();
}

Test(graph_conv, generic_depthwise) {
  cr_assert_eq(setenv("LPQ_ISA", "generic", 1), 0);
  depthwise_cases();
}

Test(graph_conv, avx2_large_maps) {
  force_avx2();
  large_map_cases();
}

Test(graph_conv, avx2_odd_channels_and_batches) {
  force_avx2();
  odd_channel_cases();
}

Test(graph_conv, isa_names_the_kernels_in_use) {
  force_avx2();
  const char *isa = lpq_engine_isa();
  cr_assert(strcmp(isa, "avx2") == 0 || strcmp(isa, "generic") == 0, "LPQ_ISA=avx2 gave %s", isa);
}
