/* tests/test_hostile_limits.c: the real lpq-coordinator (and lpq-worker) against requests that
** are legitimate but ask too much (issue 17): a job's max_seconds holds also for its first
** generation; settings are bounded by what the machine can hold, the limit named; the job's
** search is built off the loop; uploads no job references are collected; plain-text tokens
** beyond loopback and token files others can read are refused; a database damaged at run time
** gives its own error. */
#include "tests/proc_harness.h"

#include "common/common.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <math.h>
#include <sqlite3.h>
#include <poll.h>
#include <sys/wait.h>
#include <signal.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

TestSuite(hostile_limits, .timeout = 180);

/* Under make check-asan the programs run several times slower: latencies are not asserted. */
static int asan(void) { return getenv("LPQ_ASAN") != NULL; }

static void start(proc_svc_t *s) {
  cr_assert_eq(proc_svc_init(s, "lpq-hostile"), 0);
  cr_assert_eq(proc_svc_start_coordinator(s), 0, "the coordinator did not start (see %s)",
               s->log);
}

/* A first generation of 60 genomes at 250 ms each on one worker takes 15 s; max_seconds=3 must
** end the job in about 3 s, with what was scored by then. */
Test(hostile_limits, max_seconds_cuts_the_first_generation) {
  proc_svc_t s;
  start(&s);
  cr_assert_eq(proc_svc_start_worker(&s, "250", "1"), 0);
  /* a first small job: the worker has the blobs and the model when the timed one comes */
  int64_t id = proc_lpqctl_submit(NULL, s.sock, "--set population=4 --set generations=1");
  char *st = proc_lpqctl_wait(NULL, s.sock, id, 60);
  cr_assert_str_eq(st, "done");
  free(st);
  double t0 = proc_now_s();
  id = proc_lpqctl_submit(NULL, s.sock, "--set population=60 --set generations=5 "
                          "--set max_seconds=3");
  cr_assert_gt(id, 0);
  st = proc_lpqctl_wait(NULL, s.sock, id, 60);
  double took = proc_now_s() - t0;
  /* the deadline holds whatever the machine's speed (ASan, a loaded machine: more slack) */
  cr_assert_lt(took, 3.0 + (asan() ? 10.0 : 3.0), "max_seconds=3 ran %.1f s", took);
  json_t *r = proc_rpc_result(&s.api, "job.get", json_pack("{sI}", "job", (json_int_t)id));
  cr_assert_not_null(r, "%s", s.api.error);
  if (strcmp(st, "failed") == 0) { /* too slow here to score anything in time: it says so */
    const char *why = json_string_value(json_object_get(r, "error"));
    cr_assert(why && strstr(why, "max_seconds"), "%s", json_dumps(r, 0));
    free(st);
    json_decref(r);
    proc_svc_stop(&s);
    return;
  }
  cr_assert_str_eq(st, "done", "job %lld: %s", (long long)id, st);
  free(st);
  json_int_t evals = json_integer_value(json_object_get(r, "evaluations"));
  cr_assert(evals > 0 && evals < 60, "%s", json_dumps(r, 0));
  cr_assert_str_eq(json_string_value(json_object_get(r, "stop_reason")), "wall time");
  cr_assert_gt(json_integer_value(json_object_get(r, "front_size")), 0, "%s", json_dumps(r, 0));
  json_decref(r);
  proc_svc_stop(&s);
}

/* server.stats on its own connection while a job of population 100000 is built and dispatched:
** the slowest answer, in seconds, over `seconds`. */
static double slowest_stats(proc_svc_t *s, double seconds) {
  proc_rpc_t c;
  proc_rpc_init(&c, s->sock);
  double worst = 0, end = proc_now_s() + seconds;
  while (proc_now_s() < end) {
    double t = proc_now_s();
    json_t *r = proc_rpc_result(&c, "server.stats", NULL);
    cr_assert_not_null(r, "%s", c.error);
    json_decref(r);
    worst = fmax(worst, proc_now_s() - t);
    usleep(5000);
  }
  proc_rpc_close(&c);
  return worst;
}

