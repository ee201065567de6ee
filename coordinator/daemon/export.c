/* coordinator/daemon/export.c: job.export: a scored genome of a job as what people take away:
** the candidate config, the ONNX model with LP-rounded weights, the packed LP weights. */
#define _GNU_SOURCE /* renameat2 */
#include "coordinator/daemon/daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The genome_json of (job, genome) from the job's generations; NULL when never in one. */
static json_t *genome_formats(daemon_t *d, int64_t job, const char *hex) {
  char *text = NULL;
  if (lpq_store_individual_json(d->store, job, strtoull(hex, NULL, 16), &text, NULL) != 0)
    return NULL;
  json_t *found = json_loads(text, 0, NULL);
  free(text);
  return found;
}

/* The layer names of job id's model (nl of them) into names, without loading the model: a live
** job's, or the cache's. 0, or -1 when neither has them. */
static int cached_names(daemon_t *d, int64_t id, size_t nl, const char **names) {
  job_t *j = job_find(d, id);
  char **src = NULL;
  names_cache_t *c = &d->names_cache[(uint64_t)id % DAEMON_NAMES_CACHE];
  if (j && j->layer_names && j->nl == nl)
    src = j->layer_names;
  else if (c->job == id && c->nl == nl && c->names)
    src = c->names;
  for (size_t i = 0; src && i < nl; i++)
    names[i] = src[i];
  return src ? 0 : -1;
}

static void names_slot_free(names_cache_t *c) {
  for (size_t i = 0; c->names && i < c->nl; i++)
    free(c->names[i]);
  free(c->names);
  *c = (names_cache_t){0};
}

/* Keeps a loaded model's layer names for the next config of job id. */
static void cache_names(daemon_t *d, int64_t id, const lpq_graph_t *g) {
  names_cache_t *c = &d->names_cache[(uint64_t)id % DAEMON_NAMES_CACHE];
  names_slot_free(c);
  size_t nl = lpq_graph_num_layers(g);
  char **names = calloc(nl + 1, sizeof *names);
  for (size_t i = 0; names && i < nl; i++)
    if (!(names[i] = strdup(lpq_graph_layer(g, i)->name))) {
      for (size_t k = 0; k < i; k++)
        free(names[k]);
      free(names);
      return;
    }
  if (names)
    *c = (names_cache_t){.job = id, .nl = nl, .names = names};
}

void export_names_free(daemon_t *d) {
  for (size_t i = 0; i < DAEMON_NAMES_CACHE; i++)
    names_slot_free(&d->names_cache[i]);
}

static int fmt_of(json_t *v, lpq_numfmt_t *nf) {
  const char *s = json_string_value(v);
  return s && lpq_numfmt_parse(s, nf, NULL) == 0 ? 0 : -1;
}

/* Writes a new file `name` in the open folder dirfd: a temporary file (O_EXCL, O_NOFOLLOW, mode
** 0600) renamed into place only when nothing has that name (RENAME_NOREPLACE), so an export
** never follows a link planted in the folder nor overwrites a file it did not create. */
static int write_new_file(int dirfd, const char *dir, const char *name, const void *data,
                          size_t len, lpq_error_t *err) {
  char tmp[64];
  int fd = -1;
  for (int i = 0; i < 16 && fd < 0; i++) {
    snprintf(tmp, sizeof tmp, ".%s.%ld.%d.tmp", name, (long)getpid(), i);
    fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0 && errno != EEXIST)
      break;
  }
  if (fd < 0)
    return lpq_errorf(err, LPQ_EIO, "%s: cannot create a file in it: %s", dir, strerror(errno));
  const char *p = data;
  size_t left = len;
  int rc = 0;
  while (rc == 0 && left > 0) {
    ssize_t n = write(fd, p, left);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      rc = lpq_errorf(err, LPQ_EIO, "%s/%s: %s", dir, tmp, strerror(errno));
    else
      p += n, left -= (size_t)n;
  }
  if (close(fd) != 0 && rc == 0)
    rc = lpq_errorf(err, LPQ_EIO, "%s/%s: %s", dir, tmp, strerror(errno));
  if (rc == 0 && renameat2(dirfd, tmp, dirfd, name, RENAME_NOREPLACE) != 0)
    rc = lpq_errorf(err, LPQ_EIO, "%s/%s: %s", dir, name,
                    errno == EEXIST ? "exists already; not overwriting it (export into a new "
                                      "or emptied folder)" : strerror(errno));
  if (rc != 0)
    unlinkat(dirfd, tmp, 0);
  return rc;
}

