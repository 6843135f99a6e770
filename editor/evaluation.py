"""Evaluation of direction banks: does an edit change what it should, only that, and stay on the image manifold?

For each chosen bank entry (attribute × method × space) we edit held-out latents (seeds never used to fit the bank)
over an α sweep, render, and score every attribute with a judge labeller (the demo world's attribute model, or any
labeller). From the per-α scores:

- target effect: the target's mean score against α (`curves`), its slope per σ near α = 0 in units of the
  attribute's population standard deviation, and for probability-like scores the flip rate at ±2σ / ±3σ (the share
  of samples on the other side of 0.5 at α = 0 that cross it);
- entanglement: the slope of every other attribute (a row of the entanglement matrix), and the *leakage*
  ``rms(other slopes) / |target slope|``: how much everything else moves per unit of the target's move (0 = clean);
- identity: the mean |change| of designated identity attributes at |α| = 2, in population standard deviations;
- realism: the kernel inception distance (KID) and the Fréchet distance (FD) between the judge's embeddings of edited
  images and of a separate reference set (editor.metrics; both computed in the judge's embedding space, e.g. the
  attribute model's penultimate features), the discriminator's mean logit when a discriminator is given, and how far
  the edited latents sit from the W distribution (mean Mahalanobis distance under a Gaussian fit of sampled w);
- conditional editing: the same sweep with correlated attributes locked, to compare their slopes.

`assess_claims` turns the summaries into verdicts on the studies' claims, with the numbers; `write_report` writes
JSON, markdown and matplotlib figures (curves, leakage bars, an entanglement heat map, realism against α and image
strips with one row per method).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from editor.bank import BankEntry, apply_edit
from editor.metrics import frechet_distance_from_features, kernel_inception_distance
from editor.samples import EMBEDDING_KEY, z_from_seeds

__all__ = [
    "EvalConfig",
    "Sweep",
    "EvalContext",
    "TOON_PAIRS",
    "TOON_IDENTITY",
    "TOON_SAME_CONCEPT",
    "prepare_context",
    "run_sweep",
    "summarize_sweep",
    "assess_claims",
    "write_report",
]

# The toon world's deliberate correlations, as attribute-model score names (toonfaces.CORRELATIONS).
TOON_PAIRS: tuple[tuple[str, str], ...] = (
    ("old", "grey_hair"), ("age", "grey_hair"), ("old", "eyeglasses"), ("beard", "long_hair"), ("beard", "bald"),
    ("beard", "lipstick"), ("long_hair", "lipstick"), ("smiling", "mouth_open"),
)
# Traits of a person's identity, which an attribute edit should leave alone.
TOON_IDENTITY: tuple[str, ...] = ("face_width", "jaw", "eye_size", "nose_size", "skin_tone", "eye_color=brown",
                                  "eye_color=blue", "eye_color=green", "eye_color=grey")
# Scores that measure the same concept as a target (not counted as entanglement of that target).
TOON_SAME_CONCEPT: tuple[tuple[str, ...], ...] = (
    ("smiling", "smile"), ("old", "age"), ("mouth_open", "mouth_openness"),
    ("long_hair", "bald", "hair_length"), ("grey_hair", "hair_color=grey"),
    ("eyeglasses", "glasses_style=none", "glasses_style=round", "glasses_style=rectangular", "glasses_color=none",
     "glasses_color=black", "glasses_color=tortoise", "glasses_color=gold", "glasses_color=red",
     "glasses_color=blue"),
    ("hair_color=black", "hair_color=brown", "hair_color=blond", "hair_color=red", "hair_color=grey", "grey_hair"),
)


@dataclass(frozen=True)
class EvalConfig:
    """What to evaluate and how much rendering it may cost (renders = entries × n_seeds × (len(alphas) − 1))."""

    n_seeds: int = 32  # held-out latents edited per entry
    seed0: int = 20_000_000  # first held-out seed (banks are fitted on seeds from 0: keep this far away)
    n_reference: int = 64  # reference images for KID (seeds after the held-out ones)
    alphas: tuple[float, ...] = (-4.0, -3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 4.0)  # in σ units; must include 0
    slope_range: float = 2.0  # slopes are fitted on |α| <= this
    psi: float = 1.0  # truncation of the held-out latents (use the bank's)
    batch: int = 32  # images per generator call
    n_w_fit: int = 4000  # mapping samples for the W Gaussian (latent-distance realism)

    def __post_init__(self):
        if 0.0 not in self.alphas:
            raise ValueError(f"alphas must include 0, got {self.alphas}")
        if self.n_seeds < 2 or self.n_reference < 2:
            raise ValueError("n_seeds and n_reference must be >= 2")
        if self.batch < 1:
            raise ValueError(f"batch must be >= 1, got {self.batch}")
        if sum(1 for a in self.alphas if 0 < abs(a) <= self.slope_range) < 1:
            raise ValueError(f"no non-zero alpha within slope_range={self.slope_range}")


# ----------------------------------------------------------------------------------------------------------------------
# Realism helpers


@dataclass(frozen=True)
class WGaussian:
    """A Gaussian fit of sampled w, for the latent-distance realism measure."""

    mean: np.ndarray  # [w_dim]
    whitener: np.ndarray  # [w_dim, w_dim]: |whitener @ (w - mean)| is the Mahalanobis distance

    def distance(self, w: np.ndarray) -> np.ndarray:
        """Mahalanobis distance of w [N, w_dim] -> [N]."""
        return np.linalg.norm((w - self.mean) @ self.whitener.T, axis=1)


def fit_w_gaussian(w: np.ndarray, eps: float = 1e-6) -> WGaussian:
    w = np.asarray(w, np.float64)
    mean = w.mean(axis=0)
    cov = np.cov(w, rowvar=False) + eps * np.eye(w.shape[1])
    evals, evecs = np.linalg.eigh(cov)
    return WGaussian(mean=mean, whitener=(evecs / np.sqrt(np.maximum(evals, eps))).T)


# ----------------------------------------------------------------------------------------------------------------------
# Context: the held-out latents, their base scores and the reference set, computed once


@dataclass
class EvalContext:
    """Everything shared by the sweeps of one evaluation."""

    G: torch.nn.Module
    judge: object  # a labeller (editor.labelers protocol)
    config: EvalConfig
    seeds: np.ndarray  # [N] held-out seeds
    z: np.ndarray  # [N, z_dim]
    ws: np.ndarray  # [N, num_ws, w_dim]
    base: dict  # attribute -> [N] judge scores at alpha 0
    base_embedding: np.ndarray | None  # [N, E]
    reference_embedding: np.ndarray | None  # [M, E]
    pop_std: dict  # attribute -> std of the judge's scores over base + reference images
    w_gaussian: WGaussian
    discriminator: Callable[[torch.Tensor], torch.Tensor] | None = None
    base_disc: float | None = None
    device: str = "cpu"

    def mapping(self, z: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            zt = torch.from_numpy(np.asarray(z, np.float32)).to(self.device)
            return self.G.mapping(zt, None, truncation_psi=self.config.psi).cpu().numpy().astype(np.float64)


@torch.no_grad()
def _render_and_judge(G, judge, ws: np.ndarray, ids: Sequence[int], batch: int, device: str,
                      discriminator=None, keep_images: bool = False):
    """Render ws [N, num_ws, w_dim] and score with the judge: (scores {attr: [N]}, embedding [N, E] | None,
    discriminator logits [N] | None, images uint8 [N, H, W, 3] | None)."""
    scores: dict[str, list] = {}
    embs, disc, imgs = [], [], []
    for i in range(0, len(ws), batch):
        w = torch.from_numpy(np.asarray(ws[i:i + batch], np.float32)).to(device)
        img = G.synthesis(w, noise_mode="const").float().clamp(-1, 1)
        if discriminator is not None:
            disc.append(discriminator(img).reshape(-1).float().cpu().numpy())
        img = img.cpu()
        if keep_images:
            imgs.append(((img + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy())
        part_ids = list(ids[i:i + batch])
        if hasattr(judge, "label_with_embedding"):
            s, e = judge.label_with_embedding(img, part_ids)
            if e is not None:
                embs.append(np.asarray(e, np.float64))
        else:
            s = judge(img, part_ids)
        for k, v in s.items():
            if k != EMBEDDING_KEY:
                scores.setdefault(k, []).append(np.asarray(v, np.float64))
    return ({k: np.concatenate(v) for k, v in scores.items()}, np.concatenate(embs) if embs else None,
            np.concatenate(disc) if disc else None, np.concatenate(imgs) if imgs else None)


def prepare_context(G, judge, config: EvalConfig = EvalConfig(), device: str = "cpu",
                    discriminator: Callable[[torch.Tensor], torch.Tensor] | None = None) -> EvalContext:
    """Sample the held-out latents and the reference set, render and judge them, fit the W Gaussian."""
    cfg = config
    seeds = np.arange(cfg.seed0, cfg.seed0 + cfg.n_seeds)
    ref_seeds = np.arange(cfg.seed0 + cfg.n_seeds, cfg.seed0 + cfg.n_seeds + cfg.n_reference)
    ctx = EvalContext(G=G, judge=judge, config=cfg, seeds=seeds, z=z_from_seeds(seeds, G.z_dim).astype(np.float64),
                      ws=np.zeros(0), base={}, base_embedding=None, reference_embedding=None, pop_std={},
                      w_gaussian=None, discriminator=discriminator, device=device)  # type: ignore[arg-type]
    ctx.ws = ctx.mapping(ctx.z)
    ref_ws = ctx.mapping(z_from_seeds(ref_seeds, G.z_dim))
    base, base_emb, base_disc, _ = _render_and_judge(G, judge, ctx.ws, seeds, cfg.batch, device, discriminator)
    ref, ref_emb, _, _ = _render_and_judge(G, judge, ref_ws, ref_seeds, cfg.batch, device)
    ctx.base, ctx.base_embedding, ctx.reference_embedding = base, base_emb, ref_emb
    ctx.base_disc = None if base_disc is None else float(base_disc.mean())
    ctx.pop_std = {k: float(np.std(np.concatenate([base[k], ref[k]]))) for k in base}
    rng_seeds = np.arange(cfg.seed0 + 10_000_000, cfg.seed0 + 10_000_000 + cfg.n_w_fit)
    w_all = ctx.mapping(z_from_seeds(rng_seeds, G.z_dim))[:, 0]
    ctx.w_gaussian = fit_w_gaussian(w_all)
    return ctx


# ----------------------------------------------------------------------------------------------------------------------
# One sweep


@dataclass
class Sweep:
    """Judge scores of one entry's α sweep over the held-out latents."""

    name: str  # entry name, plus "|locked:a,b" when attributes were locked
    attribute: str
    method: str
    space: str
    locked: tuple[str, ...]
    alphas: np.ndarray  # [A]
    scores: dict  # attribute -> [A, N]
    kid: np.ndarray | None  # [A] KID of the edited embeddings against the reference set
    fd: np.ndarray | None  # [A] Fréchet distance of the same (biased upward with few samples; compare across alpha)
    disc: np.ndarray | None  # [A] mean discriminator logit
    latent_distance: np.ndarray  # [A] mean Mahalanobis distance of the edited w (layer mean) under the W Gaussian
    strip: np.ndarray | None = field(default=None, repr=False)  # [A, H, W, 3] images of held-out latent 0


