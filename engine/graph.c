/* engine/graph.c: the graph object (accessors, free) and the helpers operators use while
** loading (errors naming the node, outputs, constant inputs, attributes). */
#include "engine/engine_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int lpq__node_err(lpq_error_t *err, int code, const gnode_t *n, const char *fmt, ...) {
  char msg[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return lpq_errorf(err, code, "node '%s' (%s): %s", n->name, n->op_type, msg);
}

int lpq__set_output(lpq_graph_t *g, gnode_t *n, int k, lpq_dtype_t dt, int ndim, const int64_t *shape,
               lpq_error_t *err) {
  if (k >= n->nout || n->out[k] < 0)
    return 0; /* an omitted optional output */
  gval_t *v = gv(g, n->out[k]);
  size_t count;
  if (ndim > LPQ_MAX_DIMS)
    return lpq__node_err(err, LPQ_EUNSUP, n, "output '%s' has %d dimensions (at most %d)", v->name,
                    ndim, LPQ_MAX_DIMS);
  lpq_error_t e2;
  if (lpq_shape_count(ndim, shape, lpq_dtype_size(dt), GRAPH_MAX_TENSOR_BYTES, &count, &e2) != 0)
    return lpq__node_err(err, LPQ_ERANGE, n, "output '%s': %s", v->name, e2.msg);
  v->dtype = dt;
  v->ndim = ndim;
  if (ndim > 0)
    memcpy(v->shape, shape, (size_t)ndim * sizeof *shape);
  v->count = count;
  v->known = 1;
  return 0;
}

int lpq__check_arity(const gnode_t *n, int min_in, int max_in, int min_out, int max_out,
                lpq_error_t *err) {
  if (n->nin < min_in || n->nin > max_in)
    return lpq__node_err(err, LPQ_EFORMAT, n, "has %d inputs, expected %d to %d", n->nin, min_in,
                    max_in);
  if (n->nout < min_out || n->nout > max_out)
    return lpq__node_err(err, LPQ_EFORMAT, n, "has %d outputs, expected %d to %d", n->nout, min_out,
                    max_out);
  for (int i = 0; i < min_in; i++)
    if (n->in[i] < 0)
      return lpq__node_err(err, LPQ_EFORMAT, n, "required input %d is empty", i);
  if (n->out[0] < 0)
    return lpq__node_err(err, LPQ_EFORMAT, n, "output 0 has no name");
  return 0;
}

int lpq__need_input(const gnode_t *n, int i, lpq_error_t *err) {
  if (i >= n->nin || n->in[i] < 0)
    return lpq__node_err(err, LPQ_EFORMAT, n, "input %d is missing", i);
  return 0;
}

int lpq__need_dtype(const lpq_graph_t *g, const gnode_t *n, int i, unsigned mask, lpq_error_t *err) {
  if (lpq__need_input(n, i, err) != 0)
    return err ? err->code : LPQ_EFORMAT;
  const gval_t *v = gv(g, n->in[i]);
  if (!(mask & DT(v->dtype)))
    return lpq__node_err(err, LPQ_EUNSUP, n, "input %d '%s' has data type %s, not supported here",
                    i, v->name, lpq_dtype_name(v->dtype));
  return 0;
}

int lpq__const_ints(const lpq_graph_t *g, const gnode_t *n, int i, int64_t *out, size_t max,
               size_t *count, lpq_error_t *err) {
  if (lpq__need_input(n, i, err) != 0)
    return err ? err->code : LPQ_EFORMAT;
  const gval_t *v = gv(g, n->in[i]);
  if (!v->cdata)
    return lpq__node_err(err, LPQ_EUNSUP, n,
                    "input %d '%s' must be a constant (lpq needs static shapes)", i, v->name);
  if (v->dtype != LPQ_DT_I64 || v->ndim > 1)
    return lpq__node_err(err, LPQ_EFORMAT, n, "input %d '%s' must be a 1-D int64 tensor", i,
                    v->name);
  if (v->count > max)
    return lpq__node_err(err, LPQ_ERANGE, n, "input %d '%s' has %zu values (at most %zu)", i,
                    v->name, v->count, max);
  memcpy(out, v->cdata, v->count * sizeof *out);
  *count = v->count;
  return 0;
}

