"""Custom sliders: from words (planted direction in synthetic embeddings; tiny random CLIP end to end) and from clicks
(active learning on a planted linear attribute); saving into a bank."""

import json
from types import SimpleNamespace

import numpy as np
import pytest

from editor.bank import GeneratorInfo, load_bank
from editor.directions import Space
from editor.custom_sliders import ClickOptions, ClickSession, SliderFitOptions, WordSliderMaker, add_to_bank, \
    lda_direction, planted_world, prompt_scores


@pytest.mark.parametrize("method", ["lda", "logreg"])
def test_words_recover_a_planted_direction(method):
    w, u, emb, encode = planted_world()
    ws = np.repeat(w[:, None], 4, axis=1)  # [N, num_ws=4, D]
    maker = WordSliderMaker(None, ws, emb, encode, labeller="clip:synthetic", options=SliderFitOptions(method=method))
    entry = maker.make("a smiling face", "a face with a neutral expression")
    assert float(entry.vector[0] @ u) >= 0.95
    assert entry.val_accuracy > 0.95 and entry.method == method and str(entry.space) == "w"
    assert entry.attribute == "smiling" and entry.extra["positive"] == "a smiling face"
    # the reversed pair gives the opposite slider; one prompt alone uses the neutral prompt as the negative
    rev = maker.make("a face with a neutral expression", "a smiling face", attribute="neutral")
    assert float(rev.vector[0] @ u) <= -0.95
    single = maker.make("a smiling face")
    assert single.extra["negative"] == "a photo of a face" and float(single.vector[0] @ u) > 0.9
    # a W+ layer range fits on those layers and acts only there
    plus = maker.make("smiling", "neutral", space="w+:1-2")
    assert str(plus.space) == "w+:1-2" and plus.rows(4)[0].sum() == 0


def test_words_bad_input_is_clear():
    w, _, emb, encode = planted_world(n=200, d=8, e=8)
    ws = w[:, None]
    with pytest.raises(ValueError, match="one per sample"):
        WordSliderMaker(None, ws, emb[:10], encode)
    maker = WordSliderMaker(None, ws, emb, encode)
    with pytest.raises(ValueError, match="type what the slider"):
        maker.make("  ")
    with pytest.raises(ValueError, match="the same"):
        maker.make("smiling", "smiling")
    with pytest.raises(ValueError, match="like the image embeddings"):
        prompt_scores(emb, np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match="method must be"):
        SliderFitOptions(method="magic")


def test_lda_separates_and_checks_input():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((400, 6))
    y = x[:, 0] + 0.5 * x[:, 1] > 0
    d = lda_direction(x, y)
    assert d.train_accuracy > 0.95 and abs(np.linalg.norm(d.vector) - 1) < 1e-9
    with pytest.raises(ValueError, match="both classes"):
        lda_direction(x, np.zeros(400, bool))


def test_clicks_active_learning_reaches_a_good_direction():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2000, 16)) + 1.0
    u = np.zeros(16)
    u[2] = 1.0
    truth = (x - 1.0) @ u > 0.3
    session = ClickSession(x, ClickOptions(grid=8, min_labels=16, seed=0))
    assert session.direction is None and session.certainty() is None
    shown = []
    for _ in range(8):
        grid = session.next_grid()
        assert len(grid) == 8 and not set(grid.tolist()) & set(session.marks)
        shown += grid.tolist()
        for i in grid:
            session.mark(i, truth[i])
    assert session.n_marks == 64 and session.ready
    d = session.direction
    acc = np.mean((x @ d.vector + d.intercept > 0) == truth)
    assert acc > 0.9 and float(d.vector @ u) > 0.9
    # after the first fit the grid holds the least certain samples
    cert = session.certainty()
    nxt = session.next_grid(4)
    free = np.setdiff1d(np.arange(2000), list(session.marks))
    assert np.allclose(np.sort(cert[nxt]), np.sort(cert[free])[:4])
    entry = session.entry("glasses")
    assert entry.labeller == "manual:clicks" and entry.n_samples == 64 and 0.5 <= entry.val_accuracy <= 1
    # rebuilding from the marks alone (what a web app keeps per user) gives the same direction
    again = ClickSession(x, ClickOptions(grid=8, min_labels=16, seed=0), marks=session.marks)
    assert np.allclose(again.direction.vector, d.vector)


def test_clicks_need_both_answers():
    x = np.random.default_rng(0).standard_normal((100, 4))
    s = ClickSession(x, ClickOptions(min_labels=4))
    for i in range(6):
        s.mark(i, True)
    assert not s.ready
    with pytest.raises(ValueError, match="both answers"):
        s.entry("x")
    with pytest.raises(ValueError, match="outside the pool"):
        s.mark(100, True)


