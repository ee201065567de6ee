/* accel_sim/accel_pe.c: a bit-level functional model of the LPA processing element.
**
** Datapath per product: decode both codes to sign and fixed-point log (regime, exponent and
** fraction as one number, lp_to_log), add the logs (the multiply), round the log's fraction to
** the LUT's index width, read 2^frac from the LUT (lut_frac_bits fraction bits), shift by the
** log's integer part into the accumulator's fixed point (bits below its lsb are dropped,
** towards zero), and add with saturation. Everything is integer arithmetic, as in hardware.
** Per-channel weight sf: the weight decoder runs at sf 0 and each column's sf register is added
** to the exponent of the column's results in the output path (one integer add per output). */
#include "accel_sim/accel_sim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct accel_pe_t {
  accel_pe_config_t cfg;
  int64_t *lut; /* 2^lut_index_bits entries: round(2^(i / 2^L) * 2^Q) */
};

accel_pe_config_t accel_pe_default_config(void) {
  return (accel_pe_config_t){.lut_index_bits = 8, .lut_frac_bits = 12, .acc_bits = 32};
}

accel_pe_t *accel_pe_new(const accel_pe_config_t *cfg, lpq_error_t *err) {
  if (cfg == NULL || cfg->lut_index_bits < 1 || cfg->lut_index_bits > 12 ||
      cfg->lut_frac_bits < 1 || cfg->lut_frac_bits > 30 || cfg->acc_bits < 8 ||
      cfg->acc_bits > 62) {
    lpq_errorf(err, LPQ_EINVAL,
               "pe config: lut_index_bits %d (1..12), lut_frac_bits %d (1..30), acc_bits %d "
               "(8..62): a value is out of range",
               cfg ? cfg->lut_index_bits : 0, cfg ? cfg->lut_frac_bits : 0,
               cfg ? cfg->acc_bits : 0);
    return NULL;
  }
  accel_pe_t *pe = calloc(1, sizeof *pe);
  const size_t entries = (size_t)1 << cfg->lut_index_bits;
  if (pe == NULL || (pe->lut = malloc(entries * sizeof *pe->lut)) == NULL) {
    free(pe);
    lpq_errorf(err, LPQ_ENOMEM, "pe: out of memory for a %zu-entry LUT", entries);
    return NULL;
  }
  pe->cfg = *cfg;
  for (size_t i = 0; i < entries; i++)
    pe->lut[i] = (int64_t)llround(ldexp(exp2((double)i / (double)entries), cfg->lut_frac_bits));
  return pe;
}

void accel_pe_free(accel_pe_t **pe) {
  if (pe == NULL || *pe == NULL)
    return;
  free((*pe)->lut);
  free(*pe);
  *pe = NULL;
}

static int64_t floor_log2_of_maxpos(const lp_format_t *f) {
  lp_logval_t v = lp_to_log(f, lp_maxpos(f));
  return v.log_fixed >> LP_LOG_FRAC; /* arithmetic shift: floor */
}

static int ceil_log2_size(size_t k) {
  int b = 0;
  while (((size_t)1 << b) < k)
    b++;
  return b;
}

int accel_pe_acc_lsb(const accel_pe_t *pe, const lp_format_t *fw, const lp_format_t *fa,
                     size_t k) {
  /* |product| < 2^(floor(log maxpos_w) + floor(log maxpos_a) + 2), and the LUT may round a
  ** mantissa up to 2: one more bit; k products: ceil(log2 k) more; one bit of sign. */
  int64_t top = floor_log2_of_maxpos(fw) + floor_log2_of_maxpos(fa) + 3 + ceil_log2_size(k);
  return (int)(top - (pe->cfg.acc_bits - 1));
}

int accel_pe_acc_lsb_for_max(const accel_pe_t *pe, double max_abs_product, size_t k) {
  int e = 0;
  if (max_abs_product > 0)
    frexp(max_abs_product, &e); /* max_abs_product < 2^e */
  return e + 1 + ceil_log2_size(k) - (pe->cfg.acc_bits - 1);
}

/* A decoded operand: zero, or a sign and a fixed-point log. */
typedef struct operand_t {
  int64_t log_fixed;
  int is_zero, sign;
} operand_t;

static int decode_all(const lp_format_t *f, const uint16_t *codes, size_t count, operand_t *out,
                      const char *what, lpq_error_t *err) {
  const uint32_t mask = lp_code_mask(f);
  for (size_t i = 0; i < count; i++) {
    lp_logval_t v = lp_to_log(f, codes[i] & mask);
    if (v.is_nar)
      return lpq_errorf(err, LPQ_EINVAL, "pe: %s code %zu is NaR", what, i);
    out[i] = (operand_t){v.log_fixed, v.is_zero, v.sign};
  }
  return 0;
}

/* fw at sf 0: what the weight decoder computes when the sf lives in the column registers. */
static lp_format_t at_sf0(const lp_format_t *fw) {
  lp_format_t f = *fw;
  f.sf = 0;
  return f;
}

