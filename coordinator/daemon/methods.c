/* coordinator/daemon/methods.c: the API methods (the schemas in schema/api/) on the daemon. */
#include "coordinator/daemon/daemon.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int64_t job_param(json_t *params) {
  return (int64_t)json_integer_value(json_object_get(params, "job"));
}

static void reply_err(lpq_api_call_t *call, const lpq_error_t *err) {
  lpq_api_reply_lpq_error(call, err); /* a damaged database page: -32020, not "bad input" */
}

void reply_job_error(lpq_api_call_t *call, int64_t job, const lpq_error_t *err) {
  if (err->code == LPQ_ENOTFOUND)
    lpq_api_reply_error(call, LPQ_API_E_JOB_NOT_FOUND, NULL, "no job %lld", (long long)job);
  else
    lpq_api_reply_lpq_error(call, err);
}

static void iso_time(double t, char *buf, size_t len) {
  time_t s = (time_t)t;
  struct tm tm;
  strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&s, &tm));
}

static json_t *time_or_null(double t) {
  if (!isfinite(t))
    return json_null();
  char b[32];
  iso_time(t, b, sizeof b);
  return json_string(b);
}

/* ---- job.list, job.get ---- */

static json_t *num_or_null(double v) { return isfinite(v) ? json_real(v) : json_null(); }

/* The validation pick's genome (pick.c) as job.get's best, or NULL when the job has none. */
static json_t *best_picked(daemon_t *d, int64_t id) {
  char chosen[17];
  pick_chosen(d, id, chosen);
  lpq_store_eval_t e;
  if (!chosen[0] || lpq_store_eval_get(d->store, id, strtoull(chosen, NULL, 16), &e, NULL) != 0)
    return NULL;
  json_t *o = json_pack("{s:s, s:s}", "genome", chosen, "chosen_by", "validation pick");
  const double v[] = {e.l_co, e.l_co_global, e.l_co_local, e.l_cr, e.mean_weight_bits,
                      e.mean_act_bits, e.top1, e.latency_s, e.energy_pj, e.edp_js};
  static const char *k[] = {"l_co", "l_co_global", "l_co_local", "l_cr", "mean_weight_bits",
                            "mean_act_bits", "top1", "latency_s", "energy_pj", "edp_js"};
  for (size_t i = 0; i < sizeof k / sizeof *k; i++)
    json_object_set_new(o, k[i], num_or_null(v[i]));
  return o;
}

/* The objective a v_best_config row is ranked by (the job's mode). */
static double best_key(const json_t *row) {
  const char *mode = json_string_value(json_object_get(row, "mode"));
  return json_number_value(json_object_get(row, mode && !strcmp(mode, "scalar") ? "l_f" : "l_co"));
}

/* The best genome as job.get shows it: v_best_config's answer, cached per job. The view reads
** every generation of the job (a quarter of a second at 100,000 individuals, on the loop, for
** each page of the dashboard and each lpqctl status); only a committed generation changes it.
** So the cached row is extended by the rows of the generations committed since (read through
** the individuals' primary key) and replaced when one of them ranks before it: later
** generations lose ties, as in the view. A generation number that went back (a replay) reads
** the job again. An answer given while the job ran is not reused once it has ended: the
** validation pick, after the last generation's commit, makes its choice the best without a new
** generation. */
static json_t *best_of(daemon_t *d, int64_t id, int64_t generation, int running) {
  best_cache_t *c = &d->best_cache[(size_t)id % DAEMON_BEST_CACHE];
  if (c->best && c->job == id && c->generation == generation && c->running == running)
    return json_incref(c->best);
  json_t *b = best_picked(d, id);
  if (c->job != id || c->generation > generation) { /* another job, or a replay: from scratch */
    json_decref(c->row);
    *c = (best_cache_t){id, -1, NULL, c->best, running};
  }
  c->running = running;
  char *text = NULL;
  if (!b && lpq_store_best_json(d->store, id, c->generation, generation, &text, NULL) == 0) {
    json_t *row = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    if (row && (!c->row || best_key(row) < best_key(c->row))) {
      json_decref(c->row);
      c->row = row;
    } else {
      json_decref(row);
    }
    c->generation = generation;
  }
  if (!b && c->row) {
    static const char *keys[] = {"genome", "l_co", "l_cr", "l_f", "mean_weight_bits",
                                 "mean_act_bits", "top1", "latency_s", "energy_pj", "edp_js",
                                 "generation"};
    b = json_object();
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
      json_object_set(b, keys[i], json_object_get(c->row, keys[i]));
  }
  if (!b)
    b = json_null();
  json_decref(c->best); /* a pick, or a failed read: asked again next time */
  c->best = c->generation == generation ? json_incref(b) : NULL;
  return b;
}

