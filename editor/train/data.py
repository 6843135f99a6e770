"""Training data: a folder of images (resized and centre-cropped, held in memory) or the toon world drawn on the fly.

Both are indexed by a global image number n = 0, 1, 2, ... so that batch k is always the same images for a given
seed: a resumed run sees exactly the data an uninterrupted run would have seen. `BatchStream` wraps a source in a
torch DataLoader whose worker processes prepare whole batches ahead of the training loop.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, Protocol

import numpy as np
import torch

__all__ = ["ImageSource", "FolderSource", "ToonSource", "BatchStream", "load_image_folder", "IMAGE_EXTENSIONS"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
TOON_SEED_LIMIT = 10_000_000  # toon seeds used for training stay below the attribute model's held-out seeds


class ImageSource(Protocol):
    """Anything that gives the images of a batch: uint8 [N, H, W, 3] for global image numbers [start, start + N)."""

    resolution: int

    def images(self, start: int, count: int) -> np.ndarray: ...


def _load_one(job) -> np.ndarray:
    path, resolution = job
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        w, h = im.size
        side = min(w, h)
        left, top = (w - side) // 2, (h - side) // 2
        im = im.crop((left, top, left + side, top + side))
        if side != resolution:
            im = im.resize((resolution, resolution), Image.Resampling.LANCZOS)
        return np.asarray(im, dtype=np.uint8)


def load_image_folder(folder: str | os.PathLike, resolution: int, workers: int = 1,
                      max_images: int | None = None) -> np.ndarray:
    """All images under `folder` (recursively, sorted by path), centre-cropped to squares and resized to `resolution`.

    Returns uint8 [N, resolution, resolution, 3].
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist")
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if max_images is not None:
        paths = paths[:max_images]
    if not paths:
        raise ValueError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found under {folder}")
    jobs = [(p, resolution) for p in paths]
    if workers > 1 and len(jobs) > 64:
        import multiprocessing as mp

        with mp.get_context("forkserver").Pool(workers) as pool:  # no fork of a threaded process
            arrays = pool.map(_load_one, jobs, chunksize=32)
    else:
        arrays = [_load_one(j) for j in jobs]
    return np.stack(arrays)


class FolderSource:
    """Images held in memory, visited in a fresh seeded permutation every epoch; optional random x-flips."""

    def __init__(self, images: np.ndarray, seed: int = 0, mirror: bool = False):
        if images.ndim != 4 or images.shape[3] != 3 or images.shape[1] != images.shape[2] or images.dtype != np.uint8:
            raise ValueError(f"images must be uint8 [N, S, S, 3], got {images.dtype} {tuple(images.shape)}")
        self.data = images
        self.resolution = images.shape[1]
        self.seed = seed
        self.mirror = mirror
        self._perm_cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.data)

    def _epoch(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        if epoch not in self._perm_cache:
            rng = np.random.default_rng([self.seed, epoch])
            perm = rng.permutation(len(self.data))
            flips = rng.integers(0, 2, len(self.data)).astype(bool) if self.mirror else np.zeros(len(self.data), bool)
            if len(self._perm_cache) > 4:
                self._perm_cache.clear()
            self._perm_cache[epoch] = (perm, flips)
        return self._perm_cache[epoch]

    def images(self, start: int, count: int) -> np.ndarray:
        out = np.empty((count, self.resolution, self.resolution, 3), np.uint8)
        size = len(self.data)
        for i in range(count):
            epoch, pos = divmod(start + i, size)
            perm, flips = self._epoch(epoch)
            img = self.data[perm[pos]]
            out[i] = img[:, ::-1] if flips[pos] else img
        return out


class ToonSource:
    """The demo world rendered on demand: image n is toon seed (seed_offset + n) mod TOON_SEED_LIMIT, portrait framing."""

    def __init__(self, resolution: int, seed_offset: int = 0, framing: str = "portrait", workers: int = 1,
                 supersample: int | None = None):
        if not 8 <= resolution <= 2048:
            raise ValueError(f"toon resolution must be in [8, 2048], got {resolution}")
        self.resolution = resolution
        self.seed_offset = seed_offset
        self.framing = framing
        self.workers = workers  # processes for large requests (inside DataLoader workers batches render serially)
        self.supersample = supersample  # renderer's canvas oversampling (None: its default; 1 is fastest)

    def images(self, start: int, count: int) -> np.ndarray:
        from editor.toonfaces import render_batch

        seeds = [(self.seed_offset + n) % TOON_SEED_LIMIT for n in range(start, start + count)]
        workers = self.workers if count >= 256 and _in_main_process() else 1
        images, _, _ = render_batch(seeds, size=self.resolution, framing=self.framing, workers=workers,
                                    supersample=self.supersample)
        return images


def _in_main_process() -> bool:
    return torch.utils.data.get_worker_info() is None


class _BatchDataset(torch.utils.data.Dataset):
    def __init__(self, source: ImageSource, batch_size: int):
        self.source = source
        self.batch_size = batch_size

    def __len__(self) -> int:  # only used by samplers that ask; the stream is infinite
        return 2 ** 62

    def __getitem__(self, batch_index: int) -> torch.Tensor:
        imgs = self.source.images(batch_index * self.batch_size, self.batch_size)  # [N, H, W, 3] uint8
        return torch.from_numpy(np.ascontiguousarray(imgs)).permute(0, 3, 1, 2).contiguous()  # [N, 3, H, W]


class _CountFrom(torch.utils.data.Sampler):
    def __init__(self, start: int):
        self.start = start

    def __iter__(self) -> Iterator[int]:
        k = self.start
        while True:
            yield k
            k += 1


class BatchStream:
    """Infinite iterator over uint8 batches [N, 3, H, W] starting at batch `start_batch`.

    workers > 0 prepares batches in that many processes (each renders / gathers whole batches) `prefetch` batches
    ahead per worker; workers = 0 prepares them in the calling thread.
    """

    def __init__(self, source: ImageSource, batch_size: int, start_batch: int = 0, workers: int = 0,
                 prefetch: int = 2, pin_memory: bool = False):
        if batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {batch_size}")
        self.dataset = _BatchDataset(source, batch_size)
        # a private generator: creating the loader's iterator must not draw from the global RNG (exact resume)
        kwargs = dict(batch_size=None, sampler=_CountFrom(start_batch), num_workers=workers, pin_memory=pin_memory,
                      generator=torch.Generator().manual_seed(0))
        if workers > 0:
            kwargs.update(prefetch_factor=prefetch, persistent_workers=False, multiprocessing_context="fork")
        self.loader = torch.utils.data.DataLoader(self.dataset, **kwargs)
        self._it = iter(self.loader)

    def __iter__(self):
        return self

    def __next__(self) -> torch.Tensor:
        return next(self._it)

    def close(self) -> None:
        """Stop the worker processes."""
        it = getattr(self, "_it", None)
        if it is not None and hasattr(it, "_shutdown_workers"):
            it._shutdown_workers()
        self._it = None
