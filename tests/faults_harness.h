/* tests/faults_harness.h: the real lpq-coordinator and lpq-worker processes on loopback for the
** fault tests (tests/test_faults*.c), driven by raw JSON-RPC on the Unix socket (one connection
** held open, so thousands of calls stay cheap) and read back through SQLite directly.
** Static functions only. */
#ifndef LPQ_TEST_FAULTS_HARNESS_H
#define LPQ_TEST_FAULTS_HARNESS_H

#include <criterion/criterion.h>
#include <jansson.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define F_FN __attribute__((unused)) static
#define FIX "tests/fixtures/"
#define F_HB "200" /* heartbeat ms */

typedef struct svc_t {
  char dir[64], db[160], sock[128], endpoint[64], log[128];
  pid_t coord, workers[4];
  int nworkers;
  int fd;         /* the held API connection, -1: none */
  char *buf;      /* its read buffer */
  size_t len, cap;
  long next_id;
} svc_t;

F_FN double f_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

F_FN const char *f_bin(const char *name) {
  static char buf[4][256];
  static int k;
  const char *b = getenv("LPQ_BUILD") ? getenv("LPQ_BUILD") : "build";
  k = (k + 1) % 4;
  snprintf(buf[k], sizeof buf[k], "%s/bin/%s", b, name);
  return buf[k];
}

F_FN pid_t f_spawn(char *const argv[], const char *log) {
  pid_t p = fork();
  cr_assert_neq(p, -1);
  if (p == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the test */
    FILE *f = freopen(log, "a", stderr);
    (void)f;
    execv(argv[0], argv);
    _exit(127);
  }
  return p;
}

/* A fresh temporary folder; the database at db_path when given (e.g. on a small tmpfs). */
F_FN void f_init(svc_t *s, const char *db_path) {
  memset(s, 0, sizeof *s);
  s->fd = -1;
  signal(SIGPIPE, SIG_IGN);
  snprintf(s->dir, sizeof s->dir, "/tmp/lpq-faults-XXXXXX");
  cr_assert_not_null(mkdtemp(s->dir));
  snprintf(s->db, sizeof s->db, "%s", db_path ? db_path : "");
  if (!db_path)
    snprintf(s->db, sizeof s->db, "%s/lpq.db", s->dir);
  snprintf(s->sock, sizeof s->sock, "%s/lpq.sock", s->dir);
  snprintf(s->log, sizeof s->log, "%s/coordinator.log", s->dir);
  srand((unsigned)getpid() ^ (unsigned)time(NULL));
  snprintf(s->endpoint, sizeof s->endpoint, "tcp://127.0.0.1:%d", 21000 + rand() % 20000);
}

/* 1 when the file contains text. */
F_FN int f_file_has(const char *path, const char *text) {
  FILE *f = fopen(path, "r");
  if (!f)
    return 0;
  char line[4096];
  int found = 0;
  while (!found && fgets(line, sizeof line, f))
    found = strstr(line, text) != NULL;
  fclose(f);
  return found;
}

F_FN void f_disconnect(svc_t *s) {
  if (s->fd >= 0)
    close(s->fd);
  s->fd = -1;
  s->len = 0;
}

/* Starts the daemon and waits for its "ready" line. On a first start, a random port that
** another program holds makes it exit, and another port is tried; a restart keeps the port its
** workers know. */
F_FN void f_start_coordinator(svc_t *s) {
  int restart = f_file_has(s->log, "lpq-coordinator: ready:");
  for (int attempt = 0; attempt < 5; attempt++) {
    char *argv[] = {(char *)f_bin("lpq-coordinator"), "--db", s->db, "--socket", s->sock,
                    "--workers", s->endpoint, "--heartbeat-ms", F_HB, "--log-level", "2", NULL};
    /* the log is read for this start's ready line: it starts afresh (kept under .N) */
    char old[160];
    snprintf(old, sizeof old, "%s.%d", s->log, attempt + 10 * restart);
    rename(s->log, old);
    s->coord = f_spawn(argv, s->log);
    for (int i = 0; i < 800; i++) {
      if (f_file_has(s->log, "lpq-coordinator: ready:"))
        return;
      if (waitpid(s->coord, NULL, WNOHANG) == s->coord)
        break;
      usleep(25000);
    }
    if (!f_file_has(s->log, "Address already in use"))
      break;
    if (!restart)
      snprintf(s->endpoint, sizeof s->endpoint, "tcp://127.0.0.1:%d", 21000 + rand() % 20000);
    else
      usleep(500000);
  }
  cr_assert_fail("the coordinator did not start (see %s)", s->log);
}

