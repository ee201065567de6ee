/* tools/lpq/cmd_search.c: `lpq search`, a whole LPQ search on this machine (DESIGN section 6). */
#include "tools/lpq/lpq.h"
#include "tools/lpq/search_job.h"

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

/* validation inputs the fill measures its KL divergence over (--fill-budget on) */
#define FILL_SAMPLES 256

typedef struct args_t {
  const char *model, *data, *labels, *calib_data, *out, *val_data, *val_labels;
  double max_drop; /* points of validation top-1; < 0: not set */
  size_t val_members; /* front members scored on the validation set, lowest L_CO first */
  size_t top1;
  double hv_ref[2];
  int threads, json, random, have_hv_ref;
  long cut_mb; /* --cut-cache-mb: the scorer's cut cache in MiB (0: off; -1: the default) */
  lpq_local_mode_t local; size_t local_dim; /* --local-terms [projected], --local-dim [0: 256] */
  int bc_auto; /* --bias-correction auto: the chosen config with and without, on validation */
  int fill;    /* --fill-budget on: the chosen config's unused weight bits, tried on validation */
  lpq_search_space_t space;
  lpq_search_settings_t set;
  search_job_t job; /* job.js: the job's settings, from the flags */
} args_t;

static int range_arg(const char *s, int *lo, int *hi) {
  return sscanf(s, "%d:%d", lo, hi) == 2 && *lo <= *hi ? 0 : -1;
}

