/* tests/test_store.c: the coordinator's SQLite store, operation by operation: opening and
** migrating (user_version, WAL, foreign keys), jobs and their status rules, cancel requests,
** blobs (content addressing, idempotence, files), evaluations (batches, first result wins,
** lookup for the replay), generations (individuals, job progress, replacement on replay),
** workers, events, and durability across close and reopen. */
#include "coordinator/store/store_internal.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmp_dir[256];
static char db_path[300];

static void make_tmp(void) {
  const char *base = getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp";
  snprintf(tmp_dir, sizeof tmp_dir, "%s/lpq-store-XXXXXX", base);
  cr_assert_not_null(mkdtemp(tmp_dir));
  snprintf(db_path, sizeof db_path, "%s/lpq.db", tmp_dir);
}

static void remove_tmp(void) {
  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
  cr_assert_eq(system(cmd), 0);
}

TestSuite(store, .init = make_tmp, .fini = remove_tmp);

static lpq_store_t *open_ok(void) {
  lpq_error_t err = {0};
  lpq_store_t *st = lpq_store_open(db_path, &err);
  cr_assert_not_null(st, "open: %s", err.msg);
  return st;
}

static int64_t pragma(const char *sql) {
  sqlite3 *db;
  cr_assert_eq(sqlite3_open(db_path, &db), SQLITE_OK);
  sqlite3_stmt *s;
  cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
  cr_assert_eq(sqlite3_step(s), SQLITE_ROW);
  int64_t v = sqlite3_column_int64(s, 0);
  sqlite3_finalize(s);
  sqlite3_close(db);
  return v;
}

static lpq_store_eval_t eval_row(int64_t job, uint64_t hash, double l_co) {
  lpq_store_eval_t e;
  memset(&e, 0, sizeof e);
  e.job = job;
  e.genome_hash = hash;
  e.l_co = l_co;
  e.l_co_global = l_co * 0.6;
  e.l_co_local = l_co * 0.4;
  e.l_cr = 0.125;
  e.mean_weight_bits = 4.0;
  e.mean_act_bits = 8.0;
  e.top1 = NAN;
  e.latency_s = 1e-3;
  e.energy_pj = 2e6;
  e.edp_js = NAN;
  e.eval_ms = 12.5;
  snprintf(e.worker, sizeof e.worker, "w1");
  return e;
}

Test(store, creates_schema_v1_with_wal_and_foreign_keys) {
  lpq_store_t *st = open_ok();
  cr_assert_eq(LPQ_STORE_SCHEMA_VERSION, (int)lpq__store_migration_count);
  cr_assert_eq(pragma("PRAGMA user_version"), LPQ_STORE_SCHEMA_VERSION);
  /* WAL is a property of the file: a fresh connection sees it. */
  sqlite3 *db;
  cr_assert_eq(sqlite3_open(db_path, &db), SQLITE_OK);
  sqlite3_stmt *s;
  cr_assert_eq(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, NULL), SQLITE_OK);
  cr_assert_eq(sqlite3_step(s), SQLITE_ROW);
  cr_assert_str_eq((const char *)sqlite3_column_text(s, 0), "wal");
  sqlite3_finalize(s);
  const char *objects[] = {"jobs",    "blobs",   "generations", "individuals",
                           "evaluations", "workers", "events",  "v_pareto",
                           "v_generation_stats", "v_best_config"};
  for (size_t i = 0; i < sizeof objects / sizeof objects[0]; i++) {
    cr_assert_eq(sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_schema WHERE name = ?1", -1,
                                    &s, NULL),
                 SQLITE_OK);
    sqlite3_bind_text(s, 1, objects[i], -1, SQLITE_STATIC);
    cr_assert_eq(sqlite3_step(s), SQLITE_ROW);
    cr_assert_eq(sqlite3_column_int(s, 0), 1, "%s is missing", objects[i]);
    sqlite3_finalize(s);
  }
  sqlite3_close(db);
  /* The writer's own settings. */
  cr_assert_eq(sqlite3_prepare_v2(st->db, "PRAGMA foreign_keys", -1, &s, NULL), SQLITE_OK);
  cr_assert_eq(sqlite3_step(s), SQLITE_ROW);
  cr_assert_eq(sqlite3_column_int(s, 0), 1);
  sqlite3_finalize(s);
  cr_assert_eq(sqlite3_prepare_v2(st->db, "PRAGMA synchronous", -1, &s, NULL), SQLITE_OK);
  cr_assert_eq(sqlite3_step(s), SQLITE_ROW);
  cr_assert_eq(sqlite3_column_int(s, 0), 1, "synchronous is not NORMAL (1)");
  sqlite3_finalize(s);
  struct stat sb;
  cr_assert_eq(stat(lpq_store_blob_dir(st), &sb), 0);
  cr_assert(S_ISDIR(sb.st_mode));
  lpq_store_close(&st);
  cr_assert_null(st);
  lpq_store_close(&st); /* closing twice is harmless */
}

