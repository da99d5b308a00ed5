-- Queries over filter outputs: ROOT holds one tic-filter output per filter (ROOT/basic, ROOT/bestpool, ...),
-- each run on the timestamped pool (--timestamps), so kept/ and dropped/ are partitioned by first_seen_year.
-- duckdb CLI:  SET VARIABLE root = 'demo-out/filtered';  then any query below.

-- name: retention_by_year
-- Rows kept and dropped per filter and first-seen year, and the retention.
WITH kept AS (
    SELECT filter, first_seen_year, count(*) AS n
    FROM read_parquet(getvariable('root') || '/[!._]*/kept/[!._]*/*.parquet', hive_partitioning = true) GROUP BY ALL
), dropped AS (
    SELECT filter, first_seen_year, count(*) AS n
    FROM read_parquet(getvariable('root') || '/[!._]*/dropped/[!._]*/*.parquet', hive_partitioning = true) GROUP BY ALL
)
SELECT coalesce(k.filter, d.filter) AS filter, coalesce(k.first_seen_year, d.first_seen_year) AS first_seen_year,
       coalesce(k.n, 0) AS kept, coalesce(d.n, 0) AS dropped,
       round(coalesce(k.n, 0) / (coalesce(k.n, 0) + coalesce(d.n, 0)), 4) AS retention
FROM kept k FULL OUTER JOIN dropped d ON k.filter = d.filter AND k.first_seen_year = d.first_seen_year
ORDER BY 1, 2;

-- name: drop_reasons_by_year
-- Why rows went, per filter and first-seen year.
SELECT filter, first_seen_year, reason, count(*) AS rows
FROM read_parquet(getvariable('root') || '/[!._]*/dropped/[!._]*/*.parquet', hive_partitioning = true)
GROUP BY ALL
ORDER BY filter, first_seen_year, rows DESC;

-- name: bestpool_vs_basic_share
-- Each year's share of the bestpool pool against its share of the basic pool: bestpool leans to old data.
WITH kept AS (
    SELECT filter, first_seen_year, count(*) AS n
    FROM read_parquet(getvariable('root') || '/[!._]*/kept/[!._]*/*.parquet', hive_partitioning = true)
    WHERE filter IN ('basic', 'bestpool') GROUP BY ALL
), shares AS (
    SELECT filter, first_seen_year, n / sum(n) OVER (PARTITION BY filter) AS share FROM kept
)
SELECT b.first_seen_year,
       round(b.share, 4) AS basic_share,
       round(p.share, 4) AS bestpool_share,
       round(p.share / b.share, 3) AS bestpool_over_basic
FROM shares b JOIN shares p ON b.first_seen_year = p.first_seen_year AND b.filter = 'basic' AND p.filter = 'bestpool'
ORDER BY b.first_seen_year;
