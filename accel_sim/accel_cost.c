/* accel_sim/accel_cost.c: the analytical cost of layers on a weight-stationary systolic array.
**
** A layer is a grouped GEMM: G groups of [M x K] * [K x N]. The reduction K runs down the rows
** (a PE in a narrow mode holds products_per_cycle lanes of it: operand fusion), the outputs N
** across the columns, and the M rows of activations stream through. Each tile of
** (rows x lanes) x cols weights costs max(M, rows) stream cycles plus rows + cols - 2 of fill
** and drain. DRAM traffic streams under compute (double-buffered), so a layer takes the longer
** of its compute and memory cycles. README "accel_sim" gives every formula. */
#include "accel_sim/accel_sim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The layer as a grouped GEMM, with the element counts of its operands. */
typedef struct gemm_view_t {
  double groups, m, n, k;
  double weight_elems;     /* distinct weights (DRAM) */
  double weight_stream;    /* weights entering the array: re-read per batch for a shared gemm */
  double input_elems;      /* distinct input elements (DRAM) */
  double output_elems;
} gemm_view_t;

static gemm_view_t view_of(const accel_layer_t *l) {
  gemm_view_t v;
  if (l->kind == ACCEL_CONV) {
    v.groups = (double)l->groups;
    v.m = (double)l->batch * (double)l->out_h * (double)l->out_w;
    v.k = (double)(l->in_channels / l->groups) * (double)l->kernel_h * (double)l->kernel_w;
    v.n = (double)(l->out_channels / l->groups);
    v.weight_elems = v.groups * v.k * v.n;
    v.weight_stream = v.weight_elems;
    v.input_elems = (double)l->batch * (double)l->in_channels * (double)l->in_h * (double)l->in_w;
  } else {
    v.groups = (double)l->batch * (double)l->batch_count;
    v.m = (double)l->m;
    v.k = (double)l->k;
    v.n = (double)l->n;
    v.weight_stream = v.groups * v.k * v.n;
    /* A Gemm's weight is one tensor shared by every batch; a MatMul's second operand is an
    ** activation, distinct per batch and head. */
    v.weight_elems = l->kind == ACCEL_GEMM ? v.k * v.n : v.weight_stream;
    v.input_elems = v.groups * v.m * v.k;
  }
  v.output_elems = v.groups * v.m * v.n;
  return v;
}

double accel_channel_sf_area_mm2(const accel_t *a) {
  /* one register and one exponent adder per PE column: the output channels held at once */
  return (double)a->cols *
         (a->channel_sf_bits * a->channel_sf_flipflop_area_um2 + a->channel_sf_adder_area_um2) *
         1e-6;
}

/* The chip's area, with the per-channel sf registers when channel_sf is set. */
static void area_of(const accel_t *a, int channel_sf, accel_cost_t *out) {
  memset(out, 0, sizeof *out);
  out->pe_area_mm2 = (double)a->rows * (double)a->cols * a->pe_area_um2 * 1e-6;
  out->decoder_area_mm2 = (double)(a->rows + a->cols) * a->decoder_area_um2 * 1e-6;
  out->channel_sf_area_mm2 = channel_sf ? accel_channel_sf_area_mm2(a) : 0;
  out->buffer_area_mm2 =
      (a->weight_buffer_kb + a->input_buffer_kb + a->output_buffer_kb) * a->sram_mm2_per_kb;
  out->compute_area_mm2 = out->pe_area_mm2 + out->decoder_area_mm2 + out->channel_sf_area_mm2;
  out->area_mm2 = out->compute_area_mm2 + out->buffer_area_mm2;
}

void accel_area(const accel_t *a, accel_cost_t *out) { area_of(a, 0, out); }

int accel_layer_per_channel(const accel_layer_t *l, const accel_layer_formats_t *f) {
  return l->kind != ACCEL_MATMUL && f->weight.family == LPQ_ARITH_LP && f->weight.has_fmt &&
         f->weight.fmt.family == LPQ_FAM_LP && f->weight.fmt.per_channel;
}

/* The PE mode for operand widths wb, ab: the narrowest mode holding both. Wider operands run
** in the widest mode, split into ceil(bits / mode bits) slices each (a product of slices per
** pass), which divides throughput and multiplies energy. */
static void pick_mode(const accel_t *a, int wb, int ab, int *mode_bits, double *ppc,
                      double *pj) {
  int need = wb > ab ? wb : ab;
  for (size_t i = 0; i < a->nmodes; i++)
    if (a->modes[i].bits >= need) {
      *mode_bits = a->modes[i].bits;
      *ppc = a->modes[i].products_per_cycle;
      *pj = a->modes[i].pj_per_product;
      return;
    }
  const accel_mode_t *w = &a->modes[a->nmodes - 1];
  double passes = ceil((double)wb / w->bits) * ceil((double)ab / w->bits);
  *mode_bits = w->bits;
  *ppc = w->products_per_cycle / passes;
  *pj = w->pj_per_product * passes;
}

