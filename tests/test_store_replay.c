/* tests/test_store_replay.c: the store carries a search across a crash. A job runs through
** ask -> score -> commit results -> tell -> commit -> store the generation; a second copy is
** "killed" halfway through a generation (half of that generation's results committed, the
** search and the connection dropped), then resumed as lpq-coordinator will: list the
** unfinished jobs, create the search again from its settings and seed, replay each generation
** from the stored results by (job, genome), score only what is missing. It must end with the
** same archive, front and v_pareto as the job that never stopped, scoring no stored genome
** again. */
#include "coordinator/store/store_internal.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LAYERS 6
#define ACT_BITS_MAX 6.0

static lpq_layer_spec_t specs[LAYERS];
static char tmp_dir[256];
static size_t scored; /* calls of score() */

static void make_tmp(void) {
  const char *base = getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp";
  snprintf(tmp_dir, sizeof tmp_dir, "%s/lpq-replay-XXXXXX", base);
  cr_assert_not_null(mkdtemp(tmp_dir));
}

static void remove_tmp(void) {
  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
  cr_assert_eq(system(cmd), 0);
}

TestSuite(store_replay, .init = make_tmp, .fini = remove_tmp);

static lpq_search_space_t space(void) {
  for (int l = 0; l < LAYERS; l++) {
    specs[l] = (lpq_layer_spec_t){0};
    specs[l].weight_sf_seed = l % 3;
    specs[l].act_sf_seed = -(l % 2);
  }
  lpq_search_space_t sp;
  lpq_search_space_default(&sp);
  sp.layer_count = LAYERS;
  sp.layers = specs;
  return sp;
}

static lpq_search_settings_t settings(void) {
  lpq_search_settings_t set;
  lpq_search_settings_default(&set);
  set.seed = 77;
  set.population = 16;
  set.siblings = 2;
  set.constraint_count = 1;
  set.max_generations = 6;
  return set;
}

/* A worker's evaluation: a synthetic objective; genomes with hash 0 mod 23 fail. */
static lpq_store_eval_t score(int64_t job, const lpq_layer_formats_t *g) {
  scored++;
  lpq_store_eval_t e;
  memset(&e, 0, sizeof e);
  e.job = job;
  e.genome_hash = lpq_genome_hash(g, LAYERS);
  snprintf(e.worker, sizeof e.worker, "w%zu", scored % 2);
  e.top1 = e.latency_s = e.energy_pj = e.edp_js = NAN;
  if (e.genome_hash % 23 == 0) {
    e.status = LPQ_EIO;
    snprintf(e.error, sizeof e.error, "synthetic failure");
    return e;
  }
  double co = 0.0, act_bits = 0.0;
  for (size_t l = 0; l < LAYERS; l++) {
    const lp_format_t *w = &g[l].weight, *a = &g[l].act;
    co += pow(2.0, -w->n) * (1.0 + 0.3 * fabs(w->es - 1.5)) +
          0.01 * abs(w->sf - specs[l].weight_sf_seed) + pow(2.0, -a->n) +
          0.02 * abs(a->sf - specs[l].act_sf_seed);
    act_bits += a->n;
  }
  e.l_co = co;
  e.l_co_global = 0.5 * co;
  e.l_co_local = 0.5 * co;
  e.mean_weight_bits = lpq_genome_weight_bits(g, LAYERS, NULL);
  e.l_cr = e.mean_weight_bits / 32.0;
  e.mean_act_bits = act_bits / LAYERS;
  e.eval_ms = 1.0;
  return e;
}

/* What the search needs of a stored result; the constraint comes from the stored columns. */
static lpq_eval_result_t to_result(const lpq_store_eval_t *e) {
  lpq_eval_result_t r = {0};
  r.status = e->status;
  r.l_co = e->l_co;
  r.l_cr = e->l_cr;
  r.constraint[0] = e->mean_act_bits - ACT_BITS_MAX;
  return r;
}

