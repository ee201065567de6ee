/*
** coordinator/api/rpc.c: JSON-RPC 2.0 on framed lines: requests, batches and notifications,
** the method table with schema validation, replies now or later, subscriptions for
** server-push notifications, and the built-in methods auth and server.stats.
*/
#include "coordinator/api/api_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- method table --------------------------------------------------------------------------- */

api_method_t *lpq__api_method_find(lpq_api_server_t *s, const char *name) {
  for (api_method_t *m = s->methods; m; m = m->next)
    if (strcmp(m->name, name) == 0)
      return m;
  return NULL;
}

static int method_set(lpq_api_server_t *s, const char *name, json_t *doc, const json_t *params,
                      lpq_api_handler_fn handler, void *ctx, lpq_error_t *err) {
  api_method_t *m = lpq__api_method_find(s, name);
  if (m == NULL) {
    m = calloc(1, sizeof *m);
    if (m == NULL || (m->name = strdup(name)) == NULL) {
      free(m);
      json_decref(doc);
      return lpq_errorf(err, LPQ_ENOMEM, "out of memory");
    }
    /* Appended, so server.stats lists methods in registration order. */
    api_method_t **tail = &s->methods;
    while (*tail)
      tail = &(*tail)->next;
    *tail = m;
  }
  json_decref(m->schema_doc);
  m->schema_doc = doc;
  m->params_schema = params;
  m->handler = handler;
  m->ctx = ctx;
  return 0;
}

int lpq_api_register(lpq_api_server_t *s, const char *method, lpq_api_handler_fn handler,
                     void *ctx, lpq_error_t *err) {
  if (s == NULL || method == NULL || handler == NULL)
    return lpq_errorf(err, LPQ_EINVAL, "api_register: server, method and handler are required");
  json_t *doc = lpq__api_schema_doc(method);
  return method_set(s, method, doc, doc ? json_object_get(doc, "params") : NULL, handler, ctx,
                    err);
}

int lpq_api_register_schema(lpq_api_server_t *s, const char *method, const char *params_schema,
                            lpq_api_handler_fn handler, void *ctx, lpq_error_t *err) {
  if (s == NULL || method == NULL || handler == NULL)
    return lpq_errorf(err, LPQ_EINVAL, "api_register: server, method and handler are required");
  json_t *doc = NULL;
  if (params_schema) {
    json_error_t jerr;
    doc = json_loads(params_schema, 0, &jerr);
    if (!json_is_object(doc)) {
      json_decref(doc);
      return lpq_errorf(err, LPQ_EFORMAT, "%s: params schema: %s (column %d)", method,
                        jerr.text[0] ? jerr.text : "not an object", jerr.column);
    }
  }
  return method_set(s, method, doc, doc, handler, ctx, err);
}

void lpq__api_methods_free(lpq_api_server_t *s) {
  while (s->methods) {
    api_method_t *m = s->methods;
    s->methods = m->next;
    json_decref(m->schema_doc);
    free(m->name);
    free(m);
  }
}

/* ---- answering ---------------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at p (of at most n bytes), or 0 when it is not one
** (overlong forms, surrogates and code points above U+10FFFF are not). */
static size_t utf8_seq(const unsigned char *p, size_t n) {
  unsigned char c = p[0];
  size_t len = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3
               : (c & 0xf8) == 0xf0 ? 4 : 0;
  if (len == 0 || len > n)
    return 0;
  for (size_t i = 1; i < len; i++)
    if ((p[i] & 0xc0) != 0x80)
      return 0;
  if ((len == 2 && c < 0xc2) || (len == 3 && c == 0xe0 && p[1] < 0xa0) ||
      (len == 3 && c == 0xed && p[1] >= 0xa0) || (len == 4 && c == 0xf0 && p[1] < 0x90) ||
      (len == 4 && (c > 0xf4 || (c == 0xf4 && p[1] >= 0x90))))
    return 0;
  return len;
}

size_t lpq_api_utf8_clean(char *text) {
  if (text == NULL)
    return 0;
  unsigned char *p = (unsigned char *)text;
  size_t n = strlen(text), fixed = 0;
  for (size_t i = 0; i < n;) {
    size_t len = utf8_seq(p + i, n - i);
    if (len == 0) {
      size_t k = 1; /* a sequence cut short at the very end (a truncated message) is dropped */
      while (i + k < n && (p[i + k] & 0xc0) == 0x80 && k < 4)
        k++;
      if (i + k == n && p[i] >= 0xc2 && p[i] <= 0xf4) {
        p[i] = 0;
        return fixed + 1;
      }
      p[i] = '?';
      len = 1;
      fixed++;
    }
    i += len;
  }
  return fixed;
}

