"""What a displayed image costs to encode: Gradio's own PNG (Pillow, zlib level 6, what a gr.Image does with an array)
against the page's `editor.ui.common.display_png` (fpng where installed, Pillow level 1 otherwise).

    python -m benchmarks.bench_display_png --model demo --sizes 384 1024 --repeats 15

The images are the model's own (seed 0, psi 0.7), upscaled for display as the page does (`upscaled`), or resized to
the given side with bicubic interpolation for sizes above the model's. Prints median ms per image and file sizes;
every encoding is checked to decode to the same pixels.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time

import numpy as np
import torch
from PIL import Image

from editor.checkpoints import load_generator
from editor.ui import common


def _median_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def _pillow(image: np.ndarray, level: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", compress_level=level)
    return buf.getvalue()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="demo")
    ap.add_argument("--sizes", type=int, nargs="+", default=[384, 1024])
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    G = load_generator(args.model)
    with torch.inference_mode():
        z = torch.from_numpy(np.random.RandomState(0).randn(1, G.z_dim)).float()
        x = G(z, None, truncation_psi=0.7, noise_mode="const")
    image = ((x[0].permute(1, 2, 0).clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()

    encoders = {
        "Gradio's default (Pillow level 6)": lambda a: _pillow(a, 6),
        "Pillow level 1": lambda a: _pillow(a, 1),
        "display_png (fpng)" if common._fpng is not None else "display_png (no fpng: Pillow 1)": common.display_png,
    }
    print(f"model {args.model} ({image.shape[0]} px), {args.repeats} repeats, 1 thread\n")
    print("| display size | encoder | ms (median) | KB |")
    print("|---|---|---|---|")
    for size in args.sizes:
        shown = common.upscaled(image, size)
        if shown.shape[0] != size:
            shown = np.asarray(Image.fromarray(image).resize((size, size), Image.BICUBIC))
        for name, encode in encoders.items():
            data = encode(shown)
            assert np.array_equal(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")), shown), name
            ms = _median_ms(lambda: encode(shown), args.repeats)
            print(f"| {shown.shape[0]} px | {name} | {ms:.1f} | {len(data) // 1024} |")


if __name__ == "__main__":
    main()
