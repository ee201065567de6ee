/* common/config.c: candidate configs, the per-layer number formats of one candidate. */
#include "common/common.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parses field `key` of object o (a format name) into *f; *present says whether it was there. */
static int parse_format_field(json_t *o, const char *key, const char *where, lpq_numfmt_t *f,
                              int *present, lpq_error_t *err) {
  json_t *v = json_object_get(o, key);
  *present = v != NULL;
  if (v == NULL)
    return 0;
  if (!json_is_string(v))
    return lpq_errorf(err, LPQ_EFORMAT, "%s.%s: expected a format name (a string)", where, key);
  int rc = lpq_numfmt_parse(json_string_value(v), f, err);
  if (rc != 0)
    lpq_error_prefix(err, "%s.%s: ", where, key);
  return rc;
}

/* Unknown keys are refused: a typo ("wieght") must not silently mean fp32. */
static int check_keys(json_t *o, const char *where, const char *const *allowed, size_t n,
                      lpq_error_t *err) {
  const char *key;
  json_t *v;
  json_object_foreach(o, key, v) {
    size_t i = 0;
    while (i < n && strcmp(key, allowed[i]) != 0)
      i++;
    if (i == n)
      return lpq_errorf(err, LPQ_EFORMAT, "%s: unknown key '%s'", where, key);
  }
  return 0;
}

/* "w_sf" (a resolved per-channel LP layer's sf per output channel, as lpq_config_to_json_sf
** writes it) is for readers and exporters: lpq re-derives the sf's from the weights, which
** gives the same numbers for the same model. It is checked for form only, and only allowed
** next to a per-channel LP "w". */
static int check_w_sf(json_t *e, const char *where, const lpq_config_entry_t *ent,
                      lpq_error_t *err) {
  json_t *v = json_object_get(e, "w_sf");
  if (v == NULL)
    return 0;
  if (!ent->has_w || ent->w.family != LPQ_FAM_LP || !ent->w.per_channel)
    return lpq_errorf(err, LPQ_EFORMAT, "%s.w_sf: only a per-channel LP weight format "
                      "(lp<n,es,rs,auto_ch>) has per-channel sf's", where);
  if (!json_is_array(v))
    return lpq_errorf(err, LPQ_EFORMAT, "%s.w_sf: expected an array of integers", where);
  size_t i;
  json_t *x;
  json_array_foreach(v, i, x) {
    if (!json_is_integer(x) || json_integer_value(x) < LP_SF_MIN ||
        json_integer_value(x) > LP_SF_MAX)
      return lpq_errorf(err, LPQ_EFORMAT, "%s.w_sf[%zu]: expected an integer in %d..%d", where,
                        i, LP_SF_MIN, LP_SF_MAX);
  }
  return 0;
}

