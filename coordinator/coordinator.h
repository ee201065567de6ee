/*
** coordinator/coordinator.h: the coordinator (DESIGN sections 2 and 3): the genetic search
** (LPQ), and later the daemon's job scheduler, dispatch, JSON-RPC API and SQLite store.
** Other folders include only this header (and lp/lp.h, common/common.h).
*/
#ifndef LPQ_COORDINATOR_H
#define LPQ_COORDINATOR_H

#include "common/common.h"
#include "lp/lp.h"

#include <stddef.h>
#include <stdint.h>

/* ==== search ==============================================================================
** The LPQ genetic search over layer-wise LP formats (DESIGN section 2), as a library: no I/O,
** no global state. Everything random comes from the job's own seeded PRNG, and results are
** applied in genome order, so a job's history depends only on its space, settings and seed,
** never on how many evaluators ran or in which order their results arrived.
**
** Two ways to drive it:
**   - lpq_search_run(s, evaluator, err): blocking; the evaluator scores whole batches
**     (lpq_thread_evaluator_t does it with threads in this process).
**   - ask / tell / commit, for an event loop that dispatches genomes to remote workers:
**     lpq_search_ask() gives the generation's batch, lpq_search_tell() stores each result as it
**     arrives (any order, repeats are harmless), lpq_search_commit() applies the generation.
** Between generations the state serialises to JSON (lpq_search_save) and resumes
** (lpq_search_restore) to exactly the run that was never interrupted.
*/

/* ---- search: the job's PRNG (xoshiro256**, seeded through splitmix64) ------------------- */

typedef struct lpq_rng_t {
  uint64_t s[4];
} lpq_rng_t;

void lpq_rng_seed(lpq_rng_t *rng, uint64_t seed);
uint64_t lpq_rng_next(lpq_rng_t *rng);
/* Uniform in [0, 1) with 53 random bits. */
double lpq_rng_uniform(lpq_rng_t *rng);
/* Uniform in [0, bound) without modulo bias; 0 when bound is 0. */
uint64_t lpq_rng_below(lpq_rng_t *rng, uint64_t bound);
/* Uniform integer in [lo, hi] (lo <= hi). */
int lpq_rng_range(lpq_rng_t *rng, int lo, int hi);

/* ---- search: the NSGA-II core, on any objective vectors -------------------------------- **
** Objectives are minimised, stored row-major: obj[i * obj_count + j]. violation[i] >= 0 is the
** total constraint violation of solution i (0: feasible); violation may be NULL (all feasible).
** Ties are broken by index, so every result is a function of the input alone. */

/* Constrained domination (Deb 2000): a feasible solution beats an infeasible one; of two
** infeasible ones the smaller violation wins; of two feasible ones Pareto domination decides.
** Returns -1 when a dominates b, 1 when b dominates a, 0 otherwise. */
int lpq_nsga_compare(const double *obj_a, double violation_a, const double *obj_b,
                     double violation_b, size_t obj_count);

/* Fast non-dominated sorting and crowding distance: rank[i] = front of i (0 is the best) and
** crowding[i] = its crowding distance inside its front (INFINITY at a front's extremes).
** Either output may be NULL. LPQ_ENOMEM or LPQ_EINVAL with err set. */
int lpq_nsga_rank(const double *obj, const double *violation, size_t count, size_t obj_count,
                  size_t *rank, double *crowding, lpq_error_t *err);

/* NSGA-II environmental selection ((mu + lambda) survival): chooses `keep` of `count`
** solutions, whole fronts first and the last front by decreasing crowding distance. chosen[]
** receives `keep` distinct indices in increasing order. */
int lpq_nsga_survivors(const double *obj, const double *violation, size_t count,
                       size_t obj_count, size_t keep, size_t *chosen, lpq_error_t *err);

/* Binary tournament on (rank, crowding): two uniform picks, the lower rank wins, then the
** larger crowding distance, then the lower index. count > 0. */
size_t lpq_nsga_tournament(lpq_rng_t *rng, const size_t *rank, const double *crowding,
                           size_t count);

/* The exact area dominated by 2-D points (minimised) and bounded by ref: points that do not
** strictly beat ref in both objectives add nothing. points[2 * i], points[2 * i + 1]. Returns
** a negative value only when memory runs out. */
double lpq_hypervolume_2d(const double *points, size_t count, const double ref[2]);

/* ---- search: NSGA-II on real-valued problems (SBX, polynomial mutation) ---------------- **
** The textbook algorithm (Deb et al. 2002) on the same core; it is how the core is held to the
** known answers of ZDT1-3, BNH and TNK. */

