/*
** coordinator/api/api_internal.h: what the files of the JSON-RPC API server share (server.c:
** sockets, framing and connections; rpc.c: requests, batches, calls and subscriptions;
** stats.c: counters; schema.c: the compiled-in schemas and the validator). Non-static names
** declared here start with lpq__; other folders use api.h.
*/
#ifndef LPQ_API_INTERNAL_H
#define LPQ_API_INTERNAL_H

#include "coordinator/api/api.h"

#include <stdint.h>

/* Latency histogram: bucket i holds latencies in [2^(i/4), 2^((i+1)/4)) microseconds. */
#define API_HIST_BUCKETS 128
#define API_ERROR_CODES 32 /* distinct error codes counted by server.stats */

typedef struct api_latency_t {
  uint64_t count;
  uint64_t total_ns, max_ns;
  uint64_t hist[API_HIST_BUCKETS];
} api_latency_t;

typedef struct api_method_t {
  char *name;
  lpq_api_handler_fn handler;
  void *ctx;
  json_t *schema_doc;          /* owned: the root for "$ref"; NULL: no validation */
  const json_t *params_schema; /* inside schema_doc */
  uint64_t calls, errors, pending;
  api_latency_t latency;
  struct api_method_t *next;
} api_method_t;

typedef struct api_conn_t api_conn_t;

/* A framed line parsed: the message, or why not (nested too deep; a parse error at column). */
typedef struct api_parsed_t {
  json_t *msg;
  int too_deep, column;
  char error[160];
} api_parsed_t;

struct lpq_api_sub_t {
  api_conn_t *conn;
  lpq_api_closed_fn on_closed;
  void *ctx;
  lpq_api_sub_t *prev, *next;
};

/* A batch waits for all of its calls, then answers with one array. */
typedef struct api_batch_t {
  api_conn_t *conn; /* holds a reference */
  size_t waiting;
  json_t *responses;
} api_batch_t;

struct lpq_api_call_t {
  lpq_api_server_t *server;
  api_conn_t *conn;     /* holds a reference */
  api_batch_t *batch;   /* NULL: a single request */
  api_method_t *method; /* NULL for the built-in error paths */
  json_t *id;           /* the request's id, JSON null when it had none or a bad one */
  int silent;           /* a notification: the answer is dropped */
  json_t *params;
  uint64_t start_ns;
};

struct api_conn_t {
  union {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_pipe_t pipe;
    uv_tcp_t tcp;
  } h;
  lpq_api_server_t *server;
  int is_tcp;
  int authenticated;
  int has_peer_uid; /* Unix socket: the client's uid (SO_PEERCRED), for per-client limits */
  unsigned long peer_uid;
  int closing;      /* no more reads, writes or notifications */
  int flushing;     /* a shutdown is waiting for queued writes before the close */
  uint64_t flushing_since_ns;
  uint64_t accepted_ns;
  int counted_unauth; /* counted in the server's unauth_count */
  int handle_open;  /* until the close callback */
  size_t refs;      /* outstanding calls and batches, plus one while the handle is open */
  size_t pending;   /* unanswered calls */
  char *buf;        /* received bytes not yet framed */
  size_t len, cap, scanned;
  uint64_t line_started_ns; /* when the first byte of the partial line came (0: none) */
  /* a large line parsed on the work queue: reading and framing wait for it */
  int parsing;
  uv_work_t parse_work;
  size_t parse_off, parse_len, parse_next;
  api_parsed_t parsed;
  lpq_api_sub_t *subs;
  int is_local;     /* an in-process client (local.c): no handle, messages to on_message */
  lpq_api_local_fn on_message;
  void *local_ctx;
  api_conn_t *prev, *next;
};

struct lpq_api_server_t {
  uv_loop_t *loop;
  lpq_api_options_t opts;
  char *unix_path; /* owned copies of the options' strings */
  char *token;
  uv_pipe_t unix_listener;
  uv_tcp_t tcp_listener;
  uv_timer_t reaper; /* closes connections whose last words are never read */
  int has_unix, unix_bound, has_tcp, has_reaper, tcp_port;
  int freeing;
  size_t handles_open; /* listeners and connections not yet closed */
  size_t calls_out;    /* calls and batches not yet released */
  api_conn_t *conns;
  size_t conn_count;
  size_t unauth_count; /* TCP connections not authenticated yet */
  api_method_t *methods;
  /* counters (server.stats) */
  uint64_t start_ns;
  uint64_t accepted, rejected, auth_timeouts, requests, notifications_in, notifications_out;
  uint64_t slow_requests, parsed_off_loop;
  uint64_t batches;
  uint64_t bytes_in, bytes_out, subscriptions;
  int error_code[API_ERROR_CODES];
  uint64_t error_count[API_ERROR_CODES];
};

/* api_server.c */
/* Queues msg (not stolen) as one line. LPQ_EIO when the connection is closing, LPQ_ERANGE when
** the client is too slow (the connection is closed), LPQ_ENOMEM. */
int lpq__api_conn_send(api_conn_t *c, const json_t *msg);
/* Closes the connection: after flushing queued writes (flush 1) or at once. */
void lpq__api_conn_close(api_conn_t *c, int flush);
void lpq__api_conn_unref(api_conn_t *c);
/* Marks a TCP connection authenticated (it leaves the unauthenticated count). */
void lpq__api_conn_authenticated(api_conn_t *c);
/* Frees the server when it is being freed and nothing refers to it any more. */
void lpq__api_server_maybe_free(lpq_api_server_t *s);

/* api_rpc.c */
/* Handles one request object (not stolen) of a single call. */
void lpq__api_handle_request(api_conn_t *c, json_t *req);
/* Parses a line; touches nothing but p, so it may run on libuv's work queue. */
void lpq__api_parse(const char *line, size_t len, size_t max_depth, api_parsed_t *p);
/* Answers or dispatches a parsed line (takes p->msg). */
void lpq__api_handle_parsed(api_conn_t *c, api_parsed_t *p);
/* Handles one framed message (a line without its '\n'): parse and handle, on the loop. */
void lpq__api_handle_line(api_conn_t *c, const char *line, size_t len);
/* Sends a JSON-RPC error with a null id (framing errors) and counts it. */
void lpq__api_send_error(api_conn_t *c, int code, json_t *data, const char *message);
/* Calls on_closed for every subscription of a closed connection and frees them. */
void lpq__api_conn_drop_subs(api_conn_t *c);
api_method_t *lpq__api_method_find(lpq_api_server_t *s, const char *name);
int lpq__api_register_builtins(lpq_api_server_t *s, lpq_error_t *err);
void lpq__api_methods_free(lpq_api_server_t *s);

/* api_stats.c */
uint64_t lpq__api_now_ns(void);
void lpq__api_latency_add(api_latency_t *l, uint64_t ns);
void lpq__api_count_error(lpq_api_server_t *s, int code);

/* api_schema.c */
/* A copy of the compiled-in schema document of method (NULL when there is none). */
json_t *lpq__api_schema_doc(const char *method);
/* Validation that also hands out the failing field's path and what was expected, for
** error.data; field and expected may be NULL. */
int lpq__api_validate(const json_t *root, const json_t *schema, const json_t *value,
                 const char *prefix, char *field, size_t field_size, char *expected,
                 size_t expected_size, lpq_error_t *err);

#endif
