/*
** coordinator/api/api.h: the JSON-RPC 2.0 server library (DESIGN section 3) on the caller's
** libuv loop: framing, limits, authentication, validation against the compiled-in method
** schemas (schema/api/), error replies, notifications, server.stats. It knows nothing of jobs:
** the daemon (coordinator/daemon/) registers the methods. It includes common/common.h,
** jansson and libuv only. api_internal.h is the library's own (lpq__* names).
*/
#ifndef LPQ_API_H
#define LPQ_API_H

#include "common/common.h"

#include <stddef.h>
#include <stdint.h>

/* ==== api ==========================================================================
** The JSON-RPC 2.0 API server (DESIGN section 3) on the caller's libuv loop: one JSON message
** per line ('\n'-terminated, UTF-8) on a Unix socket (mode 0600; the file mode is the access
** control) and optionally on TCP, where the first request of a connection must be
**     {"jsonrpc":"2.0","method":"auth","params":{"token":"TOKEN"},"id":1}
** (any other request before it gets LPQ_API_E_UNAUTHORIZED; a wrong token also closes the
** connection). Batches (arrays) and notifications (no id) follow the JSON-RPC 2.0 spec; a
** batch is answered by one array once all of its calls have replied.
**
** The daemon registers methods; the library owns framing, limits, validation of params against
** the method's JSON schema (schema/api/METHOD.json, compiled in: type, required, properties,
** additionalProperties, enum, const, minimum/maximum, minLength/maxLength, pattern, items,
** minItems/maxItems, minProperties/maxProperties, anyOf, local $ref), error replies,
** server-push notifications and the counters of server.stats. Built-in methods: auth and
** server.stats. Every function here is called on the loop's thread; the library starts no
** threads. A line is parsed on the loop, so a 64 MiB upload holds it for a few 100 ms.
*/

#include <jansson.h>
#include <uv.h>

/* Error codes of the API, in the JSON-RPC "error.code" member. -32768..-32000 are JSON-RPC's;
** -32000..-32099 are the implementation's own, listed here (and in the README). */
enum {
  LPQ_API_E_PARSE = -32700,          /* the line is not JSON */
  LPQ_API_E_INVALID_REQUEST = -32600, /* JSON, but not a JSON-RPC 2.0 request */
  LPQ_API_E_NO_METHOD = -32601,      /* unknown method (data: {"method": name}) */
  LPQ_API_E_INVALID_PARAMS = -32602, /* data: {"field": "settings.population", "expected": ...} */
  LPQ_API_E_INTERNAL = -32603,
  LPQ_API_E_UNAUTHORIZED = -32001,   /* TCP connection without a valid auth call */
  LPQ_API_E_LIMIT = -32002,          /* message size, nesting, batch, connections, pending calls */
  LPQ_API_E_JOB_NOT_FOUND = -32010,
  LPQ_API_E_BLOB_NOT_FOUND = -32011, /* a model/data hash the coordinator does not hold */
  LPQ_API_E_UNSUPPORTED_MODEL = -32012,
  LPQ_API_E_JOB_STATE = -32013,      /* e.g. exporting a job with no scored genome yet */
  LPQ_API_E_IO = -32014,             /* a path on the coordinator's host cannot be read/written */
  LPQ_API_E_BAD_INPUT = -32015,      /* a file or upload that is not what it claims (npy, onnx) */
  LPQ_API_E_NOT_FOUND = -32016,      /* another named thing: generation, genome, table, worker */
  LPQ_API_E_CANCELED = -32017,
  LPQ_API_E_TIMEOUT = -32018,
  LPQ_API_E_UNAVAILABLE = -32019,    /* the server is shutting down */
  LPQ_API_E_STORE_DAMAGED = -32020,  /* the coordinator's database has a damaged page */
};

/* Where lpq-coordinator listens and lpqctl connects unless told otherwise (relative to the
** working folder; lpqctl also reads LPQ_SOCKET). */
#define LPQ_API_DEFAULT_SOCKET "var/lpq.sock"

typedef struct lpq_api_server_t lpq_api_server_t;
typedef struct lpq_api_call_t lpq_api_call_t; /* one request being answered */
typedef struct lpq_api_sub_t lpq_api_sub_t;   /* a connection subscribed to notifications */

