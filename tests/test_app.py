"""The Gradio app (app.py): built without launching, then its named API endpoints through gradio_client against an
in-process server on 127.0.0.1."""

import io
import json
import socket
import threading

import numpy as np
import pytest
from PIL import Image

gr = pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")

import app  # noqa: E402
from _engine_fixtures import tiny_engine  # noqa: E402
from editor import recipe as R  # noqa: E402
from editor import service  # noqa: E402

API = ("/sample", "/edit", "/export", "/project", "/open_recipe", "/info")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def engine():
    return tiny_engine()


@pytest.fixture(scope="module")
def client(engine, tmp_path_factory):
    card = service.ModelCard("tiny", "tiny random test generator", "none", "", ("a test notice",))
    demo = app.build_demo(engine, card, bench_endpoints=True)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, css=app.CSS)
    try:
        yield gradio_client.Client(f"http://127.0.0.1:{port}/", verbose=False,
                                   download_files=str(tmp_path_factory.mktemp("downloads")))
    finally:
        demo.close()


def test_build_demo_without_launch(engine):
    demo = app.build_demo(engine)
    assert isinstance(demo, gr.Blocks)
    names = {fn.api_name for fn in demo.fns.values() if fn.api_name}
    for endpoint in API:
        assert endpoint.lstrip("/") in names
    ids = {getattr(b, "elem_id", None) for b in demo.blocks.values()}
    for attr in engine.bank.attributes:
        assert app.slider_id(attr) in ids
    assert app.slider_id("hair colour/tone") == "slider-hair-colour-tone"


def test_extra_tabs_plug_in(engine):
    from editor.ui.custom import CustomSliderBackend

    def more_tab(state):
        with gr.Tab("More"):
            gr.Markdown("more", elem_id="more-tab")

    backend = CustomSliderBackend(engine, pool_size=100)
    demo = app.build_demo(engine, custom=backend, extra_tabs=[more_tab])
    labels = {getattr(b, "label", None) for b in demo.blocks.values()}
    ids = {getattr(b, "elem_id", None) for b in demo.blocks.values()}
    assert "New slider" in labels and "Your sliders" in labels and "more-tab" in ids


def test_named_endpoints_listed(client):
    named = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    for endpoint in API:
        assert endpoint in named


def test_sample_edit_export_reopen(client, engine):
    image_path, recipe = client.predict(5, 0.7, api_name="/sample")
    base = np.asarray(Image.open(image_path).convert("RGB"))
    assert base.shape == (engine.resolution, engine.resolution, 3)
    edited_path, edited = client.predict(recipe, json.dumps({"smile": 2.0}), "", "coarse", "age", False,
                                         api_name="/edit")
    edited_img = np.asarray(Image.open(edited_path).convert("RGB"))
    assert not np.array_equal(base, edited_img)
    state, _ = R.recipe_to_state(edited, engine)
    assert dict(state.sliders) == {"smile": 2.0} and state.locked == ("age",)
    assert np.array_equal(edited_img, engine.render(state))
    preview_path, _ = client.predict(recipe, '{"smile": 2.0}', "", "coarse", "age", True, api_name="/edit")
    assert Image.open(preview_path).size == (engine.preview_resolution,) * 2

    png = client.predict(edited, "png", "", -3, 3, 8, api_name="/export")
    reopened_path, reopened = client.predict(gradio_client.handle_file(png), api_name="/open_recipe")
    assert np.array_equal(np.asarray(Image.open(reopened_path).convert("RGB")), edited_img)
    assert R.recipe_to_state(reopened, engine)[0] == state

    gif = client.predict(edited, "gif", "smile", -2, 2, 4, api_name="/export")
    assert Image.open(gif).n_frames == 6
    npz = client.predict(edited, "npz", "", 0, 0, 2, api_name="/export")
    assert R.read_latent_npz(npz)["ws"].shape == (engine.num_ws, engine.w_dim)


@pytest.mark.parametrize("edits, message", [
    ('{"smile": NaN}', "not a finite number"),
    ('{"smile": Infinity}', "not a finite number"),
    ('{"smile": 1e12}', "outside"),
    ('{"wings": 1}', "unknown attribute 'wings'"),
    ("nonsense", "cannot read"),
])
def test_bad_edits_give_clear_errors_and_app_keeps_serving(client, edits, message):
    _, recipe = client.predict(1, 0.7, api_name="/sample")
    with pytest.raises(Exception, match=message):
        client.predict(recipe, edits, "", "", "", False, api_name="/edit")
    assert client.predict(2, 0.7, api_name="/sample")[1]  # still serving


def test_method_the_slider_lacks_is_an_error_not_another_methods_image(client):
    _, recipe = client.predict(1, 0.7, api_name="/sample")
    with pytest.raises(Exception, match="slider 'age' has no 'pca' direction"):
        client.predict(recipe, '{"age": 1}', "pca", "", "", False, api_name="/edit")
    assert client.predict(recipe, '{"smile": 1}', "pca", "middle", "", False, api_name="/edit")[1]


