"""Every pickle the reference training code writes: full training snapshots (augment_pipe, training_set_kwargs,
conditional networks), StyleGAN2 networks from the stylegan3 repository (its defaults, read from the embedded
source), StyleGAN3 generators (refused by name), and the embedded-source check (literal tables pass; code that
would run on import is refused with its line and construct). Tiny 32 px networks; embedded sources written for
the tests with the structure of NVIDIA's files (tests/_refpickle.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from editor import checkpoints as ck
from editor.checkpoints.unpickle import _source_refusal
from editor.stylegan2 import Discriminator, Generator
import _refpickle as rp


def _same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sorted(sa) == sorted(sb)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(scope="module")
def small_G(fixtures_dir) -> Generator:
    return ck.load_generator(fixtures_dir / "small")  # conv_clamp=256, num_fp16_res=0


@pytest.fixture(scope="module")
def small_D(fixtures_dir) -> Discriminator:
    return ck.load_network(fixtures_dir / "small_D", kind="D")


def _conditional(c_dim: int = 4, seed: int = 0) -> tuple[Generator, Discriminator]:
    torch.manual_seed(seed)
    G = Generator(z_dim=16, c_dim=c_dim, w_dim=16, img_resolution=16, img_channels=3,
                  mapping_kwargs={"num_layers": 2}, synthesis_kwargs={"channel_base": 256, "channel_max": 16,
                                                                      "num_fp16_res": 0, "conv_clamp": 256})
    D = Discriminator(c_dim=c_dim, img_resolution=16, img_channels=3, channel_base=256, channel_max=16,
                      mapping_kwargs={"num_layers": 2})
    return G, D


# ---------------------------------------------------------------------------------------------------------------
# Full training snapshots


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_full_training_snapshot_loads_every_network(tmp_path, small_G, small_D, protocol):
    G = ck.load_generator("random:small:7")
    path = rp.write_training_snapshot(tmp_path / "network-snapshot-000400.pkl", G, small_D, small_G,
                                      protocol=protocol)
    _same_state(ck.load_generator(path), small_G)
    _same_state(ck.load_network(path, kind="G"), G)
    _same_state(ck.load_network(path, kind="D"), small_D)


def test_snapshot_augment_pipe_and_dataset_are_readable(tmp_path, small_G, small_D):
    path = rp.write_training_snapshot(tmp_path / "snap.pkl", small_G, small_D, small_G)
    data = ck.read_reference_pickle(path)
    pipe = data["augment_pipe"]
    assert isinstance(pipe, ck.PersistentObject) and pipe.class_name == "AugmentPipe"
    assert "filter_taps = {" in pipe.module_src  # the literal table that used to be refused
    assert pipe.state["_init_kwargs"]["xflip"] == 1 and pipe.state["xflip"] == 1.0
    assert float(pipe.state["_buffers"]["p"]) == 0.3125 and pipe.state["_buffers"]["Hz_fbank"].shape == (4, 27)
    assert data["training_set_kwargs"]["resolution"] == 32 and data["training_set_kwargs"]["max_size"] == 70000


def test_conditional_snapshot(tmp_path):
    G, D = _conditional()
    path = rp.write_training_snapshot(tmp_path / "cond.pkl", G, D, G)
    G2, D2 = ck.load_generator(path), ck.load_network(path, kind="D")
    _same_state(G2, G)
    _same_state(D2, D)
    z, c = torch.randn([4, 16]), torch.eye(4)
    G.eval(), D.eval()
    with torch.no_grad():
        img = G(z, c)
        assert (G2(z, c) - img).abs().max() <= 1e-5
        assert (D2(img, c) - D(img, c)).abs().max() <= 1e-5


# ---------------------------------------------------------------------------------------------------------------
# StyleGAN2 networks written by the stylegan3 repository: its defaults apply where init_kwargs are silent


def _stylegan3_repo_kwargs(G: Generator) -> dict:
    """What that repository's training loop records: flat synthesis options, no num_fp16_res / conv_clamp."""
    kw = G.init_kwargs
    syn = kw["synthesis_kwargs"]
    return {"z_dim": kw["z_dim"], "w_dim": kw["w_dim"], "mapping_kwargs": {"num_layers": 2},
            "channel_base": syn["channel_base"], "channel_max": syn["channel_max"],
            "fused_modconv_default": "inference_only", "c_dim": kw["c_dim"],
            "img_resolution": kw["img_resolution"], "img_channels": kw["img_channels"]}


