/* common/ops_conv.c: Conv (1-D and 2-D, groups, pads and auto_pad, strides, dilations).
** Dense groups run as im2col + sgemm (a 1x1 stride-1 unpadded conv is a plain sgemm on the
** input); depthwise convolution has a direct kernel. Bias and a fused Relu/Clip are applied
** while the output is still in cache. */
#include "common/graph_internal.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int64_t conv_chunk(int64_t K, int64_t Mg, int64_t N);
static size_t dw3_scratch(const conv_params_t *p);
static int dw3_applies(const conv_params_t *p);

/* Output size and pads of one spatial axis; LPQ_EFORMAT when the output would be empty. */
int conv_out_dim(const gnode_t *n, const char *auto_pad, int64_t in, int k, int s, int d,
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
    return node_err(err, LPQ_EUNSUP, n, "auto_pad '%s' is not supported", auto_pad);
  }
  if (*out <= 0)
    return node_err(err, LPQ_EFORMAT, n, "the output would be empty (input %lld, kernel %d, "
                    "stride %d, dilation %d)", (long long)in, k, s, d);
  return 0;
}

/* Reads kernel_shape/strides/dilations/pads/auto_pad for `spatial` axes (1 or 2) into the
** 2-D form (a 1-D op gets kernel, stride, dilation 1 and no pads on the first axis). */
int read_window(const gnode_t *n, int spatial, const int64_t *wk, int with_dil,
                int k[2], int s[2], int d[2], int p[4], char *auto_pad, size_t ap_len,
                lpq_error_t *err) {
  int64_t ks[4], ss[4], ds[4], ps[8];
  size_t nk, ns, nd, np;
  int rc;
  if ((rc = attr_ints(n, "kernel_shape", ks, 4, &nk, err)) || (rc = attr_ints(n, "strides", ss, 4, &ns, err)) ||
      (rc = attr_ints(n, "pads", ps, 8, &np, err)) ||
      (rc = attr_string(n, "auto_pad", "NOTSET", auto_pad, ap_len, err)))
    return rc;
  nd = 0;
  if (with_dil && (rc = attr_ints(n, "dilations", ds, 4, &nd, err)))
    return rc;
  if (nk == 0 && wk) {
    for (int i = 0; i < spatial; i++)
      ks[i] = wk[i];
    nk = (size_t)spatial;
  }
  if (nk != (size_t)spatial || (ns && ns != (size_t)spatial) || (nd && nd != (size_t)spatial) ||
      (np && np != 2 * (size_t)spatial))
    return node_err(err, LPQ_EFORMAT, n, "kernel_shape/strides/dilations/pads do not match %d "
                    "spatial dimensions", spatial);
  const int off = 2 - spatial;
  k[0] = s[0] = d[0] = 1;
  p[0] = p[2] = 0;
  for (int i = 0; i < spatial; i++) {
    int64_t kv = ks[i], sv = ns ? ss[i] : 1, dv = nd ? ds[i] : 1;
    int64_t pb = np ? ps[i] : 0, pe = np ? ps[i + spatial] : 0;
    if (kv < 1 || kv > 4096 || sv < 1 || sv > 4096 || dv < 1 || dv > 4096 || pb < 0 || pe < 0 ||
        pb > 65536 || pe > 65536)
      return node_err(err, LPQ_ERANGE, n, "kernel %lld, stride %lld, dilation %lld or pads "
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
  if ((rc = check_arity(n, 2, 3, 1, 1, err)) || (rc = need_dtype(g, n, 0, DT(LPQ_DT_F32), err)) ||
      (rc = need_dtype(g, n, 1, DT(LPQ_DT_F32), err)))
    return rc;
  const gval_t *x = gv(g, n->in[0]), *w = gv(g, n->in[1]);
  int spatial = x->ndim - 2;
  if (spatial < 1 || spatial > 2)
    return node_err(err, LPQ_EUNSUP, n, "only 1-D and 2-D convolution is supported (input has "
                    "rank %d)", x->ndim);
  if (w->ndim != x->ndim)
    return node_err(err, LPQ_EFORMAT, n, "weight rank %d does not match input rank %d", w->ndim,
                    x->ndim);
  conv_params_t *p = calloc(1, sizeof *p);
  if (!p)
    return node_err(err, LPQ_ENOMEM, n, "out of memory");
  n->params = p;
  int64_t group;
  char ap[32];
  if ((rc = attr_int(n, "group", 1, &group, err)) ||
      (rc = read_window(n, spatial, w->shape + 2, 1, p->k, p->s, p->d, p->p, ap, sizeof ap, err)))
    return rc;
  p->spatial = spatial;
  p->N = x->shape[0], p->C = x->shape[1], p->M = w->shape[0];
  p->H = spatial == 2 ? x->shape[2] : 1;
  p->W = x->shape[spatial + 1];
  if (group < 1 || p->C % group != 0 || p->M % group != 0 || w->shape[1] * group != p->C)
    return node_err(err, LPQ_EFORMAT, n, "group %lld does not fit %lld input channels, weight "
                    "[%lld, %lld, ...]", (long long)group, (long long)p->C, (long long)w->shape[0],
                    (long long)w->shape[1]);
  p->groups = (int)group;
  for (int i = 2 - spatial; i < 2; i++)
    if (w->shape[i + spatial] != p->k[i])
      return node_err(err, LPQ_EFORMAT, n, "kernel_shape does not match the weight's shape");
  if ((rc = conv_out_dim(n, ap, p->H, p->k[0], p->s[0], p->d[0], &p->p[0], &p->p[2], 0, &p->OH,
                         err)) ||
      (rc = conv_out_dim(n, ap, p->W, p->k[1], p->s[1], p->d[1], &p->p[1], &p->p[3], 0, &p->OW,
                         err)))
    return rc;
  if (n->nin > 2 && n->in[2] >= 0) {
    const gval_t *b = gv(g, n->in[2]);
    if (b->dtype != LPQ_DT_F32 || b->count != (size_t)p->M)
      return node_err(err, LPQ_EFORMAT, n, "bias must be %lld floats", (long long)p->M);
  }
  const int64_t Cg = p->C / group, Mg = p->M / group;
  const int pointwise = p->k[0] == 1 && p->k[1] == 1 && p->s[0] == 1 && p->s[1] == 1 &&
                        !p->p[0] && !p->p[1] && !p->p[2] && !p->p[3];
  const int depthwise = Cg == 1 && Mg == 1;
  if (!pointwise && !depthwise) {
    const int64_t Kd = Cg * p->k[0] * p->k[1];
    double cols = (double)Kd * (double)conv_chunk(Kd, Mg, p->OH * p->OW);
    if (cols * 4 > (double)GRAPH_MAX_TENSOR_BYTES)
      return node_err(err, LPQ_ERANGE, n, "im2col buffer too large");
    n->scratch_floats = (size_t)cols;
  } else if (depthwise) {
    /* de-interleaved input row, or the padded plane of the 3x3 kernel */
    n->scratch_floats = dw3_applies(p) ? dw3_scratch(p) : (size_t)p->W + 4;
  }
  int64_t shape[4] = {p->N, p->M, p->OH, p->OW};
  if (spatial == 1)
    shape[2] = p->OW;
  return set_output(g, n, 0, LPQ_DT_F32, x->ndim, shape, err);
}

/* Output columns [n0, n1) of the im2col matrix, stored with row length n1 - n0:
** col[(c*kh + ky)*kw + kx][j] = x[c][oy*s - pad + ky*d][ox*s - pad + kx*d] (0 outside),
** where (oy, ox) is output position n0 + j. */
static void im2col_range(const conv_params_t *p, int64_t Cg, const float *x, int64_t n0,
                         int64_t n1, float *col) {
  const int64_t H = p->H, W = p->W, OW = p->OW, ld = n1 - n0;
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

/* Columns per GEMM chunk: the im2col slice and the output slice stay in L2 together, so the
** bias and activation pass touches cached data. */
static int64_t conv_chunk(int64_t K, int64_t Mg, int64_t N) {
  const int64_t budget = 160 * 1024; /* floats */
  int64_t nc = budget / (K + Mg);
  nc = nc / 16 * 16;
  if (nc < 64)
    nc = 64;
  return nc < N ? nc : N;
}

/* 3x3 depthwise, undilated, stride 1 or 2: the channel plane is copied once into a zero-padded
** plane (stride 2: split into even and odd columns), then each output row is one fused pass of
** nine taps, bias and activation. scratch: see dw3_scratch. */
static size_t dw3_scratch(const conv_params_t *p) {
  const size_t hp = (size_t)(p->H + p->p[0] + p->p[2]), wp = (size_t)(p->W + p->p[1] + p->p[3]);
  return hp * (wp + 2) + 16;
}

static int dw3_applies(const conv_params_t *p) {
  return p->k[0] == 3 && p->k[1] == 3 && p->d[0] == 1 && p->d[1] == 1 && p->s[0] == p->s[1] &&
         (p->s[0] == 1 || p->s[0] == 2);
}

static void depthwise3(const conv_params_t *p, const float *x, const float *w, float bias,
                       float lo, float hi, float *y, float *pad) {
  const int64_t H = p->H, W = p->W, OH = p->OH, OW = p->OW, s = p->s[0];
  const int64_t hp = H + p->p[0] + p->p[2], wp = W + p->p[1] + p->p[3];
  const int64_t we = (wp + 1) / 2, ld = s == 1 ? wp : we + wp / 2; /* padded row length */
  memset(pad, 0, (size_t)(hp * ld) * sizeof *pad);
  for (int64_t iy = 0; iy < H; iy++) {
    float *row = pad + (iy + p->p[0]) * ld;
    if (s == 1) {
      memcpy(row + p->p[1], x + iy * W, (size_t)W * sizeof *row);
    } else {
      for (int64_t ix = 0; ix < W; ix++) { /* padded column c = ix + pl: even c -> c/2 */
        const int64_t c = ix + p->p[1];
        row[(c % 2) * we + c / 2] = x[iy * W + ix];
      }
    }
  }
  for (int64_t oy = 0; oy < OH; oy++) {
    const float *r[3];
    for (int ky = 0; ky < 3; ky++)
      r[ky] = pad + (oy * s + ky) * ld;
    const float *taps[9];
    for (int ky = 0; ky < 3; ky++) {
      if (s == 1) {
        taps[ky * 3 + 0] = r[ky], taps[ky * 3 + 1] = r[ky] + 1, taps[ky * 3 + 2] = r[ky] + 2;
      } else { /* padded column 2*ox + kx */
        taps[ky * 3 + 0] = r[ky], taps[ky * 3 + 1] = r[ky] + we, taps[ky * 3 + 2] = r[ky] + 1;
      }
    }
    kern_dw9(y + oy * OW, taps, w, bias, lo, hi, (size_t)OW);
  }
}

/* One depthwise channel: y = bias + sum over the window, as one vectorised y += w * x pass
** over each output row per kernel tap. Stride 2 reads de-interleaved rows (tmp, W + 2 floats)
** so every pass is contiguous. */
static void depthwise_channel(const conv_params_t *p, const float *x, const float *w, float bias,
                              float *y, float *tmp) {
  const int64_t H = p->H, W = p->W, OH = p->OH, OW = p->OW;
  const int sx = p->s[1];
  float *even = tmp, *odd = tmp + (W + 1) / 2;
  for (int64_t oy = 0; oy < OH; oy++) {
    float *yr = y + oy * OW;
    for (int64_t ox = 0; ox < OW; ox++)
      yr[ox] = bias;
    for (int ky = 0; ky < p->k[0]; ky++) {
      const int64_t iy = oy * p->s[0] - p->p[0] + (int64_t)ky * p->d[0];
      if (iy < 0 || iy >= H)
        continue;
      const float *xr = x + iy * W;
      if (sx == 2)
        kern_deinterleave(even, odd, xr, (size_t)W);
      for (int kx = 0; kx < p->k[1]; kx++) {
        const float wv = w[ky * p->k[1] + kx];
        const int64_t off = (int64_t)kx * p->d[1] - p->p[1];
        int64_t lo = off >= 0 ? 0 : (-off + sx - 1) / sx;
        int64_t hi = W - off <= 0 ? 0 : (W - off - 1) / sx + 1;
        if (hi > OW)
          hi = OW;
        if (hi <= lo)
          continue;
        if (sx == 1) {
          kern_axpy(yr + lo, xr + off + lo, wv, (size_t)(hi - lo));
        } else if (sx == 2) { /* x[2*ox + off] */
          const float *src = off % 2 == 0 ? even + (lo + off / 2) : odd + (lo + (off - 1) / 2);
          kern_axpy(yr + lo, src, wv, (size_t)(hi - lo));
        } else {
          for (int64_t ox = lo; ox < hi; ox++)
            yr[ox] += wv * xr[ox * sx + off];
        }
      }
    }
  }
}

static int conv_run(const kctx_t *k) {
  const conv_params_t *p = k->n->params;
  const float *x = k->in[0], *w = k->weight, *b = k->bias;
  float *y = k->out[0];
  const int64_t G = p->groups, Cg = p->C / G, Mg = p->M / G;
  const int64_t HW = p->H * p->W, OHW = p->OH * p->OW, Kd = Cg * p->k[0] * p->k[1];
  const int pointwise = p->k[0] == 1 && p->k[1] == 1 && p->s[0] == 1 && p->s[1] == 1 &&
                        !p->p[0] && !p->p[1] && !p->p[2] && !p->p[3];
  const float lo = k->n->act ? k->n->act_lo : -INFINITY, hi = k->n->act ? k->n->act_hi : INFINITY;
  const int64_t nc = conv_chunk(pointwise ? 0 : Kd, Mg, OHW);
  for (int64_t n = 0; n < p->N; n++) {
    const float *xn = x + n * p->C * HW;
    float *yn = y + n * p->M * OHW;
    if (Cg == 1 && Mg == 1) {
      const int fast = dw3_applies(p);
      for (int64_t c = 0; c < p->C; c++) {
        const float *wc = w + c * p->k[0] * p->k[1];
        const float bc = b ? b[c] : 0.0f;
        if (fast) {
          depthwise3(p, xn + c * HW, wc, bc, lo, hi, yn + c * OHW, k->scratch);
        } else {
          depthwise_channel(p, xn + c * HW, wc, bc, yn + c * OHW, k->scratch);
          kern_bias_clamp(yn + c * OHW, 0.0f, lo, hi, (size_t)OHW);
        }
      }
      continue;
    }
    for (int64_t gi = 0; gi < G; gi++) {
      const float *xg = xn + gi * Cg * HW;
      float *yg = yn + gi * Mg * OHW;
      for (int64_t n0 = 0; n0 < OHW; n0 += nc) {
        const int64_t n1 = n0 + nc < OHW ? n0 + nc : OHW, cols = n1 - n0;
        const float *col = xg + n0;
        int64_t ldb = OHW;
        if (!pointwise) {
          im2col_range(p, Cg, xg, n0, n1, k->scratch);
          col = k->scratch, ldb = cols;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)Mg, (int)cols, (int)Kd, 1.0f,
                    w + gi * Mg * Kd, (int)Kd, col, (int)ldb, 0.0f, yg + n0, (int)OHW);
        if (b || k->n->act != ACT_NONE)
          for (int64_t m = 0; m < Mg; m++)
            kern_bias_clamp(yg + m * OHW + n0, b ? b[gi * Mg + m] : 0.0f, lo, hi, (size_t)cols);
      }
    }
  }
  return 0;
}

const op_def_t ops_conv_table[] = {
    {"Conv", conv_attrs, conv_prepare, conv_run},
    {NULL, NULL, NULL, NULL},
};
