/*
** worker/pool.c: the worker daemon's I/O thread (worker.h, "pool"): the DEALER session with
** the coordinator (READY, heartbeats both ways, reconnect with back-off), tasks in, results
** out, and the orderly shutdown (hand back what has not started, finish the rest, BYE).
*/
#include "worker/worker_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define POLL_MAX_MS 100 /* how often the stop flag is looked at */

uint64_t lpq__pw_now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void lpq__pw_log(pw_t *p, int level, const char *fmt, ...)
{
  if (level > p->o.log_level)
    return;
  char line[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  fprintf(stderr, "lpq-worker %s: %s\n", p->worker_id, line);
}

void lpq__pw_send_out(pw_t *p)
{
  if (p->dealer == NULL)
    return;
  if (zmq_send(p->dealer, p->out.data, p->out.len, ZMQ_DONTWAIT) < 0)
    lpq__pw_log(p, 1, "send failed: %s", zmq_strerror(errno));
}

void lpq__pw_send_failure(pw_t *p, uint64_t task_id, int status, const char *why)
{
  lpq_result_t r;
  lpq_result_init(&r, task_id);
  r.status = status;
  snprintf(r.error, sizeof r.error, "%s", why);
  lpq_error_t err;
  if (lpq_wire_encode_result(&p->out, &r, &err) == 0)
    lpq__pw_send_out(p);
}

static void send_empty(pw_t *p, lpq_msg_type_t type)
{
  lpq_error_t err;
  if (lpq_wire_encode_empty(&p->out, type, &err) == 0)
    lpq__pw_send_out(p);
}

/* The session's socket events are watched (a monitor PAIR), so that a worker that hears nothing
** says why instead of only "silent": nothing accepted the connection, a peer accepted it but
** spoke no ZeroMQ (another service on that port), a ZeroMQ peer never answered READY, or the
** coordinator refused this worker's CURVE key. */
static void monitor_close(pw_t *p)
{
  if (p->monitor != NULL) {
    zmq_close(p->monitor);
    p->monitor = NULL;
  }
}

static void monitor_open(pw_t *p)
{
  char ep[96];
  snprintf(ep, sizeof ep, "inproc://lpq-worker-monitor-%p-%u", (void *)p, ++p->monitor_serial);
  int zero = 0;
  if (zmq_socket_monitor(p->dealer, ep, ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                                            ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                                            ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                                            ZMQ_EVENT_CONNECTED | ZMQ_EVENT_CONNECT_RETRIED |
                                            ZMQ_EVENT_HANDSHAKE_SUCCEEDED) != 0 ||
      (p->monitor = zmq_socket(p->zctx, ZMQ_PAIR)) == NULL ||
      zmq_setsockopt(p->monitor, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
      zmq_connect(p->monitor, ep) != 0) {
    lpq__pw_log(p, 1, "cannot watch the connection: %s", zmq_strerror(errno));
    monitor_close(p);
  }
}

/* Logs why the CURVE handshakes of this session failed, if they did. */
static void monitor_report(pw_t *p)
{
  int auth = 0, other = 0, connected = 0, retried = 0, zmtp = 0;
  uint8_t ev[6];
  while (p->monitor != NULL && zmq_recv(p->monitor, ev, sizeof ev, ZMQ_DONTWAIT) >= 0) {
    uint16_t code;
    memcpy(&code, ev, sizeof code);
    if (code == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
      auth++;
    else if (code == ZMQ_EVENT_CONNECTED)
      connected++;
    else if (code == ZMQ_EVENT_CONNECT_RETRIED)
      retried++;
    else if (code == ZMQ_EVENT_HANDSHAKE_SUCCEEDED)
      zmtp++;
    else
      other++;
    char addr[256];
    zmq_recv(p->monitor, addr, sizeof addr, ZMQ_DONTWAIT); /* the endpoint frame */
  }
  if (auth)
    lpq__pw_log(p, 0, "the coordinator at %s refused this worker's CURVE key %s (%d handshakes): its "
           "--curve-keys folder must hold this worker's .pub", p->o.connect, p->curve_public,
           auth);
  else if (other && p->o.curve_server_key != NULL)
    lpq__pw_log(p, 0, "the CURVE handshake with %s failed (%d handshakes): is its public key the one "
           "given with --curve-server-key, and does it use CURVE?", p->o.connect, other);
  else if (!connected && retried)
    lpq__pw_log(p, 0, "nothing accepts connections at %s (%d attempts): is lpq-coordinator "
                "running there with --workers at that address?", p->o.connect, retried);
  else if (connected && !zmtp)
    lpq__pw_log(p, 0, "a peer at %s accepted the connection but did not speak ZeroMQ (%d "
                "connections): is that the coordinator's --workers endpoint, not its --tcp API "
                "or another service?", p->o.connect, connected);
  else if (zmtp)
    lpq__pw_log(p, 0, "the ZeroMQ peer at %s never answered this worker's READY: is it "
                "lpq-coordinator's --workers endpoint (of the same wire version, lpq %d)?",
                p->o.connect, LPQ_WIRE_VERSION);
}

/* A fresh DEALER (a new session: the coordinator sees a new peer) and READY on it. Tasks of the
** old session that wait for blobs are dropped: the coordinator gives them to others. */
static int session_open(pw_t *p, lpq_error_t *err)
{
  monitor_close(p);
  if (p->dealer != NULL)
    zmq_close(p->dealer);
  lpq__pw_fetch_abort(p);
  for (pw_task_t *t = p->pend_head, *next; t != NULL; t = next) {
    next = t->next;
    lpq__pw_task_free(t);
  }
  p->pend_head = p->pend_tail = NULL;
  p->dealer = zmq_socket(p->zctx, ZMQ_DEALER);
  int linger = 0, hwm = 0;
  if (p->dealer == NULL)
    return lpq_errorf(err, LPQ_EIO, "lpq-worker: zmq_socket: %s", zmq_strerror(errno));
  zmq_setsockopt(p->dealer, ZMQ_LINGER, &linger, sizeof linger);
  zmq_setsockopt(p->dealer, ZMQ_SNDHWM, &hwm, sizeof hwm);
  zmq_setsockopt(p->dealer, ZMQ_RCVHWM, &hwm, sizeof hwm);
  if (p->o.curve_server_key != NULL &&
      (zmq_setsockopt(p->dealer, ZMQ_CURVE_SERVERKEY, p->o.curve_server_key, LPQ_CURVE_KEY_LEN) ||
       zmq_setsockopt(p->dealer, ZMQ_CURVE_PUBLICKEY, p->curve_public, LPQ_CURVE_KEY_LEN) ||
       zmq_setsockopt(p->dealer, ZMQ_CURVE_SECRETKEY, p->o.curve_secret_key, LPQ_CURVE_KEY_LEN)))
    return lpq_errorf(err, LPQ_EUNSUP, "lpq-worker: CURVE: %s", zmq_strerror(errno));
  monitor_open(p);
  if (zmq_connect(p->dealer, p->o.connect) != 0)
    return lpq_errorf(err, LPQ_EINVAL, "lpq-worker: cannot connect to %s: %s", p->o.connect,
                      zmq_strerror(errno));
  lpq_ready_t r = {.pid = (uint32_t)getpid(), .threads = p->o.threads};
  snprintf(r.worker_id, sizeof r.worker_id, "%s", p->worker_id);
  snprintf(r.host, sizeof r.host, "%s", p->host);
  snprintf(r.capabilities, sizeof r.capabilities, "%s", p->o.evaluator.name);
  snprintf(r.version, sizeof r.version, "lpq %d", LPQ_WIRE_VERSION);
  int rc = lpq_wire_encode_ready(&p->out, &r, err);
  if (rc != 0)
    return rc;
  lpq__pw_send_out(p);
  p->last_heard_ms = p->last_beat_ms = lpq__pw_now_ms();
  p->reconnect_now = 0;
  lpq__pw_log(p, 2, "connecting to %s (%u threads, %s, %s)", p->o.connect, p->o.threads,
         p->o.evaluator.name, p->o.curve_server_key ? "CURVE" : "plain text");
  return 0;
}

/* Results from the evaluation threads go out on the DEALER as they are. */
static void forward_results(pw_t *p)
{
  zmq_msg_t m;
  zmq_msg_init(&m);
  while (zmq_msg_recv(&m, p->results, ZMQ_DONTWAIT) >= 0) {
    if (p->running > 0)
      p->running--;
    if (p->dealer != NULL)
      zmq_send(p->dealer, zmq_msg_data(&m), zmq_msg_size(&m), ZMQ_DONTWAIT);
  }
  zmq_msg_close(&m);
}

static void on_task(pw_t *p, const void *frame, size_t len)
{
  lpq_error_t err;
  pw_task_t *t = calloc(1, sizeof *t);
  if (t == NULL) {
    lpq__pw_log(p, 0, "out of memory for a task");
    return;
  }
  if (lpq_wire_decode_task(frame, len, &t->task, &err) != 0) {
    lpq__pw_log(p, 1, "%s; dropped", err.msg);
    free(t);
    return;
  }
  if (p->draining) {
    lpq__pw_send_failure(p, t->task.task_id, LPQ_ECANCELED, "worker shutting down: handed back");
    lpq__pw_task_free(t);
    return;
  }
  t->arrived_ms = lpq__pw_now_ms();
  if (p->pend_tail != NULL)
    p->pend_tail->next = t;
  else
    p->pend_head = t;
  p->pend_tail = t;
  lpq__pw_pending_advance(p);
}

static void read_dealer(pw_t *p)
{
  zmq_msg_t m;
  zmq_msg_init(&m);
  lpq_error_t err;
  while (p->dealer != NULL && zmq_msg_recv(&m, p->dealer, ZMQ_DONTWAIT) >= 0) {
    p->last_heard_ms = lpq__pw_now_ms();
    p->backoff_s = 1; /* the coordinator answers: reset the back-off */
    const void *frame = zmq_msg_data(&m);
    size_t len = zmq_msg_size(&m);
    lpq_msg_type_t type;
    if (lpq_wire_peek(frame, len, &type, &err) != 0) {
      lpq__pw_log(p, 1, "%s; dropped", err.msg);
      continue;
    }
    switch (type) {
    case LPQ_MSG_HEARTBEAT:
      break;
    case LPQ_MSG_TASK:
      on_task(p, frame, len);
      break;
    case LPQ_MSG_BLOB: {
      lpq_blob_chunk_t c;
      if (lpq_wire_decode_blob(frame, len, &c, &err) != 0)
        lpq__pw_log(p, 1, "%s; dropped", err.msg);
      else
        lpq__pw_fetch_chunk(p, &c);
      break;
    }
    case LPQ_MSG_DISCONNECT:
      lpq__pw_log(p, 2, "the coordinator does not know this session; reconnecting");
      p->reconnect_now = 1;
      break;
    default:
      lpq__pw_log(p, 1, "unexpected %s from the coordinator; dropped", lpq_msg_type_name(type));
      break;
    }
    if (p->reconnect_now)
      break;
  }
  zmq_msg_close(&m);
}

/* Shutdown begins: pending and queued tasks are handed back; the running ones finish. */
static void begin_drain(pw_t *p)
{
  p->draining = 1;
  size_t n = 0;
  lpq__pw_fetch_abort(p);
  for (pw_task_t *t = p->pend_head, *next; t != NULL; t = next) {
    next = t->next;
    lpq__pw_send_failure(p, t->task.task_id, LPQ_ECANCELED, "worker shutting down: handed back");
    lpq__pw_task_free(t);
    n++;
  }
  p->pend_head = p->pend_tail = NULL;
  for (pw_task_t *t = lpq__pw_threads_take_queued(p), *next; t != NULL; t = next) {
    next = t->next;
    lpq__pw_send_failure(p, t->task.task_id, LPQ_ECANCELED, "worker shutting down: handed back");
    lpq__pw_task_free(t);
    n++;
  }
  lpq__pw_log(p, 2, "stopping: %zu tasks handed back, waiting for %zu running", n, p->running);
}

/* Waits out the back-off (results that finish meanwhile belong to the old session and are
** dropped: the coordinator has given those tasks to others). 1 when asked to stop. */
static int backoff_wait(pw_t *p)
{
  monitor_report(p);
  monitor_close(p);
  if (p->dealer != NULL) {
    zmq_close(p->dealer);
    p->dealer = NULL;
  }
  uint64_t until = lpq__pw_now_ms() + (uint64_t)(p->backoff_s * 1000);
  lpq__pw_log(p, 1, "coordinator %s silent; reconnecting in %.0f s", p->o.connect, p->backoff_s);
  p->backoff_s = p->backoff_s * 2 > p->o.backoff_max_s ? p->o.backoff_max_s : p->backoff_s * 2;
  for (uint64_t now; (now = lpq__pw_now_ms()) < until;) {
    if (*p->o.stop)
      return 1;
    zmq_pollitem_t it = {p->results, 0, ZMQ_POLLIN, 0};
    uint64_t left = until - now;
    zmq_poll(&it, 1, left < POLL_MAX_MS ? (long)left : POLL_MAX_MS);
    forward_results(p);
  }
  return 0;
}

static int loop(pw_t *p, lpq_error_t *err)
{
  int rc = session_open(p, err);
  if (rc != 0)
    return rc;
  for (;;) {
    if (*p->o.stop && !p->draining)
      begin_drain(p);
    if (p->draining && p->running == 0) {
      send_empty(p, LPQ_MSG_BYE);
      lpq__pw_log(p, 2, "BYE");
      return 0;
    }
    uint64_t now = lpq__pw_now_ms();
    if (p->draining)
      p->reconnect_now = 0; /* leaving anyway: finish what runs, then go */
    if (p->reconnect_now || (!p->draining && now - p->last_heard_ms > p->expiry_ms)) {
      if (!p->reconnect_now && backoff_wait(p))
        continue; /* stop asked during the wait: drain (nothing to hand back) */
      if ((rc = session_open(p, err)) != 0)
        return rc;
      continue;
    }
    if (now - p->last_beat_ms >= p->heartbeat_ms) {
      send_empty(p, LPQ_MSG_HEARTBEAT);
      p->last_beat_ms = now;
    }
    uint64_t wait = p->heartbeat_ms - (now - p->last_beat_ms);
    zmq_pollitem_t items[2] = {{p->dealer, 0, ZMQ_POLLIN, 0}, {p->results, 0, ZMQ_POLLIN, 0}};
    zmq_poll(items, 2, wait < POLL_MAX_MS ? (long)wait : POLL_MAX_MS);
    forward_results(p);
    read_dealer(p);
  }
}

int lpq_pool_worker_run(const lpq_pool_worker_opts_t *opts, lpq_error_t *err)
{
  static const volatile sig_atomic_t never = 0;
  if (opts == NULL || opts->connect == NULL || opts->evaluator.eval == NULL)
    return lpq_errorf(err, LPQ_EINVAL, "lpq-worker: an endpoint and an evaluator are required");
  pw_t *p = calloc(1, sizeof *p);
  if (p == NULL)
    return lpq_errorf(err, LPQ_ENOMEM, "lpq-worker: out of memory");
  p->o = *opts;
  if (p->o.threads == 0)
    p->o.threads = 1;
  if (p->o.heartbeat_s == 0)
    p->o.heartbeat_s = 1;
  if (p->o.liveness == 0)
    p->o.liveness = 3;
  if (p->o.backoff_max_s == 0)
    p->o.backoff_max_s = 32;
  if (p->o.log_level == 0)
    p->o.log_level = 2;
  else if (p->o.log_level < 0)
    p->o.log_level = 0; /* errors only */
  if (p->o.stop == NULL)
    p->o.stop = &never;
  p->backoff_s = 1;
  int rc = 0;
  if (p->o.threads > 1024 || !(p->o.heartbeat_s >= 0.01 && p->o.heartbeat_s <= 3600) ||
      p->o.liveness < 1 || p->o.liveness > 100 || p->o.backoff_max_s < 1) {
    rc = lpq_errorf(err, LPQ_EINVAL, "lpq-worker: threads %u (1..1024), heartbeat %g s, "
                    "liveness %d or back-off %g s out of range", p->o.threads,
                    p->o.heartbeat_s, p->o.liveness, p->o.backoff_max_s);
    free(p);
    return rc;
  }
  if ((p->o.curve_server_key == NULL) != (p->o.curve_secret_key == NULL) ||
      (p->o.curve_server_key != NULL &&
       (lpq_curve_key_check(p->o.curve_server_key, err) != 0 ||
        lpq_curve_public_of(p->o.curve_secret_key, p->curve_public, err) != 0))) {
    if (p->o.curve_server_key == NULL || p->o.curve_secret_key == NULL)
      lpq_errorf(err, LPQ_EINVAL, "lpq-worker: CURVE needs both the coordinator's public key "
                 "and this worker's secret key");
    else
      lpq_error_prefix(err, "lpq-worker: CURVE: ");
    free(p);
    return LPQ_EINVAL;
  }
  p->heartbeat_ms = (uint64_t)(p->o.heartbeat_s * 1000 + 0.5);
  p->expiry_ms = p->heartbeat_ms * (uint64_t)p->o.liveness;
  if (gethostname(p->host, sizeof p->host) != 0)
    snprintf(p->host, sizeof p->host, "unknown");
  p->host[sizeof p->host - 1] = '\0';
  if (p->o.worker_id != NULL)
    snprintf(p->worker_id, sizeof p->worker_id, "%s", p->o.worker_id);
  else
    snprintf(p->worker_id, sizeof p->worker_id, "%.40s:%ld", p->host, (long)getpid());
  if (p->o.curve_server_key == NULL && !lpq_curve_endpoint_is_local(p->o.connect))
    lpq__pw_log(p, 1, "talking plain text to %s: only a coordinator started with --insecure "
           "accepts it (CURVE: --curve-server-key and --curve-secret)", p->o.connect);
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->cv, NULL);
  snprintf(p->results_ep, sizeof p->results_ep, "inproc://lpq-worker-results-%p", (void *)p);
  int zero = 0;
  if ((rc = lpq__pw_cache_init(p, err)) != 0)
    goto done;
  if ((p->zctx = zmq_ctx_new()) == NULL || (p->results = zmq_socket(p->zctx, ZMQ_PULL)) == NULL ||
      zmq_bind(p->results, p->results_ep) != 0) {
    rc = lpq_errorf(err, LPQ_EIO, "lpq-worker: cannot set up sockets: %s", zmq_strerror(errno));
    goto done;
  }
  zmq_setsockopt(p->results, ZMQ_LINGER, &zero, sizeof zero);
  zmq_setsockopt(p->results, ZMQ_RCVHWM, &zero, sizeof zero);
  if ((rc = lpq__pw_threads_start(p, err)) != 0)
    goto done;
  rc = loop(p, err);
done:
  if (p->dealer != NULL) {
    /* let BYE and the last results reach the coordinator */
    int linger = 1000;
    zmq_setsockopt(p->dealer, ZMQ_LINGER, &linger, sizeof linger);
  }
  lpq__pw_threads_stop(p);
  lpq__pw_fetch_abort(p);
  for (pw_task_t *t = p->pend_head, *next; t != NULL; t = next) {
    next = t->next;
    lpq__pw_task_free(t);
  }
  monitor_close(p);
  if (p->dealer != NULL)
    zmq_close(p->dealer);
  if (p->results != NULL)
    zmq_close(p->results);
  if (p->zctx != NULL)
    zmq_ctx_term(p->zctx);
  lpq_wire_buf_clear(&p->out);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->cv);
  free(p);
  return rc;
}
