"""`python -m editor sample`: draw, render and label samples into a resumable cache (see editor.samples)."""

from __future__ import annotations

from pathlib import Path

NAME = "sample"
HELP = "Sample latents from a generator, render and label them into a resumable cache (z, w, ws, scores)."
EXAMPLES = """  python -m editor sample --model random:small --n 1000 --labeler stats --out samples/small-stats
  python -m editor sample --model demo --n 5000 --labeler toon --out samples/demo
  python -m editor sample --model demo --n 5000 --labeler clip:ViT-B-32:laion2b_s34b_b79k --out samples/demo
  (run the same command again to resume an interrupted run or add a labeller)"""


def add_arguments(parser) -> None:
    parser.add_argument("--model", required=True, help="generator source (path, URL, hf://..., registry name, "
                                                         "random:<config>)")
    parser.add_argument("--n", type=int, default=5000, help="number of samples (default 5000)")
    parser.add_argument("--out", required=True, help="cache folder, e.g. samples/NAME (created; reopened to resume)")
    parser.add_argument("--seed0", type=int, default=0, help="seed of the first sample; seeds are consecutive")
    parser.add_argument("--psi", type=float, default=1.0, help="truncation psi of the mapping (default 1: none)")
    parser.add_argument("--labeler", action="append", default=[],
                        help="labeller(s): stats | toon[:CKPT] | clip[:MODEL[:PRETRAINED]] | manual:FILE "
                             "(repeatable; default: none, latents only)")
    parser.add_argument("--batch", type=int, default=32, help="samples per generator call (default 32)")
    parser.add_argument("--chunk", type=int, default=250, help="samples per cache file (default 250)")
    parser.add_argument("--keep-images", action="store_true", help="store the rendered images (uint8) too")
    parser.add_argument("--image-size", type=int, default=None, help="downscale images to this size first")
    parser.add_argument("--device", default="auto", help="cpu | cuda | auto (default auto)")


def open_and_fill(args, G, device: str):
    """Open (or create) the cache named by args and fill it; returns (cache, labellers). Shared with build-bank."""
    from tqdm import tqdm

    from editor.bank import generator_info
    from editor.checkpoints import resolve_source
    from editor.labelers import TruthLabeler, make_labeler
    from editor.samples import SampleCache, SampleSpec

    if args.batch < 1:
        raise ValueError("--batch must be >= 1")
    info = generator_info(G)
    spec = SampleSpec(n=args.n, seed0=args.seed0, psi=args.psi, chunk=args.chunk, keep_images=args.keep_images,
                      image_size=args.image_size)
    cache = SampleCache(args.out, spec, {"model_id": info.model_id, "source": str(args.model), "z_dim": info.z_dim,
                                         "w_dim": info.w_dim, "num_ws": info.num_ws})
    source = resolve_source(args.model, progress=False)
    model_dir = source if isinstance(source, Path) and source.is_dir() else None
    labellers = [make_labeler(s, device=device, model=model_dir) for s in args.labeler]
    if spec.psi != 1 and any(isinstance(lab, TruthLabeler) for lab in labellers):
        raise ValueError("the truth labeller describes untruncated samples only: use --psi 1")
    todo = cache.missing(labellers)
    if todo:
        bar = tqdm(total=None, unit="img", desc=f"sampling into {args.out}", leave=True)

        def progress(done, total):
            bar.total = total
            bar.n = done
            bar.refresh()

        try:
            cache.fill(G, labellers, device=device, batch=args.batch, progress=progress)
        finally:
            bar.close()
    return cache, labellers


def run(args) -> int:
    from editor.checkpoints import load_generator
    from editor.commands._util import resolve_device

    device = resolve_device(args.device)
    G = load_generator(args.model, device=device)
    cache, labellers = open_and_fill(args, G, device)
    s = cache.load([lab.name for lab in labellers])
    print(f"{len(s.seeds)} samples in {args.out}: z {tuple(s.z.shape)}, ws {tuple(s.ws.shape)}; labels: "
          + (", ".join(f"{k} ({len(v)} attributes)" for k, v in s.scores.items()) or "none"))
    return 0
