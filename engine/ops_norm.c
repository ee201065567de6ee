/* engine/ops_norm.c: normalisations: BatchNormalization (inference; usually folded into the
** conv before it), LayerNormalization, InstanceNormalization, Softmax and LogSoftmax. */
#include "engine/engine_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static size_t prod(const int64_t *s, int from, int to) {
  size_t p = 1;
  for (int i = from; i < to; i++)
    p *= (size_t)s[i];
  return p;
}

/* ---- BatchNormalization ---- */

static int bn_prepare(lpq_graph_t *g, gnode_t *n, lpq_error_t *err) {
  int rc;
  if ((rc = lpq__check_arity(n, 5, 5, 1, 5, err)))
    return rc;
  for (int i = 0; i < 5; i++)
    if ((rc = lpq__need_dtype(g, n, i, DT(LPQ_DT_F32), err)))
      return rc;
  bn_params_t *p = calloc(1, sizeof *p);
  if (!p)
    return lpq__node_err(err, LPQ_ENOMEM, n, "out of memory");
  n->params = p;
  int64_t training, spatial;
  if ((rc = lpq__attr_float(n, "epsilon", 1e-5f, &p->eps, err)) ||
      (rc = lpq__attr_int(n, "training_mode", 0, &training, err)) ||
      (rc = lpq__attr_int(n, "spatial", 1, &spatial, err)))
    return rc;
  if (training)
    return lpq__node_err(err, LPQ_EUNSUP, n, "training_mode = 1 is not supported");
  if (spatial != 1)
    return lpq__node_err(err, LPQ_EUNSUP, n, "spatial = %lld is not supported", (long long)spatial);
  for (int o = 1; o < n->nout; o++)
    if (n->out[o] >= 0)
      return lpq__node_err(err, LPQ_EUNSUP, n, "training outputs (output %d) are not supported", o);
  const gval_t *x = gv(g, n->in[0]);
  if (x->ndim < 2)
    return lpq__node_err(err, LPQ_EFORMAT, n, "input must have rank >= 2");
  for (int i = 1; i < 5; i++)
    if (gv(g, n->in[i])->count != (size_t)x->shape[1])
      return lpq__node_err(err, LPQ_EFORMAT, n, "input %d must have %lld values", i,
                      (long long)x->shape[1]);
  return lpq__set_output(g, n, 0, LPQ_DT_F32, x->ndim, x->shape, err);
}

static int bn_run(const kctx_t *k) {
  const bn_params_t *p = k->n->params;
  const gval_t *x = gv(k->g, k->n->in[0]);
  const float *in = k->in[0], *scale = k->in[1], *bias = k->in[2], *mean = k->in[3],
              *var = k->in[4];
  float *y = k->out[0];
  const size_t N = (size_t)x->shape[0], C = (size_t)x->shape[1], S = prod(x->shape, 2, x->ndim);
  for (size_t c = 0; c < C; c++) {
    const float a = (float)(scale[c] / sqrt((double)var[c] + p->eps));
    const float b = bias[c] - mean[c] * a;
    for (size_t nn = 0; nn < N; nn++) {
      const float *xi = in + (nn * C + c) * S;
      float *yi = y + (nn * C + c) * S;
      for (size_t i = 0; i < S; i++)
        yi[i] = xi[i] * a + b;
    }
  }
  return 0;
}

/* ---- LayerNormalization ---- */

typedef struct ln_params_t {
  int axis;
  float eps;
  size_t outer, inner;
} ln_params_t;

