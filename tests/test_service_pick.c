/* tests/test_service_pick.c: the service's accuracy-aware pick (issue 13, item 5). A job given a
** validation set and settings.constraints.top1_drop_max ends by scoring its final front on the
** workers (top-1 over every validation sample); the pick is the cheapest member within the drop
** of fp32 (checked here against the stored rows, v_pick), and job.get's best is that genome. */
#include "tests/proc_harness.h"
#include "engine/engine.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* one suite-wide timeout: per-test timeouts leak 48 bytes in criterion's runner under ASan */
TestSuite(service_pick, .timeout = 300);

/* labels = fp32's argmax per sample, written as .npy int64: fp32's top-1 is then 100%. */
static void write_argmax_labels(const char *path) {
  lpq_error_t err;
  lpq_array_t *x = NULL;
  cr_assert_eq(lpq_load_npy(proc_fixture("score_small_x.npy"), &x, &err), 0, "%s", err.msg);
  const size_t n = (size_t)x->shape[0];
  lpq_graph_t *g = lpq_graph_load(proc_fixture("score_small.onnx"), (int)n, &err);
  cr_assert_not_null(g, "%s", err.msg);
  lpq_tensor_info_t out;
  cr_assert_eq(lpq_graph_output(g, 0, &out), 0);
  const size_t classes = out.count / n;
  float *y = malloc(out.count * sizeof *y);
  lpq_exec_t *ex = lpq_exec_new(g, &err);
  cr_assert_not_null(ex, "%s", err.msg);
  cr_assert_eq(lpq_exec_run(ex, x->data, y, NULL, &err), 0, "%s", err.msg);
  FILE *f = fopen(path, "wb");
  cr_assert_not_null(f);
  char header[118];
  int len = snprintf(header, sizeof header,
                     "{'descr': '<i8', 'fortran_order': False, 'shape': (%zu,), }", n);
  memset(header + len, ' ', sizeof header - (size_t)len - 1);
  header[sizeof header - 1] = '\n';
  const unsigned char magic[] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 118, 0};
  fwrite(magic, 1, sizeof magic, f);
  fwrite(header, 1, sizeof header, f);
  for (size_t i = 0; i < n; i++) {
    int64_t best = 0;
    for (size_t c = 1; c < classes; c++)
      if (y[i * classes + c] > y[i * classes + (size_t)best])
        best = (int64_t)c;
    fwrite(&best, sizeof best, 1, f);
  }
  fclose(f);
  free(y);
  lpq_exec_free(&ex);
  lpq_graph_free(&g);
  lpq_array_free(&x);
}

/* Spearman's rank correlation, written out here (ties at their mean rank); NAN when undefined. */
static double spearman(const double *x, const double *y, size_t n) {
  double rx[64], ry[64];
  if (n < 3 || n > 64)
    return NAN;
  for (int side = 0; side < 2; side++) {
    const double *v = side ? y : x;
    double *r = side ? ry : rx;
    for (size_t i = 0; i < n; i++) {
      double below = 0, equal = 0;
      for (size_t k = 0; k < n; k++) {
        below += v[k] < v[i];
        equal += v[k] == v[i];
      }
      r[i] = below + (equal + 1) / 2;
    }
  }
  double mx = 0, my = 0, sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < n; i++)
    mx += rx[i] / n, my += ry[i] / n;
  for (size_t i = 0; i < n; i++) {
    sxy += (rx[i] - mx) * (ry[i] - my);
    sxx += (rx[i] - mx) * (rx[i] - mx);
    syy += (ry[i] - my) * (ry[i] - my);
  }
  return sxx > 0 && syy > 0 ? sxy / sqrt(sxx * syy) : NAN;
}

