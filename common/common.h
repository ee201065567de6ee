/*
** common/common.h: what every lpq process shares (DESIGN section 4; docs/ARCHITECTURE.md):
** n-dimensional arrays, candidate configs, job settings and their defaults (the one source),
** the genome's layer type, data loaders (.npy, IDX), content hashes, the worker pool's wire
** messages and CURVE keys. It includes lp/lp.h only; every folder above uses it, and it is
** where the worker and the coordinator meet (they never include each other). */
#ifndef LPQ_COMMON_H
#define LPQ_COMMON_H
#include "lp/lp.h"

#include <stddef.h>
#include <stdint.h>

/* ---- arrays ------------------------------------------------------------------------------ */
#define LPQ_MAX_DIMS 8

/* Element types, numbered as ONNX's TensorProto.DataType. */
typedef enum lpq_dtype_t {
  LPQ_DT_F32 = 1,
  LPQ_DT_U8 = 2,
  LPQ_DT_I8 = 3,
  LPQ_DT_I32 = 6,
  LPQ_DT_I64 = 7,
  LPQ_DT_BOOL = 9,
  LPQ_DT_F64 = 11,
} lpq_dtype_t;

/* Size in bytes of one element, 0 for an unknown type. */
size_t lpq_dtype_size(lpq_dtype_t t);
const char *lpq_dtype_name(lpq_dtype_t t);

/* A dense C-order array that owns its data. */
typedef struct lpq_array_t {
  lpq_dtype_t dtype;
  int ndim;
  int64_t shape[LPQ_MAX_DIMS];
  size_t count; /* product of shape, 1 for ndim = 0 */
  void *data;   /* count * lpq_dtype_size(dtype) bytes, zero-initialised */
} lpq_array_t;

/* Element count of a shape; LPQ_ERANGE when a dimension is negative, the product overflows,
** or the byte size (count * elem_size) exceeds max_bytes. */
int lpq_shape_count(int ndim, const int64_t *shape, size_t elem_size, size_t max_bytes,
                    size_t *count, lpq_error_t *err);
/* A new zeroed array; NULL with err set on a bad shape or when memory runs out. */
lpq_array_t *lpq_array_new(lpq_dtype_t dtype, int ndim, const int64_t *shape, lpq_error_t *err);
void lpq_array_free(lpq_array_t **a);
/* "[256,1,28,28]" into buf; returns buf. */
char *lpq_shape_str(int ndim, const int64_t *shape, char *buf, size_t len);

/* ---- candidate configs (schema/candidate_config.schema.json) ------------------------------- */
/* A per-layer assignment of number formats, as a user or the search writes it:
**   {"version":1, "default":{"w":"lp<8,2,2,0>","a":"fp32"},
**    "layers":[{"name":"conv1","w":"lp<6,1,3,-1>"}, {"index":3,"a":"int8"}]}
** Entries name a quantizable layer by "name" or "index" (both: they must agree); "w" and "a" are
** optional per entry (the default applies). The default's own default is fp32. */
typedef struct lpq_config_entry_t {
  char *name;   /* NULL when the entry gives only an index */
  long index;   /* -1 when the entry gives only a name */
  int has_w, has_a;
  lpq_numfmt_t w, a;
} lpq_config_entry_t;

typedef struct lpq_config_t { /* "bias_correction": true: scored with it (lpq search) */
  int version, bias_correction;
  lpq_numfmt_t default_w, default_a;
  size_t count;
  lpq_config_entry_t *layers;
} lpq_config_t;

#define LPQ_CONFIG_VERSION 1
#define LPQ_CONFIG_MAX_BYTES ((size_t)16 << 20)

/* Parses a config from JSON text; `source` names it in messages (a file name). Errors name the
** entry and field ("layers[2].w: format 'lp<9,...>': ..."). */
lpq_config_t *lpq_config_parse(const char *text, size_t len, const char *source,
                               lpq_error_t *err);
lpq_config_t *lpq_config_load(const char *path, lpq_error_t *err);
void lpq_config_free(lpq_config_t **c);

/* Resolves the config against a model's quantizable layers (names[i] for layer i): fills
** w[i] and a[i]. An entry naming no layer, an index out of range, or two entries for one
** layer is an error naming the entry. */
int lpq_config_bind(const lpq_config_t *c, size_t nlayers, const char *const *names,
                    lpq_numfmt_t *w, lpq_numfmt_t *a, lpq_error_t *err);

/* The JSON text of a per-layer assignment (every layer listed by name and index); the caller
** frees it. Resolved LP formats are written with their sf. NULL when memory runs out. */
char *lpq_config_to_json(size_t nlayers, const char *const *names, const lpq_numfmt_t *w,
                         const lpq_numfmt_t *a);