/* The runner with a made-up migration N+1 after the real ones: databases move to N+1, data
** survives, and a runner that knows only N then refuses the file. */
Test(store, migrates_in_order_and_refuses_newer) {
  lpq_store_t *st = open_ok();
  int64_t id;
  cr_assert_eq(lpq_store_job_insert(st, "keep", "{}", &id, NULL), 0);
  lpq_store_close(&st);

  const size_t n = lpq__store_migration_count;
  const char *more[16];
  cr_assert_lt(n, 16);
  for (size_t i = 0; i < n; i++)
    more[i] = lpq__store_migrations[i];
  more[n] = "ALTER TABLE jobs ADD COLUMN owner TEXT; UPDATE jobs SET owner = 'migrated';";
  sqlite3 *db;
  cr_assert_eq(sqlite3_open(db_path, &db), SQLITE_OK);
  lpq_error_t err = {0};
  cr_assert_eq(lpq__store_migrate(db, db_path, more, n + 1, &err), 0, "%s", err.msg);
  cr_assert_eq(lpq__store_migrate(db, db_path, more, n + 1, &err), 0,
               "a second run must be a no-op");
  sqlite3_close(db);
  cr_assert_eq(pragma("PRAGMA user_version"), (int64_t)n + 1);
  cr_assert_eq(pragma("SELECT count(*) FROM jobs WHERE owner = 'migrated' AND name = 'keep'"), 1);

  st = lpq_store_open(db_path, &err);
  cr_assert_null(st);
  cr_assert_eq(err.code, LPQ_EUNSUP);
  char want[64];
  snprintf(want, sizeof want, "schema version %zu is newer", n + 1);
  cr_assert(strstr(err.msg, want) != NULL, "%s", err.msg);
  cr_assert(strstr(err.msg, db_path) != NULL, "the message names the file: %s", err.msg);
}

Test(store, a_failed_migration_leaves_the_version) {
  const size_t n = lpq__store_migration_count;
  const char *bad[16];
  cr_assert_lt(n, 16);
  for (size_t i = 0; i < n; i++)
    bad[i] = lpq__store_migrations[i];
  bad[n] = "CREATE TABLE x (a); SELECT nonsense();";
  lpq_store_t *st = open_ok();
  lpq_store_close(&st);
  sqlite3 *db;
  cr_assert_eq(sqlite3_open(db_path, &db), SQLITE_OK);
  lpq_error_t err = {0};
  cr_assert_neq(lpq__store_migrate(db, db_path, bad, n + 1, &err), 0);
  char want[64];
  snprintf(want, sizeof want, "migration to schema version %zu", n + 1);
  cr_assert(strstr(err.msg, want) != NULL, "%s", err.msg);
  sqlite3_close(db);
  cr_assert_eq(pragma("PRAGMA user_version"), (int64_t)n);
  cr_assert_eq(pragma("SELECT count(*) FROM sqlite_schema WHERE name = 'x'"), 0);
}

