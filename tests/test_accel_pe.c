/* tests/test_accel_pe.c: the bit-level LPA PE model against the float fake-quantized layer
** (weights and inputs quantized with lp_quantizer_t, the layer computed in float), on random
** gemm and conv layers and the bundled ResNet-18's, with weights per tensor and per output
** channel (one sf each), within the bound docs/accel_sim.md "The bit-level PE model" derives:
**   |pe - ref| <= (eps_lut + eps_idx + eps_lut*eps_idx + 3u + gamma_K) * S + P * 2^lsb
** with S = sum |a w| over the dot product, P its non-zero products, u = 2^-24 and
** gamma_K = K u / (1 - K u) (float summation of the reference). */
#include "accel_sim/accel_sim.h"

#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- a small deterministic PRNG (splitmix64) ---- */
static uint64_t rng_state;
static uint64_t rng_next(void) {
  uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
static double rng_uniform(void) { return (double)(rng_next() >> 11) * 0x1.0p-53; }
static size_t rng_int(size_t lo, size_t hi) { return lo + (size_t)(rng_next() % (hi - lo + 1)); }
static double rng_normal(void) {
  double u = rng_uniform(), v = rng_uniform();
  return sqrt(-2.0 * log(u + 1e-300)) * cos(2 * M_PI * v);
}

static int asan(void) { return getenv("LPQ_ASAN") != NULL; }

/* Largest fraction width F of any code of f. */
static int max_frac_bits(const lp_format_t *f) {
  int best = 0;
  for (uint32_t c = 1; c <= lp_maxpos(f); c++) {
    lp_fields_t fl;
    lp_fields(f, c, &fl);
    if (fl.frac_bits > best)
      best = fl.frac_bits;
  }
  return best;
}

/* Relative error of one product's log-to-linear conversion (docs/accel_sim.md derivation). */
static double product_eps(const accel_pe_config_t *cfg, const lp_format_t *fa,
                          const lp_format_t *fw) {
  const double eps_lut = ldexp(1.0, -(cfg->lut_frac_bits + 1));
  int frac = max_frac_bits(fa) > max_frac_bits(fw) ? max_frac_bits(fa) : max_frac_bits(fw);
  const double eps_idx = frac <= cfg->lut_index_bits ? 0.0 : exp2(ldexp(1.0, -(cfg->lut_index_bits + 1))) - 1;
  return eps_lut + eps_idx + eps_lut * eps_idx;
}

/* Fake-quantized floats and the codes of the same values. */
static void quantize(const lp_format_t *f, const float *x, size_t count, float *fq,
                     uint16_t *codes) {
  lpq_error_t err;
  lp_quantizer_t *q = lp_quantizer_new(f, &err);
  cr_assert_not_null(q, "%s", err.msg);
  cr_assert_eq(lp_quantize_f32(q, x, fq, count, &err), 0, "%s", err.msg);
  cr_assert_eq(lp_quantize_codes_u16(q, x, codes, count, &err), 0, "%s", err.msg);
  float *back = malloc(count * sizeof *back);
  cr_assert_not_null(back);
  lp_dequantize_u16(q, codes, back, count);
  for (size_t i = 0; i < count; i++)
    cr_assert_eq(back[i], fq[i], "codes and fake quantization disagree at %zu", i);
  free(back);
  lp_quantizer_free(&q);
}

static float *random_tensor(size_t count, double scale) {
  float *x = malloc((count ? count : 1) * sizeof *x);
  cr_assert_not_null(x);
  for (size_t i = 0; i < count; i++)
    x[i] = (float)(scale * rng_normal());
  return x;
}

typedef struct pair_t {
  lp_format_t fa, fw;
  double act_scale, weight_scale;
} pair_t;

static const pair_t pairs[] = {
    {{8, 1, 5, 0}, {8, 2, 3, 4}, 1.0, 0.05},
    {{8, 0, 7, -1}, {8, 1, 4, 5}, 2.0, 0.02},
    {{6, 1, 3, 1}, {5, 1, 2, 3}, 0.5, 0.1},
    {{4, 0, 3, 0}, {4, 1, 2, 2}, 1.0, 0.1},
    {{3, 0, 2, 0}, {2, 0, 1, 3}, 1.0, 0.1},
    {{12, 2, 5, 0}, {16, 1, 6, 4}, 1.0, 0.05}, /* fractions wider than the LUT index */
};
#define NPAIRS (sizeof pairs / sizeof pairs[0])

/* Checks one output against its reference; returns |error| / bound. */
static double check_one(double pe, double ref, double sum_abs, size_t nnz, double eps, int lsb,
                        size_t k, const char *what) {
  const double u = ldexp(1.0, -24), gamma = (double)k * u / (1 - (double)k * u);
  const double bound = (eps + 3 * u + gamma) * sum_abs + (double)nnz * ldexp(1.0, lsb);
  const double e = fabs(pe - ref);
  cr_assert(e <= bound * (1 + 1e-9) + DBL_MIN, "%s: pe %.9g ref %.9g error %.3g > bound %.3g",
            what, pe, ref, e, bound);
  return bound > 0 ? e / bound : 0;
}

Test(accel_pe, gemm_matches_float_fake_quantized_within_bound) {
  rng_state = 1;
  lpq_error_t err;
  const accel_pe_config_t cfg = accel_pe_default_config();
  accel_pe_t *pe = accel_pe_new(&cfg, &err);
  cr_assert_not_null(pe, "%s", err.msg);
  const int rounds = asan() ? 3 : 12;
  double worst = 0;
  for (size_t pi = 0; pi < NPAIRS; pi++)
    for (int r = 0; r < rounds; r++) {
      const pair_t *p = &pairs[pi];
      size_t m = rng_int(1, 8), n = rng_int(1, 16), k = rng_int(1, 300);
      float *a = random_tensor(m * k, p->act_scale), *w = random_tensor(k * n, p->weight_scale);
      float *aq = malloc(m * k * sizeof *aq), *wq = malloc(k * n * sizeof *wq);
      uint16_t *ac = malloc(m * k * sizeof *ac), *wc = malloc(k * n * sizeof *wc);
      double *out = malloc(m * n * sizeof *out);
      cr_assert(aq && wq && ac && wc && out);
      quantize(&p->fa, a, m * k, aq, ac);
      quantize(&p->fw, w, k * n, wq, wc);
      /* Even rounds: the lsb that can never saturate (maxpos x maxpos); odd rounds: the lsb
      ** from the data's largest product, where the LUT's error dominates the bound. */
      double max_a = 0, max_w = 0;
      for (size_t i = 0; i < m * k; i++)
        max_a = fmax(max_a, fabs(aq[i]));
      for (size_t i = 0; i < k * n; i++)
        max_w = fmax(max_w, fabs(wq[i]));
      const int lsb = r % 2 == 0 ? accel_pe_acc_lsb(pe, &p->fw, &p->fa, k)
                                 : accel_pe_acc_lsb_for_max(pe, max_a * max_w * 1.01, k);
      accel_pe_stats_t st = {0, 0, 0};
      cr_assert_eq(accel_pe_gemm(pe, &p->fa, ac, &p->fw, wc, m, n, k, lsb, out, &st, &err), 0,
                   "%s", err.msg);
      cr_assert_eq(st.saturated, 0, "the chosen lsb leaves headroom");
      const double eps = product_eps(&cfg, &p->fa, &p->fw);
      for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
          float ref = 0; /* the float layer, as a framework computes it */
          double sum_abs = 0;
          size_t nnz = 0;
          for (size_t q = 0; q < k; q++) {
            ref += aq[i * k + q] * wq[q * n + j];
            sum_abs += fabs((double)aq[i * k + q] * (double)wq[q * n + j]);
            nnz += aq[i * k + q] != 0 && wq[q * n + j] != 0;
          }
          double ratio = check_one(out[i * n + j], ref, sum_abs, nnz, eps, lsb, k, "gemm");
          worst = ratio > worst ? ratio : worst;
        }
      free(a), free(w), free(aq), free(wq), free(ac), free(wc), free(out);
    }
  cr_log_info("gemm: worst error / bound = %.3f", worst);
  accel_pe_free(&pe);
  cr_assert_null(pe);
}

