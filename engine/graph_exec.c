/* engine/graph_exec.c: execution contexts and the forward pass, with the quantization hooks. */
#include "engine/engine_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <emmintrin.h>
#endif

struct lpq_exec_t {
  const lpq_graph_t *g;
  char *arena;
  float *scratch;
  float *hookbuf;
  float *biasbuf; /* a conv's bias plus the bias hook's shift: the widest layer's channels */
  void **ptr; /* data of every tensor: constants, arena slices, the caller's inputs */
  threads_t *pool;    /* lpq_exec_set_threads */
  double *node_ms; /* LPQ_PROFILE set: time per node, printed by lpq_exec_free */
  size_t runs;
};

/* The calling thread's CPU time: per-node profiles stay meaningful on a busy machine (with one
** thread; worker threads' time is not counted). */
static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Per-op-type totals of a profiled context, slowest first, on stderr. */
static void print_profile(const lpq_exec_t *x) {
  const lpq_graph_t *g = x->g;
  double total = 0.0;
  for (size_t k = 0; k < g->nnodes; k++)
    total += x->node_ms[k];
  fprintf(stderr, "lpq profile (thread CPU time): %s, %zu runs, %.3f ms per run\n", g->name, x->runs,
          x->runs ? total / (double)x->runs : 0.0);
  if (strcmp(getenv("LPQ_PROFILE"), "nodes") == 0) /* every node, in order */
    for (size_t k = 0; k < g->nnodes; k++)
      if (!g->nodes[k].dead)
        fprintf(stderr, "  %-40s %-14s %9.3f ms/run\n", g->nodes[k].name, g->nodes[k].op_type,
                x->node_ms[k] / (double)(x->runs ? x->runs : 1));
  for (size_t k = 0; k < g->nnodes; k++) {
    if (g->nodes[k].dead || x->node_ms[k] < 0)
      continue;
    double sum = 0.0;
    int count = 0;
    for (size_t j = k; j < g->nnodes; j++)
      if (!g->nodes[j].dead && x->node_ms[j] >= 0 && strcmp(g->nodes[j].op_type, g->nodes[k].op_type) == 0) {
        sum += x->node_ms[j];
        count++;
        if (j != k)
          x->node_ms[j] = -1.0;
      }
    fprintf(stderr, "  %-22s %4d nodes %10.3f ms/run %5.1f%%\n", g->nodes[k].op_type, count,
            sum / (double)(x->runs ? x->runs : 1), total > 0 ? 100.0 * sum / total : 0.0);
  }
}

void lpq__apply_act(const gnode_t *n, float *y, size_t count) {
  if (n->act != ACT_CLIP)
    return;
  lpq__kern_bias_clamp(y, 0.0f, n->act_lo, n->act_hi, count);
}

/* graph_run_node with the bias hook's effect: bias_override replaces a conv's bias, out_shift
** goes to gemm/matmul (see kctx_t). */
static int run_node_hooked(const lpq_graph_t *g, const gnode_t *n, void *const *in,
                           void *const *out, float *scratch, const float *weight_override,
                           const float *bias_override, const float *out_shift, threads_t *pool,
                           size_t scratch_stride, lpq_error_t *err) {
  kctx_t k = {.g = g, .n = n, .in = in, .out = out, .scratch = scratch, .err = err,
              .pool = pool, .scratch_stride = scratch_stride, .out_shift = out_shift};
  k.weight = weight_override ? weight_override
             : n->wdata      ? n->wdata
             : n->nin > 1    ? (const float *)in[1]
                             : NULL;
  k.bias = bias_override ? bias_override
           : n->bdata    ? n->bdata
           : n->nin > 2  ? (const float *)in[2]
                         : NULL;
  return n->op->run(&k);
}

int lpq__graph_run_node(const lpq_graph_t *g, const gnode_t *n, void *const *in, void *const *out,
                   float *scratch, const float *weight_override, threads_t *pool,
                   size_t scratch_stride, lpq_error_t *err) {
  return run_node_hooked(g, n, in, out, scratch, weight_override, NULL, NULL, pool,
                         scratch_stride, err);
}

