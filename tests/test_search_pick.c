/* tests/test_search_pick.c: choosing a config after the search: the cheapest within a top-1
** drop of fp32 on a fixture where the answer is known, what happens when none is within, and
** Spearman's rank correlation against hand-computed values. Also `lpq search --val-data
** --max-drop` end to end on the bundled ResNet-18: the pick it reports follows the rule. */
#include "coordinator/search/search.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

Test(search_pick, cheapest_within_the_drop) {
  /* fp32 at 90.0; cost grows with index except #4, the cheapest of all but 3 points down */
  const double cost[] = {0.20, 0.15, 0.12, 0.10, 0.05, 0.11};
  const double top1[] = {89.9, 89.6, 89.2, 88.7, 87.0, 89.4};
  int within = -1;
  cr_assert_eq(lpq_pick_within_drop(cost, top1, 6, 90.0, 1.0, &within), 5); /* 0.11, 0.6 down */
  cr_assert_eq(within, 1);
  cr_assert_eq(lpq_pick_within_drop(cost, top1, 6, 90.0, 1.5, &within), 3); /* 0.10, 1.3 down */
  cr_assert_eq(lpq_pick_within_drop(cost, top1, 6, 90.0, 3.0, &within), 4);
  cr_assert_eq(lpq_pick_within_drop(cost, top1, 6, 90.0, 0.2, &within), 0);
  /* none within: the highest top-1, and within says so */
  cr_assert_eq(lpq_pick_within_drop(cost, top1, 6, 95.0, 0.5, &within), 0);
  cr_assert_eq(within, 0);
  /* no drop given: the highest top-1 */
  cr_assert_eq(lpq_pick_within_drop(cost, top1, 6, 90.0, -1, &within), 0);
  /* unmeasured candidates are skipped, ties keep the first */
  const double t2[] = {-1, 89.6, 89.6, -1};
  const double c2[] = {0.01, 0.2, 0.2, 0.01};
  cr_assert_eq(lpq_pick_within_drop(c2, t2, 4, 90.0, 1.0, NULL), 1);
  const double none[] = {-1, -1};
  cr_assert_eq(lpq_pick_within_drop(c2, none, 2, 90.0, 1.0, NULL), -1);
}

Test(search_pick, spearman_known_values) {
  const double x[] = {1, 2, 3, 4, 5}, up[] = {10, 20, 30, 40, 50}, down[] = {5, 4, 3, 2, 1};
  cr_assert_float_eq(lpq_spearman(x, up, 5), 1.0, 1e-12);
  cr_assert_float_eq(lpq_spearman(x, down, 5), -1.0, 1e-12);
  /* d = (0, 1, -1, 0, 0)... by hand: ranks y = 1 3 2 4 5, rho = 1 - 6*2/(5*24) = 0.9 */
  const double y[] = {1.0, 3.0, 2.0, 4.0, 5.0};
  cr_assert_float_eq(lpq_spearman(x, y, 5), 0.9, 1e-12);
  /* ties take their mean rank: x ranks 1.5 1.5 3 4, y ranks 1 2 3 4 -> Pearson of ranks */
  const double xt[] = {7, 7, 8, 9}, yt[] = {1, 2, 3, 4};
  double rho = lpq_spearman(xt, yt, 4);
  cr_assert_float_eq(rho, 0.9486832980505138, 1e-12);
  cr_assert(isnan(lpq_spearman(x, up, 2)), "fewer than 3 pairs");
  const double flat[] = {3, 3, 3, 3, 3};
  cr_assert(isnan(lpq_spearman(x, flat, 5)), "a constant side");
}

