"""The demo generator's bar (issue: "a demo model that is a working face editor"), on held-out seeds.

    nice -n 10 python -m benchmarks.bench_demo_model --model demo --num 2000 --json docs/demo_model/bar.json \
        --sheet docs/demo_model/contact_sheet.png

Measures, for a generator distilled from the toon world (it knows T, so every sample has its truth):
- FD in the attribute model's embedding, generated vs renders of other latents, with the floor (renders vs renders);
- every binary attribute's rate on generated faces (as the attribute model labels them) against the rate on renders
  (same judge), and the judge's accuracy on generated faces against the truth of T(z) (its accuracy on the renders
  of the same latents is the ceiling);
- a contact sheet: 64 generated faces (left) next to the renders of the same latents (right);
- the sliders, exactly as the app runs them (``editor.service.open_engine``: the model's bank, the default method,
  space and psi 0.7): for each binary attribute, +3 sigma on held-out faces the judge says lack it (it should gain
  it: >= 90 %) and -3 sigma on faces that have it (it should lose it), every other binary attribute's keep rate
  (>= 90 %, except the world's correlated pairs, which are then locked and must keep >= 95 %), and how far the
  identity moves (skin tone, face width: mean |change| over the spread across renders, bar < 0.25; eye colour:
  share of faces whose class changes). Slider strips of every default slider on 8 faces with --strips.
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


def quality(G, world, judge, num: int, out: dict, sheet: str | None):
    """FD, rates and the judge's accuracy against the truth (into ``out``); returns the judge's view of the renders."""
    from editor.metrics import frechet_distance_from_features
    from editor.samples import z_from_seeds
    from editor.toonfaces import ATTRIBUTES
    from editor.train.distill import generate
    from editor.train.loop import _to_uint8, image_grid

    res = G.img_resolution
    z = z_from_seeds(range(HELD_OUT, HELD_OUT + num), G.z_dim)
    fakes = _to_uint8(generate(G, z))
    renders = world.render(z, res)
    floor_renders = world.render(z_from_seeds(range(FLOOR, FLOOR + num), G.z_dim), res)
    truth = world.attributes(z)

    pf, pr, pfl = (judge.predict(x) for x in (fakes, renders, floor_renders))
    lf, lr = pf.labels(), pr.labels()
    out.update(fd_attr=frechet_distance_from_features(pf.embedding, pfl.embedding),
               fd_attr_floor=frechet_distance_from_features(pr.embedding, pfl.embedding), binary={})
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
    out["bar"].update({"fd_attr<=1.0": out["fd_attr"] <= 1.0, "rates_within_3_points": out["max_rate_gap"] <= 0.03,
                       "judge_acc>=0.95": out["min_judge_acc_generated"] >= 0.95})
    if sheet:
        from PIL import Image

        gap = np.full((8 * res, res // 4, 3), 255, np.uint8)
        grid = np.concatenate([image_grid(fakes[:64], 8), gap, image_grid(renders[:64], 8)], axis=1)
        Path(sheet).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(grid).save(sheet)
    return pr


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="demo")
    p.add_argument("--num", type=int, default=2000, help="held-out faces (and renders) per set")
    p.add_argument("--json", default=None)
    p.add_argument("--sheet", default=None, help="contact sheet PNG (64 generated | 64 renders)")
    p.add_argument("--slider-faces", type=int, default=200, help="faces per attribute and sign (0: skip sliders)")
    p.add_argument("--strips", default=None, help="image of the default sliders at -3..+3 sigma on 8 faces")
    p.add_argument("--strip-attributes", default=None, help="comma-separated sliders for --strips (default: binary)")
    p.add_argument("--bank", default=None, help="direction bank for the sliders (default: the model's, as the app)")
    p.add_argument("--method", default=None, help="direction method for the sliders (default: the app's 'auto')")
    p.add_argument("--alpha", type=float, default=3.0, help="slider value of the edits, in sigma (the bar: 3)")
    args = p.parse_args()

    from editor.attributes import load_attribute_model
    from editor.checkpoints import load_generator, resolve_source
    from editor.labelers import TruthLabeler

    t0 = time.time()
    G = load_generator(args.model, device="cpu").eval()
    judge = load_attribute_model()
    try:
        world = TruthLabeler.for_model(resolve_source(args.model)).world
    except ValueError as exc:  # not distilled: no truth, only the sliders can be measured
        world = None
        print(f"note: {exc}")
    out: dict = {"model": args.model, "num": args.num, "resolution": G.img_resolution, "bank": args.bank,
                 "method": args.method, "bar": {}}
    pr = None
    if world is not None:
        pr = quality(G, world, judge, args.num, out, args.sheet)
    engine = card = None
    if args.slider_faces or args.strips:  # the app's own engine: the model's bank and default settings
        from editor.service import open_engine

        engine, card = open_engine(args.model, bank=args.bank)
    if args.slider_faces:
        out["sliders"] = slider_bar(engine, card, judge, renders_judged=pr, faces=args.slider_faces,
                                    method=args.method, alpha=args.alpha)
        out["sliders"]["alpha"] = args.alpha
        out["bar"]["sliders"] = out["sliders"]["pass"]
    if args.strips:
        names = [a for a in args.strip_attributes.split(",") if a] if args.strip_attributes else None
        slider_strips(engine, args.strips, names)
    out["seconds"] = round(time.time() - t0, 1)
    print(json.dumps(out, indent=2))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


# The world's deliberate correlations as (edited attribute, attribute that may follow it); editing one may move the
# other (see editor.toonfaces.CORRELATIONS), so those pairs are measured with the second attribute locked.
CORRELATED = {("old", "grey_hair"), ("grey_hair", "old"), ("old", "eyeglasses"), ("eyeglasses", "old"),
              ("beard", "long_hair"), ("long_hair", "beard"), ("beard", "bald"), ("bald", "beard"),
              ("beard", "lipstick"), ("lipstick", "beard"), ("long_hair", "lipstick"), ("lipstick", "long_hair"),
              ("smiling", "mouth_open"), ("mouth_open", "smiling"), ("bald", "long_hair"), ("long_hair", "bald")}
IDENTITY = ("skin_tone", "face_width")
SLIDER_SEED = 32_000_000
PSI = 0.7


def _render_edits(engine, seeds, sliders: dict, locked=(), method: str | None = None) -> np.ndarray:
    from editor.engine import EditState

    return np.stack([engine.render(EditState.create(engine.sample(s, PSI), sliders, method=method, locked=locked))
                     for s in seeds])


def slider_bar(engine, card, judge, renders_judged, faces: int, method: str | None = None, alpha: float = 3.0) -> dict:
    """The default sliders' success, leakage and identity numbers (see the module docstring)."""
    from editor.toonfaces import ATTRIBUTES

    binary = [s.name for s in ATTRIBUTES if s.kind == "binary"]
    pool = list(range(SLIDER_SEED, SLIDER_SEED + 6 * faces))
    base = _render_edits(engine, pool, {})
    pb = judge.predict(base)
    lb = {k: v.numpy() for k, v in pb.labels().items()}
    if renders_judged is None:  # the identity's spread across renders of the world (seeds, not latents)
        from editor.toonfaces import render_batch

        renders_judged = judge.predict(render_batch(range(FLOOR, FLOOR + 500), size=engine.resolution)[0])
    spread = {k: float(renders_judged.scores[k].std()) for k in IDENTITY}
    out: dict = {"bank_notices": card.notices, "attributes": {}}
    passed = True
    for name in binary:
        if name not in engine.bank.attributes:
            out["attributes"][name] = {"error": "no slider"}
            passed = False
            continue
        res: dict = {}
        for sign, want in ((+alpha, 1), (-alpha, 0)):
            idx = np.flatnonzero(lb[name] != want)[:faces]
            if len(idx) == 0:
                continue
            seeds = [pool[i] for i in idx]
            edited = _render_edits(engine, seeds, {name: sign}, method=method)
            pe = judge.predict(edited)
            le = {k: v.numpy() for k, v in pe.labels().items()}
            r = {"faces": len(idx), "success": float((le[name] == want).mean()), "keep": {}, "locked_keep": {}}
            for other in binary:
                if other == name:
                    continue
                r["keep"][other] = float((le[other] == lb[other][idx]).mean())
            for other in binary:
                if (name, other) in CORRELATED and other in engine.bank.attributes:
                    locked = _render_edits(engine, seeds, {name: sign}, locked=[other], method=method)
                    ll = judge.predict(locked).labels()
                    r["locked_keep"][other] = float((ll[other].numpy() == lb[other][idx]).mean())
                    r.setdefault("locked_success", {})[other] = float((ll[name].numpy() == want).mean())
            r["identity"] = {k: float((pe.scores[k] - pb.scores[k][idx]).abs().mean()) / spread[k] for k in IDENTITY}
            r["identity"]["eye_color_changed"] = float((le["eye_color"] != lb["eye_color"][idx]).mean())
            uncorrelated = [v for o, v in r["keep"].items() if (name, o) not in CORRELATED]
            r["min_keep_uncorrelated"] = min(uncorrelated) if uncorrelated else 1.0
            r["pass"] = bool(r["success"] >= 0.9 and r["min_keep_uncorrelated"] >= 0.9
                             and all(v >= 0.95 for v in r["locked_keep"].values())
                             and all(r["identity"][k] < 0.25 for k in IDENTITY))
            passed &= r["pass"]
            res["+3" if sign > 0 else "-3"] = r
        out["attributes"][name] = res
    out["pass"] = bool(passed)
    return out


