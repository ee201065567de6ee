/* engine/ops_pool.c: MaxPool, AveragePool (1-D and 2-D, pads, auto_pad, ceil_mode,
** dilations, count_include_pad), GlobalAveragePool, GlobalMaxPool. */
#include "engine/engine_internal.h"

/* -O2's "very cheap" vectoriser skips loops whose trip count is unknown; these need it. */
#if defined(__GNUC__) && !defined(__clang__) /* clang vectorises at -O2 and has no such pragma */
#pragma GCC optimize("tree-vectorize", "vect-cost-model=dynamic")
#endif

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct pool_params_t {
  conv_params_t w; /* window geometry; M = C */
  int is_max, count_include_pad;
} pool_params_t;

static int pool_prepare(lpq_graph_t *g, gnode_t *n, lpq_error_t *err) {
  int rc;
  const int is_max = strcmp(n->op_type, "MaxPool") == 0;
  if ((rc = lpq__check_arity(n, 1, 1, 1, 2, err)) || (rc = lpq__need_dtype(g, n, 0, DT(LPQ_DT_F32), err)))
    return rc;
  if (n->nout > 1 && n->out[1] >= 0)
    return lpq__node_err(err, LPQ_EUNSUP, n, "the Indices output is not supported");
  const gval_t *x = gv(g, n->in[0]);
  const int spatial = x->ndim - 2;
  if (spatial < 1 || spatial > 2)
    return lpq__node_err(err, LPQ_EUNSUP, n, "only 1-D and 2-D pooling is supported (rank %d)",
                    x->ndim);
  pool_params_t *p = calloc(1, sizeof *p);
  if (!p)
    return lpq__node_err(err, LPQ_ENOMEM, n, "out of memory");
  n->params = p;
  p->is_max = is_max;
  conv_params_t *w = &p->w;
  int64_t ceil_mode, cip = 0, storage = 0;
  char ap[32];
  if ((rc = lpq__attr_int(n, "ceil_mode", 0, &ceil_mode, err)) ||
      (rc = lpq__attr_int(n, "count_include_pad", 0, &cip, err)) ||
      (rc = lpq__attr_int(n, "storage_order", 0, &storage, err)) ||
      (rc = lpq__read_window(n, spatial, NULL, 1, w->k, w->s, w->d, w->p, ap, sizeof ap, err)))
    return rc;
  if (storage != 0)
    return lpq__node_err(err, LPQ_EUNSUP, n, "storage_order = %lld is not supported", (long long)storage);
  p->count_include_pad = cip != 0;
  w->spatial = spatial;
  w->N = x->shape[0], w->C = w->M = x->shape[1];
  w->H = spatial == 2 ? x->shape[2] : 1;
  w->W = x->shape[spatial + 1];
  if ((rc = lpq__conv_out_dim(n, ap, w->H, w->k[0], w->s[0], w->d[0], &w->p[0], &w->p[2],
                         (int)ceil_mode, &w->OH, err)) ||
      (rc = lpq__conv_out_dim(n, ap, w->W, w->k[1], w->s[1], w->d[1], &w->p[1], &w->p[3],
                         (int)ceil_mode, &w->OW, err)))
    return rc;
  n->scratch_floats = (size_t)(w->W + 2 + w->OW) + (size_t)(w->k[0] * w->OW); /* + max rows */
  int64_t shape[4] = {w->N, w->C, w->OH, w->OW};
  if (spatial == 1)
    shape[2] = w->OW;
  return lpq__set_output(g, n, 0, LPQ_DT_F32, x->ndim, shape, err);
}

/* acc[ox] = max (or sum) with input row xr's values under output column ox's window, one
** vectorised pass per kernel tap (stride 2: from the row split into even and odd columns). */
static void row_taps(const conv_params_t *w, int is_max, const float *xr, float *even,
                     float *odd, float *acc) {
  const int64_t W = w->W, OW = w->OW, sx = w->s[1];
  if (sx == 2)
    lpq__kern_deinterleave(even, odd, xr, (size_t)W);
  for (int kx = 0; kx < w->k[1]; kx++) {
    const int64_t off = kx - w->p[1];
    const int64_t lo = off >= 0 ? 0 : (-off + sx - 1) / sx;
    int64_t hi = W - off <= 0 ? 0 : (W - off - 1) / sx + 1;
    hi = hi > OW ? OW : hi;
    if (hi <= lo)
      continue;
    const float *src = sx == 1        ? xr + off + lo
                       : off % 2 == 0 ? even + (lo + off / 2)
                                      : odd + (lo + (off - 1) / 2);
    if (sx > 2) {
      for (int64_t ox = lo; ox < hi; ox++) {
        const float v = xr[ox * sx + off];
        acc[ox] = is_max ? (v > acc[ox] ? v : acc[ox]) : acc[ox] + v;
      }
    } else if (is_max) {
      lpq__kern_max(acc + lo, src, (size_t)(hi - lo));
    } else {
      lpq__kern_add(acc + lo, src, (size_t)(hi - lo));
    }
  }
}

