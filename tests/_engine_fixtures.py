"""Shared helpers for the editor tests: a tiny generator and a synthetic direction bank (seeded, CPU, fast)."""

from __future__ import annotations

import numpy as np
import torch

from editor.engine import Direction, EditBank, Engine, EngineConfig


def tiny_generator(seed: int = 0) -> torch.nn.Module:
    """The project's 'small' configuration (32 px, 8 ws, w_dim 32) with seeded random weights."""
    from editor.stylegan2 import build_generator

    return build_generator("small", seed=seed).eval()


def synthetic_bank(num_ws: int, w_dim: int, seed: int = 0, attributes=("smile", "age", "glasses")) -> EditBank:
    """Random directions: a W direction per attribute (method 'svm') and a W+ one for the first (method 'pca')."""
    rng = np.random.default_rng(seed)
    dirs = [Direction(a, rng.standard_normal(w_dim), sigma=float(1.0 + i), method="svm", space="w")
            for i, a in enumerate(attributes)]
    dirs.append(Direction(attributes[0], rng.standard_normal((num_ws, w_dim)), sigma=2.0, method="pca", space="w+"))
    return EditBank(tuple(dirs), bank_id=f"synthetic-{seed}", description="random test directions")


def tiny_engine(**config) -> Engine:
    G = tiny_generator()
    bank = synthetic_bank(G.num_ws, G.w_dim)
    cfg = EngineConfig(preview_resolution=config.pop("preview_resolution", 16), **config)
    return Engine(G, bank, device="cpu", config=cfg, model_name="tiny random")

