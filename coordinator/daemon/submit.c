/* coordinator/daemon/submit.c: job.submit and blob.put, the methods that take files. What is
** slow in them (reading a file given by path, decoding and hashing an upload, writing its blob
** file, loading the model and data to check them) runs on libuv's work queue, so one request
** never holds the loop that serves the API, the heartbeats and the workers; the loop only checks
** the request, records the blob rows and the job. Only regular files are read, bounded by
** --max-blob-mb before and while reading; paths are honoured only for clients of the Unix socket
** running as the coordinator's user (or root), others upload. A refused upload's blob file is
** removed again. */
#include "coordinator/daemon/daemon.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { UP_NONE, UP_PATH, UP_BASE64, UP_HASH };

/* One blob of a request: model, data, labels, val_data, val_labels (job.submit) or the upload
** (blob.put). */
typedef struct upload_t {
  const char *kind;
  int mode;
  const char *text; /* the path or the base64 text (in the call's params, alive until the reply) */
  char hash[65];
  uint64_t size;
  int written;      /* this request wrote the file: forgotten when the request is refused */
} upload_t;

struct submit_t {
  uv_work_t work;
  daemon_t *d;
  lpq_api_call_t *call;
  json_t *params;
  const char *blob_dir;
  uint64_t max_bytes;
  uint64_t max_job_bytes; /* --max-job-mb */
  char client[48];
  int blob_put;          /* 1: blob.put, 0: job.submit */
  int calib_given;       /* settings.calib was set by the client */
  lpq_job_settings_t js;
  upload_t up[5];
  size_t nup;
  int code;              /* LPQ_API_E_* when refused */
  uint64_t need_bytes;   /* refused by --max-job-mb: the estimate (error.data.bytes) */
  char field[24];        /* error.data.field, "" for none */
  lpq_error_t err;
  submit_t *next;        /* the daemon's requests in flight */
};

/* The bytes that padded base64 text decodes to (checked before decoding it). */
static uint64_t base64_bytes(const char *text, size_t n) {
  uint64_t pad = (n > 0 && text[n - 1] == '=') + (n > 1 && text[n - 2] == '=');
  return (uint64_t)n / 4 * 3 - (pad < (uint64_t)n / 4 * 3 ? pad : 0);
}

/* The upload limit: 0 when `bytes` fits, else an LPQ_API_E_LIMIT reply naming the field. */
static int blob_too_big(daemon_t *d, uint64_t bytes, const char *field, lpq_api_call_t *call) {
  if (bytes <= d->max_blob_bytes)
    return 0;
  lpq_api_reply_error(call, LPQ_API_E_LIMIT,
                      json_pack("{s:s, s:I, s:I}", "field", field, "bytes", (json_int_t)bytes,
                                "limit", (json_int_t)d->max_blob_bytes),
                      "%s: %llu bytes is over the coordinator's blob limit of %llu bytes "
                      "(--max-blob-mb)", field, (unsigned long long)bytes,
                      (unsigned long long)d->max_blob_bytes);
  return -1;
}

static void fail(submit_t *s, int code, const char *field) {
  s->code = code;
  snprintf(s->field, sizeof s->field, "%s", field ? field : "");
}

/* ---- on the work queue ---- */

static int api_code(int lpq_code) {
  switch (lpq_code) {
  case LPQ_ERANGE: return LPQ_API_E_LIMIT;
  case LPQ_EINVAL: return LPQ_API_E_INVALID_PARAMS;
  case LPQ_EFORMAT: return LPQ_API_E_BAD_INPUT;
  default: return LPQ_API_E_IO;
  }
}