def slider_strips(engine, path: str, attributes=None, seeds=tuple(range(SLIDER_SEED, SLIDER_SEED + 8)),
                  per_row: int = 3) -> None:
    """A block per slider (rows: faces, columns: -3 .. +3 sigma, default method and space, psi 0.7), blocks in a grid;
    attributes: names (default every binary attribute of the toon world that the bank has)."""
    from PIL import Image, ImageDraw

    from editor.toonfaces import ATTRIBUTES

    if attributes is None:
        attributes = [s.name for s in ATTRIBUTES if s.kind == "binary" and s.name in engine.bank.attributes]
    alphas = (-3, -2, -1, 0, 1, 2, 3)
    cell = engine.resolution // 2
    bw, bh, label = len(alphas) * cell, len(seeds) * cell, 18
    n_rows = -(-len(attributes) // per_row)
    sheet = Image.new("RGB", (per_row * (bw + 10), n_rows * (bh + label + 10)), "white")
    draw = ImageDraw.Draw(sheet)
    for k, name in enumerate(attributes):
        x0, y0 = (k % per_row) * (bw + 10), (k // per_row) * (bh + label + 10)
        draw.text((x0 + 4, y0 + 3), f"{name}: -3 .. +3 sigma", fill="black")
        for r, seed in enumerate(seeds):
            for c, a in enumerate(alphas):
                img = _render_edits(engine, [seed], {name: float(a)})[0]
                tile = Image.fromarray(img).resize((cell, cell), Image.LANCZOS)
                sheet.paste(tile, (x0 + c * cell, y0 + label + r * cell))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    main()