Test(store, jobs_insert_get_status_cancel) {
  lpq_store_t *st = open_ok();
  lpq_error_t err = {0};
  int64_t a, b;
  cr_assert_eq(lpq_store_job_insert(st, "resnet18", "{\"seed\": 7, \"mode\": \"pareto\"}", &a,
                                    &err),
               0, "%s", err.msg);
  cr_assert_eq(lpq_store_job_insert(st, "other", "{}", &b, &err), 0);
  cr_assert_gt(b, a);
  cr_assert_eq(lpq_store_job_insert(st, "bad", "{seed: 7", NULL, &err), LPQ_EINVAL);
  cr_assert(strstr(err.msg, "jobs") && strstr(err.msg, "not valid JSON"), "%s", err.msg);

  lpq_store_job_t job;
  cr_assert_eq(lpq_store_job_get(st, a, &job, &err), 0, "%s", err.msg);
  cr_assert_str_eq(job.name, "resnet18");
  cr_assert_eq(job.status, LPQ_STORE_JOB_QUEUED);
  cr_assert(strstr(job.settings, "\"seed\": 7") != NULL);
  cr_assert_eq(job.generation, -1);
  cr_assert(isnan(job.best_l_co) && isnan(job.started) && !isnan(job.created));
  cr_assert_eq(job.cancel_requested, 0);
  lpq_store_job_clear(&job);

  cr_assert_eq(lpq_store_job_set_status(st, a, LPQ_STORE_JOB_RUNNING, NULL, &err), 0, "%s",
               err.msg);
  cr_assert_eq(lpq_store_job_get(st, a, &job, NULL), 0);
  cr_assert_eq(job.status, LPQ_STORE_JOB_RUNNING);
  double started = job.started;
  cr_assert(!isnan(started));
  lpq_store_job_clear(&job);
  /* paused and running again: started stays the first start */
  cr_assert_eq(lpq_store_job_set_status(st, a, LPQ_STORE_JOB_PAUSED, "operator", NULL), 0);
  cr_assert_eq(lpq_store_job_set_status(st, a, LPQ_STORE_JOB_RUNNING, NULL, NULL), 0);
  cr_assert_eq(lpq_store_job_request_cancel(st, a, &err), 0, "%s", err.msg);
  cr_assert_eq(lpq_store_job_get(st, a, &job, NULL), 0);
  cr_assert_eq(job.started, started);
  cr_assert_eq(job.cancel_requested, 1);
  cr_assert_str_eq(job.message, "operator");
  lpq_store_job_clear(&job);

  cr_assert_eq(lpq_store_job_set_status(st, a, LPQ_STORE_JOB_CANCELED, "canceled by client",
                                        NULL),
               0);
  cr_assert_eq(lpq_store_job_get(st, a, &job, NULL), 0);
  cr_assert_eq(job.status, LPQ_STORE_JOB_CANCELED);
  cr_assert(!isnan(job.finished));
  cr_assert_str_eq(job.message, "canceled by client");
  lpq_store_job_clear(&job);
  /* final is final */
  cr_assert_eq(lpq_store_job_set_status(st, a, LPQ_STORE_JOB_RUNNING, NULL, &err), LPQ_ESTATE);
  cr_assert(strstr(err.msg, "canceled already") != NULL, "%s", err.msg);
  cr_assert_eq(lpq_store_job_request_cancel(st, a, &err), LPQ_ESTATE);
  cr_assert_eq(lpq_store_job_set_status(st, 999, LPQ_STORE_JOB_RUNNING, NULL, &err),
               LPQ_ENOTFOUND);
  cr_assert(strstr(err.msg, "no job 999") != NULL, "%s", err.msg);
  cr_assert_eq(lpq_store_job_get(st, 999, &job, &err), LPQ_ENOTFOUND);
  cr_assert_eq(lpq_store_job_request_cancel(st, 999, &err), LPQ_ENOTFOUND);

  lpq_store_job_status_t parsed;
  for (int s = LPQ_STORE_JOB_QUEUED; s <= LPQ_STORE_JOB_CANCELED; s++) {
    cr_assert_eq(lpq_store_job_status_parse(lpq_store_job_status_name(s), &parsed, NULL), 0);
    cr_assert_eq((int)parsed, s);
  }
  cr_assert_eq(lpq_store_job_status_parse("finished", &parsed, &err), LPQ_EINVAL);
  lpq_store_close(&st);
}

