/* tools/lpq/search_out.c: what `lpq search` reports: the feasible front of the scored genomes,
** each member as JSON (scores, LPA cost, top-1, config), and the --out folder. */
#include "tools/lpq/lpq.h"
#include "tools/lpq/search_job.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>


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
member_t *search_front_of(const lpq_layer_formats_t *const *genomes,
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
      m[*count].top1 = m[*count].top1_val = -1;
      (*count)++;
    }
  qsort(m, *count, sizeof *m, cmp_member);
  free(obj), free(viol), free(rank), free(crowd);
  return m;
fail:
  free(obj), free(viol), free(rank), free(crowd), free(m);
  return NULL;
}

double search_front_hv(const member_t *m, size_t n, const double ref[2]) {
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

json_t *search_member_json(const member_t *m, size_t nl, const char *const *names) {
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
  if (m->top1_val >= 0)
    json_object_set_new(o, "top1_val", json_real(100 * m->top1_val));
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

int search_write_out(const char *out, int random, lpq_objective_t objective, json_t *front,
                     const member_t *m, size_t nm, const double *ax, const double *ay,
                     size_t na, lpq_search_t *s, const char *const *names, size_t nl,
                     lpq_error_t *err) {
  if (mkdir(out, 0755) != 0 && errno != EEXIST)
    return lpq_errorf(err, LPQ_EIO, "%s: %s", out, strerror(errno));
  char *text = json_dumps(front, JSON_INDENT(1) | JSON_REAL_PRECISION(10));
  int rc = text ? write_text(out, "front.json", text, err) : LPQ_ENOMEM;
  free(text);
  for (size_t i = 0; rc == 0 && i < nm; i++) {
    lpq_numfmt_t *w = calloc(2 * (nl ? nl : 1), sizeof *w);
    if (!w)
      return lpq_errorf(err, LPQ_ENOMEM, "out of memory");
    search_genome_formats(m[i].genome, nl, w, w + nl);
    char *cfg = lpq_config_to_json(nl, names, w, w + nl), name[64];
    free(w);
    snprintf(name, sizeof name, "config_%02zu.json", i);
    rc = cfg ? write_text(out, name, cfg, err) : LPQ_ENOMEM;
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
    snprintf(path, sizeof path, "%s/front.svg", out);
    if (rc == 0)
      rc = tool_plot_front_svg(path, random ? "lpq random search" : "lpq search: Pareto front",
                               objective == LPQ_OBJ_BITS ? "L_CR (weight bits / 32)"
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
    rc = t ? write_text(out, "history.json", t, err) : LPQ_ENOMEM;
    free(t);
    char *state = NULL;
    if (rc == 0 && lpq_search_save(s, &state, err) == 0) {
      rc = write_text(out, "state.json", state, err);
      free(state);
    }
  }
  return rc;
}


/* best.json: the chosen config as it was scored (with its bias correction when chosen). */
static int write_best_config(const char *out, const lpq_layer_formats_t *genome, size_t nl,
                             const char *const *names, const json_t *summary, lpq_error_t *err) {
  lpq_numfmt_t *w = calloc(2 * (nl ? nl : 1), sizeof *w);
  if (!w)
    return lpq_errorf(err, LPQ_ENOMEM, "out of memory");
  search_genome_formats(genome, nl, w, w + nl);
  char *cfg = lpq_config_to_json(nl, names, w, w + nl);
  free(w);
  json_t *bc = json_object_get(json_object_get(summary, "bias_correction"), "chosen");
  if (cfg && json_is_true(bc)) {
    json_t *o = json_loads(cfg, 0, NULL);
    free(cfg);
    json_object_set_new(o, "bias_correction", json_true());
    cfg = o ? json_dumps(o, JSON_INDENT(2)) : NULL;
    json_decref(o);
  }
  int rc = cfg ? write_text(out, "best.json", cfg, err) : lpq_errorf(err, LPQ_ENOMEM, "out of memory");
  free(cfg);
  return rc;
}

int search_write_best(const char *out, const lpq_layer_formats_t *genome, size_t nl,
                      const char *const *names, const json_t *summary, lpq_error_t *err) {
  if (mkdir(out, 0755) != 0 && errno != EEXIST)
    return lpq_errorf(err, LPQ_EIO, "%s: %s", out, strerror(errno));
  int rc = genome ? write_best_config(out, genome, nl, names, summary, err) : 0;
  char *text = rc == 0 ? json_dumps(summary, JSON_INDENT(1) | JSON_REAL_PRECISION(10)) : NULL;
  if (rc == 0)
    rc = text ? write_text(out, "summary.json", text, err) : LPQ_ENOMEM;
  free(text);
  return rc;
}

/* ---- lpq search --help ---- */

void search_usage(FILE *out) {
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
      "  --val-data X3 --val-labels Y3  a labelled validation set (e.g. training images kept\n"
      "                        out of calibration): every front member's top-1 on it, the\n"
      "                        best config chosen on it (never on --data: the lowest L_CO within\n"
      "                        one standard error of the best validation top-1), and Spearman's rank\n"
      "                        correlation of L_CO and top-1 over the front\n"
      "  --max-drop P          with --val-data: the best config is the cheapest front member\n"
      "                        within P points of fp32's validation top-1\n"
      "  --val-members K       score only the K lowest-L_CO front members on --val-data (all)\n"
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
      "  --sensitivity on|off  first each layer alone near the budget: the initial population\n"
      "                        allocates bits by it, mutation leans to sensitive layers (%s)\n"
      "  --bias-correction on|off|auto  correct each quantized layer's bias for the mean output\n"
      "                        shift its weights' rounding causes on the calibration batch;\n"
      "                        auto: the chosen config with and without it on --val-data, the\n"
      "                        better kept (best.json says \"bias_correction\") (%s)\n"
      "  --fill-budget on|off  with --val-data and --max-weight-bits: the chosen config's\n"
      "                        unused weight bits spent where one more bit lowers the output's\n"
      "                        KL divergence from fp32 most per bit (256 --val-data inputs),\n"
      "                        kept unless it does worse on --val-data (off)\n"
      "  --pin-ends            first and last layer at 8 bits\n"
      "  --population P        (%zu)    --siblings S   diversity-promoting siblings (%zu)\n"
      "  --seed S              (%llu)     --temperature T InfoNCE temperature (%g)\n"
      "  --random              random search with the same budget instead (a baseline)\n"
      "stopping (any that is set)\n"
      "  --generations G (%zu)  --evaluations E   --time SECONDS   --patience K\n"
      "output\n"
      "  --threads T           evaluation threads (2)\n"
      "  --cut-cache-mb M      memory for the states at the forward pass's cuts, from which\n"
      "                        candidates sharing their first layers' formats resume; 0: off\n"
      "                        (%d)\n"
      "  --local-terms M       how L_CO's local terms are computed. projected (the default):\n"
      "                        InfoNCE over a fixed random projection of each layer's output\n"
      "                        rows to --local-dim values; it ranks candidates as the exact\n"
      "                        loss does (Spearman 0.9997+ on the bundled models) at ~1.5x\n"
      "                        an FP pass per candidate instead of ~2.4x (docs/MEASUREMENTS.md).\n"
      "                        exact: over the whole rows (DESIGN's loss). pooled: over each\n"
      "                        channel's map averaged (ranks worse: 0.977)\n"
      "  --local-dim K         projected: values per row (%d); pooled: cells per channel (16)\n"
      "  --top1 K              top-1 of at most K front configs, lowest L_CO first (8)\n"
      "  --hv-ref X,Y          hypervolume reference point (L_CO, L_CR) for comparisons\n"
      "  --out DIR             front.json, config_NN.json per front member, front.svg,\n"
      "                        history.json, state.json; with labels summary.json (Spearman,\n"
      "                        the pick), with --val-data best.json (the chosen config)\n"
      "  --json                one JSON object instead of text\n",
      d.calib, d.lambda, d.n_min, d.n_max, d.es_min, d.es_max, d.sf_window,
      d.weight_sf == LPQ_SF_CHANNEL ? "channel" : d.weight_sf == LPQ_SF_SEARCH ? "search" : "tensor",
      d.sensitivity ? "on" : "off", d.bias_correction ? "on" : "off", d.population,
      d.siblings, (unsigned long long)d.seed, d.temperature, d.generations,
      LPQ_SCORE_CUT_MB_DEFAULT, LPQ_LOCAL_DIM_DEFAULT);
}

json_t *search_scorer_json(lpq_scorer_t *sc) {
  lpq_scorer_stats_t st;
  lpq_scorer_stats(sc, &st);
  return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:s, s:I}", "prefix_hits", (json_int_t)st.prefix_hits,
                   "prefix_misses", (json_int_t)st.prefix_misses, "cuts", (json_int_t)st.ncuts,
                   "cut_saves", (json_int_t)st.cut_saves, "cut_resumes",
                   (json_int_t)st.cut_resumes, "cut_layers_skipped",
                   (json_int_t)st.cut_layers_skipped, "cut_bytes", (json_int_t)st.cut_bytes,
                   "local_terms", lpq_local_mode_name(st.local), "local_dims",
                   (json_int_t)st.local_dims);
}
