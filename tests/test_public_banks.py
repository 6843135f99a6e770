"""Public FFHQ banks: conversion with provenance and licence, registry identity, Z -> W distillation (random G)."""

import numpy as np
import pytest

from editor.bank import Bank, BankEntry, GeneratorInfo, generator_info, load_bank, registry_generator_info, save_bank
from editor.commands import main
from editor.directions import Space
from editor.public_banks import GANSPACE_EDITS, convert_public_banks

from conftest import REPO, SHARED

PUBLIC = SHARED / "public-banks"


@pytest.fixture(scope="module")
def public_root():
    if not (PUBLIC / "e4e-stylegan2-ffhq-w").is_dir():
        pytest.skip(f"public direction files not found at {PUBLIC}")
    return PUBLIC


def test_convert_keeps_values_provenance_and_licence(public_root, tmp_path):
    bank = convert_public_banks(public_root, n_pcs=4)
    z = [e for e in bank.entries if e.space.kind == "z"]
    n_files = len(list((public_root / "interfacegan-stylegan2-ffhq-z").glob("boundary_*.npy")))
    assert len(z) == n_files >= 39
    smiling = bank.find("smiling", "svm", "z")
    raw = np.load(public_root / "interfacegan-stylegan2-ffhq-z" / "boundary_Smiling.npy")
    assert np.allclose(smiling.vector, raw / np.linalg.norm(raw), atol=1e-7) and smiling.sigma == 1.0
    assert smiling.extra["licence"] == "MIT" and "genforce/interfacegan @ 150882e" in smiling.extra["source"]
    assert "Yujun Shen" in smiling.extra["copyright"]
    pose = bank.find("pose", "svm", "w")
    assert pose.vector.shape == (1, 512) and "identical rows" in pose.extra["rows"]
    assert 0.1 < bank.find("age").sigma < 100 and "omertov" in bank.find("age").extra["copyright"]
    for name, (k, lo, hi) in GANSPACE_EDITS.items():
        e = bank.find(f"ganspace_{name}")
        assert e.method == "pca" and e.space == Space("w+", lo, hi) and e.extra["component"] == k
    assert [e.attribute for e in bank.entries if e.attribute.startswith("pc")] == ["pc0", "pc1", "pc2", "pc3"]
    # written and read back; validates against a generator verified to be the published weights (by fingerprint)
    path = save_bank(bank, tmp_path / "ffhq.safetensors")
    info = registry_generator_info("ffhq-1024")
    assert (info.z_dim, info.w_dim, info.num_ws) == (512, 512, 18)
    for verified in ("ffhq-1024", "ada-ffhq"):  # NVIDIA's ffhq.pkl is the original StyleGAN2 FFHQ network
        back = load_bank(path, GeneratorInfo("0123456789ab", 512, 512, 18, verified_as=verified))
        assert back.generator.model_id == "registry:ffhq-1024" and len(back.entries) == len(bank.entries)
    for source in ("ffhq-1024", "/cache/stylegan2-ffhq-1024x1024.pkl"):  # a name proves nothing
        with pytest.raises(ValueError, match="not verified"):
            load_bank(path, GeneratorInfo("0123456789ab", 512, 512, 18), source=source)
    with pytest.raises(ValueError, match="not verified"):
        load_bank(path, GeneratorInfo("0123456789ab", 512, 512, 18, verified_as="ada-metfaces"))
    load_bank(path, GeneratorInfo("0123456789ab", 512, 512, 18), check_identity=False)  # --bank: shape only
    with pytest.raises(ValueError, match="num_ws"):
        load_bank(path, GeneratorInfo("0123456789ab", 512, 512, 16, verified_as="ffhq-1024"))


def test_registry_identity_matches_the_built_ffhq_configuration():
    from editor.stylegan2 import build_generator

    G = build_generator("ffhq-1024")
    info = registry_generator_info("ffhq-1024")
    assert (info.z_dim, info.w_dim, info.num_ws) == (G.z_dim, G.w_dim, G.num_ws)
    with pytest.raises(ValueError, match="known"):
        registry_generator_info("demo")
    shipped = REPO / "directions" / "ffhq-1024.safetensors"
    if shipped.is_file():  # the app's loading path: verified weights get the bank, others only with --bank
        from editor.bank import generator_info
        from editor.service import _load_bank_file

        info = generator_info(G)
        with pytest.raises(ValueError, match="not verified"):
            _load_bank_file(shipped, G, "ffhq-1024", info=info)
        verified = GeneratorInfo(info.model_id, info.z_dim, info.w_dim, info.num_ws, verified_as="ffhq-1024")
        engine_bank = _load_bank_file(shipped, G, "ffhq-1024", info=verified)
        engine_bank.check_fits(G.num_ws, G.w_dim)
        assert len(engine_bank.attributes) == 22 and engine_bank.bank_id == "registry:ffhq-1024"
        assert len(_load_bank_file(shipped, G, "x.pkl", verify=False, info=info).attributes) == 22


