/* tests/test_service_sensitivity.c: the service computes a job's per-layer sensitivity on its
** workers (settings.sensitivity), stores it, and job.sensitivity / lpqctl sensitivity show it;
** the stored numbers equal a direct computation with the scorer, layer by layer. */
#include "tests/proc_harness.h"
#include "worker/worker.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HB "200"

Test(service_sensitivity, computed_by_the_workers_stored_and_shown) {
  proc_svc_t s;
  cr_assert_eq(proc_svc_init(&s, "lpq-sens"), 0, "mkdtemp");
  s.heartbeat_ms = HB;
  cr_assert_eq(proc_svc_start_coordinator(&s), 0, "the coordinator did not start (see %s)", s.log);
  cr_assert_eq(proc_svc_start_worker(&s, NULL, NULL), 0, "the worker did not start");
  int64_t id = proc_lpqctl_submit(NULL, s.sock, "--set population=6 --set generations=1 "
                                  "--set calib=16 --set sensitivity=true --set bits=[3,5] "
                                  "--seed 3");
  cr_assert_gt(id, 0, "submit failed (see %s)", s.log);
  char *st = proc_lpqctl_wait(NULL, s.sock, id, 120);
  cr_assert_str_eq(st, "done", "job %lld (see %s)", (long long)id, s.log);
  free(st);
  char args[128];
  snprintf(args, sizeof args, "sensitivity %lld", (long long)id);
  json_t *r = proc_lpqctl(NULL, s.sock, args);
  cr_assert_not_null(r, "lpqctl sensitivity --json gave nothing (see %s)", s.log);
  json_t *bits = json_object_get(r, "bits"), *layers = json_object_get(r, "layers");
  cr_assert_eq(json_array_size(bits), 3);
  cr_assert_eq(json_integer_value(json_array_get(bits, 0)), 3);

  /* the direct computation: the same calibration batch, seeds and genomes */
  lpq_error_t err;
  lpq_array_t *x = NULL;
  cr_assert_eq(lpq_load_npy(proc_fixture("score_small_x.npy"), &x, &err), 0, "%s", err.msg);
  lpq_graph_t *g = lpq_graph_load(proc_fixture("score_small.onnx"), 16, &err);
  cr_assert_not_null(g, "%s", err.msg);
  /* a new job's local terms: projected, as lpq search's (settings.local_terms) */
  lpq_score_opts_t so = {.local = LPQ_LOCAL_PROJECTED};
  lpq_scorer_t *sc = lpq_scorer_new(g, x->data, NULL, &so, &err);
  cr_assert_not_null(sc, "%s", err.msg);
  size_t nl = lpq_graph_num_layers(g);
  cr_assert_eq(json_array_size(layers), nl);
  int *seeds = calloc(2 * nl, sizeof *seeds);
  cr_assert_eq(lpq_graph_sf_seeds(g, x->data, seeds, seeds + nl, &err), 0, "%s", err.msg);
  lpq_numfmt_t *w = calloc(nl, sizeof *w), *a = calloc(nl, sizeof *a);
  lp_format_t fp = {0};
  for (size_t i = 0; i < nl; i++) {
    lpq_numfmt_from_lp(&fp, &w[i]);
    lpq_numfmt_from_lp(&fp, &a[i]);
  }
  lpq_score_t base, one;
  cr_assert_eq(lpq_scorer_eval(sc, w, a, &base, &err), 0, "%s", err.msg);
  for (size_t l = 0; l < nl; l++) {
    json_t *row = json_array_get(layers, l);
    cr_assert_str_eq(json_string_value(json_object_get(row, "name")), lpq_graph_layer(g, l)->name);
    cr_assert_eq((size_t)json_integer_value(json_object_get(row, "weights")),
                 lpq_graph_layer(g, l)->weight_count);
    for (int b = 3; b <= 5; b++) {
      lp_format_t f = {.n = b, .sf = seeds[l]};
      lp_weight_shape(b, &f.es, &f.rs);
      lpq_numfmt_from_lp(&f, &w[l]);
      cr_assert_eq(lpq_scorer_eval(sc, w, a, &one, &err), 0, "%s", err.msg);
      lpq_numfmt_from_lp(&fp, &w[l]);
      json_t *v = json_array_get(json_object_get(row, "delta_l_co"), (size_t)(b - 3));
      cr_assert(json_is_number(v), "layer %zu at %d bits: no value", l, b);
      cr_assert_float_eq(json_number_value(v), one.l_co - base.l_co, 1e-6,
                         "layer %zu at %d bits: stored %g, direct %g", l, b,
                         json_number_value(v), one.l_co - base.l_co);
      char text[LP_TEXT_MAX];
      cr_assert_str_eq(json_string_value(json_array_get(json_object_get(row, "formats"),
                                                        (size_t)(b - 3))),
                       lp_format_str(&f, text, sizeof text));
    }
  }
  json_decref(r);
  /* the view, through db.query, and the text table */
  snprintf(args, sizeof args, "history v_sensitivity --where job=%lld", (long long)id);
  r = proc_lpqctl(NULL, s.sock, args);
  cr_assert_not_null(r, "history v_sensitivity (see %s)", s.log);
  json_t *rows = json_object_get(r, "rows");
  cr_assert_eq(json_array_size(rows), nl, "one row per layer");
  json_decref(r);
  free(seeds);
  free(w);
  free(a);
  lpq_scorer_free(&sc);
  lpq_graph_free(&g);
  lpq_array_free(&x);
  proc_svc_stop(&s);
}
