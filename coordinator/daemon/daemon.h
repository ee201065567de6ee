/* coordinator/daemon/daemon.h: lpq-coordinator's pieces (internal to the program): the daemon
** context, the jobs it runs, and the API methods. The daemon is the top of the coordinator: it
** ties the search, the store, the API server and the dispatcher on one libuv loop, and uses the
** engine to check uploaded models and to export candidates. Nothing includes it but its files. */
#ifndef LPQ_COORDINATOR_DAEMON_H
#define LPQ_COORDINATOR_DAEMON_H

#include "coordinator/api/api.h"
#include "coordinator/dispatch/dispatch.h"
#include "coordinator/http/http.h"
#include "coordinator/search/search.h"
#include "coordinator/store/store.h"
#include "engine/engine.h"

#include <uv.h>

typedef struct daemon_t daemon_t;
typedef struct job_t job_t;
typedef struct submit_t submit_t; /* a job.submit or blob.put on the work queue (submit.c) */

/* One dispatched genome of a job's current generation. */
typedef struct task_ref_t {
  job_t *job;
  size_t index;   /* in the generation's batch (sensitivity: in the job's sensitivity genomes) */
  uint64_t hash;
  int sensitivity; /* 1: a genome of the job's sensitivity (sensitivity.c), not of the search */
  int pick;        /* 1: a genome of the job's validation pick (pick.c) */
} task_ref_t;

/* A finished evaluation waiting for its transaction (results are committed in batches, once per
** loop iteration, before the search sees them). */
typedef struct pending_t {
  job_t *job;
  size_t index;
  lpq_store_eval_t eval;
} pending_t;

struct job_t {
  daemon_t *d;
  int64_t id;
  char name[LPQ_STORE_NAME_MAX];
  lpq_job_settings_t js;
  char *settings_json;     /* canonical, sent to workers with every task */
  json_t *settings_obj;    /* the stored settings as job.get shows them (parsed at first use) */
  /* set up on the thread pool: model, calibration batch, seeds */
  uv_work_t prep;
  char *model_path, *data_path, *val_path; /* the blobs' files, for the preparation */
  size_t val_samples;      /* the validation set's samples (the pick's standard error) */
  lpq_error_t prep_err;
  int prep_rc;
  size_t nl;
  int *seeds;              /* 2 * nl: weight sf, activation sf */
  char **layer_names;      /* nl */
  size_t *weight_counts;   /* nl */
  /* per-layer sensitivity in flight (sensitivity.c): 1 + nl x widths genomes */
  lpq_layer_formats_t *sens_genomes;
  task_ref_t *sens_refs;
  double *sens_l_co, *sens_top1; /* per genome; NAN until scored */
  size_t sens_count, sens_told;
  /* the validation pick in flight (pick.c): fp32 + the final front, top-1 on val_data */
  lpq_layer_formats_t *pick_genomes;
  task_ref_t *pick_refs;
  double *pick_top1;       /* per genome, in [0,1]; NAN until scored */
  size_t *pick_index;      /* the front members' archive indices */
  char *pick_settings;     /* the tasks' settings: eval "top1" on the validation blobs */
  size_t pick_count, pick_told;
  char pick_stop[128];     /* why the search stopped: the job's final message */
  lpq_layer_spec_t *specs;
  lpq_search_space_t space; /* the search's, set up before it is built on the work queue */
  lpq_search_settings_t set;
  lpq_search_t *search;
  lpq_search_t *built;      /* made on the work queue; the loop moves it to search */
  /* the generation in flight */
  int asked;
  const lpq_layer_formats_t *batch;
  size_t batch_count, told, failed_now, dispatched;
  task_ref_t *refs;        /* batch_count */
  size_t next_dispatch;    /* the next genome to look up or dispatch (a slice at a time) */
  size_t replayed;         /* genomes of the batch found in the database */
  unsigned char *told_flag; /* batch_count: 1 once the genome's result was told */
  char first_error[LPQ_STORE_TEXT_MAX];
  int cancel, finished, preparing;
  double started;
  /* max_seconds: the loop time (uv_now, ms) past which no genome is waited for (0: none) */
  uint64_t deadline_ms;    /* on uv_hrtime's clock, in ms */
  int time_up;             /* the deadline passed: the generation in flight was cut */
  char client[48];         /* who submitted it (lpq_api_call_client; "" after a restart) */
  /* job.watch subscribers */
  lpq_api_sub_t **subs;
  size_t nsubs;
  int replay;              /* results of an earlier run may be stored: look genomes up first */
  /* the store could not be written (e.g. a full disk): the job waits, nothing is lost */
  int paused;              /* shown as status "paused" with the store's error */
  int gen_unsaved;         /* the generation is applied but not yet all written to the store */
  /* the complete generation applied, its rows made and the next batch asked on the work queue
  ** (advance.c); then its rows are written a slice at a time */
  uv_work_t advance;
  int advancing;
  int advance_rc;
  lpq_error_t advance_err;
  lpq_store_generation_rows_t *rows; /* written from rows->next on; NULL when none wait */
  int ending;              /* ended, but its final status is not stored yet */
  lpq_store_job_status_t end_status;
  char end_message[LPQ_STORE_TEXT_MAX];
  job_t *next;
};

