"""Model sources: load and save StyleGAN2 networks without ever running code from a file.

`load_generator(source, device)` accepts:

* a native checkpoint: a directory holding `state.safetensors` (reference parameter names) and `config.json`
  (`init_kwargs`: the constructor arguments), or a single `.safetensors` file whose metadata key `config` holds
  that JSON. `save_generator` / `save_network` write this format.
* a reference network pickle (`.pkl`, the StyleGAN2-ADA / StyleGAN3 format NVIDIA publishes). It is read by a
  restricted unpickler: only an allow-list of globals is resolved (to inert stand-ins or tensor rebuilders), the
  module source embedded in the file is kept as text and never executed, and anything else is refused. Old
  TensorFlow StyleGAN2 generator pickles are read the same way and converted with the public name mapping.
* an `https://` (or `http://`) URL or `hf://owner/repo[@revision]/path/to/file`, downloaded once into a cache
  directory (`STYLEGAN2_EDITOR_CACHE`, default `~/.cache/stylegan2-editor`; the Hugging Face cache for `hf://`).
* a registry name (`ffhq-1024`, `ffhq-512`, `ffhq-256`, `demo`; see `list_models()`), or
  `random:<config>[:seed]` for random weights of any `editor.stylegan2.CONFIGS` entry.

Every load builds a fresh network from the checkpoint's own constructor arguments and copies the tensors in with
strict name/shape checking, so a file either loads completely or raises; a half-loaded model never escapes.
"""

from __future__ import annotations

import ast
import collections
import copy
import hashlib
import io
import json
import math
import os
import pickle
import socket
import struct
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "CheckpointError",
    "UnsafePickleError",
    "ModelUnavailableError",
    "ModelInfo",
    "REGISTRY",
    "list_models",
    "model_info",
    "registry_entry_for",
    "cache_dir",
    "load_generator",
    "load_network",
    "save_generator",
    "save_network",
    "read_reference_pickle",
    "resolve_source",
    "download_url",
    "model_id",
    "count_parameters",
    "url_cache_path",
    "PersistentObject",
    "TFNetwork",
]

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_DIR = REPO_ROOT / "checkpoints" / "demo"
FORMAT_NAME = "stylegan2-editor"
FORMAT_VERSION = 1
STATE_FILE = "state.safetensors"
CONFIG_FILE = "config.json"
KINDS = ("G_ema", "G", "D")
CACHE_ENV = "STYLEGAN2_EDITOR_CACHE"
OFFLINE_ENV = "STYLEGAN2_EDITOR_OFFLINE"


# ----------------------------------------------------------------------------------------------------------------
# Errors


class CheckpointError(ValueError):
    """A file that is not a loadable checkpoint: corrupt, truncated, wrong format, or not matching its config."""


class UnsafePickleError(CheckpointError):
    """A pickle that asks for something outside the allow-list (a global, a persistent id, a state on a foreign
    object). Nothing it asked for was executed."""


class ModelUnavailableError(FileNotFoundError):
    """A model that is not on this machine and could not be downloaded; the message says where to put it."""


# ----------------------------------------------------------------------------------------------------------------
# Registry

NVIDIA_LICENSE_NAME = "NVIDIA Source Code License-NC (non-commercial)"
NVIDIA_LICENSE_URL = "https://nvlabs.github.io/stylegan2/license.html"
NVIDIA_LICENSE_TEXT = (
    "Copyright (c) NVIDIA Corporation. Licensed under the NVIDIA Source Code License-NC.\n"
    "Section 3.3, Use Limitation: \"The Work and any derivative works thereof only may be used or intended for use "
    "non-commercially. Notwithstanding the foregoing, NVIDIA Corporation and its affiliates may use the Work and any "
    "derivative works commercially. As used herein, 'non-commercially' means for research or evaluation purposes "
    "only.\"\n"
    "Redistribution must include a copy of the licence. Images generated with these weights are derivative works: "
    f"research or evaluation use only. Full text: {NVIDIA_LICENSE_URL}"
)
NGC_STYLEGAN2 = "https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan2/versions/1/files/"


@dataclass(frozen=True)
class ModelInfo:
    """A named model the loader knows how to fetch."""

    name: str  # registry name, as passed to load_generator
    description: str  # one line for listings
    resolution: int  # output image size in pixels
    url: str | None  # where it is downloaded from (None: bundled with the repository)
    filename: str | None  # file name inside the cache directory (None: bundled)
    license_name: str  # short licence name, shown next to the model
    license_text: str  # the terms users must see before using the weights
    license_url: str | None  # the full licence


REGISTRY: dict[str, ModelInfo] = {
    f"ffhq-{res}": ModelInfo(
        name=f"ffhq-{res}",
        description=f"NVIDIA StyleGAN2 trained on FFHQ faces, {res}x{res} (published network pickle, ~360 MB)",
        resolution=res,
        url=f"{NGC_STYLEGAN2}stylegan2-ffhq-{res}x{res}.pkl",
        filename=f"stylegan2-ffhq-{res}x{res}.pkl",
        license_name=NVIDIA_LICENSE_NAME,
        license_text=NVIDIA_LICENSE_TEXT,
        license_url=NVIDIA_LICENSE_URL,
    )
    for res in (1024, 512, 256)
}
REGISTRY["demo"] = ModelInfo(
    name="demo",
    description="small generator trained by this project on procedural toon faces (bundled, no download)",
    resolution=0,  # read from the checkpoint
    url=None,
    filename=None,
    license_name="project weights (no third-party terms)",
    license_text="Trained by this project on its own procedural toon-face renderer; no third-party data or weights.",
    license_url=None,
)


def list_models() -> list[ModelInfo]:
    """All registry entries, in a stable order."""
    return list(REGISTRY.values())


