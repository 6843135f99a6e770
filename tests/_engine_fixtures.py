"""Shared helpers for the editor tests: a tiny generator and a synthetic direction bank (seeded, CPU, fast)."""

from __future__ import annotations

import numpy as np
import torch

from editor.engine import Direction, EditBank, Engine, EngineConfig


def tiny_generator(seed: int = 0, resolution: int = 32) -> torch.nn.Module:
    """A tiny random-weight generator with the project's Generator interface."""
    try:
        from editor.stylegan2 import Generator
    except ImportError:  # TEMPORARY until editor/stylegan2.py lands
        Generator = ToyGenerator

    torch.manual_seed(seed)
    G = Generator(
        z_dim=32, c_dim=0, w_dim=32, img_resolution=resolution, img_channels=3,
        mapping_kwargs={"num_layers": 2}, synthesis_kwargs={"channel_base": 1024, "channel_max": 32},
    )
    return G.eval()


def synthetic_bank(num_ws: int, w_dim: int, seed: int = 0, attributes=("smile", "age", "glasses")) -> EditBank:
    """Random directions: a W direction per attribute (method 'svm') and a W+ one for the first (method 'pca')."""
    rng = np.random.default_rng(seed)
    dirs = [Direction(a, rng.standard_normal(w_dim), sigma=float(1.0 + i), method="svm", space="w")
            for i, a in enumerate(attributes)]
    dirs.append(Direction(attributes[0], rng.standard_normal((num_ws, w_dim)), sigma=2.0, method="pca", space="w+"))
    return EditBank(tuple(dirs), bank_id=f"synthetic-{seed}", description="random test directions")


def tiny_engine(resolution: int = 32, **config) -> Engine:
    G = tiny_generator(resolution=resolution)
    bank = synthetic_bank(G.num_ws, G.w_dim)
    cfg = EngineConfig(preview_resolution=config.pop("preview_resolution", 16), **config)
    return Engine(G, bank, device="cpu", config=cfg, model_name="tiny random")


class _ToySynthesis(torch.nn.Module):
    def __init__(self, w_dim, resolution, ch):
        super().__init__()
        self.res = [4 * 2**i for i in range(int(np.log2(resolution)) - 1)]
        self.num_ws = 2 * len(self.res)
        self.const = torch.nn.Parameter(torch.randn(ch, 4, 4))
        self.affine = torch.nn.ModuleList(torch.nn.Linear(w_dim, ch) for _ in range(self.num_ws))
        self.conv = torch.nn.ModuleList(torch.nn.Conv2d(ch, ch, 3, padding=1) for _ in self.res)
        self.torgb = torch.nn.ModuleList(torch.nn.Conv2d(ch, 3, 1) for _ in self.res)

    def compute_styles(self, ws):
        return [a(ws[:, i]) for i, a in enumerate(self.affine)]

    def forward(self, ws, noise_mode="const", stop_resolution=None, styles=None):
        styles = styles if styles is not None else self.compute_styles(ws)
        x = self.const[None].expand(ws.shape[0], -1, -1, -1)
        img = None
        for i, r in enumerate(self.res):
            if i:
                x = torch.nn.functional.interpolate(x, scale_factor=2)
                img = torch.nn.functional.interpolate(img, scale_factor=2)
            x = torch.tanh(self.conv[i](x * (1 + styles[2 * i][:, :, None, None])))
            y = self.torgb[i](x * styles[2 * i + 1][:, :, None, None])
            img = y if img is None else img + y
            if stop_resolution == r:
                break
        return img


class ToyGenerator(torch.nn.Module):
    def __init__(self, z_dim, c_dim, w_dim, img_resolution, img_channels, mapping_kwargs=None, synthesis_kwargs=None):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.img_resolution = z_dim, c_dim, w_dim, img_resolution
        self.synthesis = _ToySynthesis(w_dim, img_resolution, 16)
        self.num_ws = self.synthesis.num_ws
        self.map_net = torch.nn.Linear(z_dim, w_dim)
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def mapping(self, z, c, truncation_psi=1, truncation_cutoff=None):
        w = self.map_net(z)
        w = self.w_avg + truncation_psi * (w - self.w_avg)
        return w[:, None].repeat(1, self.num_ws, 1)
