/* coordinator/store/pick.c: a job's accuracy-aware pick (schema/store_v3.sql): the final
** front scored on the job's validation set, written once per job in one transaction (replacing
** an earlier run's), read back whole. Called once per job: statements are prepared per call. */
#include "coordinator/store/store_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int lpq_store_pick_put(lpq_store_t *st, int64_t job, const lpq_store_pick_t *rows, size_t n,
                       const char *rule, lpq_error_t *err) {
  if (!st || !rows || n == 0)
    return lpq_errorf(err, LPQ_EINVAL, "store: picks: put: no rows");
  sqlite3_stmt *del = NULL, *ins = NULL;
  int ret = lpq__store_begin(st, "picks", "put", err);
  if (ret != 0)
    return ret;
  int rc = sqlite3_prepare_v2(st->db, "DELETE FROM picks WHERE job = ?1", -1, &del, NULL);
  if (rc == SQLITE_OK)
    rc = sqlite3_prepare_v2(st->db,
                            "INSERT INTO picks (job, member, genome, l_co, l_cr, "
                            "mean_weight_bits, top1_val, chosen, rule) VALUES (?1, ?2, ?3, ?4, "
                            "?5, ?6, ?7, ?8, ?9)",
                            -1, &ins, NULL);
  if (rc == SQLITE_OK) {
    sqlite3_bind_int64(del, 1, job);
    rc = sqlite3_step(del);
    rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
  }
  for (size_t i = 0; rc == SQLITE_OK && i < n; i++) {
    const lpq_store_pick_t *r = &rows[i];
    sqlite3_bind_int64(ins, 1, job);
    sqlite3_bind_int64(ins, 2, r->member);
    lpq__store_bind_text(ins, 3, r->member < 0 || !r->genome[0] ? NULL : r->genome);
    lpq__store_bind_double(ins, 4, r->l_co);
    lpq__store_bind_double(ins, 5, r->l_cr);
    lpq__store_bind_double(ins, 6, r->mean_weight_bits);
    lpq__store_bind_double(ins, 7, r->top1_val);
    sqlite3_bind_int(ins, 8, r->chosen ? 1 : 0);
    lpq__store_bind_text(ins, 9, rule);
    rc = sqlite3_step(ins);
    rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
    sqlite3_reset(ins);
    sqlite3_clear_bindings(ins);
  }
  if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
    ret = lpq_errorf(err, LPQ_EINVAL, "store: picks: put: no job %lld", (long long)job);
  else if (rc != SQLITE_OK)
    ret = lpq__store_fail(st, rc, "picks", "put", err);
  sqlite3_finalize(del);
  sqlite3_finalize(ins);
  return lpq__store_end(st, ret, "picks", "put", err);
}

static double column_double(sqlite3_stmt *s, int col) {
  return sqlite3_column_type(s, col) == SQLITE_NULL ? NAN : sqlite3_column_double(s, col);
}

int lpq_store_pick_get(lpq_store_t *st, int64_t job, lpq_store_pick_t **rows, size_t *n,
                       char rule[LPQ_STORE_TEXT_MAX], lpq_error_t *err) {
  if (!st || !rows || !n)
    return lpq_errorf(err, LPQ_EINVAL, "store: picks: get: missing store or output");
  *rows = NULL;
  *n = 0;
  if (rule)
    rule[0] = 0;
  sqlite3_stmt *s = NULL;
  int rc = sqlite3_prepare_v2(st->db,
                              "SELECT member, genome, l_co, l_cr, mean_weight_bits, top1_val, "
                              "chosen, rule FROM picks WHERE job = ?1 ORDER BY member",
                              -1, &s, NULL);
  if (rc != SQLITE_OK)
    return lpq__store_fail(st, rc, "picks", "get", err);
  sqlite3_bind_int64(s, 1, job);
  size_t cap = 0;
  lpq_store_pick_t *out = NULL;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    if (*n == cap) {
      cap = cap ? 2 * cap : 16;
      lpq_store_pick_t *g = realloc(out, cap * sizeof *out);
      if (!g) {
        free(out);
        sqlite3_finalize(s);
        return lpq_errorf(err, LPQ_ENOMEM, "store: picks: get: out of memory");
      }
      out = g;
    }
    lpq_store_pick_t *r = &out[(*n)++];
    memset(r, 0, sizeof *r);
    r->member = sqlite3_column_int64(s, 0);
    const unsigned char *g = sqlite3_column_text(s, 1);
    snprintf(r->genome, sizeof r->genome, "%s", g ? (const char *)g : "");
    r->l_co = column_double(s, 2);
    r->l_cr = column_double(s, 3);
    r->mean_weight_bits = column_double(s, 4);
    r->top1_val = column_double(s, 5);
    r->chosen = sqlite3_column_int(s, 6) != 0;
    const unsigned char *t = sqlite3_column_text(s, 7);
    if (rule && t && !rule[0])
      snprintf(rule, LPQ_STORE_TEXT_MAX, "%s", (const char *)t);
  }
  sqlite3_finalize(s);
  if (rc != SQLITE_DONE) {
    free(out);
    *n = 0;
    return lpq__store_fail(st, rc, "picks", "get", err);
  }
  if (*n == 0)
    return lpq_errorf(err, LPQ_ENOTFOUND, "store: picks: job %lld has none", (long long)job);
  *rows = out;
  return 0;
}