/* lpq search on ResNet-18 (calibration 16; the bundled test images as --data and as a stand-in
** validation set) with more options, its --json document. */
static json_t *search_json(const char *options) {
  const char *build = getenv("LPQ_BUILD") ? getenv("LPQ_BUILD") : "build";
  char cmd[2048];
  snprintf(cmd, sizeof cmd,
           "%s/bin/lpq search --model models/resnet18.onnx --data models/fashion_test_256.npy "
           "--labels models/fashion_test_256_labels.npy --calib-data models/fashion_calib_256.npy "
           "--calib 16 --val-data models/fashion_test_256.npy --val-labels "
           "models/fashion_test_256_labels.npy %s --json 2>/dev/null",
           build, options);
  FILE *p = popen(cmd, "r");
  cr_assert_not_null(p);
  json_error_t jerr;
  json_t *o = json_loadf(p, 0, &jerr);
  cr_assert_eq(pclose(p), 0, "lpq search failed: %s", cmd);
  cr_assert_not_null(o, "%s", jerr.text);
  return o;
}

/* The whole path on a real model: the reported best is the cheapest front member within the
** drop on the validation data (checked against the front the run printed). */
Test(search_pick, lpq_search_reports_the_pick, .timeout = 300) {
  /* the first 128 test images stand in for a validation set here; the rule is what is tested */
  json_t *o = search_json("--max-drop 2 --max-weight-bits 4.5 --pin-ends --evaluations 24 "
                          "--generations 0 --population 8 --weight-sf channel --threads 2 "
                          "--top1 1");
  json_t *front = json_object_get(o, "front"), *best = json_object_get(o, "best");
  cr_assert(json_array_size(front) > 0 && best);
  double ref = json_real_value(json_object_get(o, "top1_val_fp32"));
  size_t idx = (size_t)json_integer_value(json_object_get(best, "index"));
  int within = json_is_true(json_object_get(best, "within_max_drop"));
  double best_cr = INFINITY, best_top1 = -1;
  size_t expect = 0;
  int any = 0;
  for (size_t i = 0; i < json_array_size(front); i++) {
    json_t *m = json_array_get(front, i);
    double cr = json_real_value(json_object_get(m, "l_cr"));
    double t = json_real_value(json_object_get(m, "top1_val"));
    cr_assert(json_is_real(json_object_get(m, "top1_val")), "member %zu has no validation top-1", i);
    if (ref - t <= 2.0 && cr < best_cr) {
      best_cr = cr;
      expect = i;
      any = 1;
    }
    if (!any && t > best_top1) {
      best_top1 = t;
      expect = i;
    }
  }
  cr_assert_eq(within, any);
  cr_assert_eq(idx, expect, "best #%zu, expected #%zu", idx, expect);
  /* the chosen one's test top-1 is reported even beyond --top1 */
  cr_assert(json_is_real(json_object_get(json_array_get(front, idx), "top1")));
  cr_assert(json_is_real(json_object_get(o, "spearman_l_co_top1")) ||
            json_array_size(front) < 3);
  json_decref(o);
}

