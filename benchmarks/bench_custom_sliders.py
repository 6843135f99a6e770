"""Benchmark: custom sliders (issue 8). Results are recorded in docs/custom_sliders.md.

    PYTHONPATH=. python benchmarks/bench_custom_sliders.py words            # time + planted cosine, N=10k, 512-D
    PYTHONPATH=. python benchmarks/bench_custom_sliders.py words --dim 128 --emb 512
    PYTHONPATH=. python benchmarks/bench_custom_sliders.py words --clip-text --methods lda  # + ViT-B-32 text
    PYTHONPATH=. python benchmarks/bench_custom_sliders.py clicks           # simulated clicks in the toon world
    PYTHONPATH=. python benchmarks/bench_custom_sliders.py clicks --world demo   # on the bundled demo generator
    PYTHONPATH=. python benchmarks/bench_custom_sliders.py clip-embed       # CLIP encoding cost (random ViT-B-32)

words: synthetic image embeddings [N, E] carrying a planted attribute (w·u, a hidden unit direction in an anisotropic
W) plus noise; a prompt pair is "encoded" to ±t. Times `WordSliderMaker.make` (text encoding excluded: a stub) with
the image embeddings already cached, as in the app, and reports the cosine of the recovered direction with u.

clicks: the toon world's ground truth (editor.toonfaces.sample_params: no rendering) stands in for a generator's
samples, because no trained demo generator exists yet: every face's parameter vector (continuous parameters and
one-hot categoricals, standardised) is mixed into a "W" of --dim dimensions by a fixed random map plus a
nonlinear part (0.5 tanh of another random map) and isotropic nuisance noise (std 1, about the signal's size per
dimension). For each binary attribute the fully supervised direction (logistic regression on
all pool labels) sets the target; a `ClickSession` then answers its grids from the ground truth. Reported: the test
accuracy of the full direction and how many clicks reach 90 / 95 / 98 % of it, active (least-certain grids) vs
random grids, median over --repeats seeds. Prints JSON lines.
With --world MODEL (a generator distilled from the toon world, e.g. the bundled demo) the pool is the generator's
own W latents of seeds 0.. (z = RandomState(seed).randn, psi 1) and the clicks answer with the truth of T(z) (what
the faces show, as far as the generator draws T(z) faithfully: bench_demo_model measures that).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

ATTRS = ("eyeglasses", "smiling", "beard", "bald", "old", "lipstick", "long_hair", "mouth_open", "grey_hair")


def bench_words(args) -> None:
    from editor.custom_sliders import SliderFitOptions, WordSliderMaker, planted_world

    clip = None
    if args.clip_text:  # time the real text tower (ViT-B-32, random weights: same cost); scores become meaningless
        from editor.labelers import ClipLabeler

        clip = ClipLabeler(prompts={"x": ("a", "b")}, model="ViT-B-32", pretrained=None)
    for aniso in (0.0, 1.0):
        w, u, emb, encode = planted_world(args.n, args.dim, args.emb, noise=args.noise, aniso=aniso)
        if clip is not None:
            encode = clip.encode_text
        ws = w[:, None, :]
        for method in args.methods.split(","):
            maker = WordSliderMaker(None, ws, emb, encode, options=SliderFitOptions(method=method))
            maker.make("a smiling face", "a neutral face")  # warm-up (latents per space cached, BLAS loaded)
            times, entry = [], None
            for r in range(args.repeats):
                # with the real text tower: new prompts every time (nothing cached: the worst case)
                pos, neg = ("a smiling face", "a neutral face") if clip is None else (f"a smiling face {r}",
                                                                                     f"a neutral face {r}")
                t0, c0 = time.perf_counter(), time.process_time()
                entry = maker.make(pos, neg)
                times.append((time.perf_counter() - t0, time.process_time() - c0))
            print(json.dumps({"bench": "words", "text_encoder": "ViT-B-32" if clip else "stub", "n": args.n,
                              "w_dim": args.dim, "emb": args.emb, "aniso": aniso,
                              "method": method, "wall_s_median": round(float(np.median([t[0] for t in times])), 3),
                              "cpu_s_median": round(float(np.median([t[1] for t in times])), 3),
                              "cos_planted": round(float(entry.vector[0] @ u), 4),
                              "val_accuracy": round(entry.val_accuracy, 4), "load1": round(os.getloadavg()[0], 2)}),
                  flush=True)


def toon_world(n: int, dim: int, seed: int = 0):
    """(x [n, dim] 'W' latents, {attribute: [n] bool ground truth}) from the toon renderer's parameters."""
    from editor.toonfaces import ATTRIBUTES, attributes_of, sample_params

    cont = ("smile", "mouth_openness", "age", "hair_length", "hair_part", "beard_length", "skin_tone", "face_width",
            "jaw", "eye_size", "eye_spacing", "nose_size", "mouth_width", "brow_tilt", "yaw", "roll", "light_x")
    cats = {"hair_color": 5, "eye_color": 4, "background": 6, "glasses_style": 3, "glasses_color": 6,
            "lipstick_shade": 3, "hair_style": 3}
    binary = ("beard", "lipstick", "eyeglasses")
    feats, truth = [], {a: [] for a in ATTRS}
    for s in range(seed * 10**6, seed * 10**6 + n):
        p = sample_params(s)
        f = [getattr(p, c) for c in cont] + [getattr(p, b) for b in binary]
        for c, k in cats.items():
            f += list(np.eye(k)[getattr(p, c)])
        feats.append(f)
        gt = attributes_of(p)
        for a in ATTRS:
            truth[a].append(bool(gt[a]))
    assert set(ATTRS) <= {s.name for s in ATTRIBUTES}
    f = np.asarray(feats, dtype=np.float64)
    f = (f - f.mean(0)) / np.maximum(f.std(0), 1e-9)
    rng = np.random.default_rng(1234)  # the same map for every seed: one "generator"
    a_lin = rng.standard_normal((f.shape[1], dim)) / np.sqrt(f.shape[1])
    a_nl = rng.standard_normal((f.shape[1], dim)) / np.sqrt(f.shape[1])
    x = f @ a_lin + 0.5 * np.tanh(2 * f @ a_nl) + 1.0 * np.random.default_rng(seed).standard_normal((n, dim))
    return x, {a: np.asarray(v) for a, v in truth.items()}


