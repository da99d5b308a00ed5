"""Per-year evaluation splits and leakage-free training pools: Spark DataFrame functions.

- Retrieval (TiC-DataComp-Retrieval): per year, an IID holdout of the evaluation-source pool;
  each seed takes a fixed-size subset of it. Domain subsets get holdouts of their own: COVID
  (the caption contains "covid") and Flickr (the URL's host is a Flickr host).
- Net (TiC-DataComp-Net, after LAIONet): captions naming exactly one ImageNet-1K synset (an
  Aho-Corasick lemma index), the basic size and caption rules, and a sentence-embedding check
  of the caption against the synset's "lemmas: definition" (> 0.5). A lemma shared by several
  synsets (crane, the bird and the machine) counts as one synset, chosen by that similarity.
- Leakage: every evaluation pair is removed from every training pool, matched on uid, on
  sha256 and on url.

Sampling ranks rows by a hash of (uid, seed), so a split does not depend on partitioning and
a rerun with the same seeds gives the same pairs.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from benchmarks.lemmas import imagenet_index, synset_candidates
from benchmarks.sentence import encode
from ticcore.imagenet import load_imagenet_classes
from ticcore.schemas import NET_CANDIDATES_DDL, NET_CAPTION_SIMILARITY, NET_SIMILARITY

FLICKR_HOSTS = ("flickr.com", "staticflickr.com")
SUBSETS = ("all", "covid", "flickr")


@dataclass(frozen=True)
class SplitConfig:
    eval_size: int = 4000           # pairs per year and seed
    seeds: int = 3
    holdout_factor: float = 1.25     # holdout = eval_size x this, so seeds differ
    max_holdout_fraction: float = 0.1   # never hold out more of a year than this
    subset_fraction: float = 0.5     # COVID/Flickr holdouts may take this share of their rows
    net_max_per_year: int = 4000
    net_max_fraction: float = 0.1
    min_similarity: float = 0.5
    sentence_model: str | None = None
    sentence_precision: str = "auto"  # the captions' encoding (benchmarks/sentence.py); fp32 is the reference
    seed: int = 0
    subsets: tuple = SUBSETS         # retrieval subsets (YFCC and RedCaps have only "all")

    @property
    def holdout_size(self) -> int:
        return int(round(self.eval_size * self.holdout_factor))


# ------------------------------------------------------------------ helpers

def is_flickr_host(url_col) -> "F.Column":
    host = F.lower(F.expr(f"parse_url({url_col}, 'HOST')"))
    return F.coalesce(F.array_contains(F.array(*[F.lit(h) for h in FLICKR_HOSTS]), host)
                      | host.endswith(".flickr.com") | host.endswith(".staticflickr.com"), F.lit(False))


def is_covid(text_col) -> "F.Column":
    return F.coalesce(F.lower(F.col(text_col)).contains("covid"), F.lit(False))


def _hash_rank(partition_cols: list[str], salt: int) -> "F.Column":
    order = F.xxhash64(F.col("uid"), F.lit(salt))
    return F.row_number().over(Window.partitionBy(*partition_cols).orderBy(order, F.col("uid")))


def capped_sample(pool: DataFrame, size: int, max_fraction: float, salt: int, by: list[str]) -> DataFrame:
    """Per group of `by`: the first min(size, floor(max_fraction x group rows)) rows in hash order,
    with `_group_rows` and `_cap` recorded."""
    counts = pool.groupBy(*by).agg(F.count(F.lit(1)).alias("_group_rows"))
    cap = F.least(F.lit(size), F.floor(F.col("_group_rows") * F.lit(max_fraction)).cast("int"))
    return (pool.join(counts, by).withColumn("_cap", cap)
            .withColumn("_rank", _hash_rank(by, salt)).where(F.col("_rank") <= F.col("_cap")).drop("_rank"))


# ------------------------------------------------------------------ retrieval

def retrieval_holdout(pool: DataFrame, cfg: SplitConfig, year_col: str = "first_seen_year") -> DataFrame:
    """Rows of the retrieval evaluation: one row per (uid, subset), with the seeds whose subset holds it.

    Columns: the pool's columns plus year (from `year_col`: a step label where years are folded into
    steps), subset, holdout_size, seeds (array<int>).
    """
    pool = pool.withColumn("year", F.col(year_col).cast("int"))
    parts = []
    for i, subset in enumerate(SUBSETS):
        if subset not in cfg.subsets:
            continue
        rows = pool if subset == "all" else pool.where(is_covid("text") if subset == "covid" else is_flickr_host("url"))
        frac = cfg.max_holdout_fraction if subset == "all" else cfg.subset_fraction
        held = capped_sample(rows, cfg.holdout_size, frac, cfg.seed * 1000 + i, ["year"])
        held = held.withColumn("subset", F.lit(subset)).withColumnRenamed("_cap", "holdout_size")
        eval_n = F.least(F.lit(cfg.eval_size), F.col("holdout_size"))
        seeds = [F.when(_hash_rank(["year"], cfg.seed * 1000 + 100 * (i + 1) + s) <= eval_n, F.lit(s))
                 for s in range(cfg.seeds)]
        held = held.withColumn("seeds", F.filter(F.array(*seeds), lambda x: x.isNotNull()))
        parts.append(held.drop("_group_rows"))
    out = parts[0]
    for p in parts[1:]:
        out = out.unionByName(p)
    return out


def fraction_holdout(pool: DataFrame, fraction: float, seed: int, year_col: str = "first_seen_year") -> DataFrame:
    """Rows of a retrieval evaluation holding out ceil(fraction x rows) of each year (a step label where
    years are folded into steps), in hash order salted by `seed`, as one evaluation seed (0). This is
    sklearn's `train_test_split(test_size=fraction)` per step, the count computed as sklearn computes it,
    which is how apple/ml-tic-clip holds out TiC-YFCC's and TiC-RedCaps' evaluation
    (`dataset_creation/tic-{yfcc15m,redcaps}/create_splits.py`, unseeded there). Columns as
    `retrieval_holdout`'s, with subset "all"."""
    pool = pool.withColumn("year", F.col(year_col).cast("int"))
    counts = pool.groupBy("year").agg(F.count(F.lit(1)).alias("_group_rows"))
    size = F.ceil(F.col("_group_rows").cast("double") * F.lit(float(fraction))).cast("int")
    return (pool.join(counts, "year").withColumn("holdout_size", size)
            .withColumn("_rank", _hash_rank(["year"], seed * 1000)).where(F.col("_rank") <= F.col("holdout_size"))
            .drop("_rank", "_group_rows").withColumn("subset", F.lit("all")).withColumn("seeds", F.array(F.lit(0))))


