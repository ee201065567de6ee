/* engine/ops_unary.c: element-wise operators of one input (activations, math functions),
** Clip, Cast, Identity, Dropout (inference: identity), Not. */
#include "engine/engine_internal.h"

/* -O2's "very cheap" vectoriser skips loops whose trip count is unknown; these need it. */
#if defined(__GNUC__) && !defined(__clang__) /* clang vectorises at -O2 and has no such pragma */
#pragma GCC optimize("tree-vectorize", "vect-cost-model=dynamic")
#endif

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef enum {
  U_RELU, U_SIGMOID, U_TANH, U_ERF, U_SQRT, U_EXP, U_LOG, U_NEG, U_ABS, U_RECIP, U_FLOOR,
  U_CEIL, U_ROUND, U_SIN, U_COS, U_TAN, U_ASIN, U_ACOS, U_ATAN, U_SINH, U_COSH, U_ASINH,
  U_ACOSH, U_ATANH, U_SOFTPLUS, U_SOFTSIGN, U_SIGN, U_HSIGMOID, U_HSWISH, U_LRELU, U_ELU,
  U_SELU, U_CELU, U_TRELU, U_GELU, U_GELU_TANH, U_SHRINK, U_NOT, U_CLIP, U_SILU, U_XHSIG,
} unary_kind_t;

typedef struct unary_params_t {
  unary_kind_t kind;
  float alpha, beta, gamma;
} unary_params_t;

typedef struct unary_def_t {
  const char *name;
  unary_kind_t kind;
  unsigned dtypes;
  const char *a_name, *b_name; /* attributes read into alpha and beta */
  float a_def, b_def;
} unary_def_t;

static const unary_def_t unary_defs[] = {
    {"Relu", U_RELU, DT_NUM, NULL, NULL, 0, 0},
    {"Sigmoid", U_SIGMOID, DT(LPQ_DT_F32), NULL, NULL, 0, 0},
    {"Tanh", U_TANH, DT(LPQ_DT_F32), NULL, NULL, 0, 0},
    {"Erf", U_ERF, DT(LPQ_DT_F32), NULL, NULL, 0, 0},
    {"Sqrt", U_SQRT, DT(LPQ_DT_F32), NULL, NULL, 0, 0},
    {"Exp", U_EXP, DT(LPQ_DT_F32), NULL, NULL, 0, 0},
    {"Log", U_LOG, DT(LPQ_DT_F32), NULL, NULL, 0, 0},
    {"Neg", U_NEG, DT_NUM, NULL, NULL, 0, 0},
    {"Abs", U_ABS, DT_NUM, NULL, NULL, 0, 0},
    {"Reciprocal", U_RECIP, DT(LPQ_DT_F32), NULL, NULL, 0, 0},
    {"Floor", U_FLOOR, DT(LPQ_DT_F32), NULL, NULL, 0, 0},
    {"Ceil", U_CEIL, DT(LPQ_DT_F32), NULL, NULL, 0, 0},
    {"Round", U_ROUND, DT(LPQ_DT_F32), NULL, NULL, 0, 0},
    {"Sin", U_SIN, DT(LPQ_DT_F32), NULL, NULL, 0, 0},
    {"Cos", U_COS, DT(LPQ_DT_F32), NULL, NULL, 0, 0},
    {"Tan", U_TAN, DT(LPQ_DT_F32), NULL, NULL, 0, 0},
    {"Asin", U_ASIN, DT(LPQ_DT_F32), NULL, NULL, 0, 0},
    {"Acos", U_ACOS, DT(LPQ_DT_F32), NULL, NULL, 0, 0},
    {"Atan", U_ATAN, DT(LPQ_DT_F32), NULL, NULL, 0, 0},
    {"Sinh", U_SINH, DT(LPQ_DT_F32), NULL, NULL, 0, 0},
    {"Cosh", U_COSH, DT(LPQ_DT_F32), NULL, NULL, 0, 0},
    {"Asinh", U_ASINH, DT(LPQ_DT_F32), NULL, NULL, 0, 0},
    {"Acosh", U_ACOSH, DT(LPQ_DT_F32), NULL, NULL, 0, 0},
    {"Atanh", U_ATANH, DT(LPQ_DT_F32), NULL, NULL, 0, 0},
    {"Softplus", U_SOFTPLUS, DT(LPQ_DT_F32), NULL, NULL, 0, 0},
    {"Softsign", U_SOFTSIGN, DT(LPQ_DT_F32), NULL, NULL, 0, 0},
    {"Sign", U_SIGN, DT_NUM, NULL, NULL, 0, 0},
    {"HardSigmoid", U_HSIGMOID, DT(LPQ_DT_F32), "alpha", "beta", 0.2f, 0.5f},
    {"HardSwish", U_HSWISH, DT(LPQ_DT_F32), NULL, NULL, 0, 0},
    {"LeakyRelu", U_LRELU, DT(LPQ_DT_F32), "alpha", NULL, 0.01f, 0},
    {"Elu", U_ELU, DT(LPQ_DT_F32), "alpha", NULL, 1.0f, 0},
    {"Selu", U_SELU, DT(LPQ_DT_F32), "alpha", "gamma", 1.67326319217681884765625f,
     1.05070102214813232421875f},
    {"Celu", U_CELU, DT(LPQ_DT_F32), "alpha", NULL, 1.0f, 0},
    {"ThresholdedRelu", U_TRELU, DT(LPQ_DT_F32), "alpha", NULL, 1.0f, 0},
    {"Gelu", U_GELU, DT(LPQ_DT_F32), NULL, NULL, 0, 0},
    {"Shrink", U_SHRINK, DT(LPQ_DT_F32), "bias", "lambd", 0.0f, 0.5f},
    {"Not", U_NOT, DT(LPQ_DT_BOOL), NULL, NULL, 0, 0},
};
#define NUNARY (sizeof unary_defs / sizeof unary_defs[0])

