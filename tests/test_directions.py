"""Direction methods on synthetic data with a known answer."""

import numpy as np
import pytest

from editor import directions as D


def _cos(a, b):
    return float(abs(a @ b) / np.linalg.norm(a) / np.linalg.norm(b))


def _two_blobs(rng, n=2000, dim=16, sep=3.0):
    true = D.unit(rng.normal(size=dim))
    y = rng.random(n) < 0.5
    x = rng.normal(size=(n, dim)) + np.where(y, sep / 2, -sep / 2)[:, None] * true
    return x, y, true


def _correlated_logistic(rng, n=4000, dim=12):
    """Correlated features; labels from a logistic model whose normal is NOT the mean difference."""
    a = rng.normal(size=(dim, dim))
    cov = a @ a.T / dim + 0.1 * np.eye(dim)
    x = rng.multivariate_normal(np.zeros(dim), cov, size=n)
    w = D.unit(rng.normal(size=dim))
    logits = 6.0 * (x @ w - 0.3) / np.std(x @ w)
    y = rng.random(n) < 1 / (1 + np.exp(-logits))
    return x, y, w


def test_mean_difference_recovers_blob_axis_and_midpoint():
    rng = np.random.default_rng(0)
    x, y, true = _two_blobs(rng)
    d = D.mean_difference(x, y)
    assert np.isclose(np.linalg.norm(d.vector), 1.0)
    assert d.vector @ true > 0.98
    # The boundary sits half-way between the centroids, i.e. near the origin here.
    assert abs(d.intercept) < 0.15
    assert np.isclose(d.sigma, np.std(x @ d.vector))
    assert d.train_accuracy > 0.9


def test_logistic_regression_recovers_normal_and_intercept_and_beats_mean_difference_when_correlated():
    rng = np.random.default_rng(1)
    x, y, w = _correlated_logistic(rng)
    lr = D.logistic_regression(x, y, l2=1e-3)
    md = D.mean_difference(x, y)
    assert lr.vector @ w > 0.97
    assert _cos(lr.vector, w) > _cos(md.vector, w) + 0.05
    # The true boundary is x·w = 0.3·std(x·w): the kept intercept places it there.
    b_true = -0.3
    assert abs(lr.intercept - b_true) < 0.1
    assert lr.train_accuracy > 0.85


def test_logistic_regression_separable_data_stays_finite():
    rng = np.random.default_rng(2)
    x, y, true = _two_blobs(rng, sep=20.0)
    d = D.logistic_regression(x, y, l2=1.0)
    assert np.all(np.isfinite(d.vector)) and d.train_accuracy == 1.0
    assert d.vector @ true > 0.95


def test_linear_svm_interfacegan_protocol():
    rng = np.random.default_rng(3)
    n, dim = 3000, 20
    true = D.unit(rng.normal(size=dim))
    x = rng.normal(size=(n, dim))
    scores = x @ true + 0.05 * rng.normal(size=n)  # a continuous score, e.g. a classifier logit
    d = D.linear_svm(x, scores, np.random.default_rng(0), share=0.2, val_share=0.3)
    assert d.vector @ true > 0.97
    assert d.val_accuracy is not None and d.val_accuracy > 0.97
    assert d.extra["n_train"] + d.extra["n_val"] == 2 * 600
    # σ is measured on the whole population, not only the extremes.
    assert np.isclose(d.sigma, np.std(x @ d.vector))
    # Deterministic given the generator.
    d2 = D.linear_svm(x, scores, np.random.default_rng(0), share=0.2, val_share=0.3)
    assert np.allclose(d.vector, d2.vector)


def test_select_confident_handles_binary_ties():
    s = np.r_[np.ones(10), np.zeros(90)]
    idx, y = D.select_confident(s, 0.25)
    assert y.sum() == 10 and np.all(s[idx[y]] == 1) and np.all(s[idx[~y]] == 0)


