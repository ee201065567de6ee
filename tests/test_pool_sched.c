/* tests/test_pool_sched.c: the dispatcher's rules with real lpq-worker processes: round-robin
** across jobs and FIFO inside one, cancel, a failing task reported after N distinct workers, the
** per-task timeout, and a peer sending garbage or results for unknown tasks. */
#include "test_pool_harness.h"

#include <zmq.h>

static size_t want;
static int cond_results(harness_t *h) { return h->results >= want; }

/* The rogue's frames counted: 4 bad frames, 2 dropped results, 5 logged drops. */
static int cond_rogue_counted(harness_t *h) {
  lpq_dispatch_stats_t st;
  lpq_dispatch_stats(h->d, &st);
  return st.bad_frames >= 4 && st.dropped_results >= 2 && h->dropped_logs >= 5;
}

Test(pool_sched, jobs_share_the_pool_round_robin_fifo_inside_a_job) {
  harness_t *h = calloc(1, sizeof *h);
  h_start(h, NULL);
  h_spawn(h, "solo", 1, 0, NULL);
  cr_assert(h_run_until(h, h_cond_joined_all, 60));
  /* job 1 submits 30 tasks before jobs 2 and 3 submit theirs */
  static lpq_layer_formats_t layers[90][3];
  for (int i = 0; i < 90; i++) {
    lpq_task_t t = h_task(1 + i / 30, (unsigned)i, layers[i], 3);
    h_submit(h, &t);
  }
  want = 90;
  cr_assert(h_run_until(h, cond_results, 60));
  /* One slot: results come in dispatch order. Of the first 30 each job has its third. */
  int per_job[4] = {0};
  for (int k = 0; k < 30; k++)
    per_job[h->info[h->order[k]].job_id]++;
  for (int j = 1; j <= 3; j++)
    cr_assert(per_job[j] >= 9 && per_job[j] <= 11, "job %d got %d of the first 30", j,
              per_job[j]);
  uint64_t last[4] = {0};
  for (int k = 0; k < 90; k++) {
    uint64_t id = h->order[k];
    int64_t j = h->info[id].job_id;
    cr_assert_gt(id, last[j], "job %lld out of FIFO order", (long long)j);
    last[j] = id;
  }
  h_stop(h);
  free(h);
}

/* The daemon frees its pool before its queued preparations finish, and a job canceled during
** one ends then: canceling on no pool forgets nothing and does not fault. */
Test(pool_sched, cancel_job_on_no_pool_forgets_nothing) {
  cr_assert_eq(lpq_dispatch_cancel_job(NULL, 1), 0);
}

Test(pool_sched, cancel_job_forgets_its_tasks) {
  harness_t *h = calloc(1, sizeof *h);
  h_start(h, NULL);
  h_spawn(h, "solo", 1, 20, NULL);
  cr_assert(h_run_until(h, h_cond_joined_all, 60));
  lpq_layer_formats_t layers[40][3];
  for (int i = 0; i < 40; i++) {
    lpq_task_t t = h_task(1 + i % 2, (unsigned)i, layers[i], 3);
    h_submit(h, &t);
  }
  h_run_for(h, 0.1); /* a few have run */
  size_t done_before = h->results;
  size_t forgotten = lpq_dispatch_cancel_job(h->d, 1);
  cr_assert_gt(forgotten, 0);
  size_t job1_before = 0;
  for (size_t k = 0; k < h->results; k++)
    job1_before += h->info[h->order[k]].job_id == 1;
  cr_assert_eq(job1_before + forgotten, 20, "%zu done + %zu forgotten", job1_before, forgotten);
  want = done_before + (20 - (done_before - job1_before));
  cr_assert(h_run_until(h, cond_results, 60));
  h_run_for(h, 0.2);
  size_t job1 = 0;
  for (size_t k = 0; k < h->results; k++)
    job1 += h->info[h->order[k]].job_id == 1;
  cr_assert_eq(job1, job1_before, "job 1 results after its cancel");
  cr_assert_eq(h->results, 20 + job1_before);
  lpq_dispatch_stats_t st;
  lpq_dispatch_stats(h->d, &st);
  cr_assert_eq(st.tasks_queued + st.tasks_running, 0);
  cr_assert_eq(lpq_dispatch_cancel_job(h->d, 1), 0);
  h_stop(h);
  free(h);
}

