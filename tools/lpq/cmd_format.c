/* tools/lpq/cmd_format.c: `lpq format FMT [--table] [--json]`. */
#include "lp/lp.h"
#include "tools/lpq/lpq.h"

#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>

static void usage(FILE *out) {
  fprintf(out,
          "usage: lpq format FMT [--table] [--json]\n"
          "  FMT       an LP format, e.g. lp<8,2,2,0> (n 2..16, es 0..4, rs 1..n-1, sf -64..64)\n"
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
  if (lp_format_parse(argv[optind], &f, &err) != 0) {
    fprintf(stderr, "lpq format: %s\n", err.msg);
    return 1;
  }
  char name[LP_TEXT_MAX];
  lp_format_str(&f, name, sizeof name);
  const double minpos = lp_decode(&f, lp_minpos(&f)), maxpos = lp_decode(&f, lp_maxpos(&f));
  const uint32_t ncodes = 1u << f.n;
  if (json) {
    json_t *o = json_pack("{s:s, s:i, s:i, s:i, s:i, s:i, s:f, s:f, s:f, s:f}", "format", name,
                          "n", f.n, "es", f.es, "rs", f.rs, "sf", f.sf, "bits", f.n, "minpos",
                          minpos, "maxpos", maxpos, "dynamic_range_decades",
                          dynamic_range_decades(minpos, maxpos), "dynamic_range_log2",
                          log2(maxpos / minpos));
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
