/*
** coordinator/store/store.c: opening and closing the store, schema migrations by PRAGMA
** user_version, the statement cache, transactions and the mapping of SQLite errors.
*/
#include "coordinator/store/store_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define STORE_BUSY_TIMEOUT_MS 5000
/* PRAGMA application_id of an lpq store: "LPQS", so another program's database is refused. */
#define STORE_APPLICATION_ID 0x4c505153

int lpq__store_code(int rc) {
  switch (rc & 0xff) {
  case SQLITE_OK:
  case SQLITE_ROW:
  case SQLITE_DONE:
    return 0;
  case SQLITE_NOMEM:
    return LPQ_ENOMEM;
  case SQLITE_BUSY:
  case SQLITE_LOCKED:
    return LPQ_ETIMEDOUT;
  case SQLITE_CORRUPT: /* a damaged page: the store's own data, not a client's input */
    return LPQ_ECORRUPT;
  case SQLITE_NOTADB:
  case SQLITE_ERROR: /* SQL that does not fit the schema: the file is not what we expect */
  case SQLITE_SCHEMA:
    return LPQ_EFORMAT;
  case SQLITE_CONSTRAINT:
  case SQLITE_MISMATCH:
  case SQLITE_TOOBIG:
  case SQLITE_RANGE:
    return LPQ_EINVAL;
  default: /* FULL, IOERR, READONLY, CANTOPEN, PERM, PROTOCOL, ... */
    return LPQ_EIO;
  }
}

int lpq__store_fail(lpq_store_t *st, int rc, const char *table, const char *op, lpq_error_t *err) {
  const char *msg = st != NULL && st->db != NULL ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc);
  if (lpq__store_code(rc) == LPQ_ECORRUPT) /* found at run time: what it is and what to do */
    return lpq_errorf(err, LPQ_ECORRUPT, "store: %s: %s: the database is damaged (%s); stop the "
                      "coordinator and recover it (sqlite3 DB .recover) or restore a backup",
                      table, op, msg);
  return lpq_errorf(err, lpq__store_code(rc) != 0 ? lpq__store_code(rc) : LPQ_EIO, "store: %s: %s: %s",
                    table, op, msg);
}

int lpq__store_stmt(lpq_store_t *st, store_stmt_id_t id, const char *sql, const char *table,
               const char *op, sqlite3_stmt **out, lpq_error_t *err) {
  sqlite3_stmt *s = st->stmt[id];
  if (s != NULL) {
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    *out = s;
    return 0;
  }
  int rc = sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(s);
    *out = NULL;
    return lpq__store_fail(st, rc, table, op, err);
  }
  st->stmt[id] = s;
  *out = s;
  return 0;
}

static int store_step_simple(lpq_store_t *st, store_stmt_id_t id, const char *sql,
                             const char *table, const char *op, lpq_error_t *err) {
  sqlite3_stmt *s;
  int ret = lpq__store_stmt(st, id, sql, table, op, &s, err);
  if (ret != 0)
    return ret;
  int rc = sqlite3_step(s);
  ret = rc == SQLITE_DONE ? 0 : lpq__store_fail(st, rc, table, op, err);
  sqlite3_reset(s);
  return ret;
}

int lpq__store_begin(lpq_store_t *st, const char *table, const char *op, lpq_error_t *err) {
  return store_step_simple(st, STMT_BEGIN, "BEGIN IMMEDIATE", table, op, err);
}

int lpq__store_commit(lpq_store_t *st, const char *table, const char *op, lpq_error_t *err) {
  return store_step_simple(st, STMT_COMMIT, "COMMIT", table, op, err);
}

void lpq__store_rollback(lpq_store_t *st) {
  /* SQLite rolls some failures (SQLITE_FULL, IOERR) back by itself; then there is nothing
  ** left to undo. */
  if (!sqlite3_get_autocommit(st->db))
    store_step_simple(st, STMT_ROLLBACK, "ROLLBACK", "transaction", "rollback", NULL);
}

int lpq__store_end(lpq_store_t *st, int ret, const char *table, const char *op, lpq_error_t *err) {
  if (ret == 0)
    ret = lpq__store_commit(st, table, op, err);
  if (ret != 0)
    lpq__store_rollback(st);
  return ret;
}

void lpq__store_bind_double(sqlite3_stmt *s, int col, double v) {
  if (isnan(v))
    sqlite3_bind_null(s, col);
  else
    sqlite3_bind_double(s, col, v);
}

void lpq__store_bind_text(sqlite3_stmt *s, int col, const char *text) {
  if (text == NULL || text[0] == '\0')
    sqlite3_bind_null(s, col);
  else
    sqlite3_bind_text(s, col, text, -1, SQLITE_STATIC);
}

double lpq__store_column_double(sqlite3_stmt *s, int col) {
  return sqlite3_column_type(s, col) == SQLITE_NULL ? NAN : sqlite3_column_double(s, col);
}

