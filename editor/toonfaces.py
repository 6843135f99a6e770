"""The demo world: a procedural, deterministic renderer of "toon" faces with complete ground truth.

Every image comes with the value of every attribute that made it and with five landmarks, so the attribute model can
be trained on it, the demo generator can be trained on it, and every claim about latent directions can be checked
against the truth.

API (stable; other components build on it)
------------------------------------------
``sample_params(seed) -> ToonParams``
    All random choices of one face (a frozen dataclass), drawn from ``numpy.random.default_rng(seed)``.
``render(seed_or_params, size=64, framing='portrait', supersample=None) -> ToonRender``
    ``ToonRender.image``: uint8 ``[size, size, 3]`` RGB; ``.attributes``: dict name -> int/float/str (see
    ``ATTRIBUTES``); ``.landmarks``: float32 ``[5, 2]`` pixel coordinates ``(x, y)`` in the order of
    ``LANDMARK_NAMES``; ``.params``: the ``ToonParams`` drawn.
``render_batch(seeds, size=64, framing='portrait', workers=1) -> (images [N,H,W,3] uint8, list of attribute dicts,
    landmarks [N,5,2] float32)``; ``workers > 1`` renders in that many processes.
``ATTRIBUTES``: tuple of ``AttributeSpec(name, kind, classes, low, high, description)``, kind is ``'binary'``
    (value 0/1), ``'categorical'`` (value is an index into ``classes``; ``attributes[name + '_name']`` holds the
    class name) or ``'continuous'`` (float in ``[low, high]``).
``LANDMARK_NAMES``: ``('left_eye', 'right_eye', 'nose', 'mouth_left', 'mouth_right')``. "Left" means the image's
    left (smaller x), the order MTCNN uses. Eye landmarks are eye centres (what FFHQ alignment averages), not pupils.
``RENDER_VERSION``: bumped whenever a seed's pixels or parameters change (caches of renders key on it).

Conventions
-----------
- Pixel coordinates are continuous: the image spans ``[0, size]`` in x and y, pixel ``(i, j)`` covers
  ``[j, j+1] x [i, i+1]`` and its centre is ``(j + 0.5, i + 0.5)``. Scaling an image by ``k`` scales landmarks by ``k``.
- Framing ``'portrait'`` is the FFHQ alignment of the head (the crop rule of the FFHQ data set applied to the
  head's own eye and mouth landmarks) followed by the head's small roll. ``'photo'`` puts the head and shoulders
  at a random position, scale and rotation on a cluttered room of the same size.
- ``yaw > 0`` turns the face toward the image's right; ``light_x > 0`` lights it from the image's right.
- Determinism: the same seed gives the same parameters, pixels and attributes on any machine with the same NumPy
  (``default_rng`` streams are stable across NumPy releases in practice).

Drawing: every shape is a signed distance function in "head units" (1 = the portrait's width) evaluated only inside
its bounding box on a canvas ``supersample`` times larger than the output, turned into coverage with a one-pixel
ramp, alpha-blended, and box-filtered down at the end. The deliberate correlations and their strengths are listed in
``CORRELATIONS`` and measured in docs/demo_world.md.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable, Protocol, Sequence

import numpy as np

__all__ = [
    "ATTRIBUTES",
    "AttributeSpec",
    "CORRELATIONS",
    "DRAW_NAMES",
    "Draws",
    "LANDMARK_NAMES",
    "ToonParams",
    "ToonRender",
    "attribute_spec",
    "draw_params",
    "render",
    "render_batch",
    "sample_params",
]

# ----------------------------------------------------------------------------------------------------------------
# Attribute vocabulary

HAIR_COLORS = ("black", "brown", "blond", "red", "grey")
EYE_COLORS = ("brown", "blue", "green", "grey")
GLASSES_STYLES = ("none", "round", "rectangular")
GLASSES_COLORS = ("none", "black", "tortoise", "gold", "red", "blue")
BACKGROUNDS = ("blue", "teal", "green", "yellow", "pink", "lavender")
LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
FRAMINGS = ("portrait", "photo")
RENDER_VERSION = 4  # bump whenever pixels or parameters change for a given seed (caches key on it)


@dataclass(frozen=True)
class AttributeSpec:
    """One attribute of the demo world."""

    name: str  # key in ToonRender.attributes
    kind: str  # 'binary' (0/1), 'categorical' (index into classes) or 'continuous' (float in [low, high])
    classes: tuple[str, ...] = ()  # class names (binary: ('no', 'yes'))
    low: float = 0.0  # continuous range (for binary/categorical: 0 and len(classes) - 1)
    high: float = 1.0
    description: str = ""


_YN = ("no", "yes")
ATTRIBUTES: tuple[AttributeSpec, ...] = (
    # binary labels (each 20-80 % positive)
    AttributeSpec("smiling", "binary", _YN, 0, 1,
                  "mouth corners clearly up (smile >= 0.35); not smiling: smile <= 0.15"),
    AttributeSpec("mouth_open", "binary", _YN, 0, 1, "lips apart, teeth visible"),
    AttributeSpec("eyeglasses", "binary", _YN, 0, 1, "wears glasses"),
    AttributeSpec("bald", "binary", _YN, 0, 1, "no hair on the head (eyebrows/beard keep the hair colour)"),
    AttributeSpec("long_hair", "binary", _YN, 0, 1, "hair below the shoulders"),
    AttributeSpec("beard", "binary", _YN, 0, 1, "full beard and moustache"),
    AttributeSpec("lipstick", "binary", _YN, 0, 1, "coloured lips"),
    AttributeSpec("old", "binary", _YN, 0, 1, "age >= 0.55 (wrinkles); young: age <= 0.45"),
    AttributeSpec("grey_hair", "binary", _YN, 0, 1, "hair colour is grey/white (same as hair_color == 'grey')"),
    # categorical
    AttributeSpec("hair_color", "categorical", HAIR_COLORS, 0, len(HAIR_COLORS) - 1, "colour of hair, brows, beard"),
    AttributeSpec("eye_color", "categorical", EYE_COLORS, 0, len(EYE_COLORS) - 1, "iris colour (identity)"),
    AttributeSpec("glasses_style", "categorical", GLASSES_STYLES, 0, 2, "frame shape ('none' without glasses)"),
    AttributeSpec("glasses_color", "categorical", GLASSES_COLORS, 0, 5, "frame colour ('none' without glasses)"),
    AttributeSpec("background", "categorical", BACKGROUNDS, 0, len(BACKGROUNDS) - 1, "backdrop colour (nuisance)"),
    # continuous
    AttributeSpec("smile", "continuous", (), -0.4, 1.0, "mouth curvature: corners up > 0, down < 0"),
    AttributeSpec("mouth_openness", "continuous", (), 0.0, 1.0, "0 closed, up to 1 wide open"),
    AttributeSpec("age", "continuous", (), 0.0, 1.0, "0 young adult .. 1 elderly: wrinkles, grey hair more likely"),
    AttributeSpec("hair_length", "continuous", (), 0.0, 1.0, "0 bald, 0.15-0.35 short, 0.4-0.6 medium, 0.65-1 long"),
    AttributeSpec("skin_tone", "continuous", (), 0.0, 1.0, "0 light .. 1 dark"),
    AttributeSpec("face_width", "continuous", (), -1.0, 1.0, "narrow .. wide face (identity)"),
    AttributeSpec("jaw", "continuous", (), -1.0, 1.0, "round .. tapered jaw (identity)"),
    AttributeSpec("eye_size", "continuous", (), -1.0, 1.0, "small .. large eyes (identity)"),
    AttributeSpec("nose_size", "continuous", (), -1.0, 1.0, "small .. large nose (identity)"),
    AttributeSpec("yaw", "continuous", (), -1.0, 1.0, "head turn, +1 = 30 degrees toward the image's right"),
    AttributeSpec("roll", "continuous", (), -1.0, 1.0, "head tilt, +1 = 8 degrees clockwise in the image"),
    AttributeSpec("light_x", "continuous", (), -1.0, 1.0, "light from the image's left (-1) .. right (+1)"),
)
_SPEC_BY_NAME = {s.name: s for s in ATTRIBUTES}

# Deliberate correlations (the generative story below); docs/demo_world.md has the measured strengths.
CORRELATIONS: dict[str, str] = {
    "age -> grey_hair": "P(grey | age) = 0.02 + 0.9 * sigmoid((age - 0.62) / 0.07)",
    "age -> eyeglasses": "P(glasses | age) = 0.15 + 0.35 * age",
    "beard -> short hair": ("P(bald, short, medium, long | beard) = .35, .50, .12, .03; "
                            "without beard .17, .20, .25, .38"),
    "beard -> no lipstick": "P(lipstick | beard) = 0.02",
    "long hair -> lipstick": "P(lipstick | no beard, long) = 0.75; P(lipstick | no beard, not long) = 0.30",
    "smiling -> mouth_open": "P(open | smiling) = 0.55; P(open | not smiling) = 0.15",
}


def attribute_spec(name: str) -> AttributeSpec:
    """The spec of attribute ``name`` (ValueError for unknown names)."""
    if name not in _SPEC_BY_NAME:
        raise ValueError(f"unknown attribute {name!r}; known: {', '.join(_SPEC_BY_NAME)}")
    return _SPEC_BY_NAME[name]


# ----------------------------------------------------------------------------------------------------------------
# Parameters


@dataclass(frozen=True)
class ToonParams:
    """Everything random about one face and its two framings. Units: colours RGB in [0, 1]."""

    seed: int  # the seed it was drawn from (-1 when built by hand)
    # expression
    smiling: int  # 0/1 label
    smile: float  # curvature in [-0.4, 1]
    mouth_open: int  # 0/1 label
    mouth_openness: float  # 0 or in [0.35, 1]
    # age and hair
    age: float  # [0, 1]
    old: int  # age >= 0.55
    hair_color: int  # index into HAIR_COLORS
    hair_length: float  # 0 bald, else piecewise by class (see ATTRIBUTES)
    hair_style: int  # 0..2: fringe variant (nuisance)
    hair_part: float  # [-1, 1] parting side / asymmetry (nuisance)
    beard: int  # 0/1
    beard_length: float  # [0, 1] how far below the chin
    lipstick: int  # 0/1
    lipstick_shade: int  # 0..2 (red, pink, berry)
    # glasses
    eyeglasses: int  # 0/1
    glasses_style: int  # index into GLASSES_STYLES
    glasses_color: int  # index into GLASSES_COLORS
    # identity
    skin_tone: float  # [0, 1]
    face_width: float  # [-1, 1]
    jaw: float  # [-1, 1]
    eye_size: float  # [-1, 1]
    eye_color: int  # index into EYE_COLORS
    eye_spacing: float  # [-1, 1]
    nose_size: float  # [-1, 1]
    mouth_width: float  # [-1, 1]
    brow_tilt: float  # [-1, 1]
    # pose and scene
    yaw: float  # [-1, 1]
    roll: float  # [-1, 1]
    light_x: float  # [-1, 1]
    background: int  # index into BACKGROUNDS
    background_jitter: tuple[float, float, float]  # added to the backdrop colour
    shirt_rgb: tuple[float, float, float]  # clothes colour (nuisance)
    # photo framing
    photo_scale: float  # portrait width as a fraction of the photo width
    photo_x: float  # portrait centre, fraction of photo width
    photo_y: float  # portrait centre, fraction of photo height
    photo_angle: float  # degrees, counter-clockwise in the image
    scene_seed: int  # clutter of the room


def _cdf(probs) -> np.ndarray:
    cdf = np.asarray(probs, np.float64).cumsum()
    cdf /= cdf[-1]
    return cdf


def _choice(rng: np.random.Generator, cdf: np.ndarray) -> int:
    """The same draw as ``rng.choice(len(cdf), p=...)`` (one uniform, inverse CDF), without its overhead."""
    return int(np.searchsorted(cdf, rng.random(), side="right"))


_CDF_NATURAL_HAIR = _cdf((0.3, 0.35, 0.22, 0.13))
_CDF_LENGTH_BEARD = _cdf((0.35, 0.50, 0.12, 0.03))
_CDF_LENGTH_NO_BEARD = _cdf((0.17, 0.20, 0.25, 0.38))
_CDF_EYE = _cdf((0.4, 0.25, 0.2, 0.15))


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


class Draws(Protocol):
    """Where the generative story gets its randomness. Every draw has a name (its slot); a seed's stream ignores the
    names and draws in call order, a latent source (``editor.toonlatent``) maps each name to a fixed coordinate."""

    def uniform(self, name: str) -> float: ...  # U(0, 1)

    def integers(self, name: str, n: int) -> int: ...  # uniform on 0 .. n-1

    def normal(self, name: str, sd: float) -> float: ...  # N(0, sd^2)

    def choice(self, name: str, cdf: np.ndarray) -> int: ...  # index with the probabilities behind cdf

    def jitter(self, name: str, half_width: float) -> tuple[float, float, float]: ...  # 3 x U(-hw, hw)


class _SeedDraws:
    """The stream of ``numpy.random.default_rng(seed)``, in call order (the order defines the world: keep it)."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)

    def uniform(self, name: str) -> float:
        return self.rng.random()

    def integers(self, name: str, n: int) -> int:
        return int(self.rng.integers(n))

    def normal(self, name: str, sd: float) -> float:
        return self.rng.normal(0.0, sd)

    def choice(self, name: str, cdf: np.ndarray) -> int:
        return _choice(self.rng, cdf)

    def jitter(self, name: str, half_width: float) -> tuple[float, float, float]:
        return tuple(float(x) for x in self.rng.uniform(-half_width, half_width, 3))


