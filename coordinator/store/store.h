/* coordinator/store/store.h: the coordinator's SQLite store (DESIGN section 3; schema/README.md
** lists the tables and views): jobs, content-addressed blobs, evaluations, generations with
** their individuals and fronts, workers, events, sensitivity, picks, and JSON dumps for the read
** methods. One lpq_store_t is a coordinator's one writer connection; use it from one thread
** (the libuv loop's). Every call is synchronous: in WAL mode with synchronous=NORMAL a commit
** appends to the WAL without fsync (about 1 ms for 100 results); the checkpoints that fsync run
** on the store's own thread and connection. Each call that writes is one transaction, rolled
** back on any failure. Readers (the sqlite3 shell, lpqctl history) may open the file at any
** time: they see whole transactions only and never block the writer.
**
** Errors: 0 or a negative LPQ_E* with err naming the table and the operation
** ("store: evaluations: commit: database or disk is full"). SQLITE_FULL, SQLITE_IOERR,
** read-only and unopenable files are LPQ_EIO; not a database or corrupt: LPQ_EFORMAT; written
** by a newer lpq: LPQ_EUNSUP; a missing row LPQ_ENOTFOUND; a rejected value (unknown job, bad
** hash, bad JSON) LPQ_EINVAL; SQLITE_BUSY past the busy timeout LPQ_ETIMEDOUT.
** Times are Unix seconds (double); a NAN double is stored as NULL and read back as NAN. A
** genome is named by lpq_genome_hash; the store keeps it as 16 hex digits. */
#ifndef LPQ_STORE_H
#define LPQ_STORE_H
#include "common/common.h"
#include "coordinator/search/search.h"
#include <stddef.h>
#include <stdint.h>

#define LPQ_STORE_SCHEMA_VERSION 3 /* PRAGMA user_version this code writes */
#define LPQ_STORE_HASH_HEX 65      /* a blob's SHA-256 in lowercase hex, with the NUL */
#define LPQ_STORE_NAME_MAX 128     /* job names, worker ids and hosts, blob kinds (with NUL) */
#define LPQ_STORE_TEXT_MAX 512     /* error messages and event messages (with NUL) */

typedef struct lpq_store_t lpq_store_t;

/* Opens (creating when absent) the database at path, and the blob directory "PATH.blobs"
** next to it; sets WAL, synchronous=NORMAL, foreign keys, a 5 s busy timeout and a 32 MiB
** cache, migrates the schema to LPQ_STORE_SCHEMA_VERSION (each migration one transaction) and
** starts the checkpoint thread. NULL with err set when the file cannot be opened or written, is
** not a database or is corrupt, belongs to another program, or has a newer schema. */
lpq_store_t *lpq_store_open(const char *path, lpq_error_t *err);
void lpq_store_close(lpq_store_t **st); /* statements finalized; a clean close checkpoints */
/* The database's path and its blob directory (owned by st). */
const char *lpq_store_path(const lpq_store_t *st);
const char *lpq_store_blob_dir(const lpq_store_t *st);

/* ---- store: jobs ----------------------------------------------------------------------- */

typedef enum lpq_store_job_status_t {
  LPQ_STORE_JOB_QUEUED = 0,
  LPQ_STORE_JOB_RUNNING,
  LPQ_STORE_JOB_PAUSED,
  LPQ_STORE_JOB_DONE,
  LPQ_STORE_JOB_FAILED,
  LPQ_STORE_JOB_CANCELED,
} lpq_store_job_status_t;

/* "queued", "running", ...; "?" for a value out of range. */
const char *lpq_store_job_status_name(lpq_store_job_status_t s);
/* The status named by text; LPQ_EINVAL naming the text otherwise. */
int lpq_store_job_status_parse(const char *text, lpq_store_job_status_t *out, lpq_error_t *err);
/* done, failed and canceled are final: a job in one of them never changes status again. */
int lpq_store_job_status_final(lpq_store_job_status_t s);

/* A job as stored. Fields that are unknown yet are NAN (doubles) or -1 (generation). */
typedef struct lpq_store_job_t {
  int64_t id;
  char name[LPQ_STORE_NAME_MAX];
  lpq_store_job_status_t status;
  char *settings;                    /* the job's JSON text; malloc'd, see lpq_store_job_clear */
  char message[LPQ_STORE_TEXT_MAX];  /* why it failed or stopped; "" when none */
  int cancel_requested;
  double created, started, finished, updated;
  int64_t generation;                /* last committed generation; -1 before the first */
  size_t evaluations;                /* scored by the search at that generation */
  size_t evaluations_stored;         /* rows in evaluations (may run ahead of the search) */
  double best_l_co, best_l_f, hypervolume;
  size_t front_size;
} lpq_store_job_t;

