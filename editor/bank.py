"""Direction banks: the file format, validation against a generator, and applying edits to latents.

A bank is one file per generator in ``directions/`` (``NAME.safetensors``): the arrays (vectors, and for the
Gaussian methods the class models) as named float32 tensors, and everything else as one JSON document in the
safetensors header (key ``"bank"``), so the file is self-describing and loads without executing anything:

    {"format": 1, "generator": {"model_id", "z_dim", "w_dim", "num_ws"}, "command": ..., "created": ...,
     "entries": [{"attribute", "method", "space", "intercept", "sigma", "labeller", "n_samples", "val_accuracy",
                  "train_accuracy", "extra": {...}, "tensors": {"vector": "3.vector", ...}}, ...]}

Edits (see `apply_edit`) move latents by ``alpha * sigma * n``: alpha is in standard deviations of the fitting samples'
projections on the unit direction n, the same scale for every attribute and method.

Spaces: a 'w' entry moves every W+ layer; a 'w+:a-b' entry only layers a..b; a 'z' entry moves z and needs the
mapping network to reach W: ``ws' = ws + mapping(z + alpha*sigma*n) - mapping(z)`` (with the same truncation the
base latent was made with), so W-level changes already in ws are kept.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from editor.directions import ClassGaussian, ClassGaussians, Space, condition, gaussian_walk, orthonormal_basis, \
    shrink_toward_mean

FORMAT_VERSION = 1
# An edit adds alpha*sigma*n (lda: custom sliders; ridge: a regression of every sample's score, see FitOptions).
LINEAR_METHODS = ("ridge", "meandiff", "partial", "logreg", "svm", "pca", "sefa", "lda")
GAUSSIAN_METHODS = ("mahalanobis", "shrink")  # an edit is a walk that depends on the latent
METHODS = LINEAR_METHODS + GAUSSIAN_METHODS
# The best fit of an attribute's boundary (`fit-direction --method auto`): on latent worlds with a planted score
# direction ridge recovers it better than InterFaceGAN's confident-share SVM, for continuous scores and for 0/1
# labels (docs/directions.md, "Which method by default").
DEFAULT_METHOD = "ridge"
# The editor's preference among an attribute's linear directions (first = its slider's default, 'auto'; see
# to_engine_bank). A slider must change what it names, and on the trained demo generator the boundary normals
# (ridge, SVM: directions of low variance in W, which the generator hardly responds to) changed the attribute on
# 0-69 % of faces at +-3 sigma, the mean difference (the direction along which the faces that have it actually
# differ) on 83-100 % at +-1.5 sigma, at the price of leakage: glasses brought grey hair, a beard took the hair away
# (docs/demo_model, 2026-12-02). The partial mean difference (the others held fixed) edits like the mean difference
# and leaks less (2026-12-03), so it comes first. Banks without either fall back to ridge, then the SVM (the FFHQ
# bank).
ENGINE_METHOD_ORDER = ("partial", "meandiff", DEFAULT_METHOD, "svm", "logreg", "lda", "pca", "sefa")


@dataclass(frozen=True)
class GeneratorInfo:
    """What a bank must match in a generator."""

    model_id: str  # identity of the weights (editor.checkpoints.model_id), e.g. a content hash
    z_dim: int  # input latent size
    w_dim: int  # intermediate latent size
    num_ws: int  # number of W+ layers
    verified_as: str | None = None  # the registry model these weights verifiably are (not stored in bank files)


REGISTRY_ID_PREFIX = "registry:"  # a bank model_id "registry:NAME": the published weights of registry model NAME


def registry_generator_info(name: str) -> GeneratorInfo:
    """The identity of a published generator by its registry name (`editor.checkpoints.REGISTRY`), for banks
    converted from public files where this project has no weights to hash: model_id "registry:NAME". Such a bank
    fits a generator verified to be that model (`GeneratorInfo.verified_as`, from the fingerprint recorded when the
    registry download was made), whatever its file is called."""
    from editor.checkpoints import REGISTRY

    entry = REGISTRY.get(name)
    if entry is None or entry.url is None or not entry.resolution:
        known = sorted(n for n, e in REGISTRY.items() if e.url and e.resolution)
        raise ValueError(f"no published generator {name!r} with a known configuration; known: {', '.join(known)}")
    return GeneratorInfo(model_id=REGISTRY_ID_PREFIX + name, z_dim=entry.z_dim, w_dim=entry.w_dim,
                         num_ws=entry.num_ws)


def _local_file(source) -> Path | None:
    """The local file a generator was loaded from (an existing path, or a registry name's cached download)."""
    from editor.checkpoints.registry import cached_path, registry_entry_for

    if source is None or str(source).startswith("random:"):
        return None
    entry = registry_entry_for(str(source))
    path = cached_path(entry) if entry is not None else Path(str(source)).expanduser()
    return path if path is not None and path.is_file() else None


def generator_info(G, source=None) -> GeneratorInfo:
    """The `GeneratorInfo` of a generator module: identity from `editor.checkpoints.model_id`, and the registry model
    it verifiably is (its model_id, or the sha256 of the file it came from, `source`, matches a verified download)."""
    from editor.checkpoints import model_id
    from editor.checkpoints.registry import verified_name

    num_ws = getattr(G, "num_ws", None) or getattr(G.mapping, "num_ws")
    mid = str(model_id(G))
    return GeneratorInfo(model_id=mid, z_dim=int(G.z_dim), w_dim=int(G.w_dim), num_ws=int(num_ws),
                         verified_as=verified_name(mid, _local_file(source)))


@dataclass(frozen=True)
class BankEntry:
    """One direction of one attribute: found by one method in one space."""

    attribute: str  # e.g. "smile", or "pc3" / "sefa0" for unsupervised directions
    method: str  # one of METHODS
    space: Space  # where it was fitted and where it acts
    vector: np.ndarray = field(repr=False)  # [1, D] unit row, or [num_ws, D] one unit row per layer
    sigma: float = 1.0  # std of the samples' projections on the unit vector: one slider unit
    intercept: float = 0.0  # boundary x·n + intercept = 0 (latent units; 0 when the method has none)
    labeller: str = ""  # where the labels came from, e.g. "toon-attributes", "clip:ViT-B-32", "manual:file.csv"
    n_samples: int = 0  # samples used to fit
    val_accuracy: float | None = None  # held-out accuracy of the boundary (supervised methods)
    train_accuracy: float | None = None
    gaussians: ClassGaussians | None = field(default=None, repr=False)  # the class models of the Gaussian methods
    extra: dict = field(default_factory=dict)  # method-specific numbers (iterations, share, explained variance ...)

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"direction {self.attribute!r}: unknown method {self.method!r}; expected one of {METHODS}")
        if not isinstance(self.space, Space):
            object.__setattr__(self, "space", Space.parse(str(self.space)))
        v = np.asarray(self.vector, dtype=np.float64)
        if v.ndim == 1:
            v = v[None]
        if v.ndim != 2 or v.shape[1] == 0 or not np.all(np.isfinite(v)):
            raise ValueError(f"direction {self.name}: vector must be a finite [1, D] or [num_ws, D] array, "
                             f"got shape {v.shape}")
        norms = np.linalg.norm(v, axis=1)
        if np.any(norms == 0):
            raise ValueError(f"direction {self.name}: vector has a zero row")
        object.__setattr__(self, "vector", v / norms[:, None])
        if not (math.isfinite(self.sigma) and self.sigma > 0):
            raise ValueError(f"direction {self.name}: sigma must be a positive number, got {self.sigma!r}")
        if self.method in GAUSSIAN_METHODS and self.gaussians is None:
            raise ValueError(f"direction {self.name}: method {self.method!r} needs its class Gaussians")
        if self.space.kind == "z" and v.shape[0] != 1:
            raise ValueError(f"direction {self.name}: a z direction must be [1, z_dim], got {v.shape}")

    @property
    def name(self) -> str:
        return f"{self.attribute}/{self.method}/{self.space}"

    @property
    def dim(self) -> int:
        return int(self.vector.shape[1])

    def rows(self, num_ws: int) -> np.ndarray:
        """The unit direction per W+ layer [num_ws, D], zero on the layers this entry does not edit."""
        if self.space.kind == "z":
            raise ValueError(f"direction {self.name} is a z direction; it has no per-layer rows")
        layers = self.space.layers(num_ws)
        if self.vector.shape[0] not in (1, num_ws):
            raise ValueError(f"direction {self.name} has {self.vector.shape[0]} rows; this generator has "
                             f"num_ws={num_ws}")
        out = np.zeros((num_ws, self.dim))
        out[layers.start:layers.stop] = np.broadcast_to(self.vector, (num_ws, self.dim))[layers.start:layers.stop]
        return out


