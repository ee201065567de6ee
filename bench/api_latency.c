/*
** bench/api_latency.c: N concurrent clients each calling a cheap method of the JSON-RPC API
** server in a closed loop (send, wait for the answer, send again); p50/p99/max latency and
** calls per second. The peer, in the same run and with the same clients: a bare libuv server
** that echoes each line without any JSON, the floor of what the socket and the loop cost.
** --busy-ms B blocks the server's loop for B ms every 100 ms, standing in for the daemon's own
** work (issue 9 wants p99 < 50 ms with 200 clients while a job runs).
**
** usage: api_latency [--clients N] [--seconds S] [--method ping|stats] [--busy-ms B]
*/
#include "bench/bench_verdict.h"
#include "coordinator/api/api.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- the servers (one thread, one loop) ------------------------------------------------------ */

typedef struct server_t {
  uv_loop_t loop;
  uv_async_t stop;
  uv_timer_t busy;
  lpq_api_server_t *api; /* the JSON-RPC server, or NULL for the bare echo */
  uv_pipe_t echo;        /* the bare echo listener */
  const char *path;
  size_t clients;
  int busy_ms;
  pthread_t thread;
  volatile int ready;
} server_t;

static void ping(void *ctx, lpq_api_call_t *call, json_t *params) {
  (void)ctx;
  (void)params;
  lpq_api_reply(call, json_pack("{sb}", "pong", 1));
}

typedef struct echo_conn_t {
  uv_pipe_t pipe;
  char buf[65536];
} echo_conn_t;

static void echo_free(uv_handle_t *h) {
  free(h->data);
}

static void echo_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf) {
  (void)size;
  echo_conn_t *c = h->data;
  *buf = uv_buf_init(c->buf, sizeof c->buf);
}

typedef struct echo_write_t {
  uv_write_t req;
  char *data;
} echo_write_t;

static void echo_written(uv_write_t *req, int status) {
  (void)status;
  echo_write_t *w = (echo_write_t *)req;
  free(w->data);
  free(w);
}

static void echo_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  if (n < 0) {
    uv_close((uv_handle_t *)s, echo_free);
    return;
  }
  if (n == 0)
    return;
  /* Closed-loop clients send one line at a time: echo the bytes back as they came. */
  echo_write_t *w = malloc(sizeof *w);
  w->data = malloc((size_t)n);
  memcpy(w->data, buf->base, (size_t)n);
  uv_buf_t out = uv_buf_init(w->data, (unsigned)n);
  uv_write(&w->req, s, &out, 1, echo_written);
}

static void echo_connection(uv_stream_t *listener, int status) {
  if (status < 0)
    return;
  echo_conn_t *c = malloc(sizeof *c);
  uv_pipe_init(listener->loop, &c->pipe, 0);
  c->pipe.data = c;
  if (uv_accept(listener, (uv_stream_t *)&c->pipe) == 0)
    uv_read_start((uv_stream_t *)&c->pipe, echo_alloc, echo_read);
  else
    uv_close((uv_handle_t *)&c->pipe, echo_free);
}

/* Closes every handle of the echo server; connections (pipes other than the listener, whose
** data is the marker 1) free their memory. */
static void close_any(uv_handle_t *h, void *arg) {
  (void)arg;
  int conn = h->type == UV_NAMED_PIPE && h->data != (void *)1;
  if (!uv_is_closing(h))
    uv_close(h, conn ? echo_free : NULL);
}

static void on_stop(uv_async_t *a) {
  server_t *s = a->data;
  if (s->api) {
    lpq_api_free(&s->api);
    uv_close((uv_handle_t *)&s->stop, NULL);
    uv_close((uv_handle_t *)&s->busy, NULL);
  } else {
    uv_walk(&s->loop, close_any, NULL);
  }
}

static void busy_tick(uv_timer_t *t) {
  server_t *s = t->data;
  uint64_t until = now_ns() + (uint64_t)s->busy_ms * 1000000u;
  while (now_ns() < until) {
  }
}

