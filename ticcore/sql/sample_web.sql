-- Queries over a generated sample web (tic-sample-web --out ROOT).
-- duckdb CLI:  SET VARIABLE root = 'demo-out/world';  then any query below.
-- Python:      tic-sql sql/sample_web.sql --var root=demo-out/world --run pool_by_birth_year

-- name: pool_by_birth_year
-- Pool pairs per year they first appear on the sample web (ground truth), with the reference-CLIP
-- score and the shares of COVID captions, Flickr-hosted images, non-English captions, emerging concepts.
WITH truth AS (
    SELECT * FROM read_parquet(getvariable('root') || '/truth/*.parquet')
), meta AS (
    SELECT uid, clip_l14_similarity_score FROM read_parquet(getvariable('root') || '/metadata/*.parquet')
)
SELECT
    coalesce(CAST(year(t.first_seen_time) AS VARCHAR), 'never seen') AS first_seen_year,
    count(*) AS pairs,
    round(avg(m.clip_l14_similarity_score), 3) AS mean_l14_score,
    round(avg(CASE WHEN t.is_covid THEN 1 ELSE 0 END), 3) AS covid_share,
    round(avg(CASE WHEN t.is_flickr THEN 1 ELSE 0 END), 3) AS flickr_share,
    round(avg(CASE WHEN t.language <> 'en' THEN 1 ELSE 0 END), 3) AS non_english_share,
    round(avg(CASE WHEN t.concept_kind = 'emerging' THEN 1 ELSE 0 END), 3) AS emerging_concept_share
FROM truth t JOIN meta m USING (uid)
GROUP BY 1
ORDER BY 1;

-- name: crawl_overview
-- What the generator wrote, from world.json.
SELECT
    s.pairs, s.unseen_pairs, s.sightings, s.pages, s.warc_files, s.corrupt_members, s.duplicate_images,
    s.web_only_images, s.template_renders
FROM (SELECT stats AS s FROM read_json_auto(getvariable('root') || '/world.json'));

-- name: top_concepts_by_year
-- The five most frequent concepts of each first-seen year (ground truth).
WITH counted AS (
    SELECT year(first_seen_time) AS year, concept_key, count(*) AS pairs
    FROM read_parquet(getvariable('root') || '/truth/*.parquet')
    WHERE first_seen_time IS NOT NULL
    GROUP BY ALL
), ranked AS (
    SELECT *, row_number() OVER (PARTITION BY year ORDER BY pairs DESC, concept_key) AS rank FROM counted
)
SELECT year, string_agg(concept_key || ' (' || pairs || ')', ', ' ORDER BY rank) AS top_concepts
FROM ranked WHERE rank <= 5 GROUP BY year ORDER BY year;

-- name: download_outcomes
-- How the image server will answer each pool URL (chosen by the world, recorded in the truth).
SELECT download_status, count(*) AS urls, round(count(*) / sum(count(*)) OVER (), 4) AS share
FROM read_parquet(getvariable('root') || '/truth/*.parquet')
GROUP BY 1 ORDER BY 2 DESC;