@dataclass(frozen=True)
class Bank:
    """All directions for one generator, with the provenance of the whole bank."""

    generator: GeneratorInfo
    entries: tuple[BankEntry, ...]
    command: str = ""  # the command line that built it
    created: str = ""  # ISO date-time (UTC)

    def __post_init__(self):
        object.__setattr__(self, "entries", tuple(self.entries))
        seen = set()
        for e in self.entries:
            if e.name in seen:
                raise ValueError(f"the bank holds {e.name} twice")
            seen.add(e.name)
            self._check_entry_shape(e)

    def _check_entry_shape(self, e: BankEntry) -> None:
        g = self.generator
        want = g.z_dim if e.space.kind == "z" else g.w_dim
        if e.dim != want:
            raise ValueError(f"direction {e.name} has D={e.dim} but the generator's "
                             f"{'z_dim' if e.space.kind == 'z' else 'w_dim'} is {want}")
        if e.space.kind != "z":
            e.rows(g.num_ws)  # checks the layer range and row count

    @property
    def attributes(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(e.attribute for e in self.entries))

    def find(self, attribute: str, method: str | None = None, space: str | Space | None = None) -> BankEntry:
        """The entry for `attribute` (and method / space when given); ValueError listing what exists otherwise."""
        sp = None if space is None else str(Space.parse(str(space)))
        for e in self.entries:
            if e.attribute == attribute and method in (None, e.method) and sp in (None, str(e.space)):
                return e
        have = ", ".join(e.name for e in self.entries if e.attribute == attribute) or \
            f"no such attribute (attributes: {', '.join(self.attributes) or 'none'})"
        raise ValueError(f"no direction {attribute}/{method or '*'}/{sp or '*'} in this bank; it has: {have}")

    def fits_identity(self, info: GeneratorInfo) -> bool:
        """Whether these are the weights the bank was built for: the same model_id, or, for a "registry:NAME" bank,
        a generator verified to be registry model NAME (or a model whose bank is NAME's)."""
        g = self.generator
        if g.model_id == info.model_id:
            return True
        if not g.model_id.startswith(REGISTRY_ID_PREFIX) or info.verified_as is None:
            return False
        from editor.checkpoints.registry import REGISTRY

        entry = REGISTRY.get(info.verified_as)
        return entry is not None and g.model_id[len(REGISTRY_ID_PREFIX):] in (entry.name, entry.bank_name)

    def compatibility_problems(self, info: GeneratorInfo) -> list[str]:
        """Architecture differences (z_dim, w_dim, num_ws: num_ws fixes the resolution) that make the bank unusable."""
        g = self.generator
        return [f"{k}: bank {getattr(g, k)} vs generator {getattr(info, k)}"
                for k in ("z_dim", "w_dim", "num_ws") if getattr(g, k) != getattr(info, k)]

    def validate(self, info: GeneratorInfo, check_identity: bool = True, source: str | None = None) -> None:
        """Raise ValueError unless this bank fits a generator with `info` (architecture, and identity unless
        `check_identity` is False: see `fits_identity`). `source` (where the generator came from) is only named in
        the message: a file name never decides what a generator is."""
        g = self.generator
        problems = self.compatibility_problems(info)
        if check_identity and not self.fits_identity(info):
            where = f" (loaded from {source!r})" if source is not None else ""
            if g.model_id.startswith(REGISTRY_ID_PREFIX):
                name = g.model_id[len(REGISTRY_ID_PREFIX):]
                problems.append(f"it is for the published {name} weights, and this generator{where} is not "
                                f"verified to be them: its fingerprint {info.model_id!r} was not recorded by a "
                                f"download of {name} (`--model {name}` records it; a file copied by hand is "
                                "not verified). Pass the bank explicitly (--bank) to use it anyway, unverified")
            else:
                problems.append(f"model_id: bank {g.model_id!r} vs generator {info.model_id!r}{where}")
        if problems:
            raise ValueError("this direction bank was built for another generator (" + "; ".join(problems) +
                             "). Directions only transfer between identical weights: rebuild it with "
                             "`python -m editor build-bank --model ...` for this generator.")


