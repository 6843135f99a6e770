"""New sliders beyond the bank: from words (OpenCLIP) or from a few clicks (active learning).

A slider from words
    The sample set's CLIP image embeddings are computed once per generator (``python -m editor sample --labeler
    clip:...`` keeps them). A new attribute is a prompt pair (or one prompt against a neutral one):
    text embeddings -> one score per sample (cosine with the positive prompt minus cosine with the negative) ->
    the confident top / bottom share -> a linear fit in W -> a `BankEntry` with its validation accuracy.
    `WordSliderMaker` precomputes everything that does not depend on the prompts, so a new slider costs two text
    encodings, one [N, E] x [E] product and one small fit (see docs/custom_sliders.md for timings).

A slider from a few clicks
    `ClickSession` shows a grid of samples, takes "has it" / "doesn't" marks, fits a direction once about 20 marks
    hold both classes, and then proposes the unlabelled samples the current direction is least sure of (smallest
    distance to the boundary in slider units): uncertainty sampling, so fewer clicks are needed.

Fitting (`SliderFitOptions.method`):
    'lda'      regularised Fisher discriminant: (S_w + shrinkage) v = mu1 - mu0, closed form, one solve (default for
               words: fast enough for 10,000 samples in well under a second);
    'logreg' / 'svm' / 'meandiff'  the methods of `editor.directions` (logreg is the default for clicks).

Everything here is NumPy on the CPU; randomness comes from seeds in the options. Nothing prints.
"""

from __future__ import annotations

import datetime as _dt
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from editor import directions as D
from editor.bank import Bank, BankEntry, GeneratorInfo, load_bank, one_blas_thread, save_bank
from editor.directions import LinearDirection, Space

__all__ = [
    "SliderFitOptions",
    "ClickOptions",
    "lda_direction",
    "fit_labels",
    "prompt_scores",
    "WordSliderMaker",
    "ClickSession",
    "add_to_bank",
    "open_word_maker",
    "NEUTRAL_PROMPT",
]

NEUTRAL_PROMPT = "a photo of a face"  # the negative prompt when the user types only one
FIT_METHODS = ("lda", "logreg", "svm", "meandiff")


@dataclass(frozen=True)
class SliderFitOptions:
    """How a custom slider is fitted (recorded in the entry's `extra`)."""

    method: str = "lda"  # one of FIT_METHODS
    share: float = 0.25  # words: confident top / bottom share of the scores (of all N samples)
    val_share: float = 0.3  # words: held-out part of the selection for the validation accuracy
    shrinkage: float = 0.05  # lda: covariance shrinkage toward a scaled identity, in [0, 1]
    l2: float = 1.0  # logreg penalty (on centred, RMS-scaled latents)
    svm_c: float = 1.0  # svm squared-hinge weight
    seed: int = 0  # randomness of the train / validation split

    def __post_init__(self):
        if self.method not in FIT_METHODS:
            raise ValueError(f"method must be one of {FIT_METHODS}, got {self.method!r}")
        if not 0.0 < self.share <= 0.5:
            raise ValueError(f"share must be in (0, 0.5], got {self.share}")
        if not 0.0 <= self.val_share < 1.0:
            raise ValueError(f"val_share must be in [0, 1), got {self.val_share}")
        if not 0.0 <= self.shrinkage <= 1.0:
            raise ValueError(f"shrinkage must be in [0, 1], got {self.shrinkage}")


# ----------------------------------------------------------------------------------------------------------------------
# Fitting


def lda_direction(x, labels, shrinkage: float = 0.05) -> LinearDirection:
    """Regularised Fisher discriminant: the normal ``(S + γ)⁻¹ (μ1 − μ0)``, S the pooled within-class covariance
    shrunk toward ``tr(S)/D · I`` by γ = `shrinkage`; the boundary sits half-way between the class means (equal
    priors). x: [N, D]; labels: [N] 0/1 or bool. Closed form (`editor.directions.lda_boundary`, scikit-learn).
    """
    return D.lda_boundary(x, labels, shrinkage)


