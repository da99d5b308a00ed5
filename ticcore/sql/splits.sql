-- Queries over a tic-splits output.  duckdb CLI: SET VARIABLE root = 'demo-out/splits';

-- name: eval_sizes
-- Retrieval pairs per year and subset: the holdout and the pairs each seed scores.
SELECT year, subset, any_value(holdout_size) AS holdout, count(*) AS rows,
       count(*) FILTER (WHERE list_contains(seeds, 0)) AS seed_0,
       count(*) FILTER (WHERE list_contains(seeds, 1)) AS seed_1,
       count(*) FILTER (WHERE list_contains(seeds, 2)) AS seed_2
FROM read_parquet(getvariable('root') || '/eval/retrieval/[!._]*/*.parquet', hive_partitioning = true)
GROUP BY year, subset
ORDER BY year, subset;

-- name: net_class_counts
-- TiC-DataComp-Net pairs per year and class.
SELECT year, class_id, wnid, any_value(lemma) AS lemma, count(*) AS pairs, round(avg(similarity), 3) AS mean_similarity
FROM read_parquet(getvariable('root') || '/eval/net/[!._]*/*.parquet', hive_partitioning = true)
GROUP BY year, class_id, wnid
ORDER BY year, pairs DESC;

-- name: net_biggest_changes
-- The Net classes whose share of a year moved most since the year before.
WITH counts AS (
    SELECT year, lemma, count(*) AS n
    FROM read_parquet(getvariable('root') || '/eval/net/[!._]*/*.parquet', hive_partitioning = true) GROUP BY ALL
), shares AS (
    SELECT year, lemma, n / sum(n) OVER (PARTITION BY year) AS share FROM counts
), years AS (
    SELECT DISTINCT year FROM counts
), grid AS (
    SELECT y.year, l.lemma, coalesce(s.share, 0) AS share
    FROM years y CROSS JOIN (SELECT DISTINCT lemma FROM counts) l LEFT JOIN shares s USING (year, lemma)
), moved AS (
    SELECT year, lemma, share, share - lag(share) OVER (PARTITION BY lemma ORDER BY year) AS change FROM grid
), ranked AS (
    SELECT *, row_number() OVER (PARTITION BY year ORDER BY abs(change) DESC, lemma) AS rank
    FROM moved WHERE change IS NOT NULL
)
SELECT year, lemma, round(share, 4) AS share, round(change, 4) AS change_from_last_year
FROM ranked WHERE rank <= 3 ORDER BY year, rank;

-- name: train_sizes
-- Training rows per pool and year, after every evaluation pair was removed.
SELECT regexp_extract(filename, '/train/([^/]+)/', 1) AS pool, year, count(*) AS rows
FROM read_parquet(getvariable('root') || '/train/[!._]*/[!._]*/*.parquet', hive_partitioning = true, filename = true)
GROUP BY ALL
ORDER BY pool, year;

-- name: leakage_check
-- Training rows that share a uid, sha256 or url with an evaluation pair: must return no rows.
-- Every evaluation set and every pool, whatever their names (a tic-yfcc output has no eval/net); a
-- root with neither fails ("No files found"), it does not come back clean.
WITH evaluation AS (
    SELECT uid, sha256, url
    FROM read_parquet(getvariable('root') || '/eval/[!._]*/[!._]*/*.parquet', hive_partitioning = true, union_by_name = true)
), train AS (
    SELECT uid, sha256, url, filename
    FROM read_parquet(getvariable('root') || '/train/[!._]*/[!._]*/*.parquet', hive_partitioning = true, filename = true)
)
SELECT t.uid, 'uid' AS key, t.filename FROM train t JOIN evaluation e ON t.uid = e.uid
UNION ALL
SELECT t.uid, 'sha256', t.filename FROM train t JOIN evaluation e ON t.sha256 = e.sha256
UNION ALL
SELECT t.uid, 'url', t.filename FROM train t JOIN evaluation e ON t.url = e.url;
