/*
** accel_sim/accel_sim.h: the LP accelerator (LPA) cost model, the baseline accelerators
** (INT8 systolic array, BitFusion, ANT, AdaptivFloat, posit) and a bit-level model of the LPA
** processing element (DESIGN section 4; docs/accel_sim.md). It includes engine/ (a model's
** layers from its graph), common/ and lp/; worker/ and `lpq accel` use it.
**
** A network is a plain list of layer descriptors (Conv, Gemm, MatMul shapes) with a weight and
** an activation format per layer. An architecture file (JSON) describes each accelerator: a
** weight-stationary systolic array of rows x cols PEs, the precision modes its PEs fuse into
** (products per PE per cycle and energy per product), on-chip buffers, DRAM bandwidth and the
** energy and area constants, each with its published source. accel_cost_network() gives the
** cycles, latency, energy, area and EDP of one candidate in a few microseconds.
*/
#ifndef LPQ_ACCEL_SIM_H
#define LPQ_ACCEL_SIM_H

#include "engine/engine.h"
#include "lp/lp.h"

#include <stddef.h>
#include <stdint.h>

/* ---- layers and networks ----------------------------------------------------------------- */

typedef enum accel_layer_kind_t {
  ACCEL_CONV = 0,   /* weights [out, in/groups, kh, kw] over an NCHW input */
  ACCEL_GEMM = 1,   /* activations [M, K] times weights [K, N] */
  ACCEL_MATMUL = 2, /* activations times activations (attention): both operands use act */
} accel_layer_kind_t;

#define ACCEL_NAME_MAX 48

/* One quantizable layer. Conv fields are used for ACCEL_CONV, m/n/k/batch_count otherwise. */
typedef struct accel_layer_t {
  char name[ACCEL_NAME_MAX];
  accel_layer_kind_t kind;
  size_t batch; /* images (conv) or a multiplier of batch_count (gemm/matmul); >= 1 */
  /* conv */
  size_t in_channels, out_channels, groups;
  size_t in_h, in_w, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w;
  size_t dilation_h, dilation_w, out_h, out_w;
  /* gemm / matmul: batch * batch_count independent [m x k] * [k x n] products */
  size_t m, n, k, batch_count;
} accel_layer_t;

/* 0 when l is consistent (positive sizes, channels divisible by groups, conv output size
** matching the input, kernel, stride, pad and dilation); LPQ_EINVAL naming the field. */
int accel_layer_validate(const accel_layer_t *l, lpq_error_t *err);
/* Multiply-accumulates of one layer (all batches, groups and heads). */
uint64_t accel_layer_macs(const accel_layer_t *l);

typedef struct accel_network_t {
  char name[ACCEL_NAME_MAX];
  size_t count;
  accel_layer_t *layers; /* owned */
} accel_network_t;

/* A built-in shape table at 224x224, batch 1, torchvision layouts: "resnet50" (53 convs and
** the fc) or "vit_b16" (patch embedding, 12 blocks of qkv, q.k^T, attn.v, out-proj, fc1, fc2,
** and the head). NULL with err set (LPQ_ENOTFOUND) for another name. */
accel_network_t *accel_network_builtin(const char *name, lpq_error_t *err);
/* An empty network of count zeroed layers to fill in (e.g. from an ONNX graph). */
accel_network_t *accel_network_new(const char *name, size_t count, lpq_error_t *err);
void accel_network_free(accel_network_t **net);
/* Names of the built-in networks, NULL-terminated. */
extern const char *const accel_builtin_networks[];

/* ---- number formats ------------------------------------------------------------------------ */

/* An operand's format as the cost model sees it: the arithmetic family (lp/'s format table
** says which for every format) and the width, the LP parameters for the LPA's PE model, and the
** format itself for people (lp/'s text syntax: the one syntax of formats everywhere). */
typedef struct accel_format_t {
  lpq_arith_t family;
  int bits;
  lp_format_t lp;   /* when family is LPQ_ARITH_LP (bits == lp.n) */
  int has_fmt;      /* fmt holds the exact format (a config's, or the family's representative) */
  lpq_numfmt_t fmt;
} accel_format_t;

#define ACCEL_FORMAT_TEXT_MAX LPQ_NUMFMT_TEXT_MAX

/* The format's text in lp/'s syntax ("lp<4,1,3,0>", "int<8>", "afloat<8,3>", "fp32"). */
char *accel_format_str(const accel_format_t *f, char *buf, size_t len);
/* The family's representative format at `bits` bits (lpq_numfmt_representative: for LP
** lp<bits,1,bits-1,0>, es 0 at 2 bits): what the cost model needs is the family and width. */
accel_format_t accel_format_make(lpq_arith_t fam, int bits);

typedef struct accel_layer_formats_t {
  accel_format_t weight, act;
} accel_layer_formats_t;

