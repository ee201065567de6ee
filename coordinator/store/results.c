/*
** coordinator/store/results.c: what the search produces: evaluations (committed in batches,
** looked up by (job, genome) for the replay) and generations with their population.
*/
#include "coordinator/store/store_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- evaluations ----------------------------------------------------------------------- */

static int eval_insert(lpq_store_t *st, sqlite3_stmt *s, const lpq_store_eval_t *e, double now,
                       int *added, lpq_error_t *err) {
  char hex[17];
  lpq__store_hash_hex(e->genome_hash, hex);
  sqlite3_bind_int64(s, 1, e->job);
  sqlite3_bind_text(s, 2, hex, 16, SQLITE_TRANSIENT);
  sqlite3_bind_int(s, 3, e->status);
  lpq__store_bind_text(s, 4, e->error);
  lpq__store_bind_text(s, 5, e->worker);
  lpq__store_bind_double(s, 6, e->l_co);
  lpq__store_bind_double(s, 7, e->l_co_global);
  lpq__store_bind_double(s, 8, e->l_co_local);
  lpq__store_bind_double(s, 9, e->l_cr);
  lpq__store_bind_double(s, 10, e->mean_weight_bits);
  lpq__store_bind_double(s, 11, e->mean_act_bits);
  lpq__store_bind_double(s, 12, e->top1);
  lpq__store_bind_double(s, 13, e->latency_s);
  lpq__store_bind_double(s, 14, e->energy_pj);
  lpq__store_bind_double(s, 15, e->edp_js);
  lpq__store_bind_double(s, 16, e->eval_ms);
  lpq__store_bind_text(s, 17, e->genome_json);
  sqlite3_bind_double(s, 18, now);
  int rc = sqlite3_step(s);
  int ret = 0;
  if (rc == SQLITE_DONE)
    *added = sqlite3_changes(st->db) > 0;
  else if ((rc & 0xff) == SQLITE_CONSTRAINT)
    ret = lpq_errorf(err, LPQ_EINVAL, "store: evaluations: commit: genome %s of job %lld: %s",
                     hex, (long long)e->job,
                     rc == SQLITE_CONSTRAINT_FOREIGNKEY ? "no such job" : sqlite3_errmsg(st->db));
  else
    ret = lpq__store_fail(st, rc, "evaluations", "commit", err);
  sqlite3_reset(s);
  return ret;
}

/* Adds n to a counter row: jobs.evaluations_stored or workers.evaluations_done. */
static int add_count(lpq_store_t *st, store_stmt_id_t id, const char *sql, const char *table,
                     sqlite3_int64 job, const char *worker, size_t n, lpq_error_t *err) {
  sqlite3_stmt *s;
  int ret = lpq__store_stmt(st, id, sql, table, "count evaluations", &s, err);
  if (ret != 0)
    return ret;
  if (worker != NULL)
    sqlite3_bind_text(s, 1, worker, -1, SQLITE_STATIC);
  else
    sqlite3_bind_int64(s, 1, job);
  sqlite3_bind_int64(s, 2, (sqlite3_int64)n);
  int rc = sqlite3_step(s);
  if (rc != SQLITE_DONE)
    ret = lpq__store_fail(st, rc, table, "count evaluations", err);
  sqlite3_reset(s);
  return ret;
}

#define WORKER_ADD_DONE_SQL \
  "UPDATE workers SET evaluations_done = evaluations_done + ?2 WHERE id = ?1"

typedef struct worker_count_t {
  const char *worker;
  size_t count;
} worker_count_t;

/* Adds one to worker's entry (a batch holds few distinct workers: a linear search). */
static void count_worker(worker_count_t *w, size_t *n, const char *worker) {
  for (size_t k = *n; k-- > 0;)
    if (strcmp(w[k].worker, worker) == 0) {
      w[k].count++;
      return;
    }
  w[(*n)++] = (worker_count_t){worker, 1};
}

