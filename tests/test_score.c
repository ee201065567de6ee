/* tests/test_score.c: scoring a candidate: the independent PyTorch reference, fp32 identity,
** cached == uncached, threads, coarser formats, bad input. */
#include "engine/engine.h"
#include "worker/worker.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/model_setup.h"

#define FIX "tests/fixtures/"

static double jnum(json_t *o, const char *k) {
  json_t *v = json_object_get(o, k);
  cr_assert(json_is_number(v), "expected.json lacks %s", k);
  return json_number_value(v);
}

Test(score, matches_the_pytorch_reference) {
  setup_t s = load(FIX "score_small.onnx", FIX "score_small_x.npy", 0);
  lpq_error_t err;
  lpq_config_t *c = lpq_config_load(FIX "score_small_config.json", &err);
  cr_assert_not_null(c, "%s", err.msg);
  lpq_numfmt_t w[3], a[3];
  cr_assert_eq(s.nl, 3u);
  cr_assert_eq(lpq_config_bind(c, s.nl, s.names, w, a, &err), 0, "%s", err.msg);
  json_error_t jerr;
  json_t *exp = json_load_file(FIX "score_small_expected.json", 0, &jerr);
  cr_assert_not_null(exp, "%s", jerr.text);
  lpq_score_opts_t o = {.temperature = jnum(exp, "temperature")};
  lpq_scorer_t *sc = lpq_scorer_new(s.g, s.x->data, NULL, &o, &err);
  cr_assert_not_null(sc, "%s", err.msg);
  lpq_score_t r;
  cr_assert_eq(lpq_scorer_eval(sc, w, a, &r, &err), 0, "%s", err.msg);
  cr_assert(fabs(r.l_global - jnum(exp, "l_co_global")) < 1e-5, "global %.9f", r.l_global);
  cr_assert(fabs(r.l_local - jnum(exp, "l_co_local")) < 1e-5, "local %.9f", r.l_local);
  cr_assert(fabs(r.l_co - jnum(exp, "l_co")) < 1e-5, "L_CO %.9f", r.l_co);
  cr_assert(fabs(r.mean_w_bits - jnum(exp, "mean_weight_bits")) < 1e-9);
  cr_assert(fabs(lpq_scorer_self_contrast(sc) - jnum(exp, "fp32_self")) < 1e-5);
  json_decref(exp);
  lpq_scorer_free(&sc);
  lpq_config_free(&c);
  unload(&s);
}

/* identity hooks: the hooked path must compute exactly what the plain path does */
static const float *same_weight(void *u, size_t l, const float *w, size_t n) {
  (void)u, (void)l, (void)n;
  return w;
}
static int same_input(void *u, size_t l, float *x, size_t n) {
  (void)u, (void)l, (void)x, (void)n;
  return 0;
}

Test(score, fp32_candidate_is_the_fp_model_exactly) {
  setup_t s = load(FIX "score_small.onnx", FIX "score_small_x.npy", 0);
  lpq_error_t err;
  lpq_tensor_info_t out;
  lpq_graph_output(s.g, 0, &out);
  float *y0 = malloc(out.count * sizeof *y0), *y1 = malloc(out.count * sizeof *y1);
  lpq_exec_t *x = lpq_exec_new(s.g, &err);
  lpq_hooks_t h = {NULL, same_weight, same_input, NULL, NULL, NULL};
  cr_assert_eq(lpq_exec_run(x, s.x->data, y0, NULL, &err), 0);
  cr_assert_eq(lpq_exec_run(x, s.x->data, y1, &h, &err), 0);
  cr_assert(memcmp(y0, y1, out.count * sizeof *y0) == 0, "hooked pass differs from plain");
  lpq_numfmt_t w[3], a[3];
  uniform(s.nl, "fp32", "fp32", w, a);
  lpq_scorer_t *sc = lpq_scorer_new(s.g, s.x->data, NULL, NULL, &err);
  lpq_score_t r;
  cr_assert_eq(lpq_scorer_eval(sc, w, a, &r, &err), 0, "%s", err.msg);
  cr_assert_eq(r.l_co, lpq_scorer_self_contrast(sc), "%.17g vs %.17g", r.l_co,
               lpq_scorer_self_contrast(sc));
  cr_assert_eq(r.mean_w_bits, 32.0);
  cr_assert_eq(r.l_cr, 1.0);
  lpq_scorer_free(&sc);
  lpq_exec_free(&x);
  free(y0);
  free(y1);
  unload(&s);
}

static int same_score(const lpq_score_t *a, const lpq_score_t *b) {
  return a->l_co == b->l_co && a->l_global == b->l_global && a->l_local == b->l_local &&
         a->mean_w_bits == b->mean_w_bits && a->mean_a_bits == b->mean_a_bits;
}

