"""Write-behind files for bulk writers (the staged-output pattern itself is in ticcore.outputs)."""
from __future__ import annotations

import ctypes
import io
import os
from pathlib import Path


# sync_file_range flags (linux/fs.h)
_WAIT_BEFORE, _WRITE, _WAIT_AFTER = 1, 2, 4


def _libc_sync_file_range():
    """glibc's sync_file_range (the os module has no binding for it), or None."""
    try:
        fn = ctypes.CDLL("libc.so.6", use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    fn.restype = ctypes.c_int
    return fn


_SYNC_FILE_RANGE = _libc_sync_file_range()


class WriteBehindFile(io.RawIOBase):
    """A new file, written through to disk as it grows, its written pages dropped from the page cache.

    For bulk writers that do not read their output back (the sample web writes ~570 MB per 100k pairs).
    Left to the kernel, dirty pages pile up and every page written needs a fresh one: writing 1 GB that
    way cost ~2 s of CPU on this project's (virtual) machines. Here each `piece` starts its writeback as
    it is written, the piece before is waited for and dropped, and the next pieces reuse its pages.
    Where sync_file_range or posix_fadvise is missing (not Linux), or the file system refuses them, it
    is a plain unbuffered file.
    """

    def __init__(self, path, piece: int = 8 << 20):
        super().__init__()
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        self._piece = piece
        self._written = self._started = self._dropped = 0
        self._behind = _SYNC_FILE_RANGE is not None and hasattr(os, "posix_fadvise")

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._written

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        done = 0
        while done < len(view):
            # at most a piece per call, so that a big block reuses the pages of its own first pieces
            # (os.write may also write less than asked: Linux caps a call near 2 GiB)
            n = os.write(self._fd, view[done:done + self._piece] if self._behind else view[done:])
            done += n
            self._written += n
            if self._behind and self._written - self._started >= self._piece:
                self._push(wait_all=False)
        return done

    def _sync(self, start: int, end: int, flags: int) -> None:
        if _SYNC_FILE_RANGE(self._fd, start, end - start, flags) != 0:
            raise OSError(ctypes.get_errno(), f"sync_file_range failed on {self.path}")

    def _push(self, wait_all: bool) -> None:
        try:
            if self._written > self._started:  # start writing what came since the last push
                self._sync(self._started, self._written, _WRITE)
                if not wait_all:  # wait for the previous push's pages and drop them
                    self._drop(self._started)
                self._started = self._written
            if wait_all:
                self._drop(self._written)
        except OSError:
            self._behind = False  # a file system without write-back control: write on as a plain file

    def _drop(self, end: int) -> None:
        if end > self._dropped:
            self._sync(self._dropped, end, _WAIT_BEFORE | _WRITE | _WAIT_AFTER)
            os.posix_fadvise(self._fd, self._dropped, end - self._dropped, os.POSIX_FADV_DONTNEED)
            self._dropped = end

    def close(self) -> None:
        if self.closed:
            return
        try:
            if self._behind:
                self._push(wait_all=True)
        finally:
            os.close(self._fd)
            super().close()