/* A population the machine cannot hold is refused at submit, the limit named; one it can is
** built and dispatched without holding the loop (it took 3.5-5 s on the loop). */
Test(hostile_limits, settings_bounded_and_search_built_off_the_loop) {
  proc_svc_t s;
  cr_assert_eq(proc_svc_init(&s, "lpq-hostile"), 0);
  s.extra[0] = "--max-job-mb";
  s.extra[1] = "256";
  cr_assert_eq(proc_svc_start_coordinator(&s), 0, "see %s", s.log);
  json_t *r = proc_rpc_call(&s.api, "job.submit",
                            json_pack("{s{ss} s{ss} s{si}}", "model", "path",
                                      proc_fixture("score_small.onnx"), "data", "path",
                                      proc_fixture("score_small_x.npy"), "settings",
                                      "population", 100000));
  cr_assert_eq(json_integer_value(json_object_get(json_object_get(r, "error"), "code")), -32002,
               "%s", json_dumps(r, 0));
  const char *msg = json_string_value(json_object_get(json_object_get(r, "error"), "message"));
  cr_assert(strstr(msg, "settings.population") && strstr(msg, "--max-job-mb") &&
            strstr(msg, "256 MB"), "%s", msg);
  json_t *data = json_object_get(json_object_get(r, "error"), "data");
  cr_assert_eq(json_integer_value(json_object_get(data, "limit")), (json_int_t)256 << 20);
  cr_assert_gt(json_integer_value(json_object_get(data, "bytes")), (json_int_t)256 << 20);
  json_decref(r);
  /* the first generation only: it fits, and is built and dispatched while the API answers (as
  ** fast as when idle, give or take what this shared machine's load adds) */
  double idle = slowest_stats(&s, 1.5);
  r = proc_rpc_result(&s.api, "job.submit",
                      json_pack("{s{ss} s{ss} s{si si}}", "model", "path",
                                proc_fixture("score_small.onnx"), "data", "path",
                                proc_fixture("score_small_x.npy"), "settings", "population",
                                100000, "max_evaluations", 100000));
  cr_assert_not_null(r, "%s", s.api.error);
  json_decref(r);
  double worst = slowest_stats(&s, 3.0);
  if (asan() || idle > 0.05) /* these suites run at idle priority: a loaded machine's scheduler */
    fprintf(stderr, "server.stats took %.3f s when idle: the slowest while building (%.3f s) "
            "is not judged\n", idle, worst);
  else
    cr_assert_lt(worst, 0.5 + 2 * idle, "server.stats waited %.3f s while the job was built "
                 "(%.3f s when idle)", worst, idle);
  proc_svc_stop(&s);
}