static void m_list(void *ctx, lpq_api_call_t *call, json_t *params) {
  daemon_t *d = ctx;
  lpq_store_job_t *jobs = NULL;
  size_t n = 0;
  lpq_error_t err;
  if (lpq_store_job_list(d->store, LPQ_STORE_JOBS_ALL, &jobs, &n, &err) != 0) {
    reply_err(call, &err);
    return;
  }
  json_t *want = json_object_get(params, "status");
  size_t limit = json_object_get(params, "limit") ? (size_t)json_integer_value(json_object_get(params, "limit")) : 100;
  size_t offset = (size_t)json_integer_value(json_object_get(params, "offset"));
  json_t *arr = json_array();
  size_t total = 0;
  for (size_t i = 0; i < n; i++) {
    const char *st = lpq_store_job_status_name(jobs[i].status);
    if (want) {
      int ok = 0;
      for (size_t k = 0; k < json_array_size(want) && !ok; k++)
        ok = strcmp(json_string_value(json_array_get(want, k)), st) == 0;
      if (!ok)
        continue;
    }
    total++;
    if (total <= offset || json_array_size(arr) >= limit)
      continue;
    lpq_job_settings_t js;
    lpq_job_settings_parse(jobs[i].settings, &js, NULL);
    json_t *p = job_progress_json(d, jobs[i].id, NULL);
    char created[32];
    iso_time(jobs[i].created, created, sizeof created);
    json_t *o = json_pack("{s:I, s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:I}", "job",
                          (json_int_t)jobs[i].id, "name", jobs[i].name, "status", st, "mode",
                          js.scalar ? "scalar" : "pareto", "generation",
                          (json_int_t)(jobs[i].generation >= 0 ? jobs[i].generation + 1 : 0),
                          "generations", (json_int_t)js.generations, "evaluations",
                          (json_int_t)jobs[i].evaluations_stored, "created_at", created,
                          "front_size", (json_int_t)jobs[i].front_size);
    json_object_set(o, "progress", p ? json_object_get(p, "progress") : json_real(0));
    json_object_set_new(o, "best_l_co", isfinite(jobs[i].best_l_co) ? json_real(jobs[i].best_l_co) : json_null());
    json_decref(p);
    json_array_append_new(arr, o);
  }
  lpq_store_job_list_free(&jobs, n);
  lpq_api_reply(call, json_pack("{s:o, s:I}", "jobs", arr, "total", (json_int_t)total));
}

