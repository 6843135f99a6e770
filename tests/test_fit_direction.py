"""The fit-direction sub-command: a direction from a researcher's own latents and labels (tiny synthetic data)."""

import json

import numpy as np
import pytest

from editor import directions as D
from editor.commands import main


def _world(n=400, dim=12, seed=0):
    """Anisotropic latents and a probability score along a planted unit direction."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim)) * np.linspace(2.0, 0.2, dim)
    truth = D.unit(rng.normal(size=dim))
    t = x @ truth
    scores = 1 / (1 + np.exp(-(4 * t / t.std() + 0.5 * rng.normal(size=n))))
    return x, scores, truth


def test_npy_latents_and_scores_default_to_the_ridge_fit(tmp_path, capsys):
    x, s, truth = _world()
    np.save(tmp_path / "L.npy", x.astype(np.float32))
    np.save(tmp_path / "S.npy", s[:, None])  # InterFaceGAN's scores are [N, 1]
    out = tmp_path / "out" / "smile.npy"
    assert main(["fit-direction", "--latents", str(tmp_path / "L.npy"), "--scores", str(tmp_path / "S.npy"),
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "method ridge (auto)" in printed and "accuracy on the validation set" in printed and "sigma" in printed
    d = np.load(out)
    assert d.shape == (1, 12) and d.dtype == np.float32
    assert np.isclose(np.linalg.norm(d), 1.0, atol=1e-6) and d[0] @ truth > 0.97
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["method"] == "ridge" and meta["n_labelled"] == 400 and meta["extra"]["n_train"] == 280
    assert np.isclose(meta["sigma"], np.std(x.astype(np.float32).astype(np.float64) @ d[0].astype(np.float64)),
                      rtol=1e-5)
    assert meta["val_accuracy"] > 0.95
    assert meta["command"].startswith("python -m editor fit-direction --latents")
    # The same numbers as the library's protocol with the same seed.
    ref = D.fit_scores(D.ridge_regression, x.astype(np.float32), s, np.random.default_rng(0))
    assert np.allclose(d[0], ref.vector, atol=1e-6) and np.isclose(meta["val_accuracy"], ref.val_accuracy)


def test_csv_keyed_by_row_with_a_chosen_column_and_the_interfacegan_svm(tmp_path, capsys):
    x, s, truth = _world(seed=1)
    np.save(tmp_path / "L.npy", x)
    rows = np.arange(0, 400, 2)  # only every other latent is labelled
    lines = ["id,smiling,age"] + [f"{i},{int(s[i] > 0.5)},{0.1 * (i % 7)}" for i in rows]
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "smiling.npy"
    args = ["fit-direction", "--latents", str(tmp_path / "L.npy"), "--scores", str(tmp_path / "labels.csv"),
            "--out", str(out)]
    assert main(args) == 1
    assert "pick one with --attribute" in capsys.readouterr().err
    assert main(args + ["--attribute", "smiling", "--method", "svm", "--share", "0.5"]) == 0
    printed = capsys.readouterr().out
    assert "smiling: 400 latents (D=12), 200 labelled; method svm" in printed
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["method"] == "svm" and meta["n_labelled"] == 200 and meta["attribute"] == "smiling"
    # 0/1 labels: the share is limited to the rarer class (as in build-bank), so each end holds one class.
    n_pos = int(np.sum(s[rows] > 0.5))
    assert meta["extra"]["n_train"] + meta["extra"]["n_val"] == 2 * min(n_pos, 200 - n_pos)
    assert np.load(out)[0] @ truth > 0.85  # 130 training labels, 0/1 only


def test_jsonl_with_w_plus_codes_fits_the_mean_of_the_chosen_layers(tmp_path):
    x, s, _ = _world(n=300, seed=2)
    rng = np.random.default_rng(3)
    ws = x[:, None, :] + 0.1 * rng.normal(size=(300, 4, 12))  # [N, num_ws, D], layers differ a little
    np.save(tmp_path / "ws.npy", ws)
    with open(tmp_path / "r.jsonl", "w") as f:
        for i in range(300):
            f.write(json.dumps({"id": i, "rating": float(s[i])}) + "\n")
    out = tmp_path / "d.npy"
    assert main(["fit-direction", "--latents", str(tmp_path / "ws.npy"), "--layers", "1-2", "--scores",
                 str(tmp_path / "r.jsonl"), "--seed", "5", "--out", str(out)]) == 0
    ref = D.fit_scores(D.ridge_regression, ws[:, 1:3].mean(axis=1), s, np.random.default_rng(5))
    assert np.allclose(np.load(out)[0], ref.vector, atol=1e-6)


def test_npy_score_columns(tmp_path, capsys):
    x, s, truth = _world(seed=4)
    np.save(tmp_path / "L.npy", x)
    np.save(tmp_path / "S.npy", np.c_[np.random.default_rng(0).random(400), s])
    base = ["fit-direction", "--latents", str(tmp_path / "L.npy"), "--scores", str(tmp_path / "S.npy"),
            "--out", str(tmp_path / "d.npy")]
    assert main(base) == 1
    assert "pick one with --column 0..1" in capsys.readouterr().err
    assert main(base + ["--column", "1", "--method", "logreg"]) == 0
    assert np.load(tmp_path / "d.npy")[0] @ truth > 0.9


@pytest.mark.parametrize("case, message", [
    ("short_scores", "one per latent"),
    ("id_outside", "ids must be rows 0..399"),
    ("out_suffix", "--out must end in .npy"),
    ("layers_on_w", "--layers needs W+ codes"),
    ("not_npy_latents", "--latents must be a .npy"),
])
def test_bad_inputs_give_clear_errors(tmp_path, capsys, case, message):
    x, s, _ = _world()
    np.save(tmp_path / "L.npy", x)
    np.save(tmp_path / "S.npy", s)
    latents, scores, out, extra = tmp_path / "L.npy", tmp_path / "S.npy", tmp_path / "d.npy", []
    if case == "short_scores":
        np.save(tmp_path / "S.npy", s[:-1])
    elif case == "id_outside":
        scores = tmp_path / "l.csv"
        scores.write_text("id,smiling\n0,1\n400,0\n")
    elif case == "out_suffix":
        out = tmp_path / "d.txt"
    elif case == "layers_on_w":
        extra = ["--layers", "0-1"]
    elif case == "not_npy_latents":
        latents = tmp_path / "L.csv"
        latents.write_text("1,2\n")
    assert main(["fit-direction", "--latents", str(latents), "--scores", str(scores), "--out", str(out)] + extra) == 1
    assert message in capsys.readouterr().err
