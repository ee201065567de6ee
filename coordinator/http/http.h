/*
** coordinator/http/http.h: the dashboard, read-only HTTP on the coordinator's libuv loop
** (lpq-coordinator --http HOST:PORT). HTTP/1.1 is libh2o's (Debian's libh2o, the build on
** libuv): request parsing, keep-alive, chunked responses, its header size limit. This library
** adds what lpq needs on top: the pages (coordinator/http/www/, and uPlot from npm, compiled in
** by mk/dashboard.mk), a bridge to the read-only JSON-RPC methods (through the API's in-process
** clients, lpq_api_local_*), live progress as Server-Sent Events fed by job.watch, downloads of
** a job's exports, and the limits (connections, request size, loopback or a bearer token).
** It includes coordinator/api/api.h, common/common.h, libh2o and libuv; http_internal.h is
** its own (lpq__* names).
**
** Routes (GET and HEAD unless said otherwise):
**   /, /job/N                the pages (one HTML document; the script reads the path)
**   /assets/NAME             the compiled-in scripts and style sheets
**   /api/METHOD              GET ?params=JSON or POST with a JSON object: the method's result,
**                            or its JSON-RPC error object with a 4xx status; only the methods
**                            lpq_http_method_allowed accepts (a write method: 403)
**   /events/N                text/event-stream: "progress" events of job N (job.watch)
**   /events?jobs=A,B,...     the same for up to 64 jobs on one connection
**   /export/N/WHAT[?genome=H] a job's export as a download (WHAT: config.json, model_lp.onnx,
**                            weights.lpw, model_q.onnx, model_q.encodings.json)
**   /login                   GET a form, POST token=...: sets the cookie (non-loopback only)
** Anything else is 404; other HTTP methods 405; bad requests 400 (libh2o's).
*/
#ifndef LPQ_HTTP_H
#define LPQ_HTTP_H

#include "coordinator/api/api.h"

#include <stddef.h>
#include <uv.h>

typedef struct lpq_http_server_t lpq_http_server_t;

/* Zero-initialised fields take the defaults in brackets. */
typedef struct lpq_http_options_t {
  const char *host;           /* e.g. "127.0.0.1" (required) */
  int port;                   /* 0: an ephemeral port (lpq_http_port tells which) */
  const char *token;          /* the API's bearer token: required, and checked, unless host is
                              ** a loopback address (127.0.0.0/8, ::1, localhost) */
  size_t max_connections;     /* open at once [1024]; one more gets 503 and is closed */
  size_t max_request_bytes;   /* a request's body [1 MiB]; larger: 413 */
  size_t max_header_bytes;    /* a request's target and headers [32 KiB]; more: 431 (libh2o
                              ** itself stops at about 400 KiB or 100 headers: 400) */
} lpq_http_options_t;

/* Counters for server.stats-like reports and the tests. */
typedef struct lpq_http_stats_t {
  size_t connections;         /* open now */
  size_t streams;             /* event streams open now */
  uint64_t accepted, rejected, requests, events_sent;
  uint64_t events_dropped;    /* replaced by a newer one before they were sent: an event stream
                              ** sends at most 4 a second, its newest (progress is a snapshot) */
  uint64_t status_4xx, status_5xx;
} lpq_http_stats_t;

/* Binds and listens on the loop; answers through api's methods. NULL with err set (a bad host
** or port, the address in use, a non-loopback host without a token of 16+ characters). */
lpq_http_server_t *lpq_http_new(uv_loop_t *loop, lpq_api_server_t *api,
                                const lpq_http_options_t *opts, lpq_error_t *err);
/* The bound port (useful with port 0). */
int lpq_http_port(const lpq_http_server_t *s);
void lpq_http_stats(const lpq_http_server_t *s, lpq_http_stats_t *out);
/* Stops listening and ends the event streams; frees everything once the loop has run the close
** callbacks (connections still open then are closed with the loop by the caller). Must be
** called before lpq_api_free of the API it uses. Sets *s to NULL. */
void lpq_http_free(lpq_http_server_t **s);

/* 1 when the bridge serves method: job.list, job.get, job.pareto, job.sensitivity, worker.list,
** server.stats, job.export (without "dir": the bytes come back, nothing is written) and
** db.query of one job's rows of generations, v_generation_stats, v_pareto or events. */
int lpq_http_method_allowed(const char *method);
/* The same for a call with its params (job.export's "dir", db.query's table and job). */
int lpq_http_call_allowed(const char *method, const json_t *params);

/* 1 for a loopback host name: 127.0.0.0/8, ::1, localhost. */
int lpq_http_host_is_loopback(const char *host);

#endif
