/* engine/ops_gemm.c: Gemm and MatMul (batched, numpy broadcasting) through OpenBLAS sgemm; a
** Gemm or MatMul with a constant weight (a classifier, a transformer's linear layers) through
** lpq's kernel (ops_sgemm.c) where it has one: the weight packed once at load (a hook's per run),
** the activations per run, the work split over the threads. */
#include "engine/engine_internal.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

static const char *const gemm_attrs[] = {"alpha", "beta", "transA", "transB", NULL};

static int gemm_prepare(lpq_graph_t *g, gnode_t *n, lpq_error_t *err) {
  int rc;
  if ((rc = lpq__check_arity(n, 2, 3, 1, 1, err)) || (rc = lpq__need_dtype(g, n, 0, DT(LPQ_DT_F32), err)) ||
      (rc = lpq__need_dtype(g, n, 1, DT(LPQ_DT_F32), err)))
    return rc;
  gemm_params_t *p = calloc(1, sizeof *p);
  if (!p)
    return lpq__node_err(err, LPQ_ENOMEM, n, "out of memory");
  n->params = p;
  int64_t ta, tb;
  if ((rc = lpq__attr_int(n, "transA", 0, &ta, err)) || (rc = lpq__attr_int(n, "transB", 0, &tb, err)) ||
      (rc = lpq__attr_float(n, "alpha", 1.0f, &p->alpha, err)) ||
      (rc = lpq__attr_float(n, "beta", 1.0f, &p->beta, err)))
    return rc;
  p->trans_a = ta != 0, p->trans_b = tb != 0;
  const gval_t *a = gv(g, n->in[0]), *b = gv(g, n->in[1]);
  if (a->ndim != 2 || b->ndim != 2)
    return lpq__node_err(err, LPQ_EFORMAT, n, "A and B must be 2-D (ranks %d and %d)", a->ndim,
                    b->ndim);
  p->M = (size_t)(p->trans_a ? a->shape[1] : a->shape[0]);
  p->K = (size_t)(p->trans_a ? a->shape[0] : a->shape[1]);
  size_t kb = (size_t)(p->trans_b ? b->shape[1] : b->shape[0]);
  p->N = (size_t)(p->trans_b ? b->shape[0] : b->shape[1]);
  if (kb != p->K)
    return lpq__node_err(err, LPQ_EFORMAT, n, "inner dimensions differ (%zu and %zu)", p->K, kb);
  if (n->nin > 2 && n->in[2] >= 0) {
    if ((rc = lpq__need_dtype(g, n, 2, DT(LPQ_DT_F32), err)))
      return rc;
    const gval_t *c = gv(g, n->in[2]);
    int64_t cr = c->ndim == 2 ? c->shape[0] : 1, cc = c->ndim >= 1 ? c->shape[c->ndim - 1] : 1;
    if (c->ndim > 2 || (cr != 1 && cr != (int64_t)p->M) || (cc != 1 && cc != (int64_t)p->N))
      return lpq__node_err(err, LPQ_EFORMAT, n, "C does not broadcast to [%zu, %zu]", p->M, p->N);
    p->c_ndim = 2, p->c_shape[0] = cr, p->c_shape[1] = cc;
  }
  int64_t shape[2] = {(int64_t)p->M, (int64_t)p->N};
  return lpq__set_output(g, n, 0, LPQ_DT_F32, 2, shape, err);
}

#define GEMM_TASK_COLS 128 /* columns a task: its B panels packed per run when hooked */

/* Columns [q0, q0 + cols) of B (w as stored: [N, K] when transB) as lpq__kern_sgemm_packed's
** panels of SGEMM_NR columns over all K, k-major, zero past column N. */
static void pack_cols(size_t N, size_t K, int trans_b, const float *w, size_t q0, size_t cols,
                      float *bp) {
  for (size_t q = q0; q < q0 + cols; q += SGEMM_NR)
    for (size_t k = 0; k < K; k++)
      for (size_t c = q; c < q + SGEMM_NR; c++)
        *bp++ = c >= N ? 0.0f : trans_b ? w[c * K + k] : w[k * N + c];
}

/* n's constant weight w (N x K; [N, K] when trans_b, else [K, N]) packed into n->wpack in full
** panels, and n's scratch raised to `scratch` floats a thread. */
static int prepack(gnode_t *n, size_t N, size_t K, int trans_b, const float *w, size_t scratch,
                   lpq_error_t *err) {
  const size_t cols = (N + SGEMM_NR - 1) / SGEMM_NR * SGEMM_NR;
  if (!(n->wpack = malloc((cols * K + 16) * sizeof *n->wpack)))
    return lpq__node_err(err, LPQ_ENOMEM, n, "out of memory packing the weights");
  pack_cols(N, K, trans_b, w, 0, cols, n->wpack);
  if (n->scratch_floats < scratch)
    n->scratch_floats = scratch;
  return 0;
}

