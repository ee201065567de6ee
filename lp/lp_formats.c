/* lp/lp_formats.c: the table of number formats (LP and the baselines), one row per family.
** A family says how to check its parameters, how many bits a code takes, and its positive
** values for given resolved parameters; the shared lp_quantizer_t does the rest. */
#include "lp/lp_internal.h"

#include <ctype.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PARAM_AUTO (-10000) /* "auto" in a parameter list */
#define PARAM_CH (-10001)   /* "ch" in a parameter list */
#define PARAM_AUTO_CH (-10002) /* "auto_ch": LP sf per output channel */
#define MAX_VALUES 32767

typedef struct family_row_t {
  lpq_family_t family;
  const char *name;
  int min_params, max_params;
  /* validates f->p, sets f->bits and flags; message names the bad parameter */
  int (*check)(lpq_numfmt_t *f, lpq_error_t *err);
  /* the positive values, ascending, of a resolved format; returns the count */
  size_t (*values)(const lpq_numfmt_t *f, double *out);
  /* 1 when the format's values depend on the data (scale, bias) */
  int scaled;
  /* the canonical text of a format of the family */
  void (*str)(const lpq_numfmt_t *f, char *buf, size_t len);
  /* resolves the data-dependent parameters from x (absmax: its largest finite |x|); NULL when
  ** the family has none */
  int (*calibrate)(lpq_numfmt_t *f, const float *x, size_t count, double absmax,
                   lpq_error_t *err);
  /* a quantizer of its own (LP's is built from the codec); NULL: from the value set */
  lp_quantizer_t *(*quantizer)(const lpq_numfmt_t *f, lpq_error_t *err);
  /* the arithmetic an accelerator needs for it (accel_sim's PE families) */
  lpq_arith_t arith;
  /* the family's representative format at `bits` bits (what an accelerator model assumes
  ** when only a width is given); NULL or non-zero: none at that width */
  int (*representative)(int bits, lpq_numfmt_t *out);
} family_row_t;

static int range_err(lpq_error_t *err, const char *fam, const char *what, int v, int lo, int hi) {
  return lpq_errorf(err, LPQ_EINVAL, "%s format: %s = %d is out of range %d..%d", fam, what, v, lo,
                    hi);
}

/* ---- fp32 ---- */
static int check_fp32(lpq_numfmt_t *f, lpq_error_t *err) {
  (void)err;
  f->bits = 32;
  f->resolved = 1;
  return 0;
}

static void str_fp32(const lpq_numfmt_t *f, char *buf, size_t len) {
  (void)f;
  snprintf(buf, len, "fp32");
}

static int repr_fp32(int bits, lpq_numfmt_t *out) {
  return bits == 32 ? lpq_numfmt_parse("fp32", out, NULL) : LPQ_EINVAL;
}

/* ---- LP ---- */
static int check_lp(lpq_numfmt_t *f, lpq_error_t *err) {
  const int is_auto = f->p[3] == PARAM_AUTO || f->p[3] == PARAM_AUTO_CH;
  lp_format_t lf = {f->p[0], f->p[1], f->p[2], is_auto ? 0 : f->p[3]};
  int rc = lp_format_validate(&lf, err);
  if (rc != 0)
    return rc;
  f->bits = f->p[0];
  f->auto_scale = is_auto;
  f->per_channel = f->p[3] == PARAM_AUTO_CH;
  if (f->auto_scale)
    f->p[3] = 0;
  f->resolved = !f->auto_scale;
  return 0;
}

static void str_lp(const lpq_numfmt_t *f, char *buf, size_t len) {
  if (f->auto_scale && (!f->resolved || f->per_channel)) {
    char off[16] = "";
    if (f->sf_offset != 0)
      snprintf(off, sizeof off, "%+d", f->sf_offset);
    snprintf(buf, len, "lp<%d,%d,%d,%s%s>", f->p[0], f->p[1], f->p[2],
             f->per_channel ? "auto_ch" : "auto", off);
  } else
    snprintf(buf, len, "lp<%d,%d,%d,%d>", f->p[0], f->p[1], f->p[2], f->p[3]);
}

