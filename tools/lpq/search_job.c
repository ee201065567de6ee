/* tools/lpq/search_job.c: a search on this machine: the scoring core and the cost model behind
** the search library's evaluation interface, per-layer sf seeds from the model's statistics,
** and the objectives and constraints of a job. */
#include "accel_sim/accel_sim.h"
#include "coordinator/coordinator.h"
#include "tools/lpq/search_job.h"
#include "worker/worker.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void search_genome_formats(const lpq_layer_formats_t *genome, size_t nl, lpq_numfmt_t *w,
                           lpq_numfmt_t *a) {
  for (size_t i = 0; i < nl; i++) {
    const lp_format_t *f[2] = {&genome[i].weight, &genome[i].act};
    lpq_numfmt_t *out[2] = {&w[i], &a[i]};
    for (int k = 0; k < 2; k++) {
      memset(out[k], 0, sizeof *out[k]);
      if (f[k]->n == 0) {
        lpq_numfmt_parse("fp32", out[k], NULL);
      } else {
        out[k]->family = LPQ_FAM_LP;
        out[k]->bits = f[k]->n;
        out[k]->p[0] = f[k]->n;
        out[k]->p[1] = f[k]->es;
        out[k]->p[2] = f[k]->rs;
        out[k]->p[3] = f[k]->sf;
        out[k]->resolved = 1;
        out[k]->scale = 1.0;
      }
    }
  }
}

/* The LPA cost of per-layer formats. */
static int lpa_cost(const search_job_t *j, const lpq_numfmt_t *w, const lpq_numfmt_t *a,
                    accel_cost_t *c, lpq_error_t *err) {
  accel_layer_formats_t *f = calloc(j->nl ? j->nl : 1, sizeof *f);
  if (!f)
    return lpq_errorf(err, LPQ_ENOMEM, "out of memory");
  for (size_t i = 0; i < j->nl; i++) {
    accel_format_from_numfmt(&w[i], &f[i].weight);
    accel_format_from_numfmt(&a[i], &f[i].act);
  }
  const accel_t *lpa = &j->arch->accels[0];
  accel_formats_on(lpa, f, j->nl);
  int rc = accel_cost_network(lpa, j->net, f, NULL, c, err);
  free(f);
  return rc;
}

static double cost_of(const search_job_t *j, const accel_cost_t *c) {
  switch (j->objective) {
  case SEARCH_OBJ_LATENCY: return c->latency_s / j->ref_cost.latency_s;
  case SEARCH_OBJ_ENERGY: return c->energy_pj / j->ref_cost.energy_pj;
  case SEARCH_OBJ_EDP: return c->edp_js / j->ref_cost.edp_js;
  default: return 0;
  }
}

int search_job_score(search_job_t *j, const lpq_layer_formats_t *genome, lpq_eval_result_t *out,
                     search_detail_t *detail, lpq_error_t *err) {
  lpq_numfmt_t *w = calloc(2 * (j->nl ? j->nl : 1), sizeof *w);
  if (!w)
    return lpq_errorf(err, LPQ_ENOMEM, "out of memory");
  lpq_numfmt_t *a = w + j->nl;
  search_genome_formats(genome, j->nl, w, a);
  lpq_score_t sc;
  accel_cost_t cost = {0};
  int rc = lpq_scorer_eval(j->scorer, w, a, &sc, err);
  if (rc == 0 && j->arch)
    rc = lpa_cost(j, w, a, &cost, err);
  int max_act = 0;
  for (size_t i = 0; i < j->nl; i++)
    max_act = a[i].bits > max_act ? a[i].bits : max_act;
  free(w);
  memset(out, 0, sizeof *out);
  if (rc != 0) {
    out->status = rc;
    return rc;
  }
  out->l_co = sc.l_co;
  out->l_cr = j->objective == SEARCH_OBJ_BITS ? sc.l_cr : cost_of(j, &cost);
  size_t k = 0;
  if (j->max_weight_bits > 0)
    out->constraint[k++] = sc.mean_w_bits - j->max_weight_bits;
  if (j->max_act_bits > 0)
    out->constraint[k++] = (double)max_act - j->max_act_bits;
  if (j->max_latency_ratio > 0 && j->arch)
    out->constraint[k++] = cost.latency_s / j->ref_cost.latency_s - j->max_latency_ratio;
  if (detail) {
    detail->score = sc;
    detail->cost = cost;
  }
  return 0;
}