/* Mixed precision by shares of layers: share[0], share[1], share[2] are the shares of layers
** at 2, 4 and 8 bits (non-negative, sum 1 within 1e-6). Layer counts are the largest-remainder
** rounding of share * count, and each width is spread evenly over the depth (layer i takes the
** width whose quota is furthest behind), so MAC shares follow layer shares. Weights and
** activations get the same width. out has net->count entries. */
int accel_mix_formats(const accel_network_t *net, const double share[3], lpq_arith_t fam,
                      accel_layer_formats_t *out, lpq_error_t *err);
/* Every layer at `bits` bits of family fam. */
void accel_uniform_formats(const accel_network_t *net, lpq_arith_t fam, int bits,
                           accel_layer_formats_t *out);

/* ---- architectures ---------------------------------------------------------------------------- */

#define ACCEL_MAX_MODES 6
#define ACCEL_MAX_MIXES 8

/* A precision mode of the PE: operands up to `bits` wide. */
typedef struct accel_mode_t {
  int bits;
  double products_per_cycle; /* per PE; < 1 when several PEs fuse into one product */
  double pj_per_product;     /* PE energy of one product and its accumulation */
} accel_mode_t;

/* The stated mixed-precision assumption of an accelerator on one network (README). */
typedef struct accel_mix_t {
  char network[ACCEL_NAME_MAX];
  double share[3]; /* layers at 2, 4, 8 bits */
} accel_mix_t;

/* One accelerator. Every field comes from the architecture file. */
typedef struct accel_t {
  char name[ACCEL_NAME_MAX];
  lpq_arith_t family; /* the formats its PEs compute */
  size_t rows, cols;     /* PE array; rows hold the reduction, cols the outputs */
  double clock_mhz;
  size_t nmodes;
  accel_mode_t modes[ACCEL_MAX_MODES]; /* ascending bits */
  double pe_area_um2;                  /* one PE */
  double decoder_area_um2;             /* one operand decoder; one per row and per column */
  double decode_pj_per_operand;        /* each operand entering the array */
  double leakage_mw_per_mm2;           /* static power of the whole chip area */
  /* memory (the file's "memory" object, which an accelerator may override) */
  double weight_buffer_kb, input_buffer_kb, output_buffer_kb;
  double sram_mm2_per_kb, sram_pj_per_byte;
  double psum_pj_per_byte; /* partial sums in the accumulator buffer at the array's foot */
  double dram_gb_per_s, dram_pj_per_byte;
  int accumulator_bits; /* partial sums in the output buffer */
  /* Per-channel LP weight sf (the file's optional "channel_sf" object; bits 0: none): one
  ** register of channel_sf_bits per PE column holds the column's sf, and an adder in the
  ** column's output path adds it to each result's exponent (docs/accel_sim.md). */
  int channel_sf_bits;
  double channel_sf_flipflop_area_um2; /* one register bit */
  double channel_sf_adder_area_um2;    /* the column's exponent adder */
  double channel_sf_read_pj;           /* register read, per output element */
  double channel_sf_add_pj;            /* exponent add, per output element */
  size_t nmixes;
  accel_mix_t mixes[ACCEL_MAX_MIXES];
} accel_t;

/* The accelerators of one architecture file, in file order. The first is the LPA (the one a
** candidate's formats run on); the rest are baselines. */
typedef struct accel_arch_t {
  char process[ACCEL_NAME_MAX];
  char reference[ACCEL_NAME_MAX]; /* the accelerator results are normalised to */
  size_t count;
  accel_t *accels; /* owned */
} accel_arch_t;

/* Parses an architecture file's text. origin names it in messages ("lpa.json: accelerators[2]
** (ANT): modes[1].bits = 3 ..."). NULL with err set (LPQ_EFORMAT, LPQ_EINVAL) on bad input. */
accel_arch_t *accel_arch_parse(const char *json_text, const char *origin, lpq_error_t *err);
accel_arch_t *accel_arch_load(const char *path, lpq_error_t *err);
/* The built-in architecture: accel_sim/arch/default.json, compiled in. */
accel_arch_t *accel_arch_default(lpq_error_t *err);
extern const char accel_default_arch_json[];
void accel_arch_free(accel_arch_t **arch);
/* The accelerator of that name (case-insensitive), NULL when absent. */
const accel_t *accel_arch_find(const accel_arch_t *arch, const char *name);
/* The accelerator's stated mix for a network ("default" row when the network has none);
** NULL when neither exists. */
const accel_mix_t *accel_find_mix(const accel_t *a, const char *network);

/* ---- the cost model ---------------------------------------------------------------------------- */

