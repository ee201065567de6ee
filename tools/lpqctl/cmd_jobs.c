/* tools/lpqctl/cmd_jobs.c: lpqctl submit, list, status, watch and cancel, and the progress
** display that submit and watch share. */
#include "tools/lpqctl/lpqctl.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- progress -------------------------------------------------------------------------------- */

static int is_final(const json_t *p) {
  const char *st = json_string_value(json_object_get(p, "status"));
  return json_is_true(json_object_get(p, "final")) ||
         (st && (!strcmp(st, "done") || !strcmp(st, "failed") || !strcmp(st, "canceled")));
}

static void show_progress(const ctl_t *ctl, const json_t *p, int tty) {
  if (ctl->json) {
    char *t = json_dumps(p, JSON_COMPACT | JSON_REAL_PRECISION(10));
    printf("%s\n", t ? t : "{}");
    free(t);
    fflush(stdout);
    return;
  }
  char b1[32], b2[32], b3[32];
  double frac = json_number_value(json_object_get(p, "progress"));
  if (frac < 0)
    frac = 0;
  if (frac > 1)
    frac = 1;
  const char *status = json_string_value(json_object_get(p, "status"));
  long long gen = json_integer_value(json_object_get(p, "generation"));
  const json_t *gens = json_object_get(p, "generations");
  long long evals = json_integer_value(json_object_get(p, "evaluations"));
  const char *best = ctl_num(json_object_get(p, "best_l_co"), "%.4g", b1, sizeof b1);
  const char *eta = ctl_duration(json_object_get(p, "eta_s"), b2, sizeof b2);
  const char *gens_text = ctl_num(gens, "%.0f", b3, sizeof b3);
  if (tty) {
    char bar[31];
    int filled = (int)(frac * 30 + 0.5);
    for (int i = 0; i < 30; i++)
      bar[i] = i < filled ? '#' : '.';
    bar[30] = '\0';
    printf("\r\033[K[%s] %3.0f%%  %-8s gen %lld/%s  evals %lld  best L_CO %s  ETA %s", bar,
           frac * 100, status ? status : "?", gen, gens_text, evals, best, eta);
    if (is_final(p))
      printf("\n");
  } else {
    printf("job %lld %s generation %lld/%s evaluations %lld progress %.0f%% best_l_co %s eta %s\n",
           json_integer_value(json_object_get(p, "job")), status ? status : "?", gen, gens_text,
           evals, frac * 100, best, eta);
  }
  fflush(stdout);
}

static int final_status(const json_t *p) {
  const char *st = json_string_value(json_object_get(p, "status"));
  const char *error = json_string_value(json_object_get(p, "error"));
  if (st && strcmp(st, "done") == 0) {
    long long job = json_integer_value(json_object_get(p, "job"));
    fprintf(stderr, "lpqctl: job %lld done; see lpqctl pareto %lld and lpqctl export %lld\n", job,
            job, job);
    return CTL_OK;
  }
  fprintf(stderr, "lpqctl: job %lld %s%s%s\n", json_integer_value(json_object_get(p, "job")),
          st ? st : "ended", error ? ": " : "", error ? error : "");
  return CTL_FAILED;
}

int ctl_follow_job(ctl_t *ctl, long job) {
  json_t *snapshot = NULL;
  int rc = ctl_call(ctl, "job.watch", json_pack("{sI}", "job", (json_int_t)job), &snapshot, NULL,
                    NULL);
  if (rc != CTL_OK)
    return rc;
  int tty = !ctl->json && isatty(STDOUT_FILENO);
  show_progress(ctl, snapshot, tty);
  if (is_final(snapshot)) {
    rc = final_status(snapshot);
    json_decref(snapshot);
    return rc;
  }
  json_decref(snapshot);
  for (;;) {
    char *method = NULL;
    json_t *params = NULL;
    rc = ctl_next_notification(ctl, -1, &method, &params);
    if (rc != CTL_OK)
      return rc;
    int mine = strcmp(method, "job.progress") == 0 &&
               json_integer_value(json_object_get(params, "job")) == job;
    free(method);
    if (mine) {
      show_progress(ctl, params, tty);
      if (is_final(params)) {
        rc = final_status(params);
        json_decref(params);
        return rc;
      }
    }
    json_decref(params);
  }
}