/* Stores a new queued job, *id its rowid. settings valid JSON (else LPQ_EINVAL); name < 128. */
int lpq_store_job_insert(lpq_store_t *st, const char *name, const char *settings, int64_t *id,
                         lpq_error_t *err);
/* Sets a job's status and message (NULL keeps the message). Entering running sets started
** (first time only); entering done, failed or canceled sets finished. LPQ_ENOTFOUND for an
** unknown job; LPQ_ESTATE when the job's status is already final. */
int lpq_store_job_set_status(lpq_store_t *st, int64_t id, lpq_store_job_status_t status,
                             const char *message, lpq_error_t *err);
/* Records that a client asked to cancel the job; the scheduler acts on it (and a restarted
** coordinator sees it in lpq_store_job_t.cancel_requested). LPQ_ENOTFOUND; LPQ_ESTATE when the
** job has already ended. */
int lpq_store_job_request_cancel(lpq_store_t *st, int64_t id, lpq_error_t *err);
/* Reads one job into *out (lpq_store_job_clear frees out->settings, zeroes it). LPQ_ENOTFOUND. */
int lpq_store_job_get(lpq_store_t *st, int64_t id, lpq_store_job_t *out, lpq_error_t *err);
void lpq_store_job_clear(lpq_store_job_t *job);

/* Which jobs lpq_store_job_list returns. */
typedef enum lpq_store_job_filter_t {
  LPQ_STORE_JOBS_ALL = 0,
  LPQ_STORE_JOBS_UNFINISHED, /* queued, running and paused: the jobs a restart resumes */
} lpq_store_job_filter_t;

/* The jobs by id: *jobs malloc'd, *count of them (NULL when 0); lpq_store_job_list_free. */
int lpq_store_job_list(lpq_store_t *st, lpq_store_job_filter_t filter, lpq_store_job_t **jobs,
                       size_t *count, lpq_error_t *err);
void lpq_store_job_list_free(lpq_store_job_t **jobs, size_t count);

/* ---- store: blobs (content-addressed by SHA-256) --------------------------------------- **
** A blob's bytes are a file under the blob directory (DIR/ab/abcd..., written to a temporary
** file, fsync'ed and renamed, so a crash never leaves a partial blob under its hash); the
** blobs table holds its hash, size, kind and time. */
typedef struct lpq_store_blob_t {
  char hash[LPQ_STORE_HASH_HEX];
  size_t size;
  char kind[LPQ_STORE_NAME_MAX];
  double created;
} lpq_store_blob_t;

/* Stores bytes as a blob of the given kind ("model", "data", "labels", ...) and writes its
** hash into hash (NULL: not wanted). Idempotent: storing the same bytes again is a no-op that
** gives the same hash. */
int lpq_store_blob_put(lpq_store_t *st, const char *kind, const void *data, size_t size,
                       char hash[LPQ_STORE_HASH_HEX], lpq_error_t *err);
/* The same for a file's content, read in pieces (a model need not fit in memory twice); only a
** regular file (lpq_store_blob_open_regular). */
int lpq_store_blob_put_file(lpq_store_t *st, const char *kind, const char *path,
                            char hash[LPQ_STORE_HASH_HEX], lpq_error_t *err);
/* Opens path for reading only when it is a regular file of at most max_bytes: opened with
** O_NONBLOCK (a FIFO never blocks the caller) and checked with fstat. LPQ_ENOTFOUND, LPQ_EIO,
** LPQ_EINVAL (not a regular file), LPQ_ERANGE (too big). *size may be NULL. */
int lpq_store_blob_open_regular(const char *path, uint64_t max_bytes, int *fd, uint64_t *size,
                                lpq_error_t *err);
/* The parts of a put that need no database, for libuv's work queue: the bytes (or the rest of
** fd, at most max_bytes of it, else LPQ_ERANGE naming `name`) written as a blob file under
** blob_dir (mode 0600, fsync'ed, renamed under its hash), the hash into hash. The file is a
** blob only once lpq_store_blob_record has added its row (on the store's thread). */
int lpq_store_blob_write(const char *blob_dir, const void *data, size_t size,
                         char hash[LPQ_STORE_HASH_HEX], lpq_error_t *err);
