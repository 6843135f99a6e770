"""`python -m editor train`: train a StyleGAN2-ADA generator on the toon world or a folder of images."""

from __future__ import annotations

import os
import signal
import sys

from editor.commands._util import resolve_device

NAME = "train"
HELP = "Train a StyleGAN2-ADA generator (toon world or image folder); resumable, snapshots in the native format."
EXAMPLES = """  python -m editor train --data toon --resolution 64 --out runs/toon64 --minutes 8
  python -m editor train --out runs/toon64 --resume --minutes 8          # continue the same run
  python -m editor train --data toon --config toon-128 --batch 64 --out runs/toon128 --minutes 8 --device cuda
  python -m editor train --data ~/faces --resolution 128 --mirror --out runs/faces --kimg 5000
  nice -n 10 python -m editor train --data toon --resolution 32 --config small --batch 16 --out runs/t32 --minutes 10

The run directory holds train_config.json, training_state.pt (resume), G_ema/ (native checkpoint, load it with
load_generator('runs/NAME/G_ema')), samples/*.png (fixed-seed grids), log.jsonl and metrics.jsonl.
Stop with Ctrl-C (or SIGTERM): the current iteration finishes and a snapshot is written.
With --resume the stored training configuration is used; only run options (--minutes, --kimg, --workers,
--device, snapshot/sample/metric options) apply."""

# options that change the training mathematics (taken from train_config.json when resuming)
_MATH_OPTIONS = ("data", "resolution", "config", "batch", "glr", "dlr", "gamma", "pl_weight", "style_mixing",
                 "ema_kimg", "augment_p", "ada_target", "ada_kimg", "seed", "channel_base", "channel_max", "fp16_res", "mirror",
                 "lumaflip", "no_augment", "toon_seed_offset",
                 "toon_supersample")


def add_arguments(parser) -> None:
    g = parser.add_argument_group("data and network")
    g.add_argument("--data", default=None, help="'toon' (demo world drawn on the fly) or a folder of images (default toon)")
    g.add_argument("--resolution", type=int, default=None, help="image side in pixels (default 64)")
    g.add_argument("--config", default=None,
                   help="network configuration from editor.stylegan2.CONFIGS (default toon-<resolution>)")
    g.add_argument("--channel-base", type=int, default=None,
                   help="override channel_base (channels at resolution r: min(channel_base / r, channel_max))")
    g.add_argument("--channel-max", type=int, default=None, help="override the configuration's channel_max")
    g.add_argument("--fp16-res", type=int, default=None,
                   help="override num_fp16_res: how many of the highest resolutions run in fp16 on CUDA")
    g.add_argument("--mirror", action="store_true", default=None, help="folder data: random x-flips of the dataset")
    g.add_argument("--toon-seed-offset", type=int, default=None, help="toon data: first toon seed (default 0)")
    g.add_argument("--toon-supersample", type=int, default=None,
                   help="toon data: renderer oversampling (default: the renderer's; 1 is 1.6x (64 px) to 3.4x "
                        "(128 px) faster with nearly identical images)")
    g = parser.add_argument_group("training")
    g.add_argument("--out", required=True, help="run directory (created; resumed with --resume)")
    g.add_argument("--resume", action="store_true", help="continue the run in --out from its last snapshot")
    g.add_argument("--batch", type=int, default=None, help="images per iteration (default 32)")
    g.add_argument("--glr", type=float, default=None, help="generator learning rate (default 0.0025)")
    g.add_argument("--dlr", type=float, default=None, help="discriminator learning rate (default 0.0025)")
    g.add_argument("--gamma", type=float, default=None,
                   help="R1 weight (default 0.0002 * resolution^2 / batch, the ADA heuristic)")
    g.add_argument("--pl-weight", type=float, default=None, help="path-length regularisation weight (default 2; 0 = off)")
    g.add_argument("--style-mixing", type=float, default=None, help="style mixing probability (default 0.9)")
    g.add_argument("--ema-kimg", type=float, default=None, help="G_ema half-life in kimg (default batch * 10 / 32)")
    g.add_argument("--no-augment", action="store_true", default=None, help="disable ADA")
    g.add_argument("--augment-p", type=float, default=None, help="initial augmentation probability (default 0)")
    g.add_argument("--ada-target", type=float, default=None, help="ADA target for r_t = E[sign(D(real))] (default 0.6)")
    g.add_argument("--ada-kimg", type=float, default=None, help="ADA speed: kimg for p to move by 1 (default 500)")
    g.add_argument("--lumaflip", action="store_true", default=None, help="include luma flips in the augmentations")
    g.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    g = parser.add_argument_group("run length, snapshots, metrics")
    g.add_argument("--kimg", type=float, default=None, help="stop after this many thousand images in total")
    g.add_argument("--minutes", type=float, default=None,
                   help="stop after this many minutes of this process (a snapshot is written)")
    g.add_argument("--snap-minutes", type=float, default=10.0, help="snapshot at least this often (default 10)")
    g.add_argument("--snap-kimg", type=float, default=None, help="also snapshot every this many kimg")
    g.add_argument("--keep-snapshots", action="store_true", help="keep a G_ema copy per snapshot under snapshots/")
    g.add_argument("--sample-kimg", type=float, default=50.0, help="sample grid every this many kimg (default 50; 0 = only at the end)")
    g.add_argument("--grid", default="8x8", help="sample grid rows x columns (default 8x8)")
    g.add_argument("--metric", choices=("fd", "none"), default="fd",
                   help="FD + KID against reals at the end (attribute-model features when available, else pixels)")
    g.add_argument("--metric-kimg", type=float, default=None, help="also compute the metric every this many kimg")
    g.add_argument("--metric-samples", type=int, default=1000, help="images per metric evaluation (default 1000)")
    g = parser.add_argument_group("machine")
    g.add_argument("--device", default="auto", help="'auto', 'cpu', 'cuda', 'cuda:1', ... (default auto)")
    g.add_argument("--workers", type=int, default=None,
                   help="data worker processes (default: CPU cores - 1 on CUDA, up to 15; 1 on CPU)")
    g.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar; print one line per report")


