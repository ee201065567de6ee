/* engine/ops_binary.c: element-wise operators with numpy broadcasting: arithmetic, Pow, Mod,
** comparisons, logic, PRelu, Where, and the variadic Min/Max/Sum/Mean. Adjacent dimensions
** that broadcast alike are merged so the inner loops run over long contiguous rows. */
#include "engine/engine_internal.h"

/* -O2's "very cheap" vectoriser skips loops whose trip count is unknown; these need it. */
#if defined(__GNUC__) && !defined(__clang__) /* clang vectorises at -O2 and has no such pragma */
#pragma GCC optimize("tree-vectorize", "vect-cost-model=dynamic")
#endif

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef enum {
  B_ADD, B_SUB, B_MUL, B_DIV, B_POW, B_MOD, B_FMOD, B_PRELU, B_MIN, B_MAX,
  B_EQ, B_LT, B_GT, B_LE, B_GE, B_AND, B_OR, B_XOR, B_WHERE, B_SUM, B_MEAN,
} binary_kind_t;

/* Broadcast iteration over up to 3 inputs: strides per input for the merged dims. */
typedef struct bcast_t {
  int nd;
  int64_t shape[LPQ_MAX_DIMS];
  int64_t st[3][LPQ_MAX_DIMS];
  int nin;
} bcast_t;

typedef struct binary_params_t {
  binary_kind_t kind;
  bcast_t bc[LPQ_MAX_DIMS]; /* Where: one; variadic: one per input after the first */
} binary_params_t;

static int bcast_shape(const gnode_t *n, int nin, const gval_t *const *v, int *ndim, int64_t *shape,
                lpq_error_t *err) {
  int nd = 0;
  for (int i = 0; i < nin; i++)
    if (v[i]->ndim > nd)
      nd = v[i]->ndim;
  for (int j = 0; j < nd; j++) {
    int64_t d = 1;
    for (int i = 0; i < nin; i++) {
      int k = j - (nd - v[i]->ndim);
      int64_t e = k >= 0 ? v[i]->shape[k] : 1;
      if (e == d || e == 1)
        continue;
      if (d != 1)
        return lpq__node_err(err, LPQ_EFORMAT, n, "shapes do not broadcast (dimension %d: %lld and "
                        "%lld)", j, (long long)d, (long long)e);
      d = e;
    }
    shape[j] = d;
  }
  *ndim = nd;
  return 0;
}

/* Strides of each input within the output shape, then merges dims that stay contiguous. */
static void bcast_init(bcast_t *b, int nin, const gval_t *const *v, int nd, const int64_t *shape) {
  int64_t st[3][LPQ_MAX_DIMS];
  for (int i = 0; i < nin; i++) {
    int64_t s = 1;
    for (int j = nd - 1; j >= 0; j--) {
      int k = j - (nd - v[i]->ndim);
      int64_t e = k >= 0 ? v[i]->shape[k] : 1;
      st[i][j] = e == 1 ? 0 : s;
      s *= e;
    }
  }
  /* the output is contiguous, so merging only has to keep every input's pattern */
  b->nin = nin;
  b->nd = 0;
  for (int j = 0; j < nd; j++) {
    if (shape[j] == 1)
      continue; /* size-1 dims move nothing */
    int m = b->nd - 1, merge = m >= 0;
    for (int i = 0; merge && i < nin; i++)
      merge = b->st[i][m] == st[i][j] * shape[j];
    if (merge) {
      b->shape[m] *= shape[j];
      for (int i = 0; i < nin; i++)
        b->st[i][m] = st[i][j];
    } else {
      b->shape[b->nd] = shape[j];
      for (int i = 0; i < nin; i++)
        b->st[i][b->nd] = st[i][j];
      b->nd++;
    }
  }
  if (b->nd == 0) {
    b->nd = 1, b->shape[0] = 1;
    for (int i = 0; i < nin; i++)
      b->st[i][0] = 0;
  }
}