/* The conv reference, written directly (no im2col), in float. */
static void conv_ref(const accel_layer_t *l, const float *x, const float *w, float *y,
                     double *sum_abs, size_t *nnz) {
  const size_t cin_g = l->in_channels / l->groups, cout_g = l->out_channels / l->groups;
  for (size_t b = 0; b < l->batch; b++)
    for (size_t co = 0; co < l->out_channels; co++)
      for (size_t oy = 0; oy < l->out_h; oy++)
        for (size_t ox = 0; ox < l->out_w; ox++) {
          float acc = 0;
          double s = 0;
          size_t z = 0;
          const size_t g = co / cout_g;
          for (size_t ci = 0; ci < cin_g; ci++)
            for (size_t ky = 0; ky < l->kernel_h; ky++)
              for (size_t kx = 0; kx < l->kernel_w; kx++) {
                long iy = (long)(oy * l->stride_h + ky * l->dilation_h) - (long)l->pad_h;
                long ix = (long)(ox * l->stride_w + kx * l->dilation_w) - (long)l->pad_w;
                if (iy < 0 || ix < 0 || iy >= (long)l->in_h || ix >= (long)l->in_w)
                  continue;
                float xv = x[((b * l->in_channels + g * cin_g + ci) * l->in_h + (size_t)iy) *
                                 l->in_w + (size_t)ix];
                float wv = w[((co * cin_g + ci) * l->kernel_h + ky) * l->kernel_w + kx];
                acc += xv * wv;
                s += fabs((double)xv * (double)wv);
                z += xv != 0 && wv != 0;
              }
          size_t o = ((b * l->out_channels + co) * l->out_h + oy) * l->out_w + ox;
          y[o] = acc;
          sum_abs[o] = s;
          nnz[o] = z;
        }
}

