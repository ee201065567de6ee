/* tools/lpq/search_job.h: `lpq search`'s job: the candidate evaluation (worker/) behind the
** search library's evaluation interface, for a job's settings (common/). */
#ifndef LPQ_TOOL_SEARCH_JOB_H
#define LPQ_TOOL_SEARCH_JOB_H

#include "coordinator/search/search.h"
#include "worker/worker.h"

typedef struct search_job_t {
  lpq_job_settings_t js;
  const lpq_graph_t *g;
  size_t nl;
  lpq_candidate_ctx_t *cand;
  lpq_layer_spec_t *specs;
  lpq_thread_evaluator_t *evaluator;
} search_job_t;

/* Sets up the evaluation of j->js on graph g with scorer (sf seeds over calib, the search's
** space and settings into *space and *set, a thread evaluator of `threads`). */
int search_job_init(search_job_t *j, const lpq_graph_t *g, lpq_scorer_t *scorer,
                    const float *calib, int threads, lpq_search_space_t *space,
                    lpq_search_settings_t *set, lpq_error_t *err);
void search_job_destroy(search_job_t *j);
lpq_evaluator_t search_job_evaluator(search_job_t *j);
/* Scores one genome: the search's result and the candidate's details. */
int search_job_score(search_job_t *j, const lpq_layer_formats_t *genome, lpq_eval_result_t *out,
                     lpq_candidate_result_t *detail, lpq_error_t *err);
/* A genome's formats as config formats (n = 0: fp32). */
void search_genome_formats(const lpq_layer_formats_t *genome, size_t nl, lpq_numfmt_t *w,
                           lpq_numfmt_t *a);

#endif
