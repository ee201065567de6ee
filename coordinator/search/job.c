/* coordinator/search/job.c: a job's settings as the search library's space and settings, and a
** candidate's result fields as the search's objectives - the one mapping that `lpq search` and
** the coordinator daemon share, so both run the same search for the same job. */
#include "coordinator/search/search.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int lpq_search_from_job(const lpq_job_settings_t *js, size_t layer_count, const int *weight_sf,
                        const int *act_sf, lpq_layer_spec_t *specs, lpq_search_space_t *space,
                        lpq_search_settings_t *set, lpq_error_t *err) {
  if (!js || !specs || !space || !set || (layer_count && !weight_sf))
    return lpq_errorf(err, LPQ_EINVAL, "search from job: NULL argument");
  memset(specs, 0, layer_count * sizeof *specs);
  for (size_t i = 0; i < layer_count; i++) {
    specs[i].weight_sf_seed = weight_sf[i];
    specs[i].act_sf_seed = (!js->weight_only && act_sf) ? act_sf[i] : 0;
    if (js->pin_ends && (i == 0 || i + 1 == layer_count)) {
      specs[i].weight_n_pin = 8 > js->n_max ? js->n_max : 8;
      specs[i].act_n_pin = js->weight_only ? 0 : (8 > js->act_n_max ? js->act_n_max : 8);
    }
  }
  lpq_search_space_default(space);
  space->layer_count = layer_count;
  space->layers = specs;
  space->n_min = js->n_min;
  space->n_max = js->n_max;
  space->act_n_min = js->act_n_min;
  space->act_n_max = js->act_n_max;
  space->es_min = js->es_min;
  space->es_max = js->es_max;
  space->sf_window = js->sf_window;
  space->quantize_acts = !js->weight_only;
  space->weight_sf = js->weight_sf;
  lpq_search_settings_default(set);
  set->mode = js->scalar ? LPQ_SEARCH_SCALAR : LPQ_SEARCH_PARETO;
  set->lambda = js->lambda;
  set->population = js->population;
  set->siblings = js->siblings;
  set->seed = js->seed;
  set->max_generations = js->generations;
  set->max_evaluations = js->max_evaluations;
  set->max_seconds = js->max_seconds;
  set->patience = js->patience;
  set->constraint_count = lpq_job_constraint_count(js);
  if (set->parents > set->population)
    set->parents = set->population;
  lpq_search_space_t check;
  return lpq_search_space_resolve(space, &check, err);
}

void lpq_search_result_from_fields(const lpq_job_settings_t *js,
                                   const lpq_layer_formats_t *genome, size_t layer_count,
                                   int status, double l_co, double l_cr, double mean_weight_bits,
                                   double latency_s, lpq_eval_result_t *out) {
  memset(out, 0, sizeof *out);
  out->status = status;
  if (status != 0)
    return;
  int max_act = 0;
  for (size_t i = 0; i < layer_count; i++) {
    int bits = genome[i].act.n == 0 ? 32 : genome[i].act.n;
    max_act = bits > max_act ? bits : max_act;
  }
  out->l_co = l_co;
  out->l_cr = l_cr;
  lpq_job_constraints(js, mean_weight_bits, js->weight_only ? 0 : max_act, latency_s,
                      out->constraint);
}

void lpq_sensitivity_widths(const lpq_job_settings_t *js, int *lo, int *hi) {
  *lo = js->n_min;
  *hi = js->n_max;
  if (js->max_weight_bits > 0) {
    int b = (int)js->max_weight_bits;
    *lo = b - 1 > *lo ? b - 1 : *lo;
    *hi = b + 2 < *hi ? b + 2 : *hi;
    *lo = *lo > *hi ? *hi : *lo;
  }
}

void lpq_search_set_sensitivity(const lpq_job_settings_t *js, size_t layer_count,
                                const double *delta_l_co, int lo, int hi,
                                const size_t *weight_counts, lpq_layer_spec_t *specs,
                                lpq_search_settings_t *set) {
  const size_t widths = (size_t)(hi - lo + 1);
  for (size_t l = 0; l < layer_count; l++) {
    specs[l].weight_count = weight_counts[l];
    for (int n = js->n_min; n <= js->n_max; n++) {
      int c = n < lo ? lo : n > hi ? hi : n;
      double v = delta_l_co[l * widths + (size_t)(c - lo)];
      specs[l].weight_sens[n] = !isfinite(v) || n < lo ? 1e3 : v;
    }
  }
  set->seed_budget = js->max_weight_bits;
}

size_t lpq_search_fill_budget(const lpq_job_settings_t *js, const lpq_layer_spec_t *specs,
                              size_t nl, const lpq_layer_formats_t *genome, double budget,
                              const double *gain, lpq_layer_formats_t *out) {
  memcpy(out, genome, nl * sizeof *out);
  double bits = 0, count = 0;
  for (size_t l = 0; l < nl; l++) {
    const double c = (double)specs[l].weight_count;
    bits += c * (out[l].weight.n ? out[l].weight.n : 32);
    count += c;
  }
  const double limit = budget * count;
  size_t raised = 0;
  for (;;) { /* the most gain per added weight bit, while it fits */
    long best = -1;
    double best_gain = 0;
    for (size_t l = 0; l < nl; l++) {
      const lpq_layer_spec_t *s = &specs[l];
      const int n = out[l].weight.n;
      if (s->pinned || s->weight_n_pin || n == 0 || n >= js->n_max || n >= LP_N_MAX ||
          !s->weight_count || bits + (double)s->weight_count > limit)
        continue;
      /* a measured gain holds for one bit on the genome as given */
      const double d = gain ? (n == genome[l].weight.n ? gain[l] : 0)
                            : s->weight_sens[n] - s->weight_sens[n + 1];
      const double per_bit = d / (double)s->weight_count;
      if (isfinite(per_bit) && per_bit > best_gain) {
        best_gain = per_bit;
        best = (long)l;
      }
    }
    if (best < 0)
      return raised;
    /* one more bit in the same shape: an uncapped regime stays uncapped, es and sf kept */
    lp_format_t *f = &out[best].weight;
    f->rs = f->rs == f->n - 1 ? f->n : f->rs;
    f->n++;
    bits += (double)specs[best].weight_count;
    raised++;
  }
}
