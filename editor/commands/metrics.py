"""`python -m editor metrics`: FD / KID against real images and PPL in W for a generator."""

from __future__ import annotations

import json

from editor.commands._util import resolve_device

NAME = "metrics"
HELP = "Measure a generator: Fréchet distance and KID against reals (toon renders or a folder), PPL in W."
EXAMPLES = """  python -m editor metrics --model runs/toon64/G_ema --data toon --num 2000
  python -m editor metrics --model demo --metrics fd,kid,ppl --num 2000 --ppl-samples 2000 --json out/demo_metrics.json
  python -m editor metrics --model random:toon-64 --metrics fd --features pixels        # the untrained ceiling
  python -m editor metrics --model runs/faces/G_ema --data ~/faces --features inception

Feature spaces: 'attr' (the toon attribute model's embedding; default when its checkpoint exists), 'inception'
(torchvision InceptionV3 with local weights; never downloaded), 'pixels' (8x8 area-downsampled pixels).
PPL uses shift-tolerant LPIPS (stlpips-pytorch) when installed, else the pixel MSE fallback (see editor/metrics.py).
--floor also reports FD/KID between two disjoint sets of reals: the best a generator can score with that sample size."""


def add_arguments(parser) -> None:
    parser.add_argument("--model", required=True, help="generator source (path, registry name, random:CONFIG, ...)")
    parser.add_argument("--metrics", default="fd,kid", help="comma-separated: fd, kid, ppl (default fd,kid)")
    parser.add_argument("--data", default="toon", help="reals: 'toon' (renders at the model's size) or a folder")
    parser.add_argument("--num", type=int, default=2000, help="generated and real images for FD/KID (default 2000)")
    parser.add_argument("--features", choices=("auto", "attr", "inception", "pixels"), default="auto",
                        help="feature space for FD/KID (default auto: attr if available, else pixels)")
    parser.add_argument("--ppl-samples", type=int, default=2000, help="PPL pairs (default 2000)")
    parser.add_argument("--ppl-distance", choices=("auto", "stlpips-vgg", "stlpips-alex", "pixel"), default="auto")
    parser.add_argument("--truncation", type=float, default=1.0, help="ψ for FD/KID samples (default 1)")
    parser.add_argument("--floor", action="store_true", help="also measure reals against other reals")
    parser.add_argument("--batch", type=int, default=64, help="generation batch size (default 64)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated latents (default 0)")
    parser.add_argument("--workers", type=int, default=1, help="processes rendering toon reals (default 1)")
    parser.add_argument("--device", default="auto", help="'auto', 'cpu', 'cuda', ... (default auto)")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")


def _extractor(name: str, device: str):
    from editor import metrics as M

    if name == "auto":
        return M.default_feature_extractor(device)
    if name == "attr":
        return M.AttributeEmbedding(device=device)
    if name == "inception":
        return M.InceptionFeatures(device=device)
    return M.PixelFeatures(8)


def _distance(name: str, device: str):
    from editor import metrics as M

    if name == "auto":
        return M.default_perceptual_distance(device)
    if name == "pixel":
        return M.PixelDistance()
    return M.STLPIPSDistance(name.split("-")[1], device=device)


def run(args) -> int:
    from editor import metrics as M
    from editor.checkpoints import load_generator

    wanted = [m.strip() for m in args.metrics.split(",") if m.strip()]
    unknown = set(wanted) - {"fd", "kid", "ppl"}
    if unknown or not wanted:
        raise ValueError(f"--metrics takes fd, kid, ppl; got {args.metrics!r}")
    if args.num < 2 or args.ppl_samples < 1:
        raise ValueError("--num must be >= 2 and --ppl-samples >= 1")
    device = resolve_device(args.device)
    G = load_generator(args.model, device=device)
    res = G.img_resolution
    results: dict = {"model": str(args.model), "resolution": res}
    if {"fd", "kid"} & set(wanted):
        extractor = _extractor(args.features, device)
        n_real = args.num * (2 if args.floor else 1)
        if args.data == "toon":
            from editor.train.data import ToonSource

            reals = ToonSource(res, seed_offset=20_000_000, workers=args.workers).images(0, n_real)
        else:
            from editor.train.data import load_image_folder

            reals = load_image_folder(args.data, res, max_images=n_real)
        real_feats = M.image_features(reals, extractor)
        fake_feats = M.generator_features(G, extractor, args.num, args.batch, args.seed, device, args.truncation)
        ref = real_feats[:args.num]
        results.update(features=extractor.name, num=args.num, truncation=args.truncation)
        if "fd" in wanted:
            results["fd"] = M.frechet_distance_from_features(fake_feats, ref)
        if "kid" in wanted:
            results["kid"] = M.kernel_inception_distance(fake_feats, ref)
        if args.floor:
            other = real_feats[args.num:]
            if other.shape[0] < 2:
                raise ValueError(f"--floor needs 2 x --num reals; the folder has {len(reals)}")
            results["fd_floor"] = M.frechet_distance_from_features(other, ref[:other.shape[0]])
            results["kid_floor"] = M.kernel_inception_distance(other, ref[:other.shape[0]])
    if "ppl" in wanted:
        out = M.perceptual_path_length(G, _distance(args.ppl_distance, device), num_samples=args.ppl_samples,
                                       batch_size=min(args.batch, 32), seed=args.seed, device=device)
        results.update(ppl=out["ppl"], ppl_distance=out["distance"], ppl_samples=out["num_samples"])
    for k, v in results.items():
        print(f"{k:14s} {v:.5g}" if isinstance(v, float) else f"{k:14s} {v}")
    if args.json:
        from pathlib import Path

        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0
