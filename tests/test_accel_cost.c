/* tests/test_accel_cost.c: the cost model's properties, the built-in networks, formats and
** mixes. */
#include "accel_sim/accel_sim.h"

#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

static accel_arch_t *arch_or_die(void) {
  lpq_error_t err;
  accel_arch_t *arch = accel_arch_default(&err);
  cr_assert_not_null(arch, "%s", err.msg);
  return arch;
}

static accel_network_t *net_or_die(const char *name) {
  lpq_error_t err;
  accel_network_t *net = accel_network_builtin(name, &err);
  cr_assert_not_null(net, "%s", err.msg);
  return net;
}

static accel_cost_t cost_uniform(const accel_t *a, const accel_network_t *net, int bits) {
  accel_layer_formats_t f[256];
  cr_assert(net->count <= 256);
  accel_uniform_formats(net, a->family, bits, f);
  accel_cost_t c;
  lpq_error_t err;
  cr_assert_eq(accel_cost_network(a, net, f, NULL, &c, &err), 0, "%s", err.msg);
  return c;
}

/* ---- networks ---- */

Test(accel_network, builtin_tables_are_valid_and_match_published_macs) {
  /* torchvision's model cards: ResNet-50 4.09 GFLOPS and ViT-B/16 17.56 GFLOPS, where their
  ** "FLOPS" count multiply-accumulates of conv and linear layers (and attention matmuls). */
  static const struct {
    const char *name;
    size_t layers;
    double gmacs;
  } want[] = {{"resnet50", 54, 4.09}, {"vit_b16", 74, 17.56}};
  for (size_t i = 0; i < 2; i++) {
    accel_network_t *net = net_or_die(want[i].name);
    cr_assert_eq(net->count, want[i].layers, "%s: %zu layers", want[i].name, net->count);
    double macs = 0;
    lpq_error_t err;
    for (size_t j = 0; j < net->count; j++) {
      cr_assert_eq(accel_layer_validate(&net->layers[j], &err), 0, "%s", err.msg);
      macs += (double)accel_layer_macs(&net->layers[j]);
    }
    cr_expect(fabs(macs * 1e-9 / want[i].gmacs - 1) < 0.01, "%s: %.3f GMACs vs %.2f",
              want[i].name, macs * 1e-9, want[i].gmacs);
    accel_network_free(&net);
    cr_assert_null(net);
  }
  lpq_error_t err;
  cr_assert_null(accel_network_builtin("alexnet", &err));
  cr_assert_eq(err.code, LPQ_ENOTFOUND);
  cr_assert(strstr(err.msg, "alexnet") != NULL, "%s", err.msg);
}

Test(accel_network, validate_names_the_bad_field) {
  accel_network_t *net = net_or_die("resnet50");
  accel_layer_t l = net->layers[0];
  lpq_error_t err;
  l.out_h = 111;
  cr_assert_eq(accel_layer_validate(&l, &err), LPQ_EINVAL);
  cr_assert(strstr(err.msg, "conv1") && strstr(err.msg, "expected 112x112"), "%s", err.msg);
  l = net->layers[0];
  l.groups = 2; /* 3 input channels */
  cr_assert_eq(accel_layer_validate(&l, &err), LPQ_EINVAL);
  cr_assert(strstr(err.msg, "groups") != NULL, "%s", err.msg);
  l = net->layers[net->count - 1];
  l.k = 0;
  cr_assert_eq(accel_layer_validate(&l, &err), LPQ_EINVAL);
  cr_assert(strstr(err.msg, "k = 0") != NULL, "%s", err.msg);
  accel_network_free(&net);
}

/* ---- formats and mixes ---- */

