-- What DataComp's pair rules find that the html5 rules do not (issue 23), from two tic-extract outputs.
-- Variables: metadata (a glob of the pool's parquet files), datacomp and html5 (candidates.parquet files
-- of tic-extract runs with --pair-rules datacomp, e.g. on the WAT files, and --pair-rules html5).
-- Shell:       tic-sql sql/pair_rules.sql --var metadata='world/metadata/*.parquet'
--                  --var datacomp=extract-wat/candidates.parquet --var html5=extract-html5/candidates.parquet
--                  --run pool_rows_by_pair_rules

-- name: pool_rows_by_pair_rules
-- Pool rows whose exact (url, text) each rule set found, and those only DataComp's rules find.
WITH pool AS (SELECT url, text FROM read_parquet(getvariable('metadata'))),
     datacomp AS (SELECT DISTINCT url, text FROM read_parquet(getvariable('datacomp'))),
     html5 AS (SELECT DISTINCT url, text FROM read_parquet(getvariable('html5'))),
     found AS (SELECT * FROM pool SEMI JOIN datacomp USING (url, text))
SELECT (SELECT count(*) FROM pool) AS pool_rows,
       (SELECT count(*) FROM found) AS found_by_datacomp_rules,
       (SELECT count(*) FROM pool SEMI JOIN html5 USING (url, text)) AS found_by_html5_rules,
       (SELECT count(*) FROM found ANTI JOIN html5 USING (url, text)) AS only_datacomp_rules_find;

-- name: rule_dependent_examples
-- A few pool rows that only DataComp's rules find, with what makes them rule-dependent.
WITH datacomp AS (SELECT DISTINCT url, text FROM read_parquet(getvariable('datacomp'))),
     html5 AS (SELECT DISTINCT url, text FROM read_parquet(getvariable('html5')))
SELECT url, text,
       url LIKE '%?' AS empty_query_url,
       text LIKE '%&%;%' AS has_character_reference,
       text <> trim(regexp_replace(text, '\s+', ' ', 'g')) AS has_odd_whitespace
FROM (SELECT url, text FROM read_parquet(getvariable('metadata')) SEMI JOIN datacomp USING (url, text))
     ANTI JOIN html5 USING (url, text)
ORDER BY url
LIMIT 10;
