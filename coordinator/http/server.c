/*
** coordinator/http/server.c: the dashboard's listener and connections (libh2o on the caller's
** libuv loop), the connection limit, authentication (loopback, or the API's bearer token as a
** header or the cookie /login sets), routing, and the compiled-in pages.
*/
#include "coordinator/http/http_internal.h"

#include <h2o/socket/uv-binding.h>

#include <arpa/inet.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct http_conn_t {
  uv_tcp_t tcp; /* first: libh2o's close callback gets the handle */
  lpq_http_server_t *s;
} http_conn_t;

typedef struct http_handler_t {
  h2o_handler_t super;
  lpq_http_server_t *s;
} http_handler_t;

#define COOKIE_NAME "lpq_token"

int lpq_http_host_is_loopback(const char *host) {
  return host && (strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0 ||
                  strcmp(host, "[::1]") == 0 || strcmp(host, "localhost") == 0);
}

/* ---- responses ------------------------------------------------------------------------------ */

static const char *reason(int status) {
  switch (status) {
  case 200: return "OK";
  case 303: return "See Other";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 409: return "Conflict";
  case 413: return "Payload Too Large";
  case 431: return "Request Header Fields Too Large";
  case 503: return "Service Unavailable";
  default: return status < 500 ? "Bad Request" : "Internal Server Error";
  }
}

static void count_status(lpq_http_server_t *s, int status) {
  if (status >= 400 && status < 500)
    s->stats.status_4xx++;
  else if (status >= 500)
    s->stats.status_5xx++;
}

static void add_header(h2o_req_t *req, const char *name, const char *value) {
  h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 1, NULL, value,
                        strlen(value));
}

/* Headers every answer carries: the pages load nothing from elsewhere. */
static void common_headers(h2o_req_t *req) {
  add_header(req, "x-content-type-options", "nosniff");
  add_header(req, "content-security-policy",
             "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:");
}

void lpq__http_respond(lpq_http_server_t *s, h2o_req_t *req, int status, const char *type,
                       const char *body, size_t len, const char *const *headers) {
  count_status(s, status);
  req->res.status = status;
  req->res.reason = reason(status);
  add_header(req, "content-type", type);
  common_headers(req);
  for (size_t i = 0; headers && headers[i] && headers[i + 1]; i += 2)
    add_header(req, headers[i], headers[i + 1]);
  req->res.content_length = len;
  h2o_send_inline(req, body, len);
}

void lpq__http_error(lpq_http_server_t *s, h2o_req_t *req, int status, const char *message) {
  json_t *o = json_pack("{s{si ss}}", "error", "code", status, "message", message);
  char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
  json_decref(o);
  const char *body = text ? text : "{\"error\":{\"message\":\"out of memory\"}}";
  lpq__http_respond(s, req, status, "application/json", body, strlen(body), NULL);
  free(text);
}

/* A compiled-in file, sent from its static bytes (no copy). */
static void send_asset(lpq_http_server_t *s, h2o_req_t *req, const lpq__http_asset_t *a) {
  static h2o_generator_t generator = {NULL, NULL};
  req->res.status = 200;
  req->res.reason = "OK";
  add_header(req, "content-type", a->type);
  add_header(req, "cache-control", strcmp(a->path, "/") == 0 ? "no-cache" : "max-age=3600");
  common_headers(req);
  req->res.content_length = a->len;
  h2o_start_response(req, &generator);
  int head = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"));
  h2o_iovec_t body = h2o_iovec_init(a->body, a->len);
  h2o_send(req, &body, head ? 0 : 1, H2O_SEND_STATE_FINAL);
  (void)s;
}

static const lpq__http_asset_t *asset_find(const char *path, size_t len) {
  for (size_t i = 0; i < lpq__http_asset_count; i++)
    if (strlen(lpq__http_assets[i].path) == len && memcmp(lpq__http_assets[i].path, path, len) == 0)
      return &lpq__http_assets[i];
  return NULL;
}

/* ---- requests ------------------------------------------------------------------------------- */