static const unary_def_t *unary_def(const char *op) {
  for (size_t i = 0; i < NUNARY; i++)
    if (strcmp(unary_defs[i].name, op) == 0)
      return &unary_defs[i];
  return NULL;
}

static int unary_prepare(lpq_graph_t *g, gnode_t *n, lpq_error_t *err) {
  const unary_def_t *d = unary_def(n->op_type);
  int rc;
  if ((rc = lpq__check_arity(n, 1, 1, 1, 1, err)) || (rc = lpq__need_dtype(g, n, 0, d->dtypes, err)))
    return rc;
  unary_params_t *p = calloc(1, sizeof *p);
  if (!p)
    return lpq__node_err(err, LPQ_ENOMEM, n, "out of memory");
  n->params = p;
  p->kind = d->kind;
  if (d->a_name && (rc = lpq__attr_float(n, d->a_name, d->a_def, &p->alpha, err)))
    return rc;
  if (d->b_name && (rc = lpq__attr_float(n, d->b_name, d->b_def, &p->beta, err)))
    return rc;
  if (d->kind == U_GELU) {
    char approx[16];
    if ((rc = lpq__attr_string(n, "approximate", "none", approx, sizeof approx, err)))
      return rc;
    if (strcmp(approx, "tanh") == 0)
      p->kind = U_GELU_TANH;
    else if (strcmp(approx, "none") != 0)
      return lpq__node_err(err, LPQ_EUNSUP, n, "approximate '%s' is not supported", approx);
  }
  const gval_t *x = gv(g, n->in[0]);
  return lpq__set_output(g, n, 0, x->dtype, x->ndim, x->shape, err);
}

