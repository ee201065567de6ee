/*
** tests/fuzz/fuzz_config.c: candidate configs, lpq_config_parse then lpq_config_bind against a
** fixed list of layers. A config that binds must print (lpq_config_to_json) to a config that
** parses and binds to the same formats.
*/
#include "tests/fuzz/fuzz.h"

#include "common/common.h"

#define FUZZ_CONFIG_LAYERS 6

static const char *const fuzz_config_names[FUZZ_CONFIG_LAYERS] = {
    "conv1", "layer1.0.conv1", "layer1.0.conv2", "Conv_7", "fc", "",
};

static int fuzz_config_same(const lpq_numfmt_t *a, const lpq_numfmt_t *b) {
  return a->family == b->family && a->bits == b->bits && memcmp(a->p, b->p, sizeof a->p) == 0 &&
         a->auto_scale == b->auto_scale && a->per_channel == b->per_channel &&
         a->sf_offset == b->sf_offset;
}

void fuzz_config(const uint8_t *data, size_t size) {
  lpq_error_t err;
  lpq_config_t *c = lpq_config_parse((const char *)data, size, "fuzz", &err);
  if (c == NULL) {
    FUZZ_CHECK(err.msg[0] != '\0', "parse failed without a message");
    return;
  }
  lpq_numfmt_t w[FUZZ_CONFIG_LAYERS], a[FUZZ_CONFIG_LAYERS];
  int rc = lpq_config_bind(c, FUZZ_CONFIG_LAYERS, fuzz_config_names, w, a, &err);
  lpq_config_free(&c);
  FUZZ_CHECK(c == NULL, "lpq_config_free left the pointer set");
  if (rc != 0) {
    FUZZ_CHECK(rc < 0 && err.msg[0] != '\0', "bind failed (%d) without a message", rc);
    return;
  }
  char *json = lpq_config_to_json(FUZZ_CONFIG_LAYERS, fuzz_config_names, w, a);
  FUZZ_CHECK(json != NULL, "lpq_config_to_json failed");
  c = lpq_config_parse(json, strlen(json), "fuzz-again", &err);
  FUZZ_CHECK(c != NULL, "printed config does not parse: %s\n%s", err.msg, json);
  lpq_numfmt_t w2[FUZZ_CONFIG_LAYERS], a2[FUZZ_CONFIG_LAYERS];
  rc = lpq_config_bind(c, FUZZ_CONFIG_LAYERS, fuzz_config_names, w2, a2, &err);
  FUZZ_CHECK(rc == 0, "printed config does not bind: %s\n%s", err.msg, json);
  for (size_t i = 0; i < FUZZ_CONFIG_LAYERS; i++)
    FUZZ_CHECK(fuzz_config_same(&w[i], &w2[i]) && fuzz_config_same(&a[i], &a2[i]),
               "layer %zu changed in the round trip\n%s", i, json);
  lpq_config_free(&c);
  free(json);
}

LPQ_FUZZ_MAIN(fuzz_config)
