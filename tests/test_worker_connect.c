/* tests/test_worker_connect.c: a worker that hears nothing from its --connect address says why
** (issue 17: it only logged "coordinator silent; reconnecting" forever): nothing listening there,
** or a peer that accepts the connection but speaks no ZeroMQ (an HTTP server, the coordinator's
** JSON API). */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Runs a worker against endpoint until its log (stderr) holds `expect` (the event waited for,
** not a fixed time: a loaded machine only delays it), at most 60 s, then SIGTERM; the log into
** buf. */
static void run_worker(const char *endpoint, const char *expect, char *buf, size_t len) {
  const char *build = getenv("LPQ_BUILD") ? getenv("LPQ_BUILD") : "build";
  char bin[256], log[] = "/tmp/lpq-wconn-XXXXXX", cache[] = "/tmp/lpq-wcache-XXXXXX";
  snprintf(bin, sizeof bin, "%s/bin/lpq-worker", build);
  int fd = mkstemp(log);
  cr_assert_geq(fd, 0);
  cr_assert_not_null(mkdtemp(cache));
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    dup2(fd, 2);
    execl(bin, bin, "--connect", endpoint, "--synthetic", "1", "--heartbeat-ms", "100",
          "--liveness", "3", "--cache-dir", cache, (char *)NULL);
    _exit(127);
  }
  ssize_t n = 0;
  for (double t0 = now_s(); now_s() - t0 < 60; usleep(100000)) {
    n = pread(fd, buf, len - 1, 0);
    buf[n > 0 ? n : 0] = 0;
    if (strstr(buf, expect) && strstr(buf, endpoint))
      break;
  }
  kill(pid, SIGTERM);
  int st;
  waitpid(pid, &st, 0);
  n = pread(fd, buf, len - 1, 0);
  buf[n > 0 ? n : 0] = 0;
  close(fd);
  unlink(log);
  char cmd[96];
  snprintf(cmd, sizeof cmd, "rm -rf %s", cache);
  cr_assert_eq(system(cmd), 0);
}

/* A loopback port with nothing listening: bound, then closed. */
static int free_port(void) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t l = sizeof a;
  cr_assert_eq(bind(s, (struct sockaddr *)&a, sizeof a), 0);
  cr_assert_eq(getsockname(s, (struct sockaddr *)&a, &l), 0);
  close(s);
  return ntohs(a.sin_port);
}

TestSuite(worker_connect, .timeout = 150); /* suite-wide: see tests/test_service_pick.c */

Test(worker_connect, nothing_listening_is_named) {
  char ep[64], log[16384];
  snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", free_port());
  run_worker(ep, "nothing accepts connections at", log, sizeof log);
  cr_assert(strstr(log, "nothing accepts connections at") && strstr(log, ep), "%s", log);
}

Test(worker_connect, a_peer_that_speaks_no_zeromq_is_named) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t l = sizeof a;
  cr_assert_eq(bind(s, (struct sockaddr *)&a, sizeof a), 0);
  cr_assert_eq(listen(s, 16), 0);
  cr_assert_eq(getsockname(s, (struct sockaddr *)&a, &l), 0);
  pid_t srv = fork(); /* accepts and answers like a line protocol would, never ZMTP */
  cr_assert_geq(srv, 0);
  if (srv == 0) {
    for (;;) {
      int c = accept(s, NULL, NULL);
      if (c >= 0) {
        const char *msg = "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32700}}\n";
        if (write(c, msg, strlen(msg)) < 0)
          _exit(1);
        usleep(200000);
        close(c);
      }
    }
  }
  char ep[64], log[16384];
  snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", ntohs(a.sin_port));
  run_worker(ep, "did not speak ZeroMQ", log, sizeof log);
  kill(srv, SIGKILL);
  waitpid(srv, NULL, 0);
  close(s);
  cr_assert(strstr(log, "did not speak ZeroMQ") && strstr(log, ep), "%s", log);
}
