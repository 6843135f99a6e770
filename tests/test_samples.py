"""The resumable sample cache and bank building on a tiny random-weight generator."""

import numpy as np
import pytest
import torch

from editor.bank import Bank, FitOptions, build_entries, generator_info, load_bank, save_bank
from editor.checkpoints import load_generator
from editor.directions import Space
from editor.labelers import ImageStatsLabeler, ManualLabeler
from editor.samples import SampleCache, SampleSpec, z_from_seeds


@pytest.fixture(scope="module")
def G():
    return load_generator("random:small")


def _gen_meta(G):
    info = generator_info(G)
    return {"model_id": info.model_id, "z_dim": info.z_dim, "w_dim": info.w_dim, "num_ws": info.num_ws}


def test_cache_fills_resumes_and_relabels(G, tmp_path):
    spec = SampleSpec(n=10, seed0=100, chunk=4, keep_images=True)
    cache = SampleCache(tmp_path / "s", spec, _gen_meta(G))
    calls = []
    cache.fill(G, [ImageStatsLabeler()], batch=3, progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (10, 10)
    s = cache.load()
    assert np.array_equal(s.seeds, np.arange(100, 110))
    assert np.allclose(s.z, z_from_seeds(range(100, 110), G.z_dim))
    assert np.allclose(s.z[0], np.random.RandomState(100).randn(G.z_dim), atol=1e-6)
    with torch.no_grad():
        ws = G.mapping(torch.from_numpy(s.z[:2]).float(), None).numpy()
    assert s.ws.shape == (10, G.num_ws, G.w_dim) and np.allclose(s.ws[:2], ws, atol=1e-5)
    assert np.allclose(s.w, s.ws[:, 0])
    assert cache.images().shape == (10, 32, 32, 3)
    before = s.scores["stats"]["brightness"].copy()

    # Lose a chunk: only it is redone, with identical results.
    (tmp_path / "s" / "chunk_00001.npz").unlink()
    (tmp_path / "s" / "chunk_00001.stats.npz").unlink()
    assert cache.missing([ImageStatsLabeler()]) == [1]
    calls.clear()
    cache.fill(G, [ImageStatsLabeler()], batch=3, progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (4, 4)
    again = SampleCache(tmp_path / "s", spec, _gen_meta(G)).load()
    assert np.allclose(again.scores["stats"]["brightness"], before, atol=1e-5)

    # A second labeller labels the stored samples.
    manual = ManualLabeler(labels={"liked": {101: 1.0, 105: 0.0}})
    cache.fill(G, [manual])
    s = cache.load()
    assert set(s.scores) == {"stats", "manual"} and np.isnan(s.scores["manual"]["liked"][0])
    assert s.scores["manual"]["liked"][1] == 1.0

    # Reopening with other settings is refused.
    with pytest.raises(ValueError, match="another spec"):
        SampleCache(tmp_path / "s", SampleSpec(n=10, seed0=0, chunk=4), _gen_meta(G))
    with pytest.raises(ValueError, match="another generator"):
        SampleCache(tmp_path / "s", spec, {**_gen_meta(G), "model_id": "x"})


def test_build_entries_every_method_and_space_round_trips(G, tmp_path):
    cache = SampleCache(tmp_path / "s", SampleSpec(n=120, chunk=60), _gen_meta(G))
    cache.fill(G, [ImageStatsLabeler(attributes=("brightness", "redness"))], batch=60)
    s = cache.load()
    spaces = [Space("z"), Space("w"), Space.parse("w+:4-7")]
    methods = ["meandiff", "logreg", "svm", "mahalanobis", "shrink", "pca", "sefa"]
    entries = build_entries(s.z, s.ws, s.scores["stats"], "stats", methods, spaces,
                            FitOptions(n_components=3, gaussian_rank=4), G=G)
    names = {e.name for e in entries}
    for a in ("brightness", "redness"):
        for m in methods[:5]:
            for sp in spaces:
                assert f"{a}/{m}/{sp}" in names
    assert "pc2/pca/w" in names and "sefa0/sefa/w+:4-7" in names and "pc0/pca/z" not in names
    svm = next(e for e in entries if e.name == "brightness/svm/w")
    assert svm.val_accuracy is not None and 0 <= svm.val_accuracy <= 1 and svm.extra["n_val"] > 0
    info = generator_info(G)
    path = save_bank(Bank(info, tuple(entries), command="test"), tmp_path / "bank.safetensors")
    assert len(load_bank(path, generator=info).entries) == len(entries)
    with pytest.raises(ValueError, match="unknown method"):
        build_entries(s.z, s.ws, s.scores["stats"], "stats", ["magic"], spaces)


def test_build_entries_with_sparse_manual_labels():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(200, 6))
    ws = np.repeat(z[:, None, :5], 3, axis=1)
    truth = ws[:, 0, 0] > 0
    labels = np.full(200, np.nan)
    picked = rng.choice(200, 40, replace=False)  # a person labelled 40 of 200 samples
    labels[picked] = truth[picked]
    entries = build_entries(z, ws, {"liked": labels}, "manual:x.csv", ["logreg", "svm", "shrink"], [Space("w")],
                            FitOptions(share=0.5, gaussian_rank=2))
    assert {e.method for e in entries} == {"logreg", "svm", "shrink"}
    for e in entries:
        assert e.n_samples < 40 and e.vector[0, 0] > 0.5  # found the labelled axis from the labelled samples only


def test_id_only_labellers_need_no_synthesis(G, tmp_path, monkeypatch):
    cache = SampleCache(tmp_path / "s", SampleSpec(n=6, chunk=3), _gen_meta(G))
    cache.fill(G)  # latents only
    manual = ManualLabeler(labels={"a": {i: float(i % 2) for i in range(6)}})

    def no_synthesis(*args, **kwargs):
        raise AssertionError("synthesis ran for a labeller that reads only the ids")

    monkeypatch.setattr(G.synthesis, "forward", no_synthesis)
    cache.fill(G, [manual])
    assert list(cache.load([manual.name]).scores[manual.name]["a"]) == [0, 1, 0, 1, 0, 1]