def run_sweep(ctx: EvalContext, entry: BankEntry, locked: Sequence[BankEntry] = (), keep_strip: bool = True) -> Sweep:
    """Edit the held-out latents with `entry` at every α of the config (locking `locked`), render and judge."""
    cfg = ctx.config
    alphas = np.asarray(cfg.alphas, np.float64)
    n = len(ctx.seeds)
    scores = {k: np.zeros((len(alphas), n)) for k in ctx.base}
    kids = np.full(len(alphas), np.nan) if ctx.reference_embedding is not None else None
    fds = None if kids is None else kids.copy()
    discs = np.full(len(alphas), np.nan) if ctx.discriminator is not None else None
    dist = np.zeros(len(alphas))
    strip = []
    for i, a in enumerate(alphas):
        if a == 0:
            s, emb, disc = ctx.base, ctx.base_embedding, None
            edited = ctx.ws
            if keep_strip:
                _, _, _, img = _render_and_judge(ctx.G, ctx.judge, ctx.ws[:1], ctx.seeds[:1], 1, ctx.device,
                                                 keep_images=True)
                strip.append(img[0])
            if discs is not None:
                discs[i] = ctx.base_disc
        else:
            edited = apply_edit(ctx.ws, [(entry, float(a))], locked=locked, z=ctx.z, mapping=ctx.mapping)
            s, emb, disc, img = _render_and_judge(ctx.G, ctx.judge, edited, ctx.seeds, cfg.batch, ctx.device,
                                                  ctx.discriminator, keep_images=keep_strip)
            if keep_strip:
                strip.append(img[0])
            if discs is not None:
                discs[i] = float(disc.mean())
        for k in scores:
            scores[k][i] = s[k]
        if kids is not None:
            kids[i] = kernel_inception_distance(emb, ctx.reference_embedding, num_subsets=50)
            fds[i] = frechet_distance_from_features(emb, ctx.reference_embedding)
        dist[i] = float(ctx.w_gaussian.distance(edited.mean(axis=1)).mean())
    lock_names = tuple(lk.attribute for lk in locked)
    name = entry.name + (f"|locked:{','.join(lock_names)}" if lock_names else "")
    return Sweep(name=name, attribute=entry.attribute, method=entry.method, space=str(entry.space), locked=lock_names,
                 alphas=alphas, scores=scores, kid=kids, fd=fds, disc=discs, latent_distance=dist,
                 strip=np.stack(strip) if strip else None)


