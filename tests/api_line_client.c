/* tests/api_line_client.c: a blocking JSON-RPC line client for the API suites (declared in
** tests/test_api_harness.h): connect over a Unix socket or TCP loopback, send lines, read
** replies with a timeout. */
#include "tests/test_api_harness.h"


int client_connect(client_t *c, const char *path) {
  memset(c, 0, sizeof *c);
  c->fd = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path);
  if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
    close(c->fd);
    c->fd = -1;
    return -1;
  }
  return 0;
}

int client_connect_tcp(client_t *c, int port) {
  memset(c, 0, sizeof *c);
  c->fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
    close(c->fd);
    c->fd = -1;
    return -1;
  }
  return 0;
}

void client_close(client_t *c) {
  if (c->fd >= 0)
    close(c->fd);
  c->fd = -1;
  free(c->buf);
  c->buf = NULL;
}

/* Writes all of data; 0, or -1 when the server closed the connection. */
int client_send_raw(client_t *c, const char *data, size_t len) {
  while (len > 0) {
    ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    data += n;
    len -= (size_t)n;
  }
  return 0;
}

int client_send(client_t *c, const char *line) {
  if (client_send_raw(c, line, strlen(line)) != 0)
    return -1;
  return client_send_raw(c, "\n", 1);
}

/* The next line as JSON (NULL on EOF or after timeout_ms). */
json_t *client_read(client_t *c, int timeout_ms) {
  for (;;) {
    char *nl = c->buf ? memchr(c->buf, '\n', c->len) : NULL;
    if (nl) {
      size_t n = (size_t)(nl - c->buf);
      json_t *v = json_loadb(c->buf, n, 0, NULL);
      memmove(c->buf, nl + 1, c->len - n - 1);
      c->len -= n + 1;
      cr_assert_not_null(v, "the server sent a line that is not JSON");
      return v;
    }
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    if (poll(&p, 1, timeout_ms) <= 0)
      return NULL;
    if (c->cap - c->len < 65536) {
      c->cap = c->cap ? c->cap * 2 : 131072;
      c->buf = realloc(c->buf, c->cap);
    }
    ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
    if (n <= 0)
      return NULL;
    c->len += (size_t)n;
  }
}

/* Sends one request and returns the next message (the response, for a plain call). */
json_t *client_call(client_t *c, const char *line) {
  cr_assert_eq(client_send(c, line), 0, "the server closed the connection");
  json_t *r = client_read(c, 10000);
  cr_assert_not_null(r, "no answer to %s", line);
  return r;
}

/* error.code of a response, or 0 when it is a result. */
int error_code(const json_t *r) {
  return (int)json_integer_value(json_object_get(json_object_get(r, "error"), "code"));
}

const char *error_message(const json_t *r) {
  const char *m = json_string_value(json_object_get(json_object_get(r, "error"), "message"));
  return m ? m : "";
}