/* job.get's "best" of a job at its last committed generation (methods.c): v_best_config's row
** over generations 0..generation, extended by each newer generation's rows alone. */
typedef struct best_cache_t {
  int64_t job, generation;
  json_t *row;  /* lpq_store_best_json's row (NULL: no feasible genome yet) */
  json_t *best; /* the answer */
  int running;  /* the job ran when it was given: not reused once it has ended */
} best_cache_t;
#define DAEMON_BEST_CACHE 64

/* A model's layer names for job.export's config (export.c), so that showing a config (the
** dashboard does it on every page load) does not load the model each time. */
typedef struct names_cache_t {
  int64_t job;
  size_t nl;
  char **names;
} names_cache_t;
#define DAEMON_NAMES_CACHE 16

struct daemon_t {
  uv_loop_t *loop;
  lpq_store_t *store;
  lpq_api_server_t *api;
  lpq_http_server_t *http; /* the dashboard (--http); NULL without */
  lpq_dispatch_t *pool;
  job_t *jobs;             /* active: preparing or running */
  pending_t *pending;
  size_t npending, cap_pending;
  uv_check_t flush;
  /* store writes failing (pause.c): the error, since when, and the retry timer */
  char store_error[LPQ_STORE_TEXT_MAX];
  double store_failing_since;
  uv_timer_t store_retry;
  int retrying; /* inside a timer retry: jobs_flush may write */
  size_t store_failures; /* writes that failed, in all */
  best_cache_t best_cache[DAEMON_BEST_CACHE]; /* slot: job id modulo the size */
  names_cache_t names_cache[DAEMON_NAMES_CACHE]; /* slot: job id modulo the size */
  uv_signal_t sigterm, sigint;
  int stopping;
  int log_level;
  /* API limits (--max-blob-mb, --max-jobs-per-client) */
  uint64_t max_blob_bytes;
  size_t max_jobs_per_client;
  submit_t *submits;       /* uploads and checks running on the work queue */
  uv_timer_t deadline;     /* fires at the nearest job deadline (deadline.c) */
  uv_idle_t feed;          /* runs while a generation is dispatched, a slice at a time */
  uint64_t max_job_bytes;  /* --max-job-mb: what one job's search and calibration may hold */
  double blob_grace_s;     /* --blob-grace-s: how long an upload no job names is kept */
  uv_timer_t blob_gc;
};

