"""Attribute + landmark network for the demo world (training and inference).

The analogue of the seed studies' ResNet-18 CelebA classifier, small enough to train on a CPU: a ResNet-style CNN
(one basic block per stage) reads a 64 px portrait and outputs, for every attribute in ``toonfaces.ATTRIBUTES``,
a probability (binary), a class distribution (categorical) or a value (continuous), plus the five landmarks, plus
an embedding (the penultimate features) that serves as a feature space for Fréchet distances.

Inference::

    model = load_attribute_model()                  # the bundled checkpoints/toon_attributes.safetensors
    pred = model.predict(images)                    # float [N,3,H,W] in [-1,1], or uint8 [N,H,W,3] / [N,3,H,W]
    pred.scores['smiling']      # [N] probability
    pred.scores['hair_color']   # [N, 5] class probabilities
    pred.scores['age']          # [N] value in the attribute's units
    pred.landmarks              # [N, 5, 2] (x, y) in the input's pixel coordinates (toonfaces conventions)
    pred.embedding              # [N, embed_dim]

Any input size works: images are resized (antialiased bilinear) to the network's input size.

Training (``train_attribute_model``) draws renders from ``toonfaces`` for a seed range, is seeded and resumable
(batch order and augmentation depend only on (seed, step)), and reports through a callback; the CLI
``python -m editor train-attributes`` wraps it with a progress bar.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from editor import toonfaces
from editor.toonfaces import ATTRIBUTES, LANDMARK_NAMES

__all__ = [
    "AttributeNet",
    "AttributeNetConfig",
    "AttributePrediction",
    "DEFAULT_CHECKPOINT",
    "TrainConfig",
    "evaluate_attribute_model",
    "load_attribute_model",
    "save_attribute_model",
    "train_attribute_model",
]

DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "toon_attributes.safetensors"
HELD_OUT_SEED_START = 10_000_000  # held-out evaluation seeds start here; training seed ranges must stay below


@dataclass(frozen=True)
class AttributeNetConfig:
    """Shape of the network."""

    input_size: int = 64  # images are resized to this side
    widths: tuple[int, ...] = (16, 24, 48, 96, 128)  # stem, then one residual block per stage
    strides: tuple[int, ...] = (2, 2, 2, 2, 1)  # stride of the stem and of each block (product: input/final side)
    spatial_channels: int = 16  # channels of the flattened last feature map (keeps "where" for landmarks)
    embed_dim: int = 192  # penultimate feature size (the embedding)

    def __post_init__(self):
        if self.input_size < 16 or self.input_size % 16:
            raise ValueError(f"input_size must be a multiple of 16 and >= 16, got {self.input_size}")
        if len(self.widths) < 2 or any(w < 1 for w in self.widths):
            raise ValueError(f"widths must list >= 2 positive channel counts, got {self.widths}")
        if len(self.strides) != len(self.widths) or any(s not in (1, 2) for s in self.strides):
            raise ValueError(f"strides must give 1 or 2 for the stem and each block ({len(self.widths)} values), "
                             f"got {self.strides}")
        if self.input_size % math.prod(self.strides):
            raise ValueError(f"input_size {self.input_size} is not divisible by the total stride "
                             f"{math.prod(self.strides)}")


def _output_layout() -> list[tuple[str, str, int]]:
    """(name, kind, width) for every attribute, in ATTRIBUTES order, then the landmarks."""
    layout = []
    for spec in ATTRIBUTES:
        width = len(spec.classes) if spec.kind == "categorical" else 1
        layout.append((spec.name, spec.kind, width))
    layout.append(("landmarks", "landmarks", 2 * len(LANDMARK_NAMES)))
    return layout


class _Block(nn.Module):
    """ResNet basic block: two 3x3 convolutions with batch norm and a (projected) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (x if self.shortcut is None else self.shortcut(x)))


