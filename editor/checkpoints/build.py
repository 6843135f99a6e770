"""Networks from constructor arguments and states: build, load strictly, identify."""

from __future__ import annotations

import copy
import hashlib
import json
import math
from typing import Any

import numpy as np
import torch

from editor.checkpoints.errors import CheckpointError

# Reference constructor argument order, to name positional `_init_args`.
POSITIONAL_ARGS = {
    "Generator": ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs", "synthesis_kwargs"),
    "Discriminator": ("c_dim", "img_resolution", "img_channels", "architecture", "channel_base", "channel_max",
                      "num_fp16_res", "conv_clamp", "cmap_dim", "block_kwargs", "mapping_kwargs", "epilogue_kwargs"),
}
_GENERATOR_TOP = set(POSITIONAL_ARGS["Generator"])
# Keywords some reference files record that only choose a code path (no parameters, same numbers): dropped.
_RUNTIME_ONLY_KWARGS = ("fused_modconv_default",)


# Bounds on what a checkpoint may ask the loader to build. Generous: NVIDIA's largest StyleGAN2 (FFHQ 1024) has
# 30 M generator values, 18 W layers, 512 channels and init_kwargs of ~30 values nested 2 deep.
MAX_KWARGS_VALUES = 10_000  # values (leaves and containers) in one network's init_kwargs
MAX_KWARGS_DEPTH = 16  # nesting depth of init_kwargs
MAX_RESOLUTION = 4096  # img_resolution: a power of two in [4, MAX_RESOLUTION]
MAX_LATENT = 8192  # z_dim, w_dim, embed/layer features, cmap_dim
MAX_CLASSES = 65536  # c_dim
MAX_MAPPING_LAYERS = 64
MAX_CHANNELS = 8192  # channel_max
MAX_STATE_VALUES = 400_000_000  # values in one network's state dict (1.6 GB in float32; FFHQ 1024: 30 M)
# A config is built only if the network it describes holds at most this many times the values in the file (plus
# BUILD_SLACK_VALUES): memory then stays proportional to the bytes present, and a near miss still gets the precise
# name/shape report of the strict check.
BUILD_SLACK = 2
BUILD_SLACK_VALUES = 1 << 20


def plain(value: Any, where: str = "init_kwargs") -> Any:
    """Deep-convert constructor arguments to JSON-able Python (dict subclasses to dict, tuples to lists).

    Refuses more than MAX_KWARGS_VALUES values or deeper nesting than MAX_KWARGS_DEPTH (a pickle can share one
    container many times over, so a small file may describe billions of values).
    """
    budget = [MAX_KWARGS_VALUES]

    def convert(value: Any, where: str, depth: int) -> Any:
        budget[0] -= 1
        if budget[0] < 0:
            raise CheckpointError(f"{where}: more than {MAX_KWARGS_VALUES:,} values in the constructor arguments "
                                  "(a genuine network has a few dozen); refusing")
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, (np.generic,)):
            return value.item()
        if depth >= MAX_KWARGS_DEPTH:
            raise CheckpointError(f"{where}: constructor arguments nested deeper than {MAX_KWARGS_DEPTH}; refusing")
        if isinstance(value, dict):
            out = {}
            for key, item in value.items():
                if not isinstance(key, str):
                    raise CheckpointError(f"{where}: non-string key {str(key)[:40]!r}")
                out[key] = convert(item, f"{where}.{key[:40]}", depth + 1)
            return out
        if isinstance(value, (list, tuple)):
            return [convert(item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value)]
        raise CheckpointError(f"{where}: value of type {type(value).__name__} is not a plain constructor argument")

    return convert(value, where, 0)