static int calibrate_lp(lpq_numfmt_t *f, const float *x, size_t count, double absmax,
                        lpq_error_t *err) {
  (void)absmax;
  return f->auto_scale ? lpq__lp_calibrate_sf(f, x, count, err) : 0;
}

static lp_quantizer_t *quantizer_lp(const lpq_numfmt_t *f, lpq_error_t *err) {
  lp_format_t lf = lpq_numfmt_lp(f);
  return lp_quantizer_new(&lf, err);
}

/* lp<bits,1,bits-1,0> (es 0 at 2 bits): an uncapped LP of that width */
static int repr_lp(int bits, lpq_numfmt_t *out) {
  char text[LPQ_NUMFMT_TEXT_MAX];
  snprintf(text, sizeof text, "lp<%d,%d,%d,0>", bits, bits > 2 ? 1 : 0, bits - 1);
  return lpq_numfmt_parse(text, out, NULL);
}

static size_t values_lp(const lpq_numfmt_t *f, double *out) {
  lp_format_t lf = lpq_numfmt_lp(f);
  for (uint32_t c = 1; c <= lp_maxpos(&lf); c++)
    out[c - 1] = lp_decode(&lf, c);
  return lp_maxpos(&lf);
}

/* ---- INT ---- */
static int check_int(lpq_numfmt_t *f, lpq_error_t *err) {
  if (f->p[0] < 2 || f->p[0] > 16)
    return range_err(err, "int", "bits", f->p[0], 2, 16);
  if (f->p[1] != 0 && f->p[1] != PARAM_CH)
    return lpq_errorf(err, LPQ_EFORMAT, "int format: the second parameter must be 'ch'");
  f->per_channel = f->p[1] == PARAM_CH;
  f->p[1] = 0;
  f->bits = f->p[0];
  return 0;
}

static void str_int(const lpq_numfmt_t *f, char *buf, size_t len) {
  snprintf(buf, len, "int<%d%s>", f->p[0], f->per_channel ? ",ch" : "");
}

/* A calibrated scale as a float (at least FLT_MIN): what an exported model's QuantizeLinear and
** DequantizeLinear carry. With it, value k * scale computed in double is exact (24 + 16 bits)
** and rounds to the float that DequantizeLinear's float product gives, so lpq's values are the
** export's bit for bit (with the double scale, about half of them differed by an ulp). */
static double float_scale(double s) {
  float f = (float)s;
  return f >= FLT_MIN ? (double)f : (double)FLT_MIN;
}

/* symmetric: max |x| maps to the largest code */
static int calibrate_int(lpq_numfmt_t *f, const float *x, size_t count, double absmax,
                         lpq_error_t *err) {
  (void)x, (void)count, (void)err;
  f->scale = absmax > 0 ? float_scale(absmax / (double)((1 << (f->p[0] - 1)) - 1)) : 1.0;
  f->resolved = 1;
  return 0;
}

static int repr_int(int bits, lpq_numfmt_t *out) {
  char text[LPQ_NUMFMT_TEXT_MAX];
  snprintf(text, sizeof text, "int<%d>", bits);
  return lpq_numfmt_parse(text, out, NULL);
}

static size_t values_int(const lpq_numfmt_t *f, double *out) {
  size_t n = ((size_t)1 << (f->p[0] - 1)) - 1;
  for (size_t i = 0; i < n; i++)
    out[i] = f->scale * (double)(i + 1);
  return n;
}

/* ---- posit ---- */
static int check_posit(lpq_numfmt_t *f, lpq_error_t *err) {
  if (f->p[0] < 2 || f->p[0] > 16)
    return range_err(err, "posit", "n", f->p[0], 2, 16);
  if (f->p[1] < 0 || f->p[1] > 4)
    return range_err(err, "posit", "es", f->p[1], 0, 4);
  f->bits = f->p[0];
  f->resolved = 1;
  return 0;
}

static void str_posit(const lpq_numfmt_t *f, char *buf, size_t len) {
  snprintf(buf, len, "posit<%d,%d>", f->p[0], f->p[1]);
}