/* Drives the job to its end, or, with crash_generation set, until half of that generation's
** new results are committed. Returns 1 when it "crashed". */
static int drive(lpq_store_t *st, int64_t job, lpq_search_t *s, size_t crash_generation) {
  lpq_error_t err = {0};
  while (lpq_search_should_stop(s) == LPQ_STOP_NONE) {
    const lpq_layer_formats_t *g;
    size_t n;
    cr_assert_eq(lpq_search_ask(s, &g, &n, &err), 0, "%s", err.msg);
    lpq_store_eval_t *fresh = calloc(n + 1, sizeof *fresh);
    lpq_eval_result_t *results = calloc(n + 1, sizeof *results);
    cr_assert(fresh != NULL && results != NULL);
    size_t missing = 0;
    for (size_t i = 0; i < n; i++) {
      const lpq_layer_formats_t *genome = g + i * LAYERS;
      lpq_store_eval_t stored;
      int rc = lpq_store_eval_get(st, job, lpq_genome_hash(genome, LAYERS), &stored, &err);
      if (rc == 0) {
        results[i] = to_result(&stored);
        continue;
      }
      cr_assert_eq(rc, LPQ_ENOTFOUND, "%s", err.msg);
      fresh[missing] = score(job, genome);
      results[i] = to_result(&fresh[missing]);
      missing++;
    }
    if (lpq_search_generation(s) == crash_generation && missing > 1) {
      cr_assert_eq(lpq_store_eval_commit(st, fresh, missing / 2, NULL, &err), 0, "%s", err.msg);
      free(fresh);
      free(results);
      return 1;
    }
    /* Committed before the search uses them. */
    cr_assert_eq(lpq_store_eval_commit(st, fresh, missing, NULL, &err), 0, "%s", err.msg);
    for (size_t i = 0; i < n; i++)
      cr_assert_eq(lpq_search_tell(s, i, &results[i], &err), 0, "%s", err.msg);
    cr_assert_eq(lpq_search_commit(s, &err), 0, "%s", err.msg);
    cr_assert_eq(lpq_store_search_generation(st, job, s, &err), 0, "%s", err.msg);
    free(fresh);
    free(results);
  }
  return 0;
}

static lpq_store_t *open_store(const char *name) {
  char path[400];
  snprintf(path, sizeof path, "%s/%s", tmp_dir, name);
  lpq_error_t err = {0};
  lpq_store_t *st = lpq_store_open(path, &err);
  cr_assert_not_null(st, "%s", err.msg);
  return st;
}

static int64_t start_job(lpq_store_t *st) {
  int64_t job;
  cr_assert_eq(lpq_store_job_insert(st, "replay", "{\"mode\": \"pareto\", \"seed\": 77}", &job,
                                    NULL),
               0);
  cr_assert_eq(lpq_store_job_set_status(st, job, LPQ_STORE_JOB_RUNNING, NULL, NULL), 0);
  return job;
}

static lpq_search_t *new_search(void) {
  lpq_search_space_t sp = space();
  lpq_search_settings_t set = settings();
  lpq_error_t err = {0};
  lpq_search_t *s = lpq_search_new(&sp, &set, &err);
  cr_assert_not_null(s, "%s", err.msg);
  return s;
}

static char *dump(lpq_store_t *st, const char *name, int64_t job) {
  char *json = NULL;
  lpq_error_t err = {0};
  lpq_store_dump_filter_t f = {.job = job};
  cr_assert_eq(lpq_store_dump_json(st, name, &f, &json, &err), 0, "%s", err.msg);
  return json;
}