int lpq__norm_axis(const gnode_t *n, int64_t axis, int rank, int *out, lpq_error_t *err) {
  if (axis < -rank || axis >= (rank > 0 ? rank : 1))
    return lpq__node_err(err, LPQ_EFORMAT, n, "axis %lld is out of range for rank %d",
                    (long long)axis, rank);
  *out = (int)(axis < 0 ? axis + rank : axis);
  return 0;
}

/* ---- attributes ---- */

const Onnx__AttributeProto *lpq__attr_find(const gnode_t *n, const char *name) {
  if (!n->proto)
    return NULL;
  for (size_t i = 0; i < n->proto->n_attribute; i++)
    if (n->proto->attribute[i]->name && strcmp(n->proto->attribute[i]->name, name) == 0)
      return n->proto->attribute[i];
  return NULL;
}

static int attr_type_err(const gnode_t *n, const char *name, const char *want, lpq_error_t *err) {
  return lpq__node_err(err, LPQ_EFORMAT, n, "attribute '%s' must be %s", name, want);
}

int lpq__attr_int(const gnode_t *n, const char *name, int64_t def, int64_t *out, lpq_error_t *err) {
  const Onnx__AttributeProto *a = lpq__attr_find(n, name);
  if (!a) {
    *out = def;
    return 0;
  }
  if (a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT)
    return attr_type_err(n, name, "an int", err);
  *out = a->i;
  return 0;
}

int lpq__attr_float(const gnode_t *n, const char *name, float def, float *out, lpq_error_t *err) {
  const Onnx__AttributeProto *a = lpq__attr_find(n, name);
  if (!a) {
    *out = def;
    return 0;
  }
  if (a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT)
    return attr_type_err(n, name, "a float", err);
  *out = a->f;
  return 0;
}

int lpq__attr_ints(const gnode_t *n, const char *name, int64_t *out, size_t max, size_t *count,
              lpq_error_t *err) {
  const Onnx__AttributeProto *a = lpq__attr_find(n, name);
  *count = 0;
  if (!a)
    return 0;
  if (a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS)
    return attr_type_err(n, name, "a list of ints", err);
  if (a->n_ints > max)
    return lpq__node_err(err, LPQ_ERANGE, n, "attribute '%s' has %zu values (at most %zu)", name,
                    a->n_ints, max);
  if (a->n_ints) /* an empty list may have a NULL array */
    memcpy(out, a->ints, a->n_ints * sizeof *out);
  *count = a->n_ints;
  return 0;
}

int lpq__attr_floats(const gnode_t *n, const char *name, float *out, size_t max, size_t *count,
                lpq_error_t *err) {
  const Onnx__AttributeProto *a = lpq__attr_find(n, name);
  *count = 0;
  if (!a)
    return 0;
  if (a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS)
    return attr_type_err(n, name, "a list of floats", err);
  if (a->n_floats > max)
    return lpq__node_err(err, LPQ_ERANGE, n, "attribute '%s' has %zu values (at most %zu)", name,
                    a->n_floats, max);
  if (a->n_floats)
    memcpy(out, a->floats, a->n_floats * sizeof *out);
  *count = a->n_floats;
  return 0;
}

int lpq__attr_string(const gnode_t *n, const char *name, const char *def, char *out, size_t len,
                lpq_error_t *err) {
  const Onnx__AttributeProto *a = lpq__attr_find(n, name);
  if (!a) {
    snprintf(out, len, "%s", def);
    return 0;
  }
  if (a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING)
    return attr_type_err(n, name, "a string", err);
  size_t l = a->s.len < len - 1 ? a->s.len : len - 1;
  memcpy(out, a->s.data, l);
  out[l] = 0;
  return 0;
}

