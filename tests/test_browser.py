"""A real browser against the app: headless Debian chromium driven by Playwright.

Samples a face (on load), moves sliders by typing, arrow keys and drags and checks that the After image ends on the
full render (never on a late preview), locks an attribute, exports and re-opens a PNG, checks the W+ presets and the
method choice disable the sliders that cannot act, uploads bad files and sees one message in place, and saves
screenshots (into $EDITOR_SCREENSHOT_DIR when set, e.g. docs/, else a temp folder).
Skipped with a reason when Playwright or /usr/bin/chromium is missing (scripts/test.sh installs both).
"""

import io
import os
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CHROMIUM = os.environ.get("EDITOR_CHROMIUM", "/usr/bin/chromium")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
    pytest.skip(f"no chromium at {CHROMIUM} (apt-get install chromium chromium-driver)", allow_module_level=True)

import app  # noqa: E402
from _engine_fixtures import synthetic_bank, tiny_generator  # noqa: E402
from editor import service  # noqa: E402
from editor.engine import Direction, EditBank, EditState, Engine, EngineConfig  # noqa: E402
from editor.ui.common import upscaled  # noqa: E402

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
SETTLE_MS = 1500  # how long a late render could still arrive after the image settled (previews are slowed below)


class SlowPreviewEngine(Engine):
    """The tiny engine with previews that take longer than full renders, so a late preview would win every race."""

    def render(self, state, preview=False):
        if preview:
            import time

            time.sleep(0.3)
        return super().render(state, preview)