/* With --labels and no validation set: Spearman of L_CO and top-1 on --data over the --top1
** members scored, in the --json document, in the text and in --out's summary.json (no best.json:
** nothing is chosen without validation data). */
Test(search_pick, labels_alone_report_spearman_everywhere, .timeout = 300) {
  const char *build = getenv("LPQ_BUILD") ? getenv("LPQ_BUILD") : "build";
  char dir[] = "/tmp/lpq-spearman-XXXXXX", cmd[2048];
  cr_assert_not_null(mkdtemp(dir));
  const char *common = "search --model models/resnet18.onnx --data models/fashion_test_256.npy "
                       "--labels models/fashion_test_256_labels.npy --calib-data "
                       "models/fashion_calib_256.npy --calib 16 --max-weight-bits 4.5 --pin-ends "
                       "--evaluations 16 --generations 0 --population 8 --threads 2 --top1 5";
  snprintf(cmd, sizeof cmd, "%s/bin/lpq %s --out %s/out --json 2>/dev/null", build, common, dir);
  FILE *p = popen(cmd, "r");
  cr_assert_not_null(p);
  json_error_t jerr;
  json_t *o = json_loadf(p, 0, &jerr);
  cr_assert_eq(pclose(p), 0, "%s", cmd);
  cr_assert_not_null(o, "%s", jerr.text);
  cr_assert_str_eq(json_string_value(json_object_get(o, "spearman_on")), "data");
  json_t *front = json_object_get(o, "front");
  double x[8], y[8];
  size_t k = 0;
  for (size_t i = 0; i < json_array_size(front) && k < 8; i++) {
    json_t *m = json_array_get(front, i), *t = json_object_get(m, "top1");
    if (json_is_number(t)) {
      x[k] = json_number_value(json_object_get(m, "l_co"));
      y[k++] = json_number_value(t);
    }
  }
  const double rho = lpq_spearman(x, y, k);
  json_t *jr = json_object_get(o, "spearman_l_co_top1");
  if (isnan(rho))
    cr_assert(json_is_null(jr), "%zu members scored", k);
  else
    cr_assert_float_eq(json_number_value(jr), rho, 1e-9, "over %zu members", k);
  char path[256];
  snprintf(path, sizeof path, "%s/out/summary.json", dir);
  json_t *sum = json_load_file(path, 0, &jerr);
  cr_assert_not_null(sum, "%s: %s", path, jerr.text);
  cr_assert(json_equal(json_object_get(sum, "spearman_l_co_top1"), jr), "summary.json's Spearman");
  snprintf(path, sizeof path, "%s/out/best.json", dir);
  cr_assert_neq(access(path, F_OK), 0, "best.json without a validation set");
  json_decref(sum);
  /* the text says it too, when there is a figure */
  snprintf(cmd, sizeof cmd, "%s/bin/lpq %s 2>/dev/null", build, common);
  p = popen(cmd, "r");
  cr_assert_not_null(p);
  char line[512];
  int said = 0;
  while (fgets(line, sizeof line, p))
    said |= strstr(line, "Spearman rank correlation of L_CO and top-1 over the front (--data)") !=
            NULL;
  cr_assert_eq(pclose(p), 0, "%s", cmd);
  cr_assert_eq(said, !isnan(rho), "the text's Spearman line");
  json_decref(o);
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  cr_assert_eq(system(cmd), 0);
}

/* --time bounds the whole search, the validation pick included: the reserve for scoring the
** front on the validation data is sized from fp32's pass over it, and the pick stops taking
** members when one more round would pass the deadline. The report on --data comes on top. */
Test(search_pick, time_covers_the_validation_pick, .timeout = 300) {
  /* Under the sanitizers a quantized pass over the 256 validation images takes ~6 s (the
  ** Winograd transforms of hooked weights at -O1), and the first round of the pick is always
  ** scored: 20 s cannot hold the fp32 pass, the first generation and that round there. */
  const double limit = getenv("LPQ_ASAN") ? 40 : 20;
  char opts[256];
  snprintf(opts, sizeof opts, "--max-weight-bits 4.5 --pin-ends --time %g --generations 0 "
           "--population 8 --threads 2 --top1 0", limit);
  json_t *o = search_json(opts);
  double total = json_real_value(json_object_get(o, "search_total_seconds"));
  double search = json_real_value(json_object_get(o, "seconds"));
  cr_assert(total > 0 && search > 0 && search < total, "search %g s of %g s", search, total);
  /* one round of validation scoring may be measured short; a quarter is the slack allowed */
  cr_assert_leq(total, 1.25 * limit, "the search took %g s of --time %g", total, limit);
  cr_assert(json_integer_value(json_object_get(o, "val_members_scored")) >= 1);
  cr_assert(json_is_real(json_object_get(o, "data_top1_seconds")));
  json_t *front = json_object_get(o, "front");
  size_t idx = (size_t)json_integer_value(json_object_get(json_object_get(o, "best"), "index"));
  cr_assert(json_is_real(json_object_get(json_array_get(front, idx), "top1")),
            "the chosen config's top-1 on --data is reported");
  json_decref(o);
}

/* Without a drop: the lowest-L_CO member within one standard error of the best top-1. */
Test(search_pick, within_one_standard_error) {
  /* best 0.90 over 400 samples: se = sqrt(0.9 * 0.1 / 400) = 0.015; members in L_CO order */
  const double t[] = {0.80, -1, 0.886, 0.90, 0.89};
  cr_assert_eq(lpq_pick_within_se(t, 5, 400), 2, "0.886 >= 0.885 is within");
  const double u[] = {0.80, 0.884, 0.90};
  cr_assert_eq(lpq_pick_within_se(u, 3, 400), 2, "0.884 is not");
  const double none[] = {-1, -1};
  cr_assert_eq(lpq_pick_within_se(none, 2, 400), -1);
}

