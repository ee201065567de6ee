/* worker/loss.c: the InfoNCE contrastive loss, the core of L_CO (DESIGN section 2). */
#include "worker/worker.h"
#include "worker/worker_internal.h"

/* -O2's "very cheap" vectoriser skips loops whose trip count is unknown (the rows' scaling,
** the sums of squares' 8 partial sums); these need it. Baseline x86-64 has no FMA, so the
** vectorised arithmetic is the scalar one. */
#if defined(__GNUC__) && !defined(__clang__) /* clang vectorises at -O2 and has no such pragma */
#pragma GCC optimize("tree-vectorize", "vect-cost-model=dynamic")
#endif

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Sum of squares in double, over 8 interleaved partial sums added in a fixed order: one running
** sum was a chain of dependent adds (4 cycles each) over every layer output of every candidate. */
static double sum_squares(const float *x, size_t n) {
  double acc[8] = {0};
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; k++)
      acc[k] += (double)x[i + k] * (double)x[i + k];
  for (int k = 0; i < n; i++, k++)
    acc[k] += (double)x[i] * (double)x[i];
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

int lpq_normalize_rows_to(float *dst, const float *src, size_t rows, size_t dim,
                          lpq_error_t *err) {
  for (size_t r = 0; r < rows; r++) {
    const float *row = src + r * dim;
    float *out = dst + r * dim;
    double ss = sum_squares(row, dim);
    if (!isfinite(ss)) {
      /* say which value and what it is (it said "NaN or Inf"); floats' squares cannot
      ** overflow a double, so one of them is not finite */
      size_t i = 0;
      while (i + 1 < dim && isfinite(row[i]))
        i++;
      return lpq_errorf(err, LPQ_ENAN, "contrastive loss: row %zu, value %zu is %s", r, i,
                        lpq_nonfinite_name(row[i]));
    }
    if (ss == 0.0) {
      if (out != row)
        memcpy(out, row, dim * sizeof *out);
      continue;
    }
    float inv = (float)(1.0 / sqrt(ss));
    for (size_t i = 0; i < dim; i++)
      out[i] = row[i] * inv;
  }
  return 0;
}

int lpq_normalize_rows(float *x, size_t rows, size_t dim, lpq_error_t *err) {
  return lpq_normalize_rows_to(x, x, rows, dim, err);
}

