/* tests/test_job_settings.c: a job's local_terms and local_dim settings (common/job.c): parsed,
** written to the canonical text only when set (a job stored before them keeps its text and is
** scored exactly), bad values refused with the field's name, and the worker's mode names are
** the settings' names. */
#include "common/common.h"
#include "worker/worker.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

Test(job_settings, local_terms_round_trip_and_absent_is_exact) {
  lpq_job_settings_t js;
  lpq_error_t err;
  cr_assert_eq(lpq_job_settings_parse("{\"population\": 8}", &js, &err), 0, "%s", err.msg);
  cr_assert_eq(js.local_terms, 0, "absent: exact");
  cr_assert_eq(js.local_dim, 0);
  char *text = lpq_job_settings_json(&js);
  cr_assert(text && !strstr(text, "local_"), "the canonical text of an exact job: %s", text);
  free(text);
  const char *modes[] = {"exact", "projected", "pooled"};
  for (int m = 0; m < 3; m++) {
    char in[128];
    snprintf(in, sizeof in, "{\"local_terms\": \"%s\", \"local_dim\": 64}", modes[m]);
    cr_assert_eq(lpq_job_settings_parse(in, &js, &err), 0, "%s", err.msg);
    cr_assert_eq(js.local_terms, m);
    cr_assert_eq(js.local_dim, 64);
    cr_assert_str_eq(lpq_local_terms_name(m), modes[m]);
    cr_assert_str_eq(lpq_local_mode_name((lpq_local_mode_t)m), modes[m]);
    text = lpq_job_settings_json(&js);
    lpq_job_settings_t back;
    cr_assert_eq(lpq_job_settings_parse(text, &back, &err), 0, "%s: %s", text, err.msg);
    cr_assert_eq(back.local_terms, m, "%s", text);
    cr_assert_eq(back.local_dim, 64, "%s", text);
    free(text);
  }
  cr_assert_null(lpq_local_terms_name(3));
  cr_assert_null(lpq_local_terms_name(-1));
}

Test(job_settings, bad_local_terms_are_named) {
  lpq_job_settings_t js;
  lpq_error_t err;
  cr_assert_eq(lpq_job_settings_parse("{\"local_terms\": \"fast\"}", &js, &err), LPQ_EINVAL);
  cr_assert(strstr(err.msg, "settings.local_terms") && strstr(err.msg, "projected"), "%s",
            err.msg);
  cr_assert_eq(lpq_job_settings_parse("{\"local_terms\": 1}", &js, &err), LPQ_EINVAL);
  cr_assert_eq(lpq_job_settings_parse("{\"local_dim\": 0}", &js, &err), LPQ_EINVAL);
  cr_assert(strstr(err.msg, "settings.local_dim"), "%s", err.msg);
  cr_assert_eq(lpq_job_settings_parse("{\"local_dim\": 2097152}", &js, &err), LPQ_EINVAL);
}