/* Zero-initialised fields take the defaults in brackets. */
typedef struct lpq_api_options_t {
  const char *unix_path;      /* socket file (parent folder made 0700 if missing); NULL: none */
  const char *tcp_host;       /* e.g. "127.0.0.1"; NULL: no TCP */
  int tcp_port;               /* 0: an ephemeral port (lpq_api_tcp_port tells which) */
  const char *token;          /* required when TCP is on: at least 16 characters */
  size_t max_message_bytes;   /* one line [64 MiB]; longer: an error, then the connection closes */
  size_t max_depth;           /* JSON nesting [64] */
  size_t max_connections;     /* open at once [256]; one more gets an error and is closed */
  size_t max_batch;           /* calls in one batch [256] */
  size_t max_pending;         /* unanswered calls per connection [1024] */
  size_t max_write_queue;     /* bytes queued to a client that does not read [2 x message] */
  size_t max_unauthenticated; /* TCP connections not yet past auth, at once [32] */
  size_t unix_reserve;        /* of max_connections, kept for the Unix socket [16] */
  unsigned auth_timeout_ms;   /* a TCP connection must authenticate within it [10000] */
  /* a request must arrive at min_request_rate bytes/s on average once it has taken more than
  ** request_timeout_ms; a slower one (e.g. a byte every 250 ms) gets an error and the close */
  unsigned request_timeout_ms; /* [10000] */
  size_t min_request_rate;    /* [32768] */
  size_t parse_offload_bytes; /* lines this long are parsed on libuv's work queue [262144] */
} lpq_api_options_t;

/* A method's handler. It answers through `call` now or later (lpq_api_reply*): every call is
** answered exactly once, also a notification's (the answer is dropped) and also after the
** client has gone (then the answer is dropped too). params is the request's params (an empty
** object when omitted), already valid against the method's schema; it lives until the reply. */
typedef void (*lpq_api_handler_fn)(void *ctx, lpq_api_call_t *call, json_t *params);

/* Binds and listens; sets SIGPIPE to ignored when it has its default action (a vanished
** client must not kill the daemon). NULL with err set (a path too long, in use by a live
** server, not a socket, a bad host or port, TCP without a token). A stale socket file (nobody
** accepts on it) is replaced; any other file at the path is left alone and is an error. On
** failure, too, run the loop once so that what was opened gets closed. */
lpq_api_server_t *lpq_api_new(uv_loop_t *loop, const lpq_api_options_t *opts,
                              lpq_error_t *err);
/* Stops listening, closes every connection (subscriptions get their on_closed), removes the
** socket file and sets *s to NULL. Memory is released by libuv close callbacks: run the loop
** until it has no handles left before uv_loop_close. Calls not answered yet stay valid and
** must still be answered (the answers are dropped). */
void lpq_api_free(lpq_api_server_t **s);
/* The bound TCP port (useful with tcp_port 0), or 0. */
int lpq_api_tcp_port(const lpq_api_server_t *s);

/* Registers (or replaces) a method. Params are validated against the compiled-in schema
** schema/api/METHOD.json when there is one, else not at all. */
int lpq_api_register(lpq_api_server_t *s, const char *method, lpq_api_handler_fn handler,
                     void *ctx, lpq_error_t *err);
/* The same with an explicit params schema (JSON text; NULL: no validation), e.g. for tests. */
int lpq_api_register_schema(lpq_api_server_t *s, const char *method, const char *params_schema,
                            lpq_api_handler_fn handler, void *ctx, lpq_error_t *err);

