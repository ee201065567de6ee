/* engine/ops_reduce.c: Reduce* over any set of axes (attribute or constant input), ArgMax and
** ArgMin. Accumulation is in double. */
#include "engine/engine_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef enum { R_MEAN, R_SUM, R_MAX, R_MIN, R_PROD, R_SUMSQ, R_L1, R_L2, R_LOGSUM, R_LOGSUMEXP } reduce_kind_t;

static const struct {
  const char *name;
  reduce_kind_t kind;
  int axes_input_opset; /* from this opset on, axes is an input */
} reduce_defs[] = {
    {"ReduceMean", R_MEAN, 18}, {"ReduceSum", R_SUM, 13}, {"ReduceMax", R_MAX, 18},
    {"ReduceMin", R_MIN, 18}, {"ReduceProd", R_PROD, 18}, {"ReduceSumSquare", R_SUMSQ, 18},
    {"ReduceL1", R_L1, 18}, {"ReduceL2", R_L2, 18}, {"ReduceLogSum", R_LOGSUM, 18},
    {"ReduceLogSumExp", R_LOGSUMEXP, 18},
};

typedef struct reduce_params_t {
  reduce_kind_t kind;
  int ndim;
  int64_t shape[LPQ_MAX_DIMS];
  int64_t ostride[LPQ_MAX_DIMS]; /* output stride per input dim, 0 when reduced */
  size_t group;                  /* input elements per output element */
  int identity;                  /* noop: axes empty with noop_with_empty_axes */
} reduce_params_t;

static int reduce_prepare(lpq_graph_t *g, gnode_t *n, lpq_error_t *err) {
  size_t d = 0;
  while (strcmp(reduce_defs[d].name, n->op_type) != 0)
    d++;
  int rc;
  if ((rc = lpq__check_arity(n, 1, 2, 1, 1, err)) || (rc = lpq__need_dtype(g, n, 0, DT_NUM, err)))
    return rc;
  const gval_t *x = gv(g, n->in[0]);
  reduce_params_t *p = calloc(1, sizeof *p);
  if (!p)
    return lpq__node_err(err, LPQ_ENOMEM, n, "out of memory");
  n->params = p;
  p->kind = reduce_defs[d].kind;
  if (x->dtype == LPQ_DT_I64 && p->kind != R_SUM && p->kind != R_MAX && p->kind != R_MIN &&
      p->kind != R_PROD)
    return lpq__node_err(err, LPQ_EUNSUP, n, "int64 input is not supported for %s", n->op_type);
  int64_t keep, noop, axes[LPQ_MAX_DIMS];
  size_t naxes = 0;
  if ((rc = lpq__attr_int(n, "keepdims", 1, &keep, err)) ||
      (rc = lpq__attr_int(n, "noop_with_empty_axes", 0, &noop, err)) ||
      (rc = lpq__attr_ints(n, "axes", axes, LPQ_MAX_DIMS, &naxes, err)))
    return rc;
  if (n->nin > 1 && n->in[1] >= 0 &&
      (rc = lpq__const_ints(g, n, 1, axes, LPQ_MAX_DIMS, &naxes, err)))
    return rc;
  int reduced[LPQ_MAX_DIMS] = {0};
  for (size_t i = 0; i < naxes; i++) {
    int a;
    if ((rc = lpq__norm_axis(n, axes[i], x->ndim, &a, err)))
      return rc;
    reduced[a] = 1;
  }
  if (naxes == 0 && noop)
    p->identity = 1;
  else if (naxes == 0)
    for (int i = 0; i < x->ndim; i++)
      reduced[i] = 1;
  int64_t shape[LPQ_MAX_DIMS];
  int nd = 0;
  p->ndim = x->ndim;
  memcpy(p->shape, x->shape, sizeof p->shape);
  int64_t s = 1;
  p->group = 1;
  for (int i = x->ndim - 1; i >= 0; i--) {
    if (reduced[i] && !p->identity) {
      p->ostride[i] = 0;
      p->group *= (size_t)x->shape[i];
    } else {
      p->ostride[i] = s;
      s *= x->shape[i];
    }
  }
  for (int i = 0; i < x->ndim; i++) {
    if (!reduced[i] || p->identity)
      shape[nd++] = x->shape[i];
    else if (keep)
      shape[nd++] = 1;
  }
  if ((rc = lpq__set_output(g, n, 0, x->dtype, nd, shape, err)))
    return rc;
  n->scratch_floats = 2 * gv(g, n->out[0])->count + 2;
  return 0;
}

