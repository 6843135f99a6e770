"""Crafted files cannot exhaust the loader: each case is a tiny file (well under 5 MB) that used to drive loading to
multi-GB memory, a hang or a raw MemoryError / RecursionError / ZeroDivisionError / KeyError, and is now refused
with the loader's own error before any network is built (the `no_build` fixture fails the test if one is). Also:
the state-size formula the pre-build check relies on, and native checksums."""

from __future__ import annotations

import collections
import copy
import itertools
import json
import pickle
from pathlib import Path

import pytest
import torch

from editor import checkpoints as ck
from editor import stylegan2
from editor.stylegan2 import Discriminator, Generator
import _refpickle as rp

SMALL_FILE = 5 << 20


@pytest.fixture(scope="module")
def small_G(fixtures_dir) -> Generator:
    return ck.load_generator(fixtures_dir / "small")


@pytest.fixture()
def no_build(monkeypatch):
    """Fail if anything tries to construct a network (the refusals must come before any allocation)."""
    def refuse(*args, **kwargs):
        raise AssertionError("a network was built for a crafted file")

    monkeypatch.setattr(ck.build, "build", refuse)
    monkeypatch.setattr(ck.load, "build", refuse)


def _native(tmp_path: Path, small_G: Generator, edit) -> Path:
    """The small generator as a native directory (no checksum, as older files), its config edited by `edit`."""
    out = ck.save_generator(small_G, tmp_path / "ckpt")
    config = json.loads((out / "config.json").read_text())
    del config[ck.native.CHECKSUM_KEY]
    edit(config["init_kwargs"])
    (out / "config.json").write_text(json.dumps(config))
    assert sum(f.stat().st_size for f in out.iterdir()) < SMALL_FILE
    return out


def _set(path: str, value):
    def edit(kwargs):
        *parents, last = path.split(".")
        node = kwargs
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return edit


# ---------------------------------------------------------------------------------------------------------------
# Configurations out of bounds or not matching the file (native, pickle and TensorFlow paths: one check)


@pytest.mark.parametrize("path,value,match", [
    ("img_resolution", 2 ** 20, r"img_resolution = 1048576 is out of bounds \(must be a power of two from 4 to 4096"),
    ("img_resolution", 48, "img_resolution = 48 is out of bounds"),
    ("mapping_kwargs.num_layers", 10 ** 6, "num_layers = 1000000 is out of bounds"),
    ("z_dim", 10 ** 9, "z_dim = 1000000000 is out of bounds"),
    ("w_dim", 2.5, "w_dim = 2.5 is out of bounds"),
    ("synthesis_kwargs.channel_max", 10 ** 6, "channel_max = 1000000 is out of bounds"),
    ("synthesis_kwargs.conv_clamp", -1, "conv_clamp = -1 is out of bounds"),
    ("synthesis_kwargs.resample_filter", [1] * 100, "resample_filter = .* is out of bounds"),
    ("synthesis_kwargs.resample_filter", [1] * 100000, "more than 10,000 values in the constructor arguments"),
    ("synthesis_kwargs.channel_base", 1, "channel_base 1 leaves no channels at resolution 32"),  # ZeroDivisionError
    ("synthesis_kwargs", [1, 2], "synthesis_kwargs is not an object"),
])
def test_native_config_out_of_bounds(tmp_path, small_G, no_build, path, value, match):
    with pytest.raises(ck.CheckpointError, match=match):
        ck.load_generator(_native(tmp_path, small_G, _set(path, value)))


def test_resolution_2_16_with_matching_channel_base(tmp_path, small_G, no_build):
    edit = _set("img_resolution", 2 ** 16)
    out = _native(tmp_path, small_G, lambda kw: (edit(kw), _set("synthesis_kwargs.channel_base", 2 ** 16 * 32)(kw)))
    with pytest.raises(ck.CheckpointError, match="img_resolution = 65536 is out of bounds"):
        ck.load_generator(out)


def test_config_describing_more_than_the_file_holds(tmp_path, small_G, no_build):
    # In bounds one by one, but 4096 px with 1024 channels everywhere: ~170 M values against the file's 0.05 M.
    def edit(kw):
        kw["img_resolution"] = 4096
        kw["synthesis_kwargs"].update(channel_base=1024 * 4096, channel_max=1024)
    with pytest.raises(ck.CheckpointError, match=r"describes a Generator of [\d,]+ values but the file holds [\d,]+"):
        ck.load_generator(_native(tmp_path, small_G, edit))


