/* tests/test_limits.c: the API's per-upload and per-client limits on the real lpq-coordinator:
** blob.put and job.submit uploads over --max-blob-mb, and a client's job over
** --max-jobs-per-client, get JSON-RPC error -32002 naming the limit; other clients (another
** TCP token or Unix uid) are not held back, and a finished job frees its client's slot. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "proc_harness.h"

#define FIX "tests/fixtures/"
#define TOKEN "limits-test-token-0123456789"

typedef struct lim_t {
  char dir[64], sock[128], log[128];
  int tcp_port;
  pid_t coord;
} lim_t;

/* A coordinator with the given blob limit (MiB, as text) and at most one job per client.
** Ready means its log's ready line, written after every listener is up (the socket file
** appears at bind, before listen). The TCP port is drawn at random; a port another program
** holds is drawn again. */
static void lim_start(lim_t *l, const char *blob_mb) {
  memset(l, 0, sizeof *l);
  signal(SIGPIPE, SIG_IGN);
  snprintf(l->dir, sizeof l->dir, "/tmp/lpq-limits-XXXXXX");
  cr_assert_not_null(mkdtemp(l->dir));
  snprintf(l->sock, sizeof l->sock, "%s/lpq.sock", l->dir);
  char db[128], tok[128], tcp[64], ep[64], log[128];
  snprintf(db, sizeof db, "%s/lpq.db", l->dir);
  snprintf(tok, sizeof tok, "%s/token", l->dir);
  FILE *f = fopen(tok, "w");
  fputs(TOKEN "\n", f);
  fclose(f);
  chmod(tok, 0600); /* a token others can read is refused */
  srand((unsigned)getpid() ^ (unsigned)time(NULL));
  for (int attempt = 0; attempt < 5; attempt++) {
    snprintf(log, sizeof log, "%s/coordinator.%d.log", l->dir, attempt);
    l->tcp_port = 21000 + rand() % 20000;
    snprintf(tcp, sizeof tcp, "127.0.0.1:%d", l->tcp_port);
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", l->tcp_port + 1);
    char *argv[] = {(char *)proc_bin("lpq-coordinator"), "--db", db, "--socket", l->sock,
                    "--tcp", tcp, "--token-file", tok, "--workers", ep, "--max-blob-mb",
                    (char *)blob_mb, "--max-jobs-per-client", "1", NULL};
    l->coord = proc_spawn(argv, log, NULL);
    cr_assert_gt(l->coord, 0);
    /* at most 60 s: suites run two tests at once, daemons start slowly on a loaded machine */
    int rc = proc_wait_ready(log, 0, l->coord, 60, NULL, 0);
    if (rc == 0) {
      snprintf(l->log, sizeof l->log, "%s", log);
      return;
    }
    cr_assert_neq(rc, -2, "the coordinator did not start within 60 s (%s)", log);
    cr_assert(proc_file_has(log, "Address already in use"), "the coordinator exited at start (%s)",
              log);
  }
  cr_assert_fail("no free port for the coordinator in 5 draws (%s)", log);
}

/* A clean stop: exit status 0 (under ASan a leak or error report makes it nonzero). The folder,
** with the log, is kept when not. */
static void lim_stop(lim_t *l) {
  int rc = proc_stop(&l->coord, SIGTERM, 30);
  cr_assert_eq(rc, 0, "the coordinator's exit status was %d (%s)", rc, l->log);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", l->dir);
  cr_assert_eq(system(cmd), 0);
}