/* One syntax everywhere: a config's format reaches the cost model with the family lp/'s table
** gives it and prints back in lp/'s canonical text. */
Test(accel_format, formats_of_the_table_reach_the_cost_model) {
  static const struct {
    const char *text, *canonical;
    lpq_arith_t family;
    int bits;
  } cases[] = {
      {"lp<8,2,2,0>", "lp<8,2,2,0>", LPQ_ARITH_LP, 8},
      {"lp<3,0,2,-1>", "lp<3,0,2,-1>", LPQ_ARITH_LP, 3},
      {"int4", "int<4>", LPQ_ARITH_INT, 4},
      {"int<4,ch>", "int<4,ch>", LPQ_ARITH_INT, 4},
      {"posit8", "posit<8,2>", LPQ_ARITH_POSIT, 8},
      {"afloat<8,3>", "afloat<8,3>", LPQ_ARITH_AFLOAT, 8},
      {"fp8_e5m2", "fp8_e5m2", LPQ_ARITH_FLOAT, 8},
      {"fp32", "fp32", LPQ_ARITH_FLOAT, 32},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    lpq_numfmt_t nf;
    lpq_error_t err;
    cr_assert_eq(lpq_numfmt_parse(cases[i].text, &nf, &err), 0, "%s: %s", cases[i].text, err.msg);
    accel_format_t f;
    cr_assert_eq(accel_format_from_numfmt(&nf, &f), 0, "%s", cases[i].text);
    cr_expect_eq(f.family, cases[i].family, "%s: family %d", cases[i].text, (int)f.family);
    cr_expect_eq(f.bits, cases[i].bits, "%s: %d bits", cases[i].text, f.bits);
    char buf[ACCEL_FORMAT_TEXT_MAX];
    cr_expect_str_eq(accel_format_str(&f, buf, sizeof buf), cases[i].canonical);
  }
}

/* Every family's representative at a width is a format of lp/'s table with that family and
** width, so the baselines' uniform and mixed assignments print in the one syntax. */
Test(accel_format, representatives_are_table_formats) {
  static const int widths[] = {2, 3, 4, 5, 8, 16};
  size_t made = 0;
  for (int fam = 0; fam < LPQ_ARITH_COUNT; fam++)
    for (size_t w = 0; w < sizeof widths / sizeof widths[0]; w++) {
      accel_format_t f = accel_format_make((lpq_arith_t)fam, widths[w]);
      cr_expect_eq(f.family, fam);
      cr_expect_eq(f.bits, widths[w]);
      if (!f.has_fmt)
        continue; /* e.g. no AdaptivFloat of 2 bits */
      made++;
      char buf[ACCEL_FORMAT_TEXT_MAX];
      lpq_numfmt_t back;
      lpq_error_t err;
      cr_assert_eq(lpq_numfmt_parse(accel_format_str(&f, buf, sizeof buf), &back, &err), 0,
                   "%s: %s", buf, err.msg);
      cr_expect_eq(lpq_numfmt_arith(&back), fam, "%s", buf);
      cr_expect_eq(back.bits, widths[w], "%s", buf);
    }
  cr_expect_geq(made, 26, "only %zu representatives", made);
  cr_expect_eq(accel_format_make(LPQ_ARITH_FLOAT, 32).fmt.family, LPQ_FAM_FP32);
  cr_expect_eq(accel_format_make(LPQ_ARITH_AFLOAT, 2).has_fmt, 0);
}

Test(accel_mix, counts_follow_shares_and_spread_over_depth) {
  accel_network_t *net = net_or_die("vit_b16");
  const double share[3] = {0.2, 0.5, 0.3};
  accel_layer_formats_t f[80];
  lpq_error_t err;
  cr_assert_eq(accel_mix_formats(net, share, LPQ_ARITH_LP, f, &err), 0, "%s", err.msg);
  size_t count[9] = {0}, first_half[9] = {0};
  for (size_t i = 0; i < net->count; i++) {
    cr_assert_eq(f[i].weight.bits, f[i].act.bits);
    cr_assert_eq(f[i].weight.family, LPQ_ARITH_LP);
    count[f[i].weight.bits]++;
    if (i < net->count / 2)
      first_half[f[i].weight.bits]++;
  }
  const int widths[3] = {2, 4, 8};
  for (int j = 0; j < 3; j++) {
    double exact = share[j] * (double)net->count;
    cr_expect(fabs((double)count[widths[j]] - exact) < 1.0, "%d-bit: %zu layers for %.1f",
              widths[j], count[widths[j]], exact);
    /* Evenly spread: each half holds about half of each width's layers. */
    cr_expect(fabs((double)first_half[widths[j]] - exact / 2) <= 1.5,
              "%d-bit: %zu of %zu in the first half", widths[j], first_half[widths[j]],
              count[widths[j]]);
  }
  const double bad[3] = {0.5, 0.5, 0.5};
  cr_assert_eq(accel_mix_formats(net, bad, LPQ_ARITH_LP, f, &err), LPQ_EINVAL);
  cr_assert(strstr(err.msg, "sum to 1") != NULL, "%s", err.msg);
  accel_network_free(&net);
}

