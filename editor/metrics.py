"""Generator quality metrics: Fréchet distance (FD / FID), KID and perceptual path length (PPL).

Feature spaces sit behind one small interface (`FeatureExtractor`: float images [N, 3, H, W] in [-1, 1] ->
features [N, D]):
- `AttributeEmbedding`: the toon attribute model's embedding (editor.attributes), offline; the project's default
  for the demo world ("FD-attr").
- `InceptionFeatures`: torchvision's InceptionV3 pool features (2048-d) from a local weights file, for FID on real
  faces when the weights are on the user's machine (never downloaded here). Torchvision's ImageNet InceptionV3 is
  not the TensorFlow graph used for published FIDs, so its numbers are comparable only with each other.
- `PixelFeatures`: area-downsampled pixels: a crude colour/layout statistic, the last-resort fallback.

Perceptual distances for PPL (`PerceptualDistance`: two image batches -> [N] distances):
- `STLPIPSDistance`: the shift-tolerant LPIPS of `stlpips-pytorch` (VGG trunk by default), whose wheel ships all its
  weights (see ../shared/NOTES.md); used when that package is installed.
- `PixelDistance`: fallback when it is not: mean squared difference of the images in [-1, 1] (an L2 in pixel space;
  it ranks generators by how fast images change along W but is not perceptual, so its PPL numbers are not comparable
  with LPIPS-based ones).

Formulas (from the papers): FD = |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2));
KID = unbiased MMD^2 with the kernel k(x, y) = (x.y / D + 1)^3, averaged over random subsets;
PPL (StyleGAN, W, end-point sampling) = E[d(G(w0), G(lerp(w0, w1, eps))) / eps^2] with eps = 1e-4, averaged after
dropping values outside the 1st-99th percentiles.

These functions are self-contained (other metrics may live in this module beside them); none prints.
"""

from __future__ import annotations

import sys
import types
import warnings
from pathlib import Path
from typing import Callable, Iterable, Protocol

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "AttributeEmbedding",
    "FeatureExtractor",
    "InceptionFeatures",
    "PerceptualDistance",
    "PixelDistance",
    "PixelFeatures",
    "STLPIPSDistance",
    "default_feature_extractor",
    "default_perceptual_distance",
    "feature_statistics",
    "frechet_distance",
    "frechet_distance_from_features",
    "generate_images",
    "generator_features",
    "image_features",
    "kernel_inception_distance",
    "perceptual_path_length",
]


# ----------------------------------------------------------------------------------------------------------------
# Feature extractors


class FeatureExtractor(Protocol):
    """images float [N, 3, H, W] in [-1, 1] (any size) -> features float [N, dim]."""

    name: str
    dim: int

    def __call__(self, images: torch.Tensor) -> torch.Tensor: ...


