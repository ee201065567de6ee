/*
** worker/worker.h: the evaluation core of an lpq worker (DESIGN sections 2 and 3): the
** global-local contrastive loss, the quantized forward pass of a candidate, its score and LPA
** cost, and the pool worker (ZeroMQ DEALER) that runs them for a coordinator. It includes
** accel_sim/, engine/, common/ and lp/; lpq-worker, `lpq eval` and `lpq search` use it.
** worker_internal.h is the folder's own (lpq__* names).
*/
#ifndef LPQ_WORKER_H
#define LPQ_WORKER_H

#include "engine/engine.h"

#include <signal.h>
#include <stddef.h>


/* ---- the contrastive loss --------------------------------------------------------------- */

/* InfoNCE over a batch (DESIGN section 2):
**   l = -1/B * sum_i log( exp(q_i.p_i / T) / sum_j exp(q_i.p_j / T) )
** where q_i and p_j are the L2-normalised rows of q and p, both [batch, dim] float32 in C order
** (a zero row stays zero). The positive of q_i is p_i; the negatives are the other rows of p.
** LPQ_EINVAL for batch 0, dim 0 or T <= 0; LPQ_ENAN when an input holds NaN or Inf. */
int lpq_infonce(const float *q, const float *p, size_t batch, size_t dim, double temperature,
                double *loss, lpq_error_t *err);

/* Normalises each row of x ([rows, dim]) to unit L2 length in place; NaN/Inf: LPQ_ENAN with
** the row in the message. */
int lpq_normalize_rows(float *x, size_t rows, size_t dim, lpq_error_t *err);
/* The same from src into dst (bit for bit what copying then normalising in place gives). */
int lpq_normalize_rows_to(float *dst, const float *src, size_t rows, size_t dim,
                          lpq_error_t *err);

/* InfoNCE of already-normalised rows (the cached FP side is normalised once). scratch holds
** batch*batch floats. */
double lpq_infonce_normalized(const float *qn, const float *pn, size_t batch, size_t dim,
                              double temperature, float *scratch);

/* ---- scoring a candidate ----------------------------------------------------------------- */

#define LPQ_SCORE_CUT_MB_DEFAULT 512

/* How the local terms are computed. Each reduces a layer's output rows (the FP side once, at
** the scorer's creation; the candidate's on every evaluation) before the rows are normalised
** and InfoNCE is taken over their B x B similarities, with the same formula, temperature and
** weights; only the features differ. */
typedef enum lpq_local_mode_t {
  LPQ_LOCAL_EXACT = 0, /* the whole output row (DESIGN section 2) [default] */
  LPQ_LOCAL_PROJECTED, /* a fixed random projection to local_dim values: a signed fold, value d
                          of the row times a seeded +-1 added to component d mod local_dim
                          (an unbiased estimate of every inner product; one pass over the row) */
  LPQ_LOCAL_POOLED,    /* average pooling: a conv output's H x W map to at most s x s cells per
                          channel (s = floor(sqrt(local_dim))), a [T, E] output's T tokens to at
                          most local_dim groups per feature; other outputs kept whole */
} lpq_local_mode_t;

#define LPQ_LOCAL_DIM_DEFAULT 256 /* projected: values per row; pooled: cells per channel 16 */

/* "exact", "projected", "pooled"; NULL outside. */
const char *lpq_local_mode_name(lpq_local_mode_t m);
/* The mode named by text into *m: 0, or LPQ_EINVAL naming the choices. */
int lpq_local_mode_parse(const char *text, lpq_local_mode_t *m, lpq_error_t *err);

/* How a candidate is scored. Zero-initialised fields take the defaults in brackets. */
typedef struct lpq_score_opts_t {
  double temperature; /* InfoNCE temperature T [0.5] */
  double lambda;      /* exponent of L_CR in the scalar fitness L_F = L_CO * L_CR^lambda [1] */
  int no_local;       /* 1: L_CO is the global term alone */
  int no_cache;       /* 1: quantize weights on every evaluation (tests: cached == uncached) */
  size_t cache_bytes; /* quantized-weight cache bound per scorer [256 MiB] */
  size_t prefix_bytes; /* bound of the prefix cache of local terms: a layer's local term is
                          kept under the formats of it and every layer before it, so a
                          candidate sharing its first k layers' formats with one already
                          scored reuses their local terms, bit for bit [4 MiB, 32 bytes per
                          entry; off with no_cache] */
  int no_prefix;       /* 1: no prefix cache (every local term computed) */
  size_t cut_bytes;    /* bound of the cut cache: the engine's state at a few cuts of the
                          forward pass (where its multiply-adds reach 1/5, 2/5, ...), kept
                          under the formats of every layer before the cut, so a candidate
                          sharing those layers' formats with one already scored resumes there,
                          bit for bit [LPQ_SCORE_CUT_MB_DEFAULT MiB; off with no_cache] */
  int no_cuts;         /* 1: no cut cache (every pass from the input) */
  int threads;         /* lpq_scorer_accuracy and _predict: batches on this many threads at
                          once, each its own execution context; the results do not depend on
                          it [1] */
  int bias_correction; /* 1: each layer with quantized weights gets its bias corrected by the
                          mean output shift the quantization causes on the calibration batch
                          (NNCF FastBiasCorrection, AIMET): -(Wq - W) E[x], E[x] the FP input's
                          per-channel mean [0] */
  lpq_local_mode_t local; /* how the local terms are computed [LPQ_LOCAL_EXACT] */
  size_t local_dim;       /* projected: values per row [LPQ_LOCAL_DIM_DEFAULT]; pooled: cells
                             per channel [16]; rows already that short are kept whole */
} lpq_score_opts_t;

