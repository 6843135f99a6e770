"""The CLI layer. Each module in this package is one sub-command and defines:

    NAME: str                  the sub-command as typed (e.g. "generate", "build-bank")
    HELP: str                  one line for `python -m editor --help`
    EXAMPLES: str              example command lines shown in the sub-command's --help (optional)
    add_arguments(parser)      declares its options on an argparse parser
    run(args) -> int           does the work, returns the exit status

Modules are discovered automatically, so adding a command means adding a file here.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys


def _command_modules():
    modules = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "NAME") and hasattr(module, "run"):
            modules.append(module)
    return modules


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m editor",
        description="Semantic face editing with StyleGAN2: generate, convert, train, build direction banks, edit.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _command_modules():
        p = sub.add_parser(
            module.NAME,
            help=module.HELP,
            description=module.HELP,
            epilog=("examples:\n" + module.EXAMPLES) if getattr(module, "EXAMPLES", "") else None,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


class CommandError(Exception):
    """An error the user can fix; printed without a traceback."""


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except (CommandError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
