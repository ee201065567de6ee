/* tests/test_faults_pool.c: faults at the real lpq-coordinator's two doors with jobs running:
** thousands of rapid submits and cancels on the API, and a worker that sends garbage, repeats
** and results for tasks it does not hold through the pool's socket. */
#include "tests/faults_harness.h"
#include "worker/worker.h"

#include <zmq.h>

Test(faults, thousands_of_rapid_submits_and_cancels) {
  /* 2 calls per job; a smaller count under the sanitizers and valgrind */
  const int jobs = getenv("LPQ_ASAN") ? 150 : 1000;
  proc_svc_t s;
  f_init(&s);
  f_start_coordinator(&s);
  f_start_worker(&s, "1");
  /* the first job uploads the model and data; the others name them by hash */
  int64_t first = f_submit(&s, "{\"population\":4,\"generations\":1,\"calib\":8}", 1);
  json_t *g = f_ok(&s, "job.get", f_job_params(first));
  json_t *set = json_object_get(g, "settings");
  const char *model = json_string_value(json_object_get(set, "model"));
  const char *data = json_string_value(json_object_get(set, "data"));
  cr_assert(model && data, "job.get settings carry the blob hashes");
  char mh[65], dh[65];
  snprintf(mh, sizeof mh, "%s", model);
  snprintf(dh, sizeof dh, "%s", data);
  json_decref(g);
  size_t calls = 0, kept = 0;
  double t0 = proc_now_s();
  for (int i = 0; i < jobs; i++) {
    json_t *p = json_pack("{s:{s:s}, s:{s:s}, s:{s:i, s:i, s:i}, s:i}", "model", "hash", mh,
                          "data", "hash", dh, "settings", "population", 4, "generations", 2,
                          "calib", 8, "seed", i + 2);
    json_t *r = f_ok(&s, "job.submit", p);
    int64_t id = (int64_t)json_integer_value(json_object_get(r, "job"));
    json_decref(r);
    calls++;
    cr_assert_gt(id, 0);
    if (i % 100 == 99) { /* a few run to the end */
      kept++;
      continue;
    }
    /* cancel at once, or a few jobs later (then it may be preparing or running) */
    int64_t victim = (i % 3 == 0 && i >= 2) ? id - 2 : id;
    if (victim != id && (i - 2) % 100 == 99)
      victim = id;
    r = f_call(&s, "job.cancel", f_job_params(victim));
    calls++;
    json_t *res = json_object_get(r, "result");
    cr_assert_not_null(res, "job.cancel %lld: %s", (long long)victim,
                       json_dumps(r, JSON_COMPACT));
    json_decref(r);
    if (victim != id) { /* and this one too */
      r = f_ok(&s, "job.cancel", f_job_params(id));
      json_decref(r);
      calls++;
    }
  }
  double took = proc_now_s() - t0;
  fprintf(stderr, "rapid submits and cancels: %zu calls in %.2f s (%.0f/s)\n", calls, took,
          (double)calls / took);
  /* every job ends: canceled, or done for the few that were kept */
  double t1 = proc_now_s();
  for (;;) {
    long long open = f_sql_int(s.db, "SELECT count(*) FROM jobs WHERE status IN ('queued', "
                                     "'running', 'paused')");
    if (open == 0)
      break;
    cr_assert_lt(proc_now_s() - t1, 120, "%lld jobs still unfinished", open);
    usleep(100000);
  }
  long long total = f_sql_int(s.db, "SELECT count(*) FROM jobs");
  long long canceled = f_sql_int(s.db, "SELECT count(*) FROM jobs WHERE status = 'canceled'");
  long long done = f_sql_int(s.db, "SELECT count(*) FROM jobs WHERE status = 'done'");
  cr_assert_eq(total, jobs + 1);
  cr_assert_eq(canceled + done, total, "%lld jobs neither canceled nor done",
               total - canceled - done);
  cr_assert_geq(done, (long long)kept + 1, "the kept jobs finish");
  char *ok = f_integrity(s.db);
  cr_assert_str_eq(ok, "ok");
  free(ok);
  /* no task left behind in the pool */
  cr_assert_eq(f_pool_stat(&s, "tasks_queued"), 0);
  cr_assert_eq(f_pool_stat(&s, "tasks_running"), 0);
  json_t *w = f_ok(&s, "worker.list", NULL);
  json_t *w0 = json_array_get(json_object_get(w, "workers"), 0);
  cr_assert_not_null(w0);
  cr_assert_str_eq(json_string_value(json_object_get(w0, "state")), "idle");
  json_decref(w);
  json_t *st = f_ok(&s, "server.stats", NULL);
  cr_assert_eq(json_integer_value(json_object_get(json_object_get(st, "jobs"), "active")), 0);
  json_decref(st);
  /* still serving: a new job runs to the end */
  int64_t last = f_submit(&s, "{\"population\":4,\"generations\":2,\"calib\":8}", 3);
  char *fin = f_wait_job(&s, last, 60);
  cr_assert_str_eq(fin, "done");
  free(fin);
  proc_svc_stop(&s);
}

