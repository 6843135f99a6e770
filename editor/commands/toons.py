"""`python -m editor toons`: render demo-world faces to PNGs, a contact sheet and attributes.jsonl."""

from __future__ import annotations

import json
import math
from pathlib import Path

from editor.commands._util import parse_range

NAME = "toons"
HELP = "Render procedural toon faces (the demo world) with their ground-truth attributes and landmarks."
EXAMPLES = """  python -m editor toons --seeds 0-63 --size 128 --out out/toons
  python -m editor toons --seeds 0-15 --size 256 --framing photo --out out/photos --landmarks
  python -m editor toons --seeds 0-999 --size 64 --workers 2 --no-sheet --out out/toons64"""


def add_arguments(parser) -> None:
    parser.add_argument("--seeds", default="0-63", help="seeds, e.g. '0-63' or '1,5,9-12' (default 0-63)")
    parser.add_argument("--size", type=int, default=128, help="image side in pixels (default 128)")
    parser.add_argument("--framing", choices=("portrait", "photo"), default="portrait",
                        help="'portrait' (FFHQ-aligned) or 'photo' (random placement on a cluttered room)")
    parser.add_argument("--out", required=True, help="output folder (created)")
    parser.add_argument("--workers", type=int, default=1, help="processes to render with (default 1)")
    parser.add_argument("--sheet-columns", type=int, default=8, help="columns of the contact sheet (default 8)")
    parser.add_argument("--no-sheet", action="store_true", help="skip the contact sheet")
    parser.add_argument("--landmarks", action="store_true", help="mark the five landmarks on the contact sheet")


def run(args) -> int:
    from PIL import Image, ImageDraw

    from editor.toonfaces import LANDMARK_NAMES, render_batch

    seeds = parse_range(args.seeds)
    if any(s < 0 for s in seeds):
        raise ValueError("seeds must be non-negative")
    if args.sheet_columns < 1:
        raise ValueError("--sheet-columns must be >= 1")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    images, attrs, lms = render_batch(seeds, size=args.size, framing=args.framing, workers=args.workers)
    with open(out / "attributes.jsonl", "w") as f:
        for seed, img, a, lm in zip(seeds, images, attrs, lms):
            name = f"toon_{seed:06d}.png"
            Image.fromarray(img).save(out / name)
            record = {"file": name, "framing": args.framing, "size": args.size, **a,
                      "landmarks": {n: [round(float(x), 3), round(float(y), 3)] for n, (x, y) in
                                    zip(LANDMARK_NAMES, lm)}}
            f.write(json.dumps(record) + "\n")
    if not args.no_sheet:
        cols = min(args.sheet_columns, len(seeds))
        rows = math.ceil(len(seeds) / cols)
        s = args.size
        sheet = Image.new("RGB", (cols * s, rows * s), (255, 255, 255))
        draw = ImageDraw.Draw(sheet)
        for i, (img, lm) in enumerate(zip(images, lms)):
            x0, y0 = (i % cols) * s, (i // cols) * s
            sheet.paste(Image.fromarray(img), (x0, y0))
            if args.landmarks:
                r = max(1.5, s / 100)
                for x, y in lm:
                    draw.ellipse([x0 + x - r, y0 + y - r, x0 + x + r, y0 + y + r], outline=(255, 0, 0))
        sheet.save(out / "contact_sheet.png")
    print(f"wrote {len(seeds)} faces ({args.size} px, {args.framing}) to {out}")
    return 0
