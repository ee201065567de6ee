/*
** lp/lp.h: the Logarithmic Posit number format LP<n, es, rs, sf> (DESIGN section 1) and the
** project-wide error values, the tensor quantizer, and the table of every number format
** (LP and the baselines). lp/ depends on nothing; every other folder includes this header.
**
** An LP code is an n-bit two's complement word. Decoding reads a sign, a regime run of at most
** rs bits, es exponent bits and F fraction bits, and gives
**     log2|x| = k * 2^es + e + f / 2^F - sf
** so the exponent and fraction form one fixed-point log value ("ulfx"): a product of two LP
** numbers is an integer add in the log domain.
*/
#ifndef LPQ_LP_H
#define LPQ_LP_H

#include <stddef.h>
#include <stdint.h>

/* ---- errors (shared by the whole project) -------------------------------------------- */

/* Functions that can fail return 0 or one of these negative values. */
enum {
  LPQ_OK = 0,
  LPQ_EINVAL = -1,   /* an argument or a field is out of range */
  LPQ_ENOMEM = -2,   /* allocation failed */
  LPQ_EIO = -3,      /* reading or writing a file or socket failed */
  LPQ_EFORMAT = -4,  /* malformed input: a file, a message, a text form */
  LPQ_ENAN = -5,     /* a NaN reached a quantizer */
  LPQ_EUNSUP = -6,   /* valid input that lpq does not support */
  LPQ_ERANGE = -7,   /* a value does not fit (sizes, overflow) */
  LPQ_ENOTFOUND = -8,
  LPQ_ESTATE = -9,   /* the object is in the wrong state for the call */
  LPQ_ETIMEDOUT = -10,
  LPQ_ECANCELED = -11,
  LPQ_ECORRUPT = -12, /* stored data is damaged (a database page), not a client's bad input */
};

/* A message for a person, naming what was wrong. Callers may pass NULL to ignore it. */
typedef struct lpq_error_t {
  int code;
  char msg[512];
} lpq_error_t;

