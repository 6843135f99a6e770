"""Projection (GAN inversion): find the latent whose image reproduces an aligned photo.

    result = project(G, aligned_uint8, steps=100, space='w+', callback=report, device='cpu')
    result.ws            # [1, num_ws, w_dim]: edit it like a sampled latent
    result.image         # uint8 [H, W, 3]: G.synthesis(result.ws, noise_mode='const') (plus noise maps if optimised)
    result.psnr, result.losses, result.steps_run, result.seconds

Two schedules are built in (``ProjectionConfig`` fields say what each knob does):

``BASELINE``
    The public reference projector's schedule: 1000 Adam steps at lr 0.1 (5 % warm-up, cosine ramp-down over the last
    25 %) on one w broadcast to every layer, starting at the mean of 10,000 mapped samples, Gaussian latent noise of
    0.05 sigma fading out (quadratically) over the first 75 % of steps, per-layer noise maps optimised with a
    multi-scale autocorrelation penalty of weight 1e5, and a VGG perceptual distance at (at most) 256 px. The VGG is
    the shift-tolerant LPIPS VGG of ``stlpips-pytorch`` (the reference's own VGG16 weights cannot be downloaded here).
``DEFAULT``
    Built to reach the baseline's 1000-step quality in at most 100 steps (measurements in docs/photos.md): it starts
    from the best of 128 mapped samples (scored on 16 px previews from the skip architecture, about 1.5 steps' worth
    of compute at 1024 px), uses a pixel loss next to the perceptual one, no warm-up, less latent noise, and works "W, then
    W+": one w for the first 40 % of steps, then one w per layer (``space='w'`` keeps a single w throughout: easier
    to edit, less faithful). Noise maps are left at the generator's constants, so
    the editor (which renders with ``noise_mode='const'``) shows exactly the reconstruction.

Perceptual distances (``perceptual=``): ``'vgg'`` / ``'alex'`` (shift-tolerant LPIPS, weights in the
stlpips-pytorch wheel), ``'disc'`` (features of the generator's own discriminator, pass ``discriminator=``), or
``'none'`` (pixel loss only).

The generator is never modified: noise maps are optimised on a private copy of the synthesis network.
"""

from __future__ import annotations

import copy
import math
import os
import sys
import threading
import time
import types
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "BASELINE",
    "DEFAULT",
    "PRESETS",
    "Perceptual",
    "PhotoProjector",
    "ProjectionConfig",
    "ProjectionProgress",
    "ProjectionResult",
    "REFINE",
    "lpips_model",
    "project",
    "psnr",
    "w_statistics",
]

SPACES = ("w", "w+")
PERCEPTUALS = ("vgg", "alex", "disc", "none")


