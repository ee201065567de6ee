/* tests/test_pool.c: the dispatcher with real lpq-worker processes (--synthetic) on loopback:
** every task gets its result with 1, 2 and 3 workers; SIGTERM is a clean exit; a SIGKILLed or
** SIGSTOPped worker loses nothing; blobs are fetched by hash, verified and cached. */
#include "test_pool_harness.h"

#include <fcntl.h>

static size_t want_results;
static int cond_all_results(harness_t *h) { return h->results >= want_results; }

/* Submits n tasks over `jobs` jobs; returns the first id. Expected scores are recomputed from
** the same genomes, so a mixed-up result would not pass. */
static void submit_many(harness_t *h, size_t n, int jobs, lpq_layer_formats_t (*layers)[5]) {
  for (size_t i = 0; i < n; i++) {
    lpq_task_t t = h_task(1 + (int64_t)(i % (size_t)jobs), (unsigned)i, layers[i], 5);
    h_submit(h, &t);
  }
}

static void check_scores(harness_t *h, size_t n, lpq_layer_formats_t (*layers)[5]) {
  for (size_t i = 0; i < n; i++) {
    uint64_t id = i + 1; /* ids start at 1 in submission order */
    cr_assert_eq(h->got[id], 1, "task %zu: %u results", i, h->got[id]);
    lpq_task_t t = h_task(1 + (int64_t)(i % 3), (unsigned)i, layers[i], 5);
    lpq_result_t want;
    lpq_result_init(&want, id);
    lpq_synthetic_score(&t, &want);
    cr_assert_eq(h->res[id].status, 0, "task %zu: %s", i, h->res[id].error);
    cr_assert_eq(h->res[id].l_co, want.l_co, "task %zu", i);
    cr_assert_eq(h->res[id].l_cr, want.l_cr, "task %zu", i);
    cr_assert(strlen(h->res[id].worker_id) > 0);
  }
}

static int want_left;
static int cond_all_left(harness_t *h) { return h->left >= want_left; }

/* Every wait below has its own deadline (no Criterion .timeout: its watchdog leaks an entry
** under LeakSanitizer when suites run in parallel). */

Test(pool, one_two_three_workers_every_task_gets_a_result_and_sigterm_is_clean) {
  static lpq_layer_formats_t layers[300][5];
  for (int nw = 1; nw <= 3; nw++) {
    harness_t *h = calloc(1, sizeof *h);
    h_start(h, NULL);
    const char *ids[3] = {"w0", "w1", "w2"};
    for (int i = 0; i < nw; i++)
      h_spawn(h, ids[i], 2, 1, NULL);
    cr_assert(h_run_until(h, h_cond_joined_all, 60), "%d of %d workers joined", h->joined, nw);
    size_t n = 300;
    submit_many(h, n, 3, layers);
    want_results = n;
    cr_assert(h_run_until(h, cond_all_results, 60), "%zu of %zu results", h->results, n);
    check_scores(h, n, layers);
    /* every worker took part */
    for (int i = 0; i < nw; i++) {
      size_t mine = 0;
      for (size_t k = 1; k <= n; k++)
        mine += strcmp(h->res[k].worker_id, ids[i]) == 0;
      cr_assert_gt(mine, 0, "worker %s did nothing of %zu tasks with %d workers", ids[i], n, nw);
    }
    lpq_dispatch_stats_t st;
    lpq_dispatch_stats(h->d, &st);
    cr_assert_eq(st.completed, n);
    cr_assert_eq(st.workers, (size_t)nw);
    cr_assert_eq(st.tasks_queued + st.tasks_running, 0);
    lpq_worker_info_t *list;
    size_t count;
    lpq_error_t err;
    cr_assert_eq(lpq_dispatch_workers(h->d, &list, &count, &err), 0);
    cr_assert_eq(count, (size_t)nw);
    cr_assert_eq(list[0].threads, 2);
    cr_assert_str_eq(list[0].capabilities, "synthetic");
    free(list);
    /* SIGTERM: BYE and exit status 0 */
    for (int i = 0; i < nw; i++)
      kill(h->pids[i], SIGTERM);
    for (int i = 0; i < nw; i++)
      cr_assert_eq(h_wait_exit(h, i, 10), 0, "worker %d did not exit cleanly", i);
    want_left = nw; /* the BYEs may still be in flight: wait for them */
    h_run_until(h, cond_all_left, 60);
    cr_assert_eq(h->left, nw, "%d BYEs of %d", h->left, nw);
    h_stop(h);
    free(h);
  }
}

