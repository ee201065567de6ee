/* engine/graph_opt.c: rewrites after constant folding (BatchNormalization folded into the Conv
** before it, Relu/Clip fused into the Conv/Gemm before them) and the table of quantizable
** layers that the search's genome is built from. */
#include "engine/engine_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int is_op(const gnode_t *n, const char *op) { return strcmp(n->op_type, op) == 0; }

static void count_uses(lpq_graph_t *g) {
  for (size_t i = 0; i < g->nvals; i++)
    g->vals[i].uses = g->vals[i].is_output;
  for (size_t k = 0; k < g->nnodes; k++) {
    const gnode_t *n = &g->nodes[k];
    if (n->dead)
      continue;
    for (int i = 0; i < n->nin; i++)
      if (n->in[i] >= 0)
        g->vals[n->in[i]].uses++;
  }
}

/* The live node producing n's first input, when n is its only consumer; else NULL. */
static gnode_t *sole_producer(lpq_graph_t *g, const gnode_t *n) {
  if (n->nin < 1 || n->in[0] < 0)
    return NULL;
  const gval_t *x = gv(g, n->in[0]);
  if (x->producer < 0 || x->uses != 1 || x->is_output || x->cdata)
    return NULL;
  gnode_t *p = &g->nodes[x->producer];
  return p->dead || p->out[0] != n->in[0] ? NULL : p;
}

/* n's output becomes p's output; n disappears. */
static void absorb(lpq_graph_t *g, gnode_t *p, gnode_t *n) {
  gv(g, p->out[0])->producer = -1;
  p->out[0] = n->out[0];
  gv(g, n->out[0])->producer = (int)(p - g->nodes);
  n->dead = 1;
}

static int fold_bn(lpq_graph_t *g, gnode_t *bn, lpq_error_t *err) {
  gnode_t *c = sole_producer(g, bn);
  if (!c || !is_op(c, "Conv") || c->act != ACT_NONE || bn->nout != 1)
    return 0;
  for (int i = 1; i <= 4; i++)
    if (bn->in[i] < 0 || !gv(g, bn->in[i])->cdata)
      return 0;
  const gval_t *wv = gv(g, c->in[1]);
  if (!wv->cdata && !c->wdata)
    return 0;
  const conv_params_t *cp = c->params;
  const size_t M = (size_t)cp->M, per = wv->count / M;
  const float *scale = gv(g, bn->in[1])->cdata, *beta = gv(g, bn->in[2])->cdata;
  const float *mean = gv(g, bn->in[3])->cdata, *var = gv(g, bn->in[4])->cdata;
  const float eps = ((const bn_params_t *)bn->params)->eps;
  const float *w = c->wdata ? c->wdata : wv->cdata;
  const float *b = c->bdata ? c->bdata : c->nin > 2 && c->in[2] >= 0 ? gv(g, c->in[2])->cdata : NULL;
  if (c->nin > 2 && c->in[2] >= 0 && !b)
    return 0; /* a run-time bias: leave the BN alone */
  float *nw = malloc(wv->count * sizeof *nw), *nb = malloc(M * sizeof *nb);
  if (!nw || !nb) {
    free(nw), free(nb);
    return lpq__node_err(err, LPQ_ENOMEM, bn, "out of memory folding into '%s'", c->name);
  }
  for (size_t m = 0; m < M; m++) {
    /* double keeps the folded weights as close as possible to conv-then-BN */
    double s = (double)scale[m] / sqrt((double)var[m] + (double)eps);
    for (size_t j = 0; j < per; j++)
      nw[m * per + j] = (float)(w[m * per + j] * s);
    nb[m] = (float)(((b ? b[m] : 0.0) - mean[m]) * s + beta[m]);
  }
  free(c->wdata), free(c->bdata);
  c->wdata = nw, c->bdata = nb;
  c->wcount = wv->count, c->bcount = M;
  absorb(g, c, bn);
  return 0;
}

