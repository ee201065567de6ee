/* engine/ops_conv.c: Conv (1-D and 2-D, groups, pads and auto_pad, strides, dilations).
** Depthwise kernels are in ops_depthwise.c, the implicit-GEMM packers in ops_conv_pack.c,
** Winograd (dense 3x3 stride 1) in ops_conv_wino.c. Other dense groups run as an implicit GEMM
** (B panels packed straight from the input) or im2col + sgemm (a 1x1 stride-1 unpadded conv is
** a plain sgemm on the input); bias, a residual Add and a fused Relu/Clip are applied by the
** GEMM kernel as it stores each tile. Tasks: column chunks, and blocks of output channels when
** the chunks are too few for the threads. */
#include "engine/engine_internal.h"

/* -O2's "very cheap" vectoriser skips loops whose trip count is unknown; these need it. */
#if defined(__GNUC__) && !defined(__clang__) /* clang vectorises at -O2 and has no such pragma */
#pragma GCC optimize("tree-vectorize", "vect-cost-model=dynamic")
#endif

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static size_t conv_gemm_scratch(const conv_params_t *p, size_t *a_off, size_t *col_off,
                                size_t *tmp_off, size_t *pack_off);

/* A conv node's params: the model's conv, and the conv that runs. A window's outer rows or
** columns whose taps read only padding for every output (DeepLabV3's ASPP: 3x3 convs with
** dilation 12-36 on maps of a few pixels, where only the centre tap ever reads the input; a
** 3x3 conv on a 1x1 map) are dropped from the run: it computes the same sums without the zero
** terms, on a smaller window with smaller pads. The layer (weights, shape, kernel, MACs) stays
** the model's; the cropped weights are made at load (after n->wpack's packing of them) and, when
** a hook swaps the weights, per run into thread 0's scratch after the run's own. */
typedef struct conv_node_t {
  conv_params_t p;    /* first: n->params is a conv_params_t * to every other reader */
  conv_params_t run;  /* p without the dead taps (p itself when run.cropped is 0) */
  int y0, x0;         /* the kept window's first row and column in p's */
  size_t run_scratch; /* scratch the run needs; the cropped weights follow it */
  size_t packed;      /* floats of n->wpack before the cropped weights (0: not packed) */
} conv_node_t;

/* The taps [t0, t1) of an axis that read the input for some output, 0 if none does. */
static int live_taps(int64_t in, int64_t out, int k, int s, int d, int pad, int *t0, int *t1) {
  *t0 = k, *t1 = 0;
  for (int t = 0; t < k; t++) {
    const int64_t first = (int64_t)t * d - pad, last = first + (out - 1) * s;
    if (last >= 0 && first < in) {
      *t0 = t < *t0 ? t : *t0;
      *t1 = t + 1;
    }
  }
  return *t1 > *t0;
}

/* c->run: c->p's window cropped to its live taps, when that drops some and keeps the pads >= 0. */
static void crop_window(conv_node_t *c) {
  const conv_params_t *p = &c->p;
  c->run = *p;
  int y0, y1, x0, x1;
  /* depthwise convs keep their window: their dead taps cost little, and the fused MobileNet
  ** blocks (ops_dwfuse.c) take only 3x3 ones, 1-pixel-wide maps too */
  if (p->spatial != 2 || (p->C == p->groups && p->M == p->groups) ||
      !live_taps(p->H, p->OH, p->k[0], p->s[0], p->d[0], p->p[0], &y0, &y1) ||
      !live_taps(p->W, p->OW, p->k[1], p->s[1], p->d[1], p->p[1], &x0, &x1) ||
      (y1 - y0 == p->k[0] && x1 - x0 == p->k[1]))
    return;
  conv_params_t r = *p;
  r.k[0] = y1 - y0, r.k[1] = x1 - x0;
  r.p[0] = p->p[0] - y0 * p->d[0], r.p[2] = p->p[2] - (p->k[0] - y1) * p->d[0];
  r.p[1] = p->p[1] - x0 * p->d[1], r.p[3] = p->p[3] - (p->k[1] - x1) * p->d[1];
  for (int i = 0; i < 2; i++)
    r.d[i] = r.k[i] == 1 ? 1 : r.d[i];
  if (r.p[0] < 0 || r.p[1] < 0 || r.p[2] < 0 || r.p[3] < 0)
    return;
  r.cropped = c->p.cropped = 1; /* p's flag: for readers of n->params (ops_dwfuse.c) */
  c->run = r, c->y0 = y0, c->x0 = x0;
}

/* Floats of the cropped weights. */
static size_t crop_floats(const conv_node_t *c) {
  return (size_t)(c->p.M * (c->p.C / c->p.groups)) * (size_t)(c->run.k[0] * c->run.k[1]);
}

