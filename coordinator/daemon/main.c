/* coordinator/daemon/main.c: lpq-coordinator, the daemon (DESIGN section 3): one libuv loop
** serving the JSON-RPC API, driving the ZeroMQ worker pool and the searches, with SQLite as
** the memory that outlives it. */
#include "coordinator/daemon/daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static void usage(FILE *out) {
  fprintf(out,
          "usage: lpq-coordinator [options]\n"
          "  --db PATH             the SQLite database (default var/lpq.db; blobs in PATH.blobs)\n"
          "  --socket PATH         the API's Unix socket, mode 0600 (default var/lpq.sock)\n"
          "  --tcp HOST:PORT       also serve the API on TCP (needs --token-file; beyond\n"
          "                        loopback only with --insecure: the token is plain text)\n"
          "  --token-file FILE     the bearer token TCP clients must send (16+ characters)\n"
          "  --http HOST:PORT      serve the dashboard (read-only HTTP; a host other than\n"
          "                        loopback needs --token-file: the token signs viewers in)\n"
          "  --workers ENDPOINT    where workers connect (default tcp://127.0.0.1:5555;\n"
          "                        tcp://0.0.0.0:5555 accepts other hosts)\n"
          "  --curve-secret FILE   CURVE on the pool: the coordinator's secret key (lpqctl keygen)\n"
          "  --curve-keys DIR      with it: admit only workers whose public key is a DIR/*.pub\n"
          "  --insecure            allow plain text beyond loopback: on --workers endpoints\n"
          "                        without CURVE (else only loopback and ipc://), and --tcp\n"
          "  --max-blob-mb N       largest upload (blob.put, job.submit base64 or path) [1024]\n"
          "  --max-jobs-per-client N  unfinished jobs one client may have (Unix socket: per\n"
          "                        uid; TCP: per token) [16]\n"
          "  --blob-grace-s S      uploads no job names are removed after S seconds [3600]\n"
          "  --max-job-mb N        memory one job may hold (its search and calibration batch,\n"
          "                        estimated at submit) [an eighth of this machine's memory]\n"
          "  --heartbeat-ms MS     pool heartbeat interval (default 1000)\n"
          "  --liveness N          missed heartbeats before a worker is expired (default 3)\n"
          "  --task-timeout S      a task running longer is dispatched again (default 600)\n"
          "  --log-level N         0 errors, 1 warnings, 2 info (default), 3 debug\n"
          "Jobs left unfinished by an earlier run (or a crash) resume from the database.\n");
}

typedef struct opts_t {
  const char *db, *socket, *tcp, *token_file, *workers, *http;
  double heartbeat_s, task_timeout_s;
  int liveness, log_level;
  const char *curve_secret, *curve_keys;
  int insecure;
  double max_blob_mb;
  long max_jobs_per_client;
  double max_job_mb; /* 0: an eighth of the machine's memory */
  double blob_grace_s;
} opts_t;

