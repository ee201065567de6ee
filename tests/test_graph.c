/* tests/test_graph.c: the inference graph on a small PyTorch model (tests/fixtures/
** engine_mix_opset{11,17}.onnx, made by tests/fixtures/make_engine_fixtures.py): outputs match
** PyTorch, the layer table, hooks (weight swap, private input copies, output reads), batch
** sizes, sharing one graph between threads, and the memory plan. */
#include "engine/engine.h"
#include "engine/engine_internal.h"

#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIX "tests/fixtures/"
static const char *models[] = {FIX "engine_mix_opset11.onnx", FIX "engine_mix_opset17.onnx"};

static lpq_array_t *load_pb(const char *path) {
  FILE *f = fopen(path, "rb");
  cr_assert_not_null(f, "cannot open %s (run the tests from the repository root)", path);
  static unsigned char buf[1 << 20];
  size_t n = fread(buf, 1, sizeof buf, f);
  fclose(f);
  lpq_array_t *a = NULL;
  lpq_error_t err;
  cr_assert_eq(lpq_tensorproto_load(buf, n, &a, NULL, 0, &err), 0, "%s: %s", path, err.msg);
  return a;
}

static lpq_graph_t *load(const char *path, int batch) {
  lpq_error_t err;
  lpq_graph_t *g = lpq_graph_load(path, batch, &err);
  cr_assert_not_null(g, "%s", err.msg);
  return g;
}

/* Runs g on x (count floats) and returns the output (malloc'd). */
static float *run(const lpq_graph_t *g, const float *x, const lpq_hooks_t *h, int *rc) {
  lpq_error_t err;
  lpq_exec_t *ex = lpq_exec_new(g, &err);
  cr_assert_not_null(ex, "%s", err.msg);
  lpq_tensor_info_t oi;
  lpq_graph_output(g, 0, &oi);
  float *y = calloc(oi.count, sizeof *y);
  int r = lpq_exec_run(ex, x, y, h, &err);
  if (rc)
    *rc = r;
  else
    cr_assert_eq(r, 0, "%s", err.msg);
  lpq_exec_free(&ex);
  cr_assert_null(ex);
  return y;
}

static double max_abs(const float *a, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; i++)
    m = fmax(m, fabs(a[i]));
  return m;
}

Test(graph, matches_pytorch_at_both_opsets) {
  lpq_array_t *x = load_pb(FIX "engine_mix_input.pb"), *want = load_pb(FIX "engine_mix_output.pb");
  const double scale = max_abs(want->data, want->count);
  for (size_t m = 0; m < 2; m++) {
    lpq_graph_t *g = load(models[m], 2);
    lpq_tensor_info_t ii, oi;
    cr_assert_eq(lpq_graph_input(g, 0, &ii), 0);
    cr_assert_eq(lpq_graph_output(g, 0, &oi), 0);
    cr_assert_eq(ii.count, x->count);
    cr_assert_eq(oi.count, want->count);
    cr_assert_eq(lpq_graph_batch(g), 2);
    float *y = run(g, x->data, NULL, NULL);
    for (size_t i = 0; i < oi.count; i++)
      cr_assert_leq(fabs(y[i] - ((float *)want->data)[i]), 1e-4 * scale,
                    "%s: y[%zu] = %g, PyTorch %g", models[m], i, y[i], ((float *)want->data)[i]);
    free(y);
    lpq_graph_free(&g);
  }
  lpq_array_free(&x);
  lpq_array_free(&want);
}

/* A fixture model against PyTorch's output at batch `batch`, with 1 and 2 threads. */
static void matches_fixture(const char *stem, int batch) {
  char path[256];
  snprintf(path, sizeof path, FIX "%s_input.pb", stem);
  lpq_array_t *x = load_pb(path);
  snprintf(path, sizeof path, FIX "%s_output.pb", stem);
  lpq_array_t *want = load_pb(path);
  snprintf(path, sizeof path, FIX "%s.onnx", stem);
  const double scale = max_abs(want->data, want->count);
  lpq_graph_t *g = load(path, batch);
  for (int threads = 1; threads <= 2; threads++) {
    lpq_error_t err;
    lpq_exec_t *ex = lpq_exec_new(g, &err);
    cr_assert_not_null(ex, "%s", err.msg);
    cr_assert_eq(lpq_exec_set_threads(ex, threads, &err), 0, "%s", err.msg);
    float *y = calloc(want->count, sizeof *y);
    cr_assert_eq(lpq_exec_run(ex, x->data, y, NULL, &err), 0, "%s", err.msg);
    for (size_t i = 0; i < want->count; i++)
      cr_assert_leq(fabs(y[i] - ((float *)want->data)[i]), 1e-4 * scale,
                    "%s, %d threads: y[%zu] = %g, PyTorch %g", stem, threads, i, y[i],
                    ((float *)want->data)[i]);
    free(y);
    lpq_exec_free(&ex);
  }
  lpq_graph_free(&g);
  lpq_array_free(&x);
  lpq_array_free(&want);
}