/* ---- submit ---------------------------------------------------------------------------------- */

static void submit_usage(FILE *out) {
  fprintf(out,
          "usage: lpqctl submit --model M.onnx --data X [--labels Y] [options]\n"
          "  queues a search of the model's layer-wise LP formats, then follows its progress\n"
          "  (a bar on a terminal, one line per generation otherwise) until it ends.\n"
          "\n"
          "  --model FILE          the ONNX model\n"
          "  --data FILE           calibration inputs (.npy float32, or IDX)\n"
          "  --labels FILE         class indices for top-1 (.npy or IDX)\n"
          "  --val-data FILE --val-labels FILE  a labelled validation set (training images\n"
          "                        kept out of calibration, never the test set): the job ends\n"
          "                        by scoring its final front on it and picks its best there\n"
          "  --max-drop P          with --val-data: the best is the cheapest front member within\n"
          "                        P points of fp32's validation top-1\n"
          "  --name NAME           the job's name [the model's file name]\n"
          "  --seed N              the job's seed [1]\n"
          "  --mode pareto|scalar  NSGA-II over (L_CO, L_CR), or L_CO * L_CR^lambda [pareto]\n"
          "  --objective bits|latency|energy|edp   what L_CR measures [bits]\n"
          "  --population N, --generations N, --max-evals N, --max-seconds S, --patience N\n"
          "  --wbits-max B         constraint: mean weight bits <= B\n"
          "  --set KEY=VALUE       any setting of schema/api/job.submit.json (VALUE is JSON or\n"
          "                        text; KEY may be dotted: constraints.mean_act_bits_max=6)\n"
          "  --settings FILE.json  settings from a file (options above override it)\n"
          "  --upload              send the files' bytes (default over --tcp); otherwise the\n"
          "                        coordinator reads the paths on its own host\n"
          "  --detach              print the job id and return without following it\n"
          "  --json                print the job as JSON (and progress as JSON lines)\n");
}

/* Sets settings[key] (dotted keys make nested objects) to value (stolen). */
static int set_dotted(json_t *settings, const char *key, json_t *value) {
  char buf[256];
  snprintf(buf, sizeof buf, "%s", key);
  json_t *obj = settings;
  char *part = buf, *dot;
  while ((dot = strchr(part, '.')) != NULL) {
    *dot = '\0';
    json_t *child = json_object_get(obj, part);
    if (!json_is_object(child)) {
      child = json_object();
      json_object_set_new(obj, part, child);
    }
    obj = child;
    part = dot + 1;
  }
  return json_object_set_new(obj, part, value);
}

static json_t *parse_value(const char *text) {
  json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);
  return v ? v : json_string(text);
}

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return NULL;
  char *data = NULL;
  size_t cap = 0, n = 0;
  for (;;) {
    if (cap - n < 65536) {
      cap = cap ? cap * 2 : 1 << 20;
      char *d = realloc(data, cap);
      if (d == NULL) {
        free(data);
        fclose(f);
        return NULL;
      }
      data = d;
    }
    size_t got = fread(data + n, 1, cap - n, f);
    n += got;
    if (got == 0)
      break;
  }
  int bad = ferror(f);
  fclose(f);
  if (bad) {
    free(data);
    return NULL;
  }
  *len = n;
  return data;
}

