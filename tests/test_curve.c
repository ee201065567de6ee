/* tests/test_curve.c: CURVE on the worker pool with real lpq-worker processes on loopback:
** key files (lpqctl keygen's), a worker whose key is in the keys folder gets tasks, a stranger,
** a plain-text worker and a worker pinning the wrong server key never join (the stranger's key
** and address are logged), a key added to the folder is admitted at the next connect, and
** plain text is refused on endpoints other hosts reach unless insecure. */
#include "test_pool_harness.h"

#include <fcntl.h>

typedef struct curve_fix_t {
  char dir[64], keys[96];
  char coord_key[LPQ_CURVE_KEY_LEN + 1];
  char path[8][128]; /* scratch paths */
} curve_fix_t;

static char refused_log[4096];
static size_t refusals, admissions;

static void c_on_log(void *ctx, int level, const char *line) {
  (void)ctx;
  (void)level;
  if (strstr(line, "refused") != NULL) {
    refusals++;
    size_t n = strlen(refused_log);
    snprintf(refused_log + n, sizeof refused_log - n, "%s\n", line);
  }
  if (strstr(line, "admitted") != NULL)
    admissions++;
}

/* The harness's start with CURVE options and a log callback that records refusals. */
static void c_start(harness_t *h, const lpq_dispatch_opts_t *o) {
  memset(h, 0, sizeof *h);
  snprintf(h->dir, sizeof h->dir, "/tmp/lpq_curve_XXXXXX");
  cr_assert_not_null(mkdtemp(h->dir));
  cr_assert_eq(uv_loop_init(&h->loop), 0);
  uv_timer_init(&h->loop, &h->wake);
  uv_timer_start(&h->wake, h_wake, 10, 10);
  lpq_dispatch_callbacks_t cb = {h_on_result, h_on_worker, NULL, c_on_log, h};
  lpq_error_t err;
  h->d = lpq_dispatch_new(&h->loop, "tcp://127.0.0.1:*", o, &cb, &err);
  cr_assert_not_null(h->d, "%s", err.msg);
  refusals = admissions = 0;
  refused_log[0] = '\0';
  h->worker_stderr = "/dev/null"; /* refused workers complain, as they should */
}

static void fix_init(curve_fix_t *f) {
  memset(f, 0, sizeof *f);
  snprintf(f->dir, sizeof f->dir, "/tmp/lpq_keys_XXXXXX");
  cr_assert_not_null(mkdtemp(f->dir));
  snprintf(f->keys, sizeof f->keys, "%s/keys", f->dir);
  cr_assert_eq(mkdir(f->keys, 0700), 0);
  char pub[LPQ_CURVE_KEY_LEN + 1], name[128];
  lpq_error_t err;
  snprintf(name, sizeof name, "%s/coord", f->dir);
  cr_assert_eq(lpq_curve_keygen(name, pub, &err), 0, "%s", err.msg);
  snprintf(name, sizeof name, "%s/coord.key", f->dir);
  cr_assert_eq(lpq_curve_key_read(name, f->coord_key, &err), 0, "%s", err.msg);
}

static void fix_free(curve_fix_t *f) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
  cr_assert_eq(system(cmd), 0);
}

/* A key pair at DIR/NAME (or DIR/keys/NAME when admitted). */
static void make_worker_key(curve_fix_t *f, const char *name, int admitted) {
  char prefix[128], pub[LPQ_CURVE_KEY_LEN + 1];
  lpq_error_t err;
  snprintf(prefix, sizeof prefix, "%s/%s%s", admitted ? f->keys : f->dir, "", name);
  cr_assert_eq(lpq_curve_keygen(prefix, pub, &err), 0, "%s", err.msg);
}

static const char *kpath(curve_fix_t *f, int slot, const char *fmt, const char *name) {
  snprintf(f->path[slot], sizeof f->path[slot], fmt, f->dir, name);
  return f->path[slot];
}

static int cond_joined_1(harness_t *h) { return h->joined >= 1; }
static int cond_refused(harness_t *h) { (void)h; return refusals >= 1; }
static int cond_results_8(harness_t *h) { return h->results >= 8; }

