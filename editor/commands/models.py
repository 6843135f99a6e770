"""`python -m editor models`: the named model sources, whether they are on this machine (and verified), their sizes
and licences."""

from __future__ import annotations

NAME = "models"
HELP = "List the named models (NVIDIA's FFHQ / MetFaces generators, demo), cache status, sizes and licences."
EXAMPLES = """  python -m editor models
  python -m editor models --license ada-metfaces

Downloads are cached in $STYLEGAN2_EDITOR_CACHE (default ~/.cache/stylegan2-editor). Without internet, put the
file named in the list there by hand (it then runs, but is not verified to be the publisher's file: its bank
attaches only with --bank). Set STYLEGAN2_EDITOR_OFFLINE=1 to never try the network."""


def add_arguments(parser) -> None:
    parser.add_argument("--license", metavar="NAME", default=None, help="print the licence terms of one model")


def run(args) -> int:
    from editor.checkpoints import CONFIG_FILE, DEMO_DIR, STATE_FILE, cache_dir, list_models, model_info
    from editor.checkpoints.registry import cached_path, fingerprints

    if args.license:
        info = model_info(args.license)
        print(f"{info.name}: {info.license_name}\n\n{info.license_text}")
        return 0
    print(f"cache: {cache_dir()}")
    verified = fingerprints()
    for info in list_models():
        if info.filename:
            where = cached_path(info)
            if not where.is_file():
                status = f"not downloaded (put {info.filename} in the cache)"
            elif info.name in verified:
                fp = verified[info.name]
                status = f"cached, verified (downloaded {fp.recorded[:10]}, sha256 {fp.sha256[:16]}...)"
            else:
                status = "cached, not verified (not downloaded by this program)"
        else:
            present = (DEMO_DIR / STATE_FILE).is_file() and (DEMO_DIR / CONFIG_FILE).is_file()
            status = "bundled" if present else f"missing ({DEMO_DIR} has no {STATE_FILE} yet)"
        pad = " " * 17
        print(f"\n{info.name:16s} {info.description}\n{pad}{status}\n{pad}size: {info.size}"
              f"\n{pad}licence: {info.license_name}" + (f" ({info.license_url})" if info.license_url else "")
              + (f"\n{pad}url: {info.url}" if info.url else "")
              + (f"\n{pad}bank: directions/{info.bank_name}.safetensors" if info.bank_name else ""))
    return 0
