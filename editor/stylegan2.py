"""StyleGAN2-ADA generator and discriminator in plain PyTorch.

Parameter and buffer names, constructor arguments and arithmetic follow the public ADA-PyTorch layout, so every
published state dict loads with `strict=True` and gives the same images (see tests/test_stylegan2.py, which compares
with outputs of the reference implementation). No custom CUDA extension is needed.

    G = Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=1024, img_channels=3)
    ws = G.mapping(z, None, truncation_psi=0.7)          # [N, num_ws, w_dim]
    img = G.synthesis(ws, noise_mode='const')             # [N, 3, H, W], about [-1, 1]

Differences from the reference, all opt-in or numerically neutral: noise defaults to 'const' (deterministic);
fp16 blocks are used only on CUDA; `synthesis(..., stop_resolution=R)` returns the skip-architecture image
accumulated up to resolution R (a cheap preview); styles can be computed once and passed back in (`compute_styles`);
`synthesis.run_blocks` stops after / resumes from a block; one sample on a CPU with autograd off takes an inference
fast path (`SynthesisNetwork.fast_path_applies`: same images up to float rounding, 2-3x faster there; its 3x3
convolutions with many channels as Winograd F(4x4, 3x3), `editor.winograd`), optionally in bfloat16 (`dtype=`,
approximate previews).
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field

import torch
from torch import nn

from editor import ops, winograd


# ----------------------------------------------------------------------------------------------------------------------
# Named configurations (constructor arguments of Generator / Discriminator).


@dataclass(frozen=True)
class NetworkConfig:
    """Constructor arguments shared by a generator and its discriminator."""

    z_dim: int = 512  # input latent size
    w_dim: int = 512  # intermediate latent size
    img_resolution: int = 1024  # output resolution (power of two)
    img_channels: int = 3
    mapping_layers: int = 8  # fully connected layers in the mapping network
    channel_base: int = 32768  # channels at resolution r: min(channel_base // r, channel_max)
    channel_max: int = 512
    num_fp16_res: int = 4  # highest resolutions run in fp16 on CUDA
    conv_clamp: float | None = 256
    mbstd_group_size: int = 4  # discriminator minibatch-std group
    extra: dict = field(default_factory=dict)  # further mapping kwargs (e.g. lr_multiplier)

    def generator_kwargs(self) -> dict:
        return dict(
            z_dim=self.z_dim, c_dim=0, w_dim=self.w_dim, img_resolution=self.img_resolution,
            img_channels=self.img_channels,
            mapping_kwargs=dict(num_layers=self.mapping_layers, **self.extra),
            synthesis_kwargs=dict(channel_base=self.channel_base, channel_max=self.channel_max,
                                  num_fp16_res=self.num_fp16_res, conv_clamp=self.conv_clamp),
        )

    def discriminator_kwargs(self) -> dict:
        return dict(
            c_dim=0, img_resolution=self.img_resolution, img_channels=self.img_channels, architecture="resnet",
            channel_base=self.channel_base, channel_max=self.channel_max, num_fp16_res=self.num_fp16_res,
            conv_clamp=self.conv_clamp, epilogue_kwargs=dict(mbstd_group_size=self.mbstd_group_size),
        )


CONFIGS: dict[str, NetworkConfig] = {
    # NVIDIA's published StyleGAN2 FFHQ models (config-f layout as converted to ADA-PyTorch).
    "ffhq-1024": NetworkConfig(img_resolution=1024, channel_base=32768),
    "ffhq-512": NetworkConfig(img_resolution=512, channel_base=16384),
    "ffhq-256": NetworkConfig(img_resolution=256, channel_base=16384),
    # The fixture / test size: 32 px, 8 ws, tiny channels.
    "small": NetworkConfig(z_dim=32, w_dim=32, img_resolution=32, mapping_layers=2, channel_base=512, channel_max=32,
                           num_fp16_res=0),
    # Demo-world sizes (trained by this project on toon faces).
    "toon-64": NetworkConfig(z_dim=128, w_dim=128, img_resolution=64, mapping_layers=4, channel_base=8192,
                             channel_max=128, num_fp16_res=0),
    # The bundled demo generator (trained by distillation of the renderer, editor.train.distill): 4.6 M parameters,
    # 32 channels at 128 px, a full-rate mapping network (lr multiplier 1: it must undo T's mixing).
    "toon-128": NetworkConfig(z_dim=256, w_dim=256, img_resolution=128, mapping_layers=8, channel_base=4096,
                              channel_max=256, num_fp16_res=0, extra={"lr_multiplier": 1.0}),
}


# On CPU, blocks from this resolution up run channels-last (see SynthesisBlock.forward).
FAST_LAYOUT_MIN_RES = 64


def _version(t: torch.Tensor) -> int:
    """A tensor's in-place version counter (inference-mode tensors have none: -1)."""
    try:
        return t._version
    except RuntimeError:
        return -1


class _DerivedCache:
    """Tensors derived from a module's parameters (scaled bias, channels-last weight, kernel energies, ...) for the
    inference fast path, rebuilt when any source tensor changes (storage or in-place version, e.g. after
    `load_state_dict`, an EMA update or `.to(device)`). Not part of the state dict."""

    def __init__(self):
        self._items: dict = {}

    def get(self, name, sources: tuple, build):
        key = tuple((t.data_ptr(), _version(t), t.dtype, t.device) for t in sources)
        hit = self._items.get(name)
        if hit is not None and hit[0] == key:
            return hit[1]
        with torch.inference_mode(False), torch.no_grad():
            value = build()
        self._items[name] = (key, value)
        return value

    def clear(self) -> None:
        self._items.clear()

# ----------------------------------------------------------------------------------------------------------------------
# Layers.


