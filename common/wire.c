/*
** common/wire.c: the worker pool's messages (common.h, "wire"): a 4-byte header and a
** little-endian binary payload. Every read goes through a cursor that checks the bytes left,
** so a truncated or garbage frame is an LPQ_EFORMAT naming the message and field.
*/
#include "common/common.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const type_names[] = {
    "?", "READY", "HEARTBEAT", "TASK", "RESULT", "BLOB_GET", "BLOB", "BYE", "DISCONNECT",
};

const char *lpq_msg_type_name(int type)
{
  if (type < LPQ_MSG_READY || type > LPQ_MSG_DISCONNECT)
    return "?";
  return type_names[type];
}

/* ---- output ------------------------------------------------------------------------------ */

void lpq_wire_buf_reset(lpq_wire_buf_t *b) { b->len = 0; }

void lpq_wire_buf_clear(lpq_wire_buf_t *b)
{
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

/* Room for n more bytes; 0 or LPQ_ENOMEM. */
static int buf_reserve(lpq_wire_buf_t *b, size_t n)
{
  if (n <= b->cap - b->len)
    return 0;
  if (n > LPQ_WIRE_MAX_FRAME || b->len > LPQ_WIRE_MAX_FRAME - n)
    return LPQ_ERANGE;
  size_t cap = b->cap ? b->cap : 256;
  while (cap - b->len < n)
    cap *= 2;
  uint8_t *p = realloc(b->data, cap);
  if (p == NULL)
    return LPQ_ENOMEM;
  b->data = p;
  b->cap = cap;
  return 0;
}

/* A writer remembers its first failure so encoders check once at the end. */
typedef struct writer_t {
  lpq_wire_buf_t *b;
  int rc;
} writer_t;

static void put_bytes(writer_t *w, const void *p, size_t n)
{
  if (w->rc != 0)
    return;
  if ((w->rc = buf_reserve(w->b, n)) != 0)
    return;
  if (n > 0)
    memcpy(w->b->data + w->b->len, p, n);
  w->b->len += n;
}

static void put_u64(writer_t *w, uint64_t v)
{
  uint8_t x[8];
  for (int i = 0; i < 8; i++)
    x[i] = (uint8_t)(v >> (8 * i));
  put_bytes(w, x, 8);
}

static void put_u32(writer_t *w, uint32_t v)
{
  uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
  put_bytes(w, x, 4);
}

static void put_u8(writer_t *w, uint8_t v) { put_bytes(w, &v, 1); }

static void put_f64(writer_t *w, double v)
{
  uint64_t u;
  memcpy(&u, &v, 8);
  put_u64(w, u);
}

static void put_str(writer_t *w, const char *s)
{
  size_t n = s ? strlen(s) : 0;
  if (n > UINT32_MAX) {
    w->rc = LPQ_ERANGE;
    return;
  }
  put_u32(w, (uint32_t)n);
  put_bytes(w, s, n);
}

static writer_t writer_start(lpq_wire_buf_t *b, lpq_msg_type_t type)
{
  writer_t w = {b, 0};
  lpq_wire_buf_reset(b);
  uint8_t h[LPQ_WIRE_HEADER] = {'L', 'Q', LPQ_WIRE_VERSION, (uint8_t)type};
  put_bytes(&w, h, sizeof h);
  return w;
}

static int writer_end(writer_t *w, lpq_msg_type_t type, lpq_error_t *err)
{
  if (w->rc == 0)
    return 0;
  return lpq_errorf(err, w->rc, "wire %s: %s", lpq_msg_type_name(type),
                    w->rc == LPQ_ENOMEM ? "out of memory" : "message too large");
}

/* ---- input ------------------------------------------------------------------------------- */

typedef struct reader_t {
  const uint8_t *p;
  size_t left;
  const char *msg;   /* message type, for errors */
  const char *field; /* the field that failed */
  int bad;
} reader_t;

static int take(reader_t *r, const char *field, size_t n, const uint8_t **out)
{
  if (r->bad)
    return -1;
  if (n > r->left) {
    r->bad = 1;
    r->field = field;
    return -1;
  }
  *out = r->p;
  r->p += n;
  r->left -= n;
  return 0;
}

static uint64_t get_u64(reader_t *r, const char *field)
{
  const uint8_t *x;
  if (take(r, field, 8, &x) != 0)
    return 0;
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--)
    v = (v << 8) | x[i];
  return v;
}

