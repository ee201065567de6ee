/* tests/test_store_errors.c: the store when things go wrong, and with readers beside the
** writer: a read-only database file, a missing directory, a file that is not a database, a
** corrupt database, another program's database, a database that is full (max_page_count makes
** SQLite answer SQLITE_FULL as a full disk would: the batch is rolled back and the database
** stays intact), and readers on their own connections while batches are written (WAL: a
** reader sees whole batches only, and keeps its snapshot while the writer commits). */
#include "coordinator/store/store_internal.h"

#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char tmp_dir[256];
static char db_path[300];

static void make_tmp(void) {
  const char *base = getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp";
  snprintf(tmp_dir, sizeof tmp_dir, "%s/lpq-store-err-XXXXXX", base);
  cr_assert_not_null(mkdtemp(tmp_dir));
  snprintf(db_path, sizeof db_path, "%s/lpq.db", tmp_dir);
}

static void remove_tmp(void) {
  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
  cr_assert_eq(system(cmd), 0);
}

TestSuite(store_errors, .init = make_tmp, .fini = remove_tmp);

static lpq_store_t *open_ok(void) {
  lpq_error_t err = {0};
  lpq_store_t *st = lpq_store_open(db_path, &err);
  cr_assert_not_null(st, "open: %s", err.msg);
  return st;
}

static void write_file(const char *path, const void *data, size_t len) {
  FILE *f = fopen(path, "wb");
  cr_assert_not_null(f);
  cr_assert_eq(fwrite(data, 1, len, f), len);
  cr_assert_eq(fclose(f), 0);
}

static lpq_store_eval_t eval_row(int64_t job, uint64_t hash) {
  lpq_store_eval_t e;
  memset(&e, 0, sizeof e);
  e.job = job;
  e.genome_hash = hash;
  e.l_co = (double)(hash % 1000) / 1000.0;
  e.l_cr = 0.25;
  e.top1 = e.latency_s = e.energy_pj = e.edp_js = NAN;
  return e;
}

/* A job with 100 committed evaluations (ev: their rows); the job's id. */
static int64_t job_with_rows(lpq_store_t *st, lpq_store_eval_t ev[100]) {
  int64_t job;
  cr_assert_eq(lpq_store_job_insert(st, "j", "{}", &job, NULL), 0);
  for (int i = 0; i < 100; i++)
    ev[i] = eval_row(job, (uint64_t)i * 104729 + 1);
  cr_assert_eq(lpq_store_eval_commit(st, ev, 100, NULL, NULL), 0);
  return job;
}

/* Opening a write-protected file must fail with a message, not half-work. Root ignores file
** modes, so then a child process drops to an unprivileged user first. */
Test(store_errors, read_only_database_file) {
  lpq_store_t *st = open_ok();
  cr_assert_eq(lpq_store_job_insert(st, "j", "{}", NULL, NULL), 0);
  lpq_store_close(&st);
  cr_assert_eq(chmod(db_path, 0444), 0);
  cr_assert_eq(chmod(tmp_dir, 0777), 0);
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
      _exit(10);
    lpq_error_t err = {0};
    lpq_store_t *ro = lpq_store_open(db_path, &err);
    if (ro != NULL)
      _exit(11);
    if (err.code != LPQ_EIO)
      _exit(12);
    if (strstr(err.msg, "read-only") == NULL || strstr(err.msg, db_path) == NULL)
      _exit(13);
    _exit(0);
  }
  int status = 0;
  cr_assert_eq(waitpid(pid, &status, 0), pid);
  cr_assert(WIFEXITED(status));
  cr_assert_eq(WEXITSTATUS(status), 0, "child check %d failed", WEXITSTATUS(status));
}

Test(store_errors, missing_directory) {
  char path[400];
  snprintf(path, sizeof path, "%s/no/such/dir/lpq.db", tmp_dir);
  lpq_error_t err = {0};
  lpq_store_t *st = lpq_store_open(path, &err);
  cr_assert_null(st);
  cr_assert_eq(err.code, LPQ_EIO);
  cr_assert(strstr(err.msg, path) && strstr(err.msg, "cannot open"), "%s", err.msg);
  cr_assert_null(lpq_store_open("", &err));
  cr_assert_eq(err.code, LPQ_EINVAL);
}

