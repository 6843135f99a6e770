"""T (z -> toon parameters), the distillation trainer and the truth labeller."""

import dataclasses

import numpy as np
import pytest
import torch

from editor.labelers import TruthLabeler, make_labeler
from editor.samples import z_from_seeds
from editor.stylegan2 import NetworkConfig
from editor.toonfaces import ATTRIBUTES, ToonParams, attributes_of, sample_params
from editor.toonlatent import LatentWorld
from editor.train.distill import DistillConfig, Distiller, export_portable, import_portable, STATE_FILE

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = NetworkConfig(z_dim=96, w_dim=32, img_resolution=32, mapping_layers=2, channel_base=512, channel_max=32,
                     num_fp16_res=0, extra={"lr_multiplier": 1.0})


def _tiny_cfg(**kw) -> DistillConfig:
    return DistillConfig(network=TINY, batch=4, compile=False, **kw)


def test_t_is_deterministic_and_moves_every_parameter():
    world = LatentWorld(96)
    z = np.random.default_rng(0).standard_normal((400, 96))
    assert world.params(z[:5]) == LatentWorld(96).params(z[:5])
    params = world.params(z)
    for f in dataclasses.fields(ToonParams):
        if f.name == "seed":
            continue
        values = {repr(getattr(p, f.name)) for p in params}
        assert len(values) > 1, f"T never changes {f.name}"
    # another mixing seed is another map
    assert LatentWorld(96, seed=1).params(z[:5]) != params[:5]


def test_mixing_keeps_the_standard_normal_but_can_bend():
    world = LatentWorld(96, strength=1.0)
    z = np.random.default_rng(1).standard_normal((20000, 96))
    g = world.mix(z)
    assert np.abs(g.mean(0)).max() < 0.05
    cov = np.cov(g.T)
    assert np.abs(cov - np.eye(96)).max() < 0.06
    a, b = z[:10], z[10:20]
    assert not np.allclose(world.mix(a + b), world.mix(a) + world.mix(b), atol=1e-3)
    # norms are kept exactly (every step is a rotation); the default (strength 0) is one fixed rotation
    np.testing.assert_allclose(np.linalg.norm(g, axis=1), np.linalg.norm(z, axis=1), rtol=1e-10)
    plain = LatentWorld(96)
    np.testing.assert_allclose(plain.mix(a + b), plain.mix(a) + plain.mix(b), atol=1e-10)


def test_t_draws_the_worlds_population():
    world = LatentWorld(96)
    ta = world.attributes(np.random.default_rng(2).standard_normal((3000, 96)))
    sa = [attributes_of(sample_params(s)) for s in range(3000)]
    for spec in ATTRIBUTES:
        if spec.kind == "binary":
            rt = np.mean([a[spec.name] for a in ta])
            rs = np.mean([a[spec.name] for a in sa])
            assert abs(rt - rs) < 0.05, (spec.name, rt, rs)
    # a deliberate correlation survives: old faces are more often grey
    old = np.array([a["old"] for a in ta], bool)
    grey = np.array([a["grey_hair"] for a in ta], bool)
    assert grey[old].mean() > grey[~old].mean() + 0.3


def test_latent_world_refuses_too_small_z():
    with pytest.raises(ValueError, match="z_dim"):
        LatentWorld(32)


def test_distillation_lowers_the_loss_and_resumes_exactly(tmp_path):
    d = Distiller(_tiny_cfg(feature_weight=0.1))
    first = [d.step()["loss"] for _ in range(2)]
    for _ in range(8):
        d.step()
    # the same batches again: the loss went down
    again = Distiller(_tiny_cfg(feature_weight=0.1))
    again.load_state_dict(d.state_dict())
    losses_after = []
    for k in range(2):
        z = again.latents(k)
        with torch.no_grad():
            l1, feat, _ = again._loss_terms(torch.from_numpy(z), again.targets(z))
        losses_after.append(float(l1 + 0.1 * feat))
    assert np.mean(losses_after) < np.mean(first)

    a = Distiller(_tiny_cfg(feature_weight=0.0))
    for _ in range(4):
        a.step()
    b = Distiller(_tiny_cfg(feature_weight=0.0))
    for _ in range(2):
        b.step()
    b.save(tmp_path / STATE_FILE)
    c = Distiller.from_state(tmp_path / STATE_FILE)
    for _ in range(2):
        c.step()
    assert c.nimg == a.nimg == 16 and c.it == a.it == 4
    for (name, p), q in zip(a.G.state_dict().items(), c.G.state_dict().values()):
        assert torch.equal(p, q), name
    for p, q in zip(a.G_ema.state_dict().values(), c.G_ema.state_dict().values()):
        assert torch.equal(p, q)


