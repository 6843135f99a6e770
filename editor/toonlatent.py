"""T: the demo generator's latent z -> the toon world's parameters, so that every generated face has exact ground truth.

The demo generator is trained by distillation (``editor.train.distill``): it learns ``z -> render(T(z))``. T must
keep the world's statistics exactly (the generator should draw the same population as the renderer) but must not
make Z *be* the parameters: the studies compare Z with W, and a Z whose coordinates were the draws would be
disentangled for free. So z first goes through a fixed, seeded map M that sends the standard normal distribution
onto itself (its coordinates stay independent N(0, 1)):

    x = R1 z;  (a, b) = halves of x;  each pair of b is rotated by an angle  theta_k = c * <u_k, a>;  g = R2 [a; b']

(R1, R2 random rotations, u_k random unit vectors, c = ``strength``). A rotation of b that depends only on a keeps
N(0, I) invariant, so g ~ N(0, I) exactly for any c. Coordinate ``i`` of g feeds the story's draw ``DRAW_NAMES[i]``
(uniforms through the normal CDF, the normal draws directly), so T(z) has the distribution of ``sample_params``
over seeds, with the same correlations.

The default, c = 0 (``MIXING_STRENGTH``), is a fixed random rotation: every draw is a random direction of Z, not a
coordinate, and attributes that depend on several draws (bald, grey hair, the correlated pairs) are not half-spaces
of Z. c > 0 also bends single-draw boundaries, but then the mapping network cannot learn T precisely enough for the
generator to draw T(z) (docs/training.md: an 8-layer mapping regressing the draws from z plateaus at R^2 0.86 for
c = 0.5 and 0.66 for c = 1, so 12-20 % of faces would get attributes other than their truth).

API: ``LatentWorld(z_dim, seed=0)``; ``world.params(z)`` -> list of ``ToonParams``; ``world.attributes(z)`` -> list
of attribute dicts (the truth labels); ``world.render(z, size)`` -> uint8 [N, size, size, 3];
``world.aligned_photos(z, size)``: the same faces as aligned photos; ``LatentWorld.for_model(dir)``: the T a
checkpoint was distilled from.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy.special import ndtr

from editor.toonfaces import DRAW_NAMES, ToonParams, attributes_of, draw_params, render

__all__ = ["LatentWorld", "MIXING_STRENGTH"]

MIXING_STRENGTH = 0.0  # c above, radians per unit of the angle's normal projection (0: a plain rotation)
_SLOT = {name: i for i, name in enumerate(DRAW_NAMES)}
_JITTER_SLOTS = 3  # the background jitter uses three coordinates


def _random_rotation(rng: np.random.Generator, d: int) -> np.ndarray:
    """A Haar-random orthogonal matrix (QR of a Gaussian matrix with the sign fix)."""
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


class _LatentDraws:
    """The story's draws read from fixed coordinates of one mixed latent g (float64 [slots])."""

    def __init__(self, g: np.ndarray):
        self.g = g
        self.u = ndtr(g)

    def uniform(self, name: str) -> float:
        return float(self.u[_SLOT[name]])

    def integers(self, name: str, n: int) -> int:
        return min(int(self.u[_SLOT[name]] * n), n - 1)

    def normal(self, name: str, sd: float) -> float:
        return float(sd * self.g[_SLOT[name]])

    def choice(self, name: str, cdf: np.ndarray) -> int:
        return min(int(np.searchsorted(cdf, self.u[_SLOT[name]], side="right")), len(cdf) - 1)

    def jitter(self, name: str, half_width: float) -> tuple[float, float, float]:
        i = _SLOT[name]
        first = self.u[i]
        rest = self.u[len(DRAW_NAMES):len(DRAW_NAMES) + _JITTER_SLOTS - 1]
        return tuple(float(-half_width + 2 * half_width * v) for v in (first, *rest))


