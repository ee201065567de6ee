/* tests/faults_harness.h: the real lpq-coordinator and lpq-worker processes on loopback for the
** fault tests (tests/test_faults*.c), driven by raw JSON-RPC on the Unix socket (one connection
** held open, so thousands of calls stay cheap) and read back through SQLite directly. The
** processes and the connection are tests/proc_harness.h's; here, what the fault tests assert
** about them. Static functions only. */
#ifndef LPQ_TEST_FAULTS_HARNESS_H
#define LPQ_TEST_FAULTS_HARNESS_H

#include "tests/proc_harness.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define F_FN __attribute__((unused)) static
#define F_HB "200" /* heartbeat ms */

/* A fresh temporary folder (/tmp/lpq-faults-*) with the database in it. */
F_FN void f_init(proc_svc_t *s) {
  cr_assert_eq(proc_svc_init(s, "lpq-faults"), 0, "mkdtemp /tmp/lpq-faults-*");
  s->heartbeat_ms = F_HB;
}

/* Starts the daemon and waits for its "ready" line. */
F_FN void f_start_coordinator(proc_svc_t *s) {
  cr_assert_eq(proc_svc_start_coordinator(s), 0, "the coordinator did not start (see %s)",
               s->log);
}

F_FN void f_start_worker(proc_svc_t *s, const char *synthetic_ms) {
  cr_assert_eq(proc_svc_start_worker(s, synthetic_ms, NULL), 0, "the worker did not start");
}

/* One call on the held connection; the whole reply object (result or error). Asserts that an
** answer with the call's id comes (notifications in between are skipped). */
F_FN json_t *f_call(proc_svc_t *s, const char *method, json_t *params) {
  json_t *r = proc_rpc_call(&s->api, method, params);
  cr_assert_not_null(r, "%s", s->api.error);
  return r;
}

/* The result of a call that must succeed (a new reference). */
F_FN json_t *f_ok(proc_svc_t *s, const char *method, json_t *params) {
  json_t *r = proc_rpc_result(&s->api, method, params);
  cr_assert_not_null(r, "%s", s->api.error);
  return r;
}

F_FN json_t *f_job_params(int64_t job) { return json_pack("{s:I}", "job", (json_int_t)job); }

/* Submits the small fixture model (by path) with settings JSON text; returns the job id. */
F_FN int64_t f_submit(proc_svc_t *s, const char *settings, uint64_t seed) {
  json_t *p = json_pack("{s:{s:s}, s:{s:s}, s:o, s:I}", "model", "path",
                        proc_fixture("score_small.onnx"), "data", "path",
                        proc_fixture("score_small_x.npy"), "settings",
                        json_loads(settings, 0, NULL), "seed", (json_int_t)seed);
  json_t *r = f_ok(s, "job.submit", p);
  int64_t id = (int64_t)json_integer_value(json_object_get(r, "job"));
  json_decref(r);
  cr_assert_gt(id, 0);
  return id;
}

F_FN char *f_status(proc_svc_t *s, int64_t job, json_t **whole) {
  json_t *r = f_ok(s, "job.get", f_job_params(job));
  char *st = strdup(json_string_value(json_object_get(r, "status")));
  if (whole)
    *whole = r;
  else
    json_decref(r);
  return st;
}

/* Polls until the job ends; its final status, or "timeout". */
F_FN char *f_wait_job(proc_svc_t *s, int64_t job, double timeout_s) {
  double t0 = proc_now_s();
  while (proc_now_s() - t0 < timeout_s) {
    char *st = f_status(s, job, NULL);
    if (proc_job_final(st))
      return st;
    free(st);
    usleep(50000);
  }
  return strdup("timeout");
}

/* The job's last front as "genome l_co l_cr;..." text, for comparisons. */
F_FN char *f_front(proc_svc_t *s, int64_t job) {
  json_t *r = f_ok(s, "job.pareto", f_job_params(job));
  char *out = proc_front_text(r);
  json_decref(r);
  cr_assert_not_null(out, "empty front");
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
F_FN long long f_pool_stat(proc_svc_t *s, const char *name) {
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
  proc_svc_t s;
  f_init(&s);
  f_start_coordinator(&s);
  f_start_worker(&s, "2");
  int64_t id = f_submit(&s, settings, seed);
  char *st = f_wait_job(&s, id, 60);
  cr_assert_str_eq(st, "done");
  free(st);
  char *f = f_front(&s, id);
  proc_svc_stop(&s);
  return f;
}

#endif