static void m_get(void *ctx, lpq_api_call_t *call, json_t *params) {
  daemon_t *d = ctx;
  int64_t id = job_param(params);
  lpq_store_job_t sj;
  lpq_error_t err;
  if (lpq_store_job_get(d->store, id, &sj, &err) != 0) {
    reply_job_error(call, id, &err);
    return;
  }
  json_t *p = job_progress_json(d, id, &err);
  json_t *o = json_pack("{s:I, s:s, s:s}", "job", (json_int_t)id, "name", sj.name, "status",
                        lpq_store_job_status_name(sj.status));
  job_t *live = job_find(d, id);
  if (live && !live->settings_obj)
    live->settings_obj = json_loads(sj.settings, 0, NULL); /* parsed once per live job */
  json_object_set_new(o, "settings", live ? json_incref(live->settings_obj)
                                          : json_loads(sj.settings, 0, NULL));
  json_object_update(o, p);
  json_object_del(o, "final");
  json_object_del(o, "workers");
  /* "error" comes from the progress: why it failed, or why it is paused */
  json_object_set_new(o, "stop_reason", sj.status == LPQ_STORE_JOB_DONE && !strncmp(sj.message, "stopped: ", 9)
                                            ? json_string(sj.message + 9) : json_null());
  json_object_set_new(o, "created_at", time_or_null(sj.created));
  json_object_set_new(o, "started_at", time_or_null(sj.started));
  json_object_set_new(o, "finished_at", time_or_null(sj.finished));
  json_object_set_new(o, "evaluations_pending", json_integer(0));
  json_object_set_new(o, "best", best_of(d, id, sj.generation,
                                         live && !lpq_store_job_status_final(sj.status)));
  json_object_set_new(o, "pick", pick_json(d, id));
  json_decref(p);
  lpq_store_job_clear(&sj);
  lpq_api_reply(call, o);
}

/* ---- job.watch, job.cancel ---- */

static void watch_closed(void *ctx, lpq_api_sub_t *sub) {
  daemon_t *d = ((job_t *)ctx)->d;
  for (job_t *j = d->jobs; j; j = j->next)
    if (j == ctx)
      job_unwatch(j, sub);
}

static void m_watch(void *ctx, lpq_api_call_t *call, json_t *params) {
  daemon_t *d = ctx;
  int64_t id = job_param(params);
  lpq_error_t err;
  json_t *p = job_progress_json(d, id, &err);
  if (!p) {
    lpq_api_reply_error(call, LPQ_API_E_JOB_NOT_FOUND, NULL, "no job %lld", (long long)id);
    return;
  }
  job_t *j = job_find(d, id);
  if (j) {
    lpq_api_sub_t **subs = realloc(j->subs, (j->nsubs + 1) * sizeof *subs);
    lpq_api_sub_t *sub = subs ? lpq_api_subscribe(call, watch_closed, j) : NULL;
    if (subs)
      j->subs = subs;
    if (sub)
      j->subs[j->nsubs++] = sub;
  }
  lpq_api_reply(call, p);
}

static void m_cancel(void *ctx, lpq_api_call_t *call, json_t *params) {
  daemon_t *d = ctx;
  int64_t id = job_param(params);
  lpq_store_job_t sj;
  lpq_error_t err;
  if (lpq_store_job_get(d->store, id, &sj, &err) != 0) {
    reply_job_error(call, id, &err);
    return;
  }
  int was_final = lpq_store_job_status_final(sj.status);
  lpq_store_job_clear(&sj);
  if (!was_final && job_cancel(d, id, &err) != 0) {
    reply_err(call, &err);
    return;
  }
  lpq_store_job_get(d->store, id, &sj, NULL);
  json_t *o = json_pack("{s:I, s:s, s:b}", "job", (json_int_t)id, "status",
                        lpq_store_job_status_name(sj.status), "changed", !was_final);
  lpq_store_job_clear(&sj);
  lpq_api_reply(call, o);
}

/* ---- job.pareto ---- */

