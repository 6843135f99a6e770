"""What a reference pickle's networks are: constructor arguments and reference-named state dicts, from
StyleGAN2-ADA / StyleGAN3-repo persistent objects and from old TensorFlow StyleGAN2 networks.

Arguments a file does not record take the defaults of the code that wrote it, read (never executed) from the
module source the file embeds: NVlabs/stylegan3's `networks_stylegan2.py` defaults to num_fp16_res=4 and
conv_clamp=256 where stylegan2-ada-pytorch (and this project) default to 0 and None.
"""

from __future__ import annotations

import ast
import functools
import inspect
import math
from typing import Any

import numpy as np
import torch

from editor import stylegan2
from editor.checkpoints.build import POSITIONAL_ARGS, normalize_generator_kwargs, plain
from editor.checkpoints.errors import CheckpointError
from editor.checkpoints.unpickle import PersistentObject, TFNetwork

MAX_MODULE_DEPTH = 16  # nesting of sub-modules (FFHQ generators: 4, e.g. synthesis.b8.conv0.affine)
MAX_MODULES = 10_000  # sub-modules in one network (FFHQ 1024 generator: 80)


def state_from_persistent(obj: PersistentObject) -> dict[str, torch.Tensor]:
    """Flatten a persistent module's nested `_parameters` / `_buffers` / `_modules` into a state dict.

    Refuses a module that contains itself, nests deeper than MAX_MODULE_DEPTH or has more than MAX_MODULES
    sub-modules (a pickle can share one sub-module many times over).
    """
    out: dict[str, torch.Tensor] = {}
    pending = [("", obj, ())]
    visited = 0
    while pending:
        prefix, module, path = pending.pop()
        where = prefix[:-1] or module.class_name
        visited += 1
        if visited > MAX_MODULES:
            raise CheckpointError(f"{obj.class_name}: more than {MAX_MODULES:,} sub-modules; refusing")
        if len(path) > MAX_MODULE_DEPTH:
            raise CheckpointError(f"{where}: sub-modules nested deeper than {MAX_MODULE_DEPTH}; refusing")
        state = module.state
        non_persistent = state.get("_non_persistent_buffers_set") or set()
        for group in ("_parameters", "_buffers"):
            tensors = state.get(group) or {}
            if not isinstance(tensors, dict):
                raise CheckpointError(f"{where}: {group} is {type(tensors).__name__}, not a dict")
            for name, tensor in tensors.items():
                if tensor is None or (group == "_buffers" and name in non_persistent):
                    continue
                if not isinstance(tensor, torch.Tensor):
                    raise CheckpointError(f"{prefix}{name}: expected a tensor, found {type(tensor).__name__}")
                out[prefix + str(name)] = tensor
        modules = state.get("_modules") or {}
        if not isinstance(modules, dict):
            raise CheckpointError(f"{where}: _modules is {type(modules).__name__}, not a dict")
        for name, sub in reversed(modules.items()):
            if sub is None:
                continue
            if not isinstance(sub, PersistentObject):
                raise CheckpointError(f"{prefix}{name}: sub-module of type {type(sub).__name__} is not supported")
            if any(sub is p for p in (*path, module)):
                raise CheckpointError(f"{prefix}{name}: the network contains itself; refusing")
            pending.append((f"{prefix}{name}.", sub, (*path, module)))
    return out


# StyleGAN3 (alias-free) generators: their classes and the constructor arguments only they take.
_STYLEGAN3_CLASSES = {"SynthesisInput"}
_STYLEGAN3_KWARGS = {"magnitude_ema_beta", "num_critical", "first_cutoff", "first_stopband", "last_stopband_rel",
                     "margin_size", "output_scale", "conv_kernel", "use_radial_filters", "filter_size",
                     "lrelu_upsampling"}