lpq_config_t *lpq_config_parse(const char *text, size_t len, const char *source,
                               lpq_error_t *err) {
  if (source == NULL)
    source = "config";
  if (text == NULL || len > LPQ_CONFIG_MAX_BYTES) {
    lpq_errorf(err, LPQ_ERANGE, "%s: config missing or larger than %zu bytes", source,
               LPQ_CONFIG_MAX_BYTES);
    return NULL;
  }
  json_error_t jerr;
  json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
  if (root == NULL) {
    lpq_errorf(err, LPQ_EFORMAT, "%s: line %d column %d: %s", source, jerr.line, jerr.column,
               jerr.text);
    return NULL;
  }
  lpq_config_t *c = calloc(1, sizeof *c);
  int rc = 0;
  if (c == NULL) {
    rc = lpq_errorf(err, LPQ_ENOMEM, "%s: out of memory", source);
    goto fail;
  }
  lpq_numfmt_parse("fp32", &c->default_w, NULL);
  lpq_numfmt_parse("fp32", &c->default_a, NULL);
  if (!json_is_object(root)) {
    rc = lpq_errorf(err, LPQ_EFORMAT, "%s: expected a JSON object", source);
    goto fail;
  }
  static const char *const top_keys[] = {"version", "default", "layers", "comment", "model",
                                         "bias_correction"};
  if ((rc = check_keys(root, source, top_keys, 6, err)) != 0)
    goto fail;
  json_t *bc = json_object_get(root, "bias_correction");
  if (bc && !json_is_boolean(bc)) {
    rc = lpq_errorf(err, LPQ_EFORMAT, "%s: \"bias_correction\" must be true or false", source);
    goto fail;
  }
  c->bias_correction = json_is_true(bc);
  json_t *ver = json_object_get(root, "version");
  if (!json_is_integer(ver)) {
    rc = lpq_errorf(err, LPQ_EFORMAT, "%s: \"version\" must be an integer (1)", source);
    goto fail;
  }
  if (json_integer_value(ver) != LPQ_CONFIG_VERSION) {
    rc = lpq_errorf(err, LPQ_EUNSUP, "%s: config version %lld is not supported (this lpq reads %d)",
                    source, (long long)json_integer_value(ver), LPQ_CONFIG_VERSION);
    goto fail;
  }
  c->version = LPQ_CONFIG_VERSION;
  json_t *def = json_object_get(root, "default");
  if (def != NULL) {
    static const char *const def_keys[] = {"w", "a"};
    int present;
    if (!json_is_object(def)) {
      rc = lpq_errorf(err, LPQ_EFORMAT, "%s: \"default\" must be an object with \"w\" and \"a\"",
                      source);
      goto fail;
    }
    if ((rc = check_keys(def, "default", def_keys, 2, err)) != 0 ||
        (rc = parse_format_field(def, "w", "default", &c->default_w, &present, err)) != 0 ||
        (rc = parse_format_field(def, "a", "default", &c->default_a, &present, err)) != 0)
      goto fail;
  }
  json_t *layers = json_object_get(root, "layers");
  if (layers != NULL) {
    if (!json_is_array(layers)) {
      rc = lpq_errorf(err, LPQ_EFORMAT, "%s: \"layers\" must be an array", source);
      goto fail;
    }
    size_t n = json_array_size(layers);
    c->layers = calloc(n ? n : 1, sizeof *c->layers);
    if (!c->layers) {
      rc = lpq_errorf(err, LPQ_ENOMEM, "%s: out of memory", source);
      goto fail;
    }
    for (size_t i = 0; i < n; i++) {
      json_t *e = json_array_get(layers, i);
      lpq_config_entry_t *ent = &c->layers[i];
      char where[48];
      snprintf(where, sizeof where, "layers[%zu]", i);
      ent->index = -1;
      c->count = i + 1;
      static const char *const ent_keys[] = {"name", "index", "w", "a", "w_sf"};
      if (!json_is_object(e)) {
        rc = lpq_errorf(err, LPQ_EFORMAT, "%s: expected an object", where);
        goto fail;
      }
      if ((rc = check_keys(e, where, ent_keys, 5, err)) != 0)
        goto fail;
      json_t *name = json_object_get(e, "name"), *idx = json_object_get(e, "index");
      if (name == NULL && idx == NULL) {
        rc = lpq_errorf(err, LPQ_EFORMAT, "%s: give \"name\" or \"index\"", where);
        goto fail;
      }
      if (name != NULL) {
        if (!json_is_string(name)) {
          rc = lpq_errorf(err, LPQ_EFORMAT, "%s.name: expected a string", where);
          goto fail;
        }
        ent->name = strdup(json_string_value(name));
        if (!ent->name) {
          rc = lpq_errorf(err, LPQ_ENOMEM, "%s: out of memory", source);
          goto fail;
        }
      }
      if (idx != NULL) {
        if (!json_is_integer(idx) || json_integer_value(idx) < 0 ||
            json_integer_value(idx) > 1000000) {
          rc = lpq_errorf(err, LPQ_EFORMAT, "%s.index: expected a non-negative integer", where);
          goto fail;
        }
        ent->index = (long)json_integer_value(idx);
      }
      if ((rc = parse_format_field(e, "w", where, &ent->w, &ent->has_w, err)) != 0 ||
          (rc = parse_format_field(e, "a", where, &ent->a, &ent->has_a, err)) != 0 ||
          (rc = check_w_sf(e, where, ent, err)) != 0)
        goto fail;
    }
  }
  json_decref(root);
  return c;
fail:
  (void)rc;
  json_decref(root);
  lpq_config_free(&c);
  return NULL;
}

lpq_config_t *lpq_config_load(const char *path, lpq_error_t *err) {
  FILE *fp = fopen(path, "rb");
  if (fp == NULL) {
    lpq_errorf(err, LPQ_EIO, "%s: %s", path, strerror(errno));
    return NULL;
  }
  char *buf = malloc(LPQ_CONFIG_MAX_BYTES + 1);
  if (!buf) {
    fclose(fp);
    lpq_errorf(err, LPQ_ENOMEM, "%s: out of memory", path);
    return NULL;
  }
  size_t n = fread(buf, 1, LPQ_CONFIG_MAX_BYTES + 1, fp);
  int bad = ferror(fp);
  fclose(fp);
  lpq_config_t *c = NULL;
  if (bad)
    lpq_errorf(err, LPQ_EIO, "%s: read error", path);
  else if (n > LPQ_CONFIG_MAX_BYTES)
    lpq_errorf(err, LPQ_ERANGE, "%s: larger than %zu bytes", path, LPQ_CONFIG_MAX_BYTES);
  else
    c = lpq_config_parse(buf, n, path, err);
  free(buf);
  return c;
}

void lpq_config_free(lpq_config_t **cp) {
  if (cp == NULL || *cp == NULL)
    return;
  lpq_config_t *c = *cp;
  for (size_t i = 0; i < c->count; i++)
    free(c->layers[i].name);
  free(c->layers);
  free(c);
  *cp = NULL;
}