def test_config_beyond_the_size_limit(tmp_path, small_G, no_build):
    def edit(kw):
        kw["img_resolution"] = 4096
        kw["synthesis_kwargs"].update(channel_base=8192 * 4096, channel_max=8192)
    with pytest.raises(ck.CheckpointError, match="more than the 400,000,000 this loader builds"):
        ck.load_generator(_native(tmp_path, small_G, edit))


def test_bad_class_name_and_deep_or_huge_config(tmp_path, small_G, no_build):
    out = ck.save_generator(small_G, tmp_path / "ckpt")
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**config, "class_name": ["Generator"]}))
    with pytest.raises(ck.CheckpointError, match="network class .* is not supported|holds a"):
        ck.load_generator(out)
    (out / "config.json").write_text('{"init_kwargs": ' + "[" * 100000 + "]" * 100000 + "}")
    with pytest.raises(ck.CheckpointError, match="nested too deeply"):  # was a RecursionError
        ck.load_generator(out)
    (out / "config.json").write_text(json.dumps({"init_kwargs": {"pad": "x" * (2 << 20)}}))
    with pytest.raises(ck.CheckpointError, match="more than the 1,048,576 a network config needs"):
        ck.load_generator(out)


def test_single_file_config_is_checked_too(tmp_path, small_G, no_build):
    from safetensors.torch import save_file

    config = {"class_name": "Generator", "init_kwargs": {**small_G.init_kwargs, "img_resolution": 2 ** 20}}
    path = tmp_path / "g.safetensors"
    save_file({k: v.contiguous() for k, v in small_G.state_dict().items()}, str(path),
              metadata={"config": json.dumps(config)})
    with pytest.raises(ck.CheckpointError, match="img_resolution = 1048576 is out of bounds"):
        ck.load_generator(path)


def test_pickle_config_out_of_bounds(tmp_path, small_G, no_build):
    kwargs = copy.deepcopy(small_G.init_kwargs)
    kwargs["mapping_kwargs"]["num_layers"] = 10 ** 6
    path = rp.write_reference_pickle(tmp_path / "p.pkl", {"G_ema": small_G}, init_kwargs={"G_ema": kwargs})
    with pytest.raises(ck.CheckpointError, match="num_layers = 1000000 is out of bounds"):
        ck.load_generator(path)


def test_tf_pickle_with_resolution_2_20(tmp_path, small_G, no_build):
    path = rp.write_tf_pickle(tmp_path / "tf.pkl", small_G, static_kwargs={"resolution": 2 ** 20})
    assert path.stat().st_size < SMALL_FILE
    with pytest.raises(ck.CheckpointError, match="img_resolution = 1048576 is out of bounds"):
        ck.load_generator(path)


def test_tf_pickle_describing_more_than_it_holds(tmp_path, small_G, no_build):
    path = rp.write_tf_pickle(tmp_path / "tf.pkl", small_G, static_kwargs={"resolution": 1024, "fmap_max": 512,
                                                                          "fmap_base": 8192})
    with pytest.raises(ck.CheckpointError, match="describes a Generator of [\\d,]+ values but the file holds"):
        ck.load_generator(path)


def test_tf_static_kwargs_of_the_wrong_type(tmp_path, small_G, no_build):
    path = rp.write_tf_pickle(tmp_path / "tf.pkl", small_G, static_kwargs={"resolution": "9" * 5000})
    with pytest.raises(ck.CheckpointError, match="static kwarg resolution = 9+ is not int"):
        ck.load_generator(path)


# ---------------------------------------------------------------------------------------------------------------
# Sizes and depths inside pickles


def _laughs(width: int, depth: int):
    node: list = [1.0] * width
    for _ in range(depth):
        node = [node] * width  # one object referenced `width` times: pickled once, then by memo
    return node