@dataclass
class AttributePrediction:
    """Outputs for a batch of N images."""

    scores: dict  # name -> [N] probability (binary) | [N, C] probabilities (categorical) | [N] value (continuous)
    landmarks: torch.Tensor  # [N, 5, 2] (x, y) in input pixel coordinates
    embedding: torch.Tensor  # [N, embed_dim]
    logits: dict = field(default_factory=dict)  # name -> raw logits (binary [N], categorical [N, C])

    def labels(self) -> dict:
        """Hard labels: binary 0/1 [N], categorical argmax [N], continuous values [N]."""
        out = {}
        for spec in ATTRIBUTES:
            s = self.scores[spec.name]
            if spec.kind == "binary":
                out[spec.name] = (s >= 0.5).long()
            elif spec.kind == "categorical":
                out[spec.name] = s.argmax(dim=1)
            else:
                out[spec.name] = s
        return out


class AttributeNet(nn.Module):
    """Compact ResNet-style attribute + landmark network. ``forward`` takes float [N, 3, S, S] in [-1, 1] at
    ``config.input_size`` and returns the raw output vector [N, n_out] and the embedding [N, embed_dim]."""

    def __init__(self, config: AttributeNetConfig = AttributeNetConfig()):
        super().__init__()
        self.config = config
        w, st = config.widths, config.strides
        self.stem = nn.Sequential(nn.Conv2d(3, w[0], 3, st[0], 1, bias=False), nn.BatchNorm2d(w[0]), nn.ReLU())
        self.blocks = nn.Sequential(*[_Block(w[i], w[i + 1], st[i + 1]) for i in range(len(w) - 1)])
        self.final_side = config.input_size // math.prod(st)  # 64 px -> 4
        self.reduce = nn.Sequential(nn.Conv2d(w[-1], config.spatial_channels, 1, bias=False),
                                    nn.BatchNorm2d(config.spatial_channels), nn.ReLU())
        flat = w[-1] + config.spatial_channels * self.final_side ** 2
        self.embed = nn.Sequential(nn.Linear(flat, config.embed_dim), nn.ReLU())
        self.layout = _output_layout()
        self.n_out = sum(width for _, _, width in self.layout)
        self.head = nn.Linear(config.embed_dim, self.n_out)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.config.input_size
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] != s or x.shape[3] != s:
            raise ValueError(f"AttributeNet.forward expects [N, 3, {s}, {s}] in [-1, 1], got {tuple(x.shape)}")
        f = self.blocks(self.stem(x))  # [N, C, final_side, final_side]
        pooled = f.mean(dim=(2, 3))  # [N, C]
        spatial = self.reduce(f).flatten(1)  # [N, spatial_channels * side^2]
        emb = self.embed(torch.cat([pooled, spatial], dim=1))  # [N, embed_dim]
        return self.head(emb), emb

    # -- decoding
    def split(self, out: torch.Tensor) -> dict:
        """Split the raw output [N, n_out] into named slices."""
        parts, i = {}, 0
        for name, _, width in self.layout:
            parts[name] = out[:, i:i + width]
            i += width
        return parts

    @torch.no_grad()
    def predict(self, images, batch_size: int = 256) -> AttributePrediction:
        """Scores, landmarks and embeddings for a batch of images (see the module docstring for formats)."""
        x, (h, w) = prepare_images(images, self.config.input_size)
        x = x.to(next(self.parameters()).device)
        was_training = self.training
        self.eval()
        outs, embs = [], []
        for i in range(0, x.shape[0], batch_size):
            o, e = self(x[i:i + batch_size])
            outs.append(o)
            embs.append(e)
        if was_training:
            self.train()
        parts = self.split(torch.cat(outs))
        scores, logits = {}, {}
        for spec in ATTRIBUTES:
            raw = parts[spec.name]
            if spec.kind == "binary":
                logits[spec.name] = raw[:, 0]
                scores[spec.name] = torch.sigmoid(raw[:, 0])
            elif spec.kind == "categorical":
                logits[spec.name] = raw
                scores[spec.name] = torch.softmax(raw, dim=1)
            else:
                scores[spec.name] = _from_unit(raw[:, 0], spec)
        lm = parts["landmarks"].reshape(-1, len(LANDMARK_NAMES), 2).clone()  # [N, 5, 2] in units of the side
        lm[..., 0] *= w
        lm[..., 1] *= h
        return AttributePrediction(scores=scores, landmarks=lm, embedding=torch.cat(embs), logits=logits)


