"""TiC-YFCC and TiC-RedCaps: format parsing, bad input, step folding, splits, shard-stage compatibility."""
from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import pytest

from benchmarks.pools import default_start_year, read_hive, train_pools, url_list
from benchmarks.source_cli import SOURCES, SourceConfig, build
from benchmarks.splits import SplitConfig
from curation.sources import (YFCC_FIELDS, clean_text, parse_redcaps_annotation, parse_subset_ids,
                              parse_yfcc_line, yfcc_caption)

REPO = Path(__file__).resolve().parents[1]
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
QUIET = lambda *a, **k: None  # noqa: E731


def _yfcc(**over) -> str:
    f = {name: "" for name in YFCC_FIELDS}
    f.update(line_number="1", photo_id="123", date_uploaded="1300000000", title="A+red+kite",
             description="flying+%3Cb%3Ehigh%3C%2Fb%3E+over+http%3A%2F%2Fexample.com%2Fx+the+hill",
             download_url="http://farm1.staticflickr.com/1/123_abc.jpg", marker="0")
    f.update(over)
    return "\t".join(f[name] for name in YFCC_FIELDS)


def test_yfcc_lines_parse_with_every_drop_reason():
    row = parse_yfcc_line(_yfcc(), NOW)
    assert row["reason"] == "kept" and row["uid"] == "123"
    assert row["text"] == "A red kite. flying high over the hill"
    assert row["first_seen_month"] == "2011-03" and row["first_seen_year"] == 2011
    assert parse_yfcc_line("1\t123\tonly three", NOW)["reason"] == "malformed_line"
    assert parse_yfcc_line(_yfcc() + "\textra", NOW)["reason"] == "malformed_line"
    assert parse_yfcc_line(_yfcc(date_uploaded=""), NOW)["reason"] == "missing_timestamp"
    assert parse_yfcc_line(_yfcc(date_uploaded="0"), NOW)["reason"] == "missing_timestamp"
    assert parse_yfcc_line(_yfcc(date_uploaded="abc"), NOW)["reason"] == "missing_timestamp"
    assert parse_yfcc_line(_yfcc(date_uploaded="1950000000"), NOW)["reason"] == "future_timestamp"
    assert parse_yfcc_line(_yfcc(date_uploaded="900000000"), NOW)["reason"] == "before_2004"
    assert parse_yfcc_line(_yfcc(marker="1"), NOW)["reason"] == "video"
    assert parse_yfcc_line(_yfcc(title="", description=""), NOW)["reason"] == "no_caption"
    assert parse_yfcc_line(_yfcc(download_url=""), NOW)["reason"] == "no_url"


def test_caption_cleaning_is_as_documented():
    assert clean_text("caf%C3%A9+%26amp%3B+bar") == "café & bar"
    assert clean_text("see+www.x.com+now") == "see now"
    assert clean_text("&lt;i&gt;nice&lt;/i&gt;+shot") == "nice shot"
    assert yfcc_caption("IMG_1234", "") == "IMG_1234"
    assert yfcc_caption("", "a dog") == "a dog"
    assert yfcc_caption("a dog", "a dog") == "a dog"
    assert yfcc_caption("Beach.", "sunset") == "Beach. sunset"


def test_redcaps_annotations_parse_with_every_drop_reason():
    ann = {"image_id": "ab1", "url": "http://i.redd.it/x.jpg", "caption": "my cat", "raw_caption": "[OC] My cat",
           "subreddit": "cats", "created_utc": 1500000000.0}
    row = parse_redcaps_annotation(ann, NOW)
    assert row["reason"] == "kept" and row["text"] == "my cat" and row["first_seen_year"] == 2017
    assert parse_redcaps_annotation({**ann, "caption": "[deleted]"}, NOW)["reason"] == "deleted_caption"
    assert parse_redcaps_annotation({**ann, "caption": "[removed]"}, NOW)["reason"] == "deleted_caption"
    no_caption = {k: v for k, v in ann.items() if k != "caption"}
    assert parse_redcaps_annotation(no_caption, NOW)["text"] == "[OC] My cat"
    assert parse_redcaps_annotation({**ann, "created_utc": None}, NOW)["reason"] == "missing_timestamp"
    assert parse_redcaps_annotation({**ann, "created_utc": 0}, NOW)["reason"] == "missing_timestamp"
    assert parse_redcaps_annotation({**ann, "created_utc": 2e9}, NOW)["reason"] == "future_timestamp"
    assert parse_redcaps_annotation({**ann, "image_id": None}, NOW)["reason"] == "malformed_line"


def test_subset_list_reading_skips_the_header():
    assert parse_subset_ids(["line\tphotoid\thash\n", "1\t123\tab\n", "2\t456\tcd\n", "junk\n"]) == {"123", "456"}


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    from sample_web.sources import generate_sources

    root = tmp_path_factory.mktemp("sources") / "src"
    generate_sources(root, yfcc=2500, redcaps=2500, seed=3, log=QUIET)
    return root


