"""DataComp's binary uid lists: the one place a hex uid becomes a `u8,u8` pair and back.

A DataComp uid is 128 bits written as 32 lowercase hex digits (`ticcore.validate.DATACOMP_UID`). Its
subset files hold each uid as two uint64, `(int(uid[:16], 16), int(uid[16:32], 16))`, in a
`np.dtype("u8,u8")` array saved with `np.save` (mlfoundations/datacomp, `baselines/utils.py`), sorted,
because `resharder.py` looks each sample's uid up with `np.searchsorted` and writes it once per hit, so
the list must also be free of repeats (mlfoundations/datacomp, `resharder.py`: `load_subset` asserts the
dtype; `copy_worker` counts the hits). apple/ml-tic-clip's released lists use the same form
(`dataset_creation/tic-datacomp/generate_eval_uids.py`: sort, then `np.unique`). Everything here is
vectorised: a released yearly list holds hundreds of millions of uids.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ticcore.errors import InputError
from ticcore.outputs import atomic_file

UID_PAIR = np.dtype("u8,u8")   # fields f0 (first 16 hex digits), f1 (last 16), little-endian as np.save writes them
_HEX_UID = "^[0-9a-f]{32}$"


def hex_problem(uids) -> str | None:
    """Why these hex uids cannot be packed (not 32 lowercase hex digits), naming the first few, or None."""
    arr = pa.array(uids, pa.string()) if not isinstance(uids, (pa.Array, pa.ChunkedArray)) else uids
    ok = pc.fill_null(pc.match_substring_regex(arr, _HEX_UID), False)
    n_bad = len(arr) - pc.sum(ok).as_py() if len(arr) else 0
    if not n_bad:
        return None
    bad = pc.filter(arr, pc.invert(ok)).slice(0, 3).to_pylist()
    return f"{n_bad} uid(s) are not 32 lowercase hex digits, as DataComp's uids are: {', '.join(map(repr, bad))}"


def hex_to_pairs(uids, where: str = "uids") -> np.ndarray:
    """Hex uids -> an unsorted `u8,u8` array in the same order. A bad uid is an InputError naming `where`."""
    arr = pa.array(uids, pa.string()) if not isinstance(uids, (pa.Array, pa.ChunkedArray)) else uids
    problem = hex_problem(arr)
    if problem:
        raise InputError(f"{where}: {problem}")
    if isinstance(arr, pa.ChunkedArray):
        arr = pa.concat_arrays(arr.chunks) if arr.num_chunks else pa.array([], pa.string())
    n = len(arr)
    out = np.empty(n, UID_PAIR)
    if n:
        # every uid is exactly 32 ASCII characters, so the string buffer is the uids back to back
        offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32)[arr.offset:arr.offset + n + 1]
        text = arr.buffers()[2].to_pybytes()[int(offsets[0]):int(offsets[-1])]
        halves = np.frombuffer(bytes.fromhex(text.decode("ascii")), dtype=">u8").reshape(n, 2)
        out["f0"], out["f1"] = halves[:, 0], halves[:, 1]
    return out


def pairs_to_hex(pairs: np.ndarray) -> np.ndarray:
    """A `u8,u8` array -> the uids as 32-digit lowercase hex strings (numpy str array, same order)."""
    pairs = np.asarray(pairs)
    halves = np.empty((len(pairs), 2), ">u8")
    halves[:, 0], halves[:, 1] = pairs["f0"], pairs["f1"]
    return np.frombuffer(halves.tobytes().hex().encode("ascii"), dtype="S32").astype("U32")


def sorted_unique(pairs: np.ndarray) -> np.ndarray:
    """What resharder.py needs: sorted by (f0, f1), each uid once."""
    return np.unique(np.asarray(pairs, UID_PAIR))


def npy_bytes(pairs: np.ndarray) -> bytes:
    """The exact bytes `np.save` writes for the sorted, repeat-free list (what ml-tic-clip's scripts write)."""
    buf = io.BytesIO()
    np.save(buf, sorted_unique(pairs), allow_pickle=False)
    return buf.getvalue()


def write_uid_npy(path: Path, pairs: np.ndarray) -> int:
    """Save the sorted, repeat-free list at `path` atomically (np.save through a file object, so no
    `.npy` suffix is added to a name without one); returns how many uids it holds."""
    data = sorted_unique(pairs)
    with atomic_file(Path(path)) as tmp, open(tmp, "wb") as fh:
        np.save(fh, data, allow_pickle=False)
    return len(data)


def load_uid_npy(source, where: str) -> np.ndarray:
    """A subset file (a path, or bytes read from an archive) as a `u8,u8` array; anything else - not
    NumPy's format, another dtype, a pickled object - is an InputError naming `where`. Files are memory
    mapped, so a yearly list is not read into memory at once."""
    try:
        if isinstance(source, (bytes, bytearray)):
            arr = np.load(io.BytesIO(source), allow_pickle=False)
        else:
            arr = np.load(source, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise InputError(f"{where}: not a NumPy uid list ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    if not isinstance(arr, np.ndarray) or arr.dtype != UID_PAIR or arr.ndim != 1:
        raise InputError(f"{where}: expected a 1-d np.dtype('u8,u8') uid array (DataComp's subset format), "
                         f"got {getattr(arr, 'dtype', type(arr).__name__)} of shape {getattr(arr, 'shape', '?')}")
    return arr


def pairs_from_hex_batches(batches: Iterable, where: str) -> np.ndarray:
    """Concatenate hex-uid batches (lists or arrow arrays) into one `u8,u8` array (16 bytes per uid)."""
    parts = [hex_to_pairs(b, where) for b in batches]
    return np.concatenate(parts) if parts else np.empty(0, UID_PAIR)
