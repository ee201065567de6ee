/*
** coordinator/http/bridge.c: /api/METHOD and /export/JOB/FILE: a read-only JSON-RPC method
** called through an in-process API client (lpq_api_local_*), so that the dashboard sees what
** lpqctl sees, validated and counted the same way. A call may be answered later (job.export
** runs on the work queue); a client that leaves meanwhile is noticed through its request's
** memory pool, and the answer is dropped.
*/
#include "coordinator/http/http_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct pending_ref_t {
  http_pending_t *p;
} pending_ref_t;

/* The files of /export/JOB/FILE: job.export's "what" and where the bytes are in its result. */
static const struct {
  const char *file, *what, *member, *type;
} export_files[] = {
    {"config.json", "config", "config", "application/json"},
    {"model_lp.onnx", "onnx", "onnx", "application/octet-stream"},
    {"weights.lpw", "packed", "packed", "application/octet-stream"},
    {"model_q.onnx", "quantized", "quantized", "application/octet-stream"},
    {"model_q.encodings.json", "quantized", "encodings", "application/json"},
};
#define EXPORT_FILES (sizeof export_files / sizeof export_files[0])

struct http_pending_t {
  lpq_http_server_t *s;
  h2o_req_t *req;       /* NULL once the client has gone */
  pending_ref_t *ref;   /* in req's pool */
  lpq_api_local_t *local;
  int export_file;      /* index in export_files; -1: an /api call */
  int64_t job;
  char *cache_key;      /* the answer is kept under it (NULL: not cacheable) */
  http_pending_t *prev, *next;
};

static const char *const allowed_methods[] = {
    "job.list", "job.get", "job.pareto", "job.sensitivity", "worker.list", "server.stats",
    "job.export", "db.query"};
/* db.query through the bridge: one job's rows of these (each read through an index on job) */
static const char *const allowed_tables[] = {"generations", "v_generation_stats", "v_pareto",
                                             "events"};

int lpq_http_method_allowed(const char *method) {
  for (size_t i = 0; method && i < sizeof allowed_methods / sizeof allowed_methods[0]; i++)
    if (strcmp(method, allowed_methods[i]) == 0)
      return 1;
  return 0;
}

int lpq_http_call_allowed(const char *method, const json_t *params) {
  if (!lpq_http_method_allowed(method))
    return 0;
  if (strcmp(method, "job.export") == 0)
    return json_object_get(params, "dir") == NULL; /* bytes back, nothing written */
  if (strcmp(method, "db.query") == 0) {
    const char *table = json_string_value(json_object_get(params, "table"));
    if (!json_is_integer(json_object_get(json_object_get(params, "where"), "job")))
      return 0;
    for (size_t i = 0; table && i < sizeof allowed_tables / sizeof allowed_tables[0]; i++)
      if (strcmp(table, allowed_tables[i]) == 0)
        return 1;
    return 0;
  }
  return 1;
}

static void on_req_disposed(void *arg) {
  pending_ref_t *r = arg;
  if (r->p) {
    r->p->req = NULL;
    r->p->ref = NULL;
  }
}

static void pending_free(http_pending_t *p) {
  lpq_http_server_t *s = p->s;
  if (p->prev)
    p->prev->next = p->next;
  else
    s->pendings = p->next;
  if (p->next)
    p->next->prev = p->prev;
  if (p->ref)
    p->ref->p = NULL;
  lpq_api_local_free(&p->local);
  free(p->cache_key);
  free(p);
}

/* ---- the cache of answers that cannot change ---- */

/* The key of a cacheable call (malloc'd), or NULL: job.pareto of a named generation. */
static char *cache_key(const char *method, const json_t *params) {
  if (strcmp(method, "job.pareto") != 0 || !json_is_integer(json_object_get(params, "generation")))
    return NULL;
  char *text = json_dumps(params, JSON_COMPACT | JSON_SORT_KEYS);
  char *key = text ? malloc(strlen(method) + strlen(text) + 2) : NULL;
  if (key)
    sprintf(key, "%s %s", method, text);
  free(text);
  return key;
}

static const http_cached_t *cache_find(lpq_http_server_t *s, const char *key) {
  for (size_t i = 0; key && i < HTTP_CACHE_SLOTS; i++)
    if (s->cache[i].key && strcmp(s->cache[i].key, key) == 0)
      return &s->cache[i];
  return NULL;
}

