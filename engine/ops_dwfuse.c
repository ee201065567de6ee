/* engine/ops_dwfuse.c: MobileNet-style chains fused on runs without hooks: a 1x1 conv (the
** expansion, with its Relu/Clip; or any dense conv, as the stem before the first block), a 3x3
** depthwise conv (stride 1 or 2, pads 1) and a 1x1 conv (the projection, with its residual
** Add), the first or the last absent but not both. Each thread
** takes an image (or a slice of its rows) and walks it in bands of output rows: the
** expansion's rows the band needs go into a buffer E (rows computed for the band before kept,
** not recomputed), the depthwise output of the band into D, the projection from D into the
** output. E and D stay in the thread's cache and the expanded tensor (the largest of the
** network) is never written to memory nor read back. The nodes' tensors keep their places in
** the memory plan: hooked runs (the scorer's, which read every layer's input and output) run
** the nodes one by one and produce the same numbers within rounding. The same mechanism runs
** a 1x1 conv whose output only a GlobalAveragePool reads (the classifier's last conv): each
** task pools its channel blocks from a tile in cache and the conv's output is never written. */
#include "engine/engine_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct dwfuse_t {
  int node[3];   /* the 1x1 conv before (-1: none), the depthwise conv, the 1x1 conv after (-1) */
  int count;     /* live nodes after the first that the chain covers */
  int64_t R;     /* depthwise output rows per band */
  int64_t G;     /* images per band when a band holds whole images (R == OH), else 1 */
  size_t es, ds; /* floats per channel of E (rows of the band, margins) and of D */
  size_t e_off, d_off, z_off, t_off, pack_off, total; /* scratch layout, floats */
  int pool;      /* instead: 1, a 1x1 conv (node[0]) and the GlobalAveragePool after it
                 ** (node[1]); 2, a direct conv and the MaxPool after it */
  int64_t imgs;  /* pool: images per task (their columns' B packed in full) */
};

/* E and D of one band together stay under this many floats (1.5 MB: in L2; fewer, longer GEMMs
** measured faster than bands a quarter of this size, mobilenet_v2 blocks 2-4 by about 20%). */
int64_t lpq__dwfuse_band_floats = 384 * 1024;
/* Smaller maps run node by node. Every map is fused now: small ones take several whole images
** a task, so their 1x1 convs' GEMMs are as long as node by node (mobilenet_v2's 14x14 and 7x7
** blocks measured 10-15% faster fused). Tests set it too. */
int64_t lpq__dwfuse_min_hw = 1;
int64_t lpq__dwfuse_split_runs; /* counted for the tests (atomically: contexts run in parallel) */
#define MARGIN 16 /* floats before each channel's rows in E: a tap may read one before the row */
#define GROUP_COLS 784
#define FLAT_VECS 256 /* whole-image groups of up to 4096 positions: depthwise as flat runs */

static size_t up16(size_t v) { return (v + 15) / 16 * 16; }

static int is_conv(const gnode_t *n) { /* not one whose run crops its window (ops_conv.c) */
  return !n->dead && n->params && strcmp(n->op_type, "Conv") == 0 &&
         !((const conv_params_t *)n->params)->cropped;
}

/* Weights and bias known at load (the fused path reads what the plain run would). */
static int const_params(const lpq_graph_t *g, const gnode_t *n) {
  if (!n->wdata && !gv(g, n->in[1])->cdata)
    return 0;
  return n->bdata || n->nin < 3 || n->in[2] < 0 || gv(g, n->in[2])->cdata;
}

static int pointwise(const lpq_graph_t *g, const gnode_t *n) {
  if (!is_conv(n))
    return 0;
  const conv_params_t *p = n->params;
  return p->spatial == 2 && p->groups == 1 && p->k[0] == 1 && p->k[1] == 1 && p->s[0] == 1 &&
         p->s[1] == 1 && !p->p[0] && !p->p[1] && !p->p[2] && !p->p[3] && const_params(g, n) &&
         (!lpq__sgemm_packs_a() || n->wpack);
}

/* A dense conv before the depthwise one: 1x1, or (lpq's GEMM kernel, packing B straight from
** the input) any window Winograd does not take. */
static int dense_pre(const lpq_graph_t *g, const gnode_t *n) {
  if (pointwise(g, n))
    return 1;
  if (!is_conv(n) || n->residual || !lpq__sgemm_packs_a() || !n->wpack)
    return 0;
  const conv_params_t *p = n->params;
  return p->spatial == 2 && p->groups == 1 && !lpq__wino_applies(p) && const_params(g, n);
}

static int depthwise3(const lpq_graph_t *g, const gnode_t *n) {
  if (!is_conv(n) || n->residual)
    return 0;
  const conv_params_t *p = n->params;
  return p->spatial == 2 && p->groups == p->C && p->M == p->C && p->k[0] == 3 && p->k[1] == 3 &&
         p->H * p->W >= lpq__dwfuse_min_hw &&
         p->d[0] == 1 && p->d[1] == 1 && p->s[0] == p->s[1] && (p->s[0] == 1 || p->s[0] == 2) &&
         p->p[0] == 1 && p->p[1] == 1 && p->p[2] == 1 && p->p[3] == 1 && const_params(g, n);
}