/* out: the kept taps of the model's weights w, [M][C/groups][run.k[0]][run.k[1]]. */
static void crop_weights(const conv_node_t *c, const float *w, float *out) {
  const int64_t rows = c->p.M * (c->p.C / c->p.groups), K0 = c->p.k[0], K1 = c->p.k[1];
  const int64_t k0 = c->run.k[0], k1 = c->run.k[1];
  for (int64_t r = 0; r < rows; r++)
    for (int64_t ky = 0; ky < k0; ky++)
      memcpy(out + (r * k0 + ky) * k1, w + (r * K0 + c->y0 + ky) * K1 + c->x0,
             (size_t)k1 * sizeof *out);
}

/* Output size and pads of one spatial axis; LPQ_EFORMAT when the output would be empty. */
int lpq__conv_out_dim(const gnode_t *n, const char *auto_pad, int64_t in, int k, int s, int d,
                 int *pb, int *pe, int ceil_mode, int64_t *out, lpq_error_t *err) {
  const int64_t ek = (int64_t)(k - 1) * d + 1;
  if (strcmp(auto_pad, "SAME_UPPER") == 0 || strcmp(auto_pad, "SAME_LOWER") == 0) {
    int64_t o = (in + s - 1) / s;
    int64_t total = (o - 1) * s + ek - in;
    if (total < 0)
      total = 0;
    int64_t half = total / 2;
    *pb = (int)(strcmp(auto_pad, "SAME_UPPER") == 0 ? half : total - half);
    *pe = (int)(total - *pb);
    *out = o;
  } else if (strcmp(auto_pad, "VALID") == 0) {
    *pb = *pe = 0;
    *out = in >= ek ? (in - ek) / s + 1 : 0;
  } else if (strcmp(auto_pad, "NOTSET") == 0) {
    int64_t span = in + *pb + *pe - ek;
    *out = span < 0 ? 0 : (ceil_mode ? (span + s - 1) / s : span / s) + 1;
    /* ceil mode: the last window must start inside the input or the begin padding */
    if (ceil_mode && span >= 0 && (*out - 1) * s >= in + *pb)
      (*out)--;
  } else {
    return lpq__node_err(err, LPQ_EUNSUP, n, "auto_pad '%s' is not supported", auto_pad);
  }
  if (*out <= 0)
    return lpq__node_err(err, LPQ_EFORMAT, n, "the output would be empty (input %lld, kernel %d, "
                    "stride %d, dilation %d)", (long long)in, k, s, d);
  return 0;
}

/* Reads kernel_shape/strides/dilations/pads/auto_pad for `spatial` axes (1 or 2) into the
** 2-D form (a 1-D op gets kernel, stride, dilation 1 and no pads on the first axis). */
int lpq__read_window(const gnode_t *n, int spatial, const int64_t *wk, int with_dil,
                int k[2], int s[2], int d[2], int p[4], char *auto_pad, size_t ap_len,
                lpq_error_t *err) {
  int64_t ks[4], ss[4], ds[4], ps[8];
  size_t nk, ns, nd, np;
  int rc;
  if ((rc = lpq__attr_ints(n, "kernel_shape", ks, 4, &nk, err)) || (rc = lpq__attr_ints(n, "strides", ss, 4, &ns, err)) ||
      (rc = lpq__attr_ints(n, "pads", ps, 8, &np, err)) ||
      (rc = lpq__attr_string(n, "auto_pad", "NOTSET", auto_pad, ap_len, err)))
    return rc;
  nd = 0;
  if (with_dil && (rc = lpq__attr_ints(n, "dilations", ds, 4, &nd, err)))
    return rc;
  if (nk == 0 && wk) {
    for (int i = 0; i < spatial; i++)
      ks[i] = wk[i];
    nk = (size_t)spatial;
  }
  if (nk != (size_t)spatial || (ns && ns != (size_t)spatial) || (nd && nd != (size_t)spatial) ||
      (np && np != 2 * (size_t)spatial))
    return lpq__node_err(err, LPQ_EFORMAT, n, "kernel_shape/strides/dilations/pads do not match %d "
                    "spatial dimensions", spatial);
  const int off = 2 - spatial;
  k[0] = s[0] = d[0] = 1;
  p[0] = p[2] = 0;
  for (int i = 0; i < spatial; i++) {
    int64_t kv = ks[i], sv = ns ? ss[i] : 1, dv = nd ? ds[i] : 1;
    int64_t pb = np ? ps[i] : 0, pe = np ? ps[i + spatial] : 0;
    if (kv < 1 || kv > 4096 || sv < 1 || sv > 4096 || dv < 1 || dv > 4096 || pb < 0 || pe < 0 ||
        pb > 65536 || pe > 65536)
      return lpq__node_err(err, LPQ_ERANGE, n, "kernel %lld, stride %lld, dilation %lld or pads "
                      "%lld,%lld out of range", (long long)kv, (long long)sv, (long long)dv,
                      (long long)pb, (long long)pe);
    k[off + i] = (int)kv, s[off + i] = (int)sv, d[off + i] = (int)dv;
    p[off + i] = (int)pb, p[off + i + 2] = (int)pe;
  }
  return 0;
}

