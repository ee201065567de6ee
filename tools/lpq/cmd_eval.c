/* tools/lpq/cmd_eval.c: `lpq eval`, one candidate's score (DESIGN section 6). */
#include "tools/lpq/lpq.h"
#include "worker/worker.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *out) {
  fprintf(out,
          "usage: lpq eval --model M.onnx --data X --config C.json [options]\n"
          "  --model M.onnx      the model (one float input, one float output)\n"
          "  --data X            inputs: .npy (float32, normalised) or IDX (raw or .gz)\n"
          "  --labels Y          class labels (.npy int64/uint8 or IDX): top-1 over all of X\n"
          "  --config C.json     the candidate: per-layer weight and activation formats\n"
          "  --calib-data X2     calibration inputs for L_CO (default: the first samples of X)\n"
          "  --calib N           calibration batch size for L_CO (default 256, at most the data)\n"
          "  --norm MEAN,STD     normalise IDX/uint8 images: (x/255 - MEAN) / STD\n"
          "  --temperature T     InfoNCE temperature (default 0.5)\n"
          "  --lambda L          exponent of L_CR in L_F = L_CO * L_CR^L (default 1)\n"
          "  --local-terms M     L_CO's local terms: exact (default), projected (a fixed random\n"
          "                      projection of each layer's output rows: lpq search's default,\n"
          "                      to reproduce its L_CO) or pooled: see lpq search --help\n"
          "  --local-dim K       projected: values per row (256); pooled: cells per channel (16)\n"
          "  --bias-correction on|off\n"
          "                      correct each quantized layer's bias for the mean output shift\n"
          "                      its weight quantization causes on the calibration batch (the\n"
          "                      config's \"bias_correction\", else off)\n"
          "  --resolved-config OUT.json\n"
          "                      write the config with auto sf and scales resolved (per-channel\n"
          "                      LP: \"w\" keeps auto_ch, \"w_sf\" lists each channel's sf)\n"
          "  --out Z.npy         the quantized model's logits over all of X (float32)\n"
          "  --threads T         batches of X scored at once (default: the online cores; the\n"
          "                      results do not depend on it)\n"
          "  --json              one JSON object instead of text\n");
}

typedef struct eval_args_t {
  const char *model, *data, *labels, *config, *calib_data, *resolved_config, *out;
  size_t calib;
  int threads;
  double mean, std, temperature, lambda;
  int json, bias_correction, bc_given; /* the flag, else the config's "bias_correction" */
  lpq_local_mode_t local;
  size_t local_dim;
} eval_args_t;

