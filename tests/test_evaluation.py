"""The evaluation: metrics on synthetic sweeps with known answers, and the full path on a tiny random generator."""

import json

import numpy as np
import pytest
import torch

from editor import evaluation as E
from editor.bank import BankEntry
from editor.checkpoints import load_generator
from editor.directions import Space
from editor.labelers import ImageStatsLabeler


def _fake_ctx(pop_std):
    cfg = E.EvalConfig(n_seeds=4, n_reference=4, alphas=(-2.0, -1.0, 0.0, 1.0, 2.0))
    return E.EvalContext(G=None, judge=None, config=cfg, seeds=np.arange(4), z=np.zeros((4, 2)), ws=np.zeros((4, 1, 2)),
                         base={}, base_embedding=None, reference_embedding=None, pop_std=pop_std,
                         w_gaussian=None)


def _sweep(scores, attribute="smile", method="svm", space="w", locked=()):
    alphas = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
    return E.Sweep(name=f"{attribute}/{method}/{space}", attribute=attribute, method=method, space=space,
                   locked=locked, alphas=alphas, scores=scores, kid=None, fd=None, disc=None,
                   latent_distance=np.abs(alphas) + 3.0)


def test_summary_slopes_leakage_flips_identity_and_partners():
    alphas = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])[:, None]
    n = 4
    base = np.array([0.1, 0.2, 0.3, 0.9])
    scores = {
        "smile": np.clip(base + 0.2 * alphas, 0, 1),  # target; probability-like
        "smiling": np.clip(base + 0.2 * alphas, 0, 1),  # same concept: excluded from leakage
        "mouth_open": 0.05 * alphas + np.zeros((1, n)),  # a correlated partner moving a little
        "jaw": np.zeros((5, n)),  # identity: unchanged
    }
    ctx = _fake_ctx({"smile": 0.1, "smiling": 0.1, "mouth_open": 0.1, "jaw": 0.1})
    s = E.summarize_sweep(_sweep(scores), ctx, identity=("jaw",), same_concept=(("smile", "smiling"),),
                          pairs=(("smile", "mouth_open"),))
    # 0.2 per sigma / 0.1 std = 2, less where the scores clip at 0 or 1: per-seed slopes 1.3, 1.6, 1.8, 1.3.
    assert s["target_slope"] == pytest.approx(1.5)
    assert s["slopes"]["mouth_open"] == pytest.approx(0.5)
    # leakage = rms(others) / |target|: others are mouth_open (0.5) and jaw (0).
    assert s["leakage"] == pytest.approx(np.sqrt((0.25 + 0) / 2) / s["target_slope"], rel=1e-6)
    assert s["identity_change"] == 0.0
    assert s["partner_slopes"] == {"mouth_open": pytest.approx(0.5)}
    # flips at +2: the three below 0.5 at alpha 0 reach 0.5, 0.6, 0.7: all cross; at -2 the one above stays at 0.5.
    assert s["flip_rate"]["+2"] == 1.0 and s["flip_rate"]["-2"] == 0.0


def test_assess_claims_reads_paired_summaries():
    def summ(attr, method, space, leak, locked=(), slopes=None):
        return {"name": f"{attr}/{method}/{space}", "attribute": attr, "method": method, "space": space,
                "locked": list(locked), "leakage": leak, "leakage_se": 0.01, "alphas": [-4, -1, 0, 1, 4],
                "latent_distance": [9, 5, 4, 5, 9], "kid": [0.5, 0.1, 0.0, 0.1, 0.6], "disc": None,
                "target_slope": 1.0, "slopes": slopes or {}}

    sums = []
    for a in ("x", "y", "z"):
        sums += [summ(a, "svm", "w", 0.2), summ(a, "svm", "z", 0.5), summ(a, "meandiff", "w", 0.4),
                 summ(a, "logreg", "w", 0.1), summ(a, "mahalanobis", "w", 0.6)]
    sums += [summ("x", "svm", "w", 0.2, locked=("q",), slopes={"q": 0.0}), ]
    sums[0]["slopes"] = {"q": 0.4}
    claims = {c["claim"]: c for c in E.assess_claims(sums)}
    assert claims["W is more disentangled than Z (svm directions)"]["verdict"] == "holds"
    assert claims["logreg directions are cleaner than the mean difference (W)"]["verdict"] == "holds"
    assert claims["the Mahalanobis walk is cleaner than the linear svm direction (W)"]["verdict"] == "does not hold"
    assert claims["extreme alpha leaves the data manifold"]["verdict"] == "holds"
    assert claims["locking a correlated attribute keeps it from changing (conditional editing)"]["verdict"] == "holds"


