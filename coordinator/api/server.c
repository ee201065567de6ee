/*
** coordinator/api/server.c: the API server's sockets (a Unix socket with mode 0600, optional
** TCP), connections and their life, line framing with its size limit, and writes with a bound
** on what a slow client may leave queued.
*/
#define _GNU_SOURCE /* struct ucred (SO_PEERCRED) */
#include "coordinator/api/api_internal.h"

#include <errno.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define READ_CHUNK 65536

typedef struct write_req_t {
  uv_write_t req;
  api_conn_t *conn;
  char *data;
} write_req_t;

void lpq__api_conn_authenticated(api_conn_t *c) {
  c->authenticated = 1;
  if (c->counted_unauth) {
    c->counted_unauth = 0;
    c->server->unauth_count--;
  }
}

static void conn_free(api_conn_t *c) {
  lpq_api_server_t *s = c->server;
  if (c->counted_unauth)
    s->unauth_count--;
  if (c->prev)
    c->prev->next = c->next;
  else
    s->conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  if (!c->is_local)
    s->conn_count--;
  free(c->buf);
  free(c);
  lpq__api_server_maybe_free(s);
}

void lpq__api_conn_unref(api_conn_t *c) {
  if (--c->refs == 0)
    conn_free(c);
}

static void on_conn_closed(uv_handle_t *h) {
  api_conn_t *c = h->data;
  c->handle_open = 0;
  c->server->handles_open--;
  lpq__api_conn_drop_subs(c);
  lpq__api_conn_unref(c);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  (void)status;
  api_conn_t *c = req->data;
  free(req);
  c->flushing = 0;
  if (!uv_is_closing(&c->h.handle)) /* the reaper may have closed it already */
    uv_close(&c->h.handle, on_conn_closed);
}

/* A client that never reads can hold a flushing close open forever; give it a few seconds. */
#define FLUSH_TIMEOUT_NS (5ull * 1000000000ull)

static void on_reap(uv_timer_t *t) {
  lpq_api_server_t *s = t->data;
  uint64_t now = lpq__api_now_ns();
  uint64_t auth_ns = (uint64_t)s->opts.auth_timeout_ms * 1000000ull;
  uint64_t request_ns = (uint64_t)s->opts.request_timeout_ms * 1000000ull;
  for (api_conn_t *c = s->conns; c; c = c->next) {
    if (c->flushing && now - c->flushing_since_ns > FLUSH_TIMEOUT_NS &&
        !uv_is_closing(&c->h.handle))
      uv_close(&c->h.handle, on_conn_closed);
    else if (!c->closing && !c->parsing && c->line_started_ns && c->len > 0 &&
             now - c->line_started_ns > request_ns + (uint64_t)((double)c->len * 1e9 /
                                                                (double)s->opts.min_request_rate)) {
      /* a client that sends its request a byte at a time holds a slot and a buffer */
      s->slow_requests++;
      char msg[200];
      snprintf(msg, sizeof msg, "request not complete after %.1f s (%zu bytes; after %u ms at "
               "least %zu bytes/s are expected); closing the connection",
               (double)(now - c->line_started_ns) / 1e9, c->len, s->opts.request_timeout_ms,
               s->opts.min_request_rate);
      lpq__api_send_error(c, LPQ_API_E_LIMIT, NULL, msg);
      lpq__api_conn_close(c, 1);
    } else if (!c->closing && !c->authenticated && now - c->accepted_ns > auth_ns) {
      /* a client that never authenticates (or sends its auth a byte at a time) holds a slot */
      s->auth_timeouts++;
      char msg[128];
      snprintf(msg, sizeof msg, "not authenticated within %u ms; closing the connection",
               s->opts.auth_timeout_ms);
      lpq__api_send_error(c, LPQ_API_E_UNAUTHORIZED, NULL, msg);
      lpq__api_conn_close(c, 1);
    }
  }
}