/* Undilated windows: one vectorised pass per kernel tap over each output row (as the
** depthwise conv), then the average's divisor per position. scratch: W + 2 + OW floats. */
static void pool_plane_fast(const pool_params_t *p, const float *xc, float *yc, float *tmp) {
  const conv_params_t *w = &p->w;
  const int64_t H = w->H, W = w->W, OW = w->OW, sx = w->s[1];
  float *even = tmp, *odd = tmp + (W + 1) / 2, *wcount = tmp + W + 2;
  for (int64_t ox = 0; ox < OW; ox++) { /* window width inside the input (or padded input) */
    int64_t x0 = ox * sx - w->p[1], a = x0, b = x0 + w->k[1];
    const int64_t lo_lim = p->count_include_pad ? -w->p[1] : 0;
    const int64_t hi_lim = p->count_include_pad ? W + w->p[3] : W;
    a = a < lo_lim ? lo_lim : a;
    b = b > hi_lim ? hi_lim : b;
    wcount[ox] = (float)(b > a ? b - a : 0);
  }
  for (int64_t oy = 0; oy < w->OH; oy++) {
    float *yr = yc + oy * OW;
    for (int64_t ox = 0; ox < OW; ox++)
      yr[ox] = p->is_max ? -INFINITY : 0.0f;
    int64_t rows = 0;
    for (int ky = 0; ky < w->k[0]; ky++) {
      const int64_t iy = oy * w->s[0] - w->p[0] + ky;
      if (iy >= -w->p[0] && iy < H + w->p[2])
        rows += p->count_include_pad;
      if (iy < 0 || iy >= H)
        continue;
      rows += !p->count_include_pad;
      row_taps(w, p->is_max, xc + iy * W, even, odd, yr);
    }
    if (!p->is_max)
      for (int64_t ox = 0; ox < OW; ox++) {
        float div = (float)rows * wcount[ox];
        yr[ox] = div > 0 ? yr[ox] / div : 0.0f;
      }
  }
}

/* The max of undilated windows in two passes: each input row's max over the window's width
** (once, kept in a ring of k[0] rows), then each output row the max of k[0] of those. The same
** value as pool_plane_fast's (x > y ? x : y over the same elements, rows in the same order).
** scratch: W + 2 floats, then the ring (k[0] x OW). */
static void max_plane_rows(const pool_params_t *p, const float *xc, float *yc, float *tmp) {
  const conv_params_t *w = &p->w;
  const int64_t H = w->H, W = w->W, OW = w->OW, kh = w->k[0];
  float *even = tmp, *odd = tmp + (W + 1) / 2, *ring = tmp + W + 2;
  int64_t key[16];
  for (int64_t i = 0; i < kh; i++)
    key[i] = -1;
  for (int64_t oy = 0; oy < w->OH; oy++) {
    float *yr = yc + oy * OW;
    for (int64_t ox = 0; ox < OW; ox++)
      yr[ox] = -INFINITY;
    for (int ky = 0; ky < kh; ky++) {
      const int64_t iy = oy * w->s[0] - w->p[0] + ky;
      if (iy < 0 || iy >= H)
        continue;
      float *hm = ring + iy % kh * OW;
      if (key[iy % kh] != iy) { /* input row iy's max over each window's columns */
        key[iy % kh] = iy;
        lpq__maxpool_row(w, xc + iy * W, even, odd, hm);
      }
      lpq__kern_max(yr, hm, (size_t)OW);
    }
  }
}

const conv_params_t *lpq__maxpool_window(const gnode_t *n) {
  if (strcmp(n->op_type, "MaxPool") != 0 || !n->params)
    return NULL;
  const conv_params_t *w = &((const pool_params_t *)n->params)->w;
  return w->spatial == 2 && w->d[0] == 1 && w->d[1] == 1 && w->s[1] <= 2 && w->k[0] <= 16 &&
                 w->s[0] < w->k[0]
             ? w
             : NULL;
}

void lpq__maxpool_row(const conv_params_t *w, const float *xr, float *even, float *odd,
                      float *acc) {
  for (int64_t ox = 0; ox < w->OW; ox++)
    acc[ox] = -INFINITY;
  row_taps(w, 1, xr, even, odd, acc);
}

static void pool_task(void *arg, size_t task, int tid) {
  const kctx_t *k = arg;
  const pool_params_t *p = k->n->params;
  const conv_params_t *w = &p->w;
  const float *x = (const float *)k->in[0] + (int64_t)task * w->H * w->W;
  float *y = (float *)k->out[0] + (int64_t)task * w->OH * w->OW;
  if (lpq__maxpool_window(k->n)) /* rows shared by output rows */
    max_plane_rows(p, x, y, thread_scratch(k, tid));
  else
    pool_plane_fast(p, x, y, thread_scratch(k, tid));
}

