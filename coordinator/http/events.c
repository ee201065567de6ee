/*
** coordinator/http/events.c: /events/JOB and /events?jobs=A,B,...: jobs' progress as
** Server-Sent Events. Each stream is an in-process API client subscribed with job.watch (once
** per job: the jobs page follows all its unfinished jobs on one connection, as a browser gives
** a host only 6), so the events are the very job.progress notifications lpqctl watch gets,
** pushed when a generation is committed; nothing polls the database. libh2o takes one buffer
** at a time (the next waits for proceed); what piles up behind a slow viewer is bounded:
** progress events are snapshots, so only each job's newest is kept. The stream ends when every
** job's final event is sent.
*/
#include "coordinator/http/http_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct stream_ref_t {
  http_stream_t *st;
} stream_ref_t;

struct http_stream_t {
  h2o_generator_t gen;  /* first: libh2o's callbacks get its address */
  lpq_http_server_t *s;
  h2o_req_t *req;       /* NULL once libh2o stopped the response (client gone) or it ended */
  stream_ref_t *ref;    /* in req's pool: tells when the request is disposed before it started */
  lpq_api_local_t *local;
  int64_t jobs[HTTP_STREAM_JOBS];
  char *slot[HTTP_STREAM_JOBS]; /* each job's newest event not sent yet (NULL: none) */
  int done[HTTP_STREAM_JOBS];   /* its final event is queued, or it has none (an error) */
  size_t njobs, remaining, failed;
  size_t pending;               /* slots holding an event */
  char *inflight;       /* handed to h2o_send until proceed */
  uint64_t sent_ms;     /* when the last event was handed to libh2o (uv_now) */
  int started, ending, busy, dead;
  http_stream_t *prev, *next;
};

static void stream_free(http_stream_t *st) {
  lpq_http_server_t *s = st->s;
  if (st->prev)
    st->prev->next = st->next;
  else
    s->streams = st->next;
  if (st->next)
    st->next->prev = st->prev;
  s->stats.streams--;
  if (st->ref)
    st->ref->st = NULL;
  lpq_api_local_free(&st->local); /* job.watch's subscriptions end (job_unwatch) */
  free(st->inflight);
  for (size_t i = 0; i < st->njobs; i++)
    free(st->slot[i]);
  free(st);
}

/* The waiting events in one buffer (malloc'd; *len its size); the slots are emptied. */
static char *take_events(http_stream_t *st, size_t *len) {
  size_t n = 0;
  for (size_t i = 0; i < st->njobs; i++)
    n += st->slot[i] ? strlen(st->slot[i]) : 0;
  char *buf = malloc(n + 1);
  if (buf == NULL)
    return NULL;
  *len = 0;
  for (size_t i = 0; i < st->njobs; i++)
    if (st->slot[i]) {
      size_t k = strlen(st->slot[i]);
      memcpy(buf + *len, st->slot[i], k);
      *len += k;
      free(st->slot[i]);
      st->slot[i] = NULL;
      st->s->stats.events_sent++;
    }
  st->pending = 0;
  return buf;
}

/* Hands the waiting events to libh2o when it can take them, at most once per HTTP_EVENT_MS (the
** server's timer sends what waits); ends the response once an ending stream has nothing left.
** Re-entrant calls from inside h2o_send are deferred to the loop. */
static void flush(http_stream_t *st) {
  while (st->req && st->started && !st->busy && !st->inflight) {
    h2o_req_t *req = st->req;
    uint64_t now = uv_now(st->s->loop);
    if (st->pending > 0 && !st->ending && st->sent_ms && now - st->sent_ms < HTTP_EVENT_MS)
      return;
    if (st->pending > 0) {
      size_t len = 0;
      if (!(st->inflight = take_events(st, &len))) {
        st->ending = 1; /* out of memory: end the stream; the viewer reconnects */
        continue;
      }
      st->sent_ms = now;
      h2o_iovec_t buf = h2o_iovec_init(st->inflight, len);
      st->busy = 1;
      h2o_send(req, &buf, 1, H2O_SEND_STATE_IN_PROGRESS);
      st->busy = 0;
      if (st->dead) {
        stream_free(st);
        return;
      }
      continue; /* proceed may have come already */
    }
    if (!st->ending)
      return;
    st->req = NULL; /* after the final send libh2o calls neither proceed nor stop */
    h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
    stream_free(st);
    return;
  }
}

