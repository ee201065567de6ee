/* tests/test_score_prefix.c: what the scorer reuses between candidates gives the same scores,
** bit for bit, as computing everything again: the prefix cache of local terms (children
** sharing their first layers' formats with scored genomes, as the search makes them), the
** shared calibration of LP sf offsets; the prefix cache stays within its bound; and the data
** set's batches on several threads give what one thread gives. */
#include "engine/engine.h"
#include "worker/worker.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/model_setup.h"

TestSuite(score_prefix, .timeout = 600);

static uint32_t next(uint64_t *st) {
  *st = *st * 6364136223846793005ull + 1442695040888963407ull;
  return (uint32_t)(*st >> 33);
}

/* A random layer: LP weights per tensor or per channel, with an sf offset, LP activations. */
static void random_layer(uint64_t *st, lpq_numfmt_t *w, lpq_numfmt_t *a) {
  char t[64];
  int off = (int)(next(st) % 5) - 2;
  unsigned n = 4 + next(st) % 3, es = next(st) % 2, rs = n == 4 ? 2 : 2 + next(st) % 2;
  snprintf(t, sizeof t, "lp<%u,%u,%u,%s%+d>", n, es, rs, next(st) % 2 ? "auto_ch" : "auto", off);
  cr_assert_eq(lpq_numfmt_parse(t, w, NULL), 0, "%s", t);
  snprintf(t, sizeof t, "lp<%u,%u,3,auto%+d>", 6 + next(st) % 3, 1 + next(st) % 2,
           (int)(next(st) % 3) - 1);
  cr_assert_eq(lpq_numfmt_parse(t, a, NULL), 0, "%s", t);
}

static int same_score(const lpq_score_t *a, const lpq_score_t *b) {
  return memcmp(&a->l_co, &b->l_co, sizeof a->l_co) == 0 &&
         memcmp(&a->l_global, &b->l_global, sizeof a->l_global) == 0 &&
         memcmp(&a->l_local, &b->l_local, sizeof a->l_local) == 0 &&
         a->mean_w_bits == b->mean_w_bits && a->mean_a_bits == b->mean_a_bits;
}

/* A population: random genomes, then children that keep a parent's first layers and
** regenerate a block after them (the search's operator: weights, activations or both). Every score of `cached`
** must equal `uncached`'s; returns the cached scorer's stats. */
static lpq_scorer_stats_t population_cut(const char *model, int batch, size_t prefix_bytes,
                                         size_t cut_bytes, size_t count) {
  setup_t s = load(model, "models/fashion_calib_256.npy", batch);
  lpq_error_t err;
  lpq_score_opts_t co = {.prefix_bytes = prefix_bytes, .cut_bytes = cut_bytes},
                   uo = {.no_cache = 1};
  lpq_scorer_t *cached = lpq_scorer_new(s.g, s.x->data, NULL, &co, &err);
  cr_assert_not_null(cached, "%s", err.msg);
  lpq_scorer_t *uncached = lpq_scorer_new(s.g, s.x->data, NULL, &uo, &err);
  cr_assert_not_null(uncached, "%s", err.msg);
  const size_t nl = s.nl, parents = 4;
  lpq_numfmt_t *w = calloc(count * nl, sizeof *w), *a = calloc(count * nl, sizeof *a);
  uint64_t st = 14;
  for (size_t k = 0; k < count; k++) {
    lpq_numfmt_t *wk = w + k * nl, *ak = a + k * nl;
    if (k < parents) {
      for (size_t l = 0; l < nl; l++)
        random_layer(&st, &wk[l], &ak[l]);
    } else {
      size_t p = next(&st) % k, from = next(&st) % nl, len = 1 + next(&st) % 4;
      memcpy(wk, w + p * nl, nl * sizeof *wk);
      memcpy(ak, a + p * nl, nl * sizeof *ak);
      unsigned what = next(&st) % 3; /* both, the weights only, the activations only */
      for (size_t l = from; l < nl && l < from + len; l++) {
        lpq_numfmt_t nw, na;
        random_layer(&st, &nw, &na);
        if (what != 2)
          wk[l] = nw;
        if (what != 1)
          ak[l] = na;
      }
    }
    lpq_score_t rc, ru;
    cr_assert_eq(lpq_scorer_eval(cached, wk, ak, &rc, &err), 0, "%s", err.msg);
    cr_assert_eq(lpq_scorer_eval(uncached, wk, ak, &ru, &err), 0, "%s", err.msg);
    cr_assert(same_score(&rc, &ru), "%s, candidate %zu: cached L_CO %.17g (local %.17g) vs "
              "uncached %.17g (local %.17g)", model, k, rc.l_co, rc.l_local, ru.l_co,
              ru.l_local);
    lpq_scorer_stats_t now;
    lpq_scorer_stats(cached, &now);
    cr_assert_leq(now.prefix_bytes, prefix_bytes, "%s: the prefix cache holds %zu bytes, over "
                  "its bound of %zu", model, now.prefix_bytes, prefix_bytes);
    if (cut_bytes)
      cr_assert_leq(now.cut_bytes, cut_bytes, "%s: the cut cache holds %zu bytes, over its "
                    "bound of %zu", model, now.cut_bytes, cut_bytes);
  }
  lpq_scorer_stats_t stats;
  lpq_scorer_stats(cached, &stats);
  lpq_scorer_free(&cached);
  lpq_scorer_free(&uncached);
  free(w);
  free(a);
  unload(&s);
  return stats;
}

