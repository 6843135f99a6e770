"""The generator and discriminator against outputs of the public reference implementation (see the fixture README)."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from editor import ops
from editor.stylegan2 import CONFIGS, Discriminator, Generator, build_discriminator, build_generator

TOL = 1e-4  # max absolute difference allowed against the reference, CPU fp32


@pytest.fixture(scope="module")
def ref_G(fixtures_dir):
    cfg = json.loads((fixtures_dir / "small" / "config.json").read_text())
    G = Generator(**cfg["init_kwargs"]).eval().requires_grad_(False)
    G.load_state_dict(load_file(fixtures_dir / "small" / "state.safetensors"), strict=True)
    return G


@pytest.fixture(scope="module")
def cases(fixtures_dir):
    return {k: torch.from_numpy(v) for k, v in np.load(fixtures_dir / "small" / "cases.npz").items()}


def assert_close(actual, expected, tol=TOL):
    assert actual.shape == expected.shape
    diff = (actual - expected).abs().max().item()
    assert diff <= tol, f"max abs diff {diff:.3g} > {tol}"


@torch.no_grad()
def test_mapping_matches_reference(ref_G, cases):
    assert_close(ref_G.mapping(cases["z"], None), cases["ws_psi1"])
    assert_close(ref_G.mapping(cases["z"], None, truncation_psi=0.7), cases["ws_psi07"])
    assert_close(ref_G.mapping(cases["z"], None, truncation_psi=0.7, truncation_cutoff=4), cases["ws_psi07_cut4"])
    assert_close(ref_G.mapping(cases["z2"], None), cases["ws2_psi1"])


@pytest.mark.parametrize("ws_key,kwargs,img_key", [
    ("ws_psi1", dict(noise_mode="const"), "img_psi1_const"),
    ("ws_psi07", dict(noise_mode="const"), "img_psi07_const"),
    ("ws_psi07_cut4", dict(noise_mode="const"), "img_psi07_cut4_const"),
    ("ws_psi1", dict(noise_mode="none"), "img_psi1_none"),
    ("ws_psi07", dict(noise_mode="none"), "img_psi07_none"),
    ("ws_psi1", dict(noise_mode="const", fused_modconv=False), "img_psi1_const_unfused"),
    ("ws_plus", dict(noise_mode="const"), "img_wplus_const"),
    ("ws_plus", dict(noise_mode="none"), "img_wplus_none"),
    ("ws_big", dict(noise_mode="const"), "img_big_const"),
    ("ws_mix_cut3", dict(noise_mode="const"), "img_mix_cut3_const"),
])
@torch.no_grad()
def test_synthesis_matches_reference(ref_G, cases, ws_key, kwargs, img_key):
    assert_close(ref_G.synthesis(cases[ws_key], **kwargs), cases[img_key])


@torch.no_grad()
def test_big_values_exercise_conv_clamp(ref_G, cases):
    # The clamp case only means something if clamping changes the output.
    img = ref_G.synthesis(cases["ws_big"])
    assert img.abs().max() > 256


@torch.no_grad()
def test_full_forward_and_random_noise_order(ref_G, cases):
    assert_close(ref_G(cases["z"], None, truncation_psi=0.7, noise_mode="const"), cases["img_full_forward_psi07_const"])
    torch.manual_seed(123)
    assert_close(ref_G.synthesis(cases["ws_psi1"], noise_mode="random"), cases["img_psi1_random_seed123"])


@torch.no_grad()
def test_intermediates_styles_and_progressive_images(ref_G, cases):
    styles = ref_G.synthesis.compute_styles(cases["ws_psi1"])
    for name, value in styles.items():
        assert_close(value, cases[f"inter_{name.replace('.', '_')}_styles"])
    for res in ref_G.synthesis.block_resolutions:
        assert_close(ref_G.synthesis(cases["ws_psi1"], stop_resolution=res), cases[f"inter_b{res}_img"])
    # Rendering from cached styles gives the same image as rendering from ws.
    assert_close(ref_G.synthesis(styles=styles), cases["img_psi1_const"])


@torch.no_grad()
def test_channels_last_layout_matches(ref_G, cases):
    a = ref_G.synthesis(cases["ws_plus"], channels_last=True)
    assert_close(a, cases["img_wplus_const"])


def test_discriminator_matches_reference(fixtures_dir):
    cfg = json.loads((fixtures_dir / "small_D" / "config.json").read_text())
    D = Discriminator(**cfg["init_kwargs"]).eval()
    D.load_state_dict(load_file(fixtures_dir / "small_D" / "state.safetensors"), strict=True)
    c = {k: torch.from_numpy(v) for k, v in np.load(fixtures_dir / "small_D" / "cases.npz").items()}
    img = c["img_rand8"].clone().requires_grad_(True)
    logits = D(img, None)
    assert_close(logits.detach(), c["logits_rand8"])
    (grad,) = torch.autograd.grad(logits.sum(), img)
    assert_close(grad, c["grad_logits_sum_wrt_img_rand8"])
    with torch.no_grad():
        assert_close(D(c["img_fake4"], None), c["logits_fake4"])


def _layout(module):
    params = [(n, list(t.shape), str(t.dtype).replace("torch.", "")) for n, t in module.named_parameters()]
    buffers = [(n, list(t.shape), str(t.dtype).replace("torch.", "")) for n, t in module.named_buffers()]
    return params + buffers


@pytest.mark.parametrize("name", ["ffhq1024", "paper512", "paper256", "ffhq1024_D", "paper512_D", "paper256_D"])
def test_layouts_match_published_configurations(fixtures_dir, name):
    spec = json.loads((fixtures_dir / "layouts" / f"{name}_names.json").read_text())
    cls = Discriminator if name.endswith("_D") else Generator
    with torch.device("meta"):  # shapes only: no memory, no time
        net = cls(**spec["init_kwargs"])
    expected = [(t["name"], t["shape"], t["dtype"]) for t in spec["tensors"]]
    assert _layout(net) == expected
    if "num_params" in spec:
        assert sum(p.numel() for p in net.parameters()) == spec["num_params"]
    if "num_ws" in spec:
        assert net.num_ws == spec["num_ws"]


def test_configs_build_and_match_registry_shapes():
    with torch.device("meta"):
        G = Generator(**CONFIGS["ffhq-1024"].generator_kwargs())
    assert (G.num_ws, G.w_dim, G.img_resolution) == (18, 512, 1024)


@torch.no_grad()
def test_small_random_generator_api():
    G = build_generator("small", seed=3).eval()
    z = torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(0))
    ws = G.mapping(z, None, truncation_psi=0.5)
    assert ws.shape == (2, G.num_ws, G.w_dim)
    img = G.synthesis(ws)
    assert img.shape == (2, 3, 32, 32) and torch.isfinite(img).all()
    # Deterministic: const noise is the default; the same seed builds the same weights.
    assert torch.equal(img, build_generator("small", seed=3).eval().synthesis(ws))
    preview = G.synthesis(ws, stop_resolution=16)
    assert preview.shape == (2, 3, 16, 16)
    with pytest.raises(ValueError, match="ws must be"):
        G.synthesis(ws[:, :3])
    with pytest.raises(ValueError, match="noise_mode"):
        G.synthesis(ws, noise_mode="bogus")


def test_training_mode_gradients_flow():
    G = build_generator("small").train()
    D = build_discriminator("small").train()
    z = torch.randn(4, G.z_dim)
    img = G(z, None, noise_mode="random")
    loss = torch.nn.functional.softplus(-D(img)).mean()
    loss.backward()
    assert all(p.grad is not None for p in G.synthesis.parameters() if p.requires_grad)


def test_upsample_and_downsample_shapes():
    f = ops.setup_filter([1, 3, 3, 1])
    x = torch.randn(1, 2, 8, 8)
    assert ops.upsample2d(x, f).shape == (1, 2, 16, 16)
    assert ops.downsample2d(x, f).shape == (1, 2, 4, 4)
    # The FIR filter preserves a constant image (gain is right).
    c = torch.ones(1, 1, 8, 8)
    assert torch.allclose(ops.upsample2d(c, f)[..., 2:-2, 2:-2], torch.ones(1, 1, 12, 12))


# ----------------------------------------------------------------------------------------------------------------------
# The CPU inference fast path (one sample, autograd off): same images up to float summation order.

FAST_CASES = [("ws_psi1", "const", "img_psi1_const"), ("ws_psi07", "const", "img_psi07_const"),
              ("ws_psi1", "none", "img_psi1_none"), ("ws_plus", "const", "img_wplus_const"),
              ("ws_mix_cut3", "const", "img_mix_cut3_const"), ("ws_big", "const", "img_big_const")]


@pytest.mark.parametrize("ws_key,noise_mode,img_key", FAST_CASES)
@torch.no_grad()
def test_fast_path_matches_reference_per_sample(ref_G, cases, ws_key, noise_mode, img_key):
    ws, expected = cases[ws_key], cases[img_key]
    assert ref_G.synthesis.fast_path_applies(1, ws.device, noise_mode)
    out = torch.cat([ref_G.synthesis(ws[i:i + 1], noise_mode=noise_mode) for i in range(ws.shape[0])])
    # 1e-4 absolute for images of normal range; the conv-clamp case (values up to ~800) gets the same relative bound.
    assert_close(out, expected, tol=max(TOL, 2e-6 * expected.abs().max().item()))


@torch.no_grad()
def test_fast_path_equals_reference_path_on_random_generators():
    for config, seed in (("small", 1), ("toon-64", 2)):
        G = build_generator(config, seed=seed).eval()
        ws = G.mapping(torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(seed)), None, truncation_psi=0.8)
        fast = G.synthesis(ws)
        slow = G.synthesis(ws, channels_last=False)  # an explicit layout request takes the reference path
        assert not G.synthesis.fast_path_applies(1, ws.device, channels_last=False)
        assert_close(fast, slow, tol=1e-5)
        for res in G.synthesis.block_resolutions:
            assert_close(G.synthesis(ws, stop_resolution=res), G.synthesis(ws, stop_resolution=res, channels_last=False),
                         tol=1e-5)


@torch.no_grad()
def test_run_blocks_resumes_where_it_stopped():
    G = build_generator("toon-64", seed=4).eval()
    ws = G.mapping(torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(0)), None)
    full = G.synthesis(ws)
    for res in G.synthesis.block_resolutions[:-1]:
        x, img = G.synthesis.run_blocks(ws, stop_resolution=res)
        _, resumed = G.synthesis.run_blocks(ws, start=(res, x, img))
        assert torch.equal(resumed, full)
    with pytest.raises(ValueError, match="start must name"):
        G.synthesis.run_blocks(ws, start=(5, x, img))
    with pytest.raises(ValueError, match="must come after"):
        G.synthesis.run_blocks(ws, start=(32, x, img), stop_resolution=16)


@torch.no_grad()
def test_fast_path_follows_weight_changes():
    G = build_generator("small", seed=5).eval()
    ws = G.mapping(torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(1)), None)
    before = G.synthesis(ws)  # fills the derived-tensor caches
    other = build_generator("small", seed=6).eval()
    G.load_state_dict(other.state_dict())
    assert_close(G.synthesis(ws), other.synthesis(ws, channels_last=False), tol=1e-5)
    G.synthesis.b8.conv1.weight.mul_(2)  # an in-place update (an EMA step, say) is seen too
    G.synthesis.b8.conv1.bias.add_(1)
    assert_close(G.synthesis(ws), G.synthesis(ws, channels_last=False), tol=1e-5)
    assert not torch.equal(before, G.synthesis(ws))


@torch.no_grad()
def test_bfloat16_preview_is_close_and_needs_the_fast_path():
    G = build_generator("toon-64", seed=7).eval()
    ws = G.mapping(torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(2)), None, truncation_psi=0.7)
    exact = G.synthesis(ws)
    approx = G.synthesis(ws, dtype=torch.bfloat16)
    assert approx.dtype == torch.float32 and approx.shape == exact.shape
    err = (approx - exact).abs()
    assert err.max().item() < 0.1 * exact.abs().max().item() and err.mean().item() < 0.02 * exact.abs().mean().item() + 1e-3
    with pytest.raises(ValueError, match="bfloat16"):
        G.synthesis(torch.cat([ws, ws]), dtype=torch.bfloat16)  # a batch takes the reference path


def test_polyphase_upsampling_and_fused_up_convolution_match_reference_ops():
    gen = torch.Generator().manual_seed(0)
    for taps in ([1, 3, 3, 1], [1, 2, 1], [1, 3, 3, 1, 2, 4]):
        f = ops.setup_filter(taps)
        x = torch.randn(2, 3, 9, 11, generator=gen)
        assert torch.allclose(ops.upsample2d_polyphase(x, ops.separable_taps(f)), ops.upsample2d(x, f), atol=1e-6)
    assert ops.separable_taps(torch.tensor([[1.0, 0.0], [0.0, 1.0]])) is None  # not rank 1
    f = ops.setup_filter([1, 3, 3, 1])
    x = torch.randn(1, 8, 10, 10, generator=gen).contiguous(memory_format=torch.channels_last)
    w, b = torch.randn(5, 8, 3, 3, generator=gen), torch.randn(5, generator=gen)
    expected = ops.conv2d_resample(x, w, f=f, up=2, padding=1, flip_weight=False) + b.reshape(1, -1, 1, 1)
    wt = w.transpose(0, 1).contiguous(memory_format=torch.channels_last)
    out = ops.conv_up_fir(x, wt, ops.fir_depthwise_weight(f, 5, 4, torch.float32), ops.up_padding(f, 2, 3, 1), bias=b)
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(out, expected, atol=1e-5)
    styles, weight = torch.randn(8, generator=gen), torch.randn(5, 8, 3, 3, generator=gen)
    modulated = weight * styles.reshape(1, -1, 1, 1)
    demodulated = modulated * (modulated.square().sum(dim=[1, 2, 3]) + 1e-8).rsqrt().reshape(-1, 1, 1, 1)
    scale = ops.modulation_scale(styles, ops.kernel_energy(weight), gain=1.0)
    assert torch.allclose(weight * scale[:, :, None, None], demodulated, atol=1e-6)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fp16_blocks_on_cuda_close_to_fp32():
    G = build_generator("ffhq-256").eval().cuda()
    ws = G.mapping(torch.randn(2, G.z_dim, device="cuda"), None, truncation_psi=0.7)
    with torch.no_grad():
        a = G.synthesis(ws)
        b = G.synthesis(ws, force_fp32=True)
    assert (a - b).abs().max().item() < 0.05
