"""Metric sanity: FD of identical sets ~ 0, FD of shifted Gaussians, KID unbiasedness, PPL finite."""

import numpy as np
import pytest
import torch

from editor.metrics import (PixelDistance, PixelFeatures, frechet_distance, frechet_distance_from_features,
                            generator_features, image_features, kernel_inception_distance, perceptual_path_length)
from editor.stylegan2 import build_generator


pytestmark = pytest.mark.usefixtures("one_thread")


def test_fd_of_identical_sets_is_zero():
    f = np.random.default_rng(0).normal(size=(500, 16))
    assert frechet_distance_from_features(f, f) == pytest.approx(0.0, abs=1e-6)


def test_fd_of_gaussians_matches_the_closed_form():
    d = 4
    mu1, mu2 = np.zeros(d), np.full(d, 0.5)
    s1, s2 = np.eye(d), np.eye(d) * 4.0
    # |mu1-mu2|^2 + tr(S1 + S2 - 2 sqrt(S1 S2)) = 4*0.25 + 4*(1 + 4 - 4) = 5
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(5.0, abs=1e-8)
    with pytest.raises(ValueError, match="shape mismatch"):
        frechet_distance(mu1, s1, np.zeros(3), np.eye(3))


def test_kid_is_unbiased_and_detects_a_shift():
    rng = np.random.default_rng(1)
    same = [kernel_inception_distance(rng.normal(size=(200, 8)), rng.normal(size=(200, 8)), num_subsets=20, seed=s)
            for s in range(10)]
    # unbiased: averages to ~0 (individual estimates may be negative), far below a real difference
    shifted = kernel_inception_distance(rng.normal(size=(200, 8)), rng.normal(0.5, 1, size=(200, 8)), num_subsets=20)
    assert abs(np.mean(same)) < 0.1 * shifted
    assert min(same) < 0 or abs(np.mean(same)) < 1e-2
    assert shifted > 0
    with pytest.raises(ValueError):
        kernel_inception_distance(np.zeros((5, 3)), np.zeros((5, 4)))


def test_generator_and_image_features():
    G = build_generator("small")
    ext = PixelFeatures(4)
    feats = generator_features(G, ext, num=10, batch_size=4)
    assert feats.shape == (10, 48)
    imgs = np.zeros((3, 32, 32, 3), np.uint8)
    assert torch.allclose(image_features(imgs, ext), torch.full((3, 48), -1.0))
    with pytest.raises(ValueError, match="images must be"):
        ext(torch.zeros(2, 32, 32))


def test_ppl_is_finite_and_positive():
    G = build_generator("small")
    out = perceptual_path_length(G, PixelDistance(), num_samples=8, batch_size=4)
    assert np.isfinite(out["ppl"]) and out["ppl"] > 0
    assert out["values"].shape == (8,) and out["distance"] == "pixel-mse"
    with pytest.raises(ValueError, match="sampling"):
        perceptual_path_length(G, PixelDistance(), num_samples=2, sampling="middle")


@pytest.mark.slow
def test_ppl_with_shift_tolerant_lpips_when_installed():
    pytest.importorskip("stlpips_pytorch")
    from editor.metrics import STLPIPSDistance

    G = build_generator("small")
    dist = STLPIPSDistance("alex")
    assert float(dist(torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 32, 32))) == pytest.approx(0.0, abs=1e-6)
    out = perceptual_path_length(G, dist, num_samples=4, batch_size=4)
    assert np.isfinite(out["ppl"]) and out["ppl"] >= 0
