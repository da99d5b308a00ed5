-- Tables of the distribution-shift report (tic-analyze). Variables: root = the analysis output
-- (captions.parquet: the sampled rows with step, n_words, domain, top1, top5), splits = the
-- tic-splits / tic-yfcc / tic-redcaps output, pool = its training pool.
-- duckdb CLI:  SET VARIABLE root = 'demo-out/analysis'; SET VARIABLE splits = 'demo-out/splits'; SET VARIABLE pool = 'basic';

-- name: rows_per_year
-- Training rows per year in the whole pool (before sampling).
SELECT year, count(*) AS rows
FROM read_parquet(getvariable('splits') || '/train/' || getvariable('pool') || '/[!._]*/*.parquet', hive_partitioning = true)
GROUP BY year ORDER BY year;

-- name: caption_lengths
-- Caption length in words per step (sampled rows): quartiles and mean.
SELECT step, count(*) AS captions, quantile_cont(n_words, 0.25) AS q25, median(n_words) AS median,
       quantile_cont(n_words, 0.75) AS q75, round(avg(n_words), 2) AS mean
FROM read_parquet(getvariable('root') || '/captions.parquet')
GROUP BY step ORDER BY step;

-- name: top_domains
-- The five most common image hosts per step, with their share of the step's sampled rows.
WITH d AS (
    SELECT step, domain, count(*) AS n, count(*) / sum(count(*)) OVER (PARTITION BY step) AS share
    FROM read_parquet(getvariable('root') || '/captions.parquet')
    GROUP BY step, domain
), ranked AS (
    SELECT *, row_number() OVER (PARTITION BY step ORDER BY n DESC, domain) AS rank FROM d
)
SELECT step, rank, domain, n, round(share, 4) AS share FROM ranked WHERE rank <= 5 ORDER BY step, rank;

-- name: covid_share_by_year
-- Share of captions mentioning COVID per year (whole pool).
SELECT year, count(*) AS rows, count(*) FILTER (WHERE lower(text) LIKE '%covid%') AS covid,
       round(count(*) FILTER (WHERE lower(text) LIKE '%covid%') / count(*), 5) AS covid_share
FROM read_parquet(getvariable('splits') || '/train/' || getvariable('pool') || '/[!._]*/*.parquet', hive_partitioning = true)
GROUP BY year ORDER BY year;

-- name: concept_changes
-- Per step, the five noun categories (top-1 per caption) whose share rose most, and the five whose share
-- fell most, since the previous step.
WITH shares AS (
    SELECT step, top1 AS concept, count(*) / sum(count(*)) OVER (PARTITION BY step) AS share
    FROM read_parquet(getvariable('root') || '/captions.parquet') GROUP BY step, top1
), grid AS (
    SELECT s.step, c.concept, coalesce(sh.share, 0) AS share
    FROM (SELECT DISTINCT step FROM shares) s CROSS JOIN (SELECT DISTINCT concept FROM shares) c
    LEFT JOIN shares sh ON sh.step = s.step AND sh.concept = c.concept
), change AS (
    SELECT step, concept, share, share - lag(share) OVER (PARTITION BY concept ORDER BY step) AS delta FROM grid
), ranked AS (
    SELECT *, row_number() OVER (PARTITION BY step ORDER BY delta DESC, concept) AS rise,
              row_number() OVER (PARTITION BY step ORDER BY delta ASC, concept) AS fall
    FROM change WHERE delta IS NOT NULL
)
SELECT step, CASE WHEN rise <= 5 THEN 'rising' ELSE 'falling' END AS direction,
       CASE WHEN rise <= 5 THEN rise ELSE fall END AS rank, concept, round(share, 4) AS share, round(delta, 4) AS delta
FROM ranked WHERE rise <= 5 OR fall <= 5
ORDER BY step, direction DESC, rank;