void lpq__api_conn_close(api_conn_t *c, int flush) {
  if (c->is_local) { /* no handle: closed at once, as a socket's close callback would */
    if (!c->closing) {
      c->closing = 1;
      lpq__api_conn_drop_subs(c);
      lpq__api_conn_unref(c);
    }
    return;
  }
  if (c->closing) {
    /* A close at once overrides a flush that is still waiting (the server is freed). */
    if (!flush && c->flushing && !uv_is_closing(&c->h.handle))
      uv_close(&c->h.handle, on_conn_closed);
    return;
  }
  c->closing = 1;
  uv_read_stop(&c->h.stream);
  if (flush) {
    /* Let the last error reach the client before the close. */
    uv_shutdown_t *req = malloc(sizeof *req);
    if (req) {
      req->data = c;
      if (uv_shutdown(req, &c->h.stream, on_shutdown) == 0) {
        c->flushing = 1;
        c->flushing_since_ns = lpq__api_now_ns();
        return;
      }
      free(req);
    }
  }
  uv_close(&c->h.handle, on_conn_closed);
}

static void on_written(uv_write_t *req, int status) {
  write_req_t *w = (write_req_t *)req;
  (void)status; /* a failed write shows up as a read error or EOF too */
  free(w->data);
  free(w);
}

int lpq__api_conn_send(api_conn_t *c, const json_t *msg) {
  if (c->closing)
    return LPQ_EIO;
  if (c->is_local) {
    c->on_message(c->local_ctx, msg);
    return 0;
  }
  char *text = json_dumps(msg, JSON_COMPACT);
  if (text == NULL)
    return LPQ_ENOMEM;
  size_t len = strlen(text);
  char *line = realloc(text, len + 1);
  write_req_t *w = line ? malloc(sizeof *w) : NULL;
  if (w == NULL) {
    free(line ? line : text);
    return LPQ_ENOMEM;
  }
  line[len] = '\n';
  w->conn = c;
  w->data = line;
  uv_buf_t buf = uv_buf_init(line, (unsigned)(len + 1));
  if (uv_write(&w->req, &c->h.stream, &buf, 1, on_written) != 0) {
    free(line);
    free(w);
    lpq__api_conn_close(c, 0);
    return LPQ_EIO;
  }
  c->server->bytes_out += len + 1;
  if (uv_stream_get_write_queue_size(&c->h.stream) > c->server->opts.max_write_queue) {
    lpq__api_conn_close(c, 0); /* the client does not read: drop it rather than grow without end */
    return LPQ_ERANGE;
  }
  return 0;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  api_conn_t *c = h->data;
  if (c->cap - c->len < READ_CHUNK) {
    size_t cap = c->cap ? c->cap * 2 : READ_CHUNK * 2;
    while (cap - c->len < READ_CHUNK)
      cap *= 2;
    char *p = realloc(c->buf, cap);
    if (p == NULL) {
      *buf = uv_buf_init(NULL, 0); /* libuv reports UV_ENOBUFS; the connection closes */
      return;
    }
    c->buf = p;
    c->cap = cap;
  }
  *buf = uv_buf_init(c->buf + c->len, (unsigned)(c->cap - c->len));
}

static void frame_lines(api_conn_t *c);

static void parse_work(uv_work_t *w) {
  api_conn_t *c = w->data;
  lpq__api_parse(c->buf + c->parse_off, c->parse_len, c->server->opts.max_depth, &c->parsed);
}

static void parse_done(uv_work_t *w, int status) {
  (void)status;
  api_conn_t *c = w->data;
  c->parsing = 0;
  c->server->calls_out--;
  c->server->parsed_off_loop++;
  if (!c->closing)
    lpq__api_handle_parsed(c, &c->parsed);
  json_decref(c->parsed.msg);
  c->parsed.msg = NULL;
  if (!c->closing) {
    /* the parsed line leaves the buffer; what came after it is framed now */
    memmove(c->buf, c->buf + c->parse_next, c->len - c->parse_next);
    c->len -= c->parse_next;
    c->scanned = 0;
    c->line_started_ns = c->len ? lpq__api_now_ns() : 0;
    if (uv_read_start(&c->h.stream, on_alloc, on_read) != 0)
      lpq__api_conn_close(c, 0);
    else
      frame_lines(c);
  }
  lpq__api_conn_unref(c); /* c (and at the end the server) may be freed here */
}