def model_info(name: str) -> ModelInfo:
    """The registry entry for `name`; ValueError listing the known names otherwise."""
    if name not in REGISTRY:
        raise ValueError(f"unknown model name {name!r}; known names: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def registry_entry_for(source: str | os.PathLike) -> ModelInfo | None:
    """The registry entry a source refers to (by name, by URL, or as the cached download), else None."""
    text = os.fspath(source)
    for info in REGISTRY.values():
        if text in (info.name, info.url) or (info.filename and Path(text).name == info.filename):
            return info
    return None


def cache_dir() -> Path:
    """Where downloads are kept: $STYLEGAN2_EDITOR_CACHE, else $XDG_CACHE_HOME/stylegan2-editor, else
    ~/.cache/stylegan2-editor. Not created here."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "stylegan2-editor"


# ----------------------------------------------------------------------------------------------------------------
# Restricted reading of reference network pickles


class PersistentObject:
    """Inert stand-in for an object the reference code stored with `persistence._reconstruct_persistent_obj`.

    Holds the class name and the object's `__dict__` (`state`); the embedded module source is kept as text only.
    """

    __slots__ = ("class_name", "module_src", "version", "state")

    def __init__(self, class_name: str, module_src: str, version: int, state: dict):
        self.class_name = class_name
        self.module_src = module_src
        self.version = version
        self.state = state

    def __setstate__(self, state: Any) -> None:
        # Pickle's BUILD step hands the same state dict again (the reference __reduce__ returns it twice).
        if not isinstance(state, dict):
            raise UnsafePickleError(f"persistent object {self.class_name!r}: state is {type(state).__name__}, not dict")
        if state is not self.state:
            self.state.update(state)

    def __repr__(self) -> str:
        return f"PersistentObject({self.class_name!r}, keys={sorted(self.state)[:8]}...)"


class _EasyDict(dict):
    """Stand-in for `dnnlib.util.EasyDict`: a plain dict (attribute access is not needed here)."""

    def __setstate__(self, state: Any) -> None:
        if state is None:
            return
        if not isinstance(state, dict):
            raise UnsafePickleError(f"EasyDict state is {type(state).__name__}, not dict")
        self.update(state)


class _DTypeSpec:
    """Stand-in for `numpy.dtype(name, align, copy)` followed by BUILD(state); numeric kinds only."""

    __slots__ = ("dtype",)

    def __init__(self, name: Any, align: Any = False, copy: Any = False):
        if not isinstance(name, str):
            raise UnsafePickleError(f"numpy.dtype called with {type(name).__name__}, expected a type code string")
        try:
            dtype = np.dtype(name)
        except TypeError as exc:
            raise UnsafePickleError(f"numpy.dtype({name!r}) is not a dtype: {exc}") from None
        if dtype.kind not in "biufc":
            raise UnsafePickleError(f"numpy dtype {name!r} (kind {dtype.kind!r}) is not a plain numeric type")
        self.dtype = dtype

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) < 2 or state[1] not in ("<", ">", "|", "="):
            raise UnsafePickleError(f"unexpected numpy dtype state {state!r}")
        if state[1] in "<>":
            self.dtype = self.dtype.newbyteorder(state[1])


def _numpy_scalar(dtype: Any, data: Any = None) -> int | float | bool | complex:
    """Stand-in for `numpy.core.multiarray.scalar(dtype, bytes)`: returns the plain Python number."""
    if not isinstance(dtype, _DTypeSpec):
        raise UnsafePickleError(f"numpy scalar with dtype of type {type(dtype).__name__}")
    if isinstance(data, str):  # protocol 2 written by Python 2 encodes bytes as latin-1 text
        data = data.encode("latin-1")
    if not isinstance(data, bytes) or len(data) != dtype.dtype.itemsize:
        raise UnsafePickleError(f"numpy scalar of dtype {dtype.dtype} with {len(data or b'')} bytes of data")
    return np.frombuffer(data, dtype=dtype.dtype)[0].item()


def _load_storage_from_bytes(data: Any):
    """Stand-in for `torch.storage._load_from_bytes`: a legacy torch.save stream read with weights_only=True."""
    if not isinstance(data, (bytes, bytearray)):
        raise UnsafePickleError(f"storage payload is {type(data).__name__}, expected bytes")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            storage = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
        except pickle.UnpicklingError as exc:
            raise UnsafePickleError(f"tensor storage refused by torch's weights-only reader: {exc}") from None
        except Exception as exc:  # corrupt payload: torch raises RuntimeError / EOFError / ...
            raise CheckpointError(f"corrupt tensor storage in pickle: {type(exc).__name__}: {exc}") from None
    if not isinstance(storage, (torch.TypedStorage, torch.UntypedStorage)):
        raise UnsafePickleError(f"storage payload decoded to {type(storage).__name__}, expected a storage")
    return storage


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    """Stand-in for `torch._utils._rebuild_tensor_v2` that checks every argument's type first."""
    if not isinstance(storage, (torch.TypedStorage, torch.UntypedStorage)):
        raise UnsafePickleError(f"tensor rebuilt from {type(storage).__name__}, expected a storage")
    if not isinstance(storage_offset, int) or not _int_tuple(size) or not _int_tuple(stride) or len(size) != len(stride):
        raise UnsafePickleError(f"bad tensor geometry: offset={storage_offset!r} size={size!r} stride={stride!r}")
    if backward_hooks:
        raise UnsafePickleError("tensor with backward hooks")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dtype = storage.dtype if isinstance(storage, torch.TypedStorage) else torch.uint8
        untyped = storage.untyped() if isinstance(storage, torch.TypedStorage) else storage
        try:
            return torch.empty(0, dtype=dtype).set_(untyped, storage_offset, tuple(size), tuple(stride))
        except RuntimeError as exc:
            raise CheckpointError(f"tensor does not fit its storage: {exc}") from None


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, state=None):
    """Stand-in for `torch._utils._rebuild_parameter`: the plain tensor (gradients are irrelevant here)."""
    if not isinstance(data, torch.Tensor):
        raise UnsafePickleError(f"parameter rebuilt from {type(data).__name__}, expected a tensor")
    if backward_hooks or state:
        raise UnsafePickleError("parameter with hooks or extra state")
    return data


def _reconstruct_persistent_obj(meta: Any) -> PersistentObject:
    """Stand-in for `torch_utils.persistence._reconstruct_persistent_obj`: records, never executes."""
    if not isinstance(meta, dict):
        raise UnsafePickleError(f"persistent object meta is {type(meta).__name__}, not dict")
    if meta.get("type") != "class":
        raise UnsafePickleError(f"persistent object of type {meta.get('type')!r} (only 'class' is supported)")
    class_name, module_src, state = meta.get("class_name"), meta.get("module_src"), meta.get("state")
    if not isinstance(class_name, str) or not isinstance(module_src, str) or not isinstance(state, dict):
        raise UnsafePickleError("persistent object meta lacks class_name / module_src / state")
    _audit_module_source(module_src, class_name)
    version = meta.get("version")
    return PersistentObject(class_name, module_src, version if isinstance(version, int) else -1, state)