# ----------------------------------------------------------------------------------------------------------------------
# Summaries


def _same_concept(target: str, groups: Sequence[Sequence[str]]) -> set[str]:
    out = {target}
    for g in groups:
        if target in g:
            out |= set(g)
    return out


def _slopes(alphas: np.ndarray, values: np.ndarray, limit: float) -> np.ndarray:
    """Least-squares slope of values [A, ...] against alphas [A] over |alpha| <= limit."""
    keep = np.abs(alphas) <= limit
    a = alphas[keep] - alphas[keep].mean()
    v = values[keep] - values[keep].mean(axis=0)
    return np.tensordot(a, v, axes=(0, 0)) / float(a @ a)


def summarize_sweep(sweep: Sweep, ctx: EvalContext, identity: Sequence[str] = (),
                    same_concept: Sequence[Sequence[str]] = (), pairs: Sequence[tuple[str, str]] = (),
                    n_boot: int = 200, rng: np.random.Generator | None = None) -> dict:
    """Numbers for one sweep (see the module docstring). Slopes are in population standard deviations per σ-step.

    The leakage comes with a bootstrap standard error over the held-out latents (n_boot resamples; 1.4826 × the
    median absolute deviation of the resampled leakages, robust to resamples whose target slope nearly vanishes).
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    alphas, t = sweep.alphas, sweep.attribute
    if t not in sweep.scores:
        raise ValueError(f"the judge gives no score for {t!r}; it scores {', '.join(sweep.scores)}")
    std = {k: max(ctx.pop_std[k], 1e-9) for k in sweep.scores}
    names = list(sweep.scores)
    per_seed = np.stack([sweep.scores[k] / std[k] for k in names], axis=-1)  # [A, N, K]
    slope_seed = _slopes(alphas, per_seed, ctx.config.slope_range)  # [N, K]
    excluded = _same_concept(t, same_concept)
    others = [j for j, k in enumerate(names) if k not in excluded]
    ti = names.index(t)

    def leakage(slopes_nk: np.ndarray) -> float:
        m = slopes_nk.mean(axis=0)
        return float(np.sqrt(np.mean(m[others] ** 2)) / max(abs(m[ti]), 1e-9)) if others else 0.0

    boot = np.array([leakage(slope_seed[rng.integers(0, len(slope_seed), len(slope_seed))]) for _ in range(n_boot)])
    # Robust spread (1.4826 MAD): a resample whose target slope is near 0 makes the ratio explode.
    boot_se = float(1.4826 * np.median(np.abs(boot - np.median(boot))))
    slope = slope_seed.mean(axis=0)
    curves = {k: sweep.scores[k].mean(axis=1).tolist() for k in names}
    out = {
        "name": sweep.name, "attribute": t, "method": sweep.method, "space": sweep.space, "locked": list(sweep.locked),
        "alphas": alphas.tolist(), "target_curve": curves[t], "target_slope": float(slope[ti]),
        "slopes": {k: float(slope[j]) for j, k in enumerate(names)},
        "leakage": leakage(slope_seed), "leakage_se": boot_se,
        "latent_distance": sweep.latent_distance.tolist(),
        "kid": None if sweep.kid is None else sweep.kid.tolist(),
        "fd": None if sweep.fd is None else sweep.fd.tolist(),
        "disc": None if sweep.disc is None else sweep.disc.tolist(),
    }
    base = sweep.scores[t][alphas == 0][0]
    if np.all((base >= 0) & (base <= 1)):  # probability-like: flip rates
        flips = {}
        for a in (2.0, 3.0, -2.0, -3.0):
            if a in alphas:
                now = sweep.scores[t][alphas == a][0]
                start = base < 0.5 if a > 0 else base >= 0.5
                flips[f"{a:+g}"] = float(np.mean((now >= 0.5)[start] if a > 0 else (now < 0.5)[start])) \
                    if start.any() else None
        out["flip_rate"] = flips
    ident = [k for k in identity if k in names and k not in excluded]
    if ident and 2.0 in alphas and -2.0 in alphas:
        i_p, i_m, i_0 = [int(np.flatnonzero(alphas == a)[0]) for a in (2.0, -2.0, 0.0)]
        changes = [np.mean(np.abs(sweep.scores[k][i] - sweep.scores[k][i_0])) / std[k] for k in ident
                   for i in (i_p, i_m)]
        out["identity_change"] = float(np.mean(changes))
    partners = sorted({b if a == t else a for a, b in pairs if t in (a, b)} & set(names))
    out["partner_slopes"] = {p: float(slope[names.index(p)]) for p in partners}
    return out


def _paired(summaries: Sequence[dict], key_a: Callable[[dict], bool], key_b: Callable[[dict], bool],
            locked: bool = False) -> list[tuple[str, dict, dict]]:
    """(attribute, summary a, summary b) for attributes that have both."""
    a = {s["attribute"]: s for s in summaries if key_a(s) and bool(s["locked"]) == locked}
    b = {s["attribute"]: s for s in summaries if key_b(s) and bool(s["locked"]) == locked}
    return [(k, a[k], b[k]) for k in a if k in b]


def _compare(pairs, what: str, label_a: str, label_b: str, claim: str) -> dict:
    """Verdict for 'a has lower `what` than b' over paired attributes, with a sign-consistency count."""
    if not pairs:
        return {"claim": claim, "verdict": "not measured", "reason": f"no attribute has both {label_a} and {label_b}"}
    va = np.array([p[1][what] for p in pairs])
    vb = np.array([p[2][what] for p in pairs])
    se = np.array([math.hypot(p[1].get(what + "_se", 0.0), p[2].get(what + "_se", 0.0)) for p in pairs])
    better = int(np.sum(va < vb))
    clear = int(np.sum(va + 2 * se < vb))
    clear_worse = int(np.sum(vb + 2 * se < va))
    if better * 2 > len(pairs) and clear > clear_worse:
        verdict = "holds"
    elif better * 2 < len(pairs) and clear_worse > clear:
        verdict = "does not hold"
    else:
        verdict = "inconclusive"
    return {"claim": claim, "verdict": verdict, "n_attributes": len(pairs),
            f"median_{what}_{label_a}": float(np.median(va)), f"median_{what}_{label_b}": float(np.median(vb)),
            f"{label_a}_lower_count": better, "clearly_lower (>2 s.e.)": clear, "clearly_higher (>2 s.e.)": clear_worse,
            "per_attribute": {p[0]: {label_a: float(x), label_b: float(y)} for p, x, y in zip(pairs, va, vb)}}


def assess_claims(summaries: Sequence[dict], linear_method: str = "svm") -> list[dict]:
    """Verdicts, with numbers, on the studies' claims, from `summarize_sweep` outputs.

    1. W is more disentangled than Z (leakage of `linear_method` in 'w' vs 'z');
    2. the partial mean difference / logistic regression / SVM directions are cleaner than the mean difference
       (leakage in 'w');
    3. the Mahalanobis walk vs linear directions (leakage and off-manifold distance in 'w');
    4. extreme α leaves the manifold (KID / discriminator / latent distance at the largest |α| vs |α| <= 1);
    5. conditional editing reduces the change of a locked correlated attribute.
    """
    out = [
        _compare(_paired(summaries, lambda s: s["method"] == linear_method and s["space"] == "w",
                         lambda s: s["method"] == linear_method and s["space"] == "z"),
                 "leakage", "w", "z", f"W is more disentangled than Z ({linear_method} directions)"),
    ]
    for m in ("partial", "logreg", "svm"):
        out.append(_compare(_paired(summaries, lambda s, m=m: s["method"] == m and s["space"] == "w",
                                    lambda s: s["method"] == "meandiff" and s["space"] == "w"),
                            "leakage", m, "meandiff", f"{m} directions are cleaner than the mean difference (W)"))
    maha = _paired(summaries, lambda s: s["method"] == "mahalanobis" and s["space"] == "w",
                   lambda s: s["method"] == linear_method and s["space"] == "w")
    res = _compare(maha, "leakage", "mahalanobis", linear_method,
                   f"the Mahalanobis walk is cleaner than the linear {linear_method} direction (W)")
    if maha:
        res["median_final_latent_distance_mahalanobis"] = float(np.median([p[1]["latent_distance"][-1] for p in maha]))
        res[f"median_final_latent_distance_{linear_method}"] = float(np.median([p[2]["latent_distance"][-1]
                                                                                 for p in maha]))
    out.append(res)
    # Extreme alpha.
    rows = [s for s in summaries if not s["locked"]]
    if rows:
        alphas = np.array(rows[0]["alphas"])
        far, near = np.abs(alphas) == np.abs(alphas).max(), np.abs(alphas) <= 1
        res = {"claim": "extreme alpha leaves the data manifold", "max_abs_alpha": float(np.abs(alphas).max())}
        votes = []
        for key in ("kid", "fd", "disc", "latent_distance"):
            vals = [np.array(s[key]) for s in rows if s.get(key) is not None]
            if not vals:
                continue
            v = np.stack(vals)
            f, n = float(np.mean(v[:, far])), float(np.mean(v[:, near]))
            res[f"{key}_at_max_alpha"], res[f"{key}_at_abs_alpha_le_1"] = f, n
            # A discriminator's logit drops for unrealistic images; KID / FD rise. The latent distance is reported but
            # does not vote: any large linear step leaves the W Gaussian by construction.
            if key != "latent_distance":
                votes.append(f < n if key == "disc" else f > n)
        res["verdict"] = ("holds" if all(votes) else "does not hold" if not any(votes) else "mixed") if votes \
            else "not measured on images (no embedding judge or discriminator)"
        res["note"] = ("verdict from image measures (KID / FD of judge embeddings, discriminator); the latent distance is "
                       "geometric and shown for reference")
        out.append(res)
    # Conditional editing.
    lock_rows = [s for s in summaries if s["locked"]]
    if lock_rows:
        per = {}
        for s in lock_rows:
            free = next((f for f in summaries if not f["locked"] and f["attribute"] == s["attribute"]
                         and f["method"] == s["method"] and f["space"] == s["space"]), None)
            if free is None:
                continue
            for lk in s["locked"]:
                if lk in s["slopes"]:
                    per[f"{s['name']}"] = {"locked": lk, "partner_slope_free": free["slopes"][lk],
                                           "partner_slope_locked": s["slopes"][lk],
                                           "target_slope_free": free["target_slope"],
                                           "target_slope_locked": s["target_slope"]}
        reduced = [abs(v["partner_slope_locked"]) < abs(v["partner_slope_free"]) for v in per.values()]
        res = {"claim": "locking a correlated attribute keeps it from changing (conditional editing)",
               "verdict": ("holds" if reduced and all(reduced) else "mixed" if any(reduced) else
                           "does not hold") if reduced else "not measured",
               "n_cases": len(per), "cases": per}
        if per:
            res["median_abs_partner_slope_free"] = float(np.median([abs(v["partner_slope_free"])
                                                                    for v in per.values()]))
            res["median_abs_partner_slope_locked"] = float(np.median([abs(v["partner_slope_locked"])
                                                                      for v in per.values()]))
            res["median_target_slope_free"] = float(np.median([v["target_slope_free"] for v in per.values()]))
            res["median_target_slope_locked"] = float(np.median([v["target_slope_locked"] for v in per.values()]))
        out.append(res)
    return out


# ----------------------------------------------------------------------------------------------------------------------
# Report


def write_report(out_dir: str | Path, summaries: Sequence[dict], claims: Sequence[dict], sweeps: Sequence[Sweep],
                 meta: dict) -> Path:
    """Write results.json, report.md and the figures into out_dir; returns the markdown path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"meta": meta, "claims": claims, "summaries": summaries}, indent=1,
                                                 default=float))
    figs = []
    free = [s for s in summaries if not s["locked"]]
    attrs = list(dict.fromkeys(s["attribute"] for s in free))
    combos = list(dict.fromkeys((s["method"], s["space"]) for s in free))

    # 1. Target curves: one panel per attribute, one line per method/space.
    if attrs:
        cols = min(4, len(attrs))
        rows = -(-len(attrs) // cols)
        fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
        for ax, a in zip(axes.flat, attrs):
            for s in free:
                if s["attribute"] == a:
                    ax.plot(s["alphas"], s["target_curve"], marker=".", label=f"{s['method']}/{s['space']}")
            ax.set_title(a, fontsize=9)
            ax.set_xlabel("alpha (sigma)", fontsize=8)
            ax.tick_params(labelsize=7)
        for ax in list(axes.flat)[len(attrs):]:
            ax.axis("off")
        axes.flat[0].legend(fontsize=6)
        fig.suptitle("Target score against alpha (held-out latents)", fontsize=10)
        fig.tight_layout()
        fig.savefig(out / "target_curves.png", dpi=110)
        plt.close(fig)
        figs.append(("Target effect", "target_curves.png"))

    # 2. Leakage bars.
    if attrs and combos:
        fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(attrs) * max(1, len(combos)) / 2), 3.4))
        width = 0.8 / len(combos)
        for j, (m, sp) in enumerate(combos):
            vals = [next((s["leakage"] for s in free if s["attribute"] == a and s["method"] == m and s["space"] == sp),
                         np.nan) for a in attrs]
            errs = [next((s["leakage_se"] for s in free if s["attribute"] == a and s["method"] == m
                          and s["space"] == sp), 0) for a in attrs]
            ax.bar(np.arange(len(attrs)) + j * width, vals, width, yerr=errs, label=f"{m}/{sp}", capsize=1)
        ax.set_xticks(np.arange(len(attrs)) + 0.4 - width / 2)
        ax.set_xticklabels(attrs, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("leakage (lower = cleaner)")
        ax.legend(fontsize=6, ncol=2)
        ax.set_title("Entanglement: rms slope of other attributes / target slope", fontsize=10)
        fig.tight_layout()
        fig.savefig(out / "leakage.png", dpi=110)
        plt.close(fig)
        figs.append(("Entanglement (leakage)", "leakage.png"))

    # 3. Entanglement matrix for the SVM in W when there is one, else the first method/space.
    if attrs and combos:
        m, sp = ("svm", "w") if ("svm", "w") in combos else combos[0]
        rows_ = [s for s in free if s["method"] == m and s["space"] == sp]
        cols_ = list(rows_[0]["slopes"])
        mat = np.array([[s["slopes"][c] for c in cols_] for s in rows_])
        fig, ax = plt.subplots(figsize=(max(5, 0.32 * len(cols_) + 2), max(2.5, 0.35 * len(rows_) + 1.5)))
        lim = float(np.nanmax(np.abs(mat))) or 1.0
        im = ax.imshow(mat, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
        ax.set_yticks(range(len(rows_)))
        ax.set_yticklabels([s["attribute"] for s in rows_], fontsize=7)
        ax.set_xticks(range(len(cols_)))
        ax.set_xticklabels(cols_, rotation=90, fontsize=6)
        fig.colorbar(im, ax=ax, label="slope (pop. std per sigma)")
        ax.set_title(f"Entanglement matrix ({m}/{sp}): edited attribute (rows) vs judged attribute", fontsize=9)
        fig.tight_layout()
        fig.savefig(out / "entanglement_matrix.png", dpi=110)
        plt.close(fig)
        figs.append((f"Entanglement matrix ({m}/{sp})", "entanglement_matrix.png"))

    # 4. Realism against alpha (mean over attributes, per method/space).
    keys = [k for k in ("kid", "fd", "disc", "latent_distance") if any(s.get(k) is not None for s in free)]
    if free and keys:
        fig, axes = plt.subplots(1, len(keys), figsize=(3.6 * len(keys), 3), squeeze=False)
        for ax, k in zip(axes.flat, keys):
            for m, sp in combos:
                vals = [s[k] for s in free if s["method"] == m and s["space"] == sp and s.get(k) is not None]
                if vals:
                    ax.plot(free[0]["alphas"], np.mean(vals, axis=0), marker=".", label=f"{m}/{sp}")
            ax.set_title({"kid": "KID vs reference (embeddings)", "fd": "FD vs reference (embeddings)",
                          "disc": "discriminator logit",
                          "latent_distance": "Mahalanobis distance of w"}[k], fontsize=9)
            ax.set_xlabel("alpha (sigma)", fontsize=8)
        axes.flat[0].legend(fontsize=6)
        fig.tight_layout()
        fig.savefig(out / "realism.png", dpi=110)
        plt.close(fig)
        figs.append(("Realism against alpha", "realism.png"))

    # 5. Image strips: per attribute, one row per method/space, columns = alphas.
    for a in attrs:
        rows_ = [sw for sw in sweeps if sw.attribute == a and not sw.locked and sw.strip is not None]
        if not rows_:
            continue
        A = rows_[0].strip.shape[0]
        fig, axes = plt.subplots(len(rows_), A, figsize=(0.9 * A + 1.2, 0.95 * len(rows_) + 0.4), squeeze=False)
        for r, sw in enumerate(rows_):
            for c in range(A):
                ax = axes[r, c]
                ax.imshow(sw.strip[c])
                ax.set_xticks([])
                ax.set_yticks([])
                if r == 0:
                    ax.set_title(f"{sw.alphas[c]:+g}", fontsize=7)
            axes[r, 0].set_ylabel(f"{sw.method}\n{sw.space}", fontsize=6, rotation=0, ha="right", va="center")
        fig.suptitle(f"{a}: one held-out latent, alpha in sigma", fontsize=9)
        fig.tight_layout()
        name = f"strip_{''.join(ch if ch.isalnum() else '_' for ch in a)}.png"
        fig.savefig(out / name, dpi=100)
        plt.close(fig)
        figs.append((f"Strip: {a}", name))

    lines = [f"# Direction evaluation: {meta.get('model', '')}", ""]
    lines += [f"- {k}: `{v}`" for k, v in meta.items()]
    lines += ["", "## Claims", "", "| claim | verdict | numbers |", "|---|---|---|"]
    for c in claims:
        nums = {k: v for k, v in c.items() if k not in ("claim", "verdict", "per_attribute", "cases", "note")}
        lines.append(f"| {c['claim']} | **{c['verdict']}** | "
                     + ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in nums.items())
                     + " |")
    lines += ["", "## Figures", ""] + [f"### {t}\n\n![{t}]({f})\n" for t, f in figs]
    lines += ["## Per entry", "", "| entry | target slope | leakage (± s.e.) | identity change | flips ±2 | "
              "latent dist. at max alpha |", "|---|---|---|---|---|---|"]
    for s in summaries:
        flips = s.get("flip_rate", {})
        fl = "/".join("-" if flips.get(k) is None else f"{flips[k]:.2f}" for k in ("+2", "-2")) if flips else "-"
        ic = f"{s['identity_change']:.3f}" if "identity_change" in s else "-"
        lines.append(f"| {s['name']} | {s['target_slope']:.3f} | {s['leakage']:.3f} ± {s['leakage_se']:.3f} | {ic} | "
                     f"{fl} | {s['latent_distance'][-1]:.2f} |")
    md = out / "report.md"
    md.write_text("\n".join(lines) + "\n")
    return md