size_t lpq_api_utf8_cut(char *text, size_t max) {
  if (text == NULL)
    return 0;
  size_t n = strlen(text);
  if (n <= max)
    return n;
  while (max > 0 && ((unsigned char)text[max] & 0xc0) == 0x80)
    max--; /* never inside a character */
  text[max] = 0;
  return max;
}

/* The reply of last resort: when even a cleaned error cannot be built (memory), the client
** still gets a line with its id, so that every request has exactly one answer. */
static json_t *fallback_response(const json_t *id) {
  json_t *r = json_pack("{ss s{si ss} sO}", "jsonrpc", "2.0", "error", "code",
                        LPQ_API_E_INTERNAL, "message", "internal error: the reply could not "
                        "be built", "id", id ? (json_t *)id : json_null());
  return r;
}

static void batch_done(api_batch_t *b) {
  if (--b->waiting > 0)
    return;
  api_conn_t *c = b->conn;
  if (json_array_size(b->responses) > 0)
    lpq__api_conn_send(c, b->responses); /* a batch of notifications only gets no answer at all */
  json_decref(b->responses);
  c->server->calls_out--;
  free(b);
  lpq__api_conn_unref(c);
}

static void call_release(lpq_api_call_t *call) {
  api_conn_t *c = call->conn;
  if (call->method)
    call->method->pending--;
  c->pending--;
  json_decref(call->id);
  json_decref(call->params);
  if (call->batch)
    batch_done(call->batch);
  c->server->calls_out--;
  free(call);
  lpq__api_conn_unref(c); /* may free the connection, then the server */
}

static void call_finish(lpq_api_call_t *call, json_t *response) {
  if (call->method)
    lpq__api_latency_add(&call->method->latency, lpq__api_now_ns() - call->start_ns);
  if (response && !call->silent && !call->conn->closing) {
    if (call->batch)
      json_array_append(call->batch->responses, response);
    else
      lpq__api_conn_send(call->conn, response);
  }
  json_decref(response);
  call_release(call);
}

void lpq_api_reply(lpq_api_call_t *call, json_t *result) {
  if (call == NULL) {
    json_decref(result);
    return;
  }
  json_t *response = json_pack("{ss so sO}", "jsonrpc", "2.0", "result",
                               result ? result : json_null(), "id", call->id);
  call_finish(call, response ? response : fallback_response(call->id));
}

/* An error object {code, message, data}: the message cleaned to valid UTF-8 (a raw byte from a
** corrupt file or a message cut inside a character made json_pack fail, and the reply was
** lost). data is stolen. */
static json_t *error_object(int code, json_t *data, const char *message) {
  char text[1024];
  snprintf(text, sizeof text, "%s", message ? message : "");
  lpq_api_utf8_clean(text);
  json_t *error = json_pack("{si ss}", "code", code, "message", text);
  if (error && data)
    json_object_set(error, "data", data);
  json_decref(data);
  return error;
}

static void reply_error_text(lpq_api_call_t *call, int code, json_t *data, const char *message) {
  lpq__api_count_error(call->server, code);
  if (call->method)
    call->method->errors++;
  json_t *error = error_object(code, data, message);
  json_t *response = error ? json_pack("{ss so sO}", "jsonrpc", "2.0", "error", error, "id",
                                       call->id)
                           : NULL;
  call_finish(call, response ? response : fallback_response(call->id));
}

