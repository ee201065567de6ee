/* tests/test_api_schema.c: the API's schema files (every method has params and result schemas
** that the validator understands) and the validator itself: each keyword accepts what it should
** and names the field and the expectation when it refuses; base64 round trips. */
#include "coordinator/api/api.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

static const char *const methods[] = {"auth", "blob.put", "db.query", "db.tables", "job.cancel",
                                      "job.export", "job.get", "job.list", "job.pareto",
                                      "job.submit", "job.watch", "server.stats", "worker.list"};

/* Walks a schema and fails on keywords the validator does not implement, so a schema file
** never promises a check that is silently skipped. */
static void only_known_keywords(const char *method, const json_t *schema, const char *where) {
  static const char *const known[] = {
      "type", "enum", "const", "required", "properties", "additionalProperties", "minProperties",
      "maxProperties", "items", "minItems", "maxItems", "minimum", "maximum", "minLength",
      "maxLength", "pattern", "anyOf", "$ref", "description", "title", "default"};
  if (!json_is_object(schema))
    return;
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)schema, key, v) {
    int ok = 0;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
      ok |= strcmp(key, known[i]) == 0;
    cr_expect(ok, "%s: %s uses '%s', which lpq_api_validate does not check", method, where, key);
    if (!strcmp(key, "properties")) {
      const char *name;
      json_t *sub;
      json_object_foreach(v, name, sub) only_known_keywords(method, sub, name);
    } else if (!strcmp(key, "items") || !strcmp(key, "additionalProperties")) {
      only_known_keywords(method, v, key);
    } else if (!strcmp(key, "anyOf")) {
      size_t i;
      json_t *sub;
      json_array_foreach(v, i, sub) only_known_keywords(method, sub, "anyOf");
    }
  }
}

Test(api_schema, every_method_has_params_and_result) {
  for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
    const json_t *doc = lpq_api_schema(methods[i]);
    cr_assert_not_null(doc, "schema/api/%s.json is missing or not JSON", methods[i]);
    cr_expect_str_eq(json_string_value(json_object_get(doc, "title")), methods[i]);
    cr_expect(json_is_object(json_object_get(doc, "params")), "%s: no params", methods[i]);
    cr_expect(json_is_object(json_object_get(doc, "result")), "%s: no result", methods[i]);
    cr_expect(json_is_string(json_object_get(doc, "description")), "%s: no description", methods[i]);
    only_known_keywords(methods[i], json_object_get(doc, "params"), "params");
    only_known_keywords(methods[i], json_object_get(doc, "result"), "result");
    const char *name;
    json_t *def;
    json_object_foreach(json_object_get(doc, "$defs"), name, def) only_known_keywords(methods[i], def, name);
    /* every local $ref resolves */
    char *text = json_dumps(doc, JSON_COMPACT);
    for (const char *p = text; (p = strstr(p, "\"$ref\":\"#/$defs/")) != NULL; p++) {
      char ref[64];
      cr_assert_eq(sscanf(p + 16, "%63[^\"]", ref), 1);
      cr_expect_not_null(json_object_get(json_object_get(doc, "$defs"), ref), "%s: $ref %s", methods[i], ref);
    }
    free(text);
  }
  cr_assert_null(lpq_api_schema("no.such"));
}

static int check(const char *method, const char *part, const char *json, lpq_error_t *err) {
  json_error_t jerr;
  json_t *v = json_loads(json, JSON_DECODE_ANY, &jerr);
  cr_assert_not_null(v, "%s: %s", json, jerr.text);
  int rc = lpq_api_check(method, part, v, err);
  json_decref(v);
  return rc;
}