/* Filling the budget: bits go where the sensitivity falls most per weight bit, never past the
** budget, never to pinned or fp32 layers; no gain, no raise. Known answer by hand. */
Test(search_pick, fill_budget_by_sensitivity) {
  lpq_job_settings_t js;
  lpq_job_settings_default(&js);
  lpq_layer_spec_t sp[4];
  memset(sp, 0, sizeof sp);
  lpq_layer_formats_t g[4], out[4];
  memset(g, 0, sizeof g);
  const size_t cnt[4] = {100, 100, 200, 100};
  for (int l = 0; l < 4; l++) {
    sp[l].weight_count = cnt[l];
    g[l].weight.n = 3;
    lp_weight_shape(3, &g[l].weight.es, &g[l].weight.rs);
  }
  g[3].weight.n = 8; /* a pinned end */
  sp[3].weight_n_pin = 8;
  /* layer 0: 3->4 saves 0.5 (0.005 per bit-weight), 4->5 saves 0.1; layer 1: 3->4 saves 0.2;
  ** layer 2: 3->4 saves 0.6 over 200 weights (0.003 per bit-weight) */
  sp[0].weight_sens[3] = 1.0, sp[0].weight_sens[4] = 0.5, sp[0].weight_sens[5] = 0.4;
  sp[1].weight_sens[3] = 0.3, sp[1].weight_sens[4] = 0.1, sp[1].weight_sens[5] = 0.1;
  sp[2].weight_sens[3] = 0.9, sp[2].weight_sens[4] = 0.3, sp[2].weight_sens[5] = 0.3;
  sp[3].weight_sens[8] = 0, sp[3].weight_sens[9] = -1; /* pinned: never raised */
  /* mean now (3*400 + 8*100) / 500 = 4.0; budget 4.4 leaves 200 bit-weights: layer 0 (0.005)
  ** then layer 1 (0.002, 100 fits) -- layer 2 (0.003, 200 weights) no longer fits after 0 */
  size_t r = lpq_search_fill_budget(&js, sp, 4, g, 4.4, NULL, out);
  cr_assert_eq(r, 2);
  cr_assert_eq(out[0].weight.n, 4);
  cr_assert_eq(out[1].weight.n, 4);
  cr_assert_eq(out[2].weight.n, 3);
  cr_assert_eq(out[3].weight.n, 8);
  int es, rs;
  lp_weight_shape(4, &es, &rs);
  cr_assert(out[0].weight.es == es && out[0].weight.rs == rs, "the LP shape of 4 bits");
  /* budget 4.6 (300): layer 0 (0.005), then layer 2 (0.003, 200), then layer 1 no longer fits */
  r = lpq_search_fill_budget(&js, sp, 4, g, 4.6, NULL, out);
  cr_assert(r == 2 && out[0].weight.n == 4 && out[2].weight.n == 4 && out[1].weight.n == 3);
  /* no room, or no gain: nothing */
  cr_assert_eq(lpq_search_fill_budget(&js, sp, 4, g, 4.0, NULL, out), 0);
  for (int l = 0; l < 3; l++)
    sp[l].weight_sens[4] = sp[l].weight_sens[3];
  cr_assert_eq(lpq_search_fill_budget(&js, sp, 4, g, 8.0, NULL, out), 0, "no gain at 3 -> 4 anywhere");
}

