/* engine/onnx_load.c: ModelProto -> lpq_graph_t: tensors, topological order, shape inference
** and constant folding, then the rewrites, the layer table and the memory plan. */
#include "engine/engine_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Models larger than this are refused before reading (protobuf's own limit is 2 GiB). */
#define MODEL_MAX_BYTES ((size_t)2 << 30)

/* ---- name -> value index ---- */

static size_t hash_str(const char *s) {
  size_t h = 1469598103934665603ull;
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

static int lookup(const lpq_graph_t *g, const char *name) {
  size_t mask = g->hash_cap - 1;
  for (size_t i = hash_str(name) & mask;; i = (i + 1) & mask) {
    int v = g->hash[i];
    if (v < 0)
      return -1;
    if (strcmp(g->vals[v].name, name) == 0)
      return v;
  }
}

/* Adds a value named name; -1 when the name exists already (the caller reports it). */
static int add_value(lpq_graph_t *g, const char *name, lpq_error_t *err) {
  if (lookup(g, name) >= 0)
    return -1;
  gval_t *v = &g->vals[g->nvals];
  memset(v, 0, sizeof *v);
  v->name = strdup(name);
  if (!v->name)
    return lpq_errorf(err, LPQ_ENOMEM, "out of memory"), -2;
  v->producer = -1;
  v->input_index = -1;
  size_t mask = g->hash_cap - 1, i = hash_str(name) & mask;
  while (g->hash[i] >= 0)
    i = (i + 1) & mask;
  g->hash[i] = (int)g->nvals;
  return (int)g->nvals++;
}

/* ---- building ---- */

static int is_default_domain(const char *d) {
  return !d || !d[0] || strcmp(d, "ai.onnx") == 0;
}

static int add_initializers(lpq_graph_t *g, const Onnx__GraphProto *gp, lpq_error_t *err) {
  for (size_t i = 0; i < gp->n_initializer; i++) {
    const Onnx__TensorProto *t = gp->initializer[i];
    if (!t->name || !t->name[0])
      return lpq_errorf(err, LPQ_EFORMAT, "initializer %zu has no name", i);
    lpq_array_t *a;
    int rc = lpq__tensorproto_to_array(t, &a, err);
    if (rc == 0 && (rc = lpq__array_to_engine_dtype(a, err)) != 0)
      lpq_error_prefix(err, "initializer '%s': ", t->name);
    if (rc != 0) {
      lpq_array_free(&a);
      return rc;
    }
    int vi = add_value(g, t->name, err);
    if (vi < 0) {
      lpq_array_free(&a);
      return vi == -2 ? LPQ_ENOMEM
                      : lpq_errorf(err, LPQ_EFORMAT, "initializer '%s' is defined twice", t->name);
    }
    gval_t *v = gv(g, vi);
    v->onnx_type = t->has_data_type ? t->data_type : 0;
    v->dtype = a->dtype;
    v->ndim = a->ndim;
    memcpy(v->shape, a->shape, sizeof v->shape);
    v->count = a->count;
    v->cdata = a->data;
    v->known = 1;
    a->data = NULL;
    lpq_array_free(&a);
  }
  return 0;
}

static int add_inputs(lpq_graph_t *g, const Onnx__GraphProto *gp, int batch, lpq_error_t *err) {
  g->inputs = calloc(gp->n_input + 1, sizeof *g->inputs);
  if (!g->inputs)
    return lpq_errorf(err, LPQ_ENOMEM, "out of memory");
  for (size_t i = 0; i < gp->n_input; i++) {
    const Onnx__ValueInfoProto *vi = gp->input[i];
    const char *name = vi->name ? vi->name : "";
    if (!name[0])
      return lpq_errorf(err, LPQ_EFORMAT, "graph input %zu has no name", i);
    if (lookup(g, name) >= 0) {
      if (gv(g, lookup(g, name))->cdata)
        continue; /* an initializer listed as input (IR < 4): the initializer is the value */
      return lpq_errorf(err, LPQ_EFORMAT, "graph input '%s' is listed twice", name);
    }
    if (!vi->type || vi->type->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE ||
        !vi->type->tensor_type)
      return lpq_errorf(err, LPQ_EUNSUP, "graph input '%s' is not a tensor", name);
    const Onnx__TypeProto__Tensor *tt = vi->type->tensor_type;
    int dt = tt->has_elem_type ? tt->elem_type : 0;
    if (dt != LPQ_DT_F32 && dt != LPQ_DT_I64 && dt != LPQ_DT_BOOL)
      return lpq_errorf(err, LPQ_EUNSUP, "graph input '%s': data type %d is not supported "
                        "(float, int64, bool)", name, dt);
    if (!tt->shape)
      return lpq_errorf(err, LPQ_EUNSUP, "graph input '%s' has no shape", name);
    if (tt->shape->n_dim > LPQ_MAX_DIMS)
      return lpq_errorf(err, LPQ_EUNSUP, "graph input '%s' has %zu dimensions (at most %d)",
                        name, tt->shape->n_dim, LPQ_MAX_DIMS);
    int64_t shape[LPQ_MAX_DIMS];
    for (size_t d = 0; d < tt->shape->n_dim; d++) {
      const Onnx__TensorShapeProto__Dimension *dim = tt->shape->dim[d];
      int is_value = dim->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
      if (d == 0 && batch > 0 && (g->ninputs == 0 || !is_value)) {
        shape[d] = batch;
      } else if (!is_value) {
        return lpq_errorf(err, LPQ_EUNSUP,
                          "graph input '%s': dimension %zu is symbolic ('%s'); lpq needs static "
                          "shapes (give a batch size for dimension 0)", name, d,
                          dim->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM &&
                          dim->dim_param ? dim->dim_param : "");
      } else if (dim->dim_value < 0) {
        return lpq_errorf(err, LPQ_EFORMAT, "graph input '%s': dimension %zu is %lld", name, d,
                          (long long)dim->dim_value);
      } else {
        shape[d] = dim->dim_value;
      }
    }
    int v = add_value(g, name, err);
    if (v < 0)
      return LPQ_ENOMEM;
    gval_t *val = gv(g, v);
    val->dtype = (lpq_dtype_t)dt;
    val->ndim = (int)tt->shape->n_dim;
    memcpy(val->shape, shape, tt->shape->n_dim * sizeof *shape);
    lpq_error_t e2;
    if (lpq_shape_count(val->ndim, val->shape, lpq_dtype_size(val->dtype), GRAPH_MAX_TENSOR_BYTES,
                        &val->count, &e2) != 0)
      return lpq_errorf(err, LPQ_ERANGE, "graph input '%s': %s", name, e2.msg);
    val->known = 1;
    val->input_index = (int)g->ninputs;
    g->inputs[g->ninputs++] = v;
  }
  return 0;
}

/* Creates the nodes' output values and resolves their inputs (still in file order). */
static int add_nodes(lpq_graph_t *g, const Onnx__GraphProto *gp, gnode_t *nodes, lpq_error_t *err) {
  for (size_t k = 0; k < gp->n_node; k++) {
    const Onnx__NodeProto *np = gp->node[k];
    gnode_t *n = &nodes[k];
    n->proto = np;
    n->layer = -1;
    n->op_type = strdup(np->op_type ? np->op_type : "");
    if (np->name && np->name[0]) {
      n->name = strdup(np->name);
    } else {
      char buf[96];
      snprintf(buf, sizeof buf, "%.60s_%zu", np->op_type ? np->op_type : "node", k);
      n->name = strdup(buf);
    }
    n->nin = (int)np->n_input;
    n->nout = (int)np->n_output;
    n->in = malloc((np->n_input + 1) * sizeof *n->in);
    n->out = malloc((np->n_output + 1) * sizeof *n->out);
    if (!n->op_type || !n->name || !n->in || !n->out)
      return lpq_errorf(err, LPQ_ENOMEM, "out of memory");
    if (!n->op_type[0])
      return lpq__node_err(err, LPQ_EFORMAT, n, "has no op_type");
    if (np->n_output == 0)
      return lpq__node_err(err, LPQ_EFORMAT, n, "has no outputs");
    for (size_t o = 0; o < np->n_output; o++) {
      const char *name = np->output[o] ? np->output[o] : "";
      if (!name[0]) {
        n->out[o] = -1;
        continue;
      }
      int v = add_value(g, name, err);
      if (v == -2)
        return LPQ_ENOMEM;
      if (v < 0)
        return lpq__node_err(err, LPQ_EFORMAT, n, "output '%s' is already defined elsewhere", name);
      gv(g, v)->producer = (int)k;
      n->out[o] = v;
    }
  }
  for (size_t k = 0; k < gp->n_node; k++) {
    const Onnx__NodeProto *np = gp->node[k];
    gnode_t *n = &nodes[k];
    for (size_t i = 0; i < np->n_input; i++) {
      const char *name = np->input[i] ? np->input[i] : "";
      n->in[i] = name[0] ? lookup(g, name) : -1;
      if (name[0] && n->in[i] < 0)
        return lpq__node_err(err, LPQ_EFORMAT, n,
                        "input '%s' is not produced by any node, initializer or graph input",
                        name);
    }
  }
  return 0;
}

/* Kahn's algorithm; g->nodes receives the nodes in topological order. */
static int topo_sort(lpq_graph_t *g, gnode_t *nodes, size_t nn, lpq_error_t *err) {
  int rc = 0;
  size_t *indeg = calloc(nn + 1, sizeof *indeg), *start = calloc(nn + 2, sizeof *start);
  size_t nedges = 0;
  for (size_t k = 0; k < nn; k++)
    for (int i = 0; i < nodes[k].nin; i++)
      if (nodes[k].in[i] >= 0 && gv(g, nodes[k].in[i])->producer >= 0)
        nedges++;
  size_t *edges = malloc((nedges + 1) * sizeof *edges), *fill = calloc(nn + 1, sizeof *fill);
  size_t *queue = malloc((nn + 1) * sizeof *queue);
  g->nodes = calloc(nn + 1, sizeof *g->nodes);
  if (!indeg || !start || !edges || !fill || !queue || !g->nodes) {
    rc = lpq_errorf(err, LPQ_ENOMEM, "out of memory sorting %zu nodes", nn);
    goto out;
  }
  /* consumers of each producer, as a CSR list */
  for (size_t k = 0; k < nn; k++)
    for (int i = 0; i < nodes[k].nin; i++)
      if (nodes[k].in[i] >= 0 && gv(g, nodes[k].in[i])->producer >= 0) {
        start[gv(g, nodes[k].in[i])->producer + 1]++;
        indeg[k]++;
      }
  for (size_t k = 0; k < nn; k++)
    start[k + 1] += start[k];
  for (size_t k = 0; k < nn; k++)
    for (int i = 0; i < nodes[k].nin; i++)
      if (nodes[k].in[i] >= 0 && gv(g, nodes[k].in[i])->producer >= 0) {
        size_t p = (size_t)gv(g, nodes[k].in[i])->producer;
        edges[start[p] + fill[p]++] = k;
      }
  size_t head = 0, tail = 0;
  for (size_t k = 0; k < nn; k++)
    if (indeg[k] == 0)
      queue[tail++] = k;
  while (head < tail) {
    size_t k = queue[head++];
    for (size_t e = start[k]; e < start[k + 1]; e++)
      if (--indeg[edges[e]] == 0)
        queue[tail++] = edges[e];
  }
  if (tail < nn) {
    for (size_t k = 0; k < nn; k++)
      if (indeg[k] > 0) {
        rc = lpq__node_err(err, LPQ_EFORMAT, &nodes[k], "is part of a cycle (its inputs depend on "
                      "its own output)");
        break;
      }
    goto out;
  }
  /* move the nodes into sorted order and renumber producers */
  for (size_t pos = 0; pos < nn; pos++) {
    g->nodes[pos] = nodes[queue[pos]];
    memset(&nodes[queue[pos]], 0, sizeof nodes[0]);
    for (int o = 0; o < g->nodes[pos].nout; o++)
      if (g->nodes[pos].out[o] >= 0)
        gv(g, g->nodes[pos].out[o])->producer = (int)pos;
  }
  g->nnodes = nn;
out:
  free(indeg), free(start), free(edges), free(fill), free(queue);
  return rc;
}

static int add_outputs(lpq_graph_t *g, const Onnx__GraphProto *gp, lpq_error_t *err) {
  if (gp->n_output == 0)
    return lpq_errorf(err, LPQ_EFORMAT, "the graph has no outputs");
  g->outputs = calloc(gp->n_output, sizeof *g->outputs);
  if (!g->outputs)
    return lpq_errorf(err, LPQ_ENOMEM, "out of memory");
  for (size_t i = 0; i < gp->n_output; i++) {
    const char *name = gp->output[i]->name ? gp->output[i]->name : "";
    int v = lookup(g, name);
    if (v < 0)
      return lpq_errorf(err, LPQ_EFORMAT, "graph output '%s' is not produced by any node", name);
    g->outputs[g->noutputs++] = v;
    gv(g, v)->is_output = 1;
  }
  return 0;
}

/* Marks nodes that no graph output depends on as dead (they are never prepared). */
static void prune(lpq_graph_t *g) {
  for (size_t k = 0; k < g->nnodes; k++)
    g->nodes[k].dead = 1;
  for (size_t i = 0; i < g->noutputs; i++) {
    int p = gv(g, g->outputs[i])->producer;
    if (p >= 0)
      g->nodes[p].dead = 0;
  }
  for (size_t k = g->nnodes; k-- > 0;) {
    gnode_t *n = &g->nodes[k];
    if (n->dead)
      continue;
    for (int i = 0; i < n->nin; i++)
      if (n->in[i] >= 0 && gv(g, n->in[i])->producer >= 0)
        g->nodes[gv(g, n->in[i])->producer].dead = 0;
  }
}

/* Evaluates a node whose inputs are all constant; its outputs become constants. */
static int fold(lpq_graph_t *g, gnode_t *n, lpq_error_t *err) {
  void *in[64], *out[64];
  if (n->nin > 64 || n->nout > 64)
    return lpq__node_err(err, LPQ_EUNSUP, n, "too many inputs or outputs to fold");
  for (int i = 0; i < n->nin; i++)
    in[i] = n->in[i] >= 0 ? gv(g, n->in[i])->cdata : NULL;
  for (int o = 0; o < n->nout; o++) {
    out[o] = NULL;
    if (n->out[o] < 0)
      continue;
    gval_t *v = gv(g, n->out[o]);
    v->cdata = calloc(v->count ? v->count : 1, lpq_dtype_size(v->dtype));
    if (!v->cdata)
      return lpq__node_err(err, LPQ_ENOMEM, n, "out of memory folding %zu elements", v->count);
    out[o] = v->cdata;
  }
  float *scratch = n->scratch_floats ? malloc(n->scratch_floats * sizeof *scratch) : NULL;
  if (n->scratch_floats && !scratch)
    return lpq__node_err(err, LPQ_ENOMEM, n, "out of memory for scratch");
  int rc = lpq__graph_run_node(g, n, in, out, scratch, NULL, NULL, 0, err);
  free(scratch);
  n->dead = 1;
  return rc;
}

static int prepare_all(lpq_graph_t *g, lpq_error_t *err) {
  for (size_t k = 0; k < g->nnodes; k++) {
    gnode_t *n = &g->nodes[k];
    if (n->dead)
      continue;
    if (!is_default_domain(n->proto->domain))
      return lpq__node_err(err, LPQ_EUNSUP, n, "operator domain '%s' is not supported",
                      n->proto->domain);
    n->op = lpq__ops_find(n->op_type);
    if (!n->op)
      return lpq__node_err(err, LPQ_EUNSUP, n, "operator %s is not supported", n->op_type);
    for (size_t a = 0; a < n->proto->n_attribute; a++) {
      const char *an = n->proto->attribute[a]->name ? n->proto->attribute[a]->name : "";
      int known = 0;
      for (const char *const *p = n->op->attrs; p && *p && !known; p++)
        known = strcmp(*p, an) == 0;
      if (!known)
        return lpq__node_err(err, LPQ_EUNSUP, n, "attribute '%s' is not supported", an);
    }
    for (int i = 0; i < n->nin; i++)
      if (n->in[i] >= 0 && !gv(g, n->in[i])->known)
        return lpq__node_err(err, LPQ_EFORMAT, n, "input '%s' has no known shape",
                        gv(g, n->in[i])->name);
    int rc = n->op->prepare(g, n, err);
    if (rc != 0)
      return rc;
    for (int o = 0; o < n->nout; o++)
      if (n->out[o] >= 0 && !gv(g, n->out[o])->known)
        return lpq__node_err(err, LPQ_EUNSUP, n, "optional output %d is not supported", o);
    if (n->dead)
      continue; /* prepare produced constants itself (Constant, Shape) */
    int all_const = 1;
    for (int i = 0; i < n->nin; i++)
      if (n->in[i] >= 0 && !gv(g, n->in[i])->cdata)
        all_const = 0;
    if (all_const && (rc = fold(g, n, err)) != 0)
      return rc;
  }
  return 0;
}

static int build(lpq_graph_t *g, const Onnx__ModelProto *m, int batch, lpq_error_t *err) {
  const Onnx__GraphProto *gp = m->graph;
  if (!gp)
    return lpq_errorf(err, LPQ_EFORMAT, "the model has no graph");
  g->opset = 0;
  for (size_t i = 0; i < m->n_opset_import; i++)
    if (is_default_domain(m->opset_import[i]->domain) && m->opset_import[i]->has_version)
      g->opset = (int)m->opset_import[i]->version;
  if (g->opset == 0)
    g->opset = 1;
  size_t nvals = gp->n_initializer + gp->n_input;
  for (size_t k = 0; k < gp->n_node; k++)
    nvals += gp->node[k]->n_output;
  if (nvals > (size_t)1 << 26 || gp->n_node > (size_t)1 << 24)
    return lpq_errorf(err, LPQ_ERANGE, "the graph is too large (%zu tensors)", nvals);
  g->vals = calloc(nvals + 1, sizeof *g->vals);
  for (g->hash_cap = 16; g->hash_cap < 2 * nvals + 2; g->hash_cap *= 2) {
  }
  g->hash = malloc(g->hash_cap * sizeof *g->hash);
  gnode_t *nodes = calloc(gp->n_node + 1, sizeof *nodes);
  if (!g->vals || !g->hash || !nodes) {
    free(nodes);
    return lpq_errorf(err, LPQ_ENOMEM, "out of memory for %zu tensors", nvals);
  }
  memset(g->hash, 0xff, g->hash_cap * sizeof *g->hash);
  int rc = add_initializers(g, gp, err);
  if (rc == 0)
    rc = add_inputs(g, gp, batch, err);
  if (rc == 0)
    rc = add_nodes(g, gp, nodes, err);
  if (rc == 0)
    rc = topo_sort(g, nodes, gp->n_node, err);
  if (rc != 0) {
    /* nodes not moved into g->nodes yet: free their strings here */
    for (size_t k = 0; k < gp->n_node; k++) {
      free(nodes[k].name), free(nodes[k].op_type), free(nodes[k].in), free(nodes[k].out);
    }
    free(nodes);
    return rc;
  }
  free(nodes);
  if ((rc = add_outputs(g, gp, err)) != 0)
    return rc;
  prune(g);
  if ((rc = prepare_all(g, err)) != 0)
    return rc;
  if ((rc = lpq__graph_optimize(g, err)) != 0)
    return rc;
  if ((rc = lpq__graph_build_layers(g, err)) != 0)
    return rc;
  for (size_t k = 0; k < g->nnodes; k++)
    if (!g->nodes[k].dead &&
        ((strcmp(g->nodes[k].op_type, "Conv") == 0 &&
          (rc = lpq__conv_prepack(g, &g->nodes[k], err)) != 0) ||
         (strcmp(g->nodes[k].op_type, "Gemm") == 0 &&
          (rc = lpq__gemm_prepack(g, &g->nodes[k], err)) != 0) ||
         (strcmp(g->nodes[k].op_type, "MatMul") == 0 &&
          (rc = lpq__matmul_prepack(g, &g->nodes[k], err)) != 0)))
      return rc;
  if ((rc = lpq__dwfuse_plan(g, err)) != 0)
    return rc;
  return lpq__graph_plan(g, err);
}

lpq_graph_t *lpq_graph_load_buffer(const void *data, size_t len, const char *name, int batch,
                                   lpq_error_t *err) {
  if (!name)
    name = "(model)";
  if (!data && len) {
    lpq_errorf(err, LPQ_EINVAL, "%s: NULL data", name);
    return NULL;
  }
  Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, len, data);
  if (!m) {
    lpq_errorf(err, LPQ_EFORMAT, "%s: not a valid ONNX model (protobuf decoding failed on %zu "
               "bytes: truncated or corrupt)", name, len);
    return NULL;
  }
  lpq_graph_t *g = calloc(1, sizeof *g);
  int rc = g ? 0 : lpq_errorf(err, LPQ_ENOMEM, "out of memory");
  if (rc == 0 && !(g->name = strdup(name)))
    rc = lpq_errorf(err, LPQ_ENOMEM, "out of memory");
  Onnx__ModelProto mi = *m; /* with the model's local functions inlined, when it has any */
  Onnx__GraphProto gi;
  lpq__inlined_t inl = {0};
  if (rc == 0 && m->n_functions && m->graph && (rc = lpq__inline_functions(m, &gi, &inl, err)) == 0)
    mi.graph = &gi;
  if (rc == 0)
    rc = build(g, &mi, batch, err);
  for (size_t k = 0; g && k < g->nnodes; k++)
    g->nodes[k].proto = NULL;
  lpq__inlined_free(&inl);
  onnx__model_proto__free_unpacked(m, NULL);
  if (rc != 0) {
    lpq_error_prefix(err, "%s: ", name);
    lpq_graph_free(&g);
  }
  return g;
}