/* A generation of a large population is applied, ranked, stored and followed by the next
** batch while the API answers: that work is on the work queue, and its rows are written a slice
** at a time (on the loop it was ~0.3 s at population 8000, and minutes with the old pairwise
** NSGA-II sort). The generation is stored whole. */
Test(hostile_limits, large_generation_committed_off_the_loop) {
  proc_svc_t s;
  start(&s);
  cr_assert_eq(proc_svc_start_worker(&s, "0", "8"), 0);
  json_int_t population = asan() ? 2000 : 8000;
  double idle = slowest_stats(&s, 1.0);
  json_t *r = proc_rpc_result(&s.api, "job.submit",
                              json_pack("{s{ss} s{ss} s{sI si si}}", "model", "path",
                                        proc_fixture("score_small.onnx"), "data", "path",
                                        proc_fixture("score_small_x.npy"), "settings",
                                        "population", population, "siblings", 0,
                                        "generations", 1));
  cr_assert_not_null(r, "%s", s.api.error);
  json_int_t id = json_integer_value(json_object_get(r, "job"));
  json_decref(r);
  proc_rpc_t c;
  proc_rpc_init(&c, s.sock);
  double worst = 0, end = proc_now_s() + 170, next_get = 0;
  const char *status = "";
  json_t *job = NULL;
  while (proc_now_s() < end) {
    double t = proc_now_s();
    json_t *st = proc_rpc_result(&c, "server.stats", NULL);
    cr_assert_not_null(st, "%s", c.error);
    json_decref(st);
    worst = fmax(worst, proc_now_s() - t);
    if (proc_now_s() >= next_get) { /* how far the job is, every half second */
      json_decref(job);
      job = proc_rpc_result(&s.api, "job.get", json_pack("{sI}", "job", id));
      cr_assert_not_null(job, "%s", s.api.error);
      status = json_string_value(json_object_get(job, "status"));
      if (json_is_true(json_object_get(job, "final")))
        break;
      next_get = proc_now_s() + 0.5;
    }
    usleep(5000);
  }
  proc_rpc_close(&c);
  cr_assert_str_eq(status, "done", "%s", json_dumps(job, 0));
  json_decref(job);
  if (asan() || idle > 0.05)
    fprintf(stderr, "server.stats took %.3f s when idle: the slowest while the job ran (%.3f s) "
            "is not judged\n", idle, worst);
  else
    cr_assert_lt(worst, 0.25 + 2 * idle, "server.stats waited %.3f s while a generation of %lld "
                 "was committed (%.3f s when idle)", worst, (long long)population, idle);
  /* every member of the last generation was written */
  r = proc_rpc_result(&s.api, "job.pareto", json_pack("{sI sI}", "job", id, "generation", 1));
  cr_assert_not_null(r, "%s", s.api.error);
  cr_assert_eq((json_int_t)json_array_size(json_object_get(r, "individuals")), population);
  json_decref(r);
  proc_svc_stop(&s);
}

static int blob_exists(const proc_svc_t *s, const char *hash) {
  char path[256];
  snprintf(path, sizeof path, "%s.blobs/%.2s/%s", s->db, hash, hash);
  return access(path, F_OK) == 0;
}

static char *put_blob(proc_svc_t *s, const char *path) {
  FILE *f = fopen(path, "rb");
  cr_assert_not_null(f, "%s", path);
  static unsigned char bytes[1 << 20];
  size_t n = fread(bytes, 1, sizeof bytes, f);
  fclose(f);
  static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  char *b64 = malloc(4 * (n / 3 + 1) + 1), *o = b64;
  for (size_t i = 0; i < n; i += 3) {
    unsigned v = (unsigned)bytes[i] << 16 | (i + 1 < n ? (unsigned)bytes[i + 1] << 8 : 0) |
                 (i + 2 < n ? bytes[i + 2] : 0);
    *o++ = tab[v >> 18 & 63];
    *o++ = tab[v >> 12 & 63];
    *o++ = i + 1 < n ? tab[v >> 6 & 63] : '=';
    *o++ = i + 2 < n ? tab[v & 63] : '=';
  }
  *o = 0;
  json_t *r = proc_rpc_result(&s->api, "blob.put", json_pack("{ss}", "base64", b64));
  free(b64);
  cr_assert_not_null(r, "%s", s->api.error);
  char *hash = strdup(json_string_value(json_object_get(r, "hash")));
  json_decref(r);
  return hash;
}