/* One deliverable: written into the folder dirfd (dir its name), or returned as base64, with
** its size and hash. */
static json_t *file_json(const void *data, size_t len, int dirfd, const char *dir,
                         const char *name, lpq_error_t *err) {
  char hash[65];
  lpq_sha256_hex(data, len, hash);
  json_t *o = json_pack("{s:I, s:s}", "bytes", (json_int_t)len, "sha256", hash);
  if (dir) {
    if (write_new_file(dirfd, dir, name, data, len, err) != 0) {
      json_decref(o);
      return NULL;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    lpq_api_utf8_cut(path, sizeof path - 1);
    json_object_set_new(o, "path", json_string(path));
  } else {
    char *b64 = lpq_base64_encode(data, len);
    json_object_set_new(o, "base64", b64 ? json_string(b64) : json_null());
    free(b64);
  }
  return o;
}

/* The quantized model as `lpq export` writes it (lpq_onnx_export_quantized), its activation
** formats calibrated on the job's first `calib` data samples as the workers score them. */
static int export_quantized(daemon_t *d, const lpq_job_settings_t *js, const char *model_path,
                            const lpq_numfmt_t *nw, size_t nl, int dirfd, const char *dir,
                            json_t *res, lpq_error_t *err) {
  char *data_path = NULL;
  lpq_array_t *x = NULL;
  lpq_graph_t *g = NULL;
  lpq_qexport_t q = {0};
  json_t *f1 = NULL, *f2 = NULL;
  int rc = lpq_store_blob_path(d->store, js->data, &data_path, err);
  if (rc == 0)
    rc = lpq_load_inputs(data_path, js->norm_mean, js->norm_std, &x, err);
  size_t ncal = rc == 0 && (size_t)x->shape[0] < js->calib ? (size_t)x->shape[0] : js->calib;
  if (rc == 0 && !(g = lpq_graph_load(model_path, (int)ncal, err)))
    rc = err->code;
  if (rc == 0 && lpq_graph_num_layers(g) != nl)
    rc = lpq_errorf(err, LPQ_ESTATE, "the genome has %zu layers, the model %zu", nl,
                    lpq_graph_num_layers(g));
  if (rc == 0)
    rc = lpq_onnx_export_quantized(model_path, g, nw, nw + nl, x->data, NULL, &q, err);
  if (rc == 0 && (!(f1 = file_json(q.onnx, q.onnx_len, dirfd, dir, "model_q.onnx", err)) ||
                  !(f2 = file_json(q.encodings, strlen(q.encodings), dirfd, dir,
                                   "model_q.encodings.json", err))))
    rc = err->code ? err->code : LPQ_EIO;
  if (rc == 0) {
    json_object_set_new(res, "quantized", f1);
    json_object_set_new(res, "encodings", f2);
  } else {
    json_decref(f1);
  }
  lpq_qexport_clear(&q);
  lpq_graph_free(&g);
  lpq_array_free(&x);
  free(data_path);
  return rc;
}

void m_export(void *ctx, lpq_api_call_t *call, json_t *params) {
  daemon_t *d = ctx;
  int64_t id = (int64_t)json_integer_value(json_object_get(params, "job"));
  lpq_store_job_t sj;
  lpq_error_t err = {0};
  if (lpq_store_job_get(d->store, id, &sj, &err) != 0) {
    reply_job_error(call, id, &err);
    return;
  }
  lpq_job_settings_t js;
  lpq_job_settings_parse(sj.settings, &js, NULL);
  lpq_store_job_clear(&sj);
  char hex[17] = "";
  json_t *g = json_object_get(params, "genome");
  if (g) {
    snprintf(hex, sizeof hex, "%s", json_string_value(g));
  } else if (pick_chosen(d, id, hex), !hex[0]) { /* the validation pick's, else the best L_F */
    lpq_store_dump_filter_t f = {.job = id, .limit = 1};
    char *text = NULL;
    if (lpq_store_dump_json(d->store, "v_best_config", &f, &text, NULL) == 0) {
      json_t *rows = json_loads(text, 0, NULL);
      const char *b = json_string_value(json_object_get(json_array_get(rows, 0), "genome"));
      if (b)
        snprintf(hex, sizeof hex, "%s", b);
      json_decref(rows);
    }
    free(text);
    if (!hex[0]) {
      lpq_api_reply_error(call, LPQ_API_E_JOB_STATE, NULL,
                          "job %lld has no scored feasible genome yet", (long long)id);
      return;
    }
  }
  json_t *genome = genome_formats(d, id, hex);
  if (!genome) {
    lpq_api_reply_error(call, LPQ_API_E_NOT_FOUND, NULL,
                        "job %lld has no genome %s in its generations", (long long)id, hex);
    return;
  }
  /* dir: an existing folder, named by absolute path, by a Unix-socket client running as the
  ** coordinator's user (or root): the files are written with the coordinator's permissions */
  const char *dir = json_string_value(json_object_get(params, "dir"));
  int dirfd = -1;
  unsigned long uid = 0;
  const char *refused = NULL;
  if (dir && (lpq_api_call_peer_uid(call, &uid) != 0 ||
              (uid != (unsigned long)geteuid() && uid != 0)))
    refused = "is honoured only for clients of the coordinator's Unix socket running as its "
              "user; leave it out to get the files as base64";
  else if (dir && dir[0] != '/')
    refused = "is not an absolute path";
  if (refused) {
    json_decref(genome);
    lpq_api_reply_error(call, LPQ_API_E_INVALID_PARAMS, json_pack("{s:s}", "field", "dir"),
                        "dir: '%s' %s", dir, refused);
    return;
  }
  if (dir && (dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
    json_decref(genome);
    lpq_api_reply_error(call, LPQ_API_E_IO, json_pack("{s:s}", "field", "dir"),
                        "dir: %s: %s (an existing folder, not a link, is needed)", dir,
                        strerror(errno));
    return;
  }
  json_t *what = json_object_get(params, "what");
  int want_config = !what, want_onnx = 0, want_packed = 0, want_q = 0;
  size_t k;
  json_t *w;
  json_array_foreach(what, k, w) {
    want_config |= !strcmp(json_string_value(w), "config");
    want_onnx |= !strcmp(json_string_value(w), "onnx");
    want_packed |= !strcmp(json_string_value(w), "packed");
    want_q |= !strcmp(json_string_value(w), "quantized");
  }
  char *model_path = NULL;
  lpq_graph_t *graph = NULL;
  size_t nl = json_array_size(genome);
  lpq_numfmt_t *nw = calloc(2 * nl + 1, sizeof *nw);
  const char **names = calloc(nl + 1, sizeof *names);
  json_t *res = json_pack("{s:I, s:s}", "job", (json_int_t)id, "genome", hex);
  int code = 0;
  /* a config alone needs only the layer names: a live job's or the cache's, when known */
  int names_only = !want_onnx && !want_packed && !want_q;
  if (!nw || !names) {
    code = LPQ_API_E_INTERNAL;
    lpq_errorf(&err, LPQ_ENOMEM, "out of memory");
  } else if (names_only && cached_names(d, id, nl, names) == 0) {
    /* names filled */
  } else if (lpq_store_blob_path(d->store, js.model, &model_path, &err) != 0 ||
             !(graph = lpq_graph_load(model_path, 1, &err))) {
    code = LPQ_API_E_IO;
  } else if (lpq_graph_num_layers(graph) != nl) {
    code = LPQ_API_E_INTERNAL;
    lpq_errorf(&err, LPQ_ESTATE, "the genome has %zu layers, the model %zu", nl,
               lpq_graph_num_layers(graph));
  }
  if (!code && graph)
    cache_names(d, id, graph);
  for (size_t i = 0; !code && i < nl; i++) {
    if (graph)
      names[i] = lpq_graph_layer(graph, i)->name;
    json_t *L = json_array_get(genome, i);
    if (fmt_of(json_object_get(L, "w"), &nw[i]) != 0 ||
        fmt_of(json_object_get(L, "a"), &nw[nl + i]) != 0) {
      code = LPQ_API_E_INTERNAL;
      lpq_errorf(&err, LPQ_EFORMAT, "genome %s: layer %zu has an unreadable format", hex, i);
    }
  }
  if (!code) {
    lpq_store_eval_t e;
    if (lpq_store_eval_get(d->store, id, strtoull(hex, NULL, 16), &e, NULL) == 0) {
      json_t *sc = json_pack("{s:f, s:f, s:f, s:f, s:f}", "l_co", e.l_co, "l_cr", e.l_cr,
                             "mean_weight_bits", e.mean_weight_bits, "mean_act_bits",
                             e.mean_act_bits, "latency_s", e.latency_s);
      json_object_set_new(sc, "top1", isfinite(e.top1) ? json_real(e.top1) : json_null());
      json_object_set_new(sc, "energy_pj", json_real(e.energy_pj));
      json_object_set_new(res, "scores", sc);
    }
  }
  if (!code && want_config) {
    char *cfg = lpq_config_to_json(nl, names, nw, nw + nl);
    json_t *cj = cfg ? json_loads(cfg, 0, NULL) : NULL;
    if (cj && dir) {
      json_t *f = file_json(cfg, strlen(cfg), dirfd, dir, "config.json", &err);
      if (!f)
        code = LPQ_API_E_IO;
      json_decref(f);
    }
    if (cj)
      json_object_set_new(res, "config", cj);
    free(cfg);
  }
  if (!code && want_onnx) {
    void *bytes = NULL;
    size_t len = 0;
    json_t *f = NULL;
    if (lpq_onnx_export_rounded(model_path, nl, names, nw, &bytes, &len, &err) != 0 ||
        !(f = file_json(bytes, len, dirfd, dir, "model_lp.onnx", &err)))
      code = err.code == LPQ_EIO ? LPQ_API_E_IO : LPQ_API_E_UNSUPPORTED_MODEL;
    else
      json_object_set_new(res, "onnx", f);
    free(bytes);
  }
  if (!code && want_packed) {
    void *bytes = NULL;
    size_t len = 0;
    json_t *f = NULL;
    if (lpq_pack_weights(graph, nw, &bytes, &len, &err) != 0 ||
        !(f = file_json(bytes, len, dirfd, dir, "weights.lpw", &err)))
      code = err.code == LPQ_EIO ? LPQ_API_E_IO : LPQ_API_E_INTERNAL;
    else
      json_object_set_new(res, "packed", f);
    free(bytes);
  }
  if (!code && want_q && (code = export_quantized(d, &js, model_path, nw, nl, dirfd, dir, res, &err)))
    code = err.code == LPQ_EIO ? LPQ_API_E_IO : LPQ_API_E_UNSUPPORTED_MODEL;
  if (code) {
    json_decref(res);
    lpq_api_reply_error(call, code, NULL, "%s", err.msg);
  } else {
    lpq_api_reply(call, res);
  }
  json_decref(genome);
  if (dirfd >= 0)
    close(dirfd);
  lpq_graph_free(&graph);
  free(model_path);
  free(nw);
  free(names);
}