Test(pool_sched, failing_task_is_reported_after_three_distinct_workers) {
  harness_t *h = calloc(1, sizeof *h);
  h_start(h, NULL);
  h_spawn(h, "x", 1, 0, NULL);
  h_spawn(h, "y", 1, 0, NULL);
  h_spawn(h, "z", 1, 0, NULL);
  cr_assert(h_run_until(h, h_cond_joined_all, 60));
  lpq_layer_formats_t layers[10][3];
  for (int i = 0; i < 10; i++) {
    lpq_task_t t = h_task(1, (unsigned)i, layers[i], 3);
    if (i == 4)
      t.settings_json = "{\"synthetic_fail\":true}";
    h_submit(h, &t);
  }
  want = 10;
  cr_assert(h_run_until(h, cond_results, 60));
  cr_assert_eq(h->ok, 9);
  cr_assert_eq(h->failed, 1);
  const lpq_result_t *r = &h->res[5];
  cr_assert_eq(r->status, LPQ_EINVAL);
  cr_assert(strstr(r->error, "3 workers") && strstr(r->error, "synthetic failure"), "%s",
            r->error);
  cr_assert_eq(h->info[5].attempts, 3);
  lpq_dispatch_stats_t st;
  lpq_dispatch_stats(h->d, &st);
  cr_assert_eq(st.retried, 2);
  cr_assert_eq(st.failed, 1);
  h_stop(h);
  free(h);
}

static int cond_two_dropped(harness_t *h) {
  lpq_dispatch_stats_t st;
  lpq_dispatch_stats(h->d, &st);
  return st.dropped_results == 2;
}

Test(pool_sched, task_timeout_dispatches_again_then_fails) {
  harness_t *h = calloc(1, sizeof *h);
  lpq_dispatch_opts_t o = {.task_timeout_s = 0.4, .max_failures = 2};
  h_start(h, &o);
  /* 3 s evaluations against a 0.4 s timeout: both timeouts come long before either result
  ** (the first result would win), even on a loaded machine under ASan */
  h_spawn(h, "slow1", 1, 3000, NULL);
  h_spawn(h, "slow2", 1, 3000, NULL);
  cr_assert(h_run_until(h, h_cond_joined_all, 60));
  lpq_layer_formats_t layers[3];
  lpq_task_t t = h_task(1, 1, layers, 3);
  h_submit(h, &t);
  want = 1;
  cr_assert(h_run_until(h, cond_results, 60));
  cr_assert_neq(h->res[1].status, 0);
  cr_assert(strstr(h->res[1].error, "no result within") != NULL, "%s", h->res[1].error);
  cr_assert_eq(h->info[1].attempts, 2);
  lpq_dispatch_stats_t st;
  lpq_dispatch_stats(h->d, &st);
  cr_assert_eq(st.timeouts, 2);
  cr_assert(h_run_until(h, cond_two_dropped, 60)); /* the late results are dropped */
  cr_assert_eq(h->results, 1);
  h_stop(h);
  free(h);
}

/* ---- a misbehaving peer: a raw DEALER driven by the test -------------------------------- */

typedef struct rogue_t {
  void *ctx, *sock;
  int last_type;
  uint64_t task_id;
} rogue_t;
static rogue_t rogue;

static int rogue_poll(harness_t *h) {
  (void)h;
  zmq_msg_t m;
  zmq_msg_init(&m);
  int got = 0;
  while (zmq_msg_recv(&m, rogue.sock, ZMQ_DONTWAIT) >= 0) {
    lpq_msg_type_t type;
    if (lpq_wire_peek(zmq_msg_data(&m), zmq_msg_size(&m), &type, NULL) == 0) {
      rogue.last_type = type;
      if (type == LPQ_MSG_TASK) {
        lpq_task_t t;
        cr_assert_eq(lpq_wire_decode_task(zmq_msg_data(&m), zmq_msg_size(&m), &t, NULL), 0);
        rogue.task_id = t.task_id;
        lpq_task_clear(&t);
      }
      got = 1;
    }
  }
  zmq_msg_close(&m);
  return got;
}
static int cond_rogue_type(harness_t *h) {
  rogue_poll(h);
  return rogue.last_type != 0;
}
static int cond_rogue_task(harness_t *h) {
  rogue_poll(h);
  return rogue.task_id != 0;
}

static void rogue_send(const void *p, size_t n, int more) {
  cr_assert_eq(zmq_send(rogue.sock, p, n, more ? ZMQ_SNDMORE : 0), (int)n);
}