typedef struct accel_layer_cost_t {
  uint64_t macs;
  int mode_bits;        /* the PE mode the layer ran in */
  double products_per_cycle;
  double compute_cycles; /* tiles x (stream + fill/drain) */
  double memory_cycles;  /* DRAM bytes / bandwidth */
  double cycles;         /* max of the two: buffers are double-buffered */
  int memory_bound;
  double utilization; /* macs / (cycles x peak products) */
  double sram_bytes, psum_bytes, dram_bytes;
  double compute_pj, decode_pj, sram_pj, psum_pj, dram_pj, static_pj, energy_pj;
  double latency_s;
  int per_channel;        /* weights with per-channel LP sf: the column registers are used */
  double channel_sf_pj;   /* their register reads and exponent adds (in energy_pj) */
  double channel_sf_bytes; /* the sf values from DRAM (in dram_bytes and sram_bytes) */
} accel_layer_cost_t;

typedef struct accel_cost_t {
  uint64_t macs;
  double cycles, latency_s;
  double compute_pj, decode_pj, sram_pj, psum_pj, dram_pj, static_pj, energy_pj;
  double channel_sf_pj;                /* per-channel sf register reads and adds */
  double channel_sf_bytes;             /* their sf values (in dram_bytes) */
  size_t per_channel_layers;           /* layers whose weights have per-channel LP sf */
  double edp_js;                       /* energy (J) x latency (s) */
  double sram_bytes, psum_bytes, dram_bytes;
  double pe_area_mm2, decoder_area_mm2, buffer_area_mm2, area_mm2;
  double channel_sf_area_mm2;          /* sf registers and adders, when a layer needs them */
  double compute_area_mm2;             /* PEs, decoders (and sf registers and adders) */
  double gops;                         /* 2 x macs / latency, in 1e9 ops per second */
  double gops_per_mm2;                 /* gops / compute area */
} accel_cost_t;

/* Area of an accelerator alone (fills the area fields of out, zeroes the rest), without the
** per-channel sf registers; accel_channel_sf_area_mm2 is what they add (cols registers of
** channel_sf_bits flip-flops and cols exponent adders; 0 when a has none). */
void accel_area(const accel_t *a, accel_cost_t *out);
double accel_channel_sf_area_mm2(const accel_t *a);
/* 1 when f's weight format is LP with one sf per output channel (a MatMul's second operand is
** an activation: never). */
int accel_layer_per_channel(const accel_layer_t *l, const accel_layer_formats_t *f);

/* The cost of one layer with formats f on accelerator a. LPQ_EINVAL for a bad layer,
** LPQ_EUNSUP when a format's family is not a's, or when the weights have per-channel LP sf
** and a has no channel_sf registers (message names layer and accelerator). Per-channel sf
** adds, per output element, one register read and one exponent add (channel_sf_pj), the sf
** bytes to DRAM and SRAM traffic, and the registers' area to the leakage; no cycles when
** compute-bound (the add is pipelined in the column's output path). A per-tensor layer costs
** as before. */
int accel_cost_layer(const accel_t *a, const accel_layer_t *l, const accel_layer_formats_t *f,
                     accel_layer_cost_t *out, lpq_error_t *err);
/* The cost of a whole network: formats has net->count entries; per_layer (net->count entries)
** may be NULL. Fast: no allocation, a few microseconds for ResNet-50. When any layer has
** per-channel LP weights the chip has the sf registers: their area is in total's (and in every
** layer's leakage); otherwise the cost is the per-tensor model's exactly. */
int accel_cost_network(const accel_t *a, const accel_network_t *net,
                       const accel_layer_formats_t *formats, accel_layer_cost_t *per_layer,
                       accel_cost_t *total, lpq_error_t *err);
/* A network on accelerator a with a's own stated mix for the network (accel_find_mix). */
int accel_cost_with_mix(const accel_t *a, const accel_network_t *net, accel_cost_t *total,
                        lpq_error_t *err);

/* ---- the bit-level PE model --------------------------------------------------------------------- */

/* The LPA datapath at finite precision: operands decoded to sign and fixed-point log
** (lp_to_log), multiply as an integer add of logs, log-to-linear by a 2^frac LUT of
** 2^lut_index_bits entries of lut_frac_bits fraction bits (the fraction of the log sum is
** rounded to the LUT's index), a shift into a two's complement accumulator of acc_bits bits
** whose least significant bit weighs 2^acc_lsb_log2 (products below it truncate towards
** zero), saturating. README "bit-level PE model" derives the error bound. */
typedef struct accel_pe_config_t {
  int lut_index_bits; /* 1..12 */
  int lut_frac_bits;  /* 1..30 */
  int acc_bits;       /* 8..62 */
} accel_pe_config_t;

/* The LPA defaults: 8-bit LUT index, 12-bit LUT entries, 32-bit accumulator. */
accel_pe_config_t accel_pe_default_config(void);