/* The constant B of a Gemm packed for lpq's kernel at load; A is packed per run in scratch,
** and a B a hook swaps in is packed per run too (so hooked and plain runs give the same bits). */
int lpq__gemm_prepack(lpq_graph_t *g, gnode_t *n, lpq_error_t *err) {
  const gemm_params_t *p = n->params;
  const float *w = n->wdata ? n->wdata : (const float *)gv(g, n->in[1])->cdata;
  if (!w || !p || p->trans_a || !lpq__sgemm_packs_a() || !p->M || !p->N || !p->K)
    return 0;
  return prepack(n, p->N, p->K, p->trans_b, w,
                 lpq__sgemm_packed_a_floats(p->M, p->K) + GEMM_TASK_COLS * p->K + 32, err);
}

typedef struct gemm_job_t {
  const kctx_t *k;
  const gemm_params_t *p;
  const float *Ap, *Bp; /* Bp: B packed at load, or NULL: each task packs its columns */
  size_t b_off;         /* where in a thread's scratch a task packs them */
  float *y;
} gemm_job_t;

static void gemm_cols_task(void *arg, size_t task, int tid) {
  const gemm_job_t *j = arg;
  const size_t N = j->p->N, K = j->p->K, q0 = task * GEMM_TASK_COLS;
  const size_t cols = N - q0 < GEMM_TASK_COLS ? N - q0 : GEMM_TASK_COLS;
  const float *bp = j->Bp ? j->Bp + q0 * K : NULL;
  if (!bp) {
    float *own = j->k->scratch + (size_t)tid * j->k->scratch_stride + j->b_off;
    pack_cols(j->p->N, K, j->p->trans_b, j->k->weight, q0, cols, own);
    bp = own;
  }
  lpq__kern_sgemm_packed(j->p->M, cols, K, j->Ap, bp, j->y + q0, N);
}

/* y = alpha * A x B + beta * C by lpq's kernel wherever B was packed at load (with the packed
** B, or the hook's packed per run): 0, or 1 when the kernel does not apply. */
static int gemm_packed_run(const kctx_t *k, const float *c) {
  const gemm_params_t *p = k->n->params;
  const float *base = k->n->wdata ? k->n->wdata : (const float *)k->in[1];
  if (!k->n->wpack || !p->K || !k->scratch || !k->weight)
    return 1;
  float *Ap = k->scratch;
  lpq__sgemm_pack_a(p->M, p->K, k->in[0], p->K, Ap);
  gemm_job_t j = {k, p, Ap, k->weight == base ? k->n->wpack : NULL,
                  lpq__sgemm_packed_a_floats(p->M, p->K) + 16, k->out[0]};
  lpq__threads_run(k->pool, (p->N + GEMM_TASK_COLS - 1) / GEMM_TASK_COLS, gemm_cols_task, &j);
  float *y = k->out[0];
  const size_t rs = c && p->c_shape[0] != 1 ? (size_t)p->c_shape[1] : 0;
  const size_t cs = c && p->c_shape[1] != 1 ? 1 : 0;
  const float beta = c ? p->beta : 0.0f;
  if (p->alpha != 1.0f || beta != 0.0f)
    for (size_t i = 0; i < p->M; i++)
      for (size_t n = 0; n < p->N; n++)
        y[i * p->N + n] = p->alpha * y[i * p->N + n] +
                          (beta != 0.0f ? beta * c[i * rs + n * cs] : 0.0f);
  return 0;
}

/* y[i][j] += shift[j]: the bias hook's shift, before any fused activation. */
static void add_out_shift(float *y, size_t rows, size_t cols, const float *shift) {
  if (!shift)
    return;
  for (size_t i = 0; i < rows; i++)
    for (size_t j = 0; j < cols; j++)
      y[i * cols + j] += shift[j];
}

