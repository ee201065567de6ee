/* engine/onnx_quant_enc.c: the quantized export's encodings JSON (docs/FORMATS.md), one entry
** per quantized tensor: format text, family, bits, per channel or not, the value multiplier
** (LP: and its sf; per channel one per output channel), written twice: the file beside the
** model, and its copy in metadata_props, where per-channel scales are the initializer's name. */
#include "engine/onnx_quant.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static void buf_vprintf(qx_t *x, lpq_strbuf_t *b, const char *fmt, va_list ap0) {
  for (;;) {
    va_list ap;
    va_copy(ap, ap0);
    size_t room = b->cap - b->len;
    int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? room : 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
      x->pb.oom = 1;
      return;
    }
    if (b->p && (size_t)n < room) {
      b->len += (size_t)n;
      return;
    }
    size_t cap = (b->cap ? 2 * b->cap : 4096) + (size_t)n;
    char *p = realloc(b->p, cap);
    if (!p) {
      x->pb.oom = 1;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
}

static void buf_printf(qx_t *x, lpq_strbuf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void buf_printf(qx_t *x, lpq_strbuf_t *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  buf_vprintf(x, b, fmt, ap);
  va_end(ap);
}

void lpq__qx_enc_printf(qx_t *x, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  buf_vprintf(x, &x->enc, fmt, ap);
  va_end(ap);
  va_start(ap, fmt);
  buf_vprintf(x, &x->meta, fmt, ap);
  va_end(ap);
}

/* A JSON string (names may hold any character). */
static void buf_str(qx_t *x, lpq_strbuf_t *b, const char *s) {
  buf_printf(x, b, "\"");
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\')
      buf_printf(x, b, "\\%c", c);
    else if (c < 0x20)
      buf_printf(x, b, "\\u%04x", c);
    else
      buf_printf(x, b, "%c", c);
  }
  buf_printf(x, b, "\"");
}

void lpq__qx_enc_str(qx_t *x, const char *s) {
  buf_str(x, &x->enc, s);
  buf_str(x, &x->meta, s);
}

void lpq__qx_enc_format(qx_t *x, const xl_t *l, const lpq_numfmt_t *f, const char *tensor,
                        const char *role) {
  char text[LPQ_NUMFMT_TEXT_MAX];
  lpq_numfmt_str(f, text, sizeof text);
  lpq__qx_enc_printf(x, "%s\n    {\"tensor\": ", x->ntensors++ ? "," : "");
  lpq__qx_enc_str(x, tensor);
  lpq__qx_enc_printf(x, ", \"layer\": ");
  lpq__qx_enc_str(x, l->L->name);
  lpq__qx_enc_printf(x, ", \"role\": \"%s\", \"format\": \"%s\", \"family\": \"%s\", "
                     "\"bits\": %d, \"per_channel\": %s", role, text,
                     lpq_family_name(f->family), f->bits, f->per_channel ? "true" : "false");
  if (f->per_channel) {
    /* the file lists every channel's scale; the metadata names the initializer holding them
    ** (the model would carry them twice); LP adds its sf, from which the scale 2^-sf follows */
    size_t ch = (size_t)l->L->weight_shape[0];
    lpq__qx_enc_printf(x, ", \"axis\": %d, \"scale\": ", l->axis);
    char name[640];
    snprintf(name, sizeof name, "lpq/%s/scale", tensor);
    buf_str(x, &x->meta, name);
    for (size_t c = 0; c < ch; c++)
      buf_printf(x, &x->enc, "%s%.9g", c ? ", " : "[", lpq__fmt_scale(&l->wch[c]));
    buf_printf(x, &x->enc, "]");
    if (f->family == LPQ_FAM_LP) {
      lpq__qx_enc_printf(x, ", \"sf\": [");
      for (size_t c = 0; c < ch; c++)
        lpq__qx_enc_printf(x, "%s%d", c ? "," : "", l->wch[c].p[3]);
      lpq__qx_enc_printf(x, "]");
    }
  } else {
    lpq__qx_enc_printf(x, ", \"scale\": %.17g", lpq__fmt_scale(f));
    if (f->family == LPQ_FAM_LP)
      lpq__qx_enc_printf(x, ", \"sf\": %d", f->p[3]);
  }
}
