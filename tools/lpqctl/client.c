/* tools/lpqctl/client.c: lpqctl's connection to the coordinator (Unix socket, or TCP with the
** auth call first), blocking calls that pass notifications on, and small output helpers. */
#include "tools/lpqctl/lpqctl.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int ctl_getopt(ctl_t *ctl, const char *cmd, int argc, char **argv, const char *shortopts,
               const struct option *opts) {
  /* ':' tells a missing value from an unknown option; lpqctl's own options stop at the
  ** command ('+') */
  char spec[64];
  snprintf(spec, sizeof spec, "%s:%s", cmd ? "" : "+", shortopts);
  opterr = 0;
  char who[64];
  snprintf(who, sizeof who, "lpqctl%s%s", cmd ? " " : "", cmd ? cmd : "");
  for (;;) {
    int c = getopt_long(argc, argv, spec, opts, NULL);
    switch (c) {
    case CTL_OPT_SOCKET:
      ctl->socket_path = optarg;
      break;
    case CTL_OPT_TCP:
      ctl->tcp = optarg;
      break;
    case CTL_OPT_TOKEN:
      ctl->token = optarg;
      break;
    case CTL_OPT_JSON:
      ctl->json = 1;
      break;
    case ':':
      fprintf(stderr, "%s: %s needs a value\n", who, argv[optind - 1]);
      return '?';
    case '?':
      if (optopt > 0 && optopt < 0x100)
        fprintf(stderr, "%s: unknown option '-%c'\n", who, optopt);
      else
        fprintf(stderr, "%s: unknown option '%s'\n", who, argv[optind - 1]);
      return '?';
    default:
      return c;
    }
  }
}

void ctl_close(ctl_t *ctl) {
  if (ctl->fd >= 0)
    close(ctl->fd);
  ctl->fd = -1;
  free(ctl->buf);
  ctl->buf = NULL;
  ctl->len = ctl->cap = 0;
}

static int connect_unix(const char *path) {
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof addr.sun_path) {
    errno = ENAMETOOLONG;
    return -1;
  }
  memcpy(addr.sun_path, path, strlen(path) + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  if (fd >= 0 && connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

static int connect_tcp(const char *hostport) {
  char host[256];
  const char *colon = strrchr(hostport, ':');
  if (colon == NULL || (size_t)(colon - hostport) >= sizeof host || colon[1] == '\0') {
    errno = EINVAL;
    return -1;
  }
  memcpy(host, hostport, (size_t)(colon - hostport));
  host[colon - hostport] = '\0';
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
  if (getaddrinfo(host, colon + 1, &hints, &res) != 0) {
    errno = EHOSTUNREACH;
    return -1;
  }
  int fd = -1;
  for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
      int e = errno;
      close(fd);
      fd = -1;
      errno = e;
    }
  }
  freeaddrinfo(res);
  return fd;
}