static int parse_args(int argc, char **argv, eval_args_t *a) {
  static const struct option opts[] = {
      {"model", required_argument, 0, 'm'},      {"data", required_argument, 0, 'd'},
      {"labels", required_argument, 0, 'l'},     {"config", required_argument, 0, 'c'},
      {"calib-data", required_argument, 0, 'D'}, {"calib", required_argument, 0, 'n'},
      {"norm", required_argument, 0, 'N'},       {"temperature", required_argument, 0, 'T'},
      {"lambda", required_argument, 0, 'L'},     {"json", no_argument, 0, 'j'},
      {"bias-correction", required_argument, 0, 'B'},
      {"resolved-config", required_argument, 0, 'R'}, {"out", required_argument, 0, 'O'},
      {"threads", required_argument, 0, 't'},
      {"local-terms", required_argument, 0, 'E'}, {"local-dim", required_argument, 0, 'K'},
      {"help", no_argument, 0, 'h'},             {0, 0, 0, 0}};
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  *a = (eval_args_t){.calib = 256, .mean = 0, .std = 1, .temperature = 0.5, .lambda = 1,
                     .threads = cores > 0 ? (int)(cores < 64 ? cores : 64) : 1};
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    char *end;
    switch (c) {
    case 'm': a->model = optarg; break;
    case 'd': a->data = optarg; break;
    case 'l': a->labels = optarg; break;
    case 'c': a->config = optarg; break;
    case 'D': a->calib_data = optarg; break;
    case 'n':
      a->calib = strtoul(optarg, &end, 10);
      if (*end || a->calib < 2 || a->calib > 65536) {
        fprintf(stderr, "lpq eval: --calib %s: expected an integer in 2..65536\n", optarg);
        return 2;
      }
      break;
    case 'N':
      if (tool_parse_norm(optarg, &a->mean, &a->std) != 0) {
        fprintf(stderr, "lpq eval: --norm %s: expected MEAN,STD with STD > 0\n", optarg);
        return 2;
      }
      break;
    case 'T':
      a->temperature = strtod(optarg, &end);
      if (*end || !(a->temperature > 0)) {
        fprintf(stderr, "lpq eval: --temperature %s: expected a number > 0\n", optarg);
        return 2;
      }
      break;
    case 'L':
      a->lambda = strtod(optarg, &end);
      if (*end) {
        fprintf(stderr, "lpq eval: --lambda %s: expected a number\n", optarg);
        return 2;
      }
      break;
    case 'j': a->json = 1; break;
    case 'B':
      if (strcmp(optarg, "on") != 0 && strcmp(optarg, "off") != 0) {
        fprintf(stderr, "lpq eval: --bias-correction %s: expected on or off\n", optarg);
        return 2;
      }
      a->bias_correction = strcmp(optarg, "on") == 0 ? 1 : 0;
      a->bc_given = 1;
      break;
    case 'E':
      if (lpq_local_mode_parse(optarg, &a->local, NULL) != 0) {
        fprintf(stderr, "lpq eval: --local-terms %s: expected exact, projected or pooled\n",
                optarg);
        return 2;
      }
      break;
    case 'K':
      a->local_dim = strtoul(optarg, &end, 10);
      if (*end || a->local_dim < 1 || a->local_dim > 1 << 20) {
        fprintf(stderr, "lpq eval: --local-dim %s: expected an integer in 1..1048576\n", optarg);
        return 2;
      }
      break;
    case 'R': a->resolved_config = optarg; break;
    case 'O': a->out = optarg; break;
    case 't':
      a->threads = (int)strtol(optarg, &end, 10);
      if (*end || a->threads < 1 || a->threads > 64) {
        fprintf(stderr, "lpq eval: --threads %s: expected an integer in 1..64\n", optarg);
        return 2;
      }
      break;
    case 'h': usage(stdout); return 1;
    default: usage(stderr); return 2;
    }
  }
  if (optind != argc) {
    fprintf(stderr, "lpq eval: unexpected argument '%s'\n", argv[optind]);
    return 2;
  }
  if (!a->model || !a->data || !a->config) {
    fprintf(stderr, "lpq eval: --model, --data and --config are required\n");
    usage(stderr);
    return 2;
  }
  return 0;
}

/* Writes the candidate with its formats resolved to path: auto sf and scales filled in, and
** for per-channel LP the sf of every output channel ("w_sf"). */
static int write_resolved(lpq_scorer_t *s, const lpq_graph_t *g, const char **names,
                          const lpq_numfmt_t *w, const lpq_numfmt_t *a, const char *path,
                          lpq_error_t *err) {
  const size_t nl = lpq_graph_num_layers(g);
  lpq_numfmt_t *rw = calloc(2 * nl + 1, sizeof *rw), *ra = rw ? rw + nl : NULL;
  int **sf = calloc(nl + 1, sizeof *sf);
  size_t *nsf = calloc(nl + 1, sizeof *nsf);
  char *text = NULL;
  int rc = (!rw || !sf || !nsf) ? lpq_errorf(err, LPQ_ENOMEM, "out of memory")
                                : lpq_scorer_resolve(s, w, a, rw, ra, err);
  for (size_t i = 0; i < nl && rc == 0; i++) {
    const lpq_layer_t *L = lpq_graph_layer(g, i);
    if (rw[i].family != LPQ_FAM_LP || !rw[i].per_channel)
      continue;
    size_t ch = (size_t)L->weight_shape[0];
    lpq_numfmt_t *fc = malloc(ch * sizeof *fc);
    if (!fc || !(sf[i] = malloc(ch * sizeof *sf[i]))) {
      free(fc);
      rc = lpq_errorf(err, LPQ_ENOMEM, "out of memory");
      break;
    }
    rc = lpq_numfmt_calibrate_channels(&rw[i], L->weight, ch, L->weight_count / ch, fc, err);
    for (size_t c = 0; c < ch && rc == 0; c++)
      sf[i][c] = fc[c].p[3];
    nsf[i] = ch;
    free(fc);
    if (rc != 0)
      lpq_error_prefix(err, "layer %zu (%s): ", i, L->name);
  }
  if (rc == 0 && !(text = lpq_config_to_json_sf(nl, names, rw, ra, (const int *const *)sf, nsf)))
    rc = lpq_errorf(err, LPQ_ENOMEM, "out of memory");
  FILE *fp = rc == 0 ? fopen(path, "w") : NULL;
  if (rc == 0 && (!fp || fputs(text, fp) < 0 || fputc('\n', fp) == EOF))
    rc = lpq_errorf(err, LPQ_EIO, "%s: cannot write", path);
  if (fp && fclose(fp) != 0 && rc == 0)
    rc = lpq_errorf(err, LPQ_EIO, "%s: cannot write", path);
  for (size_t i = 0; sf && i < nl; i++)
    free(sf[i]);
  free(sf);
  free(nsf);
  free(rw);
  free(text);
  return rc;
}