@functools.lru_cache(maxsize=8)
def source_classes(module_src: str) -> dict[str, dict[str, Any]]:
    """Classes a module source defines, each with the literal default values of its constructor's keyword
    arguments: {'SynthesisNetwork': {'channel_base': 32768, 'num_fp16_res': 4, ...}, ...}.

    Parsed with `ast`, never executed; non-literal defaults are left out, an unparsable source gives {}.
    (The source was size-checked when the pickle was read.)
    """
    try:
        tree = ast.parse(module_src)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return {}
    out: dict[str, dict[str, Any]] = {}
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        out[node.name] = defaults = {}
        init = next((f for f in node.body if isinstance(f, ast.FunctionDef) and f.name == "__init__"), None)
        if init is None:
            continue
        args = init.args
        positional = [*args.posonlyargs, *args.args]
        pairs = list(zip(positional[len(positional) - len(args.defaults):], args.defaults))
        pairs += [(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None]
        for arg, default in pairs:
            try:
                defaults[arg.arg] = plain(ast.literal_eval(default))
            except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError, CheckpointError):
                continue
    return out


def _sub_modules(obj: PersistentObject) -> list[PersistentObject]:
    """The direct and second-level sub-modules (enough to see a StyleGAN3 synthesis input)."""
    out = []
    for sub in (obj.state.get("_modules") or {}).values() if isinstance(obj.state.get("_modules"), dict) else ():
        if isinstance(sub, PersistentObject):
            out.append(sub)
            modules = sub.state.get("_modules")
            out += [m for m in (modules.values() if isinstance(modules, dict) else ()) if isinstance(m, PersistentObject)]
    return out


def _refuse_stylegan3(obj: PersistentObject, kwargs: dict[str, Any]) -> None:
    flat = set(kwargs) | set(kwargs.get("synthesis_kwargs") or {}) if isinstance(kwargs, dict) else set()
    signs = sorted(flat & _STYLEGAN3_KWARGS)
    signs += sorted(c for c in _STYLEGAN3_CLASSES if c in source_classes(obj.module_src))
    signs += sorted({m.class_name for m in _sub_modules(obj)} & _STYLEGAN3_CLASSES)
    if obj.class_name == "Generator" and signs:
        raise CheckpointError(
            f"this is a StyleGAN3 (alias-free, config T or R) generator ({', '.join(dict.fromkeys(signs))}): StyleGAN3 "
            "networks are not supported; this editor runs StyleGAN2 / StyleGAN2-ADA generators (including StyleGAN2 "
            "networks trained with the stylegan3 repository, --cfg=stylegan2)")


# Where the reference classes' constructor defaults land in init_kwargs: network -> [(class in the source and in
# editor.stylegan2, path in init_kwargs, arguments)]. Arguments a parent passes explicitly are not listed.
_DEFAULT_SLOTS: dict[str, list[tuple[str, tuple[str, ...], tuple[str, ...]]]] = {
    "Generator": [
        ("MappingNetwork", ("mapping_kwargs",),
         ("num_layers", "embed_features", "layer_features", "activation", "lr_multiplier", "w_avg_beta")),
        ("SynthesisNetwork", ("synthesis_kwargs",), ("channel_base", "channel_max", "num_fp16_res")),
        ("SynthesisBlock", ("synthesis_kwargs",), ("architecture", "resample_filter", "conv_clamp",
                                                   "fp16_channels_last")),
        ("SynthesisLayer", ("synthesis_kwargs",), ("kernel_size", "use_noise", "activation")),
    ],
    "Discriminator": [
        ("Discriminator", (), ("architecture", "channel_base", "channel_max", "num_fp16_res", "conv_clamp",
                               "cmap_dim")),
        ("DiscriminatorBlock", ("block_kwargs",), ("activation", "resample_filter", "fp16_channels_last",
                                                   "freeze_layers")),
        ("DiscriminatorEpilogue", ("epilogue_kwargs",), ("mbstd_group_size", "mbstd_num_channels", "activation")),
        ("MappingNetwork", ("mapping_kwargs",), ("num_layers", "embed_features", "layer_features", "activation",
                                                 "lr_multiplier")),
    ],
}


