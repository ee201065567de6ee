/* engine/ops_tensor.c: data movement: Transpose, Concat, Split, Slice, Gather, Tile, Pad.
** Kernels move elements of any engine dtype by size. */
#include "engine/engine_internal.h"

#include <stdlib.h>
#include <string.h>

static void contiguous_strides(int nd, const int64_t *shape, int64_t *st) {
  int64_t s = 1;
  for (int i = nd - 1; i >= 0; i--)
    st[i] = s, s *= shape[i];
}

/* A strided gather (Transpose, Slice): output element (i0, .., in) reads input element
** base + sum(i_j * st[j]). Dims that stay contiguous in both are merged first, so most
** transposes keep a long innermost run: rows of it are copied whole (input stride 1) or
** gathered by a typed loop; rows are split over the context's threads. */
typedef struct strided_job_t {
  const char *in;
  char *out;
  size_t es, inner, rows;
  int nd; /* merged dims; the last is the row */
  int64_t shape[LPQ_MAX_DIMS], st[LPQ_MAX_DIMS], base;
} strided_job_t;

#define STRIDED_ROWS_PER_TASK 256

static void strided_setup(strided_job_t *j, size_t es, int nd, const int64_t *shape,
                          const int64_t *st, int64_t base) {
  j->es = es, j->base = base, j->nd = 0;
  for (int d = 0; d < nd; d++) {
    if (shape[d] == 1)
      continue;
    const int m = j->nd - 1;
    if (m >= 0 && j->st[m] == st[d] * shape[d]) { /* contiguous with the dim before */
      j->shape[m] *= shape[d], j->st[m] = st[d];
    } else {
      j->shape[j->nd] = shape[d], j->st[j->nd] = st[d], j->nd++;
    }
  }
  if (j->nd == 0)
    j->shape[0] = 1, j->st[0] = 1, j->nd = 1;
  j->inner = (size_t)j->shape[j->nd - 1];
  j->rows = 1;
  for (int d = 0; d < j->nd - 1; d++)
    j->rows *= (size_t)j->shape[d];
}

static void strided_task(void *arg, size_t task, int tid) {
  (void)tid;
  const strided_job_t *j = arg;
  const size_t r0 = task * STRIDED_ROWS_PER_TASK;
  const size_t r1 = r0 + STRIDED_ROWS_PER_TASK < j->rows ? r0 + STRIDED_ROWS_PER_TASK : j->rows;
  const int last = j->nd - 1;
  const int64_t ist = j->st[last], n = (int64_t)j->inner;
  const size_t es = j->es;
  int64_t idx[LPQ_MAX_DIMS] = {0}, off = j->base;
  size_t r = r0;
  for (int d = last - 1; d >= 0; d--) { /* the odometer at row r0 */
    idx[d] = (int64_t)(r % (size_t)j->shape[d]), r /= (size_t)j->shape[d];
    off += idx[d] * j->st[d];
  }
  for (r = r0; r < r1; r++) {
    char *dst = j->out + r * j->inner * es;
    const char *src = j->in + off * (int64_t)es;
    if (ist == 1) {
      memcpy(dst, src, j->inner * es);
    } else if (es == 4) {
      for (int64_t i = 0; i < n; i++)
        memcpy(dst + 4 * i, src + 4 * i * ist, 4);
    } else if (es == 8) {
      for (int64_t i = 0; i < n; i++)
        memcpy(dst + 8 * i, src + 8 * i * ist, 8);
    } else {
      for (int64_t i = 0; i < n; i++)
        memcpy(dst + (int64_t)es * i, src + (int64_t)es * i * ist, es);
    }
    for (int d = last - 1; d >= 0; d--) {
      off += j->st[d];
      if (++idx[d] < j->shape[d])
        break;
      off -= j->st[d] * j->shape[d];
      idx[d] = 0;
    }
  }
}

static void gather_strided(threads_t *pool, const char *in, char *out, size_t es, int nd,
                           const int64_t *out_shape, const int64_t *in_st, int64_t base,
                           size_t count) {
  if (count == 0)
    return;
  strided_job_t j = {.in = in, .out = out};
  strided_setup(&j, es, nd, out_shape, in_st, base);
  lpq__threads_run(pool, (j.rows + STRIDED_ROWS_PER_TASK - 1) / STRIDED_ROWS_PER_TASK,
                   strided_task, &j);
}