int lpq_config_bind(const lpq_config_t *c, size_t nlayers, const char *const *names,
                    lpq_numfmt_t *w, lpq_numfmt_t *a, lpq_error_t *err) {
  if (c == NULL || (nlayers > 0 && (names == NULL || w == NULL || a == NULL)))
    return lpq_errorf(err, LPQ_EINVAL, "config: NULL argument");
  long *owner = malloc((nlayers ? nlayers : 1) * sizeof *owner);
  if (!owner)
    return lpq_errorf(err, LPQ_ENOMEM, "config: out of memory");
  for (size_t i = 0; i < nlayers; i++) {
    w[i] = c->default_w;
    a[i] = c->default_a;
    owner[i] = -1;
  }
  int rc = 0;
  for (size_t e = 0; e < c->count && rc == 0; e++) {
    const lpq_config_entry_t *ent = &c->layers[e];
    size_t layer = nlayers;
    if (ent->name != NULL && ent->index >= 0 && ((size_t)ent->index >= nlayers ||
                                                 strcmp(names[ent->index], ent->name) != 0)) {
      rc = lpq_errorf(err, LPQ_EINVAL,
                      "config layers[%zu]: index %ld does not name layer '%s' in this model", e,
                      ent->index, ent->name);
      break;
    }
    if (ent->name != NULL) {
      for (size_t i = 0; i < nlayers; i++)
        if (strcmp(names[i], ent->name) == 0) {
          layer = i;
          break;
        }
      if (layer == nlayers) {
        rc = lpq_errorf(err, LPQ_ENOTFOUND,
                        "config layers[%zu]: the model has no quantizable layer named '%s'", e,
                        ent->name);
        break;
      }
    } else {
      if ((size_t)ent->index >= nlayers) {
        rc = lpq_errorf(err, LPQ_ENOTFOUND,
                        "config layers[%zu]: index %ld is out of range (the model has %zu "
                        "quantizable layers)",
                        e, ent->index, nlayers);
        break;
      }
      layer = (size_t)ent->index;
    }
    if (owner[layer] >= 0) {
      rc = lpq_errorf(err, LPQ_EINVAL,
                      "config layers[%zu]: layer '%s' is already set by layers[%ld]", e,
                      names[layer], owner[layer]);
      break;
    }
    owner[layer] = (long)e;
    if (ent->has_w)
      w[layer] = ent->w;
    if (ent->has_a)
      a[layer] = ent->a;
  }
  free(owner);
  return rc;
}

char *lpq_config_to_json(size_t nlayers, const char *const *names, const lpq_numfmt_t *w,
                         const lpq_numfmt_t *a) {
  return lpq_config_to_json_sf(nlayers, names, w, a, NULL, NULL);
}

char *lpq_config_to_json_sf(size_t nlayers, const char *const *names, const lpq_numfmt_t *w,
                            const lpq_numfmt_t *a, const int *const *w_sf,
                            const size_t *w_sf_count) {
  json_t *root = json_object(), *layers = json_array();
  if (!root || !layers) {
    json_decref(root);
    json_decref(layers);
    return NULL;
  }
  json_object_set_new(root, "version", json_integer(LPQ_CONFIG_VERSION));
  for (size_t i = 0; i < nlayers; i++) {
    char wb[LPQ_NUMFMT_TEXT_MAX], ab[LPQ_NUMFMT_TEXT_MAX];
    json_t *e = json_pack("{s:s, s:i, s:s, s:s}", "name", names[i], "index", (int)i, "w",
                          lpq_numfmt_str(&w[i], wb, sizeof wb), "a",
                          lpq_numfmt_str(&a[i], ab, sizeof ab));
    if (e && w_sf && w_sf_count && w_sf[i] && w[i].family == LPQ_FAM_LP && w[i].per_channel) {
      json_t *arr = json_array();
      for (size_t c = 0; arr && c < w_sf_count[i]; c++)
        json_array_append_new(arr, json_integer(w_sf[i][c]));
      json_object_set_new(e, "w_sf", arr);
    }
    json_array_append_new(layers, e);
  }
  json_object_set_new(root, "layers", layers);
  char *s = json_dumps(root, JSON_INDENT(2));
  json_decref(root);
  return s;
}

void lpq_layer_formats_numfmt(const lpq_layer_formats_t *l, lpq_numfmt_t *w, lpq_numfmt_t *a) {
  lpq_numfmt_from_lp(&l->weight, w);
  lpq_numfmt_from_lp(&l->act, a);
  if (l->weight_per_channel && l->weight.n) {
    /* as lpq_numfmt_parse gives lp<n,es,rs,auto_ch+sf>: calibrated per channel, then offset */
    w->auto_scale = 1;
    w->per_channel = 1;
    w->sf_offset = l->weight.sf;
    w->p[3] = 0;
    w->resolved = 0;
  }
}
