/* tests/test_graph_dwfuse.c: the fused depthwise chains (engine/ops_dwfuse.c): 1x1 conv + Relu
** -> 3x3 depthwise conv (stride 1 or 2, pads 1) + Relu -> 1x1 conv [+ residual Add], either
** 1x1 conv absent. A run without hooks (fused) must equal a reference loop in double and the
** hooked run (node by node) within rounding, over odd channel counts and map sizes, batch 1
** and 3, one and two threads, one band per image or many (rows kept between bands), with
** the AVX-512, the AVX2 and the generic kernels. Each case is an ONNX model built here; the
** flat depthwise run is also checked alone (flat_run_cases). */
#include "engine/engine.h"
#include "engine/engine_internal.h"
#include "onnx/onnx.pb-c.h"
#include "tests/isa_tests.h"
#include "tests/onnx_build.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct chain_t {
  int pre, post, residual;
  int64_t n, cin, ce, cout, h, w, s; /* h, w: the depthwise conv's input */
  int64_t pk, ps; /* the conv before it: kernel (0: 1x1) and stride, pads pk / 2 */
} chain_t;

/* The chain input's size along an axis where the depthwise input is `in`. */
static int64_t xdim(const chain_t *c, int64_t in) {
  return c->pk > 1 ? (in - 1) * c->ps + 1 + (in % 2 ? c->ps - 1 : 0) : in;
}

/* y = relu(conv(x, w) + b): cin x xh x xw -> m x h x w, kernel k, stride s, pads k / 2. */
static void ref_conv(const chain_t *c, const double *x, const float *w, const float *b, double *y) {
  const int64_t k = c->pk, xh = xdim(c, c->h), xw = xdim(c, c->w), pad = k / 2;
  for (int64_t i = 0; i < c->n; i++)
    for (int64_t o = 0; o < c->ce; o++)
      for (int64_t oy = 0; oy < c->h; oy++)
        for (int64_t ox = 0; ox < c->w; ox++) {
          double acc = b[o];
          for (int64_t ci = 0; ci < c->cin; ci++)
            for (int64_t ky = 0; ky < k; ky++)
              for (int64_t kx = 0; kx < k; kx++) {
                const int64_t iy = oy * c->ps - pad + ky, ix = ox * c->ps - pad + kx;
                if (iy >= 0 && iy < xh && ix >= 0 && ix < xw)
                  acc += (double)w[((o * c->cin + ci) * k + ky) * k + kx] *
                         x[((i * c->cin + ci) * xh + iy) * xw + ix];
              }
          y[((i * c->ce + o) * c->h + oy) * c->w + ox] = acc < 0 ? 0 : acc;
        }
}

static int64_t odim(const chain_t *c, int64_t in) { return (in - 1) / c->s + 1; }

/* y[n][m] = relu?(sum_c w[m][c] x[n][c] + b[m]) (+ skip) over hw positions, in double. */
static void ref_pointwise(const double *x, int64_t n, int64_t cin, int64_t m, int64_t hw,
                          const float *w, const float *b, int relu, const float *skip,
                          double *y) {
  for (int64_t i = 0; i < n; i++)
    for (int64_t o = 0; o < m; o++)
      for (int64_t p = 0; p < hw; p++) {
        double acc = b[o];
        for (int64_t c = 0; c < cin; c++)
          acc += (double)w[o * cin + c] * x[(i * cin + c) * hw + p];
        if (skip)
          acc += skip[(i * m + o) * hw + p];
        y[(i * m + o) * hw + p] = relu && acc < 0 ? 0 : acc;
      }
}

static void ref_depthwise(const chain_t *c, const double *x, const float *w, const float *b,
                          double *y) {
  const int64_t oh = odim(c, c->h), ow = odim(c, c->w);
  for (int64_t i = 0; i < c->n * c->ce; i++)
    for (int64_t oy = 0; oy < oh; oy++)
      for (int64_t ox = 0; ox < ow; ox++) {
        double acc = b[i % c->ce];
        for (int ky = 0; ky < 3; ky++)
          for (int kx = 0; kx < 3; kx++) {
            const int64_t iy = oy * c->s - 1 + ky, ix = ox * c->s - 1 + kx;
            if (iy >= 0 && iy < c->h && ix >= 0 && ix < c->w)
              acc += (double)w[(i % c->ce) * 9 + ky * 3 + kx] * x[(i * c->h + iy) * c->w + ix];
          }
        y[(i * oh + oy) * ow + ox] = acc < 0 ? 0 : acc;
      }
}

