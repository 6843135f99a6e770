"""Winograd F(4x4, 3x3) convolution: the 3x3 convolutions of the CPU inference fast path with many channels.

A 3x3 convolution computes each 4x4 output tile from a 6x6 input tile. Winograd's minimal filtering does it with 36
multiplies per (input channel, output channel) pair where the direct convolution needs 144: the input tile and the
kernel are taken into a transformed space (B^T d B and G g G^T), multiplied elementwise there (summed over input
channels: 36 independent matrix products, one batched GEMM) and taken back (A^T m A). On this project's CPU the
direct fp32 convolution already runs near the core's FMA peak (~55 GMAC/s on one core), so fewer multiply-adds are
the only way to make it faster; the transforms are memory passes, which pay only where channels are many and the
image is not too large (measured in docs/benchmarks.md: 1.4-2.5x for 128-512 channels from 16 px, slower below 128
channels and below 16 px).

The matrices come from the Toom-Cook construction with the interpolation points 0, 1, -1, 2, -1/2 (and infinity),
rows balanced between B^T and G: the float32 error of one 256-channel convolution is ~1.2e-5 (about a direct
convolution's, far inside the 1e-4 the synthesis keeps to the reference), 2.5x smaller than with the textbook
points 0, +-1, +-2 (3.2e-5).
"""

from __future__ import annotations

from fractions import Fraction

import torch
import torch.nn.functional as F

ENABLED = True  # False: the fast path keeps the direct convolution everywhere (A/B benchmarks)
TILE = 4  # output tile side (m); the kernel side is 3, the input tile side 6
POINTS = (0, 1, -1, 2, Fraction(-1, 2))
# Where the transformed convolution beats oneDNN's direct one on the project's CPU (docs/benchmarks.md):
MIN_CHANNELS = 128  # below, the GEMMs are too thin to pay for the transforms' memory passes
MIN_RESOLUTION = 16  # below, too few tiles
BAND_FLOATS = 1 << 21  # the transformed input of one band of tile rows (8 MB): larger ones leave the cache


