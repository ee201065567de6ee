/* tests/test_cli.c: the `lpq` tool as a person runs it: exit codes, output, clear errors. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* Runs `lpq ARGS` (a shell-quoted string); returns the exit status, output in *out (free it). */
static int lpq(const char *args, char **out) {
  const char *build = getenv("LPQ_BUILD") ? getenv("LPQ_BUILD") : "build";
  char cmd[4096];
  snprintf(cmd, sizeof cmd, "%s/bin/lpq %s 2>&1", build, args);
  FILE *p = popen(cmd, "r");
  cr_assert_not_null(p);
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap);
  size_t got;
  while ((got = fread(buf + n, 1, cap - n - 1, p)) > 0) {
    n += got;
    if (n + 1 >= cap)
      buf = realloc(buf, cap *= 2);
  }
  buf[n] = 0;
  int st = pclose(p);
  *out = buf;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

#define FIX "tests/fixtures/"
#define SMALL "--model " FIX "score_small.onnx --data " FIX "score_small_x.npy "

Test(cli, help_and_unknown_command) {
  char *o;
  cr_assert_eq(lpq("--help", &o), 0);
  cr_assert(strstr(o, "search") && strstr(o, "eval") && strstr(o, "format"), "%s", o);
  free(o);
  const char *cmds[] = {"format", "run", "eval", "search", "accel"};
  for (size_t i = 0; i < 5; i++) {
    char a[64];
    snprintf(a, sizeof a, "%s --help", cmds[i]);
    cr_assert_eq(lpq(a, &o), 0, "%s", a);
    cr_assert(strstr(o, "usage: lpq") != NULL, "%s: %s", a, o);
    free(o);
  }
  cr_assert_eq(lpq("frobnicate", &o), 2);
  cr_assert(strstr(o, "unknown command 'frobnicate'"), "%s", o);
  free(o);
}

Test(cli, eval_json_and_errors) {
  char *o;
  cr_assert_eq(lpq("eval " SMALL "--config " FIX "score_small_config.json --calib 16 --json", &o), 0,
               "%s", o);
  json_t *j = json_loads(o, 0, NULL);
  cr_assert_not_null(j, "%s", o);
  cr_assert(json_number_value(json_object_get(j, "l_co")) > 0);
  json_decref(j);
  /* --norm applies to uint8 pixels only: float32 .npy data is already normalised */
  char *o2;
  cr_assert_eq(lpq("eval " SMALL "--config " FIX "score_small_config.json --calib 16 --json "
                   "--norm 0.5,0.25", &o2), 0, "%s", o2);
  json_t *j2 = json_loads(o2, 0, NULL);
  json_t *j1 = json_loads(o, 0, NULL);
  cr_assert(j1 && j2);
  cr_assert_eq(json_number_value(json_object_get(j1, "l_co")),
               json_number_value(json_object_get(j2, "l_co")));
  json_decref(j1);
  json_decref(j2);
  free(o2);
  free(o);
  cr_assert_eq(lpq("eval " SMALL "--config no/such.json", &o), 1);
  cr_assert(strstr(o, "no/such.json"), "%s", o);
  free(o);
  /* data that does not fit the model */
  cr_assert_eq(lpq("eval --model models/resnet18.onnx --data " FIX "score_small_x.npy --config "
                   FIX "score_small_config.json", &o), 1);
  cr_assert(strstr(o, "does not fit"), "%s", o);
  free(o);
  cr_assert_eq(lpq("eval --model " FIX "score_small_x.npy --data " FIX "score_small_x.npy "
                   "--config " FIX "score_small_config.json", &o), 1);
  cr_assert(strstr(o, "score_small_x.npy"), "%s", o);
  free(o);
}

Test(cli, search_writes_front_configs_and_plot) {
  char dir[] = "/tmp/lpq-cli-XXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  char args[1024], *o;
  snprintf(args, sizeof args, "search " SMALL "--calib 16 --population 8 --generations 2 "
           "--max-weight-bits 6 --seed 3 --out %s --json", dir);
  cr_assert_eq(lpq(args, &o), 0, "%s", o);
  const char *start = strchr(o, '{'); /* progress lines go to stderr, merged here */
  json_t *j = json_loads(start ? start : o, 0, NULL);
  cr_assert_not_null(j, "%s", o);
  size_t nf = json_array_size(json_object_get(j, "front"));
  cr_assert_gt(nf, 0);
  json_t *first = json_array_get(json_object_get(j, "front"), 0);
  cr_assert(json_number_value(json_object_get(first, "mean_weight_bits")) <= 6.0 + 1e-9);
  const char *files[] = {"front.json", "front.svg", "history.json", "state.json", "config_00.json"};
  for (size_t i = 0; i < 5; i++) {
    char p[512];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, files[i]);
    cr_assert_eq(stat(p, &st), 0, "%s missing", p);
    cr_assert_gt(st.st_size, 20);
  }
  /* a config on the front scores the same through lpq eval with the search's local terms */
  cr_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "scorer"), "local_terms")),
                   "projected");
  char cfg[512];
  snprintf(cfg, sizeof cfg, "eval " SMALL "--calib 16 --json --local-terms projected --config "
           "%s/config_00.json", dir);
  char *e;
  cr_assert_eq(lpq(cfg, &e), 0, "%s", e);
  json_t *je = json_loads(e, 0, NULL);
  cr_assert_not_null(je, "%s", e);
  double a = json_number_value(json_object_get(first, "l_co"));
  double b = json_number_value(json_object_get(je, "l_co"));
  cr_assert(a == b || (a - b < 1e-9 && b - a < 1e-9), "front L_CO %.12g, eval %.12g", a, b);
  json_decref(je);
  free(e);
  /* the same seed gives the same front, with the cut cache off too (resumed passes are
  ** bit for bit whole ones) */
  json_t *sc = json_object_get(j, "scorer");
  cr_assert_gt(json_integer_value(json_object_get(sc, "cuts")), 0, "%s", o);
  char *o2;
  strncat(args, " --cut-cache-mb 0", sizeof args - strlen(args) - 1);
  cr_assert_eq(lpq(args, &o2), 0, "%s", o2);
  json_t *j2 = json_loads(strchr(o2, '{'), 0, NULL);
  cr_assert_eq(json_integer_value(json_object_get(json_object_get(j2, "scorer"), "cuts")), 0);
  json_object_del(j, "seconds");
  json_object_del(j2, "seconds");
  cr_assert(json_equal(json_object_get(j, "front"), json_object_get(j2, "front")), "fronts differ");
  json_decref(j);
  json_decref(j2);
  free(o);
  free(o2);
  char rm[600];
  snprintf(rm, sizeof rm, "rm -rf %s", dir);
  cr_assert_eq(system(rm), 0);
}