/* Value v is read by node c only (as its first input) and is not a graph output. */
static int feeds_only(const lpq_graph_t *g, int v, const gnode_t *c) {
  if (v < 0 || gv(g, v)->is_output || gv(g, v)->cdata || c->in[0] != v)
    return 0;
  int uses = 0;
  for (size_t k = 0; k < g->nnodes; k++)
    for (int i = 0; !g->nodes[k].dead && i < g->nodes[k].nin; i++)
      uses += g->nodes[k].in[i] == v;
  return uses == 1;
}

static int live_step(const lpq_graph_t *g, int k, int dir) {
  for (k += dir; k >= 0 && (size_t)k < g->nnodes; k += dir)
    if (!g->nodes[k].dead)
      return k;
  return -1;
}

/* Bands and scratch of chain f (depthwise p, expanded channels C). */
static void size_chain(dwfuse_t *f, const conv_params_t *p, int has_pre, int64_t post_m) {
  const int has_post = post_m > 0;
  const int64_t s = p->s[0];
  const int64_t per_row = p->C * ((has_pre ? s * p->W : 0) + (has_post ? p->OW : 0));
  int64_t R = lpq__dwfuse_band_floats / (per_row > 0 ? per_row : 1);
  R = R < 1 ? 1 : R > p->OH ? p->OH : R;
  int64_t nE = (R - 1) * s + 3;
  nE = nE > p->H ? p->H : nE;
  f->R = R;
  /* whole images fit: several side by side, about GROUP_COLS positions (the 1x1 convs' GEMMs
  ** longer, their weights read once), in up to 4 bands' floats (measured: 28x28 maps one image
  ** at a time, 14x14 four, 7x7 all eight of mobilenet_v2's batch) */
  const int64_t per_img = per_row * p->OH;
  f->G = R < p->OH || per_img <= 0 ? 1 : (GROUP_COLS + p->H * p->W - 1) / (p->H * p->W);
  if (f->G > 1 && f->G > 4 * lpq__dwfuse_band_floats / per_img)
    f->G = 4 * lpq__dwfuse_band_floats / per_img;
  f->G = f->G < 1 ? 1 : f->G > p->N ? p->N : f->G;
  f->es = up16((size_t)(f->G * nE * p->W) + MARGIN + 1);
  f->ds = has_post ? (size_t)(f->G * R * p->OW + 31) / 32 * 32 : 0; /* or as packed panels */
  f->e_off = 0;
  f->d_off = f->e_off + (has_pre ? (size_t)p->C * f->es : 0);
  f->z_off = f->d_off + (size_t)p->C * f->ds;
  f->t_off = f->z_off + up16((size_t)p->W + 2 * MARGIN);
  /* several images: the projection's output for all of them, scattered after */
  f->pack_off = f->t_off + (f->G > 1 ? up16((size_t)(post_m * f->G * p->OH * p->OW)) : 0);
  f->total = f->pack_off + lpq__sgemm_pack_floats(0) + 16;
}

/* A 1x1 conv whose output only a GlobalAveragePool reads (a classifier's last conv): the
** conv's output never written, each task's rows pooled from a cached tile (pool_task). Or a
** direct conv whose output only a MaxPool reads (a ResNet's stem): lpq__direct_pool_run. */
static int plan_pool(lpq_graph_t *g, int k, int last_end, lpq_error_t *err) {
  gnode_t *n = &g->nodes[k];
  const int pre = live_step(g, k, -1);
  if (pre < 0 || pre <= last_end || !is_conv(&g->nodes[pre]) || g->nodes[pre].residual ||
      g->nodes[pre].fuse || g->nodes[pre].out[0] != n->in[0] || !feeds_only(g, n->in[0], n))
    return 0;
  const conv_params_t *p = g->nodes[pre].params;
  const size_t direct = lpq__direct_pool_scratch(p, lpq__maxpool_window(n));
  const int64_t HW = p->H * p->W, cap = lpq__dwfuse_band_floats / (p->C > 0 ? p->C : 1);
  if (!direct && (strcmp(n->op_type, "GlobalAveragePool") != 0 || !lpq__sgemm_packs_a() ||
                  !pointwise(g, &g->nodes[pre]) || !g->nodes[pre].wpack || HW <= 0 ||
                  p->C <= 0 || HW > cap)) /* B of one image over all of K: within a band */
    return 0;
  dwfuse_t *f = calloc(1, sizeof *f);
  if (!f)
    return lpq__node_err(err, LPQ_ENOMEM, n, "out of memory");
  f->node[0] = pre, f->node[1] = k, f->node[2] = -1, f->count = 1, f->pool = direct ? 2 : 1;
  f->total = direct;
  if (!direct) {
    f->imgs = cap / HW < p->N ? cap / HW : p->N;
    const size_t cols = (size_t)(f->imgs * HW + SGEMM_NR - 1) / SGEMM_NR * SGEMM_NR;
    f->t_off = cols * (size_t)p->C + 16; /* packed B, then the tile of SGEMM_MC rows */
    f->total = f->t_off + SGEMM_MC * cols + 16;
  }
  g->nodes[pre].fuse = f;
  if (g->nodes[pre].scratch_floats < f->total)
    g->nodes[pre].scratch_floats = f->total;
  return 1;
}

