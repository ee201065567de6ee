/* coordinator/search/state.c: the search state as JSON (version 1), written between
** generations and read back into a search that continues exactly as the uninterrupted one:
** the PRNG state, the archive (every scored genome and its result, in scoring order), the
** population, the history and the patience counters. Reals are written with 17 significant
** digits (jansson's default), so they read back bit for bit; non-finite ones as strings. */
#include "coordinator/search/search_internal.h"

#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STATE_VERSION 1

static json_t *real_json(double x) {
  if (isnan(x))
    return json_string("nan");
  if (isinf(x))
    return json_string(x > 0 ? "inf" : "-inf");
  return json_real(x);
}

static json_t *hex64_json(uint64_t v) {
  char buf[24];
  snprintf(buf, sizeof buf, "%016" PRIx64, v);
  return json_string(buf);
}

static json_t *genome_json(const lpq_layer_formats_t *g, size_t L) {
  json_t *a = json_array();
  for (size_t l = 0; a && l < L; l++) {
    const lp_format_t *w = &g[l].weight, *x = &g[l].act;
    json_t *layer = json_pack("[iiiiiiii]", w->n, w->es, w->rs, w->sf, x->n, x->es, x->rs, x->sf);
    if (layer && g[l].weight_per_channel) /* a ninth integer: the weights' per-channel flag */
      json_array_append_new(layer, json_integer(1));
    json_array_append_new(a, layer);
  }
  return a;
}

static json_t *record_json(const lpq_search_t *s, size_t i) {
  const lpq_eval_result_t *r = &s->results[i];
  json_t *c = json_array();
  for (size_t j = 0; c && j < s->set.constraint_count; j++)
    json_array_append_new(c, real_json(r->constraint[j]));
  return json_pack("{s:o, s:I, s:i, s:o, s:o, s:o}", "genome",
                   genome_json(s->genes + i * s->L, s->L), "generation",
                   (json_int_t)s->gen_of[i], "status", r->status, "l_co", real_json(r->l_co),
                   "l_cr", real_json(r->l_cr), "constraints", c);
}

static json_t *progress_json(const lpq_search_progress_t *p) {
  return json_pack("{s:I, s:I, s:I, s:I, s:o, s:o, s:I, s:o, s:o}", "generation",
                   (json_int_t)p->generation, "evaluations", (json_int_t)p->evaluations,
                   "new_evaluations", (json_int_t)p->new_evaluations, "failed",
                   (json_int_t)p->failed, "best_l_co", real_json(p->best_l_co), "best_l_f",
                   real_json(p->best_l_f), "front_size", (json_int_t)p->front_size,
                   "hypervolume", real_json(p->hypervolume), "elapsed_seconds",
                   real_json(p->elapsed_seconds));
}

int lpq_search_save(const lpq_search_t *s, char **json, lpq_error_t *err) {
  if (!s || !json)
    return lpq_errorf(err, LPQ_EINVAL, "search save: missing argument");
  if (s->batch_ready)
    return lpq_errorf(err, LPQ_ESTATE, "search save: a generation is in progress (after ask, "
                      "before commit)");
  json_t *rng = json_array(), *archive = json_array(), *pop = json_array();
  json_t *hist = json_array();
  for (int i = 0; rng && i < 4; i++)
    json_array_append_new(rng, hex64_json(s->rng.s[i]));
  for (size_t i = 0; archive && i < s->count; i++)
    json_array_append_new(archive, record_json(s, i));
  for (size_t i = 0; pop && i < s->pop_count; i++)
    json_array_append_new(pop, json_integer((json_int_t)s->pop[i]));
  for (size_t i = 0; hist && i < s->history_count; i++)
    json_array_append_new(hist, progress_json(&s->history[i]));
  json_t *hv_ref = s->hv_ref_set ? json_pack("[oo]", real_json(s->hv_ref[0]),
                                             real_json(s->hv_ref[1]))
                                 : json_null();
  json_t *root = json_pack(
      "{s:s, s:i, s:o, s:I, s:o, s:I, s:I, s:o, s:o, s:I, s:b, s:o, s:o, s:o, s:o}", "format",
      "lpq-search-state", "version", STATE_VERSION, "fingerprint",
      hex64_json(lpq__search_fingerprint(s)), "layer_count", (json_int_t)s->L, "rng", rng,
      "committed", (json_int_t)s->committed, "evaluations", (json_int_t)s->evaluations,
      "hv_ref", hv_ref, "best_measure", real_json(s->best_measure), "stale",
      (json_int_t)s->stale, "exhausted", s->exhausted, "elapsed_seconds",
      real_json(s->elapsed + (lpq__search_now() - s->mark)), "archive", archive, "population", pop,
      "history", hist);
  char *text = root ? json_dumps(root, JSON_COMPACT) : NULL;
  json_decref(root);
  if (!text)
    return lpq_errorf(err, LPQ_ENOMEM, "search save: out of memory for %zu genomes", s->count);
  *json = text;
  return 0;
}