static int write_upload(submit_t *s, upload_t *u) {
  int rc = 0;
  if (u->mode == UP_PATH) {
    int fd = -1;
    rc = lpq_store_blob_open_regular(u->text, s->max_bytes, &fd, NULL, &s->err);
    if (rc == 0) {
      rc = lpq_store_blob_write_fd(s->blob_dir, fd, s->max_bytes, u->text, u->hash, &u->size,
                                   &s->err);
      close(fd);
    }
  } else if (u->mode == UP_BASE64) {
    unsigned char *bytes = NULL;
    size_t n = 0;
    rc = lpq_base64_decode(u->text, strlen(u->text), &bytes, &n, &s->err);
    if (rc != 0) {
      lpq_error_prefix(&s->err, "base64: ");
      rc = LPQ_EINVAL;
    } else {
      rc = lpq_store_blob_write(s->blob_dir, bytes, n, u->hash, &s->err);
      u->size = n;
    }
    free(bytes);
  }
  if (rc != 0) {
    const char *field = s->blob_put ? "base64" : u->kind;
    lpq_error_prefix(&s->err, "%s: ", field);
    fail(s, api_code(rc), field);
    return -1;
  }
  u->written = u->mode == UP_PATH || u->mode == UP_BASE64;
  return 0;
}

/* The labels fit the data and the model: one integer label per sample, each a class of the
** model's output. 0, or -1 with s->err set. */
static int check_labels(submit_t *s, const char *path, size_t samples, size_t classes) {
  lpq_array_t *lab = NULL;
  lpq_error_t *err = &s->err;
  int rc = lpq_load_array(path, &lab, err);
  if (rc != 0) {
    lpq_error_prefix(err, "labels: ");
  } else if (lab->ndim != 1 || (lab->dtype != LPQ_DT_I64 && lab->dtype != LPQ_DT_U8)) {
    rc = lpq_errorf(err, LPQ_EFORMAT, "labels: expected a 1-d array of int64 or uint8 class "
                    "indices, got %d dimensions of %s", lab->ndim, lpq_dtype_name(lab->dtype));
  } else if ((size_t)lab->shape[0] != samples) {
    rc = lpq_errorf(err, LPQ_EFORMAT, "labels: %lld labels for %zu samples of data",
                    (long long)lab->shape[0], samples);
  } else {
    for (size_t i = 0; rc == 0 && i < lab->count; i++) {
      int64_t v = lab->dtype == LPQ_DT_I64 ? ((const int64_t *)lab->data)[i]
                                           : ((const uint8_t *)lab->data)[i];
      if (v < 0 || (classes > 1 && (uint64_t)v >= classes))
        rc = lpq_errorf(err, LPQ_EFORMAT, "labels: label %zu is %lld, outside the model's "
                        "classes 0..%zu", i, (long long)v, classes - 1);
    }
  }
  lpq_array_free(&lab);
  return rc;
}

/* Floating-point data must be finite: an infinity became a NaN layers later ("layer 2 input:
** calibrate: element 0 is NaN") and failed the job. 0, or LPQ_EFORMAT naming the value. */
static int check_finite(submit_t *s, const lpq_array_t *a, const char *field) {
  size_t per = a->ndim >= 1 && a->shape[0] > 0 ? a->count / (size_t)a->shape[0] : 1;
  for (size_t i = 0; i < a->count; i++) {
    double v = a->dtype == LPQ_DT_F32 ? ((const float *)a->data)[i]
               : a->dtype == LPQ_DT_F64 ? ((const double *)a->data)[i] : 0.0;
    if (!isfinite(v))
      return lpq_errorf(&s->err, LPQ_EFORMAT, "%s: value %zu of sample %zu is %s; the data "
                        "must be finite", field, i % (per ? per : 1), i / (per ? per : 1),
                        lpq_nonfinite_name(v));
  }
  return 0;
}

