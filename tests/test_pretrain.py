"""`tic-train pretrain` (the original model), the conv-stem ViT it trains, and `tic-train run --init`."""
from __future__ import annotations

import csv
import json

import pytest
import torch

from training.models import ConvStem, RunError, create_model, read_checkpoint, tic_extras

QUIET = lambda *a, **k: None  # noqa: E731


def test_tic_pico_is_a_vit_with_a_conv_stem_that_anytimecl_accepts():
    from training.anytime.model import SplitCLIP

    model, _, _, tokenizer = create_model("tic-pico", "cpu")
    assert tic_extras("tic-pico") == {"conv_stem": True} and tic_extras("tic-tiny") == {}
    assert isinstance(model.visual.conv1, ConvStem)
    images = torch.randn(2, 3, 32, 32)
    # the stem ends on the patch grid, so the tokens and the tower's output keep their shapes
    assert model.visual.conv1(images).shape == (2, 128, 4, 4)
    assert SplitCLIP(model).tokens(images).shape == (2, 1 + 16, 128)
    assert model(images, tokenizer(["a cat", "a dog"]))["image_features"].shape == (2, 128)
    assert not isinstance(create_model("tic-tiny", "cpu")[0].visual.conv1, ConvStem)
    with pytest.raises(RunError, match="power of two"):
        ConvStem(64, 6)


def test_open_clip_main_refuses_a_model_it_would_build_without_its_stem():
    from training.open_clip_main import main

    with pytest.raises(SystemExit, match="only tic-train builds"):
        main(["--model", "tic-pico", "--train-data", "x.tar"])


@pytest.fixture(scope="module")
def pretrained(shards_dir, tmp_path_factory):
    from training.pretrain import PretrainConfig, pretrain

    cfg = PretrainConfig(data=str(shards_dir), out=str(tmp_path_factory.mktemp("pretrain") / "run"),
                         budget_samples=256, batch_size=32, eval_every=128, warmup=2, workers=0)
    return cfg, pretrain(cfg, log=QUIET)


def test_pretrain_writes_the_original_and_its_accuracy_against_time(pretrained):
    from training.pretrain import CURVE_COLUMNS, pretrain

    cfg, metrics = pretrained
    out = __import__("pathlib").Path(cfg.out)
    _, state, named = read_checkpoint(out / "original.pt")
    assert named == "tic-pico" and any(k.startswith("visual.conv1.net.") for k in state)
    rows = list(csv.DictReader((out / "curve.csv").open()))
    assert tuple(rows[0]) == CURVE_COLUMNS
    assert [int(r["samples"]) for r in rows] == [128, 256] == [r["samples"] for r in metrics["curve"]]
    for r in rows:  # every column filled: the test world has static, Net and retrieval sets
        assert all(r[c] != "" for c in CURVE_COLUMNS), r
        assert 0 <= float(r["static"]) <= 100 and float(r["cpu_seconds"]) > 0
    assert float(rows[1]["train_seconds"]) >= float(rows[0]["train_seconds"])
    assert metrics["iterations"] == cfg.iterations == 8
    # a finished run with the same config is not redone
    said = []
    assert pretrain(cfg, log=said.append) == json.loads((out / "metrics.json").read_text())
    assert said == [f"[tic-train pretrain] {out} is already done"]


def test_run_init_starts_from_the_original_and_refuses_another_model(pretrained, shards_dir, tmp_path):
    from training.config import TrainConfig
    from training.trainer import run as train

    cfg, _ = pretrained
    original = f"{cfg.out}/original.pt"
    base = dict(data=str(shards_dir), method="sequential", pool="basic", max_steps=1, budget_samples=64,
                batch_size=32, warmup=1, workers=0, checkpoint_every=0, init=original)
    with pytest.raises(RunError, match="a checkpoint of model 'tic-pico', not 'tic-tiny'"):
        train(TrainConfig(out=str(tmp_path / "tiny"), model="tic-tiny", **base), log=QUIET)
    # a vanishing lr: the step's checkpoint must hold the original's weights (the warm start, nothing else)
    train(TrainConfig(out=str(tmp_path / "warm"), model="tic-pico", lr=1e-9, **base), log=QUIET)
    _, after, _ = read_checkpoint(next((tmp_path / "warm" / "checkpoints").glob("step_*.pt")))
    _, before, _ = read_checkpoint(original)
    weights = [k for k, v in before.items() if v.is_floating_point() and "running_" not in k]
    assert weights and all(torch.allclose(before[k], after[k], rtol=0, atol=1e-6) for k in weights)
    fresh = create_model("tic-pico", "cpu")[0].state_dict()  # (which a random start would not)
    assert not all(torch.allclose(before[k], fresh[k], rtol=0, atol=1e-6) for k in weights)


def test_pretrain_on_chosen_steps_reads_only_their_shards(shards_dir, tmp_path, monkeypatch):
    """`steps_filter`: an original for a warm-started experiment sees the first step only."""
    from training import pretrain as pretrain_module
    from training.data import find_steps
    from training.pretrain import PretrainConfig

    first = find_steps(shards_dir, "unfiltered")[0]
    read = []

    class Recording(pretrain_module.BufferStream):
        def __init__(self, shards, *a, **k):
            read.extend(shards)
            super().__init__(shards, *a, **k)

    cfg = PretrainConfig(data=str(shards_dir), out=str(tmp_path / "first"), budget_samples=64, batch_size=32,
                         eval_every=0, warmup=1, workers=0, steps_filter=[first.label])
    said = []
    monkeypatch.setattr(pretrain_module, "BufferStream", Recording)
    pretrain_module.pretrain(cfg, log=said.append)
    assert read == list(first.shards) and "on 1 steps of unfiltered" in said[0]
    assert json.loads((tmp_path / "first" / "config.json").read_text())["steps_filter"] == [first.label]
    assert pretrain_module.pretrain(cfg, log=QUIET)["iterations"] == 2  # resumed as done, same config
    with pytest.raises(Exception, match="schedule"):
        PretrainConfig(data=".", out=".", schedule="linear")