/* The blob object for a file: {"path": absolute} or, uploading, {"hash": ...} via blob.put. */
static int blob_of(ctl_t *ctl, const char *path, int upload, json_t **out) {
  *out = NULL;
  if (!upload) {
    char abs[PATH_MAX];
    if (realpath(path, abs) == NULL) {
      fprintf(stderr, "lpqctl submit: %s: %s\n", path, strerror(errno));
      return CTL_USAGE;
    }
    *out = json_pack("{ss}", "path", abs);
    return CTL_OK;
  }
  size_t len = 0;
  char *data = read_file(path, &len);
  if (data == NULL) {
    fprintf(stderr, "lpqctl submit: cannot read %s: %s\n", path, strerror(errno));
    return CTL_USAGE;
  }
  char *b64 = lpq_base64_encode(data, len);
  free(data);
  if (b64 == NULL) {
    fprintf(stderr, "lpqctl submit: out of memory encoding %s\n", path);
    return CTL_FAILED;
  }
  const char *base = strrchr(path, '/');
  json_t *params = json_pack("{ss ss}", "base64", b64, "name", base ? base + 1 : path);
  free(b64);
  json_t *result = NULL;
  int rc = ctl_call(ctl, "blob.put", params, &result, NULL, NULL);
  if (rc != CTL_OK)
    return rc;
  const char *hash = json_string_value(json_object_get(result, "hash"));
  if (hash)
    *out = json_pack("{ss}", "hash", hash);
  json_decref(result);
  return *out ? CTL_OK : CTL_FAILED;
}

