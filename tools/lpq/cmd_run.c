/* tools/lpq/cmd_run.c: `lpq run`: full-precision inference over a data set (DESIGN section 6). */
#include "engine/engine.h"
#include "tools/lpq/lpq.h"

#include <cblas.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void usage(FILE *out) {
  fprintf(out,
          "usage: lpq run --model M.onnx --data X [--labels Y] [--batch B] [--norm MEAN,STD]\n"
          "               [--out Z.npy] [--threads T] [--repeat R] [--swap-weights] [--json]\n"
          "  --model M     an ONNX model (one float input, one float output)\n"
          "  --data X      inputs: .npy float32 (already normalised) or uint8 (scaled to [0,1])\n"
          "  --labels Y    .npy int64 or uint8 labels: prints top-1 accuracy\n"
          "  --batch B     batch size the graph is built for (default 8); the last batch is\n"
          "                padded with zeros\n"
          "  --norm M,S    for uint8 data: (x/255 - M) / S (default 0,1)\n"
          "  --out Z.npy   the logits, float32 [N, ...]\n"
          "  --threads T   the engine's threads (default 1)\n"
          "  --repeat R    run the whole data set R times; timing is the median per batch\n"
          "  --swap-weights  every layer's weights come from a hook (a copy), as in a quantized\n"
          "                evaluation: the kernels pack them on every run (the repack cost)\n"
          "  --json        one JSON object instead of text\n");
}


