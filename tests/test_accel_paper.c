/* tests/test_accel_paper.c: the built-in architecture against the DAC 2024 LPA paper's
** figures (normalised to AdaptivFloat = 1), with each accelerator's stated mix of 2/4/8-bit
** layers: every ratio within +-15% (what README and docs/accel_sim.md claim) and the paper's
** ordering of the accelerators.
**
** What is fitted and what is predicted (docs/accel_sim.md): every mix was chosen against these
** figures (per network, the LPA's two free shares, ANT's and BitFusion's one each) and the
** LPA's energy per product carries a factor 2 fitted to its energy ratios. So the LPA's four
** ratios are fits; for ANT and BitFusion one share fits two ratios per network, so the second
** is a (weak) prediction; AdaptivFloat is the reference. Nothing here is an independent
** prediction of the paper's figures; the performance per area, which no parameter was fitted
** to, misses the paper's 2x against ANT (docs/MEASUREMENTS.md). */
#include "accel_sim/accel_sim.h"

#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

typedef struct paper_row_t {
  const char *network;
  const char *accel;
  double latency, energy; /* normalised to AdaptivFloat */
} paper_row_t;

/* The poster's figures, as issue 5 quotes them. */
static const paper_row_t paper[] = {
    {"resnet50", "ANT", 0.30, 0.41},     {"resnet50", "BitFusion", 0.58, 0.60},
    {"resnet50", "LPA", 0.24, 0.48},     {"resnet50", "AdaptivFloat", 1.0, 1.0},
    {"vit_b16", "ANT", 0.42, 0.47},      {"vit_b16", "BitFusion", 0.85, 0.93},
    {"vit_b16", "LPA", 0.39, 0.50},      {"vit_b16", "AdaptivFloat", 1.0, 1.0},
};
#define NPAPER (sizeof paper / sizeof paper[0])

static double ours[NPAPER][2];

static void compute_all(void) {
  lpq_error_t err;
  accel_arch_t *arch = accel_arch_default(&err);
  cr_assert_not_null(arch, "%s", err.msg);
  for (size_t i = 0; i < NPAPER; i++) {
    accel_network_t *net = accel_network_builtin(paper[i].network, &err);
    cr_assert_not_null(net, "%s", err.msg);
    const accel_t *a = accel_arch_find(arch, paper[i].accel);
    const accel_t *ref = accel_arch_find(arch, arch->reference);
    cr_assert_not_null(a);
    cr_assert_not_null(ref);
    accel_cost_t ca, cr;
    cr_assert_eq(accel_cost_with_mix(a, net, &ca, &err), 0, "%s", err.msg);
    cr_assert_eq(accel_cost_with_mix(ref, net, &cr, &err), 0, "%s", err.msg);
    ours[i][0] = ca.latency_s / cr.latency_s;
    ours[i][1] = ca.energy_pj / cr.energy_pj;
    accel_network_free(&net);
  }
  accel_arch_free(&arch);
}

Test(accel_paper, reference_is_adaptivfloat) {
  lpq_error_t err;
  accel_arch_t *arch = accel_arch_default(&err);
  cr_assert_not_null(arch, "%s", err.msg);
  cr_assert_str_eq(arch->reference, "AdaptivFloat");
  accel_arch_free(&arch);
}

Test(accel_paper, every_ratio_within_15_percent) {
  compute_all();
  for (size_t i = 0; i < NPAPER; i++) {
    const double want[2] = {paper[i].latency, paper[i].energy};
    for (int q = 0; q < 2; q++) {
      double dev = ours[i][q] / want[q] - 1;
      cr_expect(fabs(dev) <= 0.15, "%s %s %s: lpq %.3f vs paper %.2f (%+.0f%%)",
                paper[i].network, paper[i].accel, q ? "energy" : "latency", ours[i][q], want[q],
                100 * dev);
    }
  }
}

Test(accel_paper, ordering_matches_the_paper) {
  compute_all();
  /* For each network and quantity, every pair the paper orders, lpq orders the same way. */
  for (size_t i = 0; i < NPAPER; i++)
    for (size_t j = 0; j < NPAPER; j++) {
      if (i == j || strcmp(paper[i].network, paper[j].network) != 0)
        continue;
      const double pi[2] = {paper[i].latency, paper[i].energy};
      const double pj[2] = {paper[j].latency, paper[j].energy};
      for (int q = 0; q < 2; q++)
        if (pi[q] < pj[q])
          cr_expect(ours[i][q] < ours[j][q], "%s %s: paper %s %.2f < %s %.2f, lpq %.3f vs %.3f",
                    paper[i].network, q ? "energy" : "latency", paper[i].accel, pi[q],
                    paper[j].accel, pj[q], ours[i][q], ours[j][q]);
    }
}

Test(accel_paper, lpa_has_the_best_performance_per_area) {
  /* The paper: about 2x performance per area against the baselines. At iso-area this is the
  ** inverse latency ratio; docs/accel_sim.md explains why lpq finds less than 2x against ANT. */
  lpq_error_t err;
  accel_arch_t *arch = accel_arch_default(&err);
  cr_assert_not_null(arch, "%s", err.msg);
  for (const char *const *name = accel_builtin_networks; *name; name++) {
    accel_network_t *net = accel_network_builtin(*name, &err);
    cr_assert_not_null(net);
    accel_cost_t lpa;
    cr_assert_eq(accel_cost_with_mix(accel_arch_find(arch, "LPA"), net, &lpa, &err), 0, "%s",
                 err.msg);
    static const char *const baselines[] = {"ANT", "BitFusion", "AdaptivFloat"};
    for (size_t i = 0; i < 3; i++) {
      accel_cost_t c;
      const accel_t *a = accel_arch_find(arch, baselines[i]);
      cr_assert_not_null(a);
      cr_assert_eq(accel_cost_with_mix(a, net, &c, &err), 0, "%s", err.msg);
      cr_expect(lpa.gops_per_mm2 > c.gops_per_mm2, "%s: LPA %.0f GOPS/mm2 vs %s %.0f", *name,
                lpa.gops_per_mm2, baselines[i], c.gops_per_mm2);
    }
    accel_network_free(&net);
  }
  accel_arch_free(&arch);
}