def sample_params(seed: int) -> ToonParams:
    """Draw all parameters of face ``seed`` (a non-negative int) following the documented generative story."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    seed = int(seed)
    if seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed}")
    return draw_params(_SeedDraws(seed), seed)


# The names of the story's draws, in the order a seed's stream makes them (a latent source gives each a coordinate).
DRAW_NAMES: tuple[str, ...] = (
    "smiling", "smile", "mouth_open", "mouth_openness", "reserved", "old", "age", "grey", "natural_hair",
    "beard", "hair_length_class", "hair_length", "hair_style", "hair_part", "beard_length", "lipstick",
    "lipstick_shade", "eyeglasses", "glasses_style", "glasses_color", "skin_tone", "face_width", "jaw", "eye_size",
    "eye_color", "eye_spacing", "nose_size", "mouth_width", "brow_tilt", "yaw", "roll", "light_x", "background",
    "background_jitter", "shirt_hue", "shirt_saturation", "shirt_value", "photo_scale", "photo_x", "photo_y",
    "photo_angle", "scene_seed",
)


def draw_params(draws: Draws, seed: int = -1) -> ToonParams:
    """The generative story: every parameter of one face from ``draws`` (``seed`` is only recorded)."""
    u = draws.uniform

    smiling = int(u("smiling") < 0.5)
    s = u("smile")
    smile = 0.35 + 0.65 * s if smiling else -0.4 + 0.55 * s
    mouth_open = int(u("mouth_open") < (0.55 if smiling else 0.15))
    mouth_openness = 0.35 + 0.65 * u("mouth_openness") if mouth_open else 0.0
    u("reserved")

    old = int(u("old") < 0.4)
    a = u("age")
    age = 0.55 + 0.45 * a if old else 0.45 * a
    p_grey = 0.02 + 0.9 * _sigmoid((age - 0.62) / 0.07)
    grey = u("grey") < p_grey
    natural = draws.choice("natural_hair", _CDF_NATURAL_HAIR)
    hair_color = 4 if grey else natural

    beard = int(u("beard") < 0.35)
    length_class = draws.choice("hair_length_class", _CDF_LENGTH_BEARD if beard else _CDF_LENGTH_NO_BEARD)
    lo, hi = ((0.0, 0.0), (0.15, 0.35), (0.4, 0.6), (0.65, 1.0))[length_class]
    hair_length = lo + (hi - lo) * u("hair_length")
    hair_style = draws.integers("hair_style", 3)
    hair_part = -1.0 + 2.0 * u("hair_part")
    beard_length = u("beard_length")
    if beard:
        p_lip = 0.02
    else:
        p_lip = 0.75 if length_class == 3 else 0.30
    lipstick = int(u("lipstick") < p_lip)
    lipstick_shade = draws.integers("lipstick_shade", 3)

    eyeglasses = int(u("eyeglasses") < 0.15 + 0.35 * age)
    g_style = 1 + draws.integers("glasses_style", 2)
    g_color = 1 + draws.integers("glasses_color", 5)

    skin_tone = u("skin_tone")
    face_width = -1.0 + 2.0 * u("face_width")
    jaw = -1.0 + 2.0 * u("jaw")
    eye_size = -1.0 + 2.0 * u("eye_size")
    eye_color = draws.choice("eye_color", _CDF_EYE)
    eye_spacing = -1.0 + 2.0 * u("eye_spacing")
    nose_size = -1.0 + 2.0 * u("nose_size")
    mouth_width = -1.0 + 2.0 * u("mouth_width")
    brow_tilt = -1.0 + 2.0 * u("brow_tilt")

    yaw = float(np.clip(draws.normal("yaw", 0.45), -1.0, 1.0))
    roll = float(np.clip(draws.normal("roll", 0.4), -1.0, 1.0))
    light_x = -1.0 + 2.0 * u("light_x")
    background = draws.integers("background", len(BACKGROUNDS))
    jitter = draws.jitter("background_jitter", 0.04)
    shirt = _hsv_to_rgb(u("shirt_hue"), 0.25 + 0.45 * u("shirt_saturation"), 0.35 + 0.5 * u("shirt_value"))

    photo_scale = 0.3 + 0.4 * u("photo_scale")
    margin = 0.4 * photo_scale
    photo_x = margin + (1 - 2 * margin) * u("photo_x")
    photo_y = margin + (1 - 2 * margin) * u("photo_y")
    photo_angle = float(np.clip(draws.normal("photo_angle", 12.0), -30.0, 30.0))
    scene_seed = draws.integers("scene_seed", 2**31 - 1)

    return ToonParams(
        seed=seed, smiling=smiling, smile=float(smile), mouth_open=mouth_open, mouth_openness=float(mouth_openness),
        age=float(age), old=old, hair_color=hair_color, hair_length=float(hair_length), hair_style=hair_style,
        hair_part=float(hair_part), beard=beard, beard_length=float(beard_length), lipstick=lipstick,
        lipstick_shade=lipstick_shade, eyeglasses=eyeglasses, glasses_style=g_style if eyeglasses else 0,
        glasses_color=g_color if eyeglasses else 0, skin_tone=float(skin_tone), face_width=float(face_width),
        jaw=float(jaw), eye_size=float(eye_size), eye_color=eye_color, eye_spacing=float(eye_spacing),
        nose_size=float(nose_size), mouth_width=float(mouth_width), brow_tilt=float(brow_tilt), yaw=yaw, roll=roll,
        light_x=float(light_x), background=background, background_jitter=jitter, shirt_rgb=shirt,
        photo_scale=float(photo_scale), photo_x=float(photo_x), photo_y=float(photo_y), photo_angle=photo_angle,
        scene_seed=scene_seed,
    )


def _hsv_to_rgb(h: float, s: float, v: float) -> tuple[float, float, float]:
    i = int(h * 6.0) % 6
    f = h * 6.0 - int(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    return [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]


def attributes_of(params: ToonParams) -> dict:
    """The ground-truth attribute dict of ``params`` (keys: every ``ATTRIBUTES`` name, plus '<name>_name' for
    categoricals and 'seed')."""
    p = params
    out: dict = {"seed": p.seed}
    for spec in ATTRIBUTES:
        if spec.name == "bald":
            value = int(p.hair_length == 0.0)
        elif spec.name == "long_hair":
            value = int(p.hair_length >= 0.65)
        elif spec.name == "grey_hair":
            value = int(p.hair_color == 4)
        else:
            value = getattr(p, spec.name)
        if spec.kind == "continuous":
            value = round(float(value), 6)
        else:
            value = int(value)
        out[spec.name] = value
        if spec.kind == "categorical":
            out[spec.name + "_name"] = spec.classes[value]
    return out


# ----------------------------------------------------------------------------------------------------------------
# Signed distance functions. Arguments u, v are float32 arrays in head units; results approximate the distance
# (negative inside).


def _sd_circle(u, v, cx, cy, r):
    return np.sqrt((u - cx) ** 2 + (v - cy) ** 2) - r


def _sd_ellipse(u, v, cx, cy, rx, ry):
    # first-order distance f / |grad f| of f = rho - 1, good near the boundary (which is all coverage needs)
    dx = (u - cx) * (1.0 / rx)
    dy = (v - cy) * (1.0 / ry)
    rho = np.sqrt(dx * dx + dy * dy)
    grad = np.sqrt((dx * (1.0 / rx)) ** 2 + (dy * (1.0 / ry)) ** 2) + 1e-6
    return (rho - 1.0) * rho / grad


def _sd_box(u, v, cx, cy, hx, hy, r=0.0):
    qx = np.abs(u - cx) - (hx - r)
    qy = np.abs(v - cy) - (hy - r)
    outside = np.sqrt(np.maximum(qx, 0.0) ** 2 + np.maximum(qy, 0.0) ** 2)
    return outside + np.minimum(np.maximum(qx, qy), 0.0) - r


def _sd_segment(u, v, ax, ay, bx, by, r):
    px, py = u - ax, v - ay
    ex, ey = bx - ax, by - ay
    h = np.clip((px * ex + py * ey) / (ex * ex + ey * ey + 1e-12), 0.0, 1.0)
    return np.sqrt((px - ex * h) ** 2 + (py - ey * h) ** 2) - r


def _sd_curve(u, v, cx, cy, hw, bend, thick, taper=0.6, tilt=0.0):
    """Thick parabola arc y = cy + tilt*t*hw - bend*(1 - t^2)*hw, t = (x - cx)/hw in [-1, 1] (bend > 0 arches up).

    The half thickness tapers to (1 - taper) * thick / 2 at the ends."""
    t = np.clip((u - cx) * (1.0 / hw), -1.0, 1.0)
    y = cy + (tilt * t - bend * (1.0 - t * t)) * hw
    slope = tilt + 2.0 * bend * t
    dv = (v - y) / np.sqrt(1.0 + slope * slope)
    du = u - (cx + t * hw)
    half = 0.5 * thick * (1.0 - taper * t * t)
    return np.sqrt(dv * dv + du * du) - half


# ----------------------------------------------------------------------------------------------------------------
# Canvas


class _Canvas:
    """A float32 RGB canvas; shapes are given in some "units" mapped to canvas pixels by a 2x3 affine."""

    def __init__(self, side: int, rgb):
        self.side = side
        self.img = np.empty((side, side, 3), np.float32)  # [S, S, 3]
        self.img[:] = np.asarray(rgb, np.float32)
        self._ar = np.arange(side, dtype=np.float32) + 0.5

    def paint(self, xf: "_Affine", bbox, sdf: Callable, color, alpha=1.0, edge=1.0):
        """Blend ``color`` where ``sdf(u, v) < 0``. ``bbox`` = (u0, v0, u1, v1) in ``xf``'s units bounds the shape;
        ``color`` is an RGB triple or a function (u, v) -> [h, w, 3]; ``edge`` is the ramp width in canvas pixels."""
        x0, y0, x1, y1 = xf.pixel_box(bbox, self.side)
        if x1 <= x0 or y1 <= y0:
            return
        xs = self._ar[x0:x1][None, :]  # [1, w]
        ys = self._ar[y0:y1][:, None]  # [h, 1]
        a, b, c, d, e, f = xf.inv_coeffs
        u = a * xs + b * ys + c  # [h, w]
        v = d * xs + e * ys + f
        dist = sdf(u, v)
        cov = np.clip(0.5 - dist * (xf.px_per_unit / edge), 0.0, 1.0)
        if alpha != 1.0:
            cov *= alpha
        if not cov.any():
            return
        region = self.img[y0:y1, x0:x1]
        col = color(u, v) if callable(color) else np.asarray(color, np.float32)
        region += cov[..., None] * (col - region)

    def downsample(self, k: int) -> np.ndarray:
        s = self.side // k
        img = self.img.reshape(s, k, s, k, 3).mean(axis=(1, 3)) if k > 1 else self.img
        return np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)


class _Affine:
    """Map from shape units (u, v) to canvas pixels (x, y): [x, y] = A @ [u, v] + t."""

    def __init__(self, m: np.ndarray):
        self.m = np.asarray(m, np.float64)  # [2, 3]
        full = np.vstack([self.m, [0.0, 0.0, 1.0]])
        inv = np.linalg.inv(full)[:2]
        self.inv_coeffs = tuple(float(x) for x in inv.reshape(-1))
        self.px_per_unit = float(math.sqrt(abs(np.linalg.det(self.m[:, :2]))))
        self._rows = tuple(tuple(float(x) for x in row) for row in self.m)

    @staticmethod
    def similarity(scale: float, angle_deg: float, src_center, dst_center) -> "_Affine":
        """Rotate by ``angle_deg`` (counter-clockwise on screen) and scale about ``src_center``, moved to
        ``dst_center``."""
        t = math.radians(angle_deg)
        c, s = math.cos(t) * scale, math.sin(t) * scale
        a = np.array([[c, s], [-s, c]])  # y points down, so this turns counter-clockwise on screen
        off = np.asarray(dst_center, float) - a @ np.asarray(src_center, float)
        return _Affine(np.hstack([a, off[:, None]]))

    def then(self, other: "_Affine") -> "_Affine":
        """Apply self, then ``other``."""
        a = np.vstack([self.m, [0, 0, 1]])
        b = np.vstack([other.m, [0, 0, 1]])
        return _Affine((b @ a)[:2])

    def apply(self, pts: np.ndarray) -> np.ndarray:
        pts = np.asarray(pts, np.float64)
        return pts @ self.m[:, :2].T + self.m[:, 2]

    def pixel_box(self, bbox, side):
        """Canvas pixel range [x0, x1) x [y0, y1) covering the unit-space box (u0, v0, u1, v1), one pixel wider."""
        u0, v0, u1, v1 = (float(b) for b in bbox)
        (a, b, c), (d, e, f) = self._rows
        xs = (a * u0 + b * v0 + c, a * u1 + b * v0 + c, a * u0 + b * v1 + c, a * u1 + b * v1 + c)
        ys = (d * u0 + e * v0 + f, d * u1 + e * v0 + f, d * u0 + e * v1 + f, d * u1 + e * v1 + f)
        x0 = max(math.floor(min(xs)) - 1, 0)
        y0 = max(math.floor(min(ys)) - 1, 0)
        x1 = min(math.ceil(max(xs)) + 1, side)
        y1 = min(math.ceil(max(ys)) + 1, side)
        return x0, y0, x1, y1


# ----------------------------------------------------------------------------------------------------------------
# Palette

_SKIN = np.array([[1.00, 0.87, 0.77], [0.96, 0.77, 0.63], [0.80, 0.57, 0.40], [0.55, 0.36, 0.24], [0.36, 0.23, 0.15]],
                 np.float32)
_HAIR = np.array([[0.13, 0.11, 0.11], [0.42, 0.25, 0.13], [0.93, 0.78, 0.46], [0.74, 0.30, 0.12], [0.82, 0.82, 0.84]],
                 np.float32)
_EYE = np.array([[0.40, 0.23, 0.10], [0.22, 0.50, 0.85], [0.25, 0.62, 0.35], [0.52, 0.58, 0.64]], np.float32)
_FRAME = np.array([[0, 0, 0], [0.08, 0.08, 0.10], [0.48, 0.26, 0.10], [0.86, 0.68, 0.24], [0.82, 0.14, 0.20],
                   [0.15, 0.35, 0.82]], np.float32)
_BACK = np.array([[0.62, 0.76, 0.92], [0.56, 0.83, 0.79], [0.72, 0.86, 0.60], [0.98, 0.88, 0.60], [0.96, 0.74, 0.80],
                  [0.79, 0.73, 0.93]], np.float32)
_LIPSTICK = np.array([[0.82, 0.10, 0.20], [0.92, 0.36, 0.56], [0.58, 0.08, 0.28]], np.float32)


def _interp(table: np.ndarray, t: float) -> np.ndarray:
    x = float(np.clip(t, 0.0, 1.0)) * (len(table) - 1)
    i = min(int(x), len(table) - 2)
    return table[i] + (table[i + 1] - table[i]) * (x - i)


# ----------------------------------------------------------------------------------------------------------------
# The face model: geometry in head units (before framing)


@dataclass(frozen=True)
class _Geometry:
    hx: float  # head centre
    hy: float
    rx: float  # face half width / half height
    ry: float
    jaw: float  # 0..0.45 narrowing of the jaw
    yaw: float  # radians
    eye_l: tuple[float, float]  # iris centres (image-left eye first)
    eye_r: tuple[float, float]
    eye_w: float  # eye half width (before foreshortening)
    eye_h: float
    nose: tuple[float, float]
    nose_s: float
    mouth: tuple[float, float]  # mouth centre (line through the lip meeting point)
    mouth_w: float  # half width
    smile: float
    open: float


def _geometry(p: ToonParams) -> _Geometry:
    hx, hy = 0.5, 0.50
    rx = 0.245 + 0.03 * p.face_width
    ry = 0.345
    yaw = math.radians(30.0) * p.yaw
    eye_half_sep = 0.115 + 0.012 * p.eye_spacing
    eye_y = 0.455
    eye_w = 0.052 + 0.009 * p.eye_size
    # features sit on a cylinder of radius ~rx around the head's vertical axis
    def turn(x_off: float) -> float:
        phi = math.asin(max(-0.99, min(0.99, x_off / rx)))
        return hx + rx * math.sin(phi + yaw)

    eye_l = (turn(-eye_half_sep), eye_y)
    eye_r = (turn(eye_half_sep), eye_y)
    nose_s = 1.0 + 0.25 * p.nose_size
    nose = (hx + (rx + 0.06 * nose_s) * math.sin(yaw), 0.615)
    mouth_w = 0.07 + 0.01 * p.mouth_width + 0.012 * max(p.smile, 0.0)
    mouth = (hx + rx * 1.02 * math.sin(yaw), 0.742)
    return _Geometry(hx=hx, hy=hy, rx=rx, ry=ry, jaw=0.22 + 0.18 * p.jaw, yaw=yaw, eye_l=eye_l, eye_r=eye_r,
                     eye_w=eye_w, eye_h=eye_w * 0.78, nose=nose, nose_s=nose_s, mouth=mouth, mouth_w=mouth_w,
                     smile=p.smile, open=p.mouth_openness)


def _mouth_corners(g: _Geometry) -> tuple[tuple[float, float], tuple[float, float]]:
    mx, my = g.mouth
    cos_y = math.cos(g.yaw)
    lift = 0.08 * g.smile * g.mouth_w / 0.07
    # the near side of a turned face looks wider
    wl = g.mouth_w * cos_y * (1.0 - 0.25 * math.sin(g.yaw))
    wr = g.mouth_w * cos_y * (1.0 + 0.25 * math.sin(g.yaw))
    return (mx - wl, my - lift), (mx + wr, my - lift)


def _head_landmarks(g: _Geometry) -> np.ndarray:
    ml, mr = _mouth_corners(g)
    return np.array([g.eye_l, g.eye_r, g.nose, ml, mr], np.float64)  # [5, 2]


def _ffhq_quad(lm: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Centre, side and rotation (degrees) of the FFHQ crop for landmarks [5, 2] (eyes, nose, mouth corners)."""
    eye_avg = (lm[0] + lm[1]) * 0.5
    eye_to_eye = lm[1] - lm[0]
    mouth_avg = (lm[3] + lm[4]) * 0.5
    eye_to_mouth = mouth_avg - eye_avg
    x = eye_to_eye - np.array([-eye_to_mouth[1], eye_to_mouth[0]])
    x = x / np.hypot(*x) * max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    centre = eye_avg + eye_to_mouth * 0.1
    angle = math.degrees(math.atan2(-x[1], x[0]))  # counter-clockwise on screen
    return centre, 2.0 * float(np.hypot(*x)), angle


