"""Labellers behind one protocol: image statistics, a stand-in attribute model, tiny random-weight CLIP, manual files."""

import json

import numpy as np
import pytest
import torch

from editor.labelers import (AttributeModelLabeler, ClipLabeler, ImageStatsLabeler, Labeler, ManualLabeler,
                             make_labeler)


def _images(n=5, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g) * 2 - 1


def test_stats_labeler_scores_known_images():
    imgs = torch.full((2, 3, 8, 8), -1.0)
    imgs[1, 0] = 1.0  # second image: red
    imgs[1, :, :, 4:] += 0.5  # brighter on the right
    lab = ImageStatsLabeler()
    assert isinstance(lab, Labeler)
    s = lab(imgs, [0, 1])
    assert set(s) == set(lab.attributes)
    assert s["redness"][1] > s["redness"][0] and s["left_right"][1] > 0 and s["left_right"][0] == 0
    with pytest.raises(ValueError, match=r"\[N, 3, H, W\]"):
        lab(torch.zeros(2, 8, 8), [0, 1])


def test_attribute_model_labeler_batches_a_predictor():
    seen = []

    def predict(imgs):
        seen.append(imgs.shape)
        assert imgs.ndim == 4 and imgs.shape[1] == 3
        return {"smiling": imgs.mean(dim=(1, 2, 3)).numpy(), "old": np.zeros(len(imgs))}, np.ones((len(imgs), 4))

    lab = AttributeModelLabeler(predict=predict, attributes=("smiling", "old"), batch_size=2)
    s = lab(_images(5), range(5))
    assert s["smiling"].shape == (5,) and len(seen) == 3
    scores, emb = lab.label_with_embedding(_images(3), range(3))
    assert emb.shape == (3, 4)
    bad = AttributeModelLabeler(predict=predict, attributes=("beard",))
    with pytest.raises(ValueError, match="no 'beard'"):
        bad(_images(2), range(2))


def test_attribute_model_labeler_wraps_a_tiny_attribute_net():
    from editor.attributes import AttributeNet, AttributeNetConfig

    torch.manual_seed(0)
    net = AttributeNet(AttributeNetConfig(input_size=32, widths=(4, 4, 4, 4, 4), spatial_channels=2, embed_dim=8)).eval()
    lab = AttributeModelLabeler.from_model(net)
    assert "smiling" in lab.attributes and "hair_color=blond" in lab.attributes and "age" in lab.attributes
    scores, emb = lab.label_with_embedding(_images(3, size=24), range(3))
    assert emb.shape == (3, 8) and scores["hair_color=blond"].shape == (3,)
    assert np.all((scores["smiling"] >= 0) & (scores["smiling"] <= 1))


@pytest.fixture(scope="module")
def tiny_clip_config(tmp_path_factory):
    cfg = {"embed_dim": 32, "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
           "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    path = tmp_path_factory.mktemp("clip") / "test-tiny-clip.json"
    path.write_text(json.dumps(cfg))
    return path


def test_clip_labeler_full_path_with_tiny_random_model(tiny_clip_config):
    torch.manual_seed(0)
    prompts = {"smiling": ("a smiling face", "a neutral face"), "eyeglasses": ("glasses", "no glasses")}
    lab = ClipLabeler(prompts=prompts, model=str(tiny_clip_config), pretrained=None)
    assert lab.attributes == ("smiling", "eyeglasses") and "test-tiny-clip" in lab.name
    imgs = _images(3, size=20)
    s = lab(imgs, range(3))
    assert s["smiling"].shape == (3,) and np.all((s["smiling"] > 0) & (s["smiling"] < 1))
    emb = lab.embed(imgs)
    assert emb.shape == (3, 32) and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    # New prompts from cached embeddings, with no rendering.
    s2 = lab.scores_from_embeddings(emb, {"beard": ("a beard", "clean shaven")})
    assert set(s2) == {"beard"}
    # Swapping the prompts of a pair mirrors the probability.
    flipped = lab.scores_from_embeddings(emb, {"smiling": ("a neutral face", "a smiling face")})
    assert np.allclose(flipped["smiling"], 1 - s["smiling"], atol=1e-6)
    with pytest.raises(ValueError, match="pair"):
        ClipLabeler(prompts={"a": ("only one",)}, model=str(tiny_clip_config), pretrained=None)
    lab2 = make_labeler(f"clip:{tiny_clip_config}")
    assert isinstance(lab2, ClipLabeler)


def test_clip_without_weights_fails_fast_and_clearly(tiny_clip_config):
    with pytest.raises(ValueError, match="offline"):
        ClipLabeler(model=str(tiny_clip_config), pretrained="laion2b_s34b_b79k")


def test_manual_labels_csv_and_jsonl(tmp_path):
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text("id,smiling,old\n3,1,0\n5,0,\n7,1,1\n")
    lab = make_labeler(f"manual:{csv_path}")
    s = lab(None, [3, 4, 5, 7])
    assert np.array_equal(s["smiling"], [1, np.nan, 0, 1], equal_nan=True)
    assert np.array_equal(s["old"], [0, np.nan, np.nan, 1], equal_nan=True)
    jl = tmp_path / "labels.jsonl"
    jl.write_text('{"id": 1, "beard": 1}\n\n{"id": 2, "beard": 0}\n')
    assert list(ManualLabeler.from_file(jl)(None, [2, 1])["beard"]) == [0, 1]
    (tmp_path / "bad.jsonl").write_text('{"id": "x", "beard": 1}\n')
    with pytest.raises(ValueError, match="bad.jsonl:1: id 'x'"):
        ManualLabeler.from_file(tmp_path / "bad.jsonl")
    (tmp_path / "bad.csv").write_text("id,smiling\n1,yes\n")
    with pytest.raises(ValueError, match="not a number"):
        ManualLabeler.from_file(tmp_path / "bad.csv")
    with pytest.raises(ValueError, match=".csv or .jsonl"):
        (tmp_path / "x.txt").write_text("")
        ManualLabeler.from_file(tmp_path / "x.txt")


def test_make_labeler_errors():
    with pytest.raises(ValueError, match="unknown labeller"):
        make_labeler("oracle")
    with pytest.raises(ValueError, match="needs a file|need a file"):
        make_labeler("manual:")


def test_bundled_attribute_model_through_the_labeller():
    from editor.attributes import DEFAULT_CHECKPOINT
    from editor.toonfaces import render_batch

    if not DEFAULT_CHECKPOINT.is_file():
        pytest.skip("no bundled attribute checkpoint")
    lab = make_labeler("toon")
    imgs, attrs, _ = render_batch(list(range(10_000_000, 10_000_016)), size=64)
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 127.5 - 1
    scores, emb = lab.label_with_embedding(x, range(16))
    assert emb.shape[0] == 16 and len(scores) == len(lab.attributes)
    truth = np.array([a["eyeglasses"] for a in attrs], bool)
    assert np.mean((scores["eyeglasses"] > 0.5) == truth) >= 0.8
