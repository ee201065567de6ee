/* coordinator/search/nsga.c: the NSGA-II core (Deb et al. 2002) on plain objective vectors:
** constrained domination, fast non-dominated sorting, crowding distance, (mu + lambda) survival,
** binary tournament, and the exact 2-D hypervolume. Generic: tested on real problems. */
#define _GNU_SOURCE /* qsort_r */
#include "coordinator/search/search_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int lpq_nsga_compare(const double *obj_a, double violation_a, const double *obj_b,
                     double violation_b, size_t obj_count) {
  if (violation_a > 0 || violation_b > 0) {
    if (violation_a < violation_b)
      return -1;
    if (violation_b < violation_a)
      return 1;
    return 0;
  }
  int a_better = 0, b_better = 0;
  for (size_t k = 0; k < obj_count; k++) {
    if (obj_a[k] < obj_b[k])
      a_better = 1;
    else if (obj_b[k] < obj_a[k])
      b_better = 1;
  }
  if (a_better && !b_better)
    return -1;
  if (b_better && !a_better)
    return 1;
  return 0;
}

typedef struct by_objective_t {
  const double *obj;
  size_t obj_count, k;
} by_objective_t;

static int cmp_by_objective(const void *pa, const void *pb, void *pctx) {
  const by_objective_t *c = pctx;
  size_t a = *(const size_t *)pa, b = *(const size_t *)pb;
  double va = c->obj[a * c->obj_count + c->k], vb = c->obj[b * c->obj_count + c->k];
  if (va < vb)
    return -1;
  if (va > vb)
    return 1;
  return (a > b) - (a < b);
}

/* Crowding distance of the `size` solutions front[] (their crowding[] entries are set). */
static void crowding_of_front(const double *obj, size_t obj_count, size_t *front, size_t size,
                              double *crowding) {
  for (size_t i = 0; i < size; i++)
    crowding[front[i]] = 0.0;
  if (size <= 2) {
    for (size_t i = 0; i < size; i++)
      crowding[front[i]] = INFINITY;
    return;
  }
  for (size_t k = 0; k < obj_count; k++) {
    by_objective_t c = {obj, obj_count, k};
    qsort_r(front, size, sizeof *front, cmp_by_objective, &c);
    double lo = obj[front[0] * obj_count + k], hi = obj[front[size - 1] * obj_count + k];
    crowding[front[0]] = INFINITY;
    crowding[front[size - 1]] = INFINITY;
    if (!(hi > lo))
      continue;
    for (size_t i = 1; i + 1 < size; i++) {
      double gap = obj[front[i + 1] * obj_count + k] - obj[front[i - 1] * obj_count + k];
      crowding[front[i]] += gap / (hi - lo);
    }
  }
}

/* ---- two objectives: O(n log n) ---------------------------------------------------------
** The pairwise sort below compares every pair: 2 x 10^10 comparisons, and as many domination
** edges to hold, for a pool of 200000 genomes (a population of 100000). With two objectives
** the fronts come from one sort (Jensen 2003; Zhang et al. 2015's ENS-BS): in (f0, f1) order a
** solution can be dominated only by one before it, and the fronts' last members have
** non-decreasing f1, so its front is found by a binary search. Infeasible solutions (violation
** > 0) follow the feasible fronts, one front per distinct violation, as constrained domination
** ranks them. Ranks and crowding distances equal the pairwise sort's (tests/test_nsga_core.c). */

typedef struct by_two_t {
  const double *obj, *violation;
} by_two_t;

static int cmp_two(const void *pa, const void *pb, void *pctx) {
  const by_two_t *c = pctx;
  size_t a = *(const size_t *)pa, b = *(const size_t *)pb;
  for (int k = 0; k < 2; k++)
    if (c->obj[2 * a + k] != c->obj[2 * b + k])
      return c->obj[2 * a + k] < c->obj[2 * b + k] ? -1 : 1;
  return (a > b) - (a < b);
}

