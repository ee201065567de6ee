-- schema/store_v1.sql: migration 1 of the coordinator's SQLite store (PRAGMA user_version 1).
-- It creates every table and view; later migrations are schema/store_vN.sql, applied in order
-- by coordinator/store/store.c, each in the same transaction as its user_version bump.
-- Times are Unix seconds (REAL); the views show them as text with datetime(). A genome is
-- named by its 64-bit FNV-1a hash as 16 lowercase hex digits (lpq_genome_hash).
-- Unknown or absent numbers (top-1 without labels, EDP without a cost model) are NULL.

-- Content-addressed inputs: models, calibration data, labels. The bytes live in files under
-- the blob directory next to the database (DB.blobs/ab/abcd...), not in this table: models are
-- tens of megabytes, and keeping them out of the WAL keeps commits and checkpoints small.
CREATE TABLE blobs (
  hash    TEXT PRIMARY KEY CHECK (length(hash) = 64 AND hash NOT GLOB '*[^0-9a-f]*'),
  size    INTEGER NOT NULL CHECK (size >= 0),
  kind    TEXT NOT NULL CHECK (kind <> ''),   -- model, data, labels, ...
  created REAL NOT NULL
) WITHOUT ROWID;

-- One row per search job. settings is the job's JSON (mode, objective, lambda, constraints,
-- population, seed, blob hashes, ...). The progress columns are updated with every committed
-- generation; evaluations_stored with every committed batch of results.
CREATE TABLE jobs (
  id                 INTEGER PRIMARY KEY,
  name               TEXT NOT NULL,
  status             TEXT NOT NULL DEFAULT 'queued'
                     CHECK (status IN ('queued', 'running', 'paused', 'done', 'failed', 'canceled')),
  settings           TEXT NOT NULL CHECK (json_valid(settings)),
  message            TEXT,             -- why it failed or stopped
  cancel_requested   INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1)),
  created            REAL NOT NULL,
  started            REAL,
  finished           REAL,
  updated            REAL NOT NULL,
  generation         INTEGER,          -- last committed generation (0: initial population)
  evaluations        INTEGER NOT NULL DEFAULT 0,  -- scored by the search at that generation
  evaluations_stored INTEGER NOT NULL DEFAULT 0,  -- rows in evaluations (may run ahead)
  best_l_co          REAL,
  best_l_f           REAL,
  hypervolume        REAL,
  front_size         INTEGER
);
CREATE INDEX jobs_unfinished ON jobs (id) WHERE status IN ('queued', 'running', 'paused');

-- One row per genome scored for a job: the replay of a resumed job looks results up here by
-- (job, genome). The first stored result of a genome is kept; a repeat is ignored. Rows are
-- appended in commit order (id) and found through the (job, genome) index: keyed by the
-- random genome hash itself, every batch would rewrite ~50% more pages.
CREATE TABLE evaluations (
  id               INTEGER PRIMARY KEY,
  job              INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  genome           TEXT NOT NULL CHECK (length(genome) = 16),
  status           INTEGER NOT NULL,  -- 0 scored; else a negative LPQ_E* code
  error            TEXT,              -- why it failed
  worker           TEXT,              -- workers.id of the worker that scored it
  l_co             REAL,              -- contrastive loss: global + mean of the local terms
  l_co_global      REAL,
  l_co_local       REAL,
  l_cr             REAL,              -- compression term: relative bits or accelerator cost
  mean_weight_bits REAL,
  mean_act_bits    REAL,
  top1             REAL,
  latency_s        REAL,
  energy_pj        REAL,
  edp_js           REAL,
  eval_ms          REAL,              -- the worker's time for this genome
  genome_json      TEXT,              -- optional: the layer formats
  finished         REAL NOT NULL,     -- when the coordinator committed it
  UNIQUE (job, genome)
);

-- One row per committed generation of a job (0 is the initial population).
CREATE TABLE generations (
  job             INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  number          INTEGER NOT NULL CHECK (number >= 0),
  evaluations     INTEGER NOT NULL,   -- scored so far, this generation included
  new_evaluations INTEGER NOT NULL,   -- scored in this generation
  failed          INTEGER NOT NULL DEFAULT 0,
  best_l_co       REAL,               -- lowest L_CO of a feasible genome of the population
  best_l_f        REAL,               -- lowest L_F = L_CO * L_CR^lambda of a feasible one
  hypervolume     REAL,               -- of the feasible front, against the job's reference
  front_size      INTEGER NOT NULL,
  elapsed_s       REAL NOT NULL,      -- search time since the job started
  time            REAL NOT NULL,      -- when it was committed
  PRIMARY KEY (job, number)
) WITHOUT ROWID;

-- The population after each generation: objectives and NSGA-II rank and crowding. in_front
-- marks the feasible non-dominated genomes, so a generation's Pareto front is
-- "WHERE in_front". violation is the total constraint violation (0: feasible).
CREATE TABLE individuals (
  job         INTEGER NOT NULL,
  generation  INTEGER NOT NULL,
  genome      TEXT NOT NULL CHECK (length(genome) = 16),
  genome_json TEXT NOT NULL CHECK (json_valid(genome_json)),
  l_co        REAL,
  l_cr        REAL,
  l_f         REAL,
  violation   REAL NOT NULL DEFAULT 0,
  rank        INTEGER,
  crowding    REAL,                   -- Inf at a front's extremes
  in_front    INTEGER NOT NULL DEFAULT 0 CHECK (in_front IN (0, 1)),
  PRIMARY KEY (job, generation, genome),
  FOREIGN KEY (job, generation) REFERENCES generations (job, number) ON DELETE CASCADE
) WITHOUT ROWID;

