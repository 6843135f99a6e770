"""Labellers: images in, per-attribute scores out, behind one protocol.

    labeler.attributes                      names it scores
    labeler(images, ids) -> {name: [N]}     float scores, higher = more of the attribute; NaN = no label
    labeler.label_with_embedding(images, ids) -> (scores, [N, E] embedding)   optional (CLIP, attribute model):
                                            the sample cache keeps the embeddings

``images`` is a float tensor [N, 3, H, W] in about [-1, 1] (what the generator's synthesis returns) and ``ids`` the
samples' ids (seeds), which only the manual labeller reads. Scores are probabilities or logits for binary
attributes and values for continuous ones; direction fitting thresholds or ranks them (see editor.directions).

Labellers here:
- `AttributeModelLabeler`: the demo world's attribute model (editor.attributes) or any predictor of the same shape;
- `ClipLabeler`: OpenCLIP zero-shot, one positive/negative prompt pair per attribute; it can also return the image
  embeddings so new prompts can be scored later without rendering again;
- `ManualLabeler`: labels a person wrote down, from CSV or JSONL keyed by sample id;
- `TruthLabeler`: the exact attributes of T(z) for a generator distilled from the toon world (the bundled demo): ids
  are seeds, z is recomputed from them (valid for samples drawn without truncation, psi = 1);
- `ImageStatsLabeler`: simple image statistics (brightness, redness, left/right balance...). Meaningless as face
  attributes but defined on any generator, so the whole pipeline can be exercised on random weights.

`make_labeler(spec)` builds one from a CLI string.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np
import torch

__all__ = [
    "Labeler",
    "AttributeModelLabeler",
    "ClipLabeler",
    "ManualLabeler",
    "TruthLabeler",
    "ImageStatsLabeler",
    "DEFAULT_CLIP_PROMPTS",
    "make_labeler",
    "check_images",
]


@runtime_checkable
class Labeler(Protocol):
    """Anything with a name, attribute names and a call images, ids -> {attribute: scores [N]}."""

    name: str
    attributes: tuple[str, ...]

    def __call__(self, images: torch.Tensor, ids: Sequence[int]) -> dict[str, np.ndarray]: ...


def check_images(images) -> torch.Tensor:
    """Validate a [N, 3, H, W] float image batch in about [-1, 1]; returns it as float32 on its device."""
    if not isinstance(images, torch.Tensor):
        images = torch.as_tensor(np.asarray(images))
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be a [N, 3, H, W] tensor in [-1, 1], got shape {tuple(images.shape)}")
    if not images.is_floating_point():
        raise ValueError(f"images must be floating point in [-1, 1], got dtype {images.dtype}")
    return images.to(torch.float32)


def to_uint8_hwc(images: torch.Tensor) -> np.ndarray:
    """[N, 3, H, W] in [-1, 1] -> uint8 [N, H, W, 3]."""
    x = (check_images(images).detach().cpu().clamp(-1, 1) + 1) * 127.5
    return x.round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


# ----------------------------------------------------------------------------------------------------------------------
# Image statistics: a labeller for any generator


@dataclass
class ImageStatsLabeler:
    """Scores from simple image statistics; defined on any image, so tests and benchmarks can run on random weights.

    brightness: mean intensity; redness: mean(R) − mean(G, B); left_right: mean of the right half − left half;
    top_bottom: top half − bottom half; contrast: std of intensity; centre: centre quarter − the rest.
    """

    name: str = "stats"
    attributes: tuple[str, ...] = ("brightness", "redness", "left_right", "top_bottom", "contrast", "centre")

    def __call__(self, images, ids=None) -> dict[str, np.ndarray]:
        x = check_images(images).detach().cpu().double()
        gray = x.mean(dim=1)  # [N, H, W]
        h, w = gray.shape[1:]
        centre = torch.zeros(h, w, dtype=torch.bool)
        centre[h // 4:h - h // 4, w // 4:w - w // 4] = True
        out = {
            "brightness": gray.mean(dim=(1, 2)),
            "redness": (x[:, 0] - 0.5 * (x[:, 1] + x[:, 2])).mean(dim=(1, 2)),
            "left_right": gray[:, :, w // 2:].mean(dim=(1, 2)) - gray[:, :, :w // 2].mean(dim=(1, 2)),
            "top_bottom": gray[:, :h // 2].mean(dim=(1, 2)) - gray[:, h // 2:].mean(dim=(1, 2)),
            "contrast": gray.flatten(1).std(dim=1),
            "centre": gray[:, centre].mean(dim=1) - gray[:, ~centre].mean(dim=1),
        }
        return {k: out[k].numpy() for k in self.attributes}


# ----------------------------------------------------------------------------------------------------------------------
# The demo world's attribute model


@dataclass
class AttributeModelLabeler:
    """The demo world's attribute model (editor.attributes) as a labeller, or any predictor of the same shape.

    predict(images [B, 3, H, W] in [-1, 1]) -> (scores, embedding): scores maps an attribute to [B] (binary
    probability, continuous value) or [B, C] (categorical class probabilities, reported as one attribute per class,
    "hair_color=blond"); embedding [B, E] or None (kept by the sample cache, e.g. for Fréchet distances).
    """

    predict: Callable[[torch.Tensor], tuple[Mapping[str, np.ndarray], np.ndarray | None]]
    attributes: tuple[str, ...]
    name: str = "toon-attributes"
    batch_size: int = 256

    def label_with_embedding(self, images, ids=None) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
        x = check_images(images)
        parts: dict[str, list[np.ndarray]] = {a: [] for a in self.attributes}
        embs = []
        for i in range(0, x.shape[0], self.batch_size):
            scores, emb = self.predict(x[i:i + self.batch_size])
            flat = _flatten_scores(scores)
            for a in self.attributes:
                if a not in flat:
                    raise ValueError(f"the attribute model returned no {a!r}; it returned {sorted(flat)}")
                parts[a].append(flat[a])
            if emb is not None:
                embs.append(np.asarray(emb, dtype=np.float32))
        return {a: np.concatenate(v) for a, v in parts.items()}, (np.concatenate(embs) if embs else None)

    def __call__(self, images, ids=None) -> dict[str, np.ndarray]:
        return self.label_with_embedding(images, ids)[0]

    @classmethod
    def from_model(cls, model, name: str = "toon-attributes") -> "AttributeModelLabeler":
        """Wrap an `editor.attributes.AttributeNet` (its `predict` returns scores, landmarks and an embedding)."""
        from editor.toonfaces import ATTRIBUTES

        names = _attribute_names()

        def predict(images: torch.Tensor):
            pred = model.predict(images)
            scores = {k: v.detach().cpu().numpy() for k, v in pred.scores.items()}
            classes = {s.name: s.classes for s in ATTRIBUTES if s.kind == "categorical"}
            out = {}
            for k, v in scores.items():
                if k in classes:
                    out.update({f"{k}={c}": v[:, j] for j, c in enumerate(classes[k])})
                else:
                    out[k] = v
            return out, pred.embedding.detach().cpu().numpy()

        return cls(predict=predict, attributes=tuple(names), name=name)

    @classmethod
    def from_checkpoint(cls, path: str | None = None, device: str = "cpu") -> "AttributeModelLabeler":
        """The trained demo-world attribute model (default: the bundled checkpoint).

        The name carries a short content hash of the checkpoint ("toon-attributes:bundled@1a2b3c4d"), so sample caches
        and banks record which weights labelled them, and a retrained checkpoint never reuses another's cached labels.
        """
        import hashlib

        from editor.attributes import DEFAULT_CHECKPOINT, load_attribute_model

        model = load_attribute_model(path or None, device=device)
        digest = hashlib.sha256(Path(path or DEFAULT_CHECKPOINT).read_bytes()).hexdigest()[:8]
        return cls.from_model(model, name=f"toon-attributes:{Path(path).name if path else 'bundled'}@{digest}")


def _flatten_scores(scores: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = {}
    for k, v in scores.items():
        v = np.asarray(v, dtype=np.float64)
        if v.ndim != 1:
            raise ValueError(f"score {k!r} must be [N] (flatten class probabilities first), got shape {v.shape}")
        out[k] = v
    return out


def _attribute_names() -> tuple[str, ...]:
    """The toon attributes as labellers report them (categoricals as one score per class, "hair_color=blond")."""
    from editor.toonfaces import ATTRIBUTES

    names: list[str] = []
    for spec in ATTRIBUTES:
        names += [f"{spec.name}={c}" for c in spec.classes] if spec.kind == "categorical" else [spec.name]
    return tuple(names)


@dataclass
class TruthLabeler:
    """Ground truth for a generator distilled from the toon world: sample id s has z = RandomState(s).randn(z_dim)
    (``samples.z_from_seeds``) and the attributes of T(z) (``editor.toonlatent.LatentWorld``). Binary attributes score
    0/1, categoricals 0/1 per class, continuous attributes their value. Only valid for untruncated samples (psi 1)."""

    z_dim: int
    world_seed: int = 0
    strength: float = 0.0  # T's mixing strength (the checkpoint's training.mixing_strength)
    attributes: tuple[str, ...] = field(default_factory=_attribute_names)
    needs_images = False  # labels come from the ids alone: the sample cache skips synthesis for it

    def __post_init__(self):
        from editor.toonlatent import LatentWorld

        self.world = LatentWorld(self.z_dim, self.world_seed, self.strength)
        self.name = f"toon-truth:world{self.world_seed}-c{self.strength:g}-z{self.z_dim}"

    def __call__(self, images=None, ids: Sequence[int] = ()) -> dict[str, np.ndarray]:
        from editor.samples import z_from_seeds
        from editor.toonfaces import ATTRIBUTES

        if len(ids) == 0:
            raise ValueError("the truth labeller needs the samples' seeds (ids)")
        truth = self.world.attributes(z_from_seeds(ids, self.z_dim))
        out: dict[str, np.ndarray] = {}
        for spec in ATTRIBUTES:
            values = np.array([t[spec.name] for t in truth], dtype=np.float64)
            if spec.kind == "categorical":
                out.update({f"{spec.name}={c}": (values == j).astype(np.float64) for j, c in enumerate(spec.classes)})
            else:
                out[spec.name] = values
        return out

    @classmethod
    def for_model(cls, path=None) -> "TruthLabeler":
        """The truth of a distilled native checkpoint (default: the bundled demo), read from its config.json."""
        from editor.checkpoints import DEMO_DIR
        from editor.toonlatent import LatentWorld

        path = Path(path or DEMO_DIR)
        world = LatentWorld.for_model(path)
        if world is None:
            raise ValueError(f"{path} was not distilled from the toon world: it has no truth labels")
        return cls(z_dim=world.z_dim, world_seed=world.seed, strength=world.strength)


# ----------------------------------------------------------------------------------------------------------------------
# OpenCLIP zero-shot

DEFAULT_CLIP_PROMPTS: dict[str, tuple[str, str]] = {
    "smiling": ("a photo of a smiling face", "a photo of a face with a neutral expression"),
    "eyeglasses": ("a photo of a person wearing glasses", "a photo of a person without glasses"),
    "old": ("a photo of an old person", "a photo of a young person"),
    "beard": ("a photo of a man with a beard", "a photo of a clean-shaven face"),
    "bald": ("a photo of a bald person", "a photo of a person with hair"),
    "long_hair": ("a photo of a person with long hair", "a photo of a person with short hair"),
    "lipstick": ("a photo of a person wearing lipstick", "a photo of a person without makeup"),
    "mouth_open": ("a photo of a face with an open mouth", "a photo of a face with a closed mouth"),
    "grey_hair": ("a photo of a person with grey hair", "a photo of a person with dark hair"),
}


@dataclass
class ClipLabeler:
    """Zero-shot scores from OpenCLIP: for each attribute, P(positive prompt | image) against its negative prompt.

    model: an OpenCLIP model name ('ViT-B-32') or a path to a model-config JSON (registered under its file stem);
    pretrained: an OpenCLIP pretrained tag, a local checkpoint path, or None for random weights (tests only).
    Score = softmax(logit_scale · [cos(img, pos), cos(img, neg)])[0].
    """

    prompts: Mapping[str, tuple[str, str]] = field(default_factory=lambda: dict(DEFAULT_CLIP_PROMPTS))
    model: str = "ViT-B-32"
    pretrained: str | None = "laion2b_s34b_b79k"
    device: str = "cpu"
    batch_size: int = 64
    name: str = ""
    attributes: tuple[str, ...] = ()

    def __post_init__(self):
        import open_clip

        if not self.prompts:
            raise ValueError("ClipLabeler needs at least one attribute: {name: (positive prompt, negative prompt)}")
        for a, pair in self.prompts.items():
            if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and all(isinstance(p, str) and p for p in pair)):
                raise ValueError(f"prompts[{a!r}] must be a (positive, negative) pair of non-empty strings, "
                                 f"got {pair!r}")
        model_name = self.model
        if model_name.endswith(".json"):
            path = Path(model_name)
            if not path.is_file():
                raise FileNotFoundError(f"no OpenCLIP model config at {path}")
            open_clip.add_model_config(str(path))
            model_name = path.stem
        try:
            net, _, _ = open_clip.create_model_and_transforms(model_name, pretrained=self.pretrained,
                                                              device=self.device)
        except RuntimeError as exc:
            raise ValueError(f"cannot load OpenCLIP {model_name!r} with pretrained={self.pretrained!r} ({exc}). "
                             "Weights cannot be downloaded offline: pass a local checkpoint path as pretrained, "
                             "or put the weights in the Hugging Face cache.") from None
        self._net = net.eval()
        self._scale = float(net.logit_scale.detach().exp())
        self._tokenizer = open_clip.get_tokenizer(model_name)
        cfg = getattr(net.visual, "preprocess_cfg", {}) or {}
        size = cfg.get("size", getattr(net.visual, "image_size", 224))
        self._size = tuple(size) if isinstance(size, (tuple, list)) else (int(size), int(size))
        self._mean = torch.tensor(cfg.get("mean", (0.48145466, 0.4578275, 0.40821073))).view(1, 3, 1, 1)
        self._std = torch.tensor(cfg.get("std", (0.26862954, 0.26130258, 0.27577711))).view(1, 3, 1, 1)
        self.attributes = tuple(self.prompts)
        self.name = self.name or f"clip:{model_name}:{self.pretrained}"
        self._text = self.encode_text([p for pair in self.prompts.values() for p in pair])  # [2A, E]

    @torch.no_grad()
    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        """Unit text embeddings [T, E]."""
        tokens = self._tokenizer(list(texts)).to(self.device)
        t = _encode_text_prefix(self._net, tokens)
        if t is None:
            t = self._net.encode_text(tokens)
        return torch.nn.functional.normalize(t.float(), dim=-1).cpu().numpy()

    @torch.no_grad()
    def embed(self, images) -> np.ndarray:
        """Unit image embeddings [N, E] for images [N, 3, H, W] in [-1, 1] (resized bicubically, CLIP-normalised)."""
        x = check_images(images)
        out = []
        for i in range(0, x.shape[0], self.batch_size):
            b = (x[i:i + self.batch_size].to(self.device).clamp(-1, 1) + 1) / 2  # [B, 3, H, W] in [0, 1]
            b = torch.nn.functional.interpolate(b, size=self._size, mode="bicubic", align_corners=False,
                                                antialias=True)
            b = (b - self._mean.to(b.device)) / self._std.to(b.device)
            out.append(torch.nn.functional.normalize(self._net.encode_image(b).float(), dim=-1).cpu())
        return torch.cat(out).numpy()

    def scores_from_embeddings(self, emb: np.ndarray, prompts: Mapping[str, tuple[str, str]] | None = None
                               ) -> dict[str, np.ndarray]:
        """Scores from cached image embeddings [N, E]: new prompt pairs need no rendering."""
        emb = np.asarray(emb, dtype=np.float64)
        if emb.ndim != 2:
            raise ValueError(f"embeddings must be [N, E], got shape {emb.shape}")
        if prompts is None:
            text, names = self._text, list(self.prompts)
        else:
            text, names = self.encode_text([p for pair in prompts.values() for p in pair]), list(prompts)
        if emb.shape[1] != text.shape[1]:
            raise ValueError(f"embeddings have E={emb.shape[1]} but this CLIP model has E={text.shape[1]}")
        sims = self._scale * emb @ text.T  # [N, 2A]
        logit = sims[:, 0::2] - sims[:, 1::2]  # [N, A]
        prob = 1.0 / (1.0 + np.exp(-logit))
        return {a: prob[:, i] for i, a in enumerate(names)}

    def label_with_embedding(self, images, ids=None) -> tuple[dict[str, np.ndarray], np.ndarray]:
        emb = self.embed(images)
        return self.scores_from_embeddings(emb), emb

    def __call__(self, images, ids=None) -> dict[str, np.ndarray]:
        return self.scores_from_embeddings(self.embed(images))


def _encode_text_prefix(net, tokens: torch.Tensor) -> torch.Tensor | None:
    """OpenCLIP's text tower run on the tokens up to the longest prompt's end instead of the full context (77).

    Exact for the standard CLIP text tower: its attention is causal and the embedding is read at the end-of-text token
    (the largest id, 'argmax' pooling), so the padding after it changes nothing. About 5-8x faster for short
    prompts on CPU. Returns None (use `net.encode_text`) for any other tower layout.
    """
    from open_clip.transformer import text_global_pool

    mask = getattr(net, "attn_mask", None)
    if (getattr(net, "text_pool_type", None) != "argmax" or mask is None or not hasattr(net, "token_embedding")
            or tokens.ndim != 2):
        return None
    length = int(tokens.argmax(dim=-1).max()) + 1  # through the last end-of-text token
    t = tokens[:, :length]
    cast = net.transformer.get_cast_dtype()
    x = net.token_embedding(t).to(cast) + net.positional_embedding[:length].to(cast)  # [T, L, width]
    x = net.ln_final(net.transformer(x, attn_mask=mask[:length, :length]))
    x = text_global_pool(x, t, "argmax")  # [T, width]
    proj = net.text_projection
    if proj is not None:
        x = proj(x) if isinstance(proj, torch.nn.Linear) else x @ proj
    return x


# ----------------------------------------------------------------------------------------------------------------------
# Manual labels


@dataclass
class ManualLabeler:
    """Labels a person wrote down, keyed by sample id (the seed).

    Files: CSV with a header ``id,<attr1>,<attr2>,...`` (one row per sample; empty cell = unlabelled), or JSONL with
    one object per line ``{"id": 12, "smiling": 1, ...}``. Values are numbers (0/1 for yes/no). Samples not in the
    file get NaN, which direction fitting skips.
    """

    labels: dict[str, dict[int, float]]  # attribute -> {id: value}
    name: str = "manual"
    attributes: tuple[str, ...] = ()
    needs_images = False  # labels come from the ids alone

    def __post_init__(self):
        if not self.labels:
            raise ValueError("manual labels are empty")
        self.attributes = tuple(self.labels)

    @classmethod
    def from_file(cls, path: str | Path) -> "ManualLabeler":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no label file at {path}")
        labels: dict[str, dict[int, float]] = {}

        def add(row: Mapping, where: str):
            if "id" not in row:
                raise ValueError(f"{where}: every record needs an 'id' (the sample's seed)")
            try:
                sid = int(row["id"])
            except (TypeError, ValueError):
                raise ValueError(f"{where}: id {row['id']!r} is not an integer") from None
            for k, v in row.items():
                if k == "id" or v is None or v == "":
                    continue
                try:
                    value = float(v)
                except (TypeError, ValueError):
                    raise ValueError(f"{where}: label {k}={v!r} is not a number") from None
                if not math.isfinite(value):
                    raise ValueError(f"{where}: label {k}={v!r} is not finite")
                labels.setdefault(str(k), {})[sid] = value

        if path.suffix.lower() == ".csv":
            with path.open(newline="") as f:
                for i, row in enumerate(csv.DictReader(f), start=2):
                    clean = {k.strip(): (v.strip() if isinstance(v, str) else v) for k, v in row.items() if k}
                    add(clean, f"{path}:{i}")
        elif path.suffix.lower() in (".jsonl", ".ndjson"):
            with path.open() as f:
                for i, line in enumerate(f, start=1):
                    if line.strip():
                        try:
                            rec = json.loads(line)
                        except json.JSONDecodeError as exc:
                            raise ValueError(f"{path}:{i}: not JSON ({exc.msg})") from None
                        if not isinstance(rec, dict):
                            raise ValueError(f"{path}:{i}: expected an object like {{\"id\": 3, \"smiling\": 1}}")
                        add(rec, f"{path}:{i}")
        else:
            raise ValueError(f"manual labels must be a .csv or .jsonl file, got {path.name!r}")
        return cls(labels=labels, name=f"manual:{path.name}")

    def __call__(self, images=None, ids: Sequence[int] = ()) -> dict[str, np.ndarray]:
        ids = [int(i) for i in ids]
        return {a: np.array([self.labels[a].get(i, np.nan) for i in ids], dtype=np.float64) for a in self.attributes}


# ----------------------------------------------------------------------------------------------------------------------


def make_labeler(spec: str, device: str = "cpu", model=None) -> Labeler:
    """Build a labeller from a CLI string.

    'stats'                              image statistics (any generator)
    'toon' or 'toon:CHECKPOINT'          the demo world's attribute model
    'clip' / 'clip:MODEL' / 'clip:MODEL:PRETRAINED'   OpenCLIP zero-shot with the default prompt pairs
                                         (MODEL may be a config .json; PRETRAINED 'none' = random weights)
    'manual:FILE.csv' / 'manual:FILE.jsonl'
    'truth' / 'truth:CHECKPOINT_DIR'     exact attributes of T(z) for a generator distilled from the toon world
                                         (default: ``model``, the generator's checkpoint folder, else the demo)
    """
    kind, _, rest = str(spec).partition(":")
    if kind == "stats":
        return ImageStatsLabeler()
    if kind == "toon":
        return AttributeModelLabeler.from_checkpoint(rest or None, device=device)
    if kind == "clip":
        model, _, pretrained = rest.partition(":")
        model = model or "ViT-B-32"
        if not pretrained:
            if model.endswith(".json"):
                pretrained = "none"
            elif model == "ViT-B-32":
                pretrained = "laion2b_s34b_b79k"
            else:
                raise ValueError(f"say which weights to use: --labeler clip:{model}:PRETRAINED_TAG_OR_PATH")
        pre = None if pretrained.lower() == "none" else pretrained
        return ClipLabeler(model=model, pretrained=pre, device=device)
    if kind == "truth":
        return TruthLabeler.for_model(rest or model)
    if kind == "manual":
        if not rest:
            raise ValueError("manual labels need a file: --labeler manual:labels.csv")
        return ManualLabeler.from_file(rest)
    raise ValueError(f"unknown labeller {spec!r}; expected stats, toon[:CKPT], truth[:CKPT_DIR], "
                     "clip[:MODEL[:PRETRAINED]] or manual:FILE")
