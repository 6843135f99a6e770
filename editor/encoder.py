"""An encoder from an aligned face to the generator's W+ (the e4e idea, sized for a CPU).

    enc = load_encoder("checkpoints/demo/encoder.safetensors", G)   # refuses an encoder made for other weights
    ws = enc(images)        # images [N, 3, R, R] in [-1, 1] -> ws [N, num_ws, w_dim]

The network is a residual convolutional pyramid. Its deepest features (4x4) give one w for every layer. Its 4x4, 8x8
and 16x16 features give each layer group (coarse, middle, fine) a per-layer offset from that w. The output is
``w_avg + base + delta_i``, with ``delta_0 = 0``. Training (``editor.train.encoder``) keeps the offsets small, so
the encoded latent stays near W, where edits behave as on sampled faces (Tov et al. 2021, "Designing an Encoder for
StyleGAN Image Manipulation").

An encoder file is a safetensors state with a JSON config in its metadata: the constructor arguments, the
``model_id`` of the generator it was trained for, and training facts. ``load_encoder`` checks that id against the
generator it is given, so an encoder never silently drives another generator's weights.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["EncoderConfig", "Encoder", "EncoderError", "save_encoder", "load_encoder", "encoder_path_for"]

FORMAT_NAME = "stylegan2-editor-encoder"
ENCODER_FILE = "encoder.safetensors"


class EncoderError(ValueError):
    """An encoder file that cannot be used: corrupt, or made for another generator."""


@dataclass(frozen=True)
class EncoderConfig:
    """Constructor arguments of an ``Encoder``."""

    num_ws: int  # the generator's number of W+ rows
    w_dim: int  # the generator's w dimension
    resolution: int = 128  # input side: images are resized to it (a power of two, >= 32)
    channels: tuple[int, ...] = ()  # features after the stem (which halves) and each stage; () = default_channels
    group_dim: int = 512  # width of a layer group's summary vector
    reduce_dim: int = 64  # channels a group's 4x4 features are reduced to before the summary

    def __post_init__(self):
        if self.resolution < 32 or self.resolution & (self.resolution - 1):
            raise ValueError(f"resolution must be a power of two >= 32, got {self.resolution}")
        if not self.channels:
            object.__setattr__(self, "channels", default_channels(self.resolution))
        if self.resolution >> len(self.channels) != 4:
            raise ValueError(f"the stem and {len(self.channels) - 1} stages halve {self.resolution} px "
                             f"{len(self.channels)} times: they must reach 4 px")
        if not 1 <= self.num_ws <= 64 or not 1 <= self.w_dim <= 4096:
            raise ValueError(f"implausible generator shape: num_ws {self.num_ws}, w_dim {self.w_dim}")


def default_channels(resolution: int) -> tuple[int, ...]:
    """32 features after the stem, doubling per halving up to 256: (32, 64, 128, 256, 256) at 128 px."""
    halvings = int(math.log2(resolution // 4))
    return tuple(min(32 << i, 256) for i in range(halvings))


def layer_groups(num_ws: int) -> list[range]:
    """W+ rows in three groups (coarse, middle, fine), as the usual StyleGAN2 split: 4 / 4 / rest at 1024 px
    (18 rows), scaled to the number of rows."""
    coarse = max(1, round(num_ws * 4 / 18))
    middle = max(1, round(num_ws * 8 / 18)) - coarse
    return [range(0, coarse), range(coarse, coarse + middle), range(coarse + middle, num_ws)]


class _ResidualDown(nn.Module):
    """Two 3x3 convolutions (the first halves the side) plus a 1x1 shortcut; output scaled by 1/sqrt(2)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv0 = nn.Conv2d(c_in, c_out, 3, stride=2, padding=1)
        self.conv1 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(F.leaky_relu(self.conv0(x), 0.2))
        s = self.skip(F.avg_pool2d(x, 2))
        return F.leaky_relu(y + s, 0.2) * (1 / math.sqrt(2))


