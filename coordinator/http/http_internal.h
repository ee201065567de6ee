/*
** coordinator/http/http_internal.h: what the files of the dashboard's HTTP server share
** (server.c: listening, connections, authentication, routing, pages; bridge.c: /api and
** /export through in-process API clients; events.c: the event streams; the generated
** assets file: the pages). Non-static names start with lpq__; other folders use http.h.
*/
#ifndef LPQ_HTTP_INTERNAL_H
#define LPQ_HTTP_INTERNAL_H

#include "coordinator/http/http.h"

#include <h2o.h>

/* One compiled-in file (mk/dashboard.mk writes the table). */
typedef struct lpq__http_asset_t {
  const char *path;  /* e.g. "/assets/app.js"; "/" is the page itself */
  const char *type;  /* Content-Type */
  const char *body;
  size_t len;
} lpq__http_asset_t;
extern const lpq__http_asset_t lpq__http_assets[];
extern const size_t lpq__http_asset_count;

typedef struct http_pending_t http_pending_t; /* an /api or /export call waiting for its answer */

/* Answers that cannot change, kept for the next viewer: job.pareto of a named generation
** (a committed generation is never rewritten but by the same replay). */
#define HTTP_CACHE_SLOTS 64
typedef struct http_cached_t {
  char *key;   /* "METHOD PARAMS" (params compact, keys sorted) */
  char *body;  /* the JSON answer */
  size_t len;
} http_cached_t;
typedef struct http_stream_t http_stream_t;   /* an event stream */

struct lpq_http_server_t {
  uv_loop_t *loop;
  lpq_api_server_t *api;
  lpq_http_options_t opts;
  char *host, *token;          /* owned copies */
  uv_tcp_t listener;
  uv_timer_t events_timer;     /* sends the events that waited for HTTP_EVENT_MS */
  int port;
  h2o_globalconf_t config;
  h2o_context_t ctx;
  h2o_accept_ctx_t accept_ctx;
  int h2o_ready;               /* config and ctx initialised */
  int freeing;
  size_t conn_count;
  http_pending_t *pendings;    /* calls not answered yet */
  http_stream_t *streams;
  lpq_http_stats_t stats;
  json_int_t next_id;
  /* the last progress object sent and its text: one notification reaches every stream of a
  ** job with the same object, written once (events.c) */
  json_t *last_progress;
  char *last_text;
  http_cached_t cache[HTTP_CACHE_SLOTS];
  size_t cache_next;           /* the slot replaced next (round robin) */
  uint64_t cache_hits;
};

/* server.c */
/* Sends a complete response: status, content type, body (copied), extra header (name: value
** pairs, NULL-terminated; may be NULL). Counts 4xx and 5xx. */
void lpq__http_respond(lpq_http_server_t *s, h2o_req_t *req, int status, const char *type,
                       const char *body, size_t len, const char *const *headers);
/* An error as a small JSON document {"error": {"code": status, "message": ...}}. */
void lpq__http_error(lpq_http_server_t *s, h2o_req_t *req, int status, const char *message);
/* Percent-decodes src[0..len) (and '+' as a space when form is 1) into a new NUL-terminated
** string (the caller frees it); NULL when memory runs out or an escape is not two hex digits. */
char *lpq__http_unescape(const char *src, size_t len, int form);
/* The value of query parameter name in req's query (decoded; the caller frees it), or NULL. */
char *lpq__http_query_param(h2o_req_t *req, const char *name);

/* bridge.c */
/* /api/METHOD: params from ?params= (GET) or the body (POST). */
void lpq__http_api(lpq_http_server_t *s, h2o_req_t *req, const char *method, size_t len);
/* /export/JOB/FILE */
void lpq__http_export(lpq_http_server_t *s, h2o_req_t *req, int64_t job, const char *file,
                      size_t len);
/* Drops every call still waiting (lpq_http_free). */
void lpq__http_pendings_free(lpq_http_server_t *s);
/* Empties the cache of answers (lpq_http_free). */
void lpq__http_cache_free(lpq_http_server_t *s);

/* events.c */
/* The jobs one event stream may follow (/events?jobs=A,B,...). */
#define HTTP_STREAM_JOBS 64
/* /events/JOB, /events?jobs=...: subscribes to each with job.watch and streams their progress;
** njobs in 1..HTTP_STREAM_JOBS, no repeats. */
void lpq__http_events(lpq_http_server_t *s, h2o_req_t *req, const int64_t *jobs, size_t njobs);
/* A stream sends at most one event per HTTP_EVENT_MS; the newest waiting is sent by the
** server's timer (events.c). */
#define HTTP_EVENT_MS 250
void lpq__http_streams_flush(lpq_http_server_t *s);
/* Ends every stream (lpq_http_free). */
void lpq__http_streams_end(lpq_http_server_t *s);
/* Drops the last event's text (lpq_http_free). */
void lpq__http_events_cache_free(lpq_http_server_t *s);

#endif