/* Add(conv(x), r) with r of the same shape: the conv adds r in its epilogue (in[3]), so the
** sum never makes a separate pass over memory; a Relu after it then fuses as well. Only where r
** is ready when the conv runs (nodes run in order): a projection shortcut computed before the
** branch it meets (RegNet's Add(proj(x), f(x))) fuses into the branch's last conv instead. */
static int fuse_residual(lpq_graph_t *g, gnode_t *a, lpq_error_t *err) {
  if (a->nin != 2 || a->nout != 1 || a->in[0] < 0 || a->in[1] < 0 || a->in[0] == a->in[1])
    return 0;
  const gval_t *v0 = gv(g, a->in[0]), *v1 = gv(g, a->in[1]);
  if (v0->dtype != LPQ_DT_F32 || v1->dtype != LPQ_DT_F32 || v0->ndim != v1->ndim ||
      memcmp(v0->shape, v1->shape, (size_t)v0->ndim * sizeof v0->shape[0]) != 0)
    return 0;
  for (int side = 0; side < 2; side++) {
    const gval_t *x = gv(g, a->in[side]);
    if (x->producer < 0 || x->uses != 1 || x->is_output || x->cdata)
      continue;
    gnode_t *c = &g->nodes[x->producer];
    if (c->dead || !is_op(c, "Conv") || c->act != ACT_NONE || c->nin > 3 ||
        c->out[0] != a->in[side] || gv(g, a->in[1 - side])->producer > x->producer)
      continue;
    const conv_params_t *cp = c->params;
    if (cp->C / cp->groups == 1 && cp->M / cp->groups == 1)
      continue; /* depthwise keeps its own kernel */
    int *in = realloc(c->in, 4 * sizeof *in);
    if (!in)
      return lpq__node_err(err, LPQ_ENOMEM, a, "out of memory");
    c->in = in;
    if (c->nin < 3)
      c->in[2] = -1;
    c->in[3] = a->in[1 - side];
    c->nin = 4;
    c->residual = 1;
    absorb(g, c, a);
    return 0;
  }
  return 0;
}

/* Mul(x, Sigmoid(x)) (SiLU, Swish: EfficientNet, YOLO) and Mul(x, HardSigmoid(x)) (HardSwish as
** PyTorch exports it: MobileNetV3) as one pass: the Sigmoid computes x * sigmoid(x) into the
** Mul's output, which then no longer reads x a second time. */
static void fuse_silu(lpq_graph_t *g, gnode_t *m) {
  if (m->nin != 2 || m->nout != 1 || m->in[0] < 0 || m->in[1] < 0)
    return;
  for (int side = 0; side < 2; side++) {
    const gval_t *s = gv(g, m->in[side]), *x = gv(g, m->in[1 - side]);
    if (s->producer < 0 || s->uses != 1 || s->is_output || x->dtype != LPQ_DT_F32)
      continue;
    gnode_t *sig = &g->nodes[s->producer];
    if (sig->dead || !(is_op(sig, "Sigmoid") || is_op(sig, "HardSigmoid")) ||
        sig->in[0] != m->in[1 - side] ||
        memcmp(x->shape, s->shape, (size_t)x->ndim * sizeof x->shape[0]) != 0 ||
        gv(g, m->out[0])->count != x->count)
      continue;
    lpq__unary_silu(sig);
    absorb(g, sig, m);
    return;
  }
}

/* The live producer of value v, when it is op and v has exactly `uses` consumers. */
static gnode_t *producer_of(lpq_graph_t *g, int v, const char *op, int uses) {
  if (v < 0)
    return NULL;
  const gval_t *x = gv(g, v);
  if (x->producer < 0 || x->uses != uses || x->is_output || x->cdata)
    return NULL;
  gnode_t *p = &g->nodes[x->producer];
  return p->dead || !is_op(p, op) || p->nout != 1 ? NULL : p;
}

/* A constant float scalar input of n (the other being `other`), or NULL. */
static const float *const_scalar(lpq_graph_t *g, const gnode_t *n, int other) {
  if (n->nin != 2)
    return NULL;
  const int c = n->in[0] == other ? n->in[1] : n->in[1] == other ? n->in[0] : -1;
  const gval_t *v = c >= 0 ? gv(g, c) : NULL;
  return v && v->cdata && v->dtype == LPQ_DT_F32 && v->count == 1 ? v->cdata : NULL;
}

