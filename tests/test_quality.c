/* tests/test_quality.c: issue 13's first mechanisms. Per-channel LP sf (lp<n,es,rs,auto_ch>):
** its text round trip and errors, per-channel calibration against a brute force over every sf,
** the resolved config's w_sf. Bias correction: a one-node model whose input has a known mean
** shift, run through the engine's bias hook, loses its mean output error; the scorer's option. */
#include "common/common.h"
#include "onnx/onnx.pb-c.h"
#include "tests/onnx_build.h"
#include "worker/worker_internal.h"
#include "worker/worker.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static float frand(unsigned *s) {
  *s = *s * 1103515245u + 12345u;
  return (float)((*s >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static lpq_numfmt_t parse_ok(const char *text) {
  lpq_numfmt_t f;
  lpq_error_t err = {0};
  cr_assert_eq(lpq_numfmt_parse(text, &f, &err), 0, "'%s': %s", text, err.msg);
  return f;
}

/* ---- syntax ---- */

Test(quality, auto_ch_text_round_trips) {
  const char *names[][2] = {
      {"lp<4,1,2,auto_ch>", "lp<4,1,2,auto_ch>"},     {"LP<4,1,2,AUTO_CH>", "lp<4,1,2,auto_ch>"},
      {"lp<4,1,2,auto_ch+1>", "lp<4,1,2,auto_ch+1>"},
      {"lp<4, 1, 2, auto_ch-3>", "lp<4,1,2,auto_ch-3>"},
      {"lp<4,1,2,auto_ch+0>", "lp<4,1,2,auto_ch>"},   {"lp<5,0,3,auto+2>", "lp<5,0,3,auto+2>"},
      {"lp<5,0,3,auto-64>", "lp<5,0,3,auto-64>"},     {"lp<6,1,3,auto>", "lp<6,1,3,auto>"},
  };
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    lpq_numfmt_t f = parse_ok(names[i][0]);
    char buf[LPQ_NUMFMT_TEXT_MAX];
    cr_assert_str_eq(lpq_numfmt_str(&f, buf, sizeof buf), names[i][1]);
    lpq_numfmt_t g = parse_ok(buf);
    cr_assert(g.family == f.family && g.bits == f.bits && g.per_channel == f.per_channel &&
                  g.auto_scale == f.auto_scale && g.sf_offset == f.sf_offset,
              "%s", buf);
  }
  lpq_numfmt_t f = parse_ok("lp<4,1,2,auto_ch-1>");
  cr_assert(f.family == LPQ_FAM_LP && f.per_channel && f.auto_scale && !f.resolved);
  cr_assert_eq(f.sf_offset, -1);
  cr_assert_eq(f.bits, 4);
  cr_assert_eq(parse_ok("lp<4,1,2,auto>").per_channel, 0);
  /* calibrated as one tensor, a per-channel format still says it is per channel */
  float x[4] = {0.5f, -0.25f, 1.0f, 0.125f};
  cr_assert_eq(lpq_numfmt_calibrate(&f, x, 4, NULL), 0);
  char buf[LPQ_NUMFMT_TEXT_MAX];
  cr_assert_str_eq(lpq_numfmt_str(&f, buf, sizeof buf), "lp<4,1,2,auto_ch-1>");
}

Test(quality, bad_auto_syntax_says_what_is_wrong) {
  const char *bad[][2] = {
      {"lp<4,1,2,auto_cx>", "expected auto, auto_ch, auto+K or auto_ch+K"},
      {"lp<4,1,2,autoch>", "expected auto, auto_ch"},
      {"lp<4,1,2,auto_ch+>", "offset after 'auto_ch' must be an integer in -64..64"},
      {"lp<4,1,2,auto_ch+65>", "in -64..64"},
      {"lp<4,1,2,auto+x>", "offset after 'auto'"},
      {"lp<4,1,2,auto_ch+-1>", "offset after 'auto_ch'"},
      {"lp<4,1,2,auto_ch+1.5>", "expected ',' or '>'"},
      {"lp<4,auto_ch,2,0>", "parameter 2 cannot be 'auto_ch'"},
      {"int<4,auto_ch>", "parameter 2 cannot be 'auto_ch'"},
      {"posit<8,auto>", "parameter 2 cannot be 'auto'"},
      {"lp<4,5,2,auto_ch>", "es = 5"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    lpq_numfmt_t f;
    lpq_error_t err = {0};
    cr_assert_neq(lpq_numfmt_parse(bad[i][0], &f, &err), 0, "'%s' accepted", bad[i][0]);
    cr_assert(strstr(err.msg, bad[i][1]) != NULL, "'%s': '%s' lacks '%s'", bad[i][0], err.msg,
              bad[i][1]);
  }
}

/* ---- per-channel calibration against a brute force ---- */

/* The nearest LP value to x under lf, by scanning every code (ties to the even code). */
static double nearest_brute(const lp_format_t *lf, double x) {
  double best = 0.0;
  for (uint32_t c = 1; c <= lp_maxpos(lf); c++) {
    double v = copysign(lp_decode(lf, c), x);
    if (fabs(v - x) < fabs(best - x) || (fabs(v - x) == fabs(best - x) && c % 2 == 0))
      best = v;
  }
  return best;
}

static double sse_brute(const lp_format_t *lf, const float *x, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++) {
    double d = nearest_brute(lf, x[i]) - x[i];
    s += d * d;
  }
  return s;
}

Test(quality, per_channel_lp_matches_brute_force_per_channel) {
  enum { CH = 8, PER = 60 };
  float w[CH * PER];
  unsigned seed = 13;
  for (size_t c = 0; c < CH; c++) /* channels 2^-6 .. 2^1 apart in scale */
    for (size_t i = 0; i < PER; i++)
      w[c * PER + i] = ldexpf(frand(&seed), (int)c - 6);
  const char *fmts[] = {"lp<4,1,2,auto_ch>", "lp<4,0,2,auto_ch>", "lp<5,1,3,auto_ch>",
                        "lp<4,1,2,auto_ch+1>", "lp<3,0,1,auto_ch-2>"};
  for (size_t k = 0; k < sizeof fmts / sizeof fmts[0]; k++) {
    lpq_numfmt_t f = parse_ok(fmts[k]), fc[CH];
    lpq_error_t err = {0};
    cr_assert_eq(lpq_numfmt_calibrate_channels(&f, w, CH, PER, fc, &err), 0, "%s", err.msg);
    for (size_t c = 0; c < CH; c++) {
      const float *x = w + c * PER;
      cr_assert(fc[c].resolved && !fc[c].per_channel);
      /* brute force: the sf with the least squared error over every sf, then the offset */
      int best_sf = 0;
      double best = INFINITY;
      for (int sf = LP_SF_MIN; sf <= LP_SF_MAX; sf++) {
        lp_format_t lf = {f.p[0], f.p[1], f.p[2], sf};
        double e = sse_brute(&lf, x, PER);
        if (e < best)
          best = e, best_sf = sf;
      }
      lp_format_t got = lpq_numfmt_lp(&fc[c]);
      got.sf -= f.sf_offset;
      double e_got = sse_brute(&got, x, PER);
      cr_assert(e_got <= best * (1 + 1e-12), "%s channel %zu: sf %d gives %g, brute force sf %d "
                "gives %g", fmts[k], c, got.sf, e_got, best_sf, best);
      /* every element: the quantizer of the channel's format is the nearest value */
      lp_quantizer_t *q = lpq_numfmt_quantizer(&fc[c], &err);
      cr_assert_not_null(q, "%s", err.msg);
      float out[PER];
      cr_assert_eq(lp_quantize_f32(q, x, out, PER, &err), 0);
      lp_format_t lf = lpq_numfmt_lp(&fc[c]);
      for (size_t i = 0; i < PER; i++)
        cr_assert_eq(out[i], (float)nearest_brute(&lf, x[i]),
                     "%s channel %zu element %zu: x %.9g got %.9g want %.9g sf %d", fmts[k], c, i,
                     x[i], out[i], nearest_brute(&lf, x[i]), lf.sf);
      lp_quantizer_free(&q);
    }
  }
  /* the point of it: on channels of different scales, per channel beats per tensor */
  lpq_numfmt_t t = parse_ok("lp<4,1,2,auto>"), ch = parse_ok("lp<4,1,2,auto_ch>"), fc[CH];
  cr_assert_eq(lpq_numfmt_calibrate(&t, w, CH * PER, NULL), 0);
  cr_assert_eq(lpq_numfmt_calibrate_channels(&ch, w, CH, PER, fc, NULL), 0);
  lp_format_t lt = lpq_numfmt_lp(&t);
  double e_tensor = sse_brute(&lt, w, CH * PER), e_channel = 0;
  for (size_t c = 0; c < CH; c++) {
    lp_format_t lf = lpq_numfmt_lp(&fc[c]);
    e_channel += sse_brute(&lf, w + c * PER, PER);
  }
  cr_assert_lt(e_channel, e_tensor);
}

Test(quality, int_ch_takes_the_same_per_channel_path) {
  float w[2 * 3] = {1, -2, 0.5f, 0.1f, 0.3f, -0.2f};
  lpq_numfmt_t f = parse_ok("int4_ch"), fc[2];
  cr_assert_eq(lpq_numfmt_calibrate_channels(&f, w, 2, 3, fc, NULL), 0);
  /* max |w| / 7 as a float: the scale an export's DequantizeLinear carries */
  cr_assert_eq(fc[0].scale, (double)(float)(2.0 / 7.0));
  cr_assert_eq(fc[1].scale, (double)(float)((double)0.3f / 7.0));
}

/* ---- one-node models built here ---- */

/* x [B, C, S, S] -> Conv kxk, pads (k-1)/2 (W [M, C/groups, k, k], bias, groups) ->
** y [B, M, S, S], or x [B, C] -> Gemm (W [M, C], transB, bias) -> y [B, M]. Weights from the
** seed. */
typedef struct one_node_t {
  int conv;
  int64_t b, c, m, groups, k, size;
  float *w, *bias;
  const char *save; /* also write the model to this file */
} one_node_t;

static size_t plane(const one_node_t *o) { return o->conv ? (size_t)(o->size * o->size) : 1; }

static lpq_graph_t *one_node_graph(one_node_t *o, unsigned seed) {
  const int64_t cg = o->c / o->groups;
  const int64_t kk = o->conv ? o->k : 1, sz = o->conv ? o->size : 1;
  const size_t nw = (size_t)(o->m * cg * kk * kk);
  o->w = malloc(nw * sizeof *o->w);
  o->bias = malloc((size_t)o->m * sizeof *o->bias);
  for (size_t i = 0; i < nw; i++)
    o->w[i] = frand(&seed) * 0.5f;
  for (int64_t i = 0; i < o->m; i++)
    o->bias[i] = frand(&seed) * 0.1f;
  const int nd = o->conv ? 4 : 2;
  int64_t xd[4] = {o->b, o->c, sz, sz}, yd[4] = {o->b, o->m, sz, sz};
  int64_t wd[4] = {o->m, o->conv ? cg : o->c, kk, kk}, bd[1] = {o->m};
  Onnx__TensorShapeProto__Dimension d[2][4], *dp[2][4];
  Onnx__TensorShapeProto sh[2];
  Onnx__TypeProto__Tensor tt[2];
  Onnx__TypeProto tp[2];
  Onnx__ValueInfoProto vi[2], *ins[1], *outs[1];
  ins[0] = test_value_info("x", nd, xd, d[0], dp[0], &sh[0], &tt[0], &tp[0], &vi[0]);
  outs[0] = test_value_info("y", nd, yd, d[1], dp[1], &sh[1], &tt[1], &tp[1], &vi[1]);
  Onnx__TensorProto wt = ONNX__TENSOR_PROTO__INIT, bt = ONNX__TENSOR_PROTO__INIT, *inits[2];
  wt.name = "W", wt.n_dims = (size_t)nd, wt.dims = wd, wt.has_data_type = 1, wt.data_type = 1;
  wt.has_raw_data = 1, wt.raw_data.len = nw * 4, wt.raw_data.data = (uint8_t *)o->w;
  bt.name = "B", bt.n_dims = 1, bt.dims = bd, bt.has_data_type = 1, bt.data_type = 1;
  bt.has_raw_data = 1, bt.raw_data.len = (size_t)o->m * 4, bt.raw_data.data = (uint8_t *)o->bias;
  inits[0] = &wt, inits[1] = &bt;
  Onnx__AttributeProto a, pa;
  Onnx__AttributeProto *ap[2] = {&a, &pa};
  onnx__attribute_proto__init(&a);
  a.has_type = 1, a.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT, a.has_i = 1;
  a.name = o->conv ? "group" : "transB", a.i = o->conv ? o->groups : 1;
  int64_t pads[4] = {(kk - 1) / 2, (kk - 1) / 2, (kk - 1) / 2, (kk - 1) / 2};
  onnx__attribute_proto__init(&pa);
  pa.name = "pads", pa.has_type = 1, pa.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
  pa.n_ints = 4, pa.ints = pads;
  Onnx__NodeProto node = ONNX__NODE_PROTO__INIT, *nodes[1] = {&node};
  char *nin[3] = {"x", "W", "B"}, *nout[1] = {"y"};
  node.name = "layer", node.op_type = o->conv ? "Conv" : "Gemm", node.n_input = 3;
  node.input = nin, node.n_output = 1, node.output = nout, node.n_attribute = o->conv ? 2 : 1;
  node.attribute = ap;
  Onnx__GraphProto gp = ONNX__GRAPH_PROTO__INIT;
  gp.name = "one", gp.n_node = 1, gp.node = nodes, gp.n_initializer = 2, gp.initializer = inits;
  gp.n_input = 1, gp.input = ins, gp.n_output = 1, gp.output = outs;
  size_t len;
  uint8_t *buf = test_pack_model(&gp, &len);
  if (o->save) {
    FILE *f = fopen(o->save, "wb");
    cr_assert(f && fwrite(buf, 1, len, f) == len && fclose(f) == 0, "cannot write %s", o->save);
  }
  lpq_error_t err;
  lpq_graph_t *g = lpq_graph_load_buffer(buf, len, "one.onnx", 0, &err);
  free(buf);
  cr_assert_not_null(g, "%s", err.msg);
  cr_assert_eq(lpq_graph_num_layers(g), 1u);
  return g;
}

/* inputs with a known shift: every channel's mean is 1 + c/4, spread 0.3 */
static float *shifted_inputs(const one_node_t *o, unsigned seed) {
  const size_t hw = plane(o);
  float *x = malloc((size_t)(o->b * o->c) * hw * sizeof *x);
  for (int64_t i = 0; i < o->b; i++)
    for (int64_t c = 0; c < o->c; c++)
      for (size_t p = 0; p < hw; p++)
        x[(size_t)(i * o->c + c) * hw + p] = 1.0f + 0.25f * (float)c + 0.3f * frand(&seed);
  return x;
}

typedef struct bc_hooks_t {
  const float *wq, *shift;
} bc_hooks_t;

static const float *hook_wq(void *u, size_t l, const float *w, size_t n) {
  (void)l, (void)w, (void)n;
  return ((bc_hooks_t *)u)->wq;
}
static const float *hook_shift(void *u, size_t l, size_t channels) {
  (void)l, (void)channels;
  return ((bc_hooks_t *)u)->shift;
}

/* The layer's weights quantized to a coarse format, run with and without the correction. */
static void bias_correction_case(int conv, int64_t groups, int64_t k, int64_t size) {
  one_node_t o = {.conv = conv, .b = 64, .c = 8, .m = 8, .groups = groups, .k = k, .size = size};
  lpq_graph_t *g = one_node_graph(&o, 5);
  const lpq_layer_t *L = lpq_graph_layer(g, 0);
  float *x = shifted_inputs(&o, 9);
  const size_t hw = plane(&o), ny = (size_t)(o.b * o.m) * hw;
  float *y = malloc(ny * 4), *yq = malloc(ny * 4), *yc = malloc(ny * 4);
  float *wq = malloc(L->weight_count * 4), *shift = malloc((size_t)o.m * 4);
  lpq_numfmt_t f = parse_ok("lp<3,0,1,auto>");
  lpq_error_t err;
  cr_assert_eq(lpq_numfmt_calibrate(&f, L->weight, L->weight_count, &err), 0);
  lp_quantizer_t *q = lpq_numfmt_quantizer(&f, &err);
  cr_assert_not_null(q, "%s", err.msg);
  cr_assert_eq(lp_quantize_f32(q, L->weight, wq, L->weight_count, &err), 0);
  lp_quantizer_free(&q);
  size_t entries = 0;
  const size_t taps = conv ? (size_t)(k * k) : 1;
  float *mean = lpq__bias_input_means(L, x, (size_t)(o.b * o.c) * hw, &entries);
  cr_assert_not_null(mean);
  cr_assert_eq(entries, (size_t)o.c * taps);
  if (taps == 1)
    for (int64_t c = 0; c < o.c; c++) { /* the mean is the data's */
      double s = 0;
      for (int64_t i = 0; i < o.b; i++)
        for (size_t p = 0; p < hw; p++)
          s += x[(size_t)(i * o.c + c) * hw + p];
      cr_assert_float_eq(mean[c], s / (double)((size_t)o.b * hw), 1e-5);
    }
  lpq__bias_shift(L, wq, mean, shift);
  lpq_exec_t *ex = lpq_exec_new(g, &err);
  bc_hooks_t u = {wq, shift};
  lpq_hooks_t plain = {&u, hook_wq, NULL, NULL, NULL, NULL};
  lpq_hooks_t corrected = {&u, hook_wq, NULL, NULL, hook_shift, NULL};
  cr_assert_eq(lpq_exec_run(ex, x, y, NULL, &err), 0, "%s", err.msg);
  cr_assert_eq(lpq_exec_run(ex, x, yq, &plain, &err), 0, "%s", err.msg);
  cr_assert_eq(lpq_exec_run(ex, x, yc, &corrected, &err), 0, "%s", err.msg);
  double mse_q = 0, mse_c = 0, worst_q = 0;
  for (int64_t m = 0; m < o.m; m++) {
    double mq = 0, mc = 0;
    for (int64_t i = 0; i < o.b; i++)
      for (size_t p = 0; p < hw; p++) {
        size_t j = (size_t)(i * o.m + m) * hw + p;
        mq += yq[j] - y[j], mc += yc[j] - y[j];
        mse_q += (yq[j] - y[j]) * (yq[j] - y[j]), mse_c += (yc[j] - y[j]) * (yc[j] - y[j]);
      }
    mq /= (double)((size_t)o.b * hw), mc /= (double)((size_t)o.b * hw);
    worst_q = fmax(worst_q, fabs(mq));
    /* the correction removes the channel's mean error (to float rounding) */
    cr_assert_lt(fabs(mc), 1e-4, "channel %lld: mean error %g after correction (%g before)",
                 (long long)m, mc, mq);
  }
  cr_assert_gt(worst_q, 1e-2, "the case has no mean error to correct");
  cr_assert_lt(mse_c, mse_q, "MSE %g corrected vs %g plain", mse_c, mse_q);
  lpq_exec_free(&ex);
  lpq_graph_free(&g);
  free(x), free(y), free(yq), free(yc), free(wq), free(shift), free(mean), free(o.w), free(o.bias);
}

Test(quality, bias_correction_cancels_a_known_shift_gemm) { bias_correction_case(0, 1, 1, 1); }
Test(quality, bias_correction_cancels_a_known_shift_conv) { bias_correction_case(1, 1, 1, 1); }
Test(quality, bias_correction_cancels_a_known_shift_grouped_conv) {
  bias_correction_case(1, 2, 1, 1);
}
/* 3x3 with zero padding on a 4x4 map (as MobileNetV2's late layers): border taps see less */
Test(quality, bias_correction_cancels_a_known_shift_padded_conv) {
  bias_correction_case(1, 1, 3, 4);
}
Test(quality, bias_correction_cancels_a_known_shift_padded_depthwise) {
  bias_correction_case(1, 8, 3, 4);
}

/* The scorer's option: with the correction on, the quantized model is closer to the FP one on
** the same data (its output here is the layer's output); fp32 weights are left alone. */
Test(quality, scorer_bias_correction_lowers_the_loss) {
  one_node_t o = {.conv = 0, .b = 64, .c = 8, .m = 6, .groups = 1, .k = 1, .size = 1};
  lpq_graph_t *g = one_node_graph(&o, 5);
  float *x = shifted_inputs(&o, 9);
  lpq_error_t err;
  lpq_score_opts_t off = {.no_local = 1}, on = {.no_local = 1, .bias_correction = 1};
  lpq_scorer_t *s_off = lpq_scorer_new(g, x, NULL, &off, &err);
  cr_assert_not_null(s_off, "%s", err.msg);
  lpq_scorer_t *s_on = lpq_scorer_new(g, x, NULL, &on, &err);
  cr_assert_not_null(s_on, "%s", err.msg);
  lpq_numfmt_t w = parse_ok("lp<3,0,1,auto>"), a = parse_ok("fp32"), w32 = parse_ok("fp32");
  lpq_score_t r_off, r_on, r32_off, r32_on;
  cr_assert_eq(lpq_scorer_eval(s_off, &w, &a, &r_off, &err), 0, "%s", err.msg);
  cr_assert_eq(lpq_scorer_eval(s_on, &w, &a, &r_on, &err), 0, "%s", err.msg);
  cr_assert_lt(r_on.l_co, r_off.l_co, "L_CO %g with correction, %g without", r_on.l_co,
               r_off.l_co);
  cr_assert_eq(lpq_scorer_eval(s_off, &w32, &a, &r32_off, &err), 0, "%s", err.msg);
  cr_assert_eq(lpq_scorer_eval(s_on, &w32, &a, &r32_on, &err), 0, "%s", err.msg);
  cr_assert_eq(r32_on.l_co, r32_off.l_co);
  /* per-channel LP through the scorer too */
  lpq_numfmt_t wch = parse_ok("lp<3,0,1,auto_ch>");
  lpq_score_t r_ch;
  cr_assert_eq(lpq_scorer_eval(s_on, &wch, &a, &r_ch, &err), 0, "%s", err.msg);
  cr_assert_eq(r_ch.mean_w_bits, 3.0);
  lpq_scorer_free(&s_off);
  lpq_scorer_free(&s_on);
  lpq_graph_free(&g);
  free(x), free(o.w), free(o.bias);
}

/* ---- the resolved config ---- */

Test(quality, resolved_config_writes_w_sf_and_reads_back) {
  const char *names[2] = {"conv", "fc"};
  lpq_numfmt_t w[2] = {parse_ok("lp<4,1,2,auto_ch+1>"), parse_ok("lp<4,1,2,-3>")};
  lpq_numfmt_t a[2] = {parse_ok("lp<8,1,3,0>"), parse_ok("fp32")};
  int sf0[3] = {2, -1, 5};
  const int *sf[2] = {sf0, NULL};
  size_t nsf[2] = {3, 0};
  char *text = lpq_config_to_json_sf(2, names, w, a, sf, nsf);
  cr_assert_not_null(text);
  json_error_t jerr;
  json_t *root = json_loads(text, 0, &jerr);
  cr_assert_not_null(root, "%s", jerr.text);
  json_t *l0 = json_array_get(json_object_get(root, "layers"), 0);
  json_t *l1 = json_array_get(json_object_get(root, "layers"), 1);
  cr_assert_str_eq(json_string_value(json_object_get(l0, "w")), "lp<4,1,2,auto_ch+1>");
  json_t *ws = json_object_get(l0, "w_sf");
  cr_assert_eq(json_array_size(ws), 3u);
  cr_assert_eq(json_integer_value(json_array_get(ws, 2)), 5);
  cr_assert_null(json_object_get(l1, "w_sf"));
  json_decref(root);
  lpq_error_t err;
  lpq_config_t *c = lpq_config_parse(text, strlen(text), "resolved", &err);
  cr_assert_not_null(c, "%s", err.msg);
  cr_assert(c->layers[0].w.per_channel && c->layers[0].w.sf_offset == 1);
  lpq_config_free(&c);
  free(text);
  /* w_sf is checked for form and only allowed next to a per-channel LP weight */
  const char *bad[][2] = {
      {"{\"version\":1,\"layers\":[{\"index\":0,\"w\":\"lp<4,1,2,-3>\",\"w_sf\":[1]}]}",
       "only a per-channel LP weight format"},
      {"{\"version\":1,\"layers\":[{\"index\":0,\"w\":\"lp<4,1,2,auto_ch>\",\"w_sf\":[1,99]}]}",
       "layers[0].w_sf[1]: expected an integer in -64..64"},
      {"{\"version\":1,\"layers\":[{\"index\":0,\"w\":\"lp<4,1,2,auto_ch>\",\"w_sf\":3}]}",
       "expected an array of integers"},
      {"{\"version\":1,\"default\":{\"w\":\"lp<4,1,2,auto_chh>\"}}", "default.w: format"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    lpq_error_t e = {0};
    lpq_config_t *b = lpq_config_parse(bad[i][0], strlen(bad[i][0]), "c.json", &e);
    cr_assert_null(b, "%s accepted", bad[i][0]);
    cr_assert(strstr(e.msg, bad[i][1]) != NULL, "'%s' lacks '%s'", e.msg, bad[i][1]);
  }
}

/* The export rounds each output channel with its own sf, as the scorer does: the exported
** model's weights equal the per-channel quantization of the originals, element by element; the
** packed .lpw carries the same sf's (version 2, per-channel flag). */
static void export_case(int conv) {
  char path[] = "/tmp/lpq_export_XXXXXX";
  int fd = mkstemp(path);
  cr_assert(fd >= 0);
  close(fd);
  one_node_t o = {.conv = conv, .b = 2, .c = 8, .m = 6, .groups = 1, .k = 3, .size = 4,
                  .save = path};
  lpq_graph_t *g = one_node_graph(&o, 5);
  const lpq_layer_t *L = lpq_graph_layer(g, 0);
  lpq_numfmt_t f = parse_ok("lp<4,0,2,auto_ch+1>"), fc[6];
  size_t per = L->weight_count / 6;
  cr_assert_eq(lpq_numfmt_calibrate_channels(&f, o.w, 6, per, fc, NULL), 0);
  const char *names[1] = {L->name};
  void *bytes = NULL;
  size_t len = 0;
  lpq_error_t err = {0};
  cr_assert_eq(lpq_onnx_export_rounded(path, 1, names, &f, &bytes, &len, &err), 0, "%s", err.msg);
  lpq_graph_t *e = lpq_graph_load_buffer(bytes, len, "exported", 0, &err);
  cr_assert_not_null(e, "%s", err.msg);
  const float *we = lpq_graph_layer(e, 0)->weight;
  for (size_t c = 0; c < 6; c++) {
    lp_format_t lf = lpq_numfmt_lp(&fc[c]);
    lp_quantizer_t *q = lp_quantizer_new(&lf, NULL);
    float want[128];
    cr_assert(per <= 128);
    lp_quantize_f32(q, o.w + c * per, want, per, NULL);
    lp_quantizer_free(&q);
    for (size_t i = 0; i < per; i++)
      cr_assert_eq(we[c * per + i], want[i], "channel %zu element %zu", c, i);
  }
  free(bytes);
  /* .lpw: header, the layer's per-channel flag and sf's */
  cr_assert_eq(lpq_pack_weights(g, &f, &bytes, &len, &err), 0, "%s", err.msg);
  const uint8_t *p = bytes;
  uint32_t version, nl, name_len, flag;
  memcpy(&version, p + 4, 4);
  memcpy(&nl, p + 8, 4);
  memcpy(&name_len, p + 12, 4);
  const uint8_t *q = p + 16 + name_len + 16;
  memcpy(&flag, q, 4);
  cr_assert(memcmp(p, "LPQW", 4) == 0 && version == 2 && nl == 1 && flag == 1);
  for (size_t c = 0; c < 6; c++) {
    int32_t sf;
    memcpy(&sf, q + 4 + 4 * c, 4);
    cr_assert_eq(sf, fc[c].p[3], "channel %zu sf %d, calibrated %d", c, sf, fc[c].p[3]);
  }
  free(bytes);
  /* a non-LP format has no LP codes to pack, and says so */
  lpq_numfmt_t i4 = parse_ok("int4_ch");
  cr_assert_eq(lpq_pack_weights(g, &i4, &bytes, &len, &err), LPQ_EUNSUP);
  cr_assert(strstr(err.msg, "layer") != NULL, "%s", err.msg);
  lpq_graph_free(&e);
  lpq_graph_free(&g);
  free(o.w);
  free(o.bias);
  unlink(path);
}

Test(quality, export_rounds_per_channel_conv) { export_case(1); }
Test(quality, export_rounds_per_channel_gemm) { export_case(0); }