int cmd_submit(ctl_t *ctl, int argc, char **argv) {
  const char *model = NULL, *data = NULL, *labels = NULL, *name = NULL, *settings_file = NULL;
  const char *val_data = NULL, *val_labels = NULL;
  int upload = 0, detach = 0;
  json_t *settings = json_object(), *seed = NULL;
  int rc = CTL_USAGE;
  /* Shortcuts for settings: --NAME VALUE sets the settings member key. */
  static const struct {
    const char *option, *key;
  } shortcuts[] = {
      {"mode", "mode"}, {"objective", "objective"}, {"population", "population"},
      {"generations", "generations"}, {"max-evals", "max_evaluations"},
      {"max-seconds", "max_seconds"}, {"patience", "patience"},
      {"wbits-max", "constraints.mean_weight_bits_max"}, {"lambda", "lambda"},
      {"max-drop", "constraints.top1_drop_max"},
  };
  enum { UPLOAD = CTL_OPT_OWN, DETACH, MODEL, DATA, LABELS, VDATA, VLABELS, NAME, SETTINGS, SEED,
         SET, SHORTCUT };
  static const struct option own[] = {
      CTL_COMMON_OPTIONS,
      {"upload", no_argument, NULL, UPLOAD},
      {"detach", no_argument, NULL, DETACH},
      {"model", required_argument, NULL, MODEL},
      {"data", required_argument, NULL, DATA},
      {"labels", required_argument, NULL, LABELS},
      {"val-data", required_argument, NULL, VDATA},
      {"val-labels", required_argument, NULL, VLABELS},
      {"name", required_argument, NULL, NAME},
      {"settings", required_argument, NULL, SETTINGS},
      {"seed", required_argument, NULL, SEED},
      {"set", required_argument, NULL, SET},
  };
  const size_t nown = sizeof own / sizeof own[0], nshort = sizeof shortcuts / sizeof shortcuts[0];
  struct option opts[sizeof own / sizeof own[0] + sizeof shortcuts / sizeof shortcuts[0] + 1];
  memcpy(opts, own, sizeof own);
  for (size_t k = 0; k < nshort; k++)
    opts[nown + k] =
        (struct option){shortcuts[k].option, required_argument, NULL, SHORTCUT + (int)k};
  opts[nown + nshort] = (struct option){NULL, 0, NULL, 0};
  json_t *overrides = json_object();
  int c;
  optind = 0;
  while ((c = ctl_getopt(ctl, "submit", argc, argv, "h", opts)) != -1) {
    const char *v = optarg;
    if (c == 'h') {
      submit_usage(stdout);
      rc = CTL_OK;
      goto done;
    } else if (c == UPLOAD) {
      upload = 1;
    } else if (c == DETACH) {
      detach = 1;
    } else if (c >= SHORTCUT && c < SHORTCUT + (int)nshort) {
      set_dotted(overrides, shortcuts[c - SHORTCUT].key, parse_value(v));
    } else if (c == MODEL) {
      model = v;
    } else if (c == DATA) {
      data = v;
    } else if (c == LABELS) {
      labels = v;
    } else if (c == VDATA) {
      val_data = v;
    } else if (c == VLABELS) {
      val_labels = v;
    } else if (c == NAME) {
      name = v;
    } else if (c == SETTINGS) {
      settings_file = v;
    } else if (c == SEED) {
      json_decref(seed);
      seed = parse_value(v);
    } else if (c == SET) {
      const char *eq = strchr(v, '=');
      if (eq == NULL || eq == v) {
        fprintf(stderr, "lpqctl submit: --set wants KEY=VALUE, got '%s'\n", v);
        goto done;
      }
      char key[256];
      snprintf(key, sizeof key, "%.*s", (int)(eq - v), v);
      set_dotted(overrides, key, parse_value(eq + 1));
    } else {
      submit_usage(stderr);
      goto done;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "lpqctl submit: unexpected argument '%s'\n", argv[optind]);
    submit_usage(stderr);
    goto done;
  }
  if (model == NULL || data == NULL) {
    fprintf(stderr, "lpqctl submit: --model and --data are required\n");
    submit_usage(stderr);
    goto done;
  }
  if (settings_file) {
    json_error_t jerr;
    json_t *file = json_load_file(settings_file, 0, &jerr);
    if (!json_is_object(file)) {
      fprintf(stderr, "lpqctl submit: %s: %s (line %d)\n", settings_file,
              file ? "not a JSON object" : jerr.text, jerr.line);
      json_decref(file);
      goto done;
    }
    json_object_update(settings, file);
    json_decref(file);
  }
  /* Options override the file, member by member (constraints included). */
  const char *key;
  json_t *value;
  json_object_foreach(overrides, key, value) {
    json_t *old = json_object_get(settings, key);
    if (json_is_object(old) && json_is_object(value))
      json_object_update(old, value);
    else
      json_object_set(settings, key, value);
  }
  if (ctl->tcp)
    upload = 1; /* the coordinator is on another host: paths would be meaningless there */
  json_t *params = json_object();
  json_t *blob = NULL;
  const char *files[][2] = {{"model", model}, {"data", data}, {"labels", labels},
                            {"val_data", val_data}, {"val_labels", val_labels}};
  for (size_t k = 0; k < sizeof files / sizeof files[0]; k++) {
    if (!files[k][1])
      continue; /* model and data are required above */
    if ((rc = blob_of(ctl, files[k][1], upload, &blob)) != CTL_OK)
      goto fail;
    json_object_set_new(params, files[k][0], blob);
  }
  if (name)
    json_object_set_new(params, "name", json_string(name));
  if (seed)
    json_object_set(params, "seed", seed);
  if (json_object_size(settings) > 0)
    json_object_set(params, "settings", settings);
  json_t *result = NULL;
  rc = ctl_call(ctl, "job.submit", params, &result, NULL, NULL);
  params = NULL;
  if (rc != CTL_OK)
    goto done;
  long job = (long)json_integer_value(json_object_get(result, "job"));
  if (ctl->json) {
    char *t = json_dumps(result, JSON_COMPACT);
    printf("%s\n", t ? t : "{}");
    free(t);
  } else {
    printf("job %ld queued (%s)\n", job, json_string_value(json_object_get(result, "name")));
  }
  fflush(stdout);
  json_decref(result);
  rc = detach ? CTL_OK : ctl_follow_job(ctl, job);
  goto done;
fail:
  json_decref(params);
done:
  json_decref(settings);
  json_decref(overrides);
  json_decref(seed);
  return rc;
}

