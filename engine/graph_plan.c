/* engine/graph_plan.c: the memory plan. Every run-time tensor lives from the step that
** produces it to its last consumer; tensors whose lifetimes do not overlap share memory.
** Placement is greedy by size (largest first, lowest offset that fits), which keeps the arena
** close to the largest set of tensors alive at one step. */
#include "engine/engine_internal.h"

#include <stdlib.h>

static size_t align_up(size_t n) { return (n + GRAPH_ALIGN - 1) / GRAPH_ALIGN * GRAPH_ALIGN; }

static size_t val_bytes(const gval_t *v) {
  size_t b = v->count * lpq_dtype_size(v->dtype);
  return align_up(b ? b : 1);
}

typedef struct sized_t {
  size_t size;
  int idx;
} sized_t;

static int by_size_desc(const void *a, const void *b) {
  const sized_t *x = a, *y = b;
  if (x->size != y->size)
    return x->size < y->size ? 1 : -1;
  return x->idx - y->idx;
}

int lpq__graph_plan(lpq_graph_t *g, lpq_error_t *err) {
  size_t nsteps = g->nnodes;
  for (size_t i = 0; i < g->nvals; i++) {
    gval_t *v = &g->vals[i];
    v->def_step = v->last_step = -1;
    v->planned = 0;
  }
  g->scratch_floats = 0;
  g->hook_floats = 0;
  for (size_t k = 0; k < g->nnodes; k++) {
    gnode_t *n = &g->nodes[k];
    if (n->dead)
      continue;
    if (n->scratch_floats > g->scratch_floats)
      g->scratch_floats = n->scratch_floats;
    if (n->layer >= 0 && gv(g, n->in[0])->count > g->hook_floats)
      g->hook_floats = gv(g, n->in[0])->count;
    for (int o = 0; o < n->nout; o++)
      if (n->out[o] >= 0) {
        gval_t *v = gv(g, n->out[o]);
        v->def_step = v->last_step = (int)k;
      }
    /* a fused chain reads its input until its last node */
    const int end = n->fuse && lpq__dwfuse_end(n) > (int)k ? lpq__dwfuse_end(n) : (int)k;
    for (int i = 0; i < n->nin; i++)
      if (n->in[i] >= 0) {
        gval_t *v = gv(g, n->in[i]);
        if (end > v->last_step)
          v->last_step = end;
      }
  }
  sized_t *order = malloc((g->nvals + 1) * sizeof *order);
  size_t *placed_idx = malloc((g->nvals + 1) * sizeof *placed_idx);
  if (!order || !placed_idx) {
    free(order), free(placed_idx);
    return lpq_errorf(err, LPQ_ENOMEM, "out of memory planning %zu tensors", g->nvals);
  }
  size_t m = 0;
  for (size_t i = 0; i < g->nvals; i++) {
    gval_t *v = &g->vals[i];
    if (v->cdata || v->input_index >= 0 || v->def_step < 0)
      continue;
    if (v->is_output)
      v->last_step = (int)nsteps;
    order[m].size = val_bytes(v);
    order[m++].idx = (int)i;
  }
  qsort(order, m, sizeof *order, by_size_desc);
  size_t arena = 0, nplaced = 0;
  size_t *cand = malloc((m + 1) * sizeof *cand);
  if (!cand) {
    free(order), free(placed_idx);
    return lpq_errorf(err, LPQ_ENOMEM, "out of memory planning %zu tensors", g->nvals);
  }
  for (size_t a = 0; a < m; a++) {
    gval_t *v = &g->vals[order[a].idx];
    size_t size = val_bytes(v);
    /* Conflicting (time-overlapping) placed tensors, sorted by offset; take the first gap. */
    size_t nc = 0;
    for (size_t b = 0; b < nplaced; b++) {
      const gval_t *w = &g->vals[placed_idx[b]];
      if (w->def_step <= v->last_step && v->def_step <= w->last_step)
        cand[nc++] = placed_idx[b];
    }
    for (size_t i = 1; i < nc; i++) /* insertion sort by offset: conflicts are few */
      for (size_t j = i; j > 0 && g->vals[cand[j]].offset < g->vals[cand[j - 1]].offset; j--) {
        size_t t = cand[j];
        cand[j] = cand[j - 1];
        cand[j - 1] = t;
      }
    size_t off = 0;
    for (size_t i = 0; i < nc; i++) {
      const gval_t *w = &g->vals[cand[i]];
      if (w->offset >= off + size)
        break;
      size_t end = w->offset + val_bytes(w);
      if (end > off)
        off = end;
    }
    v->offset = off;
    v->planned = 1;
    placed_idx[nplaced++] = (size_t)order[a].idx;
    if (off + size > arena)
      arena = off + size;
  }
  g->arena_bytes = arena;
  free(cand), free(order), free(placed_idx);
  return 0;
}