/* One row of S / T: mx + log(sum_j exp(s_j / T - mx)), mx = max_j s_j / T (the softmax's
** normaliser, -log of which at the positive is the row's term). The plain C version: */
static double row_lse_scalar(const float *s, size_t n, double inv_t) {
  double mx = -INFINITY;
  for (size_t j = 0; j < n; j++)
    mx = fmax(mx, (double)s[j] * inv_t);
  double sum = 0.0;
  for (size_t j = 0; j < n; j++)
    sum += exp((double)s[j] * inv_t - mx);
  return mx + log(sum);
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
/* glibc's libmvec: exp over 4 doubles (AVX2), < 4 ulp; one ifunc-chosen body on every
** AVX2+FMA CPU, so AVX2 and AVX-512 machines compute the same sums */
__m256d _ZGVdN4v_exp(__m256d x);

/* The same with 4 lanes: the max over the floats (s -> s / T is increasing, so it is the scalar
** max exactly), exp from libmvec, 4 partial sums added in a fixed order; padding lanes hold
** -inf (exp 0). The scalar loop's exp calls were ~2/3 of a local term. */
__attribute__((target("avx2,fma"))) static double row_lse_avx2(const float *s, size_t n,
                                                                 double inv_t) {
  __m256 m8 = _mm256_set1_ps(-INFINITY);
  size_t j = 0;
  for (; j + 8 <= n; j += 8)
    m8 = _mm256_max_ps(m8, _mm256_loadu_ps(s + j));
  float lanes[8], m = -INFINITY;
  _mm256_storeu_ps(lanes, m8);
  for (int k = 0; k < 8; k++)
    m = lanes[k] > m ? lanes[k] : m;
  for (; j < n; j++)
    m = s[j] > m ? s[j] : m;
  const double mx = (double)m * inv_t;
  const __m256d vt = _mm256_set1_pd(inv_t), vmx = _mm256_set1_pd(mx);
  __m256d acc = _mm256_setzero_pd();
  for (j = 0; j < n; j += 4) {
    __m128 f;
    if (j + 4 <= n) {
      f = _mm_loadu_ps(s + j);
    } else {
      float t[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
      memcpy(t, s + j, (n - j) * sizeof *t);
      f = _mm_loadu_ps(t);
    }
    __m256d x = _mm256_sub_pd(_mm256_mul_pd(_mm256_cvtps_pd(f), vt), vmx);
    acc = _mm256_add_pd(acc, _ZGVdN4v_exp(x));
  }
  double a[4];
  _mm256_storeu_pd(a, acc);
  return mx + log((a[0] + a[2]) + (a[1] + a[3]));
}

#endif

double lpq_infonce_normalized(const float *qn, const float *pn, size_t batch, size_t dim,
                              double temperature, float *scratch) {
  /* S = Qn Pn^T: S[i][j] = q_i . p_j */
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)batch, (int)batch, (int)dim, 1.0f, qn,
              (int)dim, pn, (int)dim, 0.0f, scratch, (int)batch);
  const double inv_t = 1.0 / temperature;
  double (*row_lse)(const float *, size_t, double) = row_lse_scalar;
#if defined(__x86_64__) && defined(__GNUC__)
  if (lpq__simd_level() >= 1)
    row_lse = row_lse_avx2;
#endif
  double total = 0.0;
  for (size_t i = 0; i < batch; i++) {
    const float *s = scratch + i * batch;
    /* -log softmax at the positive */
    total += row_lse(s, batch, inv_t) - (double)s[i] * inv_t;
  }
  return total / (double)batch;
}

int lpq_infonce(const float *q, const float *p, size_t batch, size_t dim, double temperature,
                double *loss, lpq_error_t *err) {
  if (q == NULL || p == NULL || loss == NULL)
    return lpq_errorf(err, LPQ_EINVAL, "contrastive loss: NULL argument");
  if (batch == 0 || dim == 0)
    return lpq_errorf(err, LPQ_EINVAL, "contrastive loss: empty batch (%zu x %zu)", batch, dim);
  if (!(temperature > 0.0) || !isfinite(temperature))
    return lpq_errorf(err, LPQ_EINVAL, "contrastive loss: temperature %g must be > 0",
                      temperature);
  if (batch > ((size_t)1 << 16) || dim > (size_t)INT32_MAX / batch)
    return lpq_errorf(err, LPQ_ERANGE, "contrastive loss: %zu x %zu is too large", batch, dim);
  float *qn = malloc(batch * dim * sizeof *qn), *pn = malloc(batch * dim * sizeof *pn);
  float *s = malloc(batch * batch * sizeof *s);
  int rc = 0;
  if (!qn || !pn || !s) {
    rc = lpq_errorf(err, LPQ_ENOMEM, "contrastive loss: out of memory");
    goto done;
  }
  for (size_t i = 0; i < batch * dim; i++) {
    qn[i] = q[i];
    pn[i] = p[i];
  }
  if ((rc = lpq_normalize_rows(qn, batch, dim, err)) != 0 ||
      (rc = lpq_normalize_rows(pn, batch, dim, err)) != 0)
    goto done;
  *loss = lpq_infonce_normalized(qn, pn, batch, dim, temperature, s);
done:
  free(qn);
  free(pn);
  free(s);
  return rc;
}

int lpq__simd_level(void) {
  int level = lp_simd_level(); /* the worker's kernels need FMA as well */
#if defined(__x86_64__) && defined(__GNUC__)
  if (level > 0 && !__builtin_cpu_supports("fma"))
    level = 0;
#endif
  return level;
}