lpq_exec_t *lpq_exec_new(const lpq_graph_t *g, lpq_error_t *err) {
  if (!g) {
    lpq_errorf(err, LPQ_EINVAL, "lpq_exec_new: NULL graph");
    return NULL;
  }
  lpq_exec_t *x = calloc(1, sizeof *x);
  if (!x)
    goto nomem;
  x->g = g;
  x->ptr = calloc(g->nvals + 1, sizeof *x->ptr);
  x->arena = aligned_alloc(GRAPH_ALIGN, g->arena_bytes ? g->arena_bytes : GRAPH_ALIGN);
  x->scratch = malloc((g->scratch_floats + 16) * sizeof(float));
  x->hookbuf = malloc((g->hook_floats + 16) * sizeof(float));
  size_t channels_max = 1;
  for (size_t i = 0; i < g->nlayers; i++)
    if ((size_t)g->layers[i].weight_shape[0] > channels_max)
      channels_max = (size_t)g->layers[i].weight_shape[0];
  x->biasbuf = malloc(channels_max * sizeof(float));
  if (getenv("LPQ_PROFILE") && !(x->node_ms = calloc(g->nnodes + 1, sizeof *x->node_ms)))
    goto nomem;
  if (!x->ptr || !x->arena || !x->scratch || !x->hookbuf || !x->biasbuf)
    goto nomem;
  for (size_t i = 0; i < g->nvals; i++) {
    const gval_t *v = &g->vals[i];
    if (v->cdata)
      x->ptr[i] = v->cdata;
    else if (v->planned)
      x->ptr[i] = x->arena + v->offset;
  }
  return x;
nomem:
  lpq_errorf(err, LPQ_ENOMEM, "%s: out of memory for an execution context (%zu bytes)", g->name,
             lpq_graph_exec_bytes(g));
  lpq_exec_free(&x);
  return NULL;
}

void lpq_exec_free(lpq_exec_t **xp) {
  if (!xp || !*xp)
    return;
  lpq_exec_t *x = *xp;
  if (x->node_ms)
    print_profile(x);
  free(x->node_ms);
  lpq__threads_free(&x->pool);
  free(x->ptr);
  free(x->arena);
  free(x->scratch);
  free(x->hookbuf);
  free(x->biasbuf);
  free(x);
  *xp = NULL;
}

int lpq_exec_set_threads(lpq_exec_t *x, int threads, lpq_error_t *err) {
  if (!x || threads < 1 || threads > 256)
    return lpq_errorf(err, LPQ_EINVAL, "lpq_exec_set_threads: %d threads (1 to 256)", threads);
  if (threads == lpq__threads_count(x->pool))
    return 0;
  float *s = malloc((x->g->scratch_floats * (size_t)threads + 16) * sizeof *s);
  threads_t *p = threads > 1 ? lpq__threads_new(threads) : NULL;
  if (!s || (threads > 1 && !p)) {
    free(s);
    lpq__threads_free(&p);
    return lpq_errorf(err, LPQ_ENOMEM, "%s: cannot start %d threads", x->g->name, threads);
  }
  free(x->scratch);
  lpq__threads_free(&x->pool);
  x->scratch = s;
  x->pool = p;
  return 0;
}

/* Runs a quantizable layer through the hooks: private input copy, weight swap, output read. */
static int run_hooked(lpq_exec_t *x, const gnode_t *n, void **in, void **out,
                      const lpq_hooks_t *h, lpq_error_t *err) {
  const lpq_layer_t *L = &x->g->layers[n->layer];
  if (h->input_to) { /* out of place: no copy, and none at all for a layer it leaves alone */
    const gval_t *v = gv(x->g, n->in[0]);
    const int r = h->input_to(h->user, L->index, in[0], x->hookbuf, v->count);
    if (r < 0)
      return lpq__node_err(err, LPQ_ECANCELED, n, "the input hook of layer %zu failed", L->index);
    if (r > 0)
      in[0] = x->hookbuf;
  } else if (h->input) {
    const gval_t *v = gv(x->g, n->in[0]);
    memcpy(x->hookbuf, in[0], v->count * sizeof(float));
    in[0] = x->hookbuf;
    if (h->input(h->user, L->index, x->hookbuf, v->count) != 0)
      return lpq__node_err(err, LPQ_ECANCELED, n, "the input hook of layer %zu failed", L->index);
  }
  const float *w = NULL;
  if (h->weight) {
    w = h->weight(h->user, L->index, L->weight, L->weight_count);
    if (!w)
      return lpq__node_err(err, LPQ_ECANCELED, n, "the weight hook of layer %zu failed", L->index);
  }
  const float *bias = NULL, *shift = NULL;
  if (h->bias && (shift = h->bias(h->user, L->index, (size_t)L->weight_shape[0])) != NULL &&
      L->kind == LPQ_LAYER_CONV) {
    for (int64_t c = 0; c < L->weight_shape[0]; c++)
      x->biasbuf[c] = (L->bias ? L->bias[c] : 0.0f) + shift[c];
    bias = x->biasbuf;
    shift = NULL;
  }
  int rc = run_node_hooked(x->g, n, in, out, x->scratch, w, bias, shift, x->pool,
                           x->g->scratch_floats, err);
  if (rc == 0 && h->output &&
      h->output(h->user, L->index, out[0], gv(x->g, n->out[0])->count) != 0)
    rc = lpq__node_err(err, LPQ_ECANCELED, n, "the output hook of layer %zu failed", L->index);
  return rc;
}