Test(accel_pe, conv_matches_float_fake_quantized_within_bound) {
  rng_state = 2;
  lpq_error_t err;
  const accel_pe_config_t cfg = accel_pe_default_config();
  accel_pe_t *pe = accel_pe_new(&cfg, &err);
  cr_assert_not_null(pe, "%s", err.msg);
  const int rounds = asan() ? 2 : 8;
  for (size_t pi = 0; pi < NPAIRS; pi++)
    for (int r = 0; r < rounds; r++) {
      const pair_t *p = &pairs[pi];
      accel_layer_t l = {.name = "random_conv", .kind = ACCEL_CONV};
      l.batch = rng_int(1, 2);
      l.groups = rng_int(1, 2);
      l.in_channels = l.groups * rng_int(1, 4);
      l.out_channels = l.groups * rng_int(1, 4);
      l.kernel_h = rng_int(1, 3);
      l.kernel_w = rng_int(1, 3);
      l.stride_h = rng_int(1, 2);
      l.stride_w = rng_int(1, 2);
      l.pad_h = rng_int(0, 1);
      l.pad_w = rng_int(0, 1);
      l.dilation_h = rng_int(1, 2);
      l.dilation_w = 1;
      l.in_h = rng_int(5, 9);
      l.in_w = rng_int(5, 9);
      l.out_h = (l.in_h + 2 * l.pad_h - l.dilation_h * (l.kernel_h - 1) - 1) / l.stride_h + 1;
      l.out_w = (l.in_w + 2 * l.pad_w - l.dilation_w * (l.kernel_w - 1) - 1) / l.stride_w + 1;
      cr_assert_eq(accel_layer_validate(&l, &err), 0, "%s", err.msg);
      const size_t nx = l.batch * l.in_channels * l.in_h * l.in_w;
      const size_t cin_g = l.in_channels / l.groups, k = cin_g * l.kernel_h * l.kernel_w;
      const size_t nw = l.out_channels * k, ny = l.batch * l.out_channels * l.out_h * l.out_w;
      float *x = random_tensor(nx, p->act_scale), *w = random_tensor(nw, p->weight_scale);
      float *xq = malloc(nx * sizeof *xq), *wq = malloc(nw * sizeof *wq);
      float *yref = malloc(ny * sizeof *yref);
      uint16_t *xc = malloc(nx * sizeof *xc), *wc = malloc(nw * sizeof *wc);
      double *y = malloc(ny * sizeof *y), *sum_abs = malloc(ny * sizeof *sum_abs);
      size_t *nnz = malloc(ny * sizeof *nnz);
      cr_assert(xq && wq && yref && xc && wc && y && sum_abs && nnz);
      quantize(&p->fa, x, nx, xq, xc);
      quantize(&p->fw, w, nw, wq, wc);
      accel_pe_stats_t st = {0, 0, 0};
      cr_assert_eq(accel_pe_conv(pe, &l, &p->fa, xc, &p->fw, wc, y, &st, &err), 0, "%s",
                   err.msg);
      cr_assert_eq(st.saturated, 0);
      conv_ref(&l, xq, wq, yref, sum_abs, nnz);
      const int lsb = accel_pe_acc_lsb(pe, &p->fw, &p->fa, k);
      const double eps = product_eps(&cfg, &p->fa, &p->fw);
      for (size_t o = 0; o < ny; o++)
        check_one(y[o], yref[o], sum_abs[o], nnz[o], eps, lsb, k, "conv");
      free(x), free(w), free(xq), free(wq), free(yref), free(xc), free(wc), free(y);
      free(sum_abs), free(nnz);
    }
  accel_pe_free(&pe);
}

