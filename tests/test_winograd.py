"""Winograd F(4x4, 3x3): the transform matrices, the convolution against conv2d, and its use in the fast path."""

import pytest
import torch
import torch.nn.functional as F

from editor import winograd
from editor.stylegan2 import build_generator


def test_transform_matrices_compute_the_correlation_exactly():
    at, g, bt = winograd.transform_matrices()
    assert at.shape == (4, 6) and g.shape == (6, 3) and bt.shape == (6, 6)
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        d = torch.randn(6, generator=gen, dtype=torch.float64)
        k = torch.randn(3, generator=gen, dtype=torch.float64)
        expected = torch.stack([(d[i:i + 3] * k).sum() for i in range(4)])  # y_i = sum_j d_{i+j} k_j
        torch.testing.assert_close(at @ ((g @ k) * (bt @ d)), expected, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="distinct"):
        winograd.transform_matrices(points=(0, 1, 1, 2, -2))


@pytest.mark.parametrize("res,cin,cout,band", [(16, 8, 12, None), (32, 24, 16, 1), (20, 16, 8, 2), (8, 4, 4, 3)])
def test_conv3x3_matches_conv2d_with_scales_and_bias(res, cin, cout, band):
    gen = torch.Generator().manual_seed(res + cin)
    x = torch.randn(1, cin, res, res, generator=gen).contiguous(memory_format=torch.channels_last)
    w = torch.randn(cout, cin, 3, 3, generator=gen) / (3 * cin ** 0.5)
    s, d, b = torch.rand(cin, generator=gen) + 0.5, torch.rand(cout, generator=gen) + 0.5, torch.randn(cout, generator=gen)
    u = winograd.weight_transform(w)
    assert u.shape == (36, cin, cout) and u.dtype == torch.float32
    y = winograd.conv3x3(x, u, in_scale=s, out_scale=d, bias=b, band_rows=band)
    expected = (F.conv2d(x.double() * s.double()[:, None, None], w.double(), padding=1)
                * d.double()[:, None, None] + b.double()[:, None, None])
    assert y.shape == (1, cout, res, res)
    # standard channels-last strides (a view with an odd batch stride slows later oneDNN convolutions down)
    assert y.stride() == torch.empty(1, cout, res, res, memory_format=torch.channels_last).stride()
    assert (y.double() - expected).abs().max().item() < 5e-5  # a direct fp32 conv: ~1e-5
    plain = winograd.conv3x3(x, u, band_rows=band)
    assert (plain.double() - F.conv2d(x.double(), w.double(), padding=1)).abs().max().item() < 1e-5


def test_weight_transform_needs_a_3x3_kernel():
    with pytest.raises(ValueError, match="3x3"):
        winograd.weight_transform(torch.zeros(4, 4, 1, 1))


def test_applies_where_it_measured_faster():
    assert winograd.applies(512, 512, 64) and winograd.applies(256, 256, 128) and winograd.applies(128, 128, 16)
    assert not winograd.applies(512, 512, 8)  # too few tiles
    assert not winograd.applies(64, 64, 256) and not winograd.applies(32, 32, 1024)  # too few channels
    assert not winograd.applies(512, 512, 18)  # not a multiple of the tile


@torch.no_grad()
def test_fast_path_takes_winograd_and_keeps_the_reference_image(monkeypatch):
    calls = []
    conv = winograd.conv3x3
    monkeypatch.setattr(winograd, "conv3x3", lambda *a, **k: calls.append(a[0].shape) or conv(*a, **k))
    G = build_generator("toon-64", seed=3).eval()  # 128 channels from 16 px up: three Winograd layers
    ws = G.mapping(torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(3)), None)
    fast = G.synthesis(ws)
    assert sorted(s[-1] for s in calls) == [16, 32, 64]
    slow = G.synthesis(ws, channels_last=False)  # the reference path
    assert (fast - slow).abs().max().item() < 1e-5
    calls.clear()
    G.synthesis(ws, dtype=torch.bfloat16)  # bf16 previews keep the direct convolution
    assert calls == []
