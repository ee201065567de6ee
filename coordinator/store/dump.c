/*
** coordinator/store/dump.c: any table or view of the store as JSON, for `lpqctl history` and
** the API's read methods. The name is checked against the schema (never pasted in unchecked),
** and the filters apply only to columns the table has.
*/
#include "coordinator/store/store_internal.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 0 when name is a table or view of the store (not SQLite's own). */
static int check_name(lpq_store_t *st, const char *name, lpq_error_t *err) {
  sqlite3_stmt *s = NULL;
  int rc = sqlite3_prepare_v2(st->db,
                              "SELECT 1 FROM sqlite_schema WHERE type IN ('table', 'view') "
                              "AND name = ?1 AND name NOT LIKE 'sqlite%'",
                              -1, &s, NULL);
  if (rc == SQLITE_OK) {
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    rc = sqlite3_step(s);
  }
  int ret = rc == SQLITE_ROW    ? 0
            : rc == SQLITE_DONE ? lpq_errorf(err, LPQ_ENOTFOUND,
                                             "store: dump: no table or view \"%s\" (tables: jobs, "
                                             "blobs, evaluations, generations, individuals, "
                                             "workers, events, sensitivity, picks; views: "
                                             "v_pareto, v_generation_stats, v_best_config, "
                                             "v_sensitivity, v_pick)",
                                             name)
                                : lpq__store_fail(st, rc, name, "dump", err);
  sqlite3_finalize(s);
  return ret;
}

/* The name of the column among candidates that the statement has, or NULL. */
static const char *find_column(sqlite3_stmt *s, const char *const *candidates) {
  int n = sqlite3_column_count(s);
  for (const char *const *c = candidates; *c != NULL; c++)
    for (int i = 0; i < n; i++)
      if (strcmp(sqlite3_column_name(s, i), *c) == 0)
        return *c;
  return NULL;
}

static json_t *cell(sqlite3_stmt *s, int col) {
  switch (sqlite3_column_type(s, col)) {
  case SQLITE_INTEGER:
    return json_integer((json_int_t)sqlite3_column_int64(s, col));
  case SQLITE_FLOAT: {
    double v = sqlite3_column_double(s, col);
    return isfinite(v) ? json_real(v) : json_null(); /* JSON has no Inf */
  }
  case SQLITE_TEXT:
    return json_stringn((const char *)sqlite3_column_text(s, col),
                        (size_t)sqlite3_column_bytes(s, col));
  case SQLITE_BLOB:
    return json_integer(sqlite3_column_bytes(s, col)); /* only its size */
  default:
    return json_null();
  }
}

int lpq_store_dump_json(lpq_store_t *st, const char *name, const lpq_store_dump_filter_t *filter,
                        char **json, lpq_error_t *err) {
  if (st == NULL || name == NULL || json == NULL)
    return lpq_errorf(err, LPQ_EINVAL, "store: dump: missing store, name or output");
  *json = NULL;
  lpq_store_dump_filter_t none = {0};
  const lpq_store_dump_filter_t *f = filter != NULL ? filter : &none;
  int ret = check_name(st, name, err);
  if (ret != 0)
    return ret;
  /* Learn the columns, then build the filtered query. */
  char sql[512];
  snprintf(sql, sizeof sql, "SELECT * FROM \"%s\"", name);
  sqlite3_stmt *s = NULL;
  int rc = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(s);
    return lpq__store_fail(st, rc, name, "dump", err);
  }
  static const char *const job_cols[] = {"job", NULL};
  static const char *const gen_cols[] = {"generation", "number", NULL};
  static const char *const front_cols[] = {"in_front", NULL};
  const char *job_col = strcmp(name, "jobs") == 0 ? "id" : find_column(s, job_cols);
  const char *gen_col = find_column(s, gen_cols);
  const char *front_col = find_column(s, front_cols);
  const char *bad = NULL, *order_col = NULL;
  for (const char *const *c = f->columns; c && *c && !bad; c++) {
    const char *one[] = {*c, NULL};
    bad = find_column(s, one) ? NULL : *c;
  }
  if (!bad && f->order_by) {
    const char *one[] = {f->order_by, NULL};
    bad = (order_col = find_column(s, one)) ? NULL : f->order_by;
  }
  sqlite3_finalize(s);
  if (bad)
    return lpq_errorf(err, LPQ_EINVAL, "store: dump: %s has no column \"%s\"", name, bad);
  if (f->job > 0 && job_col == NULL)
    return lpq_errorf(err, LPQ_EINVAL, "store: dump: %s has no job column to filter on", name);
  if (f->generation_set && gen_col == NULL)
    return lpq_errorf(err, LPQ_EINVAL, "store: dump: %s has no generation column", name);
  if (f->front_only && front_col == NULL)
    return lpq_errorf(err, LPQ_EINVAL, "store: dump: %s has no in_front column", name);
  size_t len = (size_t)snprintf(sql, sizeof sql, "SELECT * FROM \"%s\" WHERE 1", name);
  if (f->job > 0)
    len += (size_t)snprintf(sql + len, sizeof sql - len, " AND %s = ?1", job_col);
  if (f->generation_set)
    len += (size_t)snprintf(sql + len, sizeof sql - len, " AND %s = ?2", gen_col);
  if (f->front_only)
    len += (size_t)snprintf(sql + len, sizeof sql - len, " AND %s = 1", front_col);
  if (order_col) /* a name the statement has: safe to quote into the text */
    len += (size_t)snprintf(sql + len, sizeof sql - len, " ORDER BY \"%s\" %s", order_col,
                            f->descending ? "DESC" : "ASC");
  snprintf(sql + len, sizeof sql - len, " LIMIT ?3 OFFSET ?4");
  rc = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(s);
    return lpq__store_fail(st, rc, name, "dump", err);
  }
  sqlite3_bind_int64(s, 1, f->job);
  sqlite3_bind_int64(s, 2, f->generation);
  sqlite3_bind_int64(s, 3, f->limit == 0 || f->limit > INT64_MAX ? -1 : (sqlite3_int64)f->limit);
  sqlite3_bind_int64(s, 4, f->offset > INT64_MAX ? INT64_MAX : (sqlite3_int64)f->offset);

  json_t *rows = json_array();
  int columns = sqlite3_column_count(s);
  if (rows == NULL)
    ret = lpq_errorf(err, LPQ_ENOMEM, "store: dump: %s: out of memory", name);
  while (ret == 0 && (rc = sqlite3_step(s)) == SQLITE_ROW) {
    json_t *row = json_object();
    if (row == NULL || json_array_append_new(rows, row) != 0) {
      ret = lpq_errorf(err, LPQ_ENOMEM, "store: dump: %s: out of memory", name);
      break;
    }
    for (int c = 0; c < columns && ret == 0; c++)
      if (json_object_set_new(row, sqlite3_column_name(s, c), cell(s, c)) != 0)
        ret = lpq_errorf(err, LPQ_ENOMEM, "store: dump: %s: out of memory", name);
  }
  if (ret == 0 && rc != SQLITE_DONE)
    ret = lpq__store_fail(st, rc, name, "dump", err);
  sqlite3_finalize(s);
  if (ret == 0) {
    *json = json_dumps(rows, JSON_COMPACT | JSON_ENSURE_ASCII);
    if (*json == NULL)
      ret = lpq_errorf(err, LPQ_ENOMEM, "store: dump: %s: out of memory", name);
  }
  json_decref(rows);
  return ret;
}
