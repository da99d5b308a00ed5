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
    row = parse_yfcc_line(_yfcc(), NOW, recipe="ours")
    assert row["reason"] == "kept" and row["uid"] == "123"
    assert row["text"] == "A red kite. flying high over the hill"
    assert row["first_seen_month"] == "2011-03" and row["first_seen_year"] == 2011
    assert parse_yfcc_line(_yfcc(), NOW)["reason"] == "kept"  # the tic recipe: the same reasons
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
    assert clean_text("%3Ci%3Enice%3C%2Fi%3E+shot") == "nice shot"
    assert yfcc_caption("IMG_1234", "") == "IMG_1234"
    assert yfcc_caption("", "a dog") == "a dog"
    assert yfcc_caption("a dog", "a dog") == "a dog"
    assert yfcc_caption("Beach.", "sunset") == "Beach. sunset"


def test_redcaps_annotations_parse_with_every_drop_reason():
    ann = {"image_id": "ab1", "url": "http://i.redd.it/x.jpg", "caption": "my cat", "raw_caption": "[OC] My cat",
           "subreddit": "cats", "created_utc": 1500000000.0}
    row = parse_redcaps_annotation(ann, NOW, recipe="ours")
    assert row["reason"] == "kept" and row["text"] == "my cat" and row["first_seen_year"] == 2017
    assert parse_redcaps_annotation({**ann, "caption": "[deleted]"}, NOW, recipe="ours")["reason"] == "deleted_caption"
    assert parse_redcaps_annotation({**ann, "caption": "[removed]"}, NOW, recipe="ours")["reason"] == "deleted_caption"
    no_caption = {k: v for k, v in ann.items() if k != "caption"}
    assert parse_redcaps_annotation(no_caption, NOW, recipe="ours")["text"] == "[OC] My cat"
    assert parse_redcaps_annotation({**ann, "created_utc": None}, NOW, recipe="ours")["reason"] == "missing_timestamp"
    assert parse_redcaps_annotation({**ann, "created_utc": 0}, NOW, recipe="ours")["reason"] == "missing_timestamp"
    assert parse_redcaps_annotation({**ann, "created_utc": 2e9}, NOW, recipe="ours")["reason"] == "future_timestamp"
    assert parse_redcaps_annotation({**ann, "image_id": None}, NOW, recipe="ours")["reason"] == "malformed_line"


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
                                     str(sources / "yfcc" / "yfcc100m_subset_data.tsv"), eval_size=40, now=NOW,
                                     recipe="ours"), log=QUIET)
    redcaps = build(spark, SourceConfig(SOURCES["redcaps"], [str(sources / "redcaps" / "annotations")],
                                        str(out / "redcaps"), eval_size=40, now=NOW, recipe="ours"), log=QUIET)
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


# ------------------------------------------------------------------ issue 25: bugs in the parsing rules

def test_redcaps_captions_keep_the_usr_token():
    # RedCaps' cleaned captions stand `<usr>` in for user names (redcaps-dataset/redcaps-downloader);
    # they are not HTML, so nothing in them is a tag.
    ann = {"image_id": "ab1", "url": "http://i.redd.it/x.jpg", "caption": "a gift from <usr> for my cat",
           "subreddit": "cats", "created_utc": 1500000000.0}
    for recipe in ("tic", "ours"):
        assert parse_redcaps_annotation(ann, NOW, recipe, 2017)["text"] == "a gift from <usr> for my cat"


def test_an_empty_caption_is_no_caption_not_deleted():
    ann = {"image_id": "ab1", "url": "http://i.redd.it/x.jpg", "subreddit": "cats", "created_utc": 1500000000.0}
    for recipe in ("tic", "ours"):
        for caption, reason in (("", "no_caption"), ("   ", "no_caption"), ("[deleted]", "deleted_caption")):
            assert parse_redcaps_annotation({**ann, "caption": caption}, NOW, recipe, 2017)["reason"] == reason


