/*
** coordinator/store/best.c: v_best_config's answer for a range of a job's generations, so that
** job.get's "best" can be kept up to date one committed generation at a time (the view itself
** reads every generation of the job: a quarter of a second at 100,000 individuals).
*/
#include "coordinator/store/store_internal.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>

/* The view's selection (schema/store_v1.sql, v_best_config: feasible, the job's constraints,
** ordered by the job's objective, then generation, then genome), on generations after ?2 up
** to ?3 of job ?1 only: its individuals are read through the primary key (job, generation).
** tests/test_store_views.c checks it against the view. */
static const char best_sql[] =
    "WITH l AS (SELECT id AS job, coalesce(json_extract(settings, '$.mode'), 'pareto') AS mode,"
    " json_extract(settings, '$.constraints.mean_weight_bits_max') AS wbits_max,"
    " json_extract(settings, '$.constraints.mean_act_bits_max') AS abits_max,"
    " json_extract(settings, '$.constraints.latency_s_max') AS latency_max,"
    " json_extract(settings, '$.constraints.energy_pj_max') AS energy_max,"
    " json_extract(settings, '$.constraints.edp_js_max') AS edp_max,"
    " json_extract(settings, '$.constraints.top1_min') AS top1_min FROM jobs WHERE id = ?1) "
    "SELECT l.mode, i.generation, i.genome, i.l_co, i.l_cr, i.l_f, e.mean_weight_bits,"
    " e.mean_act_bits, e.top1, e.latency_s, e.energy_pj, e.edp_js "
    "FROM l JOIN individuals AS i ON i.job = l.job AND i.generation > ?2 AND i.generation <= ?3 "
    "JOIN evaluations AS e ON e.job = i.job AND e.genome = i.genome "
    "WHERE e.status = 0 AND i.violation <= 0"
    " AND CASE l.mode WHEN 'scalar' THEN i.l_f ELSE i.l_co END IS NOT NULL"
    " AND (l.wbits_max IS NULL OR e.mean_weight_bits <= l.wbits_max)"
    " AND (l.abits_max IS NULL OR e.mean_act_bits <= l.abits_max)"
    " AND (l.latency_max IS NULL OR e.latency_s <= l.latency_max)"
    " AND (l.energy_max IS NULL OR e.energy_pj <= l.energy_max)"
    " AND (l.edp_max IS NULL OR e.edp_js <= l.edp_max)"
    " AND (l.top1_min IS NULL OR e.top1 >= l.top1_min) "
    "ORDER BY CASE l.mode WHEN 'scalar' THEN i.l_f ELSE i.l_co END, i.generation, i.genome "
    "LIMIT 1";

int lpq_store_best_json(lpq_store_t *st, int64_t job, int64_t after, int64_t upto, char **json,
                        lpq_error_t *err) {
  if (st == NULL || json == NULL)
    return lpq_errorf(err, LPQ_EINVAL, "store: best: missing store or output");
  *json = NULL;
  sqlite3_stmt *s;
  int ret = lpq__store_stmt(st, STMT_BEST, best_sql, "individuals", "best", &s, err);
  if (ret != 0)
    return ret;
  sqlite3_bind_int64(s, 1, job);
  sqlite3_bind_int64(s, 2, after);
  sqlite3_bind_int64(s, 3, upto);
  int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) {
    json_t *o = json_object();
    for (int c = 0; o && c < sqlite3_column_count(s); c++) {
      json_t *v;
      switch (sqlite3_column_type(s, c)) {
      case SQLITE_INTEGER: v = json_integer((json_int_t)sqlite3_column_int64(s, c)); break;
      case SQLITE_FLOAT: {
        double x = sqlite3_column_double(s, c);
        v = isfinite(x) ? json_real(x) : json_null();
        break;
      }
      case SQLITE_TEXT: v = json_string((const char *)sqlite3_column_text(s, c)); break;
      default: v = json_null();
      }
      json_object_set_new(o, sqlite3_column_name(s, c), v);
    }
    *json = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    ret = *json ? 0 : lpq_errorf(err, LPQ_ENOMEM, "out of memory");
  } else if (rc != SQLITE_DONE) {
    ret = lpq__store_fail(st, rc, "individuals", "best", err);
  }
  sqlite3_reset(s);
  return ret;
}