/* The same with per-channel sf's: for a layer whose w is a per-channel LP format (auto_ch),
** w_sf[i] (w_sf_count[i] integers, one per output channel) is written as "w_sf" next to "w",
** which keeps its auto_ch text. w_sf, w_sf_count or w_sf[i] may be NULL (nothing written). */
char *lpq_config_to_json_sf(size_t nlayers, const char *const *names, const lpq_numfmt_t *w,
                            const lpq_numfmt_t *a, const int *const *w_sf,
                            const size_t *w_sf_count);

/* ---- the genome's layer: one quantizable layer's formats -------------------------------- */
/* What the search varies per layer, what a TASK carries to a worker and what the store keeps:
** the weight and input-activation LP formats (n = 0: fp32, e.g. the activations of a
** weight-only search). With weight_per_channel the weights take one sf per output channel,
** each calibrated on its channel, and weight.sf is an offset on those: lp<n,es,rs,auto_ch+sf>.
** A genome is layer_count of these in model order. */
typedef struct lpq_layer_formats_t {
  lp_format_t weight;
  lp_format_t act;
  int weight_per_channel; /* 0 or 1 */
} lpq_layer_formats_t;

/* A genome layer's formats as config formats (n = 0: fp32; per channel: auto_ch+sf). */
void lpq_layer_formats_numfmt(const lpq_layer_formats_t *l, lpq_numfmt_t *w, lpq_numfmt_t *a);

/* ---- search jobs: settings shared by job.submit, the store, the worker and `lpq search` ---- */
typedef enum lpq_objective_t {
  LPQ_OBJ_BITS = 0, /* L_CR = mean weight bits / 32 */
  LPQ_OBJ_LATENCY,  /* L_CR = LPA latency / the same model's latency with every layer at 8 bits */
  LPQ_OBJ_ENERGY,
  LPQ_OBJ_EDP,
} lpq_objective_t;

const char *lpq_objective_name(lpq_objective_t o); /* "bits", "latency", "energy", "edp" */

/* How the weights' sf is chosen: one per tensor, one per output channel, or either per layer. */
enum { LPQ_SF_TENSOR = 0, LPQ_SF_CHANNEL = 1, LPQ_SF_SEARCH = 2 };

/* A job's settings. JSON fields (all optional): model, data, labels, val_data, val_labels (blob
** hashes), seed, mode, lambda, population, siblings, generations, max_evaluations, max_seconds,
** patience, objective, constraints {mean_weight_bits_max, act_bits_max, latency_s_max,
** top1_drop_max}, calib, temperature, norm [mean, std], bits, act_bits, es [lo, hi], sf_window,
** weight_sf, weight_only, pin_ends, bias_correction, sensitivity, local_terms, local_dim, name;
** eval ("top1": a task scoring top-1 over all of data, set by the coordinator on validation
** tasks). Absent fields keep the defaults (local_terms: exact, as jobs stored before it). */
typedef struct lpq_job_settings_t {
  char model[65], data[65], labels[65], val_data[65], val_labels[65]; /* "" when absent */
  double top1_drop_max; /* the pick on val_data: cheapest within this many points; 0: none */
  int eval_top1;
  uint64_t seed;
  int scalar;
  double lambda;
  size_t population, siblings, generations, max_evaluations, patience;
  double max_seconds;
  lpq_objective_t objective;
  double max_weight_bits, max_act_bits, max_latency_s; /* constraints; 0: none */
  size_t calib;
  double temperature, norm_mean, norm_std;
  int n_min, n_max, act_n_min, act_n_max, es_min, es_max, sf_window;
  int weight_sf; /* LPQ_SF_TENSOR, LPQ_SF_CHANNEL, or LPQ_SF_SEARCH (a gene per layer) */
  int weight_only, pin_ends, sensitivity; /* sensitivity: per-layer, before generation 0 */
  int bias_correction; /* correct each quantized layer's bias for its mean output shift */
  int local_terms;      /* L_CO's local terms: 0 exact, 1 projected, 2 pooled (worker.h) */
  size_t local_dim;     /* projected: values per row; pooled: cells per channel (0: default) */
} lpq_job_settings_t;
const char *lpq_local_terms_name(int m); /* "exact", "projected", "pooled"; NULL otherwise */