def test_low_resolution_phase_trains_the_half_size_image_first():
    d = Distiller(_tiny_cfg(feature_weight=0.0, low_res_kimg=0.008))
    assert d.resolution == 16
    last = d.G.synthesis.b32.torgb.weight.detach().clone()
    d.step()
    d.step()
    assert torch.equal(d.G.synthesis.b32.torgb.weight, last)  # the last block is not trained yet
    assert d.resolution == 32
    d.step()
    assert not torch.equal(d.G.synthesis.b32.torgb.weight, last)


def test_mapping_pretraining_makes_w_carry_the_draws():
    d = Distiller(_tiny_cfg(feature_weight=0.0, mapping_pretrain_kimg=30.0))
    assert not d.mapping_pretrained
    r2 = d.pretrain_mapping()
    assert d.mapping_pretrained and r2 > 0.1  # a linear readout of w predicts part of T's draws (w_dim 32 < 44)
    for p, q in zip(d.G.mapping.parameters(), d.G_ema.mapping.parameters()):
        assert torch.equal(p, q)
    d.step()


def test_portable_state_round_trip(tmp_path):
    d = Distiller(_tiny_cfg(feature_weight=0.0))
    d.step()
    (tmp_path / "run").mkdir()
    d.save(tmp_path / "run" / STATE_FILE)
    export_portable(tmp_path / "run", tmp_path / "portable")
    assert (tmp_path / "portable" / "G_ema.safetensors").stat().st_size < 2 * sum(
        p.numel() for p in d.G.parameters()) * 2 + 100_000  # float16
    import_portable(tmp_path / "portable", tmp_path / "run2")
    e = Distiller.from_state(tmp_path / "run2" / STATE_FILE)
    assert e.nimg == d.nimg and e.cfg == d.cfg
    for p, q in zip(d.G_ema.state_dict().values(), e.G_ema.state_dict().values()):
        torch.testing.assert_close(p, q, atol=2e-3, rtol=2e-3)
    e.step()  # fresh Adam moments work
    assert not (tmp_path / "portable" / "D.safetensors").exists()


def test_portable_state_carries_the_adversary(tmp_path):
    d = Distiller(_tiny_cfg(feature_weight=0.0, adv_weight=0.1, adv_patch=16))
    d.step()
    (tmp_path / "run").mkdir()
    d.save(tmp_path / "run" / STATE_FILE)
    export_portable(tmp_path / "run", tmp_path / "portable")
    import_portable(tmp_path / "portable", tmp_path / "run2")
    e = Distiller.from_state(tmp_path / "run2" / STATE_FILE)
    for p, q in zip(d.D.state_dict().values(), e.D.state_dict().values()):
        torch.testing.assert_close(p, q, atol=2e-3, rtol=2e-3)
    e.step()


def test_truth_labeller_returns_the_attributes_of_t():
    lab = TruthLabeler(z_dim=96)
    ids = [3, 17, 40]
    scores = lab(None, ids)
    truth = LatentWorld(96).attributes(z_from_seeds(ids, 96))
    assert set(scores) == set(lab.attributes)
    for i, t in enumerate(truth):
        assert scores["smiling"][i] == t["smiling"]
        assert scores["age"][i] == pytest.approx(t["age"])
        assert scores[f"hair_color={t['hair_color_name']}"][i] == 1.0
        assert sum(scores[f"hair_color={c}"][i] for c in ("black", "brown", "blond", "red", "grey")) == 1.0
    with pytest.raises(ValueError, match="seeds"):
        lab(None, [])


def test_truth_labeller_refuses_a_model_that_was_not_distilled(tmp_path):
    (tmp_path / "config.json").write_text('{"init_kwargs": {"z_dim": 96}, "training": {"route": "gan"}}')
    with pytest.raises(ValueError, match="not distilled"):
        make_labeler(f"truth:{tmp_path}")


