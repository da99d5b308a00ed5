"""tic-analyze: the distances, and the report on the test world's drifting steps."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from benchmarks import analysis as A
from benchmarks.analyze_cli import AnalysisError, AnalyzeConfig, analyze

QUIET = lambda *a, **k: None  # noqa: E731


def test_frechet_distance_matches_closed_forms():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 8))
    mu, cov = A.gaussian(x)
    assert A.frechet_distance(mu, cov, mu, cov) == pytest.approx(0, abs=1e-8)
    # a mean shift adds |d|^2; equal covariances cancel
    d = np.arange(8) / 10
    assert A.frechet_distance(mu + d, cov, mu, cov) == pytest.approx(float(d @ d), rel=1e-6)
    # diagonal covariances: sum (sqrt(a) - sqrt(b))^2
    a, b = np.diag(np.full(8, 4.0)), np.diag(np.full(8, 1.0))
    assert A.frechet_distance(np.zeros(8), a, np.zeros(8), b) == pytest.approx(8.0)
    # a rank-deficient covariance at 768 dimensions stays finite and real
    y = rng.normal(size=(300, 768)).astype(np.float32)
    g = A.gaussian(y)
    assert np.isfinite(A.frechet_distance(*g, *A.gaussian(y[::-1].copy() + 0.01)))


def test_tv_distance_and_top_categories():
    assert A.tv_distance({"a": 0.5, "b": 0.5}, {"a": 0.5, "b": 0.5}) == 0
    assert A.tv_distance({"a": 1.0}, {"b": 1.0}) == 1
    assert A.tv_distance({"a": 0.75, "b": 0.25}, {"a": 0.25, "b": 0.75}) == pytest.approx(0.5)
    cats = np.eye(6, dtype=np.float32)
    caps = np.array([[0.9, 0.1, 0.5, 0, 0.3, 0.2]], np.float32)
    assert A.top_categories(caps, cats, k=3).tolist() == [[0, 2, 4]]
    dist = A.category_distribution(np.array([[0, 2], [0, 1]]), list("abc"))
    assert dist == {"a": 0.5, "b": 0.25, "c": 0.25}


def test_embeddings_are_read_by_uid_under_either_key(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from benchmarks.analyze_cli import EMBED_KEY, METADATA_KEY, read_image_embeddings

    vec = np.eye(3, dtype=np.float32)
    pq.write_table(pa.table({"uid": ["a", "b", "c"]}), tmp_path / "00000.parquet")
    np.savez(tmp_path / "00000.npz", image=vec)  # what tic-train embed writes
    got = read_image_embeddings(tmp_path, {"a", "c", "z"}, EMBED_KEY)
    assert sorted(got) == ["a", "c"] and got["c"].tolist() == [0, 0, 1]
    with pytest.raises(AnalysisError, match="no 'l14_img' array"):
        read_image_embeddings(tmp_path, {"a"}, METADATA_KEY)


@pytest.fixture(scope="module")
def analyzed(splits, sample_web, tmp_path_factory):
    out_splits, _ = splits
    out = tmp_path_factory.mktemp("analysis") / "a"
    summary = analyze(AnalyzeConfig(out_splits, out, pool="unfiltered", per_step=400, embeddings=sample_web / "metadata"),
                      log=QUIET)
    return out, summary


def test_the_report_has_its_parts(analyzed):
    out, summary = analyzed
    for name in ("report.md", "shift.csv", "shift.json", "captions.parquet", "text_shift.png", "image_shift.png"):
        assert (out / name).is_file(), name
    steps = summary["steps"]
    assert steps == sorted(steps) and steps[0] == 2016 and len(summary["rows"]) == len(steps)
    caps = pd.read_parquet(out / "captions.parquet")
    assert caps.groupby("step").size().max() <= 400
    assert caps.top5.map(len).eq(5).all() and (caps.top1 == caps.top5.str[0]).all()
    shift = pd.read_csv(out / "shift.csv")
    assert list(shift.step) == steps and shift.text_tv_to_first.between(0, 1).all()
    report = (out / "report.md").read_text()
    for section in ("concept changes", "covid share by year", "caption lengths", "top domains"):
        assert f"## {section}" in report
    assert "](text_shift.png)" in report and "](image_shift.png)" in report
    assert "| rising |" in report and "| falling |" in report
    assert json.loads((out / "shift.json").read_text())["categories"] > 100


def test_distances_rise_with_drift_and_stay_low_between_halves(analyzed):
    _, summary = analyzed
    rows = summary["rows"]
    text = [r["text_tv_to_first"] for r in rows]
    image = [r["image_fd_to_first"] for r in rows]
    # the first row compares two halves of one step: the noise floor; the last step is far above it
    assert image[-1] > 2 * image[0] and text[-1] > text[0] + 0.05
    # and the distances grow with time away from the first step. With 100-220 sampled rows a step, one
    # step's image distance moves by about +-0.015 between worlds (seen: 0.78-0.9 for this correlation),
    # so the trend is checked twice: a correlation clearly above noise, and later steps above earlier ones.
    assert np.corrcoef(range(len(rows)), image)[0, 1] > 0.7
    assert np.mean(image[-2:]) > np.mean(image[1:3])
    assert np.corrcoef(range(len(rows)), text)[0, 1] > 0.6


def test_bad_input_is_refused(tmp_path):
    with pytest.raises(AnalysisError, match="not found"):
        analyze(AnalyzeConfig(tmp_path / "nope", tmp_path / "out"), log=QUIET)
    (tmp_path / "empty").mkdir()
    with pytest.raises(AnalysisError, match="no train/ pools"):
        analyze(AnalyzeConfig(tmp_path / "empty", tmp_path / "out"), log=QUIET)


def test_image_shift_from_a_tic_train_checkpoint_over_the_shards(splits, shards_dir, tmp_path):
    import torch

    from training.models import create_model

    model = create_model("tic-tiny", "cpu")[0]
    ckpt = tmp_path / "step.pt"
    torch.save({"model_name": "tic-tiny", "model": model.state_dict()}, ckpt)
    out_splits, _ = splits
    summary = analyze(AnalyzeConfig(out_splits, tmp_path / "a", pool="unfiltered", per_step=60, checkpoint=ckpt,
                                    shards=shards_dir), log=QUIET)
    assert all(r["images"] > 0 and np.isfinite(r["image_fd_to_first"]) for r in summary["rows"])
    assert "step.pt over" in summary["image_source"]
    torch.save({"model": model.state_dict()}, ckpt)
    with pytest.raises(AnalysisError, match="not a tic-train checkpoint"):
        analyze(AnalyzeConfig(out_splits, tmp_path / "b", pool="unfiltered", per_step=60, checkpoint=ckpt,
                              shards=shards_dir), log=QUIET)
