"""`python -m editor models`: the named model sources, whether they are on this machine, and their licences."""

from __future__ import annotations

NAME = "models"
HELP = "List the named models (ffhq-1024, ffhq-512, ffhq-256, demo), cache status and licences."
EXAMPLES = """  python -m editor models
  python -m editor models --license ffhq-1024

Downloads are cached in $STYLEGAN2_EDITOR_CACHE (default ~/.cache/stylegan2-editor). Without internet, put the
file named in the list there by hand. Set STYLEGAN2_EDITOR_OFFLINE=1 to never try the network."""


def add_arguments(parser) -> None:
    parser.add_argument("--license", metavar="NAME", default=None, help="print the licence terms of one model")


def run(args) -> int:
    from editor.checkpoints import CONFIG_FILE, DEMO_DIR, STATE_FILE, cache_dir, list_models, model_info

    if args.license:
        info = model_info(args.license)
        print(f"{info.name}: {info.license_name}\n\n{info.license_text}")
        return 0
    print(f"cache: {cache_dir()}")
    for info in list_models():
        if info.filename:
            where = cache_dir() / info.filename
            status = "cached" if where.is_file() else f"not downloaded (put {info.filename} in the cache)"
        else:
            where = DEMO_DIR
            present = (DEMO_DIR / STATE_FILE).is_file() and (DEMO_DIR / CONFIG_FILE).is_file()
            status = "bundled" if present else f"missing ({DEMO_DIR} has no {STATE_FILE} yet)"
        print(f"\n{info.name:10s} {info.description}\n{'':10s} {status}\n{'':10s} licence: {info.license_name}"
              + (f" ({info.license_url})" if info.license_url else "")
              + (f"\n{'':10s} url: {info.url}" if info.url else ""))
    return 0
