/*
** worker/worker_internal.h: what worker/'s files share and no other folder sees (non-static
** names lpq__*): the pool worker's private state (pool*.c) and the cache of quantized weights,
** quantizers and resolved formats (qcache.c, used by score.c).
*/
#ifndef LPQ_WORKER_INTERNAL_H
#define LPQ_WORKER_INTERNAL_H

#include "worker/worker.h"

#include <limits.h>
#include <pthread.h>
#include <stdint.h>

/* A task between its arrival and its hand-over to an evaluation thread. */
typedef struct pw_task_t {
  lpq_task_t task;
  uint64_t arrived_ms;
  double fetch_ms;
  struct pw_task_t *next;
} pw_task_t;

/* The blob being fetched (one at a time, chunk by chunk: each chunk is asked for when the
** previous one is written, so the coordinator never queues a whole model for one worker). */
typedef struct pw_fetch_t {
  int active;
  char hash[65];
  char tmp_path[PATH_MAX];
  int fd;
  uint64_t offset, total;
  uint64_t started_ms;
  lpq_sha256_t *sha;
} pw_fetch_t;

typedef struct pw_t {
  lpq_pool_worker_opts_t o;
  char cache_dir[PATH_MAX - 128]; /* room for "/.HASH.PID.tmp" in a PATH_MAX buffer */
  char worker_id[LPQ_WIRE_ID_MAX];
  char host[LPQ_WIRE_ID_MAX];
  uint64_t heartbeat_ms, expiry_ms;
  void *zctx, *dealer, *results; /* results: the PULL end of the evaluation threads' PUSHes */
  char results_ep[64];
  char curve_public[LPQ_CURVE_KEY_LEN + 1]; /* derived from o.curve_secret_key */
  void *monitor;            /* CURVE: the DEALER's handshake failures (PAIR), or NULL */
  unsigned monitor_serial;
  lpq_wire_buf_t out;

  /* evaluation threads and their queue (mutex-guarded; no ZeroMQ socket is shared) */
  pthread_t *threads;
  size_t nthreads;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  pw_task_t *q_head, *q_tail;
  int quit;
  size_t running; /* handed to the threads, result not yet forwarded */

  pw_task_t *pend_head, *pend_tail; /* waiting for blobs */
  /* cached blobs whose SHA-256 was checked in this process, with the file's identity then (a
  ** file that changed is checked again before it is used) */
  struct pw_verified_t {
    char hash[65];
    uint64_t ino, size;
    int64_t mtime_ns;
  } verified[16];
  size_t nverified;
  pw_fetch_t fetch;
  uint64_t last_heard_ms, last_beat_ms;
  double backoff_s;
  int draining, reconnect_now;
} pw_t;