def holdout_sizes(retrieval: DataFrame, by_subset: bool = True) -> dict:
    """{year: {subset: {"holdout": rows held out, "seeds": {seed: pairs}}}} of `retrieval_holdout`'s rows
    (without the subset level when `by_subset` is False: sources that hold only "all")."""
    keys = ["year", "subset"] if by_subset else ["year"]
    sizes: dict = {}
    for r in (retrieval.select(*keys, "holdout_size", F.explode("seeds").alias("seed"))
              .groupBy(*keys, "holdout_size", "seed").count().collect()):
        entry = sizes.setdefault(str(r["year"]), {})
        if by_subset:
            entry = entry.setdefault(r["subset"], {})
        entry.setdefault("holdout", r["holdout_size"])
        entry.setdefault("seeds", {})[str(r["seed"])] = r["count"]
    return sizes


# ------------------------------------------------------------------ Net

NET_REASONS = ("no_text", "no_latin_text", "no_lemma", "multiple_classes", "failed_basic_rules",
               "low_similarity", "over_year_cap")
HUGE_CAPTION = 1000  # characters; longer captions are encoded from their first 1000


def _net_candidates_udf(batches):
    latin = re.compile(r"[A-Za-z]")
    index = imagenet_index()
    for pdf in batches:
        reasons, ids, lemmas = [], [], []
        w = pd.to_numeric(pdf["original_width"], errors="coerce").to_numpy(float)
        h = pd.to_numeric(pdf["original_height"], errors="coerce").to_numpy(float)
        for text, wi, hi in zip(pdf["text"], w, h):
            if not isinstance(text, str) or not text.strip():
                reasons.append("no_text"), ids.append(None), lemmas.append(None)
                continue
            if not latin.search(text):
                reasons.append("no_latin_text"), ids.append(None), lemmas.append(None)
                continue
            status, class_ids, lemma = synset_candidates(index.find(text))
            if status == "none":
                reasons.append("no_lemma"), ids.append(None), lemmas.append(None)
                continue
            if status == "multiple":
                reasons.append("multiple_classes"), ids.append(list(class_ids)), lemmas.append(lemma)
                continue
            ok_size = np.isfinite(wi) and np.isfinite(hi) and min(wi, hi) >= 200
            ok_caption = len(text.split()) >= 2 and len(text) >= 5
            reasons.append(None if ok_size and ok_caption else "failed_basic_rules")
            ids.append(list(class_ids))
            lemmas.append(lemma)
        yield pd.DataFrame({"uid": pdf["uid"], "net_reason": reasons, "class_ids": ids, "lemma": lemmas,
                            "huge_caption": pdf["text"].fillna("").str.len() > HUGE_CAPTION})


