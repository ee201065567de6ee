/* tests/test_api.c: the JSON-RPC server on real sockets: calls, batches, notifications, async
** replies, subscriptions, every kind of bad request and limit, vanishing clients, TCP auth;
** after each the server keeps serving. */
#include "tests/test_api_harness.h"

#include <sys/stat.h>
#include <time.h>

static harness_t h;

static void start(void) {
  cr_assert_eq(harness_start(&h, NULL, 0, NULL), 0, "%s", h.start_msg);
}

static void stop(void) {
  harness_stop(&h);
}

TestSuite(api, .init = start, .fini = stop, .timeout = 60);

Test(api, call_and_result) {
  client_t c;
  cr_assert_eq(client_connect(&c, h.path), 0);
  json_t *r = client_call(&c, "{\"jsonrpc\":\"2.0\",\"method\":\"test.add\",\"params\":{\"a\":2,\"b\":0.5},\"id\":\"x\"}");
  cr_assert_str_eq(json_string_value(json_object_get(r, "jsonrpc")), "2.0");
  cr_assert_str_eq(json_string_value(json_object_get(r, "id")), "x");
  cr_assert_float_eq(json_number_value(json_object_get(r, "result")), 2.5, 1e-12);
  cr_assert_null(json_object_get(r, "error"));
  json_decref(r);
  /* CRLF line ends and blank lines are accepted */
  const char *crlf = "\n\r\n{\"jsonrpc\":\"2.0\",\"method\":\"test.echo\",\"params\":{\"value\":[1,{\"k\":null}]},\"id\":9}\r\n";
  cr_assert_eq(client_send_raw(&c, crlf, strlen(crlf)), 0);
  r = client_read(&c, 5000);
  cr_assert_not_null(r);
  cr_assert_eq(json_integer_value(json_object_get(r, "id")), 9);
  json_t *want = json_loads("[1,{\"k\":null}]", 0, NULL);
  cr_assert(json_equal(json_object_get(r, "result"), want));
  json_decref(want);
  json_decref(r);
  client_close(&c);
}

Test(api, socket_file_is_private) {
  struct stat st;
  cr_assert_eq(stat(h.path, &st), 0);
  cr_assert(S_ISSOCK(st.st_mode));
  cr_assert_eq(st.st_mode & 0777, 0600, "mode %o", st.st_mode & 0777);
}

Test(api, pipelined_requests_all_answered) {
  client_t c;
  cr_assert_eq(client_connect(&c, h.path), 0);
  char all[128 * 100] = "";
  for (int i = 0; i < 100; i++) {
    char one[96];
    snprintf(one, sizeof one, "{\"jsonrpc\":\"2.0\",\"method\":\"test.echo\",\"params\":{\"value\":%d},\"id\":%d}\n", i * 3, i);
    strcat(all, one);
  }
  cr_assert_eq(client_send_raw(&c, all, strlen(all)), 0);
  for (int i = 0; i < 100; i++) {
    json_t *r = client_read(&c, 5000);
    cr_assert_not_null(r);
    cr_assert_eq(json_integer_value(json_object_get(r, "result")),
                 3 * json_integer_value(json_object_get(r, "id")));
    json_decref(r);
  }
  client_close(&c);
}

Test(api, parse_error_keeps_connection) {
  client_t c;
  cr_assert_eq(client_connect(&c, h.path), 0);
  json_t *r = client_call(&c, "{\"jsonrpc\":\"2.0\",\"method\":\"test.echo\",");
  cr_assert_eq(error_code(r), LPQ_API_E_PARSE);
  cr_assert(json_is_null(json_object_get(r, "id")));
  cr_assert(strstr(error_message(r), "parse error") != NULL, "%s", error_message(r));
  json_decref(r);
  r = client_call(&c, "\xff\xfe not utf-8");
  cr_assert_eq(error_code(r), LPQ_API_E_PARSE);
  json_decref(r);
  /* the same connection still works */
  r = client_call(&c, "{\"jsonrpc\":\"2.0\",\"method\":\"test.echo\",\"params\":{\"value\":1},\"id\":2}");
  cr_assert_eq(json_integer_value(json_object_get(r, "result")), 1);
  json_decref(r);
  client_close(&c);
}