static int send_all(int fd, const char *p, size_t len) {
  while (len > 0) {
    ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

/* The next message from the server (NULL: closed, timed out or not JSON; *closed tells). */
static json_t *read_message(ctl_t *ctl, int timeout_ms, int *closed) {
  *closed = 0;
  for (;;) {
    char *nl = ctl->buf ? memchr(ctl->buf, '\n', ctl->len) : NULL;
    if (nl) {
      size_t n = (size_t)(nl - ctl->buf);
      json_t *v = json_loadb(ctl->buf, n, 0, NULL);
      memmove(ctl->buf, nl + 1, ctl->len - n - 1);
      ctl->len -= n + 1;
      if (v == NULL)
        fprintf(stderr, "lpqctl: the server sent a line that is not JSON; ignored\n");
      else
        return v;
      continue;
    }
    struct pollfd p = {.fd = ctl->fd, .events = POLLIN};
    int rc = poll(&p, 1, timeout_ms);
    if (rc < 0 && errno == EINTR)
      continue;
    if (rc == 0)
      return NULL;
    if (ctl->cap - ctl->len < 65536) {
      size_t cap = ctl->cap ? ctl->cap * 2 : 262144;
      char *b = realloc(ctl->buf, cap);
      if (b == NULL) {
        *closed = 1;
        return NULL;
      }
      ctl->buf = b;
      ctl->cap = cap;
    }
    ssize_t n = recv(ctl->fd, ctl->buf + ctl->len, ctl->cap - ctl->len, 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      *closed = 1;
      return NULL;
    }
    ctl->len += (size_t)n;
  }
}

static int lost(ctl_t *ctl) {
  fprintf(stderr, "lpqctl: the coordinator closed the connection (%s)\n",
          ctl->tcp ? ctl->tcp : ctl->socket_path);
  ctl_close(ctl);
  return CTL_NOCONNECT;
}

static int call_raw(ctl_t *ctl, const char *method, json_t *params, json_t **result,
                    ctl_notify_fn on_notify, void *ctx);

static int ensure_connected(ctl_t *ctl) {
  if (ctl->fd >= 0)
    return CTL_OK;
  if (ctl->tcp) {
    if (ctl->token == NULL)
      ctl->token = getenv("LPQ_TOKEN");
    if (ctl->token == NULL) {
      fprintf(stderr, "lpqctl: --tcp needs --token TOKEN (or LPQ_TOKEN in the environment)\n");
      return CTL_USAGE;
    }
    ctl->fd = connect_tcp(ctl->tcp);
    if (ctl->fd < 0) {
      fprintf(stderr, "lpqctl: cannot connect to %s: %s (is lpq-coordinator running with its "
              "TCP API on that address?)\n", ctl->tcp, strerror(errno));
      return CTL_NOCONNECT;
    }
    json_t *r = NULL;
    int rc = call_raw(ctl, "auth", json_pack("{ss}", "token", ctl->token), &r, NULL, NULL);
    json_decref(r);
    return rc;
  }
  if (ctl->socket_path == NULL)
    ctl->socket_path = getenv("LPQ_SOCKET");
  if (ctl->socket_path == NULL || ctl->socket_path[0] == '\0')
    ctl->socket_path = LPQ_API_DEFAULT_SOCKET;
  ctl->fd = connect_unix(ctl->socket_path);
  if (ctl->fd < 0) {
    fprintf(stderr, "lpqctl: cannot connect to %s: %s\n"
            "lpqctl: the coordinator may not be running; start lpq-coordinator, or point lpqctl "
            "at its socket with --socket PATH or LPQ_SOCKET\n", ctl->socket_path, strerror(errno));
    return CTL_NOCONNECT;
  }
  return CTL_OK;
}

static void print_rpc_error(const char *method, const json_t *error) {
  const char *msg = json_string_value(json_object_get(error, "message"));
  json_int_t code = json_integer_value(json_object_get(error, "code"));
  fprintf(stderr, "lpqctl: %s: %s (error %lld)\n", method, msg ? msg : "error", (long long)code);
  const json_t *data = json_object_get(error, "data");
  const char *field = json_string_value(json_object_get(data, "field"));
  const char *expected = json_string_value(json_object_get(data, "expected"));
  if (field && expected)
    fprintf(stderr, "lpqctl:   field %s: expected %s\n", field, expected);
}

static int call_raw(ctl_t *ctl, const char *method, json_t *params, json_t **result,
                    ctl_notify_fn on_notify, void *ctx) {
  *result = NULL;
  long id = ++ctl->next_id;
  json_t *req = json_pack("{ss ss sI}", "jsonrpc", "2.0", "method", method, "id", (json_int_t)id);
  if (req && params)
    json_object_set(req, "params", params);
  json_decref(params);
  char *text = req ? json_dumps(req, JSON_COMPACT) : NULL;
  json_decref(req);
  if (text == NULL) {
    fprintf(stderr, "lpqctl: out of memory\n");
    return CTL_FAILED;
  }
  int sent = send_all(ctl->fd, text, strlen(text)) == 0 && send_all(ctl->fd, "\n", 1) == 0;
  free(text);
  if (!sent)
    return lost(ctl);
  for (;;) {
    int closed;
    json_t *m = read_message(ctl, -1, &closed);
    if (m == NULL)
      return lost(ctl);
    const json_t *mid = json_object_get(m, "id");
    const char *nm = json_string_value(json_object_get(m, "method"));
    if (mid == NULL && nm) {
      if (on_notify)
        on_notify(ctx, nm, json_object_get(m, "params"));
      json_decref(m);
      continue;
    }
    if (json_is_integer(mid) && json_integer_value(mid) != id) {
      json_decref(m);
      continue; /* an answer to an earlier call that was given up */
    }
    json_t *error = json_object_get(m, "error");
    if (error) {
      print_rpc_error(method, error);
      int code = (int)json_integer_value(json_object_get(error, "code"));
      json_decref(m);
      if (code == LPQ_API_E_LIMIT && json_is_null(mid))
        return lost(ctl); /* a framing limit: the server closes the connection */
      return CTL_FAILED;
    }
    *result = json_incref(json_object_get(m, "result"));
    json_decref(m);
    return CTL_OK;
  }
}

int ctl_call(ctl_t *ctl, const char *method, json_t *params, json_t **result,
             ctl_notify_fn on_notify, void *ctx) {
  int rc = ensure_connected(ctl);
  if (rc != CTL_OK) {
    json_decref(params);
    *result = NULL;
    return rc;
  }
  return call_raw(ctl, method, params, result, on_notify, ctx);
}

int ctl_next_notification(ctl_t *ctl, int timeout_ms, char **method, json_t **params) {
  for (;;) {
    int closed;
    json_t *m = read_message(ctl, timeout_ms, &closed);
    if (m == NULL)
      return closed ? lost(ctl) : CTL_FAILED;
    const char *nm = json_string_value(json_object_get(m, "method"));
    if (nm && json_object_get(m, "id") == NULL) {
      *method = strdup(nm);
      *params = json_incref(json_object_get(m, "params"));
      json_decref(m);
      return CTL_OK;
    }
    json_decref(m);
  }
}

void ctl_print_json(const json_t *v) {
  char *text = json_dumps(v, JSON_INDENT(2) | JSON_ENCODE_ANY | JSON_REAL_PRECISION(10));
  if (text)
    printf("%s\n", text);
  free(text);
}

const char *ctl_num(const json_t *v, const char *fmt, char *buf, size_t size) {
  if (!json_is_number(v))
    return "-";
  snprintf(buf, size, fmt, json_number_value(v));
  return buf;
}

const char *ctl_duration(const json_t *v, char *buf, size_t size) {
  if (!json_is_number(v))
    return "-";
  double s = json_number_value(v);
  if (s >= 3600)
    snprintf(buf, size, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
  else if (s >= 60)
    snprintf(buf, size, "%dm%02ds", (int)(s / 60), (int)s % 60);
  else
    snprintf(buf, size, "%.1fs", s);
  return buf;
}

long ctl_job_id(const char *cmd, const char *text) {
  char *end;
  long id = text ? strtol(text, &end, 10) : 0;
  if (text == NULL || *end != '\0' || id <= 0) {
    fprintf(stderr, "lpqctl %s: '%s' is not a job id (a positive integer; see lpqctl list)\n", cmd,
            text ? text : "");
    return 0;
  }
  return id;
}
