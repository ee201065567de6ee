/* tests/test_http.c: the dashboard's HTTP server (coordinator/http/) in this process, on the API
** server of tests/test_api_harness.h with fake daemon methods: the bridge through the API's
** in-process clients (validation, read-only methods), event streams fed by a job.watch that
** notifies on a timer (rate, the final event, a viewer that leaves), an answer that comes after
** its viewer has gone, the connection limit, and a clean free (every libuv handle closed). */
#include "tests/test_api_harness.h"

#include "coordinator/http/http.h"

#include <arpa/inet.h>
#include <sys/time.h>

TestSuite(http, .timeout = 120);

/* Under ASan: libh2o keeps the chunks it frees on per-thread recycle lists (its memory pools'
** and socket buffers' allocators, __thread), never released; the server here runs on the
** harness's thread, which ends before the leak check, so they read as leaks. The daemon's loop
** is the main thread: there they stay reachable. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) {
  return "leak:h2o_mem_alloc_recycle\n";
}

static harness_t h;
static lpq_http_server_t *http;
static int http_port;
static size_t max_connections; /* for the next start; 0: the default */

typedef struct ticker_t {
  uv_timer_t timer;
  lpq_api_sub_t *sub;
  int sent;
} ticker_t;

static json_t *progress(int generation, const char *status) {
  return json_pack("{sI ss sb sI sI sI sf}", "job", (json_int_t)1, "status", status, "final",
                   strcmp(status, "done") == 0, "generation", (json_int_t)generation,
                   "generations", (json_int_t)5, "evaluations", (json_int_t)(10 * generation),
                   "progress", generation / 5.0);
}

static void ticker_closed(uv_handle_t *t) {
  free(t->data);
}

/* job 1's watch: generations 1..5 every 60 ms, the last one final */
static void tick(uv_timer_t *t) {
  ticker_t *k = t->data;
  k->sent++;
  int last = k->sent == 5;
  if (lpq_api_notify(k->sub, "job.progress", progress(k->sent, last ? "done" : "running")) != 0)
    return; /* closing: on_closed follows */
  if (last) {
    lpq_api_unsubscribe(&k->sub);
    uv_timer_stop(&k->timer);
    uv_close((uv_handle_t *)&k->timer, ticker_closed);
  }
}

static void watch_closed(void *ctx, lpq_api_sub_t *sub) {
  (void)sub;
  ticker_t *k = ctx;
  uv_timer_stop(&k->timer);
  uv_close((uv_handle_t *)&k->timer, ticker_closed);
}

static void f_watch(void *ctx, lpq_api_call_t *call, json_t *params) {
  harness_t *hh = ctx;
  if (json_integer_value(json_object_get(params, "job")) != 1) {
    lpq_api_reply_error(call, LPQ_API_E_JOB_NOT_FOUND, NULL, "no job");
    return;
  }
  ticker_t *k = calloc(1, sizeof *k);
  k->sub = lpq_api_subscribe(call, watch_closed, k);
  cr_assert_not_null(k->sub);
  uv_timer_init(&hh->loop, &k->timer);
  k->timer.data = k;
  uv_timer_start(&k->timer, tick, 60, 60);
  lpq_api_reply(call, progress(0, "running"));
}

static void f_list(void *ctx, lpq_api_call_t *call, json_t *params) {
  (void)ctx;
  (void)params;
  lpq_api_reply(call, json_pack("{s[{sI ss ss sI sI}] sI}", "jobs", "job", (json_int_t)1, "name",
                                "fake", "status", "running", "generation", (json_int_t)0,
                                "evaluations", (json_int_t)0, "total", (json_int_t)1));
}

static void f_get(void *ctx, lpq_api_call_t *call, json_t *params) {
  (void)ctx;
  lpq_api_reply(call, json_pack("{sO ss}", "job", json_object_get(params, "job"), "name", "fake"));
}

/* job.export answers 300 ms later, as the daemon's does after the work queue */
static void f_export(void *ctx, lpq_api_call_t *call, json_t *params) {
  (void)params;
  later_t *l = calloc(1, sizeof *l);
  l->h = ctx;
  l->call = call;
  l->value = json_pack("{sI ss s{si s[{ss ss ss}]}}", "job", (json_int_t)1, "genome",
                       "0123456789abcdef", "config", "version", 1, "layers", "name", "conv",
                       "w", "lp<4,1,2,0>", "a", "lp<8,2,3,0>");
  uv_timer_init(&l->h->loop, &l->timer);
  l->timer.data = l;
  uv_timer_start(&l->timer, h_later_fire, 300, 0);
}

