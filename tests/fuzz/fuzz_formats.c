/*
** tests/fuzz/fuzz_formats.c: the text forms of number formats, lp_format_parse and
** lpq_numfmt_parse. What parses must print back to text that parses to the same format, and a
** parsed format must calibrate on a small tensor and (up to 10 bits) build its quantizer.
*/
#include "tests/fuzz/fuzz.h"

#include "lp/lp.h"

static void fuzz_formats_lp(const char *text) {
  lp_format_t f;
  lpq_error_t err;
  if (lp_format_parse(text, &f, &err) != 0) {
    FUZZ_CHECK(err.msg[0] != '\0', "lp_format_parse failed without a message");
    return;
  }
  FUZZ_CHECK(lp_format_validate(&f, NULL) == 0, "'%s' parsed to an invalid format", text);
  char buf[LP_TEXT_MAX];
  lp_format_str(&f, buf, sizeof buf);
  lp_format_t again;
  FUZZ_CHECK(lp_format_parse(buf, &again, &err) == 0, "'%s' printed as '%s': %s", text, buf,
             err.msg);
  FUZZ_CHECK(f.n == again.n && f.es == again.es && f.rs == again.rs && f.sf == again.sf,
             "'%s' and '%s' differ", text, buf);
}

static int fuzz_formats_equal(const lpq_numfmt_t *a, const lpq_numfmt_t *b) {
  return a->family == b->family && a->bits == b->bits && memcmp(a->p, b->p, sizeof a->p) == 0 &&
         a->auto_scale == b->auto_scale && a->per_channel == b->per_channel &&
         a->sf_offset == b->sf_offset;
}

static void fuzz_formats_numfmt(const char *text) {
  lpq_numfmt_t f;
  lpq_error_t err;
  if (lpq_numfmt_parse(text, &f, &err) != 0) {
    FUZZ_CHECK(err.msg[0] != '\0', "lpq_numfmt_parse failed without a message");
    return;
  }
  char buf[LPQ_NUMFMT_TEXT_MAX];
  lpq_numfmt_str(&f, buf, sizeof buf);
  lpq_numfmt_t again;
  FUZZ_CHECK(lpq_numfmt_parse(buf, &again, &err) == 0, "'%s' printed as '%s': %s", text, buf,
             err.msg);
  FUZZ_CHECK(fuzz_formats_equal(&f, &again), "'%s' and '%s' differ", text, buf);
  if (f.family == LPQ_FAM_FP32 || f.bits > 10)
    return;
  static const float x[] = {0.0f, 1.0f, -0.5f, 3e-3f, 17.0f, -2.5e-6f, 0.25f, 1e4f};
  FUZZ_CHECK(lpq_numfmt_calibrate(&f, x, sizeof x / sizeof x[0], &err) == 0,
             "'%s': calibrate: %s", text, err.msg);
  lp_quantizer_t *q = lpq_numfmt_quantizer(&f, &err);
  FUZZ_CHECK(q != NULL, "'%s': quantizer: %s", text, err.msg);
  float y[sizeof x / sizeof x[0]];
  FUZZ_CHECK(lp_quantize_f32(q, x, y, sizeof x / sizeof x[0], &err) == 0, "'%s': quantize: %s",
             text, err.msg);
  lp_quantizer_free(&q);
}

void fuzz_formats(const uint8_t *data, size_t size) {
  char *text = fuzz_text(data, size);
  fuzz_formats_lp(text);
  fuzz_formats_numfmt(text);
  free(text);
}

LPQ_FUZZ_MAIN(fuzz_formats)