/* Runs nodes first.. of the graph (first > 0: a cut's state restored, see lpq_exec_run_from). */
static int run_nodes(lpq_exec_t *x, size_t first, const void *const *inputs,
                     void *const *outputs, const lpq_hooks_t *hooks, lpq_error_t *err) {
  if (!x || (!inputs && x->g->ninputs) || !outputs)
    return lpq_errorf(err, LPQ_EINVAL, "lpq_exec_run: NULL argument");
  const lpq_graph_t *g = x->g;
  for (size_t i = 0; i < g->ninputs; i++) {
    if (!inputs[i])
      return lpq_errorf(err, LPQ_EINVAL, "lpq_exec_run: input %zu is NULL", i);
    x->ptr[g->inputs[i]] = (void *)inputs[i]; /* read only: kernels never write their inputs */
  }
  void *in[64], *out[64];
  int skip = 0; /* live nodes a fused chain covered */
  for (size_t k = first; k < g->nnodes; k++) {
    const gnode_t *n = &g->nodes[k];
    if (n->dead)
      continue;
    if (skip > 0) {
      skip--;
      continue;
    }
    for (int i = 0; i < n->nin; i++)
      in[i] = n->in[i] >= 0 ? x->ptr[n->in[i]] : NULL;
    for (int o = 0; o < n->nout; o++)
      out[o] = n->out[o] >= 0 ? x->ptr[n->out[o]] : NULL;
    const double t0 = x->node_ms ? now_ms() : 0.0;
    int rc;
    if (!hooks && n->fuse) { /* plain run: the chain at once (ops_dwfuse.c) */
      rc = lpq__dwfuse_run(g, n, x->ptr, x->scratch, x->pool, g->scratch_floats, err);
      skip = rc > 0 ? rc : 0;
      rc = rc < 0 ? rc : 0;
    } else {
      rc = hooks && n->layer >= 0 ? run_hooked(x, n, in, out, hooks, err)
                                  : lpq__graph_run_node(g, n, in, out, x->scratch, NULL, x->pool,
                                                        g->scratch_floats, err);
    }
    if (x->node_ms)
      x->node_ms[k] += now_ms() - t0;
    if (rc != 0)
      return lpq_error_prefix(err, "%s: ", g->name);
  }
  x->runs++;
  for (size_t i = 0; i < g->noutputs; i++) {
    const gval_t *v = gv(g, g->outputs[i]);
    memcpy(outputs[i], x->ptr[g->outputs[i]], v->count * lpq_dtype_size(v->dtype));
  }
  return 0;
}

int lpq_exec_run_multi(lpq_exec_t *x, const void *const *inputs, void *const *outputs,
                       const lpq_hooks_t *hooks, lpq_error_t *err) {
  return run_nodes(x, 0, inputs, outputs, hooks, err);
}

/* One float input, one float output: lpq_exec_run's and lpq_exec_run_from's graphs. */
static int check_single(const lpq_exec_t *x, lpq_error_t *err) {
  if (!x)
    return lpq_errorf(err, LPQ_EINVAL, "lpq_exec_run: NULL context");
  const lpq_graph_t *g = x->g;
  if (g->ninputs != 1 || g->noutputs != 1 || gv(g, g->inputs[0])->dtype != LPQ_DT_F32 ||
      gv(g, g->outputs[0])->dtype != LPQ_DT_F32)
    return lpq_errorf(err, LPQ_EINVAL, "%s: lpq_exec_run needs one float input and one float "
                      "output (the graph has %zu inputs, %zu outputs)", g->name, g->ninputs,
                      g->noutputs);
  return 0;
}

int lpq_exec_run(lpq_exec_t *x, const float *input, float *output, const lpq_hooks_t *hooks,
                 lpq_error_t *err) {
  int rc = check_single(x, err);
  const void *ins[1] = {input};
  void *outs[1] = {output};
  return rc != 0 ? rc : run_nodes(x, 0, ins, outs, hooks, err);
}

/* ---- cuts: the state of a run just before a quantizable layer's node ---- */