def _is_dotted_name(node: ast.AST) -> bool:
    while isinstance(node, ast.Attribute):
        node = node.value
    return isinstance(node, ast.Name)


def _audit_module_source(src: str, class_name: str) -> None:
    """Refuse a pickle whose embedded module source would run code when imported.

    The source is never executed here; it is parsed (ast, no evaluation) only to detect tampering. A genuine
    network module only imports, defines functions and classes (decorated by plain names such as
    `@persistence.persistent_class`) and assigns constants; anything else at module or class level (a call such as
    `os.system(...)`, a `raise`, a loop, a decorator that is a call) is code that the reference loader would run.
    """
    if os.environ.get("STYLEGAN2_EDITOR_ALLOW_ANY_PICKLE_SOURCE") == "1":
        return  # the source is never run either way; this only skips the tamper check
    try:
        tree = ast.parse(src)
    except (SyntaxError, ValueError) as exc:
        raise UnsafePickleError(f"embedded module source of {class_name!r} is not valid Python ({exc}); refusing") \
            from None

    def check_body(body: list[ast.stmt], where: str) -> None:
        for i, node in enumerate(body):
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and i == 0:
                continue  # docstring
            if isinstance(node, (ast.Import, ast.ImportFrom, ast.Pass)):
                continue
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and (
                    node.value is None or isinstance(node.value, (ast.Constant, ast.Name, ast.Attribute))):
                continue
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                bad = [d for d in node.decorator_list if not _is_dotted_name(d)]
                if not bad:
                    if isinstance(node, ast.ClassDef):
                        check_body(node.body, f"class {node.name}")
                    continue
            snippet = (ast.get_source_segment(src, node) or type(node).__name__).splitlines()[0][:80]
            raise UnsafePickleError(
                f"embedded module source of {class_name!r} runs code when imported ({where}, line {node.lineno}: "
                f"{snippet!r}); a genuine network pickle only defines classes and functions, so this file is refused "
                f"(the source is never executed; set STYLEGAN2_EDITOR_ALLOW_ANY_PICKLE_SOURCE=1 to skip this check)")

    check_body(tree.body, "module level")


def _int_tuple(x: Any) -> bool:
    return isinstance(x, (tuple, torch.Size)) and all(isinstance(v, int) and v >= 0 for v in x)


class _NDArrayClass:
    """Stand-in for `numpy.ndarray` as the class argument of `numpy.core.multiarray._reconstruct`."""


class _NDArray:
    """Stand-in for a pickled numpy array: BUILD(state) fills `array` from raw bytes (numeric dtypes only)."""

    __slots__ = ("array",)

    def __init__(self):
        self.array = None

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) != 5:
            raise UnsafePickleError("unexpected numpy array state")
        _, shape, dtype, fortran, raw = state
        if isinstance(raw, str):
            raw = raw.encode("latin-1")
        if not _int_tuple(tuple(shape) if isinstance(shape, list) else shape) or not isinstance(dtype, _DTypeSpec) \
                or not isinstance(raw, bytes):
            raise UnsafePickleError("numpy array with unexpected shape, dtype or data")
        count = int(np.prod(shape)) if len(shape) else 1
        if len(raw) != count * dtype.dtype.itemsize:
            raise CheckpointError(f"numpy array of shape {tuple(shape)} has {len(raw)} bytes of data")
        array = np.frombuffer(raw, dtype=dtype.dtype).reshape(tuple(shape), order="F" if fortran else "C")
        self.array = np.array(array, dtype=dtype.dtype.newbyteorder("="), order="C")  # a writable copy


def _ndarray_reconstruct(cls: Any, shape: Any = (0,), typecode: Any = b"b") -> _NDArray:
    """Stand-in for `numpy.core.multiarray._reconstruct(numpy.ndarray, (0,), b'b')`."""
    if cls is not _NDArrayClass:
        raise UnsafePickleError(f"numpy _reconstruct of {getattr(cls, '__name__', type(cls).__name__)}")
    return _NDArray()


def _codecs_encode(text: Any, encoding: Any = "utf-8") -> bytes:
    """Stand-in for `_codecs.encode(text, 'latin1')`, how protocol 2 writes bytes from Python 3."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError("_codecs.encode is only allowed as latin-1 text-to-bytes")
    return text.encode("latin-1")


class TFNetwork:
    """Inert stand-in for an old TensorFlow StyleGAN `dnnlib.tflib.network.Network` (its build source is text)."""

    __slots__ = ("name", "static_kwargs", "components", "variables", "build_module_src", "version")

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict) or state.get("version") not in (2, 3, 4, 5):
            raise UnsafePickleError("unexpected TensorFlow network state")
        self.version = state["version"]
        self.name = str(state.get("name"))
        self.static_kwargs = dict(state.get("static_kwargs") or {})
        self.components = dict(state.get("components") or {})
        self.build_module_src = state.get("build_module_src")
        variables = state.get("variables") or []
        if not isinstance(variables, list) or not all(
                isinstance(v, tuple) and len(v) == 2 and isinstance(v[0], str) and isinstance(v[1], _NDArray)
                for v in variables):
            raise UnsafePickleError(f"TensorFlow network {self.name!r}: variables are not (name, array) pairs")
        self.variables = [(name, value.array) for name, value in variables]
        if not all(isinstance(c, TFNetwork) for c in self.components.values()):
            raise UnsafePickleError(f"TensorFlow network {self.name!r}: a component is not a network")

    def params(self, prefix: str = "") -> dict[str, np.ndarray]:
        """All variables by TF name, components prefixed with their key ('mapping/Dense0/weight', ...)."""
        out = {prefix + name: value for name, value in self.variables}
        for key, component in self.components.items():
            out.update(component.params(f"{prefix}{key}/"))
        return out

    def all_static_kwargs(self) -> dict[str, Any]:
        """Static keyword arguments of the components, overridden by this network's own."""
        out: dict[str, Any] = {}
        for component in self.components.values():
            out.update(component.all_static_kwargs())
        out.update(self.static_kwargs)
        return out


