/* tools/lpq/search_job.h: `lpq search`'s job: scorer + cost model behind the search library. */
#ifndef LPQ_TOOL_SEARCH_JOB_H
#define LPQ_TOOL_SEARCH_JOB_H

#include "accel_sim/accel_sim.h"
#include "coordinator/coordinator.h"
#include "worker/worker.h"

typedef enum search_objective_t {
  SEARCH_OBJ_BITS = 0, /* L_CR = mean weight bits / 32 */
  SEARCH_OBJ_LATENCY,  /* L_CR = LPA latency / latency with every layer at lp<8,1,3,0> */
  SEARCH_OBJ_ENERGY,
  SEARCH_OBJ_EDP,
} search_objective_t;

typedef struct search_job_t {
  /* settings, set by the caller before search_job_init */
  search_objective_t objective;
  double max_weight_bits;   /* constraint: mean weight bits <= this (0: none) */
  double max_act_bits;      /* constraint: every activation format <= this many bits (0: none) */
  double max_latency_ratio; /* constraint: latency / 8-bit latency <= this (0: none) */
  /* state */
  const lpq_graph_t *g;
  lpq_scorer_t *scorer;
  size_t nl;
  accel_arch_t *arch;
  accel_network_t *net;
  accel_cost_t ref_cost;
  lpq_layer_spec_t *specs;
  lpq_thread_evaluator_t *evaluator;
  size_t failures;
} search_job_t;

/* What one genome scored, beyond the search's objectives. */
typedef struct search_detail_t {
  lpq_score_t score;
  accel_cost_t cost;
} search_detail_t;

int search_job_init(search_job_t *j, const lpq_graph_t *g, lpq_scorer_t *scorer, int threads,
                    lpq_error_t *err);
void search_job_destroy(search_job_t *j);
/* Per-layer specs (sf seeds from statistics; first and last layer pinned to 8 bits when
** pin_ends) into j->specs. */
int search_job_seeds(search_job_t *j, const lpq_search_space_t *space, int pin_ends,
                     lpq_error_t *err);
size_t search_job_constraints(const search_job_t *j);
lpq_evaluator_t search_job_evaluator(search_job_t *j);
/* Scores one genome (objectives, constraints, details). */
int search_job_score(search_job_t *j, const lpq_layer_formats_t *genome, lpq_eval_result_t *out,
                     search_detail_t *detail, lpq_error_t *err);
/* A genome's formats as config formats (n = 0: fp32). */
void search_genome_formats(const lpq_layer_formats_t *genome, size_t nl, lpq_numfmt_t *w,
                           lpq_numfmt_t *a);

#endif
