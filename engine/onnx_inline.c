/* engine/onnx_inline.c: model-local functions (ModelProto.functions, e.g. the `lpq` domain's
** LPDequantize and LPQuantize of the quantized export) expanded into their bodies before the
** graph is built, as runtimes that inline functions do: a call becomes copies of the body's
** nodes, the function's formal inputs and outputs renamed to the call's actual ones and every
** name inside prefixed with the call's, so two calls never share a tensor. One level: a body
** that calls another local function, or refers to the call's attributes, is refused by name. */
#include "engine/engine_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const Onnx__FunctionProto *find_function(const Onnx__ModelProto *m,
                                                const Onnx__NodeProto *n) {
  for (size_t i = 0; i < m->n_functions; i++) {
    const Onnx__FunctionProto *f = m->functions[i];
    const char *fd = f->domain ? f->domain : "", *nd = n->domain ? n->domain : "";
    if (f->name && n->op_type && strcmp(f->name, n->op_type) == 0 && strcmp(fd, nd) == 0)
      return f;
  }
  return NULL;
}

static char *map_name(const Onnx__FunctionProto *f, const Onnx__NodeProto *call,
                      const char *prefix, const char *name) {
  if (!name || !name[0])
    return strdup("");
  for (size_t i = 0; i < f->n_input; i++)
    if (f->input[i] && strcmp(f->input[i], name) == 0)
      return strdup(i < call->n_input && call->input[i] ? call->input[i] : "");
  for (size_t i = 0; i < f->n_output; i++)
    if (f->output[i] && strcmp(f->output[i], name) == 0)
      return strdup(i < call->n_output && call->output[i] ? call->output[i] : "");
  size_t len = strlen(prefix) + strlen(name) + 2;
  char *s = malloc(len);
  if (s)
    snprintf(s, len, "%s/%s", prefix, name);
  return s;
}

static void clone_free(Onnx__NodeProto *c) {
  if (!c)
    return;
  for (size_t i = 0; c->input && i < c->n_input; i++)
    free(c->input[i]);
  for (size_t i = 0; c->output && i < c->n_output; i++)
    free(c->output[i]);
  free(c->input);
  free(c->output);
  free(c->name);
  free(c->op_type);
  free(c->domain);
  free(c); /* the attributes are the body's: the model owns them */
}

/* A copy of body node b for the call, or NULL (out of memory). */
static Onnx__NodeProto *clone(const Onnx__FunctionProto *f, const Onnx__NodeProto *call,
                              const Onnx__NodeProto *b, const char *prefix, size_t k) {
  Onnx__NodeProto *c = malloc(sizeof *c);
  if (!c)
    return NULL;
  onnx__node_proto__init(c);
  c->input = calloc(b->n_input + 1, sizeof *c->input);
  c->output = calloc(b->n_output + 1, sizeof *c->output);
  char nm[256];
  snprintf(nm, sizeof nm, "%s/%s", prefix, b->name && b->name[0] ? b->name : b->op_type);
  c->name = strdup(nm);
  c->op_type = strdup(b->op_type ? b->op_type : "");
  c->domain = strdup(b->domain ? b->domain : "");
  int ok = c->input && c->output && c->name && c->op_type && c->domain;
  for (size_t i = 0; ok && i < b->n_input; i++, c->n_input++)
    ok = (c->input[i] = map_name(f, call, prefix, b->input[i])) != NULL;
  for (size_t i = 0; ok && i < b->n_output; i++, c->n_output++)
    ok = (c->output[i] = map_name(f, call, prefix, b->output[i])) != NULL;
  c->n_attribute = b->n_attribute;
  c->attribute = b->attribute;
  (void)k;
  if (!ok) {
    clone_free(c);
    return NULL;
  }
  return c;
}

int lpq__inline_functions(const Onnx__ModelProto *m, Onnx__GraphProto *out,
                          lpq__inlined_t *owned, lpq_error_t *err) {
  const Onnx__GraphProto *gp = m->graph;
  *out = *gp;
  memset(owned, 0, sizeof *owned);
  size_t total = 0;
  for (size_t k = 0; k < gp->n_node; k++) {
    const Onnx__FunctionProto *f = find_function(m, gp->node[k]);
    total += f ? f->n_node : 1;
  }
  if (total > (size_t)1 << 24)
    return lpq_errorf(err, LPQ_ERANGE, "inlining the model's functions gives %zu nodes", total);
  out->node = calloc(total + 1, sizeof *out->node);
  owned->nodes = calloc(total + 1, sizeof *owned->nodes);
  if (!out->node || !owned->nodes) {
    free(out->node);
    free(owned->nodes);
    owned->nodes = NULL;
    return lpq_errorf(err, LPQ_ENOMEM, "out of memory inlining functions");
  }
  owned->array = out->node;
  size_t w = 0;
  for (size_t k = 0; k < gp->n_node; k++) {
    const Onnx__NodeProto *call = gp->node[k];
    const Onnx__FunctionProto *f = find_function(m, call);
    if (!f) {
      out->node[w++] = gp->node[k];
      continue;
    }
    char prefix[200];
    snprintf(prefix, sizeof prefix, "%s#%zu",
             call->name && call->name[0] ? call->name : call->op_type, k);
    for (size_t b = 0; b < f->n_node; b++) {
      const Onnx__NodeProto *bn = f->node[b];
      if (find_function(m, bn))
        return lpq_errorf(err, LPQ_EUNSUP, "function %s calls function %s: nested local "
                          "functions are not supported", f->name, bn->op_type);
      for (size_t a = 0; a < bn->n_attribute; a++)
        if (bn->attribute[a]->ref_attr_name && bn->attribute[a]->ref_attr_name[0])
          return lpq_errorf(err, LPQ_EUNSUP, "function %s: attribute '%s' refers to the call's "
                            "attribute '%s', which is not supported", f->name,
                            bn->attribute[a]->name, bn->attribute[a]->ref_attr_name);
      Onnx__NodeProto *c = clone(f, call, bn, prefix, b);
      if (!c)
        return lpq_errorf(err, LPQ_ENOMEM, "out of memory inlining function %s", f->name);
      owned->nodes[owned->count++] = c;
      out->node[w++] = c;
    }
  }
  out->n_node = w;
  return 0;
}

void lpq__inlined_free(lpq__inlined_t *o) {
  for (size_t i = 0; o->nodes && i < o->count; i++)
    clone_free(o->nodes[i]);
  free(o->nodes);
  free(o->array);
  memset(o, 0, sizeof *o);
}
