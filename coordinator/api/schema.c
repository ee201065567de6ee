/*
** coordinator/api/schema.c: the API's JSON schemas (schema/api/METHOD.json, compiled in by
** mk/api_schemas.mk) and a validator for the subset of JSON Schema they use, so that a request is
** checked against the very file its author reads.
*/
#include "coordinator/api/api_internal.h"

#include <pthread.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const char *const lpq__api_schema_texts[][2];
extern const size_t lpq__api_schema_count;

/* Parsed once, read-only afterwards (the documents are constant). */
static json_t **schema_docs;
static pthread_once_t schema_once = PTHREAD_ONCE_INIT;

static void schema_load(void) {
  schema_docs = calloc(lpq__api_schema_count ? lpq__api_schema_count : 1, sizeof *schema_docs);
  if (schema_docs == NULL)
    return;
  for (size_t i = 0; i < lpq__api_schema_count; i++)
    schema_docs[i] = json_loads(lpq__api_schema_texts[i][1], 0, NULL);
}

const json_t *lpq_api_schema(const char *method) {
  if (method == NULL)
    return NULL;
  pthread_once(&schema_once, schema_load);
  if (schema_docs == NULL)
    return NULL;
  for (size_t i = 0; i < lpq__api_schema_count; i++)
    if (strcmp(lpq__api_schema_texts[i][0], method) == 0)
      return schema_docs[i];
  return NULL;
}

json_t *lpq__api_schema_doc(const char *method) {
  const json_t *doc = lpq_api_schema(method);
  return doc ? json_deep_copy(doc) : NULL;
}

/* ---- the validator ------------------------------------------------------------------------ */

typedef struct vctx_t {
  const json_t *root;
  char path[512];
  char expected[256];
  char got[128];
} vctx_t;

static const char *type_name(const json_t *v) {
  switch (json_typeof(v)) {
  case JSON_OBJECT: return "object";
  case JSON_ARRAY: return "array";
  case JSON_STRING: return "string";
  case JSON_INTEGER: return "integer";
  case JSON_REAL: return "number";
  case JSON_TRUE:
  case JSON_FALSE: return "boolean";
  default: return "null";
  }
}

/* A short picture of the value for messages: its type, and the value when it is short. */
static void describe(const json_t *v, char *out, size_t size) {
  if (json_is_integer(v))
    snprintf(out, size, "%lld", (long long)json_integer_value(v));
  else if (json_is_real(v)) {
    snprintf(out, size, "%.10g", json_real_value(v));
    if (strpbrk(out, ".eEn") == NULL && strlen(out) + 2 < size)
      strcat(out, ".0"); /* 4.0 is not the integer 4 here */
  }
  else if (json_is_string(v) && json_string_length(v) <= 40)
    snprintf(out, size, "\"%s\"", json_string_value(v));
  else if (json_is_boolean(v) || json_is_null(v))
    snprintf(out, size, "%s", json_is_null(v) ? "null" : json_is_true(v) ? "true" : "false");
  else
    snprintf(out, size, "%s %s", json_is_array(v) || json_is_object(v) ? "an" : "a",
             type_name(v));
}

static int fail(vctx_t *c, const json_t *v, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(vctx_t *c, const json_t *v, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->expected, sizeof c->expected, fmt, ap);
  va_end(ap);
  if (v)
    describe(v, c->got, sizeof c->got);
  else
    c->got[0] = '\0';
  return LPQ_EINVAL;
}

static int type_matches(const char *t, const json_t *v) {
  if (strcmp(t, "number") == 0)
    return json_is_number(v);
  return strcmp(t, type_name(v)) == 0;
}

static size_t utf8_length(const char *s, size_t bytes) {
  size_t n = 0;
  for (size_t i = 0; i < bytes; i++)
    n += ((unsigned char)s[i] & 0xC0) != 0x80;
  return n;
}

static int check(vctx_t *c, const json_t *schema, const json_t *v, int depth);