/* The validation set (val_data, val_labels) fits the model as data and labels do: 0, or the
** API error code with *field. */
static int check_val(submit_t *s, const lpq_graph_t *g, size_t per_sample, const char **field) {
  char *vp = lpq_store_blob_file(s->blob_dir, s->js.val_data);
  char *lp = lpq_store_blob_file(s->blob_dir, s->js.val_labels);
  lpq_array_t *raw = NULL;
  lpq_tensor_info_t out;
  int code = 0;
  if (!vp || !lp) {
    code = LPQ_API_E_INTERNAL;
    lpq_errorf(&s->err, LPQ_ENOMEM, "out of memory");
  } else if (lpq_load_array(vp, &raw, &s->err) != 0) {
    code = LPQ_API_E_BAD_INPUT;
    *field = "val_data";
    lpq_error_prefix(&s->err, "val_data: ");
  } else {
    size_t n = raw->ndim >= 1 && raw->shape[0] > 0 ? (size_t)raw->shape[0] : 0;
    if (!n || raw->count / n != per_sample) {
      code = LPQ_API_E_BAD_INPUT;
      *field = "val_data";
      lpq_errorf(&s->err, LPQ_EFORMAT, "val_data: samples of %zu values do not fit the model's "
                 "input (%zu values per sample)", n ? raw->count / n : 0, per_sample);
    } else if (check_finite(s, raw, "val_data") != 0) {
      code = LPQ_API_E_BAD_INPUT;
      *field = "val_data";
    } else if (lpq_graph_output(g, 0, &out) != 0 || check_labels(s, lp, n, out.count) != 0) {
      code = LPQ_API_E_BAD_INPUT;
      *field = "val_labels";
      lpq_error_prefix(&s->err, "val_");
    }
  }
  lpq_array_free(&raw);
  free(vp);
  free(lp);
  return code;
}

/* What one job holds, estimated from its settings and model, must fit --max-job-mb: the
** generation in flight (each genome in the search's batch and as a queued task, measured at about
** 1.4 KB with 3 layers), the archive of every genome scored (as far as generations or
** max_evaluations bound it) and the calibration batch's activations. 0, or the API error code
** with *field naming the larger part. */
static int check_memory(submit_t *s, const lpq_graph_t *g, size_t samples, size_t per_sample,
                        const char **field) {
  const lpq_job_settings_t *js = &s->js;
  double nl = (double)lpq_graph_num_layers(g), pop = (double)js->population;
  double batch = fmax(pop, pop * (1.0 + (double)js->siblings));
  double evals = js->generations ? pop + (double)js->generations * batch : batch;
  if (js->max_evaluations) {
    evals = fmin(evals, (double)js->max_evaluations);
    batch = fmin(batch, evals);
  }
  double search = batch * (1536.0 + 64.0 * nl) +
                  evals * (nl * (double)sizeof(lpq_layer_formats_t) +
                           (double)sizeof(lpq_eval_result_t) + 96.0);
  double calib = (double)(js->calib < samples ? js->calib : samples);
  double inputs = calib * (double)lpq_graph_exec_bytes(g) + (double)samples * per_sample * 4.0;
  if (search + inputs <= (double)s->max_job_bytes)
    return 0;
  s->need_bytes = (uint64_t)(search + inputs);
  int blame_calib = inputs > search;
  *field = blame_calib ? "settings.calib" : "settings.population";
  lpq_errorf(&s->err, LPQ_ERANGE,
             "%s: this job would hold about %.0f MB (search: %.0f MB for %zu genomes a "
             "generation of %.0f layers, %.0f scored in all; calibration: %.0f MB for %.0f "
             "samples), more than the %.0f MB one job may hold (--max-job-mb)", *field,
             (search + inputs) / 1048576.0, search / 1048576.0, (size_t)batch, nl, evals,
             inputs / 1048576.0, calib, (double)s->max_job_bytes / 1048576.0);
  return LPQ_API_E_LIMIT;
}