/* Uploads no job names are removed after the grace period; those a job names stay. */
Test(hostile_limits, unreferenced_uploads_are_collected) {
  proc_svc_t s;
  cr_assert_eq(proc_svc_init(&s, "lpq-hostile"), 0);
  s.extra[0] = "--blob-grace-s";
  s.extra[1] = "4";
  cr_assert_eq(proc_svc_start_coordinator(&s), 0, "see %s", s.log);
  char *model = put_blob(&s, proc_fixture("score_small.onnx"));
  char *data = put_blob(&s, proc_fixture("score_small_x.npy"));
  json_t *r = proc_rpc_result(&s.api, "job.submit",
                              json_pack("{s{ss} s{ss} s{si}}", "model", "hash", model, "data",
                                        "hash", data, "settings", "generations", 1));
  cr_assert_not_null(r, "%s", s.api.error);
  json_decref(r);
  char *unused = put_blob(&s, proc_fixture("score_small_config.json"));
  cr_assert(blob_exists(&s, unused));
  int gone = 0;
  for (int i = 0; i < 300 && !gone; i++) {
    usleep(100000);
    gone = !blob_exists(&s, unused);
  }
  cr_assert(gone, "an upload no job names was kept past the grace period");
  cr_assert(blob_exists(&s, model) && blob_exists(&s, data), "a job's blobs were removed");
  r = proc_rpc_call(&s.api, "job.submit", json_pack("{s{ss} s{ss}}", "model", "hash", model,
                                                    "data", "hash", unused));
  cr_assert_eq(json_integer_value(json_object_get(json_object_get(r, "error"), "code")),
               -32011, "%s", json_dumps(r, 0));
  json_decref(r);
  free(model);
  free(data);
  free(unused);
  proc_svc_stop(&s);
}

/* The bearer token travels in plain text: --tcp beyond loopback is refused without --insecure
** (the worker pool's rule), and so is a token file other users can read. */
Test(hostile_limits, plain_text_token_beyond_loopback_refused) {
  proc_svc_t s;
  cr_assert_eq(proc_svc_init(&s, "lpq-hostile"), 0);
  char tok[160], any[64], local[64];
  snprintf(tok, sizeof tok, "%s/token", s.dir);
  FILE *f = fopen(tok, "w");
  fputs("hostile-test-token-0123456789\n", f);
  fclose(f);
  chmod(tok, 0600);
  int port = 24000 + getpid() % 20000;
  snprintf(any, sizeof any, "0.0.0.0:%d", port);
  snprintf(local, sizeof local, "127.0.0.1:%d", port);
  const char *extra[] = {"--tcp", any, "--token-file", tok, NULL};
  memcpy(s.extra, extra, sizeof extra);
  cr_assert_eq(proc_svc_start_coordinator(&s), -1, "--tcp %s served without --insecure", any);
  cr_assert(proc_file_has(s.log, "plain text") && proc_file_has(s.log, "--insecure"),
            "the refusal does not say why (see %s)", s.log);
  chmod(tok, 0644);
  s.extra[1] = local;
  cr_assert_eq(proc_svc_start_coordinator(&s), -1, "a token file of mode 0644 was accepted");
  cr_assert(proc_file_has(s.log, "can be read by every user"), "see %s", s.log);
  chmod(tok, 0600);
  s.extra[1] = any;
  s.extra[4] = "--insecure";
  cr_assert_eq(proc_svc_start_coordinator(&s), 0, "--insecure did not allow it (see %s)", s.log);
  proc_svc_stop(&s);
}

