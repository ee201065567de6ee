/* tests/test_sensitivity.c: per-layer sensitivity (worker/sensitivity.c) against a direct
** computation layer by layer, the bit allocation (common/alloc.c) against brute force, and
** `lpq sensitivity`'s JSON and heat map. */
#include "worker/worker.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define FIX "tests/fixtures/"

/* The family rule written out by hand (worker.h), not through lpq_sensitivity_format. */
static const char *const lp_ch_by_width[] = {NULL, NULL, "lp<2,0,1,auto_ch>", "lp<3,0,2,auto_ch>",
                                             "lp<4,0,3,auto_ch>", "lp<5,0,3,auto_ch>",
                                             "lp<6,1,3,auto_ch>"};

Test(sensitivity, equals_a_direct_computation_layer_by_layer) {
  lpq_error_t err;
  lpq_array_t *x = NULL;
  cr_assert_eq(lpq_load_npy(FIX "score_small_x.npy", &x, &err), 0, "%s", err.msg);
  const size_t n = (size_t)x->shape[0];
  lpq_graph_t *g = lpq_graph_load(FIX "score_small.onnx", (int)n, &err);
  cr_assert_not_null(g, "%s", err.msg);
  lpq_scorer_t *s = lpq_scorer_new(g, x->data, NULL, NULL, &err);
  cr_assert_not_null(s, "%s", err.msg);
  const size_t nl = lpq_graph_num_layers(g);
  cr_assert_gt(nl, 1);
  int64_t *labels = malloc(n * sizeof *labels);
  for (size_t i = 0; i < n; i++)
    labels[i] = (int64_t)(i % 3);
  lpq_sensitivity_opts_t o = {.bits_lo = 2, .bits_hi = 6, .threads = 3, .data = x->data,
                              .labels = labels, .count = n};
  lpq_sensitivity_t *m = NULL;
  cr_assert_eq(lpq_sensitivity_compute(g, s, &o, &m, &err), 0, "%s", err.msg);
  cr_assert_eq(m->layers, nl);
  cr_assert_eq(m->widths, 5);
  lpq_numfmt_t *w = calloc(nl, sizeof *w), *a = calloc(nl, sizeof *a);
  /* the reference: all fp32 */
  for (size_t i = 0; i < nl; i++) {
    lpq_numfmt_parse("fp32", &w[i], NULL);
    lpq_numfmt_parse("fp32", &a[i], NULL);
  }
  lpq_score_t base, sc;
  cr_assert_eq(lpq_scorer_eval(s, w, a, &base, &err), 0, "%s", err.msg);
  cr_assert_float_eq(m->base_l_co, base.l_co, 1e-12);
  cr_assert_float_eq(base.l_co, lpq_scorer_self_contrast(s), 1e-9);
  for (size_t l = 0; l < nl; l++) {
    cr_assert_str_eq(m->names[l], lpq_graph_layer(g, l)->name);
    cr_assert_eq(m->weight_count[l], lpq_graph_layer(g, l)->weight_count);
    for (int b = 2; b <= 6; b++) {
      for (size_t i = 0; i < nl; i++)
        lpq_numfmt_parse("fp32", &w[i], NULL);
      cr_assert_eq(lpq_numfmt_parse(lp_ch_by_width[b], &w[l], &err), 0, "%s", err.msg);
      cr_assert_eq(lpq_scorer_eval(s, w, a, &sc, &err), 0, "%s", err.msg);
      double top1;
      cr_assert_eq(lpq_scorer_accuracy(s, w, a, x->data, labels, n, NULL, &top1, &err), 0, "%s",
                   err.msg);
      size_t k = l * 5 + (size_t)(b - 2);
      cr_assert_float_eq(m->delta_l_co[k], sc.l_co - base.l_co, 1e-9, "layer %zu at %d bits: %g "
                         "vs %g", l, b, m->delta_l_co[k], sc.l_co - base.l_co);
      cr_assert_float_eq(m->top1[k], top1, 1e-12, "layer %zu at %d bits", l, b);
    }
    /* coarser weights move the layer further from fp32 */
    cr_assert_gt(m->delta_l_co[l * 5], m->delta_l_co[l * 5 + 4], "layer %zu", l);
  }
  /* one thread gives the same matrix */
  lpq_sensitivity_t *m1 = NULL;
  o.threads = 1;
  o.labels = NULL;
  cr_assert_eq(lpq_sensitivity_compute(g, s, &o, &m1, &err), 0, "%s", err.msg);
  for (size_t k = 0; k < nl * 5; k++) {
    cr_assert_float_eq(m1->delta_l_co[k], m->delta_l_co[k], 1e-12);
    cr_assert(isnan(m1->top1[k]), "no labels: top-1 is NAN");
  }
  cr_assert(isnan(m1->base_top1));
  lpq_sensitivity_free(&m1);
  cr_assert_null(m1);
  /* bad widths */
  o.bits_lo = 1;
  cr_assert_eq(lpq_sensitivity_compute(g, s, &o, &m1, &err), LPQ_EINVAL);
  cr_assert_null(m1);
  lpq_sensitivity_free(&m);
  free(w);
  free(a);
  free(labels);
  lpq_scorer_free(&s);
  lpq_graph_free(&g);
  lpq_array_free(&x);
}