int lpq__dwfuse_plan(lpq_graph_t *g, lpq_error_t *err) {
  const char *env = getenv("LPQ_DWFUSE");
  if (env && strcmp(env, "0") == 0)
    return 0;
  int last_end = -1; /* a node belongs to one chain at most */
  for (size_t k = 0; k < g->nnodes; k++) {
    gnode_t *n = &g->nodes[k];
    const int pooled = n->dead ? 0 : plan_pool(g, (int)k, last_end, err);
    if (pooled < 0)
      return pooled;
    if (pooled) {
      last_end = (int)k;
      continue;
    }
    if (!depthwise3(g, n))
      continue;
    int pre = live_step(g, (int)k, -1), post = live_step(g, (int)k, 1);
    if (pre < 0 || pre <= last_end || !dense_pre(g, &g->nodes[pre]) ||
        g->nodes[pre].out[0] != n->in[0] || !feeds_only(g, n->in[0], n))
      pre = -1;
    if (post < 0 || !pointwise(g, &g->nodes[post]) || !feeds_only(g, n->out[0], &g->nodes[post]))
      post = -1;
    if (pre < 0 && post < 0)
      continue;
    dwfuse_t *f = calloc(1, sizeof *f);
    if (!f)
      return lpq__node_err(err, LPQ_ENOMEM, n, "out of memory");
    f->node[0] = pre, f->node[1] = (int)k, f->node[2] = post;
    f->count = (pre >= 0) + (post >= 0);
    size_chain(f, n->params, pre >= 0,
               post >= 0 ? ((const conv_params_t *)g->nodes[post].params)->M : 0);
    gnode_t *head = &g->nodes[pre >= 0 ? pre : (int)k];
    head->fuse = f;
    if (head->scratch_floats < f->total)
      head->scratch_floats = f->total;
    last_end = post >= 0 ? post : (int)k;
  }
  return 0;
}

int lpq__dwfuse_end(const gnode_t *n) {
  return n->fuse ? (n->fuse->node[2] >= 0 ? n->fuse->node[2] : n->fuse->node[1]) : -1;
}

/* One chain run: what every task reads. */
typedef struct fjob_t {
  const dwfuse_t *f;
  const conv_params_t *pe, *pd, *pp; /* expansion (NULL: none), depthwise, projection (NULL) */
  const float *x, *res;              /* chain input; the projection's residual or NULL */
  float *y;                          /* chain output */
  const float *we, *be, *wd, *bd, *wp, *bp; /* weights; biases (NULL: none) */
  const float *ape, *app;                   /* packed weights of the 1x1 convs, or NULL */
  float elo, ehi, dlo, dhi, plo, phi;
  int64_t nsplit, rows_per; /* tasks per image, output rows per task */
  int64_t group;            /* images per task in whole-image mode (fuse_group_task), or 0 */
  int pe_window;            /* the expansion is not 1x1: implicit GEMM, pe_k rows of B */
  int64_t pe_k;
  /* channel split (split_run): images [img0, img0 + sg), expanded channels cper a task, output
  ** channels mper a task, the taps' masks of the flat runs */
  int64_t img0, sg, cper, mper;
  const uint16_t *masks;
  size_t nvec;
  float *scratch;
  size_t stride;
} fjob_t;