Test(api, invalid_requests) {
  static const struct {
    const char *line, *needle;
  } bad[] = {
      {"42", "JSON object"},
      {"{\"method\":\"test.echo\",\"id\":1}", "jsonrpc"},
      {"{\"jsonrpc\":\"1.0\",\"method\":\"test.echo\",\"id\":1}", "jsonrpc"},
      {"{\"jsonrpc\":\"2.0\",\"method\":5,\"id\":1}", "method"},
      {"{\"jsonrpc\":\"2.0\",\"method\":\"test.echo\",\"params\":\"x\",\"id\":1}", "params"},
      {"{\"jsonrpc\":\"2.0\",\"method\":\"test.echo\",\"params\":{},\"id\":{}}", "id"},
      {"{\"jsonrpc\":\"2.0\",\"method\":1}", "method"}, /* invalid even without id: answered */
  };
  client_t c;
  cr_assert_eq(client_connect(&c, h.path), 0);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    json_t *r = client_call(&c, bad[i].line);
    cr_assert_eq(error_code(r), LPQ_API_E_INVALID_REQUEST, "%s", bad[i].line);
    cr_assert(strstr(error_message(r), bad[i].needle), "%s: %s", bad[i].line, error_message(r));
    json_decref(r);
  }
  client_close(&c);
  expect_serving(&h);
}

Test(api, unknown_method_names_it) {
  client_t c;
  cr_assert_eq(client_connect(&c, h.path), 0);
  json_t *r = client_call(&c, "{\"jsonrpc\":\"2.0\",\"method\":\"job.frobnicate\",\"id\":3}");
  cr_assert_eq(error_code(r), LPQ_API_E_NO_METHOD);
  cr_assert(strstr(error_message(r), "job.frobnicate"));
  cr_assert_str_eq(json_string_value(json_object_get(json_object_get(json_object_get(r, "error"), "data"), "method")), "job.frobnicate");
  cr_assert_eq(json_integer_value(json_object_get(r, "id")), 3);
  json_decref(r);
  client_close(&c);
}

Test(api, invalid_params_name_the_field) {
  static const struct {
    const char *params, *field, *needle;
  } bad[] = {
      {"{\"a\":1}", "b", "required"},
      {"{\"a\":1,\"b\":\"two\"}", "b", "number"},
      {"{\"a\":1,\"b\":2,\"c\":3}", "c", "no such member"},
      {"[1,2]", "params", "object"},
  };
  client_t c;
  cr_assert_eq(client_connect(&c, h.path), 0);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char line[256];
    snprintf(line, sizeof line, "{\"jsonrpc\":\"2.0\",\"method\":\"test.add\",\"params\":%s,\"id\":1}", bad[i].params);
    json_t *r = client_call(&c, line);
    cr_assert_eq(error_code(r), LPQ_API_E_INVALID_PARAMS, "%s", line);
    json_t *data = json_object_get(json_object_get(r, "error"), "data");
    cr_assert_str_eq(json_string_value(json_object_get(data, "field")), bad[i].field, "%s", line);
    cr_assert(strstr(error_message(r), bad[i].needle), "%s: %s", line, error_message(r));
    json_decref(r);
  }
  /* an integer where an integer is wanted; a real is not one */
  json_t *r = client_call(&c, "{\"jsonrpc\":\"2.0\",\"method\":\"test.echo\",\"params\":{\"value\":1,\"n\":2.5},\"id\":1}");
  cr_assert_eq(error_code(r), LPQ_API_E_INVALID_PARAMS);
  cr_assert(strstr(error_message(r), "n: expected an integer, got 2.5"), "%s", error_message(r));
  json_decref(r);
  client_close(&c);
}

Test(api, handler_errors_pass_through) {
  client_t c;
  cr_assert_eq(client_connect(&c, h.path), 0);
  json_t *r = client_call(&c, "{\"jsonrpc\":\"2.0\",\"method\":\"test.fail\",\"params\":{\"code\":-32010,\"message\":\"job 12 not found\"},\"id\":1}");
  cr_assert_eq(error_code(r), LPQ_API_E_JOB_NOT_FOUND);
  cr_assert_str_eq(error_message(r), "job 12 not found");
  json_decref(r);
  client_close(&c);
}

