/* tests/model_setup.h: a model loaded for the first samples of a data file, and checks shared
** by the scorer's suites (test_score, test_score_prefix, test_score_local). Include after
** Criterion. */
#ifndef LPQ_TESTS_MODEL_SETUP_H
#define LPQ_TESTS_MODEL_SETUP_H

#include "engine/engine.h"
#include "worker/worker.h"

#include <math.h>

#include <stdlib.h>

typedef struct setup_t {
  lpq_graph_t *g;
  lpq_array_t *x;
  size_t nl;
  const char **names; /* the layers' names */
} setup_t;

/* model built for `batch` samples of data (batch <= 0 or beyond the file: all of them) */
static inline setup_t load(const char *model, const char *data, int batch) {
  setup_t s = {0};
  lpq_error_t err;
  cr_assert_eq(lpq_load_npy(data, &s.x, &err), 0, "%s", err.msg);
  if (batch > 0 && batch < s.x->shape[0])
    s.x->shape[0] = batch; /* the first samples only */
  s.g = lpq_graph_load(model, (int)s.x->shape[0], &err);
  cr_assert_not_null(s.g, "%s", err.msg);
  s.nl = lpq_graph_num_layers(s.g);
  s.names = calloc(s.nl, sizeof *s.names);
  cr_assert_not_null(s.names);
  for (size_t i = 0; i < s.nl; i++)
    s.names[i] = lpq_graph_layer(s.g, i)->name;
  return s;
}

static inline void unload(setup_t *s) {
  lpq_graph_free(&s->g);
  lpq_array_free(&s->x);
  free(s->names);
}

/* every layer's weight format wf and activation format af */
static inline void uniform(size_t n, const char *wf, const char *af, lpq_numfmt_t *w,
                           lpq_numfmt_t *a) {
  for (size_t i = 0; i < n; i++) {
    cr_assert_eq(lpq_numfmt_parse(wf, &w[i], NULL), 0, "%s", wf);
    cr_assert_eq(lpq_numfmt_parse(af, &a[i], NULL), 0, "%s", af);
  }
}

/* For a fixed family, fewer bits give a higher L_CO on the bundled models (a scorer with opts;
** NULL: the defaults). Under valgrind (make check-valgrind) the first 24 samples: 64 take a
** suite past 20 minutes there; 24 still order the four formats on all three models. Not against
** the fp32 self-contrast: InfoNCE of a quantized output against the FP one can fall below the FP
** output's contrast with itself. */
static inline void coarser_is_worse(const char *model, const lpq_score_opts_t *opts) {
  setup_t s = load(model, "models/fashion_calib_256.npy", getenv("LPQ_VALGRIND") ? 24 : 64);
  lpq_error_t err;
  lpq_scorer_t *sc = lpq_scorer_new(s.g, s.x->data, NULL, opts, &err);
  cr_assert_not_null(sc, "%s", err.msg);
  const char *mode = lpq_local_mode_name(opts ? opts->local : LPQ_LOCAL_EXACT);
  const char *fmts[] = {"lp<8,1,3,auto>", "lp<6,1,3,auto>", "lp<4,1,2,auto>", "lp<3,0,2,auto>"};
  double prev = -INFINITY;
  lpq_numfmt_t *w = calloc(s.nl, sizeof *w), *a = calloc(s.nl, sizeof *a);
  for (size_t k = 0; k < 4; k++) {
    uniform(s.nl, fmts[k], "lp<8,2,2,auto>", w, a);
    lpq_score_t r;
    cr_assert_eq(lpq_scorer_eval(sc, w, a, &r, &err), 0, "%s", err.msg);
    cr_assert(r.l_co > prev, "%s %s: %s gives L_CO %.6f, not above %.6f", model, mode, fmts[k],
              r.l_co, prev);
    prev = r.l_co;
  }
  free(w);
  free(a);
  lpq_scorer_free(&sc);
  unload(&s);
}

#endif