static int cond_two_running(harness_t *h) {
  lpq_dispatch_stats_t st;
  lpq_dispatch_stats(h->d, &st);
  return st.tasks_running == 2;
}

Test(pool, sigkilled_worker_task_is_dispatched_again) {
  harness_t *h = calloc(1, sizeof *h);
  /* heartbeats every 0.2 s, but 25 of them missed (5 s) before either side gives up: a loaded
  ** machine that starves a process for a moment must not expire the surviving worker; the
  ** killed one is expired 5 s after its death, which the waits below allow */
  lpq_dispatch_opts_t o = {.heartbeat_s = 0.2, .liveness = 25};
  h_start(h, &o);
  const char *fast[] = {"--heartbeat-ms", "200", "--liveness", "25", NULL};
  h_spawn(h, "a", 1, 1500, fast);
  h_spawn(h, "b", 1, 1500, fast);
  cr_assert(h_run_until(h, h_cond_joined_all, 60));
  lpq_layer_formats_t layers[2][5];
  for (int i = 0; i < 2; i++) {
    lpq_task_t t = h_task(7, (unsigned)i, layers[i], 5);
    h_submit(h, &t);
  }
  cr_assert(h_run_until(h, cond_two_running, 60));
  kill(h->pids[0], SIGKILL); /* mid-evaluation: 1.5 s each */
  waitpid(h->pids[0], NULL, 0);
  h->pids[0] = 0;
  want_results = 2;
  cr_assert(h_run_until(h, cond_all_results, 60), "%zu of 2 results", h->results);
  cr_assert_eq(h->ok, 2);
  cr_assert_eq(h->expired, 1);
  /* the killed worker's task ran twice, the second time on b */
  unsigned attempts = h->info[1].attempts + h->info[2].attempts;
  cr_assert_eq(attempts, 3, "attempts %u + %u", h->info[1].attempts, h->info[2].attempts);
  cr_assert_str_eq(h->res[1].worker_id, "b");
  cr_assert_str_eq(h->res[2].worker_id, "b");
  h_stop(h);
  free(h);
}

static pid_t stopped_pid;
static int cond_stopped_worker_busy(harness_t *h) {
  lpq_worker_info_t *list;
  size_t count;
  int busy = 0;
  if (lpq_dispatch_workers(h->d, &list, &count, NULL) != 0)
    return 0;
  for (size_t i = 0; i < count; i++)
    busy |= list[i].pid == (uint32_t)stopped_pid && list[i].running == 1;
  free(list);
  return busy;
}
static int cond_expired(harness_t *h) { return h->expired > 0; }
static int cond_rejoined(harness_t *h) { return h->joined >= 3; }

