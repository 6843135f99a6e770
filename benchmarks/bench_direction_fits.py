"""Speed and agreement of the direction fits against an earlier implementation (the hand-written solvers).

    nice -n 15 python -m benchmarks.bench_direction_fits --old-rev a176671 [--dim 512] [--repeats 5]

The earlier `editor/directions.py` and `editor/custom_sliders.py` are read from git revision `--old-rev` and imported
beside the current ones. Each problem is fitted by both; the table gives the median CPU time of `--repeats` fits (one
BLAS thread, as `bank.build_entries` runs them; liblinear is single-threaded), the cosine between the two unit
normals, the intercept difference in slider units |b_old − b_new| / σ, and both training accuracies.

Problems (D = --dim, latents with an anisotropic spectrum and a planted score direction, as in a trained W):
  bank       the bank's InterFaceGAN fit: N = 5,000, confident 25 % at each end, 70 % of those to train (1,750 rows)
  all        every sample, median split, 70 % to train (3,500 rows)
  clicks     a custom slider from clicks: 200 labelled samples (fewer than D: the SVM runs liblinear's dual)
and PCA (8 components of the 5,000 latents). The new ridge method (no old counterpart) is timed on the 5,000 scores.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from editor import custom_sliders as CS
from editor import directions as D
from editor.bank import one_blas_thread

ROOT = Path(__file__).resolve().parents[1]


def load_old(rev: str, tmp: Path):
    """The modules editor/directions.py and editor/custom_sliders.py as they were at git revision `rev`."""
    mods = {}
    for name in ("directions", "custom_sliders"):
        text = subprocess.run(["git", "show", f"{rev}:editor/{name}.py"], cwd=ROOT, check=True, capture_output=True,
                              text=True).stdout
        path = tmp / f"old_{name}.py"
        path.write_text(text)
        spec = importlib.util.spec_from_file_location(f"old_{name}", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
        mods[name] = module
    return mods["directions"], mods["custom_sliders"]


def world(rng: np.random.Generator, n: int, dim: int, slope: float = 1.4):
    """Latents [n, dim] with eigenvalues ∝ (1 + i)^-slope in a random basis, and a score 4·t + noise along a random
    unit direction (t = the standardised projection)."""
    q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    lam = (1.0 + np.arange(dim)) ** -slope
    x = (rng.normal(size=(n, dim)) * np.sqrt(lam * dim / lam.sum())) @ q.T
    truth = D.unit(rng.normal(size=dim))
    t = x @ truth
    return x, 4.0 * t / t.std() + rng.normal(size=n)


def timed(fn, repeats: int):
    """(median CPU seconds of this process over `repeats` calls, the last result). CPU time, not wall time: on a
    shared machine it does not count the time other jobs hold the cores (every fit here runs on one thread)."""
    times, out = [], None
    for _ in range(repeats):
        t0 = time.process_time()
        out = fn()
        times.append(time.process_time() - t0)
    return float(np.median(times)), out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--old-rev", required=True, help="git revision with the hand-written solvers (e.g. a176671)")
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--n", type=int, default=5000)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    rng = np.random.default_rng(0)
    x, s = world(rng, args.n, args.dim)
    problems = {}
    idx, y = D.select_confident(s, 0.25)
    tr, _ = D.train_val_split(idx.size, 0.3, np.random.default_rng(0))
    problems["bank"] = (x[idx[tr]], y[tr])
    tr, _ = D.train_val_split(args.n, 0.3, np.random.default_rng(0))
    problems["all"] = (x[tr], s[tr] > np.median(s))
    pick = np.random.default_rng(1).choice(args.n, 200, replace=False)
    problems["clicks"] = (x[pick], s[pick] > np.median(s))

    rows = []
    with tempfile.TemporaryDirectory() as tmp, one_blas_thread():
        old_d, old_cs = load_old(args.old_rev, Path(tmp))
        fits = {  # name: (old fit, new fit)
            "logreg (l2 0.01)": (lambda a, b: old_d.logistic_regression(a, b),
                                 lambda a, b: D.logistic_regression(a, b)),
            "svm (c 1)": (lambda a, b: old_d.svm_boundary(a, b), lambda a, b: D.svm_boundary(a, b)),
            "lda (shrinkage 0.05)": (lambda a, b: old_cs.lda_direction(a, b), lambda a, b: CS.lda_direction(a, b)),
        }
        for pname, (xa, ya) in problems.items():
            for fname, (old_fit, new_fit) in fits.items():
                t_old, d_old = timed(lambda: old_fit(xa, ya), args.repeats)
                t_new, d_new = timed(lambda: new_fit(xa, ya), args.repeats)
                rows.append({"problem": f"{pname} ({xa.shape[0]}×{xa.shape[1]})", "fit": fname, "old_s": t_old,
                             "new_s": t_new, "cos": float(d_old.vector @ d_new.vector),
                             "d_intercept_sigma": abs(d_old.intercept - d_new.intercept) / d_new.sigma,
                             "train_acc_old": d_old.train_accuracy, "train_acc_new": d_new.train_accuracy})
        t_old, p_old = timed(lambda: old_d.pca_directions(x, 8), args.repeats)
        t_new, p_new = timed(lambda: D.pca_directions(x, 8), args.repeats)
        rows.append({"problem": f"pca ({args.n}×{args.dim}, 8 components)", "fit": "pca", "old_s": t_old,
                     "new_s": t_new, "cos": float(np.min(np.sum(p_old.components * p_new.components, axis=1))),
                     "d_intercept_sigma": float(np.max(np.abs(p_old.stds - p_new.stds) / p_new.stds)),
                     "train_acc_old": None, "train_acc_new": None})
        t_ridge, _ = timed(lambda: D.fit_scores(D.ridge_regression, x, s, np.random.default_rng(0)), args.repeats)

    print(json.dumps({"machine": f"{platform.machine()} {os.cpu_count()} CPUs", "python": sys.version.split()[0],
                      "load_avg_1min": os.getloadavg()[0], "old_rev": args.old_rev}))
    print("\n| problem | fit | old CPU s | new CPU s | speed-up | cos(old, new) | Δb / σ | train acc old / new |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        acc = "" if r["train_acc_old"] is None else f"{r['train_acc_old']:.3f} / {r['train_acc_new']:.3f}"
        print(f"| {r['problem']} | {r['fit']} | {r['old_s']:.3f} | {r['new_s']:.3f} | {r['old_s'] / r['new_s']:.1f}× "
              f"| {r['cos']:.6f} | {r['d_intercept_sigma']:.1e} | {acc} |")
    print("\n(pca row: cos = the smallest of the 8 component cosines; Δb / σ column = the largest relative std "
          "difference)")
    print(f"\nridge (new, the bank's default): fit_scores(ridge_regression) on all {args.n}×{args.dim} scores "
          f"(70 % to train, 15 GCV penalties): {t_ridge:.3f} CPU s")


if __name__ == "__main__":
    main()