def transform_matrices(points=POINTS, m: int = TILE, r: int = 3) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(A^T [m, n], G [n, r], B^T [n, n]), float64, n = m + r - 1, for the correlation y = A^T[(G g) * (B^T d)] of a
    length-n signal d with an r-tap kernel g (torch's conv2d semantics), from n - 1 finite points and infinity.

    Toom-Cook: with V the n x n Vandermonde matrix of the points (infinity's row picks the leading coefficient) and
    Vg, Vh its first r and m columns (same convention), linear convolution is s = V^-1[(Vg g) * (Vh h)]; its
    transpose in h gives the correlation: A^T = Vh^T, G = Vg, B^T = V^-T. Row j of B^T and G may be rescaled
    inversely; they are balanced to equal largest entries.
    """
    n = m + r - 1
    pts = [Fraction(p) for p in points]
    if len(pts) != n - 1 or len(set(pts)) != len(pts):
        raise ValueError(f"F({m}, {r}) needs {n - 1} distinct finite points, got {points}")

    def vandermonde(cols: int) -> torch.Tensor:
        rows = [[float(p ** i) for i in range(cols)] for p in pts] + [[0.0] * (cols - 1) + [1.0]]
        return torch.tensor(rows, dtype=torch.float64)

    bt = torch.linalg.inv(vandermonde(n)).T
    g = vandermonde(r)
    scale = (bt.abs().amax(dim=1) / g.abs().amax(dim=1)).sqrt()
    return vandermonde(m).T.contiguous(), g * scale[:, None], bt / scale[:, None]


_AT, _G, _BT = transform_matrices()
_AT_ROWS = _AT.tolist()
_BT_ROWS = _BT.tolist()


def applies(in_channels: int, out_channels: int, resolution: int) -> bool:
    """Whether a 3x3, padding-1 convolution at this size is faster transformed (fp32, one sample, CPU)."""
    return (ENABLED and min(in_channels, out_channels) >= MIN_CHANNELS and resolution >= MIN_RESOLUTION
            and resolution % TILE == 0)


def weight_transform(weight: torch.Tensor) -> torch.Tensor:
    """[O, I, 3, 3] -> U [36, I, O] float32 (G g G^T of every kernel, computed in float64): the GEMMs' right-hand
    side. Modulation stays outside: it scales input and output channels, which commute with the transforms."""
    if weight.shape[-2:] != (3, 3):
        raise ValueError(f"Winograd F(4, 3) needs a 3x3 kernel, got {tuple(weight.shape)}")
    o, i = weight.shape[:2]
    n = _G.shape[0]
    g = weight.detach().double().permute(2, 3, 1, 0).reshape(3, -1)  # [k, (l, i, o)]
    half = (_G @ g).view(n, 3, i * o)  # G g: [a, l, (i, o)]
    return torch.matmul(_G, half).view(n * n, i, o).float()  # (G g) G^T: [a, b, (i, o)]


def _combine(coefs: list[float], parts: list[torch.Tensor], out: torch.Tensor, scale: torch.Tensor | None = None,
             init: torch.Tensor | None = None) -> None:
    """out = init + scale * sum_k coefs[k] * parts[k] (scale and init broadcast over the last dimension, both
    optional), skipping zero coefficients, in one pass per term."""
    terms = [(c, p) for c, p in zip(coefs, parts) if c != 0.0]
    if scale is not None:
        terms = [(scale * c, p) for c, p in terms]
    c0, p0 = terms[0]
    if init is not None:
        torch.addcmul(init, p0, c0, out=out) if scale is not None else torch.add(init, p0, alpha=c0, out=out)
    elif scale is None and c0 == 1.0:
        out.copy_(p0)
    else:
        torch.mul(p0, c0, out=out)
    for c, p in terms[1:]:
        out.addcmul_(p, c) if scale is not None else out.add_(p, alpha=c)


def conv3x3(x: torch.Tensor, u: torch.Tensor, in_scale: torch.Tensor | None = None,
            out_scale: torch.Tensor | None = None, bias: torch.Tensor | None = None,
            band_rows: int | None = None) -> torch.Tensor:
    """bias + out_scale * conv2d(x * in_scale, weight, padding=1) for one channels-last fp32 sample x [1, I, H, W]
    (H, W multiples of 4; the per-channel vectors [I], [O], [O] optional) with u = weight_transform(weight): a
    channels-last [1, O, H, W] result, equal to the direct convolution up to float rounding (module notes). The
    scales and the bias ride on passes the transform makes anyway (the padded copy, the last output pass). The
    image is done in bands of `band_rows` tile rows (default: what fits BAND_FLOATS)."""
    _, c, h, w = x.shape
    th, tw = h // TILE, w // TILE
    xp = torch.empty(h + 2, w + 2, c)  # the padded input, scaled on the way in
    xp[0].zero_(), xp[-1].zero_(), xp[:, 0].zero_(), xp[:, -1].zero_()
    src = x.permute(0, 2, 3, 1)[0]
    torch.mul(src, in_scale, out=xp[1:-1, 1:-1]) if in_scale is not None else xp[1:-1, 1:-1].copy_(src)
    # Allocated channels-last with the standard strides: a view with an odd batch stride sends later oneDNN
    # convolutions down a slow path (a 1x1 convolution measured 15x slower).
    out = torch.empty(1, u.shape[2], h, w, memory_format=torch.channels_last)
    y = out.permute(0, 2, 3, 1)[0].view(th, TILE, tw, TILE, u.shape[2])
    band = band_rows or max(1, BAND_FLOATS // (_BT.shape[0] ** 2 * tw * c))
    for t0 in range(0, th, band):
        t1 = min(th, t0 + band)
        _band(xp[TILE * t0:TILE * t1 + 2], u, y[t0:t1], out_scale, bias)
    return out


def _band(xp: torch.Tensor, u: torch.Tensor, y: torch.Tensor, scale: torch.Tensor | None,
          bias: torch.Tensor | None) -> None:
    n = _BT.shape[0]
    th, _, tw, _, co = y.shape
    c = xp.shape[2]
    # Input transform B^T d B, rows then columns, on strided views of the overlapping 6x6 tiles (stride 4).
    rows = [xp[k:k + TILE * th:TILE] for k in range(n)]  # each [th, W + 2, I]
    r = torch.empty(n, th, xp.shape[1], c)
    for a in range(n):
        _combine(_BT_ROWS[a], rows, r[a])
    cols = [r[:, :, k:k + TILE * tw:TILE] for k in range(n)]  # each [n, th, tw, I]
    v = torch.empty(n, n, th, tw, c)
    for b in range(n):
        _combine(_BT_ROWS[b], cols, v[:, b])
    m = torch.bmm(v.view(n * n, th * tw, c), u).view(n, n, th, tw, co)  # summed over input channels
    # Output transform A^T m A: rows into a [4, n, ...] buffer, then columns straight into the output's layout.
    o = torch.empty(TILE, n, th, tw, co)
    mrows = list(m.unbind(0))
    for p in range(TILE):
        _combine(_AT_ROWS[p], mrows, o[p])
    yv = y.permute(1, 3, 0, 2, 4)  # [p, q, th, tw, O]
    ocols = list(o.unbind(1))
    for q in range(TILE):
        _combine(_AT_ROWS[q], ocols, yv[:, q], scale, bias)