def test_add_to_bank_creates_replaces_and_checks(tmp_path):
    w, _, emb, encode = planted_world(n=300, d=8, e=8)
    maker = WordSliderMaker(None, w[:, None], emb, encode, labeller="clip:synthetic")
    info = GeneratorInfo(model_id="abc", z_dim=8, w_dim=8, num_ws=1)
    path = tmp_path / "bank.safetensors"
    with pytest.raises(ValueError, match="pass the generator"):
        add_to_bank(path, [maker.make("smiling")])
    add_to_bank(path, [maker.make("smiling")], info)
    add_to_bank(path, [maker.make("smiling", "grumpy"), maker.make("smiling", attribute="happy")])
    bank = load_bank(path, info)
    assert [e.attribute for e in bank.entries] == ["smiling", "happy"]
    assert bank.entries[0].extra["negative"] == "grumpy" and "custom sliders" in bank.command
    with pytest.raises(ValueError, match="another generator"):
        add_to_bank(path, [maker.make("smiling")], GeneratorInfo("other", 8, 8, 1))


def test_words_end_to_end_with_tiny_random_clip(tmp_path, capsys):
    """`sample` with a tiny random-weight CLIP (embeddings kept) -> a slider from words (library and command) ->
    saved in the bank."""
    from editor.bank import generator_info
    from editor.checkpoints import load_generator
    from editor.commands import main
    from editor.custom_sliders import open_word_maker
    from editor.labelers import ClipLabeler

    cfg = {"embed_dim": 32, "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16,
                                           "patch_size": 8},
           "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    cfg_path = tmp_path / "tiny-words-clip.json"
    cfg_path.write_text(json.dumps(cfg))
    samples, bank_path = tmp_path / "s", tmp_path / "b.safetensors"
    assert main(["sample", "--model", "random:small", "--n", "40", "--chunk", "20", "--labeler", f"clip:{cfg_path}",
                 "--out", str(samples), "--device", "cpu"]) == 0
    # library path
    clip = ClipLabeler(prompts={"smiling": ("a smiling face", "a neutral face")}, model=str(cfg_path), pretrained=None)
    info = generator_info(load_generator("random:small"))
    maker = open_word_maker(samples, clip, model_id=info.model_id)
    entry = maker.make("a face wearing glasses", "a face without glasses", attribute="glasses")
    assert entry.dim == info.w_dim and entry.labeller.startswith("clip:tiny-words-clip")
    assert entry.val_accuracy is not None and 0 <= entry.val_accuracy <= 1
    bank = add_to_bank(bank_path, [entry], info)
    assert bank.entries[0].name == "glasses/lda/w"
    with pytest.raises(ValueError, match="made with generator"):
        open_word_maker(samples, clip, model_id="someone-else")
    with pytest.raises(ValueError, match="no image embeddings"):
        WordSliderMaker.from_samples(SimpleNamespace(embeddings={}), SimpleNamespace(name="clip:other"))
    # command path, adding to the same bank
    assert main(["slider-from-words", "--samples", str(samples), "--clip", f"clip:{cfg_path}", "--positive",
                 "a face with freckles", "--bank", str(bank_path)]) == 0
    out = capsys.readouterr().out
    assert "freckles/lda/w" in out and "saved into" in out
    bank = load_bank(bank_path, info)
    assert bank.find("freckles").extra["negative"] == "a photo of a face"
    assert bank.find("glasses").extra["positive"] == "a face wearing glasses"
    assert main(["slider-from-words", "--samples", str(tmp_path / "none"), "--clip", f"clip:{cfg_path}",
                 "--positive", "x"]) == 1
    assert "no sample cache" in capsys.readouterr().err


def test_clip_text_prefix_encoding_is_exact(tmp_path):
    """ClipLabeler.encode_text runs the causal text tower only up to the longest prompt: same embeddings."""
    import torch

    from editor.labelers import ClipLabeler, _encode_text_prefix

    cfg = {"embed_dim": 16, "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16,
                                           "patch_size": 8},
           "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2}}
    path = tmp_path / "tiny-prefix-clip.json"
    path.write_text(json.dumps(cfg))
    clip = ClipLabeler(prompts={"a": ("x", "y")}, model=str(path), pretrained=None)
    texts = ["a smiling face", "a photo of a face with a neutral expression and short hair", ""]
    tokens = clip._tokenizer(texts)
    with torch.no_grad():
        full = torch.nn.functional.normalize(clip._net.encode_text(tokens).float(), dim=-1).numpy()
        short = _encode_text_prefix(clip._net, tokens)
    assert short is not None
    assert np.allclose(clip.encode_text(texts), full, atol=1e-6)


def test_word_maker_keeps_only_w_when_layers_agree():
    w, u, emb, encode = planted_world(n=500, d=8, e=8)
    same = WordSliderMaker(None, np.repeat(w[:, None], 6, axis=1), emb, encode)
    assert same.ws is None and same.w.shape == (500, 8) and same.w.dtype == np.float32
    mixed = np.repeat(w[:, None], 6, axis=1)
    mixed[:, 3:] += 0.1
    m = WordSliderMaker(None, mixed, emb, encode)
    assert m.w is None and m.ws.shape == (500, 6, 8)
    assert np.allclose(m.latents(Space.parse("w+:3-5")), w + 0.1, atol=1e-5)
    with pytest.raises(ValueError, match="num_ws=6"):
        same.make("smiling", space="w+:4-9")
