"""ImageNet-1K class names and definitions, read from the copy that timm ships (offline)."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from ticcore.pkgdata import PackageDataError, package_path


@dataclass(frozen=True)
class ImageNetClass:
    class_id: int          # index in the standard 1000-class ordering (sorted wnids)
    wnid: str              # WordNet offset id, e.g. "n02099601"
    lemmas: tuple[str, ...]
    definition: str

    @property
    def name(self) -> str:
        return self.lemmas[0]


def timm_info_dir() -> Path:
    """timm's bundled ImageNet metadata; located without importing timm (which imports torch)."""
    try:
        return package_path("timm", "data", "_info")
    except PackageDataError:
        raise FileNotFoundError("timm is not installed: it ships the ImageNet synset lemmas and definitions") from None


def _read_tsv(path: Path) -> dict[str, str]:
    out = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            key, _, value = line.rstrip("\n").partition("\t")
            out[key] = value
    return out


@functools.lru_cache(maxsize=4)
def load_imagenet_classes(info_dir: str | None = None) -> tuple[ImageNetClass, ...]:
    """The 1000 ImageNet-1K classes in class-id order."""
    base = Path(info_dir) if info_dir else timm_info_dir()
    wnids = [w.strip() for w in (base / "imagenet_synsets.txt").read_text().split() if w.strip()]
    lemmas = _read_tsv(base / "imagenet_synset_to_lemma.txt")
    definitions = _read_tsv(base / "imagenet_synset_to_definition.txt")
    if len(wnids) != 1000:
        raise ValueError(f"{base / 'imagenet_synsets.txt'}: expected 1000 synsets, found {len(wnids)}")
    return tuple(
        ImageNetClass(
            class_id=i,
            wnid=w,
            lemmas=tuple(x.strip() for x in lemmas[w].split(",") if x.strip()),
            definition=definitions[w],
        )
        for i, w in enumerate(wnids)
    )


@functools.lru_cache(maxsize=4)
def classes_by_wnid(info_dir: str | None = None) -> dict[str, ImageNetClass]:
    return {c.wnid: c for c in load_imagenet_classes(info_dir)}