/* PyTorch's LayerNorm before opset 17, Div(d, Sqrt(Add(ReduceMean(Pow(d, 2)), eps))) with
** d = Sub(x, ReduceMean(x)) over the last axis, as one LayerNormalization pass (the Div node
** becomes it; the scale and bias Mul and Add after it stay). Seven passes over the tensor
** become one. */
static int fuse_layernorm(lpq_graph_t *g, gnode_t *div, lpq_error_t *err) {
  if (div->nin != 2 || div->nout != 1)
    return 0;
  gnode_t *sq = producer_of(g, div->in[1], "Sqrt", 1);
  gnode_t *add = sq ? producer_of(g, sq->in[0], "Add", 1) : NULL;
  if (!add)
    return 0;
  const int v = add->in[0] >= 0 && gv(g, add->in[0])->cdata ? add->in[1] : add->in[0];
  const float *eps = const_scalar(g, add, v);
  gnode_t *rm2 = eps ? producer_of(g, v, "ReduceMean", 1) : NULL;
  gnode_t *pw = rm2 ? producer_of(g, rm2->in[0], "Pow", 1) : NULL;
  const float *two = pw ? const_scalar(g, pw, pw->in[0]) : NULL;
  gnode_t *sub = two && *two == 2.0f && pw->in[0] == div->in[0]
                     ? producer_of(g, div->in[0], "Sub", 2) : NULL;
  gnode_t *rm1 = sub && sub->nin == 2 ? producer_of(g, sub->in[1], "ReduceMean", 1) : NULL;
  if (!rm1 || rm1->in[0] != sub->in[0])
    return 0;
  const gval_t *x = gv(g, sub->in[0]), *mu = gv(g, sub->in[1]), *var = gv(g, v);
  if (x->dtype != LPQ_DT_F32 || x->ndim < 1 || x->shape[x->ndim - 1] < 1)
    return 0;
  for (int i = 0; i < x->ndim; i++) /* both means keep every axis but the last */
    if (mu->ndim != x->ndim || var->ndim != x->ndim ||
        mu->shape[i] != (i == x->ndim - 1 ? 1 : x->shape[i]) || var->shape[i] != mu->shape[i])
      return 0;
  const gval_t *y = gv(g, div->out[0]);
  if (y->count != x->count || y->ndim != x->ndim)
    return 0;
  const size_t inner = (size_t)x->shape[x->ndim - 1];
  int rc = lpq__ln_adopt(div, sub->in[0], x->count / inner, inner, *eps, err);
  if (rc)
    return rc;
  rm1->dead = sub->dead = pw->dead = rm2->dead = add->dead = sq->dead = 1;
  count_uses(g);
  return 0;
}

static void fuse_act(lpq_graph_t *g, gnode_t *a) {
  gnode_t *p = sole_producer(g, a);
  if (!p || (!is_op(p, "Conv") && !is_op(p, "Gemm")) || p->act != ACT_NONE || a->nout != 1)
    return;
  if (gv(g, a->in[0])->dtype != LPQ_DT_F32)
    return;
  p->act = ACT_CLIP;
  if (is_op(a, "Relu")) {
    p->act_lo = 0.0f, p->act_hi = INFINITY;
  } else {
    const clip_params_t *cp = a->params;
    p->act_lo = cp->lo, p->act_hi = cp->hi;
  }
  absorb(g, p, a);
}

int lpq__graph_optimize(lpq_graph_t *g, lpq_error_t *err) {
  count_uses(g);
  for (size_t k = 0; k < g->nnodes; k++) {
    gnode_t *n = &g->nodes[k];
    if (n->dead)
      continue;
    int rc = 0;
    if (is_op(n, "BatchNormalization"))
      rc = fold_bn(g, n, err);
    else if (is_op(n, "Add"))
      rc = fuse_residual(g, n, err);
    else if (is_op(n, "Relu") || is_op(n, "Clip"))
      fuse_act(g, n);
    else if (is_op(n, "Mul"))
      fuse_silu(g, n);
    else if (is_op(n, "Div"))
      rc = fuse_layernorm(g, n, err);
    if (rc != 0)
      return rc;
    if (n->dead)
      count_uses(g);
  }
  return 0;
}

/* Lays a constant [K, N] matrix out as [N, K] in n->wdata (output channel first). */
static int transpose_weight(gnode_t *n, const float *b, size_t K, size_t N, lpq_error_t *err) {
  const size_t total = K * N;
  float *t = malloc((total ? total : 1) * sizeof *t);
  if (!t)
    return lpq__node_err(err, LPQ_ENOMEM, n, "out of memory for the weight");
  for (size_t k = 0; k < K; k++)
    for (size_t j = 0; j < N; j++)
      t[j * K + k] = b[k * N + j];
  free(n->wdata);
  n->wdata = t;
  n->wcount = K * N;
  return 0;
}

static void copy_shape(const gval_t *v, int *ndim, int64_t *shape) {
  *ndim = v->ndim;
  memcpy(shape, v->shape, sizeof v->shape);
}

