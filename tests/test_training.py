"""tic-train (issue 8): metrics, buffers, MAC accounting, schedules, and short runs on the test world's
shards (outputs, resume, DDP on CPU, bad input)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from ticcore.errors import UserError
from training.budget import BudgetError, Ledger, Plan, measure_flops
from training.buffers import allocate, compose_buffer, equal_shares, exp_shares
from training.config import TrainConfig
from training.methods import METHODS
from training.metrics import read_matrix_csv, summarize, write_matrix_csv
from training.trainer import RunError, lr_at, run

from .conftest import REPO

QUIET = lambda *_: None  # noqa: E731


# ------------------------------------------------------------------ metrics

def test_matrix_summaries_on_a_hand_made_matrix():
    E = [[10, 2, 1],
         [8, 12, 3],
         [6, 9, 14]]
    m = summarize(E)
    assert m["in_domain"] == pytest.approx(12.0)
    assert m["backward"] == pytest.approx((8 + 6 + 9) / 3)
    assert m["forward"] == pytest.approx((2 + 1 + 3) / 3)
    assert m["backward_rel"] == pytest.approx(((8 - 10) + (6 - 10) + (9 - 12)) / 3)
    assert m["forward_rel"] == pytest.approx(((2 - 10) + (1 - 10) + (3 - 12)) / 3)
    assert np.isnan(summarize([[5.0]])["backward"])


def test_metrics_command_reads_a_csv(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("50,40\n45,55\n")
    out = subprocess.run([sys.executable, "-m", "training.cli", "metrics", str(path)], capture_output=True, text=True,
                         cwd=REPO)
    got = json.loads(out.stdout)
    assert got == {"in_domain": 52.5, "backward": 45.0, "forward": 40.0, "backward_rel": -5.0, "forward_rel": -10.0}
    write_matrix_csv(tmp_path / "w.csv", [[1, 2], [3, 4]])
    assert read_matrix_csv(tmp_path / "w.csv").tolist() == [[1, 2], [3, 4]]


# ------------------------------------------------------------------ buffers

def test_exp_and_equal_buffers_have_the_specified_shares():
    assert exp_shares(3) == pytest.approx([1 / 7, 2 / 7, 4 / 7])  # halving per step back
    assert equal_shares(4) == [0.25] * 4
    steps = [[f"s{k}-{i:04d}" for i in range(1000)] for k in range(4)]
    labels = ["a", "b", "c", "d"]
    for method, shares in (("cumulative-exp", exp_shares(3)), ("cumulative-equal", equal_shares(3))):
        buf = compose_buffer(METHODS[method].buffer, steps, labels, 3)
        assert len(buf) == 2000  # 2D: D new + D old
        counts = [sum(1 for _, s in buf if s == label) for label in labels]
        assert counts[3] == 1000
        assert counts[:3] == allocate(1000, shares, [1000] * 3)
        assert all(abs(c - 1000 * w) <= 1 for c, w in zip(counts[:3], shares))
        assert buf == compose_buffer(METHODS[method].buffer, steps, labels, 3)  # a fixed list
    assert len(compose_buffer(METHODS["cumulative-all"].buffer, steps, labels, 3)) == 4000
    assert len(compose_buffer(METHODS["sequential"].buffer, steps, labels, 3)) == 1000
    assert allocate(100, [0.5, 0.5], [10, 1000]) == [10, 90]  # a small step gives what it has


# ------------------------------------------------------------------ MACs and budgets

def test_mac_accounting_matches_the_analytic_count_of_a_linear_layer():
    layer = torch.nn.Linear(64, 32, bias=False)
    x = torch.randn(8, 64, requires_grad=True)
    flops = measure_flops(lambda: layer(x).sum().backward())
    # forward 2*B*in*out, backward: input grad and weight grad, 2*B*in*out each
    assert flops == 6 * 8 * 64 * 32
    plan = Plan.from_budget(macs_per_sample=1000.0, batch_size=10, steps=4, budget_samples=4000)
    assert plan.iterations_per_step == 100 and plan.per_step_macs == pytest.approx(1e6)
    with pytest.raises(BudgetError, match="too small for one batch"):
        Plan.from_budget(macs_per_sample=1000.0, batch_size=10, steps=4, budget_samples=30)
    ledger = Ledger(per_step_budget=100.0)
    ledger.spend("s", "training", 101.0)
    with pytest.raises(BudgetError, match="over its budget"):
        ledger.check("s", "sequential", over_budget_allowed=False)
    ledger.check("s", "oracle", over_budget_allowed=True)


def test_schedule_shapes():
    lrs = [lr_at(i, 100, 1.0, 10, "cosine") for i in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(b <= a + 1e-12 for a, b in zip(lrs[10:], lrs[11:])) and lrs[-1] < 0.01
    flat = [lr_at(i, 100, 1.0, 0, "const-cosine") for i in range(100)]
    assert all(v == 1.0 for v in flat[:80]) and flat[99] < 0.01 and flat[90] < 1.0
    assert lr_at(0, 100, 1.0, 0, "cosine") == pytest.approx(1.0)  # later steps: no warm-up, same max LR


# ------------------------------------------------------------------ runs on the test world

def _cfg(shards_dir, out, **kw) -> TrainConfig:
    base = dict(data=str(shards_dir), out=str(out), method="sequential", pool="unfiltered", budget_samples=192,
                batch_size=16, warmup=2, workers=0, max_steps=2, deterministic=True, checkpoint_every=2,
                eval_batch_size=64)
    base.update(kw)
    return TrainConfig(**base)


def test_a_run_writes_its_outputs(shards_dir, tmp_path):
    cfg = _cfg(shards_dir, tmp_path / "run", method="cumulative-exp", max_steps=3, budget_samples=288)
    m = run(cfg, log=QUIET)
    out = tmp_path / "run"
    for name in ("config.json", "metrics.json", "ledger.json", "matrix_retrieval.csv", "heatmap_retrieval.png",
                 "matrix_net.csv", "buffers/step_2016.parquet", "checkpoints/step_2018.pt"):
        assert (out / name).exists(), name
    E = read_matrix_csv(out / "matrix_retrieval.csv")
    assert E.shape == (3, 3) and np.isfinite(E).all()
    assert set(m["tasks"]["retrieval"]) >= {"in_domain", "backward", "forward", "backward_rel", "forward_rel"}
    assert m["total_macs"] <= m["per_step_budget_macs"] * 3 * (1 + 1e-9)
    assert json.loads((out / "config.json").read_text()) == cfg.to_json()
    import pyarrow.parquet as pq

    buf = pq.read_table(out / "buffers" / "step_2018.parquet").to_pandas()
    new = (buf.source_step == "2018").sum()
    assert (buf.source_step != "2018").sum() == min(new, (buf.source_step != "2018").sum()) and len(buf) <= 2 * new
    from ticcore import sqlfiles

    for name in sqlfiles.load("sql/training.sql"):
        assert sqlfiles.run("sql/training.sql", name, root=str(out)).fetchall(), name
    shares = sqlfiles.run("sql/training.sql", "buffer_composition", root=str(out)).fetchall()
    assert {(r[1], r[2]): r[3] for r in shares}[("2018", "2018")] == new
    report = subprocess.run([sys.executable, "-m", "training.cli", "report", str(out), "--out", str(tmp_path / "r.md")],
                            capture_output=True, text=True, cwd=REPO)
    assert report.returncode == 0 and "| cumulative-exp |" in (tmp_path / "r.md").read_text()


def test_over_budget_methods_are_marked_and_patching_picks_an_alpha(shards_dir, tmp_path):
    oracle = run(_cfg(shards_dir, tmp_path / "oracle", method="oracle"), log=QUIET)
    assert oracle["over_budget"] and oracle["total_macs"] == pytest.approx(3 * oracle["per_step_budget_macs"], rel=0.05)
    lwf = run(_cfg(shards_dir, tmp_path / "lwf", method="lwf"), log=QUIET)
    items = {e["item"] for e in json.loads((tmp_path / "lwf" / "ledger.json").read_text())}
    assert "lwf teacher forward" in items and lwf["over_budget"]
    run(_cfg(shards_dir, tmp_path / "patch", method="patching"), log=QUIET)
    run(_cfg(shards_dir, tmp_path / "ewc", method="ewc", ewc_batches=2), log=QUIET)
    items = {e["item"] for e in json.loads((tmp_path / "ewc" / "ledger.json").read_text())}
    assert "ewc fisher" in items


def test_a_killed_run_resumes_to_the_same_matrix(shards_dir, tmp_path):
    straight = run(_cfg(shards_dir, tmp_path / "straight", budget_samples=256), log=QUIET)
    out = tmp_path / "killed"
    cfg = _cfg(shards_dir, out, budget_samples=256)
    code = (f"import sys; sys.path.insert(0, {str(REPO)!r}); from training.config import TrainConfig;"
            f"from training.trainer import run; run(TrainConfig(**{cfg.to_json()!r}), log=lambda *a: None)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and not (out / "checkpoints" / "partial.pt").exists():
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (out / "checkpoints" / "partial.pt").exists()
    resumed = run(cfg, log=QUIET)
    np.testing.assert_allclose(resumed["tasks"]["retrieval"]["matrix"], straight["tasks"]["retrieval"]["matrix"], atol=1e-6)
    np.testing.assert_allclose(resumed["tasks"]["net"]["matrix"], straight["tasks"]["net"]["matrix"], atol=1e-6)


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(shards_dir, tmp_path):
    single = run(_cfg(shards_dir, tmp_path / "one", max_steps=1, budget_samples=64, checkpoint_every=0), log=QUIET)
    args = ["run", "--data", str(shards_dir), "--out", str(tmp_path / "two"), "--method", "sequential",
            "--pool", "unfiltered", "--budget-samples", "64", "--batch-size", "16", "--warmup", "2", "--workers", "0",
            "--max-steps", "1", "--deterministic", "--checkpoint-every", "0", "--eval-batch-size", "64"]
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
                          "29517", "-m", "training.cli", *args], capture_output=True, text=True, cwd=REPO, timeout=600,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr[-3000:]
    a = torch.load(tmp_path / "one" / "checkpoints" / "step_2016.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "two" / "checkpoints" / "step_2016.pt", weights_only=False)["model"]
    for k in a:
        assert torch.allclose(a[k], b[k], atol=2e-4, rtol=1e-3), k


def test_bad_input_gets_one_line_errors(shards_dir, tmp_path, capsys):
    from types import SimpleNamespace

    from training.cli import main

    def cli(*args):  # in-process (a subprocess pays ~6 s of imports per call); the first one is a real process
        capsys.readouterr()
        code = main(["run", *map(str, args)])
        return SimpleNamespace(returncode=code, stderr=capsys.readouterr().err)

    common = ["--data", shards_dir, "--pool", "unfiltered", "--batch-size", "16", "--workers", "0"]
    res = subprocess.run([sys.executable, "-m", "training.cli", "run", *map(str, common), "--out", str(tmp_path / "a"),
                          "--budget-samples", "100", "--steps-filter", "1999"], capture_output=True, text=True, cwd=REPO)
    assert res.returncode == 2 and "1999: missing step directory" in res.stderr
    res = cli(*common, "--out", tmp_path / "b", "--budget-samples", "20")
    assert res.returncode == 2 and "budget too small for one batch" in res.stderr
    res = cli(*common, "--out", tmp_path / "c", "--budget-samples", "100", "--pool", "nosuchpool")
    assert res.returncode == 2 and "nosuchpool" in res.stderr
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(shards_dir, broken)
    step = sorted((broken / "train" / "unfiltered").iterdir())[0]
    (step / "00000.tar").write_bytes(b"")
    res = cli("--data", broken, "--out", tmp_path / "d", "--pool", "unfiltered", "--budget-samples", "100",
              "--batch-size", "16")
    assert res.returncode == 2 and "empty shard" in res.stderr and "00000.tar" in res.stderr

    mismatched = tmp_path / "mismatched"
    shutil.copytree(shards_dir, mismatched)
    shutil.rmtree(mismatched / "eval" / "retrieval" / "2017")
    res = cli("--data", mismatched, "--out", tmp_path / "e", "--pool", "unfiltered", "--budget-samples", "100",
              "--batch-size", "16", "--max-steps", "2")
    assert res.returncode == 2 and "no evaluation year for step 2017" in res.stderr, res.stderr
    shutil.rmtree(mismatched)
    shutil.copytree(shards_dir, mismatched)
    doc = json.loads((mismatched / "net_classes.json").read_text())
    doc["classes"] = doc["classes"][:1]
    (mismatched / "net_classes.json").write_text(json.dumps(doc))
    res = cli("--data", mismatched, "--out", tmp_path / "f", "--pool", "unfiltered", "--budget-samples", "100",
              "--batch-size", "16", "--max-steps", "1")
    assert res.returncode == 2 and "are not in" in res.stderr and "net_classes.json" in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_a_checkpoint_of_another_model_is_refused(shards_dir, tmp_path):
    from training.models import create_model, load_weights

    model = create_model("tic-tiny", "cpu")[0]
    with pytest.raises(RunError, match="not 'tic-tiny'"):
        load_weights(model, {"model_name": "ViT-B-32", "model": {}}, Path("x.pt"), "tic-tiny")
    with pytest.raises(RunError, match="does not fit"):
        load_weights(model, {"model_name": "tic-tiny", "model": {"visual.conv1.weight": torch.zeros(1)}},
                     Path("x.pt"), "tic-tiny")
    run(_cfg(shards_dir, tmp_path / "r", max_steps=1), log=QUIET)
    with pytest.raises(UserError, match="another config"):
        run(_cfg(shards_dir, tmp_path / "r", max_steps=1, lr=0.5), log=QUIET)


# ------------------------------------------------------------------ the method table, errors, steps

def test_the_shipped_experiment_configs_load_and_differ_only_where_they_say():
    """training/configs/*.yaml are what scripts/experiment.sh runs: each must load as a TrainConfig, and
    the 4x one is the 1x one at four times the per-step budget over its first four steps, and the 8x one
    the 4x one at twice its budget."""
    configs = {p.stem: TrainConfig.from_yaml(str(p), {"data": "d", "out": "o"})
               for p in sorted((REPO / "training" / "configs").glob("*.yaml"))}
    assert {"sample-world", "sample-world-4x", "sample-world-8x"} <= set(configs)
    one, four = configs["sample-world"].to_json(), configs["sample-world-4x"].to_json()
    eight = configs["sample-world-8x"].to_json()
    assert {k for k in one if one[k] != four[k]} == {"budget_samples", "max_steps"}
    assert four["budget_samples"] / four["max_steps"] == 4 * one["budget_samples"] / 7  # the 7 demo steps
    assert {k for k in four if four[k] != eight[k]} == {"budget_samples"}
    assert eight["budget_samples"] == 2 * four["budget_samples"]


def test_methods_are_one_table():
    from training import config, methods

    assert config.METHODS == tuple(methods.METHODS)
    assert {m for m, r in METHODS.items() if r.over_budget} == {"oracle", "lwf", "ewc"}
    assert {m for m, r in METHODS.items() if r.restart} == {"restart", "oracle"}
    assert [METHODS["oracle"].budgets(t) for t in range(3)] == [1, 2, 3]
    assert TrainConfig(data="d", out="o", method="lwf", budget_samples=1).over_budget
    # no method is tested by name outside the table
    for path in (REPO / "training").rglob("*.py"):
        if path.name != "methods.py":
            text = path.read_text()
            assert "method ==" not in text and "method in (" not in text, path


def test_every_training_error_is_a_user_error():
    from training.anytime.model import CheckpointError
    from training.anytime.replay import ReplayStoreError
    from training.anytime.run import AnytimeError
    from training.anytime.stream import StreamError
    from training.data import DataError

    for cls in (BudgetError, DataError, RunError, CheckpointError, ReplayStoreError, AnytimeError, StreamError):
        assert issubclass(cls, UserError), cls
    with pytest.raises(UserError, match="--method must be one of"):
        TrainConfig(data="d", out="o", method="nosuch", budget_samples=1)


def test_eval_years_go_to_their_steps_by_the_step_map(shards_dir, tmp_path):
    """The trainer reads the year -> step map tic-shards wrote; a missing map is a one-line error."""
    from training.cli import main

    doc = json.loads((shards_dir / "steps.json").read_text())
    assert doc["year_to_step"]["2014"] == doc["steps"][0]
    data = tmp_path / "no-map"
    data.mkdir()
    for name in ("train", "eval"):
        (data / name).symlink_to(shards_dir / name)
    assert main(["run", "--data", str(data), "--out", str(tmp_path / "r"), "--pool", "unfiltered",
                 "--budget-samples", "64", "--batch-size", "16"]) == 2


def test_embed_writes_the_checkpoints_image_embeddings(shards_dir, tmp_path, capsys):
    import io
    import tarfile

    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    from training.cli import main
    from training.models import create_model

    torch.manual_seed(0)
    model, _, preprocess, _ = create_model("tic-tiny", "cpu")
    ckpt = tmp_path / "step_2016.pt"
    torch.save({"step": "2016", "model": model.state_dict(), "model_name": "tic-tiny"}, ckpt)
    pool = shards_dir / "train" / "unfiltered"
    images = {}
    for tar in sorted(pool.rglob("*.tar")):
        with tarfile.open(tar) as tf:
            images.update({m.name[:-4]: tf.extractfile(m).read() for m in tf if m.name.endswith(".jpg")})
    wanted = sorted(images)[::7]
    pq.write_table(pa.table({"uid": wanted[::-1]}), tmp_path / "uids.parquet")
    out = tmp_path / "emb"
    args = ["embed", "--checkpoint", str(ckpt), "--data", str(shards_dir), "--pool", "unfiltered", "--out", str(out)]
    assert main([*args, "--uids", str(tmp_path / "uids.parquet")]) == 0
    uids = pq.read_table(out / "00000.parquet").column("uid").to_pylist()
    vectors = np.load(out / "00000.npz")["image"]
    assert uids == wanted and vectors.dtype == np.float32 and vectors.shape[0] == len(wanted)
    model.eval()
    with torch.no_grad():
        x = torch.stack([preprocess(Image.open(io.BytesIO(images[u])).convert("RGB")) for u in wanted])
        expected = torch.nn.functional.normalize(model.encode_image(x).float(), dim=-1).numpy()
    np.testing.assert_allclose(vectors, expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert json.loads((out / "stats.json").read_text()) == {
        "tool": "tic-train embed", "model_name": "tic-tiny", "checkpoint": str(ckpt), "samples": len(wanted)}

    torch.save(model.state_dict(), tmp_path / "bare.pt")
    torch.save({"model": {}, "model_name": "tic-tiny"}, tmp_path / "empty.pt")
    for ckpt_path, pool_name, message in ((tmp_path / "bare.pt", "unfiltered", "not a tic-train checkpoint"),
                                          (tmp_path / "empty.pt", "unfiltered", "does not fit"),
                                          (ckpt, "nosuchpool", "no shards")):
        capsys.readouterr()
        assert main(["embed", "--checkpoint", str(ckpt_path), "--data", str(shards_dir), "--pool", pool_name,
                     "--out", str(tmp_path / "bad")]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "bad").exists()


def test_an_experiment_over_two_seeds_reports_each_methods_mean_and_spread(shards_dir, tmp_path):
    from training.cli import main

    cfg = tmp_path / "exp.yaml"
    cfg.write_text("pool: unfiltered\nbatch_size: 16\nwarmup: 2\nworkers: 0\nmax_steps: 2\ndeterministic: true\n"
                   "checkpoint_every: 0\neval_batch_size: 64\n")
    out = tmp_path / "exp"
    assert main(["experiment", "--data", str(shards_dir), "--out", str(out), "--config", str(cfg),
                 "--budget-samples", "192", "--methods", "sequential", "--seeds", "0", "1"]) == 0
    runs = [out / f"seed-{s}" / "sequential" for s in (0, 1)]
    assert [json.loads((r / "config.json").read_text())["seed"] for r in runs] == [0, 1]
    backward = [json.loads((r / "metrics.json").read_text())["tasks"]["retrieval"]["backward"] for r in runs]
    report = (out / "report.md").read_text()
    row = next(line for line in report.splitlines() if line.startswith("| sequential (2 seeds)"))
    cell = row.split(" | ")[3]  # Retrieval backward: "mean (spread)"
    assert cell == f"{np.mean(backward):.2f} ({max(backward) - min(backward):.2f})"
    assert "## sequential, seed 0" in report and "## sequential, seed 1" in report
    # --seed and --seeds together: one line, exit 2, nothing run
    assert main(["experiment", "--data", str(shards_dir), "--out", str(tmp_path / "x"), "--seed", "0",
                 "--seeds", "1"]) == 2 and not (tmp_path / "x").exists()
