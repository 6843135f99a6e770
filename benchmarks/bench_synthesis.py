"""Synthesis speed of random-weight generators: latency at batch 1, throughput at batch 8.

    nice -n 10 python -m benchmarks.bench_synthesis                      # ffhq-1024/512/256 on the best device
    python -m benchmarks.bench_synthesis --configs ffhq-256 --repeats 9 --json
    python -m benchmarks.bench_synthesis --device cpu --threads 2 --batch-sizes 1
    python -m benchmarks.bench_synthesis --configs ffhq-1024 --preview 256 --batch-sizes 1   # slider preview

(run from the repository root)
Times `G.synthesis(ws, noise_mode='const')` only (the mapping network is ~1 ms and cached by the editor), under
torch.inference_mode, after `--warmup` untimed calls; reports the median (and min/max) of `--repeats` timed calls.
On CUDA the reference behaviour is kept: fp16 for the `num_fp16_res` highest resolutions.
Results are recorded by hand in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time

import torch

from editor.checkpoints import load_generator
from editor.commands._util import parse_range, resolve_device


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_synthesis(G, batch: int, device: torch.device, repeats: int, warmup: int, seed: int = 0,
                   stop_resolution: int | None = None) -> tuple[list[float], list[float]]:
    """(wall seconds, process CPU seconds) per `G.synthesis` call for `repeats` timed calls on a fixed ws batch
    [batch, num_ws, w_dim]. CPU seconds are less sensitive to other work on a shared machine than wall time.
    stop_resolution: time the low-resolution preview (`G.synthesis(..., stop_resolution=R)`) instead."""
    kwargs = {"noise_mode": "const"}
    if stop_resolution is not None:
        kwargs["stop_resolution"] = stop_resolution
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn([batch, G.z_dim], generator=gen).to(device)  # [batch, z_dim]
    with torch.inference_mode():
        ws = G.mapping(z, None, truncation_psi=0.7)  # [batch, num_ws, w_dim]
        for _ in range(warmup):
            G.synthesis(ws, **kwargs)
        _sync(device)
        times, cpu_times = [], []
        for _ in range(repeats):
            start, cpu_start = time.perf_counter(), time.process_time()
            img = G.synthesis(ws, **kwargs)  # [batch, 3, H, W]
            _sync(device)
            times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu_start)
    if not torch.isfinite(img).all():
        raise RuntimeError("synthesis produced non-finite values")
    return times, cpu_times


def machine_description(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical CPUs, {torch.get_num_threads()} torch threads"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default="ffhq-1024,ffhq-512,ffhq-256",
                        help="comma-separated editor.stylegan2.CONFIGS names (default: the three FFHQ sizes)")
    parser.add_argument("--batch-sizes", default="1,8", help="batch sizes (default 1,8)")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per case (>= 5 for the docs; default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls first (default 1)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, ... (default auto)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--preview", type=int, default=None, metavar="RES",
                        help="time the skip-image preview that stops at resolution RES (e.g. 256) instead")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    args = parser.parse_args(argv)

    if args.repeats < 1 or args.warmup < 0:
        parser.error("--repeats must be >= 1 and --warmup >= 0")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(resolve_device(args.device))
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    batches = parse_range(args.batch_sizes)

    load_before = os.getloadavg()[0]
    results = []
    for name in configs:
        G = load_generator(f"random:{name}", device=device)
        for batch in batches:
            times, cpu_times = time_synthesis(G, batch, device, args.repeats, args.warmup,
                                              stop_resolution=args.preview)
            median = statistics.median(times)
            results.append({
                "config": name, "resolution": args.preview or G.img_resolution, "batch": batch, "repeats": len(times),
                "median_s": median, "min_s": min(times), "max_s": max(times),
                "ms_per_image": 1000 * median / batch, "images_per_s": batch / median,
                "cpu_s_median": statistics.median(cpu_times),
            })
            if not args.json:
                print(f"  {name} batch {batch}: median {median:.3f} s", file=sys.stderr, flush=True)
        del G

    info = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "device": str(device), "machine": machine_description(device), "torch": torch.__version__,
        "python": platform.python_version(), "dtype": "fp32" if device.type == "cpu" else "fp16 high-res blocks",
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],  # before, after
        "results": results,
    }
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"{info['date']} | {info['machine']} | torch {info['torch']} | {info['dtype']} | median of "
          f"{args.repeats} after {args.warmup} warm-up | 1-min load average {info['load_average_1min'][0]} before, "
          f"{info['load_average_1min'][1]} after (other work on the machine slows these numbers)")
    print("| config | out res | batch | median s/call | ms/image | images/s | min s | max s | CPU s/call |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['config']} | {r['resolution']} | {r['batch']} | {r['median_s']:.3f} | {r['ms_per_image']:.1f} | "
              f"{r['images_per_s']:.2f} | {r['min_s']:.3f} | {r['max_s']:.3f} | {r['cpu_s_median']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
