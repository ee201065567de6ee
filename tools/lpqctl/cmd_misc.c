/* tools/lpqctl/cmd_misc.c: lpqctl export, workers, history (tables and views of the database
** through db.query, as CSV or JSON) and stats. */
#include "tools/lpqctl/lpqctl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static json_t *parse_value(const char *text) {
  json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);
  return v ? v : json_string(text);
}

static json_t *split_list(const char *text) {
  json_t *list = json_array();
  char *copy = strdup(text);
  for (char *save, *t = copy ? strtok_r(copy, ",", &save) : NULL; t; t = strtok_r(NULL, ",", &save))
    json_array_append_new(list, json_string(t));
  free(copy);
  return list;
}

/* ---- export ---------------------------------------------------------------------------------- */

static void export_usage(FILE *out) {
  fprintf(out, "usage: lpqctl export JOB [--genome HASH] [--what config,onnx,packed,quantized | --all]\n"
               "                          [-o DIR | --remote-dir DIR] [--json]\n"
               "  writes the chosen genome's artefacts into DIR [.]: config.json (the candidate\n"
               "  config), model_lp.onnx (weights rounded to their LP formats; runs on any ONNX\n"
               "  runtime), weights.lpw (the packed LP codes), model_q.onnx and\n"
               "  model_q.encodings.json (the quantized model as lpq export writes it, the job's\n"
               "  bias correction included when it was scored with it). Default: the job's best\n"
               "  genome and only the config. --remote-dir has the coordinator write them on its\n"
               "  own host.\n");
}

static int write_bytes(const char *dir, const char *name, const unsigned char *data, size_t len) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  if (f == NULL || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
    fprintf(stderr, "lpqctl export: cannot write %s: %s\n", path, strerror(errno));
    return -1;
  }
  printf("%s (%zu bytes)\n", path, len);
  return 0;
}

static int save_file(const char *dir, const char *name, const json_t *file) {
  const char *b64 = json_string_value(json_object_get(file, "base64"));
  if (b64 == NULL) {
    const char *remote = json_string_value(json_object_get(file, "path"));
    printf("%s (on the coordinator's host)\n", remote ? remote : name);
    return 0;
  }
  unsigned char *bytes;
  size_t len;
  lpq_error_t err;
  if (lpq_base64_decode(b64, strlen(b64), &bytes, &len, &err) != 0) {
    fprintf(stderr, "lpqctl export: %s from the coordinator: %s\n", name, err.msg);
    return -1;
  }
  json_int_t want = json_integer_value(json_object_get(file, "bytes"));
  int rc = 0;
  if (json_object_get(file, "bytes") && (size_t)want != len) {
    fprintf(stderr, "lpqctl export: %s: %zu bytes received, %lld announced\n", name, len,
            (long long)want);
    rc = -1;
  }
  if (rc == 0)
    rc = write_bytes(dir, name, bytes, len);
  free(bytes);
  return rc;
}