/* The model must load (supported operators, quantizable layers), the data fit it, the labels
** fit both, calib the data, and the job the memory one job may hold. */
static void check_inputs(submit_t *s) {
  lpq_error_t *err = &s->err;
  lpq_job_settings_t *js = &s->js;
  char *mp = lpq_store_blob_file(s->blob_dir, js->model);
  char *dp = lpq_store_blob_file(s->blob_dir, js->data);
  char *lp = js->labels[0] ? lpq_store_blob_file(s->blob_dir, js->labels) : NULL;
  lpq_graph_t *g = NULL;
  lpq_array_t *raw = NULL;
  const char *field = NULL;
  int code = 0;
  if (!mp || !dp || (js->labels[0] && !lp)) {
    code = LPQ_API_E_INTERNAL;
    lpq_errorf(err, LPQ_ENOMEM, "out of memory");
  } else if (!(g = lpq_graph_load(mp, 1, err))) {
    code = err->code == LPQ_EUNSUP ? LPQ_API_E_UNSUPPORTED_MODEL : LPQ_API_E_BAD_INPUT;
    field = "model";
    lpq_error_prefix(err, "model: ");
  } else if (lpq_graph_num_layers(g) == 0) {
    code = LPQ_API_E_UNSUPPORTED_MODEL;
    field = "model";
    lpq_errorf(err, LPQ_EUNSUP, "model: no quantizable layer (Conv, Gemm, MatMul with a "
               "constant weight)");
  } else if (lpq_load_array(dp, &raw, err) != 0) {
    code = LPQ_API_E_BAD_INPUT;
    field = "data";
    lpq_error_prefix(err, "data: ");
  } else {
    lpq_tensor_info_t in, out;
    lpq_graph_input(g, 0, &in);
    size_t n = raw->ndim >= 1 && raw->shape[0] > 0 ? (size_t)raw->shape[0] : 0;
    size_t per = n ? raw->count / n : 0;
    if (lpq_graph_num_inputs(g) != 1 || per != in.count) {
      code = LPQ_API_E_BAD_INPUT;
      field = "data";
      lpq_errorf(err, LPQ_EFORMAT, "data: samples of %zu values do not fit the model's input "
                 "'%s' (%zu values per sample)", per, in.name, in.count);
    } else if (check_finite(s, raw, "data") != 0) {
      code = LPQ_API_E_BAD_INPUT;
      field = "data";
    } else if (s->calib_given && js->calib > n) {
      code = LPQ_API_E_INVALID_PARAMS;
      field = "settings.calib";
      lpq_errorf(err, LPQ_EINVAL, "settings.calib: %zu is more than the %zu samples of data",
                 js->calib, n);
    } else if (lp && (lpq_graph_output(g, 0, &out) != 0 ||
                      check_labels(s, lp, n, out.count) != 0)) {
      code = LPQ_API_E_BAD_INPUT;
      field = "labels";
    } else if (js->calib > n) {
      js->calib = n; /* the default, reduced to the data: stored as what is used */
    }
    if (!code && js->val_data[0])
      code = check_val(s, g, in.count, &field);
    if (!code)
      code = check_memory(s, g, n, per, &field);
  }
  if (code)
    fail(s, code, field);
  lpq_array_free(&raw);
  lpq_graph_free(&g);
  free(mp);
  free(dp);
  free(lp);
}

static void work(uv_work_t *w) {
  submit_t *s = w->data;
  for (size_t i = 0; i < s->nup; i++)
    if (write_upload(s, &s->up[i]) != 0)
      return;
  if (!s->blob_put) {
    memcpy(s->js.model, s->up[0].hash, 65);
    memcpy(s->js.data, s->up[1].hash, 65);
    if (s->up[2].mode != UP_NONE)
      memcpy(s->js.labels, s->up[2].hash, 65);
    if (s->up[3].mode != UP_NONE && s->up[4].mode != UP_NONE) {
      memcpy(s->js.val_data, s->up[3].hash, 65);
      memcpy(s->js.val_labels, s->up[4].hash, 65);
    }
    check_inputs(s);
  }
}

/* ---- on the loop ---- */

static void submit_unlink(submit_t *s) {
  for (submit_t **p = &s->d->submits; *p; p = &(*p)->next)
    if (*p == s) {
      *p = s->next;
      break;
    }
}

/* Removes the blob files a refused request wrote, unless a row or another request in flight
** claims them. */
static void forget_written(submit_t *s) {
  for (size_t i = 0; i < s->nup; i++) {
    const upload_t *u = &s->up[i];
    int busy = !u->written;
    for (submit_t *o = s->d->submits; o && !busy; o = o->next)
      for (size_t k = 0; k < o->nup; k++)
        busy |= strcmp(o->up[k].hash, u->hash) == 0;
    if (!busy)
      lpq_store_blob_forget(s->d->store, u->hash, NULL);
  }
}

int submits_claim(daemon_t *d, const char *hash) {
  for (submit_t *o = d->submits; o; o = o->next)
    for (size_t k = 0; k < o->nup; k++)
      if (strcmp(o->up[k].hash, hash) == 0)
        return 1;
  return 0;
}