def _to_unit(value: torch.Tensor, spec) -> torch.Tensor:
    """Continuous value -> [-1, 1]."""
    return (value - spec.low) / (spec.high - spec.low) * 2.0 - 1.0


def _from_unit(t: torch.Tensor, spec) -> torch.Tensor:
    return (t + 1.0) * 0.5 * (spec.high - spec.low) + spec.low


def prepare_images(images, size: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Convert images to float [N, 3, size, size] in [-1, 1]. Accepts a numpy array or tensor: uint8 [N, H, W, 3],
    [N, 3, H, W], [H, W, 3]; or float [N, 3, H, W] / [3, H, W] in [-1, 1]. Returns the tensor and the input (H, W)."""
    if isinstance(images, np.ndarray):
        arr = np.ascontiguousarray(images)
        x = torch.from_numpy(arr if arr.flags.writeable else arr.copy())
    elif isinstance(images, torch.Tensor):
        x = images.detach()
    else:
        raise ValueError(f"images must be a numpy array or torch tensor, got {type(images).__name__}")
    if x.ndim == 3:
        x = x.unsqueeze(0)
    if x.ndim != 4:
        raise ValueError(f"images must be [N, H, W, 3] or [N, 3, H, W], got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError("images is an empty batch")
    if x.dtype == torch.uint8:
        if x.shape[-1] == 3 and x.shape[1] != 3:
            x = x.permute(0, 3, 1, 2)
        elif x.shape[1] != 3:
            raise ValueError(f"uint8 images need 3 channels ([N, H, W, 3] or [N, 3, H, W]), got {tuple(x.shape)}")
        x = x.float() / 127.5 - 1.0
    elif x.is_floating_point():
        if x.shape[1] != 3:
            raise ValueError(f"float images must be [N, 3, H, W] in [-1, 1], got shape {tuple(x.shape)}")
        x = x.float().clamp(-1.0, 1.0)
    else:
        raise ValueError(f"images must be uint8 or floating point, got {x.dtype}")
    h, w = int(x.shape[2]), int(x.shape[3])
    if h < 8 or w < 8:
        raise ValueError(f"images are too small ({h}x{w}); need at least 8x8")
    if (h, w) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=(h > size or w > size))
    return x.contiguous(), (h, w)


# ----------------------------------------------------------------------------------------------------------------
# Targets and loss


def targets_from_attributes(attrs: Sequence[dict], landmarks: np.ndarray, size: int) -> dict:
    """Training targets from ground truth: binary float [N], categorical long [N], continuous in [-1, 1] [N],
    landmarks [N, 10] in units of the image side."""
    t = {}
    for spec in ATTRIBUTES:
        vals = torch.tensor([a[spec.name] for a in attrs])
        if spec.kind == "binary":
            t[spec.name] = vals.float()
        elif spec.kind == "categorical":
            t[spec.name] = vals.long()
        else:
            t[spec.name] = _to_unit(vals.float(), spec)
    t["landmarks"] = torch.from_numpy(np.asarray(landmarks, np.float32).reshape(len(attrs), -1) / size)
    return t


def attribute_loss(model: AttributeNet, out: torch.Tensor, targets: dict) -> tuple[torch.Tensor, dict]:
    """Total loss and its parts: mean BCE over binaries, mean CE over categoricals, mean MSE over continuous values
    (in [-1, 1] units), smooth-L1 on landmarks in pixels of a 64 px image.

    ``targets['valid']`` (optional, float [B]) marks real renders with 1; rows with 0 are non-faces: their binary
    targets become 0.5, their categorical targets uniform, and they take no part in the regression terms."""
    parts = model.split(out)
    valid = targets.get("valid")
    if valid is None:
        valid = torch.ones(out.shape[0], device=out.device)
    n_valid = valid.sum().clamp(min=1.0)
    bce, ce, mse = [], [], []
    for spec in ATTRIBUTES:
        raw, tgt = parts[spec.name], targets[spec.name]
        if spec.kind == "binary":
            soft = tgt * valid + 0.5 * (1.0 - valid)
            w = targets.get("weight_" + spec.name)
            bce.append(F.binary_cross_entropy_with_logits(raw[:, 0], soft, weight=w))
        elif spec.kind == "categorical":
            q = F.one_hot(tgt, raw.shape[1]).float() * valid[:, None] + (1.0 - valid[:, None]) / raw.shape[1]
            ce.append(-(q * F.log_softmax(raw, dim=1)).sum(1).mean())
        else:
            mse.append(((raw[:, 0] - tgt) ** 2 * valid).sum() / n_valid)
    lm_err = F.smooth_l1_loss(parts["landmarks"] * 64.0, targets["landmarks"] * 64.0, beta=0.5, reduction="none")
    lm = (lm_err.mean(1) * valid).sum() / n_valid
    terms = {"binary": torch.stack(bce).mean(), "categorical": torch.stack(ce).mean(),
             "continuous": torch.stack(mse).mean() * 4.0, "landmarks": lm * 0.5}
    return sum(terms.values()), {k: float(v.detach()) for k, v in terms.items()}


# ----------------------------------------------------------------------------------------------------------------
# Saving and loading


def save_attribute_model(model: AttributeNet, path, metadata: dict | None = None) -> None:
    """Write weights (float32 safetensors) with the config and the attribute layout in the header metadata."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"config": json.dumps(asdict(model.config)), "layout": json.dumps(model.layout),
            "format": "toon-attributes-v1"}
    if metadata:
        meta["info"] = json.dumps(metadata)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(path), metadata=meta)


