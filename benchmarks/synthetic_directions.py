"""Synthetic latent worlds with known answers: how well does each direction method recover the truth?

    python -m benchmarks.synthetic_directions [--n 5000] [--dim 128] [--repeats 5]            # study 'leakage'
    python -m benchmarks.synthetic_directions --study planted [--dims 256,512] [--repeats 2]  # study 'planted'

Study 'planted' (which method should be the bank's default): latents x ~ N(0, Σ) with eigenvalues ∝ (1 + i)^-slope in
a random basis (slope 0: isotropic, like Z; 1.4: a trained W's steep spectrum, e.g. the demo generator's W falls from
5.6 to 0.007 over 128 dimensions), and one attribute whose score depends on x only through t = n·x / std(n·x) along
a random unit direction n. Score models (what a labeller returns):
  logitnoise  sigmoid(4t + ε), ε ~ N(0, 1), float32: a classifier's probability, its errors in its logit
  sharp       sigmoid(12t + ε), float32: a confident classifier (many probabilities round to exactly 0 or 1)
  probnoise   clip(sigmoid(4t) + 0.15 ε, 0, 1): probabilities with additive noise (e.g. averaged ratings)
  logit       4t + ε: an unbounded score (a logit, a CLIP score difference, a regression value)
  binary      Bernoulli(sigmoid(4t)): 0/1 labels
Every method holds out 30 % for validation, with the same seed: the InterFaceGAN-protocol classifiers
(`fit_confident`: the top/bottom `share`, limited for [0, 1] scores as `bank.effective_share` does) and the fits of
every sample's score (`fit_scores`). The number is cos(fitted normal, n), mean over D × slope × repeats.

Study 'leakage':
Latents x ~ N(0, Σ). Attribute k's logit is a·(n_k·x) for orthonormal true normals n_k; labels are Bernoulli.
Correlations between attributes (as in the toon world: age -> grey hair, beard -> no lipstick, long hair ->
lipstick, smiling -> mouth open) come from Σ, which correlates the projections n_k·x; the rest of Σ is anisotropic.
This is the model under which InterFaceGAN's argument holds (a linear boundary per attribute, correlated data), so
the numbers say how well each method, fitted on N samples, recovers the clean edit, not whether a trained GAN obeys
the model.
An edit along d moves attribute k's logit by a·(n_k·d), so the leakage of a direction for target t is
rms_{k != t}(n_k·d) / |n_t·d| (0 = clean), the same definition the image-space evaluation uses, here exact.
"+lock" rows lock the target's correlated partners (their SVM directions) by conditional editing. Prints a markdown
table (mean ± s.d. over the targets of all repeats).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.stats import rankdata
from sklearn.linear_model import LogisticRegression

from editor import directions as D
from editor.bank import effective_share, one_blas_thread

ATTRS = ("age", "grey_hair", "beard", "lipstick", "long_hair", "smiling", "mouth_open", "eyeglasses")
# Target correlation of the attribute projections n_j·x (the deliberate correlations of the toon world).
CORR = {("age", "grey_hair"): 0.6, ("age", "eyeglasses"): 0.3, ("beard", "lipstick"): -0.5,
        ("beard", "long_hair"): -0.4, ("long_hair", "lipstick"): 0.4, ("smiling", "mouth_open"): 0.5}


def make_world(rng, dim: int):
    """Σ and orthonormal true normals n_k whose projections n_k·x have the correlations in CORR.

    Σ = Nᵀ C N + P⊥ A P⊥: on the span of the normals N [k, dim] the covariance is the attribute correlation C; on the
    orthogonal complement an anisotropic spectrum (like a trained W space). Editing along the true normal n_t then
    moves no other attribute (leakage 0): any leakage of a fitted direction is the method's error.
    """
    k = len(ATTRS)
    c = np.eye(k)
    for (a, b), r in CORR.items():
        i, j = ATTRS.index(a), ATTRS.index(b)
        c[i, j] = c[j, i] = r
    q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    normals = q[:, :k].T  # [k, dim] orthonormal
    rest = q[:, k:]  # [dim, dim - k]
    evals = 2.0 / (1.0 + np.arange(dim - k)) ** 0.7
    sigma = normals.T @ c @ normals + (rest * evals) @ rest.T
    return sigma, normals


def leakage(d: np.ndarray, normals: np.ndarray, t: int, exclude=()) -> float:
    proj = normals @ d
    others = [k for k in range(len(normals)) if k != t and k not in exclude]
    return float(np.sqrt(np.mean(proj[others] ** 2)) / abs(proj[t]))


def leakage_study(args) -> None:
    methods = ("meandiff", "partial", "logreg", "svm", "ridge", "mahalanobis@mean", "meandiff+lock", "svm+lock")
    res = {m: [] for m in methods}
    cos_true = {m: [] for m in methods}
    for r in range(args.repeats):
        rng = np.random.default_rng(r)
        sigma, normals = make_world(rng, args.dim)
        x = rng.multivariate_normal(np.zeros(args.dim), sigma, size=args.n)
        proj = x @ normals.T  # [N, k]
        proj /= proj.std(axis=0)
        labels = rng.random(proj.shape) < 1 / (1 + np.exp(-args.sharpness * proj))
        partial = D.partial_mean_differences(x, {a: labels[:, k].astype(float) for k, a in enumerate(ATTRS)})
        for t, name in enumerate(ATTRS):
            y = labels[:, t].astype(float)
            partners = [ATTRS.index(b if a == name else a) for a, b in CORR if name in (a, b)]
            dirs = {
                "meandiff": D.fit_confident(D.mean_difference, x, y, np.random.default_rng(0), 0.5).vector,
                "logreg": D.fit_confident(D.logistic_regression, x, y, np.random.default_rng(0), 0.5).vector,
                "svm": D.fit_confident(D.svm_boundary, x, y, np.random.default_rng(0), 0.5).vector,
                "ridge": D.fit_scores(D.ridge_regression, x, y, np.random.default_rng(0)).vector,
                "partial": partial[name].vector,  # all attributes' labels at once, the others held fixed
            }
            g = D.fit_class_gaussians(x, y.astype(bool), rank=32)
            start = g.negative.mean[None]
            dirs["mahalanobis@mean"] = D.unit((D.gaussian_walk(start, g, 0.01, n_steps=1) - start)[0])
            svm_w = {}
            for k in partners:
                svm_w[k] = D.fit_confident(D.svm_boundary, x, labels[:, k].astype(float),
                                           np.random.default_rng(0), 0.5).vector
            locks = np.array(list(svm_w.values()))
            for m in ("meandiff", "svm"):
                dirs[f"{m}+lock"] = D.condition(dirs[m], locks) if partners else dirs[m]
            for m in methods:
                res[m].append(leakage(dirs[m], normals, t))
                cos_true[m].append(abs(float(dirs[m] @ normals[t])))
    print(f"synthetic world: N={args.n}, D={args.dim}, {len(ATTRS)} attributes, {args.repeats} worlds\n")
    print("| method | leakage (rms other / target, lower = cleaner) | cos(direction, true normal) |")
    print("|---|---|---|")
    for m in methods:
        print(f"| {m} | {np.mean(res[m]):.3f} ± {np.std(res[m]):.3f} | {np.mean(cos_true[m]):.3f} ± "
              f"{np.std(cos_true[m]):.3f} |")


# ----------------------------------------------------------------------------------------------------------------------
# Study 'planted': one score direction, anisotropic latents, many score models

SCORE_MODELS = ("logitnoise", "sharp", "probnoise", "logit", "binary")
CONTINUOUS = ("logitnoise", "sharp", "probnoise", "logit")


def planted_world(rng: np.random.Generator, n: int, dim: int, slope: float, model: str):
    """(x [n, dim], scores [n], truth [dim]) for one score model (see the module docstring)."""
    q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    lam = (1.0 + np.arange(dim)) ** -float(slope)
    x = (rng.normal(size=(n, dim)) * np.sqrt(lam * dim / lam.sum())) @ q.T
    truth = D.unit(rng.normal(size=dim))
    t = x @ truth
    t = t / t.std()
    eps = rng.normal(size=n)
    sigmoid = lambda v: 1.0 / (1.0 + np.exp(-v))  # noqa: E731
    if model == "logitnoise":
        s = sigmoid(4 * t + eps).astype(np.float32).astype(np.float64)
    elif model == "sharp":
        s = sigmoid(12 * t + eps).astype(np.float32).astype(np.float64)
    elif model == "probnoise":
        s = np.clip(sigmoid(4 * t) + 0.15 * eps, 0.0, 1.0)
    elif model == "logit":
        s = 4 * t + eps
    elif model == "binary":
        s = (rng.random(n) < sigmoid(4 * t)).astype(np.float64)
    else:
        raise ValueError(f"unknown score model {model!r}; expected one of {SCORE_MODELS}")
    return x, s, truth


def soft_logistic(x, scores, l2: float = 0.01) -> D.LinearDirection:
    """Logistic regression with soft targets: each sample enters as a positive with weight p and as a negative with
    weight 1 − p (cross-entropy against the labeller's probability), p = the score for scores in [0, 1], else its
    empirical CDF (rank − 1/2) / N; centred, unit-RMS latents, penalty as the bank's logreg."""
    s = np.asarray(scores, dtype=np.float64)
    if s.min() < 0 or s.max() > 1:
        s = (rankdata(s) - 0.5) / s.size
    mean = x.mean(axis=0)
    scale = float(np.sqrt(np.mean((x - mean) ** 2)))
    xs = (x - mean) / scale
    pos, neg = s > 0, s < 1
    model = LogisticRegression(C=1.0 / l2, solver="newton-cholesky", max_iter=200).fit(
        np.vstack([xs[pos], xs[neg]]), np.r_[np.ones(pos.sum()), np.zeros(neg.sum())],
        sample_weight=np.r_[s[pos], 1 - s[neg]])
    w = model.coef_[0] / scale
    return D.make_direction(x, w, float(model.intercept_[0]) - float(w @ mean), labels=s > 0.5)


def planted_methods(shares):
    """{name: fit(x, scores, rng) -> LinearDirection}: every method of the study."""
    out = {}
    for share in shares:
        out[f"svm, top/bottom {share:g}"] = lambda x, s, rng, sh=share: D.fit_confident(
            D.svm_boundary, x, s, rng, share=effective_share(s, sh))
    out["logreg, top/bottom 0.25"] = lambda x, s, rng: D.fit_confident(
        D.logistic_regression, x, s, rng, share=effective_share(s, 0.25))
    out["meandiff, top/bottom 0.25"] = lambda x, s, rng: D.fit_confident(
        D.mean_difference, x, s, rng, share=effective_share(s, 0.25))
    out["least squares, raw scores"] = lambda x, s, rng: D.fit_scores(
        lambda a, b: D.ridge_regression(a, b, target="raw", alphas=(1e-9,)), x, s, rng)
    out["ridge (GCV), raw scores"] = lambda x, s, rng: D.fit_scores(
        lambda a, b: D.ridge_regression(a, b, target="raw"), x, s, rng)
    out["ridge (GCV), rank-normal scores [ridge]"] = lambda x, s, rng: D.fit_scores(D.ridge_regression, x, s, rng)
    out["logistic, soft targets"] = lambda x, s, rng: D.fit_scores(soft_logistic, x, s, rng)
    return out


def planted_study(args) -> None:
    dims = [int(d) for d in args.dims.split(",")]
    slopes = [float(v) for v in args.slopes.split(",")]
    models = [m.strip() for m in args.scores.split(",")]
    shares = [float(v) for v in args.shares.split(",")]
    methods = planted_methods(shares)
    cos = {}  # (method, model) -> [cos]
    by_world = {}  # (method, dim, slope) -> [cos] over the continuous models
    seconds = {m: [] for m in methods}
    t_start = time.perf_counter()
    for dim in dims:
        for slope in slopes:
            for model in models:
                for r in range(args.repeats):
                    rng = np.random.default_rng([dim, int(slope * 10), SCORE_MODELS.index(model), r])
                    x, s, truth = planted_world(rng, args.n, dim, slope, model)
                    for name, fit in methods.items():
                        t0 = time.perf_counter()
                        d = fit(x, s, np.random.default_rng(0))
                        seconds[name].append(time.perf_counter() - t0)
                        c = float(d.vector @ truth)
                        cos.setdefault((name, model), []).append(c)
                        if model in CONTINUOUS:
                            by_world.setdefault((name, dim, slope), []).append(c)
    print(f"planted score direction: N={args.n}, D in {dims}, slopes {slopes}, {args.repeats} world(s) each; "
          f"{time.perf_counter() - t_start:.0f} s\n")
    print("cos(fitted normal, planted direction), mean over D × slope × repeats (min in brackets):\n")
    cont = [m for m in models if m in CONTINUOUS]
    print("| method | " + " | ".join(models) + " | mean over " + ", ".join(cont) + " | s / fit |")
    print("|---|" + "---|" * (len(models) + 2))
    for name in methods:
        cells = []
        for model in models:
            v = cos.get((name, model))
            cells.append("—" if not v else f"{np.mean(v):.3f} ({np.min(v):.3f})")
        allc = [c for model in cont for c in cos.get((name, model), [])]
        complete = all(cos.get((name, model)) for model in cont)
        mean = f"{np.mean(allc):.3f}" if allc and complete else "—"
        print(f"| {name} | " + " | ".join(cells) + f" | {mean} | {np.mean(seconds[name]):.2f} |")
    print("\nBy world (mean over the continuous score models; — where a method does not apply to all of them):\n")
    worlds = [(dim, slope) for dim in dims for slope in slopes]
    print("| method | " + " | ".join(f"D={d}, slope {sl:g}" for d, sl in worlds) + " |")
    print("|---|" + "---|" * len(worlds))
    for name in methods:
        cells = []
        for dim, slope in worlds:
            v = by_world.get((name, dim, slope), [])
            cells.append(f"{np.mean(v):.3f}" if len(v) == len(cont) * args.repeats else "—")
        print(f"| {name} | " + " | ".join(cells) + " |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--study", choices=("leakage", "planted"), default="leakage")
    p.add_argument("--n", type=int, default=5000)
    p.add_argument("--repeats", type=int, default=None, help="worlds per setting (leakage 5, planted 1)")
    p.add_argument("--dim", type=int, default=128, help="leakage: latent size")
    p.add_argument("--sharpness", type=float, default=4.0, help="leakage: logit slope a (per std of the projection)")
    p.add_argument("--dims", default="256,512", help="planted: latent sizes")
    p.add_argument("--slopes", default="0,0.7,1.4", help="planted: spectrum slopes (0 = isotropic)")
    p.add_argument("--scores", default=",".join(SCORE_MODELS), help="planted: score models")
    p.add_argument("--shares", default="0.02,0.1,0.25,0.5", help="planted: InterFaceGAN top/bottom shares")
    args = p.parse_args()
    if args.repeats is None:
        args.repeats = 5 if args.study == "leakage" else 1
    with one_blas_thread():
        (leakage_study if args.study == "leakage" else planted_study)(args)


if __name__ == "__main__":
    main()