def fit_labels(x, labels, options: SliderFitOptions = SliderFitOptions()) -> LinearDirection:
    """Fit the options' method on all given labelled latents x [N, D], labels [N]."""
    if options.method == "lda":
        return lda_direction(x, labels, options.shrinkage)
    if options.method == "logreg":
        return D.logistic_regression(x, labels, l2=options.l2)
    if options.method == "svm":
        return D.svm_boundary(x, labels, c=options.svm_c)
    return D.mean_difference(x, labels)


def prompt_scores(image_embeddings, positive, negative) -> np.ndarray:
    """Scores [N]: cos(image, positive) − cos(image, negative) for image embeddings [N, E] and text embeddings [E].

    Equal to the zero-shot logit divided by CLIP's logit scale, so it ranks samples exactly as the probability of the
    positive prompt does (the confident selection only needs the ranking).
    """
    emb = np.asarray(image_embeddings)
    if emb.ndim != 2:
        raise ValueError(f"image embeddings must be [N, E], got shape {emb.shape}")
    pos, neg = (np.asarray(t, dtype=np.float64).reshape(-1) for t in (positive, negative))
    if pos.shape != (emb.shape[1],) or neg.shape != (emb.shape[1],):
        raise ValueError(f"text embeddings must be [{emb.shape[1]}] like the image embeddings, got {pos.shape} and "
                         f"{neg.shape} (was the cache made with another CLIP model?)")
    pos, neg = pos / max(np.linalg.norm(pos), 1e-12), neg / max(np.linalg.norm(neg), 1e-12)
    return emb @ (pos - neg).astype(emb.dtype)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


# ----------------------------------------------------------------------------------------------------------------------
# A slider from words