# ----------------------------------------------------------------------------------------------------------------
# Drawing


def _lerp(a, b, t):
    return a + (b - a) * t


class _Painter:
    """Draws one face with a given head transform (head units -> canvas pixels) and body transform."""

    def __init__(self, canvas: _Canvas, p: ToonParams, g: _Geometry, head: _Affine, body: _Affine):
        self.c, self.p, self.g, self.head, self.body = canvas, p, g, head, body
        self.skin = _interp(_SKIN, p.skin_tone)
        hair = _HAIR[p.hair_color].copy()
        self.hair = hair
        self.brow = hair * 0.72 if p.hair_color != 4 else np.array([0.70, 0.70, 0.73], np.float32)
        lx = p.light_x
        n = math.sqrt(lx * lx * 0.8 + 0.35 + 0.5)
        self.light = (0.9 * lx / n, -0.6 / n, 0.7 / n)  # toward the light; screen y points down

    # -- shading helpers
    def _shade(self, base, cx, cy, rx, ry, shadow=0.72, highlight=0.10, softness=0.35):
        lx, ly, lz = self.light
        base = np.asarray(base, np.float32)
        dark = base * np.array([shadow, shadow * 0.97, shadow * 1.02], np.float32)

        def color(u, v):
            nx = (u - cx) * (1.0 / rx)
            ny = (v - cy) * (1.0 / ry)
            nz = np.sqrt(np.maximum(1.0 - nx * nx - ny * ny, 0.0))
            lam = nx * lx + ny * ly + nz * lz
            t = np.clip((lam + 0.05) * (1.0 / softness), 0.0, 1.0)[..., None]
            col = dark + (base - dark) * t
            if highlight:
                col = col + highlight * np.clip((lam - 0.75) * 6.0, 0.0, 1.0)[..., None]
            return col

        return color

    PARTS = ("back_hair", "body", "ears", "face", "wrinkles", "beard", "nose", "mouth", "eyes", "brows",
             "front_hair", "glasses")  # back to front

    def draw(self, parts: Sequence[str] = PARTS):
        for name in parts:
            if name == "glasses" and not self.p.eyeglasses:
                continue
            getattr(self, "_" + name)()

    # -- parts
    def _face_sdf(self):
        g = self.g
        hx, hy, rx, ry, jaw = g.hx, g.hy, g.rx, g.ry, g.jaw
        shift = 0.03 * math.sin(g.yaw)

        def sdf(u, v):
            dy = (v - hy) * (1.0 / ry)
            below = np.clip(dy, 0.0, 1.0)
            rxe = rx * (1.0 - jaw * below * below)
            cx = hx + shift * (np.clip(dy, -1, 1) + 0.5)
            dx = (u - cx) / rxe
            rho = np.sqrt(dx * dx + dy * dy)
            grad = np.sqrt((dx / rxe) ** 2 + (dy * (1.0 / ry)) ** 2) + 1e-6
            return (rho - 1.0) * rho / grad

        return sdf

    def _face(self):
        g = self.g
        box = (g.hx - g.rx - 0.05, g.hy - g.ry - 0.02, g.hx + g.rx + 0.05, g.hy + g.ry + 0.02)
        self.c.paint(self.head, box, self._face_sdf(),
                     self._shade(self.skin, g.hx + 0.05 * math.sin(g.yaw), g.hy - 0.08, g.rx * 1.3, g.ry * 1.6,
                                 shadow=0.8, softness=0.6))
        # cheeks
        blush = np.array([0.95, 0.45, 0.45], np.float32)
        for ex in (g.eye_l[0], g.eye_r[0]):
            cx, cy = ex + (0.01 if ex > g.hx else -0.01), 0.60
            self.c.paint(self.head, (cx - 0.06, cy - 0.05, cx + 0.06, cy + 0.05),
                         lambda u, v, cx=cx, cy=cy: _sd_ellipse(u, v, cx, cy, 0.045, 0.028), blush,
                         alpha=0.18 * (1.0 - 0.6 * self.p.skin_tone), edge=12.0 * self.c.side / 256.0)

    def _ears(self):
        g = self.g
        s = math.sin(g.yaw)
        for side in (-1.0, 1.0):
            cx = g.hx + side * g.rx * (0.97 - 0.08 * side * s) - 0.06 * s
            cy = 0.53
            rx, ry = 0.042 * (1.0 - 0.5 * max(0.0, side * s)), 0.065
            box = (cx - rx - 0.01, cy - ry - 0.01, cx + rx + 0.01, cy + ry + 0.01)
            self.c.paint(self.head, box, lambda u, v, cx=cx, cy=cy, rx=rx, ry=ry: _sd_ellipse(u, v, cx, cy, rx, ry),
                         self._shade(self.skin * 0.96, g.hx, g.hy, g.rx * 1.3, g.ry * 1.2))
            ix = cx + side * 0.008
            self.c.paint(self.head, box,
                         lambda u, v, ix=ix, cy=cy, rx=rx, ry=ry:
                         _sd_ellipse(u, v, ix, cy + 0.005, rx * 0.45, ry * 0.55),
                         self.skin * 0.78, alpha=0.6)

    def _body(self):
        g, p = self.g, self.p
        neck_w = g.rx * 0.48
        top = g.hy + g.ry * 0.55
        skin_dark = self.skin * 0.8
        self.c.paint(self.body, (g.hx - neck_w - 0.02, top - 0.02, g.hx + neck_w + 0.02, 1.3),
                     lambda u, v: _sd_box(u, v, g.hx, top + 0.3, neck_w, 0.3, 0.02), skin_dark)
        shirt = np.asarray(p.shirt_rgb, np.float32)
        cx, cy = g.hx, 1.33
        self.c.paint(self.body, (cx - 0.62, 0.88, cx + 0.62, 1.8),
                     lambda u, v: _sd_ellipse(u, v, cx, cy, 0.50, 0.40),
                     self._shade(shirt, cx, cy, 0.55, 0.45, shadow=0.75, highlight=0.0))
        # neckline
        self.c.paint(self.body, (g.hx - neck_w * 1.3, 0.9, g.hx + neck_w * 1.3, 1.1),
                     lambda u, v: _sd_ellipse(u, v, g.hx, 0.94, neck_w * 1.15, 0.06), skin_dark * 1.05)

    def _hair_line(self, u):
        """Lower edge of the fringe (head units) as a function of u."""
        g, p = self.g, self.p
        rel = np.clip((u - g.hx) / g.rx, -1.2, 1.2)
        top = g.hy - g.ry * (0.56 - 0.05 * p.hair_style) + 0.015 * p.hair_part * rel
        side = g.hy - g.ry * 0.02
        line = top + (side - top) * np.abs(rel) ** (2.5 + p.hair_style)
        if p.hair_style == 1:  # scalloped fringe
            line = line + 0.018 * np.abs(np.sin((u - g.hx) * 38.0 + p.hair_part))
        elif p.hair_style == 2:  # swept fringe
            line = line + 0.05 * np.clip(0.5 - p.hair_part * rel, 0, 1) * (1 - np.abs(rel))
        return line

    def _hair_color(self, cx, cy, rx, ry):
        base = self._shade(self.hair, cx, cy, rx, ry, shadow=0.62, highlight=0.0, softness=0.5)
        shine = 0.16 if self.p.hair_color in (0, 1) else 0.12

        def color(u, v):
            col = base(u, v)
            # a toon shine band across the crown
            d = np.abs(np.sqrt(((u - cx) / rx) ** 2 + ((v - cy - 0.05) / ry) ** 2) - 0.78)
            band = np.clip(1.0 - d * 14.0, 0.0, 1.0) * np.clip((cy - v) * 6.0, 0.0, 1.0)
            return col + shine * band[..., None]

        return color

    def _back_hair(self):
        g, p = self.g, self.p
        L = p.hair_length
        if L == 0.0:
            return
        vol = 0.035 + 0.02 * p.hair_style
        cx = g.hx - 0.04 * math.sin(g.yaw)
        cy = g.hy - 0.02
        rx, ry = g.rx + vol + 0.01, g.ry + vol
        if L < 0.4:  # short: the crown only
            bottom = g.hy + 0.02
        elif L < 0.65:  # medium: to the jaw
            bottom = g.hy + g.ry * (0.35 + 1.2 * (L - 0.4))
        else:  # long: past the shoulders
            bottom = g.hy + g.ry * (1.0 + 2.0 * (L - 0.65))
        half = rx * (1.02 if L < 0.65 else 1.1)
        box = (cx - half - 0.05, cy - ry - 0.02, cx + half + 0.05, bottom + 0.02)
        col = self._hair_color(cx, cy, rx, ry)

        def sdf(u, v):
            crown = _sd_ellipse(u, v, cx, cy, rx, ry)
            if L < 0.4:
                return np.maximum(crown, v - bottom)
            depth = np.clip((v - cy) / (bottom - cy), 0.0, 1.0)
            flare = half * (1.0 + 0.10 * depth) + 0.006 * np.sin(v * 60.0 + p.hair_part * 3.0)
            # a rounded box hanging from the crown, with a wavy, rounded lower edge
            body = _sd_box(np.abs(u - cx) * (half / flare) + cx, v, cx, 0.5 * (cy + bottom), half,
                           0.5 * (bottom - cy), 0.06)
            edge = v - (bottom - 0.02 * np.abs(np.sin((u - cx) * 25.0)))
            return np.minimum(crown, np.maximum(body, edge))

        self.c.paint(self.head, box, sdf, col)

    def _front_hair(self):
        g, p = self.g, self.p
        if p.hair_length == 0.0:
            return
        vol = 0.035 + 0.02 * p.hair_style
        cx = g.hx - 0.01 * math.sin(g.yaw)
        cy = g.hy - 0.02
        rx, ry = g.rx + vol * 0.75, g.ry + vol
        box = (cx - rx - 0.02, cy - ry - 0.02, cx + rx + 0.02, g.hy + 0.05)
        line = self._hair_line

        def sdf(u, v):
            return np.maximum(_sd_ellipse(u, v, cx, cy, rx, ry), (v - line(u)) * 0.8)

        self.c.paint(self.head, box, sdf, self._hair_color(cx, cy, rx, ry))
        # a few strands from the crown toward the fringe
        strand = self.hair * 0.55
        for k in (-2, -1, 1, 2):
            ax, ay = cx + 0.035 * k + 0.03 * p.hair_part, cy - ry * 0.9
            bx, by = cx + 0.075 * k + 0.02 * p.hair_part, cy - ry * 0.45
            self.c.paint(self.head, (min(ax, bx) - 0.02, ay - 0.02, max(ax, bx) + 0.02, by + 0.02),
                         lambda u, v, ax=ax, ay=ay, bx=bx, by=by: np.maximum(
                             _sd_segment(u, v, ax, ay, bx, by, 0.004), sdf(u, v) + 0.01), strand, alpha=0.35)
        if p.hair_length >= 0.65:  # long: locks in front of the shoulders
            bottom = g.hy + g.ry * (1.0 + 2.0 * (p.hair_length - 0.65))
            col = self._hair_color(g.hx, g.hy - 0.1, g.rx * 1.6, g.ry * 2.0)
            for side in (-1.0, 1.0):
                ax = g.hx + side * (g.rx - 0.005) - 0.03 * math.sin(g.yaw)
                ay = g.hy - 0.05
                bx, by = ax + side * 0.06, bottom - 0.03

                def lock(u, v, ax=ax, ay=ay, bx=bx, by=by):
                    t = np.clip((v - ay) / (by - ay), 0.0, 1.0)
                    wave = 0.008 * np.sin(t * 9.0 + p.hair_part)
                    width = (0.03 + 0.012 * t * (1 - t) * 4) * (1.0 - 0.6 * np.clip((t - 0.8) / 0.2, 0, 1) ** 2)
                    across = np.abs(u - (ax + (bx - ax) * t + wave)) - width
                    return np.maximum(np.maximum(across, ay - v), v - by)

                self.c.paint(self.head, (min(ax, bx) - 0.1, ay - 0.02, max(ax, bx) + 0.1, by + 0.03), lock, col)

    def _eyes(self):
        g, p = self.g, self.p
        iris = _EYE[p.eye_color]
        cos_y = math.cos(g.yaw)
        s = math.sin(g.yaw)
        squint = 1.0 - 0.22 * max(p.smile, 0.0)
        for (ex, ey), side in ((g.eye_l, -1.0), (g.eye_r, 1.0)):
            fore = cos_y * (1.0 + 0.3 * side * s)  # the far eye looks narrower
            w, h = g.eye_w * fore, g.eye_h * squint
            box = (ex - w - 0.02, ey - h - 0.03, ex + w + 0.02, ey + h + 0.02)

            def white(u, v, ex=ex, ey=ey, w=w, h=h):
                return _sd_ellipse(u, v, ex, ey, w, h)

            self.c.paint(self.head, box, white, (0.98, 0.98, 0.97))
            r = g.eye_h * 0.72
            ix = ex + 0.25 * w * s

            def iris_sdf(u, v, ix=ix, ey=ey, white=white, r=r):
                return np.maximum(_sd_circle(u, v, ix, ey, r), white(u, v))

            self.c.paint(self.head, box, iris_sdf, iris)
            self.c.paint(self.head, box, lambda u, v, ix=ix, ey=ey, r=r, white=white:
                         np.maximum(_sd_circle(u, v, ix, ey, r * 0.5), white(u, v)), (0.06, 0.05, 0.06))
            hx_ = ix - 0.35 * r * (1 if self.light[0] < 0 else -1)
            self.c.paint(self.head, box, lambda u, v, hx_=hx_, ey=ey, r=r:
                         _sd_circle(u, v, hx_, ey - 0.35 * r, r * 0.28), (1.0, 1.0, 1.0))
            # upper lid line with a small flick at the outer corner
            self.c.paint(self.head, box, lambda u, v, ex=ex, ey=ey, w=w, h=h:
                         _sd_curve(u, v, ex, ey - h * 0.15, w * 1.05, 0.8 * h / w, 0.011, 0.5, -0.08 * side),
                         (0.12, 0.08, 0.08))

    def _brows(self):
        g, p = self.g, self.p
        cos_y = math.cos(g.yaw)
        raise_ = 0.01 * max(p.smile, 0.0)
        thick = 0.014 + (0.006 if p.beard else 0.0)
        for (ex, ey), side in ((g.eye_l, -1.0), (g.eye_r, 1.0)):
            w = g.eye_w * 1.15 * cos_y
            cy = ey - g.eye_h - 0.045 - raise_
            tilt = side * (0.12 + 0.1 * p.brow_tilt)
            box = (ex - w - 0.02, cy - 0.05, ex + w + 0.02, cy + 0.04)
            self.c.paint(self.head, box, lambda u, v, ex=ex, cy=cy, w=w, tilt=tilt:
                         _sd_curve(u, v, ex, cy, w, 0.12, thick, 0.55, -tilt), self.brow)

    def _nose(self):
        g = self.g
        nx, ny = g.nose
        s = g.nose_s
        shadow = self.skin * 0.78
        side = -1.0 if self.light[0] > 0 else 1.0
        # soft shade on the side away from the light, and the nose's underside
        self.c.paint(self.head, (nx - 0.06, ny - 0.11, nx + 0.06, ny + 0.03),
                     lambda u, v: _sd_ellipse(u, v, nx + side * 0.012 * s, ny - 0.035 * s, 0.013 * s, 0.05 * s),
                     shadow, alpha=0.55, edge=6.0 * self.c.side / 256.0)
        self.c.paint(self.head, (nx - 0.06, ny - 0.04, nx + 0.06, ny + 0.03),
                     lambda u, v: _sd_curve(u, v, nx, ny + 0.008 * s, 0.024 * s, 0.25, 0.008, 0.5), shadow * 0.85)
        self.c.paint(self.head, (nx - 0.05, ny - 0.05, nx + 0.05, ny + 0.02),
                     lambda u, v: _sd_circle(u, v, nx - side * 0.006, ny - 0.012 * s, 0.008 * s), self.skin * 1.08,
                     alpha=0.7)

    def _mouth(self):
        g, p = self.g, self.p
        (lx, ly), (rx_, ry_) = _mouth_corners(g)
        mx = 0.5 * (lx + rx_)
        hw = 0.5 * (rx_ - lx)
        lift = g.mouth[1] - ly  # > 0 when smiling
        my = ly + lift  # centre of the lip line
        tilt_ = (ry_ - ly) / (2 * hw)
        line_col = (0.35, 0.12, 0.12)
        if p.lipstick:
            lip = _LIPSTICK[p.lipstick_shade]
        else:
            lip = self.skin * np.array([0.92, 0.76, 0.74], np.float32)
        box = (lx - 0.03, my - lift - 0.05, rx_ + 0.03, my + 0.09)
        openness = g.open
        op = 0.055 * openness

        def upper(u):
            t = np.clip((u - mx) / hw, -1, 1)
            return my + tilt_ * t * hw - lift * (t * t) - op * 0.25 * (1 - t * t)

        def lower(u):
            t = np.clip((u - mx) / hw, -1, 1)
            return my + tilt_ * t * hw - lift * (t * t) + op * (1 - t * t) ** 0.8

        # lips (drawn under the mouth line)
        lip_t = 0.021 if p.lipstick else 0.010

        def lips(u, v):
            t = (u - mx) / hw
            inside_x = np.abs(t) - 1.0
            up = v - (upper(u) - lip_t * (1 - 0.5 * t * t))
            lo = (lower(u) + lip_t * 1.15 * (1 - 0.6 * t * t)) - v
            return np.maximum(np.maximum(-up, -lo), inside_x * hw)

        self.c.paint(self.head, box, lips, lip, alpha=1.0 if p.lipstick else 0.4)
        if openness > 0:
            def hole(u, v):
                t = (u - mx) / hw
                return np.maximum(np.maximum(upper(u) - v, v - lower(u)), (np.abs(t) - 1.0) * hw) * 0.9

            self.c.paint(self.head, box, hole, (0.32, 0.08, 0.10))
            # teeth under the upper lip, tongue at the bottom
            self.c.paint(self.head, box, lambda u, v: np.maximum(hole(u, v), v - upper(u) - 0.25 * op - 0.006),
                         (0.97, 0.96, 0.92))
            self.c.paint(self.head, box, lambda u, v: np.maximum(hole(u, v),
                                                                 _sd_ellipse(u, v, mx, my + op * 1.0, hw * 0.55,
                                                                             op * 0.45)), (0.85, 0.38, 0.40))
        # the lip line
        self.c.paint(self.head, box, lambda u, v: _mouth_line(u, v, mx, hw, upper), line_col)

    def _beard(self):
        g, p = self.g, self.p
        if not p.beard:
            return
        col = self.hair * 0.85 if p.hair_color != 4 else np.array([0.78, 0.78, 0.80], np.float32)
        (lx, ly), (rx_, ry_) = _mouth_corners(g)
        mx, my = 0.5 * (lx + rx_), g.mouth[1]
        face = self._face_sdf()
        chin = g.hy + g.ry
        extra = 0.015 + 0.05 * p.beard_length
        top_c = g.nose[1] + 0.035

        def sdf(u, v):
            rel = (u - g.hx) / g.rx
            top = top_c - 0.16 * np.clip(np.abs(rel) - 0.3, 0, 1) ** 1.1
            grow = 0.004 + extra * np.clip((v - g.hy) / g.ry, 0.0, 1.0) ** 2
            region = np.maximum(face(u, v) - grow, (top - v) * 0.7)
            mouth_hole = _sd_ellipse(u, v, mx, my + 0.008, (rx_ - lx) * 0.5 + 0.012, 0.022 + 0.055 * g.open * 0.7)
            return np.maximum(region, -mouth_hole)

        box = (g.hx - g.rx - 0.03, top_c - 0.15, g.hx + g.rx + 0.03, chin + extra + 0.06)
        self.c.paint(self.head, box, sdf, self._shade(col, g.hx, g.hy, g.rx * 1.2, g.ry * 1.2, shadow=0.7,
                                                      highlight=0.0))

    def _wrinkles(self):
        g, p = self.g, self.p
        a = p.age
        old = a >= 0.5
        strength = 0.92 + 0.08 * (a - 0.55) / 0.45 if old else 0.25 * a
        if strength <= 0.02:
            return
        col = self.skin * (0.55 if old else 0.62)
        k_thick = 1.4 if old else 1.0
        soft = 2.0 * self.c.side / 256.0 + 0.5
        nx, ny = g.nose
        (lx, ly), (rx_, ry_) = _mouth_corners(g)
        # nasolabial folds
        for side, (cx, cy) in ((-1.0, (lx, ly)), (1.0, (rx_, ry_))):
            ax, ay = nx + side * 0.04, ny
            bx, by = cx + side * 0.014, cy - 0.005
            self.c.paint(self.head, (min(ax, bx) - 0.03, ay - 0.03, max(ax, bx) + 0.03, by + 0.03),
                         lambda u, v, ax=ax, ay=ay, bx=bx, by=by: _sd_segment(u, v, ax, ay, bx, by, 0.0045 * k_thick),
                         col, alpha=min(1.0, strength * 0.8), edge=soft)
        if not old:
            return
        # marionette lines below the mouth corners
        for side, (cx, cy) in ((-1.0, (lx, ly)), (1.0, (rx_, ry_))):
            ax, ay = cx + side * 0.008, cy + 0.012
            bx, by = cx + side * 0.012, cy + 0.05
            self.c.paint(self.head, (min(ax, bx) - 0.03, ay - 0.03, max(ax, bx) + 0.03, by + 0.03),
                         lambda u, v, ax=ax, ay=ay, bx=bx, by=by: _sd_segment(u, v, ax, ay, bx, by, 0.005), col,
                         alpha=strength * 0.7, edge=soft)
        # forehead lines just above the brows (a low fringe still hides them)
        brow_y = g.eye_l[1] - g.eye_h - 0.045
        for k in range(3):
            y = brow_y - 0.03 - 0.022 * k
            w = g.rx * (0.42 - 0.05 * k)
            self.c.paint(self.head, (g.hx - w - 0.02, y - 0.03, g.hx + w + 0.02, y + 0.03),
                         lambda u, v, y=y, w=w: _sd_curve(u, v, g.hx + 0.02 * math.sin(g.yaw), y, w, 0.05, 0.011,
                                                          0.8), col, alpha=strength, edge=soft)
        # crow's feet and under-eye bags
        for (ex, ey), side in ((g.eye_l, -1.0), (g.eye_r, 1.0)):
            ox = ex + side * (g.eye_w + 0.01)
            for k in (-1, 0, 1):
                self.c.paint(self.head, (ox - 0.05, ey - 0.05, ox + 0.05, ey + 0.05),
                             lambda u, v, ox=ox, k=k, ey=ey: _sd_segment(u, v, ox, ey + 0.007 * k, ox + side * 0.034,
                                                                          ey + 0.02 * k, 0.0075),
                             col, alpha=strength * 0.9, edge=soft)
            for k, y in enumerate((ey + g.eye_h + 0.012, ey + g.eye_h + 0.028)):
                self.c.paint(self.head, (ex - 0.07, ey, ex + 0.07, ey + 0.08),
                             lambda u, v, ex=ex, y=y, k=k: _sd_curve(u, v, ex, y, g.eye_w * (0.8 - 0.15 * k), -0.15,
                                                                     0.008, 0.7), col, alpha=strength * 0.85,
                             edge=soft)

    def _glasses(self):
        g, p = self.g, self.p
        frame = _FRAME[p.glasses_color]
        cos_y = math.cos(g.yaw)
        s = math.sin(g.yaw)
        thick = 0.011 if p.glasses_color in (3,) else 0.014
        lens = []
        for (ex, ey), side in ((g.eye_l, -1.0), (g.eye_r, 1.0)):
            fore = cos_y * (1.0 + 0.3 * side * s)
            cx, cy = ex, ey + 0.005
            if p.glasses_style == 1:
                rx, ry = 0.068 * fore, 0.068

                def shape(u, v, cx=cx, cy=cy, rx=rx, ry=ry):
                    return _sd_ellipse(u, v, cx, cy, rx, ry)
            else:
                rx, ry = 0.085 * fore, 0.050

                def shape(u, v, cx=cx, cy=cy, rx=rx, ry=ry):
                    return _sd_box(u, v, cx, cy, rx, ry, 0.008)
            lens.append((cx, cy, rx, ry, shape, side))
        for cx, cy, rx, ry, shape, side in lens:
            box = (cx - rx - 0.02, cy - ry - 0.02, cx + rx + 0.02, cy + ry + 0.02)
            self.c.paint(self.head, box, shape, (0.80, 0.90, 1.0), alpha=0.18)
            self.c.paint(self.head, box, lambda u, v, shape=shape: np.abs(shape(u, v)) - thick * 0.5, frame)
            # temple toward the ear
            ax = cx + side * rx
            bx = g.hx + side * g.rx * 0.97 - 0.05 * s
            if side * (bx - ax) > 0.005:
                self.c.paint(self.head, (min(ax, bx) - 0.02, cy - 0.05, max(ax, bx) + 0.02, cy + 0.02),
                             lambda u, v, ax=ax, bx=bx, cy=cy, ry=ry:
                             _sd_segment(u, v, ax, cy - ry * 0.5, bx, cy - ry * 0.6, thick * 0.45), frame)
        (l_cx, l_cy, l_rx, _, _, _), (r_cx, r_cy, r_rx, _, _, _) = lens
        ax, bx = l_cx + l_rx, r_cx - r_rx
        ymid = 0.5 * (l_cy + r_cy) - 0.012
        self.c.paint(self.head, (ax - 0.02, ymid - 0.03, bx + 0.02, ymid + 0.02),
                     lambda u, v: _sd_curve(u, v, 0.5 * (ax + bx), ymid, 0.5 * (bx - ax) + 0.004, 0.25,
                                            thick * 0.9, 0.0), frame)