static int check_sf(const int *sf_w, size_t count, lpq_error_t *err) {
  for (size_t j = 0; j < count; j++)
    if (sf_w[j] < LP_SF_MIN || sf_w[j] > LP_SF_MAX)
      return lpq_errorf(err, LPQ_EINVAL, "pe: channel %zu sf = %d is out of range %d..%d", j,
                        sf_w[j], LP_SF_MIN, LP_SF_MAX);
  return 0;
}

/* The datapath for both scalings: sf_w NULL (fw's own sf, decoded with the weights) or one sf
** per column, added to the exponent of the column's results. */
static int gemm_core(const accel_pe_t *pe, const lp_format_t *fa, const uint16_t *act,
                     const lp_format_t *fw_in, const uint16_t *weight, const int *sf_w,
                     size_t m, size_t n, size_t k, int acc_lsb_log2, double *out,
                     accel_pe_stats_t *stats, lpq_error_t *err) {
  int rc;
  if (pe == NULL || act == NULL || weight == NULL || out == NULL || fa == NULL || fw_in == NULL)
    return lpq_errorf(err, LPQ_EINVAL, "pe gemm: a NULL argument");
  const lp_format_t fw0 = at_sf0(fw_in), *fw = sf_w ? &fw0 : fw_in;
  if ((rc = lp_format_validate(fa, err)) != 0 || (rc = lp_format_validate(fw, err)) != 0)
    return rc;
  if (sf_w != NULL && (rc = check_sf(sf_w, n, err)) != 0)
    return rc;
  if (m == 0 || n == 0 || k == 0 || m > SIZE_MAX / k || n > SIZE_MAX / k)
    return lpq_errorf(err, LPQ_ERANGE, "pe gemm: sizes %zu x %zu x %zu", m, n, k);
  operand_t *a = malloc(m * k * sizeof *a), *w = malloc(k * n * sizeof *w);
  if (a == NULL || w == NULL) {
    free(a);
    free(w);
    return lpq_errorf(err, LPQ_ENOMEM, "pe gemm: out of memory for %zu x %zu x %zu", m, n, k);
  }
  if ((rc = decode_all(fa, act, m * k, a, "activation", err)) != 0 ||
      (rc = decode_all(fw, weight, k * n, w, "weight", err)) != 0)
    goto out;
  const int L = pe->cfg.lut_index_bits, Q = pe->cfg.lut_frac_bits;
  const int drop = LP_LOG_FRAC - L; /* log fraction bits the LUT index does not see */
  const int64_t half = drop > 0 ? (int64_t)1 << (drop - 1) : 0;
  const int64_t idx_mask = ((int64_t)1 << L) - 1;
  const int64_t acc_max = ((int64_t)1 << (pe->cfg.acc_bits - 1)) - 1, acc_min = -acc_max - 1;
  accel_pe_stats_t st = {0, 0, 0};
  for (size_t i = 0; i < m; i++)
    for (size_t j = 0; j < n; j++) {
      int64_t acc = 0;
      for (size_t p = 0; p < k; p++) {
        const operand_t *x = &a[i * k + p], *y = &w[p * n + j];
        if (x->is_zero || y->is_zero)
          continue;
        st.products++;
        int64_t t = (x->log_fixed + y->log_fixed + half) >> drop; /* round to the index */
        int64_t ip = t >> L, mant = pe->lut[t & idx_mask];
        int64_t shift = ip - Q - acc_lsb_log2;
        int64_t mag;
        if (shift >= 0) {
          /* mant < 2^(Q+1): it fits while Q + 1 + shift stays below the sign bit. */
          if (Q + 1 + shift > pe->cfg.acc_bits - 1) {
            mag = acc_max;
            st.saturated++;
          } else {
            mag = mant << shift;
          }
        } else {
          mag = -shift >= 62 ? 0 : mant >> -shift;
          if (-shift >= 62 || (mag << -shift) != mant)
            st.truncated++;
        }
        int64_t sum = (x->sign ^ y->sign) ? acc - mag : acc + mag;
        if (sum > acc_max || sum < acc_min) {
          sum = sum > acc_max ? acc_max : acc_min;
          st.saturated++;
        }
        acc = sum;
      }
      /* the column's sf register: an integer add to the result's exponent */
      const int exponent = sf_w ? acc_lsb_log2 - sf_w[j] : acc_lsb_log2;
      out[i * n + j] = ldexp((double)acc, exponent);
    }
  if (stats != NULL) {
    stats->products += st.products;
    stats->saturated += st.saturated;
    stats->truncated += st.truncated;
  }
out:
  free(a);
  free(w);
  return rc;
}

int accel_pe_gemm(const accel_pe_t *pe, const lp_format_t *fa, const uint16_t *act,
                  const lp_format_t *fw, const uint16_t *weight, size_t m, size_t n, size_t k,
                  int acc_lsb_log2, double *out, accel_pe_stats_t *stats, lpq_error_t *err) {
  return gemm_core(pe, fa, act, fw, weight, NULL, m, n, k, acc_lsb_log2, out, stats, err);
}

