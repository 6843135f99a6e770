"""Projection benchmark: quality (PSNR, LPIPS) vs steps and vs seconds for the baseline and default schedules.

Two test sets:
  * generated: images of the generator itself from known latents (z from numpy RandomState(1000 + i), psi 1), so the
    latent-recovery error can be measured (mean over layers of |w - w_true| / sigma_w);
  * toon photos: held-out toon *photo* renders (seeds 10,000,000 + i, 256 px) aligned with the FFHQ rule from their
    ground-truth landmarks (or --toon-landmarker to use the landmark model) and resized to the generator resolution.

Quality is measured on the final images with PSNR and the shift-tolerant LPIPS AlexNet distance (a different network
from the VGG both schedules optimise, so neither is graded on its own loss) and the LPIPS VGG distance.

    PYTHONPATH=. nice -n 10 python benchmarks/bench_projection.py --model random:small --generated 4 --photos 4 \
        --out docs/bench/projection_small.json
    PYTHONPATH=. nice -n 10 python benchmarks/bench_projection.py --model demo --generated 50 --photos 50 --threads 2

Writes a JSON with every curve, and a PNG plot next to it when matplotlib is available.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="random:small", help="generator source (default random:small)")
    p.add_argument("--generated", type=int, default=4, help="generated images with known latents")
    p.add_argument("--photos", type=int, default=4, help="held-out toon photos")
    p.add_argument("--schedules", default="baseline,default,default-w", help="comma list: baseline, default "
                   "(W then W+), default-w (W only), w-alex, w-pixel, w-disc, w-nosearch (W-only variants: other "
                   "perceptual losses, mean-w start)")
    p.add_argument("--baseline-steps", type=int, default=1000)
    p.add_argument("--default-steps", type=int, default=100)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared 2-core machine)")
    p.add_argument("--toon-landmarker", action="store_true", help="align photos with the toon landmark model")
    p.add_argument("--out", default="docs/bench/projection.json")
    p.add_argument("--summarise", metavar="JSON", default=None, help="only summarise an existing results file")
    p.add_argument("--cost", action="store_true", help="only measure CPU seconds of initialisation and of one step "
                   "per schedule (process time, so the numbers do not depend on other load; use --threads 1)")
    p.add_argument("--cost-steps", type=int, default=4, help="steps timed by --cost (after one warm-up step)")
    return p.parse_args(argv)


def schedules(args):
    from editor.projection import BASELINE, DEFAULT

    n = args.default_steps
    table = {
        "baseline": replace(BASELINE, steps=args.baseline_steps),
        "default": replace(DEFAULT, steps=n, early_stop_patience=0),  # W for 40 % of steps, then W+
        "default-w": replace(DEFAULT, steps=n, space="w", early_stop_patience=0),
        "w-alex": replace(DEFAULT, steps=n, space="w", perceptual="alex", early_stop_patience=0),
        "w-pixel": replace(DEFAULT, steps=n, space="w", perceptual="none", early_stop_patience=0),
        "w-disc": replace(DEFAULT, steps=n, space="w", perceptual="disc", early_stop_patience=0),
        "w-nosearch": replace(DEFAULT, steps=n, space="w", init_candidates=0, early_stop_patience=0),
        "default-search256": replace(DEFAULT, steps=n, init_candidates=256, init_resolution=32, early_stop_patience=0),
    }
    return {name: table[name] for name in args.schedules.split(",")}


def snapshot_steps(total: int) -> list[int]:
    marks = [1, 5, 10, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750, 1000, 1500, 2000]
    return sorted({m for m in marks if m <= total} | {total})


def make_targets(G, args):
    from PIL import Image

    from editor import toonfaces
    from editor.align import align_face

    targets = []
    with torch.no_grad():
        for i in range(args.generated):
            z = torch.from_numpy(np.random.RandomState(1000 + i).randn(1, G.z_dim).astype(np.float32))
            ws = G.mapping(z, None)
            img = G.synthesis(ws, noise_mode="const")
            u8 = (img[0] * 127.5 + 128).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
            targets.append(("generated", i, u8, ws.clone()))
    finder = None
    if args.toon_landmarker:
        from editor.align import ToonLandmarker

        finder = ToonLandmarker()
    for i in range(args.photos):
        seed = 10_000_000 + i
        r = toonfaces.render(seed, 256, "photo")
        lm = r.landmarks if finder is None else finder.detect(r.image)[0].landmarks
        aligned = align_face(r.image, lm, 256).image
        u8 = np.asarray(Image.fromarray(aligned).resize((G.img_resolution,) * 2, Image.Resampling.LANCZOS))
        targets.append(("photo", seed, u8, None))
    # interleave the two sets so that a partial run (results are written after every projection) covers both
    gen = [t for t in targets if t[0] == "generated"]
    pho = [t for t in targets if t[0] == "photo"]
    mixed = [t for pair in zip(gen, pho) for t in pair]
    return mixed + gen[len(pho):] + pho[len(gen):]


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.summarise:
        resummarise(args.summarise)
        return 0
    torch.set_num_threads(args.threads)
    if args.cost:
        measure_cost(args)
        return 0
    from editor.checkpoints import load_generator, load_network
    from editor.projection import lpips_model, project, psnr, w_statistics

    G = load_generator(args.model, progress=False)
    D = None
    scheds = schedules(args)
    if any(c.perceptual == "disc" for c in scheds.values()):
        D = load_network(args.model, "D", progress=False)
    t = time.perf_counter()
    stats = w_statistics(G, 10_000, seed=7)
    stats_seconds = time.perf_counter() - t
    w_avg, w_std = stats
    targets = make_targets(G, args)
    alex, vgg = lpips_model("alex"), lpips_model("vgg")

    def to_t(u8):
        return torch.from_numpy(u8).permute(2, 0, 1)[None].float() / 127.5 - 1

    @torch.no_grad()
    def evaluate(ws, tgt_u8, ws_true):
        img = G.synthesis(ws, noise_mode="const")
        u8 = (img[0] * 127.5 + 128).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
        a, b = to_t(u8), to_t(tgt_u8)
        out = {"psnr": psnr(u8, tgt_u8), "lpips_alex": float(alex(a, b)), "lpips_vgg": float(vgg(a, b))}
        if ws_true is not None:
            out["w_error"] = float((ws - ws_true).norm(dim=2).mean() / w_std)
        return out

    results = {"model": args.model, "threads": args.threads, "w_stats_seconds": stats_seconds,
               "configs": {k: {kk: (list(vv) if isinstance(vv, tuple) else vv) for kk, vv in asdict(c).items()}
                           for k, c in scheds.items()},
               "runs": []}
    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    for kind, ident, tgt, ws_true in targets:
        for name, cfg in scheds.items():
            marks = set(snapshot_steps(cfg.steps))
            snaps = []

            def cb(p, marks=marks, snaps=snaps):
                if p.step in marks:
                    snaps.append((p.step, p.seconds, p.ws))

            res = project(G, tgt, config=cfg, callback=cb, discriminator=D, w_stats=stats)
            curve = []
            for step, secs, ws in snaps:
                curve.append({"step": step, "seconds": secs + stats_seconds, **evaluate(ws, tgt, ws_true)})
            final = evaluate(res.ws, tgt, ws_true)
            run = {"set": kind, "id": ident, "schedule": name, "steps": res.steps_run, "seconds": res.seconds,
                   "final": final, "curve": curve}
            results["runs"].append(run)
            print(f"{kind} {ident} {name}: {res.steps_run} steps {res.seconds:.1f}s psnr {final['psnr']:.2f} "
                  f"alex {final['lpips_alex']:.4f} vgg {final['lpips_vgg']:.4f}"
                  + (f" w_err {final['w_error']:.3f}" if 'w_error' in final else ""), flush=True)
            out_path.write_text(json.dumps(results, indent=1))
    summarise(results)
    out_path.write_text(json.dumps(results, indent=1))
    plot(results, out_path.with_suffix(".png"))
    return 0


def markdown(results: dict, names: dict[str, str] | None = None) -> str:
    """Markdown tables of the mean curves: quality at selected steps and the step reaching the baseline's final."""
    names = names or {}
    lines = []
    for kind in sorted({k.split("/")[0] for k in results["summary"]}):
        lines += [f"**{kind}** (mean over n images)", "",
                  "| schedule | n | step | wall s | PSNR dB | LPIPS-alex | LPIPS-vgg | w error / sigma |",
                  "|---|---|---|---|---|---|---|---|"]
        for key, entry in results["summary"].items():
            if not key.startswith(kind + "/"):
                continue
            label = names.get(key.split("/")[1], key.split("/")[1])
            for c in entry["curve"]:
                if c["step"] not in (10, 30, 50, 100, 300, 1000):
                    continue
                w = f"{c['w_error']:.3f}" if "w_error" in c else "-"
                lines.append(f"| {label} | {entry['n']} | {c['step']} | {c['seconds']:.0f} | {c['psnr']:.2f} | "
                             f"{c['lpips_alex']:.4f} | {c['lpips_vgg']:.4f} | {w} |")
        lines.append("")
        lines += ["| schedule | first step at or beyond the baseline's 1000-step PSNR / LPIPS-alex / LPIPS-vgg |",
                  "|---|---|"]
        for key, entry in results["summary"].items():
            if key.startswith(kind + "/") and "reaches_baseline_final" in entry:
                r = entry["reaches_baseline_final"]
                label = names.get(key.split("/")[1], key.split("/")[1])
                lines.append(f"| {label} | {r['psnr']} / {r['lpips_alex']} / {r['lpips_vgg']} |")
        lines.append("")
    return "\n".join(lines)