static int ln_prepare(lpq_graph_t *g, gnode_t *n, lpq_error_t *err) {
  int rc;
  if ((rc = lpq__check_arity(n, 2, 3, 1, 3, err)) || (rc = lpq__need_dtype(g, n, 0, DT(LPQ_DT_F32), err)) ||
      (rc = lpq__need_dtype(g, n, 1, DT(LPQ_DT_F32), err)))
    return rc;
  ln_params_t *p = calloc(1, sizeof *p);
  if (!p)
    return lpq__node_err(err, LPQ_ENOMEM, n, "out of memory");
  n->params = p;
  int64_t axis, stash;
  if ((rc = lpq__attr_int(n, "axis", -1, &axis, err)) ||
      (rc = lpq__attr_float(n, "epsilon", 1e-5f, &p->eps, err)) ||
      (rc = lpq__attr_int(n, "stash_type", 1, &stash, err)))
    return rc;
  const gval_t *x = gv(g, n->in[0]);
  if ((rc = lpq__norm_axis(n, axis, x->ndim, &p->axis, err)))
    return rc;
  p->outer = prod(x->shape, 0, p->axis);
  p->inner = prod(x->shape, p->axis, x->ndim);
  for (int i = 1; i < n->nin; i++) {
    if (n->in[i] < 0)
      continue;
    if ((rc = lpq__need_dtype(g, n, i, DT(LPQ_DT_F32), err)))
      return rc;
    size_t c = gv(g, n->in[i])->count;
    if (c != p->inner && c != 1)
      return lpq__node_err(err, LPQ_EUNSUP, n, "input %d has %zu values; lpq supports %zu or 1", i,
                      c, p->inner);
  }
  if ((rc = lpq__set_output(g, n, 0, LPQ_DT_F32, x->ndim, x->shape, err)))
    return rc;
  int64_t st[LPQ_MAX_DIMS];
  for (int i = 0; i < x->ndim; i++)
    st[i] = i < p->axis ? x->shape[i] : 1;
  if ((rc = lpq__set_output(g, n, 1, LPQ_DT_F32, x->ndim, st, err)))
    return rc;
  return lpq__set_output(g, n, 2, LPQ_DT_F32, x->ndim, st, err);
}

static int ln_run(const kctx_t *k) {
  const ln_params_t *p = k->n->params;
  const float *x = k->in[0], *scale = k->in[1];
  const float *bias = k->n->nin > 2 ? k->in[2] : NULL;
  const size_t sc = gv(k->g, k->n->in[1])->count;
  const size_t bc = bias ? gv(k->g, k->n->in[2])->count : 0;
  float *y = k->out[0], *mean_out = k->n->nout > 1 ? k->out[1] : NULL;
  float *istd_out = k->n->nout > 2 ? k->out[2] : NULL;
  const size_t D = p->inner;
  for (size_t r = 0; r < p->outer; r++) {
    const float *xr = x + r * D;
    float *yr = y + r * D;
    double s = 0.0, ss = 0.0;
    for (size_t i = 0; i < D; i++)
      s += xr[i];
    const double mean = D ? s / (double)D : 0.0;
    for (size_t i = 0; i < D; i++) {
      double d = xr[i] - mean;
      ss += d * d;
    }
    const double istd = 1.0 / sqrt((D ? ss / (double)D : 0.0) + p->eps);
    for (size_t i = 0; i < D; i++) {
      float v = (float)((xr[i] - mean) * istd) * scale[sc == 1 ? 0 : i];
      yr[i] = bias ? v + bias[bc == 1 ? 0 : i] : v;
    }
    if (mean_out)
      mean_out[r] = (float)mean;
    if (istd_out)
      istd_out[r] = (float)istd;
  }
  return 0;
}

/* ---- InstanceNormalization ---- */

static int in_prepare(lpq_graph_t *g, gnode_t *n, lpq_error_t *err) {
  int rc;
  if ((rc = lpq__check_arity(n, 3, 3, 1, 1, err)))
    return rc;
  for (int i = 0; i < 3; i++)
    if ((rc = lpq__need_dtype(g, n, i, DT(LPQ_DT_F32), err)))
      return rc;
  bn_params_t *p = calloc(1, sizeof *p);
  if (!p)
    return lpq__node_err(err, LPQ_ENOMEM, n, "out of memory");
  n->params = p;
  if ((rc = lpq__attr_float(n, "epsilon", 1e-5f, &p->eps, err)))
    return rc;
  const gval_t *x = gv(g, n->in[0]);
  if (x->ndim < 3 || gv(g, n->in[1])->count != (size_t)x->shape[1] ||
      gv(g, n->in[2])->count != (size_t)x->shape[1])
    return lpq__node_err(err, LPQ_EFORMAT, n, "needs [N, C, ...] input and C scales and biases");
  return lpq__set_output(g, n, 0, LPQ_DT_F32, x->ndim, x->shape, err);
}

