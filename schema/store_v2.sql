-- schema/store_v2.sql: migration 2 of the coordinator's SQLite store (PRAGMA user_version 2).
-- Per-layer sensitivity (issue 13, item 3): for each job, every quantizable layer alone at each
-- weight width (the other layers and all activations fp32), scored once before the search's
-- first generation.

-- One row per job, layer and width. delta_l_co is the rise of L_CO over the all-fp32 candidate
-- on the job's calibration batch; top1 (in [0, 1]) is NULL without labels; weights is the
-- layer's weight count (what a mean-bits budget weighs the width by); format the weight format
-- the cell used (e.g. lp<4,1,2,173>).
CREATE TABLE sensitivity (
  job         INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  layer       INTEGER NOT NULL CHECK (layer >= 0),   -- index among the quantizable layers
  layer_name  TEXT NOT NULL,
  bits        INTEGER NOT NULL CHECK (bits BETWEEN 1 AND 32),
  delta_l_co  REAL,                                  -- NULL: the evaluation failed
  top1        REAL,
  weights     INTEGER CHECK (weights >= 0),
  format      TEXT,
  PRIMARY KEY (job, layer, bits)
) WITHOUT ROWID;

-- v_sensitivity: one row per job and layer, the rise of L_CO pivoted by width (d2 .. d8, NULL
-- for a width not measured), and rank_4: the layer's place by its rise at 4 bits (1: the most
-- sensitive layer of the job).
CREATE VIEW v_sensitivity AS
WITH p AS (
  SELECT job, layer, max(layer_name) AS layer_name, max(weights) AS weights,
         max(CASE bits WHEN 2 THEN delta_l_co END) AS d2,
         max(CASE bits WHEN 3 THEN delta_l_co END) AS d3,
         max(CASE bits WHEN 4 THEN delta_l_co END) AS d4,
         max(CASE bits WHEN 5 THEN delta_l_co END) AS d5,
         max(CASE bits WHEN 6 THEN delta_l_co END) AS d6,
         max(CASE bits WHEN 7 THEN delta_l_co END) AS d7,
         max(CASE bits WHEN 8 THEN delta_l_co END) AS d8
  FROM sensitivity GROUP BY job, layer
)
SELECT job, layer, layer_name, weights, d2, d3, d4, d5, d6, d7, d8,
       CASE WHEN d4 IS NULL THEN NULL
            ELSE rank() OVER (PARTITION BY job ORDER BY d4 IS NULL, d4 DESC) END AS rank_4
FROM p
ORDER BY job, layer;
