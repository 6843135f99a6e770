"""Real photos in, FFHQ-aligned crops out, edited crops pasted back.

Three steps, each usable alone:

``load_image(source) -> uint8 [H, W, 3]``
    Reads a path, bytes, file object, PIL image or array; applies the EXIF orientation; converts grayscale, palette,
    CMYK, 16-bit and alpha images to RGB; refuses what is not an image, truncated files and decompression bombs with
    an ``ImageError`` that says what is wrong.
``Landmarker.detect(image) -> list[Face]``
    One interface for face finders: ``MTCNNLandmarker`` (facenet-pytorch, for FFHQ-family generators) and
    ``ToonLandmarker`` (the demo world's attribute/landmark network, for the demo generator). ``landmarker_for``
    picks one from a name or a generator's model card. Faces come largest first, each with a box and five points
    (left eye, right eye, nose, left mouth corner, right mouth corner; "left" = smaller x).
``align_face(image, landmarks, output_size) -> AlignedFace``
    The FFHQ crop rule (eye-to-eye and eye-to-mouth vectors, a square quad of side
    ``2 max(2 |eye_to_eye|, 1.8 |eye_to_mouth|)`` centred 0.1 ``eye_to_mouth`` below the eye midpoint), with the
    FFHQ pipeline: shrink very large photos, crop with a border, reflect-pad beyond the photo with a blur and a blend
    toward the median colour, and a supersampled transform filtered down to ``output_size``. The result keeps the
    quad, so ``paste_back(photo, aligned, edited)`` can put an edited crop back into the original photo through the
    inverse transform and a feathered mask.

``align_photo(source, landmarker, output_size)`` does all three and says when several faces were found.

Coordinates are continuous pixel coordinates, as in ``editor.toonfaces``: an image spans ``[0, W] x [0, H]`` and
pixel ``(i, j)`` has its centre at ``(j + 0.5, i + 0.5)``. Quads are ``[4, 2]`` corners in the order top-left,
bottom-left, bottom-right, top-right of the aligned crop.
"""

from __future__ import annotations

import io
import json
import math
import os
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

__all__ = [
    "AlignError",
    "AlignedFace",
    "Face",
    "FaceTooSmallError",
    "ImageError",
    "Landmarker",
    "LandmarkerUnavailableError",
    "MTCNNLandmarker",
    "NoFaceError",
    "ToonLandmarker",
    "align_face",
    "align_photo",
    "crop_to_photo",
    "ffhq_quad",
    "head_mask",
    "landmarker_for",
    "load_image",
    "paste_back",
    "photo_to_crop",
]

MAX_PIXELS = 64_000_000  # larger images are refused (decompression bombs); ~8000 x 8000
MIN_SIDE = 16  # smaller images are refused
LANDMARKERS = ("mtcnn", "toon")


# ----------------------------------------------------------------------------------------------------------------
# Errors


class AlignError(ValueError):
    """Base class: a photo that cannot be turned into an aligned face. The message is meant for the user."""


class ImageError(AlignError):
    """Not a readable image: not an image at all, truncated, too large (decompression bomb), or too small."""


class NoFaceError(AlignError):
    """The face finder found no face in the image."""


class FaceTooSmallError(AlignError):
    """A face was found but it is too small to give a usable aligned crop at the requested resolution."""


class LandmarkerUnavailableError(AlignError):
    """The face finder cannot run here (package not installed, weights missing); the message says how to fix it."""


# ----------------------------------------------------------------------------------------------------------------
# Reading images


def _describe(source) -> str:
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    return f"the {type(source).__name__} input"


def _pil_to_rgb(im) -> np.ndarray:
    """Any PIL mode -> uint8 [H, W, 3]. Alpha is composited over white; 16/32-bit and float images are scaled."""
    from PIL import Image

    mode = im.mode
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        a = np.asarray(im, dtype=np.float64)
        hi = float(a.max()) if a.size else 0.0
        if mode == "F" and hi <= 1.0:
            a = a * 255.0
        elif hi > 255.0:
            a = a / (65535.0 if hi <= 65535.0 else hi) * 255.0
        g = np.clip(np.rint(a), 0, 255).astype(np.uint8)
        return np.repeat(g[..., None], 3, axis=2)
    if mode == "P":
        im = im.convert("RGBA") if "transparency" in im.info else im.convert("RGB")
        mode = im.mode
    if mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    if mode != "RGB":
        im = im.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV
    return np.asarray(im)