/* Sets err (when not NULL) to code and the formatted message; returns code. */
int lpq_errorf(lpq_error_t *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prefixes err->msg with the formatted context ("file.onnx: "); returns err->code (or code). */
int lpq_error_prefix(lpq_error_t *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A short name for a code: "invalid argument", ... Never NULL. */
const char *lpq_strerror(int code);
/* How a value that is not finite reads in an error text: "NaN", "infinite (+inf)" or
** "infinite (-inf)" (an infinity is never called NaN); "finite" otherwise. */
const char *lpq_nonfinite_name(double x);

/* ---- the format ------------------------------------------------------------------------ */

#define LP_N_MIN 2
#define LP_N_MAX 16
#define LP_ES_MAX 4
#define LP_SF_MIN (-64)
#define LP_SF_MAX 64
#define LP_TEXT_MAX 32 /* enough for "lp<16,4,15,-64>" and its terminator */

typedef struct lp_format_t {
  int n;  /* total bits, 2..16 */
  int es; /* exponent bits, 0..4 */
  int rs; /* regime run-length cap, 1..n-1 (n-1: uncapped, as posits) */
  int sf; /* scale factor, -64..64; log2|x| is shifted down by sf */
} lp_format_t;

/* 0 when f is a valid format; otherwise LPQ_EINVAL with a message naming the field, its value
** and its allowed range ("lp format: es = 5 is out of range 0..4"). */
int lp_format_validate(const lp_format_t *f, lpq_error_t *err);

/* Parses the canonical text "lp<8,2,2,0>" (spaces allowed after commas, case-insensitive
** "lp"), validates it and stores it in out. LPQ_EFORMAT or LPQ_EINVAL with a message. */
int lp_format_parse(const char *text, lp_format_t *out, lpq_error_t *err);

/* Writes the canonical text of f into buf (at least LP_TEXT_MAX bytes); returns buf. */
char *lp_format_str(const lp_format_t *f, char *buf, size_t len);

/* The es and rs lpq gives weights at n bits when only the width is chosen (per-layer
** sensitivity): es 0 up to 5 bits, else 1; rs min(n-1, 3): lp<2,0,1>, lp<3,0,2>, lp<4,0,3>,
** lp<5,0,3>, lp<6..8,1,3> (measured on the bundled models: docs/SENSITIVITY.md). */
void lp_weight_shape(int n, int *es, int *rs);

/* ---- codes --------------------------------------------------------------------------- */

/* Codes are the low n bits of a uint32_t. The format must be valid (lp_format_validate). */
static inline uint32_t lp_code_mask(const lp_format_t *f) { return (1u << f->n) - 1u; }
static inline uint32_t lp_nar(const lp_format_t *f) { return 1u << (f->n - 1); }
static inline uint32_t lp_minpos(const lp_format_t *f) { (void)f; return 1u; }
static inline uint32_t lp_maxpos(const lp_format_t *f) { return (1u << (f->n - 1)) - 1u; }
/* Two's complement negation in n bits: lp_neg(c) decodes to -decode(c). */
static inline uint32_t lp_neg(const lp_format_t *f, uint32_t c) { return (0u - c) & lp_code_mask(f); }

/* The fields of one code. For zero and NaR only is_zero / is_nar are meaningful. */
typedef struct lp_fields_t {
  int is_zero, is_nar;
  int sign;       /* 1 when negative */
  int k;          /* regime value */
  int regime_len; /* bits the regime used, terminating bit included */
  uint32_t e;     /* exponent, es bits */
  uint32_t f;     /* fraction, frac_bits bits */
  int frac_bits;  /* F, may be 0 */
} lp_fields_t;

/* Splits code c (low n bits) into its fields. */
void lp_fields(const lp_format_t *f, uint32_t c, lp_fields_t *out);

/* log2|decode(c)| as an exact fixed-point number with LP_LOG_FRAC fraction bits: the
** accelerator's unified log value k*2^es + e.f - sf. Meaningless for zero and NaR. */
#define LP_LOG_FRAC 16
int64_t lp_log_fixed(const lp_format_t *f, const lp_fields_t *fl);

/* The value of code c: 0 for code 0, NaN for NaR. */
double lp_decode(const lp_format_t *f, uint32_t c);

/* The code nearest to x in the linear domain (see lp_encode_round for the exact rule);
** |x| above maxpos and +-Inf saturate to +-maxpos; tiny values go to 0 or +-minpos.
** NaN: returns LPQ_ENAN and leaves *code unchanged. */
int lp_encode(const lp_format_t *f, double x, uint32_t *code);

/* Rounding rule shared by every quantizer: between adjacent positive codes lo < hi with
** values vlo < vhi, x rounds up when x > m or (x == m and hi is even), where
** m = 0.5 * (vlo + vhi) computed in double. Between 0 and minpos the same holds with vlo = 0. */
double lp_midpoint(double vlo, double vhi);

/* ---- arithmetic for the accelerator model ---------------------------------------------- */

/* A number in the log domain: (-1)^sign * 2^(log_fixed / 2^LP_LOG_FRAC), or zero, or NaR. */
typedef struct lp_logval_t {
  int is_zero, is_nar;
  int sign;
  int64_t log_fixed;
} lp_logval_t;

/* Code c of format f in the log domain (regime, exponent and fraction as one fixed-point log). */
lp_logval_t lp_to_log(const lp_format_t *f, uint32_t c);
/* The product of two codes: signs xor, log values add (integer add, as in the LPA PE). */
lp_logval_t lp_mul_log(const lp_format_t *fa, uint32_t a, const lp_format_t *fb, uint32_t b);
/* Log-to-linear conversion: the double value of v (exact up to double rounding). */
double lp_log_to_linear(lp_logval_t v);

/* ---- the tensor quantizer --------------------------------------------------------------- */

/* A quantizer for one number format, built once and reused: no per-element log or pow.
** It works for any format whose values are a finite set symmetric about zero, so the
** baseline formats reuse it (lp_quantizer_new_values). Immutable after creation: one
** quantizer may be shared by several threads. */
typedef struct lp_quantizer_t lp_quantizer_t;

/* A quantizer for LP format f. NULL with err set when f is invalid or memory runs out. */
lp_quantizer_t *lp_quantizer_new(const lp_format_t *f, lpq_error_t *err);
/* A quantizer for the code set {0, +-values[i]}: values strictly increasing positive
** doubles, code i+1 for values[i], count <= 32767; codes packed as LP codes are (sign, magnitude
** index) in two's complement over `bits` bits. */
lp_quantizer_t *lp_quantizer_new_values(const double *values, size_t count, int bits,
                                        lpq_error_t *err);
/* The code set {0, +-fl(unit[i] * scale)} rounded as ONNX's QuantizeLinear rounds with that
** float scale: code >= i when the float quotient fl(|x| / scale) is above the midpoint of
** unit[i-1] and unit[i], or on it with i even (lp_quant_qdq.c). The int and FP8 formats'
** quantizer (lpq_numfmt_quantizer), so that an exported QDQ model computes lpq's values bit
** for bit. unit: as values above, each exact times a float (a few significant bits). */
lp_quantizer_t *lp_quantizer_new_scaled(const double *unit, size_t count, int bits, float scale,
                                        lpq_error_t *err);
void lp_quantizer_free(lp_quantizer_t **q);

/* Fake quantization: out[i] = the representable value nearest to in[i], as float. in and out
** may be the same array. Values of the format beyond float's range are clamped to +-FLT_MAX
** (and the smallest to 0 or the nearest float). A NaN in the input: LPQ_ENAN with the index
** of the first one in the message; the other elements are still quantized (NaN gives 0). */
int lp_quantize_f32(const lp_quantizer_t *q, const float *in, float *out, size_t count,
                    lpq_error_t *err);
/* The same to packed codes (uint8 needs n <= 8). */
int lp_quantize_codes_u8(const lp_quantizer_t *q, const float *in, uint8_t *out, size_t count,
                         lpq_error_t *err);
int lp_quantize_codes_u16(const lp_quantizer_t *q, const float *in, uint16_t *out, size_t count,
                          lpq_error_t *err);
/* Values of packed codes, as float (with the same clamping as lp_quantize_f32). */
void lp_dequantize_u8(const lp_quantizer_t *q, const uint8_t *codes, float *out, size_t count);
void lp_dequantize_u16(const lp_quantizer_t *q, const uint16_t *codes, float *out, size_t count);

/* The kernel lp_quantize_f32 runs for q on this CPU: "generic" (formats with n > 10 and the
** like), "scalar", "avx2" or "avx512" (LPQ_SIMD=scalar|avx2 in the environment lowers it). */
const char *lp_quantizer_kernel(const lp_quantizer_t *q);
/* The widest vector code lp's kernels run on this CPU: 0 plain C, 1 AVX2, 2 AVX-512F;
** LPQ_SIMD=scalar|avx2 in the environment lowers it (read once per process). */
int lp_simd_level(void);
/* The bytes q holds, with the lookup table it builds on its first large lp_quantize_f32 (at
** most 128 KB), for caches that bound their memory. */
size_t lp_quantizer_bytes(const lp_quantizer_t *q);
/* Bits per code and the value (double) of a code under the quantizer's format. */
int lp_quantizer_bits(const lp_quantizer_t *q);
double lp_quantizer_value(const lp_quantizer_t *q, uint32_t code);
/* How q rounds a magnitude, for exporters that redo it with other tools: returns npos, the
** number of positive magnitude codes. thr[i - 1] (i in 1..npos) is the smallest non-negative
** float that rounds to magnitude code >= i (+Inf when no finite float does), so |x| takes
** code count(thr <= |x|) and the value sign(x) * mag[code]; mag[c] (c in 0..npos) is code c's
** value as float (clamped as lp_quantize_f32 does). thr, mag may be NULL (npos + 1 entries
** for mag, npos for thr). */
uint32_t lp_quantizer_magnitudes(const lp_quantizer_t *q, float *thr, float *mag);

/* ---- the format table: LP and the baselines users compare against ------------------------ */

/* Number format families, one row each in lp/lp_formats.c (STYLE: a table of types). */
typedef enum lpq_family_t {
  LPQ_FAM_FP32 = 0,   /* "fp32": no quantization */
  LPQ_FAM_LP,         /* "lp<n,es,rs,sf>", sf may be "auto" */
  LPQ_FAM_INT,        /* "int<k>" per tensor, "int<k,ch>" per output channel; symmetric */
  LPQ_FAM_POSIT,      /* "posit<n,es>", standard posit (linear fraction), no scale */
  LPQ_FAM_AFLOAT,     /* "afloat<n,e>": AdaptivFloat, exponent bias from the tensor's max */
  LPQ_FAM_MINIFLOAT,  /* "minifloat<e,m>", "fp8_e4m3", "fp8_e5m2": IEEE-like, per-tensor scale */
  LPQ_FAM_COUNT
} lpq_family_t;

/* The arithmetic an accelerator needs for a format: accel_sim's PE families. Each format row
** names its own, so accel_sim prices any format the table has. */
typedef enum lpq_arith_t {
  LPQ_ARITH_LP = 0, /* log-domain products: an integer add (the LPA) */
  LPQ_ARITH_INT,    /* integer multipliers (systolic INT8, BitFusion, ANT's int mode) */
  LPQ_ARITH_POSIT,
  LPQ_ARITH_AFLOAT, /* AdaptivFloat */
  LPQ_ARITH_FLOAT,  /* IEEE-like: minifloat, FP8, fp32 */
  LPQ_ARITH_COUNT
} lpq_arith_t;

/* One number format with its parameters. Scale-dependent families ("auto" LP sf, INT scale,
** AdaptivFloat bias, minifloat scale) are resolved from a tensor by lpq_numfmt_calibrate. */
typedef struct lpq_numfmt_t {
  lpq_family_t family;
  int bits;        /* total bits of a code (32 for fp32) */
  int p[4];        /* family parameters: LP n,es,rs,sf; INT k; posit n,es; afloat n,e;
                      minifloat e,m */
  int auto_scale;  /* LP: sf = auto (or auto_ch). Other scaled families are always calibrated. */
  int per_channel; /* INT "ch", LP "auto_ch": one scale / sf per output channel (axis 0 of a
                      weight), each calibrated on its own slice (lpq_numfmt_calibrate_channels) */
  int sf_offset;   /* LP auto / auto_ch: added to each calibrated sf ("auto_ch+1": 1) */
  int resolved;    /* scale / sf / bias set (by calibration or explicitly) */
  double scale;    /* INT, minifloat: value multiplier; afloat: 2^bias */
} lpq_numfmt_t;

#define LPQ_NUMFMT_TEXT_MAX 40

/* Parses a format's text name: fp32, lp<8,2,2,0>, lp<6,1,3,auto>, lp<4,1,2,auto_ch> (one sf
** per output channel), lp<4,1,2,auto_ch+1> / auto-1 (an offset on the calibrated sf's),
** int<8>, int8, int<4,ch>, int4_ch, posit<8,2>, posit8 (= posit<8,2>), afloat<8,3>, fp8_e4m3,
** fp8_e5m2, fp8 (= e4m3), minifloat<e,m>. LPQ_EFORMAT / LPQ_EINVAL with a message naming the
** bad part. */
int lpq_numfmt_parse(const char *text, lpq_numfmt_t *out, lpq_error_t *err);
/* The canonical text: LP with its sf once resolved, else "auto" / "auto_ch" with its offset
** ("lp<4,1,2,auto_ch-1>"); a per-channel format keeps its per-channel text. */
char *lpq_numfmt_str(const lpq_numfmt_t *f, char *buf, size_t len);
/* The family's name: "lp", "int", ... */
const char *lpq_family_name(lpq_family_t fam);
/* The arithmetic a format needs (its row's); its name as architecture files write it ("lp",
** "int", "posit", "adaptivfloat", "float"), and back (-1 for an unknown name). */
lpq_arith_t lpq_numfmt_arith(const lpq_numfmt_t *f);
const char *lpq_arith_name(lpq_arith_t a);
int lpq_arith_from_name(const char *name);
/* The representative format of an arithmetic family at `bits` bits, for accelerator models
** given only a width: lp<b,1,b-1,0> (es 0 at 2 bits), int<b>, posit<b,2>, afloat<b,min(3,b-2)>,
** minifloat (e2 up to 4 bits, e4 up to 8, e5 above; fp32 at 32). LPQ_EINVAL at a width the
** family lacks. */
int lpq_numfmt_representative(lpq_arith_t arith, int bits, lpq_numfmt_t *out, lpq_error_t *err);

/* Resolves a format's data-dependent parameters from the values x (e.g. a weight tensor or a
** sample of activations): LP "auto" sf (the sf in a window around the log-magnitude centre
** that gives the least squared error), INT and minifloat scale (max |x| to the largest
** value), AdaptivFloat bias. A per-channel format is calibrated from x as one tensor here
** (the result holds that one scale / sf); lpq_numfmt_calibrate_channels does each channel.
** Formats without data-dependent parameters are unchanged. A NaN in x: LPQ_ENAN. */
int lpq_numfmt_calibrate(lpq_numfmt_t *f, const float *x, size_t count, lpq_error_t *err);

/* Per-channel calibration, the one path every per-channel format takes: x holds `channels`
** consecutive slices of `per` values (axis 0 of a weight); out[c] is f calibrated on slice c
** alone (for a per-tensor format every out[c] is f calibrated on the whole of x). */
int lpq_numfmt_calibrate_channels(const lpq_numfmt_t *f, const float *x, size_t channels,
                                  size_t per, lpq_numfmt_t *out, lpq_error_t *err);

/* The same, with each channel's LP "auto" centre given (the centre of its log-magnitudes that
** the sf search starts from, from lpq_numfmt_lp_centres on the same x): a caller that
** calibrates one tensor for many LP formats computes the centres once. centre NULL, or a
** format that is not LP auto_ch: exactly lpq_numfmt_calibrate_channels. */
int lpq_numfmt_calibrate_channels_at(const lpq_numfmt_t *f, const float *x, size_t channels,
                                     size_t per, const int *centre, lpq_numfmt_t *out,
                                     lpq_error_t *err);
/* centre[c] for slice c of x (channels slices of per values). A NaN in x: LPQ_ENAN. */
int lpq_numfmt_lp_centres(const float *x, size_t channels, size_t per, int *centre,
                          lpq_error_t *err);

/* A quantizer for a resolved format (fp32 is refused: nothing to quantize). */
lp_quantizer_t *lpq_numfmt_quantizer(const lpq_numfmt_t *f, lpq_error_t *err);

/* An explicit LP format as a resolved numfmt (n = 0: fp32, as genomes and tasks write it). */
void lpq_numfmt_from_lp(const lp_format_t *lf, lpq_numfmt_t *out);
/* The LP format of an LP numfmt (which must be resolved). */
lp_format_t lpq_numfmt_lp(const lpq_numfmt_t *f);

#endif
