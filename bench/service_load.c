/*
** bench/service_load.c: issue 9's load bar on the real processes. One lpq-coordinator, workers
** (lpq-worker --synthetic, so the coordinator is the part under test), and a long ResNet-18
** job. The same job runs three times for --seconds each: alone, with N concurrent API clients
** (threads with a connection each) polling job.get every --interval-ms, and alone again. Prints
** the clients' latency (p50, p99, max, measured by the clients from send to answer) and the
** job's evaluations per second with the clients against the mean of the two runs without.
** The bars: p99 < 50 ms and a fall of less than 10%.
**
** usage: service_load [--clients 200] [--seconds 8] [--interval-ms 100] [--workers 2]
**                     [--synthetic-ms 2] [--threads 4]   (run from the repository's top folder)
*/
#include "bench/service_harness.h"

#include "bench/bench_verdict.h"

#include <math.h>
#include <pthread.h>

#define MODEL "models/resnet18.onnx"
#define DATA "models/fashion_calib_256.npy"

typedef struct client_t {
  const proc_svc_t *s;
  int64_t job;
  int interval_ms;
  volatile int *stop;
  double *lat_ms;
  size_t n, cap;
  unsigned seed;
  pthread_t th;
} client_t;

static void *client_main(void *arg) {
  client_t *c = arg;
  int fd = b_connect(c->s);
  char line[128];
  int len = snprintf(line, sizeof line,
                     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"job.get\",\"params\":"
                     "{\"job\":%lld}}\n", (long long)c->job);
  size_t cap = 1 << 16;
  char *buf = malloc(cap);
  usleep((useconds_t)(rand_r(&c->seed) % (unsigned)(c->interval_ms * 1000 + 1))); /* spread */
  while (!*c->stop) {
    double t0 = proc_now_s();
    b_roundtrip(fd, line, (size_t)len, buf, cap);
    double ms = (proc_now_s() - t0) * 1e3;
    if (strstr(buf, "\"error\":{"))
      b_die("job.get answered an error: %s", buf);
    if (c->n < c->cap)
      c->lat_ms[c->n++] = ms;
    if (c->interval_ms > 0) {
      double left = c->interval_ms - ms;
      if (left > 0)
        usleep((useconds_t)(left * 1e3));
    }
  }
  free(buf);
  close(fd);
  return NULL;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Runs one job for `seconds` after its first results, with `nclients` pollers; the job's
** evaluations per second. Latencies are appended to *lat. */
static double run(const proc_svc_t *s, int nclients, int interval_ms, double seconds, uint64_t seed,
                  double **lat, size_t *nlat) {
  /* enough generations to outlast the run, within what --max-job-mb lets one job hold
  ** (job.submit refuses 100,000 generations: ~10 GB of search state estimated) */
  json_t *set = json_pack("{s:i, s:i, s:i}", "population", 40, "generations", 5000, "calib",
                          16);
  int64_t job = b_submit(s, MODEL, DATA, set, seed);
  char status[32];
  double t0 = proc_now_s();
  while (b_evaluations(s, job, status, sizeof status) < 80) { /* past the first generation */
    if (proc_now_s() - t0 > 120)
      b_die("job %lld did not start (%s)", (long long)job, status);
    usleep(50000);
  }
  volatile int stop = 0;
  client_t *cl = calloc((size_t)nclients, sizeof *cl);
  for (int i = 0; i < nclients; i++) {
    cl[i] = (client_t){.s = s, .job = job, .interval_ms = interval_ms, .stop = &stop,
                       .seed = (unsigned)i * 7919u + 1};
    cl[i].cap = (size_t)(seconds * 1000.0 / (interval_ms > 0 ? interval_ms : 1)) * 2 + 64;
    cl[i].lat_ms = malloc(cl[i].cap * sizeof(double));
    pthread_create(&cl[i].th, NULL, client_main, &cl[i]);
  }
  usleep(300000); /* every client connected and polling */
  long long e0 = b_evaluations(s, job, NULL, 0);
  double ta = proc_now_s();
  usleep((useconds_t)(seconds * 1e6));
  long long e1 = b_evaluations(s, job, status, sizeof status);
  double tb = proc_now_s();
  stop = 1;
  for (int i = 0; i < nclients; i++) {
    pthread_join(cl[i].th, NULL);
    double *p = realloc(*lat, (*nlat + cl[i].n) * sizeof(double));
    if (!p)
      b_die("out of memory");
    *lat = p;
    memcpy(*lat + *nlat, cl[i].lat_ms, cl[i].n * sizeof(double));
    *nlat += cl[i].n;
    free(cl[i].lat_ms);
  }
  free(cl);
  if (strcmp(status, "running") != 0)
    b_die("job %lld is %s, not running, at the end of the window: make it longer", (long long)job,
          status);
  b_cancel(s, job);
  return (double)(e1 - e0) / (tb - ta);
}

int main(int argc, char **argv) {
  int clients = 200, interval_ms = 100, workers = 2;
  double seconds = 8;
  const char *synthetic_ms = "2", *threads = "4";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--clients"))
      clients = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--seconds"))
      seconds = atof(argv[i + 1]);
    else if (!strcmp(argv[i], "--interval-ms"))
      interval_ms = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--workers"))
      workers = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--synthetic-ms"))
      synthetic_ms = argv[i + 1];
    else if (!strcmp(argv[i], "--threads"))
      threads = argv[i + 1];
    else
      b_die("unknown option %s", argv[i]);
  }
  if (clients < 1 || clients > 250 || seconds <= 0 || interval_ms < 0 || workers < 1 ||
      workers > 8)
    b_die("an option is out of range (clients 1..250: the API takes 256 connections)");
  proc_svc_t s;
  b_init(&s, argv[0]);
  b_print_load("before");
  b_start_coordinator(&s);
  for (int i = 0; i < workers; i++)
    b_start_worker(&s, synthetic_ms, threads);
  double *lat = NULL, *none = NULL;
  size_t nlat = 0, nnone = 0;
  double alone1 = run(&s, 0, interval_ms, seconds, 5, &none, &nnone);
  double loaded = run(&s, clients, interval_ms, seconds, 5, &lat, &nlat);
  double alone2 = run(&s, 0, interval_ms, seconds, 5, &none, &nnone);
  json_t *st = b_call(&s, "server.stats", NULL);
  json_t *jg = json_object_get(json_object_get(st, "methods"), "job.get");
  double server_p99 = json_number_value(json_object_get(jg, "p99_ms"));
  double server_mean = json_number_value(json_object_get(jg, "mean_ms"));
  json_decref(st);
  proc_svc_stop(&s);
  if (nlat == 0)
    b_die("no call was answered");
  qsort(lat, nlat, sizeof *lat, cmp_double);
  double p50 = lat[nlat / 2], p99 = lat[(size_t)floor(0.99 * (double)(nlat - 1))];
  double alone = 0.5 * (alone1 + alone2), fall = 100.0 * (alone - loaded) / alone;
  printf("service_load: lpq-coordinator, %d lpq-worker --synthetic %s --threads %s, a ResNet-18 "
         "job (population 40)\n", workers, synthetic_ms, threads);
  printf("  %d clients polling job.get every %d ms: %zu calls in %.0f s, latency p50 %.2f ms, "
         "p99 %.2f ms, max %.2f ms (in the server: mean %.3f ms, p99 %.2f ms)\n", clients,
         interval_ms, nlat, seconds, p50, p99, lat[nlat - 1], server_mean, server_p99);
  printf("  job: %.0f evaluations/s alone (%.0f, %.0f), %.0f with the clients: %+.1f%%\n", alone,
         alone1, alone2, loaded, -fall);
  char target[96];
  snprintf(target, sizeof target, "job.get p99 latency, %d clients polling", clients);
  bench_verdict("service_load", target, p99, "<", 50, "ms");
  bench_verdict("service_load", "the job's evaluations/s fall with the clients", fall, "<", 10,
                "%");
  b_print_load("after");
  free(lat);
  free(none);
  return 0; /* a missed bar is printed; the exit status is for a benchmark that broke */
}