static void cache_put(lpq_http_server_t *s, char *key, const char *body, size_t len) {
  http_cached_t *c = &s->cache[s->cache_next];
  char *copy = malloc(len + 1);
  if (copy == NULL) {
    free(key);
    return;
  }
  memcpy(copy, body, len + 1);
  free(c->key);
  free(c->body);
  *c = (http_cached_t){key, copy, len};
  s->cache_next = (s->cache_next + 1) % HTTP_CACHE_SLOTS;
}

void lpq__http_cache_free(lpq_http_server_t *s) {
  for (size_t i = 0; i < HTTP_CACHE_SLOTS; i++) {
    free(s->cache[i].key);
    free(s->cache[i].body);
    s->cache[i] = (http_cached_t){0};
  }
}

void lpq__http_pendings_free(lpq_http_server_t *s) {
  while (s->pendings) {
    http_pending_t *p = s->pendings;
    if (p->req)
      lpq__http_error(s, p->req, 503, "the coordinator is shutting down");
    pending_free(p);
  }
}

/* The HTTP status for a JSON-RPC error code. */
static int status_of(json_int_t code) {
  switch (code) {
  case LPQ_API_E_NO_METHOD:
  case LPQ_API_E_JOB_NOT_FOUND:
  case LPQ_API_E_BLOB_NOT_FOUND:
  case LPQ_API_E_NOT_FOUND: return 404;
  case LPQ_API_E_UNAUTHORIZED: return 401;
  case LPQ_API_E_LIMIT: return 413;
  case LPQ_API_E_JOB_STATE: return 409;
  case LPQ_API_E_UNAVAILABLE: return 503;
  case LPQ_API_E_INTERNAL: return 500;
  default: return 400;
  }
}

/* Sends v as JSON; a 200 answer with a cache key (taken) is kept for the next viewer. */
static void send_json(lpq_http_server_t *s, h2o_req_t *req, int status, const json_t *v,
                      const char *const *headers, size_t indent, char **key) {
  char *text = json_dumps(v, JSON_ENCODE_ANY | (indent ? JSON_INDENT(indent) : JSON_COMPACT));
  if (text == NULL) {
    if (req)
      lpq__http_error(s, req, 500, "out of memory");
    return;
  }
  size_t len = strlen(text);
  if (req)
    lpq__http_respond(s, req, status, "application/json", text, len, headers);
  if (status == 200 && key && *key) {
    cache_put(s, *key, text, len);
    *key = NULL;
  }
  free(text);
}

/* An export's file out of job.export's result. */
static void send_export(http_pending_t *p, const json_t *result) {
  lpq_http_server_t *s = p->s;
  const json_t *v = json_object_get(result, export_files[p->export_file].member);
  char disposition[160];
  snprintf(disposition, sizeof disposition, "attachment; filename=\"job%lld_%s\"",
           (long long)p->job, export_files[p->export_file].file);
  const char *const headers[] = {"content-disposition", disposition, NULL};
  if (json_is_object(v) && json_object_get(v, "base64") == NULL) { /* the config itself */
    send_json(s, p->req, 200, v, headers, 2, NULL);
    return;
  }
  const char *b64 = json_string_value(json_object_get(v, "base64"));
  unsigned char *bytes = NULL;
  size_t n = 0;
  lpq_error_t err;
  if (b64 == NULL || lpq_base64_decode(b64, strlen(b64), &bytes, &n, &err) != 0) {
    lpq__http_error(s, p->req, 500, "job.export gave no such file");
    return;
  }
  lpq__http_respond(s, p->req, 200, export_files[p->export_file].type, (const char *)bytes, n,
                    headers);
  free(bytes);
}

static void on_message(void *ctx, const json_t *msg) {
  http_pending_t *p = ctx;
  if (json_object_get(msg, "method")) /* a notification: not for a plain call */
    return;
  const json_t *error = json_object_get(msg, "error");
  if (p->req && error)
    send_json(p->s, p->req, status_of(json_integer_value(json_object_get(error, "code"))), error,
              NULL, 0, NULL);
  else if (p->req && p->export_file >= 0)
    send_export(p, json_object_get(msg, "result"));
  else if (!error && (p->req || p->cache_key)) /* kept even when its viewer has gone */
    send_json(p->s, p->req, 200, json_object_get(msg, "result"), NULL, 0, &p->cache_key);
  pending_free(p); /* the API keeps its connection until the call is released */
}

