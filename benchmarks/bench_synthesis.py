"""Synthesis speed of random-weight generators: latency at batch 1, throughput at batch 8, against the reference.

    nice -n 10 python -m benchmarks.bench_synthesis --reference /work/ref/stylegan2-ada-pytorch --batch-sizes 1
    python -m benchmarks.bench_synthesis --configs ffhq-256 --repeats 9 --json
    python -m benchmarks.bench_synthesis --device cpu --threads 2 --batch-sizes 1 --malloc keep
    python -m benchmarks.bench_synthesis --configs ffhq-1024 --preview 256 --batch-sizes 1   # slider preview
    python -m benchmarks.bench_synthesis --configs ffhq-1024 --dtype bfloat16 --batch-sizes 1  # bf16 (CPU fast path)

(run from the repository root)
Times `G.synthesis(ws, noise_mode='const')` only (the mapping network is ~1 ms and cached by the editor), under
torch.inference_mode, after `--warmup` untimed calls; reports the median (and min/max) of `--repeats` timed calls.
With a reference checkout (`--reference PATH` or $STYLEGAN2_REFERENCE; see benchmarks/_reference.py) NVIDIA's
generator gets the same weights and ws, its calls are interleaved with ours (order alternating), the ratio is of the
medians, and the max abs difference of the images is printed. `--malloc keep` applies
`editor.memory.keep_freed_memory()` (process-wide, so to the reference too) before anything is timed.
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

from benchmarks._reference import reference_generator, reference_path, reference_synthesis, skip_note
from editor import winograd
from editor.checkpoints import load_generator
from editor.commands._util import parse_range, resolve_device
from editor.memory import keep_freed_memory

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_synthesis(G, batch: int, device: torch.device, repeats: int, warmup: int, seed: int = 0,
                   stop_resolution: int | None = None, dtype: torch.dtype | None = None,
                   R: torch.nn.Module | None = None) -> dict:
    """Wall and process-CPU seconds per `G.synthesis` call for `repeats` timed calls on a fixed ws batch
    [batch, num_ws, w_dim] (CPU seconds are less sensitive to other work on a shared machine than wall time), and,
    with the reference generator R, its times from calls interleaved with ours (alternating which goes first) and
    the max abs difference of the two images. stop_resolution: time the low-resolution preview instead (no
    reference: it has no such option)."""
    kwargs = {"noise_mode": "const"}
    if stop_resolution is not None:
        kwargs["stop_resolution"] = stop_resolution
        R = None
    if dtype is not None:
        kwargs["dtype"] = dtype
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn([batch, G.z_dim], generator=gen).to(device)  # [batch, z_dim]
    out = {"ours": [], "ours_cpu": [], "ref": [], "ref_cpu": []}

    def timed(fn, key):
        start, cpu_start = time.perf_counter(), time.process_time()
        img = fn()  # [batch, 3, H, W]
        _sync(device)
        out[key].append(time.perf_counter() - start)
        out[key + "_cpu"].append(time.process_time() - cpu_start)
        return img

    with torch.inference_mode():
        ws = G.mapping(z, None, truncation_psi=0.7)  # [batch, num_ws, w_dim]
        ours = lambda: G.synthesis(ws, **kwargs)  # noqa: E731
        ref = (lambda: reference_synthesis(R, ws)) if R is not None else None  # noqa: E731
        for _ in range(warmup):
            ours()
            if ref is not None:
                ref()
        _sync(device)
        for i in range(repeats):
            order = [(ours, "ours"), (ref, "ref")] if i % 2 == 0 else [(ref, "ref"), (ours, "ours")]
            for fn, key in order:
                if fn is not None:
                    img = timed(fn, key)
                    if key == "ours" and not torch.isfinite(img).all():
                        raise RuntimeError("synthesis produced non-finite values")
        if ref is not None:
            out["max_abs_diff"] = (ours() - ref()).abs().max().item()
    return out


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
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float32",
                        help="our activations' dtype (bfloat16: the CPU fast path's approximate previews)")
    parser.add_argument("--reference", default=None, metavar="PATH",
                        help="stylegan2-ada-pytorch checkout to compare with (default: $STYLEGAN2_REFERENCE)")
    parser.add_argument("--malloc", choices=["default", "keep"], default="default",
                        help="keep: editor.memory.keep_freed_memory() first (as the app's engine does)")
    parser.add_argument("--winograd", choices=["on", "off"], default="on",
                        help="off: our fast path keeps the direct 3x3 convolutions (editor.winograd.ENABLED)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    args = parser.parse_args(argv)
    winograd.ENABLED = args.winograd == "on"

    if args.repeats < 1 or args.warmup < 0:
        parser.error("--repeats must be >= 1 and --warmup >= 0")
    if args.malloc == "keep" and not keep_freed_memory():
        print("note: keep_freed_memory() is not available here (not glibc)", file=sys.stderr)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(resolve_device(args.device))
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    batches = parse_range(args.batch_sizes)
    ref_path = reference_path(args.reference)
    dtype = DTYPES[args.dtype] if args.dtype != "float32" else None

    load_before = os.getloadavg()[0]
    results = []
    for name in configs:
        G = load_generator(f"random:{name}", device=device)
        R = reference_generator(ref_path, G) if ref_path is not None else None
        for batch in batches:
            t = time_synthesis(G, batch, device, args.repeats, args.warmup, stop_resolution=args.preview,
                               dtype=dtype, R=R)
            median = statistics.median(t["ours"])
            row = {
                "config": name, "resolution": args.preview or G.img_resolution, "batch": batch,
                "repeats": len(t["ours"]), "median_s": median, "min_s": min(t["ours"]), "max_s": max(t["ours"]),
                "ms_per_image": 1000 * median / batch, "images_per_s": batch / median,
                "cpu_s_median": statistics.median(t["ours_cpu"]),
            }
            if t["ref"]:
                row.update(ref_median_s=statistics.median(t["ref"]), ref_cpu_s_median=statistics.median(t["ref_cpu"]),
                           ratio=median / statistics.median(t["ref"]),
                           cpu_ratio=row["cpu_s_median"] / statistics.median(t["ref_cpu"]),
                           max_abs_diff=t["max_abs_diff"])
            results.append(row)
            if not args.json:
                extra = f", reference {row['ref_median_s']:.3f} s" if "ratio" in row else ""
                print(f"  {name} batch {batch}: median {median:.3f} s{extra}", file=sys.stderr, flush=True)
        del G, R

    info = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "device": str(device), "machine": machine_description(device), "torch": torch.__version__,
        "python": platform.python_version(),
        "dtype": (args.dtype if device.type == "cpu" else "fp16 high-res blocks"), "malloc": args.malloc,
        "winograd": args.winograd,
        "reference": str(ref_path) if ref_path else None,
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],  # before, after
        "results": results,
    }
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"{info['date']} | {info['machine']} | torch {info['torch']} | {info['dtype']} | malloc {args.malloc} | "
          f"median of {args.repeats} after {args.warmup} warm-up | 1-min load average "
          f"{info['load_average_1min'][0]} before, {info['load_average_1min'][1]} after")
    if ref_path is None:
        print(skip_note())
        print("| config | out res | batch | median s/call | ms/image | images/s | min s | max s | CPU s/call |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in results:
            print(f"| {r['config']} | {r['resolution']} | {r['batch']} | {r['median_s']:.3f} | "
                  f"{r['ms_per_image']:.1f} | {r['images_per_s']:.2f} | {r['min_s']:.3f} | {r['max_s']:.3f} | "
                  f"{r['cpu_s_median']:.3f} |")
        return 0
    print(f"reference: {ref_path} (interleaved, fp32)")
    print("| config | out res | batch | ours median s | reference median s | ours / reference | ours CPU s | "
          "reference CPU s | CPU ratio | max abs diff |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        if "ratio" in r:
            print(f"| {r['config']} | {r['resolution']} | {r['batch']} | {r['median_s']:.3f} | {r['ref_median_s']:.3f} "
                  f"| **{r['ratio']:.2f}** | {r['cpu_s_median']:.3f} | {r['ref_cpu_s_median']:.3f} | "
                  f"{r['cpu_ratio']:.2f} | {r['max_abs_diff']:.1e} |")
        else:
            print(f"| {r['config']} | {r['resolution']} | {r['batch']} | {r['median_s']:.3f} | – | – | "
                  f"{r['cpu_s_median']:.3f} | – | – | – |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