def test_truth_labeller_follows_the_model_it_labels(tmp_path):
    (tmp_path / "config.json").write_text('{"init_kwargs": {"z_dim": 96}, "training": {"route": "distillation", '
                                          '"world_seed": 3, "mixing_strength": 0.5}}')
    lab = make_labeler("truth", model=tmp_path)
    assert (lab.z_dim, lab.world_seed, lab.strength) == (96, 3, 0.5)
    assert lab(None, [5])["smiling"][0] == LatentWorld(96, 3, 0.5).attributes(z_from_seeds([5], 96))[0]["smiling"]


def test_a_resumed_run_can_lower_its_learning_rate_and_add_the_adversary(tmp_path):
    import json

    from editor.train.distill import run_distill

    run_distill(_tiny_cfg(feature_weight=0.0), tmp_path, kimg=0.008, eval_count=4)
    run_distill(None, tmp_path, resume=True, changes={"lr": 5e-4, "adv_weight": 0.1}, kimg=0.016, eval_count=4)
    d = Distiller.from_state(tmp_path / STATE_FILE)
    assert d.nimg == 16 and d.cfg.lr == 5e-4 and all(g["lr"] == 5e-4 for g in d.opt.param_groups)
    assert d.D is not None and json.loads((tmp_path / "distill_config.json").read_text())["adv_weight"] == 0.1
    changes = [r for r in map(json.loads, (tmp_path / "log.jsonl").read_text().splitlines()) if "changed" in r]
    assert changes == [{"kimg": 0.008, "changed": {"lr": 5e-4, "adv_weight": 0.1},
                        "was": {"lr": 0.002, "adv_weight": 0.0}}]
    with pytest.raises(ValueError, match="lr > 0"):
        run_distill(None, tmp_path, resume=True, changes={"lr": -1.0}, kimg=0.02, eval_count=4)
    with pytest.raises(ValueError, match="cannot change"):
        run_distill(None, tmp_path, resume=True, changes={"batch": 8}, kimg=0.02, eval_count=4)
    run_distill(None, tmp_path, resume=True, changes={"adv_patch": 16}, kimg=0.02, eval_count=4)  # a new D shape
    assert Distiller.from_state(tmp_path / STATE_FILE).D.img_resolution == 16
    with pytest.raises(ValueError, match="adv_patch"):
        _tiny_cfg(adv_patch=12)


def test_the_adversary_learns_to_tell_renders_and_resumes_exactly(tmp_path):
    """With adv_weight > 0 a discriminator trains beside G on patches (its state saved and restored exactly): on a
    fixed batch its loss falls, and its verdict changes G's update."""
    a = Distiller(_tiny_cfg(feature_weight=0.0, adv_weight=0.1, d_reg_interval=2, adv_patch=16))
    assert a.D.img_resolution == 16 and a._crop(torch.zeros(4, 3, 32, 32), a._crops(0)).shape == (4, 3, 16, 16)
    stats = [a.step() for _ in range(4)]
    assert all({"g_adv", "d_loss", "d_real", "d_fake"} <= set(s) for s in stats)
    assert any("r1" in s for s in stats) and all(np.isfinite(s["d_loss"]) for s in stats)
    z = a.latents(1000)
    with torch.no_grad():
        fake = a._crop(a.G(torch.from_numpy(z), None, noise_mode="const"), a._crops(1000))
    real = a._crop(a.targets(z), a._crops(1000, real=True))
    losses = [a._discriminator_step(fake, real, k=1)["d_loss"] for _ in range(20)]
    assert losses[-1] < losses[0] - 0.1, losses
    plain = Distiller(_tiny_cfg(feature_weight=0.0))
    adv = Distiller(_tiny_cfg(feature_weight=0.0, adv_weight=0.1))
    adv.G.load_state_dict(plain.G.state_dict())
    plain.step(), adv.step()
    assert any(not torch.equal(p, q) for p, q in zip(plain.G.parameters(), adv.G.parameters()))
    b = Distiller(_tiny_cfg(feature_weight=0.0, adv_weight=0.1, d_reg_interval=2))
    for _ in range(6):
        b.step()
    b.save(tmp_path / STATE_FILE)
    c = Distiller.from_state(tmp_path / STATE_FILE)
    b_next = b.step()
    c_next = c.step()
    assert b_next == c_next
    for p, q in zip(b.D.state_dict().values(), c.D.state_dict().values()):
        assert torch.equal(p, q)
