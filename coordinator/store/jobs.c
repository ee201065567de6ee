/*
** coordinator/store/jobs.c: the jobs table: insert, status changes, cancel requests, get and
** list (with the progress that generation commits keep up to date).
*/
#include "coordinator/store/store_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const status_names[] = {"queued", "running", "paused",
                                           "done",   "failed",  "canceled"};
#define STATUS_COUNT (sizeof status_names / sizeof status_names[0])

const char *lpq_store_job_status_name(lpq_store_job_status_t s) {
  return (unsigned)s < STATUS_COUNT ? status_names[s] : "?";
}

int lpq_store_job_status_parse(const char *text, lpq_store_job_status_t *out, lpq_error_t *err) {
  for (size_t i = 0; text != NULL && i < STATUS_COUNT; i++)
    if (strcmp(text, status_names[i]) == 0) {
      *out = (lpq_store_job_status_t)i;
      return 0;
    }
  return lpq_errorf(err, LPQ_EINVAL,
                    "store: jobs: unknown status \"%s\" (queued, running, paused, done, failed "
                    "or canceled)",
                    text != NULL ? text : "(null)");
}

int lpq_store_job_status_final(lpq_store_job_status_t s) {
  return s == LPQ_STORE_JOB_DONE || s == LPQ_STORE_JOB_FAILED || s == LPQ_STORE_JOB_CANCELED;
}

int lpq_store_job_insert(lpq_store_t *st, const char *name, const char *settings, int64_t *id,
                         lpq_error_t *err) {
  if (st == NULL || name == NULL || settings == NULL)
    return lpq_errorf(err, LPQ_EINVAL, "store: jobs: insert: missing store, name or settings");
  if (strlen(name) >= LPQ_STORE_NAME_MAX)
    return lpq_errorf(err, LPQ_EINVAL, "store: jobs: insert: the name is %zu bytes, at most %d",
                      strlen(name), LPQ_STORE_NAME_MAX - 1);
  sqlite3_stmt *s;
  int ret = lpq__store_stmt(st, STMT_JOB_INSERT,
                       "INSERT INTO jobs (name, settings, created, updated) "
                       "VALUES (?1, ?2, ?3, ?3)",
                       "jobs", "insert", &s, err);
  if (ret != 0)
    return ret;
  sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 2, settings, -1, SQLITE_STATIC);
  sqlite3_bind_double(s, 3, lpq__store_now());
  int rc = sqlite3_step(s);
  if (rc == SQLITE_DONE && id != NULL)
    *id = sqlite3_last_insert_rowid(st->db);
  if (rc == SQLITE_DONE)
    ret = 0;
  else if ((rc & 0xff) == SQLITE_CONSTRAINT)
    ret = lpq_errorf(err, LPQ_EINVAL,
                     "store: jobs: insert: job \"%s\": the settings are not valid JSON", name);
  else
    ret = lpq__store_fail(st, rc, "jobs", "insert", err);
  sqlite3_reset(s);
  return ret;
}

/* The job's current status; LPQ_ENOTFOUND naming the operation. */
static int job_status(lpq_store_t *st, int64_t id, const char *op, lpq_store_job_status_t *out,
                      lpq_error_t *err) {
  sqlite3_stmt *s;
  int ret = lpq__store_stmt(st, STMT_JOB_STATUS_GET, "SELECT status FROM jobs WHERE id = ?1", "jobs",
                       op, &s, err);
  if (ret != 0)
    return ret;
  sqlite3_bind_int64(s, 1, id);
  int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW)
    ret = lpq_store_job_status_parse((const char *)sqlite3_column_text(s, 0), out, err);
  else if (rc == SQLITE_DONE)
    ret = lpq_errorf(err, LPQ_ENOTFOUND, "store: jobs: %s: no job %lld", op, (long long)id);
  else
    ret = lpq__store_fail(st, rc, "jobs", op, err);
  sqlite3_reset(s);
  return ret;
}

