/*
** coordinator/dispatch/dispatch_internal.h: the dispatcher's private structures, shared by
** the files of coordinator/dispatch/ only (non-static names lpq__*); others use dispatch.h.
*/
#ifndef LPQ_DISPATCH_INTERNAL_H
#define LPQ_DISPATCH_INTERNAL_H

#include "coordinator/dispatch/dispatch.h"

#include <stdint.h>
#include <uv.h>

/* ---- a hash map: 64-bit keys to non-NULL pointers (dispatch_map.c) ---------------------- */
typedef struct dmap_slot_t {
  uint64_t key;
  void *val; /* NULL: empty slot */
} dmap_slot_t;

typedef struct dmap_t {
  dmap_slot_t *slots;
  size_t count, cap; /* cap: 0 or a power of two */
} dmap_t;

void *lpq__dmap_get(const dmap_t *m, uint64_t key);
int lpq__dmap_put(dmap_t *m, uint64_t key, void *val); /* replaces; LPQ_ENOMEM */
void *lpq__dmap_remove(dmap_t *m, uint64_t key);       /* the value removed, or NULL */
void lpq__dmap_clear(dmap_t *m);

/* ---- the dispatcher ------------------------------------------------------------------------ */

#define DISPATCH_ID_MAX 255  /* ZeroMQ routing ids are 1..255 bytes */
#define DISPATCH_DRAIN_MAX 4096 /* messages per wake before the loop gets a turn */

typedef struct d_job_t d_job_t;
typedef struct d_worker_t d_worker_t;

typedef struct d_task_t {
  uint64_t id;
  int64_t job_id;
  void *user;
  uint8_t *frame; /* the encoded TASK, sent again as is on a retry */
  size_t frame_len;
  d_job_t *job;
  struct d_task_t *next_queued;               /* in its job's FIFO */
  struct d_task_t *run_prev, *run_next;       /* in the running list (dispatch order) */
  d_worker_t *worker;                          /* running on it; NULL when queued */
  uint64_t deadline_ms;                        /* loop time when it times out */
  uint64_t sent_ns;                            /* uv_hrtime at dispatch */
  unsigned attempts, failures;
  unsigned distinct;         /* distinct workers it failed on */
  uint32_t *failed_on;       /* their serial numbers (distinct entries) */
  char last_error[256];
} d_task_t;

struct d_job_t {
  int64_t id;
  d_task_t *head, *tail; /* queued tasks, FIFO */
  size_t queued, live;   /* live: queued + running */
  d_job_t *rr_prev, *rr_next; /* in the ring of jobs with queued tasks */
  int in_ring;
};

struct d_worker_t {
  uint8_t identity[DISPATCH_ID_MAX];
  size_t identity_len;
  uint64_t key;        /* hash of the identity: the map key */
  uint32_t serial;     /* unique per dispatcher, for a task's failed-on set */
  lpq_ready_t ready;
  uint64_t last_seen_ms, last_sent_ms;
  uint64_t *assigned;  /* task ids it holds (ready.threads slots) */
  size_t n_assigned;
  uint64_t done, failed;
  int draining;
  d_worker_t *av_prev, *av_next; /* in the ring of workers with a free slot */
  int in_avail;
};

/* A refused CURVE key, remembered so that a peer retrying every 100 ms is logged once a while. */
#define DISPATCH_ZAP_REMEMBER 16
typedef struct d_zap_refusal_t {
  char key[48], address[64];
  uint64_t logged_ms, repeats;
} d_zap_refusal_t;

struct lpq_dispatch_t {
  uv_loop_t *loop;
  uv_poll_t poll;
  uv_timer_t tick;  /* heartbeats, expiry, timeouts */
  uv_timer_t kick;  /* a pump on the next loop turn (after submit, or a capped drain) */
  int handles_open;
  void *zctx, *sock;
  char endpoint[256];
  lpq_dispatch_opts_t opts;
  lpq_dispatch_callbacks_t cb;
  uint64_t heartbeat_ms, expiry_ms, timeout_ms;

  dmap_t tasks, jobs, workers;
  d_job_t *rr;                   /* next job to serve */
  size_t ring_jobs;              /* jobs in the ring */
  d_worker_t *avail;             /* next worker to use */
  d_task_t *run_head, *run_tail; /* running tasks by dispatch time = deadline order */
  size_t running;
  uint64_t next_task_id;
  uint32_t next_serial;
  lpq_wire_buf_t out;
  lpq_dispatch_stats_t stats;
  int pumping;
  /* CURVE (dispatch_zap.c): the ZAP handler's REP socket, NULL in plain text */
  void *zap;
  uv_poll_t zap_poll;
  int has_zap_poll;
  char curve_public[48];
  d_zap_refusal_t zap_refused[DISPATCH_ZAP_REMEMBER];
};

/* dispatch.c */
void lpq__dispatch_log(lpq_dispatch_t *d, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void lpq__dispatch_pump(lpq_dispatch_t *d);
void lpq__dispatch_kick(lpq_dispatch_t *d);
/* Sends the frame in d->out (or `frame`) to a worker; on a dead route, expires the worker
** (returns LPQ_EIO; w is freed then). */
int lpq__dispatch_send(lpq_dispatch_t *d, d_worker_t *w, const void *frame, size_t len);
int lpq__dispatch_send_to(lpq_dispatch_t *d, const void *identity, size_t len, const void *frame,
                     size_t frame_len);
void lpq__dispatch_assign(lpq_dispatch_t *d);
/* The task leaves worker w (result, failure, expiry): frees w's slot for it. 1 if it held it. */
int lpq__worker_release(lpq_dispatch_t *d, d_worker_t *w, uint64_t task_id);
/* A failure of task t on worker w (w NULL: unknown); queues it again or reports it failed. */
void lpq__task_failed(lpq_dispatch_t *d, d_task_t *t, d_worker_t *w, int status, const char *why);
/* Back to the front of its job's queue, at no cost (handed back, its worker left). */
void lpq__task_requeue_front(lpq_dispatch_t *d, d_task_t *t);
/* Takes a queued task out of its job's queue (linear in the queue: rare, after a timeout). */
void lpq__task_unqueue(lpq_dispatch_t *d, d_task_t *t);
/* Removes t from the running list and the maps and frees it (not from a queue). */
void lpq__task_forget(lpq_dispatch_t *d, d_task_t *t);
void lpq__task_unrun(lpq_dispatch_t *d, d_task_t *t);
void lpq__free_task(d_task_t *t);
/* Puts a job with queued tasks into the round-robin ring (served last in this round). */
void lpq__job_ring_insert(lpq_dispatch_t *d, d_job_t *j);
/* Removes worker w: its running tasks fail (expired) or go back at no cost (left). */
void lpq__worker_remove(lpq_dispatch_t *d, d_worker_t *w, lpq_worker_event_t why);
void lpq__worker_info(const lpq_dispatch_t *d, const d_worker_t *w, lpq_worker_info_t *out);
void lpq__avail_update(lpq_dispatch_t *d, d_worker_t *w);

/* dispatch_zap.c */
/* Before the bind: with opts.curve_secret_key, makes the ROUTER a CURVE server and starts the
** ZAP handler; without, refuses endpoints other hosts reach unless opts.insecure. */
int lpq__dispatch_curve_setup(lpq_dispatch_t *d, const char *endpoint, lpq_error_t *err);

/* dispatch_recv.c: drain the socket, handle each message */
/* Receives and handles up to max messages; returns how many (0: the socket is empty). */
size_t lpq__dispatch_drain(lpq_dispatch_t *d, size_t max);

#endif