/* RegNet/ResNeXt/EfficientNet shapes (engine_branch.onnx): a projection shortcut computed before
** the branch it is added to, and after it; grouped stride-2 convs; an SE gate; shared biases
** through Identity nodes. Once wrong: the Add fused into the conv that ran first, which read
** the other branch's output before it was written. */
Test(graph, matches_pytorch_on_shortcuts_and_groups) { matches_fixture("engine_branch", 3); }

/* The rewrites those fixtures go through happened: opset 11's three decomposed LayerNorms
** (ReduceMean, Sub, Pow, ReduceMean, Add, Sqrt, Div) each run as one LayerNormalization node,
** and the branch fixture's SiLU (Mul(x, Sigmoid(x))) and HardSwish (Mul(x, HardSigmoid(x))) as
** their Sigmoid nodes alone, while its SE gate Mul(x, Sigmoid(y)) stays a Mul. */
static int live(const lpq_graph_t *g, const char *op) {
  int count = 0;
  for (size_t k = 0; k < g->nnodes; k++)
    count += !g->nodes[k].dead && strcmp(g->nodes[k].op_type, op) == 0;
  return count;
}

Test(graph, decomposed_layernorm_and_silu_are_fused) {
  lpq_graph_t *g = load(models[0], 2);
  cr_assert_eq(live(g, "LayerNormalization"), 3);
  cr_assert_eq(live(g, "Pow"), 0);
  cr_assert_eq(live(g, "Sqrt"), 0);
  lpq_graph_free(&g);
  g = load(FIX "engine_branch.onnx", 3);
  cr_assert_eq(live(g, "Sigmoid"), 2);
  cr_assert_eq(live(g, "HardSigmoid"), 1);
  cr_assert_eq(live(g, "Mul"), 1, "the SiLU's and HardSwish's Muls are fused, the SE gate's not");
  lpq_graph_free(&g);
}

/* F.interpolate's nearest, bilinear (align_corners both ways, up and down) and bicubic modes as
** torch exports them: Resize (engine/ops_resize.c). */
Test(graph, matches_pytorch_on_resize) { matches_fixture("engine_resize", 2); }

/* Add, Mul, Sub, Div over 90,000 outputs in four broadcast patterns (split over two threads)
** against NumPy. */
Test(graph, large_broadcast_ops_match_numpy) { matches_fixture("engine_bcast", 3); }

Test(graph, layer_table) {
  for (size_t m = 0; m < 2; m++) {
    lpq_graph_t *g = load(models[m], 2);
    const size_t n = lpq_graph_num_layers(g);
    size_t convs = 0, gemms = 0, fused = 0;
    for (size_t i = 0; i < n; i++) {
      const lpq_layer_t *L = lpq_graph_layer(g, i);
      cr_assert_not_null(L);
      cr_assert_eq(L->index, i);
      cr_assert(L->name && L->name[0]);
      for (size_t j = 0; j < i; j++)
        cr_assert_str_neq(L->name, lpq_graph_layer(g, j)->name, "layer names repeat");
      size_t wc = 1;
      for (int d = 0; d < L->weight_ndim; d++)
        wc *= (size_t)L->weight_shape[d];
      cr_assert_eq(wc, L->weight_count, "%s: weight shape and count disagree", L->name);
      cr_assert_not_null(L->weight);
      cr_assert_gt(L->macs, 0);
      if (L->kind == LPQ_LAYER_CONV) {
        convs++;
        cr_assert_eq(L->weight_shape[0], L->out_shape[1], "%s: axis 0 is the output channel",
                     L->name);
        cr_assert_eq(L->weight_shape[1] * L->groups, L->in_shape[1]);
        cr_assert_eq(L->K, (size_t)(L->weight_shape[1] * L->kernel[0] * L->kernel[1]));
      } else {
        gemms++;
        cr_assert_eq((int64_t)L->N, L->weight_shape[0], "%s: [N, K] layout", L->name);
        cr_assert_eq((int64_t)L->N, L->out_shape[L->out_ndim - 1]);
        cr_assert_eq((int64_t)L->K, L->in_shape[L->in_ndim - 1]);
      }
      fused += L->fused_act;
    }
    /* stem, depthwise, pointwise, two residual convs, patch embedding */
    cr_assert_eq(convs, 6, "%s: %zu conv layers", models[m], convs);
    /* attention in/out projections, MLP (2), head: MatMul/Gemm with constant weights */
    cr_assert_geq(gemms, 5, "%s: %zu gemm/matmul layers", models[m], gemms);
    cr_assert_geq(fused, 3, "%s: Relu/Clip fused into %zu layers", models[m], fused);
    cr_assert_null(lpq_graph_layer(g, n));
    lpq_graph_free(&g);
  }
}

