/* engine/ops_shape.c: operators that only change or report shapes (Reshape, Flatten, Squeeze,
** Unsqueeze: a copy at run time), and the constant producers (Constant, Shape, Size,
** ConstantOfShape, Range) that loading folds away. */
#include "engine/engine_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int copy_run(const kctx_t *k) {
  const gval_t *x = gv(k->g, k->n->in[0]);
  memcpy(k->out[0], k->in[0], x->count * lpq_dtype_size(x->dtype));
  return 0;
}

/* Output 0 becomes a constant holding data (count elements of dt); the node is done. */
static int set_const_output(lpq_graph_t *g, gnode_t *n, lpq_dtype_t dt, int ndim,
                            const int64_t *shape, const void *data, lpq_error_t *err) {
  int rc = lpq__set_output(g, n, 0, dt, ndim, shape, err);
  if (rc != 0)
    return rc;
  gval_t *v = gv(g, n->out[0]);
  size_t bytes = v->count * lpq_dtype_size(dt);
  v->cdata = malloc(bytes ? bytes : 1);
  if (!v->cdata)
    return lpq__node_err(err, LPQ_ENOMEM, n, "out of memory");
  if (bytes)
    memcpy(v->cdata, data, bytes);
  n->dead = 1;
  return 0;
}

static int reshape_prepare(lpq_graph_t *g, gnode_t *n, lpq_error_t *err) {
  int rc;
  int64_t shape[LPQ_MAX_DIMS], allowzero;
  size_t ns;
  if ((rc = lpq__check_arity(n, 2, 2, 1, 1, err)) || (rc = lpq__need_dtype(g, n, 0, DT_ANY, err)) ||
      (rc = lpq__const_ints(g, n, 1, shape, LPQ_MAX_DIMS, &ns, err)) ||
      (rc = lpq__attr_int(n, "allowzero", 0, &allowzero, err)))
    return rc;
  const gval_t *x = gv(g, n->in[0]);
  int infer = -1;
  size_t known = 1;
  for (size_t i = 0; i < ns; i++) {
    if (shape[i] == 0 && !allowzero) {
      if ((int)i >= x->ndim)
        return lpq__node_err(err, LPQ_EFORMAT, n, "shape[%zu] = 0 has no input dimension to copy", i);
      shape[i] = x->shape[i];
    }
    if (shape[i] == -1) {
      if (infer >= 0)
        return lpq__node_err(err, LPQ_EFORMAT, n, "shape has more than one -1");
      infer = (int)i;
    } else if (shape[i] < 0) {
      return lpq__node_err(err, LPQ_EFORMAT, n, "shape[%zu] = %lld", i, (long long)shape[i]);
    } else {
      if (shape[i] && known > GRAPH_MAX_TENSOR_BYTES / (size_t)shape[i])
        return lpq__node_err(err, LPQ_ERANGE, n, "shape overflows");
      known *= (size_t)shape[i];
    }
  }
  if (infer >= 0) {
    if (known == 0 || x->count % known != 0)
      return lpq__node_err(err, LPQ_EFORMAT, n, "cannot infer the -1 dimension (%zu elements into "
                      "%zu)", x->count, known);
    shape[infer] = (int64_t)(x->count / known);
  } else if (known != x->count) {
    char a[160], b[160];
    return lpq__node_err(err, LPQ_EFORMAT, n, "cannot reshape %s into %s",
                    lpq_shape_str(x->ndim, x->shape, a, sizeof a),
                    lpq_shape_str((int)ns, shape, b, sizeof b));
  }
  return lpq__set_output(g, n, 0, x->dtype, (int)ns, shape, err);
}

