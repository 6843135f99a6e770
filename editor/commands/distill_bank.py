"""`python -m editor distill-bank`: turn a bank's Z boundaries into W directions by labelling sampled latents."""

from __future__ import annotations

NAME = "distill-bank"
HELP = "Distil Z-space boundaries into W directions (sample z, map to W, label by the Z boundary, fit in W)."
EXAMPLES = """  python -m editor distill-bank --model ffhq-1024 --bank directions/ffhq-1024.safetensors --calibrate
  python -m editor distill-bank --model random:small --bank my-z-bank.safetensors --out distilled.safetensors --n 2000
  (needs only the mapping network: fast on CPU; it runs wherever the generator's weights are available)"""


def add_arguments(parser) -> None:
    parser.add_argument("--model", required=True, help="generator source (registry name, path, URL, random:<config>)")
    parser.add_argument("--bank", required=True, help="bank file holding z-space directions")
    parser.add_argument("--out", default=None, help="bank file to write (default: overwrite --bank)")
    parser.add_argument("--n", type=int, default=20000, help="latents to sample (default 20000)")
    parser.add_argument("--seed0", type=int, default=0, help="seed of the first latent (z from RandomState(seed))")
    parser.add_argument("--psi", type=float, default=1.0, help="truncation psi of the mapping (default 1: none)")
    parser.add_argument("--method", default="svm", help="W fit: svm | logreg | lda | meandiff (default svm)")
    parser.add_argument("--share", type=float, default=0.1, help="confident top/bottom share (default 0.1)")
    parser.add_argument("--attributes", default=None, help="only these z attributes (comma-separated)")
    parser.add_argument("--calibrate", action="store_true",
                        help="also re-measure sigma (slider unit) of the bank's W / W+ directions on these samples")
    parser.add_argument("--batch", type=int, default=1000, help="latents per mapping call (default 1000)")
    parser.add_argument("--device", default="auto", help="cpu | cuda | auto (default auto)")
    parser.add_argument("--unverified", action="store_true",
                        help="accept a bank of the same architecture built for other weights, or for published weights "
                             "this generator is not verified to be (e.g. a file copied into the cache by hand)")


def run(args) -> int:
    import shlex
    import time
    from pathlib import Path

    import numpy as np
    import torch

    from editor.bank import generator_info, load_bank, save_bank
    from editor.checkpoints import load_generator
    from editor.commands._util import resolve_device
    from editor.public_banks import DistillOptions, as_bank, calibrate_sigmas, distill_z_entries
    from editor.samples import z_from_seeds

    if args.n < 20:
        raise ValueError("--n must be >= 20")
    if args.batch < 1:
        raise ValueError("--batch must be >= 1")
    options = DistillOptions(method=args.method, share=args.share)
    device = resolve_device(args.device)
    t0 = time.perf_counter()
    G = load_generator(args.model, device=device)
    info = generator_info(G, args.model)
    bank = load_bank(args.bank, info, check_identity=not args.unverified, source=args.model)
    if args.unverified and not bank.fits_identity(info):
        print(f"warning: {args.bank} was not built for these weights (unverified); its directions may not mean what "
              "their names say")
    z_entries = [e for e in bank.entries if e.space.kind == "z"]
    if args.attributes:
        wanted = [a.strip() for a in args.attributes.split(",") if a.strip()]
        missing = [a for a in wanted if a not in {e.attribute for e in z_entries}]
        if missing:
            raise ValueError(f"no z direction for {missing}; the bank's z attributes: "
                             f"{', '.join(e.attribute for e in z_entries) or 'none'}")
        z_entries = [e for e in z_entries if e.attribute in wanted]
    if not z_entries and not args.calibrate:
        raise ValueError(f"{args.bank} holds no z-space directions to distil")
    seeds = np.arange(args.seed0, args.seed0 + args.n)
    z = z_from_seeds(seeds, G.z_dim)  # [N, z_dim]
    parts = []
    with torch.no_grad():
        for i in range(0, args.n, args.batch):
            zb = torch.from_numpy(z[i:i + args.batch]).to(device)
            parts.append(G.mapping(zb, None, truncation_psi=args.psi).float().cpu().numpy())
    ws = np.concatenate(parts)  # [N, num_ws, w_dim]
    t1 = time.perf_counter()
    note = f"{args.n} latents from seeds {args.seed0}.., psi {args.psi}, model {args.model}"
    distilled = distill_z_entries(z_entries, z, ws, options, note=note)
    entries = list(bank.entries)
    if args.calibrate:
        entries = calibrate_sigmas(entries, ws)
    command = " ".join(shlex.quote(p) for p in ["python", "-m", "editor", NAME, "--model", str(args.model), "--bank",
                                                 str(args.bank), "--n", str(args.n), "--seed0", str(args.seed0),
                                                 "--psi", str(args.psi), "--method", args.method, "--share",
                                                 str(args.share)]
                       + (["--calibrate"] if args.calibrate else []))
    out = Path(args.out or args.bank)
    result = as_bank(bank.generator, entries + distilled, command=f"{bank.command} ; then {command}")
    save_bank(result, out)
    t2 = time.perf_counter()
    print(f"wrote {out}: {len(distilled)} W directions distilled from z boundaries ({len(result.entries)} in all); "
          f"mapping {t1 - t0:.1f} s, fitting {t2 - t1:.1f} s")
    for e in distilled:
        print(f"  {e.name:36s} val acc {e.val_accuracy:.3f}  sigma {e.sigma:.3f}")
    return 0