/* ---- a misbehaving worker ---- */

static void zsend(void *sock, const void *data, size_t len) {
  cr_assert_geq(zmq_send(sock, data, len, ZMQ_DONTWAIT), 0, "zmq_send: %s",
                zmq_strerror(zmq_errno()));
}

/* Frames that are not messages: noise, a bad magic, a known type with a torn body, an unknown
** type, an empty frame, and one message in two frames. */
static size_t send_garbage(void *sock, unsigned seed) {
  unsigned char buf[512];
  size_t sent = 0;
  for (int i = 0; i < 20; i++) {
    size_t len = 1 + (size_t)(rand_r(&seed) % sizeof buf);
    for (size_t k = 0; k < len; k++)
      buf[k] = (unsigned char)rand_r(&seed);
    zsend(sock, buf, len);
    sent++;
  }
  lpq_wire_buf_t out = {0};
  lpq_result_t r;
  lpq_result_init(&r, 12345);
  cr_assert_eq(lpq_wire_encode_result(&out, &r, NULL), 0);
  zsend(sock, out.data, out.len / 2); /* torn */
  memcpy(buf, out.data, LPQ_WIRE_HEADER);
  buf[LPQ_WIRE_HEADER - 1] = 99; /* an unknown type */
  zsend(sock, buf, LPQ_WIRE_HEADER);
  zsend(sock, "", 0);
  zmq_send(sock, out.data, 4, ZMQ_SNDMORE | ZMQ_DONTWAIT);
  zsend(sock, out.data + 4, out.len - 4);
  sent += 4;
  lpq_wire_buf_clear(&out);
  return sent;
}

static void send_result(void *sock, const lpq_result_t *r) {
  lpq_wire_buf_t out = {0};
  cr_assert_eq(lpq_wire_encode_result(&out, r, NULL), 0);
  zsend(sock, out.data, out.len);
  lpq_wire_buf_clear(&out);
}

