"""NVIDIA's stylegan2-ada-pytorch generator from a local checkout, for benchmarks only (never the package or tests).

The checkout is imported from `--reference PATH` or the environment variable STYLEGAN2_REFERENCE; without either the
benchmarks print a note and skip the reference columns. On a CPU the reference runs its pure-PyTorch paths (its CUDA
plugins are not built), and `force_fp32=True` (its fp16 blocks are for CUDA; on a CPU they take minutes).
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import torch

ENV = "STYLEGAN2_REFERENCE"


def reference_path(arg: str | None) -> Path | None:
    """The checkout to use: the argument, else $STYLEGAN2_REFERENCE, else None (the caller skips the reference)."""
    text = arg or os.environ.get(ENV)
    if not text:
        return None
    path = Path(text).expanduser().resolve()
    if not (path / "training" / "networks.py").is_file():
        raise SystemExit(f"{path} is not a stylegan2-ada-pytorch checkout (no training/networks.py)")
    return path


def skip_note() -> str:
    return (f"(no reference: pass --reference PATH to a stylegan2-ada-pytorch checkout or set {ENV}; "
            "the reference columns are left out)")


def reference_generator(path: Path, G: torch.nn.Module) -> torch.nn.Module:
    """The reference Generator built with G's constructor arguments and loaded with G's weights (strict), eval."""
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
    networks = importlib.import_module("training.networks")
    R = networks.Generator(**G.init_kwargs).eval().requires_grad_(False)
    R.load_state_dict(G.state_dict(), strict=True)
    return R.to(next(G.parameters()).device)


def reference_synthesis(R: torch.nn.Module, ws: torch.Tensor) -> torch.Tensor:
    """The reference's image for ws: constant noise, fp32 (its documented CPU behaviour)."""
    return R.synthesis(ws, noise_mode="const", force_fp32=True)