/* Simulated binary crossover (bounded, Deb and Agrawal 1995) of p1 and p2 into c1 and c2: each
** variable crosses with probability 0.5, spread by distribution index eta. */
void lpq_sbx(lpq_rng_t *rng, const double *p1, const double *p2, double *c1, double *c2,
             const double *lower, const double *upper, size_t var_count, double eta);
/* Bounded polynomial mutation (Deb and Goyal 1996): each variable with probability prob. */
void lpq_polynomial_mutation(lpq_rng_t *rng, double *x, const double *lower,
                             const double *upper, size_t var_count, double eta, double prob);

typedef struct lpq_real_problem_t {
  size_t var_count, obj_count, constraint_count;
  const double *lower, *upper; /* var_count bounds each */
  /* obj[obj_count] to minimise; constraint[constraint_count] with g <= 0 meaning satisfied. */
  void (*evaluate)(void *ctx, const double *x, double *obj, double *constraint);
  void *ctx;
} lpq_real_problem_t;

typedef struct lpq_real_settings_t {
  size_t population;     /* even, >= 4 */
  size_t generations;    /* after the initial population */
  double crossover_prob; /* per pair, e.g. 0.9 */
  double eta_c, eta_m;   /* distribution indices, e.g. 20 and 20 */
  double mutation_prob;  /* per variable; 0 means 1 / var_count */
  uint64_t seed;
} lpq_real_settings_t;

/* The final population. Free with lpq_real_result_clear. */
typedef struct lpq_real_result_t {
  size_t count, var_count, obj_count;
  double *x;         /* count * var_count */
  double *obj;       /* count * obj_count */
  double *violation; /* count */
  size_t evaluations;
} lpq_real_result_t;

int lpq_nsga_real_run(const lpq_real_problem_t *problem, const lpq_real_settings_t *settings,
                      lpq_real_result_t *out, lpq_error_t *err);
void lpq_real_result_clear(lpq_real_result_t *r);

/* ---- search: the LP genome -------------------------------------------------------------- */

/* One quantizable layer's formats. A format with n = 0 means "not quantized": the activation
** format of a weight-only search. */
typedef struct lpq_layer_formats_t {
  lp_format_t weight;
  lp_format_t act;
} lpq_layer_formats_t;

/* A genome is layer_count consecutive lpq_layer_formats_t, in the model's layer order. */

/* What the caller knows of one layer. */
typedef struct lpq_layer_spec_t {
  int weight_sf_seed; /* centre of the weights' sf window, from the tensor's statistics */
  int act_sf_seed;    /* the same for the input activations */
  int weight_n_pin;   /* 0: n is searched; else the weights always use n = this (e.g. 8) */
  int act_n_pin;
  int pinned;                  /* 1: the layer always uses `formats`, nothing is searched */
  lpq_layer_formats_t formats; /* used when pinned */
} lpq_layer_spec_t;

/* The space of genomes; start from lpq_search_space_default. */
typedef struct lpq_search_space_t {
  size_t layer_count;
  const lpq_layer_spec_t *layers; /* layer_count entries; copied by lpq_search_new */
  int n_min, n_max;               /* weight bits */
  int act_n_min, act_n_max;       /* activation bits; 0, 0: the weights' range */
  int es_min, es_max;
  int sf_window;                  /* sf in [seed - window, seed + window], within -64..64 */
  int quantize_acts;              /* 0: weight-only, activation formats stay all-zero */
} lpq_search_space_t;

/* Defaults: n 2..8 for weights and activations, es 0..3, sf window 4, weights and
** activations; layer_count and layers are the caller's to set. */
void lpq_search_space_default(lpq_search_space_t *space);
/* Checks a space (ranges, pins, seeds, naming the layer and field that is wrong) and copies it
** into *out with the activation range filled in; out->layers still points at the caller's. */
int lpq_search_space_resolve(const lpq_search_space_t *space, lpq_search_space_t *out,
                             lpq_error_t *err);
/* A uniformly random genome of a resolved space. */
void lpq_genome_random(const lpq_search_space_t *space, lpq_rng_t *rng,
                       lpq_layer_formats_t *genome);
/* 0 when the genome lies in the resolved space; LPQ_EINVAL naming the layer and field. */
int lpq_genome_check(const lpq_search_space_t *space, const lpq_layer_formats_t *genome,
                     lpq_error_t *err);
/* FNV-1a 64 of the genome's canonical little-endian encoding: the same on every machine. */
uint64_t lpq_genome_hash(const lpq_layer_formats_t *genome, size_t layer_count);
/* Mean weight bits, weighted by weight_counts[layer] (NULL: every layer counts once). */
double lpq_genome_weight_bits(const lpq_layer_formats_t *genome, size_t layer_count,
                              const double *weight_counts);