/* Filling the budget by measured gains (the fall of the output's KL divergence for one more
** bit on a layer of this genome): the most gain per weight bit first, each layer at most once
** (a gain holds for one bit), unmeasured (NAN) or non-positive gains never taken, each layer's
** LP shape kept. Known answer by hand. */
Test(search_pick, fill_budget_by_measured_gain) {
  lpq_job_settings_t js;
  lpq_job_settings_default(&js);
  lpq_layer_spec_t sp[4];
  memset(sp, 0, sizeof sp);
  lpq_layer_formats_t g[4], out[4];
  memset(g, 0, sizeof g);
  const size_t cnt[4] = {100, 100, 100, 100};
  const int rs[4] = {4, 3, 2, 2}; /* layer 0 uncapped (rs = n - 1), layer 1 capped */
  for (int l = 0; l < 4; l++) {
    sp[l].weight_count = cnt[l];
    g[l].weight.n = l < 2 ? 5 : 3;
    g[l].weight.rs = rs[l];
  }
  const double gain[4] = {0.3, 0.2, NAN, -0.1};
  /* mean (5+5+3+3)/4 = 4; budget 6 leaves 800 bit-weights, but each layer takes one bit and
  ** layers 2 (unmeasured) and 3 (no gain) none */
  size_t r = lpq_search_fill_budget(&js, sp, 4, g, 6.0, gain, out);
  cr_assert_eq(r, 2);
  cr_assert(out[0].weight.n == 6 && out[0].weight.rs == 5, "uncapped stays uncapped");
  cr_assert(out[1].weight.n == 6 && out[1].weight.rs == 3, "a capped regime keeps its cap");
  cr_assert(out[2].weight.n == 3 && out[3].weight.n == 3);
  /* room for one: the larger gain per bit */
  r = lpq_search_fill_budget(&js, sp, 4, g, 4.25, gain, out);
  cr_assert(r == 1 && out[0].weight.n == 6 && out[1].weight.n == 5);
  sp[0].weight_count = 400; /* 0.3 over 400 weights is less per bit than 0.2 over 100 */
  r = lpq_search_fill_budget(&js, sp, 4, g, 8.0, gain, out);
  cr_assert(r == 2);
  /* room for either alone (400 bit-weights): layer 1 first (0.002 per bit against 0.00075),
  ** then layer 0 no longer fits */
  r = lpq_search_fill_budget(&js, sp, 4, g, (5.0 * 400 + 5 * 100 + 3 * 200 + 400) / 700.0, gain,
                             out);
  cr_assert(r == 1 && out[1].weight.n == 6 && out[0].weight.n == 5, "the most gain per bit");
}

/* --fill-budget on end to end: the chosen config's unused bits are spent (never past the
** budget), and the filled config is the pick exactly when its validation top-1 is not lower. */
Test(search_pick, lpq_search_fills_the_budget, .timeout = 300) {
  json_t *o = search_json("--max-weight-bits 4.5 --pin-ends --evaluations 24 --generations 0 "
                          "--population 8 --weight-sf channel --threads 2 --top1 0 "
                          "--fill-budget on");
  json_t *fb = json_object_get(o, "fill_budget"), *front = json_object_get(o, "front");
  cr_assert_not_null(fb, "the chosen config left bits unused and none were spent");
  cr_assert_gt(json_integer_value(json_object_get(fb, "raised_bits")), 0);
  size_t idx = (size_t)json_integer_value(json_object_get(json_object_get(o, "best"), "index"));
  const double from = json_real_value(json_object_get(fb, "top1_val_from"));
  const double val = json_real_value(json_object_get(fb, "top1_val"));
  const int kept = json_is_true(json_object_get(fb, "chosen"));
  cr_assert_eq(kept, val >= from, "kept %d with validation %g against %g", kept, val, from);
  json_t *best = json_array_get(front, idx);
  cr_assert_leq(json_real_value(json_object_get(best, "mean_weight_bits")), 4.5 + 1e-9);
  if (kept) {
    cr_assert_eq(idx, json_array_size(front) - 1, "the filled config is the extra member");
    cr_assert_float_eq(json_real_value(json_object_get(best, "top1_val")), val, 1e-9);
    json_t *was = json_array_get(front, (size_t)json_integer_value(json_object_get(fb, "from")));
    cr_assert_gt(json_real_value(json_object_get(best, "mean_weight_bits")),
                 json_real_value(json_object_get(was, "mean_weight_bits")));
  }
  json_decref(o);
}