Test(api, batch_mixed) {
  client_t c;
  cr_assert_eq(client_connect(&c, h.path), 0);
  json_t *r = client_call(&c, "[{\"jsonrpc\":\"2.0\",\"method\":\"test.echo\",\"params\":{\"value\":1},\"id\":1},"
                              "{\"jsonrpc\":\"2.0\",\"method\":\"test.note\"},"
                              "{\"jsonrpc\":\"2.0\",\"method\":\"nope\",\"id\":2},"
                              "{\"jsonrpc\":\"2.0\",\"method\":\"test.later\",\"params\":{\"ms\":30,\"value\":\"late\"},\"id\":3},"
                              "7]");
  cr_assert(json_is_array(r));
  cr_assert_eq(json_array_size(r), 4, "the notification gets no answer, the rest one each");
  int seen[4] = {0};
  size_t i;
  json_t *m;
  json_array_foreach(r, i, m) {
    json_t *id = json_object_get(m, "id");
    if (json_is_null(id)) {
      cr_assert_eq(error_code(m), LPQ_API_E_INVALID_REQUEST);
      seen[0]++;
    } else if (json_integer_value(id) == 1) {
      cr_assert_eq(json_integer_value(json_object_get(m, "result")), 1);
      seen[1]++;
    } else if (json_integer_value(id) == 2) {
      cr_assert_eq(error_code(m), LPQ_API_E_NO_METHOD);
      seen[2]++;
    } else {
      cr_assert_str_eq(json_string_value(json_object_get(m, "result")), "late");
      seen[3]++;
    }
  }
  for (int k = 0; k < 4; k++)
    cr_assert_eq(seen[k], 1);
  json_decref(r);
  client_close(&c);
  cr_assert_eq(counter(&h, "notes"), 1);
}

Test(api, batch_edge_cases) {
  client_t c;
  cr_assert_eq(client_connect(&c, h.path), 0);
  json_t *r = client_call(&c, "[]");
  cr_assert(json_is_object(r));
  cr_assert_eq(error_code(r), LPQ_API_E_INVALID_REQUEST);
  json_decref(r);
  r = client_call(&c, "[1,2]");
  cr_assert_eq(json_array_size(r), 2);
  cr_assert_eq(error_code(json_array_get(r, 1)), LPQ_API_E_INVALID_REQUEST);
  json_decref(r);
  /* only notifications: no answer at all, so the next answer belongs to the next call */
  cr_assert_eq(client_send(&c, "[{\"jsonrpc\":\"2.0\",\"method\":\"test.note\"},{\"jsonrpc\":\"2.0\",\"method\":\"test.note\"}]"), 0);
  r = client_call(&c, "{\"jsonrpc\":\"2.0\",\"method\":\"test.counters\",\"id\":5}");
  cr_assert_eq(json_integer_value(json_object_get(r, "id")), 5);
  cr_assert_eq(json_integer_value(json_object_get(json_object_get(r, "result"), "notes")), 2);
  json_decref(r);
  client_close(&c);
}

Test(api, notification_gets_no_answer_even_on_error) {
  client_t c;
  cr_assert_eq(client_connect(&c, h.path), 0);
  cr_assert_eq(client_send(&c, "{\"jsonrpc\":\"2.0\",\"method\":\"no.such\"}"), 0);
  cr_assert_eq(client_send(&c, "{\"jsonrpc\":\"2.0\",\"method\":\"test.add\",\"params\":{}}"), 0);
  cr_assert_eq(client_send(&c, "{\"jsonrpc\":\"2.0\",\"method\":\"test.note\",\"params\":{}}"), 0);
  json_t *r = client_call(&c, "{\"jsonrpc\":\"2.0\",\"method\":\"test.echo\",\"params\":{\"value\":\"after\"},\"id\":1}");
  cr_assert_str_eq(json_string_value(json_object_get(r, "result")), "after");
  json_decref(r);
  client_close(&c);
  cr_assert_eq(counter(&h, "notes"), 1);
}

