"""Compressed token replay: the tokens that enter the last image block, stored per example as an
attention-weighted PCA (mean + k components + each token's k coefficients), quantised with a per-vector
min/max; and the file-backed, size-capped, class-balanced memory that holds them.

The store file is  MAGIC | header length (8 bytes, little endian) | JSON header | body (an .npz).
The header carries the body's sha256: a store whose bytes changed is refused, never silently reset."""
from __future__ import annotations

import bisect
import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np
import torch

from ticcore.errors import InputError, UserError
from ticcore.outputs import atomic_file

MAGIC = b"TICREPLAY1\n"


class ReplayStoreError(UserError):
    pass


# ------------------------------------------------------------------ quantisation

def quantize(v: np.ndarray, bits: int, axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """Each vector along `axis` to unsigned `bits`-bit integers over its own [min, max].
    Returns (codes, ranges) with ranges[..., 0] = min, ranges[..., 1] = max (float32)."""
    if bits not in (8, 16):
        raise ValueError(f"quantisation bits must be 8 or 16, got {bits}")
    v = np.asarray(v, np.float32)
    lo, hi = v.min(axis=axis, keepdims=True), v.max(axis=axis, keepdims=True)
    levels = (1 << bits) - 1
    scale = np.where(hi > lo, (hi - lo) / levels, 1.0).astype(np.float32)
    codes = np.rint((v - lo) / scale).clip(0, levels).astype(np.uint8 if bits == 8 else np.uint16)
    return codes, np.concatenate([lo, hi], axis=axis).astype(np.float32)


def dequantize(codes: np.ndarray, ranges: np.ndarray, axis: int = -1) -> np.ndarray:
    bits = 8 if codes.dtype == np.uint8 else 16
    levels = (1 << bits) - 1
    lo = np.take(ranges, [0], axis=axis)
    hi = np.take(ranges, [1], axis=axis)
    scale = np.where(hi > lo, (hi - lo) / levels, 1.0).astype(np.float32)
    return lo + codes.astype(np.float32) * scale


# ------------------------------------------------------------------ attention-weighted PCA

def weighted_pca(tokens: torch.Tensor, weights: torch.Tensor, k: int):
    """tokens (B, L, D), weights (B, L) >= 0 -> mean (B, D), components (B, k, D), coefficients (B, L, k).
    The mean and covariance weight each token by `weights` (its attention to CLS), so the components spend
    their rank on the tokens the last block listens to; tokens ≈ mean + coefficients @ components."""
    tokens = tokens.float()
    w = weights.float().clamp_min(0)
    w = w / w.sum(dim=1, keepdim=True).clamp_min(1e-12)
    mean = torch.einsum("bl,bld->bd", w, tokens)
    centred = tokens - mean[:, None]
    k = min(k, tokens.shape[1], tokens.shape[2])
    _, _, vh = torch.linalg.svd(centred * w.sqrt()[..., None], full_matrices=False)
    components = vh[:, :k]                              # (B, k, D), orthonormal rows
    coefficients = centred @ components.transpose(1, 2)  # (B, L, k)
    return mean, components, coefficients


class Codec:
    """How one example's tokens are stored. `compressed`: PCA with k components, quantised to `bits`;
    `raw`: float32 tokens as they are (the uncompressed baseline)."""

    def __init__(self, kind: str = "compressed", k: int = 5, bits: int = 8):
        if kind not in ("compressed", "raw"):
            raise InputError(f"replay codec must be 'compressed' or 'raw', got {kind!r}")
        if kind == "compressed" and (k < 1 or bits not in (8, 16)):
            raise InputError(f"compressed replay needs k >= 1 and bits 8 or 16, got k={k}, bits={bits}")
        self.kind, self.k, self.bits = kind, k, bits

    def describe(self) -> dict:
        return {"kind": self.kind, "k": self.k, "bits": self.bits}

    def encode(self, tokens: torch.Tensor, weights: torch.Tensor) -> dict[str, np.ndarray]:
        """tokens (B, L, D) -> {field: array with leading dimension B}."""
        if self.kind == "raw":
            return {"tokens": tokens.detach().float().cpu().numpy()}
        mean, comp, coef = (t.detach().cpu().numpy() for t in weighted_pca(tokens.detach().cpu(), weights.detach().cpu(), self.k))
        mean_q, mean_r = quantize(mean, self.bits, axis=1)              # one vector per example
        comp_q, comp_r = quantize(comp, self.bits, axis=2)              # one per component
        coef_q, coef_r = quantize(coef, self.bits, axis=1)              # one per component, over the tokens
        return {"mean_q": mean_q, "mean_r": mean_r, "comp_q": comp_q, "comp_r": comp_r,
                "coef_q": coef_q, "coef_r": coef_r}

    def decode(self, fields: dict[str, np.ndarray]) -> torch.Tensor:
        if self.kind == "raw":
            return torch.from_numpy(np.asarray(fields["tokens"], np.float32))
        mean = dequantize(fields["mean_q"], fields["mean_r"], axis=1)
        comp = dequantize(fields["comp_q"], fields["comp_r"], axis=2)
        coef = dequantize(fields["coef_q"], fields["coef_r"], axis=1)
        return torch.from_numpy(mean[:, None] + coef @ comp)


# ------------------------------------------------------------------ the memory

class ReplayStore:
    """A size-capped memory of encoded examples with their labels. When full, a new example evicts a random
    example of the most frequent class (ties: the smallest label), so the memory stays class-balanced.
    Random choices use the generator passed in (the run's, so a resumed run continues the same draws)."""

    def __init__(self, codec: Codec, capacity: int):
        if capacity < 1:
            raise InputError(f"replay capacity must be >= 1, got {capacity}")
        self.codec, self.capacity = codec, capacity
        self.fields: dict[str, np.ndarray] = {}
        self.labels = np.zeros(0, np.int64)
        self.size = 0
        self._members: dict[int, list[int]] | None = None

    def __len__(self) -> int:
        return self.size

    def bytes_per_example(self) -> int:
        """Stored bytes of one example: its encoded arrays plus an 8-byte label."""
        if not self.size:
            return 0
        return int(sum(a[0].nbytes for a in self.fields.values())) + 8

    def _grow(self, fields: dict[str, np.ndarray]) -> None:
        need = self.size + 1
        have = len(self.labels)
        if need <= have:
            return
        new = min(self.capacity, max(16, 2 * have))
        for name, a in fields.items():
            block = np.zeros((new,) + a.shape[1:], a.dtype)
            if name in self.fields:
                block[:self.size] = self.fields[name][:self.size]
            self.fields[name] = block
        labels = np.zeros(new, np.int64)
        labels[:self.size] = self.labels[:self.size]
        self.labels = labels

    def _index(self) -> dict[int, list[int]]:
        """Sorted slots per label, kept up to date by add(); sorted so that a loaded store draws exactly
        as the one that was saved."""
        if self._members is None:
            self._members = {}
            for slot, label in enumerate(self.labels[:self.size].tolist()):
                self._members.setdefault(label, []).append(slot)
        return self._members

    def add(self, fields: dict[str, np.ndarray], label: int, rng: np.random.Generator) -> None:
        """Store one encoded example (fields with leading dimension 1)."""
        members = self._index()
        if self.size >= self.capacity:
            # evict from the most frequent label (np.unique order: the smallest label on ties)
            counts = {y: len(s) for y, s in members.items()}
            biggest = max(sorted(counts), key=lambda y: counts[y])
            slot = members[biggest].pop(int(rng.integers(counts[biggest])))
            if not members[biggest]:
                del members[biggest]
        else:
            self._grow(fields)
            slot = self.size
            self.size += 1
        for name, a in fields.items():
            self.fields[name][slot] = a[0]
        self.labels[slot] = label
        bisect.insort(members.setdefault(int(label), []), slot)

    def class_counts(self) -> dict[int, int]:
        return {y: len(s) for y, s in sorted(self._index().items())}

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Slots of n examples drawn class-balanced: a label uniformly among those stored, then one of its
        examples uniformly (with replacement when a label has fewer examples than draws)."""
        if n <= 0 or not self.size:
            return np.zeros(0, np.int64)
        members = self._index()
        classes = sorted(members)
        picked = rng.integers(len(classes), size=n)
        return np.array([members[classes[c]][rng.integers(len(members[classes[c]]))] for c in picked], np.int64)

    def get(self, slots: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.codec.decode({name: a[slots] for name, a in self.fields.items()})
        return tokens, torch.from_numpy(self.labels[slots])

    # ---------------- persistence
    def save(self, path: str | Path) -> str:
        """Write atomically (temporary file, fsync, rename); returns the body's sha256."""
        path = Path(path)
        buf = io.BytesIO()
        np.savez_compressed(buf, labels=self.labels[:self.size],
                            **{name: a[:self.size] for name, a in self.fields.items()})
        body = buf.getvalue()
        digest = hashlib.sha256(body).hexdigest()
        header = json.dumps({"codec": self.codec.describe(), "capacity": self.capacity, "size": self.size,
                             "body_bytes": len(body), "sha256": digest}).encode()
        with atomic_file(path) as tmp, open(tmp, "wb") as fh:
            fh.write(MAGIC + len(header).to_bytes(8, "little") + header + body)
            fh.flush()
            os.fsync(fh.fileno())
        return digest

    @classmethod
    def load(cls, path: str | Path) -> tuple["ReplayStore", str]:
        path = Path(path)
        raw = path.read_bytes()
        if not raw.startswith(MAGIC):
            raise ReplayStoreError(f"{path}: not a tic-train replay store (bad magic bytes)")
        try:
            n = int.from_bytes(raw[len(MAGIC):len(MAGIC) + 8], "little")
            header = json.loads(raw[len(MAGIC) + 8:len(MAGIC) + 8 + n])
        except (ValueError, UnicodeDecodeError) as exc:
            raise ReplayStoreError(f"{path}: corrupted replay store header ({exc})") from None
        body = raw[len(MAGIC) + 8 + n:]
        if len(body) != header.get("body_bytes") or hashlib.sha256(body).hexdigest() != header.get("sha256"):
            raise ReplayStoreError(f"{path}: corrupted replay store (checksum mismatch); refusing to reset it: "
                                   "restore the file or delete it together with the run's state to start over")
        store = cls(Codec(**header["codec"]), header["capacity"])
        with np.load(io.BytesIO(body)) as z:
            store.labels = z["labels"].astype(np.int64)
            store.fields = {name: z[name] for name in z.files if name != "labels"}
        store.size = int(header["size"])
        store._members = None
        return store, header["sha256"]
