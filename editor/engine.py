"""The interactive backend: per-user edit state as plain frozen data, one shared read-only generator, caches.

An edit never changes the generator, only the latent codes fed to its synthesis network:

    ws' = ws + sum_i alpha_i * sigma_i * n_i'        (only on the chosen layers)

where n_i is the unit direction of attribute i in the bank (per layer), sigma_i the standard deviation of the
samples' projections on it (so alpha is measured in sigma units, the same for every attribute), and n_i' is n_i with
the components along every *locked* attribute's direction removed layer by layer and renormalised
(`editor.directions.condition`: InterFaceGAN's conditional editing extended to any number of locked attributes). The
result equals `editor.bank.apply_edit` for linear directions.

Caches (all bounded, all behind their own locks, all keyed by content):
- the mapping output of sampled latents, keyed by (seed, psi);
- the per-direction edit delta (after locking and layer masking), and its per-layer style delta when the synthesis
  network exposes `compute_styles` (the affine layers are linear, so an edit adds a fixed style offset);
- the per-latent base styles;
- rendered frames in a byte-bounded LRU keyed by (latent, edit, resolution).

With `EngineConfig.render_process` (app.py sets it on a CPU) the synthesis runs in a child process
holding its own copy of the synthesis network (`editor.render_worker`), clear of the web server's threads; mapping and
styles stay here.

The generator is shared by every user and called under one first-come-first-served lock (CPU torch already uses all
cores for one call), so `Engine` is safe to call from Gradio's worker threads. Nothing per-user lives at module level:
a user's state is an `EditState` value held by the caller (a `gr.State`, an API request or a recipe file).
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import logging
import math
import threading
import time
import weakref
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch

from editor.directions import condition
from editor.memory import ByteLRU, keep_freed_memory

log = logging.getLogger("editor.engine")

# Layer presets for W+ edits, by the resolution of the synthesis block a layer feeds (as in StyleGAN's "coarse /
# middle / fine styles"): coarse = 4..8 px, middle = 16..32 px, fine = 64 px and up.
LAYER_PRESETS = ("all", "coarse", "middle", "fine", "custom")
SPACES = ("w", "w+")
MAX_ABS_ALPHA = 20.0  # sliders are in sigma units; beyond this the latent is far off the data manifold


# ----------------------------------------------------------------------------------------------------------------
# Plain data: directions, banks, latents, edit states


@dataclass(frozen=True)
class Direction:
    """One editing direction of one attribute, as the engine needs it."""

    attribute: str  # attribute name shown on the slider, e.g. "smile"
    vector: np.ndarray = field(compare=False, repr=False)  # [w_dim] (W) or [num_ws, w_dim] (W+), any norm
    sigma: float = 1.0  # std of the samples' projections on the unit direction: one slider unit
    method: str = "svm"  # how it was found ("svm", "logreg", "meandiff", "pca", ...)
    space: str = "w"  # "w" or "w+"
    layers: tuple[int, int] | None = None  # suggested [lo, hi) W+ layer range, None = all layers

    def unit(self, num_ws: int, w_dim: int) -> np.ndarray:
        """The unit direction of every layer, [num_ws, w_dim] float64: a W direction repeated on each layer, a W+
        direction with each row normalised (as `editor.bank` does: one slider unit moves every edited layer by
        sigma along its row)."""
        v = np.asarray(self.vector, dtype=np.float64)
        if v.shape in ((w_dim,), (1, w_dim)):
            v = np.broadcast_to(v.reshape(1, w_dim), (num_ws, w_dim))
        elif v.shape != (num_ws, w_dim):
            raise ValueError(
                f"direction {self.attribute!r} has shape {tuple(v.shape)}; this generator needs "
                f"[{w_dim}] or [{num_ws}, {w_dim}]"
            )
        norms = np.linalg.norm(v, axis=1, keepdims=True)  # [num_ws, 1]
        if not np.isfinite(v).all() or (norms == 0).any():
            raise ValueError(f"direction {self.attribute!r} has a zero or non-finite row")
        return v / norms


@dataclass(frozen=True)
class EditBank:
    """The directions the editor offers: one or more per attribute (different methods / spaces)."""

    directions: tuple[Direction, ...]
    bank_id: str = "bank"  # identity written into recipes
    description: str = ""  # shown in the UI (e.g. where the bank came from)

    def __post_init__(self):
        for d in self.directions:
            if d.space not in SPACES:
                raise ValueError(f"direction {d.attribute!r}: space {d.space!r} is not one of {SPACES}")
            if not (math.isfinite(d.sigma) and d.sigma > 0):
                raise ValueError(f"direction {d.attribute!r}: sigma must be a positive number, got {d.sigma!r}")

    @property
    def attributes(self) -> tuple[str, ...]:
        """Attribute names in bank order, without duplicates."""
        return tuple(dict.fromkeys(d.attribute for d in self.directions))

    @property
    def methods(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(d.method for d in self.directions))

    def find(self, attribute: str, method: str | None = None, space: str = "w",
             layers: tuple[int, int] | None = None) -> Direction:
        """The direction of `attribute` that best fits an edit in `space` on `layers` ([lo, hi), W+ only).

        method: None ('auto') considers every method; a method name only that method, and a ValueError (with the
        methods the attribute has) when the attribute has none: a named attribute never silently gets another
        method's direction. Among the candidates (bank order breaks ties): for W, a W direction, then a full W+
        one, then one fitted on a layer range (it acts on its own layers); for W+ on [lo, hi), a W+ direction
        fitted on exactly those layers, then a full W+ one, then a W direction (applied on those layers), then the
        layer-range direction that overlaps [lo, hi) most. Whether the result acts on the chosen layers at all is
        `Engine.slider_problem`'s question.
        """
        candidates = [d for d in self.directions if d.attribute == attribute]
        if not candidates:
            known = ", ".join(self.attributes) or "none"
            raise ValueError(f"unknown attribute {attribute!r}; this bank has: {known}")
        if method is not None:
            mine = [d for d in candidates if d.method == method]
            if not mine:
                has = ", ".join(dict.fromkeys(d.method for d in candidates))
                raise ValueError(f"slider {attribute!r} has no {method!r} direction (it has: {has})")
            candidates = mine
        rng = layers if (space == "w+" and layers is not None) else None

        def rank(d: Direction) -> tuple[int, int]:
            if rng is None:
                return (0 if d.space == "w" else 1 if d.layers is None else 2), 0
            if d.space == "w+" and d.layers is not None and tuple(d.layers) == tuple(rng):
                return 0, 0
            if d.space == "w+" and d.layers is None:
                return 1, 0
            if d.space == "w":
                return 2, 0
            overlap = min(rng[1], d.layers[1]) - max(rng[0], d.layers[0])
            return (3 if overlap > 0 else 4), -overlap

        return min(candidates, key=rank)  # min keeps the first of equal ranks: bank order

    def check_fits(self, num_ws: int, w_dim: int) -> None:
        """Raise ValueError when any direction's shape does not fit a generator with these dimensions."""
        for d in self.directions:
            d.unit(num_ws, w_dim)