Test(service_pick, cheapest_within_the_drop_on_validation) {
  proc_svc_t s;
  cr_assert_eq(proc_svc_init(&s, "lpq-pick"), 0, "mkdtemp");
  s.heartbeat_ms = "200";
  char labels[128], opts[512];
  snprintf(labels, sizeof labels, "%s/val_labels.npy", s.dir);
  write_argmax_labels(labels);
  cr_assert_eq(proc_svc_start_coordinator(&s), 0, "the coordinator did not start (see %s)", s.log);
  cr_assert_eq(proc_svc_start_worker(&s, NULL, "2"), 0, "the worker did not start");
  const double drop = 20;
  snprintf(opts, sizeof opts, "--val-data %s --val-labels %s --max-drop %g --set population=8 "
           "--set generations=2 --set calib=16 --set bits=[2,6] --seed 5",
           proc_fixture("score_small_x.npy"), labels, drop);
  int64_t id = proc_lpqctl_submit(NULL, s.sock, opts);
  cr_assert_gt(id, 0, "submit failed (see %s)", s.log);
  /* job.get while the validation pick runs (after the last generation's commit), then after the
  ** end: the answer computed during the pick must not be what job.get shows once the job is
  ** done (its best was cached per generation, and the pick changes the best without one) */
  cr_assert(proc_wait_file_has(s.log, "validation pick: fp32", 240), "no pick (see %s)", s.log);
  json_t *g = proc_rpc_result(&s.api, "job.get", json_pack("{s:I}", "job", (json_int_t)id));
  cr_assert_not_null(g, "job.get: %s", s.api.error);
  json_decref(g);
  char *st = proc_lpqctl_wait(NULL, s.sock, id, 240);
  cr_assert_str_eq(st, "done", "job %lld (see %s)", (long long)id, s.log);
  free(st);
  char args[128];
  snprintf(args, sizeof args, "status %lld", (long long)id);
  json_t *job = proc_lpqctl(NULL, s.sock, args);
  cr_assert_not_null(job);
  json_t *pick = json_object_get(job, "pick");
  cr_assert(json_is_object(pick), "job.get has no pick (see %s)", s.log);
  cr_assert_float_eq(json_number_value(json_object_get(pick, "top1_val_fp32")), 100.0, 1e-9,
                     "fp32's validation top-1 over labels that are its own argmax");
  const char *chosen = json_string_value(json_object_get(pick, "genome"));
  cr_assert_not_null(chosen);
  cr_assert_str_eq(json_string_value(json_object_get(json_object_get(job, "best"), "genome")),
                   chosen, "job.get's best is the pick");
  /* the rule, from the stored rows */
  snprintf(args, sizeof args, "history v_pick --where job=%lld", (long long)id);
  json_t *r = proc_lpqctl(NULL, s.sock, args);
  cr_assert_not_null(r, "history v_pick (see %s)", s.log);
  json_t *rows = json_object_get(r, "rows"), *cols = json_object_get(r, "columns");
  cr_assert_gt(json_array_size(rows), 0);
  size_t c_genome = 0, c_lcr = 0, c_drop = 0, c_top1 = 0, c_chosen = 0, c_bits = 0, c_lco = 0;
  for (size_t c = 0; c < json_array_size(cols); c++) {
    const char *name = json_string_value(json_array_get(cols, c));
    if (!strcmp(name, "genome")) c_genome = c;
    if (!strcmp(name, "l_cr")) c_lcr = c;
    if (!strcmp(name, "drop_points")) c_drop = c;
    if (!strcmp(name, "top1_val")) c_top1 = c;
    if (!strcmp(name, "chosen")) c_chosen = c;
    if (!strcmp(name, "mean_weight_bits")) c_bits = c;
    if (!strcmp(name, "l_co")) c_lco = c;
  }
  double lco[64], t1[64];
  size_t scored = 0;
  const char *expect = NULL;
  double best_cr = INFINITY;
  size_t chosen_rows = 0;
  for (size_t i = 0; i < json_array_size(rows); i++) {
    json_t *row = json_array_get(rows, i);
    double cr = json_number_value(json_array_get(row, c_lcr));
    double d = json_number_value(json_array_get(row, c_drop));
    cr_assert(json_is_number(json_array_get(row, c_top1)), "member %zu not scored", i);
    cr_assert(json_is_number(json_array_get(row, c_bits)), "member %zu has no mean bits", i);
    chosen_rows += json_integer_value(json_array_get(row, c_chosen)) == 1;
    if (scored < 64) {
      lco[scored] = json_number_value(json_array_get(row, c_lco));
      t1[scored++] = json_number_value(json_array_get(row, c_top1));
    }
    if (d <= drop && cr < best_cr) {
      best_cr = cr;
      expect = json_string_value(json_array_get(row, c_genome));
    }
  }
  cr_assert_eq(chosen_rows, 1, "one row marked chosen");
  cr_assert_not_null(expect, "no member within %g points (see %s)", drop, s.log);
  cr_assert_str_eq(chosen, expect, "the cheapest within the drop");
  /* Spearman of L_CO and validation top-1 over the scored members, as the stored rows give it */
  const double rho = spearman(lco, t1, scored);
  json_t *jr = json_object_get(pick, "spearman_l_co_top1");
  if (isnan(rho))
    cr_assert(json_is_null(jr), "Spearman undefined over %zu members, job.get has a number",
              scored);
  else
    cr_assert_float_eq(json_number_value(jr), rho, 1e-9, "job.get's Spearman over %zu members",
                       scored);
  /* lpqctl status shows the pick and its Spearman as text too */
  char cmd[4096], line[512];
  snprintf(cmd, sizeof cmd, "%s --socket %s status %lld", proc_bin("lpqctl"), s.sock,
           (long long)id);
  FILE *p = popen(cmd, "r");
  cr_assert_not_null(p);
  int saw_rule = 0, saw_rho = 0, saw_genome = 0;
  while (fgets(line, sizeof line, p)) {
    saw_rule |= strncmp(line, "pick.rule ", 10) == 0;
    saw_rho |= strncmp(line, "pick.spearman_l_co_top1 ", 24) == 0;
    saw_genome |= strncmp(line, "pick.genome ", 12) == 0 && strstr(line, chosen) != NULL;
  }
  cr_assert_eq(pclose(p), 0, "%s", cmd);
  cr_assert(saw_rule && saw_rho && saw_genome, "lpqctl status: pick.rule %d, "
            "pick.spearman_l_co_top1 %d, pick.genome %d", saw_rule, saw_rho, saw_genome);
  json_decref(r);
  json_decref(job);
  proc_svc_stop(&s);
}