# ----------------------------------------------------------------------------------------------------------------------
# File format


def _json_number(x):
    return None if x is None else float(x)


def save_bank(bank: Bank, path: str | Path) -> Path:
    """Write `bank` to `path` (.safetensors): tensors float32, metadata as JSON in the header."""
    from safetensors.numpy import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"a bank file must end in .safetensors, got {path.name!r}")
    tensors: dict[str, np.ndarray] = {}
    entries = []
    stored_gaussians: dict[int, dict] = {}  # id(ClassGaussians) -> its tensor names (shared by w and w+ entries)
    for i, e in enumerate(bank.entries):
        names = {"vector": f"{i}.vector"}
        tensors[names["vector"]] = e.vector.astype(np.float32)
        record = {
            "attribute": e.attribute, "method": e.method, "space": str(e.space), "sigma": float(e.sigma),
            "intercept": float(e.intercept), "labeller": e.labeller, "n_samples": int(e.n_samples),
            "val_accuracy": _json_number(e.val_accuracy), "train_accuracy": _json_number(e.train_accuracy),
            "extra": e.extra,
        }
        if e.gaussians is not None:
            floors = {side: float(getattr(e.gaussians, side).floor) for side in ("negative", "positive")}
            if id(e.gaussians) not in stored_gaussians:
                shared = {}
                for side in ("negative", "positive"):
                    g: ClassGaussian = getattr(e.gaussians, side)
                    for part in ("mean", "basis", "variances"):
                        shared[f"{side}.{part}"] = f"{i}.{side}.{part}"
                        tensors[shared[f"{side}.{part}"]] = np.asarray(getattr(g, part), np.float32)
                stored_gaussians[id(e.gaussians)] = shared
            names.update(stored_gaussians[id(e.gaussians)])
            record["floors"] = floors
        record["tensors"] = names
        entries.append(record)
    g = bank.generator
    meta = {"format": FORMAT_VERSION, "generator": {k: getattr(g, k) for k in ("model_id", "z_dim", "w_dim", "num_ws")}, "command": bank.command,
            "created": bank.created or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "entries": entries}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={"bank": json.dumps(meta, allow_nan=False)})
    return path