int cmd_export(ctl_t *ctl, int argc, char **argv) {
  enum { ALL = CTL_OPT_OWN, WHAT, GENOME, REMOTE_DIR };
  static const struct option opts[] = {CTL_COMMON_OPTIONS,
                                       {"all", no_argument, NULL, ALL},
                                       {"what", required_argument, NULL, WHAT},
                                       {"genome", required_argument, NULL, GENOME},
                                       {"remote-dir", required_argument, NULL, REMOTE_DIR},
                                       {"out", required_argument, NULL, 'o'},
                                       {NULL, 0, NULL, 0}};
  const char *job_text = NULL, *dir = ".";
  json_t *params = json_object();
  int c;
  optind = 0;
  while ((c = ctl_getopt(ctl, "export", argc, argv, "ho:", opts)) != -1) {
    if (c == 'h') {
      export_usage(stdout);
      json_decref(params);
      return CTL_OK;
    } else if (c == ALL) {
      json_object_set_new(params, "what", json_pack("[ssss]", "config", "onnx", "packed", "quantized"));
    } else if (c == WHAT) {
      json_object_set_new(params, "what", split_list(optarg));
    } else if (c == GENOME) {
      json_object_set_new(params, "genome", json_string(optarg));
    } else if (c == REMOTE_DIR) {
      json_object_set_new(params, "dir", json_string(optarg));
    } else if (c == 'o') {
      dir = optarg;
    } else {
      goto usage;
    }
  }
  if (optind + 1 < argc) {
    fprintf(stderr, "lpqctl export: unexpected argument '%s'\n", argv[optind + 1]);
    goto usage;
  }
  job_text = optind < argc ? argv[optind] : NULL;
  long job = job_text ? ctl_job_id("export", job_text) : 0;
  if (job == 0)
    goto usage;
  json_object_set_new(params, "job", json_integer(job));
  struct stat st;
  if (!json_object_get(params, "dir") && (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))) {
    fprintf(stderr, "lpqctl export: %s is not a folder\n", dir);
    json_decref(params);
    return CTL_USAGE;
  }
  json_t *r;
  int rc = ctl_call(ctl, "job.export", params, &r, NULL, NULL);
  if (rc != CTL_OK)
    return rc;
  if (ctl->json) {
    ctl_print_json(r);
    json_decref(r);
    return CTL_OK;
  }
  printf("job %lld genome %s\n", json_integer_value(json_object_get(r, "job")),
         json_string_value(json_object_get(r, "genome")));
  const json_t *config = json_object_get(r, "config");
  if (config) {
    char *text = json_dumps(config, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
    if (text == NULL || write_bytes(dir, "config.json", (unsigned char *)text, strlen(text)) != 0)
      rc = CTL_FAILED;
    free(text);
  }
  if (json_object_get(r, "onnx") && save_file(dir, "model_lp.onnx", json_object_get(r, "onnx")))
    rc = CTL_FAILED;
  if (json_object_get(r, "packed") && save_file(dir, "weights.lpw", json_object_get(r, "packed")))
    rc = CTL_FAILED;
  if (json_object_get(r, "quantized") &&
      (save_file(dir, "model_q.onnx", json_object_get(r, "quantized")) ||
       save_file(dir, "model_q.encodings.json", json_object_get(r, "encodings"))))
    rc = CTL_FAILED;
  json_decref(r);
  return rc;
usage:
  export_usage(stderr);
  json_decref(params);
  return CTL_USAGE;
}

/* ---- workers, stats -------------------------------------------------------------------------- */

/* Commands without arguments of their own. */
static int no_args(ctl_t *ctl, int argc, char **argv, const char *help) {
  static const struct option opts[] = {CTL_COMMON_OPTIONS, {NULL, 0, NULL, 0}};
  int c;
  optind = 0;
  while ((c = ctl_getopt(ctl, argv[0], argc, argv, "h", opts)) != -1) {
    if (c != 'h')
      return CTL_USAGE;
    printf("usage: lpqctl %s [--json]\n  %s\n", argv[0], help);
    return CTL_OK + 100;
  }
  if (optind < argc) {
    fprintf(stderr, "lpqctl %s: unexpected argument '%s'\n", argv[0], argv[optind]);
    return CTL_USAGE;
  }
  return -1;
}

int cmd_workers(ctl_t *ctl, int argc, char **argv) {
  int rc = no_args(ctl, argc, argv, "the workers the coordinator knows and what they do");
  if (rc >= 0)
    return rc == 100 ? CTL_OK : rc;
  json_t *r;
  if ((rc = ctl_call(ctl, "worker.list", NULL, &r, NULL, NULL)))
    return rc;
  if (ctl->json) {
    ctl_print_json(r);
  } else {
    printf("%-28s %-5s %-24s %7s %5s %9s %9s\n", "WORKER", "STATE", "TASK", "EVALS", "FAIL",
           "MEAN_MS", "SEEN_S");
    size_t i;
    json_t *w;
    json_array_foreach(json_object_get(r, "workers"), i, w) {
      char task[64] = "-", b1[32], b2[32];
      const json_t *t = json_object_get(w, "task");
      if (json_is_object(t))
        snprintf(task, sizeof task, "job %lld %s", json_integer_value(json_object_get(t, "job")),
                 json_string_value(json_object_get(t, "genome")) ?: "");
      printf("%-28.28s %-5s %-24.24s %7lld %5lld %9s %9s\n",
             json_string_value(json_object_get(w, "id")),
             json_string_value(json_object_get(w, "state")), task,
             json_integer_value(json_object_get(w, "evaluations")),
             json_integer_value(json_object_get(w, "failures")),
             ctl_num(json_object_get(w, "mean_eval_ms"), "%.1f", b1, sizeof b1),
             ctl_num(json_object_get(w, "last_seen_s"), "%.1f", b2, sizeof b2));
    }
  }
  json_decref(r);
  return CTL_OK;
}