def apply_source_defaults(class_name: str, kwargs: dict[str, Any], module_src: str) -> dict[str, Any]:
    """Fill the arguments `kwargs` does not record with the defaults of the embedded source, where they differ from
    this project's (generators come back with synthesis options in `synthesis_kwargs`)."""
    if class_name not in _DEFAULT_SLOTS:
        return kwargs
    if class_name == "Generator":
        kwargs = normalize_generator_kwargs(kwargs)
    classes = source_classes(module_src)
    for source_class, path, names in _DEFAULT_SLOTS[class_name]:
        theirs = classes.get(source_class) or {}
        ours = inspect.signature(getattr(stylegan2, source_class)).parameters
        for name in names:
            if name not in theirs or theirs[name] == plain(ours[name].default):
                continue
            node = kwargs
            for key in path:
                if node.get(key) is None:
                    node[key] = {}
                node = node[key]
            if isinstance(node, dict):
                node.setdefault(name, theirs[name])
    return kwargs


def init_kwargs_from_persistent(obj: PersistentObject) -> dict[str, Any]:
    """The constructor arguments of a persistent network: `_init_args` named by the reference order, `_init_kwargs`,
    and the defaults of the repository that wrote it (`apply_source_defaults`). Refuses StyleGAN3 generators."""
    args = obj.state.get("_init_args") or ()
    kwargs = obj.state.get("_init_kwargs") or {}
    if not isinstance(args, (tuple, list)) or not isinstance(kwargs, dict):
        raise CheckpointError(f"{obj.class_name}: _init_args / _init_kwargs have unexpected types")
    names = POSITIONAL_ARGS.get(obj.class_name)
    if args and (names is None or len(args) > len(names)):
        raise CheckpointError(f"{obj.class_name}: {len(args)} positional constructor arguments cannot be named")
    merged = plain({**dict(zip(names or (), args)), **kwargs}, f"{obj.class_name} init_kwargs")
    _refuse_stylegan3(obj, merged)
    return apply_source_defaults(obj.class_name, merged, obj.module_src)


# Old TensorFlow StyleGAN2 generators (public name mapping; see the fixture README)

_TF_IGNORED = ("lod", "synthesis/lod")  # progressive-growing leftovers with no counterpart


def generator_kwargs_from_tf(net: TFNetwork) -> dict[str, Any]:
    """Constructor arguments of the equivalent Generator, from the TF networks' static kwargs (TF defaults)."""
    kw = net.all_static_kwargs()

    def get(name: str, default: Any, kind: type | tuple[type, ...] = (int, float, str, bool, list, tuple)) -> Any:
        value = kw.get(name, default)
        if value is None:
            return default
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise CheckpointError(f"TensorFlow generator static kwarg {name} = {str(value)[:60]} is not "
                                  f"{getattr(kind, '__name__', 'a plain value')}")
        return value

    if get("label_size", 0, int):
        raise CheckpointError("conditional TensorFlow generators (label_size > 0) are not supported")
    if get("fmap_decay", 1.0, (int, float)) != 1.0 or get("fmap_min", 1, int) != 1:
        raise CheckpointError("TensorFlow generator with fmap_decay != 1 or fmap_min != 1 is not supported")
    if get("architecture", "skip", str) != "skip" or not get("normalize_latents", True, bool):
        raise CheckpointError("only 'skip' TensorFlow generators with normalized latents are supported")
    w_dim = get("dlatent_size", 512, int)
    return plain({
        "z_dim": get("latent_size", 512, int), "c_dim": 0, "w_dim": w_dim,
        "img_resolution": get("resolution", 1024, int), "img_channels": get("num_channels", 3, int),
        "mapping_kwargs": {"num_layers": get("mapping_layers", 8, int),
                           "layer_features": get("mapping_fmaps", w_dim, int),
                           "activation": get("mapping_nonlinearity", "lrelu", str),
                           "lr_multiplier": float(get("mapping_lrmul", 0.01, (int, float))),
                           "w_avg_beta": float(get("dlatent_avg_beta", 0.995, (int, float)))},
        "synthesis_kwargs": {"channel_base": get("fmap_base", 16 << 10, int) * 2,
                             "channel_max": get("fmap_max", 512, int), "num_fp16_res": 0, "conv_clamp": None,
                             "resample_filter": get("resample_kernel", [1, 3, 3, 1], (list, tuple)),
                             "use_noise": True, "activation": get("nonlinearity", "lrelu", str)},
    }, "TensorFlow generator static kwargs")