Test(store_errors, not_a_database) {
  char junk[4096];
  for (size_t i = 0; i < sizeof junk; i++)
    junk[i] = (char)('a' + i % 26);
  write_file(db_path, junk, sizeof junk);
  lpq_error_t err = {0};
  lpq_store_t *st = lpq_store_open(db_path, &err);
  cr_assert_null(st);
  cr_assert_eq(err.code, LPQ_EFORMAT, "%d %s", err.code, err.msg);
  cr_assert(strstr(err.msg, "not a database") && strstr(err.msg, db_path), "%s", err.msg);
  /* and the file is left alone */
  FILE *f = fopen(db_path, "rb");
  char back[sizeof junk];
  cr_assert_eq(fread(back, 1, sizeof back, f), sizeof back);
  fclose(f);
  cr_assert_eq(memcmp(back, junk, sizeof junk), 0);
}

Test(store_errors, corrupt_database) {
  lpq_store_t *st = open_ok();
  lpq_store_eval_t ev[100];
  const int64_t job = job_with_rows(st, ev);
  lpq_store_close(&st);
  /* Scribble over every page but the first (the header and schema stay readable). */
  FILE *f = fopen(db_path, "r+b");
  cr_assert_not_null(f);
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  cr_assert_gt(size, 8192);
  char junk[4096];
  memset(junk, 0x5a, sizeof junk);
  for (long at = 4096 + 100; at + (long)sizeof junk <= size; at += 4096) {
    fseek(f, at, SEEK_SET);
    fwrite(junk, 1, 1000, f);
  }
  fclose(f);
  lpq_error_t err = {0};
  st = lpq_store_open(db_path, &err);
  if (st == NULL) {
    cr_assert(err.code == LPQ_ECORRUPT || err.code == LPQ_EFORMAT, "%d %s", err.code, err.msg);
  } else {
    lpq_store_job_t *jobs;
    size_t n;
    int rc = lpq_store_job_list(st, LPQ_STORE_JOBS_ALL, &jobs, &n, &err);
    if (rc == 0)
      rc = lpq_store_eval_count(st, job, &n, &err);
    if (rc == 0) {
      lpq_store_eval_t got;
      for (int i = 0; i < 100 && rc == 0; i++)
        rc = lpq_store_eval_get(st, job, ev[i].genome_hash, &got, &err);
    }
    cr_assert(rc == LPQ_ECORRUPT || rc == LPQ_EFORMAT, "%d %s", rc, err.msg);
    lpq_store_close(&st);
  }
  cr_assert(strstr(err.msg, "damaged") || strstr(err.msg, "malformed") ||
            strstr(err.msg, "not a database"), "%s", err.msg);
}