Test(score, cached_and_uncached_are_bit_identical) {
  setup_t s = load(FIX "score_small.onnx", FIX "score_small_x.npy", 0);
  lpq_error_t err;
  lpq_score_opts_t nc = {.no_cache = 1};
  lpq_scorer_t *cached = lpq_scorer_new(s.g, s.x->data, NULL, NULL, &err);
  lpq_scorer_t *uncached = lpq_scorer_new(s.g, s.x->data, NULL, &nc, &err);
  const char *fams[][2] = {{"lp<6,1,3,auto>", "lp<8,2,2,auto>"}, {"int<4,ch>", "int8"},
                           {"posit8", "fp8_e4m3"}, {"lp<4,0,2,auto>", "afloat<6,3>"}};
  for (size_t k = 0; k < 4; k++) {
    lpq_numfmt_t w[3], a[3];
    uniform(s.nl, fams[k][0], fams[k][1], w, a);
    lpq_score_t r1, r2, r3;
    cr_assert_eq(lpq_scorer_eval(cached, w, a, &r1, &err), 0, "%s", err.msg);
    cr_assert_eq(lpq_scorer_eval(cached, w, a, &r2, &err), 0); /* from the cache */
    cr_assert_eq(lpq_scorer_eval(uncached, w, a, &r3, &err), 0);
    cr_assert(same_score(&r1, &r2), "%s: second cached evaluation differs", fams[k][0]);
    cr_assert(same_score(&r1, &r3), "%s: cached %.17g vs uncached %.17g", fams[k][0], r1.l_co,
              r3.l_co);
  }
  lpq_scorer_free(&cached);
  lpq_scorer_free(&uncached);
  unload(&s);
}

typedef struct job_t {
  lpq_scorer_t *sc;
  lpq_numfmt_t w[3], a[3];
  lpq_score_t r;
  int rc;
} job_t;

static void *eval_thread(void *p) {
  job_t *j = p;
  for (int i = 0; i < 5 && j->rc == 0; i++)
    j->rc = lpq_scorer_eval(j->sc, j->w, j->a, &j->r, NULL);
  return NULL;
}

Test(score, concurrent_evaluations_agree_with_sequential) {
  setup_t s = load(FIX "score_small.onnx", FIX "score_small_x.npy", 0);
  lpq_scorer_t *sc = lpq_scorer_new(s.g, s.x->data, NULL, NULL, NULL);
  cr_assert_not_null(sc);
  const char *wf[4] = {"lp<5,1,2,auto>", "lp<7,1,3,auto>", "int<6,ch>", "posit<6,1>"};
  job_t jobs[4];
  pthread_t th[4];
  for (int t = 0; t < 4; t++) {
    memset(&jobs[t], 0, sizeof jobs[t]);
    jobs[t].sc = sc;
    uniform(s.nl, wf[t], "lp<8,2,2,auto>", jobs[t].w, jobs[t].a);
    pthread_create(&th[t], NULL, eval_thread, &jobs[t]);
  }
  for (int t = 0; t < 4; t++)
    pthread_join(th[t], NULL);
  for (int t = 0; t < 4; t++) {
    cr_assert_eq(jobs[t].rc, 0);
    lpq_score_t seq;
    cr_assert_eq(lpq_scorer_eval(sc, jobs[t].w, jobs[t].a, &seq, NULL), 0);
    cr_assert(same_score(&seq, &jobs[t].r), "thread %d differs", t);
  }
  lpq_scorer_free(&sc);
  unload(&s);
}

Test(score, bad_input_is_an_error) {
  setup_t s = load(FIX "score_small.onnx", FIX "score_small_x.npy", 0);
  lpq_error_t err;
  float *bad = malloc(s.x->count * sizeof *bad);
  memcpy(bad, s.x->data, s.x->count * sizeof *bad);
  bad[5] = NAN;
  cr_assert_null(lpq_scorer_new(s.g, bad, NULL, NULL, &err));
  cr_assert(strstr(err.msg, "NaN") != NULL, "%s", err.msg);
  lpq_scorer_t *sc = lpq_scorer_new(s.g, s.x->data, NULL, NULL, &err);
  lpq_numfmt_t w[3], a[3];
  uniform(s.nl, "int<4,ch>", "fp32", w, a);
  a[1] = w[1]; /* per-channel on activations */
  lpq_score_t r;
  cr_assert_neq(lpq_scorer_eval(sc, w, a, &r, &err), 0);
  cr_assert(strstr(err.msg, "per-channel") != NULL, "%s", err.msg);
  w[0].family = (lpq_family_t)99;
  cr_assert_eq(lpq_scorer_eval(sc, w, a, &r, &err), LPQ_EINVAL);
  lpq_scorer_free(&sc);
  free(bad);
  unload(&s);
}

Test(score, coarser_formats_raise_the_loss_resnet18) {
  coarser_is_worse("models/resnet18.onnx", NULL);
}
Test(score, coarser_formats_raise_the_loss_mobilenetv2) {
  coarser_is_worse("models/mobilenetv2.onnx", NULL);
}
Test(score, coarser_formats_raise_the_loss_vit) { coarser_is_worse("models/vit.onnx", NULL); }