MAX_BANK_ENTRIES = 20_000  # the largest shipped bank has ~1,000
MAX_BANK_VALUES = 2**26  # numbers materialised in all (float64: 512 MB); each entry gets its own copy of its vector
MAX_VECTOR_ROWS = 64  # a vector is [1, D] or [num_ws, D]
MAX_DIM = 8192  # latent sizes


def load_bank(path: str | Path, generator: GeneratorInfo | None = None, check_identity: bool = True,
              source: str | None = None) -> Bank:
    """Read a bank file; with `generator` given, refuse (ValueError) a bank built for a different generator
    (`source`: where the generator was loaded from, named in the message; see `Bank.validate`).

    Sizes are checked from the header before any tensor is read: at most MAX_BANK_ENTRIES entries and
    MAX_BANK_VALUES numbers materialised in all (entries that name one tensor each get a copy of it, so a
    small file naming one big tensor many times is refused rather than expanded)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no direction bank at {path}")
    try:
        with safe_open(str(path), framework="numpy") as f:
            header = f.metadata() or {}
            if "bank" not in header:
                raise ValueError(f"{path} is a safetensors file but not a direction bank (no 'bank' metadata)")
            meta = _bank_meta(path, header["bank"])
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
            wanted = _check_sizes(path, meta, shapes)
            tensors = {k: f.get_tensor(k) for k in wanted}
    except ValueError:
        raise
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise ValueError(f"{path} is not a readable safetensors bank file: {exc}") from None

    def tensor(name):
        return tensors[name].astype(np.float64)

    entries = []
    shared: dict[str, ClassGaussians] = {}  # entries that share class Gaussians share them again after loading
    try:
        for rec in meta["entries"]:
            names = rec["tensors"]
            gaussians = None
            if "floors" in rec:
                key = names["positive.mean"]
                if key not in shared:
                    sides = {side: ClassGaussian(mean=tensor(names[f"{side}.mean"]),
                                                 basis=tensor(names[f"{side}.basis"]),
                                                 variances=tensor(names[f"{side}.variances"]),
                                                 floor=rec["floors"][side])
                             for side in ("negative", "positive")}
                    shared[key] = ClassGaussians(**sides)
                gaussians = shared[key]
            entries.append(BankEntry(
                attribute=str(rec["attribute"]), method=rec["method"], space=Space.parse(rec["space"]),
                vector=tensor(names["vector"]), sigma=float(rec["sigma"]), intercept=float(rec["intercept"]),
                labeller=rec.get("labeller", ""), n_samples=rec.get("n_samples", 0),
                val_accuracy=rec.get("val_accuracy"), train_accuracy=rec.get("train_accuracy"),
                gaussians=gaussians, extra=rec.get("extra", {})))
        gen = meta["generator"]
        info = GeneratorInfo(model_id=str(gen["model_id"]), z_dim=int(gen["z_dim"]), w_dim=int(gen["w_dim"]),
                             num_ws=int(gen["num_ws"]))
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path}: malformed bank entry ({type(exc).__name__}: {exc})") from None
    bank = Bank(generator=info, entries=tuple(entries), command=str(meta.get("command", "")),
                created=str(meta.get("created", "")))
    if generator is not None:
        bank.validate(generator, check_identity=check_identity, source=source)
    return bank


def _bank_meta(path: Path, text: str) -> dict:
    try:
        meta = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{path}: the bank metadata is not JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: the bank metadata is not a JSON object")
    if meta.get("format") != FORMAT_VERSION:
        raise ValueError(f"{path}: bank format {meta.get('format')!r} is not supported (this version reads "
                         f"{FORMAT_VERSION})")
    if not isinstance(meta.get("entries"), list) or not isinstance(meta.get("generator"), dict):
        raise ValueError(f"{path}: the bank metadata has no list of entries or no generator")
    if len(meta["entries"]) > MAX_BANK_ENTRIES:
        raise ValueError(f"{path}: {len(meta['entries'])} entries; a bank holds at most {MAX_BANK_ENTRIES}")
    return meta


def _check_sizes(path: Path, meta: dict, shapes: dict[str, tuple]) -> set[str]:
    """The tensor names the entries use, after checking they exist, have sane shapes and that materialising them
    (a copy per entry for vectors, once per name for the Gaussians) stays within MAX_BANK_VALUES."""
    total, counted, wanted = 0, set(), set()
    for i, rec in enumerate(meta["entries"]):
        names = rec.get("tensors") if isinstance(rec, dict) else None
        if not isinstance(names, dict) or not isinstance(names.get("vector"), str):
            raise ValueError(f"{path}: malformed bank entry {i} (no tensor names)")
        for role, name in names.items():
            if not isinstance(name, str) or name not in shapes:
                raise ValueError(f"{path}: entry {i} names a missing tensor {name!r}")
            shape = shapes[name]
            if role == "vector" and not (len(shape) in (1, 2) and shape[-1] <= MAX_DIM
                                         and (len(shape) == 1 or shape[0] <= MAX_VECTOR_ROWS)):
                raise ValueError(f"{path}: entry {i}'s vector {name!r} has shape {shape}; expected [1, D] or "
                                 f"[num_ws, D] with D <= {MAX_DIM}")
            if role == "vector" or name not in counted:
                total += math.prod(shape)
                counted.add(name)
            wanted.add(name)
        if total > MAX_BANK_VALUES:
            raise ValueError(f"{path}: the entries would materialise more than {MAX_BANK_VALUES:,} numbers "
                             f"(by entry {i}); a bank this large is refused")
    return wanted


# ----------------------------------------------------------------------------------------------------------------------
# Applying edits


def _family(space: Space) -> str:
    return "z" if space.kind == "z" else "w"


def _check_locks(edit: BankEntry, locked: Sequence[BankEntry]) -> None:
    for lk in locked:
        if _family(lk.space) != _family(edit.space):
            raise ValueError(f"cannot lock {lk.name} while editing {edit.name}: a z direction can only be locked "
                             f"against z directions, a w / w+ direction against w / w+ directions")
        if lk.dim != edit.dim:
            raise ValueError(f"locked {lk.name} has D={lk.dim} but {edit.name} has D={edit.dim}")


def conditioned_rows(entry: BankEntry, locked: Sequence[BankEntry], num_ws: int) -> np.ndarray:
    """The per-layer unit edit direction [num_ws, D] of a W/W+ entry with every locked direction removed layer by
    layer (on each layer, only the locked entries that act on that layer count). Zero rows where it does not act."""
    _check_locks(entry, locked)
    rows = entry.rows(num_ws)
    lock_rows = [lk.rows(num_ws) for lk in locked if lk is not entry]
    out = np.zeros_like(rows)
    for layer in range(num_ws):
        if not rows[layer].any():
            continue
        here = [r[layer] for r in lock_rows if r[layer].any()]
        out[layer] = condition(rows[layer], np.array(here)) if here else rows[layer]
    return out


def conditioned_vector(entry: BankEntry, locked: Sequence[BankEntry]) -> np.ndarray:
    """The unit edit direction [D] of a z entry (or the first row of a w entry) with the locked directions removed."""
    _check_locks(entry, locked)
    others = [lk.vector[0] for lk in locked if lk is not entry]
    return condition(entry.vector[0], np.array(others)) if others else entry.vector[0].copy()


def _lock_basis(entry: BankEntry, locked: Sequence[BankEntry]) -> np.ndarray | None:
    _check_locks(entry, locked)
    others = [lk.vector.mean(axis=0) for lk in locked if lk is not entry]
    return orthonormal_basis(np.array(others)) if others else None


def apply_edit(ws, edits: Sequence[tuple[BankEntry, float]], locked: Sequence[BankEntry] = (), z=None,
               mapping: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """Edit base latents with any number of (direction, alpha) pairs, keeping the locked directions fixed.

    Args:
        ws: [N, num_ws, w_dim] base W+ codes (a W code repeated on every layer).
        edits: (entry, alpha) pairs; alpha in standard deviations (entry.sigma units).
        locked: entries whose attribute must not change: every edit has their components removed (conditional
            editing); a Gaussian walk has them removed from every step. Locks must share the edit's family
            (z with z; w / w+ with w / w+).
        z: [N, z_dim] the base z, required when an edit is in z space.
        mapping: callable z [N, z_dim] -> ws [N, num_ws, w_dim] (the generator's mapping with the truncation the base
            was sampled with), required when an edit is in z space. For example
            ``lambda z: G.mapping(torch.from_numpy(z).float(), None, truncation_psi=psi).numpy()``.
    Returns:
        [N, num_ws, w_dim] edited codes (float64). Order: z edits (through the mapping), then linear w / w+ edits,
        then the latent-dependent Gaussian walks in the order given.
    """
    ws = np.asarray(ws, dtype=np.float64)
    if ws.ndim != 3:
        raise ValueError(f"ws must be [N, num_ws, w_dim], got shape {ws.shape}")
    n, num_ws, w_dim = ws.shape
    out = ws.copy()
    edits = [(e, float(a)) for e, a in edits]
    for e, a in edits:
        if not math.isfinite(a):
            raise ValueError(f"alpha for {e.name} must be finite, got {a}")

    z_edits = [(e, a) for e, a in edits if e.space.kind == "z" and a != 0]
    if z_edits:
        if z is None or mapping is None:
            raise ValueError("z-space edits need the base z and the mapping (see apply_edit's docstring)")
        z = np.asarray(z, dtype=np.float64)
        if z.shape != (n, z_edits[0][0].dim):
            raise ValueError(f"z must be [{n}, {z_edits[0][0].dim}] to match ws and the direction, got {z.shape}")
        z_new = z.copy()
        for e, a in z_edits:
            if e.method in GAUSSIAN_METHODS:
                z_new = _gaussian_edit(e, z_new, a, locked)
            else:
                z_new = z_new + a * e.sigma * conditioned_vector(e, locked)
        out = out + np.asarray(mapping(z_new), np.float64) - np.asarray(mapping(z), np.float64)

    for e, a in edits:
        if e.space.kind == "z" or a == 0:
            continue
        if e.dim != w_dim:
            raise ValueError(f"direction {e.name} has D={e.dim} but ws has w_dim={w_dim}")
        if e.method in GAUSSIAN_METHODS:
            layers = e.space.layers(num_ws)
            block = out[:, layers.start:layers.stop].reshape(-1, w_dim)
            out[:, layers.start:layers.stop] = _gaussian_edit(e, block, a, locked).reshape(n, len(layers), w_dim)
        else:
            out = out + a * e.sigma * conditioned_rows(e, locked, num_ws)[None]
    return out


def _gaussian_edit(e: BankEntry, x: np.ndarray, alpha: float, locked: Sequence[BankEntry]) -> np.ndarray:
    basis = _lock_basis(e, locked)
    distance = alpha * e.sigma
    if e.method == "shrink":
        return shrink_toward_mean(x, e.gaussians, distance, locked_basis=basis)
    return gaussian_walk(x, e.gaussians, distance, n_steps=int(e.extra.get("n_steps", 8)),
                         objective=e.extra.get("objective", "density"), locked_basis=basis)


def position(entry: BankEntry, x) -> np.ndarray:
    """Where latents sit along a linear entry, in slider units: (x·n + intercept) / sigma, for x [N, D] -> [N]."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != entry.dim:
        raise ValueError(f"x must be [N, {entry.dim}], got shape {x.shape}")
    return (x @ entry.vector.mean(axis=0) + entry.intercept) / entry.sigma


