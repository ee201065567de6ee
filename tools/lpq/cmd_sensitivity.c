/* tools/lpq/cmd_sensitivity.c: `lpq sensitivity`, every quantizable layer alone at each weight
** width (issue 13, item 3): the rise of L_CO over the all-fp32 model, and top-1 with labels; as
** a table, one JSON object, or an SVG heat map. */
#include "tools/lpq/lpq.h"
#include "worker/worker.h"

#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *out) {
  fprintf(out,
          "usage: lpq sensitivity --model M.onnx --data X [options]\n"
          "  --model M.onnx      the model (one float input, one float output)\n"
          "  --data X            inputs: .npy (float32, normalised) or IDX (raw or .gz)\n"
          "  --labels Y          class labels of X: top-1 over all of X for every cell\n"
          "  --calib-data X2     calibration inputs for L_CO (default: the first samples of X)\n"
          "  --calib N           calibration batch size for L_CO (default 256, at most the data)\n"
          "  --norm MEAN,STD     normalise IDX/uint8 images: (x/255 - MEAN) / STD\n"
          "  --bits LO:HI        weight widths tried (default 2:8)\n"
          "  --family F          weight formats: lp_ch (lp<b,es,rs,auto_ch>, default), lp\n"
          "                      (lp<b,es,rs,auto>, one sf per tensor) or int_ch (int<b,ch>);\n"
          "                      LP: es 0 up to 5 bits, else 1; rs min(b-1, 3)\n"
          "  --temperature T     InfoNCE temperature (default 0.5)\n"
          "  --threads T         candidates scored at once (default: the online cores)\n"
          "  --svg OUT.svg       a heat map: layers x bits, colour = rise of L_CO (log scale)\n"
          "  --json              one JSON object instead of text\n"
          "Each layer alone is quantized (the others and all activations stay fp32); a cell is\n"
          "L_CO(candidate) - L_CO(all fp32) on the calibration batch.\n");
}

typedef struct sens_args_t {
  const char *model, *data, *labels, *calib_data, *svg;
  size_t calib;
  double mean, std, temperature;
  int lo, hi, json;
  unsigned threads;
  lpq_sens_family_t family;
} sens_args_t;

static int parse_args(int argc, char **argv, sens_args_t *a) {
  static const struct option opts[] = {
      {"model", required_argument, 0, 'm'},      {"data", required_argument, 0, 'd'},
      {"labels", required_argument, 0, 'l'},     {"calib-data", required_argument, 0, 'D'},
      {"calib", required_argument, 0, 'n'},      {"norm", required_argument, 0, 'N'},
      {"bits", required_argument, 0, 'b'},       {"family", required_argument, 0, 'f'},
      {"temperature", required_argument, 0, 'T'}, {"threads", required_argument, 0, 't'},
      {"svg", required_argument, 0, 's'},        {"json", no_argument, 0, 'j'},
      {"help", no_argument, 0, 'h'},             {0, 0, 0, 0}};
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  *a = (sens_args_t){.calib = 256, .mean = 0, .std = 1, .temperature = 0.5, .lo = 2, .hi = 8,
                     .threads = cores > 0 ? (unsigned)cores : 1};
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    char *end;
    unsigned long v;
    switch (c) {
    case 'm': a->model = optarg; break;
    case 'd': a->data = optarg; break;
    case 'l': a->labels = optarg; break;
    case 'D': a->calib_data = optarg; break;
    case 's': a->svg = optarg; break;
    case 'j': a->json = 1; break;
    case 'n':
      a->calib = strtoul(optarg, &end, 10);
      if (*end || a->calib < 2 || a->calib > 65536) {
        fprintf(stderr, "lpq sensitivity: --calib %s: expected an integer in 2..65536\n", optarg);
        return 2;
      }
      break;
    case 'N':
      if (tool_parse_norm(optarg, &a->mean, &a->std) != 0) {
        fprintf(stderr, "lpq sensitivity: --norm %s: expected MEAN,STD with STD > 0\n", optarg);
        return 2;
      }
      break;
    case 'b':
      if (sscanf(optarg, "%d:%d%c", &a->lo, &a->hi, (char[2]){0}) != 2 || a->lo < 2 ||
          a->hi > 16 || a->lo > a->hi) {
        fprintf(stderr, "lpq sensitivity: --bits %s: expected LO:HI with 2 <= LO <= HI <= 16\n",
                optarg);
        return 2;
      }
      break;
    case 'f':
      if (strcmp(optarg, "lp_ch") == 0)
        a->family = LPQ_SENS_LP_CH;
      else if (strcmp(optarg, "lp") == 0)
        a->family = LPQ_SENS_LP;
      else if (strcmp(optarg, "int_ch") == 0)
        a->family = LPQ_SENS_INT_CH;
      else {
        fprintf(stderr, "lpq sensitivity: --family %s: expected lp_ch, lp or int_ch\n", optarg);
        return 2;
      }
      break;
    case 'T':
      a->temperature = strtod(optarg, &end);
      if (*end || !(a->temperature > 0)) {
        fprintf(stderr, "lpq sensitivity: --temperature %s: expected a number > 0\n", optarg);
        return 2;
      }
      break;
    case 't':
      v = strtoul(optarg, &end, 10);
      if (*end || v < 1 || v > 256) {
        fprintf(stderr, "lpq sensitivity: --threads %s: expected an integer in 1..256\n", optarg);
        return 2;
      }
      a->threads = (unsigned)v;
      break;
    case 'h': usage(stdout); return 1;
    default: usage(stderr); return 2;
    }
  }
  if (optind != argc) {
    fprintf(stderr, "lpq sensitivity: unexpected argument '%s'\n", argv[optind]);
    return 2;
  }
  if (!a->model || !a->data) {
    fprintf(stderr, "lpq sensitivity: --model and --data are required\n");
    usage(stderr);
    return 2;
  }
  return 0;
}