Test(api, async_replies_out_of_order) {
  client_t c;
  cr_assert_eq(client_connect(&c, h.path), 0);
  cr_assert_eq(client_send(&c, "{\"jsonrpc\":\"2.0\",\"method\":\"test.later\",\"params\":{\"ms\":200,\"value\":\"slow\"},\"id\":1}"), 0);
  cr_assert_eq(client_send(&c, "{\"jsonrpc\":\"2.0\",\"method\":\"test.later\",\"params\":{\"ms\":0,\"value\":\"fast\"},\"id\":2}"), 0);
  json_t *a = client_read(&c, 5000), *b = client_read(&c, 5000);
  cr_assert(a && b);
  cr_assert_eq(json_integer_value(json_object_get(a, "id")), 2, "the quick answer comes first");
  cr_assert_str_eq(json_string_value(json_object_get(b, "result")), "slow");
  json_decref(a);
  json_decref(b);
  client_close(&c);
}

Test(api, huge_message_closes_connection_server_lives) {
  harness_stop(&h);
  lpq_api_options_t o = {.max_message_bytes = 4096};
  cr_assert_eq(harness_start(&h, &o, 0, NULL), 0, "%s", h.start_msg);
  client_t c;
  cr_assert_eq(client_connect(&c, h.path), 0);
  /* just under the limit passes */
  char *line = malloc(8192);
  int n = snprintf(line, 8192, "{\"jsonrpc\":\"2.0\",\"method\":\"test.echo\",\"params\":{\"value\":\"");
  memset(line + n, 'x', 4000 - (size_t)n);
  strcpy(line + 4000, "\"},\"id\":1}");
  json_t *r = client_call(&c, line);
  cr_assert_eq(json_string_length(json_object_get(r, "result")), 4000 - (size_t)n);
  json_decref(r);
  /* over it, with a newline: an error, then EOF */
  memset(line, 'y', 8000);
  line[8000] = '\0';
  client_send(&c, line);
  r = client_read(&c, 5000);
  cr_assert_not_null(r);
  cr_assert_eq(error_code(r), LPQ_API_E_LIMIT);
  cr_assert(strstr(error_message(r), "4096"), "%s", error_message(r));
  json_decref(r);
  cr_assert_null(client_read(&c, 5000), "the connection should be closed");
  client_close(&c);
  /* over it without any newline at all: detected before the line ends */
  cr_assert_eq(client_connect(&c, h.path), 0);
  client_send_raw(&c, line, 8000);
  r = client_read(&c, 5000);
  cr_assert_not_null(r);
  cr_assert_eq(error_code(r), LPQ_API_E_LIMIT);
  json_decref(r);
  client_close(&c);
  free(line);
  expect_serving(&h);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

Test(api, client_that_never_reads_its_error_is_dropped) {
  harness_stop(&h);
  lpq_api_options_t o = {.max_message_bytes = 65536, .max_write_queue = (size_t)64 << 20};
  cr_assert_eq(harness_start(&h, &o, 0, NULL), 0, "%s", h.start_msg);
  client_t c;
  cr_assert_eq(client_connect(&c, h.path), 0);
  /* answers pile up behind a socket buffer the client never drains */
  size_t big = 60000;
  char *line = malloc(big + 128);
  int n = sprintf(line, "{\"jsonrpc\":\"2.0\",\"method\":\"test.echo\",\"id\":1,\"params\":{\"value\":\"");
  memset(line + n, 'z', big);
  strcpy(line + n + big, "\"}}\n");
  for (int i = 0; i < 100; i++)
    cr_assert_eq(client_send_raw(&c, line, strlen(line)), 0);
  /* then a line over the limit: the server's error waits behind those answers, forever */
  memset(line, 'y', 70000 < big ? 70000 : big);
  cr_assert_eq(client_send_raw(&c, line, big), 0);
  cr_assert_eq(client_send_raw(&c, line, 20000), 0);
  free(line);
  /* The reaper closes the connection after its flush timeout (5 s): wait for that event,
  ** writing to it until a write fails, with a bound far above the timeout so that a loaded
  ** machine cannot break the test. */
  int failed = 0;
  double t0 = now_s();
  while (!failed && now_s() - t0 < 120) {
    failed = client_send_raw(&c, "x", 1) != 0;
    if (!failed)
      usleep(100000);
  }
  cr_assert(failed, "the connection is still open %.0f s after the flush timeout", now_s() - t0);
  client_close(&c);
  expect_serving(&h);
}

Test(api, deep_nesting_rejected) {
  client_t c;
  cr_assert_eq(client_connect(&c, h.path), 0);
  size_t depth = 100000;
  char *line = malloc(2 * depth + 128);
  size_t n = (size_t)sprintf(line, "{\"jsonrpc\":\"2.0\",\"method\":\"test.echo\",\"id\":1,\"params\":{\"value\":");
  memset(line + n, '[', depth);
  memset(line + n + depth, ']', depth);
  strcpy(line + n + 2 * depth, "}}");
  json_t *r = client_call(&c, line);
  cr_assert_eq(error_code(r), LPQ_API_E_LIMIT);
  cr_assert(strstr(error_message(r), "nested deeper than 64"), "%s", error_message(r));
  json_decref(r);
  /* brackets inside strings do not count */
  n = (size_t)sprintf(line, "{\"jsonrpc\":\"2.0\",\"method\":\"test.echo\",\"id\":2,\"params\":{\"value\":\"");
  memset(line + n, '[', 1000);
  strcpy(line + n + 1000, "\\\"\"}}");
  r = client_call(&c, line);
  cr_assert_eq(json_string_length(json_object_get(r, "result")), 1001);
  json_decref(r);
  free(line);
  client_close(&c);
}

Test(api, connection_limit) {
  harness_stop(&h);
  lpq_api_options_t o = {.max_connections = 4};
  cr_assert_eq(harness_start(&h, &o, 0, NULL), 0, "%s", h.start_msg);
  client_t c[4], extra;
  for (int i = 0; i < 4; i++) {
    cr_assert_eq(client_connect(&c[i], h.path), 0);
    json_t *r = client_call(&c[i], "{\"jsonrpc\":\"2.0\",\"method\":\"test.echo\",\"params\":{\"value\":1},\"id\":1}");
    json_decref(r);
  }
  cr_assert_eq(client_connect(&extra, h.path), 0);
  json_t *r = client_read(&extra, 5000);
  cr_assert_not_null(r);
  cr_assert_eq(error_code(r), LPQ_API_E_LIMIT);
  cr_assert(strstr(error_message(r), "too many connections"));
  json_decref(r);
  client_close(&extra);
  client_close(&c[0]);
  /* a freed slot is usable again (the close is noticed asynchronously) */
  for (int tries = 0;; tries++) {
    client_t again;
    cr_assert_eq(client_connect(&again, h.path), 0);
    client_send(&again, "{\"jsonrpc\":\"2.0\",\"method\":\"test.echo\",\"params\":{\"value\":5},\"id\":1}");
    r = client_read(&again, 5000);
    cr_assert_not_null(r);
    int ok = json_integer_value(json_object_get(r, "result")) == 5;
    json_decref(r);
    client_close(&again);
    if (ok)
      break;
    cr_assert_lt(tries, 50);
    usleep(20000);
  }
  for (int i = 1; i < 4; i++)
    client_close(&c[i]);
}

Test(api, batch_and_pending_limits) {
  harness_stop(&h);
  lpq_api_options_t o = {.max_batch = 3, .max_pending = 2};
  cr_assert_eq(harness_start(&h, &o, 0, NULL), 0, "%s", h.start_msg);
  client_t c;
  cr_assert_eq(client_connect(&c, h.path), 0);
  const char *one = "{\"jsonrpc\":\"2.0\",\"method\":\"test.echo\",\"params\":{\"value\":1},\"id\":1}";
  char batch[512];
  snprintf(batch, sizeof batch, "[%s,%s,%s,%s]", one, one, one, one);
  json_t *r = client_call(&c, batch);
  cr_assert_eq(error_code(r), LPQ_API_E_LIMIT);
  cr_assert(strstr(error_message(r), "batch of 4 requests exceeds the limit of 3"), "%s", error_message(r));
  json_decref(r);
  snprintf(batch, sizeof batch, "[%s,%s,%s]", one, one, one);
  r = client_call(&c, batch);
  cr_assert_eq(json_array_size(r), 3, "a batch at the limit is served");
  json_decref(r);
  /* two slow calls in flight; the third is refused at once, the first two still answered */
  for (int i = 1; i <= 3; i++) {
    char line[128];
    snprintf(line, sizeof line, "{\"jsonrpc\":\"2.0\",\"method\":\"test.later\",\"params\":{\"ms\":150,\"value\":%d},\"id\":%d}", i, i);
    cr_assert_eq(client_send(&c, line), 0);
  }
  r = client_read(&c, 5000);
  cr_assert_eq(json_integer_value(json_object_get(r, "id")), 3);
  cr_assert_eq(error_code(r), LPQ_API_E_LIMIT);
  cr_assert(strstr(error_message(r), "more than 2 unanswered requests"), "%s", error_message(r));
  json_decref(r);
  for (int i = 0; i < 2; i++) {
    r = client_read(&c, 5000);
    cr_assert_not_null(r);
    cr_assert_eq(json_integer_value(json_object_get(r, "result")), json_integer_value(json_object_get(r, "id")));
    json_decref(r);
  }
  client_close(&c);
}

Test(api, many_concurrent_clients) {
  enum { CLIENTS = 64, ROUNDS = 20 };
  client_t *c = calloc(CLIENTS, sizeof *c);
  for (int i = 0; i < CLIENTS; i++)
    cr_assert_eq(client_connect(&c[i], h.path), 0);
  for (int round = 0; round < ROUNDS; round++) {
    for (int i = 0; i < CLIENTS; i++) {
      char line[128];
      snprintf(line, sizeof line, "{\"jsonrpc\":\"2.0\",\"method\":\"test.echo\",\"params\":{\"value\":%d},\"id\":%d}", i * 1000 + round, i);
      cr_assert_eq(client_send(&c[i], line), 0);
    }
    for (int i = 0; i < CLIENTS; i++) {
      json_t *r = client_read(&c[i], 5000);
      cr_assert_not_null(r);
      cr_assert_eq(json_integer_value(json_object_get(r, "result")), i * 1000 + round);
      json_decref(r);
    }
  }
  for (int i = 0; i < CLIENTS; i++)
    client_close(&c[i]);
  free(c);
}

Test(api, client_vanishes_mid_request) {
  client_t c;
  cr_assert_eq(client_connect(&c, h.path), 0);
  cr_assert_eq(client_send(&c, "{\"jsonrpc\":\"2.0\",\"method\":\"test.later\",\"params\":{\"ms\":100,\"value\":1},\"id\":1}"), 0);
  /* and half a request */
  client_send_raw(&c, "{\"jsonrpc\":\"2.0\",\"meth", 22);
  usleep(20000);
  client_close(&c);
  for (int tries = 0; counter(&h, "later_done") < 1; tries++) {
    cr_assert_lt(tries, 200);
    usleep(10000);
  }
  cr_assert_eq(counter(&h, "later_disconnected"), 1, "the handler saw that its client left");
  expect_serving(&h);
}

Test(api, watch_notifications_then_end) {
  client_t c;
  cr_assert_eq(client_connect(&c, h.path), 0);
  json_t *r = client_call(&c, "{\"jsonrpc\":\"2.0\",\"method\":\"test.watch\",\"params\":{\"count\":5,\"interval_ms\":5},\"id\":1}");
  cr_assert(json_is_true(json_object_get(json_object_get(r, "result"), "subscribed")));
  json_decref(r);
  for (int i = 0; i < 5; i++) {
    json_t *n = client_read(&c, 5000);
    cr_assert_not_null(n);
    cr_assert_str_eq(json_string_value(json_object_get(n, "method")), "test.tick");
    cr_assert_null(json_object_get(n, "id"), "a notification has no id");
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(n, "params"), "i")), i);
    json_decref(n);
  }
  /* the connection still takes calls */
  r = client_call(&c, "{\"jsonrpc\":\"2.0\",\"method\":\"test.echo\",\"params\":{\"value\":3},\"id\":2}");
  cr_assert_eq(json_integer_value(json_object_get(r, "result")), 3);
  json_decref(r);
  client_close(&c);
  cr_assert_eq(counter(&h, "watches_done"), 1);
}

