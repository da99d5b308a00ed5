"""Evaluation splits and leakage-free pools (issue 6): retrieval scoring, lemmas, WordNet, and the
tic-splits job on the sample web."""
from __future__ import annotations

import json
import shutil

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest

from benchmarks.cli import SplitsJob, build, check_leakage
from benchmarks.lemmas import imagenet_index, plural_forms, synset_candidates
from benchmarks.retrieval import average_over_seeds, retrieval_metrics
from benchmarks.splits import SplitConfig
from benchmarks.wordnet import subtree_class_ids
from ticcore import sqlfiles
from ticcore.imagenet import load_imagenet_classes
from ticcore.sparkio import InputError


# ------------------------------------------------------------------ retrieval scoring

def test_retrieval_metrics_on_hand_made_embeddings():
    img = np.eye(4, dtype=np.float32)
    txt = np.eye(4, dtype=np.float32)
    m = retrieval_metrics(img, txt)
    assert m["image_to_text_R@1"] == m["text_to_image_R@1"] == m["mean_R@1"] == 1.0
    txt_shifted = np.roll(txt, 1, axis=0)  # every caption belongs to the next image
    m = retrieval_metrics(img, txt_shifted)
    assert m["image_to_text_R@1"] == 0.0 and m["image_to_text_R@5"] == 1.0


def test_ties_count_as_their_expected_value_and_batches_do_not_matter():
    rng = np.random.default_rng(0)
    img = rng.standard_normal((50, 8)).astype(np.float32)
    txt = img + 0.5 * rng.standard_normal((50, 8)).astype(np.float32)
    img[10:20] = img[10]  # ten identical pictures: their true caption ties with nine others
    full = retrieval_metrics(img, txt, batch=1000)
    for b in (1, 7, 50):
        assert retrieval_metrics(img, txt, batch=b) == pytest.approx(full)
    same = np.ones((5, 3), np.float32)  # everything ties: recall@1 is exactly 1/5
    m = retrieval_metrics(same, same)
    assert m["image_to_text_R@1"] == pytest.approx(0.2) and m["text_to_image_R@5"] == pytest.approx(1.0)
    perm = rng.permutation(50)
    assert retrieval_metrics(img[perm], txt[perm]) == pytest.approx(full)  # order does not matter
    assert average_over_seeds([{"a": 1.0}, {"a": 0.0}]) == {"a": 0.5}


def test_retrieval_metrics_take_torch_tensors():
    import torch

    x = torch.eye(3)
    assert retrieval_metrics(x, x)["mean_R@1"] == 1.0


# ------------------------------------------------------------------ lemmas and WordNet

def test_lemma_index_matches_whole_phrases_plurals_and_resolves_ambiguity():
    idx = imagenet_index()
    assert synset_candidates(idx.find("Two Golden Retrievers on the beach"))[0] == "one"
    assert synset_candidates(idx.find("geese in the park"))[0] == "one"
    assert synset_candidates(idx.find("a catalog of things"))[0] == "none"  # "cat" inside a word
    status, ids, lemma = synset_candidates(idx.find("construction crane at night"))
    assert status == "ambiguous" and len(ids) == 2 and lemma == "crane"
    assert synset_candidates(idx.find("a tabby cat and a goldfish"))[0] == "multiple"
    assert {"mouse", "mice"} <= plural_forms("mouse") and "boxes" in plural_forms("box")


def test_motor_vehicle_subtree_comes_from_wordnet():
    classes = load_imagenet_classes()
    names = {classes[i].name for i in subtree_class_ids("motor_vehicle.n.01", classes)}
    assert {"sports car", "ambulance", "minivan", "jeep", "limousine", "moped", "tow truck"} <= names
    assert not names & {"school bus", "mountain bike", "airliner", "tabby", "steam locomotive"}
    assert len(subtree_class_ids("feline.n.01", classes)) >= 10  # any node works


# ------------------------------------------------------------------ the job on the sample web

from .conftest import SPLIT_CFG as CFG


def _df(path):
    df = pq.read_table(path).to_pandas()
    if "year" in df and str(df["year"].dtype) == "category":  # a hive partition column
        df["year"] = df["year"].astype(int)
    return df


