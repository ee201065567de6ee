/* accel_sim/accel_arch.c: reading an architecture file (JSON, README "accel_sim" describes it).
** Every number may be written plain or as {"value": V, "source": "where V comes from"}, so the
** file documents itself; messages name the file, the accelerator and the field. */
#include "accel_sim/accel_sim.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Where in the file a field is, for messages: "origin: accelerators[1] (ANT): ". */
typedef struct where_t {
  const char *origin;
  char path[96];
} where_t;

static int field_error(const where_t *w, lpq_error_t *err, int code, const char *field,
                       const char *what) {
  return lpq_errorf(err, code, "%s: %s%s%s", w->origin, w->path, field, what);
}

/* A number field: plain or {"value": V, "source": S}. Must lie in [lo, hi]. A missing field
** takes *out as it is when `optional`. */
static int get_number(const where_t *w, json_t *obj, const char *field, double lo, double hi,
                      int optional, double *out, lpq_error_t *err) {
  json_t *v = json_object_get(obj, field);
  if (v == NULL) {
    if (optional)
      return 0;
    return field_error(w, err, LPQ_EFORMAT, field, " is missing");
  }
  if (json_is_object(v)) {
    json_t *src = json_object_get(v, "source");
    if (src != NULL && !json_is_string(src))
      return field_error(w, err, LPQ_EFORMAT, field, ".source is not a string");
    v = json_object_get(v, "value");
    if (v == NULL)
      return field_error(w, err, LPQ_EFORMAT, field, ".value is missing");
  }
  if (!json_is_number(v))
    return field_error(w, err, LPQ_EFORMAT, field, " is not a number");
  double x = json_number_value(v);
  if (!(x >= lo && x <= hi)) {
    char what[96];
    snprintf(what, sizeof what, " = %g is out of range %g..%g", x, lo, hi);
    return field_error(w, err, LPQ_EINVAL, field, what);
  }
  *out = x;
  return 0;
}

static int get_size(const where_t *w, json_t *obj, const char *field, size_t lo, size_t hi,
                    size_t *out, lpq_error_t *err) {
  double x;
  int rc = get_number(w, obj, field, (double)lo, (double)hi, 0, &x, err);
  if (rc != 0)
    return rc;
  if (x != floor(x))
    return field_error(w, err, LPQ_EINVAL, field, " is not a whole number");
  *out = (size_t)x;
  return 0;
}

static int get_string(const where_t *w, json_t *obj, const char *field, char *out, size_t len,
                      lpq_error_t *err) {
  json_t *v = json_object_get(obj, field);
  if (!json_is_string(v))
    return field_error(w, err, LPQ_EFORMAT, field, v ? " is not a string" : " is missing");
  if (strlen(json_string_value(v)) >= len)
    return field_error(w, err, LPQ_EINVAL, field, " is too long");
  snprintf(out, len, "%s", json_string_value(v));
  return 0;
}

/* The memory fields, read from the file's "memory" object and from an accelerator's own
** (which may override some). `optional` is set for the override. */
static int parse_memory(const where_t *w, json_t *m, int optional, accel_t *a, lpq_error_t *err) {
  double acc = a->accumulator_bits;
  int rc;
  if ((rc = get_number(w, m, "weight_buffer_kb", 1, 1 << 20, optional, &a->weight_buffer_kb,
                       err)) ||
      (rc = get_number(w, m, "input_buffer_kb", 1, 1 << 20, optional, &a->input_buffer_kb,
                       err)) ||
      (rc = get_number(w, m, "output_buffer_kb", 1, 1 << 20, optional, &a->output_buffer_kb,
                       err)) ||
      (rc = get_number(w, m, "sram_mm2_per_kb", 0, 1, optional, &a->sram_mm2_per_kb, err)) ||
      (rc = get_number(w, m, "sram_pj_per_byte", 0, 1e3, optional, &a->sram_pj_per_byte, err)) ||
      (rc = get_number(w, m, "psum_pj_per_byte", 0, 1e3, optional, &a->psum_pj_per_byte, err)) ||
      (rc = get_number(w, m, "dram_gb_per_s", 1e-3, 1e5, optional, &a->dram_gb_per_s, err)) ||
      (rc = get_number(w, m, "dram_pj_per_byte", 0, 1e4, optional, &a->dram_pj_per_byte, err)) ||
      (rc = get_number(w, m, "accumulator_bits", 8, 64, optional, &acc, err)))
    return rc;
  a->accumulator_bits = (int)acc;
  return 0;
}