# Every global a reference pickle may name, mapped to the function or class used instead of the real one.
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _load_storage_from_bytes,
    ("dnnlib.util", "EasyDict"): _EasyDict,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("numpy", "dtype"): _DTypeSpec,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    # Old TensorFlow StyleGAN pickles: networks and the numpy arrays holding their variables.
    ("dnnlib.tflib.network", "Network"): TFNetwork,
    ("numpy.core.multiarray", "_reconstruct"): _ndarray_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _ndarray_reconstruct,
    ("numpy", "ndarray"): _NDArrayClass,
    ("_codecs", "encode"): _codecs_encode,
}
# Objects a BUILD opcode may set state on (everything else refuses: no __setstate__ of foreign types runs).
_BUILDABLE = (PersistentObject, _EasyDict, _DTypeSpec, collections.OrderedDict, _NDArray, TFNetwork)


class _RestrictedUnpickler(pickle._Unpickler):
    """Pure-Python unpickler with an allow-list of globals and a guarded BUILD opcode."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "__builtin__":  # Python 2 spelling in protocol 0-2 files
            module = "builtins"
        target = _ALLOWED_GLOBALS.get((module, name))
        if target is None:
            raise UnsafePickleError(f"refused to load global {module}.{name}: not on the allow-list")
        return target

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("refused a persistent id (the reference network pickles use none)")

    def _load_build(self) -> None:
        state = self.stack.pop()
        inst = self.stack[-1]
        if not isinstance(inst, _BUILDABLE):
            raise UnsafePickleError(f"refused to set state on an object of type {type(inst).__name__}")
        if isinstance(inst, collections.OrderedDict):
            if state:
                raise UnsafePickleError("refused to set attributes on an OrderedDict")
            return
        inst.__setstate__(state)

    dispatch = dict(pickle._Unpickler.dispatch)
    dispatch[pickle.BUILD[0]] = _load_build


def read_reference_pickle(path: str | os.PathLike) -> dict[str, Any]:
    """Read a reference network pickle safely.

    Returns the top-level dict, with each network as a `PersistentObject` (tensors are real torch tensors on CPU).
    Raises UnsafePickleError for anything outside the allow-list and CheckpointError for corrupt or truncated files.
    Nothing in the file is executed and nothing outside this process's memory is touched.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = _RestrictedUnpickler(f).load()
    except CheckpointError as exc:
        raise type(exc)(f"{path}: {exc}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError,
            UnicodeDecodeError, MemoryError, OverflowError, struct.error) as exc:
        raise CheckpointError(f"{path}: corrupt or truncated network pickle ({type(exc).__name__}: {exc})") from None
    if isinstance(data, tuple) and len(data) == 3 and all(isinstance(v, TFNetwork) for v in data):
        return {"G": data[0], "D": data[1], "G_ema": data[2]}  # TensorFlow StyleGAN (G, D, Gs)
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a dict of networks, found {type(data).__name__}")
    return data


def _state_from_persistent(obj: PersistentObject, prefix: str = "") -> dict[str, torch.Tensor]:
    """Flatten a persistent module's nested `_parameters` / `_buffers` / `_modules` into a state dict."""
    out: dict[str, torch.Tensor] = {}
    state = obj.state
    non_persistent = state.get("_non_persistent_buffers_set") or set()
    for group in ("_parameters", "_buffers"):
        tensors = state.get(group) or {}
        if not isinstance(tensors, dict):
            raise CheckpointError(f"{prefix or obj.class_name}: {group} is {type(tensors).__name__}, not a dict")
        for name, tensor in tensors.items():
            if tensor is None or (group == "_buffers" and name in non_persistent):
                continue
            if not isinstance(tensor, torch.Tensor):
                raise CheckpointError(f"{prefix}{name}: expected a tensor, found {type(tensor).__name__}")
            out[prefix + name] = tensor
    modules = state.get("_modules") or {}
    if not isinstance(modules, dict):
        raise CheckpointError(f"{prefix or obj.class_name}: _modules is {type(modules).__name__}, not a dict")
    for name, module in modules.items():
        if module is None:
            continue
        if not isinstance(module, PersistentObject):
            raise CheckpointError(f"{prefix}{name}: sub-module of type {type(module).__name__} is not supported")
        out.update(_state_from_persistent(module, f"{prefix}{name}."))
    return out


# Reference constructor argument order, to name positional `_init_args`.
_POSITIONAL = {
    "Generator": ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs", "synthesis_kwargs"),
    "Discriminator": ("c_dim", "img_resolution", "img_channels", "architecture", "channel_base", "channel_max",
                      "num_fp16_res", "conv_clamp", "cmap_dim", "block_kwargs", "mapping_kwargs", "epilogue_kwargs"),
}
_GENERATOR_TOP = set(_POSITIONAL["Generator"])
# Keywords some reference files record that only choose a code path (no parameters, same numbers): dropped.
_RUNTIME_ONLY_KWARGS = ("fused_modconv_default",)