/* The defaults: the one source (the search's and the tools' defaults are taken from it). */
void lpq_job_settings_default(lpq_job_settings_t *s);
/* Parses JSON text (NULL or "{}" gives the defaults); unknown fields and bad values are errors
** naming the field ("settings.population: expected an integer in 2..100000"). */
int lpq_job_settings_parse(const char *json, lpq_job_settings_t *s, lpq_error_t *err);
/* The canonical JSON text (sorted keys); caller frees. */
char *lpq_job_settings_json(const lpq_job_settings_t *s);
/* The number of constraints the settings set, and their values g (<= 0 satisfied) for a
** candidate, in the order mean weight bits, activation bits, latency. */
size_t lpq_job_constraint_count(const lpq_job_settings_t *s);
void lpq_job_constraints(const lpq_job_settings_t *s, double mean_weight_bits, int max_act_bits,
                         double latency_s, double *g);

/* ---- bit allocation by sensitivity (common/alloc.c) ---------------------------------------- */
/* Widths bits[l] in lo..hi minimising sum_l cost[l * (hi-lo+1) + bits[l] - lo] (a rise of
** L_CO per layer and width: `lpq sensitivity`) with the mean width weighted by weights[l] (weight
** counts) <= budget; pins[l] > 0 fixes layer l (pins may be NULL). Exact knapsack DP; NAN cells
** only when nothing else fits. LPQ_ERANGE when the pins and lo everywhere exceed the budget. */
int lpq_alloc_bits(size_t n, const double *cost, const size_t *weights, const int *pins, int lo,
                   int hi, double budget, int *bits, lpq_error_t *err);

/* ---- data loaders (.npy, IDX) -------------------------------------------------------------- */
/* Every loader checks what the file claims (magic, header, dtype, shape) against its real size
** before allocating; a failure is a negative LPQ_E* naming the file and what is wrong, *out
** then NULL. On success the caller owns *out (lpq_array_free). */

/* A NumPy .npy file, format 1.0, 2.0 or 3.0: float32, float64, int64, int32, uint8, int8 or
** bool, little-endian, C order (fortran_order True is LPQ_EUNSUP). The data must be exactly the
** bytes the shape needs. */
int lpq_load_npy(const char *path, lpq_array_t **out, lpq_error_t *err);
/* Writes a as a .npy file (format 1.0, header padded to 64 bytes, as numpy writes it). */
int lpq_save_npy(const char *path, const lpq_array_t *a, lpq_error_t *err);
/* An MNIST-family IDX file, raw or gzip (told apart by the gzip magic, not the name). Type
** codes 0x08 uint8, 0x09 int8, 0x0B int16 (widened to int32), 0x0C int32, 0x0D float32,
** 0x0E float64; big-endian dimensions and values, converted to the host's order. */
int lpq_load_idx(const char *path, lpq_array_t **out, lpq_error_t *err);
/* By content: the .npy magic, else an IDX file (gzip or raw); else LPQ_EFORMAT. */
int lpq_load_array(const char *path, lpq_array_t **out, lpq_error_t *err);
/* Model input from images: uint8 pixels become x / 255 in float32, then (x - mean) / std;
** float32 input is only normalised (mean 0, std 1 copies it). A 3-d [N,H,W] input becomes
** [N,1,H,W] so a model's NCHW input fits; other shapes are kept. *out is new, caller owns it.
** LPQ_EINVAL for std <= 0 or non-finite mean/std, LPQ_EUNSUP for other element types. */
int lpq_images_to_f32(const lpq_array_t *in, double mean, double std, lpq_array_t **out,
                      lpq_error_t *err);
/* A model's inputs from a file, as every lpq program reads them (DESIGN section 6): .npy
** float32 as it is (already normalised), uint8 images (.npy or IDX) to x/255 then
** (x - mean) / std; [N,H,W] becomes [N,1,H,W]. */
int lpq_load_inputs(const char *path, double mean, double std, lpq_array_t **out,
                    lpq_error_t *err);

/* ---- wire: content hashes and the worker pool's messages (coordinator <-> lpq-worker) ------- **
** Blobs (models, data) are named by the lowercase hex SHA-256 of their bytes (64 characters).
** A message is one ZeroMQ frame: 'L' 'Q' version type, then a binary payload (integers and
** IEEE doubles little-endian, strings as u32 length + bytes, NUL refused; a task's settings as
** JSON text): a few hundred nanoseconds per TASK or RESULT. A decoder checks every length and
** count against the bytes left before it reads or allocates, refuses trailing bytes, and
** reports a malformed frame as LPQ_EFORMAT naming the message type and field. */

