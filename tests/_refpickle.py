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
    for attr, value in vars(module).items():  # plain attributes, as the reference __dict__ holds them
        if not attr.startswith("_") and attr != "init_kwargs" and (
                isinstance(value, (bool, int, float, str)) or
                (isinstance(value, list) and all(isinstance(v, (int, float)) for v in value))):
            state[attr] = value
    meta = {"type": "class", "version": 6, "module_src": module_src, "class_name": type(module).__name__,
            "state": state}
    return _Persistent(ns.reconstruct, meta)


def write_reference_pickle(path: str | Path, networks: dict[str, torch.nn.Module], *,
                           module_src: str | dict[str, str] = GOOD_MODULE_SRC,
                           init_kwargs: dict[str, dict] | None = None,
                           extra: dict[str, Any] | None = None, protocol: int = 3) -> Path:
    """Write {'G': ..., 'D': ..., 'G_ema': ...} (whichever are given) as a reference-layout network pickle.

    module_src: the embedded source of every network, or one per key. init_kwargs overrides the recorded
    constructor arguments per key (default: each network's `init_kwargs`). extra adds further top-level entries
    (e.g. 'training_set_kwargs'; a module such as `AugmentPipe()` becomes a persistent object too).
    """
    path = Path(path)
    with reference_modules() as ns:
        data: dict[str, Any] = {}
        for key, value in {**networks, **(extra or {})}.items():
            if isinstance(value, torch.nn.Module):
                kwargs = (init_kwargs or {}).get(key, getattr(value, "init_kwargs", {}))
                src = module_src.get(key, GOOD_MODULE_SRC) if isinstance(module_src, dict) else module_src
                data[key] = _persistent_module(value, ns, src, kwargs)
            else:
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


# ---------------------------------------------------------------------------------------------------------------
# Embedded module sources with the structure of NVIDIA's files (written for these tests; nothing is copied): a
# copyright comment, a docstring, imports, module-level literal tables, functions decorated with
# @misc.profiled_function, classes decorated with @persistence.persistent_class, class-level constants, and
# constructor signatures whose literal defaults are what the loader reads.

_HEADER = '''# Copyright (c) 2021, a research lab.  All rights reserved.
#
# Test source with the layout of a reference network module; never executed.

"""{doc}"""

import numpy as np
import torch
from torch_utils import misc
from torch_utils import persistence
from torch_utils.ops import bias_act
{more_imports}
#----------------------------------------------------------------------------

@misc.profiled_function
def normalize_2nd_moment(x, dim=1, eps=1e-8):
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()

#----------------------------------------------------------------------------
'''

_STYLEGAN2_CLASSES = '''
@persistence.persistent_class
class FullyConnectedLayer(torch.nn.Module):
    def __init__(self,
        in_features,                # Inputs.
        out_features,               # Outputs.
        bias            = True,     # Additive bias?
        activation      = 'linear', # Activation name.
        lr_multiplier   = 1,        # Learning rate multiplier.
        bias_init       = 0,        # Initial bias.
    ):
        super().__init__()
        self.activation = activation
        self.weight = torch.nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.weight_gain = lr_multiplier / np.sqrt(in_features)

    def forward(self, x):
        return bias_act.bias_act(x.matmul((self.weight * self.weight_gain).t()), act=self.activation)

@persistence.persistent_class
class MappingNetwork(torch.nn.Module):
    def __init__(self, z_dim, c_dim, w_dim, num_ws,
        num_layers      = 8,
        embed_features  = None,
        layer_features  = None,
        activation      = 'lrelu',
        lr_multiplier   = 0.01,
        w_avg_beta      = {w_avg_beta},
    ):
        super().__init__()
        for idx in range(num_layers):
            setattr(self, f'fc{{idx}}', FullyConnectedLayer(w_dim, w_dim, activation=activation))

@persistence.persistent_class
class SynthesisLayer(torch.nn.Module):
    DEFAULT_NOISE_MODE = 'random'   # class-level constants
    NOISE_MODES = ('random', 'const', 'none')

    def __init__(self, in_channels, out_channels, w_dim, resolution,
        kernel_size     = 3,
        up              = 1,
        use_noise       = True,
        activation      = 'lrelu',
        resample_filter = [1,3,3,1],
        conv_clamp      = None,
        channels_last   = False,
    ):
        super().__init__()
        self.conv_clamp = conv_clamp

    def forward(self, x, w, noise_mode='random', fused_modconv=True, gain=1):
        assert noise_mode in self.NOISE_MODES
        return x

@persistence.persistent_class
class SynthesisBlock(torch.nn.Module):
    def __init__(self, in_channels, out_channels, w_dim, resolution, img_channels, is_last,
        architecture        = 'skip',
        resample_filter     = [1,3,3,1],
        conv_clamp          = {conv_clamp},
        use_fp16            = False,
        fp16_channels_last  = False,{block_extra}
        **layer_kwargs,
    ):
        super().__init__()
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution, conv_clamp=conv_clamp)

@persistence.persistent_class
class SynthesisNetwork(torch.nn.Module):
    def __init__(self, w_dim, img_resolution, img_channels,
        channel_base    = 32768,
        channel_max     = 512,
        num_fp16_res    = {num_fp16_res},
        **block_kwargs,
    ):
        super().__init__()
        self.block_resolutions = [2 ** i for i in range(2, int(np.log2(img_resolution)) + 1)]

@persistence.persistent_class
class Generator(torch.nn.Module):
    def __init__(self, z_dim, c_dim, w_dim, img_resolution, img_channels,
        mapping_kwargs      = {{}},
        {synthesis_kwargs},
    ):
        super().__init__()
        self.synthesis = SynthesisNetwork(w_dim=w_dim, img_resolution=img_resolution, img_channels=img_channels)

    def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, **synthesis_kwargs):
        return self.synthesis(self.mapping(z, c, truncation_psi=truncation_psi), **synthesis_kwargs)

#----------------------------------------------------------------------------

@persistence.persistent_class
class DiscriminatorBlock(torch.nn.Module):
    def __init__(self, in_channels, tmp_channels, out_channels, resolution, img_channels, first_layer_idx,
        architecture        = 'resnet',
        activation          = 'lrelu',
        resample_filter     = [1,3,3,1],
        conv_clamp          = None,
        use_fp16            = False,
        fp16_channels_last  = False,
        freeze_layers       = 0,
    ):
        super().__init__()

@persistence.persistent_class
class DiscriminatorEpilogue(torch.nn.Module):
    def __init__(self, in_channels, cmap_dim, resolution, img_channels,
        architecture        = 'resnet',
        mbstd_group_size    = 4,
        mbstd_num_channels  = 1,
        activation          = 'lrelu',
        conv_clamp          = None,
    ):
        super().__init__()

@persistence.persistent_class
class Discriminator(torch.nn.Module):
    def __init__(self, c_dim, img_resolution, img_channels,
        architecture        = 'resnet',
        channel_base        = 32768,
        channel_max         = 512,
        num_fp16_res        = {num_fp16_res},
        conv_clamp          = {d_conv_clamp},
        cmap_dim            = None,
        block_kwargs        = {{}},
        mapping_kwargs      = {{}},
        epilogue_kwargs     = {{}},
    ):
        super().__init__()

#----------------------------------------------------------------------------
'''


