/* common/job.c: a search job's settings, as JSON text (what job.submit carries, what the store
** keeps, what `lpq search` builds from its flags), with defaults and checks that name the field. */
#include "common/common.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const objective_names[] = {"bits", "latency", "energy", "edp"};

const char *lpq_objective_name(lpq_objective_t o) {
  return (unsigned)o < 4 ? objective_names[o] : "?";
}

static const char *const local_terms_names[] = {"exact", "projected", "pooled"};

const char *lpq_local_terms_name(int m) {
  return m >= 0 && m < 3 ? local_terms_names[m] : NULL;
}

void lpq_job_settings_default(lpq_job_settings_t *s) {
  memset(s, 0, sizeof *s);
  s->seed = 1;
  s->lambda = 1.0;
  s->population = 40;
  s->siblings = 2;
  s->generations = 20;
  s->objective = LPQ_OBJ_BITS;
  s->calib = 256;
  s->temperature = 0.5;
  s->norm_std = 1.0;
  s->n_min = 2;
  s->n_max = 8;
  s->es_min = 0;
  s->es_max = 3;
  s->sf_window = 4;
}

/* Field readers: absent keeps the default; present must have the right type and range. */
static int get_num(json_t *o, const char *k, double lo, double hi, double *v, lpq_error_t *err) {
  json_t *x = json_object_get(o, k);
  if (!x)
    return 0;
  if (!json_is_number(x) || !(json_number_value(x) >= lo && json_number_value(x) <= hi))
    return lpq_errorf(err, LPQ_EINVAL, "settings.%s: expected a number in %g..%g", k, lo, hi);
  *v = json_number_value(x);
  return 0;
}

static int get_size(json_t *o, const char *k, size_t lo, size_t hi, size_t *v, lpq_error_t *err) {
  json_t *x = json_object_get(o, k);
  if (!x)
    return 0;
  if (!json_is_integer(x) || json_integer_value(x) < (json_int_t)lo ||
      json_integer_value(x) > (json_int_t)hi)
    return lpq_errorf(err, LPQ_EINVAL, "settings.%s: expected an integer in %zu..%zu", k, lo, hi);
  *v = (size_t)json_integer_value(x);
  return 0;
}

static int get_bool(json_t *o, const char *k, int *v, lpq_error_t *err) {
  json_t *x = json_object_get(o, k);
  if (!x)
    return 0;
  if (!json_is_boolean(x))
    return lpq_errorf(err, LPQ_EINVAL, "settings.%s: expected true or false", k);
  *v = json_is_true(x);
  return 0;
}

static int get_range(json_t *o, const char *k, int lo, int hi, int *a, int *b, lpq_error_t *err) {
  json_t *x = json_object_get(o, k);
  if (!x)
    return 0;
  if (!json_is_array(x) || json_array_size(x) != 2 || !json_is_integer(json_array_get(x, 0)) ||
      !json_is_integer(json_array_get(x, 1)))
    return lpq_errorf(err, LPQ_EINVAL, "settings.%s: expected [low, high]", k);
  json_int_t l = json_integer_value(json_array_get(x, 0)), h = json_integer_value(json_array_get(x, 1));
  if (l < lo || h > hi || l > h)
    return lpq_errorf(err, LPQ_EINVAL, "settings.%s: [%lld, %lld] is not within %d..%d", k,
                      (long long)l, (long long)h, lo, hi);
  *a = (int)l;
  *b = (int)h;
  return 0;
}

