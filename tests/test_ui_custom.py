"""The "New slider" tab: its backend on a tiny engine (clicks, words, preview strips, saving into the user data
folder and into the running engine) and the Blocks build."""

import numpy as np
import pytest

from editor.bank import load_bank
from editor.custom_sliders import ClickOptions, WordSliderMaker
from editor.ui.custom import CustomSliderBackend, build_custom_demo

from _engine_fixtures import tiny_engine


@pytest.fixture()
def engine():
    return tiny_engine()  # saving adds sliders to the engine: a fresh one per test


def planted_words(engine, n=400, seed=0):
    """Samples of the tiny engine with synthetic 'CLIP' embeddings that follow the first W coordinate."""
    rng = np.random.default_rng(seed)
    pool = CustomSliderBackend(engine, pool_size=n, pool_seed0=0, psi=1.0).pool()
    attr = pool[:, 0]
    t = np.zeros(16)
    t[0] = 1.0
    emb = attr[:, None] * t + 0.05 * rng.standard_normal((n, 16)) + np.eye(16)[1] * 5

    def encode(texts):
        return np.stack([np.eye(16)[1] + (t if "big" in s else -t) for s in texts])

    return WordSliderMaker(None, pool, emb, encode, labeller="clip:synthetic")


def test_clicks_round_trip_through_plain_state(engine, tmp_path):
    backend = CustomSliderBackend(engine, bank_path=tmp_path / "bank.safetensors", pool_size=300,
                                  click_options=ClickOptions(grid=6, min_labels=12))
    state, images = backend.next_grid({})
    assert len(state["grid"]) == 6 and len(images) == 6 and images[0].dtype == np.uint8
    with pytest.raises(ValueError, match="not shown"):
        backend.submit(state, [7])
    truth = backend.pool()[:, 3] > np.median(backend.pool()[:, 3])
    for _ in range(4):
        has = [p for p, i in enumerate(state["grid"]) if truth[i]]
        state = backend.submit(state, has)
        state, images = backend.next_grid(state)
    assert len(state["marks"]) == 24 and "cross-validated accuracy" in backend.click_status(state)
    entry = backend.from_clicks(state, "thing")
    assert entry.n_samples == 24 and entry.extra["marked_ids"][0] >= backend.pool_seed0
    strip = backend.strip(entry)
    assert len(strip) == 5 and not np.array_equal(strip[0], strip[-1])
    assert "Saved thing/logreg/w" in backend.save(entry)
    bank = load_bank(tmp_path / "bank.safetensors")
    assert bank.generator.model_id == engine.model_id and bank.find("thing").labeller == "manual:clicks"


def test_words_backend_and_missing_words(engine):
    backend = CustomSliderBackend(engine, words=planted_words(engine), pool_size=100)
    entry, msg = backend.from_words("a big thing", "", "big")
    assert entry.attribute == "big" and "validation accuracy" in msg and entry.val_accuracy > 0.9
    assert float(entry.vector[0] @ np.eye(engine.w_dim)[0]) > 0.5
    with pytest.raises(ValueError, match="without a bank file"):
        backend.save(entry)
    with pytest.raises(ValueError, match="Sliders from words are off"):
        CustomSliderBackend(engine, pool_size=100).from_words("a big thing")


def test_tab_builds_and_its_handlers_run(engine, tmp_path):
    backend = CustomSliderBackend(engine, bank_path=tmp_path / "b.safetensors", pool_size=100,
                                  click_options=ClickOptions(grid=6, min_labels=12))
    demo = build_custom_demo(backend)
    ids = {getattr(b, "elem_id", None) for b in demo.blocks.values()}
    assert {"words-btn", "click-grid", "click-submit", "words-missing"} <= ids
    fns = {f.fn.__name__: f for f in demo.fns.values()}  # the wired handlers, called as Gradio would
    for name, (n_in, n_out) in {"on_show": (1, 4), "on_submit": (2, 4), "on_fit": (3, 3), "on_save": (1, 1)}.items():
        assert (len(fns[name].inputs), len(fns[name].outputs)) == (n_in, n_out)
    outputs = {name: fns[name].outputs for name in fns}

    def call(name, *args):  # handler results by output position (Gradio maps the dict keys to the outputs)
        result = fns[name].fn(*args)
        return {i: result[c] for i, c in enumerate(outputs[name]) if c in result}

    r = call("on_show", {})
    marks, grid, msg = r[0], r[1], r[3]
    assert len(grid) == 6 and r[2] == [] and "0 marks" in msg
    for _ in range(3):
        r = call("on_submit", marks, [0, 2])
        marks, msg = r[0], r[3]
    assert "18 marks (6 has it, 12 doesn't)" in msg
    r = call("on_fit", marks, "thing", None)
    entry, strip = r[0], r[1]
    assert entry.name == "thing/logreg/w" and len(strip) == 5
    assert "Saved thing/logreg/w" in call("on_save", entry)[0]
    assert "make a slider first" in call("on_save", None)[0]  # a message in place, not an exception


