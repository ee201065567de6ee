/* tests/test_score_local.c: the local terms' modes (lpq_local_mode_t): names round-trip, exact
** is DESIGN's loss bit for bit (recomputed here from the layers' outputs with lpq_infonce), the
** estimates reduce the rows, equal the self-contrast on an fp32 candidate and keep the order of
** coarser formats, and the FP side is reduced once. */
#include "engine/engine.h"
#include "worker/worker.h"
#include "worker/worker_internal.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tests/model_setup.h"

#define FIX "tests/fixtures/"

TestSuite(score_local, .timeout = 600);

static lpq_scorer_t *scorer(const setup_t *s, lpq_local_mode_t m, size_t dim) {
  lpq_error_t err;
  lpq_score_opts_t o = {.local = m, .local_dim = dim, .no_prefix = 1, .no_cuts = 1};
  lpq_scorer_t *sc = lpq_scorer_new(s->g, s->x->data, NULL, &o, &err);
  cr_assert_not_null(sc, "%s", err.msg);
  return sc;
}

Test(score_local, mode_names_round_trip_and_bad_ones_are_refused) {
  for (int m = LPQ_LOCAL_EXACT; m <= LPQ_LOCAL_POOLED; m++) {
    const char *name = lpq_local_mode_name((lpq_local_mode_t)m);
    cr_assert_not_null(name);
    lpq_local_mode_t back = (lpq_local_mode_t)-1;
    cr_assert_eq(lpq_local_mode_parse(name, &back, NULL), 0, "%s", name);
    cr_assert_eq((int)back, m, "%s", name);
  }
  lpq_error_t err;
  lpq_local_mode_t m;
  cr_assert_eq(lpq_local_mode_parse("approx", &m, &err), LPQ_EINVAL);
  cr_assert(strstr(err.msg, "projected") != NULL, "%s", err.msg);
  cr_assert_null(lpq_local_mode_name((lpq_local_mode_t)3));
  setup_t s = load(FIX "score_small.onnx", FIX "score_small_x.npy", 0);
  lpq_score_opts_t o = {.local = (lpq_local_mode_t)3};
  cr_assert_null(lpq_scorer_new(s.g, s.x->data, NULL, &o, &err));
  cr_assert_eq(err.code, LPQ_EINVAL);
  unload(&s);
}

/* ---- exact: DESIGN's loss, recomputed from the outputs the hooks see ---- */

typedef struct capture_t {
  const setup_t *s;
  float **out;               /* per layer: [batch, dim] */
  size_t *count;
  lp_quantizer_t **aq;       /* per layer: the activations' quantizer, or NULL */
} capture_t;

static int cap_input(void *u, size_t l, float *x, size_t n) {
  capture_t *c = u;
  return c->aq && c->aq[l] ? lp_quantize_f32(c->aq[l], x, x, n, NULL) : 0;
}

static int cap_output(void *u, size_t l, const float *y, size_t n) {
  capture_t *c = u;
  c->out[l] = malloc(n * sizeof *y);
  memcpy(c->out[l], y, n * sizeof *y);
  c->count[l] = n;
  return 0;
}

static void capture(const setup_t *s, lp_quantizer_t **aq, float **out, size_t *count,
                    float *logits) {
  lpq_error_t err;
  capture_t c = {s, out, count, aq};
  lpq_hooks_t h = {&c, NULL, cap_input, cap_output, NULL, NULL};
  lpq_exec_t *x = lpq_exec_new(s->g, &err);
  cr_assert_eq(lpq_exec_run(x, s->x->data, logits, &h, &err), 0, "%s", err.msg);
  lpq_exec_free(&x);
}

