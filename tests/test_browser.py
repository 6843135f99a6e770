"""A real browser against the app: headless Debian chromium driven by Playwright.

Samples a face (on load), moves a slider and sees the image change, locks an attribute, exports a PNG with its recipe
and re-opens it, and saves screenshots (into $EDITOR_SCREENSHOT_DIR when set, e.g. docs/, else a temp folder).
Skipped with a reason when Playwright or /usr/bin/chromium is missing (scripts/test.sh installs both).
"""

import os
import shutil
import socket
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("EDITOR_CHROMIUM", "/usr/bin/chromium")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
    pytest.skip(f"no chromium at {CHROMIUM} (apt-get install chromium chromium-driver)", allow_module_level=True)

import app  # noqa: E402
from _engine_fixtures import tiny_engine  # noqa: E402
from editor import service  # noqa: E402

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served():
    """(url, engine): the tiny test engine, or the model named by $EDITOR_TEST_MODEL (for nicer screenshots)."""
    if os.environ.get("EDITOR_TEST_MODEL"):
        engine, card = service.open_engine(os.environ["EDITOR_TEST_MODEL"])
    else:
        engine = tiny_engine()
        card = service.ModelCard("tiny", "tiny random test generator", "none", "",
                                 ("Running a random-weight test generator.",))
    demo = app.build_demo(engine, card)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, css=app.CSS)
    try:
        yield f"http://127.0.0.1:{port}/", engine
    finally:
        demo.close()


@pytest.fixture(scope="module")
def page(served):
    with sync_api.sync_playwright() as pw:
        try:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        except Exception as exc:  # a broken browser install is an environment problem, not an app failure
            pytest.skip(f"chromium did not start: {exc}")
        page = browser.new_page(viewport={"width": 1280, "height": 1100}, accept_downloads=True)
        page.set_default_timeout(30_000)
        page.goto(served[0])
        yield page
        browser.close()


def after_src(page) -> str:
    return page.locator("#after-image img").first.get_attribute("src") or ""


def wait_src_change(page, old: str) -> str:
    page.wait_for_function(
        "old => { const i = document.querySelector('#after-image img'); return i && i.src && i.src !== old; }",
        arg=old)
    return after_src(page)


def screenshot_dir(tmp_path_factory) -> Path:
    d = os.environ.get("EDITOR_SCREENSHOT_DIR")
    return Path(d) if d else tmp_path_factory.mktemp("screens")


def test_browser_session(page, served, tmp_path_factory):
    shots = screenshot_dir(tmp_path_factory)
    edit, lock = served[1].bank.attributes[:2]
    page.wait_for_selector("#after-image img")
    if not os.environ.get("EDITOR_TEST_MODEL"):
        assert "random-weight" in page.locator("#model-notice").inner_text()
    first = after_src(page)

    # move a slider: the preview (input) and then the full render (release) replace the image
    page.locator(f"#{app.slider_id(edit)} input[type=range]").fill("3")
    edited = wait_src_change(page, first)

    # lock an attribute: the edit is re-projected, so the image changes again (the synthetic bank's directions are
    # not orthogonal; a PCA bank's are, and there the image rightly stays)
    page.locator("#locks label", has_text=lock).click()
    assert page.locator("#locks label", has_text=lock).locator("input").is_checked()
    if os.environ.get("EDITOR_TEST_MODEL"):
        page.wait_for_timeout(2000)
        locked = after_src(page)
    else:
        locked = wait_src_change(page, edited)
    page.screenshot(path=str(shots / "app-edit.jpg"), full_page=True, type="jpeg", quality=70)

    # export a PNG with the recipe
    page.get_by_role("tab", name="Export").click()
    page.locator("#export-png-btn").click()
    link = page.locator("#export-file a").first
    link.wait_for()
    with page.expect_download() as info:
        link.click()
    exported = tmp_path_factory.mktemp("export") / "edit.png"
    info.value.save_as(exported)
    assert exported.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # reset, then re-open the PNG: the sliders and the image come back
    page.locator("#reset-btn").click()
    reset = wait_src_change(page, locked)
    assert page.locator(f"#{app.slider_id(edit)} input[type=number]").input_value() in ("0", "0.0")
    page.get_by_role("tab", name="Open recipe").click()
    page.locator("#recipe-upload input[type=file]").set_input_files(str(exported))
    page.wait_for_function("() => document.querySelector('#status').innerText.includes('Opened')")
    wait_src_change(page, reset)
    assert float(page.locator(f"#{app.slider_id(edit)} input[type=number]").input_value()) == 3.0
    page.screenshot(path=str(shots / "app-reopened.jpg"), full_page=True, type="jpeg", quality=70)


def test_browser_candidates_and_mixing(page, served):
    page.get_by_role("tab", name="Sample").click()
    first = after_src(page)
    page.locator("#candidates img").nth(2).click()  # pick a candidate: a new face
    picked = wait_src_change(page, first)
    assert page.locator("#status").inner_text().startswith("Face: seed")
    page.get_by_role("tab", name="Interpolate / style-mix").click()
    page.get_by_role("button", name="Load face B").click()
    page.locator("#face-b img").wait_for()
    page.get_by_role("button", name="Style-mix").click()
    page.locator("#mixed img").wait_for()
    page.get_by_role("button", name="Make GIF A → B").click()
    page.locator("#animation a").first.wait_for()
    page.get_by_role("button", name="Edit the mix").click()
    wait_src_change(page, picked)
    assert "mix of" in page.locator("#status").inner_text()
    assert page.locator(".toast-body").count() == 0  # no error messages were shown


def test_browser_bad_file_shows_message_and_keeps_working(page, served, tmp_path):
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    page.reload()  # a fresh session: the file box is empty again
    page.wait_for_selector("#after-image img")
    page.get_by_role("tab", name="Open recipe").click()
    page.locator("#recipe-upload input[type=file]").set_input_files(str(corrupt))
    page.locator(".toast-body", has_text="not a readable PNG").first.wait_for()
    before = after_src(page)
    page.get_by_role("tab", name="Sample").click()
    page.locator("#seed input").fill("123")
    page.locator("#sample-btn").click()
    wait_src_change(page, before)
    assert "seed 123" in page.locator("#status").inner_text()