def test_saving_keeps_tracked_banks_and_shows_the_slider_at_once(engine, tmp_path, monkeypatch):
    """Save writes the user data folder (atomically, readable), never the tracked bank, and the running engine
    can use the slider at once; a restart (a new backend on a fresh engine) loads it again."""
    import hashlib
    import os

    from editor import user_sliders
    from editor.engine import EditState
    from editor.service import DIRECTIONS_DIR

    tracked = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in DIRECTIONS_DIR.glob("*.safetensors")}
    monkeypatch.setenv("EDITOR_USER_DIR", str(tmp_path / "user"))
    from editor.ui.custom import backend_from_env

    backend = backend_from_env(engine, environ={})
    assert backend.bank_path == user_sliders.bank_path(engine) and str(tmp_path / "user") in str(backend.bank_path)
    entry, _ = CustomSliderBackend(engine, words=planted_words(engine), pool_size=100).from_words("a big thing", "",
                                                                                                "big")
    assert "Your sliders" in backend.save(entry)
    assert backend.saved == ["big"] and "big" in engine.bank.attributes
    state = EditState.create(engine.sample(1), {"big": 2.0})
    assert not np.array_equal(engine.render(state), engine.render(state.reset()))
    mode = os.stat(backend.bank_path).st_mode & 0o777
    assert mode & 0o044 == 0o044 or os.umask(0o022) & 0o044  # readable by others unless the umask says no
    assert [p.name for p in backend.bank_path.parent.iterdir()] == [backend.bank_path.name]  # no temp file left
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in DIRECTIONS_DIR.glob("*.safetensors")} == tracked
    with pytest.raises(ValueError, match="already a slider of the model's bank"):
        backend.save(CustomSliderBackend(engine, words=planted_words(engine), pool_size=100).from_words(
            "a big thing", "", "smile")[0])
    fresh = tiny_engine()
    again = backend_from_env(fresh, environ={})
    assert again.saved == ["big"] and "big" in fresh.bank.attributes


def test_saved_slider_appears_in_the_page_without_restart(engine, tmp_path):
    import app

    backend = CustomSliderBackend(engine, words=planted_words(engine), bank_path=tmp_path / "u.safetensors",
                                  pool_size=100)
    demo = app.build_demo(engine, custom=backend)
    fns = {f.fn.__name__: f for f in demo.fns.values()}
    entry, _, _ = (fns["on_words"].fn("a big thing", "", "big", None)[c] for c in fns["on_words"].outputs)
    result = fns["on_save"].fn(entry)
    shown = [result[c] for c in fns["on_save"].outputs[1:]]  # slot names, the group, the slots
    assert shown[0] == ["big"] and shown[1]["visible"] and shown[2]["visible"] and "big" in shown[2]["label"]
    assert not shown[3]["visible"]


def test_backend_from_env(engine, tmp_path, monkeypatch):
    from editor.ui.custom import backend_from_env

    monkeypatch.setenv("EDITOR_USER_DIR", str(tmp_path / "user"))
    plain = backend_from_env(engine, environ={})
    assert plain.words is None and plain.words_problem == "" and plain.bank_path.name.startswith("tiny-random-")
    broken = backend_from_env(engine, bank_path=tmp_path / "b.safetensors",
                              environ={"EDITOR_WORDS_SAMPLES": str(tmp_path / "nothing"), "EDITOR_WORDS_CLIP": "stats"})
    assert broken.words is None and "Sliders from words are off" in broken.words_problem


def tiny_clip_spec(tmp_path) -> str:
    import json

    cfg = {"embed_dim": 32, "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16,
                                           "patch_size": 8},
           "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    path = tmp_path / "tiny-ui-clip.json"
    path.write_text(json.dumps(cfg))
    return f"clip:{path}"  # random weights: nothing to download


def test_words_on_demand_compute_and_cache_embeddings(engine, tmp_path):
    pytest.importorskip("open_clip")
    spec = tiny_clip_spec(tmp_path)
    backend = CustomSliderBackend(engine, pool_size=100, clip_spec=spec, words_dir=tmp_path / "words", words_n=40)
    assert "Compute sample embeddings" in backend.words_status()
    with pytest.raises(ValueError, match="Compute sample embeddings"):
        backend.from_words("a big thing")
    steps = []
    assert "Ready" in backend.prepare_words(lambda f, m: steps.append((f, m)))
    assert steps[0][1] == "loading CLIP" and steps[-1][0] == 1.0 and "embedding samples 40/40" in steps[-1][1]
    entry, msg = backend.from_words("a face wearing glasses", "", "specs")
    assert entry.attribute == "specs" and "validation accuracy" in msg
    # a restart finds the cached embeddings: nothing is rendered again
    again = CustomSliderBackend(engine, pool_size=100, clip_spec=spec, words_dir=tmp_path / "words", words_n=40)
    assert "cached" in again.words_status()
    steps.clear()
    again.prepare_words(lambda f, m: steps.append((f, m)))
    assert not any("embedding" in m for _, m in steps) and again.words is not None


def test_words_offline_say_exactly_what_is_needed(engine, tmp_path, monkeypatch):
    from editor.ui.custom import backend_from_env, clip_weights_present

    monkeypatch.setenv("EDITOR_USER_DIR", str(tmp_path / "user"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty Hugging Face cache
    backend = backend_from_env(engine, environ={})
    assert backend.clip_spec == "clip:ViT-B-32:laion2b_s34b_b79k"
    if clip_weights_present(backend.clip_spec) is not False:
        pytest.skip("the CLIP weights are in this machine's Hugging Face cache")
    status = backend.words_status()
    for needed in ("ViT-B-32", "laion2b_s34b_b79k", "Hugging Face cache", "open_clip.create_model_and_transforms",
                   "EDITOR_WORDS_SAMPLES", "python -m editor sample"):
        assert needed in status
    with pytest.raises(ValueError, match="Hugging Face cache"):
        backend.prepare_words()
