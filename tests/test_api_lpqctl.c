/* tests/test_api_lpqctl.c: the lpqctl binary (fork/exec of build/bin/lpqctl) against a server
** in this process whose fake daemon methods answer with results that match schema/api (the
** test checks that too): submit with progress, list, status, errors, pareto with its SVG plot,
** export, history as CSV, workers over TCP, and a coordinator that is not there. */
#include "tests/test_api_harness.h"

#include <fcntl.h>
#include <libgen.h>
#include <pty.h>
#include <sys/stat.h>
#include <sys/wait.h>

static harness_t h;
static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;
static json_t *seen_submit; /* the last job.submit params, for the test thread */
static const char onnx_bytes[] = "not really ONNX, but bytes that must arrive intact\x01\x02\xff";

#define HASH64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* Answers with result after checking it against the method's result schema. */
static void reply_checked(lpq_api_call_t *call, json_t *result) {
  lpq_error_t err;
  const char *m = lpq_api_call_method(call);
  if (lpq_api_check(m, "result", result, &err) != 0) {
    lpq_api_reply_error(call, LPQ_API_E_INTERNAL, NULL, "fake %s breaks its schema: %s", m, err.msg);
    json_decref(result);
    return;
  }
  lpq_api_reply(call, result);
}

static int job_known(lpq_api_call_t *call, json_t *params) {
  json_int_t job = json_integer_value(json_object_get(params, "job"));
  if (job == 7)
    return 1;
  lpq_api_reply_error(call, LPQ_API_E_JOB_NOT_FOUND, NULL, "job %lld not found", (long long)job);
  return 0;
}

static void f_blob_put(void *ctx, lpq_api_call_t *call, json_t *params) {
  (void)ctx;
  const char *b64 = json_string_value(json_object_get(params, "base64"));
  unsigned char *bytes;
  size_t len;
  lpq_error_t err;
  if (lpq_base64_decode(b64, strlen(b64), &bytes, &len, &err) != 0) {
    lpq_api_reply_lpq_error(call, &err);
    return;
  }
  free(bytes);
  reply_checked(call, json_pack("{ss sI sb}", "hash", HASH64, "bytes", (json_int_t)len, "existed", 0));
}

static void f_submit(void *ctx, lpq_api_call_t *call, json_t *params) {
  (void)ctx;
  pthread_mutex_lock(&seen_lock);
  json_decref(seen_submit);
  seen_submit = json_deep_copy(params);
  pthread_mutex_unlock(&seen_lock);
  const char *name = json_string_value(json_object_get(params, "name"));
  reply_checked(call, json_pack("{sI ss ss ss ss sn}", "job", (json_int_t)7, "name", name ? name : "m.onnx",
                                "status", "queued", "model_hash", HASH64, "data_hash", HASH64,
                                "labels_hash"));
}

typedef struct fake_watch_t {
  uv_timer_t timer;
  lpq_api_sub_t *sub;
  int generation;
} fake_watch_t;

static json_t *progress(int generation) {
  int final = generation == 3;
  return json_pack("{sI ss sb si si si sf sf so sf}", "job", (json_int_t)7, "status",
                   final ? "done" : "running", "final", final, "generation", generation,
                   "generations", 3, "evaluations", generation * 40, "progress",
                   generation / 3.0, "elapsed_s", generation * 1.5, "best_l_co",
                   generation ? json_real(1.0 / generation) : json_null(), "eta_s",
                   (3 - generation) * 1.5);
}

static void f_watch_free(uv_handle_t *t) {
  free(t->data);
}

static void f_watch_closed(void *ctx, lpq_api_sub_t *sub) {
  (void)sub;
  fake_watch_t *w = ctx;
  w->sub = NULL;
  uv_close((uv_handle_t *)&w->timer, f_watch_free);
}

static void f_watch_tick(uv_timer_t *t) {
  fake_watch_t *w = t->data;
  w->generation++;
  if (lpq_api_notify(w->sub, "job.progress", progress(w->generation)) != 0)
    return;
  if (w->generation == 3) {
    lpq_api_unsubscribe(&w->sub);
    uv_close((uv_handle_t *)&w->timer, f_watch_free);
  }
}