int cmd_stats(ctl_t *ctl, int argc, char **argv) {
  int rc = no_args(ctl, argc, argv, "the API server's counters: connections, requests, errors, "
                   "per-method calls and latency");
  if (rc >= 0)
    return rc == 100 ? CTL_OK : rc;
  json_t *r;
  if ((rc = ctl_call(ctl, "server.stats", NULL, &r, NULL, NULL)))
    return rc;
  if (ctl->json) {
    ctl_print_json(r);
    json_decref(r);
    return CTL_OK;
  }
  char b[32];
  const json_t *c = json_object_get(r, "connections");
  printf("uptime %s, connections open %lld (accepted %lld, rejected %lld), subscriptions %lld\n",
         ctl_duration(json_object_get(r, "uptime_s"), b, sizeof b),
         json_integer_value(json_object_get(c, "open")),
         json_integer_value(json_object_get(c, "accepted")),
         json_integer_value(json_object_get(c, "rejected")),
         json_integer_value(json_object_get(c, "subscriptions")));
  printf("requests %lld, batches %lld, notifications in %lld / out %lld, "
         "bytes in %lld / out %lld\n",
         json_integer_value(json_object_get(r, "requests")),
         json_integer_value(json_object_get(r, "batches")),
         json_integer_value(json_object_get(r, "notifications_in")),
         json_integer_value(json_object_get(r, "notifications_out")),
         json_integer_value(json_object_get(r, "bytes_in")),
         json_integer_value(json_object_get(r, "bytes_out")));
  const char *key;
  json_t *v;
  printf("errors:");
  json_object_foreach(json_object_get(r, "errors"), key, v)
      printf(" %s x%lld", key, json_integer_value(v));
  printf("\n%-16s %8s %7s %7s %9s %9s %9s %9s\n", "METHOD", "CALLS", "ERRORS", "PENDING",
         "MEAN_MS", "P50_MS", "P99_MS", "MAX_MS");
  json_object_foreach(json_object_get(r, "methods"), key, v) {
    char m[4][32];
    printf("%-16s %8lld %7lld %7lld %9s %9s %9s %9s\n", key,
           json_integer_value(json_object_get(v, "calls")),
           json_integer_value(json_object_get(v, "errors")),
           json_integer_value(json_object_get(v, "pending")),
           ctl_num(json_object_get(v, "mean_ms"), "%.3f", m[0], 32),
           ctl_num(json_object_get(v, "p50_ms"), "%.3f", m[1], 32),
           ctl_num(json_object_get(v, "p99_ms"), "%.3f", m[2], 32),
           ctl_num(json_object_get(v, "max_ms"), "%.3f", m[3], 32));
  }
  json_decref(r);
  return CTL_OK;
}

/* ---- history --------------------------------------------------------------------------------- */

static void history_usage(FILE *out) {
  fprintf(out,
          "usage: lpqctl history                      the tables and views there are\n"
          "       lpqctl history TABLE [--columns A,B] [--where COL=VALUE]... [--order-by COL]\n"
          "                            [--desc] [--limit N] [--offset N] [--format csv|json]\n"
          "  rows of one table or view of the coordinator's database (e.g. v_pareto,\n"
          "  v_generation_stats, v_best_config, v_sensitivity, evaluations), as CSV [default]\n"
          "  or JSON\n"
          "  (an array of objects); --json prints the API's answer as it is.\n");
}

static void csv_cell(const json_t *v) {
  if (v == NULL || json_is_null(v))
    return;
  if (json_is_string(v)) {
    const char *s = json_string_value(v);
    if (strpbrk(s, ",\"\r\n") == NULL) {
      fputs(s, stdout);
      return;
    }
    putchar('"');
    for (; *s; s++) {
      if (*s == '"')
        putchar('"');
      putchar(*s);
    }
    putchar('"');
    return;
  }
  if (json_is_real(v)) {
    printf("%.17g", json_real_value(v));
    return;
  }
  char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
  fputs(t ? t : "", stdout);
  free(t);
}

static int list_tables(ctl_t *ctl) {
  json_t *r;
  int rc = ctl_call(ctl, "db.tables", NULL, &r, NULL, NULL);
  if (rc != CTL_OK)
    return rc;
  if (ctl->json) {
    ctl_print_json(r);
  } else {
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(r, "tables"), i, t) {
      const char *d = json_string_value(json_object_get(t, "description"));
      printf("%-24s %-5s %s\n", json_string_value(json_object_get(t, "name")),
             json_string_value(json_object_get(t, "type")), d ? d : "");
    }
  }
  json_decref(r);
  return CTL_OK;
}