static int add_layer(lpq_graph_t *g, gnode_t *n, lpq_error_t *err) {
  const gval_t *wv = gv(g, n->in[1]);
  lpq_layer_t *L = &g->layers[g->nlayers];
  memset(L, 0, sizeof *L);
  L->index = g->nlayers;
  L->name = n->name;
  copy_shape(gv(g, n->in[0]), &L->in_ndim, L->in_shape);
  copy_shape(gv(g, n->out[0]), &L->out_ndim, L->out_shape);
  L->fused_act = n->act != ACT_NONE;
  L->fused_residual = n->residual;
  L->in_value = n->in[0];
  L->out_value = n->out[0];
  if (is_op(n, "Conv")) {
    const conv_params_t *cp = n->params;
    L->kind = LPQ_LAYER_CONV;
    L->weight = n->wdata ? n->wdata : wv->cdata;
    L->weight_count = wv->count;
    L->weight_ndim = 4;
    L->weight_shape[0] = cp->M;
    L->weight_shape[1] = cp->C / cp->groups;
    L->weight_shape[2] = cp->k[0];
    L->weight_shape[3] = cp->k[1];
    L->bias = n->bdata ? n->bdata : n->nin > 2 && n->in[2] >= 0 ? gv(g, n->in[2])->cdata : NULL;
    L->bias_count = L->bias ? (size_t)cp->M : 0;
    L->groups = cp->groups;
    for (int i = 0; i < 2; i++) {
      L->kernel[i] = cp->k[i], L->stride[i] = cp->s[i], L->dilation[i] = cp->d[i];
    }
    memcpy(L->pads, cp->p, sizeof L->pads);
    L->M = (size_t)cp->M;
    L->N = (size_t)(cp->OH * cp->OW);
    L->K = (size_t)(cp->C / cp->groups * cp->k[0] * cp->k[1]);
    L->macs = (uint64_t)cp->N * cp->M * cp->OH * cp->OW * (uint64_t)L->K;
  } else if (is_op(n, "Gemm")) {
    gemm_params_t *gp = n->params;
    L->kind = LPQ_LAYER_GEMM;
    if (!gp->trans_b) {
      int rc = transpose_weight(n, wv->cdata, gp->K, gp->N, err);
      if (rc != 0)
        return rc;
      gp->trans_b = 1;
    }
    L->weight = n->wdata ? n->wdata : wv->cdata;
    L->weight_count = gp->N * gp->K;
    L->weight_ndim = 2;
    L->weight_shape[0] = (int64_t)gp->N, L->weight_shape[1] = (int64_t)gp->K;
    L->M = gp->M, L->N = gp->N, L->K = gp->K;
    L->macs = (uint64_t)gp->M * gp->N * gp->K;
  } else {
    matmul_params_t *mp = n->params;
    L->kind = LPQ_LAYER_MATMUL;
    int rc = transpose_weight(n, wv->cdata, (size_t)mp->K, (size_t)mp->N, err);
    if (rc != 0)
      return rc;
    mp->b_nk = 1;
    L->weight = n->wdata;
    L->weight_count = n->wcount;
    L->weight_ndim = 2;
    L->weight_shape[0] = mp->N, L->weight_shape[1] = mp->K;
    L->M = mp->batch * (size_t)mp->M, L->N = (size_t)mp->N, L->K = (size_t)mp->K;
    L->macs = (uint64_t)L->M * L->N * L->K;
  }
  n->layer = (int)g->nlayers++;
  return 0;
}

int lpq__graph_build_layers(lpq_graph_t *g, lpq_error_t *err) {
  g->layers = calloc(g->nnodes + 1, sizeof *g->layers);
  if (!g->layers)
    return lpq_errorf(err, LPQ_ENOMEM, "out of memory");
  g->nlayers = 0;
  for (size_t k = 0; k < g->nnodes; k++) {
    gnode_t *n = &g->nodes[k];
    if (n->dead || n->nin < 2 || n->in[1] < 0)
      continue;
    const gval_t *x = gv(g, n->in[0]), *w = gv(g, n->in[1]);
    if (x->dtype != LPQ_DT_F32 || w->dtype != LPQ_DT_F32 || (!w->cdata && !n->wdata))
      continue;
    int quantizable = is_op(n, "Conv") || is_op(n, "Gemm") ||
                      (is_op(n, "MatMul") && w->ndim == 2 &&
                       ((const matmul_params_t *)n->params)->batch >= 1);
    if (quantizable) {
      int rc = add_layer(g, n, err);
      if (rc != 0)
        return rc;
    }
  }
  return 0;
}