/* An initializer. */
static Onnx__TensorProto *init(Onnx__TensorProto *t, const char *name, int nd, int64_t *dims,
                               const float *data, size_t count) {
  onnx__tensor_proto__init(t);
  t->name = (char *)name, t->n_dims = (size_t)nd, t->dims = dims;
  t->has_data_type = 1, t->data_type = 1;
  t->has_raw_data = 1, t->raw_data.len = count * 4, t->raw_data.data = (uint8_t *)data;
  return t;
}

static void node(Onnx__NodeProto *n, const char *op, size_t nin, char **in, char **out,
                 size_t nattr, Onnx__AttributeProto **attr) {
  onnx__node_proto__init(n);
  n->op_type = (char *)op, n->n_input = nin, n->input = in, n->n_output = 1, n->output = out;
  n->n_attribute = nattr, n->attribute = attr;
}

typedef struct weights_t {
  float *we, *be, *wd, *bd, *wp, *bp;
} weights_t;

/* The chain as an ONNX model (caller frees *buf). */
static size_t build(const chain_t *c, const weights_t *wt, uint8_t **buf) {
  const int64_t oh = odim(c, c->h), ow = odim(c, c->w);
  int64_t xd[4] = {c->n, c->cin, xdim(c, c->h), xdim(c, c->w)}, pk = c->pk > 1 ? c->pk : 1;
  int64_t yd[4] = {c->n, c->post ? c->cout : c->ce, oh, ow};
  int64_t wed[4] = {c->ce, c->cin, pk, pk}, wdd[4] = {c->ce, 1, 3, 3};
  int64_t wpd[4] = {c->cout, c->ce, 1, 1}, bed[1] = {c->ce}, bpd[1] = {c->cout};
  Onnx__TensorProto t[6], *inits[6];
  size_t ni = 0;
  if (c->pre) {
    inits[ni] = init(&t[ni], "We", 4, wed, wt->we, (size_t)(c->ce * c->cin * pk * pk)), ni++;
    inits[ni] = init(&t[ni], "Be", 1, bed, wt->be, (size_t)c->ce), ni++;
  }
  inits[ni] = init(&t[ni], "Wd", 4, wdd, wt->wd, (size_t)(c->ce * 9)), ni++;
  inits[ni] = init(&t[ni], "Bd", 1, bed, wt->bd, (size_t)c->ce), ni++;
  if (c->post) {
    inits[ni] = init(&t[ni], "Wp", 4, wpd, wt->wp, (size_t)(c->cout * c->ce)), ni++;
    inits[ni] = init(&t[ni], "Bp", 1, bpd, wt->bp, (size_t)c->cout), ni++;
  }
  Onnx__AttributeProto a[3], *ap[3];
  const char *an[3] = {"strides", "pads", "group"};
  int64_t av[2][4] = {{c->s, c->s}, {1, 1, 1, 1}};
  for (int i = 0; i < 3; i++) {
    onnx__attribute_proto__init(&a[i]);
    a[i].name = (char *)an[i], a[i].has_type = 1, ap[i] = &a[i];
    if (i < 2) {
      a[i].type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
      a[i].n_ints = i ? 4 : 2, a[i].ints = av[i];
    } else {
      a[i].type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT, a[i].has_i = 1, a[i].i = c->ce;
    }
  }
  Onnx__AttributeProto pa[2], *pap[2]; /* the conv before: strides, pads */
  int64_t pav[2][4] = {{c->ps, c->ps}, {pk / 2, pk / 2, pk / 2, pk / 2}};
  for (int i = 0; i < 2; i++) {
    onnx__attribute_proto__init(&pa[i]);
    pa[i].name = (char *)an[i], pa[i].has_type = 1, pap[i] = &pa[i];
    pa[i].type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
    pa[i].n_ints = i ? 4 : 2, pa[i].ints = pav[i];
  }
  Onnx__NodeProto nd[7], *nodes[7];
  size_t nn = 0;
  char *pe_in[3] = {"x", "We", "Be"}, *pe_out[1] = {"e0"}, *re_in[1] = {"e0"}, *re_out[1] = {"e"};
  char *dw_in[3] = {c->pre ? "e" : "x", "Wd", "Bd"}, *dw_out[1] = {"d0"};
  char *rd_in[1] = {"d0"}, *rd_out[1] = {c->post ? "d" : "y"};
  char *pp_in[3] = {"d", "Wp", "Bp"}, *pp_out[1] = {c->residual ? "p" : "y"};
  char *add_in[2] = {"p", "x"}, *add_out[1] = {"y"};
  if (c->pre) {
    node(&nd[nn], "Conv", 3, pe_in, pe_out, pk > 1 ? 2 : 0, pk > 1 ? pap : NULL), nn++;
    node(&nd[nn], "Relu", 1, re_in, re_out, 0, NULL), nn++;
  }
  node(&nd[nn], "Conv", 3, dw_in, dw_out, 3, ap), nn++;
  node(&nd[nn], "Relu", 1, rd_in, rd_out, 0, NULL), nn++;
  if (c->post)
    node(&nd[nn], "Conv", 3, pp_in, pp_out, 0, NULL), nn++;
  if (c->residual)
    node(&nd[nn], "Add", 2, add_in, add_out, 0, NULL), nn++;
  for (size_t i = 0; i < nn; i++)
    nodes[i] = &nd[i];
  test_io_t io;
  Onnx__GraphProto gp = ONNX__GRAPH_PROTO__INIT;
  gp.name = "chain", gp.n_node = nn, gp.node = nodes, gp.n_initializer = ni;
  gp.initializer = inits;
  test_io(&io, xd, yd, &gp);
  size_t len;
  *buf = test_pack_model(&gp, &len);
  cr_assert_not_null(*buf);
  return len;
}