/* One pass over all of x: the top-1s with labels, the candidate's logits as Z.npy [N, classes]
** with path. */
static int predict_all(lpq_scorer_t *s, const lpq_graph_t *g, const lpq_numfmt_t *w,
                       const lpq_numfmt_t *af, const lpq_array_t *x, const int64_t *labels,
                       double *top1_fp, double *top1_q, const char *path, lpq_error_t *err) {
  lpq_tensor_info_t out;
  lpq_graph_output(g, 0, &out);
  int64_t shape[2] = {x->shape[0], (int64_t)(out.count / (size_t)lpq_graph_batch(g))};
  lpq_array_t *z = path ? lpq_array_new(LPQ_DT_F32, 2, shape, err) : NULL;
  if (path && !z)
    return err ? err->code : LPQ_ENOMEM;
  int rc = lpq_scorer_predict(s, w, af, x->data, labels, (size_t)x->shape[0], top1_fp, top1_q,
                              z ? z->data : NULL, err);
  if (rc == 0 && z)
    rc = lpq_save_npy(path, z, err);
  lpq_array_free(&z);
  return rc;
}

int cmd_eval(int argc, char **argv) {
  eval_args_t a;
  int prc = parse_args(argc, argv, &a);
  if (prc != 0)
    return prc == 1 ? 0 : prc;
  /* one BLAS thread: an evaluation gives the same numbers as in a search or on a worker (the
  ** data set's batches run on --threads threads, one execution context each) */
  lpq_blas_single_thread();
  lpq_error_t err = {0};
  lpq_array_t *x = NULL, *cx = NULL;
  int64_t *labels = NULL;
  size_t nlabels = 0, nl = 0;
  lpq_graph_t *g = NULL;
  lpq_config_t *cfg = NULL;
  lpq_scorer_t *s = NULL;
  lpq_numfmt_t *w = NULL, *af = NULL;
  const char **names = NULL;
  int status = 1;

  if (lpq_load_inputs(a.data, a.mean, a.std, &x, &err) != 0)
    goto fail;
  if (a.labels) {
    if (tool_load_labels(a.labels, &labels, &nlabels, &err) != 0)
      goto fail;
    if (nlabels != (size_t)x->shape[0]) {
      lpq_errorf(&err, LPQ_EFORMAT, "%s has %zu labels for %lld samples in %s", a.labels,
                 nlabels, (long long)x->shape[0], a.data);
      goto fail;
    }
  }
  if (a.calib_data && lpq_load_inputs(a.calib_data, a.mean, a.std, &cx, &err) != 0)
    goto fail;
  const lpq_array_t *calib = cx ? cx : x;
  size_t ncal = (size_t)calib->shape[0] < a.calib ? (size_t)calib->shape[0] : a.calib;
  if (ncal < 2) {
    lpq_errorf(&err, LPQ_EINVAL, "%s: the contrastive loss needs at least 2 calibration samples",
               a.calib_data ? a.calib_data : a.data);
    goto fail;
  }
  if (!(g = lpq_graph_load(a.model, (int)ncal, &err)))
    goto fail;
  if (tool_check_input_fits(g, x, a.data, &err) != 0 ||
      (cx && tool_check_input_fits(g, cx, a.calib_data, &err) != 0))
    goto fail;
  if (!(cfg = lpq_config_load(a.config, &err)))
    goto fail;
  nl = lpq_graph_num_layers(g);
  w = calloc(nl + 1, sizeof *w);
  af = calloc(nl + 1, sizeof *af);
  names = calloc(nl + 1, sizeof *names);
  if (!w || !af || !names) {
    lpq_errorf(&err, LPQ_ENOMEM, "out of memory");
    goto fail;
  }
  for (size_t i = 0; i < nl; i++)
    names[i] = lpq_graph_layer(g, i)->name;
  if (lpq_config_bind(cfg, nl, names, w, af, &err) != 0) {
    lpq_error_prefix(&err, "%s: ", a.config);
    goto fail;
  }
  if (!a.bc_given)
    a.bias_correction = cfg->bias_correction;
  lpq_score_opts_t opts = {.temperature = a.temperature, .lambda = a.lambda,
                           .bias_correction = a.bias_correction, .threads = a.threads,
                           .local = a.local, .local_dim = a.local_dim};
  /* calibration labels: only when the calibration batch is a prefix of the labelled data */
  if (!(s = lpq_scorer_new(g, calib->data, cx ? NULL : labels, &opts, &err)))
    goto fail;
  lpq_score_t sc;
  if (lpq_scorer_eval(s, w, af, &sc, &err) != 0)
    goto fail;
  double top1_fp = -1, top1_q = -1;
  if ((labels || a.out) && predict_all(s, g, w, af, x, labels, &top1_fp, &top1_q, a.out,
                                       &err) != 0)
    goto fail;
  double self = lpq_scorer_self_contrast(s);
  if (a.resolved_config && write_resolved(s, g, names, w, af, a.resolved_config, &err) != 0)
    goto fail;
  if (a.json) {
    json_t *o = json_pack("{s:s, s:s, s:i, s:i, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f}",
                          "model", a.model, "config", a.config, "layers", (int)nl,
                          "calibration_samples", (int)ncal, "temperature", a.temperature,
                          "l_co", sc.l_co, "l_co_global", sc.l_global, "l_co_local",
                          sc.l_local, "l_co_fp32_self", self, "l_cr", sc.l_cr, "l_f", sc.l_f,
                          "mean_weight_bits", sc.mean_w_bits, "mean_activation_bits",
                          sc.mean_a_bits, "eval_ms", sc.eval_ms);
    json_object_set_new(o, "bias_correction", json_boolean(a.bias_correction));
    json_object_set_new(o, "local_terms", json_string(lpq_local_mode_name(a.local)));
    if (labels) {
      json_object_set_new(o, "top1_fp32", json_real(100.0 * top1_fp));
      json_object_set_new(o, "top1_quantized", json_real(100.0 * top1_q));
      json_object_set_new(o, "top1_samples", json_integer((json_int_t)nlabels));
    }
    json_dumpf(o, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
    fputc('\n', stdout);
    json_decref(o);
  } else {
    printf("model        %s (%zu quantizable layers)\n", a.model, nl);
    printf("config       %s\n", a.config);
    printf("calibration  %zu samples, T = %g, local terms %s\n", ncal, a.temperature,
           lpq_local_mode_name(a.local));
    printf("L_CO         %.6f (global %.6f, local mean %.6f; fp32 self-contrast %.6f)\n", sc.l_co,
           sc.l_global, sc.l_local, self);
    printf("mean bits    weights %.3f, activations %.3f\n", sc.mean_w_bits, sc.mean_a_bits);
    printf("L_CR         %.4f (weight bits / 32)\n", sc.l_cr);
    printf("L_F          %.6f (lambda %g)\n", sc.l_f, a.lambda);
    printf("bias corr.   %s\n", a.bias_correction ? "on" : "off");
    if (labels)
      printf("top-1        fp32 %.2f%%, quantized %.2f%% over %zu samples (drop %.2f points)\n",
             100 * top1_fp, 100 * top1_q, nlabels, 100 * (top1_fp - top1_q));
    printf("time         %.1f ms per evaluation\n", sc.eval_ms);
  }
  status = 0;
  goto done;
fail:
  fprintf(stderr, "lpq eval: %s\n", err.msg[0] ? err.msg : lpq_strerror(err.code));
done:
  lpq_scorer_free(&s);
  lpq_config_free(&cfg);
  lpq_graph_free(&g);
  lpq_array_free(&x);
  lpq_array_free(&cx);
  free(labels);
  free(w);
  free(af);
  free(names);
  return status;
}