static int parse(int argc, char **argv, opts_t *o) {
  static const struct option lo[] = {
      {"db", 1, 0, 'd'},           {"socket", 1, 0, 's'},   {"tcp", 1, 0, 't'},
      {"token-file", 1, 0, 'k'},   {"workers", 1, 0, 'w'},  {"heartbeat-ms", 1, 0, 'H'},
      {"liveness", 1, 0, 'L'},     {"task-timeout", 1, 0, 'T'}, {"log-level", 1, 0, 'v'},
      {"curve-secret", 1, 0, 'C'}, {"curve-keys", 1, 0, 'K'},  {"insecure", 0, 0, 'I'},
      {"max-blob-mb", 1, 0, 'B'}, {"max-jobs-per-client", 1, 0, 'J'},
      {"max-job-mb", 1, 0, 'M'},  {"blob-grace-s", 1, 0, 'G'},
      {"http", 1, 0, 'P'},         {"help", 0, 0, 'h'},         {0, 0, 0, 0}};
  *o = (opts_t){"var/lpq.db", LPQ_API_DEFAULT_SOCKET, NULL, NULL, "tcp://127.0.0.1:5555", NULL,
                1.0, 600.0, 3, 2, NULL, NULL, 0, 1024, 16, 0, 3600};
  int c, idx = 0;
  while ((c = getopt_long(argc, argv, "h", lo, &idx)) != -1) {
    char *end = NULL;
    int bad = 0;
    switch (c) {
    case 'd': o->db = optarg; break;
    case 's': o->socket = optarg; break;
    case 't': o->tcp = optarg; break;
    case 'k': o->token_file = optarg; break;
    case 'w': o->workers = optarg; break;
    case 'P': o->http = optarg; break;
    case 'H': o->heartbeat_s = strtod(optarg, &end) / 1e3; bad = *end || o->heartbeat_s < 0.01; break;
    case 'L': o->liveness = (int)strtol(optarg, &end, 10); bad = *end || o->liveness < 1; break;
    case 'T': o->task_timeout_s = strtod(optarg, &end); bad = *end || o->task_timeout_s <= 0; break;
    case 'v': o->log_level = (int)strtol(optarg, &end, 10); bad = *end; break;
    case 'C': o->curve_secret = optarg; break;
    case 'K': o->curve_keys = optarg; break;
    case 'I': o->insecure = 1; break;
    case 'B':
      o->max_blob_mb = strtod(optarg, &end);
      bad = *end || !(o->max_blob_mb > 0 && o->max_blob_mb <= 1 << 24);
      break;
    case 'J':
      o->max_jobs_per_client = strtol(optarg, &end, 10);
      bad = *end || o->max_jobs_per_client < 1;
      break;
    case 'M':
      o->max_job_mb = strtod(optarg, &end);
      bad = *end || !(o->max_job_mb >= 1 && o->max_job_mb <= 1 << 24);
      break;
    case 'G':
      o->blob_grace_s = strtod(optarg, &end);
      bad = *end || !(o->blob_grace_s >= 0 && o->blob_grace_s <= 1e9);
      break;
    case 'h': usage(stdout); return 1;
    default: usage(stderr); return 2;
    }
    if (bad) {
      fprintf(stderr, "lpq-coordinator: --%s '%s' is not valid\n", lo[idx].name, optarg);
      return 2;
    }
  }
  if (optind != argc) {
    fprintf(stderr, "lpq-coordinator: unexpected argument '%s'\n", argv[optind]);
    return 2;
  }
  if (o->tcp && !o->token_file) {
    fprintf(stderr, "lpq-coordinator: --tcp needs --token-file\n");
    return 2;
  }
  if (o->http) {
    const char *colon = strrchr(o->http, ':');
    char host[256];
    snprintf(host, sizeof host, "%.*s", colon ? (int)(colon - o->http) : 0, o->http);
    if (!colon || colon == o->http || !colon[1]) {
      fprintf(stderr, "lpq-coordinator: --http wants HOST:PORT\n");
      return 2;
    }
    if (!lpq_http_host_is_loopback(host) && !o->token_file) {
      fprintf(stderr, "lpq-coordinator: --http %s is not loopback: it needs --token-file\n",
              o->http);
      return 2;
    }
  }
  if ((o->curve_secret == NULL) != (o->curve_keys == NULL)) {
    fprintf(stderr, "lpq-coordinator: CURVE needs both --curve-secret and --curve-keys\n");
    return 2;
  }
  return 0;
}

/* mkdir -p of a file's folder */
static void make_parent(const char *path) {
  char buf[4096];
  snprintf(buf, sizeof buf, "%s", path);
  for (char *p = buf + 1; *p; p++)
    if (*p == '/') {
      *p = 0;
      mkdir(buf, 0700);
      *p = '/';
    }
}

static void on_signal(uv_signal_t *h, int signum) {
  daemon_t *d = h->data;
  daemon_log(d, 1, "%s: shutting down (unfinished jobs resume at the next start)",
             signum == SIGTERM ? "SIGTERM" : "SIGINT");
  d->stopping = 1;
  uv_stop(d->loop);
}

static void on_worker(void *ctx, lpq_worker_event_t ev, const lpq_worker_info_t *w) {
  daemon_t *d = ctx;
  const char *state = ev == LPQ_WORKER_JOINED ? "ready" : ev == LPQ_WORKER_LEFT ? "gone" : "lost";
  lpq_store_worker_upsert(d->store, w->worker_id, w->host, w->pid, state, NULL);
  char msg[256];
  snprintf(msg, sizeof msg, "worker %s %s", w->worker_id,
           ev == LPQ_WORKER_JOINED ? "joined" : ev == LPQ_WORKER_LEFT ? "left" : "expired");
  lpq_store_event_append(d->store, 0, ev == LPQ_WORKER_EXPIRED ? LPQ_STORE_WARN : LPQ_STORE_INFO,
                         msg, NULL, NULL);
}

static int blob_path(void *ctx, const char *hash, char *path, size_t len) {
  daemon_t *d = ctx;
  char *p = NULL;
  if (lpq_store_blob_path(d->store, hash, &p, NULL) != 0)
    return LPQ_ENOTFOUND;
  snprintf(path, len, "%s", p);
  free(p);
  return 0;
}

static void on_pool_log(void *ctx, int level, const char *line) {
  daemon_t *d = ctx;
  daemon_log(d, level, "%s", line);
}

