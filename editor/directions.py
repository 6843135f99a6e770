"""Direction discovery in a StyleGAN latent space: pure functions on NumPy arrays (fits by scikit-learn).

Every function takes latents as a float matrix ``x`` of shape [N, D] (one row per sample: z, w, or the mean of a W+
layer range, see `Space`) and returns plain arrays or frozen dataclasses. Randomness comes only from a
``np.random.Generator`` passed in. Nothing here knows about torch or the generator.

Supervised methods (the attribute is given as per-sample scores or 0/1 labels):

- `mean_difference`      the unit vector between the two class centroids;
- `logistic_regression`  the normal of an L2-regularised logistic-regression hyperplane (scikit-learn);
- `svm_boundary`         a linear SVM (squared hinge, scikit-learn's LinearSVC / liblinear);
- `lda_boundary`         a regularised Fisher discriminant (scikit-learn's LinearDiscriminantAnalysis);
- `fit_confident`        InterFaceGAN's protocol around any of these: keep only the most confident top/bottom share of
                         the scores, split it into train / validation, fit, report the validation accuracy;
                         `linear_svm` is that protocol around the SVM;
- `ridge_regression`     a ridge regression of every sample's (rank-normalised) score: uses the continuous scores of
                         all samples instead of the labels of the extremes; `fit_scores` is its protocol (split,
                         fit, the same validation accuracy as `fit_confident`). The bank's default: it recovers a
                         planted direction best (docs/directions.md, "Which method by default");
- `fit_class_gaussians`  a Gaussian per class with a regularised covariance (top-k eigenvectors plus an isotropic
                         floor); `gaussian_walk` climbs the target class's log-density (or the log-odds) so the step
                         depends on where the latent is; `shrink_toward_mean` walks straight to the class mean.

Unsupervised methods: `pca_directions` (GANSpace: principal components of W, scikit-learn's PCA) and
`sefa_directions` (SeFa: eigenvectors of AᵀA for the modulation (affine) weights A of chosen layers).

Conditional editing: `condition` removes from a direction its components along any number of locked directions
(pivoted QR), so the result is exactly orthogonal to all of them.

Units: every direction is a unit vector n with the standard deviation σ of the samples' projections x·n stored beside
it, so an edit ``x + α·σ·n`` moves α standard deviations whatever the attribute. Linear boundaries keep their
intercept b (score = x·n + b, in latent units), which InterFaceGAN drops: ``(x·n + b) / σ`` tells where a latent sits
relative to the boundary in slider units.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
from scipy.stats import norm, rankdata, spearmanr
from sklearn.covariance import ShrunkCovariance
from sklearn.decomposition import PCA
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.svm import LinearSVC

__all__ = [
    "LinearDirection",
    "ClassGaussian",
    "ClassGaussians",
    "PCAResult",
    "Space",
    "as_labels",
    "select_confident",
    "train_val_split",
    "unit",
    "projection_sigma",
    "accuracy",
    "make_direction",
    "mean_difference",
    "logistic_regression",
    "svm_boundary",
    "lda_boundary",
    "fit_confident",
    "linear_svm",
    "RIDGE_ALPHAS",
    "score_threshold",
    "normal_scores",
    "ridge_regression",
    "fit_scores",
    "fit_class_gaussians",
    "gaussian_walk",
    "shrink_toward_mean",
    "pca_directions",
    "sefa_directions",
    "orthonormal_basis",
    "condition",
    "fit_space_latents",
]

_EPS = 1e-12


# ----------------------------------------------------------------------------------------------------------------------
# Input checks and small helpers


def _as_matrix(x, name: str = "x") -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty [N, D] matrix of latents, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def _as_vector(v, dim: int | None = None, name: str = "direction") -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    if v.ndim == 2 and v.shape[0] == 1:
        v = v[0]
    if v.ndim != 1:
        raise ValueError(f"{name} must be a vector [D] (or [1, D]), got shape {v.shape}")
    if dim is not None and v.shape[0] != dim:
        raise ValueError(f"{name} has length {v.shape[0]} but the latents have D={dim}")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return v


def as_labels(labels, n: int) -> np.ndarray:
    """Check and convert binary labels to a bool vector [N] (accepts bool, 0/1 ints or floats)."""
    y = np.asarray(labels)
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"labels must be a vector of length N={n}, got shape {y.shape}")
    if y.dtype != bool:
        if not np.all(np.isin(y, (0, 1))):
            raise ValueError("labels must be 0/1 or boolean; threshold continuous scores first (or use linear_svm, "
                             "which selects the confident top/bottom share of scores)")
        y = y.astype(bool)
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == n:
        raise ValueError(f"labels must contain both classes, got {n_pos} positive of {n}")
    return y


def unit(v) -> np.ndarray:
    """Return v / |v| for a vector [D]; raises ValueError for a zero vector."""
    v = _as_vector(v)
    norm = float(np.linalg.norm(v))
    if norm < _EPS:
        raise ValueError("cannot normalise a zero direction (the classes may coincide, or the direction lies entirely "
                         "in the span of the locked directions)")
    return v / norm


def projection_sigma(x, direction) -> float:
    """Standard deviation of the projections x·n of samples x [N, D] on the unit vector n [D]."""
    x = _as_matrix(x)
    n = unit(_as_vector(direction, x.shape[1]))
    return float(np.std(x @ n))


def select_confident(scores, share: float) -> tuple[np.ndarray, np.ndarray]:
    """InterFaceGAN's sample selection: the indices of the `share` highest and `share` lowest scores.

    Args:
        scores: [N] attribute scores (any real values: probabilities, logits, 0/1 labels).
        share: fraction of N taken from each end, in (0, 0.5]; 0.5 keeps everything.
    Returns:
        (indices [M], labels [M] bool): True for the top end, False for the bottom end.
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1 or s.shape[0] < 4:
        raise ValueError(f"scores must be a vector of at least 4 values, got shape {s.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores contain NaN or infinite values")
    if not 0.0 < share <= 0.5:
        raise ValueError(f"share must be in (0, 0.5], got {share}")
    k = max(2, int(round(share * s.shape[0])))
    k = min(k, s.shape[0] // 2)
    if np.ptp(s) == 0:
        raise ValueError("all scores are equal: nothing separates the classes")
    order = np.argsort(s, kind="stable")
    bottom, top = order[:k], order[-k:]
    tie = s[top].min()
    if tie <= s[bottom].max():
        # Both ends reach into a run of equal scores (e.g. 0/1 labels): the tied samples belong to no end, unless the
        # tied value is itself the extreme of one end (then that end keeps them and the other drops them).
        above, below = top[s[top] > tie], bottom[s[bottom] < tie]
        top = above if above.size else top
        bottom = below if below.size else bottom
    idx = np.concatenate([top, bottom])
    y = np.concatenate([np.ones(top.size, bool), np.zeros(bottom.size, bool)])
    return idx, y


def train_val_split(n: int, val_share: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random split of range(n) into (train indices, validation indices); val_share in [0, 1)."""
    if not isinstance(rng, np.random.Generator):
        raise ValueError("rng must be a numpy.random.Generator (np.random.default_rng(seed)), got "
                         f"{type(rng).__name__}")
    if not 0.0 <= val_share < 1.0:
        raise ValueError(f"val_share must be in [0, 1), got {val_share}")
    perm = rng.permutation(n)
    n_val = int(round(val_share * n))
    return perm[n_val:], perm[:n_val]


# ----------------------------------------------------------------------------------------------------------------------
# The result type of every linear method


@dataclass(frozen=True)
class LinearDirection:
    """A unit direction with its slider unit and (for classifiers) its boundary.

    The attribute's signed distance from the boundary is ``x @ vector + intercept`` (latent units); an edit is
    ``x + alpha * sigma * vector`` with alpha in standard deviations of the samples' projections.
    """

    vector: np.ndarray  # [D] unit norm, pointing toward the positive class
    intercept: float  # boundary offset b: x·n + b = 0 on the boundary (latent units)
    sigma: float  # std of the fitting samples' projections x·n (slider unit)
    train_accuracy: float | None = None  # accuracy of sign(x·n + b) on the samples it was fitted on
    val_accuracy: float | None = None  # the same on held-out samples (None when there were none)
    n_samples: int = 0  # samples used to fit
    extra: dict = field(default_factory=dict)  # method-specific numbers (e.g. iterations, chosen share)


def accuracy(x, labels, vector, intercept: float) -> float:
    """Fraction of samples whose side of the boundary x·n + b = 0 matches their label."""
    x = _as_matrix(x)
    y = np.asarray(labels).astype(bool)
    if y.shape != (x.shape[0],):
        raise ValueError(f"labels must have shape ({x.shape[0]},), got {y.shape}")
    pred = x @ _as_vector(vector, x.shape[1]) + intercept > 0
    return float(np.mean(pred == y))


def make_direction(x, vector, intercept: float = 0.0, labels=None, x_val=None, labels_val=None,
                   extra: dict | None = None) -> LinearDirection:
    """Normalise `vector` (rescaling the intercept with it), measure σ on x and the accuracies where labels are given.

    Args:
        x: [N, D] the samples that define the slider unit (and the training accuracy when `labels` is given).
        vector: [D] any non-zero vector; intercept: its boundary offset (x·vector + intercept = 0).
        labels / x_val, labels_val: optional [N] and [M, D] + [M] for the train / validation accuracy.
    """
    x = _as_matrix(x)
    v = _as_vector(vector, x.shape[1])
    norm = float(np.linalg.norm(v))
    if norm < _EPS:
        raise ValueError("the fitted direction is zero: the classes are not separated in this space")
    n, b = v / norm, float(intercept) / norm
    train_acc = accuracy(x, labels, n, b) if labels is not None else None
    val_acc = None
    if x_val is not None and labels_val is not None and len(labels_val) > 0:
        val_acc = accuracy(x_val, labels_val, n, b)
    return LinearDirection(vector=n, intercept=b, sigma=float(np.std(x @ n)), train_accuracy=train_acc,
                           val_accuracy=val_acc, n_samples=int(x.shape[0]), extra=dict(extra or {}))


# ----------------------------------------------------------------------------------------------------------------------
# Supervised linear methods


def mean_difference(x, labels) -> LinearDirection:
    """The unit vector from the negative-class centroid to the positive-class centroid.

    The intercept puts the boundary half-way between the centroids. x: [N, D]; labels: [N] 0/1 or bool.
    """
    x = _as_matrix(x)
    y = as_labels(labels, x.shape[0])
    mu1, mu0 = x[y].mean(axis=0), x[~y].mean(axis=0)
    v = mu1 - mu0
    return make_direction(x, v, -float(v @ (mu0 + mu1)) / 2.0, labels=y)


def partial_mean_differences(x, scores: dict, duplicate_corr: float = 0.7) -> dict[str, LinearDirection]:
    """Every attribute's mean difference with the other labelled attributes held fixed.

    For each attribute the latents are regressed on its labels and on its partners' (least squares,
    x ≈ c + a s + Σ_j b_j s_j: the reverse of ridge, which regresses one score on the latent); a is how the latent
    moves when the attribute changes and the partners do not. Where attributes co-occur (glasses with age, long hair
    with no beard) the plain mean difference carries the partners along; this does not, and it still points along
    the latent's own variation (not along the low-variance boundary normals the generator hardly responds to).
    Not held fixed: near-duplicates of the attribute (|correlation of the labels| >= `duplicate_corr`: 'old' and
    'age', 'eyeglasses' and 'glasses_style=none'), holding which would leave only noise to move, and every level of
    a one-hot group ('name=level') that holds one of those or the attribute itself (its levels exclude each other).

    Args:
        x: [N, D] latents. scores: {attribute: [N]} from one labeller; probability-like scores (all in [0, 1]) enter
            as 0/1 labels at 0.5, others as they are; each attribute is fitted on the samples where it and its
            partners are labelled (NaN = unlabelled), the partners chosen on the fully labelled ones.
    Returns:
        {attribute: LinearDirection}, leaving out attributes that do not vary. The boundary lies half-way between
        the two classes' mean projections (binary) or at the mean projection (continuous); extra['held'] counts the
        partners held fixed.
    """
    x = _as_matrix(x)
    names = list(scores)
    if not names:
        raise ValueError("no attributes to fit")
    s = np.stack([np.asarray(scores[k], dtype=np.float64).reshape(-1) for k in names], axis=1)
    if s.shape[0] != x.shape[0]:
        raise ValueError(f"scores have {s.shape[0]} samples, x has {x.shape[0]}")
    finite = np.isfinite(s)
    binary = np.array([bool(np.all((col[ok] >= 0.0) & (col[ok] <= 1.0))) for col, ok in zip(s.T, finite.T)])
    with np.errstate(invalid="ignore"):
        labels = np.where(binary, s > 0.5, s).astype(np.float64)
    labels[~finite] = np.nan
    usable = finite.mean(axis=0) >= 0.5  # partners must be labelled on most samples
    all_rows = finite[:, usable].all(axis=1)
    if all_rows.sum() <= usable.sum() + 1:
        raise ValueError(f"{int(all_rows.sum())} fully labelled samples cannot separate {int(usable.sum())} attributes")
    with np.errstate(invalid="ignore"):
        varies = np.nanstd(labels, axis=0) > 0
    group = [k.split("=", 1)[0] if "=" in k else None for k in names]
    out = {}
    for i, name in enumerate(names):
        if not varies[i]:
            continue
        both = all_rows & finite[:, i]  # the correlations with the partners, where all are labelled
        t = labels[both, i] - labels[both, i].mean()
        others = labels[both][:, usable]
        others = others - others.mean(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.nan_to_num(others.T @ t / np.sqrt((others ** 2).sum(axis=0) * (t ** 2).sum()))
        near = np.zeros(len(names), dtype=bool)
        near[usable] = np.abs(r) >= duplicate_corr
        excluded = {group[j] for j in np.flatnonzero(near) if group[j] is not None} | {group[i]} - {None}
        held = [j for j in range(len(names)) if j != i and usable[j] and varies[j] and not near[j]
                and group[j] not in excluded]
        rows = finite[:, [i, *held]].all(axis=1)  # this attribute's and its partners' labelled samples
        xi, li = x[rows], labels[rows]
        if np.ptp(li[:, i]) == 0:  # one class only where the partners are labelled
            continue
        design = np.column_stack([np.ones(xi.shape[0]), li[:, i], li[:, held]])
        v = np.linalg.lstsq(design, xi, rcond=None)[0][1]
        if np.linalg.norm(v) < _EPS:
            continue
        p = xi @ v
        extra = {"held": len(held)}
        if binary[i]:
            y = li[:, i] > 0.5
            out[name] = make_direction(xi, v, -float(p[y].mean() + p[~y].mean()) / 2.0, labels=y, extra=extra)
        else:
            out[name] = make_direction(xi, v, -float(p.mean()), extra=extra)
    return out


def _standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Centre x [N, D] and scale it to unit overall RMS: (xs, mean [D], scale). The fits work in these units, so a
    penalty means the same in Z and W, and a centred intercept is small (see `svm_boundary`)."""
    mean = x.mean(axis=0)
    scale = float(np.sqrt(np.mean((x - mean) ** 2))) or 1.0
    return (x - mean) / scale, mean, scale


def _input_units(coef: np.ndarray, intercept: float, mean: np.ndarray, scale: float) -> tuple[np.ndarray, float]:
    """Map a boundary xs·coef + intercept = 0 fitted on `_standardise`d latents back to the input latents."""
    w = np.asarray(coef, dtype=np.float64).reshape(-1) / scale
    return w, float(intercept) - float(w @ mean)


def logistic_regression(x, labels, l2: float = 0.01, max_iter: int = 100, tol: float = 1e-8) -> LinearDirection:
    """Normal of the L2-regularised logistic-regression hyperplane (scikit-learn, Newton-Cholesky solver).

    Minimises ``sum_i log(1 + exp(-s_i (x_i·w + b))) + l2/2 |w|²`` (s_i = ±1; the bias is not penalised), which is
    scikit-learn's objective with C = 1/l2 (l2 = 0: no penalty). Features are centred and scaled to unit overall RMS
    before fitting (so `l2` means the same in Z and W) and the result is mapped back. x: [N, D]; labels: [N] 0/1 or
    bool. `max_iter` / `tol`: the solver's Newton iterations and gradient tolerance.

    Keep `l2` small: on (nearly) separable data, such as InterFaceGAN's confident extremes, a strong penalty pulls the
    normal toward the mean difference (a large penalty's solution is proportional to it). In a test world with
    correlated attributes, the unwanted component fell from 0.51 (l2=10) to 0.33 (1), 0.22 (0.1) and 0.13 (0.001).
    """
    x = _as_matrix(x)
    y = as_labels(labels, x.shape[0])
    if l2 < 0:
        raise ValueError(f"l2 must be >= 0, got {l2}")
    xs, mean, scale = _standardise(x)
    model = LogisticRegression(C=1.0 / l2 if l2 > 0 else np.inf, solver="newton-cholesky", tol=tol,
                               max_iter=max_iter).fit(xs, y)
    w, b = _input_units(model.coef_[0], model.intercept_[0], mean, scale)
    return make_direction(x, w, b, labels=y, extra={"iterations": int(np.max(model.n_iter_)), "l2": float(l2)})


# liblinear fits the intercept as the weight of an extra constant feature of this value, so the intercept's penalty is
# (b / scale)² / 2. On centred, unit-RMS latents a scale of 10 makes that penalty 1 % of a unit weight's: the intercept
# is, in effect, not shrunk (the hand-written solver this replaced left it unpenalised; same directions, see
# docs/directions.md), and the problem stays well conditioned (a scale of 100 stalled liblinear's dual solver).
_SVM_INTERCEPT_SCALING = 10.0
_SVM_PRIMAL_TRIES = 30  # Newton iterations of the primal solver before `svm_boundary` switches to the dual one


def svm_boundary(x, labels, c: float = 1.0, max_iter: int = 10000, tol: float = 1e-5) -> LinearDirection:
    """A linear SVM fitted on all given samples (scikit-learn's LinearSVC, liblinear): squared hinge loss
    ``1/2|w|² + c·Σ max(0, 1 − s(x·w + b))²`` on centred, unit-RMS latents, the intercept practically unpenalised
    (see `_SVM_INTERCEPT_SCALING`). See `linear_svm` for the full InterFaceGAN protocol. x: [N, D]; labels: [N] 0/1
    or bool; `max_iter` / `tol`: the solver's.

    Solver: with fewer samples than dimensions, liblinear's dual coordinate descent (scikit-learn's own choice).
    Otherwise the primal trust-region Newton method first, and the dual if the primal has not converged within
    `_SVM_PRIMAL_TRIES` iterations: the primal converges in about 20 iterations when many samples violate the margin
    (3,500 × 512, median split: 0.6 s, where the dual had not converged after 10,000 epochs), but needs hundreds on
    (nearly) separable data such as InterFaceGAN's confident extremes, where the dual is fast (1,750 × 512: 0.1 s
    against 1.2 s; 7,000 × 512: 4,700 epochs, 2.3 s, where the primal stopped after 63 iterations 1.4° short of the
    optimum).
    """
    x = _as_matrix(x)
    y = as_labels(labels, x.shape[0])
    if c <= 0:
        raise ValueError(f"c must be > 0, got {c}")
    xs, mean, scale = _standardise(x)
    if x.shape[0] < x.shape[1]:
        attempts = [("dual", max_iter)]
    else:
        attempts = [("primal", min(max_iter, _SVM_PRIMAL_TRIES)), ("dual", max_iter)]
    for k, (solver, budget) in enumerate(attempts):
        last = k == len(attempts) - 1
        with warnings.catch_warnings():
            if not last:  # not converging here only means: try the other solver
                warnings.simplefilter("ignore", ConvergenceWarning)
            model = LinearSVC(C=c, loss="squared_hinge", dual=solver == "dual",
                              intercept_scaling=_SVM_INTERCEPT_SCALING, tol=tol, max_iter=budget,
                              random_state=0).fit(xs, y)
        iterations = int(np.max(model.n_iter_))
        if iterations < budget:
            break
    w, b = _input_units(model.coef_[0], model.intercept_[0], mean, scale)
    return make_direction(x, w, b, labels=y, extra={"iterations": iterations, "solver": solver,
                                                     "converged": iterations < budget, "c": float(c)})


def lda_boundary(x, labels, shrinkage: float = 0.05) -> LinearDirection:
    """Regularised Fisher discriminant (scikit-learn's LinearDiscriminantAnalysis): the normal ``S⁻¹ (μ1 − μ0)``, S
    the pooled within-class covariance shrunk toward ``tr(S)/D · I`` by `shrinkage` in [0, 1] (1: the mean
    difference); the boundary sits half-way between the class means (equal priors). x: [N, D]; labels: [N] 0/1 or
    bool."""
    x = _as_matrix(x)
    if x.shape[0] < 2:
        raise ValueError(f"x must be a finite [N, D] matrix with N >= 2, got shape {x.shape}")
    y = as_labels(labels, x.shape[0])
    if not 0.0 <= shrinkage <= 1.0:
        raise ValueError(f"shrinkage must be in [0, 1], got {shrinkage}")
    model = LinearDiscriminantAnalysis(
        solver="lsqr", covariance_estimator=ShrunkCovariance(shrinkage=shrinkage, store_precision=False)).fit(x, y)
    v = model.coef_[0]  # [D], toward the positive class (classes_ = [False, True])
    mu0, mu1 = model.means_
    return make_direction(x, v, -float(v @ (mu0 + mu1)) / 2.0, labels=y, extra={"shrinkage": float(shrinkage)})


# Ridge penalties tried by generalised cross-validation, per training sample, on centred unit-RMS latents.
RIDGE_ALPHAS = tuple(float(a) for a in np.logspace(-6, 1, 15))


def score_threshold(scores) -> float:
    """Where a score says "has the attribute": 0.5 for probability-like scores (all in [0, 1]), else the median."""
    s = np.asarray(scores, dtype=np.float64)
    s = s[np.isfinite(s)]
    if s.size == 0:
        raise ValueError("no finite scores")
    return 0.5 if s.min() >= 0.0 and s.max() <= 1.0 else float(np.median(s))


def normal_scores(scores) -> np.ndarray:
    """Rank-based normal scores: Φ⁻¹((rank − 1/2) / N) with average ranks for ties, for finite scores [N] -> [N].

    Any increasing function of the scores gives the same result, so probabilities, logits and raw values of one
    classifier all become the same Gaussian target."""
    s = np.asarray(scores, dtype=np.float64)
    return norm.ppf((rankdata(s) - 0.5) / s.shape[0])


def ridge_regression(x, scores, target: str = "normal", alphas: Sequence[float] = RIDGE_ALPHAS) -> LinearDirection:
    """The normal of a ridge regression of every sample's score on its latent (no top/bottom selection).

    target 'normal' regresses the rank-based `normal_scores` (robust to saturated probabilities and heavy tails; for
    0/1 labels it is the regularised Fisher discriminant), 'raw' the scores themselves. The penalty is chosen among
    `alphas` (per sample, on centred unit-RMS latents) by generalised cross-validation (scikit-learn's RidgeCV). The
    boundary is where the predicted score crosses `score_threshold`. With Gaussian latents and a score that depends on
    x only through n·x (plus independent noise), the population coefficient is parallel to n whatever the link.
    x: [N, D]; scores: [N] finite, not all equal.
    """
    x = _as_matrix(x)
    s = np.asarray(scores, dtype=np.float64)
    if s.shape != (x.shape[0],):
        raise ValueError(f"scores must have shape ({x.shape[0]},) to match x {x.shape}, got {s.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores contain NaN or infinite values (fit_scores skips unlabelled samples)")
    if np.ptp(s) == 0:
        raise ValueError("all scores are equal: nothing to regress")
    if target not in ("normal", "raw"):
        raise ValueError(f"target must be 'normal' or 'raw', got {target!r}")
    alphas = np.asarray(alphas, dtype=np.float64)
    if alphas.ndim != 1 or alphas.size == 0 or np.any(alphas <= 0):
        raise ValueError(f"alphas must be a non-empty list of positive penalties, got {alphas}")
    n = x.shape[0]
    t = normal_scores(s) if target == "normal" else s
    tau = score_threshold(s)
    if target == "normal":  # the threshold on the normal-score scale: Φ⁻¹ of the scores' mid-rank CDF at tau
        below = float(np.mean(s < tau) + 0.5 * np.mean(s == tau))
        tau_t = float(norm.ppf(np.clip(below, 0.5 / n, 1 - 0.5 / n)))
    else:
        tau_t = tau
    xs, mean, scale = _standardise(x)
    # GCV through the thin SVD of the latents when N > D (measured: half the time of scikit-learn's 'auto' choice at
    # 3,500 × 512), through the eigenvectors of the N × N Gram matrix otherwise.
    model = RidgeCV(alphas=alphas * n, gcv_mode="svd" if n > x.shape[1] else "eigen").fit(xs, t)
    w, b = _input_units(model.coef_, float(model.intercept_) - tau_t, mean, scale)
    return make_direction(x, w, b, labels=s > tau,
                          extra={"target": target, "alpha": float(model.alpha_) / n, "threshold": tau})


def fit_confident(fit, x, scores, rng: np.random.Generator, share: float = 0.25, val_share: float = 0.3
                  ) -> LinearDirection:
    """InterFaceGAN's protocol around any boundary method ``fit(x, labels) -> LinearDirection``.

    1. keep only the `share` highest-scoring samples (positive) and the `share` lowest (negative);
    2. split them at random into train / validation (`val_share`);
    3. fit on the train part; 4. report the validation accuracy. σ is measured on *all* N samples (the population
    the slider moves in), not only on the extremes. Samples with a NaN score (unlabelled) are skipped.
    x: [N, D]; scores: [N]. Passing generators with the same seed gives every method the same split.
    """
    x = _as_matrix(x)
    s = np.asarray(scores, dtype=np.float64)
    if s.shape != (x.shape[0],):
        raise ValueError(f"scores must have shape ({x.shape[0]},) to match x {x.shape}, got {s.shape}")
    known = np.flatnonzero(np.isfinite(s))
    idx, y = select_confident(s[known], share)
    idx = known[idx]
    tr, va = train_val_split(idx.shape[0], val_share, rng)
    if y[tr].all() or not y[tr].any():
        raise ValueError("the training split holds only one class; use a larger share or val_share")
    d = fit(x[idx[tr]], y[tr])
    val = accuracy(x[idx[va]], y[va], d.vector, d.intercept) if va.size else None
    extra = {**d.extra, "share": float(share), "val_share": float(val_share), "n_train": int(tr.shape[0]),
             "n_val": int(va.shape[0])}
    return LinearDirection(vector=d.vector, intercept=d.intercept, sigma=float(np.std(x @ d.vector)),
                           train_accuracy=d.train_accuracy, val_accuracy=val, n_samples=int(tr.shape[0]), extra=extra)


def linear_svm(x, scores, rng: np.random.Generator, share: float = 0.25, val_share: float = 0.3, c: float = 1.0,
               max_iter: int = 10000) -> LinearDirection:
    """A linear-SVM boundary the InterFaceGAN way: `fit_confident` around `svm_boundary`.

    x: [N, D]; scores: [N] continuous scores or 0/1 labels; rng: the split's randomness.
    InterFaceGAN used share 0.02 of 500k samples; 0.25 suits a few thousand.
    """
    if c <= 0:
        raise ValueError(f"c must be > 0, got {c}")
    return fit_confident(lambda xs, ys: svm_boundary(xs, ys, c=c, max_iter=max_iter), x, scores, rng, share=share,
                         val_share=val_share)


def fit_scores(fit: Callable, x, scores, rng: np.random.Generator, share: float = 0.25, val_share: float = 0.3
               ) -> LinearDirection:
    """The protocol for methods that fit every sample's score, ``fit(x, scores) -> LinearDirection`` (e.g.
    `ridge_regression`).

    1. split all labelled samples (NaN score = unlabelled, skipped) at random into train / validation (`val_share`);
    2. fit on every training sample's score;
    3. report accuracies as `fit_confident` does, so the numbers compare across methods: the validation (training)
       accuracy is measured on the held-out (training) samples among the confident top/bottom `share` of the scores.
       `extra` adds ``val_accuracy_all`` (every held-out sample, labelled by `score_threshold`) and ``val_rank_corr``
       (Spearman correlation of x·n with the held-out scores). σ is measured on all N samples.
    x: [N, D]; scores: [N]. A generator with the same seed gives the same split.
    """
    x = _as_matrix(x)
    s = np.asarray(scores, dtype=np.float64)
    if s.shape != (x.shape[0],):
        raise ValueError(f"scores must have shape ({x.shape[0]},) to match x {x.shape}, got {s.shape}")
    known = np.flatnonzero(np.isfinite(s))
    if known.size < 4:
        raise ValueError(f"need at least 4 labelled samples, got {known.size}")
    sk = s[known]
    tr, va = train_val_split(known.size, val_share, rng)
    if np.ptp(sk[tr]) == 0:
        raise ValueError("every training score is the same; use more samples or a smaller val_share")
    d = fit(x[known[tr]], sk[tr])
    idx, y = select_confident(sk, share)  # the confident extremes, as fit_confident selects them
    held = np.zeros(known.size, bool)
    held[va] = True

    def acc(rows, labels):
        return accuracy(x[known[rows]], labels, d.vector, d.intercept) if rows.size else None

    extra = {**d.extra, "share": float(share), "val_share": float(val_share), "n_train": int(tr.size),
             "n_val": int(va.size)}
    if va.size:
        proj = x[known[va]] @ d.vector
        extra["val_accuracy_all"] = float(np.mean((proj + d.intercept > 0) == (sk[va] > score_threshold(sk))))
        if va.size > 2 and np.ptp(sk[va]) > 0:
            extra["val_rank_corr"] = float(spearmanr(proj, sk[va]).statistic)
    return LinearDirection(vector=d.vector, intercept=d.intercept, sigma=float(np.std(x @ d.vector)),
                           train_accuracy=acc(idx[~held[idx]], y[~held[idx]]),
                           val_accuracy=acc(idx[held[idx]], y[held[idx]]), n_samples=int(tr.size), extra=extra)


# ----------------------------------------------------------------------------------------------------------------------
# Gaussian / Mahalanobis


@dataclass(frozen=True)
class ClassGaussian:
    """One class's Gaussian with a regularised covariance: top-k eigenvectors kept, the rest an isotropic floor.

    Σ = Uᵀ diag(variances) U + floor · (I − UᵀU), so Σ⁻¹v is cheap and the model is small to store.
    """

    mean: np.ndarray  # [D]
    basis: np.ndarray  # [k, D] orthonormal rows: the leading eigenvectors of the class covariance
    variances: np.ndarray  # [k] their (shrunk) eigenvalues
    floor: float  # variance in every direction orthogonal to the basis

    def precision_times(self, v: np.ndarray) -> np.ndarray:
        """Σ⁻¹ v for v [..., D]."""
        coef = v @ self.basis.T  # [..., k]
        return (v - coef @ self.basis) / self.floor + (coef / self.variances) @ self.basis

    def log_density(self, x: np.ndarray) -> np.ndarray:
        """log N(x; mean, Σ) for x [N, D] -> [N]."""
        d = x - self.mean
        maha = np.sum(d * self.precision_times(d), axis=-1)
        dim, k = self.mean.shape[0], self.basis.shape[0]
        logdet = float(np.sum(np.log(self.variances))) + (dim - k) * np.log(self.floor)
        return -0.5 * (maha + logdet + dim * np.log(2 * np.pi))


@dataclass(frozen=True)
class ClassGaussians:
    """The two class Gaussians of an attribute (index 0: negative class, 1: positive class)."""

    negative: ClassGaussian
    positive: ClassGaussian

    def for_class(self, positive: bool) -> ClassGaussian:
        return self.positive if positive else self.negative


def _fit_gaussian(x: np.ndarray, rank: int, shrinkage: float) -> ClassGaussian:
    mean = x.mean(axis=0)
    xc = x - mean
    cov = xc.T @ xc / max(1, x.shape[0] - 1)  # [D, D]
    dim = cov.shape[0]
    # Shrink toward a scaled identity (keeps the covariance well conditioned with few samples).
    avg = float(np.trace(cov)) / dim
    cov = (1.0 - shrinkage) * cov + shrinkage * avg * np.eye(dim)
    evals, evecs = np.linalg.eigh(cov)
    evals, evecs = evals[::-1], evecs[:, ::-1]
    k = min(rank, dim)
    rest = evals[k:]
    floor = float(rest.mean()) if rest.size else float(evals[-1])
    floor = max(floor, 1e-6 * avg, _EPS)
    return ClassGaussian(mean=mean, basis=evecs[:, :k].T.copy(), variances=np.maximum(evals[:k], floor),
                         floor=floor)


def fit_class_gaussians(x, labels, rank: int = 32, shrinkage: float = 0.05) -> ClassGaussians:
    """Fit a Gaussian to each class with a regularised covariance.

    The covariance is shrunk toward (tr Σ / D)·I by `shrinkage` in [0, 1), then only its `rank` leading eigenvectors are
    kept; the remaining eigenvalues are replaced by their mean (a probabilistic-PCA floor).
    x: [N, D]; labels: [N] 0/1 or bool.
    """
    x = _as_matrix(x)
    y = as_labels(labels, x.shape[0])
    if not 0.0 <= shrinkage < 1.0:
        raise ValueError(f"shrinkage must be in [0, 1), got {shrinkage}")
    if rank < 0:
        raise ValueError(f"rank must be >= 0, got {rank}")
    for name, count in (("positive", int(y.sum())), ("negative", int((~y).sum()))):
        if count < 2:
            raise ValueError(f"the {name} class has {count} sample(s); a Gaussian needs at least 2")
    return ClassGaussians(negative=_fit_gaussian(x[~y], rank, shrinkage), positive=_fit_gaussian(x[y], rank, shrinkage))


def _project_out(v: np.ndarray, basis: np.ndarray | None) -> np.ndarray:
    """Remove from rows of v [..., D] their components in the span of orthonormal rows `basis` [K, D]."""
    if basis is None or basis.shape[0] == 0:
        return v
    return v - (v @ basis.T) @ basis


def gaussian_walk(x, model: ClassGaussians, distance: float, n_steps: int = 8, objective: str = "density",
                  locked_basis: np.ndarray | None = None) -> np.ndarray:
    """Walk each latent a Euclidean `distance` up the gradient of a class objective; the step depends on the latent.

    distance > 0 climbs toward the positive class, < 0 toward the negative class. Objectives:
      'density'   log N(x; μ_t, Σ_t) of the target class t; gradient Σ_t⁻¹(μ_t − x). Each step is clipped where the
                  log-density stops rising along it, so the walk settles at the class mode instead of overshooting.
      'log_odds'  log N(x; μ_t, Σ_t) − log N(x; μ_o, Σ_o); gradient Σ_t⁻¹(μ_t − x) − Σ_o⁻¹(μ_o − x).
    `locked_basis` [K, D] (orthonormal rows, see `orthonormal_basis`) removes the locked components from every step.
    x: [N, D] -> [N, D].
    """
    x = _as_matrix(x).copy()
    if objective not in ("density", "log_odds"):
        raise ValueError(f"objective must be 'density' or 'log_odds', got {objective!r}")
    if n_steps < 1:
        raise ValueError(f"n_steps must be >= 1, got {n_steps}")
    if x.shape[1] != model.positive.mean.shape[0]:
        raise ValueError(f"latents have D={x.shape[1]} but the Gaussians have D={model.positive.mean.shape[0]}")
    if distance == 0:
        return x
    target, other = model.for_class(distance > 0), model.for_class(distance < 0)
    step = abs(float(distance)) / n_steps
    for _ in range(n_steps):
        g = target.precision_times(target.mean - x)  # [N, D]
        if objective == "log_odds":
            g = g - other.precision_times(other.mean - x)
        g = _project_out(g, locked_basis)
        norm = np.linalg.norm(g, axis=1, keepdims=True)
        dirn = np.where(norm > _EPS, g / np.maximum(norm, _EPS), 0.0)
        length = np.full((x.shape[0], 1), step)
        if objective == "density":
            # Along x + s·d the log-density is a concave quadratic, maximal at s* = dᵀΣ⁻¹(μ − x) / dᵀΣ⁻¹d.
            pd = target.precision_times(dirn)
            num = np.sum(dirn * target.precision_times(target.mean - x), axis=1, keepdims=True)
            den = np.sum(dirn * pd, axis=1, keepdims=True)
            s_star = np.where(den > _EPS, num / np.maximum(den, _EPS), 0.0)
            length = np.clip(s_star, 0.0, step)
        x = x + length * dirn
    return x


def shrink_toward_mean(x, model: ClassGaussians, distance: float, locked_basis: np.ndarray | None = None) -> np.ndarray:
    """Move each latent a Euclidean `distance` straight toward the target class mean, stopping at the mean.

    distance > 0 targets the positive class mean, < 0 the negative one. With `locked_basis` the move is restricted to
    the orthogonal complement of the locked directions. x: [N, D] -> [N, D].
    """
    x = _as_matrix(x)
    if x.shape[1] != model.positive.mean.shape[0]:
        raise ValueError(f"latents have D={x.shape[1]} but the Gaussians have D={model.positive.mean.shape[0]}")
    if distance == 0:
        return x.copy()
    mu = model.for_class(distance > 0).mean
    delta = _project_out(mu - x, locked_basis)  # [N, D]
    norm = np.linalg.norm(delta, axis=1, keepdims=True)
    frac = np.minimum(1.0, abs(float(distance)) / np.maximum(norm, _EPS))
    return x + frac * delta


# ----------------------------------------------------------------------------------------------------------------------
# Unsupervised methods


@dataclass(frozen=True)
class PCAResult:
    """Principal components of a set of latents (GANSpace)."""

    mean: np.ndarray  # [D]
    components: np.ndarray  # [k, D] orthonormal rows, by decreasing variance
    stds: np.ndarray  # [k] standard deviation of the samples along each component (the slider unit)
    explained_variance_ratio: np.ndarray  # [k]


def _fix_signs(vectors: np.ndarray) -> np.ndarray:
    """Flip rows so that each row's largest-magnitude coordinate is positive (a deterministic sign)."""
    idx = np.argmax(np.abs(vectors), axis=1)
    signs = np.sign(vectors[np.arange(vectors.shape[0]), idx])
    signs[signs == 0] = 1.0
    return vectors * signs[:, None]


def pca_directions(w, n_components: int) -> PCAResult:
    """GANSpace: the leading principal components of latents w [N, D] (scikit-learn's PCA, exact: an eigensolver of
    the covariance when N >= D, else a full SVD). The stds use N − 1."""
    w = _as_matrix(w, "w")
    n, d = w.shape
    if not 1 <= n_components <= min(n, d):
        raise ValueError(f"n_components must be in [1, min(N, D)] = [1, {min(n, d)}], got {n_components}")
    pca = PCA(n_components=n_components, svd_solver="covariance_eigh" if n >= d else "full").fit(w)
    return PCAResult(mean=pca.mean_.copy(), components=_fix_signs(pca.components_),
                     stds=np.sqrt(pca.explained_variance_), explained_variance_ratio=pca.explained_variance_ratio_.copy())


def sefa_directions(weights: Sequence[np.ndarray], n_components: int, normalize: bool = True
                    ) -> tuple[np.ndarray, np.ndarray]:
    """SeFa: closed-form directions from the modulation weights of chosen layers.

    Each layer's style is s = A w + b with A [C_out, D] (the affine layer's weight). The directions that change the
    styles most are the leading eigenvectors of Σ_l A_lᵀ A_l. With `normalize`, each row of each A (one output
    channel) is scaled to unit norm first, as SeFa does.

    Args:
        weights: a non-empty list of [C_l, D] matrices (same D).
        n_components: how many eigenvectors to return (<= D).
    Returns:
        (vectors [k, D] orthonormal rows by decreasing eigenvalue, eigenvalues [k]).
    """
    if isinstance(weights, np.ndarray) and weights.ndim == 2:
        weights = [weights]
    if len(weights) == 0:
        raise ValueError("sefa_directions needs at least one weight matrix")
    mats = []
    for i, a in enumerate(weights):
        a = np.asarray(a, dtype=np.float64)
        if a.ndim != 2:
            raise ValueError(f"weight {i} must be a [C_out, D] matrix, got shape {a.shape}")
        if mats and a.shape[1] != mats[0].shape[1]:
            raise ValueError(f"weight {i} has D={a.shape[1]} but weight 0 has D={mats[0].shape[1]}")
        if normalize:
            a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), _EPS)
        mats.append(a)
    a = np.concatenate(mats, axis=0)  # [sum C_l, D]
    d = a.shape[1]
    if not 1 <= n_components <= d:
        raise ValueError(f"n_components must be in [1, D={d}], got {n_components}")
    evals, evecs = np.linalg.eigh(a.T @ a)
    order = np.argsort(evals)[::-1][:n_components]
    return _fix_signs(evecs[:, order].T.copy()), evals[order]


