/*
** coordinator/store/workers.c: the workers table (what the pool has seen) and the events log.
*/
#include "coordinator/store/store_internal.h"

#include <stdlib.h>
#include <string.h>

static int check_name(const char *what, const char *value, const char *op, lpq_error_t *err) {
  if (value != NULL && strlen(value) >= LPQ_STORE_NAME_MAX)
    return lpq_errorf(err, LPQ_EINVAL, "store: workers: %s: the %s is %zu bytes, at most %d", op,
                      what, strlen(value), LPQ_STORE_NAME_MAX - 1);
  return 0;
}

int lpq_store_worker_upsert(lpq_store_t *st, const char *id, const char *host, int64_t pid,
                            const char *state, lpq_error_t *err) {
  if (st == NULL || id == NULL || id[0] == '\0' || state == NULL)
    return lpq_errorf(err, LPQ_EINVAL, "store: workers: upsert: missing store, id or state");
  int ret = check_name("id", id, "upsert", err);
  if (ret == 0)
    ret = check_name("host", host, "upsert", err);
  if (ret == 0)
    ret = check_name("state", state, "upsert", err);
  sqlite3_stmt *s;
  if (ret == 0)
    ret = lpq__store_stmt(st, STMT_WORKER_UPSERT,
                     "INSERT INTO workers (id, host, pid, first_seen, last_seen, state) "
                     "VALUES (?1, ?2, ?3, ?4, ?4, ?5) ON CONFLICT (id) DO UPDATE SET "
                     "host = excluded.host, pid = excluded.pid, last_seen = excluded.last_seen, "
                     "state = excluded.state",
                     "workers", "upsert", &s, err);
  if (ret != 0)
    return ret;
  sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
  lpq__store_bind_text(s, 2, host);
  sqlite3_bind_int64(s, 3, pid);
  sqlite3_bind_double(s, 4, lpq__store_now());
  sqlite3_bind_text(s, 5, state, -1, SQLITE_STATIC);
  int rc = sqlite3_step(s);
  if (rc != SQLITE_DONE)
    ret = lpq__store_fail(st, rc, "workers", "upsert", err);
  sqlite3_reset(s);
  return ret;
}

int lpq_store_worker_seen(lpq_store_t *st, const char *id, const char *state, lpq_error_t *err) {
  if (st == NULL || id == NULL)
    return lpq_errorf(err, LPQ_EINVAL, "store: workers: seen: missing store or id");
  int ret = check_name("state", state, "seen", err);
  sqlite3_stmt *s;
  if (ret == 0)
    ret = lpq__store_stmt(st, STMT_WORKER_SEEN,
                     "UPDATE workers SET last_seen = ?2, state = coalesce(?3, state) "
                     "WHERE id = ?1",
                     "workers", "seen", &s, err);
  if (ret != 0)
    return ret;
  sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
  sqlite3_bind_double(s, 2, lpq__store_now());
  if (state != NULL)
    sqlite3_bind_text(s, 3, state, -1, SQLITE_STATIC);
  int rc = sqlite3_step(s);
  if (rc != SQLITE_DONE)
    ret = lpq__store_fail(st, rc, "workers", "seen", err);
  else if (sqlite3_changes(st->db) == 0)
    ret = lpq_errorf(err, LPQ_ENOTFOUND, "store: workers: seen: no worker \"%s\"", id);
  sqlite3_reset(s);
  return ret;
}

/* Grows *items (of item_size bytes each) to hold one more; 0 or LPQ_ENOMEM. */
static int grow(void **items, size_t *cap, size_t count, size_t item_size) {
  if (count < *cap)
    return 0;
  size_t new_cap = *cap != 0 ? 2 * *cap : 16;
  void *grown = realloc(*items, new_cap * item_size);
  if (grown == NULL)
    return LPQ_ENOMEM;
  *items = grown;
  *cap = new_cap;
  return 0;
}

int lpq_store_worker_list(lpq_store_t *st, lpq_store_worker_t **workers, size_t *count,
                          lpq_error_t *err) {
  if (st == NULL || workers == NULL || count == NULL)
    return lpq_errorf(err, LPQ_EINVAL, "store: workers: list: missing store or output");
  *workers = NULL;
  *count = 0;
  sqlite3_stmt *s;
  int ret = lpq__store_stmt(st, STMT_WORKER_LIST,
                       "SELECT id, host, pid, first_seen, last_seen, state, evaluations_done "
                       "FROM workers ORDER BY id",
                       "workers", "list", &s, err);
  if (ret != 0)
    return ret;
  lpq_store_worker_t *list = NULL;
  size_t n = 0, cap = 0;
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    if (grow((void **)&list, &cap, n, sizeof *list) != 0) {
      ret = lpq_errorf(err, LPQ_ENOMEM, "store: workers: list: out of memory at %zu", n);
      break;
    }
    lpq_store_worker_t *w = &list[n++];
    memset(w, 0, sizeof *w);
    lpq__store_column_text(s, 0, w->id, sizeof w->id);
    lpq__store_column_text(s, 1, w->host, sizeof w->host);
    w->pid = sqlite3_column_int64(s, 2);
    w->first_seen = lpq__store_column_double(s, 3);
    w->last_seen = lpq__store_column_double(s, 4);
    lpq__store_column_text(s, 5, w->state, sizeof w->state);
    w->evaluations_done = (size_t)sqlite3_column_int64(s, 6);
  }
  if (ret == 0 && rc != SQLITE_DONE)
    ret = lpq__store_fail(st, rc, "workers", "list", err);
  sqlite3_reset(s);
  if (ret != 0) {
    free(list);
    return ret;
  }
  *workers = list;
  *count = n;
  return 0;
}