typedef struct accel_pe_t accel_pe_t;
accel_pe_t *accel_pe_new(const accel_pe_config_t *cfg, lpq_error_t *err);
void accel_pe_free(accel_pe_t **pe);

/* The accumulator's lsb exponent a compiler would choose for a dot product of length k over
** formats fw and fa: the largest product (maxpos x maxpos) times k must fit. */
int accel_pe_acc_lsb(const accel_pe_t *pe, const lp_format_t *fw, const lp_format_t *fa,
                     size_t k);
/* The same from a known bound on |product| (the layer's largest weight times its calibrated
** largest activation): finer, so wide-range formats lose less below the lsb; an activation
** beyond the calibration may then saturate (counted in the stats). */
int accel_pe_acc_lsb_for_max(const accel_pe_t *pe, double max_abs_product, size_t k);

typedef struct accel_pe_stats_t {
  uint64_t products;   /* non-zero products */
  uint64_t saturated;  /* accumulations that hit the accumulator's range */
  uint64_t truncated;  /* products that lost bits below the accumulator's lsb */
} accel_pe_stats_t;

/* out[m x n] = act[m x k] * weight[k x n] through the datapath. act and weight are LP codes
** (low bits of uint16) of formats fa and fw; acc_lsb_log2 as accel_pe_acc_lsb. stats may be
** NULL. LPQ_EINVAL for bad formats or a NaR code (message names its index). */
int accel_pe_gemm(const accel_pe_t *pe, const lp_format_t *fa, const uint16_t *act,
                  const lp_format_t *fw, const uint16_t *weight, size_t m, size_t n, size_t k,
                  int acc_lsb_log2, double *out, accel_pe_stats_t *stats, lpq_error_t *err);
/* A conv layer (l->kind == ACCEL_CONV, batch images NCHW, weights OIHW as codes) through the
** same datapath: im2col then accel_pe_gemm per group. out is [batch, out, oh, ow]. */
int accel_pe_conv(const accel_pe_t *pe, const accel_layer_t *l, const lp_format_t *fa,
                  const uint16_t *input, const lp_format_t *fw, const uint16_t *weight,
                  double *out, accel_pe_stats_t *stats, lpq_error_t *err);

/* Per-channel weight sf (lp<n,es,rs,auto_ch>): column j's weights are fw's codes under sf
** sf_w[j] (LP_SF_MIN..LP_SF_MAX; fw.sf itself is not used: the weight decoder runs at sf 0).
** The products and the accumulator are those of sf 0; the column's sf register is added to its
** results' exponent in the output path, out[i][j] = acc * 2^(acc_lsb_log2 - sf_w[j]): an
** integer add, no rescaling. acc_lsb_log2 is the accumulator's own, for fw at sf 0
** (accel_pe_acc_lsb), so every column has the same headroom. Column j equals, bit for bit,
** accel_pe_gemm with fw at sf_w[j] and lsb acc_lsb_log2 - sf_w[j]. */
int accel_pe_gemm_channels(const accel_pe_t *pe, const lp_format_t *fa, const uint16_t *act,
                           const lp_format_t *fw, const uint16_t *weight, const int *sf_w,
                           size_t m, size_t n, size_t k, int acc_lsb_log2, double *out,
                           accel_pe_stats_t *stats, lpq_error_t *err);
/* accel_pe_conv with output channel c's weights under sf sf_w[c] (out_channels entries), as
** accel_pe_gemm_channels; the accumulator's lsb is accel_pe_acc_lsb for fw at sf 0. */
int accel_pe_conv_channels(const accel_pe_t *pe, const accel_layer_t *l, const lp_format_t *fa,
                           const uint16_t *input, const lp_format_t *fw, const uint16_t *weight,
                           const int *sf_w, double *out, accel_pe_stats_t *stats,
                           lpq_error_t *err);

/* ---- a model's layers ------------------------------------------------------------------- */

/* The quantizable layers of a loaded model (Conv, Gemm, MatMul with a weight) as descriptors
** for one inference (batch 1: gemm rows are divided by the graph's batch). Layers that are not
** quantizable (attention's activation-by-activation MatMuls) are not part of the cost. */
accel_network_t *accel_network_from_graph(const lpq_graph_t *g, const char *name,
                                          lpq_error_t *err);
/* A config format as the cost model's (LP keeps its parameters; fp32 and minifloats are
** "float" of their width). LPQ_EINVAL for an unknown family. */
int accel_format_from_numfmt(const lpq_numfmt_t *f, accel_format_t *out);
/* Makes formats computable on accelerator a: an operand of another family (e.g. fp32 on the
** LPA) becomes a's family at min(bits, 16), sliced over a's widest mode. */
void accel_formats_on(const accel_t *a, accel_layer_formats_t *f, size_t count);

#endif
