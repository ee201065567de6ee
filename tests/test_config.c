/* tests/test_config.c: candidate configs: parsing, binding to layers, errors that name the entry. */
#include "common/common.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

static const char *const names[] = {"conv1", "layer1.0.conv1", "layer1.0.conv2", "fc"};

static lpq_config_t *parse(const char *text, lpq_error_t *err) {
  return lpq_config_parse(text, strlen(text), "test.json", err);
}

Test(config, issue_example_binds_by_name_and_index) {
  lpq_error_t err;
  lpq_config_t *c = parse("{\"version\":1,\"default\":{\"w\":\"lp<8,2,2,0>\",\"a\":\"lp<8,2,2,0>\"},"
                          "\"layers\":[{\"name\":\"conv1\",\"w\":\"lp<6,1,3,-1>\",\"a\":\"fp32\"},"
                          "{\"index\":3,\"a\":\"int8\"}]}",
                          &err);
  cr_assert_not_null(c, "%s", err.msg);
  lpq_numfmt_t w[4], a[4];
  cr_assert_eq(lpq_config_bind(c, 4, names, w, a, &err), 0, "%s", err.msg);
  char buf[LPQ_NUMFMT_TEXT_MAX];
  cr_assert_str_eq(lpq_numfmt_str(&w[0], buf, sizeof buf), "lp<6,1,3,-1>");
  cr_assert_str_eq(lpq_numfmt_str(&a[0], buf, sizeof buf), "fp32");
  cr_assert_str_eq(lpq_numfmt_str(&w[1], buf, sizeof buf), "lp<8,2,2,0>");
  cr_assert_str_eq(lpq_numfmt_str(&w[3], buf, sizeof buf), "lp<8,2,2,0>");
  cr_assert_str_eq(lpq_numfmt_str(&a[3], buf, sizeof buf), "int<8>");
  /* round trip through the writer */
  char *json = lpq_config_to_json(4, names, w, a);
  cr_assert_not_null(json);
  lpq_config_t *c2 = parse(json, &err);
  cr_assert_not_null(c2, "%s\n%s", err.msg, json);
  lpq_numfmt_t w2[4], a2[4];
  cr_assert_eq(lpq_config_bind(c2, 4, names, w2, a2, &err), 0);
  for (int i = 0; i < 4; i++) {
    char x[LPQ_NUMFMT_TEXT_MAX], y[LPQ_NUMFMT_TEXT_MAX];
    cr_assert_str_eq(lpq_numfmt_str(&w[i], x, sizeof x), lpq_numfmt_str(&w2[i], y, sizeof y));
    cr_assert_str_eq(lpq_numfmt_str(&a[i], x, sizeof x), lpq_numfmt_str(&a2[i], y, sizeof y));
  }
  free(json);
  lpq_config_free(&c2);
  lpq_config_free(&c);
  cr_assert_null(c);
}

Test(config, empty_config_is_all_fp32) {
  lpq_config_t *c = parse("{\"version\":1}", NULL);
  cr_assert_not_null(c);
  lpq_numfmt_t w[4], a[4];
  cr_assert_eq(lpq_config_bind(c, 4, names, w, a, NULL), 0);
  for (int i = 0; i < 4; i++)
    cr_assert(w[i].family == LPQ_FAM_FP32 && a[i].family == LPQ_FAM_FP32);
  lpq_config_free(&c);
}

Test(config, errors_name_the_entry) {
  struct {
    const char *json, *needle;
  } bad[] = {
      {"{\"version\":1,", "test.json: line 1"},
      {"[1,2]", "expected a JSON object"},
      {"{\"default\":{}}", "\"version\" must be an integer"},
      {"{\"version\":2}", "version 2 is not supported"},
      {"{\"version\":1,\"defualt\":{}}", "unknown key 'defualt'"},
      {"{\"version\":1,\"default\":{\"w\":8}}", "default.w: expected a format name"},
      {"{\"version\":1,\"default\":{\"w\":\"lp<9,5,2,0>\"}}", "default.w: 'lp<9,5,2,0>': lp format: es = 5"},
      {"{\"version\":1,\"layers\":{}}", "\"layers\" must be an array"},
      {"{\"version\":1,\"layers\":[{\"w\":\"fp32\"}]}", "layers[0]: give \"name\" or \"index\""},
      {"{\"version\":1,\"layers\":[{\"name\":\"fc\"},{\"name\":\"fc\",\"a\":\"int<1>\"}]}",
       "layers[1].a: 'int<1>'"},
      {"{\"version\":1,\"layers\":[{\"name\":3}]}", "layers[0].name: expected a string"},
      {"{\"version\":1,\"layers\":[{\"index\":-1}]}", "layers[0].index"},
      {"{\"version\":1,\"layers\":[{\"name\":\"fc\",\"wieght\":\"int8\"}]}", "unknown key 'wieght'"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    lpq_error_t err = {0};
    lpq_config_t *c = parse(bad[i].json, &err);
    cr_assert_null(c, "accepted: %s", bad[i].json);
    cr_assert(strstr(err.msg, bad[i].needle) != NULL, "%s -> '%s' lacks '%s'", bad[i].json,
              err.msg, bad[i].needle);
  }
}

Test(config, bind_errors_name_the_layer) {
  struct {
    const char *json, *needle;
  } bad[] = {
      {"{\"version\":1,\"layers\":[{\"name\":\"conv9\",\"w\":\"int8\"}]}",
       "layers[0]: the model has no quantizable layer named 'conv9'"},
      {"{\"version\":1,\"layers\":[{\"index\":4}]}", "index 4 is out of range (the model has 4"},
      {"{\"version\":1,\"layers\":[{\"index\":3},{\"name\":\"fc\"}]}",
       "layers[1]: layer 'fc' is already set by layers[0]"},
      {"{\"version\":1,\"layers\":[{\"index\":2,\"name\":\"fc\"}]}",
       "layers[0]: index 2 does not name layer 'fc'"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    lpq_error_t err = {0};
    lpq_config_t *c = parse(bad[i].json, &err);
    cr_assert_not_null(c, "%s", err.msg);
    lpq_numfmt_t w[4], a[4];
    cr_assert_neq(lpq_config_bind(c, 4, names, w, a, &err), 0);
    cr_assert(strstr(err.msg, bad[i].needle) != NULL, "'%s' lacks '%s'", err.msg, bad[i].needle);
    lpq_config_free(&c);
  }
}

Test(config, load_reports_missing_file) {
  lpq_error_t err;
  cr_assert_null(lpq_config_load("no/such/config.json", &err));
  cr_assert(strstr(err.msg, "no/such/config.json") != NULL);
  cr_assert_eq(err.code, LPQ_EIO);
}