static void *server_thread(void *arg) {
  server_t *s = arg;
  uv_loop_init(&s->loop);
  uv_async_init(&s->loop, &s->stop, on_stop);
  s->stop.data = s;
  uv_timer_init(&s->loop, &s->busy);
  s->busy.data = s;
  if (s->busy_ms > 0)
    uv_timer_start(&s->busy, busy_tick, 100, 100);
  if (s->api == (void *)1) {
    lpq_error_t err;
    lpq_api_options_t o = {.unix_path = s->path, .max_connections = s->clients + 16};
    s->api = lpq_api_new(&s->loop, &o, &err);
    if (s->api == NULL || lpq_api_register_schema(s->api, "bench.ping", NULL, ping, NULL, &err)) {
      fprintf(stderr, "api_latency: %s\n", err.msg);
      exit(1);
    }
  } else {
    unlink(s->path);
    uv_pipe_init(&s->loop, &s->echo, 0);
    s->echo.data = (void *)1;
    if (uv_pipe_bind(&s->echo, s->path) ||
        uv_listen((uv_stream_t *)&s->echo, SOMAXCONN, echo_connection)) {
      fprintf(stderr, "api_latency: cannot listen on %s\n", s->path);
      exit(1);
    }
  }
  s->ready = 1;
  uv_run(&s->loop, UV_RUN_DEFAULT);
  uv_loop_close(&s->loop);
  return NULL;
}

/* ---- the clients (one thread, one loop, N connections) --------------------------------------- */

typedef struct bench_t bench_t;

typedef struct client_t {
  uv_pipe_t pipe;
  uv_connect_t connect;
  uv_write_t write;
  bench_t *bench;
  uint64_t sent_ns;
  long id;
  char buf[4096];
  size_t len;
  char line[160];
} client_t;

struct bench_t {
  uv_loop_t loop;
  uv_timer_t end;
  client_t *clients;
  size_t count, connected;
  const char *method;
  int stopping;
  uint32_t *lat_us;
  size_t lat_count, lat_cap;
  uint64_t start_ns, end_ns;
};

static void client_send(client_t *c) {
  int n = snprintf(c->line, sizeof c->line, "{\"jsonrpc\":\"2.0\",\"method\":\"%s\",\"id\":%ld}\n",
                   c->bench->method, ++c->id);
  uv_buf_t b = uv_buf_init(c->line, (unsigned)n);
  c->sent_ns = now_ns();
  uv_write(&c->write, (uv_stream_t *)&c->pipe, &b, 1, NULL);
}

static void client_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf) {
  (void)size;
  client_t *c = h->data;
  *buf = uv_buf_init(c->buf + c->len, (unsigned)(sizeof c->buf - c->len));
}

static void client_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  (void)buf;
  client_t *c = s->data;
  bench_t *b = c->bench;
  if (n < 0) {
    if (!b->stopping)
      fprintf(stderr, "api_latency: a client lost its connection: %s\n", uv_strerror((int)n));
    uv_read_stop(s);
    return;
  }
  c->len += (size_t)n;
  char *nl = memchr(c->buf, '\n', c->len);
  if (nl == NULL) {
    if (c->len == sizeof c->buf)
      c->len = 0; /* an answer larger than the buffer: not expected from these methods */
    return;
  }
  size_t used = (size_t)(nl - c->buf) + 1;
  memmove(c->buf, c->buf + used, c->len - used);
  c->len -= used;
  uint64_t us = (now_ns() - c->sent_ns) / 1000;
  if (b->lat_count == b->lat_cap) {
    b->lat_cap = b->lat_cap ? 2 * b->lat_cap : 1 << 20;
    b->lat_us = realloc(b->lat_us, b->lat_cap * sizeof *b->lat_us);
  }
  b->lat_us[b->lat_count++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
  if (!b->stopping)
    client_send(c);
}

static void client_connected(uv_connect_t *req, int status) {
  client_t *c = req->data;
  if (status < 0) {
    fprintf(stderr, "api_latency: connect: %s\n", uv_strerror(status));
    exit(1);
  }
  uv_read_start((uv_stream_t *)&c->pipe, client_alloc, client_read);
  if (++c->bench->connected == c->bench->count) {
    c->bench->start_ns = now_ns();
    for (size_t i = 0; i < c->bench->count; i++)
      client_send(&c->bench->clients[i]);
  }
}

static void end_run(uv_timer_t *t) {
  bench_t *b = t->data;
  b->stopping = 1;
  b->end_ns = now_ns();
  for (size_t i = 0; i < b->count; i++)
    uv_close((uv_handle_t *)&b->clients[i].pipe, NULL);
  uv_close((uv_handle_t *)&b->end, NULL);
}

static int by_value(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return (x > y) - (x < y);
}