@pytest.mark.parametrize("width,depth,match", [
    (16, 6, "more than 10,000 values in the constructor arguments"),  # 16^7 = 2^28 shared leaves, 7 deep
    (2, 26, "nested deeper than 16"),  # 2^27 leaves, 27 deep
])
def test_billion_laughs_init_kwargs(tmp_path, small_G, no_build, width, depth, match):
    kwargs = copy.deepcopy(small_G.init_kwargs)
    kwargs["synthesis_kwargs"]["resample_filter"] = _laughs(width, depth)
    path = rp.write_reference_pickle(tmp_path / "laughs.pkl", {"G_ema": small_G}, init_kwargs={"G_ema": kwargs})
    assert path.stat().st_size < SMALL_FILE
    with pytest.raises(ck.CheckpointError, match=match):
        ck.load_generator(path)


def test_five_megabyte_embedded_source(tmp_path, small_G):
    src = '"""padding"""\n' + "x = 1\n" * 850_000
    path = rp.write_reference_pickle(tmp_path / "big-src.pkl", {"G_ema": small_G}, module_src=src)
    assert path.stat().st_size < SMALL_FILE + (1 << 20)
    with pytest.raises(ck.UnsafePickleError, match="5,100,014 characters, more than the 1,000,000"):
        ck.read_reference_pickle(path)


class _Reduced:
    """Pickles as the reference persistence wrapper, with a BUILD state that may refer back to the object."""

    def __init__(self, reconstruct, class_name: str, state: dict, module_src: str = rp.GOOD_MODULE_SRC):
        self.reconstruct, self.state = reconstruct, state
        self.meta = {"type": "class", "version": 6, "module_src": module_src, "class_name": class_name, "state": {}}

    def __reduce__(self):
        return self.reconstruct, (self.meta,), self.state


def _module_state(modules: dict, init_kwargs: dict | None = None) -> dict:
    return {"_parameters": collections.OrderedDict(), "_buffers": collections.OrderedDict(),
            "_modules": collections.OrderedDict(modules), "_init_args": (), "_init_kwargs": init_kwargs or {}}


def test_network_that_contains_itself(tmp_path, small_G, no_build):
    with rp.reference_modules() as ns:
        top = _Reduced(ns.reconstruct, "Generator", {})
        top.state.update(_module_state({"mapping": top}, copy.deepcopy(small_G.init_kwargs)))
        path = tmp_path / "loop.pkl"
        path.write_bytes(pickle.dumps({"G_ema": top}, protocol=3))
    with pytest.raises(ck.CheckpointError, match="mapping: the network contains itself"):  # was a RecursionError
        ck.load_generator(path)


def test_shared_submodules_cannot_multiply(tmp_path, small_G, no_build):
    with rp.reference_modules() as ns:
        node = _Reduced(ns.reconstruct, "FullyConnectedLayer", _module_state({}))
        for _ in range(15):  # each level holds the one below twice: 2^15 paths through 16 objects
            node = _Reduced(ns.reconstruct, "SynthesisBlock", _module_state({"a": node, "b": node}))
        top = _Reduced(ns.reconstruct, "Generator", _module_state({"synthesis": node},
                                                                  copy.deepcopy(small_G.init_kwargs)))
        path = tmp_path / "fan.pkl"
        path.write_bytes(pickle.dumps({"G_ema": top}, protocol=3))
    assert path.stat().st_size < 100_000
    with pytest.raises(ck.CheckpointError, match="more than 10,000 sub-modules"):
        ck.load_generator(path)


def test_deeply_nested_modules(tmp_path, small_G, no_build):
    with rp.reference_modules() as ns:
        node = _Reduced(ns.reconstruct, "FullyConnectedLayer", _module_state({}))
        for _ in range(40):
            node = _Reduced(ns.reconstruct, "SynthesisBlock", _module_state({"a": node}))
        top = _Reduced(ns.reconstruct, "Generator", _module_state({"synthesis": node},
                                                                  copy.deepcopy(small_G.init_kwargs)))
        path = tmp_path / "deep.pkl"
        path.write_bytes(pickle.dumps({"G_ema": top}, protocol=3))
    with pytest.raises(ck.CheckpointError, match="nested deeper than 16"):
        ck.load_generator(path)


def test_tf_network_that_contains_itself(tmp_path, no_build):
    with rp.tf_modules() as Network:
        state = {"version": 4, "name": "Gs", "static_kwargs": {}, "components": {}, "build_module_src": "",
                 "build_func_name": "G", "variables": []}
        net = Network(state)
        state["components"]["synthesis"] = net
        path = tmp_path / "tf-loop.pkl"
        path.write_bytes(pickle.dumps((net, net, net), protocol=3))
    with pytest.raises(ck.CheckpointError, match="contains itself"):
        ck.load_generator(path)


