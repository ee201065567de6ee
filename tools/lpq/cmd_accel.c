/* tools/lpq/cmd_accel.c: `lpq accel`: the LPA cost of a network and the baselines beside it. */
#include "accel_sim/accel_sim.h"
#include "tools/lpq/lpq.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out) {
  fprintf(out,
          "usage: lpq accel [--network resnet50|vit_b16 | --model M.onnx [--config C.json]]\n"
          "                 [--arch A.json] [--mix W2:W4:W8 | --bits N] [--json]\n"
          "  --model M.onnx  the model's quantizable layers (Conv, Gemm, MatMul), one inference\n"
          "  --config C.json the candidate's formats on the LPA (per layer, as lpq eval takes)\n"
          "                 [--json]\n"
          "  --network NAME  a built-in layer table (default resnet50)\n"
          "  --arch FILE     architecture file (default: the built-in accel_sim/arch/default.json)\n"
          "  --mix A:B:C     the LPA's shares of layers at 2, 4 and 8 bits (default: the file's\n"
          "                  stated paper mix for the network)\n"
          "  --bits N        every LPA layer at N bits (weights and activations)\n"
          "  --json          one JSON object instead of text\n"
          "The first accelerator of the file runs the candidate; the others run their own stated\n"
          "mixes. Per layer (first accelerator) and in total: cycles, latency, energy, area, EDP;\n"
          "ratios are normalised to the file's reference accelerator.\n");
}

static int parse_mix(const char *text, double share[3]) {
  char *end;
  const char *p = text;
  for (int i = 0; i < 3; i++) {
    share[i] = strtod(p, &end);
    if (end == p || (i < 2 && *end != ':') || (i == 2 && *end != '\0'))
      return -1;
    p = end + 1;
  }
  double sum = share[0] + share[1] + share[2];
  if (sum <= 0)
    return -1;
  for (int i = 0; i < 3; i++) /* "1:2:1" means shares 0.25:0.5:0.25 */
    share[i] /= sum;
  return 0;
}

/* Everything one run computes: per accelerator its formats, per-layer and total cost. */
typedef struct run_t {
  const accel_network_t *net;
  const accel_arch_t *arch;
  accel_layer_formats_t *formats; /* count x net->count */
  accel_layer_cost_t *layers;     /* count x net->count */
  accel_cost_t *totals;
  char (*mix_text)[64];
  int from_model;
} run_t;

static void run_free(run_t *r) {
  free(r->formats);
  free(r->layers);
  free(r->totals);
  free(r->mix_text);
}

static int run_all(run_t *r, const double *lpa_mix, int lpa_bits,
                   const accel_layer_formats_t *lpa_formats, lpq_error_t *err) {
  const size_t na = r->arch->count, nl = r->net->count;
  r->formats = calloc(na * nl, sizeof *r->formats);
  r->layers = calloc(na * nl, sizeof *r->layers);
  r->totals = calloc(na, sizeof *r->totals);
  r->mix_text = calloc(na, sizeof *r->mix_text);
  if (!r->formats || !r->layers || !r->totals || !r->mix_text)
    return lpq_errorf(err, LPQ_ENOMEM, "out of memory");
  for (size_t i = 0; i < na; i++) {
    const accel_t *a = &r->arch->accels[i];
    accel_layer_formats_t *f = r->formats + i * nl;
    int rc = 0;
    if (i == 0 && lpa_formats) {
      memcpy(f, lpa_formats, nl * sizeof *f);
      accel_formats_on(a, f, nl);
      snprintf(r->mix_text[i], sizeof r->mix_text[i], "config");
    } else if (i == 0 && lpa_bits > 0) {
      accel_uniform_formats(r->net, a->family, lpa_bits, f);
      snprintf(r->mix_text[i], sizeof r->mix_text[i], "all %d-bit", lpa_bits);
    } else {
      const double *share = i == 0 ? lpa_mix : NULL;
      if (share == NULL) {
        const accel_mix_t *m = accel_find_mix(a, r->net->name);
        if (m == NULL && !r->from_model)
          return lpq_errorf(err, LPQ_ENOTFOUND, "%s: no mix for '%s' in the architecture file",
                            a->name, r->net->name);
        share = m ? m->share : NULL;
      }
      if (share)
        rc = accel_mix_formats(r->net, share, a->family, f, err);
      else /* a model of the user's without a stated mix: the baseline at 8 bits */
        accel_uniform_formats(r->net, a->family, 8, f);
      if (share)
        snprintf(r->mix_text[i], sizeof r->mix_text[i], "%.2f:%.2f:%.2f", share[0], share[1],
                 share[2]);
      else
        snprintf(r->mix_text[i], sizeof r->mix_text[i], "all 8-bit");
    }
    if (rc == 0)
      rc = accel_cost_network(a, r->net, f, r->layers + i * nl, &r->totals[i], err);
    if (rc != 0)
      return lpq_error_prefix(err, "%s on %s: ", r->net->name, a->name);
  }
  return 0;
}