/* Appends ".name" or "[index]" to the path for the duration of one check. */
static int check_member(vctx_t *c, const json_t *schema, const json_t *v, const char *name,
                        size_t index, int depth) {
  size_t len = strlen(c->path);
  if (name)
    snprintf(c->path + len, sizeof c->path - len, "%s%s", len ? "." : "", name);
  else
    snprintf(c->path + len, sizeof c->path - len, "[%zu]", index);
  int rc = check(c, schema, v, depth + 1);
  if (rc == 0)
    c->path[len] = '\0';
  return rc;
}

static const json_t *resolve_ref(vctx_t *c, const json_t *schema) {
  const char *ref = json_string_value(json_object_get(schema, "$ref"));
  if (ref == NULL)
    return schema;
  if (strncmp(ref, "#/$defs/", 8) != 0)
    return NULL;
  return json_object_get(json_object_get(c->root, "$defs"), ref + 8);
}

static int check_type(vctx_t *c, const json_t *schema, const json_t *v) {
  const json_t *type = json_object_get(schema, "type");
  if (type == NULL)
    return 0;
  if (json_is_string(type)) {
    if (type_matches(json_string_value(type), v))
      return 0;
    const char *t = json_string_value(type);
    return fail(c, v, "%s %s", strchr("aeiou", t[0]) ? "an" : "a", t);
  }
  char list[200] = "";
  size_t i;
  const json_t *t;
  json_array_foreach(type, i, t) {
    if (json_is_string(t) && type_matches(json_string_value(t), v))
      return 0;
    size_t len = strlen(list);
    snprintf(list + len, sizeof list - len, "%s%s", i ? " or " : "", json_string_value(t));
  }
  return fail(c, v, "%s", list);
}

static int check_enum(vctx_t *c, const json_t *schema, const json_t *v) {
  const json_t *cv = json_object_get(schema, "const");
  if (cv && !json_equal(cv, v)) {
    char want[128];
    describe(cv, want, sizeof want);
    return fail(c, v, "%s", want);
  }
  const json_t *options = json_object_get(schema, "enum");
  if (!json_is_array(options))
    return 0;
  char list[200] = "";
  size_t i;
  const json_t *o;
  json_array_foreach(options, i, o) {
    if (json_equal(o, v))
      return 0;
    char one[64];
    describe(o, one, sizeof one);
    size_t len = strlen(list);
    snprintf(list + len, sizeof list - len, "%s%s", i ? ", " : "", one);
  }
  return fail(c, v, "one of %s", list);
}

static int check_number(vctx_t *c, const json_t *schema, const json_t *v) {
  if (!json_is_number(v))
    return 0;
  double x = json_number_value(v);
  const json_t *lo = json_object_get(schema, "minimum"), *hi = json_object_get(schema, "maximum");
  /* what the field is, not what was sent: a number field given 0 says "a number >= 1" */
  const char *type = json_string_value(json_object_get(schema, "type"));
  const char *what = type && !strcmp(type, "integer") ? "an integer" : "a number";
  if (lo && x < json_number_value(lo))
    return fail(c, v, "%s >= %g", what, json_number_value(lo));
  if (hi && x > json_number_value(hi))
    return fail(c, v, "%s <= %g", what, json_number_value(hi));
  return 0;
}

static int check_string(vctx_t *c, const json_t *schema, const json_t *v) {
  if (!json_is_string(v))
    return 0;
  const char *s = json_string_value(v);
  const json_t *lo = json_object_get(schema, "minLength");
  const json_t *hi = json_object_get(schema, "maxLength");
  /* counted only when bounded: a 60 MB upload's text is not walked on the loop for nothing */
  size_t length = lo || hi ? utf8_length(s, json_string_length(v)) : 0;
  if (lo && length < (size_t)json_integer_value(lo))
    return fail(c, v, "a string of at least %lld characters", (long long)json_integer_value(lo));
  if (hi && length > (size_t)json_integer_value(hi))
    return fail(c, v, "a string of at most %lld characters", (long long)json_integer_value(hi));
  const char *pattern = json_string_value(json_object_get(schema, "pattern"));
  if (pattern) {
    /* The schemas' patterns are POSIX-extended compatible (classes, anchors, counts). */
    regex_t re;
    if (regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB) != 0)
      return fail(c, NULL, "a valid pattern in the schema (%s)", pattern);
    int miss = regexec(&re, s, 0, NULL, 0) != 0 || strlen(s) != json_string_length(v);
    regfree(&re);
    if (miss)
      return fail(c, v, "a string matching %s", pattern);
  }
  return 0;
}