void lpq_api_reply_error(lpq_api_call_t *call, int code, json_t *data, const char *fmt, ...) {
  if (call == NULL) {
    json_decref(data);
    return;
  }
  char message[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(message, sizeof message, fmt, ap);
  va_end(ap);
  reply_error_text(call, code, data, message);
}

void lpq_api_reply_lpq_error(lpq_api_call_t *call, const lpq_error_t *err) {
  static const struct {
    int lpq, api;
  } map[] = {
      {LPQ_EINVAL, LPQ_API_E_INVALID_PARAMS}, {LPQ_EFORMAT, LPQ_API_E_BAD_INPUT},
      {LPQ_EUNSUP, LPQ_API_E_UNSUPPORTED_MODEL}, {LPQ_ENOTFOUND, LPQ_API_E_NOT_FOUND},
      {LPQ_EIO, LPQ_API_E_IO}, {LPQ_ERANGE, LPQ_API_E_LIMIT}, {LPQ_ESTATE, LPQ_API_E_JOB_STATE},
      {LPQ_ECANCELED, LPQ_API_E_CANCELED}, {LPQ_ETIMEDOUT, LPQ_API_E_TIMEOUT},
      {LPQ_ECORRUPT, LPQ_API_E_STORE_DAMAGED},
  };
  int code = LPQ_API_E_INTERNAL;
  for (size_t i = 0; err && i < sizeof map / sizeof map[0]; i++)
    if (map[i].lpq == err->code)
      code = map[i].api;
  reply_error_text(call, code, NULL, err && err->msg[0] ? err->msg : lpq_strerror(code));
}

const char *lpq_api_call_method(const lpq_api_call_t *call) {
  return call && call->method ? call->method->name : NULL;
}

const char *lpq_api_call_client(const lpq_api_call_t *call, char *buf, size_t len) {
  if (call == NULL || len == 0)
    return "";
  const api_conn_t *c = call->conn;
  if (c->is_local) {
    snprintf(buf, len, "local");
  } else if (c->is_tcp) {
    /* per token: its FNV-1a hash names it without revealing it */
    uint32_t h = 2166136261u;
    for (const char *t = call->server->token ? call->server->token : ""; *t; t++)
      h = (h ^ (uint8_t)*t) * 16777619u;
    snprintf(buf, len, "token:%08x", h);
  } else if (c->has_peer_uid) {
    snprintf(buf, len, "uid:%lu", c->peer_uid);
  } else {
    snprintf(buf, len, "unix");
  }
  return buf;
}

int lpq_api_call_peer_uid(const lpq_api_call_t *call, unsigned long *uid) {
  if (call == NULL || call->conn->is_tcp || !call->conn->has_peer_uid)
    return -1;
  if (uid)
    *uid = call->conn->peer_uid;
  return 0;
}

int lpq_api_call_connected(const lpq_api_call_t *call) {
  return call && !call->conn->closing;
}

void lpq__api_send_error(api_conn_t *c, int code, json_t *data, const char *message) {
  lpq__api_count_error(c->server, code);
  json_t *error = error_object(code, data, message);
  json_t *response = error ? json_pack("{ss so sn}", "jsonrpc", "2.0", "error", error, "id")
                           : fallback_response(NULL);
  if (response)
    lpq__api_conn_send(c, response);
  json_decref(response);
}

/* ---- requests ------------------------------------------------------------------------------ */

/* Deeper than max levels of [ and { outside strings? Checked before parsing, so a hostile
** line never reaches the parser's recursion. */
static int too_deep(const char *p, size_t len, size_t max) {
  size_t depth = 0;
  int in_string = 0;
  for (size_t i = 0; i < len; i++) {
    char ch = p[i];
    if (in_string) {
      if (ch == '\\')
        i++;
      else if (ch == '"')
        in_string = 0;
    } else if (ch == '"') {
      in_string = 1;
    } else if (ch == '[' || ch == '{') {
      if (++depth > max)
        return 1;
    } else if ((ch == ']' || ch == '}') && depth > 0) {
      depth--;
    }
  }
  return 0;
}

static lpq_api_call_t *call_new(api_conn_t *c, api_batch_t *batch, const json_t *id) {
  lpq_api_call_t *call = calloc(1, sizeof *call);
  if (call == NULL)
    return NULL;
  call->server = c->server;
  call->conn = c;
  call->batch = batch;
  call->start_ns = lpq__api_now_ns();
  int id_ok = id && (json_is_string(id) || json_is_number(id) || json_is_null(id));
  call->id = id_ok ? json_incref((json_t *)id) : json_null();
  call->silent = id == NULL;
  c->refs++;
  c->pending++;
  c->server->calls_out++;
  if (batch)
    batch->waiting++;
  return call;
}

static void handle_request(api_conn_t *c, api_batch_t *batch, json_t *req) {
  lpq_api_server_t *s = c->server;
  s->requests++;
  const json_t *id = json_object_get(req, "id");
  lpq_api_call_t *call = call_new(c, batch, id);
  if (call == NULL)
    return;
  const char *version = json_string_value(json_object_get(req, "jsonrpc"));
  const json_t *method_value = json_object_get(req, "method");
  json_t *params = json_object_get(req, "params");
  const char *why = NULL;
  if (!json_is_object(req))
    why = "a request must be a JSON object";
  else if (version == NULL || strcmp(version, "2.0") != 0)
    why = "\"jsonrpc\" must be \"2.0\"";
  else if (!json_is_string(method_value))
    why = "\"method\" must be a string";
  else if (params && !json_is_object(params) && !json_is_array(params))
    why = "\"params\" must be an object or an array";
  else if (id && !json_is_string(id) && !json_is_number(id) && !json_is_null(id))
    why = "\"id\" must be a string, a number or null";
  if (why) {
    call->silent = 0; /* an invalid request is answered even without an id */
    reply_error_text(call, LPQ_API_E_INVALID_REQUEST, NULL, why);
    return;
  }
  if (call->silent)
    s->notifications_in++;
  const char *name = json_string_value(method_value);
  if (!c->authenticated && strcmp(name, "auth") != 0) {
    lpq_api_reply_error(call, LPQ_API_E_UNAUTHORIZED, NULL, "this TCP connection is not "
                        "authenticated: its first request must be auth {\"token\": ...}");
    return;
  }
  api_method_t *m = lpq__api_method_find(s, name);
  if (m == NULL) {
    lpq_api_reply_error(call, LPQ_API_E_NO_METHOD, json_pack("{ss}", "method", name),
                        "unknown method '%.200s'", name);
    return;
  }
  call->method = m;
  m->calls++;
  m->pending++;
  if (c->pending > s->opts.max_pending) {
    lpq_api_reply_error(call, LPQ_API_E_LIMIT, NULL, "more than %zu unanswered requests on this "
                        "connection; wait for answers", s->opts.max_pending);
    return;
  }
  if (params == NULL)
    call->params = json_object();
  else
    call->params = json_incref(params);
  if (m->params_schema) {
    if (!json_is_object(call->params)) {
      lpq_api_reply_error(call, LPQ_API_E_INVALID_PARAMS,
                          json_pack("{ss ss}", "field", "params", "expected", "an object"),
                          "%s: params must be an object of named members, got an array", name);
      return;
    }
    char field[256], expected[256];
    lpq_error_t err;
    if (lpq__api_validate(m->schema_doc, m->params_schema, call->params, NULL, field, sizeof field,
                     expected, sizeof expected, &err) != 0) {
      lpq_api_reply_error(call, LPQ_API_E_INVALID_PARAMS,
                          json_pack("{ss ss}", "field", field, "expected", expected),
                          "%s: invalid params: %s", name, err.msg);
      return;
    }
  }
  m->handler(m->ctx, call, call->params);
}

void lpq__api_handle_request(api_conn_t *c, json_t *req) {
  handle_request(c, NULL, req);
}

void lpq__api_parse(const char *line, size_t len, size_t max_depth, api_parsed_t *p) {
  memset(p, 0, sizeof *p);
  if (too_deep(line, len, max_depth)) {
    p->too_deep = 1;
    return;
  }
  json_error_t jerr;
  if ((p->msg = json_loadb(line, len, JSON_DECODE_ANY, &jerr)) == NULL) {
    p->column = jerr.column;
    snprintf(p->error, sizeof p->error, "%s", jerr.text);
  }
}

void lpq__api_handle_line(api_conn_t *c, const char *line, size_t len) {
  api_parsed_t p;
  lpq__api_parse(line, len, c->server->opts.max_depth, &p);
  lpq__api_handle_parsed(c, &p);
}

void lpq__api_handle_parsed(api_conn_t *c, api_parsed_t *p) {
  lpq_api_server_t *s = c->server;
  if (p->too_deep) {
    char msg[128];
    snprintf(msg, sizeof msg, "JSON nested deeper than %zu levels", s->opts.max_depth);
    lpq__api_send_error(c, LPQ_API_E_LIMIT, json_pack("{sI}", "limit", (json_int_t)s->opts.max_depth),
                   msg);
    return;
  }
  json_t *msg = p->msg;
  p->msg = NULL;
  if (msg == NULL) {
    char text[256];
    snprintf(text, sizeof text, "parse error at column %d: %s", p->column, p->error);
    lpq__api_send_error(c, LPQ_API_E_PARSE, json_pack("{si}", "column", p->column), text);
    return;
  }
  if (!json_is_array(msg)) {
    handle_request(c, NULL, msg);
  } else if (json_array_size(msg) == 0) {
    lpq__api_send_error(c, LPQ_API_E_INVALID_REQUEST, NULL, "empty batch");
  } else if (json_array_size(msg) > s->opts.max_batch) {
    char text[128];
    snprintf(text, sizeof text, "batch of %zu requests exceeds the limit of %zu",
             json_array_size(msg), s->opts.max_batch);
    lpq__api_send_error(c, LPQ_API_E_LIMIT, json_pack("{sI}", "limit", (json_int_t)s->opts.max_batch),
                   text);
  } else {
    api_batch_t *b = calloc(1, sizeof *b);
    if (b && (b->responses = json_array()) != NULL) {
      s->batches++;
      b->conn = c;
      b->waiting = 1; /* held until every member has been dispatched */
      c->refs++;
      s->calls_out++;
      size_t i;
      json_t *req;
      json_array_foreach(msg, i, req) handle_request(c, b, req);
      batch_done(b);
    } else {
      free(b);
    }
  }
  json_decref(msg);
}

/* ---- subscriptions --------------------------------------------------------------------------- */

lpq_api_sub_t *lpq_api_subscribe(lpq_api_call_t *call, lpq_api_closed_fn on_closed, void *ctx) {
  if (call == NULL || call->silent || call->conn->closing)
    return NULL;
  lpq_api_sub_t *sub = calloc(1, sizeof *sub);
  if (sub == NULL)
    return NULL;
  api_conn_t *c = call->conn;
  sub->conn = c;
  sub->on_closed = on_closed;
  sub->ctx = ctx;
  sub->next = c->subs;
  if (c->subs)
    c->subs->prev = sub;
  c->subs = sub;
  c->server->subscriptions++;
  return sub;
}

static void sub_unlink(lpq_api_sub_t *sub) {
  api_conn_t *c = sub->conn;
  if (sub->prev)
    sub->prev->next = sub->next;
  else
    c->subs = sub->next;
  if (sub->next)
    sub->next->prev = sub->prev;
  c->server->subscriptions--;
}

void lpq_api_unsubscribe(lpq_api_sub_t **sub) {
  if (sub == NULL || *sub == NULL)
    return;
  sub_unlink(*sub);
  free(*sub);
  *sub = NULL;
}

int lpq_api_notify(lpq_api_sub_t *sub, const char *method, json_t *params) {
  if (sub == NULL || method == NULL) {
    json_decref(params);
    return LPQ_EINVAL;
  }
  json_t *msg = json_pack("{ss ss so}", "jsonrpc", "2.0", "method", method, "params",
                          params ? params : json_object());
  if (msg == NULL)
    return LPQ_ENOMEM;
  int rc = lpq__api_conn_send(sub->conn, msg);
  json_decref(msg);
  if (rc == 0)
    sub->conn->server->notifications_out++;
  return rc;
}

void lpq__api_conn_drop_subs(api_conn_t *c) {
  while (c->subs) {
    lpq_api_sub_t *sub = c->subs;
    sub_unlink(sub);
    if (sub->on_closed)
      sub->on_closed(sub->ctx, sub);
    free(sub);
  }
}

/* ---- built-in methods ------------------------------------------------------------------------ */

/* Compares in time independent of where the strings differ. */
static int token_equal(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  unsigned char diff = la != lb;
  for (size_t i = 0; i < la; i++)
    diff |= (unsigned char)(a[i] ^ b[i % (lb ? lb : 1)]);
  return diff == 0;
}

static void method_auth(void *ctx, lpq_api_call_t *call, json_t *params) {
  lpq_api_server_t *s = ctx;
  api_conn_t *c = call->conn;
  if (c->is_tcp) {
    const char *token = json_string_value(json_object_get(params, "token"));
    if (!token_equal(token, s->token)) {
      lpq_api_reply_error(call, LPQ_API_E_UNAUTHORIZED, NULL, "wrong token; closing the "
                          "connection");
      lpq__api_conn_close(c, 1);
      return;
    }
    lpq__api_conn_authenticated(c);
  }
  lpq_api_reply(call, json_pack("{sb ss}", "authenticated", 1, "transport",
                                c->is_tcp ? "tcp" : "unix"));
}

static void method_stats(void *ctx, lpq_api_call_t *call, json_t *params) {
  (void)params;
  lpq_api_reply(call, lpq_api_stats(ctx));
}

int lpq__api_register_builtins(lpq_api_server_t *s, lpq_error_t *err) {
  int rc = lpq_api_register(s, "auth", method_auth, s, err);
  return rc ? rc : lpq_api_register(s, "server.stats", method_stats, s, err);
}