static void on_proceed(h2o_generator_t *gen, h2o_req_t *req) {
  (void)req;
  http_stream_t *st = (http_stream_t *)gen;
  free(st->inflight);
  st->inflight = NULL;
  flush(st);
}

static void on_stop(h2o_generator_t *gen, h2o_req_t *req) {
  (void)req;
  http_stream_t *st = (http_stream_t *)gen;
  st->req = NULL;
  if (st->busy)
    st->dead = 1; /* flush frees it when h2o_send returns */
  else
    stream_free(st);
}

static void on_req_disposed(void *arg) {
  stream_ref_t *r = arg;
  if (r->st) {
    r->st->req = NULL;
    r->st->ref = NULL;
  }
}

/* progress as compact JSON text, borrowed: a notification hands every stream of its job the
** same object (held here, so its address is not reused meanwhile), written once */
static const char *progress_text(lpq_http_server_t *s, const json_t *progress) {
  if (progress != s->last_progress || s->last_text == NULL) {
    char *text = json_dumps(progress, JSON_COMPACT);
    if (text == NULL)
      return NULL;
    free(s->last_text);
    json_decref(s->last_progress);
    s->last_text = text;
    s->last_progress = json_incref((json_t *)progress);
  }
  return s->last_text;
}

void lpq__http_events_cache_free(lpq_http_server_t *s) {
  free(s->last_text);
  json_decref(s->last_progress);
  s->last_text = NULL;
  s->last_progress = NULL;
}

/* Queues one "progress" event of the job at index i. Progress events are snapshots: one still
** waiting (a fast job, a slow viewer) is replaced by the newer. */
static int queue_event(http_stream_t *st, size_t i, const json_t *progress) {
  const char *data = progress_text(st->s, progress);
  size_t n = data ? strlen(data) + sizeof "event: progress\ndata: \n\n" : 0;
  char *text = data ? malloc(n) : NULL;
  if (text == NULL)
    return -1;
  snprintf(text, n, "event: progress\ndata: %s\n\n", data);
  if (st->slot[i]) {
    free(st->slot[i]);
    st->s->stats.events_dropped++;
  } else {
    st->pending++;
  }
  st->slot[i] = text;
  return 0;
}

static int progress_final(const json_t *p) {
  const char *status = json_string_value(json_object_get(p, "status"));
  return json_is_true(json_object_get(p, "final")) ||
         (status && (strcmp(status, "done") == 0 || strcmp(status, "failed") == 0 ||
                     strcmp(status, "canceled") == 0));
}

static void add_header(h2o_req_t *req, const char *name, const char *value) {
  h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 1, NULL, value,
                        strlen(value));
}

/* A job of the stream has nothing more to say; the stream ends after the last one's. */
static void job_done(http_stream_t *st, size_t i) {
  if (i < st->njobs && !st->done[i]) {
    st->done[i] = 1;
    st->remaining--;
  }
  if (st->remaining == 0)
    st->ending = 1;
}

static size_t job_index(const http_stream_t *st, const json_t *progress) {
  json_int_t job = json_integer_value(json_object_get(progress, "job"));
  size_t i = 0;
  while (i < st->njobs && st->jobs[i] != job)
    i++;
  return i;
}

static void start_response(http_stream_t *st) {
  h2o_req_t *req = st->req;
  req->res.status = 200;
  req->res.reason = "OK";
  add_header(req, "content-type", "text/event-stream");
  add_header(req, "cache-control", "no-cache");
  add_header(req, "x-content-type-options", "nosniff");
  h2o_start_response(req, &st->gen);
  st->started = 1;
  if (st->ref) { /* libh2o now tells through stop */
    st->ref->st = NULL;
    st->ref = NULL;
  }
}