static int cmp_violation(const void *pa, const void *pb, void *pctx) {
  const by_two_t *c = pctx;
  size_t a = *(const size_t *)pa, b = *(const size_t *)pb;
  if (c->violation[a] != c->violation[b])
    return c->violation[a] < c->violation[b] ? -1 : 1;
  return (a > b) - (a < b);
}

/* 1 when the sorted method applies: two objectives and no NaN where one would be compared (a
** NaN breaks the order a sort needs; the pairwise sort keeps its meaning for such input). */
static int two_sortable(const double *obj, const double *violation, size_t count,
                        size_t obj_count) {
  if (obj_count != 2)
    return 0;
  for (size_t i = 0; i < count; i++) {
    double v = violation ? violation[i] : 0.0;
    if (isnan(v) || (v <= 0 && (isnan(obj[2 * i]) || isnan(obj[2 * i + 1]))))
      return 0;
  }
  return 1;
}

/* ranks[] of the count solutions; returns the number of fronts. order[] (count) and last[]
** (count) are scratch. */
static size_t rank_two(const double *obj, const double *violation, size_t count, size_t *ranks,
                       size_t *order, size_t *last) {
  by_two_t c = {obj, violation};
  size_t feasible = 0, infeasible = count;
  for (size_t i = 0; i < count; i++) /* feasible ones from the start, the others from the end */
    if (violation && violation[i] > 0)
      order[--infeasible] = i;
    else
      order[feasible++] = i;
  qsort_r(order, feasible, sizeof *order, cmp_two, &c);
  size_t fronts = 0;
  for (size_t i = 0; i < feasible; i++) {
    size_t p = order[i], lo = 0, hi = fronts;
    const double *po = obj + 2 * p;
    while (lo < hi) { /* the first front whose last member does not dominate p */
      size_t mid = lo + (hi - lo) / 2;
      const double *q = obj + 2 * last[mid]; /* q[0] <= po[0] by the order */
      if (q[1] < po[1] || (q[1] == po[1] && q[0] < po[0]))
        lo = mid + 1;
      else
        hi = mid;
    }
    ranks[p] = lo;
    last[lo] = p;
    if (lo == fronts)
      fronts++;
  }
  size_t *bad = order + feasible, nbad = count - feasible;
  qsort_r(bad, nbad, sizeof *bad, cmp_violation, &c);
  for (size_t i = 0; i < nbad; i++) {
    if (i == 0 || violation[bad[i]] != violation[bad[i - 1]])
      fronts++;
    ranks[bad[i]] = fronts - 1;
  }
  return fronts;
}

/* The ranks of rank_two and each front's crowding distances. */
static int rank_two_crowding(const double *obj, const double *violation, size_t count,
                             size_t *ranks, double *crowding) {
  size_t *order = malloc(count * sizeof *order), *scratch = malloc((count + 1) * sizeof *scratch);
  int rc = LPQ_ENOMEM;
  if (order && scratch) {
    size_t fronts = rank_two(obj, violation, count, ranks, order, scratch);
    if (crowding) { /* the solutions by front (a counting sort), then each front's crowding */
      memset(scratch, 0, (fronts + 1) * sizeof *scratch);
      for (size_t i = 0; i < count; i++)
        scratch[ranks[i] + 1]++;
      for (size_t f = 0; f < fronts; f++)
        scratch[f + 1] += scratch[f];
      for (size_t i = 0; i < count; i++)
        order[scratch[ranks[i]]++] = i;
      for (size_t f = 0, at = 0; f < fronts; f++) { /* scratch[f]: the end of front f now */
        crowding_of_front(obj, 2, order + at, scratch[f] - at, crowding);
        at = scratch[f];
      }
    }
    rc = 0;
  }
  free(order);
  free(scratch);
  return rc;
}

