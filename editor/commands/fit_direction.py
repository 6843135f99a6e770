"""`python -m editor fit-direction`: a direction from your own latents and labels (as InterFaceGAN's train_boundary.py).

Inputs are files, not a generator: latents [N, D] (or W+ codes [N, num_ws, D]) in .npy, and one score per latent in
.npy, or in a CSV / JSONL file written the way the manual labeller reads them (`editor.labelers.ManualLabeler`: an
``id`` column, here the row of the latent, and one column per attribute; rows absent from the file are unlabelled).
The output is the unit normal as a [1, D] float32 .npy (InterFaceGAN's boundary format) and, beside it, a .json with
σ (one slider unit), the intercept, the accuracies and the settings.
"""

from __future__ import annotations

NAME = "fit-direction"
HELP = "Fit a direction from your own latents (.npy) and scores or labels (.npy / .csv / .jsonl); write it as .npy."
EXAMPLES = """  python -m editor fit-direction --latents w.npy --scores smile.npy --out smile.npy
  python -m editor fit-direction --latents w.npy --scores labels.csv --attribute smiling --method svm --share 0.02 \\
      --out smiling_svm.npy                      # InterFaceGAN's protocol: top / bottom 2 %, linear SVM
  python -m editor fit-direction --latents ws.npy --layers 4-7 --scores ratings.jsonl --out age.npy   # W+ codes"""

FIT_METHODS = ("ridge", "svm", "logreg", "lda", "meandiff")


def add_arguments(parser) -> None:
    parser.add_argument("--latents", required=True, help=".npy of latents [N, D], or W+ codes [N, num_ws, D]")
    parser.add_argument("--scores", required=True,
                        help=".npy of scores [N] / [N, 1] / [N, K] (with --column), or a .csv / .jsonl label file "
                             "with an 'id' column (the latent's row) and one column per attribute (NaN / absent = "
                             "unlabelled)")
    parser.add_argument("--attribute", default=None, help="the column of a .csv / .jsonl file with several")
    parser.add_argument("--column", type=int, default=None, help="the column of an [N, K] .npy score array")
    parser.add_argument("--method", default="auto", choices=("auto",) + FIT_METHODS,
                        help="auto (= the bank's default, ridge: a regression of every sample's score), or a "
                             "classifier on the confident top / bottom --share: svm (InterFaceGAN), logreg, lda, "
                             "meandiff")
    parser.add_argument("--share", type=float, default=0.25,
                        help="confident top / bottom share of the scores: what the classifiers fit, and where every "
                             "method's validation accuracy is measured (default 0.25; InterFaceGAN used 0.02 of 500k)")
    parser.add_argument("--val-share", type=float, default=0.3, help="held-out part for validation (default 0.3)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the train / validation split (default 0)")
    parser.add_argument("--layers", default=None,
                        help="for W+ codes: fit on the mean of these layers, 'A-B' inclusive (default all)")
    parser.add_argument("--out", required=True, help="output .npy: the unit normal [1, D] (a .json goes beside it)")
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS threads for the fit (default 1: on a shared 2-core machine, 2 threads made a "
                             "20,000 x 512 ridge fit 2-3x slower in wall time)")


def load_latents(path: str, layers: str | None):
    """[N, D] float64 latents from a .npy file ([N, num_ws, D] W+ codes: the mean over `layers` 'A-B', default all)."""
    from pathlib import Path

    import numpy as np

    from editor.directions import Space, fit_space_latents

    p = Path(path)
    if p.suffix.lower() != ".npy":
        raise ValueError(f"--latents must be a .npy file, got {p.name!r}")
    if not p.is_file():
        raise FileNotFoundError(f"no latents file at {p}")
    x = np.load(p, allow_pickle=False)
    if x.ndim == 3:
        space = Space.parse(f"w+:{layers}") if layers else Space("w+", 0, x.shape[1])
        return fit_space_latents(space, ws=x)
    if layers:
        raise ValueError(f"--layers needs W+ codes [N, num_ws, D]; {p.name} holds shape {x.shape}")
    if x.ndim != 2:
        raise ValueError(f"latents must be [N, D] or [N, num_ws, D], got shape {x.shape} in {p.name}")
    return x.astype(np.float64)


