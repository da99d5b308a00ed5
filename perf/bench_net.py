"""TiC-DataComp-Net construction speed (issues 6 and 27): captions/s per core, the share of the time spent in
lemma matching and in sentence encoding, and the fast encodings against the reference side by side in one run,
with their agreement on the Net decision. One process, one torch thread, CPU time.

    python perf/bench_net.py --captions 100000          # captions drawn like the sample web's
    python perf/bench_net.py --world demo-out/world     # a sample web's pool: its Net candidates (the demo world)

Encodings, each timed on the same candidates:
  reference      fp32, every caption encoded (the path before issue 27; --sentence-precision fp32 minus the dedup)
  fp32 distinct  fp32, each distinct caption once (tic-splits build --sentence-precision fp32)
  bf16 distinct  bf16 transformer, float32 pooling, each distinct caption once (the default where the CPU has bf16)
A candidate agrees when both encodings keep it for the same class, or both drop it (similarity <= 0.5).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.lemmas import imagenet_index, synset_candidates  # noqa: E402
from benchmarks.sentence import encode, load_model, native_bf16  # noqa: E402
from benchmarks.splits import HUGE_CAPTION, SplitConfig, _net_candidates_udf, definition_embeddings  # noqa: E402
from sample_web.captions import make_captions  # noqa: E402
from sample_web.vocabulary import ALL_CONCEPTS, COLORS, LANGUAGES, SCENES  # noqa: E402

THRESHOLD = SplitConfig().min_similarity


def cpu() -> float:
    t = os.times()
    return t.user + t.system


def drawn_captions(n: int) -> list[str]:
    rng = np.random.default_rng(0)
    langs = [c for c, _, _ in LANGUAGES]
    lp = np.array([q for _, q, _ in LANGUAGES])
    caps = make_captions(rng, rng.integers(len(ALL_CONCEPTS), size=n), rng.integers(len(COLORS), size=n),
                         rng.integers(len(SCENES), size=n), [langs[i] for i in rng.choice(len(langs), n, p=lp / lp.sum())],
                         np.zeros(n, bool), ["Site"] * n)
    return [" ".join(t.split()) for t in caps.text]


def world_pool(world: Path) -> pd.DataFrame:
    cols = ["uid", "text", "original_width", "original_height"]
    return pd.concat([pd.read_parquet(f, columns=cols) for f in sorted((world / "metadata").glob("*.parquet"))],
                     ignore_index=True)


def decisions(todo, emb, definitions) -> tuple[np.ndarray, np.ndarray]:
    """(best class id, its similarity) per candidate, as benchmarks/splits.py decides them."""
    best_ids, best_sims = np.zeros(len(todo), np.int64), np.zeros(len(todo))
    for k, ((_, ids), e) in enumerate(zip(todo, emb)):
        ids = np.asarray(ids, np.int64)
        sims = definitions[ids] @ e
        j = int(np.argmax(sims))
        best_ids[k], best_sims[k] = ids[j], sims[j]
    return best_ids, best_sims


def agreement(ref, fast) -> tuple[float, int, float]:
    """(share of candidates with the same decision, disagreements, their largest |reference similarity - 0.5|)."""
    (rid, rsim), (fid, fsim) = ref, fast
    rkeep, fkeep = rsim > THRESHOLD, fsim > THRESHOLD
    same = (rkeep == fkeep) & (~rkeep | (rid == fid))
    gap = float(np.max(np.abs(rsim[~same] - THRESHOLD))) if (~same).any() else 0.0
    return float(same.mean()), int((~same).sum()), gap


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--captions", type=int, default=100_000, help="captions to draw (without --world)")
    p.add_argument("--world", type=Path, help="a tic-sample-web output: use its pool's Net candidates")
    p.add_argument("--threads", type=int, default=1, help="torch threads for the sentence model")
    args = p.parse_args()
    index = imagenet_index()
    if args.world:
        pool = world_pool(args.world)
        n = len(pool)
        c0 = cpu()
        cand = next(_net_candidates_udf([pool]))
        t_lemma = cpu() - c0
        keep = cand["net_reason"].isna().to_numpy()
        todo = list(zip(pool["text"][keep], cand["class_ids"][keep]))
        source = f"{args.world}: {n:,} pool rows"
    else:
        texts = drawn_captions(args.captions)
        n = len(texts)
        c0 = cpu()
        judged = [synset_candidates(index.find(t)) for t in texts]
        t_lemma = cpu() - c0
        todo = [(t, ids) for t, (status, ids, _) in zip(texts, judged) if status in ("one", "ambiguous")]
        source = f"{n:,} drawn captions"
    captions = [t[:HUGE_CAPTION] for t, _ in todo]
    definitions = definition_embeddings(None)
    for precision in ("fp32", "bf16"):
        load_model(None, args.threads, precision)

    runs = {}
    c0 = cpu()
    model = load_model(None, args.threads, "fp32")
    emb = model.encode(captions, batch_size=32, normalize_embeddings=True, convert_to_numpy=True,
                       show_progress_bar=False).astype(np.float32)
    runs["reference"] = (cpu() - c0, decisions(todo, emb, definitions))
    for name, precision in (("fp32 distinct", "fp32"), ("bf16 distinct", "bf16")):
        c0 = cpu()
        emb = encode(captions, None, threads=args.threads, precision=precision)
        runs[name] = (cpu() - c0, decisions(todo, emb, definitions))

    t_ref, ref = runs["reference"]
    print(f"Net construction, {source}: {len(todo):,} candidates reach the similarity check, "
          f"{len(set(captions)):,} distinct; {int((ref[1] > THRESHOLD).sum()):,} pass it (reference); "
          f"torch threads={args.threads}, native bf16: {native_bf16()}")
    print(f"  lemma matching {t_lemma:6.1f} s  ({n / t_lemma:,.0f} captions/s/core)")
    print(f"  {'encoding':14s} {'CPU s':>7s} {'cand/s/core':>12s} {'x ref':>6s} {'stage capt/s/core':>18s} "
          f"{'x ref':>6s} {'agree':>8s} {'disagree':>8s} {'max |sim-0.5|':>14s}")
    stage_ref = n / (t_lemma + t_ref)
    for name, (t, dec) in runs.items():
        share, bad, gap = agreement(ref, dec)
        stage = n / (t_lemma + t)
        print(f"  {name:14s} {t:7.1f} {len(todo) / t:12,.0f} {t_ref / t:6.2f} {stage:18,.0f} {stage / stage_ref:6.2f} "
              f"{share:8.4%} {bad:8d} {gap:14.4f}")


if __name__ == "__main__":
    main()