int lpq_store_eval_commit(lpq_store_t *st, const lpq_store_eval_t *evals, size_t count,
                          size_t *inserted, lpq_error_t *err) {
  if (inserted != NULL)
    *inserted = 0;
  if (st == NULL || (evals == NULL && count > 0))
    return lpq_errorf(err, LPQ_EINVAL, "store: evaluations: commit: missing store or rows");
  if (count == 0)
    return 0;
  sqlite3_stmt *s;
  int ret = lpq__store_stmt(st, STMT_EVAL_INSERT,
                       "INSERT INTO evaluations (job, genome, status, error, worker, l_co, "
                       "l_co_global, l_co_local, l_cr, mean_weight_bits, mean_act_bits, top1, "
                       "latency_s, energy_pj, edp_js, eval_ms, genome_json, finished) "
                       "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, "
                       "?15, ?16, ?17, ?18) ON CONFLICT (job, genome) DO NOTHING",
                       "evaluations", "commit", &s, err);
  if (ret != 0 || (ret = lpq__store_begin(st, "evaluations", "commit", err)) != 0)
    return ret;
  double now = lpq__store_now();
  size_t added_total = 0, run_added = 0;
  /* new rows per worker, so that each worker's counter is updated once per batch (with 100
  ** workers an UPDATE per row cost as much as the row itself); NULL: count row by row */
  worker_count_t *per_worker = malloc(count * sizeof *per_worker);
  size_t nworkers = 0;
  for (size_t i = 0; i < count && ret == 0; i++) {
    int added = 0;
    ret = eval_insert(st, s, &evals[i], now, &added, err);
    if (ret != 0)
      break;
    added_total += (size_t)added;
    run_added += (size_t)added;
    if (added && evals[i].worker[0] != '\0') {
      if (per_worker != NULL)
        count_worker(per_worker, &nworkers, evals[i].worker);
      else
        ret = add_count(st, STMT_WORKER_ADD_DONE, WORKER_ADD_DONE_SQL, "workers", 0,
                        evals[i].worker, 1, err);
    }
    /* One counter update per run of rows of the same job. */
    if (ret == 0 && run_added > 0 && (i + 1 == count || evals[i + 1].job != evals[i].job)) {
      ret = add_count(st, STMT_JOB_STORED_ADD,
                      "UPDATE jobs SET evaluations_stored = evaluations_stored + ?2 "
                      "WHERE id = ?1",
                      "jobs", evals[i].job, NULL, run_added, err);
      run_added = 0;
    }
  }
  for (size_t k = 0; k < nworkers && ret == 0; k++)
    ret = add_count(st, STMT_WORKER_ADD_DONE, WORKER_ADD_DONE_SQL, "workers", 0,
                    per_worker[k].worker, per_worker[k].count, err);
  free(per_worker);
  ret = lpq__store_end(st, ret, "evaluations", "commit", err);
  if (ret == 0 && inserted != NULL)
    *inserted = added_total;
  return ret;
}

int lpq_store_eval_get(lpq_store_t *st, int64_t job, uint64_t genome_hash,
                       lpq_store_eval_t *out, lpq_error_t *err) {
  if (st == NULL || out == NULL)
    return lpq_errorf(err, LPQ_EINVAL, "store: evaluations: get: missing store or output");
  sqlite3_stmt *s;
  int ret = lpq__store_stmt(st, STMT_EVAL_GET,
                       "SELECT status, error, worker, l_co, l_co_global, l_co_local, l_cr, "
                       "mean_weight_bits, mean_act_bits, top1, latency_s, energy_pj, edp_js, "
                       "eval_ms, finished FROM evaluations WHERE job = ?1 AND genome = ?2",
                       "evaluations", "get", &s, err);
  if (ret != 0)
    return ret;
  char hex[17];
  lpq__store_hash_hex(genome_hash, hex);
  sqlite3_bind_int64(s, 1, job);
  sqlite3_bind_text(s, 2, hex, 16, SQLITE_STATIC);
  int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) {
    memset(out, 0, sizeof *out);
    out->job = job;
    out->genome_hash = genome_hash;
    out->status = sqlite3_column_int(s, 0);
    lpq__store_column_text(s, 1, out->error, sizeof out->error);
    lpq__store_column_text(s, 2, out->worker, sizeof out->worker);
    double *fields[] = {&out->l_co,          &out->l_co_global,      &out->l_co_local,
                        &out->l_cr,          &out->mean_weight_bits, &out->mean_act_bits,
                        &out->top1,          &out->latency_s,        &out->energy_pj,
                        &out->edp_js,        &out->eval_ms,          &out->finished};
    for (int i = 0; i < (int)(sizeof fields / sizeof fields[0]); i++)
      *fields[i] = lpq__store_column_double(s, 3 + i);
  } else if (rc == SQLITE_DONE) {
    ret = lpq_errorf(err, LPQ_ENOTFOUND, "store: evaluations: get: job %lld has no result for "
                     "genome %s", (long long)job, hex);
  } else {
    ret = lpq__store_fail(st, rc, "evaluations", "get", err);
  }
  sqlite3_reset(s);
  return ret;
}