static int parse_modes(const where_t *w, json_t *modes, accel_t *a, lpq_error_t *err) {
  if (!json_is_array(modes) || json_array_size(modes) == 0 ||
      json_array_size(modes) > ACCEL_MAX_MODES)
    return field_error(w, err, LPQ_EFORMAT, "modes",
                       " must be an array of 1..6 modes");
  a->nmodes = json_array_size(modes);
  for (size_t i = 0; i < a->nmodes; i++) {
    where_t wm = *w;
    snprintf(wm.path, sizeof wm.path, "%.64smodes[%zu].", w->path, i);
    json_t *m = json_array_get(modes, i);
    double bits;
    int rc;
    if ((rc = get_number(&wm, m, "bits", 1, 32, 0, &bits, err)) ||
        (rc = get_number(&wm, m, "products_per_cycle", 1.0 / 64, 64, 0,
                         &a->modes[i].products_per_cycle, err)) ||
        (rc = get_number(&wm, m, "pj_per_product", 0, 1e3, 0, &a->modes[i].pj_per_product, err)))
      return rc;
    a->modes[i].bits = (int)bits;
    if (bits != floor(bits) || (i > 0 && a->modes[i].bits <= a->modes[i - 1].bits))
      return field_error(&wm, err, LPQ_EINVAL, "bits",
                         " must be a whole number above the previous mode's");
  }
  return 0;
}

static int parse_mixes(const where_t *w, json_t *mixes, accel_t *a, lpq_error_t *err) {
  if (mixes == NULL)
    return 0;
  if (!json_is_object(mixes) || json_object_size(mixes) > ACCEL_MAX_MIXES)
    return field_error(w, err, LPQ_EFORMAT, "mixes",
                       " must be an object of at most 8 {network: [w2, w4, w8]}");
  const char *key;
  json_t *v;
  json_object_foreach(mixes, key, v) {
    accel_mix_t *m = &a->mixes[a->nmixes];
    char field[96];
    snprintf(field, sizeof field, "mixes.%s", key);
    if (strlen(key) >= sizeof m->network)
      return field_error(w, err, LPQ_EINVAL, field, ": network name too long");
    if (!json_is_array(v) || json_array_size(v) != 3)
      return field_error(w, err, LPQ_EFORMAT, field, " must be [share2, share4, share8]");
    double sum = 0;
    for (size_t j = 0; j < 3; j++) {
      json_t *s = json_array_get(v, j);
      if (!json_is_number(s) || json_number_value(s) < 0 || json_number_value(s) > 1)
        return field_error(w, err, LPQ_EINVAL, field, ": shares must be numbers in 0..1");
      m->share[j] = json_number_value(s);
      sum += m->share[j];
    }
    if (fabs(sum - 1) > 1e-6)
      return field_error(w, err, LPQ_EINVAL, field, ": shares do not sum to 1");
    snprintf(m->network, sizeof m->network, "%s", key);
    a->nmixes++;
  }
  return 0;
}