/* ---- events ---------------------------------------------------------------------------- */

static const char *const level_names[] = {"debug", "info", "warn", "error"};
#define LEVEL_COUNT (sizeof level_names / sizeof level_names[0])

int lpq_store_event_append(lpq_store_t *st, int64_t job, lpq_store_level_t level,
                           const char *message, int64_t *id, lpq_error_t *err) {
  if (st == NULL || message == NULL || (unsigned)level >= LEVEL_COUNT)
    return lpq_errorf(err, LPQ_EINVAL, "store: events: append: missing store or message, or "
                      "level %d", (int)level);
  sqlite3_stmt *s;
  int ret = lpq__store_stmt(st, STMT_EVENT_APPEND,
                       "INSERT INTO events (job, time, level, message) VALUES (?1, ?2, ?3, ?4)",
                       "events", "append", &s, err);
  if (ret != 0)
    return ret;
  if (job != 0)
    sqlite3_bind_int64(s, 1, job);
  sqlite3_bind_double(s, 2, lpq__store_now());
  sqlite3_bind_text(s, 3, level_names[level], -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 4, message, -1, SQLITE_STATIC);
  int rc = sqlite3_step(s);
  if (rc == SQLITE_DONE) {
    if (id != NULL)
      *id = sqlite3_last_insert_rowid(st->db);
  } else if (rc == SQLITE_CONSTRAINT_FOREIGNKEY) {
    ret = lpq_errorf(err, LPQ_EINVAL, "store: events: append: no job %lld", (long long)job);
  } else {
    ret = lpq__store_fail(st, rc, "events", "append", err);
  }
  sqlite3_reset(s);
  return ret;
}

int lpq_store_event_list(lpq_store_t *st, int64_t job, int64_t after_id, size_t limit,
                         lpq_store_event_t **events, size_t *count, lpq_error_t *err) {
  if (st == NULL || events == NULL || count == NULL)
    return lpq_errorf(err, LPQ_EINVAL, "store: events: list: missing store or output");
  *events = NULL;
  *count = 0;
  sqlite3_stmt *s;
  int ret = job != 0 ? lpq__store_stmt(st, STMT_EVENT_LIST_JOB,
                                  "SELECT id, job, time, level, message FROM events "
                                  "WHERE job = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
                                  "events", "list", &s, err)
                     : lpq__store_stmt(st, STMT_EVENT_LIST,
                                  "SELECT id, job, time, level, message FROM events "
                                  "WHERE id > ?2 ORDER BY id LIMIT ?3",
                                  "events", "list", &s, err);
  if (ret != 0)
    return ret;
  sqlite3_bind_int64(s, 1, job);
  sqlite3_bind_int64(s, 2, after_id);
  sqlite3_bind_int64(s, 3, limit == 0 || limit > INT64_MAX ? -1 : (sqlite3_int64)limit);
  lpq_store_event_t *list = NULL;
  size_t n = 0, cap = 0;
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    if (grow((void **)&list, &cap, n, sizeof *list) != 0) {
      ret = lpq_errorf(err, LPQ_ENOMEM, "store: events: list: out of memory at %zu", n);
      break;
    }
    lpq_store_event_t *e = &list[n++];
    memset(e, 0, sizeof *e);
    e->id = sqlite3_column_int64(s, 0);
    e->job = sqlite3_column_int64(s, 1); /* NULL reads as 0: the server's own */
    e->time = lpq__store_column_double(s, 2);
    const char *level = (const char *)sqlite3_column_text(s, 3);
    e->level = LPQ_STORE_INFO;
    for (size_t l = 0; level != NULL && l < LEVEL_COUNT; l++)
      if (strcmp(level, level_names[l]) == 0)
        e->level = (lpq_store_level_t)l;
    lpq__store_column_text(s, 4, e->message, sizeof e->message);
  }
  if (ret == 0 && rc != SQLITE_DONE)
    ret = lpq__store_fail(st, rc, "events", "list", err);
  sqlite3_reset(s);
  if (ret != 0) {
    free(list);
    return ret;
  }
  *events = list;
  *count = n;
  return 0;
}