static uint32_t get_u32(reader_t *r, const char *field)
{
  const uint8_t *x;
  if (take(r, field, 4, &x) != 0)
    return 0;
  return (uint32_t)x[0] | (uint32_t)x[1] << 8 | (uint32_t)x[2] << 16 | (uint32_t)x[3] << 24;
}

static uint8_t get_u8(reader_t *r, const char *field)
{
  const uint8_t *x;
  return take(r, field, 1, &x) == 0 ? x[0] : 0;
}

static double get_f64(reader_t *r, const char *field)
{
  uint64_t u = get_u64(r, field);
  double v;
  memcpy(&v, &u, 8);
  return v;
}

static void fail(reader_t *r, const char *field)
{
  if (!r->bad) {
    r->bad = 1;
    r->field = field;
  }
}

/* A string into out (cap bytes with the terminator): longer ones or NUL inside are refused
** unless truncate is set (error texts are cut, not refused). */
static void get_str(reader_t *r, const char *field, char *out, size_t cap, int truncate)
{
  out[0] = '\0';
  uint32_t n = get_u32(r, field);
  const uint8_t *x;
  if (take(r, field, n, &x) != 0)
    return;
  if (memchr(x, '\0', n) != NULL || (n >= cap && !truncate)) {
    fail(r, field);
    return;
  }
  size_t k = n < cap ? n : cap - 1;
  memcpy(out, x, k);
  out[k] = '\0';
}

/* A blob hash: empty allowed when optional, else exactly 64 lowercase hex digits. */
static void get_hash(reader_t *r, const char *field, char out[65], int optional)
{
  get_str(r, field, out, 65, 0);
  if (!r->bad && !(optional && out[0] == '\0') && !lpq_hash_valid(out))
    fail(r, field);
}

static int reader_start(reader_t *r, const void *frame, size_t len, lpq_msg_type_t want,
                        lpq_error_t *err)
{
  lpq_msg_type_t type;
  int rc = lpq_wire_peek(frame, len, &type, err);
  if (rc != 0)
    return rc;
  if (type != want)
    return lpq_errorf(err, LPQ_EFORMAT, "wire: expected %s, got %s", lpq_msg_type_name(want),
                      lpq_msg_type_name(type));
  r->p = (const uint8_t *)frame + LPQ_WIRE_HEADER;
  r->left = len - LPQ_WIRE_HEADER;
  r->msg = lpq_msg_type_name(want);
  r->field = NULL;
  r->bad = 0;
  return 0;
}

static int reader_end(reader_t *r, lpq_error_t *err)
{
  if (r->bad)
    return lpq_errorf(err, LPQ_EFORMAT, "wire %s: field '%s' is truncated or invalid", r->msg,
                      r->field);
  if (r->left != 0)
    return lpq_errorf(err, LPQ_EFORMAT, "wire %s: %zu unexpected trailing bytes", r->msg,
                      r->left);
  return 0;
}

int lpq_wire_peek(const void *frame, size_t len, lpq_msg_type_t *type, lpq_error_t *err)
{
  const uint8_t *h = frame;
  if (frame == NULL || len < LPQ_WIRE_HEADER)
    return lpq_errorf(err, LPQ_EFORMAT, "wire: frame of %zu bytes is shorter than the header",
                      len);
  if (len > LPQ_WIRE_MAX_FRAME)
    return lpq_errorf(err, LPQ_EFORMAT, "wire: frame of %zu bytes exceeds %zu", len,
                      LPQ_WIRE_MAX_FRAME);
  if (h[0] != 'L' || h[1] != 'Q')
    return lpq_errorf(err, LPQ_EFORMAT, "wire: bad magic 0x%02x%02x", h[0], h[1]);
  if (h[2] != LPQ_WIRE_VERSION)
    return lpq_errorf(err, LPQ_EUNSUP, "wire: protocol version %d, this build speaks %d", h[2],
                      LPQ_WIRE_VERSION);
  if (h[3] < LPQ_MSG_READY || h[3] > LPQ_MSG_DISCONNECT)
    return lpq_errorf(err, LPQ_EFORMAT, "wire: unknown message type %d", h[3]);
  if (type != NULL)
    *type = (lpq_msg_type_t)h[3];
  return 0;
}

/* ---- messages ---------------------------------------------------------------------------- */

