/* coordinator/search/search.c: the search object: settings, the archive of scored genomes with its
** de-duplication table, stopping rules, the blocking run loop and the read accessors. The
** generation step (ask, tell, commit) is in search_step.c, serialisation in search_state.c. */
#define _GNU_SOURCE /* qsort_r */
#include "coordinator/search/search_internal.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void lpq_search_settings_default(lpq_search_settings_t *s) {
  /* A job's defaults are the one source (common/job.c); the rest is the search's own. */
  lpq_job_settings_t js;
  lpq_job_settings_default(&js);
  memset(s, 0, sizeof *s);
  s->mode = js.scalar ? LPQ_SEARCH_SCALAR : LPQ_SEARCH_PARETO;
  s->lambda = js.lambda;
  s->population = js.population;
  s->parents = js.population / 2;
  s->siblings = js.siblings;
  s->mutation_rate = 0.3;
  s->seed_ladders = 1;
  s->seed = js.seed;
  s->max_generations = js.generations;
}

const char *lpq_search_stop_name(lpq_search_stop_t why) {
  switch (why) {
  case LPQ_STOP_NONE: return "running";
  case LPQ_STOP_GENERATIONS: return "generations";
  case LPQ_STOP_EVALUATIONS: return "evaluations";
  case LPQ_STOP_TIME: return "wall time";
  case LPQ_STOP_PATIENCE: return "no improvement";
  case LPQ_STOP_CANCELED: return "canceled";
  case LPQ_STOP_EXHAUSTED: return "search space exhausted";
  }
  return "unknown";
}

double lpq__search_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int check_settings(lpq_search_settings_t *s, size_t layer_count, lpq_error_t *err) {
  if (s->mode != LPQ_SEARCH_PARETO && s->mode != LPQ_SEARCH_SCALAR)
    return lpq_errorf(err, LPQ_EINVAL, "search settings: mode %d is neither pareto nor scalar",
                      (int)s->mode);
  if (s->population < 2 || s->population > 100000)
    return lpq_errorf(err, LPQ_EINVAL, "search settings: population %zu not within 2..100000",
                      s->population);
  if (s->offspring == 0)
    s->offspring = s->population;
  if (s->offspring > 100000 || s->siblings > 64)
    return lpq_errorf(err, LPQ_EINVAL, "search settings: offspring %zu or siblings %zu too "
                      "large", s->offspring, s->siblings);
  if (s->parents == 0 || s->parents > s->population)
    s->parents = s->population;
  if (s->block_max == 0)
    s->block_max = (layer_count + 1) / 2;
  if (s->block_max > layer_count)
    s->block_max = layer_count;
  if (!(s->mutation_rate >= 0.0 && s->mutation_rate <= 1.0))
    return lpq_errorf(err, LPQ_EINVAL, "search settings: mutation rate %g not within 0..1",
                      s->mutation_rate);
  if (!isfinite(s->lambda))
    return lpq_errorf(err, LPQ_EINVAL, "search settings: lambda %g is not finite", s->lambda);
  if (s->constraint_count > LPQ_SEARCH_MAX_CONSTRAINTS)
    return lpq_errorf(err, LPQ_EINVAL, "search settings: %zu constraints, at most %d",
                      s->constraint_count, LPQ_SEARCH_MAX_CONSTRAINTS);
  if (!(s->max_seconds >= 0.0))
    return lpq_errorf(err, LPQ_EINVAL, "search settings: max seconds %g", s->max_seconds);
  return 0;
}