class FullyConnectedLayer(nn.Module):
    """Dense layer with equalised learning rate: weights stored at N(0, 1/lr²), scaled at run time."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, activation: str = "linear",
                 lr_multiplier: float = 1.0, bias_init: float = 0.0):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.weight = nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias
        if b is not None:
            b = b.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return ops.bias_act(x.matmul(w.t()), b, act=self.activation)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, activation={self.activation}"


class Conv2dLayer(nn.Module):
    """Convolution with equalised learning rate, optional FIR up/down-sampling, bias, activation and clamp."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True,
                 activation: str = "linear", up: int = 1, down: int = 1, resample_filter=(1, 3, 3, 1),
                 conv_clamp: float | None = None, channels_last: bool = False, trainable: bool = True):
        super().__init__()
        self.activation = activation
        self.up = up
        self.down = down
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", ops.setup_filter(resample_filter))
        self.padding = kernel_size // 2
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size ** 2)
        self.act_gain = ops.ACTIVATIONS[activation][1]
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        weight = torch.randn([out_channels, in_channels, kernel_size, kernel_size]).to(memory_format=memory_format)
        b = torch.zeros([out_channels]) if bias else None
        if trainable:
            self.weight = nn.Parameter(weight)
            self.bias = nn.Parameter(b) if b is not None else None
        else:
            self.register_buffer("weight", weight)
            self.register_buffer("bias", b)

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        w = self.weight * self.weight_gain
        x = ops.conv2d_resample(x, w.to(x.dtype), f=self.resample_filter, up=self.up, down=self.down,
                                padding=self.padding, flip_weight=(self.up == 1))
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return ops.bias_act(x, self.bias, act=self.activation, gain=self.act_gain * gain, clamp=clamp)


class MappingNetwork(nn.Module):
    """z (and optional class c) -> w, broadcast to num_ws copies, with truncation toward the tracked mean w_avg."""

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_ws: int | None, num_layers: int = 8,
                 embed_features: int | None = None, layer_features: int | None = None, activation: str = "lrelu",
                 lr_multiplier: float = 0.01, w_avg_beta: float | None = 0.995):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, c_dim, w_dim, num_ws
        self.num_layers = num_layers
        self.w_avg_beta = w_avg_beta
        if embed_features is None:
            embed_features = w_dim
        if c_dim == 0:
            embed_features = 0
        if layer_features is None:
            layer_features = w_dim
        features = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]
        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for idx in range(num_layers):
            layer = FullyConnectedLayer(features[idx], features[idx + 1], activation=activation,
                                        lr_multiplier=lr_multiplier)
            setattr(self, f"fc{idx}", layer)
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(self, z: torch.Tensor | None, c: torch.Tensor | None, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None, update_emas: bool = False) -> torch.Tensor:
        x = None
        if self.z_dim > 0:
            if z is None or z.ndim != 2 or z.shape[1] != self.z_dim:
                raise ValueError(f"z must be [N, {self.z_dim}], got {None if z is None else tuple(z.shape)}")
            x = ops.normalize_2nd_moment(z.to(torch.float32))
        if self.c_dim > 0:
            if c is None or c.ndim != 2 or c.shape[1] != self.c_dim:
                raise ValueError(f"c must be [N, {self.c_dim}], got {None if c is None else tuple(c.shape)}")
            y = ops.normalize_2nd_moment(self.embed(c.to(torch.float32)))
            x = torch.cat([x, y], dim=1) if x is not None else y
        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)  # [N, w_dim]
        if update_emas and self.w_avg_beta is not None:
            self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        if self.num_ws is not None:
            x = x.unsqueeze(1).repeat([1, self.num_ws, 1])  # [N, num_ws, w_dim]
        if truncation_psi != 1:
            if self.num_ws is None or truncation_cutoff is None:
                x = self.w_avg.lerp(x, truncation_psi)
            else:
                x = x.clone()
                x[:, :truncation_cutoff] = self.w_avg.lerp(x[:, :truncation_cutoff], truncation_psi)
        return x