def test_stylegan3_repo_generator_gets_that_repos_defaults(tmp_path, small_G, fixtures_dir):
    kwargs = {"G_ema": _stylegan3_repo_kwargs(small_G)}
    sg3 = rp.write_reference_pickle(tmp_path / "sg3-repo.pkl", {"G_ema": small_G}, init_kwargs=kwargs,
                                    module_src=rp.stylegan3_repo_stylegan2_source())
    G = ck.load_generator(sg3)
    syn = G.init_kwargs["synthesis_kwargs"]
    assert syn["num_fp16_res"] == 4 and syn["conv_clamp"] == 256
    assert G.init_kwargs["mapping_kwargs"]["w_avg_beta"] == 0.998
    assert "fused_modconv_default" not in syn

    # Where clamping is active (huge W+ values) the loaded network clamps like the reference (fixture case) and like
    # our Generator built explicitly with num_fp16_res=4, conv_clamp=256.
    cases = np.load(fixtures_dir / "small" / "cases.npz")
    ws_big = torch.from_numpy(cases["ws_big"])
    explicit = Generator(**{**small_G.init_kwargs, "synthesis_kwargs": {
        **small_G.init_kwargs["synthesis_kwargs"], "num_fp16_res": 4, "conv_clamp": 256}})
    explicit.load_state_dict(small_G.state_dict())
    with torch.no_grad():
        img = G.synthesis(ws_big, noise_mode="const")
        assert (img - torch.from_numpy(cases["img_big_const"])).abs().max() <= 1e-4
        assert (img - explicit.eval().synthesis(ws_big, noise_mode="const")).abs().max() <= 1e-4

        # The same file with the stylegan2-ada-pytorch source: that repo's defaults (no clamp), a different image.
        ada = rp.write_reference_pickle(tmp_path / "ada.pkl", {"G_ema": small_G}, init_kwargs=kwargs,
                                        module_src=rp.ada_networks_source())
        G_ada = ck.load_generator(ada)
        assert G_ada.init_kwargs["synthesis_kwargs"].get("conv_clamp") is None
        assert (G_ada.synthesis(ws_big, noise_mode="const") - img).abs().max() > 1


def test_recorded_arguments_win_over_source_defaults(tmp_path, small_G):
    kwargs = _stylegan3_repo_kwargs(small_G)
    kwargs.update(num_fp16_res=0, conv_clamp=None)  # trained with --fp32: recorded explicitly
    path = rp.write_reference_pickle(tmp_path / "fp32.pkl", {"G_ema": small_G}, init_kwargs={"G_ema": kwargs},
                                     module_src=rp.stylegan3_repo_stylegan2_source())
    syn = ck.load_generator(path).init_kwargs["synthesis_kwargs"]
    assert syn["num_fp16_res"] == 0 and syn["conv_clamp"] is None


def test_stylegan3_repo_discriminator_defaults(tmp_path, small_D):
    recorded = {"c_dim": 0, "img_resolution": 32, "img_channels": 3, "channel_base": 512, "channel_max": 32,
                "block_kwargs": {"freeze_layers": 0}, "mapping_kwargs": {}, "epilogue_kwargs": {"mbstd_group_size": 4}}
    path = rp.write_reference_pickle(tmp_path / "d.pkl", {"D": small_D}, init_kwargs={"D": recorded},
                                     module_src=rp.stylegan3_repo_stylegan2_source())
    D = ck.load_network(path, kind="D")
    assert D.init_kwargs["num_fp16_res"] == 4 and D.init_kwargs["conv_clamp"] == 256
    _same_state(D, small_D)


# ---------------------------------------------------------------------------------------------------------------
# StyleGAN3 (alias-free) generators: refused by name


def _stylegan3_kwargs() -> dict:
    return {"z_dim": 32, "w_dim": 32, "mapping_kwargs": {"num_layers": 2}, "channel_base": 32768, "channel_max": 512,
            "magnitude_ema_beta": 0.999, "c_dim": 0, "img_resolution": 32, "img_channels": 3}