static int hexval(int c) {
  return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
       : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

char *lpq__http_unescape(const char *src, size_t len, int form) {
  char *out = malloc(len + 1);
  if (out == NULL)
    return NULL;
  size_t n = 0;
  for (size_t i = 0; i < len; i++) {
    if (src[i] == '%') {
      int hi = i + 2 < len ? hexval(src[i + 1]) : -1;
      int lo = i + 2 < len ? hexval(src[i + 2]) : -1;
      if (hi < 0 || lo < 0 || hi * 16 + lo == 0) { /* cut short, not hex, or a NUL */
        free(out);
        return NULL;
      }
      out[n++] = (char)(hi * 16 + lo);
      i += 2;
    } else {
      out[n++] = form && src[i] == '+' ? ' ' : src[i];
    }
  }
  out[n] = '\0';
  return out;
}

/* The value of parameter name in an application/x-www-form-urlencoded text (a query or a form
** body), decoded; NULL when absent or malformed. */
static char *form_param(const char *text, size_t len, const char *name) {
  size_t nlen = strlen(name);
  const char *p = text, *end = text + len;
  while (p < end) {
    const char *amp = memchr(p, '&', (size_t)(end - p));
    const char *stop = amp ? amp : end;
    if ((size_t)(stop - p) > nlen && memcmp(p, name, nlen) == 0 && p[nlen] == '=')
      return lpq__http_unescape(p + nlen + 1, (size_t)(stop - p - (ptrdiff_t)nlen - 1), 1);
    p = stop + 1;
  }
  return NULL;
}

char *lpq__http_query_param(h2o_req_t *req, const char *name) {
  if (req->query_at == SIZE_MAX || req->query_at >= req->path.len)
    return NULL;
  return form_param(req->path.base + req->query_at + 1, req->path.len - req->query_at - 1, name);
}

/* Compares in time independent of where the strings differ. */
static int secret_equal(const char *a, size_t alen, const char *b) {
  size_t blen = strlen(b);
  unsigned diff = alen != blen;
  for (size_t i = 0; i < alen; i++)
    diff |= (unsigned char)a[i] ^ (unsigned char)b[i < blen ? i : 0];
  return diff == 0 && blen > 0;
}

/* On loopback (no token), a request must name a loopback host: a page of another site whose
** name an attacker points at 127.0.0.1 (DNS rebinding) sends its own name and gets 403, so it
** cannot read the dashboard from a browser on this host. */
static int host_is_loopback(const h2o_req_t *req) {
  const char *a = req->input.authority.base;
  size_t n = req->input.authority.len;
  char host[64];
  if (a == NULL || n == 0 || n >= sizeof host)
    return 0;
  size_t end = n;
  if (a[0] == '[') { /* [v6]:port */
    const char *close = memchr(a, ']', n);
    end = close ? (size_t)(close - a) + 1 : n;
  } else {
    const char *colon = memchr(a, ':', n);
    end = colon ? (size_t)(colon - a) : n;
  }
  for (size_t i = end + 1; end < n && i < n; i++)
    if (a[end] != ':' || a[i] < '0' || a[i] > '9')
      return 0;
  memcpy(host, a, end);
  host[end] = '\0';
  for (size_t i = 0; i < end; i++)
    host[i] = (char)(host[i] >= 'A' && host[i] <= 'Z' ? host[i] - 'A' + 'a' : host[i]);
  if (strncmp(host, "127.", 4) == 0) { /* an address, not a name starting with "127." */
    struct in_addr v4;
    return inet_pton(AF_INET, host, &v4) == 1;
  }
  return strcmp(host, "localhost") == 0 || strcmp(host, "[::1]") == 0;
}

/* Loopback needs nothing; otherwise "Authorization: Bearer TOKEN" or the cookie. */
static int authorized(lpq_http_server_t *s, h2o_req_t *req) {
  if (s->token == NULL)
    return 1;
  ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
  if (i >= 0) {
    const h2o_iovec_t *v = &req->headers.entries[i].value;
    return v->len > 7 && h2o_lcstris(v->base, 7, H2O_STRLIT("bearer ")) &&
           secret_equal(v->base + 7, v->len - 7, s->token);
  }
  for (i = -1; (i = h2o_find_header(&req->headers, H2O_TOKEN_COOKIE, i)) >= 0;) {
    const h2o_iovec_t *v = &req->headers.entries[i].value;
    const char *p = v->base, *end = v->base + v->len;
    while (p < end) {
      while (p < end && (*p == ' ' || *p == ';'))
        p++;
      const char *semi = memchr(p, ';', (size_t)(end - p));
      const char *stop = semi ? semi : end;
      size_t n = strlen(COOKIE_NAME "=");
      if ((size_t)(stop - p) > n && memcmp(p, COOKIE_NAME "=", n) == 0 &&
          secret_equal(p + n, (size_t)(stop - p) - n, s->token))
        return 1;
      p = stop;
    }
  }
  return 0;
}

static const char login_page[] =
    "<!doctype html><meta charset=utf-8><title>lpq: sign in</title>"
    "<link rel=stylesheet href=/assets/app.css><main class=login><h1>lpq</h1>"
    "<form method=post action=/login><label>API token <input type=password name=token "
    "autofocus></label> <button>Sign in</button></form>"
    "<p>The token is the one of <code>lpq-coordinator --token-file</code>.</p></main>\n";

static void login(lpq_http_server_t *s, h2o_req_t *req, int post) {
  if (!post) {
    lpq__http_respond(s, req, 200, "text/html; charset=utf-8", login_page,
                      sizeof login_page - 1, NULL);
    return;
  }
  char *token = form_param(req->entity.base, req->entity.len, "token");
  int ok = token && s->token && secret_equal(token, strlen(token), s->token);
  free(token);
  if (!ok) {
    lpq__http_error(s, req, 401, "wrong token");
    return;
  }
  char cookie[600];
  snprintf(cookie, sizeof cookie, COOKIE_NAME "=%s; Path=/; HttpOnly; SameSite=Strict", s->token);
  const char *const headers[] = {"set-cookie", cookie, "location", "/", NULL};
  lpq__http_respond(s, req, 303, "text/plain", "signed in\n", 10, headers);
}

/* A positive decimal job id of at most 18 digits, the whole of p[0..len). */
static int parse_id(const char *p, size_t len, int64_t *id) {
  if (len == 0 || len > 18)
    return -1;
  int64_t v = 0;
  for (size_t i = 0; i < len; i++) {
    if (p[i] < '0' || p[i] > '9')
      return -1;
    v = v * 10 + (p[i] - '0');
  }
  *id = v;
  return v > 0 ? 0 : -1;
}

/* /events?jobs=A,B,...: distinct positive ids, at most HTTP_STREAM_JOBS. */
static void events_of_jobs(lpq_http_server_t *s, h2o_req_t *req) {
  char *list = lpq__http_query_param(req, "jobs");
  int64_t jobs[HTTP_STREAM_JOBS];
  size_t n = 0;
  int ok = list != NULL && list[0] != '\0';
  for (char *p = list; ok && p && *p;) {
    char *comma = strchr(p, ',');
    size_t k = comma ? (size_t)(comma - p) : strlen(p);
    int64_t id;
    ok = n < HTTP_STREAM_JOBS && parse_id(p, k, &id) == 0;
    for (size_t i = 0; ok && i < n; i++)
      ok = jobs[i] != id;
    if (ok)
      jobs[n++] = id;
    p = comma ? comma + 1 : NULL;
  }
  free(list);
  if (!ok) {
    lpq__http_error(s, req, 400, "jobs: 1 to 64 distinct job ids, comma-separated");
    return;
  }
  lpq__http_events(s, req, jobs, n);
}

static int starts(const char *path, size_t len, const char *prefix) {
  size_t n = strlen(prefix);
  return len >= n && memcmp(path, prefix, n) == 0;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req) {
  lpq_http_server_t *s = ((http_handler_t *)self)->s;
  s->stats.requests++;
  const char *path = req->path_normalized.base;
  size_t len = req->path_normalized.len;
  int get = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) ||
            h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"));
  int post = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"));
  size_t header_bytes = req->path.len;
  for (size_t i = 0; i < req->headers.size; i++)
    header_bytes += req->headers.entries[i].name->len + req->headers.entries[i].value.len + 4;
  if (header_bytes > s->opts.max_header_bytes) {
    lpq__http_error(s, req, 431, "the request's headers are too large");
    return 0;
  }
  if (!get && !post) {
    lpq__http_error(s, req, 405, "the dashboard answers GET, HEAD and POST only");
    return 0;
  }
  if (s->token == NULL && !host_is_loopback(req)) {
    lpq__http_error(s, req, 403, "on loopback the dashboard answers requests for 127.0.0.1, "
                    "localhost or [::1] only (Host)");
    return 0;
  }
  if (len == 6 && memcmp(path, "/login", 6) == 0) {
    login(s, req, post);
    return 0;
  }
  if (!authorized(s, req)) {
    lpq__http_error(s, req, 401, "this dashboard needs the API token: sign in at /login or "
                    "send Authorization: Bearer TOKEN");
    return 0;
  }
  int64_t job;
  if (starts(path, len, "/api/")) {
    lpq__http_api(s, req, path + 5, len - 5);
    return 0;
  }
  if (post) {
    lpq__http_error(s, req, 405, "POST is for /api/METHOD only");
    return 0;
  }
  if ((len == 1 && path[0] == '/') ||
      (starts(path, len, "/job/") && parse_id(path + 5, len - 5, &job) == 0)) {
    send_asset(s, req, asset_find("/", 1));
    return 0;
  }
  if (starts(path, len, "/events/") && parse_id(path + 8, len - 8, &job) == 0) {
    lpq__http_events(s, req, &job, 1);
    return 0;
  }
  if (len == 7 && memcmp(path, "/events", 7) == 0) {
    events_of_jobs(s, req);
    return 0;
  }
  if (starts(path, len, "/export/")) {
    const char *slash = memchr(path + 8, '/', len - 8);
    if (slash && parse_id(path + 8, (size_t)(slash - path - 8), &job) == 0) {
      lpq__http_export(s, req, job, slash + 1, (size_t)(path + len - slash - 1));
      return 0;
    }
  }
  const lpq__http_asset_t *a = starts(path, len, "/assets/") ? asset_find(path, len) : NULL;
  if (a) {
    send_asset(s, req, a);
    return 0;
  }
  lpq__http_error(s, req, 404, "no such page");
  return 0;
}

