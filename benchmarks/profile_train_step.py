"""Time and profile StyleGAN2-ADA training iterations on the current device (run by hand, e.g. on a lent GPU).

    python -m benchmarks.profile_train_step --config toon-128 --batches 64,256 --device cuda [--profile]

Prints seconds per iteration (lazy regularisation included: iterations are averaged over a multiple of 16) and
images/s per batch size, and with --profile the ops that take the most device (or CPU) time.
"""

from __future__ import annotations

import argparse
import time

import torch

from editor.stylegan2 import CONFIGS
from editor.train.loop import Trainer, TrainConfig


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(config: str, batch: int, device: torch.device, iters: int = 16) -> float:
    trainer = Trainer(TrainConfig(network=CONFIGS[config], batch=batch), device=device)
    res = CONFIGS[config].img_resolution
    reals = torch.randint(0, 256, (batch, 3, res, res), dtype=torch.uint8)
    for _ in range(4):  # warm-up (cuDNN autotuning, allocator)
        trainer.step(reals)
    _sync(device)
    start = time.perf_counter()
    for _ in range(iters):
        trainer.step(reals)
    _sync(device)
    return (time.perf_counter() - start) / iters


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="toon-128")
    parser.add_argument("--batches", default="64,256")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--iters", type=int, default=16)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    print(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}), "
          f"torch {torch.__version__}, config {args.config}")
    for batch in [int(b) for b in args.batches.split(",")]:
        sec = time_steps(args.config, batch, device, args.iters)
        print(f"batch {batch:4d}: {sec * 1000:8.1f} ms/iteration  {batch / sec:8.1f} img/s")
    if args.profile:
        batch = int(args.batches.split(",")[0])
        trainer = Trainer(TrainConfig(network=CONFIGS[args.config], batch=batch), device=device)
        res = CONFIGS[args.config].img_resolution
        reals = torch.randint(0, 256, (batch, 3, res, res), dtype=torch.uint8)
        for _ in range(4):
            trainer.step(reals)
        activities = [torch.profiler.ProfilerActivity.CPU]
        if device.type == "cuda":
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        with torch.profiler.profile(activities=activities) as prof:
            for _ in range(4):
                trainer.step(reals)
            _sync(device)
        key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
        print(prof.key_averages().table(sort_by=key, row_limit=25, max_name_column_width=60))


if __name__ == "__main__":
    main()
