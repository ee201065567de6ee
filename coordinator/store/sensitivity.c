/*
** coordinator/store/sensitivity.c: a job's per-layer sensitivity matrix (schema/store_v2.sql):
** written once per job in one transaction, read back whole. Called once per job, so the
** statements are prepared per call rather than cached.
*/
#include "coordinator/store/store_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t widths_of(const lpq_store_sensitivity_t *m) {
  return (size_t)(m->bits_hi - m->bits_lo + 1);
}

int lpq_store_sensitivity_put(lpq_store_t *st, int64_t job, const lpq_store_sensitivity_t *m,
                              lpq_error_t *err) {
  if (!st || !m || m->layers == 0 || !m->names || !m->delta_l_co || m->bits_lo < 1 ||
      m->bits_hi > 32 || m->bits_lo > m->bits_hi)
    return lpq_errorf(err, LPQ_EINVAL, "store: sensitivity: put: an empty or malformed matrix");
  const size_t widths = widths_of(m);
  sqlite3_stmt *del = NULL, *ins = NULL;
  int ret = lpq__store_begin(st, "sensitivity", "put", err);
  if (ret != 0)
    return ret;
  int rc = sqlite3_prepare_v2(st->db, "DELETE FROM sensitivity WHERE job = ?1", -1, &del, NULL);
  if (rc == SQLITE_OK)
    rc = sqlite3_prepare_v2(st->db,
                            "INSERT INTO sensitivity (job, layer, layer_name, bits, delta_l_co, "
                            "top1, weights, format) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                            -1, &ins, NULL);
  if (rc == SQLITE_OK) {
    sqlite3_bind_int64(del, 1, job);
    rc = sqlite3_step(del);
    rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
  }
  for (size_t l = 0; rc == SQLITE_OK && l < m->layers; l++)
    for (size_t c = 0; rc == SQLITE_OK && c < widths; c++) {
      size_t k = l * widths + c;
      sqlite3_bind_int64(ins, 1, job);
      sqlite3_bind_int64(ins, 2, (sqlite3_int64)l);
      sqlite3_bind_text(ins, 3, m->names[l] ? m->names[l] : "", -1, SQLITE_STATIC);
      sqlite3_bind_int(ins, 4, m->bits_lo + (int)c);
      lpq__store_bind_double(ins, 5, m->delta_l_co[k]);
      lpq__store_bind_double(ins, 6, m->top1 ? m->top1[k] : NAN);
      if (m->weights)
        sqlite3_bind_int64(ins, 7, (sqlite3_int64)m->weights[l]);
      else
        sqlite3_bind_null(ins, 7);
      lpq__store_bind_text(ins, 8, m->formats ? m->formats[k] : NULL);
      rc = sqlite3_step(ins);
      rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
      sqlite3_reset(ins);
      sqlite3_clear_bindings(ins);
    }
  if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
    ret = lpq_errorf(err, LPQ_EINVAL, "store: sensitivity: put: no job %lld", (long long)job);
  else if (rc != SQLITE_OK)
    ret = lpq__store_fail(st, rc, "sensitivity", "put", err);
  sqlite3_finalize(del);
  sqlite3_finalize(ins);
  return lpq__store_end(st, ret, "sensitivity", "put", err);
}

void lpq_store_sensitivity_clear(lpq_store_sensitivity_t *m) {
  if (!m)
    return;
  size_t cells = m->layers * (m->bits_hi >= m->bits_lo ? widths_of(m) : 0);
  for (size_t l = 0; m->names && l < m->layers; l++)
    free(m->names[l]);
  for (size_t k = 0; m->formats && k < cells; k++)
    free(m->formats[k]);
  free(m->names);
  free(m->formats);
  free(m->weights);
  free(m->delta_l_co);
  free(m->top1);
  memset(m, 0, sizeof *m);
}

/* Allocates out's arrays for its layers and widths, every number NAN. */
static int alloc_matrix(lpq_store_sensitivity_t *m) {
  size_t cells = m->layers * widths_of(m);
  m->names = calloc(m->layers, sizeof *m->names);
  m->formats = calloc(cells, sizeof *m->formats);
  m->weights = calloc(m->layers, sizeof *m->weights);
  m->delta_l_co = malloc(cells * sizeof *m->delta_l_co);
  m->top1 = malloc(cells * sizeof *m->top1);
  if (!m->names || !m->formats || !m->weights || !m->delta_l_co || !m->top1)
    return LPQ_ENOMEM;
  for (size_t k = 0; k < cells; k++)
    m->delta_l_co[k] = m->top1[k] = NAN;
  return 0;
}

static char *column_dup(sqlite3_stmt *s, int col) {
  const unsigned char *t = sqlite3_column_text(s, col);
  return t ? strdup((const char *)t) : NULL;
}

int lpq_store_sensitivity_get(lpq_store_t *st, int64_t job, lpq_store_sensitivity_t *out,
                              lpq_error_t *err) {
  if (!st || !out)
    return lpq_errorf(err, LPQ_EINVAL, "store: sensitivity: get: missing store or output");
  memset(out, 0, sizeof *out);
  sqlite3_stmt *s = NULL;
  int rc = sqlite3_prepare_v2(st->db,
                              "SELECT count(DISTINCT layer), max(layer), min(bits), max(bits) "
                              "FROM sensitivity WHERE job = ?1",
                              -1, &s, NULL);
  if (rc != SQLITE_OK)
    return lpq__store_fail(st, rc, "sensitivity", "get", err);
  sqlite3_bind_int64(s, 1, job);
  if ((rc = sqlite3_step(s)) != SQLITE_ROW) {
    sqlite3_finalize(s);
    return lpq__store_fail(st, rc, "sensitivity", "get", err);
  }
  if (sqlite3_column_int64(s, 0) == 0) {
    sqlite3_finalize(s);
    return lpq_errorf(err, LPQ_ENOTFOUND, "store: sensitivity: job %lld has none stored",
                      (long long)job);
  }
  out->layers = (size_t)sqlite3_column_int64(s, 1) + 1;
  out->bits_lo = sqlite3_column_int(s, 2);
  out->bits_hi = sqlite3_column_int(s, 3);
  sqlite3_finalize(s);
  s = NULL;
  if (alloc_matrix(out) != 0) {
    lpq_store_sensitivity_clear(out);
    return lpq_errorf(err, LPQ_ENOMEM, "store: sensitivity: get: out of memory");
  }
  rc = sqlite3_prepare_v2(st->db,
                          "SELECT layer, layer_name, bits, delta_l_co, top1, weights, format "
                          "FROM sensitivity WHERE job = ?1 ORDER BY layer, bits",
                          -1, &s, NULL);
  if (rc == SQLITE_OK)
    sqlite3_bind_int64(s, 1, job);
  const size_t widths = widths_of(out);
  int ret = 0;
  while (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
    size_t l = (size_t)sqlite3_column_int64(s, 0);
    size_t k = l * widths + (size_t)(sqlite3_column_int(s, 2) - out->bits_lo);
    if (!out->names[l] && !(out->names[l] = column_dup(s, 1)))
      ret = LPQ_ENOMEM;
    out->delta_l_co[k] = lpq__store_column_double(s, 3);
    out->top1[k] = lpq__store_column_double(s, 4);
    out->weights[l] = (size_t)sqlite3_column_int64(s, 5);
    if (sqlite3_column_type(s, 6) != SQLITE_NULL && !(out->formats[k] = column_dup(s, 6)))
      ret = LPQ_ENOMEM;
    rc = SQLITE_OK;
  }
  sqlite3_finalize(s);
  if (ret == 0 && rc != SQLITE_DONE)
    ret = lpq__store_fail(st, rc, "sensitivity", "get", err);
  else if (ret != 0)
    lpq_errorf(err, ret, "store: sensitivity: get: out of memory");
  for (size_t l = 0; ret == 0 && l < out->layers; l++)
    if (!out->names[l] && !(out->names[l] = strdup("")))
      ret = lpq_errorf(err, LPQ_ENOMEM, "store: sensitivity: get: out of memory");
  if (ret != 0)
    lpq_store_sensitivity_clear(out);
  return ret;
}