Test(store, job_list_and_unfinished_for_resume) {
  lpq_store_t *st = open_ok();
  int64_t ids[5];
  lpq_store_job_status_t set[5] = {LPQ_STORE_JOB_QUEUED, LPQ_STORE_JOB_RUNNING,
                                   LPQ_STORE_JOB_DONE, LPQ_STORE_JOB_PAUSED,
                                   LPQ_STORE_JOB_FAILED};
  for (int i = 0; i < 5; i++) {
    char name[16];
    snprintf(name, sizeof name, "job%d", i);
    cr_assert_eq(lpq_store_job_insert(st, name, "{}", &ids[i], NULL), 0);
    if (set[i] != LPQ_STORE_JOB_QUEUED)
      cr_assert_eq(lpq_store_job_set_status(st, ids[i], set[i], NULL, NULL), 0);
  }
  lpq_store_job_t *jobs;
  size_t count;
  cr_assert_eq(lpq_store_job_list(st, LPQ_STORE_JOBS_ALL, &jobs, &count, NULL), 0);
  cr_assert_eq(count, 5);
  for (size_t i = 0; i < count; i++) {
    cr_assert_eq(jobs[i].id, ids[i]);
    cr_assert_eq(jobs[i].status, set[i]);
  }
  lpq_store_job_list_free(&jobs, count);
  cr_assert_null(jobs);
  cr_assert_eq(lpq_store_job_list(st, LPQ_STORE_JOBS_UNFINISHED, &jobs, &count, NULL), 0);
  cr_assert_eq(count, 3);
  cr_assert_eq(jobs[0].id, ids[0]);
  cr_assert_eq(jobs[1].id, ids[1]);
  cr_assert_eq(jobs[2].id, ids[3]);
  lpq_store_job_list_free(&jobs, count);
  lpq_store_close(&st);
}