class Encoder(nn.Module):
    """Aligned face [N, 3, H, W] in [-1, 1] -> W+ [N, num_ws, w_dim] (see the module docstring)."""

    def __init__(self, config: EncoderConfig, w_avg: torch.Tensor | None = None):
        super().__init__()
        self.config = config
        c = config.channels
        self.stem = nn.Conv2d(3, c[0], 3, stride=2, padding=1)
        self.stages = nn.ModuleList(_ResidualDown(c[i], c[i + 1]) for i in range(len(c) - 1))
        self.groups = layer_groups(config.num_ws)
        # group g reads the features 4 << g px wide (coarse 4x4, middle 8x8, fine 16x16), pooled to 4x4 and reduced
        self.reducers = nn.ModuleList(nn.Conv2d(c[len(c) - 1 - g], config.reduce_dim, 1) for g in range(3))
        self.summaries = nn.ModuleList(nn.Linear(config.reduce_dim * 16, config.group_dim) for g in range(3))
        self.base = nn.Linear(config.group_dim, config.w_dim)
        self.deltas = nn.ModuleList(nn.Linear(config.group_dim, config.w_dim) for _ in range(config.num_ws))
        self.register_buffer("w_avg", torch.zeros(config.w_dim) if w_avg is None else w_avg.detach().float().clone())
        with torch.no_grad():  # start at the mean face: every head outputs ~0
            for head in [self.base, *self.deltas]:
                head.weight.mul_(0.1)
                head.bias.zero_()

    def forward(self, images: torch.Tensor, return_deltas: bool = False):
        x = images
        r = self.config.resolution
        if x.shape[-1] != r or x.shape[-2] != r:
            x = F.interpolate(x, size=(r, r), mode="area" if x.shape[-1] > r else "bilinear", align_corners=None
                              if x.shape[-1] > r else False)
        x = F.leaky_relu(self.stem(x), 0.2)
        feats = [x]  # one per entry of config.channels, each half the side of the previous
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        # feats[-1]: 4x4, feats[-2]: 8x8, feats[-3]: 16x16
        deltas, summaries = [], []
        for g, rows in enumerate(self.groups):
            f = feats[-1 - g]
            if f.shape[-1] != 4:
                f = F.adaptive_avg_pool2d(f, 4)
            f = F.leaky_relu(self.reducers[g](f), 0.2)  # [N, reduce_dim, 4, 4]
            summaries.append(F.leaky_relu(self.summaries[g](f.flatten(1)), 0.2))  # [N, group_dim]
            deltas.extend(self.deltas[i](summaries[g]) for i in rows)
        base = self.base(summaries[0])  # [N, w_dim]
        delta = torch.stack(deltas, dim=1)  # [N, num_ws, w_dim]
        delta = torch.cat([torch.zeros_like(delta[:, :1]), delta[:, 1:]], dim=1)  # row 0 is the base w alone
        ws = self.w_avg + base[:, None] + delta
        return (ws, delta) if return_deltas else ws


# ----------------------------------------------------------------------------------------------------------------
# Files


def encoder_path_for(model_source) -> Path | None:
    """Where a model's bundled encoder lives: ``<checkpoint dir>/encoder.safetensors`` (None if the source is not a
    native checkpoint directory or holds no encoder)."""
    try:
        path = Path(os.fspath(model_source)).expanduser()
    except TypeError:
        return None
    if model_source == "demo":
        from editor.checkpoints import DEMO_DIR

        path = DEMO_DIR
    candidate = path / ENCODER_FILE if path.is_dir() else None
    return candidate if candidate is not None and candidate.is_file() else None


def save_encoder(encoder: Encoder, path: str | os.PathLike, generator_id: str, facts: dict[str, Any] | None = None,
                 half: bool = False) -> Path:
    """Write ``encoder`` (float16 tensors if ``half``) with its config, the generator's ``model_id`` and ``facts``
    (JSON-able: training images, time, metrics). The file appears atomically."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"format": FORMAT_NAME, "config": asdict(encoder.config), "generator_model_id": generator_id,
            "facts": facts or {}}
    state = {k: (v.half() if half and v.is_floating_point() and k != "w_avg" else v).detach().cpu().contiguous()
             for k, v in encoder.state_dict().items()}
    from editor.checkpoints.native import atomic_target, publish

    tmp = atomic_target(path)
    try:
        save_file(state, str(tmp), metadata={"encoder": json.dumps(meta)})
        publish(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_encoder_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON metadata of an encoder file (config, generator_model_id, facts)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = json.loads((f.metadata() or {}).get("encoder", "null"))
    except (SafetensorError, OSError, json.JSONDecodeError) as exc:
        raise EncoderError(f"{path}: not a readable encoder file ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise EncoderError(f"{path}: not an encoder file (no {FORMAT_NAME!r} metadata)")
    return meta


def load_encoder(path: str | os.PathLike, G=None, device="cpu") -> Encoder:
    """Load an encoder in float32, in eval mode. With ``G``: refuse (EncoderError) unless it was trained for G's
    exact weights (same ``model_id``)."""
    from safetensors.torch import load_file

    meta = read_encoder_meta(path)
    if G is not None:
        from editor.checkpoints import model_id

        if meta.get("generator_model_id") != model_id(G):
            raise EncoderError(f"{path} was trained for generator {meta.get('generator_model_id')}, not for these "
                               f"weights ({model_id(G)}); train one with `python -m editor train-encoder`")
    cfg = meta["config"]
    try:
        config = EncoderConfig(**{**cfg, "channels": tuple(cfg["channels"])})
    except (TypeError, ValueError, KeyError) as exc:
        raise EncoderError(f"{path}: bad encoder config ({exc})") from None
    enc = Encoder(config)
    try:
        state = {k: v.float() for k, v in load_file(str(path)).items()}
        enc.load_state_dict(state, strict=True)
    except (RuntimeError, OSError) as exc:
        raise EncoderError(f"{path}: tensors do not match the encoder config ({exc})") from None
    enc.meta = meta
    return enc.eval().requires_grad_(False).to(device)