@pytest.fixture(scope="module")
def built(spark, sources, tmp_path_factory):
    out = tmp_path_factory.mktemp("built")
    yfcc = build(spark, SourceConfig(SOURCES["yfcc"], [str(sources / "yfcc" / "yfcc100m_dataset.tsv")], str(out / "yfcc"),
                                     str(sources / "yfcc" / "yfcc100m_subset_data.tsv"), eval_size=40, now=NOW), log=QUIET)
    redcaps = build(spark, SourceConfig(SOURCES["redcaps"], [str(sources / "redcaps" / "annotations")],
                                        str(out / "redcaps"), eval_size=40, now=NOW), log=QUIET)
    assert yfcc["config"] == asdict(SplitConfig(eval_size=40, seeds=3, subsets=("all",)))
    return out, yfcc, redcaps


def _outcomes(out: Path, pool: str) -> pd.DataFrame:
    train = read_hive(out / "train" / pool)[["uid", "year"]].assign(where="train")
    ev = read_hive(out / "eval" / "retrieval")[["uid", "year"]].assign(where="eval")
    dropped = pd.read_parquet(out / "dropped")
    dropped["reason"] = dropped["reason"].astype(str)
    return train, ev, dropped


@pytest.mark.parametrize("name,pool,steps", [("yfcc", "yfcc15m", [2011, 2012, 2013, 2014]),
                                            ("redcaps", "redcaps", [2017, 2018, 2019, 2020])])
def test_every_record_is_accounted_for_against_the_truth(built, sources, name, pool, steps):
    out, *_ = built
    stats = json.loads((out / name / "stats.json").read_text())
    truth = pd.read_parquet(sources / name / "truth.parquet")
    train, ev, dropped = _outcomes(out / name, pool)
    assert stats["accounting"]["ok"]
    assert stats["accounting"]["records"] == len(truth) + (1 if name == "redcaps" else 0)
    # kept pairs are in exactly one of train / eval; dropped ones carry the reason the truth expects
    assert not set(train.uid) & set(ev.uid)
    kept = set(truth.uid[truth.expected_reason == "kept"])
    assert set(train.uid) | set(ev.uid) == kept
    got = dropped.dropna(subset=["uid"]).set_index("uid")["reason"]
    expected = truth.set_index("uid")["expected_reason"]
    assert (got == expected.loc[got.index]).all()
    malformed = (expected == "malformed_line").sum()  # a malformed line has no trustworthy uid
    assert len(got) == (expected != "kept").sum() - malformed
    assert (dropped.reason == "malformed_line").sum() == malformed
    if name == "redcaps":
        assert (dropped.reason == "malformed_file").sum() == 1
    # step folding: eval sets are per step, labelled by the step's latest year; train keeps true years
    assert sorted(ev.year.unique()) == steps
    assert train.year.min() < steps[0] and train.year.max() == steps[-1]
    assert stats["step_start_year"] == steps[0]
    assert sorted(int(s) for s in stats["train_rows_by_step"]) == steps
    per_seed = {y: min(e["seeds"].values()) for y, e in stats["retrieval"].items()}
    assert all(0 < n <= 40 for n in per_seed.values())


def test_the_shard_stage_takes_the_source_splits_as_they_are(built):
    out, *_ = built
    assert train_pools(out / "yfcc") == ["yfcc15m"] and default_start_year(out / "yfcc") == 2011
    assert train_pools(out / "redcaps") == ["redcaps"] and default_start_year(out / "redcaps") == 2017
    urls = url_list(out / "yfcc", [])
    assert urls.uid.is_unique and urls.url.str.contains("staticflickr.com").all() and urls.sha256.isna().all()


def test_bad_paths_get_one_line_errors(tmp_path):
    res = subprocess.run([sys.executable, "-m", "benchmarks.source_cli", "yfcc", str(tmp_path / "nope.tsv"),
                          str(tmp_path / "out"), "--master", "local[1]"], capture_output=True, text=True, cwd=REPO)
    assert res.returncode == 2 and "nope.tsv: not found" in res.stderr
    (tmp_path / "empty").mkdir()
    res = subprocess.run([sys.executable, "-m", "benchmarks.source_cli", "redcaps", str(tmp_path / "empty"),
                          str(tmp_path / "out"), "--master", "local[1]"], capture_output=True, text=True, cwd=REPO)
    assert res.returncode == 2 and "no .json annotation files" in res.stderr


def test_pictures_of_years_before_2014_render():
    from sample_web.images import ImageKey, render_image

    for year in (2004, 2008, 2011):
        for w, h in ((300, 225), (1000, 250)):
            assert render_image(ImageKey(0, year, 0, 0, 0, w, h)).size == (w, h)


def test_sample_sources_are_deterministic_and_rerun_is_a_no_op(sources, tmp_path):
    from sample_web.sources import generate_sources

    again = tmp_path / "again"
    generate_sources(again, yfcc=2500, redcaps=2500, seed=3, log=QUIET)
    files = sorted(p.relative_to(sources) for p in sources.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert all((sources / f).read_bytes() == (again / f).read_bytes() for f in files)
    said = []
    generate_sources(again, yfcc=2500, redcaps=2500, seed=3, log=said.append)
    assert "nothing to do" in said[0]
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "x").write_text("mine")
    with pytest.raises(ValueError, match="refusing"):
        generate_sources(tmp_path / "foreign", yfcc=10, redcaps=10, seed=3, log=QUIET)