class WordSliderMaker:
    """Turns prompts into sliders over one cached sample set.

    Args:
        z: [N, z_dim] (or None: no z-space sliders) and ws: [N, num_ws, w_dim], the samples' latents (e.g.
            `SampleCache.load()`), or [N, w_dim] W codes. When every layer holds the same w (no truncation cutoff)
            only w is kept (float32), so 10,000 FFHQ samples take 20 MB instead of 740 MB.
        image_embeddings: [N, E] their CLIP image embeddings (normalised here once).
        encode_text: texts -> [T, E] text embeddings (e.g. `ClipLabeler.encode_text`).
        labeller: the CLIP model's name, recorded in each entry ("clip:ViT-B-32:laion2b_s34b_b79k").
        options: how to fit. neutral_prompt: the negative when only a positive prompt is given.
    """

    def __init__(self, z, ws, image_embeddings, encode_text: Callable[[Sequence[str]], np.ndarray],
                 labeller: str = "clip", options: SliderFitOptions = SliderFitOptions(),
                 neutral_prompt: str = NEUTRAL_PROMPT):
        ws = np.asarray(ws)
        if ws.ndim == 2:
            ws = ws[:, None, :]
        if ws.ndim != 3 or not np.issubdtype(ws.dtype, np.number):
            raise ValueError(f"ws must be [N, num_ws, w_dim] or [N, w_dim] latents, got shape {ws.shape}")
        emb = np.asarray(image_embeddings, dtype=np.float32)
        if emb.ndim != 2 or emb.shape[0] != ws.shape[0]:
            raise ValueError(f"image embeddings must be [N, E] with N={ws.shape[0]} (one per sample), got shape "
                             f"{emb.shape}")
        if not np.all(np.isfinite(emb)):
            raise ValueError("image embeddings contain NaN or infinite values")
        if ws.shape[0] < 20:
            raise ValueError(f"a slider from words needs at least 20 samples, got {ws.shape[0]}")
        self.z = None if z is None else np.asarray(z, dtype=np.float32)
        self.num_ws = int(ws.shape[1])
        same = all(np.array_equal(ws[:, i], ws[:, 0]) for i in range(1, self.num_ws))
        self.w = np.ascontiguousarray(ws[:, 0], dtype=np.float32) if same else None  # [N, w_dim] when layers agree
        self.ws = None if same else np.asarray(ws, dtype=np.float32)  # [N, num_ws, w_dim] otherwise
        self.embeddings = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)  # [N, E] unit rows
        self.encode_text = encode_text
        self.labeller = labeller
        self.options = options
        self.neutral_prompt = neutral_prompt
        self._latents: dict[str, np.ndarray] = {}
        self._text_cache: dict[str, np.ndarray] = {}  # prompt -> text embedding [E] (the neutral prompt is reused)

    @classmethod
    def from_samples(cls, samples, clip, options: SliderFitOptions = SliderFitOptions(), **kw) -> "WordSliderMaker":
        """From a loaded `editor.samples.Samples` that holds `clip`'s embeddings (a `ClipLabeler`)."""
        if clip.name not in samples.embeddings:
            have = ", ".join(samples.embeddings) or "none"
            raise ValueError(f"the sample cache holds no image embeddings from {clip.name!r} (it has: {have}); run "
                             f"`python -m editor sample --labeler clip:...` with the same CLIP model first")
        return cls(samples.z, samples.ws, samples.embeddings[clip.name], clip.encode_text, labeller=clip.name,
                   options=options, **kw)

    @property
    def n(self) -> int:
        return int(self.embeddings.shape[0])

    @property
    def w_dim(self) -> int:
        return int((self.w if self.w is not None else self.ws).shape[-1])

    def latents(self, space: Space) -> np.ndarray:
        """The [N, D] float64 latents a `space` fit uses (cached per space)."""
        key = str(space)
        if key not in self._latents:
            if len(self._latents) > 4:
                self._latents.clear()
            if space.kind != "z" and self.w is not None:
                space.layers(self.num_ws)  # checks the layer range
                x = self.w.astype(np.float64)  # every layer holds w: any layer range averages to w
            else:
                x = D.fit_space_latents(space, z=self.z, ws=self.ws)
            self._latents[key] = np.ascontiguousarray(x)
        return self._latents[key]

    def _prompts(self, positive: str, negative: str | None) -> tuple[str, str]:
        pos = (positive or "").strip()
        neg = (negative or "").strip() or self.neutral_prompt
        if not pos:
            raise ValueError("type what the slider should add, e.g. 'a smiling face'")
        if pos == neg:
            raise ValueError(f"the two prompts are the same ({pos!r}): nothing to separate")
        return pos, neg

    def scores(self, positive: str, negative: str | None = None) -> np.ndarray:
        """Per-sample scores [N] for a prompt pair (negative None or '' = the neutral prompt)."""
        pos, neg = self._prompts(positive, negative)
        new = [p for p in dict.fromkeys((pos, neg)) if p not in self._text_cache]
        if new:
            text = np.asarray(self.encode_text(new), dtype=np.float64)
            if text.ndim != 2 or text.shape[0] != len(new):
                raise ValueError(f"encode_text must return [{len(new)}, E] for {len(new)} prompts, got shape "
                                 f"{text.shape}")
            if len(self._text_cache) > 1000:
                self._text_cache.clear()
            self._text_cache.update(zip(new, text))
        return prompt_scores(self.embeddings, self._text_cache[pos], self._text_cache[neg])

    def make(self, positive: str, negative: str | None = None, attribute: str | None = None,
             space: str | Space = "w") -> BankEntry:
        """A new slider for the prompt pair, as a bank entry with its validation accuracy and provenance."""
        t0 = time.perf_counter()
        pos, neg = self._prompts(positive, negative)
        space = space if isinstance(space, Space) else Space.parse(str(space))
        s = self.scores(pos, neg)
        x = self.latents(space)
        o = self.options
        with one_blas_thread():
            d = D.fit_confident(lambda a, b: fit_labels(a, b, o), x, s, np.random.default_rng(o.seed),
                                share=o.share, val_share=o.val_share)
        name = attribute or _attribute_name(pos)
        extra = {**d.extra, "source": "words", "positive": pos, "negative": neg, "fit_method": o.method,
                 "created": _now(), "seconds": round(time.perf_counter() - t0, 4), "n_pool": self.n,
                 "score_spread": float(np.std(s))}
        return BankEntry(attribute=name, method=o.method, space=space, vector=d.vector,
                         sigma=d.sigma, intercept=d.intercept, labeller=f"{self.labeller} words",
                         n_samples=d.n_samples, val_accuracy=d.val_accuracy, train_accuracy=d.train_accuracy,
                         extra=extra)