/* ---- hooks ---- */

typedef struct hook_state_t {
  size_t calls_w, calls_in, calls_out;
  size_t zero_input_of; /* layer whose input the hook zeroes; SIZE_MAX: none */
  size_t zero_weight_of;
  float *zeros;
  size_t out_counts[64];
} hook_state_t;

static const float *hook_weight(void *u, size_t layer, const float *w, size_t count) {
  hook_state_t *s = u;
  s->calls_w++;
  if (layer == s->zero_weight_of) {
    s->zeros = realloc(s->zeros, count * sizeof *s->zeros);
    memset(s->zeros, 0, count * sizeof *s->zeros);
    return s->zeros;
  }
  return w;
}

static int hook_input(void *u, size_t layer, float *x, size_t count) {
  hook_state_t *s = u;
  s->calls_in++;
  if (layer == s->zero_input_of)
    memset(x, 0, count * sizeof *x);
  return 0;
}

static int hook_output(void *u, size_t layer, const float *y, size_t count) {
  hook_state_t *s = u;
  (void)y;
  s->calls_out++;
  if (layer < 64)
    s->out_counts[layer] = count;
  return 0;
}

Test(graph, identity_hooks_change_nothing_and_see_every_layer) {
  lpq_array_t *x = load_pb(FIX "engine_mix_input.pb");
  lpq_graph_t *g = load(models[1], 2);
  hook_state_t s = {.zero_input_of = SIZE_MAX, .zero_weight_of = SIZE_MAX};
  lpq_hooks_t h = {&s, hook_weight, hook_input, hook_output, NULL, NULL};
  float *plain = run(g, x->data, NULL, NULL), *hooked = run(g, x->data, &h, NULL);
  lpq_tensor_info_t oi;
  lpq_graph_output(g, 0, &oi);
  cr_assert_eq(memcmp(plain, hooked, oi.count * sizeof *plain), 0);
  const size_t n = lpq_graph_num_layers(g);
  cr_assert_eq(s.calls_w, n);
  cr_assert_eq(s.calls_in, n);
  cr_assert_eq(s.calls_out, n);
  for (size_t i = 0; i < n && i < 64; i++) {
    const lpq_layer_t *L = lpq_graph_layer(g, i);
    size_t want = 1;
    for (int d = 0; d < L->out_ndim; d++)
      want *= (size_t)L->out_shape[d];
    cr_assert_eq(s.out_counts[i], want, "layer %zu output count", i);
  }
  free(plain), free(hooked);
  lpq_graph_free(&g);
  lpq_array_free(&x);
}