/* Calls row(ctx, off[], yoff, len) for each inner row. */
#define BCAST_ROWS(b, ...)                                                                     \
  do {                                                                                         \
    int64_t idx_[LPQ_MAX_DIMS] = {0}, off_[3] = {0, 0, 0}, yoff_ = 0;                          \
    const int last_ = (b)->nd - 1;                                                             \
    const int64_t len_ = (b)->shape[last_];                                                    \
    int64_t rows_ = 1;                                                                         \
    for (int j_ = 0; j_ < last_; j_++)                                                         \
      rows_ *= (b)->shape[j_];                                                                 \
    for (int64_t r_ = 0; r_ < rows_; r_++, yoff_ += len_) {                                    \
      for (int i_ = 0; i_ < (b)->nin; i_++) {                                                  \
        off_[i_] = 0;                                                                          \
        for (int j_ = 0; j_ < last_; j_++)                                                     \
          off_[i_] += idx_[j_] * (b)->st[i_][j_];                                              \
      }                                                                                        \
      const int64_t o0 = off_[0], o1 = off_[1], o2 = off_[2], yo = yoff_, len = len_;          \
      const int64_t s0 = (b)->st[0][last_], s1 = (b)->st[1][last_];                           \
      const int64_t s2 = (b)->nin > 2 ? (b)->st[2][last_] : 0;                                 \
      (void)o0, (void)s0, (void)o2, (void)s2, (void)o1, (void)s1;                              \
      __VA_ARGS__;                                                                              \
      for (int j_ = last_ - 1; j_ >= 0; j_--) {                                                \
        if (++idx_[j_] < (b)->shape[j_])                                                       \
          break;                                                                               \
        idx_[j_] = 0;                                                                          \
      }                                                                                        \
    }                                                                                          \
  } while (0)

static const struct {
  const char *name;
  binary_kind_t kind;
  unsigned dtypes;
  int to_bool;
} binary_defs[] = {
    {"Add", B_ADD, DT_NUM, 0}, {"Sub", B_SUB, DT_NUM, 0}, {"Mul", B_MUL, DT_NUM, 0},
    {"Div", B_DIV, DT_NUM, 0}, {"Pow", B_POW, DT_NUM, 0}, {"Mod", B_MOD, DT_NUM, 0},
    {"PRelu", B_PRELU, DT(LPQ_DT_F32), 0}, {"Equal", B_EQ, DT_ANY, 1},
    {"Less", B_LT, DT_NUM, 1}, {"Greater", B_GT, DT_NUM, 1}, {"LessOrEqual", B_LE, DT_NUM, 1},
    {"GreaterOrEqual", B_GE, DT_NUM, 1}, {"And", B_AND, DT(LPQ_DT_BOOL), 1},
    {"Or", B_OR, DT(LPQ_DT_BOOL), 1}, {"Xor", B_XOR, DT(LPQ_DT_BOOL), 1},
    {"Min", B_MIN, DT_NUM, 0}, {"Max", B_MAX, DT_NUM, 0}, {"Sum", B_SUM, DT_NUM, 0},
    {"Mean", B_MEAN, DT(LPQ_DT_F32), 0},
};
#define NBINARY (sizeof binary_defs / sizeof binary_defs[0])