def test_shipped_bank_is_current(public_root):
    """directions/ffhq-1024.safetensors is what convert-public-banks makes, with its licence notice beside it."""
    shipped = REPO / "directions" / "ffhq-1024.safetensors"
    if not shipped.is_file():
        pytest.skip("no shipped FFHQ bank")
    bank = load_bank(shipped, registry_generator_info("ffhq-1024"))
    fresh = convert_public_banks(public_root)
    assert [e.name for e in bank.entries] == [e.name for e in fresh.entries]
    for a, b in zip(bank.entries, fresh.entries):
        assert np.allclose(a.vector, b.vector, atol=1e-6) and abs(a.sigma - b.sigma) < 1e-5
    assert "MIT" in (REPO / "directions" / "ffhq-1024.LICENSES.md").read_text()
    from editor.bank import to_engine_bank

    engine_bank = to_engine_bank(bank)  # the app's view: W / W+ sliders only
    assert "smile" in engine_bank.attributes and "smiling" not in engine_bank.attributes


def test_convert_command(public_root, tmp_path, capsys):
    out = tmp_path / "b.safetensors"
    assert main(["convert-public-banks", "--src", str(public_root), "--out", str(out), "--pcs", "0", "--no-z"]) == 0
    bank = load_bank(out)
    assert not [e for e in bank.entries if e.space.kind == "z"] and "convert-public-banks" in bank.command
    assert (tmp_path / "b.LICENSES.md").is_file()
    assert main(["convert-public-banks", "--src", str(tmp_path / "nowhere"), "--out", str(out)]) == 1


def test_distill_z_boundaries_into_w_on_random_weights(tmp_path, capsys):
    from editor.checkpoints import load_generator
    from editor.samples import z_from_seeds

    G = load_generator("random:small")
    info = generator_info(G)
    rng = np.random.default_rng(0)
    dirs = [BankEntry(attribute=f"a{i}", method="svm", space=Space("z"), vector=rng.standard_normal((1, G.z_dim)))
            for i in range(2)]
    w_entry = BankEntry(attribute="w0", method="svm", space=Space("w"), vector=rng.standard_normal((1, G.w_dim)))
    src = save_bank(Bank(info, tuple(dirs + [w_entry]), command="test"), tmp_path / "z.safetensors")
    out = tmp_path / "w.safetensors"
    assert main(["distill-bank", "--model", "random:small", "--bank", str(src), "--out", str(out), "--n", "1500",
                 "--method", "lda", "--share", "0.2", "--calibrate", "--device", "cpu"]) == 0
    bank = load_bank(out, info)
    assert "distill-bank" in bank.command
    assert bank.find("w0").extra["sigma_source"].startswith("measured on 1500")
    # the distilled W direction ranks fresh samples like the Z boundary does
    # (a random mapping network is far from linear: compare with the best linear predictor of z·n from w, fitted by
    # least squares on the same 1500 latents the command sampled)
    import torch

    def latents(seeds):
        z = z_from_seeds(seeds, G.z_dim)
        with torch.no_grad():
            return z, G.mapping(torch.from_numpy(z), None).numpy()[:, 0].astype(np.float64)

    z_fit, w_fit = latents(range(1500))
    z, w = latents(range(5000, 5600))
    for d in dirs:
        e = bank.find(d.attribute, "lda", "w")
        assert e.labeller == f"z-boundary:{d.name}" and e.val_accuracy > 0.75
        zs, ws_ = z @ d.vector[0], w @ e.vector[0] + e.intercept
        coef = np.linalg.lstsq(np.c_[w_fit, np.ones(1500)], z_fit @ d.vector[0], rcond=None)[0]
        best = np.corrcoef(zs, np.c_[w, np.ones(600)] @ coef)[0, 1]
        assert np.corrcoef(zs, ws_)[0, 1] > 0.75 * best > 0.3
    # errors: a bank with no z directions, another generator's bank
    only_w = save_bank(Bank(info, (w_entry,), command="t"), tmp_path / "w_only.safetensors")
    assert main(["distill-bank", "--model", "random:small", "--bank", str(only_w), "--n", "100"]) == 1
    assert "no z-space directions" in capsys.readouterr().err
    assert main(["distill-bank", "--model", "random:small:1", "--bank", str(src), "--n", "100"]) == 1
    assert "another generator" in capsys.readouterr().err
