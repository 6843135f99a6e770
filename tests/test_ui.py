"""The web UI's shared parts without a browser: render order, error classification, display sizes, slider groups,
and the handlers as Gradio calls them."""

import io
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

gr = pytest.importorskip("gradio")

from _engine_fixtures import tiny_engine  # noqa: E402
from editor.ui import common  # noqa: E402
from editor.ui.common import INTERNAL_ERROR, RenderOrder, clean_message, for_display, ui_guard, upscaled  # noqa: E402


@pytest.fixture(scope="module")
def engine():
    return tiny_engine()


def test_render_order_drops_late_slider_renders():
    order = RenderOrder()
    preview, full = order.ticket(), order.ticket()  # the preview started first ...
    assert order.show("s1", full)  # ... the full render finished first
    assert not order.show("s1", preview)  # so the late preview is dropped
    assert order.show("s2", preview)  # sessions are independent
    newer_preview = order.ticket()
    assert order.show("s1", newer_preview)  # a preview of a later move is shown
    face = order.ticket()
    late_slider = order.ticket()
    assert order.show("s1", late_slider)
    assert order.show("s1", face, newest_only=False)  # a new face is always shown ...
    assert not order.show("s1", newer_preview)  # ... and older slider renders stay hidden
    assert order.show(None, 1)  # direct calls (no session) are not ordered


def test_render_order_is_bounded():
    order = RenderOrder(max_sessions=3)
    for i in range(10):
        order.show(f"s{i}", order.ticket())
    assert len(order._shown) == 3


def test_guard_shows_user_errors_and_logs_programming_errors(caplog, tmp_path):
    place = object()

    @ui_guard(place)
    def bad_input():
        raise ValueError(f"{common.tempfile.gettempdir()}/gradio/abc123/photo.png is not an image")

    @ui_guard(place)
    def bug():
        return {}["missing"]

    msg = bad_input()[place]
    assert "photo.png is not an image" in msg and "gradio/abc123" not in msg
    with caplog.at_level(logging.ERROR, logger="editor.ui"):
        out = bug()[place]
    assert INTERNAL_ERROR in out and "missing" not in out
    assert caplog.records and caplog.records[0].exc_info is not None  # logged with its traceback
    assert clean_message("no paths here") == "no paths here"


def test_api_guard_classifies_too():
    @common.api_guard
    def typo(x):
        return x + "1"

    @common.api_guard
    def refuse():
        raise ValueError("steps must be in [2, 240] frames, got 0")

    with pytest.raises(gr.Error, match="internal error"):
        typo(1)
    with pytest.raises(gr.Error, match="steps must be"):
        refuse()


def test_upscaled_enlarges_small_images_only():
    small = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    big = upscaled(small)
    assert big.shape == (384, 384, 3) and big.dtype == np.uint8
    large = np.zeros((512, 512, 3), np.uint8)
    assert upscaled(large) is large


@pytest.mark.parametrize("use_fpng", [True, False])
@pytest.mark.parametrize("shape", [(64, 48, 3), (33, 17, 4), (1, 1, 3)])
def test_display_pngs_are_lossless(use_fpng, shape):
    if use_fpng and common._fpng is None:
        pytest.skip("fpng is not installed on this platform")
    image = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    data = common.display_png(image, use_fpng=use_fpng)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), image)


def test_for_display_writes_the_upscaled_image_into_gradios_cache():
    from gradio.utils import get_upload_folder

    small = np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    path = Path(for_display(small))
    assert Path(get_upload_folder()).resolve() in path.resolve().parents and path.suffix == ".png"
    assert np.array_equal(np.asarray(Image.open(path)), upscaled(small))


def test_api_reads_only_uploaded_files(tmp_path):
    from editor.ui.api import uploaded_path

    for path in ("/etc/hostname", str(tmp_path / "x.png"), "../../etc/passwd"):
        with pytest.raises(ValueError, match="send the file itself"):
            uploaded_path({"path": path, "meta": {"_type": "gradio.FileData"}})
    with pytest.raises(ValueError, match="send a file"):
        uploaded_path(None)


def test_compare_position_follows_the_edit():
    """The pasted photo's before/after divider starts across the edited face, wherever it sits in the photo."""
    from editor.ui.common import compare_position

    before = np.zeros((40, 100, 3), np.uint8)
    after = before.copy()
    assert compare_position(before, after) == 50.0  # nothing edited: the middle
    after[10:30, 60:80] = 200
    assert compare_position(before, after) == pytest.approx(70.0)
    edge = before.copy()
    edge[:, 0] = 255
    assert compare_position(before, edge) == 5.0  # kept where the handle can be grabbed
    assert compare_position(before, np.zeros((40, 90, 3), np.uint8)) == 50.0  # sizes differ: no guess
