"""Process-level memory helpers of the renderers (the engine and its render process): a byte-bounded LRU cache
and glibc's malloc settings for large activations."""

from __future__ import annotations

import ctypes
import threading
from collections import OrderedDict
from typing import Any

import numpy as np
import torch

__all__ = ["ByteLRU", "keep_freed_memory"]


class ByteLRU:
    """A thread-safe LRU of numpy arrays (or tuples of tensors/arrays) bounded by total bytes."""

    def __init__(self, max_bytes: int):
        self.max_bytes = int(max_bytes)
        self._items: OrderedDict[Any, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def _nbytes(value: Any) -> int:
        if isinstance(value, np.ndarray):
            return value.nbytes
        if isinstance(value, torch.Tensor):
            return value.element_size() * value.nelement()
        if isinstance(value, (list, tuple)):
            return sum(ByteLRU._nbytes(v) for v in value)
        if isinstance(value, dict):
            return sum(ByteLRU._nbytes(v) for v in value.values())
        nbytes = getattr(value, "nbytes", None)  # e.g. editor.engine.Latent
        return nbytes if isinstance(nbytes, int) else 64

    def get(self, key: Any) -> Any | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return item[0]

    def put(self, key: Any, value: Any) -> None:
        size = self._nbytes(value)
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._items[key] = (value, size)
            self._bytes += size
            while self._bytes > self.max_bytes and self._items:
                _, (_, s) = self._items.popitem(last=False)
                self._bytes -= s

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory in the process for reuse (Linux; process-wide; returns whether applied).

    By default glibc maps every block over 32 MB freshly from the OS and unmaps it when freed, so each render of a
    512-1024 px generator faults every page of its large activations in again: measured 600k page faults and 1.5 s
    of system time per FFHQ-1024 synthesis on the project's 2-core CPU. With one arena, no mmap threshold in reach
    and no trimming, those blocks are reused; the process keeps its peak memory (about 1 GB for FFHQ-1024).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold, m_arena_max = -1, -3, -8
    ok = mallopt(m_mmap_threshold, 1 << 30) == 1
    ok = mallopt(m_trim_threshold, (1 << 31) - 1) == 1 and ok
    return mallopt(m_arena_max, 1) == 1 and ok
