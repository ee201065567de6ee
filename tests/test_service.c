/* tests/test_service.c: lpq as its users meet it: the real lpq-coordinator and lpq-worker
** processes on loopback, driven through lpqctl and raw JSON-RPC on the Unix socket. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define FIX "tests/fixtures/"
#define HB "200" /* heartbeat ms: failures are noticed in 0.6 s */

typedef struct svc_t {
  char dir[64], db[128], sock[128], endpoint[64];
  pid_t coord, workers[4];
  int nworkers, starts;
} svc_t;

static const char *bin(const char *name) {
  static char buf[4][256];
  static int k;
  const char *b = getenv("LPQ_BUILD") ? getenv("LPQ_BUILD") : "build";
  k = (k + 1) % 4;
  snprintf(buf[k], sizeof buf[k], "%s/bin/%s", b, name);
  return buf[k];
}

static pid_t spawn(char *const argv[], const char *log) {
  pid_t p = fork();
  cr_assert_neq(p, -1);
  if (p == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the test */
    FILE *f = freopen(log, "a", stderr);
    (void)f;
    execv(argv[0], argv);
    _exit(127);
  }
  return p;
}

static void start_coordinator(svc_t *s) {
  char log[160];
  snprintf(log, sizeof log, "%s/coordinator%d.log", s->dir, s->starts++);
  char *argv[] = {(char *)bin("lpq-coordinator"), "--db", s->db, "--socket", s->sock,
                  "--workers", s->endpoint, "--heartbeat-ms", HB, "--log-level", "2", NULL};
  s->coord = spawn(argv, log);
  /* wait for "ready": it names the workers' endpoint (a free port the first time) */
  for (int i = 0; i < 200; i++) {
    FILE *f = fopen(log, "r");
    char line[1024];
    while (f && fgets(line, sizeof line, f)) {
      char *w = strstr(line, "ready: "), *ep = w ? strstr(w, ", workers ") : NULL;
      if (ep) {
        snprintf(s->endpoint, sizeof s->endpoint, "%.*s", (int)strcspn(ep + 10, " \n"), ep + 10);
        fclose(f);
        return;
      }
    }
    if (f)
      fclose(f);
    usleep(50000);
  }
  cr_assert_fail("the coordinator did not start (see %s)", log);
}

static void start_worker(svc_t *s, const char *synthetic_ms) {
  char log[160], cache[160], id[32];
  snprintf(log, sizeof log, "%s/worker%d.log", s->dir, s->nworkers);
  snprintf(cache, sizeof cache, "%s/cache%d", s->dir, s->nworkers);
  snprintf(id, sizeof id, "w%d", s->nworkers);
  char *argv[16] = {(char *)bin("lpq-worker"), "--connect", s->endpoint, "--cache-dir", cache,
                    "--id", id, "--heartbeat-ms", HB};
  int k = 9;
  if (synthetic_ms) {
    argv[k++] = "--synthetic";
    argv[k++] = (char *)synthetic_ms;
  }
  argv[k] = NULL;
  s->workers[s->nworkers++] = spawn(argv, log);
}

static void svc_init(svc_t *s) {
  memset(s, 0, sizeof *s);
  signal(SIGPIPE, SIG_IGN); /* the server may close a connection we are still writing */
  snprintf(s->dir, sizeof s->dir, "/tmp/lpq-svc-XXXXXX");
  cr_assert_not_null(mkdtemp(s->dir));
  snprintf(s->db, sizeof s->db, "%s/lpq.db", s->dir);
  snprintf(s->sock, sizeof s->sock, "%s/lpq.sock", s->dir);
  snprintf(s->endpoint, sizeof s->endpoint, "tcp://127.0.0.1:*"); /* a free port */
}

