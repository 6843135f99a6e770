"""Test helper: write network pickles with the same structure as the reference StyleGAN2-ADA snapshots.

The layout (see ../shared/fixtures/stylegan2-ada-reference/README.md): a dict {'G': ..., 'D': ..., 'G_ema': ...}
where each network is a call `torch_utils.persistence._reconstruct_persistent_obj(meta)` with
meta = {type: 'class', version: 6, module_src: <source text>, class_name: 'Generator', state: <the __dict__>}
followed by a BUILD of the same state; `state` holds `_parameters` / `_buffers` / `_modules` ordered dicts (nested
sub-modules are persistent objects too), hook dicts, plain attributes and `_init_args` / `_init_kwargs` (with
`dnnlib.util.EasyDict` values). Tensors are pickled by torch itself (`_rebuild_tensor_v2` over legacy storages read
with `torch.storage._load_from_bytes`).

The reference module names are provided by throwaway modules placed in sys.modules only while pickling, so the
pickler emits exactly the reference globals; they are removed again before anything is loaded.
"""

from __future__ import annotations

import collections
import contextlib
import pickle
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import torch

GOOD_MODULE_SRC = '"""Stand-in module source: never executed by the loader."""\n\nclass Generator:\n    pass\n'


@contextlib.contextmanager
def reference_modules():
    """Temporarily register `torch_utils.persistence` and `dnnlib.util` so pickle can name their globals."""
    names = ["torch_utils", "torch_utils.persistence", "dnnlib", "dnnlib.util"]
    saved = {n: sys.modules.get(n) for n in names}
    torch_utils, persistence = types.ModuleType("torch_utils"), types.ModuleType("torch_utils.persistence")
    dnnlib, util = types.ModuleType("dnnlib"), types.ModuleType("dnnlib.util")

    def _reconstruct_persistent_obj(meta):  # never called: the loader maps this name to its own stand-in
        raise AssertionError("test stand-in must not be called")

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj

    class EasyDict(dict):
        pass

    EasyDict.__module__ = "dnnlib.util"
    EasyDict.__qualname__ = "EasyDict"
    util.EasyDict = EasyDict
    torch_utils.persistence, dnnlib.util = persistence, util
    sys.modules.update({"torch_utils": torch_utils, "torch_utils.persistence": persistence, "dnnlib": dnnlib,
                        "dnnlib.util": util})
    try:
        yield types.SimpleNamespace(reconstruct=_reconstruct_persistent_obj, EasyDict=EasyDict)
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


class _Persistent:
    """Pickles as the reference persistence wrapper does: (_reconstruct_persistent_obj, (meta,), state)."""

    def __init__(self, reconstruct, meta: dict):
        self._reconstruct, self._meta = reconstruct, meta

    def __reduce__(self):
        return self._reconstruct, (self._meta,), self._meta["state"]


def _easy(value: Any, EasyDict) -> Any:
    if isinstance(value, dict):
        return EasyDict({k: _easy(v, EasyDict) for k, v in value.items()})
    return value


def _persistent_module(module: torch.nn.Module, ns, module_src: str, init_kwargs: dict | None) -> _Persistent:
    state: dict[str, Any] = {
        "training": True,
        "_parameters": collections.OrderedDict(
            (k, torch.nn.Parameter(v.detach().clone(), requires_grad=v.requires_grad) if v is not None else None)
            for k, v in module._parameters.items()),
        "_buffers": collections.OrderedDict(
            (k, v.detach().clone() if v is not None else None) for k, v in module._buffers.items()),
        "_non_persistent_buffers_set": set(),
        "_backward_hooks": collections.OrderedDict(),
        "_forward_hooks": collections.OrderedDict(),
        "_forward_pre_hooks": collections.OrderedDict(),
        "_state_dict_hooks": collections.OrderedDict(),
        "_load_state_dict_pre_hooks": collections.OrderedDict(),
        "_modules": collections.OrderedDict(
            (k, _persistent_module(m, ns, module_src, None) if m is not None else None)
            for k, m in module._modules.items()),
        "_init_args": (),
        "_init_kwargs": _easy(init_kwargs or {}, ns.EasyDict),
    }
    for attr in ("z_dim", "c_dim", "w_dim", "num_ws", "img_resolution", "img_channels", "resolution"):
        if isinstance(getattr(module, attr, None), int):
            state[attr] = getattr(module, attr)
    meta = {"type": "class", "version": 6, "module_src": module_src, "class_name": type(module).__name__,
            "state": state}
    return _Persistent(ns.reconstruct, meta)


def write_reference_pickle(path: str | Path, networks: dict[str, torch.nn.Module], *,
                           module_src: str = GOOD_MODULE_SRC, init_kwargs: dict[str, dict] | None = None,
                           extra: dict[str, Any] | None = None, protocol: int = 3) -> Path:
    """Write {'G': ..., 'D': ..., 'G_ema': ...} (whichever are given) as a reference-layout network pickle.

    init_kwargs overrides the recorded constructor arguments per key (default: each network's `init_kwargs`).
    extra adds further top-level entries (e.g. 'training_set_kwargs').
    """
    path = Path(path)
    with reference_modules() as ns:
        data: dict[str, Any] = {}
        for key, net in networks.items():
            kwargs = (init_kwargs or {}).get(key, net.init_kwargs)
            data[key] = _persistent_module(net, ns, module_src, kwargs)
        for key, value in (extra or {}).items():
            data[key] = _easy(value, ns.EasyDict)
        with open(path, "wb") as f:
            pickle.dump(data, f, protocol=protocol)
    return path