def load_scores(path: str, n: int, attribute: str | None = None, column: int | None = None):
    """(scores [n] float64 with NaN = unlabelled, name) from a .npy array or a manual-labeller CSV / JSONL file whose
    ids are rows 0..n-1 of the latents."""
    from pathlib import Path

    import numpy as np

    from editor.labelers import ManualLabeler

    p = Path(path)
    if p.suffix.lower() == ".npy":
        if not p.is_file():
            raise FileNotFoundError(f"no scores file at {p}")
        if attribute is not None:
            raise ValueError("--attribute picks a column of a .csv / .jsonl file; for an [N, K] .npy use --column")
        s = np.load(p, allow_pickle=False)
        if s.ndim == 2 and s.shape[1] == 1 and column is None:
            s = s[:, 0]
        elif s.ndim == 2:
            if column is None or not 0 <= column < s.shape[1]:
                raise ValueError(f"{p.name} holds {s.shape[1]} score columns: pick one with --column "
                                 f"0..{s.shape[1] - 1}")
            s = s[:, column]
        if s.ndim != 1 or s.shape[0] != n:
            raise ValueError(f"scores must be [N] with N={n} (one per latent), got shape {s.shape} in {p.name}")
        return s.astype(np.float64), p.stem
    if column is not None:
        raise ValueError("--column picks a column of an [N, K] .npy array; for a .csv / .jsonl use --attribute")
    labeler = ManualLabeler.from_file(p)  # the project's label-file format: raises on a bad file
    if attribute is None:
        if len(labeler.attributes) != 1:
            raise ValueError(f"{p.name} labels {', '.join(labeler.attributes)}: pick one with --attribute")
        attribute = labeler.attributes[0]
    if attribute not in labeler.attributes:
        raise ValueError(f"{p.name} has no column {attribute!r}; it labels {', '.join(labeler.attributes)}")
    outside = sorted(i for i in labeler.labels[attribute] if not 0 <= i < n)
    if outside:
        raise ValueError(f"{p.name}: ids must be rows 0..{n - 1} of the latents; found {outside[:5]}"
                         + (" ..." if len(outside) > 5 else ""))
    return labeler(ids=range(n))[attribute], attribute


def _command_line(args) -> str:
    """The equivalent full command line (every option spelled out), recorded in the .json."""
    import shlex

    parts = ["python", "-m", "editor", NAME, "--latents", str(args.latents), "--scores", str(args.scores)]
    for flag, value in (("--attribute", args.attribute), ("--column", args.column), ("--layers", args.layers)):
        if value is not None:
            parts += [flag, str(value)]
    parts += ["--method", args.method, "--share", str(args.share), "--val-share", str(args.val_share), "--seed",
              str(args.seed), "--out", str(args.out)]
    return " ".join(shlex.quote(p) for p in parts)


def run(args) -> int:
    import json
    from pathlib import Path

    import numpy as np
    from threadpoolctl import threadpool_limits

    from editor import directions as D
    from editor.bank import DEFAULT_METHOD, effective_share

    out = Path(args.out)
    if out.suffix.lower() != ".npy":
        raise ValueError(f"--out must end in .npy, got {out.name!r}")
    x = load_latents(args.latents, args.layers)
    s, name = load_scores(args.scores, x.shape[0], args.attribute, args.column)
    known = int(np.isfinite(s).sum())
    method = DEFAULT_METHOD if args.method == "auto" else args.method
    share = effective_share(s, args.share)
    if args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    rng = np.random.default_rng(args.seed)
    with threadpool_limits(limits=args.threads, user_api="blas"):
        if method == "ridge":
            d = D.fit_scores(D.ridge_regression, x, s, rng, share=share, val_share=args.val_share)
        else:
            fit = {"svm": D.svm_boundary, "logreg": D.logistic_regression, "lda": D.lda_boundary,
                   "meandiff": D.mean_difference}[method]
            d = D.fit_confident(fit, x, s, rng, share=share, val_share=args.val_share)

    def pct(v):
        return "n/a (no held-out samples)" if v is None else f"{v:.4f}"

    auto = " (auto)" if args.method == "auto" else ""
    fitted_on = "every labelled sample's score" if method == "ridge" else f"the top / bottom {share:g} of the scores"
    print(f"{name}: {x.shape[0]} latents (D={x.shape[1]}), {known} labelled; method {method}{auto}, fitted on "
          f"{fitted_on}: {d.extra['n_train']} training, {d.extra['n_val']} validation samples")
    print(f"  accuracy on the training set:   {pct(d.train_accuracy)}")
    print(f"  accuracy on the validation set: {pct(d.val_accuracy)}  (held-out samples among the top / bottom "
          f"{share:g}: comparable across methods)")
    if "val_accuracy_all" in d.extra:
        corr = d.extra.get("val_rank_corr")
        print(f"  every held-out sample: accuracy {d.extra['val_accuracy_all']:.4f} at score "
              f"{d.extra['threshold']:g}" + ("" if corr is None else f", rank correlation {corr:.4f}"))
    print(f"  sigma {d.sigma:.4f} (std of the latents' projections: one slider unit), intercept {d.intercept:.4f}")
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, d.vector[None].astype(np.float32))
    meta = {"method": method, "sigma": d.sigma, "intercept": d.intercept, "train_accuracy": d.train_accuracy,
            "val_accuracy": d.val_accuracy, "n_samples": d.n_samples, "n_latents": int(x.shape[0]),
            "n_labelled": known, "dim": int(x.shape[1]), "latents": str(args.latents), "scores": str(args.scores),
            "attribute": name, "layers": args.layers, "seed": args.seed, "extra": d.extra,
            "command": _command_line(args)}
    meta_path = out.with_suffix(".json")
    meta_path.write_text(json.dumps(meta, indent=1, allow_nan=False) + "\n")
    print(f"wrote {out} ([1, {x.shape[1]}] unit vector) and {meta_path}")
    return 0
