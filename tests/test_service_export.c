/* tests/test_service_export.c: job.export's quantized model (lpqctl export --what quantized) is
** the file `lpq export` writes for the same config, model and calibration batch: with the job's
** bias correction written into the biases when the job was scored with it (the engine's
** lpq_bias_shifts, which the coordinator may call), without it otherwise. The real coordinator
** and worker processes on loopback. */
#include "tests/loader_files.h"
#include "tests/proc_harness.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

/* one suite-wide timeout: per-test timeouts leak 48 bytes in criterion's runner under ASan */
TestSuite(service_export, .timeout = 300);

#define JOB "--set population=8 --set generations=3 --set calib=16 --seed 5"

/* lpq export of config on the job's model and its calibration batch (the first 16 samples),
** bias correction as given ("" for the config's), into out; its exit status. */
static int lpq_export(const char *config, const char *bc, const char *out, const char *log) {
  char *argv[16];
  int k = 0;
  argv[k++] = (char *)proc_bin("lpq");
  argv[k++] = "export";
  argv[k++] = "--model";
  argv[k++] = (char *)proc_fixture("score_small.onnx");
  argv[k++] = "--config";
  argv[k++] = (char *)config;
  argv[k++] = "--calib-data";
  argv[k++] = (char *)proc_fixture("score_small_x.npy");
  argv[k++] = "--calib";
  argv[k++] = "16";
  if (bc[0]) {
    argv[k++] = "--bias-correction";
    argv[k++] = (char *)bc;
  }
  argv[k++] = "--out";
  argv[k++] = (char *)out;
  argv[k] = NULL;
  pid_t pid = proc_spawn(argv, log, NULL);
  int st = 0;
  cr_assert_gt(pid, 0);
  cr_assert_eq(waitpid(pid, &st, 0), pid);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int same_file(const char *a, const char *b) {
  size_t la, lb;
  unsigned char *x = loader_read_file(a, &la), *y = loader_read_file(b, &lb);
  int same = la == lb && memcmp(x, y, la) == 0;
  free(x);
  free(y);
  return same;
}

/* A job scored with bias_correction (on: 1, off: 0) exported by the service into s.dir/sub;
** the reply's "bias_correction" checked. */
static void service_export(proc_svc_t *s, int on, const char *sub) {
  char args[512];
  snprintf(args, sizeof args, "%s --set bias_correction=%s", JOB, on ? "true" : "false");
  int64_t id = proc_lpqctl_submit(NULL, s->sock, args);
  cr_assert_gt(id, 0, "submit gave no job (see %s)", s->log);
  char *st = proc_lpqctl_wait(NULL, s->sock, id, 120);
  cr_assert_str_eq(st, "done", "job %lld (see %s)", (long long)id, s->log);
  free(st);
  char dir[300];
  snprintf(dir, sizeof dir, "%s/%s", s->dir, sub);
  cr_assert_eq(mkdir(dir, 0700), 0, "mkdir %s", dir);
  snprintf(args, sizeof args, "export %lld --what config,quantized --remote-dir %s",
           (long long)id, dir);
  json_t *r = proc_lpqctl(NULL, s->sock, args);
  cr_assert_not_null(r, "lpqctl export gave nothing (see %s)", s->log);
  json_t *bc = json_object_get(r, "bias_correction");
  cr_assert(json_is_boolean(bc), "the reply says whether the biases are corrected");
  cr_assert_eq(json_is_true(bc), on, "bias_correction in the reply");
  json_decref(r);
}

Test(service_export, quantized_model_equals_lpq_export_with_and_without_bias_correction) {
  proc_svc_t s;
  cr_assert_eq(proc_svc_init(&s, "lpq-svcx"), 0, "mkdtemp");
  s.heartbeat_ms = "200";
  cr_assert_eq(proc_svc_start_coordinator(&s), 0, "the coordinator did not start (see %s)",
               s.log);
  cr_assert_eq(proc_svc_start_worker(&s, NULL, NULL), 0, "no worker");
  service_export(&s, 1, "bc");
  service_export(&s, 0, "plain");
  char p[8][400], log[400];
  snprintf(log, sizeof log, "%s/lpq_export.log", s.dir);
  const char *sub[2] = {"bc", "plain"};
  for (int i = 0; i < 2; i++) {
    snprintf(p[0], sizeof p[0], "%s/%s/config.json", s.dir, sub[i]);
    snprintf(p[1], sizeof p[1], "%s/%s/model_q.onnx", s.dir, sub[i]);
    snprintf(p[2], sizeof p[2], "%s/%s/cli.onnx", s.dir, sub[i]);
    snprintf(p[3], sizeof p[3], "%s/%s/cli_flip.onnx", s.dir, sub[i]);
    snprintf(p[4], sizeof p[4], "%s/%s/model_q.encodings.json", s.dir, sub[i]);
    snprintf(p[5], sizeof p[5], "%s/%s/cli.encodings.json", s.dir, sub[i]);
    json_error_t jerr;
    json_t *cfg = json_load_file(p[0], 0, &jerr);
    cr_assert_not_null(cfg, "%s: %s", p[0], jerr.text);
    /* the config says how it was scored, so that lpq export does the same by default */
    cr_assert_eq(json_is_true(json_object_get(cfg, "bias_correction")), i == 0,
                 "%s: bias_correction", p[0]);
    json_decref(cfg);
    cr_assert_eq(lpq_export(p[0], "", p[2], log), 0, "lpq export failed (see %s)", log);
    cr_assert(same_file(p[1], p[2]), "%s: job.export's model differs from lpq export's", sub[i]);
    cr_assert(same_file(p[4], p[5]), "%s: the encodings differ", sub[i]);
    /* and the correction is in there (or not): the other setting writes another model */
    cr_assert_eq(lpq_export(p[0], i == 0 ? "off" : "on", p[3], log), 0, "see %s", log);
    cr_assert_not(same_file(p[1], p[3]), "%s: bias correction made no difference", sub[i]);
  }
  proc_svc_stop(&s);
}