def slow_engine():
    """The tiny generator; its bank has the synthetic W directions plus W+ directions fitted on the coarse and
    middle layers only (so 'fine', layer 7 of 8, leaves that slider without a direction)."""
    G = tiny_generator()
    bank = synthetic_bank(G.num_ws, G.w_dim)
    rng = np.random.default_rng(1)
    extra = (Direction("pose", rng.standard_normal(G.w_dim), sigma=1.0, method="svm", space="w+", layers=(0, 4)),
             Direction("pose", rng.standard_normal(G.w_dim), sigma=1.0, method="svm", space="w+", layers=(4, 6)))
    bank = EditBank(bank.directions + extra, bank.bank_id, bank.description)
    return SlowPreviewEngine(G, bank, config=EngineConfig(preview_resolution=16), model_name="tiny random")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(url, engine): the tiny test engine, or the model named by $EDITOR_TEST_MODEL (for nicer screenshots)."""
    from editor.custom_sliders import ClickOptions
    from editor.ui.custom import CustomSliderBackend

    if os.environ.get("EDITOR_TEST_MODEL"):
        engine, card = service.open_engine(os.environ["EDITOR_TEST_MODEL"])
    else:
        engine = slow_engine()
        card = service.ModelCard("tiny", "tiny random test generator", "none", "",
                                 ("Running a random-weight test generator.",))
    custom = CustomSliderBackend(engine, bank_path=tmp_path_factory.mktemp("user") / "sliders.safetensors",
                                 pool_size=200, click_options=ClickOptions(grid=6, min_labels=12))
    demo = app.build_demo(engine, card, custom=custom)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, css=app.CSS)
    try:
        yield f"http://127.0.0.1:{port}/", engine
    finally:
        demo.close()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as pw:
        try:
            b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        except Exception as exc:  # a broken browser install is an environment problem, not an app failure
            pytest.skip(f"chromium did not start: {exc}")
        yield b
        b.close()


@pytest.fixture()
def page(browser, served):
    """A fresh browser session on the app, after the first face has been shown."""
    page = browser.new_page(viewport={"width": 1400, "height": 1100}, accept_downloads=True)
    page.set_default_timeout(30_000)
    page.goto(served[0])
    page.wait_for_selector("#after-image img")
    yield page
    page.close()


def after_src(page) -> str:
    return page.locator("#after-image img").first.get_attribute("src") or ""


def wait_src_change(page, old: str) -> str:
    page.wait_for_function(
        "old => { const i = document.querySelector('#after-image img'); return i && i.src && i.src !== old; }",
        arg=old)
    return after_src(page)


def shown_after(page) -> np.ndarray:
    """The After image as the browser has it (fetched from its src)."""
    data = page.request.get(after_src(page)).body()
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def wait_for_after(page, expected: np.ndarray, what: str) -> None:
    """Wait until the After image is `expected` (an engine render, as displayed), then make sure it stays."""
    want = upscaled(expected)
    for _ in range(150):
        img = shown_after(page)
        if img.shape == want.shape and np.array_equal(img, want):
            break
        page.wait_for_timeout(200)
    else:
        raise AssertionError(f"{what}: the After image never became the full render")
    page.wait_for_timeout(SETTLE_MS)  # a late preview would land here
    img = shown_after(page)
    assert img.shape == want.shape and np.array_equal(img, want), f"{what}: a late render replaced the full one"


def slider_value(page, name: str) -> float:
    return float(page.locator(f"#{app.slider_id(name)} input[type=number]").input_value())


def full_render(served, sliders: dict, **settings) -> np.ndarray:
    engine = served[1]
    return engine.render(EditState.create(engine.sample(0, 0.7), sliders, **settings))


def screenshot_dir(tmp_path_factory) -> Path:
    d = os.environ.get("EDITOR_SCREENSHOT_DIR")
    return Path(d) if d else tmp_path_factory.mktemp("screens")


def test_late_previews_never_replace_the_full_render(page, served):
    if os.environ.get("EDITOR_TEST_MODEL"):
        pytest.skip("checks pixels of the tiny test engine")
    smile = app.slider_id("smile")
    # typed values: one input event per keystroke, no release (the number box keeps the focus)
    for text in ("2.5", "-1.2", "4"):
        page.locator(f"#{smile} input[type=number]").fill(text)
        wait_for_after(page, full_render(served, {"smile": float(text)}), f"typed {text}")
    # arrow keys on the range: an input event per key, never a release
    page.locator(f"#{smile} input[type=range]").focus()
    for key in ("ArrowLeft", "ArrowLeft", "ArrowLeft"):
        page.keyboard.press(key)
    wait_for_after(page, full_render(served, {"smile": slider_value(page, "smile")}), "arrow keys")
    assert slider_value(page, "smile") == pytest.approx(3.7)
    # quick drags across the range
    box = page.locator(f"#{smile} input[type=range]").bounding_box()
    y = box["y"] + box["height"] / 2
    for start, stop in ((0.2, 0.8), (0.9, 0.3)):
        page.mouse.move(box["x"] + start * box["width"], y)
        page.mouse.down()
        page.mouse.move(box["x"] + stop * box["width"], y, steps=8)
        page.mouse.up()
        page.wait_for_timeout(100)
        wait_for_after(page, full_render(served, {"smile": slider_value(page, "smile")}), f"drag to {stop}")
    assert page.locator("#status").inner_text().startswith("Face: seed 0")


def test_browser_session(page, served, tmp_path_factory):
    shots = screenshot_dir(tmp_path_factory)
    edit, lock = served[1].bank.attributes[:2]
    if not os.environ.get("EDITOR_TEST_MODEL"):
        assert "random-weight" in page.locator("#model-notice").inner_text()
    first = after_src(page)

    # move a slider: the preview (input) and then the full render replace the image
    page.locator(f"#{app.slider_id(edit)} input[type=range]").fill("3")
    edited = wait_src_change(page, first)

    # lock an attribute: the edit is re-projected, so the image changes again (the synthetic bank's directions are
    # not orthogonal; a PCA bank's are, and there the image rightly stays)
    page.locator("#locks input").click()
    page.get_by_role("option", name=lock, exact=True).click()
    page.keyboard.press("Escape")
    if os.environ.get("EDITOR_TEST_MODEL"):
        page.wait_for_timeout(2000)
        locked = after_src(page)
    else:
        locked = wait_src_change(page, edited)
        wait_for_after(page, full_render(served, {edit: 3.0}, locked=[lock]), "lock")
        locked = after_src(page)
    page.screenshot(path=str(shots / "app-edit.jpg"), full_page=True, type="jpeg", quality=70)

    # export a PNG with the recipe: shown, and downloadable
    page.locator("#tab-export-button").click()
    page.locator("#export-png-btn").click()
    link = page.locator("#export-file a").first
    link.wait_for()
    page.locator("#export-view img").wait_for()
    with page.expect_download() as info:
        link.click()
    exported = tmp_path_factory.mktemp("export") / "edit.png"
    info.value.save_as(exported)
    assert exported.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # a GIF walk is shown too, not only offered for download
    page.locator("#export-gif-btn").click()
    page.wait_for_function("() => { const i = document.querySelector('#export-view img');"
                           " return i && i.src.includes('.gif'); }")

    # reset, then re-open the PNG: the sliders and the image come back
    page.locator("#reset-btn").click()
    reset = wait_src_change(page, locked)
    assert slider_value(page, edit) == 0.0
    page.locator("#tab-open-button").click()
    page.locator("#recipe-upload input[type=file]").set_input_files(str(exported))
    page.wait_for_function("() => document.querySelector('#recipe-msg').innerText.includes('Opened')")
    wait_src_change(page, reset)
    assert slider_value(page, edit) == 3.0
    page.screenshot(path=str(shots / "app-reopened.jpg"), full_page=True, type="jpeg", quality=70)


def test_browser_candidates_and_mixing(page, served):
    first = after_src(page)
    page.locator("#candidates img").nth(2).click()  # pick a candidate: a new face
    picked = wait_src_change(page, first)
    assert page.locator("#status").inner_text().startswith("Face: seed")
    page.locator("#tab-mix-button").click()
    page.get_by_role("button", name="Load face B").click()
    page.locator("#face-b img").wait_for()
    page.get_by_role("button", name="Style-mix").click()
    page.locator("#mixed img").wait_for()
    page.get_by_role("button", name="Animate A → B").click()
    page.locator("#animation a").first.wait_for()
    page.locator("#animation-view img").wait_for()  # the GIF is shown
    page.get_by_role("button", name="Edit the mix").click()
    wait_src_change(page, picked)
    assert "mix of" in page.locator("#status").inner_text()
    assert page.locator(".toast-body").count() == 0  # no error messages were shown


def slider_enabled(page, name: str) -> bool:
    return page.locator(f"#{app.slider_id(name)} input[type=range]").is_enabled()


def test_sliders_that_cannot_act_are_disabled_before_they_are_moved(page, served):
    if os.environ.get("EDITOR_TEST_MODEL"):
        pytest.skip("uses the tiny test engine's bank")
    names = served[1].bank.attributes
    assert all(slider_enabled(page, n) for n in names)  # the defaults work for every slider
    page.locator(f"#{app.slider_id('pose')} input[type=number]").fill("2")
    wait_for_after(page, full_render(served, {"pose": 2.0}), "pose in W")
    page.locator("#space label", has_text="w+").click()  # W+ with the default preset 'middle': still every slider
    wait_for_after(page, full_render(served, {"pose": 2.0}, space="w+", layers=(4, 8)), "pose on middle layers")
    assert all(slider_enabled(page, n) for n in names)
    page.locator("#layer-preset label", has_text="fine").click()  # layer 7: pose's directions act on 0-5 only
    page.wait_for_function(f"() => document.querySelector('#{app.slider_id('pose')} input[type=range]').disabled")
    pose = page.locator(f"#{app.slider_id('pose')}")
    assert "acts only on layers" in pose.inner_text()
    assert slider_value(page, "pose") == 0.0  # the edit it can no longer make is undone, and the status says so
    assert "pose set to 0" in page.locator("#status").inner_text()
    assert all(slider_enabled(page, n) for n in names if n != "pose")
    wait_for_after(page, full_render(served, {}, space="w+", layers=(7, 8)), "fine without pose")
    # a method a slider does not have disables it with the reason (never another method's image)
    page.locator("#layer-preset label", has_text="middle").click()
    page.wait_for_function(f"() => !document.querySelector('#{app.slider_id('pose')} input[type=range]').disabled")
    page.locator("#method input").click()
    page.get_by_role("option", name="pca", exact=True).click()
    page.wait_for_function(f"() => document.querySelector('#{app.slider_id('age')} input[type=range]').disabled")
    assert "has no 'pca' direction" in page.locator(f"#{app.slider_id('age')}").inner_text()
    assert slider_enabled(page, "smile")  # the test bank has a pca direction for smile
    assert page.locator(".toast-body").count() == 0


def no_error_badges(page) -> bool:
    """No Gradio error toast and no component showing an error state."""
    return page.locator(".toast-body").count() == 0 and page.locator(".error").count() == 0


def test_bad_recipe_file_gives_one_message_in_place(page, served, tmp_path):
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    page.locator("#tab-open-button").click()
    page.locator("#recipe-upload input[type=file]").set_input_files(str(corrupt))
    page.wait_for_function("() => document.querySelector('#recipe-msg').innerText.includes('not a readable PNG')")
    assert no_error_badges(page)
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    page.reload()  # a fresh session: the file box is empty again
    page.wait_for_selector("#after-image img")
    page.locator("#tab-open-button").click()
    page.locator("#recipe-upload input[type=file]").set_input_files(str(notes))
    page.wait_for_function("() => document.querySelector('#recipe-msg').innerText.includes('expected a PNG')")
    msg = page.locator("#recipe-msg").inner_text()
    assert "notes.txt" in msg and "/tmp" not in msg and no_error_badges(page)
    before = after_src(page)
    page.locator("#tab-face-button").click()
    page.locator("#seed input").fill("123")
    page.locator("#sample-btn").click()
    wait_src_change(page, before)
    assert "seed 123" in page.locator("#status").inner_text()


def test_non_image_photo_gets_a_message(page, served, tmp_path):
    notes = tmp_path / "holiday.jpg"
    notes.write_text("this is not a photo")
    page.locator("#tab-photo-button").click()
    page.locator("#photo-upload input[type=file]").set_input_files(str(notes))
    page.wait_for_function("() => document.querySelector('#photo-msg').innerText.includes('not an image')")
    msg = page.locator("#photo-msg").inner_text()
    assert "holiday.jpg" in msg and "/tmp" not in msg and "gradio" not in msg
    assert no_error_badges(page)
    photo = tmp_path / "face.png"
    Image.new("RGB", (64, 48), (200, 150, 120)).save(photo)
    page.reload()
    page.wait_for_selector("#after-image img")
    page.locator("#tab-photo-button").click()
    page.locator("#photo-upload input[type=file]").set_input_files(str(photo))
    page.locator("#photo-view img").wait_for()
    assert "64×48" in page.locator("#photo-msg").inner_text() or "not available" in page.locator(
        "#photo-msg").inner_text()


def test_saved_slider_is_usable_at_once(page, served):
    if os.environ.get("EDITOR_TEST_MODEL"):
        pytest.skip("uses the tiny test engine")
    page.locator("#tab-new-slider-button").click()
    page.get_by_role("tab", name="From clicks").click()
    page.locator("#click-show").click()
    page.locator("#click-grid img").first.wait_for()
    for _ in range(3):
        for box in ("1", "3"):
            page.locator("#click-has-it label", has_text=box).first.click()
        page.locator("#click-submit").click()
        page.wait_for_function("() => !document.querySelector('#click-has-it input:checked')")
    page.wait_for_function("() => document.querySelector('#click-msg').innerText.includes('18 marks')")
    page.locator("#click-name input, #click-name textarea").first.fill("mine")
    page.locator("#click-fit").click()
    page.locator("#click-strip img").first.wait_for()
    page.locator("#click-save").click()
    page.wait_for_function("() => document.querySelector('#custom-save-msg').innerText.includes('Your sliders')")
    slot = page.locator("#user-slider-0")
    slot.wait_for()
    assert "mine" in slot.inner_text()
    assert "mine" in served[1].bank.attributes
    slot.locator("input[type=number]").fill("2")
    wait_for_after(page, full_render(served, {"mine": 2.0}), "the new slider")
