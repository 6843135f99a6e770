"""Restricted reading of reference network pickles: an allow-list of globals mapped to inert stand-ins; the
embedded module source is parsed as text, never executed."""

from __future__ import annotations

import ast
import collections
import io
import os
import pickle
import struct
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from editor.checkpoints.errors import CheckpointError, UnsafePickleError


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