/* ---- connections ------------------------------------------------------------------------- */

static void on_conn_closed(uv_handle_t *h) {
  http_conn_t *c = (http_conn_t *)h;
  c->s->conn_count--;
  free(c);
}

static const char busy_reply[] = "HTTP/1.1 503 Service Unavailable\r\n"
                                 "Content-Type: text/plain\r\nContent-Length: 21\r\n"
                                 "Connection: close\r\n\r\ntoo many connections\n";

static void on_accept(uv_stream_t *listener, int status) {
  lpq_http_server_t *s = listener->data;
  if (status != 0 || s->freeing)
    return;
  http_conn_t *c = calloc(1, sizeof *c);
  if (c == NULL)
    return;
  c->s = s;
  if (uv_tcp_init(s->loop, &c->tcp) != 0) {
    free(c);
    return;
  }
  s->conn_count++;
  if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    return;
  }
  if (s->conn_count > s->opts.max_connections) {
    s->stats.rejected++;
    uv_buf_t b = uv_buf_init((char *)busy_reply, sizeof busy_reply - 1);
    uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    return;
  }
  s->stats.accepted++;
  uv_tcp_nodelay(&c->tcp, 1);
  h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)&c->tcp, on_conn_closed);
  if (sock == NULL) {
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    return;
  }
  h2o_accept(&s->accept_ctx, sock);
}