/* Sensitivity's lean: with every free layer's sensitivity given (weight_count and some
** weight_sens), a layer's chance that a width step goes up is 0.3 + 0.4 x the rank of its rise
** of L_CO per weight at the middle width among the free layers (0.5 for ties): sensitive and
** small layers (depthwise convs) lean to more bits. Without it, s->lean stays NULL. */
static int compute_lean(lpq_search_t *s) {
  const lpq_search_space_t *sp = &s->space;
  int mid = (sp->n_min + sp->n_max) / 2, any = 0;
  if (s->set.seed_budget > 0)
    mid = (int)s->set.seed_budget;
  mid = mid < sp->n_min ? sp->n_min : mid > sp->n_max ? sp->n_max : mid;
  size_t free_count = 0;
  for (size_t l = 0; l < s->L; l++) {
    const lpq_layer_spec_t *ls = &s->layers[l];
    if (ls->pinned)
      continue;
    if (ls->weight_count == 0)
      return 0;
    free_count++;
    for (int n = sp->n_min; n <= sp->n_max; n++)
      any |= ls->weight_sens[n] != 0;
  }
  if (!any || free_count == 0)
    return 0;
  if (!(s->lean = malloc(s->L * sizeof *s->lean)))
    return LPQ_ENOMEM;
  for (size_t l = 0; l < s->L; l++) {
    const lpq_layer_spec_t *a = &s->layers[l];
    double da = a->weight_sens[mid] / (double)(a->weight_count ? a->weight_count : 1), below = 0;
    for (size_t k = 0; !a->pinned && k < s->L; k++) {
      const lpq_layer_spec_t *b = &s->layers[k];
      if (b->pinned || k == l)
        continue;
      double db = b->weight_sens[mid] / (double)b->weight_count;
      below += db < da ? 1.0 : db == da ? 0.5 : 0.0;
    }
    s->lean[l] = free_count > 1 ? 0.3 + 0.4 * below / (double)(free_count - 1) : 0.5;
  }
  return 0;
}

lpq_search_t *lpq__search_alloc(const lpq_search_space_t *space,
                           const lpq_search_settings_t *settings, lpq_error_t *err) {
  lpq_search_space_t sp;
  lpq_search_settings_t set = *settings;
  if (lpq_search_space_resolve(space, &sp, err) || check_settings(&set, sp.layer_count, err))
    return NULL;
  lpq_search_t *s = calloc(1, sizeof *s);
  if (!s) {
    lpq_errorf(err, LPQ_ENOMEM, "search: out of memory");
    return NULL;
  }
  s->L = sp.layer_count;
  s->layers = malloc(s->L * sizeof *s->layers);
  s->pop = malloc(set.population * sizeof *s->pop);
  s->pop_rank = malloc(set.population * sizeof *s->pop_rank);
  s->pop_crowd = malloc(set.population * sizeof *s->pop_crowd);
  if (!s->layers || !s->pop || !s->pop_rank || !s->pop_crowd) {
    lpq_search_free(&s);
    lpq_errorf(err, LPQ_ENOMEM, "search: out of memory for %zu layers", sp.layer_count);
    return NULL;
  }
  memcpy(s->layers, sp.layers, s->L * sizeof *s->layers);
  sp.layers = s->layers;
  s->space = sp;
  s->set = set;
  if (compute_lean(s) != 0) {
    lpq_search_free(&s);
    lpq_errorf(err, LPQ_ENOMEM, "search: out of memory for %zu layers", sp.layer_count);
    return NULL;
  }
  lpq_rng_seed(&s->rng, set.seed);
  if (set.hv_reference[0] != 0 || set.hv_reference[1] != 0) {
    s->hv_ref[0] = set.hv_reference[0];
    s->hv_ref[1] = set.hv_reference[1];
    s->hv_ref_set = 1;
  }
  s->best_measure = set.mode == LPQ_SEARCH_SCALAR ? INFINITY : -INFINITY;
  s->mark = lpq__search_now();
  return s;
}

lpq_search_t *lpq_search_new(const lpq_search_space_t *space,
                             const lpq_search_settings_t *settings, lpq_error_t *err) {
  if (!space || !settings) {
    lpq_errorf(err, LPQ_EINVAL, "search: missing space or settings");
    return NULL;
  }
  return lpq__search_alloc(space, settings, err);
}

void lpq_search_free(lpq_search_t **sp) {
  if (!sp || !*sp)
    return;
  lpq_search_t *s = *sp;
  free(s->layers);
  free(s->lean);
  free(s->genes);
  free(s->results);
  free(s->obj);
  free(s->viol);
  free(s->hash);
  free(s->gen_of);
  free(s->table);
  free(s->pop);
  free(s->pop_rank);
  free(s->pop_crowd);
  free(s->batch_genes);
  free(s->batch_results);
  free(s->batch_told);
  free(s->batch_is_child);
  free(s->batch_hash);
  free(s->batch_group);
  free(s->batch_table);
  free(s->history);
  free(s);
  *sp = NULL;
}