def _mouth_line(u, v, mx, hw, upper):
    t = np.clip((u - mx) / hw, -1.0, 1.0)
    y = upper(u)
    du = u - (mx + t * hw)
    return np.sqrt((v - y) ** 2 + du * du) - 0.0045 * (1.0 - 0.4 * t * t)


# ----------------------------------------------------------------------------------------------------------------
# Scenes


def _backdrop(canvas: _Canvas, p: ToonParams, unit: _Affine):
    """Portrait backdrop: the background colour with a soft gradient toward the light."""
    base = np.clip(_BACK[p.background] + np.asarray(p.background_jitter, np.float32), 0, 1)
    lx = p.light_x

    def color(u, v):
        t = 0.92 + 0.10 * (u - 0.5) * lx - 0.08 * (v - 0.3)
        return base * t[..., None]

    canvas.paint(unit, (0, 0, 1, 1), lambda u, v: np.full_like(u, -1.0), color)


def _room(canvas: _Canvas, p: ToonParams, unit: _Affine):
    """Photo backdrop: a wall, a floor and a few objects (clutter), all from ``p.scene_seed``."""
    rng = np.random.default_rng(p.scene_seed)
    wall = np.clip(_BACK[p.background] + np.asarray(p.background_jitter, np.float32), 0, 1) * 0.95
    canvas.paint(unit, (0, 0, 1, 1), lambda u, v: np.full_like(u, -1.0), wall)
    floor_y = 0.62 + 0.3 * rng.random()
    floor = np.asarray(_hsv_to_rgb(0.05 + 0.08 * rng.random(), 0.3 + 0.3 * rng.random(), 0.35 + 0.3 * rng.random()),
                       np.float32)
    canvas.paint(unit, (0, floor_y - 0.01, 1, 1), lambda u, v: floor_y - v, floor)
    for _ in range(int(rng.integers(3, 8))):
        kind = int(rng.integers(4))
        col = np.asarray(_hsv_to_rgb(rng.random(), 0.2 + 0.5 * rng.random(), 0.3 + 0.6 * rng.random()), np.float32)
        cx, cy = rng.random(), rng.random() * 0.9
        w, h = 0.05 + 0.2 * rng.random(), 0.05 + 0.25 * rng.random()
        box = (cx - w - 0.02, cy - h - 0.02, cx + w + 0.02, cy + h + 0.02)
        if kind == 0:  # picture frame
            inner = np.asarray(_hsv_to_rgb(rng.random(), 0.5, 0.8), np.float32)
            canvas.paint(unit, box, lambda u, v, cx=cx, cy=cy, w=w, h=h: _sd_box(u, v, cx, cy, w, h), col)
            canvas.paint(unit, box, lambda u, v, cx=cx, cy=cy, w=w, h=h: _sd_box(u, v, cx, cy, w * 0.8, h * 0.8),
                         inner)
        elif kind == 1:  # lamp / clock
            canvas.paint(unit, box, lambda u, v, cx=cx, cy=cy, w=w: _sd_circle(u, v, cx, cy, w * 0.7), col)
        elif kind == 2:  # plant: a pot and leaves
            leaf = np.asarray(_hsv_to_rgb(0.28 + 0.1 * rng.random(), 0.6, 0.55), np.float32)
            canvas.paint(unit, box, lambda u, v, cx=cx, cy=cy, w=w, h=h:
                         _sd_box(u, v, cx, cy + h * 0.6, w * 0.35, h * 0.3, 0.01), col)
            for k in range(3):
                ang = (k - 1) * 0.6
                tx, ty = cx + math.sin(ang) * h * 0.8, cy + h * 0.3 - math.cos(ang) * h * 0.8
                canvas.paint(unit, box, lambda u, v, cx=cx, cy=cy, h=h, tx=tx, ty=ty:
                             _sd_segment(u, v, cx, cy + h * 0.3, tx, ty, 0.02 + 0.02 * w), leaf)
        else:  # shelf
            canvas.paint(unit, box, lambda u, v, cx=cx, cy=cy, w=w: _sd_box(u, v, cx, cy, w, 0.012, 0.004), col)