/* Sends the lines on one connection (Unix socket, or TCP when tcp) and returns the answer to
** the last one. */
static json_t *calls(const lim_t *l, int tcp, const char *const *lines, size_t n) {
  int fd;
  if (tcp) {
    fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)l->tcp_port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  } else {
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%.100s", l->sock);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  }
  json_t *last = NULL;
  static char buf[1 << 16];
  for (size_t i = 0; i < n; i++) {
    size_t len = strlen(lines[i]), off = 0;
    while (off < len) {
      ssize_t w = write(fd, lines[i] + off, len - off);
      cr_assert_gt(w, 0);
      off += (size_t)w;
    }
    size_t got = 0;
    while (got < sizeof buf - 1 && !memchr(buf, '\n', got)) {
      ssize_t r = read(fd, buf + got, sizeof buf - 1 - got);
      if (r <= 0)
        break;
      got += (size_t)r;
    }
    buf[got] = 0;
    json_decref(last);
    last = json_loads(buf, JSON_DISABLE_EOF_CHECK, NULL);
    cr_assert_not_null(last, "no answer to %.80s", lines[i]);
    memset(buf, 0, got);
  }
  close(fd);
  return last;
}

static long err_code(const json_t *r) {
  return (long)json_integer_value(json_object_get(json_object_get(r, "error"), "code"));
}

static const json_t *err_data(const json_t *r, const char *key) {
  return json_object_get(json_object_get(json_object_get(r, "error"), "data"), key);
}

/* A job.submit line by path of the small fixture. */
static void submit_line(char *line, size_t len, int id) {
  snprintf(line, len, "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"job.submit\",\"params\":"
           "{\"model\":{\"path\":\"%s/" FIX "score_small.onnx\"},\"data\":{\"path\":\"%s/" FIX
           "score_small_x.npy\"},\"settings\":{\"population\":8,\"generations\":2}}}\n", id,
           getenv("PWD"), getenv("PWD"));
}

/* A blob.put line with n bytes of base64 ('A' decodes to zero bits). */
static char *blob_line(size_t bytes) {
  size_t chars = (bytes + 2) / 3 * 4;
  char *line = malloc(chars + 128);
  int k = sprintf(line, "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"blob.put\",\"params\":"
                  "{\"base64\":\"");
  memset(line + k, 'A', chars);
  if (bytes % 3)
    memset(line + k + chars - (3 - bytes % 3), '=', 3 - bytes % 3);
  sprintf(line + k + chars, "\"}}\n");
  return line;
}

Test(limits, uploads_over_the_blob_limit_are_refused) {
  lim_t l;
  lim_start(&l, "0.0095"); /* 9961 bytes: the fixtures (6722 and 9344 bytes) fit */
  size_t limit = (size_t)(0.0095 * 1048576.0);
  char *ok = blob_line(limit), *over = blob_line(limit + 1);
  const char *one[1] = {ok};
  json_t *r = calls(&l, 0, one, 1);
  cr_assert_eq(json_integer_value(json_object_get(json_object_get(r, "result"), "bytes")),
               (json_int_t)limit, "%s", json_dumps(r, 0));
  json_decref(r);
  one[0] = over;
  r = calls(&l, 0, one, 1);
  cr_assert_eq(err_code(r), -32002, "%s", json_dumps(r, 0));
  cr_assert_eq(json_integer_value(err_data(r, "limit")), (json_int_t)limit);
  cr_assert_eq(json_integer_value(err_data(r, "bytes")), (json_int_t)limit + 1);
  cr_assert(strstr(json_string_value(json_object_get(json_object_get(r, "error"), "message")),
                   "--max-blob-mb"));
  json_decref(r);
  /* job.submit with an inline upload over the limit, and with a path to a file over it */
  char *b64 = over + strlen("{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"blob.put\",\"params\":"
                            "{\"base64\":\"");
  b64[strcspn(b64, "\"")] = 0;
  size_t cap = strlen(b64) + 512;
  char *line = malloc(cap);
  snprintf(line, cap, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"job.submit\",\"params\":"
           "{\"model\":{\"base64\":\"%s\"},\"data\":{\"path\":\"/x\"}}}\n", b64);
  one[0] = line;
  r = calls(&l, 0, one, 1);
  cr_assert_eq(err_code(r), -32002, "%s", json_dumps(r, 0));
  cr_assert_str_eq(json_string_value(err_data(r, "field")), "model");
  json_decref(r);
  char big[160];
  snprintf(big, sizeof big, "%s/big.npy", l.dir);
  FILE *f = fopen(big, "w");
  for (size_t i = 0; i <= limit; i++)
    fputc(0, f);
  fclose(f);
  snprintf(line, cap, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"job.submit\",\"params\":"
           "{\"model\":{\"path\":\"%s/" FIX "score_small.onnx\"},\"data\":{\"path\":\"%s\"}}}\n",
           getenv("PWD"), big);
  r = calls(&l, 0, one, 1);
  cr_assert_eq(err_code(r), -32002, "%s", json_dumps(r, 0));
  cr_assert_str_eq(json_string_value(err_data(r, "field")), "data");
  json_decref(r);
  free(line);
  free(ok);
  free(over);
  lim_stop(&l);
}