static json_t *layer_json(const accel_layer_t *l, const accel_layer_formats_t *f,
                          const accel_layer_cost_t *c) {
  char wb[ACCEL_FORMAT_TEXT_MAX], ab[ACCEL_FORMAT_TEXT_MAX];
  return json_pack("{s:s, s:s, s:s, s:I, s:i, s:f, s:f, s:f, s:b, s:f, s:f, s:f, s:f, s:f,"
                   " s:b, s:f}",
                   "name", l->name, "weight", accel_format_str(&f->weight, wb, sizeof wb), "act",
                   accel_format_str(&f->act, ab, sizeof ab), "macs", (json_int_t)c->macs,
                   "mode_bits", c->mode_bits, "cycles", c->cycles, "compute_cycles",
                   c->compute_cycles, "memory_cycles", c->memory_cycles, "memory_bound",
                   c->memory_bound, "utilization", c->utilization, "latency_s", c->latency_s,
                   "energy_pj", c->energy_pj, "dram_bytes", c->dram_bytes, "sram_bytes",
                   c->sram_bytes, "per_channel_sf", c->per_channel, "channel_sf_pj",
                   c->channel_sf_pj);
}

static int print_json(const run_t *r) {
  const accel_t *ref = accel_arch_find(r->arch, r->arch->reference);
  const accel_cost_t *rt = &r->totals[ref - r->arch->accels];
  json_t *root = json_pack("{s:s, s:s, s:s, s:[]}", "network", r->net->name, "process",
                           r->arch->process, "reference", r->arch->reference, "accelerators");
  if (root == NULL)
    return -1;
  json_t *arr = json_object_get(root, "accelerators");
  for (size_t i = 0; i < r->arch->count; i++) {
    const accel_t *a = &r->arch->accels[i];
    const accel_cost_t *t = &r->totals[i];
    json_t *o = json_pack(
        "{s:s, s:s, s:s, s:I, s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f,"
        " s:f, s:f, s:f, s:f, s:f, s:f}",
        "name", a->name, "family", lpq_arith_name(a->family), "mix_2_4_8", r->mix_text[i],
        "rows", (json_int_t)a->rows, "cols", (json_int_t)a->cols, "macs", (json_int_t)t->macs,
        "cycles", t->cycles, "latency_s", t->latency_s, "energy_pj", t->energy_pj, "compute_pj",
        t->compute_pj + t->decode_pj, "sram_pj", t->sram_pj, "psum_pj", t->psum_pj, "dram_pj", t->dram_pj, "static_pj",
        t->static_pj, "edp_js", t->edp_js, "area_mm2", t->area_mm2, "compute_area_mm2",
        t->compute_area_mm2, "buffer_area_mm2", t->buffer_area_mm2, "gops", t->gops,
        "gops_per_mm2", t->gops_per_mm2, "latency_vs_reference", t->latency_s / rt->latency_s,
        "energy_vs_reference", t->energy_pj / rt->energy_pj, "edp_vs_reference",
        t->edp_js / rt->edp_js, "perf_per_area_vs_reference", t->gops_per_mm2 / rt->gops_per_mm2);
    /* the per-channel sf registers (docs/accel_sim.md): their energy is part of energy_pj,
    ** their area part of compute_area_mm2 and area_mm2 */
    if (o != NULL)
      json_object_update_new(
          o, json_pack("{s:f, s:f, s:f, s:I}", "channel_sf_pj", t->channel_sf_pj,
                       "channel_sf_area_mm2", t->channel_sf_area_mm2, "channel_sf_bytes",
                       t->channel_sf_bytes, "per_channel_layers",
                       (json_int_t)t->per_channel_layers));
    json_t *layers = json_array();
    for (size_t j = 0; o && layers && j < r->net->count; j++)
      json_array_append_new(layers,
                            layer_json(&r->net->layers[j], &r->formats[i * r->net->count + j],
                                       &r->layers[i * r->net->count + j]));
    if (o == NULL || layers == NULL) {
      json_decref(o);
      json_decref(layers);
      json_decref(root);
      return -1;
    }
    json_object_set_new(o, "layers", layers);
    json_array_append_new(arr, o);
  }
  json_dumpf(root, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(9));
  fputc('\n', stdout);
  json_decref(root);
  return 0;
}