Test(sensitivity, format_rule_and_families) {
  lpq_numfmt_t f;
  char t[LPQ_NUMFMT_TEXT_MAX];
  const char *want[] = {"lp<2,0,1,auto_ch>", "lp<3,0,2,auto_ch>", "lp<4,0,3,auto_ch>",
                        "lp<5,0,3,auto_ch>", "lp<8,1,3,auto_ch>"};
  const int bits[] = {2, 3, 4, 5, 8};
  for (size_t i = 0; i < 5; i++) {
    cr_assert_eq(lpq_sensitivity_format(LPQ_SENS_LP_CH, bits[i], &f, NULL), 0);
    cr_assert_str_eq(lpq_numfmt_str(&f, t, sizeof t), want[i]);
  }
  cr_assert_eq(lpq_sensitivity_format(LPQ_SENS_LP, 4, &f, NULL), 0);
  cr_assert_str_eq(lpq_numfmt_str(&f, t, sizeof t), "lp<4,0,3,auto>");
  cr_assert_eq(lpq_sensitivity_format(LPQ_SENS_INT_CH, 4, &f, NULL), 0);
  cr_assert(f.per_channel && f.bits == 4);
  cr_assert_eq(lpq_sensitivity_format(LPQ_SENS_LP_CH, 1, &f, NULL), LPQ_EINVAL);
  cr_assert_str_eq(lpq_sens_family_name(LPQ_SENS_INT_CH), "int_ch");
}

/* ---- allocation ---- */

static double total_cost(size_t n, const double *cost, int lo, int hi, const int *bits) {
  double c = 0;
  for (size_t l = 0; l < n; l++)
    c += cost[l * (size_t)(hi - lo + 1) + (size_t)(bits[l] - lo)];
  return c;
}

static double mean_bits(size_t n, const size_t *w, const int *bits) {
  double s = 0, t = 0;
  for (size_t l = 0; l < n; l++) {
    s += (double)w[l] * bits[l];
    t += (double)w[l];
  }
  return s / t;
}

/* The least cost over every assignment within the budget (pins respected); -1 if none. */
static double brute(size_t n, const double *cost, const size_t *w, const int *pins, int lo, int hi,
                    double budget) {
  int bits[8];
  double best = INFINITY;
  size_t widths = (size_t)(hi - lo + 1), combos = 1;
  for (size_t l = 0; l < n; l++)
    combos *= widths;
  for (size_t k = 0; k < combos; k++) {
    size_t r = k;
    int ok = 1;
    for (size_t l = 0; l < n; l++) {
      bits[l] = lo + (int)(r % widths);
      r /= widths;
      if (pins && pins[l] > 0 && bits[l] != pins[l])
        ok = 0;
    }
    if (ok && mean_bits(n, w, bits) <= budget + 1e-12)
      best = fmin(best, total_cost(n, cost, lo, hi, bits));
  }
  return isfinite(best) ? best : -1;
}