def ada_networks_source() -> str:
    """Layout of stylegan2-ada-pytorch's training/networks.py: synthesis_kwargs={}, no fp16, no clamp by default."""
    return _HEADER.format(doc="Network architectures (StyleGAN2-ADA layout).", more_imports="") + \
        _STYLEGAN2_CLASSES.format(w_avg_beta=0.995, conv_clamp=None, block_extra="", num_fp16_res=0,
                                  d_conv_clamp=None, synthesis_kwargs="synthesis_kwargs    = {}")


def stylegan3_repo_stylegan2_source() -> str:
    """Layout of NVlabs/stylegan3's training/networks_stylegan2.py: num_fp16_res=4, conv_clamp=256, w_avg_beta=0.998
    and synthesis options as **synthesis_kwargs."""
    return _HEADER.format(doc="StyleGAN2 architecture as kept in the StyleGAN3 repository.", more_imports="") + \
        _STYLEGAN2_CLASSES.format(w_avg_beta=0.998, conv_clamp=256, num_fp16_res=4, d_conv_clamp=256,
                                  block_extra="\n        fused_modconv_default   = True,",
                                  synthesis_kwargs="**synthesis_kwargs")


_ALIAS_FREE = '''
@persistence.persistent_class
class MappingNetwork(torch.nn.Module):
    def __init__(self, z_dim, c_dim, w_dim, num_ws, num_layers=2, lr_multiplier=0.01, w_avg_beta=0.998):
        super().__init__()

@persistence.persistent_class
class SynthesisInput(torch.nn.Module):
    def __init__(self, w_dim, channels, size, sampling_rate, bandwidth):
        super().__init__()
        self.size = np.broadcast_to(np.asarray(size), [2])

@persistence.persistent_class
class SynthesisLayer(torch.nn.Module):
    def __init__(self, w_dim, is_torgb, is_critically_sampled, use_fp16, in_channels, out_channels, in_size,
        out_size, in_sampling_rate, out_sampling_rate, in_cutoff, out_cutoff, in_half_width, out_half_width,
        conv_kernel         = 3,
        filter_size         = 6,
        lrelu_upsampling    = 2,
        use_radial_filters  = False,
        conv_clamp          = 256,
        magnitude_ema_beta  = 0.999,
    ):
        super().__init__()

@persistence.persistent_class
class SynthesisNetwork(torch.nn.Module):
    def __init__(self, w_dim, img_resolution, img_channels,
        channel_base        = 32768,
        channel_max         = 512,
        num_layers          = 14,
        num_critical        = 2,
        first_cutoff        = 2,
        first_stopband      = 2**2.1,
        last_stopband_rel   = 2**0.3,
        margin_size         = 10,
        output_scale        = 0.25,
        num_fp16_res        = 4,
        **layer_kwargs,
    ):
        super().__init__()

@persistence.persistent_class
class Generator(torch.nn.Module):
    def __init__(self, z_dim, c_dim, w_dim, img_resolution, img_channels, mapping_kwargs={}, **synthesis_kwargs):
        super().__init__()
'''