static float *randoms(size_t n, float scale, unsigned *seed) {
  float *v = malloc(n * sizeof *v);
  cr_assert_not_null(v);
  for (size_t i = 0; i < n; i++)
    v[i] = test_frand(seed) * scale;
  return v;
}

static int fused_chains(const lpq_graph_t *g) {
  int count = 0;
  for (size_t k = 0; k < g->nnodes; k++)
    count += !g->nodes[k].dead && g->nodes[k].fuse != NULL;
  return count;
}

/* One chain with band buffers of `band` floats: fused run == reference == hooked run, and two
** threads bit for bit one. Returns whether the two-thread run split the chain by channels. */
static int check(const chain_t *c, int64_t band, unsigned seed) {
  int split_count = 0;
  const int64_t oh = odim(c, c->h), ow = odim(c, c->w), hw = c->h * c->w, ohw = oh * ow;
  const int64_t pk = c->pk > 1 ? c->pk : 1;
  const size_t nx = (size_t)(c->n * c->cin * xdim(c, c->h) * xdim(c, c->w));
  const size_t ne = (size_t)(c->n * c->ce * hw);
  const size_t nd = (size_t)(c->n * c->ce * ohw);
  const size_t ny = (size_t)(c->n * (c->post ? c->cout : c->ce) * ohw);
  float *x = randoms(nx, 1.0f, &seed), *xo = randoms(nx, 1.0f, &seed);
  weights_t wt = {randoms((size_t)(c->ce * c->cin * pk * pk), 0.5f, &seed),
                  randoms((size_t)c->ce, 0.2f, &seed),
                  randoms((size_t)(c->ce * 9), 0.4f, &seed),
                  randoms((size_t)c->ce, 0.2f, &seed),
                  randoms((size_t)(c->cout * c->ce), 0.3f, &seed),
                  randoms((size_t)c->cout, 0.2f, &seed)};
  double *xd = malloc(nx * sizeof *xd), *e = malloc(ne * sizeof *e), *d = malloc(nd * sizeof *d);
  double *want = malloc(ny * sizeof *want);
  for (size_t i = 0; i < nx; i++)
    xd[i] = x[i];
  if (c->pre && pk > 1)
    ref_conv(c, xd, wt.we, wt.be, e);
  else if (c->pre)
    ref_pointwise(xd, c->n, c->cin, c->ce, hw, wt.we, wt.be, 1, NULL, e);
  ref_depthwise(c, c->pre ? e : xd, wt.wd, wt.bd, c->post ? d : want);
  if (c->post)
    ref_pointwise(d, c->n, c->ce, c->cout, ohw, wt.wp, wt.bp, 0, c->residual ? x : NULL, want);
  uint8_t *buf;
  const size_t len = build(c, &wt, &buf);
  float *got = malloc(ny * 4), *hooked = malloc(ny * 4);
  const int64_t saved = lpq__dwfuse_band_floats, saved_hw = lpq__dwfuse_min_hw;
  lpq__dwfuse_band_floats = band, lpq__dwfuse_min_hw = 1;
  lpq_error_t err;
  lpq_graph_t *g = lpq_graph_load_buffer(buf, len, "chain.onnx", 0, &err);
  lpq__dwfuse_band_floats = saved, lpq__dwfuse_min_hw = saved_hw;
  cr_assert_not_null(g, "%s", err.msg);
  cr_assert_eq(fused_chains(g), 1, "the chain is not fused");
  size_t first = 0; /* with a conv before, the chain starts there: the graph's first node */
  while (g->nodes[first].dead)
    first++;
  cr_assert(!c->pre || g->nodes[first].fuse != NULL, "the conv before is not in the chain");
  float *one = malloc(ny * 4); /* the one-thread run: two threads, lpq's kernels, its bits */
  cr_assert(got && hooked && one);
  for (int threads = 1; threads <= 2; threads++) {
    const int64_t splits = __atomic_load_n(&lpq__dwfuse_split_runs, __ATOMIC_RELAXED);
    lpq_exec_t *ex = lpq_exec_new(g, &err);
    cr_assert_not_null(ex, "%s", err.msg);
    cr_assert_eq(lpq_exec_set_threads(ex, threads, &err), 0, "%s", err.msg);
    const lpq_hooks_t none = {0}; /* hooked: node by node */
    /* first a run on other inputs, so that an output the fused run does not write keeps its
    ** value (the context's buffers: malloc may hand back the last context's) */
    cr_assert_eq(lpq_exec_run(ex, xo, got, &none, &err), 0, "%s", err.msg);
    cr_assert_eq(lpq_exec_run(ex, x, got, NULL, &err), 0, "%s", err.msg);
    cr_assert_eq(lpq_exec_run(ex, x, hooked, &none, &err), 0, "%s", err.msg);
    for (size_t i = 0; i < ny; i++) {
      cr_assert(fabs(got[i] - want[i]) <= 1e-4 * (1.0 + fabs(want[i])),
                "pre%d post%d res%d n%lld cin%lld ce%lld cout%lld %lldx%lld s%lld band %lld "
                "threads %d: y[%zu] = %g, want %g", c->pre, c->post, c->residual,
                (long long)c->n, (long long)c->cin, (long long)c->ce, (long long)c->cout,
                (long long)c->h, (long long)c->w, (long long)c->s, (long long)band, threads, i,
                got[i], want[i]);
      cr_assert(fabsf(got[i] - hooked[i]) <= 2e-6f * (1.0f + fabsf(hooked[i])),
                "fused and node by node differ: y[%zu] = %a, hooked %a (threads %d)", i,
                got[i], hooked[i], threads);
    }
    if (threads == 1)
      memcpy(one, got, ny * 4);
    else if (lpq__sgemm_packs_a()) /* lpq's kernels (OpenBLAS's differ with the columns) */
      cr_assert_eq(memcmp(one, got, ny * 4), 0, "pre%d post%d n%lld ce%lld cout%lld %lldx%lld "
                   "band %lld: two threads differ from one", c->pre, c->post, (long long)c->n,
                   (long long)c->ce, (long long)c->cout, (long long)c->h, (long long)c->w,
                   (long long)band);
    if (threads == 2) /* how many chains ran split by channels (none with one thread) */
      split_count += __atomic_load_n(&lpq__dwfuse_split_runs, __ATOMIC_RELAXED) > splits;
    lpq_exec_free(&ex);
  }
  free(one);
  lpq_graph_free(&g);
  free(buf), free(x), free(xo), free(xd), free(e), free(d), free(want), free(got), free(hooked);
  free(wt.we), free(wt.be), free(wt.wd), free(wt.bd), free(wt.wp), free(wt.bp);
  return split_count;
}