Test(limits, jobs_per_client) {
  lim_t l;
  lim_start(&l, "1024");
  char line[1024];
  const char *one[1] = {line};
  /* no workers: the first job stays unfinished */
  submit_line(line, sizeof line, 1);
  json_t *r = calls(&l, 0, one, 1);
  json_int_t first = json_integer_value(json_object_get(json_object_get(r, "result"), "job"));
  cr_assert_gt(first, 0, "%s", json_dumps(r, 0));
  /* TCP clients upload (paths are for the Unix socket's local users): the blobs by hash */
  char by_hash[512];
  snprintf(by_hash, sizeof by_hash, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"job.submit\","
           "\"params\":{\"model\":{\"hash\":\"%s\"},\"data\":{\"hash\":\"%s\"},"
           "\"settings\":{\"population\":8,\"generations\":2}}}\n",
           json_string_value(json_object_get(json_object_get(r, "result"), "model_hash")),
           json_string_value(json_object_get(json_object_get(r, "result"), "data_hash")));
  json_decref(r);
  /* the same uid again, on a new connection: over its limit */
  submit_line(line, sizeof line, 2);
  r = calls(&l, 0, one, 1);
  cr_assert_eq(err_code(r), -32002, "%s", json_dumps(r, 0));
  char uid[32];
  snprintf(uid, sizeof uid, "uid:%lu", (unsigned long)getuid());
  cr_assert_str_eq(json_string_value(err_data(r, "client")), uid);
  cr_assert_eq(json_integer_value(err_data(r, "limit")), 1);
  json_decref(r);
  /* a TCP client (its token) is another client */
  const char *tcp[2] = {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"auth\",\"params\":"
                        "{\"token\":\"" TOKEN "\"}}\n", by_hash};
  r = calls(&l, 1, tcp, 2);
  cr_assert_gt(json_integer_value(json_object_get(json_object_get(r, "result"), "job")), first,
               "%s", json_dumps(r, 0));
  json_decref(r);
  r = calls(&l, 1, tcp, 2);
  cr_assert_eq(err_code(r), -32002, "%s", json_dumps(r, 0));
  cr_assert(strncmp(json_string_value(err_data(r, "client")), "token:", 6) == 0);
  json_decref(r);
  /* a canceled job frees the slot */
  char cancel[128];
  snprintf(cancel, sizeof cancel, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"job.cancel\","
           "\"params\":{\"job\":%lld}}\n", (long long)first);
  one[0] = cancel;
  r = calls(&l, 0, one, 1);
  cr_assert_null(json_object_get(r, "error"), "%s", json_dumps(r, 0));
  json_decref(r);
  one[0] = line;
  submit_line(line, sizeof line, 6);
  r = calls(&l, 0, one, 1);
  cr_assert_gt(json_integer_value(json_object_get(json_object_get(r, "result"), "job")), first,
               "%s", json_dumps(r, 0));
  json_decref(r);
  lim_stop(&l);
}
