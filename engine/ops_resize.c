/* engine/ops_resize.c: Resize (opsets 10-19) and Upsample (7-9): nearest, linear and cubic
** interpolation over any axes, every coordinate_transformation_mode and nearest_mode of the
** spec, exclude_outside, tf_crop_and_resize's extrapolation, the axes and
** keep_aspect_ratio_policy of opset 18. Segmentation heads (torchvision's FCN, DeepLabV3,
** LRASPP) upsample their logits with it.
**
** Every output axis gets a table at load: for each output coordinate, the input indices it
** reads (1 tap nearest, 2 linear, 4 cubic; edge-clamped) and their weights. An output element
** is the sum over the product of its axes' taps, in double; axes that map one to one take a
** single tap. Scales and sizes must be constant (shapes are static in lpq); antialias (opset
** 18) is refused when it would change the result (downsampling). */
#include "engine/engine_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { M_NEAREST, M_LINEAR, M_CUBIC };
enum { C_HALF, C_HALF_SYM, C_PYTORCH, C_ALIGN, C_ASYM, C_TF_NEAREST, C_TF_CROP };
enum { N_PREFER_FLOOR, N_PREFER_CEIL, N_FLOOR, N_CEIL, N_SIMPLE };

typedef struct resize_params_t {
  int nd, ntaps[LPQ_MAX_DIMS];
  int64_t in_shape[LPQ_MAX_DIMS], out_shape[LPQ_MAX_DIMS], in_stride[LPQ_MAX_DIMS];
  size_t tab[LPQ_MAX_DIMS]; /* axis a's first entry in idx / w: out_shape[a] * taps entries */
  int extrapolate;          /* tf_crop_and_resize: idx -1 marks a coordinate outside the input */
  float extrap_value;
  int64_t *idx;
  double *w;
} resize_params_t;

static int find_name(const char *s, const char *const *names, int count) {
  for (int i = 0; i < count; i++)
    if (strcmp(s, names[i]) == 0)
      return i;
  return -1;
}

/* The input coordinate of output coordinate x on one axis (the spec's formulas). */
static double source_coord(int mode, double x, double scale, int64_t in, int64_t out, double r0,
                           double r1) {
  switch (mode) {
  case C_HALF_SYM: {
    const double adj = (double)out / (scale * (double)in), center = (double)in / 2;
    return center * (1 - adj) + (x + 0.5) / scale - 0.5;
  }
  case C_PYTORCH:
    return out > 1 ? (x + 0.5) / scale - 0.5 : 0.0;
  case C_ALIGN:
    return out == 1 ? 0.0 : x * (double)(in - 1) / (double)(out - 1);
  case C_ASYM:
    return x / scale;
  case C_TF_NEAREST:
    return (x + 0.5) / scale;
  case C_TF_CROP:
    return out > 1 ? r0 * (double)(in - 1) + x * (r1 - r0) * (double)(in - 1) / (double)(out - 1)
                   : 0.5 * (r0 + r1) * (double)(in - 1);
  default:
    return (x + 0.5) / scale - 0.5;
  }
}

static int64_t nearest(int mode, double x, int down) {
  const double f = floor(x);
  switch (mode) {
  case N_PREFER_CEIL:
    return (int64_t)(x - f >= 0.5 ? f + 1 : f);
  case N_FLOOR:
    return (int64_t)f;
  case N_CEIL:
    return (int64_t)ceil(x);
  case N_SIMPLE: /* Upsample and Resize-10, as ONNX Runtime */
    return down ? (int64_t)ceil(x) : (int64_t)x;
  default:
    return (int64_t)(x - f > 0.5 ? f + 1 : f);
  }
}

