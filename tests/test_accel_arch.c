/* tests/test_accel_arch.c: reading architecture files; bad input gives a message naming the
** field. */
#include "accel_sim/accel_sim.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The built-in file with one edit: `path` is a dotted path ("accelerators.1.rows"), value a
** JSON text, or NULL to delete the field. Returns the parse result; err filled. */
static accel_arch_t *parse_edited(const char *path, const char *value, lpq_error_t *err) {
  json_error_t jerr;
  json_t *root = json_loads(accel_default_arch_json, 0, &jerr);
  cr_assert_not_null(root, "%s", jerr.text);
  char buf[128];
  snprintf(buf, sizeof buf, "%s", path);
  json_t *parent = root;
  char *save = NULL, *key = strtok_r(buf, ".", &save), *next;
  while ((next = strtok_r(NULL, ".", &save)) != NULL) {
    parent = json_is_array(parent) ? json_array_get(parent, (size_t)atoi(key))
                                   : json_object_get(parent, key);
    cr_assert_not_null(parent, "no %s in %s", key, path);
    key = next;
  }
  if (value == NULL) {
    cr_assert_eq(json_object_del(parent, key), 0, "cannot delete %s", path);
  } else {
    json_t *v = json_loads(value, JSON_DECODE_ANY, &jerr);
    cr_assert_not_null(v, "%s", jerr.text);
    if (json_is_array(parent))
      json_array_set_new(parent, (size_t)atoi(key), v);
    else
      json_object_set_new(parent, key, v);
  }
  char *text = json_dumps(root, 0);
  json_decref(root);
  accel_arch_t *arch = accel_arch_parse(text, "edited.json", err);
  free(text);
  return arch;
}

Test(accel_arch, builtin_parses_with_lpa_first_and_sources) {
  lpq_error_t err;
  accel_arch_t *arch = accel_arch_default(&err);
  cr_assert_not_null(arch, "%s", err.msg);
  cr_assert(arch->count >= 6);
  cr_assert_str_eq(arch->accels[0].name, "LPA");
  cr_assert_eq(arch->accels[0].family, LPQ_ARITH_LP);
  static const char *const names[] = {"ANT", "BitFusion", "AdaptivFloat", "INT8", "Posit"};
  for (size_t i = 0; i < 5; i++)
    cr_expect_not_null(accel_arch_find(arch, names[i]), "%s missing", names[i]);
  /* LPA modes as in the issue: one 8-bit, two 4-bit or four 2-bit products per cycle. */
  const accel_t *lpa = &arch->accels[0];
  cr_assert_eq(lpa->nmodes, 3);
  for (size_t i = 0; i < 3; i++)
    cr_expect_eq(lpa->modes[i].products_per_cycle * lpa->modes[i].bits, 8.0);
  accel_arch_free(&arch);
  cr_assert_null(arch);
}

Test(accel_arch, every_pe_constant_documents_its_source) {
  json_error_t jerr;
  json_t *root = json_loads(accel_default_arch_json, 0, &jerr);
  cr_assert_not_null(root);
  json_t *accels = json_object_get(root, "accelerators"), *a;
  size_t i;
  json_array_foreach(accels, i, a) {
    const char *name = json_string_value(json_object_get(a, "name"));
    json_t *area = json_object_get(a, "pe_area_um2");
    cr_expect(json_is_string(json_object_get(area, "source")), "%s: pe_area_um2 has no source",
              name);
    json_t *sf = json_object_get(a, "channel_sf"), *c; /* per-channel sf registers */
    const char *ck;
    json_object_foreach(sf, ck, c) {
      cr_expect(json_is_string(json_object_get(c, "source")), "%s: channel_sf.%s has no source",
                name, ck);
    }
    json_t *modes = json_object_get(a, "modes"), *m;
    size_t j;
    json_array_foreach(modes, j, m) {
      cr_expect(json_is_string(json_object_get(json_object_get(m, "pj_per_product"), "source")),
                "%s: modes[%zu].pj_per_product has no source", name, j);
    }
  }
  json_t *mem = json_object_get(root, "memory"), *v;
  const char *key;
  json_object_foreach(mem, key, v) {
    cr_expect(json_is_string(json_object_get(v, "source")), "memory.%s has no source", key);
  }
  json_decref(root);
}