/* the 2022 posit standard's es = 2 at every width */
static int repr_posit(int bits, lpq_numfmt_t *out) {
  char text[LPQ_NUMFMT_TEXT_MAX];
  snprintf(text, sizeof text, "posit<%d,2>", bits);
  return lpq_numfmt_parse(text, out, NULL);
}

static size_t values_posit(const lpq_numfmt_t *f, double *out) {
  /* a posit's fields are an uncapped LP's; only the fraction is linear instead of log */
  lp_format_t lf = {f->p[0], f->p[1], f->p[0] - 1, 0};
  for (uint32_t c = 1; c <= lp_maxpos(&lf); c++) {
    lp_fields_t fl;
    lp_fields(&lf, c, &fl);
    double frac = fl.frac_bits ? (double)fl.f / (double)(1u << fl.frac_bits) : 0.0;
    out[c - 1] = ldexp(1.0 + frac, fl.k * (1 << lf.es) + (int)fl.e);
  }
  return lp_maxpos(&lf);
}

/* ---- AdaptivFloat ---- */
static int check_afloat(lpq_numfmt_t *f, lpq_error_t *err) {
  if (f->p[0] < 3 || f->p[0] > 16)
    return range_err(err, "afloat", "n", f->p[0], 3, 16);
  if (f->p[1] < 1 || f->p[1] > f->p[0] - 1 || f->p[1] > 8)
    return range_err(err, "afloat", "e", f->p[1], 1, f->p[0] - 1 < 8 ? f->p[0] - 1 : 8);
  f->bits = f->p[0];
  return 0;
}

static void str_afloat(const lpq_numfmt_t *f, char *buf, size_t len) {
  snprintf(buf, len, "afloat<%d,%d>", f->p[0], f->p[1]);
}

/* the exponent bias so that the top exponent covers max |x| */
static int calibrate_afloat(lpq_numfmt_t *f, const float *x, size_t count, double absmax,
                            lpq_error_t *err) {
  (void)x, (void)count, (void)err;
  int top = absmax > 0 ? (int)floor(log2(absmax)) : 0;
  int bias = top - ((1 << f->p[1]) - 1);
  f->scale = ldexp(1.0, bias < -1000 ? -1000 : bias);
  f->resolved = 1;
  return 0;
}

/* e = 3 exponent bits (at most bits - 2), as AdaptivFloat's 8-bit evaluation */
static int repr_afloat(int bits, lpq_numfmt_t *out) {
  char text[LPQ_NUMFMT_TEXT_MAX];
  snprintf(text, sizeof text, "afloat<%d,%d>", bits, bits - 2 < 3 ? bits - 2 : 3);
  return lpq_numfmt_parse(text, out, NULL);
}

/* AdaptivFloat (Tambe et al., DAC 2020): no subnormals; the smallest code is zero instead. */
static size_t values_afloat(const lpq_numfmt_t *f, double *out) {
  const int e = f->p[1], m = f->p[0] - 1 - e;
  size_t k = 0;
  for (int E = 0; E < (1 << e); E++)
    for (int M = 0; M < (1 << m); M++) {
      if (E == 0 && M == 0)
        continue;
      out[k++] = f->scale * ldexp(1.0 + (double)M / (double)(1 << m), E);
    }
  return k;
}

/* ---- minifloat (IEEE-like with subnormals; E4M3 per OCP FP8: no infinities) ---- */
static int check_minifloat(lpq_numfmt_t *f, lpq_error_t *err) {
  if (f->p[0] < 1 || f->p[0] > 8)
    return range_err(err, "minifloat", "e", f->p[0], 1, 8);
  if (f->p[1] < 0 || f->p[1] > 10)
    return range_err(err, "minifloat", "m", f->p[1], 0, 10);
  if (f->p[0] == 1 && f->p[1] == 0) /* its codes are 0 and Inf/NaN: nothing to quantize to */
    return lpq_errorf(err, LPQ_EINVAL, "minifloat format: minifloat<1,0> has no finite non-zero "
                      "value (e >= 2 or m >= 1)");
  if (1 + f->p[0] + f->p[1] > 16)
    return lpq_errorf(err, LPQ_EINVAL, "minifloat format: 1 + e + m = %d bits (at most 16)",
                      1 + f->p[0] + f->p[1]);
  f->bits = 1 + f->p[0] + f->p[1];
  return 0;
}