static int gemm_run(const kctx_t *k) {
  const gemm_params_t *p = k->n->params;
  float *y = k->out[0];
  float beta = 0.0f;
  const float *c = k->n->nin > 2 ? k->in[2] : NULL;
  if (p->M && p->N && gemm_packed_run(k, c) == 0) {
    add_out_shift(y, p->M, p->N, k->out_shift);
    lpq__apply_act(k->n, y, p->M * p->N);
    return 0;
  }
  if (c && p->beta != 0.0f) {
    const size_t rs = p->c_shape[0] == 1 ? 0 : (size_t)p->c_shape[1];
    const size_t cs = p->c_shape[1] == 1 ? 0 : 1;
    for (size_t i = 0; i < p->M; i++)
      for (size_t j = 0; j < p->N; j++)
        y[i * p->N + j] = p->beta * c[i * rs + j * cs];
    beta = 1.0f;
  }
  if (p->M == 0 || p->N == 0)
    return 0;
  if (p->K == 0) {
    if (beta == 0.0f)
      memset(y, 0, p->M * p->N * sizeof *y);
  } else {
    cblas_sgemm(CblasRowMajor, p->trans_a ? CblasTrans : CblasNoTrans,
                p->trans_b ? CblasTrans : CblasNoTrans, (int)p->M, (int)p->N, (int)p->K, p->alpha,
                k->in[0], p->trans_a ? (int)p->M : (int)p->K, k->weight,
                p->trans_b ? (int)p->K : (int)p->N, beta, y, (int)p->N);
  }
  add_out_shift(y, p->M, p->N, k->out_shift);
  lpq__apply_act(k->n, y, p->M * p->N);
  return 0;
}

static int matmul_prepare(lpq_graph_t *g, gnode_t *n, lpq_error_t *err) {
  int rc;
  if ((rc = lpq__check_arity(n, 2, 2, 1, 1, err)) || (rc = lpq__need_dtype(g, n, 0, DT(LPQ_DT_F32), err)) ||
      (rc = lpq__need_dtype(g, n, 1, DT(LPQ_DT_F32), err)))
    return rc;
  const gval_t *a = gv(g, n->in[0]), *b = gv(g, n->in[1]);
  if (a->ndim < 1 || b->ndim < 1)
    return lpq__node_err(err, LPQ_EFORMAT, n, "inputs must have rank >= 1");
  matmul_params_t *p = calloc(1, sizeof *p);
  if (!p)
    return lpq__node_err(err, LPQ_ENOMEM, n, "out of memory");
  n->params = p;
  const int a1 = a->ndim == 1, b1 = b->ndim == 1;
  p->M = a1 ? 1 : a->shape[a->ndim - 2];
  p->K = a->shape[a->ndim - 1];
  const int64_t kb = b1 ? b->shape[0] : b->shape[b->ndim - 2];
  p->N = b1 ? 1 : b->shape[b->ndim - 1];
  if (kb != p->K)
    return lpq__node_err(err, LPQ_EFORMAT, n, "inner dimensions differ (%lld and %lld)",
                    (long long)p->K, (long long)kb);
  const int abd = a1 ? 0 : a->ndim - 2, bbd = b1 ? 0 : b->ndim - 2;
  const int nbd = abd > bbd ? abd : bbd;
  int64_t shape[LPQ_MAX_DIMS + 2];
  p->batch = 1;
  int64_t as = 1, bs = 1; /* matrices per step of the current batch dim (right to left) */
  for (int j = nbd - 1; j >= 0; j--) {
    int ai = j - (nbd - abd), bi = j - (nbd - bbd);
    int64_t ad = ai >= 0 ? a->shape[ai] : 1, bd = bi >= 0 ? b->shape[bi] : 1;
    if (ad != bd && ad != 1 && bd != 1)
      return lpq__node_err(err, LPQ_EFORMAT, n, "batch dimensions %lld and %lld do not broadcast",
                      (long long)ad, (long long)bd);
    shape[j] = ad > bd ? ad : bd;
    if (ad == 0 || bd == 0)
      shape[j] = 0;
    p->a_batch_stride[j] = ad == 1 ? 0 : as;
    p->b_batch_stride[j] = bd == 1 ? 0 : bs;
    as *= ad, bs *= bd;
    p->batch *= (size_t)shape[j];
  }
  memcpy(p->out_shape, shape, (size_t)nbd * sizeof *shape);
  p->nd = nbd;
  int nd = nbd;
  if (!a1)
    shape[nd++] = p->M;
  if (!b1)
    shape[nd++] = p->N;
  return lpq__set_output(g, n, 0, LPQ_DT_F32, nd, shape, err);
}

