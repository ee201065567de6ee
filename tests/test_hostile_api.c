/* tests/test_hostile_api.c: the API library under a hostile client (issue 17): every request
** gets exactly one reply, also when a handler's error text is not valid UTF-8 or is cut inside
** a character; unauthenticated TCP connections have their own limit and a deadline, and the
** Unix socket keeps room for the local administrator. */
#include "tests/test_api_harness.h"

#include <time.h>

static harness_t h;

/* test.raw {kind}: replies with an error whose text is not valid UTF-8 ("bytes": raw bytes of a
** corrupt file's node name; "cut": multi-byte characters past the message's 1024 bytes). */
static void h_raw(void *ctx, lpq_api_call_t *call, json_t *params) {
  (void)ctx;
  const char *kind = json_string_value(json_object_get(params, "kind"));
  if (strcmp(kind, "bytes") == 0) {
    lpq_api_reply_error(call, LPQ_API_E_BAD_INPUT, json_pack("{ss}", "field", "model"),
                        "model: node '%s' has an unknown operator", "conv\xff\xfe\xc3(");
  } else {
    char text[2048] = "";
    for (int i = 0; i < 600; i++)
      strcat(text, "\xc3\xa9"); /* 1200 bytes of e-acute: cut by the 1024-byte message buffer */
    lpq_api_reply_error(call, LPQ_API_E_IO, NULL, "x%s", text);
  }
}

static void setup(harness_t *hh) {
  lpq_error_t err;
  lpq_api_register_schema(hh->server, "test.raw", NULL, h_raw, hh, &err);
}

TestSuite(hostile_api, .timeout = 60);

static int valid_utf8(const char *s) {
  char *copy = strdup(s);
  size_t fixed = lpq_api_utf8_clean(copy);
  int same = strcmp(copy, s) == 0;
  free(copy);
  return fixed == 0 && same;
}

Test(hostile_api, error_text_not_utf8_is_answered) {
  cr_assert_eq(harness_start(&h, NULL, 0, setup), 0, "%s", h.start_msg);
  client_t c;
  cr_assert_eq(client_connect(&c, h.path), 0);
  const char *kinds[] = {"bytes", "cut"};
  for (int i = 0; i < 2; i++) {
    char line[160];
    snprintf(line, sizeof line, "{\"jsonrpc\":\"2.0\",\"method\":\"test.raw\",\"params\":"
             "{\"kind\":\"%s\"},\"id\":%d}", kinds[i], i + 1);
    cr_assert_eq(client_send(&c, line), 0);
    json_t *r = client_read(&c, 3000);
    cr_assert_not_null(r, "no reply to test.raw %s: the request was never answered", kinds[i]);
    cr_assert_eq(json_integer_value(json_object_get(r, "id")), i + 1);
    cr_assert_neq(error_code(r), 0);
    const char *msg = error_message(r);
    cr_assert_not_null(msg);
    cr_assert(valid_utf8(msg));
    if (i == 0) {
      cr_assert(strstr(msg, "conv??") != NULL, "%s", msg);
      cr_assert_str_eq(json_string_value(json_object_get(
                           json_object_get(json_object_get(r, "error"), "data"), "field")),
                       "model");
    } else {
      cr_assert_gt(strlen(msg), 1000);
      cr_assert_eq(strlen(msg) % 2, 1, "cut inside a character: %zu bytes", strlen(msg));
    }
    json_decref(r);
  }
  client_close(&c);
  expect_serving(&h);
  harness_stop(&h);
}

Test(hostile_api, utf8_helpers) {
  char a[] = "ok \xe2\x82\xac \xff end \xe2\x82";
  cr_assert_eq(lpq_api_utf8_clean(a), 2);
  cr_assert_str_eq(a, "ok \xe2\x82\xac ? end ");
  char b[] = "\xed\xa0\x80 \xc0\xaf"; /* a surrogate and an overlong '/' */
  lpq_api_utf8_clean(b);
  cr_assert(valid_utf8(b), "%s", b);
  char c[] = "ab\xe2\x82\xac";
  cr_assert_eq(lpq_api_utf8_cut(c, 4), 2);
  cr_assert_str_eq(c, "ab");
}