static int record_written(submit_t *s) {
  for (size_t i = 0; i < s->nup; i++)
    if (s->up[i].written &&
        lpq_store_blob_record(s->d->store, s->up[i].kind, s->up[i].hash, s->up[i].size,
                              &s->err) != 0) {
      fail(s, LPQ_API_E_IO, s->up[i].kind);
      return -1;
    }
  return 0;
}

static void reply_failure(submit_t *s) {
  json_t *data = s->field[0] ? json_pack("{s:s}", "field", s->field) : NULL;
  if (data && s->need_bytes) { /* --max-job-mb: the estimate and the limit, as numbers */
    json_object_set_new(data, "bytes", json_integer((json_int_t)s->need_bytes));
    json_object_set_new(data, "limit", json_integer((json_int_t)s->max_job_bytes));
  }
  lpq_api_reply_error(s->call, s->code, data, "%s", s->err.msg);
}

/* The request's blob rows recorded: 1; or, refused (before or by the recording), its written
** files forgotten and the failure replied: 0. */
static int recorded(submit_t *s) {
  if (s->code == 0)
    record_written(s);
  if (s->code) {
    forget_written(s);
    reply_failure(s);
    return 0;
  }
  return 1;
}

static void finish_blob_put(submit_t *s) {
  json_t *want = json_object_get(s->params, "sha256");
  upload_t *u = &s->up[0];
  if (want && strcmp(json_string_value(want), u->hash) != 0) {
    lpq_errorf(&s->err, LPQ_EFORMAT, "the bytes hash to %s, not the sha256 given", u->hash);
    fail(s, LPQ_API_E_BAD_INPUT, "sha256");
  }
  if (!recorded(s))
    return;
  lpq_api_reply(s->call, json_pack("{s:s, s:I}", "hash", u->hash, "bytes", (json_int_t)u->size));
}

static void finish_submit(submit_t *s) {
  daemon_t *d = s->d;
  if (!recorded(s))
    return;
  json_t *params = s->params;
  char name[LPQ_STORE_NAME_MAX];
  json_t *jn = json_object_get(params, "name");
  json_t *mpath = json_object_get(json_object_get(params, "model"), "path");
  if (jn)
    snprintf(name, sizeof name, "%s", json_string_value(jn));
  else if (mpath) {
    const char *p = json_string_value(mpath), *slash = strrchr(p, '/');
    snprintf(name, sizeof name, "%s", slash ? slash + 1 : p);
  } else
    snprintf(name, sizeof name, "job");
  lpq_api_utf8_cut(name, sizeof name - 1); /* never cut inside a character */
  lpq_job_settings_t *js = &s->js;
  char *canon = lpq_job_settings_json(js);
  int64_t id = 0;
  lpq_error_t err = {0};
  if (!canon || lpq_store_job_insert(d->store, name, canon, &id, &err) != 0) {
    free(canon);
    lpq_api_reply_lpq_error(s->call, &err);
    return;
  }
  free(canon);
  lpq_store_event_append(d->store, id, LPQ_STORE_INFO, "submitted", NULL, NULL);
  daemon_log(d, 2, "job %lld submitted: %s", (long long)id, name);
  json_t *res = json_pack("{s:I, s:s, s:s, s:s, s:s}", "job", (json_int_t)id, "name", name,
                          "status", "queued", "model_hash", js->model, "data_hash", js->data);
  json_object_set_new(res, "labels_hash", js->labels[0] ? json_string(js->labels) : json_null());
  if (job_start(d, id, &err) != 0)
    daemon_log(d, 0, "job %lld: %s", (long long)id, err.msg);
  job_t *started = job_find(d, id);
  if (started)
    snprintf(started->client, sizeof started->client, "%s", s->client);
  lpq_api_reply(s->call, res);
}