def net_candidates(pool: DataFrame) -> DataFrame:
    """Per pool row: `net_reason` (None = goes on to the similarity check), candidate class ids, lemma."""
    return pool.select("uid", "text", "original_width", "original_height").mapInPandas(
        _net_candidates_udf, NET_CANDIDATES_DDL)


def _definition_texts():
    return [", ".join(c.lemmas) + ": " + c.definition for c in load_imagenet_classes()]


def _net_similarity_udf(model_path, threads, definitions, precision):
    def run(batches):
        for pdf in batches:
            texts = [t[:HUGE_CAPTION] for t in pdf["text"].fillna("")]
            emb = encode(texts, model_path, threads=threads, precision=precision)
            best_ids, best_sims = [], []
            for e, ids in zip(emb, pdf["class_ids"]):
                ids = np.asarray(ids, np.int64)
                sims = definitions[ids] @ e
                j = int(np.argmax(sims))
                best_ids.append(int(ids[j]))
                best_sims.append(float(sims[j]))
            yield pd.DataFrame({"text": pdf["text"], "class_id": best_ids, "similarity": best_sims,
                                "ambiguous": [len(x) > 1 for x in pdf["class_ids"]]})
    return run


def definition_embeddings(model_path: str | None = None, class_ids=None):
    """The synset descriptions ("lemmas: definition") as a (1000, dim) matrix indexed by class id, encoded
    once (on the driver); with `class_ids`, only those rows are encoded and the others are left zero."""
    texts = _definition_texts()
    if class_ids is None:
        return encode(texts, model_path)
    ids = sorted({int(i) for i in class_ids})
    encoded = encode([texts[i] for i in ids], model_path)
    out = np.zeros((len(texts), encoded.shape[1]), np.float32)
    out[ids] = encoded
    return out


def candidate_class_ids(candidates: DataFrame) -> list[int]:
    """The class ids that surviving candidates can be matched to (the definitions the similarity needs)."""
    rows = (candidates.where(F.col("net_reason").isNull()).select(F.explode("class_ids").alias("class_id"))
            .distinct().collect())
    return sorted(int(r["class_id"]) for r in rows)


def net_similarity(candidates: DataFrame, pool: DataFrame, cfg: SplitConfig, definitions, threads: int = 1) -> DataFrame:
    """Similarity of each surviving candidate's caption to its best synset description; the model is
    loaded once per Python worker (and kept while the worker is reused), captions go in batches.
    The outcome depends on the caption alone (its class ids come from the caption too), so each distinct
    caption is encoded once and its outcome joined back to every uid that carries it."""
    rows = (candidates.where(F.col("net_reason").isNull()).select("uid", "class_ids")
            .join(pool.select("uid", "text"), "uid"))
    # sorted by length within partitions: an Arrow batch holds captions of similar length (sentence-transformers
    # sorts again within it), so encoder batches pad little; and a rerun makes the same batches
    distinct = (rows.groupBy("text").agg(F.first("class_ids").alias("class_ids"))
                .sortWithinPartitions(F.length("text"), "text"))
    scored = distinct.mapInPandas(_net_similarity_udf(cfg.sentence_model, threads, definitions, cfg.sentence_precision),
                                  NET_CAPTION_SIMILARITY.spark_ddl())
    return rows.select("uid", "text").join(scored, "text").select(*NET_SIMILARITY.names)