def test_full_path_on_tiny_random_generator(tmp_path):
    torch.manual_seed(0)
    G = load_generator("random:small")
    rng = np.random.default_rng(0)

    def entry(attr, method, space, dim):
        return BankEntry(attr, method, Space.parse(space), rng.normal(size=dim), sigma=1.0)

    judge = ImageStatsLabeler(attributes=("brightness", "redness", "contrast"))

    class EmbeddingJudge:  # gives embeddings so KID is exercised
        name, attributes = "emb", judge.attributes

        def label_with_embedding(self, images, ids):
            return judge(images, ids), images.flatten(1)[:, :16].numpy()

    cfg = E.EvalConfig(n_seeds=3, n_reference=3, alphas=(-2.0, 0.0, 2.0), n_w_fit=64, batch=8)
    ctx = E.prepare_context(G, EmbeddingJudge(), cfg)
    assert set(ctx.base) == {"brightness", "redness", "contrast"} and ctx.reference_embedding.shape == (3, 16)
    entries = [entry("brightness", "svm", "w", G.w_dim), entry("brightness", "svm", "z", G.z_dim),
               entry("redness", "svm", "w+:0-3", G.w_dim)]
    sweeps = [E.run_sweep(ctx, e) for e in entries]
    sweeps.append(E.run_sweep(ctx, entries[0], locked=[entries[2]]))
    assert sweeps[0].strip.shape == (3, 32, 32, 3) and sweeps[0].kid.shape == (3,)
    from editor.metrics import kernel_inception_distance

    assert sweeps[0].kid[1] == pytest.approx(kernel_inception_distance(ctx.base_embedding, ctx.reference_embedding,
                                                                        num_subsets=50))
    assert np.all(np.isfinite(sweeps[0].fd))
    sums = [E.summarize_sweep(s, ctx, n_boot=10) for s in sweeps]
    claims = E.assess_claims(sums)
    md = E.write_report(tmp_path / "rep", sums, claims, sweeps, {"model": "random:small"})
    text = md.read_text()
    assert "W is more disentangled than Z" in text and "![" in text
    for f in ("target_curves.png", "leakage.png", "entanglement_matrix.png", "realism.png", "strip_brightness.png"):
        assert (tmp_path / "rep" / f).is_file()
    data = json.loads((tmp_path / "rep" / "results.json").read_text())
    assert len(data["summaries"]) == 4


class _LinearWorld(torch.nn.Module):
    """A stand-in generator with a known answer: three attributes are linear in w along orthonormal normals, and the
    mapping correlates attributes a and b (corr ~0.8), as the toon world correlates age and grey hair. The image's
    three channels show the attributes' values, so a judge can read them back."""

    z_dim = w_dim = 8
    num_ws = 2
    img_resolution = 4

    def __init__(self):
        super().__init__()
        q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(8, 8)))
        self.normals = torch.tensor(q[:, :3].T, dtype=torch.float32)  # [3, 8] orthonormal: a, b, c

    def mapping(self, z, c=None, truncation_psi=1.0):
        n_a, n_b = self.normals[0], self.normals[1]
        w = z + 1.5 * (z @ n_a)[:, None] * n_b[None]  # couples b to a
        return w[:, None].repeat(1, self.num_ws, 1)

    def synthesis(self, ws, noise_mode="const"):
        values = torch.tanh(ws[:, 0] @ self.normals.T / 4)  # [N, 3]
        return values[:, :, None, None].expand(-1, 3, 4, 4).clone()


