"""Training speed per configuration on this machine: images/s of the full StyleGAN2-ADA iteration.

Each phase (Gmain, Greg, Dmain, Dreg) is timed on its own after a warm-up, and one iteration's cost is
Gmain + Dmain + Greg / g_reg_interval + Dreg / d_reg_interval + EMA: the average over a lazy-regularisation cycle.
Both wall-clock time and process CPU time are reported: on a shared machine the wall clock depends on the load,
while images per CPU-second is what one otherwise idle core would give.

    python -m benchmarks.bench_train                                  # toon-64 (64 px, channel_max 128), batch 16
    python -m benchmarks.bench_train --configs toon-64,small --batch 16 --threads 1,2 --variants fused,separate --json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace

import torch

from editor.stylegan2 import CONFIGS
from editor.train import TrainConfig, Trainer


def measure(config: str, batch: int, threads: int, fuse_d: bool, reps: int, augment_p: float = 0.0,
            channel_base: int | None = None, pl_weight: float = 2.0) -> dict:
    torch.set_num_threads(threads)
    net = CONFIGS[config] if channel_base is None else replace(CONFIGS[config], channel_base=channel_base)
    cfg = TrainConfig(network=net, batch=batch, fuse_d=fuse_d, augment_p=augment_p, pl_weight=pl_weight)
    tr = Trainer(cfg)
    res = cfg.network.img_resolution
    reals = torch.randint(0, 256, (batch, 3, res, res), dtype=torch.uint8).float() / 127.5 - 1
    phases = dict(tr.phases())
    wall = {p: [] for p in phases}
    cpu = {p: [] for p in phases}
    for rep in range(reps + 1):  # first round: warm-up (oneDNN primitive creation)
        for phase, interval in phases.items():
            w, c = time.perf_counter(), time.process_time()
            tr.run_phase(phase, reals, gain=float(interval))
            if rep:
                wall[phase].append(time.perf_counter() - w)
                cpu[phase].append(time.process_time() - c)
    w, c = time.perf_counter(), time.process_time()
    tr._update_ema()
    ema_w, ema_c = time.perf_counter() - w, time.process_time() - c

    def per_iteration(t: dict, ema: float) -> float:
        return sum(min(t[p]) / phases[p] for p in phases) + ema  # min over repetitions: least disturbed by load

    it_wall, it_cpu = per_iteration(wall, ema_w), per_iteration(cpu, ema_c)
    return {"config": config, "resolution": res, "channel_base": cfg.network.channel_base,
            "channel_max": cfg.network.channel_max, "batch": batch, "pl_weight": pl_weight,
            "threads": threads, "fuse_d": fuse_d, "augment_p": augment_p,
            "img_s_wall": batch / it_wall, "img_per_cpu_s": batch / it_cpu,
            "phase_wall_s": {p: round(min(v), 4) for p, v in wall.items()},
            "phase_cpu_s": {p: round(min(v), 4) for p, v in cpu.items()},
            "load_avg_1min": os.getloadavg()[0]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", default="toon-64", help="comma-separated stylegan2.CONFIGS names")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", default="1,2", help="comma-separated torch thread counts")
    ap.add_argument("--variants", default="fused,separate", help="fused and/or separate Dmain D passes")
    ap.add_argument("--augment-p", type=float, default=0.0, help="ADA p during the measurement (0: pipeline skipped)")
    ap.add_argument("--channel-base", type=int, default=None, help="override the configs' channel_base")
    ap.add_argument("--pl-weight", type=float, default=2.0, help="path-length weight (0 drops the Greg phase)")
    ap.add_argument("--reps", type=int, default=2, help="timed repetitions of each phase (after one warm-up)")
    ap.add_argument("--json", action="store_true", help="print one JSON object per measurement")
    args = ap.parse_args(argv)
    for config in args.configs.split(","):
        for threads in (int(t) for t in args.threads.split(",")):
            for variant in args.variants.split(","):
                r = measure(config, args.batch, threads, variant == "fused", args.reps, args.augment_p,
                            args.channel_base, args.pl_weight)
                if args.json:
                    print(json.dumps(r), flush=True)
                else:
                    print(f"{config:10s} base {r['channel_base']} {r['resolution']:4d}px batch {args.batch:3d} threads {threads} {variant:8s} "
                          f"{r['img_s_wall']:7.2f} img/s wall  {r['img_per_cpu_s']:7.2f} img/CPU-s  "
                          f"load {r['load_avg_1min']:.1f}  phases(cpu s) {r['phase_cpu_s']}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