Test(graph, input_hook_edits_a_private_copy) {
  lpq_array_t *x = load_pb(FIX "engine_mix_input.pb");
  lpq_graph_t *g = load(models[1], 2);
  float *before = malloc(x->count * sizeof *before);
  memcpy(before, x->data, x->count * sizeof *before);
  float *plain = run(g, x->data, NULL, NULL);
  lpq_tensor_info_t oi;
  lpq_graph_output(g, 0, &oi);
  /* Layer 0 reads the graph input; zeroing it must not touch the caller's array. The residual
  ** block's first conv shares its input with the Add: zeroing it must change only the conv. */
  for (size_t target = 0; target < lpq_graph_num_layers(g); target++) {
    hook_state_t s = {.zero_input_of = target, .zero_weight_of = SIZE_MAX};
    lpq_hooks_t h = {&s, NULL, hook_input, NULL, NULL, NULL};
    float *y = run(g, x->data, &h, NULL);
    cr_assert_eq(memcmp(before, x->data, x->count * sizeof *before), 0,
                 "layer %zu's input hook wrote into the caller's input", target);
    free(y);
    float *again = run(g, x->data, NULL, NULL); /* nothing leaked into the next run */
    cr_assert_eq(memcmp(plain, again, oi.count * sizeof *plain), 0);
    free(again);
  }
  /* zeroing the stem's input changes the output */
  hook_state_t s = {.zero_input_of = 0, .zero_weight_of = SIZE_MAX};
  lpq_hooks_t h = {&s, NULL, hook_input, NULL, NULL, NULL};
  float *y = run(g, x->data, &h, NULL);
  cr_assert_neq(memcmp(plain, y, oi.count * sizeof *y), 0);
  free(y), free(plain), free(before);
  lpq_graph_free(&g);
  lpq_array_free(&x);
}

/* The out-of-place input hook: halve layer `zero_input_of`'s input into dst (1), leave every
** other layer's as it is (0, no copy). It must equal the in-place hook doing the same. */
static int halve_in_place(void *u, size_t layer, float *x, size_t count) {
  hook_state_t *s = u;
  s->calls_in++;
  for (size_t i = 0; layer == s->zero_input_of && i < count; i++)
    x[i] *= 0.5f;
  return 0;
}

static int halve_to(void *u, size_t layer, const float *x, float *dst, size_t count) {
  hook_state_t *s = u;
  s->calls_in++;
  if (layer != s->zero_input_of)
    return 0;
  for (size_t i = 0; i < count; i++)
    dst[i] = x[i] * 0.5f;
  return 1;
}

static int failing_to(void *u, size_t layer, const float *x, float *dst, size_t count) {
  (void)u, (void)layer, (void)x, (void)dst, (void)count;
  return -1;
}

Test(graph, input_to_hook_equals_the_in_place_one_without_copies) {
  lpq_array_t *x = load_pb(FIX "engine_mix_input.pb");
  lpq_graph_t *g = load(models[1], 2);
  lpq_tensor_info_t oi;
  lpq_graph_output(g, 0, &oi);
  float *plain = run(g, x->data, NULL, NULL);
  const size_t n = lpq_graph_num_layers(g);
  for (size_t target = 0; target <= n; target++) { /* n: no layer changed */
    hook_state_t a = {.zero_input_of = target, .zero_weight_of = SIZE_MAX}, b = a;
    lpq_hooks_t in_place = {&a, NULL, halve_in_place, NULL, NULL, NULL};
    lpq_hooks_t to = {&b, NULL, hook_input, NULL, NULL, halve_to}; /* input_to wins */
    float *ya = run(g, x->data, &in_place, NULL), *yb = run(g, x->data, &to, NULL);
    cr_assert_eq(memcmp(ya, yb, oi.count * sizeof *ya), 0, "layer %zu halved", target);
    cr_assert_eq(b.calls_in, n, "input_to called %zu times, not once per layer", b.calls_in);
    if (target == n)
      cr_assert_eq(memcmp(plain, yb, oi.count * sizeof *yb), 0);
    else if (target == 0)
      cr_assert_neq(memcmp(plain, yb, oi.count * sizeof *yb), 0);
    free(ya), free(yb);
  }
  lpq_hooks_t bad = {NULL, NULL, NULL, NULL, NULL, failing_to};
  int rc = 0;
  float *y = run(g, x->data, &bad, &rc);
  cr_assert_eq(rc, LPQ_ECANCELED);
  free(y), free(plain);
  lpq_graph_free(&g);
  lpq_array_free(&x);
}