/* Max |pe - exact| / S over a fixed gemm for one LUT width. */
static double gemm_error(int lut_frac_bits) {
  rng_state = 3;
  const lp_format_t fa = {8, 1, 5, 0}, fw = {8, 2, 3, 4};
  const size_t m = 4, n = 8, k = 128;
  float *a = random_tensor(m * k, 1.0), *w = random_tensor(k * n, 0.05);
  float *aq = malloc(m * k * sizeof *aq), *wq = malloc(k * n * sizeof *wq);
  uint16_t *ac = malloc(m * k * sizeof *ac), *wc = malloc(k * n * sizeof *wc);
  double *out = malloc(m * n * sizeof *out);
  cr_assert(aq && wq && ac && wc && out);
  quantize(&fa, a, m * k, aq, ac);
  quantize(&fw, w, k * n, wq, wc);
  lpq_error_t err;
  accel_pe_config_t cfg = accel_pe_default_config();
  cfg.lut_frac_bits = lut_frac_bits;
  accel_pe_t *pe = accel_pe_new(&cfg, &err);
  cr_assert_not_null(pe, "%s", err.msg);
  /* The lsb from the data's largest product, so truncation stays far below the LUT's error. */
  double max_a = 0, max_w = 0;
  for (size_t i = 0; i < m * k; i++)
    max_a = fmax(max_a, fabs(aq[i]));
  for (size_t i = 0; i < k * n; i++)
    max_w = fmax(max_w, fabs(wq[i]));
  int lsb = accel_pe_acc_lsb_for_max(pe, max_a * max_w * 1.01, k);
  accel_pe_stats_t st = {0, 0, 0};
  cr_assert_eq(accel_pe_gemm(pe, &fa, ac, &fw, wc, m, n, k, lsb, out, &st, &err), 0);
  cr_assert_eq(st.saturated, 0);
  double worst = 0;
  for (size_t i = 0; i < m; i++)
    for (size_t j = 0; j < n; j++) {
      double exact = 0, s = 0;
      for (size_t q = 0; q < k; q++) {
        exact += (double)aq[i * k + q] * (double)wq[q * n + j];
        s += fabs((double)aq[i * k + q] * (double)wq[q * n + j]);
      }
      double e = fabs(out[i * n + j] - exact) / s;
      worst = e > worst ? e : worst;
    }
  accel_pe_free(&pe);
  free(a), free(w), free(aq), free(wq), free(ac), free(wc), free(out);
  return worst;
}

Test(accel_pe, a_wider_lut_is_more_accurate) {
  double e4 = gemm_error(4), e12 = gemm_error(12), e20 = gemm_error(20);
  cr_log_info("max |error| / sum|a w|: LUT 4 bits %.3g, 12 bits %.3g, 20 bits %.3g", e4, e12,
              e20);
  cr_expect(e12 < e4, "12-bit LUT %.3g not better than 4-bit %.3g", e12, e4);
  cr_expect(e20 < e12, "20-bit LUT %.3g not better than 12-bit %.3g", e20, e12);
  /* With exact LUT indices (F <= 8) the bound is the LUT's 2^-(Q+1) plus the truncation of at
  ** most 128 products of 2^lsb each, which the data-based lsb keeps below 2^-20 of S. */
  cr_expect(e4 <= ldexp(1.0, -5) + ldexp(1.0, -20), "4-bit LUT: %.3g above 2^-5", e4);
  cr_expect(e12 <= ldexp(1.0, -13) + ldexp(1.0, -20), "12-bit LUT: %.3g above 2^-13", e12);
}

Test(accel_pe, saturation_and_nar_are_reported) {
  lpq_error_t err;
  accel_pe_config_t cfg = accel_pe_default_config();
  cfg.acc_bits = 8;
  accel_pe_t *pe = accel_pe_new(&cfg, &err);
  cr_assert_not_null(pe, "%s", err.msg);
  const lp_format_t f = {8, 1, 7, 0};
  uint16_t a[4] = {0x7f, 0x7f, 0x7f, 0x7f}, w[4] = {0x7f, 0x7f, 0x7f, 0x7f}; /* maxpos */
  double out;
  accel_pe_stats_t st = {0, 0, 0};
  /* An lsb far too fine for 8 bits: the sum saturates at the top of the range. */
  cr_assert_eq(accel_pe_gemm(pe, &f, a, &f, w, 1, 1, 4, -4, &out, &st, &err), 0, "%s", err.msg);
  cr_expect_gt(st.saturated, 0);
  cr_expect_eq(out, ldexp(127.0, -4));
  a[2] = 0x80; /* NaR */
  cr_assert_eq(accel_pe_gemm(pe, &f, a, &f, w, 1, 1, 4, -4, &out, &st, &err), LPQ_EINVAL);
  cr_expect(strstr(err.msg, "NaR") && strstr(err.msg, "activation code 2"), "%s", err.msg);
  accel_pe_free(&pe);
  cfg.lut_index_bits = 0;
  cr_assert_null(accel_pe_new(&cfg, &err));
  cr_expect(strstr(err.msg, "lut_index_bits") != NULL, "%s", err.msg);
}

/* ---- the bundled models' layers ---- */

typedef struct capture_t {
  size_t want;
  float *x;
  size_t count;
} capture_t;

static int capture_input(void *user, size_t layer, float *x, size_t count) {
  capture_t *c = user;
  if (layer == c->want && !c->x) {
    c->x = malloc(count * sizeof *c->x);
    cr_assert_not_null(c->x);
    memcpy(c->x, x, count * sizeof *x);
    c->count = count;
  }
  return 0;
}