Test(curve, key_files) {
  curve_fix_t f;
  fix_init(&f);
  char pub[LPQ_CURVE_KEY_LEN + 1], pub2[LPQ_CURVE_KEY_LEN + 1], derived[LPQ_CURVE_KEY_LEN + 1];
  lpq_error_t err;
  /* the .pub holds the public key of the .key's secret */
  cr_assert_eq(lpq_curve_key_read(kpath(&f, 0, "%s/%s.pub", "coord"), pub, &err), 0, "%s",
               err.msg);
  cr_assert_eq(lpq_curve_public_of(f.coord_key, derived, &err), 0, "%s", err.msg);
  cr_assert_str_eq(pub, derived);
  struct stat st;
  cr_assert_eq(stat(kpath(&f, 0, "%s/%s.key", "coord"), &st), 0);
  cr_assert_eq(st.st_mode & 0777, 0600, "the secret key has mode %o", st.st_mode & 0777);
  /* never overwritten: the second keygen fails and the files stay as they were */
  cr_assert_neq(lpq_curve_keygen(kpath(&f, 1, "%s/%s", "coord"), pub2, &err), 0);
  cr_assert(strstr(err.msg, "coord.pub") != NULL, "%s", err.msg);
  cr_assert_eq(lpq_curve_key_read(kpath(&f, 0, "%s/%s.pub", "coord"), pub2, &err), 0);
  cr_assert_str_eq(pub, pub2);
  /* two key pairs differ */
  make_worker_key(&f, "other", 0);
  cr_assert_eq(lpq_curve_key_read(kpath(&f, 0, "%s/%s.pub", "other"), pub2, &err), 0);
  cr_assert_str_neq(pub, pub2);
  /* bad files name themselves; surrounding blank lines and spaces are fine */
  const char *bad[] = {"", "short\n", "0123456789012345678901234567890123456789x\n",
                       "012345678901234567890123456789012345678\"\n"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    FILE *o = fopen(kpath(&f, 2, "%s/%s", "bad.pub"), "w");
    fputs(bad[i], o);
    fclose(o);
    cr_assert_eq(lpq_curve_key_read(f.path[2], pub2, &err), LPQ_EFORMAT, "case %zu", i);
    cr_assert(strstr(err.msg, "bad.pub") != NULL, "case %zu: %s", i, err.msg);
  }
  FILE *o = fopen(f.path[2], "w");
  fprintf(o, "\n  %s  \n\n", pub);
  fclose(o);
  cr_assert_eq(lpq_curve_key_read(f.path[2], pub2, &err), 0, "%s", err.msg);
  cr_assert_str_eq(pub, pub2);
  cr_assert_eq(lpq_curve_key_read(kpath(&f, 2, "%s/%s", "missing.pub"), pub2, &err), LPQ_EIO);
  fix_free(&f);
}

Test(curve, plain_text_only_on_loopback_unless_insecure) {
  cr_assert(lpq_curve_endpoint_is_local("tcp://127.0.0.1:5555"));
  cr_assert(lpq_curve_endpoint_is_local("tcp://[::1]:5555"));
  cr_assert(lpq_curve_endpoint_is_local("ipc:///tmp/x"));
  cr_assert(!lpq_curve_endpoint_is_local("tcp://0.0.0.0:5555"));
  cr_assert(!lpq_curve_endpoint_is_local("tcp://*:5555"));
  cr_assert(!lpq_curve_endpoint_is_local("tcp://10.77.0.1:5555"));
  uv_loop_t loop;
  uv_loop_init(&loop);
  lpq_dispatch_callbacks_t cb = {h_on_result, NULL, NULL, c_on_log, NULL};
  lpq_error_t err;
  lpq_dispatch_t *d = lpq_dispatch_new(&loop, "tcp://0.0.0.0:*", NULL, &cb, &err);
  cr_assert_null(d);
  cr_assert(strstr(err.msg, "plain text") && strstr(err.msg, "--insecure"), "%s", err.msg);
  lpq_dispatch_opts_t o = {.insecure = 1};
  d = lpq_dispatch_new(&loop, "tcp://0.0.0.0:*", &o, &cb, &err);
  cr_assert_not_null(d, "%s", err.msg);
  cr_assert_null(lpq_dispatch_curve_public(d));
  lpq_dispatch_free(&d);
  /* CURVE options that cannot work are refused up front */
  curve_fix_t f;
  fix_init(&f);
  lpq_dispatch_opts_t c = {.curve_secret_key = "not a key", .curve_keys_dir = f.keys};
  cr_assert_null(lpq_dispatch_new(&loop, "tcp://0.0.0.0:*", &c, &cb, &err));
  cr_assert(strstr(err.msg, "secret key"), "%s", err.msg);
  c = (lpq_dispatch_opts_t){.curve_secret_key = f.coord_key, .curve_keys_dir = "/nonexistent"};
  cr_assert_null(lpq_dispatch_new(&loop, "tcp://0.0.0.0:*", &c, &cb, &err));
  cr_assert(strstr(err.msg, "/nonexistent"), "%s", err.msg);
  c.curve_keys_dir = f.keys; /* a good pair binds anywhere */
  d = lpq_dispatch_new(&loop, "tcp://0.0.0.0:*", &c, &cb, &err);
  cr_assert_not_null(d, "%s", err.msg);
  char pub[LPQ_CURVE_KEY_LEN + 1];
  cr_assert_eq(lpq_curve_key_read(kpath(&f, 0, "%s/%s.pub", "coord"), pub, &err), 0);
  cr_assert_str_eq(lpq_dispatch_curve_public(d), pub);
  lpq_dispatch_free(&d);
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_assert_eq(uv_loop_close(&loop), 0);
  fix_free(&f);
}