/* A 40 MB blob.put line (30 MiB of bytes) is parsed off the loop: server.stats on another
** connection keeps answering while it is sent, parsed and stored (1.5-2.3 s stalls before). */
Test(hostile_limits, large_request_line_parsed_off_the_loop) {
  proc_svc_t s;
  start(&s);
  /* what this shared machine's load adds; under ASan or load the upload takes minutes at 30 MiB:
  ** then 8 MiB (still parsed off the loop) and the latency is not judged */
  double idle = slowest_stats(&s, 1.0);
  int judge = !asan() && idle < 0.05;
  size_t raw = (size_t)(judge ? 30 : 8) << 20, b64 = raw / 3 * 4;
  const char *head = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"blob.put\",\"params\":{\"base64\":\"";
  const char *tail = "\"}}\n";
  size_t n = strlen(head) + b64 + strlen(tail);
  char *line = malloc(n + 1);
  cr_assert_not_null(line);
  strcpy(line, head);
  memset(line + strlen(head), 'Q', b64);
  strcpy(line + strlen(head) + b64, tail);
  char reply_path[160];
  snprintf(reply_path, sizeof reply_path, "%s/reply", s.dir);
  pid_t child = fork();
  cr_assert_geq(child, 0);
  if (child == 0) {
    int fd = proc_unix_connect(s.sock);
    char buf[512] = "";
    ssize_t got = fd >= 0 ? proc_roundtrip(fd, line, n, buf, sizeof buf) : -1;
    FILE *f = fopen(reply_path, "w");
    if (f) {
      fprintf(f, "%s\n", got > 0 ? buf : "(no reply)");
      fclose(f);
    }
    _exit(got > 0 && strstr(buf, "\"hash\"") ? 0 : 1);
  }
  free(line);
  proc_rpc_t c;
  proc_rpc_init(&c, s.sock);
  double worst = 0, t_start = proc_now_s(), end = t_start + 150;
  int status = -1;
  while (proc_now_s() < end && waitpid(child, &status, WNOHANG) == 0) {
    double t = proc_now_s();
    json_t *r = proc_rpc_result(&c, "server.stats", NULL);
    cr_assert_not_null(r, "%s", c.error);
    json_decref(r);
    worst = fmax(worst, proc_now_s() - t);
    usleep(5000);
  }
  char reply[512] = "";
  FILE *rf = fopen(reply_path, "r");
  if (rf) {
    if (!fgets(reply, sizeof reply, rf))
      reply[0] = 0;
    fclose(rf);
  }
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the upload failed: %s", reply);
  /* an upload takes 3-4 s here; far longer means a machine too loaded (these tests run at idle
  ** priority) to tell the loop's stalls from the scheduler's */
  double took = proc_now_s() - t_start;
  if (!judge || took > 10.0)
    fprintf(stderr, "upload took %.1f s: the slowest server.stats (%.3f s) is not judged\n",
            took, worst);
  else
    cr_assert_lt(worst, 0.5 + 2 * idle, "server.stats waited %.3f s while the line was parsed "
                 "(%.3f s when idle)", worst, idle);
  json_t *r = proc_rpc_result(&c, "server.stats", NULL);
  cr_assert_geq(json_integer_value(json_object_get(json_object_get(r, "connections"),
                                                   "parsed_off_loop")), 1, "%s",
                json_dumps(r, 0));
  json_decref(r);
  proc_rpc_close(&c);
  proc_svc_stop(&s);
}

/* A request sent a byte every 250 ms is dropped after the request timeout (10 s), on the
** Unix socket too, where every client is authenticated. */
Test(hostile_limits, slow_sender_dropped_after_auth) {
  proc_svc_t s;
  start(&s);
  int fd = proc_unix_connect(s.sock);
  cr_assert_geq(fd, 0);
  const char *req = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"server.stats\",\"params\":{}}\n";
  double t0 = proc_now_s();
  int answered = 0;
  for (size_t i = 0; i < strlen(req) && !answered; i++) {
    if (write(fd, req + i, 1) != 1)
      break;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    answered = poll(&p, 1, 250) > 0;
  }
  char buf[4096];
  struct pollfd p = {.fd = fd, .events = POLLIN};
  ssize_t got = poll(&p, 1, 3000) > 0 ? read(fd, buf, sizeof buf - 1) : -1;
  buf[got > 0 ? got : 0] = 0;
  cr_assert(strstr(buf, "not complete"), "the slow request was not dropped: '%s'", buf);
  cr_assert_lt(proc_now_s() - t0, 14.0);
  close(fd);
  proc_svc_stop(&s);
}

