/* tools/lpq/cmd_export.c: `lpq export`, a candidate as an ONNX model another runtime runs: QDQ
** for int and FP8, LP codes with the model-local lpq.LPDequantize / LPQuantize functions
** (engine/onnx_quant.c, docs/FORMATS.md), and its encodings JSON beside it. */
#include "tools/lpq/lpq.h"
#include "worker/worker.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out) {
  fprintf(out,
          "usage: lpq export --model M.onnx --config C.json --out Q.onnx [options]\n"
          "  --model M.onnx      the model (as lpq eval takes it)\n"
          "  --config C.json     the candidate: per-layer weight and activation formats\n"
          "  --out Q.onnx        the quantized model (opset 21); its encodings go to\n"
          "                      Q.encodings.json (or --encodings)\n"
          "  --calib-data X      calibration inputs for activation formats whose scale or sf\n"
          "                      depends on the data (the first --calib samples, as lpq eval)\n"
          "  --calib N           calibration batch size (default 256, at most the data)\n"
          "  --norm MEAN,STD     normalise IDX/uint8 images: (x/255 - MEAN) / STD\n"
          "  --encodings E.json  where to write the encodings JSON\n"
          "  --bias-correction on|off\n"
          "                      write the scorer's bias correction (computed on the\n"
          "                      calibration data) into the biases (default: the config's\n"
          "                      \"bias_correction\", else off)\n");
}

static int write_file(const char *path, const void *data, size_t len, lpq_error_t *err) {
  FILE *f = fopen(path, "wb");
  if (!f)
    return lpq_errorf(err, LPQ_EIO, "%s: %s", path, strerror(errno));
  int ok = fwrite(data, 1, len, f) == len;
  if (fclose(f) != 0 || !ok)
    return lpq_errorf(err, LPQ_EIO, "%s: cannot write", path);
  return 0;
}