Test(graph, weight_hook_swaps_weights_for_one_run) {
  lpq_array_t *x = load_pb(FIX "engine_mix_input.pb");
  lpq_graph_t *g = load(models[1], 2);
  const size_t last = lpq_graph_num_layers(g) - 1; /* the head */
  const lpq_layer_t *L = lpq_graph_layer(g, last);
  float *w_before = malloc(L->weight_count * sizeof *w_before);
  memcpy(w_before, L->weight, L->weight_count * sizeof *w_before);
  float *plain = run(g, x->data, NULL, NULL);
  hook_state_t s = {.zero_input_of = SIZE_MAX, .zero_weight_of = last};
  lpq_hooks_t h = {&s, hook_weight, NULL, NULL, NULL, NULL};
  float *y = run(g, x->data, &h, NULL);
  /* with a zero weight the head outputs its bias: the same row for both samples */
  lpq_tensor_info_t oi;
  lpq_graph_output(g, 0, &oi);
  const size_t per = oi.count / 2;
  for (size_t i = 0; i < per; i++)
    cr_assert_float_eq(y[i], y[per + i], 1e-6);
  cr_assert_neq(memcmp(plain, y, oi.count * sizeof *y), 0);
  cr_assert_eq(memcmp(w_before, L->weight, L->weight_count * sizeof *w_before), 0);
  free(s.zeros), free(plain), free(y), free(w_before);
  lpq_graph_free(&g);
  lpq_array_free(&x);
}

/* Returns a private copy of every weight: the kernels must then use the hook's array (for a
** conv: pack it at run time instead of the weights packed at load) with the same result. */
typedef struct copy_state_t {
  float *copies[64];
} copy_state_t;

static const float *copy_weight(void *u, size_t layer, const float *w, size_t count) {
  copy_state_t *s = u;
  if (layer >= 64)
    return w;
  free(s->copies[layer]);
  s->copies[layer] = malloc(count * sizeof *w);
  memcpy(s->copies[layer], w, count * sizeof *w);
  return s->copies[layer];
}

Test(graph, a_copied_weight_gives_the_same_output) {
  lpq_array_t *x = load_pb(FIX "engine_mix_input.pb");
  lpq_graph_t *g = load(models[1], 2);
  copy_state_t s = {{0}};
  lpq_hooks_t h = {&s, copy_weight, NULL, NULL, NULL, NULL};
  float *plain = run(g, x->data, NULL, NULL), *hooked = run(g, x->data, &h, NULL);
  lpq_tensor_info_t oi;
  lpq_graph_output(g, 0, &oi);
  for (size_t i = 0; i < oi.count; i++)
    cr_assert_float_eq(plain[i], hooked[i], 1e-6 * (1 + fabs(plain[i])), "y[%zu]", i);
  for (int i = 0; i < 64; i++)
    free(s.copies[i]);
  free(plain), free(hooked);
  lpq_graph_free(&g);
  lpq_array_free(&x);
}

static const float *failing_weight(void *u, size_t layer, const float *w, size_t count) {
  (void)u, (void)w, (void)count;
  return layer == 2 ? NULL : w;
}

Test(graph, a_failing_hook_aborts_the_run) {
  lpq_array_t *x = load_pb(FIX "engine_mix_input.pb");
  lpq_graph_t *g = load(models[1], 2);
  lpq_hooks_t h = {NULL, failing_weight, NULL, NULL, NULL, NULL};
  int rc = 0;
  float *y = run(g, x->data, &h, &rc);
  cr_assert_neq(rc, 0);
  free(y);
  lpq_graph_free(&g);
  lpq_array_free(&x);
}

Test(graph, batch_size_is_fixed_at_load) {
  lpq_array_t *x = load_pb(FIX "engine_mix_input.pb");
  lpq_graph_t *g2 = load(models[0], 2), *g1 = load(models[0], 1);
  cr_assert_eq(lpq_graph_batch(g1), 1);
  lpq_tensor_info_t o1, o2;
  lpq_graph_output(g1, 0, &o1);
  lpq_graph_output(g2, 0, &o2);
  cr_assert_eq(o1.count * 2, o2.count);
  float *y2 = run(g2, x->data, NULL, NULL);
  for (int b = 0; b < 2; b++) { /* each sample alone gives its row of the batch */
    float *y1 = run(g1, (const float *)x->data + b * (x->count / 2), NULL, NULL);
    for (size_t i = 0; i < o1.count; i++)
      cr_assert_float_eq(y1[i], y2[b * o1.count + i], 1e-5 * (1 + fabs(y1[i])));
    free(y1);
  }
  free(y2);
  lpq_graph_free(&g1), lpq_graph_free(&g2);
  lpq_array_free(&x);
}

typedef struct thread_arg_t {
  const lpq_graph_t *g;
  const float *x;
  float *y;
} thread_arg_t;