@dataclass(frozen=True)
class ProjectionConfig:
    """A projection schedule."""

    steps: int = 100  # optimisation steps
    space: str = "w"  # 'w': one w for every layer; 'w+': one w per layer (after w_fraction of the steps)
    w_fraction: float = 0.4  # share of steps optimised in W before the layers are freed ('w+' only)
    lr: float = 0.1  # Adam peak learning rate
    betas: tuple[float, float] = (0.9, 0.999)  # Adam betas
    lr_rampup: float = 0.05  # linear warm-up over this share of steps
    lr_rampdown: float = 0.25  # cosine ramp-down over the last share of steps
    w_avg_samples: int = 10_000  # mapped samples for the mean w and its spread sigma
    init_candidates: int = 0  # 0: start at the mean w; k > 0: start at the best of k mapped samples
    init_psi: float = 0.7  # candidates are truncated toward the mean by this psi
    init_resolution: int = 32  # candidates are compared on skip-architecture previews of this resolution
    latent_noise: float = 0.05  # initial Gaussian noise on the latent, in units of sigma
    latent_noise_ramp: float = 0.75  # the latent noise fades to zero (quadratically) over this share of steps
    optimize_noise: bool = False  # also optimise the per-layer noise maps (the editor renders constant noise)
    noise_reg: float = 1e5  # weight of the noise maps' autocorrelation penalty
    perceptual: str = "vgg"  # 'vgg', 'alex', 'disc' or 'none'
    perceptual_weight: float = 1.0  # weight of the perceptual distance
    perceptual_size: int = 256  # images larger than this are area-downsampled before the perceptual network
    pixel_weight: float = 0.0  # weight of the mean squared pixel error (images in [-1, 1])
    anchor_weight: float = 0.0  # pull toward the start: weight of the mean over rows of |ws - ws_start|^2 / sigma^2
    early_stop_patience: int = 0  # stop after this many steps without a relative improvement (0: never)
    early_stop_delta: float = 1e-3  # relative loss improvement that counts
    seed: int = 0  # latent noise and candidate sampling

    def __post_init__(self):
        if self.space not in SPACES:
            raise ValueError(f"space must be one of {SPACES}, got {self.space!r}")
        if self.perceptual not in PERCEPTUALS:
            raise ValueError(f"perceptual must be one of {PERCEPTUALS}, got {self.perceptual!r}")
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"steps must be a positive int, got {self.steps!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        for name in ("w_fraction", "lr_rampup", "lr_rampdown", "latent_noise_ramp"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {v!r}")
        if self.w_avg_samples < 2 or self.init_candidates < 0:
            raise ValueError("w_avg_samples must be >= 2 and init_candidates >= 0")
        if self.perceptual == "none" and self.pixel_weight <= 0:
            raise ValueError("with perceptual='none' the pixel_weight must be > 0 (nothing to optimise otherwise)")


BASELINE = ProjectionConfig(steps=1000, space="w", lr=0.1, lr_rampup=0.05, lr_rampdown=0.25, w_avg_samples=10_000,
                            init_candidates=0, latent_noise=0.05, latent_noise_ramp=0.75, optimize_noise=True,
                            noise_reg=1e5, perceptual="vgg", perceptual_size=256, pixel_weight=0.0)
DEFAULT = ProjectionConfig(steps=100, space="w+", w_fraction=0.4, lr=0.1, lr_rampup=0.0, lr_rampdown=0.3,
                           init_candidates=128, init_resolution=16, latent_noise=0.02, latent_noise_ramp=0.5,
                           optimize_noise=False, perceptual="vgg",
                           perceptual_size=256, pixel_weight=1.0, early_stop_patience=25)
# After an encoder (editor.encoder): a short W+ polish of its latent, no search, no latent noise.
# Chosen on toon photos with the demo model (docs/photos.md): 12 steps with the VGG distance at 64 px cost about
# 2.3 s on one thread (20 steps at 256 px: 10 s, same quality); at lr 0.1 the pixel scores were higher but
# finder-aligned photos got smeared, off-manifold faces, so lr is 0.03. The pull toward the encoder's latent
# (anchor 3) keeps the latent editable: on 40 photos, anchor 1 / 3 / 10 gave PSNR 17.6 / 17.8 / 17.7 dB, LPIPS-alex
# 0.47 / 0.49 / 0.55 and slider success 0.13 / 0.16 / 0.16 (the encoder alone: 17.3 dB, 0.64, 0.17).
REFINE = ProjectionConfig(steps=12, space="w+", w_fraction=0.0, lr=0.03, lr_rampup=0.0, lr_rampdown=0.3,
                          init_candidates=0, latent_noise=0.0, optimize_noise=False, perceptual="vgg",
                          perceptual_size=64, pixel_weight=1.0, anchor_weight=3.0, early_stop_patience=0)
PRESETS = {"default": DEFAULT, "baseline": BASELINE, "refine": REFINE}


@dataclass(frozen=True)
class ProjectionProgress:
    """What the callback receives after every step."""

    step: int  # steps done (1-based)
    total: int  # steps planned
    loss: float  # total loss of this step
    perceptual: float  # perceptual distance (0 if unused)
    pixel_mse: float  # mean squared pixel error, images in [-1, 1]
    lr: float  # learning rate used
    seconds: float  # since project() started (initialisation included)
    ws: torch.Tensor  # [1, num_ws, w_dim] current latent (detached copy, no latent noise)


