/*
** coordinator/store/search.c: the bridge from the search library to the store: a genome as
** JSON text, and a committed generation of an lpq_search_t as a generation row with its
** population (objectives, NSGA-II rank and crowding, front flags); and a stored individual's
** genome JSON back (job.export).
*/
#include "coordinator/store/store_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


int lpq_store_genome_json(const lpq_layer_formats_t *genome, size_t layer_count, char **json,
                          lpq_error_t *err) {
  if (json == NULL || (genome == NULL && layer_count > 0))
    return lpq_errorf(err, LPQ_EINVAL, "store: genome json: missing genome or output");
  /* {"w":"lp<16,4,15,auto_ch-64>","a":"..."}: at most 2 * LPQ_NUMFMT_TEXT_MAX + 20 a layer */
  size_t cap = layer_count * (2 * LPQ_NUMFMT_TEXT_MAX + 20) + 3, len = 0;
  char *out = malloc(cap);
  if (out == NULL)
    return lpq_errorf(err, LPQ_ENOMEM, "store: genome json: %zu layers", layer_count);
  out[len++] = '[';
  for (size_t l = 0; l < layer_count; l++) {
    char w[LPQ_NUMFMT_TEXT_MAX], a[LPQ_NUMFMT_TEXT_MAX];
    lpq_numfmt_t wf, af; /* the config syntax: fp32, lp<...>, lp<n,es,rs,auto_ch+K> */
    lpq_layer_formats_numfmt(&genome[l], &wf, &af);
    lpq_numfmt_str(&wf, w, sizeof w);
    lpq_numfmt_str(&af, a, sizeof a);
    len += (size_t)snprintf(out + len, cap - len, "%s{\"w\":\"%s\",\"a\":\"%s\"}", l ? "," : "",
                            w, a);
  }
  snprintf(out + len, cap - len, "]");
  *json = out;
  return 0;
}

/* A feasible population member, for the front. */
typedef struct front_entry_t {
  double l_co, l_cr;
  size_t archive_index, member;
} front_entry_t;

static int compare_entries(const void *pa, const void *pb) {
  const front_entry_t *a = pa, *b = pb;
  if (a->l_co != b->l_co)
    return a->l_co < b->l_co ? -1 : 1;
  if (a->l_cr != b->l_cr)
    return a->l_cr < b->l_cr ? -1 : 1;
  return (a->archive_index > b->archive_index) - (a->archive_index < b->archive_index);
}

/* Flags the feasible non-dominated members as the search counts them (lpq_search_front): by
** increasing (L_CO, L_CR, archive index), each that lowers the best L_CR so far; so of equal
** objective vectors only the first is on the front. */
static void mark_front(lpq_store_individual_t *ind, const size_t *members, size_t count,
                       front_entry_t *entries) {
  size_t m = 0;
  for (size_t i = 0; i < count; i++)
    if (ind[i].violation == 0.0 && !isnan(ind[i].l_co))
      entries[m++] = (front_entry_t){ind[i].l_co, ind[i].l_cr, members[i], i};
  qsort(entries, m, sizeof *entries, compare_entries);
  double best_cr = INFINITY;
  for (size_t k = 0; k < m; k++)
    if (entries[k].l_cr < best_cr) {
      best_cr = entries[k].l_cr;
      ind[entries[k].member].in_front = 1;
    }
}

void lpq_store_generation_rows_free(lpq_store_generation_rows_t **rows) {
  if (rows == NULL || *rows == NULL)
    return;
  for (size_t i = 0; (*rows)->json != NULL && i < (*rows)->count; i++)
    free((*rows)->json[i]);
  free((*rows)->json);
  free((*rows)->ind);
  free(*rows);
  *rows = NULL;
}

/* The front's members first, each part in population order. */
static void front_first(lpq_store_individual_t *ind, char **json, size_t count,
                        lpq_store_individual_t *tmp_ind, char **tmp_json) {
  size_t k = 0;
  for (int pass = 1; pass >= 0; pass--)
    for (size_t i = 0; i < count; i++)
      if ((ind[i].in_front != 0) == pass) {
        tmp_ind[k] = ind[i];
        tmp_json[k++] = json[i];
      }
  memcpy(ind, tmp_ind, count * sizeof *ind);
  memcpy(json, tmp_json, count * sizeof *json);
}