/* ---- Transpose ---- */

typedef struct strided_params_t {
  int nd;
  int64_t in_st[LPQ_MAX_DIMS]; /* input stride per output dim */
  int64_t base;
} strided_params_t;

static int strided_run(const kctx_t *k) {
  const strided_params_t *p = k->n->params;
  const gval_t *y = gv(k->g, k->n->out[0]);
  gather_strided(k->pool, k->in[0], k->out[0], lpq_dtype_size(y->dtype), p->nd, y->shape, p->in_st,
                 p->base, y->count);
  return 0;
}

static int transpose_prepare(lpq_graph_t *g, gnode_t *n, lpq_error_t *err) {
  int rc;
  int64_t perm[LPQ_MAX_DIMS];
  size_t np;
  if ((rc = lpq__check_arity(n, 1, 1, 1, 1, err)) || (rc = lpq__need_dtype(g, n, 0, DT_ANY, err)) ||
      (rc = lpq__attr_ints(n, "perm", perm, LPQ_MAX_DIMS, &np, err)))
    return rc;
  const gval_t *x = gv(g, n->in[0]);
  if (np == 0)
    for (int i = 0; i < x->ndim; i++)
      perm[i] = x->ndim - 1 - i;
  else if (np != (size_t)x->ndim)
    return lpq__node_err(err, LPQ_EFORMAT, n, "perm has %zu entries for rank %d", np, x->ndim);
  strided_params_t *p = calloc(1, sizeof *p);
  if (!p)
    return lpq__node_err(err, LPQ_ENOMEM, n, "out of memory");
  n->params = p;
  int64_t st[LPQ_MAX_DIMS], shape[LPQ_MAX_DIMS];
  int seen[LPQ_MAX_DIMS] = {0};
  contiguous_strides(x->ndim, x->shape, st);
  for (int i = 0; i < x->ndim; i++) {
    if (perm[i] < 0 || perm[i] >= x->ndim || seen[perm[i]]++)
      return lpq__node_err(err, LPQ_EFORMAT, n, "perm is not a permutation");
    shape[i] = x->shape[perm[i]];
    p->in_st[i] = st[perm[i]];
  }
  p->nd = x->ndim;
  return lpq__set_output(g, n, 0, x->dtype, x->ndim, shape, err);
}

/* ---- Slice ---- */

