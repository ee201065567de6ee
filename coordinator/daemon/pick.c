/* coordinator/daemon/pick.c: the accuracy-aware pick (issue 13, item 5). A job submitted with
** a validation set (val_data, val_labels) does not end when its search stops: its final front
** (feasible and non-dominated over the whole archive, by increasing L_CO) and the all-fp32
** genome are dispatched to the pool as "top1" tasks on the validation blobs (settings.eval =
** "top1": the worker scores top-1 over every validation sample), and once all are back the pick
** is made: the cheapest (lowest L_CR) member within settings.constraints.top1_drop_max points
** of fp32's validation top-1, or without a drop the lowest L_CO within one standard error of the
** highest. The rows go to the picks table (schema/store_v3.sql), with Spearman's correlation of
** L_CO and validation top-1 over the front in the job's events; job.get's best and job.export
** then take the chosen genome. A coordinator restarted during the pick replays the search and
** picks again. */
#include "coordinator/daemon/daemon.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void pick_release(job_t *j) {
  free(j->pick_genomes);
  free(j->pick_refs);
  free(j->pick_top1);
  free(j->pick_index);
  free(j->pick_settings);
  j->pick_genomes = NULL;
  j->pick_refs = NULL;
  j->pick_top1 = NULL;
  j->pick_index = NULL;
  j->pick_settings = NULL;
  j->pick_count = j->pick_told = 0;
}

/* The job's settings for its validation tasks: eval "top1" on the validation blobs. */
static char *pick_settings(const job_t *j) {
  lpq_job_settings_t v = j->js;
  v.eval_top1 = 1;
  memcpy(v.data, v.val_data, sizeof v.data);
  memcpy(v.labels, v.val_labels, sizeof v.labels);
  return lpq_job_settings_json(&v);
}

int pick_start(job_t *j, const char *stop_message) {
  daemon_t *d = j->d;
  lpq_error_t err = {0};
  size_t *idx = NULL, count = 0;
  if (!j->js.val_data[0] || !j->search)
    return 0;
  if (lpq_search_front(j->search, &idx, &count, &err) != 0 || count == 0) {
    free(idx);
    return 0; /* nothing feasible: the job ends as it would without a validation set */
  }
  const size_t n = 1 + count; /* 0: all fp32 */
  j->pick_genomes = calloc(n * j->nl, sizeof *j->pick_genomes);
  j->pick_refs = calloc(n, sizeof *j->pick_refs);
  j->pick_top1 = malloc(n * sizeof *j->pick_top1);
  j->pick_index = idx;
  j->pick_settings = pick_settings(j);
  if (!j->pick_genomes || !j->pick_refs || !j->pick_top1 || !j->pick_settings) {
    pick_release(j);
    daemon_log(d, 0, "job %lld: no validation pick: out of memory", (long long)j->id);
    return 0;
  }
  j->pick_count = n;
  snprintf(j->pick_stop, sizeof j->pick_stop, "%s", stop_message);
  for (size_t i = 0; i < count; i++) {
    lpq_search_record_t r;
    lpq_search_archive_get(j->search, idx[i], &r);
    memcpy(j->pick_genomes + (1 + i) * j->nl, r.genome, j->nl * sizeof *r.genome);
  }
  for (size_t i = 0; i < n; i++) {
    j->pick_top1[i] = NAN;
    lpq_task_t t;
    job_task(j, j->pick_genomes + i * j->nl, &t);
    memcpy(t.data_hash, j->js.val_data, sizeof t.data_hash);
    memcpy(t.labels_hash, j->js.val_labels, sizeof t.labels_hash);
    t.settings_json = j->pick_settings;
    j->pick_refs[i] = (task_ref_t){.job = j, .index = i, .pick = 1};
    uint64_t task_id;
    if (lpq_dispatch_submit(d->pool, &t, &j->pick_refs[i], &task_id, &err) != 0) {
      lpq_dispatch_cancel_job(d->pool, j->id);
      pick_release(j);
      daemon_log(d, 0, "job %lld: no validation pick: %s", (long long)j->id, err.msg);
      return 0;
    }
  }
  char msg[96];
  snprintf(msg, sizeof msg, "validation pick: fp32 and %zu front members dispatched", count);
  lpq_store_event_append(d->store, j->id, LPQ_STORE_INFO, msg, NULL, NULL);
  daemon_log(d, 2, "job %lld: %s", (long long)j->id, msg);
  notify_watchers(j);
  return 1;
}