Test(accel_arch, committed_file_is_the_builtin) {
  /* Tests run from the repository root. */
  lpq_error_t err;
  accel_arch_t *file = accel_arch_load("accel_sim/arch/default.json", &err);
  cr_assert_not_null(file, "%s", err.msg);
  accel_arch_t *builtin = accel_arch_default(&err);
  cr_assert_not_null(builtin, "%s", err.msg);
  cr_assert_eq(file->count, builtin->count);
  for (size_t i = 0; i < file->count; i++)
    cr_expect(memcmp(&file->accels[i], &builtin->accels[i], sizeof(accel_t)) == 0,
              "accelerator %zu differs", i);
  accel_arch_free(&file);
  accel_arch_free(&builtin);
}

Test(accel_arch, bad_input_names_the_field) {
  static const struct {
    const char *path, *value, *expect1, *expect2;
  } cases[] = {
      {"accelerators.1.rows", NULL, "accelerators[1] (ANT)", "rows is missing"},
      {"accelerators.1.rows", "0", "accelerators[1] (ANT)", "rows = 0 is out of range"},
      {"accelerators.0.cols", "2.5", "(LPA)", "cols is not a whole number"},
      {"accelerators.2.family", "\"bfloat\"", "(BitFusion)", "family"},
      {"accelerators.0.modes.1.bits", "1", "(LPA)", "modes[1].bits"},
      {"accelerators.0.modes.0.pj_per_product", "\"cheap\"", "modes[0].pj_per_product",
       "not a number"},
      {"accelerators.0.pe_area_um2", "{\"source\": \"x\"}", "pe_area_um2", ".value is missing"},
      {"accelerators.3.mixes.default", "[0.5, 0.5, 0.5]", "mixes.default", "sum to 1"},
      {"memory.dram_gb_per_s", "-1", "memory.dram_gb_per_s", "out of range"},
      {"memory.sram_pj_per_byte", NULL, "memory.sram_pj_per_byte", "missing"},
      {"reference", "\"TPU\"", "reference 'TPU'", "not one of"},
      {"accelerators.4.name", "\"lpa\"", "'lpa'", "used twice"},
      {"accelerators", "[]", "accelerators", "non-empty"},
      {"accelerators.0.channel_sf.bits", "7", "(LPA): channel_sf.bits", "out of range 8..16"},
      {"accelerators.0.channel_sf.add_pj", NULL, "(LPA): channel_sf.add_pj", "missing"},
      {"accelerators.0.channel_sf", "8", "(LPA): channel_sf", "not an object"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    lpq_error_t err = {0, ""};
    accel_arch_t *arch = parse_edited(cases[i].path, cases[i].value, &err);
    cr_expect_null(arch, "%s = %s accepted", cases[i].path, cases[i].value);
    accel_arch_free(&arch);
    cr_expect(err.code < 0);
    cr_expect(strstr(err.msg, "edited.json") && strstr(err.msg, cases[i].expect1) &&
                  strstr(err.msg, cases[i].expect2),
              "%s: message '%s' lacks '%s' / '%s'", cases[i].path, err.msg, cases[i].expect1,
              cases[i].expect2);
  }
}

Test(accel_arch, syntax_errors_and_missing_files) {
  lpq_error_t err;
  cr_assert_null(accel_arch_parse("{\"process\": \n  ,}", "broken.json", &err));
  cr_expect_eq(err.code, LPQ_EFORMAT);
  cr_expect(strstr(err.msg, "broken.json: line 2") != NULL, "%s", err.msg);
  cr_assert_null(accel_arch_load("no/such/arch.json", &err));
  cr_expect_eq(err.code, LPQ_EIO);
  cr_expect(strstr(err.msg, "no/such/arch.json") != NULL, "%s", err.msg);
}

Test(accel_arch, an_accelerator_may_override_memory) {
  lpq_error_t err;
  accel_arch_t *arch =
      parse_edited("accelerators.1.memory", "{\"dram_gb_per_s\": 100}", &err);
  cr_assert_not_null(arch, "%s", err.msg);
  cr_expect_eq(arch->accels[1].dram_gb_per_s, 100);
  cr_expect_neq(arch->accels[0].dram_gb_per_s, 100);
  cr_expect_eq(arch->accels[1].weight_buffer_kb, arch->accels[0].weight_buffer_kb);
  accel_arch_free(&arch);
}