/* A drop without a validation set, and the coordinator's own settings, are refused at submit. */
Test(service_pick, refused_without_validation_data) {
  proc_svc_t s;
  cr_assert_eq(proc_svc_init(&s, "lpq-pick"), 0, "mkdtemp");
  cr_assert_eq(proc_svc_start_coordinator(&s), 0, "the coordinator did not start (see %s)", s.log);
  cr_assert_eq(proc_lpqctl_submit(NULL, s.sock, "--max-drop 1"), -1, "a drop needs val_data");
  cr_assert_eq(proc_lpqctl_submit(NULL, s.sock, "--set eval=top1"), -1, "settings.eval");
  cr_assert_gt(proc_lpqctl_submit(NULL, s.sock, "--set generations=1"), 0, "a plain job");
  proc_svc_stop(&s);
}

/* db.query pages (offset), orders (order_by, descending) and names a column the table lacks
** (issue 17: they were ignored, and unknown columns came back as nulls). */
Test(service_pick, db_query_pages_orders_and_refuses_unknown_columns) {
  proc_svc_t s;
  cr_assert_eq(proc_svc_init(&s, "lpq-pick"), 0, "mkdtemp");
  cr_assert_eq(proc_svc_start_coordinator(&s), 0, "the coordinator did not start (see %s)", s.log);
  for (int i = 0; i < 5; i++) /* five queued jobs (no worker) */
    cr_assert_gt(proc_lpqctl_submit(NULL, s.sock, "--set generations=1"), 0);
  proc_rpc_t *c = &s.api;
  proc_rpc_init(c, s.sock);
  json_t *r = proc_rpc_result(c, "db.query", json_pack("{s:s, s:[s], s:s, s:b, s:i, s:i}", "table",
                                                        "jobs", "columns", "id", "order_by", "id",
                                                        "descending", 1, "limit", 2, "offset", 1));
  cr_assert_not_null(r, "%s", c->error);
  json_t *rows = json_object_get(r, "rows");
  cr_assert_eq(json_array_size(rows), 2);
  cr_assert_eq(json_integer_value(json_array_get(json_array_get(rows, 0), 0)), 4, "5 4 3 2 1, from the second");
  cr_assert_eq(json_integer_value(json_array_get(json_array_get(rows, 1), 0)), 3);
  cr_assert(json_is_true(json_object_get(r, "truncated")));
  json_decref(r);
  json_t *e = proc_rpc_call(c, "db.query", json_pack("{s:s, s:[s]}", "table", "jobs", "columns",
                                                     "no_such"));
  json_t *err = json_object_get(e, "error");
  cr_assert_eq(json_integer_value(json_object_get(err, "code")), -32602, "invalid params");
  cr_assert(strstr(json_string_value(json_object_get(err, "message")), "no_such"));
  json_decref(e);
  e = proc_rpc_call(c, "db.query", json_pack("{s:s, s:s}", "table", "jobs", "order_by", "nope"));
  cr_assert(json_object_get(e, "error"), "ordering by an unknown column is refused");
  json_decref(e);
  proc_svc_stop(&s);
}