static const char *const conv_attrs[] = {"auto_pad", "dilations", "group", "kernel_shape",
                                         "pads", "strides", NULL};

static int conv_prepare(lpq_graph_t *g, gnode_t *n, lpq_error_t *err) {
  int rc;
  if ((rc = lpq__check_arity(n, 2, 3, 1, 1, err)) || (rc = lpq__need_dtype(g, n, 0, DT(LPQ_DT_F32), err)) ||
      (rc = lpq__need_dtype(g, n, 1, DT(LPQ_DT_F32), err)))
    return rc;
  const gval_t *x = gv(g, n->in[0]), *w = gv(g, n->in[1]);
  int spatial = x->ndim - 2;
  if (spatial < 1 || spatial > 2)
    return lpq__node_err(err, LPQ_EUNSUP, n, "only 1-D and 2-D convolution is supported (input has "
                    "rank %d)", x->ndim);
  if (w->ndim != x->ndim)
    return lpq__node_err(err, LPQ_EFORMAT, n, "weight rank %d does not match input rank %d", w->ndim,
                    x->ndim);
  conv_node_t *cn = calloc(1, sizeof *cn);
  if (!cn)
    return lpq__node_err(err, LPQ_ENOMEM, n, "out of memory");
  conv_params_t *p = &cn->p;
  n->params = cn;
  int64_t group;
  char ap[32];
  if ((rc = lpq__attr_int(n, "group", 1, &group, err)) ||
      (rc = lpq__read_window(n, spatial, w->shape + 2, 1, p->k, p->s, p->d, p->p, ap, sizeof ap, err)))
    return rc;
  p->spatial = spatial;
  p->N = x->shape[0], p->C = x->shape[1], p->M = w->shape[0];
  p->H = spatial == 2 ? x->shape[2] : 1;
  p->W = x->shape[spatial + 1];
  if (group < 1 || p->C % group != 0 || p->M % group != 0 || w->shape[1] * group != p->C)
    return lpq__node_err(err, LPQ_EFORMAT, n, "group %lld does not fit %lld input channels, weight "
                    "[%lld, %lld, ...]", (long long)group, (long long)p->C, (long long)w->shape[0],
                    (long long)w->shape[1]);
  p->groups = (int)group;
  for (int i = 2 - spatial; i < 2; i++)
    if (w->shape[i + spatial] != p->k[i])
      return lpq__node_err(err, LPQ_EFORMAT, n, "kernel_shape does not match the weight's shape");
  if ((rc = lpq__conv_out_dim(n, ap, p->H, p->k[0], p->s[0], p->d[0], &p->p[0], &p->p[2], 0, &p->OH,
                         err)) ||
      (rc = lpq__conv_out_dim(n, ap, p->W, p->k[1], p->s[1], p->d[1], &p->p[1], &p->p[3], 0, &p->OW,
                         err)))
    return rc;
  if (n->nin > 2 && n->in[2] >= 0) {
    const gval_t *b = gv(g, n->in[2]);
    if (b->dtype != LPQ_DT_F32 || b->count != (size_t)p->M)
      return lpq__node_err(err, LPQ_EFORMAT, n, "bias must be %lld floats", (long long)p->M);
  }
  const int64_t Cg = p->C / group, Mg = p->M / group;
  const int depthwise = Cg == 1 && Mg == 1;
  crop_window(cn);
  const conv_params_t *r = &cn->run; /* the scratch is the run's */
  if (depthwise) {
    /* de-interleaved input row, or the padded plane of the 3x3 kernel */
    n->scratch_floats = lpq__depthwise_scratch(r);
  } else {
    size_t a, c, t, pk;
    double need = (double)conv_gemm_scratch(r, &a, &c, &t, &pk);
    if (lpq__wino_applies(r) && (double)lpq__wino_scratch(r) > need)
      need = (double)lpq__wino_scratch(r);
    if (lpq__direct_applies(r) && (double)lpq__direct_scratch(r) > need)
      need = (double)lpq__direct_scratch(r);
    if (need * 4 > (double)GRAPH_MAX_TENSOR_BYTES)
      return lpq__node_err(err, LPQ_ERANGE, n, "convolution scratch too large");
    n->scratch_floats = (size_t)need;
  }
  cn->run_scratch = n->scratch_floats;
  if (r->cropped) /* room for a hooked run's cropped weights */
    n->scratch_floats += crop_floats(cn) + 16;
  int64_t shape[4] = {p->N, p->M, p->OH, p->OW};
  if (spatial == 1)
    shape[2] = p->OW;
  return lpq__set_output(g, n, 0, LPQ_DT_F32, x->ndim, shape, err);
}