Test(alloc, picks_the_known_optimum_where_greedy_does_not) {
  /* widths 2..4, three layers of equal size, a mean of 3 bits: 3 bits above the lowest to
  ** spend. Layer 2 gains little from its first bit and everything from its second, which a
  ** greedy allocation by gain per bit never reaches: it buys layer 0's cliff (10), then layer
  ** 1's two steps (1.5 each): cost 0 + 4 + 5 = 9. The optimum is 3, 2, 4 bits: 0 + 7 + 0 = 7. */
  const double cost[] = {10, 0, 0,  /* layer 0 */
                         7, 5.5, 4, /* layer 1 */
                         5, 4.9, 0  /* layer 2 */};
  const size_t w[] = {1, 1, 1};
  int bits[3];
  lpq_error_t err;
  cr_assert_eq(lpq_alloc_bits(3, cost, w, NULL, 2, 4, 3.0, bits, &err), 0, "%s", err.msg);
  cr_assert_eq(bits[0], 3);
  cr_assert_eq(bits[1], 2);
  cr_assert_eq(bits[2], 4);
  cr_assert_float_eq(total_cost(3, cost, 2, 4, bits), 7.0, 1e-12);
  cr_assert_float_eq(brute(3, cost, w, NULL, 2, 4, 3.0), 7.0, 1e-12);
  /* layer 0 pinned at 4 bits leaves 1 bit to spend: on layer 1 (7 -> 5.5) */
  const int pins[] = {4, 0, 0};
  cr_assert_eq(lpq_alloc_bits(3, cost, w, pins, 2, 4, 3.0, bits, &err), 0, "%s", err.msg);
  cr_assert_eq(bits[0], 4);
  cr_assert_eq(bits[1], 3);
  cr_assert_leq(mean_bits(3, w, bits), 3.0 + 1e-12);
  cr_assert_float_eq(total_cost(3, cost, 2, 4, bits), brute(3, cost, w, pins, 2, 4, 3.0), 1e-12);
  /* a budget the pins alone exceed */
  const int pins8[] = {4, 4, 4};
  cr_assert_eq(lpq_alloc_bits(3, cost, w, pins8, 2, 4, 3.0, bits, &err), LPQ_ERANGE);
  cr_assert_eq(lpq_alloc_bits(3, cost, w, NULL, 2, 4, 1.5, bits, &err), LPQ_ERANGE);
  /* a budget that does not bind: every layer at its cheapest */
  cr_assert_eq(lpq_alloc_bits(3, cost, w, NULL, 2, 4, 8.0, bits, &err), 0, "%s", err.msg);
  cr_assert_float_eq(total_cost(3, cost, 2, 4, bits), 0.0 + 4 + 0, 1e-12);
}

Test(alloc, matches_brute_force_with_weights_and_pins) {
  uint64_t r = 12345;
  for (int trial = 0; trial < 200; trial++) {
    const size_t n = 2 + (size_t)(trial % 5); /* 2..6 layers */
    const int lo = 2, hi = 5;
    double cost[6 * 4];
    size_t w[6];
    int pins[6], bits[6];
    for (size_t l = 0; l < n; l++) {
      r = r * 6364136223846793005ULL + 1442695040888963407ULL;
      w[l] = 1 + (size_t)((r >> 33) % 50);
      pins[l] = trial % 3 == 0 && l == 0 ? 5 : 0;
      for (int b = 0; b < 4; b++) {
        r = r * 6364136223846793005ULL + 1442695040888963407ULL;
        cost[l * 4 + (size_t)b] = (double)((r >> 40) % 1000) / 100.0;
      }
    }
    double budget = 2.0 + (double)(trial % 13) * 0.25;
    double want = brute(n, cost, w, pins, lo, hi, budget);
    lpq_error_t err;
    int rc = lpq_alloc_bits(n, cost, w, pins, lo, hi, budget, bits, &err);
    if (want < 0) {
      cr_assert_eq(rc, LPQ_ERANGE, "trial %d", trial);
      continue;
    }
    cr_assert_eq(rc, 0, "trial %d: %s", trial, err.msg);
    cr_assert_leq(mean_bits(n, w, bits), budget + 1e-12, "trial %d", trial);
    for (size_t l = 0; l < n; l++) {
      cr_assert(bits[l] >= lo && bits[l] <= hi);
      if (pins[l])
        cr_assert_eq(bits[l], pins[l]);
    }
    cr_assert_float_eq(total_cost(n, cost, lo, hi, bits), want, 1e-9, "trial %d", trial);
  }
}