def load_attribute_model(path=None, device="cpu") -> AttributeNet:
    """Load an attribute model (default: the bundled checkpoint). Strict: every name and shape must match, and the
    attribute layout must be the current ``toonfaces.ATTRIBUTES``. Returns the model in eval mode on ``device``."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(DEFAULT_CHECKPOINT if path is None else path)
    if not path.is_file():
        raise FileNotFoundError(f"attribute model not found at {path}; train one with "
                                f"`python -m editor train-attributes --out {path}`")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if meta.get("format") != "toon-attributes-v1":
        raise ValueError(f"{path} is not a toon attribute checkpoint (format {meta.get('format')!r})")
    cfg = json.loads(meta["config"])
    cfg["widths"] = tuple(cfg["widths"])
    cfg["strides"] = tuple(cfg.get("strides", ()))
    model = AttributeNet(AttributeNetConfig(**cfg))
    layout = [tuple(x) for x in json.loads(meta["layout"])]
    if layout != [tuple(x) for x in model.layout]:
        raise ValueError(f"{path} was trained for a different attribute layout than toonfaces.ATTRIBUTES; retrain it")
    state = load_file(str(path))
    model.load_state_dict(state, strict=True)
    model.info = json.loads(meta.get("info", "{}"))
    return model.to(device).eval()


# ----------------------------------------------------------------------------------------------------------------
# Training


@dataclass(frozen=True)
class TrainConfig:
    """Training run settings."""

    train_seeds: tuple[int, int] = (0, 32_000)  # [start, stop) seeds rendered for training
    steps: int = 6000  # optimizer steps
    batch_size: int = 96
    lr: float = 3e-3  # peak AdamW learning rate (one-cycle: warm-up then cosine to 1 %)
    weight_decay: float = 1e-4
    warmup: int = 200  # warm-up steps
    seed: int = 0  # model init, batch order and augmentation
    augment: bool = True  # photometric jitter, blur, noise (labels and landmarks unchanged)
    geometric: float = 0.5  # share of each batch zoomed/shifted/rotated (landmarks follow), so the landmark head
    #                         localises features in off-centre crops (the photo aligner searches with it)
    confound_weight: float = 4.0  # loss weight of samples whose `old` label disagrees with `grey_hair` (its strong
    #                               correlate), so the model learns the wrinkles rather than the hair colour
    outliers: float = 0.06  # share of each batch replaced by non-faces (noise, colour fields, shuffled tiles)
    #                         trained toward p = 0.5 / uniform classes, so the model is unsure off its world
    net: AttributeNetConfig = AttributeNetConfig()

    def __post_init__(self):
        a, b = self.train_seeds
        if not 0 <= a < b <= HELD_OUT_SEED_START:
            raise ValueError(f"train_seeds must satisfy 0 <= start < stop <= {HELD_OUT_SEED_START}, "
                             f"got {self.train_seeds}")
        if self.steps < 1 or self.batch_size < 2:
            raise ValueError(f"steps must be >= 1 and batch_size >= 2, got {self.steps}, {self.batch_size}")


class RenderedSet:
    """Renders of a seed range held in memory: images uint8 [N, S, S, 3], targets dict."""

    def __init__(self, images: np.ndarray, attrs: list[dict], landmarks: np.ndarray):
        self.images = images
        self.attrs = attrs
        self.landmarks = landmarks
        self.targets = targets_from_attributes(attrs, landmarks, images.shape[1])

    @classmethod
    def render(cls, seeds: Sequence[int], size: int, workers: int = 1, cache: Path | None = None,
               on_progress: Callable[[int, int], None] | None = None, chunk: int = 2000) -> "RenderedSet":
        """Render ``seeds`` at ``size`` in chunks, reporting progress. With ``cache`` (a folder) every chunk is
        kept as a .npz named by renderer version, size and seed range, so an interrupted run resumes its rendering."""
        seeds = [int(s) for s in seeds]
        images = np.empty((len(seeds), size, size, 3), np.uint8)
        lms = np.empty((len(seeds), len(LANDMARK_NAMES), 2), np.float32)
        attrs: list[dict] = []
        for i in range(0, len(seeds), chunk):
            part = seeds[i:i + chunk]
            path = None
            if cache is not None:
                path = Path(cache) / (f"toons_v{toonfaces.RENDER_VERSION}_{size}px_{part[0]}-{part[-1]}"
                                      f"_n{len(part)}.npz")
            if path is not None and path.is_file():
                with np.load(path, allow_pickle=False) as z:
                    im, lm, at = z["images"], z["landmarks"], json.loads(str(z["attrs"]))
                    ok = np.array_equal(z["seeds"], np.asarray(part))
            else:
                ok = False
            if not ok:
                im, at, lm = toonfaces.render_batch(part, size=size, workers=workers)
                if path is not None:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    tmp = path.with_name(path.stem + ".tmp.npz")
                    np.savez(tmp, seeds=np.asarray(part), images=im, landmarks=lm, attrs=json.dumps(at))
                    tmp.replace(path)
            images[i:i + len(part)] = im
            lms[i:i + len(part)] = lm
            attrs.extend(at)
            if on_progress:
                on_progress(i + len(part), len(seeds))
        return cls(images, attrs, lms)

    def batch(self, idx: np.ndarray) -> tuple[torch.Tensor, dict]:
        x = torch.from_numpy(self.images[idx]).permute(0, 3, 1, 2).float() / 127.5 - 1.0  # [B, 3, S, S]
        t = {k: v[idx] for k, v in self.targets.items()}
        return x, t


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Label-preserving photometric jitter: brightness/contrast/colour gain, occasional blur and noise."""
    n = x.shape[0]
    gain = 1.0 + 0.06 * (torch.rand(n, 3, 1, 1, generator=gen) - 0.5) * 2
    bias = 0.08 * (torch.rand(n, 1, 1, 1, generator=gen) - 0.5) * 2
    contrast = 1.0 + 0.15 * (torch.rand(n, 1, 1, 1, generator=gen) - 0.5) * 2
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * contrast + mean
    x = (x + 1.0) * gain - 1.0 + bias
    blur = torch.rand(n, generator=gen) < 0.25
    if blur.any():
        k = torch.tensor([0.25, 0.5, 0.25])
        k2 = (k[:, None] * k[None, :]).expand(3, 1, 3, 3).contiguous()
        xb = F.conv2d(F.pad(x[blur], (1, 1, 1, 1), mode="replicate"), k2, groups=3)
        x = x.clone()
        x[blur] = xb
    noise = torch.rand(n, 1, 1, 1, generator=gen) * 0.06
    x = x + noise * torch.randn(x.shape, generator=gen)
    return x.clamp(-1.0, 1.0)