static int flatten_prepare(lpq_graph_t *g, gnode_t *n, lpq_error_t *err) {
  int rc;
  int64_t axis;
  int ax;
  if ((rc = lpq__check_arity(n, 1, 1, 1, 1, err)) || (rc = lpq__need_dtype(g, n, 0, DT_ANY, err)) ||
      (rc = lpq__attr_int(n, "axis", 1, &axis, err)))
    return rc;
  const gval_t *x = gv(g, n->in[0]);
  if (axis == x->ndim)
    ax = x->ndim;
  else if ((rc = lpq__norm_axis(n, axis, x->ndim, &ax, err)))
    return rc;
  int64_t shape[2] = {1, 1};
  for (int i = 0; i < x->ndim; i++)
    shape[i < ax ? 0 : 1] *= x->shape[i];
  return lpq__set_output(g, n, 0, x->dtype, 2, shape, err);
}

/* Squeeze and Unsqueeze: axes from the attribute (opset < 13) or the constant input. */
static int read_axes(const lpq_graph_t *g, const gnode_t *n, int64_t *axes, size_t *naxes,
                     lpq_error_t *err) {
  int rc = lpq__attr_ints(n, "axes", axes, LPQ_MAX_DIMS, naxes, err);
  if (rc == 0 && n->nin > 1 && n->in[1] >= 0)
    rc = lpq__const_ints(g, n, 1, axes, LPQ_MAX_DIMS, naxes, err);
  return rc;
}

static int squeeze_prepare(lpq_graph_t *g, gnode_t *n, lpq_error_t *err) {
  int rc;
  int64_t axes[LPQ_MAX_DIMS];
  size_t naxes;
  if ((rc = lpq__check_arity(n, 1, 2, 1, 1, err)) || (rc = lpq__need_dtype(g, n, 0, DT_ANY, err)) ||
      (rc = read_axes(g, n, axes, &naxes, err)))
    return rc;
  const gval_t *x = gv(g, n->in[0]);
  int drop[LPQ_MAX_DIMS] = {0};
  for (size_t i = 0; i < naxes; i++) {
    int a;
    if ((rc = lpq__norm_axis(n, axes[i], x->ndim, &a, err)))
      return rc;
    if (x->shape[a] != 1)
      return lpq__node_err(err, LPQ_EFORMAT, n, "cannot squeeze axis %d of size %lld", a,
                      (long long)x->shape[a]);
    drop[a] = 1;
  }
  int64_t shape[LPQ_MAX_DIMS];
  int nd = 0;
  for (int i = 0; i < x->ndim; i++)
    if (!(naxes ? drop[i] : x->shape[i] == 1))
      shape[nd++] = x->shape[i];
  return lpq__set_output(g, n, 0, x->dtype, nd, shape, err);
}

static int unsqueeze_prepare(lpq_graph_t *g, gnode_t *n, lpq_error_t *err) {
  int rc;
  int64_t axes[LPQ_MAX_DIMS];
  size_t naxes;
  if ((rc = lpq__check_arity(n, 1, 2, 1, 1, err)) || (rc = lpq__need_dtype(g, n, 0, DT_ANY, err)) ||
      (rc = read_axes(g, n, axes, &naxes, err)))
    return rc;
  const gval_t *x = gv(g, n->in[0]);
  const int nd = x->ndim + (int)naxes;
  if (nd > LPQ_MAX_DIMS)
    return lpq__node_err(err, LPQ_EUNSUP, n, "output rank %d (at most %d)", nd, LPQ_MAX_DIMS);
  int ins[LPQ_MAX_DIMS] = {0};
  for (size_t i = 0; i < naxes; i++) {
    int a;
    if ((rc = lpq__norm_axis(n, axes[i], nd, &a, err)))
      return rc;
    if (ins[a])
      return lpq__node_err(err, LPQ_EFORMAT, n, "axis %d is repeated", a);
    ins[a] = 1;
  }
  int64_t shape[LPQ_MAX_DIMS];
  for (int i = 0, j = 0; i < nd; i++)
    shape[i] = ins[i] ? 1 : x->shape[j++];
  return lpq__set_output(g, n, 0, x->dtype, nd, shape, err);
}