int lpq_nsga_rank(const double *obj, const double *violation, size_t count, size_t obj_count,
                  size_t *rank, double *crowding, lpq_error_t *err) {
  if ((obj == NULL && count > 0) || obj_count == 0)
    return lpq_errorf(err, LPQ_EINVAL, "nsga rank: no objectives");
  if (count == 0 || !two_sortable(obj, violation, count, obj_count))
    return lpq__nsga_rank_pairwise(obj, violation, count, obj_count, rank, crowding, err);
  size_t *ranks = rank ? rank : malloc(count * sizeof *ranks);
  int rc = ranks ? rank_two_crowding(obj, violation, count, ranks, crowding) : LPQ_ENOMEM;
  if (ranks != rank)
    free(ranks);
  if (rc)
    lpq_errorf(err, rc, "nsga rank: out of memory for %zu solutions", count);
  return rc;
}

/* The pairwise fast non-dominated sort of Deb et al. (any number of objectives). */
int lpq__nsga_rank_pairwise(const double *obj, const double *violation, size_t count,
                            size_t obj_count, size_t *rank, double *crowding, lpq_error_t *err) {
  if ((obj == NULL && count > 0) || obj_count == 0)
    return lpq_errorf(err, LPQ_EINVAL, "nsga rank: no objectives");
  if (count == 0)
    return 0;
  /* Domination lists as one compressed array: a first pass counts, a second fills. */
  size_t *dominated_by = calloc(count, sizeof *dominated_by); /* how many beat i */
  size_t *start = calloc(count + 1, sizeof *start);
  size_t *front = malloc(count * sizeof *front);
  size_t *ranks = rank ? rank : malloc(count * sizeof *ranks);
  size_t *edges = NULL;
  int rc = LPQ_ENOMEM;
  if (!dominated_by || !start || !front || !ranks)
    goto out;
  for (size_t i = 0; i < count; i++)
    for (size_t j = i + 1; j < count; j++) {
      int c = lpq_nsga_compare(obj + i * obj_count, violation ? violation[i] : 0,
                               obj + j * obj_count, violation ? violation[j] : 0, obj_count);
      if (c < 0)
        start[i + 1]++;
      else if (c > 0)
        start[j + 1]++;
    }
  for (size_t i = 0; i < count; i++)
    start[i + 1] += start[i];
  edges = malloc((start[count] ? start[count] : 1) * sizeof *edges);
  if (!edges)
    goto out;
  size_t *fill = front; /* borrowed as the per-row write position */
  memcpy(fill, start, count * sizeof *fill);
  for (size_t i = 0; i < count; i++)
    for (size_t j = i + 1; j < count; j++) {
      int c = lpq_nsga_compare(obj + i * obj_count, violation ? violation[i] : 0,
                               obj + j * obj_count, violation ? violation[j] : 0, obj_count);
      if (c < 0) {
        edges[fill[i]++] = j;
        dominated_by[j]++;
      } else if (c > 0) {
        edges[fill[j]++] = i;
        dominated_by[i]++;
      }
    }
  /* Peel fronts: front[] holds the current front, then the next one after it. */
  size_t front_len = 0;
  for (size_t i = 0; i < count; i++)
    if (dominated_by[i] == 0) {
      front[front_len++] = i;
      ranks[i] = 0;
    }
  size_t done = 0, r = 0;
  while (front_len > 0) {
    size_t next_len = 0;
    for (size_t f = 0; f < front_len; f++) {
      size_t p = front[done + f];
      for (size_t e = start[p]; e < start[p + 1]; e++)
        if (--dominated_by[edges[e]] == 0) {
          ranks[edges[e]] = r + 1;
          front[done + front_len + next_len++] = edges[e];
        }
    }
    if (crowding)
      crowding_of_front(obj, obj_count, front + done, front_len, crowding);
    done += front_len;
    front_len = next_len;
    r++;
  }
  rc = 0;
out:
  if (ranks != rank)
    free(ranks);
  free(dominated_by);
  free(start);
  free(front);
  free(edges);
  if (rc)
    lpq_errorf(err, rc, "nsga rank: out of memory for %zu solutions", count);
  return rc;
}