/* Output columns [n0, n1) of the im2col matrix, stored with row length ld:
** col[(c*kh + ky)*kw + kx][j] = x[c][oy*s - pad + ky*d][ox*s - pad + kx*d] (0 outside),
** where (oy, ox) is output position n0 + j. */
static void im2col_range(const conv_params_t *p, int64_t Cg, const float *x, int64_t n0,
                         int64_t n1, float *col, int64_t ld) {
  const int64_t H = p->H, W = p->W, OW = p->OW;
  for (int64_t c = 0; c < Cg; c++)
    for (int ky = 0; ky < p->k[0]; ky++)
      for (int kx = 0; kx < p->k[1]; kx++) {
        float *dst = col + ((c * p->k[0] + ky) * p->k[1] + kx) * ld - n0;
        const float *src = x + c * H * W;
        const int64_t xoff = (int64_t)kx * p->d[1] - p->p[1];
        /* ox with 0 <= ox*s + xoff < W */
        int64_t lo = xoff >= 0 ? 0 : (-xoff + p->s[1] - 1) / p->s[1];
        int64_t hi = W - xoff <= 0 ? 0 : (W - xoff - 1) / p->s[1] + 1;
        if (hi > OW)
          hi = OW;
        if (lo > hi)
          lo = hi;
        for (int64_t oy = n0 / OW; oy * OW < n1; oy++) {
          const int64_t row = oy * OW, a = n0 > row ? n0 - row : 0;
          const int64_t b = n1 < row + OW ? n1 - row : OW; /* ox in [a, b) */
          float *d = dst + row;
          const int64_t iy = oy * p->s[0] - p->p[0] + (int64_t)ky * p->d[0];
          if (iy < 0 || iy >= H) {
            memset(d + a, 0, (size_t)(b - a) * sizeof *d);
            continue;
          }
          const float *r = src + iy * W + xoff;
          const int64_t l = lo > a ? lo : a, h = hi < b ? hi : b;
          for (int64_t ox = a; ox < l && ox < b; ox++)
            d[ox] = 0.0f;
          if (l < h) {
            if (p->s[1] == 1)
              memcpy(d + l, r + l, (size_t)(h - l) * sizeof *d);
            else
              for (int64_t ox = l; ox < h; ox++)
                d[ox] = r[ox * p->s[1]];
          }
          for (int64_t ox = h > a ? h : a; ox < b; ox++)
            d[ox] = 0.0f;
        }
      }
}

/* GEMM columns per chunk: the im2col slice and the output slice stay in L2 together, so the
** bias and activation pass touches cached data. A multiple of the kernel's 32-column panel. */
static int64_t conv_chunk(int64_t K, int64_t Mg, int64_t N) {
  const int64_t budget = 192 * 1024; /* floats */
  int64_t nc = budget / (K + Mg) / 32 * 32;
  if (nc < 128)
    nc = 128;
  return nc < N ? nc : N;
}

/* How conv_run walks the output: images per chunk (small maps: several images side by side in
** one GEMM, written to a temporary and scattered) and columns per chunk. */
static void conv_walk(const conv_params_t *p, int64_t *imgs, int64_t *cols) {
  const int64_t Kd = p->C / p->groups * p->k[0] * p->k[1], Mg = p->M / p->groups;
  const int64_t OHW = p->OH * p->OW, target = conv_chunk(Kd, Mg, INT64_MAX);
  *imgs = OHW >= target / 2 ? 1 : (target + OHW - 1) / OHW;
  if (*imgs > p->N)
    *imgs = p->N;
  *cols = *imgs > 1 ? *imgs * OHW : (OHW < target ? OHW : target);
}

/* Scratch of the GEMM path: packed weights, im2col slice, temporary output, B panels. */
static size_t conv_gemm_scratch(const conv_params_t *p, size_t *a_off, size_t *col_off,
                                size_t *tmp_off, size_t *pack_off) {
  const int64_t Kd = p->C / p->groups * p->k[0] * p->k[1], Mg = p->M / p->groups;
  int64_t imgs, cols;
  conv_walk(p, &imgs, &cols);
  size_t at = 0;
  *a_off = at, at += lpq__sgemm_packed_a_floats((size_t)Mg, (size_t)Kd) + 16;
  *col_off = at, at += (size_t)(Kd * cols) + 16;
  *tmp_off = at, at += imgs > 1 ? (size_t)(Mg * cols) + 16 : 0;
  *pack_off = at, at += lpq__sgemm_pack_floats(0);
  return at;
}

