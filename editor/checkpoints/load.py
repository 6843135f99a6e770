"""load_network / load_generator: any source -> a strictly loaded, frozen network on a device."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from editor.checkpoints.build import assemble, build, check_config
from editor.checkpoints.download import resolve_source
from editor.checkpoints.errors import CheckpointError
from editor.checkpoints.native import load_native
from editor.checkpoints.reference import (
    generator_kwargs_from_tf,
    generator_state_from_tf,
    init_kwargs_from_persistent,
    state_from_persistent,
    tf_value_count,
)
from editor.checkpoints.registry import cache_dir
from editor.checkpoints.unpickle import (
    PersistentObject,
    TFNetwork,
    read_reference_pickle,
)

KINDS = ("G_ema", "G", "D")


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
        net = build(class_name, init_kwargs, seed=seed)
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
        class_name, init_kwargs, state = load_native(path)
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
            try:
                init_kwargs, present = generator_kwargs_from_tf(obj), tf_value_count(obj)
            except CheckpointError as exc:
                raise type(exc)(f"{path}: {kind!r}: {exc}") from None
            check_config("Generator", init_kwargs, str(path), present=present, constants=False)
            template = build("Generator", init_kwargs).state_dict()
            return assemble("Generator", init_kwargs, generator_state_from_tf(obj, template), str(path), device)
        if not isinstance(obj, PersistentObject):
            raise CheckpointError(f"{path}: {kind!r} is a {type(obj).__name__}, not a network")
        class_name = obj.class_name
        if class_name != wanted:
            raise CheckpointError(f"{path}: {kind!r} is a {class_name}, expected a {wanted}")
        try:
            init_kwargs = init_kwargs_from_persistent(obj)
            state = state_from_persistent(obj)
        except CheckpointError as exc:
            raise type(exc)(f"{path}: {kind!r}: {exc}") from None
    else:
        raise CheckpointError(f"{path}: unknown file format (expected a .pkl network pickle, a .safetensors file or a "
                              "checkpoint directory)")
    return assemble(class_name, init_kwargs, state, str(path), device)


def load_generator(source: str | os.PathLike, device: str | torch.device = "cpu", *,
                   progress: bool = True) -> torch.nn.Module:
    """A ready generator (eval mode, no gradients, on `device`) from any source; `G_ema` from reference pickles."""
    return load_network(source, "G_ema", device, progress=progress)
