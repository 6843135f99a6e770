"""`python -m editor project`: align a photo's face and project it into a generator's latent space."""

from __future__ import annotations

import json
from pathlib import Path

from editor.commands._util import resolve_device

NAME = "project"
HELP = "Find the face in a photo, align it the FFHQ way and project it into W / W+ (latent for editing)."
EXAMPLES = """  python -m editor project photo.jpg --model ffhq-1024 --out out/me
  python -m editor project --image photo.jpg --model demo --space w+ --steps 200 --out out/toon
  python -m editor project crop.png --no-align --model random:small --out /tmp/p --preset baseline
  python -m editor project assets/toon-photos/toon-photo-1.png --model demo --out out/toon   # encoder + 12 steps

writes into --out: aligned.png (the FFHQ-aligned crop), reconstruction.png (the generator's image of the latent),
pasted.png (the reconstruction pasted back into the photo), latent.npz (ws [num_ws, w_dim] float32, readable by
editor.recipe.read_latent_npz, plus the alignment quad and projection settings) and projection.json (summary)."""


def add_arguments(parser) -> None:
    parser.add_argument("photo", nargs="?", default=None, help="the photo (JPEG, PNG, WebP, ...)")
    parser.add_argument("--image", default=None, help="the photo (same as the positional argument)")
    parser.add_argument("--model", default="demo", metavar="SOURCE", help="generator source (default demo)")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--preset", choices=("refine", "default", "baseline"), default=None,
                        help="schedule: refine (12 W+ steps from the encoder's latent; the default when the model "
                             "has an encoder), default (100 steps from the best of 128 samples) or baseline (the "
                             "reference's 1000 steps)")
    parser.add_argument("--encoder", default="auto", metavar="auto|none|FILE",
                        help="image -> W+ encoder to start from (auto: the model's bundled encoder.safetensors when "
                             "it was trained for these weights; none: optimise from samples)")
    parser.add_argument("--steps", type=int, default=None, help="optimisation steps (default: the preset's)")
    parser.add_argument("--space", choices=("w", "w+"), default=None,
                        help="latent space (default: the preset's: W then W+ for default, W for baseline)")
    parser.add_argument("--perceptual", choices=("vgg", "alex", "disc", "none"), default=None,
                        help="perceptual loss (default: the preset's, vgg)")
    parser.add_argument("--landmarker", choices=("auto", "mtcnn", "toon"), default="auto",
                        help="face finder: auto (from the model card), mtcnn (real photos), toon (demo world)")
    parser.add_argument("--no-align", action="store_true", help="the photo is already an aligned square crop")
    parser.add_argument("--seed", type=int, default=0, help="seed of the latent noise / start search")
    parser.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, ...")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    import sys
    from dataclasses import replace

    import numpy as np
    import torch
    from PIL import Image
    from tqdm.auto import tqdm

    from editor import align
    from editor.checkpoints import load_generator, load_network, model_id
    from editor.commands import CommandError
    from editor.projection import PRESETS, project

    photo_path = args.image or args.photo
    if photo_path is None:
        raise CommandError("give the photo: `python -m editor project PHOTO --out DIR` (or --image PHOTO)")
    if args.image and args.photo and args.image != args.photo:
        raise CommandError("give the photo once (positional or --image), not two different ones")
    if args.steps is not None and args.steps < 1:
        raise CommandError("--steps must be >= 1")
    device = torch.device(resolve_device(args.device))
    G = load_generator(args.model, device=device, progress=not args.no_progress)
    encoder = None
    if args.encoder == "auto":
        from editor.projection import _bundled_encoder

        encoder = _bundled_encoder(G, args.model, device)
    elif args.encoder != "none":
        from editor.encoder import EncoderError, load_encoder

        try:
            encoder = load_encoder(args.encoder, G, device=device)
        except EncoderError as exc:
            raise CommandError(str(exc)) from None
    preset = args.preset or ("refine" if encoder is not None else "default")
    if preset == "refine" and encoder is None:
        raise CommandError("--preset refine starts from an encoder: this model has none (--encoder FILE)")
    cfg = PRESETS[preset]
    changes = {"seed": args.seed}
    if args.steps is not None:
        changes["steps"] = args.steps
    if args.space is not None:
        changes["space"] = args.space
    if args.perceptual is not None:
        changes["perceptual"] = args.perceptual
    cfg = replace(cfg, **changes)

    D = load_network(args.model, "D", device=device, progress=False) if cfg.perceptual == "disc" else None
    res = G.img_resolution
    out = Path(args.out)
    try:
        photo = align.load_image(photo_path)
        if args.no_align:
            if photo.shape[0] != photo.shape[1]:
                raise CommandError(f"--no-align needs a square crop, got {photo.shape[1]}x{photo.shape[0]}")
            aligned = None
            crop = np.asarray(Image.fromarray(photo).resize((res, res), Image.Resampling.LANCZOS))
        else:
            finder = align.landmarker_for(args.model, G, None if args.landmarker == "auto" else args.landmarker,
                                          device=device)
            aligned = align.align_photo(photo, finder, res)
            crop = aligned.image
            for notice in aligned.notices:
                print(f"note: {notice}", file=sys.stderr)
    except align.AlignError as exc:
        raise CommandError(str(exc)) from None

    out.mkdir(parents=True, exist_ok=True)
    Image.fromarray(crop).save(out / "aligned.png")
    bar = tqdm(total=cfg.steps, unit="step", desc="project", disable=True if args.no_progress else None)

    def report(p):
        bar.update(p.step - bar.n)
        bar.set_postfix(loss=f"{p.loss:.4f}")

    init_ws = None
    if encoder is not None and preset == "refine":
        with torch.no_grad():
            init_ws = encoder(torch.from_numpy(crop.copy()).permute(2, 0, 1)[None].float().to(device) / 127.5 - 1)
    result = project(G, crop, config=cfg, callback=report, device=device, discriminator=D, init_ws=init_ws)
    bar.close()
    Image.fromarray(result.image).save(out / "reconstruction.png")
    arrays = {"ws": result.ws[0].numpy().astype(np.float32), "space": np.array(result.space),
              "model": np.array(str(args.model)), "model_id": np.array(model_id(G)),
              "config": np.array(json.dumps({k: (list(v) if isinstance(v, tuple) else v)
                                             for k, v in cfg.__dict__.items()}))}
    if aligned is not None:
        arrays["quad"] = aligned.quad.astype(np.float64)
        arrays["photo_size"] = np.array(aligned.photo_size)
        pasted = align.paste_back(photo, aligned, result.image)  # the generator's face (no edit to carry)
        Image.fromarray(pasted).save(out / "pasted.png")
    if result.noise is not None:
        for name, v in result.noise.items():
            arrays[f"noise/{name}"] = v.numpy()
    np.savez_compressed(out / "latent.npz", **arrays)
    summary = {"photo": str(photo_path), "model": str(args.model), "resolution": res, "space": result.space,
               "preset": preset, "encoder": encoder is not None,
               "steps": result.steps_run, "stopped": result.stopped, "seconds": round(result.seconds, 2),
               "psnr": round(result.psnr, 3), "final_loss": result.losses[-1],
               "faces_found": aligned.num_faces if aligned is not None else None,
               "quad": aligned.quad.tolist() if aligned is not None else None}
    (out / "projection.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {out}/aligned.png, reconstruction.png{', pasted.png' if aligned is not None else ''}, latent.npz "
          f"({result.space}, {result.steps_run} steps, {result.seconds:.1f}s, PSNR {result.psnr:.2f} dB)")
    return 0
