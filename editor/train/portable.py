"""Move a training run between machines when its full state is too big to carry.

`training_state.pt` holds G, D, G_ema and both Adam states (about 200 MB for toon-128). This tool writes the part
that matters for continuing (the three networks, images seen, ADA p) as small safetensors shards, and turns such
shards back into a resumable run directory with fresh optimiser state (Adam's beta1 is 0 in StyleGAN2, so only the
second-moment estimate is lost; it re-estimates within a few hundred iterations).

    python -m editor.train.portable export runs/toon128 OUTDIR [--dtype float16] [--max-mb 15]
    python -m editor.train.portable import OUTDIR runs/toon128
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from editor.train.loop import CONFIG_FILE, STATE_FILE, Trainer, TrainConfig

NETS = ("G", "D", "G_ema")


def export_state(run: Path, out: Path, dtype: torch.dtype, max_mb: float) -> list[Path]:
    state = torch.load(run / STATE_FILE, map_location="cpu", weights_only=True)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {f"{net}/{k}": v.to(dtype) if v.is_floating_point() else v
               for net in NETS for k, v in state[net].items()}
    shards, current, size = [], {}, 0
    for name, t in tensors.items():
        nbytes = t.numel() * t.element_size()
        if current and size + nbytes > max_mb * 2 ** 20:
            shards.append(current)
            current, size = {}, 0
        current[name] = t.contiguous()
        size += nbytes
    shards.append(current)
    paths = []
    for i, shard in enumerate(shards):
        path = out / f"portable-{i:02d}.safetensors"
        save_file(shard, str(path))
        paths.append(path)
    meta = {"config": state["config"], "cur_nimg": state["cur_nimg"], "batch_idx": state["batch_idx"],
            "augment_p": state["augment_p"], "shards": [p.name for p in paths], "dtype": str(dtype)}
    (out / "portable.json").write_text(json.dumps(meta, indent=2) + "\n")
    return paths


def import_state(src: Path, run: Path) -> Path:
    meta = json.loads((src / "portable.json").read_text())
    tensors: dict[str, torch.Tensor] = {}
    for name in meta["shards"]:
        tensors.update(load_file(str(src / name)))
    cfg = TrainConfig.from_json(meta["config"])
    trainer = Trainer(cfg, device="cpu")
    for net in NETS:
        sub = {k.split("/", 1)[1]: v for k, v in tensors.items() if k.startswith(net + "/")}
        getattr(trainer, net).load_state_dict(sub, strict=True)
    trainer.cur_nimg = int(meta["cur_nimg"])
    trainer.batch_idx = int(meta["batch_idx"])
    if trainer.augment is not None:
        trainer.augment.p = float(meta["augment_p"])
    run.mkdir(parents=True, exist_ok=True)
    (run / CONFIG_FILE).write_text(json.dumps(cfg.to_json(), indent=2) + "\n")
    trainer.save_state(run / STATE_FILE)
    return run / STATE_FILE


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export")
    e.add_argument("run", type=Path)
    e.add_argument("out", type=Path)
    e.add_argument("--dtype", default="float16", choices=("float16", "float32", "bfloat16"))
    e.add_argument("--max-mb", type=float, default=15.0, help="largest shard (MiB)")
    i = sub.add_parser("import")
    i.add_argument("src", type=Path)
    i.add_argument("run", type=Path)
    args = parser.parse_args(argv)
    if args.cmd == "export":
        for p in export_state(args.run, args.out, getattr(torch, args.dtype), args.max_mb):
            print(p, f"{p.stat().st_size / 2 ** 20:.1f} MiB")
    else:
        print(import_state(args.src, args.run))
    return 0


if __name__ == "__main__":
    sys.exit(main())