int lpq__attr_tensor(const gnode_t *n, const char *name, lpq_array_t **out, lpq_error_t *err) {
  const Onnx__AttributeProto *a = lpq__attr_find(n, name);
  *out = NULL;
  if (!a)
    return lpq__node_err(err, LPQ_EFORMAT, n, "attribute '%s' is missing", name);
  if (a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR || !a->t)
    return attr_type_err(n, name, "a tensor", err);
  lpq_error_t e2;
  int rc = lpq__tensorproto_to_array(a->t, out, &e2);
  if (rc == 0)
    rc = lpq__array_to_engine_dtype(*out, &e2);
  if (rc != 0) {
    lpq_array_free(out);
    return lpq__node_err(err, rc, n, "attribute '%s': %s", name, e2.msg);
  }
  return 0;
}

/* ---- public accessors ---- */

static void fill_info(const gval_t *v, lpq_tensor_info_t *out) {
  out->name = v->name;
  out->dtype = v->dtype;
  out->ndim = v->ndim;
  out->shape = v->shape;
  out->count = v->count;
}

size_t lpq_graph_num_inputs(const lpq_graph_t *g) { return g ? g->ninputs : 0; }
size_t lpq_graph_num_outputs(const lpq_graph_t *g) { return g ? g->noutputs : 0; }

int lpq_graph_input(const lpq_graph_t *g, size_t i, lpq_tensor_info_t *out) {
  if (!g || !out || i >= g->ninputs)
    return LPQ_EINVAL;
  fill_info(gv(g, g->inputs[i]), out);
  return 0;
}

int lpq_graph_output(const lpq_graph_t *g, size_t i, lpq_tensor_info_t *out) {
  if (!g || !out || i >= g->noutputs)
    return LPQ_EINVAL;
  fill_info(gv(g, g->outputs[i]), out);
  return 0;
}

int64_t lpq_graph_batch(const lpq_graph_t *g) {
  if (!g || g->ninputs == 0)
    return 1;
  const gval_t *v = gv(g, g->inputs[0]);
  return v->ndim > 0 ? v->shape[0] : 1;
}

size_t lpq_graph_exec_bytes(const lpq_graph_t *g) {
  return g ? g->arena_bytes + (g->scratch_floats + g->hook_floats) * sizeof(float) : 0;
}

const char *lpq_layer_kind_name(lpq_layer_kind_t k) {
  switch (k) {
  case LPQ_LAYER_CONV: return "conv";
  case LPQ_LAYER_GEMM: return "gemm";
  case LPQ_LAYER_MATMUL: return "matmul";
  }
  return "unknown";
}

size_t lpq_graph_num_layers(const lpq_graph_t *g) { return g ? g->nlayers : 0; }

const lpq_layer_t *lpq_graph_layer(const lpq_graph_t *g, size_t i) {
  return g && i < g->nlayers ? &g->layers[i] : NULL;
}

void lpq_graph_free(lpq_graph_t **gp) {
  if (!gp || !*gp)
    return;
  lpq_graph_t *g = *gp;
  for (size_t i = 0; i < g->nvals; i++) {
    free(g->vals[i].name);
    free(g->vals[i].cdata);
  }
  for (size_t i = 0; i < g->nnodes; i++) {
    gnode_t *n = &g->nodes[i];
    free(n->name);
    free(n->op_type);
    free(n->in);
    free(n->out);
    free(n->params);
    free(n->wdata);
    free(n->bdata);
    free(n->wpack);
    free(n->fuse);
  }
  free(g->vals);
  free(g->nodes);
  free(g->inputs);
  free(g->outputs);
  free(g->layers);
  free(g->hash);
  free(g->name);
  free(g);
  *gp = NULL;
}
