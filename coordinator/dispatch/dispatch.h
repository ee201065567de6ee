/*
** coordinator/dispatch/dispatch.h: the worker pool's coordinator side (DESIGN section 3): a
** ZeroMQ ROUTER on the caller's libuv loop, READY/heartbeat/expiry, fair per-job queues,
** retries, CURVE admission. It speaks common/'s wire messages and includes common/common.h,
** ZeroMQ and libuv only; the daemon uses it. dispatch_internal.h is its own.
*/
#ifndef LPQ_DISPATCH_H
#define LPQ_DISPATCH_H

#include "common/common.h"

#include <stddef.h>
#include <stdint.h>

/* ==== dispatch ============================================================================
** The worker pool's coordinator side (DESIGN section 3, zguide "Paranoid Pirate"): a ZeroMQ
** ROUTER bound to an endpoint and driven from the caller's libuv loop (ZMQ_FD under uv_poll,
** drained while ZMQ_EVENTS says POLLIN, also after every send). Workers (lpq-worker) say
** READY with how many tasks they take at once; both sides heartbeat every interval; a worker
** silent for liveness x interval is expired and its tasks are queued again.
**
** Tasks are queued FIFO per job and handed out round-robin across jobs, so several jobs share
** the pool fairly. A task that fails (a failed RESULT, its worker expired, or no result within
** task_timeout_s) is queued again, preferring a worker it has not failed on; after failing on
** max_failures distinct workers (or 2 x max_failures times in all, so that a pool of one
** cannot loop forever) it is reported with the last reason. A worker that hands a task back
** (shutting down, status LPQ_ECANCELED) costs the task nothing. The first result of a task
** wins; later ones, and results for canceled or unknown tasks, are dropped and logged.
**
** Everything is reported on the loop thread, from loop callbacks: never from inside a call to
** lpq_dispatch_*, so a callback may call lpq_dispatch_submit or lpq_dispatch_cancel_job (not
** lpq_dispatch_free). No threads. */

struct uv_loop_s;
typedef struct lpq_dispatch_t lpq_dispatch_t;

/* Zero-initialised fields take the defaults in brackets. */
typedef struct lpq_dispatch_opts_t {
  double heartbeat_s;    /* interval [1]; workers must use the same */
  int liveness;          /* missed intervals before a worker is expired [3] */
  double task_timeout_s; /* a task running longer is dispatched again [600] */
  int max_failures;      /* distinct workers a task may fail on [3] */
  int log_level;         /* 1 warnings, 2 info (workers come and go) [2], 3 debug; negative:
                            errors only (level 0) */
  /* CURVE (ZeroMQ RFC 26): with a secret key (Z85) the ROUTER is a CURVE server and admits only
  ** workers whose public key is in a *.pub file of curve_keys_dir (read again at every
  ** handshake; each refusal is logged with the key and the peer's address). Without, the link
  ** is plain text, and only loopback or ipc:// endpoints are accepted unless insecure. */
  const char *curve_secret_key;
  const char *curve_keys_dir;
  int insecure;
} lpq_dispatch_opts_t;

/* The task a result belongs to. */
typedef struct lpq_dispatch_task_t {
  uint64_t task_id;
  int64_t job_id;
  void *user;        /* as given to lpq_dispatch_submit */
  unsigned attempts; /* dispatches, this one included */
} lpq_dispatch_task_t;

typedef struct lpq_worker_info_t {
  char worker_id[LPQ_WIRE_ID_MAX];
  char host[LPQ_WIRE_ID_MAX];
  uint32_t pid, threads;
  char capabilities[256];
  char version[32];
  size_t running;          /* tasks it holds now */
  int64_t job;             /* the job of the first of them (0: none): what it runs */
  uint64_t done, failed;   /* results it returned */
  double idle_s;           /* since its last message */
  int draining;            /* it handed a task back: takes no more */
} lpq_worker_info_t;

typedef enum lpq_worker_event_t {
  LPQ_WORKER_JOINED = 0, /* READY */
  LPQ_WORKER_LEFT,       /* BYE */
  LPQ_WORKER_EXPIRED,    /* silent too long, or its connection is gone */
} lpq_worker_event_t;

typedef struct lpq_dispatch_callbacks_t {
  /* A task's final outcome: result->status 0 (scored) or the failure after the retries; the
  ** dispatcher forgets the task afterwards. result->worker_id and roundtrip_ms are filled in. */
  void (*on_result)(void *ctx, const lpq_dispatch_task_t *task, const lpq_result_t *result);
  void (*on_worker_change)(void *ctx, lpq_worker_event_t event, const lpq_worker_info_t *w);
  /* The file holding blob `hash` (64 lowercase hex digits, already checked): writes its path
  ** into path (NUL-terminated) and returns 0, or LPQ_ENOTFOUND. NULL: no blobs are served. */
  int (*blob_path)(void *ctx, const char *hash, char *path, size_t path_len);
  /* Log lines ("dispatch: ..."); NULL writes them to stderr. level as in the options. */
  void (*on_log)(void *ctx, int level, const char *line);
  void *ctx;
} lpq_dispatch_callbacks_t;

typedef struct lpq_dispatch_stats_t {
  size_t workers, slots, tasks_queued, tasks_running;
  uint64_t submitted, completed, failed;  /* failed: reported failed after the retries */
  uint64_t retried, timeouts, workers_expired;
  uint64_t dropped_results, bad_frames, blob_chunks, blob_bytes;
} lpq_dispatch_stats_t;

/* Binds a ROUTER to endpoint ("tcp://127.0.0.1:5555", "tcp://127.0.0.1:*" for any free port,
** "ipc:///path") and starts watching it on loop. NULL with err set (the endpoint in the message)
** when the options or the endpoint are bad. */
lpq_dispatch_t *lpq_dispatch_new(struct uv_loop_s *loop, const char *endpoint,
                                 const lpq_dispatch_opts_t *opts,
                                 const lpq_dispatch_callbacks_t *callbacks, lpq_error_t *err);
/* The endpoint actually bound (the port resolved), for workers to connect to. */
const char *lpq_dispatch_endpoint(const lpq_dispatch_t *d);
/* The coordinator's CURVE public key (Z85), which workers pin; NULL in plain text. */
const char *lpq_dispatch_curve_public(const lpq_dispatch_t *d);
/* Queues one evaluation (task->task_id is ignored: the dispatcher assigns one) and returns its
** id in *task_id. The task is encoded at once; the caller keeps ownership of *task. */
int lpq_dispatch_submit(lpq_dispatch_t *d, const lpq_task_t *task, void *user,
                        uint64_t *task_id, lpq_error_t *err);
/* Forgets every task of the job, queued or running (their results, if any arrive, are
** dropped); on_result is not called for them. Returns how many were forgotten. d may be NULL
** (the daemon frees its pool before the preparations still queued finish: a job canceled
** during one ends then), and then there is nothing to forget: 0. */
size_t lpq_dispatch_cancel_job(lpq_dispatch_t *d, int64_t job_id);
/* The workers now, malloc'd (*list; the caller frees it). */
int lpq_dispatch_workers(const lpq_dispatch_t *d, lpq_worker_info_t **list, size_t *count,
                         lpq_error_t *err);
void lpq_dispatch_stats(const lpq_dispatch_t *d, lpq_dispatch_stats_t *out);
/* Closes the socket and the loop handles and sets *d to NULL. Pending tasks are forgotten. The
** memory is released by the handles' close callbacks: run the loop once more (uv_run) before
** uv_loop_close. */
void lpq_dispatch_free(lpq_dispatch_t **d);


#endif