Test(api, client_vanishes_mid_watch) {
  client_t c;
  cr_assert_eq(client_connect(&c, h.path), 0);
  json_t *r = client_call(&c, "{\"jsonrpc\":\"2.0\",\"method\":\"test.watch\",\"params\":{\"count\":100000,\"interval_ms\":2},\"id\":1}");
  json_decref(r);
  json_t *n = client_read(&c, 5000);
  cr_assert_not_null(n);
  json_decref(n);
  client_close(&c);
  for (int tries = 0; counter(&h, "closed_subs") < 1; tries++) {
    cr_assert_lt(tries, 200, "the daemon was never told that the watcher left");
    usleep(10000);
  }
  expect_serving(&h);
}

Test(api, slow_reader_is_dropped) {
  harness_stop(&h);
  lpq_api_options_t o = {.max_message_bytes = 4096, .max_write_queue = 65536};
  cr_assert_eq(harness_start(&h, &o, 0, NULL), 0, "%s", h.start_msg);
  client_t c;
  cr_assert_eq(client_connect(&c, h.path), 0);
  /* a watch that floods a client that never reads */
  json_t *r = client_call(&c, "{\"jsonrpc\":\"2.0\",\"method\":\"test.watch\",\"params\":{\"count\":100000000,\"interval_ms\":0},\"id\":1}");
  json_decref(r);
  for (int tries = 0; counter(&h, "closed_subs") < 1; tries++) {
    cr_assert_lt(tries, 500, "the server kept queueing for a client that does not read");
    usleep(10000);
  }
  client_close(&c);
  expect_serving(&h);
}