/* Calls method with params (stolen) for req; the answer is sent by on_message. */
static void call(lpq_http_server_t *s, h2o_req_t *req, const char *method, json_t *params,
                 int export_file, int64_t job, char *key) {
  http_pending_t *p = calloc(1, sizeof *p);
  pending_ref_t *ref = p ? h2o_mem_alloc_shared(&req->pool, sizeof *ref, on_req_disposed) : NULL;
  if (ref == NULL) {
    free(p);
    free(key);
    json_decref(params);
    lpq__http_error(s, req, 500, "out of memory");
    return;
  }
  ref->p = p;
  p->s = s;
  p->req = req;
  p->ref = ref;
  p->export_file = export_file;
  p->job = job;
  p->cache_key = key;
  p->next = s->pendings;
  if (s->pendings)
    s->pendings->prev = p;
  s->pendings = p;
  p->local = lpq_api_local_new(s->api, on_message, p);
  if (p->local == NULL) {
    json_decref(params);
    lpq__http_error(s, req, 503, "the API is not available");
    pending_free(p);
    return;
  }
  if (lpq_api_local_call(p->local, method, params, ++s->next_id) != 0) {
    /* not called at all (on_message has not run, p is still here): answer now */
    lpq__http_error(s, req, 503, "the API is not available");
    pending_free(p);
  }
}

void lpq__http_api(lpq_http_server_t *s, h2o_req_t *req, const char *method, size_t len) {
  char name[65];
  int ok = len > 0 && len < sizeof name;
  for (size_t i = 0; ok && i < len; i++)
    ok = (method[i] >= 'a' && method[i] <= 'z') || method[i] == '.' || method[i] == '_';
  if (!ok) {
    lpq__http_error(s, req, 404, "no such method");
    return;
  }
  memcpy(name, method, len);
  name[len] = '\0';
  if (!lpq_http_method_allowed(name)) {
    lpq__http_error(s, req, lpq_api_schema(name) ? 403 : 404,
                    lpq_api_schema(name) ? "the dashboard serves read-only methods only"
                                         : "no such method");
    return;
  }
  int post = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"));
  char *query = post ? NULL : lpq__http_query_param(req, "params");
  const char *text = post ? req->entity.base : query;
  size_t text_len = post ? req->entity.len : query ? strlen(query) : 0;
  json_t *params = NULL;
  if (text_len > 0) {
    json_error_t jerr;
    params = json_loadb(text, text_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(params)) {
      char msg[300];
      snprintf(msg, sizeof msg, "params must be a JSON object%s%s", params ? "" : ": ",
               params ? "" : jerr.text);
      json_decref(params);
      free(query);
      lpq__http_error(s, req, 400, msg);
      return;
    }
  } else if (!post && req->query_at != SIZE_MAX &&
             h2o_strstr(req->path.base + req->query_at, req->path.len - req->query_at,
                        H2O_STRLIT("params=")) != SIZE_MAX) {
    free(query);
    lpq__http_error(s, req, 400, "params: a bad percent escape");
    return;
  }
  free(query);
  if (params == NULL)
    params = json_object();
  if (!lpq_http_call_allowed(name, params)) {
    json_decref(params);
    lpq__http_error(s, req, 403, strcmp(name, "db.query") == 0
                    ? "db.query through the dashboard: one job's rows (where.job) of "
                      "generations, v_generation_stats, v_pareto or events"
                    : "job.export through the dashboard returns bytes; \"dir\" is refused");
    return;
  }
  char *key = cache_key(name, params);
  const http_cached_t *hit = cache_find(s, key);
  if (hit) {
    s->cache_hits++;
    lpq__http_respond(s, req, 200, "application/json", hit->body, hit->len, NULL);
    free(key);
    json_decref(params);
    return;
  }
  call(s, req, name, params, -1, 0, key);
}

void lpq__http_export(lpq_http_server_t *s, h2o_req_t *req, int64_t job, const char *file,
                      size_t len) {
  size_t k = 0;
  while (k < EXPORT_FILES &&
         !(strlen(export_files[k].file) == len && memcmp(export_files[k].file, file, len) == 0))
    k++;
  if (k == EXPORT_FILES) {
    lpq__http_error(s, req, 404, "no such export (config.json, model_lp.onnx, weights.lpw, "
                    "model_q.onnx, model_q.encodings.json)");
    return;
  }
  json_t *params = json_pack("{sI s[s]}", "job", (json_int_t)job, "what", export_files[k].what);
  char *genome = lpq__http_query_param(req, "genome");
  if (genome && params)
    json_object_set_new(params, "genome", json_string(genome)); /* the schema checks it */
  free(genome);
  if (params == NULL) {
    lpq__http_error(s, req, 500, "out of memory");
    return;
  }
  call(s, req, "job.export", params, (int)k, job, NULL);
}
