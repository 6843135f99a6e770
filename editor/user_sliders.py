"""Sliders that users make at run time (from words or clicks), kept apart from the tracked banks.

They live in one bank file per generator in the user data folder:

    $EDITOR_USER_DIR/sliders/<model>-<model id>.safetensors
    (default: the editor's cache folder, $STYLEGAN2_EDITOR_CACHE or ~/.cache/stylegan2-editor, + /user)

written atomically (a temporary file in the same folder, then a rename; mode 0644 under the usual umask), so a
reader never sees half a file and the tracked `directions/*.safetensors` are never touched. The app loads the file
at start-up and adds each newly saved slider to the running engine at once (`Engine.add_directions`).
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
from pathlib import Path
from typing import Sequence

from editor.bank import Bank, BankEntry, GeneratorInfo, load_bank, save_bank, to_engine_bank
from editor.checkpoints import cache_dir
from editor.engine import Direction, Engine

USER_DIR_ENV = "EDITOR_USER_DIR"
_write_lock = threading.Lock()


def user_dir() -> Path:
    """The user data folder: $EDITOR_USER_DIR, else <editor cache>/user. Not created here."""
    if os.environ.get(USER_DIR_ENV):
        return Path(os.environ[USER_DIR_ENV]).expanduser()
    return cache_dir() / "user"


def bank_path(engine: Engine, root: Path | None = None) -> Path:
    """The user-slider bank of the engine's generator (named by its model name and id)."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", str(engine.model_name).split("/")[-1]).strip("-.") or "model"
    ident = re.sub(r"[^A-Za-z0-9]+", "", str(engine.model_id))[-12:] or "unknown"
    return (root or user_dir()) / "sliders" / f"{name}-{ident}.safetensors"


def samples_path(engine: Engine, clip_spec: str, n: int, root: Path | None = None) -> Path:
    """The folder of the on-demand CLIP sample embeddings for sliders from words (an `editor.samples` cache)."""
    clip = re.sub(r"[^A-Za-z0-9_.-]+", "-", clip_spec.split("/")[-1]).strip("-.")
    return bank_path(engine, root).parent.parent / "samples" / f"{bank_path(engine, root).stem}-{clip}-{n}"


def generator_info(engine: Engine) -> GeneratorInfo:
    return GeneratorInfo(model_id=str(engine.model_id), z_dim=engine.z_dim, w_dim=engine.w_dim, num_ws=engine.num_ws)


def save_entries(path: Path, entries: Sequence[BankEntry], info: GeneratorInfo) -> Bank:
    """Add (or replace, by attribute/method/space) entries in the user bank at `path`, atomically."""
    path = Path(path)
    entries = list(entries)
    if not entries:
        raise ValueError("nothing to save")
    with _write_lock:
        if path.is_file():
            old = load_bank(path)
            if old.generator.model_id != info.model_id:
                raise ValueError(f"{path.name} holds sliders of another generator ({old.generator.model_id})")
            names = {e.name for e in entries}
            bank = Bank(info, tuple(e for e in old.entries if e.name not in names) + tuple(entries), old.command,
                        old.created)
        else:
            bank = Bank(info, tuple(entries), "user sliders (editor.user_sliders)")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".safetensors")
        os.close(fd)
        try:
            save_bank(bank, tmp)
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return bank


def load_entries(path: Path, info: GeneratorInfo) -> list[BankEntry]:
    """The user bank's entries ([] when there is none); ValueError when it was made for another generator."""
    path = Path(path)
    if not path.is_file():
        return []
    bank = load_bank(path)
    bank.validate(info)
    return list(bank.entries)


def to_directions(entries: Sequence[BankEntry], info: GeneratorInfo) -> list[Direction]:
    """The engine's view of user entries (linear W / W+ directions)."""
    if not entries:
        return []
    return list(to_engine_bank(Bank(info, tuple(entries))).directions)