int lpq_wire_encode_empty(lpq_wire_buf_t *b, lpq_msg_type_t type, lpq_error_t *err)
{
  if (type != LPQ_MSG_HEARTBEAT && type != LPQ_MSG_BYE && type != LPQ_MSG_DISCONNECT)
    return lpq_errorf(err, LPQ_EINVAL, "wire: %s is not an empty message",
                      lpq_msg_type_name(type));
  writer_t w = writer_start(b, type);
  return writer_end(&w, type, err);
}

int lpq_wire_encode_ready(lpq_wire_buf_t *b, const lpq_ready_t *r, lpq_error_t *err)
{
  if (r->threads < 1 || r->threads > 1024)
    return lpq_errorf(err, LPQ_EINVAL, "wire READY: threads = %u is out of range 1..1024",
                      r->threads);
  writer_t w = writer_start(b, LPQ_MSG_READY);
  put_str(&w, r->worker_id);
  put_str(&w, r->host);
  put_u32(&w, r->pid);
  put_u32(&w, r->threads);
  put_str(&w, r->capabilities);
  put_str(&w, r->version);
  return writer_end(&w, LPQ_MSG_READY, err);
}

int lpq_wire_decode_ready(const void *frame, size_t len, lpq_ready_t *out, lpq_error_t *err)
{
  reader_t r;
  int rc = reader_start(&r, frame, len, LPQ_MSG_READY, err);
  if (rc != 0)
    return rc;
  memset(out, 0, sizeof *out);
  get_str(&r, "worker_id", out->worker_id, sizeof out->worker_id, 0);
  get_str(&r, "host", out->host, sizeof out->host, 0);
  out->pid = get_u32(&r, "pid");
  out->threads = get_u32(&r, "threads");
  if (!r.bad && (out->threads < 1 || out->threads > 1024))
    fail(&r, "threads");
  get_str(&r, "capabilities", out->capabilities, sizeof out->capabilities, 0);
  get_str(&r, "version", out->version, sizeof out->version, 0);
  return reader_end(&r, err);
}

void lpq_task_clear(lpq_task_t *t)
{
  if (t == NULL)
    return;
  free(t->settings_json);
  free((void *)t->layers); /* owned by a decoded task */
  t->settings_json = NULL;
  t->layers = NULL;
  t->layer_count = 0;
}

/* n = 0 (fp32) must come with zero fields; otherwise a valid LP format. */
static int format_ok(const lp_format_t *f)
{
  if (f->n == 0)
    return f->es == 0 && f->rs == 0 && f->sf == 0;
  return lp_format_validate(f, NULL) == 0;
}

static int hash_field_ok(const char *h, int optional)
{
  return (optional && h[0] == '\0') || lpq_hash_valid(h);
}

int lpq_wire_encode_task(lpq_wire_buf_t *b, const lpq_task_t *t, lpq_error_t *err)
{
  if (!hash_field_ok(t->model_hash, 1) || !hash_field_ok(t->data_hash, 1) ||
      !hash_field_ok(t->labels_hash, 1))
    return lpq_errorf(err, LPQ_EINVAL, "wire TASK %llu: a blob hash is not 64 lowercase hex "
                      "digits", (unsigned long long)t->task_id);
  if (t->layer_count > LPQ_WIRE_MAX_LAYERS || (t->layer_count > 0 && t->layers == NULL))
    return lpq_errorf(err, LPQ_EINVAL, "wire TASK %llu: layer_count = %zu (at most %d)",
                      (unsigned long long)t->task_id, t->layer_count, LPQ_WIRE_MAX_LAYERS);
  for (size_t i = 0; i < t->layer_count; i++)
    if (!format_ok(&t->layers[i].weight) || !format_ok(&t->layers[i].act))
      return lpq_errorf(err, LPQ_EINVAL, "wire TASK %llu: layer %zu has an invalid format",
                        (unsigned long long)t->task_id, i);
  writer_t w = writer_start(b, LPQ_MSG_TASK);
  put_u64(&w, t->task_id);
  put_u64(&w, (uint64_t)t->job_id);
  put_str(&w, t->model_hash);
  put_str(&w, t->data_hash);
  put_str(&w, t->labels_hash);
  put_str(&w, t->settings_json ? t->settings_json : "{}");
  put_u32(&w, (uint32_t)t->layer_count);
  for (size_t i = 0; i < t->layer_count; i++) {
    const lp_format_t *f[2] = {&t->layers[i].weight, &t->layers[i].act};
    for (int k = 0; k < 2; k++) {
      put_u8(&w, (uint8_t)f[k]->n);
      put_u8(&w, (uint8_t)f[k]->es);
      put_u8(&w, (uint8_t)f[k]->rs);
      put_u8(&w, (uint8_t)(int8_t)f[k]->sf);
    }
    put_u8(&w, t->layers[i].weight_per_channel ? 1 : 0);
  }
  return writer_end(&w, LPQ_MSG_TASK, err);
}