@dataclass(frozen=True)
class ProjectionResult:
    """The outcome of ``project``."""

    ws: torch.Tensor  # [1, num_ws, w_dim] float32 on CPU: the projected latent (W: every row the same)
    image: np.ndarray  # uint8 [H, W, 3]: the reconstruction (with `noise` if noise maps were optimised)
    target: np.ndarray  # uint8 [H, W, 3]: what was projected (resized to the generator's resolution)
    psnr: float  # of image against target, dB
    losses: list[float]  # loss per step
    steps_run: int  # steps done (fewer than planned after early stopping or a stop request)
    seconds: float  # wall time, initialisation included
    space: str  # 'w' or 'w+'
    config: ProjectionConfig  # the schedule used
    noise: dict[str, torch.Tensor] | None = None  # optimised noise maps by layer name ('b8.conv0', ...), or None
    stopped: str = ""  # '' (ran all steps), 'early' (no progress) or 'callback' (stop requested)
    history: list[float] = field(default_factory=list)  # seconds at the end of each step

    @property
    def w(self) -> torch.Tensor:
        """[1, w_dim]: the first layer's w (the whole latent for space='w')."""
        return self.ws[:, 0]


# ----------------------------------------------------------------------------------------------------------------
# Perceptual distances


_LPIPS_CACHE: dict[str, torch.nn.Module] = {}


def _import_stlpips():
    """Import stlpips_pytorch, providing stand-ins for the IPython / torchsummary modules it imports but never uses."""
    stubs = {}
    for name, attrs in (("torchsummary", {"summary": None}), ("IPython", {"embed": None})):
        try:
            __import__(name)
        except ImportError:
            stubs[name] = types.ModuleType(name)
            for k, v in attrs.items():
                setattr(stubs[name], k, v)
    added = [k for k in stubs if k not in sys.modules]
    sys.modules.update({k: stubs[k] for k in added})
    try:
        from stlpips_pytorch import stlpips
    except ImportError as exc:
        raise ImportError("the perceptual loss needs stlpips-pytorch: `pip install --no-deps stlpips-pytorch==0.0.2` "
                          f"({exc})") from None
    finally:
        for k in added:
            sys.modules.pop(k, None)
    return stlpips


def lpips_model(net: str = "vgg", device="cpu") -> torch.nn.Module:
    """Shift-tolerant LPIPS (``'vgg'`` or ``'alex'``) with the weights bundled in stlpips-pytorch, loaded strictly,
    frozen, in eval mode. Cached per (net, device). Call it as ``model(a, b)`` on images in [-1, 1]."""
    key = f"{net}@{device}"
    if key in _LPIPS_CACHE:
        return _LPIPS_CACHE[key]
    if net not in ("vgg", "alex"):
        raise ValueError(f"net must be 'vgg' or 'alex', got {net!r}")
    stlpips = _import_stlpips()
    model = stlpips.LPIPS(pretrained=False, net=net, variant="shift_tolerant", verbose=False)
    path = os.path.join(os.path.dirname(stlpips.__file__), "weights", "vST0.0", f"{net}_shift_tolerant.pth")
    state = torch.load(path, map_location="cpu", weights_only=True)
    result = model.load_state_dict(state, strict=False)
    # 'lins.k.*' are aliases of 'link.*' (the same modules listed twice); anything else missing is an error
    missing = [k for k in result.missing_keys if not k.startswith("lins.")]
    if missing or result.unexpected_keys:
        raise RuntimeError(f"{path}: LPIPS weights do not match ({missing[:3]}, {result.unexpected_keys[:3]})")
    model.requires_grad_(False).eval().to(device)
    _LPIPS_CACHE[key] = model
    return model