static void f_http_connections(void *ctx, lpq_api_call_t *call, json_t *params) {
  (void)ctx;
  (void)params;
  lpq_http_stats_t st = {0};
  lpq_http_stats(http, &st);
  lpq_api_reply(call, json_integer((json_int_t)st.connections));
}

static void f_http_free(void *ctx, lpq_api_call_t *call, json_t *params) {
  (void)ctx;
  (void)params;
  lpq_http_stats_t st = {0};
  lpq_http_stats(http, &st);
  lpq_http_free(&http);
  lpq_api_reply(call, json_pack("{sI sI sI}", "connections", (json_int_t)st.connections,
                                "rejected", (json_int_t)st.rejected, "status_4xx",
                                (json_int_t)st.status_4xx));
}

static void setup(harness_t *hh) {
  lpq_error_t err = {0};
  cr_assert_eq(lpq_api_register(hh->server, "job.watch", f_watch, hh, &err), 0);
  cr_assert_eq(lpq_api_register(hh->server, "job.list", f_list, hh, &err), 0);
  cr_assert_eq(lpq_api_register(hh->server, "job.get", f_get, hh, &err), 0);
  cr_assert_eq(lpq_api_register(hh->server, "job.export", f_export, hh, &err), 0);
  cr_assert_eq(lpq_api_register_schema(hh->server, "test.http_free", NULL, f_http_free, hh, &err),
               0);
  cr_assert_eq(lpq_api_register_schema(hh->server, "test.http_connections", NULL,
                                       f_http_connections, hh, &err), 0);
  lpq_http_options_t o = {.host = "127.0.0.1", .max_connections = max_connections};
  http = lpq_http_new(&hh->loop, hh->server, &o, &err);
  cr_assert_not_null(http, "%s", err.msg);
  http_port = lpq_http_port(http);
}

static void start(size_t max_conn) {
  max_connections = max_conn;
  cr_assert_eq(harness_start(&h, NULL, 0, setup), 0, "%s", h.start_msg);
  cr_assert_gt(http_port, 0);
}

/* Frees the HTTP server on the loop (its stats back), then the API's: every handle closed. */
static json_t *stop(void) {
  client_t c;
  cr_assert_eq(client_connect(&c, h.path), 0);
  /* the server sees its viewers' connections close (one whose stream is idle, at its next
  ** write); lpq_http_free with viewers still there leaves them to the process's end */
  for (int i = 0; i < 100; i++) {
    json_t *n = client_call(&c, "{\"jsonrpc\":\"2.0\",\"method\":\"test.http_connections\",\"id\":1}");
    json_int_t open = json_integer_value(json_object_get(n, "result"));
    json_decref(n);
    if (open == 0)
      break;
    usleep(50000);
  }
  json_t *r = client_call(&c, "{\"jsonrpc\":\"2.0\",\"method\":\"test.http_free\",\"id\":1}");
  client_close(&c);
  harness_stop(&h);
  json_t *res = json_incref(json_object_get(r, "result"));
  json_decref(r);
  return res;
}