static void m_pareto(void *ctx, lpq_api_call_t *call, json_t *params) {
  daemon_t *d = ctx;
  int64_t id = job_param(params);
  lpq_store_job_t sj;
  lpq_error_t err;
  if (lpq_store_job_get(d->store, id, &sj, &err) != 0) {
    reply_job_error(call, id, &err);
    return;
  }
  lpq_job_settings_t js;
  lpq_job_settings_parse(sj.settings, &js, NULL);
  int64_t last = sj.generation;
  lpq_store_job_clear(&sj);
  json_t *g = json_object_get(params, "generation");
  int64_t gen = g ? (int64_t)json_integer_value(g) : last;
  if (gen < 0 || gen > last) {
    lpq_api_reply_error(call, LPQ_API_E_NOT_FOUND, NULL,
                        "job %lld has no committed generation %lld (last: %lld)", (long long)id,
                        (long long)gen, (long long)last);
    return;
  }
  /* not genome_json: the layer formats are most of a row's text, and the answer has none */
  static const char *const columns[] = {"genome", "rank", "crowding", "violation", "l_co",
                                        "l_cr", "l_f", NULL};
  lpq_store_dump_filter_t f = {.job = id, .generation_set = 1, .generation = gen,
                               .front_only = json_is_true(json_object_get(params, "front_only")),
                               .columns = columns};
  char *text = NULL;
  if (lpq_store_dump_json(d->store, "individuals", &f, &text, &err) != 0) {
    reply_err(call, &err);
    return;
  }
  json_t *rows = json_loads(text, 0, NULL), *out = json_array();
  free(text);
  size_t i;
  json_t *r;
  json_array_foreach(rows, i, r) {
    json_t *o = json_object();
    json_t *h = json_object_get(r, "genome");
    const char *hex = json_is_string(h) ? json_string_value(h) : "";
    json_object_set_new(o, "genome", json_string(hex));
    json_t *rank = json_object_get(r, "rank"), *crowd = json_object_get(r, "crowding");
    json_object_set_new(o, "rank", json_integer(json_is_integer(rank) ? json_integer_value(rank) : 0));
    json_object_set(o, "crowding", crowd ? crowd : json_null());
    json_t *viol = json_object_get(r, "violation");
    json_object_set_new(o, "feasible", json_boolean(json_is_number(viol) && json_number_value(viol) == 0));
    static const char *keys[] = {"l_co", "l_cr", "l_f"};
    for (size_t k = 0; k < 3; k++) {
      json_t *v = json_object_get(r, keys[k]);
      json_object_set_new(o, keys[k], json_real(json_is_number(v) ? json_number_value(v) : NAN));
    }
    /* the evaluation's details */
    lpq_store_eval_t e;
    uint64_t hash = strtoull(hex, NULL, 16);
    if (lpq_store_eval_get(d->store, id, hash, &e, NULL) == 0 && e.status == 0) {
      json_object_set_new(o, "mean_weight_bits", json_real(e.mean_weight_bits));
      json_object_set_new(o, "mean_act_bits", json_real(e.mean_act_bits));
      json_object_set_new(o, "top1", isfinite(e.top1) ? json_real(e.top1) : json_null());
      json_object_set_new(o, "latency_s", isfinite(e.latency_s) ? json_real(e.latency_s) : json_null());
      json_object_set_new(o, "energy_pj", isfinite(e.energy_pj) ? json_real(e.energy_pj) : json_null());
    }
    json_array_append_new(out, o);
  }
  json_decref(rows);
  lpq_api_reply(call, json_pack("{s:I, s:I, s:I, s:[s,s], s:s, s:o}", "job", (json_int_t)id,
                                "generation", (json_int_t)gen, "generations",
                                (json_int_t)(last + 1), "objectives", "l_co", "l_cr",
                                "l_cr_meaning", lpq_objective_name(js.objective),
                                "individuals", out));
}

/* ---- worker.list, blob.put, db.* ---- */

static void m_workers(void *ctx, lpq_api_call_t *call, json_t *params) {
  daemon_t *d = ctx;
  (void)params;
  lpq_worker_info_t *w = NULL;
  size_t n = 0;
  lpq_error_t err;
  if (lpq_dispatch_workers(d->pool, &w, &n, &err) != 0) {
    reply_err(call, &err);
    return;
  }
  json_t *arr = json_array();
  for (size_t i = 0; i < n; i++) {
    json_t *o = json_pack("{s:s, s:s, s:i, s:i, s:s, s:I, s:I, s:I, s:f}", "id",
                                         w[i].worker_id, "host", w[i].host, "pid", (int)w[i].pid,
                                         "threads", (int)w[i].threads, "state",
                                         w[i].running ? "busy" : "idle", "running",
                                         (json_int_t)w[i].running, "done",
                                         (json_int_t)w[i].done, "failed", (json_int_t)w[i].failed,
                                         "idle_s", w[i].idle_s);
    json_object_set_new(o, "job", w[i].job > 0 ? json_integer((json_int_t)w[i].job) : json_null());
    json_array_append_new(arr, o);
  }
  free(w);
  lpq_api_reply(call, json_pack("{s:o}", "workers", arr));
}