static void f_watch(void *ctx, lpq_api_call_t *call, json_t *params) {
  harness_t *hh = ctx;
  if (!job_known(call, params))
    return;
  fake_watch_t *w = calloc(1, sizeof *w);
  w->sub = lpq_api_subscribe(call, f_watch_closed, w);
  uv_timer_init(&hh->loop, &w->timer);
  w->timer.data = w;
  uv_timer_start(&w->timer, f_watch_tick, 10, 10);
  reply_checked(call, progress(0));
}

static void f_list(void *ctx, lpq_api_call_t *call, json_t *params) {
  (void)ctx;
  (void)params;
  reply_checked(call, json_pack("{s[{sI ss ss si si si sf ss sf}{sI ss ss si si si}] si}", "jobs",
                                "job", (json_int_t)7, "name", "resnet18-lp", "status", "running",
                                "generation", 2, "generations", 3, "evaluations", 80, "progress",
                                0.66, "created_at", "2026-01-01T00:00:00Z", "best_l_co", 0.25,
                                "job", (json_int_t)6, "name", "mnist-small", "status", "done",
                                "generation", 5, "generations", 5, "evaluations", 200, "total", 2));
}

static void f_get(void *ctx, lpq_api_call_t *call, json_t *params) {
  (void)ctx;
  if (!job_known(call, params))
    return;
  reply_checked(call, json_pack("{sI ss ss s{ss si} si si si sf sn s{ss sf sf sf}}", "job",
                                (json_int_t)7, "name", "resnet18-lp", "status", "running",
                                "settings", "mode", "pareto", "population", 40, "generation", 2,
                                "generations", 3, "evaluations", 80, "progress", 0.66, "eta_s",
                                "best", "genome", "00ff00ff00ff00ff", "l_co", 0.25, "l_cr", 0.16,
                                "mean_weight_bits", 5.1));
}

/* Six individuals: three on the front (rank 0), three dominated; one L_CR has a comma-free
** genome, the CSV test uses a text with a comma elsewhere. */
static void f_pareto(void *ctx, lpq_api_call_t *call, json_t *params) {
  (void)ctx;
  if (!job_known(call, params))
    return;
  static const struct {
    const char *genome;
    int rank;
    double l_co, l_cr;
  } inds[] = {{"0000000000000001", 0, 0.10, 0.30}, {"0000000000000002", 0, 0.20, 0.20},
              {"0000000000000003", 0, 0.40, 0.12}, {"0000000000000004", 1, 0.35, 0.31},
              {"0000000000000005", 1, 0.50, 0.22}, {"0000000000000006", 2, 0.70, 0.40}};
  int front_only = json_is_true(json_object_get(params, "front_only"));
  json_t *list = json_array();
  for (size_t i = 0; i < sizeof inds / sizeof inds[0]; i++)
    if (!front_only || inds[i].rank == 0)
      json_array_append_new(list, json_pack("{ss si sb sf sf sf}", "genome", inds[i].genome,
                                            "rank", inds[i].rank, "feasible", 1, "l_co",
                                            inds[i].l_co, "l_cr", inds[i].l_cr, "mean_weight_bits",
                                            32 * inds[i].l_cr));
  reply_checked(call, json_pack("{sI si s[ss] ss so}", "job", (json_int_t)7, "generation", 3,
                                "objectives", "l_co", "l_cr", "l_cr_meaning", "bits",
                                "individuals", list));
}

static void f_export(void *ctx, lpq_api_call_t *call, json_t *params) {
  (void)ctx;
  if (!job_known(call, params))
    return;
  char *b64 = lpq_base64_encode(onnx_bytes, sizeof onnx_bytes);
  json_t *r = json_pack("{sI ss s{si s{ss ss}} s{sI ss ss}}", "job", (json_int_t)7, "genome",
                        "00ff00ff00ff00ff", "config", "version", 1, "default", "w", "lp<6,1,3,0>",
                        "a", "lp<8,2,2,0>", "onnx", "bytes", (json_int_t)sizeof onnx_bytes,
                        "sha256", HASH64, "base64", b64);
  free(b64);
  reply_checked(call, r);
}

