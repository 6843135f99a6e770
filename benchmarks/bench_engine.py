"""Edit latency of the backend (editor/engine.py) on this CPU: slider move -> new image, against the reference.

    nice -n 10 python -m benchmarks.bench_engine --configs toon-64 toon-128 ffhq-1024 --repeats 20
    python -m benchmarks.bench_engine --configs ffhq-1024 --repeats 5 --threads 2 --reference /work/ref/stylegan2-ada-pytorch

For each generator configuration (random weights; the demo model when given as 'demo') it times, after a warm-up,
renders of new slider values (frame-cache misses): drag previews (the engine's preview size and dtype), full
renders of a W edit (every layer), full renders of a W+ edit of the fine layers (8 and up: the engine resumes after
the blocks it leaves unchanged), and repeated renders of one state (frame-cache hits); and the bare
`G.synthesis(ws)` of the same codes (no engine), interleaved with the renders, so that the engine's own cost is the
difference. With a reference checkout (`--reference PATH` or $STYLEGAN2_REFERENCE) NVIDIA's synthesis of the same
codes is interleaved too and each render is also given as a fraction of it. Prints markdown tables (p50 / p95 ms).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch

from benchmarks._reference import reference_generator, reference_path, reference_synthesis, skip_note
from editor.engine import Direction, EditBank, EditState, Engine, EngineConfig, layer_preset

KINDS = ("preview", "full_w", "full_fine", "bare", "reference")


def percentile(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q))


def build(config: str) -> torch.nn.Module:
    from editor.checkpoints import load_generator

    source = config if config == "demo" or ":" in config else f"random:{config}"
    return load_generator(source, "cpu", progress=False)


def bench(config: str, repeats: int, threads: int, ref_path, engine_config: EngineConfig) -> dict:
    torch.set_num_threads(threads)
    G = build(config)
    R = reference_generator(ref_path, G) if ref_path is not None else None
    rng = np.random.default_rng(0)
    bank = EditBank(tuple(Direction(f"a{i}", rng.standard_normal(G.w_dim), sigma=1.0) for i in range(4)))
    engine = Engine(G, bank, config=engine_config)
    latent = engine.sample(0)
    fine = layer_preset("fine", engine.num_ws)
    values = rng.uniform(-3, 3, size=repeats + 2)
    out = {"config": config, "resolution": engine.resolution, "preview_px": engine.preview_resolution,
           "preview_dtype": str(engine.preview_dtype or torch.float32).replace("torch.", ""),
           **{k: [] for k in KINDS}, **{k + "_cpu": [] for k in KINDS}}

    def state(kind: str, v: float) -> EditState:
        if kind == "full_fine":
            return EditState.create(latent, {"a0": v, "a1": 0.5}, space="w+", layers=fine, locked=["a2"])
        return EditState.create(latent, {"a0": v, "a1": 0.5}, locked=["a2"])

    def run(kind: str, v: float):
        if kind in ("bare", "reference"):
            ws = engine.edited_ws(state("full_w", v))[None]
            with torch.inference_mode():
                return G.synthesis(ws, noise_mode="const") if kind == "bare" else reference_synthesis(R, ws)
        engine.frames.clear()  # a new frame every time
        return engine.render(state(kind, v), preview=(kind == "preview"))

    kinds = [k for k in KINDS if k != "reference" or R is not None]
    for kind in kinds:  # warm-up (fills the delta / style / prefix caches of this latent)
        run(kind, 0.123)
    for i, v in enumerate(values[:repeats]):
        for kind in (kinds if i % 2 == 0 else kinds[::-1]):
            t0, c0 = time.perf_counter(), time.thread_time()
            run(kind, float(v))
            out[kind].append(time.perf_counter() - t0)
            out[kind + "_cpu"].append(time.thread_time() - c0)
    hits = []
    st = EditState.create(latent, {"a0": 1.0})
    engine.render(st)
    for _ in range(200):
        t0 = time.perf_counter()
        engine.render(st)
        hits.append(time.perf_counter() - t0)
    out["hit"] = hits
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=["toon-64", "toon-128", "ffhq-256", "ffhq-1024"])
    parser.add_argument("--repeats", type=int, default=20, help="renders of each kind (1024 px: a quarter, >= 5)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--preview-dtype", default="auto", choices=["auto", "float32", "bfloat16"])
    parser.add_argument("--preview-resolution", type=int, default=256,
                        help="largest preview block (EngineConfig.preview_resolution; app.py lowers it to fit "
                             "EDITOR_PREVIEW_BUDGET_S)")
    parser.add_argument("--no-keep-freed-memory", action="store_true",
                        help="leave glibc's malloc settings alone (EngineConfig.keep_freed_memory=False)")
    parser.add_argument("--reference", default=None, metavar="PATH",
                        help="stylegan2-ada-pytorch checkout (default: $STYLEGAN2_REFERENCE)")
    args = parser.parse_args()
    ref_path = reference_path(args.reference)
    engine_config = EngineConfig(preview_dtype=args.preview_dtype, keep_freed_memory=not args.no_keep_freed_memory,
                                 preview_resolution=args.preview_resolution)
    print(f"torch {torch.__version__}; load average before: {os.getloadavg()[0]:.1f}; torch threads {args.threads}; "
          f"keep_freed_memory {engine_config.keep_freed_memory}")
    print("CPU ms = this thread's CPU time (meaningful with --threads 1, where it does not depend on other load); "
          "renders are frame-cache misses; 'bare' = G.synthesis of the same codes without the engine")
    if ref_path is None:
        print(skip_note())
    print()
    print("| generator | size | preview (size, dtype) | preview p50 / p95 ms | full W p50 / p95 ms | full W+ fine p50 "
          "/ p95 ms | bare synthesis p50 ms | engine − bare (full W) ms | reference synthesis p50 ms | preview / "
          "full W / full fine ÷ reference | cache hit p50 ms |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    cpu_rows = []
    for config in args.configs:
        reps = args.repeats if "1024" not in config else max(5, args.repeats // 4)
        r = bench(config, reps, args.threads, ref_path, engine_config)
        ms = {k: [1000 * t for t in r[k]] for k in KINDS + ("hit",) if r[k]}
        med = {k: statistics.median(v) for k, v in ms.items()}
        ref = med.get("reference")
        ratios = (f"{med['preview'] / ref:.2f} / {med['full_w'] / ref:.2f} / {med['full_fine'] / ref:.2f}"
                  if ref else "–")
        print(f"| {config} | {r['resolution']} | {r['preview_px']} px, {r['preview_dtype']} | "
              f"{med['preview']:.1f} / {percentile(ms['preview'], 95):.1f} | "
              f"{med['full_w']:.1f} / {percentile(ms['full_w'], 95):.1f} | "
              f"{med['full_fine']:.1f} / {percentile(ms['full_fine'], 95):.1f} | {med['bare']:.1f} | "
              f"{statistics.median(np.subtract(ms['full_w'], ms['bare'])):.1f} | "
              f"{f'{ref:.1f}' if ref else '–'} | {ratios} | {med['hit']:.3f} |", flush=True)
        cpu = {k: statistics.median(r[k + "_cpu"]) * 1000 for k in KINDS if r[k + "_cpu"]}
        ref_cpu = cpu.get("reference")
        cpu_rows.append(f"| {config} | {r['preview_px']} px | {cpu['preview']:.0f} | {cpu['full_w']:.0f} | "
                        f"{cpu['full_fine']:.0f} | {cpu['bare']:.0f} | {f'{ref_cpu:.0f}' if ref_cpu else '–'} | "
                        + (f"{cpu['preview'] / ref_cpu:.2f} / {cpu['full_w'] / ref_cpu:.2f} / "
                           f"{cpu['full_fine'] / ref_cpu:.2f} |" if ref_cpu else "– |"))
    print("\nThe same in this thread's CPU time (p50 ms; robust to other load with --threads 1):\n")
    print("| generator | preview | preview | full W | full W+ fine | bare | reference | preview / full W / fine ÷ "
          "reference |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(cpu_rows))


if __name__ == "__main__":
    main()