def _build_config(args):
    from editor.train import TrainConfig, network_config_for

    resolution = args.resolution
    if resolution is None and args.config is None:
        resolution = 64
    net = network_config_for(resolution, args.config, channel_base=args.channel_base, channel_max=args.channel_max,
                             num_fp16_res=args.fp16_res)
    data = args.data or "toon"
    if data != "toon" and not os.path.isdir(data):
        raise ValueError(f"--data must be 'toon' or an existing folder of images, got {data!r}")
    values = dict(network=net, data=data, batch=args.batch, g_lr=args.glr, d_lr=args.dlr, r1_gamma=args.gamma,
                  pl_weight=args.pl_weight, style_mixing=args.style_mixing, ema_kimg=args.ema_kimg,
                  augment_p=args.augment_p, ada_target=args.ada_target, ada_kimg=args.ada_kimg, seed=args.seed,
                  mirror=args.mirror, lumaflip=args.lumaflip, toon_seed_offset=args.toon_seed_offset,
                  toon_supersample=args.toon_supersample)
    if args.no_augment:
        values["augment"] = False
    return TrainConfig(**{k: v for k, v in values.items() if v is not None})


def _parse_grid(text: str) -> tuple[int, int]:
    try:
        rows, cols = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--grid must look like 8x8, got {text!r}") from None
    if rows < 1 or cols < 1:
        raise ValueError("--grid needs at least one row and column")
    return rows, cols


def run(args) -> int:
    import torch
    from tqdm import tqdm

    from editor.train import RunOptions, run_training

    device = resolve_device(args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    workers = args.workers
    if workers is None:
        workers = min(max((os.cpu_count() or 2) - 1, 1), 15) if device.startswith("cuda") else 1
    if args.resume:
        given = [f"--{k.replace('_', '-')}" for k in _MATH_OPTIONS if getattr(args, k) is not None]
        if given:
            print(f"note: resuming keeps the stored training configuration; ignoring {' '.join(given)}",
                  file=sys.stderr)
        cfg = None
    else:
        cfg = _build_config(args)
    opts = RunOptions(kimg=args.kimg, minutes=args.minutes, snapshot_minutes=args.snap_minutes,
                      snapshot_kimg=args.snap_kimg or None, keep_snapshots=args.keep_snapshots,
                      sample_kimg=args.sample_kimg or None, grid=_parse_grid(args.grid),
                      metric=None if args.metric == "none" else args.metric, metric_kimg=args.metric_kimg or None,
                      metric_samples=args.metric_samples, workers=workers)
    if opts.kimg is None and opts.minutes is None:
        print("note: no --kimg or --minutes given: training runs until interrupted (Ctrl-C writes a snapshot)",
              file=sys.stderr)

    stop_requested = []

    def request_stop(signum, frame):
        if stop_requested:
            raise KeyboardInterrupt
        stop_requested.append(signum)

    old_int = signal.signal(signal.SIGINT, request_stop)
    old_term = signal.signal(signal.SIGTERM, request_stop)
    bar = None if args.no_progress else tqdm(total=int(opts.kimg * 1000) if opts.kimg else None, unit="img",
                                             unit_scale=True, dynamic_ncols=True, smoothing=0.1)

    def progress(info: dict) -> None:
        event = info.get("event")
        if event == "tick":
            text = (f"kimg {info['kimg']:.1f}  G {info.get('loss_G', float('nan')):.3f}  "
                    f"D {info.get('loss_D', float('nan')):.3f}  p {info['p']:.3f}  {info['img_s']:.1f} img/s")
            if info.get("data_wait", 0) > 0.2:
                text += f"  data-wait {100 * info['data_wait']:.0f}%"
            if bar is not None:
                bar.n = int(info["kimg"] * 1000)
                bar.set_postfix_str(text, refresh=True)
            else:
                print(text, flush=True)
        elif event in ("metric", "snapshot", "done"):
            fields = "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                               for k, v in info.items() if k != "event")
            if bar is not None:
                bar.write(f"[{event}] {fields}")
            else:
                print(f"[{event}] {fields}", flush=True)

    try:
        run_training(cfg, args.out, opts, device=device, resume=args.resume, progress=progress,
                     should_stop=lambda: bool(stop_requested))
    finally:
        if bar is not None:
            bar.close()
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
    return 0
