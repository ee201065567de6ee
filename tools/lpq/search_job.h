/* tools/lpq/search_job.h: `lpq search`'s job: the candidate evaluation (worker/) behind the
** search library's evaluation interface, for a job's settings (common/). */
#ifndef LPQ_TOOL_SEARCH_JOB_H
#define LPQ_TOOL_SEARCH_JOB_H

#include "coordinator/search/search.h"
#include "worker/worker.h"

#include <jansson.h>

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
/* Per-layer sensitivity before the search (job setting sensitivity): each layer alone at the
** widths near the budget (max_weight_bits - 1 .. + 2, within the job's), scored on the first
** ncal calibration samples, into the specs (weight_sens, weight_count) and set->seed_budget. */
int search_job_sensitivity(search_job_t *j, const char *model, const float *calib, size_t ncal,
                           int threads, lpq_search_settings_t *set, double *seconds,
                           lpq_error_t *err);
lpq_evaluator_t search_job_evaluator(search_job_t *j);
/* Scores one genome: the search's result and the candidate's details. */
int search_job_score(search_job_t *j, const lpq_layer_formats_t *genome, lpq_eval_result_t *out,
                     lpq_candidate_result_t *detail, lpq_error_t *err);
/* fn(ctx, i) for i in 0..n-1 on `threads` threads (the caller's among them); the first failure's
** error into err (the others stop taking work). */
int search_par_for(size_t n, int threads, int (*fn)(void *ctx, size_t i, lpq_error_t *err),
                   void *ctx, lpq_error_t *err);
/* The genome with weight widths raised where gain[l] (NULL: the sensitivity pass's fall of
** L_CO) per added weight bit is largest, while the mean weight bits stay <= budget
** (lpq_search_fill_budget). The number of one-bit raises; 0 without gain or room. */
size_t search_fill_budget(const search_job_t *j, const lpq_layer_formats_t *genome, double budget,
                          const double *gain, lpq_layer_formats_t *out);
/* The fill's gains: gain[l] is how much the mean KL divergence of the candidate's output
** distribution from fp32's, over n samples of x, falls when layer l of genome gets one more
** weight bit (NAN where it cannot). A distortion that is zero at fp32 and falls with precision,
** unlike L_CO near fp32. Layers scored on `threads` threads. */
int search_fill_gains(const search_job_t *j, lpq_scorer_t *sc, const lpq_layer_formats_t *genome,
                      const float *x, size_t n, int threads, double *gain, lpq_error_t *err);
/* lpq search --help (search_out.c). */
void search_usage(FILE *out);
/* Monotonic seconds. */
double now_s(void);
/* Top-1 of a genome (NULL: fp32) over n samples of x with their labels. */
int genome_top1(lpq_scorer_t *sc, const lpq_layer_formats_t *genome, size_t nl,
                const lpq_array_t *x, const int64_t *labels, size_t n, double *top1,
                lpq_error_t *err);
/* Seconds a quantized config's pass over all of x is expected to take: one batch (batch
** samples) timed with int8 weights and activations on every layer, times the batches of x.
** fp32's pass is no guide: it runs on the weights packed at load, and a quantized pass packs
** the weights a hook hands it on every batch (Winograd's transform included), several times
** fp32's cost where the kernels are slow (the sanitizer build). */
int member_pass_seconds(lpq_scorer_t *sc, size_t nl, const lpq_array_t *x, const int64_t *labels,
                        size_t batch, double *seconds, lpq_error_t *err);
/* Top-1 of several genomes over one labelled set, one per search_par_for index. */
typedef struct top1_job_t {
  lpq_scorer_t *sc;
  size_t nl, n;
  const lpq_array_t *x;
  const int64_t *labels;
  const lpq_layer_formats_t **genome;
  double **out;
} top1_job_t;
int top1_fn(void *ctx, size_t i, lpq_error_t *err);
/* Re-scoring the front's members (their details), one per search_par_for index. */
typedef struct member_t member_t;
typedef struct detail_job_t {
  search_job_t *job;
  member_t *m;
} detail_job_t;
int detail_fn(void *ctx, size_t i, lpq_error_t *err);
/* A genome's formats as config formats (n = 0: fp32). */
void search_genome_formats(const lpq_layer_formats_t *genome, size_t nl, lpq_numfmt_t *w,
                           lpq_numfmt_t *a);

/* ---- what lpq search reports (tools/lpq/search_out.c) ---- */

struct member_t {
  const lpq_layer_formats_t *genome;
  lpq_eval_result_t result;
  lpq_candidate_result_t detail;
  double top1;     /* on --data/--labels (the test set); -1: not measured */
  double top1_val; /* on --val-data/--val-labels; -1: not measured */
};

/* The feasible non-dominated members of n scored genomes, by increasing L_CO (malloc'd). */
member_t *search_front_of(const lpq_layer_formats_t *const *genomes,
                          const lpq_eval_result_t *results, size_t n, size_t nc, size_t *count,
                          lpq_error_t *err);
/* The hypervolume of the members' (L_CO, L_CR) at ref. */
double search_front_hv(const member_t *m, size_t n, const double ref[2]);
/* A member as JSON: scores, LPA cost, top-1 (test, and validation where measured), config. */
/* What the scorer's caches did over the whole run (prefix cache of local terms, cut cache). */
json_t *search_scorer_json(lpq_scorer_t *sc);
json_t *search_member_json(const member_t *m, size_t nl, const char *const *names);
/* Writes best.json (the chosen config; not when genome is NULL: nothing was chosen) and
** summary.json (how it was chosen, fp32 top-1s, the rank correlation of L_CO and top-1) into
** out. */
int search_write_best(const char *out, const lpq_layer_formats_t *genome, size_t nl,
                      const char *const *names, const json_t *summary, lpq_error_t *err);
/* Writes the --out folder: front.json, config_NN.json, front.svg, history.json, state.json. */
int search_write_out(const char *out, int random, lpq_objective_t objective, json_t *front,
                     const member_t *m, size_t nm, const double *ax, const double *ay,
                     size_t na, lpq_search_t *s, const char *const *names, size_t nl,
                     lpq_error_t *err);

#endif