def test_bad_recipes_and_files(client, engine, tmp_path):
    with pytest.raises(Exception, match="not valid JSON"):
        client.predict("{broken", "", "", "", "", False, api_name="/edit")
    other = json.loads(client.predict(1, 0.7, api_name="/sample")[1])
    other["model"]["id"] = "another-model"
    with pytest.raises(Exception, match="made with model"):
        client.predict(json.dumps(other), "", "", "", "", False, api_name="/edit")
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 50)
    with pytest.raises(Exception, match="not a readable PNG"):
        client.predict(gradio_client.handle_file(str(corrupt)), api_name="/open_recipe")
    with pytest.raises(Exception, match="not available yet"):
        client.predict(gradio_client.handle_file(str(corrupt)), api_name="/project")
    assert client.predict(3, 0.7, api_name="/sample")[1]


def test_info(client, engine):
    info = client.predict(api_name="/info")
    assert info["attributes"] == list(engine.bank.attributes)
    assert info["notices"] == ["a test notice"] and info["num_ws"] == engine.num_ws


def test_concurrent_clients(client, engine):
    _, recipe = client.predict(7, 0.7, api_name="/sample")
    errors, results = [], {}

    def work(i):
        try:
            path, _ = client.predict(recipe, json.dumps({"smile": 0.25 * (i % 4)}), "", "", "", False,
                                     api_name="/edit")
            results[i] = np.asarray(Image.open(path).convert("RGB"))
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i in range(4):
        assert np.array_equal(results[i], results[i + 4])


def test_projector_seam(engine, tmp_path):
    """A stand-in projector plugs into /project; the real one (align + project) has the same signature."""
    target = engine.sample(9)

    def fake_projector(photo, progress):
        progress(0.5, "projecting")
        return service.Projection(aligned=np.full((16, 16, 3), 128, np.uint8), ws=np.array(target.ws),
                                  paste_back=lambda face: face)

    demo = app.build_demo(engine, projector=fake_projector)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        c = gradio_client.Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=str(tmp_path))
        photo = tmp_path / "photo.png"
        Image.new("RGB", (40, 30), (200, 150, 120)).save(photo)
        aligned_path, recon_path, recipe = c.predict(gradio_client.handle_file(str(photo)), api_name="/project")
        assert Image.open(aligned_path).size == (16, 16)
        state, _ = R.recipe_to_state(recipe, engine)
        assert state.latent.key == target.key
        bad = tmp_path / "bad.png"
        bad.write_bytes(b"not an image")
        with pytest.raises(Exception, match="is not an image") as err:
            c.predict(gradio_client.handle_file(str(bad)), api_name="/project")
        assert "bad.png" in str(err.value) and "/tmp" not in str(err.value)  # the file's name, not the server path
    finally:
        demo.close()


def test_programming_errors_are_logged_not_shown(engine, tmp_path, caplog):
    """A bug (here a TypeError in the projector) reaches the client as a generic message; the log has the traceback."""

    def broken_projector(photo, progress):
        return photo + "oops"  # TypeError: a bug, not bad input

    demo = app.build_demo(engine, projector=broken_projector)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        c = gradio_client.Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=str(tmp_path))
        photo = tmp_path / "photo.png"
        Image.new("RGB", (40, 30), (200, 150, 120)).save(photo)
        with caplog.at_level("ERROR", logger="editor.ui"):
            with pytest.raises(Exception, match="internal error") as err:
                c.predict(gradio_client.handle_file(str(photo)), api_name="/project")
        assert "TypeError" not in str(err.value) and "oops" not in str(err.value)
        assert any(r.exc_info and issubclass(r.exc_info[0], TypeError) for r in caplog.records)
    finally:
        demo.close()


# ----------------------------------------------------------------------------------------------------------------
# Hostile input: bounded memory and the app's own message


def png_chunk(kind: bytes, body: bytes) -> bytes:
    import struct
    import zlib

    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def huge_png(path, side: int, real: bool) -> None:
    """An RGB PNG of side x side pixels; real=False writes only the header's claim (one tiny IDAT), real=True a
    valid image of black rows (compressed ~1000:1, so a 13000 px one is ~0.5 MB on disk and 507 MB decoded)."""
    import struct
    import zlib

    header = png_chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0))
    if real:
        comp, row, parts = zlib.compressobj(9), b"\0" * (1 + 3 * side), []
        for _ in range(side):
            parts.append(comp.compress(row))
        parts.append(comp.flush())
        data = b"".join(parts)
    else:
        data = zlib.compress(b"\0" * 64)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + header + png_chunk(b"IDAT", data) + png_chunk(b"IEND", b""))