int cmd_export(int argc, char **argv) {
  static const struct option opts[] = {
      {"model", required_argument, 0, 'm'},  {"config", required_argument, 0, 'c'},
      {"out", required_argument, 0, 'o'},    {"calib-data", required_argument, 0, 'D'},
      {"calib", required_argument, 0, 'n'},  {"norm", required_argument, 0, 'N'},
      {"encodings", required_argument, 0, 'E'}, {"bias-correction", required_argument, 0, 'B'},
      {"help", no_argument, 0, 'h'},
      {0, 0, 0, 0}};
  const char *model = NULL, *config = NULL, *outp = NULL, *calib_data = NULL, *enc = NULL;
  size_t calib = 256;
  double mean = 0, std = 1;
  int c, bias_correction = -1; /* -1: the config's */
  optind = 1;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    char *end;
    switch (c) {
    case 'm': model = optarg; break;
    case 'c': config = optarg; break;
    case 'o': outp = optarg; break;
    case 'D': calib_data = optarg; break;
    case 'E': enc = optarg; break;
    case 'n':
      calib = strtoul(optarg, &end, 10);
      if (*end || calib < 1 || calib > 65536) {
        fprintf(stderr, "lpq export: --calib %s: expected an integer in 1..65536\n", optarg);
        return 2;
      }
      break;
    case 'N':
      if (tool_parse_norm(optarg, &mean, &std) != 0) {
        fprintf(stderr, "lpq export: --norm %s: expected MEAN,STD with STD > 0\n", optarg);
        return 2;
      }
      break;
    case 'B':
      if (strcmp(optarg, "on") && strcmp(optarg, "off")) {
        fprintf(stderr, "lpq export: --bias-correction %s: expected on or off\n", optarg);
        return 2;
      }
      bias_correction = strcmp(optarg, "on") == 0;
      break;
    case 'h': usage(stdout); return 0;
    default: usage(stderr); return 2;
    }
  }
  if (optind != argc || !model || !config || !outp) {
    fprintf(stderr, optind != argc ? "lpq export: unexpected argument '%s'\n"
                                   : "lpq export: --model, --config and --out are required%s\n",
            optind != argc ? argv[optind] : "");
    usage(stderr);
    return 2;
  }
  lpq_error_t err = {0};
  lpq_array_t *cx = NULL;
  lpq_graph_t *g = NULL;
  lpq_config_t *cfg = NULL;
  lpq_qexport_t q = {0};
  lpq_numfmt_t *w = NULL;
  const char **names = NULL;
  float **shift = NULL;
  char *enc_path = NULL;
  int status = 1;
  size_t ncal = 1;
  if (calib_data) {
    if (lpq_load_inputs(calib_data, mean, std, &cx, &err) != 0)
      goto fail;
    ncal = (size_t)cx->shape[0] < calib ? (size_t)cx->shape[0] : calib;
  }
  if (!(g = lpq_graph_load(model, (int)ncal, &err)))
    goto fail;
  if (cx && tool_check_input_fits(g, cx, calib_data, &err) != 0)
    goto fail;
  if (!(cfg = lpq_config_load(config, &err)))
    goto fail;
  if (bias_correction < 0)
    bias_correction = cfg->bias_correction;
  size_t nl = lpq_graph_num_layers(g);
  w = calloc(2 * nl + 1, sizeof *w);
  names = calloc(nl + 1, sizeof *names);
  if (!w || !names) {
    lpq_errorf(&err, LPQ_ENOMEM, "out of memory");
    goto fail;
  }
  for (size_t i = 0; i < nl; i++)
    names[i] = lpq_graph_layer(g, i)->name;
  if (lpq_config_bind(cfg, nl, names, w, w + nl, &err) != 0) {
    lpq_error_prefix(&err, "%s: ", config);
    goto fail;
  }
  if (bias_correction) { /* the scorer's correction, on the same calibration batch */
    if (!cx) {
      lpq_errorf(&err, LPQ_EINVAL, "bias correction is computed on data: give calibration "
                 "inputs (--calib-data), as lpq eval scored the config");
      goto fail;
    }
    if (!(shift = calloc(nl + 1, sizeof *shift))) {
      lpq_errorf(&err, LPQ_ENOMEM, "out of memory");
      goto fail;
    }
    if (lpq_bias_shifts(g, w, cx->data, shift, &err) != 0)
      goto fail;
  }
  if (lpq_onnx_export_quantized(model, g, w, w + nl, cx ? cx->data : NULL,
                                (const float *const *)shift, &q, &err) != 0) {
    lpq_error_prefix(&err, "%s: ", model);
    goto fail;
  }
  if (!enc) { /* Q.onnx -> Q.encodings.json */
    size_t n = strlen(outp), stem = n > 5 && !strcmp(outp + n - 5, ".onnx") ? n - 5 : n;
    if (!(enc_path = malloc(stem + 16))) {
      lpq_errorf(&err, LPQ_ENOMEM, "out of memory");
      goto fail;
    }
    snprintf(enc_path, stem + 16, "%.*s.encodings.json", (int)stem, outp);
    enc = enc_path;
  }
  if (write_file(outp, q.onnx, q.onnx_len, &err) != 0 ||
      write_file(enc, q.encodings, strlen(q.encodings), &err) != 0)
    goto fail;
  printf("wrote %s (%zu bytes%s) and %s\n", outp, q.onnx_len,
         shift ? ", bias correction in the biases" : "", enc);
  status = 0;
  goto done;
fail:
  fprintf(stderr, "lpq export: %s\n", err.msg[0] ? err.msg : lpq_strerror(err.code));
done:
  lpq_qexport_clear(&q);
  lpq_config_free(&cfg);
  for (size_t i = 0; shift && i < lpq_graph_num_layers(g); i++)
    free(shift[i]);
  free(shift);
  lpq_graph_free(&g);
  lpq_array_free(&cx);
  free(w);
  free(names);
  free(enc_path);
  return status;
}