/* A line of parse_offload_bytes or more is parsed on the work queue (a 60 MB blob.put took
** seconds of the loop): reading stops and the connection's later lines wait, in order, until
** it is back. The line stays in c->buf, which nothing touches meanwhile. */
static void parse_off_loop(api_conn_t *c, size_t off, size_t len, size_t next) {
  c->parsing = 1;
  c->parse_off = off;
  c->parse_len = len;
  c->parse_next = next;
  uv_read_stop(&c->h.stream);
  c->refs++;
  c->server->calls_out++;
  c->parse_work.data = c;
  if (uv_queue_work(c->server->loop, &c->parse_work, parse_work, parse_done) != 0) {
    parse_work(&c->parse_work);
    parse_done(&c->parse_work, 0);
  }
}

/* Frames the received bytes into lines and hands each to the RPC layer. */
static void frame_lines(api_conn_t *c) {
  size_t start = 0, max = c->server->opts.max_message_bytes;
  while (!c->closing && !c->parsing) {
    char *nl = memchr(c->buf + c->scanned, '\n', c->len - c->scanned);
    if (nl == NULL) {
      c->scanned = c->len;
      break;
    }
    size_t end = (size_t)(nl - c->buf), line_len = end - start;
    if (line_len > 0 && c->buf[end - 1] == '\r')
      line_len--;
    if (line_len > max) {
      char msg[160];
      snprintf(msg, sizeof msg, "message of %zu bytes exceeds the limit of %zu bytes; closing "
               "the connection", line_len, max);
      lpq__api_send_error(c, LPQ_API_E_LIMIT, json_pack("{sI sI}", "bytes", (json_int_t)line_len,
                                                   "limit", (json_int_t)max), msg);
      lpq__api_conn_close(c, 1);
      return;
    }
    if (line_len >= c->server->opts.parse_offload_bytes) {
      parse_off_loop(c, start, line_len, end + 1);
      return; /* parse_done frames the rest */
    }
    if (line_len > 0)
      lpq__api_handle_line(c, c->buf + start, line_len);
    start = end + 1;
    c->scanned = start;
  }
  if (c->closing || c->parsing)
    return;
  memmove(c->buf, c->buf + start, c->len - start);
  c->len -= start;
  c->scanned -= start;
  /* a partial line is timed from its first byte (slow senders are dropped by the reaper) */
  if (c->len == 0)
    c->line_started_ns = 0;
  else if (start > 0 || c->line_started_ns == 0)
    c->line_started_ns = lpq__api_now_ns();
  if (c->len > max + 1) {
    char msg[160];
    snprintf(msg, sizeof msg, "message exceeds the limit of %zu bytes (no newline within it); "
             "closing the connection", max);
    lpq__api_send_error(c, LPQ_API_E_LIMIT, json_pack("{sI}", "limit", (json_int_t)max), msg);
    lpq__api_conn_close(c, 1);
    return;
  }
  /* Do not keep a huge buffer around once the big message is through. */
  if (c->cap > 4 * READ_CHUNK && c->len < READ_CHUNK) {
    char *p = realloc(c->buf, 2 * READ_CHUNK);
    if (p) {
      c->buf = p;
      c->cap = 2 * READ_CHUNK;
    }
  }
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  (void)buf;
  api_conn_t *c = stream->data;
  if (nread < 0) {
    lpq__api_conn_close(c, 0);
    return;
  }
  c->len += (size_t)nread;
  c->server->bytes_in += (size_t)nread;
  /* The connection must outlive the handlers that run for its lines. */
  c->refs++;
  frame_lines(c);
  lpq__api_conn_unref(c);
}