/* Real convolutions of the bundled ResNet-18 (weights as trained, BN folded; input activations
** from an FP pass over a real test image) through the PE model, against the float
** fake-quantized layer, within the same bound: weights per tensor (lp<6,1,3,auto>) and per
** output channel (lp<6,1,3,auto_ch>, each channel's sf calibrated on its own weights). */
Test(accel_pe, bundled_resnet18_layers_match_float_fake_quantized_within_bound) {
  lpq_error_t err;
  lpq_graph_t *g = lpq_graph_load("models/resnet18.onnx", 1, &err);
  cr_assert_not_null(g, "%s", err.msg);
  lpq_array_t *img = NULL;
  cr_assert_eq(lpq_load_npy("models/fashion_test_256.npy", &img, &err), 0, "%s", err.msg);
  accel_network_t *net = accel_network_from_graph(g, "resnet18", &err);
  cr_assert_not_null(net, "%s", err.msg);
  const accel_pe_config_t cfg = accel_pe_default_config();
  accel_pe_t *pe = accel_pe_new(&cfg, &err);
  const size_t layers[] = {0, 1, 6, 7};
  double worst[2] = {0, 0};
  for (size_t li = 0; li < sizeof layers / sizeof layers[0]; li++) {
    const lpq_layer_t *L = lpq_graph_layer(g, layers[li]);
    accel_layer_t l = net->layers[layers[li]];
    cr_assert_eq(l.kind, ACCEL_CONV, "layer %zu", layers[li]);
    capture_t cap = {layers[li], NULL, 0};
    lpq_hooks_t h = {&cap, NULL, capture_input, NULL, NULL, NULL};
    lpq_exec_t *ex = lpq_exec_new(g, &err);
    float logits[10];
    cr_assert_eq(lpq_exec_run(ex, img->data, logits, &h, &err), 0, "%s", err.msg);
    lpq_exec_free(&ex);
    const size_t nx = cap.count, nwt = L->weight_count, co_n = l.out_channels;
    const size_t k = l.in_channels / l.groups * l.kernel_h * l.kernel_w;
    const size_t plane = l.out_h * l.out_w, ny = l.batch * co_n * plane;
    cr_assert_eq(nwt, co_n * k);
    for (int per_channel = 0; per_channel < 2; per_channel++) {
      /* formats at the layer's statistics */
      lpq_numfmt_t nw, na, *ch = calloc(co_n, sizeof *ch);
      int *sf = malloc(co_n * sizeof *sf);
      cr_assert(ch && sf);
      lpq_numfmt_parse(per_channel ? "lp<6,1,3,auto_ch>" : "lp<6,1,3,auto>", &nw, NULL);
      lpq_numfmt_parse("lp<8,1,3,auto>", &na, NULL);
      cr_assert_eq(lpq_numfmt_calibrate_channels(&nw, L->weight, co_n, k, ch, &err), 0, "%s",
                   err.msg);
      cr_assert_eq(lpq_numfmt_calibrate(&na, cap.x, cap.count, &err), 0);
      lp_format_t fa = lpq_numfmt_lp(&na), fw = lpq_numfmt_lp(&ch[0]);
      size_t distinct = 0;
      for (size_t c = 0; c < co_n; c++) {
        sf[c] = lpq_numfmt_lp(&ch[c]).sf;
        distinct += sf[c] != sf[0];
      }
      cr_assert(per_channel ? distinct > 0 : distinct == 0, "%s: %zu channels' sf differ",
                L->name, distinct);
      float *xq = malloc(nx * sizeof *xq), *wq = malloc(nwt * sizeof *wq);
      float *yref = malloc(ny * sizeof *yref);
      uint16_t *xc = malloc(nx * sizeof *xc), *wc = malloc(nwt * sizeof *wc);
      double *y = malloc(ny * sizeof *y), *sum_abs = malloc(ny * sizeof *sum_abs);
      size_t *nnz = malloc(ny * sizeof *nnz);
      cr_assert(xq && wq && yref && xc && wc && y && sum_abs && nnz);
      quantize(&fa, cap.x, nx, xq, xc);
      for (size_t c = 0; c < co_n; c++) { /* OIHW: channel c's weights are contiguous */
        lp_format_t fc = lpq_numfmt_lp(&ch[c]);
        quantize(&fc, L->weight + c * k, k, wq + c * k, wc + c * k);
      }
      accel_pe_stats_t st = {0, 0, 0};
      if (per_channel)
        cr_assert_eq(accel_pe_conv_channels(pe, &l, &fa, xc, &fw, wc, sf, y, &st, &err), 0,
                     "%s", err.msg);
      else
        cr_assert_eq(accel_pe_conv(pe, &l, &fa, xc, &fw, wc, y, &st, &err), 0, "%s", err.msg);
      cr_assert_eq(st.saturated, 0, "layer %s saturated", L->name);
      conv_ref(&l, xq, wq, yref, sum_abs, nnz);
      lp_format_t fw0 = fw;
      fw0.sf = 0; /* the per-channel accumulator's lsb is at sf 0, each column's minus its sf */
      const int lsb = accel_pe_acc_lsb(pe, per_channel ? &fw0 : &fw, &fa, k);
      const double eps = product_eps(&cfg, &fa, &fw);
      for (size_t o = 0; o < ny; o++) {
        const int col_lsb = per_channel ? lsb - sf[(o / plane) % co_n] : lsb;
        double r = check_one(y[o], yref[o], sum_abs[o], nnz[o], eps, col_lsb, k, L->name);
        worst[per_channel] = r > worst[per_channel] ? r : worst[per_channel];
      }
      free(xq), free(wq), free(yref), free(xc), free(wc), free(y), free(sum_abs), free(nnz);
      free(ch), free(sf);
    }
    free(cap.x);
  }
  cr_log_info("bundled ResNet-18 layers: worst error / bound = %.3f per tensor, %.3f per channel",
              worst[0], worst[1]);
  accel_pe_free(&pe);
  accel_network_free(&net);
  lpq_array_free(&img);
  lpq_graph_free(&g);
}

