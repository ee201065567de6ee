/* engine/ops_scatter.c: ScatterND (opsets 11, 13, 16, 18): a copy of data with slices replaced
** (or combined, reduction add / mul / max / min) at the given index tuples. torchvision's Swin
** builds its shifted-window attention mask with it. Indices are checked against data's shape
** before anything is written; duplicate indices apply in order, as ONNX Runtime does. */
#include "engine/engine_internal.h"

#include <stdlib.h>
#include <string.h>

enum { RED_NONE, RED_ADD, RED_MUL, RED_MAX, RED_MIN };

typedef struct scatter_params_t {
  int k;          /* index tuple length: indices' last dimension */
  int reduction;  /* RED_* */
  size_t tuples;  /* index tuples */
  size_t slice;   /* elements per slice: data's dimensions past k */
  int64_t dims[LPQ_MAX_DIMS], strides[LPQ_MAX_DIMS]; /* data's first k dimensions, in elements */
} scatter_params_t;

static int scatter_prepare(lpq_graph_t *g, gnode_t *n, lpq_error_t *err) {
  int rc;
  char red[8];
  if ((rc = lpq__check_arity(n, 3, 3, 1, 1, err)) || (rc = lpq__need_dtype(g, n, 0, DT_ANY, err)) ||
      (rc = lpq__need_dtype(g, n, 1, DT(LPQ_DT_I64), err)) ||
      (rc = lpq__need_dtype(g, n, 2, DT_ANY, err)) ||
      (rc = lpq__attr_string(n, "reduction", "none", red, sizeof red, err)))
    return rc;
  const gval_t *x = gv(g, n->in[0]), *ix = gv(g, n->in[1]), *u = gv(g, n->in[2]);
  static const char *const names[] = {"none", "add", "mul", "max", "min"};
  int reduction = -1;
  for (int i = 0; i < 5; i++)
    if (strcmp(red, names[i]) == 0)
      reduction = i;
  if (reduction < 0)
    return lpq__node_err(err, LPQ_EFORMAT, n, "reduction '%s' is not one of none, add, mul, max, min",
                         red);
  if (u->dtype != x->dtype)
    return lpq__node_err(err, LPQ_EFORMAT, n, "updates' type differs from data's");
  if (reduction != RED_NONE && x->dtype == LPQ_DT_BOOL)
    return lpq__node_err(err, LPQ_EUNSUP, n, "reduction '%s' on bool data", red);
  if (ix->ndim < 1)
    return lpq__node_err(err, LPQ_EFORMAT, n, "indices must have rank 1 or more");
  const int64_t k = ix->shape[ix->ndim - 1];
  if (k < 1 || k > x->ndim)
    return lpq__node_err(err, LPQ_EFORMAT, n, "index tuples of length %lld for data of rank %d",
                         (long long)k, x->ndim);
  /* updates' shape: indices.shape[:-1] + data.shape[k:] */
  const int und = ix->ndim - 1 + x->ndim - (int)k;
  int ok = u->ndim == und;
  for (int i = 0; ok && i < ix->ndim - 1; i++)
    ok = u->shape[i] == ix->shape[i];
  for (int i = (int)k; ok && i < x->ndim; i++)
    ok = u->shape[ix->ndim - 1 + i - (int)k] == x->shape[i];
  if (!ok)
    return lpq__node_err(err, LPQ_EFORMAT, n,
                         "updates' shape must be indices' shape without its last dimension, then "
                         "data's shape past the first %lld dimensions", (long long)k);
  scatter_params_t *p = calloc(1, sizeof *p);
  if (!p)
    return lpq__node_err(err, LPQ_ENOMEM, n, "out of memory");
  n->params = p;
  p->k = (int)k, p->reduction = reduction;
  p->tuples = ix->count / (size_t)k;
  p->slice = 1;
  for (int i = (int)k; i < x->ndim; i++)
    p->slice *= (size_t)x->shape[i];
  for (int i = (int)k - 1; i >= 0; i--) {
    p->dims[i] = x->shape[i];
    p->strides[i] = i == (int)k - 1 ? (int64_t)p->slice : p->strides[i + 1] * x->shape[i + 1];
  }
  if (ix->cdata) /* constant indices: a bad model fails at load */
    for (size_t i = 0; i < ix->count; i++) {
      const int64_t v = ((const int64_t *)ix->cdata)[i], d = p->dims[i % (size_t)k];
      if (v < -d || v >= d)
        return lpq__node_err(err, LPQ_ERANGE, n,
                             "index %lld is out of range for dimension %d of size %lld",
                             (long long)v, (int)(i % (size_t)k), (long long)d);
    }
  return lpq__set_output(g, n, 0, x->dtype, x->ndim, x->shape, err);
}

#define COMBINE(T, dst, src, count, red)                                                     \
  do {                                                                                       \
    T *d_ = (T *)(dst);                                                                      \
    const T *s_ = (const T *)(src);                                                          \
    for (size_t i_ = 0; i_ < (count); i_++)                                                  \
      d_[i_] = (red) == RED_ADD ? d_[i_] + s_[i_]                                            \
               : (red) == RED_MUL ? d_[i_] * s_[i_]                                          \
               : (red) == RED_MAX ? (s_[i_] > d_[i_] ? s_[i_] : d_[i_])                      \
                                  : (s_[i_] < d_[i_] ? s_[i_] : d_[i_]);                     \
  } while (0)

static int scatter_run(const kctx_t *k) {
  const scatter_params_t *p = k->n->params;
  const gval_t *x = gv(k->g, k->n->in[0]);
  const size_t es = lpq_dtype_size(x->dtype), bytes = p->slice * es;
  const int64_t *idx = k->in[1];
  /* every tuple in range before the output is touched */
  for (size_t t = 0; t < p->tuples; t++)
    for (int j = 0; j < p->k; j++) {
      const int64_t v = idx[t * (size_t)p->k + (size_t)j];
      if (v < -p->dims[j] || v >= p->dims[j])
        return lpq__node_err(k->err, LPQ_ERANGE, k->n,
                             "index %lld is out of range for dimension %d of size %lld",
                             (long long)v, j, (long long)p->dims[j]);
    }
  char *y = k->out[0];
  if (k->out[0] != k->in[0])
    memmove(y, k->in[0], x->count * es);
  const char *u = k->in[2];
  for (size_t t = 0; t < p->tuples; t++) {
    int64_t off = 0;
    for (int j = 0; j < p->k; j++) {
      const int64_t v = idx[t * (size_t)p->k + (size_t)j];
      off += (v < 0 ? v + p->dims[j] : v) * p->strides[j];
    }
    char *dst = y + (size_t)off * es;
    const char *src = u + t * bytes;
    if (p->reduction == RED_NONE)
      memcpy(dst, src, bytes);
    else if (x->dtype == LPQ_DT_F32)
      COMBINE(float, dst, src, p->slice, p->reduction);
    else
      COMBINE(int64_t, dst, src, p->slice, p->reduction);
  }
  return 0;
}

static const char *const scatter_attrs[] = {"reduction", NULL};

const op_def_t lpq__ops_scatter_table[] = {
    {"ScatterND", scatter_attrs, scatter_prepare, scatter_run},
    {NULL, NULL, NULL, NULL},
};