Test(pool, sigstopped_worker_expires_after_3s_and_its_task_runs_elsewhere) {
  harness_t *h = calloc(1, sizeof *h);
  h_start(h, NULL); /* the defaults: 3 x 1 s */
  h_spawn(h, "steady", 1, 200, NULL);
  h_spawn(h, "stopped", 1, 200, NULL);
  cr_assert(h_run_until(h, h_cond_joined_all, 60));
  lpq_layer_formats_t layers[12][5];
  for (int i = 0; i < 12; i++) {
    lpq_task_t t = h_task(1 + i % 2, (unsigned)i, layers[i], 5);
    h_submit(h, &t);
  }
  stopped_pid = h->pids[1];
  cr_assert(h_run_until(h, cond_stopped_worker_busy, 60));
  kill(stopped_pid, SIGSTOP);
  double t0 = h_now();
  cr_assert(h_run_until(h, cond_expired, 60), "the stopped worker was not expired");
  /* Not too early: the last heartbeat may have come up to one interval before the stop, so
  ** liveness 3 x 1 s expires it no sooner than 2 s after. How late depends on the machine's
  ** load, so no upper window: the wait above is the bound. */
  double silent = h->expired_at - t0;
  cr_assert(silent >= 2.0, "expired %.2f s after it stopped: before 3 missed heartbeats",
            silent);
  want_results = 12;
  cr_assert(h_run_until(h, cond_all_results, 60), "%zu of 12 results", h->results);
  cr_assert_eq(h->ok, 12);
  size_t rerun = 0;
  for (int id = 1; id <= 12; id++)
    rerun += h->info[id].attempts > 1;
  cr_assert_eq(rerun, 1, "%zu tasks ran twice", rerun);
  /* SIGCONT: it learns it is unknown (DISCONNECT), reconnects and joins again */
  kill(stopped_pid, SIGCONT);
  cr_assert(h_run_until(h, cond_rejoined, 60), "the resumed worker did not rejoin");
  for (int i = 0; i < 2; i++)
    kill(h->pids[i], SIGTERM);
  for (int i = 0; i < 2; i++)
    cr_assert_eq(h_wait_exit(h, i, 10), 0);
  h_stop(h);
  free(h);
}

/* Writes bytes to h->dir/blobs/NAME (NAME: a hash, possibly not of these bytes). */
static void put_blob(harness_t *h, const char *name, const uint8_t *p, size_t n) {
  char path[PATH_MAX + 80];
  snprintf(path, sizeof path, "%s/blobs/%s", h->dir, name);
  FILE *f = fopen(path, "wb");
  cr_assert_not_null(f);
  cr_assert_eq(fwrite(p, 1, n, f), n);
  fclose(f);
}

static int cond_results_1(harness_t *h) { return h->results >= want_results; }

Test(pool, blobs_are_fetched_by_hash_verified_and_cached) {
  harness_t *h = calloc(1, sizeof *h);
  lpq_dispatch_opts_t o = {.max_failures = 1};
  h_start(h, &o);
  size_t model_len = 3 * 1024 * 1024 + 12345; /* four chunks */
  uint8_t *model = malloc(model_len);
  for (size_t i = 0; i < model_len; i++)
    model[i] = (uint8_t)(i * 2654435761u >> 13);
  const uint8_t data[] = "calibration batch";
  char model_hash[65], data_hash[65], liar_hash[65], missing_hash[65];
  lpq_sha256_hex(model, model_len, model_hash);
  lpq_sha256_hex(data, sizeof data, data_hash);
  lpq_sha256_hex("what the liar claims", 20, liar_hash);
  lpq_sha256_hex("nobody has this", 15, missing_hash);
  put_blob(h, model_hash, model, model_len);
  put_blob(h, data_hash, data, sizeof data);
  put_blob(h, liar_hash, data, sizeof data); /* served bytes do not match the name */
  h_spawn(h, "fetcher", 1, 0, NULL);
  cr_assert(h_run_until(h, h_cond_joined_all, 60));

  lpq_layer_formats_t layers[4][5];
  const char *models[4] = {model_hash, liar_hash, missing_hash, model_hash};
  for (int i = 0; i < 3; i++) {
    lpq_task_t t = h_task(1, (unsigned)i, layers[i], 5);
    snprintf(t.model_hash, sizeof t.model_hash, "%s", models[i]);
    snprintf(t.data_hash, sizeof t.data_hash, "%s", data_hash);
    h_submit(h, &t);
  }
  want_results = 3;
  cr_assert(h_run_until(h, cond_results_1, 60), "%zu of 3 results", h->results);
  cr_assert_eq(h->res[1].status, 0, "%s", h->res[1].error);
  cr_assert_neq(h->res[2].status, 0);
  cr_assert(strstr(h->res[2].error, "hash to") != NULL, "%s", h->res[2].error);
  cr_assert_neq(h->res[3].status, 0);
  cr_assert(strstr(h->res[3].error, "not known") != NULL, "%s", h->res[3].error);

  /* The cache holds exactly the verified blobs, with the right bytes; nothing partial. */
  char path[PATH_MAX + 160], got[65];
  lpq_error_t err;
  snprintf(path, sizeof path, "%s/cache-fetcher/%s", h->dir, model_hash);
  cr_assert_eq(lpq_sha256_file_hex(path, got, &err), 0, "%s", err.msg);
  cr_assert_str_eq(got, model_hash);
  snprintf(path, sizeof path, "%s/cache-fetcher/%s", h->dir, liar_hash);
  cr_assert_neq(access(path, F_OK), 0, "a blob that failed its check was cached");
  char cmd[PATH_MAX + 80];
  snprintf(cmd, sizeof cmd, "ls -A '%s/cache-fetcher' | grep -c tmp", h->dir);
  FILE *ls = popen(cmd, "r");
  int tmp_files = -1;
  cr_assert_eq(fscanf(ls, "%d", &tmp_files), 1);
  pclose(ls);
  cr_assert_eq(tmp_files, 0);

  lpq_dispatch_stats_t st;
  lpq_dispatch_stats(h->d, &st);
  uint64_t bytes = st.blob_bytes;
  cr_assert_geq(bytes, model_len + sizeof data);
  /* a second task on the same blobs: served from the cache, nothing more sent */
  lpq_task_t t = h_task(1, 3, layers[3], 5);
  snprintf(t.model_hash, sizeof t.model_hash, "%s", model_hash);
  snprintf(t.data_hash, sizeof t.data_hash, "%s", data_hash);
  h_submit(h, &t);
  want_results = 4;
  cr_assert(h_run_until(h, cond_results_1, 60));
  cr_assert_eq(h->res[4].status, 0, "%s", h->res[4].error);
  lpq_dispatch_stats(h->d, &st);
  cr_assert_eq(st.blob_bytes, bytes);
  free(model);
  h_stop(h);
  free(h);
}

