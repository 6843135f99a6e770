"""`python -m editor convert`: write any loadable model source in the native safetensors format."""

from __future__ import annotations

from pathlib import Path

NAME = "convert"
HELP = "Convert any model source (reference .pkl, URL, hf://, registry name, random:...) to the native format."
EXAMPLES = """  python -m editor convert network-snapshot-025000.pkl checkpoints/mine
  python -m editor convert ffhq-256 ffhq256.safetensors
  python -m editor convert network-snapshot.pkl D.safetensors --kind D
  python -m editor convert random:toon-64:3 /tmp/toon64-random

OUT ending in .safetensors gives one file with the config in its metadata; any other OUT is a directory holding
state.safetensors (reference parameter names) and config.json (constructor arguments). Both load with
`python -m editor generate --model OUT` or editor.load_generator(OUT). Weights keep their licence: converting
NVIDIA's FFHQ models does not change their non-commercial terms (recorded in the output's config)."""


def add_arguments(parser) -> None:
    parser.add_argument("source", metavar="SOURCE", help="model source (path, URL, hf://, name, random:<config>)")
    parser.add_argument("out", metavar="OUT", help="output directory, or a file name ending in .safetensors")
    parser.add_argument("--kind", choices=("G_ema", "G", "D"), default="G_ema",
                        help="network to take from a reference pickle (default G_ema, the averaged generator)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing output")
    parser.add_argument("--no-progress", action="store_true", help="no download progress bar")


def run(args) -> int:
    from editor.checkpoints import (CONFIG_FILE, STATE_FILE, count_parameters, load_network, model_id,
                                    registry_entry_for, save_network)

    out = Path(args.out)
    exists = out.is_file() if out.suffix == ".safetensors" else (out / STATE_FILE).exists() or (
        out / CONFIG_FILE).exists() or out.is_file()
    if exists and not args.force:
        raise ValueError(f"{out} already exists (use --force to overwrite)")
    net = load_network(args.source, kind=args.kind, progress=not args.no_progress)
    provenance = {"source": str(args.source), "kind": args.kind}
    info = registry_entry_for(args.source)
    if info is not None:
        provenance["license"] = {"name": info.license_name, "url": info.license_url, "text": info.license_text}
    save_network(net, out, provenance)
    print(f"wrote {out}: {type(net).__name__} ({args.kind}), {count_parameters(net):,} parameters, "
          f"model id {model_id(net)}")
    if info is not None and info.license_url:
        print(f"licence: {info.license_name} ({info.license_url})")
    return 0
