/* coordinator/search/pick.c: choosing among a search's results after it ran: the cheapest
** config within a top-1 drop of fp32 (on validation data), and the rank correlation that says
** whether L_CO orders configs as top-1 does. */
#include "coordinator/search/search.h"

#include <math.h>
#include <stdlib.h>

/* Ranks 1..n of v, ties at their mean rank. */
static void ranks(const double *v, size_t n, double *r) {
  for (size_t i = 0; i < n; i++) {
    size_t below = 0, equal = 0;
    for (size_t j = 0; j < n; j++) {
      below += v[j] < v[i];
      equal += v[j] == v[i];
    }
    r[i] = (double)below + (double)(equal + 1) / 2.0;
  }
}

double lpq_spearman(const double *x, const double *y, size_t n) {
  if (n < 3)
    return NAN;
  double *rx = malloc(2 * n * sizeof *rx);
  if (!rx)
    return NAN;
  double *ry = rx + n, mx = 0, my = 0, sxy = 0, sxx = 0, syy = 0;
  ranks(x, n, rx);
  ranks(y, n, ry);
  for (size_t i = 0; i < n; i++) {
    mx += rx[i] / (double)n;
    my += ry[i] / (double)n;
  }
  for (size_t i = 0; i < n; i++) {
    sxy += (rx[i] - mx) * (ry[i] - my);
    sxx += (rx[i] - mx) * (rx[i] - mx);
    syy += (ry[i] - my) * (ry[i] - my);
  }
  free(rx);
  return sxx > 0 && syy > 0 ? sxy / sqrt(sxx * syy) : NAN;
}


long lpq_pick_within_drop(const double *cost, const double *top1, size_t n, double top1_ref,
                          double max_drop, int *within) {
  long chosen = -1;
  int in = 0;
  for (size_t i = 0; i < n; i++) {
    if (!(top1[i] >= 0))
      continue; /* not measured */
    int ok = max_drop >= 0 && top1_ref - top1[i] <= max_drop;
    int better = chosen < 0 || (ok && (!in || cost[i] < cost[chosen])) ||
                 (!ok && !in && top1[i] > top1[chosen]);
    if (better) {
      chosen = (long)i;
      in = ok;
    }
  }
  if (within)
    *within = in;
  return chosen;
}

long lpq_pick_within_se(const double *top1, size_t n, size_t samples) {
  double best = -1;
  for (size_t i = 0; i < n; i++)
    if (top1[i] >= 0 && top1[i] > best)
      best = top1[i];
  if (best < 0 || samples == 0)
    return -1;
  double se = sqrt(best * (1 - best) / (double)samples);
  for (size_t i = 0; i < n; i++)
    if (top1[i] >= 0 && top1[i] >= best - se)
      return (long)i;
  return -1;
}