def _check_images(images: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a float tensor [N, 3, H, W] in [-1, 1], got {shape}")


class PixelFeatures:
    """Area-downsampled pixels ([N, 3 * size * size]): the fallback feature space."""

    def __init__(self, size: int = 8):
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self.size = size
        self.name = f"pix{size}"
        self.dim = 3 * size * size

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        _check_images(images)
        x = F.adaptive_avg_pool2d(images.float(), self.size)  # [N, 3, s, s]
        return x.flatten(1)


class AttributeEmbedding:
    """The toon attribute model's embedding (penultimate features): the demo world's feature space ("attr")."""

    def __init__(self, model=None, path=None, device: str | torch.device = "cpu", batch_size: int = 256):
        if model is None:
            from editor.attributes import load_attribute_model

            model = load_attribute_model(path, device=device)
        self.model = model.eval()
        self.batch_size = batch_size
        self.name = "attr"
        self.dim = int(model.config.embed_dim)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        _check_images(images)
        return self.model.predict(images.float(), batch_size=self.batch_size).embedding.float()


def _inception_weights_file(path: str | Path | None) -> Path | None:
    if path is not None:
        return Path(path)
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    found = sorted(hub.glob("inception_v3_google-*.pth")) if hub.is_dir() else []
    return found[0] if found else None


class InceptionFeatures:
    """torchvision InceptionV3 pool features [N, 2048] from a local state-dict file (default: torchvision's
    `inception_v3_google-*.pth` in the torch hub cache). Raises FileNotFoundError when no weights are present."""

    def __init__(self, weights: str | Path | None = None, device: str | torch.device = "cpu", batch_size: int = 64):
        from torchvision.models import inception_v3

        path = _inception_weights_file(weights)
        if path is None or not path.is_file():
            raise FileNotFoundError(
                "InceptionV3 weights not found: put torchvision's inception_v3_google-0cc3c7bd.pth in "
                f"{Path(torch.hub.get_dir()) / 'checkpoints'} or pass its path (they are not downloaded)")
        # transform_input=True as torchvision uses for these weights (they expect [-1, 1]-scaled channels inside)
        net = inception_v3(weights=None, aux_logits=True, init_weights=False, transform_input=True)
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
        net.fc = torch.nn.Identity()
        self.net = net.eval().to(device)
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.name = "inception"
        self.dim = 2048

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        _check_images(images)
        mean = torch.tensor([0.485, 0.456, 0.406], device=self.device).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225], device=self.device).view(1, 3, 1, 1)
        out = []
        for i in range(0, images.shape[0], self.batch_size):
            x = images[i:i + self.batch_size].to(self.device, torch.float32)
            x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False, antialias=True)
            x = ((x + 1) / 2 - mean) / std
            out.append(self.net(x).float())
        return torch.cat(out)


def default_feature_extractor(device: str | torch.device = "cpu") -> FeatureExtractor:
    """The attribute model's embedding when its checkpoint is present, else `PixelFeatures(8)`."""
    try:
        return AttributeEmbedding(device=device)
    except (FileNotFoundError, ImportError, ValueError):
        return PixelFeatures(8)


# ----------------------------------------------------------------------------------------------------------------
# Fréchet distance and KID


def feature_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean [D] and covariance [D, D] (float64, unbiased) of features [N, D], N >= 2."""
    f = np.asarray(features.detach().cpu() if isinstance(features, torch.Tensor) else features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"features must be [N >= 2, D], got {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False).reshape(f.shape[1], f.shape[1])


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance between the Gaussians N(mu1, sigma1) and N(mu2, sigma2)."""
    import scipy.linalg

    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.shape[0],) * 2:
        raise ValueError(f"shape mismatch: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs {sigma2.shape}")
    with warnings.catch_warnings():  # singular covariances (e.g. dead ReLU features) are handled below
        warnings.simplefilter("ignore")
        covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
        if not np.isfinite(covmean).all():  # regularise slightly (as is common practice)
            eps = np.eye(sigma1.shape[0]) * 1e-6
            covmean = scipy.linalg.sqrtm((sigma1 + eps) @ (sigma2 + eps))
    covmean = np.real(covmean)
    value = np.square(mu1 - mu2).sum() + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)
    return float(max(value, 0.0))


def frechet_distance_from_features(features1, features2) -> float:
    """FD between two feature sets [N1, D] and [N2, D]."""
    return frechet_distance(*feature_statistics(features1), *feature_statistics(features2))


