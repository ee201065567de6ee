/*
** tests/test_api_harness.h: an API server with test methods on its own libuv thread, and a
** blocking line client, shared by the tests/test_api*.c suites (header-only: static helpers).
**
** Test methods (all answered on the loop thread):
**   test.echo  {value, n?}          -> value
**   test.add   {a: number, b: number} -> a + b
**   test.later {ms, value}          -> value, ms later from a timer (an async reply)
**   test.fail  {code, message}      -> that error
**   test.watch {count, interval_ms} -> {"subscribed": true}; then count test.tick {i} notifications
**   test.note  {}                   -> null (called as a notification, it only counts)
**   test.counters {}                -> what happened on the loop: notes, closed_subs, ...
*/
#ifndef LPQ_TEST_API_HARNESS_H
#define LPQ_TEST_API_HARNESS_H

#include "coordinator/api/api.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define UNUSED __attribute__((unused))
#define TEST_TOKEN "test-token-0123456789abcdef"

typedef struct harness_t {
  char dir[64], path[128];
  lpq_api_options_t opts;
  uv_loop_t loop;
  uv_async_t stop;
  lpq_api_server_t *server;
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t ready_cond;
  int ready, start_rc;
  char start_msg[512];
  int loop_close_rc;
  int tcp_port;
  void (*setup)(struct harness_t *h); /* registers more methods, on the loop thread */
  /* loop-thread counters */
  long notes, closed_subs, later_done, later_disconnected, watches_done;
} harness_t;

typedef struct later_t {
  uv_timer_t timer;
  harness_t *h;
  lpq_api_call_t *call;
  json_t *value;
} later_t;

typedef struct watch_t {
  uv_timer_t timer;
  harness_t *h;
  lpq_api_sub_t *sub;
  long count, sent;
} watch_t;

static void h_echo(void *ctx, lpq_api_call_t *call, json_t *params) {
  (void)ctx;
  lpq_api_reply(call, json_incref(json_object_get(params, "value")));
}

static void h_add(void *ctx, lpq_api_call_t *call, json_t *params) {
  (void)ctx;
  lpq_api_reply(call, json_real(json_number_value(json_object_get(params, "a")) +
                                json_number_value(json_object_get(params, "b"))));
}

static void h_timer_closed(uv_handle_t *t) {
  free(t->data);
}

static void h_later_fire(uv_timer_t *t) {
  later_t *l = t->data;
  l->h->later_done++;
  if (!lpq_api_call_connected(l->call))
    l->h->later_disconnected++;
  lpq_api_reply(l->call, l->value); /* dropped when the client is gone; never a crash */
  uv_close((uv_handle_t *)&l->timer, h_timer_closed);
}

static void h_later(void *ctx, lpq_api_call_t *call, json_t *params) {
  harness_t *h = ctx;
  later_t *l = calloc(1, sizeof *l);
  l->h = h;
  l->call = call;
  l->value = json_incref(json_object_get(params, "value"));
  uv_timer_init(&h->loop, &l->timer);
  l->timer.data = l;
  uv_timer_start(&l->timer, h_later_fire, (uint64_t)json_integer_value(json_object_get(params, "ms")), 0);
}

static void h_fail(void *ctx, lpq_api_call_t *call, json_t *params) {
  (void)ctx;
  lpq_api_reply_error(call, (int)json_integer_value(json_object_get(params, "code")), NULL, "%s",
                      json_string_value(json_object_get(params, "message")));
}

static void h_watch_closed(void *ctx, lpq_api_sub_t *sub) {
  (void)sub;
  watch_t *w = ctx;
  w->h->closed_subs++;
  w->sub = NULL;
  uv_timer_stop(&w->timer);
  uv_close((uv_handle_t *)&w->timer, h_timer_closed);
}

static void h_watch_tick(uv_timer_t *t) {
  watch_t *w = t->data;
  int rc = lpq_api_notify(w->sub, "test.tick", json_pack("{sI}", "i", (json_int_t)w->sent));
  if (rc != 0)
    return; /* the connection is closing: on_closed follows */
  if (++w->sent == w->count) {
    w->h->watches_done++;
    lpq_api_unsubscribe(&w->sub);
    uv_timer_stop(&w->timer);
    uv_close((uv_handle_t *)&w->timer, h_timer_closed);
  }
}

