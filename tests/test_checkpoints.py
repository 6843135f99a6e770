"""Model sources: native checkpoints, safe reference pickles, downloads (local HTTP server, local HF cache),
registry names, random weights, corrupt files, model identity. All offline, tiny 32 px networks."""

from __future__ import annotations

import dataclasses
import functools
import http.server
import os
import pickle
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from editor import checkpoints as ck
from editor.stylegan2 import CONFIGS, Discriminator, Generator
import _refpickle as rp


def _same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sorted(sa) == sorted(sb)
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and sa[k].shape == sb[k].shape, k
        assert torch.equal(sa[k].cpu(), sb[k].cpu()), k


@pytest.fixture(scope="module")
def small_G(fixtures_dir) -> Generator:
    return ck.load_generator(fixtures_dir / "small")


@pytest.fixture(scope="module")
def small_D(fixtures_dir) -> Discriminator:
    return ck.load_network(fixtures_dir / "small_D", kind="D")


@pytest.fixture()
def cache(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "cache"
    monkeypatch.setenv(ck.CACHE_ENV, str(path))
    monkeypatch.delenv(ck.OFFLINE_ENV, raising=False)
    return path


# ---------------------------------------------------------------------------------------------------------------
# Native format


def test_fixture_directory_is_a_native_checkpoint(small_G, fixtures_dir):
    from safetensors.torch import load_file

    assert isinstance(small_G, Generator)
    assert not small_G.training
    assert not any(p.requires_grad for p in small_G.parameters())
    ref = load_file(str(fixtures_dir / "small" / "state.safetensors"))
    got = small_G.state_dict()
    assert sorted(ref) == sorted(got)
    assert all(torch.equal(ref[k], got[k]) for k in ref)
    cases = np.load(fixtures_dir / "small" / "cases.npz")
    with torch.no_grad():
        img = small_G.synthesis(torch.from_numpy(cases["ws_psi1"]), noise_mode="const")
    assert (img - torch.from_numpy(cases["img_psi1_const"])).abs().max().item() <= 1e-4


def test_fixture_discriminator_directory(small_D):
    assert isinstance(small_D, Discriminator)
    assert not small_D.training


@pytest.mark.parametrize("name", ["ckpt", "single.safetensors"])
def test_save_and_load_roundtrip(small_G, tmp_path, name):
    out = ck.save_generator(small_G, tmp_path / name)
    G = ck.load_generator(out)
    _same_state(G, small_G)
    assert G.init_kwargs == small_G.init_kwargs
    assert ck.model_id(G) == ck.model_id(small_G)
    assert not [p for p in tmp_path.rglob("*.part")], "temporary files left behind"
    if out.is_dir():
        import json

        config = json.loads((out / "config.json").read_text())
        assert config["class_name"] == "Generator" and config["model_id"] == ck.model_id(small_G)


def test_save_discriminator_and_kind_check(small_D, tmp_path):
    out = ck.save_network(small_D, tmp_path / "D.safetensors")
    _same_state(ck.load_network(out, kind="D"), small_D)
    with pytest.raises(ck.CheckpointError, match="holds a Discriminator"):
        ck.load_generator(out)


def test_safetensors_without_config_metadata_is_refused(small_G, tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "bare.safetensors"
    save_file({k: v.contiguous() for k, v in small_G.state_dict().items()}, str(path))
    with pytest.raises(ck.CheckpointError, match="no 'config' metadata"):
        ck.load_generator(path)


def test_load_moves_to_device(fixtures_dir):
    G = ck.load_generator(fixtures_dir / "small", device=torch.device("cpu"))
    assert next(G.parameters()).device.type == "cpu"


# ---------------------------------------------------------------------------------------------------------------
# Strictness and corrupt files


def _copy_checkpoint(small_G, tmp_path) -> Path:
    return ck.save_generator(small_G, tmp_path / "ckpt")


def _drop_checksum(out: Path) -> None:
    import json

    config = json.loads((out / "config.json").read_text())
    del config[ck.native.CHECKSUM_KEY]
    (out / "config.json").write_text(json.dumps(config))


def test_truncated_safetensors_is_a_clear_error(small_G, tmp_path):
    out = _copy_checkpoint(small_G, tmp_path)
    data = (out / "state.safetensors").read_bytes()
    (out / "state.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ck.CheckpointError, match="corrupt or truncated"):
        ck.load_generator(out)


def test_garbage_safetensors_is_a_clear_error(tmp_path):
    path = tmp_path / "junk.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all" + os.urandom(64))
    with pytest.raises(ck.CheckpointError):
        ck.load_generator(path)


def test_missing_and_extra_tensors_are_refused(small_G, tmp_path):
    from safetensors.torch import load_file, save_file

    out = _copy_checkpoint(small_G, tmp_path)
    _drop_checksum(out)  # as written before checksums: the strict check reports what is wrong
    state = load_file(str(out / "state.safetensors"))
    state.pop("mapping.w_avg")
    state["synthesis.b4.surprise"] = torch.zeros(3)
    save_file(state, str(out / "state.safetensors"))
    with pytest.raises(ck.CheckpointError, match="1 missing .*mapping.w_avg.*1 unexpected"):
        ck.load_generator(out)


def test_config_that_does_not_match_tensors_is_refused(small_G, tmp_path):
    import json

    out = _copy_checkpoint(small_G, tmp_path)
    config = json.loads((out / "config.json").read_text())
    config["init_kwargs"]["synthesis_kwargs"]["channel_max"] = 16
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(ck.CheckpointError, match="wrong shape"):
        ck.load_generator(out)


def test_bad_config_json(small_G, tmp_path):
    out = _copy_checkpoint(small_G, tmp_path)
    (out / "config.json").write_text("{ truncated")
    with pytest.raises(ck.CheckpointError, match="not valid JSON"):
        ck.load_generator(out)
    (out / "config.json").write_text('{"something": 1}')
    with pytest.raises(ck.CheckpointError, match="init_kwargs"):
        ck.load_generator(out)


def test_unbuildable_config_is_a_clear_error(small_G, tmp_path):
    import json

    out = _copy_checkpoint(small_G, tmp_path)
    config = json.loads((out / "config.json").read_text())
    config["init_kwargs"]["synthesis_kwargs"]["no_such_option"] = 1
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(ck.CheckpointError, match="cannot build a Generator"):
        ck.load_generator(out)


def test_unknown_source_lists_what_is_accepted():
    with pytest.raises(FileNotFoundError, match="ffhq-1024"):
        ck.load_generator("no/such/model.pkl")


def test_unknown_file_format(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"hello world, not a model")
    with pytest.raises(ck.CheckpointError, match="unknown file format"):
        ck.load_generator(path)


# ---------------------------------------------------------------------------------------------------------------
# Reference pickles, read safely


@pytest.fixture()
def good_pickle(tmp_path, small_G, small_D) -> Path:
    G = ck.load_generator("random:small:5")  # a different generator for 'G', to check kinds are kept apart
    return rp.write_reference_pickle(tmp_path / "network-snapshot.pkl", {"G": G, "D": small_D, "G_ema": small_G},
                                     extra={"training_set_kwargs": {"resolution": 32, "xflip": False}})


def test_good_pickle_gives_identical_tensors(good_pickle, small_G, small_D):
    G_ema = ck.load_generator(good_pickle)
    _same_state(G_ema, small_G)
    assert G_ema.init_kwargs == small_G.init_kwargs
    _same_state(ck.load_network(good_pickle, kind="D"), small_D)
    _same_state(ck.load_network(good_pickle, kind="G"), ck.load_generator("random:small:5"))
    assert "torch_utils" not in sys.modules and "dnnlib" not in sys.modules


def test_pickle_structure_is_the_reference_one(good_pickle):
    import pickletools

    globals_seen = set()
    for opcode, arg, _ in pickletools.genops(good_pickle.read_bytes()):
        if opcode.name == "GLOBAL":
            globals_seen.add(arg.replace(" ", "."))
    assert globals_seen == {
        "torch_utils.persistence._reconstruct_persistent_obj", "collections.OrderedDict",
        "torch._utils._rebuild_parameter", "torch._utils._rebuild_tensor_v2", "torch.storage._load_from_bytes",
        "dnnlib.util.EasyDict", "builtins.set",
    }
    data = ck.read_reference_pickle(good_pickle)
    obj = data["G_ema"]
    assert isinstance(obj, ck.PersistentObject) and obj.class_name == "Generator" and obj.version == 6
    assert isinstance(obj.state["_modules"]["mapping"], ck.PersistentObject)
    assert data["training_set_kwargs"] == {"resolution": 32, "xflip": False}


def test_pickle_source_that_would_run_code_is_never_executed(tmp_path, small_G):
    marker = tmp_path / "pwned"
    evil_src = (f"import os\nos.system('touch {marker}')\nopen({str(marker)!r}, 'w').write('x')\n"
                "raise RuntimeError('module source was executed')\n")
    path = rp.write_reference_pickle(tmp_path / "evil-src.pkl", {"G_ema": small_G}, module_src=evil_src)
    # The source is only parsed (never run): code that would execute on import marks the file as tampered.
    with pytest.raises(ck.UnsafePickleError, match="runs code when imported.*os.system"):
        ck.load_generator(path)
    assert not marker.exists()


@pytest.mark.parametrize("src", [
    "raise RuntimeError('boom')\n",
    "import os\n@os.system('x')\ndef f():\n    pass\n",
    "class Generator:\n    __import__('os').system('x')\n",
    "def broken(:\n",
])
def test_pickle_sources_with_import_time_code_are_refused(tmp_path, small_G, src):
    path = rp.write_reference_pickle(tmp_path / "bad-src.pkl", {"G_ema": small_G}, module_src=src)
    with pytest.raises(ck.UnsafePickleError, match="module source"):
        ck.load_generator(path)


def test_pickle_source_of_plain_definitions_is_accepted(tmp_path, small_G):
    src = ('"""networks"""\nimport numpy as np\nfrom torch_utils import persistence\nSCALE = 2\n\n'
           '@persistence.persistent_class\nclass Generator:\n    """doc"""\n    x = 1\n'
           '    def forward(self):\n        return np.zeros(3)\n')
    path = rp.write_reference_pickle(tmp_path / "ok-src.pkl", {"G_ema": small_G}, module_src=src)
    _same_state(ck.load_generator(path), small_G)


@pytest.mark.parametrize("func,args", [
    (os.system, ("touch {marker}",)),
    (eval, ("open({marker!r}, 'w')",)),
    (exec, ("open({marker!r}, 'w').write('x')",)),
    (Path.touch, ("{marker}",)),
])
def test_forbidden_globals_are_refused_without_side_effects(tmp_path, small_G, func, args):
    marker = tmp_path / "pwned"
    args = tuple(a.format(marker=str(marker)) for a in args)
    if func is Path.touch:
        args = (Path(args[0]),)
    path = rp.write_exploit_pickle(tmp_path / "exploit.pkl", func, *args, wrap_in={"G_ema": small_G})
    with pytest.raises(ck.UnsafePickleError, match="refused to load global") as info:
        ck.load_generator(path)
    assert str(path) in str(info.value)
    assert not marker.exists()


@pytest.mark.parametrize("module,name", [
    ("torch", "load"), ("collections", "namedtuple"), ("torch_utils.persistence", "import_hook"),
    ("builtins", "getattr"), ("numpy", "load"), ("dnnlib.tflib.tfutil", "run"), ("copyreg", "_reconstructor"),
])
def test_any_global_outside_the_allow_list_is_refused(tmp_path, module, name):
    path = tmp_path / "global.pkl"
    path.write_bytes(b"\x80\x03c" + f"{module}\n{name}\n".encode() + b")R.")
    with pytest.raises(ck.UnsafePickleError, match=f"{module}.{name}"):
        ck.read_reference_pickle(path)


def test_build_on_foreign_objects_and_persistent_ids_are_refused(tmp_path):
    build_on_dict = tmp_path / "build.pkl"
    build_on_dict.write_bytes(b"\x80\x03}}X\x01\x00\x00\x00aK\x01sb.")  # BUILD on a plain dict
    with pytest.raises(ck.UnsafePickleError, match="set state on an object of type dict"):
        ck.read_reference_pickle(build_on_dict)
    persid = tmp_path / "persid.pkl"
    persid.write_bytes(b"\x80\x03X\x03\x00\x00\x00abcQ.")
    with pytest.raises(ck.UnsafePickleError, match="persistent id"):
        ck.read_reference_pickle(persid)


def test_truncated_and_corrupt_pickles_are_clear_errors(good_pickle, tmp_path):
    data = good_pickle.read_bytes()
    truncated = tmp_path / "truncated.pkl"
    truncated.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(ck.CheckpointError, match="corrupt or truncated"):
        ck.load_generator(truncated)
    garbage = tmp_path / "garbage.pkl"
    garbage.write_bytes(b"\x80\x03" + os.urandom(4096))
    with pytest.raises(ck.CheckpointError):
        ck.load_generator(garbage)


def test_pickle_kind_errors(good_pickle, tmp_path, small_G):
    only_g = rp.write_reference_pickle(tmp_path / "only-g.pkl", {"G_ema": small_G})
    with pytest.raises(ck.CheckpointError, match="no 'D' network"):
        ck.load_network(only_g, kind="D")
    with pytest.raises(ValueError, match="kind must be one of"):
        ck.load_network(good_pickle, kind="Gs")


def test_stylegan3_era_flat_kwargs_with_numpy_scalars(tmp_path, small_G):
    flat = {"z_dim": 32, "c_dim": 0, "w_dim": 32, "img_resolution": 32, "img_channels": 3,
            "mapping_kwargs": {"num_layers": 2, "lr_multiplier": rp.numpy_scalar(0.01)},
            "channel_base": 512, "channel_max": 32, "num_fp16_res": 0, "conv_clamp": 256,
            "fused_modconv_default": "inference_only"}
    path = rp.write_reference_pickle(tmp_path / "sg3.pkl", {"G_ema": small_G}, init_kwargs={"G_ema": flat})
    G = ck.load_generator(path)
    _same_state(G, small_G)
    assert G.init_kwargs["mapping_kwargs"]["lr_multiplier"] == 0.01
    assert "fused_modconv_default" not in G.init_kwargs["synthesis_kwargs"]


def test_tf_converted_style_kwargs_load(tmp_path, small_G):
    legacy = {"z_dim": 32, "c_dim": 0, "w_dim": 32, "img_resolution": 32, "img_channels": 3,
              "mapping_kwargs": {"num_layers": 2, "embed_features": None, "layer_features": None,
                                 "activation": "lrelu", "lr_multiplier": 0.01, "w_avg_beta": 0.995},
              "synthesis_kwargs": {"channel_base": 512, "channel_max": 32, "num_fp16_res": 0, "conv_clamp": 256,
                                   "architecture": "skip", "resample_filter": [1, 3, 3, 1], "use_noise": True,
                                   "activation": "lrelu"}}
    path = rp.write_reference_pickle(tmp_path / "legacy.pkl", {"G_ema": small_G}, init_kwargs={"G_ema": legacy})
    _same_state(ck.load_generator(path), small_G)


def test_positional_init_args_are_named(tmp_path, small_G):
    path = rp.write_reference_pickle(tmp_path / "pos.pkl", {"G_ema": small_G})
    data = ck.read_reference_pickle(path)
    obj = data["G_ema"]
    kw = dict(obj.state["_init_kwargs"])
    obj.state["_init_args"] = tuple(kw.pop(k) for k in ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels"))
    obj.state["_init_kwargs"] = kw
    assert ck.reference.init_kwargs_from_persistent(obj) == small_G.init_kwargs


def test_converted_pickle_roundtrip(good_pickle, tmp_path, small_G):
    out = ck.save_generator(ck.load_generator(good_pickle), tmp_path / "converted")
    _same_state(ck.load_generator(out), small_G)


# ---------------------------------------------------------------------------------------------------------------
# Random weights and identity


def test_random_generators_are_seeded_and_leave_the_global_rng_alone():
    state = torch.random.get_rng_state()
    a, b, c = (ck.load_generator(s) for s in ("random:small:1", "random:small:1", "random:small:2"))
    assert torch.equal(state, torch.random.get_rng_state())
    assert ck.model_id(a) == ck.model_id(b) != ck.model_id(c)
    assert ck.model_id(ck.load_generator("random:small")) == ck.model_id(ck.load_generator("random:small:0"))
    assert isinstance(ck.load_network("random:small", kind="D"), Discriminator)


@pytest.mark.parametrize("spec,match", [
    ("random:nope", "unknown configuration 'nope'"), ("random:small:x", "not an integer"), ("random:", "expected"),
])
def test_random_spec_errors(spec, match):
    with pytest.raises(ValueError, match=match):
        ck.load_generator(spec)


def test_every_config_has_a_random_generator_spec():
    # Building the big ones is a benchmark's job; check the kwargs resolve.
    for name in CONFIGS:
        class_name, kwargs, seed = ck.load._random_network(f"random:{name}:3", "G_ema")
        assert class_name == "Generator" and seed == 3 and kwargs["img_resolution"] > 0


def test_model_id_changes_with_any_value(small_G):
    ident = ck.model_id(small_G)
    assert len(ident) == 12 and ck.model_id(small_G, length=64).startswith(ident)
    clone = ck.load_generator("random:small")
    clone.load_state_dict(small_G.state_dict())
    assert ck.model_id(clone) == ident
    with torch.no_grad():
        clone.synthesis.b4.const[0, 0, 0] += 1e-6
    assert ck.model_id(clone) != ident


# ---------------------------------------------------------------------------------------------------------------
# Registry


def test_registry_names_and_licences():
    names = [m.name for m in ck.list_models()]
    assert names[:3] == ["ffhq-1024", "ffhq-512", "ffhq-256"] and "demo" in names
    info = ck.model_info("ffhq-1024")
    assert info.url == ("https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan2/versions/1/files/"
                        "stylegan2-ffhq-1024x1024.pkl")
    assert ck.model_info("ffhq-512").url.endswith("/stylegan2-ffhq-512x512.pkl")
    assert ck.model_info("ffhq-256").url.endswith("/stylegan2-ffhq-256x256.pkl")
    assert "non-commercial" in info.license_text and "License-NC" in info.license_name
    with pytest.raises(ValueError, match="known names"):
        ck.model_info("ffhq-2048")


def test_registry_name_offline_fails_fast_naming_the_file(cache, monkeypatch):
    monkeypatch.setenv(ck.OFFLINE_ENV, "1")
    start = time.monotonic()
    with pytest.raises(ck.ModelUnavailableError) as info:
        ck.load_generator("ffhq-1024")
    assert time.monotonic() - start < 5
    message = str(info.value)
    assert "stylegan2-ffhq-1024x1024.pkl" in message and str(cache / "stylegan2-ffhq-1024x1024.pkl") in message


def test_registry_name_uses_a_file_already_in_the_cache(cache, small_G, small_D, monkeypatch):
    monkeypatch.setenv(ck.OFFLINE_ENV, "1")
    cache.mkdir(parents=True)
    rp.write_reference_pickle(cache / "stylegan2-ffhq-256x256.pkl", {"G_ema": small_G, "D": small_D})
    _same_state(ck.load_generator("ffhq-256"), small_G)


def test_demo_missing_and_present(tmp_path, monkeypatch, small_G):
    monkeypatch.setattr(ck.registry, "DEMO_DIR", tmp_path / "demo")
    with pytest.raises(ck.ModelUnavailableError, match="demo generator is not in this checkout"):
        ck.load_generator("demo")
    ck.save_generator(small_G, tmp_path / "demo")
    _same_state(ck.load_generator("demo"), small_G)


# ---------------------------------------------------------------------------------------------------------------
# Downloads from a local HTTP server


class _Server:
    def __init__(self, root: Path):
        self.requests: list[str] = []
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                server.requests.append(self.path)
                if self.path.startswith("/short/"):  # announces more bytes than it sends
                    self.send_response(200)
                    self.send_header("Content-Length", "100000")
                    self.end_headers()
                    self.wfile.write(b"\x80\x03" + b"x" * 1000)
                    self.wfile.flush()
                    self.close_connection = True
                    return
                super().do_GET()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                     functools.partial(Handler, directory=str(root)))
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    s = _Server(root)
    s.root = root
    yield s
    s.close()


def test_url_download_once_then_cached(server, cache, small_G):
    ck.save_generator(small_G, server.root / "small.safetensors")
    url = f"{server.url}/small.safetensors"
    _same_state(ck.load_generator(url, progress=False), small_G)
    _same_state(ck.load_generator(url, progress=False), small_G)
    assert server.requests == ["/small.safetensors"]
    cached = ck.url_cache_path(url)
    assert cached.is_file() and cached.parent.parent == cache
    assert not list(cache.rglob("*.part"))


def test_url_pickle_download(server, cache, small_G):
    rp.write_reference_pickle(server.root / "net.pkl", {"G_ema": small_G})
    _same_state(ck.load_generator(f"{server.url}/net.pkl", progress=False), small_G)


def test_interrupted_download_leaves_nothing(server, cache):
    url = f"{server.url}/short/net.pkl"
    with pytest.raises(ck.ModelUnavailableError, match="net.pkl") as info:
        ck.load_generator(url, progress=False)
    assert str(ck.url_cache_path(url)) in str(info.value)
    assert not ck.url_cache_path(url).exists()
    assert not [p for p in cache.rglob("*") if p.is_file()], "partial file left in the cache"


def test_missing_url_names_the_file_and_destination(server, cache):
    url = f"{server.url}/absent.pkl"
    with pytest.raises(ck.ModelUnavailableError, match="HTTP 404") as info:
        ck.load_generator(url, progress=False)
    assert "absent.pkl" in str(info.value) and str(ck.url_cache_path(url)) in str(info.value)


def test_unreachable_server_fails_fast(cache):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(ck.ModelUnavailableError, match="unreachable"):
        ck.load_generator(f"http://127.0.0.1:{port}/model.pkl", progress=False)
    assert time.monotonic() - start < 5


def test_registry_download_through_local_server(server, cache, small_G, monkeypatch):
    rp.write_reference_pickle(server.root / "stylegan2-ffhq-512x512.pkl", {"G_ema": small_G})
    info = ck.REGISTRY["ffhq-512"]
    monkeypatch.setitem(ck.REGISTRY, "ffhq-512",
                        dataclasses.replace(info, url=f"{server.url}/stylegan2-ffhq-512x512.pkl"))
    _same_state(ck.load_generator("ffhq-512", progress=False), small_G)
    assert (cache / "stylegan2-ffhq-512x512.pkl").is_file()


# ---------------------------------------------------------------------------------------------------------------
# hf:// through a local Hugging Face cache (HF_HUB_OFFLINE=1)


def _hf_cache(root: Path, repo_id: str, filename: str, content: bytes, revision: str = "main") -> None:
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo_dir = root / ("models--" + repo_id.replace("/", "--"))
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / revision).write_text(commit)
    target = repo_dir / "snapshots" / commit / filename
    target.parent.mkdir(parents=True)
    target.write_bytes(content)


def test_hf_source_from_local_cache(tmp_path, monkeypatch, small_G):
    from huggingface_hub import constants

    assert constants.HF_HUB_OFFLINE, "tests must run with HF_HUB_OFFLINE=1"
    ck.save_generator(small_G, tmp_path / "g.safetensors")
    hf_root = tmp_path / "hf"
    _hf_cache(hf_root, "someone/faces", "models/g.safetensors", (tmp_path / "g.safetensors").read_bytes())
    monkeypatch.setenv("HF_HUB_CACHE", str(hf_root))
    _same_state(ck.load_generator("hf://someone/faces/models/g.safetensors"), small_G)


def test_hf_source_missing_offline_fails_fast(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    start = time.monotonic()
    with pytest.raises(ck.ModelUnavailableError) as info:
        ck.load_generator("hf://someone/faces@v1/models/big.pkl")
    assert time.monotonic() - start < 5
    message = str(info.value)
    assert "models/big.pkl" in message and "someone/faces" in message and "offline" in message


@pytest.mark.parametrize("bad", ["hf://only-owner", "hf://owner/repo", "hf://owner//file"])
def test_hf_source_syntax(bad):
    with pytest.raises(ValueError, match="hf://owner/repo/path"):
        ck.load_generator(bad)


def test_pickle_from_hf_cache_is_read_safely(tmp_path, monkeypatch, small_G):
    marker = tmp_path / "pwned"
    rp.write_exploit_pickle(tmp_path / "x.pkl", os.system, f"touch {marker}", wrap_in={"G_ema": small_G})
    hf_root = tmp_path / "hf"
    _hf_cache(hf_root, "evil/repo", "x.pkl", (tmp_path / "x.pkl").read_bytes())
    monkeypatch.setenv("HF_HUB_CACHE", str(hf_root))
    with pytest.raises(ck.UnsafePickleError):
        ck.load_generator("hf://evil/repo/x.pkl")
    assert not marker.exists()


def test_pickle_module_is_plain_python():
    # The restricted reader relies on the pure-Python unpickler's dispatch table.
    assert pickle.BUILD[0] in ck.unpickle._RestrictedUnpickler.dispatch


# ---------------------------------------------------------------------------------------------------------------
# Old TensorFlow StyleGAN2 pickles


def test_tf_pickle_converts_to_the_same_tensors(tmp_path, small_G):
    marker = tmp_path / "pwned"
    path = rp.write_tf_pickle(tmp_path / "tf.pkl", small_G,
                              build_module_src=f"import os\nos.system('touch {marker}')\n")
    G = ck.load_generator(path)
    _same_state(G, small_G)
    assert G.init_kwargs["synthesis_kwargs"]["conv_clamp"] is None  # TF models had no clamp
    _same_state(ck.load_network(path, kind="G"), small_G)
    with pytest.raises(ck.CheckpointError, match="TensorFlow discriminators"):
        ck.load_network(path, kind="D")
    assert not marker.exists() and "dnnlib" not in sys.modules


def test_tf_conv0_up_kernels_are_flipped(tmp_path, small_G):
    path = rp.write_tf_pickle(tmp_path / "tf.pkl", small_G)
    params = ck.read_reference_pickle(path)["G_ema"].params()
    tf_w = params["synthesis/8x8/Conv0_up/weight"]  # [kh, kw, in, out]
    ours = small_G.synthesis.b8.conv0.weight.numpy()  # [out, in, kh, kw]
    assert np.array_equal(ours[:, :, 0, 0], tf_w[2, 2].T)
    assert np.array_equal(small_G.synthesis.b8.conv1.weight.numpy()[:, :, 0, 0], params["synthesis/8x8/Conv1/weight"][0, 0].T)


def test_tf_pickle_with_unknown_variables_or_labels_is_refused(tmp_path, small_G):
    path = rp.write_tf_pickle(tmp_path / "cond.pkl", small_G, static_kwargs={"label_size": 10})
    with pytest.raises(ck.CheckpointError, match="conditional"):
        ck.load_generator(path)
    path = rp.write_tf_pickle(tmp_path / "wide.pkl", small_G, static_kwargs={"fmap_max": 64})
    with pytest.raises(ck.CheckpointError, match="wrong shape|no variable|no counterpart"):
        ck.load_generator(path)


def test_convert_tf_pickle_command(tmp_path, small_G):
    from editor.commands import main

    path = rp.write_tf_pickle(tmp_path / "tf.pkl", small_G)
    assert main(["convert", str(path), str(tmp_path / "native.safetensors")]) == 0
    _same_state(ck.load_generator(tmp_path / "native.safetensors"), small_G)


def test_numpy_object_arrays_are_refused(tmp_path):
    path = tmp_path / "objects.pkl"
    path.write_bytes(pickle.dumps({"G_ema": np.array([os.getcwd, 1], dtype=object)}, protocol=3))
    with pytest.raises(ck.UnsafePickleError):
        ck.read_reference_pickle(path)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_other_pickle_protocols(tmp_path, small_G, protocol):
    path = rp.write_reference_pickle(tmp_path / f"p{protocol}.pkl", {"G_ema": small_G}, protocol=protocol)
    _same_state(ck.load_generator(path), small_G)


def test_discriminator_with_converted_style_kwargs(tmp_path, small_D):
    kwargs = {"c_dim": 0, "img_resolution": 32, "img_channels": 3, "architecture": "resnet", "channel_base": 512,
              "channel_max": 32, "num_fp16_res": 0, "conv_clamp": 256,
              "block_kwargs": {"activation": "lrelu", "resample_filter": [1, 3, 3, 1], "freeze_layers": 0},
              "mapping_kwargs": {}, "epilogue_kwargs": {"mbstd_group_size": 4, "mbstd_num_channels": 1,
                                                         "activation": "lrelu"}}
    path = rp.write_reference_pickle(tmp_path / "d.pkl", {"D": small_D}, init_kwargs={"D": kwargs})
    _same_state(ck.load_network(path, kind="D"), small_D)


def test_corrupt_cached_download_says_how_to_refetch(cache, monkeypatch):
    monkeypatch.setenv(ck.OFFLINE_ENV, "1")
    cache.mkdir(parents=True)
    (cache / "stylegan2-ffhq-256x256.pkl").write_bytes(b"<html>proxy error page</html>")
    with pytest.raises(ck.CheckpointError, match="cached download: delete it"):
        ck.load_generator("ffhq-256")


def test_saved_files_get_ordinary_permissions(small_G, tmp_path):
    umask = os.umask(0o022)
    try:
        out = ck.save_generator(small_G, tmp_path / "perm")
        assert (out / "state.safetensors").stat().st_mode & 0o777 == 0o644
        assert (out / "config.json").stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(umask)


def test_bundled_demo_loads_when_present():
    if not (ck.DEMO_DIR / ck.STATE_FILE).is_file():
        pytest.skip("checkpoints/demo is not in this checkout yet")
    G = ck.load_generator("demo")
    assert isinstance(G, Generator) and not G.training
    with torch.no_grad():
        img = G(torch.zeros([1, G.z_dim]), None)
    assert img.shape == (1, G.img_channels, G.img_resolution, G.img_resolution) and torch.isfinite(img).all()