def resummarise(path: str) -> None:
    """Summarise (and plot) a partial or finished results file (`bench_projection.py --summarise FILE`)."""
    results = json.loads(Path(path).read_text())
    summarise(results)
    print(markdown(results))
    Path(path).write_text(json.dumps(results, indent=1))
    plot(results, Path(path).with_suffix(".png"))


def measure_cost(args) -> None:
    """CPU seconds (process time) of w statistics, of the start search, and of one step, per schedule."""
    from editor.checkpoints import load_generator, load_network
    from editor.projection import lpips_model, project, w_statistics

    G = load_generator(args.model, progress=False)
    scheds = schedules(args)
    D = load_network(args.model, "D", progress=False) if any(c.perceptual == "disc" for c in scheds.values()) else None
    lpips_model("vgg"), lpips_model("alex")
    t = time.process_time()
    stats = w_statistics(G, 10_000, seed=7)
    out = {"model": args.model, "threads": args.threads, "resolution": G.img_resolution,
           "w_stats_cpu_s": time.process_time() - t, "schedules": {}}
    target = np.full((G.img_resolution, G.img_resolution, 3), 128, np.uint8)
    for name, cfg in scheds.items():
        stamps = []
        t0 = time.process_time()
        project(G, target, steps=args.cost_steps + 1, config=cfg, w_stats=stats, discriminator=D,
                callback=lambda p: stamps.append(time.process_time()))
        per_step = float(np.mean(np.diff(stamps)))
        init = stamps[0] - t0 - per_step
        out["schedules"][name] = {"init_cpu_s": init, "step_cpu_s": per_step,
                                  "total_cpu_s_for_schedule": init + per_step * cfg.steps, "steps": cfg.steps}
        print(f"{args.model} {name}: init {init:.2f}s + {per_step:.3f}s/step x {cfg.steps} = "
              f"{init + per_step * cfg.steps:.1f} CPU s", flush=True)
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))


