"""`python -m editor train-attributes`: train the demo world's attribute + landmark model (resumable, seeded)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from editor.commands._util import resolve_device

NAME = "train-attributes"
HELP = "Train the toon attribute + landmark CNN on renders (seeded, resumable, with progress) and evaluate it."
EXAMPLES = """  nice -n 10 python -m editor train-attributes --out checkpoints/toon_attributes.safetensors
  python -m editor train-attributes --steps 8000 --train-seeds 0-59999 --state runs/attr/state.pt --resume
  python -m editor train-attributes --steps 50 --train-seeds 0-999 --eval-count 200 --out /tmp/tiny.safetensors"""


def add_arguments(parser) -> None:
    parser.add_argument("--out", default="checkpoints/toon_attributes.safetensors", help="weights (safetensors)")
    parser.add_argument("--train-seeds", default="0-31999", help="training seed range START-STOP (inclusive)")
    parser.add_argument("--steps", type=int, default=6000, help="optimizer steps (default 6000)")
    parser.add_argument("--batch", type=int, default=96, help="batch size (default 96)")
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (default 3e-3)")
    parser.add_argument("--seed", type=int, default=0, help="seed of init, batch order, augmentation")
    parser.add_argument("--confound-weight", type=float, default=4.0,
                        help="loss weight of samples whose 'old' label disagrees with 'grey_hair' (default 4)")
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
    parser.add_argument("--card", default=None, help="model card to write (default: --out with .md)")
    parser.add_argument("--evaluate-only", action="store_true",
                        help="skip training: evaluate --out on the held-out renders and rewrite metrics and card")


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
    if args.evaluate_only:
        from editor.attributes import load_attribute_model

        model = load_attribute_model(args.out)
        _evaluate_and_report(model, dict(model.info), args)
        return 0
    start, stop = _parse_seed_range(args.train_seeds)
    cfg = TrainConfig(train_seeds=(start, stop), steps=args.steps, batch_size=args.batch, lr=args.lr,
                      seed=args.seed, warmup=min(200, max(1, args.steps // 10)), net=AttributeNetConfig(),
                      confound_weight=args.confound_weight)
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
    info = {"train_seeds": [start, stop - 1], "steps": summary["steps"], "batch": cfg.batch_size,
            "train_seconds": round(summary["seconds"], 1), "render_seconds": round(render_s, 1),
            "params": sum(p.numel() for p in model.parameters()), "seed": cfg.seed, "lr": cfg.lr,
            "threads": args.threads, "geometric": cfg.geometric, "augment": cfg.augment,
            "confound_weight": cfg.confound_weight, "outliers": cfg.outliers,
            "final_losses": {k: round(v, 4) for k, v in summary["losses"].items()}}
    save_attribute_model(model, args.out, metadata=info)
    _evaluate_and_report(model, info, args)
    return 0


def _evaluate_and_report(model, info: dict, args) -> None:
    from editor.attributes import RenderedSet, evaluate_attribute_model, held_out_seeds, robustness_report
    from editor.toonfaces import RENDER_VERSION

    seeds = held_out_seeds(args.eval_count)
    eval_set = RenderedSet.render(seeds, model.config.input_size, workers=args.workers)
    metrics = evaluate_attribute_model(model, eval_set)
    robust = robustness_report(model, eval_set)
    info = {**info, "eval_seeds": [seeds[0], seeds[-1]], "render_version": RENDER_VERSION,
            "file_bytes": Path(args.out).stat().st_size}
    metrics_path = Path(args.metrics) if args.metrics else Path(args.out).with_suffix(".metrics.json")
    metrics_path.write_text(json.dumps({"info": info, "metrics": metrics, "robustness": robust}, indent=1))
    card = Path(args.card) if args.card else Path(args.out).with_suffix(".md")
    card.write_text(model_card(model, info, metrics, robust))
    worst = min(v["accuracy"] for v in metrics.values() if v.get("kind") == "binary")
    print(f"{args.out} ({info['params']} parameters); held-out: worst binary accuracy {worst:.4f}, "
          f"landmark error {metrics['landmarks']['mean_error_pct']:.2f}% of width; metrics in {metrics_path}, "
          f"card in {card}")


def model_card(model, info: dict, metrics: dict, robust: dict) -> str:
    """Markdown model card from the training info and held-out metrics."""
    from dataclasses import asdict

    from editor.toonfaces import ATTRIBUTES

    cfg = asdict(model.config)
    lines = [
        "# Toon attribute + landmark model (`toon_attributes.safetensors`)",
        "",
        "A compact ResNet-style CNN for the demo world (`editor/toonfaces.py`): one head per attribute in "
        "`toonfaces.ATTRIBUTES` (probabilities for binary and categorical attributes, values for continuous ones), "
        "five landmarks, and a {}-d embedding (penultimate features, used as a feature space for Fréchet "
        "distances). Load with `editor.attributes.load_attribute_model()`.".format(cfg["embed_dim"]),
        "",
        "## Model",
        f"- Input {cfg['input_size']} px RGB in [-1, 1] (any size is resized by `predict`); stem and residual "
        f"blocks with widths {tuple(cfg['widths'])}, strides {tuple(cfg['strides'])}; global average pool + "
        f"flattened {cfg['spatial_channels']}-channel final map -> {cfg['embed_dim']}-d embedding -> heads.",
        f"- {info['params']:,} parameters, float32 safetensors, {info.get('file_bytes', 0) / 1e6:.2f} MB.",
        "",
        "## Data",
        f"- Training: toon portraits (renderer version {info.get('render_version', 1)}) of seeds "
        f"{info['train_seeds'][0]}-{info['train_seeds'][1]} at {cfg['input_size']} px, ground-truth labels and "
        "landmarks from the renderer.",
        f"- Augmentation: photometric jitter, occasional blur, noise ({'on' if info.get('augment', True) else 'off'}); "
        f"zoom 0.8-1.25 / shift ±10 % / rotation ±15° with landmarks transformed on "
        f"{info.get('geometric', 0) * 100:.0f} % of each batch.",
        f"- Non-faces (outlier exposure, toward p = 0.5 / uniform classes): {info.get('outliers', 0) * 100:.0f} % of "
        f"each batch; loss weight {info.get('confound_weight', 1)} on samples whose `old` disagrees with `grey_hair`.",
        f"- Held-out evaluation: {info['eval_seeds'][1] - info['eval_seeds'][0] + 1} renders of seeds "
        f"{info['eval_seeds'][0]}-{info['eval_seeds'][1]}, never used in training.",
        "",
        "## Training",
        f"- {info['steps']} AdamW steps of batch {info['batch']} (peak lr {info['lr']}, warm-up then cosine), seed "
        f"{info['seed']}, CPU, {info.get('threads', 1)} thread(s), niced, on a 2-core machine shared with other jobs.",
        f"- Time: {info['train_seconds'] / 60:.1f} min training + {info['render_seconds'] / 60:.1f} min rendering "
        "the training set.",
        "- Reproduce: `nice -n 10 python -m editor train-attributes --steps {} --batch {} --train-seeds {}-{} "
        "--seed {}`; re-evaluate: `python -m editor train-attributes --evaluate-only`.".format(
            info["steps"], info["batch"], info["train_seeds"][0], info["train_seeds"][1], info["seed"]),
        "",
        "## Held-out metrics",
        "",
        "| attribute | kind | accuracy | ECE | positive rate |",
        "|---|---|---|---|---|",
    ]
    for spec in ATTRIBUTES:
        m = metrics[spec.name]
        if spec.kind == "binary":
            lines.append(f"| {spec.name} | binary | {m['accuracy'] * 100:.2f} % | {m['ece']:.4f} | "
                         f"{m['positive_rate'] * 100:.1f} % |")
    for spec in ATTRIBUTES:
        m = metrics[spec.name]
        if spec.kind == "categorical":
            lines.append(f"| {spec.name} | categorical ({len(spec.classes)}) | {m['accuracy'] * 100:.2f} % | "
                         f"{m['ece']:.4f} | |")
    lines += ["", "| attribute | range | MAE | MAE / range | Pearson r |", "|---|---|---|---|---|"]
    for spec in ATTRIBUTES:
        m = metrics[spec.name]
        if spec.kind == "continuous":
            lines.append(f"| {spec.name} | {spec.low:g} .. {spec.high:g} | {m['mae']:.4f} | "
                         f"{m['mae_of_range'] * 100:.2f} % | {m['corr']:.4f} |")
    lm = metrics["landmarks"]
    lines += ["", f"Landmarks (portraits, error in % of the image width): mean {lm['mean_error_pct']:.3f} %, "
              f"95th percentile {lm['p95_error_pct']:.3f} %; per point: " +
              ", ".join(f"{k} {v:.3f} %" for k, v in lm["per_point_pct"].items()) + ".",
              "",
              "ECE: expected calibration error of the predicted label's confidence, 15 equal-width bins.",
              "",
              "## Off the training distribution", "",
              "| input | worst binary accuracy | mean binary accuracy | landmark error (% width) |",
              "|---|---|---|---|"]
    for name, r in robust["degraded"].items():
        accs = list(r["binary_accuracy"].values())
        lines.append(f"| held-out renders, {name.replace('_', ' ')} | {min(accs) * 100:.2f} % | "
                     f"{np.mean(accs) * 100:.2f} % | {r['landmark_error_pct']:.3f} |")
    lines += ["", "Confidence on images that are not faces (mean |2p − 1| over the binary heads; mean top-class "
              "probability over the categorical heads; 1 = certain):", "",
              "| input | binary confidence (mean over heads) | max over heads | categorical top prob |",
              "|---|---|---|---|"]
    for name, r in robust["non_faces"].items():
        conf = list(r["binary_confidence"].values())
        top = list(r["categorical_top_prob"].values())
        lines.append(f"| {name.replace('_', ' ')} | {np.mean(conf):.3f} | {max(conf):.3f} | {np.mean(top):.3f} |")
    lines += ["", "## Intended use and limits",
              "- Labels, landmarks and embeddings for toon renders and for images generated by models trained on "
              "them (the demo generator). It has never seen a real face; its scores on photos mean nothing.",
              "- Trained on portraits (FFHQ-style alignment); for photos, crop/align first (editor/align.py).",
              "- Continuous heads regress what is visible; values hidden by design (e.g. `age` within the young "
              "range, `hair_length` of bald heads) are predicted near their typical value.", ""]
    return "\n".join(lines)