/* One conv run split into independent tasks for the context's threads. */
typedef struct conv_job_t {
  const kctx_t *k;
  const conv_params_t *p;
  float lo, hi;
  int pointwise;
  int64_t gi, imgs, cols_max, chunks_per_image;
  int64_t mstep, mblocks; /* output channels split in blocks of mstep (SGEMM_MC multiples) */
  const float *Ap; /* packed weights of group gi, or NULL (OpenBLAS) */
  /* every group in one job (weights packed at load): task = group * group_tasks + its task */
  const float *all_Ap;
  size_t group_tasks, per_group;
  const float *residual; /* fused residual Add: same shape as the output, or NULL */
  size_t col_off, tmp_off, pack_off;
} conv_job_t;

/* Planes [task * cols_max, ...) of a depthwise conv (cols_max: planes per task). */
static void depthwise_task(void *arg, size_t task, int tid) {
  const conv_job_t *j = arg;
  const conv_params_t *p = j->p;
  const kctx_t *k = j->k;
  const int64_t HW = p->H * p->W, OHW = p->OH * p->OW, first = (int64_t)task * j->cols_max;
  const int64_t last = first + j->cols_max < p->N * p->C ? first + j->cols_max : p->N * p->C;
  for (int64_t nc = first; nc < last; nc++) {
    const int64_t c = nc % p->C;
    lpq__depthwise_plane(p, (const float *)k->in[0] + nc * HW, k->weight + c * p->k[0] * p->k[1],
                         k->bias ? k->bias[c] : 0.0f, j->lo, j->hi, (float *)k->out[0] + nc * OHW,
                         thread_scratch(k, tid));
  }
}

/* B for output columns [c0, c0 + cols) of image-major column space (image = column / OHW):
** im2col, or the input itself for an unpadded 1x1 stride-1 conv within one image. */
static const float *conv_columns(const conv_params_t *p, const float *xg, int64_t c0,
                                 int64_t cols, int pointwise, float *col, int64_t *ldb) {
  const int64_t HW = p->H * p->W, OHW = p->OH * p->OW, img_stride = p->C * HW;
  const int64_t Cg = p->C / p->groups;
  if (pointwise && c0 / OHW == (c0 + cols - 1) / OHW) {
    *ldb = OHW;
    return xg + (c0 / OHW) * img_stride + c0 % OHW;
  }
  *ldb = cols;
  for (int64_t done = 0; done < cols;) { /* one image segment at a time */
    const int64_t g = c0 + done, img = g / OHW, pos = g % OHW;
    const int64_t seg = OHW - pos < cols - done ? OHW - pos : cols - done;
    const float *xi = xg + img * img_stride;
    if (pointwise) {
      for (int64_t c = 0; c < Cg; c++)
        memcpy(col + c * cols + done, xi + c * HW + pos, (size_t)seg * sizeof *col);
    } else {
      im2col_range(p, Cg, xi, pos, pos + seg, col + done, cols);
    }
    done += seg;
  }
  return col;
}