static int get_hash(json_t *o, const char *k, char out[65], lpq_error_t *err) {
  json_t *x = json_object_get(o, k);
  if (!x || json_is_null(x))
    return 0;
  const char *s = json_string_value(x);
  size_t n = s ? strlen(s) : 0;
  int ok = n == 64;
  for (size_t i = 0; ok && i < n; i++)
    ok = (s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f');
  if (!ok)
    return lpq_errorf(err, LPQ_EINVAL, "settings.%s: expected a blob hash (64 lowercase hex digits)", k);
  memcpy(out, s, 65);
  return 0;
}

int lpq_job_settings_parse(const char *json, lpq_job_settings_t *s, lpq_error_t *err) {
  lpq_job_settings_default(s);
  json_error_t jerr;
  json_t *o = json_loads(json ? json : "{}", JSON_REJECT_DUPLICATES, &jerr);
  if (!o)
    return lpq_errorf(err, LPQ_EFORMAT, "settings: line %d: %s", jerr.line, jerr.text);
  int rc = 0;
  static const char *const known[] = {
      "model", "data", "labels", "seed", "mode", "lambda", "population", "siblings",
      "generations", "max_evaluations", "max_seconds", "patience", "objective", "constraints",
      "calib", "temperature", "norm", "bits", "act_bits", "es", "sf_window", "weight_sf",
      "weight_only", "pin_ends", "bias_correction", "sensitivity", "name", "val_data",
      "val_labels", "eval", "local_terms", "local_dim"};
  const char *key;
  json_t *v;
  if (!json_is_object(o)) {
    rc = lpq_errorf(err, LPQ_EFORMAT, "settings: expected a JSON object");
    goto done;
  }
  json_object_foreach(o, key, v) {
    size_t i = 0;
    while (i < sizeof known / sizeof known[0] && strcmp(known[i], key) != 0)
      i++;
    if (i == sizeof known / sizeof known[0]) {
      rc = lpq_errorf(err, LPQ_EINVAL, "settings: unknown field '%s'", key);
      goto done;
    }
  }
  double seed = 1, calib = 0;
  json_t *mode = json_object_get(o, "mode"), *obj = json_object_get(o, "objective");
  if ((rc = get_hash(o, "model", s->model, err)) || (rc = get_hash(o, "data", s->data, err)) ||
      (rc = get_hash(o, "labels", s->labels, err)) ||
      (rc = get_hash(o, "val_data", s->val_data, err)) ||
      (rc = get_hash(o, "val_labels", s->val_labels, err)) ||
      (rc = get_num(o, "seed", 0, 9007199254740991.0, &seed, err)) ||
      (rc = get_num(o, "lambda", -16, 16, &s->lambda, err)) ||
      (rc = get_size(o, "population", 4, 100000, &s->population, err)) ||
      (rc = get_size(o, "siblings", 0, 64, &s->siblings, err)) ||
      (rc = get_size(o, "generations", 0, 1000000, &s->generations, err)) ||
      (rc = get_size(o, "max_evaluations", 0, 1000000000, &s->max_evaluations, err)) ||
      (rc = get_num(o, "max_seconds", 0, 1e9, &s->max_seconds, err)) ||
      (rc = get_size(o, "patience", 0, 1000000, &s->patience, err)) ||
      (rc = get_num(o, "calib", 2, 65536, &calib, err)) ||
      (rc = get_num(o, "temperature", 1e-6, 1e6, &s->temperature, err)) ||
      (rc = get_range(o, "bits", 2, 8, &s->n_min, &s->n_max, err)) ||
      (rc = get_range(o, "act_bits", 2, 16, &s->act_n_min, &s->act_n_max, err)) ||
      (rc = get_range(o, "es", 0, 4, &s->es_min, &s->es_max, err)) ||
      (rc = get_bool(o, "weight_only", &s->weight_only, err)) ||
      (rc = get_bool(o, "pin_ends", &s->pin_ends, err)) ||
      (rc = get_bool(o, "bias_correction", &s->bias_correction, err)) ||
      (rc = get_bool(o, "sensitivity", &s->sensitivity, err)) ||
      (rc = get_size(o, "local_dim", 1, (size_t)1 << 20, &s->local_dim, err)))
    goto done;
  json_t *lt = json_object_get(o, "local_terms");
  if (lt) {
    const char *m = json_string_value(lt);
    int k = 0;
    while (k < 3 && !(m && strcmp(m, local_terms_names[k]) == 0))
      k++;
    if (k == 3) {
      rc = lpq_errorf(err, LPQ_EINVAL,
                      "settings.local_terms: expected \"exact\", \"projected\" or \"pooled\"");
      goto done;
    }
    s->local_terms = k;
  }
  double window = s->sf_window;
  if ((rc = get_num(o, "sf_window", 0, 64, &window, err)))
    goto done;
  s->sf_window = (int)window;
  json_t *wsf = json_object_get(o, "weight_sf");
  if (wsf) {
    static const char *const modes[] = {"tensor", "channel", "search"};
    const char *m = json_string_value(wsf);
    int k = 0;
    while (k < 3 && !(m && strcmp(m, modes[k]) == 0))
      k++;
    if (k == 3) {
      rc = lpq_errorf(err, LPQ_EINVAL,
                      "settings.weight_sf: expected \"tensor\", \"channel\" or \"search\"");
      goto done;
    }
    s->weight_sf = k;
  }
  json_t *ev = json_object_get(o, "eval");
  if (ev) {
    const char *m = json_string_value(ev);
    if (!m || (strcmp(m, "top1") != 0 && strcmp(m, "score") != 0)) {
      rc = lpq_errorf(err, LPQ_EINVAL, "settings.eval: expected \"score\" or \"top1\"");
      goto done;
    }
    s->eval_top1 = strcmp(m, "top1") == 0;
  }
  s->seed = (uint64_t)seed;
  if (json_object_get(o, "calib"))
    s->calib = (size_t)calib;
  if (mode) {
    const char *m = json_string_value(mode);
    if (m && strcmp(m, "pareto") == 0)
      s->scalar = 0;
    else if (m && strcmp(m, "scalar") == 0)
      s->scalar = 1;
    else {
      rc = lpq_errorf(err, LPQ_EINVAL, "settings.mode: expected \"pareto\" or \"scalar\"");
      goto done;
    }
  }
  if (obj) {
    const char *m = json_string_value(obj);
    size_t i = 0;
    while (m && i < 4 && strcmp(m, objective_names[i]) != 0)
      i++;
    if (!m || i == 4) {
      rc = lpq_errorf(err, LPQ_EINVAL,
                      "settings.objective: expected \"bits\", \"latency\", \"energy\" or \"edp\"");
      goto done;
    }
    s->objective = (lpq_objective_t)i;
  }
  json_t *norm = json_object_get(o, "norm");
  if (norm) {
    if (!json_is_array(norm) || json_array_size(norm) != 2 ||
        !json_is_number(json_array_get(norm, 0)) || !json_is_number(json_array_get(norm, 1)) ||
        !(json_number_value(json_array_get(norm, 1)) > 0)) {
      rc = lpq_errorf(err, LPQ_EINVAL, "settings.norm: expected [mean, std] with std > 0");
      goto done;
    }
    s->norm_mean = json_number_value(json_array_get(norm, 0));
    s->norm_std = json_number_value(json_array_get(norm, 1));
  }
  json_t *c = json_object_get(o, "constraints");
  if (c) {
    if (!json_is_object(c)) {
      rc = lpq_errorf(err, LPQ_EINVAL, "settings.constraints: expected an object");
      goto done;
    }
    json_object_foreach(c, key, v) {
      double *dst = strcmp(key, "mean_weight_bits_max") == 0 ? &s->max_weight_bits
                    : strcmp(key, "act_bits_max") == 0       ? &s->max_act_bits
                    : strcmp(key, "latency_s_max") == 0      ? &s->max_latency_s
                    : strcmp(key, "top1_drop_max") == 0      ? &s->top1_drop_max
                                                              : NULL;
      if (!dst) {
        rc = lpq_errorf(err, LPQ_EINVAL, "settings.constraints: unknown constraint '%s' (known: "
                        "mean_weight_bits_max, act_bits_max, latency_s_max, top1_drop_max)", key);
        goto done;
      }
      if (!json_is_number(v) || !(json_number_value(v) > 0)) {
        rc = lpq_errorf(err, LPQ_EINVAL, "settings.constraints.%s: expected a number > 0", key);
        goto done;
      }
      *dst = json_number_value(v);
    }
  }
  if (s->top1_drop_max > 100 || (!s->val_data[0] != !s->val_labels[0])) {
    rc = lpq_errorf(err, LPQ_EINVAL, s->top1_drop_max > 100
                    ? "settings.constraints.top1_drop_max: expected points of top-1 in 0..100"
                    : "settings: val_data and val_labels go together");
    goto done;
  }
  if (s->act_n_min == 0 && s->act_n_max == 0) {
    s->act_n_min = s->n_min;
    s->act_n_max = s->n_max;
  }
done:
  json_decref(o);
  return rc;
}

char *lpq_job_settings_json(const lpq_job_settings_t *s) {
  json_t *o = json_pack("{s:I, s:s, s:f, s:I, s:I, s:I, s:I, s:f, s:I, s:s, s:I, s:f, s:[f,f],"
                        " s:[i,i], s:[i,i], s:[i,i], s:i, s:b, s:b}",
                        "seed", (json_int_t)s->seed, "mode", s->scalar ? "scalar" : "pareto",
                        "lambda", s->lambda, "population", (json_int_t)s->population,
                        "siblings", (json_int_t)s->siblings, "generations",
                        (json_int_t)s->generations, "max_evaluations",
                        (json_int_t)s->max_evaluations, "max_seconds", s->max_seconds,
                        "patience", (json_int_t)s->patience, "objective",
                        lpq_objective_name(s->objective), "calib", (json_int_t)s->calib,
                        "temperature", s->temperature, "norm", s->norm_mean, s->norm_std, "bits",
                        s->n_min, s->n_max, "act_bits", s->act_n_min, s->act_n_max, "es",
                        s->es_min, s->es_max, "sf_window", s->sf_window, "weight_only",
                        s->weight_only, "pin_ends", s->pin_ends);
  if (!o)
    return NULL;
  if (s->bias_correction) /* absent: off, as jobs stored before it */
    json_object_set_new(o, "bias_correction", json_true());
  if (s->weight_sf != LPQ_SF_TENSOR) /* absent: per tensor, as jobs stored before it */
    json_object_set_new(o, "weight_sf",
                        json_string(s->weight_sf == LPQ_SF_CHANNEL ? "channel" : "search"));
  if (s->sensitivity) /* only when set: the canonical text of older jobs stays as it was */
    json_object_set_new(o, "sensitivity", json_true());
  if (s->local_terms) /* absent: exact, as jobs stored before it */
    json_object_set_new(o, "local_terms", json_string(lpq_local_terms_name(s->local_terms)));
  if (s->local_dim)
    json_object_set_new(o, "local_dim", json_integer((json_int_t)s->local_dim));
  if (s->model[0])
    json_object_set_new(o, "model", json_string(s->model));
  if (s->data[0])
    json_object_set_new(o, "data", json_string(s->data));
  if (s->labels[0])
    json_object_set_new(o, "labels", json_string(s->labels));
  if (s->val_data[0]) /* the validation set, when given (older jobs' text stays as it was) */
    json_object_set_new(o, "val_data", json_string(s->val_data));
  if (s->val_labels[0])
    json_object_set_new(o, "val_labels", json_string(s->val_labels));
  if (s->eval_top1)
    json_object_set_new(o, "eval", json_string("top1"));
  json_t *c = json_object();
  if (s->max_weight_bits > 0)
    json_object_set_new(c, "mean_weight_bits_max", json_real(s->max_weight_bits));
  if (s->max_act_bits > 0)
    json_object_set_new(c, "act_bits_max", json_real(s->max_act_bits));
  if (s->max_latency_s > 0)
    json_object_set_new(c, "latency_s_max", json_real(s->max_latency_s));
  if (s->top1_drop_max > 0)
    json_object_set_new(c, "top1_drop_max", json_real(s->top1_drop_max));
  json_object_set_new(o, "constraints", c);
  char *text = json_dumps(o, JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
  json_decref(o);
  return text;
}

size_t lpq_job_constraint_count(const lpq_job_settings_t *s) {
  return (size_t)(s->max_weight_bits > 0) + (size_t)(s->max_act_bits > 0) +
         (size_t)(s->max_latency_s > 0);
}

void lpq_job_constraints(const lpq_job_settings_t *s, double mean_weight_bits, int max_act_bits,
                         double latency_s, double *g) {
  size_t k = 0;
  if (s->max_weight_bits > 0)
    g[k++] = mean_weight_bits - s->max_weight_bits;
  if (s->max_act_bits > 0)
    g[k++] = (double)max_act_bits - s->max_act_bits;
  if (s->max_latency_s > 0)
    g[k++] = isfinite(latency_s) ? latency_s - s->max_latency_s : INFINITY;
}