int accel_pe_gemm_channels(const accel_pe_t *pe, const lp_format_t *fa, const uint16_t *act,
                           const lp_format_t *fw, const uint16_t *weight, const int *sf_w,
                           size_t m, size_t n, size_t k, int acc_lsb_log2, double *out,
                           accel_pe_stats_t *stats, lpq_error_t *err) {
  if (sf_w == NULL)
    return lpq_errorf(err, LPQ_EINVAL, "pe gemm: per-channel sf: a NULL argument");
  return gemm_core(pe, fa, act, fw, weight, sf_w, m, n, k, acc_lsb_log2, out, stats, err);
}

static int conv_core(const accel_pe_t *pe, const accel_layer_t *l, const lp_format_t *fa,
                     const uint16_t *input, const lp_format_t *fw_in, const uint16_t *weight,
                     const int *sf_w, double *out, accel_pe_stats_t *stats, lpq_error_t *err) {
  int rc = accel_layer_validate(l, err);
  if (rc != 0)
    return rc;
  if (l->kind != ACCEL_CONV)
    return lpq_errorf(err, LPQ_EINVAL, "pe conv: layer '%s' is not a conv", l->name);
  if (fa == NULL || fw_in == NULL || input == NULL || weight == NULL || out == NULL)
    return lpq_errorf(err, LPQ_EINVAL, "pe conv '%s': a NULL argument", l->name);
  const lp_format_t fw0 = at_sf0(fw_in), *fw = sf_w ? &fw0 : fw_in;
  const size_t cin_g = l->in_channels / l->groups, cout_g = l->out_channels / l->groups;
  const size_t kh = l->kernel_h, kw = l->kernel_w, oh = l->out_h, ow = l->out_w;
  const size_t m = oh * ow, k = cin_g * kh * kw, n = cout_g;
  uint16_t *a = malloc(m * k * sizeof *a), *w = malloc(k * n * sizeof *w);
  double *c = malloc(m * n * sizeof *c);
  if (a == NULL || w == NULL || c == NULL) {
    rc = lpq_errorf(err, LPQ_ENOMEM, "pe conv '%s': out of memory", l->name);
    goto out;
  }
  const int lsb = accel_pe_acc_lsb(pe, fw, fa, k);
  for (size_t g = 0; g < l->groups; g++) {
    for (size_t ci = 0; ci < cin_g; ci++) /* weights [k, n] from OIHW */
      for (size_t y = 0; y < kh; y++)
        for (size_t x = 0; x < kw; x++)
          for (size_t co = 0; co < n; co++)
            w[((ci * kh + y) * kw + x) * n + co] =
                weight[(((g * cout_g + co) * cin_g + ci) * kh + y) * kw + x];
    for (size_t b = 0; b < l->batch; b++) {
      for (size_t oy = 0; oy < oh; oy++) /* im2col; padding reads code 0, the value zero */
        for (size_t ox = 0; ox < ow; ox++)
          for (size_t ci = 0; ci < cin_g; ci++)
            for (size_t y = 0; y < kh; y++)
              for (size_t x = 0; x < kw; x++) {
                long iy = (long)(oy * l->stride_h + y * l->dilation_h) - (long)l->pad_h;
                long ix = (long)(ox * l->stride_w + x * l->dilation_w) - (long)l->pad_w;
                uint16_t code = 0;
                if (iy >= 0 && ix >= 0 && (size_t)iy < l->in_h && (size_t)ix < l->in_w)
                  code = input[((b * l->in_channels + g * cin_g + ci) * l->in_h + (size_t)iy) *
                                   l->in_w + (size_t)ix];
                a[(oy * ow + ox) * k + (ci * kh + y) * kw + x] = code;
              }
      if ((rc = gemm_core(pe, fa, a, fw, w, sf_w ? sf_w + g * cout_g : NULL, m, n, k, lsb, c,
                          stats, err)) != 0)
        goto out;
      for (size_t co = 0; co < n; co++)
        for (size_t p = 0; p < m; p++)
          out[(b * l->out_channels + g * cout_g + co) * m + p] = c[p * n + co];
    }
  }
out:
  free(a);
  free(w);
  free(c);
  return rc;
}

int accel_pe_conv(const accel_pe_t *pe, const accel_layer_t *l, const lp_format_t *fa,
                  const uint16_t *input, const lp_format_t *fw, const uint16_t *weight,
                  double *out, accel_pe_stats_t *stats, lpq_error_t *err) {
  return conv_core(pe, l, fa, input, fw, weight, NULL, out, stats, err);
}

int accel_pe_conv_channels(const accel_pe_t *pe, const accel_layer_t *l, const lp_format_t *fa,
                           const uint16_t *input, const lp_format_t *fw, const uint16_t *weight,
                           const int *sf_w, double *out, accel_pe_stats_t *stats,
                           lpq_error_t *err) {
  if (sf_w == NULL)
    return lpq_errorf(err, LPQ_EINVAL, "pe conv: per-channel sf: a NULL argument");
  return conv_core(pe, l, fa, input, fw, weight, sf_w, out, stats, err);
}