def to_engine_bank(bank: Bank, description: str = ""):
    """The editor backend's `editor.engine.EditBank` view of this bank: its linear W / W+ directions.

    (The engine edits W / W+ codes by adding alpha*sigma*n; z directions and the latent-dependent Gaussian walks are
    left out.) Each attribute's directions are ordered by `ENGINE_METHOD_ORDER`, so the editor's default ('auto':
    the attribute's first direction) is the mean difference where the bank has one, else ridge, else the SVM.
    """
    from editor.engine import Direction, EditBank

    attr_order = {a: i for i, a in enumerate(bank.attributes)}
    rank = {m: i for i, m in enumerate(ENGINE_METHOD_ORDER)}
    ordered = sorted(bank.entries, key=lambda e: (attr_order[e.attribute], rank.get(e.method, len(rank))))
    dirs = []
    for e in ordered:
        if e.space.kind == "z" or e.method in GAUSSIAN_METHODS:
            continue
        layers = (e.space.start, e.space.stop) if e.space.kind == "w+" else None
        vector = e.vector[0] if e.vector.shape[0] == 1 else e.vector
        dirs.append(Direction(attribute=e.attribute, vector=vector, sigma=float(e.sigma), method=e.method,
                              space=e.space.kind, layers=layers))
    return EditBank(directions=tuple(dirs), bank_id=bank.generator.model_id, description=description)