# ----------------------------------------------------------------------------------------------------------------------
# Conditional editing


def orthonormal_basis(vectors, tol: float = 1e-10) -> np.ndarray:
    """An orthonormal basis [K', D] of the span of the rows of `vectors` [K, D] (pivoted QR; K' = rank <= K)."""
    from scipy.linalg import qr

    v = np.asarray(vectors, dtype=np.float64)
    if v.ndim == 1:
        v = v[None]
    if v.ndim != 2:
        raise ValueError(f"locked directions must be a [K, D] matrix, got shape {v.shape}")
    if v.shape[0] == 0:
        return np.zeros((0, v.shape[1]))
    if not np.all(np.isfinite(v)):
        raise ValueError("locked directions contain NaN or infinite values")
    q, r, _ = qr(v.T, mode="economic", pivoting=True)  # v.T [D, K] = Q R Pᵀ
    diag = np.abs(np.diag(r))
    rank = int(np.sum(diag > tol * max(1.0, float(diag.max()) if diag.size else 1.0)))
    return q[:, :rank].T.copy()


def condition(direction, locked) -> np.ndarray:
    """Conditional editing: the unit direction with its components along every locked direction removed.

    Args:
        direction: [D] the edit direction.
        locked: [K, D] any number of directions that must not change (need not be orthogonal or independent).
    Returns:
        [D] unit vector exactly orthogonal (to float precision) to every locked direction.
    Raises:
        ValueError when the direction lies in the span of the locked ones (nothing is left to edit).
    """
    n = _as_vector(direction)
    locked = np.asarray(locked, dtype=np.float64)
    if locked.ndim == 1:
        locked = locked[None]
    if locked.ndim != 2 or (locked.shape[0] and locked.shape[1] != n.shape[0]):
        raise ValueError(f"locked directions must be [K, {n.shape[0]}], got shape {locked.shape}")
    basis = orthonormal_basis(locked)
    out = _project_out(n, basis)
    # A second pass removes what rounding left (re-orthogonalisation).
    out = _project_out(out, basis)
    if np.linalg.norm(out) < 1e-8 * max(1.0, float(np.linalg.norm(n))):
        raise ValueError("the direction lies in the span of the locked directions: nothing is left to edit")
    return unit(out)


