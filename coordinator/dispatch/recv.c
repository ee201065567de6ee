/*
** coordinator/dispatch/recv.c: draining the ROUTER and handling each worker message: READY,
** HEARTBEAT, RESULT, BLOB_GET (served from the daemon's blob files), BYE. A peer can send
** anything: a frame that does not decode is logged and dropped, and nothing else changes.
*/
#include "coordinator/dispatch/dispatch_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

static uint64_t identity_key(const uint8_t *id, size_t len)
{
  uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a 64 */
  for (size_t i = 0; i < len; i++)
    h = (h ^ id[i]) * 0x100000001b3ull;
  return h;
}

/* A short printable form of an identity for logs. */
static const char *identity_str(const uint8_t *id, size_t len, char *buf, size_t cap)
{
  size_t n = 0;
  for (size_t i = 0; i < len && n + 3 < cap; i++)
    n += (size_t)snprintf(buf + n, cap - n, "%02x", id[i]);
  buf[n] = '\0';
  return buf;
}

static void send_empty(lpq_dispatch_t *d, const uint8_t *id, size_t len, lpq_msg_type_t type)
{
  uint8_t frame[LPQ_WIRE_HEADER] = {'L', 'Q', LPQ_WIRE_VERSION, (uint8_t)type};
  lpq__dispatch_send_to(d, id, len, frame, sizeof frame);
}

static void on_ready(lpq_dispatch_t *d, d_worker_t *w, const uint8_t *id, size_t id_len,
                     uint64_t key, const lpq_ready_t *r)
{
  if (w != NULL) {
    /* READY again on a live route: the worker restarted its session; what it held is gone. */
    lpq__dispatch_log(d, 2, "worker %s: READY again; its %zu tasks go back to the queue",
                 r->worker_id, w->n_assigned);
    lpq__worker_remove(d, w, LPQ_WORKER_LEFT);
  }
  w = calloc(1, sizeof *w);
  if (w == NULL || (w->assigned = calloc(r->threads, sizeof *w->assigned)) == NULL ||
      lpq__dmap_put(&d->workers, key, w) != 0) {
    if (w != NULL)
      free(w->assigned);
    free(w);
    lpq__dispatch_log(d, 0, "out of memory registering worker %s", r->worker_id);
    return;
  }
  memcpy(w->identity, id, id_len);
  w->identity_len = id_len;
  w->key = key;
  w->serial = d->next_serial++;
  w->ready = *r;
  w->last_seen_ms = uv_now(d->loop);
  lpq__avail_update(d, w);
  lpq__dispatch_log(d, 2, "worker %s joined (%s, pid %u, %u threads, %s)", r->worker_id, r->host,
               r->pid, r->threads, r->capabilities);
  /* A heartbeat back tells the worker at once that we hear it. */
  uint8_t beat[LPQ_WIRE_HEADER] = {'L', 'Q', LPQ_WIRE_VERSION, LPQ_MSG_HEARTBEAT};
  if (lpq__dispatch_send(d, w, beat, sizeof beat) != 0)
    return;
  if (d->cb.on_worker_change != NULL) {
    lpq_worker_info_t info;
    lpq__worker_info(d, w, &info);
    d->cb.on_worker_change(d->cb.ctx, LPQ_WORKER_JOINED, &info);
  }
}

