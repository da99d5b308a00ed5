"""Reading pickles that must not run code: released eval maps (ml-tic-clip's `.pkl`) and the numpy arrays
inside DataComp's torch files. Loading an arbitrary pickle runs whatever it names, so only the globals a
caller allows are resolved; anything else, and any persistent id (a torch tensor's storage), is refused
with `pickle.UnpicklingError`."""
from __future__ import annotations

import pickle
from typing import BinaryIO

# What a pickled numpy array names (numpy 1.x and 2.x spellings); numpy 2 also pickles dtypes as
# `numpy.dtypes.<Kind>DType` classes.
NUMPY_ARRAY_GLOBALS = frozenset({("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                                 ("numpy", "ndarray"), ("numpy", "dtype")})


def _numpy_dtype_class(module: str, name: str) -> bool:
    return module == "numpy.dtypes" and name.endswith("DType")


class _AllowListUnpickler(pickle.Unpickler):
    def __init__(self, fh: BinaryIO, allowed: frozenset, why: str):
        super().__init__(fh)
        self.allowed, self.why = allowed, why

    def find_class(self, module, name):
        if (module, name) in self.allowed or _numpy_dtype_class(module, name):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} ({self.why})")

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("holds torch tensors")


def load_restricted(fh: BinaryIO, allowed: frozenset = NUMPY_ARRAY_GLOBALS, why: str = "only numpy arrays are expected"):
    """The object pickled in `fh`, resolving only the (module, name) globals in `allowed` (and numpy's dtype
    classes); plain containers (dict, list, tuple, str, numbers) need no global."""
    return _AllowListUnpickler(fh, frozenset(allowed), why).load()