/* The optional per-channel sf registers: {"bits", "flipflop_area_um2", "adder_area_um2",
** "read_pj", "add_pj"}, all required when the object is there. */
static int parse_channel_sf(const where_t *w, json_t *o, accel_t *a, lpq_error_t *err) {
  if (o == NULL)
    return 0;
  if (!json_is_object(o))
    return field_error(w, err, LPQ_EFORMAT, "channel_sf", " is not an object");
  where_t wc = *w;
  snprintf(wc.path, sizeof wc.path, "%.80schannel_sf.", w->path);
  double bits;
  int rc;
  /* sf spans LP_SF_MIN..LP_SF_MAX: 8 bits of two's complement at least */
  if ((rc = get_number(&wc, o, "bits", 8, 16, 0, &bits, err)) ||
      (rc = get_number(&wc, o, "flipflop_area_um2", 0, 1e4, 0, &a->channel_sf_flipflop_area_um2,
                       err)) ||
      (rc = get_number(&wc, o, "adder_area_um2", 0, 1e5, 0, &a->channel_sf_adder_area_um2,
                       err)) ||
      (rc = get_number(&wc, o, "read_pj", 0, 1e3, 0, &a->channel_sf_read_pj, err)) ||
      (rc = get_number(&wc, o, "add_pj", 0, 1e3, 0, &a->channel_sf_add_pj, err)))
    return rc;
  if (bits != floor(bits))
    return field_error(&wc, err, LPQ_EINVAL, "bits", " is not a whole number");
  a->channel_sf_bits = (int)bits;
  return 0;
}

static int parse_accel(const where_t *wfile, json_t *o, json_t *memory, size_t index, accel_t *a,
                       lpq_error_t *err) {
  where_t w = *wfile;
  snprintf(w.path, sizeof w.path, "accelerators[%zu].", index);
  if (!json_is_object(o))
    return field_error(&w, err, LPQ_EFORMAT, "", " is not an object");
  int rc = get_string(&w, o, "name", a->name, sizeof a->name, err);
  if (rc != 0)
    return rc;
  snprintf(w.path, sizeof w.path, "accelerators[%zu] (%s): ", index, a->name);
  char family[ACCEL_NAME_MAX];
  if ((rc = get_string(&w, o, "family", family, sizeof family, err)))
    return rc;
  int fam = lpq_arith_from_name(family);
  if (fam < 0)
    return field_error(&w, err, LPQ_EINVAL, "family",
                       " is not one of lp, int, posit, adaptivfloat, float");
  a->family = (lpq_arith_t)fam;
  a->accumulator_bits = 32;
  a->clock_mhz = 1000;
  where_t wmem = *wfile;
  snprintf(wmem.path, sizeof wmem.path, "memory.");
  if ((rc = parse_memory(&wmem, memory, 0, a, err)))
    return rc;
  json_t *own = json_object_get(o, "memory");
  if (own != NULL && (rc = parse_memory(&w, own, 1, a, err)))
    return rc;
  if ((rc = get_size(&w, o, "rows", 1, 4096, &a->rows, err)) ||
      (rc = get_size(&w, o, "cols", 1, 4096, &a->cols, err)) ||
      (rc = get_number(&w, o, "clock_mhz", 1, 1e5, 0, &a->clock_mhz, err)) ||
      (rc = get_number(&w, o, "pe_area_um2", 1e-3, 1e7, 0, &a->pe_area_um2, err)) ||
      (rc = get_number(&w, o, "decoder_area_um2", 0, 1e7, 1, &a->decoder_area_um2, err)) ||
      (rc = get_number(&w, o, "decode_pj_per_operand", 0, 1e3, 1, &a->decode_pj_per_operand,
                       err)) ||
      (rc = get_number(&w, o, "leakage_mw_per_mm2", 0, 1e4, 1, &a->leakage_mw_per_mm2, err)) ||
      (rc = parse_modes(&w, json_object_get(o, "modes"), a, err)) ||
      (rc = parse_mixes(&w, json_object_get(o, "mixes"), a, err)) ||
      (rc = parse_channel_sf(&w, json_object_get(o, "channel_sf"), a, err)))
    return rc;
  return 0;
}