static void fuse_task(void *arg, size_t task, int tid) {
  const fjob_t *j = arg;
  const dwfuse_t *f = j->f;
  const conv_params_t *d = j->pd;
  const int64_t img = (int64_t)task / j->nsplit, part = (int64_t)task % j->nsplit;
  const int64_t ra = part * j->rows_per, rb = ra + j->rows_per < d->OH ? ra + j->rows_per : d->OH;
  const int64_t C = d->C, H = d->H, W = d->W, HW = H * W, OW = d->OW, OHW = d->OH * OW;
  const int64_t s = d->s[0], Cin = j->pe ? j->pe->C : C;
  const int64_t xHW = j->pe ? j->pe->H * j->pe->W : HW; /* the chain input's plane */
  float *sc = j->scratch + (size_t)tid * j->stride;
  float *E = sc + f->e_off + MARGIN, *D = sc + f->d_off, *pack = sc + f->pack_off;
  float *zero = sc + f->z_off + MARGIN;
  memset(zero - MARGIN, 0, ((size_t)W + 2 * MARGIN) * sizeof *zero);
  const float *xi = j->x + img * Cin * xHW;
  int64_t cur_lo = 0, cur_hi = 0; /* the plane rows E holds */
  for (int64_t oy0 = ra; oy0 < rb; oy0 += f->R) {
    const int64_t oy1 = oy0 + f->R < rb ? oy0 + f->R : rb;
    const int64_t lo_row = oy0 * s - 1 > 0 ? oy0 * s - 1 : 0;
    const int64_t hi_row = (oy1 - 1) * s + 2 < H ? (oy1 - 1) * s + 2 : H;
    int64_t keep = 0; /* rows of the band before still needed: moved to the front */
    if (j->pe && cur_hi > lo_row && cur_lo <= lo_row) {
      keep = cur_hi - lo_row;
      if (lo_row > cur_lo)
        for (int64_t c = 0; c < C; c++)
          memmove(E + c * (int64_t)f->es, E + c * (int64_t)f->es + (lo_row - cur_lo) * W,
                  (size_t)(keep * W) * sizeof *E);
    }
    const int64_t r0 = lo_row + keep, nr = hi_row - r0;
    if (nr > 0 && j->pe && j->pe_window) { /* B packed from the input's windows */
      const sgemm_epi_t epi = {j->be, NULL, 0, j->elo, j->ehi};
      const conv_implicit_t ib = {j->pe, xi, r0 * W, 0};
      lpq__kern_sgemm_implicit((size_t)C, (size_t)(nr * W), (size_t)j->pe_k, j->ape,
                               lpq__conv_pack_b, &ib, E + keep * W, f->es, pack, &epi);
    } else if (nr > 0 && j->pe) {
      const sgemm_epi_t epi = {j->be, NULL, 0, j->elo, j->ehi};
      lpq__kern_sgemm((size_t)C, (size_t)(nr * W), (size_t)Cin, j->we, (size_t)Cin, j->ape,
                      xi + r0 * W, (size_t)HW, E + keep * W, f->es, pack, &epi);
    }
    cur_lo = lo_row, cur_hi = hi_row;
    /* a whole plane of stride 1: flat runs, the taps' masks once for every channel */
    uint16_t masks[9 * FLAT_VECS];
    const size_t nvec = s == 1 && oy0 == 0 && oy1 == H
                            ? lpq__kern_dw3_flat_masks(masks, FLAT_VECS, 1, H, W) : 0;
    const int packed = nvec && j->pp && j->app; /* D as the projection's packed B */
    for (int64_t c = 0; c < C; c++) { /* without an expansion: straight from the input */
      float *out = j->pp ? D + c * (packed ? 32 : (int64_t)f->ds)
                         : j->y + (img * C + c) * OHW + oy0 * OW;
      const float *Ec = j->pe ? E + c * (int64_t)f->es : xi + c * HW + lo_row * W;
      if (nvec)
        lpq__kern_dw3_flat_run(out, packed ? 32 * (size_t)C : 32, Ec, masks, nvec, 1, H, W,
                               j->wd + 9 * c, j->bd ? j->bd[c] : 0.0f, j->dlo, j->dhi);
      else
        lpq__dw3_rows(d, Ec, lo_row, zero, j->wd + 9 * c, j->bd ? j->bd[c] : 0.0f, j->dlo,
                      j->dhi, oy0, oy1, out);
    }
    if (j->pp) {
      const int64_t M = j->pp->M;
      const size_t at = (size_t)(img * M * OHW + oy0 * OW);
      const sgemm_epi_t epi = {j->bp, j->res ? j->res + at : NULL, (size_t)OHW, j->plo, j->phi};
      if (packed)
        lpq__kern_sgemm_packed_epi((size_t)M, (size_t)OHW, (size_t)C, j->app, D, j->y + at,
                                   (size_t)OHW, &epi);
      else
        lpq__kern_sgemm((size_t)M, (size_t)((oy1 - oy0) * OW), (size_t)C, j->wp, (size_t)C,
                        j->app, D, f->ds, j->y + at, (size_t)OHW, pack, &epi);
    }
  }
}

/* The input packed once (after E's first SGEMM_MC rows) fits: G whole images, an expansion
** over more than SGEMM_MC channels. */
static int blocks_fit(const fjob_t *j, int64_t G) {
  const conv_params_t *d = j->pd;
  const int64_t C = d->C, Cin = j->pe ? j->pe->C : 0;
  const int64_t cols32 = (G * d->H * d->W + SGEMM_NR - 1) / SGEMM_NR * SGEMM_NR;
  return j->pe && j->pp && j->ape && Cin > 0 && C > SGEMM_MC &&
         (size_t)(C - SGEMM_MC) * j->f->es >= (size_t)(Cin * cols32) + MARGIN;
}