/* The float kinds unary_run has no loop or kernel of its own for (Relu, LeakyRelu, Sqrt, Neg,
** Reciprocal, the hard activations and those lpq__kern_math vectorises never reach here). */
static float unary_f(const unary_params_t *p, float x) {
  const float a = p->alpha, b = p->beta;
  switch (p->kind) {
  case U_LOG: return logf(x);
  case U_ABS: return fabsf(x);
  case U_FLOOR: return floorf(x);
  case U_CEIL: return ceilf(x);
  case U_ROUND: return nearbyintf(x); /* ties to even under the default rounding mode */
  case U_SIN: return sinf(x);
  case U_COS: return cosf(x);
  case U_TAN: return tanf(x);
  case U_ASIN: return asinf(x);
  case U_ACOS: return acosf(x);
  case U_ATAN: return atanf(x);
  case U_SINH: return sinhf(x);
  case U_COSH: return coshf(x);
  case U_ASINH: return asinhf(x);
  case U_ACOSH: return acoshf(x);
  case U_ATANH: return atanhf(x);
  case U_SOFTPLUS: return x > 20.0f ? x : log1pf(expf(x));
  case U_SOFTSIGN: return x / (1.0f + fabsf(x));
  case U_SIGN: return x > 0.0f ? 1.0f : x < 0.0f ? -1.0f : 0.0f;
  case U_ELU: return x >= 0.0f ? x : a * expm1f(x);
  case U_SELU: return x > 0.0f ? b * x : b * (a * expf(x) - a);
  case U_CELU: return fmaxf(0.0f, x) + fminf(0.0f, a * expm1f(x / a));
  case U_TRELU: return x > a ? x : 0.0f;
  case U_SHRINK: return x < -b ? x + a : x > b ? x - a : 0.0f;
  case U_CLIP: return fminf(fmaxf(x, a), b);
  case U_NOT: return 0.0f;
  default: break;
  }
  return x;
}

static int64_t unary_i(const unary_params_t *p, int64_t x) {
  switch (p->kind) {
  case U_RELU: return x > 0 ? x : 0;
  case U_NEG: return (int64_t)(0 - (uint64_t)x);
  case U_ABS: return x < 0 ? (int64_t)(0 - (uint64_t)x) : x;
  case U_SIGN: return x > 0 ? 1 : x < 0 ? -1 : 0;
  case U_CLIP: return x < (int64_t)p->alpha ? (int64_t)p->alpha : x > (int64_t)p->beta ? (int64_t)p->beta : x;
  default: return x;
  }
}

/* The activations lpq__kern_math vectorises, and its name for them (-1: none). */
static int math_kind(unary_kind_t kind) {
  switch (kind) {
  case U_SIGMOID: return LPQ_MATH_SIGMOID;
  case U_TANH: return LPQ_MATH_TANH;
  case U_ERF: return LPQ_MATH_ERF;
  case U_EXP: return LPQ_MATH_EXP;
  case U_GELU: return LPQ_MATH_GELU;
  case U_GELU_TANH: return LPQ_MATH_GELU_TANH;
  case U_SILU: return LPQ_MATH_SILU;
  default: return -1;
  }
}

void lpq__unary_silu(gnode_t *n) {
  unary_params_t *p = n->params;
  p->kind = p->kind == U_HSIGMOID ? U_XHSIG : U_SILU; /* x * HardSigmoid(x): HardSwish's export */
}

typedef struct math_job_t {
  int kind; /* lpq__kern_math's, or -1: unary_f32 with p */
  const unary_params_t *p;
  const float *x;
  float *y;
  size_t n;
} math_job_t;

#define MATH_CHUNK 16384 /* elements per task: 64 KiB in, 64 KiB out */

/* y = op(a) over n floats for the ops lpq__kern_math does not take: the cheap ones as plain
** loops the compiler vectorises (MobileNetV3's hard activations), the others one by one. */
static void unary_f32(const unary_params_t *p, const float *a, float *y, size_t n) {
  const float al = p->alpha, be = p->beta;
#define U_LOOP(expr)                                                                           \
  for (size_t i = 0; i < n; i++) {                                                             \
    const float x = a[i];                                                                      \
    y[i] = (expr);                                                                             \
  }
  if (p->kind == U_RELU) {
    U_LOOP(x > 0.0f ? x : 0.0f);
  } else if (p->kind == U_HSIGMOID || p->kind == U_XHSIG) { /* NaN stays NaN */
    lpq__kern_hard(p->kind == U_XHSIG, al, be, a, y, n);
  } else if (p->kind == U_HSWISH) {
    lpq__kern_hard(1, 1.0f / 6.0f, 0.5f, a, y, n);
  } else if (p->kind == U_LRELU) {
    U_LOOP(x >= 0.0f ? x : al * x);
  } else if (p->kind == U_SQRT) {
    U_LOOP(sqrtf(x));
  } else if (p->kind == U_NEG) {
    U_LOOP(-x);
  } else if (p->kind == U_RECIP) {
    U_LOOP(1.0f / x);
  } else {
    for (size_t i = 0; i < n; i++)
      y[i] = unary_f(p, a[i]);
  }
#undef U_LOOP
}