#define LPQ_HASH_HEX_LEN 64
int lpq_sha256_hex(const void *data, size_t len, char out[65]); /* 64 hex digits; LPQ_EINVAL */
int lpq_sha256_file_hex(const char *path, char out[65], lpq_error_t *err); /* LPQ_EIO: names it */
/* 1 when s is exactly 64 lowercase hex digits (safe to use as a file name), else 0. */
int lpq_hash_valid(const char *s);

typedef struct lpq_sha256_t lpq_sha256_t; /* incremental SHA-256: a blob that comes in chunks */
lpq_sha256_t *lpq_sha256_new(void); /* NULL when memory runs out */
int lpq_sha256_update(lpq_sha256_t *h, const void *data, size_t len);
int lpq_sha256_final(lpq_sha256_t *h, char out[65]); /* the context may be reused afterwards */
void lpq_sha256_free(lpq_sha256_t **h);

#define LPQ_WIRE_VERSION 2 /* 2: a TASK layer carries its weights' per-channel flag */
#define LPQ_WIRE_HEADER 4
#define LPQ_WIRE_MAX_FRAME ((size_t)16 << 20) /* a decoder refuses larger frames */
#define LPQ_WIRE_MAX_LAYERS 4096
#define LPQ_WIRE_MAX_CHUNK ((size_t)1 << 20) /* BLOB chunk size bound */
#define LPQ_WIRE_ID_MAX 64                   /* worker ids, host names: bytes with terminator */

typedef enum lpq_msg_type_t {
  LPQ_MSG_READY = 1,     /* worker -> coordinator: I can take `threads` tasks */
  LPQ_MSG_HEARTBEAT = 2, /* both ways, every interval; any message also proves liveness */
  LPQ_MSG_TASK = 3,      /* coordinator -> worker: evaluate one genome */
  LPQ_MSG_RESULT = 4,    /* worker -> coordinator */
  LPQ_MSG_BLOB_GET = 5,  /* worker -> coordinator: a chunk of a blob by hash */
  LPQ_MSG_BLOB = 6,      /* coordinator -> worker: that chunk (or why not) */
  LPQ_MSG_BYE = 7,       /* worker -> coordinator: leaving, nothing is running */
  LPQ_MSG_DISCONNECT = 8 /* coordinator -> worker: unknown to me; reconnect and say READY */
} lpq_msg_type_t;

/* "READY", "HEARTBEAT", ...; "?" for an unknown type. */
const char *lpq_msg_type_name(int type);

/* A growable output buffer; reuse one per socket (lpq_wire_buf_reset) to avoid allocations. */
typedef struct lpq_wire_buf_t { uint8_t *data; size_t len, cap; } lpq_wire_buf_t;
void lpq_wire_buf_reset(lpq_wire_buf_t *b);
void lpq_wire_buf_clear(lpq_wire_buf_t *b); /* frees the storage */

/* The header of a frame: LPQ_EFORMAT for a short frame, a bad magic or an unknown type,
** LPQ_EUNSUP (message names both versions) for another protocol version. */
int lpq_wire_peek(const void *frame, size_t len, lpq_msg_type_t *type, lpq_error_t *err);

typedef struct lpq_ready_t {
  char worker_id[LPQ_WIRE_ID_MAX]; /* a name for people (--id, default host:pid) */
  char host[LPQ_WIRE_ID_MAX];
  uint32_t pid;
  uint32_t threads;         /* tasks it takes at once, 1..1024 */
  char capabilities[256];   /* comma-separated evaluator names, e.g. "synthetic" */
  char version[32];         /* software version */
} lpq_ready_t;

/* One evaluation. Decoded tasks own settings_json and layers (lpq_task_clear frees them). */
typedef struct lpq_task_t {
  uint64_t task_id; /* the dispatcher's, unique per coordinator run */
  int64_t job_id;
  char model_hash[65];  /* blob hashes; "" when absent (labels optional; synthetic: all) */
  char data_hash[65];
  char labels_hash[65];
  char *settings_json;  /* evaluation settings (temperature, objective, ...); NULL: "{}" */
  size_t layer_count;
  const lpq_layer_formats_t *layers; /* decoded tasks own it (lpq_task_clear frees it) */
} lpq_task_t;
void lpq_task_clear(lpq_task_t *t);