def generator_world(model: str, n: int):
    """(w [n, w_dim] of a distilled generator for seeds 0..n-1, {attribute: [n] bool truth of T(z)})."""
    import torch

    from editor.checkpoints import load_generator, resolve_source
    from editor.labelers import TruthLabeler
    from editor.samples import z_from_seeds

    G = load_generator(model)
    truth_labeler = TruthLabeler.for_model(resolve_source(model))
    seeds = list(range(n))
    z = z_from_seeds(seeds, G.z_dim)
    with torch.no_grad():
        w = G.mapping(torch.from_numpy(z), None)[:, 0].double().numpy()
    scores = truth_labeler(None, seeds)
    return w, {a: scores[a] > 0.5 for a in ATTRS}


def clicks_to_reach(acc_curve, target):
    for clicks, acc in acc_curve:
        if acc >= target:
            return clicks
    return None


def bench_clicks(args) -> None:
    from editor.bank import one_blas_thread
    from editor.custom_sliders import ClickOptions, ClickSession, SliderFitOptions, fit_labels

    if args.world:
        x_all, truth_all = generator_world(args.world, args.n + args.test)
    else:
        x_all, truth_all = toon_world(args.n + args.test, args.dim, seed=0)
    pool, test = slice(0, args.n), slice(args.n, args.n + args.test)
    fit = SliderFitOptions(method=args.click_method)
    for attr in args.attributes.split(","):
        y = truth_all[attr]
        with one_blas_thread():
            full = fit_labels(x_all[pool], y[pool], SliderFitOptions(method="logreg"))
        full_acc = float(np.mean((x_all[test] @ full.vector + full.intercept > 0) == y[test]))
        result = {"bench": "clicks", "world": args.world or "simulated", "attribute": attr, "positive_rate": round(float(y[pool].mean()), 3),
                  "pool": args.n, "w_dim": int(x_all.shape[1]), "full_supervised_acc": round(full_acc, 4), "grid": args.grid}
        for strategy in ("uncertain", "random"):
            reach = {f: [] for f in (0.9, 0.95, 0.98)}
            finals = []
            for rep in range(args.repeats):
                s = ClickSession(x_all[pool], ClickOptions(grid=args.grid, min_labels=20, fit=fit, strategy=strategy,
                                                           seed=rep))
                curve = []
                while s.n_marks < args.max_clicks:
                    for i in s.next_grid():
                        s.mark(i, y[pool][i])
                    d = s.direction
                    if d is not None:
                        curve.append((s.n_marks, float(np.mean((x_all[test] @ d.vector + d.intercept > 0) == y[test]))))
                for f in reach:
                    reach[f].append(clicks_to_reach(curve, f * full_acc))
                finals.append(curve[-1][1] if curve else float("nan"))

            def med(v):  # upper median; None (not reached within max_clicks) counts as infinitely many clicks
                c = sorted(float("inf") if c is None else c for c in v)[len(v) // 2]
                return None if c == float("inf") else int(c)

            result[strategy] = {f"clicks_to_{int(f * 100)}pct": med(v) for f, v in reach.items()}
            result[strategy]["acc_at_max_clicks"] = round(float(np.median(finals)), 4)
        result["max_clicks"] = args.max_clicks
        print(json.dumps(result), flush=True)


def bench_clip_embed(args) -> None:
    import torch

    from editor.labelers import ClipLabeler

    lab = ClipLabeler(prompts={"x": ("a", "b")}, model="ViT-B-32", pretrained=None)
    imgs = torch.rand(args.batch, 3, 64, 64) * 2 - 1
    lab.embed(imgs[:2])
    lab.encode_text(["a photo of a smiling face", "a photo of a face"])
    t0 = time.perf_counter()
    lab.embed(imgs)
    dt = time.perf_counter() - t0
    t1 = time.perf_counter()
    for _ in range(5):
        lab.encode_text(["a photo of a smiling face", "a photo of a face"])
    dt_text = (time.perf_counter() - t1) / 5
    print(json.dumps({"bench": "clip-embed", "model": "ViT-B-32 (random weights: same cost)", "batch": args.batch,
                      "image_s_per_image": round(dt / args.batch, 4), "text_s_per_prompt_pair": round(dt_text, 4),
                      "load1": round(os.getloadavg()[0], 2)}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=("words", "clicks", "clip-embed"))
    p.add_argument("--n", type=int, default=None, help="samples (words: 10000) / click pool (clicks: 3000)")
    p.add_argument("--dim", type=int, default=None, help="W dimensions (words: 512, clicks: 128 like toon-64)")
    p.add_argument("--emb", type=int, default=512, help="embedding size (words; ViT-B-32: 512)")
    p.add_argument("--noise", type=float, default=0.3, help="embedding noise (words)")
    p.add_argument("--methods", default="lda,logreg,svm,meandiff", help="fit methods (words)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--test", type=int, default=2000, help="held-out samples (clicks)")
    p.add_argument("--grid", type=int, default=8, help="samples per round (clicks)")
    p.add_argument("--max-clicks", type=int, default=200)
    p.add_argument("--click-method", default="logreg")
    p.add_argument("--world", default=None, help="clicks: a distilled generator (e.g. demo) instead of the simulation")
    p.add_argument("--attributes", default=",".join(ATTRS))
    p.add_argument("--batch", type=int, default=16, help="images (clip-embed)")
    p.add_argument("--clip-text", action="store_true", help="words: encode prompts with ViT-B-32 (random weights)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: faster on a busy machine)")
    args = p.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    if args.what == "words":
        args.n, args.dim = args.n or 10000, args.dim or 512
        bench_words(args)
    elif args.what == "clicks":
        args.n, args.dim = args.n or 3000, args.dim or 128
        bench_clicks(args)
    else:
        bench_clip_embed(args)


if __name__ == "__main__":
    main()