uint64_t lpq__search_fingerprint(const lpq_search_t *s) {
  const lpq_search_space_t *sp = &s->space;
  const lpq_search_settings_t *t = &s->set;
  uint64_t h = SEARCH_FNV_OFFSET;
  int64_t ints[] = {(int64_t)sp->layer_count, sp->n_min, sp->n_max, sp->act_n_min,
                    sp->act_n_max, sp->es_min, sp->es_max, sp->sf_window, sp->quantize_acts,
                    t->mode, (int64_t)t->population, (int64_t)t->offspring,
                    (int64_t)t->parents, (int64_t)t->siblings, (int64_t)t->block_max,
                    (int64_t)t->constraint_count, (int64_t)t->seed, t->seed_ladders};
  for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
    h = lpq__search_fnv1a_int(h, ints[i]);
  double reals[] = {t->lambda, t->mutation_rate, t->hv_reference[0], t->hv_reference[1]};
  for (size_t i = 0; i < sizeof reals / sizeof reals[0]; i++) {
    int64_t bits;
    memcpy(&bits, &reals[i], sizeof bits);
    h = lpq__search_fnv1a_int(h, bits);
  }
  if (sp->weight_sf != LPQ_SF_TENSOR) /* per tensor: the fingerprint of states saved before */
    h = lpq__search_fnv1a_int(h, 0x7366000 + sp->weight_sf);
  if (t->seed_budget > 0) { /* sensitivity seeding: the budget and the matrix shape the run */
    int64_t bits;
    memcpy(&bits, &t->seed_budget, sizeof bits);
    h = lpq__search_fnv1a_int(h, bits);
    for (size_t l = 0; l < s->L; l++)
      h = lpq__search_fnv1a(h, s->layers[l].weight_sens, sizeof s->layers[l].weight_sens);
  }
  for (size_t l = 0; s->lean && l < s->L; l++)
    h = lpq__search_fnv1a_int(h, (int64_t)s->layers[l].weight_count);
  for (size_t l = 0; l < s->L; l++) {
    const lpq_layer_spec_t *ls = &s->layers[l];
    int64_t li[] = {ls->weight_sf_seed, ls->act_sf_seed, ls->weight_n_pin, ls->act_n_pin,
                    ls->pinned};
    for (size_t i = 0; i < sizeof li / sizeof li[0]; i++)
      h = lpq__search_fnv1a_int(h, li[i]);
    if (ls->pinned)
      h = lpq__search_fnv1a_int(h, (int64_t)lpq_genome_hash(&ls->formats, 1));
  }
  return h;
}

/* ---- the archive and its de-duplication table --------------------------------------------- */

static int table_grow(lpq_search_t *s, lpq_error_t *err) {
  size_t cap = s->table_cap ? 2 * s->table_cap : 1024;
  size_t *t = calloc(cap, sizeof *t);
  if (!t)
    return lpq_errorf(err, LPQ_ENOMEM, "search: out of memory for %zu table slots", cap);
  for (size_t i = 0; i < s->count; i++) {
    size_t slot = (size_t)s->hash[i] & (cap - 1);
    while (t[slot])
      slot = (slot + 1) & (cap - 1);
    t[slot] = i + 1;
  }
  free(s->table);
  s->table = t;
  s->table_cap = cap;
  return 0;
}

/* The archive index of genome g with hash h, or SIZE_MAX when it was never scored. */
size_t lpq__search_archive_find(const lpq_search_t *s, const lpq_layer_formats_t *g, uint64_t h) {
  if (!s->table_cap)
    return SIZE_MAX;
  size_t slot = (size_t)h & (s->table_cap - 1);
  for (; s->table[slot]; slot = (slot + 1) & (s->table_cap - 1)) {
    size_t i = s->table[slot] - 1;
    if (s->hash[i] == h && memcmp(s->genes + i * s->L, g, s->L * sizeof *g) == 0)
      return i;
  }
  return SIZE_MAX;
}

static void *grow(void *p, size_t n, size_t size, int *failed) {
  void *q = *failed ? NULL : realloc(p, n * size);
  if (!q) {
    *failed = 1;
    return p;
  }
  return q;
}

