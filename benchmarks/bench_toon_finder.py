"""The toon landmark model as a face finder on held-out toon *photo* renders (issue 6).

For each seed ``--start`` + i (default 10,000,050: held out from the 10,000,000-10,000,049 the finder was tuned on;
256 px photo framing) runs ``align.ToonLandmarker().detect`` and compares the found
landmarks with the renderer's ground truth: error = max over the 5 points of |found - true| (per axis) divided by the
side of the true FFHQ quad. "Found" means a face was returned with error < 10 % of the quad side.

    PYTHONPATH=. nice -n 10 python benchmarks/bench_toon_finder.py --photos 200 [--candidates 8]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--photos", type=int, default=20)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--start", type=int, default=10_000_050, help="first seed")
    p.add_argument("--candidates", type=int, default=None, help="windows refined (default: the finder's)")
    args = p.parse_args(argv)

    from editor import align
    from editor import toonfaces as tf

    finder = align.ToonLandmarker() if args.candidates is None else align.ToonLandmarker(candidates=args.candidates)
    errors = []
    t = time.process_time()
    for seed in range(args.start, args.start + args.photos):
        r = tf.render(seed, args.size, "photo")
        faces = finder.detect(r.image)
        q = align.ffhq_quad_corners(r.landmarks)
        side = float(np.linalg.norm(q[1] - q[0]))
        if not faces:
            errors.append(float("inf"))
        else:
            errors.append(float(np.abs(faces[0].landmarks - align._order_lr(r.landmarks)).max() / side))
    cpu = (time.process_time() - t) / args.photos
    e = np.array(errors)
    found = e < 0.1
    print("error % of quad side per photo:", " ".join("none" if not np.isfinite(v) else f"{100 * v:.1f}" for v in e))
    print(f"found {found.sum()}/{len(e)} (error < 10 %); returned nothing on {(~np.isfinite(e)).sum()}, "
          f"wrong face on {(np.isfinite(e) & ~found).sum()}; error of found: median {100 * np.median(e[found]):.1f} %, "
          f"max {100 * e[found].max():.1f} %; {cpu:.2f} CPU s per photo")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