static int slice_prepare(lpq_graph_t *g, gnode_t *n, lpq_error_t *err) {
  int rc;
  if ((rc = lpq__check_arity(n, 1, 5, 1, 1, err)) || (rc = lpq__need_dtype(g, n, 0, DT_ANY, err)))
    return rc;
  const gval_t *x = gv(g, n->in[0]);
  int64_t starts[LPQ_MAX_DIMS], ends[LPQ_MAX_DIMS], axes[LPQ_MAX_DIMS], steps[LPQ_MAX_DIMS];
  size_t ns, ne, na = 0, nst = 0;
  if (n->nin == 1) { /* opset < 10: attributes */
    if ((rc = lpq__attr_ints(n, "starts", starts, LPQ_MAX_DIMS, &ns, err)) ||
        (rc = lpq__attr_ints(n, "ends", ends, LPQ_MAX_DIMS, &ne, err)) ||
        (rc = lpq__attr_ints(n, "axes", axes, LPQ_MAX_DIMS, &na, err)))
      return rc;
  } else {
    if ((rc = lpq__check_arity(n, 3, 5, 1, 1, err)) ||
        (rc = lpq__const_ints(g, n, 1, starts, LPQ_MAX_DIMS, &ns, err)) ||
        (rc = lpq__const_ints(g, n, 2, ends, LPQ_MAX_DIMS, &ne, err)))
      return rc;
    if (n->nin > 3 && n->in[3] >= 0 && (rc = lpq__const_ints(g, n, 3, axes, LPQ_MAX_DIMS, &na, err)))
      return rc;
    if (n->nin > 4 && n->in[4] >= 0 && (rc = lpq__const_ints(g, n, 4, steps, LPQ_MAX_DIMS, &nst, err)))
      return rc;
  }
  if (ne != ns || (na && na != ns) || (nst && nst != ns))
    return lpq__node_err(err, LPQ_EFORMAT, n, "starts, ends, axes and steps differ in length");
  int64_t beg[LPQ_MAX_DIMS], step[LPQ_MAX_DIMS], shape[LPQ_MAX_DIMS];
  int seen[LPQ_MAX_DIMS] = {0};
  for (int i = 0; i < x->ndim; i++)
    beg[i] = 0, step[i] = 1, shape[i] = x->shape[i];
  for (size_t i = 0; i < ns; i++) {
    int a;
    if ((rc = lpq__norm_axis(n, na ? axes[i] : (int64_t)i, x->ndim, &a, err)))
      return rc;
    if (seen[a]++)
      return lpq__node_err(err, LPQ_EFORMAT, n, "axis %d is repeated", a);
    const int64_t dim = x->shape[a], st = nst ? steps[i] : 1;
    if (st == 0)
      return lpq__node_err(err, LPQ_EFORMAT, n, "step is 0");
    int64_t s = starts[i], e = ends[i];
    s = s < 0 ? (s < -dim ? 0 : s + dim) : s; /* careful with INT64_MIN/MAX sentinels */
    e = e < 0 ? (e < -dim ? -1 : e + dim) : e;
    if (st > 0) {
      s = s > dim ? dim : s < 0 ? 0 : s;
      e = e > dim ? dim : e < 0 ? 0 : e;
    } else {
      s = s > dim - 1 ? dim - 1 : s < 0 ? 0 : s;
      e = e > dim - 1 ? dim - 1 : e < -1 ? -1 : e;
    }
    int64_t len = st > 0 ? (e - s + st - 1) / st : (s - e + (-st) - 1) / (-st);
    beg[a] = s, step[a] = st, shape[a] = len > 0 ? len : 0;
  }
  strided_params_t *p = calloc(1, sizeof *p);
  if (!p)
    return lpq__node_err(err, LPQ_ENOMEM, n, "out of memory");
  n->params = p;
  int64_t st[LPQ_MAX_DIMS];
  contiguous_strides(x->ndim, x->shape, st);
  p->nd = x->ndim;
  for (int i = 0; i < x->ndim; i++) {
    p->in_st[i] = st[i] * step[i];
    p->base += beg[i] * st[i];
  }
  return lpq__set_output(g, n, 0, x->dtype, x->ndim, shape, err);
}

/* ---- Concat and Split: outer blocks of a contiguous inner chunk per tensor ---- */

typedef struct cat_params_t {
  size_t outer;
  size_t chunk[64]; /* bytes of each part per outer index */
  int nparts;
} cat_params_t;

static int concat_prepare(lpq_graph_t *g, gnode_t *n, lpq_error_t *err) {
  int rc;
  int64_t axis;
  if ((rc = lpq__check_arity(n, 1, 64, 1, 1, err)) || (rc = lpq__attr_int(n, "axis", 0, &axis, err)))
    return rc;
  for (int i = 0; i < n->nin; i++)
    if ((rc = lpq__need_dtype(g, n, i, DT_ANY, err)))
      return rc;
  const gval_t *x0 = gv(g, n->in[0]);
  int ax;
  if ((rc = lpq__norm_axis(n, axis, x0->ndim, &ax, err)))
    return rc;
  cat_params_t *p = calloc(1, sizeof *p);
  if (!p)
    return lpq__node_err(err, LPQ_ENOMEM, n, "out of memory");
  n->params = p;
  int64_t shape[LPQ_MAX_DIMS];
  memcpy(shape, x0->shape, sizeof shape);
  shape[ax] = 0;
  const size_t es = lpq_dtype_size(x0->dtype);
  p->outer = 1;
  for (int i = 0; i < ax; i++)
    p->outer *= (size_t)x0->shape[i];
  for (int i = 0; i < n->nin; i++) {
    const gval_t *x = gv(g, n->in[i]);
    if (x->ndim != x0->ndim || x->dtype != x0->dtype)
      return lpq__node_err(err, LPQ_EFORMAT, n, "input %d differs in rank or type", i);
    for (int j = 0; j < x->ndim; j++)
      if (j != ax && x->shape[j] != x0->shape[j])
        return lpq__node_err(err, LPQ_EFORMAT, n, "input %d differs in dimension %d", i, j);
    shape[ax] += x->shape[ax];
    p->chunk[i] = p->outer ? x->count / p->outer * es : 0;
  }
  p->nparts = n->nin;
  return lpq__set_output(g, n, 0, x0->dtype, x0->ndim, shape, err);
}

