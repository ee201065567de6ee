/* worker/qcache.h: worker-internal cache of quantized weights, quantizers and resolved formats
** (see qcache.c). Not part of the folder's public interface (worker/worker.h). */
#ifndef LPQ_WORKER_QCACHE_H
#define LPQ_WORKER_QCACHE_H

#include "worker/worker.h"

#include <pthread.h>
#include <stdint.h>

typedef struct qentry_t {
  char key[128];
  uint64_t hash;
  float *data;          /* quantized weights (owned) */
  lp_quantizer_t *q;    /* a quantizer (owned) */
  lpq_numfmt_t fmt;     /* a resolved format */
  size_t bytes;         /* what the entry holds, for the bound */
  int refs;
  uint64_t last_use;
  struct qentry_t *next;
} qentry_t;

typedef struct qcache_t {
  pthread_mutex_t mu;
  qentry_t **buckets;
  size_t nbuckets, count, bytes, cap;
  uint64_t clock, hits, misses;
} qcache_t;

int qcache_init(qcache_t *c, size_t cap_bytes);
void qcache_destroy(qcache_t *c);
/* A new unlinked entry with its key set; NULL when memory runs out. */
qentry_t *qentry_new(const char *key);
/* The entry for key, pinned (release it), or NULL. */
qentry_t *qcache_get(qcache_t *c, const char *key);
/* Inserts e (pinned) and returns it, or the equal entry already there (e is then freed). */
qentry_t *qcache_put(qcache_t *c, qentry_t *e);
void qcache_release(qcache_t *c, qentry_t *e);

#endif