Test(api, stats_count_calls_errors_latency) {
  client_t c;
  cr_assert_eq(client_connect(&c, h.path), 0);
  for (int i = 0; i < 5; i++)
    json_decref(client_call(&c, "{\"jsonrpc\":\"2.0\",\"method\":\"test.echo\",\"params\":{\"value\":1},\"id\":1}"));
  json_decref(client_call(&c, "{\"jsonrpc\":\"2.0\",\"method\":\"test.echo\",\"params\":{},\"id\":1}"));
  json_decref(client_call(&c, "{\"jsonrpc\":\"2.0\",\"method\":\"zzz\",\"id\":1}"));
  json_decref(client_call(&c, "{\"jsonrpc\":\"2.0\",\"method\":\"test.later\",\"params\":{\"ms\":50},\"id\":1}"));
  json_t *r = client_call(&c, "{\"jsonrpc\":\"2.0\",\"method\":\"server.stats\",\"id\":1}");
  json_t *s = json_object_get(r, "result");
  cr_assert_not_null(s, "%s", error_message(r));
  lpq_error_t err;
  cr_assert_eq(lpq_api_check("server.stats", "result", s, &err), 0, "%s", err.msg);
  json_t *echo = json_object_get(json_object_get(s, "methods"), "test.echo");
  cr_assert_eq(json_integer_value(json_object_get(echo, "calls")), 6);
  cr_assert_eq(json_integer_value(json_object_get(echo, "errors")), 1);
  json_t *later = json_object_get(json_object_get(s, "methods"), "test.later");
  /* libuv timers may fire a little early against the wall clock: a margin */
  cr_assert_geq(json_number_value(json_object_get(later, "max_ms")), 40.0, "async latency counts until the reply");
  cr_assert_leq(json_number_value(json_object_get(later, "p50_ms")), json_number_value(json_object_get(later, "max_ms")));
  cr_assert_eq(json_integer_value(json_object_get(json_object_get(s, "errors"), "-32601")), 1);
  cr_assert_eq(json_integer_value(json_object_get(json_object_get(s, "errors"), "-32602")), 1);
  cr_assert_geq(json_integer_value(json_object_get(s, "requests")), 9);
  cr_assert_eq(json_integer_value(json_object_get(json_object_get(s, "connections"), "open")), 1);
  json_decref(r);
  client_close(&c);
}