static void cases(void) {
  static const chain_t chains[] = {
      /* pre, post, residual, n, cin, ce, cout, h, w, s, pre kernel, pre stride */
      {1, 1, 1, 3, 5, 19, 5, 13, 11, 1, 0, 1},   {1, 1, 0, 1, 3, 17, 7, 14, 9, 2, 0, 1},
      {1, 1, 0, 3, 4, 33, 6, 15, 16, 2, 0, 1},   {1, 1, 1, 1, 16, 40, 16, 23, 37, 1, 0, 1},
      {0, 1, 0, 3, 21, 21, 6, 9, 20, 1, 0, 1},   {0, 1, 0, 1, 18, 18, 9, 17, 12, 2, 0, 1},
      {1, 0, 0, 1, 7, 21, 1, 11, 13, 2, 0, 1},   {1, 0, 0, 3, 6, 10, 1, 12, 7, 1, 0, 1},
      {1, 1, 0, 1, 3, 9, 4, 1, 5, 1, 0, 1},      {1, 1, 0, 3, 3, 9, 4, 5, 1, 2, 0, 1},
      {1, 1, 1, 1, 8, 24, 8, 2, 2, 1, 0, 1},     {1, 1, 0, 1, 5, 96, 24, 34, 35, 2, 0, 1},
      /* a stem before: 3x3 stride 2 (odd and even inputs), 5x5 stride 1 */
      {1, 1, 0, 3, 3, 16, 8, 19, 14, 1, 3, 2}, {1, 1, 0, 1, 3, 21, 5, 12, 11, 2, 3, 2},
      {1, 0, 0, 1, 4, 10, 1, 9, 13, 1, 5, 1},
      /* whole images side by side, stride 1: flat runs, D as the projection's packed B (7x7 and
      ** a column of one; planes of exactly two 16-output vectors) */
      {1, 1, 1, 3, 5, 37, 5, 7, 7, 1, 0, 1},   {1, 1, 0, 3, 3, 9, 4, 6, 1, 1, 0, 1},
      {1, 1, 0, 2, 4, 20, 6, 4, 8, 1, 0, 1},
      /* more than 128 expanded channels: expanded and depthwise 128 channels at a time */
      {1, 1, 1, 3, 9, 200, 9, 7, 7, 1, 0, 1},  {1, 1, 0, 2, 5, 300, 11, 6, 5, 1, 0, 1},
      {1, 1, 0, 3, 6, 150, 8, 9, 9, 2, 0, 1},   {1, 1, 0, 2, 7, 260, 5, 14, 13, 2, 0, 1},
      /* AVX2's rows (8 outputs a vector): widths of one vector, and of masks repeating every
      ** 17 vectors; 67 (masks past its table: row by row); stride 2 with split rows of two
      ** 16-column steps and a tail, and 1050 outputs a row (past its row buffers) */
      {1, 1, 0, 1, 3, 5, 4, 9, 8, 1, 0, 1},    {1, 1, 1, 2, 4, 6, 4, 10, 17, 1, 0, 1},
      {1, 1, 0, 1, 3, 4, 3, 5, 67, 1, 0, 1},   {1, 1, 0, 2, 3, 4, 3, 6, 33, 2, 0, 1},
      {0, 1, 0, 1, 2, 2, 2, 3, 2100, 2, 0, 1},
  };
  static const int64_t bands[] = {96 * 1024, 1, 700};
  unsigned seed = 11;
  for (size_t i = 0; i < sizeof chains / sizeof chains[0]; i++)
    for (size_t b = 0; b < sizeof bands / sizeof bands[0]; b++) /* a stem needs lpq's GEMM */
      if (chains[i].pk <= 1 || lpq__sgemm_packs_a()) /* kernel: not with LPQ_ISA=generic */
        check(&chains[i], bands[b], seed++);
  /* whole images in fewer groups than threads, more than 128 expanded channels: split by
  ** channels over two threads (lpq's kernels only; one band per image), the shares' edges
  ** inside a 128-channel block and inside an 8-row panel: batch 1 (the projection straight to
  ** the output, a residual), batch 3 (through T, scattered), 1 output row in the second share,
  ** 6 outputs (one share) */
  static const chain_t split[] = {
      {1, 1, 1, 1, 24, 200, 24, 7, 7, 1, 0, 1}, {1, 1, 0, 3, 6, 300, 20, 5, 6, 1, 0, 1},
      {1, 1, 1, 3, 9, 200, 9, 7, 7, 1, 0, 1},   {1, 1, 0, 2, 5, 136, 6, 4, 4, 1, 0, 1},
      {1, 1, 1, 2, 17, 260, 17, 9, 11, 1, 0, 1},
  };
  for (size_t i = 0; i < sizeof split / sizeof split[0]; i++) {
    const int ran = check(&split[i], 96 * 1024, seed++);
    cr_assert_eq(ran, lpq__sgemm_packs_a(), "split case %zu: split %d", i, ran);
    cr_assert_eq(check(&split[i], 700, seed++), 0, "split case %zu in bands: split", i);
  }
}