/* ---- the server ----------------------------------------------------------------------------- */

static void on_events_timer(uv_timer_t *t) {
  lpq__http_streams_flush(t->data);
}

/* A server freed while viewers were still connected (lpq_http_free). */
static lpq_http_server_t *kept_at_exit;

static void server_release(lpq_http_server_t *s) {
  lpq__http_events_cache_free(s);
  lpq__http_cache_free(s);
  free(s->host);
  free(s->token);
  free(s);
}

/* The listener closes last and its callback frees the server: libh2o's timers (inside s->ctx)
** and the events timer have finished closing by then (lpq_http_free). */
static void on_listener_closed(uv_handle_t *h) {
  server_release(h->data);
}

lpq_http_server_t *lpq_http_new(uv_loop_t *loop, lpq_api_server_t *api,
                                const lpq_http_options_t *opts, lpq_error_t *err) {
  if (loop == NULL || api == NULL || opts == NULL || opts->host == NULL) {
    lpq_errorf(err, LPQ_EINVAL, "http: a loop, the API and a host are required");
    return NULL;
  }
  int loopback = lpq_http_host_is_loopback(opts->host);
  if (!loopback && (opts->token == NULL || strlen(opts->token) < 16)) {
    lpq_errorf(err, LPQ_EINVAL, "http: %s is not a loopback address: the dashboard needs the "
               "API's token there (--token-file)", opts->host);
    return NULL;
  }
  if (opts->port < 0 || opts->port > 65535) {
    lpq_errorf(err, LPQ_EINVAL, "http: port %d is out of range", opts->port);
    return NULL;
  }
  lpq_http_server_t *s = calloc(1, sizeof *s);
  if (s == NULL) {
    lpq_errorf(err, LPQ_ENOMEM, "out of memory");
    return NULL;
  }
  s->loop = loop;
  s->api = api;
  s->opts = *opts;
  s->opts.max_connections = opts->max_connections ? opts->max_connections : 1024;
  s->opts.max_request_bytes = opts->max_request_bytes ? opts->max_request_bytes : (size_t)1 << 20;
  s->opts.max_header_bytes = opts->max_header_bytes ? opts->max_header_bytes : (size_t)32 << 10;
  s->host = strdup(strcmp(opts->host, "localhost") == 0 ? "127.0.0.1" : opts->host);
  size_t hl = s->host ? strlen(s->host) : 0;
  if (hl > 2 && s->host[0] == '[' && s->host[hl - 1] == ']') { /* [v6 address] */
    memmove(s->host, s->host + 1, hl - 2);
    s->host[hl - 2] = '\0';
  }
  s->token = loopback || opts->token == NULL ? NULL : strdup(opts->token);
  if (s->host == NULL || (!loopback && s->token == NULL)) {
    server_release(s);
    lpq_errorf(err, LPQ_ENOMEM, "out of memory");
    return NULL;
  }
  struct sockaddr_storage addr;
  int rc = strchr(s->host, ':') ? uv_ip6_addr(s->host, opts->port, (struct sockaddr_in6 *)&addr)
                                : uv_ip4_addr(s->host, opts->port, (struct sockaddr_in *)&addr);
  if (rc != 0) {
    lpq_errorf(err, LPQ_EINVAL, "http: '%s' is not an IP address", opts->host);
    server_release(s);
    return NULL;
  }
  uv_tcp_init(loop, &s->listener);
  s->listener.data = s;
  if ((rc = uv_tcp_bind(&s->listener, (struct sockaddr *)&addr, 0)) != 0 ||
      (rc = uv_listen((uv_stream_t *)&s->listener, 511, on_accept)) != 0) {
    lpq_errorf(err, LPQ_EIO, "http: %s:%d: %s", opts->host, opts->port, uv_strerror(rc));
    uv_close((uv_handle_t *)&s->listener, on_listener_closed);
    return NULL;
  }
  struct sockaddr_storage bound;
  int blen = sizeof bound;
  if (uv_tcp_getsockname(&s->listener, (struct sockaddr *)&bound, &blen) == 0)
    s->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                : ((struct sockaddr_in *)&bound)->sin_port);
  h2o_config_init(&s->config);
  s->config.server_name = h2o_iovec_init(H2O_STRLIT("lpq-coordinator"));
  s->config.max_request_entity_size = s->opts.max_request_bytes;
  s->config.http1.upgrade_to_http2 = 0;
  h2o_hostconf_t *host = h2o_config_register_host(&s->config,
                                                  h2o_iovec_init(H2O_STRLIT("default")), 65535);
  h2o_pathconf_t *pc = h2o_config_register_path(host, "/", 0);
  http_handler_t *h = (http_handler_t *)h2o_create_handler(pc, sizeof *h);
  h->super.on_req = on_req;
  h->s = s;
  h2o_context_init(&s->ctx, loop, &s->config);
  s->accept_ctx.ctx = &s->ctx;
  s->accept_ctx.hosts = s->config.hosts;
  s->h2o_ready = 1;
  uv_timer_init(loop, &s->events_timer);
  s->events_timer.data = s;
  uv_timer_start(&s->events_timer, on_events_timer, HTTP_EVENT_MS, HTTP_EVENT_MS);
  uv_unref((uv_handle_t *)&s->events_timer); /* never keeps the loop alive by itself */
  return s;
}

