"""The native checkpoint format: safetensors state + JSON config (a directory, or one file with the config in
its metadata)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from editor.checkpoints.build import plain, state_digest
from editor.checkpoints.errors import CheckpointError

FORMAT_NAME = "stylegan2-editor"
FORMAT_VERSION = 1
STATE_FILE = "state.safetensors"
CONFIG_FILE = "config.json"
CHECKSUM_KEY = "state_sha256"  # config key: `state_digest` of the tensors, verified on load when present
MAX_CONFIG_BYTES = 1 << 20  # config.json / the 'config' metadata (the demo's is 2 KB)


def _config_for(net: torch.nn.Module, state: dict[str, torch.Tensor],
                provenance: dict[str, Any] | None = None) -> dict[str, Any]:
    init_kwargs = getattr(net, "init_kwargs", None)
    if not isinstance(init_kwargs, dict):
        raise ValueError(f"{type(net).__name__} has no init_kwargs dict; cannot record how to rebuild it")
    digest = state_digest(state)
    config = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "class_name": type(net).__name__,
        "init_kwargs": plain(init_kwargs),
        "model_id": digest[:12],  # = model_id(net)
        CHECKSUM_KEY: digest,
    }
    reserved = set(config) & set(provenance or {})
    if reserved:
        raise ValueError(f"provenance may not override {sorted(reserved)}")
    config.update(plain(provenance or {}, "provenance"))
    return config


def atomic_target(path: Path) -> Path:
    """A fresh temporary file beside `path` (same file system, so the final rename is atomic)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    return Path(tmp)


def publish(tmp: Path, target: Path) -> None:
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
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in net.state_dict().items()}
    config = _config_for(net, state, provenance)
    if path.suffix == ".safetensors":
        path.parent.mkdir(parents=True, exist_ok=True)
        targets = [(path, "state")]
    else:
        if path.exists() and not path.is_dir():
            raise ValueError(f"{path} exists and is not a directory (use a .safetensors name for a single file)")
        path.mkdir(parents=True, exist_ok=True)
        targets = [(path / STATE_FILE, "state"), (path / CONFIG_FILE, "config")]
    for target, what in targets:
        tmp = atomic_target(target)
        try:
            if what == "state":
                metadata = {"config": json.dumps(config)} if path.suffix == ".safetensors" else {"format": FORMAT_NAME}
                save_file(state, str(tmp), metadata=metadata)
            else:
                tmp.write_text(json.dumps(config, indent=2) + "\n")
            publish(tmp, target)
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


def _parse_config(text: str | bytes, origin: str) -> dict[str, Any]:
    """The config JSON, bounded in size and nesting; init_kwargs converted with `plain` (bounded too)."""
    if len(text) > MAX_CONFIG_BYTES:
        raise CheckpointError(f"{origin}: config of {len(text):,} bytes, more than the {MAX_CONFIG_BYTES:,} a "
                              "network config needs; refusing")
    try:
        config = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{origin}: not valid JSON ({exc})") from None
    except RecursionError:
        raise CheckpointError(f"{origin}: config JSON nested too deeply; refusing") from None
    if not isinstance(config, dict) or not isinstance(config.get("init_kwargs"), dict):
        raise CheckpointError(f"{origin}: config has no 'init_kwargs' object (the network's constructor arguments)")
    config["init_kwargs"] = plain(config["init_kwargs"], f"{origin}: init_kwargs")
    return config


def _verify_checksum(config: dict[str, Any], state: dict[str, torch.Tensor], origin: str) -> None:
    """Compare the tensors with the checksum the config records (files written before checksums have none)."""
    recorded = config.get(CHECKSUM_KEY)
    if recorded is None:
        return
    if not isinstance(recorded, str) or len(recorded) != 64:
        raise CheckpointError(f"{origin}: config field {CHECKSUM_KEY!r} is not a sha256 hex digest")
    actual = state_digest(state)
    if actual != recorded.lower():
        raise CheckpointError(f"{origin}: content checksum mismatch: the tensors hash to {actual[:16]}..., the config "
                              f"records {recorded[:16]}...; the file is corrupt or was modified")


def load_native(path: Path) -> tuple[str, dict[str, Any], dict[str, torch.Tensor]]:
    """(class_name, init_kwargs, state) from a native directory or single file; the content checksum is verified
    when the config records one."""
    if path.is_dir():
        state_file, config_file = path / STATE_FILE, path / CONFIG_FILE
        for f in (state_file, config_file):
            if not f.is_file():
                raise CheckpointError(f"{path}: not a native checkpoint directory ({f.name} is missing)")
        if config_file.stat().st_size > MAX_CONFIG_BYTES:
            raise CheckpointError(f"{config_file}: {config_file.stat().st_size:,} bytes, more than the "
                                  f"{MAX_CONFIG_BYTES:,} a network config needs; refusing")
        config = _parse_config(config_file.read_bytes(), str(config_file))
        state, _ = _read_safetensors(state_file)
    else:
        state, metadata = _read_safetensors(path)
        if "config" not in metadata:
            raise CheckpointError(
                f"{path}: safetensors file has no 'config' metadata; put it in a directory with a {CONFIG_FILE} "
                "holding {\"init_kwargs\": {...}} instead"
            )
        config = _parse_config(metadata["config"], f"{path}: 'config' metadata")
    _verify_checksum(config, state, str(path))
    return _class_from_config(config), config["init_kwargs"], state