/* ---- search: evaluation ------------------------------------------------------------------ */

#define LPQ_SEARCH_MAX_CONSTRAINTS 4

/* One genome's score. */
typedef struct lpq_eval_result_t {
  int status;  /* 0: scored; a negative LPQ_E*: failed (ranked below every scored genome) */
  double l_co; /* contrastive loss, minimised */
  double l_cr; /* compression: relative bits or an accelerator cost, minimised */
  double constraint[LPQ_SEARCH_MAX_CONSTRAINTS]; /* g <= 0 satisfied, e.g. mean_bits - 4.5 */
} lpq_eval_result_t;

/* The evaluation interface: score `count` genomes (genome i is layer_count entries at
** genomes + i * layer_count) into results[i]. A genome that cannot be scored gets a failed
** status; the return value is for failures of the evaluator itself (the search stops). */
typedef struct lpq_evaluator_t {
  int (*evaluate)(void *self, const lpq_layer_formats_t *genomes, size_t layer_count,
                  size_t count, lpq_eval_result_t *results, lpq_error_t *err);
  void *self;
} lpq_evaluator_t;

/* Scores one genome; a non-zero return becomes the genome's failed status. Called from
** several threads at once: it must be thread-safe and depend on the genome alone. `thread` in
** [0, threads) names the calling thread, so ctx can hold one workspace per thread. */
typedef int (*lpq_score_fn)(void *ctx, size_t thread, const lpq_layer_formats_t *genome,
                            size_t layer_count, lpq_eval_result_t *out);

/* An in-process evaluator: the calling thread and threads - 1 pthreads take the genomes of a
** batch in turn. */
typedef struct lpq_thread_evaluator_t lpq_thread_evaluator_t;
lpq_thread_evaluator_t *lpq_thread_evaluator_new(size_t threads, lpq_score_fn score, void *ctx,
                                                 lpq_error_t *err);
void lpq_thread_evaluator_free(lpq_thread_evaluator_t **e);
/* The interface view of e (valid while e lives). */
lpq_evaluator_t lpq_thread_evaluator_iface(lpq_thread_evaluator_t *e);

/* ---- search: settings, progress, the search object -------------------------------------- */

typedef enum lpq_search_mode_t {
  LPQ_SEARCH_PARETO = 0, /* NSGA-II over (L_CO, L_CR) with constrained domination */
  LPQ_SEARCH_SCALAR = 1, /* the paper's L_F = L_CO * L_CR^lambda, feasible genomes first */
} lpq_search_mode_t;

typedef struct lpq_search_progress_t {
  size_t generation;     /* 0 is the initial population */
  size_t evaluations;    /* genomes scored so far, this generation included */
  size_t new_evaluations;
  size_t failed;         /* failed genomes so far */
  double best_l_co;      /* lowest L_CO of a feasible genome in the population (NAN: none) */
  double best_l_f;       /* lowest L_F of a feasible genome in the population (NAN: none) */
  size_t front_size;     /* feasible non-dominated genomes in the population */
  double hypervolume;    /* of that front, against the job's reference point */
  double elapsed_seconds;
} lpq_search_progress_t;

/* Called after every generation is applied; a non-zero return stops the search (canceled). */
typedef int (*lpq_search_progress_fn)(void *ctx, const lpq_search_progress_t *p);

typedef struct lpq_search_settings_t {
  lpq_search_mode_t mode;
  double lambda;         /* scalar mode exponent of L_CR */
  size_t population;     /* mu */
  size_t offspring;      /* children per generation (each with its siblings); 0: population */
  size_t parents;        /* scalar mode: children's parents come from the best `parents` */
  size_t siblings;       /* diversity-promoting selection: siblings per child (0: off) */
  size_t block_max;      /* longest block of consecutive layers regenerated; 0: half */
  double mutation_rate;  /* per format in the block; at least one format always mutates */
  size_t constraint_count; /* constraint values the evaluator fills, <= 4 */
  double hv_reference[2]; /* reference point; 0,0: 1.1 x the worst of generation 0 */
  uint64_t seed;
  /* stopping (any that is non-zero applies; they do not change the trajectory) */
  size_t max_generations;  /* generations after the initial population */
  size_t max_evaluations;  /* a generation's batch is cut to fit */
  double max_seconds;
  size_t patience;         /* stop after this many generations without improvement */
  lpq_search_progress_fn on_progress;
  void *progress_ctx;
} lpq_search_settings_t;