/* ---- per-channel weight sf (lp<n,es,rs,auto_ch>) ---- */

/* Each output channel's sf: fw.sf plus an offset in -3..3, and its weights drawn 2^-offset as
** large, so every channel uses its format's range (log2|x| = ... - sf). */
static void channel_sfs(const lp_format_t *fw, size_t channels, int *sf, double *scale,
                        double weight_scale) {
  for (size_t c = 0; c < channels; c++) {
    int off = (int)rng_int(0, 6) - 3;
    sf[c] = fw->sf + off;
    scale[c] = ldexp(weight_scale, -off);
  }
}

static lp_format_t with_sf(const lp_format_t *f, int sf) {
  lp_format_t g = *f;
  g.sf = sf;
  return g;
}

/* The weights of a [k x n] gemm, column j quantized under fw at sf[j]. */
static void quantize_columns(const lp_format_t *fw, const int *sf, const double *scale, size_t k,
                             size_t n, float *wq, uint16_t *wc) {
  float *col = malloc(k * sizeof *col), *colq = malloc(k * sizeof *colq);
  uint16_t *colc = malloc(k * sizeof *colc);
  cr_assert(col && colq && colc);
  for (size_t j = 0; j < n; j++) {
    const lp_format_t fj = with_sf(fw, sf[j]);
    for (size_t q = 0; q < k; q++)
      col[q] = (float)(scale[j] * rng_normal());
    quantize(&fj, col, k, colq, colc);
    for (size_t q = 0; q < k; q++) {
      wq[q * n + j] = colq[q];
      wc[q * n + j] = colc[q];
    }
  }
  free(col), free(colq), free(colc);
}