static void on_connection(uv_stream_t *listener, int status) {
  lpq_api_server_t *s = listener->data;
  if (status < 0 || s->freeing)
    return;
  api_conn_t *c = calloc(1, sizeof *c);
  if (c == NULL)
    return;
  c->server = s;
  c->is_tcp = listener == (uv_stream_t *)&s->tcp_listener;
  c->authenticated = !c->is_tcp; /* the Unix socket's file mode is its access control */
  int rc = c->is_tcp ? uv_tcp_init(s->loop, &c->h.tcp) : uv_pipe_init(s->loop, &c->h.pipe, 0);
  if (rc != 0) {
    free(c);
    return;
  }
  c->h.handle.data = c;
  c->handle_open = 1;
  c->refs = 1;
  s->handles_open++;
  c->next = s->conns;
  if (s->conns)
    s->conns->prev = c;
  s->conns = c;
  s->conn_count++;
  if (uv_accept(listener, &c->h.stream) != 0) {
    lpq__api_conn_close(c, 0);
    return;
  }
  if (c->is_tcp)
    uv_tcp_nodelay(&c->h.tcp, 1);
  else {
    uv_os_fd_t fd;
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (uv_fileno(&c->h.handle, &fd) == 0 &&
        getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
      c->has_peer_uid = 1;
      c->peer_uid = (unsigned long)cred.uid;
    }
  }
  c->accepted_ns = lpq__api_now_ns();
  if (c->is_tcp) {
    c->counted_unauth = 1;
    s->unauth_count++;
  }
  /* TCP may not take the slots kept for the local administrator's Unix socket, and clients that
  ** have not authenticated yet have a smaller limit of their own */
  size_t limit = s->opts.max_connections, reserve = s->opts.unix_reserve;
  if (c->is_tcp)
    limit = limit > reserve ? limit - reserve : 1;
  int unauth_over = c->is_tcp && s->unauth_count > s->opts.max_unauthenticated;
  if (s->conn_count > limit || unauth_over) {
    s->rejected++;
    char msg[160];
    if (unauth_over)
      snprintf(msg, sizeof msg, "too many connections waiting to authenticate (limit %zu); try "
               "again later", s->opts.max_unauthenticated);
    else
      snprintf(msg, sizeof msg, "too many connections (limit %zu%s); try again later", limit,
               c->is_tcp ? " for TCP" : "");
    lpq__api_send_error(c, LPQ_API_E_LIMIT, json_pack("{sI}", "limit", (json_int_t)(
                            unauth_over ? s->opts.max_unauthenticated : limit)), msg);
    lpq__api_conn_close(c, 1);
    return;
  }
  s->accepted++;
  if (uv_read_start(&c->h.stream, on_alloc, on_read) != 0)
    lpq__api_conn_close(c, 0);
}

/* ---- listening ------------------------------------------------------------------------------ */

/* Removes a socket file nobody accepts on; refuses a live one and any other kind of file. */
static int clear_stale_socket(const char *path, lpq_error_t *err) {
  struct stat st;
  if (lstat(path, &st) != 0)
    return errno == ENOENT ? 0 : lpq_errorf(err, LPQ_EIO, "%s: %s", path, strerror(errno));
  if (!S_ISSOCK(st.st_mode))
    return lpq_errorf(err, LPQ_ESTATE, "%s exists and is not a socket; not replacing it", path);
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  if (fd < 0)
    return lpq_errorf(err, LPQ_EIO, "socket: %s", strerror(errno));
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path);
  int live = connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0;
  close(fd);
  if (live)
    return lpq_errorf(err, LPQ_ESTATE, "%s: another server is listening on it (is a coordinator "
                      "already running?)", path);
  if (unlink(path) != 0)
    return lpq_errorf(err, LPQ_EIO, "%s: cannot remove the stale socket: %s", path,
                      strerror(errno));
  return 0;
}

