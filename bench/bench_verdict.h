/* bench/bench_verdict.h: every benchmark states each of its targets in one uniform line,
**
**   VERDICT <bench> | <target> | MET or MISSED | <figure> | <relation> <bound> <unit>
**
** and `make bench` ends with the table of those lines (scripts/bench_table.sh). A missed
** target is a verdict, not a failure: the exit status is for a benchmark that broke. */
#ifndef LPQ_BENCH_VERDICT_H
#define LPQ_BENCH_VERDICT_H

#include <stdio.h>
#include <string.h>

/* A figure as people read it: whole numbers from 1000 up, else 4 significant digits. */
__attribute__((unused)) static const char *bench_number(double x, char *buf, size_t size) {
  if (x >= 1000 || x <= -1000)
    snprintf(buf, size, "%.0f", x);
  else
    snprintf(buf, size, "%.4g", x);
  return buf;
}

/* Prints the verdict of `figure relation bound` (relation "<=", "<", ">=" or ">") and returns
** 1 when the target is met. */
__attribute__((unused)) static int bench_verdict(const char *bench, const char *target,
                                                 double figure, const char *relation,
                                                 double bound, const char *unit) {
  int met = strcmp(relation, "<=") == 0   ? figure <= bound
            : strcmp(relation, "<") == 0  ? figure < bound
            : strcmp(relation, ">=") == 0 ? figure >= bound
                                          : figure > bound;
  char f[32], b[32];
  printf("VERDICT %s | %s | %s | %s %s | %s %s %s\n", bench, target, met ? "MET" : "MISSED",
         bench_number(figure, f, sizeof f), unit, relation, bench_number(bound, b, sizeof b),
         unit);
  fflush(stdout);
  return met;
}

#endif
