/* tests/proc_harness.c: lpq's programs as real processes for the tests and the benchmarks; see
** proc_harness.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* setns */
#endif
#include "tests/proc_harness.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The programs' folder when set by proc_bin_dir_from_exe; a process's configuration. */
static char bin_dir[PATH_MAX];

double proc_now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

const char *proc_bin(const char *name) {
  static char buf[4][PATH_MAX + 64];
  static int k;
  k = (k + 1) % 4;
  if (bin_dir[0]) {
    snprintf(buf[k], sizeof buf[k], "%s/%s", bin_dir, name);
  } else {
    const char *build = getenv("LPQ_BUILD") ? getenv("LPQ_BUILD") : "build";
    snprintf(buf[k], sizeof buf[k], "%s/bin/%s", build, name);
  }
  return buf[k];
}

void proc_bin_dir_from_exe(const char *argv0) {
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0)
    snprintf(self, sizeof self, "%s", argv0);
  else
    self[n] = '\0';
  snprintf(bin_dir, sizeof bin_dir, "%.*s/../bin", PATH_MAX - 16, dirname(self));
}

pid_t proc_spawn(char *const argv[], const char *log, const char *netns) {
  pid_t p = fork();
  if (p != 0)
    return p;
  prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the test */
  if (netns) {
    char path[128];
    snprintf(path, sizeof path, "/run/netns/%s", netns);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || setns(fd, CLONE_NEWNET) != 0)
      _exit(125);
  }
  if (freopen(log, "a", stderr) == NULL)
    _exit(126);
  execv(argv[0], argv);
  _exit(127);
}