/* Answers with result (reference stolen; NULL means JSON null) and releases the call. */
void lpq_api_reply(lpq_api_call_t *call, json_t *result);
/* Answers with an error: code (LPQ_API_E_*), a message a person understands, and data
** (reference stolen, may be NULL). Releases the call. */
void lpq_api_reply_error(lpq_api_call_t *call, int code, json_t *data, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Answers with err's message, its code mapped: LPQ_EINVAL -> INVALID_PARAMS, LPQ_EFORMAT ->
** BAD_INPUT, LPQ_EUNSUP -> UNSUPPORTED_MODEL, LPQ_ENOTFOUND -> NOT_FOUND, LPQ_EIO -> IO,
** LPQ_ERANGE -> LIMIT, LPQ_ESTATE -> JOB_STATE, LPQ_ECANCELED, LPQ_ETIMEDOUT, LPQ_ECORRUPT ->
** STORE_DAMAGED; else INTERNAL. */
void lpq_api_reply_lpq_error(lpq_api_call_t *call, const lpq_error_t *err);
/* The method name, and whether the client is still connected (a long handler may give up). */
const char *lpq_api_call_method(const lpq_api_call_t *call);
int lpq_api_call_connected(const lpq_api_call_t *call);
/* Who made the call, for per-client limits: "uid:N" on the Unix socket (the peer's uid from
** SO_PEERCRED), "token:HASH" on TCP (clients are told apart by their bearer token). Written to
** buf (also returned). */
const char *lpq_api_call_client(const lpq_api_call_t *call, char *buf, size_t len);
/* 0 and the peer's uid when the call came on the Unix socket (SO_PEERCRED); -1 for TCP (whose
** clients are local to nothing: they upload rather than name files). */
int lpq_api_call_peer_uid(const lpq_api_call_t *call, unsigned long *uid);

/* Called once when a subscribed connection closes (client gone, server freed); sub is freed
** right after, so forget it here. */
typedef void (*lpq_api_closed_fn)(void *ctx, lpq_api_sub_t *sub);

/* Subscribes the call's connection to notifications (before answering the call). NULL when
** the client has already gone or the call is a notification. */
lpq_api_sub_t *lpq_api_subscribe(lpq_api_call_t *call, lpq_api_closed_fn on_closed, void *ctx);
/* Sends {"jsonrpc":"2.0","method":method,"params":params} on the subscribed connection
** (params reference stolen). LPQ_EIO when the connection is closing, LPQ_ERANGE when the
** client is too slow to read (the connection is then closed). Either way on_closed follows,
** from a loop callback, never from inside this call. */
int lpq_api_notify(lpq_api_sub_t *sub, const char *method, json_t *params);
/* Ends a subscription without on_closed; sets *sub to NULL. */
void lpq_api_unsubscribe(lpq_api_sub_t **sub);

/* An in-process client (the dashboard's HTTP bridge, coordinator/http/): a connection without a
** socket whose requests go through the same validation, counters and methods as a socket
** client's, and whose answers and notifications (job.watch) are handed to on_message as JSON
** objects (borrowed for the call). It counts as authenticated, is not counted against
** max_connections, has no peer uid (so no method treats it as the local administrator) and
** names itself "local" in lpq_api_call_client. */
typedef struct lpq_api_local_t lpq_api_local_t;
typedef void (*lpq_api_local_fn)(void *ctx, const json_t *message);
/* NULL when memory runs out or the server is being freed. */
lpq_api_local_t *lpq_api_local_new(lpq_api_server_t *s, lpq_api_local_fn on_message, void *ctx);
/* Sends one request {method, params (stolen; NULL: none), id} as a client would; the answer
** comes to on_message now or later (once). 0, LPQ_EIO when the connection is closed (the server
** is being freed), LPQ_ENOMEM. */
int lpq_api_local_call(lpq_api_local_t *l, const char *method, json_t *params, json_int_t id);
/* Closes the connection: its subscriptions get on_closed, answers still due are dropped (never
** handed to on_message again); sets *l to NULL. */
void lpq_api_local_free(lpq_api_local_t **l);

/* The counters that server.stats returns (a new reference): uptime, connections (open,
** accepted, rejected), requests, notifications, errors by code, bytes in and out, per method
** calls, errors and latency (mean, p50, p99, max in ms). */
json_t *lpq_api_stats(const lpq_api_server_t *s);

/* Makes text valid UTF-8 in place: each byte that starts no valid sequence becomes '?', and
** a sequence cut short at the end (a message truncated inside a character) is dropped. Every
** error message goes through it, so that no reply is lost to json_pack. The bytes replaced. */
size_t lpq_api_utf8_clean(char *text);
/* Cuts text to at most max bytes, on a character boundary (text is valid UTF-8). Its length. */
size_t lpq_api_utf8_cut(char *text, size_t max);

/* Standard base64 with padding (uploads in blob.put and job.submit, files in job.export).
** lpq_base64_encode: malloc'd NUL-terminated text, NULL when memory runs out. */
char *lpq_base64_encode(const void *data, size_t len);
/* *out is malloc'd (the caller frees it). LPQ_EFORMAT naming the offset of the first character
** that is not base64 or of wrong padding; LPQ_ENOMEM. */
int lpq_base64_decode(const char *text, size_t len, unsigned char **out, size_t *out_len,
                      lpq_error_t *err);

/* The compiled-in schema document of a method (schema/api/METHOD.json: "params", "result",
** "notifications"), borrowed; NULL when there is none. */
const json_t *lpq_api_schema(const char *method);
/* Checks value against a JSON schema (the subset above). 0, or LPQ_EINVAL with err naming the
** path (prefix.field[3].x) and what was expected. */
int lpq_api_validate(const json_t *schema, const json_t *value, const char *prefix,
                     lpq_error_t *err);
/* Checks value against part of a method's compiled-in schema: "params", "result", or the name
** of one of its notifications (e.g. "job.progress" of job.watch). LPQ_ENOTFOUND when there is
** no such schema; LPQ_EINVAL as lpq_api_validate. For the daemon's tests of its own answers. */
int lpq_api_check(const char *method, const char *part, const json_t *value, lpq_error_t *err);

#endif