/* One layer; chip_sf: the chip has the sf registers (some layer of the network needs them), so
** their area leaks during this layer too. */
static int cost_layer(const accel_t *a, const accel_layer_t *l, const accel_layer_formats_t *f,
                      int chip_sf, accel_layer_cost_t *out, lpq_error_t *err) {
  int rc = accel_layer_validate(l, err);
  if (rc != 0)
    return rc;
  if (f->weight.family != a->family || f->act.family != a->family) {
    char wb[ACCEL_FORMAT_TEXT_MAX], ab[ACCEL_FORMAT_TEXT_MAX];
    return lpq_errorf(err, LPQ_EUNSUP,
                      "layer '%s': formats %s / %s are not %s formats, which %s computes",
                      l->name, accel_format_str(&f->weight, wb, sizeof wb),
                      accel_format_str(&f->act, ab, sizeof ab), lpq_arith_name(a->family),
                      a->name);
  }
  if (f->weight.bits < 1 || f->act.bits < 1 || f->weight.bits > 64 || f->act.bits > 64)
    return lpq_errorf(err, LPQ_EINVAL, "layer '%s': format widths %d / %d out of range 1..64",
                      l->name, f->weight.bits, f->act.bits);
  const int per_channel = accel_layer_per_channel(l, f);
  if (per_channel && a->channel_sf_bits == 0) {
    char wb[ACCEL_FORMAT_TEXT_MAX];
    return lpq_errorf(err, LPQ_EUNSUP,
                      "layer '%s': weights %s have one sf per output channel, but %s has no "
                      "per-channel sf registers (the architecture's channel_sf)",
                      l->name, accel_format_str(&f->weight, wb, sizeof wb), a->name);
  }
  const gemm_view_t v = view_of(l);
  /* A MatMul's second operand is an activation: it has the activation format. */
  const int wbits = l->kind == ACCEL_MATMUL ? f->act.bits : f->weight.bits;
  const int abits = f->act.bits;
  double ppc, pj;
  memset(out, 0, sizeof *out);
  pick_mode(a, wbits, abits, &out->mode_bits, &ppc, &pj);
  out->products_per_cycle = ppc;
  out->macs = accel_layer_macs(l);

  /* A narrow mode gives each PE ppc lanes of the reduction; a wide mode (ppc < 1) fuses
  ** 1/ppc PEs into one product as square groups (2x2 PEs for 8 bits on 4-bit PEs). */
  const double rows = (double)a->rows, cols = (double)a->cols;
  double lanes = ppc >= 1 ? floor(rows * ppc) : floor(rows * sqrt(ppc));
  double out_cols = ppc >= 1 ? cols : floor(cols * sqrt(ppc));
  if (lanes < 1)
    lanes = 1;
  if (out_cols < 1)
    out_cols = 1;
  const double k_tiles = ceil(v.k / lanes), n_tiles = ceil(v.n / out_cols);
  const double tiles = v.groups * k_tiles * n_tiles;
  out->compute_cycles = tiles * (fmax(v.m, rows) + rows + cols - 2);

  /* DRAM: each operand once when one of them fits its buffer; otherwise the cheaper loop
  ** order re-reads the other operand once per buffer-full. Outputs are written once. */
  /* Per-channel sf: one value of channel_sf_bits per output channel travels with the weights
  ** (a Gemm's weight, and so its sf's, is shared by every batch). */
  const double sf_bytes_each = ceil(a->channel_sf_bits / 8.0);
  const double sf_channels = l->kind == ACCEL_CONV ? v.groups * v.n : v.n;
  out->per_channel = per_channel;
  out->channel_sf_bytes = per_channel ? sf_channels * sf_bytes_each : 0;
  const double w_bytes = v.weight_elems * wbits / 8.0 + out->channel_sf_bytes;
  const double i_bytes = v.input_elems * abits / 8.0;
  const double o_bytes = v.output_elems * abits / 8.0;
  const double wbuf = a->weight_buffer_kb * 1024, ibuf = a->input_buffer_kb * 1024;
  double dram = w_bytes + i_bytes;
  if (w_bytes > wbuf && i_bytes > ibuf)
    dram = fmin(w_bytes + i_bytes * ceil(w_bytes / wbuf), i_bytes + w_bytes * ceil(i_bytes / ibuf));
  out->dram_bytes = dram + o_bytes;
  const double bytes_per_cycle = a->dram_gb_per_s * 1e9 / (a->clock_mhz * 1e6);
  out->memory_cycles = out->dram_bytes / bytes_per_cycle;
  out->memory_bound = out->memory_cycles > out->compute_cycles;
  out->cycles = fmax(out->compute_cycles, out->memory_cycles);
  out->latency_s = out->cycles / (a->clock_mhz * 1e6);
  out->utilization = (double)out->macs / (out->cycles * rows * cols * ppc);

  /* Buffers: weights into the array, inputs once per column tile, outputs written, and every
  ** DRAM byte written on arrival; partial sums written and read back between reduction tiles
  ** in the accumulator buffer at the foot of the columns. */
  const double in_stream = v.groups * v.m * v.k * n_tiles;
  out->psum_bytes = v.output_elems * (a->accumulator_bits / 8.0) * (2 * k_tiles - 1);
  /* the sf registers of a column tile are loaded once per group and tile of outputs */
  const double sf_loads = per_channel ? v.groups * v.n * sf_bytes_each : 0;
  out->sram_bytes = v.weight_stream * wbits / 8.0 + sf_loads + in_stream * abits / 8.0 +
                    o_bytes + out->dram_bytes;

  out->compute_pj = (double)out->macs * pj;
  out->decode_pj = a->decode_pj_per_operand * (v.weight_stream + in_stream);
  out->sram_pj = out->sram_bytes * a->sram_pj_per_byte;
  out->psum_pj = out->psum_bytes * a->psum_pj_per_byte;
  out->dram_pj = out->dram_bytes * a->dram_pj_per_byte;
  /* Per-channel sf: each finished output reads its column's register and adds it to the
  ** result's exponent, once per output element (not per product, not per partial sum). */
  out->channel_sf_pj =
      per_channel ? v.output_elems * (a->channel_sf_read_pj + a->channel_sf_add_pj) : 0;
  accel_cost_t area;
  area_of(a, chip_sf || per_channel, &area);
  out->static_pj = a->leakage_mw_per_mm2 * area.area_mm2 * 1e-3 * out->latency_s * 1e12;
  out->energy_pj = out->compute_pj + out->decode_pj + out->sram_pj + out->psum_pj + out->dram_pj +
                  out->channel_sf_pj + out->static_pj;
  return 0;
}

