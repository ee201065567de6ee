/* tests/test_lp_calibrate.c: LP "auto" / auto_ch calibration, which takes its quantizers from a
** process-wide table and (lpq_numfmt_calibrate_channels_at) its centres from the caller, against
** a reference written here from the rule alone: a fresh quantizer per sf tried, the sample's
** log-magnitude centre, the least squared error, ties to the sf nearest the centre. Also the
** same from two threads at once, and the centres' argument checks. */
#include "lp/lp.h"

#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <string.h>
#include <stdlib.h>

#define SAMPLE 16384

/* The reference: the sf LP auto picks for x (before the offset). */
static int reference_sf(const lpq_numfmt_t *f, const float *x, size_t count) {
  const size_t stride = count > SAMPLE ? count / SAMPLE : 1;
  size_t n = 0, nonzero = 0;
  double logsum = 0.0;
  float *s = malloc(2 * SAMPLE * sizeof *s), *t = s + SAMPLE;
  cr_assert_not_null(s);
  for (size_t i = 0; i < count && n < SAMPLE; i += stride) {
    s[n++] = x[i];
    if (x[i] != 0.0f)
      logsum += log2(fabs((double)x[i])), nonzero++;
  }
  const int centre = nonzero ? (int)lround(-logsum / (double)nonzero) : 0;
  int best_sf = centre;
  double best = INFINITY;
  for (int d = 0; d <= 16; d++)
    for (int sgn = -1; sgn <= 1; sgn += 2) {
      const int sf = centre + sgn * d;
      if ((d == 0 && sgn > 0) || sf < LP_SF_MIN || sf > LP_SF_MAX)
        continue;
      lp_format_t lf = {f->p[0], f->p[1], f->p[2], sf};
      lp_quantizer_t *q = lp_quantizer_new(&lf, NULL);
      cr_assert_not_null(q);
      cr_assert_eq(lp_quantize_f32(q, s, t, n, NULL), 0);
      lp_quantizer_free(&q);
      double e = 0.0;
      for (size_t i = 0; i < n; i++)
        e += ((double)t[i] - (double)s[i]) * ((double)t[i] - (double)s[i]);
      if (e < best)
        best = e, best_sf = sf;
    }
  free(s);
  return best_sf;
}

/* channels x per values: each channel its own magnitude (2^-20 .. 2^12), some zeros, one
** channel all zero, one with a single huge value. */
static float *weights(size_t channels, size_t per, unsigned seed) {
  float *w = malloc(channels * per * sizeof *w);
  cr_assert_not_null(w);
  srand(seed);
  for (size_t c = 0; c < channels; c++) {
    const double mag = ldexp(1.0, (int)(c * 7 % 33) - 20);
    for (size_t i = 0; i < per; i++) {
      double u = ((double)rand() / RAND_MAX - 0.5) * 2.0;
      w[c * per + i] = c == 1 || i % 11 == 0 ? 0.0f : (float)(mag * u * u * u);
    }
  }
  if (channels > 2)
    w[2 * per + 3] = 3.0e30f;
  return w;
}

/* pairs that differ in one parameter only (the shared table's key must tell them apart) */
static const char *const formats[] = {
    "lp<4,1,2,auto_ch>", "lp<4,1,3,auto_ch>", "lp<3,0,2,auto_ch+1>", "lp<6,2,3,auto_ch-2>",
    "lp<6,2,5,auto_ch>", "lp<8,1,7,auto_ch>",  "lp<5,0,4,auto_ch>",    "lp<5,2,4,auto_ch>",
    "lp<12,2,6,auto_ch>"};
#define NFORMATS (sizeof formats / sizeof *formats)

static void check_channels(const float *w, size_t channels, size_t per, int with_centres) {
  int *centre = malloc(channels * sizeof *centre);
  lpq_numfmt_t *out = malloc(channels * sizeof *out);
  cr_assert(centre && out);
  cr_assert_eq(lpq_numfmt_lp_centres(w, channels, per, centre, NULL), 0);
  for (size_t k = 0; k < NFORMATS; k++) {
    lpq_numfmt_t f;
    cr_assert_eq(lpq_numfmt_parse(formats[k], &f, NULL), 0, "%s", formats[k]);
    cr_assert_eq(lpq_numfmt_calibrate_channels_at(&f, w, channels, per,
                                                  with_centres ? centre : NULL, out, NULL),
                 0);
    for (size_t c = 0; c < channels; c++) {
      int want = reference_sf(&f, w + c * per, per) + f.sf_offset;
      want = want < LP_SF_MIN ? LP_SF_MIN : want > LP_SF_MAX ? LP_SF_MAX : want;
      cr_assert_eq(out[c].p[3], want, "%s channel %zu: sf %d, the reference %d", formats[k], c,
                   out[c].p[3], want);
      cr_assert(out[c].resolved);
    }
  }
  free(centre);
  free(out);
}

