"""AnytimeCL update latency and replay memory (issue 10).

Times `learn_one` (the whole per-example update: class-balanced replay draw, decompression, forward and
backward through the tuned last block, optimiser step, compression and storing of the new example) with
a batch of 32, on a warm replay memory, for compressed and raw replay side by side; and the compressed
round trip's relative error. Target: median update < 50 ms on CPU with the tiny model.

    python perf/bench_anytime.py --checkpoint RUN/checkpoints/step_2016.pt
    python perf/bench_anytime.py --checkpoint CKPT --model ViT-B-16 --device cuda   (on a GPU)
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.anytime.model import SplitCLIP  # noqa: E402
from training.anytime.replay import Codec, ReplayStore  # noqa: E402
from training.anytime.run import AnytimeConfig, Predictor, learn_one, load_original, make_optimizer  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--model", default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--labels", type=int, default=100)
    ap.add_argument("--memory", type=int, default=2000, help="examples in the warm memory")
    ap.add_argument("--updates", type=int, default=300)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave the default)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cfg0 = AnytimeConfig(data="-", checkpoint=args.checkpoint, out="-", model=args.model, batch_size=args.batch_size)
    clip, preprocess, _, name, _ = load_original(cfg0, device)
    size = clip.visual.image_size if isinstance(clip.visual.image_size, int) else clip.visual.image_size[0]
    g = torch.Generator().manual_seed(0)
    images = torch.rand(64, 3, size, size, generator=g).to(device)
    print(f"model {name}, device {device}, torch threads {torch.get_num_threads()}, batch {args.batch_size}")
    for kind in ("compressed", "raw"):
        cfg = AnytimeConfig(data="-", checkpoint=args.checkpoint, out="-", model=args.model, batch_size=args.batch_size,
                            replay=kind)
        split = SplitCLIP(clip).to(device)
        tokens = split.tokens(images)
        text = torch.nn.functional.normalize(torch.randn(args.labels, split.clip.text_projection.shape[1], generator=g), dim=-1).to(device)
        predictor = Predictor(split, text, list(range(args.labels)), cfg)
        store = ReplayStore(Codec(kind, cfg.pca_k, cfg.quant_bits), args.memory + args.updates)
        rng = np.random.default_rng(0)
        for i in range(args.memory):  # a warm memory
            x = tokens[i % 64:i % 64 + 1]
            store.add(store.codec.encode(x, split.cls_attention(x)), i % args.labels, rng)
        optimizer = make_optimizer(list(split.tuned_block.parameters()) + [split.other_bias], cfg)
        seen = set(range(args.labels))
        times = []
        for i in range(args.updates):
            x = tokens[i % 64:i % 64 + 1]
            t0 = time.perf_counter()
            learn_one(split, optimizer, store, predictor, text, x, i % args.labels, seen, cfg, rng)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(1000 * (time.perf_counter() - t0))
        steady = times[20:]
        x = tokens[:16]
        back = store.codec.decode(store.codec.encode(x, split.cls_attention(x))).to(device)
        rel = float(((back - x) ** 2).sum() / (x ** 2).sum())
        print(f"{kind:10s} update ms: median {statistics.median(steady):6.2f}  p95 {np.percentile(steady, 95):6.2f}  "
              f"mean {statistics.fmean(steady):6.2f}   bytes/example {store.bytes_per_example():6d} "
              f"(float32 {x.shape[1] * x.shape[2] * 4})   relative squared error {rel:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