uint64_t lpq__pw_now_ms(void);
void lpq__pw_log(pw_t *p, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Sends d->out's message on the DEALER (never blocks; a failure is logged). */
void lpq__pw_send_out(pw_t *p);
/* Sends a failed (or handed-back, LPQ_ECANCELED) RESULT for a task. */
void lpq__pw_send_failure(pw_t *p, uint64_t task_id, int status, const char *why);

/* pool_threads.c */
int lpq__pw_threads_start(pw_t *p, lpq_error_t *err);
void lpq__pw_threads_push(pw_t *p, pw_task_t *t);
/* Takes back the tasks no thread has started (handed back on shutdown). */
pw_task_t *lpq__pw_threads_take_queued(pw_t *p);
void lpq__pw_threads_stop(pw_t *p); /* waits for the running evaluations */
void lpq__pw_task_free(pw_task_t *t);

/* pool_fetch.c */
int lpq__pw_cache_init(pw_t *p, lpq_error_t *err);
/* cache_dir/hash into path; 1 when the file is there. */
int lpq__pw_cache_has(const pw_t *p, const char *hash, char *path, size_t cap);
void lpq__pw_fetch_start(pw_t *p, const char *hash);
void lpq__pw_fetch_chunk(pw_t *p, const lpq_blob_chunk_t *c);
void lpq__pw_fetch_abort(pw_t *p);
/* Moves pending tasks whose blobs are all cached to the threads; starts the next fetch. */
void lpq__pw_pending_advance(pw_t *p);
/* Fails every pending task that needs blob hash. */
void lpq__pw_pending_fail(pw_t *p, const char *hash, int status, const char *why);

/* ---- the quantized-weight cache (qcache.c) ---- */

typedef struct qentry_t {
  char key[128];
  uint64_t hash;
  float *data;          /* quantized weights (owned) */
  int *idata;           /* integers: a layer's LP centres (owned) */
  lp_quantizer_t *q;    /* a quantizer (owned) */
  lpq_numfmt_t fmt;     /* a resolved format */
  size_t bytes;         /* what the entry holds, for the bound */
  int refs;
  uint64_t last_use;
  struct qentry_t *next;
} qentry_t;

typedef struct qcache_t {
  pthread_mutex_t mu;
  qentry_t **buckets;
  size_t nbuckets, count, bytes, cap;
  uint64_t clock, hits, misses;
} qcache_t;

int lpq__qcache_init(qcache_t *c, size_t cap_bytes);
void lpq__qcache_destroy(qcache_t *c);
/* A new unlinked entry with its key set; NULL when memory runs out. */
qentry_t *lpq__qentry_new(const char *key);
/* The entry for key, pinned (release it), or NULL. */
qentry_t *lpq__qcache_get(qcache_t *c, const char *key);
/* Inserts e (pinned) and returns it, or the equal entry already there (e is then freed). */
qentry_t *lpq__qcache_put(qcache_t *c, qentry_t *e);
void lpq__qcache_release(qcache_t *c, qentry_t *e);
/* Evicts least-recently-used unpinned entries until one of entry_bytes fits the bound, and
** returns the data buffer of one evicted entry that held only data, of entry_bytes to a quarter
** more (*reused_bytes: its size, which the new entry then counts), or NULL: entries of a few
** fixed sizes (the cuts' states) then refill mapped pages instead of faulting fresh ones in. */
void *lpq__qcache_make_room(qcache_t *c, size_t entry_bytes, size_t *reused_bytes);

/* ---- the scorer's state (score.c, score_cache.c) ---- */

#define LPQ__EXEC_POOL_MAX 64

typedef struct lpq__layer_ref_t {
  float *out_norm;   /* FP output, rows normalised: [batch, dim] */
  size_t dim;
  float *in_sample;  /* strided sample of the FP input */
  size_t in_count;   /* samples held */
  size_t in_total;   /* input elements per pass */
  float *in_mean;    /* bias correction: the FP input's mean per input channel */
  double self_loss;  /* InfoNCE of the FP output with itself */
  /* the local term's features (score_local.c): rdim values per sample (dim when exact) */
  size_t rdim;
  float *sign;       /* projected: dim seeded +-1 (NULL: the row is kept whole) */
  int feeds_next;    /* the next layer reads this layer's output as its input (the same tensor):
                        its rows are reduced while that input is quantized, one pass over it */
  size_t channels, h, w, ph, pw; /* pooled: [channels, h, w] into [channels, ph, pw], or
                                    [h, channels] (tokens, features) into [ph, channels] when
                                    w == 0; channels 0: the row is kept whole */
} lpq__layer_ref_t;

/* The prefix cache of local terms: layer l's local term depends only on the formats of layers
** 0..l (layers are numbered in execution order; what runs between them has no format), so it
** is kept under a 128-bit hash of those formats, in a table of fixed size (the bound) with
** 4-way sets, the least recently used way replaced. */
typedef struct lpq__prefix_slot_t {
  uint64_t h1, h2; /* 0, 0: empty */
  double local;
  uint64_t last_use;
} lpq__prefix_slot_t;

typedef struct lpq__prefix_cache_t {
  pthread_mutex_t mu;
  lpq__prefix_slot_t *slots; /* nsets * 4 */
  size_t nsets;
  uint64_t clock, hits, misses;
} lpq__prefix_cache_t;

#define LPQ__CUTS_MAX 4 /* cuts per model (score_cuts.c) */

struct lpq_scorer_t {
  const lpq_graph_t *g;
  lpq_score_opts_t opts;
  size_t batch, nlayers;
  size_t in_count, out_count, classes;
  lpq__layer_ref_t *ref;
  float *out_norm;        /* FP network output, normalised rows */
  float *out_fp;          /* FP network output as is */
  float *calib;           /* the calibration batch (a copy) */
  int64_t *labels;        /* NULL without labels */
  double self_global, self_local, top1_fp;
  size_t max_dim;
  _Atomic uint64_t local_rows; /* lpq_scorer_stats' local_rows */
  qcache_t cache;
  lpq__prefix_cache_t prefix;
  qcache_t cuts; /* the cut cache: saved states, keyed by cut and prefix (score_cuts.c) */
  size_t cut_layer[LPQ__CUTS_MAX], cut_state[LPQ__CUTS_MAX], ncuts; /* layers, state bytes */
  uint64_t cut_saves, cut_resumes, cut_layers_skipped, cut_reuses; /* under cuts.mu */
  pthread_mutex_t pool_mu;
  lpq_exec_t *pool[LPQ__EXEC_POOL_MAX];
  size_t npool;
  float *work[LPQ__EXEC_POOL_MAX]; /* evaluations' work space, kept (score.c) */
  size_t nwork;
};

/* score_cache.c: formats resolved (calibrated), quantizers and quantized weights, all cached,
** and the prefix cache of local terms. */
int lpq__score_resolve(lpq_scorer_t *s, size_t layer, char side, const lpq_numfmt_t *f,
                       lpq_numfmt_t *out, lpq_error_t *err);
/* A pinned quantizer for a resolved format (release it), or NULL. */
qentry_t *lpq__score_quantizer(lpq_scorer_t *s, const lpq_numfmt_t *f, lpq_error_t *err);
/* Layer's weights quantized to f (resolved, or per-channel): a pinned entry, or NULL. With
** bias correction the entry's data holds the output shift after the weights (M floats). */
qentry_t *lpq__score_weights(lpq_scorer_t *s, size_t layer, const lpq_numfmt_t *f,
                             lpq_error_t *err);
void lpq__score_weights_release(lpq_scorer_t *s, qentry_t *e);
/* score_cuts.c: the cut cache. init chooses the cuts (none with no_cache or no_cuts); find
** returns the latest cut held for a candidate's prefix hashes (2 words per layer: the formats of
** layers 0..l), pinned (release it), and its layer; state gives the saved engine state (and its
** size) and the local terms of the layers before it; offer saves x's state at `layer` (called from that
** layer's input hook) when it is a cut after `resumed` and not yet held. */
int lpq__cuts_init(lpq_scorer_t *s);
void lpq__cuts_destroy(lpq_scorer_t *s);
qentry_t *lpq__cuts_find(lpq_scorer_t *s, const uint64_t *prefix, size_t *layer);
const void *lpq__cuts_state(const lpq_scorer_t *s, const qentry_t *e, size_t layer,
                            const double **local, size_t *bytes);
void lpq__cuts_release(lpq_scorer_t *s, qentry_t *e);
void lpq__cuts_offer(lpq_scorer_t *s, const lpq_exec_t *x, size_t layer, size_t resumed,
                     const uint64_t *prefix, const double *local);
/* The largest table within bytes (none under one set of 128 bytes); 0 or LPQ_ENOMEM. */
int lpq__prefix_init(lpq__prefix_cache_t *c, size_t bytes);
void lpq__prefix_destroy(lpq__prefix_cache_t *c);
/* Extends the running hash (h[2], start: lpq__prefix_start) with one layer's resolved formats. */
void lpq__prefix_start(uint64_t h[2]);
void lpq__prefix_extend(uint64_t h[2], const lpq_numfmt_t *w, const lpq_numfmt_t *a);
/* 1 and *local when the key is held. */
int lpq__prefix_get(lpq__prefix_cache_t *c, const uint64_t h[2], double *local);
void lpq__prefix_put(lpq__prefix_cache_t *c, const uint64_t h[2], double local);

/* score_local.c: the local terms' features. setup fixes layer's reduction from its output
** size (dim values per sample) and the scorer's options (r->dim, rdim, sign or pooling); rows
** reduces the batch's rows y ([batch, dim]) into dst ([batch, rdim]) and normalises them
** (exact: lpq_normalize_rows_to, bit for bit). */
/* The widest vector code the worker's kernels (the fold, InfoNCE's rows) run here: 0 plain C,
** 1 AVX2+FMA, 2 AVX-512F+FMA; LPQ_SIMD=scalar|avx2 lowers it, as for lp_quantize_f32. */
int lpq__simd_level(void);
/* The formats' arguments of a scorer call: LPQ_EINVAL naming the layer with an invalid one. */
int lpq__score_check_args(const lpq_scorer_t *s, const lpq_numfmt_t *w, const lpq_numfmt_t *a,
                          lpq_error_t *err);
int lpq__local_setup(lpq_scorer_t *s, size_t layer, size_t dim, lpq_error_t *err);
/* The projected rows: out[i][j] = sum over d = j (mod k) of sign[d] y[i][d] (rows x k), with the
** kernel of level (0 plain C, 1 AVX2, 2 AVX-512, -1 the widest this CPU runs); returns the level
** that ran. Every level gives the same bits. */
int lpq__fold_rows(const float *y, const float *sign, size_t rows, size_t dim, size_t k,
                   float *out, int level);
int lpq__local_rows(lpq_scorer_t *s, size_t layer, const float *y, float *dst,
                    lpq_error_t *err);
/* Layer's local term from its output y (batch rows): the rows reduced into buf, then InfoNCE
** against the FP side (scratch: batch x batch). With q, the same pass also quantizes y into
** qdst, sample by sample (y is then the next layer's input, feeds_next): each row is read
** from memory once, for both. */
int lpq__local_term(lpq_scorer_t *s, size_t layer, const float *y, const lp_quantizer_t *q,
                    float *qdst, float *buf, float *scratch, double *term, lpq_error_t *err);

/* ---- bias correction after weight quantization: the engine's lpq_bias_input_means and
** lpq_bias_shift (engine/bias.c, documented in engine/engine.h) under the names the scorer
** uses (worker/bias.c) ---- */
float *lpq__bias_input_means(const lpq_layer_t *L, const float *x, size_t count, size_t *entries);
void lpq__bias_shift(const lpq_layer_t *L, const float *wq, const float *in_mean, float *shift);

#endif
