"""Direction bank file format, validation against a generator, and apply_edit."""

import numpy as np
import pytest

from editor import directions as D
from editor.bank import Bank, BankEntry, GeneratorInfo, apply_edit, conditioned_rows, load_bank, position, save_bank

INFO = GeneratorInfo(model_id="test-gen-1", z_dim=6, w_dim=5, num_ws=4)


def _bank(rng):
    x = rng.normal(size=(400, 5))
    y = x[:, 0] + 0.3 * x[:, 1] > 0
    lr = D.logistic_regression(x, y)
    g = D.fit_class_gaussians(x, y, rank=3)
    entries = (
        BankEntry("smile", "logreg", D.Space("w"), lr.vector, sigma=lr.sigma, intercept=lr.intercept,
                  labeller="synthetic", n_samples=400, train_accuracy=lr.train_accuracy, extra={"l2": 1.0}),
        BankEntry("age", "svm", D.Space.parse("w+:1-2"), D.unit(rng.normal(size=5)), sigma=0.7, val_accuracy=0.9),
        BankEntry("pose", "pca", D.Space("w+", 0, 4), rng.normal(size=(4, 5)), sigma=2.0),
        BankEntry("smile", "mahalanobis", D.Space("w"), lr.vector, sigma=1.1, gaussians=g, extra={"n_steps": 4}),
        BankEntry("smile", "meandiff", D.Space("z"), D.unit(rng.normal(size=6)), sigma=1.0),
    )
    return Bank(generator=INFO, entries=entries, command="python -m editor build-bank --model test")


def test_round_trip(tmp_path):
    bank = _bank(np.random.default_rng(0))
    path = save_bank(bank, tmp_path / "directions" / "test.safetensors")
    back = load_bank(path, generator=INFO)
    assert back.generator == INFO and back.command == bank.command and back.created
    assert [e.name for e in back.entries] == [e.name for e in bank.entries]
    for a, b in zip(bank.entries, back.entries):
        assert np.allclose(a.vector, b.vector, atol=1e-6)
        assert a.sigma == b.sigma and a.intercept == b.intercept and a.val_accuracy == b.val_accuracy
        assert a.extra == b.extra and a.space == b.space
    g0, g1 = bank.find("smile", "mahalanobis").gaussians, back.find("smile", "mahalanobis").gaussians
    assert np.allclose(g0.positive.basis, g1.positive.basis, atol=1e-6) and g0.negative.floor == g1.negative.floor


