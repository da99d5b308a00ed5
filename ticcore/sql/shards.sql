-- Queries over tic-shards outputs.  duckdb CLI:
--   SET VARIABLE root = 'demo-out/shards'; SET VARIABLE download = 'demo-out/download';

-- name: samples_per_step
-- Samples and shards per training pool and step.
SELECT regexp_extract(filename, '/train/([^/]+)/([^/]+)/', 1) AS pool,
       regexp_extract(filename, '/train/([^/]+)/([^/]+)/', 2) AS step,
       count(*) AS samples, count(DISTINCT filename) AS shards
FROM read_parquet(getvariable('root') || '/train/[!._]*/[!._]*/*.parquet', filename = true, union_by_name = true)
GROUP BY ALL
ORDER BY pool, step;

-- name: download_success_by_year
-- Download outcome per first-seen year (pairs without one are the static set).
WITH s AS (
    SELECT s.uid, s.status, s.reason, r.first_seen_month
    FROM read_parquet(getvariable('download') || '/status.parquet') s
    LEFT JOIN read_parquet(getvariable('download') || '/requested.parquet') r USING (uid)
)
SELECT coalesce(substr(first_seen_month, 1, 4), 'static') AS year, count(*) AS urls,
       round(avg(CASE WHEN status = 'success' THEN 1 ELSE 0 END), 4) AS success_rate
FROM s GROUP BY 1 ORDER BY 1;

-- name: download_failures_by_reason
-- Why downloads failed, per first-seen year.
SELECT coalesce(substr(r.first_seen_month, 1, 4), 'static') AS year, s.reason, count(*) AS urls
FROM read_parquet(getvariable('download') || '/status.parquet') s
LEFT JOIN read_parquet(getvariable('download') || '/requested.parquet') r USING (uid)
WHERE s.status <> 'success'
GROUP BY ALL
ORDER BY year, urls DESC;

-- name: bytes_per_step
-- Bytes of tar shards per training pool and step.
SELECT regexp_extract(filename, '/train/([^/]+)/([^/]+)/', 1) AS pool,
       regexp_extract(filename, '/train/([^/]+)/([^/]+)/', 2) AS step,
       sum(size) AS bytes, round(sum(size) / 1048576, 2) AS mib
FROM read_blob(getvariable('root') || '/train/[!._]*/[!._]*/*.tar')
GROUP BY ALL
ORDER BY pool, step;
