"""Restricted reading of reference network pickles: an allow-list of globals mapped to inert stand-ins; the
embedded module source is parsed as text, never executed."""

from __future__ import annotations

import ast
import collections
import functools
import io
import math
import os
import pickle
import struct
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from editor.checkpoints.errors import CheckpointError, UnsafePickleError

# The embedded module sources of NVIDIA's network and augmentation modules are 25-45 thousand characters.
MAX_SOURCE_CHARS = 1_000_000
MAX_TF_DEPTH = 8  # nesting of TensorFlow networks in components (Gs -> mapping / synthesis: 1)


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
        if math.prod(size) * torch.empty(0, dtype=dtype).element_size() > untyped.nbytes() and math.prod(size):
            raise CheckpointError(f"tensor of shape {tuple(size)} has more values than its storage holds "
                                  f"({untyped.nbytes()} bytes; overlapping strides)")
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


# Expressions that only build data from literals and names (evaluating them calls nothing a file could choose, at
# most an operator on numbers); anything else would run code when the module is imported.
_INERT_EXPRESSIONS = (ast.Constant, ast.List, ast.Tuple, ast.Set, ast.Dict, ast.UnaryOp, ast.BinOp, ast.Name,
                      ast.Attribute, ast.operator, ast.unaryop, ast.expr_context)
_WHAT = {ast.Call: "a call", ast.Subscript: "an indexing", ast.Lambda: "a lambda", ast.ListComp: "a comprehension",
         ast.SetComp: "a comprehension", ast.DictComp: "a comprehension", ast.GeneratorExp: "a generator",
         ast.JoinedStr: "an f-string", ast.NamedExpr: "an assignment expression", ast.Await: "an await",
         ast.Yield: "a yield", ast.YieldFrom: "a yield", ast.Compare: "a comparison", ast.BoolOp: "a boolean operation",
         ast.IfExp: "a conditional expression", ast.Starred: "an unpacking", ast.Slice: "a slice",
         ast.For: "a loop", ast.AsyncFor: "a loop", ast.While: "a loop", ast.If: "an if statement",
         ast.Try: "a try statement", ast.Raise: "a raise", ast.With: "a with statement", ast.AsyncWith: "a with statement",
         ast.Expr: "an expression statement", ast.AugAssign: "an augmented assignment", ast.Delete: "a del",
         ast.Assert: "an assert", ast.Global: "a global statement", ast.Nonlocal: "a nonlocal statement",
         ast.Match: "a match statement", ast.Return: "a return"}


def _what(node: ast.AST) -> str:
    return _WHAT.get(type(node), f"a {type(node).__name__} node")


@functools.lru_cache(maxsize=8)
def _source_refusal(src: str) -> str | None:
    """Why a module source would run code when imported (None: it only imports, defines and assigns literals).

    Module and class bodies may hold a docstring, imports, `pass`, function and class definitions, and assignments
    of inert expressions (literals, containers of literals, +/- and arithmetic on them, dotted names) to plain
    names. Everything evaluated at definition time (decorators, base classes, argument defaults and annotations)
    must be inert too, and decorators and base classes dotted names. Cached: a pickle repeats one source per
    network module.
    """
    try:
        tree = ast.parse(src)
    except (SyntaxError, ValueError) as exc:
        return f"it is not valid Python ({exc})"
    except (RecursionError, MemoryError):
        return "it is nested too deeply to parse"

    def refusal(node: ast.AST, where: str, what: str) -> str:
        snippet = (ast.get_source_segment(src, node) or "").splitlines()
        snippet = f": {snippet[0][:80]!r}" if snippet else ""
        return f"line {getattr(node, 'lineno', '?')} ({where}) has {what}{snippet}"

    def inert(expr: ast.AST | None, where: str, what: str) -> str | None:
        for sub in ast.walk(expr) if expr is not None else ():
            if not isinstance(sub, _INERT_EXPRESSIONS):
                return refusal(sub, where, f"{_what(sub)} in {what}")
        return None

    def signature(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef, where: str) -> str | None:
        kind = "class" if isinstance(node, ast.ClassDef) else "function"
        for d in node.decorator_list:
            if not _is_dotted_name(d):
                return refusal(d, where, f"{_what(d)} as the decorator of {kind} {node.name}")
        if isinstance(node, ast.ClassDef):
            for base in node.bases:
                if not _is_dotted_name(base):
                    return refusal(base, where, f"{_what(base)} as a base of class {node.name}")
            if node.keywords:
                return refusal(node, where, f"keyword arguments (e.g. a metaclass) in class {node.name}")
            return check_body(node.body, f"class {node.name}")
        args = node.args
        for expr in [*args.defaults, *args.kw_defaults, node.returns,
                     *(a.annotation for a in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
                       if a is not None)]:
            reason = inert(expr, where, f"a default or annotation of function {node.name}")
            if reason:
                return reason
        return None

    def check_body(body: list[ast.stmt], where: str) -> str | None:
        for i, node in enumerate(body):
            if i == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
                continue  # docstring
            if isinstance(node, (ast.Import, ast.ImportFrom, ast.Pass)):
                continue
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                reason = signature(node, where)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names = [t for target in targets for t in (target.elts if isinstance(target, (ast.Tuple, ast.List))
                                                            else [target])]
                bad = next((t for t in names if not isinstance(t, ast.Name)), None)
                reason = refusal(bad, where, "an assignment to something other than a plain name") \
                    if bad is not None else inert(node.value, where, "an assigned value")
                if reason is None and isinstance(node, ast.AnnAssign):
                    reason = inert(node.annotation, where, "an annotation")
            else:
                reason = refusal(node, where, _what(node))
            if reason:
                return reason
        return None

    return check_body(tree.body, "module level")