static int binary_prepare(lpq_graph_t *g, gnode_t *n, lpq_error_t *err) {
  size_t d = 0;
  while (strcmp(binary_defs[d].name, n->op_type) != 0)
    d++;
  const binary_kind_t kind = binary_defs[d].kind;
  const int variadic = kind == B_MIN || kind == B_MAX || kind == B_SUM || kind == B_MEAN;
  int rc;
  if ((rc = lpq__check_arity(n, variadic ? 1 : 2, variadic ? LPQ_MAX_DIMS : 2, 1, 1, err)))
    return rc;
  const gval_t *v[LPQ_MAX_DIMS + 1];
  for (int i = 0; i < n->nin; i++) {
    if ((rc = lpq__need_dtype(g, n, i, binary_defs[d].dtypes, err)))
      return rc;
    v[i] = gv(g, n->in[i]);
    /* Pow's exponent may differ in type from its base; everything else must match */
    if (i > 0 && v[i]->dtype != v[0]->dtype && kind != B_POW)
      return lpq__node_err(err, LPQ_EFORMAT, n, "inputs have different types (%s, %s)",
                      lpq_dtype_name(v[0]->dtype), lpq_dtype_name(v[i]->dtype));
  }
  binary_params_t *p = calloc(1, sizeof *p);
  if (!p)
    return lpq__node_err(err, LPQ_ENOMEM, n, "out of memory");
  n->params = p;
  p->kind = kind;
  if (kind == B_MOD) {
    int64_t fmod_attr;
    if ((rc = lpq__attr_int(n, "fmod", 0, &fmod_attr, err)))
      return rc;
    if (fmod_attr)
      p->kind = B_FMOD;
    else if (v[0]->dtype == LPQ_DT_F32)
      return lpq__node_err(err, LPQ_EFORMAT, n, "fmod must be 1 for float inputs");
  }
  gval_t slope;
  if (kind == B_PRELU && g->opset < 7 && v[1]->ndim == 1 && v[0]->ndim >= 2 &&
      v[1]->shape[0] == v[0]->shape[1] && v[1]->shape[0] != v[0]->shape[v[0]->ndim - 1]) {
    /* before opset 7 a 1-D slope runs along the channel axis: view it as [C, 1, ..., 1] */
    slope = *v[1];
    slope.ndim = v[0]->ndim - 1;
    for (int i = 1; i < slope.ndim; i++)
      slope.shape[i] = 1;
    v[1] = &slope;
  }
  int nd;
  int64_t shape[LPQ_MAX_DIMS];
  if ((rc = bcast_shape(n, n->nin, v, &nd, shape, err)))
    return rc;
  if (variadic) {
    const gval_t *pair[2];
    gval_t outv = {.ndim = nd};
    memcpy(outv.shape, shape, sizeof shape);
    pair[0] = &outv;
    pair[1] = v[0];
    bcast_init(&p->bc[0], 2, pair, nd, shape);
    for (int i = 1; i < n->nin; i++) {
      pair[1] = v[i];
      bcast_init(&p->bc[i], 2, pair, nd, shape);
    }
  } else {
    bcast_init(&p->bc[0], 2, v, nd, shape);
  }
  return lpq__set_output(g, n, 0, binary_defs[d].to_bool ? LPQ_DT_BOOL : v[0]->dtype, nd, shape, err);
}

static inline float bin_f(binary_kind_t k, float a, float b) {
  switch (k) {
  case B_ADD: case B_SUM: case B_MEAN: return a + b;
  case B_SUB: return a - b;
  case B_MUL: return a * b;
  case B_DIV: return a / b;
  case B_POW: return powf(a, b);
  case B_FMOD: case B_MOD: return fmodf(a, b);
  case B_PRELU: return a < 0.0f ? a * b : a;
  case B_MIN: return isnan(a) || isnan(b) ? NAN : fminf(a, b);
  case B_MAX: return isnan(a) || isnan(b) ? NAN : fmaxf(a, b);
  default: return 0.0f;
  }
}

static inline int64_t bin_i(binary_kind_t k, int64_t a, int64_t b) {
  switch (k) {
  case B_ADD: case B_SUM: return (int64_t)((uint64_t)a + (uint64_t)b);
  case B_SUB: return (int64_t)((uint64_t)a - (uint64_t)b);
  case B_MUL: return (int64_t)((uint64_t)a * (uint64_t)b);
  case B_DIV: return b == 0 || (b == -1 && a == INT64_MIN) ? 0 : a / b; /* never trap */
  case B_FMOD: return b == 0 || b == -1 ? 0 : a % b;
  case B_MOD: {
    if (b == 0 || b == -1)
      return 0;
    int64_t r = a % b;
    return r != 0 && ((r < 0) != (b < 0)) ? r + b : r; /* sign of the divisor, as Python */
  }
  case B_MIN: return a < b ? a : b;
  case B_MAX: return a > b ? a : b;
  default: return 0;
  }
}

static inline int cmp_op(binary_kind_t k, double a, double b) {
  switch (k) {
  case B_EQ: return a == b;
  case B_LT: return a < b;
  case B_GT: return a > b;
  case B_LE: return a <= b;
  case B_GE: return a >= b;
  default: return 0;
  }
}

static double ld(lpq_dtype_t t, const void *p, int64_t i) {
  return t == LPQ_DT_F32 ? ((const float *)p)[i]
         : t == LPQ_DT_I64 ? (double)((const int64_t *)p)[i]
                           : ((const uint8_t *)p)[i];
}