class SynthesisLayer(nn.Module):
    """Modulated 3x3 convolution (optionally 2x up-sampling), noise, bias, leaky ReLU, clamp."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, kernel_size: int = 3,
                 up: int = 1, use_noise: bool = True, activation: str = "lrelu", resample_filter=(1, 3, 3, 1),
                 conv_clamp: float | None = None, channels_last: bool = False):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.resolution = resolution
        self.up = up
        self.use_noise = use_noise
        self.activation = activation
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.register_buffer("resample_filter", ops.setup_filter(resample_filter))
        self.padding = kernel_size // 2
        self.act_gain = ops.ACTIVATIONS[activation][1]
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.weight = nn.Parameter(
            torch.randn([out_channels, in_channels, kernel_size, kernel_size]).to(memory_format=memory_format))
        if use_noise:
            self.register_buffer("noise_const", torch.randn([resolution, resolution]))
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self._derived = _DerivedCache()

    def forward_fast(self, x: torch.Tensor, w: torch.Tensor | None, noise_mode: str = "const", gain: float = 1.0,
                     styles: torch.Tensor | None = None) -> torch.Tensor:
        """Inference on CPU for one sample (x [1, I, H, W] channels-last, fp32 or bf16, autograd off), const or no
        noise: the same image as `forward` up to float rounding (ops' fast-path notes), in fewer passes."""
        if styles is None:
            styles = self.affine(w)  # [1, in_channels]
        g = self.act_gain * gain  # folded into weight, bias and noise: the activation is positively homogeneous
        dtype = x.dtype
        energy = self._derived.get("energy", (self.weight,), lambda: ops.kernel_energy(self.weight))
        bias = self._derived.get(("bias", g, dtype), (self.bias,), lambda: (self.bias * g).to(dtype))
        s = styles[0].float()
        if self._winograd_applies(x):
            # Many channels, small image: Winograd F(4x4, 3x3) with the weight transformed once; the modulation
            # scales the input channels and the demodulation the output channels (they commute with the transforms).
            u = self._derived.get("winograd", (self.weight,), lambda: winograd.weight_transform(self.weight))
            x = winograd.conv3x3(x, u, in_scale=s, out_scale=ops.demodulation(s, energy, g), bias=bias)
        elif self.up == 1:
            # The weight kept as [O, kh, kw, I]: modulating it is one contiguous pass, its permuted view [O, I, kh, kw]
            # is the channels-last weight the convolution wants.
            weight = self._derived.get("weight_ohwi", (self.weight,),
                                       lambda: self.weight.permute(0, 2, 3, 1).contiguous())
            w = torch.mul(weight, ops.modulation_scale(s, energy, g)[:, None, None, :]).to(dtype).permute(0, 3, 1, 2)
            x = torch.nn.functional.conv2d(x, w, bias, padding=self.padding)
        else:
            # Transposed convolution weight [I, O, kh, kw] kept as [I, kh, kw, O] (channels-last).
            weight = self._derived.get("weight_ihwo", (self.weight,),
                                       lambda: self.weight.permute(1, 2, 3, 0).contiguous())
            scale = ops.modulation_scale(s, energy, g).t().contiguous()  # [I, O]
            w = torch.mul(weight, scale[:, None, None, :]).to(dtype).permute(0, 3, 1, 2)
            fir = self._derived.get(("fir", dtype), (self.resample_filter,), lambda: ops.fir_depthwise_weight(
                self.resample_filter, self.out_channels, self.up ** 2, dtype))
            pad = ops.up_padding(self.resample_filter, self.up, self.weight.shape[-1], self.padding)
            x = ops.conv_up_fir(x, w, fir, pad, up=self.up, bias=bias)
        if self.use_noise and noise_mode == "const":
            x.add_(self._derived.get(("noise", g, dtype), (self.noise_const, self.noise_strength),
                                     lambda: (self.noise_const * (self.noise_strength * g)).to(dtype)))
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return ops.bias_act(x, None, act=self.activation, gain=1.0, clamp=clamp, inplace=True)

    def _winograd_applies(self, x: torch.Tensor) -> bool:
        """Whether forward_fast takes the Winograd convolution (fp32, 3x3, no resampling, where it measured faster)."""
        return (self.up == 1 and x.dtype == torch.float32 and tuple(self.weight.shape[-2:]) == (3, 3)
                and self.padding == 1 and x.shape[2] == x.shape[3]
                and winograd.applies(self.in_channels, self.out_channels, x.shape[2]))

    def forward(self, x: torch.Tensor, w: torch.Tensor | None, noise_mode: str = "const", fused_modconv: bool = True,
                gain: float = 1.0, styles: torch.Tensor | None = None) -> torch.Tensor:
        if noise_mode not in ("random", "const", "none"):
            raise ValueError(f"noise_mode must be 'random', 'const' or 'none', got {noise_mode!r}")
        if styles is None:
            styles = self.affine(w)  # [N, in_channels]
        noise = None
        if self.use_noise and noise_mode == "random":
            noise = torch.randn([x.shape[0], 1, self.resolution, self.resolution], device=x.device) * self.noise_strength
        if self.use_noise and noise_mode == "const":
            noise = self.noise_const * self.noise_strength
        x = ops.modulated_conv2d(x, self.weight, styles, noise=noise, up=self.up, padding=self.padding,
                                 resample_filter=self.resample_filter, flip_weight=(self.up == 1),
                                 fused_modconv=fused_modconv)
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return ops.bias_act(x, self.bias, act=self.activation, gain=self.act_gain * gain, clamp=clamp, inplace=True)


class ToRGBLayer(nn.Module):
    """Modulated 1x1 convolution to RGB (no demodulation), bias, clamp."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, kernel_size: int = 1,
                 conv_clamp: float | None = None, channels_last: bool = False):
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.weight = nn.Parameter(
            torch.randn([out_channels, in_channels, kernel_size, kernel_size]).to(memory_format=memory_format))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size ** 2)
        self._derived = _DerivedCache()

    def forward_fast(self, x: torch.Tensor, w: torch.Tensor | None, styles: torch.Tensor | None = None) -> torch.Tensor:
        """`forward` for one channels-last sample with autograd off (see SynthesisLayer.forward_fast); fp32 result."""
        if styles is None:
            styles = self.affine(w)
        weight = self._derived.get("weight_cl", (self.weight,),
                                   lambda: self.weight.contiguous(memory_format=torch.channels_last))
        scale = ops.modulation_scale(styles[0].float(), None, self.weight_gain)  # [1, I]
        wt = torch.mul(weight, scale[:, :, None, None]).to(x.dtype)
        bias = self._derived.get(("bias", x.dtype), (self.bias,), lambda: self.bias.to(x.dtype))
        y = torch.nn.functional.conv2d(x, wt, bias, padding=self.weight.shape[-1] // 2).float()
        return ops.bias_act(y, None, clamp=self.conv_clamp, inplace=True)

    def forward(self, x: torch.Tensor, w: torch.Tensor | None, fused_modconv: bool = True,
                styles: torch.Tensor | None = None) -> torch.Tensor:
        if styles is None:
            styles = self.affine(w)  # raw affine output, as compute_styles returns it
        styles = styles * self.weight_gain
        x = ops.modulated_conv2d(x, self.weight, styles, demodulate=False, fused_modconv=fused_modconv)
        return ops.bias_act(x, self.bias, clamp=self.conv_clamp, inplace=True)


class SynthesisBlock(nn.Module):
    """One resolution of the synthesis network: [const | 2x up conv0], conv1, ToRGB added to the up-sampled image."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, img_channels: int,
                 is_last: bool, architecture: str = "skip", resample_filter=(1, 3, 3, 1),
                 conv_clamp: float | None = None, use_fp16: bool = False, fp16_channels_last: bool = False,
                 **layer_kwargs):
        super().__init__()
        if architecture != "skip":
            raise ValueError(f"only the 'skip' synthesis architecture is implemented, got {architecture!r}")
        self.in_channels = in_channels
        self.w_dim = w_dim
        self.resolution = resolution
        self.img_channels = img_channels
        self.is_last = is_last
        self.architecture = architecture
        self.use_fp16 = use_fp16
        self.channels_last = use_fp16 and fp16_channels_last
        self.register_buffer("resample_filter", ops.setup_filter(resample_filter))
        self.num_conv = 0
        self.num_torgb = 0
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim=w_dim, resolution=resolution, up=2,
                                        resample_filter=resample_filter, conv_clamp=conv_clamp,
                                        channels_last=self.channels_last, **layer_kwargs)
            self.num_conv += 1
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim=w_dim, resolution=resolution,
                                    conv_clamp=conv_clamp, channels_last=self.channels_last, **layer_kwargs)
        self.num_conv += 1
        self.torgb = ToRGBLayer(out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp,
                                channels_last=self.channels_last)
        self.num_torgb += 1
        self._derived = _DerivedCache()

    @property
    def layer_names(self) -> list[str]:
        """Names of the style-consuming layers in ws order."""
        return (["conv0"] if self.in_channels != 0 else []) + ["conv1", "torgb"]

    def forward(self, x: torch.Tensor | None, img: torch.Tensor | None, ws: torch.Tensor | None,
                force_fp32: bool = False, fused_modconv: bool | None = None, noise_mode: str = "const",
                styles: dict[str, torch.Tensor] | None = None, batch: int | None = None,
                channels_last: bool | None = None):
        """ws: [N, num_conv + num_torgb, w_dim] (or None when every layer's styles are given).

        channels_last: activation layout; None = automatic (channels-last on CPU from 64 px up, where oneDNN's
        convolutions measured about 2x faster; the layout changes only the summation order).
        """
        dtype = torch.float16 if (self.use_fp16 and not force_fp32 and self._on_cuda()) else torch.float32
        if channels_last is None:
            channels_last = (self.channels_last and not force_fp32) or (
                not self._on_cuda() and self.resolution >= FAST_LAYOUT_MIN_RES)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        if batch is None:
            batch = ws.shape[0]
        if fused_modconv is None:
            # Reference rule (fused at inference in fp32), refined for speed: per-sample weights only pay off where the
            # activations outweigh the weights (high resolutions), and grouped convs lose channels-last's speed.
            act_size = self.resolution ** 2 * self.conv1.in_channels
            weight_size = self.conv1.in_channels * self.conv1.out_channels * 9
            fused_modconv = (not self.training) and (dtype == torch.float32 or batch == 1) and (
                batch == 1 or not channels_last) and (act_size >= weight_size or not channels_last)
        w_list = list(ws.unbind(dim=1)) if ws is not None else [None] * (self.num_conv + self.num_torgb)
        styles = styles or {}
        names = self.layer_names

        def s(i):  # styles for the i-th layer of this block, or None to compute from w
            return styles.get(names[i])

        if self.in_channels == 0:
            x = self.const.to(dtype=dtype).unsqueeze(0).repeat([batch, 1, 1, 1])
            x = x.contiguous(memory_format=memory_format)
            x = self.conv1(x, w_list[0], noise_mode=noise_mode, fused_modconv=fused_modconv, styles=s(0))
            i_rgb = 1
        else:
            x = x.to(dtype=dtype, memory_format=memory_format)
            x = self.conv0(x, w_list[0], noise_mode=noise_mode, fused_modconv=fused_modconv, styles=s(0))
            x = self.conv1(x, w_list[1], noise_mode=noise_mode, fused_modconv=fused_modconv, styles=s(1))
            i_rgb = 2
        if img is not None:
            img = ops.upsample2d(img, self.resample_filter)
        y = self.torgb(x, w_list[i_rgb], fused_modconv=fused_modconv, styles=s(i_rgb))
        y = y.to(dtype=torch.float32, memory_format=torch.contiguous_format)
        img = img + y if img is not None else y
        return x, img

    def forward_fast(self, x: torch.Tensor | None, img: torch.Tensor | None, ws: torch.Tensor | None,
                     noise_mode: str = "const", styles: dict[str, torch.Tensor] | None = None,
                     dtype: torch.dtype = torch.float32):
        """`forward` for one sample on CPU with autograd off (`SynthesisNetwork.fast_path_applies`): activations
        channels-last in `dtype` (float32, or bfloat16 for approximate previews), the skip image in float32."""
        w_list = list(ws.unbind(dim=1)) if ws is not None else [None] * (self.num_conv + self.num_torgb)
        styles = styles or {}
        names = self.layer_names
        if self.in_channels == 0:
            x = self._derived.get(("const", dtype), (self.const,), lambda: self.const.to(dtype).unsqueeze(0).contiguous(
                memory_format=torch.channels_last))
            x = self.conv1.forward_fast(x, w_list[0], noise_mode=noise_mode, styles=styles.get(names[0]))
        else:
            x = x.to(dtype=dtype, memory_format=torch.channels_last)
            x = self.conv0.forward_fast(x, w_list[0], noise_mode=noise_mode, styles=styles.get(names[0]))
            x = self.conv1.forward_fast(x, w_list[1], noise_mode=noise_mode, styles=styles.get(names[1]))
        i_rgb = len(names) - 1
        y = self.torgb.forward_fast(x, w_list[i_rgb], styles=styles.get(names[i_rgb]))  # [1, C, H, W] float32
        if img is None:
            return x, y.contiguous()
        taps = self._derived.get("taps", (self.resample_filter,), lambda: ops.separable_taps(self.resample_filter))
        img = ops.upsample2d(img, self.resample_filter) if taps is None else ops.upsample2d_polyphase(img, taps)
        return x, img.add_(y)

    def _on_cuda(self) -> bool:
        return self.conv1.weight.device.type == "cuda"


