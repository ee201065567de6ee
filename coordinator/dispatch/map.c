/*
** coordinator/dispatch/map.c: a hash map from 64-bit keys to non-NULL pointers (tasks by id,
** jobs by id, workers by identity hash). Linear probing with backward-shift deletion, so
** constant-time lookups stay constant under the dispatcher's steady insert/delete churn.
*/
#include "coordinator/dispatch/dispatch_internal.h"

#include <stdlib.h>

static size_t slot_of(uint64_t key, size_t mask)
{
  key ^= key >> 30;
  key *= 0xbf58476d1ce4e5b9ull;
  key ^= key >> 27;
  key *= 0x94d049bb133111ebull;
  key ^= key >> 31;
  return (size_t)key & mask;
}

void lpq__dmap_clear(dmap_t *m)
{
  free(m->slots);
  m->slots = NULL;
  m->count = m->cap = 0;
}

void *lpq__dmap_get(const dmap_t *m, uint64_t key)
{
  if (m->cap == 0)
    return NULL;
  size_t mask = m->cap - 1;
  for (size_t i = slot_of(key, mask);; i = (i + 1) & mask) {
    if (m->slots[i].val == NULL)
      return NULL;
    if (m->slots[i].key == key)
      return m->slots[i].val;
  }
}

static int grow(dmap_t *m)
{
  size_t cap = m->cap ? m->cap * 2 : 64;
  dmap_slot_t *slots = calloc(cap, sizeof *slots);
  if (slots == NULL)
    return LPQ_ENOMEM;
  for (size_t k = 0; k < m->cap; k++) {
    if (m->slots[k].val == NULL)
      continue;
    size_t i = slot_of(m->slots[k].key, cap - 1);
    while (slots[i].val != NULL)
      i = (i + 1) & (cap - 1);
    slots[i] = m->slots[k];
  }
  free(m->slots);
  m->slots = slots;
  m->cap = cap;
  return 0;
}

int lpq__dmap_put(dmap_t *m, uint64_t key, void *val)
{
  if (val == NULL)
    return LPQ_EINVAL;
  if ((m->count + 1) * 4 > m->cap * 3) { /* load factor <= 3/4 */
    int rc = grow(m);
    if (rc != 0)
      return rc;
  }
  size_t mask = m->cap - 1;
  size_t i = slot_of(key, mask);
  for (; m->slots[i].val != NULL; i = (i + 1) & mask)
    if (m->slots[i].key == key) {
      m->slots[i].val = val;
      return 0;
    }
  m->slots[i].key = key;
  m->slots[i].val = val;
  m->count++;
  return 0;
}

void *lpq__dmap_remove(dmap_t *m, uint64_t key)
{
  if (m->cap == 0)
    return NULL;
  size_t mask = m->cap - 1;
  size_t i = slot_of(key, mask);
  for (; m->slots[i].val != NULL; i = (i + 1) & mask)
    if (m->slots[i].key == key)
      break;
  void *val = m->slots[i].val;
  if (val == NULL)
    return NULL;
  /* Backward shift: move later members of the probe run into the hole when their home slot
  ** does not lie cyclically in (hole, j]. */
  size_t hole = i;
  for (size_t j = (i + 1) & mask; m->slots[j].val != NULL; j = (j + 1) & mask) {
    size_t home = slot_of(m->slots[j].key, mask);
    int between = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
    if (!between) {
      m->slots[hole] = m->slots[j];
      hole = j;
    }
  }
  m->slots[hole].val = NULL;
  m->count--;
  return val;
}
