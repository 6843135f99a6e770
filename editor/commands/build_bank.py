"""`python -m editor build-bank`: sample (or reuse a sample cache), fit directions, write a direction bank."""

from __future__ import annotations

NAME = "build-bank"
HELP = "Fit attribute directions (every method x space) on labelled samples and write a direction bank."
EXAMPLES = """  python -m editor build-bank --model random:small --n 1000 --labeler stats --out out/random-small.safetensors
  python -m editor build-bank --model demo --n 5000 --labeler toon --spaces z,w,coarse,middle,fine
  python -m editor build-bank --model demo --samples samples/demo --labeler manual:my_labels.csv --methods svm,logreg"""

ALL_METHODS = "ridge,meandiff,partial,logreg,svm,mahalanobis,shrink,pca,sefa"


def add_arguments(parser) -> None:
    from editor.commands.sample import add_arguments as sample_arguments

    sample_arguments(parser)
    for action in parser._actions:  # --out here is the bank; the cache folder is --samples
        if action.dest == "out":
            action.required = False
            action.help = "bank file (default directions/<model>.safetensors)"
    parser.add_argument("--samples", default=None, help="sample cache folder (default samples/<model>-<n>)")
    parser.add_argument("--methods", default=ALL_METHODS, help=f"comma-separated (default {ALL_METHODS})")
    parser.add_argument("--spaces", default="z,w,coarse,middle,fine",
                        help="comma-separated: z, w, coarse, middle, fine, w+:A-B (default z,w,coarse,middle,fine)")
    parser.add_argument("--attributes", default=None, help="only these attributes (comma-separated)")
    parser.add_argument("--share", type=float, default=0.25, help="confident top/bottom share of scores (0.25)")
    parser.add_argument("--val-share", type=float, default=0.3, help="validation part of the selection (0.3)")
    parser.add_argument("--components", type=int, default=8, help="PCA / SeFa directions per space (8)")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the train/validation split (0)")
    parser.add_argument("--walk-objective", choices=("density", "log_odds"), default="density",
                        help="what the Mahalanobis walk climbs: the target class's log-density (stays typical, "
                             "drags correlated attributes along) or the class log-odds (cleaner)")


def parse_spaces(text: str, num_ws: int):
    """'z,w,coarse,w+:2-5' -> [Space, ...] (presets as in editor.engine.layer_preset)."""
    from editor.directions import Space
    from editor.engine import layer_preset

    out = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if part in ("coarse", "middle", "fine"):
            lo, hi = layer_preset(part, num_ws)
            space = Space("w+", lo, hi)
        else:
            space = Space.parse(part)
        space.layers(num_ws)
        if space not in out:
            out.append(space)
    if not out:
        raise ValueError("--spaces names no space")
    return out


def _slug(text: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9_.-]+", "-", str(text).split("/")[-1].replace(".safetensors", "")).strip("-") or "model"


def _command_line(args, bank_path) -> str:
    """The equivalent full command line (every option spelled out), recorded in the bank."""
    import shlex

    parts = ["python", "-m", "editor", NAME, "--model", str(args.model), "--n", str(args.n), "--seed0",
             str(args.seed0), "--psi", str(args.psi), "--samples", str(args.out), "--out", str(bank_path)]
    for lab in args.labeler:
        parts += ["--labeler", lab]
    parts += ["--methods", args.methods, "--spaces", args.spaces, "--share", str(args.share), "--val-share",
              str(args.val_share), "--components", str(args.components), "--split-seed", str(args.split_seed),
              "--walk-objective", args.walk_objective]
    if args.attributes:
        parts += ["--attributes", args.attributes]
    return " ".join(shlex.quote(p) for p in parts)


def run(args) -> int:
    import time
    from pathlib import Path

    from tqdm import tqdm

    from editor.bank import ENGINE_METHOD_ORDER, METHODS, Bank, FitOptions, build_entries, generator_info, save_bank
    from editor.checkpoints import load_generator
    from editor.commands._util import resolve_device
    from editor.commands.sample import open_and_fill

    if not args.labeler and any(m not in ("pca", "sefa") for m in args.methods.split(",")):
        raise ValueError("supervised methods need labels: pass --labeler (stats, toon, clip:..., manual:FILE)")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise ValueError(f"unknown method(s) {bad}; expected any of {', '.join(METHODS)}")
    device = resolve_device(args.device)
    t0 = time.perf_counter()
    G = load_generator(args.model, device=device)
    spaces = parse_spaces(args.spaces, G.num_ws)
    bank_path = Path(args.out or f"directions/{_slug(args.model)}.safetensors")
    args.out = args.samples or f"samples/{_slug(args.model)}-{args.n}"
    cache, labellers = open_and_fill(args, G, device)
    t1 = time.perf_counter()
    samples = cache.load([lab.name for lab in labellers])
    options = FitOptions(share=args.share, val_share=args.val_share, n_components=args.components,
                         seed=args.split_seed, walk_objective=args.walk_objective)
    entries = []
    wanted = None if args.attributes is None else [a.strip() for a in args.attributes.split(",") if a.strip()]
    supervised = [m for m in methods if m not in ("pca", "sefa")]
    unsupervised = [m for m in methods if m in ("pca", "sefa")]
    with tqdm(desc="fitting", unit="dir") as bar:
        for lab in labellers:
            scores = samples.scores[lab.name]
            if wanted is not None:
                missing = [a for a in wanted if a not in scores]
                if missing:
                    raise ValueError(f"labeller {lab.name} has no {missing}; it scores {', '.join(scores)}")
                scores = {a: scores[a] for a in wanted}
            entries += build_entries(samples.z, samples.ws, scores, lab.name, supervised, spaces, options,
                                     G=G, progress=lambda name: bar.update())
        if unsupervised:
            entries += build_entries(samples.z, samples.ws, {}, "", unsupervised, spaces, options, G=G,
                                     progress=lambda name: bar.update())
    t2 = time.perf_counter()
    command = _command_line(args, bank_path)
    bank = Bank(generator_info(G), tuple(entries), command=command)
    save_bank(bank, bank_path)
    print(f"wrote {bank_path}: {len(entries)} directions ({len(bank.attributes)} attributes x methods x spaces) "
          f"from {len(samples.seeds)} samples in {args.out}; sampling+labelling {t1 - t0:.1f} s, fitting "
          f"{t2 - t1:.1f} s")
    default = next((m for m in ENGINE_METHOD_ORDER if m in methods), None)  # the editor's 'auto' method
    for e in entries:
        if e.val_accuracy is not None and e.method == default and e.space.kind == "w":
            print(f"  {e.name:40s} val acc {e.val_accuracy:.3f}  sigma {e.sigma:.3f}")
    return 0