Test(faults, a_worker_sending_garbage_disturbs_nothing) {
  proc_svc_t s;
  f_init(&s);
  f_start_coordinator(&s);
  f_start_worker(&s, "20");
  int64_t id = f_submit(&s, F_LONG_JOB, F_LONG_SEED);
  void *ctx = zmq_ctx_new();
  void *sock = zmq_socket(ctx, ZMQ_DEALER);
  int zero = 0, timeout = 50;
  zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
  zmq_setsockopt(sock, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
  cr_assert_eq(zmq_connect(sock, s.endpoint), 0);
  /* before saying READY: garbage and a result from nowhere */
  size_t garbage = send_garbage(sock, 1);
  lpq_result_t r;
  lpq_result_init(&r, 777777);
  send_result(sock, &r);
  /* then a worker that takes tasks, answers them right (the synthetic score, as the real
  ** worker's) and in between sends garbage, repeats of its answers and results for tasks it
  ** was never given; after a while it goes silent and is expired */
  lpq_wire_buf_t out = {0};
  lpq_ready_t ready = {.worker_id = "garbage", .host = "test", .pid = 1, .threads = 2,
                       .capabilities = "synthetic", .version = "test"};
  cr_assert_eq(lpq_wire_encode_ready(&out, &ready, NULL), 0);
  zsend(sock, out.data, out.len);
  size_t answered = 0, unknown = 1;
  double t0 = proc_now_s(), beat = 0;
  zmq_msg_t m;
  zmq_msg_init(&m);
  while (proc_now_s() - t0 < 2.0) {
    if (proc_now_s() - beat > 0.1) {
      lpq_wire_encode_empty(&out, LPQ_MSG_HEARTBEAT, NULL);
      zsend(sock, out.data, out.len);
      beat = proc_now_s();
    }
    if (zmq_msg_recv(&m, sock, 0) < 0)
      continue;
    lpq_msg_type_t type;
    if (lpq_wire_peek(zmq_msg_data(&m), zmq_msg_size(&m), &type, NULL) != 0 ||
        type != LPQ_MSG_TASK)
      continue;
    lpq_task_t t;
    cr_assert_eq(lpq_wire_decode_task(zmq_msg_data(&m), zmq_msg_size(&m), &t, NULL), 0);
    garbage += send_garbage(sock, (unsigned)t.task_id);
    lpq_result_init(&r, t.task_id + 1000000); /* never given */
    send_result(sock, &r);
    unknown++;
    lpq_result_init(&r, t.task_id);
    lpq_synthetic_score(&t, &r);
    send_result(sock, &r);
    /* a repeat with another score: the first result wins, so the front stays the reference
    ** only if this one is dropped */
    r.l_co = r.l_co * 0.5 - 1.0;
    r.l_cr = r.l_cr * 0.5;
    send_result(sock, &r);
    answered++;
    lpq_task_clear(&t);
  }
  zmq_msg_close(&m);
  lpq_wire_buf_clear(&out);
  zmq_close(sock); /* silent from now: expired, its tasks go to the real worker */
  zmq_ctx_term(ctx);
  cr_assert_gt(answered, 0, "the garbage worker was given no task");
  char *st = f_wait_job(&s, id, 60);
  cr_assert_str_eq(st, "done");
  free(st);
  /* dropped and counted, the daemon alive, the front the one of an undisturbed run */
  /* Every garbage frame is a bad frame but one: the torn RESULT sent before READY peeks as a
  ** RESULT from an unknown peer, which is dropped as a result (and the peer asked to
  ** reconnect). Dropped results: that one, the results for tasks never given and every
  ** repeat. */
  long long bad = f_pool_stat(&s, "bad_frames"), dropped = f_pool_stat(&s, "dropped_results");
  cr_assert_eq(bad, (long long)garbage - 1,
               "%zu garbage frames sent, the pool counted %lld bad frames (want %zu: all but "
               "the torn RESULT sent before READY)", garbage, bad, garbage - 1);
  cr_assert_eq(dropped, (long long)(unknown + answered) + 1,
               "%zu unknown-task results and %zu repeats sent, the pool dropped %lld results "
               "(want %zu: those and the torn RESULT before READY)", unknown, answered, dropped,
               unknown + answered + 1);
  cr_assert(proc_file_has(s.log, "dropped"), "the log names the dropped frames");
  fprintf(stderr, "garbage worker: %zu garbage frames, %zu results for unknown tasks, %zu "
          "repeats sent; the pool counted %lld bad frames and %lld dropped results\n", garbage,
          unknown, answered, bad, dropped);
  char *front = f_front(&s, id);
  int64_t again = f_submit(&s, F_LONG_JOB, F_LONG_SEED);
  st = f_wait_job(&s, again, 60);
  cr_assert_str_eq(st, "done");
  free(st);
  char *ref = f_front(&s, again);
  cr_assert_str_eq(front, ref, "the garbage changed the job's front");
  free(front);
  free(ref);
  cr_assert_eq(proc_svc_stop_coordinator(&s, 10), 0);
  proc_svc_stop(&s);
}