def net_rows(pool: DataFrame, candidates: DataFrame, sims: DataFrame, cfg: SplitConfig) -> tuple[DataFrame, DataFrame]:
    """(Net evaluation rows, every pool row with its Net outcome `net_reason`)."""
    classes = load_imagenet_classes()
    spark = pool.sparkSession
    names = spark.createDataFrame([(c.class_id, c.wnid) for c in classes], "class_id int, wnid string")
    judged = (candidates.join(sims, "uid", "left")
              .withColumn("net_reason", F.coalesce(
                  F.col("net_reason"),
                  F.when(F.col("similarity") <= F.lit(cfg.min_similarity), F.lit("low_similarity")))))
    passed = (pool.withColumn("year", F.col("first_seen_year").cast("int"))
              .join(judged.where(F.col("net_reason").isNull())
                    .select("uid", "class_id", "lemma", "similarity", "ambiguous"), "uid")
              .join(names, "class_id"))
    capped = capped_sample(passed, cfg.net_max_per_year, 1.0, cfg.seed * 1000 + 999, ["year"])
    # The fraction cap is against the whole year's pool, not just the candidates.
    year_rows = pool.groupBy(F.col("first_seen_year").cast("int").alias("year")).agg(F.count(F.lit(1)).alias("_pool"))
    capped = (capped.join(year_rows, "year")
              .withColumn("_rank2", _hash_rank(["year"], cfg.seed * 1000 + 998))
              .where(F.col("_rank2") <= F.floor(F.col("_pool") * F.lit(cfg.net_max_fraction)))
              .drop("_rank2", "_pool", "_group_rows", "_cap"))
    outcome = (judged.select("uid", "net_reason")
               .join(capped.select("uid", F.lit(True).alias("_in")), "uid", "left")
               .withColumn("net_reason", F.when(F.col("_in"), F.lit(None))
                           .otherwise(F.coalesce(F.col("net_reason"), F.lit("over_year_cap"))))
               .drop("_in"))
    return capped, outcome


# ------------------------------------------------------------------ leakage

LEAK_KEYS = ("uid", "sha256", "url")


def remove_leaks(train: DataFrame, evaluation: DataFrame) -> tuple[DataFrame, DataFrame]:
    """(train without any evaluation pair, per-row `leak_key` of what was removed), matching on
    uid, then sha256, then url; rows with a null key are not matched on it."""
    marked = train
    for key in LEAK_KEYS:
        keys = evaluation.select(F.col(key).alias(f"_e_{key}")).where(F.col(f"_e_{key}").isNotNull()).distinct()
        # Evaluation sets are small next to training pools: broadcast them, shuffle nothing.
        marked = (marked.join(F.broadcast(keys), marked[key] == keys[f"_e_{key}"], "left")
                  .withColumn(f"_hit_{key}", F.col(f"_e_{key}").isNotNull()).drop(f"_e_{key}"))
    leak_key = F.coalesce(*[F.when(F.col(f"_hit_{k}"), F.lit(k)) for k in LEAK_KEYS])
    marked = marked.withColumn("leak_key", leak_key).drop(*[f"_hit_{k}" for k in LEAK_KEYS])
    clean = marked.where(F.col("leak_key").isNull()).drop("leak_key")
    return clean, marked.where(F.col("leak_key").isNotNull()).select("uid", "leak_key")


def leakage(evaluation: DataFrame, train: DataFrame) -> DataFrame:
    """Training rows sharing a uid, sha256 or url with an evaluation row (empty when clean)."""
    hits = None
    for key in LEAK_KEYS:
        e = evaluation.select(F.col(key).alias("_k")).where(F.col("_k").isNotNull()).distinct()
        h = (train.join(F.broadcast(e), train[key] == e["_k"], "inner")
             .select("uid", F.lit(key).alias("key"), F.col(key).cast("string").alias("value")))
        hits = h if hits is None else hits.unionByName(h)
    return hits