def _normalise_channels(x: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    return x / (x.square().sum(dim=1, keepdim=True).sqrt() + eps)


class Perceptual(torch.nn.Module):
    """A perceptual distance with cached target features: ``set_target(img)`` then ``forward(img) -> [N]``.

    ``kind``: 'vgg' / 'alex' (shift-tolerant LPIPS) or 'disc' (the given discriminator's block outputs, each
    normalised over channels, squared differences averaged over positions and summed over blocks).
    Images are [N, 3, H, W] in [-1, 1]; larger than ``size`` they are area-downsampled first.
    """

    def __init__(self, kind: str, size: int = 256, discriminator: torch.nn.Module | None = None, device="cpu"):
        super().__init__()
        if kind not in ("vgg", "alex", "disc"):
            raise ValueError(f"kind must be 'vgg', 'alex' or 'disc', got {kind!r}")
        self.kind = kind
        self.size = int(size)
        if kind == "disc":
            if discriminator is None:
                raise ValueError("perceptual='disc' needs the generator's discriminator (discriminator=...)")
            self.net = discriminator
        else:
            self.net = lpips_model(kind, device)
        self._target: list[torch.Tensor] | None = None

    def _resize(self, img: torch.Tensor) -> torch.Tensor:
        if self.kind == "disc":
            return img
        if img.shape[-1] > self.size:
            img = F.interpolate(img, size=(self.size, self.size), mode="area")
        return img

    def features(self, img: torch.Tensor) -> list[torch.Tensor]:
        img = self._resize(img)
        if self.kind == "disc":
            feats, x, y = [], None, img
            for res in self.net.block_resolutions:
                x, y = getattr(self.net, f"b{res}")(x, y, force_fp32=True)
                feats.append(_normalise_channels(x.float()))
            return feats
        outs = self.net.net.forward(self.net.scaling_layer(img))
        return [_normalise_channels(o) for o in outs]

    def set_target(self, img: torch.Tensor) -> None:
        with torch.no_grad():
            self._target = [f.detach() for f in self.features(img)]

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        if self._target is None:
            raise RuntimeError("call set_target first")
        total = 0.0
        for k, (a, b) in enumerate(zip(self.features(img), self._target)):
            d = (a - b).square()  # [N, C, h, w]
            if self.kind == "disc":
                total = total + d.sum(dim=1).mean(dim=(1, 2))
            else:
                total = total + self.net.lins[k](d).mean(dim=(1, 2, 3))
        return total


# ----------------------------------------------------------------------------------------------------------------
# Helpers


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio (dB) between two uint8 images of the same shape."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else 10.0 * math.log10(255.0 ** 2 / mse)


def _to_uint8(img: torch.Tensor) -> np.ndarray:
    """[1, 3, H, W] in [-1, 1] -> uint8 [H, W, 3]."""
    return (img[0].detach().float() * 127.5 + 128).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def _prepare_target(image, resolution: int, device) -> torch.Tensor:
    """uint8 [H, W, 3] / float [3, H, W] or [1, 3, H, W] in [-1, 1] -> float [1, 3, R, R] in [-1, 1]."""
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"image must be uint8 [H, W, 3] (an aligned crop), got {image.dtype} {image.shape}")
        x = torch.from_numpy(np.array(image, copy=True)).permute(2, 0, 1)[None].float() / 127.5 - 1.0
    elif isinstance(image, torch.Tensor):
        x = image.detach().float()
        if x.ndim == 3:
            x = x[None]
        if x.ndim != 4 or x.shape[:2] != (1, 3):
            raise ValueError(f"image tensor must be [3, H, W] or [1, 3, H, W] in [-1, 1], got {tuple(image.shape)}")
    else:
        raise ValueError(f"image must be a uint8 numpy array or a float tensor, got {type(image).__name__}")
    if x.shape[2] != x.shape[3]:
        raise ValueError(f"image must be square (align it first), got {x.shape[3]}x{x.shape[2]}")
    if not torch.isfinite(x).all():
        raise ValueError("image contains NaN or infinite values")
    if x.shape[-1] != resolution:
        x = F.interpolate(x, size=(resolution, resolution), mode="bicubic", align_corners=False,
                          antialias=x.shape[-1] > resolution).clamp(-1, 1)
    return x.to(device)