def test_load_refuses_another_generator(tmp_path):
    path = save_bank(_bank(np.random.default_rng(0)), tmp_path / "b.safetensors")
    with pytest.raises(ValueError, match="w_dim: bank 5 vs generator 8"):
        load_bank(path, generator=GeneratorInfo("test-gen-1", 6, 8, 4))
    with pytest.raises(ValueError, match="model_id"):
        load_bank(path, generator=GeneratorInfo("other", 6, 5, 4))
    load_bank(path, generator=GeneratorInfo("other", 6, 5, 4), check_identity=False)
    with pytest.raises(FileNotFoundError):
        load_bank(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a bank")
    with pytest.raises(ValueError, match="not a readable"):
        load_bank(tmp_path / "junk.safetensors")


def test_bank_rejects_bad_entries():
    with pytest.raises(ValueError, match="unknown method"):
        BankEntry("a", "magic", D.Space("w"), np.ones(5))
    with pytest.raises(ValueError, match="needs its class Gaussians"):
        BankEntry("a", "shrink", D.Space("w"), np.ones(5))
    with pytest.raises(ValueError, match="w_dim"):
        Bank(INFO, (BankEntry("a", "svm", D.Space("w"), np.ones(7)),))
    with pytest.raises(ValueError, match="num_ws=4"):
        Bank(INFO, (BankEntry("a", "svm", D.Space.parse("w+:2-5"), np.ones(5)),))
    with pytest.raises(ValueError, match="twice"):
        e = BankEntry("a", "svm", D.Space("w"), np.ones(5))
        Bank(INFO, (e, e))
    with pytest.raises(ValueError, match="it has: a/svm/w"):
        Bank(INFO, (BankEntry("a", "svm", D.Space("w"), np.ones(5)),)).find("a", "logreg")


def test_apply_edit_linear_units_layers_and_locks():
    rng = np.random.default_rng(1)
    bank = _bank(rng)
    ws = np.repeat(rng.normal(size=(3, 1, 5)), 4, axis=1)
    smile, age = bank.find("smile", "logreg"), bank.find("age")
    out = apply_edit(ws, [(smile, 2.0)])
    # alpha is in sigma units along the unit vector, on every layer.
    assert np.allclose((out - ws) @ smile.vector[0], 2.0 * smile.sigma)
    assert np.allclose(position(smile, out[:, 0]) - position(smile, ws[:, 0]), 2.0)
    # A w+ range moves only its layers.
    out = apply_edit(ws, [(age, 1.5)])
    assert np.allclose(out[:, [0, 3]], ws[:, [0, 3]]) and not np.allclose(out[:, 1:3], ws[:, 1:3])
    # Locking: the edit leaves the locked direction's projection unchanged on every layer where it acts.
    out = apply_edit(ws, [(smile, 3.0)], locked=[age])
    delta = out - ws
    assert np.max(np.abs(delta[:, 1:3] @ age.vector[0])) < 1e-12
    assert np.abs(delta[:, 0] @ age.vector[0]).max() > 1e-3  # age does not act on layer 0: no lock there
    rows = conditioned_rows(smile, [age, bank.find("pose")], 4)
    for layer in range(4):
        assert abs(rows[layer] @ bank.find("pose").vector[layer]) < 1e-12
    # alpha 0 is the identity; non-finite alpha is refused.
    assert np.array_equal(apply_edit(ws, [(smile, 0.0)]), ws)
    with pytest.raises(ValueError, match="finite"):
        apply_edit(ws, [(smile, float("nan"))])
    with pytest.raises(ValueError, match="num_ws, w_dim"):
        apply_edit(ws[0], [(smile, 1.0)])


def test_apply_edit_z_space_goes_through_the_mapping():
    rng = np.random.default_rng(2)
    bank = _bank(rng)
    proj = rng.normal(size=(6, 5))

    def mapping(z):  # a stand-in mapping network: z [N, 6] -> ws [N, 4, 5]
        return np.repeat(np.tanh(z @ proj)[:, None], 4, axis=1)

    z = rng.normal(size=(2, 6))
    ws = mapping(z)
    e = bank.find("smile", "meandiff", "z")
    out = apply_edit(ws, [(e, 1.0)], z=z, mapping=mapping)
    assert np.allclose(out, mapping(z + e.sigma * e.vector[0]))
    with pytest.raises(ValueError, match="need the base z"):
        apply_edit(ws, [(e, 1.0)])
    with pytest.raises(ValueError, match="only be locked"):
        apply_edit(ws, [(e, 1.0)], locked=[bank.find("age")], z=z, mapping=mapping)


def test_apply_edit_gaussian_walk_depends_on_latent():
    rng = np.random.default_rng(3)
    bank = _bank(rng)
    e = bank.find("smile", "mahalanobis")
    ws = np.repeat(rng.normal(size=(2, 1, 5)) * 3, 4, axis=1)
    out = apply_edit(ws, [(e, 1.0)])
    step = out[:, 0] - ws[:, 0]
    # The walk's path is sigma long (alpha = 1); it curves, so the displacement is a little shorter.
    assert np.all(np.linalg.norm(step, axis=1) <= e.sigma + 1e-9)
    assert np.all(np.linalg.norm(step, axis=1) > 0.9 * e.sigma)
    assert abs(step[0] @ step[1]) / np.prod(np.linalg.norm(step, axis=1)) < 0.9999
    assert np.all(e.gaussians.positive.log_density(out[:, 0]) > e.gaussians.positive.log_density(ws[:, 0]))


def test_engine_view_keeps_linear_w_directions():
    from editor.bank import to_engine_bank

    bank = _bank(np.random.default_rng(4))
    eb = to_engine_bank(bank)
    names = {(d.attribute, d.method, d.space, d.layers) for d in eb.directions}
    assert names == {("smile", "logreg", "w", None), ("age", "svm", "w+", (1, 3)), ("pose", "pca", "w+", (0, 4))}
    eb.check_fits(INFO.num_ws, INFO.w_dim)
    smile = next(d for d in eb.directions if d.attribute == "smile")
    assert np.allclose(smile.unit(4, 5)[0], bank.find("smile", "logreg").vector[0])


def test_engine_view_prefers_the_mean_difference_then_the_svm():
    """The editor's default ('auto' = an attribute's first direction) is the mean difference, else the SVM normal
    (when the bank has no ridge fit), whatever the bank order."""
    from editor.bank import to_engine_bank

    rng = np.random.default_rng(5)
    entries = tuple(BankEntry("smile", m, D.Space("w"), D.unit(rng.normal(size=5)), sigma=1.0)
                    for m in ("meandiff", "logreg", "svm", "pca"))
    eb = to_engine_bank(Bank(generator=INFO, entries=entries))
    assert [d.method for d in eb.directions] == ["meandiff", "svm", "logreg", "pca"]
    assert eb.find("smile", None, "w").method == "meandiff"
    no_meandiff = to_engine_bank(Bank(generator=INFO, entries=tuple(e for e in entries if e.method != "meandiff")))
    assert no_meandiff.find("smile", None, "w").method == "svm"


def test_build_entries_fits_ridge_and_the_editor_prefers_the_mean_difference(tmp_path):
    """Ridge fits every sample's score (and recovers the planted direction); the editor's default ('auto' = an
    attribute's first direction in the engine view) is the mean difference where the bank has one, then ridge."""
    from editor.bank import FitOptions, build_entries, to_engine_bank

    rng = np.random.default_rng(6)
    n = 600
    z, w = rng.normal(size=(n, INFO.z_dim)), rng.normal(size=(n, INFO.w_dim))
    ws = np.repeat(w[:, None], INFO.num_ws, axis=1)
    truth = D.unit(rng.normal(size=INFO.w_dim))
    scores = {"smile": 1 / (1 + np.exp(-3 * (w @ truth)))}
    entries = build_entries(z, ws, scores, "synthetic", ["svm", "ridge", "meandiff"],
                            [D.Space("w"), D.Space("w+", 1, 3)], FitOptions())
    bank = Bank(generator=INFO, entries=entries)
    ridge = bank.find("smile", "ridge", "w")
    assert ridge.vector[0] @ truth > 0.95 and ridge.val_accuracy > 0.9
    assert ridge.extra["fit_latents"] == "w" and ridge.extra["target"] == "normal"
    assert np.allclose(bank.find("smile", "ridge", "w+:1-2").vector, ridge.vector)
    loaded = load_bank(save_bank(bank, tmp_path / "b.safetensors"))
    assert loaded.find("smile", "ridge", "w").extra["val_rank_corr"] == ridge.extra["val_rank_corr"]
    eb = to_engine_bank(loaded)
    assert eb.find("smile", None, "w").method == "meandiff"
    assert [d.method for d in eb.directions if d.space == "w"] == ["meandiff", "ridge", "svm"]


def test_partial_entries_are_fitted_on_all_attributes_and_come_first_in_the_editor():
    from editor.bank import FitOptions, build_entries, to_engine_bank

    rng = np.random.default_rng(7)
    n = 800
    z, w = rng.normal(size=(n, INFO.z_dim)), rng.normal(size=(n, INFO.w_dim))
    ws = np.repeat(w[:, None], INFO.num_ws, axis=1)
    scores = {"smile": 1 / (1 + np.exp(-3 * w[:, 0])), "age": w[:, 1] + 0.5 * w[:, 0]}
    entries = build_entries(z, ws, scores, "synthetic", ["meandiff", "partial"], [D.Space("w"), D.Space("w+", 1, 3)],
                            FitOptions())
    bank = Bank(generator=INFO, entries=entries)
    partial = bank.find("age", "partial", "w")
    assert partial.vector[0] @ D.unit(np.eye(INFO.w_dim)[1]) > 0.95  # smile's share of age held fixed
    assert np.allclose(bank.find("age", "partial", "w+:1-2").vector, partial.vector)
    eb = to_engine_bank(bank)
    assert eb.find("smile", None, "w").method == "partial"


def test_bank_naming_one_tensor_many_times_is_refused_before_it_is_expanded(tmp_path):
    """2000 entries pointing at one 4 MB tensor would materialise 16 GB (a float64 copy per entry)."""
    import json
    import tracemalloc

    from safetensors.numpy import save_file

    from editor.bank import MAX_BANK_ENTRIES, load_bank

    big = np.ones((1, 2**20), np.float32)  # 4 MB
    entry = {"attribute": "a", "method": "svm", "space": "w", "sigma": 1.0, "intercept": 0.0,
             "tensors": {"vector": "v"}}
    entries = [dict(entry, attribute=f"a{i}") for i in range(2000)]
    meta = {"format": 1, "generator": {"model_id": "x", "z_dim": 8, "w_dim": 2**20, "num_ws": 4}, "entries": entries}
    path = tmp_path / "crafted.safetensors"
    save_file({"v": big}, str(path), metadata={"bank": json.dumps(meta)})
    assert path.stat().st_size < 5 * 2**20
    tracemalloc.start()
    with pytest.raises(ValueError, match="vector 'v' has shape"):
        load_bank(path)
    big = np.ones((1, 4096), np.float32)  # a plausible vector size, but named 20,000 times: over the value bound
    meta["generator"]["w_dim"] = 4096
    meta["entries"] = [dict(entry, attribute=f"a{i}") for i in range(MAX_BANK_ENTRIES)]
    save_file({"v": big}, str(path), metadata={"bank": json.dumps(meta)})
    with pytest.raises(ValueError, match="materialise more than"):
        load_bank(path)
    meta["entries"] = [dict(entry, attribute=f"a{i}") for i in range(MAX_BANK_ENTRIES + 1)]
    save_file({"v": big}, str(path), metadata={"bank": json.dumps(meta)})
    with pytest.raises(ValueError, match="at most"):
        load_bank(path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 200 * 2**20


def test_malformed_bank_records_get_the_loaders_error(tmp_path):
    import json

    from safetensors.numpy import save_file

    from editor.bank import load_bank

    path = tmp_path / "b.safetensors"
    for meta in ({"format": 1, "generator": {"model_id": "x"}, "entries": [{"tensors": {"vector": "v"}}]},
                 {"format": 1, "generator": {}, "entries": "nope"},
                 {"format": 1, "generator": {"model_id": "x"}, "entries": [{"tensors": {"vector": "missing"}}]}):
        save_file({"v": np.ones((1, 4), np.float32)}, str(path), metadata={"bank": json.dumps(meta)})
        with pytest.raises(ValueError, match=str(path.name)):
            load_bank(path)
