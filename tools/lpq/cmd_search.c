/* tools/lpq/cmd_search.c: `lpq search`, a whole LPQ search on this machine (DESIGN section 6). */
#include "tools/lpq/lpq.h"
#include "tools/lpq/search_job.h"

#include <cblas.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void usage(FILE *out) {
  /* The defaults printed are the ones a job gets (lpq_job_settings_default: one source). */
  lpq_job_settings_t d;
  lpq_job_settings_default(&d);
  fprintf(out,
      "usage: lpq search --model M.onnx --data X [--labels Y] [settings]\n"
      "data\n"
      "  --data X              calibration inputs (.npy float32 or IDX); the first --calib are used\n"
      "  --calib N             calibration batch for L_CO (default %zu)\n"
      "  --calib-data X2       calibrate on X2 instead of X (e.g. training images)\n"
      "  --labels Y            labels of X: top-1 of the front's configs over all of X\n"
      "  --norm MEAN,STD       normalise IDX/uint8 images: (x/255 - MEAN) / STD\n"
      "search\n"
      "  --mode pareto|scalar  NSGA-II over (L_CO, L_CR), or L_F = L_CO * L_CR^lambda (pareto)\n"
      "  --lambda L            scalar mode exponent (%g)\n"
      "  --objective O         L_CR: bits (mean weight bits / 32), latency, energy or edp on\n"
      "                        the LPA, relative to every layer at 8 bits (bits)\n"
      "  --max-weight-bits B   constraint: mean weight bits <= B\n"
      "  --max-act-bits A      constraint: every activation format <= A bits\n"
      "  --max-latency-ms L    constraint: LPA latency <= L milliseconds per inference\n"
      "  --weight-only         quantize weights only (activations stay fp32)\n"
      "  --bits LO:HI          weight bits range (%d:%d)\n"
      "  --act-bits LO:HI      activation bits range (the weights' range)\n"
      "  --es LO:HI            exponent bits range (%d:%d)\n"
      "  --sf-window W         sf within +-W of each layer's statistics seed (%d)\n"
      "  --weight-sf S         the weights' scale: tensor (one sf), channel (one sf per output\n"
      "                        channel, the searched sf an offset on them) or search (either,\n"
      "                        per layer) (%s)\n"
      "  --bias-correction on|off  correct each quantized layer's bias for the mean output\n"
      "                        shift its weights' rounding causes on the calibration batch (%s)\n"
      "  --pin-ends            first and last layer at 8 bits\n"
      "  --population P        (%zu)    --siblings S   diversity-promoting siblings (%zu)\n"
      "  --seed S              (%llu)     --temperature T InfoNCE temperature (%g)\n"
      "  --random              random search with the same budget instead (a baseline)\n"
      "stopping (any that is set)\n"
      "  --generations G (%zu)  --evaluations E   --time SECONDS   --patience K\n"
      "output\n"
      "  --threads T           evaluation threads (2)\n"
      "  --top1 K              top-1 of at most K front configs, lowest L_CO first (8)\n"
      "  --hv-ref X,Y          hypervolume reference point (L_CO, L_CR) for comparisons\n"
      "  --out DIR             front.json, config_NN.json per front member, front.svg,\n"
      "                        history.json, state.json\n"
      "  --json                one JSON object instead of text\n",
      d.calib, d.lambda, d.n_min, d.n_max, d.es_min, d.es_max, d.sf_window,
      d.weight_sf == LPQ_SF_CHANNEL ? "channel" : d.weight_sf == LPQ_SF_SEARCH ? "search" : "tensor",
      d.bias_correction ? "on" : "off", d.population,
      d.siblings, (unsigned long long)d.seed, d.temperature, d.generations);
}

typedef struct args_t {
  const char *model, *data, *labels, *calib_data, *out;
  size_t top1;
  double hv_ref[2];
  int threads, json, random, have_hv_ref;
  lpq_search_space_t space;
  lpq_search_settings_t set;
  search_job_t job; /* job.js: the job's settings, from the flags */
} args_t;

static int range_arg(const char *s, int *lo, int *hi) {
  return sscanf(s, "%d:%d", lo, hi) == 2 && *lo <= *hi ? 0 : -1;
}