def kernel_inception_distance(features1, features2, num_subsets: int = 100, max_subset_size: int = 1000,
                              seed: int = 0) -> float:
    """KID: the unbiased estimate of MMD^2 with the cubic polynomial kernel, averaged over random subsets.

    features: [N1, D] and [N2, D]; each subset draws m = min(N1, N2, max_subset_size) rows of each without
    replacement. The estimate is unbiased, so it can be slightly negative for equal distributions.
    """
    x_all = np.asarray(features1.detach().cpu() if isinstance(features1, torch.Tensor) else features1, np.float64)
    y_all = np.asarray(features2.detach().cpu() if isinstance(features2, torch.Tensor) else features2, np.float64)
    if x_all.ndim != 2 or y_all.ndim != 2 or x_all.shape[1] != y_all.shape[1]:
        raise ValueError(f"features must be [N1, D] and [N2, D], got {x_all.shape} and {y_all.shape}")
    d = x_all.shape[1]
    m = min(x_all.shape[0], y_all.shape[0], max_subset_size)
    if m < 2:
        raise ValueError("KID needs at least 2 samples in each set")
    rng = np.random.default_rng(seed)
    total = 0.0
    for _ in range(num_subsets):
        x = x_all[rng.choice(x_all.shape[0], m, replace=False)]
        y = y_all[rng.choice(y_all.shape[0], m, replace=False)]
        kxx = (x @ x.T / d + 1) ** 3
        kyy = (y @ y.T / d + 1) ** 3
        kxy = (x @ y.T / d + 1) ** 3
        within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        total += within - 2 * kxy.mean()
    return float(total / num_subsets)


# ----------------------------------------------------------------------------------------------------------------
# Generating and embedding


@torch.no_grad()
def generate_images(G, num: int, batch_size: int = 64, seed: int = 0, device: str | torch.device = "cpu",
                    truncation_psi: float = 1.0, noise_mode: str = "const") -> Iterable[torch.Tensor]:
    """Yield batches of generated images float [n, C, H, W] clamped to [-1, 1] for latents drawn from `seed`."""
    gen = torch.Generator().manual_seed(seed)
    done = 0
    while done < num:
        n = min(batch_size, num - done)
        z = torch.randn([n, G.z_dim], generator=gen).to(device)
        ws = G.mapping(z, None, truncation_psi=truncation_psi)
        yield G.synthesis(ws, noise_mode=noise_mode).float().clamp(-1, 1)
        done += n


def generator_features(G, extractor: FeatureExtractor, num: int, batch_size: int = 64, seed: int = 0,
                       device: str | torch.device = "cpu", truncation_psi: float = 1.0) -> torch.Tensor:
    """Features [num, D] of `num` generated images (ψ = truncation_psi, constant noise)."""
    feats = [extractor(img).cpu() for img in generate_images(G, num, batch_size, seed, device, truncation_psi)]
    return torch.cat(feats)


def image_features(images, extractor: FeatureExtractor, batch_size: int = 256) -> torch.Tensor:
    """Features [N, D] of images: uint8 [N, H, W, 3] (numpy or torch) or float [N, 3, H, W] in [-1, 1]."""
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    if images.dtype == torch.uint8:
        if images.ndim != 4 or images.shape[3] != 3:
            raise ValueError(f"uint8 images must be [N, H, W, 3], got {tuple(images.shape)}")
        images = images.permute(0, 3, 1, 2).float() / 127.5 - 1
    return torch.cat([extractor(images[i:i + batch_size]).cpu() for i in range(0, images.shape[0], batch_size)])


# ----------------------------------------------------------------------------------------------------------------
# Perceptual path length


class PerceptualDistance(Protocol):
    """(images0, images1) float [N, 3, H, W] in [-1, 1] -> distances [N]."""

    name: str

    def __call__(self, images0: torch.Tensor, images1: torch.Tensor) -> torch.Tensor: ...


class PixelDistance:
    """Mean squared pixel difference of images in [-1, 1]: the documented fallback when no LPIPS is installed."""

    name = "pixel-mse"

    def __call__(self, images0: torch.Tensor, images1: torch.Tensor) -> torch.Tensor:
        return (images0.float() - images1.float()).square().flatten(1).mean(1)


def _import_stlpips():
    """Import stlpips_pytorch, which imports `torchsummary` (and IPython) at import time without using them."""
    for name, attrs in (("torchsummary", {"summary": lambda *a, **k: None}), ("IPython", {"embed": lambda: None})):
        try:
            __import__(name)
        except ImportError:
            stub = types.ModuleType(name)
            stub.__dict__.update(attrs)
            sys.modules[name] = stub
    from stlpips_pytorch import stlpips

    return stlpips