class _ChannelJudge:
    name, attributes = "channels", ("a", "b", "c")

    def __call__(self, images, ids=None):
        m = images.mean(dim=(2, 3)).double().numpy()
        return {k: np.arctanh(np.clip(m[:, i], -0.999, 0.999)) for i, k in enumerate(self.attributes)}


def test_evaluation_finds_the_known_answer():
    from editor.bank import FitOptions, build_entries

    G = _LinearWorld()
    rng = np.random.default_rng(1)
    z = rng.normal(size=(3000, 8))
    with torch.no_grad():
        ws = G.mapping(torch.tensor(z, dtype=torch.float32)).double().numpy()
        scores = _ChannelJudge()(G.synthesis(torch.tensor(ws, dtype=torch.float32)))
    entries = build_entries(z, ws, {"a": scores["a"]}, "channels", ["meandiff", "logreg", "svm", "mahalanobis"],
                            [Space("w"), Space("z")])
    odds_entry = build_entries(z, ws, {"a": scores["a"]}, "channels", ["mahalanobis"], [Space("w")],
                               FitOptions(walk_objective="log_odds"))[0]
    bank_b = build_entries(z, ws, {"b": scores["b"]}, "channels", ["svm"], [Space("w")])[0]
    cfg = E.EvalConfig(n_seeds=32, n_reference=8, alphas=(-2.0, -1.0, 0.0, 1.0, 2.0), n_w_fit=500)
    ctx = E.prepare_context(G, _ChannelJudge(), cfg)
    sums = [E.summarize_sweep(E.run_sweep(ctx, e, keep_strip=False), ctx, n_boot=50) for e in entries]
    locked = E.run_sweep(ctx, next(e for e in entries if e.method == "meandiff" and e.space.kind == "w"),
                         locked=[bank_b], keep_strip=False)
    sums.append(E.summarize_sweep(locked, ctx, n_boot=50))
    by = {s["name"]: s for s in sums}
    # The mean difference drags b along (Σ n_a = n_a + 1.5 n_b + ...); the SVM finds n_a; the (regularised)
    # logistic regression lies between them on these separable extremes.
    assert by["a/meandiff/w"]["slopes"]["b"] > 0.5 * by["a/meandiff/w"]["target_slope"]
    assert by["a/svm/w"]["leakage"] < 0.05 < 0.3 < by["a/meandiff/w"]["leakage"]
    assert by["a/logreg/w"]["leakage"] < 0.5 * by["a/meandiff/w"]["leakage"]
    # The density walk heads for the typical positive, which also has high b: entangled but in-distribution (its
    # w ends nearer the W mean than it started); the log-odds walk is clean.
    walk = by["a/mahalanobis/w"]
    odds = E.summarize_sweep(E.run_sweep(ctx, odds_entry, keep_strip=False), ctx, n_boot=50)
    assert walk["leakage"] > 0.2 and walk["latent_distance"][-1] < walk["latent_distance"][2]
    assert odds["slopes"]["b"] < 0.3 * walk["slopes"]["b"]
    claims = {c["claim"]: c for c in E.assess_claims(sums)}
    assert claims["logreg directions are cleaner than the mean difference (W)"]["verdict"] == "holds"
    assert claims["svm directions are cleaner than the mean difference (W)"]["verdict"] == "holds"
    # Locking b removes the mean difference's leakage into b.
    assert abs(by["a/meandiff/w|locked:b"]["slopes"]["b"]) < 0.1 * abs(by["a/meandiff/w"]["slopes"]["b"])
    assert claims["locking a correlated attribute keeps it from changing (conditional editing)"]["verdict"] == "holds"