Test(store, blobs_are_content_addressed_and_idempotent) {
  lpq_store_t *st = open_ok();
  lpq_error_t err = {0};
  char hash[LPQ_STORE_HASH_HEX], again[LPQ_STORE_HASH_HEX];
  /* FIPS 180-2 example: SHA-256("abc"). */
  cr_assert_eq(lpq_store_blob_put(st, "data", "abc", 3, hash, &err), 0, "%s", err.msg);
  cr_assert_str_eq(hash, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  cr_assert_eq(lpq_store_blob_put(st, "data", "", 0, again, &err), 0);
  cr_assert_str_eq(again, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");

  /* A blob crossing the 64-byte block boundaries, put twice and from a file. */
  size_t size = 100003;
  unsigned char *bytes = malloc(size);
  cr_assert_not_null(bytes);
  for (size_t i = 0; i < size; i++)
    bytes[i] = (unsigned char)(i * 2654435761u >> 13);
  cr_assert_eq(lpq_store_blob_put(st, "model", bytes, size, hash, &err), 0, "%s", err.msg);
  cr_assert_eq(lpq_store_blob_put(st, "model", bytes, size, again, &err), 0);
  cr_assert_str_eq(hash, again);
  char file[400];
  snprintf(file, sizeof file, "%s/model.onnx", tmp_dir);
  FILE *f = fopen(file, "wb");
  cr_assert_not_null(f);
  cr_assert_eq(fwrite(bytes, 1, size, f), size);
  fclose(f);
  cr_assert_eq(lpq_store_blob_put_file(st, "model", file, again, &err), 0, "%s", err.msg);
  cr_assert_str_eq(hash, again, "a file hashes as its bytes");
  cr_assert_eq(pragma("SELECT count(*) FROM blobs"), 3);

  int found = 0;
  lpq_store_blob_t info;
  cr_assert_eq(lpq_store_blob_has(st, hash, &found, &info, &err), 0);
  cr_assert_eq(found, 1);
  cr_assert_eq(info.size, size);
  cr_assert_str_eq(info.kind, "model");
  void *data;
  size_t got;
  cr_assert_eq(lpq_store_blob_read(st, hash, &data, &got, &err), 0, "%s", err.msg);
  cr_assert_eq(got, size);
  cr_assert_eq(memcmp(data, bytes, size), 0);
  free(data);
  char *path;
  cr_assert_eq(lpq_store_blob_path(st, hash, &path, &err), 0);
  cr_assert(strncmp(path, lpq_store_blob_dir(st), strlen(lpq_store_blob_dir(st))) == 0);
  cr_assert(strstr(path, hash) != NULL);

  /* A vanished file: has says no, path and read say why, put restores it. */
  cr_assert_eq(unlink(path), 0);
  cr_assert_eq(lpq_store_blob_has(st, hash, &found, NULL, &err), 0);
  cr_assert_eq(found, 0);
  cr_assert_eq(lpq_store_blob_read(st, hash, &data, &got, &err), LPQ_EIO);
  cr_assert(strstr(err.msg, "missing") != NULL, "%s", err.msg);
  cr_assert_eq(lpq_store_blob_put(st, "model", bytes, size, again, &err), 0);
  cr_assert_eq(access(path, R_OK), 0);
  free(path);

  const char *unknown = "0000000000000000000000000000000000000000000000000000000000000000";
  cr_assert_eq(lpq_store_blob_has(st, unknown, &found, NULL, &err), 0);
  cr_assert_eq(found, 0);
  cr_assert_eq(lpq_store_blob_path(st, unknown, &path, &err), LPQ_ENOTFOUND);
  cr_assert_eq(lpq_store_blob_has(st, "ABC", &found, NULL, &err), LPQ_EINVAL);
  cr_assert_eq(lpq_store_blob_put(st, "", "x", 1, NULL, &err), LPQ_EINVAL);
  snprintf(file, sizeof file, "%s/absent.onnx", tmp_dir);
  cr_assert_eq(lpq_store_blob_put_file(st, "model", file, NULL, &err), LPQ_ENOTFOUND);
  cr_assert(strstr(err.msg, "absent.onnx") != NULL, "%s", err.msg);
  free(bytes);
  lpq_store_close(&st);
}

Test(store, evaluations_batch_first_result_wins_and_lookup) {
  lpq_store_t *st = open_ok();
  lpq_error_t err = {0};
  int64_t job, other;
  cr_assert_eq(lpq_store_job_insert(st, "a", "{}", &job, NULL), 0);
  cr_assert_eq(lpq_store_job_insert(st, "b", "{}", &other, NULL), 0);
  cr_assert_eq(lpq_store_worker_upsert(st, "w1", "host", 42, "ready", NULL), 0);

  lpq_store_eval_t batch[40];
  for (int i = 0; i < 40; i++)
    batch[i] = eval_row(i < 30 ? job : other, 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1), i);
  batch[3].status = LPQ_EIO;
  snprintf(batch[3].error, sizeof batch[3].error, "worker lost three times");
  batch[3].worker[0] = '\0';
  size_t inserted;
  cr_assert_eq(lpq_store_eval_commit(st, batch, 40, &inserted, &err), 0, "%s", err.msg);
  cr_assert_eq(inserted, 40);

  /* A repeat (at-least-once delivery) keeps the first result. */
  lpq_store_eval_t repeat = batch[5];
  repeat.l_co = 1e9;
  lpq_store_eval_t fresh = eval_row(job, 77, 0.5);
  lpq_store_eval_t second[2] = {repeat, fresh};
  cr_assert_eq(lpq_store_eval_commit(st, second, 2, &inserted, &err), 0);
  cr_assert_eq(inserted, 1);

  lpq_store_eval_t got;
  cr_assert_eq(lpq_store_eval_get(st, job, batch[5].genome_hash, &got, &err), 0, "%s", err.msg);
  cr_assert_eq(got.l_co, 5.0);
  cr_assert_eq(got.l_co_global, batch[5].l_co_global);
  cr_assert_eq(got.eval_ms, 12.5);
  cr_assert(isnan(got.top1) && isnan(got.edp_js));
  cr_assert_str_eq(got.worker, "w1");
  cr_assert_eq(got.status, 0);
  cr_assert_eq(lpq_store_eval_get(st, job, batch[3].genome_hash, &got, &err), 0);
  cr_assert_eq(got.status, LPQ_EIO);
  cr_assert_str_eq(got.error, "worker lost three times");
  cr_assert_str_eq(got.worker, "");
  /* keyed by job: job b's genome is not job a's */
  cr_assert_eq(lpq_store_eval_get(st, job, batch[35].genome_hash, &got, &err), LPQ_ENOTFOUND);
  cr_assert(strstr(err.msg, "evaluations") != NULL, "%s", err.msg);
  cr_assert_eq(lpq_store_eval_get(st, other, batch[35].genome_hash, &got, &err), 0);
  cr_assert_eq(got.l_co, 35.0);
  /* the top bit of the hash survives */
  lpq_store_eval_t high = eval_row(job, 0xfedcba9876543210ull, 2.0);
  cr_assert_eq(lpq_store_eval_commit(st, &high, 1, NULL, &err), 0);
  cr_assert_eq(lpq_store_eval_get(st, job, 0xfedcba9876543210ull, &got, &err), 0);
  cr_assert_eq(pragma("SELECT count(*) FROM evaluations WHERE genome = 'fedcba9876543210'"), 1);

  size_t count;
  cr_assert_eq(lpq_store_eval_count(st, job, &count, NULL), 0);
  cr_assert_eq(count, 32);
  lpq_store_job_t j;
  cr_assert_eq(lpq_store_job_get(st, job, &j, NULL), 0);
  cr_assert_eq(j.evaluations_stored, 32);
  lpq_store_job_clear(&j);
  lpq_store_worker_t *workers;
  cr_assert_eq(lpq_store_worker_list(st, &workers, &count, NULL), 0);
  cr_assert_eq(count, 1);
  cr_assert_eq(workers[0].evaluations_done, 41, "39 + 1 + 1 new rows with worker w1");
  free(workers);

  /* A batch with a row of an unknown job fails whole and names the row. */
  lpq_store_eval_t mixed[3] = {eval_row(job, 1001, 1), eval_row(job, 1002, 1),
                               eval_row(12345, 1003, 1)};
  cr_assert_eq(lpq_store_eval_commit(st, mixed, 3, &inserted, &err), LPQ_EINVAL);
  cr_assert(strstr(err.msg, "job 12345") && strstr(err.msg, "no such job"), "%s", err.msg);
  cr_assert_eq(lpq_store_eval_get(st, job, 1001, &got, NULL), LPQ_ENOTFOUND,
               "the batch was rolled back");
  cr_assert_eq(lpq_store_eval_count(st, job, &count, NULL), 0);
  cr_assert_eq(count, 32);
  lpq_store_close(&st);
}

static const char *genome_json = "[{\"w\": \"lp<4,1,3,2>\", \"a\": \"lp<8,2,7,0>\"}]";

Test(store, generation_commit_progress_and_replay) {
  lpq_store_t *st = open_ok();
  lpq_error_t err = {0};
  int64_t job;
  cr_assert_eq(lpq_store_job_insert(st, "g", "{}", &job, NULL), 0);
  lpq_store_individual_t ind[3];
  for (int i = 0; i < 3; i++)
    ind[i] = (lpq_store_individual_t){.genome_hash = 100 + (uint64_t)i,
                                      .genome_json = genome_json,
                                      .l_co = 1.0 + i,
                                      .l_cr = 0.5 - 0.1 * i,
                                      .l_f = (1.0 + i) * (0.5 - 0.1 * i),
                                      .rank = 0,
                                      .crowding = i == 1 ? 0.7 : INFINITY,
                                      .in_front = 1};
  lpq_store_generation_t gen = {.job = job,
                                .number = 0,
                                .evaluations = 3,
                                .new_evaluations = 3,
                                .best_l_co = 1.0,
                                .best_l_f = 0.5,
                                .hypervolume = 0.25,
                                .front_size = 3,
                                .elapsed_s = 2.0};
  cr_assert_eq(lpq_store_generation_commit(st, &gen, ind, 3, &err), 0, "%s", err.msg);
  lpq_store_job_t j;
  cr_assert_eq(lpq_store_job_get(st, job, &j, NULL), 0);
  cr_assert_eq(j.generation, 0);
  cr_assert_eq(j.evaluations, 3);
  cr_assert_eq(j.best_l_co, 1.0);
  cr_assert_eq(j.hypervolume, 0.25);
  cr_assert_eq(j.front_size, 3);
  lpq_store_job_clear(&j);
  cr_assert_eq(pragma("SELECT count(*) FROM individuals WHERE crowding = 9e999"), 2,
               "infinite crowding is kept");

  /* Generation 1, then generation 0 again (a replay): the progress stays at 1. */
  gen.number = 1;
  gen.evaluations = 5;
  gen.best_l_co = 0.9;
  cr_assert_eq(lpq_store_generation_commit(st, &gen, ind, 2, &err), 0, "%s", err.msg);
  gen.number = 0;
  gen.evaluations = 3;
  gen.best_l_co = 1.0;
  cr_assert_eq(lpq_store_generation_commit(st, &gen, ind, 3, &err), 0, "%s", err.msg);
  cr_assert_eq(pragma("SELECT count(*) FROM individuals WHERE generation = 0"), 3);
  cr_assert_eq(pragma("SELECT count(*) FROM individuals WHERE generation = 1"), 2);
  cr_assert_eq(pragma("SELECT count(*) FROM generations"), 2);
  cr_assert_eq(lpq_store_job_get(st, job, &j, NULL), 0);
  cr_assert_eq(j.generation, 1);
  cr_assert_eq(j.best_l_co, 0.9);
  lpq_store_job_clear(&j);

  /* Bad rows roll the whole generation back and are named. */
  lpq_store_individual_t bad[2] = {ind[0], ind[1]};
  bad[1].genome_json = "[{";
  gen.number = 2;
  cr_assert_eq(lpq_store_generation_commit(st, &gen, bad, 2, &err), LPQ_EINVAL);
  cr_assert(strstr(err.msg, "individual 1") && strstr(err.msg, "not valid JSON"), "%s", err.msg);
  bad[1] = ind[0];
  cr_assert_eq(lpq_store_generation_commit(st, &gen, bad, 2, &err), LPQ_EINVAL);
  cr_assert(strstr(err.msg, "twice") != NULL, "%s", err.msg);
  cr_assert_eq(pragma("SELECT count(*) FROM generations WHERE number = 2"), 0);
  gen.job = 999;
  cr_assert_eq(lpq_store_generation_commit(st, &gen, ind, 1, &err), LPQ_EINVAL);
  cr_assert(strstr(err.msg, "no job 999") != NULL, "%s", err.msg);
  lpq_store_close(&st);
}

Test(store, workers_and_events) {
  lpq_store_t *st = open_ok();
  lpq_error_t err = {0};
  cr_assert_eq(lpq_store_worker_upsert(st, "b", "node2", 7, "ready", &err), 0, "%s", err.msg);
  cr_assert_eq(lpq_store_worker_upsert(st, "a", NULL, 8, "ready", &err), 0);
  lpq_store_worker_t *w;
  size_t n;
  cr_assert_eq(lpq_store_worker_list(st, &w, &n, NULL), 0);
  cr_assert_eq(n, 2);
  cr_assert_str_eq(w[0].id, "a");
  cr_assert_str_eq(w[0].host, "");
  double first = w[1].first_seen, last = w[1].last_seen;
  free(w);
  usleep(2000);
  cr_assert_eq(lpq_store_worker_seen(st, "b", "busy", &err), 0);
  cr_assert_eq(lpq_store_worker_upsert(st, "b", "node3", 9, "ready", &err), 0);
  cr_assert_eq(lpq_store_worker_seen(st, "b", NULL, &err), 0);
  cr_assert_eq(lpq_store_worker_list(st, &w, &n, NULL), 0);
  cr_assert_str_eq(w[1].host, "node3");
  cr_assert_eq(w[1].pid, 9);
  cr_assert_str_eq(w[1].state, "ready");
  cr_assert_eq(w[1].first_seen, first, "first seen is kept");
  cr_assert_gt(w[1].last_seen, last);
  free(w);
  cr_assert_eq(lpq_store_worker_seen(st, "nobody", NULL, &err), LPQ_ENOTFOUND);
  cr_assert(strstr(err.msg, "nobody") != NULL, "%s", err.msg);

  int64_t job, e1, e2, e3;
  cr_assert_eq(lpq_store_job_insert(st, "j", "{}", &job, NULL), 0);
  cr_assert_eq(lpq_store_event_append(st, 0, LPQ_STORE_INFO, "server started", &e1, &err), 0);
  cr_assert_eq(lpq_store_event_append(st, job, LPQ_STORE_WARN, "worker b lost", &e2, &err), 0);
  cr_assert_eq(lpq_store_event_append(st, job, LPQ_STORE_ERROR, "genome failed", &e3, &err), 0);
  cr_assert(e1 < e2 && e2 < e3);
  cr_assert_eq(lpq_store_event_append(st, 999, LPQ_STORE_INFO, "x", NULL, &err), LPQ_EINVAL);
  lpq_store_event_t *ev;
  cr_assert_eq(lpq_store_event_list(st, 0, 0, 0, &ev, &n, &err), 0);
  cr_assert_eq(n, 3);
  cr_assert_eq(ev[0].job, 0);
  cr_assert_str_eq(ev[0].message, "server started");
  free(ev);
  cr_assert_eq(lpq_store_event_list(st, job, 0, 0, &ev, &n, &err), 0);
  cr_assert_eq(n, 2);
  cr_assert_eq(ev[0].level, LPQ_STORE_WARN);
  cr_assert_eq(ev[1].level, LPQ_STORE_ERROR);
  free(ev);
  cr_assert_eq(lpq_store_event_list(st, job, e2, 0, &ev, &n, &err), 0);
  cr_assert_eq(n, 1);
  cr_assert_eq(ev[0].id, e3);
  free(ev);
  cr_assert_eq(lpq_store_event_list(st, 0, 0, 1, &ev, &n, &err), 0);
  cr_assert_eq(n, 1);
  free(ev);
  lpq_store_close(&st);
}

Test(store, everything_survives_close_and_reopen) {
  lpq_store_t *st = open_ok();
  int64_t job;
  char hash[LPQ_STORE_HASH_HEX];
  cr_assert_eq(lpq_store_job_insert(st, "durable", "{\"seed\": 3}", &job, NULL), 0);
  cr_assert_eq(lpq_store_job_set_status(st, job, LPQ_STORE_JOB_RUNNING, NULL, NULL), 0);
  cr_assert_eq(lpq_store_blob_put(st, "model", "weights", 7, hash, NULL), 0);
  lpq_store_eval_t batch[100];
  for (int i = 0; i < 100; i++)
    batch[i] = eval_row(job, (uint64_t)i * 7919 + 1, i * 0.01);
  cr_assert_eq(lpq_store_eval_commit(st, batch, 100, NULL, NULL), 0);
  cr_assert_eq(lpq_store_event_append(st, job, LPQ_STORE_INFO, "started", NULL, NULL), 0);
  lpq_store_close(&st);

  st = open_ok();
  lpq_store_job_t *jobs;
  size_t n;
  cr_assert_eq(lpq_store_job_list(st, LPQ_STORE_JOBS_UNFINISHED, &jobs, &n, NULL), 0);
  cr_assert_eq(n, 1);
  cr_assert_eq(jobs[0].id, job);
  cr_assert_eq(jobs[0].status, LPQ_STORE_JOB_RUNNING);
  cr_assert_eq(jobs[0].evaluations_stored, 100);
  lpq_store_job_list_free(&jobs, n);
  for (int i = 0; i < 100; i++) {
    lpq_store_eval_t got;
    cr_assert_eq(lpq_store_eval_get(st, job, batch[i].genome_hash, &got, NULL), 0);
    cr_assert_eq(got.l_co, batch[i].l_co);
  }
  void *data;
  size_t size;
  cr_assert_eq(lpq_store_blob_read(st, hash, &data, &size, NULL), 0);
  cr_assert_eq(size, 7);
  cr_assert_eq(memcmp(data, "weights", 7), 0);
  free(data);
  lpq_store_close(&st);
}

/* The WAL is checkpointed by the store's own thread once it passes ~1000 pages, and the
** database file then holds the rows without the WAL. */
Test(store, checkpoints_run_off_the_callers_thread) {
  lpq_store_t *st = open_ok();
  int64_t job;
  cr_assert_eq(lpq_store_job_insert(st, "wal", "{}", &job, NULL), 0);
  char *json = malloc(4000);
  cr_assert_not_null(json);
  memset(json, ' ', 3999);
  json[0] = '[';
  json[3998] = ']';
  json[3999] = '\0';
  lpq_store_eval_t batch[100];
  for (int b = 0; b < 15; b++) {
    for (int i = 0; i < 100; i++) {
      batch[i] = eval_row(job, (uint64_t)(b * 100 + i) + 1, 0.5);
      batch[i].genome_json = json;
    }
    cr_assert_eq(lpq_store_eval_commit(st, batch, 100, NULL, NULL), 0);
  }
  free(json);
  size_t checkpoints = 0;
  for (int wait = 0; wait < 400 && checkpoints == 0; wait++) {
    pthread_mutex_lock(&st->checkpointer.mu);
    checkpoints = st->checkpointer.checkpoints;
    pthread_mutex_unlock(&st->checkpointer.mu);
    if (checkpoints == 0)
      usleep(5000);
  }
  cr_assert_gt(checkpoints, 0, "the checkpoint thread never ran");
  cr_assert_eq(st->checkpointer.failures, 0, "%s", st->checkpointer.last_error);
  lpq_store_close(&st);
  char wal[400];
  snprintf(wal, sizeof wal, "%s-wal", db_path);
  cr_assert_neq(access(wal, F_OK), 0, "a clean close leaves no WAL behind");
  cr_assert_eq(pragma("SELECT count(*) FROM evaluations"), 1500);
}