int proc_stop(pid_t *pid, int sig, double timeout_s) {
  if (*pid <= 0)
    return 0;
  kill(*pid, sig);
  kill(*pid, SIGCONT);
  int st = 0;
  pid_t r = 0;
  double t0 = proc_now_s();
  while ((r = waitpid(*pid, &st, WNOHANG)) == 0 && proc_now_s() - t0 < timeout_s)
    usleep(10000);
  if (r == 0) {
    kill(*pid, SIGKILL);
    waitpid(*pid, &st, 0);
  }
  *pid = 0;
  return r > 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int proc_file_has(const char *path, const char *text) {
  FILE *f = fopen(path, "r");
  if (!f)
    return 0;
  char line[4096];
  int found = 0;
  while (!found && fgets(line, sizeof line, f))
    found = strstr(line, text) != NULL;
  fclose(f);
  return found;
}

int proc_wait_file_has(const char *path, const char *text, double timeout_s) {
  const double t0 = proc_now_s();
  while (!proc_file_has(path, text)) {
    if (proc_now_s() - t0 > timeout_s)
      return 0;
    usleep(10000);
  }
  return 1;
}

/* 1 when the log holds the ready line after its first `from` bytes (endpoint copied out). */
static int ready_line(const char *log, long from, char *endpoint, size_t endpoint_size) {
  FILE *f = fopen(log, "r");
  if (!f)
    return 0;
  char line[4096];
  int found = 0;
  if (fseek(f, from, SEEK_SET) == 0)
    while (!found && fgets(line, sizeof line, f)) {
      char *ready = strstr(line, "lpq-coordinator: ready: ");
      char *workers = ready ? strstr(ready, ", workers ") : NULL;
      if (workers && endpoint)
        snprintf(endpoint, endpoint_size, "%.*s", (int)strcspn(workers + 10, " \n"),
                 workers + 10);
      found = workers != NULL;
    }
  fclose(f);
  return found;
}

int proc_wait_ready(const char *log, long from, pid_t pid, double timeout_s, char *endpoint,
                    size_t endpoint_size) {
  double t0 = proc_now_s();
  for (;;) {
    if (ready_line(log, from, endpoint, endpoint_size))
      return 0;
    if (waitpid(pid, NULL, WNOHANG) == pid)
      return -1;
    if (proc_now_s() - t0 > timeout_s)
      return -2;
    usleep(25000);
  }
}

void proc_rpc_init(proc_rpc_t *c, const char *sock) {
  memset(c, 0, sizeof *c);
  c->fd = -1;
  snprintf(c->sock, sizeof c->sock, "%s", sock);
}

void proc_rpc_close(proc_rpc_t *c) {
  if (c->fd >= 0)
    close(c->fd);
  c->fd = -1;
  free(c->buf);
  c->buf = NULL;
  c->len = c->cap = 0;
}

int proc_unix_connect(const char *path) {
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  if (fd < 0)
    return -1;
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  snprintf(a.sun_path, sizeof a.sun_path, "%.100s", path);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

/* Fails the call: the connection is dropped, the reason kept. */
static json_t *rpc_fail(proc_rpc_t *c, const char *method, const char *why) {
  snprintf(c->error, sizeof c->error, "%s: %s", method, why);
  if (c->fd >= 0)
    close(c->fd);
  c->fd = -1;
  c->len = 0;
  return NULL;
}

json_t *proc_rpc_call(proc_rpc_t *c, const char *method, json_t *params) {
  if (c->fd < 0) {
    c->fd = proc_unix_connect(c->sock);
    c->len = 0;
    if (c->fd < 0) {
      char why[200];
      snprintf(why, sizeof why, "cannot connect to %.128s: %s", c->sock, strerror(errno));
      json_decref(params);
      return rpc_fail(c, method, why);
    }
  }
  long id = ++c->next_id;
  json_t *req = json_pack("{s:s, s:s, s:I, s:o}", "jsonrpc", "2.0", "method", method, "id",
                          (json_int_t)id, "params", params ? params : json_object());
  char *line = req ? json_dumps(req, JSON_COMPACT) : NULL;
  json_decref(req);
  char *grown = line ? realloc(line, strlen(line) + 2) : NULL;
  if (!grown) {
    free(line);
    return rpc_fail(c, method, "out of memory");
  }
  line = grown;
  size_t n = strlen(line), off = 0;
  line[n++] = '\n';
  while (off < n) {
    ssize_t w = write(c->fd, line + off, n - off);
    if (w <= 0) {
      free(line);
      return rpc_fail(c, method, "the server closed the connection");
    }
    off += (size_t)w;
  }
  free(line);
  for (;;) {
    char *nl = c->len ? memchr(c->buf, '\n', c->len) : NULL;
    if (nl) {
      *nl = '\0';
      json_t *r = json_loads(c->buf, 0, NULL);
      size_t used = (size_t)(nl - c->buf) + 1;
      memmove(c->buf, c->buf + used, c->len - used);
      c->len -= used;
      if (!r)
        return rpc_fail(c, method, "a reply that is not JSON");
      if (json_integer_value(json_object_get(r, "id")) == id)
        return r;
      json_decref(r); /* a notification */
      continue;
    }
    if (c->cap - c->len < 65536) {
      size_t cap = c->cap ? 2 * c->cap : (size_t)1 << 20;
      char *buf = realloc(c->buf, cap);
      if (!buf)
        return rpc_fail(c, method, "out of memory");
      c->buf = buf;
      c->cap = cap;
    }
    ssize_t r = read(c->fd, c->buf + c->len, c->cap - c->len);
    if (r <= 0)
      return rpc_fail(c, method, "no answer (the server closed the connection)");
    c->len += (size_t)r;
  }
}

json_t *proc_rpc_result(proc_rpc_t *c, const char *method, json_t *params) {
  json_t *r = proc_rpc_call(c, method, params);
  if (!r)
    return NULL;
  json_t *res = json_object_get(r, "result");
  if (!res) {
    char *text = json_dumps(r, JSON_COMPACT);
    snprintf(c->error, sizeof c->error, "%s failed: %s", method, text ? text : "?");
    free(text);
    json_decref(r);
    return NULL;
  }
  json_incref(res);
  json_decref(r);
  return res;
}

ssize_t proc_roundtrip(int fd, const char *line, size_t len, char *buf, size_t cap) {
  size_t off = 0;
  while (off < len) {
    ssize_t w = write(fd, line + off, len - off);
    if (w <= 0)
      break;
    off += (size_t)w;
  }
  size_t n = 0;
  while (n < cap - 1) {
    ssize_t r = read(fd, buf + n, cap - 1 - n);
    if (r <= 0)
      break;
    n += (size_t)r;
    if (memchr(buf + n - (size_t)r, '\n', (size_t)r))
      break;
  }
  buf[n] = '\0';
  return n > 0 ? (ssize_t)n : -1;
}

int proc_svc_init(proc_svc_t *s, const char *prefix) {
  memset(s, 0, sizeof *s);
  signal(SIGPIPE, SIG_IGN);
  snprintf(s->dir, sizeof s->dir, "/tmp/%.40s-XXXXXX", prefix);
  if (!mkdtemp(s->dir))
    return -1;
  snprintf(s->db, sizeof s->db, "%s/lpq.db", s->dir);
  snprintf(s->sock, sizeof s->sock, "%s/lpq.sock", s->dir);
  snprintf(s->log, sizeof s->log, "%s/coordinator.log", s->dir);
  snprintf(s->endpoint, sizeof s->endpoint, "tcp://127.0.0.1:*"); /* a free port */
  s->log_level = "2";
  proc_rpc_init(&s->api, s->sock);
  return 0;
}

int proc_svc_start_coordinator(proc_svc_t *s) {
  for (int attempt = 0; attempt < 5; attempt++) {
    /* this start's ready line is looked for in a log of its own (the earlier kept as .N) */
    char old[160];
    snprintf(old, sizeof old, "%s.%d", s->log, s->starts++);
    rename(s->log, old);
    char *argv[24] = {(char *)proc_bin("lpq-coordinator"), "--db", s->db, "--socket", s->sock,
                      "--workers", s->endpoint, "--log-level", (char *)s->log_level};
    int k = 9;
    for (int i = 0; i < 7 && s->extra[i]; i++)
      argv[k++] = (char *)s->extra[i];
    if (s->heartbeat_ms) {
      argv[k++] = "--heartbeat-ms";
      argv[k++] = (char *)s->heartbeat_ms;
    }
    argv[k] = NULL;
    s->coord = proc_spawn(argv, s->log, NULL);
    if (s->coord < 0) {
      s->coord = 0;
      return -1;
    }
    int rc = proc_wait_ready(s->log, 0, s->coord, 30, s->endpoint, sizeof s->endpoint);
    if (rc == 0)
      return 0;
    if (rc == -2) /* still running, not ready: proc_svc_stop ends it */
      return -1;
    s->coord = 0;
    /* a restart's port, which the workers know, may not be free again yet */
    if (!proc_file_has(s->log, "Address already in use"))
      return -1;
    usleep(500000);
  }
  return -1;
}

int proc_svc_start_worker(proc_svc_t *s, const char *synthetic_ms, const char *threads) {
  if (s->nworkers >= (int)(sizeof s->workers / sizeof s->workers[0]))
    return -1;
  char log[160], cache[160], id[32];
  snprintf(log, sizeof log, "%s/worker%d.log", s->dir, s->nworkers);
  snprintf(cache, sizeof cache, "%s/cache%d", s->dir, s->nworkers);
  snprintf(id, sizeof id, "w%d", s->nworkers);
  char *argv[16] = {(char *)proc_bin("lpq-worker"), "--connect", s->endpoint, "--cache-dir", cache,
                    "--id", id};
  int k = 7;
  if (s->heartbeat_ms) {
    argv[k++] = "--heartbeat-ms";
    argv[k++] = (char *)s->heartbeat_ms;
  }
  if (threads) {
    argv[k++] = "--threads";
    argv[k++] = (char *)threads;
  }
  if (synthetic_ms) {
    argv[k++] = "--synthetic";
    argv[k++] = (char *)synthetic_ms;
  }
  argv[k] = NULL;
  pid_t p = proc_spawn(argv, log, NULL);
  if (p < 0)
    return -1;
  s->workers[s->nworkers++] = p;
  return 0;
}

int proc_svc_stop_coordinator(proc_svc_t *s, double timeout_s) {
  proc_rpc_close(&s->api);
  return proc_stop(&s->coord, SIGTERM, timeout_s);
}

void proc_svc_stop(proc_svc_t *s) {
  for (int i = 0; i < s->nworkers; i++)
    proc_stop(&s->workers[i], SIGKILL, 10);
  s->nworkers = 0;
  proc_svc_stop_coordinator(s, 10);
  if (getenv("LPQ_KEEP_LOGS")) { /* for a person reading what happened */
    fprintf(stderr, "logs kept in %s\n", s->dir);
    return;
  }
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", s->dir);
  if (system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", s->dir);
}

int proc_job_final(const char *status) {
  return status &&
         (!strcmp(status, "done") || !strcmp(status, "failed") || !strcmp(status, "canceled"));
}

const char *proc_fixture(const char *name) {
  static char buf[4][PATH_MAX + 64];
  static int k;
  char cwd[PATH_MAX];
  k = (k + 1) % 4;
  if (!getcwd(cwd, sizeof cwd))
    snprintf(cwd, sizeof cwd, ".");
  snprintf(buf[k], sizeof buf[k], "%s/tests/fixtures/%s", cwd, name);
  return buf[k];
}

char *proc_front_text(const json_t *pareto) {
  json_t *individuals = json_object_get(pareto, "individuals"), *o;
  if (json_array_size(individuals) == 0)
    return NULL;
  char *text = NULL;
  size_t size = 0, i;
  FILE *f = open_memstream(&text, &size);
  if (!f)
    return NULL;
  json_array_foreach(individuals, i, o)
    fprintf(f, "%s %.17g %.17g;", json_string_value(json_object_get(o, "genome")),
            json_number_value(json_object_get(o, "l_co")),
            json_number_value(json_object_get(o, "l_cr")));
  fclose(f);
  return text;
}

json_t *proc_lpqctl(const char *netns, const char *sock, const char *args) {
  char cmd[4096];
  snprintf(cmd, sizeof cmd, "%s%s%s%s --socket %s --json %s 2>/dev/null",
           netns ? "ip netns exec " : "", netns ? netns : "", netns ? " " : "", proc_bin("lpqctl"),
           sock, args);
  FILE *p = popen(cmd, "r");
  if (!p)
    return NULL;
  /* one JSON document (maybe indented), or JSON lines of which the last counts */
  size_t cap = (size_t)1 << 20, n = 0, got;
  char *all = malloc(cap);
  if (!all) {
    pclose(p);
    return NULL;
  }
  while ((got = fread(all + n, 1, cap - n - 1, p)) > 0)
    n += got;
  all[n] = '\0';
  pclose(p);
  json_t *whole = json_loads(all, 0, NULL);
  if (!whole) {
    char *last = NULL;
    for (char *q = all; q && *q; q = strchr(q, '\n') ? strchr(q, '\n') + 1 : NULL)
      if (*q == '{')
        last = q;
    whole = last ? json_loads(last, JSON_DISABLE_EOF_CHECK, NULL) : NULL;
  }
  free(all);
  return whole;
}

int64_t proc_lpqctl_submit(const char *netns, const char *sock, const char *options) {
  char args[2048];
  snprintf(args, sizeof args, "submit --model %s --data %s --detach %s",
           proc_fixture("score_small.onnx"), proc_fixture("score_small_x.npy"), options);
  json_t *r = proc_lpqctl(netns, sock, args);
  int64_t id = r ? (int64_t)json_integer_value(json_object_get(r, "job")) : 0;
  json_decref(r);
  return id > 0 ? id : -1;
}

char *proc_lpqctl_wait(const char *netns, const char *sock, int64_t job, double timeout_s) {
  char args[64];
  snprintf(args, sizeof args, "status %lld", (long long)job);
  double end = proc_now_s() + timeout_s;
  while (proc_now_s() < end) {
    json_t *r = proc_lpqctl(netns, sock, args);
    const char *st = json_string_value(json_object_get(r, "status"));
    if (proc_job_final(st)) {
      char *out = strdup(st);
      json_decref(r);
      return out;
    }
    json_decref(r);
    usleep(100000);
  }
  return strdup("timeout");
}

char *proc_lpqctl_front(const char *netns, const char *sock, int64_t job) {
  char args[64];
  snprintf(args, sizeof args, "pareto %lld", (long long)job);
  json_t *r = proc_lpqctl(netns, sock, args);
  char *text = proc_front_text(r);
  json_decref(r);
  return text;
}