/* Expanded channels [c0, c1) of G whole images, SGEMM_MC at a time, each block's depthwise run
** while it is in cache: the input packed into Bx, the block in E, the depthwise outputs to Dp
** (the projection's packed B: flat runs of nvec vectors) or, Dp NULL, image by image into D's
** rows. The expansion's rows bit for bit those of its whole product. */
static void expand_dw_blocks(const fjob_t *j, const float *x0, int64_t G, int64_t c0, int64_t c1,
                             float *E, float *Bx, float *Dp, float *D, const uint16_t *masks,
                             size_t nvec, const float *zero) {
  const dwfuse_t *f = j->f;
  const conv_params_t *d = j->pd;
  const int64_t C = d->C, H = d->H, W = d->W, HW = H * W, OHW = d->OH * d->OW, Cin = j->pe->C;
  const conv_pointwise_t pw = {x0, 0, HW, HW, Cin * HW};
  lpq__conv_pack_pointwise(&pw, 0, (size_t)Cin, 0, (size_t)(G * HW), Bx);
  const sgemm_epi_t epi = {j->be, NULL, 0, j->elo, j->ehi};
  for (int64_t m0 = c0; m0 < c1; m0 += SGEMM_MC) {
    const int64_t mc = c1 - m0 < SGEMM_MC ? c1 - m0 : SGEMM_MC;
    lpq__kern_sgemm_packed_rows((size_t)C, (size_t)m0, (size_t)(m0 + mc), (size_t)(G * HW),
                                (size_t)Cin, j->ape, Bx, E, f->es, &epi);
    for (int64_t c = m0; c < m0 + mc; c++) {
      const float *Ec = E + (c - m0) * (int64_t)f->es, *wc = j->wd + 9 * c;
      const float bias = j->bd ? j->bd[c] : 0.0f;
      if (Dp)
        lpq__kern_dw3_flat_run(Dp + c * 32, 32 * (size_t)C, Ec, masks, nvec, G, H, W, wc, bias,
                               j->dlo, j->dhi);
      else /* stride 2, or no flat run: image by image into D's rows */
        for (int64_t i = 0; i < G; i++)
          lpq__dw3_rows(d, Ec + i * HW, 0, zero, wc, bias, j->dlo, j->dhi, 0, d->OH,
                        D + c * (int64_t)f->ds + i * OHW);
    }
  }
}

/* Rows [m0, m1) of the projection of G images (T, row m0 first, G * OHW columns) to their
** places in y, with the residual when there is one (else bias and clamp were the kernel's). */
static void scatter_rows(const fjob_t *j, const float *T, int64_t img0, int64_t G, int64_t m0,
                         int64_t m1) {
  const int64_t M = j->pp->M, OHW = j->pd->OH * j->pd->OW, GO = G * OHW;
  for (int64_t i = 0; i < G; i++)
    for (int64_t m = m0; m < m1; m++) {
      const size_t at = (size_t)(((img0 + i) * M + m) * OHW);
      memcpy(j->y + at, T + (m - m0) * GO + i * OHW, (size_t)OHW * sizeof *T);
      if (j->res)
        lpq__kern_bias_add_clamp(j->y + at, j->res + at, j->bp ? j->bp[m] : 0.0f, j->plo,
                                 j->phi, (size_t)OHW);
    }
}

/* Images [task * G, ...) of the job, whole (G > 1): E holds their expanded planes side by
** side, D their depthwise outputs, per channel. */
static void fuse_group_task(void *arg, size_t task, int tid) {
  const fjob_t *j = arg;
  const dwfuse_t *f = j->f;
  const conv_params_t *d = j->pd;
  const int64_t C = d->C, H = d->H, W = d->W, HW = H * W, OW = d->OW, OHW = d->OH * OW;
  const int64_t Cin = j->pe ? j->pe->C : C, img0 = (int64_t)task * j->group;
  const int64_t G = d->N - img0 < j->group ? d->N - img0 : j->group;
  float *sc = j->scratch + (size_t)tid * j->stride;
  float *E = sc + f->e_off + MARGIN, *D = sc + f->d_off, *pack = sc + f->pack_off;
  float *zero = sc + f->z_off + MARGIN;
  memset(zero - MARGIN, 0, ((size_t)W + 2 * MARGIN) * sizeof *zero);
  const float *x0 = j->x + img0 * Cin * HW;
  /* stride 1: the taps' masks once for every channel; a channel's planes of the G images
  ** in one run where E and D hold them back to back, else image by image */
  uint16_t masks[9 * FLAT_VECS];
  const int runs = j->pe && j->pp;
  const size_t nvec = d->s[0] == 1 ? lpq__kern_dw3_flat_masks(masks, FLAT_VECS, runs ? G : 1, H, W)
                                   : 0;
  const int packed = nvec && runs && j->app; /* D as the projection's packed B */
  if (runs && blocks_fit(j, G)) { /* E never leaves L2 */
    float *Bx = E + SGEMM_MC * (int64_t)f->es;
    expand_dw_blocks(j, x0, G, 0, C, E, Bx, packed ? D : NULL, D, masks, nvec, zero);
    goto project;
  }
  if (j->pe) {
    const sgemm_epi_t epi = {j->be, NULL, 0, j->elo, j->ehi};
    if (j->ape && Cin > 0) { /* B packed across the images straight from the input */
      const conv_pointwise_t pw = {x0, 0, HW, HW, Cin * HW};
      lpq__kern_sgemm_implicit((size_t)C, (size_t)(G * HW), (size_t)Cin, j->ape,
                               lpq__conv_pack_pointwise, &pw, E, f->es, pack, &epi);
    } else {
      for (int64_t i = 0; i < G; i++)
        lpq__kern_sgemm((size_t)C, (size_t)HW, (size_t)Cin, j->we, (size_t)Cin, NULL,
                        x0 + i * Cin * HW, (size_t)HW, E + i * HW, f->es, pack, &epi);
    }
  }
  for (int64_t c = 0; c < C; c++)
    for (int64_t i = 0; i < G; i++) {
      const float *plane = j->pe ? E + c * (int64_t)f->es + i * HW : x0 + (i * C + c) * HW;
      float *out = packed  ? D + c * 32
                   : j->pp ? D + c * (int64_t)f->ds + i * OHW
                           : j->y + ((img0 + i) * C + c) * OHW;
      const float bias = j->bd ? j->bd[c] : 0.0f;
      if (nvec) {
        lpq__kern_dw3_flat_run(out, packed ? 32 * (size_t)C : 32, plane, masks, nvec,
                               runs ? G : 1, H, W, j->wd + 9 * c, bias, j->dlo, j->dhi);
        if (runs)
          break; /* all G images done */
        continue;
      }
      lpq__dw3_rows(d, plane, 0, zero, j->wd + 9 * c, bias, j->dlo, j->dhi, 0, d->OH, out);
    }
project:
  if (!j->pp)
    return;
  /* the projection over all G images at once into T, then each image's rows to its place (bias
  ** and clamp by the kernel, or with the residual as they are copied) */
  const int64_t M = j->pp->M, GO = G * OHW;
  float *T = sc + f->t_off;
  const sgemm_epi_t epi = {j->bp, NULL, 0, j->plo, j->phi};
  if (packed)
    lpq__kern_sgemm_packed_epi((size_t)M, (size_t)GO, (size_t)C, j->app, D, T, (size_t)GO,
                               j->res ? NULL : &epi);
  else
    lpq__kern_sgemm((size_t)M, (size_t)GO, (size_t)C, j->wp, (size_t)C, j->app, D, f->ds, T,
                    (size_t)GO, pack, j->res ? NULL : &epi);
  scatter_rows(j, T, img0, G, 0, M);
}