static int reduce_run(const kctx_t *k) {
  const reduce_params_t *p = k->n->params;
  const gval_t *x = gv(k->g, k->n->in[0]), *y = gv(k->g, k->n->out[0]);
  if (p->identity) {
    memcpy(k->out[0], k->in[0], x->count * lpq_dtype_size(x->dtype));
    return 0;
  }
  double *acc = (double *)k->scratch; /* scratch is malloc'd: aligned for double */
  const double init = p->kind == R_MAX ? -INFINITY : p->kind == R_MIN ? INFINITY
                      : p->kind == R_PROD ? 1.0 : 0.0;
  for (size_t i = 0; i < y->count; i++)
    acc[i] = init;
  int64_t idx[LPQ_MAX_DIMS] = {0}, o = 0;
  const int isf = x->dtype == LPQ_DT_F32;
  for (size_t i = 0; i < x->count; i++) {
    const double v = isf ? ((const float *)k->in[0])[i] : (double)((const int64_t *)k->in[0])[i];
    double *a = &acc[o];
    switch (p->kind) {
    case R_MEAN: case R_SUM: case R_LOGSUM: *a += v; break;
    case R_MAX: *a = v > *a || isnan(v) ? v : *a; break;
    case R_MIN: *a = v < *a || isnan(v) ? v : *a; break;
    case R_PROD: *a *= v; break;
    case R_SUMSQ: case R_L2: *a += v * v; break;
    case R_L1: *a += fabs(v); break;
    case R_LOGSUMEXP: *a += exp(v); break;
    }
    for (int j = p->ndim - 1; j >= 0; j--) {
      o += p->ostride[j];
      if (++idx[j] < p->shape[j])
        break;
      o -= p->ostride[j] * p->shape[j];
      idx[j] = 0;
    }
  }
  for (size_t i = 0; i < y->count; i++) {
    double v = acc[i];
    switch (p->kind) {
    case R_MEAN: v = p->group ? v / (double)p->group : NAN; break;
    case R_L2: v = sqrt(v); break;
    case R_LOGSUM: case R_LOGSUMEXP: v = log(v); break;
    default: break;
    }
    if (isf)
      ((float *)k->out[0])[i] = (float)v;
    else
      ((int64_t *)k->out[0])[i] = isfinite(v) ? (int64_t)v : 0;
  }
  return 0;
}

/* ---- ArgMax, ArgMin ---- */

typedef struct arg_params_t {
  size_t outer, len, inner;
  int is_max, last;
} arg_params_t;

static int arg_prepare(lpq_graph_t *g, gnode_t *n, lpq_error_t *err) {
  int rc;
  if ((rc = lpq__check_arity(n, 1, 1, 1, 1, err)) || (rc = lpq__need_dtype(g, n, 0, DT_NUM, err)))
    return rc;
  arg_params_t *p = calloc(1, sizeof *p);
  if (!p)
    return lpq__node_err(err, LPQ_ENOMEM, n, "out of memory");
  n->params = p;
  p->is_max = strcmp(n->op_type, "ArgMax") == 0;
  int64_t axis, keep, last;
  int ax;
  const gval_t *x = gv(g, n->in[0]);
  if ((rc = lpq__attr_int(n, "axis", 0, &axis, err)) || (rc = lpq__attr_int(n, "keepdims", 1, &keep, err)) ||
      (rc = lpq__attr_int(n, "select_last_index", 0, &last, err)) ||
      (rc = lpq__norm_axis(n, axis, x->ndim, &ax, err)))
    return rc;
  p->last = last != 0;
  p->outer = 1, p->inner = 1;
  for (int i = 0; i < ax; i++)
    p->outer *= (size_t)x->shape[i];
  for (int i = ax + 1; i < x->ndim; i++)
    p->inner *= (size_t)x->shape[i];
  p->len = (size_t)x->shape[ax];
  if (p->len == 0)
    return lpq__node_err(err, LPQ_EFORMAT, n, "the reduced axis is empty");
  int64_t shape[LPQ_MAX_DIMS];
  int nd = 0;
  for (int i = 0; i < x->ndim; i++)
    if (i != ax)
      shape[nd++] = x->shape[i];
    else if (keep)
      shape[nd++] = 1;
  return lpq__set_output(g, n, 0, LPQ_DT_I64, nd, shape, err);
}

static int arg_run(const kctx_t *k) {
  const arg_params_t *p = k->n->params;
  const gval_t *x = gv(k->g, k->n->in[0]);
  const int isf = x->dtype == LPQ_DT_F32;
  int64_t *y = k->out[0];
  for (size_t o = 0; o < p->outer; o++)
    for (size_t in = 0; in < p->inner; in++) {
      size_t best = 0;
      double bv = 0;
      for (size_t i = 0; i < p->len; i++) {
        size_t at = (o * p->len + i) * p->inner + in;
        double v = isf ? ((const float *)k->in[0])[at] : (double)((const int64_t *)k->in[0])[at];
        int better = i == 0 || (p->is_max ? (p->last ? v >= bv : v > bv) : (p->last ? v <= bv : v < bv));
        if (better)
          best = i, bv = v;
      }
      y[o * p->inner + in] = (int64_t)best;
    }
  return 0;
}

static const char *const reduce_attrs[] = {"axes", "keepdims", "noop_with_empty_axes", NULL};
static const char *const arg_attrs[] = {"axis", "keepdims", "select_last_index", NULL};

#define RED(name) {name, reduce_attrs, reduce_prepare, reduce_run}
const op_def_t lpq__ops_reduce_table[] = {
    RED("ReduceMean"), RED("ReduceSum"), RED("ReduceMax"), RED("ReduceMin"), RED("ReduceProd"),
    RED("ReduceSumSquare"), RED("ReduceL1"), RED("ReduceL2"), RED("ReduceLogSum"),
    RED("ReduceLogSumExp"),
    {"ArgMax", arg_attrs, arg_prepare, arg_run},
    {"ArgMin", arg_attrs, arg_prepare, arg_run},
    {NULL, NULL, NULL, NULL},
};