static void str_minifloat(const lpq_numfmt_t *f, char *buf, size_t len) {
  if (f->p[0] == 4 && f->p[1] == 3)
    snprintf(buf, len, "fp8_e4m3");
  else if (f->p[0] == 5 && f->p[1] == 2)
    snprintf(buf, len, "fp8_e5m2");
  else
    snprintf(buf, len, "minifloat<%d,%d>", f->p[0], f->p[1]);
}

static size_t values_minifloat(const lpq_numfmt_t *f, double *out);

/* a per-tensor scale: max |x| maps to the largest value */
static int calibrate_minifloat(lpq_numfmt_t *f, const float *x, size_t count, double absmax,
                               lpq_error_t *err) {
  (void)x, (void)count;
  lpq_numfmt_t unit = *f;
  unit.scale = 1.0;
  double *v = malloc(MAX_VALUES * sizeof *v);
  if (v == NULL)
    return lpq_errorf(err, LPQ_ENOMEM, "format: out of memory");
  size_t n = values_minifloat(&unit, v);
  f->scale = absmax > 0 && n > 0 ? float_scale(absmax / v[n - 1]) : 1.0;
  free(v);
  f->resolved = 1;
  return 0;
}

/* IEEE-like at the width: e2 up to 4 bits, e4 (E4M3) up to 8, e5 (E5M10 at 16) above */
static int repr_minifloat(int bits, lpq_numfmt_t *out) {
  int e = bits <= 4 ? 2 : bits <= 8 ? 4 : 5;
  char text[LPQ_NUMFMT_TEXT_MAX];
  snprintf(text, sizeof text, "minifloat<%d,%d>", e, bits - 1 - e);
  return bits - 1 - e < 0 ? LPQ_EINVAL : lpq_numfmt_parse(text, out, NULL);
}

static size_t values_minifloat(const lpq_numfmt_t *f, double *out) {
  const int e = f->p[0], m = f->p[1], bias = (1 << (e - 1)) - 1;
  const int e4m3 = (e == 4 && m == 3);
  size_t k = 0;
  for (int E = 0; E < (1 << e); E++)
    for (int M = 0; M < (1 << m); M++) {
      if (E == 0 && M == 0)
        continue;
      if (E == (1 << e) - 1 && (!e4m3 || M == (1 << m) - 1))
        continue; /* IEEE: top exponent is Inf/NaN; E4M3: only S.1111.111 is NaN */
      double v = E == 0 ? ldexp((double)M / (double)(1 << m), 1 - bias)
                        : ldexp(1.0 + (double)M / (double)(1 << m), E - bias);
      out[k++] = f->scale * v;
    }
  return k;
}

/* int and minifloat (FP8 among them) round as QuantizeLinear does with their float scale: what
** an export writes for them (lp_quantizer_new_scaled); values k and the minifloat's at scale 1 */
static lp_quantizer_t *quantizer_scaled(const lpq_numfmt_t *f, lpq_error_t *err) {
  lpq_numfmt_t unit = *f;
  unit.scale = 1.0;
  double *v = malloc(MAX_VALUES * sizeof *v);
  if (v == NULL) {
    lpq_errorf(err, LPQ_ENOMEM, "format: out of memory");
    return NULL;
  }
  size_t n = f->family == LPQ_FAM_INT ? values_int(&unit, v) : values_minifloat(&unit, v);
  lp_quantizer_t *q = lp_quantizer_new_scaled(v, n, f->bits, (float)f->scale, err);
  free(v);
  return q;
}