Test(lp_calibrate, channels_equal_the_reference_with_and_without_centres) {
  const size_t channels = 24, per = 300;
  float *w = weights(channels, per, 7);
  check_channels(w, channels, per, 1);
  check_channels(w, channels, per, 0);
  free(w);
}

Test(lp_calibrate, a_tensor_above_the_sample_size_equals_the_reference) {
  const size_t count = 3 * SAMPLE + 5; /* sampled at a stride */
  float *w = weights(1, count, 11);
  for (size_t k = 0; k < NFORMATS; k++) {
    lpq_numfmt_t f;
    cr_assert_eq(lpq_numfmt_parse(formats[k], &f, NULL), 0);
    f.per_channel = 0; /* auto: one sf for the tensor */
    cr_assert_eq(lpq_numfmt_calibrate(&f, w, count, NULL), 0);
    int want = reference_sf(&f, w, count) + f.sf_offset;
    cr_assert_eq(f.p[3], want, "%s: sf %d, the reference %d", formats[k], f.p[3], want);
  }
  free(w);
}

typedef struct {
  const float *w;
  size_t channels, per;
  lpq_numfmt_t out[NFORMATS][32];
  int rc;
} run_t;

static void *calibrate_all(void *arg) {
  run_t *r = arg;
  for (int rep = 0; rep < 3 && r->rc == 0; rep++)
    for (size_t k = 0; k < NFORMATS && r->rc == 0; k++) {
      lpq_numfmt_t f;
      r->rc = lpq_numfmt_parse(formats[k], &f, NULL) ||
              lpq_numfmt_calibrate_channels(&f, r->w, r->channels, r->per, r->out[k], NULL);
    }
  return NULL;
}

/* Both threads build and look up the same shared quantizers at once: the same sf's as one. */
Test(lp_calibrate, two_threads_at_once_agree_with_one) {
  const size_t channels = 32, per = 200;
  float *w = weights(channels, per, 23);
  run_t a = {w, channels, per, {{{0}}}, 0}, b = a, one = a;
  pthread_t ta, tb;
  cr_assert_eq(pthread_create(&ta, NULL, calibrate_all, &a), 0);
  cr_assert_eq(pthread_create(&tb, NULL, calibrate_all, &b), 0);
  pthread_join(ta, NULL);
  pthread_join(tb, NULL);
  calibrate_all(&one);
  cr_assert(a.rc == 0 && b.rc == 0 && one.rc == 0);
  for (size_t k = 0; k < NFORMATS; k++)
    for (size_t c = 0; c < channels; c++) {
      cr_assert_eq(a.out[k][c].p[3], one.out[k][c].p[3], "%s channel %zu", formats[k], c);
      cr_assert_eq(b.out[k][c].p[3], one.out[k][c].p[3], "%s channel %zu", formats[k], c);
    }
  free(w);
}

Test(lp_calibrate, centres_refuse_nan_and_null) {
  float w[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  int centre[2];
  lpq_error_t err = {0};
  cr_assert_eq(lpq_numfmt_lp_centres(w, 2, 4, centre, &err), 0);
  cr_assert_eq(centre[0], (int)lround(-(log2(1) + log2(2) + log2(3) + log2(4)) / 4));
  w[6] = NAN;
  cr_assert_eq(lpq_numfmt_lp_centres(w, 2, 4, centre, &err), LPQ_ENAN);
  cr_assert(strstr(err.msg, "element 6 is NaN"), "%s", err.msg);
  cr_assert_eq(lpq_numfmt_lp_centres(NULL, 2, 4, centre, &err), LPQ_EINVAL);
  cr_assert_eq(lpq_numfmt_lp_centres(w, 2, 4, NULL, &err), LPQ_EINVAL);
}