static void svc_stop(svc_t *s) {
  for (int i = 0; i < s->nworkers; i++)
    if (s->workers[i] > 0) {
      kill(s->workers[i], SIGKILL);
      waitpid(s->workers[i], NULL, 0);
    }
  if (s->coord > 0) {
    kill(s->coord, SIGTERM);
    int st;
    waitpid(s->coord, &st, 0);
  }
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", s->dir);
  if (system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", s->dir);
}

/* lpqctl --json ARGS -> parsed JSON (the last JSON line of its output) */
static json_t *ctl(const svc_t *s, const char *args) {
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "%s --socket %s --json %s 2>/dev/null", bin("lpqctl"), s->sock, args);
  FILE *p = popen(cmd, "r");
  cr_assert_not_null(p);
  /* one JSON document (maybe indented), or JSON lines of which the last counts */
  size_t cap = 1 << 20, n = 0, got;
  char *all = malloc(cap);
  while ((got = fread(all + n, 1, cap - n - 1, p)) > 0)
    n += got;
  all[n] = 0;
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

static int64_t submit(const svc_t *s, const char *settings) {
  char args[1024];
  snprintf(args, sizeof args, "submit --model %s/" FIX "score_small.onnx --data %s/" FIX
           "score_small_x.npy --detach %s", getenv("PWD"), getenv("PWD"), settings);
  json_t *r = ctl(s, args);
  cr_assert_not_null(r, "submit gave no JSON");
  int64_t id = json_integer_value(json_object_get(r, "job"));
  json_decref(r);
  cr_assert_gt(id, 0);
  return id;
}

/* Polls the job until it ends (or the timeout); returns its final status. */
static char *wait_job(const svc_t *s, int64_t id, double timeout_s) {
  char args[64];
  snprintf(args, sizeof args, "status %lld", (long long)id);
  for (double t = 0; t < timeout_s; t += 0.1) {
    json_t *r = ctl(s, args);
    const char *st = r ? json_string_value(json_object_get(r, "status")) : NULL;
    if (st && (!strcmp(st, "done") || !strcmp(st, "failed") || !strcmp(st, "canceled"))) {
      char *out = strdup(st);
      json_decref(r);
      return out;
    }
    json_decref(r);
    usleep(100000);
  }
  return strdup("timeout");
}

/* The job's last front as "genome l_co l_cr;..." text, for comparisons. */
static char *front_text(const svc_t *s, int64_t id) {
  char args[64];
  snprintf(args, sizeof args, "pareto %lld", (long long)id);
  json_t *r = ctl(s, args);
  cr_assert_not_null(r);
  json_t *ind = json_object_get(r, "individuals");
  size_t n = json_array_size(ind), cap = 64 * n + 16;
  char *out = calloc(1, cap);
  size_t len = 0;
  for (size_t i = 0; i < n; i++) {
    json_t *o = json_array_get(ind, i);
    len += (size_t)snprintf(out + len, cap - len, "%s %.17g %.17g;",
                            json_string_value(json_object_get(o, "genome")),
                            json_number_value(json_object_get(o, "l_co")),
                            json_number_value(json_object_get(o, "l_cr")));
  }
  json_decref(r);
  cr_assert_gt(n, 0, "empty front");
  return out;
}

#define SMALL_JOB "--set population=8 --set generations=3 --set calib=16 --seed 5"

Test(service, submit_to_finish_and_export, .disabled = 0) {
  svc_t s;
  svc_init(&s);
  start_coordinator(&s);
  start_worker(&s, NULL);
  int64_t id = submit(&s, SMALL_JOB);
  char *st = wait_job(&s, id, 60);
  cr_assert_str_eq(st, "done");
  free(st);
  char *f = front_text(&s, id);
  free(f);
  char args[256];
  snprintf(args, sizeof args, "export %lld --what config,onnx,packed --remote-dir %s", (long long)id, s.dir);
  json_t *r = ctl(&s, args);
  json_decref(r);
  const char *files[] = {"config.json", "model_lp.onnx", "weights.lpw"};
  for (int i = 0; i < 3; i++) {
    char p[256];
    struct stat stt;
    snprintf(p, sizeof p, "%s/%s", s.dir, files[i]);
    cr_assert_eq(stat(p, &stt), 0, "%s missing", p);
    cr_assert_gt(stt.st_size, 16);
  }
  svc_stop(&s);
}

Test(service, one_and_two_workers_give_the_same_front) {
  char *fronts[2];
  for (int w = 1; w <= 2; w++) {
    svc_t s;
    svc_init(&s);
    start_coordinator(&s);
    for (int i = 0; i < w; i++)
      start_worker(&s, NULL);
    int64_t id = submit(&s, SMALL_JOB);
    char *st = wait_job(&s, id, 60);
    cr_assert_str_eq(st, "done");
    free(st);
    fronts[w - 1] = front_text(&s, id);
    svc_stop(&s);
  }
  cr_assert_str_eq(fronts[0], fronts[1]);
  free(fronts[0]);
  free(fronts[1]);
}

#define LONG_JOB "--set population=8 --set generations=8 --set calib=16 --seed 9"

/* The reference: the same synthetic job, undisturbed. */
static char *reference_front(void) {
  svc_t s;
  svc_init(&s);
  start_coordinator(&s);
  start_worker(&s, "5");
  int64_t id = submit(&s, LONG_JOB);
  char *st = wait_job(&s, id, 60);
  cr_assert_str_eq(st, "done");
  free(st);
  char *f = front_text(&s, id);
  svc_stop(&s);
  return f;
}

Test(service, a_worker_killed_mid_job_loses_nothing) {
  char *ref = reference_front();
  svc_t s;
  svc_init(&s);
  start_coordinator(&s);
  start_worker(&s, "40");
  start_worker(&s, "40");
  int64_t id = submit(&s, LONG_JOB);
  usleep(600000);
  kill(s.workers[0], SIGKILL); /* in the middle of an evaluation */
  waitpid(s.workers[0], NULL, 0);
  s.workers[0] = 0;
  char *st = wait_job(&s, id, 60);
  cr_assert_str_eq(st, "done");
  free(st);
  char *f = front_text(&s, id);
  cr_assert_str_eq(f, ref);
  free(f);
  free(ref);
  svc_stop(&s);
}

Test(service, the_coordinator_killed_and_restarted_gives_the_same_front) {
  char *ref = reference_front();
  svc_t s;
  svc_init(&s);
  start_coordinator(&s);
  start_worker(&s, "30");
  start_worker(&s, "30");
  int64_t id = submit(&s, LONG_JOB);
  usleep(700000);
  kill(s.coord, SIGKILL); /* kill -9 mid-job */
  waitpid(s.coord, NULL, 0);
  start_coordinator(&s); /* the same database: the job resumes */
  char *st = wait_job(&s, id, 90);
  cr_assert_str_eq(st, "done");
  free(st);
  char *f = front_text(&s, id);
  cr_assert_str_eq(f, ref);
  free(f);
  free(ref);
  svc_stop(&s);
}

/* One raw line to the socket, one line back. */
static json_t *raw(const svc_t *s, const char *line, size_t len) {
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  snprintf(a.sun_path, sizeof a.sun_path, "%.100s", s->sock);
  cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  size_t off = 0;
  while (off < len) {
    ssize_t w = write(fd, line + off, len - off);
    if (w <= 0)
      break;
    off += (size_t)w;
  }
  char buf[1 << 16];
  size_t n = 0;
  while (n < sizeof buf - 1) {
    ssize_t r = read(fd, buf + n, sizeof buf - 1 - n);
    if (r <= 0)
      break;
    n += (size_t)r;
    if (memchr(buf, '\n', n))
      break;
  }
  buf[n] = 0;
  close(fd);
  return json_loads(buf, JSON_DISABLE_EOF_CHECK, NULL);
}

static long err_code(json_t *r) {
  return (long)json_integer_value(json_object_get(json_object_get(r, "error"), "code"));
}

Test(service, bad_requests_get_errors_and_the_daemon_keeps_serving) {
  svc_t s;
  svc_init(&s);
  start_coordinator(&s);
  struct {
    const char *line;
    long code;
  } cases[] = {
      {"{not json\n", -32700},
      {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"job.fly\"}\n", -32601},
      {"{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"job.get\",\"params\":{\"job\":\"x\"}}\n", -32602},
      {"{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"job.get\",\"params\":{\"job\":999}}\n", -32010},
      {"{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"job.submit\",\"params\":{\"model\":{\"path\":\"/no/such.onnx\"},\"data\":{\"path\":\"/no/x.npy\"}}}\n", -32014},
      {"{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"job.submit\",\"params\":{\"model\":{\"hash\":\"0000000000000000000000000000000000000000000000000000000000000000\"},\"data\":{\"path\":\"/x\"}}}\n", -32011},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    json_t *r = raw(&s, cases[i].line, strlen(cases[i].line));
    cr_assert_not_null(r, "no answer to %s", cases[i].line);
    cr_assert_eq(err_code(r), cases[i].code, "%s -> %s", cases[i].line,
                 json_dumps(r, JSON_COMPACT));
    json_decref(r);
  }
  /* an unsupported model: a .npy file where the ONNX model should be */
  char line[1024];
  snprintf(line, sizeof line, "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"job.submit\",\"params\":"
           "{\"model\":{\"path\":\"%s/" FIX "score_small_x.npy\"},\"data\":{\"path\":\"%s/" FIX
           "score_small_x.npy\"}}}\n", getenv("PWD"), getenv("PWD"));
  json_t *r = raw(&s, line, strlen(line));
  long c = err_code(r);
  cr_assert(c == -32012 || c == -32015, "not-a-model gave %ld", c);
  json_decref(r);
  /* a huge message */
  size_t big = (size_t)70 << 20;
  char *huge = malloc(big + 2);
  memset(huge, 'a', big);
  huge[0] = '"';
  huge[big] = '\n';
  r = raw(&s, huge, big + 1);
  free(huge);
  cr_assert_eq(err_code(r), -32002);
  json_decref(r);
  /* still serving */
  r = ctl(&s, "list");
  cr_assert_not_null(r);
  json_decref(r);
  svc_stop(&s);
}