-- The evaluation processes seen by the coordinator. state is the pool's word for it
-- (ready, busy, lost, gone).
CREATE TABLE workers (
  id               TEXT PRIMARY KEY,
  host             TEXT,
  pid              INTEGER,
  first_seen       REAL NOT NULL,
  last_seen        REAL NOT NULL,
  state            TEXT NOT NULL,
  evaluations_done INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

-- A log a person reads: job submitted, started, canceled, a worker lost... job is NULL for
-- events of the server itself.
CREATE TABLE events (
  id      INTEGER PRIMARY KEY,
  job     INTEGER REFERENCES jobs (id) ON DELETE CASCADE,
  time    REAL NOT NULL,
  level   TEXT NOT NULL CHECK (level IN ('debug', 'info', 'warn', 'error')),
  message TEXT NOT NULL
);
CREATE INDEX events_job ON events (job, id);

-- v_pareto: the latest Pareto front of each job, one row per genome of the front of the job's
-- last committed generation, by increasing L_CO, with its objectives, what the worker measured
-- and the genome's layer formats.
CREATE VIEW v_pareto AS
SELECT i.job, j.name AS job_name, i.generation, i.genome,
       i.l_co, i.l_cr, i.l_f, e.mean_weight_bits, e.mean_act_bits, e.top1,
       e.latency_s, e.energy_pj, e.edp_js, i.rank, i.crowding, i.genome_json
FROM individuals AS i
JOIN jobs AS j ON j.id = i.job
LEFT JOIN evaluations AS e ON e.job = i.job AND e.genome = i.genome
WHERE i.in_front = 1
  AND i.generation = (SELECT max(number) FROM generations AS g WHERE g.job = i.job)
ORDER BY i.job, i.l_co, i.genome;

-- v_generation_stats: per job and generation, the evaluations (total and new), the best L_CO
-- and L_F, the hypervolume and size of the front, and the throughput: the generation's new
-- evaluations over the search time since the previous generation (NULL for a zero interval).
CREATE VIEW v_generation_stats AS
SELECT job, number AS generation, evaluations, new_evaluations, failed,
       best_l_co, best_l_f, hypervolume, front_size, elapsed_s,
       new_evaluations / nullif(elapsed_s - coalesce(lag(elapsed_s) OVER w, 0.0), 0.0)
         AS evals_per_s,
       datetime(time, 'unixepoch') AS committed
FROM generations
WINDOW w AS (PARTITION BY job ORDER BY number)
ORDER BY job, number;

-- v_best_config: per job the best feasible genome of any generation, by the job's objective.
-- Scalar mode (settings.mode = 'scalar'): the lowest L_F. Pareto mode: the lowest L_CO among
-- the genomes that meet the job's constraints. Feasible means: scored (status 0), violation 0
-- as the search computed it, and within every constraint of settings.constraints that the view
-- knows: mean_weight_bits_max, mean_act_bits_max, latency_s_max, energy_pj_max, edp_js_max,
-- top1_min. Ties go to the earlier generation, then the smaller genome hash.
CREATE VIEW v_best_config AS
WITH limits AS (
  SELECT id AS job, name, coalesce(json_extract(settings, '$.mode'), 'pareto') AS mode,
         json_extract(settings, '$.objective') AS objective,
         json_extract(settings, '$.constraints.mean_weight_bits_max') AS wbits_max,
         json_extract(settings, '$.constraints.mean_act_bits_max') AS abits_max,
         json_extract(settings, '$.constraints.latency_s_max') AS latency_max,
         json_extract(settings, '$.constraints.energy_pj_max') AS energy_max,
         json_extract(settings, '$.constraints.edp_js_max') AS edp_max,
         json_extract(settings, '$.constraints.top1_min') AS top1_min
  FROM jobs
),
feasible AS (
  SELECT l.job, l.name, l.mode, l.objective, i.generation, i.genome, i.l_co, i.l_cr, i.l_f,
         e.mean_weight_bits, e.mean_act_bits, e.top1, e.latency_s, e.energy_pj, e.edp_js,
         i.genome_json,
         row_number() OVER (PARTITION BY l.job
                            ORDER BY CASE l.mode WHEN 'scalar' THEN i.l_f ELSE i.l_co END,
                                     i.generation, i.genome) AS place
  FROM limits AS l
  JOIN individuals AS i ON i.job = l.job
  JOIN evaluations AS e ON e.job = i.job AND e.genome = i.genome
  WHERE e.status = 0 AND i.violation <= 0
    AND CASE l.mode WHEN 'scalar' THEN i.l_f ELSE i.l_co END IS NOT NULL
    AND (l.wbits_max IS NULL OR e.mean_weight_bits <= l.wbits_max)
    AND (l.abits_max IS NULL OR e.mean_act_bits <= l.abits_max)
    AND (l.latency_max IS NULL OR e.latency_s <= l.latency_max)
    AND (l.energy_max IS NULL OR e.energy_pj <= l.energy_max)
    AND (l.edp_max IS NULL OR e.edp_js <= l.edp_max)
    AND (l.top1_min IS NULL OR e.top1 >= l.top1_min)
)
SELECT job, name AS job_name, mode, objective, generation, genome, l_co, l_cr, l_f,
       mean_weight_bits, mean_act_bits, top1, latency_s, energy_pj, edp_js, genome_json
FROM feasible
WHERE place = 1
ORDER BY job;