@torch.no_grad()
def w_statistics(G, samples: int = 10_000, seed: int = 0, device="cpu") -> tuple[torch.Tensor, float]:
    """Mean w [1, w_dim] and its spread sigma = sqrt(mean squared distance to the mean) over mapped samples."""
    gen = torch.Generator().manual_seed(seed)
    ws = []
    for start in range(0, samples, 2048):
        z = torch.randn([min(2048, samples - start), G.z_dim], generator=gen).to(device)
        ws.append(G.mapping(z, None)[:, 0].float())  # [n, w_dim]
    w = torch.cat(ws)
    mean = w.mean(dim=0, keepdim=True)
    sigma = float(((w - mean).square().sum() / samples).sqrt())
    return mean, sigma


def _noise_layers(synthesis) -> dict[str, torch.nn.Module]:
    return {name: m for name, m in synthesis.named_modules() if getattr(m, "use_noise", False)
            and hasattr(m, "noise_const")}


def _noise_penalty(maps: list[torch.Tensor]) -> torch.Tensor:
    """Multi-scale autocorrelation of the noise maps (the reference regulariser): squared mean of each map times its
    one-pixel shifts, at every scale down to 8 px."""
    reg = 0.0
    for v in maps:
        v = v[None, None]  # [1, 1, H, W]
        while True:
            reg = reg + (v * torch.roll(v, 1, dims=3)).mean().square() + (v * torch.roll(v, 1, dims=2)).mean().square()
            if v.shape[2] <= 8:
                break
            v = F.avg_pool2d(v, 2)
    return reg


def _lr_at(t: float, cfg: ProjectionConfig) -> float:
    ramp = 1.0
    if cfg.lr_rampdown > 0:
        ramp = min(1.0, (1.0 - t) / cfg.lr_rampdown)
        ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    if cfg.lr_rampup > 0:
        ramp = ramp * min(1.0, t / cfg.lr_rampup)
    return cfg.lr * ramp


@torch.no_grad()
def _best_candidate(G, target: torch.Tensor, w_avg: torch.Tensor, cfg: ProjectionConfig, device) -> torch.Tensor:
    """The mapped sample [1, w_dim] whose low-resolution preview is closest (pixel MSE) to the target."""
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    res = min(cfg.init_resolution, G.img_resolution)
    res = max(r for r in G.synthesis.block_resolutions if r <= res)
    small = F.interpolate(target, size=(res, res), mode="area") if target.shape[-1] != res else target
    best, best_d = None, float("inf")
    for start in range(0, cfg.init_candidates, 64):
        n = min(64, cfg.init_candidates - start)
        z = torch.randn([n, G.z_dim], generator=gen).to(device)
        w = G.mapping(z, None)[:, :1].float()  # [n, 1, w_dim]
        w = w_avg[:, None] + (w - w_avg[:, None]) * cfg.init_psi
        img = G.synthesis(w.repeat(1, G.num_ws, 1), noise_mode="const", stop_resolution=res).float()
        if img.shape[-1] != res:
            img = F.interpolate(img, size=(res, res), mode="area")
        d = (img - small).square().mean(dim=(1, 2, 3))  # [n]
        i = int(d.argmin())
        if float(d[i]) < best_d:
            best, best_d = w[i], float(d[i])
    return best  # [1, w_dim]


# ----------------------------------------------------------------------------------------------------------------
# Projection