static int pool_run(const kctx_t *k) {
  const pool_params_t *p = k->n->params;
  const conv_params_t *w = &p->w;
  if (w->d[0] == 1 && w->d[1] == 1) {
    lpq__threads_run(k->pool, (size_t)(w->N * w->C), pool_task, (void *)k);
    return 0;
  }
  const float *x = k->in[0];
  float *y = k->out[0];
  const int64_t H = w->H, W = w->W;
  for (int64_t nc = 0; nc < w->N * w->C; nc++) {
    const float *xc = x + nc * H * W;
    float *yc = y + nc * w->OH * w->OW;
    for (int64_t oy = 0; oy < w->OH; oy++)
      for (int64_t ox = 0; ox < w->OW; ox++) {
        const int64_t y0 = oy * w->s[0] - w->p[0], x0 = ox * w->s[1] - w->p[1];
        float mx = -INFINITY;
        double sum = 0.0;
        int64_t cnt = 0, cnt_pad = 0;
        for (int ky = 0; ky < w->k[0]; ky++) {
          const int64_t iy = y0 + (int64_t)ky * w->d[0];
          const int in_pad_y = iy >= -w->p[0] && iy < H + w->p[2];
          for (int kx = 0; kx < w->k[1]; kx++) {
            const int64_t ix = x0 + (int64_t)kx * w->d[1];
            if (in_pad_y && ix >= -w->p[1] && ix < W + w->p[3])
              cnt_pad++;
            if (iy < 0 || iy >= H || ix < 0 || ix >= W)
              continue;
            const float v = xc[iy * W + ix];
            mx = v > mx || isnan(v) ? v : mx;
            sum += v;
            cnt++;
          }
        }
        if (p->is_max)
          yc[oy * w->OW + ox] = mx;
        else {
          int64_t div = p->count_include_pad ? cnt_pad : cnt;
          yc[oy * w->OW + ox] = div ? (float)(sum / (double)div) : 0.0f;
        }
      }
  }
  return 0;
}

static int gpool_prepare(lpq_graph_t *g, gnode_t *n, lpq_error_t *err) {
  int rc;
  if ((rc = lpq__check_arity(n, 1, 1, 1, 1, err)) || (rc = lpq__need_dtype(g, n, 0, DT(LPQ_DT_F32), err)))
    return rc;
  const gval_t *x = gv(g, n->in[0]);
  if (x->ndim < 3)
    return lpq__node_err(err, LPQ_EFORMAT, n, "input must have rank >= 3");
  int64_t shape[LPQ_MAX_DIMS];
  for (int i = 0; i < x->ndim; i++)
    shape[i] = i < 2 ? x->shape[i] : 1;
  return lpq__set_output(g, n, 0, LPQ_DT_F32, x->ndim, shape, err);
}

typedef struct gpool_job_t {
  const float *in;
  float *out;
  size_t S, rows, per; /* floats per row (channel), rows, rows a task */
  int is_max;
} gpool_job_t;

static void gpool_task(void *arg, size_t task, int tid) {
  (void)tid;
  const gpool_job_t *j = arg;
  const size_t S = j->S, r1 = (task + 1) * j->per < j->rows ? (task + 1) * j->per : j->rows;
  for (size_t r = task * j->per; r < r1; r++) {
    const float *xr = j->in + r * S;
    if (j->is_max) {
      float mx = -INFINITY;
      for (size_t i = 0; i < S; i++)
        mx = xr[i] > mx ? xr[i] : mx;
      j->out[r] = mx;
    } else {
      float s = 0.0f; /* float accumulation in 8 lanes keeps the loop vectorisable */
      float acc[8] = {0};
      size_t i = 0;
      for (; i + 8 <= S; i += 8)
        for (int l = 0; l < 8; l++)
          acc[l] += xr[i + l];
      for (; i < S; i++)
        s += xr[i];
      for (int l = 0; l < 8; l++)
        s += acc[l];
      j->out[r] = S ? s / (float)S : 0.0f;
    }
  }
}

/* Rows split over the threads in tasks of about 64 Ki floats. */
static int gpool_run(const kctx_t *k) {
  const gval_t *x = gv(k->g, k->n->in[0]), *y = gv(k->g, k->n->out[0]);
  gpool_job_t j = {k->in[0], k->out[0], y->count ? x->count / y->count : 0, y->count, 1,
                   strcmp(k->n->op_type, "GlobalMaxPool") == 0};
  j.per = j.S >= 65536 ? 1 : 65536 / (j.S ? j.S : 1);
  lpq__threads_run(k->pool, (j.rows + j.per - 1) / j.per, gpool_task, &j);
  return 0;
}

static const char *const maxpool_attrs[] = {"auto_pad", "ceil_mode", "dilations", "kernel_shape",
                                            "pads", "storage_order", "strides", NULL};
static const char *const avgpool_attrs[] = {"auto_pad", "ceil_mode", "count_include_pad",
                                            "dilations", "kernel_shape", "pads", "strides", NULL};
static const char *const no_attrs[] = {NULL};

const op_def_t lpq__ops_pool_table[] = {
    {"MaxPool", maxpool_attrs, pool_prepare, pool_run},
    {"AveragePool", avgpool_attrs, pool_prepare, pool_run},
    {"GlobalAveragePool", no_attrs, gpool_prepare, gpool_run},
    {"GlobalMaxPool", no_attrs, gpool_prepare, gpool_run},
    {NULL, NULL, NULL, NULL},
};