static void h_watch(void *ctx, lpq_api_call_t *call, json_t *params) {
  harness_t *h = ctx;
  watch_t *w = calloc(1, sizeof *w);
  w->h = h;
  w->count = (long)json_integer_value(json_object_get(params, "count"));
  w->sub = lpq_api_subscribe(call, h_watch_closed, w);
  if (w->sub == NULL) {
    free(w);
    lpq_api_reply_error(call, LPQ_API_E_INTERNAL, NULL, "cannot subscribe");
    return;
  }
  uv_timer_init(&h->loop, &w->timer);
  w->timer.data = w;
  uint64_t every = (uint64_t)json_integer_value(json_object_get(params, "interval_ms"));
  uv_timer_start(&w->timer, h_watch_tick, every, every ? every : 1);
  lpq_api_reply(call, json_pack("{sb}", "subscribed", 1));
}

static void h_note(void *ctx, lpq_api_call_t *call, json_t *params) {
  (void)params;
  ((harness_t *)ctx)->notes++;
  lpq_api_reply(call, NULL);
}

static void h_counters(void *ctx, lpq_api_call_t *call, json_t *params) {
  (void)params;
  harness_t *h = ctx;
  lpq_api_reply(call, json_pack("{sI sI sI sI sI}", "notes", (json_int_t)h->notes, "closed_subs",
                                (json_int_t)h->closed_subs, "later_done",
                                (json_int_t)h->later_done, "later_disconnected",
                                (json_int_t)h->later_disconnected, "watches_done",
                                (json_int_t)h->watches_done));
}

static void h_on_stop(uv_async_t *a) {
  harness_t *h = a->data;
  lpq_api_free(&h->server);
  uv_close((uv_handle_t *)&h->stop, NULL);
}

static void *h_thread(void *arg) {
  harness_t *h = arg;
  lpq_error_t err = {0};
  uv_loop_init(&h->loop);
  h->server = lpq_api_new(&h->loop, &h->opts, &err);
  int rc = h->server ? 0 : -1;
  struct {
    const char *name, *schema;
    lpq_api_handler_fn fn;
  } methods[] = {
      {"test.echo", "{\"type\":\"object\",\"required\":[\"value\"],\"additionalProperties\":false,"
                    "\"properties\":{\"value\":true,\"n\":{\"type\":\"integer\"}}}", h_echo},
      {"test.add", "{\"type\":\"object\",\"required\":[\"a\",\"b\"],\"additionalProperties\":false,"
                   "\"properties\":{\"a\":{\"type\":\"number\"},\"b\":{\"type\":\"number\"}}}", h_add},
      {"test.later", "{\"type\":\"object\",\"required\":[\"ms\"],\"properties\":{\"ms\":{\"type\":"
                     "\"integer\",\"minimum\":0,\"maximum\":10000},\"value\":true}}", h_later},
      {"test.fail", "{\"type\":\"object\",\"required\":[\"code\",\"message\"],\"properties\":"
                    "{\"code\":{\"type\":\"integer\"},\"message\":{\"type\":\"string\"}}}", h_fail},
      {"test.watch", "{\"type\":\"object\",\"required\":[\"count\",\"interval_ms\"],\"properties\":"
                     "{\"count\":{\"type\":\"integer\",\"minimum\":1},\"interval_ms\":{\"type\":"
                     "\"integer\",\"minimum\":0}}}", h_watch},
      {"test.note", NULL, h_note},
      {"test.counters", NULL, h_counters},
  };
  for (size_t i = 0; rc == 0 && i < sizeof methods / sizeof methods[0]; i++)
    rc = lpq_api_register_schema(h->server, methods[i].name, methods[i].schema, methods[i].fn, h,
                                 &err);
  if (rc == 0 && h->setup)
    h->setup(h);
  if (rc == 0) {
    uv_async_init(&h->loop, &h->stop, h_on_stop);
    h->stop.data = h;
    h->tcp_port = lpq_api_tcp_port(h->server);
  }
  pthread_mutex_lock(&h->lock);
  h->ready = 1;
  h->start_rc = rc;
  snprintf(h->start_msg, sizeof h->start_msg, "%s", err.msg);
  pthread_cond_signal(&h->ready_cond);
  pthread_mutex_unlock(&h->lock);
  if (rc != 0)
    lpq_api_free(&h->server);
  uv_run(&h->loop, UV_RUN_DEFAULT);
  h->loop_close_rc = uv_loop_close(&h->loop);
  return NULL;
}

