/*
** tests/fuzz/fuzz_api.c: the JSON-RPC request handling of the API server (nesting limit,
** parsing, batches, notifications, the request checks, method lookup and schema validation
** of every method's params), one line after another on one connection. The server is driven
** without a listening socket: one server, one authenticated connection on a socketpair, every
** schema'd method registered with a handler that echoes its params, each line handed to
** api_handle_line as the framing would.
*/
#include "tests/fuzz/fuzz.h"

#include "coordinator/api/api_internal.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

extern const char *const lpq__api_schema_texts[][2];
extern const size_t lpq__api_schema_count;

static void api_fuzz_echo(void *ctx, lpq_api_call_t *call, json_t *params) {
  (void)ctx;
  lpq_api_reply(call, json_deep_copy(params));
}

/* Answers what the peer was sent, so the socket never fills (the answers are dropped). */
static void api_fuzz_drain(int fd) {
  char buf[65536];
  while (recv(fd, buf, sizeof buf, MSG_DONTWAIT) > 0) {
  }
}

/* Hands each '\n'-separated line of data to the request handling, on one authenticated
** connection of a server without sockets whose every schema'd method echoes its params; frees
** everything. 0, or a negative LPQ_E* when the set-up itself failed. */
static int api_fuzz_lines(const char *data, size_t len) {
  uv_loop_t loop;
  if (uv_loop_init(&loop) != 0)
    return LPQ_EIO;
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    uv_loop_close(&loop);
    return LPQ_EIO;
  }
  lpq_api_server_t *s = calloc(1, sizeof *s);
  api_conn_t *c = calloc(1, sizeof *c);
  int rc = s && c ? 0 : LPQ_ENOMEM;
  if (rc == 0) {
    /* The limits lpq_api_new defaults to. */
    s->loop = &loop;
    s->opts.max_message_bytes = (size_t)64 << 20;
    s->opts.max_depth = 64;
    s->opts.max_connections = 256;
    s->opts.max_batch = 256;
    s->opts.max_pending = 1024;
    s->opts.max_write_queue = 2 * s->opts.max_message_bytes;
    s->start_ns = lpq__api_now_ns();
    rc = lpq__api_register_builtins(s, NULL);
    for (size_t i = 0; rc == 0 && i < lpq__api_schema_count; i++)
      if (lpq__api_method_find(s, lpq__api_schema_texts[i][0]) == NULL)
        rc = lpq_api_register(s, lpq__api_schema_texts[i][0], api_fuzz_echo, NULL, NULL);
  }
  if (rc == 0 && (uv_pipe_init(&loop, &c->h.pipe, 0) != 0 || uv_pipe_open(&c->h.pipe, fds[0])))
    rc = LPQ_EIO;
  if (rc != 0) {
    if (s)
      lpq__api_methods_free(s);
    free(s);
    free(c);
    close(fds[0]);
    close(fds[1]);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return rc;
  }
  fds[0] = -1; /* the pipe handle owns it now */
  c->server = s;
  c->authenticated = 1;
  c->h.handle.data = c;
  c->handle_open = 1;
  c->refs = 1;
  s->handles_open = 1;
  s->conns = c;
  s->conn_count = 1;
  /* Lines as frame_lines cuts them: at '\n', a '\r' before it dropped, empty ones skipped;
  ** a last line without its '\n' counts too. */
  size_t start = 0;
  while (start < len && !c->closing) {
    const char *nl = memchr(data + start, '\n', len - start);
    size_t end = nl ? (size_t)(nl - data) : len, line_len = end - start;
    if (line_len > 0 && data[end - 1] == '\r')
      line_len--;
    if (line_len > 0) {
      c->refs++; /* as on_read: the connection outlives the handlers */
      lpq__api_handle_line(c, data + start, line_len);
      lpq__api_conn_unref(c);
      api_fuzz_drain(fds[1]);
    }
    start = end + 1;
  }
  lpq_api_server_t *sp = s;
  lpq_api_free(&sp); /* closes the connection; the loop runs the close callbacks */
  uv_run(&loop, UV_RUN_DEFAULT);
  close(fds[1]);
  return uv_loop_close(&loop) == 0 ? 0 : LPQ_ESTATE;
}

void fuzz_api(const uint8_t *data, size_t size) {
  int rc = api_fuzz_lines((const char *)data, size);
  FUZZ_CHECK(rc == 0, "api_fuzz_lines: %d", rc);
}

LPQ_FUZZ_MAIN(fuzz_api)