class LatentWorld:
    """The fixed map T from a generator's z (dimension ``z_dim``) to toon parameters; ``seed`` fixes the mixing."""

    slots = len(DRAW_NAMES) + _JITTER_SLOTS - 1

    def __init__(self, z_dim: int, seed: int = 0, strength: float = MIXING_STRENGTH):
        if z_dim < 2 * self.slots or z_dim % 2:
            raise ValueError(f"z_dim must be even and >= {2 * self.slots} to drive the toon world, got {z_dim}")
        rng = np.random.default_rng([0x7007, seed])
        self.z_dim, self.seed, self.strength = z_dim, seed, float(strength)
        half = z_dim // 2
        self.r1 = _random_rotation(rng, z_dim)
        self.r2 = _random_rotation(rng, z_dim)
        u = rng.standard_normal((half // 2, half))
        self.angle_dirs = u / np.linalg.norm(u, axis=1, keepdims=True)  # [pairs, half] unit vectors

    @classmethod
    def for_model(cls, path) -> "LatentWorld | None":
        """The T a native checkpoint directory was distilled from (read from its config.json), or None when the
        checkpoint was not distilled from the toon world (or is not a native directory)."""
        config_file = Path(path) / "config.json"
        try:
            config = json.loads(config_file.read_text())
            training = config.get("training") or {}
            if training.get("route") != "distillation":
                return None
            return cls(int(config["init_kwargs"]["z_dim"]), int(training.get("world_seed", 0)),
                       float(training.get("mixing_strength", 0.0)))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def mix(self, z: np.ndarray) -> np.ndarray:
        """z [N, z_dim] -> g [N, z_dim], N(0, I) to N(0, I) (see the module docstring)."""
        z = np.asarray(z, np.float64)
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must be [N, {self.z_dim}], got {z.shape}")
        x = z @ self.r1.T
        half = self.z_dim // 2
        a, b = x[:, :half], x[:, half:].reshape(len(x), -1, 2)
        theta = self.strength * (a @ self.angle_dirs.T)  # [N, pairs]
        c, s = np.cos(theta), np.sin(theta)
        b = np.stack([c * b[..., 0] - s * b[..., 1], s * b[..., 0] + c * b[..., 1]], axis=-1).reshape(len(x), -1)
        return np.concatenate([a, b], axis=1) @ self.r2.T

    def params(self, z) -> list[ToonParams]:
        """The toon parameters of each row of z (``seed`` of each is -1: they come from a latent)."""
        g = self.mix(_as_numpy(z))[:, :self.slots]
        return [draw_params(_LatentDraws(row)) for row in g]

    def attributes(self, z) -> list[dict]:
        """The ground-truth attribute dicts of T(z) (as ``toonfaces.attributes_of``)."""
        return [attributes_of(p) for p in self.params(z)]

    def render(self, z, size: int, supersample: int | None = None) -> np.ndarray:
        """Renders of T(z): uint8 [N, size, size, 3] (portrait framing)."""
        return np.stack([render(p, size, supersample=supersample).image for p in self.params(z)])

    def aligned_photos(self, z, size: int, photo_size: int = 256, jitter: float = 0.0,
                       rng: np.random.Generator | None = None) -> np.ndarray:
        """T(z) rendered as photos (a room, the head placed and turned; ``photo_size`` px) and aligned from the
        render's own landmarks as the app aligns a photo: uint8 [N, size, size, 3]. What a user uploads, with a
        known latent. ``jitter``: Gaussian noise on every landmark coordinate, in units of the eye distance (a face
        finder's error: the toon finder is off by 2-8 % of the crop side, about 0.1-0.35 eye distances)."""
        from editor.align import align_face

        rng = rng if rng is not None else np.random.default_rng(0)
        out = []
        for p in self.params(z):
            r = render(p, photo_size, "photo")
            lm = r.landmarks.astype(np.float64)
            if jitter > 0:
                lm = lm + rng.normal(0.0, jitter * float(np.linalg.norm(lm[1] - lm[0])), lm.shape)
            out.append(align_face(r.image, lm, size).image)
        return np.stack(out)


def _as_numpy(z) -> np.ndarray:
    if hasattr(z, "detach"):
        z = z.detach().cpu().numpy()
    return np.asarray(z, np.float64)

