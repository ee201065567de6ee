/*
** worker/daemon/evaluators.c: the evaluators lpq-worker can run, by name: one row each.
**
** >>> REGISTRATION POINT for the real evaluation (the lead's worker/daemon/eval_real.c) <<<
** eval_real.c defines
**     int lpq_eval_real_create(const char *arg, lpq_worker_evaluator_t *out, lpq_error_t *err);
** (the scoring core and accel_sim behind lpq_worker_eval_fn). Until that file exists the weak
** reference below is NULL and `lpq-worker` without --synthetic stops with "real evaluation not
** built": it never pretends with a fake score.
*/
#include "worker/daemon/worker_daemon.h"

#include <string.h>

int lpq_eval_real_create(const char *arg, lpq_worker_evaluator_t *out, lpq_error_t *err)
    __attribute__((weak));

static int synthetic_create(const char *arg, lpq_worker_evaluator_t *out, lpq_error_t *err)
{
  char *end = NULL;
  unsigned long ms = arg ? strtoul(arg, &end, 10) : 0;
  if (arg == NULL || end == arg || *end != '\0' || ms > 3600000ul)
    return lpq_errorf(err, LPQ_EINVAL, "--synthetic '%s': expected milliseconds 0..3600000",
                      arg ? arg : "");
  return lpq_synthetic_evaluator((unsigned)ms, out, err);
}

static const struct {
  const char *name;
  int (*create)(const char *arg, lpq_worker_evaluator_t *out, lpq_error_t *err);
} evaluators[] = {
    {"synthetic", synthetic_create},
    {"real", lpq_eval_real_create}, /* NULL until worker/daemon/eval_real.c is linked in */
};

int worker_evaluator_create(const char *name, const char *arg, lpq_worker_evaluator_t *out,
                            lpq_error_t *err)
{
  for (size_t i = 0; i < sizeof evaluators / sizeof evaluators[0]; i++) {
    if (strcmp(evaluators[i].name, name) != 0)
      continue;
    if (evaluators[i].create == NULL)
      return lpq_errorf(err, LPQ_EUNSUP,
                        "%s evaluation not built (worker/daemon/eval_real.c is missing); "
                        "use --synthetic MS for a synthetic score", name);
    return evaluators[i].create(arg, out, err);
  }
  return lpq_errorf(err, LPQ_EINVAL, "unknown evaluator '%s'", name);
}