Test(pool_sched, garbage_and_unknown_results_are_dropped_others_unaffected) {
  harness_t *h = calloc(1, sizeof *h);
  h_start(h, NULL);
  h_spawn(h, "honest", 2, 5, NULL);
  cr_assert(h_run_until(h, h_cond_joined_all, 60));
  rogue.ctx = zmq_ctx_new();
  rogue.sock = zmq_socket(rogue.ctx, ZMQ_DEALER);
  int zero = 0;
  zmq_setsockopt(rogue.sock, ZMQ_LINGER, &zero, sizeof zero);
  cr_assert_eq(zmq_connect(rogue.sock, lpq_dispatch_endpoint(h->d)), 0);
  lpq_wire_buf_t b = {0};
  lpq_error_t err;

  /* unregistered: garbage, then a RESULT: dropped, and it is told to reconnect */
  rogue_send("hello, coordinator", 18, 0);
  rogue_send("LQ\x01\x63", 4, 0); /* unknown type */
  lpq_result_t r;
  lpq_result_init(&r, 424242);
  lpq_wire_encode_result(&b, &r, &err);
  rogue_send(b.data, b.len, 0);
  rogue.last_type = 0;
  cr_assert(h_run_until(h, cond_rogue_type, 60));
  cr_assert_eq(rogue.last_type, LPQ_MSG_DISCONNECT);

  /* registered with one slot: it gets a task, answers with nonsense, then leaves */
  lpq_ready_t ready = {.worker_id = "rogue", .host = "nowhere", .pid = 1, .threads = 1,
                       .capabilities = "synthetic", .version = "x"};
  lpq_wire_encode_ready(&b, &ready, &err);
  rogue_send(b.data, b.len, 0);
  cr_assert(h_run_until(h, h_cond_joined_all, 60));
  lpq_layer_formats_t layers[60][3];
  for (int i = 0; i < 60; i++) {
    lpq_task_t t = h_task(1 + i % 2, (unsigned)i, layers[i], 3);
    h_submit(h, &t);
  }
  cr_assert(h_run_until(h, cond_rogue_task, 60), "the rogue got no task");
  lpq_result_init(&r, rogue.task_id + 100000); /* a task it does not hold */
  lpq_wire_encode_result(&b, &r, &err);
  rogue_send(b.data, b.len, 0);
  rogue_send(b.data, b.len - 3, 0);             /* truncated */
  rogue_send("LQ", 2, 1);                       /* three frames */
  rogue_send("\x01", 1, 1);
  rogue_send("x", 1, 0);
  lpq_wire_encode_empty(&b, LPQ_MSG_BYE, &err);
  h_run_until(h, cond_rogue_counted, 60); /* the frames are in flight: wait for their counts */
  lpq_dispatch_stats_t st;
  lpq_dispatch_stats(h->d, &st);
  cr_assert_geq(st.bad_frames, 4, "%llu bad frames", (unsigned long long)st.bad_frames);
  cr_assert_geq(st.dropped_results, 2);
  cr_assert_geq(h->dropped_logs, 5);
  /* it hands its task back (as a worker shutting down does), then says BYE */
  uint64_t handed = rogue.task_id;
  lpq_result_init(&r, handed);
  r.status = LPQ_ECANCELED;
  lpq_wire_buf_t back = {0};
  lpq_wire_encode_result(&back, &r, &err);
  rogue_send(back.data, back.len, 0);
  lpq_wire_buf_clear(&back);
  rogue_send(b.data, b.len, 0);
  want = 60;
  cr_assert(h_run_until(h, cond_results, 60), "%zu of 60 results", h->results);
  cr_assert_eq(h->ok, 60);
  for (int id = 1; id <= 60; id++) {
    cr_assert_eq(h->got[id], 1);
    cr_assert_str_eq(h->res[id].worker_id, "honest");
  }
  cr_assert_eq(h->left, 1);
  cr_assert_eq(h->info[handed].attempts, 2);
  lpq_dispatch_stats(h->d, &st);
  cr_assert_eq(st.retried, 0, "a handed-back task counted as a failure");
  cr_assert_eq(st.failed, 0);
  lpq_wire_buf_clear(&b);
  zmq_close(rogue.sock);
  zmq_ctx_term(rogue.ctx);
  h_stop(h);
  free(h);
}