static int cond_joined_2(harness_t *h) { return h->joined >= 2; }

Test(pool, worker_rejoins_a_restarted_coordinator_on_the_same_endpoint) {
  harness_t *h = calloc(1, sizeof *h);
  h_start(h, NULL);
  h_spawn(h, "loyal", 1, 0, NULL);
  cr_assert(h_run_until(h, h_cond_joined_all, 60));
  char endpoint[256];
  snprintf(endpoint, sizeof endpoint, "%s", lpq_dispatch_endpoint(h->d));
  /* the coordinator goes away (as if killed) and comes back on the same endpoint */
  lpq_dispatch_free(&h->d);
  h_run_for(h, 1.0);
  lpq_dispatch_callbacks_t cb = {h_on_result, h_on_worker, h_blob_path, h_on_log, h};
  lpq_error_t err;
  h->d = lpq_dispatch_new(&h->loop, endpoint, NULL, &cb, &err);
  cr_assert_not_null(h->d, "%s", err.msg);
  cr_assert(h_run_until(h, cond_joined_2, 60), "the worker did not join the new coordinator");
  lpq_layer_formats_t layers[5];
  lpq_task_t t = h_task(1, 1, layers, 5);
  h_submit(h, &t);
  want_results = 1;
  cr_assert(h_run_until(h, cond_all_results, 60));
  cr_assert_eq(h->res[1].status, 0);
  cr_assert_str_eq(h->res[1].worker_id, "loyal");
  kill(h->pids[0], SIGTERM);
  cr_assert_eq(h_wait_exit(h, 0, 10), 0);
  h_stop(h);
  free(h);
}

static int cond_one_running(harness_t *h) {
  lpq_dispatch_stats_t st;
  lpq_dispatch_stats(h->d, &st);
  return st.tasks_running == 1;
}

static int cond_result_and_bye(harness_t *h) { return h->results >= 1 && h->left >= 1; }