/* jobs.c */
int jobs_resume(daemon_t *d, lpq_error_t *err);
/* Starts a stored job (queued or unfinished): prepares it on the thread pool, then runs it. */
int job_start(daemon_t *d, int64_t id, lpq_error_t *err);
job_t *job_find(daemon_t *d, int64_t id);
int job_cancel(daemon_t *d, int64_t id, lpq_error_t *err);
void jobs_on_result(void *ctx, const lpq_dispatch_task_t *task, const lpq_result_t *result);
void jobs_flush(uv_check_t *h);
void jobs_free_all(daemon_t *d);
void jobs_feed_init(daemon_t *d);
/* Starts the feed idle handle: dispatching a generation, writing its rows, a slice a turn. */
void jobs_feed_start(daemon_t *d);
/* advance.c: a complete generation applied, its rows made and the next batch asked on the work
** queue; then the rows written a slice per loop iteration, and the job stepped on. */
void job_advance(job_t *j);
/* Writes more of j's rows (after advance, from the feed, from the store's retry). */
void job_write_rows(job_t *j);
/* Unlinks and frees a job that never ran (or whose daemon stops): nothing stored. */
void job_forget(job_t *j);
/* prepare.c: the job's preparation on the work queue, then its search (or its sensitivity). */
void job_prepare(job_t *j);
/* Runs a job's search as far as its results allow (asks, dispatches, commits generations). */
void job_step(job_t *j);
/* After the preparation (and the sensitivity): builds the job's search and steps it. */
void job_begin_search(job_t *j);
/* Ends a job: status stored, watchers told, the job forgotten (kept as `ending` while the store
** cannot be written, then ended by the retry). */
void job_end(job_t *j, lpq_store_job_status_t status, const char *message);
void notify_watchers(job_t *j);
/* Tells the search the result of genome index of the generation in flight (once; a repeat or a
** result for a generation no longer in flight is ignored). */
void job_tell(job_t *j, size_t index, const lpq_store_eval_t *e);
double daemon_now_s(void);
/* The progress object of job.watch / job.get for a job (live or stored). */
json_t *job_progress_json(daemon_t *d, int64_t id, lpq_error_t *err);
void daemon_log(daemon_t *d, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* pause.c: what the daemon does while the store cannot be written (a full disk, an I/O
** error): results stay queued, every running job shows "paused" with the error, a timer retries
** every STORE_RETRY_MS, and the jobs run on once a write succeeds. */
#define STORE_RETRY_MS 250
/* 1 for the store errors worth waiting out (LPQ_EIO, LPQ_ETIMEDOUT), else 0. */
int store_error_transient(const lpq_error_t *err);
/* A write failed with err: pauses the jobs (once) and starts the retry timer. */
void store_failed(daemon_t *d, const lpq_error_t *err);
/* Sets up the retry timer (stopped). */
void store_retry_init(daemon_t *d);
/* 1 while writes are failing. */
int store_paused(const daemon_t *d);

/* deadline.c: a job's max_seconds holds in the service as in `lpq search --time`: a timer at
** the nearest deadline cuts the generation in flight (its results so far are kept, the genomes
** not back yet count as failed "not evaluated within max_seconds") and the job stops. */
void deadline_init(daemon_t *d);
/* Arms the timer for the nearest deadline of the running jobs (after a job starts). Deadlines
** are on uv_hrtime's clock (ms), which the work queue's threads may read too. */
void deadline_arm(daemon_t *d);
/* The seconds of a job's max_seconds left now (max_seconds when it has none left to count). */
double deadline_left_s(const job_t *j);

/* submit.c: job.submit and blob.put (file reads, hashing and model checks on the work queue) */
void m_submit(void *ctx, lpq_api_call_t *call, json_t *params);
void m_blob_put(void *ctx, lpq_api_call_t *call, json_t *params);
/* 1 when a request in flight (on the work queue) names or writes the blob hash. */
int submits_claim(daemon_t *d, const char *hash);

/* blob_gc.c: blobs no job names (uploads never used by a submit) are removed once older than
** --blob-grace-s; a timer looks every grace / 4 (at most every 5 minutes), and at start. */
void blob_gc_init(daemon_t *d);

/* export.c: job.export */
void m_export(void *ctx, lpq_api_call_t *call, json_t *params);
void export_names_free(daemon_t *d);

/* sensitivity.c: the job's per-layer sensitivity, scored by the pool before the search.
** sens_start returns 1 when genomes were dispatched (the search waits for them), 0 when there is
** nothing to do (stored already, or dispatching failed: logged), -1 out of memory. */
int sens_start(job_t *j);
/* A TASK of job j for genome (j->nl layers; not copied: it must outlive the dispatch). */
void job_task(const job_t *j, const lpq_layer_formats_t *genome, lpq_task_t *t);
void sens_on_result(job_t *j, size_t index, const lpq_result_t *r);
/* The stored matrix, when the job has one, into the search's specs (weight_sens, weight_count)
** and its seed budget (the job's mean weight bits constraint). */
void sens_fill_specs(job_t *j, lpq_layer_spec_t *specs, lpq_search_settings_t *set);
void m_sensitivity(void *ctx, lpq_api_call_t *call, json_t *params); /* job.sensitivity */

/* pick.c: with a validation set, the job's end: pick_start dispatches fp32 and the final front
** as top-1 tasks on it (1; the job ends when they are back, with stop_message) or does nothing
** (0: no validation set or no front; the caller ends the job). */
int pick_start(job_t *j, const char *stop_message);
void pick_on_result(job_t *j, size_t index, const lpq_result_t *r);
void pick_free(job_t *j);
/* The chosen genome of a job's stored pick (16 hex digits), or "" when it has none. */
void pick_chosen(daemon_t *d, int64_t job, char hex[17]);
/* job.get's "pick": rule, fp32's and the chosen member's validation top-1 (points), Spearman of
** L_CO and validation top-1 over the front; null without a pick. */
json_t *pick_json(daemon_t *d, int64_t job);

/* methods.c */
/* A store error of a request about job: "no job N" (-32010) when it does not exist, else the
** error's own code (a damaged database page: -32020). */
void reply_job_error(lpq_api_call_t *call, int64_t job, const lpq_error_t *err);
int methods_register(daemon_t *d, lpq_error_t *err);
/* Drops a watcher when its connection closes. */
void job_unwatch(job_t *j, lpq_api_sub_t *sub);

#endif