int lpq_http_port(const lpq_http_server_t *s) {
  return s ? s->port : 0;
}

void lpq_http_stats(const lpq_http_server_t *s, lpq_http_stats_t *out) {
  if (s == NULL || out == NULL)
    return;
  *out = s->stats;
  out->connections = s->conn_count;
}

void lpq_http_free(lpq_http_server_t **sp) {
  if (sp == NULL || *sp == NULL)
    return;
  lpq_http_server_t *s = *sp;
  *sp = NULL;
  s->freeing = 1;
  lpq__http_streams_end(s);
  lpq__http_pendings_free(s);
  /* libh2o's context can be disposed only without connections (its timers must be idle).
  ** With viewers still connected the process is ending: the server is kept (reachable, for
  ** the leak checker) and the loop's final walk closes its handles. */
  if (s->h2o_ready && s->conn_count > 0) {
    kept_at_exit = s;
    uv_close((uv_handle_t *)&s->listener, NULL);
    uv_close((uv_handle_t *)&s->events_timer, NULL);
    return;
  }
  /* libh2o's context dispose runs the loop once (uv_run): the events timer's close and its own
  ** timers' finish there. The listener closes after it, so that its callback, which frees the
  ** server, cannot run before h2o_config_dispose has read s->config (valgrind saw that read of
  ** freed memory when the listener closed first; ASan cannot see reads inside libh2o). */
  if (s->h2o_ready) {
    uv_close((uv_handle_t *)&s->events_timer, NULL);
    h2o_context_dispose(&s->ctx);
    h2o_config_dispose(&s->config);
  }
  uv_close((uv_handle_t *)&s->listener, on_listener_closed);
}
