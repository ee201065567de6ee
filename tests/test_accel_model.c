/* tests/test_accel_model.c: the cost model on the bundled models' real layers. */
#include "accel_sim/accel_sim.h"

#include <criterion/criterion.h>
#include <string.h>

static void cost_at(const lpq_graph_t *g, const accel_network_t *net, const accel_t *lpa,
                    const char *fmt, accel_cost_t *out) {
  size_t nl = net->count;
  accel_layer_formats_t *f = calloc(nl, sizeof *f);
  lpq_numfmt_t nf;
  cr_assert_eq(lpq_numfmt_parse(fmt, &nf, NULL), 0);
  for (size_t i = 0; i < nl; i++) {
    accel_format_from_numfmt(&nf, &f[i].weight);
    accel_format_from_numfmt(&nf, &f[i].act);
  }
  accel_formats_on(lpa, f, nl);
  lpq_error_t err;
  cr_assert_eq(accel_cost_network(lpa, net, f, NULL, out, &err), 0, "%s", err.msg);
  free(f);
  (void)g;
}

Test(accel_model, bundled_models_map_to_valid_layers_and_cost_falls_with_bits) {
  const char *models[] = {"models/resnet18.onnx", "models/mobilenetv2.onnx", "models/vit.onnx"};
  lpq_error_t err;
  accel_arch_t *arch = accel_arch_default(&err);
  cr_assert_not_null(arch, "%s", err.msg);
  const accel_t *lpa = &arch->accels[0];
  for (size_t m = 0; m < 3; m++) {
    lpq_graph_t *g = lpq_graph_load(models[m], 4, &err);
    cr_assert_not_null(g, "%s", err.msg);
    accel_network_t *net = accel_network_from_graph(g, "model", &err);
    cr_assert_not_null(net, "%s: %s", models[m], err.msg);
    cr_assert_eq(net->count, lpq_graph_num_layers(g));
    /* per inference: the graph's MACs for its batch of 4, divided by 4 */
    uint64_t macs = 0, graph_macs = 0;
    for (size_t i = 0; i < net->count; i++) {
      macs += accel_layer_macs(&net->layers[i]);
      graph_macs += lpq_graph_layer(g, i)->macs;
    }
    cr_assert_eq(macs * 4, graph_macs, "%s: %llu MACs per image vs %llu for 4", models[m],
                 (unsigned long long)macs, (unsigned long long)graph_macs);
    accel_cost_t c8, c4, c2, cfp;
    cost_at(g, net, lpa, "lp<8,1,3,0>", &c8);
    cost_at(g, net, lpa, "lp<4,1,2,0>", &c4);
    cost_at(g, net, lpa, "lp<2,0,1,0>", &c2);
    cost_at(g, net, lpa, "fp32", &cfp);
    cr_assert(c2.latency_s <= c4.latency_s && c4.latency_s < c8.latency_s, "%s latency", models[m]);
    cr_assert(c4.energy_pj < c8.energy_pj, "%s energy", models[m]);
    cr_assert(cfp.latency_s > c8.latency_s, "%s: unquantized operands run sliced", models[m]);
    accel_network_free(&net);
    lpq_graph_free(&g);
  }
  accel_arch_free(&arch);
}