int lpq_wire_decode_task(const void *frame, size_t len, lpq_task_t *out, lpq_error_t *err)
{
  reader_t r;
  int rc = reader_start(&r, frame, len, LPQ_MSG_TASK, err);
  if (rc != 0)
    return rc;
  memset(out, 0, sizeof *out);
  out->task_id = get_u64(&r, "task_id");
  out->job_id = (int64_t)get_u64(&r, "job_id");
  get_hash(&r, "model_hash", out->model_hash, 1);
  get_hash(&r, "data_hash", out->data_hash, 1);
  get_hash(&r, "labels_hash", out->labels_hash, 1);
  uint32_t slen = get_u32(&r, "settings_json");
  const uint8_t *s = NULL;
  take(&r, "settings_json", slen, &s);
  if (!r.bad && memchr(s, '\0', slen) != NULL)
    fail(&r, "settings_json");
  uint32_t count = get_u32(&r, "layer_count");
  /* The count is checked against the bytes present before anything is allocated. */
  if (!r.bad && (count > LPQ_WIRE_MAX_LAYERS || (size_t)count * 9 != r.left))
    fail(&r, "layer_count");
  if (r.bad)
    return reader_end(&r, err);
  lpq_layer_formats_t *layers = count ? calloc(count, sizeof *layers) : NULL;
  out->settings_json = malloc((size_t)slen + 1);
  out->layers = layers;
  if (out->settings_json == NULL || (count && layers == NULL)) {
    lpq_task_clear(out);
    return lpq_errorf(err, LPQ_ENOMEM, "wire TASK: out of memory for %u layers", count);
  }
  memcpy(out->settings_json, s, slen);
  out->settings_json[slen] = '\0';
  out->layer_count = count;
  for (uint32_t i = 0; i < count && !r.bad; i++) {
    lp_format_t *f[2] = {&layers[i].weight, &layers[i].act};
    for (int k = 0; k < 2; k++) {
      f[k]->n = get_u8(&r, "layers");
      f[k]->es = get_u8(&r, "layers");
      f[k]->rs = get_u8(&r, "layers");
      f[k]->sf = (int8_t)get_u8(&r, "layers");
    }
    uint8_t per_channel = get_u8(&r, "layers");
    layers[i].weight_per_channel = per_channel;
    if (!format_ok(f[0]) || !format_ok(f[1]) || per_channel > 1) {
      lpq_task_clear(out);
      return lpq_errorf(err, LPQ_EFORMAT, "wire TASK %llu: layer %u has an invalid format",
                        (unsigned long long)out->task_id, i);
    }
  }
  rc = reader_end(&r, err);
  if (rc != 0)
    lpq_task_clear(out);
  return rc;
}

void lpq_result_init(lpq_result_t *r, uint64_t task_id)
{
  memset(r, 0, sizeof *r);
  r->task_id = task_id;
  r->top1 = NAN;
  r->edp_js = NAN;
}

int lpq_wire_encode_result(lpq_wire_buf_t *b, const lpq_result_t *r, lpq_error_t *err)
{
  writer_t w = writer_start(b, LPQ_MSG_RESULT);
  put_u64(&w, r->task_id);
  put_u32(&w, (uint32_t)r->status);
  put_str(&w, r->status != 0 ? r->error : "");
  const double v[] = {r->l_co,      r->l_co_global, r->l_co_local, r->l_cr,
                      r->mean_weight_bits, r->mean_act_bits, r->top1, r->latency_s,
                      r->energy_pj, r->edp_js, r->eval_ms, r->fetch_ms};
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
    put_f64(&w, v[i]);
  return writer_end(&w, LPQ_MSG_RESULT, err);
}