/* lpq_bias_shifts (the shifts the scorer adds, for exports) is the engine's: engine/bias.c. */

/* One candidate's score. */
typedef struct lpq_score_t {
  double l_co;        /* global + mean of local terms */
  double l_global;    /* InfoNCE of the network output against the FP output */
  double l_local;     /* mean over quantizable layers of their outputs' InfoNCE */
  double l_cr;        /* compression: weight bits over FP32 weight bits */
  double l_f;         /* L_CO * L_CR^lambda */
  double mean_w_bits; /* weight bits averaged over weight elements */
  double mean_a_bits; /* activation bits averaged over quantizable layers' input elements */
  double top1;        /* quantized top-1 on the calibration batch in [0,1]; -1 without labels */
  double top1_fp;     /* FP top-1 on the calibration batch; -1 without labels */
  double eval_ms;     /* wall time of this evaluation */
} lpq_score_t;

/* A scorer holds one model and one calibration batch: the graph (shared, read-only), the FP
** reference pass (run once at creation: network output and every quantizable layer's output,
** normalised; a sample of every layer's input for calibrating activation formats), and caches
** of quantized weights and activation quantizers per (layer, format). Thread-safe: several
** threads may evaluate candidates at once, each on its own execution context. */
typedef struct lpq_scorer_t lpq_scorer_t;

/* calib: lpq_graph_batch(g) samples of the graph's input; labels: that many class indices, or
** NULL. The scorer keeps a reference to g (which must outlive it) and copies calib and labels. */
lpq_scorer_t *lpq_scorer_new(const lpq_graph_t *g, const float *calib, const int64_t *labels,
                             const lpq_score_opts_t *opts, lpq_error_t *err);
void lpq_scorer_free(lpq_scorer_t **s);

/* What a scorer's caches hold and did (for tests and benchmarks). */
typedef struct lpq_scorer_stats_t {
  uint64_t prefix_hits, prefix_misses; /* local terms reused / computed */
  size_t prefix_bytes;                 /* the prefix cache's table (<= opts.prefix_bytes) */
  size_t cache_bytes;                  /* the weight cache's entries (bounded while unpinned) */
  uint64_t cut_resumes, cut_saves;     /* passes resumed at a cut / states saved */
  uint64_t cut_reuses;                 /* saves written into an evicted state's buffer */
  uint64_t cut_layers_skipped;         /* layers not run thanks to the resumes */
  size_t cut_bytes;                    /* the cut cache's entries */
  size_t ncuts;                        /* cuts chosen for this model */
  uint64_t local_rows;                 /* layer outputs reduced and normalised for the local
                                          terms: the FP pass's once per layer at creation, then
                                          each candidate layer whose term is computed */
  size_t local_dims;                   /* the local terms' row lengths summed over layers */
  lpq_local_mode_t local;              /* the scorer's opts.local */
} lpq_scorer_stats_t;
void lpq_scorer_stats(lpq_scorer_t *s, lpq_scorer_stats_t *st);

/* Scores a candidate: w[i] and a[i] are layer i's weight and input-activation formats
** (lpq_graph_num_layers entries; "auto" and scaled formats are calibrated here, on the
** layer's FP weight or FP input sample). */
int lpq_scorer_eval(lpq_scorer_t *s, const lpq_numfmt_t *w, const lpq_numfmt_t *a,
                    lpq_score_t *out, lpq_error_t *err);

