/* tools/lpqctl/cmd_pareto.c: lpqctl pareto: a generation's individuals as a table, and an SVG
** scatter plot (L_CR across, L_CO up; every individual a point, the front highlighted and
** joined by its staircase). */
#include "tools/lpqctl/lpqctl.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct point_t {
  double x, y; /* l_cr, l_co */
  int rank;
  const char *genome;
} point_t;

static int by_x(const void *a, const void *b) {
  const point_t *p = a, *q = b;
  return p->x < q->x ? -1 : p->x > q->x ? 1 : (p->y > q->y) - (p->y < q->y);
}

/* A "nice" tick step (1, 2 or 5 times a power of ten) giving about `want` ticks over span. */
static double tick_step(double span, int want) {
  if (!(span > 0))
    return 1;
  double raw = span / want, mag = pow(10, floor(log10(raw))), f = raw / mag;
  return mag * (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10);
}

/* Text for SVG: escapes &, < and > (genome hashes and labels are plain ASCII anyway). */
static void svg_text(FILE *f, const char *s) {
  for (; s && *s; s++)
    fputs(*s == '&' ? "&amp;" : *s == '<' ? "&lt;" : *s == '>' ? "&gt;" : (char[2]){*s, 0}, f);
}

int ctl_pareto_svg(const json_t *pareto, const char *path) {
  const json_t *inds = json_object_get(pareto, "individuals");
  size_t n = json_array_size(inds);
  point_t *pts = calloc(n ? n : 1, sizeof *pts);
  if (pts == NULL) {
    fprintf(stderr, "lpqctl pareto: out of memory\n");
    return -1;
  }
  size_t count = 0;
  for (size_t i = 0; i < n; i++) {
    const json_t *ind = json_array_get(inds, i);
    const json_t *x = json_object_get(ind, "l_cr"), *y = json_object_get(ind, "l_co");
    if (!json_is_number(x) || !json_is_number(y) || !isfinite(json_number_value(x)) ||
        !isfinite(json_number_value(y)))
      continue; /* failed evaluations have no place on the plot */
    pts[count].x = json_number_value(x);
    pts[count].y = json_number_value(y);
    pts[count].rank = (int)json_integer_value(json_object_get(ind, "rank"));
    pts[count].genome = json_string_value(json_object_get(ind, "genome"));
    count++;
  }
  qsort(pts, count, sizeof *pts, by_x);
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  for (size_t i = 0; i < count; i++) {
    x0 = fmin(x0, pts[i].x), x1 = fmax(x1, pts[i].x);
    y0 = fmin(y0, pts[i].y), y1 = fmax(y1, pts[i].y);
  }
  if (count == 0)
    x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  /* Pad the ranges and widen degenerate ones, then snap them to the ticks. */
  double px = (x1 - x0) * 0.05 + (x1 == x0 ? fmax(fabs(x0) * 0.1, 0.05) : 0);
  double py = (y1 - y0) * 0.05 + (y1 == y0 ? fmax(fabs(y0) * 0.1, 0.05) : 0);
  x0 -= px, x1 += px, y0 -= py, y1 += py;
  double sx = tick_step(x1 - x0, 6), sy = tick_step(y1 - y0, 6);
  x0 = floor(x0 / sx) * sx, x1 = ceil(x1 / sx) * sx;
  y0 = floor(y0 / sy) * sy, y1 = ceil(y1 / sy) * sy;

  const double W = 720, H = 480, L = 80, R = 24, T = 48, B = 64;
  const double pw = W - L - R, ph = H - T - B;
#define MAPX(v) (L + ((v) - x0) / (x1 - x0) * pw)
#define MAPY(v) (T + ph - ((v) - y0) / (y1 - y0) * ph)
  FILE *f = fopen(path, "w");
  if (f == NULL) {
    fprintf(stderr, "lpqctl pareto: cannot write %s: %s\n", path, strerror(errno));
    free(pts);
    return -1;
  }
  const char *meaning = json_string_value(json_object_get(pareto, "l_cr_meaning"));
  const char *xlabel = !meaning || !strcmp(meaning, "bits")
                           ? "L_CR: weight bits relative to FP32"
                       : !strcmp(meaning, "latency") ? "L_CR: LPA latency (relative)"
                       : !strcmp(meaning, "energy")  ? "L_CR: LPA energy (relative)"
                                                     : "L_CR: LPA energy-delay product (relative)";
  size_t front = 0;
  for (size_t i = 0; i < count; i++)
    front += pts[i].rank == 0;
  fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
             "viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\" font-size=\"12\">\n",
          W, H, W, H);
  fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
  fprintf(f, "<text x=\"%.1f\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">job %lld, "
             "generation %lld: %zu individuals, %zu on the front</text>\n",
          L + pw / 2, json_integer_value(json_object_get(pareto, "job")),
          json_integer_value(json_object_get(pareto, "generation")), count, front);
  /* grid, ticks and tick labels */
  for (double v = x0; v <= x1 + sx * 1e-9; v += sx) {
    double X = MAPX(v);
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>\n", X,
            T, X, T + ph);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.4g</text>\n", X, T + ph + 18,
            fabs(v) < sx * 1e-9 ? 0.0 : v);
  }
  for (double v = y0; v <= y1 + sy * 1e-9; v += sy) {
    double Y = MAPY(v);
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>\n", L,
            Y, L + pw, Y);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.4g</text>\n", L - 8, Y + 4,
            fabs(v) < sy * 1e-9 ? 0.0 : v);
  }
  fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
             "stroke=\"black\"/>\n", L, T, pw, ph);
  fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", L + pw / 2, H - 18);
  svg_text(f, xlabel);
  fprintf(f, "</text>\n<text transform=\"translate(20,%.1f) rotate(-90)\" text-anchor=\"middle\">"
             "L_CO: global-local contrastive loss</text>\n", T + ph / 2);
  /* the front's staircase (both objectives minimised: sorted by L_CR, L_CO falls) */
  if (front > 1) {
    fprintf(f, "<polyline fill=\"none\" stroke=\"#d62728\" stroke-width=\"1.5\" points=\"");
    int first = 1;
    double prev_y = 0;
    for (size_t i = 0; i < count; i++) {
      if (pts[i].rank != 0)
        continue;
      if (!first)
        fprintf(f, " %.1f,%.1f", MAPX(pts[i].x), MAPY(prev_y));
      fprintf(f, " %.1f,%.1f", MAPX(pts[i].x), MAPY(pts[i].y));
      prev_y = pts[i].y;
      first = 0;
    }
    fprintf(f, "\"/>\n");
  }
  /* the dominated individuals first, so the front is drawn on top */
  for (int pass = 0; pass < 2; pass++)
    for (size_t i = 0; i < count; i++) {
      int on_front = pts[i].rank == 0;
      if (on_front != pass)
        continue;
      fprintf(f, "<circle class=\"%s\" cx=\"%.1f\" cy=\"%.1f\" r=\"%s\" fill=\"%s\" "
                 "stroke=\"%s\"><title>",
              on_front ? "front" : "other", MAPX(pts[i].x), MAPY(pts[i].y), on_front ? "4.5" : "3",
              on_front ? "#d62728" : "#9aa5b1", on_front ? "#7f0000" : "none");
      svg_text(f, pts[i].genome ? pts[i].genome : "?");
      fprintf(f, " rank %d: L_CO %.5g, L_CR %.5g</title></circle>\n", pts[i].rank, pts[i].y,
              pts[i].x);
    }
  /* legend */
  fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4.5\" fill=\"#d62728\" stroke=\"#7f0000\"/>"
             "<text x=\"%.1f\" y=\"%.1f\">Pareto front (rank 0)</text>\n",
          L + pw - 150, T + 14, L + pw - 142, T + 18);
  fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"#9aa5b1\"/>"
             "<text x=\"%.1f\" y=\"%.1f\">dominated</text>\n",
          L + pw - 150, T + 32, L + pw - 142, T + 36);
  fprintf(f, "</svg>\n");
