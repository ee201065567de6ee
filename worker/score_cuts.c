/* worker/score_cuts.c: the cut cache. A candidate that shares its first layers' formats with one
** already scored computes the same tensors up to the first layer where they differ; the scorer
** keeps the engine's state at a few cuts (just before a chosen layer: lpq_exec_cut_save) under
** the hash of the formats of every layer before it, with those layers' local terms, and a later
** candidate with the same prefix resumes there (lpq_exec_run_from) instead of running, and
** quantizing the weights of, every layer before it again. Bit for bit what the whole pass gives
** (tests/test_score_cuts.c). The cuts sit where the forward pass's multiply-adds reach a fifth,
** two fifths, ... of the whole, so one saved candidate costs a few of its activations and a
** resume skips at least that share of the pass; entries are bounded in bytes (least recently
** used first, as the weight cache). */
#include "worker/worker_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int lpq__cuts_init(lpq_scorer_t *s) {
  s->ncuts = 0;
  if (s->opts.no_cache || s->opts.no_cuts)
    return 0;
  if (s->opts.cut_bytes == 0)
    s->opts.cut_bytes = (size_t)LPQ_SCORE_CUT_MB_DEFAULT << 20;
  if (lpq__qcache_init(&s->cuts, s->opts.cut_bytes) != 0)
    return LPQ_ENOMEM;
  uint64_t total = 0, sum = 0;
  for (size_t l = 0; l < s->nlayers; l++)
    total += lpq_graph_layer(s->g, l)->macs;
  for (size_t l = 1, j = 1; l < s->nlayers && j <= LPQ__CUTS_MAX; l++) {
    sum += lpq_graph_layer(s->g, l - 1)->macs;
    if ((double)sum < (double)total * (double)j / (LPQ__CUTS_MAX + 1))
      continue;
    while (j <= LPQ__CUTS_MAX && (double)sum >= (double)total * (double)j / (LPQ__CUTS_MAX + 1))
      j++;
    size_t bytes = lpq_graph_cut_bytes(s->g, l);
    if (bytes == 0 || bytes > s->opts.cut_bytes / 4) /* a few candidates must fit */
      continue;
    s->cut_layer[s->ncuts] = l;
    s->cut_state[s->ncuts++] = bytes;
  }
  return 0;
}

void lpq__cuts_destroy(lpq_scorer_t *s) { lpq__qcache_destroy(&s->cuts); }

/* The key of the cut before `layer` for the formats of layers 0..layer-1 (prefix: their hash). */
static void cut_key(char *key, size_t cap, size_t layer, const uint64_t *prefix) {
  const uint64_t *h = prefix + 2 * (layer - 1);
  snprintf(key, cap, "S|%zu|%016llx%016llx", layer, (unsigned long long)h[0],
           (unsigned long long)h[1]);
}

qentry_t *lpq__cuts_find(lpq_scorer_t *s, const uint64_t *prefix, size_t *layer) {
  char key[128];
  for (size_t i = s->ncuts; i-- > 0;) {
    cut_key(key, sizeof key, s->cut_layer[i], prefix);
    qentry_t *e = lpq__qcache_get(&s->cuts, key);
    if (e) {
      *layer = s->cut_layer[i];
      return e;
    }
  }
  *layer = 0;
  return NULL;
}

const void *lpq__cuts_state(const lpq_scorer_t *s, const qentry_t *e, size_t layer,
                            const double **local, size_t *bytes) {
  size_t i = 0;
  while (i < s->ncuts && s->cut_layer[i] != layer)
    i++;
  *bytes = i < s->ncuts ? s->cut_state[i] : 0; /* find gives only the cuts' layers */
  *local = (const double *)(const void *)e->data;
  return (const char *)e->data + layer * sizeof(double);
}

void lpq__cuts_release(lpq_scorer_t *s, qentry_t *e) {
  if (e)
    lpq__qcache_release(&s->cuts, e);
}

void lpq__cuts_offer(lpq_scorer_t *s, const lpq_exec_t *x, size_t layer, size_t resumed,
                     const uint64_t *prefix, const double *local) {
  size_t i = 0;
  while (i < s->ncuts && s->cut_layer[i] != layer)
    i++;
  if (i == s->ncuts || layer <= resumed)
    return;
  char key[128];
  cut_key(key, sizeof key, layer, prefix);
  qentry_t *e = lpq__qcache_get(&s->cuts, key);
  if (e) { /* another candidate with this prefix saved it */
    lpq__qcache_release(&s->cuts, e);
    return;
  }
  const size_t head = layer * sizeof(double), bytes = head + s->cut_state[i];
  qentry_t *n = lpq__qentry_new(key);
  size_t reused = 0;
  if (n)
    n->data = lpq__qcache_make_room(&s->cuts, sizeof *n + bytes, &reused);
  if (!n || (!n->data && !(n->data = malloc(bytes)))) {
    free(n); /* the cache is an optimisation: no memory, no entry */
    return;
  }
  memcpy(n->data, local, head);
  if (lpq_exec_cut_save(x, layer, (char *)n->data + head, s->cut_state[i], NULL) != 0) {
    free(n->data);
    free(n);
    return;
  }
  n->bytes = reused ? reused : sizeof *n + bytes;
  lpq__qcache_release(&s->cuts, lpq__qcache_put(&s->cuts, n));
  pthread_mutex_lock(&s->cuts.mu);
  s->cut_saves++;
  s->cut_reuses += reused != 0;
  pthread_mutex_unlock(&s->cuts.mu);
}
