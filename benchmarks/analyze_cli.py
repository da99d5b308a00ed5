"""`tic-analyze`: how much the data drifts between time steps (the paper's appendix C.6, as a tool).

    tic-analyze SPLITS OUT [--pool basic] [--embeddings METADATA_DIR | --checkpoint CKPT --shards SHARDS]
                [--per-step 3000] [--start-year Y] [--sentence-model DIR]

SPLITS is a tic-splits, tic-yfcc or tic-redcaps output. Each step (years before the first step fold
into it, as for the shards) is sampled (`--per-step` rows, by uid hash) and measured against the
first step:
- image shift: Fréchet distance of image embeddings (the DataComp-style `l14_img` of METADATA_DIR,
  or a tic-train checkpoint run over the SHARDS images by `tic-train embed`, in a subprocess);
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
import csv
import functools
import hashlib
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks import analysis as A
from benchmarks.pools import read_hive, split_step_scheme, train_pools
from ticcore.validate import ArgumentParser, number
from ticcore import sqlfiles
from ticcore.errors import UserError, report_user_errors
from ticcore.outputs import staged_dir, write_json
from ticcore.schemas import CAPTIONS
from ticcore.steps import StepScheme

TOOL = "tic-analyze"


class AnalysisError(UserError):
    pass


@dataclass(frozen=True)
class AnalyzeConfig:
    """What `tic-analyze` is asked to do."""
    splits: Path
    out: Path
    pool: str | None = None            # default: basic if present, else the first pool
    per_step: int = 3000               # rows sampled per step
    start_year: int | None = None      # default: the splits' own first step
    embeddings: Path | None = None     # DataComp-style metadata dir with .npz l14_img embeddings
    checkpoint: Path | None = None     # or a tic-train checkpoint, run over ...
    shards: Path | None = None         # ... this tic-shards output's images of the pool
    sentence_model: str | None = None

    def __post_init__(self):
        for name in ("splits", "out", "embeddings", "checkpoint", "shards"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, Path(getattr(self, name)))

    @classmethod
    def from_args(cls, args) -> "AnalyzeConfig":
        return cls(args.splits, args.out, args.pool, args.per_step, args.start_year, args.embeddings,
                   args.checkpoint, args.shards, args.sentence_model)

    @functools.cached_property
    def scheme(self) -> StepScheme:
        """Steps as tic-shards reshard makes them: years before the first step fold into it (tic-yfcc's
        multi-year steps from the splits' stats.json)."""
        return split_step_scheme(self.splits, "year", self.start_year)

    @property
    def image_source(self) -> str | None:
        """What the image embeddings are, in words (None: text shift only)."""
        if self.embeddings is not None:
            return f"l14_img of {self.embeddings}"
        if self.checkpoint is not None:
            return f"{self.checkpoint} over {self.shards}"
        return None


def _hash_order(uids) -> np.ndarray:
    return np.array([int.from_bytes(hashlib.blake2b(u.encode(), digest_size=8).digest(), "big") for u in uids],
                    dtype=np.uint64)


def choose_pool(splits: Path, pool: str | None) -> str:
    pools = train_pools(splits)
    if not pools:
        raise AnalysisError(f"{splits}: no train/ pools (not a tic-splits, tic-yfcc or tic-redcaps output)")
    pool = pool or ("basic" if "basic" in pools else pools[0])
    if pool not in pools:
        raise AnalysisError(f"{splits / 'train' / pool}: no such pool (have {', '.join(pools)})")
    return pool


def load_steps(splits: Path, pool: str, per_step: int, scheme: StepScheme) -> pd.DataFrame:
    """Rows sampled per step (`per_step`, by uid hash), with `step` and `half` (random halves by uid hash)."""
    df = read_hive(splits / "train" / pool, columns=["uid", "url", "text", "year"])
    df["year"] = df["year"].astype(int)
    step_of_year = {y: int(scheme.label(None, y)) for y in df["year"].unique().tolist()}
    df["step"] = df["year"].map(step_of_year).astype(df["year"].dtype)
    df["text"] = df["text"].fillna("")
    df["h"] = _hash_order(df["uid"])
    sample = df.sort_values(["step", "h"]).groupby("step", group_keys=False).head(per_step).copy()
    sample["half"] = (sample.groupby("step").cumcount() % 2).astype(int)
    return sample.drop(columns=["h"]).reset_index(drop=True)


# ------------------------------------------------------------------ image embeddings

METADATA_KEY = "l14_img"   # DataComp metadata's image embeddings
EMBED_KEY = "image"        # tic-train embed's


def read_image_embeddings(directory: Path, uids: set[str], key: str = METADATA_KEY) -> dict[str, np.ndarray]:
    """uid -> embedding from NNNNN.parquet (uid column) + NNNNN.npz (`key`, same row order) pairs."""
    out = {}
    files = sorted(directory.glob("*.parquet"))
    if not files:
        raise AnalysisError(f"{directory}: no metadata parquet files")
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


def image_embeddings_from_checkpoint(checkpoint: Path, shards: Path, pool: str, uids: set[str]) -> dict[str, np.ndarray]:
    """Runs `tic-train embed` (the training package's model code, in its own process) over the pool's
    shard images of `uids`, then reads its output like DataComp metadata."""
    with tempfile.TemporaryDirectory(prefix="tic-analyze-embed-") as tmp:
        uid_file, out = Path(tmp) / "uids.parquet", Path(tmp) / "embeddings"
        pq.write_table(pa.table({"uid": sorted(uids)}), uid_file)
        cmd = [sys.executable, "-m", "training.cli", "embed", "--checkpoint", str(checkpoint), "--data", str(shards),
               "--pool", pool, "--out", str(out), "--uids", str(uid_file)]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            said = res.stderr.strip().splitlines() or [f"exit code {res.returncode}"]
            if res.returncode == 2:  # a user error: tic-train's one line, as ours
                raise AnalysisError(said[-1].split(": error: ", 1)[-1])
            raise RuntimeError(f"tic-train embed failed (exit code {res.returncode}):\n" + "\n".join(said[-20:]))
        return read_image_embeddings(out, uids, key=EMBED_KEY)


def image_embeddings(cfg: AnalyzeConfig, pool: str, uids: set[str]) -> dict[str, np.ndarray] | None:
    if cfg.embeddings is not None:
        return read_image_embeddings(cfg.embeddings, uids, METADATA_KEY)
    if cfg.checkpoint is None:
        return None
    if cfg.shards is None:
        raise AnalysisError("--checkpoint needs --shards (the images to embed)")
    return image_embeddings_from_checkpoint(cfg.checkpoint, cfg.shards, pool, uids)


# ------------------------------------------------------------------ the measurements

@dataclass
class TextShift:
    rows: list[dict]           # per step: step, sampled, text_tv_to_first
    noise: dict                # the first step's two halves
    categories: int
    encoded: int               # captions the model encoded (cache misses)
    seconds: float             # spent encoding captions


def text_shift(sample: pd.DataFrame, steps: list, sentence_model: str | None) -> TextShift:
    """Top-5 categories per caption (added to `sample` with n_words and domain), and each step's TV distance."""
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
    half, step_of = sample["half"].to_numpy(), sample["step"].to_numpy()
    reference = A.category_distribution(top[(step_of == steps[0]) & (half == 0)], names)
    rows = [{"step": int(s), "sampled": int((step_of == s).sum()),
             "text_tv_to_first": A.tv_distance(A.category_distribution(top[(step_of == s) & (half == 1)], names),
                                               reference)} for s in steps]
    return TextShift(rows, {"text_tv_halves_of_first": rows[0]["text_tv_to_first"]}, len(cats),
                     embed.encoded - encoded_before, text_seconds)


def image_shift(sample: pd.DataFrame, steps: list, vec: dict, source: str, text: TextShift) -> None:
    """Adds each step's Fréchet distance to the first step (and its image count) to `text.rows`."""
    have = sample["uid"].map(lambda u: u in vec).to_numpy()
    half, step_of = sample["half"].to_numpy(), sample["step"].to_numpy()

    def stats_of(mask):
        if (mask & have).sum() < 2:
            raise AnalysisError(f"fewer than 2 image embeddings for a step half ({source})")
        return A.gaussian(np.stack([vec[u] for u in sample["uid"][mask & have]]))

    g_first = stats_of((step_of == steps[0]) & (half == 0))
    for r in text.rows:
        in_step = step_of == r["step"]
        r["image_fd_to_first"] = A.frechet_distance(*stats_of(in_step & (half == 1)), *g_first)
        r["images"] = int((in_step & have).sum())
    text.noise["image_fd_halves_of_first"] = text.rows[0]["image_fd_to_first"]


# ------------------------------------------------------------------ outputs

def _plot(path: Path, steps: list, series: dict, ylabel: str, title: str) -> None:
    # matplotlib.pyplot takes 0.8 s to import (python -X importtime): only a run that plots pays for it
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


def write_tables_and_plots(tmp: Path, sample: pd.DataFrame, steps: list, shift: TextShift, images: bool) -> None:
    """captions.parquet (what the SQL reads), shift.csv, and the plots."""
    rows, noise = shift.rows, shift.noise
    pq.write_table(pa.Table.from_pandas(sample[list(CAPTIONS.names)], preserve_index=False), tmp / "captions.parquet")
    with open(tmp / "shift.csv", "w", newline="") as fh:
        fields = ["step", "sampled", "text_tv_to_first"] + (["images", "image_fd_to_first"] if images else [])
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        w.writerows({k: r.get(k) for k in fields} for r in rows)
    _plot(tmp / "text_shift.png", steps, {"TV to first step": [r["text_tv_to_first"] for r in rows],
                                          "noise floor": [noise["text_tv_halves_of_first"]] * len(steps)},
          "total variation", "Text shift: top-5 WordNet noun categories")
    if images:
        _plot(tmp / "image_shift.png", steps, {"FD to first step": [r["image_fd_to_first"] for r in rows],
                                               "noise floor": [noise["image_fd_halves_of_first"]] * len(steps)},
              "Fréchet distance", "Image shift: embedding distributions")


def sql_tables(tmp: Path, splits: Path, pool: str) -> dict:
    """name -> (doc, columns, rows) of every query in sql/analysis.sql, over the written captions."""
    con = sqlfiles.connect(root=str(tmp), splits=str(splits), pool=pool)
    tables = {}
    for name, q in sqlfiles.load("sql/analysis.sql").items():
        rel = con.execute(q.sql)
        tables[name] = (q.doc, [d[0] for d in rel.description], rel.fetchall())
    return tables


def analyze(cfg: AnalyzeConfig, log=print) -> dict:
    t0 = time.perf_counter()
    if not cfg.splits.is_dir():
        raise AnalysisError(f"{cfg.splits}: not found")
    pool = choose_pool(cfg.splits, cfg.pool)
    sample = load_steps(cfg.splits, pool, cfg.per_step, cfg.scheme)
    steps = sorted(sample["step"].unique().tolist())
    if len(steps) < 2:
        raise AnalysisError(f"{cfg.splits}: {len(steps)} step(s); shift needs at least 2")
    with staged_dir(cfg.out, TOOL) as tmp:
        shift = text_shift(sample, steps, cfg.sentence_model)
        image_source = cfg.image_source
        vec = image_embeddings(cfg, pool, set(sample["uid"]))
        if vec is not None:
            image_shift(sample, steps, vec, image_source, shift)
        write_tables_and_plots(tmp, sample, steps, shift, vec is not None)
        tables = sql_tables(tmp, cfg.splits, pool)
        summary = {"tool": TOOL, "splits": str(cfg.splits), "pool": pool, "steps": [int(s) for s in steps],
                   "per_step": cfg.per_step, "image_source": image_source, "rows": shift.rows,
                   "noise_floor": shift.noise, "categories": shift.categories, "captions_encoded": shift.encoded,
                   "caption_seconds": round(shift.seconds, 3),
                   "captions_per_second": round(shift.encoded / shift.seconds, 1)
                   if shift.encoded > 0 and shift.seconds > 0 else None,
                   "seconds": round(time.perf_counter() - t0, 2)}
        write_json(tmp / "shift.json", summary)
        (tmp / "report.md").write_text(_report(summary, tables, vec is not None))
    rows = shift.rows
    log(f"[{TOOL}] {len(sample)} captions over steps {steps} in {summary['seconds']} s; text TV to first: "
        + ", ".join(f"{r['step']} {r['text_tv_to_first']:.3f}" for r in rows)
        + (("; image FD to first: " + ", ".join(f"{r['step']} {r['image_fd_to_first']:.3f}" for r in rows))
           if vec is not None else "") + f"; report {cfg.out / 'report.md'}")
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
    p = ArgumentParser(prog=TOOL, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("splits", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--pool", help="training pool (default: basic if present, else the only one)")
    p.add_argument("--per-step", type=number(int, 1), default=3000, help="rows sampled per step (default 3000)")
    p.add_argument("--start-year", type=number(int, 1900, 2200), help="first step (default: the splits' own, else 2016)")
    p.add_argument("--embeddings", type=Path, help="DataComp-style metadata dir with .npz l14_img embeddings")
    p.add_argument("--checkpoint", type=Path, help="a tic-train checkpoint to embed the SHARDS images with")
    p.add_argument("--shards", type=Path, help="tic-shards output holding the pool's images (with --checkpoint)")
    p.add_argument("--sentence-model", help="sentence-transformers model directory (default: the packaged MiniLM)")
    return p


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    return report_user_errors(TOOL, lambda: analyze(AnalyzeConfig.from_args(args)) and 0,
                              also=(FileNotFoundError,))


if __name__ == "__main__":
    sys.exit(main())