/* ---- restore --------------------------------------------------------------------------- */

static int get_real(json_t *v, double *out) {
  if (json_is_number(v)) {
    *out = json_number_value(v);
    return 0;
  }
  const char *t = json_string_value(v);
  if (!t)
    return -1;
  if (strcmp(t, "nan") == 0)
    *out = NAN;
  else if (strcmp(t, "inf") == 0)
    *out = INFINITY;
  else if (strcmp(t, "-inf") == 0)
    *out = -INFINITY;
  else
    return -1;
  return 0;
}

static int get_hex64(json_t *v, uint64_t *out) {
  const char *t = json_string_value(v);
  char *end;
  if (!t || strlen(t) != 16)
    return -1;
  *out = strtoull(t, &end, 16);
  return *end ? -1 : 0;
}

static int get_size(json_t *v, size_t *out) {
  if (!json_is_integer(v) || json_integer_value(v) < 0)
    return -1;
  *out = (size_t)json_integer_value(v);
  return 0;
}

#define BAD(...) lpq_errorf(err, LPQ_EFORMAT, "search state: " __VA_ARGS__)

static int read_record(lpq_search_t *s, json_t *rec, size_t i, lpq_layer_formats_t *g,
                       lpq_error_t *err) {
  json_t *genome = json_object_get(rec, "genome"), *c = json_object_get(rec, "constraints");
  lpq_eval_result_t r = {0};
  size_t gen;
  if (!json_is_array(genome) || json_array_size(genome) != s->L || !json_is_array(c) ||
      json_array_size(c) != s->set.constraint_count ||
      get_size(json_object_get(rec, "generation"), &gen) ||
      !json_is_integer(json_object_get(rec, "status")) ||
      get_real(json_object_get(rec, "l_co"), &r.l_co) ||
      get_real(json_object_get(rec, "l_cr"), &r.l_cr))
    return BAD("archive record %zu is malformed", i);
  r.status = (int)json_integer_value(json_object_get(rec, "status"));
  for (size_t j = 0; j < s->set.constraint_count; j++)
    if (get_real(json_array_get(c, j), &r.constraint[j]))
      return BAD("archive record %zu constraint %zu is not a number", i, j);
  for (size_t l = 0; l < s->L; l++) {
    int v[9] = {0};
    json_t *layer = json_array_get(genome, l);
    size_t nv = json_is_array(layer) ? json_array_size(layer) : 0;
    if (nv != 8 && nv != 9)
      return BAD("archive record %zu layer %zu is not 8 or 9 integers", i, l);
    for (int k = 0; k < (int)nv; k++) {
      json_t *x = json_array_get(layer, (size_t)k);
      if (!json_is_integer(x) || json_integer_value(x) < -1000 || json_integer_value(x) > 1000)
        return BAD("archive record %zu layer %zu field %d is not a small integer", i, l, k);
      v[k] = (int)json_integer_value(x);
    }
    g[l].weight = (lp_format_t){v[0], v[1], v[2], v[3]};
    g[l].act = (lp_format_t){v[4], v[5], v[6], v[7]};
    g[l].weight_per_channel = v[8];
  }
  if (lpq_genome_check(&s->space, g, err))
    return lpq_error_prefix(err, "search state: archive record %zu: ", i), LPQ_EFORMAT;
  if (lpq__search_archive_find(s, g, lpq_genome_hash(g, s->L)) != SIZE_MAX)
    return BAD("archive record %zu repeats an earlier genome", i);
  return lpq__search_archive_add(s, g, &r, gen, err);
}

static int read_progress(json_t *h, lpq_search_progress_t *p) {
  return get_size(json_object_get(h, "generation"), &p->generation) ||
         get_size(json_object_get(h, "evaluations"), &p->evaluations) ||
         get_size(json_object_get(h, "new_evaluations"), &p->new_evaluations) ||
         get_size(json_object_get(h, "failed"), &p->failed) ||
         get_real(json_object_get(h, "best_l_co"), &p->best_l_co) ||
         get_real(json_object_get(h, "best_l_f"), &p->best_l_f) ||
         get_size(json_object_get(h, "front_size"), &p->front_size) ||
         get_real(json_object_get(h, "hypervolume"), &p->hypervolume) ||
         get_real(json_object_get(h, "elapsed_seconds"), &p->elapsed_seconds);
}

