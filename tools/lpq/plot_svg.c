/* tools/lpq/plot_svg.c: a scatter plot of a search in SVG: every scored candidate in grey, the
** Pareto front in colour and joined, axes with ticks and labels. Plain SVG 1.1, opens in any
** browser. */
#include "tools/lpq/lpq.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define W 720.0
#define H 480.0
#define ML 80.0 /* margins */
#define MR 24.0
#define MT 40.0
#define MB 60.0

static void range(const double *v, size_t n, double *lo, double *hi) {
  *lo = INFINITY;
  *hi = -INFINITY;
  for (size_t i = 0; i < n; i++)
    if (isfinite(v[i])) {
      *lo = fmin(*lo, v[i]);
      *hi = fmax(*hi, v[i]);
    }
  if (!isfinite(*lo)) {
    *lo = 0;
    *hi = 1;
  }
  double pad = (*hi - *lo) * 0.05;
  if (pad == 0)
    pad = fabs(*lo) * 0.05 + 1e-9;
  *lo -= pad;
  *hi += pad;
}

int tool_plot_front_svg(const char *path, const char *title, const char *xlabel,
                        const char *ylabel, const double *x, const double *y, size_t n,
                        const size_t *front, size_t nfront, lpq_error_t *err) {
  FILE *f = fopen(path, "w");
  if (!f)
    return lpq_errorf(err, LPQ_EIO, "%s: %s", path, strerror(errno));
  double x0, x1, y0, y1;
  range(x, n, &x0, &x1);
  range(y, n, &y0, &y1);
#define PX(v) (ML + ((v) - x0) / (x1 - x0) * (W - ML - MR))
#define PY(v) (H - MB - ((v) - y0) / (y1 - y0) * (H - MT - MB))
  fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
             "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
             "viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\" font-size=\"12\">\n"
             "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
          W, H, W, H);
  fprintf(f, "<text x=\"%.0f\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">%s</text>\n",
          W / 2, title);
  fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n", ML,
          H - MB, W - MR, H - MB);
  fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n", ML, MT,
          ML, H - MB);
  for (int t = 0; t <= 5; t++) {
    double vx = x0 + (x1 - x0) * t / 5.0, vy = y0 + (y1 - y0) * t / 5.0;
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n",
            PX(vx), MT, PX(vx), H - MB);
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", ML,
            PY(vy), W - MR, PY(vy));
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.4g</text>\n", PX(vx),
            H - MB + 18, vx);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.5g</text>\n", ML - 6,
            PY(vy) + 4, vy);
  }
  fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">%s</text>\n", (ML + W - MR) / 2,
          H - 18, xlabel);
  fprintf(f, "<text x=\"18\" y=\"%.0f\" text-anchor=\"middle\" transform=\"rotate(-90 18 %.0f)\">"
             "%s</text>\n",
          (MT + H - MB) / 2, (MT + H - MB) / 2, ylabel);
  for (size_t i = 0; i < n; i++)
    if (isfinite(x[i]) && isfinite(y[i]))
      fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"#aaa\"/>\n", PX(x[i]),
              PY(y[i]));
  if (nfront > 0) {
    fprintf(f, "<polyline fill=\"none\" stroke=\"#c0392b\" stroke-width=\"1.5\" points=\"");
    for (size_t k = 0; k < nfront; k++)
      fprintf(f, "%.1f,%.1f ", PX(x[front[k]]), PY(y[front[k]]));
    fprintf(f, "\"/>\n");
    for (size_t k = 0; k < nfront; k++)
      fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"#c0392b\"/>\n", PX(x[front[k]]),
              PY(y[front[k]]));
  }
  fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"end\" fill=\"#c0392b\">"
             "Pareto front (%zu)</text>\n",
          W - MR - 4, MT + 14, nfront);
  fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"end\" fill=\"#888\">all scored (%zu)"
             "</text>\n</svg>\n",
          W - MR - 4, MT + 30, n);
#undef PX
#undef PY
  int bad = ferror(f);
  if (fclose(f) != 0 || bad)
    return lpq_errorf(err, LPQ_EIO, "%s: write failed", path);
  return 0;
}
