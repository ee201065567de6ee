/*
** tests/fuzz/fuzz_onnx.c: the ONNX loader, lpq_graph_load_buffer with batch 1 (parsing,
** checks, topological order, constant folding, fusions, memory plan). A graph that loads and
** is small is also run once, so the kernels see the shapes the loader accepted.
*/
#include "tests/fuzz/fuzz.h"

#include "engine/engine.h"

/* Bounds on what is run: the fuzzer's time goes to inputs, not to big convolutions. */
#define FUZZ_ONNX_MAX_EXEC_BYTES ((size_t)16 << 20)
#define FUZZ_ONNX_MAX_MACS 20000000ull
#define FUZZ_ONNX_MAX_IO 16

static int fuzz_onnx_small(const lpq_graph_t *g) {
  if (lpq_graph_exec_bytes(g) > FUZZ_ONNX_MAX_EXEC_BYTES)
    return 0;
  if (lpq_graph_num_inputs(g) > FUZZ_ONNX_MAX_IO || lpq_graph_num_outputs(g) > FUZZ_ONNX_MAX_IO)
    return 0;
  uint64_t macs = 0;
  for (size_t i = 0; i < lpq_graph_num_layers(g); i++)
    macs += lpq_graph_layer(g, i)->macs;
  return macs <= FUZZ_ONNX_MAX_MACS;
}

/* Inputs with small values of every sign (indices stay mostly in range, some do not). */
static void *fuzz_onnx_input(const lpq_tensor_info_t *t) {
  size_t elem = lpq_dtype_size(t->dtype);
  FUZZ_CHECK(elem > 0, "input '%s' has unknown dtype %d", t->name, (int)t->dtype);
  unsigned char *p = calloc(t->count ? t->count : 1, elem);
  if (p == NULL)
    return NULL;
  for (size_t i = 0; i < t->count; i++) {
    int v = (int)(i % 7) - 3;
    if (t->dtype == LPQ_DT_F32)
      ((float *)p)[i] = (float)v * 0.5f;
    else if (t->dtype == LPQ_DT_I64)
      ((int64_t *)p)[i] = v;
    else if (t->dtype == LPQ_DT_BOOL)
      p[i] = (unsigned char)(v > 0);
  }
  return p;
}

static void fuzz_onnx_run(const lpq_graph_t *g) {
  size_t nin = lpq_graph_num_inputs(g), nout = lpq_graph_num_outputs(g);
  void *ins[FUZZ_ONNX_MAX_IO] = {0}, *outs[FUZZ_ONNX_MAX_IO] = {0};
  lpq_tensor_info_t t;
  lpq_error_t err;
  int ok = 1;
  for (size_t i = 0; i < nin && ok; i++) {
    FUZZ_CHECK(lpq_graph_input(g, i, &t) == 0, "input %zu", i);
    ok = (ins[i] = fuzz_onnx_input(&t)) != NULL;
  }
  for (size_t i = 0; i < nout && ok; i++) {
    FUZZ_CHECK(lpq_graph_output(g, i, &t) == 0, "output %zu", i);
    size_t elem = lpq_dtype_size(t.dtype);
    FUZZ_CHECK(elem > 0, "output '%s' has unknown dtype %d", t.name, (int)t.dtype);
    ok = (outs[i] = calloc(t.count ? t.count : 1, elem)) != NULL;
  }
  lpq_exec_t *x = ok ? lpq_exec_new(g, &err) : NULL;
  if (x) {
    int rc = lpq_exec_run_multi(x, (const void *const *)ins, outs, NULL, &err);
    FUZZ_CHECK(rc == 0 || err.msg[0] != '\0', "run failed (%d) without a message", rc);
    lpq_exec_free(&x);
  }
  for (size_t i = 0; i < FUZZ_ONNX_MAX_IO; i++) {
    free(ins[i]);
    free(outs[i]);
  }
}

void fuzz_onnx(const uint8_t *data, size_t size) {
  lpq_error_t err;
  lpq_graph_t *g = lpq_graph_load_buffer(data, size, "fuzz", 1, &err);
  if (g == NULL) {
    FUZZ_CHECK(err.msg[0] != '\0', "load failed without a message");
    return;
  }
  for (size_t i = 0; i < lpq_graph_num_layers(g); i++) {
    const lpq_layer_t *l = lpq_graph_layer(g, i);
    FUZZ_CHECK(l != NULL && l->index == i, "layer %zu", i);
    FUZZ_CHECK(l->weight_count == 0 || l->weight != NULL, "layer %zu has no weight", i);
  }
  if (fuzz_onnx_small(g))
    fuzz_onnx_run(g);
  lpq_graph_free(&g);
  FUZZ_CHECK(g == NULL, "lpq_graph_free left the pointer set");
}

LPQ_FUZZ_MAIN(fuzz_onnx)