static double run_clients(const char *label, const char *path, size_t count, double seconds,
                        const char *method) {
  bench_t b = {.count = count, .method = method};
  uv_loop_init(&b.loop);
  b.clients = calloc(count, sizeof *b.clients);
  for (size_t i = 0; i < count; i++) {
    client_t *c = &b.clients[i];
    c->bench = &b;
    uv_pipe_init(&b.loop, &c->pipe, 0);
    c->pipe.data = c;
    c->connect.data = c;
    uv_pipe_connect(&c->connect, &c->pipe, path, client_connected);
  }
  uv_timer_init(&b.loop, &b.end);
  b.end.data = &b;
  /* The clock starts when every client is connected; the timer allows for that. */
  uv_timer_start(&b.end, end_run, (uint64_t)(seconds * 1000) + 200, 0);
  uv_run(&b.loop, UV_RUN_DEFAULT);
  uv_loop_close(&b.loop);
  qsort(b.lat_us, b.lat_count, sizeof *b.lat_us, by_value);
  double span = (double)(b.end_ns - b.start_ns) / 1e9;
  size_t n = b.lat_count;
#define PCT(q) (n ? b.lat_us[(size_t)((q) * (double)(n - 1))] / 1000.0 : 0.0)
  printf("%-34s %5zu clients %9zu calls %9.0f calls/s  p50 %7.3f ms  p99 %7.3f ms  max %7.3f ms\n",
         label, count, n, (double)n / span, PCT(0.50), PCT(0.99), n ? b.lat_us[n - 1] / 1000.0 : 0);
  double p99 = PCT(0.99);
#undef PCT
  free(b.lat_us);
  free(b.clients);
  return p99;
}

static double serve_and_measure(const char *label, int api, const char *path, size_t clients,
                              double seconds, const char *method, int busy_ms) {
  server_t s = {.path = path, .clients = clients, .busy_ms = busy_ms};
  s.api = api ? (void *)1 : NULL;
  pthread_create(&s.thread, NULL, server_thread, &s);
  while (!s.ready)
    usleep(1000);
  double p99 = run_clients(label, path, clients, seconds, method);
  uv_async_send(&s.stop);
  pthread_join(s.thread, NULL);
  unlink(path);
  return p99;
}

int main(int argc, char **argv) {
  size_t clients = 200;
  double seconds = 3;
  const char *method = "bench.ping";
  int busy_ms = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--clients") && v)
      clients = (size_t)atol(argv[++i]);
    else if (!strcmp(a, "--seconds") && v)
      seconds = atof(argv[++i]);
    else if (!strcmp(a, "--method") && v)
      method = !strcmp(argv[++i], "stats") ? "server.stats" : "bench.ping";
    else if (!strcmp(a, "--busy-ms") && v)
      busy_ms = atoi(argv[++i]);
    else {
      fprintf(stderr, "usage: api_latency [--clients N] [--seconds S] [--method ping|stats] "
                      "[--busy-ms B]\n");
      return 2;
    }
  }
  if (getenv("LPQ_ASAN"))
    seconds = seconds < 0.5 ? seconds : 0.5;
  if (clients == 0 || clients > 800 || !(seconds > 0)) {
    fprintf(stderr, "api_latency: clients in 1..800 and seconds > 0\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN); /* the echo peer writes to clients that have gone at the end */
  char dir[] = "/tmp/lpq_bench_XXXXXX";
  if (mkdtemp(dir) == NULL) {
    perror("mkdtemp");
    return 1;
  }
  char path[64];
  snprintf(path, sizeof path, "%s/api.sock", dir);
  char label[96];
  printf("api_latency: closed-loop clients on a Unix socket, %.1f s each\n", seconds);
  if (busy_ms)
    printf("  the server loop is blocked %d ms every 100 ms (a stand-in for a running job)\n",
           busy_ms);
  snprintf(label, sizeof label, "lpq API (%s)", method);
  double p99 = serve_and_measure(label, 1, path, clients, seconds, method, busy_ms);
  serve_and_measure("peer: bare libuv line echo", 0, path, clients, seconds, method, busy_ms);
  rmdir(dir);
  char target[96];
  snprintf(target, sizeof target, "API p99 latency, %zu clients, loop busy %d ms in 100", clients,
           busy_ms);
  bench_verdict("api_latency", target, p99, "<", 50, "ms");
  return 0;
}
