"""A synthetic latent world with known attribute normals: how clean is each direction method?

    python benchmarks/synthetic_directions.py [--n 5000] [--dim 128] [--repeats 5]

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

import numpy as np

from editor import directions as D
from editor.bank import one_blas_thread

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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=5000)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--sharpness", type=float, default=4.0, help="logit slope a (per std of the projection)")
    args = p.parse_args()
    methods = ("meandiff", "logreg", "svm", "mahalanobis@mean", "meandiff+lock", "svm+lock")
    res = {m: [] for m in methods}
    cos_true = {m: [] for m in methods}
    with one_blas_thread():
        for r in range(args.repeats):
            rng = np.random.default_rng(r)
            sigma, normals = make_world(rng, args.dim)
            x = rng.multivariate_normal(np.zeros(args.dim), sigma, size=args.n)
            proj = x @ normals.T  # [N, k]
            proj /= proj.std(axis=0)
            labels = rng.random(proj.shape) < 1 / (1 + np.exp(-args.sharpness * proj))
            for t, name in enumerate(ATTRS):
                y = labels[:, t].astype(float)
                partners = [ATTRS.index(b if a == name else a) for a, b in CORR if name in (a, b)]
                dirs = {
                    "meandiff": D.fit_confident(D.mean_difference, x, y, np.random.default_rng(0), 0.5).vector,
                    "logreg": D.fit_confident(D.logistic_regression, x, y, np.random.default_rng(0), 0.5).vector,
                    "svm": D.fit_confident(D.svm_boundary, x, y, np.random.default_rng(0), 0.5).vector,
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


if __name__ == "__main__":
    main()