int cmd_history(ctl_t *ctl, int argc, char **argv) {
  enum { DESC = CTL_OPT_OWN, COLUMNS, WHERE, ORDER_BY, LIMIT, OFFSET, FORMAT };
  static const struct option opts[] = {CTL_COMMON_OPTIONS,
                                       {"desc", no_argument, NULL, DESC},
                                       {"columns", required_argument, NULL, COLUMNS},
                                       {"where", required_argument, NULL, WHERE},
                                       {"order-by", required_argument, NULL, ORDER_BY},
                                       {"limit", required_argument, NULL, LIMIT},
                                       {"offset", required_argument, NULL, OFFSET},
                                       {"format", required_argument, NULL, FORMAT},
                                       {NULL, 0, NULL, 0}};
  const char *table = NULL, *format = "csv";
  json_t *params = json_object(), *where = json_object();
  int c;
  optind = 0;
  while ((c = ctl_getopt(ctl, "history", argc, argv, "h", opts)) != -1) {
    const char *v = optarg;
    if (c == 'h') {
      history_usage(stdout);
      json_decref(params);
      json_decref(where);
      return CTL_OK;
    } else if (c == DESC) {
      json_object_set_new(params, "descending", json_true());
    } else if (c == COLUMNS) {
      json_object_set_new(params, "columns", split_list(v));
    } else if (c == WHERE) {
      const char *eq = strchr(v, '=');
      if (eq == NULL || eq == v) {
        fprintf(stderr, "lpqctl history: --where wants COLUMN=VALUE, got '%s'\n", v);
        goto usage;
      }
      char col[128];
      snprintf(col, sizeof col, "%.*s", (int)(eq - v), v);
      json_object_set_new(where, col, parse_value(eq + 1));
    } else if (c == ORDER_BY) {
      json_object_set_new(params, "order_by", json_string(v));
    } else if (c == LIMIT || c == OFFSET) {
      json_object_set_new(params, c == LIMIT ? "limit" : "offset", parse_value(v));
    } else if (c == FORMAT) {
      format = v;
      if (strcmp(format, "csv") && strcmp(format, "json")) {
        fprintf(stderr, "lpqctl history: --format is csv or json, not '%s'\n", format);
        goto usage;
      }
    } else {
      goto usage;
    }
  }
  if (optind + 1 < argc) {
    fprintf(stderr, "lpqctl history: unexpected argument '%s'\n", argv[optind + 1]);
    goto usage;
  }
  table = optind < argc ? argv[optind] : NULL;
  if (table == NULL) {
    json_decref(params);
    json_decref(where);
    return list_tables(ctl);
  }
  json_object_set_new(params, "table", json_string(table));
  if (json_object_size(where))
    json_object_set(params, "where", where);
  json_decref(where);
  json_t *r;
  int rc = ctl_call(ctl, "db.query", params, &r, NULL, NULL);
  if (rc != CTL_OK)
    return rc;
  const json_t *cols = json_object_get(r, "columns"), *rows = json_object_get(r, "rows");
  if (ctl->json) {
    ctl_print_json(r);
  } else if (!strcmp(format, "json")) {
    json_t *records = json_array();
    size_t i, k;
    json_t *row, *col;
    json_array_foreach(rows, i, row) {
      json_t *rec = json_object();
      json_array_foreach(cols, k, col)
          json_object_set(rec, json_string_value(col), json_array_get(row, k));
      json_array_append_new(records, rec);
    }
    ctl_print_json(records);
    json_decref(records);
  } else {
    size_t i, k;
    json_t *row, *col;
    json_array_foreach(cols, k, col) {
      if (k)
        putchar(',');
      csv_cell(col);
    }
    putchar('\n');
    json_array_foreach(rows, i, row) {
      for (k = 0; k < json_array_size(cols); k++) {
        if (k)
          putchar(',');
        csv_cell(json_array_get(row, k));
      }
      putchar('\n');
    }
  }
  if (json_is_true(json_object_get(r, "truncated")))
    fprintf(stderr, "lpqctl history: more rows match; raise --limit or use --offset\n");
  json_decref(r);
  return CTL_OK;
usage:
  history_usage(stderr);
  json_decref(params);
  json_decref(where);
  return CTL_USAGE;
}
