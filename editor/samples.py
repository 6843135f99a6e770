"""A resumable cache of generated samples: seeds, z, w, per-layer ws, and each labeller's scores (and embeddings).

Layout of a cache folder (``samples/NAME``):

    meta.json                     generator identity and sampling settings (checked on every reopen)
    chunk_00000.npz               seeds [B], z [B, z_dim], w [B, w_dim], ws [B, num_ws, w_dim] float32
                                  (+ images [B, H, W, 3] uint8 when images are kept)
    chunk_00000.<labeller>.npz    that labeller's scores {attribute: [B]} (+ "__embedding__" [B, E] for CLIP)

A chunk file is written under a temporary name and renamed, so an interrupted run loses at most the chunk in flight
and the next run continues where it stopped. Asking for another labeller later re-renders only the chunks it has not
labelled yet, from the stored ws (rendering is deterministic: constant noise).

Seed i of a cache is ``seed0 + i`` and its z is ``np.random.RandomState(seed).randn(z_dim)``, as the reference scripts
and `editor.engine` do, so a sample can be regenerated anywhere from its seed.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

__all__ = ["SampleSpec", "Samples", "SampleCache", "z_from_seeds", "labeller_slug"]

EMBEDDING_KEY = "__embedding__"


def z_from_seeds(seeds: Sequence[int], z_dim: int) -> np.ndarray:
    """z [N, z_dim] float32, one N(0, I) draw per seed from np.random.RandomState(seed)."""
    return np.stack([np.random.RandomState(int(s)).randn(z_dim) for s in seeds]).astype(np.float32)


def labeller_slug(name: str) -> str:
    """A file-name-safe form of a labeller's name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "labels"


@dataclass(frozen=True)
class SampleSpec:
    """How a cache samples (fixed when the cache is created)."""

    n: int  # number of samples
    seed0: int = 0  # seed of sample 0 (seeds are consecutive)
    psi: float = 1.0  # truncation psi of the mapping (1 = none)
    chunk: int = 250  # samples per chunk file (the unit of resumption)
    keep_images: bool = False  # store the rendered images (uint8) too
    image_size: int | None = None  # resize stored images / labeller input to this size (None: native)

    def __post_init__(self):
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        if self.seed0 < 0:
            raise ValueError(f"seed0 must be >= 0, got {self.seed0}")
        if not 0 < self.psi <= 1.5:
            raise ValueError(f"psi must be in (0, 1.5], got {self.psi}")
        if self.chunk < 1:
            raise ValueError(f"chunk must be >= 1, got {self.chunk}")


@dataclass(frozen=True)
class Samples:
    """What a cache holds, concatenated over its chunks."""

    seeds: np.ndarray  # [N] int64
    z: np.ndarray  # [N, z_dim]
    w: np.ndarray  # [N, w_dim] the mapping output (truncated)
    ws: np.ndarray  # [N, num_ws, w_dim]
    scores: dict  # labeller name -> {attribute: [N]}
    embeddings: dict  # labeller name -> [N, E] (labellers that keep embeddings)
    meta: dict  # meta.json