static void *thread_main(void *p) {
  thread_arg_t *a = p;
  lpq_error_t err;
  lpq_exec_t *ex = lpq_exec_new(a->g, &err);
  for (int i = 0; ex && i < 5; i++)
    if (lpq_exec_run(ex, a->x, a->y, NULL, &err) != 0)
      break;
  lpq_exec_free(&ex);
  return NULL;
}

Test(graph, one_graph_many_threads) {
  lpq_array_t *x = load_pb(FIX "engine_mix_input.pb");
  lpq_graph_t *g = load(models[1], 2);
  float *want = run(g, x->data, NULL, NULL);
  lpq_tensor_info_t oi;
  lpq_graph_output(g, 0, &oi);
  pthread_t t[3];
  thread_arg_t a[3];
  for (int i = 0; i < 3; i++) {
    a[i] = (thread_arg_t){g, x->data, calloc(oi.count, sizeof(float))};
    cr_assert_eq(pthread_create(&t[i], NULL, thread_main, &a[i]), 0);
  }
  for (int i = 0; i < 3; i++) {
    pthread_join(t[i], NULL);
    cr_assert_eq(memcmp(a[i].y, want, oi.count * sizeof *want), 0, "thread %d differs", i);
    free(a[i].y);
  }
  free(want);
  lpq_graph_free(&g);
  lpq_array_free(&x);
}

/* The bundled ViT's MatMuls (its linear layers as row blocks, attention's batched products as
** whole matrices) split over an execution context's threads: 2 and 3 threads give 1 thread's
** logits (each task is the same OpenBLAS call on fewer rows or matrices). */
Test(graph, vit_matmuls_over_the_context_threads) {
  lpq_graph_t *g = load("models/vit.onnx", 5);
  lpq_tensor_info_t ii, oi;
  lpq_graph_input(g, 0, &ii);
  lpq_graph_output(g, 0, &oi);
  float *x = malloc(ii.count * sizeof *x), *want = NULL;
  unsigned seed = 11;
  for (size_t i = 0; i < ii.count; i++) {
    seed = seed * 1103515245u + 12345u;
    x[i] = (float)((seed >> 8) & 0xffff) / 32768.0f - 1.0f;
  }
  for (int threads = 1; threads <= 3; threads++) {
    lpq_error_t err;
    lpq_exec_t *ex = lpq_exec_new(g, &err);
    cr_assert_not_null(ex, "%s", err.msg);
    cr_assert_eq(lpq_exec_set_threads(ex, threads, &err), 0, "%s", err.msg);
    float *y = calloc(oi.count, sizeof *y);
    cr_assert_eq(lpq_exec_run(ex, x, y, NULL, &err), 0, "%s", err.msg);
    if (threads == 1) {
      want = y;
    } else {
      const double scale = max_abs(want, oi.count);
      cr_assert_gt(scale, 0);
      for (size_t i = 0; i < oi.count; i++)
        cr_assert_leq(fabs(y[i] - want[i]), 1e-6 * scale, "%d threads: y[%zu] = %.9g, one "
                      "thread %.9g", threads, i, y[i], want[i]);
      free(y);
    }
    lpq_exec_free(&ex);
  }
  free(want), free(x);
  lpq_graph_free(&g);
}

Test(graph, memory_plan_reuses_buffers) {
  lpq_graph_t *g = load(models[1], 512); /* large enough that activations dwarf the scratch */
  /* every layer output alone, summed, exceeds what the plan allocates for all tensors */
  size_t sum = 0;
  for (size_t i = 0; i < lpq_graph_num_layers(g); i++) {
    const lpq_layer_t *L = lpq_graph_layer(g, i);
    size_t c = 1;
    for (int d = 0; d < L->out_ndim; d++)
      c *= (size_t)L->out_shape[d];
    sum += c * sizeof(float);
  }
  cr_assert_lt(lpq_graph_exec_bytes(g), sum, "plan %zu bytes, layer outputs alone %zu",
               lpq_graph_exec_bytes(g), sum);
  lpq_graph_free(&g);
}