Test(api_schema, submit_params) {
  lpq_error_t err;
  cr_assert_eq(check("job.submit", "params",
                     "{\"name\":\"r18\",\"model\":{\"path\":\"/m.onnx\"},\"data\":{\"hash\":"
                     "\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"},"
                     "\"labels\":null,\"seed\":3,\"settings\":{\"mode\":\"pareto\",\"population\":8,"
                     "\"constraints\":{\"mean_weight_bits_max\":4.5},\"weight_only\":true}}", &err),
               0, "%s", err.msg);
  static const struct {
    const char *json, *needle;
  } bad[] = {
      {"{\"data\":{\"path\":\"/d\"}}", "model: expected a required member of type object"},
      {"{\"model\":{},\"data\":{\"path\":\"/d\"}}", "model: expected an object with exactly one of"},
      {"{\"model\":{\"path\":\"/m\",\"hash\":\"x\"},\"data\":{\"path\":\"/d\"}}", "exactly one of"},
      {"{\"model\":{\"hash\":\"ABC\"},\"data\":{\"path\":\"/d\"}}", "model.hash: expected a string matching"},
      {"{\"model\":{\"path\":\"/m\"},\"data\":{\"path\":\"/d\"},\"labels\":{\"url\":\"x\"}}", "labels.url: expected no such member"},
      {"{\"model\":{\"path\":\"/m\"},\"data\":{\"path\":\"/d\"},\"labels\":5}", "labels: expected null or object, got 5"},
      {"{\"model\":{\"path\":\"/m\"},\"data\":{\"path\":\"/d\"},\"seed\":-1}", "seed: expected an integer >= 0, got -1"},
      {"{\"model\":{\"path\":\"/m\"},\"data\":{\"path\":\"/d\"},\"settings\":{\"mode\":\"fast\"}}", "settings.mode: expected one of \"pareto\", \"scalar\", got \"fast\""},
      {"{\"model\":{\"path\":\"/m\"},\"data\":{\"path\":\"/d\"},\"settings\":{\"population\":2}}", "settings.population: expected an integer >= 4, got 2"},
      {"{\"model\":{\"path\":\"/m\"},\"data\":{\"path\":\"/d\"},\"settings\":{\"population\":8.0}}", "settings.population: expected an integer, got 8.0"},
      /* a number field given an integer out of range says "a number" (it said "an integer") */
      {"{\"model\":{\"path\":\"/m\"},\"data\":{\"path\":\"/d\"},\"settings\":{\"lambda\":100}}", "settings.lambda: expected a number <= 16, got 100"},
      {"{\"model\":{\"path\":\"/m\"},\"data\":{\"path\":\"/d\"},\"settings\":{\"constraints\":{\"mean_weight_bits_max\":\"4\"}}}", "settings.constraints.mean_weight_bits_max: expected a number, got \"4\""},
      {"{\"model\":{\"path\":\"\"},\"data\":{\"path\":\"/d\"}}", "model.path: expected a string of at least 1 characters"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    cr_assert_eq(check("job.submit", "params", bad[i].json, &err), LPQ_EINVAL, "%s", bad[i].json);
    cr_expect(strstr(err.msg, bad[i].needle), "%s\n  got: %s\n  want: %s", bad[i].json, err.msg, bad[i].needle);
  }
}

Test(api_schema, arrays_and_enums) {
  lpq_error_t err;
  cr_assert_eq(check("job.list", "params", "{\"status\":[\"done\",\"failed\"],\"limit\":5}", &err), 0, "%s", err.msg);
  cr_assert_eq(check("job.list", "params", "{\"status\":[\"done\",\"asleep\"]}", &err), LPQ_EINVAL);
  cr_assert(strstr(err.msg, "status[1]: expected one of"), "%s", err.msg);
  cr_assert_eq(check("job.export", "params", "{\"job\":1,\"what\":[]}", &err), LPQ_EINVAL);
  cr_assert(strstr(err.msg, "what: expected an array of at least 1 items"), "%s", err.msg);
  cr_assert_eq(check("db.query", "params", "{\"table\":\"v_pareto; DROP TABLE jobs\"}", &err), LPQ_EINVAL);
  cr_assert(strstr(err.msg, "table: expected a string matching"), "%s", err.msg);
  cr_assert_eq(check("db.query", "params", "{\"table\":\"jobs\",\"where\":{\"status\":\"done\",\"id\":3}}", &err), 0, "%s", err.msg);
  cr_assert_eq(check("db.query", "params", "{\"table\":\"jobs\",\"where\":{\"status\":[1]}}", &err), LPQ_EINVAL);
  cr_assert(strstr(err.msg, "where.status"), "%s", err.msg);
  cr_assert_eq(check("worker.list", "params", "{\"x\":1}", &err), LPQ_EINVAL);
  cr_assert(strstr(err.msg, "known: none"), "%s", err.msg);
}

