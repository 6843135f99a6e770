"""`python -m editor train-encoder`: train a photo encoder (image -> W+) for a generator from its own samples."""

from __future__ import annotations

from editor.commands._util import add_run_length_arguments, resolve_device, stop_on_signals

NAME = "train-encoder"
HELP = "Train an image -> W+ encoder for a generator from the generator's own samples (resumable, CPU or GPU)."
EXAMPLES = """  nice -n 10 python -m editor train-encoder --model demo --out runs/encoder-demo --minutes 60
  nice -n 10 python -m editor train-encoder --model demo --out runs/encoder-demo --resume --minutes 60
  python -m editor train-encoder --model demo --out runs/encoder-demo --export checkpoints/demo/encoder.safetensors
  python -m editor train-encoder --model demo --out runs/enc2 --init checkpoints/demo/encoder.safetensors --minutes 60
  python -m editor train-encoder --model ffhq-1024 --out runs/encoder-ffhq --device cuda --kimg 2000

The app uses <checkpoint dir>/encoder.safetensors when it was trained for that generator's exact weights (the file
records the generator's model_id). docs/photos.md has the measured times and quality."""


def add_arguments(parser) -> None:
    parser.add_argument("--model", required=True, help="generator source (registry name, path, URL, random:<config>)")
    parser.add_argument("--out", required=True, help="run directory")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--image-weight", type=float, default=1.0, help="weight of the image L1 (0: latent loss only)")
    parser.add_argument("--delta-weight", type=float, default=0.02, help="weight of the per-layer offset penalty")
    parser.add_argument("--resolution", type=int, default=128, help="encoder input side (default 128)")
    parser.add_argument("--image-batch", type=int, default=4, help="samples per batch that get the image loss")
    parser.add_argument("--pool", type=int, default=2048, help="samples kept for training (default 2048)")
    parser.add_argument("--refresh", type=int, default=4, help="pool samples replaced each step (default 4)")
    parser.add_argument("--align-jitter", type=float, default=0.15,
                        help="landmark noise of the toon photos' alignment, in eye distances (default 0.15: the "
                             "face finder's error)")
    parser.add_argument("--photo-share", type=float, default=None,
                        help="share of new samples that are aligned toon-world photos (default 0.5 for a model "
                             "distilled from the toon world, else 0)")
    add_run_length_arguments(parser, eval_minutes=10.0)
    parser.add_argument("--device", default="auto", help="cpu | cuda | auto (default auto)")
    parser.add_argument("--init", metavar="FILE", default=None,
                        help="start a new run from an exported encoder (e.g. the bundled one; Adam starts fresh). "
                             "It may have been trained for other weights of the same architecture (an earlier "
                             "snapshot of the generator): a warm start, not a shortcut around training")
    parser.add_argument("--export", metavar="FILE", default=None,
                        help="write the run's encoder as a float16 file (e.g. <checkpoint dir>/encoder.safetensors)")


def run(args) -> int:
    import torch

    from editor.checkpoints import load_generator, model_id, resolve_source
    from editor.commands import CommandError
    from editor.encoder import load_encoder, save_encoder
    from editor.toonlatent import LatentWorld
    from editor.train.encoder import EncoderTrainConfig, run_train_encoder

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    G = load_generator(args.model, device=device)
    gid = model_id(G)
    if args.export:
        from pathlib import Path

        src = Path(args.out) / "encoder.safetensors"
        if not src.is_file():
            raise CommandError(f"{src} does not exist: train first (--out {args.out})")
        enc = load_encoder(src, G)
        print(save_encoder(enc, args.export, gid, enc.meta.get("facts"), half=True))
        return 0
    if args.minutes is None and args.kimg is None:
        raise CommandError("say how long to train: --minutes N or --kimg N")
    resolved = resolve_source(args.model)
    world = LatentWorld.for_model(resolved) if not isinstance(resolved, str) and resolved.is_dir() else None
    photo_share = (0.5 if world is not None else 0.0) if args.photo_share is None else args.photo_share
    if photo_share > 0 and world is None:
        raise CommandError(f"--photo-share needs a model distilled from the toon world; {args.model} is not")
    cfg = EncoderTrainConfig(batch=args.batch, lr=args.lr, image_weight=args.image_weight,
                             delta_weight=args.delta_weight, resolution=args.resolution, bf16=not args.fp32,
                             image_batch=args.image_batch, pool=args.pool, refresh=args.refresh,
                             photo_share=photo_share, align_jitter=args.align_jitter)
    stop = stop_on_signals()  # finish the step, then snapshot
    init = load_encoder(args.init) if args.init else None  # no model_id check: a warm start (see --init)
    if init is not None and args.resume:
        raise CommandError("--init starts a new run; --resume continues one: give one of them")
    path = run_train_encoder(G, args.out, cfg, generator_id=gid, world=world, resume=args.resume, init=init, minutes=args.minutes,
                             kimg=args.kimg, snap_minutes=args.snap_minutes, eval_minutes=args.eval_minutes,
                             device=device, log=lambda m: print(m, flush=True), stop=stop)
    print(path)
    return 0