Test(api, stale_socket_replaced_live_one_refused) {
  /* a second server on the same path: the live one is not stolen */
  uv_loop_t loop;
  uv_loop_init(&loop);
  lpq_api_options_t o = {.unix_path = h.path};
  lpq_error_t err = {0};
  lpq_api_server_t *s = lpq_api_new(&loop, &o, &err);
  cr_assert_null(s);
  cr_assert(strstr(err.msg, "already running"), "%s", err.msg);
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_assert_eq(uv_loop_close(&loop), 0);
  expect_serving(&h);
  /* a socket file left behind by a dead server is replaced */
  char stale[160];
  snprintf(stale, sizeof stale, "%s/stale.sock", h.dir);
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  cr_assert_lt(strlen(stale), sizeof addr.sun_path);
  memcpy(addr.sun_path, stale, strlen(stale) + 1);
  cr_assert_eq(bind(fd, (struct sockaddr *)&addr, sizeof addr), 0);
  close(fd);
  uv_loop_init(&loop);
  o.unix_path = stale;
  s = lpq_api_new(&loop, &o, &err);
  cr_assert_not_null(s, "%s", err.msg);
  lpq_api_free(&s);
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_assert_eq(uv_loop_close(&loop), 0);
  /* a regular file is never replaced */
  FILE *f = fopen(stale, "w");
  fclose(f);
  uv_loop_init(&loop);
  s = lpq_api_new(&loop, &o, &err);
  cr_assert_null(s);
  cr_assert(strstr(err.msg, "not a socket"), "%s", err.msg);
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_assert_eq(uv_loop_close(&loop), 0);
  unlink(stale);
}