static void f_workers(void *ctx, lpq_api_call_t *call, json_t *params) {
  (void)ctx;
  (void)params;
  reply_checked(call, json_pack("{s[{ss ss s{sI ss} si si sf}]}", "workers", "id", "host-a:4242:1",
                                "state", "busy", "task", "job", (json_int_t)7, "genome",
                                "00ff00ff00ff00ff", "evaluations", 12, "failures", 0,
                                "last_seen_s", 0.4));
}

static void f_query(void *ctx, lpq_api_call_t *call, json_t *params) {
  (void)ctx;
  const char *table = json_string_value(json_object_get(params, "table"));
  if (strcmp(table, "v_pareto") != 0) {
    lpq_api_reply_error(call, LPQ_API_E_NOT_FOUND, NULL, "no table or view named '%s'", table);
    return;
  }
  reply_checked(call, json_pack("{ss s[sss] s[[isf][isn]] sb}", "table", table, "columns", "job",
                                "note", "l_co", "rows", 7, "plain", 0.5, 7, "with, comma \"q\"",
                                "truncated", 0));
}

static void setup(harness_t *hh) {
  static const struct {
    const char *name;
    lpq_api_handler_fn fn;
  } methods[] = {{"blob.put", f_blob_put}, {"job.submit", f_submit}, {"job.watch", f_watch},
                 {"job.list", f_list},     {"job.get", f_get},       {"job.pareto", f_pareto},
                 {"job.export", f_export}, {"worker.list", f_workers}, {"db.query", f_query}};
  for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
    lpq_api_register(hh->server, methods[i].name, methods[i].fn, hh, NULL);
}

static void start(void) {
  cr_assert_eq(harness_start(&h, NULL, 1, setup), 0, "%s", h.start_msg);
}

static void stop(void) {
  harness_stop(&h);
}

TestSuite(lpqctl, .init = start, .fini = stop, .timeout = 60);

/* ---- running lpqctl ------------------------------------------------------------------------- */

typedef struct run_t {
  int status;
  char *out, *err;
} run_t;

static char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  cr_assert_not_null(f, "%s", path);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *s = calloc(1, (size_t)n + 1);
  cr_assert_eq(fread(s, 1, (size_t)n, f), (size_t)n);
  fclose(f);
  return s;
}

/* build/bin/lpqctl next to this test's build folder (build/tests/..), so the ASan build runs
** the ASan lpqctl. */
static void lpqctl_path(char *out, size_t size) {
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  cr_assert_gt(n, 0);
  self[n] = '\0';
  snprintf(out, size, "%s/../bin/lpqctl", dirname(self));
  cr_assert_eq(access(out, X_OK), 0, "%s is missing: build it first (make)", out);
}

static run_t run(const char *const *args) {
  char exe[4200], out_path[128], err_path[128];
  lpqctl_path(exe, sizeof exe);
  snprintf(out_path, sizeof out_path, "%s/out.txt", h.dir);
  snprintf(err_path, sizeof err_path, "%s/err.txt", h.dir);
  char *argv[32];
  size_t n = 0;
  argv[n++] = exe;
  for (; args[n - 1] && n < 31; n++)
    argv[n] = (char *)args[n - 1];
  argv[n] = NULL;
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    int o = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int e = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(o, 1);
    dup2(e, 2);
    unsetenv("LPQ_SOCKET");
    execv(exe, argv);
    _exit(127);
  }
  int st;
  cr_assert_eq(waitpid(pid, &st, 0), pid);
  run_t r = {.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st)};
  r.out = slurp(out_path);
  r.err = slurp(err_path);
  unlink(out_path);
  unlink(err_path);
  return r;
}

