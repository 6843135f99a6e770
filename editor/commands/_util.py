"""Small parsers shared by the sub-commands."""

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