static const family_row_t families[LPQ_FAM_COUNT] = {
    {LPQ_FAM_FP32, "fp32", 0, 0, check_fp32, NULL, 0, str_fp32, NULL, NULL, LPQ_ARITH_FLOAT,
     repr_fp32},
    {LPQ_FAM_LP, "lp", 4, 4, check_lp, values_lp, 0, str_lp, calibrate_lp, quantizer_lp,
     LPQ_ARITH_LP, repr_lp},
    {LPQ_FAM_INT, "int", 1, 2, check_int, values_int, 1, str_int, calibrate_int, quantizer_scaled,
     LPQ_ARITH_INT, repr_int},
    {LPQ_FAM_POSIT, "posit", 2, 2, check_posit, values_posit, 0, str_posit, NULL, NULL,
     LPQ_ARITH_POSIT, repr_posit},
    {LPQ_FAM_AFLOAT, "afloat", 2, 2, check_afloat, values_afloat, 1, str_afloat,
     calibrate_afloat, NULL, LPQ_ARITH_AFLOAT, repr_afloat},
    {LPQ_FAM_MINIFLOAT, "minifloat", 2, 2, check_minifloat, values_minifloat, 1, str_minifloat,
     calibrate_minifloat, quantizer_scaled, LPQ_ARITH_FLOAT, repr_minifloat},
};

/* The accelerator families' names, as architecture files write them. */
static const char *const arith_names[LPQ_ARITH_COUNT] = {
    [LPQ_ARITH_LP] = "lp", [LPQ_ARITH_INT] = "int", [LPQ_ARITH_POSIT] = "posit",
    [LPQ_ARITH_AFLOAT] = "adaptivfloat", [LPQ_ARITH_FLOAT] = "float"};

const char *lpq_arith_name(lpq_arith_t a) {
  return (unsigned)a < LPQ_ARITH_COUNT ? arith_names[a] : "?";
}

int lpq_arith_from_name(const char *name) {
  for (int i = 0; name && i < LPQ_ARITH_COUNT; i++)
    if (strcasecmp(name, arith_names[i]) == 0)
      return i;
  return -1;
}

lpq_arith_t lpq_numfmt_arith(const lpq_numfmt_t *f) {
  return (unsigned)f->family < LPQ_FAM_COUNT ? families[f->family].arith : LPQ_ARITH_FLOAT;
}

int lpq_numfmt_representative(lpq_arith_t arith, int bits, lpq_numfmt_t *out,
                              lpq_error_t *err) {
  for (int i = 0; i < LPQ_FAM_COUNT; i++)
    if (families[i].arith == arith && families[i].representative &&
        families[i].representative(bits, out) == 0)
      return 0;
  return lpq_errorf(err, LPQ_EINVAL, "no %s format of %d bits", lpq_arith_name(arith), bits);
}

const char *lpq_family_name(lpq_family_t fam) {
  return (unsigned)fam < LPQ_FAM_COUNT ? families[fam].name : "unknown";
}

/* Short names users type, rewritten to the canonical form. */
static const struct {
  const char *alias, *canonical;
} aliases[] = {
    {"int8", "int<8>"},         {"int4", "int<4>"},        {"int2", "int<2>"},
    {"int8_ch", "int<8,ch>"},   {"int4_ch", "int<4,ch>"},  {"int2_ch", "int<2,ch>"},
    {"posit8", "posit<8,2>"},   {"posit16", "posit<16,2>"}, {"posit4", "posit<4,1>"},
    {"fp8", "minifloat<4,3>"},  {"fp8_e4m3", "minifloat<4,3>"}, {"fp8_e5m2", "minifloat<5,2>"},
    {"float32", "fp32"},        {"afloat8", "afloat<8,3>"},
};

/* "auto", "auto_ch", each with an optional offset "+K" / "-K" (|K| <= 64), at *pp; advances
** *pp past it. The parameter's marker goes to *param, the offset to *offset. */
static int parse_auto(const char *text, int index, const char **pp, int *param, int *offset,
                      lpq_error_t *err) {
  const char *p = *pp + 4;
  *param = PARAM_AUTO;
  if (strncasecmp(p, "_ch", 3) == 0) {
    *param = PARAM_AUTO_CH;
    p += 3;
  }
  *offset = 0;
  if (*p == '+' || *p == '-') {
    char *end;
    long v = strtol(p, &end, 10);
    if (end == p + 1 || !isdigit((unsigned char)p[1]) || v < LP_SF_MIN || v > LP_SF_MAX)
      return lpq_errorf(err, LPQ_EFORMAT,
                        "format '%s': parameter %d: the offset after '%s' must be an integer "
                        "in %d..%d (e.g. %s+1)",
                        text, index, *param == PARAM_AUTO ? "auto" : "auto_ch", LP_SF_MIN,
                        LP_SF_MAX, *param == PARAM_AUTO ? "auto" : "auto_ch");
    *offset = (int)v;
    p = end;
  } else if (isalnum((unsigned char)*p) || *p == '_') {
    return lpq_errorf(err, LPQ_EFORMAT,
                      "format '%s': parameter %d: expected auto, auto_ch, auto+K or auto_ch+K",
                      text, index);
  }
  *pp = p;
  return 0;
}

