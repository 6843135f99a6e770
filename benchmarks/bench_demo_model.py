"""The demo generator's bar (issue: "a demo model that is a working face editor"), on held-out seeds.

    nice -n 10 python -m benchmarks.bench_demo_model --model demo --num 2000 --json docs/demo_model/bar.json \
        --sheet docs/demo_model/contact_sheet.png

Measures, for a generator distilled from the toon world (it knows T, so every sample has its truth):
- FD in the attribute model's embedding, generated vs renders of other latents, with the floor (renders vs renders);
- every binary attribute's rate on generated faces (as the attribute model labels them) against the rate on renders
  (same judge), and the judge's accuracy on generated faces against the truth of T(z) (its accuracy on the renders
  of the same latents is the ceiling);
- a contact sheet: 64 generated faces (left) next to the renders of the same latents (right).
Held-out seeds start at 30,000,000 (z = RandomState(seed).randn(z_dim), as the app's seeds); the floor's second set
of renders uses seeds from 31,000,000.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

HELD_OUT = 30_000_000
FLOOR = 31_000_000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="demo")
    p.add_argument("--num", type=int, default=2000, help="held-out faces (and renders) per set")
    p.add_argument("--json", default=None)
    p.add_argument("--sheet", default=None, help="contact sheet PNG (64 generated | 64 renders)")
    args = p.parse_args()

    from editor.attributes import load_attribute_model
    from editor.checkpoints import load_generator, resolve_source
    from editor.labelers import TruthLabeler
    from editor.metrics import frechet_distance_from_features
    from editor.samples import z_from_seeds
    from editor.toonfaces import ATTRIBUTES
    from editor.train.distill import generate
    from editor.train.loop import _to_uint8, image_grid

    t0 = time.time()
    G = load_generator(args.model, device="cpu").eval()
    world = TruthLabeler.for_model(resolve_source(args.model)).world
    judge = load_attribute_model()
    res = G.img_resolution
    z = z_from_seeds(range(HELD_OUT, HELD_OUT + args.num), G.z_dim)
    fakes = _to_uint8(generate(G, z))
    renders = world.render(z, res)
    floor_renders = world.render(z_from_seeds(range(FLOOR, FLOOR + args.num), G.z_dim), res)
    truth = world.attributes(z)

    pf, pr, pfl = (judge.predict(x) for x in (fakes, renders, floor_renders))
    lf, lr = pf.labels(), pr.labels()
    out: dict = {"model": args.model, "num": args.num, "resolution": res,
                 "fd_attr": frechet_distance_from_features(pf.embedding, pfl.embedding),
                 "fd_attr_floor": frechet_distance_from_features(pr.embedding, pfl.embedding),
                 "binary": {}}
    for spec in ATTRIBUTES:
        if spec.kind != "binary":
            continue
        t = np.array([a[spec.name] for a in truth])
        f, r = lf[spec.name].numpy(), lr[spec.name].numpy()
        out["binary"][spec.name] = {"rate_generated": float(f.mean()), "rate_renders": float(r.mean()),
                                    "rate_truth": float(t.mean()), "judge_acc_generated": float((f == t).mean()),
                                    "judge_acc_renders": float((r == t).mean())}
    b = out["binary"]
    out["max_rate_gap"] = max(abs(v["rate_generated"] - v["rate_renders"]) for v in b.values())
    out["min_judge_acc_generated"] = min(v["judge_acc_generated"] for v in b.values())
    out["bar"] = {"fd_attr<=1.0": out["fd_attr"] <= 1.0, "rates_within_3_points": out["max_rate_gap"] <= 0.03,
                  "judge_acc>=0.95": out["min_judge_acc_generated"] >= 0.95}
    out["seconds"] = round(time.time() - t0, 1)
    print(json.dumps(out, indent=2))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    if args.sheet:
        from PIL import Image

        gap = np.full((8 * res, res // 4, 3), 255, np.uint8)
        sheet = np.concatenate([image_grid(fakes[:64], 8), gap, image_grid(renders[:64], 8)], axis=1)
        Path(args.sheet).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(sheet).save(args.sheet)


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    main()
