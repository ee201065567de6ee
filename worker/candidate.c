/* worker/candidate.c: one candidate's full evaluation, as a worker or `lpq search` runs it: the
** score (contrastive loss, bits) and the LPA cost, with L_CR for the job's objective. */
#include "accel_sim/accel_sim.h"
#include "worker/worker.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct lpq_candidate_ctx_t {
  lpq_scorer_t *scorer;
  size_t nl;
  accel_arch_t *arch;
  accel_network_t *net;
  accel_cost_t ref; /* every layer at lp<8,1,3,0> */
};

static int lpa_cost(const lpq_candidate_ctx_t *c, const lpq_numfmt_t *w, const lpq_numfmt_t *a,
                    accel_cost_t *cost, lpq_error_t *err) {
  accel_layer_formats_t *f = calloc(c->nl ? c->nl : 1, sizeof *f);
  if (!f)
    return lpq_errorf(err, LPQ_ENOMEM, "out of memory");
  for (size_t i = 0; i < c->nl; i++) {
    accel_format_from_numfmt(&w[i], &f[i].weight);
    accel_format_from_numfmt(&a[i], &f[i].act);
  }
  const accel_t *lpa = &c->arch->accels[0];
  accel_formats_on(lpa, f, c->nl);
  int rc = accel_cost_network(lpa, c->net, f, NULL, cost, err);
  free(f);
  return rc;
}

lpq_candidate_ctx_t *lpq_candidate_ctx_new(const lpq_graph_t *g, lpq_scorer_t *scorer,
                                           lpq_error_t *err) {
  lpq_candidate_ctx_t *c = calloc(1, sizeof *c);
  if (!c) {
    lpq_errorf(err, LPQ_ENOMEM, "out of memory");
    return NULL;
  }
  c->scorer = scorer;
  c->nl = lpq_graph_num_layers(g);
  lpq_numfmt_t *w = calloc(c->nl ? c->nl : 1, sizeof *w);
  if (!w || !(c->arch = accel_arch_default(err)) ||
      !(c->net = accel_network_from_graph(g, "model", err))) {
    if (!w)
      lpq_errorf(err, LPQ_ENOMEM, "out of memory");
    free(w);
    lpq_candidate_ctx_free(&c);
    return NULL;
  }
  for (size_t i = 0; i < c->nl; i++)
    lpq_numfmt_parse("lp<8,1,3,0>", &w[i], NULL);
  int rc = lpa_cost(c, w, w, &c->ref, err);
  free(w);
  if (rc != 0)
    lpq_candidate_ctx_free(&c);
  return c;
}

void lpq_candidate_ctx_free(lpq_candidate_ctx_t **cp) {
  if (!cp || !*cp)
    return;
  accel_network_free(&(*cp)->net);
  accel_arch_free(&(*cp)->arch);
  free(*cp);
  *cp = NULL;
}

int lpq_candidate_eval(lpq_candidate_ctx_t *c, const lpq_numfmt_t *w, const lpq_numfmt_t *a,
                       lpq_objective_t objective, lpq_candidate_result_t *out,
                       lpq_error_t *err) {
  memset(out, 0, sizeof *out);
  int rc = lpq_scorer_eval(c->scorer, w, a, &out->score, err);
  accel_cost_t cost = {0};
  if (rc == 0)
    rc = lpa_cost(c, w, a, &cost, err);
  if (rc != 0)
    return rc;
  for (size_t i = 0; i < c->nl; i++)
    out->max_act_bits = a[i].bits > out->max_act_bits ? a[i].bits : out->max_act_bits;
  out->latency_s = cost.latency_s;
  out->energy_pj = cost.energy_pj;
  out->edp_js = cost.edp_js;
  switch (objective) {
  case LPQ_OBJ_LATENCY: out->l_cr = cost.latency_s / c->ref.latency_s; break;
  case LPQ_OBJ_ENERGY: out->l_cr = cost.energy_pj / c->ref.energy_pj; break;
  case LPQ_OBJ_EDP: out->l_cr = cost.edp_js / c->ref.edp_js; break;
  default: out->l_cr = out->score.l_cr; break;
  }
  return 0;
}
