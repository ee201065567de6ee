/*
** tests/fuzz/fuzz_settings.c: a job's settings, lpq_job_settings_parse. Settings that parse
** must print (lpq_job_settings_json) to text that parses to the same settings, and that text
** must print the same again (the canonical form is a fixed point).
*/
#include "tests/fuzz/fuzz.h"

#include "common/common.h"

void fuzz_settings(const uint8_t *data, size_t size) {
  char *text = fuzz_text(data, size);
  lpq_job_settings_t s;
  lpq_error_t err;
  int rc = lpq_job_settings_parse(text, &s, &err);
  free(text);
  if (rc != 0) {
    FUZZ_CHECK(rc < 0 && err.msg[0] != '\0', "parse failed (%d) without a message", rc);
    return;
  }
  char *json = lpq_job_settings_json(&s);
  FUZZ_CHECK(json != NULL, "lpq_job_settings_json failed");
  lpq_job_settings_t again;
  rc = lpq_job_settings_parse(json, &again, &err);
  FUZZ_CHECK(rc == 0, "printed settings do not parse: %s\n%s", err.msg, json);
  char *json2 = lpq_job_settings_json(&again);
  FUZZ_CHECK(json2 != NULL && strcmp(json, json2) == 0, "round trip changed the settings\n%s\n%s",
             json, json2 ? json2 : "(null)");
  double g[3];
  lpq_job_constraints(&again, 4.0, 8, 1e-3, g);
  free(json);
  free(json2);
}

LPQ_FUZZ_MAIN(fuzz_settings)
