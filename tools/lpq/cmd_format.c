/* tools/lpq/cmd_format.c: `lpq format FMT [--table] [--json]`. */
#include "lp/lp.h"
#include "tools/lpq/lpq.h"

#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <strings.h>

static void usage(FILE *out) {
  fprintf(out,
          "usage: lpq format FMT [--table] [--json]\n"
          "  FMT       an LP format, e.g. lp<8,2,2,0> (n 2..16, es 0..4, rs 1..n-1, sf -64..64);\n"
          "            sf may be auto (calibrated per tensor) or auto_ch (per output channel),\n"
          "            each with an offset (auto_ch+1): properties are shown at sf = 0\n"
          "  --table   every code and its value, one 'CODE VALUE' line each (NaR prints nan)\n"
          "  --json    one JSON object instead of text\n");
}

/* Dynamic range in decades, log10(maxpos / minpos). */
static double dynamic_range_decades(double minpos, double maxpos) {
  return log10(maxpos) - log10(minpos);
}

int cmd_format(int argc, char **argv) {
  static const struct option opts[] = {
      {"table", no_argument, 0, 't'}, {"json", no_argument, 0, 'j'}, {"help", no_argument, 0, 'h'},
      {0, 0, 0, 0}};
  int table = 0, json = 0, c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "tjh", opts, NULL)) != -1) {
    switch (c) {
    case 't': table = 1; break;
    case 'j': json = 1; break;
    case 'h': usage(stdout); return 0;
    default: usage(stderr); return 2;
    }
  }
  if (optind != argc - 1) {
    fprintf(stderr, "lpq format: expected one format, e.g. lp<8,2,2,0>\n");
    usage(stderr);
    return 2;
  }
  lp_format_t f;
  lpq_error_t err;
  /* auto / auto_ch: the sf comes from the data; the codes' shape is shown at sf = 0 */
  lpq_numfmt_t nf = {0};
  int is_auto = 0;
  for (const char *t = argv[optind]; *t && !is_auto; t++)
    is_auto = strncasecmp(t, "auto", 4) == 0;
  if (is_auto) {
    if (lpq_numfmt_parse(argv[optind], &nf, &err) != 0) {
      fprintf(stderr, "lpq format: %s\n", err.msg);
      return 1;
    }
    if (nf.family != LPQ_FAM_LP) {
      fprintf(stderr, "lpq format: '%s' is not an LP format\n", argv[optind]);
      return 1;
    }
    f = lpq_numfmt_lp(&nf);
  } else if (lp_format_parse(argv[optind], &f, &err) != 0) {
    fprintf(stderr, "lpq format: %s\n", err.msg);
    return 1;
  }
  char name[LPQ_NUMFMT_TEXT_MAX];
  if (is_auto)
    lpq_numfmt_str(&nf, name, sizeof name);
  else
    lp_format_str(&f, name, sizeof name);
  char sf_rule[200] = "", offset[32] = "";
  if (is_auto && nf.sf_offset != 0)
    snprintf(offset, sizeof offset, ", offset %+d", nf.sf_offset);
  if (is_auto)
    snprintf(sf_rule, sizeof sf_rule,
             "%s: the sf with the least squared error on %s%s; the values below are at sf = 0 "
             "and scale by 2^-sf",
             nf.per_channel ? "one per output channel" : "one per tensor",
             nf.per_channel ? "that channel's weights (axis 0)" : "the tensor", offset);
  const double minpos = lp_decode(&f, lp_minpos(&f)), maxpos = lp_decode(&f, lp_maxpos(&f));
  const uint32_t ncodes = 1u << f.n;
  if (json) {
    json_t *o = json_pack("{s:s, s:i, s:i, s:i, s:i, s:i, s:f, s:f, s:f, s:f}", "format", name,
                          "n", f.n, "es", f.es, "rs", f.rs, "sf", f.sf, "bits", f.n, "minpos",
                          minpos, "maxpos", maxpos, "dynamic_range_decades",
                          dynamic_range_decades(minpos, maxpos), "dynamic_range_log2",
                          log2(maxpos / minpos));
    if (o && is_auto) {
      json_object_set_new(o, "sf", json_null());
      json_object_set_new(o, "sf_rule", json_string(nf.per_channel ? "auto_ch" : "auto"));
      json_object_set_new(o, "sf_offset", json_integer(nf.sf_offset));
      json_object_set_new(o, "per_channel", json_boolean(nf.per_channel));
      json_object_set_new(o, "shown_at_sf", json_integer(0));
    }
    if (o && table) {
      json_t *arr = json_array();
      for (uint32_t code = 0; code < ncodes; code++) {
        double v = lp_decode(&f, code);
        json_array_append_new(arr, json_pack("{s:i, s:o}", "code", (int)code, "value",
                                             isnan(v) ? json_null() : json_real(v)));
      }
      json_object_set_new(o, "table", arr);
    }
    if (!o) {
      fprintf(stderr, "lpq format: out of memory\n");
      return 1;
    }
    json_dumpf(o, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
    fputc('\n', stdout);
    json_decref(o);
    return 0;
  }
  if (table) {
    for (uint32_t code = 0; code < ncodes; code++) {
      double v = lp_decode(&f, code);
      if (isnan(v))
        printf("%u nan\n", code);
      else
        printf("%u %.17g\n", code, v);
    }
    return 0;
  }
  printf("format      %s\n", name);
  if (is_auto)
    printf("sf          %s\n", sf_rule);
  printf("bits        %d (sign 1, regime up to %d, exponent %d, fraction the rest)\n", f.n,
         f.rs == f.n - 1 ? f.n - 1 : f.rs + 1, f.es);
  printf("regime k    %d..%d%s\n", -f.rs, f.rs - 1, f.rs == f.n - 1 ? " (uncapped)" : "");
  printf("minpos      %.17g (code 1)\n", minpos);
  printf("maxpos      %.17g (code %u)\n", maxpos, lp_maxpos(&f));
  printf("range       %.3g decades (%.4g binades)\n", dynamic_range_decades(minpos, maxpos),
         log2(maxpos / minpos));
  printf("codes       %u (zero 0, NaR %u)\n", ncodes, lp_nar(&f));
  return 0;
}
