"""Adaptive discriminator augmentation (ADA): a differentiable augmentation pipeline and the p controller.

Every transform is applied to each image independently with probability `p`, to reals and fakes alike, and every
transform is differentiable with respect to the image (geometric ones are exact pixel permutations done with a
gather, colour ones a per-image 4x4 affine matrix in RGB), so the generator learns through them.

Transforms (strengths follow the ADA paper's defaults):
- x-flip; rotation by a multiple of 90 degrees; integer translation by up to 1/8 of the side (reflect padding);
- brightness (add N(0, 0.2)), contrast (scale by 2^N(0, 0.5)), luma flip (optional, off by default), hue rotation
  about the luma axis (uniform in [-pi, pi]), saturation (scale chroma by 2^N(0, 1)).

The controller implements the overfitting heuristic r_t = E[sign(D(real))]: every `interval` iterations, p moves by
sign(r_t - target) * (images in the interval) / (speed_kimg * 1000), clamped to [0, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["AugmentConfig", "AugmentPipe", "AdaController"]


@dataclass(frozen=True)
class AugmentConfig:
    """Which transforms the pipeline may apply (each with probability p) and how strongly."""

    xflip: bool = True
    rotate90: bool = True
    xint: bool = True
    xint_max: float = 0.125  # largest translation, as a fraction of the image side
    brightness: bool = True
    brightness_std: float = 0.2
    contrast: bool = True
    contrast_std: float = 0.5  # log2 of the contrast factor ~ N(0, std)
    lumaflip: bool = False
    hue: bool = True
    hue_max: float = 1.0  # rotation angle ~ U(-pi, pi) * hue_max
    saturation: bool = True
    saturation_std: float = 1.0  # log2 of the saturation factor ~ N(0, std)


def _reflect(c: torch.Tensor, size: int) -> torch.Tensor:
    """Integer coordinates reflected into [0, size-1] (mirror without repeating the edge)."""
    period = 2 * (size - 1)
    c = torch.remainder(c, period)
    return torch.where(c > size - 1, period - c, c)


class AugmentPipe(torch.nn.Module):
    """images [N, C, H, W] in about [-1, 1] -> augmented images, same shape; differentiable.

    `p` is a plain float attribute (kept on the host, so reading it never waits for the GPU); the trainer stores it
    in its training state. Randomness comes from the global torch RNG of the images' device (seed it for
    reproducible runs).
    """

    def __init__(self, config: AugmentConfig = AugmentConfig(), p: float = 0.0):
        super().__init__()
        self.config = config
        self.p = float(p)
        luma = torch.tensor([1.0, 1.0, 1.0, 0.0]) / math.sqrt(3)
        self.register_buffer("luma_axis", luma)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4:
            raise ValueError(f"images must be [N, C, H, W], got {tuple(images.shape)}")
        p = self.p
        if p <= 0:
            return images  # identity; skipping the work is the common case early in training
        return self.apply(images, p)

    def apply(self, images: torch.Tensor, p: float) -> torch.Tensor:
        """Run every enabled transform with probability p (p = 0 runs the full path and returns the input)."""
        images = self._geometric(images, p)
        if images.shape[1] == 3:
            images = self._colour(images, p)
        return images

    # -- geometric: an integer pixel permutation per image, applied with one gather
    def _geometric(self, images: torch.Tensor, p: float) -> torch.Tensor:
        cfg = self.config
        n, c, h, w = images.shape
        dev = images.device
        if not (cfg.xflip or cfg.rotate90 or cfg.xint):
            return images
        if h != w and cfg.rotate90:
            raise ValueError(f"90-degree rotations need square images, got {h}x{w}")

        def gate(values: torch.Tensor, identity) -> torch.Tensor:
            keep = torch.rand(values.shape, device=dev) < p
            return torch.where(keep, values, torch.full_like(values, identity))

        flip = gate(torch.randint(0, 2, [n], device=dev), 0) if cfg.xflip else torch.zeros(n, dtype=torch.long, device=dev)
        rot = gate(torch.randint(0, 4, [n], device=dev), 0) if cfg.rotate90 else torch.zeros_like(flip)
        if cfg.xint:
            t = (torch.rand([n, 2], device=dev) * 2 - 1) * cfg.xint_max
            t = gate(t, 0.0)
            tx = torch.round(t[:, 0] * w).long()
            ty = torch.round(t[:, 1] * h).long()
        else:
            tx = ty = torch.zeros_like(flip)
        ys = torch.arange(h, device=dev).view(1, h, 1)
        xs = torch.arange(w, device=dev).view(1, 1, w)
        # undo the translation (output = translate(rotate(flip(image))))
        v = _reflect(ys - ty.view(n, 1, 1), h).expand(n, h, w)  # [N, H, W] row in the rotated image
        u = _reflect(xs - tx.view(n, 1, 1), w).expand(n, h, w)
        # undo torch.rot90(k) on dims (H, W): k=1: out[i, j] = in[j, W-1-i]; k=2: in[H-1-i, W-1-j]; k=3: in[H-1-j, i]
        k = rot.view(n, 1, 1)
        sy = torch.where(k == 1, u, torch.where(k == 2, h - 1 - v, torch.where(k == 3, h - 1 - u, v)))
        sx = torch.where(k == 1, w - 1 - v, torch.where(k == 2, w - 1 - u, torch.where(k == 3, v, u)))
        # undo the flip
        sx = torch.where(flip.view(n, 1, 1) == 1, w - 1 - sx, sx)
        index = (sy * w + sx).reshape(n, 1, h * w).expand(n, c, h * w)  # [N, C, H*W]
        out = images.reshape(n, c, h * w).gather(2, index)
        return out.reshape(n, c, h, w)

    # -- colour: a 4x4 affine matrix per image in homogeneous RGB
    def _colour(self, images: torch.Tensor, p: float) -> torch.Tensor:
        cfg = self.config
        n = images.shape[0]
        dev = images.device
        eye = torch.eye(4, device=dev).expand(n, 4, 4)
        m = eye.clone()  # [N, 4, 4]
        v = self.luma_axis.to(dev)
        vv = torch.outer(v, v)  # [4, 4] projection on the luma axis

        def gate(values: torch.Tensor, identity: float) -> torch.Tensor:
            keep = torch.rand(values.shape, device=dev) < p
            return torch.where(keep, values, torch.full_like(values, identity))

        if cfg.brightness:
            b = gate(torch.randn([n], device=dev) * cfg.brightness_std, 0.0)
            t = eye.clone()
            t[:, :3, 3] = b.view(n, 1)
            m = t @ m
        if cfg.contrast:
            s = gate(torch.exp2(torch.randn([n], device=dev) * cfg.contrast_std), 1.0)
            t = eye.clone()
            t[:, :3, :3] *= s.view(n, 1, 1)
            m = t @ m
        if cfg.lumaflip:
            f = gate(torch.randint(0, 2, [n], device=dev).float(), 0.0)
            m = (eye - 2 * vv * f.view(n, 1, 1)) @ m
        if cfg.hue:
            theta = gate((torch.rand([n], device=dev) * 2 - 1) * math.pi * cfg.hue_max, 0.0)
            m = _rotation_about((1.0, 1.0, 1.0), theta) @ m
        if cfg.saturation:
            s = gate(torch.exp2(torch.randn([n], device=dev) * cfg.saturation_std), 1.0)
            m = (vv + (eye - vv) * s.view(n, 1, 1)) @ m
        nc, h, w = images.shape[1:]
        m = m.to(images.dtype)
        flat = images.reshape(n, nc, h * w)  # [N, 3, HW]
        out = m[:, :3, :3] @ flat + m[:, :3, 3:]
        return out.reshape(n, nc, h, w)


def _rotation_about(axis: tuple[float, float, float], theta: torch.Tensor) -> torch.Tensor:
    """Homogeneous 4x4 rotations [N, 4, 4] by angles theta [N] about a 3-vector axis (Rodrigues)."""
    n = theta.shape[0]
    norm = math.sqrt(sum(c * c for c in axis))
    x, y, z = (c / norm for c in axis)
    k = torch.tensor([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]], device=theta.device)  # cross-product matrix
    kk = k @ k
    sin, cos = theta.sin().view(n, 1, 1), theta.cos().view(n, 1, 1)
    r = torch.eye(3, device=theta.device) + sin * k + (1 - cos) * kk  # [N, 3, 3]
    out = torch.eye(4, device=theta.device).repeat(n, 1, 1)
    out[:, :3, :3] = r
    return out


class AdaController:
    """Adjusts the augmentation probability from the discriminator's outputs on reals (the r_t heuristic).

    Call `accumulate(real_logits)` every iteration and `update(batch_images)` after each iteration; every
    `interval` iterations p moves toward keeping r_t = E[sign(D(real))] at `target`.
    """

    def __init__(self, target: float = 0.6, interval: int = 4, speed_kimg: float = 500.0):
        if not 0 < target < 1:
            raise ValueError(f"ADA target must be in (0, 1), got {target}")
        if interval < 1 or speed_kimg <= 0:
            raise ValueError("ADA interval must be >= 1 and speed_kimg > 0")
        self.target = target
        self.interval = interval
        self.speed_kimg = speed_kimg
        self.sign_sum: torch.Tensor | float = 0.0  # sum of sign(D(real)) since the last update (kept on device)
        self.count = 0  # number of logits summed
        self.iterations = 0  # iterations since the last update
        self.images = 0  # images since the last update
        self.last_rt: float | None = None

    def accumulate(self, real_logits: torch.Tensor) -> None:
        s = real_logits.detach().float().sign()
        self.sign_sum = self.sign_sum + s.sum()  # no host sync until the next update
        self.count += s.numel()

    def update(self, pipe: AugmentPipe, batch_images: int) -> bool:
        """Count one iteration of `batch_images` images; adjust pipe.p every `interval` iterations. True if adjusted."""
        self.iterations += 1
        self.images += batch_images
        if self.iterations < self.interval or self.count == 0:
            return False
        rt = float(self.sign_sum) / self.count
        step = math.copysign(self.images / (self.speed_kimg * 1000), rt - self.target) if rt != self.target else 0.0
        pipe.p = min(max(pipe.p + step, 0.0), 1.0)
        self.last_rt = rt
        self.sign_sum, self.count, self.iterations, self.images = 0.0, 0, 0, 0
        return True

    def state_dict(self) -> dict:
        return dict(sign_sum=float(self.sign_sum), count=self.count, iterations=self.iterations, images=self.images,
                    last_rt=self.last_rt)

    def load_state_dict(self, state: dict) -> None:
        self.sign_sum = float(state["sign_sum"])
        self.count = int(state["count"])
        self.iterations = int(state["iterations"])
        self.images = int(state["images"])
        self.last_rt = None if state["last_rt"] is None else float(state["last_rt"])
