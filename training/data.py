"""Training and evaluation data from tic-shards outputs, streamed with webdataset.

A step's training stream is a fixed number of samples drawn from a uid buffer in passes; each
pass reads the step shards holding the buffer (in a seeded shard order, through a seeded shuffle
buffer). Sample g of the stream goes to consumer g mod (ranks x workers), so a run is the same for
any number of DataLoader workers per rank, and a global batch under DDP holds the same samples as
in one process.
"""
from __future__ import annotations

import io
import json
import random
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import torch
import webdataset as wds
from PIL import Image

from ticcore.errors import UserError
from ticcore.schemas import image_extension


class DataError(UserError):
    """Bad or missing training data: reported as one line naming the path."""


@dataclass(frozen=True)
class Step:
    label: str
    dir: Path
    shards: tuple[str, ...]
    samples: int


def _step_from_dir(d: Path) -> Step:
    sizes_path = d / "sizes.json"
    if not sizes_path.is_file():
        raise DataError(f"{d}: no sizes.json (not a tic-shards step directory)")
    sizes = json.loads(sizes_path.read_text())
    shards = []
    for name, n in sorted(sizes.items()):
        tar = d / name
        if not tar.is_file():
            raise DataError(f"{tar}: listed in sizes.json but missing")
        if n == 0 or tar.stat().st_size <= 1024:
            raise DataError(f"{tar}: empty shard")
        shards.append(str(tar))
    if not shards:
        raise DataError(f"{d}: no shards")
    return Step(d.name, d, tuple(shards), int(sum(sizes.values())))


def find_steps(data_dir: str | Path, pool: str, only: tuple = ()) -> list[Step]:
    root = Path(data_dir) / "train" / pool
    if not root.is_dir():
        raise DataError(f"{root}: missing step directory (is {data_dir} a tic-shards output with pool '{pool}'?)")
    dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if only:
        missing = [s for s in only if not (root / s).is_dir()]
        if missing:
            raise DataError(f"{root / missing[0]}: missing step directory")
        dirs = [root / s for s in only]
    if not dirs:
        raise DataError(f"{root}: no steps")
    return [_step_from_dir(d) for d in dirs]


def step_uids(step: Step) -> list[str]:
    uids = []
    for tar in step.shards:
        uids += pq.read_table(Path(tar).with_suffix(".parquet"), columns=["key"]).column("key").to_pylist()
    return uids


class BufferStream(torch.utils.data.IterableDataset):
    """Exactly `n_samples` (image tensor, token ids) samples of the uids in `buffer`, from `shards`;
    `preprocess` is the model's training transform (open_clip's random resized crop)."""

    def __init__(self, shards, buffer: set[str] | None, n_samples: int, seed: int, preprocess, tokenizer,
                 rank: int = 0, world: int = 1, shuffle_buffer: int = 2000):
        self.shards, self.buffer, self.n_samples, self.seed = list(shards), buffer, n_samples, seed
        self.preprocess, self.tokenizer = preprocess, tokenizer
        self.rank, self.world, self.shuffle_buffer = rank, world, shuffle_buffer

    def _pass(self, epoch: int):
        rng = random.Random(f"{self.seed}/{epoch}")
        shards = self.shards[:]
        rng.shuffle(shards)
        buffer = self.buffer
        stages = [wds.SimpleShardList(shards), wds.tarfile_to_samples(handler=wds.reraise_exception)]
        if buffer is not None:
            stages.append(wds.select(lambda s: s["__key__"] in buffer))
        stages.append(wds.shuffle(self.shuffle_buffer, initial=self.shuffle_buffer,
                                  rng=random.Random(f"{self.seed}/{epoch}/shuffle")))
        return wds.DataPipeline(*stages)

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        workers, worker = (info.num_workers, info.id) if info else (1, 0)
        consumers, me = self.world * workers, self.rank * workers + worker
        g = 0
        epoch = 0
        while g < self.n_samples:
            produced_in_pass = 0
            for sample in self._pass(epoch):
                if g >= self.n_samples:
                    return
                if g % consumers == me:
                    ext = image_extension(sample)
                    if ext is None:
                        raise DataError(f"{sample.get('__url__')}: sample {sample['__key__']} has no image member")
                    image = Image.open(io.BytesIO(sample[ext])).convert("RGB")
                    text = sample["txt"].decode("utf-8")
                    # The random crop of sample g depends on (seed, g) alone, not on which worker or rank
                    # draws it: runs agree across worker counts, DDP and resumes.
                    # Only the CPU generator is seeded: the transforms draw from it alone, and torch.manual_seed
                    # would also queue a lazy CUDA seeding, with a formatted stack, per sample (~40% of its data CPU).
                    if info is not None:  # a DataLoader worker only makes data: its global RNG is ours
                        torch.default_generator.manual_seed(self.seed * 1_000_003 + g)
                        pixels = self.preprocess(image)
                    else:
                        with torch.random.fork_rng(devices=[]):
                            torch.default_generator.manual_seed(self.seed * 1_000_003 + g)
                            pixels = self.preprocess(image)
                    yield pixels, self.tokenizer([text])[0]
                g += 1
                produced_in_pass += 1
            if produced_in_pass == 0:
                raise DataError(f"{self.shards[0]}: no sample of the buffer found in the step shards")
            epoch += 1


def train_loader(dataset: BufferStream, per_rank_batch: int, workers: int) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(dataset, batch_size=per_rank_batch, num_workers=workers,
                                       drop_last=True, persistent_workers=False)


# ------------------------------------------------------------------ evaluation sets

@dataclass
class EvalSet:
    name: str                 # e.g. "retrieval/2016"
    uids: list[str]
    images: list[bytes]
    texts: list[str]
    meta: list[dict]


def tar_samples(tar: str | Path) -> dict[str, dict[str, bytes]]:
    """{sample key: {extension: bytes}} of a webdataset tar, read whole (tarfile errors propagate)."""
    members: dict[str, dict[str, bytes]] = {}
    with tarfile.open(tar) as tf:
        for m in tf:
            if m.isfile():
                key, _, ext = m.name.rpartition(".")
                members.setdefault(key, {})[ext] = tf.extractfile(m).read()
    return members


def load_eval_dir(d: Path, name: str) -> EvalSet:
    uids, images, texts, metas = [], [], [], []
    for tar in sorted(d.glob("*.tar")):
        members = tar_samples(tar)
        for key in sorted(members):
            parts = members[key]
            ext = image_extension(parts)
            if ext is None:
                continue
            uids.append(key)
            images.append(parts[ext])
            texts.append(parts.get("txt", b"").decode("utf-8"))
            metas.append(json.loads(parts.get("json", b"{}")))
    return EvalSet(name, uids, images, texts, metas)


def load_eval_sets(data_dir: str | Path) -> dict[str, dict[str, EvalSet]]:
    """{"retrieval": {year: EvalSet}, "net": {year: EvalSet}, "static": {"all": EvalSet}} (those present)."""
    root = Path(data_dir) / "eval"
    out: dict[str, dict[str, EvalSet]] = {}
    for task in ("retrieval", "net"):
        base = root / task
        if base.is_dir():
            out[task] = {d.name: load_eval_dir(d, f"{task}/{d.name}") for d in sorted(base.iterdir()) if d.is_dir()}
    if (root / "static").is_dir():
        out["static"] = {"all": load_eval_dir(root / "static", "static")}
    return out