Test(cli, accel_on_a_model_and_format) {
  char *o;
  cr_assert_eq(lpq("accel --model " FIX "score_small.onnx --config " FIX "score_small_config.json --json", &o), 0, "%s", o);
  json_t *j = json_loads(o, 0, NULL);
  cr_assert_not_null(j, "%s", o);
  json_decref(j);
  free(o);
  cr_assert_eq(lpq("format 'lp<8,5,2,0>'", &o), 1);
  cr_assert(strstr(o, "es = 5 is out of range 0..4"), "%s", o);
  free(o);
}

/* Reads a whole file (free it); *n its length. */
static char *slurp(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  cr_assert_not_null(f, "%s", path);
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *b = malloc((size_t)len + 1);
  cr_assert_eq(fread(b, 1, (size_t)len, f), (size_t)len);
  fclose(f);
  *n = (size_t)len;
  return b;
}

Test(cli, eval_threads_give_the_same_results) {
  char dir[] = "/tmp/lpq_cli_threads_XXXXXX", cmd[1024], path[2][64];
  cr_assert_not_null(mkdtemp(dir));
  json_t *j[2];
  const int threads[2] = {1, 3};
  for (int k = 0; k < 2; k++) {
    char *o;
    snprintf(path[k], sizeof path[k], "%s/z%d.npy", dir, threads[k]);
    /* 256 samples in batches of 24: 11 batches, the last one short */
    snprintf(cmd, sizeof cmd, "eval --model models/resnet18.onnx --data "
             "models/fashion_test_256.npy --labels models/fashion_test_256_labels.npy "
             "--calib 24 --config bench/configs/lp4_ch.json --json --threads %d --out %s",
             threads[k], path[k]);
    cr_assert_eq(lpq(cmd, &o), 0, "%s", o);
    j[k] = json_loads(o, 0, NULL);
    cr_assert_not_null(j[k], "%s", o);
    json_object_del(j[k], "eval_ms");
    free(o);
  }
  cr_assert(json_equal(j[0], j[1]), "lpq eval --threads 3 differs from --threads 1");
  cr_assert(json_number_value(json_object_get(j[0], "top1_quantized")) > 50.0);
  size_t n0, n1;
  char *z0 = slurp(path[0], &n0), *z1 = slurp(path[1], &n1);
  cr_assert(n0 == n1 && n0 > 256 * 10 * 4 && memcmp(z0, z1, n0) == 0, "the logits differ");
  free(z0);
  free(z1);
  json_decref(j[0]);
  json_decref(j[1]);
  unlink(path[0]);
  unlink(path[1]);
  rmdir(dir);
  char *o;
  cr_assert_eq(lpq("eval " SMALL "--config " FIX "score_small_config.json --threads 0", &o), 2);
  cr_assert(strstr(o, "--threads 0"), "%s", o);
  free(o);
}

/* --local-terms: lpq eval says which it used; projected changes the local part only; a bad
** name is refused by eval and search */
Test(cli, local_terms_flag) {
  double local[2], global[2];
  const char *modes[2] = {"exact", "projected"};
  for (int k = 0; k < 2; k++) {
    char cmd[512], *o;
    snprintf(cmd, sizeof cmd, "eval " SMALL "--config " FIX "score_small_config.json --calib 16 "
             "--json --local-terms %s --local-dim 64", modes[k]);
    cr_assert_eq(lpq(cmd, &o), 0, "%s", o);
    json_t *j = json_loads(o, 0, NULL);
    cr_assert_not_null(j, "%s", o);
    cr_assert_str_eq(json_string_value(json_object_get(j, "local_terms")), modes[k]);
    local[k] = json_number_value(json_object_get(j, "l_co_local"));
    global[k] = json_number_value(json_object_get(j, "l_co_global"));
    json_decref(j);
    free(o);
  }
  cr_assert_eq(global[0], global[1]);
  cr_assert_neq(local[0], local[1]);
  char *o;
  cr_assert_eq(lpq("eval " SMALL "--config " FIX "score_small_config.json --local-terms fast", &o),
               2);
  cr_assert(strstr(o, "--local-terms fast"), "%s", o);
  free(o);
  cr_assert_eq(lpq("search " SMALL "--local-terms fast", &o), 2);
  cr_assert(strstr(o, "local-terms"), "%s", o);
  free(o);
}
