"""Benchmark: sampling + labelling + fitting a full direction bank (issue 5 target: N = 5000 in <= 3 min on CPU).

    python benchmarks/bench_bank.py --model random:toon-64 --n 5000 --labeler toon-random
    python benchmarks/bench_bank.py --model demo --n 5000 --labeler toon

--labeler toon-random uses an untrained AttributeNet of the default size: the same cost as the trained model, for
timing before the trained checkpoint exists. Prints one JSON line with the phase timings: wall seconds and this
process's CPU seconds (cpu_*; on a shared machine, cpu / threads estimates the wall time the machine would take
alone) and the 1-minute load average at the end.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="random:toon-64")
    p.add_argument("--n", type=int, default=5000)
    p.add_argument("--labeler", default="toon-random", help="toon-random | toon[:CKPT] | stats | clip:...")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--methods", default="meandiff,logreg,svm,mahalanobis,shrink,pca,sefa")
    p.add_argument("--spaces", default="z,w,coarse,middle,fine")
    p.add_argument("--attributes", default=None, help="restrict the fitted attributes (comma-separated)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    from editor.bank import Bank, FitOptions, build_entries, generator_info, save_bank
    from editor.checkpoints import load_generator
    from editor.commands.build_bank import parse_spaces
    from editor.labelers import AttributeModelLabeler, make_labeler
    from editor.samples import SampleCache, SampleSpec

    c0 = time.process_time()
    t0 = time.perf_counter()
    G = load_generator(args.model)
    if args.labeler == "toon-random":
        from editor.attributes import AttributeNet

        torch.manual_seed(0)
        lab = AttributeModelLabeler.from_model(AttributeNet().eval(), name="toon-random")
    else:
        lab = make_labeler(args.labeler)
    info = generator_info(G)
    tmp = Path(tempfile.mkdtemp(prefix="bench_bank_"))
    try:
        cache = SampleCache(tmp / "samples", SampleSpec(n=args.n, chunk=500),
                            {"model_id": info.model_id, "z_dim": info.z_dim, "w_dim": info.w_dim,
                             "num_ws": info.num_ws})
        t1 = time.perf_counter()
        c1 = time.process_time()
        cache.fill(G, [], batch=args.batch)  # latents only: the mapping network
        t2 = time.perf_counter()
        cache.fill(G, [lab], batch=args.batch)  # render + label
        t3 = time.perf_counter()
        c3 = time.process_time()
        s = cache.load()
        scores = s.scores[lab.name]
        if args.attributes:
            scores = {a: scores[a] for a in args.attributes.split(",")}
        methods = args.methods.split(",")
        spaces = parse_spaces(args.spaces, G.num_ws)
        sup = [m for m in methods if m not in ("pca", "sefa")]
        uns = [m for m in methods if m in ("pca", "sefa")]
        entries = build_entries(s.z, s.ws, scores, lab.name, sup, spaces, FitOptions(), G=G)
        entries += build_entries(s.z, s.ws, {}, "", uns, spaces, FitOptions(), G=G) if uns else []
        t4 = time.perf_counter()
        c4 = time.process_time()
        path = save_bank(Bank(info, tuple(entries), command="benchmarks/bench_bank.py"), tmp / "bank.safetensors")
        t5 = time.perf_counter()
        svm_acc = [e.val_accuracy for e in entries if e.method == "svm" and e.space.kind == "w"]
        print(json.dumps({
            "model": args.model, "labeler": lab.name, "n": args.n, "threads": args.threads,
            "img_resolution": int(G.img_resolution), "w_dim": info.w_dim, "num_ws": info.num_ws,
            "load_s": round(t1 - t0, 2), "mapping_s": round(t2 - t1, 2), "render_label_s": round(t3 - t2, 2),
            "fit_s": round(t4 - t3, 2), "cpu_render_label_s": round(c3 - c1, 2), "cpu_fit_s": round(c4 - c3, 2),
            "load_avg_1min": round(__import__("os").getloadavg()[0], 2), "save_s": round(t5 - t4, 2), "total_s": round(t5 - t0, 2),
            "entries": len(entries), "attributes": len(scores), "bank_mb": round(path.stat().st_size / 2**20, 2),
            "median_svm_val_acc_w": float(np.median(svm_acc)) if svm_acc else None,
        }))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