def load_image(source, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read a photo as uint8 RGB ``[H, W, 3]``.

    ``source``: a path, ``bytes``, a binary file object, a ``PIL.Image.Image`` or a numpy array (uint8 or float in
    [0, 1]; ``[H, W]``, ``[H, W, 1]``, ``[H, W, 3]`` or ``[H, W, 4]``). The EXIF orientation is applied, so a photo
    taken with the phone on its side comes out upright. Raises ``ImageError`` for anything that is not a readable
    image of ``MIN_SIDE`` to ``max_pixels`` pixels.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    if isinstance(source, np.ndarray):
        return _array_to_rgb(source, max_pixels)
    what = _describe(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(bytes(source))
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise ImageError(f"{path}: no such file")
        if path.is_dir():
            raise ImageError(f"{path} is a directory, not an image file")
    opened = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            if isinstance(source, Image.Image):
                im = source
            else:
                im = opened = Image.open(source)
            w, h = im.size
            if w * h > max_pixels:
                raise ImageError(f"{what} is {w}x{h} pixels ({w * h / 1e6:.0f} MP); the limit is "
                                 f"{max_pixels / 1e6:.0f} MP. Downscale the photo first.")
            if min(w, h) < MIN_SIDE:
                raise ImageError(f"{what} is only {w}x{h} pixels; need at least {MIN_SIDE}x{MIN_SIDE}")
            im.load()
            im = ImageOps.exif_transpose(im)
            return _pil_to_rgb(im)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{what} is not an image (or not a format Pillow can read: use JPEG, PNG, WebP, ...)"
                         ) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"{what} is too large to decode safely (decompression bomb guard: {exc})") from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
        text = str(exc)
        if "truncated" in text.lower() or isinstance(exc, EOFError):
            raise ImageError(f"{what} is truncated or corrupt ({text}); re-export or re-download it") from None
        raise ImageError(f"{what} cannot be decoded: {text or type(exc).__name__}") from None
    except Exception as exc:  # a decoder bug on hostile input must still reach the user as a clear message
        raise ImageError(f"{what} cannot be decoded ({type(exc).__name__}: {exc})") from None
    finally:
        if opened is not None:
            opened.close()