int lpq_numfmt_parse(const char *text, lpq_numfmt_t *out, lpq_error_t *err) {
  if (text == NULL || out == NULL)
    return lpq_errorf(err, LPQ_EINVAL, "format: NULL argument");
  const char *src = text;
  for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
    if (strcasecmp(text, aliases[i].alias) == 0)
      src = aliases[i].canonical;
  while (isspace((unsigned char)*src))
    src++;
  size_t nlen = 0;
  while (isalnum((unsigned char)src[nlen]) || src[nlen] == '_')
    nlen++;
  const family_row_t *row = NULL;
  for (size_t i = 0; i < LPQ_FAM_COUNT; i++)
    if (strlen(families[i].name) == nlen && strncasecmp(src, families[i].name, nlen) == 0)
      row = &families[i];
  if (row == NULL)
    return lpq_errorf(err, LPQ_EFORMAT,
                      "format '%s': unknown (known: fp32, lp<n,es,rs,sf>, lp<n,es,rs,auto>, "
                      "lp<n,es,rs,auto_ch>, int<k>, int<k,ch>, "
                      "posit<n,es>, afloat<n,e>, minifloat<e,m>, fp8_e4m3, fp8_e5m2)",
                      text);
  lpq_numfmt_t f = {0};
  f.family = row->family;
  const char *p = src + nlen;
  int np = 0;
  if (*p == '<') {
    p++;
    for (;;) {
      while (isspace((unsigned char)*p))
        p++;
      if (np == 4)
        return lpq_errorf(err, LPQ_EFORMAT, "format '%s': too many parameters", text);
      if (strncasecmp(p, "auto", 4) == 0) {
        if (parse_auto(text, np + 1, &p, &f.p[np], &f.sf_offset, err) != 0)
          return err ? err->code : LPQ_EFORMAT;
        np++;
      } else if (strncasecmp(p, "ch", 2) == 0) {
        f.p[np++] = PARAM_CH;
        p += 2;
      } else {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < -1000 || v > 1000)
          return lpq_errorf(err, LPQ_EFORMAT, "format '%s': parameter %d is not an integer",
                            text, np + 1);
        f.p[np++] = (int)v;
        p = end;
      }
      while (isspace((unsigned char)*p))
        p++;
      if (*p == ',') {
        p++;
        continue;
      }
      if (*p == '>') {
        p++;
        break;
      }
      return lpq_errorf(err, LPQ_EFORMAT, "format '%s': expected ',' or '>'", text);
    }
  }
  while (isspace((unsigned char)*p))
    p++;
  if (*p != '\0')
    return lpq_errorf(err, LPQ_EFORMAT, "format '%s': unexpected text '%s'", text, p);
  if (np < row->min_params || np > row->max_params)
    return lpq_errorf(err, LPQ_EFORMAT, "format '%s': %s takes %d%s%d parameters, got %d", text,
                      row->name, row->min_params, row->min_params == row->max_params ? "" : " to ",
                      row->min_params == row->max_params ? 0 : row->max_params, np);
  for (int i = 0; i < np; i++)
    if (((f.p[i] == PARAM_AUTO || f.p[i] == PARAM_AUTO_CH) &&
         !(row->family == LPQ_FAM_LP && i == 3)) ||
        (f.p[i] == PARAM_CH && !(row->family == LPQ_FAM_INT && i == 1)))
      return lpq_errorf(err, LPQ_EFORMAT, "format '%s': parameter %d cannot be '%s'%s", text,
                        i + 1,
                        f.p[i] == PARAM_AUTO      ? "auto"
                        : f.p[i] == PARAM_AUTO_CH ? "auto_ch"
                                                  : "ch",
                        f.p[i] == PARAM_CH ? "" : " (only an LP sf, the 4th parameter, can)");
  f.scale = 1.0;
  int rc = row->check(&f, err);
  if (rc != 0) {
    lpq_error_prefix(err, "'%s': ", text);
    return rc;
  }
  *out = f;
  return 0;
}