/* Fills axis a's taps: indices clamped to the input, weights of the interpolation. */
static void axis_taps(resize_params_t *p, int a, int mode, int cmode, int nmode, double scale,
                      double cubic_a, int exclude, double r0, double r1) {
  const int64_t in = p->in_shape[a], out = p->out_shape[a];
  const int T = p->ntaps[a];
  int64_t *idx = p->idx + p->tab[a];
  double *w = p->w + p->tab[a];
  for (int64_t o = 0; o < out; o++, idx += T, w += T) {
    const double x = source_coord(cmode, (double)o, scale, in, out, r0, r1);
    if (cmode == C_TF_CROP && (x < 0 || x > (double)(in - 1))) {
      for (int t = 0; t < T; t++)
        idx[t] = -1, w[t] = 0;
      continue;
    }
    if (mode == M_NEAREST) {
      const int64_t i = nearest(nmode, x, scale < 1.0);
      idx[0] = i < 0 ? 0 : i >= in ? in - 1 : i, w[0] = 1;
      continue;
    }
    const double f = floor(x), t = x - f;
    int64_t first;
    if (mode == M_LINEAR) {
      first = (int64_t)f, w[0] = 1 - t, w[1] = t;
    } else {
      const double A = cubic_a, u = t + 1, v = 1 - t, z = 2 - t;
      first = (int64_t)f - 1;
      w[0] = ((A * u - 5 * A) * u + 8 * A) * u - 4 * A;
      w[1] = ((A + 2) * t - (A + 3)) * t * t + 1;
      w[2] = ((A + 2) * v - (A + 3)) * v * v + 1;
      w[3] = ((A * z - 5 * A) * z + 8 * A) * z - 4 * A;
    }
    double sum = 0;
    for (int k = 0; k < T; k++) {
      const int64_t i = first + k;
      if (exclude && (i < 0 || i >= in))
        w[k] = 0;
      sum += w[k];
      idx[k] = i < 0 ? 0 : i >= in ? in - 1 : i;
    }
    if (exclude && sum != 0)
      for (int k = 0; k < T; k++)
        w[k] /= sum;
  }
}