/* Defaults: Pareto mode, lambda 1, population 40, parents 20, siblings 2, mutation 0.3,
** seed 1, 50 generations. */
void lpq_search_settings_default(lpq_search_settings_t *s);

typedef enum lpq_search_stop_t {
  LPQ_STOP_NONE = 0,
  LPQ_STOP_GENERATIONS,
  LPQ_STOP_EVALUATIONS,
  LPQ_STOP_TIME,
  LPQ_STOP_PATIENCE,
  LPQ_STOP_CANCELED,  /* the progress callback asked */
  LPQ_STOP_EXHAUSTED, /* no unscored genome could be produced */
} lpq_search_stop_t;
const char *lpq_search_stop_name(lpq_search_stop_t why);

/* A scored genome of the job's archive (every genome ever scored, in scoring order). */
typedef struct lpq_search_record_t {
  const lpq_layer_formats_t *genome; /* layer_count entries, owned by the search */
  lpq_eval_result_t result;
  double violation;  /* total constraint violation, 0 when feasible; INFINITY when failed */
  double l_f;        /* L_CO * L_CR^lambda */
  uint64_t hash;
  size_t generation; /* when it was scored */
} lpq_search_record_t;

typedef struct lpq_search_t lpq_search_t;

/* A new search (the space and settings are copied). NULL with err set when they are invalid. */
lpq_search_t *lpq_search_new(const lpq_search_space_t *space,
                             const lpq_search_settings_t *settings, lpq_error_t *err);
void lpq_search_free(lpq_search_t **s);

/* Runs generations until a stopping rule holds; returns 0, or the evaluator's error. */
int lpq_search_run(lpq_search_t *s, lpq_evaluator_t evaluator, lpq_error_t *err);

/* The reason the search stops now (LPQ_STOP_NONE: it would run another generation). */
lpq_search_stop_t lpq_search_should_stop(lpq_search_t *s);

/* The current generation's unscored genomes (*count of them, layer_count entries each, owned
** by the search), made on the first call and returned again until commit. *count may be 0 when
** the space is exhausted. */
int lpq_search_ask(lpq_search_t *s, const lpq_layer_formats_t **genomes, size_t *count,
                   lpq_error_t *err);
/* Stores the result of batch genome `index`. Any order; telling an index twice keeps the last. */
int lpq_search_tell(lpq_search_t *s, size_t index, const lpq_eval_result_t *result,
                    lpq_error_t *err);
/* Applies the generation once every genome is told: archive, selection, progress callback.
** LPQ_ESTATE naming the first missing index otherwise. */
int lpq_search_commit(lpq_search_t *s, lpq_error_t *err);

/* Reading the state. lpq_search_generation: generations applied, the initial population
** included (so 1 + max_generations at the end of a run stopped by max_generations). */
size_t lpq_search_layer_count(const lpq_search_t *s);
size_t lpq_search_generation(const lpq_search_t *s);
size_t lpq_search_evaluations(const lpq_search_t *s);
size_t lpq_search_archive_count(const lpq_search_t *s);
int lpq_search_archive_get(const lpq_search_t *s, size_t index, lpq_search_record_t *out);
/* The population (archive indices), best first in scalar mode, by (rank, crowding) in Pareto. */
size_t lpq_search_population(const lpq_search_t *s, const size_t **archive_indices);
/* The feasible non-dominated genomes of the whole archive, by increasing L_CO. *indices is
** malloc'd (archive indices; the caller frees it). */
int lpq_search_front(const lpq_search_t *s, size_t **indices, size_t *count, lpq_error_t *err);
size_t lpq_search_history(const lpq_search_t *s, const lpq_search_progress_t **history);
/* The scalar fitness of a record under these settings, for callers that sort. */
double lpq_search_l_f(const lpq_search_t *s, const lpq_eval_result_t *r);

/* The whole state as JSON text (version 1), between generations only (LPQ_ESTATE during
** one). *json is malloc'd; the caller frees it. */
int lpq_search_save(const lpq_search_t *s, char **json, lpq_error_t *err);
/* A search continued from saved state. Its next lpq_search_ask gives exactly the batch the
** saved search would have asked for, so results already stored elsewhere can be told again.
** The space and the settings that shape the trajectory must equal the saved job's (checked by
** a fingerprint); stopping rules and the callback may differ. NULL with err set on malformed
** or mismatched state. */
lpq_search_t *lpq_search_restore(const lpq_search_space_t *space,
                                 const lpq_search_settings_t *settings, const char *json,
                                 lpq_error_t *err);

#endif