def open_word_maker(samples_dir: str | Path, clip, model_id: str | None = None,
                    options: SliderFitOptions = SliderFitOptions()) -> WordSliderMaker:
    """A `WordSliderMaker` over an existing sample cache folder (made by `python -m editor sample --labeler clip:...`).

    clip: a `ClipLabeler` (the same model and weights as the cache's embeddings); model_id: when given, the cache must
    have been sampled from the generator with that identity.
    """
    import json

    from editor.samples import SampleCache, SampleSpec

    root = Path(samples_dir)
    meta_path = root / "meta.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"no sample cache at {root} (expected {meta_path}); make one with `python -m editor "
                                "sample --model ... --labeler clip:MODEL:PRETRAINED --out FOLDER`")
    meta = json.loads(meta_path.read_text())
    gen = meta.get("generator", {})
    if model_id is not None and gen.get("model_id") != model_id:
        raise ValueError(f"the sample cache {root} was made with generator {gen.get('model_id')!r}, not {model_id!r}")
    cache = SampleCache(root, SampleSpec(**meta["spec"]), gen)
    return WordSliderMaker.from_samples(cache.load([clip.name]), clip, options)


def _attribute_name(prompt: str) -> str:
    words = [w for w in "".join(c if c.isalnum() else " " for c in prompt.lower()).split()
             if w not in ("a", "an", "the", "photo", "of", "face", "person", "with", "portrait")]
    return "_".join(words[:4]) or "custom"


# ----------------------------------------------------------------------------------------------------------------------
# A slider from a few clicks


@dataclass(frozen=True)
class ClickOptions:
    """Settings of a `ClickSession`."""

    grid: int = 8  # samples shown per round
    min_labels: int = 20  # marks before the first fit (both classes needed)
    fit: SliderFitOptions = SliderFitOptions(method="logreg")  # how each round's direction is fitted
    cv_folds: int = 5  # folds of the cross-validated accuracy of the marked samples
    candidates: int = 0  # >0: look for uncertain samples only in a fresh random subset of this size each round
    strategy: str = "uncertain"  # after the first fit: 'uncertain' (active learning) or 'random' (for comparison)
    seed: int = 0  # the first rounds' random grids

    def __post_init__(self):
        if self.strategy not in ("uncertain", "random"):
            raise ValueError(f"strategy must be 'uncertain' or 'random', got {self.strategy!r}")
        if self.grid < 1:
            raise ValueError(f"grid must be >= 1, got {self.grid}")
        if self.min_labels < 4:
            raise ValueError(f"min_labels must be >= 4, got {self.min_labels}")
        if self.cv_folds < 2:
            raise ValueError(f"cv_folds must be >= 2, got {self.cv_folds}")