static void after_work(uv_work_t *w, int status) {
  submit_t *s = w->data;
  if (status != 0 && s->code == 0) {
    lpq_errorf(&s->err, LPQ_ECANCELED, "the request was canceled");
    fail(s, LPQ_API_E_UNAVAILABLE, NULL);
  }
  submit_unlink(s);
  if (s->code == 0 && s->d->stopping) {
    lpq_errorf(&s->err, LPQ_ESTATE, "the coordinator is shutting down; submit again after it "
               "restarts");
    fail(s, LPQ_API_E_UNAVAILABLE, NULL);
  }
  if (s->blob_put)
    finish_blob_put(s);
  else
    finish_submit(s);
  free(s);
}

/* Paths are a local convenience: only a Unix-socket client running as the coordinator's user
** (or root) may name one, since the file is read with the coordinator's permissions; it must be
** absolute. 0, or -1 after an error reply. */
static int path_allowed(daemon_t *d, lpq_api_call_t *call, const char *kind, const char *path) {
  unsigned long uid = 0;
  if (lpq_api_call_peer_uid(call, &uid) != 0 || (uid != (unsigned long)geteuid() && uid != 0)) {
    lpq_api_reply_error(call, LPQ_API_E_INVALID_PARAMS,
                        json_pack("{s:s}", "field", kind),
                        "%s.path: paths are read only for clients of the coordinator's Unix "
                        "socket running as its user; upload the file instead (base64, or "
                        "blob.put and hash)", kind);
    return -1;
  }
  if (path[0] != '/') {
    lpq_api_reply_error(call, LPQ_API_E_INVALID_PARAMS, json_pack("{s:s}", "field", kind),
                        "%s.path: '%s' is not an absolute path", kind, path);
    return -1;
  }
  (void)d;
  return 0;
}

/* A blob spec {path | base64 | hash} into u, checked as far as the loop can: 0, or -1 after an
** error reply. */
static int upload_spec(daemon_t *d, lpq_api_call_t *call, json_t *spec, const char *kind,
                       upload_t *u) {
  json_t *path = json_object_get(spec, "path"), *b64 = json_object_get(spec, "base64");
  u->kind = kind;
  if (path) {
    u->mode = UP_PATH;
    u->text = json_string_value(path);
    return path_allowed(d, call, kind, u->text);
  }
  if (b64) {
    u->mode = UP_BASE64;
    u->text = json_string_value(b64);
    return blob_too_big(d, base64_bytes(u->text, json_string_length(b64)), kind, call);
  }
  int found = 0;
  lpq_error_t err;
  u->mode = UP_HASH;
  snprintf(u->hash, sizeof u->hash, "%s", json_string_value(json_object_get(spec, "hash")));
  if (lpq_store_blob_has(d->store, u->hash, &found, NULL, &err) != 0 || !found) {
    lpq_api_reply_error(call, LPQ_API_E_BLOB_NOT_FOUND, json_pack("{s:s}", "field", kind),
                        "%s: the coordinator holds no blob %s (upload it with blob.put)", kind,
                        u->hash);
    return -1;
  }
  return 0;
}

/* At most max_jobs_per_client unfinished jobs per client (the Unix socket's uid, or the TCP
** token), submits in flight included: 0, or an LPQ_API_E_LIMIT reply. */
static int too_many_jobs(daemon_t *d, const char *client, lpq_api_call_t *call) {
  size_t mine = 0;
  for (job_t *j = d->jobs; j; j = j->next)
    mine += !j->finished && !j->cancel && strcmp(j->client, client) == 0;
  for (submit_t *s = d->submits; s; s = s->next)
    mine += !s->blob_put && strcmp(s->client, client) == 0;
  if (mine < d->max_jobs_per_client)
    return 0;
  lpq_api_reply_error(call, LPQ_API_E_LIMIT,
                      json_pack("{s:s, s:I, s:I}", "client", client, "jobs", (json_int_t)mine,
                                "limit", (json_int_t)d->max_jobs_per_client),
                      "%s has %zu unfinished jobs, the most one client may have "
                      "(--max-jobs-per-client); wait for one to end or cancel one",
                      client, mine);
  return -1;
}

static void queue(daemon_t *d, submit_t *s) {
  s->work.data = s;
  s->next = d->submits;
  d->submits = s;
  int rc = uv_queue_work(d->loop, &s->work, work, after_work);
  if (rc != 0) {
    submit_unlink(s);
    lpq_api_reply_error(s->call, LPQ_API_E_INTERNAL, NULL, "cannot queue the work: %s",
                        uv_strerror(rc));
    free(s);
  }
}