/* One chunk of GEMM columns: im2col (or the input), GEMM, bias and activation. */
static void gemm_task(void *arg, size_t task, int tid) {
  const conv_job_t *j = arg;
  const conv_params_t *p = j->p;
  const kctx_t *k = j->k;
  const int64_t gi = j->group_tasks ? (int64_t)(task / j->group_tasks) : j->gi;
  const float *Apg = j->group_tasks ? j->all_Ap + (size_t)gi * j->per_group : j->Ap;
  if (j->group_tasks)
    task %= j->group_tasks;
  const int64_t G = p->groups, Cg = p->C / G, Mg = p->M / G;
  const int64_t HW = p->H * p->W, OHW = p->OH * p->OW, Kd = Cg * p->k[0] * p->k[1];
  const int64_t total = p->N * OHW;
  const int64_t m0 = (int64_t)task % j->mblocks * j->mstep;
  const int64_t mc = Mg - m0 < j->mstep ? Mg - m0 : j->mstep;
  task /= (size_t)j->mblocks;
  int64_t c0, cols;
  if (j->imgs > 1) {
    c0 = (int64_t)task * j->cols_max;
    cols = total - c0 < j->cols_max ? total - c0 : j->cols_max;
  } else {
    const int64_t img = (int64_t)task / j->chunks_per_image;
    const int64_t at = ((int64_t)task % j->chunks_per_image) * j->cols_max;
    c0 = img * OHW + at;
    cols = OHW - at < j->cols_max ? OHW - at : j->cols_max;
  }
  float *scratch = thread_scratch(k, tid);
  const float *wg = k->weight + (gi * Mg + m0) * Kd, *b = k->bias;
  const float *Ap = Apg ? Apg + m0 * Kd : NULL; /* whole SGEMM_MC blocks: still packed A */
  const float *xg = (const float *)k->in[0] + gi * Cg * HW;
  int64_t ldb;
  const int64_t img = c0 / OHW, pos = c0 % OHW;
  const int implicit = j->imgs == 1 && !j->pointwise && Apg && Kd > 0;
  /* several images: B packed straight from the input too */
  const int multi = j->imgs > 1 && Apg && Kd > 0;
  const float *B = implicit || multi
                       ? NULL
                       : conv_columns(p, xg, c0, cols, j->pointwise, scratch + j->col_off, &ldb);
  float *y = k->out[0];
  float *yg = y + img * p->M * OHW + (gi * Mg + m0) * OHW;
  if (j->imgs == 1) { /* bias, residual and activation as the kernel stores the tile */
    const size_t at = (size_t)(img * p->M * OHW + (gi * Mg + m0) * OHW + pos);
    const sgemm_epi_t epi = {b ? b + gi * Mg + m0 : NULL, j->residual ? j->residual + at : NULL,
                             (size_t)OHW, j->lo, j->hi};
    if (implicit) {
      const conv_implicit_t ib = {p, xg + img * p->C * HW, pos, 0};
      lpq__kern_sgemm_implicit((size_t)mc, (size_t)cols, (size_t)Kd, Ap, lpq__conv_pack_b, &ib,
                               yg + pos, (size_t)OHW, scratch + j->pack_off, &epi);
    } else {
      lpq__kern_sgemm((size_t)mc, (size_t)cols, (size_t)Kd, wg, (size_t)Kd, Ap, B, (size_t)ldb,
                      yg + pos, (size_t)OHW, scratch + j->pack_off, &epi);
    }
  } else { /* whole images side by side: GEMM into tmp, scatter with bias and activation */
    float *tmp = scratch + j->tmp_off;
    /* without a residual (laid out as y, not as tmp) the kernel applies bias and clamp */
    const sgemm_epi_t epi = {b ? b + gi * Mg + m0 : NULL, NULL, 0, j->lo, j->hi};
    const sgemm_epi_t *e = j->residual ? NULL : &epi;
    if (multi && j->pointwise) {
      const conv_pointwise_t pw = {xg, c0, OHW, HW, p->C * HW};
      lpq__kern_sgemm_implicit((size_t)mc, (size_t)cols, (size_t)Kd, Ap, lpq__conv_pack_pointwise,
                               &pw, tmp, (size_t)cols, scratch + j->pack_off, e);
    } else if (multi) {
      const conv_implicit_t ib = {p, xg, c0, p->C * HW};
      lpq__kern_sgemm_implicit((size_t)mc, (size_t)cols, (size_t)Kd, Ap, lpq__conv_pack_b, &ib,
                               tmp, (size_t)cols, scratch + j->pack_off, e);
    } else {
      lpq__kern_sgemm((size_t)mc, (size_t)cols, (size_t)Kd, wg, (size_t)Kd, Ap, B, (size_t)ldb,
                      tmp, (size_t)cols, scratch + j->pack_off, e);
    }
    /* the chunk's columns [c0, c0 + cols): a run of positions in each image they cover */
    for (int64_t i = img; i * OHW < c0 + cols; i++) {
      const int64_t s0 = i * OHW > c0 ? i * OHW : c0;
      const int64_t s1 = (i + 1) * OHW < c0 + cols ? (i + 1) * OHW : c0 + cols;
      for (int64_t m = m0; m < m0 + mc; m++) {
        const size_t at = (size_t)(i * p->M * OHW + (gi * Mg + m) * OHW + s0 - i * OHW);
        memcpy(y + at, tmp + (m - m0) * cols + s0 - c0, (size_t)(s1 - s0) * sizeof *y);
        if (e)
          continue;
        if (j->residual)
          lpq__kern_bias_add_clamp(y + at, j->residual + at, b ? b[gi * Mg + m] : 0.0f, j->lo,
                                   j->hi, (size_t)(s1 - s0));
        else
          lpq__kern_bias_clamp(y + at, b ? b[gi * Mg + m] : 0.0f, j->lo, j->hi,
                               (size_t)(s1 - s0));
      }
    }
  }
}