Test(graph, load_buffer_equals_load_file) {
  FILE *f = fopen(models[1], "rb");
  cr_assert_not_null(f);
  static unsigned char buf[1 << 20];
  size_t n = fread(buf, 1, sizeof buf, f);
  fclose(f);
  lpq_error_t err;
  lpq_graph_t *a = lpq_graph_load_buffer(buf, n, "mem.onnx", 2, &err), *b = load(models[1], 2);
  cr_assert_not_null(a, "%s", err.msg);
  cr_assert_eq(lpq_graph_num_layers(a), lpq_graph_num_layers(b));
  for (size_t i = 0; i < lpq_graph_num_layers(a); i++)
    cr_assert_str_eq(lpq_graph_layer(a, i)->name, lpq_graph_layer(b, i)->name);
  lpq_graph_free(&a), lpq_graph_free(&b);
}

/* ---- cuts: a run resumed just before a layer from the state a hook saved ---- */

typedef struct cut_state_t {
  lpq_exec_t *x;
  size_t layer, bytes, calls;
  void *state;
} cut_state_t;

/* Rounds each layer's input to 1/64 (a hooked run differs from a plain one) and saves the
** state when the cut's layer comes. */
static int cut_input(void *user, size_t layer, float *x, size_t count) {
  cut_state_t *c = user;
  c->calls++;
  if (c->x && layer == c->layer) {
    lpq_error_t err;
    cr_assert_eq(lpq_exec_cut_save(c->x, layer, c->state, c->bytes, &err), 0, "%s", err.msg);
  }
  for (size_t i = 0; i < count; i++)
    x[i] = roundf(x[i] * 64.0f) / 64.0f;
  return 0;
}

static void resume_everywhere(const char *path, const float *input) {
  lpq_error_t err;
  lpq_graph_t *g = load(path, 2);
  lpq_tensor_info_t oi;
  lpq_graph_output(g, 0, &oi);
  const size_t nl = lpq_graph_num_layers(g);
  cut_state_t c = {0};
  lpq_hooks_t h = {&c, NULL, cut_input, NULL, NULL, NULL};
  float *whole = run(g, input, &h, NULL), *y = calloc(oi.count, sizeof *y);
  lpq_exec_t *saver = lpq_exec_new(g, &err), *resumer = lpq_exec_new(g, &err);
  cr_assert(saver && resumer);
  for (size_t l = 0; l < nl; l++) {
    c = (cut_state_t){.x = saver, .layer = l, .bytes = lpq_graph_cut_bytes(g, l)};
    c.state = malloc(c.bytes + 1);
    cr_assert_eq(lpq_exec_run(saver, input, y, &h, &err), 0, "%s", err.msg);
    c.x = NULL, c.calls = 0;
    memset(y, 0, oi.count * sizeof *y);
    cr_assert_eq(lpq_exec_run_from(resumer, l, c.state, c.bytes, input, y, &h, &err), 0,
                 "%s layer %zu: %s", path, l, err.msg);
    cr_assert_eq(memcmp(y, whole, oi.count * sizeof *y), 0, "%s: resumed at layer %zu, the "
                 "output differs from the whole run's", path, l);
    cr_assert_eq(c.calls, nl - l, "%s: resumed at layer %zu, %zu input hooks ran", path, l,
                 c.calls);
    free(c.state);
  }
  /* a state of the wrong size, a layer that does not exist */
  cr_assert_eq(lpq_exec_run_from(resumer, nl - 1, y, lpq_graph_cut_bytes(g, nl - 1) + 4, input,
                                 y, &h, &err), LPQ_EINVAL);
  cr_assert(strstr(err.msg, "bytes"), "%s", err.msg);
  cr_assert_eq(lpq_exec_run_from(resumer, nl, y, 0, input, y, &h, &err), LPQ_EINVAL);
  cr_assert(strstr(err.msg, "no quantizable layer"), "%s", err.msg);
  cr_assert_eq(lpq_graph_cut_bytes(g, nl), 0);
  lpq_exec_free(&saver);
  lpq_exec_free(&resumer);
  free(whole), free(y);
  lpq_graph_free(&g);
}

Test(graph, a_run_resumed_at_any_cut_equals_the_whole_run) {
  lpq_array_t *x = load_pb(FIX "engine_mix_input.pb");
  resume_everywhere(models[1], x->data);
  lpq_array_free(&x);
  lpq_error_t err;
  cr_assert_eq(lpq_load_npy("models/fashion_calib_256.npy", &x, &err), 0, "%s", err.msg);
  resume_everywhere("models/resnet18.onnx", x->data); /* residual adds live across cuts */
  resume_everywhere("models/mobilenetv2.onnx", x->data);
  resume_everywhere("models/vit.onnx", x->data);
  lpq_array_free(&x);
}
