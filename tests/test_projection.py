"""Projection on the project's 'small' generator (32 px, random weights): few steps, no timing assertions."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from editor.projection import (BASELINE, DEFAULT, ProjectionConfig, Perceptual, _lr_at, _noise_penalty, project,
                               psnr, w_statistics)
from editor.stylegan2 import build_discriminator, build_generator

FAST = replace(DEFAULT, space="w", perceptual="none", pixel_weight=1.0, w_avg_samples=500, init_candidates=32,
               early_stop_patience=0)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def G():
    return build_generator("small", seed=0).eval().requires_grad_(False)


@pytest.fixture(scope="module")
def stats(G):
    return w_statistics(G, 500, seed=3)


def _target(G, seed, psi=0.5):
    z = torch.from_numpy(np.random.RandomState(seed).randn(1, G.z_dim).astype(np.float32))
    with torch.no_grad():
        ws = G.mapping(z, None, truncation_psi=psi)
        img = G.synthesis(ws, noise_mode="const")
    u8 = (img[0] * 127.5 + 128).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    return u8, ws


def test_projection_reduces_the_loss(G, stats):
    u8, _ = _target(G, 1)
    r = project(G, u8, steps=25, config=FAST, w_stats=stats)
    assert r.steps_run == 25 and len(r.losses) == 25 and r.stopped == ""
    assert min(r.losses[-5:]) < 0.7 * r.losses[0]
    assert r.ws.shape == (1, G.num_ws, G.w_dim)
    assert torch.allclose(r.ws, r.ws[:, :1].expand_as(r.ws))  # space 'w': one w for every layer
    assert r.image.shape == (32, 32, 3) and r.image.dtype == np.uint8
    # the reported image is what the editor renders from ws
    with torch.no_grad():
        again = G.synthesis(r.ws, noise_mode="const")
    again = (again[0] * 127.5 + 128).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    assert np.abs(again.astype(int) - r.image.astype(int)).max() <= 1
    assert r.psnr == pytest.approx(psnr(r.image, u8))


def test_projection_recovers_a_known_latents_image(G, stats):
    u8, ws_true = _target(G, 2)
    start = project(G, u8, steps=1, config=replace(FAST, init_candidates=0, lr=1e-6), w_stats=stats)
    r = project(G, u8, steps=40, space="w+", config=FAST, w_stats=stats)
    assert r.psnr > 20.0, r.psnr
    assert r.psnr > start.psnr + 5.0
    assert not torch.allclose(r.ws, r.ws[:, :1].expand_as(r.ws))  # W+: the layers moved apart


def test_projection_with_lpips_and_discriminator_features(G, stats):
    pytest.importorskip("stlpips_pytorch")
    u8, _ = _target(G, 3)
    r = project(G, u8, steps=4, config=replace(FAST, perceptual="alex", init_candidates=0), w_stats=stats)
    assert r.steps_run == 4 and all(np.isfinite(r.losses))
    D = build_discriminator("small", seed=0).eval().requires_grad_(False)
    r = project(G, u8, steps=4, config=replace(FAST, perceptual="disc", init_candidates=0), w_stats=stats,
                discriminator=D)
    assert r.steps_run == 4 and all(np.isfinite(r.losses))
    with pytest.raises(ValueError, match="discriminator"):
        project(G, u8, steps=2, config=replace(FAST, perceptual="disc"), w_stats=stats)


def test_noise_optimisation_leaves_the_generator_alone(G, stats):
    u8, _ = _target(G, 4)
    before = {k: v.clone() for k, v in G.state_dict().items()}
    r = project(G, u8, steps=3, config=replace(FAST, optimize_noise=True), w_stats=stats)
    assert r.noise is not None and len(r.noise) > 0
    for v in r.noise.values():
        assert abs(float(v.mean())) < 1e-4 and float(v.std()) == pytest.approx(1.0, rel=0.05)
    after = G.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_callback_progress_and_stop(G, stats):
    u8, _ = _target(G, 5)
    seen = []

    def cb(p):
        seen.append((p.step, p.total, p.ws.shape))
        return p.step == 7  # ask to stop

    r = project(G, u8, steps=50, config=FAST, callback=cb, w_stats=stats)
    assert r.stopped == "callback" and r.steps_run == 7
    assert [s[0] for s in seen] == list(range(1, 8))
    assert all(s[1] == 50 and s[2] == (1, G.num_ws, G.w_dim) for s in seen)


def test_early_stopping(G, stats):
    u8, _ = _target(G, 6)
    cfg = replace(FAST, lr=1e-7, latent_noise=0.0, early_stop_patience=5)  # no progress possible
    r = project(G, u8, steps=100, config=cfg, w_stats=stats)
    assert r.stopped == "early" and r.steps_run <= 10


def test_seeded_runs_repeat(G, stats):
    u8, _ = _target(G, 7)
    a = project(G, u8, steps=5, config=FAST, w_stats=stats)
    b = project(G, u8, steps=5, config=FAST, w_stats=stats)
    assert torch.equal(a.ws, b.ws)


def test_target_resizing_and_bad_targets(G, stats):
    u8, _ = _target(G, 8)
    big = np.repeat(np.repeat(u8, 2, axis=0), 2, axis=1)  # 64 px crop for a 32 px generator
    r = project(G, big, steps=2, config=FAST, w_stats=stats)
    assert r.target.shape == (32, 32, 3)
    with pytest.raises(ValueError, match="square"):
        project(G, u8[:, :20], steps=1, config=FAST, w_stats=stats)
    with pytest.raises(ValueError, match="uint8"):
        project(G, u8.astype(np.float32), steps=1, config=FAST, w_stats=stats)
    with pytest.raises(ValueError, match="NaN"):
        project(G, torch.full((1, 3, 32, 32), float("nan")), steps=1, config=FAST, w_stats=stats)
    with pytest.raises(ValueError, match="space"):
        project(G, u8, steps=1, space="z", config=FAST, w_stats=stats)


def test_default_schedule_is_w_then_wplus(G, stats):
    assert DEFAULT.space == "w+" and DEFAULT.steps <= 100
    u8, _ = _target(G, 9)
    seen = []
    project(G, u8, steps=10, config=replace(FAST, space="w+", w_fraction=0.5), w_stats=stats,
            callback=lambda p: seen.append(bool(torch.allclose(p.ws, p.ws[:, :1].expand_as(p.ws)))))
    assert seen[:5] == [True] * 5 and not seen[-1]


def test_config_validation():
    with pytest.raises(ValueError, match="perceptual"):
        ProjectionConfig(perceptual="lpips2")
    with pytest.raises(ValueError, match="steps"):
        ProjectionConfig(steps=0)
    with pytest.raises(ValueError, match="pixel_weight"):
        ProjectionConfig(perceptual="none", pixel_weight=0.0)


def test_baseline_schedule_matches_the_reference():
    assert (BASELINE.steps, BASELINE.lr, BASELINE.w_avg_samples, BASELINE.latent_noise) == (1000, 0.1, 10_000, 0.05)
    assert (BASELINE.latent_noise_ramp, BASELINE.noise_reg, BASELINE.perceptual_size) == (0.75, 1e5, 256)
    assert BASELINE.optimize_noise and BASELINE.space == "w" and BASELINE.init_candidates == 0
    # warm-up over the first 5 %, cosine ramp-down over the last 25 %
    assert _lr_at(0.0, BASELINE) == 0.0
    assert _lr_at(0.025, BASELINE) == pytest.approx(0.05)
    assert _lr_at(0.5, BASELINE) == pytest.approx(0.1)
    assert _lr_at(0.875, BASELINE) == pytest.approx(0.05)


def test_noise_penalty_prefers_white_noise():
    gen = torch.Generator().manual_seed(0)
    white = torch.randn([32, 32], generator=gen)
    noise = torch.randn([1, 1, 32, 32], generator=gen)
    smooth = torch.nn.functional.avg_pool2d(noise, 3, stride=1, padding=1)[0, 0] * 3
    assert float(_noise_penalty([white])) < float(_noise_penalty([smooth]))


def test_perceptual_distance_is_zero_on_the_target():
    pytest.importorskip("stlpips_pytorch")
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    p = Perceptual("alex")
    p.set_target(x)
    assert float(p(x)) == pytest.approx(0.0, abs=1e-6)
    assert float(p(x.flip(3))) > 0.0


def test_project_command(tmp_path):
    from PIL import Image

    from editor import toonfaces
    from editor.commands import main
    from editor.recipe import read_latent_npz

    crop = tmp_path / "crop.png"
    Image.fromarray(toonfaces.render(3, 64).image).save(crop)
    out = tmp_path / "out"
    rc = main(["project", str(crop), "--no-align", "--model", "random:small", "--out", str(out), "--steps", "3",
               "--perceptual", "none", "--device", "cpu", "--no-progress"])
    assert rc == 0
    for name in ("aligned.png", "reconstruction.png", "latent.npz", "projection.json"):
        assert (out / name).is_file(), name
    lat = read_latent_npz(out / "latent.npz")
    assert lat["ws"].shape == (8, 32)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    assert main(["project", str(bad), "--model", "random:small", "--out", str(out)]) == 1


def test_photo_projector_fills_the_service_seam(G):
    from editor import toonfaces
    from editor.align import NoFaceError
    from editor.projection import PhotoProjector

    class GroundTruth:  # a face finder that knows where the toon's landmarks are
        name = "ground truth"

        def __init__(self, landmarks):
            self.landmarks = landmarks

        def detect(self, image):
            from editor.align import Face

            return [Face(box=(0, 0, 1, 1), landmarks=self.landmarks.astype(float), score=1.0)]

    r = toonfaces.render(11, 128, "photo")
    cfg = replace(FAST, steps=3, w_avg_samples=200, init_candidates=8)
    seen = []
    projector = PhotoProjector(G, config=cfg, landmarker=GroundTruth(r.landmarks))
    out = projector(r.image, lambda f, m: seen.append(f))
    assert out.aligned.shape == (32, 32, 3) and out.ws.shape == (G.num_ws, G.w_dim)
    assert seen[0] == 0.0 and seen[-1] == pytest.approx(1.0)
    pasted = out.paste_back(out.aligned)
    assert pasted.shape == r.image.shape

    class Nobody:
        name = "none"

        def detect(self, image):
            return []

    with pytest.raises(NoFaceError):
        PhotoProjector(G, config=cfg, landmarker=Nobody())(r.image)
