"""The "New slider" tab: its backend on a tiny engine (clicks, words, preview strips, saving) and the Blocks build."""

import numpy as np
import pytest

from editor.bank import load_bank
from editor.custom_sliders import ClickOptions, WordSliderMaker
from editor.ui_custom import CustomSliderBackend, build_custom_demo

from _engine_fixtures import tiny_engine


@pytest.fixture(scope="module")
def engine():
    return tiny_engine()


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
    with pytest.raises(ValueError, match="CLIP image embeddings"):
        CustomSliderBackend(engine, pool_size=100).from_words("a big thing")


def test_tab_builds_and_its_handlers_run(engine, tmp_path):
    backend = CustomSliderBackend(engine, bank_path=tmp_path / "b.safetensors", pool_size=100,
                                  click_options=ClickOptions(grid=6, min_labels=12))
    demo = build_custom_demo(backend)
    ids = {getattr(b, "elem_id", None) for b in demo.blocks.values()}
    assert {"words-btn", "click-grid", "click-submit", "words-missing"} <= ids
    fns = {f.fn.__name__: f for f in demo.fns.values()}  # the wired handlers, called as Gradio would
    for name, (n_in, n_out) in {"on_show": (1, 4), "on_submit": (2, 4), "on_fit": (3, 2), "on_save": (1, 1)}.items():
        assert (len(fns[name].inputs), len(fns[name].outputs)) == (n_in, n_out)
    marks, grid, ticks, msg = fns["on_show"].fn({})
    assert len(grid) == 6 and ticks == [] and "0 marks" in msg
    for _ in range(3):
        marks, grid, ticks, msg = fns["on_submit"].fn(marks, [0, 2])
    assert "18 marks (6 has it, 12 doesn't)" in msg
    entry, strip = fns["on_fit"].fn(marks, "thing", None)
    assert entry.name == "thing/logreg/w" and len(strip) == 5
    assert "Saved thing/logreg/w" in fns["on_save"].fn(entry)
    import gradio as gr

    with pytest.raises(gr.Error, match="make a slider first"):
        fns["on_save"].fn(None)


def test_backend_from_env(engine, tmp_path):
    from editor.ui_custom import backend_from_env

    plain = backend_from_env(engine, environ={})
    assert plain.words is None and plain.words_problem == "" and plain.bank_path.name == "tiny-random.safetensors"
    broken = backend_from_env(engine, bank_path=tmp_path / "b.safetensors",
                              environ={"EDITOR_WORDS_SAMPLES": str(tmp_path / "nothing"), "EDITOR_WORDS_CLIP": "stats"})
    assert broken.words is None and "Sliders from words are off" in broken.words_problem