/* The flat depthwise run alone (lpq__kern_dw3_flat_masks, lpq__kern_dw3_flat_run), where the
** kernel set has one: g planes of H x W back to back against the 3x3, pads-1 loop in double,
** bias and clamp, over widths around the vector and the masks' period (67: past the AVX2 period
** table), planes of 1 and 2 rows (no inner rows) and several planes. The input is exactly the
** planes (a plain load past them is an ASan error) and nothing is written past the outputs. */
static void flat_run_cases(void) {
  static const int64_t gs[] = {1, 2, 3, 5}, hs[] = {1, 2, 3, 4, 7, 14};
  static const int64_t ws[] = {1, 2, 3, 7, 8, 9, 13, 14, 16, 17, 28, 33, 67};
  unsigned seed = 5;
  int ran = 0;
  for (size_t a = 0; a < 4; a++)
    for (size_t b = 0; b < 6; b++)
      for (size_t c = 0; c < 13; c++) {
        const int64_t g = gs[a], H = hs[b], W = ws[c], n = g * H * W;
        uint16_t m[9 * 256];
        const size_t nvec = lpq__kern_dw3_flat_masks(m, 256, g, H, W);
        if (!nvec)
          continue; /* no flat run in this kernel set, or too many vectors */
        float *x = randoms((size_t)n, 1.0f, &seed), *w = randoms(9, 0.5f, &seed);
        float *y = malloc(((size_t)nvec * 16 + 16) * sizeof *y);
        cr_assert(x && w && y);
        for (size_t i = 0; i < nvec * 16 + 16; i++)
          y[i] = 1234.5f;
        lpq__kern_dw3_flat_run(y, 32, x, m, nvec, g, H, W, w, 0.25f, -0.8f, 0.9f);
        for (int64_t p = 0; p < n; p++) {
          const int64_t i = p / (H * W), oy = p % (H * W) / W, ox = p % W;
          double acc = 0.25;
          for (int ky = 0; ky < 3; ky++)
            for (int kx = 0; kx < 3; kx++) {
              const int64_t iy = oy + ky - 1, ix = ox + kx - 1;
              if (iy >= 0 && iy < H && ix >= 0 && ix < W)
                acc += (double)w[3 * ky + kx] * x[(i * H + iy) * W + ix];
            }
          acc = acc < -0.8 ? -0.8 : acc > 0.9 ? 0.9 : acc;
          cr_assert(fabs(y[p] - acc) <= 1e-5, "g %ld H %ld W %ld output %ld: %g, want %g",
                    (long)g, (long)H, (long)W, (long)p, y[p], acc);
        }
        for (size_t i = (size_t)n; i < nvec * 16 + 16; i++)
          cr_assert_eq(y[i], 1234.5f, "g %ld H %ld W %ld: written past the outputs at %zu",
                       (long)g, (long)H, (long)W, i);
        free(x), free(w), free(y);
        ran++;
      }
  if (lpq__isa() == LPQ_ISA_GENERIC)
    cr_assert_eq(ran, 0, "a flat run without AVX2 or AVX-512");
  else
    cr_assert(ran > 0, "the flat run ran on no shape");
}