def tf_value_count(net: TFNetwork) -> int:
    """Number of values in a TF generator's variables that map onto the network (what check_config compares)."""
    return sum(int(v.size) for k, v in net.params().items() if k not in _TF_IGNORED)


def generator_state_from_tf(net: TFNetwork, template: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Reference-named state dict from TF variables; `template` (a freshly built network's state dict) supplies the
    constant resample filters TF computes instead of storing, and the list of names to fill."""
    params = net.params()
    used: set[str] = set()

    def take(name: str, transform=None) -> torch.Tensor:
        if name not in params:
            raise CheckpointError(f"TensorFlow generator has no variable {name!r}")
        used.add(name)
        value = params[name] if transform is None else transform(params[name])
        return torch.from_numpy(np.array(value, dtype=np.float32, order="C"))  # a copy; keeps 0-d shapes

    def conv_weight(flip: bool):  # HWIO -> OIHW, optionally flipped on both kernel axes (Conv0_up)
        return lambda a: (a[::-1, ::-1] if flip else a).transpose(3, 2, 0, 1)

    state: dict[str, torch.Tensor] = {"mapping.w_avg": take("dlatent_avg")}
    num_layers = sum(1 for k in template if k.startswith("mapping.fc") and k.endswith(".weight"))
    for i in range(num_layers):
        state[f"mapping.fc{i}.weight"] = take(f"mapping/Dense{i}/weight", np.transpose)
        state[f"mapping.fc{i}.bias"] = take(f"mapping/Dense{i}/bias")

    def layer(dst: str, src: str, flip: bool = False, noise: int | None = None) -> None:
        state[f"{dst}.weight"] = take(f"{src}/weight", conv_weight(flip))
        state[f"{dst}.affine.weight"] = take(f"{src}/mod_weight", np.transpose)
        state[f"{dst}.affine.bias"] = take(f"{src}/mod_bias", lambda a: a + 1)  # TF adds 1 at run time
        state[f"{dst}.bias"] = take(f"{src}/bias")
        if noise is not None and f"{dst}.noise_const" in template:
            state[f"{dst}.noise_strength"] = take(f"{src}/noise_strength")
            state[f"{dst}.noise_const"] = take(f"synthesis/noise{noise}", lambda a: a[0, 0])  # [1,1,R,R] -> [R,R]

    resolutions = sorted({int(k.split(".")[1][1:]) for k in template if k.startswith("synthesis.b")})
    for res in resolutions:
        src, dst = f"synthesis/{res}x{res}", f"synthesis.b{res}"
        log2 = int(math.log2(res))
        if res == 4:
            state[f"{dst}.const"] = take(f"{src}/Const/const", lambda a: a[0])  # [1,C,4,4] -> [C,4,4]
            layer(f"{dst}.conv1", f"{src}/Conv", noise=0)
        else:
            layer(f"{dst}.conv0", f"{src}/Conv0_up", flip=True, noise=2 * log2 - 5)
            layer(f"{dst}.conv1", f"{src}/Conv1", noise=2 * log2 - 4)
        layer(f"{dst}.torgb", f"{src}/ToRGB")
    for key, value in template.items():
        if key.endswith("resample_filter") and key not in state:
            state[key] = value.clone()
    leftover = sorted(set(params) - used - set(_TF_IGNORED))
    if leftover:
        raise CheckpointError(f"TensorFlow generator variables with no counterpart: {', '.join(leftover[:5])}")
    return state