#undef MAPX
#undef MAPY
  free(pts);
  if (fclose(f) != 0) {
    fprintf(stderr, "lpqctl pareto: cannot write %s: %s\n", path, strerror(errno));
    return -1;
  }
  return 0;
}

static void pareto_usage(FILE *out) {
  fprintf(out, "usage: lpqctl pareto JOB [--generation G] [--all] [--plot FILE.svg] [--json]\n"
               "  the Pareto front of a committed generation (default: the last one); --all lists\n"
               "  every individual with its rank; --plot draws every individual, the front\n"
               "  highlighted\n");
}

int cmd_pareto(ctl_t *ctl, int argc, char **argv) {
  enum { ALL = CTL_OPT_OWN, GENERATION, PLOT };
  static const struct option opts[] = {CTL_COMMON_OPTIONS,
                                       {"all", no_argument, NULL, ALL},
                                       {"generation", required_argument, NULL, GENERATION},
                                       {"plot", required_argument, NULL, PLOT},
                                       {NULL, 0, NULL, 0}};
  const char *job_text = NULL, *plot = NULL;
  json_t *params = json_object();
  int all = 0, c;
  optind = 0;
  while ((c = ctl_getopt(ctl, "pareto", argc, argv, "h", opts)) != -1) {
    if (c == 'h') {
      pareto_usage(stdout);
      json_decref(params);
      return CTL_OK;
    } else if (c == ALL) {
      all = 1;
    } else if (c == GENERATION) {
      char *end;
      long g = strtol(optarg, &end, 10);
      if (*end || g < 0) {
        fprintf(stderr, "lpqctl pareto: --generation wants an integer >= 0, got '%s'\n", optarg);
        goto usage;
      }
      json_object_set_new(params, "generation", json_integer(g));
    } else if (c == PLOT) {
      plot = optarg;
    } else {
      goto usage;
    }
  }
  if (optind + 1 < argc) {
    fprintf(stderr, "lpqctl pareto: unexpected argument '%s'\n", argv[optind + 1]);
    goto usage;
  }
  job_text = optind < argc ? argv[optind] : NULL;
  long job = job_text ? ctl_job_id("pareto", job_text) : 0;
  if (job == 0)
    goto usage;
  json_object_set_new(params, "job", json_integer(job));
  /* The plot shows every individual, so fetch them all whenever one is drawn. */
  if (!all && !plot)
    json_object_set_new(params, "front_only", json_true());
  json_t *r;
  int rc = ctl_call(ctl, "job.pareto", params, &r, NULL, NULL);
  if (rc != CTL_OK)
    return rc;
  if (plot && ctl_pareto_svg(r, plot) != 0) {
    json_decref(r);
    return CTL_FAILED;
  }
  if (ctl->json) {
    ctl_print_json(r);
  } else {
    printf("job %lld generation %lld (L_CR: %s)\n", json_integer_value(json_object_get(r, "job")),
           json_integer_value(json_object_get(r, "generation")),
           json_string_value(json_object_get(r, "l_cr_meaning")) ?: "bits");
    printf("%-16s %4s %10s %10s %7s %7s %7s %11s %11s\n", "GENOME", "RANK", "L_CO", "L_CR",
           "W_BITS", "A_BITS", "TOP1", "LATENCY_S", "ENERGY_PJ");
    size_t i;
    json_t *ind;
    json_array_foreach(json_object_get(r, "individuals"), i, ind) {
      if (!all && json_integer_value(json_object_get(ind, "rank")) != 0)
        continue;
      char b[7][32];
      printf("%-16s %4lld %10s %10s %7s %7s %7s %11s %11s%s\n",
             json_string_value(json_object_get(ind, "genome")),
             json_integer_value(json_object_get(ind, "rank")),
             ctl_num(json_object_get(ind, "l_co"), "%.5g", b[0], 32),
             ctl_num(json_object_get(ind, "l_cr"), "%.5g", b[1], 32),
             ctl_num(json_object_get(ind, "mean_weight_bits"), "%.3g", b[2], 32),
             ctl_num(json_object_get(ind, "mean_act_bits"), "%.3g", b[3], 32),
             ctl_num(json_object_get(ind, "top1"), "%.4f", b[4], 32),
             ctl_num(json_object_get(ind, "latency_s"), "%.4g", b[5], 32),
             ctl_num(json_object_get(ind, "energy_pj"), "%.4g", b[6], 32),
             json_is_false(json_object_get(ind, "feasible")) ? "  (infeasible)" : "");
    }
  }
  if (plot)
    fprintf(stderr, "lpqctl: plot written to %s\n", plot);
  json_decref(r);
  return CTL_OK;
usage:
  pareto_usage(stderr);
  json_decref(params);
  return CTL_USAGE;
}