static void m_db_query(void *ctx, lpq_api_call_t *call, json_t *params) {
  daemon_t *d = ctx;
  const char *table = json_string_value(json_object_get(params, "table"));
  json_t *where = json_object_get(params, "where");
  lpq_store_dump_filter_t f = {0};
  json_t *lim = json_object_get(params, "limit");
  f.limit = lim ? (size_t)json_integer_value(lim) : 1000;
  if (where) {
    json_t *jv = json_object_get(where, "job");
    json_t *gv = json_object_get(where, "generation");
    if (jv)
      f.job = (int64_t)json_integer_value(jv);
    if (gv) {
      f.generation_set = 1;
      f.generation = (int64_t)json_integer_value(gv);
    }
    if (json_object_size(where) > (size_t)(jv != NULL) + (size_t)(gv != NULL)) {
      lpq_api_reply_error(call, LPQ_API_E_INVALID_PARAMS, json_pack("{s:s}", "field", "where"),
                          "where: only job and generation can be filtered on");
      return;
    }
  }
  json_t *off = json_object_get(params, "offset"), *ob = json_object_get(params, "order_by");
  json_t *want = json_object_get(params, "columns");
  f.offset = off ? (size_t)json_integer_value(off) : 0;
  f.order_by = ob ? json_string_value(ob) : NULL;
  f.descending = json_is_true(json_object_get(params, "descending"));
  const char *names[257] = {0}; /* the schema allows at most 256 */
  for (size_t k = 0; k < json_array_size(want) && k < 256; k++)
    names[k] = json_string_value(json_array_get(want, k));
  f.columns = want ? names : NULL;
  f.limit++; /* one more row tells whether there are more */
  char *text = NULL;
  lpq_error_t err;
  if (lpq_store_dump_json(d->store, table, &f, &text, &err) != 0) {
    if (err.code == LPQ_ENOTFOUND)
      lpq_api_reply_error(call, LPQ_API_E_NOT_FOUND, NULL, "%s", err.msg);
    else if (err.code == LPQ_EINVAL) /* a column the table lacks: the caller's to fix */
      lpq_api_reply_error(call, LPQ_API_E_INVALID_PARAMS, json_pack("{s:s}", "field", "columns"),
                          "%s", err.msg);
    else
      reply_err(call, &err);
    return;
  }
  json_t *rows = json_loads(text, 0, NULL), *cols = json_array(), *out = json_array();
  free(text);
  json_t *want_cols = json_object_get(params, "columns");
  size_t i;
  json_t *r;
  json_array_foreach(rows, i, r) {
    if (i + 1 >= f.limit)
      break;
    if (i == 0) {
      if (want_cols)
        json_array_extend(cols, want_cols);
      else {
        const char *k;
        json_t *v;
        json_object_foreach(r, k, v) json_array_append_new(cols, json_string(k));
      }
    }
    json_t *row = json_array();
    size_t c;
    json_t *cn;
    json_array_foreach(cols, c, cn) {
      json_t *v = json_object_get(r, json_string_value(cn));
      json_array_append(row, v ? v : json_null());
    }
    json_array_append_new(out, row);
  }
  int truncated = json_array_size(rows) >= f.limit;
  json_decref(rows);
  lpq_api_reply(call, json_pack("{s:s, s:o, s:o, s:b}", "table", table, "columns", cols, "rows",
                                out, "truncated", truncated));
}