def _audit_module_source(src: str, class_name: str) -> None:
    """Refuse a pickle whose embedded module source is oversized or would run code when imported.

    The source is never executed here; it is parsed (ast, no evaluation) only to detect tampering: a genuine network
    module imports, defines functions and classes and assigns literal tables; anything else is code that the
    reference loader would run (see `_source_refusal`, which says which line and what).
    """
    if len(src) > MAX_SOURCE_CHARS:
        raise UnsafePickleError(f"embedded module source of {class_name!r} has {len(src):,} characters, more than "
                                f"the {MAX_SOURCE_CHARS:,} a network module needs (NVIDIA's are under 50,000); refusing")
    if os.environ.get("STYLEGAN2_EDITOR_ALLOW_ANY_PICKLE_SOURCE") == "1":
        return  # the source is never run either way; this only skips the tamper check
    reason = _source_refusal(src)
    if reason:
        raise UnsafePickleError(
            f"embedded module source of {class_name!r} runs code when imported: {reason}. A genuine network pickle "
            "only defines classes and functions and assigns literals, so this file is refused (the source is never "
            "executed; set STYLEGAN2_EDITOR_ALLOW_ANY_PICKLE_SOURCE=1 to skip this check)")


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
        count = math.prod(shape)
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

    def networks(self) -> list[tuple[str, TFNetwork]]:
        """This network and its components, nested ones included, as (key path prefix, network); refuses a network
        that contains itself or nests deeper than MAX_TF_DEPTH."""
        out, pending = [], [("", self, ())]
        while pending:
            prefix, net, path = pending.pop()
            if any(net is p for p in path):
                raise CheckpointError(f"TensorFlow network {self.name!r} contains itself (component {prefix!r})")
            if len(path) > MAX_TF_DEPTH:
                raise CheckpointError(f"TensorFlow network {self.name!r} nests components deeper than {MAX_TF_DEPTH}")
            out.append((prefix, net))
            pending.extend((f"{prefix}{key}/", c, path + (net,)) for key, c in reversed(net.components.items()))
        return out

    def params(self) -> dict[str, np.ndarray]:
        """All variables by TF name, components prefixed with their key ('mapping/Dense0/weight', ...)."""
        return {prefix + name: value for prefix, net in self.networks() for name, value in net.variables}

    def all_static_kwargs(self) -> dict[str, Any]:
        """Static keyword arguments of the components, overridden by this network's own."""
        self.networks()  # bounded nesting, no cycles: the recursion below ends

        def merged(net: TFNetwork) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for component in net.components.values():
                out.update(merged(component))
            return {**out, **net.static_kwargs}

        return merged(self)


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
