/* worker/qcache.c: a thread-safe cache of quantized weights, quantizers and resolved formats,
** keyed by text, with reference counts (an entry in use is never evicted) and a byte bound
** (least recently used unpinned entries go first). A search revisits formats all the time. */
#include "worker/worker_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t hash_key(const char *s) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (; *s; s++) {
    h ^= (unsigned char)*s;
    h *= 1099511628211ull;
  }
  return h;
}

int lpq__qcache_init(qcache_t *c, size_t cap_bytes) {
  memset(c, 0, sizeof *c);
  c->nbuckets = 1024;
  c->buckets = calloc(c->nbuckets, sizeof *c->buckets);
  if (!c->buckets)
    return LPQ_ENOMEM;
  c->cap = cap_bytes;
  pthread_mutex_init(&c->mu, NULL);
  return 0;
}

static void entry_free(qentry_t *e) {
  free(e->data);
  free(e->idata);
  lp_quantizer_free(&e->q);
  free(e);
}

void lpq__qcache_destroy(qcache_t *c) {
  if (!c->buckets)
    return;
  for (size_t b = 0; b < c->nbuckets; b++) {
    qentry_t *e = c->buckets[b];
    while (e) {
      qentry_t *next = e->next;
      entry_free(e);
      e = next;
    }
  }
  free(c->buckets);
  c->buckets = NULL;
  pthread_mutex_destroy(&c->mu);
}

qentry_t *lpq__qcache_get(qcache_t *c, const char *key) {
  uint64_t h = hash_key(key);
  pthread_mutex_lock(&c->mu);
  qentry_t *e = c->buckets[h % c->nbuckets];
  while (e && !(e->hash == h && strcmp(e->key, key) == 0))
    e = e->next;
  if (e) {
    e->refs++;
    e->last_use = ++c->clock;
    c->hits++;
  } else {
    c->misses++;
  }
  pthread_mutex_unlock(&c->mu);
  return e;
}

/* Unlinks the least recently used unpinned entry and returns it, or NULL. Lock held. */
static qentry_t *pop_lru_locked(qcache_t *c) {
  qentry_t **victim = NULL;
  uint64_t oldest = UINT64_MAX;
  for (size_t b = 0; b < c->nbuckets; b++)
    for (qentry_t **pe = &c->buckets[b]; *pe; pe = &(*pe)->next)
      if ((*pe)->refs == 0 && (*pe)->last_use < oldest) {
        oldest = (*pe)->last_use;
        victim = pe;
      }
  if (!victim)
    return NULL;
  qentry_t *e = *victim;
  *victim = e->next;
  c->bytes -= e->bytes;
  c->count--;
  return e;
}

/* Drops unpinned least-recently-used entries until the cache fits its bound; when everything
** is in use it stays over the bound until entries are released. Lock held. */
static void evict_locked(qcache_t *c) {
  qentry_t *e;
  while (c->bytes > c->cap && (e = pop_lru_locked(c)))
    entry_free(e);
}

void *lpq__qcache_make_room(qcache_t *c, size_t entry_bytes, size_t *reused_bytes) {
  void *reuse = NULL;
  *reused_bytes = 0;
  pthread_mutex_lock(&c->mu);
  qentry_t *e;
  while (c->bytes + entry_bytes > c->cap && (e = pop_lru_locked(c))) {
    if (!reuse && e->data && !e->idata && !e->q && e->bytes >= entry_bytes &&
        e->bytes - entry_bytes <= entry_bytes / 4) {
      reuse = e->data; /* its pages are mapped already: no faults filling it again */
      *reused_bytes = e->bytes;
      e->data = NULL;
    }
    entry_free(e);
  }
  pthread_mutex_unlock(&c->mu);
  return reuse;
}

qentry_t *lpq__qcache_put(qcache_t *c, qentry_t *e) {
  e->hash = hash_key(e->key);
  pthread_mutex_lock(&c->mu);
  qentry_t **head = &c->buckets[e->hash % c->nbuckets];
  for (qentry_t *x = *head; x; x = x->next)
    if (x->hash == e->hash && strcmp(x->key, e->key) == 0) {
      /* another thread built the same entry first: use theirs */
      x->refs++;
      x->last_use = ++c->clock;
      pthread_mutex_unlock(&c->mu);
      entry_free(e);
      return x;
    }
  e->refs = 1;
  e->last_use = ++c->clock;
  e->next = *head;
  *head = e;
  c->bytes += e->bytes;
  c->count++;
  evict_locked(c);
  pthread_mutex_unlock(&c->mu);
  return e;
}

void lpq__qcache_release(qcache_t *c, qentry_t *e) {
  if (!e)
    return;
  pthread_mutex_lock(&c->mu);
  e->refs--;
  evict_locked(c);
  pthread_mutex_unlock(&c->mu);
}

qentry_t *lpq__qentry_new(const char *key) {
  qentry_t *e = calloc(1, sizeof *e);
  if (e)
    snprintf(e->key, sizeof e->key, "%s", key);
  return e;
}