static void run_free(run_t *r) {
  free(r->out);
  free(r->err);
}

static size_t count(const char *hay, const char *needle) {
  size_t n = 0;
  for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
    n++;
  return n;
}

/* ---- tests -------------------------------------------------------------------------------------- */

Test(lpqctl, list_prints_a_table) {
  run_t r = run((const char *[]){"--socket", h.path, "list", NULL});
  cr_assert_eq(r.status, 0, "%s", r.err);
  cr_assert(strstr(r.out, "JOB") && strstr(r.out, "resnet18-lp") && strstr(r.out, "mnist-small"), "%s", r.out);
  cr_assert(strstr(r.out, "2/3") && strstr(r.out, "66%"), "%s", r.out);
  run_free(&r);
  /* LPQ_SOCKET is honoured; --json prints the answer */
  setenv("LPQ_SOCKET", h.path, 1);
  char exe[4200];
  lpqctl_path(exe, sizeof exe);
  char cmd[4400];
  snprintf(cmd, sizeof cmd, "%s list --json", exe);
  FILE *p = popen(cmd, "r");
  json_error_t jerr;
  json_t *v = json_loadf(p, 0, &jerr);
  cr_assert_eq(pclose(p), 0);
  unsetenv("LPQ_SOCKET");
  cr_assert_not_null(v, "%s", jerr.text);
  cr_assert_eq(json_array_size(json_object_get(v, "jobs")), 2);
  json_decref(v);
}

Test(lpqctl, status_and_errors) {
  run_t r = run((const char *[]){"--socket", h.path, "status", "7", NULL});
  cr_assert_eq(r.status, 0, "%s", r.err);
  cr_assert(strstr(r.out, "resnet18-lp") && strstr(r.out, "best.genome") && strstr(r.out, "00ff00ff00ff00ff"), "%s", r.out);
  run_free(&r);
  r = run((const char *[]){"--socket", h.path, "status", "99", NULL});
  cr_assert_eq(r.status, 1);
  cr_assert(strstr(r.err, "job 99 not found") && strstr(r.err, "-32010"), "%s", r.err);
  run_free(&r);
  r = run((const char *[]){"--socket", h.path, "history", "nope", NULL});
  cr_assert_eq(r.status, 1);
  cr_assert(strstr(r.err, "no table or view named 'nope'"), "%s", r.err);
  run_free(&r);
  /* a bad argument is caught by the schema on the server, which names the field */
  r = run((const char *[]){"--socket", h.path, "list", "--status", "sleeping", NULL});
  cr_assert_eq(r.status, 1);
  cr_assert(strstr(r.err, "status[0]") && strstr(r.err, "running"), "%s", r.err);
  run_free(&r);
}