typedef struct by_rank_t {
  const size_t *rank;
  const double *crowding;
} by_rank_t;

static int cmp_by_rank(const void *pa, const void *pb, void *pctx) {
  const by_rank_t *c = pctx;
  size_t a = *(const size_t *)pa, b = *(const size_t *)pb;
  if (c->rank[a] != c->rank[b])
    return c->rank[a] < c->rank[b] ? -1 : 1;
  if (c->crowding[a] != c->crowding[b])
    return c->crowding[a] > c->crowding[b] ? -1 : 1;
  return (a > b) - (a < b);
}

static int cmp_index(const void *pa, const void *pb) {
  size_t a = *(const size_t *)pa, b = *(const size_t *)pb;
  return (a > b) - (a < b);
}

int lpq_nsga_survivors(const double *obj, const double *violation, size_t count,
                       size_t obj_count, size_t keep, size_t *chosen, lpq_error_t *err) {
  if (keep > count)
    return lpq_errorf(err, LPQ_EINVAL, "nsga survivors: keep %zu of %zu", keep, count);
  if (keep == 0)
    return 0;
  size_t *rank = malloc(count * sizeof *rank);
  double *crowding = malloc(count * sizeof *crowding);
  size_t *order = malloc(count * sizeof *order);
  int rc = LPQ_ENOMEM;
  if (!rank || !crowding || !order) {
    lpq_errorf(err, rc, "nsga survivors: out of memory for %zu solutions", count);
    goto out;
  }
  rc = lpq_nsga_rank(obj, violation, count, obj_count, rank, crowding, err);
  if (rc)
    goto out;
  for (size_t i = 0; i < count; i++)
    order[i] = i;
  by_rank_t c = {rank, crowding};
  qsort_r(order, count, sizeof *order, cmp_by_rank, &c);
  memcpy(chosen, order, keep * sizeof *chosen);
  qsort(chosen, keep, sizeof *chosen, cmp_index);
out:
  free(rank);
  free(crowding);
  free(order);
  return rc;
}

size_t lpq_nsga_tournament(lpq_rng_t *rng, const size_t *rank, const double *crowding,
                           size_t count) {
  size_t a = (size_t)lpq_rng_below(rng, count), b = (size_t)lpq_rng_below(rng, count);
  if (rank[a] != rank[b])
    return rank[a] < rank[b] ? a : b;
  if (crowding[a] != crowding[b])
    return crowding[a] > crowding[b] ? a : b;
  return a < b ? a : b;
}

static int cmp_point(const void *pa, const void *pb) {
  const double *a = pa, *b = pb;
  if (a[0] != b[0])
    return a[0] < b[0] ? -1 : 1;
  return (a[1] > b[1]) - (a[1] < b[1]);
}

double lpq_hypervolume_2d(const double *points, size_t count, const double ref[2]) {
  double *p = malloc((count ? count : 1) * 2 * sizeof *p);
  if (!p)
    return -1.0;
  size_t m = 0;
  for (size_t i = 0; i < count; i++)
    if (points[2 * i] < ref[0] && points[2 * i + 1] < ref[1]) {
      p[2 * m] = points[2 * i];
      p[2 * m + 1] = points[2 * i + 1];
      m++;
    }
  qsort(p, m, 2 * sizeof *p, cmp_point);
  /* Sweep by increasing f1: each point that lowers the best f2 adds a slab up to ref[0]. */
  double area = 0.0, best_f2 = ref[1];
  for (size_t i = 0; i < m; i++)
    if (p[2 * i + 1] < best_f2) {
      area += (ref[0] - p[2 * i]) * (best_f2 - p[2 * i + 1]);
      best_f2 = p[2 * i + 1];
    }
  free(p);
  return area;
}
