"""How far bfloat16 previews are from float32 ones, in 8-bit pixel levels, and how much faster they are.

    nice -n 10 python -m benchmarks.bench_preview_dtype --models demo random:ffhq-1024 --seeds 0-15 --threads 1

For each model and seed (z from RandomState(seed), psi 0.7, as the app samples faces) the engine's preview
(`Engine.preview_resolution`, its stop-resolution skip image) is rendered with float32 and with bfloat16 activations
(`G.synthesis(..., dtype=torch.bfloat16)`, CPU fast path) and both are converted to 8-bit images as the app does.
Reports the mean and max absolute difference in levels (0-255), the share of pixels off by more than 2 and 8
levels, PSNR (dB), and the median time of each dtype (interleaved). Random-weight generators have far larger
activations than trained ones: their errors are an upper bound, the trained demo model's are the ones users see.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from editor.checkpoints import load_generator
from editor.commands._util import parse_range
from editor.engine import Direction, EditBank, Engine, EngineConfig, image_to_uint8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["demo", "random:ffhq-1024"])
    parser.add_argument("--seeds", default="0-15")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads\n")
    print("| model | preview px | seeds | mean abs diff (levels) | max abs diff | pixels > 2 levels | pixels > 8 levels "
          "| PSNR dB | float32 ms | bfloat16 ms |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for source in args.models:
        G = load_generator(source, "cpu", progress=False)
        bank = EditBank((Direction("a", np.ones(G.w_dim)),))
        engine = Engine(G, bank, config=EngineConfig(preview_dtype="float32"))
        res = engine.preview_resolution
        kwargs = {"noise_mode": "const"} | ({"stop_resolution": res} if res != engine.resolution else {})
        diffs, times = [], {"float32": [], "bfloat16": []}
        seeds = parse_range(args.seeds)
        for i, seed in enumerate(seeds):
            ws = torch.from_numpy(np.array(engine.sample(seed).ws))[None]
            frames = {}
            for name in (("float32", "bfloat16") if i % 2 == 0 else ("bfloat16", "float32")):
                dtype = torch.bfloat16 if name == "bfloat16" else None
                with torch.inference_mode():
                    G.synthesis(ws, dtype=dtype, **kwargs)  # warm (first seed) / same cost later
                    t0 = time.perf_counter()
                    img = G.synthesis(ws, dtype=dtype, **kwargs)
                    times[name].append(time.perf_counter() - t0)
                frames[name] = image_to_uint8(img)[0].astype(np.int16)
            diffs.append(np.abs(frames["float32"] - frames["bfloat16"]))
        d = np.stack(diffs).astype(np.float64)
        mse = float((d ** 2).mean())
        psnr = 10 * np.log10(255 ** 2 / mse) if mse > 0 else float("inf")
        print(f"| {source} | {res} | {len(seeds)} | {d.mean():.2f} | {int(d.max())} | {100 * (d > 2).mean():.2f} % | "
              f"{100 * (d > 8).mean():.3f} % | {psnr:.1f} | {1000 * statistics.median(times['float32']):.1f} | "
              f"{1000 * statistics.median(times['bfloat16']):.1f} |", flush=True)


if __name__ == "__main__":
    main()