static int concat_run(const kctx_t *k) {
  const cat_params_t *p = k->n->params;
  char *y = k->out[0];
  for (size_t o = 0; o < p->outer; o++)
    for (int i = 0; i < p->nparts; i++) {
      memcpy(y, (const char *)k->in[i] + o * p->chunk[i], p->chunk[i]);
      y += p->chunk[i];
    }
  return 0;
}

static int split_prepare(lpq_graph_t *g, gnode_t *n, lpq_error_t *err) {
  int rc;
  int64_t axis, nout_attr, split[64];
  size_t nsplit = 0;
  if ((rc = lpq__check_arity(n, 1, 2, 1, 64, err)) || (rc = lpq__need_dtype(g, n, 0, DT_ANY, err)) ||
      (rc = lpq__attr_int(n, "axis", 0, &axis, err)) ||
      (rc = lpq__attr_int(n, "num_outputs", 0, &nout_attr, err)) ||
      (rc = lpq__attr_ints(n, "split", split, 64, &nsplit, err)))
    return rc;
  if (n->nin > 1 && n->in[1] >= 0 && (rc = lpq__const_ints(g, n, 1, split, 64, &nsplit, err)))
    return rc;
  const gval_t *x = gv(g, n->in[0]);
  int ax;
  if ((rc = lpq__norm_axis(n, axis, x->ndim, &ax, err)))
    return rc;
  const int64_t dim = x->shape[ax];
  if (nsplit == 0) { /* equal parts; the last one smaller when it does not divide */
    int64_t parts = n->nout, each = (dim + parts - 1) / parts;
    for (int i = 0; i < n->nout; i++) {
      int64_t left = dim - each * i;
      split[i] = left < 0 ? 0 : left < each ? left : each;
    }
    nsplit = (size_t)n->nout;
  }
  int64_t total = 0;
  for (size_t i = 0; i < nsplit; i++)
    total += split[i] >= 0 ? split[i] : -1;
  if (nsplit != (size_t)n->nout || total != dim)
    return lpq__node_err(err, LPQ_EFORMAT, n, "split sizes do not add up to dimension %lld",
                    (long long)dim);
  cat_params_t *p = calloc(1, sizeof *p);
  if (!p)
    return lpq__node_err(err, LPQ_ENOMEM, n, "out of memory");
  n->params = p;
  size_t inner = 1;
  p->outer = 1;
  for (int i = 0; i < ax; i++)
    p->outer *= (size_t)x->shape[i];
  for (int i = ax + 1; i < x->ndim; i++)
    inner *= (size_t)x->shape[i];
  p->nparts = n->nout;
  for (int o = 0; o < n->nout; o++) {
    int64_t shape[LPQ_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[ax] = split[o];
    p->chunk[o] = (size_t)split[o] * inner * lpq_dtype_size(x->dtype);
    if ((rc = lpq__set_output(g, n, o, x->dtype, x->ndim, shape, err)))
      return rc;
  }
  return 0;
}

static int split_run(const kctx_t *k) {
  const cat_params_t *p = k->n->params;
  const char *x = k->in[0];
  for (size_t o = 0; o < p->outer; o++)
    for (int i = 0; i < p->nparts; i++) {
      if (k->out[i])
        memcpy((char *)k->out[i] + o * p->chunk[i], x, p->chunk[i]);
      x += p->chunk[i];
    }
  return 0;
}

/* ---- Gather ---- */

typedef struct gather_params_t {
  size_t outer, inner_bytes, nidx;
  int64_t dim;
} gather_params_t;

static int gather_prepare(lpq_graph_t *g, gnode_t *n, lpq_error_t *err) {
  int rc;
  int64_t axis;
  int ax;
  if ((rc = lpq__check_arity(n, 2, 2, 1, 1, err)) || (rc = lpq__need_dtype(g, n, 0, DT_ANY, err)) ||
      (rc = lpq__need_dtype(g, n, 1, DT(LPQ_DT_I64), err)) || (rc = lpq__attr_int(n, "axis", 0, &axis, err)))
    return rc;
  const gval_t *x = gv(g, n->in[0]), *ix = gv(g, n->in[1]);
  if ((rc = lpq__norm_axis(n, axis, x->ndim, &ax, err)))
    return rc;
  if (x->ndim + ix->ndim - 1 > LPQ_MAX_DIMS)
    return lpq__node_err(err, LPQ_EUNSUP, n, "output rank exceeds %d", LPQ_MAX_DIMS);
  gather_params_t *p = calloc(1, sizeof *p);
  if (!p)
    return lpq__node_err(err, LPQ_ENOMEM, n, "out of memory");
  n->params = p;
  int64_t shape[LPQ_MAX_DIMS];
  int nd = 0;
  size_t inner = 1;
  p->outer = 1;
  for (int i = 0; i < ax; i++)
    shape[nd++] = x->shape[i], p->outer *= (size_t)x->shape[i];
  for (int i = 0; i < ix->ndim; i++)
    shape[nd++] = ix->shape[i];
  for (int i = ax + 1; i < x->ndim; i++)
    shape[nd++] = x->shape[i], inner *= (size_t)x->shape[i];
  p->inner_bytes = inner * lpq_dtype_size(x->dtype);
  p->nidx = ix->count;
  p->dim = x->shape[ax];
  if (ix->cdata) /* check constant indices now, so a bad model fails at load */
    for (size_t i = 0; i < ix->count; i++) {
      int64_t v = ((const int64_t *)ix->cdata)[i];
      if (v < -p->dim || v >= p->dim)
        return lpq__node_err(err, LPQ_ERANGE, n, "index %lld is out of range for dimension %lld",
                        (long long)v, (long long)p->dim);
    }
  return lpq__set_output(g, n, 0, x->dtype, nd, shape, err);
}

static int gather_run(const kctx_t *k) {
  const gather_params_t *p = k->n->params;
  const int64_t *idx = k->in[1];
  const char *x = k->in[0];
  char *y = k->out[0];
  for (size_t o = 0; o < p->outer; o++)
    for (size_t i = 0; i < p->nidx; i++) {
      int64_t v = idx[i];
      if (v < -p->dim || v >= p->dim)
        return lpq__node_err(k->err, LPQ_ERANGE, k->n, "index %lld is out of range for dimension "
                        "%lld", (long long)v, (long long)p->dim);
      if (v < 0)
        v += p->dim;
      memcpy(y, x + (o * (size_t)p->dim + (size_t)v) * p->inner_bytes, p->inner_bytes);
      y += p->inner_bytes;
    }
  return 0;
}

/* ---- Tile and Pad: each output element maps back to one input element (or a constant) ---- */

typedef struct map_params_t {
  int nd, mode; /* Pad: 0 constant, 1 reflect, 2 edge; Tile: 3 */
  int64_t in_shape[LPQ_MAX_DIMS], pad_begin[LPQ_MAX_DIMS];
  double value;
} map_params_t;

static int tile_prepare(lpq_graph_t *g, gnode_t *n, lpq_error_t *err) {
  int rc;
  int64_t rep[LPQ_MAX_DIMS];
  size_t nr;
  if ((rc = lpq__check_arity(n, 2, 2, 1, 1, err)) || (rc = lpq__need_dtype(g, n, 0, DT_ANY, err)) ||
      (rc = lpq__const_ints(g, n, 1, rep, LPQ_MAX_DIMS, &nr, err)))
    return rc;
  const gval_t *x = gv(g, n->in[0]);
  if (nr != (size_t)x->ndim)
    return lpq__node_err(err, LPQ_EFORMAT, n, "repeats has %zu values for rank %d", nr, x->ndim);
  map_params_t *p = calloc(1, sizeof *p);
  if (!p)
    return lpq__node_err(err, LPQ_ENOMEM, n, "out of memory");
  n->params = p;
  p->nd = x->ndim, p->mode = 3;
  int64_t shape[LPQ_MAX_DIMS];
  for (int i = 0; i < x->ndim; i++) {
    if (rep[i] < 0 || (x->shape[i] && rep[i] > (int64_t)(GRAPH_MAX_TENSOR_BYTES / (size_t)x->shape[i])))
      return lpq__node_err(err, LPQ_ERANGE, n, "repeats[%d] = %lld", i, (long long)rep[i]);
    shape[i] = x->shape[i] * rep[i];
    p->in_shape[i] = x->shape[i];
  }
  return lpq__set_output(g, n, 0, x->dtype, x->ndim, shape, err);
}

static int pad_prepare(lpq_graph_t *g, gnode_t *n, lpq_error_t *err) {
  int rc;
  int64_t pads[2 * LPQ_MAX_DIMS], axes[LPQ_MAX_DIMS];
  size_t np = 0, na = 0;
  char mode[16];
  float value_attr;
  if ((rc = lpq__check_arity(n, 1, 4, 1, 1, err)) || (rc = lpq__need_dtype(g, n, 0, DT_NUM, err)) ||
      (rc = lpq__attr_string(n, "mode", "constant", mode, sizeof mode, err)) ||
      (rc = lpq__attr_float(n, "value", 0.0f, &value_attr, err)) ||
      (rc = lpq__attr_ints(n, "pads", pads, 2 * LPQ_MAX_DIMS, &np, err)))
    return rc;
  if (n->nin > 1 && (rc = lpq__const_ints(g, n, 1, pads, 2 * LPQ_MAX_DIMS, &np, err)))
    return rc;
  if (n->nin > 3 && n->in[3] >= 0 && (rc = lpq__const_ints(g, n, 3, axes, LPQ_MAX_DIMS, &na, err)))
    return rc;
  const gval_t *x = gv(g, n->in[0]);
  map_params_t *p = calloc(1, sizeof *p);
  if (!p)
    return lpq__node_err(err, LPQ_ENOMEM, n, "out of memory");
  n->params = p;
  p->nd = x->ndim;
  p->mode = strcmp(mode, "constant") == 0 ? 0 : strcmp(mode, "reflect") == 0 ? 1
            : strcmp(mode, "edge") == 0   ? 2 : -1;
  if (p->mode < 0)
    return lpq__node_err(err, LPQ_EUNSUP, n, "mode '%s' is not supported", mode);
  p->value = value_attr;
  if (n->nin > 2 && n->in[2] >= 0) {
    const gval_t *cv = gv(g, n->in[2]);
    if (!cv->cdata || cv->count != 1 || cv->dtype != x->dtype)
      return lpq__node_err(err, LPQ_EUNSUP, n, "constant_value must be a constant scalar");
    p->value = x->dtype == LPQ_DT_F32 ? *(float *)cv->cdata : (double)*(int64_t *)cv->cdata;
  }
  const size_t nax = na ? na : (size_t)x->ndim;
  if (np != 2 * nax)
    return lpq__node_err(err, LPQ_EFORMAT, n, "pads has %zu values for %zu axes", np, nax);
  int64_t shape[LPQ_MAX_DIMS];
  memcpy(shape, x->shape, sizeof shape);
  memcpy(p->in_shape, x->shape, sizeof shape);
  for (size_t i = 0; i < nax; i++) {
    int a;
    if ((rc = lpq__norm_axis(n, na ? axes[i] : (int64_t)i, x->ndim, &a, err)))
      return rc;
    int64_t b = pads[i], e = pads[i + nax];
    if (b < -x->shape[a] || e < -x->shape[a] || b > (1 << 24) || e > (1 << 24))
      return lpq__node_err(err, LPQ_ERANGE, n, "pads %lld,%lld out of range", (long long)b, (long long)e);
    if (p->mode != 0 && (b < 0 || e < 0 || x->shape[a] == 0 ||
                         (p->mode == 1 && (b >= x->shape[a] || e >= x->shape[a]))))
      return lpq__node_err(err, LPQ_EUNSUP, n, "pads %lld,%lld not supported in mode '%s'",
                      (long long)b, (long long)e, mode);
    p->pad_begin[a] = b;
    shape[a] = x->shape[a] + b + e;
  }
  return lpq__set_output(g, n, 0, x->dtype, x->ndim, shape, err);
}

/* The constant pad value in the output's type. */
static void pad_value(const map_params_t *p, lpq_dtype_t dt, char *dst) {
  if (dt == LPQ_DT_F32)
    *(float *)dst = (float)p->value;
  else if (dt == LPQ_DT_I64)
    *(int64_t *)dst = (int64_t)p->value;
  else
    *(uint8_t *)dst = p->value != 0;
}

/* Constant padding that only grows the tensor (Swin's window padding, conv-style pads): the
** output filled with the value, then each input row copied into place. 0 when it does not
** apply. */
static int pad_rows(const kctx_t *k, const map_params_t *p, const gval_t *y, size_t es) {
  if (p->mode != 0 || p->nd < 1)
    return 0;
  for (int j = 0; j < p->nd; j++)
    if (p->pad_begin[j] < 0 || y->shape[j] < p->pad_begin[j] + p->in_shape[j])
      return 0;
  char *out = k->out[0];
  if (y->dtype == LPQ_DT_F32) {
    const float v = (float)p->value;
    for (size_t i = 0; i < y->count; i++)
      ((float *)out)[i] = v;
  } else {
    for (size_t i = 0; i < y->count; i++)
      pad_value(p, y->dtype, out + i * es);
  }
  int64_t ost[LPQ_MAX_DIMS], idx[LPQ_MAX_DIMS] = {0};
  contiguous_strides(p->nd, y->shape, ost);
  const int last = p->nd - 1;
  size_t rows = 1, in_count = 1;
  for (int j = 0; j < p->nd; j++)
    in_count *= (size_t)p->in_shape[j];
  if (in_count == 0)
    return 1;
  for (int j = 0; j < last; j++)
    rows *= (size_t)p->in_shape[j];
  const size_t row_bytes = (size_t)p->in_shape[last] * es;
  const char *in = k->in[0];
  for (size_t r = 0; r < rows; r++) {
    int64_t off = p->pad_begin[last];
    for (int j = 0; j < last; j++)
      off += (idx[j] + p->pad_begin[j]) * ost[j];
    memcpy(out + off * (int64_t)es, in + r * row_bytes, row_bytes);
    for (int j = last - 1; j >= 0; j--) {
      if (++idx[j] < p->in_shape[j])
        break;
      idx[j] = 0;
    }
  }
  return 1;
}

static int map_run(const kctx_t *k) {
  const map_params_t *p = k->n->params;
  const gval_t *y = gv(k->g, k->n->out[0]);
  const size_t es = lpq_dtype_size(y->dtype);
  if (y->count && pad_rows(k, p, y, es))
    return 0;
  int64_t st[LPQ_MAX_DIMS], idx[LPQ_MAX_DIMS] = {0};
  contiguous_strides(p->nd, p->in_shape, st);
  for (size_t i = 0; i < y->count; i++) {
    int64_t off = 0, inside = 1;
    for (int j = 0; j < p->nd; j++) {
      int64_t d = p->in_shape[j], v = idx[j] - p->pad_begin[j];
      if (p->mode == 3)
        v = idx[j] % d;
      else if (v < 0 || v >= d) {
        if (p->mode == 0)
          inside = 0;
        else if (p->mode == 2)
          v = v < 0 ? 0 : d - 1;
        else
          v = v < 0 ? -v : 2 * (d - 1) - v;
      }
      off += v * st[j];
    }
    char *dst = (char *)k->out[0] + i * es;
    if (inside)
      memcpy(dst, (const char *)k->in[0] + off * (int64_t)es, es);
    else
      pad_value(p, y->dtype, dst);
    for (int j = p->nd - 1; j >= 0; j--) {
      if (++idx[j] < y->shape[j])
        break;
      idx[j] = 0;
    }
  }
  return 0;
}

static const char *const perm_attrs[] = {"perm", NULL};
static const char *const slice_attrs[] = {"starts", "ends", "axes", NULL};
static const char *const axis_attrs[] = {"axis", NULL};
static const char *const split_attrs[] = {"axis", "split", "num_outputs", NULL};
static const char *const no_attrs[] = {NULL};
static const char *const pad_attrs[] = {"mode", "pads", "value", NULL};

const op_def_t lpq__ops_tensor_table[] = {
    {"Transpose", perm_attrs, transpose_prepare, strided_run},
    {"Slice", slice_attrs, slice_prepare, strided_run},
    {"Concat", axis_attrs, concat_prepare, concat_run},
    {"Split", split_attrs, split_prepare, split_run},
    {"Gather", axis_attrs, gather_prepare, gather_run},
    {"Tile", no_attrs, tile_prepare, map_run},
    {"Pad", pad_attrs, pad_prepare, map_run},
    {NULL, NULL, NULL, NULL},
};