def _supersample_for(size: int) -> int:
    return 4 if size <= 32 else 2 if size <= 256 else 1


def render(seed_or_params, size: int = 64, framing: str = "portrait", supersample: int | None = None) -> "ToonRender":
    """Render one face. ``seed_or_params``: a non-negative int seed or a ``ToonParams``. ``size``: output side in
    pixels (8 .. 2048). ``framing``: 'portrait' or 'photo'. ``supersample``: canvas oversampling factor (default 4 up
    to 32 px, 2 up to 256 px, else 1; edges are anti-aliased by coverage in any case)."""
    if isinstance(seed_or_params, ToonParams):
        p = seed_or_params
    else:
        p = sample_params(seed_or_params)
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 8 <= int(size) <= 2048:
        raise ValueError(f"size must be an int in [8, 2048], got {size!r}")
    if framing not in FRAMINGS:
        raise ValueError(f"framing must be one of {FRAMINGS}, got {framing!r}")
    size = int(size)
    k = _supersample_for(size) if supersample is None else int(supersample)
    if not 1 <= k <= 8:
        raise ValueError(f"supersample must be in [1, 8], got {supersample!r}")
    side = size * k
    g, lm_head, head, body, unit = _layout(p, side, framing)
    canvas = _Canvas(side, (0.0, 0.0, 0.0))
    if framing == "portrait":
        _backdrop(canvas, p, unit)
    else:
        _room(canvas, p, unit)
    _Painter(canvas, p, g, head, body).draw()
    image = canvas.downsample(k)
    landmarks = (head.apply(lm_head) / k).astype(np.float32)  # [5, 2] output pixels
    return ToonRender(image=image, attributes=attributes_of(p), landmarks=landmarks, params=p)


