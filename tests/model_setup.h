/* tests/model_setup.h: a model loaded for the first samples of a data file, shared by the
** scorer's suites (test_score, test_score_prefix, test_score_local). Include after Criterion. */
#ifndef LPQ_TESTS_MODEL_SETUP_H
#define LPQ_TESTS_MODEL_SETUP_H

#include "engine/engine.h"

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

#endif
