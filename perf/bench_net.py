"""TiC-DataComp-Net construction speed (issue 6): captions/s per core on >= 100k captions, and the
share of the time spent in lemma matching and in sentence encoding. One process, CPU time.

    python perf/bench_net.py --captions 100000
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.lemmas import imagenet_index, synset_candidates  # noqa: E402
from benchmarks.sentence import encode, load_model  # noqa: E402
from benchmarks.splits import definition_embeddings  # noqa: E402
from sample_web.captions import make_captions  # noqa: E402
from sample_web.vocabulary import ALL_CONCEPTS, COLORS, LANGUAGES, SCENES  # noqa: E402


def cpu() -> float:
    t = os.times()
    return t.user + t.system


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--captions", type=int, default=100_000)
    p.add_argument("--threads", type=int, default=1, help="torch threads for the sentence model")
    args = p.parse_args()
    rng = np.random.default_rng(0)
    n = args.captions
    langs = [c for c, _, _ in LANGUAGES]
    lp = np.array([q for _, q, _ in LANGUAGES])
    caps = make_captions(rng, rng.integers(len(ALL_CONCEPTS), size=n), rng.integers(len(COLORS), size=n),
                         rng.integers(len(SCENES), size=n), [langs[i] for i in rng.choice(len(langs), n, p=lp / lp.sum())],
                         np.zeros(n, bool), ["Site"] * n)
    texts = [" ".join(t.split()) for t in caps.text]
    index = imagenet_index()
    load_model(None, args.threads)
    definitions = definition_embeddings(None)

    c0 = cpu()
    judged = [synset_candidates(index.find(t)) for t in texts]
    t_lemma = cpu() - c0
    todo = [(t, ids) for t, (status, ids, _) in zip(texts, judged) if status in ("one", "ambiguous")]
    c0 = cpu()
    emb = encode([t[:1000] for t, _ in todo], None, threads=args.threads)
    t_encode = cpu() - c0
    c0 = cpu()
    kept = sum(float(np.max(definitions[list(ids)] @ e)) > 0.5 for (_, ids), e in zip(todo, emb))
    t_sim = cpu() - c0
    total = t_lemma + t_encode + t_sim
    print(f"Net construction, {n:,} captions ({len(todo):,} name one synset, {kept:,} pass the similarity check):")
    print(f"  {n / total:,.0f} captions/s/core overall ({total:.1f} s CPU, torch threads={args.threads})")
    print(f"  lemma matching  {t_lemma:6.1f} s = {t_lemma / total:5.1%}  ({n / t_lemma:,.0f} captions/s)")
    print(f"  encoding        {t_encode:6.1f} s = {t_encode / total:5.1%}  ({len(todo) / t_encode:,.0f} captions/s)")
    print(f"  similarity      {t_sim:6.1f} s = {t_sim / total:5.1%}")


if __name__ == "__main__":
    main()