def _int_in(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _taps(value: Any) -> bool:  # a resample filter: up to 16 taps, or a 2-D filter of up to 16x16
    rows = value if isinstance(value, list) and value and isinstance(value[0], list) else [value]
    return isinstance(value, list) and 0 < len(rows) <= 16 and all(
        isinstance(r, list) and 0 < len(r) <= 16 and all(_number(v) for v in r) for r in rows)


# Constructor arguments with a range, wherever they appear in init_kwargs: name -> (test, what is allowed).
_ARGUMENT_BOUNDS = {
    "img_resolution": (lambda v: _int_in(v, 4, MAX_RESOLUTION) and v & (v - 1) == 0,
                       f"a power of two from 4 to {MAX_RESOLUTION}"),
    "img_channels": (lambda v: _int_in(v, 1, 16), "an integer from 1 to 16"),
    "z_dim": (lambda v: _int_in(v, 0, MAX_LATENT), f"an integer from 0 to {MAX_LATENT}"),
    "w_dim": (lambda v: _int_in(v, 1, MAX_LATENT), f"an integer from 1 to {MAX_LATENT}"),
    "c_dim": (lambda v: _int_in(v, 0, MAX_CLASSES), f"an integer from 0 to {MAX_CLASSES}"),
    "embed_features": (lambda v: v is None or _int_in(v, 0, MAX_LATENT), f"null or 0 to {MAX_LATENT}"),
    "layer_features": (lambda v: v is None or _int_in(v, 1, MAX_LATENT), f"null or 1 to {MAX_LATENT}"),
    "cmap_dim": (lambda v: v is None or _int_in(v, 0, MAX_LATENT), f"null or 0 to {MAX_LATENT}"),
    "num_layers": (lambda v: _int_in(v, 1, MAX_MAPPING_LAYERS), f"an integer from 1 to {MAX_MAPPING_LAYERS}"),
    "channel_base": (lambda v: _int_in(v, 1, MAX_CHANNELS * MAX_RESOLUTION), "a positive integer"),
    "channel_max": (lambda v: _int_in(v, 1, MAX_CHANNELS), f"an integer from 1 to {MAX_CHANNELS}"),
    "num_fp16_res": (lambda v: _int_in(v, 0, 64), "an integer from 0 to 64"),
    "conv_clamp": (lambda v: v is None or (_number(v) and v > 0), "null or a positive number"),
    "kernel_size": (lambda v: _int_in(v, 1, 15), "an integer from 1 to 15"),
    "mbstd_group_size": (lambda v: v is None or _int_in(v, 1, 4096), "null or an integer from 1 to 4096"),
    "mbstd_num_channels": (lambda v: _int_in(v, 0, 64), "an integer from 0 to 64"),
    "freeze_layers": (lambda v: _int_in(v, 0, 1000), "an integer from 0 to 1000"),
    "lr_multiplier": (lambda v: _number(v) and v > 0, "a positive number"),
    "w_avg_beta": (lambda v: v is None or _number(v), "null or a number"),
    "resample_filter": (_taps, "a list of up to 16 numbers (or a 16x16 list of lists)"),
    "architecture": (lambda v: v in ("orig", "skip", "resnet"), "'orig', 'skip' or 'resnet'"),
    "use_noise": (lambda v: isinstance(v, bool), "true or false"),
}


def check_config(class_name: str, init_kwargs: dict[str, Any], origin: str, present: int | None = None,
                 constants: bool = True) -> int:
    """Validate constructor arguments before anything is built; returns the number of values the network holds.

    Every bounded argument (see _ARGUMENT_BOUNDS) must be in range wherever it appears, the network may hold at most
    MAX_STATE_VALUES values, and, given `present` (the number of values in the file's tensors), at most
    BUILD_SLACK * present + BUILD_SLACK_VALUES. constants=False counts only what a file must supply (no resample
    filters). The one check used by the native, pickle and TensorFlow paths.
    """
    from editor import stylegan2

    _network_class(class_name)
    if not isinstance(init_kwargs, dict):
        raise CheckpointError(f"{origin}: init_kwargs is a {type(init_kwargs).__name__}, not an object")
    if class_name == "Generator":
        try:
            init_kwargs = normalize_generator_kwargs(init_kwargs)
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{origin}: synthesis_kwargs is not an object ({exc})") from None
    pending = [("init_kwargs", init_kwargs)]
    while pending:
        where, node = pending.pop()
        for key, value in node.items():
            if isinstance(value, dict):
                pending.append((f"{where}.{key}", value))
            elif key in _ARGUMENT_BOUNDS and not _ARGUMENT_BOUNDS[key][0](value):
                raise CheckpointError(f"{origin}: {where}.{key} = {str(value)[:60]} is out of bounds (must be "
                                      f"{_ARGUMENT_BOUNDS[key][1]}); refusing to build a {class_name} from it")
    size_of = stylegan2.generator_state_size if class_name == "Generator" else stylegan2.discriminator_state_size
    try:
        size = size_of(**init_kwargs, constants=constants)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise CheckpointError(f"{origin}: cannot build a {class_name} from the checkpoint's init_kwargs: "
                              f"{type(exc).__name__}: {exc}") from None
    if size > MAX_STATE_VALUES:
        raise CheckpointError(f"{origin}: its config describes a {class_name} of {size:,} values, more than the "
                              f"{MAX_STATE_VALUES:,} this loader builds; refusing")
    if present is not None and size > BUILD_SLACK * present + BUILD_SLACK_VALUES:
        raise CheckpointError(f"{origin}: its config describes a {class_name} of {size:,} values but the file "
                              f"holds {present:,}; refusing before building anything")
    return size


def normalize_generator_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
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


def _network_class(class_name: str):
    from editor import stylegan2

    classes = {"Generator": stylegan2.Generator, "Discriminator": stylegan2.Discriminator}
    if not isinstance(class_name, str) or class_name not in classes:
        raise CheckpointError(f"network class {str(class_name)[:60]!r} is not supported (expected one of "
                              f"{sorted(classes)})")
    return classes[class_name]


def build(class_name: str, init_kwargs: dict[str, Any], seed: int = 0) -> torch.nn.Module:
    """Construct a network on CPU with the global RNG left untouched (weights seeded by `seed`)."""
    cls = _network_class(class_name)
    check_config(class_name, init_kwargs, "config")
    if class_name == "Generator":
        init_kwargs = normalize_generator_kwargs(init_kwargs)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            return cls(**copy.deepcopy(init_kwargs))
        except (TypeError, ValueError, AssertionError, KeyError, ZeroDivisionError, IndexError) as exc:
            raise CheckpointError(
                f"cannot build a {class_name} from the checkpoint's init_kwargs {json.dumps(init_kwargs)}: "
                f"{type(exc).__name__}: {exc}"
            ) from None


def assemble(class_name: str, init_kwargs: dict[str, Any], state: dict[str, torch.Tensor], origin: str,
              device: str | torch.device) -> torch.nn.Module:
    """Check the config against the tensors (check_config), build, load strictly (every name and shape must match),
    freeze, move. Raises before returning anything."""
    for k, t in state.items():
        if t.numel() and t.numel() * t.element_size() > t.untyped_storage().nbytes():
            raise CheckpointError(f"{origin}: tensor {k} of shape {tuple(t.shape)} has more values than its storage "
                                  "holds (overlapping strides); refusing")
    check_config(class_name, init_kwargs, origin, present=sum(t.numel() for t in state.values()))
    net = build(class_name, init_kwargs)
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


def state_digest(state: dict[str, torch.Tensor]) -> str:
    """sha256 (hex) of a state dict's names, dtypes, shapes and values, in name order: the content checksum of
    native checkpoints, and `model_id`'s full form."""
    h = hashlib.sha256()
    for name, tensor in sorted(state.items()):
        t = tensor.detach().to("cpu").contiguous()
        h.update(f"{name}|{str(t.dtype)}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def model_id(net: torch.nn.Module, length: int = 12) -> str:
    """Short content hash of a network's state dict (names, dtypes, shapes and values): equal iff same weights."""
    if not 8 <= length <= 64:
        raise ValueError(f"length must be in [8, 64], got {length}")
    return state_digest(net.state_dict())[:length]


def count_parameters(net: torch.nn.Module) -> int:
    """Number of parameter elements (buffers excluded)."""
    return sum(p.numel() for p in net.parameters())