/* Resize inputs: X, roi, scales, sizes (opset 11+); X, scales (10). Upsample: X, scales (9) or
** the scales attribute (7). */
static int resize_prepare(lpq_graph_t *g, gnode_t *n, lpq_error_t *err) {
  const int upsample = strcmp(n->op_type, "Upsample") == 0, old = upsample || g->opset < 11;
  int rc;
  if ((rc = lpq__check_arity(n, 1, upsample || g->opset < 11 ? 2 : 4, 1, 1, err)) ||
      (rc = lpq__need_dtype(g, n, 0, DT(LPQ_DT_F32), err)))
    return rc;
  const gval_t *x = gv(g, n->in[0]);
  const int nd = x->ndim;
  char s_mode[24], s_coord[32], s_near[24], s_keep[16];
  float cubic_a, extrap;
  int64_t exclude, antialias, axes_attr[LPQ_MAX_DIMS];
  size_t naxes = 0;
  if ((rc = lpq__attr_string(n, "mode", "nearest", s_mode, sizeof s_mode, err)) ||
      (rc = lpq__attr_string(n, "coordinate_transformation_mode", "half_pixel", s_coord,
                             sizeof s_coord, err)) ||
      (rc = lpq__attr_string(n, "nearest_mode", "round_prefer_floor", s_near, sizeof s_near, err)) ||
      (rc = lpq__attr_string(n, "keep_aspect_ratio_policy", "stretch", s_keep, sizeof s_keep, err)) ||
      (rc = lpq__attr_float(n, "cubic_coeff_a", -0.75f, &cubic_a, err)) ||
      (rc = lpq__attr_float(n, "extrapolation_value", 0.0f, &extrap, err)) ||
      (rc = lpq__attr_int(n, "exclude_outside", 0, &exclude, err)) ||
      (rc = lpq__attr_int(n, "antialias", 0, &antialias, err)) ||
      (rc = lpq__attr_ints(n, "axes", axes_attr, LPQ_MAX_DIMS, &naxes, err)))
    return rc;
  static const char *const modes[] = {"nearest", "linear", "cubic"};
  static const char *const coords[] = {"half_pixel", "half_pixel_symmetric", "pytorch_half_pixel",
                                       "align_corners", "asymmetric", "tf_half_pixel_for_nearest",
                                       "tf_crop_and_resize"};
  static const char *const nears[] = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"};
  static const char *const keeps[] = {"stretch", "not_larger", "not_smaller"};
  const int mode = find_name(s_mode, modes, 3), keep = find_name(s_keep, keeps, 3);
  int cmode = strcmp(s_coord, "tf_half_pixel_for_nn") == 0 /* opset 11's first name for it */
                  ? C_TF_NEAREST
                  : find_name(s_coord, coords, 7);
  int nmode = find_name(s_near, nears, 4);
  if (old && strcmp(s_mode, "bilinear") == 0) /* Upsample-7's name for linear */
    return lpq__node_err(err, LPQ_EUNSUP, n, "mode 'bilinear' of Upsample-7 is not supported");
  if (mode < 0 || (mode == M_CUBIC && old))
    return lpq__node_err(err, LPQ_EFORMAT, n, "mode '%s' is not one of nearest, linear%s", s_mode,
                         old ? "" : ", cubic");
  if (cmode < 0)
    return lpq__node_err(err, LPQ_EFORMAT, n, "coordinate_transformation_mode '%s' is unknown",
                         s_coord);
  if (nmode < 0)
    return lpq__node_err(err, LPQ_EFORMAT, n, "nearest_mode '%s' is unknown", s_near);
  if (keep < 0)
    return lpq__node_err(err, LPQ_EFORMAT, n, "keep_aspect_ratio_policy '%s' is unknown", s_keep);
  if (old) /* before opset 11: asymmetric coordinates, ONNX Runtime's rounding */
    cmode = C_ASYM, nmode = N_SIMPLE;
  /* the axes scales and sizes speak of (opset 18), in order */
  int axes[LPQ_MAX_DIMS], na = naxes ? (int)naxes : nd;
  for (int i = 0; i < na; i++) {
    if (naxes && (rc = lpq__norm_axis(n, axes_attr[i], nd, &axes[i], err)))
      return rc;
    if (!naxes)
      axes[i] = i;
    for (int j = 0; j < i; j++)
      if (axes[j] == axes[i])
        return lpq__node_err(err, LPQ_EFORMAT, n, "axis %d is listed twice", axes[i]);
  }
  /* scales (float) or sizes (int64), constant */
  double scale[LPQ_MAX_DIMS], r0[LPQ_MAX_DIMS], r1[LPQ_MAX_DIMS];
  int64_t out[LPQ_MAX_DIMS];
  for (int a = 0; a < nd; a++)
    scale[a] = 1, out[a] = x->shape[a], r0[a] = 0, r1[a] = 1;
  const int si = old ? 1 : 2, zi = 3;
  const gval_t *sv = n->nin > si && n->in[si] >= 0 ? gv(g, n->in[si]) : NULL;
  const gval_t *zv = !old && n->nin > zi && n->in[zi] >= 0 ? gv(g, n->in[zi]) : NULL;
  if (sv && sv->count == 0)
    sv = NULL; /* an empty scales tensor: sizes speak */
  float attr_scales[LPQ_MAX_DIMS];
  size_t nattr = 0;
  if (upsample && !sv && (rc = lpq__attr_floats(n, "scales", attr_scales, LPQ_MAX_DIMS, &nattr, err)))
    return rc;
  if (!!sv + !!zv + !!nattr != 1)
    return lpq__node_err(err, LPQ_EFORMAT, n, "exactly one of scales and sizes must be given");
  if (sv || nattr) {
    if (sv && (sv->dtype != LPQ_DT_F32 || !sv->cdata))
      return lpq__node_err(err, LPQ_EUNSUP, n, "scales must be a constant float tensor");
    const size_t cnt = sv ? sv->count : nattr;
    if (cnt != (size_t)na)
      return lpq__node_err(err, LPQ_EFORMAT, n, "%zu scales for %d axes", cnt, na);
    for (int i = 0; i < na; i++) {
      const double s = sv ? ((const float *)sv->cdata)[i] : attr_scales[i];
      if (!(s > 0) || !isfinite(s))
        return lpq__node_err(err, LPQ_EFORMAT, n, "scale %g of axis %d is not a positive number", s,
                             axes[i]);
      scale[axes[i]] = s;
    }
  } else {
    int64_t sz[LPQ_MAX_DIMS];
    size_t cnt;
    if ((rc = lpq__const_ints(g, n, zi, sz, LPQ_MAX_DIMS, &cnt, err)))
      return rc;
    if (cnt != (size_t)na)
      return lpq__node_err(err, LPQ_EFORMAT, n, "%zu sizes for %d axes", cnt, na);
    double common = keep == 1 ? INFINITY : 0;
    for (int i = 0; i < na; i++) {
      if (sz[i] < 1 || x->shape[axes[i]] < 1)
        return lpq__node_err(err, LPQ_EFORMAT, n, "size %lld of axis %d is not positive",
                             (long long)sz[i], axes[i]);
      const double s = (double)sz[i] / (double)x->shape[axes[i]];
      common = keep == 1 ? fmin(common, s) : fmax(common, s);
      scale[axes[i]] = s, out[axes[i]] = sz[i];
    }
    if (keep != 0) /* one scale for every listed axis, the sizes rounded from it */
      for (int i = 0; i < na; i++)
        scale[axes[i]] = common, out[axes[i]] = (int64_t)llround(common * (double)x->shape[axes[i]]);
  }
  if (cmode == C_TF_CROP) {
    const gval_t *rv = n->nin > 1 && n->in[1] >= 0 ? gv(g, n->in[1]) : NULL;
    if (!rv || rv->dtype != LPQ_DT_F32 || !rv->cdata || rv->count != 2 * (size_t)na)
      return lpq__node_err(err, LPQ_EUNSUP, n,
                           "tf_crop_and_resize needs a constant roi of 2 x %d floats", na);
    for (int i = 0; i < na; i++)
      r0[axes[i]] = ((const float *)rv->cdata)[i], r1[axes[i]] = ((const float *)rv->cdata)[na + i];
  }
  for (int a = 0; a < nd; a++) {
    if (sv || nattr) {
      const double roi = cmode == C_TF_CROP ? r1[a] - r0[a] : 1.0;
      const double o = floor((double)x->shape[a] * roi * scale[a]);
      if (!(o >= 1 && o < 1e12))
        return lpq__node_err(err, LPQ_EFORMAT, n, "axis %d: %lld x %g gives no output", a,
                             (long long)x->shape[a], scale[a]);
      out[a] = (int64_t)o;
    }
    if (antialias && mode != M_NEAREST && scale[a] < 1)
      return lpq__node_err(err, LPQ_EUNSUP, n, "antialias = 1 when downsampling is not supported");
  }
  if ((rc = lpq__set_output(g, n, 0, LPQ_DT_F32, nd, out, err))) /* its size checked first */
    return rc;
  resize_params_t tmp = {.nd = nd, .extrapolate = cmode == C_TF_CROP, .extrap_value = extrap};
  size_t entries = 0;
  for (int a = 0; a < nd; a++) {
    tmp.in_shape[a] = x->shape[a], tmp.out_shape[a] = out[a];
    tmp.ntaps[a] = mode == M_NEAREST ? 1 : mode == M_LINEAR ? 2 : 4;
    tmp.tab[a] = entries;
    entries += (size_t)out[a] * (size_t)tmp.ntaps[a];
  }
  for (int a = nd - 1; a >= 0; a--)
    tmp.in_stride[a] = a == nd - 1 ? 1 : tmp.in_stride[a + 1] * x->shape[a + 1];
  resize_params_t *p = malloc(sizeof *p + entries * (sizeof *p->idx + sizeof *p->w));
  if (!p)
    return lpq__node_err(err, LPQ_ENOMEM, n, "out of memory");
  *p = tmp;
  p->idx = (int64_t *)(p + 1), p->w = (double *)(p->idx + entries);
  n->params = p;
  for (int a = 0; a < nd; a++) {
    axis_taps(p, a, mode, cmode, nmode, scale[a], cubic_a, (int)exclude, r0[a], r1[a]);
    /* an axis that maps one to one reads one tap */
    int same = out[a] == x->shape[a];
    for (int64_t o = 0; same && o < out[a]; o++)
      for (int t = 0; same && t < p->ntaps[a]; t++) {
        const size_t e = p->tab[a] + (size_t)o * (size_t)p->ntaps[a] + (size_t)t;
        same = p->idx[e] >= 0 && (p->w[e] == 0 || (p->w[e] == 1 && p->idx[e] == o));
      }
    if (same) {
      for (int64_t o = 0; o < out[a]; o++)
        p->idx[p->tab[a] + (size_t)o] = o, p->w[p->tab[a] + (size_t)o] = 1;
      p->ntaps[a] = 1; /* the table keeps its stride in tab; entries o, as written above */
    }
  }
  return 0;
}

