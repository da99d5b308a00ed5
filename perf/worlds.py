"""The sample web the extraction benchmarks run on."""
from __future__ import annotations

from pathlib import Path

from sample_web.generate import generate
from sample_web.world import SampleWebConfig


def bench_world(out: Path, pairs: int) -> Path:
    """A world without damaged members (FastWARC and warcio stop at the first one, which would flatter
    the floors) and without the 10 MB page; returns its directory."""
    generate(SampleWebConfig(out=out, pairs=pairs, seed=3, corrupt_record_rate=0.0, big_page=False),
             progress=False, log=lambda *_: None)
    return out
