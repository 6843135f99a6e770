"""Edit latency of the backend (editor/engine.py) on this CPU: slider move -> new image.

    nice -n 10 python benchmarks/bench_engine.py --configs toon-64 toon-128 ffhq-1024 --repeats 20

For each generator configuration (random weights; the demo model when given as 'demo') it times, after a warm-up:
preview renders (progressive synthesis stopped at <= 256 px) and full renders for new slider values (cache misses),
and repeated renders of the same state (frame-cache hits). Prints a markdown table (p50 / p95 in ms).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch

from editor.engine import Direction, EditBank, EditState, Engine, EngineConfig


def percentile(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q))


def build(config: str) -> torch.nn.Module:
    from editor.checkpoints import load_generator

    source = config if config == "demo" or ":" in config else f"random:{config}"
    return load_generator(source, "cpu", progress=False)


def bench(config: str, repeats: int, threads: int) -> dict:
    torch.set_num_threads(threads)
    G = build(config)
    rng = np.random.default_rng(0)
    bank = EditBank(tuple(Direction(f"a{i}", rng.standard_normal(G.w_dim), sigma=1.0) for i in range(4)))
    engine = Engine(G, bank, config=EngineConfig())
    latent = engine.sample(0)
    values = rng.uniform(-3, 3, size=repeats + 2)
    out = {"config": config, "resolution": engine.resolution, "preview": engine.preview_resolution}
    for preview in (True, False):
        engine.render(EditState.create(latent, {"a0": 0.123}), preview=preview)  # warm-up
        times, cpu = [], []
        for v in values[:repeats]:
            state = EditState.create(latent, {"a0": float(v), "a1": 0.5}, locked=["a2"])
            engine.frames.clear()  # a new frame every time
            t0, c0 = time.perf_counter(), time.thread_time()
            engine.render(state, preview=preview)
            times.append(time.perf_counter() - t0)
            cpu.append(time.thread_time() - c0)
        out["preview_ms" if preview else "full_ms"] = times
        out["preview_cpu" if preview else "full_cpu"] = cpu
    hits = []
    state = EditState.create(latent, {"a0": 1.0})
    engine.render(state)
    for _ in range(200):
        t0 = time.perf_counter()
        engine.render(state)
        hits.append(time.perf_counter() - t0)
    out["hit_ms"] = hits
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=["toon-64", "toon-128", "ffhq-256", "ffhq-1024"])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    print(f"torch {torch.__version__}; load average before: {os.getloadavg()[0]:.1f}")
    print(f"torch threads {args.threads}; CPU ms = this thread's CPU time (meaningful with --threads 1, where it does "
          "not depend on other load)\n")
    print("| generator | size | preview size | preview p50 / p95 ms | preview CPU ms | full p50 / p95 ms | full CPU ms "
          "| cache hit p50 ms |")
    print("|---|---|---|---|---|---|---|---|")
    for config in args.configs:
        r = bench(config, args.repeats if "1024" not in config else max(5, args.repeats // 4), args.threads)
        ms = {k: [1000 * t for t in r[k]] for k in ("preview_ms", "full_ms", "hit_ms", "preview_cpu", "full_cpu")}
        print(f"| {config} | {r['resolution']} | {r['preview']} | "
              f"{statistics.median(ms['preview_ms']):.1f} / {percentile(ms['preview_ms'], 95):.1f} | "
              f"{statistics.median(ms['preview_cpu']):.1f} | "
              f"{statistics.median(ms['full_ms']):.1f} / {percentile(ms['full_ms'], 95):.1f} | "
              f"{statistics.median(ms['full_cpu']):.1f} | "
              f"{statistics.median(ms['hit_ms']):.3f} |", flush=True)


if __name__ == "__main__":
    main()