def test_class_gaussians_and_walks():
    rng = np.random.default_rng(4)
    dim = 6
    cov = np.diag([4.0, 1.0, 1.0, 0.25, 0.25, 0.25])
    mu1 = np.array([3.0, 0, 0, 1.0, 0, 0])
    x1 = rng.multivariate_normal(mu1, cov, size=4000)
    x0 = rng.multivariate_normal(-mu1, cov, size=4000)
    x = np.vstack([x1, x0])
    y = np.r_[np.ones(4000, bool), np.zeros(4000, bool)]
    model = D.fit_class_gaussians(x, y, rank=dim, shrinkage=0.0)
    assert np.allclose(model.positive.mean, mu1, atol=0.1)
    v = rng.normal(size=dim)
    assert np.allclose(model.positive.precision_times(v), np.linalg.solve(cov, v), rtol=0.1, atol=0.05)

    # A long walk up the positive class density ends at the positive mean and does not overshoot.
    start = np.array([[-3.0, 0, 0, -1.0, 0, 0], [-3.0, 2.0, 0, -1.0, 0, 0]])
    end = D.gaussian_walk(start, model, distance=50.0, n_steps=200)
    assert np.allclose(end, model.positive.mean, atol=0.05)
    # The first step depends on the latent: two starts give non-parallel steps, and it is not the Euclidean line to μ.
    step = D.gaussian_walk(start, model, distance=0.1, n_steps=1) - start
    assert _cos(step[0], step[1]) < 0.999
    euclid = model.positive.mean - start[1]
    assert _cos(step[1], euclid) < 0.99
    assert np.allclose(np.linalg.norm(step, axis=1), 0.1)
    # Climbing raises the log-density; a negative distance climbs the other class.
    assert np.all(model.positive.log_density(step + start) > model.positive.log_density(start))
    back = D.gaussian_walk(start, model, distance=-0.5)
    assert np.all(model.negative.log_density(back) > model.negative.log_density(start))
    # The log-odds objective raises the log-odds.
    lo = D.gaussian_walk(start, model, distance=1.0, objective="log_odds")
    odds = lambda p: model.positive.log_density(p) - model.negative.log_density(p)  # noqa: E731
    assert np.all(odds(lo) > odds(start))

    # Shrink: a straight line toward the mean, stopping at it.
    s = D.shrink_toward_mean(start, model, distance=1.0)
    assert np.allclose(np.linalg.norm(s - start, axis=1), 1.0)
    assert np.allclose(D.shrink_toward_mean(start, model, distance=1e3), model.positive.mean)

    # Locked directions are respected by both walks.
    locked = D.orthonormal_basis(np.eye(dim)[:1])
    w = D.gaussian_walk(start, model, distance=2.0, locked_basis=locked)
    assert np.allclose(w[:, 0], start[:, 0])
    s = D.shrink_toward_mean(start, model, distance=2.0, locked_basis=locked)
    assert np.allclose(s[:, 0], start[:, 0])


def test_low_rank_gaussian_is_regularised():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(40, 64))  # fewer samples than dimensions: the raw covariance is singular
    y = np.r_[np.ones(20), np.zeros(20)]
    model = D.fit_class_gaussians(x, y, rank=8, shrinkage=0.1)
    assert model.positive.basis.shape == (8, 64)
    assert np.all(np.isfinite(model.positive.log_density(x)))


def test_pca_recovers_axes_and_stds():
    rng = np.random.default_rng(6)
    dim = 10
    q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    stds = np.array([5.0, 3.0, 2.0] + [0.5] * (dim - 3))
    w = (rng.normal(size=(20000, dim)) * stds) @ q.T + 7.0
    p = D.pca_directions(w, 3)
    for i in range(3):
        assert _cos(p.components[i], q[:, i]) > 0.999
    assert np.allclose(p.stds, stds[:3], rtol=0.03)
    assert np.allclose(p.mean, 7.0, atol=0.1)
    assert np.allclose(p.components @ p.components.T, np.eye(3), atol=1e-10)


def test_sefa_matches_svd_of_stacked_weights():
    rng = np.random.default_rng(7)
    a1, a2 = rng.normal(size=(32, 12)), rng.normal(size=(16, 12))
    vecs, evals = D.sefa_directions([a1, a2], 4, normalize=False)
    _, s, vt = np.linalg.svd(np.vstack([a1, a2]))
    assert np.allclose(evals, s[:4] ** 2)
    for i in range(4):
        assert _cos(vecs[i], vt[i]) > 1 - 1e-9
    # A weight that only reads coordinate 3 gives e_3 as the top direction.
    a = np.zeros((8, 12))
    a[:, 3] = 10.0
    a += 0.01 * rng.normal(size=a.shape)
    v, _ = D.sefa_directions([a], 1, normalize=False)
    assert _cos(v[0], np.eye(12)[3]) > 0.999
    with pytest.raises(ValueError, match="D=12"):
        D.sefa_directions([a1, rng.normal(size=(4, 5))], 2)