static int check_array(vctx_t *c, const json_t *schema, const json_t *v, int depth) {
  if (!json_is_array(v))
    return 0;
  size_t n = json_array_size(v);
  const json_t *lo = json_object_get(schema, "minItems"), *hi = json_object_get(schema, "maxItems");
  if (lo && n < (size_t)json_integer_value(lo))
    return fail(c, v, "an array of at least %lld items", (long long)json_integer_value(lo));
  if (hi && n > (size_t)json_integer_value(hi))
    return fail(c, v, "an array of at most %lld items", (long long)json_integer_value(hi));
  const json_t *items = json_object_get(schema, "items");
  if (json_is_object(items))
    for (size_t i = 0; i < n; i++) {
      int rc = check_member(c, items, json_array_get(v, i), NULL, i, depth);
      if (rc)
        return rc;
    }
  return 0;
}

static int check_object(vctx_t *c, const json_t *schema, const json_t *v, int depth) {
  if (!json_is_object(v))
    return 0;
  size_t n = json_object_size(v);
  const json_t *lo = json_object_get(schema, "minProperties");
  const json_t *hi = json_object_get(schema, "maxProperties");
  const json_t *props = json_object_get(schema, "properties");
  const json_t *extra = json_object_get(schema, "additionalProperties");
  if ((lo && n < (size_t)json_integer_value(lo)) || (hi && n > (size_t)json_integer_value(hi))) {
    char names[160] = "";
    const char *key;
    const json_t *p;
    size_t i = 0;
    json_object_foreach((json_t *)props, key, p) {
      size_t len = strlen(names);
      snprintf(names + len, sizeof names - len, "%s%s", i++ ? ", " : "", key);
      (void)p;
    }
    long long a = lo ? json_integer_value(lo) : 0, b = hi ? json_integer_value(hi) : 0;
    if (a == 1 && b == 1)
      return fail(c, v, "an object with exactly one of: %s", names);
    if (lo && n < (size_t)a)
      return fail(c, v, "an object with at least %lld members", a);
    return fail(c, v, "an object with at most %lld members", b);
  }
  const json_t *required = json_object_get(schema, "required");
  size_t i;
  const json_t *r;
  json_array_foreach(required, i, r) {
    const char *name = json_string_value(r);
    if (name && json_object_get(v, name) == NULL) {
      size_t len = strlen(c->path);
      snprintf(c->path + len, sizeof c->path - len, "%s%s", len ? "." : "", name);
      const json_t *ps = json_object_get(props, name);
      const json_t *t = ps ? json_object_get(resolve_ref(c, ps) ? resolve_ref(c, ps) : ps, "type")
                           : NULL;
      return fail(c, NULL, "a required member%s%s", json_is_string(t) ? " of type " : "",
                  json_is_string(t) ? json_string_value(t) : "");
    }
  }
  const char *key;
  const json_t *member;
  json_object_foreach((json_t *)v, key, member) {
    const json_t *ps = json_object_get(props, key);
    if (ps == NULL) {
      if (json_is_false(extra)) {
        size_t len = strlen(c->path);
        snprintf(c->path + len, sizeof c->path - len, "%s%s", len ? "." : "", key);
        char names[200] = "";
        const char *k;
        const json_t *p;
        size_t j = 0;
        json_object_foreach((json_t *)props, k, p) {
          size_t l = strlen(names);
          snprintf(names + l, sizeof names - l, "%s%s", j++ ? ", " : "", k);
          (void)p;
        }
        return fail(c, NULL, "no such member (known: %s)", j ? names : "none");
      }
      ps = json_is_object(extra) ? extra : NULL;
    }
    if (ps) {
      int rc = check_member(c, ps, member, key, 0, depth);
      if (rc)
        return rc;
    }
  }
  return 0;
}

