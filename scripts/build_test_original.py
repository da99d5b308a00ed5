"""Build the tests' small original model: tests/fixtures/original/ (issue 26).

The AnytimeCL end-to-end test needs an open-vocabulary original that is clearly above chance on the sample
web's concepts; training one takes tens of CPU-minutes, so it is trained once here and stored as a fixture:

    scripts/demo.sh                                       # (or any tic-shards output of the sample web)
    python scripts/build_test_original.py demo-out/shards [--run DIR]   (DIR: reuse a finished pretrain run of the same config)

Writes, into tests/fixtures/original/:
  original.pt     the `tic-train pretrain` checkpoint with its float tensors in float16 (the fixture is kept
                  under 10 MB; loading casts them back to the model's float32)
  model.json      a copy of the model config it was trained with (the test refuses a drifted config)
  original.json   provenance: the pretrain config, its curve, the final evaluation and original.pt's sha256
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import shutil
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ticcore.outputs import atomic_file, write_json  # noqa: E402
from training.models import MODEL_CONFIGS  # noqa: E402
from training.pretrain import PretrainConfig, pretrain  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "original"
MAX_BYTES = 10 << 20


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", help="a tic-shards output of the sample web")
    ap.add_argument("--pool", default="unfiltered")
    ap.add_argument("--budget-samples", type=int, default=PretrainConfig.budget_samples)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--eval-every", type=int, default=PretrainConfig.eval_every)
    ap.add_argument("--world", default="scripts/demo.sh's world (DEMO_PAIRS=50000, seed 0, --image-size 64)",
                    help="how DATA was made (recorded in original.json)")
    ap.add_argument("--run", default=None, help="the pretrain run directory (default: a temporary one)")
    args = ap.parse_args(argv)
    cfg = PretrainConfig(data=args.data, out=args.run or tempfile.mkdtemp(prefix="test-original-") + "/run",
                         pool=args.pool, budget_samples=args.budget_samples, threads=args.threads, workers=0,
                         eval_every=args.eval_every)
    metrics = pretrain(cfg)
    ckpt = torch.load(Path(cfg.out) / "original.pt", map_location="cpu", weights_only=False)
    ckpt["model"] = {k: v.half() if v.is_floating_point() else v for k, v in ckpt["model"].items()}
    FIXTURE.mkdir(parents=True, exist_ok=True)
    with atomic_file(FIXTURE / "original.pt") as tmp:
        torch.save(ckpt, tmp)
    size = (FIXTURE / "original.pt").stat().st_size
    if size > MAX_BYTES:
        sys.exit(f"{FIXTURE / 'original.pt'}: {size} bytes, over the fixture limit of {MAX_BYTES}")
    shutil.copyfile(MODEL_CONFIGS / f"{cfg.model}.json", FIXTURE / "model.json")
    write_json(FIXTURE / "original.json", {
        "sha256": hashlib.sha256((FIXTURE / "original.pt").read_bytes()).hexdigest(),
        "bytes": size, "world": args.world, "pretrain": {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("data", "out")},
        "curve": metrics["curve"], "train_seconds": metrics["train_seconds"],
        "cpu_seconds": metrics["cpu_seconds"]})
    print(f"{FIXTURE}: original.pt ({size / 2**20:.1f} MiB), final {metrics['curve'][-1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