static void print_text(const run_t *r) {
  const accel_t *a0 = &r->arch->accels[0];
  printf("network %s: %zu layers on %s (%zux%zu PEs, %s, %.0f MHz)\n\n", r->net->name,
         r->net->count, a0->name, a0->rows, a0->cols, r->arch->process, a0->clock_mhz);
  printf("%-34s %-12s %4s %9s %11s %3s %5s %10s %10s %10s\n", "layer", "w / a", "mode", "MMACs",
         "cycles", "bnd", "util", "lat_us", "energy_uJ", "EDP_pJs");
  for (size_t j = 0; j < r->net->count; j++) {
    const accel_layer_cost_t *c = &r->layers[j];
    const accel_layer_formats_t *f = &r->formats[j];
    char wa[32];
    snprintf(wa, sizeof wa, "%d%s / %d", f->weight.bits, c->per_channel ? "ch" : "",
             f->act.bits);
    printf("%-34s %-12s %4d %9.2f %11.0f %3s %4.0f%% %10.2f %10.3f %10.4g\n",
           r->net->layers[j].name, wa, c->mode_bits, (double)c->macs * 1e-6, c->cycles,
           c->memory_bound ? "mem" : "cmp", 100 * c->utilization, c->latency_s * 1e6,
           c->energy_pj * 1e-6, c->energy_pj * c->latency_s);
  }
  const accel_t *ref = accel_arch_find(r->arch, r->arch->reference);
  const accel_cost_t *rt = &r->totals[ref - r->arch->accels];
  printf("\ntotals (ratios normalised to %s)\n", r->arch->reference);
  printf("%-13s %-15s %7s %8s %8s %12s %9s %10s %11s %8s %9s %6s %6s %6s\n", "accelerator",
         "mix 2:4:8", "array", "cmp_mm2", "area_mm2", "cycles", "lat_ms", "energy_mJ", "EDP_Js",
         "GOPS", "GOPS/mm2", "lat", "energy", "EDP");
  for (size_t i = 0; i < r->arch->count; i++) {
    const accel_t *a = &r->arch->accels[i];
    const accel_cost_t *t = &r->totals[i];
    char array[16];
    snprintf(array, sizeof array, "%zux%zu", a->rows, a->cols);
    printf("%-13s %-15s %7s %8.4f %8.3f %12.0f %9.3f %10.3f %11.4g %8.1f %9.0f %6.3f %6.3f %6.3f\n",
           a->name, r->mix_text[i], array, t->compute_area_mm2, t->area_mm2, t->cycles,
           t->latency_s * 1e3, t->energy_pj * 1e-9, t->edp_js, t->gops, t->gops_per_mm2,
           t->latency_s / rt->latency_s, t->energy_pj / rt->energy_pj, t->edp_js / rt->edp_js);
  }
  for (size_t i = 0; i < r->arch->count; i++) {
    const accel_t *a = &r->arch->accels[i];
    const accel_cost_t *t = &r->totals[i];
    if (t->per_channel_layers == 0)
      continue;
    printf("\n%s per-channel sf: %zu layers (\"ch\"); %zu registers of %d bits and their exponent "
           "adders %.4f mm2 (in cmp_mm2, +%.2f%%); register reads and adds %.4f uJ (%.3f%% of "
           "the energy); %.0f sf bytes in the DRAM and SRAM traffic\n",
           a->name, t->per_channel_layers, a->cols, a->channel_sf_bits, t->channel_sf_area_mm2,
           100 * t->channel_sf_area_mm2 / (t->compute_area_mm2 - t->channel_sf_area_mm2),
           t->channel_sf_pj * 1e-6, 100 * t->channel_sf_pj / t->energy_pj, t->channel_sf_bytes);
  }
}

