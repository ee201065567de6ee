/* tests/test_store_sensitivity.c: the sensitivity table and v_sensitivity (schema/store_v2.sql):
** the migration from a v1 file, a job's matrix stored and read back, replacement, the view's
** pivot and ranks, unknown jobs. */
#include "coordinator/store/store.h"

#include <criterion/criterion.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmp_dir[256];
static char db_path[300];

static void make_tmp(void) {
  const char *base = getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp";
  snprintf(tmp_dir, sizeof tmp_dir, "%s/lpq-sens-XXXXXX", base);
  cr_assert_not_null(mkdtemp(tmp_dir));
  snprintf(db_path, sizeof db_path, "%s/lpq.db", tmp_dir);
}

static void remove_tmp(void) {
  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
  cr_assert_eq(system(cmd), 0);
}

TestSuite(store_sensitivity, .init = make_tmp, .fini = remove_tmp);

static lpq_store_t *open_ok(void) {
  lpq_error_t err = {0};
  lpq_store_t *st = lpq_store_open(db_path, &err);
  cr_assert_not_null(st, "open: %s", err.msg);
  return st;
}

/* A 3-layer matrix over widths 2..8 with cell value (layer + 1) / bits^2, layer 1 the most
** sensitive at 4 bits. */
static void make_matrix(lpq_store_sensitivity_t *m, char *names[3], char *formats[21],
                        size_t weights[3], double *d, double *t) {
  static const double scale[3] = {1, 5, 2};
  memset(m, 0, sizeof *m);
  m->layers = 3;
  m->bits_lo = 2;
  m->bits_hi = 8;
  for (size_t l = 0; l < 3; l++) {
    weights[l] = 100 * (l + 1);
    for (int b = 2; b <= 8; b++) {
      size_t k = l * 7 + (size_t)(b - 2);
      d[k] = scale[l] / (double)(b * b);
      t[k] = l == 2 ? NAN : 0.5 + 0.05 * b;
      formats[k] = NULL;
    }
  }
  d[0 * 7 + 1] = NAN; /* layer 0 at 3 bits failed */
  m->names = names;
  m->weights = weights;
  m->delta_l_co = d;
  m->top1 = t;
  m->formats = formats;
}