def _augment_geometric(x: torch.Tensor, lm: torch.Tensor, share: float, gen: torch.Generator):
    """Zoom (0.8-1.25), shift (+-10 % of the side) and rotate (+-15 deg) a random ``share`` of the batch.
    x: [B, 3, S, S]; lm: [B, 10] landmarks in units of the side. Returns both transformed."""
    b = x.shape[0]
    pick = torch.rand(b, generator=gen) < share
    if not pick.any():
        return x, lm
    k = int(pick.sum())
    zoom = torch.exp((torch.rand(k, generator=gen) * 2 - 1) * math.log(1.25))  # output magnification
    ang = (torch.rand(k, generator=gen) * 2 - 1) * math.radians(15.0)
    shift = (torch.rand(k, 2, generator=gen) * 2 - 1) * 0.2  # normalised units ([-1, 1] spans the side)
    cos, sin = torch.cos(ang) / zoom, torch.sin(ang) / zoom
    a = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)  # [k, 2, 2] out -> in
    theta = torch.cat([a, shift[:, :, None]], 2)  # [k, 2, 3]
    grid = F.affine_grid(theta, (k, 3, x.shape[2], x.shape[3]), align_corners=False)
    x = x.clone()
    x[pick] = F.grid_sample(x[pick], grid, mode="bilinear", padding_mode="border", align_corners=False)
    # landmarks: in = A out + t  =>  out = A^-1 (in - t); normalised coordinates n = 2 l - 1 (pixel edges at +-1)
    pts = lm[pick].reshape(k, -1, 2) * 2 - 1  # [k, 5, 2]
    out = torch.linalg.solve(a[:, None], (pts - shift[:, None, :])[..., None])[..., 0]
    lm = lm.clone()
    lm[pick] = ((out + 1) * 0.5).reshape(k, -1)
    return x, lm