F_FN void f_start_worker(svc_t *s, const char *synthetic_ms) {
  char log[160], cache[160], id[32];
  snprintf(log, sizeof log, "%s/worker%d.log", s->dir, s->nworkers);
  snprintf(cache, sizeof cache, "%s/cache%d", s->dir, s->nworkers);
  snprintf(id, sizeof id, "w%d", s->nworkers);
  char *argv[] = {(char *)f_bin("lpq-worker"), "--connect", s->endpoint, "--cache-dir", cache,
                  "--id", id, "--heartbeat-ms", F_HB, "--synthetic", (char *)synthetic_ms, NULL};
  s->workers[s->nworkers++] = f_spawn(argv, log);
}

/* SIGTERM to the coordinator; its exit status (-1: killed by a signal or not in time). */
F_FN int f_stop_coordinator(svc_t *s, double timeout_s) {
  f_disconnect(s);
  if (s->coord <= 0)
    return 0;
  kill(s->coord, SIGTERM);
  int st = 0;
  double t0 = f_now();
  pid_t r = 0;
  while ((r = waitpid(s->coord, &st, WNOHANG)) == 0 && f_now() - t0 < timeout_s)
    usleep(10000);
  if (r == 0) {
    kill(s->coord, SIGKILL);
    waitpid(s->coord, &st, 0);
    s->coord = 0;
    return -1;
  }
  s->coord = 0;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

F_FN void f_stop(svc_t *s) {
  for (int i = 0; i < s->nworkers; i++)
    if (s->workers[i] > 0) {
      kill(s->workers[i], SIGKILL);
      waitpid(s->workers[i], NULL, 0);
    }
  f_stop_coordinator(s, 10);
  free(s->buf);
  s->buf = NULL;
  if (getenv("LPQ_KEEP_LOGS")) { /* for a person reading what happened */
    fprintf(stderr, "logs kept in %s\n", s->dir);
    return;
  }
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", s->dir);
  if (system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", s->dir);
}

F_FN void f_connect(svc_t *s) {
  if (s->fd >= 0)
    return;
  s->fd = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  snprintf(a.sun_path, sizeof a.sun_path, "%.100s", s->sock);
  cr_assert_eq(connect(s->fd, (struct sockaddr *)&a, sizeof a), 0, "connect %s", s->sock);
  s->len = 0;
}

/* One call on the held connection; the whole reply object (result or error). Asserts that an
** answer with the call's id comes (notifications in between are skipped). */
F_FN json_t *f_call(svc_t *s, const char *method, json_t *params) {
  f_connect(s);
  long id = ++s->next_id;
  json_t *req = json_pack("{s:s, s:s, s:I, s:o}", "jsonrpc", "2.0", "method", method, "id",
                          (json_int_t)id, "params", params ? params : json_object());
  char *line = json_dumps(req, JSON_COMPACT);
  json_decref(req);
  size_t n = strlen(line), off = 0;
  line = realloc(line, n + 2);
  line[n++] = '\n';
  while (off < n) {
    ssize_t w = write(s->fd, line + off, n - off);
    cr_assert_gt(w, 0, "%s: the server closed the connection", method);
    off += (size_t)w;
  }
  free(line);
  for (;;) {
    char *nl = s->len ? memchr(s->buf, '\n', s->len) : NULL;
    if (nl) {
      *nl = 0;
      json_t *r = json_loads(s->buf, 0, NULL);
      size_t used = (size_t)(nl - s->buf) + 1;
      memmove(s->buf, s->buf + used, s->len - used);
      s->len -= used;
      cr_assert_not_null(r, "%s: a reply that is not JSON", method);
      if (json_integer_value(json_object_get(r, "id")) == id)
        return r;
      json_decref(r); /* a notification */
      continue;
    }
    if (s->cap - s->len < 65536) {
      s->cap = s->cap ? 2 * s->cap : 1 << 20;
      s->buf = realloc(s->buf, s->cap);
      cr_assert_not_null(s->buf);
    }
    ssize_t r = read(s->fd, s->buf + s->len, s->cap - s->len);
    cr_assert_gt(r, 0, "%s: no answer (the server closed the connection)", method);
    s->len += (size_t)r;
  }
}

/* The result of a call that must succeed (a new reference). */
F_FN json_t *f_ok(svc_t *s, const char *method, json_t *params) {
  json_t *r = f_call(s, method, params);
  json_t *res = json_object_get(r, "result");
  if (!res) {
    char *t = json_dumps(r, JSON_COMPACT);
    cr_assert_fail("%s failed: %s", method, t);
  }
  json_incref(res);
  json_decref(r);
  return res;
}

F_FN json_t *f_job_params(int64_t job) { return json_pack("{s:I}", "job", (json_int_t)job); }

/* Submits the small fixture model (by path) with settings JSON text; returns the job id. */
F_FN int64_t f_submit(svc_t *s, const char *settings, uint64_t seed) {
  char model[512], data[512];
  snprintf(model, sizeof model, "%s/" FIX "score_small.onnx", getenv("PWD"));
  snprintf(data, sizeof data, "%s/" FIX "score_small_x.npy", getenv("PWD"));
  json_t *p = json_pack("{s:{s:s}, s:{s:s}, s:o, s:I}", "model", "path", model, "data", "path",
                        data, "settings", json_loads(settings, 0, NULL), "seed",
                        (json_int_t)seed);
  json_t *r = f_ok(s, "job.submit", p);
  int64_t id = (int64_t)json_integer_value(json_object_get(r, "job"));
  json_decref(r);
  cr_assert_gt(id, 0);
  return id;
}

F_FN char *f_status(svc_t *s, int64_t job, json_t **whole) {
  json_t *r = f_ok(s, "job.get", f_job_params(job));
  char *st = strdup(json_string_value(json_object_get(r, "status")));
  if (whole)
    *whole = r;
  else
    json_decref(r);
  return st;
}

F_FN int f_final(const char *st) {
  return !strcmp(st, "done") || !strcmp(st, "failed") || !strcmp(st, "canceled");
}

/* Polls until the job ends; its final status, or "timeout". */
F_FN char *f_wait_job(svc_t *s, int64_t job, double timeout_s) {
  double t0 = f_now();
  while (f_now() - t0 < timeout_s) {
    char *st = f_status(s, job, NULL);
    if (f_final(st))
      return st;
    free(st);
    usleep(50000);
  }
  return strdup("timeout");
}

/* The job's last front as "genome l_co l_cr;..." text, for comparisons. */
F_FN char *f_front(svc_t *s, int64_t job) {
  json_t *r = f_ok(s, "job.pareto", f_job_params(job));
  json_t *ind = json_object_get(r, "individuals");
  size_t n = json_array_size(ind), cap = 96 * n + 16, len = 0;
  char *out = calloc(1, cap);
  for (size_t i = 0; i < n; i++) {
    json_t *o = json_array_get(ind, i);
    len += (size_t)snprintf(out + len, cap - len, "%s %.17g %.17g;",
                            json_string_value(json_object_get(o, "genome")),
                            json_number_value(json_object_get(o, "l_co")),
                            json_number_value(json_object_get(o, "l_cr")));
  }
  json_decref(r);
  cr_assert_gt(n, 0, "empty front");
  return out;
}

/* The database checked by a connection of our own: PRAGMA integrity_check's answer. */
F_FN char *f_integrity(const char *db) {
  sqlite3 *h = NULL;
  char *out = NULL;
  if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
    sqlite3_busy_timeout(h, 5000);
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(h, "PRAGMA integrity_check", -1, &q, NULL) == SQLITE_OK &&
        sqlite3_step(q) == SQLITE_ROW)
      out = strdup((const char *)sqlite3_column_text(q, 0));
    else
      out = strdup(sqlite3_errmsg(h));
    sqlite3_finalize(q);
  } else {
    out = strdup("cannot open");
  }
  sqlite3_close(h);
  return out;
}