char *lpq_numfmt_str(const lpq_numfmt_t *f, char *buf, size_t len) {
  if ((unsigned)f->family < LPQ_FAM_COUNT)
    families[f->family].str(f, buf, len);
  else
    snprintf(buf, len, "unknown");
  return buf;
}

void lpq_numfmt_from_lp(const lp_format_t *lf, lpq_numfmt_t *out) {
  memset(out, 0, sizeof *out);
  if (lf->n == 0) {
    out->family = LPQ_FAM_FP32;
    out->bits = 32;
  } else {
    out->family = LPQ_FAM_LP;
    out->bits = lf->n;
    out->p[0] = lf->n;
    out->p[1] = lf->es;
    out->p[2] = lf->rs;
    out->p[3] = lf->sf;
  }
  out->resolved = 1;
  out->scale = 1.0;
}

lp_format_t lpq_numfmt_lp(const lpq_numfmt_t *f) {
  lp_format_t lf = {f->p[0], f->p[1], f->p[2], f->p[3]};
  return lf;
}

/* Positive values of a resolved format into a new array; NULL on failure. */
static double *format_values(const lpq_numfmt_t *f, size_t *count, lpq_error_t *err) {
  const family_row_t *row = &families[f->family];
  if (row->values == NULL) {
    lpq_errorf(err, LPQ_EINVAL, "format %s has no quantizer", row->name);
    return NULL;
  }
  double *v = malloc(MAX_VALUES * sizeof *v);
  if (v == NULL) {
    lpq_errorf(err, LPQ_ENOMEM, "format: out of memory");
    return NULL;
  }
  *count = row->values(f, v);
  if (*count == 0) { /* callers index the largest value */
    free(v);
    lpq_errorf(err, LPQ_EINVAL, "format %s: no finite non-zero value", row->name);
    return NULL;
  }
  return v;
}

lp_quantizer_t *lpq_numfmt_quantizer(const lpq_numfmt_t *f, lpq_error_t *err) {
  if (f == NULL || (unsigned)f->family >= LPQ_FAM_COUNT) {
    lpq_errorf(err, LPQ_EINVAL, "format: invalid");
    return NULL;
  }
  if (!f->resolved) {
    char buf[LPQ_NUMFMT_TEXT_MAX];
    lpq_errorf(err, LPQ_ESTATE, "format %s: its scale is not calibrated",
               lpq_numfmt_str(f, buf, sizeof buf));
    return NULL;
  }
  if (families[f->family].quantizer)
    return families[f->family].quantizer(f, err);
  size_t n;
  double *v = format_values(f, &n, err);
  if (v == NULL)
    return NULL;
  lp_quantizer_t *q = lp_quantizer_new_values(v, n, f->bits, err);
  free(v);
  return q;
}

int lpq_numfmt_calibrate(lpq_numfmt_t *f, const float *x, size_t count, lpq_error_t *err) {
  if (f == NULL || (count > 0 && x == NULL))
    return lpq_errorf(err, LPQ_EINVAL, "calibrate: NULL argument");
  double absmax = 0.0;
  for (size_t i = 0; i < count; i++) {
    if (isnan(x[i]))
      return lpq_errorf(err, LPQ_ENAN, "calibrate: element %zu is NaN", i);
    double a = fabs((double)x[i]);
    if (a > absmax && !isinf(a))
      absmax = a;
  }
  if ((unsigned)f->family >= LPQ_FAM_COUNT)
    return lpq_errorf(err, LPQ_EINVAL, "calibrate: invalid format");
  const family_row_t *row = &families[f->family];
  return row->calibrate ? row->calibrate(f, x, count, absmax, err) : 0;
}