/* The usual case, only the last two axes resized (images, feature maps): plane by plane, each
** output row first blends its input rows (rowbuf, in double), then each output column its
** taps of that blend. The same sums as resize_run's, grouped by axis. */
#define RESIZE_ROW_MAX 4096 /* input row length the blend buffer (on the stack) holds */

static int planes_only(const resize_params_t *p) {
  if (p->nd < 2)
    return 0;
  for (int a = 0; a < p->nd - 2; a++) {
    if (p->ntaps[a] != 1 || p->in_shape[a] != p->out_shape[a] || p->extrapolate)
      return 0;
    for (int64_t o = 0; o < p->out_shape[a]; o++) /* and maps each index to itself */
      if (p->idx[p->tab[a] + (size_t)o] != o)
        return 0;
  }
  return p->in_shape[p->nd - 1] <= RESIZE_ROW_MAX;
}

static void resize_planes(const resize_params_t *p, const float *x, float *y) {
  const int h = p->nd - 2, w = p->nd - 1;
  const int64_t IH = p->in_shape[h], IW = p->in_shape[w], OH = p->out_shape[h], OW = p->out_shape[w];
  const int th = p->ntaps[h], tw = p->ntaps[w];
  size_t planes = 1;
  for (int a = 0; a < h; a++)
    planes *= (size_t)p->in_shape[a];
  double row[RESIZE_ROW_MAX];
  for (size_t pl = 0; pl < planes; pl++) {
    const float *xp = x + pl * (size_t)(IH * IW);
    float *yp = y + pl * (size_t)(OH * OW);
    for (int64_t oy = 0; oy < OH; oy++) {
      const int64_t *iy = p->idx + p->tab[h] + (size_t)oy * (size_t)th;
      const double *wy = p->w + p->tab[h] + (size_t)oy * (size_t)th;
      for (int64_t ix = 0; ix < IW; ix++)
        row[ix] = 0;
      for (int t = 0; t < th; t++)
        if (wy[t] != 0)
          for (int64_t ix = 0; ix < IW; ix++)
            row[ix] += wy[t] * (double)xp[iy[t] * IW + ix];
      for (int64_t ox = 0; ox < OW; ox++) {
        const int64_t *ixs = p->idx + p->tab[w] + (size_t)ox * (size_t)tw;
        const double *wx = p->w + p->tab[w] + (size_t)ox * (size_t)tw;
        double acc = 0;
        for (int t = 0; t < tw; t++)
          if (wx[t] != 0)
            acc += wx[t] * row[ixs[t]];
        yp[oy * OW + ox] = (float)acc;
      }
    }
  }
}