/* ---- the cost model ---- */

Test(accel_cost, narrower_modes_are_faster_and_cheaper_on_lpa) {
  accel_arch_t *arch = arch_or_die();
  const accel_t *lpa = accel_arch_find(arch, "LPA");
  cr_assert_not_null(lpa);
  for (const char *const *name = accel_builtin_networks; *name; name++) {
    accel_network_t *net = net_or_die(*name);
    accel_cost_t c2 = cost_uniform(lpa, net, 2), c4 = cost_uniform(lpa, net, 4);
    accel_cost_t c8 = cost_uniform(lpa, net, 8);
    cr_expect(c2.latency_s < c4.latency_s && c4.latency_s < c8.latency_s,
              "%s latency 2/4/8 bits: %g %g %g", *name, c2.latency_s, c4.latency_s, c8.latency_s);
    cr_expect(c2.energy_pj < c4.energy_pj && c4.energy_pj < c8.energy_pj,
              "%s energy 2/4/8 bits: %g %g %g", *name, c2.energy_pj, c4.energy_pj, c8.energy_pj);
    /* Widths between modes round up: 3 bits runs in the 4-bit mode, 5 in the 8-bit one. */
    accel_cost_t c3 = cost_uniform(lpa, net, 3), c5 = cost_uniform(lpa, net, 5);
    cr_expect(c3.cycles <= c4.cycles && c3.cycles > c2.cycles, "%s 3 bits: %g cycles", *name,
              c3.cycles);
    cr_expect(c5.cycles <= c8.cycles && c5.cycles > c4.cycles, "%s 5 bits: %g cycles", *name,
              c5.cycles);
    accel_network_free(&net);
  }
  accel_arch_free(&arch);
}

Test(accel_cost, mode_rounding_and_fill_drain_of_one_tile) {
  accel_arch_t *arch = arch_or_die();
  accel_t lpa_copy = arch->accels[0];
  lpa_copy.dram_gb_per_s = 1e4; /* compute-bound, so utilization shows fill and drain only */
  const accel_t *lpa = &lpa_copy;
  /* One tile exactly: K = rows x lanes, N = cols. */
  for (size_t mi = 0; mi < lpa->nmodes; mi++) {
    const accel_mode_t *mode = &lpa->modes[mi];
    accel_layer_t l = {.name = "tile", .kind = ACCEL_GEMM, .batch = 1, .batch_count = 1,
                       .m = 1000, .n = lpa->cols,
                       .k = (size_t)(lpa->rows * mode->products_per_cycle)};
    accel_format_t f = accel_format_make(LPQ_ARITH_LP, mode->bits);
    accel_layer_formats_t lf = {f, f};
    accel_layer_cost_t c;
    lpq_error_t err;
    cr_assert_eq(accel_cost_layer(lpa, &l, &lf, &c, &err), 0, "%s", err.msg);
    cr_expect_eq(c.mode_bits, mode->bits);
    cr_expect_eq(c.compute_cycles, (double)(l.m + lpa->rows + lpa->cols - 2),
                 "%d-bit: %g cycles", mode->bits, c.compute_cycles);
    cr_expect(c.utilization > 0.9 && c.utilization <= 1.0, "util %g", c.utilization);
    /* One bit narrower than the mode (when the previous mode is narrower still) rounds up. */
    if (mi > 0 && mode->bits - 1 > lpa->modes[mi - 1].bits) {
      accel_format_t g = accel_format_make(LPQ_ARITH_LP, mode->bits - 1);
      accel_layer_formats_t lg = {g, g};
      accel_layer_cost_t d;
      cr_assert_eq(accel_cost_layer(lpa, &l, &lg, &d, &err), 0, "%s", err.msg);
      cr_expect_eq(d.mode_bits, mode->bits);
      cr_expect_eq(d.compute_cycles, c.compute_cycles);
    }
  }
  accel_arch_free(&arch);
}