/* A MatMul's work split over the context's threads: row blocks of the one [batch*M, K] x [K, N]
** product when the weight is [N, K] (a quantizable layer), else whole matrices of the batch. Each
** task is one cblas_sgemm on OpenBLAS's calling thread (lpq keeps OpenBLAS on one thread: the
** engine's threads use the cores). */
typedef struct matmul_job_t {
  const matmul_params_t *p;
  const float *a, *b;
  float *y;
  size_t rows_per_task; /* b_nk: rows of the flattened product per task */
  size_t mats_per_task; /* batched: matrices per task */
} matmul_job_t;

#define MATMUL_MIN_ROWS 32 /* below this a task's call costs more than it saves */

static void matmul_rows_task(void *arg, size_t task, int tid) {
  (void)tid;
  const matmul_job_t *j = arg;
  const size_t rows = j->p->batch * (size_t)j->p->M, r0 = task * j->rows_per_task;
  const size_t n = rows - r0 < j->rows_per_task ? rows - r0 : j->rows_per_task;
  const int N = (int)j->p->N, K = (int)j->p->K;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, N, K, 1.0f, j->a + r0 * (size_t)K,
              K, j->b, K, 0.0f, j->y + r0 * (size_t)N, N);
}

static void matmul_batch_task(void *arg, size_t task, int tid) {
  (void)tid;
  const matmul_job_t *j = arg;
  const matmul_params_t *p = j->p;
  const int M = (int)p->M, N = (int)p->N, K = (int)p->K;
  const size_t b0 = task * j->mats_per_task;
  const size_t b1 = b0 + j->mats_per_task < p->batch ? b0 + j->mats_per_task : p->batch;
  for (size_t bi = b0; bi < b1; bi++) {
    /* the batch index's broadcast offsets into A and B (output dims, right to left) */
    int64_t ao = 0, bo = 0;
    size_t rest = bi;
    for (int d = p->nd - 1; d >= 0; d--) {
      const int64_t i = (int64_t)(rest % (size_t)p->out_shape[d]);
      rest /= (size_t)p->out_shape[d];
      ao += i * p->a_batch_stride[d], bo += i * p->b_batch_stride[d];
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, j->a + ao * M * K, K,
                j->b + bo * K * N, N, 0.0f, j->y + bi * (size_t)M * N, N);
  }
}

/* A MatMul with a constant weight by lpq's kernel: the product [R, K] x [K, N] of every batch's
** rows (R = batch x M) in tasks of rb rows by cb columns. A task packs its rows of A (rb x K, in
** L2) and runs them against its columns of the packed weight, so the weight is read once per
** row block and no task packs it. Row blocks of at most SGEMM_MC rows; the columns split further
** until every thread has about four tasks (a slower core's last task then costs less), a
** multiple of SGEMM_NR and at least 64 of them a task. Every sum runs over K in the same order
** whatever the split (ops_sgemm.c), so the bits do not depend on the thread count. */
typedef struct mm_grid_t {
  size_t rb, rblocks, cb, cblocks;
} mm_grid_t;

int lpq__matmul_blas; /* tests and benchmarks: 1 runs every MatMul through OpenBLAS */

static mm_grid_t mm_grid(size_t R, size_t N, int threads) {
  mm_grid_t t;
  t.rblocks = (R + SGEMM_MC - 1) / SGEMM_MC;
  t.rb = ((R + t.rblocks - 1) / t.rblocks + SGEMM_MR - 1) / SGEMM_MR * SGEMM_MR;
  t.rblocks = (R + t.rb - 1) / t.rb;
  const size_t want = threads > 1 ? 4 * (size_t)threads : 1, most = (N + 63) / 64;
  size_t cblocks = (want + t.rblocks - 1) / t.rblocks;
  cblocks = cblocks > most ? most : cblocks < 1 ? 1 : cblocks;
  t.cb = ((N + cblocks - 1) / cblocks + SGEMM_NR - 1) / SGEMM_NR * SGEMM_NR;
  t.cblocks = (N + t.cb - 1) / t.cb;
  return t;
}

/* A thread's scratch for a packed MatMul: its rows of A, then (thread 0's only) the hook's
** weight packed per run. */
static size_t mm_a_floats(const matmul_params_t *p) {
  const mm_grid_t t = mm_grid(p->batch * (size_t)p->M, (size_t)p->N, 1);
  return lpq__sgemm_packed_a_floats(t.rb, (size_t)p->K) + 16;
}