/* One row of a float op, x from a and z from b: the patterns broadcasting makes (both
** contiguous, one of them a scalar) as loops the compiler vectorises, any strides otherwise. */
#define F_ROW(expr)                                                                            \
  do {                                                                                         \
    if (s0 == 1 && s1 == 1) {                                                                  \
      for (int64_t i = 0; i < len; i++) {                                                      \
        const float x = fa[o0 + i], z = fb[o1 + i];                                            \
        fy[yo + i] = (expr);                                                                   \
        (void)x, (void)z;                                                                      \
      }                                                                                        \
    } else if (s0 == 1 && s1 == 0) {                                                           \
      const float z = fb[o1];                                                                  \
      for (int64_t i = 0; i < len; i++) {                                                      \
        const float x = fa[o0 + i];                                                            \
        fy[yo + i] = (expr);                                                                   \
        (void)x, (void)z;                                                                      \
      }                                                                                        \
    } else if (s0 == 0 && s1 == 1) {                                                           \
      const float x = fa[o0];                                                                  \
      for (int64_t i = 0; i < len; i++) {                                                      \
        const float z = fb[o1 + i];                                                            \
        fy[yo + i] = (expr);                                                                   \
        (void)x, (void)z;                                                                      \
      }                                                                                        \
    } else {                                                                                   \
      for (int64_t i = 0; i < len; i++) {                                                      \
        const float x = fa[o0 + i * s0], z = fb[o1 + i * s1];                                  \
        fy[yo + i] = (expr);                                                                   \
        (void)x, (void)z;                                                                      \
      }                                                                                        \
    }                                                                                          \
  } while (0)

/* y = a op b over one broadcast pattern. */
static void binary_apply(const bcast_t *bc, binary_kind_t kind, lpq_dtype_t ta, lpq_dtype_t tb,
                         const void *a, const void *b, void *y) {
  if (kind >= B_EQ && kind <= B_GE) {
    if (ta == LPQ_DT_I64) { /* exact for all int64 values */
      BCAST_ROWS(bc, {
        for (int64_t i = 0; i < len; i++) {
          int64_t x = ((const int64_t *)a)[o0 + i * s0], z = ((const int64_t *)b)[o1 + i * s1];
          ((uint8_t *)y)[yo + i] = kind == B_EQ ? x == z : kind == B_LT ? x < z : kind == B_GT ? x > z
                                                      : kind == B_LE ? x <= z : x >= z;
        }
      });
    } else {
      BCAST_ROWS(bc, {
        for (int64_t i = 0; i < len; i++)
          ((uint8_t *)y)[yo + i] = (uint8_t)cmp_op(kind, ld(ta, a, o0 + i * s0), ld(tb, b, o1 + i * s1));
      });
    }
  } else if (kind == B_AND || kind == B_OR || kind == B_XOR) {
    BCAST_ROWS(bc, {
      for (int64_t i = 0; i < len; i++) {
        int x = ((const uint8_t *)a)[o0 + i * s0] != 0, z = ((const uint8_t *)b)[o1 + i * s1] != 0;
        ((uint8_t *)y)[yo + i] = (uint8_t)(kind == B_AND ? x && z : kind == B_OR ? x || z : x != z);
      }
    });
  } else if (kind == B_POW && (ta != LPQ_DT_F32 || tb != LPQ_DT_F32)) {
    BCAST_ROWS(bc, {
      for (int64_t i = 0; i < len; i++) {
        double r = pow(ld(ta, a, o0 + i * s0), ld(tb, b, o1 + i * s1));
        if (ta == LPQ_DT_F32)
          ((float *)y)[yo + i] = (float)r;
        else
          ((int64_t *)y)[yo + i] = isfinite(r) && fabs(r) < 9.2e18 ? (int64_t)r : 0;
      }
    });
  } else if (ta == LPQ_DT_F32) {
    const float *fa = a, *fb = b;
    float *fy = y;
    if (kind == B_ADD || kind == B_SUM || kind == B_MEAN) {
      BCAST_ROWS(bc, F_ROW(x + z));
    } else if (kind == B_SUB) {
      BCAST_ROWS(bc, F_ROW(x - z));
    } else if (kind == B_MUL) {
      BCAST_ROWS(bc, F_ROW(x * z));
    } else if (kind == B_DIV) {
      BCAST_ROWS(bc, F_ROW(x / z));
    } else if (kind == B_POW) { /* a constant exponent 2 (LayerNorm's variance) is a square */
      BCAST_ROWS(bc, {
        if (s1 == 0 && fb[o1] == 2.0f)
          F_ROW(x * x);
        else
          F_ROW(powf(x, z));
      });
    } else {
      BCAST_ROWS(bc, {
        for (int64_t i = 0; i < len; i++)
          fy[yo + i] = bin_f(kind, fa[o0 + i * s0], fb[o1 + i * s1]);
      });
    }
  } else {
    const int64_t *ia = a, *ib = b;
    int64_t *iy = y;
    BCAST_ROWS(bc, {
      for (int64_t i = 0; i < len; i++)
        iy[yo + i] = bin_i(kind, ia[o0 + i * s0], ib[o1 + i * s1]);
    });
  }
}

