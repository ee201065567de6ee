/*
** worker/pool_synthetic.c: the synthetic evaluator: a score computed from the genome alone
** after an optional sleep, so the pool can be tested and benchmarked without a model.
*/
#include "worker/worker.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void lpq_synthetic_score(const lpq_task_t *task, lpq_result_t *out)
{
  double inv_w = 0, inv_a = 0, bits_w = 0, bits_a = 0;
  for (size_t i = 0; i < task->layer_count; i++) {
    const lp_format_t *w = &task->layers[i].weight, *a = &task->layers[i].act;
    inv_w += w->n ? 1.0 / w->n : 0;
    inv_a += a->n ? 1.0 / a->n : 0;
    bits_w += w->n ? w->n : 32;
    bits_a += a->n ? a->n : 32;
  }
  size_t n = task->layer_count ? task->layer_count : 1;
  out->l_co_global = inv_w;
  out->l_co_local = inv_a;
  out->l_co = inv_w + inv_a;
  out->mean_weight_bits = bits_w / (double)n;
  out->mean_act_bits = bits_a / (double)n;
  out->l_cr = out->mean_weight_bits / 32;
  out->latency_s = 1e-6 * (out->mean_weight_bits + out->mean_act_bits);
  out->energy_pj = 100 * out->mean_weight_bits * out->mean_act_bits;
  out->edp_js = out->latency_s * out->energy_pj * 1e-12;
}

static int synthetic_eval(void *ctx, const lpq_task_t *task, const char *model_path,
                          const char *data_path, const char *labels_path, lpq_result_t *out,
                          lpq_error_t *err)
{
  (void)model_path, (void)data_path, (void)labels_path;
  unsigned ms = (unsigned)(uintptr_t)ctx;
  if (ms > 0) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
      ;
  }
  if (task->settings_json != NULL && strstr(task->settings_json, "\"synthetic_fail\":true"))
    return lpq_errorf(err, LPQ_EINVAL, "synthetic failure requested by task %llu",
                      (unsigned long long)task->task_id);
  lpq_synthetic_score(task, out);
  return 0;
}

int lpq_synthetic_evaluator(unsigned sleep_ms, lpq_worker_evaluator_t *out, lpq_error_t *err)
{
  if (sleep_ms > 3600u * 1000u)
    return lpq_errorf(err, LPQ_EINVAL, "synthetic: %u ms is more than an hour", sleep_ms);
  out->name = "synthetic";
  out->eval = synthetic_eval;
  out->ctx = (void *)(uintptr_t)sleep_ms;
  out->free_ctx = NULL;
  return 0;
}