int lpq_store_generation_rows(int64_t job, const lpq_search_t *search,
                              lpq_store_generation_rows_t **out, lpq_error_t *err) {
  if (search == NULL || out == NULL)
    return lpq_errorf(err, LPQ_EINVAL, "store: generations: commit: missing search or output");
  *out = NULL;
  const lpq_search_progress_t *history;
  size_t generations = lpq_search_history(search, &history);
  if (generations == 0)
    return lpq_errorf(err, LPQ_ESTATE, "store: generations: commit: job %lld's search has no "
                      "committed generation", (long long)job);
  const lpq_search_progress_t *p = &history[generations - 1];
  const size_t *members;
  size_t count = lpq_search_population(search, &members);
  size_t layers = lpq_search_layer_count(search);

  lpq_store_generation_rows_t *rows = calloc(1, sizeof *rows);
  lpq_store_individual_t *ind = calloc(count + 1, sizeof *ind);
  lpq_store_individual_t *tmp_ind = malloc((count + 1) * sizeof *tmp_ind);
  double *obj = malloc((2 * count + 1) * sizeof *obj);
  double *violation = malloc((count + 1) * sizeof *violation);
  double *crowding = malloc((count + 1) * sizeof *crowding);
  size_t *rank = malloc((count + 1) * sizeof *rank);
  char **json = calloc(count + 1, sizeof *json);
  char **tmp_json = malloc((count + 1) * sizeof *tmp_json);
  front_entry_t *entries = malloc((count + 1) * sizeof *entries);
  int ret = 0;
  if (rows == NULL || ind == NULL || tmp_ind == NULL || obj == NULL || violation == NULL ||
      crowding == NULL || rank == NULL || json == NULL || tmp_json == NULL || entries == NULL)
    ret = lpq_errorf(err, LPQ_ENOMEM, "store: generations: commit: %zu individuals", count);
  for (size_t i = 0; ret == 0 && i < count; i++) {
    lpq_search_record_t r;
    ret = lpq_search_archive_get(search, members[i], &r);
    if (ret != 0) {
      lpq_errorf(err, ret, "store: generations: commit: archive entry %zu", members[i]);
      break;
    }
    int scored = r.result.status == 0;
    obj[2 * i] = scored ? r.result.l_co : INFINITY;
    obj[2 * i + 1] = scored ? r.result.l_cr : INFINITY;
    violation[i] = scored ? r.violation : INFINITY;
    ind[i].genome_hash = r.hash;
    ind[i].l_co = scored ? r.result.l_co : NAN;
    ind[i].l_cr = scored ? r.result.l_cr : NAN;
    ind[i].l_f = scored ? r.l_f : NAN;
    ind[i].violation = violation[i];
    ret = lpq_store_genome_json(r.genome, layers, &json[i], err);
    ind[i].genome_json = json[i];
  }
  if (ret == 0 && count > 0)
    ret = lpq_nsga_rank(obj, violation, count, 2, rank, crowding, err);
  for (size_t i = 0; ret == 0 && i < count; i++) {
    ind[i].rank = rank[i];
    ind[i].crowding = crowding[i];
  }
  if (ret == 0) {
    mark_front(ind, members, count, entries);
    front_first(ind, json, count, tmp_ind, tmp_json);
    rows->gen = (lpq_store_generation_t){.job = job,
                                         .number = p->generation,
                                         .evaluations = p->evaluations,
                                         .new_evaluations = p->new_evaluations,
                                         .failed = p->failed,
                                         .best_l_co = p->best_l_co,
                                         .best_l_f = p->best_l_f,
                                         .hypervolume = p->hypervolume,
                                         .front_size = p->front_size,
                                         .elapsed_s = p->elapsed_seconds};
    rows->ind = ind;
    rows->json = json;
    rows->count = count;
    *out = rows;
  } else {
    for (size_t i = 0; json != NULL && i < count; i++)
      free(json[i]);
    free(json);
    free(ind);
    free(rows);
  }
  free(tmp_ind);
  free(tmp_json);
  free(entries);
  free(obj);
  free(violation);
  free(crowding);
  free(rank);
  return ret;
}

int lpq_store_search_generation(lpq_store_t *st, int64_t job, const lpq_search_t *search,
                                lpq_error_t *err) {
  if (st == NULL || search == NULL)
    return lpq_errorf(err, LPQ_EINVAL, "store: generations: commit: missing store or search");
  lpq_store_generation_rows_t *rows = NULL;
  int done = 0, ret = lpq_store_generation_rows(job, search, &rows, err);
  if (ret == 0)
    ret = lpq_store_generation_write(st, rows, SIZE_MAX, &done, err);
  lpq_store_generation_rows_free(&rows);
  return ret;
}

int lpq_store_individual_json(lpq_store_t *st, int64_t job, uint64_t genome_hash, char **json,
                              lpq_error_t *err) {
  if (st == NULL || json == NULL)
    return lpq_errorf(err, LPQ_EINVAL, "store: individuals: get: missing store or output");
  *json = NULL;
  sqlite3_stmt *s;
  /* the last generation by the key (job, generation, genome); else the job's other rows */
  int ret = lpq__store_stmt(st, STMT_IND_JSON,
                            "SELECT genome_json FROM individuals WHERE job = ?1 AND genome = ?2 "
                            "AND generation = (SELECT max(number) FROM generations WHERE job = ?1) "
                            "UNION ALL SELECT genome_json FROM individuals WHERE job = ?1 AND "
                            "genome = ?2 LIMIT 1",
                            "individuals", "get", &s, err);
  if (ret != 0)
    return ret;
  char hex[17];
  lpq__store_hash_hex(genome_hash, hex);
  sqlite3_bind_int64(s, 1, job);
  sqlite3_bind_text(s, 2, hex, 16, SQLITE_STATIC);
  int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) {
    const char *text = (const char *)sqlite3_column_text(s, 0);
    *json = text ? strdup(text) : NULL;
    ret = *json ? 0 : lpq_errorf(err, LPQ_ENOMEM, "out of memory");
  } else if (rc == SQLITE_DONE) {
    ret = lpq_errorf(err, LPQ_ENOTFOUND, "store: job %lld has no genome %s in its generations",
                     (long long)job, hex);
  } else {
    ret = lpq__store_fail(st, rc, "individuals", "get", err);
  }
  sqlite3_reset(s);
  return ret;
}