/* Starts a server on a Unix socket in a fresh temp folder (and TCP when tcp is set); opts may
** adjust limits; setup (may be NULL) registers more methods. Returns 0 or the start error (message in h->start_msg). */
static UNUSED int harness_start(harness_t *h, const lpq_api_options_t *opts, int tcp,
                                void (*setup)(harness_t *h)) {
  memset(h, 0, sizeof *h);
  h->setup = setup;
  snprintf(h->dir, sizeof h->dir, "/tmp/lpq_api_XXXXXX");
  cr_assert_not_null(mkdtemp(h->dir));
  snprintf(h->path, sizeof h->path, "%s/api.sock", h->dir);
  if (opts)
    h->opts = *opts;
  h->opts.unix_path = h->path;
  if (tcp) {
    h->opts.tcp_host = "127.0.0.1";
    h->opts.token = TEST_TOKEN;
  }
  pthread_mutex_init(&h->lock, NULL);
  pthread_cond_init(&h->ready_cond, NULL);
  pthread_create(&h->thread, NULL, h_thread, h);
  pthread_mutex_lock(&h->lock);
  while (!h->ready)
    pthread_cond_wait(&h->ready_cond, &h->lock);
  pthread_mutex_unlock(&h->lock);
  if (h->start_rc != 0) {
    pthread_join(h->thread, NULL);
    rmdir(h->dir);
  }
  return h->start_rc;
}

/* Stops the server, joins its thread and checks that every handle was closed. */
static UNUSED void harness_stop(harness_t *h) {
  uv_async_send(&h->stop);
  pthread_join(h->thread, NULL);
  cr_expect_eq(h->loop_close_rc, 0, "the loop still had handles after lpq_api_free");
  cr_expect_neq(access(h->path, F_OK), 0, "the socket file was not removed");
  rmdir(h->dir);
}

/* ---- a blocking line client (tests/api_line_client.c) ------------------------------------ */

typedef struct client_t {
  int fd;
  char *buf;
  size_t len, cap;
} client_t;

int client_connect(client_t *c, const char *path);
int client_connect_tcp(client_t *c, int port);
void client_close(client_t *c);
/* Writes all of data; 0, or -1 when the server closed the connection. */
int client_send_raw(client_t *c, const char *data, size_t len);
int client_send(client_t *c, const char *line);
/* The next line as JSON (NULL on EOF or after timeout_ms). */
json_t *client_read(client_t *c, int timeout_ms);
/* Sends one request and returns the next message (the response, for a plain call). */
json_t *client_call(client_t *c, const char *line);
/* error.code of a response, or 0 when it is a result. */
int error_code(const json_t *r);
const char *error_message(const json_t *r);


/* The server still answers a plain call on a new connection. */
static UNUSED void expect_serving(harness_t *h) {
  client_t c;
  cr_assert_eq(client_connect(&c, h->path), 0, "the server no longer accepts connections");
  json_t *r = client_call(&c, "{\"jsonrpc\":\"2.0\",\"method\":\"test.echo\",\"params\":{\"value\":7},\"id\":1}");
  cr_assert_eq(json_integer_value(json_object_get(r, "result")), 7);
  json_decref(r);
  client_close(&c);
}

/* test.counters' member name. */
static UNUSED long counter(harness_t *h, const char *name) {
  client_t c;
  cr_assert_eq(client_connect(&c, h->path), 0);
  json_t *r = client_call(&c, "{\"jsonrpc\":\"2.0\",\"method\":\"test.counters\",\"id\":1}");
  long v = (long)json_integer_value(json_object_get(json_object_get(r, "result"), name));
  json_decref(r);
  client_close(&c);
  return v;
}

#endif