int lpq__search_archive_add(lpq_search_t *s, const lpq_layer_formats_t *genome,
                       const lpq_eval_result_t *result, size_t generation, lpq_error_t *err) {
  if (s->count == s->cap) {
    size_t cap = s->cap ? 2 * s->cap : 256;
    if (cap > SIZE_MAX / (s->L * sizeof *s->genes))
      return lpq_errorf(err, LPQ_ERANGE, "search: archive of %zu genomes too large", cap);
    int failed = 0;
    s->genes = grow(s->genes, cap * s->L, sizeof *s->genes, &failed);
    s->results = grow(s->results, cap, sizeof *s->results, &failed);
    s->obj = grow(s->obj, 2 * cap, sizeof *s->obj, &failed);
    s->viol = grow(s->viol, cap, sizeof *s->viol, &failed);
    s->hash = grow(s->hash, cap, sizeof *s->hash, &failed);
    s->gen_of = grow(s->gen_of, cap, sizeof *s->gen_of, &failed);
    if (failed)
      return lpq_errorf(err, LPQ_ENOMEM, "search: out of memory for %zu genomes", cap);
    s->cap = cap;
  }
  if (2 * (s->count + 1) > s->table_cap) {
    int rc = table_grow(s, err);
    if (rc)
      return rc;
  }
  size_t i = s->count;
  memcpy(s->genes + i * s->L, genome, s->L * sizeof *genome);
  lpq_eval_result_t r = *result;
  double v = 0.0;
  for (size_t j = 0; j < s->set.constraint_count; j++)
    v += r.constraint[j] > 0 ? r.constraint[j] : 0.0;
  /* A NaN score is a failure, never a silent value that poisons every comparison. */
  if (r.status == 0 && (isnan(r.l_co) || isnan(r.l_cr) || isnan(v)))
    r.status = LPQ_ENAN;
  s->results[i] = r;
  if (r.status != 0) {
    s->obj[2 * i] = s->obj[2 * i + 1] = DBL_MAX;
    s->viol[i] = INFINITY;
    s->failed++;
  } else {
    s->obj[2 * i] = r.l_co;
    s->obj[2 * i + 1] = r.l_cr;
    s->viol[i] = v;
  }
  s->hash[i] = lpq_genome_hash(genome, s->L);
  s->gen_of[i] = generation;
  size_t slot = (size_t)s->hash[i] & (s->table_cap - 1);
  while (s->table[slot])
    slot = (slot + 1) & (s->table_cap - 1);
  s->table[slot] = i + 1;
  s->count++;
  return 0;
}

/* ---- stopping and the run loop ------------------------------------------------------------- */

lpq_search_stop_t lpq_search_should_stop(lpq_search_t *s) {
  const lpq_search_settings_t *t = &s->set;
  if (s->canceled)
    return LPQ_STOP_CANCELED;
  if (s->exhausted)
    return LPQ_STOP_EXHAUSTED;
  if (t->max_generations && s->committed >= 1 + t->max_generations)
    return LPQ_STOP_GENERATIONS;
  if (t->max_evaluations && s->evaluations >= t->max_evaluations)
    return LPQ_STOP_EVALUATIONS;
  /* the time limit is a deadline: no generation starts that the last one's length says would end
  ** past it (a generation of a slow model is minutes; stopping only once past it overran) */
  if (t->max_seconds > 0 &&
      s->elapsed + (lpq__search_now() - s->mark) + s->last_gen >= t->max_seconds)
    return LPQ_STOP_TIME;
  if (t->patience && s->committed > 0 && s->stale >= t->patience)
    return LPQ_STOP_PATIENCE;
  return LPQ_STOP_NONE;
}

