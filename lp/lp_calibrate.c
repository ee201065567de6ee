/* lp/lp_calibrate.c: the data-driven part of the format table: LP's "auto" sf (the sf with
** the least squared error on a sample of the tensor) and per-channel calibration, the one
** path every per-channel format takes. */
#include "lp/lp_internal.h"

#include <math.h>
#include <stdlib.h>

#define CALIB_SAMPLE 16384

/* Sum of squared quantization errors of a sample under a quantizer. */
static double sample_sse(const lp_quantizer_t *q, const float *x, size_t n, float *tmp) {
  lp_quantize_f32(q, x, tmp, n, NULL);
  double s = 0.0;
  for (size_t i = 0; i < n; i++) {
    double d = (double)tmp[i] - (double)x[i];
    s += d * d;
  }
  return s;
}

/* LP "auto": the sf near the centre of the data's log-magnitudes with the least error. */
int lpq__lp_calibrate_sf(lpq_numfmt_t *f, const float *x, size_t count, lpq_error_t *err) {
  size_t stride = count > CALIB_SAMPLE ? count / CALIB_SAMPLE : 1;
  size_t n = 0;
  float *sample = malloc(2 * CALIB_SAMPLE * sizeof *sample);
  if (!sample)
    return lpq_errorf(err, LPQ_ENOMEM, "calibration: out of memory");
  float *tmp = sample + CALIB_SAMPLE;
  double logsum = 0.0;
  size_t nonzero = 0;
  for (size_t i = 0; i < count && n < CALIB_SAMPLE; i += stride) {
    sample[n++] = x[i];
    if (x[i] != 0.0f) {
      logsum += log2(fabs((double)x[i]));
      nonzero++;
    }
  }
  int centre = nonzero ? (int)lround(-logsum / (double)nonzero) : 0;
  int best_sf = centre;
  double best = INFINITY;
  for (int d = 0; d <= 16; d++) {
    for (int sgn = -1; sgn <= 1; sgn += 2) {
      if (d == 0 && sgn > 0)
        continue;
      int sf = centre + sgn * d;
      if (sf < LP_SF_MIN || sf > LP_SF_MAX)
        continue;
      lp_format_t lf = {f->p[0], f->p[1], f->p[2], sf};
      lp_quantizer_t *q = lp_quantizer_new(&lf, err);
      if (!q) {
        free(sample);
        return err ? err->code : LPQ_ENOMEM;
      }
      double e = sample_sse(q, sample, n, tmp);
      lp_quantizer_free(&q);
      if (e < best) { /* strictly better: ties keep the sf nearest the centre */
        best = e;
        best_sf = sf;
      }
    }
  }
  free(sample);
  best_sf += f->sf_offset;
  f->p[3] = best_sf < LP_SF_MIN ? LP_SF_MIN : best_sf > LP_SF_MAX ? LP_SF_MAX : best_sf;
  f->resolved = 1;
  return 0;
}

int lpq_numfmt_calibrate_channels(const lpq_numfmt_t *f, const float *x, size_t channels,
                                  size_t per, lpq_numfmt_t *out, lpq_error_t *err) {
  if (f == NULL || out == NULL || (channels > 0 && per > 0 && x == NULL))
    return lpq_errorf(err, LPQ_EINVAL, "calibrate: NULL argument");
  for (size_t c = 0; c < channels; c++) {
    out[c] = *f;
    int rc = 0;
    if (f->per_channel) {
      out[c].per_channel = 0; /* the slice's own format, printed with its own sf / scale */
      rc = lpq_numfmt_calibrate(&out[c], x + c * per, per, err);
    } else if (c == 0) {
      rc = lpq_numfmt_calibrate(&out[c], x, channels * per, err);
    } else {
      out[c] = out[0];
    }
    if (rc != 0)
      return lpq_error_prefix(err, "channel %zu: ", c);
  }
  return 0;
}
