"""`python -m editor distill`: train the demo generator by distilling the toon renderer (no discriminator)."""

from __future__ import annotations

from dataclasses import replace

from editor.commands._util import add_run_length_arguments, stop_on_signals

NAME = "distill"
HELP = "Train a generator to draw render(T(z)) by regression (the demo model's route on a CPU); resumable."
EXAMPLES = """  nice -n 10 python -m editor distill --out runs/demo128 --minutes 60          # new run (toon-128)
  nice -n 10 python -m editor distill --out runs/demo128 --resume --minutes 60 # continue it
  python -m editor distill --out runs/demo128 --export checkpoints/demo-train  # small float16 state for git
  python -m editor distill --out runs/demo128 --import checkpoints/demo-train  # ... and back (fresh Adam)

The run directory holds distill_config.json, distill_state.pt (resume), G_ema/ (native checkpoint), samples/
(held-out latents: generated rows over rendered rows), log.jsonl and eval.jsonl (held-out L1 and the attribute
model's agreement with the truth of T(z) on generated faces). Ctrl-C or SIGTERM stops after the current step with a
snapshot. docs/training.md has the runs and the numbers."""


def add_arguments(parser) -> None:
    parser.add_argument("--out", required=True, help="run directory")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")
    parser.add_argument("--config", default="toon-128", help="network configuration (editor.stylegan2.CONFIGS)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=None,
                        help="Adam learning rate (default 0.002); with --resume: lower the run's from here on "
                             "(a step decay for the last part of a long run)")
    parser.add_argument("--adv-weight", type=float, default=None,
                        help="weight of the adversarial term that sharpens the regression (default 0: none); with "
                             "--resume: switch it on or change it for the rest of the run")
    parser.add_argument("--adv-patch", type=int, default=None,
                        help="the adversary judges random crops of this side (default 0: whole images)")
    parser.add_argument("--d-channel-base", type=int, default=None,
                        help="the discriminator's channel_base (default: the generator's)")
    parser.add_argument("--feature-weight", type=float, default=None,
                        help="weight of the attribute-model feature term (default 1.0; 0 = pixels only)")
    parser.add_argument("--mapping-pretrain-kimg", type=float, default=0.0,
                        help="first fit the mapping network alone to T's draws on this many thousand latents")
    parser.add_argument("--low-res-kimg", type=float, default=0.0,
                        help="train the half-resolution image only for this many thousand images first (faster)")
    parser.add_argument("--ema-kimg", type=float, default=10.0, help="G_ema half-life (thousands of images)")
    parser.add_argument("--seed", type=int, default=0, help="training latents' seed")
    parser.add_argument("--world-seed", type=int, default=0, help="seed of T's fixed mixing")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile (slower steps, no warm-up)")
    add_run_length_arguments(parser, eval_minutes=15.0)
    parser.add_argument("--export", metavar="DIR", default=None, help="write the run's portable float16 state to DIR")
    parser.add_argument("--import", dest="import_", metavar="DIR", default=None,
                        help="make --out a resumable run from a portable state in DIR")


def run(args) -> int:
    import torch

    from editor.commands import CommandError
    from editor.stylegan2 import CONFIGS
    from editor.train.distill import DistillConfig, export_portable, import_portable, run_distill

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.export:
        print(export_portable(args.out, args.export))
        return 0
    if args.import_:
        print(import_portable(args.import_, args.out))
        return 0
    if args.config not in CONFIGS:
        raise CommandError(f"unknown --config {args.config!r}; known: {', '.join(CONFIGS)}")
    cfg = None
    if not args.resume:
        cfg = DistillConfig(network=CONFIGS[args.config], batch=args.batch, lr=args.lr or 0.002, ema_kimg=args.ema_kimg,
                            seed=args.seed, world_seed=args.world_seed, compile=not args.no_compile,
                            low_res_kimg=args.low_res_kimg, mapping_pretrain_kimg=args.mapping_pretrain_kimg,
                            bf16=not args.fp32)
        if args.feature_weight is not None:
            cfg = replace(cfg, feature_weight=args.feature_weight)
    changes = {k: v for k, v in (("lr", args.lr), ("adv_weight", args.adv_weight), ("adv_patch", args.adv_patch),
                                 ("d_channel_base", args.d_channel_base)) if v is not None}
    if cfg is not None:
        cfg = replace(cfg, **{k: v for k, v in changes.items() if k != "lr"})
    should_stop = stop_on_signals()  # finish the step, then snapshot

    def show(info: dict) -> None:
        if info["event"] == "pretrain":
            r2 = f"  held-out R^2 {info['r2']:.4f}" if "r2" in info else ""
            print(f"mapping pretraining: {info['n']} latents  loss {info['loss']:.4f}{r2}", flush=True)
        elif info["event"] == "tick":
            adv = (f"  g_adv {info['g_adv']:.3f}  D real/fake {info['d_real']:+.2f}/{info['d_fake']:+.2f}"
                   if "g_adv" in info else "")
            print(f"kimg {info['kimg']:8.2f}  it {info['it']:6d}  {info['img_s']:5.1f} img/s  loss {info['loss']:.4f}"
                  f"  l1 {info['l1']:.4f}  feat {info['feat']:.4f}{adv}", flush=True)
        else:
            print("eval", {k: round(v, 4) if isinstance(v, float) else v for k, v in info.items() if k != "event"},
                  flush=True)

    summary = run_distill(cfg, args.out, resume=args.resume, changes=changes if args.resume else None,
                          minutes=args.minutes, kimg=args.kimg,
                          snapshot_minutes=args.snap_minutes, eval_minutes=args.eval_minutes, progress=show,
                          should_stop=should_stop)
    print(f"done: {summary['kimg']:.1f} kimg, l1 {summary['l1']:.4f}, judge agreement {summary['judge_acc_mean']:.3f}")
    return 0