def _outliers(x: torch.Tensor, share: float, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace a random ``share`` of the batch [B, 3, S, S] by non-faces: uniform noise, smooth colour fields, or
    the batch's own images cut into 4x4 tiles and shuffled. Returns the images and valid [B] (0 = non-face)."""
    b, _, s, _ = x.shape
    pick = torch.rand(b, generator=gen) < share
    valid = (~pick).float()
    if not pick.any():
        return x, valid
    x = x.clone()
    for i in torch.nonzero(pick)[:, 0].tolist():
        kind = int(torch.randint(3, (1,), generator=gen))
        if kind == 0:
            x[i] = torch.rand(3, s, s, generator=gen) * 2 - 1
        elif kind == 1:
            g = int(torch.randint(2, 9, (1,), generator=gen))
            field = torch.rand(1, 3, g, g, generator=gen) * 2 - 1
            x[i] = F.interpolate(field, size=(s, s), mode="bicubic", align_corners=False)[0].clamp(-1, 1)
        else:
            t = s // 4
            tiles = x[i].reshape(3, 4, t, 4, t).permute(1, 3, 0, 2, 4).reshape(16, 3, t, t)
            tiles = tiles[torch.randperm(16, generator=gen)]
            x[i] = tiles.reshape(4, 4, 3, t, t).permute(2, 0, 3, 1, 4).reshape(3, s, s)
    return x, valid


def _lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * min(t, 1.0))))