static int score_fn(void *ctx, size_t thread, const lpq_layer_formats_t *genome,
                    size_t layer_count, lpq_eval_result_t *out) {
  (void)thread, (void)layer_count;
  search_job_t *j = ctx;
  lpq_error_t err = {0};
  int rc = search_job_score(j, genome, out, NULL, &err);
  if (rc != 0) {
    __atomic_fetch_add(&j->failures, 1, __ATOMIC_RELAXED);
    out->status = rc;
  }
  return rc;
}

size_t search_job_constraints(const search_job_t *j) {
  return (size_t)(j->max_weight_bits > 0) + (size_t)(j->max_act_bits > 0) +
         (size_t)(j->max_latency_ratio > 0 && j->arch);
}

int search_job_init(search_job_t *j, const lpq_graph_t *g, lpq_scorer_t *scorer, int threads,
                    lpq_error_t *err) {
  j->g = g;
  j->scorer = scorer;
  j->nl = lpq_graph_num_layers(g);
  if (j->objective != SEARCH_OBJ_BITS || j->max_latency_ratio > 0) {
    if (!(j->arch = accel_arch_default(err)) ||
        !(j->net = accel_network_from_graph(g, "model", err)))
      return err ? err->code : LPQ_ENOMEM;
    /* costs are relative to the same model with every layer at lp<8,1,3,0> */
    lpq_numfmt_t *w = calloc(j->nl ? j->nl : 1, sizeof *w);
    if (!w)
      return lpq_errorf(err, LPQ_ENOMEM, "out of memory");
    for (size_t i = 0; i < j->nl; i++)
      lpq_numfmt_parse("lp<8,1,3,0>", &w[i], NULL);
    int rc = lpa_cost(j, w, w, &j->ref_cost, err);
    free(w);
    if (rc != 0)
      return rc;
  }
  j->evaluator = lpq_thread_evaluator_new((size_t)threads, score_fn, j, err);
  return j->evaluator ? 0 : (err ? err->code : LPQ_ENOMEM);
}

void search_job_destroy(search_job_t *j) {
  lpq_thread_evaluator_free(&j->evaluator);
  accel_network_free(&j->net);
  accel_arch_free(&j->arch);
  free(j->specs);
  j->specs = NULL;
}

int search_job_seeds(search_job_t *j, const lpq_search_space_t *space, int pin_ends,
                     lpq_error_t *err) {
  j->specs = calloc(j->nl ? j->nl : 1, sizeof *j->specs);
  lpq_numfmt_t *w = calloc(4 * (j->nl ? j->nl : 1), sizeof *w);
  if (!j->specs || !w) {
    free(w);
    return lpq_errorf(err, LPQ_ENOMEM, "out of memory");
  }
  lpq_numfmt_t *a = w + j->nl, *rw = a + j->nl, *ra = rw + j->nl;
  /* the seed: the sf a mid-width LP format would take on the layer's tensors */
  for (size_t i = 0; i < j->nl; i++) {
    lpq_numfmt_parse("lp<6,1,3,auto>", &w[i], NULL);
    lpq_numfmt_parse(space->quantize_acts ? "lp<6,1,3,auto>" : "fp32", &a[i], NULL);
  }
  int rc = lpq_scorer_resolve(j->scorer, w, a, rw, ra, err);
  for (size_t i = 0; rc == 0 && i < j->nl; i++) {
    lpq_layer_spec_t *s = &j->specs[i];
    s->weight_sf_seed = rw[i].p[3];
    s->act_sf_seed = space->quantize_acts ? ra[i].p[3] : 0;
    if (pin_ends && (i == 0 || i + 1 == j->nl)) {
      s->weight_n_pin = 8;
      s->act_n_pin = space->quantize_acts ? 8 : 0;
    }
  }
  free(w);
  return rc;
}

lpq_evaluator_t search_job_evaluator(search_job_t *j) {
  return lpq_thread_evaluator_iface(j->evaluator);
}
