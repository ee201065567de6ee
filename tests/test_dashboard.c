/* tests/test_dashboard.c: lpq-coordinator --http, the dashboard, as its users meet it: the real
** coordinator and worker on loopback, the pages rendered by Debian's headless chromium (driven
** by tests/dashboard/check.js through puppeteer-core; screenshots in $LPQ_BUILD/dashboard/),
** what they show checked against the database; bad HTTP input; the token off loopback. */
#include "tests/proc_harness.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

/* one suite-wide timeout: per-test timeouts leak in criterion's runner under ASan */
TestSuite(dashboard, .timeout = 300);

static const char *build_dir(void) {
  return getenv("LPQ_BUILD") ? getenv("LPQ_BUILD") : "build";
}

/* The dashboard's port from the coordinator's "dashboard: http://127.0.0.1:PORT/" line. */
static int dashboard_port(const proc_svc_t *s) {
  FILE *f = fopen(s->log, "r");
  cr_assert_not_null(f, "%s", s->log);
  char line[512];
  int port = 0;
  while (fgets(line, sizeof line, f)) {
    const char *p = strstr(line, "dashboard: http://");
    const char *colon = p ? strrchr(p, ':') : NULL;
    if (colon)
      port = atoi(colon + 1);
  }
  fclose(f);
  cr_assert_gt(port, 0, "no dashboard line in %s", s->log);
  return port;
}

static void start(proc_svc_t *s, const char *http, const char *token_file) {
  cr_assert_eq(proc_svc_init(s, "lpq-dash"), 0, "mkdtemp");
  s->heartbeat_ms = "200";
  s->extra[0] = "--http";
  s->extra[1] = http;
  if (token_file) {
    s->extra[2] = "--token-file";
    s->extra[3] = token_file;
  }
  cr_assert_eq(proc_svc_start_coordinator(s), 0, "the coordinator did not start (see %s)", s->log);
}

/* Sends req on a new connection to 127.0.0.1:port and reads the answer until the server closes
** or 3 s pass. The status of the first response line, or 0 when there was none; the answer's
** bytes (NUL-terminated, cut at cap - 1) in buf when it is not NULL. */
static int http_raw(int port, const char *req, size_t len, char *buf, size_t cap) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  cr_assert_geq(fd, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0, "connect to port %d", port);
  struct timeval tv = {3, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  for (size_t off = 0; off < len;) {
    ssize_t n = send(fd, req + off, len - off, MSG_NOSIGNAL);
    if (n <= 0)
      break; /* the server may answer and close before reading everything */
    off += (size_t)n;
  }
  static char local[1 << 16];
  char *out = buf ? buf : local;
  size_t outcap = buf ? cap : sizeof local, got = 0;
  ssize_t n;
  while (got < outcap - 1 && (n = recv(fd, out + got, outcap - 1 - got, 0)) > 0)
    got += (size_t)n;
  out[got] = '\0';
  close(fd);
  int status = 0;
  sscanf(out, "HTTP/1.%*d %d", &status);
  return status;
}

static int http_get(int port, const char *path, const char *extra_headers, char *buf, size_t cap) {
  char req[4096];
  int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s\r\n",
                   path, extra_headers ? extra_headers : "");
  return http_raw(port, req, (size_t)n, buf, cap);
}

static int http_post(int port, const char *path, const char *body) {
  char req[8192];
  int n = snprintf(req, sizeof req, "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                   "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                   path, strlen(body), body);
  return http_raw(port, req, (size_t)n, NULL, 0);
}