lpq_graph_t *lpq_graph_load(const char *path, int batch, lpq_error_t *err) {
  if (!path) {
    lpq_errorf(err, LPQ_EINVAL, "lpq_graph_load: NULL path");
    return NULL;
  }
  FILE *f = fopen(path, "rb");
  if (!f) {
    lpq_errorf(err, LPQ_EIO, "%s: cannot open: %s", path, strerror(errno));
    return NULL;
  }
  long size = -1;
  if (fseek(f, 0, SEEK_END) == 0)
    size = ftell(f);
  if (size < 0 || fseek(f, 0, SEEK_SET) != 0 || (size_t)size > MODEL_MAX_BYTES) {
    fclose(f);
    lpq_errorf(err, size < 0 ? LPQ_EIO : LPQ_ERANGE, "%s: cannot read (size %ld)", path, size);
    return NULL;
  }
  void *buf = malloc(size ? (size_t)size : 1);
  if (!buf || fread(buf, 1, (size_t)size, f) != (size_t)size) {
    fclose(f);
    free(buf);
    lpq_errorf(err, buf ? LPQ_EIO : LPQ_ENOMEM, "%s: cannot read %ld bytes", path, size);
    return NULL;
  }
  fclose(f);
  lpq_graph_t *g = lpq_graph_load_buffer(buf, (size_t)size, path, batch, err);
  free(buf);
  return g;
}