def _layout(p: ToonParams, side: int, framing: str):
    """Geometry, head-unit landmarks and the head / body / canvas transforms for a canvas of ``side`` pixels."""
    g = _geometry(p)
    lm_head = _head_landmarks(g)  # [5, 2] head units
    centre, crop, angle = _ffhq_quad(lm_head)
    # portrait: the FFHQ crop of the head fills the unit square
    align = _Affine.similarity(1.0 / crop, -angle, centre, (0.5, 0.5))
    roll = _Affine.similarity(1.0, -8.0 * p.roll, (0.5, 0.62), (0.5, 0.62))
    if framing == "portrait":
        to_px = _Affine(np.array([[side, 0.0, 0.0], [0.0, side, 0.0]]))
    else:
        to_px = _Affine.similarity(side * p.photo_scale, p.photo_angle, (0.5, 0.5), (p.photo_x * side,
                                                                                     p.photo_y * side))
    body = align.then(to_px)
    head = align.then(roll).then(to_px)
    unit = _Affine(np.array([[side, 0.0, 0.0], [0.0, side, 0.0]]))
    return g, lm_head, head, body, unit


def _render_parts(seed_or_params, size: int, parts: Sequence[str], framing: str = "portrait",
                  background=(0.0, 0.0, 0.0)) -> np.ndarray:
    """Draw only ``parts`` (names from ``_Painter.PARTS``) on a plain canvas without supersampling; returns float32
    [size, size, 3]. For tests that check landmarks against drawn features."""
    p = seed_or_params if isinstance(seed_or_params, ToonParams) else sample_params(seed_or_params)
    unknown = set(parts) - set(_Painter.PARTS)
    if unknown:
        raise ValueError(f"unknown parts {sorted(unknown)}; known: {_Painter.PARTS}")
    g, _, head, body, _ = _layout(p, size, framing)
    canvas = _Canvas(size, background)
    _Painter(canvas, p, g, head, body).draw(parts)
    return canvas.img