# ----------------------------------------------------------------------------------------------------------------------
# Latent spaces


@dataclass(frozen=True)
class Space:
    """Where a direction lives and acts.

    'z': the input latent (edit z, then run the mapping); 'w': every layer of W+ moves together; 'w+': only the layers
    in [start, stop) move. Written as 'z', 'w', or 'w+:START-END' (END inclusive, like the CLI's ranges).
    """

    kind: str  # 'z' | 'w' | 'w+'
    start: int = 0  # first W+ layer edited (w+ only)
    stop: int = 0  # one past the last W+ layer edited (w+ only)

    def __post_init__(self):
        if self.kind not in ("z", "w", "w+"):
            raise ValueError(f"space kind must be 'z', 'w' or 'w+', got {self.kind!r}")
        if self.kind == "w+":
            if not 0 <= self.start < self.stop:
                raise ValueError(f"w+ layer range must satisfy 0 <= start < stop, got [{self.start}, {self.stop})")
        elif self.start or self.stop:
            raise ValueError(f"space {self.kind!r} takes no layer range")

    @classmethod
    def parse(cls, text: str) -> "Space":
        """'z' | 'w' | 'w+:4-7' (layers 4..7 inclusive) | 'w+:5' (one layer)."""
        t = str(text).strip().lower()
        if t in ("z", "w"):
            return cls(t)
        if t.startswith("w+:"):
            lo, sep, hi = t[3:].partition("-")
            try:
                start = int(lo)
                end = int(hi) if sep else start
            except ValueError:
                raise ValueError(f"bad layer range in space {text!r}; expected e.g. 'w+:0-3'") from None
            return cls("w+", start, end + 1)
        raise ValueError(f"unknown space {text!r}; expected 'z', 'w' or 'w+:START-END'")

    def __str__(self) -> str:
        return self.kind if self.kind != "w+" else f"w+:{self.start}-{self.stop - 1}"

    def layers(self, num_ws: int) -> range:
        """The W+ layers this space edits (all of them for z and w)."""
        if self.kind != "w+":
            return range(num_ws)
        if self.stop > num_ws:
            raise ValueError(f"space {self} needs {self.stop} layers but the generator has num_ws={num_ws}")
        return range(self.start, self.stop)


def fit_space_latents(space: Space, z=None, ws=None) -> np.ndarray:
    """The [N, D] matrix a direction in `space` is fitted on: z for 'z', else the mean of ws over the edited layers.

    z: [N, z_dim]; ws: [N, num_ws, w_dim]. Without style mixing or a truncation cutoff every layer of ws is the same w,
    so 'w' and 'w+' fit on the same latents and differ only in the layers the edit moves.
    """
    if space.kind == "z":
        if z is None:
            raise ValueError("a z-space direction needs the sampled z")
        return _as_matrix(z, "z")
    if ws is None:
        raise ValueError(f"a {space} direction needs the sampled ws [N, num_ws, w_dim]")
    ws = np.asarray(ws, dtype=np.float64)
    if ws.ndim != 3:
        raise ValueError(f"ws must be [N, num_ws, w_dim], got shape {ws.shape}")
    layers = space.layers(ws.shape[1])
    return _as_matrix(ws[:, layers.start:layers.stop].mean(axis=1), "ws")