static int tcp(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)http_port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  struct timeval tv = {5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

/* GET path for host with Connection: close; the whole answer (until the server closes) in buf. */
static int get_host(const char *path, const char *host, char *buf, size_t cap) {
  int fd = tcp();
  char req[512];
  int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
                   path, host);
  cr_assert_eq(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
  size_t got = 0;
  ssize_t k;
  while (got < cap - 1 && (k = recv(fd, buf + got, cap - 1 - got, 0)) > 0)
    got += (size_t)k;
  buf[got] = '\0';
  close(fd);
  int status = 0;
  sscanf(buf, "HTTP/1.%*d %d", &status);
  return status;
}

static int get(const char *path, char *buf, size_t cap) {
  return get_host(path, "localhost", buf, cap);
}

static size_t count(const char *text, const char *needle) {
  size_t n = 0;
  for (const char *p = strstr(text, needle); p; p = strstr(p + 1, needle))
    n++;
  return n;
}

static char buf[1 << 16];

Test(http, the_bridge_validates_and_serves_read_only_methods) {
  start(0);
  cr_assert_eq(get("/api/job.list", buf, sizeof buf), 200, "%s", buf);
  cr_assert_not_null(strstr(buf, "\"jobs\":[{"), "%s", buf);
  cr_assert_eq(get("/api/job.get?params=%7B%22job%22%3A7%7D", buf, sizeof buf), 200, "%s", buf);
  cr_assert_not_null(strstr(buf, "\"job\":7"), "%s", buf);
  /* the API's own validation, through the in-process client */
  cr_assert_eq(get("/api/job.get?params=%7B%22job%22%3A%22x%22%7D", buf, sizeof buf), 400);
  cr_assert_not_null(strstr(buf, "-32602"), "%s", buf);
  cr_assert_eq(get("/api/job.get", buf, sizeof buf), 400, "a missing job: %s", buf);
  /* methods the API has that write (403), and names it does not know (404) */
  cr_assert_eq(get("/api/job.cancel?params=%7B%22job%22%3A1%7D", buf, sizeof buf), 403);
  cr_assert_eq(get("/api/blob.put", buf, sizeof buf), 403);
  cr_assert_eq(get("/api/test.echo?params=%7B%22value%22%3A1%7D", buf, sizeof buf), 404);
  cr_assert_eq(get("/assets/app.js", buf, sizeof buf), 200);
  cr_assert_not_null(strstr(buf, "EventSource"));
  cr_assert_eq(get("/assets/uPlot.iife.min.js", buf, sizeof buf), 200);
  json_t *st = stop();
  cr_assert_eq(json_integer_value(json_object_get(st, "status_4xx")), 5, "%s",
               json_dumps(st, 0));
  json_decref(st);
}

/* On loopback a request must name a loopback host (a DNS-rebinding page names its own). */
Test(http, on_loopback_only_loopback_host_names_are_served) {
  start(0);
  static char buf[1 << 12];
  static const char *const ok[] = {"localhost", "LocalHost:8080", "127.0.0.1", "127.0.0.1:1",
                                   "127.1.2.3:65535", "[::1]", "[::1]:8080"};
  static const char *const bad[] = {"evil.example", "evil.example:8080", "127.evil.example",
                                    "localhost.evil.example", "127.0.0.1.evil.example",
                                    "localhost:80x", "[::2]:80", "10.0.0.1", ""};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
    cr_assert_eq(get_host("/api/job.list", ok[i], buf, sizeof buf), 200, "Host: %s: %s", ok[i],
                 buf);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    cr_assert_eq(get_host("/api/job.list", bad[i], buf, sizeof buf), 403, "Host: %s: %s",
                 bad[i], buf);
  cr_assert_eq(get_host("/", "evil.example", buf, sizeof buf), 403, "%s", buf);
  json_decref(stop());
}

Test(http, an_event_stream_follows_job_watch_to_its_final_event) {
  start(0);
  struct timeval t0, t1;
  gettimeofday(&t0, NULL);
  cr_assert_eq(get("/events/1", buf, sizeof buf), 200, "%s", buf);
  gettimeofday(&t1, NULL);
  double s = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_usec - t0.tv_usec) / 1e6;
  cr_assert_not_null(strstr(buf, "text/event-stream"), "%s", buf);
  /* the first snapshot at once, the final one always; 5 notifications in 300 ms, at most one
  ** event per 250 ms: some replaced by newer ones */
  size_t events = count(buf, "event: progress\n");
  cr_assert(events >= 2 && events <= 4, "%zu events: %s", events, buf);
  cr_assert_not_null(strstr(buf, "\"generation\":0"), "%s", buf);
  cr_assert_not_null(strstr(buf, "\"final\":true"), "%s", buf);
  cr_assert_not_null(strstr(buf, "\"generation\":5"), "%s", buf);
  cr_assert_lt(s, 3.0, "the stream did not end after the final event");
  cr_assert_eq(get("/events/2", buf, sizeof buf), 404, "%s", buf);
  /* a viewer that leaves mid-stream: its subscription ends (the fake's timer is closed) */
  int fd = tcp();
  const char req[] = "GET /events/1 HTTP/1.1\r\nHost: localhost\r\n\r\n";
  cr_assert_eq(send(fd, req, sizeof req - 1, MSG_NOSIGNAL), (ssize_t)(sizeof req - 1));
  cr_assert_gt(recv(fd, buf, sizeof buf, 0), 0);
  close(fd);
  usleep(100000);
  expect_serving(&h);
  cr_assert_eq(get("/api/job.list", buf, sizeof buf), 200);
  json_decref(stop());
}