/* The first row of a query about job (one '?') in the database: its first n columns. */
static void db_row(const char *db, const char *sql, int64_t job, long *cols, int n) {
  sqlite3 *h;
  cr_assert_eq(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  sqlite3_busy_timeout(h, 5000);
  sqlite3_stmt *st;
  cr_assert_eq(sqlite3_prepare_v2(h, sql, -1, &st, NULL), SQLITE_OK, "%s", sql);
  sqlite3_bind_int64(st, 1, job);
  cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
  for (int i = 0; i < n; i++)
    cols[i] = sqlite3_column_int(st, i);
  sqlite3_finalize(st);
  sqlite3_close(h);
}

/* rows and the generation of job's last front in the database (v_pareto) */
static void v_pareto(const char *db, int64_t job, long *rows, long *generation) {
  long c[2];
  db_row(db, "SELECT count(*), max(generation) FROM v_pareto WHERE job = ?", job, c, 2);
  *rows = c[0];
  *generation = c[1];
}

/* the layers of job's sensitivity table in the database */
static long sensitivity_layers(const char *db, int64_t job) {
  long n;
  db_row(db, "SELECT count(DISTINCT layer) FROM sensitivity WHERE job = ?", job, &n, 1);
  cr_assert_gt(n, 0, "job %lld has no sensitivity rows", (long long)job);
  return n;
}

static long file_size(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

Test(dashboard, chromium_renders_a_running_job_and_its_front) {
  cr_assert_eq(access("/usr/bin/chromium", X_OK), 0, "Debian's chromium is missing (make deps)");
  cr_assert_eq(access("tests/dashboard/node_modules/puppeteer-core", R_OK), 0,
               "puppeteer-core is missing in tests/dashboard (make deps)");
  proc_svc_t s;
  start(&s, "127.0.0.1:0", NULL);
  int port = dashboard_port(&s);
  /* no worker yet: the job waits, the page opens, then a worker starts and progress arrives.
  ** The page refreshes its workers table at most once a second, on progress: the job must run
  ** for seconds to be seen running (40 generations took 0.3 s on a Zen 5 and were not seen) */
  int64_t id = proc_lpqctl_submit(NULL, s.sock, "--set population=8 --set generations=1000 "
                                  "--set calib=16 --set sensitivity=true --seed 5");
  cr_assert_gt(id, 0, "submit (see %s)", s.log);
  char out[256], cmd[1024];
  snprintf(out, sizeof out, "%s/dashboard", build_dir());
  snprintf(cmd, sizeof cmd, "node tests/dashboard/check.js http://127.0.0.1:%d %lld %s 2>>%s/check.log",
           port, (long long)id, out, s.dir);
  FILE *p = popen(cmd, "r");
  cr_assert_not_null(p);
  char line[1 << 14];
  json_t *r = NULL;
  int worker_started = 0;
  while (fgets(line, sizeof line, p)) {
    if (strcmp(line, "page-ready\n") == 0) {
      cr_assert_eq(proc_svc_start_worker(&s, NULL, NULL), 0, "worker");
      worker_started = 1;
    } else if (line[0] == '{') {
      json_decref(r);
      r = json_loads(line, 0, NULL);
    }
  }
  int rc = pclose(p);
  char *text = r ? json_dumps(r, JSON_COMPACT) : NULL;
  cr_assert(worker_started && r && rc == 0, "check.js failed (%d): %s (see %s/check.log)", rc,
            text ? text : "no result", s.dir);
  cr_assert(json_is_true(json_object_get(r, "jobs_row")), "the jobs table lists no job %lld: %s",
            (long long)id, text);
  cr_assert(json_is_true(json_object_get(r, "filter_text_hides")) &&
            json_is_true(json_object_get(r, "filter_name_shows")) &&
            json_is_true(json_object_get(r, "filter_state_hides")), "the filters: %s", text);
  /* progress moved while the page was open: job.watch's notifications came as SSE events */
  json_int_t at_load = json_integer_value(json_object_get(r, "sse_at_load"));
  cr_assert_gt(json_integer_value(json_object_get(r, "sse_events")), at_load, "no event: %s", text);
  cr_assert_gt(json_integer_value(json_object_get(r, "evaluations_after_event")),
               json_integer_value(json_object_get(r, "evaluations_at_load")), "%s", text);
  cr_assert_gt(json_number_value(json_object_get(r, "rate_after_event")), 0, "evaluations/s: %s",
               text);
  cr_assert_str_eq(json_string_value(json_object_get(r, "status")), "done", "%s", text);
  /* the front drawn for the last generation has v_pareto's rows */
  long rows = -1, gen = -1;
  v_pareto(s.db, id, &rows, &gen);
  cr_assert_gt(rows, 0);
  cr_assert_eq(json_integer_value(json_object_get(r, "front_generation")), gen, "%s", text);
  cr_assert_eq(json_integer_value(json_object_get(r, "slider_max")), gen, "%s", text);
  cr_assert_eq(json_integer_value(json_object_get(r, "front_count")), rows,
               "front of generation %ld: %lld points drawn, v_pareto has %ld", gen,
               (long long)json_integer_value(json_object_get(r, "front_count")), rows);
  cr_assert_gt(json_integer_value(json_object_get(r, "front_count_gen0")), 0, "%s", text);
  cr_assert(json_is_true(json_object_get(r, "front_canvas")) &&
            json_is_true(json_object_get(r, "hv_canvas")), "charts missing: %s", text);
  cr_assert_gt(json_integer_value(json_object_get(r, "heat_rows")), 0, "%s", text);
  cr_assert_eq(json_array_size(json_object_get(r, "export_links")), 5, "%s", text);
  cr_assert_gt(json_integer_value(json_object_get(r, "workers_rows")), 0, "workers: %s", text);
  cr_assert(json_is_true(json_object_get(r, "worker_runs_job")), "what the worker runs: %s", text);
  /* hover: the genome, its top-1 and the LPA's cost */
  const char *tip = json_string_value(json_object_get(r, "tip"));
  char of_gen[48];
  snprintf(of_gen, sizeof of_gen, "(generation %ld)", gen); /* the point under the cursor */
  cr_assert(tip && strstr(tip, "genome ") && strstr(tip, of_gen) && strstr(tip, "top-1 ") &&
            strstr(tip, "LPA latency"), "hover: %s", text);
  cr_assert_geq(json_integer_value(json_object_get(r, "play_generation")), 2, "play: %s", text);
  /* the sensitivity table: a row per layer the job measured */
  cr_assert(json_is_true(json_object_get(r, "sens_shown")), "no sensitivity table: %s", text);
  cr_assert_eq(json_integer_value(json_object_get(r, "sens_rows")), sensitivity_layers(s.db, id),
               "%s", text);
  const char *shots[] = {"jobs.png", "job-running.png", "job.png"};
  for (int i = 0; i < 3; i++) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", out, shots[i]);
    cr_assert_gt(file_size(path), 10000, "screenshot %s", path);
  }
  /* the export links download the files */
  static char buf[1 << 20];
  char path[128];
  snprintf(path, sizeof path, "/export/%lld/config.json", (long long)id);
  cr_assert_eq(http_get(port, path, NULL, buf, sizeof buf), 200, "%s", buf);
  cr_assert_not_null(strstr(buf, "\"layers\""), "%s", buf);
  cr_assert_not_null(strstr(buf, "attachment; filename="), "%s", buf);
  snprintf(path, sizeof path, "/export/%lld/model_lp.onnx", (long long)id);
  cr_assert_eq(http_get(port, path, NULL, buf, sizeof buf), 200, "%.300s", buf);
  free(text);
  json_decref(r);
  /* a clean exit (under ASan: no leak, no error), the dashboard's viewers gone */
  cr_assert_eq(proc_svc_stop_coordinator(&s, 10), 0, "the coordinator's exit (see %s)", s.log);
  proc_svc_stop(&s);
}

Test(dashboard, bad_http_input_gets_4xx_and_the_daemon_keeps_serving) {
  proc_svc_t s;
  start(&s, "127.0.0.1:0", NULL);
  int port = dashboard_port(&s);
  int64_t id = proc_lpqctl_submit(NULL, s.sock, "--set population=8 --set generations=2 "
                                  "--set calib=16 --seed 5");
  cr_assert_gt(id, 0);
  static const struct {
    const char *path;
    int status;
  } gets[] = {
      {"/assets/../../../../etc/passwd", 404},
      {"/assets/%2e%2e/%2e%2e/etc/passwd", 404},
      {"/assets/..%2f..%2fMakefile", 404},
      {"/../coordinator/http/server.c", 404},
      {"/nope", 404},
      {"/job/abc", 404},
      {"/job/0", 404},
      {"/events/0", 404},
      {"/events/999", 404},
      {"/export/1/etc-passwd", 404},
      {"/api/job.fly", 404},
      {"/api/JOB.LIST", 404},
      {"/api/job.cancel?params=%7B%22job%22%3A1%7D", 403},
      {"/api/job.submit", 403},
      {"/api/job.watch", 403},
      {"/api/db.tables", 403},
      {"/api/job.get?params=%7Bbad", 400},
      {"/api/job.get?params=%ZZ", 400},
      {"/api/job.get?params=%5B1%5D", 400},
      {"/api/job.get?params=%7B%22job%22%3A%22x%22%7D", 400},
      {"/api/job.get?params=%7B%22job%22%3A999%7D", 404},
      {"/api/job.export?params=%7B%22job%22%3A1%2C%22dir%22%3A%22%2Ftmp%22%7D", 403},
      {"/api/db.query?params=%7B%22table%22%3A%22jobs%22%2C%22where%22%3A%7B%22job%22%3A1%7D%7D", 403},
      {"/api/db.query?params=%7B%22table%22%3A%22evaluations%22%7D", 403},
  };
  for (size_t i = 0; i < sizeof gets / sizeof gets[0]; i++) {
    int st = http_get(port, gets[i].path, NULL, NULL, 0);
    cr_assert_eq(st, gets[i].status, "GET %s: %d, expected %d", gets[i].path, st, gets[i].status);
  }
  /* a method that writes, by POST */
  cr_assert_eq(http_post(port, "/api/job.cancel", "{\"job\":1}"), 403);
  cr_assert_eq(http_post(port, "/api/job.submit", "{}"), 403);
  cr_assert_eq(http_post(port, "/api/blob.put", "{}"), 403);
  cr_assert_eq(http_post(port, "/", "x"), 405);
  cr_assert_eq(http_post(port, "/api/job.list", "[not json"), 400);
  /* other HTTP methods */
  const char del[] = "DELETE /job/1 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  cr_assert_eq(http_raw(port, del, sizeof del - 1, NULL, 0), 405);
  const char put[] = "PUT /api/job.list HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n\r\n{}";
  cr_assert_eq(http_raw(port, put, sizeof put - 1, NULL, 0), 405);
  /* garbage and a request line that is not HTTP */
  const char garbage[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n";
  int st = http_raw(port, garbage, sizeof garbage - 1, NULL, 0);
  cr_assert(st == 0 || (st >= 400 && st < 500), "garbage: %d", st);
  const char notreq[] = "HELLO THERE\r\n\r\n";
  st = http_raw(port, notreq, sizeof notreq - 1, NULL, 0);
  cr_assert(st >= 400 && st < 500, "not a request: %d", st);
  /* huge headers: one of 200 KB, then 2000 small ones */
  size_t big = 200 * 1024;
  char *huge = malloc(big + 256);
  cr_assert_not_null(huge);
  int n = snprintf(huge, 256, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ");
  memset(huge + n, 'a', big);
  memcpy(huge + n + big, "\r\n\r\n", 4);
  st = http_raw(port, huge, (size_t)n + big + 4, NULL, 0);
  cr_assert(st >= 400 && st < 500, "a 200 KB header: %d", st);
  size_t len = (size_t)snprintf(huge, 64, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n");
  for (int i = 0; i < 2000 && len + 64 < big; i++)
    len += (size_t)snprintf(huge + len, 64, "X-H%d: v\r\n", i);
  len += (size_t)snprintf(huge + len, 8, "\r\n");
  st = http_raw(port, huge, len, NULL, 0);
  cr_assert(st >= 400 && st < 500, "2000 headers: %d", st);
  free(huge);
  /* a body over the limit (1 MiB), announced */
  const char body[] = "POST /api/job.list HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5000000\r\n\r\n{}";
  st = http_raw(port, body, sizeof body - 1, NULL, 0);
  cr_assert(st == 413 || st == 400, "a 5 MB body: %d", st);
  /* still serving, the pages and the API */
  static char buf[1 << 16];
  cr_assert_eq(http_get(port, "/", NULL, buf, sizeof buf), 200);
  cr_assert_not_null(strstr(buf, "/assets/uPlot.iife.min.js"));
  cr_assert_eq(http_get(port, "/assets/uPlot.iife.min.js", NULL, NULL, 0), 200);
  cr_assert_eq(http_get(port, "/api/job.list", NULL, buf, sizeof buf), 200);
  cr_assert_not_null(strstr(buf, "\"jobs\""), "%s", buf);
  cr_assert_eq(kill(s.coord, 0), 0, "the coordinator died (see %s)", s.log);
  /* server.stats counts them */
  json_t *stats = proc_rpc_result(&s.api, "server.stats", NULL);
  cr_assert_not_null(stats, "%s", s.api.error);
  json_t *hs = json_object_get(stats, "http");
  cr_assert_geq(json_integer_value(json_object_get(hs, "status_4xx")), 30, "%s",
                json_dumps(hs, 0));
  cr_assert_eq(json_integer_value(json_object_get(hs, "status_5xx")), 0);
  json_decref(stats);
  cr_assert_eq(proc_svc_stop_coordinator(&s, 10), 0, "the coordinator's exit (see %s)", s.log);
  proc_svc_stop(&s);
}

#define TOKEN "dashboard-token-0123456789"

Test(dashboard, off_loopback_the_token_is_required) {
  /* without a token file the coordinator refuses a non-loopback --http */
  char cmd[512];
  snprintf(cmd, sizeof cmd, "%s --db /nonexistent/x.db --http 0.0.0.0:0 2>/dev/null",
           proc_bin("lpq-coordinator"));
  int rc = system(cmd);
  cr_assert(WIFEXITED(rc) && WEXITSTATUS(rc) == 2, "exit %d", rc);
  char dir[] = "/tmp/lpq-dash-token-XXXXXX", token_file[64];
  cr_assert_not_null(mkdtemp(dir));
  snprintf(token_file, sizeof token_file, "%s/token", dir);
  FILE *f = fopen(token_file, "w");
  cr_assert_not_null(f);
  fputs(TOKEN "\n", f);
  fclose(f);
  chmod(token_file, 0600);
  proc_svc_t s;
  start(&s, "0.0.0.0:0", token_file);
  int port = dashboard_port(&s);
  cr_assert_eq(http_get(port, "/", NULL, NULL, 0), 401);
  cr_assert_eq(http_get(port, "/api/job.list", NULL, NULL, 0), 401);
  cr_assert_eq(http_get(port, "/events/1", NULL, NULL, 0), 401);
  cr_assert_eq(http_get(port, "/api/job.list", "Authorization: Bearer wrong-token-0123456789\r\n",
                        NULL, 0), 401);
  cr_assert_eq(http_get(port, "/api/job.list", "Authorization: Bearer " TOKEN "\r\n", NULL, 0), 200);
  cr_assert_eq(http_get(port, "/login", NULL, NULL, 0), 200);
  /* the login form sets the cookie the pages and the event stream then send */
  static char buf[1 << 14];
  char req[512];
  int n = snprintf(req, sizeof req, "POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                   "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %zu\r\n\r\n"
                   "token=%s", strlen("token=" TOKEN), TOKEN);
  cr_assert_eq(http_raw(port, req, (size_t)n, buf, sizeof buf), 303, "%s", buf);
  cr_assert_not_null(strstr(buf, "lpq_token=" TOKEN), "%s", buf);
  n = snprintf(req, sizeof req, "POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
               "Content-Length: 11\r\n\r\ntoken=wrong");
  cr_assert_eq(http_raw(port, req, (size_t)n, NULL, 0), 401);
  cr_assert_eq(http_get(port, "/", "Cookie: a=b; lpq_token=" TOKEN "\r\n", NULL, 0), 200);
  cr_assert_eq(http_get(port, "/", "Cookie: lpq_token=" TOKEN "x\r\n", NULL, 0), 401);
  proc_svc_stop(&s);
  unlink(token_file);
  rmdir(dir);
}
