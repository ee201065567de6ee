/* tests/test_accel_channel_sf.c: the LPA cost of per-channel LP weight sf (docs/accel_sim.md
** "Per-channel sf"): a per-channel layer costs exactly the modelled registers, adds and sf
** bytes more than the same layer per tensor; per-tensor costs are unchanged. */
#include "accel_sim/accel_sim.h"

#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

static accel_format_t fmt(const char *text) {
  lpq_numfmt_t nf;
  lpq_error_t err;
  cr_assert_eq(lpq_numfmt_parse(text, &nf, &err), 0, "%s: %s", text, err.msg);
  accel_format_t f;
  cr_assert_eq(accel_format_from_numfmt(&nf, &f), 0, "%s", text);
  return f;
}

static accel_arch_t *arch_or_die(void) {
  lpq_error_t err;
  accel_arch_t *arch = accel_arch_default(&err);
  cr_assert_not_null(arch, "%s", err.msg);
  return arch;
}

/* A ResNet-style 3x3 conv, 64 -> 64 channels on 56x56: compute-bound on the LPA. */
static accel_layer_t known_conv(void) {
  accel_layer_t l = {.name = "conv3x3", .kind = ACCEL_CONV, .batch = 1, .in_channels = 64,
                     .out_channels = 64, .groups = 1, .in_h = 56, .in_w = 56, .kernel_h = 3,
                     .kernel_w = 3, .stride_h = 1, .stride_w = 1, .pad_h = 1, .pad_w = 1,
                     .dilation_h = 1, .dilation_w = 1, .out_h = 56, .out_w = 56};
  return l;
}

static int near(double a, double b) { return fabs(a - b) <= 1e-9 * fmax(fabs(a), fabs(b)); }

Test(accel_channel_sf, default_lpa_has_8_bit_registers_per_column) {
  accel_arch_t *arch = arch_or_die();
  const accel_t *lpa = &arch->accels[0];
  cr_assert_eq(lpa->channel_sf_bits, 8, "sf spans -64..64: 8 bits of two's complement");
  /* 16 columns x (8 flip-flops of 4.5 um2 + a 14 um2 adder) = 800 um2 */
  cr_expect(near(accel_channel_sf_area_mm2(lpa), 16 * (8 * 4.5 + 14) * 1e-6), "%g mm2",
            accel_channel_sf_area_mm2(lpa));
  cr_expect(near(lpa->channel_sf_read_pj + lpa->channel_sf_add_pj, 0.03));
  for (size_t i = 1; i < arch->count; i++) /* only the LPA has them */
    cr_expect_eq(arch->accels[i].channel_sf_bits, 0, "%s", arch->accels[i].name);
  accel_arch_free(&arch);
}

Test(accel_channel_sf, per_channel_layer_costs_exactly_the_modelled_amount_more) {
  accel_arch_t *arch = arch_or_die();
  const accel_t *lpa = &arch->accels[0];
  const accel_layer_t l = known_conv();
  const accel_layer_formats_t pt = {fmt("lp<4,1,2,auto>"), fmt("lp<8,1,3,auto>")};
  const accel_layer_formats_t ch = {fmt("lp<4,1,2,auto_ch>"), fmt("lp<8,1,3,auto>")};
  cr_assert(!accel_layer_per_channel(&l, &pt) && accel_layer_per_channel(&l, &ch));
  accel_layer_cost_t a, b;
  lpq_error_t err;
  cr_assert_eq(accel_cost_layer(lpa, &l, &pt, &a, &err), 0, "%s", err.msg);
  cr_assert_eq(accel_cost_layer(lpa, &l, &ch, &b, &err), 0, "%s", err.msg);
  cr_assert(!a.memory_bound && !b.memory_bound);
  /* No cycles: the exponent add is pipelined in the column's output path. */
  cr_expect_eq(b.cycles, a.cycles);
  cr_expect_eq(b.compute_pj, a.compute_pj);
  cr_expect_eq(b.decode_pj, a.decode_pj);
  cr_expect_eq(b.psum_pj, a.psum_pj);
  cr_expect_eq(a.channel_sf_pj, 0);
  /* One register read and one add per output element: 64 x 56 x 56 outputs x 0.03 pJ. */
  const double outputs = 64.0 * 56 * 56;
  cr_expect(near(b.channel_sf_pj, outputs * 0.03), "%g pJ", b.channel_sf_pj);
  /* 64 sf bytes from DRAM, written to and read from SRAM once. */
  cr_expect(near(b.channel_sf_bytes, 64));
  cr_expect(near(b.dram_bytes - a.dram_bytes, 64));
  cr_expect(near(b.sram_bytes - a.sram_bytes, 128));
  cr_expect(near(b.dram_pj - a.dram_pj, 64 * lpa->dram_pj_per_byte));
  cr_expect(near(b.sram_pj - a.sram_pj, 128 * lpa->sram_pj_per_byte));
  /* The registers' area leaks for the layer's latency. */
  const double area = accel_channel_sf_area_mm2(lpa);
  const double leak = lpa->leakage_mw_per_mm2 * area * 1e-3 * a.latency_s * 1e12;
  cr_expect(near(b.static_pj - a.static_pj, leak), "%g vs %g", b.static_pj - a.static_pj, leak);
  const double want = outputs * 0.03 + 64 * lpa->dram_pj_per_byte +
                      128 * lpa->sram_pj_per_byte + leak;
  cr_expect(near(b.energy_pj - a.energy_pj, want), "energy +%g pJ, modelled +%g",
            b.energy_pj - a.energy_pj, want);
  cr_log_info("conv3x3 64->64 56x56: per tensor %.1f pJ, per channel +%.1f pJ (%.3f%%)",
              a.energy_pj, b.energy_pj - a.energy_pj,
              100 * (b.energy_pj - a.energy_pj) / a.energy_pj);
  accel_arch_free(&arch);
}

