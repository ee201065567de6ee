/* coordinator/search/search_internal.h: what the search's files share inside coordinator/search/
** (not a public header: other folders use search.h). Non-static names here start with lpq__. */
#ifndef LPQ_COORDINATOR_SEARCH_INTERNAL_H
#define LPQ_COORDINATOR_SEARCH_INTERNAL_H

#include "coordinator/search/search.h"

/* A block of consecutive layers [start, start + len). */
typedef struct search_block_t {
  size_t start, len;
} search_block_t;

/* A random block of 1..block_max layers holding at least one layer that is not pinned. */
search_block_t lpq__genome_pick_block(const lpq_search_space_t *space, lpq_rng_t *rng,
                                 size_t block_max);
/* child = a outside the block; inside it, each format from a or b with equal chance, then each
** format mutated with probability rate (at least one of the block's, when any can change). */
void lpq__genome_cross_block(const lpq_search_space_t *space, const double *lean, lpq_rng_t *rng,
                        const lpq_layer_formats_t *a, const lpq_layer_formats_t *b,
                        search_block_t block, double rate, lpq_layer_formats_t *child);
/* sibling = parent with the child's block, then mutated in the block as above. */
void lpq__genome_sibling(const lpq_search_space_t *space, const double *lean, lpq_rng_t *rng,
                    const lpq_layer_formats_t *parent, const lpq_layer_formats_t *child,
                    search_block_t block, double rate, lpq_layer_formats_t *sibling);
/* A genome with layer l's weights at bits[l] (clamped to its range) in LP shape `shape` (0:
** lp_weight_shape's, 1: es 0 and no regime cap, 2: es 1 and rs 3), per channel where the space
** allows it (offset 0) else at the sf seed; activations at their widest; pinned layers as
** pinned. */
void lpq__genome_allocated(const lpq_search_space_t *space, const int *bits, int shape,
                           lpq_layer_formats_t *genome);
/* lpq_nsga_rank by comparing every pair (Deb et al.'s fast non-dominated sort, any number of
** objectives): O(n^2) time and domination edges. lpq_nsga_rank uses it for more than two
** objectives or NaN objectives; tests hold the two-objective sort to it. */
int lpq__nsga_rank_pairwise(const double *obj, const double *violation, size_t count,
                            size_t obj_count, size_t *rank, double *crowding, lpq_error_t *err);
/* FNV-1a 64 of bytes, continuing from h (start from SEARCH_FNV_OFFSET). */
#define SEARCH_FNV_OFFSET 0xcbf29ce484222325ull
uint64_t lpq__search_fnv1a(uint64_t h, const void *data, size_t len);
uint64_t lpq__search_fnv1a_int(uint64_t h, int64_t v);

/* The search object (search.h). Records live in the archive, in scoring order; the
** population and the pending batch refer to them by archive index. */
struct lpq_search_t {
  lpq_search_space_t space; /* resolved; space.layers points at `layers` */
  lpq_layer_spec_t *layers;
  double *lean; /* per layer, the chance that a width step goes up; NULL: no sensitivity */
  lpq_search_settings_t set;
  size_t L;
  lpq_rng_t rng;

  size_t count, cap;          /* archive */
  lpq_layer_formats_t *genes; /* cap * L */
  lpq_eval_result_t *results;
  double *obj;  /* (l_co, l_cr) per record; DBL_MAX for a failed one */
  double *viol; /* total violation; INFINITY for a failed one */
  uint64_t *hash;
  size_t *gen_of;
  size_t *table, table_cap; /* open addressing on hash: archive index + 1, 0 is empty */

  size_t *pop, pop_count; /* population, ordered best first */
  size_t *pop_rank;       /* Pareto: rank and crowding of each population member */
  double *pop_crowd;

  int batch_ready; /* the pending generation */
  size_t batch_count, batch_cap;
  lpq_layer_formats_t *batch_genes;
  lpq_eval_result_t *batch_results;
  unsigned char *batch_told, *batch_is_child;
  uint64_t *batch_hash;
  size_t *batch_group; /* the child a sibling belongs to; SIZE_MAX in the initial population */
  size_t *batch_table, batch_table_cap; /* open addressing on hash: batch index + 1 (a scan
                                           of the batch was quadratic: seconds at 100000) */