static json_t *num_or_null(double v) { return isfinite(v) ? json_real(v) : json_null(); }

static void print_json(const sens_args_t *a, size_t ncal, const lpq_sensitivity_t *s) {
  json_t *o = json_pack("{s:s, s:s, s:i, s:i, s:s, s:i, s:f, s:f, s:f}", "model", a->model,
                        "data", a->data, "calibration_samples", (int)ncal, "layers",
                        (int)s->layers, "family", lpq_sens_family_name(s->family), "threads",
                        (int)a->threads, "temperature", a->temperature, "l_co_fp32",
                        s->base_l_co, "elapsed_s", s->elapsed_ms / 1e3);
  json_t *bits = json_array();
  for (int b = s->bits_lo; b <= s->bits_hi; b++)
    json_array_append_new(bits, json_integer(b));
  json_object_set_new(o, "bits", bits);
  json_object_set_new(o, "top1_fp32", num_or_null(100.0 * s->base_top1));
  json_t *rows = json_array();
  for (size_t l = 0; l < s->layers; l++) {
    json_t *d = json_array(), *t = json_array();
    for (size_t c = 0; c < s->widths; c++) {
      json_array_append_new(d, num_or_null(s->delta_l_co[l * s->widths + c]));
      json_array_append_new(t, num_or_null(100.0 * s->top1[l * s->widths + c]));
    }
    json_array_append_new(rows, json_pack("{s:i, s:s, s:I, s:o, s:o}", "index", (int)l, "name",
                                          s->names[l], "weights", (json_int_t)s->weight_count[l],
                                          "delta_l_co", d, "top1", t));
  }
  json_object_set_new(o, "matrix", rows);
  json_dumpf(o, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
  fputc('\n', stdout);
  json_decref(o);
}

static void print_text(const sens_args_t *a, size_t ncal, const lpq_sensitivity_t *s) {
  lpq_numfmt_t f;
  char t[LPQ_NUMFMT_TEXT_MAX] = "?";
  if (lpq_sensitivity_format(s->family, s->bits_lo, &f, NULL) == 0)
    lpq_numfmt_str(&f, t, sizeof t);
  printf("model        %s (%zu quantizable layers)\n", a->model, s->layers);
  printf("calibration  %zu samples, T = %g; fp32 L_CO %.6f\n", ncal, a->temperature, s->base_l_co);
  printf("weights      %s family (at %d bits: %s); activations fp32\n",
         lpq_sens_family_name(s->family), s->bits_lo, t);
  printf("time         %.1f s (%zu candidates, %u threads)\n\n", s->elapsed_ms / 1e3,
         s->layers * s->widths, a->threads);
  size_t wname = 5;
  for (size_t l = 0; l < s->layers; l++)
    wname = strlen(s->names[l]) > wname ? strlen(s->names[l]) : wname;
  wname = wname > 40 ? 40 : wname;
  printf("rise of L_CO, one layer quantized at a time\n%3s  %-*s %9s", "#", (int)wname, "layer",
         "weights");
  for (int b = s->bits_lo; b <= s->bits_hi; b++)
    printf(" %9d", b);
  printf("\n");
  for (size_t l = 0; l < s->layers; l++) {
    printf("%3zu  %-*.*s %9zu", l, (int)wname, (int)wname, s->names[l], s->weight_count[l]);
    for (size_t c = 0; c < s->widths; c++)
      printf(" %9.5f", s->delta_l_co[l * s->widths + c]);
    printf("\n");
  }
  if (!isfinite(s->base_top1))
    return;
  printf("\ntop-1 %% over %s (fp32 %.2f%%)\n%3s  %-*s %9s", a->data, 100 * s->base_top1, "#",
         (int)wname, "layer", "");
  for (int b = s->bits_lo; b <= s->bits_hi; b++)
    printf(" %9d", b);
  printf("\n");
  for (size_t l = 0; l < s->layers; l++) {
    printf("%3zu  %-*.*s %9s", l, (int)wname, (int)wname, s->names[l], "");
    for (size_t c = 0; c < s->widths; c++)
      printf(" %9.2f", 100 * s->top1[l * s->widths + c]);
    printf("\n");
  }
}

int cmd_sensitivity(int argc, char **argv) {
  sens_args_t a;
  int prc = parse_args(argc, argv, &a);
  if (prc != 0)
    return prc == 1 ? 0 : prc;
  lpq_blas_single_thread(); /* the candidate threads use the cores */
  lpq_error_t err = {0};
  lpq_array_t *x = NULL, *cx = NULL;
  int64_t *labels = NULL;
  size_t nlabels = 0;
  lpq_graph_t *g = NULL;
  lpq_scorer_t *s = NULL;
  lpq_sensitivity_t *sens = NULL;
  int status = 1;

  if (lpq_load_inputs(a.data, a.mean, a.std, &x, &err) != 0 ||
      (a.labels && tool_load_labels(a.labels, &labels, &nlabels, &err) != 0) ||
      (a.calib_data && lpq_load_inputs(a.calib_data, a.mean, a.std, &cx, &err) != 0))
    goto fail;
  if (labels && nlabels != (size_t)x->shape[0]) {
    lpq_errorf(&err, LPQ_EFORMAT, "%s has %zu labels for %lld samples in %s", a.labels, nlabels,
               (long long)x->shape[0], a.data);
    goto fail;
  }
  const lpq_array_t *calib = cx ? cx : x;
  size_t ncal = (size_t)calib->shape[0] < a.calib ? (size_t)calib->shape[0] : a.calib;
  if (ncal < 2) {
    lpq_errorf(&err, LPQ_EINVAL, "%s: the contrastive loss needs at least 2 calibration samples",
               a.calib_data ? a.calib_data : a.data);
    goto fail;
  }
  if (!(g = lpq_graph_load(a.model, (int)ncal, &err)) ||
      tool_check_input_fits(g, x, a.data, &err) != 0 ||
      (cx && tool_check_input_fits(g, cx, a.calib_data, &err) != 0))
    goto fail;
  lpq_score_opts_t so = {.temperature = a.temperature};
  if (!(s = lpq_scorer_new(g, calib->data, NULL, &so, &err)))
    goto fail;
  lpq_sensitivity_opts_t o = {.bits_lo = a.lo, .bits_hi = a.hi, .family = a.family,
                              .threads = a.threads, .data = labels ? x->data : NULL,
                              .labels = labels, .count = nlabels};
  if (lpq_sensitivity_compute(g, s, &o, &sens, &err) != 0)
    goto fail;
  if (a.svg) {
    char title[256];
    snprintf(title, sizeof title, "Rise of L_CO, one layer at a time (%s weights): %s",
             lpq_sens_family_name(sens->family), a.model);
    if (tool_plot_heat_svg(a.svg, title, (const char *const *)sens->names, sens->layers,
                           sens->bits_lo, sens->bits_hi, sens->delta_l_co, &err) != 0)
      goto fail;
  }
  if (a.json)
    print_json(&a, ncal, sens);
  else
    print_text(&a, ncal, sens);
  status = 0;
  goto done;
fail:
  fprintf(stderr, "lpq sensitivity: %s\n", err.msg[0] ? err.msg : lpq_strerror(err.code));
done:
  lpq_sensitivity_free(&sens);
  lpq_scorer_free(&s);
  lpq_graph_free(&g);
  lpq_array_free(&x);
  lpq_array_free(&cx);
  free(labels);
  return status;
}