@dataclass(frozen=True)
class ToonRender:
    """One rendered face."""

    image: np.ndarray  # uint8 [H, W, 3]
    attributes: dict  # name -> int / float / str (see ATTRIBUTES)
    landmarks: np.ndarray  # float32 [5, 2] (x, y) pixels, order LANDMARK_NAMES
    params: ToonParams  # everything that made it

    def landmark_dict(self) -> dict[str, tuple[float, float]]:
        """Landmarks by name."""
        return {n: (float(x), float(y)) for n, (x, y) in zip(LANDMARK_NAMES, self.landmarks)}


def _render_chunk(job):
    seeds, size, framing, supersample = job
    outs = [render(s, size, framing, supersample) for s in seeds]
    return (np.stack([o.image for o in outs]), [o.attributes for o in outs], np.stack([o.landmarks for o in outs]))


def render_batch(seeds: Sequence, size: int = 64, framing: str = "portrait", workers: int = 1,
                 supersample: int | None = None):
    """Render many faces. ``seeds``: ints or ``ToonParams``. Returns ``(images uint8 [N, H, W, 3], attributes list,
    landmarks float32 [N, 5, 2])``. ``workers > 1`` uses that many processes, order preserved (forkserver: a plain
    fork of a process with threads, such as a test run with torch or Gradio loaded, could deadlock a worker on a lock
    another thread held, and did)."""
    seeds = list(seeds)
    if not seeds:
        raise ValueError("render_batch needs at least one seed")
    if int(workers) < 1:
        raise ValueError(f"workers must be >= 1, got {workers!r}")
    workers = min(int(workers), len(seeds))
    if workers == 1:
        return _render_chunk((seeds, size, framing, supersample))
    import multiprocessing as mp

    n_chunks = workers * 4
    bounds = np.linspace(0, len(seeds), n_chunks + 1).astype(int)
    jobs = [(seeds[a:b], size, framing, supersample) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
    ctx = mp.get_context("forkserver")
    with ctx.Pool(workers) as pool:
        parts = pool.map(_render_chunk, jobs)
    images = np.concatenate([q[0] for q in parts])
    attrs = [a for q in parts for a in q[1]]
    lms = np.concatenate([q[2] for q in parts])
    return images, attrs, lms


def params_dict(params: ToonParams) -> dict:
    """``params`` as a JSON-friendly dict."""
    return asdict(params)