def test_tensor_with_overlapping_strides(tmp_path):
    path = tmp_path / "expand.pkl"
    path.write_bytes(pickle.dumps({"G_ema": torch.zeros(1).expand(1 << 30)}, protocol=3))  # 1 G values, 4 bytes
    with pytest.raises(ck.CheckpointError, match="more values than its storage holds"):
        ck.read_reference_pickle(path)


# ---------------------------------------------------------------------------------------------------------------
# The pre-build size formula matches real networks


@pytest.mark.parametrize("c_dim,noise,kernel,taps,layer_features", list(itertools.product(
    [0, 5], [True, False], [3, 1], [[1, 3, 3, 1], [1, 2, 1]], [None, 8])))
def test_generator_state_size_matches_a_real_network(c_dim, noise, kernel, taps, layer_features):
    kw = dict(z_dim=16, c_dim=c_dim, w_dim=16, img_resolution=32, img_channels=3,
              mapping_kwargs=dict(num_layers=3, layer_features=layer_features, embed_features=4),
              synthesis_kwargs=dict(channel_base=256, channel_max=16, use_noise=noise, kernel_size=kernel,
                                    resample_filter=taps))
    state = Generator(**kw).state_dict()
    assert stylegan2.generator_state_size(**kw) == sum(t.numel() for t in state.values())
    filters = sum(t.numel() for k, t in state.items() if k.endswith("resample_filter"))
    assert stylegan2.generator_state_size(**kw, constants=False) == sum(t.numel() for t in state.values()) - filters


@pytest.mark.parametrize("arch,c_dim,cmap_dim,mbstd", list(itertools.product(
    ["resnet", "orig", "skip"], [0, 4], [None, 8], [0, 1, 2])))
def test_discriminator_state_size_matches_a_real_network(arch, c_dim, cmap_dim, mbstd):
    kw = dict(c_dim=c_dim, img_resolution=32, img_channels=3, architecture=arch, channel_base=256, channel_max=16,
              cmap_dim=cmap_dim, block_kwargs=dict(resample_filter=[1, 2, 1]), mapping_kwargs=dict(num_layers=2),
              epilogue_kwargs=dict(mbstd_num_channels=mbstd, mbstd_group_size=2))
    assert stylegan2.discriminator_state_size(**kw) == sum(t.numel() for t in Discriminator(**kw).state_dict().values())


def test_state_size_of_the_published_configurations():
    for name, cfg in stylegan2.CONFIGS.items():
        size = stylegan2.generator_state_size(**cfg.generator_kwargs())
        assert size <= ck.build.MAX_STATE_VALUES, name
    assert stylegan2.generator_state_size(**stylegan2.CONFIGS["ffhq-1024"].generator_kwargs()) == 30_370_060 + 2_797_104


# ---------------------------------------------------------------------------------------------------------------
# Native checksums


def _flip_a_value_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01  # inside the last tensor's values, past the JSON header
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("name", ["ckpt", "g.safetensors"])
def test_a_flipped_byte_is_caught(tmp_path, small_G, name):
    out = ck.save_generator(small_G, tmp_path / name)
    state_file = out / ck.STATE_FILE if out.is_dir() else out
    _flip_a_value_byte(state_file)
    with pytest.raises(ck.CheckpointError, match="content checksum mismatch.*corrupt or was modified"):
        ck.load_generator(out)


def test_checksum_is_recorded_and_files_without_one_still_load(tmp_path, small_G, fixtures_dir):
    out = ck.save_generator(small_G, tmp_path / "ckpt")
    config = json.loads((out / "config.json").read_text())
    assert config["state_sha256"].startswith(config["model_id"]) and len(config["state_sha256"]) == 64
    assert config["model_id"] == ck.model_id(small_G)
    assert "state_sha256" not in json.loads((fixtures_dir / "small" / "config.json").read_text())
    ck.load_generator(fixtures_dir / "small")  # written before checksums
    config["state_sha256"] = "not a digest"
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(ck.CheckpointError, match="not a sha256 hex digest"):
        ck.load_generator(out)