int lpq_store_job_set_status(lpq_store_t *st, int64_t id, lpq_store_job_status_t status,
                             const char *message, lpq_error_t *err) {
  if (st == NULL || (unsigned)status >= STATUS_COUNT)
    return lpq_errorf(err, LPQ_EINVAL, "store: jobs: set status: bad store or status %d",
                      (int)status);
  /* Read and write in one transaction, so the final-status rule holds against any writer. */
  int ret = lpq__store_begin(st, "jobs", "set status", err);
  if (ret != 0)
    return ret;
  lpq_store_job_status_t now = LPQ_STORE_JOB_QUEUED;
  ret = job_status(st, id, "set status", &now, err);
  if (ret == 0 && lpq_store_job_status_final(now) && now != status)
    ret = lpq_errorf(err, LPQ_ESTATE,
                     "store: jobs: set status: job %lld is %s already; it cannot become %s",
                     (long long)id, status_names[now], status_names[status]);
  sqlite3_stmt *s = NULL;
  if (ret == 0)
    ret = lpq__store_stmt(
        st, STMT_JOB_SET_STATUS,
        "UPDATE jobs SET status = ?2, message = coalesce(?3, message), updated = ?4, "
        "started = CASE WHEN ?2 = 'running' THEN coalesce(started, ?4) ELSE started END, "
        "finished = CASE WHEN ?2 IN ('done', 'failed', 'canceled') "
        "THEN coalesce(finished, ?4) ELSE finished END "
        "WHERE id = ?1",
        "jobs", "set status", &s, err);
  if (ret == 0) {
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_text(s, 2, status_names[status], -1, SQLITE_STATIC);
    if (message != NULL)
      sqlite3_bind_text(s, 3, message, -1, SQLITE_STATIC);
    sqlite3_bind_double(s, 4, lpq__store_now());
    int rc = sqlite3_step(s);
    if (rc != SQLITE_DONE)
      ret = lpq__store_fail(st, rc, "jobs", "set status", err);
    sqlite3_reset(s);
  }
  return lpq__store_end(st, ret, "jobs", "set status", err);
}

int lpq_store_job_request_cancel(lpq_store_t *st, int64_t id, lpq_error_t *err) {
  if (st == NULL)
    return lpq_errorf(err, LPQ_EINVAL, "store: jobs: cancel: no store");
  int ret = lpq__store_begin(st, "jobs", "cancel", err);
  if (ret != 0)
    return ret;
  lpq_store_job_status_t now = LPQ_STORE_JOB_QUEUED;
  ret = job_status(st, id, "cancel", &now, err);
  if (ret == 0 && lpq_store_job_status_final(now))
    ret = lpq_errorf(err, LPQ_ESTATE, "store: jobs: cancel: job %lld has ended (%s)",
                     (long long)id, status_names[now]);
  sqlite3_stmt *s = NULL;
  if (ret == 0)
    ret = lpq__store_stmt(st, STMT_JOB_CANCEL,
                     "UPDATE jobs SET cancel_requested = 1, updated = ?2 WHERE id = ?1", "jobs",
                     "cancel", &s, err);
  if (ret == 0) {
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_double(s, 2, lpq__store_now());
    int rc = sqlite3_step(s);
    if (rc != SQLITE_DONE)
      ret = lpq__store_fail(st, rc, "jobs", "cancel", err);
    sqlite3_reset(s);
  }
  return lpq__store_end(st, ret, "jobs", "cancel", err);
}

/* ---- reading jobs ---------------------------------------------------------------------- */

#define JOB_COLUMNS                                                                           \
  "SELECT id, name, status, settings, message, cancel_requested, created, started, finished, " \
  "updated, generation, evaluations, evaluations_stored, best_l_co, best_l_f, hypervolume, "   \
  "front_size FROM jobs "

static size_t column_size(sqlite3_stmt *s, int col) {
  sqlite3_int64 v = sqlite3_column_int64(s, col);
  return v > 0 ? (size_t)v : 0;
}