static int parse(int argc, char **argv, args_t *a) {
  enum { O_CALIBDATA = 256, O_MAXW, O_MAXA, O_MAXLAT, O_WONLY, O_PIN, O_SIBL, O_HV, O_ABITS, O_WSF, O_BC, O_VDATA,
         O_VLABELS, O_DROP, O_SENS, O_VMEMBERS, O_FILL, O_CUTMB, O_LOCAL, O_LDIM };
  static const struct option opts[] = {
      {"model", 1, 0, 'm'}, {"data", 1, 0, 'd'}, {"labels", 1, 0, 'l'}, {"calib", 1, 0, 'n'},
      {"calib-data", 1, 0, O_CALIBDATA}, {"norm", 1, 0, 'N'}, {"mode", 1, 0, 'M'},
      {"lambda", 1, 0, 'L'}, {"objective", 1, 0, 'o'}, {"max-weight-bits", 1, 0, O_MAXW},
      {"max-act-bits", 1, 0, O_MAXA}, {"max-latency-ms", 1, 0, O_MAXLAT},
      {"act-bits", 1, 0, O_ABITS},
      {"weight-only", 0, 0, O_WONLY}, {"bits", 1, 0, 'b'}, {"es", 1, 0, 'e'},
      {"sf-window", 1, 0, 'w'}, {"weight-sf", 1, 0, O_WSF},
      {"bias-correction", 1, 0, O_BC}, {"val-data", 1, 0, O_VDATA},
      {"val-labels", 1, 0, O_VLABELS}, {"max-drop", 1, 0, O_DROP},
      {"sensitivity", 1, 0, O_SENS}, {"fill-budget", 1, 0, O_FILL}, {"val-members", 1, 0, O_VMEMBERS}, {"pin-ends", 0, 0, O_PIN}, {"population", 1, 0, 'p'},
      {"siblings", 1, 0, O_SIBL}, {"seed", 1, 0, 's'}, {"temperature", 1, 0, 'T'},
      {"random", 0, 0, 'R'}, {"generations", 1, 0, 'g'}, {"evaluations", 1, 0, 'E'},
      {"time", 1, 0, 't'}, {"patience", 1, 0, 'k'}, {"threads", 1, 0, 'j'},
      {"cut-cache-mb", 1, 0, O_CUTMB}, {"local-terms", 1, 0, O_LOCAL}, {"local-dim", 1, 0, O_LDIM},
      {"top1", 1, 0, '1'}, {"hv-ref", 1, 0, O_HV}, {"out", 1, 0, 'O'}, {"json", 0, 0, 'J'},
      {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
  lpq_job_settings_t *js = &a->job.js;
  lpq_job_settings_default(js);
  a->threads = 2;
  a->cut_mb = -1, a->local = LPQ_LOCAL_PROJECTED; /* see docs/MEASUREMENTS.md, issue 14 */
  a->top1 = 8;
  a->max_drop = -1;
  a->val_members = SIZE_MAX;
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
      a->bc_auto = !strcmp(optarg, "auto");
      js->bias_correction = !strcmp(optarg, "on") ? 1 : !strcmp(optarg, "off") || a->bc_auto ? 0 : -1;
      bad = js->bias_correction < 0;
      break;
    case O_FILL:
      a->fill = !strcmp(optarg, "on") ? 1 : !strcmp(optarg, "off") ? 0 : -1;
      bad = a->fill < 0;
      break;
    case O_SENS:
      js->sensitivity = !strcmp(optarg, "on") ? 1 : !strcmp(optarg, "off") ? 0 : -1;
      bad = js->sensitivity < 0;
      break;
    case O_VDATA: a->val_data = optarg; break;
    case O_VMEMBERS: a->val_members = strtoul(optarg, &end, 10); bad = *end || !a->val_members; break;
    case O_VLABELS: a->val_labels = optarg; break;
    case O_DROP: a->max_drop = strtod(optarg, &end); bad = *end || !(a->max_drop >= 0); break;
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
    case O_CUTMB: a->cut_mb = strtol(optarg, &end, 10); bad = *end || a->cut_mb < 0 || a->cut_mb > 1 << 20; break;
    case O_LOCAL: bad = lpq_local_mode_parse(optarg, &a->local, NULL) != 0; break;
    case O_LDIM: a->local_dim = strtoul(optarg, &end, 10); bad = *end || a->local_dim < 1 || a->local_dim > 1 << 20; break;
    case '1': a->top1 = strtoul(optarg, &end, 10); bad = *end != 0; break;
    case O_HV: bad = sscanf(optarg, "%lf,%lf", &a->hv_ref[0], &a->hv_ref[1]) != 2; a->have_hv_ref = 1; break;
    case 'O': a->out = optarg; break;
    case 'J': a->json = 1; break;
    case 'h': search_usage(stdout); return 1;
    default: search_usage(stderr); return 2;
    }
    if (bad) {
      fprintf(stderr, "lpq search: --%s '%s' is not valid (see lpq search --help)\n",
              opts[idx].name, optarg ? optarg : "");
      return 2;
    }
  }
  if (optind != argc || !a->model || !a->data) {
    fprintf(stderr, "lpq search: --model and --data are required\n");
    search_usage(stderr);
    return 2;
  }
  if (!a->val_data != !a->val_labels || (a->max_drop >= 0 && !a->val_data)) {
    fprintf(stderr, "lpq search: --val-data and --val-labels go together, and --max-drop "
                    "needs them (the pick is made on validation data, never on --data)\n");
    return 2;
  }
  if (js->act_n_min == 0 && js->act_n_max == 0) {
    js->act_n_min = js->n_min;
    js->act_n_max = js->n_max;
  }
  if ((a->bc_auto || a->fill) && !a->val_data) {
    fprintf(stderr, "lpq search: --bias-correction auto and --fill-budget on need --val-data "
                    "(they decide there)\n");
    return 2;
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

int cmd_search(int argc, char **argv) {
  args_t a = {0};
  int prc = parse(argc, argv, &a);
  if (prc != 0)
    return prc == 1 ? 0 : prc;
  lpq_error_t err = {0};
  lpq_array_t *x = NULL, *cx = NULL, *vx = NULL;
  int64_t *labels = NULL, *vlabels = NULL;
  size_t nlabels = 0, nvlabels = 0, nl = 0, nm = 0, n_all = 0;
  lpq_graph_t *g = NULL;
  lpq_scorer_t *sc = NULL, *sc_bc = NULL;
  lpq_search_t *s = NULL;
  member_t *m = NULL;
  const char **names = NULL;
  lpq_layer_formats_t *rgen = NULL, *filled = NULL;
  const lpq_layer_formats_t **gptr = NULL;
  lpq_eval_result_t *res = NULL;
  json_t *front = NULL, *summary = NULL;
  int status = 1;
  double t0 = 0;
  lpq_blas_single_thread(); /* the evaluator threads use the cores */
  /* --time bounds the whole search: loading, sensitivity, the search and the validation pick
  ** (the top-1 on --data, a report, comes on top and is timed apart). */
  const double t_cmd0 = now_s();

  lpq_job_settings_t *js = &a.job.js;
  const double deadline = js->max_seconds > 0 ? t_cmd0 + js->max_seconds : INFINITY;
  if (lpq_load_inputs(a.data, js->norm_mean, js->norm_std, &x, &err) != 0 ||
      (a.labels && tool_load_labels(a.labels, &labels, &nlabels, &err) != 0) ||
      (a.calib_data && lpq_load_inputs(a.calib_data, js->norm_mean, js->norm_std, &cx, &err) != 0))
    goto fail;
  if (a.val_data &&
      (lpq_load_inputs(a.val_data, js->norm_mean, js->norm_std, &vx, &err) != 0 ||
       tool_load_labels(a.val_labels, &vlabels, &nvlabels, &err) != 0))
    goto fail;
  if (vx && nvlabels != (size_t)vx->shape[0]) {
    lpq_errorf(&err, LPQ_EFORMAT, "%s has %zu labels for %lld samples", a.val_labels, nvlabels,
               (long long)vx->shape[0]);
    goto fail;
  }
  if (labels && nlabels != (size_t)x->shape[0]) {
    lpq_errorf(&err, LPQ_EFORMAT, "%s has %zu labels for %lld samples", a.labels, nlabels,
               (long long)x->shape[0]);
    goto fail;
  }
  const lpq_array_t *calib = cx ? cx : x;
  size_t ncal = (size_t)calib->shape[0] < js->calib ? (size_t)calib->shape[0] : js->calib;
  if (!(g = lpq_graph_load(a.model, (int)ncal, &err)) ||
      tool_check_input_fits(g, calib, cx ? a.calib_data : a.data, &err) != 0 ||
      tool_check_input_fits(g, x, a.data, &err) != 0 ||
      (vx && tool_check_input_fits(g, vx, a.val_data, &err) != 0))
    goto fail;
  lpq_score_opts_t so = {.temperature = js->temperature, .lambda = js->lambda,
                         .bias_correction = js->bias_correction, .no_cuts = a.cut_mb == 0,
                         .cut_bytes = a.cut_mb > 0 ? (size_t)a.cut_mb << 20 : 0,
                         .local = a.local, .local_dim = a.local_dim};
  if (!(sc = lpq_scorer_new(g, calib->data, NULL, &so, &err)))
    goto fail;
  nl = lpq_graph_num_layers(g);
  names = calloc(nl + 1, sizeof *names);
  for (size_t i = 0; names && i < nl; i++)
    names[i] = lpq_graph_layer(g, i)->name;
  if (!names ||
      search_job_init(&a.job, g, sc, calib->data, a.threads, &a.space, &a.set, &err) != 0)
    goto fail;
  double sens_s = 0;
  if (js->sensitivity) {
    /* a smaller batch is enough to rank layers; it keeps the pass a fraction of the search */
    size_t ns = ncal < 64 ? ncal : 64;
    if (!a.json)
      fprintf(stderr, "sensitivity: every layer alone near %.1f bits, %zu samples...\n",
              js->max_weight_bits, ns);
    if (search_job_sensitivity(&a.job, a.model, calib->data, ns, a.threads, &a.set, &sens_s,
                               &err) != 0)
      goto fail;
  }
  /* fp32's validation top-1 now: its time sizes the reserve for scoring the front on it */
  double top1_fp = -1, top1_val_fp = -1, t_val = 0;
  if (vx) {
    double t = now_s();
    if (genome_top1(sc, NULL, nl, vx, vlabels, nvlabels, &top1_val_fp, &err) != 0)
      goto fail;
    t_val = now_s() - t;
    /* members' passes cost at least ~1.3x fp32's (activation quantizers), and more where a
    ** quantized pass repacks the weights it is handed: a batch of one, timed */
    double t_member = 0;
    if (member_pass_seconds(sc, nl, vx, vlabels, ncal, &t_member, &err) != 0)
      goto fail;
    t_val = fmax(1.3 * t_val, t_member);
  }
  /* --fill-budget on: a pass over FILL_SAMPLES validation inputs per layer, a round per thread,
  ** then the filled config's validation top-1 */
  const size_t nfill = vx ? ((size_t)vx->shape[0] < FILL_SAMPLES ? (size_t)vx->shape[0] : FILL_SAMPLES) : 0;
  const size_t fill_threads = a.threads > 1 ? (size_t)a.threads : 1;
  const size_t fill_passes = (nl + fill_threads) / fill_threads; /* ceil((nl + 1) / threads) */
  const double fill_rounds =
      a.fill && vx ? 1 + (double)nfill / (double)vx->shape[0] * (double)fill_passes : 0;
  if (a.set.max_seconds > 0) {
    /* a member's pass costs t_val (above); rounds of one member per thread, and one more
    ** for --bias-correction auto */
    size_t threads = a.threads > 0 ? (size_t)a.threads : 1;
    size_t kv = vx ? (a.val_members < 2 * a.set.population ? a.val_members : 2 * a.set.population) : 0;
    double reserve = t_val * ((double)((kv + threads - 1) / threads + a.bc_auto) + fill_rounds);
    double left = deadline - now_s() - reserve;
    a.set.max_seconds = left > 1 ? left : 1;
  }
  progress_t pr = {&a, isatty(STDERR_FILENO) && !a.json};
  a.set.on_progress = on_progress;
  a.set.progress_ctx = &pr;
  t0 = now_s();
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
  double seconds = now_s() - t0;
  if (pr.tty)
    fputc('\n', stderr);
  if (!(m = search_front_of(gptr, res, n_all, a.set.constraint_count, &nm, &err)))
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
  double hv = search_front_hv(m, nm, ref);
  /* the validation pick: members in L_CO order, a round of one per thread while the deadline
  ** allows one more (the first round always) */
  const lpq_layer_formats_t **tg = calloc(nm + 2, sizeof *tg);
  double **tout = calloc(nm + 2, sizeof *tout);
  size_t val_scored = 0;
  if (!tg || !tout) {
    free(tg), free(tout);
    lpq_errorf(&err, LPQ_ENOMEM, "out of memory");
    goto fail_xy;
  }
  size_t kv = nm < a.val_members ? nm : a.val_members, threads = a.threads > 0 ? (size_t)a.threads : 1;
  double t_round = t_val;
  while (vx && val_scored < kv &&
         (val_scored == 0 || now_s() + t_round * (1 + a.bc_auto + fill_rounds) <= deadline)) {
    size_t k = kv - val_scored < threads ? kv - val_scored : threads;
    for (size_t i = 0; i < k; i++) {
      tg[i] = m[val_scored + i].genome;
      tout[i] = &m[val_scored + i].top1_val;
    }
    top1_job_t tj = {sc, nl, nvlabels, vx, vlabels, tg, tout};
    double t = now_s();
    if (search_par_for(k, a.threads, top1_fn, &tj, &err) != 0) {
      free(tg), free(tout);
      goto fail_xy;
    }
    t_round = now_s() - t;
    val_scored += k;
  }
  /* The best config, chosen on the validation set only; its test top-1 is then reported. */
  long chosen = -1;
  int within = 0;
  double *cost = calloc(2 * (nm ? nm : 1), sizeof *cost);
  if (!cost)
    goto fail_xy;
  for (size_t i = 0; i < nm; i++) {
    cost[i] = m[i].result.l_cr;
    cost[nm + i] = 100 * m[i].top1_val; /* points; -100 where not measured */
  }
  if (vx && a.max_drop >= 0) {
    chosen = lpq_pick_within_drop(cost, cost + nm, nm, 100 * top1_val_fp, a.max_drop, &within);
  } else if (vx) {
    /* the front is in L_CO order; cost + nm holds top-1 in points */
    for (size_t i = 0; i < nm; i++)
      cost[i] = m[i].top1_val;
    chosen = lpq_pick_within_se(cost, nm, nvlabels);
  }
  free(cost);
  /* --fill-budget on: where L_CO no longer tells configs apart the chosen one may leave weight
  ** bits unused; they are spent where one more bit lowers the output's KL divergence from fp32
  ** most per bit (search_fill_gains, on validation inputs), and the filled config is kept unless
  ** its validation top-1 is lower (a tie keeps the budget spent: nothing says it hurts) */
  const size_t nfront = nm;
  double fill_val = -1, from_val = -1;
  size_t raised = 0;
  long fill_from = chosen;
  /* each step after the pick only when what is left of the deadline holds it (a round being
  ** one member's pass over the validation data on each thread) */
  const int fill_fits = now_s() + t_round * (fill_rounds + a.bc_auto) <= deadline;
  if (a.fill && vx && chosen >= 0 && js->max_weight_bits > 0 && fill_fits) {
    double *gain = malloc((nl ? nl : 1) * sizeof *gain);
    filled = malloc((nl ? nl : 1) * sizeof *filled);
    int frc = !gain || !filled ? lpq_errorf(&err, LPQ_ENOMEM, "out of memory") : 0;
    if (frc == 0)
      frc = search_fill_gains(&a.job, sc, m[chosen].genome, vx->data, nfill, a.threads, gain,
                              &err);
    if (frc == 0 &&
        (raised = search_fill_budget(&a.job, m[chosen].genome, js->max_weight_bits, gain,
                                     filled)) > 0)
      frc = genome_top1(sc, filled, nl, vx, vlabels, nvlabels, &fill_val, &err);
    free(gain);
    if (frc != 0) {
      free(tg), free(tout);
      goto fail_xy;
    }
    from_val = m[chosen].top1_val;
    member_t *mm = raised && fill_val >= from_val ? realloc(m, (nm + 1) * sizeof *m) : NULL;
    if (mm) {
      m = mm;
      m[nm] = m[chosen];
      m[nm].genome = filled;
      m[nm].top1_val = fill_val;
      m[nm].top1 = -1;
      chosen = (long)nm++;
    }
  }
  /* --bias-correction auto: the chosen config again with it, on the validation data */
  double bc_val = -1, cost_off_val = -1;
  int bc_chosen = 0;
  const int bc_fits = now_s() + t_round <= deadline;
  if (a.bc_auto && chosen >= 0 && bc_fits) {
    lpq_score_opts_t so_bc = so;
    so_bc.bias_correction = 1;
    if (!(sc_bc = lpq_scorer_new(g, calib->data, NULL, &so_bc, &err)) ||
        genome_top1(sc_bc, m[chosen].genome, nl, vx, vlabels, nvlabels, &bc_val, &err) != 0) {
      free(tg), free(tout);
      goto fail_xy;
    }
    bc_chosen = bc_val > m[chosen].top1_val;
    cost_off_val = m[chosen].top1_val;
  }
  double search_total_s = now_s() - t_cmd0;
  /* the front's details (loss parts, LPA cost) for the report: not needed by the pick */
  detail_job_t dj = {&a.job, m};
  if (search_par_for(nm, a.threads, detail_fn, &dj, &err) != 0)
    goto fail_xy;
  /* the report on --data: fp32, the first --top1 members and the chosen one (with bias
  ** correction when it was chosen: apart, on its scorer) */
  double t_test = now_s();
  size_t nt = 0;
  for (size_t i = 0; labels && i <= nm; i++) {
    if (bc_chosen && (long)i == chosen)
      continue;
    if (i == nm || i < a.top1 || (long)i == chosen) {
      tg[nt] = i == nm ? NULL : m[i].genome;
      tout[nt++] = i == nm ? &top1_fp : &m[i].top1;
    }
  }
  top1_job_t tj = {sc, nl, nlabels, x, labels, tg, tout};
  int trc = search_par_for(nt, a.threads, top1_fn, &tj, &err);
  free(tg), free(tout);
  if (trc != 0 || (bc_chosen && labels &&
                   genome_top1(sc_bc, m[chosen].genome, nl, x, labels, nlabels, &m[chosen].top1,
                               &err) != 0))
    goto fail_xy;
  if (bc_chosen)
    m[chosen].top1_val = bc_val;
  t_test = now_s() - t_test;
  /* Does L_CO rank the front as top-1 does? On validation data when given, else on --data. */
  double spearman = NAN;
  {
    double *px = malloc(2 * (nm ? nm : 1) * sizeof *px);
    size_t k = 0;
    for (size_t i = 0; px && i < nfront; i++) {
      double t = vx ? m[i].top1_val : m[i].top1;
      if (t >= 0) {
        px[k] = m[i].result.l_co;
        px[nm + k++] = t;
      }
    }
    if (px) {
      memmove(px + k, px + nm, k * sizeof *px);
      spearman = lpq_spearman(px, px + k, k);
    }
    free(px);
  }
  summary = json_pack("{s:o, s:o, s:o, s:o}", "top1_val_fp32",
                              top1_val_fp >= 0 ? json_real(100 * top1_val_fp) : json_null(),
                              "spearman_l_co_top1", isnan(spearman) ? json_null() : json_real(spearman),
                              "spearman_on", json_string(vx ? "validation" : labels ? "data" : "none"),
                              "max_drop", a.max_drop >= 0 ? json_real(a.max_drop) : json_null());
  if (js->sensitivity)
    json_object_set_new(summary, "sensitivity_seconds", json_real(sens_s));
  json_object_set_new(summary, "search_total_seconds", json_real(search_total_s));
  if (raised)
    json_object_set_new(summary, "fill_budget",
                        json_pack("{s:i, s:i, s:f, s:f, s:b}", "from", (int)fill_from,
                                  "raised_bits", (int)raised, "top1_val_from", 100 * from_val,
                                  "top1_val", 100 * fill_val,
                                  "chosen", (size_t)chosen == nfront));
  /* a step the deadline left no room for says so */
  if (a.fill && vx && fill_from >= 0 && js->max_weight_bits > 0 && !fill_fits)
    json_object_set_new(summary, "fill_budget", json_pack("{s:s}", "skipped", "deadline"));
  if (a.bc_auto && chosen >= 0 && !bc_fits)
    json_object_set_new(summary, "bias_correction",
                        json_pack("{s:s, s:s}", "mode", "auto", "skipped", "deadline"));
  else if (a.bc_auto && chosen >= 0)
    json_object_set_new(summary, "bias_correction",
                        json_pack("{s:s, s:f, s:f, s:b}", "mode", "auto", "top1_val_off",
                                  100 * (bc_chosen ? cost_off_val : m[chosen].top1_val),
                                  "top1_val_on", 100 * bc_val, "chosen", bc_chosen));
  json_object_set_new(summary, "val_members_scored", json_integer((json_int_t)val_scored));
  if (labels)
    json_object_set_new(summary, "data_top1_seconds", json_real(t_test));
  if (chosen >= 0)
    json_object_set_new(summary, "best",
                        json_pack("{s:i, s:s, s:b}", "index", (int)chosen, "rule",
                                  a.max_drop >= 0 && within
                                      ? "cheapest within max_drop of fp32 on validation"
                                  : a.max_drop >= 0 ? "none within max_drop: highest validation top-1"
                                      : "lowest L_CO within one standard error of the highest "
                                        "validation top-1",
                                  "within_max_drop", within));
  front = json_array();
  for (size_t i = 0; i < nm; i++)
    json_array_append_new(front, search_member_json(&m[i], nl, names));
  if (a.out && (chosen >= 0 || labels) && /* summary.json keeps the Spearman either way */
      search_write_best(a.out, chosen >= 0 ? m[chosen].genome : NULL, nl, names, summary,
                        &err) != 0)
    goto fail_xy;
  if (a.out && search_write_out(a.out, a.random, a.job.js.objective, front, m, nm, ax, ay, n_all, s, names,
                                  nl, &err) != 0)
    goto fail_xy;
  if (a.json) {
    json_t *o = json_pack("{s:s, s:s, s:i, s:i, s:i, s:f, s:f, s:[f,f], s:o}", "model", a.model,
                          "method", a.random ? "random" : "lpq", "layers", (int)nl,
                          "evaluations", (int)n_all, "front_size", (int)nm, "seconds", seconds,
                          "hypervolume", hv, "hv_reference", ref[0], ref[1], "front",
                          json_incref(front));
    json_object_set_new(o, "top1_fp32", top1_fp >= 0 ? json_real(100 * top1_fp) : json_null());
    json_object_set_new(o, "scorer", search_scorer_json(sc));
    json_object_update_new(o, summary);
    summary = NULL;
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
    if (top1_val_fp >= 0)
      printf("validation: fp32 top-1 %.2f%% over %zu samples\n", 100 * top1_val_fp, nvlabels);
    if (chosen >= 0) {
      printf("best: #%ld, %s: validation top-1 %.2f%%", chosen,
             a.max_drop >= 0 && within ? "the cheapest within --max-drop" :
             a.max_drop >= 0 ? "none within --max-drop; the highest validation top-1"
                             : "the lowest L_CO within one standard error of the best validation top-1",
             100 * m[chosen].top1_val);
      if (m[chosen].top1 >= 0)
        printf(", top-1 on --data %.2f%%", 100 * m[chosen].top1);
      printf(", %.3f weight bits\n", m[chosen].detail.score.mean_w_bits);
    }
    if (!isnan(spearman))
      printf("Spearman rank correlation of L_CO and top-1 over the front (%s): %.3f\n",
             vx ? "validation" : "--data", spearman);
    if (a.out)
      printf("wrote %s/front.json, config_NN.json, front.svg%s%s\n", a.out,
             s ? ", history.json, state.json" : "",
             chosen >= 0 ? ", best.json, summary.json" : labels ? ", summary.json" : "");
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
  json_decref(summary);
  free(m);
  free(gptr);
  free(res);
  free(rgen);
  free(filled);
  lpq_search_free(&s);
  search_job_destroy(&a.job);
  free(names);
  lpq_scorer_free(&sc);
  lpq_scorer_free(&sc_bc);
  lpq_graph_free(&g);
  lpq_array_free(&x);
  lpq_array_free(&cx);
  lpq_array_free(&vx);
  free(labels);
  free(vlabels);
  return status;
}