def test_stylegan3_generator_is_refused_by_name(tmp_path, small_G, small_D):
    path = rp.write_reference_pickle(
        tmp_path / "stylegan3-t.pkl", {"G_ema": small_G, "D": small_D}, init_kwargs={"G_ema": _stylegan3_kwargs()},
        module_src={"G_ema": rp.stylegan3_alias_free_source(), "D": rp.stylegan3_repo_stylegan2_source()})
    with pytest.raises(ck.CheckpointError, match="StyleGAN3 .*not supported") as info:
        ck.load_generator(path)
    assert "magnitude_ema_beta" in str(info.value) and str(path) in str(info.value)
    # Its discriminator is the stylegan3 repository's StyleGAN2 one: it loads.
    assert isinstance(ck.load_network(path, kind="D"), Discriminator)


def test_stylegan3_generator_recognised_by_source_alone(tmp_path, small_G):
    # Even when the kwargs look like StyleGAN2's (e.g. stylegan3-r with defaults), the source's SynthesisInput tells.
    path = rp.write_reference_pickle(tmp_path / "sg3.pkl", {"G_ema": small_G},
                                     module_src=rp.stylegan3_alias_free_source())
    with pytest.raises(ck.CheckpointError, match="StyleGAN3.*SynthesisInput"):
        ck.load_generator(path)


# ---------------------------------------------------------------------------------------------------------------
# The embedded-source check


@pytest.mark.parametrize("source", [rp.ada_networks_source, rp.stylegan3_repo_stylegan2_source,
                                    rp.stylegan3_alias_free_source, rp.augment_source])
def test_sources_with_the_reference_structure_pass(source):
    assert _source_refusal(source()) is None


@pytest.mark.parametrize("statement", [
    "table = {'a': [1, -2.5, (3, -4)], 'b': {'c': -(5)}, 'd': {1, 2}}",
    "x = -1e-8", "name = 'text'", "data = b'bytes'", "nothing = None", "flag = not True", "power = 2 ** 0.5",
    "dtype = np.float32", "a, b = 1, 2", "annotated: int = 3", "__all__ = ['Generator']",
])
def test_literal_assignments_pass(statement):
    assert _source_refusal(f'"""doc"""\nimport numpy as np\n{statement}\n') is None


@pytest.mark.parametrize("src,line,what", [
    ("x = 1\nimport os\nos.system('x')\n", 3, "has an expression statement"),
    ("table = {'a': open('/etc/passwd').read()}\n", 1, "has a call in an assigned value"),
    ("for i in range(3):\n    pass\n", 1, "has a loop"),
    ("while True:\n    pass\n", 1, "has a loop"),
    ("raise SystemExit(1)\n", 1, "has a raise"),
    ("if True:\n    x = 1\n", 1, "has an if statement"),
    ("import functools\n@functools.lru_cache(None)\ndef f():\n    pass\n", 2, "a call as the decorator of function f"),
    ("def f(x=print('hi')):\n    pass\n", 1, "a call in a default or annotation of function f"),
    ("def f(x: print('hi') = 1):\n    pass\n", 1, "a call in a default or annotation of function f"),
    ("class A(type('B', (), {})):\n    pass\n", 1, "a call as a base of class A"),
    ("class A(metaclass=M):\n    pass\n", 1, "keyword arguments (e.g. a metaclass) in class A"),
    ("class A:\n    x = 1\n    y = compute()\n", 3, "(class A) has a call in an assigned value"),
    ("import os\nos.environ = {}\n", 2, "an assignment to something other than a plain name"),
    ("x = [1, 2][0]\n", 1, "has an indexing"),
    ("f = lambda: 1\n", 1, "has a lambda"),
    ("x = [i for i in (1, 2)]\n", 1, "has a comprehension"),
    ("x = f'{1}'\n", 1, "has an f-string"),
    ("x = 1\nx += 1\n", 2, "has an augmented assignment"),
])
def test_code_that_would_run_on_import_is_refused_with_line_and_construct(tmp_path, small_G, src, line, what):
    reason = _source_refusal(src)
    assert reason is not None and f"line {line} " in reason and what in reason, reason
    path = rp.write_reference_pickle(tmp_path / "x.pkl", {"G_ema": small_G}, module_src=src)
    with pytest.raises(ck.UnsafePickleError, match=f"runs code when imported: line {line} "):
        ck.load_generator(path)


def test_source_check_runs_once_per_source(tmp_path, small_G, small_D):
    path = rp.write_training_snapshot(tmp_path / "snap.pkl", small_G, small_D, small_G)
    _source_refusal.cache_clear()
    ck.read_reference_pickle(path)
    info = _source_refusal.cache_info()
    assert info.misses == 2 and info.hits > 50  # networks + augmentation module; ~90 persistent objects