int lpq_store_blob_write_fd(const char *blob_dir, int fd, uint64_t max_bytes, const char *name,
                            char hash[LPQ_STORE_HASH_HEX], uint64_t *size, lpq_error_t *err);
int lpq_store_blob_record(lpq_store_t *st, const char *kind, const char *hash, uint64_t size,
                          lpq_error_t *err);
/* Removes a blob file no row claims (an upload that was refused); a recorded blob stays. */
int lpq_store_blob_forget(lpq_store_t *st, const char *hash, lpq_error_t *err);
/* Removes blobs no job names, older than older_than_s, unless keep(ctx, hash); *removed. */
int lpq_store_blob_collect(lpq_store_t *st, double older_than_s, int (*keep)(void *, const char *),
                           void *ctx, size_t *removed, lpq_error_t *err);
/* blob_dir/ab/HASH (malloc'd), the file of a blob; NULL for a hash that is not 64 hex digits. */
char *lpq_store_blob_file(const char *blob_dir, const char *hash);
/* *found = 1 and *info filled (info may be NULL) when the blob is stored, else *found = 0. */
int lpq_store_blob_has(lpq_store_t *st, const char *hash, int *found, lpq_store_blob_t *info,
                       lpq_error_t *err);
/* A stored blob's file (malloc'd); LPQ_ENOTFOUND when not stored, LPQ_EIO when it has gone. */
int lpq_store_blob_path(lpq_store_t *st, const char *hash, char **path, lpq_error_t *err);
/* A stored blob's bytes (*data malloc'd, *size); LPQ_EIO when its file is missing or resized. */
int lpq_store_blob_read(lpq_store_t *st, const char *hash, void **data, size_t *size,
                        lpq_error_t *err);

/* ---- store: evaluations ---------------------------------------------------------------- */

/* One genome's result. NAN stands for an unknown number (top1 without labels, ...). */
typedef struct lpq_store_eval_t {
  int64_t job;
  uint64_t genome_hash;
  int status;                            /* 0 scored; else a negative LPQ_E* (failed) */
  char error[LPQ_STORE_TEXT_MAX];        /* why it failed; "" when scored */
  char worker[LPQ_STORE_NAME_MAX];       /* the worker's id; "" when unknown */
  double l_co, l_co_global, l_co_local, l_cr;
  double mean_weight_bits, mean_act_bits;
  double top1, latency_s, energy_pj, edp_js;
  double eval_ms;
  const char *genome_json; /* commit: optional layer formats (NULL: none); get: always NULL */
  double finished;         /* get: when it was committed; ignored by commit */
} lpq_store_eval_t;

/* Commits a batch of results in one transaction. A genome already stored for its job keeps its
** first result (the search may already have used it) and the repeat is skipped; *inserted
** (may be NULL) receives the number of new rows. Each new row with a worker adds one to that
** worker's evaluations_done. LPQ_EINVAL (naming the row) for an unknown job. */
int lpq_store_eval_commit(lpq_store_t *st, const lpq_store_eval_t *evals, size_t count,
                          size_t *inserted, lpq_error_t *err);
/* The stored result of (job, genome): 0 and *out filled, or LPQ_ENOTFOUND when the genome has
** no stored result yet (the replay's signal to dispatch it). */
int lpq_store_eval_get(lpq_store_t *st, int64_t job, uint64_t genome_hash,
                       lpq_store_eval_t *out, lpq_error_t *err);
/* The number of stored evaluations of a job. */
int lpq_store_eval_count(lpq_store_t *st, int64_t job, size_t *count, lpq_error_t *err);

/* ---- store: generations ---------------------------------------------------------------- */

/* A generation's statistics, as lpq_search_progress_t gives them. */
typedef struct lpq_store_generation_t {
  int64_t job;
  size_t number;          /* 0 is the initial population */
  size_t evaluations;     /* scored so far, this generation included */
  size_t new_evaluations; /* scored in this generation */
  size_t failed;
  double best_l_co, best_l_f, hypervolume; /* NAN: no feasible genome yet */
  size_t front_size;
  double elapsed_s;       /* search time since the job started */
} lpq_store_generation_t;

/* One member of the population after the generation. */
typedef struct lpq_store_individual_t {
  uint64_t genome_hash;
  const char *genome_json; /* the layer formats as JSON (required) */
  double l_co, l_cr, l_f;
  double violation;        /* total constraint violation; 0 when feasible */
  size_t rank;             /* NSGA-II front (0 is the best) */
  double crowding;         /* INFINITY at a front's extremes */
  int in_front;            /* 1: a member of the generation's feasible Pareto front */
} lpq_store_individual_t;