/* fp32 weights, LP activations (resolved by the scorer): L_CO from lpq_infonce on the captured
** outputs equals the exact scorer's, bit for bit; projected: the captured outputs folded with
** the scorer's signs (the plain C fold), normalised, then InfoNCE, equal the projected scorer's
** bit for bit, though it reduces a layer's output while it quantizes the next layer's input
** (feeds_next: asserted to happen on ResNet-18) */
static void matches_design(const char *model, const char *data, int batch, lpq_local_mode_t m) {
  setup_t s = load(model, data, batch);
  lpq_error_t err;
  size_t nl = s.nl, B = (size_t)s.x->shape[0];
  lpq_numfmt_t *w = calloc(nl, sizeof *w), *a = calloc(nl, sizeof *a);
  lpq_numfmt_t *rw = calloc(nl, sizeof *rw), *ra = calloc(nl, sizeof *ra);
  uniform(nl, "fp32", "lp<6,1,3,auto>", w, a);
  lpq_scorer_t *sc = scorer(&s, m, m == LPQ_LOCAL_EXACT ? 7 : 0); /* 7: nothing to exact */
  lpq_score_t r;
  cr_assert_eq(lpq_scorer_eval(sc, w, a, &r, &err), 0, "%s", err.msg);
  cr_assert_eq(lpq_scorer_resolve(sc, w, a, rw, ra, &err), 0, "%s", err.msg);
  lp_quantizer_t **aq = calloc(nl, sizeof *aq);
  for (size_t l = 0; l < nl; l++)
    cr_assert_not_null(aq[l] = lpq_numfmt_quantizer(&ra[l], &err), "%s", err.msg);
  lpq_tensor_info_t oi;
  lpq_graph_output(s.g, 0, &oi);
  float *lf = malloc(oi.count * sizeof *lf), *lq = malloc(oi.count * sizeof *lq);
  float **fo = calloc(nl, sizeof *fo), **qo = calloc(nl, sizeof *qo);
  size_t *fc = calloc(nl, sizeof *fc), *qc = calloc(nl, sizeof *qc);
  capture(&s, NULL, fo, fc, lf);
  capture(&s, aq, qo, qc, lq);
  double sum = 0, global, local;
  size_t shared = 0;
  for (size_t l = 0; l < nl; l++) {
    cr_assert_eq(fc[l], qc[l]);
    const lpq__layer_ref_t *r = &sc->ref[l];
    shared += r->feeds_next;
    if (m == LPQ_LOCAL_EXACT) {
      cr_assert_eq(lpq_infonce(qo[l], fo[l], B, fc[l] / B, 0.5, &local, &err), 0, "%s", err.msg);
    } else {
      size_t k = r->sign ? r->rdim : r->dim;
      float *qf = malloc(B * k * sizeof *qf), *ff = malloc(B * k * sizeof *ff);
      float *sim = malloc(B * B * sizeof *sim);
      if (r->sign) {
        lpq__fold_rows(qo[l], r->sign, B, r->dim, k, qf, 0);
        lpq__fold_rows(fo[l], r->sign, B, r->dim, k, ff, 0);
      } else {
        memcpy(qf, qo[l], B * k * sizeof *qf);
        memcpy(ff, fo[l], B * k * sizeof *ff);
      }
      cr_assert_eq(lpq_normalize_rows(qf, B, k, &err), 0, "%s", err.msg);
      cr_assert_eq(lpq_normalize_rows(ff, B, k, &err), 0, "%s", err.msg);
      local = lpq_infonce_normalized(qf, ff, B, k, 0.5, sim);
      free(qf), free(ff), free(sim);
    }
    sum += local;
  }
  if (m != LPQ_LOCAL_EXACT && strstr(model, "resnet18"))
    cr_assert_gt(shared, 0, "no layer's rows were reduced in the next layer's quantizing pass");
  cr_assert_eq(lpq_infonce(lq, lf, B, oi.count / B, 0.5, &global, &err), 0, "%s", err.msg);
  cr_assert_eq(r.l_global, global, "%.17g vs %.17g", r.l_global, global);
  cr_assert_eq(r.l_local, sum / (double)nl, "%.17g vs %.17g", r.l_local, sum / (double)nl);
  cr_assert_eq(r.l_co, global + sum / (double)nl);
  lpq_scorer_stats_t st;
  lpq_scorer_stats(sc, &st);
  size_t dims = 0;
  for (size_t l = 0; l < nl; l++)
    dims += fc[l] / B;
  if (m == LPQ_LOCAL_EXACT)
    cr_assert_eq(st.local_dims, dims, "exact keeps whole rows: %zu vs %zu", st.local_dims, dims);
  for (size_t l = 0; l < nl; l++) {
    free(fo[l]);
    free(qo[l]);
    lp_quantizer_free(&aq[l]);
  }
  free(fo), free(qo), free(fc), free(qc), free(aq), free(lf), free(lq);
  free(w), free(a), free(rw), free(ra);
  lpq_scorer_free(&sc);
  unload(&s);
}