/* 128 Ki multiply-adds: a few microseconds of GEMM, about what a hand-out to a second thread
** costs. 1 Mi (the first choice, on the AVX-512 Xeon) kept convs that take 0.1-0.3 ms serial on
** the AVX2 EPYC (a 7x7 depthwise conv on a 6x6 map runs at 3-4 G multiply-adds/s): at 2 threads,
** batch 1, 128 Ki against 1 Mi was 0.73 (mobilenet_v3_small), 0.93 (mobilenet_v3_large), 0.87
** (mnasnet0_5), 0.95 (convnext_tiny, efficientnet_b0), 1.00-1.02 (regnet_x_400mf, googlenet,
** squeezenet1_1); 64 Ki and 256 Ki alike, 0 (every conv split) no better. */
int64_t lpq__conv_min_parallel_macs = (int64_t)1 << 17;

static int conv_exec(const kctx_t *k, const conv_params_t *p) {
  conv_job_t j = {.k = k, .p = p};
  j.residual = k->n->residual ? (const float *)k->in[3] : NULL;
  j.lo = k->n->act ? k->n->act_lo : -INFINITY;
  j.hi = k->n->act ? k->n->act_hi : INFINITY;
  const int64_t G = p->groups, Cg = p->C / G, Mg = p->M / G;
  /* a conv smaller than this (batch-1 MobileNetV3's many small layers) runs on the caller
  ** alone: a second thread's hand-out and cache traffic cost more than it saves */
  const int64_t macs = p->N * p->M * p->OH * p->OW * Cg * p->k[0] * p->k[1];
  threads_t *pool = macs < lpq__conv_min_parallel_macs ? NULL : k->pool;
  if (Cg == 1 && Mg == 1 && lpq__dwblock_run(k, j.lo, j.hi)) /* small maps (ops_dwblock.c) */
    return 0;
  if (Cg == 1 && Mg == 1) { /* about 16 tasks per thread: planes can be tiny (7x7) */
    const int64_t planes = p->N * p->C, want = 16 * (int64_t)lpq__threads_count(pool);
    j.cols_max = planes > want ? (planes + want - 1) / want : 1;
    lpq__threads_run(pool, (size_t)((planes + j.cols_max - 1) / j.cols_max), depthwise_task, &j);
    return 0;
  }
  if (lpq__wino_applies(p))
    return lpq__wino_run(k, j.lo, j.hi);
  if (lpq__direct_applies(p))
    return lpq__direct_run(k, j.lo, j.hi);
  const int64_t OHW = p->OH * p->OW, Kd = Cg * p->k[0] * p->k[1];
  j.pointwise = p->k[0] == 1 && p->k[1] == 1 && p->s[0] == 1 && p->s[1] == 1 && !p->p[0] &&
                !p->p[1] && !p->p[2] && !p->p[3];
  size_t a_off;
  conv_gemm_scratch(p, &a_off, &j.col_off, &j.tmp_off, &j.pack_off);
  conv_walk(p, &j.imgs, &j.cols_max);
  j.chunks_per_image = (OHW + j.cols_max - 1) / j.cols_max;
  const int64_t threads = lpq__threads_count(pool), mblk = (Mg + SGEMM_MC - 1) / SGEMM_MC;
  /* several images side by side in fewer chunks than two a thread: cut finer (whole 32-column
  ** panels, images split between chunks) before the output channels are split, whose blocks
  ** each pack the chunk's B again and come in SGEMM_MC rows (RegNetX's 1x1 convs at batch 3,
  ** 160 channels: 128 + 32; 0.84x their time at 2 threads) */
  const float *base = k->n->wdata ? k->n->wdata : (const float *)k->in[1];
  const int prepacked = k->n->wpack && k->weight == base; /* packed at load */
  const int64_t jobs = prepacked ? G : 1; /* a grouped conv's groups share one job */
  if (threads > 1 && j.imgs > 1 &&
      jobs * ((p->N * OHW + j.cols_max - 1) / j.cols_max) < 2 * threads) {
    const int64_t c = ((p->N * OHW + 2 * threads - 1) / (2 * threads) + 31) / 32 * 32;
    j.cols_max = c < j.cols_max ? c : j.cols_max;
  }
  const size_t chunks = j.imgs > 1 ? (size_t)((p->N * OHW + j.cols_max - 1) / j.cols_max)
                                   : (size_t)(p->N * j.chunks_per_image);
  /* too few column chunks to keep every thread busy: split the output channels too (each
  ** block packs its own B, so only when needed) */
  int64_t want = threads > 1 && (int64_t)chunks < 4 * threads
                     ? (4 * threads + (int64_t)chunks - 1) / (int64_t)chunks : 1;
  want = want < mblk ? want : mblk;
  j.mstep = (mblk + want - 1) / want * SGEMM_MC;
  j.mblocks = (Mg + j.mstep - 1) / j.mstep;
  const size_t ntasks = chunks * (size_t)j.mblocks;
  /* weights not packed at load (a hook swapped them): packed now */
  float *Ap = lpq__sgemm_packs_a() ? k->scratch + a_off : NULL; /* thread 0's area, read by all */
  const size_t per_group = lpq__sgemm_packed_a_floats((size_t)Mg, (size_t)Kd);
  if (prepacked && G > 1) { /* grouped (ResNeXt, RegNet): every group's tasks in one job, so
                            ** threads never wait at a group's end and there is one hand-out */
    j.all_Ap = k->n->wpack, j.group_tasks = ntasks, j.per_group = per_group;
    lpq__threads_run(pool, (size_t)G * ntasks, gemm_task, &j);
    return 0;
  }
  for (j.gi = 0; j.gi < G; j.gi++) {
    if (prepacked)
      j.Ap = k->n->wpack + (size_t)j.gi * per_group;
    else if (Ap)
      lpq__sgemm_pack_a((size_t)Mg, (size_t)Kd, k->weight + j.gi * Mg * Kd, (size_t)Kd, Ap);
    if (!prepacked)
      j.Ap = Ap;
    lpq__threads_run(pool, ntasks, gemm_task, &j);
  }
  return 0;
}