class STLPIPSDistance:
    """Shift-tolerant LPIPS (stlpips-pytorch, weights inside its wheel). Raises ImportError when not installed."""

    def __init__(self, net: str = "vgg", device: str | torch.device = "cpu"):
        stlpips = _import_stlpips()
        self.model = stlpips.LPIPS(net=net, variant="shift_tolerant", verbose=False).eval().to(device)
        self.model.requires_grad_(False)
        self.name = f"stlpips-{net}"

    @torch.no_grad()
    def __call__(self, images0: torch.Tensor, images1: torch.Tensor) -> torch.Tensor:
        return self.model(images0.float(), images1.float()).reshape(-1)


def default_perceptual_distance(device: str | torch.device = "cpu") -> PerceptualDistance:
    """Shift-tolerant LPIPS (VGG) when stlpips-pytorch is installed, else `PixelDistance`."""
    try:
        return STLPIPSDistance("vgg", device=device)
    except ImportError:
        return PixelDistance()


@torch.no_grad()
def perceptual_path_length(G, distance: PerceptualDistance | None = None, num_samples: int = 10000,
                           epsilon: float = 1e-4, batch_size: int = 32, sampling: str = "end", crop: bool = False,
                           seed: int = 0, device: str | torch.device = "cpu",
                           progress: Callable[[int, int], None] | None = None) -> dict:
    """PPL in W: d(G(lerp(w0, w1, t)), G(lerp(w0, w1, t + eps))) / eps^2 averaged over `num_samples` pairs.

    sampling: 'end' (t = 0, the StyleGAN paper's end-point sampling) or 'full' (t ~ U(0, 1)). crop: keep the central
    face region (FFHQ-style crop: rows 3/8..7/8, columns 2/8..6/8), as done for FFHQ generators. Images larger than
    256 px are area-downsampled to 256 px. The same constant noise is used for both images of a pair.
    Returns {'ppl': mean within the 1st-99th percentiles, 'distance': name, 'num_samples', 'epsilon', 'values'}.
    """
    if sampling not in ("end", "full"):
        raise ValueError(f"sampling must be 'end' or 'full', got {sampling!r}")
    if num_samples < 1 or epsilon <= 0:
        raise ValueError("num_samples must be >= 1 and epsilon > 0")
    distance = distance if distance is not None else default_perceptual_distance(device)
    gen = torch.Generator().manual_seed(seed)
    values = []
    done = 0
    while done < num_samples:
        n = min(batch_size, num_samples - done)
        z = torch.randn([2 * n, G.z_dim], generator=gen).to(device)
        t = torch.rand([n], generator=gen).to(device) * (1.0 if sampling == "full" else 0.0)
        ws = G.mapping(z, None).float()  # [2n, num_ws, w_dim]
        w0, w1 = ws[:n], ws[n:]
        wt0 = torch.lerp(w0, w1, t.view(n, 1, 1))
        wt1 = torch.lerp(w0, w1, (t + epsilon).view(n, 1, 1))
        img = G.synthesis(torch.cat([wt0, wt1]), noise_mode="const").float()  # [2n, C, H, W]
        if crop:
            s = img.shape[2] // 8
            img = img[:, :, s * 3: s * 7, s * 2: s * 6]
        if img.shape[2] > 256:
            img = F.adaptive_avg_pool2d(img, 256)
        d = distance(img[:n], img[n:]).double().cpu() / (epsilon ** 2)
        values.append(d)
        done += n
        if progress is not None:
            progress(done, num_samples)
    v = torch.cat(values).numpy()
    lo, hi = np.percentile(v, 1, method="lower"), np.percentile(v, 99, method="higher")
    kept = v[(v >= lo) & (v <= hi)]
    return {"ppl": float(kept.mean()), "distance": distance.name, "num_samples": int(v.size),
            "epsilon": epsilon, "sampling": sampling, "values": v}