/* The resolved formats a candidate uses (auto sf and scales filled in), for configs people read.
** Per-channel formats keep their text form (int<k,ch>, lp<...,auto_ch>); each channel's own
** comes from lpq_numfmt_calibrate_channels. */
int lpq_scorer_resolve(lpq_scorer_t *s, const lpq_numfmt_t *w, const lpq_numfmt_t *a,
                       lpq_numfmt_t *w_out, lpq_numfmt_t *a_out, lpq_error_t *err);

/* Top-1 of the FP model and of the candidate over a whole data set (count samples of the
** graph's input shape, labels in 0..classes-1), in batches of the graph's batch size. top1_fp
** may be NULL: the FP pass is then skipped. */
int lpq_scorer_accuracy(lpq_scorer_t *s, const lpq_numfmt_t *w, const lpq_numfmt_t *a,
                        const float *data, const int64_t *labels, size_t count, double *top1_fp,
                        double *top1_q, lpq_error_t *err);

/* The same with labels optional (NULL: no top-1) and the candidate's logits over the data
** written to logits (count x classes floats) when not NULL: what an exported model must give. */
int lpq_scorer_predict(lpq_scorer_t *s, const lpq_numfmt_t *w, const lpq_numfmt_t *a,
                       const float *data, const int64_t *labels, size_t count, double *top1_fp,
                       double *top1_q, float *logits, lpq_error_t *err);

/* Mean FP output InfoNCE of the model with itself (L_CO of an all-fp32 candidate). */
double lpq_scorer_self_contrast(const lpq_scorer_t *s);

/* ---- a candidate's full evaluation: score and LPA cost ------------------------------------ */

typedef struct lpq_candidate_ctx_t lpq_candidate_ctx_t;

typedef struct lpq_candidate_result_t {
  lpq_score_t score;
  double l_cr;       /* for the objective: bits / 32, or the LPA cost over the all-8-bit cost */
  double latency_s, energy_pj, edp_js; /* on the LPA (accel_sim's default architecture) */
  int max_act_bits;  /* the widest activation format (32 for fp32) */
} lpq_candidate_result_t;

/* A context for scoring candidates of graph g with scorer (both outlive it): the LPA model of
** g's layers and the all-8-bit reference cost. Thread-safe to use from several threads. */
lpq_candidate_ctx_t *lpq_candidate_ctx_new(const lpq_graph_t *g, lpq_scorer_t *scorer,
                                           lpq_error_t *err);
void lpq_candidate_ctx_free(lpq_candidate_ctx_t **c);
/* Scores a candidate (w[i], a[i] per layer) and costs it on the LPA. */
int lpq_candidate_eval(lpq_candidate_ctx_t *c, const lpq_numfmt_t *w, const lpq_numfmt_t *a,
                       lpq_objective_t objective, lpq_candidate_result_t *out, lpq_error_t *err);

/* ---- per-layer sensitivity (worker/sensitivity.c) ---------------------------------------- */

/* The weight format family of a sensitivity run; LP's es and rs at b bits are lp_weight_shape's
** (es 0 up to 5 bits, else 1; rs min(b-1, 3)). */
typedef enum lpq_sens_family_t {
  LPQ_SENS_LP_CH = 0, /* lp<b,es,rs,auto_ch>: one sf per output channel [default] */
  LPQ_SENS_LP,        /* lp<b,es,rs,auto>: one sf per tensor */
  LPQ_SENS_INT_CH,    /* int<b,ch> (the baseline users compare against) */
} lpq_sens_family_t;

/* The weight format of family at `bits` bits; LPQ_EINVAL outside 2..16. */
int lpq_sensitivity_format(lpq_sens_family_t family, int bits, lpq_numfmt_t *out,
                           lpq_error_t *err);
const char *lpq_sens_family_name(lpq_sens_family_t family); /* "lp_ch", "lp", "int_ch" */

/* Zero-initialised fields take the defaults in brackets. */
typedef struct lpq_sensitivity_opts_t {
  int bits_lo, bits_hi;     /* the widths tried [2, 8] */
  lpq_sens_family_t family; /* [LPQ_SENS_LP_CH] */
  unsigned threads;         /* candidates scored at once [1] */
  const float *data;        /* with labels: top-1 of every cell over count samples of data */
  const int64_t *labels;    /* NULL: no top-1 (the matrix holds NAN) */
  size_t count;
} lpq_sensitivity_opts_t;

/* Layers x widths: cell [l * widths + (b - bits_lo)] is layer l alone at b bits. */
typedef struct lpq_sensitivity_t {
  size_t layers, widths;
  int bits_lo, bits_hi;
  lpq_sens_family_t family;
  char **names;           /* layer names, model order */
  size_t *weight_count;   /* per layer */
  double base_l_co;       /* L_CO of the all-fp32 candidate */
  double base_top1;       /* fp32 top-1 over the data in [0,1]; NAN without labels */
  double *delta_l_co;     /* L_CO rise over base_l_co */
  double *top1;           /* in [0,1]; NAN without labels */
  double elapsed_ms;
} lpq_sensitivity_t;

