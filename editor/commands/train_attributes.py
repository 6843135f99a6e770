"""`python -m editor train-attributes`: train the demo world's attribute + landmark model (resumable, seeded)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from editor.commands._util import resolve_device

NAME = "train-attributes"
HELP = "Train the toon attribute + landmark CNN on renders (seeded, resumable, with progress) and evaluate it."
EXAMPLES = """  nice -n 10 python -m editor train-attributes --out checkpoints/toon_attributes.safetensors
  python -m editor train-attributes --steps 6000 --train-seeds 0-59999 --state runs/attr/state.pt --resume
  python -m editor train-attributes --steps 50 --train-seeds 0-999 --eval-count 200 --out /tmp/tiny.safetensors"""


def add_arguments(parser) -> None:
    parser.add_argument("--out", default="checkpoints/toon_attributes.safetensors", help="weights (safetensors)")
    parser.add_argument("--train-seeds", default="0-59999", help="training seed range START-STOP (inclusive)")
    parser.add_argument("--steps", type=int, default=6000, help="optimizer steps (default 6000)")
    parser.add_argument("--batch", type=int, default=128, help="batch size (default 128)")
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (default 3e-3)")
    parser.add_argument("--seed", type=int, default=0, help="seed of init, batch order, augmentation")
    parser.add_argument("--state", default="runs/train_attributes/state.pt",
                        help="training state for --resume (model, optimizer, step)")
    parser.add_argument("--resume", action="store_true", help="continue from --state if it exists")
    parser.add_argument("--cache", default="runs/train_attributes/renders",
                        help="folder for the rendered training set (.npz chunks), reused across runs ('' for none)")
    parser.add_argument("--workers", type=int, default=2, help="render processes (default 2)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: on a shared 2-core machine 2 threads ran 14x slower)")
    parser.add_argument("--eval-count", type=int, default=2000, help="held-out renders to evaluate on (default 2000)")
    parser.add_argument("--stop-after", type=int, default=None, help="stop after this many steps in this call")
    parser.add_argument("--metrics", default=None, help="write held-out metrics JSON here (default: next to --out)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")


def _parse_seed_range(text: str) -> tuple[int, int]:
    lo, sep, hi = str(text).partition("-")
    if not sep:
        raise ValueError(f"--train-seeds must look like START-STOP, got {text!r}")
    a, b = int(lo), int(hi)
    if b < a:
        raise ValueError(f"--train-seeds {text!r} runs backwards")
    return a, b + 1


def run(args) -> int:
    import torch
    from tqdm import tqdm

    from editor.attributes import (AttributeNetConfig, RenderedSet, TrainConfig, evaluate_attribute_model,
                                   held_out_seeds, save_attribute_model, train_attribute_model)

    torch.set_num_threads(max(1, args.threads))
    start, stop = _parse_seed_range(args.train_seeds)
    cfg = TrainConfig(train_seeds=(start, stop), steps=args.steps, batch_size=args.batch, lr=args.lr,
                      seed=args.seed, warmup=min(200, max(1, args.steps // 10)), net=AttributeNetConfig())
    size = cfg.net.input_size
    cache = Path(args.cache) if args.cache else None
    t0 = time.time()
    with tqdm(total=stop - start, desc="render train set", unit="img") as bar:
        last = [0]

        def progress(done, total):
            bar.update(done - last[0])
            last[0] = done

        data = RenderedSet.render(range(start, stop), size, workers=args.workers, cache=cache,
                                  on_progress=progress)
        bar.update(bar.total - bar.n)
    render_s = time.time() - t0
    device = resolve_device(args.device)
    with tqdm(total=cfg.steps, desc="train", unit="step") as bar:
        def on_step(step, losses):
            if bar.n == 0 and step > 1:
                bar.update(step - 1)
            bar.update(1)
            if step % 10 == 0:
                bar.set_postfix(loss=f"{losses['total']:.3f}", lm=f"{losses['landmarks']:.3f}")

        model, summary = train_attribute_model(cfg, data, state_path=args.state, resume=args.resume, device=device,
                                               on_step=on_step, stop_after=args.stop_after)
    if summary["steps"] < cfg.steps:
        print(f"stopped at step {summary['steps']}/{cfg.steps}; continue with --resume")
        return 0
    model = model.cpu()
    eval_set = RenderedSet.render(held_out_seeds(args.eval_count), size, workers=args.workers)
    metrics = evaluate_attribute_model(model, eval_set)
    info = {"train_seeds": [start, stop - 1], "steps": summary["steps"], "batch": cfg.batch_size,
            "train_seconds": round(summary["seconds"], 1), "render_seconds": round(render_s, 1),
            "eval_seeds": [held_out_seeds(args.eval_count)[0], held_out_seeds(args.eval_count)[-1]],
            "params": sum(p.numel() for p in model.parameters()), "seed": cfg.seed, "lr": cfg.lr}
    save_attribute_model(model, args.out, metadata=info)
    metrics_path = Path(args.metrics) if args.metrics else Path(args.out).with_suffix(".metrics.json")
    metrics_path.write_text(json.dumps({"info": info, "metrics": metrics}, indent=2))
    worst = min(v["accuracy"] for v in metrics.values() if v.get("kind") == "binary")
    print(f"saved {args.out} ({info['params']} parameters); held-out: worst binary accuracy {worst:.4f}, "
          f"landmark error {metrics['landmarks']['mean_error_pct']:.2f}% of width; metrics in {metrics_path}")
    return 0