/* ---- the command ---- */

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* --swap-weights: layer i's weights replaced by copies[i] (same values, another address). */
static const float *swapped_weight(void *user, size_t layer, const float *w, size_t count) {
  (void)w, (void)count;
  return ((float *const *)user)[layer];
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int cmd_run(int argc, char **argv) {
  static const struct option opts[] = {
      {"model", required_argument, 0, 'm'}, {"data", required_argument, 0, 'd'},
      {"labels", required_argument, 0, 'l'}, {"batch", required_argument, 0, 'b'},
      {"norm", required_argument, 0, 'n'}, {"out", required_argument, 0, 'o'},
      {"threads", required_argument, 0, 't'}, {"repeat", required_argument, 0, 'r'},
      {"json", no_argument, 0, 'j'}, {"swap-weights", no_argument, 0, 'w'},
      {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
  const char *model = NULL, *data = NULL, *labels = NULL, *outp = NULL;
  int batch = 8, threads = 1, repeat = 1, json = 0, swap = 0, c;
  double mean = 0.0, std = 1.0;
  /* main() already chose OpenBLAS's fastest kernels for this CPU (lpq_blas_select_kernels) */
  optind = 1;
  while ((c = getopt_long(argc, argv, "m:d:l:b:n:o:t:r:jwh", opts, NULL)) != -1) {
    switch (c) {
    case 'm': model = optarg; break;
    case 'd': data = optarg; break;
    case 'l': labels = optarg; break;
    case 'b': batch = atoi(optarg); break;
    case 'n':
      if (sscanf(optarg, "%lf,%lf", &mean, &std) != 2 || std == 0.0) {
        fprintf(stderr, "lpq run: --norm wants MEAN,STD with STD != 0, got '%s'\n", optarg);
        return 2;
      }
      break;
    case 'o': outp = optarg; break;
    case 't': threads = atoi(optarg); break;
    case 'r': repeat = atoi(optarg); break;
    case 'j': json = 1; break;
    case 'w': swap = 1; break;
    case 'h': usage(stdout); return 0;
    default: usage(stderr); return 2;
    }
  }
  if (!model || !data || optind != argc || batch < 1 || batch > 65536 || threads < 1 ||
      threads > 256 || repeat < 1 || repeat > 100000) {
    fprintf(stderr, "lpq run: --model and --data are required; --batch, --threads, --repeat "
                    "must be positive\n");
    usage(stderr);
    return 2;
  }
  lpq_blas_single_thread(); /* the engine's own threads run the graph */
  lpq_error_t err;
  int status = 1;
  lpq_array_t *x = NULL, *y = NULL, *lab = NULL, *logits = NULL;
  lpq_exec_t *ex = NULL;
  float *in_buf = NULL, *out_buf = NULL, **copies = NULL;
  size_t ncopies = 0;
  double *times = NULL;
  lpq_graph_t *g = lpq_graph_load(model, batch, &err);
  if (!g)
    goto fail;
  lpq_tensor_info_t ii, oi;
  if (lpq_graph_num_inputs(g) != 1 || lpq_graph_num_outputs(g) != 1 ||
      lpq_graph_input(g, 0, &ii) || lpq_graph_output(g, 0, &oi) || ii.dtype != LPQ_DT_F32 ||
      oi.dtype != LPQ_DT_F32) {
    lpq_errorf(&err, LPQ_EUNSUP, "%s: lpq run needs one float input and one float output",
               model);
    goto fail;
  }
  if (lpq_load_inputs(data, mean, std, &x, &err) != 0)
    goto fail;
  const size_t per_in = ii.count / (size_t)batch, per_out = oi.count / (size_t)batch;
  const size_t N = x->ndim > 0 ? (size_t)x->shape[0] : 0;
  if (x->dtype != LPQ_DT_F32 || N == 0 || x->count != N * per_in) {
    char a[160], b[160];
    lpq_errorf(&err, LPQ_EINVAL, "%s: data %s %s does not fit the model's input %s (float32, "
               "%zu values per sample)", data, lpq_dtype_name(x->dtype),
               lpq_shape_str(x->ndim, x->shape, a, sizeof a),
               lpq_shape_str(ii.ndim, ii.shape, b, sizeof b), per_in);
    goto fail;
  }
  if (labels) {
    if (lpq_load_array(labels, &lab, &err) != 0)
      goto fail;
    if (lab->count != N || (lab->dtype != LPQ_DT_I64 && lab->dtype != LPQ_DT_U8)) {
      lpq_errorf(&err, LPQ_EINVAL, "%s: %zu %s labels for %zu samples (int64 or uint8 needed)",
                 labels, lab->count, lpq_dtype_name(lab->dtype), N);
      goto fail;
    }
  }
  int64_t lshape[2] = {(int64_t)N, (int64_t)per_out};
  if (!(ex = lpq_exec_new(g, &err)) || lpq_exec_set_threads(ex, threads, &err) != 0 ||
      !(logits = lpq_array_new(LPQ_DT_F32, 2, lshape, &err)))
    goto fail;
  const size_t nb = (N + (size_t)batch - 1) / (size_t)batch;
  in_buf = calloc(ii.count, sizeof *in_buf);
  out_buf = calloc(oi.count, sizeof *out_buf);
  times = calloc(nb * (size_t)repeat, sizeof *times);
  if (!in_buf || !out_buf || !times) {
    lpq_errorf(&err, LPQ_ENOMEM, "out of memory");
    goto fail;
  }
  lpq_hooks_t hooks = {.weight = swapped_weight};
  if (swap) {
    ncopies = lpq_graph_num_layers(g);
    if (!(copies = calloc(ncopies + 1, sizeof *copies))) {
      lpq_errorf(&err, LPQ_ENOMEM, "out of memory");
      goto fail;
    }
    for (size_t i = 0; i < ncopies; i++) {
      const lpq_layer_t *L = lpq_graph_layer(g, i);
      if (!(copies[i] = malloc(L->weight_count * sizeof **copies + 1))) {
        lpq_errorf(&err, LPQ_ENOMEM, "out of memory");
        goto fail;
      }
      memcpy(copies[i], L->weight, L->weight_count * sizeof **copies);
    }
    hooks.user = copies;
  }
  for (int r = 0; r < repeat; r++)
    for (size_t b = 0; b < nb; b++) {
      const size_t first = b * (size_t)batch;
      const size_t rows = N - first < (size_t)batch ? N - first : (size_t)batch;
      const float *src = (const float *)x->data + first * per_in;
      if (rows < (size_t)batch) { /* pad the last batch */
        memset(in_buf, 0, ii.count * sizeof *in_buf);
        memcpy(in_buf, src, rows * per_in * sizeof *in_buf);
        src = in_buf;
      }
      double t0 = now_ms();
      if (lpq_exec_run(ex, src, out_buf, swap ? &hooks : NULL, &err) != 0)
        goto fail;
      times[(size_t)r * nb + b] = now_ms() - t0;
      memcpy((float *)logits->data + first * per_out, out_buf, rows * per_out * sizeof *out_buf);
    }
  size_t correct = 0;
  for (size_t i = 0; lab && i < N; i++) {
    const float *row = (const float *)logits->data + i * per_out;
    size_t best = 0;
    for (size_t j = 1; j < per_out; j++)
      if (row[j] > row[best])
        best = j;
    int64_t want = lab->dtype == LPQ_DT_I64 ? ((int64_t *)lab->data)[i] : ((uint8_t *)lab->data)[i];
    correct += (int64_t)best == want;
  }
  if (outp && lpq_save_npy(outp, logits, &err) != 0)
    goto fail;
  const size_t nt = nb * (size_t)repeat;
  double total = 0.0;
  for (size_t i = 0; i < nt; i++)
    total += times[i];
  qsort(times, nt, sizeof *times, cmp_double);
  const double median = nt % 2 ? times[nt / 2] : 0.5 * (times[nt / 2 - 1] + times[nt / 2]);
  const double top1 = lab ? 100.0 * (double)correct / (double)N : -1.0;
  if (json) {
    json_t *o = json_pack("{s:s, s:I, s:i, s:I, s:i, s:i, s:f, s:f, s:I, s:I}", "model", model,
                          "samples", (json_int_t)N, "batch", batch, "batches", (json_int_t)nb,
                          "threads", threads, "repeat", repeat, "median_batch_ms", median,
                          "mean_batch_ms", total / (double)nt, "exec_bytes",
                          (json_int_t)lpq_graph_exec_bytes(g), "layers",
                          (json_int_t)lpq_graph_num_layers(g));
    if (o) {
      json_object_set_new(o, "min_batch_ms", json_real(times[0]));
      json_object_set_new(o, "blas_core", json_string(openblas_get_corename()));
      json_object_set_new(o, "isa", json_string(lpq_engine_isa()));
    }
    if (o && lab)
      json_object_set_new(o, "top1", json_real(top1));
    if (o && outp)
      json_object_set_new(o, "out", json_string(outp));
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    if (s)
      printf("%s\n", s);
    free(s);
    json_decref(o);
  } else {
    printf("model %s: %zu samples in %zu batches of %d, %zu quantizable layers\n", model, N, nb,
           batch, lpq_graph_num_layers(g));
    printf("time per batch: median %.3f ms, mean %.3f ms (%d threads, %d repeats, kernels %s, "
           "OpenBLAS %s)\n", median, total / (double)nt, threads, repeat, lpq_engine_isa(),
           openblas_get_corename());
    if (lab)
      printf("top-1: %.2f%% (%zu of %zu)\n", top1, correct, N);
    if (outp)
      printf("logits [%zu, %zu] written to %s\n", N, per_out, outp);
  }
  status = 0;
  goto done;
fail:
  fprintf(stderr, "lpq run: %s\n", err.msg);
done:
  free(in_buf), free(out_buf), free(times);
  for (size_t i = 0; copies && i < ncopies; i++)
    free(copies[i]);
  free(copies);
  lpq_array_free(&x), lpq_array_free(&lab), lpq_array_free(&logits), lpq_array_free(&y);
  lpq_exec_free(&ex);
  lpq_graph_free(&g);
  return status;
}