def stylegan3_alias_free_source() -> str:
    """Layout of NVlabs/stylegan3's training/networks_stylegan3.py (the alias-free generator)."""
    imports = "import scipy.signal\nimport scipy.optimize\nfrom torch_utils.ops import filtered_lrelu\n"
    return _HEADER.format(doc="Alias-free generator architecture.", more_imports=imports) + _ALIAS_FREE


_AUGMENT = '''# Test source with the layout of an augmentation module; never executed.

import numpy as np
import scipy.signal
import torch
from torch_utils import persistence
from torch_utils import misc
from torch_utils.ops import upfirdn2d

#----------------------------------------------------------------------------
# Low-pass filter taps by name (values made up for the test).

filter_taps = {
    'box2':  [0.5, 0.5],
    'tri3':  [0.25, 0.5, 0.25],
    'neg4':  [-0.125, 0.375, 0.875, -0.125],
    'neg6':  [0.03, -0.09, -0.14, 0.46, 0.81, -(0.07)],
}
band_weights = (10, 1, 1, 1)
default_bands = {'lo', 'mid', 'hi'}
eps = -1e-8
root2 = 2 ** 0.5
nested = {'a': [(1, -2), {'b': [3.5, -4e-3]}], 'c': None, 'd': True, 'e': b'raw'}
float32 = np.float32

#----------------------------------------------------------------------------

def translate2d(tx, ty, **kwargs):
    return misc.constant(np.asarray([[1, 0, tx], [0, 1, ty], [0, 0, 1]]), **kwargs)

def scale2d_inv(sx, sy, **kwargs):
    return translate2d(1 / sx, 1 / sy, **kwargs)

#----------------------------------------------------------------------------

@persistence.persistent_class
class AugmentPipe(torch.nn.Module):
    MAX_BANDS = 4

    def __init__(self,
        xflip=0, rotate90=0, xint=0, xint_max=0.125,
        scale=0, rotate=0, aniso=0, xfrac=0, scale_std=0.2, rotate_max=1, aniso_std=0.2, xfrac_std=0.125,
        brightness=0, contrast=0, lumaflip=0, hue=0, saturation=0,
        imgfilter=0, imgfilter_bands=[1,1,1,1], imgfilter_std=1,
        noise=0, cutout=0, noise_std=0.1, cutout_size=0.5,
    ):
        super().__init__()
        self.register_buffer('p', torch.ones([]))
        self.xflip = float(xflip)
        self.register_buffer('Hz_geom', upfirdn2d.setup_filter(filter_taps['neg6']))

    def forward(self, images, debug_percentile=None):
        return images
'''


def augment_source() -> str:
    """Layout of training/augment.py: module-level literal tables (negative numbers, nested containers), helper
    functions and the persistent AugmentPipe class."""
    return _AUGMENT


class AugmentPipe(torch.nn.Module):
    """A stand-in for the reference augmentation pipeline's state: the buffers and attributes a snapshot holds."""

    def __init__(self, **kwargs):
        super().__init__()
        self.init_kwargs = dict(kwargs)
        self.register_buffer("p", torch.tensor(0.3125))
        self.register_buffer("Hz_geom", torch.linspace(-1, 1, 12))
        self.register_buffer("Hz_fbank", torch.eye(4, 27))
        for name, value in kwargs.items():
            setattr(self, name, value if isinstance(value, list) else float(value))


ADA_AUGMENT_KWARGS = dict(xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1, brightness=1,
                          contrast=1, lumaflip=1, hue=1, saturation=1)


def write_training_snapshot(path: str | Path, G: torch.nn.Module, D: torch.nn.Module, G_ema: torch.nn.Module, *,
                            networks_src: str | None = None, init_kwargs: dict[str, dict] | None = None,
                            protocol: int = 3) -> Path:
    """A full training snapshot as the reference training loops write it: G, D, G_ema, augment_pipe (a persistent
    AugmentPipe embedding the augmentation module's source) and training_set_kwargs."""
    src = networks_src or ada_networks_source()
    return write_reference_pickle(
        path, {"G": G, "D": D, "G_ema": G_ema}, init_kwargs=init_kwargs, protocol=protocol,
        module_src={"G": src, "D": src, "G_ema": src, "augment_pipe": augment_source()},
        extra={"augment_pipe": AugmentPipe(**ADA_AUGMENT_KWARGS),
               "training_set_kwargs": {"class_name": "training.dataset.ImageFolderDataset", "path": "/data/faces.zip",
                                       "use_labels": G.init_kwargs["c_dim"] > 0, "max_size": 70000, "xflip": False,
                                       "resolution": G.init_kwargs["img_resolution"]}})