def test_escaped_entities_in_yfcc_text_are_text_not_tags():
    # Flickr stores a typed "<" as "&lt;": it is what the author wrote, so it survives cleaning;
    # real tags (URL-encoded "<b>") are removed before entities are decoded.
    assert clean_text("I+%26lt%3B3+NY+%26gt%3B_%26lt%3B") == "I <3 NY >_<"
    assert clean_text("%26lt%3Bi%26gt%3Bnice%26lt%3B%2Fi%26gt%3B+shot") == "<i>nice</i> shot"
    assert clean_text("%3Cb%3Ebold%3C%2Fb%3E+%26amp%3Blt%3B") == "bold &lt;"  # decoded once, not twice


# ------------------------------------------------------------------ issue 25: the tic recipe (apple/ml-tic-clip)

def _utc(*ymd_hms) -> str:
    return str(int(dt.datetime(*ymd_hms, tzinfo=dt.timezone.utc).timestamp()))


def test_tic_yfcc_caption_is_title_description_usertags_cut_to_500():
    line = _yfcc(title="Red+kite", description="over+%3Cb%3Ethe%3C%2Fb%3E+hill+http%3A%2F%2Fx.org",
                 user_tags="bird,red+kite,wales")
    assert parse_yfcc_line(line, NOW)["text"] == "Red kite. over the hill http://x.org. bird,red kite,wales"
    assert parse_yfcc_line(_yfcc(title="", description="", user_tags="beach"), NOW)["text"] == "beach"
    assert parse_yfcc_line(_yfcc(title="", description="", user_tags=""), NOW)["reason"] == "no_caption"
    long = parse_yfcc_line(_yfcc(title="t", description="word+" * 300, user_tags="tag"), NOW)["text"]
    assert len(long) == 500 and long.startswith("t. word word")
    # mojibake is repaired as ftfy repairs it (ml-tic-clip's clean_text); URL-encoded UTF-8 decodes
    assert parse_yfcc_line(_yfcc(title="caf%C3%83%C2%A9", description="", user_tags=""), NOW)["text"] == "café"


def test_tic_yfcc_buckets_and_upload_time():
    from ticcore.steps import TIC_YFCC_STEP_ENDS, StepScheme

    scheme = StepScheme.with_ends(TIC_YFCC_STEP_ENDS)
    got = {y: scheme.label(None, y) for y in range(2004, 2016)}
    assert got == {2004: "2008", 2005: "2008", 2006: "2008", 2007: "2008", 2008: "2008", 2009: "2010",
                   2010: "2010", 2011: "2012", 2012: "2012", 2013: "2014", 2014: "2014", 2015: None}
    # date_uploaded is Unix seconds, read in UTC: the last second of 2008 is 2008, the next 2009
    assert parse_yfcc_line(_yfcc(date_uploaded=_utc(2008, 12, 31, 23, 59, 59)), NOW)["first_seen_year"] == 2008
    assert parse_yfcc_line(_yfcc(date_uploaded=_utc(2009, 1, 1)), NOW)["first_seen_month"] == "2009-01"
    row = parse_yfcc_line(_yfcc(date_uploaded=_utc(2016, 5, 1)), NOW)
    assert row["reason"] == "outside_recipe_years" and row["first_seen_year"] == 2016
    assert parse_yfcc_line(_yfcc(date_uploaded=_utc(2016, 5, 1)), NOW, recipe="ours")["reason"] == "kept"
    assert parse_yfcc_line(_yfcc(date_uploaded=_utc(2003, 5, 1)), NOW)["reason"] == "before_2004"


def test_tic_redcaps_year_is_the_file_names():
    from curation.sources import redcaps_file_year

    assert redcaps_file_year("/a/annotations/itookapicture_2019.json") == 2019
    assert redcaps_file_year("/a/annotations/notes.json") is None
    ann = {"image_id": "ab1", "url": "http://i.redd.it/x.jpg", "caption": "my cat", "subreddit": "cats",
           "created_utc": float(_utc(2018, 12, 31, 23, 0, 0))}
    row = parse_redcaps_annotation(ann, NOW, "tic", 2018)
    assert row["reason"] == "kept" and row["first_seen_year"] == 2018 and row["first_seen_month"] == "2018-12"
    # created_utc decides nothing: missing, or in another year, the record stays in its file's year
    for created in (None, 0, float(_utc(2019, 1, 1, 2, 0, 0))):
        row = parse_redcaps_annotation({**ann, "created_utc": created}, NOW, "tic", 2018)
        assert row["reason"] == "kept" and row["first_seen_year"] == 2018 and row["first_seen_month"] is None
    for year in (2016, 2021, None):
        row = parse_redcaps_annotation(ann, NOW, "tic", year)
        assert row["reason"] == "outside_recipe_years" and row["uid"] == "ab1"
    # the ours recipe: the year is created_utc's, whatever the file
    assert parse_redcaps_annotation(ann, NOW, "ours", 2016)["first_seen_year"] == 2018