class SampleCache:
    """Create or reopen a cache folder and fill it; see the module docstring."""

    def __init__(self, root: str | Path, spec: SampleSpec, generator: dict):
        """generator: {'model_id', 'source', 'z_dim', 'w_dim', 'num_ws'}; a reopened cache must match it and spec."""
        self.root = Path(root)
        self.spec = spec
        meta = {"format": 1, "generator": dict(generator), "spec": asdict(spec), "labellers": {}}
        path = self.root / "meta.json"
        if path.is_file():
            old = json.loads(path.read_text())
            for key in ("generator", "spec"):
                a, b = dict(old.get(key, {})), dict(meta[key])
                a.pop("source", None), b.pop("source", None)
                if a != b:
                    raise ValueError(f"{self.root} holds samples made with another {key} ({a} vs now {b}); use a "
                                     "new --out folder or delete this one")
            meta["labellers"] = old.get("labellers", {})
        self.meta = meta
        self.root.mkdir(parents=True, exist_ok=True)
        self._write_meta()

    # -- files ---------------------------------------------------------------------------------------------------

    @property
    def n_chunks(self) -> int:
        return -(-self.spec.n // self.spec.chunk)

    def _chunk_path(self, i: int, labeller: str | None = None) -> Path:
        suffix = "" if labeller is None else "." + labeller_slug(labeller)
        return self.root / f"chunk_{i:05d}{suffix}.npz"

    def _write_meta(self) -> None:
        _atomic_write_text(self.root / "meta.json", json.dumps(self.meta, indent=1))

    def missing(self, labellers: Sequence = ()) -> list[int]:
        """Chunk indices that lack latents or any of the labellers' scores."""
        names = [lab.name for lab in labellers]
        return [i for i in range(self.n_chunks)
                if not self._chunk_path(i).is_file() or any(not self._chunk_path(i, n).is_file() for n in names)]

    # -- filling -------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def fill(self, G, labellers: Sequence = (), device: str = "cpu", batch: int = 32,
             progress: Callable[[int, int], None] | None = None) -> None:
        """Sample, render and label every missing chunk. progress(done, total) is called after each batch."""
        for lab in labellers:
            self.meta["labellers"][lab.name] = list(lab.attributes)
        self._write_meta()
        todo = self.missing(labellers)
        total = sum(self._chunk_len(i) for i in todo)
        done = 0
        for i in todo:
            lat_path = self._chunk_path(i)
            seeds = np.arange(self.spec.seed0 + i * self.spec.chunk,
                              self.spec.seed0 + i * self.spec.chunk + self._chunk_len(i), dtype=np.int64)
            if lat_path.is_file():
                data = dict(np.load(lat_path))
                have_latents = True
            else:
                z = z_from_seeds(seeds, G.z_dim)
                data = {"seeds": seeds, "z": z}
                have_latents = False
            need = [lab for lab in labellers if not self._chunk_path(i, lab.name).is_file()]
            # labellers that read only the ids (ground truth, manual labels) need no synthesis
            render = any(getattr(lab, "needs_images", True) for lab in need) or (
                self.spec.keep_images and not have_latents)
            ws_parts, img_parts, score_parts = [], [], {lab.name: [] for lab in need}
            for b0 in range(0, len(seeds), batch):
                sl = slice(b0, b0 + batch)
                if have_latents:
                    ws = torch.from_numpy(data["ws"][sl]).to(device)
                else:
                    z = torch.from_numpy(data["z"][sl]).to(device)
                    ws = G.mapping(z, None, truncation_psi=self.spec.psi)  # [B, num_ws, w_dim]
                    ws_parts.append(ws.float().cpu().numpy())
                img = None
                if render:
                    img = G.synthesis(ws, noise_mode="const").float().clamp(-1, 1)  # [B, 3, H, W]
                    if self.spec.image_size and img.shape[-1] != self.spec.image_size:
                        img = torch.nn.functional.interpolate(img, size=(self.spec.image_size,) * 2, mode="area")
                    img = img.cpu()
                    if self.spec.keep_images and not have_latents:
                        img_parts.append(((img + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy())
                for lab in need:
                    score_parts[lab.name].append(_label(lab, img, seeds[sl]))
                done += len(seeds[sl])
                if progress is not None:
                    progress(done, total)
            if not have_latents:
                ws_all = np.concatenate(ws_parts)
                data.update(ws=ws_all, w=ws_all[:, 0].copy())
                if img_parts:
                    data["images"] = np.concatenate(img_parts)
                _atomic_savez(lat_path, data)
            for lab in need:
                parts = score_parts[lab.name]
                merged = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
                _atomic_savez(self._chunk_path(i, lab.name), merged)

    def _chunk_len(self, i: int) -> int:
        return min(self.spec.chunk, self.spec.n - i * self.spec.chunk)

    # -- reading -------------------------------------------------------------------------------------------------

    def load(self, labellers: Sequence[str] | None = None) -> Samples:
        """Everything stored (all chunks must be complete: run `fill` first)."""
        names = list(self.meta["labellers"]) if labellers is None else list(labellers)
        missing = [i for i in range(self.n_chunks) if not self._chunk_path(i).is_file()]
        if missing:
            raise ValueError(f"{self.root} is incomplete ({len(missing)} of {self.n_chunks} chunks missing); run "
                             "`python -m editor sample` again to finish it")
        parts = [dict(np.load(self._chunk_path(i))) for i in range(self.n_chunks)]
        cat = {k: np.concatenate([p[k] for p in parts]) for k in ("seeds", "z", "w", "ws")}
        scores, embeddings = {}, {}
        for name in names:
            files = [self._chunk_path(i, name) for i in range(self.n_chunks)]
            if not all(f.is_file() for f in files):
                raise ValueError(f"{self.root} has no complete labels from {name!r}; known: "
                                 f"{', '.join(self.meta['labellers']) or 'none'}")
            lp = [dict(np.load(f)) for f in files]
            merged = {k: np.concatenate([p[k] for p in lp]) for k in lp[0]}
            emb = merged.pop(EMBEDDING_KEY, None)
            if emb is not None:
                embeddings[name] = emb
            scores[name] = merged
        return Samples(seeds=cat["seeds"], z=cat["z"].astype(np.float64), w=cat["w"].astype(np.float64),
                       ws=cat["ws"].astype(np.float64), scores=scores, embeddings=embeddings, meta=self.meta)

    def images(self) -> np.ndarray:
        """Stored images [N, H, W, 3] uint8 (only when the cache keeps images)."""
        if not self.spec.keep_images:
            raise ValueError(f"{self.root} does not keep images (sample with --keep-images)")
        return np.concatenate([np.load(self._chunk_path(i))["images"] for i in range(self.n_chunks)])


def _label(lab, img: torch.Tensor, seeds: np.ndarray) -> dict[str, np.ndarray]:
    """Scores (and, for labellers that can embed, the embeddings) of one batch."""
    ids = [int(s) for s in seeds]
    if hasattr(lab, "label_with_embedding"):
        scores, emb = lab.label_with_embedding(img, ids)
        out = {k: np.asarray(v, dtype=np.float32) for k, v in scores.items()}
        if emb is not None:
            out[EMBEDDING_KEY] = np.asarray(emb, dtype=np.float32)
        return out
    return {k: np.asarray(v, dtype=np.float32) for k, v in lab(img, ids).items()}


def _atomic_savez(path: Path, arrays: dict) -> None:
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