/* Channel split: whole images that are fewer groups than threads (mobilenet_v2's 7x7 maps at
** batch 8, any whole map at batch 1) run as two jobs over the threads, not as smaller groups
** (whose GEMMs waste more of their last 32-column panel and read the weights once a group):
** each task of the first expands and filters its share of the channels into the packed D of
** thread 0's scratch, each of the second projects its share of the output channels from it.
** Bit for bit the one-thread run (the rows of lpq__kern_sgemm_packed_rows). */
static void split_expand_task(void *arg, size_t task, int tid) {
  const fjob_t *j = arg;
  const dwfuse_t *f = j->f;
  const int64_t C = j->pd->C, HW = j->pd->H * j->pd->W, c0 = (int64_t)task * j->cper;
  const int64_t c1 = c0 + j->cper < C ? c0 + j->cper : C;
  if (c0 >= c1)
    return;
  float *E = j->scratch + (size_t)tid * j->stride + f->e_off + MARGIN;
  expand_dw_blocks(j, j->x + j->img0 * j->pe->C * HW, j->sg, c0, c1, E,
                   E + SGEMM_MC * (int64_t)f->es, j->scratch + f->d_off, NULL, j->masks,
                   j->nvec, NULL);
}

static void split_project_task(void *arg, size_t task, int tid) {
  const fjob_t *j = arg;
  const int64_t M = j->pp->M, C = j->pd->C, OHW = j->pd->OH * j->pd->OW, GO = j->sg * OHW;
  const int64_t m0 = (int64_t)task * j->mper, m1 = m0 + j->mper < M ? m0 + j->mper : M;
  const float *D = j->scratch + j->f->d_off;
  if (m0 >= m1)
    return;
  /* one image: straight to its rows, the residual by the kernel; else into T, then scattered */
  const size_t at = (size_t)(j->img0 * M * OHW);
  const sgemm_epi_t epi = {j->bp, j->sg == 1 && j->res ? j->res + at : NULL, (size_t)OHW, j->plo,
                           j->phi};
  const int direct = j->sg == 1;
  float *T = direct ? j->y + at + m0 * OHW : j->scratch + (size_t)tid * j->stride + j->f->t_off;
  const sgemm_epi_t *e = direct || !j->res ? &epi : NULL;
  if (m1 - m0 == M) /* all rows (M <= 8: the whole product's one-panel bits) */
    lpq__kern_sgemm_packed_epi((size_t)M, (size_t)GO, (size_t)C, j->app, D, T, (size_t)GO, e);
  else
    lpq__kern_sgemm_packed_rows((size_t)M, (size_t)m0, (size_t)m1, (size_t)GO, (size_t)C,
                                j->app, D, T, (size_t)GO, e);
  if (!direct)
    scatter_rows(j, T, j->img0, j->sg, m0, m1);
}

