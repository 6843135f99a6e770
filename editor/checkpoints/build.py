"""Networks from constructor arguments and states: build, load strictly, identify."""

from __future__ import annotations

import copy
import hashlib
import json
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


def plain(value: Any, where: str = "init_kwargs") -> Any:
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
            out[key] = plain(item, f"{where}.{key}")
        return out
    if isinstance(value, (list, tuple)):
        return [plain(item, f"{where}[{i}]") for i, item in enumerate(value)]
    raise CheckpointError(f"{where}: value of type {type(value).__name__} is not a plain constructor argument")


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
    if class_name not in classes:
        raise CheckpointError(f"network class {class_name!r} is not supported (expected one of {sorted(classes)})")
    return classes[class_name]


def build(class_name: str, init_kwargs: dict[str, Any], seed: int = 0) -> torch.nn.Module:
    """Construct a network on CPU with the global RNG left untouched (weights seeded by `seed`)."""
    cls = _network_class(class_name)
    if class_name == "Generator":
        init_kwargs = normalize_generator_kwargs(init_kwargs)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            return cls(**copy.deepcopy(init_kwargs))
        except (TypeError, ValueError, AssertionError, KeyError) as exc:
            raise CheckpointError(
                f"cannot build a {class_name} from the checkpoint's init_kwargs {json.dumps(init_kwargs)}: "
                f"{type(exc).__name__}: {exc}"
            ) from None


def assemble(class_name: str, init_kwargs: dict[str, Any], state: dict[str, torch.Tensor], origin: str,
              device: str | torch.device) -> torch.nn.Module:
    """Build, load strictly (every name and shape must match), freeze, move. Raises before returning anything."""
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
