-- Queries over the timestamp join's output (OUTPUT_DIR of curation/timestamp_join.py).
-- duckdb CLI:  SET VARIABLE root = 'demo-out/timestamps';  then any query below.
-- Shell:       tic-sql sql/timestamps.sql --var root=demo-out/timestamps --run pairs_per_year
-- Times are UTC.

-- name: pairs_per_year
-- Matched DataComp pairs per first-seen year, with the share of all matched pairs.
SELECT first_seen_year, count(*) AS pairs, round(count(*) / sum(count(*)) OVER (), 4) AS share
FROM read_parquet(getvariable('root') || '/first_seen/[!._]*/*.parquet', hive_partitioning = true)
GROUP BY first_seen_year
ORDER BY first_seen_year;

-- name: pairs_per_month
-- Matched pairs per first-seen month (YYYY-MM).
SELECT first_seen_month, count(*) AS pairs
FROM read_parquet(getvariable('root') || '/first_seen/[!._]*/*.parquet', hive_partitioning = true)
GROUP BY first_seen_month
ORDER BY first_seen_month;

-- name: single_snapshot_share
-- Share of matched pairs that only one snapshot showed, per first-seen year.
SELECT first_seen_year,
       count(*) AS pairs,
       round(avg(CASE WHEN n_snapshots_seen = 1 THEN 1 ELSE 0 END), 4) AS seen_in_one_snapshot,
       round(avg(n_snapshots_seen), 3) AS mean_snapshots_seen
FROM read_parquet(getvariable('root') || '/first_seen/[!._]*/*.parquet', hive_partitioning = true)
GROUP BY first_seen_year
ORDER BY first_seen_year;

-- name: snapshot_coverage
-- Per snapshot: pool pairs it showed, and how many of them it showed first.
WITH per_snapshot AS (
    SELECT unnest(snapshots) AS snapshot FROM read_parquet(getvariable('root') || '/sightings/*.parquet')
), shown AS (
    SELECT snapshot, count(*) AS pool_pairs_seen FROM per_snapshot GROUP BY snapshot
), firsts AS (
    SELECT first_seen_snapshot AS snapshot, count(*) AS first_seen_here
    FROM read_parquet(getvariable('root') || '/first_seen/[!._]*/*.parquet', hive_partitioning = true)
    GROUP BY 1
)
SELECT s.snapshot, s.pool_pairs_seen, coalesce(f.first_seen_here, 0) AS first_seen_here,
       round(coalesce(f.first_seen_here, 0) / s.pool_pairs_seen, 4) AS new_share
FROM shown s LEFT JOIN firsts f USING (snapshot)
ORDER BY s.snapshot;

-- name: first_last_lag
-- How long pairs stay on the crawled web: days between first and last sighting, per first-seen year.
SELECT first_seen_year,
       count(*) AS pairs,
       round(avg(date_diff('day', first_seen_time, last_seen_time)), 1) AS mean_lag_days,
       quantile_cont(date_diff('day', first_seen_time, last_seen_time), 0.5) AS median_lag_days,
       max(date_diff('day', first_seen_time, last_seen_time)) AS max_lag_days
FROM read_parquet(getvariable('root') || '/first_seen/[!._]*/*.parquet', hive_partitioning = true)
GROUP BY first_seen_year
ORDER BY first_seen_year;

-- name: top_domains_per_year
-- The five image hosts with the most newly seen pairs each year.
WITH hosts AS (
    SELECT first_seen_year, lower(regexp_extract(url, '^[a-zA-Z][a-zA-Z0-9+.-]*://([^/:?#]+)', 1)) AS host
    FROM read_parquet(getvariable('root') || '/first_seen/[!._]*/*.parquet', hive_partitioning = true)
), counted AS (
    SELECT first_seen_year, host, count(*) AS pairs FROM hosts GROUP BY ALL
), ranked AS (
    SELECT *, row_number() OVER (PARTITION BY first_seen_year ORDER BY pairs DESC, host) AS rank FROM counted
)
SELECT first_seen_year, rank, host, pairs FROM ranked WHERE rank <= 5 ORDER BY first_seen_year, rank;

-- name: first_seen_join
-- The first-seen join in plain SQL: the reference the Spark job is checked and benchmarked against.
-- Variables: candidates = glob of tic-extract candidates parquet, metadata = glob of DataComp metadata parquet.
WITH pool AS (
    SELECT uid, url, text FROM read_parquet(getvariable('metadata'))
), pool_pairs AS (
    SELECT DISTINCT url, text FROM pool
), sightings AS (
    SELECT c.url, c.text, c.snapshot, min(c.crawl_time) AS first_time, max(c.crawl_time) AS last_time
    FROM read_parquet(getvariable('candidates')) c
    SEMI JOIN pool_pairs p ON c.url = p.url AND c.text = p.text
    GROUP BY c.url, c.text, c.snapshot
), first_seen AS (
    SELECT url, text,
           min({'t': first_time, 's': coalesce(snapshot, chr(65535))}) AS earliest,
           max(last_time) AS last_seen_time,
           count(DISTINCT snapshot) AS n_snapshots_seen
    FROM sightings
    GROUP BY url, text
)
SELECT p.uid, p.url, p.text,
       f.earliest.t AS first_seen_time,
       strftime(f.earliest.t, '%Y-%m') AS first_seen_month,
       CAST(year(f.earliest.t) AS INTEGER) AS first_seen_year,
       nullif(f.earliest.s, chr(65535)) AS first_seen_snapshot,
       f.last_seen_time,
       CAST(f.n_snapshots_seen AS INTEGER) AS n_snapshots_seen
FROM pool p JOIN first_seen f ON p.url = f.url AND p.text = f.text
ORDER BY p.uid;

-- name: unmatched_by_reason
-- DataComp rows without a timestamp, split by whether their URL was seen with another text.
WITH unmatched AS (
    SELECT * FROM read_parquet(getvariable('root') || '/unmatched/*.parquet')
), urls AS (
    SELECT url FROM read_parquet(getvariable('root') || '/seen_urls/*.parquet')
)
SELECT CASE WHEN u.url IN (SELECT url FROM urls) THEN 'url seen with another text' ELSE 'url never seen' END AS why,
       count(*) AS rows
FROM unmatched u
GROUP BY 1
ORDER BY 2 DESC;