/* A cropped conv runs as a node with the run's params and the cropped weights: those made at
** load when the weights are the model's (after their packing in n->wpack), else cropped now. */
static int conv_run(const kctx_t *k) {
  const conv_node_t *c = k->n->params;
  if (!c->run.cropped)
    return conv_exec(k, &c->p);
  const gnode_t *n = k->n;
  const float *model = n->wdata ? n->wdata : (const float *)k->in[1];
  gnode_t sh = *n;
  kctx_t kc = *k;
  sh.params = (void *)&c->run, sh.scratch_floats = c->run_scratch;
  sh.wdata = NULL, sh.wpack = NULL;
  if (k->weight == model && n->wpack) {
    sh.wdata = n->wpack + c->packed;
    sh.wpack = c->packed ? n->wpack : NULL;
    kc.weight = sh.wdata;
  } else {
    float *w = k->scratch + c->run_scratch;
    crop_weights(c, k->weight, w);
    kc.weight = w;
  }
  kc.n = &sh;
  return conv_exec(&kc, &c->run);
}

int lpq__conv_prepack(lpq_graph_t *g, gnode_t *n, lpq_error_t *err) {
  conv_node_t *c = n->params;
  const conv_params_t *p = &c->run;
  const int64_t G = p->groups, Cg = p->C / G, Mg = p->M / G, Kd = Cg * p->k[0] * p->k[1];
  const float *w = n->wdata ? n->wdata : (const float *)gv(g, n->in[1])->cdata;
  /* a direct conv (a stem) runs from its own packing, but a fused chain may start with it
  ** (engine/ops_dwfuse.c: its expansion GEMM reads these panels) */
  const int packs = w && lpq__sgemm_packs_a() && !(Cg == 1 && Mg == 1);
  if (!w || (!packs && !p->cropped))
    return 0; /* run-time weights, no AVX-512 kernel or depthwise: nothing to pack */
  const size_t per_group = lpq__sgemm_packed_a_floats((size_t)Mg, (size_t)Kd);
  c->packed = !packs ? 0 : lpq__wino_applies(p) ? lpq__wino_packed_floats(p)
                                                 : per_group * (size_t)G;
  const size_t cropped = p->cropped ? crop_floats(c) : 0;
  if (!(n->wpack = malloc((c->packed + cropped + 16) * sizeof *n->wpack)))
    return lpq__node_err(err, LPQ_ENOMEM, n, "out of memory packing the weights");
  if (p->cropped) { /* the run's weights, after the packing (which is made from them) */
    crop_weights(c, w, n->wpack + c->packed);
    w = n->wpack + c->packed;
  }
  if (!packs)
    return 0;
  if (lpq__wino_applies(p)) { /* the Winograd-transformed matrices instead */
    lpq__wino_pack_weights(p, w, n->wpack);
    return 0;
  }
  for (int64_t gi = 0; gi < G; gi++)
    lpq__sgemm_pack_a((size_t)Mg, (size_t)Kd, w + gi * Mg * Kd, (size_t)Kd,
                 n->wpack + (size_t)gi * per_group);
  return 0;
}

const op_def_t lpq__ops_conv_table[] = {
    {"Conv", conv_attrs, conv_prepare, conv_run},
    {NULL, NULL, NULL, NULL},
};