def test_layout_and_seed_subsets(splits):
    out, stats = splits
    for part in ("eval/retrieval", "eval/net", "train/unfiltered", "train/basic", "train/bestpool"):
        years = sorted(p.name for p in (out / part).glob("year=*"))
        assert years, part
    ret = _df(out / "eval" / "retrieval")
    allsub = ret[ret.subset == "all"]
    for year, g in allsub.groupby("year"):
        hold = g.holdout_size.iloc[0]
        for s in range(CFG.seeds):
            n = g.seeds.apply(lambda x: s in list(x)).sum()
            assert n == min(CFG.eval_size, hold)
    assert stats["warnings"], "the small test world cannot fill 40 pairs a year: it must say so"
    assert all("fewer than" in w for w in stats["warnings"])


def test_covid_subset_only_from_2020_and_flickr_subset_on_flickr_hosts(splits):
    out, _ = splits
    ret = _df(out / "eval" / "retrieval")
    covid = ret[ret.subset == "covid"]
    assert len(covid) > 0 and covid.year.min() >= 2020
    assert covid.text.str.lower().str.contains("covid").all()
    flickr = ret[ret.subset == "flickr"]
    hosts = flickr.url.str.extract(r"^https?://([^/:]+)")[0].str.lower()
    assert len(flickr) > 0 and (hosts.str.endswith(".staticflickr.com") | hosts.str.endswith(".flickr.com")).all()


def test_net_rejects_off_sense_captions_and_keeps_true_ones(splits, sample_web):
    out, stats = splits
    net = _df(out / "eval" / "net")
    truth = duckdb.sql(f"select uid, concept_wnid, concept_kind from '{sample_web}/truth/*.parquet'").df()
    m = net.merge(truth, on="uid")
    assert len(m) == len(net) > 20
    precision = (m.wnid == m.concept_wnid).mean()
    assert precision > 0.85, precision
    assert (m.concept_kind == "off_sense").mean() < 0.05
    cands = _df(out / "net_candidates").merge(truth, on="uid")
    off = cands[cands.concept_kind == "off_sense"]
    true = cands[cands.concept_kind == "imagenet"]
    assert len(off) > 0 and (off.similarity > CFG.min_similarity).mean() < (true.similarity > CFG.min_similarity).mean()
    assert (net.similarity > CFG.min_similarity).all()
    assert stats["net"]["outcomes"]["low_similarity"] > 0
    assert stats["net"]["outcomes"]["no_latin_text"] > 0


def test_net_classes_json_has_prompts_and_the_subtree(splits):
    out, _ = splits
    doc = json.loads((out / "net_classes.json").read_text())
    assert len(doc["classes"]) == 1000 and "{}" in doc["templates"][0]
    assert doc["classes"][817]["prompts"][0].count("sports car") == 1
    assert 817 in doc["subtrees"]["motor_vehicle.n.01"]


def test_no_evaluation_pair_leaks_into_training(spark, splits):
    out, stats = splits
    assert check_leakage(spark, str(out)) == []
    assert stats["leakage_removed"]["unfiltered"]["uid"] > 0
    assert "sha256" in stats["leakage_removed"]["unfiltered"]  # planted re-posts of eval pictures
    rows = sqlfiles.run("sql/splits.sql", "leakage_check", root=str(out)).fetchall()
    assert rows == []


def test_check_leakage_names_a_planted_leak(spark, splits, tmp_path):
    out, _ = splits
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    evaluation = _df(copy / "eval" / "retrieval").iloc[:1].drop(columns=["subset", "seeds", "holdout_size"])
    leak_dir = copy / "train" / "basic" / "year=2099"
    leak_dir.mkdir()
    evaluation.drop(columns=["year"], errors="ignore").to_parquet(leak_dir / "leak.parquet")
    hits = check_leakage(spark, str(copy))
    assert hits and hits[0][1] == evaluation.uid.iloc[0]


def test_split_queries(splits):
    out, _ = splits
    for name in sqlfiles.load("sql/splits.sql"):
        sqlfiles.run("sql/splits.sql", name, root=str(out)).fetchall()
    sizes = sqlfiles.run("sql/splits.sql", "eval_sizes", root=str(out)).fetchall()
    assert any(r[1] == "covid" for r in sizes)


