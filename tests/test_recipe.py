"""Recipes and exports (editor/recipe.py) and the request-level service (editor/service.py)."""

import io
import json

import numpy as np
import pytest
from PIL import Image

from _engine_fixtures import tiny_engine, tiny_generator
from editor import recipe as R
from editor import service
from editor.engine import EditState, Engine, EngineConfig, layer_preset


@pytest.fixture(scope="module")
def engine():
    return tiny_engine()


def edited_state(engine):
    return EditState.create(engine.sample(12, 0.5), {"smile": 1.25, "age": -0.7}, method="svm", space="w+",
                            layers=layer_preset("coarse", engine.num_ws), locked=["glasses"])


def test_png_recipe_round_trip_reproduces_image_exactly(engine):
    state = edited_state(engine)
    image = engine.render(state)
    data = R.png_bytes(image, R.state_to_recipe(state, engine))
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), image)  # the PNG itself is lossless
    fresh = tiny_engine()  # new process-like engine: no caches shared
    back, warnings = R.recipe_to_state(R.read_png_recipe(data), fresh)
    assert warnings == []
    assert back == state  # frozen data: same latent key and edit
    assert np.array_equal(back.latent.ws, state.latent.ws) and np.array_equal(back.latent.z, state.latent.z)
    assert np.array_equal(fresh.render(back), image)


def test_seed_only_recipe(engine):
    state, _ = R.recipe_to_state({"latent": {"seed": 12, "psi": 0.5}, "edit": {"sliders": {"smile": 1}}}, engine)
    assert state.latent.key == engine.sample(12, 0.5).key and state.sliders == (("smile", 1.0),)


def test_recipe_from_another_model_is_refused(engine):
    other = Engine(tiny_generator(seed=1), engine.bank)
    rec = R.state_to_recipe(edited_state(other), other)
    with pytest.raises(ValueError, match="made with model"):
        R.recipe_to_state(rec, engine)


def test_recipe_from_another_bank_warns(engine):
    rec = R.state_to_recipe(edited_state(engine), engine)
    rec["bank"] = "someone-else"
    _, warnings = R.recipe_to_state(rec, engine)
    assert "someone-else" in warnings[0]


@pytest.mark.parametrize("mutate, message", [
    (lambda r: r.update(format="other"), "not an editor recipe"),
    (lambda r: r.update(version=99), "version 99"),
    (lambda r: r.pop("latent"), "no 'latent'"),
    (lambda r: r["latent"].update(ws="***"), "base64"),
    (lambda r: r["latent"].update(ws="AAAAAA=="), "shape"),
    (lambda r: r["edit"].update(sliders={"smile": "x"}), "not a number"),
    (lambda r: r["edit"].update(sliders={"wings": 1}), "unknown attribute"),
    (lambda r: r["edit"].update(layers=[5, 99]), "layer range"),
])
def test_malformed_recipes(engine, mutate, message):
    rec = json.loads(R.encode_recipe(R.state_to_recipe(edited_state(engine), engine)))
    mutate(rec)
    with pytest.raises(ValueError, match=message):
        R.recipe_to_state(rec, engine)