/* A page damaged while the store is open (after its quick_check at open) is LPQ_ECORRUPT with
** a message saying so and what to do, not LPQ_EFORMAT (a client's malformed input). */
Test(store_errors, page_damaged_at_run_time) {
  lpq_store_t *st = open_ok();
  lpq_store_eval_t ev[100];
  const int64_t job = job_with_rows(st, ev);
  lpq_store_close(&st); /* checkpointed: the pages are in the main file */
  st = open_ok();       /* quick_check passes */
  sqlite3 *db;
  cr_assert_eq(sqlite3_open(db_path, &db), SQLITE_OK);
  sqlite3_stmt *q;
  cr_assert_eq(sqlite3_prepare_v2(db, "SELECT rootpage FROM sqlite_master WHERE name = "
                                  "'evaluations'", -1, &q, NULL), SQLITE_OK);
  cr_assert_eq(sqlite3_step(q), SQLITE_ROW);
  long root = (long)sqlite3_column_int64(q, 0);
  sqlite3_finalize(q);
  FILE *f = fopen(db_path, "r+b");
  cr_assert_not_null(f);
  char junk[4096];
  memset(junk, 0x5a, sizeof junk);
  fseek(f, (root - 1) * 4096, SEEK_SET);
  cr_assert_eq(fwrite(junk, 1, sizeof junk, f), sizeof junk);
  fclose(f);
  /* another connection's write changes the WAL: the store's page cache is dropped */
  cr_assert_eq(sqlite3_exec(db, "UPDATE jobs SET name = 'k'", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  lpq_error_t err = {0};
  lpq_store_eval_t got;
  int rc = 0;
  for (int i = 0; i < 100 && rc == 0; i++)
    rc = lpq_store_eval_get(st, job, ev[i].genome_hash, &got, &err);
  cr_assert_eq(rc, LPQ_ECORRUPT, "%d %s", rc, err.msg);
  cr_assert(strstr(err.msg, "damaged") && strstr(err.msg, "recover"), "%s", err.msg);
  lpq_store_close(&st);
}

Test(store_errors, another_programs_database) {
  sqlite3 *db;
  cr_assert_eq(sqlite3_open(db_path, &db), SQLITE_OK);
  cr_assert_eq(sqlite3_exec(db, "CREATE TABLE photos (id, path)", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  lpq_error_t err = {0};
  cr_assert_null(lpq_store_open(db_path, &err));
  cr_assert_eq(err.code, LPQ_EFORMAT);
  cr_assert(strstr(err.msg, "another program") != NULL, "%s", err.msg);
  /* a database with our version number but not our application id */
  cr_assert_eq(sqlite3_open(db_path, &db), SQLITE_OK);
  cr_assert_eq(sqlite3_exec(db, "PRAGMA user_version = 1", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  cr_assert_null(lpq_store_open(db_path, &err));
  cr_assert_eq(err.code, LPQ_EFORMAT);
  cr_assert(strstr(err.msg, "not an lpq store") != NULL, "%s", err.msg);
}

/* SQLITE_FULL in the middle of a batch: LPQ_EIO with SQLite's message naming the table, the
** whole batch rolled back, the earlier data intact, and the store usable once space returns. */
Test(store_errors, full_database_rolls_back_the_batch) {
  lpq_store_t *st = open_ok();
  int64_t job;
  cr_assert_eq(lpq_store_job_insert(st, "j", "{}", &job, NULL), 0);
  lpq_store_eval_t ev[200];
  for (int i = 0; i < 200; i++)
    ev[i] = eval_row(job, 0x100000001ull * (uint64_t)(i + 1));
  cr_assert_eq(lpq_store_eval_commit(st, ev, 100, NULL, NULL), 0);
  sqlite3_stmt *s;
  cr_assert_eq(sqlite3_prepare_v2(st->db, "PRAGMA page_count", -1, &s, NULL), SQLITE_OK);
  cr_assert_eq(sqlite3_step(s), SQLITE_ROW);
  int pages = sqlite3_column_int(s, 0);
  sqlite3_finalize(s);
  char sql[64];
  snprintf(sql, sizeof sql, "PRAGMA max_page_count = %d", pages);
  cr_assert_eq(sqlite3_exec(st->db, sql, NULL, NULL, NULL), SQLITE_OK);

  /* Rows with a large genome_json each need new pages. */
  char *big = malloc(20000);
  cr_assert_not_null(big);
  memset(big, ' ', 19999);
  big[0] = '[';
  big[19998] = ']';
  big[19999] = '\0';
  for (int i = 100; i < 200; i++)
    ev[i].genome_json = big;
  lpq_error_t err = {0};
  size_t inserted = 99;
  cr_assert_eq(lpq_store_eval_commit(st, ev + 100, 100, &inserted, &err), LPQ_EIO);
  cr_assert(strstr(err.msg, "evaluations") && strstr(err.msg, "full"), "%s", err.msg);
  cr_assert_eq(inserted, 0);
  size_t count;
  cr_assert_eq(lpq_store_eval_count(st, job, &count, &err), 0, "%s", err.msg);
  cr_assert_eq(count, 100);
  lpq_store_job_t j;
  cr_assert_eq(lpq_store_job_get(st, job, &j, NULL), 0);
  cr_assert_eq(j.evaluations_stored, 100, "the counter was rolled back with the rows");
  lpq_store_job_clear(&j);
  /* a generation too: its row, individuals and the job's progress go together or not at all */
  lpq_store_individual_t ind[50];
  for (int i = 0; i < 50; i++)
    ind[i] = (lpq_store_individual_t){.genome_hash = (uint64_t)i + 1, .genome_json = big};
  lpq_store_generation_t gen = {.job = job, .number = 0, .best_l_co = 0.5};
  cr_assert_eq(lpq_store_generation_commit(st, &gen, ind, 50, &err), LPQ_EIO);
  cr_assert(strstr(err.msg, "full") != NULL, "%s", err.msg);
  cr_assert_eq(lpq_store_job_get(st, job, &j, NULL), 0);
  cr_assert_eq(j.generation, -1);
  lpq_store_job_clear(&j);

  cr_assert_eq(sqlite3_exec(st->db, "PRAGMA max_page_count = 1000000", NULL, NULL, NULL),
               SQLITE_OK);
  cr_assert_eq(lpq_store_eval_commit(st, ev + 100, 100, &inserted, &err), 0, "%s", err.msg);
  cr_assert_eq(inserted, 100);
  lpq_store_close(&st);
  free(big);

  sqlite3 *db;
  cr_assert_eq(sqlite3_open(db_path, &db), SQLITE_OK);
  cr_assert_eq(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &s, NULL), SQLITE_OK);
  cr_assert_eq(sqlite3_step(s), SQLITE_ROW);
  cr_assert_str_eq((const char *)sqlite3_column_text(s, 0), "ok");
  sqlite3_finalize(s);
  sqlite3_close(db);
}

static int64_t count_rows(sqlite3 *db) {
  sqlite3_stmt *s;
  cr_assert_eq(sqlite3_prepare_v2(db, "SELECT count(*) FROM evaluations", -1, &s, NULL),
               SQLITE_OK);
  int rc = sqlite3_step(s);
  cr_assert_eq(rc, SQLITE_ROW, "reader: %s", sqlite3_errmsg(db));
  int64_t n = sqlite3_column_int64(s, 0);
  sqlite3_finalize(s);
  return n;
}

/* A reader in a read transaction keeps its snapshot while the writer commits. */
Test(store_errors, reader_keeps_its_snapshot) {
  lpq_store_t *st = open_ok();
  int64_t job;
  cr_assert_eq(lpq_store_job_insert(st, "j", "{}", &job, NULL), 0);
  lpq_store_eval_t ev[200];
  for (int i = 0; i < 200; i++)
    ev[i] = eval_row(job, (uint64_t)i + 1);
  cr_assert_eq(lpq_store_eval_commit(st, ev, 100, NULL, NULL), 0);
  sqlite3 *reader;
  cr_assert_eq(sqlite3_open_v2(db_path, &reader, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  cr_assert_eq(sqlite3_exec(reader, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
  cr_assert_eq(count_rows(reader), 100);
  lpq_error_t err = {0};
  cr_assert_eq(lpq_store_eval_commit(st, ev + 100, 100, NULL, &err), 0,
               "the writer is not blocked by the reader: %s", err.msg);
  cr_assert_eq(count_rows(reader), 100, "the snapshot holds");
  cr_assert_eq(sqlite3_exec(reader, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
  cr_assert_eq(count_rows(reader), 200);
  sqlite3_close(reader);
  lpq_store_close(&st);
}

typedef struct writer_arg_t {
  lpq_store_t *st;
  int64_t job;
  int batches;
  int failed;
  char msg[512];
} writer_arg_t;

static void *writer_main(void *p) {
  writer_arg_t *w = p;
  lpq_store_eval_t ev[100];
  for (int b = 0; b < w->batches; b++) {
    for (int i = 0; i < 100; i++)
      ev[i] = eval_row(w->job, (uint64_t)(b * 100 + i) * 0x9e3779b97f4a7c15ull + 7);
    lpq_error_t err = {0};
    if (lpq_store_eval_commit(w->st, ev, 100, NULL, &err) != 0) {
      w->failed = 1;
      snprintf(w->msg, sizeof w->msg, "%s", err.msg);
      break;
    }
  }
  return NULL;
}

/* Readers on their own connection, while the writer thread commits batches of 100: every
** count they see is whole batches, never decreasing, and no read fails. */
Test(store_errors, concurrent_readers_see_whole_batches) {
  lpq_store_t *st = open_ok();
  writer_arg_t w = {.st = st, .batches = getenv("LPQ_ASAN") != NULL ? 40 : 150};
  cr_assert_eq(lpq_store_job_insert(st, "j", "{}", &w.job, NULL), 0);
  sqlite3 *reader;
  cr_assert_eq(sqlite3_open_v2(db_path, &reader, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  sqlite3_busy_timeout(reader, 5000);
  pthread_t t;
  cr_assert_eq(pthread_create(&t, NULL, writer_main, &w), 0);
  int64_t last = 0, seen = 0, reads = 0;
  while (last < (int64_t)w.batches * 100 && reads < 1000000) {
    int64_t n = count_rows(reader);
    cr_assert_eq(n % 100, 0, "a reader saw %lld rows: part of a batch", (long long)n);
    cr_assert_geq(n, last);
    if (n != last)
      seen++;
    last = n;
    reads++;
    if (w.failed)
      break;
  }
  pthread_join(t, NULL);
  cr_assert_eq(w.failed, 0, "writer: %s", w.msg);
  cr_assert_eq(count_rows(reader), (int64_t)w.batches * 100);
  cr_assert_gt(seen, 1, "the reader ran beside the writer");
  sqlite3_close(reader);
  lpq_store_close(&st);
}
