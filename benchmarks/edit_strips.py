"""Render edit strips from a direction bank: one row per (attribute, seed), columns = alpha in sigma.

    python -m benchmarks.edit_strips --model demo --bank directions/demo.safetensors \
        --attributes smiling,old,eyeglasses,hair_color=blond --seeds 1,7 --method svm --space w \
        --out docs/demo_edit_strips.png   # (saved as .jpg in docs/)

Each row edits the seed's w with `bank.apply_edit` (alpha in the bank's sigma units) and renders with constant
noise. The row label says attribute / method / space / seed; the judge's score of the target (the attribute
model, --judge toon) is printed under each image when --judge is given, so one sees whether the edit moved it.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="demo")
    p.add_argument("--bank", default="directions/demo.safetensors")
    p.add_argument("--attributes", default="smiling,old,eyeglasses,hair_color=blond")
    p.add_argument("--seeds", default="1,7", help="comma-separated seeds (z = RandomState(seed).randn)")
    p.add_argument("--method", default="svm")
    p.add_argument("--space", default="w", help="z, w, coarse, middle, fine or w+:A-B")
    p.add_argument("--alphas", default="-3,-2,-1,0,1,2,3")
    p.add_argument("--psi", type=float, default=0.7, help="truncation of the base latents (the app's default 0.7)")
    p.add_argument("--judge", default="toon", help="labeller whose target score is printed ('' for none)")
    p.add_argument("--scale", type=int, default=2, help="pixel upscaling of each image (nearest)")
    p.add_argument("--out", required=True)
    args = p.parse_args()

    from PIL import Image, ImageDraw

    from editor.bank import apply_edit, generator_info, load_bank
    from editor.checkpoints import load_generator
    from editor.commands.build_bank import parse_spaces
    from editor.labelers import make_labeler
    from editor.samples import z_from_seeds

    G = load_generator(args.model, device="cpu")
    bank = load_bank(args.bank, generator=generator_info(G), source=args.model)
    judge = make_labeler(args.judge) if args.judge else None
    space = str(parse_spaces(args.space, G.num_ws)[0])
    alphas = [float(a) for a in args.alphas.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    attrs = [a.strip() for a in args.attributes.split(",") if a.strip()]

    def mapping(z: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return G.mapping(torch.from_numpy(np.asarray(z, np.float32)), None,
                             truncation_psi=args.psi).numpy().astype(np.float64)

    z = z_from_seeds(seeds, G.z_dim).astype(np.float64)  # [S, z_dim]
    ws = mapping(z)  # [S, num_ws, w_dim]
    res, sc = int(G.img_resolution), args.scale
    cell, label_h, left = res * sc, 14, 150
    rows = [(a, i) for a in attrs for i in range(len(seeds))]
    sheet = Image.new("RGB", (left + cell * len(alphas), 16 + len(rows) * (cell + label_h)), "white")
    draw = ImageDraw.Draw(sheet)
    for c, a in enumerate(alphas):
        draw.text((left + c * cell + cell // 2 - 10, 2), f"{a:+g}", fill="black")
    for r, (attr, i) in enumerate(rows):
        entry = bank.find(attr, args.method, space)
        edited = np.concatenate([apply_edit(ws[i:i + 1], [(entry, a)], z=z[i:i + 1], mapping=mapping)
                                 for a in alphas])  # [A, num_ws, w_dim]
        with torch.no_grad():
            img = G.synthesis(torch.from_numpy(edited.astype(np.float32)), noise_mode="const").clamp(-1, 1)
        scores = judge(img, [seeds[i]] * len(alphas))[attr] if judge is not None else None
        y = 16 + r * (cell + label_h)
        draw.text((4, y + cell // 2 - 12), f"{attr}\n{args.method}/{space}\nseed {seeds[i]}", fill="black")
        arr = ((img + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        for c in range(len(alphas)):
            tile = Image.fromarray(arr[c]).resize((cell, cell), Image.NEAREST)
            sheet.paste(tile, (left + c * cell, y))
            if scores is not None:
                draw.text((left + c * cell + 4, y + cell), f"{float(scores[c]):.2f}", fill="black")
    sheet.save(args.out)
    print(f"wrote {args.out}: {len(rows)} rows x {len(alphas)} alphas ({args.method}/{space}, psi {args.psi})")


if __name__ == "__main__":
    main()