/* One integer from a query on the database (our own read-only connection); -1 on error. */
F_FN long long f_sql_int(const char *db, const char *sql) {
  sqlite3 *h = NULL;
  long long v = -1;
  if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
    sqlite3_busy_timeout(h, 5000);
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(h, sql, -1, &q, NULL) == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW)
      v = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
  }
  sqlite3_close(h);
  return v;
}

/* A pool counter from server.stats. */
F_FN long long f_pool_stat(svc_t *s, const char *name) {
  json_t *r = f_ok(s, "server.stats", NULL);
  json_t *v = json_object_get(json_object_get(r, "pool"), name);
  cr_assert(json_is_integer(v), "server.stats has no pool.%s", name);
  long long x = (long long)json_integer_value(v);
  json_decref(r);
  return x;
}

#define F_LONG_JOB "{\"population\":8,\"generations\":8,\"calib\":16}"
#define F_LONG_SEED 9

/* The reference: the same synthetic job, undisturbed, on a fresh service. */
F_FN char *f_reference_front(const char *settings, uint64_t seed) {
  svc_t s;
  f_init(&s, NULL);
  f_start_coordinator(&s);
  f_start_worker(&s, "2");
  int64_t id = f_submit(&s, settings, seed);
  char *st = f_wait_job(&s, id, 60);
  cr_assert_str_eq(st, "done");
  free(st);
  char *f = f_front(&s, id);
  f_stop(&s);
  return f;
}

#endif
