/* lp/lp_calibrate.c: the data-driven part of the format table: LP's "auto" sf (the sf with
** the least squared error on a sample of the tensor) and per-channel calibration, the one
** path every per-channel format takes.
** The search tries 33 sf's per tensor (per channel for auto_ch), so the quantizers it tries come
** from a process-wide table of built ones (bounded in bytes; immutable once built, shared by
** threads) instead of being built and freed each time: a search calibrates the same few
** formats thousands of times. */
#include "lp/lp_internal.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>

#define CALIB_SAMPLE 16384
#define SHARED_SLOTS 4096            /* open addressing, at most half full */
#define SHARED_BYTES (64u << 20)     /* beyond this, quantizers are built and freed per use */

static struct {
  pthread_mutex_t mu;
  uint32_t key[SHARED_SLOTS];        /* 0: empty, else packed format + 1 */
  lp_quantizer_t *q[SHARED_SLOTS];
  size_t count, bytes;
} shared = {PTHREAD_MUTEX_INITIALIZER, {0}, {NULL}, 0, 0};

static uint32_t format_key(const lp_format_t *f) {
  return 1u + ((uint32_t)f->n | (uint32_t)f->es << 5 | (uint32_t)f->rs << 8 |
               (uint32_t)(f->sf - LP_SF_MIN) << 13);
}

/* The slot holding key, or the empty one where it would go (shared.mu held; the table is at
** most half full, so a probe always ends). */
static uint32_t find_slot(uint32_t key) {
  uint32_t slot = key * 2654435761u % SHARED_SLOTS;
  while (shared.key[slot] != 0 && shared.key[slot] != key)
    slot = (slot + 1) % SHARED_SLOTS;
  return slot;
}

/* f's quantizer from the shared table (built on a miss; *owned = 1 when the table was full, and
** then the caller frees it). Two threads may build the same one: the first stored wins. */
static lp_quantizer_t *shared_quantizer(const lp_format_t *f, int *owned, lpq_error_t *err) {
  const uint32_t key = format_key(f);
  *owned = 0;
  pthread_mutex_lock(&shared.mu);
  const uint32_t at = find_slot(key);
  lp_quantizer_t *held = shared.key[at] == key ? shared.q[at] : NULL;
  pthread_mutex_unlock(&shared.mu);
  if (held)
    return held;
  lp_quantizer_t *q = lp_quantizer_new(f, err);
  if (!q)
    return NULL;
  const size_t bytes = lp_quantizer_bytes(q);
  pthread_mutex_lock(&shared.mu);
  const uint32_t slot = find_slot(key);
  if (shared.key[slot] == key) { /* another thread stored it meanwhile */
    lp_quantizer_t *theirs = shared.q[slot];
    pthread_mutex_unlock(&shared.mu);
    lp_quantizer_free(&q);
    return theirs;
  }
  if (shared.count < SHARED_SLOTS / 2 && shared.bytes + bytes <= SHARED_BYTES) {
    shared.key[slot] = key, shared.q[slot] = q;
    shared.count++, shared.bytes += bytes;
  } else {
    *owned = 1;
  }
  pthread_mutex_unlock(&shared.mu);
  return q;
}

/* Sum of squared quantization errors of a sample under a quantizer, in order; it stops once the
** running sum reaches `stop` (then the result is >= stop). The terms are not negative, so a
** rounded running sum never falls: a sum that reached `stop` cannot end below it, and the
** search's choice (strictly below the best so far) is the one the whole sum would give. */
#define SSE_CHUNK 512
static double sample_sse(const lp_quantizer_t *q, const float *x, size_t n, float *tmp,
                         double stop) {
  double s = 0.0;
  for (size_t i0 = 0; i0 < n && s < stop; i0 += SSE_CHUNK) {
    const size_t m = n - i0 < SSE_CHUNK ? n - i0 : SSE_CHUNK;
    lp_quantize_f32(q, x + i0, tmp + i0, m, NULL);
    for (size_t i = i0; i < i0 + m; i++) {
      double d = (double)tmp[i] - (double)x[i];
      s += d * d;
    }
  }
  return s;
}