static int resize_run(const kctx_t *k) {
  const resize_params_t *p = k->n->params;
  const float *x = k->in[0];
  float *y = k->out[0];
  const int nd = p->nd;
  if (planes_only(p)) {
    resize_planes(p, x, y);
    return 0;
  }
  size_t count = 1;
  for (int a = 0; a < nd; a++)
    count *= (size_t)p->out_shape[a];
  int64_t o[LPQ_MAX_DIMS] = {0};
  for (size_t e = 0; e < count; e++) {
    /* this element's taps on each axis: one-to-one axes keep a packed table of 1 */
    const int64_t *ti[LPQ_MAX_DIMS];
    const double *tw[LPQ_MAX_DIMS];
    int outside = 0;
    for (int a = 0; a < nd; a++) {
      const size_t at = p->tab[a] + (size_t)o[a] * (size_t)p->ntaps[a];
      ti[a] = p->idx + at, tw[a] = p->w + at;
      outside |= p->extrapolate && ti[a][0] < 0;
    }
    double acc = 0;
    if (!outside) {
      int t[LPQ_MAX_DIMS] = {0};
      for (;;) { /* every combination of the axes' taps */
        double w = 1;
        int64_t off = 0;
        for (int a = 0; a < nd; a++)
          w *= tw[a][t[a]], off += ti[a][t[a]] * p->in_stride[a];
        if (w != 0)
          acc += w * (double)x[off];
        int a = nd - 1;
        for (; a >= 0 && ++t[a] == p->ntaps[a]; a--)
          t[a] = 0;
        if (a < 0)
          break;
      }
    }
    y[e] = outside ? p->extrap_value : (float)acc;
    for (int a = nd - 1; a >= 0 && ++o[a] == p->out_shape[a]; a--)
      o[a] = 0;
  }
  return 0;
}

static const char *const resize_attrs[] = {
    "mode", "coordinate_transformation_mode", "nearest_mode", "cubic_coeff_a",
    "exclude_outside", "extrapolation_value", "antialias", "axes", "keep_aspect_ratio_policy",
    NULL};
static const char *const upsample_attrs[] = {"mode", "scales", NULL};

const op_def_t lpq__ops_resize_table[] = {
    {"Resize", resize_attrs, resize_prepare, resize_run},
    {"Upsample", upsample_attrs, resize_prepare, resize_run},
    {NULL, NULL, NULL, NULL},
};