class _Exploit:
    """Pickles as a call of an arbitrary global (what a malicious pickle does)."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def write_exploit_pickle(path: str | Path, func, *args, wrap_in: dict[str, torch.nn.Module] | None = None) -> Path:
    """A pickle that calls `func(*args)` on load, optionally hidden inside an otherwise valid network pickle."""
    path = Path(path)
    payload = _Exploit(func, *args)
    with reference_modules() as ns:
        data: dict[str, Any] = {}
        for key, net in (wrap_in or {}).items():
            data[key] = _persistent_module(net, ns, GOOD_MODULE_SRC, net.init_kwargs)
        data["augment_pipe"] = payload
        with open(path, "wb") as f:
            pickle.dump(data, f, protocol=3)
    return path


def numpy_scalar(value: float) -> np.float64:
    """A numpy scalar, pickled with the `numpy.*.multiarray.scalar` and `numpy.dtype` globals."""
    return np.float64(value)


# ---------------------------------------------------------------------------------------------------------------
# Old TensorFlow StyleGAN2 pickles: a tuple (G, D, Gs) of dnnlib.tflib.network.Network objects whose state holds
# static kwargs, the build module source (text), components and variables as (TF name, numpy array) pairs.


@contextlib.contextmanager
def tf_modules():
    """Temporarily register `dnnlib.tflib.network.Network` so pickle can name it."""
    names = ["dnnlib", "dnnlib.tflib", "dnnlib.tflib.network"]
    saved = {n: sys.modules.get(n) for n in names}
    dnnlib, tflib, network = (types.ModuleType(n) for n in names)

    class Network:
        def __init__(self, state: dict):
            self._state = state

        def __getstate__(self):
            return self._state

    Network.__module__ = "dnnlib.tflib.network"
    Network.__qualname__ = "Network"
    network.Network = Network
    dnnlib.tflib, tflib.network = tflib, network
    sys.modules.update(dict(zip(names, (dnnlib, tflib, network))))
    try:
        yield Network
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def tf_variables(G: torch.nn.Module) -> dict[str, list[tuple[str, np.ndarray]]]:
    """The TF StyleGAN2 variables equivalent to generator G (inverse of the public name mapping), per network."""
    sd = {k: v.detach().cpu().numpy() for k, v in G.state_dict().items()}
    mapping = []
    i = 0
    while f"mapping.fc{i}.weight" in sd:
        mapping += [(f"Dense{i}/weight", sd[f"mapping.fc{i}.weight"].T.copy()), (f"Dense{i}/bias", sd[f"mapping.fc{i}.bias"])]
        i += 1
    synthesis, noise = [], []

    def layer(dst: str, src: str, flip: bool = False, noise_idx: int | None = None):
        w = sd[f"{dst}.weight"].transpose(2, 3, 1, 0)  # OIHW -> HWIO
        if flip:
            w = w[::-1, ::-1]
        synthesis.extend([(f"{src}/weight", w.copy()), (f"{src}/mod_weight", sd[f"{dst}.affine.weight"].T.copy()),
                          (f"{src}/mod_bias", sd[f"{dst}.affine.bias"] - 1), (f"{src}/bias", sd[f"{dst}.bias"])])
        if noise_idx is not None:
            synthesis.append((f"{src}/noise_strength", sd[f"{dst}.noise_strength"]))
            noise.append((f"noise{noise_idx}", sd[f"{dst}.noise_const"][None, None].copy()))

    res = 4
    while f"synthesis.b{res}.torgb.weight" in sd:
        src, dst, log2 = f"{res}x{res}", f"synthesis.b{res}", int(np.log2(res))
        if res == 4:
            synthesis.append((f"{src}/Const/const", sd[f"{dst}.const"][None].copy()))
            layer(f"{dst}.conv1", f"{src}/Conv", noise_idx=0)
        else:
            layer(f"{dst}.conv0", f"{src}/Conv0_up", flip=True, noise_idx=2 * log2 - 5)
            layer(f"{dst}.conv1", f"{src}/Conv1", noise_idx=2 * log2 - 4)
        layer(f"{dst}.torgb", f"{src}/ToRGB")
        res *= 2
    return {"Gs": [("dlatent_avg", sd["mapping.w_avg"])], "mapping": mapping, "synthesis": synthesis + noise}


def write_tf_pickle(path: str | Path, G: torch.nn.Module, *, build_module_src: str = GOOD_MODULE_SRC,
                    static_kwargs: dict | None = None) -> Path:
    """A TF-format (G, D, Gs) pickle whose Gs (and G) hold generator G's weights under TF variable names."""
    path = Path(path)
    kw = G.init_kwargs
    syn = kw["synthesis_kwargs"]
    top = {"num_channels": kw["img_channels"], "resolution": kw["img_resolution"], "label_size": 0,
           "latent_size": kw["z_dim"], "dlatent_size": kw["w_dim"],
           "mapping_layers": kw["mapping_kwargs"].get("num_layers", 8),
           "fmap_base": syn.get("channel_base", 32768) // 2, "fmap_max": syn.get("channel_max", 512)}
    top.update(static_kwargs or {})
    variables = tf_variables(G)
    with tf_modules() as Network:
        def net(name, variables, components=None, static=None):
            return Network({"version": 4, "name": name, "static_kwargs": static or {}, "components": components or {},
                            "build_module_src": build_module_src, "build_func_name": name, "variables": variables})

        def generator(name):
            return net(name, variables["Gs"], {"mapping": net("G_mapping", variables["mapping"]),
                                               "synthesis": net("G_synthesis", variables["synthesis"])}, top)

        D = net("D", [("4x4/Dense0/weight", np.zeros((4, 4), np.float32))], static={"resolution": 32})
        with open(path, "wb") as f:
            pickle.dump((generator("G"), D, generator("Gs")), f, protocol=3)
    return path