int lpq_search_run(lpq_search_t *s, lpq_evaluator_t evaluator, lpq_error_t *err) {
  if (!s || !evaluator.evaluate)
    return lpq_errorf(err, LPQ_EINVAL, "search run: missing search or evaluator");
  const lpq_search_settings_t *t = &s->set;
  if (!t->max_generations && !t->max_evaluations && !(t->max_seconds > 0) && !t->patience)
    return lpq_errorf(err, LPQ_EINVAL, "search run: no stopping rule is set");
  lpq_eval_result_t *results = NULL;
  size_t results_cap = 0;
  int rc = 0;
  while (lpq_search_should_stop(s) == LPQ_STOP_NONE) {
    const lpq_layer_formats_t *genomes;
    size_t count;
    if ((rc = lpq_search_ask(s, &genomes, &count, err)))
      break;
    if (count > results_cap) {
      lpq_eval_result_t *r = realloc(results, count * sizeof *r);
      if (!r) {
        rc = lpq_errorf(err, LPQ_ENOMEM, "search run: out of memory for %zu results", count);
        break;
      }
      results = r;
      results_cap = count;
    }
    if (count) {
      memset(results, 0, count * sizeof *results);
      if ((rc = evaluator.evaluate(evaluator.self, genomes, s->L, count, results, err)))
        break;
    }
    for (size_t i = 0; i < count && rc == 0; i++)
      rc = lpq_search_tell(s, i, &results[i], err);
    if (rc || (rc = lpq_search_commit(s, err)))
      break;
  }
  free(results);
  return rc;
}

/* ---- reading the state ------------------------------------------------------------------- */

size_t lpq_search_layer_count(const lpq_search_t *s) { return s->L; }
size_t lpq_search_generation(const lpq_search_t *s) { return s->committed; }
size_t lpq_search_evaluations(const lpq_search_t *s) { return s->evaluations; }
size_t lpq_search_archive_count(const lpq_search_t *s) { return s->count; }

double lpq_search_l_f(const lpq_search_t *s, const lpq_eval_result_t *r) {
  if (r->status != 0)
    return INFINITY;
  return r->l_co * pow(r->l_cr, s->set.lambda);
}

int lpq_search_archive_get(const lpq_search_t *s, size_t index, lpq_search_record_t *out) {
  if (index >= s->count)
    return LPQ_ERANGE;
  out->genome = s->genes + index * s->L;
  out->result = s->results[index];
  out->violation = s->viol[index];
  out->l_f = lpq_search_l_f(s, &s->results[index]);
  out->hash = s->hash[index];
  out->generation = s->gen_of[index];
  return 0;
}

size_t lpq_search_population(const lpq_search_t *s, const size_t **archive_indices) {
  *archive_indices = s->pop;
  return s->pop_count;
}

size_t lpq_search_history(const lpq_search_t *s, const lpq_search_progress_t **history) {
  *history = s->history;
  return s->history_count;
}

static int cmp_objectives(const void *pa, const void *pb, void *ctx) {
  const double *obj = ctx;
  size_t a = *(const size_t *)pa, b = *(const size_t *)pb;
  for (int k = 0; k < 2; k++)
    if (obj[2 * a + k] != obj[2 * b + k])
      return obj[2 * a + k] < obj[2 * b + k] ? -1 : 1;
  return (a > b) - (a < b);
}

/* The feasible non-dominated members of idx[0..n) (reordered), by increasing L_CO; returns how
** many were kept at the front of idx. Shared with the progress report of search_step.c. */
size_t lpq__search_feasible_front(const lpq_search_t *s, size_t *idx, size_t n) {
  size_t m = 0;
  for (size_t i = 0; i < n; i++)
    if (s->viol[idx[i]] == 0)
      idx[m++] = idx[i];
  qsort_r(idx, m, sizeof *idx, cmp_objectives, s->obj);
  size_t kept = 0;
  double best_cr = INFINITY;
  for (size_t i = 0; i < m; i++)
    if (s->obj[2 * idx[i] + 1] < best_cr) {
      best_cr = s->obj[2 * idx[i] + 1];
      idx[kept++] = idx[i];
    }
  return kept;
}

int lpq_search_front(const lpq_search_t *s, size_t **indices, size_t *count, lpq_error_t *err) {
  size_t *idx = malloc((s->count ? s->count : 1) * sizeof *idx);
  if (!idx)
    return lpq_errorf(err, LPQ_ENOMEM, "search front: out of memory for %zu genomes", s->count);
  for (size_t i = 0; i < s->count; i++)
    idx[i] = i;
  *count = lpq__search_feasible_front(s, idx, s->count);
  *indices = idx;
  return 0;
}