/* The token file must be its owner's alone: no access for others, nor for a group this
** process is not in (a Kubernetes Secret is 0440 with the pod's fsGroup, which is its own).
** 0, or -1 after saying why. */
static int token_private(const char *path) {
  struct stat st;
  if (stat(path, &st) != 0)
    return 0; /* read_token says it cannot be read */
  int own_group = st.st_gid == getegid();
  gid_t groups[256];
  int n = getgroups(256, groups);
  for (int i = 0; i < n && !own_group; i++)
    own_group = groups[i] == st.st_gid;
  if ((st.st_mode & 007) == 0 && ((st.st_mode & 070) == 0 || own_group))
    return 0;
  fprintf(stderr, "lpq-coordinator: the token file %s can be read by %s (mode %03o, group "
          "%lu); chmod 600 it\n", path, st.st_mode & 007 ? "every user" : "another group",
          (unsigned)(st.st_mode & 0777), (unsigned long)st.st_gid);
  return -1;
}

static int read_token(const char *path, char *buf, size_t len) {
  FILE *f = fopen(path, "r");
  if (!f)
    return -1;
  size_t n = fread(buf, 1, len - 1, f);
  fclose(f);
  buf[n] = 0;
  while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
    buf[--n] = 0;
  return n >= 16 ? 0 : -1;
}

/* One coordinator per database: an exclusive flock on PATH.lock (kept open for the process's
** life; the kernel drops it when the process dies, also by kill -9), holding the owner's pid.
** Two coordinators on one database would resume the same jobs and do their work twice. */
static int lock_database(const char *db, int *fd_out) {
  char path[4200];
  snprintf(path, sizeof path, "%s.lock", db);
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    fprintf(stderr, "lpq-coordinator: %s: %s\n", path, strerror(errno));
    return -1;
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    char pid[32] = "";
    ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
    pid[n > 0 ? n : 0] = 0;
    pid[strcspn(pid, "\n")] = 0;
    fprintf(stderr, "lpq-coordinator: the database %s is in use by another lpq-coordinator "
            "(pid %s, lock %s); one coordinator per database\n", db, pid[0] ? pid : "unknown",
            path);
    close(fd);
    return -1;
  }
  char pid[32];
  int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
  if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n)
    fprintf(stderr, "lpq-coordinator: warning: cannot write the pid into %s\n", path);
  *fd_out = fd;
  return 0;
}

static void close_walk(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h))
    uv_close(h, NULL);
}