static void on_result(lpq_dispatch_t *d, d_worker_t *w, const lpq_result_t *in)
{
  if (!lpq__worker_release(d, w, in->task_id)) {
    d->stats.dropped_results++;
    lpq__dispatch_log(d, 1, "worker %s: result for task %llu, which it does not hold; dropped",
                 w->ready.worker_id, (unsigned long long)in->task_id);
    return;
  }
  d_task_t *t = lpq__dmap_get(&d->tasks, in->task_id);
  if (t == NULL) {
    d->stats.dropped_results++;
    lpq__dispatch_log(d, 3, "worker %s: result for finished or canceled task %llu; dropped",
                 w->ready.worker_id, (unsigned long long)in->task_id);
    return;
  }
  if (in->status == LPQ_ECANCELED) {
    /* Handed back unstarted: the worker is shutting down; it takes nothing more. */
    w->draining = 1;
    lpq__avail_update(d, w);
    if (t->worker == w)
      lpq__task_requeue_front(d, t);
    return;
  }
  if (in->status != 0) {
    w->failed++;
    char why[256];
    snprintf(why, sizeof why, "worker %.40s: %.200s", w->ready.worker_id,
             in->error[0] ? in->error : lpq_strerror(in->status));
    if (t->worker == w || t->worker == NULL) {
      if (t->worker == NULL) { /* queued again after a timeout: count it, keep it queued */
        t->failures++;
        snprintf(t->last_error, sizeof t->last_error, "%s", why);
        return;
      }
      lpq__task_failed(d, t, w, in->status, why);
    }
    return;
  }
  w->done++;
  lpq_result_t r = *in;
  snprintf(r.worker_id, sizeof r.worker_id, "%s", w->ready.worker_id);
  r.roundtrip_ms = (double)(uv_hrtime() - t->sent_ns) / 1e6;
  lpq_dispatch_task_t info = {t->id, t->job_id, t->user, t->attempts};
  if (t->worker == NULL) /* it was queued again (timeout): take it out of the queue */
    lpq__task_unqueue(d, t);
  d->stats.completed++;
  lpq__task_forget(d, t);
  d->cb.on_result(d->cb.ctx, &info, &r);
}

/* One chunk of a blob, read from the daemon's file; errors go back to the worker as status. */
static void on_blob_get(lpq_dispatch_t *d, d_worker_t *w, const lpq_blob_get_t *g)
{
  lpq_blob_chunk_t c = {.status = 0};
  memcpy(c.hash, g->hash, sizeof c.hash);
  char path[4096];
  uint8_t *buf = NULL;
  int fd = -1;
  if (d->cb.blob_path == NULL || d->cb.blob_path(d->cb.ctx, g->hash, path, sizeof path) != 0) {
    c.status = LPQ_ENOTFOUND;
    snprintf(c.error, sizeof c.error, "blob %s is not known to the coordinator", g->hash);
  } else if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
    c.status = LPQ_EIO;
    snprintf(c.error, sizeof c.error, "blob %s: %s", g->hash, strerror(errno));
  } else {
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size < 0 || (uint64_t)st.st_size < g->offset) {
      c.status = LPQ_EINVAL;
      snprintf(c.error, sizeof c.error, "blob %s: offset %llu is past its end", g->hash,
               (unsigned long long)g->offset);
    } else {
      c.total_size = (uint64_t)st.st_size;
      c.offset = g->offset;
      uint64_t want = c.total_size - g->offset;
      if (want > g->max_len)
        want = g->max_len;
      buf = malloc(want ? want : 1);
      ssize_t got = buf ? pread(fd, buf, want, (off_t)g->offset) : -1;
      if (got != (ssize_t)want) {
        c.status = LPQ_EIO;
        snprintf(c.error, sizeof c.error, "blob %s: read failed at %llu", g->hash,
                 (unsigned long long)g->offset);
        c.total_size = c.offset = 0;
      } else {
        c.data = buf;
        c.len = want;
      }
    }
    close(fd);
  }
  if (c.status != 0) {
    c.total_size = c.offset = 0;
    lpq__dispatch_log(d, 1, "worker %s: %s", w->ready.worker_id, c.error);
  }
  lpq_error_t err;
  if (lpq_wire_encode_blob(&d->out, &c, &err) == 0 &&
      lpq__dispatch_send(d, w, d->out.data, d->out.len) == 0 && c.status == 0) {
    d->stats.blob_chunks++;
    d->stats.blob_bytes += c.len;
  }
  free(buf);
}