Test(store_replay, a_killed_job_resumes_to_the_same_front) {
  /* The job that never stops. */
  lpq_store_t *a = open_store("a.db");
  int64_t job_a = start_job(a);
  lpq_search_t *sa = new_search();
  scored = 0;
  cr_assert_eq(drive(a, job_a, sa, SIZE_MAX), 0);
  size_t scored_a = scored;
  cr_assert_eq(scored_a, lpq_search_archive_count(sa));
  cr_assert_eq(lpq_store_job_set_status(a, job_a, LPQ_STORE_JOB_DONE, NULL, NULL), 0);

  /* The same job, killed in the middle of generation 3. */
  lpq_store_t *b = open_store("b.db");
  int64_t job_b = start_job(b);
  lpq_search_t *sb = new_search();
  scored = 0;
  cr_assert_eq(drive(b, job_b, sb, 3), 1);
  size_t scored_before = scored;
  lpq_search_free(&sb);
  lpq_store_close(&b);

  /* Restart: the unfinished job, replayed from the store. */
  b = open_store("b.db");
  lpq_store_job_t *jobs;
  size_t n;
  cr_assert_eq(lpq_store_job_list(b, LPQ_STORE_JOBS_UNFINISHED, &jobs, &n, NULL), 0);
  cr_assert_eq(n, 1);
  cr_assert_eq(jobs[0].id, job_b);
  cr_assert_eq(jobs[0].generation, 2, "generations 0..2 were committed");
  size_t stored_at_crash = jobs[0].evaluations_stored;
  lpq_store_job_list_free(&jobs, n);
  cr_assert_lt(stored_at_crash, scored_before, "half of generation 3 was lost");
  sb = new_search();
  scored = 0;
  cr_assert_eq(drive(b, job_b, sb, SIZE_MAX), 0);
  cr_assert_eq(scored, scored_a - stored_at_crash, "only the missing genomes were scored");

  /* The same search, and the same history in both databases. */
  cr_assert_eq(lpq_search_archive_count(sb), lpq_search_archive_count(sa));
  size_t *fa, *fb, ca, cb;
  cr_assert_eq(lpq_search_front(sa, &fa, &ca, NULL), 0);
  cr_assert_eq(lpq_search_front(sb, &fb, &cb, NULL), 0);
  cr_assert_eq(ca, cb);
  cr_assert_gt(ca, 0);
  for (size_t i = 0; i < ca; i++) {
    lpq_search_record_t ra, rb;
    lpq_search_archive_get(sa, fa[i], &ra);
    lpq_search_archive_get(sb, fb[i], &rb);
    cr_assert_eq(ra.hash, rb.hash, "front member %zu", i);
  }
  free(fa);
  free(fb);
  const char *compare[] = {"v_pareto", "individuals", "v_best_config"};
  for (size_t i = 0; i < 3; i++) {
    char *ja = dump(a, compare[i], job_a), *jb = dump(b, compare[i], job_b);
    cr_assert_str_eq(ja, jb, "%s differs", compare[i]);
    cr_assert_gt(strlen(ja), 2, "%s is empty", compare[i]);
    free(ja);
    free(jb);
  }
  size_t count_a, count_b;
  cr_assert_eq(lpq_store_eval_count(a, job_a, &count_a, NULL), 0);
  cr_assert_eq(lpq_store_eval_count(b, job_b, &count_b, NULL), 0);
  cr_assert_eq(count_a, count_b);
  cr_assert_eq(count_a, scored_a);

  /* The stored front is the search's: its size is the progress' front size. */
  lpq_store_job_t ja;
  cr_assert_eq(lpq_store_job_get(a, job_a, &ja, NULL), 0);
  const lpq_search_progress_t *h;
  size_t gens = lpq_search_history(sa, &h);
  cr_assert_eq(ja.generation, (int64_t)h[gens - 1].generation);
  cr_assert_eq(ja.front_size, h[gens - 1].front_size);
  lpq_store_job_clear(&ja);
  sqlite3_stmt *s;
  cr_assert_eq(sqlite3_prepare_v2(a->db, "SELECT count(*) FROM v_pareto", -1, &s, NULL),
               SQLITE_OK);
  cr_assert_eq(sqlite3_step(s), SQLITE_ROW);
  cr_assert_eq((size_t)sqlite3_column_int64(s, 0), h[gens - 1].front_size);
  sqlite3_finalize(s);

  lpq_search_free(&sa);
  lpq_search_free(&sb);
  lpq_store_close(&a);
  lpq_store_close(&b);
}

Test(store_replay, genome_json) {
  lpq_layer_formats_t g[2] = {{{4, 1, 3, 2}, {8, 2, 7, 0}, 0}, {{16, 4, 15, -64}, {0, 0, 0, 0}, 0}};
  char *json;
  cr_assert_eq(lpq_store_genome_json(g, 2, &json, NULL), 0);
  cr_assert_str_eq(json, "[{\"w\":\"lp<4,1,3,2>\",\"a\":\"lp<8,2,7,0>\"},"
                         "{\"w\":\"lp<16,4,15,-64>\",\"a\":\"fp32\"}]");
  free(json);
  cr_assert_eq(lpq_store_genome_json(g, 0, &json, NULL), 0);
  cr_assert_str_eq(json, "[]");
  free(json);
}