def project(G, image, steps: int | None = None, space: str | None = None, *, config: ProjectionConfig = DEFAULT,
            callback: Callable[[ProjectionProgress], bool | None] | None = None, device="cpu",
            discriminator: torch.nn.Module | None = None, w_stats: tuple[torch.Tensor, float] | None = None,
            init_ws: torch.Tensor | None = None) -> ProjectionResult:
    """Project an aligned face into the generator's latent space.

    ``image``: the aligned crop, uint8 ``[H, W, 3]`` (resized to the generator's resolution if needed) or a float
    tensor ``[1, 3, R, R]`` in [-1, 1]. ``steps`` / ``space`` override the config's. ``callback`` is called after
    every step with a ``ProjectionProgress``; returning True stops the run (the best latent so far is returned).
    ``discriminator``: needed for ``perceptual='disc'``. ``w_stats``: precomputed ``w_statistics(G)`` (reused across
    calls by the app and benchmarks). ``init_ws``: a starting latent ``[1, num_ws, w_dim]`` (e.g. an encoder's
    output): the run starts there, in W+ from the first step, with no candidate search. The generator itself is left
    unchanged.
    """
    t0 = time.perf_counter()
    cfg = config
    if steps is not None or space is not None:
        cfg = replace(cfg, steps=cfg.steps if steps is None else int(steps),
                      space=cfg.space if space is None else space)
    G = G.to(device)
    target = _prepare_target(image, G.img_resolution, device)  # [1, 3, R, R]
    gen = torch.Generator().manual_seed(cfg.seed)

    w_avg, w_std = w_stats if w_stats is not None else w_statistics(G, cfg.w_avg_samples, seed=cfg.seed + 7,
                                                                       device=device)
    w_avg = w_avg.to(device).float()
    if init_ws is not None:
        init_ws = torch.as_tensor(init_ws, dtype=torch.float32).to(device).reshape(1, G.num_ws, G.w_dim)
    elif cfg.init_candidates > 0:
        w_init = _best_candidate(G, target, w_avg, cfg, device)
    else:
        w_init = w_avg

    synthesis = G.synthesis
    noise_maps: dict[str, torch.Tensor] = {}
    if cfg.optimize_noise:
        synthesis = copy.deepcopy(G.synthesis)
        for name, layer in _noise_layers(synthesis).items():
            buf = torch.randn(layer.noise_const.shape, generator=gen).to(device)
            layer.noise_const = buf.requires_grad_(True)  # replaces the buffer of the private copy
            noise_maps[name] = layer.noise_const

    perceptual = None
    if cfg.perceptual != "none":
        perceptual = Perceptual(cfg.perceptual, cfg.perceptual_size, discriminator, device)
        perceptual.set_target(target)

    w_steps = cfg.steps if cfg.space == "w" else int(round(cfg.steps * cfg.w_fraction))
    if init_ws is not None:
        w_steps = 0
        latent = init_ws.detach().clone()  # [1, num_ws, w_dim]
    else:
        latent = w_init.detach().clone()[:, None]  # [1, 1, w_dim] (W) or [1, num_ws, w_dim] (W+)
    if w_steps == 0 and latent.shape[1] == 1:
        latent = latent.repeat(1, G.num_ws, 1)
    anchor = latent.detach().clone()  # the start, for anchor_weight
    latent.requires_grad_(True)
    params = [latent] + list(noise_maps.values())
    opt = torch.optim.Adam(params, lr=cfg.lr, betas=cfg.betas)

    losses, history = [], []
    best_loss, best_latent, since_best = float("inf"), latent.detach().clone(), 0
    stopped = ""
    step = 0
    for step in range(cfg.steps):
        if step == w_steps and latent.shape[1] == 1:  # free the layers: W -> W+
            latent = latent.detach().repeat(1, G.num_ws, 1).requires_grad_(True)
            params = [latent] + list(noise_maps.values())
            opt = torch.optim.Adam(params, lr=cfg.lr, betas=cfg.betas)
            best_latent = best_latent.repeat(1, G.num_ws, 1)
        t = step / cfg.steps
        lr = _lr_at(t, cfg)
        for group in opt.param_groups:
            group["lr"] = lr
        noise_scale = w_std * cfg.latent_noise * max(0.0, 1.0 - t / max(cfg.latent_noise_ramp, 1e-8)) ** 2
        noise = torch.randn(latent.shape, generator=gen).to(device) * noise_scale
        ws = (latent + noise).expand(1, G.num_ws, G.w_dim)
        synth = synthesis(ws, noise_mode="const").float()  # [1, 3, R, R]
        mse = (synth - target).square().mean()
        loss = cfg.pixel_weight * mse
        dist = torch.zeros([])
        if perceptual is not None:
            dist = perceptual(synth).sum()
            loss = loss + cfg.perceptual_weight * dist
        if noise_maps:
            loss = loss + cfg.noise_reg * _noise_penalty(list(noise_maps.values()))
        if cfg.anchor_weight > 0:
            loss = loss + cfg.anchor_weight * (latent - anchor).square().sum(dim=-1).mean() / w_std ** 2
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if noise_maps:
            with torch.no_grad():
                for v in noise_maps.values():
                    v -= v.mean()
                    v *= v.square().mean().rsqrt()
        value = float(loss.detach())
        losses.append(value)
        history.append(time.perf_counter() - t0)
        if value < best_loss * (1.0 - cfg.early_stop_delta):
            since_best = 0
        else:
            since_best += 1
        if value < best_loss:
            best_loss, best_latent = value, latent.detach().clone()
        if callback is not None:
            request = callback(ProjectionProgress(step=step + 1, total=cfg.steps, loss=value,
                                                  perceptual=float(dist.detach()), pixel_mse=float(mse.detach()),
                                                  lr=lr, seconds=history[-1],
                                                  ws=latent.detach().expand(1, G.num_ws, G.w_dim).cpu().clone()))
            if request:
                stopped = "callback"
                break
        if cfg.early_stop_patience and since_best >= cfg.early_stop_patience:
            stopped = "early"
            break
    # The last step's latent carries no latent noise at the end of the schedule; with early stopping / a stop request
    # the best-loss latent is the safer choice.
    final = latent.detach() if not stopped else best_latent
    ws = final.expand(1, G.num_ws, G.w_dim).contiguous()
    with torch.no_grad():
        img = synthesis(ws, noise_mode="const").float()
    out = _to_uint8(img)
    tgt = _to_uint8(target)
    noise_out = {k: v.detach().cpu().clone() for k, v in noise_maps.items()} or None
    return ProjectionResult(ws=ws.cpu().float(), image=out, target=tgt, psnr=psnr(out, tgt), losses=losses,
                            steps_run=len(losses), seconds=time.perf_counter() - t0, space=cfg.space, config=cfg,
                            noise=noise_out, stopped=stopped, history=history)