/* Whether the job runs split (then runs it, group by group of f->G images): 1, or 0. */
static int split_run(fjob_t *j, threads_t *pool) {
  const dwfuse_t *f = j->f;
  const conv_params_t *d = j->pd;
  const int64_t threads = lpq__threads_count(pool), N = d->N, G = f->G;
  if (threads < 2 || j->pe_window || !j->app || f->R != d->OH || d->s[0] != 1 ||
      (N + G - 1) / G >= threads || !blocks_fit(j, G))
    return 0;
  uint16_t masks[9 * FLAT_VECS];
  j->masks = masks;
  j->nvec = lpq__kern_dw3_flat_masks(masks, FLAT_VECS, G, d->H, d->W);
  if (!j->nvec)
    return 0;
  const int64_t C = d->C, M = j->pp->M, MR = SGEMM_MR;
  j->cper = (C + threads * MR - 1) / (threads * MR) * MR;
  j->mper = M > MR ? (M + threads * MR - 1) / (threads * MR) * MR : M;
  for (j->img0 = 0; j->img0 < N; j->img0 += G) {
    j->sg = N - j->img0 < G ? N - j->img0 : G;
    lpq__threads_run(pool, (size_t)((C + j->cper - 1) / j->cper), split_expand_task, j);
    lpq__threads_run(pool, (size_t)((M + j->mper - 1) / j->mper), split_project_task, j);
  }
  __atomic_fetch_add(&lpq__dwfuse_split_runs, 1, __ATOMIC_RELAXED);
  return 1;
}

static const float *node_weight(const gnode_t *n, void *const *ptr) {
  return n->wdata ? n->wdata : (const float *)ptr[n->in[1]];
}

static const float *node_bias(const gnode_t *n, void *const *ptr) {
  return n->bdata ? n->bdata : n->nin > 2 && n->in[2] >= 0 ? (const float *)ptr[n->in[2]] : NULL;
}

static void node_act(const gnode_t *n, float *lo, float *hi) {
  *lo = n->act ? n->act_lo : -INFINITY;
  *hi = n->act ? n->act_hi : INFINITY;
}

/* Pooled 1x1 conv: images [img0, img0 + imgs) and SGEMM_MC-row blocks [b0, b1) of the output
** channels a task. */
typedef struct pjob_t {
  const dwfuse_t *f;
  const conv_params_t *p;
  const float *x, *Ap, *bias;
  float *y, *scratch;
  size_t stride;
  float lo, hi;
  int64_t mtasks, blocks_per; /* tasks over the channel blocks (per image chunk) */
} pjob_t;

static void pool_task(void *arg, size_t task, int tid) {
  const pjob_t *j = arg;
  const conv_params_t *p = j->p;
  const int64_t HW = p->H * p->W, M = p->M, K = p->C;
  const int64_t img0 = (int64_t)task / j->mtasks * j->f->imgs;
  const int64_t imgs = p->N - img0 < j->f->imgs ? p->N - img0 : j->f->imgs, cols = imgs * HW;
  const int64_t nb = (M + SGEMM_MC - 1) / SGEMM_MC, b0 = (int64_t)task % j->mtasks * j->blocks_per;
  const int64_t b1 = b0 + j->blocks_per < nb ? b0 + j->blocks_per : nb;
  if (b0 >= b1)
    return;
  float *Bp = j->scratch + (size_t)tid * j->stride, *T = Bp + j->f->t_off;
  const conv_pointwise_t pw = {j->x, img0 * HW, HW, HW, K * HW};
  lpq__conv_pack_pointwise(&pw, 0, (size_t)K, 0, (size_t)cols, Bp); /* all of K at once */
  for (int64_t b = b0; b < b1; b++) {
    const int64_t m0 = b * SGEMM_MC, mc = M - m0 < SGEMM_MC ? M - m0 : SGEMM_MC;
    const sgemm_epi_t epi = {j->bias ? j->bias + m0 : NULL, NULL, 0, j->lo, j->hi};
    lpq__kern_sgemm_packed_epi((size_t)mc, (size_t)cols, (size_t)K, j->Ap + m0 * K, Bp, T,
                               (size_t)cols, &epi);
    for (int64_t r = 0; r < mc; r++)
      for (int64_t i = 0; i < imgs; i++) { /* the mean as GlobalAveragePool takes it */
        const float *t = T + r * cols + i * HW;
        float acc[8] = {0}, s = 0.0f;
        int64_t q = 0;
        for (; q + 8 <= HW; q += 8)
          for (int l = 0; l < 8; l++)
            acc[l] += t[q + l];
        for (; q < HW; q++)
          s += t[q];
        for (int l = 0; l < 8; l++)
          s += acc[l];
        j->y[(img0 + i) * M + m0 + r] = s / (float)HW;
      }
  }
}

