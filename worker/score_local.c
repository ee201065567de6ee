/* worker/score_local.c: the features a local term's InfoNCE is taken over (worker.h,
** lpq_local_mode_t): a layer's whole output row (exact), a fixed signed fold of it (projected)
** or its average pooling (pooled). The FP side goes through the same reduction once, when the
** scorer is created; a candidate's on every evaluation. */
#include "worker/worker_internal.h"
#include "worker/worker.h"

/* the fold's and the pooling's loops need the vectoriser at -O2 (as loss.c) */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("tree-vectorize", "vect-cost-model=dynamic")
#endif

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* the names are the job settings' (common/job.c: local_terms), in lpq_local_mode_t's order */
const char *lpq_local_mode_name(lpq_local_mode_t m) { return lpq_local_terms_name((int)m); }

int lpq_local_mode_parse(const char *text, lpq_local_mode_t *m, lpq_error_t *err) {
  for (int i = 0; text && lpq_local_terms_name(i); i++)
    if (strcmp(text, lpq_local_terms_name(i)) == 0) {
      *m = (lpq_local_mode_t)i;
      return 0;
    }
  return lpq_errorf(err, LPQ_EINVAL, "local terms '%s': expected exact, projected or pooled",
                    text ? text : "(null)");
}

/* splitmix64: the fold's signs, the same on every machine and run */
static uint64_t mix(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static int setup_projected(lpq__layer_ref_t *r, size_t layer, size_t k) {
  if (r->dim <= k)
    return 0; /* one value per component: the fold would only permute signs */
  if (!(r->sign = malloc(r->dim * sizeof *r->sign)))
    return LPQ_ENOMEM;
  uint64_t st = 0x6c70712d6c6f63ull ^ ((uint64_t)layer << 32); /* "lpq-loc", the layer */
  for (size_t d = 0; d < r->dim; d += 64) {
    uint64_t bits = mix(&st);
    for (size_t b = 0; b < 64 && d + b < r->dim; b++)
      r->sign[d + b] = (bits >> b) & 1 ? 1.0f : -1.0f;
  }
  r->rdim = k;
  return 0;
}

static size_t isqrt(size_t n) {
  size_t s = 1;
  while ((s + 1) * (s + 1) <= n)
    s++;
  return s;
}

static void setup_pooled(lpq__layer_ref_t *r, const lpq_layer_t *L, size_t cells) {
  const int64_t *sh = L->out_shape;
  if (L->out_ndim == 4 && (size_t)(sh[1] * sh[2] * sh[3]) == r->dim) {
    size_t side = isqrt(cells);
    r->channels = (size_t)sh[1], r->h = (size_t)sh[2], r->w = (size_t)sh[3];
    r->ph = r->h < side ? r->h : side;
    r->pw = r->w < side ? r->w : side;
  } else if (L->out_ndim == 3 && (size_t)(sh[1] * sh[2]) == r->dim) {
    r->h = (size_t)sh[1], r->channels = (size_t)sh[2], r->w = 0;
    r->ph = r->h < cells ? r->h : cells;
    r->pw = 1;
  }
  if (r->channels && r->ph * r->pw * r->channels < r->dim)
    r->rdim = r->channels * r->ph * r->pw;
  else
    r->channels = 0; /* nothing to pool */
}

int lpq__local_setup(lpq_scorer_t *s, size_t layer, size_t dim, lpq_error_t *err) {
  lpq__layer_ref_t *r = &s->ref[layer];
  r->dim = r->rdim = dim;
  size_t k = s->opts.local_dim;
  if (s->opts.local == LPQ_LOCAL_PROJECTED &&
      setup_projected(r, layer, k ? k : LPQ_LOCAL_DIM_DEFAULT) != 0)
    return lpq_errorf(err, LPQ_ENOMEM, "scorer: out of memory for layer %zu's projection", layer);
  if (s->opts.local == LPQ_LOCAL_POOLED)
    setup_pooled(r, lpq_graph_layer(s->g, layer), k ? k : 16);
  const lpq_layer_t *L = lpq_graph_layer(s->g, layer);
  const lpq_layer_t *N = layer + 1 < lpq_graph_num_layers(s->g) ? lpq_graph_layer(s->g, layer + 1)
                                                                 : NULL;
  /* the exact rows are normalised, not reduced: nothing to share with the quantizer's pass */
  r->feeds_next = N && L->out_value >= 0 && N->in_value == L->out_value && r->rdim < r->dim;
  return 0;
}

/* PyTorch's adaptive pooling windows: cell o of p over n covers [o n / p, ceil((o + 1) n / p)) */
static size_t win_lo(size_t o, size_t n, size_t p) { return o * n / p; }
static size_t win_hi(size_t o, size_t n, size_t p) { return ((o + 1) * n + p - 1) / p; }

static void pool_row(const lpq__layer_ref_t *r, const float *y, float *out) {
  if (r->w) { /* [C, H, W] -> [C, ph, pw] */
    for (size_t c = 0; c < r->channels; c++) {
      const float *m = y + c * r->h * r->w;
      for (size_t oy = 0; oy < r->ph; oy++)
        for (size_t ox = 0; ox < r->pw; ox++) {
          size_t y0 = win_lo(oy, r->h, r->ph), y1 = win_hi(oy, r->h, r->ph);
          size_t x0 = win_lo(ox, r->w, r->pw), x1 = win_hi(ox, r->w, r->pw);
          float acc = 0;
          for (size_t i = y0; i < y1; i++)
            for (size_t j = x0; j < x1; j++)
              acc += m[i * r->w + j];
          *out++ = acc / (float)((y1 - y0) * (x1 - x0));
        }
    }
    return;
  }
  /* [T, E] -> [ph, E]: tokens grouped, each feature averaged over its group */
  for (size_t o = 0; o < r->ph; o++) {
    size_t t0 = win_lo(o, r->h, r->ph), t1 = win_hi(o, r->h, r->ph);
    float *dst = out + o * r->channels;
    memset(dst, 0, r->channels * sizeof *dst);
    for (size_t t = t0; t < t1; t++)
      for (size_t e = 0; e < r->channels; e++)
        dst[e] += y[t * r->channels + e];
    float inv = 1.0f / (float)(t1 - t0);
    for (size_t e = 0; e < r->channels; e++)
      dst[e] *= inv;
  }
}

/* out[j] = sum over d = j (mod k) of sign[d] y[d], the terms added in the order of d. sign[d]
** y[d] is +-y[d] exactly, so a fused multiply-add rounds as the multiply and add do: every
** instruction set gives the same bits (tests/test_score_local.c). */
#define FOLD_BODY                                                                                 \
  size_t first = dim < k ? dim : k;                                                              \
  for (size_t j = 0; j < first; j++)                                                             \
    out[j] = sign[j] * y[j];                                                                     \
  for (size_t j = first; j < k; j++)                                                             \
    out[j] = 0;                                                                                  \
  for (size_t d = k; d < dim; d += k) {                                                          \
    size_t n = dim - d < k ? dim - d : k;                                                        \
    const float *ys = y + d, *ss = sign + d;                                                     \
    for (size_t j = 0; j < n; j++)                                                               \
      out[j] += ss[j] * ys[j];                                                                   \
  }

typedef void fold_fn(const float *restrict y, const float *restrict sign, size_t dim, size_t k,
                     float *restrict out);

static void fold_row(const float *restrict y, const float *restrict sign, size_t dim, size_t k,
                     float *restrict out) {
  FOLD_BODY
}

#if defined(__x86_64__) && defined(__GNUC__)
/* The same loop compiled for AVX2 and AVX-512: baseline x86-64 (SSE, 4 lanes) made the fold
** the slowest part of a projected local term, ~2 values per ns. */
__attribute__((target("avx2,fma"))) static void fold_row_avx2(const float *restrict y,
                                                                const float *restrict sign,
                                                                size_t dim, size_t k,
                                                                float *restrict out) {
  FOLD_BODY
}

__attribute__((target("avx512f,fma"))) static void fold_row_avx512(const float *restrict y,
                                                                     const float *restrict sign,
                                                                     size_t dim, size_t k,
                                                                     float *restrict out) {
  FOLD_BODY
}
#endif

/* level: 0 plain C, 1 AVX2, 2 AVX-512, -1 the widest this CPU runs (LPQ_SIMD=scalar|avx2
** lowers it, as for lp_quantize_f32) */
static fold_fn *fold_kernel(int level) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (level < 0)
    level = lpq__simd_level();
  if (level >= 2 && __builtin_cpu_supports("avx512f"))
    return fold_row_avx512;
  if (level == 1 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    return fold_row_avx2;
#endif
  (void)level;
  return fold_row;
}

int lpq__fold_rows(const float *y, const float *sign, size_t rows, size_t dim, size_t k,
                   float *out, int level) {
  fold_fn *f = fold_kernel(level);
  for (size_t i = 0; i < rows; i++)
    f(y + i * dim, sign, dim, k, out + i * k);
#if defined(__x86_64__) && defined(__GNUC__)
  return f == fold_row_avx512 ? 2 : f == fold_row_avx2 ? 1 : 0;
#else
  return 0;
#endif
}

int lpq__local_rows(lpq_scorer_t *s, size_t layer, const float *y, float *dst,
                    lpq_error_t *err) {
  const lpq__layer_ref_t *r = &s->ref[layer];
  atomic_fetch_add_explicit(&s->local_rows, 1, memory_order_relaxed);
  if (r->rdim == r->dim)
    return lpq_normalize_rows_to(dst, y, s->batch, r->dim, err);
  if (r->sign)
    lpq__fold_rows(y, r->sign, s->batch, r->dim, r->rdim, dst, -1);
  else
    for (size_t i = 0; i < s->batch; i++)
      pool_row(r, y + i * r->dim, dst + i * r->rdim);
  /* a NaN or Inf of y reaches the reduced row (sums and averages keep them) */
  return lpq_normalize_rows(dst, s->batch, r->rdim, err);
}

int lpq__local_term(lpq_scorer_t *s, size_t layer, const float *y, const lp_quantizer_t *q,
                    float *qdst, float *buf, float *scratch, double *term, lpq_error_t *err) {
  const lpq__layer_ref_t *r = &s->ref[layer];
  int rc = 0;
  if (q && r->rdim < r->dim) {
    /* a sample's row (at most a few hundred KB) is quantized, then reduced from the cache */
    fold_fn *f = r->sign ? fold_kernel(-1) : NULL;
    atomic_fetch_add_explicit(&s->local_rows, 1, memory_order_relaxed);
    for (size_t i = 0; i < s->batch && rc == 0; i++) {
      const float *yi = y + i * r->dim;
      rc = lp_quantize_f32(q, yi, qdst + i * r->dim, r->dim, NULL);
      if (f)
        f(yi, r->sign, r->dim, r->rdim, buf + i * r->rdim);
      else
        pool_row(r, yi, buf + i * r->rdim);
    }
    if (rc == 0)
      rc = lpq_normalize_rows(buf, s->batch, r->rdim, err);
    else if ((rc = lpq__local_rows(s, layer, y, buf, err)) == 0) { /* a NaN: the output's */
      lp_quantize_f32(q, y, qdst, s->batch * r->dim, err); /* else the quantizer's message */
      return lpq_error_prefix(err, "layer %zu input: ", layer + 1);
    }
  } else {
    rc = lpq__local_rows(s, layer, y, buf, err);
    if (rc == 0 && q && (rc = lp_quantize_f32(q, y, qdst, s->batch * r->dim, err)) != 0)
      return lpq_error_prefix(err, "layer %zu input: ", layer + 1);
  }
  if (rc != 0)
    return lpq_error_prefix(err, "layer %zu output: ", layer);
  *term = lpq_infonce_normalized(buf, r->out_norm, s->batch, r->rdim, s->opts.temperature,
                                 scratch);
  return 0;
}