# ----------------------------------------------------------------------------------------------------------------------
# Building a bank from labelled samples


@dataclass(frozen=True)
class FitOptions:
    """Settings of `build_entries` (recorded in each entry's `extra`)."""

    share: float = 0.25  # confident top / bottom share of scores used to fit (InterFaceGAN: 0.02 of 500k samples);
    # ridge fits every sample and uses the share only for its validation accuracy (comparable with the others')
    val_share: float = 0.3  # part of the selected samples held out for the validation accuracy
    l2: float = 0.01  # logistic-regression penalty (centred, RMS-scaled latents; larger pulls toward the mean difference)
    svm_c: float = 1.0  # SVM squared-hinge weight
    gaussian_rank: int = 32  # eigenvectors kept per class covariance
    shrinkage: float = 0.05  # covariance shrinkage toward a scaled identity
    walk_steps: int = 8  # steps of the Mahalanobis walk
    walk_objective: str = "density"  # 'density' (climb the target class's log-density) or 'log_odds' (see docs)
    n_components: int = 8  # PCA / SeFa directions kept per space
    seed: int = 0  # randomness of the train / validation splits


def effective_share(scores: np.ndarray, share: float) -> float:
    """The confident share to use for these scores: for probability-like scores (all in [0, 1]) never more than the
    rarer class's fraction at 0.5, so the top end holds only positives and the bottom end only negatives."""
    s = scores[np.isfinite(scores)]
    if s.size and s.min() >= 0 and s.max() <= 1:
        pos = float(np.mean(s > 0.5))
        rare = min(pos, 1 - pos)
        if rare > 0:
            return max(min(share, rare), 2.0 / s.size)
    return share