/* Scores every quantizable layer of g alone at each width (the others and all activations
** fp32) with scorer s (built on g). *out is new (lpq_sensitivity_free); the first failing cell's
** error names its layer and width. The same matrix whatever opts->threads. */
int lpq_sensitivity_compute(const lpq_graph_t *g, lpq_scorer_t *s,
                            const lpq_sensitivity_opts_t *opts, lpq_sensitivity_t **out,
                            lpq_error_t *err);
void lpq_sensitivity_free(lpq_sensitivity_t **s);

/* ---- pool: the lpq-worker side of the worker pool ----------------------------------------- **
** lpq_pool_worker_run is the whole daemon minus its command line: a ZeroMQ DEALER connected to
** the coordinator's ROUTER (messages: common.h "wire"), owned by the calling thread alone. That
** thread does only I/O: READY, heartbeats every interval whatever the evaluations do, blob
** fetching by hash into the cache directory (each chunk's bytes hashed as they arrive, the file
** renamed into the cache only when its SHA-256 matches), and forwarding results. Evaluations
** run on `threads` threads that hand their encoded RESULT back over an inproc PUSH/PULL pair, so
** no ZeroMQ socket is shared between threads. A coordinator silent for liveness x interval is
** presumed dead: reconnect after a back-off doubling from 1 s to 32 s, reset by any message. */

/* Scores one task. Called from several threads at once: must be thread-safe. model_path,
** data_path, labels_path: the cached blob files (NULL when the task names no such blob). Fill
** out (already lpq_result_init'ed with the task id); return 0, or a negative LPQ_E* with err set,
** which becomes the result's failed status and message. */
typedef int (*lpq_worker_eval_fn)(void *ctx, const lpq_task_t *task, const char *model_path,
                                  const char *data_path, const char *labels_path,
                                  lpq_result_t *out, lpq_error_t *err);

typedef struct lpq_worker_evaluator_t {
  const char *name; /* announced in READY's capabilities */
  lpq_worker_eval_fn eval;
  void *ctx;
  void (*free_ctx)(void *ctx); /* may be NULL */
} lpq_worker_evaluator_t;

/* The synthetic evaluator (benchmarks, tests): sleeps sleep_ms, then scores from the genome
** alone (lpq_synthetic_score). Settings {"synthetic_fail": true} make it fail (tests). */
int lpq_synthetic_evaluator(unsigned sleep_ms, lpq_worker_evaluator_t *out, lpq_error_t *err);
/* Deterministic: l_co_global = sum over layers of 1/n of the weights, l_co_local the same of the
** activations (fp32 adds 0), l_co their sum; mean bits per layer (fp32 counts 32); l_cr = mean
** weight bits / 32; latency_s, energy_pj from the bits; top1 NAN; edp_js = latency * energy. */
void lpq_synthetic_score(const lpq_task_t *task, lpq_result_t *out);

/* Zero-initialised fields take the defaults in brackets. */
typedef struct lpq_pool_worker_opts_t {
  const char *connect;   /* the coordinator's endpoint, e.g. tcp://HOST:PORT */
  unsigned threads;      /* evaluation threads = tasks taken at once, 1..1024 [1] */
  const char *cache_dir; /* blob cache, created when missing [./var/worker-cache] */
  const char *worker_id; /* name shown by the coordinator [host:pid] */
  double heartbeat_s;    /* [1]: the coordinator's */
  int liveness;          /* [3] */
  double backoff_max_s;  /* reconnect back-off doubles from 1 s up to this [32] */
  int log_level;         /* 1 warnings, 2 info [2], 3 debug, negative: errors only; stderr */
  lpq_worker_evaluator_t evaluator;
  /* Polled every 100 ms: non-zero (set by a SIGTERM handler) stops taking tasks, hands back
  ** those not started (status LPQ_ECANCELED), finishes the running ones, says BYE, returns. */
  const volatile sig_atomic_t *stop;
  /* CURVE: the coordinator's public key (pinned: a server with another key is not talked to)
  ** and this worker's secret key, both Z85 (40 characters); both or neither [plain text]. */
  const char *curve_server_key;
  const char *curve_secret_key;
} lpq_pool_worker_opts_t;

/* Runs until *stop; 0 then. LPQ_EINVAL / LPQ_EIO with err set on bad options or when the
** cache directory or the sockets cannot be set up. */
int lpq_pool_worker_run(const lpq_pool_worker_opts_t *opts, lpq_error_t *err);

#endif