int main(int argc, char **argv) {
  opts_t o;
  int prc = parse(argc, argv, &o);
  if (prc)
    return prc == 1 ? 0 : prc;
  /* Every file lpq writes (database, WAL, blobs, exports, socket folder) is its user's alone,
  ** whatever umask it was started with. */
  umask(077);
  daemon_t d = {0};
  d.log_level = o.log_level;
  d.max_blob_bytes = (uint64_t)(o.max_blob_mb * 1048576.0);
  d.max_jobs_per_client = (size_t)o.max_jobs_per_client;
  d.blob_grace_s = o.blob_grace_s;
  d.max_job_bytes = o.max_job_mb > 0 ? (uint64_t)(o.max_job_mb * 1048576.0)
                                     : (uint64_t)sysconf(_SC_PHYS_PAGES) *
                                           (uint64_t)sysconf(_SC_PAGESIZE) / 8;
  d.loop = uv_default_loop();
  lpq_error_t err = {0};
  int status = 1;
  char token[1024] = "";
  if (o.token_file && (o.tcp || o.http) && read_token(o.token_file, token, sizeof token) != 0) {
    fprintf(stderr, "lpq-coordinator: --token-file: cannot read a token of 16 or more characters\n");
    return 1;
  }
  make_parent(o.db);
  make_parent(o.socket);
  int lock_fd = -1;
  if (lock_database(o.db, &lock_fd) != 0)
    return 1;
  if (!(d.store = lpq_store_open(o.db, &err))) {
    fprintf(stderr, "lpq-coordinator: %s\n", err.msg);
    return 1;
  }
  lpq_api_options_t ao = {.unix_path = o.socket};
  char host[256] = "";
  if (o.tcp) {
    const char *colon = strrchr(o.tcp, ':');
    if (!colon || colon == o.tcp) {
      fprintf(stderr, "lpq-coordinator: --tcp wants HOST:PORT\n");
      goto out;
    }
    snprintf(host, sizeof host, "%.*s", (int)(colon - o.tcp), o.tcp);
    /* the token travels in plain text: loopback only, as on the pool, unless --insecure */
    int loopback = strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0 ||
                   strcmp(host, "[::1]") == 0 || strcmp(host, "localhost") == 0;
    if (!loopback && !o.insecure) {
      fprintf(stderr, "lpq-coordinator: --tcp %s would serve the API and its bearer token in "
              "plain text beyond this host: bind 127.0.0.1 (and reach it through a tunnel or "
              "a TLS proxy), or accept it with --insecure (as for --workers)\n", o.tcp);
      goto out;
    }
    if (token_private(o.token_file) != 0)
      goto out;
    ao.tcp_host = host;
    ao.tcp_port = atoi(colon + 1);
    ao.token = token;
  }
  if (!(d.api = lpq_api_new(d.loop, &ao, &err)) || methods_register(&d, &err) != 0) {
    fprintf(stderr, "lpq-coordinator: %s\n", err.msg);
    goto out;
  }
  if (o.http) {
    const char *colon = strrchr(o.http, ':');
    char hhost[256];
    snprintf(hhost, sizeof hhost, "%.*s", (int)(colon - o.http), o.http);
    char *end = NULL;
    long port = strtol(colon + 1, &end, 10);
    lpq_http_options_t ho = {.host = hhost, .port = (int)port, .token = token[0] ? token : NULL};
    if (*end || port < 0 || port > 65535 || !(d.http = lpq_http_new(d.loop, d.api, &ho, &err))) {
      fprintf(stderr, "lpq-coordinator: --http %s: %s\n", o.http,
                      *end || port < 0 || port > 65535 ? "not a port" : err.msg);
      goto out;
    }
    daemon_log(&d, 1, "dashboard: http://%s%s%s:%d/", strchr(hhost, ':') ? "[" : "", hhost,
               strchr(hhost, ':') ? "]" : "", lpq_http_port(d.http));
  }
  lpq_dispatch_opts_t po = {.heartbeat_s = o.heartbeat_s, .liveness = o.liveness,
                            .task_timeout_s = o.task_timeout_s, .max_failures = 3,
                            .log_level = o.log_level, .curve_keys_dir = o.curve_keys,
                            .insecure = o.insecure};
  char secret[LPQ_CURVE_KEY_LEN + 1];
  if (o.curve_secret) {
    if (lpq_curve_key_read(o.curve_secret, secret, &err) != 0) {
      fprintf(stderr, "lpq-coordinator: --curve-secret: %s\n", err.msg);
      goto out;
    }
    po.curve_secret_key = secret;
    struct stat st;
    if (stat(o.curve_secret, &st) == 0 && (st.st_mode & 077))
      fprintf(stderr, "lpq-coordinator: warning: %s is readable by others (mode %03o); "
              "chmod 600 it\n", o.curve_secret, (unsigned)(st.st_mode & 0777));
  }
  lpq_dispatch_callbacks_t cb = {jobs_on_result, on_worker, blob_path, on_pool_log, &d};
  if (!(d.pool = lpq_dispatch_new(d.loop, o.workers, &po, &cb, &err))) {
    fprintf(stderr, "lpq-coordinator: %s\n", err.msg);
    goto out;
  }
  store_retry_init(&d);
  deadline_init(&d);
  jobs_feed_init(&d);
  blob_gc_init(&d);
  uv_check_init(d.loop, &d.flush);
  d.flush.data = &d;
  uv_check_start(&d.flush, jobs_flush);
  uv_signal_init(d.loop, &d.sigterm);
  uv_signal_init(d.loop, &d.sigint);
  d.sigterm.data = d.sigint.data = &d;
  uv_signal_start(&d.sigterm, on_signal, SIGTERM);
  uv_signal_start(&d.sigint, on_signal, SIGINT);
  daemon_log(&d, 1, "ready: database %s, API %s%s%s, workers %s", lpq_store_path(d.store),
             o.socket, o.tcp ? " and tcp " : "", o.tcp ? o.tcp : "", lpq_dispatch_endpoint(d.pool));
  if (jobs_resume(&d, &err) != 0)
    daemon_log(&d, 0, "resuming jobs: %s", err.msg);
  uv_run(d.loop, UV_RUN_DEFAULT);
  /* shutdown: results that arrived are committed; unfinished jobs stay running in the database
  ** and resume at the next start */
  d.stopping = 1;
  jobs_flush(&d.flush);
  status = 0;
out:
  lpq_http_free(&d.http); /* before the API: its viewers are the API's in-process clients */
  lpq_dispatch_free(&d.pool);
  lpq_api_free(&d.api);
  uv_walk(d.loop, close_walk, NULL);
  uv_run(d.loop, UV_RUN_DEFAULT); /* closes handles; lets queued preparations finish */
  jobs_free_all(&d);
  export_names_free(&d);
  uv_loop_close(d.loop);
  lpq_store_close(&d.store);
  close(lock_fd);
  return status;
}