static void on_message(void *ctx, const json_t *msg) {
  http_stream_t *st = ctx;
  if (st->req == NULL || st->ending)
    return;
  const json_t *error = json_object_get(msg, "error");
  if (error) { /* a job.watch refused (no such job): that job has no events */
    st->failed++;
    st->remaining--;
    if (!st->started && st->failed == st->njobs) {
      char text[300];
      snprintf(text, sizeof text, "%s", json_string_value(json_object_get(error, "message")));
      json_int_t code = json_integer_value(json_object_get(error, "code"));
      h2o_req_t *req = st->req;
      st->req = NULL;
      lpq__http_error(st->s, req, code == LPQ_API_E_JOB_NOT_FOUND ? 404 : 400, text);
      st->dead = 1; /* freed by lpq__http_events when the calls return */
    } else if (st->remaining == 0) {
      st->ending = 1;
      flush(st);
    }
    return;
  }
  const json_t *progress = json_object_get(msg, "method") ? json_object_get(msg, "params")
                                                          : json_object_get(msg, "result");
  size_t i = json_is_object(progress) ? job_index(st, progress) : st->njobs;
  if (i == st->njobs || st->done[i])
    return;
  if (!st->started)
    start_response(st);
  if (queue_event(st, i, progress) != 0)
    st->ending = 1;
  else if (progress_final(progress))
    job_done(st, i);
  flush(st);
}

void lpq__http_events(lpq_http_server_t *s, h2o_req_t *req, const int64_t *jobs, size_t njobs) {
  http_stream_t *st = njobs && njobs <= HTTP_STREAM_JOBS ? calloc(1, sizeof *st) : NULL;
  stream_ref_t *ref = st ? h2o_mem_alloc_shared(&req->pool, sizeof *ref, on_req_disposed) : NULL;
  if (ref == NULL) {
    free(st);
    lpq__http_error(s, req, 500, "out of memory");
    return;
  }
  ref->st = st;
  st->s = s;
  st->req = req;
  st->ref = ref;
  memcpy(st->jobs, jobs, njobs * sizeof *jobs);
  st->njobs = st->remaining = njobs;
  st->gen.proceed = on_proceed;
  st->gen.stop = on_stop;
  st->next = s->streams;
  if (s->streams)
    s->streams->prev = st;
  s->streams = st;
  s->stats.streams++;
  st->local = lpq_api_local_new(s->api, on_message, st);
  st->busy = 1; /* job.watch answers at once: the first events are sent after the calls */
  int rc = st->local ? 0 : LPQ_ENOMEM;
  for (size_t i = 0; rc == 0 && i < njobs && !st->dead; i++) {
    json_t *params = json_pack("{sI}", "job", (json_int_t)jobs[i]);
    rc = params ? lpq_api_local_call(st->local, "job.watch", params, ++s->next_id) : LPQ_ENOMEM;
  }
  st->busy = 0;
  if (rc != 0 || st->dead) {
    if (rc != 0 && st->req)
      lpq__http_error(s, req, 503, "the API is not available");
    stream_free(st);
    return;
  }
  flush(st);
}

void lpq__http_streams_flush(lpq_http_server_t *s) {
  http_stream_t *st = s->streams;
  while (st) {
    http_stream_t *next = st->next; /* flush may free st */
    if (st->pending > 0)
      flush(st);
    st = next;
  }
}

void lpq__http_streams_end(lpq_http_server_t *s) {
  http_stream_t *st = s->streams;
  while (st) {
    http_stream_t *next = st->next;
    lpq_api_local_free(&st->local);
    if (!st->started) {
      stream_free(st);
    } else {
      st->ending = 1;
      flush(st); /* may free st; one still writing stays until the process ends */
    }
    st = next;
  }
}