static int in_run(const kctx_t *k) {
  const bn_params_t *p = k->n->params;
  const gval_t *x = gv(k->g, k->n->in[0]);
  const size_t C = (size_t)x->shape[1], S = prod(x->shape, 2, x->ndim);
  const size_t NC = (size_t)x->shape[0] * C;
  const float *in = k->in[0], *scale = k->in[1], *bias = k->in[2];
  float *y = k->out[0];
  for (size_t r = 0; r < NC; r++) {
    const float *xr = in + r * S;
    double s = 0.0, ss = 0.0;
    for (size_t i = 0; i < S; i++)
      s += xr[i];
    double mean = s / (double)S;
    for (size_t i = 0; i < S; i++)
      ss += (xr[i] - mean) * (xr[i] - mean);
    double istd = 1.0 / sqrt(ss / (double)S + p->eps);
    for (size_t i = 0; i < S; i++)
      y[r * S + i] = (float)((xr[i] - mean) * istd) * scale[r % C] + bias[r % C];
  }
  return 0;
}

/* ---- Softmax, LogSoftmax ---- */

typedef struct softmax_params_t {
  size_t outer, len, inner;
  int log;
} softmax_params_t;

static int softmax_prepare(lpq_graph_t *g, gnode_t *n, lpq_error_t *err) {
  int rc;
  if ((rc = lpq__check_arity(n, 1, 1, 1, 1, err)) || (rc = lpq__need_dtype(g, n, 0, DT(LPQ_DT_F32), err)))
    return rc;
  softmax_params_t *p = calloc(1, sizeof *p);
  if (!p)
    return lpq__node_err(err, LPQ_ENOMEM, n, "out of memory");
  n->params = p;
  p->log = strcmp(n->op_type, "LogSoftmax") == 0;
  const gval_t *x = gv(g, n->in[0]);
  const int legacy = g->opset < 13; /* before opset 13: flatten to 2-D at axis */
  int64_t axis;
  int ax;
  if ((rc = lpq__attr_int(n, "axis", legacy ? 1 : -1, &axis, err)) ||
      (rc = lpq__norm_axis(n, axis, x->ndim, &ax, err)))
    return rc;
  p->outer = prod(x->shape, 0, ax);
  if (legacy) {
    p->len = prod(x->shape, ax, x->ndim);
    p->inner = 1;
  } else {
    p->len = x->ndim ? (size_t)x->shape[ax] : 1;
    p->inner = prod(x->shape, ax + 1, x->ndim);
  }
  return lpq__set_output(g, n, 0, LPQ_DT_F32, x->ndim, x->shape, err);
}

static int softmax_run(const kctx_t *k) {
  const softmax_params_t *p = k->n->params;
  const float *x = k->in[0];
  float *y = k->out[0];
  const size_t L = p->len, I = p->inner;
  for (size_t o = 0; o < p->outer; o++)
    for (size_t in = 0; in < I; in++) {
      const float *xr = x + o * L * I + in;
      float *yr = y + o * L * I + in;
      float mx = -INFINITY;
      for (size_t i = 0; i < L; i++)
        mx = xr[i * I] > mx ? xr[i * I] : mx;
      double sum = 0.0;
      for (size_t i = 0; i < L; i++) {
        float e = expf(xr[i * I] - mx);
        sum += e;
        if (!p->log)
          yr[i * I] = e;
      }
      if (p->log) {
        const float ls = (float)log(sum);
        for (size_t i = 0; i < L; i++)
          yr[i * I] = xr[i * I] - mx - ls;
      } else {
        const float inv = (float)(1.0 / sum);
        for (size_t i = 0; i < L; i++)
          yr[i * I] *= inv;
      }
    }
  return 0;
}

static const char *const bn_attrs[] = {"epsilon", "momentum", "training_mode", "spatial",
                                       "is_test", NULL};
static const char *const ln_attrs[] = {"axis", "epsilon", "stash_type", NULL};
static const char *const eps_attrs[] = {"epsilon", NULL};
static const char *const axis_attrs[] = {"axis", NULL};

const op_def_t lpq__ops_norm_table[] = {
    {"BatchNormalization", bn_attrs, bn_prepare, bn_run},
    {"LayerNormalization", ln_attrs, ln_prepare, ln_run},
    {"InstanceNormalization", eps_attrs, in_prepare, in_run},
    {"Softmax", axis_attrs, softmax_prepare, softmax_run},
    {"LogSoftmax", axis_attrs, softmax_prepare, softmax_run},
    {NULL, NULL, NULL, NULL},
};