@dataclass(frozen=True)
class Latent:
    """A base latent: W+ codes [num_ws, w_dim] float32 (a W code is stored broadcast), with a content key."""

    ws: np.ndarray = field(compare=False, repr=False)  # [num_ws, w_dim] float32, read-only
    key: str = ""  # content digest: equal keys mean identical codes
    kind: str = "w"  # "w" (all layers equal) or "w+"
    origin: str = ""  # human-readable provenance: "seed 3, psi 0.7", "projected photo", "mix", ...
    seed: int | None = None  # set for sampled latents
    psi: float | None = None  # truncation used for sampled latents
    z: np.ndarray | None = field(default=None, compare=False, repr=False)  # [z_dim] for sampled latents (Z slerp)

    @property
    def nbytes(self) -> int:
        """Memory it holds (what the byte-bounded caches count)."""
        return self.ws.nbytes + (0 if self.z is None else self.z.nbytes) + 256

    @staticmethod
    def from_array(ws: Any, num_ws: int, w_dim: int, origin: str = "", **kw) -> "Latent":
        """Build from a [w_dim], [1, w_dim] or [num_ws, w_dim] array (numpy or torch); checks shape and values."""
        arr = ws.detach().cpu().numpy() if isinstance(ws, torch.Tensor) else np.asarray(ws)
        if arr.dtype == object or not np.issubdtype(arr.dtype, np.number):
            raise ValueError(f"latent must be numeric, got dtype {arr.dtype}")
        arr = arr.astype(np.float32)
        if arr.ndim == 3 and arr.shape[0] == 1:
            arr = arr[0]
        if arr.shape in ((w_dim,), (1, w_dim)):
            arr = np.broadcast_to(arr.reshape(1, w_dim), (num_ws, w_dim))
            kind = "w"
        elif arr.shape == (num_ws, w_dim):
            kind = "w" if bool((arr == arr[:1]).all()) else "w+"
        else:
            raise ValueError(
                f"latent has shape {tuple(arr.shape)}; this generator needs [{w_dim}] (W) or [{num_ws}, {w_dim}] (W+)"
            )
        if not np.isfinite(arr).all():
            raise ValueError("latent contains NaN or infinite values")
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        arr.flags.writeable = False
        digest = hashlib.sha1(arr.tobytes() + str(arr.shape).encode()).hexdigest()[:16]
        return Latent(ws=arr, key=digest, kind=kind, origin=origin, **kw)


@dataclass(frozen=True)
class EditState:
    """Everything that decides one rendered frame besides the (shared) generator and bank.

    Build with `EditState.create(...)`, which canonicalises: sliders sorted by name, zero sliders dropped (so a
    slider at 0 is exactly the unedited image and shares its cache entry), locked names sorted.
    """

    latent: Latent
    sliders: tuple[tuple[str, float], ...] = ()  # (attribute, alpha in sigma units), sorted, non-zero
    method: str | None = None  # preferred direction method; None = each attribute's first direction
    space: str = "w"  # "w": edit every layer; "w+": edit only `layers`
    layers: tuple[int, int] | None = None  # [lo, hi) layer range for "w+"; None = all layers
    locked: tuple[str, ...] = ()  # attributes other edits must not change

    @staticmethod
    def create(
        latent: Latent,
        sliders: Mapping[str, float] | Iterable[tuple[str, float]] = (),
        method: str | None = None,
        space: str = "w",
        layers: tuple[int, int] | None = None,
        locked: Iterable[str] = (),
    ) -> "EditState":
        items = sliders.items() if isinstance(sliders, Mapping) else sliders
        clean: dict[str, float] = {}
        for name, value in items:
            clean[str(name)] = check_alpha(str(name), value)
        if space not in SPACES:
            raise ValueError(f"space must be one of {SPACES}, got {space!r}")
        if layers is not None:
            lo, hi = int(layers[0]), int(layers[1])
            layers = (lo, hi)
        return EditState(
            latent=latent,
            sliders=tuple(sorted((k, v) for k, v in clean.items() if v != 0.0)),
            method=method or None,
            space=space,
            layers=layers if space == "w+" else None,
            locked=tuple(sorted(set(str(n) for n in locked))),
        )

    def with_sliders(self, sliders: Mapping[str, float]) -> "EditState":
        """A copy with some slider values replaced (others kept)."""
        merged = dict(self.sliders)
        merged.update(sliders)
        return EditState.create(self.latent, merged, self.method, self.space, self.layers, self.locked)

    def reset(self) -> "EditState":
        """The same latent and settings with every slider at zero."""
        return replace(self, sliders=())

    def edit_key(self) -> tuple:
        """The hashable part of the state that decides the edit (not the latent)."""
        return (self.sliders, self.method, self.space, self.layers, self.locked)