def test_condition_is_exactly_orthogonal_to_any_number_of_locked():
    rng = np.random.default_rng(8)
    dim = 64
    n = rng.normal(size=dim)
    locked = rng.normal(size=(7, dim))
    locked = np.vstack([locked, locked[0] + 2 * locked[1]])  # a dependent one: rank 7
    out = D.condition(n, locked)
    assert np.isclose(np.linalg.norm(out), 1.0)
    assert np.max(np.abs(locked @ out)) < 1e-12 * np.max(np.linalg.norm(locked, axis=1)) * 10
    # It is the projection: the closest unit vector to n in the complement.
    basis = D.orthonormal_basis(locked)
    assert basis.shape == (7, dim)
    expected = n - basis.T @ (basis @ n)
    assert _cos(out, expected) > 1 - 1e-12
    with pytest.raises(ValueError, match="span of the locked"):
        D.condition(locked[0] - locked[3], locked)
    # No locked directions: unchanged (normalised).
    assert np.allclose(D.condition(n, np.zeros((0, dim))), n / np.linalg.norm(n))


def test_space_parse_and_fit_latents():
    assert D.Space.parse("w+:2-4") == D.Space("w+", 2, 5)
    assert str(D.Space.parse("w+:3")) == "w+:3-3"
    assert list(D.Space.parse("w+:2-4").layers(8)) == [2, 3, 4]
    with pytest.raises(ValueError, match="num_ws=4"):
        D.Space.parse("w+:2-6").layers(4)
    with pytest.raises(ValueError):
        D.Space.parse("q")
    ws = np.arange(2 * 4 * 3, dtype=float).reshape(2, 4, 3)
    x = D.fit_space_latents(D.Space.parse("w+:1-2"), ws=ws)
    assert np.allclose(x, ws[:, 1:3].mean(axis=1))
    with pytest.raises(ValueError, match="needs the sampled z"):
        D.fit_space_latents(D.Space("z"), ws=ws)


@pytest.mark.parametrize("bad", [np.zeros((5,)), np.zeros((0, 3)), np.full((4, 3), np.nan)])
def test_bad_latents_give_clear_errors(bad):
    with pytest.raises(ValueError):
        D.mean_difference(bad, np.array([0, 1, 0, 1]))


def test_bad_labels_give_clear_errors():
    x = np.random.default_rng(0).normal(size=(10, 3))
    with pytest.raises(ValueError, match="both classes"):
        D.logistic_regression(x, np.ones(10))
    with pytest.raises(ValueError, match="length N=10"):
        D.mean_difference(x, np.ones(9))
    with pytest.raises(ValueError, match="0/1"):
        D.mean_difference(x, np.linspace(0, 1, 10))
    with pytest.raises(ValueError, match="Generator"):
        D.linear_svm(x, np.arange(10.0), rng=0)


# ----------------------------------------------------------------------------------------------------------------------
# The scikit-learn fits and the continuous-score methods


def _anisotropic_scores(rng, n=2000, dim=64, slope=1.4):
    """Latents with a steep spectrum (like a trained W) and a probability score along a planted direction."""
    q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    lam = (1.0 + np.arange(dim)) ** -slope
    x = (rng.normal(size=(n, dim)) * np.sqrt(lam * dim / lam.sum())) @ q.T
    truth = D.unit(rng.normal(size=dim))
    t = x @ truth
    t = t / t.std()
    return x, 1 / (1 + np.exp(-(4 * t + rng.normal(size=n)))), truth


