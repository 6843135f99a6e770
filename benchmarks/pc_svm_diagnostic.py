"""Diagnostic: is the W SVM's weak, low-variance direction needed? Refit the SVM on W's top-k principal components.

    nice -n 5 python -m benchmarks.pc_svm_diagnostic --k 16 --judge toon:ATTRIBUTE_CHECKPOINT

Reads the bank's sample cache (samples/demo-5000, built by `build-bank`), fits the InterFaceGAN-style SVM on the
samples' w projected onto the top-k principal components of W, maps the normal back to W, and evaluates it with
`editor.evaluation` on the same held-out seeds and α as docs/eval/demo. Prints one line per attribute next to the
bank's svm/w and meandiff/w numbers from docs/eval/demo/results.json (target slope, leakage, partner slopes).
"""

from __future__ import annotations

import argparse
import glob
import json

import numpy as np


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", default="samples/demo-5000")
    p.add_argument("--labeller", default="toon-attributes-bundled", help="label file suffix in the cache")
    p.add_argument("--bank", default="directions/demo.safetensors")
    p.add_argument("--results", default="docs/eval/demo/results.json")
    p.add_argument("--attributes", default="smiling,old,eyeglasses,beard,lipstick,long_hair")
    p.add_argument("--k", type=int, default=16, help="principal components of W kept")
    p.add_argument("--n-seeds", type=int, default=12)
    p.add_argument("--judge", default="toon", help="judge labeller (use the one the results were judged with)")
    args = p.parse_args()

    from editor import directions as D
    from editor import evaluation as E
    from editor.bank import BankEntry, load_bank
    from editor.checkpoints import load_generator
    from editor.labelers import make_labeler

    parts = sorted(glob.glob(f"{args.samples}/chunk_?????.npz"))
    if not parts:
        raise SystemExit(f"no sample cache in {args.samples}: run `python -m editor build-bank --model demo` first")
    w = np.concatenate([np.load(f)["w"] for f in parts]).astype(np.float64)  # [N, w_dim]
    labels = [np.load(f.replace(".npz", f".{args.labeller}.npz")) for f in parts]
    attrs = [a for a in args.attributes.split(",") if a]
    mu = w.mean(axis=0)
    basis = np.linalg.svd(w - mu, full_matrices=False)[2][:args.k]  # [k, w_dim]
    G = load_generator("demo", device="cpu")
    ctx = E.prepare_context(G, make_labeler(args.judge), E.EvalConfig(n_seeds=args.n_seeds))
    bank = load_bank(args.bank)
    old = {s["name"]: s for s in json.load(open(args.results))["summaries"]}
    rng = np.random.default_rng(0)
    for a in attrs:
        scores = np.concatenate([lab[a] for lab in labels]).astype(np.float64)
        fit = D.linear_svm((w - mu) @ basis.T, scores, np.random.default_rng(0))
        n = D.unit(basis.T @ fit.vector)  # [w_dim]
        entry = BankEntry(a, "svm", D.Space("w"), n[None], sigma=D.projection_sigma(w, n), labeller="toon")
        s = E.summarize_sweep(E.run_sweep(ctx, entry, keep_strip=False), ctx, identity=E.TOON_IDENTITY,
                              same_concept=E.TOON_SAME_CONCEPT, pairs=E.TOON_PAIRS, rng=rng)
        sv, md = old.get(f"{a}/svm/w"), old.get(f"{a}/meandiff/w")
        line = (f"{a:11s} val acc {fit.val_accuracy:.3f} (bank svm/w {bank.find(a, 'svm', 'w').val_accuracy:.3f}) "
                f"cos(meandiff/w) {float(n @ bank.find(a, 'meandiff', 'w').vector[0]):.2f} | top-{args.k} svm: "
                f"target {s['target_slope']:.3f} leakage {s['leakage']:.3f}±{s['leakage_se']:.3f} "
                f"KID@max {s['kid'][-1]:.3f}")
        if sv and md:
            line += (f" | svm/w {sv['target_slope']:.3f} {sv['leakage']:.3f} | meandiff/w {md['target_slope']:.3f} "
                     f"{md['leakage']:.3f} | partners (top-k/svm/meandiff) "
                     + " ".join(f"{q}:{v:+.3f}/{sv['partner_slopes'][q]:+.3f}/{md['partner_slopes'][q]:+.3f}"
                                for q, v in s["partner_slopes"].items()))
        print(line, flush=True)


if __name__ == "__main__":
    main()