# hand-made inputs: uploads per year, chosen so that 1% rounds up (ml-tic-clip's sklearn split), one tic
# bucket (2013-14) is empty, a 2015 upload lies outside the tic buckets, and the ours recipe's step 2012
# holds 5 pairs: 10% of it is 0 evaluation pairs
YFCC_YEARS = {2004: 60, 2008: 60, 2010: 150, 2011: 30, 2012: 5, 2015: 1}


def _yfcc_file(path: Path) -> Path:
    lines, n = [], 0
    for year, count in YFCC_YEARS.items():
        for i in range(count):
            n += 1
            lines.append(_yfcc(line_number=str(n), photo_id=str(5000 + n), date_uploaded=_utc(year, 6, 1 + i % 28),
                               title=f"photo+{n}", description="%26lt%3B3", user_tags="tag%2Ca,b",
                               download_url=f"http://farm1.staticflickr.com/1/{5000 + n}_x.jpg"))
    path.write_text("\n".join(lines) + "\n")
    return path


def _redcaps_dir(root: Path) -> Path:
    d = root / "annotations"
    d.mkdir(parents=True)
    n = 0
    for name, year, count in (("cats", 2016, 10), ("cats", 2017, 150), ("pics", 2018, 100), ("food", 2020, 50),
                              ("notes", None, 3)):
        anns = []
        for i in range(count):
            n += 1
            created = _utc((year or 2018) + (1 if i == 0 else 0), 3, 1)  # the first of each file: the next year
            anns.append({"image_id": f"rc{n:05d}", "url": f"http://i.redd.it/{n}.jpg", "caption": f"hi <usr> {n}",
                         "raw_caption": f"Hi @someone {n}", "subreddit": name, "created_utc": float(created)})
        fname = f"{name}_{year}.json" if year else f"{name}.json"
        (d / fname).write_text(json.dumps({"info": {"subreddit": name}, "annotations": anns}))
    return d