def train_attribute_model(cfg: TrainConfig, data: RenderedSet, state_path=None, resume: bool = False,
                          device="cpu", on_step: Callable[[int, dict], None] | None = None,
                          checkpoint_every: int = 250, stop_after: int | None = None) -> tuple[AttributeNet, dict]:
    """Train (or resume) an attribute model on ``data``. The batch at step k and its augmentation depend only on
    (cfg.seed, k), so a resumed run sees exactly what an uninterrupted one would. ``state_path`` (optional) is
    where model + optimizer + step are saved every ``checkpoint_every`` steps and at the end; ``resume`` continues
    from it. ``stop_after``: stop early after this many steps in this call (for time-boxed sessions).
    Returns the model (eval mode) and a summary dict (steps, seconds, last losses)."""
    torch.manual_seed(cfg.seed)
    model = AttributeNet(cfg.net).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    step, elapsed = 0, 0.0
    if resume and state_path is not None and Path(state_path).is_file():
        state = torch.load(state_path, map_location=device, weights_only=True)
        if state["config"] != json.dumps(asdict(cfg), sort_keys=True):
            raise ValueError(f"{state_path} was written by a different training configuration; start afresh "
                             "or pass the same options")
        model.load_state_dict(state["model"], strict=True)
        opt.load_state_dict(state["optimizer"])
        step, elapsed = int(state["step"]), float(state["elapsed"])
    n = data.images.shape[0]
    if data.images.shape[1] != cfg.net.input_size:
        raise ValueError(f"data is {data.images.shape[1]} px but the network reads {cfg.net.input_size} px")
    model.train()
    losses: dict = {}
    t0 = time.time()
    done_here = 0

    def save_state():
        if state_path is None:
            return
        Path(state_path).parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(str(state_path) + ".tmp")
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
                    "elapsed": elapsed + time.time() - t0, "config": json.dumps(asdict(cfg), sort_keys=True)}, tmp)
        tmp.replace(state_path)

    while step < cfg.steps and (stop_after is None or done_here < stop_after):
        rng = np.random.default_rng([cfg.seed, step])
        idx = rng.integers(0, n, cfg.batch_size)
        x, t = data.batch(idx)
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        if cfg.geometric > 0:
            x, t["landmarks"] = _augment_geometric(x, t["landmarks"], cfg.geometric, gen)
        if cfg.augment:
            x = _augment(x, gen)
        if cfg.outliers > 0:
            x, t["valid"] = _outliers(x, cfg.outliers, gen)
        if cfg.confound_weight != 1.0:
            disagree = (t["old"] != t["grey_hair"]).float()
            t["weight_old"] = 1.0 + (cfg.confound_weight - 1.0) * disagree
        x = x.to(device)
        t = {k: v.to(device) for k, v in t.items()}
        for group in opt.param_groups:
            group["lr"] = _lr_at(step, cfg)
        out, _ = model(x)
        loss, losses = attribute_loss(model, out, t)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        done_here += 1
        losses["total"] = float(loss.detach())
        if on_step:
            on_step(step, losses)
        if step % checkpoint_every == 0:
            save_state()
    save_state()
    model.eval()
    return model, {"steps": step, "seconds": elapsed + time.time() - t0, "losses": losses}


# ----------------------------------------------------------------------------------------------------------------
# Evaluation


def expected_calibration_error(conf: np.ndarray, correct: np.ndarray, bins: int = 15) -> float:
    """ECE: sum over equal-width confidence bins of |accuracy - mean confidence| weighted by the bin's share."""
    conf = np.asarray(conf, np.float64)
    correct = np.asarray(correct, np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1]), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)


def evaluate_attribute_model(model: AttributeNet, data: RenderedSet) -> dict:
    """Held-out metrics per attribute: binary accuracy + ECE, categorical accuracy + ECE (of the top class),
    continuous MAE and correlation; landmark mean error per point in % of the image width."""
    pred = model.predict(data.images)
    res: dict = {}
    for spec in ATTRIBUTES:
        truth = np.array([a[spec.name] for a in data.attrs])
        s = pred.scores[spec.name].cpu().numpy()
        if spec.kind == "binary":
            hard = (s >= 0.5).astype(int)
            conf = np.where(hard == 1, s, 1 - s)
            res[spec.name] = {"kind": "binary", "accuracy": float((hard == truth).mean()),
                              "ece": expected_calibration_error(conf, hard == truth),
                              "positive_rate": float(truth.mean())}
        elif spec.kind == "categorical":
            hard = s.argmax(1)
            res[spec.name] = {"kind": "categorical", "accuracy": float((hard == truth).mean()),
                              "ece": expected_calibration_error(s.max(1), hard == truth)}
        else:
            mae = float(np.abs(s - truth).mean())
            corr = float(np.corrcoef(s, truth)[0, 1]) if truth.std() > 0 else float("nan")
            res[spec.name] = {"kind": "continuous", "mae": mae, "mae_of_range": mae / (spec.high - spec.low),
                              "corr": corr}
    side = data.images.shape[2]
    err = np.linalg.norm(pred.landmarks.cpu().numpy() - data.landmarks, axis=2) / side * 100.0  # [N, 5] % width
    res["landmarks"] = {"kind": "landmarks", "mean_error_pct": float(err.mean()),
                        "p95_error_pct": float(np.percentile(err, 95)),
                        "per_point_pct": {n: float(err[:, i].mean()) for i, n in enumerate(LANDMARK_NAMES)}}
    return res