Test(accel_cost, bandwidth_bounds_and_cycle_floor) {
  accel_arch_t *arch = arch_or_die();
  accel_network_t *net = net_or_die("resnet50");
  for (size_t i = 0; i < arch->count; i++) {
    accel_t a = arch->accels[i];
    accel_cost_t base = cost_uniform(&a, net, 8);
    /* No faster than the peak rate of the array. */
    double peak = (double)a.rows * (double)a.cols * a.modes[a.nmodes - 1].products_per_cycle;
    cr_expect(base.cycles >= (double)base.macs / peak, "%s beats its peak", a.name);
    a.dram_gb_per_s *= 2;
    accel_cost_t fast = cost_uniform(&a, net, 8);
    cr_expect(fast.latency_s <= base.latency_s, "%s: more bandwidth, slower", a.name);
    a.dram_gb_per_s = 0.01; /* starved: every layer memory-bound, cycles = bytes / bandwidth */
    accel_layer_formats_t f[64];
    accel_layer_cost_t per[64];
    accel_uniform_formats(net, a.family, 8, f);
    accel_cost_t slow;
    lpq_error_t err;
    cr_assert_eq(accel_cost_network(&a, net, f, per, &slow, &err), 0, "%s", err.msg);
    for (size_t j = 0; j < net->count; j++) {
      cr_expect(per[j].memory_bound, "%s %s not memory-bound", a.name, net->layers[j].name);
      double bpc = a.dram_gb_per_s * 1e9 / (a.clock_mhz * 1e6);
      cr_expect(fabs(per[j].cycles - per[j].dram_bytes / bpc) <= 1e-9 * per[j].cycles);
    }
  }
  accel_network_free(&net);
  accel_arch_free(&arch);
}

Test(accel_cost, dram_traffic_at_least_every_operand_once) {
  accel_arch_t *arch = arch_or_die();
  const accel_t *lpa = &arch->accels[0];
  accel_network_t *net = net_or_die("resnet50");
  accel_layer_formats_t f[64];
  accel_layer_cost_t per[64];
  accel_uniform_formats(net, lpa->family, 8, f);
  accel_cost_t total;
  lpq_error_t err;
  cr_assert_eq(accel_cost_network(lpa, net, f, per, &total, &err), 0, "%s", err.msg);
  double weights = 0;
  for (size_t j = 0; j < net->count; j++) {
    const accel_layer_t *l = &net->layers[j];
    double w = l->kind == ACCEL_CONV ? (double)l->out_channels * (double)l->in_channels /
                                           (double)l->groups * (double)(l->kernel_h * l->kernel_w)
                                     : (double)(l->k * l->n);
    weights += w;
    cr_expect(per[j].dram_bytes >= w, "%s: %g DRAM bytes < %g weight bytes", l->name,
              per[j].dram_bytes, w);
  }
  /* ResNet-50 has 25.5 M weights in conv and fc layers (torchvision: 25.6 M parameters). */
  cr_expect(fabs(weights / 25.5e6 - 1) < 0.01, "%g weights", weights);
  accel_network_free(&net);
  accel_arch_free(&arch);
}

Test(accel_cost, family_mismatch_is_refused) {
  accel_arch_t *arch = arch_or_die();
  accel_network_t *net = net_or_die("resnet50");
  const accel_t *ant = accel_arch_find(arch, "ANT");
  cr_assert_not_null(ant);
  accel_layer_formats_t f[64];
  accel_uniform_formats(net, LPQ_ARITH_LP, 4, f);
  accel_cost_t c;
  lpq_error_t err;
  cr_assert_eq(accel_cost_network(ant, net, f, NULL, &c, &err), LPQ_EUNSUP);
  cr_assert(strstr(err.msg, "ANT") && strstr(err.msg, "conv1"), "%s", err.msg);
  accel_network_free(&net);
  accel_arch_free(&arch);
}

Test(accel_cost, default_arrays_are_iso_area) {
  accel_arch_t *arch = arch_or_die();
  accel_cost_t ref;
  accel_area(&arch->accels[0], &ref);
  for (size_t i = 1; i < arch->count; i++) {
    accel_cost_t c;
    accel_area(&arch->accels[i], &c);
    cr_expect(fabs(c.compute_area_mm2 / ref.compute_area_mm2 - 1) < 0.05,
              "%s compute area %.4f mm2 vs LPA %.4f", arch->accels[i].name, c.compute_area_mm2,
              ref.compute_area_mm2);
    cr_expect(c.area_mm2 > c.compute_area_mm2);
  }
  accel_arch_free(&arch);
}