static void m_db_tables(void *ctx, lpq_api_call_t *call, json_t *params) {
  (void)ctx, (void)params;
  static const char *t[] = {"jobs", "blobs", "evaluations", "generations", "individuals",
                            "workers", "events", "sensitivity", "picks"};
  static const char *v[] = {"v_pareto", "v_generation_stats", "v_best_config", "v_sensitivity",
                            "v_pick"};
  json_t *arr = json_array();
  for (size_t i = 0; i < sizeof t / sizeof *t; i++)
    json_array_append_new(arr, json_pack("{s:s, s:s, s:[]}", "name", t[i], "type", "table",
                                         "columns"));
  for (size_t i = 0; i < sizeof v / sizeof *v; i++)
    json_array_append_new(arr, json_pack("{s:s, s:s, s:[]}", "name", v[i], "type", "view",
                                         "columns"));
  lpq_api_reply(call, json_pack("{s:o}", "tables", arr));
}

/* ---- server.stats: the API library's counters, with the pool's and the jobs' ---- */

static void m_stats(void *ctx, lpq_api_call_t *call, json_t *params) {
  daemon_t *d = ctx;
  (void)params;
  json_t *o = lpq_api_stats(d->api);
  lpq_dispatch_stats_t ps;
  lpq_dispatch_stats(d->pool, &ps);
  json_object_set_new(
      o, "pool",
      json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "workers",
                (json_int_t)ps.workers, "slots", (json_int_t)ps.slots, "tasks_queued",
                (json_int_t)ps.tasks_queued, "tasks_running", (json_int_t)ps.tasks_running,
                "submitted", (json_int_t)ps.submitted, "completed", (json_int_t)ps.completed,
                "failed", (json_int_t)ps.failed, "retried", (json_int_t)ps.retried, "timeouts",
                (json_int_t)ps.timeouts, "workers_expired", (json_int_t)ps.workers_expired,
                "dropped_results", (json_int_t)ps.dropped_results, "bad_frames",
                (json_int_t)ps.bad_frames));
  size_t active = 0;
  for (job_t *j = d->jobs; j; j = j->next)
    active++;
  json_object_set_new(o, "jobs", json_pack("{s:I, s:I, s:b, s:o}", "active", (json_int_t)active,
                                           "results_queued", (json_int_t)d->npending, "paused",
                                           store_paused(d), "store_error",
                                           store_paused(d) ? json_string(d->store_error)
                                                           : json_null()));
  if (d->http) { /* the dashboard (--http) */
    lpq_http_stats_t hs;
    lpq_http_stats(d->http, &hs);
    json_object_set_new(o, "http", json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
                        "connections", (json_int_t)hs.connections, "streams",
                        (json_int_t)hs.streams, "accepted", (json_int_t)hs.accepted, "rejected",
                        (json_int_t)hs.rejected, "requests", (json_int_t)hs.requests,
                        "events_sent", (json_int_t)hs.events_sent, "events_replaced",
                        (json_int_t)hs.events_dropped, "status_4xx", (json_int_t)hs.status_4xx,
                        "status_5xx", (json_int_t)hs.status_5xx));
  }
  lpq_api_reply(call, o);
}

int methods_register(daemon_t *d, lpq_error_t *err) {
  static const struct {
    const char *name;
    lpq_api_handler_fn fn;
  } m[] = {{"job.submit", m_submit}, {"job.list", m_list},       {"job.get", m_get},
           {"job.watch", m_watch},   {"job.cancel", m_cancel},   {"job.pareto", m_pareto},
           {"job.export", m_export},  {"job.sensitivity", m_sensitivity},
           {"worker.list", m_workers}, {"blob.put", m_blob_put}, {"db.query", m_db_query},
           {"db.tables", m_db_tables}, {"server.stats", m_stats}};
  for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
    int rc = lpq_api_register(d->api, m[i].name, m[i].fn, d, err);
    if (rc != 0)
      return rc;
  }
  return 0;
}