void lpq__store_column_text(sqlite3_stmt *s, int col, char *buf, size_t size) {
  const unsigned char *t = sqlite3_column_text(s, col);
  snprintf(buf, size, "%s", t != NULL ? (const char *)t : "");
}

void lpq__store_hash_hex(uint64_t hash, char out[17]) {
  snprintf(out, 17, "%016llx", (unsigned long long)hash);
}

double lpq__store_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- migrations ------------------------------------------------------------------------ */

static int pragma_int(sqlite3 *db, const char *sql, const char *path, int64_t *out,
                      lpq_error_t *err) {
  sqlite3_stmt *s = NULL;
  int rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);
  if (rc == SQLITE_OK) {
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
      *out = sqlite3_column_int64(s, 0);
      rc = SQLITE_OK;
    }
  }
  if (rc != SQLITE_OK)
    lpq_errorf(err, lpq__store_code(rc), "store: %s: %s: %s", path, sql, sqlite3_errmsg(db));
  sqlite3_finalize(s);
  return rc == SQLITE_OK ? 0 : lpq__store_code(rc);
}

static int exec_sql(sqlite3 *db, const char *sql, const char *path, const char *what,
                    lpq_error_t *err) {
  char *msg = NULL;
  int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
  if (rc != SQLITE_OK)
    lpq_errorf(err, lpq__store_code(rc), "store: %s: %s: %s", path, what,
               msg != NULL ? msg : sqlite3_errmsg(db));
  sqlite3_free(msg);
  return rc == SQLITE_OK ? 0 : lpq__store_code(rc);
}

/* Refuses a database that is not an lpq store: another program's tables without our version,
** or a version with another application id. */
static int check_ownership(sqlite3 *db, const char *path, int64_t version, lpq_error_t *err) {
  int64_t value = 0;
  int rc;
  if (version == 0) {
    rc = pragma_int(db, "SELECT count(*) FROM sqlite_schema", path, &value, err);
    if (rc == 0 && value > 0)
      return lpq_errorf(err, LPQ_EFORMAT,
                        "store: %s: a SQLite database of another program (it has %lld schema "
                        "objects but no lpq schema version); not touching it",
                        path, (long long)value);
    return rc;
  }
  rc = pragma_int(db, "PRAGMA application_id", path, &value, err);
  if (rc == 0 && value != STORE_APPLICATION_ID)
    return lpq_errorf(err, LPQ_EFORMAT,
                      "store: %s: not an lpq store (application_id %lld, schema version %lld)",
                      path, (long long)value, (long long)version);
  return rc;
}

int lpq__store_migrate(sqlite3 *db, const char *path, const char *const *migrations, size_t count,
                  lpq_error_t *err) {
  int64_t version = 0;
  int rc = pragma_int(db, "PRAGMA user_version", path, &version, err);
  if (rc != 0)
    return rc;
  if (version < 0)
    return lpq_errorf(err, LPQ_EFORMAT, "store: %s: schema version %lld is not an lpq version",
                      path, (long long)version);
  if ((uint64_t)version > count)
    return lpq_errorf(err, LPQ_EUNSUP,
                      "store: %s: schema version %lld is newer than this lpq knows (%zu); open "
                      "it with the newer lpq-coordinator that wrote it",
                      path, (long long)version, count);
  if ((rc = check_ownership(db, path, version, err)) != 0)
    return rc;
  while ((uint64_t)version < count) {
    char what[64], bump[96];
    snprintf(what, sizeof what, "migration to schema version %lld", (long long)version + 1);
    if ((rc = exec_sql(db, "BEGIN IMMEDIATE", path, what, err)) != 0)
      return rc;
    /* Another process may have migrated while we waited for the write lock. */
    int64_t now_version = 0;
    rc = pragma_int(db, "PRAGMA user_version", path, &now_version, err);
    if (rc == 0 && now_version == version) {
      snprintf(bump, sizeof bump, "PRAGMA user_version = %lld; PRAGMA application_id = %d;",
               (long long)version + 1, STORE_APPLICATION_ID);
      rc = exec_sql(db, migrations[version], path, what, err);
      if (rc == 0)
        rc = exec_sql(db, bump, path, what, err);
    }
    if (rc == 0)
      rc = exec_sql(db, "COMMIT", path, what, err);
    if (rc != 0) {
      if (!sqlite3_get_autocommit(db))
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
      return rc;
    }
    if ((rc = pragma_int(db, "PRAGMA user_version", path, &version, err)) != 0)
      return rc;
  }
  return 0;
}

/* ---- open and close -------------------------------------------------------------------- */

