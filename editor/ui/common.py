"""What every part of the web UI shares: error handling, the order in which renders reach the screen, display sizes.

Errors. A handler's `ValueError` (bad input: `editor.align.ImageError`, a recipe from another model, an unknown
attribute, ...) is a message for the user: the web UI shows it in one place (the panel's message line; the other
outputs keep their values, so no component gets an error badge), the HTTP API answers with it. Anything else is a
programming error: it is logged with its traceback and the user gets `INTERNAL_ERROR`, never the exception text.
Messages never show the server's temporary folders (`clean_message`).

Display images. Every image the page or the API shows is a PNG that `image_file` writes into Gradio's cache, so
Gradio serves it as it is instead of encoding it again (with Pillow's default zlib level 6: 16 ms for the demo
model's 384 px display image, 56 ms at 1024 px, a large part of a slider's latency). The PNGs come from fpng where it
is installed (requirements.txt, on x86-64 Linux and Apple-silicon macOS: 0.4 ms at 384 px, 1.7 ms at 1024 px, files
no larger than Pillow's level 1), otherwise from Pillow at level 1 (5 / 24 ms); both are lossless.

Render order. Slider previews, full renders and face changes all write the After image and may finish in any order
(Gradio runs several events at once). `RenderOrder` numbers renders in the order they start, per browser session; a
slider render whose number is older than what is on screen is dropped, so a late preview never replaces a newer full
render.
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
import os
import re
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable

import numpy as np

try:  # optional: a much faster lossless PNG writer (see the module's docstring)
    import fpng as _fpng
except ImportError:  # pragma: no cover - depends on the platform's wheels
    _fpng = None

log = logging.getLogger("editor.ui")

INTERNAL_ERROR = ("Something went wrong on the server (an internal error; it has been logged with its details). "
                  "Please try again, or reload the page.")
DISPLAY_MIN = 384  # images smaller than this are upscaled for the screen (exports keep the model's size)


# ----------------------------------------------------------------------------------------------------------------
# Errors


def _temp_roots() -> list[str]:
    roots = {tempfile.gettempdir(), os.environ.get("GRADIO_TEMP_DIR") or ""}
    try:
        from gradio.utils import get_upload_folder

        roots.add(get_upload_folder())
    except ImportError:
        pass
    out = set()
    for r in roots:
        if r:
            out.add(r.rstrip("/"))
            out.add(str(Path(r).resolve()).rstrip("/"))
    return sorted(out, key=len, reverse=True)


def clean_message(text: str) -> str:
    """`text` with every path under the server's temporary folders replaced by the file's own name."""
    for root in _temp_roots():
        text = re.sub(re.escape(root) + r"/[^\s'\"]*", lambda m: Path(m.group()).name or "the file", text)
    return text


def user_message(exc: BaseException) -> str | None:
    """The message to show for an exception, or None when it is a programming error (to be logged)."""
    if isinstance(exc, ValueError):
        return clean_message(str(exc) or type(exc).__name__)
    return None


def report(exc: BaseException, where: str) -> str:
    """The user-facing text for `exc`; programming errors are logged with their traceback first."""
    msg = user_message(exc)
    if msg is None:
        log.error("internal error in %s", where, exc_info=exc)
        return INTERNAL_ERROR
    return msg


def api_guard(fn: Callable) -> Callable:
    """For HTTP endpoints: user errors come back as the error message, programming errors as `INTERNAL_ERROR`."""
    import gradio as gr

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as exc:  # classified by report(): messages for users, tracebacks into the log
            raise gr.Error(report(exc, fn.__name__), print_exception=False) from None

    return wrapped


def ui_guard(message: Any) -> Callable:
    """For UI handlers that return a dict {component: value}: on an error, show it in `message` (a Markdown) and
    leave every other output as it is."""

    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapped(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except Exception as exc:  # classified by report(): messages for users, tracebacks into the log
                return {message: warning(report(exc, fn.__name__))}

        return wrapped

    return decorate


def warning(text: str) -> str:
    return f"⚠️ {text}"


# ----------------------------------------------------------------------------------------------------------------
# Render order


class RenderOrder:
    """Which render of each browser session reached the screen last (bounded: the oldest sessions are forgotten).

    `ticket()` when a render starts; `show(session, ticket)` when it is done: True when it may be shown. A slider
    render (`newest_only=True`) is shown only if nothing started later has been shown; a face change (new sample,
    opened recipe, ...) is always shown and hides every older render still running.
    """

    def __init__(self, max_sessions: int = 4096):
        self._count = itertools.count(1)
        self._shown: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()
        self.max_sessions = int(max_sessions)

    def ticket(self) -> int:
        with self._lock:
            return next(self._count)

    def show(self, session: str | None, ticket: int, newest_only: bool = True) -> bool:
        if not session:
            return True
        with self._lock:
            last = self._shown.get(session, 0)
            if newest_only and ticket < last:
                return False
            self._shown[session] = max(last, ticket)
            self._shown.move_to_end(session)
            while len(self._shown) > self.max_sessions:
                self._shown.popitem(last=False)
            return True


def session_of(request: Any) -> str | None:
    """The browser session of a Gradio request (None for direct calls)."""
    return getattr(request, "session_hash", None) if request is not None else None


# ----------------------------------------------------------------------------------------------------------------
# Display


def upscaled(image: np.ndarray, min_side: int = DISPLAY_MIN) -> np.ndarray:
    """An [H, W, 3] uint8 image upscaled (Lanczos, by a whole factor) until its shorter side is >= `min_side`, so
    a 64 px generator's output fills its box without the browser's blur; larger images are returned as they are."""
    image = np.asarray(image)
    side = min(image.shape[:2])
    if side >= min_side or side == 0:
        return image
    from PIL import Image

    factor = min(math.ceil(min_side / side), 16)
    h, w = image.shape[:2]
    return np.asarray(Image.fromarray(image).resize((w * factor, h * factor), Image.LANCZOS))


def display_png(image: np.ndarray, use_fpng: bool = True) -> bytes:
    """An [H, W, 3] (or [H, W, 4]) uint8 image as a lossless PNG, made for speed (fpng, else Pillow at level 1)."""
    image = np.ascontiguousarray(image, dtype=np.uint8)
    if _fpng is not None and use_fpng and image.ndim == 3 and image.shape[2] in (3, 4) and image.size:
        return _fpng.from_ndarray(image)
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def image_file(image: np.ndarray) -> str:
    """`display_png(image)` written into Gradio's cache (content-addressed, cleaned with the app's cache): the path
    to hand to a gr.Image or gr.Gallery, or to the API's FileData."""
    from gradio.processing_utils import save_bytes_to_cache
    from gradio.utils import get_upload_folder

    return save_bytes_to_cache(display_png(image), "image.png", get_upload_folder())


def compare_position(before: np.ndarray, after: np.ndarray) -> float:
    """Where a before/after slider's divider should start, in percent of the width: at the column centre of what
    changed (the edited face in a whole photo, wherever it sits), 50 when nothing changed; kept within 5-95."""
    if before.shape != after.shape:
        return 50.0
    change = np.abs(after.astype(np.int16) - before.astype(np.int16)).sum(axis=(0, 2)).astype(np.float64)
    if change.sum() == 0:
        return 50.0
    x = float((change * (np.arange(change.size) + 0.5)).sum() / change.sum())
    return float(np.clip(100.0 * x / change.size, 5.0, 95.0))


def for_display(image: np.ndarray, min_side: int = DISPLAY_MIN) -> str:
    """The page's images: `upscaled` to at least `min_side`, as an `image_file`."""
    return image_file(upscaled(image, min_side))