/* A two-input op over a slice of the output's first (merged) dim: large tensors split over the
** context's threads. */
typedef struct binary_job_t {
  const bcast_t *bc;
  binary_kind_t kind;
  lpq_dtype_t ta, tb, ty;
  const char *a, *b;
  char *y;
  int64_t per; /* first-dim indices per task */
} binary_job_t;

#define BINARY_SPLIT (1 << 16) /* outputs from which a second thread pays */

static void binary_task(void *arg, size_t task, int tid) {
  (void)tid;
  const binary_job_t *j = arg;
  bcast_t sub = *j->bc;
  const int64_t i0 = (int64_t)task * j->per;
  const int64_t i1 = i0 + j->per < sub.shape[0] ? i0 + j->per : sub.shape[0];
  int64_t inner = 1;
  for (int d = 1; d < sub.nd; d++)
    inner *= sub.shape[d];
  sub.shape[0] = i1 - i0;
  binary_apply(&sub, j->kind, j->ta, j->tb,
               j->a + i0 * sub.st[0][0] * (int64_t)lpq_dtype_size(j->ta),
               j->b + i0 * sub.st[1][0] * (int64_t)lpq_dtype_size(j->tb),
               j->y + i0 * inner * (int64_t)lpq_dtype_size(j->ty));
}

static int binary_run(const kctx_t *k) {
  const binary_params_t *p = k->n->params;
  const gval_t *va = gv(k->g, k->n->in[0]), *y = gv(k->g, k->n->out[0]);
  const int variadic = p->kind == B_MIN || p->kind == B_MAX || p->kind == B_SUM || p->kind == B_MEAN;
  if (!variadic) {
    const gval_t *vb = gv(k->g, k->n->in[1]);
    const int64_t first = p->bc[0].shape[0], threads = lpq__threads_count(k->pool);
    if (threads > 1 && y->count >= BINARY_SPLIT && first >= 2) {
      const int64_t tasks = first < 4 * threads ? first : 4 * threads;
      const binary_job_t j = {&p->bc[0], p->kind, va->dtype, vb->dtype, y->dtype, k->in[0],
                              k->in[1], k->out[0], (first + tasks - 1) / tasks};
      lpq__threads_run(k->pool, (size_t)((first + j.per - 1) / j.per), binary_task, (void *)&j);
      return 0;
    }
    binary_apply(&p->bc[0], p->kind, va->dtype, vb->dtype, k->in[0], k->in[1], k->out[0]);
    return 0;
  }
  /* y = broadcast(in0); then y = y op in_i, in place (y's strides are the output's) */
  const size_t es = lpq_dtype_size(y->dtype);
  const bcast_t *bc = &p->bc[0];
  BCAST_ROWS(bc, {
    for (int64_t i = 0; i < len; i++)
      memcpy((char *)k->out[0] + (yo + i) * (int64_t)es, (const char *)k->in[0] + (o1 + i * s1) * (int64_t)es, es);
  });
  for (int i = 1; i < k->n->nin; i++)
    binary_apply(&p->bc[i], p->kind, y->dtype, y->dtype, k->out[0], k->in[i], k->out[0]);
  if (p->kind == B_MEAN) {
    float *fy = k->out[0];
    for (size_t i = 0; i < y->count; i++)
      fy[i] /= (float)k->n->nin;
  }
  return 0;
}

/* ---- Where(cond, x, y) ---- */