def test_corrupt_png(engine):
    state = edited_state(engine)
    data = R.png_bytes(engine.render(state), R.state_to_recipe(state, engine))
    with pytest.raises(ValueError, match="not a readable PNG"):
        R.read_png_recipe(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a readable PNG"):
        R.read_png_recipe(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    with pytest.raises(ValueError, match="carries no edit recipe"):
        R.read_png_recipe(R.png_bytes(engine.render(state), None))
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, format="JPEG")
    with pytest.raises(ValueError, match="expected a PNG"):
        R.read_png_recipe(buf.getvalue())


def test_npz_and_file_reopen(engine, tmp_path):
    state = edited_state(engine)
    path = tmp_path / "latent.npz"
    path.write_bytes(R.latent_npz_bytes(state, engine))
    arrays = R.read_latent_npz(path)
    np.testing.assert_array_equal(arrays["ws"], state.latent.ws)
    np.testing.assert_allclose(arrays["edited_ws"], engine.edited_ws(state).numpy())
    back, _ = service.read_recipe_file(engine, path)
    assert back == state
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(ValueError, match="npz"):
        service.read_recipe_file(engine, tmp_path / "bad.npz")
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(ValueError, match="expected a PNG"):
        service.read_recipe_file(engine, tmp_path / "x.txt")


def test_exports(engine, tmp_path):
    state = edited_state(engine)
    png = service.export(engine, state, "png", out_dir=tmp_path)
    assert service.read_recipe_file(engine, png)[0] == state
    gif = service.export(engine, state, "gif", "smile", -2, 2, steps=5, out_dir=tmp_path)
    with Image.open(gif) as im:
        assert im.n_frames == 8  # 5 forward + 3 back
    mp4 = service.export(engine, state, "mp4", "smile", -2, 2, steps=5, out_dir=tmp_path)
    assert mp4.stat().st_size > 0 and mp4.read_bytes()[4:8] == b"ftyp"
    with pytest.raises(ValueError, match="needs an attribute"):
        service.export(engine, state, "gif", None, out_dir=tmp_path)
    with pytest.raises(ValueError, match="format"):
        service.export(engine, state, "bmp", out_dir=tmp_path)
    anim = service.animation(engine, engine.sample(1), engine.sample(2), "z", 4, out_dir=tmp_path)
    assert anim.suffix == ".gif"


def test_parsers(engine):
    assert service.parse_edits('{"smile": 1.5}') == {"smile": 1.5}
    assert service.parse_edits("smile=1.5, age=-1") == {"smile": 1.5, "age": -1.0}
    assert service.parse_edits("") == {}
    with pytest.raises(ValueError, match="JSON object"):
        service.parse_edits("{bad json")
    assert service.parse_locked('["age"]') == ["age"] and service.parse_locked("age, glasses") == ["age", "glasses"]
    assert service.preset_name((0, 4), 8) == "coarse" and service.preset_name((2, 3), 8) == "custom"
    assert service.parse_layers("all", 8) == ("w", None)
    assert service.parse_layers("coarse", 8) == ("w+", (0, 4))
    assert service.parse_layers("2-5", 8) == ("w+", (2, 6))
    with pytest.raises(ValueError, match="layers must be"):
        service.parse_layers("top", 8)
    with pytest.raises(ValueError, match="custom layer range"):
        service.parse_layers("3-99", 8)


def test_api_edit_merges_and_validates(engine):
    rec = service.recipe_text(engine, EditState.create(engine.sample(3), {"age": 1.0}))
    image, new = service.api_edit(engine, rec, '{"smile": 2}', "svm", "coarse", "glasses")
    state, _ = R.recipe_to_state(new, engine)
    assert dict(state.sliders) == {"age": 1.0, "smile": 2.0} and state.locked == ("glasses",)
    assert state.layers == (0, 4) and state.method == "svm"
    assert np.array_equal(image, engine.render(state))
    with pytest.raises(ValueError, match="unknown method"):
        service.api_edit(engine, rec, "", "magic")
    with pytest.raises(ValueError, match="not valid JSON"):
        service.api_edit(engine, "{not json", "")


def test_open_engine_falls_back_with_notice(tmp_path):
    bad = tmp_path / "bank.safetensors"
    bad.write_bytes(b"not a bank")
    engine, card = service.open_engine("random:small", bank=str(bad), pca_samples=200,
                                       config=EngineConfig(preview_resolution=16))
    assert any("could not be used" in n for n in card.notices)
    assert engine.bank.attributes[0] == "pc0"
    engine2, card2 = service.open_engine("no/such/model.pkl", pca_samples=200)
    assert any("could not be loaded" in n for n in card2.notices)
    assert engine2.resolution > 0


def test_bank_of_another_generator_attaches_unverified(tmp_path):
    from editor.bank import Bank, BankEntry, GeneratorInfo, save_bank

    G = tiny_generator()
    entry = BankEntry("smile", "svm", "w", np.ones((1, G.w_dim)), sigma=1.0)
    path = save_bank(Bank(GeneratorInfo("someone-elses-model", G.z_dim, G.w_dim, G.num_ws), (entry,)),
                     tmp_path / "b.safetensors")
    engine, card = service.open_engine("random:small", bank=str(path), pca_samples=200)
    assert any(n.startswith("Unverified bank") for n in card.notices)  # same architecture: attached, flagged
    assert engine.bank.attributes == ("smile",)
