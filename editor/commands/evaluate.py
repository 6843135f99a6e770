"""`python -m editor evaluate`: measure a direction bank's edits on held-out latents and write a report."""

from __future__ import annotations

NAME = "evaluate"
HELP = "Evaluate a direction bank on held-out latents (target effect, entanglement, identity, realism) + claims."
EXAMPLES = """  python -m editor evaluate --model demo --bank directions/demo.safetensors --judge toon --out out/eval-demo
  python -m editor evaluate --model random:small --bank directions/random-small.safetensors --judge stats \\
      --attributes brightness,redness --methods meandiff,logreg,svm,mahalanobis --spaces z,w --n-seeds 16 \\
      --lock brightness:contrast --out out/eval-small
Renders entries x n-seeds x (alphas - 1) images: choose attributes, methods and spaces to fit the time you have."""


def add_arguments(parser) -> None:
    parser.add_argument("--model", required=True, help="generator source (the bank's generator)")
    parser.add_argument("--bank", required=True, help="direction bank (.safetensors)")
    parser.add_argument("--judge", default="toon",
                        help="labeller that scores the edited images: toon[:CKPT] | stats | clip:... (default toon)")
    parser.add_argument("--attributes", default=None, help="attributes to edit (default: every supervised one)")
    parser.add_argument("--methods", default="meandiff,partial,logreg,svm,mahalanobis", help="methods to compare")
    parser.add_argument("--spaces", default="z,w",
                        help="spaces to compare: z, w, coarse, middle, fine, w+:A-B (default z,w)")
    parser.add_argument("--alphas", default="-4,-3,-2,-1,0,1,2,3,4", help="alpha sweep in sigma (must include 0)")
    parser.add_argument("--n-seeds", type=int, default=32, help="held-out latents per entry (default 32)")
    parser.add_argument("--n-reference", type=int, default=64, help="reference images for KID (default 64)")
    parser.add_argument("--seed0", type=int, default=20_000_000, help="first held-out seed (default 20000000)")
    parser.add_argument("--psi", type=float, default=1.0, help="truncation psi (default 1)")
    parser.add_argument("--lock", action="append", default=[],
                        help="conditional run TARGET:LOCKED[,LOCKED...] (repeatable); 'toon' = the toon world's "
                             "correlated pairs whose target is among --attributes")
    parser.add_argument("--lock-method", default="svm", help="method/space of the conditional runs (default svm)")
    parser.add_argument("--discriminator", default=None, help="discriminator source for the realism score")
    parser.add_argument("--out", required=True, help="report folder")
    parser.add_argument("--batch", type=int, default=32, help="images per generator call")
    parser.add_argument("--device", default="auto", help="cpu | cuda | auto")
    parser.add_argument("--no-identity-check", action="store_true", help="accept a bank built for other weights")


def run(args) -> int:
    import time

    import numpy as np
    from tqdm import tqdm

    from editor import evaluation as E
    from editor.bank import GAUSSIAN_METHODS, LINEAR_METHODS, generator_info, load_bank
    from editor.checkpoints import load_generator, load_network
    from editor.commands._util import resolve_device
    from editor.commands.build_bank import parse_spaces
    from editor.labelers import make_labeler

    device = resolve_device(args.device)
    t0 = time.perf_counter()
    G = load_generator(args.model, device=device)
    bank = load_bank(args.bank, generator=generator_info(G), check_identity=not args.no_identity_check,
                     source=args.model)
    judge = make_labeler(args.judge, device=device)
    alphas = tuple(float(a) for a in args.alphas.split(","))
    config = E.EvalConfig(n_seeds=args.n_seeds, seed0=args.seed0, n_reference=args.n_reference, alphas=alphas,
                          psi=args.psi, batch=args.batch)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    spaces = [str(sp) for sp in parse_spaces(args.spaces, G.num_ws)]
    supervised = [e for e in bank.entries if e.method not in ("pca", "sefa")]
    attrs = list(dict.fromkeys(e.attribute for e in supervised))
    if args.attributes:
        wanted = [a.strip() for a in args.attributes.split(",") if a.strip()]
        missing = [a for a in wanted if a not in attrs]
        if missing:
            raise ValueError(f"the bank has no supervised directions for {missing}; it has {', '.join(attrs)}")
        attrs = wanted
    judge_attrs = set(judge.attributes)
    not_judged = [a for a in attrs if a not in judge_attrs]
    if not_judged:
        raise ValueError(f"the judge {judge.name} does not score {not_judged}; it scores {', '.join(judge.attributes)}")
    entries = []
    for a in attrs:
        for m in methods:
            if m not in LINEAR_METHODS + GAUSSIAN_METHODS:
                raise ValueError(f"unknown method {m!r}")
            for sp in spaces:
                try:
                    entries.append(bank.find(a, m, sp))
                except ValueError:
                    pass  # the bank need not hold every combination
    locks = []
    for spec in args.lock:
        pairs = E.TOON_PAIRS if spec == "toon" else [tuple(spec.split(":", 1))] if ":" in spec else None
        if pairs is None:
            raise ValueError(f"--lock takes TARGET:LOCKED[,LOCKED] or 'toon', got {spec!r}")
        for target, locked in pairs:
            if spec == "toon" and target not in attrs:
                continue  # 'toon' locks only the attributes being evaluated
            try:
                e = bank.find(target, args.lock_method, "w")
                lk = [bank.find(x.strip(), args.lock_method, "w") for x in locked.split(",")]
            except ValueError:
                continue
            locks.append((e, lk))
    if not entries:
        raise ValueError("nothing to evaluate: no bank entry matches --attributes/--methods/--spaces")
    discriminator = None
    if args.discriminator:
        D = load_network(args.discriminator, "D", device=device)
        discriminator = lambda img: D(img, None)  # noqa: E731
    jobs = [(e, []) for e in entries] + locks
    renders = len(jobs) * args.n_seeds * sum(1 for a in alphas if a != 0) + args.n_seeds + args.n_reference
    print(f"evaluating {len(jobs)} sweeps: {renders} images to render and judge")
    ctx = E.prepare_context(G, judge, config, device=device, discriminator=discriminator)
    identity = [a for a in E.TOON_IDENTITY if a in judge_attrs]
    rng = np.random.default_rng(0)
    sweeps, summaries = [], []
    for e, locked in tqdm(jobs, desc="evaluating", unit="sweep"):
        sw = E.run_sweep(ctx, e, locked=locked)
        sweeps.append(sw)
        summaries.append(E.summarize_sweep(sw, ctx, identity=identity, same_concept=E.TOON_SAME_CONCEPT,
                                           pairs=E.TOON_PAIRS, rng=rng))
    claims = E.assess_claims(summaries)
    meta = {"model": args.model, "model_id": bank.generator.model_id, "bank": args.bank, "judge": judge.name,
            "n_seeds": args.n_seeds, "seed0": args.seed0, "alphas": list(alphas), "psi": args.psi,
            "seconds": round(time.perf_counter() - t0, 1)}
    md = E.write_report(args.out, summaries, claims, sweeps, meta)
    print(f"wrote {md} ({len(summaries)} sweeps in {meta['seconds']} s)")
    for c in claims:
        print(f"  {c['verdict']:>14s}  {c['claim']}")
    return 0