Test(api, tcp_needs_auth_first) {
  harness_stop(&h);
  cr_assert_eq(harness_start(&h, NULL, 1, NULL), 0, "%s", h.start_msg);
  cr_assert_gt(h.tcp_port, 0);
  client_t c;
  cr_assert_eq(client_connect_tcp(&c, h.tcp_port), 0);
  json_t *r = client_call(&c, "{\"jsonrpc\":\"2.0\",\"method\":\"test.echo\",\"params\":{\"value\":1},\"id\":1}");
  cr_assert_eq(error_code(r), LPQ_API_E_UNAUTHORIZED);
  json_decref(r);
  r = client_call(&c, "{\"jsonrpc\":\"2.0\",\"method\":\"auth\",\"params\":{\"token\":\"" TEST_TOKEN "\"},\"id\":2}");
  cr_assert(json_is_true(json_object_get(json_object_get(r, "result"), "authenticated")), "%s", error_message(r));
  json_decref(r);
  r = client_call(&c, "{\"jsonrpc\":\"2.0\",\"method\":\"test.echo\",\"params\":{\"value\":4},\"id\":3}");
  cr_assert_eq(json_integer_value(json_object_get(r, "result")), 4);
  json_decref(r);
  client_close(&c);
  /* a wrong token: an error and the connection closes */
  cr_assert_eq(client_connect_tcp(&c, h.tcp_port), 0);
  r = client_call(&c, "{\"jsonrpc\":\"2.0\",\"method\":\"auth\",\"params\":{\"token\":\"guess\"},\"id\":1}");
  cr_assert_eq(error_code(r), LPQ_API_E_UNAUTHORIZED);
  json_decref(r);
  cr_assert_null(client_read(&c, 5000));
  client_close(&c);
  /* the Unix socket needs no auth */
  expect_serving(&h);
}

Test(api, bad_options_refused) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  lpq_error_t err = {0};
  lpq_api_options_t o = {.tcp_host = "127.0.0.1", .token = "short"};
  cr_assert_null(lpq_api_new(&loop, &o, &err));
  cr_assert(strstr(err.msg, "token"), "%s", err.msg);
  o = (lpq_api_options_t){.tcp_host = "not-an-address", .token = TEST_TOKEN};
  cr_assert_null(lpq_api_new(&loop, &o, &err));
  cr_assert(strstr(err.msg, "not-an-address"), "%s", err.msg);
  char longpath[200];
  memset(longpath, 'a', sizeof longpath - 1);
  longpath[0] = '/';
  longpath[sizeof longpath - 1] = '\0';
  o = (lpq_api_options_t){.unix_path = longpath};
  cr_assert_null(lpq_api_new(&loop, &o, &err));
  cr_assert(strstr(err.msg, "longer than"), "%s", err.msg);
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_assert_eq(uv_loop_close(&loop), 0);
}