/* ---- list, status, watch, cancel ------------------------------------------------------------- */

/* Parses "CMD [options] JOB" for the commands that take one job id and no options of their own. */
static long one_job(ctl_t *ctl, int argc, char **argv, const char *help, int *rc) {
  static const struct option opts[] = {CTL_COMMON_OPTIONS, {NULL, 0, NULL, 0}};
  *rc = CTL_USAGE;
  int c;
  optind = 0;
  while ((c = ctl_getopt(ctl, argv[0], argc, argv, "h", opts)) != -1) {
    if (c != 'h')
      return 0;
    printf("usage: lpqctl %s JOB [--json]\n  %s\n", argv[0], help);
    *rc = CTL_OK;
    return 0;
  }
  if (optind + 1 < argc) {
    fprintf(stderr, "lpqctl %s: unexpected argument '%s' (usage: lpqctl %s JOB)\n", argv[0],
            argv[optind + 1], argv[0]);
    return 0;
  }
  if (optind >= argc) {
    fprintf(stderr, "lpqctl %s: which job? (usage: lpqctl %s JOB; lpqctl list shows them)\n",
            argv[0], argv[0]);
    return 0;
  }
  return ctl_job_id(argv[0], argv[optind]);
}

int cmd_list(ctl_t *ctl, int argc, char **argv) {
  enum { STATUS = CTL_OPT_OWN, LIMIT };
  static const struct option opts[] = {CTL_COMMON_OPTIONS,
                                       {"status", required_argument, NULL, STATUS},
                                       {"limit", required_argument, NULL, LIMIT},
                                       {NULL, 0, NULL, 0}};
  json_t *params = json_object();
  int c;
  optind = 0;
  while ((c = ctl_getopt(ctl, "list", argc, argv, "h", opts)) != -1) {
    if (c == 'h') {
      printf("usage: lpqctl list [--status S[,S...]] [--limit N] [--json]\n"
             "  jobs, newest first; S is queued, running, paused, done, failed or canceled\n");
      json_decref(params);
      return CTL_OK;
    } else if (c == STATUS) {
      json_t *list = json_array();
      char buf[256];
      snprintf(buf, sizeof buf, "%s", optarg);
      for (char *save, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
        json_array_append_new(list, json_string(t));
      json_object_set_new(params, "status", list);
    } else if (c == LIMIT) {
      json_object_set_new(params, "limit", parse_value(optarg));
    } else {
      goto usage;
    }
  }
  if (optind < argc)
    goto usage;
  json_t *result;
  int rc = ctl_call(ctl, "job.list", params, &result, NULL, NULL);
  if (rc != CTL_OK)
    return rc;
  if (ctl->json) {
    ctl_print_json(result);
  } else {
    printf("%5s  %-24s %-9s %9s %7s %6s %10s  %s\n", "JOB", "NAME", "STATUS", "GEN", "EVALS",
           "DONE", "BEST_L_CO", "CREATED");
    size_t i;
    json_t *j;
    json_array_foreach(json_object_get(result, "jobs"), i, j) {
      char gen[32], b1[32], b2[32];
      snprintf(gen, sizeof gen, "%lld/%s", json_integer_value(json_object_get(j, "generation")),
               ctl_num(json_object_get(j, "generations"), "%.0f", b1, sizeof b1));
      const json_t *progress = json_object_get(j, "progress");
      char pct[16] = "-";
      if (json_is_number(progress))
        snprintf(pct, sizeof pct, "%.0f%%", 100 * json_number_value(progress));
      const char *created = json_string_value(json_object_get(j, "created_at"));
      printf("%5lld  %-24.24s %-9s %9s %7lld %6s %10s  %s\n",
             json_integer_value(json_object_get(j, "job")),
             json_string_value(json_object_get(j, "name")),
             json_string_value(json_object_get(j, "status")), gen,
             json_integer_value(json_object_get(j, "evaluations")), pct,
             ctl_num(json_object_get(j, "best_l_co"), "%.4g", b2, sizeof b2),
             created ? created : "-");
    }
  }
  json_decref(result);
  return CTL_OK;
usage:
  fprintf(stderr, "usage: lpqctl list [--status S[,S...]] [--limit N] [--json]\n");
  json_decref(params);
  return CTL_USAGE;
}

static void print_field(const char *name, const json_t *v) {
  if (v == NULL)
    return;
  if (json_is_string(v)) {
    printf("%-20s %s\n", name, json_string_value(v));
  } else {
    char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(8));
    printf("%-20s %s\n", name, t ? t : "?");
    free(t);
  }
}