Test(curve, only_known_keys_join_and_strangers_are_logged) {
  curve_fix_t f;
  fix_init(&f);
  make_worker_key(&f, "good", 1);
  make_worker_key(&f, "stranger", 0);
  make_worker_key(&f, "fake-coord", 0);
  harness_t *h = calloc(1, sizeof *h);
  lpq_dispatch_opts_t o = {.heartbeat_s = 0.2, .curve_secret_key = f.coord_key,
                           .curve_keys_dir = f.keys};
  c_start(h, &o);
  const char *good[] = {"--heartbeat-ms", "200", "--curve-server-key",
                        kpath(&f, 0, "%s/%s.pub", "coord"), "--curve-secret",
                        kpath(&f, 1, "%s/keys/%s.key", "good"), NULL};
  const char *stranger[] = {"--heartbeat-ms", "200", "--curve-server-key", f.path[0],
                            "--curve-secret", kpath(&f, 2, "%s/%s.key", "stranger"), NULL};
  /* an admitted key that pins another server key: it must not talk to this coordinator */
  const char *wrong_server[] = {"--heartbeat-ms", "200", "--curve-server-key",
                                kpath(&f, 3, "%s/%s.pub", "fake-coord"), "--curve-secret",
                                f.path[1], NULL};
  const char *plain[] = {"--heartbeat-ms", "200", NULL};
  h_spawn(h, "stranger", 1, 1, stranger);
  cr_assert(h_run_until(h, cond_refused, 10), "the stranger's refusal was not logged");
  h_spawn(h, "wrong-server", 1, 1, wrong_server);
  h_spawn(h, "plain", 1, 1, plain);
  h_spawn(h, "good", 2, 1, good);
  cr_assert(h_run_until(h, cond_joined_1, 10), "the admitted worker did not join");
  static lpq_layer_formats_t layers[8][3];
  for (unsigned i = 0; i < 8; i++) {
    lpq_task_t t = h_task(1, i, layers[i], 3);
    h_submit(h, &t);
  }
  cr_assert(h_run_until(h, cond_results_8, 20), "%zu of 8 results", h->results);
  for (uint64_t id = 1; id <= 8; id++) {
    cr_assert_eq(h->res[id].status, 0, "task %llu: %s", (unsigned long long)id, h->res[id].error);
    cr_assert_str_eq(h->res[id].worker_id, "good");
  }
  h_run_for(h, 1.0); /* time for the others to retry */
  cr_assert_eq(h->joined, 1, "%d workers joined; only the admitted one may", h->joined);
  lpq_dispatch_stats_t st;
  lpq_dispatch_stats(h->d, &st);
  cr_assert_eq(st.workers, 1);
  /* the log names the stranger's key and its address */
  char stranger_pub[LPQ_CURVE_KEY_LEN + 1];
  lpq_error_t err;
  cr_assert_eq(lpq_curve_key_read(kpath(&f, 4, "%s/%s.pub", "stranger"), stranger_pub, &err), 0);
  cr_assert(strstr(refused_log, stranger_pub) != NULL, "log: %s", refused_log);
  cr_assert(strstr(refused_log, "127.0.0.1") != NULL, "log: %s", refused_log);
  cr_assert_geq(admissions, 1);
  h_stop(h);
  free(h);
  fix_free(&f);
}

Test(curve, a_key_added_to_the_folder_is_admitted_at_the_next_connect) {
  curve_fix_t f;
  fix_init(&f);
  make_worker_key(&f, "late", 0);
  harness_t *h = calloc(1, sizeof *h);
  lpq_dispatch_opts_t o = {.heartbeat_s = 0.2, .curve_secret_key = f.coord_key,
                           .curve_keys_dir = f.keys};
  c_start(h, &o);
  const char *args[] = {"--heartbeat-ms", "200", "--curve-server-key",
                        kpath(&f, 0, "%s/%s.pub", "coord"), "--curve-secret",
                        kpath(&f, 1, "%s/%s.key", "late"), NULL};
  h_spawn(h, "late", 1, 1, args);
  cr_assert(h_run_until(h, cond_refused, 10), "no refusal logged");
  cr_assert_eq(h->joined, 0);
  /* no restart: the folder is read again at every handshake */
  char cmd[512];
  snprintf(cmd, sizeof cmd, "cp '%s/late.pub' '%s/late.pub'", f.dir, f.keys);
  cr_assert_eq(system(cmd), 0);
  cr_assert(h_run_until(h, cond_joined_1, 15), "the worker was not admitted after its key "
            "was added");
  h_stop(h);
  free(h);
  fix_free(&f);
}
