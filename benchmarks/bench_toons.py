"""Throughput of the toon renderer: portraits per second (run by hand; results go to docs/demo_world.md).

    python -m benchmarks.bench_toons                       # 64 px, 1 and 2 processes
    python -m benchmarks.bench_toons --size 128 --count 400 --framing photo --json

Reports the single-process rate and the rate of ``render_batch(..., workers=N)``. The machine's load is printed
too: on shared cores the numbers drop with it.
"""

from __future__ import annotations

import argparse
import json
import os
import time


def population_stats(count: int) -> dict:
    """Positive rates of the binary attributes, the documented conditional probabilities and the phi (Pearson)
    correlation between every pair of binary attributes, over seeds 0..count-1 (parameters only: no pixels)."""
    import numpy as np

    from editor.toonfaces import ATTRIBUTES, attributes_of, sample_params

    attrs = [attributes_of(sample_params(s)) for s in range(count)]
    names = [s.name for s in ATTRIBUTES if s.kind == "binary"]
    m = np.array([[a[n] for n in names] for a in attrs], float)  # [count, B]

    def cond(target, **given):
        sel = np.all([m[:, names.index(k)] == v for k, v in given.items()], axis=0)
        return round(float(m[sel, names.index(target)].mean()), 3)

    phi = np.corrcoef(m.T)
    pairs = {f"{names[i]}~{names[j]}": round(float(phi[i, j]), 3) for i in range(len(names))
             for j in range(i + 1, len(names)) if abs(phi[i, j]) >= 0.1}
    age = np.array([a["age"] for a in attrs])
    return {
        "count": count,
        "positive_rate": {n: round(float(m[:, i].mean()), 3) for i, n in enumerate(names)},
        "conditional": {
            "P(grey|old)": cond("grey_hair", old=1), "P(grey|young)": cond("grey_hair", old=0),
            "P(long|beard)": cond("long_hair", beard=1), "P(long|no beard)": cond("long_hair", beard=0),
            "P(bald|beard)": cond("bald", beard=1), "P(bald|no beard)": cond("bald", beard=0),
            "P(lipstick|beard)": cond("lipstick", beard=1),
            "P(lipstick|no beard,long)": cond("lipstick", beard=0, long_hair=1),
            "P(lipstick|no beard,not long)": cond("lipstick", beard=0, long_hair=0),
            "P(open|smiling)": cond("mouth_open", smiling=1), "P(open|not smiling)": cond("mouth_open", smiling=0),
            "P(glasses|old)": cond("eyeglasses", old=1), "P(glasses|young)": cond("eyeglasses", old=0),
        },
        "corr_age_grey": round(float(np.corrcoef(age, m[:, names.index("grey_hair")])[0, 1]), 3),
        "phi_pairs_abs_ge_0.1": pairs,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--count", type=int, default=1000, help="faces per measurement")
    parser.add_argument("--framing", default="portrait", choices=("portrait", "photo"))
    parser.add_argument("--workers", default="1,2", help="process counts to measure, e.g. '1,2'")
    parser.add_argument("--repeats", type=int, default=2, help="take the best of this many runs")
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    parser.add_argument("--stats", type=int, default=0,
                        help="instead: label statistics and correlation strengths over this many seeds")
    args = parser.parse_args(argv)
    if args.stats:
        print(json.dumps(population_stats(args.stats), indent=1))
        return 0

    from editor.toonfaces import render_batch

    render_batch(range(8), args.size, args.framing)  # warm up
    load_before = os.getloadavg()[0]
    results = {}
    # CPU seconds per face in this process: independent of other jobs on the machine
    t_cpu = time.process_time()
    render_batch(range(args.count), args.size, args.framing)
    cpu_rate = args.count / (time.process_time() - t_cpu)
    for w in (int(x) for x in args.workers.split(",")):
        best = 0.0
        for r in range(args.repeats):
            seeds = range(r * args.count, (r + 1) * args.count)
            t0 = time.perf_counter()
            render_batch(seeds, args.size, args.framing, workers=w)
            best = max(best, args.count / (time.perf_counter() - t0))
        results[f"workers_{w}"] = round(best, 1)
    out = {"size": args.size, "framing": args.framing, "count": args.count, "portraits_per_s": results,
           "portraits_per_cpu_second": round(cpu_rate, 1),
           "load_avg_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)], "cpus": os.cpu_count()}
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in results.items():
            print(f"{args.size} px {args.framing}, {k.replace('_', ' ')}: {v:.0f} faces/s")
        print(f"{cpu_rate:.0f} faces per CPU-second of one process (x cores = the rate on idle cores)")
        print(f"load average before/after: {out['load_avg_1min']}, cpus: {out['cpus']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