/* One evaluation's outcome (the shared facts of issue 7). NAN marks "null" for top1, edp_js. */
typedef struct lpq_result_t {
  uint64_t task_id;
  int status;      /* 0 scored; negative LPQ_E* failed (error says why). A worker that hands a
                      task back unstarted (shutting down) sends LPQ_ECANCELED. */
  char error[512];    /* as lpq_error_t's message */
  double l_co, l_co_global, l_co_local, l_cr;
  double mean_weight_bits, mean_act_bits;
  double top1;                    /* NAN: no labels */
  double latency_s, energy_pj;
  double edp_js;                  /* NAN: not computed */
  double eval_ms;                 /* the evaluation's wall time on the worker */
  double fetch_ms;                /* blob fetching before it (0 when cached) */
  /* filled by the dispatcher, not sent */
  double roundtrip_ms;            /* from dispatch to result */
  char worker_id[LPQ_WIRE_ID_MAX];
} lpq_result_t;
/* A result with every number 0 and top1, edp_js NAN. */
void lpq_result_init(lpq_result_t *r, uint64_t task_id);

typedef struct lpq_blob_get_t {
  char hash[65];
  uint64_t offset;
  uint32_t max_len; /* 1..LPQ_WIRE_MAX_CHUNK */
} lpq_blob_get_t;

typedef struct lpq_blob_chunk_t {
  char hash[65];
  int status;         /* 0, or LPQ_ENOTFOUND / LPQ_EIO with error */
  char error[256];
  uint64_t total_size;
  uint64_t offset;
  const uint8_t *data; /* decode: points into the frame (no copy) */
  size_t len;          /* <= LPQ_WIRE_MAX_CHUNK */
} lpq_blob_chunk_t;

/* Encoders append one whole message to b after resetting it; 0, or LPQ_EINVAL (a field out of
** range, named) / LPQ_ENOMEM. Decoders fill out from one frame; LPQ_EFORMAT naming the field. */
int lpq_wire_encode_empty(lpq_wire_buf_t *b, lpq_msg_type_t type, lpq_error_t *err);
int lpq_wire_encode_ready(lpq_wire_buf_t *b, const lpq_ready_t *r, lpq_error_t *err);
int lpq_wire_decode_ready(const void *frame, size_t len, lpq_ready_t *out, lpq_error_t *err);
int lpq_wire_encode_task(lpq_wire_buf_t *b, const lpq_task_t *t, lpq_error_t *err);
/* out is overwritten (not cleared first); on error it holds nothing to free. */
int lpq_wire_decode_task(const void *frame, size_t len, lpq_task_t *out, lpq_error_t *err);
int lpq_wire_encode_result(lpq_wire_buf_t *b, const lpq_result_t *r, lpq_error_t *err);
int lpq_wire_decode_result(const void *frame, size_t len, lpq_result_t *out, lpq_error_t *err);
int lpq_wire_encode_blob_get(lpq_wire_buf_t *b, const lpq_blob_get_t *g, lpq_error_t *err);
int lpq_wire_decode_blob_get(const void *frame, size_t len, lpq_blob_get_t *out,
                             lpq_error_t *err);
int lpq_wire_encode_blob(lpq_wire_buf_t *b, const lpq_blob_chunk_t *c, lpq_error_t *err);
int lpq_wire_decode_blob(const void *frame, size_t len, lpq_blob_chunk_t *out,
                         lpq_error_t *err);

/* ---- CURVE keys (ZeroMQ) for the pool across hosts (common/curve.c) ---------------------- */
#define LPQ_CURVE_KEY_LEN 40 /* a 32-byte key in Z85 text */

/* 0 when z85 is a 40-character Z85 key; LPQ_EFORMAT saying what is wrong. */
int lpq_curve_key_check(const char *z85, lpq_error_t *err);
/* Reads the key in a key file (`lpqctl keygen`'s NAME.key or NAME.pub: one line of 40 Z85
** characters; blank lines skipped) into z85. LPQ_EIO or LPQ_EFORMAT naming the file. */
int lpq_curve_key_read(const char *path, char z85[LPQ_CURVE_KEY_LEN + 1], lpq_error_t *err);
/* The public key of a secret key, both Z85. LPQ_EFORMAT on a bad key, LPQ_EUNSUP when libzmq
** has no CURVE. */
int lpq_curve_public_of(const char *secret_z85, char public_z85[LPQ_CURVE_KEY_LEN + 1],
                        lpq_error_t *err);
/* Makes a key pair: NAME.key (the secret, mode 0600) and NAME.pub (the public key, 0644); the
** public key also in public_z85. Existing files are never overwritten (LPQ_EIO naming them). */
int lpq_curve_keygen(const char *name, char public_z85[LPQ_CURVE_KEY_LEN + 1], lpq_error_t *err);
/* 1 when a ZeroMQ endpoint only reaches this host (ipc://, inproc://, tcp://127.x, tcp://[::1],
** tcp://localhost): where plain text is allowed without --insecure. */
int lpq_curve_endpoint_is_local(const char *endpoint);

#endif