static int configure(sqlite3 *db, const char *path, lpq_error_t *err) {
  int rc = sqlite3_busy_timeout(db, STORE_BUSY_TIMEOUT_MS);
  if (rc != SQLITE_OK)
    return lpq_errorf(err, lpq__store_code(rc), "store: %s: busy timeout: %s", path,
                      sqlite3_errmsg(db));
  /* The first statement reads the header: a file that is not a database fails here. */
  sqlite3_stmt *s = NULL;
  rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode = WAL", -1, &s, NULL);
  if (rc == SQLITE_OK)
    rc = sqlite3_step(s);
  if (rc != SQLITE_ROW) {
    lpq_errorf(err, lpq__store_code(rc), "store: %s: setting WAL mode: %s", path, sqlite3_errmsg(db));
    sqlite3_finalize(s);
    return err != NULL ? err->code : lpq__store_code(rc);
  }
  const unsigned char *mode = sqlite3_column_text(s, 0);
  int wal = mode != NULL && strcmp((const char *)mode, "wal") == 0;
  sqlite3_finalize(s);
  if (!wal)
    return lpq_errorf(err, LPQ_EIO, "store: %s: the database refused WAL mode (journal mode %s)",
                      path, mode != NULL ? "other" : "unknown");
  /* A 32 MiB page cache holds the (job, genome) index of a few hundred thousand results, so
  ** commits and the replay's lookups rarely read from the file. */
  return exec_sql(db,
                  "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; "
                  "PRAGMA cache_size = -32768; PRAGMA journal_size_limit = 67108864;",
                  path, "setting synchronous, foreign_keys and the cache", err);
}

/* PRAGMA quick_check: a damaged page is found at start, not by a client's request later. */
static int quick_check(sqlite3 *db, const char *path, lpq_error_t *err) {
  sqlite3_stmt *s = NULL;
  int rc = sqlite3_prepare_v2(db, "PRAGMA quick_check(1)", -1, &s, NULL);
  if (rc == SQLITE_OK)
    rc = sqlite3_step(s);
  const char *first = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(s, 0) : NULL;
  int ret = 0;
  if (rc == SQLITE_ROW && first != NULL && strcmp(first, "ok") == 0)
    ret = 0;
  else
    ret = lpq_errorf(err, LPQ_ECORRUPT, "store: %s: the database is damaged (quick_check: %s); "
                     "not serving it: restore a backup, or recover it with sqlite3's .recover",
                     path, first ? first : sqlite3_errmsg(db));
  sqlite3_finalize(s);
  return ret;
}

lpq_store_t *lpq_store_open(const char *path, lpq_error_t *err) {
  if (path == NULL || path[0] == '\0') {
    lpq_errorf(err, LPQ_EINVAL, "store: open: no database path");
    return NULL;
  }
  lpq_store_t *st = calloc(1, sizeof *st);
  size_t len = strlen(path);
  if (st != NULL) {
    st->path = strdup(path);
    st->blob_dir = malloc(len + sizeof ".blobs");
  }
  if (st == NULL || st->path == NULL || st->blob_dir == NULL) {
    lpq_errorf(err, LPQ_ENOMEM, "store: open: %s: out of memory", path);
    lpq_store_close(&st);
    return NULL;
  }
  memcpy(st->blob_dir, path, len);
  memcpy(st->blob_dir + len, ".blobs", sizeof ".blobs");

  int rc = sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
  if (rc != SQLITE_OK) {
    lpq_errorf(err, lpq__store_code(rc), "store: %s: cannot open: %s", path,
               st->db != NULL ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
    lpq_store_close(&st);
    return NULL;
  }
  sqlite3_extended_result_codes(st->db, 1);
  /* SQLite silently opens a write-protected file read-only; a writer cannot use that. */
  if (sqlite3_db_readonly(st->db, "main") == 1) {
    lpq_errorf(err, LPQ_EIO, "store: %s: the database file is read-only (check its permissions)",
               path);
    lpq_store_close(&st);
    return NULL;
  }
  if (configure(st->db, path, err) != 0 || quick_check(st->db, path, err) != 0 ||
      lpq__store_migrate(st->db, path, lpq__store_migrations, lpq__store_migration_count, err) != 0) {
    lpq_store_close(&st);
    return NULL;
  }
  if (mkdir(st->blob_dir, 0700) != 0 && errno != EEXIST) {
    lpq_errorf(err, LPQ_EIO, "store: %s: cannot create the blob directory: %s", st->blob_dir,
               strerror(errno));
    lpq_store_close(&st);
    return NULL;
  }
  if (lpq__store_checkpointer_start(st, err) != 0) {
    lpq_store_close(&st);
    return NULL;
  }
  return st;
}

void lpq_store_close(lpq_store_t **stp) {
  if (stp == NULL || *stp == NULL)
    return;
  lpq_store_t *st = *stp;
  lpq__store_checkpointer_stop(st);
  for (size_t i = 0; i < STMT_COUNT_; i++)
    sqlite3_finalize(st->stmt[i]);
  if (st->db != NULL)
    sqlite3_close(st->db);
  free(st->path);
  free(st->blob_dir);
  free(st);
  *stp = NULL;
}

const char *lpq_store_path(const lpq_store_t *st) { return st->path; }
const char *lpq_store_blob_dir(const lpq_store_t *st) { return st->blob_dir; }
