"""`tic-analyze`: how much the data drifts between time steps (the paper's appendix C.6, as a tool).

    tic-analyze SPLITS OUT [--pool basic] [--embeddings METADATA_DIR | --checkpoint CKPT --shards SHARDS]
                [--per-step 3000] [--start-year Y] [--sentence-model DIR]

SPLITS is a tic-splits, tic-yfcc or tic-redcaps output. Each step (years before the first step fold
into it, as for the shards) is sampled (`--per-step` rows, by uid hash) and measured against the
first step:
- image shift: Fréchet distance of image embeddings (the DataComp-style `l14_img` of METADATA_DIR,
  or a tic-train / open_clip checkpoint run over the SHARDS images);
- text shift: total-variation distance of the top-5 WordNet noun category distributions
  (MiniLM by default);
Distances depend on sample size, so each step's half 1 is compared with the first step's half 0
(random halves by uid hash); the first step's own row is then the noise floor.
OUT gets `captions.parquet` (the sampled rows with their categories), `shift.csv`, PNG plots and
`report.md`, whose tables come from `sql/analysis.sql` (rising/falling concepts, COVID share per
year, caption lengths, top domains, counts).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from ticcore.outputs import swap_into_place

TOOL = "tic-analyze"


class AnalysisError(ValueError):
    pass


def _hash_order(uids) -> np.ndarray:
    import hashlib

    return np.array([int.from_bytes(hashlib.blake2b(u.encode(), digest_size=8).digest(), "big") for u in uids],
                    dtype=np.uint64)


def load_steps(splits: Path, pool: str | None, per_step: int, start_year: int | None):
    """(rows sampled per step with `step` and `half`, full-pool per-year COVID counts, pool name)."""
    import pyarrow.dataset as ds

    from benchmarks.shards_cli import default_start_year, train_pools

    pools = train_pools(splits)
    if not pools:
        raise AnalysisError(f"{splits}: no train/ pools (not a tic-splits, tic-yfcc or tic-redcaps output)")
    pool = pool or ("basic" if "basic" in pools else pools[0])
    if pool not in pools:
        raise AnalysisError(f"{splits / 'train' / pool}: no such pool (have {', '.join(pools)})")
    start = start_year if start_year is not None else default_start_year(splits)
    table = ds.dataset(str(splits / "train" / pool), format="parquet", partitioning="hive") \
        .to_table(columns=["uid", "url", "text", "year"])
    df = table.to_pandas()
    df["year"] = df["year"].astype(int)
    df["step"] = df["year"].clip(lower=start)
    df["text"] = df["text"].fillna("")
    df["h"] = _hash_order(df["uid"])
    sample = df.sort_values(["step", "h"]).groupby("step", group_keys=False).head(per_step).copy()
    sample["half"] = (sample.groupby("step").cumcount() % 2).astype(int)
    return sample.drop(columns=["h"]).reset_index(drop=True), pool


def image_embeddings_from_metadata(metadata: Path, uids: set[str], key: str = "l14_img") -> dict[str, np.ndarray]:
    import pyarrow.parquet as pq

    out = {}
    files = sorted(metadata.glob("*.parquet"))
    if not files:
        raise AnalysisError(f"{metadata}: no metadata parquet files")
    for f in files:
        npz = f.with_suffix(".npz")
        if not npz.is_file():
            raise AnalysisError(f"{npz}: missing (embeddings of {f.name})")
        ids = pq.read_table(f, columns=["uid"]).column("uid").to_pylist()
        want = [i for i, u in enumerate(ids) if u in uids]
        if want:
            with np.load(npz) as z:
                if key not in z:
                    raise AnalysisError(f"{npz}: no '{key}' array")
                vec = z[key][want].astype(np.float32)
            out.update(zip((ids[i] for i in want), vec))
    return out


def image_embeddings_from_checkpoint(checkpoint: Path, shards: Path, pool: str, uids: set[str],
                                     batch: int = 256) -> dict[str, np.ndarray]:
    import io
    import tarfile

    import torch
    from PIL import Image

    from training.trainer import create_model

    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=False)
    name = ckpt.get("model_name") if isinstance(ckpt, dict) else None
    if not name:
        raise AnalysisError(f"{checkpoint}: not a tic-train checkpoint (no model_name)")
    model, _, preprocess, _ = create_model(name, "cpu")
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        raise AnalysisError(f"{checkpoint}: does not fit {name}: {str(exc).splitlines()[0]}") from None
    model.eval()
    keys, images = [], []
    for tar in sorted((shards / "train" / pool).rglob("*.tar")):
        with tarfile.open(tar) as tf:
            for m in tf:
                key, _, ext = m.name.rpartition(".")
                if ext == "jpg" and key in uids:
                    keys.append(key)
                    images.append(tf.extractfile(m).read())
    out = {}
    with torch.no_grad():
        for i in range(0, len(images), batch):
            x = torch.stack([preprocess(Image.open(io.BytesIO(b)).convert("RGB")) for b in images[i:i + batch]])
            f = torch.nn.functional.normalize(model.encode_image(x).float(), dim=-1).numpy()
            out.update(zip(keys[i:i + batch], f))
    return out


def _plot(path: Path, steps: list, series: dict, ylabel: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for label, values in series.items():
        ax.plot([str(s) for s in steps], values, marker="o", label=label)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def analyze(splits: Path, out: Path, pool: str | None = None, per_step: int = 3000, start_year: int | None = None,
            embeddings: Path | None = None, checkpoint: Path | None = None, shards: Path | None = None,
            sentence_model: str | None = None, log=print) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from benchmarks import analysis as A
    from ticcore import sqlfiles

    t0 = time.perf_counter()
    if not splits.is_dir():
        raise AnalysisError(f"{splits}: not found")
    sample, pool = load_steps(splits, pool, per_step, start_year)
    steps = sorted(sample["step"].unique().tolist())
    if len(steps) < 2:
        raise AnalysisError(f"{splits}: {len(steps)} step(s); shift needs at least 2")
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        # ---- text: top-5 categories per caption
        cats = A.categories()
        names = [c["synset"] for c in cats]
        embed = A.CaptionEmbeddings(sentence_model)
        cat_vec = embed([c["text"] for c in cats])
        t_text = time.perf_counter()
        encoded_before = embed.encoded
        cap_vec = embed(sample["text"].tolist())
        text_seconds = time.perf_counter() - t_text
        top = A.top_categories(cap_vec, cat_vec)
        sample["top1"] = [names[i] for i in top[:, 0]]
        sample["top5"] = [[names[i] for i in row] for row in top]
        sample["n_words"] = sample["text"].str.split().str.len().fillna(0).astype(int)
        sample["domain"] = sample["url"].str.extract(r"^[a-z]+://([^/:]+)", expand=False).str.lower()
        # Distances shrink with sample size, so every step is compared at the same size: the first step's
        # half 0 against the step's half 1. For the first step itself that is the noise floor.
        half = sample["half"].to_numpy()
        step_of = sample["step"].to_numpy()
        first = steps[0]
        reference = A.category_distribution(top[(step_of == first) & (half == 0)], names)
        rows = [{"step": int(s), "sampled": int((step_of == s).sum()),
                 "text_tv_to_first": A.tv_distance(A.category_distribution(top[(step_of == s) & (half == 1)], names),
                                                   reference)} for s in steps]
        noise = {"text_tv_halves_of_first": rows[0]["text_tv_to_first"]}

        # ---- images: Fréchet distance to the first step
        image_source = None
        if embeddings is not None or checkpoint is not None:
            uids = set(sample["uid"])
            if embeddings is not None:
                vec = image_embeddings_from_metadata(embeddings, uids)
                image_source = f"l14_img of {embeddings}"
            else:
                if shards is None:
                    raise AnalysisError("--checkpoint needs --shards (the images to embed)")
                vec = image_embeddings_from_checkpoint(checkpoint, shards, pool, uids)
                image_source = f"{checkpoint} over {shards}"
            have = sample["uid"].map(lambda u: u in vec).to_numpy()

            def stats_of(mask):
                if (mask & have).sum() < 2:
                    raise AnalysisError(f"fewer than 2 image embeddings for a step half ({image_source})")
                return A.gaussian(np.stack([vec[u] for u in sample["uid"][mask & have]]))

            g_first = stats_of((step_of == first) & (half == 0))
            for r in rows:
                in_step = step_of == r["step"]
                r["image_fd_to_first"] = A.frechet_distance(*stats_of(in_step & (half == 1)), *g_first)
                r["images"] = int((in_step & have).sum())
            noise["image_fd_halves_of_first"] = rows[0]["image_fd_to_first"]

        # ---- outputs: the sampled captions (what the SQL reads), shift table, plots, report
        keep = ["uid", "step", "year", "half", "text", "n_words", "domain", "top1", "top5"]
        pq.write_table(pa.Table.from_pandas(sample[keep], preserve_index=False), tmp / "captions.parquet")
        import csv

        with open(tmp / "shift.csv", "w", newline="") as fh:
            fields = ["step", "sampled", "text_tv_to_first"] + (["images", "image_fd_to_first"] if image_source else [])
            w = csv.DictWriter(fh, fieldnames=fields)
            w.writeheader()
            w.writerows({k: r.get(k) for k in fields} for r in rows)
        _plot(tmp / "text_shift.png", steps, {"TV to first step": [r["text_tv_to_first"] for r in rows],
                                              "noise floor": [noise["text_tv_halves_of_first"]] * len(steps)},
              "total variation", "Text shift: top-5 WordNet noun categories")
        if image_source:
            _plot(tmp / "image_shift.png", steps, {"FD to first step": [r["image_fd_to_first"] for r in rows],
                                                   "noise floor": [noise["image_fd_halves_of_first"]] * len(steps)},
                  "Fréchet distance", "Image shift: embedding distributions")
        con = sqlfiles.connect(root=str(tmp), splits=str(splits), pool=pool)
        tables = {}
        for name, q in sqlfiles.load("sql/analysis.sql").items():
            rel = con.execute(q.sql)
            cols = [d[0] for d in rel.description]
            tables[name] = (q.doc, cols, rel.fetchall())
        summary = {"tool": TOOL, "splits": str(splits), "pool": pool, "steps": [int(s) for s in steps],
                   "per_step": per_step, "image_source": image_source, "rows": rows, "noise_floor": noise,
                   "categories": len(cats), "captions_encoded": embed.encoded - encoded_before,
                   "caption_seconds": round(text_seconds, 3),
                   "captions_per_second": round((embed.encoded - encoded_before) / text_seconds, 1)
                   if embed.encoded > encoded_before and text_seconds > 0 else None,
                   "seconds": round(time.perf_counter() - t0, 2)}
        (tmp / "shift.json").write_text(json.dumps(summary, indent=1) + "\n")
        (tmp / "report.md").write_text(_report(summary, tables, image_source is not None))
        swap_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log(f"[{TOOL}] {len(sample)} captions over steps {steps} in {summary['seconds']} s; text TV to first: "
        + ", ".join(f"{r['step']} {r['text_tv_to_first']:.3f}" for r in rows)
        + (("; image FD to first: " + ", ".join(f"{r['step']} {r['image_fd_to_first']:.3f}" for r in rows))
           if image_source else "") + f"; report {out / 'report.md'}")
    return summary


def _md_table(cols, rows) -> str:
    def fmt(v):
        if isinstance(v, float):
            return f"{v:.4f}"
        if isinstance(v, list):
            return ", ".join(map(str, v))
        return str(v)

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def _report(summary: dict, tables: dict, images: bool) -> str:
    cols = ["step", "sampled", "text TV to first"] + (["images", "image FD to first"] if images else [])
    rows = [[r["step"], r["sampled"], r["text_tv_to_first"]] + ([r["images"], r["image_fd_to_first"]] if images else [])
            for r in summary["rows"]]
    noise = summary["noise_floor"]
    text = [f"# Distribution shift: {summary['splits']} ({summary['pool']})", "",
            f"Steps {summary['steps']}, up to {summary['per_step']} sampled rows per step. Image embeddings: "
            f"{summary['image_source'] or 'none given (text shift only)'}.", "",
            "## Shift against the first step", "", _md_table(cols, rows), "",
            "Each step's half 1 against the first step's half 0 (equal sample sizes); the first row is the noise "
            "floor (two random halves of the first step): "
            + ", ".join(f"{k} {v:.4f}" for k, v in noise.items()), "",
            "![text shift](text_shift.png)", ""]
    if images:
        text += ["![image shift](image_shift.png)", ""]
    for name, (doc, tcols, trows) in tables.items():
        text += [f"## {name.replace('_', ' ')}", "", doc, "", _md_table(tcols, trows), ""]
    return "\n".join(text)


def _parser():
    p = argparse.ArgumentParser(prog=TOOL, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("splits", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--pool", help="training pool (default: basic if present, else the only one)")
    p.add_argument("--per-step", type=int, default=3000, help="rows sampled per step (default 3000)")
    p.add_argument("--start-year", type=int, help="first step (default: the splits' own, else 2016)")
    p.add_argument("--embeddings", type=Path, help="DataComp-style metadata dir with .npz l14_img embeddings")
    p.add_argument("--checkpoint", type=Path, help="a tic-train checkpoint to embed the SHARDS images with")
    p.add_argument("--shards", type=Path, help="tic-shards output holding the pool's images (with --checkpoint)")
    p.add_argument("--sentence-model", help="sentence-transformers model directory (default: the packaged MiniLM)")
    return p


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        analyze(args.splits, args.out, args.pool, args.per_step, args.start_year, args.embeddings, args.checkpoint,
                args.shards, args.sentence_model)
    except (AnalysisError, FileNotFoundError) as exc:
        print(f"{TOOL}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