# ----------------------------------------------------------------------------------------------------------------
# The app's photo pipeline


class PhotoProjector:
    """Photo in, ``editor.service.Projection`` out: find the face, align it, encode it, refine it (the app's
    projector seam).

        projector = PhotoProjector(G, source="demo", device="cpu")
        result = projector(photo_uint8, progress=lambda fraction, message: ...)

    ``encoder``: an ``editor.encoder.Encoder`` for G, ``"auto"`` (the default: the model's bundled
    ``encoder.safetensors`` when it was trained for G's exact weights) or None. With an encoder the latent comes
    from one forward pass, then ``refine`` (default ``REFINE``: 12 W+ steps; None to skip) polishes it. Without one,
    ``config`` (default ``DEFAULT``: a 100-step projection) does all the work.
    ``landmarker``: a face finder, or None to pick one from the generator's model card (``align.landmarker_for``).
    Raises ``align.AlignError`` (a ValueError with a user-facing message) when the photo has no usable face.
    The mean w and its spread are computed once, by ``warm_up`` or on the first call.
    """

    def __init__(self, G, source=None, device="cpu", config: ProjectionConfig = DEFAULT, landmarker=None,
                 encoder="auto", refine: ProjectionConfig | None = REFINE):
        from editor import align

        self.G = G
        self.device = device
        self.config = config
        self.refine = refine
        self.source = source
        self.landmarker = landmarker if landmarker is not None else align.landmarker_for(source, G, device=device)
        self.landmarker_name = align.landmarker_name_for(source, G) if landmarker is None else None
        self.encoder = _bundled_encoder(G, source, device) if isinstance(encoder, str) and encoder == "auto" \
            else encoder
        self._w_stats = None
        self._warm_lock = threading.Lock()

    def warm_up(self) -> None:
        """Do the one-time work now (the mean w, the perceptual network, the face finder's reference statistics)
        instead of on the first photo; the app calls it in a background thread at start-up."""
        with self._warm_lock:
            if self._w_stats is None:
                self._w_stats = w_statistics(self.G, self.config.w_avg_samples, seed=self.config.seed + 7,
                                             device=self.device)
            for schedule in (self.refine if self.encoder is not None else self.config,):
                if schedule is not None and schedule.perceptual in ("vgg", "alex"):
                    lpips_model(schedule.perceptual, self.device)
            statistics = getattr(self.landmarker, "_portrait_statistics", None)
            if statistics is not None:
                statistics()

    def __call__(self, photo, progress: Callable[[float, str], None] | None = None):
        from editor import align
        from editor.service import Projection

        report = progress or (lambda fraction, message: None)
        report(0.0, "finding the face")
        image = align.load_image(photo)
        try:
            aligned = align.align_photo(image, self.landmarker, self.G.img_resolution)
        except align.NoFaceError as exc:
            if self.landmarker_name == "toon":
                raise align.NoFaceError(
                    f"{str(exc).rstrip('.')}. This model (the small bundled demo) only edits toon faces like the "
                    "ones it draws: a photo of a person needs an FFHQ model, e.g. `python app.py --model ffhq-1024` "
                    "where NVIDIA's weights can be downloaded or are cached (see README, Models).") from None
            raise
        note = f" ({'; '.join(aligned.notices)})" if aligned.notices else ""
        report(0.05, "aligned" + note)
        ws, recon = self.invert(aligned.image, report, note)

        def paste(edited: np.ndarray) -> np.ndarray:
            from PIL import Image

            reference = recon if recon.shape == edited.shape else np.asarray(
                Image.fromarray(recon).resize(edited.shape[1::-1], Image.Resampling.LANCZOS))
            return align.paste_back(image, aligned, edited, reference=reference)

        return Projection(aligned=aligned.image, ws=ws[0].numpy(), paste_back=paste)

    def invert(self, aligned_image: np.ndarray, progress: Callable[[float, str], None] | None = None,
               note: str = "") -> tuple[torch.Tensor, np.ndarray]:
        """An aligned crop (uint8 [S, S, 3]) -> (ws [1, num_ws, w_dim] float32 on CPU, the reconstruction uint8
        [R, R, 3]): encode and refine, or project when there is no encoder. Progress runs from 0.05 to 1."""
        report = progress or (lambda fraction, message: None)
        if self._w_stats is None:
            self.warm_up()
        target = _prepare_target(aligned_image, self.G.img_resolution, self.device)  # [1, 3, R, R]
        if self.encoder is not None:
            report(0.08, "encoding")
            with torch.no_grad():
                ws = self.encoder(target).float()  # [1, num_ws, w_dim]
            schedule, start, share = self.refine, 0.1, 0.9
        else:
            ws, schedule, start, share = None, self.config, 0.05, 0.95
        if schedule is not None and schedule.steps > 0:
            verb = "refining" if ws is not None else "projecting"

            def step(p: ProjectionProgress):
                report(start + share * p.step / p.total, f"{verb}: step {p.step}/{p.total}{note}")

            result = project(self.G, target, config=schedule, callback=step, device=self.device,
                             w_stats=self._w_stats, init_ws=ws)
            return result.ws.cpu().float(), result.image
        with torch.no_grad():
            recon = _to_uint8(self.G.synthesis(ws.to(self.device), noise_mode="const").float())
        return ws.cpu().float(), recon


def _bundled_encoder(G, source, device):
    """The encoder shipped with a native checkpoint, if it was trained for exactly these weights; else None."""
    from editor.encoder import EncoderError, encoder_path_for, load_encoder

    path = encoder_path_for(source) if source is not None else None
    if path is None:
        return None
    try:
        return load_encoder(path, G, device=device)
    except EncoderError as exc:
        import logging

        logging.getLogger(__name__).warning("not using %s: %s", path, exc)
        return None