static int check_any_of(vctx_t *c, const json_t *schema, const json_t *v, int depth) {
  const json_t *branches = json_object_get(schema, "anyOf");
  if (!json_is_array(branches))
    return 0;
  /* The message of the branch whose type fits tells the most; else list the types. */
  vctx_t best = *c;
  int have_best = 0;
  char types[160] = "";
  size_t i;
  const json_t *b;
  json_array_foreach(branches, i, b) {
    vctx_t trial = *c;
    if (check(&trial, b, v, depth + 1) == 0)
      return 0;
    const json_t *rb = resolve_ref(c, b);
    const json_t *t = rb ? json_object_get(rb, "type") : NULL;
    size_t len = strlen(types);
    snprintf(types + len, sizeof types - len, "%s%s", i ? " or " : "",
             json_is_string(t) ? json_string_value(t) : "another form");
    if (json_is_string(t) && type_matches(json_string_value(t), v) && !have_best) {
      best = trial;
      have_best = 1;
    }
  }
  if (have_best) {
    *c = best;
    return LPQ_EINVAL;
  }
  return fail(c, v, "%s", types);
}

static int check(vctx_t *c, const json_t *schema, const json_t *v, int depth) {
  if (depth > 64)
    return fail(c, NULL, "a schema without reference cycles");
  if (json_is_true(schema) || schema == NULL)
    return 0;
  if (json_is_false(schema))
    return fail(c, v, "nothing (no value is allowed here)");
  const json_t *s = resolve_ref(c, schema);
  if (s == NULL)
    return fail(c, NULL, "a schema whose $ref resolves inside its file");
  int rc;
  if ((rc = check_type(c, s, v)) || (rc = check_enum(c, s, v)) || (rc = check_number(c, s, v)) ||
      (rc = check_string(c, s, v)) || (rc = check_array(c, s, v, depth)) ||
      (rc = check_object(c, s, v, depth)) || (rc = check_any_of(c, s, v, depth)))
    return rc;
  return 0;
}

int lpq__api_validate(const json_t *root, const json_t *schema, const json_t *value,
                 const char *prefix, char *field, size_t field_size, char *expected,
                 size_t expected_size, lpq_error_t *err) {
  if (schema == NULL || value == NULL)
    return lpq_errorf(err, LPQ_EINVAL, "validate: schema and value are required");
  vctx_t c;
  c.root = root ? root : schema;
  snprintf(c.path, sizeof c.path, "%s", prefix ? prefix : "");
  c.expected[0] = c.got[0] = '\0';
  if (check(&c, schema, value, 0) == 0)
    return 0;
  if (field)
    snprintf(field, field_size, "%s", c.path);
  if (expected)
    snprintf(expected, expected_size, "%s", c.expected);
  const char *where = c.path[0] ? c.path : "value";
  if (c.got[0])
    return lpq_errorf(err, LPQ_EINVAL, "%s: expected %s, got %s", where, c.expected, c.got);
  return lpq_errorf(err, LPQ_EINVAL, "%s: expected %s", where, c.expected);
}

int lpq_api_validate(const json_t *schema, const json_t *value, const char *prefix,
                     lpq_error_t *err) {
  return lpq__api_validate(schema, schema, value, prefix, NULL, 0, NULL, 0, err);
}

int lpq_api_check(const char *method, const char *part, const json_t *value, lpq_error_t *err) {
  const json_t *doc = lpq_api_schema(method);
  if (doc == NULL || part == NULL)
    return lpq_errorf(err, LPQ_ENOTFOUND, "no schema for method '%s'", method ? method : "");
  const json_t *schema = json_object_get(doc, part);
  if (schema == NULL)
    schema = json_object_get(json_object_get(doc, "notifications"), part);
  if (schema == NULL)
    return lpq_errorf(err, LPQ_ENOTFOUND, "the schema of %s has no '%s'", method, part);
  return lpq__api_validate(doc, schema, value, part, NULL, 0, NULL, 0, err);
}