class ClickSession:
    """Active labelling of a pool of sampled latents.

    The pool (x [N, D], shared and read-only) is kept apart from the marks (a plain {index: bool} dict), so a web app
    can keep only the marks per user and rebuild the session from them: ``ClickSession(x, marks=state)``.

    Round: ``idx = s.next_grid()`` -> show those samples -> ``s.mark(i, True/False)`` for each -> repeat. Once
    `ready`, `direction` is the current fit and `next_grid` proposes the least certain unlabelled samples.
    """

    def __init__(self, x, options: ClickOptions = ClickOptions(), marks: Mapping[int, bool] | None = None,
                 ids: Sequence[int] | None = None, round: int = 0, cache: dict | None = None):
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] < options.min_labels or not np.all(np.isfinite(x)):
            raise ValueError(f"the pool must be a finite [N, D] matrix with N >= {options.min_labels}, got shape "
                             f"{x.shape}")
        self.x = x
        self.options = options
        self.ids = np.arange(x.shape[0]) if ids is None else np.asarray(ids)
        if self.ids.shape != (x.shape[0],):
            raise ValueError(f"ids must have one entry per pool sample ({x.shape[0]}), got shape {self.ids.shape}")
        self.marks: dict[int, bool] = {}
        self.round = int(round)  # grids shown so far (seeds the random grids; keep it with the marks to resume)
        self._cache = {} if cache is None else cache  # marks -> fits; share one dict per (pool, options) only
        for i, v in (marks or {}).items():
            self.mark(i, v)

    # -- marks ---------------------------------------------------------------------------------------------------

    def mark(self, index: int, has_it: bool) -> None:
        """Record that pool sample `index` has the attribute (True) or not (False)."""
        i = int(index)
        if not 0 <= i < self.x.shape[0]:
            raise ValueError(f"sample index {index} is outside the pool (0..{self.x.shape[0] - 1})")
        self.marks[i] = bool(has_it)

    def unmark(self, index: int) -> None:
        self.marks.pop(int(index), None)

    @property
    def n_marks(self) -> int:
        return len(self.marks)

    @property
    def counts(self) -> tuple[int, int]:
        """(marked positive, marked negative)."""
        pos = sum(self.marks.values())
        return pos, len(self.marks) - pos

    @property
    def ready(self) -> bool:
        """Enough marks of both classes to fit."""
        pos, neg = self.counts
        return self.n_marks >= self.options.min_labels and pos >= 2 and neg >= 2

    def _labelled(self) -> tuple[np.ndarray, np.ndarray]:
        idx = np.fromiter(self.marks.keys(), dtype=np.int64, count=len(self.marks))
        y = np.fromiter(self.marks.values(), dtype=bool, count=len(self.marks))
        order = np.argsort(idx)
        return idx[order], y[order]

    # -- fitting -------------------------------------------------------------------------------------------------

    @property
    def direction(self) -> LinearDirection | None:
        """The direction fitted on all marks (None until `ready`); refitted only when the marks change. σ is
        measured on the whole pool."""
        if not self.ready:
            return None
        key = ("fit", tuple(sorted(self.marks.items())))
        if key not in self._cache:
            idx, y = self._labelled()
            with one_blas_thread():
                d = fit_labels(self.x[idx], y, self.options.fit)
            self._remember(key, LinearDirection(vector=d.vector, intercept=d.intercept,
                                                sigma=float(np.std(self.x @ d.vector)),
                                                train_accuracy=d.train_accuracy, n_samples=int(idx.size),
                                                extra=d.extra))
        return self._cache[key]

    def _remember(self, key, value) -> None:
        if len(self._cache) > 512:  # a shared cache stays small
            self._cache.clear()
        self._cache[key] = value

    def cv_accuracy(self) -> float | None:
        """Cross-validated accuracy over the marked samples (None until `ready`). Marks chosen by active learning
        lie near the boundary, so this underestimates the accuracy on typical samples."""
        if not self.ready:
            return None
        key = ("cv", tuple(sorted(self.marks.items())))
        if key not in self._cache:
            self._remember(key, self._cv_accuracy())
        return self._cache[key]

    def _cv_accuracy(self) -> float:
        idx, y = self._labelled()
        rng = np.random.default_rng(self.options.seed)
        folds = np.array_split(rng.permutation(idx.size), min(self.options.cv_folds, idx.size))
        correct = 0
        with one_blas_thread():
            for f in folds:
                train = np.setdiff1d(np.arange(idx.size), f)
                if y[train].all() or not y[train].any():
                    continue
                d = fit_labels(self.x[idx[train]], y[train], self.options.fit)
                correct += int(np.sum((self.x[idx[f]] @ d.vector + d.intercept > 0) == y[f]))
        return correct / idx.size

    def certainty(self) -> np.ndarray | None:
        """|x·n + b| / σ for every pool sample [N] (distance from the boundary in slider units), None until ready."""
        d = self.direction
        if d is None:
            return None
        return np.abs(self.x @ d.vector + d.intercept) / d.sigma

    def next_grid(self, k: int | None = None) -> np.ndarray:
        """Indices of the next `k` (default `options.grid`) unlabelled samples to show: random until the first fit,
        then the ones the current direction is least sure of."""
        k = int(k or self.options.grid)
        free = np.setdiff1d(np.arange(self.x.shape[0]), np.fromiter(self.marks, dtype=np.int64, count=len(self.marks)))
        if free.size == 0:
            return free
        rng = np.random.default_rng([self.options.seed, self.round])
        self.round += 1
        cert = self.certainty() if self.options.strategy == "uncertain" else None
        if cert is None:
            return rng.choice(free, size=min(k, free.size), replace=False)
        if self.options.candidates and free.size > self.options.candidates:
            free = rng.choice(free, size=self.options.candidates, replace=False)
        order = np.argsort(cert[free], kind="stable")
        return free[order[:k]]

    def entry(self, attribute: str, space: str | Space = "w", labeller: str = "manual:clicks") -> BankEntry:
        """The current direction as a bank entry (its validation accuracy is the cross-validated one)."""
        d = self.direction
        if d is None:
            pos, neg = self.counts
            raise ValueError(f"mark at least {self.options.min_labels} samples with both answers first "
                             f"({pos} 'has it', {neg} 'doesn't' so far)")
        if not attribute or not str(attribute).strip():
            raise ValueError("name the new slider")
        space = space if isinstance(space, Space) else Space.parse(str(space))
        pos, neg = self.counts
        return BankEntry(attribute=str(attribute).strip(), method=self.options.fit.method, space=space,
                         vector=d.vector, sigma=d.sigma, intercept=d.intercept, labeller=labeller,
                         n_samples=self.n_marks, val_accuracy=self.cv_accuracy(), train_accuracy=d.train_accuracy,
                         extra={"source": "clicks", "positives": pos, "negatives": neg,
                                "fit_method": self.options.fit.method, "val_accuracy_kind": "cross-validated marks",
                                "marked_ids": [int(self.ids[i]) for i in sorted(self.marks)], "created": _now()})