/* Each member of object o as "prefix.key"; 0 when o is not an object. */
static int print_fields(const char *prefix, const json_t *o) {
  if (!json_is_object(o))
    return 0;
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)o, key, v) {
    char name[64];
    snprintf(name, sizeof name, "%s.%s", prefix, key);
    print_field(name, v);
  }
  return 1;
}

int cmd_status(ctl_t *ctl, int argc, char **argv) {
  int rc;
  long job = one_job(ctl, argc, argv, "one job: status, settings, progress, best so far, ETA, the "
                     "validation pick", &rc);
  if (job == 0)
    return rc;
  json_t *r;
  if ((rc = ctl_call(ctl, "job.get", json_pack("{sI}", "job", (json_int_t)job), &r, NULL, NULL)))
    return rc;
  if (ctl->json) {
    ctl_print_json(r);
    json_decref(r);
    return CTL_OK;
  }
  char b[32];
  static const char *const plain[] = {"job", "name", "status", "error", "stop_reason",
                                      "created_at", "started_at", "finished_at", "generation",
                                      "generations", "evaluations", "evaluations_failed",
                                      "evaluations_pending", "front_size", "hypervolume"};
  for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++)
    if (!json_is_null(json_object_get(r, plain[i])))
      print_field(plain[i], json_object_get(r, plain[i]));
  const json_t *progress = json_object_get(r, "progress");
  if (json_is_number(progress))
    printf("%-20s %.1f%%\n", "progress", 100 * json_number_value(progress));
  printf("%-20s %s\n", "elapsed", ctl_duration(json_object_get(r, "elapsed_s"), b, sizeof b));
  printf("%-20s %s\n", "eta", ctl_duration(json_object_get(r, "eta_s"), b, sizeof b));
  if (!print_fields("best", json_object_get(r, "best")))
    printf("%-20s none yet\n", "best");
  /* the validation pick (with val_data): its rule, the chosen member, fp32's and its top-1,
  ** Spearman's rank correlation of L_CO and validation top-1 over the members scored */
  print_fields("pick", json_object_get(r, "pick"));
  print_field("settings", json_object_get(r, "settings"));
  json_decref(r);
  return CTL_OK;
}

int cmd_watch(ctl_t *ctl, int argc, char **argv) {
  int rc;
  long job = one_job(ctl, argc, argv, "follows a job's progress until it ends (a bar on a "
                     "terminal, one line per generation otherwise; JSON lines with --json)", &rc);
  return job ? ctl_follow_job(ctl, job) : rc;
}

int cmd_cancel(ctl_t *ctl, int argc, char **argv) {
  int rc;
  long job = one_job(ctl, argc, argv, "cancels a job (its committed results stay)", &rc);
  if (job == 0)
    return rc;
  json_t *r;
  if ((rc = ctl_call(ctl, "job.cancel", json_pack("{sI}", "job", (json_int_t)job), &r, NULL, NULL)))
    return rc;
  if (ctl->json)
    ctl_print_json(r);
  else if (json_is_true(json_object_get(r, "changed")))
    printf("job %ld %s\n", job, json_string_value(json_object_get(r, "status")));
  else
    printf("job %ld had already ended (%s); nothing changed\n", job,
           json_string_value(json_object_get(r, "status")));
  json_decref(r);
  return CTL_OK;
}