/* The sf registers are per output column: a Gemm's N outputs per row each get one add, and a
** MatMul's second operand is an activation (never per channel). */
Test(accel_channel_sf, gemm_and_matmul) {
  accel_arch_t *arch = arch_or_die();
  const accel_t *lpa = &arch->accels[0];
  accel_layer_t g = {.name = "fc", .kind = ACCEL_GEMM, .batch = 1, .batch_count = 1, .m = 10,
                     .n = 1000, .k = 512};
  const accel_layer_formats_t pt = {fmt("lp<4,1,2,auto>"), fmt("lp<4,1,2,auto>")};
  const accel_layer_formats_t ch = {fmt("lp<4,1,2,auto_ch>"), fmt("lp<4,1,2,auto>")};
  accel_layer_cost_t a, b;
  lpq_error_t err;
  cr_assert_eq(accel_cost_layer(lpa, &g, &pt, &a, &err), 0, "%s", err.msg);
  cr_assert_eq(accel_cost_layer(lpa, &g, &ch, &b, &err), 0, "%s", err.msg);
  cr_expect(near(b.channel_sf_pj, 10 * 1000 * 0.03), "%g", b.channel_sf_pj);
  cr_expect(near(b.channel_sf_bytes, 1000));
  g.kind = ACCEL_MATMUL;
  cr_assert(!accel_layer_per_channel(&g, &ch));
  cr_assert_eq(accel_cost_layer(lpa, &g, &ch, &b, &err), 0, "%s", err.msg);
  cr_assert_eq(accel_cost_layer(lpa, &g, &pt, &a, &err), 0, "%s", err.msg);
  cr_expect(memcmp(&a, &b, sizeof a) == 0, "a MatMul has no per-channel weights");
  accel_arch_free(&arch);
}