static int parse(int argc, char **argv, args_t *a) {
  enum { O_CALIBDATA = 256, O_MAXW, O_MAXA, O_MAXLAT, O_WONLY, O_PIN, O_SIBL, O_HV, O_ABITS, O_WSF, O_BC };
  static const struct option opts[] = {
      {"model", 1, 0, 'm'}, {"data", 1, 0, 'd'}, {"labels", 1, 0, 'l'}, {"calib", 1, 0, 'n'},
      {"calib-data", 1, 0, O_CALIBDATA}, {"norm", 1, 0, 'N'}, {"mode", 1, 0, 'M'},
      {"lambda", 1, 0, 'L'}, {"objective", 1, 0, 'o'}, {"max-weight-bits", 1, 0, O_MAXW},
      {"max-act-bits", 1, 0, O_MAXA}, {"max-latency-ms", 1, 0, O_MAXLAT},
      {"act-bits", 1, 0, O_ABITS},
      {"weight-only", 0, 0, O_WONLY}, {"bits", 1, 0, 'b'}, {"es", 1, 0, 'e'},
      {"sf-window", 1, 0, 'w'}, {"weight-sf", 1, 0, O_WSF},
      {"bias-correction", 1, 0, O_BC}, {"pin-ends", 0, 0, O_PIN}, {"population", 1, 0, 'p'},
      {"siblings", 1, 0, O_SIBL}, {"seed", 1, 0, 's'}, {"temperature", 1, 0, 'T'},
      {"random", 0, 0, 'R'}, {"generations", 1, 0, 'g'}, {"evaluations", 1, 0, 'E'},
      {"time", 1, 0, 't'}, {"patience", 1, 0, 'k'}, {"threads", 1, 0, 'j'},
      {"top1", 1, 0, '1'}, {"hv-ref", 1, 0, O_HV}, {"out", 1, 0, 'O'}, {"json", 0, 0, 'J'},
      {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
  lpq_job_settings_t *js = &a->job.js;
  lpq_job_settings_default(js);
  a->threads = 2;
  a->top1 = 8;
  int c, idx = 0;
  optind = 1;
  while ((c = getopt_long(argc, argv, "h", opts, &idx)) != -1) {
    char *end = NULL;
    int bad = 0;
    switch (c) {
    case 'm': a->model = optarg; break;
    case 'd': a->data = optarg; break;
    case 'l': a->labels = optarg; break;
    case O_CALIBDATA: a->calib_data = optarg; break;
    case 'n': js->calib = strtoul(optarg, &end, 10); bad = *end || js->calib < 2 || js->calib > 65536; break;
    case 'N': bad = tool_parse_norm(optarg, &js->norm_mean, &js->norm_std) != 0; break;
    case 'M':
      if (strcmp(optarg, "pareto") == 0) js->scalar = 0;
      else if (strcmp(optarg, "scalar") == 0) js->scalar = 1;
      else bad = 1;
      break;
    case 'L': js->lambda = strtod(optarg, &end); bad = *end != 0; break;
    case 'o': {
      int found = 0;
      for (int k = 0; k < 4; k++)
        if (strcmp(optarg, lpq_objective_name((lpq_objective_t)k)) == 0) {
          js->objective = (lpq_objective_t)k;
          found = 1;
        }
      bad = !found;
      break;
    }
    case O_MAXW: js->max_weight_bits = strtod(optarg, &end); bad = *end || js->max_weight_bits <= 0; break;
    case O_MAXA: js->max_act_bits = strtod(optarg, &end); bad = *end || js->max_act_bits <= 0; break;
    case O_MAXLAT: js->max_latency_s = strtod(optarg, &end) / 1e3; bad = *end || js->max_latency_s <= 0; break;
    case O_WONLY: js->weight_only = 1; break;
    case 'b': bad = range_arg(optarg, &js->n_min, &js->n_max); break;
    case O_ABITS: bad = range_arg(optarg, &js->act_n_min, &js->act_n_max); break;
    case 'e': bad = range_arg(optarg, &js->es_min, &js->es_max); break;
    case 'w': js->sf_window = (int)strtol(optarg, &end, 10); bad = *end || js->sf_window < 0; break;
    case O_WSF:
      js->weight_sf = !strcmp(optarg, "tensor") ? LPQ_SF_TENSOR : !strcmp(optarg, "channel") ? LPQ_SF_CHANNEL
                      : !strcmp(optarg, "search") ? LPQ_SF_SEARCH : -1;
      bad = js->weight_sf < 0;
      break;
    case O_BC:
      js->bias_correction = !strcmp(optarg, "on") ? 1 : !strcmp(optarg, "off") ? 0 : -1;
      bad = js->bias_correction < 0;
      break;
    case O_PIN: js->pin_ends = 1; break;
    case 'p': js->population = strtoul(optarg, &end, 10); bad = *end || js->population < 4; break;
    case O_SIBL: js->siblings = strtoul(optarg, &end, 10); bad = *end != 0; break;
    case 's': js->seed = strtoull(optarg, &end, 10); bad = *end != 0; break;
    case 'T': js->temperature = strtod(optarg, &end); bad = *end || !(js->temperature > 0); break;
    case 'R': a->random = 1; break;
    case 'g': js->generations = strtoul(optarg, &end, 10); bad = *end != 0; break;
    case 'E': js->max_evaluations = strtoul(optarg, &end, 10); bad = *end != 0; break;
    case 't': js->max_seconds = strtod(optarg, &end); bad = *end || js->max_seconds < 0; break;
    case 'k': js->patience = strtoul(optarg, &end, 10); bad = *end != 0; break;
    case 'j': a->threads = (int)strtol(optarg, &end, 10); bad = *end || a->threads < 1 || a->threads > 256; break;
    case '1': a->top1 = strtoul(optarg, &end, 10); bad = *end != 0; break;
    case O_HV: bad = sscanf(optarg, "%lf,%lf", &a->hv_ref[0], &a->hv_ref[1]) != 2; a->have_hv_ref = 1; break;
    case 'O': a->out = optarg; break;
    case 'J': a->json = 1; break;
    case 'h': usage(stdout); return 1;
    default: usage(stderr); return 2;
    }
    if (bad) {
      fprintf(stderr, "lpq search: --%s '%s' is not valid (see lpq search --help)\n",
              opts[idx].name, optarg ? optarg : "");
      return 2;
    }
  }
  if (optind != argc || !a->model || !a->data) {
    fprintf(stderr, "lpq search: --model and --data are required\n");
    usage(stderr);
    return 2;
  }
  if (js->act_n_min == 0 && js->act_n_max == 0) {
    js->act_n_min = js->n_min;
    js->act_n_max = js->n_max;
  }
  if (a->random && js->max_evaluations == 0) {
    fprintf(stderr, "lpq search: --random needs --evaluations\n");
    return 2;
  }
  return 0;
}

/* ---- progress ---- */

typedef struct progress_t {
  const args_t *a;
  int tty;
} progress_t;

static int on_progress(void *ctx, const lpq_search_progress_t *p) {
  progress_t *pr = ctx;
  const args_t *a = pr->a;
  double frac = 0;
  if (a->set.max_generations)
    frac = fmax(frac, (double)p->generation / (double)a->set.max_generations);
  if (a->set.max_evaluations)
    frac = fmax(frac, (double)p->evaluations / (double)a->set.max_evaluations);
  if (a->set.max_seconds > 0)
    frac = fmax(frac, p->elapsed_seconds / a->set.max_seconds);
  frac = fmin(frac, 1.0);
  double eta = frac > 0 ? p->elapsed_seconds * (1 - frac) / frac : NAN;
  if (pr->tty) {
    char bar[31];
    int fill = (int)(frac * 30);
    for (int i = 0; i < 30; i++)
      bar[i] = i < fill ? '#' : '.';
    bar[30] = 0;
    fprintf(stderr, "\r[%s] gen %zu  evals %zu  best L_CO %.5f  front %zu  ETA %4.0fs ", bar,
            p->generation, p->evaluations, p->best_l_co, p->front_size, isnan(eta) ? 0 : eta);
  } else {
    fprintf(stderr, "generation %zu: %zu evaluations, best L_CO %.6f, front %zu, hv %.5g, "
            "%.1f s elapsed, ETA %.0f s\n", p->generation, p->evaluations, p->best_l_co,
            p->front_size, p->hypervolume, p->elapsed_seconds, isnan(eta) ? 0 : eta);
  }
  return 0;
}

/* ---- results ---- */

typedef struct member_t {
  const lpq_layer_formats_t *genome;
  lpq_eval_result_t result;
  lpq_candidate_result_t detail;
  double top1; /* -1: not measured */
} member_t;

static double violation(const lpq_eval_result_t *r, size_t nc) {
  if (r->status != 0)
    return INFINITY;
  double v = 0;
  for (size_t k = 0; k < nc; k++)
    v += r->constraint[k] > 0 ? r->constraint[k] : 0;
  return v;
}

static int cmp_member(const void *x, const void *y) {
  const member_t *a = x, *b = y;
  return (a->result.l_co > b->result.l_co) - (a->result.l_co < b->result.l_co);
}

/* The feasible non-dominated members of n scored genomes, by increasing L_CO. */
static member_t *front_of(const lpq_layer_formats_t *const *genomes,
                          const lpq_eval_result_t *results, size_t n, size_t nc, size_t *count,
                          lpq_error_t *err) {
  double *obj = malloc(2 * (n ? n : 1) * sizeof *obj), *viol = malloc((n ? n : 1) * sizeof *viol);
  size_t *rank = malloc((n ? n : 1) * sizeof *rank);
  double *crowd = malloc((n ? n : 1) * sizeof *crowd);
  member_t *m = calloc(n ? n : 1, sizeof *m);
  *count = 0;
  if (!obj || !viol || !rank || !crowd || !m) {
    lpq_errorf(err, LPQ_ENOMEM, "out of memory");
    goto fail;
  }
  for (size_t i = 0; i < n; i++) {
    obj[2 * i] = results[i].status ? INFINITY : results[i].l_co;
    obj[2 * i + 1] = results[i].status ? INFINITY : results[i].l_cr;
    viol[i] = violation(&results[i], nc);
  }
  if (n && lpq_nsga_rank(obj, viol, n, 2, rank, crowd, err) != 0)
    goto fail;
  for (size_t i = 0; i < n; i++)
    if (rank[i] == 0 && viol[i] == 0) {
      m[*count].genome = genomes[i];
      m[*count].result = results[i];
      m[*count].top1 = -1;
      (*count)++;
    }
  qsort(m, *count, sizeof *m, cmp_member);
  free(obj), free(viol), free(rank), free(crowd);
  return m;
fail:
  free(obj), free(viol), free(rank), free(crowd), free(m);
  return NULL;
}

static double front_hv(const member_t *m, size_t n, const double ref[2]) {
  double *pts = malloc(2 * (n ? n : 1) * sizeof *pts);
  if (!pts)
    return NAN;
  for (size_t i = 0; i < n; i++) {
    pts[2 * i] = m[i].result.l_co;
    pts[2 * i + 1] = m[i].result.l_cr;
  }
  double hv = lpq_hypervolume_2d(pts, n, ref);
  free(pts);
  return hv;
}

static json_t *member_json(const member_t *m, size_t nl, const char *const *names) {
  lpq_numfmt_t *w = calloc(2 * (nl ? nl : 1), sizeof *w);
  if (!w)
    return NULL;
  search_genome_formats(m->genome, nl, w, w + nl);
  char *cfg = lpq_config_to_json(nl, names, w, w + nl);
  free(w);
  json_t *o = json_pack("{s:f, s:f, s:f, s:f, s:f}", "l_co", m->result.l_co, "l_cr",
                        m->result.l_cr, "mean_weight_bits", m->detail.score.mean_w_bits,
                        "mean_activation_bits", m->detail.score.mean_a_bits, "l_co_global",
                        m->detail.score.l_global);
  json_object_set_new(o, "lpa_latency_s", json_real(m->detail.latency_s));
  json_object_set_new(o, "lpa_energy_pj", json_real(m->detail.energy_pj));
  json_object_set_new(o, "top1", m->top1 >= 0 ? json_real(100 * m->top1) : json_null());
  json_object_set_new(o, "config", cfg ? json_loads(cfg, 0, NULL) : json_null());
  free(cfg);
  return o;
}

static int write_text(const char *dir, const char *name, const char *text, lpq_error_t *err) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  if (!f)
    return lpq_errorf(err, LPQ_EIO, "%s: %s", path, strerror(errno));
  fputs(text, f);
  int bad = ferror(f);
  if (fclose(f) != 0 || bad)
    return lpq_errorf(err, LPQ_EIO, "%s: write failed", path);
  return 0;
}

/* Writes --out DIR: front.json, config_NN.json, front.svg, history.json, state.json. */
static int write_out(const args_t *a, json_t *front, const member_t *m, size_t nm,
                     const double *ax, const double *ay, size_t na, lpq_search_t *s,
                     const char *const *names, size_t nl, lpq_error_t *err) {
  if (mkdir(a->out, 0755) != 0 && errno != EEXIST)
    return lpq_errorf(err, LPQ_EIO, "%s: %s", a->out, strerror(errno));
  char *text = json_dumps(front, JSON_INDENT(1) | JSON_REAL_PRECISION(10));
  int rc = text ? write_text(a->out, "front.json", text, err) : LPQ_ENOMEM;
  free(text);
  for (size_t i = 0; rc == 0 && i < nm; i++) {
    lpq_numfmt_t *w = calloc(2 * (nl ? nl : 1), sizeof *w);
    if (!w)
      return lpq_errorf(err, LPQ_ENOMEM, "out of memory");
    search_genome_formats(m[i].genome, nl, w, w + nl);
    char *cfg = lpq_config_to_json(nl, names, w, w + nl), name[64];
    free(w);
    snprintf(name, sizeof name, "config_%02zu.json", i);
    rc = cfg ? write_text(a->out, name, cfg, err) : LPQ_ENOMEM;
    free(cfg);
  }
  if (rc == 0) {
    size_t *idx = malloc((nm ? nm : 1) * sizeof *idx);
    double *px = malloc((na + nm + 1) * sizeof *px), *py = malloc((na + nm + 1) * sizeof *py);
    if (!idx || !px || !py)
      rc = lpq_errorf(err, LPQ_ENOMEM, "out of memory");
    for (size_t i = 0; rc == 0 && i < na; i++) {
      px[i] = ay[i];
      py[i] = ax[i];
    }
    for (size_t i = 0; rc == 0 && i < nm; i++) { /* front points appended, joined in L_CR order */
      size_t k = nm - 1 - i;
      px[na + i] = m[k].result.l_cr;
      py[na + i] = m[k].result.l_co;
      idx[i] = na + i;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/front.svg", a->out);
    if (rc == 0)
      rc = tool_plot_front_svg(path, a->random ? "lpq random search" : "lpq search: Pareto front",
                               a->job.js.objective == LPQ_OBJ_BITS ? "L_CR (weight bits / 32)"
                                                                   : "L_CR (LPA cost / 8-bit)",
                               "L_CO (contrastive loss)", px, py, na + nm, idx, nm, err);
    free(idx), free(px), free(py);
  }
  if (rc == 0 && s) {
    const lpq_search_progress_t *h;
    size_t nh = lpq_search_history(s, &h);
    json_t *arr = json_array();
    for (size_t i = 0; i < nh; i++)
      json_array_append_new(arr, json_pack("{s:i, s:i, s:f, s:i, s:f, s:f}", "generation",
                                           (int)h[i].generation, "evaluations",
                                           (int)h[i].evaluations, "best_l_co", h[i].best_l_co,
                                           "front_size", (int)h[i].front_size, "hypervolume",
                                           h[i].hypervolume, "seconds", h[i].elapsed_seconds));
    char *t = json_dumps(arr, JSON_INDENT(1));
    json_decref(arr);
    rc = t ? write_text(a->out, "history.json", t, err) : LPQ_ENOMEM;
    free(t);
    char *state = NULL;
    if (rc == 0 && lpq_search_save(s, &state, err) == 0) {
      rc = write_text(a->out, "state.json", state, err);
      free(state);
    }
  }
  return rc;
}

int cmd_search(int argc, char **argv) {
  args_t a = {0};
  int prc = parse(argc, argv, &a);
  if (prc != 0)
    return prc == 1 ? 0 : prc;
  lpq_error_t err = {0};
  lpq_array_t *x = NULL, *cx = NULL;
  int64_t *labels = NULL;
  size_t nlabels = 0, nl = 0, nm = 0, n_all = 0;
  lpq_graph_t *g = NULL;
  lpq_scorer_t *sc = NULL;
  lpq_search_t *s = NULL;
  member_t *m = NULL;
  const char **names = NULL;
  lpq_layer_formats_t *rgen = NULL;
  const lpq_layer_formats_t **gptr = NULL;
  lpq_eval_result_t *res = NULL;
  json_t *front = NULL;
  int status = 1;
  double t0 = 0;
  openblas_set_num_threads(1); /* the evaluator threads use the cores */

  lpq_job_settings_t *js = &a.job.js;
  if (lpq_load_inputs(a.data, js->norm_mean, js->norm_std, &x, &err) != 0 ||
      (a.labels && tool_load_labels(a.labels, &labels, &nlabels, &err) != 0) ||
      (a.calib_data && lpq_load_inputs(a.calib_data, js->norm_mean, js->norm_std, &cx, &err) != 0))
    goto fail;
  if (labels && nlabels != (size_t)x->shape[0]) {
    lpq_errorf(&err, LPQ_EFORMAT, "%s has %zu labels for %lld samples", a.labels, nlabels,
               (long long)x->shape[0]);
    goto fail;
  }
  const lpq_array_t *calib = cx ? cx : x;
  size_t ncal = (size_t)calib->shape[0] < js->calib ? (size_t)calib->shape[0] : js->calib;
  if (!(g = lpq_graph_load(a.model, (int)ncal, &err)) ||
      tool_check_input_fits(g, calib, cx ? a.calib_data : a.data, &err) != 0 ||
      tool_check_input_fits(g, x, a.data, &err) != 0)
    goto fail;
  lpq_score_opts_t so = {.temperature = js->temperature, .lambda = js->lambda,
                         .bias_correction = js->bias_correction};
  if (!(sc = lpq_scorer_new(g, calib->data, NULL, &so, &err)))
    goto fail;
  nl = lpq_graph_num_layers(g);
  names = calloc(nl + 1, sizeof *names);
  for (size_t i = 0; names && i < nl; i++)
    names[i] = lpq_graph_layer(g, i)->name;
  if (!names ||
      search_job_init(&a.job, g, sc, calib->data, a.threads, &a.space, &a.set, &err) != 0)
    goto fail;
  progress_t pr = {&a, isatty(STDERR_FILENO) && !a.json};
  a.set.on_progress = on_progress;
  a.set.progress_ctx = &pr;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  t0 = (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
  if (!a.random) {
    if (!(s = lpq_search_new(&a.space, &a.set, &err)) ||
        lpq_search_run(s, search_job_evaluator(&a.job), &err) != 0)
      goto fail;
    n_all = lpq_search_archive_count(s);
  } else {
    lpq_search_space_t rs;
    if (lpq_search_space_resolve(&a.space, &rs, &err) != 0)
      goto fail;
    n_all = a.set.max_evaluations;
    rgen = calloc(n_all * nl + 1, sizeof *rgen);
    if (!rgen) {
      lpq_errorf(&err, LPQ_ENOMEM, "out of memory");
      goto fail;
    }
    lpq_rng_t rng;
    lpq_rng_seed(&rng, a.set.seed);
    for (size_t i = 0; i < n_all; i++)
      lpq_genome_random(&rs, &rng, rgen + i * nl);
  }
  gptr = calloc(n_all + 1, sizeof *gptr);
  res = calloc(n_all + 1, sizeof *res);
  if (!gptr || !res) {
    lpq_errorf(&err, LPQ_ENOMEM, "out of memory");
    goto fail;
  }
  if (a.random) {
    lpq_evaluator_t ev = search_job_evaluator(&a.job);
    if (ev.evaluate(ev.self, rgen, nl, n_all, res, &err) != 0)
      goto fail;
    for (size_t i = 0; i < n_all; i++)
      gptr[i] = rgen + i * nl;
  } else {
    for (size_t i = 0; i < n_all; i++) {
      lpq_search_record_t r;
      lpq_search_archive_get(s, i, &r);
      gptr[i] = r.genome;
      res[i] = r.result;
    }
  }
  clock_gettime(CLOCK_MONOTONIC, &ts);
  double seconds = (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec - t0;
  if (pr.tty)
    fputc('\n', stderr);
  if (!(m = front_of(gptr, res, n_all, a.set.constraint_count, &nm, &err)))
    goto fail;
  double *ax = calloc(n_all + 1, sizeof *ax), *ay = calloc(n_all + 1, sizeof *ay);
  double maxco = 0, maxcr = 0;
  for (size_t i = 0; ax && ay && i < n_all; i++) {
    ax[i] = res[i].status ? NAN : res[i].l_co;
    ay[i] = res[i].status ? NAN : res[i].l_cr;
    if (!res[i].status) {
      maxco = fmax(maxco, ax[i]);
      maxcr = fmax(maxcr, ay[i]);
    }
  }
  double ref[2] = {a.have_hv_ref ? a.hv_ref[0] : 1.1 * maxco, a.have_hv_ref ? a.hv_ref[1] : 1.1 * maxcr};
  double hv = front_hv(m, nm, ref);
  for (size_t i = 0; i < nm; i++) {
    if (search_job_score(&a.job, m[i].genome, &m[i].result, &m[i].detail, &err) != 0)
      goto fail_xy;
    if (labels && i < a.top1) {
      lpq_numfmt_t *w = calloc(2 * (nl ? nl : 1), sizeof *w);
      double q;
      if (!w)
        goto fail_xy;
      search_genome_formats(m[i].genome, nl, w, w + nl);
      int rc = lpq_scorer_accuracy(sc, w, w + nl, x->data, labels, nlabels, NULL, &q, &err);
      free(w);
      if (rc != 0)
        goto fail_xy;
      m[i].top1 = q;
    }
  }
  double top1_fp = -1;
  if (labels) {
    lpq_numfmt_t *w = calloc(2 * (nl ? nl : 1), sizeof *w);
    for (size_t i = 0; w && i < 2 * nl; i++)
      lpq_numfmt_parse("fp32", &w[i], NULL);
    double q;
    if (!w || lpq_scorer_accuracy(sc, w, w + nl, x->data, labels, nlabels, &top1_fp, &q, &err) != 0) {
      free(w);
      goto fail_xy;
    }
    free(w);
  }
  front = json_array();
  for (size_t i = 0; i < nm; i++)
    json_array_append_new(front, member_json(&m[i], nl, names));
  if (a.out && write_out(&a, front, m, nm, ax, ay, n_all, s, names, nl, &err) != 0)
    goto fail_xy;
  if (a.json) {
    json_t *o = json_pack("{s:s, s:s, s:i, s:i, s:i, s:f, s:f, s:[f,f], s:o}", "model", a.model,
                          "method", a.random ? "random" : "lpq", "layers", (int)nl,
                          "evaluations", (int)n_all, "front_size", (int)nm, "seconds", seconds,
                          "hypervolume", hv, "hv_reference", ref[0], ref[1], "front",
                          json_incref(front));
    json_object_set_new(o, "top1_fp32", top1_fp >= 0 ? json_real(100 * top1_fp) : json_null());
    if (s)
      json_object_set_new(o, "stop", json_string(lpq_search_stop_name(lpq_search_should_stop(s))));
    json_dumpf(o, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
    fputc('\n', stdout);
    json_decref(o);
  } else {
    printf("%s: %zu evaluations in %.1f s, %zu layers; front of %zu, hypervolume %.6g at "
           "(%.4g, %.4g)\n", a.random ? "random search" : "search", n_all, seconds, nl, nm, hv,
           ref[0], ref[1]);
    if (top1_fp >= 0)
      printf("fp32 top-1 %.2f%% over %zu samples\n", 100 * top1_fp, nlabels);
    printf("%4s %10s %8s %8s %8s %8s\n", "#", "L_CO", "L_CR", "w bits", "a bits", "top-1");
    for (size_t i = 0; i < nm; i++) {
      printf("%4zu %10.5f %8.4f %8.3f %8.3f ", i, m[i].result.l_co, m[i].result.l_cr,
             m[i].detail.score.mean_w_bits, m[i].detail.score.mean_a_bits);
      if (m[i].top1 >= 0)
        printf("%7.2f%%\n", 100 * m[i].top1);
      else
        printf("%8s\n", "-");
    }
    if (a.out)
      printf("wrote %s/front.json, config_NN.json, front.svg%s\n", a.out,
             s ? ", history.json, state.json" : "");
  }
  status = 0;
fail_xy:
  free(ax);
  free(ay);
  if (status == 0)
    goto done;
fail:
  fprintf(stderr, "lpq search: %s\n", err.msg[0] ? err.msg : lpq_strerror(err.code));
done:
  json_decref(front);
  free(m);
  free(gptr);
  free(res);
  free(rgen);
  lpq_search_free(&s);
  search_job_destroy(&a.job);
  free(names);
  lpq_scorer_free(&sc);
  lpq_graph_free(&g);
  lpq_array_free(&x);
  lpq_array_free(&cx);
  free(labels);
  return status;
}