/* TCP clients that do not authenticate have their own small limit and a deadline; the Unix
** socket keeps room for the local administrator. */
Test(hostile_api, unauthenticated_tcp_cannot_lock_out) {
  lpq_api_options_t o = {.max_connections = 12, .unix_reserve = 4, .max_unauthenticated = 3,
                         .auth_timeout_ms = 400};
  cr_assert_eq(harness_start(&h, &o, 1, setup), 0, "%s", h.start_msg);
  client_t idle[3], extra;
  for (int i = 0; i < 3; i++)
    cr_assert_eq(client_connect_tcp(&idle[i], h.tcp_port), 0);
  cr_assert_eq(client_connect_tcp(&extra, h.tcp_port), 0);
  json_t *r = client_read(&extra, 2000);
  cr_assert_eq(error_code(r), LPQ_API_E_LIMIT, "a 4th unauthenticated connection was kept");
  json_decref(r);
  client_close(&extra);
  /* the local administrator still gets in */
  expect_serving(&h);
  /* a client that sends a byte every 100 ms never finishes its auth: dropped at the deadline */
  const char *auth = "{\"jsonrpc\":\"2.0\",\"method\":\"auth\",\"params\":{\"token\":\"x\"}}";
  for (int i = 0; i < 12; i++) {
    if (client_send_raw(&idle[0], auth + i, 1) != 0)
      break;
    usleep(100000);
  }
  for (int i = 0; i < 3; i++) {
    r = client_read(&idle[i], 3000);
    cr_assert_eq(error_code(r), LPQ_API_E_UNAUTHORIZED, "connection %d was not dropped", i);
    cr_assert(strstr(error_message(r), "within"), "%s", error_message(r));
    json_decref(r);
    cr_assert_null(client_read(&idle[i], 2000), "connection %d still open", i);
    client_close(&idle[i]);
  }
  /* an authenticated TCP client is not held to the deadline */
  client_t ok;
  cr_assert_eq(client_connect_tcp(&ok, h.tcp_port), 0);
  r = client_call(&ok, "{\"jsonrpc\":\"2.0\",\"method\":\"auth\",\"params\":{\"token\":\""
                  TEST_TOKEN "\"},\"id\":1}");
  cr_assert_eq(error_code(r), 0);
  json_decref(r);
  usleep(900000);
  r = client_call(&ok, "{\"jsonrpc\":\"2.0\",\"method\":\"test.echo\",\"params\":{\"value\":3},\"id\":2}");
  cr_assert_eq(json_integer_value(json_object_get(r, "result")), 3);
  json_decref(r);
  client_close(&ok);
  harness_stop(&h);
}

/* A request that arrives too slowly (a byte every 100 ms) is dropped, also after authentication
** (here the Unix socket, authenticated from the start); a connection that idles between
** requests is not. */
Test(hostile_api, slow_request_is_dropped_after_auth_too) {
  lpq_api_options_t o = {.request_timeout_ms = 400, .min_request_rate = 1024};
  cr_assert_eq(harness_start(&h, &o, 0, setup), 0, "%s", h.start_msg);
  client_t slow, idle;
  cr_assert_eq(client_connect(&slow, h.path), 0);
  cr_assert_eq(client_connect(&idle, h.path), 0);
  const char *req = "{\"jsonrpc\":\"2.0\",\"method\":\"test.echo\",\"params\":{\"value\":3},\"id\":1}";
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (size_t i = 0; i < strlen(req); i++) {
    if (client_send_raw(&slow, req + i, 1) != 0)
      break;
    usleep(100000);
    struct pollfd p = {.fd = slow.fd, .events = POLLIN};
    if (poll(&p, 1, 0) > 0)
      break; /* the server spoke: the error */
  }
  json_t *r = client_read(&slow, 3000);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double took = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
  cr_assert_eq(error_code(r), LPQ_API_E_LIMIT, "the slow request was kept (%.1f s)", took);
  cr_assert(strstr(error_message(r), "not complete"), "%s", error_message(r));
  cr_assert_lt(took, 3.0);
  json_decref(r);
  cr_assert_null(client_read(&slow, 2000), "the slow connection is still open");
  client_close(&slow);
  /* idle between requests is fine */
  r = client_call(&idle, req);
  cr_assert_eq(json_integer_value(json_object_get(r, "result")), 3);
  json_decref(r);
  client_close(&idle);
  harness_stop(&h);
}
