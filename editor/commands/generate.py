"""`python -m editor generate`: render seeds with any generator source into a grid PNG (and single images)."""

from __future__ import annotations

import math
from pathlib import Path

from editor.commands._util import parse_range, resolve_device

NAME = "generate"
HELP = "Generate faces from seeds with any model source and save them as a grid PNG."
EXAMPLES = """  python -m editor generate --model random:small --seeds 0-7 --out grid.png
  python -m editor generate --model ffhq-1024 --seeds 0,3,5-9 --trunc 0.7 --out faces.png --device auto
  python -m editor generate --model checkpoints/demo --seeds 0-63 --cols 16 --out demo.png --outdir out/demo
  python -m editor generate --model hf://owner/repo/model.safetensors --seeds 1-4 --trunc 0.5 --out grid.png
  python -m editor generate --model https://example.org/network-snapshot.pkl --seeds 0-3 --out grid.png

model sources: a checkpoint directory or .safetensors file, a reference .pkl (read safely, nothing in it runs),
an https:// or hf:// URL (downloaded once into the cache), a name (ffhq-1024, ffhq-512, ffhq-256, demo; see
`python -m editor models`), or random:<config>[:seed] for random weights (configs: ffhq-1024, ffhq-512, ffhq-256,
small, toon-64, toon-128). Seed s uses z = numpy RandomState(s).randn(1, z_dim), like the reference scripts."""

MAX_SEED = 2**32 - 1


def add_arguments(parser) -> None:
    parser.add_argument("--model", default="demo", metavar="SOURCE",
                        help="model source (default: demo, the bundled generator); see below")
    parser.add_argument("--seeds", default="0-7", help="seeds, e.g. '0-7' or '0,3,5-9' (default 0-7)")
    parser.add_argument("--trunc", type=float, default=1.0, metavar="PSI",
                        help="truncation psi: 1 = none, 0.7 typical, 0 = the average face (default 1)")
    parser.add_argument("--trunc-cutoff", type=int, default=None, metavar="N",
                        help="truncate only the first N ws (coarse layers); default all")
    parser.add_argument("--noise-mode", choices=("const", "none", "random"), default="const",
                        help="per-layer noise: const (deterministic, default), none, random")
    parser.add_argument("--class", dest="class_idx", type=int, default=None,
                        help="class label for conditional models")
    parser.add_argument("--out", default="grid.png", help="grid PNG to write (default grid.png)")
    parser.add_argument("--outdir", default=None, help="also save one PNG per seed here (seedNNNN.png)")
    parser.add_argument("--cols", type=int, default=None, help="grid columns (default: about square)")
    parser.add_argument("--batch", type=int, default=4, help="images per synthesis call (default 4)")
    parser.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:1, ...")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def latents_for_seeds(seeds: list[int], z_dim: int):
    """z [N, z_dim] float32: row i is numpy RandomState(seeds[i]).randn(z_dim), the reference seed convention."""
    import numpy as np

    return np.stack([np.random.RandomState(s).randn(z_dim) for s in seeds]).astype(np.float32)


def to_uint8(img):
    """[N, C, H, W] in about [-1, 1] -> uint8 numpy [N, H, W, C]."""
    import torch

    return (img.float() * 127.5 + 128).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def make_grid(images, cols: int | None = None):
    """uint8 [N, H, W, C] -> one uint8 image [rows*H, cols*W, C], filled row by row (gaps stay black)."""
    import numpy as np

    n, h, w, c = images.shape
    cols = cols or max(1, math.ceil(math.sqrt(n)))
    cols = min(cols, n)
    rows = math.ceil(n / cols)
    grid = np.zeros((rows * h, cols * w, c), dtype=np.uint8)
    for i, img in enumerate(images):
        r, q = divmod(i, cols)
        grid[r * h:(r + 1) * h, q * w:(q + 1) * w] = img
    return grid


def _save_png(array, path: Path, info: dict[str, str]) -> None:
    from PIL import Image, PngImagePlugin

    meta = PngImagePlugin.PngInfo()
    for key, value in info.items():
        meta.add_text(key, value)
    image = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, pnginfo=meta)


def run(args) -> int:
    import sys

    import numpy as np
    import torch
    from tqdm.auto import tqdm

    from editor.checkpoints import load_generator, model_id, registry_entry_for

    seeds = parse_range(args.seeds)
    if any(s < 0 or s > MAX_SEED for s in seeds):
        raise ValueError(f"seeds must be in [0, {MAX_SEED}]")
    if args.batch < 1:
        raise ValueError("--batch must be >= 1")
    if args.cols is not None and args.cols < 1:
        raise ValueError("--cols must be >= 1")
    if not math.isfinite(args.trunc):
        raise ValueError("--trunc must be a finite number")
    device = torch.device(resolve_device(args.device))

    G = load_generator(args.model, device=device, progress=not args.no_progress)
    info = registry_entry_for(args.model)
    if info is not None and info.license_url:
        print(f"note: {info.name} weights are under the {info.license_name}: {info.license_url}", file=sys.stderr)
    if args.trunc_cutoff is not None and not 0 <= args.trunc_cutoff <= G.num_ws:
        raise ValueError(f"--trunc-cutoff must be in [0, {G.num_ws}] for this model")
    c = None
    if G.c_dim > 0:
        if args.class_idx is None or not 0 <= args.class_idx < G.c_dim:
            raise ValueError(f"this model is conditional: pass --class in [0, {G.c_dim - 1}]")
    elif args.class_idx is not None:
        raise ValueError("--class given but the model is unconditional")

    z_all = torch.from_numpy(latents_for_seeds(seeds, G.z_dim))  # [N, z_dim]
    if args.noise_mode == "random":
        torch.manual_seed(seeds[0])
    outdir = Path(args.outdir) if args.outdir else None
    chunks = []
    with torch.inference_mode(), tqdm(total=len(seeds), unit="img", desc="generate",
                                      disable=True if args.no_progress else None) as bar:
        for start in range(0, len(seeds), args.batch):
            z = z_all[start:start + args.batch].to(device)
            if G.c_dim > 0:
                c = torch.zeros([z.shape[0], G.c_dim], device=device)
                c[:, args.class_idx] = 1
            ws = G.mapping(z, c, truncation_psi=args.trunc, truncation_cutoff=args.trunc_cutoff)
            images = to_uint8(G.synthesis(ws, noise_mode=args.noise_mode))  # [n, H, W, C]
            chunks.append(images)
            bar.update(len(images))
    images = np.concatenate(chunks)
    ident = model_id(G)
    common = {"Software": "stylegan2-editor", "model": str(args.model), "model_id": ident,
              "truncation_psi": f"{args.trunc:g}", "noise_mode": args.noise_mode}
    if outdir is not None:
        for seed, img in zip(seeds, images):
            _save_png(img, outdir / f"seed{seed:04d}.png", {**common, "seed": str(seed)})
    out = Path(args.out)
    _save_png(make_grid(images, args.cols), out, {**common, "seeds": ",".join(map(str, seeds))})
    h, w = images.shape[1:3]
    print(f"wrote {out} ({len(seeds)} images of {w}x{h}, model {args.model}, id {ident}, psi {args.trunc:g})"
          + (f" and {len(seeds)} files in {outdir}" if outdir else ""))
    return 0