static int job_from_row(sqlite3_stmt *s, lpq_store_job_t *out, lpq_error_t *err) {
  memset(out, 0, sizeof *out);
  out->id = sqlite3_column_int64(s, 0);
  lpq__store_column_text(s, 1, out->name, sizeof out->name);
  int ret = lpq_store_job_status_parse((const char *)sqlite3_column_text(s, 2), &out->status,
                                       err);
  if (ret != 0)
    return ret;
  const char *settings = (const char *)sqlite3_column_text(s, 3);
  out->settings = strdup(settings != NULL ? settings : "{}");
  if (out->settings == NULL)
    return lpq_errorf(err, LPQ_ENOMEM, "store: jobs: get: out of memory for job %lld's settings",
                      (long long)out->id);
  lpq__store_column_text(s, 4, out->message, sizeof out->message);
  out->cancel_requested = sqlite3_column_int(s, 5) != 0;
  out->created = lpq__store_column_double(s, 6);
  out->started = lpq__store_column_double(s, 7);
  out->finished = lpq__store_column_double(s, 8);
  out->updated = lpq__store_column_double(s, 9);
  out->generation = sqlite3_column_type(s, 10) == SQLITE_NULL ? -1 : sqlite3_column_int64(s, 10);
  out->evaluations = column_size(s, 11);
  out->evaluations_stored = column_size(s, 12);
  out->best_l_co = lpq__store_column_double(s, 13);
  out->best_l_f = lpq__store_column_double(s, 14);
  out->hypervolume = lpq__store_column_double(s, 15);
  out->front_size = column_size(s, 16);
  return 0;
}

int lpq_store_job_get(lpq_store_t *st, int64_t id, lpq_store_job_t *out, lpq_error_t *err) {
  if (st == NULL || out == NULL)
    return lpq_errorf(err, LPQ_EINVAL, "store: jobs: get: missing store or output");
  memset(out, 0, sizeof *out);
  sqlite3_stmt *s;
  int ret = lpq__store_stmt(st, STMT_JOB_GET, JOB_COLUMNS "WHERE id = ?1", "jobs", "get", &s, err);
  if (ret != 0)
    return ret;
  sqlite3_bind_int64(s, 1, id);
  int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW)
    ret = job_from_row(s, out, err);
  else if (rc == SQLITE_DONE)
    ret = lpq_errorf(err, LPQ_ENOTFOUND, "store: jobs: get: no job %lld", (long long)id);
  else
    ret = lpq__store_fail(st, rc, "jobs", "get", err);
  sqlite3_reset(s);
  if (ret != 0)
    lpq_store_job_clear(out);
  return ret;
}

void lpq_store_job_clear(lpq_store_job_t *job) {
  if (job == NULL)
    return;
  free(job->settings);
  memset(job, 0, sizeof *job);
}

int lpq_store_job_list(lpq_store_t *st, lpq_store_job_filter_t filter, lpq_store_job_t **jobs,
                       size_t *count, lpq_error_t *err) {
  if (st == NULL || jobs == NULL || count == NULL)
    return lpq_errorf(err, LPQ_EINVAL, "store: jobs: list: missing store or output");
  *jobs = NULL;
  *count = 0;
  sqlite3_stmt *s;
  int ret = filter == LPQ_STORE_JOBS_UNFINISHED
                ? lpq__store_stmt(st, STMT_JOB_LIST_UNFINISHED,
                             JOB_COLUMNS "WHERE status IN ('queued', 'running', 'paused') "
                                         "ORDER BY id",
                             "jobs", "list", &s, err)
                : lpq__store_stmt(st, STMT_JOB_LIST_ALL, JOB_COLUMNS "ORDER BY id", "jobs", "list",
                             &s, err);
  if (ret != 0)
    return ret;
  lpq_store_job_t *list = NULL;
  size_t n = 0, cap = 0;
  int rc = SQLITE_DONE;
  while (ret == 0 && (rc = sqlite3_step(s)) == SQLITE_ROW) {
    if (n == cap) {
      size_t new_cap = cap != 0 ? 2 * cap : 8;
      lpq_store_job_t *grown = realloc(list, new_cap * sizeof *list);
      if (grown == NULL) {
        ret = lpq_errorf(err, LPQ_ENOMEM, "store: jobs: list: out of memory at %zu jobs", n);
        break;
      }
      list = grown;
      cap = new_cap;
    }
    ret = job_from_row(s, &list[n], err);
    n++; /* a half-filled row is cleared with the others */
  }
  if (ret == 0 && rc != SQLITE_DONE)
    ret = lpq__store_fail(st, rc, "jobs", "list", err);
  sqlite3_reset(s);
  if (ret != 0) {
    lpq_store_job_list_free(&list, n);
    return ret;
  }
  *jobs = list;
  *count = n;
  return 0;
}

void lpq_store_job_list_free(lpq_store_job_t **jobs, size_t count) {
  if (jobs == NULL || *jobs == NULL)
    return;
  for (size_t i = 0; i < count; i++)
    free((*jobs)[i].settings);
  free(*jobs);
  *jobs = NULL;
}