Test(pool, sigterm_finishes_the_running_task_then_says_bye) {
  harness_t *h = calloc(1, sizeof *h);
  h_start(h, NULL);
  h_spawn(h, "leaving", 1, 800, NULL);
  cr_assert(h_run_until(h, h_cond_joined_all, 60));
  lpq_layer_formats_t layers[3][5];
  for (int i = 0; i < 3; i++) {
    lpq_task_t t = h_task(1, (unsigned)i, layers[i], 5);
    h_submit(h, &t);
  }
  cr_assert(h_run_until(h, cond_one_running, 60));
  /* The coordinator counts the task running once it is sent; the worker starts it when its
  ** thread takes it from the queue, and a SIGTERM before that rightly hands it back (this
  ** test failed once in ~25 runs that way). The evaluation takes 800 ms: 250 ms of serving
  ** puts the signal well inside it. */
  h_run_for(h, 0.25);
  kill(h->pids[0], SIGTERM); /* mid-evaluation */
  cr_assert_eq(h_wait_exit(h, 0, 10), 0);
  /* the result and BYE may still be in flight on a loaded machine: wait for both events */
  h_run_until(h, cond_result_and_bye, 60);
  /* the running task was finished and delivered; the worker left; the rest wait */
  lpq_dispatch_stats_t st0;
  lpq_dispatch_stats(h->d, &st0);
  cr_assert_eq(h->results, 1, "%zu results, %d BYEs, %d joined; pool: %llu workers, %llu "
               "running, %llu queued, %llu expired", h->results, h->left, h->joined,
               (unsigned long long)st0.workers, (unsigned long long)st0.tasks_running,
               (unsigned long long)st0.tasks_queued, (unsigned long long)st0.workers_expired);
  cr_assert_eq(h->res[1].status, 0, "%s", h->res[1].error);
  cr_assert_str_eq(h->res[1].worker_id, "leaving");
  cr_assert_eq(h->left, 1);
  lpq_dispatch_stats_t st;
  lpq_dispatch_stats(h->d, &st);
  cr_assert_eq(st.workers, 0);
  cr_assert_eq(st.tasks_queued, 2);
  /* a new worker takes them */
  h_spawn(h, "next", 1, 0, NULL);
  want_results = 3;
  cr_assert(h_run_until(h, cond_all_results, 60));
  cr_assert_eq(h->ok, 3);
  cr_assert_str_eq(h->res[3].worker_id, "next");
  h_stop(h);
  free(h);
}

/* The waits of the "reconnecting in N s" lines of a worker's log, at most cap. */
static int reconnect_waits(const char *log, int *waits, int cap) {
  FILE *f = fopen(log, "r");
  if (f == NULL)
    return 0;
  char line[512];
  int n = 0;
  while (fgets(line, sizeof line, f) && n < cap) {
    const char *p = strstr(line, "reconnecting in ");
    if (p != NULL)
      waits[n++] = atoi(p + strlen("reconnecting in "));
  }
  fclose(f);
  return n;
}

Test(pool, silent_coordinator_reconnect_backs_off_1s_then_2s) {
  harness_t *h = calloc(1, sizeof *h);
  h_start(h, NULL);
  /* a port where nobody answers: the dispatcher's own, bound by no ROUTER after it is freed */
  char endpoint[256], log[PATH_MAX + 16];
  snprintf(endpoint, sizeof endpoint, "%s", lpq_dispatch_endpoint(h->d));
  lpq_dispatch_free(&h->d);
  h->d = NULL;
  snprintf(log, sizeof log, "%s/worker.log", h->dir);
  h->connect = endpoint;
  h->worker_stderr = log;
  const char *fast[] = {"--heartbeat-ms", "100", NULL};
  h_spawn(h, "patient", 1, 0, fast);
  /* 0.3 s silence, 1 s wait, 0.3 s silence, 2 s wait, ...: wait for two reconnects logged
  ** (the event), not for a fixed time */
  int waits[8], n = 0;
  double t0 = h_now();
  while (n < 2 && h_now() - t0 < 60) {
    uv_run(&h->loop, UV_RUN_NOWAIT);
    usleep(50000);
    n = reconnect_waits(log, waits, 8);
  }
  kill(h->pids[0], SIGTERM);
  cr_assert_eq(h_wait_exit(h, 0, 60), 0, "no clean exit while backing off");
  n = reconnect_waits(log, waits, 8);
  cr_assert_geq(n, 2, "%d reconnects logged", n);
  cr_assert_eq(waits[0], 1);
  cr_assert_eq(waits[1], 2);
  h_stop(h);
  free(h);
}