static void handle(lpq_dispatch_t *d, const uint8_t *id, size_t id_len, const uint8_t *frame,
                   size_t len)
{
  uint64_t key = identity_key(id, id_len);
  d_worker_t *w = lpq__dmap_get(&d->workers, key);
  if (w != NULL && (w->identity_len != id_len || memcmp(w->identity, id, id_len) != 0))
    w = NULL; /* a 64-bit hash collision: treated as an unknown peer, which reconnects */
  char idbuf[24];
  lpq_error_t err;
  lpq_msg_type_t type;
  if (lpq_wire_peek(frame, len, &type, &err) != 0) {
    d->stats.bad_frames++;
    lpq__dispatch_log(d, 1, "peer %s: %s; dropped",
                 w ? w->ready.worker_id : identity_str(id, id_len, idbuf, sizeof idbuf),
                 err.msg);
    return;
  }
  if (type == LPQ_MSG_READY) {
    lpq_ready_t r;
    if (lpq_wire_decode_ready(frame, len, &r, &err) != 0) {
      d->stats.bad_frames++;
      lpq__dispatch_log(d, 1, "peer %s: %s; dropped", identity_str(id, id_len, idbuf, sizeof idbuf),
                   err.msg);
      return;
    }
    on_ready(d, w, id, id_len, key, &r);
    return;
  }
  if (w == NULL) {
    /* Not registered (expired, or the coordinator restarted): it must say READY again. */
    if (type != LPQ_MSG_BYE) {
      if (type == LPQ_MSG_RESULT)
        d->stats.dropped_results++;
      lpq__dispatch_log(d, 2, "peer %s: %s from an unknown worker; asking it to reconnect",
                   identity_str(id, id_len, idbuf, sizeof idbuf), lpq_msg_type_name(type));
      send_empty(d, id, id_len, LPQ_MSG_DISCONNECT);
    }
    return;
  }
  w->last_seen_ms = uv_now(d->loop);
  switch (type) {
  case LPQ_MSG_HEARTBEAT:
    return;
  case LPQ_MSG_RESULT: {
    lpq_result_t r;
    if (lpq_wire_decode_result(frame, len, &r, &err) != 0)
      break;
    on_result(d, w, &r);
    return;
  }
  case LPQ_MSG_BLOB_GET: {
    lpq_blob_get_t g;
    if (lpq_wire_decode_blob_get(frame, len, &g, &err) != 0)
      break;
    on_blob_get(d, w, &g);
    return;
  }
  case LPQ_MSG_BYE:
    lpq__worker_remove(d, w, LPQ_WORKER_LEFT);
    return;
  default:
    lpq_errorf(&err, LPQ_EFORMAT, "unexpected %s from a worker", lpq_msg_type_name(type));
    break;
  }
  d->stats.bad_frames++;
  lpq__dispatch_log(d, 1, "worker %s: %s; dropped", w->ready.worker_id, err.msg);
}

size_t lpq__dispatch_drain(lpq_dispatch_t *d, size_t max)
{
  size_t n = 0;
  zmq_msg_t id, body;
  zmq_msg_init(&id);
  zmq_msg_init(&body);
  while (n < max && d->sock != NULL) {
    if (zmq_msg_recv(&id, d->sock, ZMQ_DONTWAIT) < 0)
      break; /* EAGAIN: empty */
    n++;
    if (!zmq_msg_more(&id)) {
      d->stats.bad_frames++;
      continue;
    }
    if (zmq_msg_recv(&body, d->sock, ZMQ_DONTWAIT) < 0)
      break;
    int extra = 0;
    while (zmq_msg_more(&body)) { /* one frame per message: more is garbage */
      extra = 1;
      if (zmq_msg_recv(&body, d->sock, ZMQ_DONTWAIT) < 0)
        break;
    }
    size_t id_len = zmq_msg_size(&id);
    if (extra || id_len == 0 || id_len > DISPATCH_ID_MAX) {
      d->stats.bad_frames++;
      lpq__dispatch_log(d, 1, "a message of several frames; dropped");
      continue;
    }
    /* The identity is copied: handlers may send, and sending reuses nothing of these. */
    uint8_t idcopy[DISPATCH_ID_MAX];
    memcpy(idcopy, zmq_msg_data(&id), id_len);
    handle(d, idcopy, id_len, zmq_msg_data(&body), zmq_msg_size(&body));
  }
  zmq_msg_close(&id);
  zmq_msg_close(&body);
  return n;
}