TestSuite(graph_dwfuse, .timeout = 300);

ISA_TESTS(graph_dwfuse, fused_equals_reference_and_hooked,
          avx2_fused_equals_reference_and_hooked,
          generic_fused_equals_reference_and_hooked, cases)

ISA_TESTS(graph_dwfuse, flat_run_equals_reference, avx2_flat_run_equals_reference,
          generic_flat_run_has_none, flat_run_cases)

Test(graph_dwfuse, off_when_disabled) {
  cr_assert_eq(setenv("LPQ_DWFUSE", "0", 1), 0);
  const chain_t c = {1, 1, 0, 1, 3, 8, 4, 6, 6, 1, 0, 1};
  unsigned seed = 3;
  weights_t wt = {randoms(24, 0.5f, &seed), randoms(8, 0.2f, &seed), randoms(72, 0.4f, &seed),
                  randoms(8, 0.2f, &seed), randoms(32, 0.3f, &seed), randoms(4, 0.2f, &seed)};
  uint8_t *buf;
  const size_t len = build(&c, &wt, &buf);
  lpq_error_t err;
  const int64_t saved_hw = lpq__dwfuse_min_hw;
  lpq__dwfuse_min_hw = 1;
  lpq_graph_t *g = lpq_graph_load_buffer(buf, len, "chain.onnx", 0, &err);
  lpq__dwfuse_min_hw = saved_hw;
  cr_assert_not_null(g, "%s", err.msg);
  cr_assert_eq(fused_chains(g), 0, "LPQ_DWFUSE=0 still fuses");
  lpq_graph_free(&g);
  free(buf), free(wt.we), free(wt.be), free(wt.wd), free(wt.bd), free(wt.wp), free(wt.bp);
}