Test(score_local, exact_is_designs_loss_bit_for_bit_small) {
  matches_design(FIX "score_small.onnx", FIX "score_small_x.npy", 0, LPQ_LOCAL_EXACT);
}
Test(score_local, exact_is_designs_loss_bit_for_bit_resnet18) {
  matches_design("models/resnet18.onnx", "models/fashion_calib_256.npy", 16, LPQ_LOCAL_EXACT);
}
Test(score_local, projected_is_the_fold_of_the_outputs_bit_for_bit) {
  matches_design(FIX "score_small.onnx", FIX "score_small_x.npy", 0, LPQ_LOCAL_PROJECTED);
  matches_design("models/resnet18.onnx", "models/fashion_calib_256.npy", 16,
                 LPQ_LOCAL_PROJECTED);
  matches_design("models/mobilenetv2.onnx", "models/fashion_calib_256.npy", 8,
                 LPQ_LOCAL_PROJECTED);
}

/* ---- the estimates ---- */

static void estimate_properties(lpq_local_mode_t m, size_t dim) {
  setup_t s = load(FIX "score_small.onnx", FIX "score_small_x.npy", 0);
  lpq_error_t err;
  lpq_scorer_t *ex = scorer(&s, LPQ_LOCAL_EXACT, 0), *es = scorer(&s, m, dim);
  lpq_scorer_stats_t se, st;
  lpq_scorer_stats(ex, &se);
  lpq_scorer_stats(es, &st);
  cr_assert_lt(st.local_dims, se.local_dims, "%s reduces no row", lpq_local_mode_name(m));
  cr_assert_eq(st.local, m);
  /* Q == P: the fp32 candidate's reduced rows are the FP side's, L_CO the self-contrast */
  lpq_numfmt_t w[3], a[3];
  uniform(s.nl, "fp32", "fp32", w, a);
  lpq_score_t r, q;
  cr_assert_eq(lpq_scorer_eval(es, w, a, &r, &err), 0, "%s", err.msg);
  cr_assert(isfinite(r.l_co));
  cr_assert_eq(r.l_co - lpq_scorer_self_contrast(es), 0.0, "%.17g vs %.17g", r.l_co,
               lpq_scorer_self_contrast(es));
  /* a quantized candidate: finite and off the self-contrast (not necessarily above it: InfoNCE
  ** may fall below), its global term the exact scorer's, its local terms not */
  uniform(s.nl, "lp<4,1,2,auto>", "lp<4,1,2,auto>", w, a);
  cr_assert_eq(lpq_scorer_eval(es, w, a, &q, &err), 0, "%s", err.msg);
  cr_assert(isfinite(q.l_co) && isfinite(q.l_local));
  cr_assert_neq(q.l_co, r.l_co);
  lpq_score_t qe;
  cr_assert_eq(lpq_scorer_eval(ex, w, a, &qe, &err), 0, "%s", err.msg);
  cr_assert_eq(q.l_global, qe.l_global);
  cr_assert_neq(q.l_local, qe.l_local);
  lpq_scorer_free(&ex);
  lpq_scorer_free(&es);
  unload(&s);
}

Test(score_local, projected_is_finite_and_the_self_contrast_at_fp32) {
  estimate_properties(LPQ_LOCAL_PROJECTED, 64);
}
Test(score_local, pooled_is_finite_and_the_self_contrast_at_fp32) {
  estimate_properties(LPQ_LOCAL_POOLED, 4);
}

/* a projection no shorter than every row keeps them whole: the exact scores, bit for bit */
Test(score_local, a_projection_as_long_as_the_rows_is_exact) {
  setup_t s = load(FIX "score_small.onnx", FIX "score_small_x.npy", 0);
  lpq_error_t err;
  lpq_scorer_t *ex = scorer(&s, LPQ_LOCAL_EXACT, 0), *pr = scorer(&s, LPQ_LOCAL_PROJECTED, 1152);
  lpq_numfmt_t w[3], a[3];
  uniform(s.nl, "lp<5,1,2,auto>", "lp<6,1,3,auto>", w, a);
  lpq_score_t r1, r2;
  cr_assert_eq(lpq_scorer_eval(ex, w, a, &r1, &err), 0, "%s", err.msg);
  cr_assert_eq(lpq_scorer_eval(pr, w, a, &r2, &err), 0, "%s", err.msg);
  cr_assert_eq(r1.l_co, r2.l_co, "%.17g vs %.17g", r1.l_co, r2.l_co);
  lpq_scorer_free(&ex);
  lpq_scorer_free(&pr);
  unload(&s);
}