def _array_to_rgb(a: np.ndarray, max_pixels: int) -> np.ndarray:
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise ImageError(f"image array must be [H, W], [H, W, 1], [H, W, 3] or [H, W, 4], got shape {a.shape}")
    h, w = a.shape[:2]
    if h * w > max_pixels:
        raise ImageError(f"image array is {w}x{h} pixels; the limit is {max_pixels / 1e6:.0f} MP")
    if min(h, w) < MIN_SIDE:
        raise ImageError(f"image array is only {w}x{h} pixels; need at least {MIN_SIDE}x{MIN_SIDE}")
    if a.dtype != np.uint8:
        if not np.issubdtype(a.dtype, np.floating):
            raise ImageError(f"image array must be uint8 or float in [0, 1], got {a.dtype}")
        if not np.isfinite(a).all():
            raise ImageError("image array contains NaN or infinite values")
        a = np.clip(np.rint(a * 255.0), 0, 255).astype(np.uint8)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.shape[2] == 4:
        alpha = a[..., 3:4].astype(np.float32) / 255.0
        a = np.rint(a[..., :3] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    return np.ascontiguousarray(a)


# ----------------------------------------------------------------------------------------------------------------
# Faces and face finders


@dataclass(frozen=True)
class Face:
    """One detected face."""

    box: tuple[float, float, float, float]  # (x0, y0, x1, y1) continuous pixel coordinates
    landmarks: np.ndarray  # float64 [5, 2] (x, y): left eye, right eye, nose, left mouth corner, right mouth corner
    score: float  # detector confidence in [0, 1]

    @property
    def size(self) -> float:
        """Side of the FFHQ quad these landmarks give, in pixels (a scale-and-pose-robust face size)."""
        return ffhq_quad(self.landmarks)[1]


class Landmarker(Protocol):
    """Anything that finds faces: ``detect(uint8 [H, W, 3]) -> list[Face]``, largest first."""

    name: str

    def detect(self, image: np.ndarray) -> list[Face]: ...


class MTCNNLandmarker:
    """MTCNN from facenet-pytorch (weights ship in its wheel). For real photos and FFHQ-family generators.

    ``min_face_size``: smallest face (box side, pixels) the detector looks for; ``threshold``: minimum final
    confidence. The network is built on first use. MTCNN reports pixel-index coordinates; they are shifted by half a
    pixel into this module's continuous convention.
    """

    name = "mtcnn"

    def __init__(self, device="cpu", min_face_size: int = 20, threshold: float = 0.9):
        self.device = device
        self.min_face_size = int(min_face_size)
        self.threshold = float(threshold)
        self._net = None

    def _model(self):
        if self._net is None:
            try:
                from facenet_pytorch import MTCNN
            except ImportError as exc:
                raise LandmarkerUnavailableError(
                    "the MTCNN face detector needs facenet-pytorch: `pip install --no-deps facenet-pytorch==2.6.0` "
                    f"({exc})") from None
            self._net = MTCNN(keep_all=True, min_face_size=self.min_face_size, device=self.device)
        return self._net

    max_side = 1600  # larger photos are searched on a downscaled copy (speed, memory); points are scaled back

    def detect(self, image: np.ndarray) -> list[Face]:
        image = _check_rgb(image)
        import torch
        from PIL import Image

        h, w = image.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        small = image
        if scale < 1.0:
            small = np.asarray(Image.fromarray(image).resize((max(1, round(w * scale)), max(1, round(h * scale))),
                                                             Image.Resampling.BOX))
        with torch.no_grad():
            boxes, probs, points = self._model().detect(small, landmarks=True)
        if boxes is None or points is None:
            return []
        # facenet-pytorch 2.6 with numpy 2 returns object arrays: convert through lists
        boxes = np.asarray(np.asarray(boxes).tolist(), np.float64).reshape(-1, 4)
        probs = np.asarray(np.asarray(probs).tolist(), np.float64).reshape(-1)
        points = np.asarray(np.asarray(points).tolist(), np.float64).reshape(-1, 5, 2)
        faces = []
        for b, p, lm in zip(boxes, probs, points):
            if not (np.isfinite(b).all() and np.isfinite(lm).all()) or p < self.threshold:
                continue
            sx, sy = w / small.shape[1], h / small.shape[0]
            box = ((b[0] + 0.5) * sx, (b[1] + 0.5) * sy, (b[2] + 0.5) * sx, (b[3] + 0.5) * sy)
            faces.append(Face(box=tuple(float(v) for v in box), landmarks=_order_lr((lm + 0.5) * [sx, sy]),
                              score=float(p)))
        return sorted(faces, key=lambda f: -f.size)


class ToonLandmarker:
    """The demo world's landmark network (``editor.attributes``), made into a face finder for toon photos.

    The network reads 64 px portraits, so a photo is searched: square windows at several scales and positions are
    read in one batch; the ``candidates`` windows whose embeddings look most like portraits (Mahalanobis distance to
    the embeddings of ``reference_count`` rendered portraits) are refined together, in one batch per step, by
    re-cropping along the FFHQ quad of their predicted landmarks ``refine_steps`` times, and the refined crop that
    looks most like a portrait wins; its landmarks are then polished (``polish_steps`` median re-reads from scaled and
    shifted crops), which cuts the crop's scale error. A face is reported when its distance is below
    ``max_distance`` (portraits: about 0.5-0.7; noise, flat images: > 3).

    Measured (``benchmarks/bench_toon_finder.py``, 256 px photos, docs/photos.md): 64 candidates find 189 of 200
    held-out toon photos (8 candidates, as before: 163), in 0.28 CPU s per photo on one thread; with the polish,
    192 of 200 and a smaller scale error.
    Many windows must be refined because the refinement converges only from some starts; the misses are mostly faces
    cut by the photo's edge.
    """

    name = "toon"

    def __init__(self, model=None, device="cpu", scales: Sequence[float] = (1.0, 0.8, 0.65, 0.5, 0.4, 0.3),
                 refine_steps: int = 4, candidates: int = 64, max_distance: float = 1.5, reference_count: int = 200,
                 polish_steps: int = 3):
        self.device = device
        self.polish_steps = int(polish_steps)
        self._model = model
        self.scales = tuple(float(s) for s in scales)
        self.refine_steps = int(refine_steps)
        self.candidates = int(candidates)
        self.max_distance = float(max_distance)
        self.reference_count = int(reference_count)
        self._reference = None  # (mean [E], inverse covariance [E, E]) of portrait embeddings

    def model(self):
        if self._model is None:
            from editor.attributes import load_attribute_model

            try:
                self._model = load_attribute_model(device=self.device)
            except FileNotFoundError as exc:
                raise LandmarkerUnavailableError(f"the toon landmark model is missing: {exc}") from None
        return self._model

    def _portrait_statistics(self):
        if self._reference is None:
            from editor import toonfaces

            size = self.model().config.input_size
            seeds = range(20_000_000, 20_000_000 + self.reference_count)  # outside training and evaluation ranges
            images = toonfaces.render_batch(list(seeds), size, "portrait")[0]
            e = self.model().predict(images).embedding.cpu().numpy().astype(np.float64)  # [N, E]
            cov = np.cov(e.T)
            cov += np.eye(len(cov)) * 1e-3 * np.trace(cov) / len(cov)
            self._reference = (e.mean(axis=0), np.linalg.inv(cov))
        return self._reference

    def _distance(self, embedding) -> np.ndarray:
        mean, icov = self._portrait_statistics()
        d = embedding.cpu().numpy().astype(np.float64) - mean  # [N, E]
        return np.sqrt(np.einsum("ni,ij,nj->n", d, icov, d) / len(mean))

    def _predict(self, crops: np.ndarray):
        """uint8 [N, S, S, 3] -> (landmarks [N, 5, 2] in crop pixels, distance-to-portraits [N])."""
        pred = self.model().predict(crops)
        return pred.landmarks.cpu().numpy().astype(np.float64), self._distance(pred.embedding)

    def _windows(self, h: int, w: int) -> np.ndarray:
        """Square quads [K, 4, 2] tiling the photo at each scale with a quarter-window stride."""
        quads = []
        side0 = min(h, w)
        for s in self.scales:
            side = side0 * s
            nx = max(1, int(math.ceil((w - side) / (side / 4))) + 1)
            ny = max(1, int(math.ceil((h - side) / (side / 4))) + 1)
            for y0 in np.linspace(0, h - side, ny):
                for x0 in np.linspace(0, w - side, nx):
                    quads.append(_square_quad(x0, y0, side))
        return np.stack(quads)

    def _read(self, image: np.ndarray, quads: Sequence[np.ndarray], size: int) -> tuple[list[np.ndarray], np.ndarray]:
        """Read the face in each quad of the photo, in one batch: (landmarks in photo pixels, distance-to-portraits)."""
        pred, dist = self._predict(np.stack([_sample_quad(image, q, size) for q in quads]))
        return [crop_to_photo(p, q, size) for p, q in zip(pred, quads)], dist

    def _refine(self, image: np.ndarray, lms: list[np.ndarray], size: int) -> tuple[list[np.ndarray], np.ndarray]:
        """Re-crop every candidate along the FFHQ quad of its landmarks and read it again, ``refine_steps`` times,
        all candidates in one batch per step; degenerate candidates are dropped. -> (landmarks, distances)."""
        dist = np.full(len(lms), np.inf)
        for _ in range(self.refine_steps):
            quads = []
            for lm in lms:
                try:
                    quad = ffhq_quad_corners(lm)
                except ValueError:  # degenerate landmarks
                    continue
                if np.isfinite(quad).all():
                    quads.append(quad)
            if not quads:
                return [], np.zeros(0)
            lms, dist = self._read(image, quads, size)
        return lms, dist

    # Polishing crops: the winning quad scaled and shifted (in units of its side) around itself.
    POLISH_SCALES = (0.85, 1.0, 1.15)
    POLISH_SHIFTS = (-0.06, 0.0, 0.06)

    def _polish(self, image: np.ndarray, lm: np.ndarray, size: int) -> np.ndarray:
        """Read the found face again from 27 crops around its quad (3 scales x 3 x 3 shifts) and take the median of
        the landmarks they predict, ``polish_steps`` times. The crop's side follows the eye distance and eye-mouth
        distance, so a point error of a few percent of the side becomes a scale error 5-8 times larger; averaging
        reads from shifted and scaled crops cuts them (200 held-out photos: crop scale error median 5.0 -> 4.0 %, 90th
        percentile 15.6 -> 12.6 %, landmark error median 2.6 -> 1.9 % of the side, 189 -> 192 found; about 0.1 CPU s;
        docs/photos.md)."""
        for _ in range(self.polish_steps):
            try:
                quad = ffhq_quad_corners(lm)
            except ValueError:
                return lm
            centre, side = quad.mean(axis=0), float(np.linalg.norm(quad[1] - quad[0]))
            quads = [centre + k * (quad - centre) + np.array([dx, dy]) * side
                     for k in self.POLISH_SCALES for dx in self.POLISH_SHIFTS for dy in self.POLISH_SHIFTS]
            polished = np.median(np.stack(self._read(image, quads, size)[0]), axis=0)
            if not np.isfinite(polished).all():
                return lm
            lm = polished
        return lm

    def detect(self, image: np.ndarray) -> list[Face]:
        image = _check_rgb(image)
        size = self.model().config.input_size
        h, w = image.shape[:2]
        quads = self._windows(h, w)
        lms, dist = self._predict(np.stack([_sample_quad(image, q, size) for q in quads]))
        starts = [crop_to_photo(lms[k], quads[k], size) for k in np.argsort(dist)[: self.candidates]]
        refined, dist = self._refine(image, starts, size)
        ok = [i for i, lm in enumerate(refined) if np.isfinite(lm).all() and np.isfinite(dist[i])]
        if not ok:
            return []
        best = min(ok, key=lambda i: dist[i])
        if dist[best] > self.max_distance:
            return []
        lm, d = self._polish(image, refined[best], size), float(dist[best])
        box = (float(lm[:, 0].min()), float(lm[:, 1].min()), float(lm[:, 0].max()), float(lm[:, 1].max()))
        return [Face(box=box, landmarks=_order_lr(lm), score=float(math.exp(-max(0.0, d - 0.5))))]


def _order_lr(lm: np.ndarray) -> np.ndarray:
    """Make point 0/1 the eyes and 3/4 the mouth corners in increasing x (MTCNN's order)."""
    lm = np.asarray(lm, np.float64).copy()
    if lm[0, 0] > lm[1, 0]:
        lm[[0, 1]] = lm[[1, 0]]
    if lm[3, 0] > lm[4, 0]:
        lm[[3, 4]] = lm[[4, 3]]
    return lm


def _check_rgb(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError("expected a uint8 RGB image [H, W, 3] (use load_image to read photos), got "
                         f"{getattr(image, 'dtype', type(image).__name__)} {getattr(image, 'shape', '')}")
    return image


def _read_model_card(source) -> dict:
    """The JSON config ("model card") of a native checkpoint, or {}."""
    if source is None:
        return {}
    path = Path(os.fspath(source))
    try:
        if path.is_dir() and (path / "config.json").is_file():
            return json.loads((path / "config.json").read_text())
        if path.is_file() and path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
            if "config" in meta:
                return json.loads(meta["config"])
            if (path.parent / "config.json").is_file():  # a native checkpoint's state file next to its card
                return json.loads((path.parent / "config.json").read_text())
            return {}
    except (OSError, ValueError):
        return {}
    return {}


def landmarker_name_for(source=None, G=None, name: str | None = None) -> str:
    """Which face finder suits a generator: an explicit ``name`` ('mtcnn' | 'toon'); else the model card's
    ``landmarker`` field (or a ``dataset``/``training_data``/``training.data`` naming toonfaces); else 'toon' for the ``demo`` source
    and ``random:toon-*`` generators; else 'mtcnn' (real photos, FFHQ-family)."""
    if name is not None:
        if name not in LANDMARKERS:
            raise ValueError(f"unknown landmarker {name!r}; choose one of {LANDMARKERS}")
        return name
    card = _read_model_card(source)
    if source is not None and not card:
        try:
            from editor.checkpoints import DEMO_DIR

            if os.fspath(source) == "demo":
                card = _read_model_card(DEMO_DIR) or {"landmarker": "toon"}
        except ImportError:
            pass
    if card.get("landmarker") in LANDMARKERS:
        return card["landmarker"]
    training = card.get("training") if isinstance(card.get("training"), dict) else {}
    data = str(card.get("dataset", "")) + str(card.get("training_data", "")) + str(training.get("data", ""))
    if "toon" in data.lower():
        return "toon"
    text = os.fspath(source) if source is not None else ""
    if text == "demo" or text.startswith("random:toon"):
        return "toon"
    return "mtcnn"


def landmarker_for(source=None, G=None, name: str | None = None, device="cpu") -> Landmarker:
    """A face finder for a generator source (see ``landmarker_name_for``)."""
    chosen = landmarker_name_for(source, G, name)
    return ToonLandmarker(device=device) if chosen == "toon" else MTCNNLandmarker(device=device)


# ----------------------------------------------------------------------------------------------------------------
# The FFHQ crop rule


def ffhq_quad(landmarks: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """``(centre [2], side, x [2])`` of the FFHQ crop for five landmarks ``[5, 2]`` (only eyes and mouth corners
    are used). ``x`` is the half-side vector pointing to the crop's right; the crop's down vector is ``x`` rotated
    90 degrees clockwise on screen."""
    lm = np.asarray(landmarks, np.float64)
    if lm.shape != (5, 2) or not np.isfinite(lm).all():
        raise ValueError(f"landmarks must be finite [5, 2] (x, y), got shape {lm.shape}")
    eye_avg = (lm[0] + lm[1]) * 0.5
    eye_to_eye = lm[1] - lm[0]
    mouth_avg = (lm[3] + lm[4]) * 0.5
    eye_to_mouth = mouth_avg - eye_avg
    x = eye_to_eye - np.array([-eye_to_mouth[1], eye_to_mouth[0]])  # eye_to_mouth rotated by 90 degrees
    norm = np.hypot(*x)
    if norm < 1e-9:
        raise ValueError("degenerate landmarks: eyes and mouth coincide")
    x = x / norm * max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    centre = eye_avg + eye_to_mouth * 0.1
    return centre, float(2.0 * np.hypot(*x)), x


def ffhq_quad_corners(landmarks: np.ndarray) -> np.ndarray:
    """The FFHQ quad ``[4, 2]``: top-left, bottom-left, bottom-right, top-right."""
    c, _, x = ffhq_quad(landmarks)
    y = np.array([-x[1], x[0]])
    return np.stack([c - x - y, c - x + y, c + x + y, c + x - y])


def _square_quad(x0: float, y0: float, side: float) -> np.ndarray:
    return np.array([[x0, y0], [x0, y0 + side], [x0 + side, y0 + side], [x0 + side, y0]], np.float64)


def crop_to_photo(points: np.ndarray, quad: np.ndarray, size: int) -> np.ndarray:
    """Map points ``[..., 2]`` from an aligned crop of side ``size`` to photo coordinates through its quad."""
    p = np.asarray(points, np.float64) / size
    q = np.asarray(quad, np.float64)
    return q[0] + p[..., :1] * (q[3] - q[0]) + p[..., 1:2] * (q[1] - q[0])


def photo_to_crop(points: np.ndarray, quad: np.ndarray, size: int) -> np.ndarray:
    """Inverse of ``crop_to_photo``: photo points ``[..., 2]`` -> aligned-crop pixels."""
    q = np.asarray(quad, np.float64)
    basis = np.stack([q[3] - q[0], q[1] - q[0]], axis=1)  # [2, 2] columns: crop x and y axes in photo units
    d = np.asarray(points, np.float64) - q[0]
    return np.linalg.solve(basis, d.reshape(-1, 2).T).T.reshape(d.shape) * size


def _affine_coeffs(quad: np.ndarray, size: float) -> tuple[float, ...]:
    """PIL AFFINE data mapping output pixel (u, v) of a ``size`` square to the photo point on ``quad``."""
    q = np.asarray(quad, np.float64)
    ex = (q[3] - q[0]) / size
    ey = (q[1] - q[0]) / size
    return (ex[0], ey[0], q[0][0], ex[1], ey[1], q[0][1])


def _sample_quad(image: np.ndarray, quad: np.ndarray, size: int) -> np.ndarray:
    """Cheap bilinear crop of ``quad`` to ``size`` (used by the face search; edges filled with the edge colour)."""
    from PIL import Image

    side = np.hypot(*(quad[3] - quad[0]))
    k = max(1, min(4, int(side / size)))
    im = Image.fromarray(image).transform((size * k, size * k), Image.Transform.AFFINE, _affine_coeffs(quad, size * k),
                                          resample=Image.Resampling.BILINEAR, fillcolor=_edge_colour(image))
    if k > 1:
        im = im.resize((size, size), Image.Resampling.BOX)
    return np.asarray(im)


def _edge_colour(image: np.ndarray) -> tuple[int, int, int]:
    edge = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    return tuple(int(v) for v in np.median(edge, axis=0))


@dataclass(frozen=True)
class AlignedFace:
    """An FFHQ-aligned crop and how to get back to the photo."""

    image: np.ndarray  # uint8 [S, S, 3]
    quad: np.ndarray  # float64 [4, 2]: the crop's corners in photo coordinates (TL, BL, BR, TR)
    landmarks: np.ndarray  # float64 [5, 2]: the landmarks used, in photo coordinates
    photo_size: tuple[int, int]  # (width, height) of the photo the quad refers to
    face: Face | None = None  # the detection, when a landmarker was used
    num_faces: int = 1  # faces found in the photo (the largest was aligned)
    notices: tuple[str, ...] = field(default_factory=tuple)  # things the user should know (several faces, ...)

    @property
    def size(self) -> int:
        return int(self.image.shape[0])

    def landmarks_in_crop(self) -> np.ndarray:
        """The landmarks in aligned-crop pixels ``[5, 2]``."""
        return photo_to_crop(self.landmarks, self.quad, self.size)


def align_face(image: np.ndarray, landmarks: np.ndarray, output_size: int = 1024, *, transform_size: int | None = None,
               enable_padding: bool = True, min_face_size: float | None = None) -> AlignedFace:
    """FFHQ-align one face of ``image`` (uint8 ``[H, W, 3]``) given its five ``landmarks`` ``[5, 2]``.

    ``transform_size``: side of the supersampled intermediate crop (default ``min(4 * output_size, 4096)``), filtered
    down to ``output_size`` with a Lanczos filter. ``min_face_size``: smallest quad side in photo pixels accepted
    (default ``max(24, output_size / 8)``: upscaling more than 8x gives a blurry crop); smaller faces raise
    ``FaceTooSmallError``.
    """
    from PIL import Image
    from scipy.ndimage import gaussian_filter

    image = _check_rgb(image)
    if not isinstance(output_size, (int, np.integer)) or not 8 <= output_size <= 4096:
        raise ValueError(f"output_size must be an int in [8, 4096], got {output_size!r}")
    output_size = int(output_size)
    transform_size = int(transform_size or min(4 * output_size, 4096))
    if transform_size < output_size:
        raise ValueError(f"transform_size ({transform_size}) must be >= output_size ({output_size})")
    min_face = float(min_face_size if min_face_size is not None else max(24.0, output_size / 8))
    landmarks = np.asarray(landmarks, np.float64)
    centre, qsize, x = ffhq_quad(landmarks)
    quad_photo = ffhq_quad_corners(landmarks)
    if qsize < min_face:
        raise FaceTooSmallError(
            f"the face is too small: its crop is {qsize:.0f} px wide, at least {min_face:.0f} px is needed for a "
            f"{output_size} px result. Use a larger or closer photo of the face.")
    h0, w0 = image.shape[:2]
    if not (0 <= centre[0] <= w0 and 0 <= centre[1] <= h0) or qsize > 4 * max(h0, w0):
        raise AlignError(f"the landmarks do not describe a face inside this {w0}x{h0} image (crop centre "
                         f"({centre[0]:.0f}, {centre[1]:.0f}), side {qsize:.0f} px)")
    quad = quad_photo.copy()
    img = Image.fromarray(image)

    # shrink very large photos first (the crop is filtered down anyway)
    shrink = int(math.floor(qsize / output_size * 0.5))
    if shrink > 1:
        rsize = (max(1, int(round(w0 / shrink))), max(1, int(round(h0 / shrink))))
        sx, sy = rsize[0] / w0, rsize[1] / h0
        img = img.resize(rsize, Image.Resampling.LANCZOS)
        quad = quad * np.array([sx, sy])
        qsize = qsize * (sx + sy) / 2

    # crop with a border
    border = max(int(round(qsize * 0.1)), 3)
    lo = np.floor(quad.min(axis=0)).astype(int)
    hi = np.ceil(quad.max(axis=0)).astype(int)
    w, h = img.size
    crop = (max(lo[0] - border, 0), max(lo[1] - border, 0), min(hi[0] + border, w), min(hi[1] + border, h))
    if crop[2] - crop[0] < w or crop[3] - crop[1] < h:
        img = img.crop(crop)
        quad = quad - np.array(crop[:2], np.float64)

    # reflect-pad beyond the photo, blurred and blended toward the median colour
    w, h = img.size
    lo = np.floor(quad.min(axis=0)).astype(int)
    hi = np.ceil(quad.max(axis=0)).astype(int)
    pad = np.array([max(-lo[0] + border, 0), max(-lo[1] + border, 0), max(hi[0] - w + border, 0),
                    max(hi[1] - h + border, 0)])
    if enable_padding and pad.max() > border - 4:
        pad = np.maximum(pad, int(round(qsize * 0.3)))
        arr = np.asarray(img, np.float32)
        # reflect padding needs pad < side: repeat the reflection for very off-edge faces
        arr = _reflect_pad(arr, pad)
        ph, pw = arr.shape[:2]
        yy, xx = np.ogrid[:ph, :pw]
        pads = np.maximum(pad, 1).astype(np.float32)
        mask = np.maximum(1.0 - np.minimum(xx / pads[0], (pw - 1 - xx) / pads[2]),
                          1.0 - np.minimum(yy / pads[1], (ph - 1 - yy) / pads[3]))[..., None]  # [ph, pw, 1]
        blur = qsize * 0.02
        arr += (gaussian_filter(arr, [blur, blur, 0]) - arr) * np.clip(mask * 3.0 + 1.0, 0.0, 1.0)
        arr += (np.median(arr, axis=(0, 1)) - arr) * np.clip(mask, 0.0, 1.0)
        img = Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8))
        quad = quad + pad[:2]

    # transform (supersampled) and filter down to the output size
    img = img.transform((transform_size, transform_size), Image.Transform.AFFINE,
                        _affine_coeffs(quad, transform_size), resample=Image.Resampling.BILINEAR)
    if transform_size != output_size:
        img = img.resize((output_size, output_size), Image.Resampling.LANCZOS)
    return AlignedFace(image=np.asarray(img), quad=quad_photo, landmarks=landmarks, photo_size=(w0, h0))


def _reflect_pad(arr: np.ndarray, pad: np.ndarray) -> np.ndarray:
    """np.pad 'reflect' on (left, top, right, bottom) that also works when a pad exceeds the image side."""
    out = arr
    remaining = pad.astype(int).copy()
    while remaining.any():
        h, w = out.shape[:2]
        step = np.minimum(remaining, [w - 1, h - 1, w - 1, h - 1])
        step = np.maximum(step, 0)
        if not step.any():  # a 1-pixel image cannot be reflected: repeat the edge
            out = np.pad(out, ((remaining[1], remaining[3]), (remaining[0], remaining[2]), (0, 0)), mode="edge")
            break
        out = np.pad(out, ((step[1], step[3]), (step[0], step[2]), (0, 0)), mode="reflect")
        remaining = remaining - step
    return out


def align_photo(source, landmarker: Landmarker, output_size: int = 1024, **kwargs) -> AlignedFace:
    """Read a photo, find faces, align the largest. ``source``: anything ``load_image`` takes. Raises
    ``ImageError``, ``NoFaceError``, ``FaceTooSmallError`` or ``LandmarkerUnavailableError`` with a user-facing
    message; the result's ``notices`` say when several faces were found."""
    image = load_image(source)
    faces = landmarker.detect(image)
    if not faces:
        raise NoFaceError(f"no face found in {_describe(source)} (by the {landmarker.name} face finder). Use a photo "
                          "where the face is clearly visible, roughly frontal, and at least ~40 px wide.")
    face = faces[0]
    notices = []
    if len(faces) > 1:
        notices.append(f"{len(faces)} faces found; the largest was used")
    aligned = align_face(image, face.landmarks, output_size, **kwargs)
    return AlignedFace(image=aligned.image, quad=aligned.quad, landmarks=aligned.landmarks,
                       photo_size=aligned.photo_size, face=face, num_faces=len(faces), notices=tuple(notices))


# ----------------------------------------------------------------------------------------------------------------
# Paste-back


PASTE_REGIONS = ("head", "crop")


def head_mask(landmarks: np.ndarray, size: int, feather: float = 0.08) -> np.ndarray:
    """A soft ellipse over the head (face, hair above it, chin) of an aligned crop: float32 ``[size, size]`` in
    [0, 1]. ``landmarks``: the crop's 5 points (``AlignedFace.landmarks_in_crop()``). Measured on FFHQ-rule crops of
    toon photos: eyes about 0.47, mouth about 0.74 of the side down, eye-to-mouth distance ``d`` about 0.27 of the
    side; the ellipse is centred 0.2 ``d`` below the eyes with half-axes 1.35 ``d`` across and 1.7 ``d`` down, so
    hair and beard lie inside and the crop's corners (the photo's room) outside; it falls to 0 over ``feather`` of
    the side."""
    from scipy.ndimage import gaussian_filter

    lm = np.asarray(landmarks, np.float64)
    eyes, mouth = lm[:2].mean(axis=0), lm[3:5].mean(axis=0)
    d = float(np.linalg.norm(mouth - eyes))
    if not np.isfinite(d) or d <= 0:
        raise ValueError("degenerate landmarks: eyes and mouth coincide")
    down = (mouth - eyes) / d
    across = np.array([down[1], -down[0]])
    centre = eyes + 0.2 * d * down
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    rel = np.stack([xs - centre[0], ys - centre[1]], axis=-1)
    r2 = (rel @ across / (1.35 * d)) ** 2 + (rel @ down / (1.7 * d)) ** 2
    m = (r2 <= 1.0).astype(np.float32)
    if feather > 0:
        m = gaussian_filter(m, sigma=size * feather / 4)
    return np.clip(m, 0.0, 1.0)


def paste_back(photo: np.ndarray, aligned: AlignedFace, edited: np.ndarray, feather: float = 0.08,
               inset: float = 0.02, reference: np.ndarray | None = None, region: str = "head") -> np.ndarray:
    """Put an edited crop back into the photo it was aligned from.

    ``photo``: uint8 ``[H, W, 3]`` (the one ``aligned`` came from); ``edited``: uint8 ``[S', S', 3]`` (any side; the
    generator output for the aligned crop). The crop is warped through the inverse of the alignment transform and
    blended with a soft mask: ``region='head'`` (default) an ellipse over the head from the aligned landmarks
    (``head_mask``), so the photo's room around the head stays its own; ``'crop'`` the whole quad, falling to 0 over
    ``feather`` (fraction of the quad side) at its edges, starting ``inset`` inside it. Returns a new uint8
    ``[H, W, 3]``.

    ``reference``: the generator's *unedited* reconstruction of the crop (same side as ``edited``). With it, only the
    edit is pasted: the photo gets ``mask * (edited - reference)`` added, so every pixel the edit leaves alone stays
    the photo's own (its sharpness, colours and background: no seam, no blur, and no colour shift to match), and
    an edit that changes nothing returns the photo unchanged. Without it the generated crop replaces the photo inside
    the mask. With it and ``region='head'``, an edit that reaches past the ellipse (hair grown to the shoulders, a
    beard below the chin) is not cut off: where it changes the crop by more than ``EDIT_OUTSIDE_HEAD_LEVELS`` (after
    a light blur), outside the ellipse, the edited pixels replace the photo's (adding the change there would tint
    the new hair with the room behind it); an edit's faint change of the generated backdrop stays below that and
    leaves the room alone.
    """
    from PIL import Image
    from scipy.ndimage import gaussian_filter

    photo = _check_rgb(photo)
    edited = _check_rgb(edited)
    h, w = photo.shape[:2]
    if (w, h) != tuple(aligned.photo_size):
        raise ValueError(f"photo is {w}x{h} but the alignment was made on a {aligned.photo_size[0]}x"
                         f"{aligned.photo_size[1]} image")
    if edited.shape[0] != edited.shape[1]:
        raise ValueError(f"edited crop must be square, got {edited.shape[1]}x{edited.shape[0]}")
    if reference is not None and _check_rgb(reference).shape != edited.shape:
        raise ValueError(f"reference {reference.shape} and edited crop {edited.shape} differ in size")
    if region not in PASTE_REGIONS:
        raise ValueError(f"region must be one of {PASTE_REGIONS}, got {region!r}")
    if not 0 <= feather < 0.5 or not 0 <= inset < 0.5:
        raise ValueError(f"feather and inset must be in [0, 0.5), got {feather}, {inset}")
    s = edited.shape[0]
    quad = aligned.quad
    # region of the photo the quad touches
    x0, y0 = np.floor(quad.min(axis=0)).astype(int)
    x1, y1 = np.ceil(quad.max(axis=0)).astype(int)
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 <= x0 or y1 <= y0:
        return photo.copy()
    # mask in crop space: 1 inside, smooth fall-off at the edges
    if region == "head":
        m = head_mask(aligned.landmarks_in_crop() * (s / aligned.size), s, feather)
    else:
        m = np.zeros((s, s), np.float32)
        lo = int(round(s * (inset + feather / 2)))
        m[lo:s - lo, lo:s - lo] = 1.0
        if feather > 0:
            m = gaussian_filter(m, sigma=s * feather / 4)
        m = np.clip(m, 0.0, 1.0)
    # photo pixel (u, v) in the region -> crop coordinate: inverse of crop_to_photo
    q = quad - np.array([x0, y0], np.float64)
    basis = np.stack([q[3] - q[0], q[1] - q[0]], axis=1) / s  # photo units per crop pixel
    inv = np.linalg.inv(basis)
    off = -inv @ q[0]
    coeffs = (inv[0, 0], inv[0, 1], off[0], inv[1, 0], inv[1, 1], off[1])
    size = (x1 - x0, y1 - y0)
    if reference is None:
        warped = np.asarray(Image.fromarray(edited).transform(size, Image.Transform.AFFINE, coeffs,
                                                               resample=Image.Resampling.BICUBIC), np.float32)
    else:  # warp the edit itself (signed, float): one band per channel through PIL's float mode
        delta = edited.astype(np.float32) - reference.astype(np.float32)  # [S, S, 3]
        moved = np.stack([np.asarray(Image.fromarray(delta[..., c], mode="F").transform(
            size, Image.Transform.AFFINE, coeffs, resample=Image.Resampling.BICUBIC)) for c in range(3)], axis=-1)
    def warp_mask(a: np.ndarray) -> np.ndarray:
        a = Image.fromarray(a).transform(size, Image.Transform.AFFINE, coeffs, resample=Image.Resampling.BILINEAR)
        return np.clip(np.asarray(a, np.float32), 0.0, 1.0)[..., None]

    mask = warp_mask(m)
    out = photo.copy()
    crop = out[y0:y1, x0:x1].astype(np.float32)
    change = (warped - crop) if reference is None else moved
    blended = crop + change * mask
    if reference is not None and region == "head":
        beyond = _edit_beyond(edited, reference, m, feather)
        if beyond.any():
            replace = warp_mask(beyond)
            whole = np.asarray(Image.fromarray(edited).transform(size, Image.Transform.AFFINE, coeffs,
                                                                 resample=Image.Resampling.BICUBIC), np.float32)
            blended = blended * (1.0 - replace) + whole * replace
    out[y0:y1, x0:x1] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    return out


EDIT_OUTSIDE_HEAD_LEVELS = (12.0, 24.0)  # mean |change| per pixel (of 255) where pasting outside the head starts / is full


def _edit_beyond(edited: np.ndarray, reference: np.ndarray, head: np.ndarray, feather: float) -> np.ndarray:
    """Where an edit changes the crop strongly outside the head ellipse ``head``: float32 ``[S, S]`` in [0, 1]."""
    from scipy.ndimage import gaussian_filter

    s = edited.shape[0]
    diff = np.abs(edited.astype(np.float32) - reference.astype(np.float32)).mean(axis=-1)
    diff = gaussian_filter(diff, sigma=max(0.01 * s, 0.5))
    lo, hi = EDIT_OUTSIDE_HEAD_LEVELS
    strong = np.clip((diff - lo) / (hi - lo), 0.0, 1.0)
    if feather > 0 and strong.any():
        strong = np.clip(gaussian_filter(strong, sigma=s * feather / 8), 0.0, 1.0)
    return (strong * (1.0 - head)).astype(np.float32)