accel_arch_t *accel_arch_parse(const char *json_text, const char *origin, lpq_error_t *err) {
  where_t w = {origin ? origin : "architecture", ""};
  json_error_t jerr;
  json_t *root = json_loads(json_text, 0, &jerr);
  if (root == NULL) {
    lpq_errorf(err, LPQ_EFORMAT, "%s: line %d: %s", w.origin, jerr.line, jerr.text);
    return NULL;
  }
  accel_arch_t *arch = calloc(1, sizeof *arch);
  int rc = 0;
  if (arch == NULL) {
    rc = lpq_errorf(err, LPQ_ENOMEM, "%s: out of memory", w.origin);
    goto out;
  }
  json_t *accels = json_object_get(root, "accelerators");
  json_t *memory = json_object_get(root, "memory");
  if (!json_is_object(root) || !json_is_array(accels) || json_array_size(accels) == 0) {
    rc = field_error(&w, err, LPQ_EFORMAT, "accelerators", " must be a non-empty array");
    goto out;
  }
  if (!json_is_object(memory)) {
    rc = field_error(&w, err, LPQ_EFORMAT, "memory", " must be an object");
    goto out;
  }
  if ((rc = get_string(&w, root, "process", arch->process, sizeof arch->process, err)) ||
      (rc = get_string(&w, root, "reference", arch->reference, sizeof arch->reference, err)))
    goto out;
  size_t n = json_array_size(accels);
  if (n > 64) {
    rc = field_error(&w, err, LPQ_EINVAL, "accelerators", ": more than 64");
    goto out;
  }
  arch->accels = calloc(n, sizeof *arch->accels);
  if (arch->accels == NULL) {
    rc = lpq_errorf(err, LPQ_ENOMEM, "%s: out of memory", w.origin);
    goto out;
  }
  arch->count = n;
  for (size_t i = 0; i < n && rc == 0; i++)
    rc = parse_accel(&w, json_array_get(accels, i), memory, i, &arch->accels[i], err);
  for (size_t i = 0; i < n && rc == 0; i++)
    for (size_t j = 0; j < i; j++)
      if (strcasecmp(arch->accels[i].name, arch->accels[j].name) == 0) {
        rc = lpq_errorf(err, LPQ_EINVAL, "%s: accelerators[%zu]: name '%s' is used twice",
                        w.origin, i, arch->accels[i].name);
        break;
      }
  if (rc == 0 && accel_arch_find(arch, arch->reference) == NULL)
    rc = lpq_errorf(err, LPQ_EINVAL, "%s: reference '%s' is not one of the accelerators",
                    w.origin, arch->reference);
out:
  json_decref(root);
  if (rc != 0)
    accel_arch_free(&arch);
  return arch;
}

accel_arch_t *accel_arch_load(const char *path, lpq_error_t *err) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    lpq_errorf(err, LPQ_EIO, "%s: cannot open", path);
    return NULL;
  }
  char *text = NULL;
  long len = -1;
  if (fseek(f, 0, SEEK_END) == 0)
    len = ftell(f);
  if (len < 0 || len > (1L << 24) || fseek(f, 0, SEEK_SET) != 0) {
    fclose(f);
    lpq_errorf(err, LPQ_EIO, "%s: not a readable file under 16 MiB", path);
    return NULL;
  }
  text = malloc((size_t)len + 1);
  if (text == NULL || fread(text, 1, (size_t)len, f) != (size_t)len) {
    fclose(f);
    free(text);
    lpq_errorf(err, text ? LPQ_EIO : LPQ_ENOMEM, "%s: cannot read", path);
    return NULL;
  }
  fclose(f);
  text[len] = '\0';
  accel_arch_t *arch = accel_arch_parse(text, path, err);
  free(text);
  return arch;
}

accel_arch_t *accel_arch_default(lpq_error_t *err) {
  return accel_arch_parse(accel_default_arch_json, "built-in accel_sim/arch/default.json", err);
}

void accel_arch_free(accel_arch_t **arch) {
  if (arch == NULL || *arch == NULL)
    return;
  free((*arch)->accels);
  free(*arch);
  *arch = NULL;
}

const accel_t *accel_arch_find(const accel_arch_t *arch, const char *name) {
  for (size_t i = 0; i < arch->count; i++)
    if (strcasecmp(arch->accels[i].name, name) == 0)
      return &arch->accels[i];
  return NULL;
}

const accel_mix_t *accel_find_mix(const accel_t *a, const char *network) {
  const accel_mix_t *fallback = NULL;
  for (size_t i = 0; i < a->nmixes; i++) {
    if (strcmp(a->mixes[i].network, network) == 0)
      return &a->mixes[i];
    if (strcmp(a->mixes[i].network, "default") == 0)
      fallback = &a->mixes[i];
  }
  return fallback;
}