Test(http, one_stream_follows_several_jobs) {
  start(0);
  /* job 1 streams, job 2 does not exist: the stream carries job 1's events and ends with its
  ** final one */
  cr_assert_eq(get("/events?jobs=1,2", buf, sizeof buf), 200, "%s", buf);
  cr_assert_not_null(strstr(buf, "\"final\":true"), "%s", buf);
  cr_assert_geq(count(buf, "event: progress\n"), 2, "%s", buf);
  cr_assert_eq(get("/events?jobs=2,3", buf, sizeof buf), 404, "no job at all: %s", buf);
  const char *bad[] = {"/events", "/events?jobs=", "/events?jobs=1,1", "/events?jobs=x",
                       "/events?jobs=0", "/events?jobs=1,,2"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    cr_assert_eq(get(bad[i], buf, sizeof buf), 400, "%s: %s", bad[i], buf);
  char path[512] = "/events?jobs=1";
  for (int i = 2; i <= 65; i++)
    snprintf(path + strlen(path), sizeof path - strlen(path), ",%d", i);
  cr_assert_eq(get(path, buf, sizeof buf), 400, "65 jobs: %s", buf);
  json_decref(stop());
}

Test(http, an_answer_after_its_viewer_left_is_dropped) {
  start(0);
  cr_assert_eq(get("/export/1/config.json", buf, sizeof buf), 200, "%s", buf);
  cr_assert_not_null(strstr(buf, "attachment; filename=\"job1_config.json\""), "%s", buf);
  cr_assert_not_null(strstr(buf, "lp<4,1,2,0>"), "%s", buf);
  for (int i = 0; i < 5; i++) { /* asked, then gone before the 300 ms answer */
    int fd = tcp();
    const char req[] = "GET /export/1/config.json HTTP/1.1\r\nHost: localhost\r\n\r\n";
    cr_assert_eq(send(fd, req, sizeof req - 1, MSG_NOSIGNAL), (ssize_t)(sizeof req - 1));
    close(fd);
  }
  usleep(500000); /* the answers came and were dropped */
  cr_assert_eq(counter(&h, "later_done"), 6);
  cr_assert_eq(get("/api/job.list", buf, sizeof buf), 200);
  json_decref(stop());
}

Test(http, connections_over_the_limit_get_503) {
  start(3);
  int fd[3];
  for (int i = 0; i < 3; i++)
    fd[i] = tcp();
  usleep(100000);
  cr_assert_eq(get("/api/job.list", buf, sizeof buf), 503, "%s", buf);
  for (int i = 0; i < 3; i++)
    close(fd[i]);
  usleep(100000);
  cr_assert_eq(get("/api/job.list", buf, sizeof buf), 200, "%s", buf);
  json_t *st = stop();
  cr_assert_eq(json_integer_value(json_object_get(st, "rejected")), 1);
  json_decref(st);
}

Test(http, off_loopback_without_a_token_it_does_not_start) {
  start(0);
  json_decref(stop());
  uv_loop_t loop;
  uv_loop_init(&loop);
  lpq_error_t err = {0};
  lpq_http_options_t o = {.host = "0.0.0.0"};
  cr_assert_null(lpq_http_new(&loop, (lpq_api_server_t *)&loop, &o, &err));
  cr_assert_not_null(strstr(err.msg, "token"), "%s", err.msg);
  o.token = "short";
  cr_assert_null(lpq_http_new(&loop, (lpq_api_server_t *)&loop, &o, &err));
  o = (lpq_http_options_t){.host = "not-an-address", .token = "0123456789abcdef0123"};
  cr_assert_null(lpq_http_new(&loop, (lpq_api_server_t *)&loop, &o, &err));
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_assert_eq(uv_loop_close(&loop), 0);
  cr_assert(lpq_http_host_is_loopback("127.0.0.1") && lpq_http_host_is_loopback("::1") &&
            lpq_http_host_is_loopback("localhost") && !lpq_http_host_is_loopback("0.0.0.0") &&
            !lpq_http_host_is_loopback("10.0.0.1"));
  struct {
    const char *method, *params;
    int allowed;
  } calls[] = {
      {"job.export", "{\"job\":1}", 1},
      {"job.export", "{\"job\":1,\"dir\":\"/tmp\"}", 0},
      {"db.query", "{\"table\":\"generations\"}", 0},
      {"db.query", "{\"table\":\"generations\",\"where\":{\"job\":1}}", 1},
      {"db.query", "{\"table\":\"evaluations\",\"where\":{\"job\":1}}", 0},
      {"job.submit", "{}", 0},
      {"job.watch", "{\"job\":1}", 0},
  };
  for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++) {
    json_t *p = json_loads(calls[i].params, 0, NULL);
    cr_assert_eq(lpq_http_call_allowed(calls[i].method, p), calls[i].allowed, "%s %s",
                 calls[i].method, calls[i].params);
    json_decref(p);
  }
}