static int shape_prepare(lpq_graph_t *g, gnode_t *n, lpq_error_t *err) {
  int rc;
  int64_t start, end;
  if ((rc = lpq__check_arity(n, 1, 1, 1, 1, err)) || (rc = lpq__attr_int(n, "start", 0, &start, err)) ||
      (rc = lpq__attr_int(n, "end", LPQ_MAX_DIMS + 1, &end, err)))
    return rc;
  const gval_t *x = gv(g, n->in[0]);
  const int64_t r = x->ndim;
  start = start < 0 ? start + r : start, end = end < 0 ? end + r : end;
  start = start < 0 ? 0 : start > r ? r : start;
  end = end < 0 ? 0 : end > r ? r : end;
  int64_t len = end > start ? end - start : 0;
  return set_const_output(g, n, LPQ_DT_I64, 1, &len, x->shape + start, err);
}

static int size_prepare(lpq_graph_t *g, gnode_t *n, lpq_error_t *err) {
  int rc;
  if ((rc = lpq__check_arity(n, 1, 1, 1, 1, err)))
    return rc;
  int64_t c = (int64_t)gv(g, n->in[0])->count;
  return set_const_output(g, n, LPQ_DT_I64, 0, NULL, &c, err);
}

static int constant_prepare(lpq_graph_t *g, gnode_t *n, lpq_error_t *err) {
  int rc;
  if ((rc = lpq__check_arity(n, 0, 0, 1, 1, err)))
    return rc;
  if (lpq__attr_find(n, "value")) {
    lpq_array_t *a;
    if ((rc = lpq__attr_tensor(n, "value", &a, err)))
      return rc;
    rc = set_const_output(g, n, a->dtype, a->ndim, a->shape, a->data, err);
    lpq_array_free(&a);
    return rc;
  }
  const Onnx__AttributeProto *at;
  if ((at = lpq__attr_find(n, "value_float"))) {
    float f;
    return (rc = lpq__attr_float(n, "value_float", 0, &f, err)) ? rc
           : set_const_output(g, n, LPQ_DT_F32, 0, NULL, &f, err);
  }
  if ((at = lpq__attr_find(n, "value_int"))) {
    int64_t i;
    return (rc = lpq__attr_int(n, "value_int", 0, &i, err)) ? rc
           : set_const_output(g, n, LPQ_DT_I64, 0, NULL, &i, err);
  }
  if ((at = lpq__attr_find(n, "value_floats"))) {
    if (at->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS)
      return lpq__node_err(err, LPQ_EFORMAT, n, "value_floats must be floats");
    int64_t len = (int64_t)at->n_floats;
    return set_const_output(g, n, LPQ_DT_F32, 1, &len, at->floats, err);
  }
  if ((at = lpq__attr_find(n, "value_ints"))) {
    if (at->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS)
      return lpq__node_err(err, LPQ_EFORMAT, n, "value_ints must be ints");
    int64_t len = (int64_t)at->n_ints;
    return set_const_output(g, n, LPQ_DT_I64, 1, &len, at->ints, err);
  }
  return lpq__node_err(err, LPQ_EUNSUP, n, "no supported value attribute (value, value_float(s), "
                  "value_int(s))");
}

typedef struct cos_params_t {
  lpq_dtype_t dt;
  unsigned char value[8];
} cos_params_t;

static int cos_prepare(lpq_graph_t *g, gnode_t *n, lpq_error_t *err) {
  int rc;
  int64_t shape[LPQ_MAX_DIMS];
  size_t ns;
  if ((rc = lpq__check_arity(n, 1, 1, 1, 1, err)) ||
      (rc = lpq__const_ints(g, n, 0, shape, LPQ_MAX_DIMS, &ns, err)))
    return rc;
  cos_params_t *p = calloc(1, sizeof *p);
  if (!p)
    return lpq__node_err(err, LPQ_ENOMEM, n, "out of memory");
  n->params = p;
  p->dt = LPQ_DT_F32;
  if (lpq__attr_find(n, "value")) {
    lpq_array_t *a;
    if ((rc = lpq__attr_tensor(n, "value", &a, err)))
      return rc;
    if (a->count != 1) {
      lpq_array_free(&a);
      return lpq__node_err(err, LPQ_EFORMAT, n, "value must hold one element");
    }
    p->dt = a->dtype;
    memcpy(p->value, a->data, lpq_dtype_size(a->dtype));
    lpq_array_free(&a);
  }
  return lpq__set_output(g, n, 0, p->dt, (int)ns, shape, err);
}