Test(alloc, large_weight_counts_keep_the_budget) {
  /* counts of a real model: the knapsack works in rounded-up units, the budget still holds */
  const size_t n = 20;
  double cost[20 * 7];
  size_t w[20];
  int pins[20] = {0}, bits[20];
  for (size_t l = 0; l < n; l++) {
    w[l] = 1000 + l * 123457;
    for (int b = 0; b < 7; b++)
      cost[l * 7 + (size_t)b] = exp(-(double)b) * (double)(l % 4 + 1);
  }
  pins[0] = pins[n - 1] = 8;
  lpq_error_t err;
  cr_assert_eq(lpq_alloc_bits(n, cost, w, pins, 2, 8, 4.0, bits, &err), 0, "%s", err.msg);
  cr_assert_leq(mean_bits(n, w, bits), 4.0 + 1e-9);
  cr_assert_geq(mean_bits(n, w, bits), 3.9, "the budget is used: %g", mean_bits(n, w, bits));
  cr_assert_eq(bits[0], 8);
  cr_assert_eq(bits[n - 1], 8);
}

/* ---- the command line ---- */

static int lpq(const char *args, char **out) {
  const char *build = getenv("LPQ_BUILD") ? getenv("LPQ_BUILD") : "build";
  char cmd[4096];
  snprintf(cmd, sizeof cmd, "%s/bin/lpq %s", build, args);
  FILE *p = popen(cmd, "r");
  cr_assert_not_null(p);
  size_t cap = 1 << 16, n = 0, got;
  char *buf = malloc(cap);
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

Test(sensitivity_cli, json_has_layers_by_bits_and_the_svg_is_written) {
  char *o, args[1024];
  const char *svg = "build/test_sensitivity_heat.svg";
  unlink(svg);
  snprintf(args, sizeof args, "sensitivity --model " FIX "score_small.onnx --data " FIX
           "score_small_x.npy --calib 16 --bits 3:6 --threads 2 --json --svg %s", svg);
  cr_assert_eq(lpq(args, &o), 0, "%s", o);
  json_error_t je;
  json_t *j = json_loads(o, 0, &je);
  cr_assert_not_null(j, "%s: %s", je.text, o);
  json_t *bits = json_object_get(j, "bits"), *m = json_object_get(j, "matrix");
  cr_assert_eq(json_array_size(bits), 4);
  cr_assert_eq(json_integer_value(json_array_get(bits, 0)), 3);
  size_t nl = (size_t)json_integer_value(json_object_get(j, "layers"));
  cr_assert_gt(nl, 0);
  cr_assert_eq(json_array_size(m), nl);
  for (size_t l = 0; l < nl; l++) {
    json_t *row = json_array_get(m, l), *d = json_object_get(row, "delta_l_co");
    cr_assert(json_is_string(json_object_get(row, "name")));
    cr_assert_eq(json_array_size(d), 4);
    for (size_t c = 0; c < 4; c++)
      cr_assert(json_is_number(json_array_get(d, c)), "layer %zu, column %zu", l, c);
    cr_assert(json_is_null(json_array_get(json_object_get(row, "top1"), 0)), "no labels");
  }
  cr_assert_str_eq(json_string_value(json_object_get(j, "family")), "lp_ch");
  json_decref(j);
  free(o);
  struct stat st;
  cr_assert_eq(stat(svg, &st), 0, "no heat map");
  cr_assert_gt(st.st_size, 500);
  FILE *f = fopen(svg, "r");
  char buf[256] = {0};
  cr_assert_gt(fread(buf, 1, sizeof buf - 1, f), 0);
  fclose(f);
  cr_assert(strstr(buf, "<svg") != NULL);
  /* text output, help, errors */
  cr_assert_eq(lpq("sensitivity --model " FIX "score_small.onnx --data " FIX
                   "score_small_x.npy --calib 8 --bits 4:4 --threads 1", &o), 0, "%s", o);
  cr_assert(strstr(o, "rise of L_CO") != NULL, "%s", o);
  free(o);
  cr_assert_eq(lpq("sensitivity --help", &o), 0);
  cr_assert(strstr(o, "usage: lpq sensitivity") != NULL, "%s", o);
  free(o);
  cr_assert_eq(lpq("sensitivity --model x --data y --bits 9:3 2>&1", &o), 2);
  cr_assert(strstr(o, "--bits 9:3") != NULL, "%s", o);
  free(o);
}