int accel_cost_layer(const accel_t *a, const accel_layer_t *l, const accel_layer_formats_t *f,
                     accel_layer_cost_t *out, lpq_error_t *err) {
  if (a == NULL || l == NULL || f == NULL || out == NULL)
    return lpq_errorf(err, LPQ_EINVAL, "accel_cost_layer: a NULL argument");
  return cost_layer(a, l, f, 0, out, err);
}

int accel_cost_network(const accel_t *a, const accel_network_t *net,
                       const accel_layer_formats_t *formats, accel_layer_cost_t *per_layer,
                       accel_cost_t *total, lpq_error_t *err) {
  if (a == NULL || net == NULL || formats == NULL || total == NULL)
    return lpq_errorf(err, LPQ_EINVAL, "accel_cost_network: a NULL argument");
  /* The chip has the sf registers when any layer needs them. */
  size_t per_channel = 0;
  for (size_t i = 0; i < net->count; i++)
    per_channel += (size_t)accel_layer_per_channel(&net->layers[i], &formats[i]);
  area_of(a, per_channel > 0, total);
  total->per_channel_layers = per_channel;
  for (size_t i = 0; i < net->count; i++) {
    accel_layer_cost_t c;
    int rc = cost_layer(a, &net->layers[i], &formats[i], per_channel > 0, &c, err);
    if (rc != 0)
      return rc;
    if (per_layer != NULL)
      per_layer[i] = c;
    total->macs += c.macs;
    total->cycles += c.cycles;
    total->latency_s += c.latency_s;
    total->compute_pj += c.compute_pj;
    total->decode_pj += c.decode_pj;
    total->sram_pj += c.sram_pj;
    total->psum_pj += c.psum_pj;
    total->psum_bytes += c.psum_bytes;
    total->dram_pj += c.dram_pj;
    total->static_pj += c.static_pj;
    total->channel_sf_pj += c.channel_sf_pj;
    total->channel_sf_bytes += c.channel_sf_bytes;
    total->energy_pj += c.energy_pj;
    total->sram_bytes += c.sram_bytes;
    total->dram_bytes += c.dram_bytes;
  }
  total->edp_js = total->energy_pj * 1e-12 * total->latency_s;
  total->gops = total->latency_s > 0 ? 2.0 * (double)total->macs / total->latency_s * 1e-9 : 0;
  total->gops_per_mm2 = total->gops / total->compute_area_mm2;
  return 0;
}

/* Layers of a built-in network are few (under 100); bigger ones take the heap. */
#define STACK_LAYERS 256

int accel_cost_with_mix(const accel_t *a, const accel_network_t *net, accel_cost_t *total,
                        lpq_error_t *err) {
  const accel_mix_t *mix = accel_find_mix(a, net->name);
  if (mix == NULL)
    return lpq_errorf(err, LPQ_ENOTFOUND, "%s: no mix for network '%s' and no default mix",
                      a->name, net->name);
  accel_layer_formats_t stack[STACK_LAYERS], *f = stack;
  if (net->count > STACK_LAYERS && (f = malloc(net->count * sizeof *f)) == NULL)
    return lpq_errorf(err, LPQ_ENOMEM, "%s: out of memory", net->name);
  int rc = accel_mix_formats(net, mix->share, a->family, f, err);
  if (rc == 0)
    rc = accel_cost_network(a, net, f, NULL, total, err);
  if (f != stack)
    free(f);
  return rc;
}