def _plain(value: Any, where: str = "init_kwargs") -> Any:
    """Deep-convert constructor arguments to JSON-able Python (dict subclasses to dict, tuples to lists)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (np.generic,)):
        return value.item()
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise CheckpointError(f"{where}: non-string key {key!r}")
            out[key] = _plain(item, f"{where}.{key}")
        return out
    if isinstance(value, (list, tuple)):
        return [_plain(item, f"{where}[{i}]") for i, item in enumerate(value)]
    raise CheckpointError(f"{where}: value of type {type(value).__name__} is not a plain constructor argument")


def _init_kwargs_from_persistent(obj: PersistentObject) -> dict[str, Any]:
    """The constructor arguments recorded in a persistent object (`_init_args` named by the reference order)."""
    args = obj.state.get("_init_args") or ()
    kwargs = obj.state.get("_init_kwargs") or {}
    if not isinstance(args, (tuple, list)) or not isinstance(kwargs, dict):
        raise CheckpointError(f"{obj.class_name}: _init_args / _init_kwargs have unexpected types")
    names = _POSITIONAL.get(obj.class_name)
    if args and (names is None or len(args) > len(names)):
        raise CheckpointError(f"{obj.class_name}: {len(args)} positional constructor arguments cannot be named")
    merged = dict(zip(names or (), args))
    merged.update(kwargs)
    return _plain(merged, f"{obj.class_name} init_kwargs")


def _normalize_generator_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """StyleGAN3-era files pass synthesis options as top-level keywords; fold them into `synthesis_kwargs` and drop
    the code-path-only ones."""
    kwargs = copy.deepcopy(kwargs)
    extra = {k: kwargs.pop(k) for k in list(kwargs) if k not in _GENERATOR_TOP}
    if extra or kwargs.get("synthesis_kwargs"):
        synthesis = dict(kwargs.get("synthesis_kwargs") or {})
        synthesis.update(extra)
        for key in _RUNTIME_ONLY_KWARGS:
            synthesis.pop(key, None)
        kwargs["synthesis_kwargs"] = synthesis
    return kwargs


# Old TensorFlow StyleGAN2 generators (public name mapping; see the fixture README)

_TF_IGNORED = ("lod", "synthesis/lod")  # progressive-growing leftovers with no counterpart


def _tf_generator_kwargs(net: TFNetwork) -> dict[str, Any]:
    """Constructor arguments of the equivalent Generator, from the TF networks' static kwargs (TF defaults)."""
    kw = net.all_static_kwargs()

    def get(name: str, default: Any) -> Any:
        value = kw.get(name, default)
        return default if value is None else value

    if get("label_size", 0):
        raise CheckpointError("conditional TensorFlow generators (label_size > 0) are not supported")
    if get("fmap_decay", 1.0) != 1.0 or get("fmap_min", 1) != 1:
        raise CheckpointError("TensorFlow generator with fmap_decay != 1 or fmap_min != 1 is not supported")
    if get("architecture", "skip") != "skip" or not get("normalize_latents", True):
        raise CheckpointError("only 'skip' TensorFlow generators with normalized latents are supported")
    w_dim = int(get("dlatent_size", 512))
    return _plain({
        "z_dim": int(get("latent_size", 512)), "c_dim": 0, "w_dim": w_dim,
        "img_resolution": int(get("resolution", 1024)), "img_channels": int(get("num_channels", 3)),
        "mapping_kwargs": {"num_layers": int(get("mapping_layers", 8)),
                           "layer_features": int(get("mapping_fmaps", w_dim)),
                           "activation": get("mapping_nonlinearity", "lrelu"),
                           "lr_multiplier": float(get("mapping_lrmul", 0.01)),
                           "w_avg_beta": float(get("dlatent_avg_beta", 0.995))},
        "synthesis_kwargs": {"channel_base": int(get("fmap_base", 16 << 10)) * 2,
                             "channel_max": int(get("fmap_max", 512)), "num_fp16_res": 0, "conv_clamp": None,
                             "resample_filter": list(get("resample_kernel", [1, 3, 3, 1])),
                             "use_noise": True, "activation": get("nonlinearity", "lrelu")},
    })