/* Tasks for `items` items of `parts` parts each: an item cut into slices of *per parts (the last
** one shorter), as many as make the busiest thread's share smallest when the tasks are dealt
** out in turn, a slice costing one part more than its own (it repacks its input or recomputes
** its edge rows), the fewest slices among equals. Returns the slices per item. With 2 threads,
** 10 channel blocks of one image: 2 slices of 5, not 4 of 3 (3 + 3 + 3 + 1: one thread does
** 6); 3 images of 75 rows: 2 slices of 38 a image, not 75 of one. */
static int64_t split_items(threads_t *pool, int64_t items, int64_t parts, int64_t *per) {
  const int64_t threads = lpq__threads_count(pool);
  *per = parts > 0 ? parts : 1;
  if (threads < 2 || parts < 2 || items < 1)
    return 1;
  int64_t best = INT64_MAX, slices = 1;
  for (int64_t n = 1; n <= parts; n++) {
    const int64_t p = (parts + n - 1) / n, s = (parts + p - 1) / p;
    if (s != n) /* the same cut as a smaller n */
      continue;
    const int64_t load = (items * s + threads - 1) / threads * (p + 1);
    if (load < best)
      best = load, slices = s, *per = p;
  }
  return slices;
}

static int pool_run(const lpq_graph_t *g, const gnode_t *n, void *const *ptr, float *scratch,
                    threads_t *pool, size_t scratch_stride) {
  const dwfuse_t *f = n->fuse;
  const gnode_t *gp = &g->nodes[f->node[1]];
  pjob_t j = {.f = f, .p = n->params, .x = ptr[n->in[0]], .Ap = n->wpack,
              .bias = node_bias(n, ptr), .y = ptr[gp->out[0]], .scratch = scratch,
              .stride = scratch_stride};
  node_act(n, &j.lo, &j.hi);
  /* a thread packs its images' B once for all its channel blocks: as few tasks as keep every
  ** thread busy, split over the channels when the images are too few */
  const int64_t chunks = (j.p->N + f->imgs - 1) / f->imgs;
  j.mtasks = split_items(pool, chunks, (j.p->M + SGEMM_MC - 1) / SGEMM_MC, &j.blocks_per);
  lpq__threads_run(pool, (size_t)(chunks * j.mtasks), pool_task, &j);
  return f->count;
}

int lpq__dwfuse_run(const lpq_graph_t *g, const gnode_t *n, void *const *ptr, float *scratch,
                    threads_t *pool, size_t scratch_stride, lpq_error_t *err) {
  const dwfuse_t *f = n->fuse;
  if (!f)
    return lpq__node_err(err, LPQ_EINVAL, n, "not the first node of a fused chain");
  if (f->pool == 1)
    return pool_run(g, n, ptr, scratch, pool, scratch_stride);
  if (f->pool == 2) {
    const gnode_t *mp = &g->nodes[f->node[1]];
    void *const in[1] = {ptr[n->in[0]]};
    const kctx_t k = {.g = g, .n = n, .in = in, .scratch = scratch,
                      .weight = node_weight(n, ptr), .bias = node_bias(n, ptr), .err = err,
                      .pool = pool, .scratch_stride = scratch_stride};
    float lo, hi;
    node_act(n, &lo, &hi);
    lpq__direct_pool_run(&k, lo, hi, lpq__maxpool_window(mp), ptr[mp->out[0]]);
    return f->count;
  }
  const gnode_t *pe = f->node[0] >= 0 ? &g->nodes[f->node[0]] : NULL;
  const gnode_t *dn = &g->nodes[f->node[1]];
  const gnode_t *po = f->node[2] >= 0 ? &g->nodes[f->node[2]] : NULL;
  fjob_t j = {.f = f, .pd = dn->params, .scratch = scratch, .stride = scratch_stride};
  j.x = ptr[(pe ? pe : dn)->in[0]];
  j.y = ptr[(po ? po : dn)->out[0]];
  j.wd = node_weight(dn, ptr), j.bd = node_bias(dn, ptr);
  node_act(dn, &j.dlo, &j.dhi);
  if (pe) {
    j.pe = pe->params, j.we = node_weight(pe, ptr), j.be = node_bias(pe, ptr);
    j.ape = lpq__sgemm_packs_a() ? pe->wpack : NULL;
    j.pe_k = j.pe->C * j.pe->k[0] * j.pe->k[1];
    j.pe_window = !pointwise(g, pe);
    node_act(pe, &j.elo, &j.ehi);
  }
  if (po) {
    j.pp = po->params, j.wp = node_weight(po, ptr), j.bp = node_bias(po, ptr);
    j.app = lpq__sgemm_packs_a() ? po->wpack : NULL;
    j.res = po->residual ? (const float *)ptr[po->in[3]] : NULL;
    node_act(po, &j.plo, &j.phi);
  }
  /* images, or slices of rows when the images are fewer than two tasks per thread */
  const int64_t threads = lpq__threads_count(pool), N = j.pd->N;
  if (split_run(&j, pool))
    return f->count;
  if (f->G > 1 && !j.pe_window) { /* whole images, G or fewer a task, every thread busy */
    j.group = f->G < (N + threads - 1) / threads ? f->G : (N + threads - 1) / threads;
    lpq__threads_run(pool, (size_t)((N + j.group - 1) / j.group), fuse_group_task, &j);
    return f->count;
  }
  j.nsplit = split_items(pool, N, j.pd->OH, &j.rows_per);
  lpq__threads_run(pool, (size_t)(N * j.nsplit), fuse_task, &j);
  return f->count;
}