class SynthesisNetwork(nn.Module):
    """ws [N, num_ws, w_dim] -> image [N, C, H, W]."""

    def __init__(self, w_dim: int, img_resolution: int, img_channels: int, channel_base: int = 32768,
                 channel_max: int = 512, num_fp16_res: int = 0, **block_kwargs):
        super().__init__()
        if img_resolution < 4 or img_resolution & (img_resolution - 1):
            raise ValueError(f"img_resolution must be a power of two >= 4, got {img_resolution}")
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_resolution_log2 = int(math.log2(img_resolution))
        self.img_channels = img_channels
        self.block_resolutions = [2 ** i for i in range(2, self.img_resolution_log2 + 1)]
        channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions}
        fp16_resolution = max(2 ** (self.img_resolution_log2 + 1 - num_fp16_res), 8)
        self.num_ws = 0
        for res in self.block_resolutions:
            in_channels = channels[res // 2] if res > 4 else 0
            is_last = res == img_resolution
            block = SynthesisBlock(in_channels, channels[res], w_dim=w_dim, resolution=res,
                                   img_channels=img_channels, is_last=is_last, use_fp16=(res >= fp16_resolution),
                                   **block_kwargs)
            self.num_ws += block.num_conv
            if is_last:
                self.num_ws += block.num_torgb
            setattr(self, f"b{res}", block)

    def blocks(self):
        return [(res, getattr(self, f"b{res}")) for res in self.block_resolutions]

    def layer_ws_index(self) -> dict[str, int]:
        """Map each style-consuming layer ('b8.conv0', 'b8.torgb', ...) to the index of the w it reads in ws."""
        index, w_idx = {}, 0
        for res, block in self.blocks():
            for i, name in enumerate(block.layer_names):
                index[f"b{res}.{name}"] = w_idx + i
            w_idx += block.num_conv
        return index

    def affines(self) -> dict[str, FullyConnectedLayer]:
        """The affine (w -> style) layer of every style-consuming layer, by name."""
        return {key: getattr(getattr(self, key.split(".")[0]), key.split(".")[1]).affine
                for key in self.layer_ws_index()}

    def compute_styles(self, ws: torch.Tensor) -> dict[str, torch.Tensor]:
        """Raw affine outputs of every layer for ws [N, num_ws, w_dim]: {'b4.conv1': [N, C], ...}.

        Styles are affine in w, so an edit's style change can be cached per direction and added.
        """
        self._check_ws(ws)
        ws = ws.to(torch.float32)
        affines = self.affines()
        return {key: affines[key](ws[:, idx]) for key, idx in self.layer_ws_index().items()}

    def _check_ws(self, ws: torch.Tensor) -> None:
        if ws.ndim != 3 or ws.shape[1] != self.num_ws or ws.shape[2] != self.w_dim:
            raise ValueError(f"ws must be [N, {self.num_ws}, {self.w_dim}], got {tuple(ws.shape)}")

    def forward(self, ws: torch.Tensor | None = None, noise_mode: str = "const", force_fp32: bool = False,
                fused_modconv: bool | None = None, stop_resolution: int | None = None,
                styles: dict[str, torch.Tensor] | None = None, channels_last: bool | None = None,
                dtype: torch.dtype | None = None) -> torch.Tensor:
        """Render ws [N, num_ws, w_dim] (or precomputed `styles`) to images [N, C, H, W] (float32).

        stop_resolution: stop after the block of that resolution and return its accumulated skip image (a preview
        at lower resolution, consistent with the full image).
        dtype: torch.bfloat16 computes the activations in bfloat16 (CPU inference fast path only, see
        `fast_path_applies`): about twice as fast on CPUs with AVX512-BF16, approximate (an opt-in for previews).
        """
        _, img = self.run_blocks(ws, styles=styles, stop_resolution=stop_resolution, noise_mode=noise_mode,
                                 force_fp32=force_fp32, fused_modconv=fused_modconv, channels_last=channels_last,
                                 dtype=dtype)
        return img

    def fast_path_applies(self, batch: int, device: torch.device, noise_mode: str = "const",
                          fused_modconv: bool | None = None, channels_last: bool | None = None) -> bool:
        """Whether rendering takes the inference fast path: one sample on the CPU, eval mode, autograd off, const or
        no noise, and no explicit unfused / contiguous-layout request. Its images equal the reference path's up to
        float rounding (about 1e-6 for images in [-1, 1]; relative 1e-6 when activations reach the conv clamp).
        Batches keep the reference's grouped convolution; on a CPU rendering them one sample at a time is faster
        (`Engine` does)."""
        return (batch == 1 and device.type == "cpu" and not self.training and not torch.is_grad_enabled()
                and noise_mode in ("const", "none") and fused_modconv is not False and channels_last is not False)

    def run_blocks(self, ws: torch.Tensor | None = None, styles: dict[str, torch.Tensor] | None = None,
                   start: tuple[int, torch.Tensor, torch.Tensor] | None = None, stop_resolution: int | None = None,
                   noise_mode: str = "const", force_fp32: bool = False, fused_modconv: bool | None = None,
                   channels_last: bool | None = None, dtype: torch.dtype | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the blocks after `start` up to `stop_resolution` (default: all): (features x, skip image img).

        start: (res, x, img) as returned by an earlier call that stopped at block `res`, to continue from there
        (the blocks up to `res` must see the same codes: an edit that changes only later layers reuses them).
        """
        if ws is None and styles is None:
            raise ValueError("give ws or styles")
        if ws is not None:
            self._check_ws(ws)
            ws = ws.to(torch.float32)
            batch, device = ws.shape[0], ws.device
        else:
            first = next(iter(styles.values()))
            batch, device = first.shape[0], first.device
        if stop_resolution is not None and stop_resolution not in self.block_resolutions:
            raise ValueError(f"stop_resolution must be one of {self.block_resolutions}, got {stop_resolution}")
        if start is not None and start[0] not in self.block_resolutions:
            raise ValueError(f"start must name a block resolution of {self.block_resolutions}, got {start[0]}")
        if start is not None and stop_resolution is not None and stop_resolution <= start[0]:
            raise ValueError(f"stop_resolution {stop_resolution} must come after the start block {start[0]}")
        fast = self.fast_path_applies(batch, device, noise_mode, fused_modconv, channels_last)
        if dtype not in (None, torch.float32) and not (fast and dtype == torch.bfloat16):
            raise ValueError(f"dtype {dtype} needs bfloat16 and the CPU inference fast path (fast_path_applies)")
        x = img = None
        w_idx = 0
        started = start is None
        for res, block in self.blocks():
            if not started:
                if res == start[0]:
                    _, x, img = start
                    started = True
                w_idx += block.num_conv
                continue
            block_ws = ws.narrow(1, w_idx, block.num_conv + block.num_torgb) if ws is not None else None
            block_styles = None
            if styles is not None:
                block_styles = {k.split(".")[1]: v for k, v in styles.items() if k.startswith(f"b{res}.")}
            if fast:
                x, img = block.forward_fast(x, img, block_ws, noise_mode=noise_mode, styles=block_styles,
                                            dtype=dtype or torch.float32)
            else:
                x, img = block(x, img, block_ws, force_fp32=force_fp32, fused_modconv=fused_modconv,
                               noise_mode=noise_mode, styles=block_styles, batch=batch, channels_last=channels_last)
            w_idx += block.num_conv
            if stop_resolution is not None and res == stop_resolution:
                break
        return x, img


class Generator(nn.Module):
    """z [N, z_dim] (+ c) -> image. Attributes: z_dim, c_dim, w_dim, num_ws, img_resolution, img_channels."""

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, img_resolution: int, img_channels: int,
                 mapping_kwargs: dict | None = None, synthesis_kwargs: dict | None = None):
        super().__init__()
        mapping_kwargs = dict(mapping_kwargs or {})
        synthesis_kwargs = dict(synthesis_kwargs or {})
        self.init_kwargs = dict(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, img_resolution=img_resolution,
                                img_channels=img_channels, mapping_kwargs=dict(mapping_kwargs),
                                synthesis_kwargs=dict(synthesis_kwargs))
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.synthesis = SynthesisNetwork(w_dim=w_dim, img_resolution=img_resolution, img_channels=img_channels,
                                          **synthesis_kwargs)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=self.num_ws, **mapping_kwargs)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None, update_emas: bool = False, **synthesis_kwargs) -> torch.Tensor:
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                          update_emas=update_emas)
        return self.synthesis(ws, **synthesis_kwargs)


# ----------------------------------------------------------------------------------------------------------------------
# Discriminator.


class DiscriminatorBlock(nn.Module):
    """One resolution of the resnet discriminator: [fromRGB], conv0, 2x down conv1, with a 1x1 down skip."""

    def __init__(self, in_channels: int, tmp_channels: int, out_channels: int, resolution: int, img_channels: int,
                 first_layer_idx: int, architecture: str = "resnet", activation: str = "lrelu",
                 resample_filter=(1, 3, 3, 1), conv_clamp: float | None = None, use_fp16: bool = False,
                 fp16_channels_last: bool = False, freeze_layers: int = 0):
        super().__init__()
        if architecture not in ("resnet", "orig", "skip"):
            raise ValueError(f"unknown discriminator architecture {architecture!r}")
        self.in_channels = in_channels
        self.resolution = resolution
        self.img_channels = img_channels
        self.architecture = architecture
        self.use_fp16 = use_fp16
        self.channels_last = use_fp16 and fp16_channels_last
        self.register_buffer("resample_filter", ops.setup_filter(resample_filter))
        self.num_layers = 0

        def trainable_next():
            idx = first_layer_idx + self.num_layers
            self.num_layers += 1
            return idx >= freeze_layers

        if in_channels == 0 or architecture == "skip":
            self.fromrgb = Conv2dLayer(img_channels, tmp_channels, kernel_size=1, activation=activation,
                                       trainable=trainable_next(), conv_clamp=conv_clamp,
                                       channels_last=self.channels_last)
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, kernel_size=3, activation=activation,
                                 trainable=trainable_next(), conv_clamp=conv_clamp, channels_last=self.channels_last)
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, kernel_size=3, activation=activation, down=2,
                                 trainable=trainable_next(), resample_filter=resample_filter, conv_clamp=conv_clamp,
                                 channels_last=self.channels_last)
        if architecture == "resnet":
            self.skip = Conv2dLayer(tmp_channels, out_channels, kernel_size=1, bias=False, down=2,
                                    trainable=trainable_next(), resample_filter=resample_filter,
                                    channels_last=self.channels_last)

    def forward(self, x: torch.Tensor | None, img: torch.Tensor | None, force_fp32: bool = False):
        on_cuda = self.conv0.weight.device.type == "cuda"
        dtype = torch.float16 if (self.use_fp16 and not force_fp32 and on_cuda) else torch.float32
        memory_format = torch.channels_last if self.channels_last and not force_fp32 else torch.contiguous_format
        if x is not None:
            x = x.to(dtype=dtype, memory_format=memory_format)
        if self.in_channels == 0 or self.architecture == "skip":
            img = img.to(dtype=dtype, memory_format=memory_format)
            y = self.fromrgb(img)
            x = x + y if x is not None else y
            img = ops.downsample2d(img, self.resample_filter) if self.architecture == "skip" else None
        if self.architecture == "resnet":
            y = self.skip(x, gain=math.sqrt(0.5))
            x = self.conv0(x)
            x = self.conv1(x, gain=math.sqrt(0.5))
            x = y + x
        else:
            x = self.conv1(self.conv0(x))
        return x, img


class MinibatchStdLayer(nn.Module):
    """Appends the standard deviation over groups of samples as extra feature maps."""

    def __init__(self, group_size: int | None, num_channels: int = 1):
        super().__init__()
        self.group_size = group_size
        self.num_channels = num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = min(self.group_size, n) if self.group_size is not None else n
        if n % g:
            raise ValueError(f"batch size {n} must be divisible by the minibatch-std group size {g}")
        f = self.num_channels
        y = x.reshape(g, -1, f, c // f, h, w)  # [G, n/G, F, c, H, W]
        y = y - y.mean(dim=0)
        y = y.square().mean(dim=0)
        y = (y + 1e-8).sqrt()
        y = y.mean(dim=[2, 3, 4])  # [n/G, F]
        y = y.reshape(-1, f, 1, 1).repeat(g, 1, h, w)  # [N, F, H, W]
        return torch.cat([x, y], dim=1)


class DiscriminatorEpilogue(nn.Module):
    """4x4 head: minibatch-std, conv, fully connected, output logit (or projection onto the class embedding)."""

    def __init__(self, in_channels: int, cmap_dim: int, resolution: int, img_channels: int,
                 architecture: str = "resnet", mbstd_group_size: int | None = 4, mbstd_num_channels: int = 1,
                 activation: str = "lrelu", conv_clamp: float | None = None):
        super().__init__()
        self.cmap_dim = cmap_dim
        self.architecture = architecture
        if architecture == "skip":
            self.fromrgb = Conv2dLayer(img_channels, in_channels, kernel_size=1, activation=activation)
        self.mbstd = MinibatchStdLayer(mbstd_group_size, mbstd_num_channels) if mbstd_num_channels > 0 else None
        self.conv = Conv2dLayer(in_channels + mbstd_num_channels, in_channels, kernel_size=3, activation=activation,
                                conv_clamp=conv_clamp)
        self.fc = FullyConnectedLayer(in_channels * resolution ** 2, in_channels, activation=activation)
        self.out = FullyConnectedLayer(in_channels, 1 if cmap_dim == 0 else cmap_dim)

    def forward(self, x: torch.Tensor, img: torch.Tensor | None, cmap: torch.Tensor | None) -> torch.Tensor:
        x = x.to(dtype=torch.float32, memory_format=torch.contiguous_format)
        if self.architecture == "skip":
            x = x + self.fromrgb(img.to(torch.float32))
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.conv(x)
        x = self.fc(x.flatten(1))
        x = self.out(x)
        if self.cmap_dim > 0:
            x = (x * cmap).sum(dim=1, keepdim=True) * (1 / math.sqrt(self.cmap_dim))
        return x


class Discriminator(nn.Module):
    """image [N, C, H, W] (+ c) -> logits [N, 1]."""

    def __init__(self, c_dim: int, img_resolution: int, img_channels: int, architecture: str = "resnet",
                 channel_base: int = 32768, channel_max: int = 512, num_fp16_res: int = 0,
                 conv_clamp: float | None = None, cmap_dim: int | None = None, block_kwargs: dict | None = None,
                 mapping_kwargs: dict | None = None, epilogue_kwargs: dict | None = None):
        super().__init__()
        block_kwargs = dict(block_kwargs or {})
        mapping_kwargs = dict(mapping_kwargs or {})
        epilogue_kwargs = dict(epilogue_kwargs or {})
        self.init_kwargs = dict(c_dim=c_dim, img_resolution=img_resolution, img_channels=img_channels,
                                architecture=architecture, channel_base=channel_base, channel_max=channel_max,
                                num_fp16_res=num_fp16_res, conv_clamp=conv_clamp, cmap_dim=cmap_dim,
                                block_kwargs=dict(block_kwargs), mapping_kwargs=dict(mapping_kwargs),
                                epilogue_kwargs=dict(epilogue_kwargs))
        self.c_dim = c_dim
        self.img_resolution = img_resolution
        self.img_resolution_log2 = int(math.log2(img_resolution))
        self.img_channels = img_channels
        self.block_resolutions = [2 ** i for i in range(self.img_resolution_log2, 2, -1)]
        channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions + [4]}
        fp16_resolution = max(2 ** (self.img_resolution_log2 + 1 - num_fp16_res), 8)
        if cmap_dim is None:
            cmap_dim = channels[4]
        if c_dim == 0:
            cmap_dim = 0
        common = dict(img_channels=img_channels, architecture=architecture, conv_clamp=conv_clamp)
        layer_idx = 0
        for res in self.block_resolutions:
            in_channels = channels[res] if res < img_resolution else 0
            block = DiscriminatorBlock(in_channels, channels[res], channels[res // 2], resolution=res,
                                       first_layer_idx=layer_idx, use_fp16=(res >= fp16_resolution),
                                       **block_kwargs, **common)
            setattr(self, f"b{res}", block)
            layer_idx += block.num_layers
        if c_dim > 0:
            self.mapping = MappingNetwork(z_dim=0, c_dim=c_dim, w_dim=cmap_dim, num_ws=None, w_avg_beta=None,
                                          **mapping_kwargs)
        self.b4 = DiscriminatorEpilogue(channels[4], cmap_dim=cmap_dim, resolution=4, **epilogue_kwargs, **common)

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None, force_fp32: bool = False) -> torch.Tensor:
        if img.ndim != 4 or img.shape[1:] != (self.img_channels, self.img_resolution, self.img_resolution):
            raise ValueError(f"img must be [N, {self.img_channels}, {self.img_resolution}, {self.img_resolution}], "
                             f"got {tuple(img.shape)}")
        x = None
        for res in self.block_resolutions:
            x, img = getattr(self, f"b{res}")(x, img, force_fp32=force_fp32)
        cmap = self.mapping(None, c) if self.c_dim > 0 else None
        return self.b4(x, img, cmap)


def _seeded(build, seed: int | None):
    """Run a constructor with the global torch RNG seeded (and restored afterwards) when seed is given."""
    if seed is None:
        return build()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def build_generator(config: str | NetworkConfig, seed: int | None = 0) -> Generator:
    """A random-weight generator of a named configuration (for tests, benchmarks and demos without weights)."""
    cfg = CONFIGS[config] if isinstance(config, str) else config
    return _seeded(lambda: Generator(**cfg.generator_kwargs()), seed)


def build_discriminator(config: str | NetworkConfig, seed: int | None = 0) -> Discriminator:
    """A random-weight discriminator of a named configuration."""
    cfg = CONFIGS[config] if isinstance(config, str) else config
    return _seeded(lambda: Discriminator(**cfg.discriminator_kwargs()), seed)


# ----------------------------------------------------------------------------------------------------------------------
# State sizes without building (checkpoint loaders compare them with a file's tensors before allocating anything).


def _default(cls: type, name: str):
    return inspect.signature(cls).parameters[name].default


def _filter_size(f) -> int:
    """Values in the buffer `ops.setup_filter(f)` makes: n*n for n taps, the size itself for a 2-D filter."""
    if isinstance(f, (list, tuple)):
        return len(f) * (len(f) if not f or not isinstance(f[0], (list, tuple)) else len(f[0]))
    return 1


def _fc_size(in_features: int, out_features: int, bias: bool = True) -> int:
    return out_features * in_features + (out_features if bias else 0)


def _mapping_size(z_dim: int, c_dim: int, w_dim: int, broadcast: bool, kwargs: dict) -> int:
    """MappingNetwork(z_dim, c_dim, w_dim, num_ws=(something if broadcast else None), **kwargs)."""
    def get(name: str):
        return kwargs.get(name, _default(MappingNetwork, name))

    num_layers = get("num_layers")
    embed = 0 if c_dim == 0 else (w_dim if get("embed_features") is None else get("embed_features"))
    layer = w_dim if get("layer_features") is None else get("layer_features")
    features = [z_dim + embed] + [layer] * (num_layers - 1) + [w_dim]
    size = _fc_size(c_dim, embed) if c_dim > 0 else 0
    size += sum(_fc_size(features[i], features[i + 1]) for i in range(num_layers))
    return size + (w_dim if broadcast and get("w_avg_beta") is not None else 0)


def _channels(channel_base: int, channel_max: int, resolutions: list[int]) -> dict[int, int]:
    channels = {res: min(channel_base // res, channel_max) for res in resolutions}
    empty = [res for res, c in channels.items() if c < 1]
    if empty:
        raise ValueError(f"channel_base {channel_base} leaves no channels at resolution {max(empty)}")
    return channels


def generator_state_size(z_dim: int, c_dim: int, w_dim: int, img_resolution: int, img_channels: int,
                         mapping_kwargs: dict | None = None, synthesis_kwargs: dict | None = None,
                         constants: bool = True) -> int:
    """Number of values in `Generator(...).state_dict()` for these arguments, computed without building it.

    constants=False leaves out the resample filters (fixed buffers that TensorFlow files do not store).
    Mirrors the constructors above; tests/test_loader_bounds.py checks it against real networks.
    """
    syn = dict(synthesis_kwargs or {})
    log2 = int(math.log2(img_resolution))
    resolutions = [2 ** i for i in range(2, log2 + 1)]
    channels = _channels(syn.get("channel_base", _default(SynthesisNetwork, "channel_base")),
                         syn.get("channel_max", _default(SynthesisNetwork, "channel_max")), resolutions)
    block_filter = _filter_size(syn.get("resample_filter", _default(SynthesisBlock, "resample_filter")))
    layer_filter = _filter_size(_default(SynthesisLayer, "resample_filter"))
    kernel = syn.get("kernel_size", _default(SynthesisLayer, "kernel_size"))
    noise = syn.get("use_noise", _default(SynthesisLayer, "use_noise"))

    def layer(cin: int, cout: int, res: int, filt: int) -> int:  # SynthesisLayer
        return _fc_size(w_dim, cin) + (filt if constants else 0) + cout * cin * kernel * kernel \
            + ((res * res + 1) if noise else 0) + cout

    size = 0
    for res in resolutions:
        cin, cout = (channels[res // 2] if res > 4 else 0), channels[res]
        size += block_filter if constants else 0
        size += cout * res * res if cin == 0 else layer(cin, cout, res, block_filter)
        size += layer(cout, cout, res, layer_filter)
        size += _fc_size(w_dim, cout) + img_channels * cout + img_channels  # torgb (1x1)
    return size + _mapping_size(z_dim, c_dim, w_dim, True, dict(mapping_kwargs or {}))


def discriminator_state_size(c_dim: int, img_resolution: int, img_channels: int, architecture: str = "resnet",
                             channel_base: int = 32768, channel_max: int = 512, num_fp16_res: int = 0,
                             conv_clamp: float | None = None, cmap_dim: int | None = None,
                             block_kwargs: dict | None = None, mapping_kwargs: dict | None = None,
                             epilogue_kwargs: dict | None = None, constants: bool = True) -> int:
    """Number of values in `Discriminator(...).state_dict()` for these arguments, computed without building it."""
    block_kwargs, epilogue_kwargs = dict(block_kwargs or {}), dict(epilogue_kwargs or {})
    log2 = int(math.log2(img_resolution))
    resolutions = [2 ** i for i in range(log2, 2, -1)]
    channels = _channels(channel_base, channel_max, resolutions + [4])
    cmap = 0 if c_dim == 0 else (channels[4] if cmap_dim is None else cmap_dim)
    block_filter = _filter_size(block_kwargs.get("resample_filter", _default(DiscriminatorBlock, "resample_filter")))
    conv_filter = _filter_size(_default(Conv2dLayer, "resample_filter"))

    def conv(cin: int, cout: int, k: int, filt: int = conv_filter, bias: bool = True) -> int:  # Conv2dLayer
        return (filt if constants else 0) + cout * cin * k * k + (cout if bias else 0)

    size = 0
    for res in resolutions:
        cin, tmp, cout = (channels[res] if res < img_resolution else 0), channels[res], channels[res // 2]
        size += block_filter if constants else 0
        if cin == 0 or architecture == "skip":
            size += conv(img_channels, tmp, 1)
        size += conv(tmp, tmp, 3) + conv(tmp, cout, 3, block_filter)
        if architecture == "resnet":
            size += conv(tmp, cout, 1, block_filter, bias=False)
    if c_dim > 0:
        size += _mapping_size(0, c_dim, cmap, False, dict(mapping_kwargs or {}))
    c4 = channels[4]
    mbstd = epilogue_kwargs.get("mbstd_num_channels", _default(DiscriminatorEpilogue, "mbstd_num_channels"))
    if architecture == "skip":
        size += conv(img_channels, c4, 1)
    size += conv(c4 + mbstd, c4, 3) + _fc_size(c4 * 16, c4) + _fc_size(c4, 1 if cmap == 0 else cmap)
    return size