/* The network of a model file, and a config's formats for it (when config is not NULL). */
static int model_network(const char *model, const char *config, accel_network_t **net,
                         accel_layer_formats_t **formats, lpq_error_t *err) {
  lpq_graph_t *g = lpq_graph_load(model, 1, err);
  if (!g)
    return err->code;
  const char *base = strrchr(model, '/') ? strrchr(model, '/') + 1 : model;
  char name[ACCEL_NAME_MAX];
  snprintf(name, sizeof name, "%.*s", (int)strcspn(base, "."), base);
  int rc = (*net = accel_network_from_graph(g, name, err)) ? 0 : err->code;
  size_t nl = lpq_graph_num_layers(g);
  lpq_config_t *c = NULL;
  lpq_numfmt_t *w = NULL, *a = NULL;
  const char **names = NULL;
  if (rc == 0 && config) {
    c = lpq_config_load(config, err);
    w = calloc(nl + 1, sizeof *w);
    a = calloc(nl + 1, sizeof *a);
    names = calloc(nl + 1, sizeof *names);
    *formats = calloc(nl + 1, sizeof **formats);
    if (!c)
      rc = err->code;
    else if (!w || !a || !names || !*formats)
      rc = lpq_errorf(err, LPQ_ENOMEM, "out of memory");
    for (size_t i = 0; rc == 0 && i < nl; i++)
      names[i] = lpq_graph_layer(g, i)->name;
    if (rc == 0 && (rc = lpq_config_bind(c, nl, names, w, a, err)) != 0)
      lpq_error_prefix(err, "%s: ", config);
    for (size_t i = 0; rc == 0 && i < nl; i++) {
      accel_format_from_numfmt(&w[i], &(*formats)[i].weight);
      accel_format_from_numfmt(&a[i], &(*formats)[i].act);
    }
  }
  lpq_config_free(&c);
  free(w);
  free(a);
  free(names);
  lpq_graph_free(&g);
  if (rc != 0) {
    accel_network_free(net);
    free(*formats);
    *formats = NULL;
  }
  return rc;
}

int cmd_accel(int argc, char **argv) {
  static const struct option opts[] = {
      {"network", required_argument, 0, 'n'}, {"arch", required_argument, 0, 'a'},
      {"mix", required_argument, 0, 'm'},     {"bits", required_argument, 0, 'b'},
      {"json", no_argument, 0, 'j'},          {"help", no_argument, 0, 'h'},
      {"model", required_argument, 0, 'M'},   {"config", required_argument, 0, 'C'},
      {0, 0, 0, 0}};
  const char *network = "resnet50", *arch_path = NULL, *model = NULL, *config = NULL;
  double mix[3];
  int have_mix = 0, bits = 0, json = 0, c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "n:a:m:b:jh", opts, NULL)) != -1) {
    switch (c) {
    case 'n': network = optarg; break;
    case 'a': arch_path = optarg; break;
    case 'm':
      if (parse_mix(optarg, mix) != 0) {
        fprintf(stderr, "lpq accel: --mix '%s': expected three shares W2:W4:W8, e.g. 0.4:0.5:0.1\n",
                optarg);
        return 2;
      }
      have_mix = 1;
      break;
    case 'b': {
      char *end;
      long v = strtol(optarg, &end, 10);
      if (*end != '\0' || v < LP_N_MIN || v > LP_N_MAX) {
        fprintf(stderr, "lpq accel: --bits '%s': expected a width %d..%d\n", optarg, LP_N_MIN,
                LP_N_MAX);
        return 2;
      }
      bits = (int)v;
      break;
    }
    case 'j': json = 1; break;
    case 'M': model = optarg; break;
    case 'C': config = optarg; break;
    case 'h': usage(stdout); return 0;
    default: usage(stderr); return 2;
    }
  }
  if (config && !model) {
    fprintf(stderr, "lpq accel: --config needs --model\n");
    return 2;
  }
  if (config && (have_mix || bits)) {
    fprintf(stderr, "lpq accel: --config excludes --mix and --bits\n");
    return 2;
  }
  if (optind != argc || (have_mix && bits)) {
    fprintf(stderr, "lpq accel: %s\n", have_mix && bits ? "--mix and --bits exclude each other"
                                                         : "unexpected argument");
    usage(stderr);
    return 2;
  }
  lpq_error_t err = {0};
  accel_network_t *net = NULL;
  accel_layer_formats_t *cfg_formats = NULL;
  if (model) {
    if (model_network(model, config, &net, &cfg_formats, &err) != 0) {
      fprintf(stderr, "lpq accel: %s\n", err.msg);
      return 1;
    }
  } else {
    net = accel_network_builtin(network, &err);
  }
  accel_arch_t *arch = NULL;
  if (net != NULL)
    arch = arch_path ? accel_arch_load(arch_path, &err) : accel_arch_default(&err);
  run_t r = {net, arch, NULL, NULL, NULL, NULL, model != NULL};
  int status = 0;
  if (net == NULL || arch == NULL ||
      run_all(&r, have_mix ? mix : NULL, bits, cfg_formats, &err) != 0) {
    fprintf(stderr, "lpq accel: %s\n", err.msg);
    status = 1;
  } else if (json) {
    if (print_json(&r) != 0) {
      fprintf(stderr, "lpq accel: out of memory\n");
      status = 1;
    }
  } else {
    print_text(&r);
  }
  run_free(&r);
  free(cfg_formats);
  accel_arch_free(&arch);
  accel_network_free(&net);
  return status;
}