/* Against the float layer whose column j is decode(w[., j] under sf[j]) (within the bound, at
** that column's lsb: the accumulator's minus sf[j]), and bit for bit against the per-tensor PE
** run on column j alone with fw at sf[j] and that lsb. */
Test(accel_pe, gemm_with_per_channel_sf_matches_reference_and_per_tensor_pe_bit_exactly) {
  rng_state = 4;
  lpq_error_t err;
  const accel_pe_config_t cfg = accel_pe_default_config();
  accel_pe_t *pe = accel_pe_new(&cfg, &err);
  cr_assert_not_null(pe, "%s", err.msg);
  const int rounds = asan() ? 3 : 10;
  double worst = 0;
  size_t distinct = 0;
  for (size_t pi = 0; pi < NPAIRS; pi++)
    for (int r = 0; r < rounds; r++) {
      const pair_t *p = &pairs[pi];
      const lp_format_t fw0 = with_sf(&p->fw, 0);
      size_t m = rng_int(1, 8), n = rng_int(2, 16), k = rng_int(1, 300);
      int *sf = malloc(n * sizeof *sf);
      double *scale = malloc(n * sizeof *scale);
      float *a = random_tensor(m * k, p->act_scale), *aq = malloc(m * k * sizeof *aq);
      float *wq = malloc(k * n * sizeof *wq);
      uint16_t *ac = malloc(m * k * sizeof *ac), *wc = malloc(k * n * sizeof *wc);
      uint16_t *colc = malloc(k * sizeof *colc);
      double *out = malloc(m * n * sizeof *out), *col_out = malloc(m * sizeof *col_out);
      cr_assert(sf && scale && aq && wq && ac && wc && colc && out && col_out);
      channel_sfs(&p->fw, n, sf, scale, p->weight_scale);
      for (size_t j = 1; j < n; j++)
        distinct += sf[j] != sf[0];
      quantize(&p->fa, a, m * k, aq, ac);
      quantize_columns(&p->fw, sf, scale, k, n, wq, wc);
      /* The accumulator's lsb lives at sf 0: even rounds the one that never saturates, odd
      ** rounds from the data's largest product seen at sf 0. */
      double max_a = 0, max_w0 = 0;
      for (size_t i = 0; i < m * k; i++)
        max_a = fmax(max_a, fabs(aq[i]));
      for (size_t i = 0; i < k * n; i++)
        max_w0 = fmax(max_w0, ldexp(fabs(wq[i]), sf[i % n]));
      const int lsb = r % 2 == 0 ? accel_pe_acc_lsb(pe, &fw0, &p->fa, k)
                                 : accel_pe_acc_lsb_for_max(pe, max_a * max_w0 * 1.01, k);
      accel_pe_stats_t st = {0, 0, 0};
      cr_assert_eq(accel_pe_gemm_channels(pe, &p->fa, ac, &p->fw, wc, sf, m, n, k, lsb, out,
                                          &st, &err),
                   0, "%s", err.msg);
      cr_assert_eq(st.saturated, 0);
      const double eps = product_eps(&cfg, &p->fa, &p->fw);
      accel_pe_stats_t col_st = {0, 0, 0};
      for (size_t j = 0; j < n; j++) {
        const lp_format_t fj = with_sf(&p->fw, sf[j]);
        for (size_t q = 0; q < k; q++)
          colc[q] = wc[q * n + j];
        cr_assert_eq(accel_pe_gemm(pe, &p->fa, ac, &fj, colc, m, 1, k, lsb - sf[j], col_out,
                                   &col_st, &err),
                     0, "%s", err.msg);
        for (size_t i = 0; i < m; i++) {
          cr_assert_eq(out[i * n + j], col_out[i],
                       "column %zu (sf %d): per-channel %.17g, per-tensor %.17g", j, sf[j],
                       out[i * n + j], col_out[i]);
          float ref = 0;
          double sum_abs = 0;
          size_t nnz = 0;
          for (size_t q = 0; q < k; q++) {
            ref += aq[i * k + q] * wq[q * n + j];
            sum_abs += fabs((double)aq[i * k + q] * (double)wq[q * n + j]);
            nnz += aq[i * k + q] != 0 && wq[q * n + j] != 0;
          }
          double ratio =
              check_one(out[i * n + j], ref, sum_abs, nnz, eps, lsb - sf[j], k, "gemm per-ch");
          worst = ratio > worst ? ratio : worst;
        }
      }
      cr_assert_eq(col_st.products, st.products);
      cr_assert_eq(col_st.truncated, st.truncated);
      free(sf), free(scale), free(a), free(aq), free(wq), free(ac), free(wc), free(colc);
      free(out), free(col_out);
    }
  cr_assert_gt(distinct, 0, "the channels' sf never differed");
  cr_log_info("gemm per-channel sf: worst error / bound = %.3f", worst);
  accel_pe_free(&pe);
}

