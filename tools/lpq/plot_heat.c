/* tools/lpq/plot_heat.c: a heat map in SVG (`lpq sensitivity --svg`): one row per layer, one
** column per width, the colour a cell's value on a log scale (values span decades: a layer at
** 8 bits moves L_CO by 1e-5, at 2 bits by 1), with the value in the cell, the layer names, and a
** legend. Plain SVG 1.1. */
#include "tools/lpq/lpq.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define CELL_W 64.0
#define CELL_H 18.0
#define NAME_W 220.0
#define TOP 64.0
#define LEGEND_W 90.0

/* Light yellow -> orange -> dark red, t in [0,1]. */
static void colour(double t, char out[8]) {
  static const double stops[4][3] = {{255, 255, 204}, {254, 178, 76}, {240, 59, 32}, {128, 0, 38}};
  t = t < 0 ? 0 : t > 1 ? 1 : t;
  double p = t * 3;
  int i = p >= 3 ? 2 : (int)p;
  double f = p - i;
  int rgb[3];
  for (int k = 0; k < 3; k++)
    rgb[k] = (int)lround(stops[i][k] + f * (stops[i + 1][k] - stops[i][k]));
  snprintf(out, 8, "#%02x%02x%02x", rgb[0], rgb[1], rgb[2]);
}

static void xml_text(FILE *f, const char *s) {
  for (; *s; s++) {
    if (*s == '<')
      fputs("&lt;", f);
    else if (*s == '>')
      fputs("&gt;", f);
    else if (*s == '&')
      fputs("&amp;", f);
    else
      fputc(*s, f);
  }
}

int tool_plot_heat_svg(const char *path, const char *title, const char *const *names,
                       size_t layers, int lo, int hi, const double *value, lpq_error_t *err) {
  const size_t widths = (size_t)(hi - lo + 1);
  double vmax = 0, vmin = INFINITY;
  for (size_t i = 0; i < layers * widths; i++)
    if (isfinite(value[i]) && value[i] > 0) {
      vmax = fmax(vmax, value[i]);
      vmin = fmin(vmin, value[i]);
    }
  if (vmax <= 0)
    vmax = vmin = 1;
  vmin = fmax(vmin, vmax * 1e-6); /* six decades at most */
  double l0 = floor(log10(vmin)), l1 = ceil(log10(vmax));
  if (l1 <= l0)
    l1 = l0 + 1;
  FILE *f = fopen(path, "w");
  if (!f)
    return lpq_errorf(err, LPQ_EIO, "%s: %s", path, strerror(errno));
  const double W = NAME_W + CELL_W * (double)widths + LEGEND_W + 20,
               H = TOP + CELL_H * (double)layers + 50;
  fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
             "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
             "viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\" font-size=\"11\">\n"
             "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n<text x=\"10\" y=\"20\" "
             "font-size=\"13\">",
          W, H, W, H);
  xml_text(f, title);
  fprintf(f, "</text>\n<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">weight bits</text>\n",
          NAME_W + CELL_W * (double)widths / 2, TOP - 24);
  for (size_t c = 0; c < widths; c++)
    fprintf(f, "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\">%d</text>\n",
            NAME_W + CELL_W * ((double)c + 0.5), TOP - 6, lo + (int)c);
  for (size_t l = 0; l < layers; l++) {
    double y = TOP + CELL_H * (double)l;
    fprintf(f, "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">%zu ", NAME_W - 6,
            y + CELL_H - 5, l);
    xml_text(f, names[l]);
    fputs("</text>\n", f);
    for (size_t c = 0; c < widths; c++) {
      double v = value[l * widths + c];
      char fill[8] = "#bbbbbb";
      if (isfinite(v))
        colour((log10(fmax(v, vmin)) - l0) / (l1 - l0), fill);
      fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\" "
                 "stroke=\"white\"><title>",
              NAME_W + CELL_W * (double)c, y, CELL_W, CELL_H, fill);
      xml_text(f, names[l]);
      fprintf(f, " at %d bits: %.6g</title></rect>\n", lo + (int)c, v);
      int dark = isfinite(v) && (log10(fmax(v, vmin)) - l0) / (l1 - l0) > 0.6;
      fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"9\" "
                 "fill=\"%s\">%.2g</text>\n",
              NAME_W + CELL_W * ((double)c + 0.5), y + CELL_H - 5, dark ? "white" : "black", v);
    }
  }
  /* the legend: a vertical bar, one tick per decade */
  const double lx = NAME_W + CELL_W * (double)widths + 20, ly = TOP, lh = 200;
  fprintf(f, "<text x=\"%.0f\" y=\"%.0f\">rise of L_CO</text>\n", lx, ly - 6);
  for (int k = 0; k < 50; k++) {
    char fill[8];
    colour(1.0 - k / 49.0, fill);
    fprintf(f, "<rect x=\"%.0f\" y=\"%.1f\" width=\"16\" height=\"%.1f\" fill=\"%s\"/>\n", lx,
            ly + k * lh / 50, lh / 50 + 0.5, fill);
  }
  for (double d = l0; d <= l1 + 1e-9; d += 1)
    fprintf(f, "<text x=\"%.0f\" y=\"%.1f\">1e%+.0f</text>\n", lx + 20,
            ly + lh * (1 - (d - l0) / (l1 - l0)) + 4, d);
  fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" fill=\"#666\">&lt;= %.0e or</text>\n"
             "<text x=\"%.0f\" y=\"%.0f\" fill=\"#666\">negative: lightest</text>\n"
             "<rect x=\"%.0f\" y=\"%.0f\" width=\"16\" height=\"10\" fill=\"#bbbbbb\"/>"
             "<text x=\"%.0f\" y=\"%.0f\">failed</text>\n</svg>\n",
          lx, ly + lh + 20, pow(10, l0), lx, ly + lh + 34, lx, ly + lh + 44, lx + 20,
          ly + lh + 53);
  int bad = ferror(f);
  if (fclose(f) != 0 || bad)
    return lpq_errorf(err, LPQ_EIO, "%s: write failed", path);
  return 0;
}
