"""Small parsers and options shared by the sub-commands."""

from __future__ import annotations


def parse_range(text: str) -> list[int]:
    """Parse a list of integers such as '0-7', '0,3,5-9' or '12' into a list (order kept, duplicates dropped).

    >>> parse_range('0,3,5-7')
    [0, 3, 5, 6, 7]
    """
    values: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        if sep and lo.strip():
            start, stop = int(lo), int(hi)
            if stop < start:
                raise ValueError(f"range {part!r} runs backwards")
            values.extend(range(start, stop + 1))
        else:
            values.append(int(part))
    if not values:
        raise ValueError(f"no numbers in {text!r}")
    seen: set[int] = set()
    return [v for v in values if not (v in seen or seen.add(v))]


def resolve_device(name: str = "auto") -> str:
    """Map 'auto' to 'cuda' when available, else 'cpu'; pass other names through."""
    if name != "auto":
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def add_run_length_arguments(parser, eval_minutes: float) -> None:
    """The options every resumable trainer takes: precision, how long to run, snapshot / eval cadence, threads."""
    parser.add_argument("--fp32", action="store_true", help="no bfloat16 autocast")
    parser.add_argument("--minutes", type=float, default=None, help="stop after this many minutes of this process")
    parser.add_argument("--kimg", type=float, default=None, help="stop when this many thousand images were seen")
    parser.add_argument("--snap-minutes", type=float, default=10.0)
    parser.add_argument("--eval-minutes", type=float, default=eval_minutes)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")


def stop_on_signals():
    """Make SIGINT / SIGTERM request a stop instead of killing the process; returns `stop() -> bool` for a trainer
    that finishes its step and snapshots when asked."""
    import signal

    requested: list[int] = []

    def handler(signum, frame):
        if not requested:
            print("stopping after this step (a snapshot follows)", flush=True)
        requested.append(signum)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handler)
    return lambda: bool(requested)
