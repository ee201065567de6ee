/* tests/test_store_views.c: the documented views, on rows inserted through the store's API:
** v_pareto (the latest front of each job), v_generation_stats (per generation, with evals/s)
** and v_best_config (scalar mode by L_F, Pareto mode by L_CO among the genomes meeting the
** job's constraints). */
#include "coordinator/store/store_internal.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmp_dir[256];
static char db_path[300];
static lpq_store_t *st;
static sqlite3 *reader;

static void setup(void) {
  const char *base = getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp";
  snprintf(tmp_dir, sizeof tmp_dir, "%s/lpq-views-XXXXXX", base);
  cr_assert_not_null(mkdtemp(tmp_dir));
  snprintf(db_path, sizeof db_path, "%s/lpq.db", tmp_dir);
  lpq_error_t err = {0};
  st = lpq_store_open(db_path, &err);
  cr_assert_not_null(st, "%s", err.msg);
  cr_assert_eq(sqlite3_open_v2(db_path, &reader, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
}

static void teardown(void) {
  sqlite3_close(reader);
  lpq_store_close(&st);
  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
  cr_assert_eq(system(cmd), 0);
}

TestSuite(store_views, .init = setup, .fini = teardown);

/* A genome of the test: hash h, objectives (l_co, l_cr), weight bits, violation. */
typedef struct member_t {
  uint64_t hash;
  double l_co, l_cr, wbits, violation;
  int in_front;
} member_t;

static const char *genome_json = "[{\"w\": \"lp<4,1,3,0>\", \"a\": \"lp<6,1,5,0>\"}]";

/* Stores the members' evaluations and commits them as generation `number`. */
static void commit_generation(int64_t job, size_t number, const member_t *m, size_t count,
                              double elapsed_s, size_t evaluations) {
  lpq_store_eval_t ev[16];
  lpq_store_individual_t ind[16];
  cr_assert_leq(count, 16);
  double best = INFINITY;
  size_t front = 0;
  for (size_t i = 0; i < count; i++) {
    memset(&ev[i], 0, sizeof ev[i]);
    ev[i].job = job;
    ev[i].genome_hash = m[i].hash;
    ev[i].l_co = m[i].l_co;
    ev[i].l_cr = m[i].l_cr;
    ev[i].mean_weight_bits = m[i].wbits;
    ev[i].mean_act_bits = 8;
    ev[i].top1 = 0.7;
    ev[i].latency_s = ev[i].energy_pj = ev[i].edp_js = NAN;
    ind[i] = (lpq_store_individual_t){.genome_hash = m[i].hash,
                                      .genome_json = genome_json,
                                      .l_co = m[i].l_co,
                                      .l_cr = m[i].l_cr,
                                      .l_f = m[i].l_co * m[i].l_cr,
                                      .violation = m[i].violation,
                                      .rank = m[i].in_front ? 0 : 1,
                                      .crowding = 1.0,
                                      .in_front = m[i].in_front};
    if (m[i].violation <= 0 && m[i].l_co < best)
      best = m[i].l_co;
    front += (size_t)m[i].in_front;
  }
  lpq_error_t err = {0};
  cr_assert_eq(lpq_store_eval_commit(st, ev, count, NULL, &err), 0, "%s", err.msg);
  lpq_store_generation_t g = {.job = job,
                              .number = number,
                              .evaluations = evaluations,
                              .new_evaluations = count,
                              .best_l_co = best,
                              .best_l_f = NAN,
                              .hypervolume = 0.1 * (double)(number + 1),
                              .front_size = front,
                              .elapsed_s = elapsed_s};
  cr_assert_eq(lpq_store_generation_commit(st, &g, ind, count, &err), 0, "%s", err.msg);
}

static sqlite3_stmt *query(const char *sql) {
  sqlite3_stmt *s;
  cr_assert_eq(sqlite3_prepare_v2(reader, sql, -1, &s, NULL), SQLITE_OK, "%s: %s", sql,
               sqlite3_errmsg(reader));
  return s;
}

Test(store_views, v_pareto_is_the_latest_front_of_each_job) {
  int64_t a, b;
  cr_assert_eq(lpq_store_job_insert(st, "a", "{}", &a, NULL), 0);
  cr_assert_eq(lpq_store_job_insert(st, "b", "{}", &b, NULL), 0);
  member_t g0[3] = {{1, 0.9, 0.2, 4, 0, 1}, {2, 0.5, 0.4, 6, 0, 1}, {3, 0.8, 0.5, 6, 0, 0}};
  member_t g1[3] = {{1, 0.9, 0.2, 4, 0, 1}, {4, 0.3, 0.3, 5, 0, 1}, {2, 0.5, 0.4, 6, 0, 0}};
  commit_generation(a, 0, g0, 3, 1.0, 3);
  commit_generation(a, 1, g1, 3, 2.0, 4);
  member_t other[1] = {{9, 2.0, 0.1, 3, 0, 1}};
  commit_generation(b, 0, other, 1, 1.0, 1);

  sqlite3_stmt *s = query("SELECT job, generation, genome, l_co, l_cr, mean_weight_bits, "
                          "genome_json FROM v_pareto");
  struct { int64_t job; int gen; const char *genome; double l_co; } want[] = {
      {a, 1, "0000000000000004", 0.3}, {a, 1, "0000000000000001", 0.9},
      {b, 0, "0000000000000009", 2.0}};
  for (size_t i = 0; i < 3; i++) {
    cr_assert_eq(sqlite3_step(s), SQLITE_ROW, "row %zu", i);
    cr_assert_eq(sqlite3_column_int64(s, 0), want[i].job);
    cr_assert_eq(sqlite3_column_int(s, 1), want[i].gen);
    cr_assert_str_eq((const char *)sqlite3_column_text(s, 2), want[i].genome);
    cr_assert_eq(sqlite3_column_double(s, 3), want[i].l_co);
    cr_assert_str_eq((const char *)sqlite3_column_text(s, 6), genome_json);
  }
  cr_assert_eq(sqlite3_step(s), SQLITE_DONE);
  sqlite3_finalize(s);
}

Test(store_views, v_generation_stats_rates) {
  int64_t a;
  cr_assert_eq(lpq_store_job_insert(st, "a", "{}", &a, NULL), 0);
  member_t g[4] = {{1, 0.9, 0.2, 4, 0, 1}, {2, 0.5, 0.4, 6, 0, 1}, {3, 0.8, 0.5, 6, 0, 0},
                   {4, 0.4, 0.5, 6, 1, 0}};
  commit_generation(a, 0, g, 4, 2.0, 4);     /* 4 in 2 s */
  commit_generation(a, 1, g + 1, 3, 2.5, 7); /* 3 in 0.5 s */
  commit_generation(a, 2, g + 2, 2, 2.5, 9); /* no time: NULL rate */
  sqlite3_stmt *s = query("SELECT generation, evaluations, new_evaluations, best_l_co, "
                          "hypervolume, front_size, evals_per_s FROM v_generation_stats "
                          "WHERE job = 1");
  double rate[3] = {2.0, 6.0, NAN};
  double best[3] = {0.5, 0.5, 0.8};
  size_t evals[3] = {4, 7, 9};
  for (int i = 0; i < 3; i++) {
    cr_assert_eq(sqlite3_step(s), SQLITE_ROW);
    cr_assert_eq(sqlite3_column_int(s, 0), i);
    cr_assert_eq((size_t)sqlite3_column_int64(s, 1), evals[i]);
    cr_assert_eq(sqlite3_column_double(s, 3), best[i]);
    cr_assert_float_eq(sqlite3_column_double(s, 4), 0.1 * (i + 1), 1e-12);
    if (isnan(rate[i]))
      cr_assert_eq(sqlite3_column_type(s, 6), SQLITE_NULL);
    else
      cr_assert_float_eq(sqlite3_column_double(s, 6), rate[i], 1e-9);
  }
  cr_assert_eq(sqlite3_step(s), SQLITE_DONE);
  sqlite3_finalize(s);
}

Test(store_views, v_best_config_by_the_jobs_objective) {
  int64_t pareto, scalar, tight;
  cr_assert_eq(lpq_store_job_insert(st, "p", "{\"mode\": \"pareto\", \"objective\": \"bits\", "
                                    "\"constraints\": {\"mean_weight_bits_max\": 4.5}}",
                                    &pareto, NULL),
               0);
  cr_assert_eq(lpq_store_job_insert(st, "s", "{\"mode\": \"scalar\", \"lambda\": 1}", &scalar,
                                    NULL),
               0);
  cr_assert_eq(lpq_store_job_insert(st, "t", "{\"constraints\": {\"mean_weight_bits_max\": 1}}",
                                    &tight, NULL),
               0);
  /* Pareto: genome 2 has the lowest L_CO but 6 bits > 4.5; genome 5 is infeasible by the
  ** search's own violation; genome 4 (0.6, 4 bits) is the answer. */
  member_t p[4] = {{1, 0.9, 0.2, 4, 0, 1}, {2, 0.1, 0.9, 6, 0, 1}, {4, 0.6, 0.3, 4, 0, 1},
                   {5, 0.2, 0.3, 3, 0.5, 0}};
  commit_generation(pareto, 0, p, 4, 1.0, 4);
  /* Scalar: L_F = L_CO * L_CR: 0.9 * 0.2 = 0.18, 0.5 * 0.5 = 0.25, 0.3 * 0.9 = 0.27. */
  member_t sc[3] = {{1, 0.9, 0.2, 4, 0, 1}, {2, 0.5, 0.5, 6, 0, 1}, {3, 0.3, 0.9, 6, 0, 1}};
  commit_generation(scalar, 0, sc, 3, 1.0, 3);
  commit_generation(tight, 0, sc, 3, 1.0, 3);

  sqlite3_stmt *s = query("SELECT job, mode, genome, l_co, l_f FROM v_best_config ORDER BY job");
  cr_assert_eq(sqlite3_step(s), SQLITE_ROW);
  cr_assert_eq(sqlite3_column_int64(s, 0), pareto);
  cr_assert_str_eq((const char *)sqlite3_column_text(s, 1), "pareto");
  cr_assert_str_eq((const char *)sqlite3_column_text(s, 2), "0000000000000004");
  cr_assert_eq(sqlite3_step(s), SQLITE_ROW);
  cr_assert_eq(sqlite3_column_int64(s, 0), scalar);
  cr_assert_str_eq((const char *)sqlite3_column_text(s, 1), "scalar");
  cr_assert_str_eq((const char *)sqlite3_column_text(s, 2), "0000000000000001");
  cr_assert_float_eq(sqlite3_column_double(s, 4), 0.18, 1e-12);
  /* No genome of job t meets 1 bit: the job has no row. */
  cr_assert_eq(sqlite3_step(s), SQLITE_DONE);
  sqlite3_finalize(s);
}

Test(store_views, dump_any_table_or_view_as_json) {
  int64_t a, b;
  cr_assert_eq(lpq_store_job_insert(st, "a", "{}", &a, NULL), 0);
  cr_assert_eq(lpq_store_job_insert(st, "b", "{}", &b, NULL), 0);
  member_t g0[3] = {{1, 0.9, 0.2, 4, 0, 1}, {2, 0.5, 0.4, 6, 0, 1}, {3, 0.8, 0.5, 6, 0, 0}};
  commit_generation(a, 0, g0, 3, 1.0, 3);
  commit_generation(a, 1, g0, 2, 2.0, 5);
  commit_generation(b, 0, g0, 1, 1.0, 1);
  lpq_error_t err = {0};
  char *json = NULL;

  lpq_store_dump_filter_t f = {.job = a, .generation_set = 1, .generation = 0, .front_only = 1};
  cr_assert_eq(lpq_store_dump_json(st, "individuals", &f, &json, &err), 0, "%s", err.msg);
  /* the front of job a's generation 0: genomes 1 and 2, with their columns */
  cr_assert(strstr(json, "\"genome\":\"0000000000000001\"") != NULL, "%s", json);
  cr_assert(strstr(json, "\"genome\":\"0000000000000002\"") != NULL, "%s", json);
  cr_assert(strstr(json, "0000000000000003") == NULL, "%s", json);
  cr_assert(strstr(json, "\"l_co\":0.9") != NULL, "%s", json);
  cr_assert_eq(json[0], '[');
  free(json);

  cr_assert_eq(lpq_store_dump_json(st, "jobs", &(lpq_store_dump_filter_t){.job = b}, &json, &err),
               0, "%s", err.msg);
  cr_assert(strstr(json, "\"name\":\"b\"") && !strstr(json, "\"name\":\"a\""), "%s", json);
  free(json);
  cr_assert_eq(lpq_store_dump_json(st, "v_generation_stats", NULL, &json, &err), 0, "%s",
               err.msg);
  cr_assert(strstr(json, "\"evals_per_s\"") != NULL, "%s", json);
  free(json);
  cr_assert_eq(lpq_store_dump_json(st, "generations",
                                   &(lpq_store_dump_filter_t){.limit = 1, .offset = 1}, &json,
                                   &err),
               0);
  cr_assert(strstr(json, "},{") == NULL, "one row: %s", json);
  free(json);

  cr_assert_eq(lpq_store_dump_json(st, "sqlite_schema", NULL, &json, &err), LPQ_ENOTFOUND);
  cr_assert_eq(lpq_store_dump_json(st, "jobs; DROP TABLE jobs", NULL, &json, &err),
               LPQ_ENOTFOUND);
  cr_assert(strstr(err.msg, "no table or view") != NULL, "%s", err.msg);
  cr_assert_eq(lpq_store_dump_json(st, "workers", &(lpq_store_dump_filter_t){.front_only = 1},
                                   &json, &err),
               LPQ_EINVAL);
  cr_assert(strstr(err.msg, "in_front") != NULL, "%s", err.msg);
  cr_assert_null(json);
}

/* lpq_store_best_json over (after, upto], against v_best_config: over all generations it is the
** view's row; folded one generation at a time (a later generation's row replaces the kept one
** only when its objective is lower: ties go to the earlier generation) it is too, at every
** generation. Objectives on a coarse grid, so that ties and repeats happen. */
Test(store_views, best_of_a_generation_range_is_the_views_row) {
  const char *settings[] = {
      "{\"mode\": \"pareto\", \"constraints\": {\"mean_weight_bits_max\": 5}}",
      "{\"mode\": \"scalar\", \"lambda\": 1}", "{}"};
  uint64_t rng = 12345;
  for (size_t k = 0; k < 3; k++) {
    int64_t job;
    cr_assert_eq(lpq_store_job_insert(st, "r", settings[k], &job, NULL), 0);
    json_t *kept = NULL;
    int found = 0;
    for (size_t g = 0; g < 25; g++) {
      member_t m[8];
      for (size_t i = 0; i < 8; i++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        m[i] = (member_t){1 + (g * 3 + i * 7) % 20, 0.1 * (double)(1 + (rng >> 33) % 9),
                          0.1 * (double)(1 + (rng >> 40) % 9), (double)(2 + (rng >> 50) % 6),
                          (rng >> 60) % 4 == 0 ? 0.5 : 0, 1};
      }
      commit_generation(job, g, m, 8, (double)g, 8 * (g + 1));
      char *text = NULL;
      lpq_error_t err = {0};
      cr_assert_eq(lpq_store_best_json(st, job, (int64_t)g - 1, (int64_t)g, &text, &err), 0,
                   "%s", err.msg);
      json_t *row = text ? json_loads(text, 0, NULL) : NULL;
      free(text);
      const char *key = k == 1 ? "l_f" : "l_co";
      if (row && (!kept || json_number_value(json_object_get(row, key)) <
                               json_number_value(json_object_get(kept, key)))) {
        json_decref(kept);
        kept = row;
      } else {
        json_decref(row);
      }
      cr_assert_eq(lpq_store_best_json(st, job, -1, (int64_t)g, &text, &err), 0, "%s", err.msg);
      json_t *all = text ? json_loads(text, 0, NULL) : NULL;
      free(text);
      sqlite3_stmt *s = query("SELECT genome, generation FROM v_best_config WHERE job = ?1");
      sqlite3_bind_int64(s, 1, job);
      if (sqlite3_step(s) == SQLITE_ROW) {
        found++;
        const char *genome = (const char *)sqlite3_column_text(s, 0);
        json_int_t gen = sqlite3_column_int64(s, 1);
        cr_assert(kept && all, "job %zu generation %zu: the view has %s", k, g, genome);
        cr_assert_str_eq(json_string_value(json_object_get(kept, "genome")), genome);
        cr_assert_eq(json_integer_value(json_object_get(kept, "generation")), gen);
        cr_assert_str_eq(json_string_value(json_object_get(all, "genome")), genome);
        cr_assert_eq(json_integer_value(json_object_get(all, "generation")), gen);
      } else {
        cr_assert(kept == NULL && all == NULL, "job %zu generation %zu: none in the view", k, g);
      }
      json_decref(all);
      sqlite3_finalize(s);
    }
    cr_assert_gt(found, 20, "job %zu: a best at most generations", k);
    json_decref(kept);
  }
}