def _tf_generator_state(net: TFNetwork, template: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Reference-named state dict from TF variables; `template` (a freshly built network's state dict) supplies the
    constant resample filters TF computes instead of storing, and the list of names to fill."""
    params = net.params()
    used: set[str] = set()

    def take(name: str, transform=None) -> torch.Tensor:
        if name not in params:
            raise CheckpointError(f"TensorFlow generator has no variable {name!r}")
        used.add(name)
        value = params[name] if transform is None else transform(params[name])
        return torch.from_numpy(np.array(value, dtype=np.float32, order="C"))  # a copy; keeps 0-d shapes

    def conv_weight(flip: bool):  # HWIO -> OIHW, optionally flipped on both kernel axes (Conv0_up)
        return lambda a: (a[::-1, ::-1] if flip else a).transpose(3, 2, 0, 1)

    state: dict[str, torch.Tensor] = {"mapping.w_avg": take("dlatent_avg")}
    num_layers = sum(1 for k in template if k.startswith("mapping.fc") and k.endswith(".weight"))
    for i in range(num_layers):
        state[f"mapping.fc{i}.weight"] = take(f"mapping/Dense{i}/weight", np.transpose)
        state[f"mapping.fc{i}.bias"] = take(f"mapping/Dense{i}/bias")

    def layer(dst: str, src: str, flip: bool = False, noise: int | None = None) -> None:
        state[f"{dst}.weight"] = take(f"{src}/weight", conv_weight(flip))
        state[f"{dst}.affine.weight"] = take(f"{src}/mod_weight", np.transpose)
        state[f"{dst}.affine.bias"] = take(f"{src}/mod_bias", lambda a: a + 1)  # TF adds 1 at run time
        state[f"{dst}.bias"] = take(f"{src}/bias")
        if noise is not None and f"{dst}.noise_const" in template:
            state[f"{dst}.noise_strength"] = take(f"{src}/noise_strength")
            state[f"{dst}.noise_const"] = take(f"synthesis/noise{noise}", lambda a: a[0, 0])  # [1,1,R,R] -> [R,R]

    resolutions = sorted({int(k.split(".")[1][1:]) for k in template if k.startswith("synthesis.b")})
    for res in resolutions:
        src, dst = f"synthesis/{res}x{res}", f"synthesis.b{res}"
        log2 = int(math.log2(res))
        if res == 4:
            state[f"{dst}.const"] = take(f"{src}/Const/const", lambda a: a[0])  # [1,C,4,4] -> [C,4,4]
            layer(f"{dst}.conv1", f"{src}/Conv", noise=0)
        else:
            layer(f"{dst}.conv0", f"{src}/Conv0_up", flip=True, noise=2 * log2 - 5)
            layer(f"{dst}.conv1", f"{src}/Conv1", noise=2 * log2 - 4)
        layer(f"{dst}.torgb", f"{src}/ToRGB")
    for key, value in template.items():
        if key.endswith("resample_filter") and key not in state:
            state[key] = value.clone()
    leftover = sorted(set(params) - used - set(_TF_IGNORED))
    if leftover:
        raise CheckpointError(f"TensorFlow generator variables with no counterpart: {', '.join(leftover[:5])}")
    return state


# ----------------------------------------------------------------------------------------------------------------
# Building networks


def _network_class(class_name: str):
    from editor import stylegan2

    classes = {"Generator": stylegan2.Generator, "Discriminator": stylegan2.Discriminator}
    if class_name not in classes:
        raise CheckpointError(f"network class {class_name!r} is not supported (expected one of {sorted(classes)})")
    return classes[class_name]


def _build(class_name: str, init_kwargs: dict[str, Any], seed: int = 0) -> torch.nn.Module:
    """Construct a network on CPU with the global RNG left untouched (weights seeded by `seed`)."""
    cls = _network_class(class_name)
    if class_name == "Generator":
        init_kwargs = _normalize_generator_kwargs(init_kwargs)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            return cls(**copy.deepcopy(init_kwargs))
        except (TypeError, ValueError, AssertionError, KeyError) as exc:
            raise CheckpointError(
                f"cannot build a {class_name} from the checkpoint's init_kwargs {json.dumps(init_kwargs)}: "
                f"{type(exc).__name__}: {exc}"
            ) from None


def _assemble(class_name: str, init_kwargs: dict[str, Any], state: dict[str, torch.Tensor], origin: str,
              device: str | torch.device) -> torch.nn.Module:
    """Build, load strictly (every name and shape must match), freeze, move. Raises before returning anything."""
    net = _build(class_name, init_kwargs)
    expected = net.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if tuple(expected[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
        if wrong:
            k = wrong[0]
            parts.append(f"{len(wrong)} with wrong shape (e.g. {k}: file {tuple(state[k].shape)}, "
                         f"network {tuple(expected[k].shape)})")
        raise CheckpointError(f"{origin}: tensors do not match a {class_name} built from its config: "
                              + "; ".join(parts))
    for k, t in state.items():
        if not (t.is_floating_point() or t.dtype == expected[k].dtype):
            raise CheckpointError(f"{origin}: tensor {k} has dtype {t.dtype}, expected {expected[k].dtype}")
    net.load_state_dict(state, strict=True)
    net.requires_grad_(False)
    net.eval()
    return net.to(device)


# ----------------------------------------------------------------------------------------------------------------
# Native format (safetensors + JSON config)


def _config_for(net: torch.nn.Module, provenance: dict[str, Any] | None = None) -> dict[str, Any]:
    init_kwargs = getattr(net, "init_kwargs", None)
    if not isinstance(init_kwargs, dict):
        raise ValueError(f"{type(net).__name__} has no init_kwargs dict; cannot record how to rebuild it")
    config = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "class_name": type(net).__name__,
        "init_kwargs": _plain(init_kwargs),
        "model_id": model_id(net),
    }
    reserved = set(config) & set(provenance or {})
    if reserved:
        raise ValueError(f"provenance may not override {sorted(reserved)}")
    config.update(_plain(provenance or {}, "provenance"))
    return config


def _atomic_target(path: Path) -> Path:
    """A fresh temporary file beside `path` (same file system, so the final rename is atomic)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    return Path(tmp)


def _publish(tmp: Path, target: Path) -> None:
    """Give `tmp` ordinary permissions (mkstemp makes it owner-only) and rename it onto `target` atomically."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, target)


def save_network(net: torch.nn.Module, path: str | os.PathLike, provenance: dict[str, Any] | None = None) -> Path:
    """Write `net` in the native format: `path` ending in `.safetensors` gives one file (config in its metadata);
    any other path is a directory with `state.safetensors` + `config.json`. Files appear atomically.

    provenance: extra JSON-able fields stored in the config (e.g. {'source': ..., 'license': ...}).
    """
    from safetensors.torch import save_file

    path = Path(path)
    config = _config_for(net, provenance)
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in net.state_dict().items()}
    if path.suffix == ".safetensors":
        path.parent.mkdir(parents=True, exist_ok=True)
        targets = [(path, "state")]
    else:
        if path.exists() and not path.is_dir():
            raise ValueError(f"{path} exists and is not a directory (use a .safetensors name for a single file)")
        path.mkdir(parents=True, exist_ok=True)
        targets = [(path / STATE_FILE, "state"), (path / CONFIG_FILE, "config")]
    for target, what in targets:
        tmp = _atomic_target(target)
        try:
            if what == "state":
                metadata = {"config": json.dumps(config)} if path.suffix == ".safetensors" else {"format": FORMAT_NAME}
                save_file(state, str(tmp), metadata=metadata)
            else:
                tmp.write_text(json.dumps(config, indent=2) + "\n")
            _publish(tmp, target)
        finally:
            if tmp.exists():
                tmp.unlink()
    return path


def save_generator(G: torch.nn.Module, path: str | os.PathLike, provenance: dict[str, Any] | None = None) -> Path:
    """Write a generator in the native format (see `save_network`)."""
    return save_network(G, path, provenance)


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import SafetensorError, safe_open

    try:
        tensors = {}
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            for key in f.keys():
                tensors[key] = f.get_tensor(key)
        return tensors, metadata
    except (SafetensorError, OSError, RuntimeError, ValueError) as exc:
        raise CheckpointError(f"{path}: corrupt or truncated safetensors file ({exc})") from None


def _class_from_config(config: dict[str, Any]) -> str:
    class_name = config.get("class_name")
    if class_name is None:  # configs written by the reference-data tools carry no class name
        class_name = "Generator" if "z_dim" in config["init_kwargs"] else "Discriminator"
    return class_name


def _check_config(config: Any, origin: str) -> dict[str, Any]:
    if not isinstance(config, dict) or not isinstance(config.get("init_kwargs"), dict):
        raise CheckpointError(f"{origin}: config has no 'init_kwargs' object (the network's constructor arguments)")
    return config


def _load_native(path: Path) -> tuple[str, dict[str, Any], dict[str, torch.Tensor]]:
    """(class_name, init_kwargs, state) from a native directory or single file."""
    if path.is_dir():
        state_file, config_file = path / STATE_FILE, path / CONFIG_FILE
        for f in (state_file, config_file):
            if not f.is_file():
                raise CheckpointError(f"{path}: not a native checkpoint directory ({f.name} is missing)")
        try:
            config = json.loads(config_file.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"{config_file}: not valid JSON ({exc})") from None
        state, _ = _read_safetensors(state_file)
        origin = str(path)
    else:
        state, metadata = _read_safetensors(path)
        if "config" not in metadata:
            raise CheckpointError(
                f"{path}: safetensors file has no 'config' metadata; put it in a directory with a {CONFIG_FILE} "
                "holding {\"init_kwargs\": {...}} instead"
            )
        try:
            config = json.loads(metadata["config"])
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"{path}: 'config' metadata is not valid JSON ({exc})") from None
        origin = str(path)
    config = _check_config(config, origin)
    return _class_from_config(config), config["init_kwargs"], state


# ----------------------------------------------------------------------------------------------------------------
# Downloads


def _offline() -> bool:
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def _resolve_host(host: str, port: int, timeout: float) -> None:
    """Resolve `host` within `timeout` seconds (getaddrinfo has no timeout of its own); OSError if it cannot."""
    result: dict[str, Any] = {}

    def target():
        try:
            result["addr"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise OSError(f"could not resolve {host} within {timeout:g} s")
    if "error" in result:
        raise OSError(f"could not resolve {host}: {result['error']}")


def _uses_proxy(url: str) -> bool:
    scheme = urllib.parse.urlsplit(url).scheme
    return bool(urllib.request.getproxies().get(scheme))


def _unavailable(what: str, reason: str, dest: Path) -> ModelUnavailableError:
    return ModelUnavailableError(
        f"could not download {what}: {reason}. On a machine with internet access, download it and put it at "
        f"{dest} (or pass the local file with --model PATH)."
    )


def url_cache_path(url: str) -> Path:
    """Where `url` is cached: cache_dir()/downloads/<url hash>-<file name>."""
    name = os.path.basename(urllib.parse.urlsplit(url).path) or "download"
    digest = hashlib.sha256(url.encode()).hexdigest()[:12]
    return cache_dir() / "downloads" / f"{digest}-{name}"


def download_url(url: str, dest: str | os.PathLike, *, progress: bool = True, timeout: float = 10.0) -> Path:
    """Download `url` to `dest` once (an existing `dest` is returned as is), with a tqdm bar on stderr.

    Data goes to a temporary file beside `dest` that is renamed into place only when complete, so an interrupted
    download leaves nothing at `dest`. Raises ModelUnavailableError (naming the file and where to put it) when
    offline ($STYLEGAN2_EDITOR_OFFLINE=1), unreachable (DNS and connect bounded by `timeout` seconds) or refused.
    """
    dest = Path(dest)
    if dest.is_file():
        return dest
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    if _offline():
        raise _unavailable(url, f"offline mode (${OFFLINE_ENV} is set)", dest)
    try:
        if not _uses_proxy(url):
            _resolve_host(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80), timeout)
        request = urllib.request.Request(url, headers={"User-Agent": "stylegan2-editor"})
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        raise _unavailable(url, f"HTTP {exc.code} {exc.reason}", dest) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise _unavailable(url, f"unreachable ({reason})", dest) from None
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = _atomic_target(dest)
    try:
        from tqdm.auto import tqdm

        total = response.headers.get("Content-Length")
        total = int(total) if total and total.isdigit() else None
        received = 0
        with response, open(tmp, "wb") as out, tqdm(
            total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=dest.name,
            disable=True if not progress else None, leave=False,
        ) as bar:
            while True:
                chunk = response.read(1 << 20)
                if not chunk:
                    break
                out.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        if total is not None and received != total:
            raise _unavailable(url, f"connection closed after {received} of {total} bytes", dest)
        _publish(tmp, dest)
    except (urllib.error.URLError, OSError) as exc:
        if isinstance(exc, ModelUnavailableError):
            raise
        raise _unavailable(url, f"transfer failed ({exc})", dest) from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return dest


def _parse_hf(source: str) -> tuple[str, str, str | None]:
    """'hf://owner/repo[@revision]/path/to/file' -> (repo_id, filename, revision)."""
    rest = source[len("hf://"):]
    parts = rest.split("/")
    if len(parts) < 3 or not all(parts):
        raise ValueError(f"expected hf://owner/repo/path/to/file, got {source!r}")
    owner, repo, filename = parts[0], parts[1], "/".join(parts[2:])
    revision = None
    if "@" in repo:
        repo, revision = repo.split("@", 1)
    return f"{owner}/{repo}", filename, revision


def _hf_download(source: str, *, timeout: float = 10.0) -> Path:
    """Fetch an hf:// file through huggingface_hub (its cache; $HF_HUB_CACHE honoured at call time)."""
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    repo_id, filename, revision = _parse_hf(source)
    cache = os.environ.get("HF_HUB_CACHE") or None
    kwargs = dict(repo_id=repo_id, filename=filename, revision=revision, cache_dir=cache)
    try:
        return Path(hf_hub_download(**kwargs, local_files_only=True))
    except LocalEntryNotFoundError:
        pass
    except (OSError, ValueError) as exc:
        raise ModelUnavailableError(f"{source}: {exc}") from None
    web = f"{constants.ENDPOINT}/{repo_id}/resolve/{revision or 'main'}/{filename}"
    where = (f"the Hugging Face cache ({cache or constants.HF_HUB_CACHE}; e.g. run `hf download {repo_id} "
             f"{filename}` on a connected machine and copy the cache), or download {web} and pass the local path")
    offline = constants.HF_HUB_OFFLINE or _offline()
    reason = "offline mode (HF_HUB_OFFLINE=1)" if offline else None
    if not offline:
        host = urllib.parse.urlsplit(constants.ENDPOINT).hostname or "huggingface.co"
        try:
            if not _uses_proxy(constants.ENDPOINT):
                _resolve_host(host, 443, timeout)
        except OSError as exc:
            reason = f"unreachable ({exc})"
    if reason is None:
        try:
            return Path(hf_hub_download(**kwargs, etag_timeout=timeout))
        except Exception as exc:  # huggingface_hub raises many HTTP/OS error types; all mean "not available"
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    raise ModelUnavailableError(f"could not fetch {filename} from {repo_id}: {reason}. Put it in {where}.")


def resolve_source(source: str | os.PathLike, *, progress: bool = True, timeout: float = 10.0) -> Path | str:
    """Turn any source into a local path (downloading if needed), or return a 'random:...' string unchanged."""
    text = os.fspath(source)
    if text.startswith("random:"):
        return text
    if text.startswith("hf://"):
        return _hf_download(text, timeout=timeout)
    if text.startswith(("https://", "http://")):
        return download_url(text, url_cache_path(text), progress=progress, timeout=timeout)
    path = Path(text).expanduser()
    if path.exists():
        return path
    if text == "demo":
        if not (DEMO_DIR / STATE_FILE).is_file() or not (DEMO_DIR / CONFIG_FILE).is_file():
            raise ModelUnavailableError(
                f"the bundled demo generator is not in this checkout yet (expected {DEMO_DIR}/{STATE_FILE} and "
                f"{CONFIG_FILE}); use --model random:small for random weights, or another source"
            )
        return DEMO_DIR
    if text in REGISTRY:
        info = REGISTRY[text]
        return download_url(info.url, cache_dir() / info.filename, progress=progress, timeout=timeout)
    raise FileNotFoundError(
        f"{text!r} is not an existing path, an http(s):// or hf:// URL, 'random:<config>[:seed]', or a model name "
        f"({', '.join(REGISTRY)})"
    )


# ----------------------------------------------------------------------------------------------------------------
# Loading


def _random_network(spec: str, kind: str) -> tuple[str, dict[str, Any], int]:
    """'random:<config>[:seed]' -> (class_name, init_kwargs, seed) from `editor.stylegan2.CONFIGS`."""
    from editor import stylegan2

    parts = spec.split(":")
    if len(parts) not in (2, 3) or not parts[1]:
        raise ValueError(f"expected random:<config>[:seed], got {spec!r}")
    seed = 0
    if len(parts) == 3:
        try:
            seed = int(parts[2])
        except ValueError:
            raise ValueError(f"seed in {spec!r} is not an integer") from None
    name = parts[1]
    if name not in stylegan2.CONFIGS:
        raise ValueError(f"unknown configuration {name!r} in {spec!r}; known: {', '.join(stylegan2.CONFIGS)}")
    cfg = stylegan2.CONFIGS[name]
    if kind == "D":
        return "Discriminator", cfg.discriminator_kwargs(), seed
    return "Generator", cfg.generator_kwargs(), seed


def _sniff(path: Path) -> str:
    """'native', 'pickle' or 'unknown' for a local path."""
    if path.is_dir():
        return "native"
    if path.suffix in (".pkl", ".pickle"):
        return "pickle"
    if path.suffix == ".safetensors":
        return "native"
    with open(path, "rb") as f:
        head = f.read(16)
    if head[:1] == b"\x80":
        return "pickle"
    if len(head) >= 9 and head[8:9] == b"{":
        return "native"
    return "unknown"


def load_network(source: str | os.PathLike, kind: str = "G_ema", device: str | torch.device = "cpu", *,
                 progress: bool = True) -> torch.nn.Module:
    """Load one network from any source (see the module docstring).

    `kind` picks the network from a reference pickle ('G_ema' the averaged generator, 'G', or 'D' the
    discriminator); a native checkpoint holds one network, which must be of that kind's class. The result is in
    eval mode with `requires_grad` off (call `.train().requires_grad_(True)` to train it) and lives on `device`.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    wanted = "Discriminator" if kind == "D" else "Generator"
    resolved = resolve_source(source, progress=progress)
    if isinstance(resolved, str):  # random:...
        class_name, init_kwargs, seed = _random_network(resolved, kind)
        net = _build(class_name, init_kwargs, seed=seed)
        net.requires_grad_(False)
        return net.eval().to(device)
    path = resolved
    try:
        return _load_local(path, kind, wanted, device)
    except CheckpointError as exc:
        if _in_cache(path):  # a bad download stays in the cache until removed: say so
            raise type(exc)(f"{exc} (this is a cached download: delete it to fetch it again)") from None
        raise


def _in_cache(path: Path) -> bool:
    try:
        path.resolve().relative_to(cache_dir().resolve())
        return True
    except ValueError:
        return False


def _load_local(path: Path, kind: str, wanted: str, device: str | torch.device) -> torch.nn.Module:
    """Load one network of class `wanted` (`kind` for pickles) from a local file or directory."""
    fmt = _sniff(path)
    if fmt == "native":
        class_name, init_kwargs, state = _load_native(path)
        if class_name != wanted:
            raise CheckpointError(f"{path} holds a {class_name}, but a {wanted} ({kind}) was asked for")
    elif fmt == "pickle":
        data = read_reference_pickle(path)
        if kind not in data:
            nets = [k for k, v in data.items() if isinstance(v, (PersistentObject, TFNetwork))]
            raise CheckpointError(f"{path}: no {kind!r} network in this pickle (it holds {nets})")
        obj = data[kind]
        if isinstance(obj, TFNetwork):
            if kind == "D":
                raise CheckpointError(f"{path}: converting TensorFlow discriminators is not supported")
            init_kwargs = _tf_generator_kwargs(obj)
            template = _build("Generator", init_kwargs).state_dict()
            return _assemble("Generator", init_kwargs, _tf_generator_state(obj, template), str(path), device)
        if not isinstance(obj, PersistentObject):
            raise CheckpointError(f"{path}: {kind!r} is a {type(obj).__name__}, not a network")
        class_name = obj.class_name
        if class_name != wanted:
            raise CheckpointError(f"{path}: {kind!r} is a {class_name}, expected a {wanted}")
        init_kwargs = _init_kwargs_from_persistent(obj)
        state = _state_from_persistent(obj)
    else:
        raise CheckpointError(f"{path}: unknown file format (expected a .pkl network pickle, a .safetensors file or a "
                              "checkpoint directory)")
    return _assemble(class_name, init_kwargs, state, str(path), device)


def load_generator(source: str | os.PathLike, device: str | torch.device = "cpu", *,
                   progress: bool = True) -> torch.nn.Module:
    """A ready generator (eval mode, no gradients, on `device`) from any source; `G_ema` from reference pickles."""
    return load_network(source, "G_ema", device, progress=progress)


# ----------------------------------------------------------------------------------------------------------------
# Identity


def model_id(net: torch.nn.Module, length: int = 12) -> str:
    """Short content hash of a network's state dict (names, dtypes, shapes and values): equal iff same weights."""
    if not 8 <= length <= 64:
        raise ValueError(f"length must be in [8, 64], got {length}")
    h = hashlib.sha256()
    for name, tensor in sorted(net.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous()
        h.update(f"{name}|{str(t.dtype)}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:length]


def count_parameters(net: torch.nn.Module) -> int:
    """Number of parameter elements (buffers excluded)."""
    return sum(p.numel() for p in net.parameters())