/* the FP side's rows are reduced once per layer, at creation; each evaluation reduces only the
** candidate's (one per layer without the prefix cache and cuts) */
Test(score_local, the_fp_side_is_reduced_once) {
  setup_t s = load("models/resnet18.onnx", "models/fashion_calib_256.npy", 16);
  lpq_error_t err;
  lpq_scorer_t *sc = scorer(&s, LPQ_LOCAL_PROJECTED, 0);
  lpq_scorer_stats_t st;
  lpq_scorer_stats(sc, &st);
  cr_assert_eq(st.local_rows, s.nl);
  lpq_numfmt_t *w = calloc(s.nl, sizeof *w), *a = calloc(s.nl, sizeof *a);
  const char *fmts[] = {"lp<8,1,3,auto>", "lp<5,1,2,auto>", "lp<4,1,2,auto>"};
  for (int k = 0; k < 3; k++) {
    uniform(s.nl, fmts[k], "lp<8,2,2,auto>", w, a);
    lpq_score_t r;
    cr_assert_eq(lpq_scorer_eval(sc, w, a, &r, &err), 0, "%s", err.msg);
  }
  lpq_scorer_stats(sc, &st);
  cr_assert_eq(st.local_rows, 4 * s.nl, "%llu reductions for %zu layers and 3 candidates",
               (unsigned long long)st.local_rows, s.nl);
  free(w);
  free(a);
  lpq_scorer_free(&sc);
  unload(&s);
}

Test(score_local, projected_orders_coarser_formats_on_the_bundled_models) {
  const lpq_score_opts_t o = {.local = LPQ_LOCAL_PROJECTED, .no_prefix = 1, .no_cuts = 1};
  coarser_is_worse("models/resnet18.onnx", &o);
  coarser_is_worse("models/mobilenetv2.onnx", &o);
  coarser_is_worse("models/vit.onnx", &o);
}

/* The fold's AVX2 and AVX-512 kernels give the plain C loop's bits: rows shorter than the
** projection, one chunk and a partial last one, lengths off the vector width, other k. */
Test(score_local, the_fold_is_the_same_on_every_instruction_set) {
  const size_t dims[] = {1, 7, 255, 256, 257, 1000, 4099}, ks[] = {256, 17, 64};
  const size_t rows = 3;
  for (size_t a = 0; a < sizeof dims / sizeof *dims; a++)
    for (size_t b = 0; b < sizeof ks / sizeof *ks; b++) {
      size_t dim = dims[a], k = ks[b];
      float *y = malloc(rows * dim * sizeof *y), *sign = malloc(dim * sizeof *sign);
      float *ref = malloc(rows * k * sizeof *ref), *got = malloc(rows * k * sizeof *got);
      for (size_t d = 0; d < dim; d++)
        sign[d] = (d * 2654435761u) >> 7 & 1 ? 1.0f : -1.0f;
      for (size_t i = 0; i < rows * dim; i++)
        y[i] = (float)sin(0.37 * (double)i) * (float)(1 + i % 13); /* sums that round */
      cr_assert_eq(lpq__fold_rows(y, sign, rows, dim, k, ref, 0), 0);
      for (size_t j = 0; j < k && j < dim; j++) /* the first row, by the definition */ {
        double want = 0;
        for (size_t d = j; d < dim; d += k)
          want += (double)sign[d] * y[d];
        cr_assert(fabs(ref[j] - want) <= 1e-4 * (1 + fabs(want)), "dim %zu k %zu j %zu", dim,
                  k, j);
      }
      for (int level = 1; level <= 2; level++) {
        memset(got, 0xff, rows * k * sizeof *got);
        int ran = lpq__fold_rows(y, sign, rows, dim, k, got, level);
        cr_assert_leq(ran, level);
        cr_assert(memcmp(got, ref, rows * k * sizeof *got) == 0,
                  "level %d (ran %d), dim %zu, k %zu: not the plain loop's bits", level, ran,
                  dim, k);
      }
      free(y), free(sign), free(ref), free(got);
    }
}