/* Commits a generation in one transaction: its row, its population and the job's progress.
** A generation already stored is replaced (a resumed job replays its generations). LPQ_EINVAL
** for an unknown job or a malformed genome_json (naming the individual). */
int lpq_store_generation_commit(lpq_store_t *st, const lpq_store_generation_t *gen,
                                const lpq_store_individual_t *individuals, size_t count,
                                lpq_error_t *err);

/* ---- store: workers -------------------------------------------------------------------- */

typedef struct lpq_store_worker_t {
  char id[LPQ_STORE_NAME_MAX];
  char host[LPQ_STORE_NAME_MAX];
  int64_t pid;
  double first_seen, last_seen;
  char state[LPQ_STORE_NAME_MAX]; /* the pool's word: ready, busy, lost, gone */
  size_t evaluations_done;
} lpq_store_worker_t;

/* Records a worker (first sight: first_seen = now) or refreshes its host, pid and state; sets
** last_seen = now. host may be NULL (unknown). */
int lpq_store_worker_upsert(lpq_store_t *st, const char *id, const char *host, int64_t pid,
                            const char *state, lpq_error_t *err);
/* A heartbeat: last_seen = now, and the state unless NULL. LPQ_ENOTFOUND for an unknown id. */
int lpq_store_worker_seen(lpq_store_t *st, const char *id, const char *state, lpq_error_t *err);
/* Every worker by id: *workers malloc'd (free() it), NULL when *count is 0. */
int lpq_store_worker_list(lpq_store_t *st, lpq_store_worker_t **workers, size_t *count,
                          lpq_error_t *err);

/* ---- store: events --------------------------------------------------------------------- */

typedef enum lpq_store_level_t {
  LPQ_STORE_DEBUG = 0,
  LPQ_STORE_INFO,
  LPQ_STORE_WARN,
  LPQ_STORE_ERROR,
} lpq_store_level_t;

typedef struct lpq_store_event_t {
  int64_t id;  /* increasing: the order of appending */
  int64_t job; /* 0: an event of the server, no job */
  double time;
  lpq_store_level_t level;
  char message[LPQ_STORE_TEXT_MAX];
} lpq_store_event_t;

/* Appends an event (job 0: the server's own); *id (may be NULL) receives its id. A message
** longer than LPQ_STORE_TEXT_MAX - 1 bytes is stored whole but read back cut. */
int lpq_store_event_append(lpq_store_t *st, int64_t job, lpq_store_level_t level,
                           const char *message, int64_t *id, lpq_error_t *err);
/* Events with id > after_id in id order, at most limit (0: no limit); job 0 lists every job's
** and the server's events. *events malloc'd (free() it), NULL when *count is 0. */
int lpq_store_event_list(lpq_store_t *st, int64_t job, int64_t after_id, size_t limit,
                         lpq_store_event_t **events, size_t *count, lpq_error_t *err);

/* ---- store: per-layer sensitivity (schema/store_v2.sql) --------------------------------- */

/* A job's sensitivity: cell k = l * (bits_hi - bits_lo + 1) + (b - bits_lo) is layer l alone
** at b weight bits. NAN: unknown (a failed evaluation; top1 without labels). */
typedef struct lpq_store_sensitivity_t {
  size_t layers;
  int bits_lo, bits_hi;
  char **names;       /* per layer */
  size_t *weights;    /* per layer weight counts; put: may be NULL */
  double *delta_l_co; /* rise of L_CO over the all-fp32 candidate, per cell */
  double *top1;       /* per cell, in [0,1]; put: may be NULL */
  char **formats;     /* the weight format text per cell; put: may be NULL, entries too */
} lpq_store_sensitivity_t;

/* Stores a job's matrix in one transaction, replacing what the job had. LPQ_EINVAL for an
** unknown job or an empty matrix. */
int lpq_store_sensitivity_put(lpq_store_t *st, int64_t job, const lpq_store_sensitivity_t *m,
                              lpq_error_t *err);
/* Reads it back into *out (every array malloc'd; lpq_store_sensitivity_clear frees them).
** LPQ_ENOTFOUND when the job has none stored. */
int lpq_store_sensitivity_get(lpq_store_t *st, int64_t job, lpq_store_sensitivity_t *out,
                              lpq_error_t *err);