def sefa_weights(G, space: Space) -> list[np.ndarray]:
    """The affine (w -> style) weight matrices [C, w_dim] of the layers a W / W+ space edits (effective scale)."""
    synthesis = G.synthesis
    index, affines = synthesis.layer_ws_index(), synthesis.affines()
    layers = set(space.layers(G.num_ws))
    out = []
    for key, w_idx in index.items():
        if w_idx in layers:
            fc = affines[key]
            out.append((fc.weight.detach().float().cpu() * fc.weight_gain).numpy().astype(np.float64))
    if not out:
        raise ValueError(f"no style layer reads the W+ layers of {space}")
    return out


def one_blas_thread():
    """A context that runs NumPy's BLAS on one thread: the fits use many small matrices, for which extra BLAS
    threads only spin (70x slower eigh measured on a busy 2-core machine)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional speed-up
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def build_entries(z, ws, scores: dict, labeller: str, methods: Sequence[str], spaces: Sequence[Space],
                  options: FitOptions = FitOptions(), G=None,
                  progress: Callable[[str], None] | None = None) -> list[BankEntry]:
    """Fit every requested method in every space for every attribute (see `_build_entries`), on one BLAS thread."""
    with one_blas_thread():
        return _build_entries(z, ws, scores, labeller, methods, spaces, options, G, progress)


def _build_entries(z, ws, scores: dict, labeller: str, methods: Sequence[str], spaces: Sequence[Space],
                   options: FitOptions, G, progress: Callable[[str], None] | None) -> list[BankEntry]:
    """Fit every requested method in every space for every attribute.

    Args:
        z: [N, z_dim] and ws: [N, num_ws, w_dim], the sampled latents.
        scores: {attribute: [N] scores} from one labeller (NaN = unlabelled); labeller: its name.
        methods: any of METHODS. 'pca' and 'sefa' are unsupervised (entries 'pc0', 'sefa0', ...; W / W+ only, SeFa
            needs the generator G for its affine weights); 'partial' is fitted on every attribute's scores at once
            (`directions.partial_mean_differences`: each attribute with the others held fixed).
        spaces: where to fit. Without a truncation cutoff every W+ layer holds the same w, so a W+ range reuses the
            W fit (same vector and σ) and differs only in the layers it edits.
        progress: called with each entry's name as it is fitted.
    Returns:
        the entries, in attribute, method, space order.
    """
    from editor import directions as D

    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; expected any of {METHODS}")
    ws = np.asarray(ws, dtype=np.float64)
    layers_equal = bool(np.allclose(ws, ws[:, :1], atol=1e-6))
    supervised = [m for m in methods if m in ("ridge", "meandiff", "logreg", "svm", "mahalanobis", "shrink")]
    # 'partial' is supervised too, but fitted on every attribute's scores at once (below)
    entries: list[BankEntry] = []
    fit_cache: dict[tuple, dict] = {}

    def latents(space: Space):
        key = "z" if space.kind == "z" else ("w" if layers_equal else str(space))
        return key, D.fit_space_latents(space, z=z, ws=ws)

    partial_cache: dict[str, dict] = {}  # the partial mean differences: all attributes at once, per latent set
    for attribute, s in scores.items():
        s = np.asarray(s, dtype=np.float64)
        share = effective_share(s, options.share)
        for space in spaces:
            key, x = latents(space)
            if (attribute, key) not in fit_cache:
                fit_cache[(attribute, key)] = _fit_supervised(x, s, supervised, share, options)
                if "partial" in methods:
                    if key not in partial_cache:
                        partial_cache[key] = D.partial_mean_differences(x, scores)
                    if (d := partial_cache[key].get(attribute)) is not None:
                        fit_cache[(attribute, key)]["partial"] = (
                            d.vector, d.sigma, d.intercept, None, d.extra,
                            {"n": d.n_samples, "val": None, "train": d.train_accuracy})
            for method, fitted in fit_cache[(attribute, key)].items():
                vector, sigma, intercept, gaussians, extra, d = fitted
                entry = BankEntry(attribute=attribute, method=method, space=space, vector=vector, sigma=sigma,
                                  intercept=intercept, labeller=labeller, n_samples=d["n"],
                                  val_accuracy=d["val"], train_accuracy=d["train"], gaussians=gaussians,
                                  extra={**extra, "fit_latents": key})
                entries.append(entry)
                if progress:
                    progress(entry.name)
    for space in spaces:
        if space.kind == "z":
            continue  # z is isotropic by construction: PCA / SeFa directions there mean nothing
        _, x = latents(space)
        k = min(options.n_components, x.shape[1])
        if "pca" in methods:
            p = D.pca_directions(x, k)
            for i in range(k):
                entries.append(BankEntry(attribute=f"pc{i}", method="pca", space=space, vector=p.components[i],
                                         sigma=float(p.stds[i]), intercept=-float(p.components[i] @ p.mean),
                                         labeller="", n_samples=int(x.shape[0]),
                                         extra={"explained_variance_ratio": float(p.explained_variance_ratio[i])}))
        if "sefa" in methods:
            if G is None:
                raise ValueError("SeFa needs the generator's affine weights: pass G")
            vecs, evals = D.sefa_directions(sefa_weights(G, space), k)
            for i in range(k):
                proj = x @ vecs[i]
                entries.append(BankEntry(attribute=f"sefa{i}", method="sefa", space=space, vector=vecs[i],
                                         sigma=float(np.std(proj)), intercept=-float(np.mean(proj)),
                                         n_samples=int(x.shape[0]), extra={"eigenvalue": float(evals[i])}))
    return entries


def _fit_supervised(x: np.ndarray, s: np.ndarray, methods: Sequence[str], share: float, options: FitOptions) -> dict:
    """{method: (vector, sigma, intercept, gaussians, extra, {'n', 'val', 'train'})} for one attribute in one space.
    Every classifier sees the same confident selection and the same train / validation split; ridge fits every
    labelled sample (split with the same seed) and reports its accuracy on the same kind of confident selection."""
    from editor import directions as D

    out = {}

    def rng():
        return np.random.default_rng(options.seed)

    linear = {"meandiff": D.mean_difference,
              "logreg": lambda a, b: D.logistic_regression(a, b, l2=options.l2),
              "svm": lambda a, b: D.svm_boundary(a, b, c=options.svm_c)}
    for method in methods:
        if method in linear:
            d = D.fit_confident(linear[method], x, s, rng(), share=share, val_share=options.val_share)
            out[method] = (d.vector, d.sigma, d.intercept, None, d.extra,
                           {"n": d.n_samples, "val": d.val_accuracy, "train": d.train_accuracy})
        elif method == "ridge":
            d = D.fit_scores(D.ridge_regression, x, s, rng(), share=share, val_share=options.val_share)
            out[method] = (d.vector, d.sigma, d.intercept, None, d.extra,
                           {"n": d.n_samples, "val": d.val_accuracy, "train": d.train_accuracy})
    gaussian_methods = [m for m in methods if m in GAUSSIAN_METHODS]
    if gaussian_methods:
        known = np.flatnonzero(np.isfinite(s))
        idx, y = D.select_confident(s[known], share)
        idx = known[idx]
        tr, va = D.train_val_split(idx.shape[0], options.val_share, rng())
        g = D.fit_class_gaussians(x[idx[tr]], y[tr], rank=options.gaussian_rank, shrinkage=options.shrinkage)
        md = D.unit(g.positive.mean - g.negative.mean)

        def qda_acc(rows, labels):
            if rows.size == 0:
                return None
            pred = g.positive.log_density(x[rows]) > g.negative.log_density(x[rows])
            return float(np.mean(pred == labels))

        stats = {"n": int(tr.size), "val": qda_acc(idx[va], y[va]), "train": qda_acc(idx[tr], y[tr])}
        for method in gaussian_methods:
            extra = {"share": float(share), "rank": options.gaussian_rank, "shrinkage": options.shrinkage}
            if method == "mahalanobis":
                extra.update(objective=options.walk_objective, n_steps=options.walk_steps)
            out[method] = (md, float(np.std(x @ md)), 0.0, g, extra, stats)
    return out