static void math_task(void *arg, size_t task, int tid) {
  (void)tid;
  const math_job_t *j = arg;
  const size_t at = task * MATH_CHUNK, n = j->n - at < MATH_CHUNK ? j->n - at : MATH_CHUNK;
  if (j->kind >= 0)
    lpq__kern_math(j->kind, j->x + at, j->y + at, n);
  else
    unary_f32(j->p, j->x + at, j->y + at, n);
}

static int unary_run(const kctx_t *k) {
  const unary_params_t *p = k->n->params;
  const gval_t *x = gv(k->g, k->n->in[0]);
  const size_t cnt = x->count;
  if (x->dtype == LPQ_DT_F32) { /* vectorised, and split over the context's threads */
    const math_job_t j = {math_kind(p->kind), p, k->in[0], k->out[0], cnt};
    lpq__threads_run(k->pool, (cnt + MATH_CHUNK - 1) / MATH_CHUNK, math_task, (void *)&j);
    return 0;
  } else if (x->dtype == LPQ_DT_I64) {
    const int64_t *a = k->in[0];
    int64_t *y = k->out[0];
    for (size_t i = 0; i < cnt; i++)
      y[i] = unary_i(p, a[i]);
  } else {
    const uint8_t *a = k->in[0];
    uint8_t *y = k->out[0];
    for (size_t i = 0; i < cnt; i++)
      y[i] = !a[i];
  }
  return 0;
}

/* ---- Clip: min/max from inputs (opset >= 11, must be constant) or attributes ---- */

static int clip_prepare(lpq_graph_t *g, gnode_t *n, lpq_error_t *err) {
  int rc;
  if ((rc = lpq__check_arity(n, 1, 3, 1, 1, err)) || (rc = lpq__need_dtype(g, n, 0, DT_NUM, err)))
    return rc;
  const gval_t *x = gv(g, n->in[0]);
  /* clip_params_t first, so graph_opt can read lo/hi when it fuses the Clip */
  struct clip_all {
    clip_params_t c;
    unary_params_t u;
  } *all = calloc(1, sizeof *all);
  if (!all)
    return lpq__node_err(err, LPQ_ENOMEM, n, "out of memory");
  n->params = all;
  float lo = -INFINITY, hi = INFINITY;
  if ((rc = lpq__attr_float(n, "min", -FLT_MAX, &lo, err)) || (rc = lpq__attr_float(n, "max", FLT_MAX, &hi, err)))
    return rc;
  if (x->dtype == LPQ_DT_I64)
    lo = (float)INT64_MIN, hi = (float)INT64_MAX;
  for (int i = 1; i < n->nin && i < 3; i++) {
    if (n->in[i] < 0)
      continue;
    const gval_t *v = gv(g, n->in[i]);
    if (!v->cdata || v->count != 1 || v->dtype != x->dtype)
      return lpq__node_err(err, LPQ_EUNSUP, n, "input %d '%s' must be a constant scalar of the "
                      "input's type", i, v->name);
    float f = v->dtype == LPQ_DT_F32 ? *(float *)v->cdata : (float)*(int64_t *)v->cdata;
    if (i == 1)
      lo = f;
    else
      hi = f;
  }
  all->c.lo = lo, all->c.hi = hi;
  all->u.kind = U_CLIP, all->u.alpha = lo, all->u.beta = hi;
  return lpq__set_output(g, n, 0, x->dtype, x->ndim, x->shape, err);
}