def test_svm_intercept_is_not_shrunk():
    """liblinear penalises the intercept like a weight; the fit must not. A hard-margin SVM (C large) on a separable
    set puts the boundary half-way between the classes (equal margins on both sides), and moving every latent far
    from the origin changes only the intercept (a penalised intercept tilts the normal there instead)."""
    rng = np.random.default_rng(10)
    pos = np.c_[rng.uniform(1, 3, 50), rng.normal(size=50)]
    neg = np.c_[rng.uniform(-2, 0, 50), rng.normal(size=50)]
    x, y = np.vstack([pos, neg]), np.r_[np.ones(50, bool), np.zeros(50, bool)]
    shift = np.array([1000.0, -500.0])
    fits = [D.svm_boundary(x, y, c=1e4), D.svm_boundary(x + shift, y, c=1e4)]
    for d, xx in zip(fits, (x, x + shift)):
        side = xx @ d.vector + d.intercept
        assert d.train_accuracy == 1.0
        assert abs(side[y].min() + side[~y].max()) < 1e-3  # equal margins
        assert side[y].min() > 0.6  # the gap is about 1.3 wide
    assert np.allclose(fits[0].vector, fits[1].vector, atol=1e-5)
    assert np.isclose(fits[1].intercept, fits[0].intercept - fits[1].vector @ shift, atol=1e-3)


def test_lda_boundary_is_the_shrunk_fisher_discriminant():
    rng = np.random.default_rng(11)
    x, y, _ = _correlated_logistic(rng, n=600, dim=8)
    for shrinkage in (0.0, 0.3, 1.0):
        d = D.lda_boundary(x, y, shrinkage)
        mu1, mu0 = x[y].mean(axis=0), x[~y].mean(axis=0)
        xc = np.where(y[:, None], x - mu1, x - mu0)
        s = xc.T @ xc / len(x)
        s = (1 - shrinkage) * s + shrinkage * np.trace(s) / 8 * np.eye(8)
        v = D.unit(np.linalg.solve(s, mu1 - mu0))
        assert _cos(d.vector, v) > 1 - 1e-10 and d.vector @ v > 0
        assert np.isclose(d.intercept, -d.vector @ (mu0 + mu1) / 2)  # half-way between the class means
    assert _cos(D.lda_boundary(x, y, 1.0).vector, D.mean_difference(x, y).vector) > 1 - 1e-10


def test_ridge_uses_every_score_and_beats_the_confident_share_svm_on_anisotropic_latents():
    rng = np.random.default_rng(12)
    x, s, truth = _anisotropic_scores(rng)
    ridge = D.fit_scores(D.ridge_regression, x, s, np.random.default_rng(0))
    svm = D.linear_svm(x, s, np.random.default_rng(0))
    assert ridge.vector @ truth > 0.97
    assert ridge.vector @ truth > svm.vector @ truth + 0.05
    # Validation numbers comparable with the SVM's (held-out confident extremes) plus the continuous ones.
    assert ridge.val_accuracy > 0.97 and ridge.extra["val_rank_corr"] > 0.9
    assert ridge.extra["n_train"] + ridge.extra["n_val"] == len(s) and ridge.n_samples == ridge.extra["n_train"]
    assert np.isclose(ridge.sigma, np.std(x @ ridge.vector))
    # The boundary sits where the predicted score crosses 0.5 (the planted world is symmetric around it).
    assert ridge.extra["threshold"] == 0.5 and ridge.extra["val_accuracy_all"] > 0.85
    assert 0.0 < ridge.extra["alpha"] < max(D.RIDGE_ALPHAS)


def test_ridge_normal_scores_ignore_the_score_scale_and_skip_unlabelled():
    rng = np.random.default_rng(13)
    x, s, truth = _anisotropic_scores(rng, n=800, dim=16)
    logit = np.log(s / (1 - s))
    a = D.ridge_regression(x, s)
    b = D.ridge_regression(x, 3.0 * logit + 7.0)  # any increasing function: the same rank-based target
    assert np.allclose(a.vector, b.vector)
    raw = D.ridge_regression(x, s, target="raw")
    assert raw.vector @ truth > 0.9 and not np.allclose(raw.vector, a.vector)
    # 0/1 labels: ridge on normal scores is the (ridge-shrunk) Fisher discriminant.
    y = s > 0.5
    assert _cos(D.ridge_regression(x, y.astype(float)).vector, D.lda_boundary(x, y, 0.0).vector) > 0.999
    # Unlabelled (NaN) samples are skipped; the same generator seed gives the same fit.
    holes = s.copy()
    holes[::4] = np.nan
    d1 = D.fit_scores(D.ridge_regression, x, holes, np.random.default_rng(3))
    d2 = D.fit_scores(D.ridge_regression, x, holes, np.random.default_rng(3))
    assert d1.extra["n_train"] + d1.extra["n_val"] == 600 and np.array_equal(d1.vector, d2.vector)
    with pytest.raises(ValueError, match="NaN"):
        D.ridge_regression(x, holes)
    with pytest.raises(ValueError, match="all scores are equal"):
        D.ridge_regression(x, np.ones(len(x)))
    with pytest.raises(ValueError, match="target"):
        D.ridge_regression(x, s, target="logit")


