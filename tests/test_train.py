"""Trainer tests on tiny configurations (CPU, seconds): augmentation, ADA controller, losses, EMA, exact resume."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from editor.stylegan2 import CONFIGS
from editor.train import AdaController, AugmentConfig, AugmentPipe, RunOptions, TrainConfig, Trainer, run_training
from editor.train.data import BatchStream, FolderSource, ToonSource, load_image_folder

pytestmark = pytest.mark.usefixtures("one_thread")


TINY = replace(CONFIGS["small"], img_resolution=16, channel_base=256, channel_max=16, mbstd_group_size=2)


def tiny_cfg(**kw) -> TrainConfig:
    base = dict(network=TINY, batch=4, g_reg_interval=2, d_reg_interval=2, ada_interval=1, ada_kimg=0.1)
    base.update(kw)
    return TrainConfig(**base)


def random_images(n=12, res=16, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, res, res, 3), dtype=np.uint8)


# -- augmentation


def test_augment_identity_at_p0():
    x = torch.randn(6, 3, 16, 16)
    pipe = AugmentPipe(p=0.0)
    assert pipe(x) is x
    torch.manual_seed(0)
    assert torch.equal(pipe.apply(x, 0.0), x)  # the full path with every transform gated off


def test_augment_differentiable():
    torch.manual_seed(1)
    x = torch.randn(8, 3, 16, 16, requires_grad=True)
    pipe = AugmentPipe(AugmentConfig(lumaflip=True), p=1.0)
    y = pipe(x)
    assert y.shape == x.shape and not torch.allclose(y, x)
    (y * torch.randn_like(y)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_geometric_transforms_are_flips_rotations_and_reflect_shifts():
    torch.manual_seed(2)
    x = torch.randn(16, 3, 8, 8)
    only_rot = AugmentPipe(AugmentConfig(xflip=False, xint=False, brightness=False, contrast=False, hue=False,
                                         saturation=False), p=1.0)
    y = only_rot(x)
    for i in range(x.shape[0]):
        assert any(torch.equal(y[i], torch.rot90(x[i], k, dims=(1, 2))) for k in range(4))
    only_flip = AugmentPipe(AugmentConfig(rotate90=False, xint=False, brightness=False, contrast=False, hue=False,
                                          saturation=False), p=1.0)
    y = only_flip(x)
    for i in range(x.shape[0]):
        assert torch.equal(y[i], x[i]) or torch.equal(y[i], x[i].flip(2))
    # colour transforms alone keep each pixel's position: a luma-preserving hue rotation keeps the mean of RGB
    only_hue = AugmentPipe(AugmentConfig(xflip=False, rotate90=False, xint=False, brightness=False, contrast=False,
                                         saturation=False), p=1.0)
    y = only_hue(x)
    assert torch.allclose(y.mean(1), x.mean(1), atol=1e-5)


def test_ada_controller_moves_p_in_the_right_direction():
    pipe = AugmentPipe(p=0.5)
    ada = AdaController(target=0.6, interval=2, speed_kimg=1.0)
    for _ in range(2):  # D is confident on reals (r_t = 1 > 0.6): overfitting -> p goes up
        ada.accumulate(torch.ones(8, 1))
        ada.update(pipe, 8)
    assert pipe.p == pytest.approx(0.5 + 16 / 1000)
    for _ in range(4):  # r_t = 0.25 < 0.6 -> p goes down
        ada.accumulate(torch.tensor([[1.0], [-1.0], [-1.0], [1.0], [-1.0], [-1.0], [-1.0], [1.0]]))
        ada.update(pipe, 8)
    assert pipe.p == pytest.approx(0.5 + 16 / 1000 - 32 / 1000)
    assert ada.last_rt == pytest.approx(-0.25)


# -- training


def test_steps_run_and_losses_move():
    cfg = tiny_cfg()
    tr = Trainer(cfg)
    ema0 = {k: v.clone() for k, v in tr.G_ema.state_dict().items()}
    stream = BatchStream(FolderSource(random_images()), cfg.batch)
    seen = set()
    for _ in range(4):
        stats = tr.step(next(stream))
        assert all(torch.isfinite(v).all() for v in stats.values())
        seen.update(stats)
    assert {"loss_G", "loss_D", "r1_penalty", "pl_penalty"} <= seen
    assert tr.cur_nimg == 16 and tr.batch_idx == 4
    assert any(not torch.equal(ema0[k], v) for k, v in tr.G_ema.state_dict().items())  # EMA moved


def test_generator_step_lowers_its_loss_for_a_fixed_discriminator():
    tr = Trainer(tiny_cfg(style_mixing=0.0, g_lr=0.01))
    z = torch.randn(4, TINY.z_dim)

    def g_loss():
        with torch.no_grad():
            img = tr.G.synthesis(tr.G.mapping(z, None), noise_mode="const")
            return float(torch.nn.functional.softplus(-tr.D(img)).mean())

    before = g_loss()
    for _ in range(5):
        tr.G.requires_grad_(True)
        tr.opt_G.zero_grad()
        img = tr.G.synthesis(tr.G.mapping(z, None), noise_mode="const")
        torch.nn.functional.softplus(-tr.D(img)).mean().backward()
        tr.opt_G.step()
    assert g_loss() < before


def test_toon_source_is_seeded_and_batches_are_deterministic():
    src = ToonSource(16)
    a = src.images(5, 3)
    assert a.shape == (3, 16, 16, 3) and a.dtype == np.uint8
    assert np.array_equal(a[1:], src.images(6, 2))
    stream = BatchStream(src, 2, start_batch=3)
    assert torch.equal(next(stream), torch.from_numpy(src.images(6, 2)).permute(0, 3, 1, 2))


def test_folder_source_epochs_cover_every_image(tmp_path):
    from PIL import Image

    imgs = random_images(5, 20)
    for i, im in enumerate(imgs):
        Image.fromarray(im).save(tmp_path / f"{i}.png")
    loaded = load_image_folder(tmp_path, 16)
    assert loaded.shape == (5, 16, 16, 3)
    src = FolderSource(loaded, seed=3)
    epoch = src.images(0, 5)
    assert sorted(x.tobytes() for x in epoch) == sorted(x.tobytes() for x in loaded)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images"):
        load_image_folder(tmp_path / "empty", 16)
    with pytest.raises(FileNotFoundError):
        load_image_folder(tmp_path / "missing", 16)


def _states_equal(a: dict, b: dict) -> None:
    for key in ("G", "D", "G_ema"):
        assert a[key].keys() == b[key].keys()
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), f"{key}.{name} differs"
    assert a["cur_nimg"] == b["cur_nimg"] and a["batch_idx"] == b["batch_idx"]
    assert a["augment_p"] == b["augment_p"]
    assert torch.equal(a["rng_cpu"], b["rng_cpu"])
    assert torch.equal(a["pl_mean"], b["pl_mean"])
    for opt in ("opt_G", "opt_D"):
        for idx, st in a[opt]["state"].items():
            for k, v in st.items():
                assert torch.equal(v, b[opt]["state"][idx][k]), f"{opt} {idx} {k} differs"


def test_resume_reproduces_the_uninterrupted_run(tmp_path):
    from PIL import Image

    data = tmp_path / "data"
    data.mkdir()
    for i, im in enumerate(random_images(10, 16)):
        Image.fromarray(im).save(data / f"{i:02d}.png")
    # augment p starts high so the ADA path (and its RNG use) is exercised
    cfg = tiny_cfg(data=str(data), augment_p=0.5, mirror=True)
    opts = dict(sample_kimg=None, metric=None, grid=(2, 2), workers=0)
    full = run_training(cfg, tmp_path / "full", RunOptions(kimg=0.024, **opts))  # 6 iterations of 4 images
    part = run_training(cfg, tmp_path / "part", RunOptions(kimg=0.012, **opts))  # killed after 3 ...
    assert part["kimg"] == pytest.approx(0.012)
    with pytest.raises(ValueError, match="already holds"):
        run_training(cfg, tmp_path / "part", RunOptions(kimg=0.024, **opts))
    resumed = run_training(None, tmp_path / "part", RunOptions(kimg=0.024, **opts), resume=True)  # ... resumed
    assert resumed["kimg"] == full["kimg"]
    a = torch.load(tmp_path / "full" / "training_state.pt", weights_only=True)
    b = torch.load(tmp_path / "part" / "training_state.pt", weights_only=True)
    _states_equal(a, b)
    from editor.checkpoints import load_generator

    G = load_generator(tmp_path / "part" / "G_ema")
    assert G.img_resolution == 16
    assert (tmp_path / "part" / "samples" / "fakes-000000.png").is_file()


def test_bad_configs_are_rejected():
    with pytest.raises(ValueError, match="multiple of the minibatch-std"):
        tiny_cfg(batch=3)
    with pytest.raises(ValueError, match="unknown network config"):
        from editor.train import network_config_for

        network_config_for(64, "nope")
    with pytest.raises(ValueError, match="sample_kimg"):
        RunOptions(sample_kimg=0)
    with pytest.raises(ValueError, match="minutes"):
        RunOptions(minutes=-1)
    tr = Trainer(tiny_cfg())
    with pytest.raises(ValueError, match="reals must be"):
        tr.step(torch.zeros(4, 3, 8, 8, dtype=torch.uint8))


def test_fused_discriminator_pass_equals_two_passes():
    tr = Trainer(tiny_cfg(augment_p=0.7))
    fake, real = torch.randn(4, 3, 16, 16), torch.randn(4, 3, 16, 16)
    tr.loss.fuse_d = True
    torch.manual_seed(5)
    f1, r1 = tr.loss.run_D_pair(fake, real)
    tr.loss.fuse_d = False
    torch.manual_seed(5)
    f2, r2 = tr.loss.run_D_pair(fake, real)
    assert torch.allclose(f1, f2, atol=1e-5) and torch.allclose(r1, r2, atol=1e-5)


def test_cli_train_resume_and_metrics(tmp_path, capsys):
    from editor.commands import main

    out = tmp_path / "run"
    args = ["train", "--data", "toon", "--config", "small", "--batch", "4", "--out", str(out), "--metric", "none",
            "--grid", "2x2", "--workers", "0", "--threads", "1", "--no-progress"]
    assert main(args + ["--kimg", "0.004"]) == 0
    assert (out / "G_ema" / "config.json").is_file() and (out / "samples" / "reals.png").is_file()
    assert main(args + ["--kimg", "0.008"]) == 1  # the run exists: must be resumed, not overwritten
    assert "already holds a training run" in capsys.readouterr().err
    assert main(["train", "--out", str(out), "--resume", "--kimg", "0.008", "--batch", "8", "--metric", "none",
                 "--workers", "0", "--threads", "1", "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "ignoring --batch" in captured.err and "kimg 0.008" in captured.out
    assert main(["train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "x")]) == 1
    assert "existing folder" in capsys.readouterr().err
    assert main(["metrics", "--model", str(out / "G_ema"), "--metrics", "fd,kid", "--features", "pixels",
                 "--num", "8", "--device", "cpu"]) == 0
    assert "fd" in capsys.readouterr().out