int lpq_store_eval_count(lpq_store_t *st, int64_t job, size_t *count, lpq_error_t *err) {
  if (st == NULL || count == NULL)
    return lpq_errorf(err, LPQ_EINVAL, "store: evaluations: count: missing store or output");
  sqlite3_stmt *s;
  int ret = lpq__store_stmt(st, STMT_EVAL_COUNT, "SELECT count(*) FROM evaluations WHERE job = ?1",
                       "evaluations", "count", &s, err);
  if (ret != 0)
    return ret;
  sqlite3_bind_int64(s, 1, job);
  int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW)
    *count = (size_t)sqlite3_column_int64(s, 0);
  else
    ret = lpq__store_fail(st, rc, "evaluations", "count", err);
  sqlite3_reset(s);
  return ret;
}

/* ---- generations ----------------------------------------------------------------------- */

static int step_done(lpq_store_t *st, sqlite3_stmt *s, const char *table, const char *op,
                     lpq_error_t *err) {
  int rc = sqlite3_step(s);
  int ret = rc == SQLITE_DONE ? 0 : lpq__store_fail(st, rc, table, op, err);
  sqlite3_reset(s);
  return ret;
}

static int generation_row(lpq_store_t *st, const lpq_store_generation_t *g, double now,
                          lpq_error_t *err) {
  sqlite3_stmt *s;
  int ret = lpq__store_stmt(st, STMT_GEN_DELETE,
                       "DELETE FROM generations WHERE job = ?1 AND number = ?2", "generations",
                       "commit", &s, err);
  if (ret != 0)
    return ret;
  sqlite3_bind_int64(s, 1, g->job);
  sqlite3_bind_int64(s, 2, (sqlite3_int64)g->number);
  if ((ret = step_done(st, s, "generations", "commit", err)) != 0)
    return ret;
  ret = lpq__store_stmt(st, STMT_GEN_INSERT,
                   "INSERT INTO generations (job, number, evaluations, new_evaluations, failed, "
                   "best_l_co, best_l_f, hypervolume, front_size, elapsed_s, time) "
                   "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                   "generations", "commit", &s, err);
  if (ret != 0)
    return ret;
  sqlite3_bind_int64(s, 1, g->job);
  sqlite3_bind_int64(s, 2, (sqlite3_int64)g->number);
  sqlite3_bind_int64(s, 3, (sqlite3_int64)g->evaluations);
  sqlite3_bind_int64(s, 4, (sqlite3_int64)g->new_evaluations);
  sqlite3_bind_int64(s, 5, (sqlite3_int64)g->failed);
  lpq__store_bind_double(s, 6, g->best_l_co);
  lpq__store_bind_double(s, 7, g->best_l_f);
  lpq__store_bind_double(s, 8, g->hypervolume);
  sqlite3_bind_int64(s, 9, (sqlite3_int64)g->front_size);
  sqlite3_bind_double(s, 10, isnan(g->elapsed_s) ? 0.0 : g->elapsed_s);
  sqlite3_bind_double(s, 11, now);
  int rc = sqlite3_step(s);
  if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
    ret = lpq_errorf(err, LPQ_EINVAL, "store: generations: commit: no job %lld",
                     (long long)g->job);
  else if (rc != SQLITE_DONE)
    ret = lpq__store_fail(st, rc, "generations", "commit", err);
  sqlite3_reset(s);
  return ret;
}

static int individual_row(lpq_store_t *st, const lpq_store_generation_t *g,
                          const lpq_store_individual_t *ind, size_t index, lpq_error_t *err) {
  if (ind->genome_json == NULL)
    return lpq_errorf(err, LPQ_EINVAL, "store: individuals: commit: individual %zu of job %lld "
                      "generation %zu has no genome_json", index, (long long)g->job, g->number);
  sqlite3_stmt *s;
  int ret = lpq__store_stmt(st, STMT_IND_INSERT,
                       "INSERT INTO individuals (job, generation, genome, genome_json, l_co, "
                       "l_cr, l_f, violation, rank, crowding, in_front) "
                       "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                       "individuals", "commit", &s, err);
  if (ret != 0)
    return ret;
  char hex[17];
  lpq__store_hash_hex(ind->genome_hash, hex);
  sqlite3_bind_int64(s, 1, g->job);
  sqlite3_bind_int64(s, 2, (sqlite3_int64)g->number);
  sqlite3_bind_text(s, 3, hex, 16, SQLITE_STATIC);
  sqlite3_bind_text(s, 4, ind->genome_json, -1, SQLITE_STATIC);
  lpq__store_bind_double(s, 5, ind->l_co);
  lpq__store_bind_double(s, 6, ind->l_cr);
  lpq__store_bind_double(s, 7, ind->l_f);
  sqlite3_bind_double(s, 8, isnan(ind->violation) ? INFINITY : ind->violation);
  sqlite3_bind_int64(s, 9, (sqlite3_int64)ind->rank);
  lpq__store_bind_double(s, 10, ind->crowding);
  sqlite3_bind_int(s, 11, ind->in_front != 0);
  int rc = sqlite3_step(s);
  if ((rc & 0xff) == SQLITE_CONSTRAINT)
    ret = lpq_errorf(err, LPQ_EINVAL, "store: individuals: commit: individual %zu (genome %s) "
                     "of job %lld generation %zu: %s", index, hex, (long long)g->job, g->number,
                     rc == SQLITE_CONSTRAINT_PRIMARYKEY ? "the genome appears twice"
                     : rc == SQLITE_CONSTRAINT_CHECK    ? "genome_json is not valid JSON"
                                                        : sqlite3_errmsg(st->db));
  else if (rc != SQLITE_DONE)
    ret = lpq__store_fail(st, rc, "individuals", "commit", err);
  sqlite3_reset(s);
  return ret;
}

static int job_progress(lpq_store_t *st, const lpq_store_generation_t *g, double now,
                        lpq_error_t *err) {
  sqlite3_stmt *s;
  int ret = lpq__store_stmt(st, STMT_JOB_PROGRESS,
                       "UPDATE jobs SET generation = ?2, evaluations = ?3, best_l_co = ?4, "
                       "best_l_f = ?5, hypervolume = ?6, front_size = ?7, updated = ?8 "
                       "WHERE id = ?1 AND (generation IS NULL OR generation <= ?2)",
                       "jobs", "progress", &s, err);
  if (ret != 0)
    return ret;
  sqlite3_bind_int64(s, 1, g->job);
  sqlite3_bind_int64(s, 2, (sqlite3_int64)g->number);
  sqlite3_bind_int64(s, 3, (sqlite3_int64)g->evaluations);
  lpq__store_bind_double(s, 4, g->best_l_co);
  lpq__store_bind_double(s, 5, g->best_l_f);
  lpq__store_bind_double(s, 6, g->hypervolume);
  sqlite3_bind_int64(s, 7, (sqlite3_int64)g->front_size);
  sqlite3_bind_double(s, 8, now);
  return step_done(st, s, "jobs", "progress", err);
}

int lpq_store_generation_commit(lpq_store_t *st, const lpq_store_generation_t *gen,
                                const lpq_store_individual_t *individuals, size_t count,
                                lpq_error_t *err) {
  if (st == NULL || gen == NULL || (individuals == NULL && count > 0))
    return lpq_errorf(err, LPQ_EINVAL, "store: generations: commit: missing store or rows");
  int ret = lpq__store_begin(st, "generations", "commit", err);
  if (ret != 0)
    return ret;
  double now = lpq__store_now();
  ret = generation_row(st, gen, now, err);
  for (size_t i = 0; ret == 0 && i < count; i++)
    ret = individual_row(st, gen, &individuals[i], i, err);
  if (ret == 0)
    ret = job_progress(st, gen, now, err);
  return lpq__store_end(st, ret, "generations", "commit", err);
}

int lpq_store_generation_write(lpq_store_t *st, lpq_store_generation_rows_t *rows,
                               size_t max_rows, int *done, lpq_error_t *err) {
  if (st == NULL || rows == NULL || done == NULL)
    return lpq_errorf(err, LPQ_EINVAL, "store: generations: commit: missing store or rows");
  *done = 0;
  int ret = lpq__store_begin(st, "generations", "commit", err);
  if (ret != 0)
    return ret;
  double now = lpq__store_now();
  /* the row first (the individuals reference it): replacing it removes, by the cascade, the
  ** rows an interrupted write left, or the generation an earlier run stored */
  if (rows->next == 0)
    ret = generation_row(st, &rows->gen, now, err);
  size_t i = rows->next, end = rows->count - i > max_rows ? i + max_rows : rows->count;
  for (; ret == 0 && i < end; i++)
    ret = individual_row(st, &rows->gen, &rows->ind[i], i, err);
  if (ret == 0 && end == rows->count)
    ret = job_progress(st, &rows->gen, now, err);
  ret = lpq__store_end(st, ret, "generations", "commit", err);
  if (ret == 0) {
    rows->next = end;
    *done = end == rows->count;
  }
  return ret;
}