static submit_t *submit_new(daemon_t *d, lpq_api_call_t *call, json_t *params) {
  submit_t *s = calloc(1, sizeof *s);
  if (s == NULL) {
    lpq_api_reply_error(call, LPQ_API_E_INTERNAL, NULL, "out of memory");
    return NULL;
  }
  s->d = d;
  s->call = call;
  s->params = params;
  s->blob_dir = lpq_store_blob_dir(d->store);
  s->max_bytes = d->max_blob_bytes;
  s->max_job_bytes = d->max_job_bytes;
  lpq_api_call_client(call, s->client, sizeof s->client);
  return s;
}

void m_submit(void *ctx, lpq_api_call_t *call, json_t *params) {
  daemon_t *d = ctx;
  char client[48];
  lpq_api_call_client(call, client, sizeof client);
  if (too_many_jobs(d, client, call) != 0)
    return;
  submit_t *s = submit_new(d, call, params);
  if (s == NULL)
    return;
  json_t *settings = json_object_get(params, "settings");
  char *text = settings ? json_dumps(settings, JSON_COMPACT) : NULL;
  int rc = lpq_job_settings_parse(text ? text : "{}", &s->js, &s->err);
  free(text);
  if (rc != 0) {
    lpq_api_reply_error(call, LPQ_API_E_INVALID_PARAMS, NULL, "%s", s->err.msg);
    free(s);
    return;
  }
  s->calib_given = json_object_get(settings, "calib") != NULL;
  /* A new job's local terms default to lpq search's (projected, docs/MEASUREMENTS.md issue 14),
  ** written into its settings; a stored job without the field keeps exact, as it was scored. */
  if (!json_object_get(settings, "local_terms"))
    s->js.local_terms = 1;
  json_t *seed = json_object_get(params, "seed");
  if (seed)
    s->js.seed = (uint64_t)json_integer_value(seed);
  static const char *kinds[] = {"model", "data", "labels", "val_data", "val_labels"};
  json_t *vd = json_object_get(params, "val_data"), *vl = json_object_get(params, "val_labels");
  int has_val = vd && !json_is_null(vd);
  if (has_val != (vl && !json_is_null(vl)) || (s->js.top1_drop_max > 0 && !has_val)) {
    lpq_api_reply_error(call, LPQ_API_E_INVALID_PARAMS,
                        json_pack("{s:s}", "field", has_val ? "val_labels" : "val_data"),
                        "val_data and val_labels go together, and settings.constraints."
                        "top1_drop_max needs them (the pick is made on validation data)");
    free(s);
    return;
  }
  if (s->js.eval_top1 || s->js.val_data[0]) {
    lpq_api_reply_error(call, LPQ_API_E_INVALID_PARAMS, json_pack("{s:s}", "field", "settings"),
                        "settings.eval and settings.val_data are the coordinator's; give the "
                        "validation set as val_data and val_labels");
    free(s);
    return;
  }
  s->nup = 5;
  for (size_t i = 0; i < s->nup; i++) {
    json_t *spec = json_object_get(params, kinds[i]);
    if (i >= 2 && (!spec || json_is_null(spec))) {
      s->up[i] = (upload_t){.kind = kinds[i], .mode = UP_NONE};
      continue;
    }
    if (upload_spec(d, call, spec, kinds[i], &s->up[i]) != 0) {
      free(s);
      return;
    }
  }
  queue(d, s);
}

void m_blob_put(void *ctx, lpq_api_call_t *call, json_t *params) {
  daemon_t *d = ctx;
  json_t *text = json_object_get(params, "base64");
  const char *b64 = json_string_value(text);
  if (blob_too_big(d, base64_bytes(b64, json_string_length(text)), "base64", call) != 0)
    return;
  submit_t *s = submit_new(d, call, params);
  if (s == NULL)
    return;
  s->blob_put = 1;
  s->nup = 1;
  s->up[0] = (upload_t){.kind = "upload", .mode = UP_BASE64, .text = b64};
  queue(d, s);
}