@pytest.fixture(scope="module")
def tic_built(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("tic")
    yfcc_in = _yfcc_file(root / "yfcc100m_dataset.tsv")
    redcaps_in = _redcaps_dir(root / "redcaps")
    logs = {"yfcc": [], "redcaps": [], "ours": []}
    stats = {
        "yfcc": build(spark, SourceConfig(SOURCES["yfcc"], [str(yfcc_in)], str(root / "out_yfcc"), now=NOW, seed=1),
                      log=logs["yfcc"].append),
        "redcaps": build(spark, SourceConfig(SOURCES["redcaps"], [str(redcaps_in)], str(root / "out_redcaps"),
                                             now=NOW), log=logs["redcaps"].append),
        "ours": build(spark, SourceConfig(SOURCES["yfcc"], [str(yfcc_in)], str(root / "out_ours"), now=NOW,
                                          eval_size=40, recipe="ours"), log=logs["ours"].append)}
    return root, stats, logs


def test_tic_yfcc_build_buckets_and_holds_out_one_percent_per_step(tic_built):
    from benchmarks.pools import split_step_scheme

    root, stats, logs = tic_built
    s = stats["yfcc"]
    assert s["recipe"] == "tic" and s["step_ends"] == [2008, 2010, 2012, 2014] and s["accounting"]["ok"]
    assert s["reasons"] == {"kept": 305, "outside_recipe_years": 1}
    assert {y: e["seeds"] for y, e in s["retrieval"].items()} == {"2008": {"0": 2}, "2010": {"0": 2}, "2012": {"0": 1}}
    assert s["train_rows_by_step"] == {"2008": 118, "2010": 148, "2012": 34}
    assert s["warnings"] == ["step 2014: no pairs, so no training data and no evaluation set"]
    train, ev, dropped = _outcomes(root / "out_yfcc", "yfcc15m")
    assert sorted(train.year.unique()) == [2004, 2008, 2010, 2011, 2012]  # train keeps the upload year
    assert sorted(ev.year.unique()) == [2008, 2010, 2012]                 # eval is labelled by its step
    assert set(dropped.reason) == {"outside_recipe_years"}
    rows = read_hive(root / "out_yfcc" / "train" / "yfcc15m")
    assert (rows.text == [f"photo {int(u) - 5000}. <3. tag,a,b" for u in rows.uid]).all()
    # reshard and tic-analyze read the buckets back from stats.json
    assert split_step_scheme(root / "out_yfcc").label(None, 2009) == "2010"
    # the draw is seeded: the same seed, the same evaluation pairs
    assert s["config"] == {"recipe": "tic", "eval_fraction": 0.01, "seeds": 1, "seed": 1}


def test_tic_redcaps_build_reads_the_recipe_files_by_their_year(tic_built):
    root, stats, logs = tic_built
    s = stats["redcaps"]
    assert s["reasons"] == {"kept": 300, "outside_recipe_years": 13} and s["accounting"]["ok"]
    assert s["train_rows_by_step"] == {"2017": 148, "2018": 99, "2020": 49}
    assert {y: e["seeds"]["0"] for y, e in s["retrieval"].items()} == {"2017": 2, "2018": 1, "2020": 1}
    assert s["warnings"] == ["step 2019: no pairs, so no training data and no evaluation set"]
    train, ev, dropped = _outcomes(root / "out_redcaps", "redcaps")
    assert sorted(train.year.unique()) == [2017, 2018, 2020]  # the file's year, although a post is from the next
    assert (dropped.reason == "outside_recipe_years").sum() == 13
    text = read_hive(root / "out_redcaps" / "train" / "redcaps").text
    assert text.str.contains("<usr>", regex=False).all()


def test_a_step_with_no_evaluation_pair_is_a_warning(tic_built):
    root, stats, logs = tic_built
    s = stats["ours"]
    assert s["recipe"] == "ours" and s["step_ends"] is None and s["step_start_year"] == 2011
    assert s["train_rows_by_step"]["2012"] == 5 and "2012" not in s["retrieval"]
    assert "retrieval 2012: 0 evaluation pairs (5 pairs in the step), no evaluation set" in s["warnings"]
    assert any("retrieval 2012: 0 evaluation pairs" in line for line in logs["ours"])


def test_recipe_flags_that_do_not_apply_are_one_line_errors(tmp_path, capsys):
    from benchmarks.source_cli import main_yfcc

    tsv = tmp_path / "y.tsv"
    tsv.write_text(_yfcc() + "\n")
    assert main_yfcc([str(tsv), str(tmp_path / "out"), "--eval-size", "10"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--eval-size: for --recipe ours" in err
    assert main_yfcc([str(tsv), str(tmp_path / "out"), "--recipe", "ours", "--eval-fraction", "0.05"]) == 2
    assert "--eval-fraction: for --recipe tic" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main_yfcc([str(tsv), str(tmp_path / "out"), "--eval-fraction", "0"])
    assert exc.value.code == 2


def test_the_docs_state_the_steps_the_code_makes():
    """README, ARCHITECTURE.md and tic-yfcc/tic-redcaps' help write each recipe's steps exactly as the
    step schemes make them (issue 25: they said 2008-2011 fold into 2011 while the code folds 2004-2011)."""
    import re

    import benchmarks.source_cli as cli

    docs = {name: re.sub(r"\s+", " ", text) for name, text in
            (("README.md", (REPO / "README.md").read_text()), ("ARCHITECTURE.md", (REPO / "ARCHITECTURE.md").read_text()),
             ("tic-yfcc --help", cli.__doc__))}
    for source in SOURCES.values():
        for recipe in ("tic", "ours"):
            steps = source.step_description(recipe)
            for name, text in docs.items():
                assert steps in text, f"{name} does not state {source.name} {recipe}'s steps: {steps}"
    assert all("2008-2011" not in text for text in docs.values())