def summarise(results: dict) -> None:
    """Mean curves per (set, schedule) and the step at which each schedule reaches the baseline's final quality."""
    summary = {}
    runs = results["runs"]
    for kind in sorted({r["set"] for r in runs}):
        for name in sorted({r["schedule"] for r in runs}):
            rs = [r for r in runs if r["set"] == kind and r["schedule"] == name]
            if not rs:
                continue
            steps = [c["step"] for c in rs[0]["curve"]]
            mean = []
            for j, s in enumerate(steps):
                row = {"step": s}
                for key in rs[0]["curve"][j]:
                    if key != "step":
                        row[key] = float(np.mean([r["curve"][j][key] for r in rs]))
                mean.append(row)
            summary[f"{kind}/{name}"] = {"n": len(rs), "curve": mean}
    for key, entry in summary.items():
        kind = key.split("/")[0]
        base = summary.get(f"{kind}/baseline")
        if base is None:
            continue
        bf = base["curve"][-1]
        entry["reaches_baseline_final"] = {
            metric: next((c["step"] for c in entry["curve"]
                          if (c[metric] >= bf[metric] if metric == "psnr" else c[metric] <= bf[metric])), None)
            for metric in ("psnr", "lpips_alex", "lpips_vgg")}
    results["summary"] = summary
    for key, entry in summary.items():
        last = entry["curve"][-1]
        print(f"{key:28s} n={entry['n']} final step {last['step']}: psnr {last['psnr']:.2f} alex "
              f"{last['lpips_alex']:.4f} vgg {last['lpips_vgg']:.4f} ({last['seconds']:.1f}s)"
              + (f" w_err {last['w_error']:.3f}" if "w_error" in last else "")
              + (f"  reaches baseline-final at steps {entry['reaches_baseline_final']}"
                 if "reaches_baseline_final" in entry else ""))


def plot(results: dict, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    summary = results["summary"]
    kinds = sorted({k.split("/")[0] for k in summary})
    fig, axes = plt.subplots(len(kinds), 4, figsize=(16, 3.6 * len(kinds)), squeeze=False)
    for row, kind in enumerate(kinds):
        for key, entry in summary.items():
            if not key.startswith(kind + "/"):
                continue
            c = entry["curve"]
            label = key.split("/")[1]
            for col, (x, y) in enumerate((("step", "psnr"), ("seconds", "psnr"), ("step", "lpips_alex"),
                                          ("seconds", "lpips_alex"))):
                ax = axes[row][col]
                ax.plot([p[x] for p in c], [p[y] for p in c], marker=".", label=label)
                ax.set_xscale("log")
                ax.set_xlabel(x)
                ax.set_ylabel(y)
                ax.set_title(f"{kind}: {y} vs {x}")
        axes[row][0].legend()
    fig.suptitle(f"projection on {results['model']}")
    fig.tight_layout()
    fig.savefig(path, dpi=80)


if __name__ == "__main__":
    raise SystemExit(main())
