-- Queries over tic-train run directories.  `root` is one run or a folder of runs (a `tic-train experiment`).
-- duckdb CLI:  SET VARIABLE root = 'demo-out/experiment';

-- name: buffer_composition
-- What each run trained on at each step: samples per source step (the replay buffer's make-up).
WITH b AS (
    SELECT regexp_extract(filename, '([^/]+)/buffers/step_([^/]+)\.parquet$', 1) AS run,
           regexp_extract(filename, '([^/]+)/buffers/step_([^/]+)\.parquet$', 2) AS step,
           source_step
    FROM read_parquet(getvariable('root') || '/**/buffers/step_*.parquet', filename = true)
)
SELECT run, step, source_step, count(*) AS samples,
       round(count(*) / sum(count(*)) OVER (PARTITION BY run, step), 4) AS share
FROM b GROUP BY run, step, source_step
ORDER BY run, step, source_step;

-- name: buffer_sizes
-- Buffer size per run and step against the size of the step's own (new) data.
WITH b AS (
    SELECT regexp_extract(filename, '([^/]+)/buffers/step_([^/]+)\.parquet$', 1) AS run,
           regexp_extract(filename, '([^/]+)/buffers/step_([^/]+)\.parquet$', 2) AS step,
           source_step
    FROM read_parquet(getvariable('root') || '/**/buffers/step_*.parquet', filename = true)
)
SELECT run, step, count(*) AS buffer_samples,
       count(*) FILTER (WHERE source_step = step) AS new_samples,
       round(count(*) / count(*) FILTER (WHERE source_step = step), 3) AS buffer_over_new
FROM b GROUP BY ALL
ORDER BY run, step;

-- name: ledger_by_step
-- MACs spent per run, step and item (training, LwF teacher forward, EWC Fisher).
SELECT regexp_extract(filename, '([^/]+)/ledger\.json$', 1) AS run, step, item, macs
FROM read_json(getvariable('root') || '/**/ledger.json', filename = true, format = 'array',
               columns = {'step': 'VARCHAR', 'item': 'VARCHAR', 'macs': 'DOUBLE'})
ORDER BY run, step, item;
