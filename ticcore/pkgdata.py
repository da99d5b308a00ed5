"""Where package data lives: this project's own (SQL files, model configs) and the offline models
and tables that other packages ship (timm's ImageNet lemmas, fastText's lid.176.ftz, MiniLM, WordNet).

Found through the import system, so it works from a checkout, an editable install and a wheel alike.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path


class PackageDataError(FileNotFoundError):
    """A package that should ship a data file is not installed."""


def package_path(package: str, *parts: str) -> Path:
    """`<package's directory>/<parts...>`, for a package that ships data files beside its modules.

    The path is not checked for existence: callers say what is missing and how to point at their own copy.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise PackageDataError(f"the package {package!r} is not installed (it ships {'/'.join(parts) or 'data'})")
    return Path(list(spec.submodule_search_locations)[0]).joinpath(*parts)