static lpq_scorer_stats_t population(const char *model, int batch, size_t prefix_bytes,
                                     size_t count) {
  return population_cut(model, batch, prefix_bytes, 0, count);
}

/* Children resumed at cuts (the layers before not run) score as the whole pass does. */
static void resumed(const char *model, const lpq_scorer_stats_t *st) {
  cr_assert_gt(st->ncuts, 0, "%s: no cut chosen", model);
  cr_assert_gt(st->cut_saves, 0, "%s: no state saved at a cut", model);
  cr_assert_gt(st->cut_resumes, 0, "%s: no pass resumed at a cut", model);
  cr_assert_geq(st->cut_layers_skipped, st->cut_resumes, "%s", model);
}

Test(score_prefix, children_score_bit_for_bit_as_uncached_resnet18) {
  lpq_scorer_stats_t st = population("models/resnet18.onnx", 16, (size_t)1 << 20, 24);
  cr_assert_gt(st.prefix_hits, 0, "no local term was reused");
  cr_assert_gt(st.prefix_bytes, 0);
  resumed("resnet18", &st);
}

Test(score_prefix, children_score_bit_for_bit_as_uncached_mobilenetv2_vit) {
  lpq_scorer_stats_t st = population("models/mobilenetv2.onnx", 8, (size_t)1 << 20, 12);
  cr_assert_gt(st.prefix_hits, 0, "mobilenetv2: no local term was reused");
  resumed("mobilenetv2", &st);
  st = population("models/vit.onnx", 8, (size_t)1 << 20, 12);
  cr_assert_gt(st.prefix_hits, 0, "vit: no local term was reused");
  resumed("vit", &st);
}

Test(score_prefix, the_cut_cache_keeps_its_bound_and_scores_stay_exact) {
  /* room for about two saved states of ResNet-18 at batch 8: entries replaced all the time */
  lpq_graph_t *g = lpq_graph_load("models/resnet18.onnx", 8, NULL);
  cr_assert_not_null(g);
  size_t largest = 0;
  for (size_t l = 0; l < lpq_graph_num_layers(g); l++)
    if (lpq_graph_cut_bytes(g, l) > largest)
      largest = lpq_graph_cut_bytes(g, l);
  lpq_graph_free(&g);
  lpq_scorer_stats_t st = population_cut("models/resnet18.onnx", 8, 1 << 20, 4 * largest, 20);
  cr_assert_leq(st.cut_bytes, 4 * largest);
  cr_assert_gt(st.cut_saves, 0);
  /* a save that evicts a state of its size writes into that state's buffer */
  cr_assert_gt(st.cut_reuses, 0, "no save reused an evicted state's buffer (%llu saves)",
               (unsigned long long)st.cut_saves);
  cr_assert_leq(st.cut_reuses, st.cut_saves);
}

Test(score_prefix, a_tiny_bound_is_kept_and_scores_stay_exact) {
  /* two sets of four: far fewer entries than the population's prefixes, so entries are
  ** replaced all the time; a bound under one set means no cache at all */
  lpq_scorer_stats_t st = population("models/resnet18.onnx", 8, 256, 16);
  cr_assert_leq(st.prefix_bytes, 256);
  cr_assert_gt(st.prefix_misses, 8 * 4, "the bound did not make the cache forget");
  st = population("models/resnet18.onnx", 8, 100, 6);
  cr_assert_eq(st.prefix_bytes, 0);
  cr_assert_eq(st.prefix_hits, 0);
}

