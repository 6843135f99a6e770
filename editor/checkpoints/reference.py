"""What a reference pickle's networks are: constructor arguments and reference-named state dicts, from
StyleGAN2-ADA / StyleGAN3-repo persistent objects and from old TensorFlow StyleGAN2 networks."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from editor.checkpoints.build import POSITIONAL_ARGS, plain
from editor.checkpoints.errors import CheckpointError
from editor.checkpoints.unpickle import PersistentObject, TFNetwork


def state_from_persistent(obj: PersistentObject, prefix: str = "") -> dict[str, torch.Tensor]:
    """Flatten a persistent module's nested `_parameters` / `_buffers` / `_modules` into a state dict."""
    out: dict[str, torch.Tensor] = {}
    state = obj.state
    non_persistent = state.get("_non_persistent_buffers_set") or set()
    for group in ("_parameters", "_buffers"):
        tensors = state.get(group) or {}
        if not isinstance(tensors, dict):
            raise CheckpointError(f"{prefix or obj.class_name}: {group} is {type(tensors).__name__}, not a dict")
        for name, tensor in tensors.items():
            if tensor is None or (group == "_buffers" and name in non_persistent):
                continue
            if not isinstance(tensor, torch.Tensor):
                raise CheckpointError(f"{prefix}{name}: expected a tensor, found {type(tensor).__name__}")
            out[prefix + name] = tensor
    modules = state.get("_modules") or {}
    if not isinstance(modules, dict):
        raise CheckpointError(f"{prefix or obj.class_name}: _modules is {type(modules).__name__}, not a dict")
    for name, module in modules.items():
        if module is None:
            continue
        if not isinstance(module, PersistentObject):
            raise CheckpointError(f"{prefix}{name}: sub-module of type {type(module).__name__} is not supported")
        out.update(state_from_persistent(module, f"{prefix}{name}."))
    return out


def init_kwargs_from_persistent(obj: PersistentObject) -> dict[str, Any]:
    """The constructor arguments recorded in a persistent object (`_init_args` named by the reference order)."""
    args = obj.state.get("_init_args") or ()
    kwargs = obj.state.get("_init_kwargs") or {}
    if not isinstance(args, (tuple, list)) or not isinstance(kwargs, dict):
        raise CheckpointError(f"{obj.class_name}: _init_args / _init_kwargs have unexpected types")
    names = POSITIONAL_ARGS.get(obj.class_name)
    if args and (names is None or len(args) > len(names)):
        raise CheckpointError(f"{obj.class_name}: {len(args)} positional constructor arguments cannot be named")
    merged = dict(zip(names or (), args))
    merged.update(kwargs)
    return plain(merged, f"{obj.class_name} init_kwargs")


# Old TensorFlow StyleGAN2 generators (public name mapping; see the fixture README)

_TF_IGNORED = ("lod", "synthesis/lod")  # progressive-growing leftovers with no counterpart


def generator_kwargs_from_tf(net: TFNetwork) -> dict[str, Any]:
    """Constructor arguments of the equivalent Generator, from the TF networks' static kwargs (TF defaults)."""
    kw = net.all_static_kwargs()

    def get(name: str, default: Any) -> Any:
        value = kw.get(name, default)
        return default if value is None else value

    if get("label_size", 0):
        raise CheckpointError("conditional TensorFlow generators (label_size > 0) are not supported")
    if get("fmap_decay", 1.0) != 1.0 or get("fmap_min", 1) != 1:
        raise CheckpointError("TensorFlow generator with fmap_decay != 1 or fmap_min != 1 is not supported")
    if get("architecture", "skip") != "skip" or not get("normalize_latents", True):
        raise CheckpointError("only 'skip' TensorFlow generators with normalized latents are supported")
    w_dim = int(get("dlatent_size", 512))
    return plain({
        "z_dim": int(get("latent_size", 512)), "c_dim": 0, "w_dim": w_dim,
        "img_resolution": int(get("resolution", 1024)), "img_channels": int(get("num_channels", 3)),
        "mapping_kwargs": {"num_layers": int(get("mapping_layers", 8)),
                           "layer_features": int(get("mapping_fmaps", w_dim)),
                           "activation": get("mapping_nonlinearity", "lrelu"),
                           "lr_multiplier": float(get("mapping_lrmul", 0.01)),
                           "w_avg_beta": float(get("dlatent_avg_beta", 0.995))},
        "synthesis_kwargs": {"channel_base": int(get("fmap_base", 16 << 10)) * 2,
                             "channel_max": int(get("fmap_max", 512)), "num_fp16_res": 0, "conv_clamp": None,
                             "resample_filter": list(get("resample_kernel", [1, 3, 3, 1])),
                             "use_noise": True, "activation": get("nonlinearity", "lrelu")},
    })


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
