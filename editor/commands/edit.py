"""`python -m editor edit`: the editor's operations from the command line (the same backend as the web app)."""

from __future__ import annotations

from pathlib import Path

NAME = "edit"
HELP = "Edit a face with the direction bank's sliders and export PNG (with recipe), .npz, GIF or MP4."
EXAMPLES = """  python -m editor edit --model demo --seed 3 --set smile=2,age=-1 --out edited.png
  python -m editor edit --model demo --seed 3 --set smile=2 --lock age,glasses --layers middle --method svm --out e.png
  python -m editor edit --model demo --recipe edited.png --set smile=3 --out more.png       # continue an export
  python -m editor edit --model demo --seed 3 --walk smile --from -3 --to 3 --frames 24 --out walk.gif
  python -m editor edit --model demo --seed 3 --out latent.npz
  python -m editor edit --model demo --list                                                 # the bank's sliders

Slider values are in standard deviations (sigma) of the bank's samples along each direction. --layers: all (W, every
layer), coarse, middle, fine or a range such as 2-5 (W+). The output kind follows --out's extension: .png (the image
with the edit recipe embedded; re-open it with --recipe or in the app), .npz (latents), .gif / .mp4 (a walk along
--walk). The bank is --bank FILE, else directions/<model>.safetensors, else principal components of W."""


def add_arguments(parser) -> None:
    parser.add_argument("--model", default="demo", metavar="SOURCE", help="model source (default: demo)")
    parser.add_argument("--bank", default=None, metavar="FILE", help="direction bank file")
    face = parser.add_mutually_exclusive_group()
    face.add_argument("--seed", type=int, default=None, help="sample this seed (default 0)")
    face.add_argument("--recipe", default=None, metavar="FILE",
                      help="start from an exported PNG, latent .npz or recipe .json")
    parser.add_argument("--trunc", type=float, default=0.7, metavar="PSI", help="truncation psi (default 0.7)")
    parser.add_argument("--set", default="", metavar="A=V,...", help="slider values, e.g. smile=2,age=-1")
    parser.add_argument("--lock", default="", metavar="A,...", help="attributes other edits must not change")
    parser.add_argument("--layers", default=None, help="all | coarse | middle | fine | LO-HI (default: all, or the "
                        "recipe's)")
    parser.add_argument("--method", default=None, help="direction method to prefer (default: the bank's first)")
    parser.add_argument("--walk", default=None, metavar="ATTRIBUTE", help="attribute to move for .gif / .mp4")
    parser.add_argument("--from", dest="walk_from", type=float, default=-3.0, help="walk start in sigma (-3)")
    parser.add_argument("--to", dest="walk_to", type=float, default=3.0, help="walk end in sigma (3)")
    parser.add_argument("--frames", type=int, default=24, help="walk frames (24)")
    parser.add_argument("--fps", type=float, default=12.0, help="frames per second (12)")
    parser.add_argument("--out", default="edited.png", help="output file: .png, .npz, .gif or .mp4")
    parser.add_argument("--list", action="store_true", help="list the bank's sliders and exit")
    parser.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, ...")


def run(args) -> int:
    import shutil
    import tempfile

    from editor import service
    from editor.commands import CommandError
    from editor.commands._util import resolve_device
    from editor.engine import EditState

    engine, card = service.open_engine(args.model, args.bank, resolve_device(args.device))
    for notice in card.notices:
        print(f"notice: {notice}")
    if args.list:
        print(f"model {card.source} ({engine.resolution} px, {engine.num_ws} layers), bank {engine.bank.bank_id}")
        for d in engine.bank.directions:
            layers = "" if d.layers is None else f" layers {d.layers[0]}-{d.layers[1] - 1}"
            print(f"  {d.attribute:<20} {d.method:<9} {d.space}{layers}  sigma {d.sigma:.4g}")
        return 0
    if args.recipe:
        state, warnings = service.read_recipe_file(engine, args.recipe)
        for w in warnings:
            print(f"warning: {w}")
    else:
        state = service.sample(engine, 0 if args.seed is None else args.seed, args.trunc)
    space, layers = (state.space, state.layers) if args.layers is None else service.parse_layers(args.layers,
                                                                                                 engine.num_ws)
    locked = service.parse_locked(args.lock) if args.lock else list(state.locked)
    sliders = dict(state.sliders)
    sliders.update(service.parse_edits(args.set))
    state = EditState.create(state.latent, sliders, method=args.method or state.method, space=space, layers=layers,
                             locked=locked)
    engine.check_state(state)
    out = Path(args.out)
    fmt = out.suffix.lower().lstrip(".")
    if fmt not in service.EXPORT_FORMATS:
        raise CommandError(f"--out must end in one of {', '.join('.' + f for f in service.EXPORT_FORMATS)}")
    with tempfile.TemporaryDirectory() as tmp:
        written = service.export(engine, state, fmt, args.walk, args.walk_from, args.walk_to, args.frames,
                                 fps=args.fps, out_dir=Path(tmp))
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(written), out)
    edits = ", ".join(f"{k}={v:g}" for k, v in state.sliders) or "no edits"
    print(f"wrote {out} ({state.latent.origin}; {edits}; space {state.space}"
          f"{'' if state.layers is None else f' layers {state.layers[0]}-{state.layers[1] - 1}'}"
          f"{'; locked ' + ', '.join(state.locked) if state.locked else ''})")
    return 0