static int listen_unix(lpq_api_server_t *s, lpq_error_t *err) {
  const char *path = s->unix_path;
  if (strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
    return lpq_errorf(err, LPQ_EINVAL, "socket path %s is longer than %zu bytes", path,
                      sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
  char *dir_copy = strdup(path);
  if (dir_copy == NULL)
    return lpq_errorf(err, LPQ_ENOMEM, "out of memory");
  const char *dir = dirname(dir_copy);
  if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
    int e = errno;
    free(dir_copy);
    return lpq_errorf(err, LPQ_EIO, "%s: cannot create the socket's folder: %s", path,
                      strerror(e));
  }
  free(dir_copy);
  int rc = clear_stale_socket(path, err);
  if (rc)
    return rc;
  if ((rc = uv_pipe_init(s->loop, &s->unix_listener, 0)) != 0)
    return lpq_errorf(err, LPQ_EIO, "%s: %s", path, uv_strerror(rc));
  s->unix_listener.data = s;
  s->has_unix = 1;
  s->handles_open++;
  if ((rc = uv_pipe_bind(&s->unix_listener, path)) != 0)
    return lpq_errorf(err, LPQ_EIO, "%s: cannot bind: %s", path, uv_strerror(rc));
  s->unix_bound = 1; /* from here on the file is ours to remove */
  /* Nobody can connect before listen, so the mode is right from the first client on. */
  if (chmod(path, 0600) != 0)
    return lpq_errorf(err, LPQ_EIO, "%s: chmod 0600: %s", path, strerror(errno));
  if ((rc = uv_listen((uv_stream_t *)&s->unix_listener, SOMAXCONN, on_connection)) != 0)
    return lpq_errorf(err, LPQ_EIO, "%s: cannot listen: %s", path, uv_strerror(rc));
  return 0;
}

static int listen_tcp(lpq_api_server_t *s, lpq_error_t *err) {
  const lpq_api_options_t *o = &s->opts;
  if (s->token == NULL || strlen(s->token) < 16)
    return lpq_errorf(err, LPQ_EINVAL, "TCP on %s:%d needs a token of at least 16 characters",
                      o->tcp_host, o->tcp_port);
  if (o->tcp_port < 0 || o->tcp_port > 65535)
    return lpq_errorf(err, LPQ_EINVAL, "TCP port %d is outside 0..65535", o->tcp_port);
  struct sockaddr_storage addr;
  if (uv_ip4_addr(o->tcp_host, o->tcp_port, (struct sockaddr_in *)&addr) != 0 &&
      uv_ip6_addr(o->tcp_host, o->tcp_port, (struct sockaddr_in6 *)&addr) != 0)
    return lpq_errorf(err, LPQ_EINVAL, "TCP host '%s' is not an IPv4 or IPv6 address",
                      o->tcp_host);
  int rc = uv_tcp_init(s->loop, &s->tcp_listener);
  if (rc)
    return lpq_errorf(err, LPQ_EIO, "tcp: %s", uv_strerror(rc));
  s->tcp_listener.data = s;
  s->has_tcp = 1;
  s->handles_open++;
  if ((rc = uv_tcp_bind(&s->tcp_listener, (struct sockaddr *)&addr, 0)) != 0 ||
      (rc = uv_listen((uv_stream_t *)&s->tcp_listener, SOMAXCONN, on_connection)) != 0)
    return lpq_errorf(err, LPQ_EIO, "%s:%d: cannot listen: %s", o->tcp_host, o->tcp_port,
                      uv_strerror(rc));
  struct sockaddr_storage bound;
  int len = sizeof bound;
  if (uv_tcp_getsockname(&s->tcp_listener, (struct sockaddr *)&bound, &len) == 0)
    s->tcp_port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                    : ((struct sockaddr_in *)&bound)->sin_port);
  return 0;
}

static void on_listener_closed(uv_handle_t *h) {
  lpq_api_server_t *s = h->data;
  s->handles_open--;
  lpq__api_server_maybe_free(s);
}

void lpq__api_server_maybe_free(lpq_api_server_t *s) {
  if (!s->freeing || s->handles_open || s->calls_out || s->conns)
    return;
  lpq__api_methods_free(s);
  free(s->unix_path);
  free(s->token);
  free(s);
}

