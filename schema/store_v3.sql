-- Schema v3: the accuracy-aware pick (issue 13, item 5). A job given a validation set
-- (job.submit val_data, val_labels) ends by scoring its final front on it; the config it
-- reports, exports and marks as best is chosen there: the cheapest (lowest L_CR) within
-- settings.constraints.top1_drop_max points of fp32's validation top-1, or without a drop the
-- lowest L_CO within one standard error of the highest validation top-1.

-- One row per scored genome of the pick: member -1 is the fp32 reference (genome NULL), members
-- 0.. the front in increasing L_CO. top1_val in [0, 1], NULL when its evaluation failed; chosen
-- marks the pick (at most one per job); rule says how it was made.
CREATE TABLE picks (
  job               INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  member            INTEGER NOT NULL CHECK (member >= -1),
  genome            TEXT CHECK (genome IS NULL OR length(genome) = 16),
  l_co              REAL,
  l_cr              REAL,
  mean_weight_bits  REAL,
  top1_val          REAL,
  chosen            INTEGER NOT NULL DEFAULT 0 CHECK (chosen IN (0, 1)),
  rule              TEXT,
  PRIMARY KEY (job, member)
) WITHOUT ROWID;

-- v_pick: the pick's front members with fp32's validation top-1 beside them and the drop in
-- points (positive: below fp32).
CREATE VIEW v_pick AS
SELECT p.job, p.member, p.genome, p.l_co, p.l_cr, p.mean_weight_bits, p.top1_val,
       f.top1_val AS top1_val_fp32, 100.0 * (f.top1_val - p.top1_val) AS drop_points,
       p.chosen, p.rule
FROM picks AS p
LEFT JOIN picks AS f ON f.job = p.job AND f.member = -1
WHERE p.member >= 0
ORDER BY p.job, p.member;
