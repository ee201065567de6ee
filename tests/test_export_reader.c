/* tests/test_export_reader.c: docs/FORMATS.md is enough to read an export without lpq (issue
** 15): tools/read_export.py (Python and NumPy only, its own protobuf reader) decodes the weights
** of `lpq export`'s models, and they equal lpq's own quantized weights, per channel, for an LP
** (codes, table, per-channel scale) and an INT (DequantizeLinear int4, axis 0) config. */
#include "common/common.h"
#include "engine/engine.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MODEL "models/resnet18.onnx"

static void check_config(const char *config, const char *wfmt) {
  const char *build = getenv("LPQ_BUILD") ? getenv("LPQ_BUILD") : "build";
  char dir[] = "/tmp/lpq-reader-XXXXXX", cmd[2048];
  cr_assert_not_null(mkdtemp(dir));
  snprintf(cmd, sizeof cmd, "%s/bin/lpq export --model " MODEL " --config %s --calib-data "
           "models/fashion_calib_256.npy --calib 16 --out %s/q.onnx >/dev/null && "
           "/usr/bin/python3 tools/read_export.py %s/q.onnx --out %s/w --json >/dev/null",
           build, config, dir, dir, dir);
  cr_assert_eq(system(cmd), 0, "%s", cmd);
  char path[256];
  snprintf(path, sizeof path, "%s/w/index.json", dir);
  json_error_t jerr;
  json_t *index = json_load_file(path, 0, &jerr);
  cr_assert_not_null(index, "%s", jerr.text);
  lpq_error_t err;
  lpq_graph_t *g = lpq_graph_load(MODEL, 1, &err);
  cr_assert_not_null(g, "%s", err.msg);
  lpq_numfmt_t f;
  cr_assert_eq(lpq_numfmt_parse(wfmt, &f, &err), 0, "%s", err.msg);
  size_t checked = 0;
  for (size_t l = 0; l < lpq_graph_num_layers(g); l++) {
    const lpq_layer_t *L = lpq_graph_layer(g, l);
    json_t *e = NULL, *x;
    size_t i;
    json_array_foreach(index, i, x) if (!strcmp(json_string_value(json_object_get(x, "layer")),
                                               L->name)) e = x;
    cr_assert_not_null(e, "layer %s is not in the export's encodings", L->name);
    snprintf(path, sizeof path, "%s/w/%s", dir, json_string_value(json_object_get(e, "file")));
    lpq_array_t *got = NULL;
    cr_assert_eq(lpq_load_npy(path, &got, &err), 0, "%s", err.msg);
    cr_assert_eq(got->count, L->weight_count, "%s", L->name);
    if (got->ndim == 2 && L->weight_shape[0] != got->shape[0])
      continue; /* a [K, N] MatMul weight: another layout than lpq's [N, K] (ResNet has none) */
    const size_t ch = (size_t)L->weight_shape[0], per = L->weight_count / ch;
    lpq_numfmt_t *fc = calloc(ch, sizeof *fc);
    float *want = malloc(L->weight_count * sizeof *want);
    cr_assert_eq(lpq_numfmt_calibrate_channels(&f, L->weight, ch, per, fc, &err), 0, "%s", err.msg);
    for (size_t c = 0; c < ch; c++) {
      lp_quantizer_t *q = lpq_numfmt_quantizer(&fc[c], &err);
      cr_assert_not_null(q, "%s", err.msg);
      cr_assert_eq(lp_quantize_f32(q, L->weight + c * per, want + c * per, per, &err), 0);
      lp_quantizer_free(&q);
    }
    const float *gv = got->data;
    for (size_t k = 0; k < L->weight_count; k++)
      cr_assert(fabsf(gv[k] - want[k]) <= 1e-6f * fabsf(want[k]) + 1e-30f,
                "%s %s[%zu]: read %.9g, lpq %.9g", wfmt, L->name, k, gv[k], want[k]);
    checked++;
    free(fc);
    free(want);
    lpq_array_free(&got);
  }
  cr_assert_gt(checked, 0);
  lpq_graph_free(&g);
  json_decref(index);
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  cr_assert_eq(system(cmd), 0);
}

TestSuite(export_reader, .timeout = 300); /* suite-wide: see tests/test_service_pick.c */

Test(export_reader, lp_codes_tables_and_channel_scales) {
  check_config("bench/configs/lp4_ch.json", "lp<4,1,3,auto_ch>");
}

Test(export_reader, int4_dequantize_per_channel) {
  check_config("bench/configs/int4_ch.json", "int4_ch");
}