lpq_api_server_t *lpq_api_new(uv_loop_t *loop, const lpq_api_options_t *opts,
                              lpq_error_t *err) {
  if (loop == NULL || opts == NULL || (opts->unix_path == NULL && opts->tcp_host == NULL)) {
    lpq_errorf(err, LPQ_EINVAL, "api: a loop and a Unix path or a TCP host are required");
    return NULL;
  }
  /* A client that goes away while its answer is written must cost an EPIPE, not the process. */
  struct sigaction old;
  if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL)
    signal(SIGPIPE, SIG_IGN);
  lpq_api_server_t *s = calloc(1, sizeof *s);
  if (s == NULL) {
    lpq_errorf(err, LPQ_ENOMEM, "out of memory");
    return NULL;
  }
  s->loop = loop;
  s->opts = *opts;
  s->start_ns = lpq__api_now_ns();
  if (!s->opts.max_message_bytes)
    s->opts.max_message_bytes = (size_t)64 << 20;
  if (!s->opts.max_depth)
    s->opts.max_depth = 64;
  if (!s->opts.max_connections)
    s->opts.max_connections = 256;
  if (!s->opts.max_batch)
    s->opts.max_batch = 256;
  if (!s->opts.max_pending)
    s->opts.max_pending = 1024;
  if (!s->opts.max_unauthenticated)
    s->opts.max_unauthenticated = 32;
  if (!s->opts.unix_reserve)
    s->opts.unix_reserve = 16;
  if (!s->opts.auth_timeout_ms)
    s->opts.auth_timeout_ms = 10000;
  if (!s->opts.request_timeout_ms)
    s->opts.request_timeout_ms = 10000;
  if (!s->opts.min_request_rate)
    s->opts.min_request_rate = 32768;
  if (!s->opts.parse_offload_bytes)
    s->opts.parse_offload_bytes = 262144;
  if (!s->opts.max_write_queue)
    s->opts.max_write_queue = 2 * s->opts.max_message_bytes;
  s->unix_path = opts->unix_path ? strdup(opts->unix_path) : NULL;
  s->token = opts->token ? strdup(opts->token) : NULL;
  s->opts.unix_path = s->unix_path;
  s->opts.token = s->token;
  int rc = 0;
  if ((opts->unix_path && s->unix_path == NULL) || (opts->token && s->token == NULL))
    rc = lpq_errorf(err, LPQ_ENOMEM, "out of memory");
  if (rc == 0) {
    int uv_rc = uv_timer_init(loop, &s->reaper);
    if (uv_rc != 0) {
      rc = lpq_errorf(err, LPQ_EIO, "api: timer: %s", uv_strerror(uv_rc));
    } else {
      s->reaper.data = s;
      s->has_reaper = 1;
      s->handles_open++;
      unsigned shortest = s->opts.auth_timeout_ms < s->opts.request_timeout_ms
                              ? s->opts.auth_timeout_ms : s->opts.request_timeout_ms;
      uint64_t every = shortest < 4000 ? shortest / 4 + 1 : 1000;
      uv_timer_start(&s->reaper, on_reap, every, every);
      uv_unref((uv_handle_t *)&s->reaper); /* it never keeps the loop alive by itself */
    }
  }
  if (rc == 0)
    rc = lpq__api_register_builtins(s, err);
  if (rc == 0 && s->unix_path)
    rc = listen_unix(s, err);
  if (rc == 0 && opts->tcp_host)
    rc = listen_tcp(s, err);
  if (rc != 0) {
    lpq_api_free(&s); /* what was opened is closed on the loop's next run */
    return NULL;
  }
  return s;
}

int lpq_api_tcp_port(const lpq_api_server_t *s) {
  return s ? s->tcp_port : 0;
}

void lpq_api_free(lpq_api_server_t **sp) {
  if (sp == NULL || *sp == NULL)
    return;
  lpq_api_server_t *s = *sp;
  *sp = NULL;
  s->freeing = 1;
  if (s->has_unix) {
    uv_close((uv_handle_t *)&s->unix_listener, on_listener_closed);
    if (s->unix_bound)
      unlink(s->unix_path);
  }
  if (s->has_reaper)
    uv_close((uv_handle_t *)&s->reaper, on_listener_closed);
  if (s->has_tcp)
    uv_close((uv_handle_t *)&s->tcp_listener, on_listener_closed);
  for (api_conn_t *c = s->conns; c; c = c->next)
    lpq__api_conn_close(c, 0);
  lpq__api_server_maybe_free(s);
}