static int layer_node(const lpq_graph_t *g, size_t layer) {
  for (size_t k = 0; layer < g->nlayers && k < g->nnodes; k++)
    if (!g->nodes[k].dead && g->nodes[k].layer == (int)layer)
      return (int)k;
  return -1;
}

/* A run-time tensor computed before node k that node k or a later one (or the output) reads. */
static int live_at(const gval_t *v, int k) {
  return v->planned && v->def_step >= 0 && v->def_step < k && v->last_step >= k;
}

static size_t val_bytes(const gval_t *v) { return v->count * lpq_dtype_size(v->dtype); }

size_t lpq_graph_cut_bytes(const lpq_graph_t *g, size_t layer) {
  int k = g ? layer_node(g, layer) : -1;
  size_t bytes = 0;
  for (size_t i = 0; k >= 0 && i < g->nvals; i++)
    if (live_at(&g->vals[i], k))
      bytes += val_bytes(&g->vals[i]);
  return bytes;
}

/* A save's copy: the state is read back (if ever) long after, so on x86-64 its stores bypass
** the caches (SSE2's streaming stores, in every x86-64): no read of each destination line
** first, and the tensors the next layers read stay cached. glibc's memcpy streams only above
** a threshold set from the last-level cache's size, which VMs report as hundreds of MB; a
** 12.8 MB state copied 1.8x faster so (8 copies: 12.8 ms against 7.1). */
static void copy_out(char *dst, const char *src, size_t n) {
#if defined(__x86_64__) && defined(__GNUC__)
  size_t head = (size_t)(-(uintptr_t)dst & 15);
  if (n >= 4096 && head < n) {
    memcpy(dst, src, head);
    dst += head, src += head, n -= head;
    for (; n >= 64; n -= 64, dst += 64, src += 64) {
      __m128i a = _mm_loadu_si128((const __m128i *)(const void *)src);
      __m128i b = _mm_loadu_si128((const __m128i *)(const void *)(src + 16));
      __m128i c = _mm_loadu_si128((const __m128i *)(const void *)(src + 32));
      __m128i d = _mm_loadu_si128((const __m128i *)(const void *)(src + 48));
      _mm_stream_si128((__m128i *)(void *)dst, a);
      _mm_stream_si128((__m128i *)(void *)(dst + 16), b);
      _mm_stream_si128((__m128i *)(void *)(dst + 32), c);
      _mm_stream_si128((__m128i *)(void *)(dst + 48), d);
    }
    _mm_sfence(); /* the streamed stores are ordered before whatever follows */
  }
#endif
  memcpy(dst, src, n);
}

/* Copies the live tensors at layer's cut between the arena and state (save: to state). */
static int cut_copy(const lpq_exec_t *x, size_t layer, void *state, size_t bytes, int save,
                    lpq_error_t *err) {
  const lpq_graph_t *g = x->g;
  int k = layer_node(g, layer);
  if (k < 0)
    return lpq_errorf(err, LPQ_EINVAL, "%s: no quantizable layer %zu (%zu layers)", g->name,
                      layer, g->nlayers);
  if (bytes != lpq_graph_cut_bytes(g, layer) || (bytes && !state))
    return lpq_errorf(err, LPQ_EINVAL, "%s: the state before layer %zu holds %zu bytes, not %zu",
                      g->name, layer, lpq_graph_cut_bytes(g, layer), bytes);
  char *p = state;
  for (size_t i = 0; i < g->nvals; i++) {
    const gval_t *v = &g->vals[i];
    if (!live_at(v, k))
      continue;
    if (save)
      copy_out(p, (const char *)x->ptr[i], val_bytes(v));
    else
      memcpy(x->ptr[i], p, val_bytes(v));
    p += val_bytes(v);
  }
  return k;
}

int lpq_exec_cut_save(const lpq_exec_t *x, size_t layer, void *state, size_t bytes,
                      lpq_error_t *err) {
  if (!x)
    return lpq_errorf(err, LPQ_EINVAL, "lpq_exec_cut_save: NULL context");
  int k = cut_copy(x, layer, state, bytes, 1, err);
  return k < 0 ? k : 0;
}

int lpq_exec_run_from(lpq_exec_t *x, size_t layer, const void *state, size_t bytes,
                      const float *input, float *output, const lpq_hooks_t *hooks,
                      lpq_error_t *err) {
  int rc = check_single(x, err);
  if (rc != 0)
    return rc;
  int k = cut_copy(x, layer, (void *)state, bytes, 0, err);
  if (k < 0)
    return k;
  const void *ins[1] = {input};
  void *outs[1] = {output};
  return run_nodes(x, (size_t)k, ins, outs, hooks, err);
}
