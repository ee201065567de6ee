/*
** coordinator/api/stats.c: the API server's counters and latency histograms, and the JSON of
** server.stats.
*/
#include "coordinator/api/api_internal.h"

#include <math.h>
#include <stdio.h>
#include <time.h>

uint64_t lpq__api_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Four buckets per octave of microseconds: percentiles within 19%, in 1 KiB per method. */
static size_t bucket_of(uint64_t ns) {
  double us = (double)ns / 1000.0;
  if (us < 1.0)
    return 0;
  size_t b = (size_t)(4.0 * log2(us)) + 1;
  return b < API_HIST_BUCKETS ? b : API_HIST_BUCKETS - 1;
}

/* The geometric middle of a bucket, in ms. */
static double bucket_ms(size_t b) {
  if (b == 0)
    return 0.0005;
  return pow(2.0, ((double)b - 0.5) / 4.0) / 1000.0;
}

void lpq__api_latency_add(api_latency_t *l, uint64_t ns) {
  l->count++;
  l->total_ns += ns;
  if (ns > l->max_ns)
    l->max_ns = ns;
  l->hist[bucket_of(ns)]++;
}

static double percentile_ms(const api_latency_t *l, double q) {
  if (l->count == 0)
    return 0.0;
  uint64_t rank = (uint64_t)ceil(q * (double)l->count), seen = 0;
  if (rank == 0)
    rank = 1;
  for (size_t b = 0; b < API_HIST_BUCKETS; b++) {
    seen += l->hist[b];
    if (seen >= rank) {
      double ms = bucket_ms(b), max_ms = (double)l->max_ns / 1e6;
      return ms < max_ms ? ms : max_ms;
    }
  }
  return (double)l->max_ns / 1e6;
}

void lpq__api_count_error(lpq_api_server_t *s, int code) {
  for (size_t i = 0; i < API_ERROR_CODES; i++) {
    if (s->error_count[i] == 0 || s->error_code[i] == code) {
      s->error_code[i] = code;
      s->error_count[i]++;
      return;
    }
  }
  s->error_count[API_ERROR_CODES - 1]++; /* more distinct codes than slots: lumped together */
}

json_t *lpq_api_stats(const lpq_api_server_t *s) {
  if (s == NULL)
    return NULL;
  size_t open = 0;
  for (api_conn_t *c = s->conns; c; c = c->next)
    open += !c->closing;
  json_t *errors = json_object();
  for (size_t i = 0; i < API_ERROR_CODES && s->error_count[i]; i++) {
    char code[16];
    snprintf(code, sizeof code, "%d", s->error_code[i]);
    json_object_set_new(errors, code, json_integer((json_int_t)s->error_count[i]));
  }
  json_t *methods = json_object();
  for (const api_method_t *m = s->methods; m; m = m->next) {
    const api_latency_t *l = &m->latency;
    json_object_set_new(
        methods, m->name,
        json_pack("{sI sI sI sf sf sf sf}", "calls", (json_int_t)m->calls, "errors",
                  (json_int_t)m->errors, "pending", (json_int_t)m->pending, "mean_ms",
                  l->count ? (double)l->total_ns / (double)l->count / 1e6 : 0.0, "p50_ms",
                  percentile_ms(l, 0.50), "p99_ms", percentile_ms(l, 0.99), "max_ms",
                  (double)l->max_ns / 1e6));
  }
  return json_pack("{sf s{sI sI sI sI sI sI sI sI} sI sI sI sI so sI sI so}", "uptime_s",
                   (double)(lpq__api_now_ns() - s->start_ns) / 1e9, "connections", "open",
                   (json_int_t)open, "accepted", (json_int_t)s->accepted, "rejected",
                   (json_int_t)s->rejected, "unauthenticated", (json_int_t)s->unauth_count,
                   "auth_timeouts", (json_int_t)s->auth_timeouts, "slow_requests",
                   (json_int_t)s->slow_requests, "parsed_off_loop",
                   (json_int_t)s->parsed_off_loop, "subscriptions", (json_int_t)s->subscriptions,
                   "requests", (json_int_t)s->requests, "notifications_in",
                   (json_int_t)s->notifications_in, "notifications_out",
                   (json_int_t)s->notifications_out, "batches", (json_int_t)s->batches,
                   "errors", errors, "bytes_in", (json_int_t)s->bytes_in, "bytes_out",
                   (json_int_t)s->bytes_out, "methods", methods);
}
