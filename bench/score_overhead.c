/* bench/score_overhead.c: the cost of scoring a candidate against a plain FP forward pass of
** the same calibration batch (issue 4: at most 1.3x, weights cached).
** Usage: build/bench/score_overhead MODEL.onnx CALIB.npy [reps] [threads] */
#include "bench/bench_verdict.h"
#include "engine/engine.h"
#include "worker/worker.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return 1e3 * (double)ts.tv_sec + 1e-6 * (double)ts.tv_nsec;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  lpq_blas_select_kernels(argv); /* as lpq does */
  if (argc == 2 || (argc > 1 && argv[1][0] == '-')) {
    fprintf(stderr, "usage: score_overhead [MODEL.onnx CALIB.npy [reps] [threads]]\n"
                    "  (default: models/resnet18.onnx models/fashion_calib_256.npy, as make bench "
                    "runs it)\n");
    return 2;
  }
  if (argc < 3) { /* make bench runs every bench without arguments */
    static char *defaults[] = {NULL, "models/resnet18.onnx", "models/fashion_calib_256.npy", NULL};
    defaults[0] = argv[0];
    argv = defaults;
    argc = 3;
  }
  int reps = argc > 3 ? atoi(argv[3]) : 7, threads = argc > 4 ? atoi(argv[4]) : 1;
  if (reps < 1 || reps > 100 || threads < 1 || threads > 64) {
    fprintf(stderr, "score_overhead: reps 1..100, threads 1..64\n");
    return 2;
  }
  openblas_set_num_threads(threads);
  lpq_error_t err;
  lpq_array_t *x = NULL;
  if (lpq_load_npy(argv[2], &x, &err) != 0 || x->dtype != LPQ_DT_F32) {
    fprintf(stderr, "score_overhead: %s\n", x ? "calibration data must be float32" : err.msg);
    return 1;
  }
  lpq_graph_t *g = lpq_graph_load(argv[1], (int)x->shape[0], &err);
  if (!g) {
    fprintf(stderr, "score_overhead: %s\n", err.msg);
    return 1;
  }
  lpq_exec_t *ex = lpq_exec_new(g, &err);
  lpq_tensor_info_t out;
  lpq_graph_output(g, 0, &out);
  float *logits = malloc(out.count * sizeof *logits);
  size_t nl = lpq_graph_num_layers(g);
  lpq_numfmt_t *fp = calloc(nl, sizeof *fp), *w = calloc(nl, sizeof *w), *a = calloc(nl, sizeof *a);
  lpq_numfmt_t *cw = calloc(nl, sizeof *cw);
  for (size_t i = 0; i < nl; i++) {
    lpq_numfmt_parse("fp32", &fp[i], NULL);
    lpq_numfmt_parse(i % 2 ? "lp<4,1,2,auto>" : "lp<6,1,3,auto>", &w[i], NULL);
    lpq_numfmt_parse("lp<8,2,3,auto>", &a[i], NULL);
    /* the child's second half: other weight formats (the search's block regeneration) */
    lpq_numfmt_parse(i < nl / 2 ? (i % 2 ? "lp<4,1,2,auto>" : "lp<6,1,3,auto>")
                                : (i % 2 ? "lp<5,1,2,auto>" : "lp<3,0,2,auto>"), &cw[i], NULL);
  }
  /* 0: fp32 and 1: LP candidates that share nothing with one scored before (no prefix cache:
  ** every local term computed; the weights cached and the state saved at the cuts, as in a
  ** search); 2: an LP child sharing its first half's formats with its scored parent (the prefix
  ** and cut caches on: it resumes at the latest cut in its first half); 3: the global term
  ** only */
  /* 4: as 1 with the local terms projected (lpq search's default, --local-terms projected) */
  enum { K = 5 };
  const char *names[K] = {"fp32 candidate", "LP candidate", "LP child, half shared",
                          "LP, global term only", "LP candidate, projected"};
  double t_fp[100], t_sc[K][100];
  lpq_score_opts_t o_cold = {.no_prefix = 1}, o_warm = {0}, o_glob = {.no_local = 1};
  lpq_score_opts_t o_proj = {.no_prefix = 1, .local = LPQ_LOCAL_PROJECTED};
  lpq_scorer_t *s = lpq_scorer_new(g, x->data, NULL, &o_cold, &err);
  lpq_scorer_t *sp = s ? lpq_scorer_new(g, x->data, NULL, &o_warm, &err) : NULL;
  lpq_scorer_t *s2 = sp ? lpq_scorer_new(g, x->data, NULL, &o_glob, &err) : NULL;
  lpq_scorer_t *s4 = s2 ? lpq_scorer_new(g, x->data, NULL, &o_proj, &err) : NULL;
  if (!s || !sp || !s2 || !s4 || !ex) {
    fprintf(stderr, "score_overhead: %s\n", err.msg);
    return 1;
  }
  lpq_score_t sc;
  lpq_scorer_eval(s, w, a, &sc, &err); /* warm the weight caches */
  lpq_scorer_eval(s, cw, a, &sc, &err);
  lpq_scorer_eval(sp, cw, a, &sc, &err);
  lpq_scorer_eval(s2, w, a, &sc, &err);
  lpq_scorer_eval(s4, w, a, &sc, &err);
  /* A search fills its cut cache within its first few dozen candidates and then replaces
  ** entries (a new state refills an evicted one's buffer); the timed candidates see that
  ** steady state, not the first ones' fresh pages (on this VM a page the guest never touched
  ** costs the host a fault too): warm-up candidates, new first-layer formats that none of the
  ** timed ones has, until every scorer that saves states has replaced one. */
  lpq_scorer_t *warm[4] = {s, sp, s2, s4};
  for (int i = 0; i < 4; i++)
    for (int k = 1; k <= 64; k++) {
      lpq_scorer_stats_t st;
      lpq_scorer_stats(warm[i], &st);
      if (st.cut_reuses || !st.ncuts)
        break;
      char text[64];
      snprintf(text, sizeof text, "lp<8,2,3,auto%+d>", -k);
      lpq_numfmt_parse(text, &a[0], NULL);
      if (lpq_scorer_eval(warm[i], i == 1 ? cw : w, a, &sc, &err) != 0) {
        fprintf(stderr, "score_overhead: %s\n", err.msg);
        return 1;
      }
    }
  for (int r = 0; r < reps; r++) {
    double t0 = now_ms();
    lpq_exec_run(ex, x->data, logits, NULL, &err);
    t_fp[r] = now_ms() - t0;
    /* a parent no child has seen: the first layer's activations at a new sf offset */
    char text[64];
    snprintf(text, sizeof text, "lp<8,2,3,auto%+d>", r + 1);
    lpq_numfmt_parse(text, &a[0], NULL);
    if (lpq_scorer_eval(sp, w, a, &sc, &err) != 0) {
      fprintf(stderr, "score_overhead: %s\n", err.msg);
      return 1;
    }
    for (int k = 0; k < K; k++) {
      lpq_scorer_t *use = k == 4 ? s4 : k == 3 ? s2 : k == 2 ? sp : s;
      t0 = now_ms();
      if (lpq_scorer_eval(use, k == 0 ? fp : k == 2 ? cw : w, k == 0 ? fp : a, &sc, &err) != 0) {
        fprintf(stderr, "score_overhead: %s\n", err.msg);
        return 1;
      }
      t_sc[k][r] = now_ms() - t0;
    }
  }
  qsort(t_fp, (size_t)reps, sizeof(double), cmp);
  printf("score_overhead: %s, batch %lld, %zu layers, %d threads, median of %d\n", argv[1],
         (long long)x->shape[0], nl, threads, reps);
  printf("%-24s %10.1f ms\n", "FP forward pass", t_fp[reps / 2]);
  for (int k = 0; k < K; k++) {
    qsort(t_sc[k], (size_t)reps, sizeof(double), cmp);
    printf("%-24s %10.1f ms  %.2fx FP\n", names[k], t_sc[k][reps / 2], t_sc[k][reps / 2] / t_fp[reps / 2]);
  }
  bench_verdict("score_overhead", "an LP candidate's score (local + global) / FP pass",
                t_sc[1][reps / 2] / t_fp[reps / 2], "<=", 1.3, "x");
  bench_verdict("score_overhead", "the same, local terms projected (lpq search's default)",
                t_sc[4][reps / 2] / t_fp[reps / 2], "<=", 1.3, "x");
  lpq_scorer_free(&sp);
  lpq_scorer_free(&s);
  lpq_scorer_free(&s2);
  lpq_scorer_free(&s4);
  lpq_exec_free(&ex);
  lpq_graph_free(&g);
  lpq_array_free(&x);
  free(logits);
  free(fp);
  free(w);
  free(a);
  free(cw);
  return 0;
}