Test(store_sensitivity, schema_round_trip_and_view) {
  lpq_store_t *st = open_ok();
  lpq_error_t err;
  int64_t job, other;
  cr_assert_eq(lpq_store_job_insert(st, "a", "{}", &job, &err), 0, "%s", err.msg);
  cr_assert_eq(lpq_store_job_insert(st, "b", "{}", &other, &err), 0, "%s", err.msg);
  lpq_store_sensitivity_t m, got;
  char *names[3] = {"conv1", "layer1.0/conv", "fc"}, *formats[21];
  size_t weights[3];
  double d[21], t[21];
  make_matrix(&m, names, formats, weights, d, t);
  formats[2] = "lp<4,1,2,173>";
  cr_assert_eq(lpq_store_sensitivity_get(st, job, &got, &err), LPQ_ENOTFOUND);
  cr_assert_eq(lpq_store_sensitivity_put(st, job, &m, &err), 0, "%s", err.msg);
  cr_assert_eq(lpq_store_sensitivity_put(st, 999, &m, &err), LPQ_EINVAL, "unknown job");
  /* a second put replaces the first */
  d[2 * 7 + 6] = 0.125;
  cr_assert_eq(lpq_store_sensitivity_put(st, job, &m, &err), 0, "%s", err.msg);
  cr_assert_eq(lpq_store_sensitivity_get(st, job, &got, &err), 0, "%s", err.msg);
  cr_assert_eq(got.layers, 3);
  cr_assert_eq(got.bits_lo, 2);
  cr_assert_eq(got.bits_hi, 8);
  for (size_t l = 0; l < 3; l++) {
    cr_assert_str_eq(got.names[l], names[l]);
    cr_assert_eq(got.weights[l], weights[l]);
  }
  for (size_t k = 0; k < 21; k++) {
    if (isnan(d[k]))
      cr_assert(isnan(got.delta_l_co[k]), "cell %zu", k);
    else
      cr_assert_float_eq(got.delta_l_co[k], d[k], 1e-15, "cell %zu", k);
    if (isnan(t[k]))
      cr_assert(isnan(got.top1[k]), "cell %zu", k);
    else
      cr_assert_float_eq(got.top1[k], t[k], 1e-15, "cell %zu", k);
  }
  cr_assert_str_eq(got.formats[2], "lp<4,1,2,173>");
  cr_assert_null(got.formats[3]);
  lpq_store_sensitivity_clear(&got);
  cr_assert_eq(lpq_store_sensitivity_get(st, other, &got, &err), LPQ_ENOTFOUND);
  /* the table and the view, as the sqlite3 shell sees them */
  char *json = NULL;
  cr_assert_eq(lpq_store_dump_json(st, "sensitivity", &(lpq_store_dump_filter_t){.job = job},
                                   &json, &err), 0, "%s", err.msg);
  cr_assert(strstr(json, "\"layer_name\"") && strstr(json, "\"delta_l_co\""), "%s", json);
  free(json);
  lpq_store_close(&st);
  sqlite3 *db;
  cr_assert_eq(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  sqlite3_stmt *s;
  cr_assert_eq(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL), SQLITE_OK);
  cr_assert_eq(sqlite3_step(s), SQLITE_ROW);
  cr_assert_eq(sqlite3_column_int(s, 0), LPQ_STORE_SCHEMA_VERSION);
  cr_assert_geq(LPQ_STORE_SCHEMA_VERSION, 2);
  sqlite3_finalize(s);
  cr_assert_eq(sqlite3_prepare_v2(db, "SELECT job, layer, layer_name, weights, d2, d3, d4, d8, "
                                      "rank_4 FROM v_sensitivity ORDER BY job, layer",
                                  -1, &s, NULL),
               SQLITE_OK, "%s", sqlite3_errmsg(db));
  static const int rank4[3] = {3, 1, 2};
  for (int l = 0; l < 3; l++) {
    cr_assert_eq(sqlite3_step(s), SQLITE_ROW, "layer %d", l);
    cr_assert_eq(sqlite3_column_int64(s, 0), job);
    cr_assert_eq(sqlite3_column_int(s, 1), l);
    cr_assert_str_eq((const char *)sqlite3_column_text(s, 2), names[l]);
    cr_assert_eq(sqlite3_column_int(s, 3), 100 * (l + 1));
    cr_assert_float_eq(sqlite3_column_double(s, 4), d[l * 7 + 0], 1e-15);
    if (l == 0)
      cr_assert_eq(sqlite3_column_type(s, 5), SQLITE_NULL, "a failed cell is NULL");
    cr_assert_float_eq(sqlite3_column_double(s, 6), d[l * 7 + 2], 1e-15);
    cr_assert_float_eq(sqlite3_column_double(s, 7), d[l * 7 + 6], 1e-15);
    cr_assert_eq(sqlite3_column_int(s, 8), rank4[l], "layer %d rank", l);
  }
  cr_assert_eq(sqlite3_step(s), SQLITE_DONE, "one row per layer");
  sqlite3_finalize(s);
  sqlite3_close(db);
  /* deleting the job deletes its rows */
  cr_assert_eq(sqlite3_open(db_path, &db), SQLITE_OK);
  cr_assert_eq(sqlite3_exec(db, "PRAGMA foreign_keys = ON; DELETE FROM jobs WHERE id = 1;", NULL,
                            NULL, NULL),
               SQLITE_OK, "%s", sqlite3_errmsg(db));
  cr_assert_eq(sqlite3_prepare_v2(db, "SELECT count(*) FROM sensitivity", -1, &s, NULL),
               SQLITE_OK);
  cr_assert_eq(sqlite3_step(s), SQLITE_ROW);
  cr_assert_eq(sqlite3_column_int(s, 0), 0);
  sqlite3_finalize(s);
  sqlite3_close(db);
}

Test(store_sensitivity, a_v1_database_migrates_and_keeps_its_jobs) {
  /* a v1 file as an older lpq left it: migration 1 only */
  lpq_store_t *st = open_ok();
  lpq_error_t err;
  int64_t job;
  cr_assert_eq(lpq_store_job_insert(st, "old", "{}", &job, &err), 0, "%s", err.msg);
  lpq_store_close(&st);
  sqlite3 *db;
  cr_assert_eq(sqlite3_open(db_path, &db), SQLITE_OK);
  cr_assert_eq(sqlite3_exec(db, "DROP VIEW v_pick; DROP TABLE picks; DROP VIEW v_sensitivity; "
                                "DROP TABLE sensitivity; PRAGMA user_version = 1;", NULL, NULL,
                            NULL),
               SQLITE_OK, "%s", sqlite3_errmsg(db));
  sqlite3_close(db);
  st = open_ok();
  lpq_store_sensitivity_t m, got;
  char *names[3] = {"a", "b", "c"}, *formats[21];
  size_t weights[3];
  double d[21], t[21];
  make_matrix(&m, names, formats, weights, d, t);
  m.top1 = NULL;
  m.formats = NULL;
  m.weights = NULL;
  cr_assert_eq(lpq_store_sensitivity_put(st, job, &m, &err), 0, "%s", err.msg);
  cr_assert_eq(lpq_store_sensitivity_get(st, job, &got, &err), 0, "%s", err.msg);
  cr_assert(isnan(got.top1[0]));
  cr_assert_eq(got.weights[0], 0);
  lpq_store_sensitivity_clear(&got);
  lpq_store_close(&st);
}