/* A page of the database damaged while the coordinator runs (after its check at start): the
** request that meets it says the database is damaged (-32020), not "bad input" (-32015). */
Test(hostile_limits, database_damaged_at_run_time_is_named) {
  proc_svc_t s;
  start(&s);
  cr_assert_eq(proc_svc_start_worker(&s, "1", "1"), 0);
  int64_t id = proc_lpqctl_submit(NULL, s.sock, "--set population=8 --set generations=1");
  cr_assert_gt(id, 0);
  char *st = proc_lpqctl_wait(NULL, s.sock, id, 60);
  cr_assert_str_eq(st, "done");
  free(st);
  cr_assert_eq(proc_svc_stop_coordinator(&s, 10), 0); /* checkpointed into the main file */
  cr_assert_eq(proc_svc_start_coordinator(&s), 0, "see %s", s.log);
  sqlite3 *db;
  cr_assert_eq(sqlite3_open(s.db, &db), SQLITE_OK);
  sqlite3_stmt *q;
  cr_assert_eq(sqlite3_prepare_v2(db, "SELECT rootpage FROM sqlite_master WHERE name = "
                                  "'evaluations'", -1, &q, NULL), SQLITE_OK);
  cr_assert_eq(sqlite3_step(q), SQLITE_ROW);
  long root = (long)sqlite3_column_int64(q, 0);
  sqlite3_finalize(q);
  int fd = open(s.db, O_RDWR);
  cr_assert_geq(fd, 0);
  static char junk[4096];
  memset(junk, 0x5a, sizeof junk);
  cr_assert_eq(pwrite(fd, junk, sizeof junk, (off_t)(root - 1) * 4096), (ssize_t)sizeof junk);
  close(fd);
  /* another connection's write changes the WAL, so the coordinator reads the page again; a
  ** read transaction held open keeps a checkpoint from resetting the WAL meanwhile */
  cr_assert_eq(sqlite3_exec(db, "UPDATE jobs SET name = 'touched'; BEGIN; "
                            "SELECT count(*) FROM jobs", NULL, NULL, NULL), SQLITE_OK);
  json_t *r = proc_rpc_call(&s.api, "db.query", json_pack("{ss}", "table", "evaluations"));
  sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
  sqlite3_close(db);
  json_t *e = json_object_get(r, "error");
  cr_assert_eq(json_integer_value(json_object_get(e, "code")), -32020, "%s", json_dumps(r, 0));
  cr_assert(strstr(json_string_value(json_object_get(e, "message")), "damaged"), "%s",
            json_dumps(r, 0));
  json_decref(r);
  proc_svc_stop(&s);
}

/* Data with an infinity is refused at submit saying "infinite" (it failed the job later as
** "layer 2 input: calibrate: element 0 is NaN"). */
Test(hostile_limits, infinite_data_named_at_submit) {
  proc_svc_t s;
  start(&s);
  lpq_array_t *x = NULL;
  cr_assert_eq(lpq_load_array(proc_fixture("score_small_x.npy"), &x, NULL), 0);
  size_t per = x->count / (size_t)x->shape[0];
  ((float *)x->data)[per + 5] = INFINITY; /* sample 1, value 5 */
  char path[160];
  snprintf(path, sizeof path, "%s/inf.npy", s.dir);
  cr_assert_eq(lpq_save_npy(path, x, NULL), 0);
  lpq_array_free(&x);
  json_t *r = proc_rpc_call(&s.api, "job.submit",
                            json_pack("{s{ss} s{ss}}", "model", "path",
                                      proc_fixture("score_small.onnx"), "data", "path", path));
  json_t *e = json_object_get(r, "error");
  cr_assert_eq(json_integer_value(json_object_get(e, "code")), -32015, "%s", json_dumps(r, 0));
  const char *msg = json_string_value(json_object_get(e, "message"));
  cr_assert(strstr(msg, "value 5 of sample 1 is infinite (+inf)") && !strstr(msg, "NaN"), "%s",
            msg);
  json_decref(r);
  proc_svc_stop(&s);
}