Test(lpqctl, submit_follows_progress) {
  char model[160];
  snprintf(model, sizeof model, "%s/m.onnx", h.dir);
  FILE *f = fopen(model, "w");
  fputs("model bytes", f);
  fclose(f);
  run_t r = run((const char *[]){"--socket", h.path, "submit", "--model", model, "--data", model,
                                 "--generations", "3", "--mode", "scalar", "--set",
                                 "constraints.mean_weight_bits_max=4.5", "--seed", "11", "--name",
                                 "t1", NULL});
  cr_assert_eq(r.status, 0, "%s", r.err);
  cr_assert(strstr(r.out, "job 7 queued (t1)"), "%s", r.out);
  /* not a terminal: one line per notification, the last one done */
  cr_assert_eq(count(r.out, "job 7 "), 5, "%s", r.out);
  cr_assert(strstr(r.out, "job 7 done generation 3/3 evaluations 120 progress 100%"), "%s", r.out);
  cr_assert(strstr(r.err, "lpqctl pareto 7"), "%s", r.err);
  run_free(&r);
  pthread_mutex_lock(&seen_lock);
  json_t *p = json_incref(seen_submit);
  pthread_mutex_unlock(&seen_lock);
  cr_assert_not_null(p);
  const char *path = json_string_value(json_object_get(json_object_get(p, "model"), "path"));
  cr_assert(path && path[0] == '/' && strstr(path, "m.onnx"), "paths go out absolute");
  json_t *s = json_object_get(p, "settings");
  cr_assert_eq(json_integer_value(json_object_get(s, "generations")), 3);
  cr_assert_str_eq(json_string_value(json_object_get(s, "mode")), "scalar");
  cr_assert_float_eq(json_number_value(json_object_get(json_object_get(s, "constraints"), "mean_weight_bits_max")), 4.5, 1e-12);
  cr_assert_eq(json_integer_value(json_object_get(p, "seed")), 11);
  json_decref(p);
  /* a setting the schema does not know is refused with its name */
  r = run((const char *[]){"--socket", h.path, "submit", "--model", model, "--data", model, "--set",
                           "populaton=10", NULL});
  cr_assert_eq(r.status, 1);
  cr_assert(strstr(r.err, "settings.populaton") && strstr(r.err, "no such member"), "%s", r.err);
  run_free(&r);
  /* a missing file is caught before anything is sent */
  r = run((const char *[]){"--socket", h.path, "submit", "--model", "/nonexistent/m.onnx", "--data", model, NULL});
  cr_assert_eq(r.status, 2);
  cr_assert(strstr(r.err, "/nonexistent/m.onnx"), "%s", r.err);
  run_free(&r);
  unlink(model);
}

Test(lpqctl, pareto_table_and_svg) {
  char svg[160];
  snprintf(svg, sizeof svg, "%s/front.svg", h.dir);
  run_t r = run((const char *[]){"--socket", h.path, "pareto", "7", "--plot", svg, NULL});
  cr_assert_eq(r.status, 0, "%s", r.err);
  cr_assert_eq(count(r.out, "000000000000000"), 3, "the table lists the front only:\n%s", r.out);
  run_free(&r);
  char *text = slurp(svg);
  cr_assert(strncmp(text, "<svg", 4) == 0);
  cr_assert_eq(count(text, "class=\"front\""), 3, "%s", text);
  cr_assert_eq(count(text, "class=\"other\""), 3);
  cr_assert(strstr(text, "L_CO") && strstr(text, "L_CR") && strstr(text, "<polyline"));
  cr_assert(strstr(text, "</svg>"));
  free(text);
  unlink(svg);
  r = run((const char *[]){"--socket", h.path, "pareto", "7", "--all", NULL});
  cr_assert_eq(count(r.out, "000000000000000"), 6);
  run_free(&r);
}

Test(lpqctl, export_writes_files) {
  run_t r = run((const char *[]){"--socket", h.path, "export", "7", "--all", "-o", h.dir, NULL});
  cr_assert_eq(r.status, 0, "%s", r.err);
  run_free(&r);
  char path[160];
  snprintf(path, sizeof path, "%s/config.json", h.dir);
  json_t *config = json_load_file(path, 0, NULL);
  cr_assert_not_null(config);
  cr_assert_str_eq(json_string_value(json_object_get(json_object_get(config, "default"), "w")), "lp<6,1,3,0>");
  json_decref(config);
  unlink(path);
  snprintf(path, sizeof path, "%s/model_lp.onnx", h.dir);
  char *bytes = slurp(path);
  cr_assert_eq(memcmp(bytes, onnx_bytes, sizeof onnx_bytes), 0);
  free(bytes);
  unlink(path);
}

Test(lpqctl, history_as_csv) {
  run_t r = run((const char *[]){"--socket", h.path, "history", "v_pareto", NULL});
  cr_assert_eq(r.status, 0, "%s", r.err);
  cr_assert_str_eq(r.out, "job,note,l_co\n7,plain,0.5\n7,\"with, comma \"\"q\"\"\",\n");
  run_free(&r);
}