static int where_prepare(lpq_graph_t *g, gnode_t *n, lpq_error_t *err) {
  int rc;
  if ((rc = lpq__check_arity(n, 3, 3, 1, 1, err)) || (rc = lpq__need_dtype(g, n, 0, DT(LPQ_DT_BOOL), err)) ||
      (rc = lpq__need_dtype(g, n, 1, DT_ANY, err)) || (rc = lpq__need_dtype(g, n, 2, DT_ANY, err)))
    return rc;
  const gval_t *v[3] = {gv(g, n->in[0]), gv(g, n->in[1]), gv(g, n->in[2])};
  if (v[1]->dtype != v[2]->dtype)
    return lpq__node_err(err, LPQ_EFORMAT, n, "X and Y have different types");
  binary_params_t *p = calloc(1, sizeof *p);
  if (!p)
    return lpq__node_err(err, LPQ_ENOMEM, n, "out of memory");
  n->params = p;
  p->kind = B_WHERE;
  int nd;
  int64_t shape[LPQ_MAX_DIMS];
  if ((rc = bcast_shape(n, 3, v, &nd, shape, err)))
    return rc;
  bcast_init(&p->bc[0], 3, v, nd, shape);
  return lpq__set_output(g, n, 0, v[1]->dtype, nd, shape, err);
}

static int where_run(const kctx_t *k) {
  const binary_params_t *p = k->n->params;
  const size_t es = lpq_dtype_size(gv(k->g, k->n->out[0])->dtype);
  const uint8_t *c = k->in[0];
  const char *a = k->in[1], *b = k->in[2];
  char *y = k->out[0];
  const bcast_t *bc = &p->bc[0];
  BCAST_ROWS(bc, {
    for (int64_t i = 0; i < len; i++)
      memcpy(y + (yo + i) * (int64_t)es,
             c[o0 + i * s0] ? a + (o1 + i * s1) * (int64_t)es : b + (o2 + i * s2) * (int64_t)es, es);
  });
  return 0;
}

/* ---- Expand(x, shape): x broadcast against a constant shape ---- */

static int expand_prepare(lpq_graph_t *g, gnode_t *n, lpq_error_t *err) {
  int rc;
  int64_t want[LPQ_MAX_DIMS];
  size_t nw;
  if ((rc = lpq__check_arity(n, 2, 2, 1, 1, err)) || (rc = lpq__need_dtype(g, n, 0, DT_ANY, err)) ||
      (rc = lpq__const_ints(g, n, 1, want, LPQ_MAX_DIMS, &nw, err)))
    return rc;
  gval_t sv = {.ndim = (int)nw};
  memcpy(sv.shape, want, nw * sizeof *want);
  const gval_t *x = gv(g, n->in[0]);
  const gval_t *v[2] = {x, &sv};
  int nd;
  int64_t shape[LPQ_MAX_DIMS];
  if ((rc = bcast_shape(n, 2, v, &nd, shape, err)))
    return rc;
  binary_params_t *p = calloc(1, sizeof *p);
  if (!p)
    return lpq__node_err(err, LPQ_ENOMEM, n, "out of memory");
  n->params = p;
  gval_t outv = {.ndim = nd};
  memcpy(outv.shape, shape, sizeof shape);
  const gval_t *pair[2] = {&outv, x};
  bcast_init(&p->bc[0], 2, pair, nd, shape);
  return lpq__set_output(g, n, 0, x->dtype, nd, shape, err);
}

static int expand_run(const kctx_t *k) {
  const binary_params_t *p = k->n->params;
  const size_t es = lpq_dtype_size(gv(k->g, k->n->out[0])->dtype);
  const bcast_t *bc = &p->bc[0];
  BCAST_ROWS(bc, {
    for (int64_t i = 0; i < len; i++)
      memcpy((char *)k->out[0] + (yo + i) * (int64_t)es, (const char *)k->in[0] + (o1 + i * s1) * (int64_t)es, es);
  });
  return 0;
}

static const char *const no_attrs[] = {NULL};
static const char *const mod_attrs[] = {"fmod", NULL};

#define BIN(name) {name, no_attrs, binary_prepare, binary_run}
const op_def_t lpq__ops_binary_table[] = {
    BIN("Add"), BIN("Sub"), BIN("Mul"), BIN("Div"), BIN("Pow"),
    {"Mod", mod_attrs, binary_prepare, binary_run},
    BIN("PRelu"), BIN("Equal"), BIN("Less"), BIN("Greater"), BIN("LessOrEqual"),
    BIN("GreaterOrEqual"), BIN("And"), BIN("Or"), BIN("Xor"), BIN("Min"), BIN("Max"),
    BIN("Sum"), BIN("Mean"),
    {"Where", no_attrs, where_prepare, where_run},
    {"Expand", no_attrs, expand_prepare, expand_run},
    {NULL, NULL, NULL, NULL},
};