/* The sample the sf search runs on: at most CALIB_SAMPLE values at an even stride. */
static size_t sample_stride(size_t count) {
  return count > CALIB_SAMPLE ? count / CALIB_SAMPLE : 1;
}

/* The centre of the sample's log-magnitudes, rounded: where the sf search starts. */
static int sample_centre(const float *x, size_t count) {
  const size_t stride = sample_stride(count);
  double logsum = 0.0;
  size_t nonzero = 0;
  for (size_t i = 0, n = 0; i < count && n < CALIB_SAMPLE; i += stride, n++)
    if (x[i] != 0.0f) {
      logsum += log2(fabs((double)x[i]));
      nonzero++;
    }
  return nonzero ? (int)lround(-logsum / (double)nonzero) : 0;
}

/* LP "auto" from a given centre: the sf near it with the least error. */
static int calibrate_sf_at(lpq_numfmt_t *f, const float *x, size_t count, int centre,
                           lpq_error_t *err) {
  const size_t stride = sample_stride(count);
  const size_t most = count < CALIB_SAMPLE ? count : CALIB_SAMPLE; /* a channel: a few KB, */
  size_t n = 0;                                    /* not 128 KB mapped and unmapped per call */
  float *sample = malloc(2 * (most ? most : 1) * sizeof *sample);
  if (!sample)
    return lpq_errorf(err, LPQ_ENOMEM, "calibration: out of memory");
  float *tmp = sample + most;
  for (size_t i = 0; i < count && n < CALIB_SAMPLE; i += stride)
    sample[n++] = x[i];
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
      int owned;
      lp_quantizer_t *q = shared_quantizer(&lf, &owned, err);
      if (!q) {
        free(sample);
        return err ? err->code : LPQ_ENOMEM;
      }
      double e = sample_sse(q, sample, n, tmp, best);
      if (owned)
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

int lpq__lp_calibrate_sf(lpq_numfmt_t *f, const float *x, size_t count, lpq_error_t *err) {
  return calibrate_sf_at(f, x, count, sample_centre(x, count), err);
}

int lpq_numfmt_lp_centres(const float *x, size_t channels, size_t per, int *centre,
                          lpq_error_t *err) {
  if (centre == NULL || (channels > 0 && per > 0 && x == NULL))
    return lpq_errorf(err, LPQ_EINVAL, "centres: NULL argument");
  for (size_t i = 0; i < channels * per; i++)
    if (isnan(x[i])) /* as lpq_numfmt_calibrate refuses it: the _at path then need not look */
      return lpq_errorf(err, LPQ_ENAN, "calibrate: element %zu is NaN", i);
  for (size_t c = 0; c < channels; c++)
    centre[c] = sample_centre(x + c * per, per);
  return 0;
}

int lpq_numfmt_calibrate_channels(const lpq_numfmt_t *f, const float *x, size_t channels,
                                  size_t per, lpq_numfmt_t *out, lpq_error_t *err) {
  return lpq_numfmt_calibrate_channels_at(f, x, channels, per, NULL, out, err);
}

int lpq_numfmt_calibrate_channels_at(const lpq_numfmt_t *f, const float *x, size_t channels,
                                     size_t per, const int *centre, lpq_numfmt_t *out,
                                     lpq_error_t *err) {
  if (f == NULL || out == NULL || (channels > 0 && per > 0 && x == NULL))
    return lpq_errorf(err, LPQ_EINVAL, "calibrate: NULL argument");
  for (size_t c = 0; c < channels; c++) {
    out[c] = *f;
    int rc = 0;
    if (f->per_channel) {
      out[c].per_channel = 0; /* the slice's own format, printed with its own sf / scale */
      rc = centre && f->family == LPQ_FAM_LP && f->auto_scale
               ? calibrate_sf_at(&out[c], x + c * per, per, centre[c], err)
               : lpq_numfmt_calibrate(&out[c], x + c * per, per, err);
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
