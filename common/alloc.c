/* common/alloc.c: per-layer weight widths from a sensitivity matrix under a mean-bits budget
** (issue 13, item 3), as HAWQ-style tools allocate bits. It is a multiple-choice knapsack:
** each layer picks one width, its "weight" is the layer's weight count times the width, its
** cost the matrix cell, and the budget bounds the weighted mean. Solved exactly by dynamic
** programming over the budget, not greedily: the rise of L_CO is not convex in the width (a
** layer can be flat from 8 down to 4 bits and fall off a cliff at 3), where greedy marginal
** gains per bit are known to miss the optimum. Weight counts are in units of 1/S of the total
** (S = the total itself when small: exact), rounded up, so the budget always holds. */
#include "common/common.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ALLOC_CELLS_MAX ((size_t)1 << 24) /* choice table bound: 16 MiB */

int lpq_alloc_bits(size_t n, const double *cost, const size_t *weights, const int *pins, int lo,
                   int hi, double budget, int *bits, lpq_error_t *err) {
  if (n == 0 || !cost || !weights || !bits || lo < 1 || hi < lo || hi > 32 || !isfinite(budget))
    return lpq_errorf(err, LPQ_EINVAL, "alloc: bad arguments (layers %zu, widths %d..%d, "
                      "budget %g)", n, lo, hi, budget);
  const size_t widths = (size_t)(hi - lo + 1);
  double total = 0, fixed = 0; /* weight elements; bits of the pinned layers */
  size_t nfree = 0;
  for (size_t l = 0; l < n; l++) {
    if (pins && pins[l] > 32)
      return lpq_errorf(err, LPQ_EINVAL, "alloc: layer %zu pinned at %d bits", l, pins[l]);
    total += (double)weights[l];
    if (pins && pins[l] > 0)
      fixed += (double)weights[l] * pins[l];
    else
      nfree++;
  }
  if (total <= 0)
    return lpq_errorf(err, LPQ_EINVAL, "alloc: the layers hold no weights");
  /* bits above lo that the free layers may spend, in units of total / S */
  double spare = budget * total - fixed, free_w = 0;
  for (size_t l = 0; l < n; l++)
    if (!(pins && pins[l] > 0))
      free_w += (double)weights[l];
  spare -= free_w * lo;
  if (spare < -1e-9 * total)
    return lpq_errorf(err, LPQ_ERANGE, "alloc: a mean of %g bits is below what the pins and %d "
                      "bits for every other layer need (%g)", budget, lo, (fixed + free_w * lo) / total);
  const size_t span = (size_t)(hi - lo), per = ALLOC_CELLS_MAX / (nfree ? nfree : 1);
  double S = total; /* units per total weight */
  if (span > 0 && S * (double)span + (double)(nfree * span) + 1 > (double)per)
    S = floor(((double)per - 1) / (double)span) - (double)nfree;
  if (S < 1)
    S = 1;
  size_t *units = malloc(n * sizeof *units), all_hi = 0;
  if (!units)
    return lpq_errorf(err, LPQ_ENOMEM, "alloc: out of memory");
  for (size_t l = 0; l < n; l++) {
    units[l] = (size_t)ceil((double)weights[l] * S / total - 1e-9);
    if (!(pins && pins[l] > 0))
      all_hi += units[l] * span;
  }
  size_t cap = spare <= 0 ? 0 : (size_t)floor(spare * S / total + 1e-9);
  if (cap > all_hi)
    cap = all_hi; /* every free layer at hi fits: the budget does not bind */
  double *best = malloc((cap + 1) * sizeof *best), *next = malloc((cap + 1) * sizeof *next);
  uint8_t *choice = malloc((nfree ? nfree : 1) * (cap + 1));
  if (!best || !next || !choice) {
    free(best), free(next), free(choice), free(units);
    return lpq_errorf(err, LPQ_ENOMEM, "alloc: out of memory");
  }
  /* best[c]: least cost of the free layers so far spending at most c units */
  for (size_t c = 0; c <= cap; c++)
    best[c] = 0;
  size_t k = 0;
  for (size_t l = 0; l < n; l++) {
    if (pins && pins[l] > 0)
      continue;
    for (size_t c = 0; c <= cap; c++) {
      double v = INFINITY;
      uint8_t pick = 0;
      for (size_t b = 0; b < widths; b++) {
        size_t use = units[l] * b;
        if (use > c)
          break;
        double x = cost[l * widths + b];
        x = isnan(x) ? INFINITY : x; /* a failed cell is never chosen when another fits */
        double t = best[c - use] + x;
        if (t < v || (v == INFINITY && b == 0)) {
          v = t;
          pick = (uint8_t)b;
        }
      }
      next[c] = v;
      choice[k * (cap + 1) + c] = pick;
    }
    memcpy(best, next, (cap + 1) * sizeof *best);
    k++;
  }
  /* walk back from the whole budget */
  size_t c = cap;
  for (size_t l = n; l-- > 0;) {
    if (pins && pins[l] > 0) {
      bits[l] = pins[l];
      continue;
    }
    uint8_t pick = choice[--k * (cap + 1) + c];
    bits[l] = lo + pick;
    c -= units[l] * pick;
  }
  free(best), free(next), free(choice), free(units);
  return 0;
}