Test(api_schema, results_and_notifications) {
  lpq_error_t err;
  cr_assert_eq(check("job.watch", "job.progress", "{\"job\":1,\"status\":\"running\",\"generation\":2,\"evaluations\":80,\"progress\":0.4,\"eta_s\":null}", &err), 0, "%s", err.msg);
  cr_assert_eq(check("job.watch", "job.progress", "{\"job\":1,\"status\":\"running\",\"generation\":2,\"evaluations\":80,\"progress\":1.4}", &err), LPQ_EINVAL);
  cr_assert(strstr(err.msg, "progress: expected a number <= 1"), "%s", err.msg);
  cr_assert_eq(check("job.get", "result", "{\"job\":1,\"name\":\"a\",\"status\":\"done\",\"settings\":{},\"generation\":3,\"evaluations\":9,\"eta_s\":null,\"best\":{\"genome\":\"00000000000000zz\",\"l_co\":1,\"l_cr\":1}}", &err), LPQ_EINVAL);
  cr_assert(strstr(err.msg, "best.genome"), "%s", err.msg);
  cr_assert_eq(check("job.get", "nothing", "{}", &err), LPQ_ENOTFOUND);
  cr_assert_eq(check("no.such", "params", "{}", &err), LPQ_ENOTFOUND);
}

Test(api_schema, validate_without_a_file) {
  json_t *schema = json_loads("{\"type\":\"object\",\"required\":[\"a\"],\"properties\":{\"a\":{\"type\":[\"string\",\"null\"],\"maxLength\":3}}}", 0, NULL);
  lpq_error_t err;
  json_t *ok = json_loads("{\"a\":\"h\xc3\xa9llo\"}", 0, NULL); /* 5 characters, 6 bytes */
  cr_assert_eq(lpq_api_validate(schema, ok, "p", &err), LPQ_EINVAL);
  cr_assert(strstr(err.msg, "p.a: expected a string of at most 3 characters"), "%s", err.msg);
  json_decref(ok);
  ok = json_loads("{\"a\":\"h\xc3\xa9y\"}", 0, NULL); /* 3 characters, 4 bytes */
  cr_assert_eq(lpq_api_validate(schema, ok, "p", &err), 0, "%s", err.msg);
  json_decref(ok);
  ok = json_loads("{\"a\":null}", 0, NULL);
  cr_assert_eq(lpq_api_validate(schema, ok, NULL, &err), 0);
  json_decref(ok);
  ok = json_loads("{\"a\":true}", 0, NULL);
  cr_assert_eq(lpq_api_validate(schema, ok, NULL, &err), LPQ_EINVAL);
  cr_assert(strstr(err.msg, "a: expected string or null, got true"), "%s", err.msg);
  json_decref(ok);
  json_decref(schema);
}

Test(api_schema, base64_round_trip) {
  unsigned char data[300];
  for (size_t i = 0; i < sizeof data; i++)
    data[i] = (unsigned char)(i * 37 + 11);
  for (size_t len = 0; len < sizeof data; len += 1 + len / 7) {
    char *text = lpq_base64_encode(data, len);
    cr_assert_not_null(text);
    cr_assert_eq(strlen(text), (len + 2) / 3 * 4);
    unsigned char *back;
    size_t back_len;
    lpq_error_t err;
    cr_assert_eq(lpq_base64_decode(text, strlen(text), &back, &back_len, &err), 0, "%s", err.msg);
    cr_assert_eq(back_len, len);
    cr_assert_eq(memcmp(back, data, len), 0);
    free(back);
    free(text);
  }
  char *hello = lpq_base64_encode("hello", 5);
  cr_assert_str_eq(hello, "aGVsbG8="); /* RFC 4648 alphabet and padding */
  free(hello);
  unsigned char *out;
  size_t n;
  lpq_error_t err;
  cr_assert_eq(lpq_base64_decode("aGVs*G8=", 8, &out, &n, &err), LPQ_EFORMAT);
  cr_assert(strstr(err.msg, "offset 4"), "%s", err.msg);
  cr_assert_eq(lpq_base64_decode("aGVsbG8", 7, &out, &n, &err), LPQ_EFORMAT);
  cr_assert_eq(lpq_base64_decode("aG=sbG8=", 8, &out, &n, &err), LPQ_EFORMAT);
}