int lpq_wire_decode_result(const void *frame, size_t len, lpq_result_t *out, lpq_error_t *err)
{
  reader_t r;
  int rc = reader_start(&r, frame, len, LPQ_MSG_RESULT, err);
  if (rc != 0)
    return rc;
  lpq_result_init(out, 0);
  out->task_id = get_u64(&r, "task_id");
  out->status = (int32_t)get_u32(&r, "status");
  if (!r.bad && out->status > 0)
    fail(&r, "status");
  get_str(&r, "error", out->error, sizeof out->error, 1);
  double *v[] = {&out->l_co,      &out->l_co_global, &out->l_co_local, &out->l_cr,
                 &out->mean_weight_bits, &out->mean_act_bits, &out->top1, &out->latency_s,
                 &out->energy_pj, &out->edp_js, &out->eval_ms, &out->fetch_ms};
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
    *v[i] = get_f64(&r, "values");
  return reader_end(&r, err);
}

int lpq_wire_encode_blob_get(lpq_wire_buf_t *b, const lpq_blob_get_t *g, lpq_error_t *err)
{
  if (!lpq_hash_valid(g->hash) || g->max_len < 1 || g->max_len > LPQ_WIRE_MAX_CHUNK)
    return lpq_errorf(err, LPQ_EINVAL, "wire BLOB_GET: bad hash or max_len %u", g->max_len);
  writer_t w = writer_start(b, LPQ_MSG_BLOB_GET);
  put_str(&w, g->hash);
  put_u64(&w, g->offset);
  put_u32(&w, g->max_len);
  return writer_end(&w, LPQ_MSG_BLOB_GET, err);
}

int lpq_wire_decode_blob_get(const void *frame, size_t len, lpq_blob_get_t *out,
                             lpq_error_t *err)
{
  reader_t r;
  int rc = reader_start(&r, frame, len, LPQ_MSG_BLOB_GET, err);
  if (rc != 0)
    return rc;
  memset(out, 0, sizeof *out);
  get_hash(&r, "hash", out->hash, 0);
  out->offset = get_u64(&r, "offset");
  out->max_len = get_u32(&r, "max_len");
  if (!r.bad && (out->max_len < 1 || out->max_len > LPQ_WIRE_MAX_CHUNK))
    fail(&r, "max_len");
  return reader_end(&r, err);
}

int lpq_wire_encode_blob(lpq_wire_buf_t *b, const lpq_blob_chunk_t *c, lpq_error_t *err)
{
  if (!lpq_hash_valid(c->hash) || c->len > LPQ_WIRE_MAX_CHUNK || (c->len && c->data == NULL) ||
      c->offset > c->total_size || c->len > c->total_size - c->offset)
    return lpq_errorf(err, LPQ_EINVAL, "wire BLOB: bad hash, or chunk %zu at %llu of %llu",
                      c->len, (unsigned long long)c->offset,
                      (unsigned long long)c->total_size);
  writer_t w = writer_start(b, LPQ_MSG_BLOB);
  put_str(&w, c->hash);
  put_u32(&w, (uint32_t)c->status);
  put_str(&w, c->status != 0 ? c->error : "");
  put_u64(&w, c->total_size);
  put_u64(&w, c->offset);
  put_u32(&w, (uint32_t)c->len);
  put_bytes(&w, c->data, c->len);
  return writer_end(&w, LPQ_MSG_BLOB, err);
}

int lpq_wire_decode_blob(const void *frame, size_t len, lpq_blob_chunk_t *out,
                         lpq_error_t *err)
{
  reader_t r;
  int rc = reader_start(&r, frame, len, LPQ_MSG_BLOB, err);
  if (rc != 0)
    return rc;
  memset(out, 0, sizeof *out);
  get_hash(&r, "hash", out->hash, 0);
  out->status = (int32_t)get_u32(&r, "status");
  if (!r.bad && out->status > 0)
    fail(&r, "status");
  get_str(&r, "error", out->error, sizeof out->error, 1);
  out->total_size = get_u64(&r, "total_size");
  out->offset = get_u64(&r, "offset");
  uint32_t n = get_u32(&r, "len");
  if (!r.bad && (n > LPQ_WIRE_MAX_CHUNK || out->offset > out->total_size ||
                 n > out->total_size - out->offset))
    fail(&r, "len");
  take(&r, "data", n, &out->data);
  out->len = r.bad ? 0 : n;
  if (r.bad)
    out->data = NULL;
  return reader_end(&r, err);
}