def held_out_seeds(count: int = 2000) -> list[int]:
    """Seeds reserved for evaluation (never inside a valid training range)."""
    return list(range(HELD_OUT_SEED_START, HELD_OUT_SEED_START + count))


def robustness_report(model: AttributeNet, data: RenderedSet, seed: int = 0) -> dict:
    """How the model behaves off its training distribution.

    - ``degraded``: binary accuracy and landmark error on ``data`` after blur + noise, after a 2x down/up-scale, and
      at 128 px input (resized by ``predict``).
    - ``non_faces``: mean confidence |2p - 1| of the binary heads and mean top-class probability of the categorical
      heads on uniform noise and on smooth random colour fields (a calibrated model should not be sure there).
    """
    gen = torch.Generator().manual_seed(seed)
    x = torch.from_numpy(data.images).permute(0, 3, 1, 2).float() / 127.5 - 1.0  # [N, 3, S, S]
    side = x.shape[-1]
    k = torch.tensor([1.0, 2.0, 1.0])
    k2 = (k[:, None] * k[None, :] / 16.0).expand(3, 1, 3, 3).contiguous()
    blurred = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k2, groups=3)
    variants = {
        "blur_noise": (blurred + 0.05 * torch.randn(x.shape, generator=gen)).clamp(-1, 1),
        "down_up_2x": F.interpolate(F.interpolate(x, scale_factor=0.5, mode="bilinear", antialias=True),
                                    size=(side, side), mode="bilinear"),
    }
    truth = {s.name: np.array([a[s.name] for a in data.attrs]) for s in ATTRIBUTES if s.kind == "binary"}
    degraded = {}
    for name, xv in variants.items():
        pred = model.predict(xv)
        acc = {n: float(((pred.scores[n].cpu().numpy() >= 0.5) == t).mean()) for n, t in truth.items()}
        err = np.linalg.norm(pred.landmarks.cpu().numpy() - data.landmarks, axis=2).mean() / side * 100
        degraded[name] = {"binary_accuracy": acc, "landmark_error_pct": float(err)}
    big = F.interpolate(x, size=(2 * side, 2 * side), mode="bilinear")
    pred = model.predict(big)
    acc = {n: float(((pred.scores[n].cpu().numpy() >= 0.5) == t).mean()) for n, t in truth.items()}
    err = np.linalg.norm(pred.landmarks.cpu().numpy() / 2 - data.landmarks, axis=2).mean() / side * 100
    degraded["input_128px"] = {"binary_accuracy": acc, "landmark_error_pct": float(err)}
    n = 256
    fields = {
        "uniform_noise": torch.rand(n, 3, side, side, generator=gen) * 2 - 1,
        "smooth_colour_fields": F.interpolate(torch.rand(n, 3, 4, 4, generator=gen) * 2 - 1, size=(side, side),
                                              mode="bicubic").clamp(-1, 1),
    }
    non_faces = {}
    for name, xv in fields.items():
        pred = model.predict(xv)
        conf = {s.name: float((2 * pred.scores[s.name] - 1).abs().mean()) for s in ATTRIBUTES if s.kind == "binary"}
        top = {s.name: float(pred.scores[s.name].max(1).values.mean()) for s in ATTRIBUTES
               if s.kind == "categorical"}
        non_faces[name] = {"binary_confidence": conf, "categorical_top_prob": top}
    ref = model.predict(x)
    non_faces["held_out_renders"] = {
        "binary_confidence": {s.name: float((2 * ref.scores[s.name] - 1).abs().mean()) for s in ATTRIBUTES
                              if s.kind == "binary"},
        "categorical_top_prob": {s.name: float(ref.scores[s.name].max(1).values.mean()) for s in ATTRIBUTES
                                 if s.kind == "categorical"}}
    return {"degraded": degraded, "non_faces": non_faces}
