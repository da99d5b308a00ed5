"""DataComp's released image-filter assets, read from disk: pool centroids and ImageNet target features.

Read from the sources (`mlfoundations/datacomp`):

- `baselines/image_based_clustering.py` saves the k-means centroids with `torch.save(centroids)`,
  where `centroids` is a (k, 768) float32 numpy array; `baselines/utils.py` (`download`) lists the
  released ones as `{small,medium,large,xlarge}_centroids_l14.pt`, and `baselines/apply_filter.py`
  (`load_uids_with_image_filter`) reads them with `torch.from_numpy(torch.load(path))`.
- The ImageNet-1k targets are `in1k_clip_vit_l14_{0..4}.pt`, each a dict whose `image_features` is a
  tensor of OpenAI CLIP ViT-L/14 image embeddings; apply_filter.py concatenates the five in order.

Both are pickles, read without running code from them: `torch.load(weights_only=True)`, else (the
centroid files: a pickled numpy array, protocol 4, which torch's safe loader refuses) an unpickler that
admits numpy arrays only. Our own formats are accepted beside them: `.npy` centroids (what
`tic-filter` writes as `OUT/centroids.npy`) and `.npz` targets with an `l14_img` array (the sample web's
`imagenet_like/embeddings.npz`).
"""
from __future__ import annotations

import io
import pickle
import warnings
import zipfile
from pathlib import Path

import numpy as np

from ticcore.errors import InputError
from ticcore.safepickle import load_restricted

TARGET_FEATURES_KEY = "image_features"   # in DataComp's in1k_clip_vit_l14_{i}.pt
TARGET_NPZ_KEY = "l14_img"               # in our .npz targets


def _numpy_pickle_in_zip(path: Path):
    with zipfile.ZipFile(path) as z:
        names = [n for n in z.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(names) != 1:
            raise pickle.UnpicklingError("no single data.pkl member")
        # torch's own weights_only loader refuses DataComp's centroid files, written with
        # `pickle_protocol=4` (its FRAME opcode), so their numpy pickle is read here, numpy parts only
        return load_restricted(io.BytesIO(z.read(names[0])))


def _torch_load(path: Path):
    """A torch file's object, without running code from it: torch's weights_only loader (tensors, dicts),
    else the numpy-only reading of its pickle (a `torch.save`d numpy array)."""
    # Imported here: torch takes seconds to import, and only a run given .pt files needs it.
    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notice about the pickle protocol
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # refused (a code-running or protocol-4 pickle) or not a torch file at all
        pass
    try:
        return _numpy_pickle_in_zip(path)
    except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, KeyError, ValueError, AttributeError):
        raise InputError(f"{path}: not a torch file of tensors or numpy arrays (it may not load without "
                         "running code from it, or is no torch file)") from None


def _as_matrix(value, path: Path, what: str) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().float().numpy()
    arr = np.asarray(value)
    if arr.ndim != 2 or arr.shape[0] == 0 or not np.issubdtype(arr.dtype, np.floating):
        raise InputError(f"{path}: {what} must be a non-empty 2-d float array, found {arr.dtype} {arr.shape}")
    arr = arr.astype(np.float32)
    if not np.isfinite(arr).all():
        raise InputError(f"{path}: {what} hold non-finite values")
    return arr


def load_centroids(path: str | Path) -> np.ndarray:
    """(k, d) float32 pool centroids from DataComp's `{scale}_centroids_l14.pt` or a `.npy` file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: centroids file not found")
    if path.suffix == ".npy":
        try:
            value = np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise InputError(f"{path}: not a readable .npy file ({exc})") from None
    else:
        value = _torch_load(path)
    return _as_matrix(value, path, "centroids")


def load_target_features(paths) -> np.ndarray:
    """The target embeddings of every file, concatenated in the order given: DataComp's `.pt` files
    (key `image_features`) or `.npz` files (key `l14_img`)."""
    parts = []
    for p in map(Path, paths):
        if not p.is_file():
            raise InputError(f"{p}: target embeddings not found (pass --targets PATH.npz or PATH.pt)")
        if p.suffix == ".npz":
            with np.load(p) as npz:
                if TARGET_NPZ_KEY not in npz:
                    raise InputError(f"{p}: no {TARGET_NPZ_KEY} array (found {', '.join(npz.files) or 'none'})")
                parts.append(_as_matrix(npz[TARGET_NPZ_KEY], p, "target embeddings"))
        else:
            value = _torch_load(p)
            if not isinstance(value, dict) or TARGET_FEATURES_KEY not in value:
                raise InputError(f"{p}: no '{TARGET_FEATURES_KEY}' key (DataComp's in1k_clip_vit_l14_*.pt hold one)")
            parts.append(_as_matrix(value[TARGET_FEATURES_KEY], p, "target embeddings"))
    dims = {a.shape[1] for a in parts}
    if len(dims) > 1:
        raise InputError(f"target files disagree on the embedding width: {sorted(dims)}")
    return np.concatenate(parts)
