/*
** bench/pool_overhead.c: the coordinator's dispatch overhead. The dispatcher (ROUTER on a libuv
** loop, as in lpq-coordinator) against N simulated zero-cost workers: threads with their own
** DEALER sockets over TCP loopback that decode each TASK, score it with the synthetic scorer
** (no sleep) and answer at once. The caller refills the queue from on_result, as the daemon
** would. Reports tasks per second dispatched and received: the dispatch-only part of the
** issue's ">= 20,000 evaluations per second with 100 simulated workers" (the SQLite commit
** is the daemon's and is not included).
**
** usage: pool_overhead [--workers 100] [--slots 2] [--tasks 200000] [--layers 21]
**                      [--endpoint tcp://127.0.0.1:*]
*/
#include "bench/bench_verdict.h"
#include "coordinator/dispatch/dispatch.h"
#include "worker/worker.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>
#include <zmq.h>

typedef struct bench_t {
  uv_loop_t loop;
  lpq_dispatch_t *d;
  size_t tasks, layers, submitted, received, failed;
  lpq_layer_formats_t *genomes; /* 64 genomes, reused in turn */
  double t_first, t_last, roundtrip_ms;
  int joined;
  size_t workers;
  volatile int stop;
  const char *endpoint;
  void *wctx;
  unsigned slots;
} bench_t;

static double now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void submit_one(bench_t *b)
{
  lpq_task_t t = {.job_id = 1 + (int64_t)(b->submitted % 4), .layer_count = b->layers,
                  .settings_json = "{\"objective\":\"bits\",\"temperature\":0.5}"};
  t.layers = b->genomes + (b->submitted % 64) * b->layers;
  lpq_error_t err;
  if (lpq_dispatch_submit(b->d, &t, NULL, NULL, &err) != 0) {
    fprintf(stderr, "pool_overhead: %s\n", err.msg);
    exit(1);
  }
  b->submitted++;
}

static void on_result(void *ctx, const lpq_dispatch_task_t *task, const lpq_result_t *r)
{
  (void)task;
  bench_t *b = ctx;
  b->received++;
  b->failed += r->status != 0;
  b->roundtrip_ms += r->roundtrip_ms;
  if (b->submitted < b->tasks)
    submit_one(b);
  if (b->received == b->tasks) {
    b->t_last = now_s();
    uv_stop(&b->loop);
  }
}

static void on_worker(void *ctx, lpq_worker_event_t ev, const lpq_worker_info_t *w)
{
  (void)w;
  bench_t *b = ctx;
  if (ev == LPQ_WORKER_JOINED && ++b->joined == (int)b->workers) {
    /* all in: prime the queue with a few tasks per slot, then refill from on_result */
    b->t_first = now_s();
    size_t prime = b->workers * b->slots * 4;
    for (size_t i = 0; i < prime && b->submitted < b->tasks; i++)
      submit_one(b);
  }
}

static void on_log(void *ctx, int level, const char *line)
{
  (void)ctx;
  if (level <= 1)
    fprintf(stderr, "%s\n", line);
}

/* A zero-cost worker: READY, then answer every TASK at once; heartbeat when idle. */
static void *sim_worker(void *arg)
{
  bench_t *b = arg;
  void *s = zmq_socket(b->wctx, ZMQ_DEALER);
  int timeout = 200, zero = 0;
  zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
  zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
  zmq_setsockopt(s, ZMQ_SNDHWM, &zero, sizeof zero);
  zmq_setsockopt(s, ZMQ_RCVHWM, &zero, sizeof zero);
  zmq_connect(s, b->endpoint);
  lpq_wire_buf_t out = {0};
  lpq_error_t err;
  lpq_ready_t ready = {.host = "bench", .pid = 0, .threads = b->slots,
                       .capabilities = "synthetic", .version = "bench"};
  snprintf(ready.worker_id, sizeof ready.worker_id, "sim-%p", (void *)&out);
  lpq_wire_encode_ready(&out, &ready, &err);
  zmq_send(s, out.data, out.len, 0);
  double last_beat = now_s();
  zmq_msg_t m;
  zmq_msg_init(&m);
  while (!b->stop) {
    if (now_s() - last_beat > 0.5) {
      lpq_wire_encode_empty(&out, LPQ_MSG_HEARTBEAT, &err);
      zmq_send(s, out.data, out.len, 0);
      last_beat = now_s();
    }
    if (zmq_msg_recv(&m, s, 0) < 0)
      continue;
    lpq_msg_type_t type;
    if (lpq_wire_peek(zmq_msg_data(&m), zmq_msg_size(&m), &type, NULL) != 0 ||
        type != LPQ_MSG_TASK)
      continue;
    lpq_task_t t;
    if (lpq_wire_decode_task(zmq_msg_data(&m), zmq_msg_size(&m), &t, &err) != 0)
      continue;
    lpq_result_t r;
    lpq_result_init(&r, t.task_id);
    lpq_synthetic_score(&t, &r);
    lpq_task_clear(&t);
    lpq_wire_encode_result(&out, &r, &err);
    zmq_send(s, out.data, out.len, 0);
  }
  zmq_msg_close(&m);
  lpq_wire_buf_clear(&out);
  zmq_close(s);
  return NULL;
}