/* A conv's output channel c under its own sf: within the bound of the float layer, and bit for
** bit the per-tensor conv with fw at sf[c] (whose lsb is the sf-0 lsb minus sf[c]). */
Test(accel_pe, conv_with_per_channel_sf_matches_reference_and_per_tensor_pe_bit_exactly) {
  rng_state = 5;
  lpq_error_t err;
  const accel_pe_config_t cfg = accel_pe_default_config();
  accel_pe_t *pe = accel_pe_new(&cfg, &err);
  cr_assert_not_null(pe, "%s", err.msg);
  const int rounds = asan() ? 2 : 6;
  for (size_t pi = 0; pi < NPAIRS; pi++)
    for (int r = 0; r < rounds; r++) {
      const pair_t *p = &pairs[pi];
      const lp_format_t fw0 = with_sf(&p->fw, 0);
      accel_layer_t l = {.name = "random_conv", .kind = ACCEL_CONV, .dilation_w = 1};
      l.batch = rng_int(1, 2);
      l.groups = rng_int(1, 2);
      l.in_channels = l.groups * rng_int(1, 3);
      l.out_channels = l.groups * rng_int(2, 4);
      l.kernel_h = rng_int(1, 3), l.kernel_w = rng_int(1, 3);
      l.stride_h = rng_int(1, 2), l.stride_w = rng_int(1, 2);
      l.pad_h = rng_int(0, 1), l.pad_w = rng_int(0, 1);
      l.dilation_h = rng_int(1, 2);
      l.in_h = rng_int(5, 8), l.in_w = rng_int(5, 8);
      l.out_h = (l.in_h + 2 * l.pad_h - l.dilation_h * (l.kernel_h - 1) - 1) / l.stride_h + 1;
      l.out_w = (l.in_w + 2 * l.pad_w - (l.kernel_w - 1) - 1) / l.stride_w + 1;
      cr_assert_eq(accel_layer_validate(&l, &err), 0, "%s", err.msg);
      const size_t nx = l.batch * l.in_channels * l.in_h * l.in_w;
      const size_t k = l.in_channels / l.groups * l.kernel_h * l.kernel_w, co_n = l.out_channels;
      const size_t nw = co_n * k, plane = l.out_h * l.out_w, ny = l.batch * co_n * plane;
      int *sf = malloc(co_n * sizeof *sf);
      double *scale = malloc(co_n * sizeof *scale);
      float *x = random_tensor(nx, p->act_scale), *xq = malloc(nx * sizeof *xq);
      float *w = malloc(nw * sizeof *w), *wq = malloc(nw * sizeof *wq);
      float *yref = malloc(ny * sizeof *yref);
      uint16_t *xc = malloc(nx * sizeof *xc), *wc = malloc(nw * sizeof *wc);
      double *y = malloc(ny * sizeof *y), *y1 = malloc(ny * sizeof *y1);
      double *sum_abs = malloc(ny * sizeof *sum_abs);
      size_t *nnz = malloc(ny * sizeof *nnz);
      cr_assert(sf && scale && xq && w && wq && yref && xc && wc && y && y1 && sum_abs && nnz);
      channel_sfs(&p->fw, co_n, sf, scale, p->weight_scale);
      quantize(&p->fa, x, nx, xq, xc);
      for (size_t c = 0; c < co_n; c++) { /* OIHW: channel c's k weights are contiguous */
        const lp_format_t fc = with_sf(&p->fw, sf[c]);
        for (size_t q = 0; q < k; q++)
          w[c * k + q] = (float)(scale[c] * rng_normal());
        quantize(&fc, w + c * k, k, wq + c * k, wc + c * k);
      }
      accel_pe_stats_t st = {0, 0, 0};
      cr_assert_eq(accel_pe_conv_channels(pe, &l, &p->fa, xc, &p->fw, wc, sf, y, &st, &err), 0,
                   "%s", err.msg);
      cr_assert_eq(st.saturated, 0);
      conv_ref(&l, xq, wq, yref, sum_abs, nnz);
      const int lsb = accel_pe_acc_lsb(pe, &fw0, &p->fa, k);
      const double eps = product_eps(&cfg, &p->fa, &p->fw);
      for (size_t o = 0; o < ny; o++) {
        const size_t c = (o / plane) % co_n;
        check_one(y[o], yref[o], sum_abs[o], nnz[o], eps, lsb - sf[c], k, "conv per-ch");
      }
      for (size_t c = 0; c < co_n; c++) {
        const lp_format_t fc = with_sf(&p->fw, sf[c]);
        cr_assert_eq(accel_pe_acc_lsb(pe, &fc, &p->fa, k), lsb - sf[c]);
        cr_assert_eq(accel_pe_conv(pe, &l, &p->fa, xc, &fc, wc, y1, NULL, &err), 0, "%s",
                     err.msg);
        for (size_t b = 0; b < l.batch; b++)
          for (size_t q = 0; q < plane; q++) {
            const size_t o = (b * co_n + c) * plane + q;
            cr_assert_eq(y[o], y1[o], "channel %zu (sf %d): %.17g vs per-tensor %.17g", c,
                         sf[c], y[o], y1[o]);
          }
      }
      free(sf), free(scale), free(x), free(xq), free(w), free(wq), free(yref), free(xc);
      free(wc), free(y), free(y1), free(sum_abs), free(nnz);
    }
  accel_pe_free(&pe);
}

Test(accel_pe, per_channel_sf_out_of_range_is_refused) {
  lpq_error_t err;
  const accel_pe_config_t cfg = accel_pe_default_config();
  accel_pe_t *pe = accel_pe_new(&cfg, &err);
  const lp_format_t f = {4, 1, 2, 0};
  uint16_t a[2] = {1, 2}, w[4] = {1, 2, 3, 4};
  int sf[2] = {3, LP_SF_MAX + 1};
  double out[2];
  cr_assert_eq(accel_pe_gemm_channels(pe, &f, a, &f, w, sf, 1, 2, 2, -20, out, NULL, &err),
               LPQ_EINVAL);
  cr_expect(strstr(err.msg, "channel 1") && strstr(err.msg, "65"), "%s", err.msg);
  cr_assert_eq(accel_pe_gemm_channels(pe, &f, a, &f, w, NULL, 1, 2, 2, -20, out, NULL, &err),
               LPQ_EINVAL);
  accel_pe_free(&pe);
}