static int clip_run(const kctx_t *k) {
  const clip_params_t *c = k->n->params;
  const gval_t *x = gv(k->g, k->n->in[0]);
  if (x->dtype == LPQ_DT_I64) {
    const int64_t *a = k->in[0];
    int64_t *y = k->out[0];
    const int64_t lo = k->n->nin > 1 && k->in[1] ? *(const int64_t *)k->in[1] : INT64_MIN;
    const int64_t hi = k->n->nin > 2 && k->in[2] ? *(const int64_t *)k->in[2] : INT64_MAX;
    for (size_t i = 0; i < x->count; i++)
      y[i] = a[i] < lo ? lo : a[i] > hi ? hi : a[i];
    return 0;
  }
  const float *a = k->in[0];
  float *y = k->out[0];
  const float lo = c->lo, hi = c->hi;
  for (size_t i = 0; i < x->count; i++) {
    float v = a[i] < lo ? lo : a[i];
    y[i] = v > hi ? hi : v;
  }
  return 0;
}

/* ---- Cast ---- */

static int cast_prepare(lpq_graph_t *g, gnode_t *n, lpq_error_t *err) {
  int rc;
  int64_t to;
  if ((rc = lpq__check_arity(n, 1, 1, 1, 1, err)) || (rc = lpq__need_dtype(g, n, 0, DT_ANY, err)) ||
      (rc = lpq__attr_int(n, "to", 0, &to, err)))
    return rc;
  if (to != LPQ_DT_F32 && to != LPQ_DT_I64 && to != LPQ_DT_BOOL)
    return lpq__node_err(err, LPQ_EUNSUP, n, "attribute 'to' = %lld: only float, int64 and bool are "
                    "supported", (long long)to);
  const gval_t *x = gv(g, n->in[0]);
  return lpq__set_output(g, n, 0, (lpq_dtype_t)to, x->ndim, x->shape, err);
}

static double load_as_double(lpq_dtype_t t, const void *p, size_t i) {
  return t == LPQ_DT_F32 ? ((const float *)p)[i]
         : t == LPQ_DT_I64 ? (double)((const int64_t *)p)[i]
                           : ((const uint8_t *)p)[i] != 0;
}

static int cast_run(const kctx_t *k) {
  const gval_t *x = gv(k->g, k->n->in[0]), *y = gv(k->g, k->n->out[0]);
  if (x->dtype == y->dtype) {
    memcpy(k->out[0], k->in[0], x->count * lpq_dtype_size(x->dtype));
    return 0;
  }
  for (size_t i = 0; i < x->count; i++) {
    if (x->dtype == LPQ_DT_I64 && y->dtype == LPQ_DT_BOOL) {
      ((uint8_t *)k->out[0])[i] = ((const int64_t *)k->in[0])[i] != 0;
      continue;
    }
    double v = load_as_double(x->dtype, k->in[0], i);
    if (y->dtype == LPQ_DT_F32)
      ((float *)k->out[0])[i] = (float)v;
    else if (y->dtype == LPQ_DT_BOOL)
      ((uint8_t *)k->out[0])[i] = v != 0.0;
    else /* out-of-range floats are undefined in ONNX; saturate rather than trap */
      ((int64_t *)k->out[0])[i] = isnan(v) ? 0 : v >= 9.2e18 ? INT64_MAX : v <= -9.2e18 ? INT64_MIN
                                                                                  : (int64_t)v;
  }
  return 0;
}

/* ---- Identity, Dropout (inference mode) ---- */