Test(score_prefix, predict_on_threads_equals_one_thread) {
  setup_t s = load("models/resnet18.onnx", "models/fashion_calib_256.npy", 16);
  lpq_array_t *x = NULL;
  lpq_error_t err;
  cr_assert_eq(lpq_load_npy("models/fashion_test_256.npy", &x, &err), 0, "%s", err.msg);
  lpq_array_t *y = NULL;
  cr_assert_eq(lpq_load_npy("models/fashion_test_256_labels.npy", &y, &err), 0, "%s", err.msg);
  const size_t n = 250; /* 16 batches, the last one short */
  int64_t *labels = malloc(n * sizeof *labels);
  for (size_t i = 0; i < n; i++)
    labels[i] = y->dtype == LPQ_DT_I64 ? ((const int64_t *)y->data)[i]
                                       : (int64_t)((const uint8_t *)y->data)[i];
  lpq_numfmt_t w[64], a[64];
  cr_assert_leq(s.nl, 64);
  for (size_t l = 0; l < s.nl; l++) {
    cr_assert_eq(lpq_numfmt_parse(l % 2 ? "lp<6,1,3,auto_ch>" : "lp<5,1,2,auto>", &w[l], NULL), 0);
    cr_assert_eq(lpq_numfmt_parse("lp<8,2,3,auto>", &a[l], NULL), 0);
  }
  float *z[2];
  double fp[2], q[2];
  const int threads[2] = {1, 3};
  for (int k = 0; k < 2; k++) {
    lpq_score_opts_t o = {.threads = threads[k]};
    lpq_scorer_t *sc = lpq_scorer_new(s.g, s.x->data, NULL, &o, &err);
    cr_assert_not_null(sc, "%s", err.msg);
    z[k] = malloc(n * 10 * sizeof *z[k]);
    if (k == 1) { /* the candidate scored first: its states are at the cuts, for the
                  ** calibration batch only; predicting on other data must not resume there */
      lpq_score_t sc1, sc2;
      cr_assert_eq(lpq_scorer_eval(sc, w, a, &sc1, &err), 0, "%s", err.msg);
      cr_assert_eq(lpq_scorer_eval(sc, w, a, &sc2, &err), 0, "%s", err.msg);
      cr_assert_eq(sc1.l_co, sc2.l_co);
      lpq_scorer_stats_t st;
      lpq_scorer_stats(sc, &st);
      cr_assert_gt(st.cut_resumes, 0, "the second score did not resume at a cut");
    }
    cr_assert_eq(lpq_scorer_predict(sc, w, a, (const float *)x->data, labels, n, &fp[k], &q[k],
                                    z[k], &err), 0, "%s", err.msg);
    lpq_scorer_free(&sc);
  }
  cr_assert_eq(memcmp(z[0], z[1], n * 10 * sizeof *z[0]), 0, "logits differ with 3 threads "
               "(and cut states of the calibration batch held)");
  cr_assert_eq(fp[0], fp[1]);
  cr_assert_eq(q[0], q[1]);
  cr_assert_gt(q[0], 0.5, "top-1 %.3f: the candidate should classify", q[0]);
  /* a bad label: the same (first) error whatever the threads */
  labels[40] = 99;
  labels[200] = -1;
  char msg[2][sizeof err.msg];
  for (int k = 0; k < 2; k++) {
    lpq_score_opts_t o = {.threads = threads[k]};
    lpq_scorer_t *sc = lpq_scorer_new(s.g, s.x->data, NULL, &o, &err);
    cr_assert_neq(lpq_scorer_predict(sc, w, a, (const float *)x->data, labels, n, NULL, &q[k],
                                     NULL, &err), 0);
    snprintf(msg[k], sizeof msg[k], "%s", err.msg);
    lpq_scorer_free(&sc);
  }
  cr_assert_str_eq(msg[0], msg[1]);
  cr_assert(strstr(msg[0], "label 40") != NULL, "%s", msg[0]);
  free(z[0]);
  free(z[1]);
  free(labels);
  lpq_array_free(&x);
  lpq_array_free(&y);
  unload(&s);
}