static int restore_into(lpq_search_t *s, json_t *root, lpq_error_t *err) {
  json_t *ver = json_object_get(root, "version");
  if (!json_is_integer(ver) || json_integer_value(ver) != STATE_VERSION)
    return lpq_errorf(err, LPQ_EUNSUP, "search state: version is not %d", STATE_VERSION);
  uint64_t fp;
  size_t L, committed, evaluations, stale;
  if (get_hex64(json_object_get(root, "fingerprint"), &fp) ||
      get_size(json_object_get(root, "layer_count"), &L))
    return BAD("no fingerprint or layer count");
  if (L != s->L || fp != lpq__search_fingerprint(s))
    return lpq_errorf(err, LPQ_EINVAL, "search state: saved for a different search space or "
                      "settings (fingerprint differs)");
  json_t *rng = json_object_get(root, "rng");
  for (size_t i = 0; i < 4; i++)
    if (get_hex64(json_array_get(rng, i), &s->rng.s[i]))
      return BAD("rng word %zu is not 16 hex digits", i);
  json_t *hv = json_object_get(root, "hv_ref");
  if (get_size(json_object_get(root, "committed"), &committed) ||
      get_size(json_object_get(root, "evaluations"), &evaluations) ||
      get_size(json_object_get(root, "stale"), &stale) ||
      get_real(json_object_get(root, "best_measure"), &s->best_measure) ||
      get_real(json_object_get(root, "elapsed_seconds"), &s->elapsed) ||
      !json_is_boolean(json_object_get(root, "exhausted")))
    return BAD("a counter is missing or malformed");
  if (!json_is_null(hv) && (get_real(json_array_get(hv, 0), &s->hv_ref[0]) ||
                            get_real(json_array_get(hv, 1), &s->hv_ref[1])))
    return BAD("hv_ref is not two numbers");
  s->hv_ref_set = !json_is_null(hv);
  s->committed = committed;
  s->stale = stale;
  s->exhausted = json_is_true(json_object_get(root, "exhausted"));

  json_t *archive = json_object_get(root, "archive"), *pop = json_object_get(root, "population");
  json_t *hist = json_object_get(root, "history");
  if (!json_is_array(archive) || !json_is_array(pop) || !json_is_array(hist))
    return BAD("archive, population or history is not an array");
  if (json_array_size(archive) != evaluations)
    return BAD("%zu archive records for %zu evaluations", json_array_size(archive), evaluations);
  lpq_layer_formats_t *g = malloc(s->L * sizeof *g);
  if (!g)
    return lpq_errorf(err, LPQ_ENOMEM, "search state: out of memory");
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < evaluations; i++)
    rc = read_record(s, json_array_get(archive, i), i, g, err);
  free(g);
  if (rc)
    return rc;
  s->evaluations = evaluations;
  if (json_array_size(pop) > s->set.population)
    return BAD("population of %zu, settings say %zu", json_array_size(pop), s->set.population);
  for (size_t i = 0; i < json_array_size(pop); i++)
    if (get_size(json_array_get(pop, i), &s->pop[i]) || s->pop[i] >= s->count)
      return BAD("population member %zu is not an archive index", i);
  s->pop_count = json_array_size(pop);
  size_t n = json_array_size(hist);
  if (n != committed)
    return BAD("%zu history entries for %zu generations", n, committed);
  s->history = n ? malloc(n * sizeof *s->history) : NULL;
  if (n && !s->history)
    return lpq_errorf(err, LPQ_ENOMEM, "search state: out of memory");
  s->history_cap = n;
  for (size_t i = 0; i < n; i++)
    if (read_progress(json_array_get(hist, i), &s->history[i]))
      return BAD("history entry %zu is malformed", i);
  s->history_count = n;
  return lpq__search_rank_population(s, err);
}

lpq_search_t *lpq_search_restore(const lpq_search_space_t *space,
                                 const lpq_search_settings_t *settings, const char *json,
                                 lpq_error_t *err) {
  if (!space || !settings || !json) {
    lpq_errorf(err, LPQ_EINVAL, "search restore: missing argument");
    return NULL;
  }
  json_error_t jerr;
  json_t *root = json_loads(json, 0, &jerr);
  if (!root || !json_is_object(root)) {
    lpq_errorf(err, LPQ_EFORMAT, "search state: not a JSON object (line %d: %s)", jerr.line,
               jerr.text);
    json_decref(root);
    return NULL;
  }
  lpq_search_t *s = lpq__search_alloc(space, settings, err);
  if (s && restore_into(s, root, err))
    lpq_search_free(&s);
  json_decref(root);
  if (s)
    s->mark = lpq__search_now();
  return s;
}