def npz_with(path, name: str, header_shape: tuple, data: bytes = b"", declared_bytes: int | None = None) -> None:
    """A zip with one .npy member `name` whose header claims `header_shape` float32 values; the member holds the
    header and `data`, or (declared_bytes) that many zero bytes, deflated (a zip bomb)."""
    import zipfile

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": header_shape})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open(f"{name}.npy", "w", force_zip64=True) as f:
            f.write(header.getvalue())
            if declared_bytes:
                chunk = b"\0" * 2**24
                for _ in range(declared_bytes // len(chunk)):
                    f.write(chunk)
            f.write(data)


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


@pytest.fixture(scope="module")
def photo_client(engine, tmp_path_factory):
    """An app whose projector returns a fixed face, so /project reads and checks the photo file."""
    target = engine.sample(9)

    def fake_projector(photo, progress):
        return service.Projection(aligned=np.asarray(photo)[:16, :16], ws=np.array(target.ws))

    demo = app.build_demo(engine, projector=fake_projector)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield gradio_client.Client(f"http://127.0.0.1:{port}/", verbose=False,
                                   download_files=str(tmp_path_factory.mktemp("photo-downloads")))
    finally:
        demo.close()


def test_png_declaring_50000_pixels_a_side(client, photo_client, tmp_path):
    bomb = tmp_path / "bomb.png"
    huge_png(bomb, 50000, real=False)
    with pytest.raises(Exception, match="declares 50000x50000 pixels"):
        client.predict(gradio_client.handle_file(str(bomb)), api_name="/open_recipe")
    with pytest.raises(Exception, match="is 50000x50000 pixels; the limit is 64 million") as err:
        photo_client.predict(gradio_client.handle_file(str(bomb)), api_name="/project")
    assert "bomb.png" in str(err.value) and "/tmp" not in str(err.value)


def test_13000_px_png_is_refused_from_its_header(client, photo_client, tmp_path):
    big = tmp_path / "big.png"
    huge_png(big, 13000, real=True)  # 507 MB if decoded
    rss = peak_rss_mb()
    with pytest.raises(Exception, match="13000x13000 pixels"):
        photo_client.predict(gradio_client.handle_file(str(big)), api_name="/project")
    with pytest.raises(Exception, match="declares 13000x13000 pixels"):  # the recipe opener never decodes pixels
        client.predict(gradio_client.handle_file(str(big)), api_name="/open_recipe")
    assert peak_rss_mb() - rss < 300  # neither decoded the 507 MB of pixels
    assert photo_client.predict(2, 0.7, api_name="/sample")[1]  # still serving


def test_npz_zip_bomb_and_huge_header(client, tmp_path):
    bomb = tmp_path / "bomb.npz"
    npz_with(bomb, "ws", (2**28,), declared_bytes=2**30)  # 1 GiB of zeros
    assert bomb.stat().st_size < 2 * 2**20
    rss = peak_rss_mb()
    with pytest.raises(Exception, match="declares 1,073,741,"):
        client.predict(gradio_client.handle_file(str(bomb)), api_name="/open_recipe")
    assert peak_rss_mb() - rss < 300
    claim = tmp_path / "claim.npz"
    npz_with(claim, "ws", (10**12,), data=b"\0" * 64)
    with pytest.raises(Exception, match=r"declares shape \(1000000000000,\)"):
        client.predict(gradio_client.handle_file(str(claim)), api_name="/open_recipe")


@pytest.mark.parametrize("recipe, message", [
    ({"latent": {"seed": 1e400}}, "latent.seed must be a whole number"),
    ({"latent": {"seed": 1.5}}, "latent.seed must be a whole number"),
    ({"latent": {"seed": 1}, "edit": {"space": "w+", "layers": [1e400, 2]}}, "edit.layers must be a whole number"),
])
def test_overflowing_recipes(client, tmp_path, recipe, message):
    text = json.dumps(recipe)  # 1e400 is written as Infinity, which Python's JSON reads back
    with pytest.raises(Exception, match=message):
        client.predict(text.replace("Infinity", "1e400"), "", "", "", "", False, api_name="/edit")
    path = tmp_path / "recipe.json"
    path.write_text(text.replace("Infinity", "1e400"))
    with pytest.raises(Exception, match=message):
        client.predict(gradio_client.handle_file(str(path)), api_name="/open_recipe")


def test_export_steps_are_checked_not_defaulted(client):
    _, recipe = client.predict(1, 0.7, api_name="/sample")
    for steps, message in ((0, r"steps must be in \[2, 240\] frames, got 0"), (10**6, "got 1000000")):
        with pytest.raises(Exception, match=message):
            client.predict(recipe, "gif", "smile", -2, 2, steps, api_name="/export")
    gif = client.predict(recipe, "gif", "smile", -2, 2, api_name="/export")  # not given: the default, 24 frames
    assert Image.open(gif).n_frames == 2 * 24 - 2