def check_alpha(name: str, value: Any) -> float:
    """A slider value as a float, or a ValueError that names the slider."""
    try:
        alpha = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"slider {name!r}: {value!r} is not a number") from None
    if not math.isfinite(alpha):
        raise ValueError(f"slider {name!r}: {value!r} is not a finite number")
    if abs(alpha) > MAX_ABS_ALPHA:
        raise ValueError(f"slider {name!r}: {alpha:g} is outside [-{MAX_ABS_ALPHA:g}, {MAX_ABS_ALPHA:g}] sigma")
    return alpha


def layer_preset(preset: str, num_ws: int, custom: tuple[int, int] | None = None) -> tuple[int, int]:
    """The [lo, hi) W+ layer range of a preset name for a generator with `num_ws` layers.

    Layer i feeds the block of resolution 4 * 2**((i + 1) // 2) (4x4 has one conv; every later block two convs, the
    to-RGB layer shares the next conv's code). coarse: 4..8 px -> layers 0-3; middle: 16..32 px -> 4-7; fine: 8-end.
    """
    if preset == "all":
        return (0, num_ws)
    if preset == "custom":
        if custom is None:
            raise ValueError("layer range 'custom' needs a (lo, hi) pair")
        lo, hi = int(custom[0]), int(custom[1])
        if not 0 <= lo < hi <= num_ws:
            raise ValueError(f"custom layer range [{lo}, {hi}) must satisfy 0 <= lo < hi <= {num_ws}")
        return (lo, hi)
    bounds = {"coarse": (0, 4), "middle": (4, 8), "fine": (8, num_ws)}
    if preset not in bounds:
        raise ValueError(f"layer range must be one of {LAYER_PRESETS}, got {preset!r}")
    lo, hi = bounds[preset]
    lo, hi = min(lo, num_ws - 1), min(hi, num_ws)
    return (lo, max(hi, lo + 1))


# ----------------------------------------------------------------------------------------------------------------
# Caches


def _tree_map(fn: Callable, *trees: Any) -> Any:
    """Apply fn leaf-wise over matching tensors / lists / tuples / dicts (the synthesis network's style format)."""
    first = trees[0]
    if isinstance(first, torch.Tensor):
        return fn(*trees)
    if isinstance(first, (list, tuple)):
        return type(first)(_tree_map(fn, *parts) for parts in zip(*trees))
    if isinstance(first, dict):
        return {k: _tree_map(fn, *(t[k] for t in trees)) for k in first}
    raise TypeError(f"unsupported style container {type(first).__name__}")


class FifoLock:
    """A lock that threads get in the order they asked for it (`threading.Lock` lets any waiter in, so under load
    one request could lose the generator to later ones several times in a row: measured as a p95 latency of 2x the
    p50 with 8 concurrent API clients). Not re-entrant; use as a context manager."""

    def __init__(self):
        self._mutex = threading.Lock()
        self._waiters: deque[threading.Lock] = deque()
        self._held = False

    def acquire(self) -> bool:
        with self._mutex:
            if not self._held:
                self._held = True
                return True
            baton = threading.Lock()
            baton.acquire()
            self._waiters.append(baton)
        baton.acquire()  # released by the holder's `release`, which hands the lock over (it stays held)
        return True

    def release(self) -> None:
        with self._mutex:
            if not self._held:
                raise RuntimeError("release of an unheld FifoLock")
            if self._waiters:
                self._waiters.popleft().release()
            else:
                self._held = False

    def locked(self) -> bool:
        return self._held

    def __enter__(self) -> "FifoLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


# ----------------------------------------------------------------------------------------------------------------
# The engine


@dataclass(frozen=True)
class EngineConfig:
    """Tuning knobs of the backend."""

    preview_resolution: int = 256  # drag previews stop the synthesis at min(this, 256, full size / 2); full
    #                                size for generators of <= 128 px
    preview_budget_s: float | None = None  # if set: lower the preview size (not below 32 px) until one preview
    #                                        render takes at most this long on this machine (timed at start-up)
    frame_cache_bytes: int = 256 * 2**20  # byte bound of the rendered-frame LRU
    batch_size: int = 8  # frames per synthesis call for strips / animations (on a CPU with the fast path:
    #                      one frame per call, which is faster there)
    use_style_cache: bool = True  # cache styles when the synthesis network exposes compute_styles
    preview_dtype: str = "auto"  # "float32", "bfloat16" (approximate, about 2x faster on CPUs with AVX512-BF16),
    #                              or "auto": bfloat16 on a CPU that has it natively; full renders stay float32
    keep_freed_memory: bool = True  # on a CPU, `keep_freed_memory()` at start-up (process-wide malloc settings)
    prefix_cache_bytes: int = 256 * 2**20  # byte bound of the cached features of blocks an edit leaves unchanged
    render_threads: int | None = None  # torch CPU threads per render; None: one for generators up to
    #                                    SMALL_GENERATOR_PX (their layers are too small to split, and a second
    #                                    thread waiting on a busy core made a 64 px render 15x slower), else
    #                                    torch's setting
    render_process: bool = False  # on a CPU (fast path): render in a child process with its own copy of the
    #                               synthesis network, so renders do not share the interpreter lock with a web
    #                               server's threads (editor.render_worker; app.py turns it on)