static int cos_run(const kctx_t *k) {
  const cos_params_t *p = k->n->params;
  const gval_t *y = gv(k->g, k->n->out[0]);
  const size_t es = lpq_dtype_size(p->dt);
  for (size_t i = 0; i < y->count; i++)
    memcpy((char *)k->out[0] + i * es, p->value, es);
  return 0;
}

static int range_prepare(lpq_graph_t *g, gnode_t *n, lpq_error_t *err) {
  int rc;
  if ((rc = lpq__check_arity(n, 3, 3, 1, 1, err)))
    return rc;
  double v[3];
  lpq_dtype_t dt = gv(g, n->in[0])->dtype;
  for (int i = 0; i < 3; i++) {
    const gval_t *x = gv(g, n->in[i]);
    if (!x->cdata || x->count != 1 || x->dtype != dt || dt == LPQ_DT_BOOL)
      return lpq__node_err(err, LPQ_EUNSUP, n, "input %d must be a constant number like input 0", i);
    v[i] = dt == LPQ_DT_F32 ? *(float *)x->cdata : (double)*(int64_t *)x->cdata;
  }
  if (v[2] == 0)
    return lpq__node_err(err, LPQ_EFORMAT, n, "delta is 0");
  double c = ceil((v[1] - v[0]) / v[2]);
  if (!(c < 1e9))
    return lpq__node_err(err, LPQ_ERANGE, n, "the range is too long");
  int64_t len = c > 0 ? (int64_t)c : 0;
  return lpq__set_output(g, n, 0, dt, 1, &len, err);
}

static int range_run(const kctx_t *k) {
  const gval_t *y = gv(k->g, k->n->out[0]);
  if (y->dtype == LPQ_DT_F32) {
    const float s = *(const float *)k->in[0], d = *(const float *)k->in[2];
    for (size_t i = 0; i < y->count; i++)
      ((float *)k->out[0])[i] = s + (float)i * d;
  } else {
    const int64_t s = *(const int64_t *)k->in[0], d = *(const int64_t *)k->in[2];
    for (size_t i = 0; i < y->count; i++)
      ((int64_t *)k->out[0])[i] = s + (int64_t)i * d;
  }
  return 0;
}

static const char *const no_attrs[] = {NULL};
static const char *const reshape_attrs[] = {"allowzero", NULL};
static const char *const axis_attrs[] = {"axis", NULL};
static const char *const axes_attrs[] = {"axes", NULL};
static const char *const shape_attrs[] = {"start", "end", NULL};
static const char *const const_attrs[] = {"value", "value_float", "value_floats", "value_int",
                                          "value_ints", NULL};
static const char *const cos_attrs[] = {"value", NULL};

const op_def_t lpq__ops_shape_table[] = {
    {"Reshape", reshape_attrs, reshape_prepare, copy_run},
    {"Flatten", axis_attrs, flatten_prepare, copy_run},
    {"Squeeze", axes_attrs, squeeze_prepare, copy_run},
    {"Unsqueeze", axes_attrs, unsqueeze_prepare, copy_run},
    {"Shape", shape_attrs, shape_prepare, copy_run},
    {"Size", no_attrs, size_prepare, copy_run},
    {"Constant", const_attrs, constant_prepare, copy_run},
    {"ConstantOfShape", cos_attrs, cos_prepare, cos_run},
    {"Range", no_attrs, range_prepare, range_run},
    {NULL, NULL, NULL, NULL},
};