def test_score_threshold_and_normal_scores():
    assert D.score_threshold([0.1, 0.9, 0.2]) == 0.5
    assert D.score_threshold([-3.0, 1.0, 2.0, np.nan]) == 1.0
    z = D.normal_scores([3.0, 1.0, 2.0, 2.0])
    assert z[1] < z[2] == z[3] < z[0] and np.isclose(z.sum(), 0.0)


def test_partial_mean_differences_hold_correlated_attributes_fixed():
    """Glasses come with age in the data: the plain mean difference of glasses carries age along, the partial one
    recovers glasses' own axis; continuous scores take part, unlabelled samples and constant attributes drop out."""
    rng = np.random.default_rng(3)
    n, d = 4000, 16
    u_glasses, u_age, u_tone = np.eye(d)[0] * 2.0, np.eye(d)[1] * 3.0, np.eye(d)[2]
    old = rng.random(n) < 0.5
    glasses = np.where(old, rng.random(n) < 0.8, rng.random(n) < 0.2)  # strongly correlated with age
    tone = rng.normal(size=n)
    x = (glasses[:, None] * u_glasses + old[:, None] * u_age + tone[:, None] * u_tone
         + 0.3 * rng.normal(size=(n, d)))
    scores = {"eyeglasses": glasses * 0.9 + 0.05, "old": old.astype(float), "skin_tone": tone,
              "constant": np.full(n, 0.7)}
    scores["eyeglasses"][:10] = np.nan  # unlabelled samples are left out
    plain = D.mean_difference(x, glasses)
    partial = D.partial_mean_differences(x, scores)
    assert set(partial) == {"eyeglasses", "old", "skin_tone"}  # 'constant' has one class only
    assert abs(plain.vector[1]) > 0.5  # the mean difference leaks age
    assert partial["eyeglasses"].vector[0] > 0.99 and abs(partial["eyeglasses"].vector[1]) < 0.05
    assert partial["old"].vector[1] > 0.99 and partial["skin_tone"].vector[2] > 0.99
    assert partial["eyeglasses"].n_samples == n - 10 and partial["eyeglasses"].train_accuracy > 0.75
    with pytest.raises(ValueError, match="cannot separate"):
        D.partial_mean_differences(x[:3], {k: v[:3] for k, v in scores.items()})
    # an attribute labelled on a few samples only is fitted on those, and is nobody's partner
    sparse = np.full(n, np.nan)
    sparse[:300] = old[:300] * 1.0
    few = D.partial_mean_differences(x, dict(scores, sparse_old=sparse))
    assert few["sparse_old"].n_samples == 290 and few["sparse_old"].vector[1] > 0.9
    assert few["sparse_old"].extra["held"] == 2  # eyeglasses, skin_tone; 'old' is its near-duplicate there
    assert few["eyeglasses"].extra["held"] == 2 and few["eyeglasses"].n_samples == n - 10
    # Near-duplicates are not held fixed (holding 'age' would leave 'old' nothing to move), nor any level of a one-hot
    # group that holds one ('glasses_style=none' is 'no eyeglasses'; its sibling levels would then contradict).
    dup = dict(scores, age=old + 0.1 * rng.normal(size=n), **{
        "glasses_style=none": (~glasses).astype(float), "glasses_style=round": (glasses & (rng.random(n) < 0.5)) * 1.0})
    dup["glasses_style=rectangular"] = glasses - dup["glasses_style=round"]
    partial = D.partial_mean_differences(x, dup)
    assert partial["old"].vector[1] > 0.95 and partial["age"].vector[1] > 0.95
    assert partial["eyeglasses"].vector[0] > 0.95 and abs(partial["eyeglasses"].vector[1]) < 0.1
    assert partial["eyeglasses"].extra["held"] == 3  # old, age (a partner) and skin_tone; not the glasses_style group