static int identity_prepare(lpq_graph_t *g, gnode_t *n, lpq_error_t *err) {
  int rc;
  const int dropout = strcmp(n->op_type, "Dropout") == 0;
  if ((rc = lpq__check_arity(n, 1, dropout ? 3 : 1, 1, dropout ? 2 : 1, err)) ||
      (rc = lpq__need_dtype(g, n, 0, DT_ANY, err)))
    return rc;
  if (dropout) {
    int64_t is_test = 1;
    if ((rc = lpq__attr_int(n, "is_test", 1, &is_test, err)))
      return rc;
    if (n->nin > 2 && n->in[2] >= 0) {
      const gval_t *t = gv(g, n->in[2]);
      if (!t->cdata || t->dtype != LPQ_DT_BOOL || t->count != 1)
        return lpq__node_err(err, LPQ_EUNSUP, n, "training_mode must be a constant bool");
      /* ratio 0 drops nothing, in training mode too (the ONNX spec: a copy of the input);
      ** exporters write it for attention dropout left at p = 0 (torchvision's Swin) */
      const gval_t *r = n->nin > 1 && n->in[1] >= 0 ? gv(g, n->in[1]) : NULL;
      const int ratio0 = r && r->cdata && r->count == 1 &&
                         ((r->dtype == LPQ_DT_F32 && *(const float *)r->cdata == 0.0f) ||
                          (r->dtype == LPQ_DT_F64 && *(const double *)r->cdata == 0.0));
      if (*(uint8_t *)t->cdata && !ratio0)
        return lpq__node_err(err, LPQ_EUNSUP, n,
                             "training_mode = true with a ratio other than a constant 0 is not "
                             "supported (random dropout at inference)");
    }
    if (!is_test)
      return lpq__node_err(err, LPQ_EUNSUP, n, "is_test = 0 (training) is not supported");
  }
  const gval_t *x = gv(g, n->in[0]);
  if ((rc = lpq__set_output(g, n, 0, x->dtype, x->ndim, x->shape, err)))
    return rc;
  return lpq__set_output(g, n, 1, LPQ_DT_BOOL, x->ndim, x->shape, err);
}

static int identity_run(const kctx_t *k) {
  const gval_t *x = gv(k->g, k->n->in[0]);
  memcpy(k->out[0], k->in[0], x->count * lpq_dtype_size(x->dtype));
  if (k->n->nout > 1 && k->out[1])
    memset(k->out[1], 1, x->count); /* the mask: nothing dropped */
  return 0;
}

static const char *const no_attrs[] = {NULL};
static const char *const hsig_attrs[] = {"alpha", "beta", NULL};
static const char *const alpha_attrs[] = {"alpha", NULL};
static const char *const selu_attrs[] = {"alpha", "gamma", NULL};
static const char *const gelu_attrs[] = {"approximate", NULL};
static const char *const shrink_attrs[] = {"bias", "lambd", NULL};
static const char *const clip_attrs[] = {"min", "max", NULL};
static const char *const cast_attrs[] = {"to", "saturate", NULL};
static const char *const dropout_attrs[] = {"ratio", "seed", "is_test", NULL};

#define UNARY(name, attrs) {name, attrs, unary_prepare, unary_run}
const op_def_t lpq__ops_unary_table[] = {
    UNARY("Relu", no_attrs), UNARY("Sigmoid", no_attrs), UNARY("Tanh", no_attrs),
    UNARY("Erf", no_attrs), UNARY("Sqrt", no_attrs), UNARY("Exp", no_attrs),
    UNARY("Log", no_attrs), UNARY("Neg", no_attrs), UNARY("Abs", no_attrs),
    UNARY("Reciprocal", no_attrs), UNARY("Floor", no_attrs), UNARY("Ceil", no_attrs),
    UNARY("Round", no_attrs), UNARY("Sin", no_attrs), UNARY("Cos", no_attrs),
    UNARY("Tan", no_attrs), UNARY("Asin", no_attrs), UNARY("Acos", no_attrs),
    UNARY("Atan", no_attrs), UNARY("Sinh", no_attrs), UNARY("Cosh", no_attrs),
    UNARY("Asinh", no_attrs), UNARY("Acosh", no_attrs), UNARY("Atanh", no_attrs),
    UNARY("Softplus", no_attrs), UNARY("Softsign", no_attrs), UNARY("Sign", no_attrs),
    UNARY("HardSigmoid", hsig_attrs), UNARY("HardSwish", no_attrs),
    UNARY("LeakyRelu", alpha_attrs), UNARY("Elu", alpha_attrs), UNARY("Selu", selu_attrs),
    UNARY("Celu", alpha_attrs), UNARY("ThresholdedRelu", alpha_attrs),
    UNARY("Gelu", gelu_attrs), UNARY("Shrink", shrink_attrs), UNARY("Not", no_attrs),
    {"Clip", clip_attrs, clip_prepare, clip_run},
    {"Cast", cast_attrs, cast_prepare, cast_run},
    {"Identity", no_attrs, identity_prepare, identity_run},
    {"Dropout", dropout_attrs, identity_prepare, identity_run},
    {NULL, NULL, NULL, NULL},
};