# ----------------------------------------------------------------------------------------------------------------------
# Saving


def add_to_bank(path: str | Path, entries: Sequence[BankEntry], generator: GeneratorInfo | None = None,
                note: str = "custom sliders (editor.custom_sliders)", source: str | None = None) -> Bank:
    """Add (or replace, by attribute/method/space) entries in the bank file at `path` and write it back.

    A new file needs `generator`; an existing one is checked against it when given (`source`: where the generator was
    loaded from, for registry banks). Each entry carries its own provenance (labeller, prompts or marks, creation
    time in `extra`); the bank's `command` is kept, or set to `note` for a new file.
    """
    path = Path(path)
    entries = list(entries)
    if not entries:
        raise ValueError("nothing to add")
    if path.is_file():
        bank = load_bank(path)
        if generator is not None:
            bank.validate(generator, source=source)
        info, old, command, created = bank.generator, list(bank.entries), bank.command, bank.created
    else:
        if generator is None:
            raise ValueError(f"{path} does not exist yet: pass the generator's GeneratorInfo to create it")
        info, old, command, created = generator, [], note, _now()
    names = {e.name for e in entries}
    kept = [e for e in old if e.name not in names]
    out = Bank(generator=info, entries=tuple(kept + entries), command=command, created=created)
    save_bank(out, path)
    return out


def fmt_accuracy(value: float | None) -> str:
    """'93.1 %' or 'n/a'."""
    return "n/a" if value is None or not math.isfinite(value) else f"{100 * value:.1f} %"


def planted_world(n: int = 3000, d: int = 48, e: int = 32, seed: int = 0, noise: float = 0.1, aniso: float = 0.5):
    """A synthetic world with a known answer, for tests and benchmarks of the slider-from-words path.

    Returns latents W [n, d] (anisotropic, offset), the hidden unit direction u [d] of an attribute, image embeddings
    [n, e] float32 whose projection on a text concept t is the attribute (w - mean)·u plus `noise`, and a text encoder
    (list of prompts -> [len, e]) that maps prompts containing 'smil' to +t and all others to -t.
    """
    rng = np.random.default_rng(seed)
    mix = aniso * rng.standard_normal((d, d)) / np.sqrt(d) + np.eye(d)
    w = rng.standard_normal((n, d)) @ mix + 0.5
    u = rng.standard_normal(d)
    u /= np.linalg.norm(u)
    attr = (w - w.mean(0)) @ u
    attr /= attr.std()
    t = rng.standard_normal(e)
    t /= np.linalg.norm(t)
    emb = (attr[:, None] * t + noise * rng.standard_normal((n, e)) + 3 * rng.standard_normal(e)).astype(np.float32)
    centre = rng.standard_normal(e)

    def encode(texts):
        return np.stack([centre + (t if "smil" in s else -t) for s in texts])

    return w, u, emb, encode