int lpq__matmul_prepack(lpq_graph_t *g, gnode_t *n, lpq_error_t *err) {
  (void)g;
  const matmul_params_t *p = n->params;
  if (!p || !p->b_nk || !n->wdata || !lpq__sgemm_packs_a() || !p->batch || !p->M || !p->N ||
      !p->K)
    return 0;
  const size_t N = (size_t)p->N, K = (size_t)p->K, cols = (N + SGEMM_NR - 1) / SGEMM_NR * SGEMM_NR;
  return prepack(n, N, K, 1, n->wdata, mm_a_floats(p) + cols * K + 16, err);
}

typedef struct mm_job_t {
  const kctx_t *k;
  const matmul_params_t *p;
  mm_grid_t t;
  const float *a, *w; /* w: the weight as the hook gave it ([N, K]), packed per run into Bp */
  float *Bp, *y;
} mm_job_t;

static void mm_pack_task(void *arg, size_t task, int tid) {
  (void)tid;
  const mm_job_t *j = arg;
  const size_t N = (size_t)j->p->N, q0 = task * j->t.cb;
  const size_t cols = N - q0 < j->t.cb ? N - q0 : j->t.cb;
  pack_cols(N, (size_t)j->p->K, 1, j->w, q0, cols, j->Bp + q0 * (size_t)j->p->K);
}

static void mm_task(void *arg, size_t task, int tid) {
  const mm_job_t *j = arg;
  const size_t R = j->p->batch * (size_t)j->p->M, N = (size_t)j->p->N, K = (size_t)j->p->K;
  const size_t r0 = task / j->t.cblocks * j->t.rb, q0 = task % j->t.cblocks * j->t.cb;
  const size_t rows = R - r0 < j->t.rb ? R - r0 : j->t.rb;
  const size_t cols = N - q0 < j->t.cb ? N - q0 : j->t.cb;
  float *Ap = thread_scratch(j->k, tid);
  lpq__sgemm_pack_a(rows, K, j->a + r0 * K, K, Ap);
  lpq__kern_sgemm_packed(rows, cols, K, Ap, j->Bp + q0 * K, j->y + r0 * N + q0, N);
}

static void matmul_packed_run(const kctx_t *k) {
  const matmul_params_t *p = k->n->params;
  mm_job_t j = {.k = k, .p = p, .a = k->in[0], .w = k->weight, .y = k->out[0]};
  j.t = mm_grid(p->batch * (size_t)p->M, (size_t)p->N, lpq__threads_count(k->pool));
  j.Bp = k->n->wpack;
  if (k->weight != k->n->wdata) { /* a hook's weight: packed now, into thread 0's area */
    j.Bp = k->scratch + mm_a_floats(p);
    lpq__threads_run(k->pool, j.t.cblocks, mm_pack_task, &j);
  }
  lpq__threads_run(k->pool, j.t.rblocks * j.t.cblocks, mm_task, &j);
}

static int matmul_run(const kctx_t *k) {
  const matmul_params_t *p = k->n->params;
  float *y = k->out[0];
  if (p->batch == 0 || p->M == 0 || p->N == 0)
    return 0;
  if (p->K == 0) {
    memset(y, 0, p->batch * (size_t)p->M * (size_t)p->N * sizeof *y);
    return 0;
  }
  if (p->b_nk && k->n->wpack && k->scratch && !lpq__matmul_blas) {
    matmul_packed_run(k);
    add_out_shift(y, p->batch * (size_t)p->M, (size_t)p->N, k->out_shift);
    return 0;
  }
  const size_t threads = (size_t)lpq__threads_count(k->pool);
  matmul_job_t j = {.p = p, .a = k->in[0], .b = k->weight, .y = y};
  if (p->b_nk) { /* constant weight [N, K]: the rows of every batch as one product */
    const size_t rows = p->batch * (size_t)p->M;
    size_t per = (rows + threads - 1) / threads;
    if (per < MATMUL_MIN_ROWS)
      per = MATMUL_MIN_ROWS;
    j.rows_per_task = per;
    lpq__threads_run(k->pool, (rows + per - 1) / per, matmul_rows_task, &j);
    add_out_shift(y, rows, (size_t)p->N, k->out_shift);
    return 0;
  }
  j.mats_per_task = (p->batch + threads - 1) / threads;
  lpq__threads_run(k->pool, (p->batch + j.mats_per_task - 1) / j.mats_per_task, matmul_batch_task,
                   &j);
  return 0;
}

const op_def_t lpq__ops_gemm_table[] = {
    {"Gemm", gemm_attrs, gemm_prepare, gemm_run},
    {"MatMul", NULL, matmul_prepare, matmul_run},
    {NULL, NULL, NULL, NULL},
};
