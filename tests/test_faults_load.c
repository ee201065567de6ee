/* tests/test_faults_load.c: the small version of bench/service_load: concurrent clients poll
** job.get on the real daemon while a job runs; every call is answered, quickly, and the best
** genome job.get shows (cached) is the database view's once the job has ended. */
#include "tests/faults_harness.h"

#include <math.h>
#include <pthread.h>

typedef struct poller_t {
  proc_svc_t s;           /* a copy with a connection of its own */
  int64_t job;
  volatile int *stop;
  size_t calls, slow; /* slow: answered after more than 100 ms */
  double max_ms;
  pthread_t th;
} poller_t;

static void *poll_main(void *arg) {
  poller_t *p = arg;
  while (!*p->stop) {
    double t0 = proc_now_s();
    json_t *r = f_ok(&p->s, "job.get", f_job_params(p->job));
    double ms = (proc_now_s() - t0) * 1e3;
    json_decref(r);
    p->calls++;
    p->slow += ms > 100;
    p->max_ms = fmax(p->max_ms, ms);
    usleep(20000);
  }
  proc_rpc_close(&p->s.api);
  return NULL;
}

Test(faults, concurrent_clients_polling_job_get_while_a_job_runs) {
  const int nclients = getenv("LPQ_ASAN") ? 20 : 50;
  proc_svc_t s;
  f_init(&s);
  f_start_coordinator(&s);
  f_start_worker(&s, "5");
  int64_t id = f_submit(&s, "{\"population\":8,\"generations\":12,\"calib\":16}", 4);
  volatile int stop = 0;
  poller_t *p = calloc((size_t)nclients, sizeof *p);
  for (int i = 0; i < nclients; i++) {
    p[i].s = s;
    proc_rpc_init(&p[i].s.api, s.sock);
    p[i].job = id;
    p[i].stop = &stop;
    pthread_create(&p[i].th, NULL, poll_main, &p[i]);
  }
  /* while it runs the best may lag by up to a second (job.get caches it); once the job has
  ** ended it is exactly the database view's */
  char *st = f_wait_job(&s, id, 60);
  stop = 1;
  size_t calls = 0, slow = 0;
  double max_ms = 0;
  for (int i = 0; i < nclients; i++) {
    pthread_join(p[i].th, NULL);
    calls += p[i].calls;
    slow += p[i].slow;
    max_ms = fmax(max_ms, p[i].max_ms);
  }
  free(p);
  cr_assert_str_eq(st, "done");
  free(st);
  json_t *g = f_ok(&s, "job.get", f_job_params(id));
  json_t *v = f_ok(&s, "db.query", json_pack("{s:s, s:{s:I}, s:[s]}", "table", "v_best_config",
                                             "where", "job", (json_int_t)id, "columns",
                                             "genome"));
  json_t *row = json_array_get(json_object_get(v, "rows"), 0);
  cr_assert_not_null(row, "the view has no best genome");
  const char *best = json_string_value(json_object_get(json_object_get(g, "best"), "genome"));
  cr_assert_not_null(best);
  cr_assert_str_eq(best, json_string_value(json_array_get(row, 0)),
                   "job.get's best differs from v_best_config");
  json_decref(v);
  json_decref(g);
  fprintf(stderr, "%d clients: %zu job.get calls, %zu over 100 ms, max %.1f ms\n", nclients,
          calls, slow, max_ms);
  cr_assert_gt(calls, (size_t)nclients);
  /* How fast the clients see answers is the machine's scheduling (50 client threads on a
  ** loaded 2-core CI machine), not the daemon's; bench/service_load holds the 50 ms bar there.
  ** What the daemon controls is how long the loop spends on a job.get, which it measures
  ** itself (server.stats): the cached best keeps that under a millisecond (without the cache,
  ** 2.7 ms at p99 even on this small job). */
  json_t *stats = f_ok(&s, "server.stats", NULL);
  json_t *jg = json_object_get(json_object_get(stats, "methods"), "job.get");
  double server_p99 = json_number_value(json_object_get(jg, "p99_ms"));
  long long served = (long long)json_integer_value(json_object_get(jg, "calls"));
  json_decref(stats);
  fprintf(stderr, "job.get in the server: p99 %.3f ms over %lld calls\n", server_p99, served);
  cr_assert_geq(served, (long long)calls, "server.stats counted %lld job.get calls", served);
  const double p99_max_ms = getenv("LPQ_ASAN") ? 3.0 : 1.0; /* measured 0.14 (ASan ~0.4) */
  cr_assert_lt(server_p99, p99_max_ms, "job.get holds the loop %.2f ms at p99", server_p99);
  /* A loop that cannot keep up with the calls (as before job.get's best was cached: each
  ** call ran the v_best_config view, and 2,500 calls/s saturated it) queues them without
  ** bound: the clients' median then grows past any scheduling hiccup. */
  cr_assert_lt(slow * 2, calls, "%zu of %zu calls took over 100 ms: the loop does not keep up",
               slow, calls);
  proc_svc_stop(&s);
}
