/* engine/ops_norm.c: normalisations: BatchNormalization (inference; usually folded into the
** conv before it), LayerNormalization, InstanceNormalization, Softmax and LogSoftmax. */
#include "engine/engine_internal.h"

/* -O2's "very cheap" vectoriser skips loops whose trip count is unknown; these need it. */
#if defined(__GNUC__) && !defined(__clang__) /* clang vectorises at -O2 and has no such pragma */
#pragma GCC optimize("tree-vectorize", "vect-cost-model=dynamic")
#endif

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

/* Rows [task * LN_ROWS, ...) of a LayerNormalization: mean and variance in double, each as 8
** partial sums added in a fixed order (the vectoriser's lanes; no reassociation), then
** (x - mean) * istd * scale + bias in double rounded once, as before. */
#define LN_ROWS 16

typedef struct ln_job_t {
  const kctx_t *k;
  const ln_params_t *p;
} ln_job_t;

static void ln_task(void *arg, size_t task, int tid) {
  (void)tid;
  const ln_job_t *j = arg;
  const kctx_t *k = j->k;
  const ln_params_t *p = j->p;
  const float *x = k->in[0], *scale = k->n->nin > 1 ? k->in[1] : NULL; /* none: decomposed */
  const float *bias = k->n->nin > 2 ? k->in[2] : NULL;
  const size_t sc = scale ? gv(k->g, k->n->in[1])->count : 0;
  const size_t bc = bias ? gv(k->g, k->n->in[2])->count : 0;
  float *y = k->out[0], *mean_out = k->n->nout > 1 ? k->out[1] : NULL;
  float *istd_out = k->n->nout > 2 ? k->out[2] : NULL;
  const size_t D = p->inner, D8 = D / 8 * 8, r0 = task * LN_ROWS;
  const size_t r1 = r0 + LN_ROWS < p->outer ? r0 + LN_ROWS : p->outer;
  const int full = scale && sc == D && (!bias || bc == D);
  for (size_t r = r0; r < r1; r++) {
    const float *xr = x + r * D;
    float *yr = y + r * D;
    double m, is;
    if (full && lpq__kern_layernorm_row(xr, yr, D, p->eps, scale, bias, &m, &is)) {
      if (mean_out)
        mean_out[r] = (float)m;
      if (istd_out)
        istd_out[r] = (float)is;
      continue;
    }
    double s[8] = {0}, ss[8] = {0};
    for (size_t i = 0; i < D8; i += 8)
      for (int l = 0; l < 8; l++)
        s[l] += xr[i + l];
    for (size_t i = D8; i < D; i++)
      s[0] += xr[i];
    const double mean = D ? lpq__sum8(s) / (double)D : 0.0;
    for (size_t i = 0; i < D8; i += 8)
      for (int l = 0; l < 8; l++) {
        const double d = xr[i + l] - mean;
        ss[l] += d * d;
      }
    for (size_t i = D8; i < D; i++) {
      const double d = xr[i] - mean;
      ss[0] += d * d;
    }
    const double istd = 1.0 / sqrt((D ? lpq__sum8(ss) / (double)D : 0.0) + p->eps);
    if (!scale) {
      for (size_t i = 0; i < D; i++)
        yr[i] = (float)((xr[i] - mean) * istd);
    } else if (sc == D && (!bias || bc == D)) {
      for (size_t i = 0; i < D; i++) {
        const float v = (float)((xr[i] - mean) * istd) * scale[i];
        yr[i] = bias ? v + bias[i] : v;
      }
    } else {
      for (size_t i = 0; i < D; i++) {
        const float v = (float)((xr[i] - mean) * istd) * scale[sc == 1 ? 0 : i];
        yr[i] = bias ? v + bias[bc == 1 ? 0 : i] : v;
      }
    }
    if (mean_out)
      mean_out[r] = (float)mean;
    if (istd_out)
      istd_out[r] = (float)istd;
  }
}

static int ln_run(const kctx_t *k) {
  const ln_params_t *p = k->n->params;
  const ln_job_t j = {k, p};
  lpq__threads_run(k->pool, (p->outer + LN_ROWS - 1) / LN_ROWS, ln_task, (void *)&j);
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

/* Rows [task * SOFTMAX_ROWS, ...) of a softmax over the last axis (lpq__kern_softmax_row: the
** row max, exp of the differences vectorised, their sum in double, the scale), or for
** LogSoftmax x - max - log(sum). */
#define SOFTMAX_ROWS 32

typedef struct softmax_job_t {
  const softmax_params_t *p;
  const float *x;
  float *y;
} softmax_job_t;

static void softmax_task(void *arg, size_t task, int tid) {
  (void)tid;
  const softmax_job_t *j = arg;
  const size_t L = j->p->len, r0 = task * SOFTMAX_ROWS;
  const size_t r1 = r0 + SOFTMAX_ROWS < j->p->outer ? r0 + SOFTMAX_ROWS : j->p->outer;
  for (size_t r = r0; r < r1; r++) {
    const float *xr = j->x + r * L;
    float *yr = j->y + r * L;
    if (!j->p->log) {
      lpq__kern_softmax_row(xr, yr, L);
      continue;
    }
    float mx;
    const float ls = (float)log(lpq__kern_exp_shift(xr, yr, L, &mx));
    for (size_t i = 0; i < L; i++)
      yr[i] = xr[i] - mx - ls;
  }
}

static int softmax_run(const kctx_t *k) {
  const softmax_params_t *p = k->n->params;
  const float *x = k->in[0];
  float *y = k->out[0];
  const size_t L = p->len, I = p->inner;
  if (I == 1 && x != y) { /* the last axis: rows split over the context's threads */
    const softmax_job_t j = {p, x, y};
    lpq__threads_run(k->pool, (p->outer + SOFTMAX_ROWS - 1) / SOFTMAX_ROWS, softmax_task,
                     (void *)&j);
    return 0;
  }
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

/* (x - mean) / sqrt(var + eps) over the last axis, written out as ReduceMean, Sub, Pow,
** ReduceMean, Add, Sqrt and Div (PyTorch's export of LayerNorm before opset 17): graph_opt.c
** hands the Div node here, which then reads x alone and runs as a LayerNormalization without
** scale. */
static const op_def_t ln_bare_def = {"LayerNormalization", NULL, NULL, ln_run};

int lpq__ln_adopt(gnode_t *n, int x, size_t outer, size_t inner, float eps, lpq_error_t *err) {
  ln_params_t *p = calloc(1, sizeof *p);
  char *name = strdup("LayerNormalization");
  if (!p || !name) {
    free(p), free(name);
    return lpq__node_err(err, LPQ_ENOMEM, n, "out of memory");
  }
  free(n->params), free(n->op_type);
  n->params = p, n->op_type = name, n->op = &ln_bare_def;
  p->eps = eps, p->outer = outer, p->inner = inner;
  n->in[0] = x, n->nin = 1;
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