void lpq_store_sensitivity_clear(lpq_store_sensitivity_t *m);
/* ---- store: the accuracy-aware pick (schema/store_v3.sql) -------------------------------- */
/* member -1: the fp32 reference (no genome); 0..: the final front by increasing L_CO; NAN:
** unknown. put replaces the job's rows in one transaction (rule: how the pick was made); get
** reads them by member (*rows malloc'd), LPQ_ENOTFOUND when the job has none. */
typedef struct lpq_store_pick_t {
  int64_t member;
  char genome[17];
  double l_co, l_cr, mean_weight_bits, top1_val; /* top1_val in [0, 1] */
  int chosen;
} lpq_store_pick_t;
int lpq_store_pick_put(lpq_store_t *st, int64_t job, const lpq_store_pick_t *rows, size_t n,
                       const char *rule, lpq_error_t *err);
int lpq_store_pick_get(lpq_store_t *st, int64_t job, lpq_store_pick_t **rows, size_t *n,
                       char rule[LPQ_STORE_TEXT_MAX], lpq_error_t *err);

/* ---- store: any table or view as JSON (lpqctl history, the API's read methods) --------- */

typedef struct lpq_store_dump_filter_t {
  int64_t job;        /* > 0: rows of this job only (its job column; jobs: id) */
  int generation_set; /* 1: rows of `generation` only (its generation or number column) */
  int64_t generation;
  int front_only;     /* 1: rows with in_front = 1 only (individuals) */
  size_t limit;       /* at most this many rows; 0: all */
  size_t offset;      /* skip this many first */
  const char *order_by;          /* a column to order by (NULL: the table's order) */
  int descending;                /* with order_by */
  const char *const *columns;    /* NULL-terminated: each must be a column (LPQ_EINVAL) */
} lpq_store_dump_filter_t;

/* The rows of the table or view `name` (schema/README.md) as a JSON array of objects, one key
** per column; non-finite numbers (Inf crowding) become null. *json malloc'd (free() it). filter
** may be NULL (all rows). LPQ_ENOTFOUND: unknown name; LPQ_EINVAL: a filter's column lacks. */
int lpq_store_dump_json(lpq_store_t *st, const char *name, const lpq_store_dump_filter_t *filter,
                        char **json, lpq_error_t *err);
/* v_best_config's row of job among its generations in (after, upto] (no genome_json) as a JSON
** object in *json (malloc'd; NULL: none): job.get's best, updated one generation at a time. */
int lpq_store_best_json(lpq_store_t *st, int64_t job, int64_t after, int64_t upto, char **json,
                        lpq_error_t *err);
/* ---- store: from the search ------------------------------------------------------------ */
/* A genome as the JSON text the store keeps: [{"w":"lp<4,1,3,2>","a":"lp<8,2,7,0>"}, ...], one
** object per layer in model order, "fp32" for a format with n = 0. *json malloc'd (free() it). */
int lpq_store_genome_json(const lpq_layer_formats_t *genome, size_t layer_count, char **json,
                          lpq_error_t *err);
int lpq_store_individual_json(lpq_store_t *st, int64_t job, uint64_t genome_hash, char **json,
                              lpq_error_t *err); /* its genome_json by key (or LPQ_ENOTFOUND) */
/* Commits the search's latest generation (after lpq_search_commit) in one transaction: its row,
** its population with L_CO, L_CR, L_F, violation, NSGA-II rank and crowding over (L_CO, L_CR),
** in_front on the feasible non-dominated members as lpq_search_front counts them (of equal
** objective vectors, the earliest scored), the job's progress. A failed genome: NULL objectives,
** an infinite violation. */
int lpq_store_search_generation(lpq_store_t *st, int64_t job, const lpq_search_t *search,
                                lpq_error_t *err);
/* The same in steps (100000 genomes take seconds): rows made off the store (any thread), written
** max_rows a transaction (the first replaces the generation row and what an interrupted write
** left; the last sets the job's progress, then *done = 1); a failure keeps the rows. */
typedef struct lpq_store_generation_rows_t lpq_store_generation_rows_t;
int lpq_store_generation_rows(int64_t job, const lpq_search_t *search,
                              lpq_store_generation_rows_t **rows, lpq_error_t *err);
int lpq_store_generation_write(lpq_store_t *st, lpq_store_generation_rows_t *rows,
                               size_t max_rows, int *done, lpq_error_t *err);
void lpq_store_generation_rows_free(lpq_store_generation_rows_t **rows);

#endif