  lpq_search_progress_t *history;
  size_t history_count, history_cap;

  size_t committed; /* generations applied, the initial population included */
  size_t evaluations, failed;
  double hv_ref[2];
  int hv_ref_set;
  double best_measure; /* for patience: hypervolume (Pareto) or best L_F (scalar) */
  size_t stale;
  int canceled, exhausted;
  double elapsed;   /* seconds up to `mark` */
  double mark;      /* monotonic clock at the last commit, restore or creation */
  double last_gen;  /* seconds the last committed generation took (0: none since creation) */
};

/* A fingerprint of everything that shapes the trajectory: the space and those settings. */
uint64_t lpq__search_fingerprint(const lpq_search_t *s);
/* Appends a scored genome to the archive (and its hash table). */
int lpq__search_archive_add(lpq_search_t *s, const lpq_layer_formats_t *genome,
                       const lpq_eval_result_t *result, size_t generation, lpq_error_t *err);
/* Rank and crowding of the population, for the next generation's tournaments. */
int lpq__search_rank_population(lpq_search_t *s, lpq_error_t *err);
/* A new search without any generation (the shared part of new and restore). */
lpq_search_t *lpq__search_alloc(const lpq_search_space_t *space,
                           const lpq_search_settings_t *settings, lpq_error_t *err);
double lpq__search_now(void);
/* The archive index of genome g (hash h), SIZE_MAX when it was never scored. */
size_t lpq__search_archive_find(const lpq_search_t *s, const lpq_layer_formats_t *g, uint64_t h);
/* Keeps the feasible non-dominated members of idx[0..n) at its front, by increasing L_CO;
** returns their number. */
size_t lpq__search_feasible_front(const lpq_search_t *s, size_t *idx, size_t n);

/* ---- NSGA-II on real-valued problems (SBX, polynomial mutation) ---------------- **
** The textbook algorithm (Deb et al. 2002) on the same core, internal: it is how the tests hold
** the core to the known answers of ZDT1-3, BNH and TNK. */

/* Simulated binary crossover (bounded, Deb and Agrawal 1995) of p1 and p2 into c1 and c2: each
** variable crosses with probability 0.5, spread by distribution index eta. */
void lpq__sbx(lpq_rng_t *rng, const double *p1, const double *p2, double *c1, double *c2,
             const double *lower, const double *upper, size_t var_count, double eta);
/* Bounded polynomial mutation (Deb and Goyal 1996): each variable with probability prob. */
void lpq__polynomial_mutation(lpq_rng_t *rng, double *x, const double *lower,
                             const double *upper, size_t var_count, double eta, double prob);

typedef struct lpq__real_problem_t {
  size_t var_count, obj_count, constraint_count;
  const double *lower, *upper; /* var_count bounds each */
  /* obj[obj_count] to minimise; constraint[constraint_count] with g <= 0 meaning satisfied. */
  void (*evaluate)(void *ctx, const double *x, double *obj, double *constraint);
  void *ctx;
} lpq__real_problem_t;

typedef struct lpq__real_settings_t {
  size_t population;     /* even, >= 4 */
  size_t generations;    /* after the initial population */
  double crossover_prob; /* per pair, e.g. 0.9 */
  double eta_c, eta_m;   /* distribution indices, e.g. 20 and 20 */
  double mutation_prob;  /* per variable; 0 means 1 / var_count */
  uint64_t seed;
} lpq__real_settings_t;

/* The final population. Free with lpq__real_result_clear. */
typedef struct lpq__real_result_t {
  size_t count, var_count, obj_count;
  double *x;         /* count * var_count */
  double *obj;       /* count * obj_count */
  double *violation; /* count */
  size_t evaluations;
} lpq__real_result_t;

int lpq__nsga_real_run(const lpq__real_problem_t *problem, const lpq__real_settings_t *settings,
                      lpq__real_result_t *out, lpq_error_t *err);
void lpq__real_result_clear(lpq__real_result_t *r);

#endif