/* Per-tensor LP costs what it did: the same as on an LPA without the registers, to the bit;
** a per-channel network adds the registers' area once and every layer's modelled energy. */
Test(accel_channel_sf, network_totals_and_per_tensor_unchanged) {
  accel_arch_t *arch = arch_or_die();
  accel_t lpa = arch->accels[0], bare = lpa;
  bare.channel_sf_bits = 0;
  bare.channel_sf_flipflop_area_um2 = bare.channel_sf_adder_area_um2 = 0;
  bare.channel_sf_read_pj = bare.channel_sf_add_pj = 0;
  lpq_error_t err;
  accel_network_t *net = accel_network_builtin("resnet50", &err);
  cr_assert_not_null(net, "%s", err.msg);
  const size_t n = net->count;
  accel_layer_formats_t pt[64], ch[64];
  accel_layer_cost_t per_pt[64], per_ch[64], per_bare[64];
  cr_assert(n <= 64);
  for (size_t i = 0; i < n; i++) {
    pt[i] = (accel_layer_formats_t){fmt("lp<4,1,2,auto>"), fmt("lp<4,1,2,auto>")};
    ch[i] = (accel_layer_formats_t){fmt("lp<4,1,2,auto_ch>"), fmt("lp<4,1,2,auto>")};
  }
  accel_cost_t t_pt, t_bare, t_ch;
  cr_assert_eq(accel_cost_network(&lpa, net, pt, per_pt, &t_pt, &err), 0, "%s", err.msg);
  cr_assert_eq(accel_cost_network(&bare, net, pt, per_bare, &t_bare, &err), 0, "%s", err.msg);
  cr_expect(memcmp(&t_pt, &t_bare, sizeof t_pt) == 0, "per-tensor totals changed");
  cr_expect(memcmp(per_pt, per_bare, n * sizeof *per_pt) == 0, "per-tensor layers changed");
  cr_expect_eq(t_pt.channel_sf_pj, 0);
  cr_expect_eq(t_pt.channel_sf_area_mm2, 0);
  cr_expect_eq(t_pt.per_channel_layers, 0);
  accel_cost_t area;
  accel_area(&lpa, &area);
  cr_expect_eq(t_pt.area_mm2, area.area_mm2);

  cr_assert_eq(accel_cost_network(&lpa, net, ch, per_ch, &t_ch, &err), 0, "%s", err.msg);
  cr_expect_eq(t_ch.per_channel_layers, n);
  cr_expect(near(t_ch.channel_sf_area_mm2, accel_channel_sf_area_mm2(&lpa)));
  cr_expect(near(t_ch.compute_area_mm2 - t_pt.compute_area_mm2, t_ch.channel_sf_area_mm2));
  cr_expect(near(t_ch.area_mm2 - t_pt.area_mm2, t_ch.channel_sf_area_mm2));
  double outputs = 0, sf_bytes = 0, leak = 0;
  for (size_t i = 0; i < n; i++) {
    const accel_layer_t *l = &net->layers[i];
    outputs += l->kind == ACCEL_CONV ? (double)(l->out_channels * l->out_h * l->out_w)
                                     : (double)(l->m * l->n);
    sf_bytes += l->kind == ACCEL_CONV ? (double)l->out_channels : (double)l->n;
    leak += lpa.leakage_mw_per_mm2 * t_ch.channel_sf_area_mm2 * 1e-3 * per_ch[i].latency_s * 1e12;
  }
  cr_expect(near(t_ch.channel_sf_pj, outputs * 0.03), "%g", t_ch.channel_sf_pj);
  cr_expect(near(t_ch.dram_bytes - t_pt.dram_bytes, sf_bytes));
  cr_expect(near(t_ch.channel_sf_bytes, sf_bytes));
  /* Memory-bound layers wait for their sf bytes; the rest take the same cycles. */
  double want = outputs * 0.03 + sf_bytes * (lpa.dram_pj_per_byte + 2 * lpa.sram_pj_per_byte);
  double extra_static = 0;
  for (size_t i = 0; i < n; i++) {
    if (!per_pt[i].memory_bound)
      cr_expect_eq(per_ch[i].cycles, per_pt[i].cycles, "%s", net->layers[i].name);
    extra_static += per_ch[i].static_pj - per_pt[i].static_pj;
  }
  cr_expect(extra_static >= leak * (1 - 1e-9), "static +%g < leak %g", extra_static, leak);
  cr_expect(near(t_ch.energy_pj - t_pt.energy_pj, want + extra_static), "+%g pJ vs %g",
            t_ch.energy_pj - t_pt.energy_pj, want + extra_static);
  cr_log_info("resnet50 all 4-bit: per tensor %.4g uJ, per channel +%.4g uJ (%.3f%%), area +%.4f "
              "mm2", t_pt.energy_pj * 1e-6, (t_ch.energy_pj - t_pt.energy_pj) * 1e-6,
              100 * (t_ch.energy_pj - t_pt.energy_pj) / t_pt.energy_pj, t_ch.channel_sf_area_mm2);

  /* One per-channel layer: the chip has the registers, and they leak in every layer. */
  pt[3] = ch[3];
  accel_cost_t t_one;
  cr_assert_eq(accel_cost_network(&lpa, net, pt, per_ch, &t_one, &err), 0, "%s", err.msg);
  cr_expect_eq(t_one.per_channel_layers, 1);
  cr_expect(near(t_one.channel_sf_area_mm2, accel_channel_sf_area_mm2(&lpa)));
  cr_expect_gt(per_ch[0].static_pj, per_pt[0].static_pj);

  /* An accelerator without the registers cannot run per-channel weights. */
  cr_assert_eq(accel_cost_network(&bare, net, ch, NULL, &t_bare, &err), LPQ_EUNSUP);
  cr_expect(strstr(err.msg, "channel_sf") && strstr(err.msg, "LPA") &&
                strstr(err.msg, "auto_ch") && strstr(err.msg, net->layers[0].name),
            "%s", err.msg);
  accel_network_free(&net);
  accel_arch_free(&arch);
}