def test_rerun_gives_identical_splits(spark, sample_web, timestamps_out, filtered_pools, splits, tmp_path):
    out, _ = splits
    ts_dir, _ = timestamps_out
    again = tmp_path / "again"
    build(spark, SplitsJob(str(again), str(ts_dir), str(sample_web / "metadata"), str(filtered_pools), CFG),
          log=lambda *_: None)
    for part in ("eval/retrieval", "eval/net", "train/basic"):
        a = _df(out / part).sort_values(["uid"] + (["subset"] if "retrieval" in part else [])).reset_index(drop=True)
        b = _df(again / part).sort_values(["uid"] + (["subset"] if "retrieval" in part else [])).reset_index(drop=True)
        assert a.uid.tolist() == b.uid.tolist()
        if "retrieval" in part:
            assert [list(x) for x in a.seeds] == [list(x) for x in b.seeds]


def test_missing_sentence_model_is_named(spark, sample_web, timestamps_out, tmp_path):
    ts_dir, _ = timestamps_out
    cfg = SplitConfig(sentence_model=str(tmp_path / "no-model-here"))
    with pytest.raises(InputError, match="no-model-here"):
        build(spark, SplitsJob(str(tmp_path / "o"), str(ts_dir), str(sample_web / "metadata"), split=cfg),
              log=lambda *_: None)


def _hive(root, year, rows):
    import pandas as pd

    d = root / f"year={year}"
    d.mkdir(parents=True)
    pd.DataFrame(rows).to_parquet(d / "part-0.parquet")


def _pair(i):
    return {"uid": f"{i:032x}", "sha256": None, "url": f"http://farm1.staticflickr.com/{i}.jpg", "text": f"t {i}"}


def test_check_leakage_checks_a_source_output_and_every_pool_in_it(spark, tmp_path):
    """Issue 24, item 12: on a tic-yfcc output (eval/retrieval only, train/yfcc15m) the check crashed on
    the missing eval/net, and then only looked at unfiltered/basic/bestpool."""
    out = tmp_path / "yfcc"
    _hive(out / "eval" / "retrieval", 2012, [_pair(i) for i in range(3)])
    _hive(out / "train" / "yfcc15m", 2012, [_pair(i) for i in range(10, 20)])
    assert check_leakage(spark, str(out)) == []
    _hive(out / "train" / "yfcc15m", 2013, [_pair(1)])  # a planted leak
    hits = check_leakage(spark, str(out))
    assert {(pool, uid, key) for pool, uid, key, _ in hits} == {("yfcc15m", f"{1:032x}", "uid"),
                                                                 ("yfcc15m", f"{1:032x}", "url")}


def test_check_leakage_fails_on_missing_input(spark, tmp_path):
    import subprocess
    import sys

    from .conftest import REPO

    with pytest.raises(InputError, match="not found"):
        check_leakage(spark, str(tmp_path / "nope"))
    (tmp_path / "empty" / "train" / "basic").mkdir(parents=True)
    with pytest.raises(InputError, match="empty/eval: no evaluation set"):
        check_leakage(spark, str(tmp_path / "empty"))
    _hive(tmp_path / "empty" / "eval" / "retrieval", 2016, [_pair(1)])
    with pytest.raises(InputError, match="train/basic: no parquet file"):
        check_leakage(spark, str(tmp_path / "empty"))
    res = subprocess.run([sys.executable, "-m", "benchmarks.cli", "check-leakage", str(tmp_path / "nope")],
                         capture_output=True, text=True, cwd=REPO)
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "nope: not found" in res.stderr, res.stderr
    assert "no evaluation pair" not in res.stdout


def test_the_leakage_query_reads_every_evaluation_set(tmp_path):
    out = tmp_path / "yfcc"  # a tic-yfcc-style output: eval/retrieval only, pool yfcc15m
    _hive(out / "eval" / "retrieval", 2012, [_pair(i) for i in range(3)])
    _hive(out / "train" / "yfcc15m", 2012, [_pair(i) for i in range(10, 20)] + [_pair(2)])
    rows = sqlfiles.run("sql/splits.sql", "leakage_check", root=str(out)).fetchall()
    assert sorted(r[1] for r in rows) == ["uid", "url"] and {r[0] for r in rows} == {f"{2:032x}"}
    with pytest.raises(duckdb.IOException):
        sqlfiles.run("sql/splits.sql", "leakage_check", root=str(tmp_path / "nope")).fetchall()