Test(lpqctl, tcp_with_token) {
  char hostport[64];
  snprintf(hostport, sizeof hostport, "127.0.0.1:%d", h.tcp_port);
  run_t r = run((const char *[]){"--tcp", hostport, "--token", TEST_TOKEN, "workers", NULL});
  cr_assert_eq(r.status, 0, "%s", r.err);
  cr_assert(strstr(r.out, "host-a:4242:1") && strstr(r.out, "busy"), "%s", r.out);
  run_free(&r);
  /* over TCP the files travel as bytes: blob.put, then job.submit names them by hash */
  char model[160];
  snprintf(model, sizeof model, "%s/m2.onnx", h.dir);
  FILE *f = fopen(model, "w");
  fputs("model bytes over tcp", f);
  fclose(f);
  r = run((const char *[]){"--tcp", hostport, "--token", TEST_TOKEN, "submit", "--model", model,
                           "--data", model, "--detach", "--json", NULL});
  cr_assert_eq(r.status, 0, "%s", r.err);
  json_t *out = json_loads(r.out, 0, NULL);
  cr_assert_eq(json_integer_value(json_object_get(out, "job")), 7, "%s", r.out);
  json_decref(out);
  run_free(&r);
  unlink(model);
  pthread_mutex_lock(&seen_lock);
  json_t *p = json_incref(seen_submit);
  pthread_mutex_unlock(&seen_lock);
  cr_assert_str_eq(json_string_value(json_object_get(json_object_get(p, "model"), "hash")), HASH64);
  cr_assert_null(json_object_get(json_object_get(p, "data"), "path"));
  json_decref(p);
  r = run((const char *[]){"--tcp", hostport, "--token", "wrong-token-wrong-token", "workers", NULL});
  cr_assert_neq(r.status, 0);
  cr_assert(strstr(r.err, "wrong token"), "%s", r.err);
  run_free(&r);
}

Test(lpqctl, no_coordinator_says_so) {
  char path[160];
  snprintf(path, sizeof path, "%s/none.sock", h.dir);
  run_t r = run((const char *[]){"--socket", path, "list", NULL});
  cr_assert_eq(r.status, 3);
  cr_assert(strstr(r.err, path) && strstr(r.err, "may not be running"), "%s", r.err);
  run_free(&r);
}

Test(lpqctl, help_everywhere) {
  static const char *const cmds[] = {"submit", "list", "status", "watch", "cancel", "pareto",
                                     "export", "workers", "history", "stats"};
  for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
    run_t r = run((const char *[]){cmds[i], "--help", NULL});
    cr_assert_eq(r.status, 0, "%s --help: %s", cmds[i], r.err);
    cr_assert(strstr(r.out, "usage: lpqctl"), "%s --help: %s", cmds[i], r.out);
    run_free(&r);
  }
  run_t r = run((const char *[]){"frobnicate", NULL});
  cr_assert_eq(r.status, 2);
  cr_assert(strstr(r.err, "unknown command 'frobnicate'"));
  run_free(&r);
}

Test(lpqctl, progress_bar_on_a_terminal) {
  char exe[4200];
  lpqctl_path(exe, sizeof exe);
  int master;
  pid_t pid = forkpty(&master, NULL, NULL, NULL);
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    execl(exe, exe, "--socket", h.path, "watch", "7", (char *)NULL);
    _exit(127);
  }
  char out[8192];
  size_t len = 0;
  for (;;) {
    struct pollfd p = {.fd = master, .events = POLLIN};
    if (poll(&p, 1, 10000) <= 0)
      break;
    ssize_t n = read(master, out + len, sizeof out - 1 - len);
    if (n <= 0)
      break; /* EIO once the child has exited */
    len += (size_t)n;
  }
  out[len] = '\0';
  int st;
  cr_assert_eq(waitpid(pid, &st, 0), pid);
  close(master);
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s", out);
  /* the bar is redrawn in place: carriage return and erase-line, then filled to 100% */
  cr_assert_geq(count(out, "\r\033[K["), 4, "%s", out);
  cr_assert(strstr(out, "[##############################] 100%"), "%s", out);
  cr_assert(strstr(out, "done"), "%s", out);
}