int main(int argc, char **argv)
{
  bench_t *b = calloc(1, sizeof *b);
  b->workers = 100;
  b->slots = 2;
  b->tasks = 200000;
  b->layers = 21; /* ResNet-18's quantizable layers */
  b->endpoint = "tcp://127.0.0.1:*";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--workers") == 0)
      b->workers = strtoul(argv[i + 1], NULL, 10);
    else if (strcmp(argv[i], "--slots") == 0)
      b->slots = (unsigned)strtoul(argv[i + 1], NULL, 10);
    else if (strcmp(argv[i], "--tasks") == 0)
      b->tasks = strtoul(argv[i + 1], NULL, 10);
    else if (strcmp(argv[i], "--layers") == 0)
      b->layers = strtoul(argv[i + 1], NULL, 10);
    else if (strcmp(argv[i], "--endpoint") == 0)
      b->endpoint = argv[i + 1];
    else {
      fprintf(stderr, "pool_overhead: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (b->workers < 1 || b->workers > 1000 || b->slots < 1 || b->slots > 64 || b->tasks < 1 ||
      b->layers < 1 || b->layers > LPQ_WIRE_MAX_LAYERS) {
    fprintf(stderr, "pool_overhead: an option is out of range\n");
    return 2;
  }
  b->genomes = calloc(64 * b->layers, sizeof *b->genomes);
  for (size_t i = 0; i < 64 * b->layers; i++) {
    int n = 2 + (int)(i % 7);
    b->genomes[i].weight = (lp_format_t){n, (int)(i % 3), n - 1, (int)(i % 9) - 4};
    b->genomes[i].act = (lp_format_t){8, 1, 7, 0};
  }
  uv_loop_init(&b->loop);
  lpq_dispatch_callbacks_t cb = {on_result, on_worker, NULL, on_log, b};
  lpq_error_t err;
  b->d = lpq_dispatch_new(&b->loop, b->endpoint, NULL, &cb, &err);
  if (b->d == NULL) {
    fprintf(stderr, "pool_overhead: %s\n", err.msg);
    return 1;
  }
  b->endpoint = lpq_dispatch_endpoint(b->d);
  b->wctx = zmq_ctx_new();
  pthread_t *th = calloc(b->workers, sizeof *th);
  for (size_t i = 0; i < b->workers; i++)
    pthread_create(&th[i], NULL, sim_worker, b);
  uv_run(&b->loop, UV_RUN_DEFAULT);
  b->stop = 1;
  for (size_t i = 0; i < b->workers; i++)
    pthread_join(th[i], NULL);
  double secs = b->t_last - b->t_first;
  lpq_dispatch_stats_t st;
  lpq_dispatch_stats(b->d, &st);
  printf("pool_overhead: %zu simulated workers x %u slots over %s, %zu tasks of %zu layers\n",
         b->workers, b->slots, b->endpoint, b->tasks, b->layers);
  printf("  %.0f tasks/s dispatched and received (%.2f s; mean round trip %.3f ms; "
         "%zu failed; %llu retried)\n",
         (double)b->received / secs, secs, b->roundtrip_ms / (double)b->received, b->failed,
         (unsigned long long)st.retried);
  printf("  dispatch only: the daemon's SQLite commit per result is not included\n");
  bench_verdict("pool_overhead", "tasks/s dispatched and received (dispatch only)",
                (double)b->received / secs, ">=", 20000, "/s");
  lpq_dispatch_free(&b->d);
  uv_run(&b->loop, UV_RUN_DEFAULT);
  uv_loop_close(&b->loop);
  zmq_ctx_term(b->wctx);
  free(th);
  free(b->genomes);
  int rc = b->failed != 0 || b->received != b->tasks;
  free(b);
  return rc;
}