SMALL_GENERATOR_PX = 256  # render_threads=None renders generators up to this size on one thread


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Run the body with `torch.set_num_threads(n)` (None: unchanged), restoring the previous setting after."""
    old = torch.get_num_threads()
    if n is None or n == old:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 dot products natively (AVX512-BF16 or AMX), per /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool({"avx512_bf16", "amx_bf16"} & flags)
    except OSError:
        pass
    return False


def image_to_uint8(img: torch.Tensor) -> np.ndarray:
    """[N, C, H, W] float in about [-1, 1] -> [N, H, W, 3] uint8 (reference convention: x * 127.5 + 128)."""
    x = (img.detach().float() * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    x = x.permute(0, 2, 3, 1).cpu().numpy()
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    return x


def default_model_id(G: torch.nn.Module) -> str:
    """The generator's identity: `editor.checkpoints.model_id` when available, else a digest of its weights."""
    try:
        from editor.checkpoints import model_id  # type: ignore

        return str(model_id(G))
    except (ImportError, AttributeError):
        pass
    h = hashlib.sha1()
    for name, t in sorted(G.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return "sha1:" + h.hexdigest()[:16]


class Engine:
    """Renders edit states with one shared generator and bank. Safe to call from many threads."""

    def __init__(
        self,
        G: torch.nn.Module,
        bank: EditBank,
        device: str | torch.device = "cpu",
        config: EngineConfig = EngineConfig(),
        model_id: str | None = None,
        model_name: str = "",
    ):
        self.G = G.eval().requires_grad_(False).to(device)
        self.device = torch.device(device)
        self.config = config
        self.num_ws = int(G.num_ws)
        self.w_dim = int(G.w_dim)
        self.z_dim = int(G.z_dim)
        self.c_dim = int(getattr(G, "c_dim", 0))
        self.resolution = int(G.img_resolution)
        bank.check_fits(self.num_ws, self.w_dim)
        self.bank = bank
        self.model_id = model_id or default_model_id(G)
        self.model_name = model_name or self.model_id
        params = inspect.signature(G.synthesis.forward).parameters
        self._has_stop = "stop_resolution" in params
        self._has_styles = (
            config.use_style_cache and "styles" in params and hasattr(G.synthesis, "compute_styles")
        )
        # The preview is a lower block of the same synthesis: 256 px for FFHQ-1024 / 512, 128 px for 256 px
        # generators; generators of 128 px and less render in full (cheap, and a briefly trained small generator's
        # last block adds much of the contrast, so its partial skip image looks washed out).
        cap = min(int(config.preview_resolution), 256)
        self.preview_resolution = min(cap, self.resolution if self.resolution <= 128 else self.resolution // 2)
        if not self._has_stop or self.preview_resolution not in _block_resolutions(self.resolution):
            self.preview_resolution = self.resolution
        # The project's synthesis network renders one sample at a time fastest on a CPU, can resume after a block
        # (edits that leave the first blocks unchanged reuse them) and computes bfloat16 previews.
        syn = G.synthesis
        self._fast = self.device.type == "cpu" and hasattr(syn, "fast_path_applies")
        self._can_resume = self._fast and self._has_styles and hasattr(syn, "run_blocks")
        if config.preview_dtype not in ("auto", "float32", "bfloat16"):
            raise ValueError(f"preview_dtype must be 'auto', 'float32' or 'bfloat16', got {config.preview_dtype!r}")
        bf16 = config.preview_dtype == "bfloat16" or (config.preview_dtype == "auto" and cpu_has_native_bf16())
        self.preview_dtype = torch.bfloat16 if (bf16 and self._fast and "dtype" in params) else None
        if self.device.type == "cpu" and config.keep_freed_memory:
            keep_freed_memory()
        self.render_threads = config.render_threads
        if self.render_threads is None and self.device.type == "cpu" and self.resolution <= SMALL_GENERATOR_PX:
            self.render_threads = 1
        self._model_lock = FifoLock()  # the generator renders one request at a time, in arrival order
        self._worker = None  # editor.render_worker.RenderWorker when config.render_process applies
        if config.render_process and self._fast:
            from editor.render_worker import RenderWorker, WorkerDied

            if RenderWorker.applies(G):
                try:
                    self._worker = RenderWorker(G, threads=self.render_threads,
                                                keep_memory=config.keep_freed_memory,
                                                prefix_bytes=config.prefix_cache_bytes)
                    weakref.finalize(self, self._worker.close)
                except WorkerDied as exc:
                    log.warning("%s; rendering in this process", exc)
        self._bank_lock = threading.Lock()
        self.frames = ByteLRU(config.frame_cache_bytes)
        self._deltas = ByteLRU(64 * 2**20)
        self._mapping = ByteLRU(32 * 2**20)
        self._base_styles = ByteLRU(64 * 2**20)
        self._prefixes = ByteLRU(config.prefix_cache_bytes)
        self._layer_index = syn.layer_ws_index() if self._can_resume else {}
        if config.preview_budget_s is not None and self._has_stop:
            self.preview_resolution = self._calibrate_preview(float(config.preview_budget_s))

    def _calibrate_preview(self, budget_s: float) -> int:
        """The largest block resolution <= the preview size whose render takes at most `budget_s` here (timed once
        after a warm-up call); the smallest candidate (>= 32 px) when none does."""
        candidates = [r for r in _block_resolutions(self.resolution) if 32 <= r <= self.preview_resolution][::-1]
        if len(candidates) < 2:
            return self.preview_resolution
        ws = torch.from_numpy(np.array(self.sample(0).ws))[None]  # [1, num_ws, w_dim]
        self._synthesize(ws, candidates[0], dtype=self.preview_dtype)  # warm-up
        for res in candidates:
            t0 = time.perf_counter()
            self._synthesize(ws, res, dtype=self.preview_dtype)
            if time.perf_counter() - t0 <= budget_s:
                return res
        return candidates[-1]

    # -- latents ---------------------------------------------------------------------------------------------------

    def sample(self, seed: int, psi: float = 0.7) -> Latent:
        """The W latent of a seed (z ~ N(0, I) from numpy's RandomState(seed), as the reference scripts do)."""
        seed, psi = _check_seed(seed), _check_psi(psi)
        key = ("seed", seed, psi)
        cached = self._mapping.get(key)
        if cached is not None:
            return cached
        z = np.random.RandomState(seed).randn(1, self.z_dim).astype(np.float32)  # [1, z_dim]
        ws = self._map(z, psi)[0]
        latent = Latent.from_array(
            ws, self.num_ws, self.w_dim, origin=f"seed {seed}, psi {psi:g}", seed=seed, psi=psi, z=z[0]
        )
        self._mapping.put(key, latent)
        return latent

    def latent_from_z(self, z: np.ndarray, psi: float = 1.0, origin: str = "") -> Latent:
        """Map a [z_dim] code to a W latent."""
        z = np.asarray(z, dtype=np.float32).reshape(1, -1)
        if z.shape[1] != self.z_dim or not np.isfinite(z).all():
            raise ValueError(f"z must be {self.z_dim} finite numbers, got shape {z.shape}")
        psi = _check_psi(psi)
        return Latent.from_array(self._map(z, psi)[0], self.num_ws, self.w_dim, origin=origin, psi=psi, z=z[0])

    def latent_from_array(self, ws: Any, origin: str = "") -> Latent:
        return Latent.from_array(ws, self.num_ws, self.w_dim, origin=origin)

    def _map(self, z: np.ndarray, psi: float) -> torch.Tensor:
        c = torch.zeros(z.shape[0], self.c_dim, device=self.device)
        with self._model_lock, torch.inference_mode(), torch_threads(self.render_threads):
            return self.G.mapping(torch.from_numpy(z).to(self.device), c, truncation_psi=psi).cpu()

    # -- edits ------------------------------------------------------------------------------------------------------

    def check_state(self, state: EditState) -> None:
        """Raise ValueError when the state names attributes the bank lacks or a bad layer range."""
        known = set(self.bank.attributes)
        for name, _ in state.sliders:
            if name not in known:
                raise ValueError(f"unknown attribute {name!r}; this bank has: {', '.join(self.bank.attributes)}")
        for name in state.locked:
            if name not in known:
                raise ValueError(f"cannot lock unknown attribute {name!r}")
        if state.latent.ws.shape != (self.num_ws, self.w_dim):
            raise ValueError(
                f"latent has shape {state.latent.ws.shape}, this generator needs [{self.num_ws}, {self.w_dim}]"
            )
        if state.layers is not None:
            lo, hi = state.layers
            if not 0 <= lo < hi <= self.num_ws:
                raise ValueError(f"layer range [{lo}, {hi}) must satisfy 0 <= lo < hi <= {self.num_ws}")

    def _layer_mask(self, state: EditState, d: Direction) -> np.ndarray:
        """[num_ws, 1] 0/1: the state's layer range intersected with the direction's own layers (if it has any)."""
        mask = np.zeros((self.num_ws, 1))
        lo, hi = state.layers if (state.space == "w+" and state.layers is not None) else (0, self.num_ws)
        if d.layers is not None:
            lo, hi = max(lo, d.layers[0]), min(hi, d.layers[1])
        if lo >= hi:
            raise ValueError(
                f"slider {d.attribute!r} ({d.method}) acts only on layers {d.layers[0]}-{d.layers[1] - 1}, outside "
                f"the chosen layer range {state.layers[0]}-{state.layers[1] - 1}"
            )
        mask[lo:hi] = 1.0
        return mask

    def choose(self, state: EditState, attribute: str) -> Direction:
        """The bank direction a slider of `attribute` uses under the state's method, space and layers."""
        return self.bank.find(attribute, state.method, state.space, state.layers)

    def _lock_direction(self, state: EditState, attribute: str, edit_method: str) -> Direction:
        """The direction a lock on `attribute` removes from an edit along a direction of `edit_method`: for the
        mean-difference kinds, the locked attribute's mean difference (the direction its faces differ along, which
        the generator follows); otherwise, and where the bank has none, the direction its own slider would use.
        On the demo model, with the partial sliders, locking along the partner's mean difference kept the partner on
        0.60 of faces (0.47 along its partial direction, 0.09-0.25 along its ridge normal) while 0.55 of the locked
        edits still succeeded (checkpoints/demo/README.md, "Sliders")."""
        if edit_method in ("partial", "meandiff"):
            try:
                return self.bank.find(attribute, "meandiff", state.space, state.layers)
            except ValueError:
                pass
        try:
            return self.choose(state, attribute)
        except ValueError:
            return self.bank.find(attribute, None, state.space, state.layers)

    def slider_problem(self, attribute: str, method: str | None = None, space: str = "w",
                       layers: tuple[int, int] | None = None) -> str | None:
        """Why a slider of `attribute` cannot edit with these settings (no direction of that method, or none that
        acts on those layers), or None when it can. The app disables such sliders before they are moved."""
        settings = EditState(None, (), method, space, layers if space == "w+" else None, ())  # type: ignore[arg-type]
        try:
            self._layer_mask(settings, self.choose(settings, attribute))
        except ValueError as exc:
            return str(exc)
        return None

    def direction_delta(self, state: EditState, attribute: str) -> torch.Tensor:
        """The ws offset of one slider unit (one sigma) of `attribute` under the state's method, space, layers and
        locks: [num_ws, w_dim] float32, zero outside the layer range, orthogonal to every locked direction."""
        key = ("ws", attribute, state.method, state.space, state.layers, state.locked)
        cached = self._deltas.get(key)
        if cached is not None:
            return cached
        d = self.choose(state, attribute)
        mask = self._layer_mask(state, d)[:, 0] > 0  # [num_ws] layers this edit moves
        rows = d.unit(self.num_ws, self.w_dim)  # [num_ws, w_dim]
        # Locked directions count on the layers where both they and the edit act (as editor.bank.apply_edit does).
        locks = []  # (rows [num_ws, w_dim], acts [num_ws] bool, same row on every layer)
        for name in state.locked:
            if name == attribute:
                continue
            o = self._lock_direction(state, name, d.method)
            try:
                locks.append((o.unit(self.num_ws, self.w_dim), self._layer_mask(state, o)[:, 0] > 0, _is_w(o)))
            except ValueError:  # the locked direction does not act on these layers: nothing to remove
                continue
        edit = np.zeros((self.num_ws, self.w_dim))
        solved: dict[tuple, np.ndarray] = {}  # W directions give the same problem on many layers: solve it once
        for layer in np.flatnonzero(mask):
            present = [i for i, (_, acts, _) in enumerate(locks) if acts[layer]]
            key = (-1 if _is_w(d) else layer, tuple((i, -1 if locks[i][2] else layer) for i in present))
            if key not in solved:
                here = [locks[i][0][layer] for i in present]
                solved[key] = condition(rows[layer], np.stack(here)) if here else rows[layer]
            edit[layer] = solved[key]
        delta = torch.from_numpy((edit * d.sigma).astype(np.float32))
        self._deltas.put(key, delta)
        return delta

    def edited_ws(self, state: EditState) -> torch.Tensor:
        """The edited codes of a state: [num_ws, w_dim] float32 (CPU)."""
        self.check_state(state)
        ws = torch.from_numpy(np.array(state.latent.ws))  # [num_ws, w_dim]
        for name, alpha in state.sliders:
            ws = ws + alpha * self.direction_delta(state, name)
        return ws

    # -- rendering --------------------------------------------------------------------------------------------------

    def render(self, state: EditState, preview: bool = False) -> np.ndarray:
        """The image of an edit state: [H, W, 3] uint8, read-only. Deterministic (constant noise); cached.

        preview=True stops the synthesis at `preview_resolution` (<= 256 px) for slider drags, computed in
        `preview_dtype`. An edit that leaves the first blocks of the synthesis unchanged (a W+ layer range) resumes
        after them from cached features of its latent.
        """
        res = self.preview_resolution if preview else self.resolution
        key = (state.latent.key, state.edit_key(), res)
        frame = self.frames.get(key)
        if frame is not None:
            return frame
        self.check_state(state)
        dtype = self.preview_dtype if preview else None
        ws = self.edited_ws(state)[None]  # [1, num_ws, w_dim]
        if self._has_styles:
            styles = self._edited_styles(state)
            clean = self._unchanged_block(state, res) if self._can_resume else None
            resume = None if clean is None else (state.latent.key, clean)
            img = self._synthesize(ws, res, styles=styles, dtype=dtype, resume=resume)
        else:
            img = self._synthesize(ws, res, dtype=dtype)
        frame = image_to_uint8(img)[0]
        frame.flags.writeable = False
        self.frames.put(key, frame)
        return frame

    @property
    def thumbnail_resolution(self) -> int:
        """The size of gallery, grid and strip images: the full image up to 256 px, else the 256 px block (the
        drag preview size is no good here: under load it can drop to 32 px)."""
        if self.resolution <= 256 or not self._has_stop:
            return self.resolution
        return 256

    def thumbnails(self, latents: Sequence[Latent]) -> list[np.ndarray]:
        """Images of unedited latents at `thumbnail_resolution`, rendered as batches."""
        if not latents:
            return []
        ws = torch.stack([torch.from_numpy(np.array(l.ws)) for l in latents])
        return self.render_ws(ws, resolution=self.thumbnail_resolution)

    def render_ws(self, ws: torch.Tensor, preview: bool = False, resolution: int | None = None) -> list[np.ndarray]:
        """Render a batch of codes [N, num_ws, w_dim] in chunks of `batch_size` (strips, animations), at full size,
        the preview size, or `resolution` (a block resolution of this generator)."""
        if ws.ndim != 3 or tuple(ws.shape[1:]) != (self.num_ws, self.w_dim):
            raise ValueError(f"ws must be [N, {self.num_ws}, {self.w_dim}], got {tuple(ws.shape)}")
        res = resolution or (self.preview_resolution if preview else self.resolution)
        if res not in _block_resolutions(self.resolution) or (res != self.resolution and not self._has_stop):
            raise ValueError(f"cannot render at {res} px with this {self.resolution} px generator")
        out: list[np.ndarray] = []
        step = 1 if self._fast else self.config.batch_size
        for i in range(0, ws.shape[0], step):
            out.extend(image_to_uint8(self._synthesize(ws[i : i + step], res)))
        return out

    def _synthesize(self, ws: torch.Tensor, res: int, styles: Any = None, dtype: torch.dtype | None = None,
                    resume: tuple[str, int] | None = None) -> torch.Tensor:
        """The image of ws (or of `styles`) at block `res`; resume=(latent key, block): the blocks up to that one
        are taken from features cached per latent (computed on the first such call)."""
        kwargs: dict[str, Any] = {"noise_mode": "const"}
        if res != self.resolution:
            kwargs["stop_resolution"] = res
        if styles is not None:
            kwargs["styles"] = styles
        if dtype is not None:
            kwargs["dtype"] = dtype
        worker = self._worker
        if worker is not None and worker.alive:
            from editor.render_worker import WorkerDied

            prefix = None if resume is None else ((resume[0], resume[1], str(dtype)), resume[1])
            styles_arg = kwargs.pop("styles", None)
            try:
                with self._model_lock:
                    return worker.render(ws, styles_arg, kwargs, prefix)
            except WorkerDied as exc:
                log.warning("%s; rendering in the server's process from now on", exc)
                if styles_arg is not None:
                    kwargs["styles"] = styles_arg
        start = None if resume is None else self._prefix(resume[0], resume[1], ws, styles, dtype)
        with self._model_lock, torch.inference_mode(), torch_threads(self.render_threads):
            if start is not None:
                return self.G.synthesis.run_blocks(ws.to(self.device), start=start, **kwargs)[1].cpu()
            return self.G.synthesis(ws.to(self.device), **kwargs).cpu()

    def _unchanged_block(self, state: EditState, res: int) -> int | None:
        """The resolution of the last block that no slider of `state` changes (every layer of it reads a code before
        the first edited layer); None when the edit changes the first block or nothing would be skipped."""
        rows = [self.direction_delta(state, name).abs().sum(dim=1).nonzero() for name, _ in state.sliders]
        first = min((int(r[0]) for r in rows if len(r)), default=0)  # the first layer any slider moves
        clean = None
        for block_res in _block_resolutions(self.resolution):
            layers = [i for name, i in self._layer_index.items() if name.startswith(f"b{block_res}.")]
            if block_res >= res or max(layers) >= first:
                break
            clean = block_res
        return clean

    def _prefix(self, latent_key: str, clean: int, ws: torch.Tensor, styles: Any,
                dtype: torch.dtype | None) -> tuple:
        """(block resolution, features, skip image) after block `clean` for this latent, cached."""
        key = (latent_key, clean, str(dtype))
        cached = self._prefixes.get(key)
        if cached is None:
            with self._model_lock, torch.inference_mode(), torch_threads(self.render_threads):
                x, img = self.G.synthesis.run_blocks(ws.to(self.device), styles=styles, stop_resolution=clean,
                                                     noise_mode="const", dtype=dtype)
            cached = (clean, x, img)
            self._prefixes.put(key, cached)
        return cached

    def close(self) -> None:
        """Stop the render process, if any (later renders run in this process)."""
        if self._worker is not None:
            self._worker.close()

    def _styles_of(self, ws: torch.Tensor) -> Any:
        with self._model_lock, torch.inference_mode(), torch_threads(self.render_threads):
            return self.G.synthesis.compute_styles(ws.to(self.device))

    def _edited_styles(self, state: EditState) -> Any:
        base = self._base_styles.get(state.latent.key)
        if base is None:
            base = self._styles_of(torch.from_numpy(np.array(state.latent.ws))[None])
            self._base_styles.put(state.latent.key, base)
        styles = base
        for name, alpha in state.sliders:
            key = ("styles", name, state.method, state.space, state.layers, state.locked)
            sdelta = self._deltas.get(key)
            if sdelta is None:
                zero = torch.zeros(1, self.num_ws, self.w_dim)
                s1 = self._styles_of(self.direction_delta(state, name)[None])
                s0 = self._styles_of(zero)
                sdelta = _tree_map(lambda a, b: a - b, s1, s0)
                self._deltas.put(key, sdelta)
            styles = _tree_map(lambda s, d, a=alpha: s + a * d, styles, sdelta)
        return styles

    # -- strips, walks, interpolation -------------------------------------------------------------------------------

    def slider_walk(
        self, state: EditState, attribute: str, lo: float = -3.0, hi: float = 3.0, steps: int = 16,
        preview: bool = False,
    ) -> list[np.ndarray]:
        """Frames of `attribute` going from lo to hi (other sliders as in `state`), rendered in batches."""
        check_alpha(attribute, lo), check_alpha(attribute, hi)
        steps = _check_steps(steps)
        if attribute not in self.bank.attributes:
            raise ValueError(f"unknown attribute {attribute!r}; this bank has: {', '.join(self.bank.attributes)}")
        base = self.edited_ws(state.with_sliders({attribute: 0.0}))
        delta = self.direction_delta(state, attribute)
        alphas = torch.linspace(float(lo), float(hi), steps)
        ws = base[None] + alphas[:, None, None] * delta[None]  # [steps, num_ws, w_dim]
        return self.render_ws(ws, preview=preview)

    def interpolate(self, a: Latent, b: Latent, steps: int = 16, mode: str = "w") -> list[np.ndarray]:
        """Frames from face a to face b: linear in W ("w"), or spherical in Z ("z", sampled faces only)."""
        steps = _check_steps(steps)
        t = torch.linspace(0.0, 1.0, steps)
        if mode == "w":
            wa, wb = torch.from_numpy(np.array(a.ws)), torch.from_numpy(np.array(b.ws))
            ws = wa[None] + t[:, None, None] * (wb - wa)[None]
        elif mode == "z":
            if a.z is None or b.z is None:
                raise ValueError("Z interpolation needs two sampled faces (a projected face has no z)")
            z = slerp(np.asarray(a.z, np.float64), np.asarray(b.z, np.float64), t.numpy())
            psi = a.psi if a.psi is not None else 1.0
            ws = self._map(z.astype(np.float32), psi)
        else:
            raise ValueError(f"interpolation mode must be 'w' or 'z', got {mode!r}")
        return self.render_ws(ws)

    def style_mix(self, a: Latent, b: Latent, layers: tuple[int, int]) -> Latent:
        """Face a with the codes of face b on layers [lo, hi)."""
        lo, hi = int(layers[0]), int(layers[1])
        if not 0 <= lo < hi <= self.num_ws:
            raise ValueError(f"layer range [{lo}, {hi}) must satisfy 0 <= lo < hi <= {self.num_ws}")
        ws = np.array(a.ws)
        ws[lo:hi] = b.ws[lo:hi]
        return Latent.from_array(ws, self.num_ws, self.w_dim, origin=f"mix of ({a.origin}) and ({b.origin}) {lo}-{hi}")

    def candidates(self, seeds: Sequence[int], psi: float = 0.7) -> list[tuple[Latent, np.ndarray]]:
        """Sampled faces with their thumbnails (`thumbnails`), rendered as one batch."""
        latents = [self.sample(s, psi) for s in seeds]
        return list(zip(latents, self.thumbnails(latents)))

    def add_directions(self, directions: Sequence[Direction], replace_existing: bool = False) -> None:
        """Add sliders to the running engine (e.g. a slider made from words or clicks); visible to every user.

        A direction with the same (attribute, method, space) as an existing one replaces it only with
        replace_existing=True (the caches are then cleared, since cached deltas and frames used the old vector).
        """
        new = EditBank(tuple(directions), self.bank.bank_id)
        new.check_fits(self.num_ws, self.w_dim)
        with self._bank_lock:
            keys = {(d.attribute, d.method, d.space) for d in new.directions}
            clash = [d for d in self.bank.directions if (d.attribute, d.method, d.space) in keys]
            if clash and not replace_existing:
                names = ", ".join(f"{d.attribute}/{d.method}/{d.space}" for d in clash)
                raise ValueError(f"the bank already has {names}; pass replace_existing=True to replace")
            kept = tuple(d for d in self.bank.directions if (d.attribute, d.method, d.space) not in keys)
            self.bank = replace(self.bank, directions=kept + new.directions)
            if clash:
                self.clear_caches()

    def clear_caches(self) -> None:
        for c in (self.frames, self._deltas, self._mapping, self._base_styles, self._prefixes):
            c.clear()


def _is_w(d: Direction) -> bool:
    """Whether a direction has one row for every layer (a W direction)."""
    return np.ndim(d.vector) == 1 or np.shape(d.vector)[0] == 1


def _block_resolutions(resolution: int) -> list[int]:
    return [2**i for i in range(2, int(math.log2(resolution)) + 1)]


def slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation between [D] vectors a and b at times t [T] -> [T, D] (linear when parallel)."""
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    cos = float(np.clip(a @ b / max(na * nb, 1e-12), -1.0, 1.0))
    omega = math.acos(cos)
    if omega < 1e-6:
        return a[None] + t[:, None] * (b - a)[None]
    s = math.sin(omega)
    return (np.sin((1 - t) * omega)[:, None] * a[None] + np.sin(t * omega)[:, None] * b[None]) / s


def _check_seed(seed: Any) -> int:
    if isinstance(seed, float) and not (math.isfinite(seed) and seed.is_integer()):
        raise ValueError(f"seed must be a whole number in [0, 2**32), got {seed!r}")
    try:
        s = int(seed)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"seed must be an integer, got {seed!r}") from None
    if not 0 <= s < 2**32:
        raise ValueError(f"seed must be in [0, 2**32), got {s}")
    return s


def _check_psi(psi: Any) -> float:
    try:
        p = float(psi)
    except (TypeError, ValueError):
        raise ValueError(f"psi must be a number, got {psi!r}") from None
    if not math.isfinite(p) or not -2.0 <= p <= 2.0:
        raise ValueError(f"psi (truncation) must be in [-2, 2], got {psi!r}")
    return p


def _check_steps(steps: Any) -> int:
    try:
        n = int(steps)
    except (TypeError, ValueError):
        raise ValueError(f"steps must be an integer, got {steps!r}") from None
    if not 2 <= n <= 240:
        raise ValueError(f"steps must be in [2, 240], got {n}")
    return n
