/* coordinator/daemon/export.c: job.export: a scored genome of a job as what people take away:
** the candidate config, the ONNX model with LP-rounded weights, the packed LP weights, the
** quantized ONNX model (as `lpq export` writes it, bias correction included when the job was
** scored with it). The store is read on the loop; the model is loaded and the files made on
** libuv's work queue (a model, calibration and bias correction take a while), except a config
** alone whose layer names are known. */
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

/* Keeps a loaded model's layer names (nl, malloc'd; taken: *names becomes NULL) for the next
** config of job id. On the loop. */
static void cache_names(daemon_t *d, int64_t id, size_t nl, char ***names) {
  names_cache_t *c = &d->names_cache[(uint64_t)id % DAEMON_NAMES_CACHE];
  names_slot_free(c);
  *c = (names_cache_t){.job = id, .nl = nl, .names = *names};
  *names = NULL;
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

/* One job.export in flight: what the loop read (settings, genome, paths, the folder), what the
** work made (res, the model's layer names for the cache) and how it went (code, err). */
typedef struct export_t {
  daemon_t *d;
  lpq_api_call_t *call;
  uv_work_t work;
  int64_t id;
  char hex[17];
  lpq_job_settings_t js;
  json_t *genome, *res;
  char *model_path, *data_path, *dir;
  int dirfd;
  int want_config, want_onnx, want_packed, want_q;
  char **names; /* the loaded model's layer names (nl), for the names cache */
  size_t nl;
  int code;
  lpq_error_t err;
} export_t;

/* The quantized model as `lpq export` writes it (lpq_onnx_export_quantized), its activation
** formats calibrated on the job's first `calib` data samples as the workers score them, its
** biases corrected as the workers corrected them when the job was scored with bias correction
** (lpq_bias_shifts on the same calibration batch: `lpq export --bias-correction on`). g is the
** model loaded with that batch, cal the data. */
static int export_quantized(export_t *x, const lpq_graph_t *g, const lpq_numfmt_t *nw,
                            const float *cal, lpq_error_t *err) {
  size_t nl = x->nl;
  lpq_qexport_t q = {0};
  json_t *f1 = NULL, *f2 = NULL;
  float **shift = x->js.bias_correction ? calloc(nl + 1, sizeof *shift) : NULL;
  int rc = x->js.bias_correction && !shift ? lpq_errorf(err, LPQ_ENOMEM, "out of memory") : 0;
  if (rc == 0 && shift)
    rc = lpq_bias_shifts(g, nw, cal, shift, err);
  if (rc == 0)
    rc = lpq_onnx_export_quantized(x->model_path, g, nw, nw + nl, cal,
                                   (const float *const *)shift, &q, err);
  if (rc == 0 && (!(f1 = file_json(q.onnx, q.onnx_len, x->dirfd, x->dir, "model_q.onnx", err)) ||
                  !(f2 = file_json(q.encodings, strlen(q.encodings), x->dirfd, x->dir,
                                   "model_q.encodings.json", err))))
    rc = err->code ? err->code : LPQ_EIO;
  if (rc == 0) {
    json_object_set_new(x->res, "quantized", f1);
    json_object_set_new(x->res, "encodings", f2);
    json_object_set_new(x->res, "bias_correction", json_boolean(shift != NULL));
  } else {
    json_decref(f1);
  }
  for (size_t i = 0; shift && i < nl; i++)
    free(shift[i]);
  free(shift);
  lpq_qexport_clear(&q);
  return rc;
}

/* The candidate config (with "bias_correction": true when the job was scored with it, so that
** `lpq export --config` on it writes what job.export writes). */
static int export_config(export_t *x, const char *const *names, const lpq_numfmt_t *nw) {
  char *cfg = lpq_config_to_json(x->nl, names, nw, nw + x->nl);
  json_t *cj = cfg ? json_loads(cfg, 0, NULL) : NULL;
  free(cfg);
  cfg = NULL;
  if (cj && x->js.bias_correction)
    json_object_set_new(cj, "bias_correction", json_true());
  if (cj && !(cfg = json_dumps(cj, JSON_INDENT(2)))) {
    json_decref(cj);
    cj = NULL;
  }
  if (!cj) {
    x->code = LPQ_API_E_INTERNAL;
    lpq_errorf(&x->err, LPQ_ENOMEM, "out of memory");
    return -1;
  }
  json_t *f = x->dir ? file_json(cfg, strlen(cfg), x->dirfd, x->dir, "config.json", &x->err) : NULL;
  free(cfg);
  if (x->dir && !f) {
    json_decref(cj);
    x->code = LPQ_API_E_IO;
    return -1;
  }
  json_decref(f);
  json_object_set_new(x->res, "config", cj);
  return 0;
}

/* What was asked, into x->res (x->code and x->err on failure). names: the layer names when the
** loop knows them and only the config is wanted; else NULL and the model is loaded here, with
** the calibration batch when the quantized model is wanted. Runs on the work queue, except for
** a config from known names (on the loop: no model to load). */
static void export_make(export_t *x, const char *const *known) {
  lpq_error_t *err = &x->err;
  size_t nl = x->nl;
  lpq_numfmt_t *nw = calloc(2 * nl + 1, sizeof *nw);
  const char **names = calloc(nl + 1, sizeof *names);
  lpq_array_t *cal = NULL;
  lpq_graph_t *graph = NULL;
  if (!nw || !names) {
    x->code = LPQ_API_E_INTERNAL;
    lpq_errorf(err, LPQ_ENOMEM, "out of memory");
    goto done;
  }
  for (size_t i = 0; i < nl; i++) {
    json_t *L = json_array_get(x->genome, i);
    if (fmt_of(json_object_get(L, "w"), &nw[i]) != 0 ||
        fmt_of(json_object_get(L, "a"), &nw[nl + i]) != 0) {
      x->code = LPQ_API_E_INTERNAL;
      lpq_errorf(err, LPQ_EFORMAT, "genome %s: layer %zu has an unreadable format", x->hex, i);
      goto done;
    }
  }
  size_t ncal = 1;
  if (!known && x->want_q) {
    if (lpq_load_inputs(x->data_path, x->js.norm_mean, x->js.norm_std, &cal, err) != 0) {
      x->code = LPQ_API_E_IO;
      goto done;
    }
    ncal = (size_t)cal->shape[0] < x->js.calib ? (size_t)cal->shape[0] : x->js.calib;
  }
  if (known) {
    for (size_t i = 0; i < nl; i++)
      names[i] = known[i];
  } else if (!(graph = lpq_graph_load(x->model_path, (int)ncal, err))) {
    x->code = LPQ_API_E_IO;
    goto done;
  } else if (lpq_graph_num_layers(graph) != nl) {
    x->code = LPQ_API_E_INTERNAL;
    lpq_errorf(err, LPQ_ESTATE, "the genome has %zu layers, the model %zu", nl,
               lpq_graph_num_layers(graph));
    goto done;
  } else if ((x->names = calloc(nl + 1, sizeof *x->names))) {
    for (size_t i = 0; i < nl; i++)
      names[i] = lpq_graph_layer(graph, i)->name;
    for (size_t i = 0; i < nl && x->names; i++)
      if (!(x->names[i] = strdup(names[i]))) { /* the cache is an optimisation: do without */
        for (size_t k = 0; k < i; k++)
          free(x->names[k]);
        free(x->names);
        x->names = NULL;
      }
  } else {
    for (size_t i = 0; i < nl; i++)
      names[i] = lpq_graph_layer(graph, i)->name;
  }
  if (x->want_config && export_config(x, names, nw) != 0)
    goto done;
  if (x->want_onnx) {
    void *bytes = NULL;
    size_t len = 0;
    json_t *f = NULL;
    if (lpq_onnx_export_rounded(x->model_path, nl, names, nw, &bytes, &len, err) != 0 ||
        !(f = file_json(bytes, len, x->dirfd, x->dir, "model_lp.onnx", err)))
      x->code = err->code == LPQ_EIO ? LPQ_API_E_IO : LPQ_API_E_UNSUPPORTED_MODEL;
    else
      json_object_set_new(x->res, "onnx", f);
    free(bytes);
  }
  if (!x->code && x->want_packed) {
    void *bytes = NULL;
    size_t len = 0;
    json_t *f = NULL;
    if (lpq_pack_weights(graph, nw, &bytes, &len, err) != 0 ||
        !(f = file_json(bytes, len, x->dirfd, x->dir, "weights.lpw", err)))
      x->code = err->code == LPQ_EIO ? LPQ_API_E_IO : LPQ_API_E_INTERNAL;
    else
      json_object_set_new(x->res, "packed", f);
    free(bytes);
  }
  if (!x->code && x->want_q && export_quantized(x, graph, nw, cal->data, err) != 0)
    x->code = err->code == LPQ_EIO ? LPQ_API_E_IO : LPQ_API_E_UNSUPPORTED_MODEL;
done:
  lpq_graph_free(&graph);
  lpq_array_free(&cal);
  free(nw);
  free(names);
}

static void export_free(export_t *x) {
  for (size_t i = 0; x->names && i < x->nl; i++)
    free(x->names[i]);
  free(x->names);
  json_decref(x->genome);
  json_decref(x->res);
  if (x->dirfd >= 0)
    close(x->dirfd);
  free(x->model_path);
  free(x->data_path);
  free(x->dir);
  free(x);
}

/* On the loop: the names cache filled, the answer sent. */
static void export_reply(export_t *x) {
  if (x->names)
    cache_names(x->d, x->id, x->nl, &x->names);
  if (x->code) {
    lpq_api_reply_error(x->call, x->code, NULL, "%s", x->err.msg);
  } else {
    lpq_api_reply(x->call, x->res);
    x->res = NULL;
  }
  export_free(x);
}

static void export_work(uv_work_t *w) {
  export_make(w->data, NULL);
}

static void export_done(uv_work_t *w, int status) {
  export_t *x = w->data;
  if (status != 0 && !x->code) {
    x->code = LPQ_API_E_UNAVAILABLE;
    lpq_errorf(&x->err, LPQ_ECANCELED, "the export was canceled");
  }
  export_reply(x);
}

/* The genome to export: params' "genome", else the validation pick's, else the best L_F. 0,
** or -1 after an error reply. */
static int export_genome(daemon_t *d, lpq_api_call_t *call, json_t *params, int64_t id,
                         char hex[17]) {
  json_t *g = json_object_get(params, "genome");
  if (g) {
    snprintf(hex, 17, "%s", json_string_value(g));
    return 0;
  }
  if (pick_chosen(d, id, hex), hex[0])
    return 0;
  lpq_store_dump_filter_t f = {.job = id, .limit = 1};
  char *text = NULL;
  if (lpq_store_dump_json(d->store, "v_best_config", &f, &text, NULL) == 0) {
    json_t *rows = json_loads(text, 0, NULL);
    const char *b = json_string_value(json_object_get(json_array_get(rows, 0), "genome"));
    if (b)
      snprintf(hex, 17, "%s", b);
    json_decref(rows);
  }
  free(text);
  if (hex[0])
    return 0;
  lpq_api_reply_error(call, LPQ_API_E_JOB_STATE, NULL,
                      "job %lld has no scored feasible genome yet", (long long)id);
  return -1;
}

/* dir: an existing folder, named by absolute path, by a Unix-socket client running as the
** coordinator's user (or root): the files are written with the coordinator's permissions.
** x->dirfd open on it (or -1 without dir): 0, or -1 after an error reply. */
static int export_dir(export_t *x, const char *dir) {
  unsigned long uid = 0;
  const char *refused = NULL;
  if (!dir)
    return 0;
  if (lpq_api_call_peer_uid(x->call, &uid) != 0 || (uid != (unsigned long)geteuid() && uid != 0))
    refused = "is honoured only for clients of the coordinator's Unix socket running as its "
              "user; leave it out to get the files as base64";
  else if (dir[0] != '/')
    refused = "is not an absolute path";
  if (refused) {
    lpq_api_reply_error(x->call, LPQ_API_E_INVALID_PARAMS, json_pack("{s:s}", "field", "dir"),
                        "dir: '%s' %s", dir, refused);
    return -1;
  }
  if ((x->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
    lpq_api_reply_error(x->call, LPQ_API_E_IO, json_pack("{s:s}", "field", "dir"),
                        "dir: %s: %s (an existing folder, not a link, is needed)", dir,
                        strerror(errno));
    return -1;
  }
  if (!(x->dir = strdup(dir))) {
    lpq_api_reply_error(x->call, LPQ_API_E_INTERNAL, NULL, "out of memory");
    return -1;
  }
  return 0;
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
  export_t *x = calloc(1, sizeof *x);
  if (!x) {
    lpq_store_job_clear(&sj);
    lpq_api_reply_error(call, LPQ_API_E_INTERNAL, NULL, "out of memory");
    return;
  }
  *x = (export_t){.d = d, .call = call, .id = id, .dirfd = -1};
  lpq_job_settings_parse(sj.settings, &x->js, NULL);
  lpq_store_job_clear(&sj);
  if (export_genome(d, call, params, id, x->hex) != 0) {
    export_free(x);
    return;
  }
  if (!(x->genome = genome_formats(d, id, x->hex))) {
    lpq_api_reply_error(call, LPQ_API_E_NOT_FOUND, NULL,
                        "job %lld has no genome %s in its generations", (long long)id, x->hex);
    export_free(x);
    return;
  }
  if (export_dir(x, json_string_value(json_object_get(params, "dir"))) != 0) {
    export_free(x);
    return;
  }
  json_t *what = json_object_get(params, "what");
  size_t k;
  json_t *w;
  x->want_config = !what;
  json_array_foreach(what, k, w) {
    x->want_config |= !strcmp(json_string_value(w), "config");
    x->want_onnx |= !strcmp(json_string_value(w), "onnx");
    x->want_packed |= !strcmp(json_string_value(w), "packed");
    x->want_q |= !strcmp(json_string_value(w), "quantized");
  }
  x->nl = json_array_size(x->genome);
  x->res = json_pack("{s:I, s:s}", "job", (json_int_t)id, "genome", x->hex);
  lpq_store_eval_t e;
  if (lpq_store_eval_get(d->store, id, strtoull(x->hex, NULL, 16), &e, NULL) == 0) {
    json_t *sc = json_pack("{s:f, s:f, s:f, s:f, s:f}", "l_co", e.l_co, "l_cr", e.l_cr,
                           "mean_weight_bits", e.mean_weight_bits, "mean_act_bits",
                           e.mean_act_bits, "latency_s", e.latency_s);
    json_object_set_new(sc, "top1", isfinite(e.top1) ? json_real(e.top1) : json_null());
    json_object_set_new(sc, "energy_pj", json_real(e.energy_pj));
    json_object_set_new(x->res, "scores", sc);
  }
  /* a config alone needs only the layer names: a live job's or the cache's, when known */
  const char **names = calloc(x->nl + 1, sizeof *names);
  if (!names || !x->res) {
    free(names);
    lpq_api_reply_error(call, LPQ_API_E_INTERNAL, NULL, "out of memory");
    export_free(x);
    return;
  }
  if (!x->want_onnx && !x->want_packed && !x->want_q && cached_names(d, id, x->nl, names) == 0) {
    export_make(x, names);
    free(names);
    export_reply(x);
    return;
  }
  free(names);
  if (lpq_store_blob_path(d->store, x->js.model, &x->model_path, &x->err) != 0 ||
      (x->want_q && lpq_store_blob_path(d->store, x->js.data, &x->data_path, &x->err) != 0)) {
    x->code = LPQ_API_E_IO;
    export_reply(x);
    return;
  }
  x->work.data = x;
  int rc = uv_queue_work(d->loop, &x->work, export_work, export_done);
  if (rc != 0) {
    x->code = LPQ_API_E_INTERNAL;
    lpq_errorf(&x->err, LPQ_ENOMEM, "cannot queue the export: %s", uv_strerror(rc));
    export_reply(x);
  }
}