/* Every result is back: the pick into the store, then the job ends. */
static void pick_finish(job_t *j) {
  daemon_t *d = j->d;
  const size_t count = j->pick_count - 1;
  lpq_store_pick_t *rows = calloc(j->pick_count, sizeof *rows);
  double *cost = malloc(3 * count * sizeof *cost);
  lpq_error_t err = {0};
  char rule[160] = "", msg[LPQ_STORE_TEXT_MAX + 64];
  int rc = rows && cost ? 0 : lpq_errorf(&err, LPQ_ENOMEM, "out of memory");
  long chosen = -1;
  double fp = j->pick_top1[0], rho = NAN;
  if (rc == 0) {
    double *top1 = cost + count, *lco = cost + 2 * count;
    for (size_t i = 0; i < count; i++) {
      lpq_search_record_t r;
      lpq_search_archive_get(j->search, j->pick_index[i], &r);
      cost[i] = r.result.l_cr;
      lco[i] = r.result.l_co;
      top1[i] = isfinite(j->pick_top1[1 + i]) ? j->pick_top1[1 + i] : -1;
      rows[1 + i] = (lpq_store_pick_t){.member = (int64_t)i, .l_co = r.result.l_co,
                                       .l_cr = r.result.l_cr, .top1_val = j->pick_top1[1 + i],
                                       .mean_weight_bits = NAN};
      snprintf(rows[1 + i].genome, sizeof rows[1 + i].genome, "%016llx",
               (unsigned long long)r.hash);
      lpq_store_eval_t e; /* its mean weight bits, as the evaluation stored them */
      if (lpq_store_eval_get(d->store, j->id, r.hash, &e, NULL) == 0)
        rows[1 + i].mean_weight_bits = e.mean_weight_bits;
    }
    rows[0] = (lpq_store_pick_t){.member = -1, .top1_val = fp, .l_co = NAN, .l_cr = NAN,
                                 .mean_weight_bits = NAN};
    int within = 0;
    if (j->js.top1_drop_max > 0 && isfinite(fp)) {
      chosen = lpq_pick_within_drop(cost, top1, count, fp, j->js.top1_drop_max / 100, &within);
      snprintf(rule, sizeof rule, within ? "the cheapest within %g points of fp32 on validation"
                                         : "none within %g points of fp32: the highest validation top-1",
               j->js.top1_drop_max);
    } else {
      chosen = lpq_pick_within_se(top1, count, j->val_samples);
      snprintf(rule, sizeof rule, "the lowest L_CO within one standard error of the highest "
               "validation top-1");
    }
    if (chosen >= 0)
      rows[1 + chosen].chosen = 1;
    size_t k = 0; /* Spearman over the members measured */
    for (size_t i = 0; i < count; i++)
      if (top1[i] >= 0) {
        cost[k] = lco[i];
        lco[k++] = top1[i];
      }
    rho = lpq_spearman(cost, lco, k);
    rc = lpq_store_pick_put(d->store, j->id, rows, j->pick_count, rule, &err);
  }
  if (rc == 0 && chosen >= 0)
    snprintf(msg, sizeof msg, "validation pick: member %ld (genome %s), top-1 %.2f%% against "
             "fp32 %.2f%%: %s; Spearman of L_CO and top-1 over the front %.3f", chosen,
             rows[1 + chosen].genome, 100 * j->pick_top1[1 + chosen], 100 * fp, rule, rho);
  else
    snprintf(msg, sizeof msg, "validation pick not made: %s",
             rc ? err.msg : "no front member was scored");
  lpq_store_event_append(d->store, j->id, rc == 0 && chosen >= 0 ? LPQ_STORE_INFO : LPQ_STORE_WARN,
                         msg, NULL, NULL);
  daemon_log(d, 2, "job %lld: %s", (long long)j->id, msg);
  free(rows);
  free(cost);
  char stop[sizeof j->pick_stop];
  snprintf(stop, sizeof stop, "%s", j->pick_stop);
  pick_release(j);
  job_end(j, LPQ_STORE_JOB_DONE, stop);
}

void pick_on_result(job_t *j, size_t index, const lpq_result_t *r) {
  if (index >= j->pick_count)
    return;
  if (r->status == 0)
    j->pick_top1[index] = r->top1;
  if (++j->pick_told == j->pick_count)
    pick_finish(j);
}

void pick_free(job_t *j) { pick_release(j); }

void pick_chosen(daemon_t *d, int64_t job, char hex[17]) {
  lpq_store_pick_t *rows = NULL;
  size_t n = 0;
  hex[0] = 0;
  if (lpq_store_pick_get(d->store, job, &rows, &n, NULL, NULL) != 0)
    return;
  for (size_t i = 0; i < n; i++)
    if (rows[i].chosen && rows[i].member >= 0)
      snprintf(hex, 17, "%s", rows[i].genome);
  free(rows);
}

json_t *pick_json(daemon_t *d, int64_t job) {
  lpq_store_pick_t *rows = NULL;
  size_t n = 0;
  char rule[LPQ_STORE_TEXT_MAX];
  if (lpq_store_pick_get(d->store, job, &rows, &n, rule, NULL) != 0)
    return json_null();
  json_t *o = json_pack("{s:s, s:I}", "rule", rule, "members", (json_int_t)(n ? n - 1 : 0));
  double *x = malloc(2 * (n ? n : 1) * sizeof *x);
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    const lpq_store_pick_t *r = &rows[i];
    if (r->member < 0 && isfinite(r->top1_val))
      json_object_set_new(o, "top1_val_fp32", json_real(100 * r->top1_val));
    if (r->member >= 0 && r->chosen) {
      json_object_set_new(o, "genome", json_string(r->genome));
      json_object_set_new(o, "member", json_integer((json_int_t)r->member));
      json_object_set_new(o, "top1_val", isfinite(r->top1_val) ? json_real(100 * r->top1_val)
                                                                 : json_null());
    }
    if (x && r->member >= 0 && isfinite(r->top1_val)) {
      x[k] = r->l_co;
      x[n + k++] = r->top1_val;
    }
  }
  double rho = NAN;
  if (x) {
    memmove(x + k, x + n, k * sizeof *x);
    rho = lpq_spearman(x, x + k, k);
  }
  json_object_set_new(o, "spearman_l_co_top1", isfinite(rho) ? json_real(rho) : json_null());
  free(x);
  free(rows);
  return o;
}
