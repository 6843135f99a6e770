"""Tests of the toon attribute + landmark model: shapes, input handling, save/load, a tiny training run, resume."""

import math

import numpy as np
import pytest
import torch

from editor import attributes as A
from editor.toonfaces import ATTRIBUTES, LANDMARK_NAMES

TINY = A.AttributeNetConfig(input_size=32, widths=(4, 8, 8, 16), strides=(2, 2, 2, 1), spatial_channels=2,
                            embed_dim=16)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny_data():
    return A.RenderedSet.render(range(48), 32)


def test_head_shapes():
    torch.manual_seed(0)
    net = A.AttributeNet(TINY).eval()
    out, emb = net(torch.zeros(3, 3, 32, 32))
    n_out = sum(len(s.classes) if s.kind == "categorical" else 1 for s in ATTRIBUTES) + 2 * len(LANDMARK_NAMES)
    assert out.shape == (3, n_out) and emb.shape == (3, 16)
    pred = net.predict(np.zeros((2, 50, 70, 3), np.uint8))
    for spec in ATTRIBUTES:
        s = pred.scores[spec.name]
        assert s.shape == ((2, len(spec.classes)) if spec.kind == "categorical" else (2,)), spec.name
        if spec.kind == "binary":
            assert ((s >= 0) & (s <= 1)).all()
        if spec.kind == "categorical":
            assert torch.allclose(s.sum(1), torch.ones(2))
    assert pred.landmarks.shape == (2, 5, 2) and pred.embedding.shape == (2, 16)
    assert set(pred.labels()) == {s.name for s in ATTRIBUTES}
    with pytest.raises(ValueError, match=r"\[N, 3, 32, 32\]"):
        net(torch.zeros(1, 3, 64, 64))


def test_default_config_is_compact():
    net = A.AttributeNet()
    n = sum(p.numel() for p in net.parameters())
    assert 100_000 < n < 1_000_000
    out, emb = net.eval()(torch.zeros(1, 3, 64, 64))
    assert emb.shape == (1, A.AttributeNetConfig().embed_dim)


def test_input_formats_agree():
    torch.manual_seed(0)
    net = A.AttributeNet(TINY).eval()
    img = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    nhwc = net.predict(img)
    nchw = net.predict(torch.from_numpy(img).permute(0, 3, 1, 2))
    flt = net.predict(torch.from_numpy(img).permute(0, 3, 1, 2).float() / 127.5 - 1)
    single = net.predict(img[0])
    for other in (nchw, flt):
        assert torch.allclose(nhwc.embedding, other.embedding, atol=1e-5)
    assert torch.allclose(single.embedding, nhwc.embedding[:1], atol=1e-5)
    # landmarks are reported in the input's pixels: a 2x larger input gives 2x the coordinates
    big = net.predict(np.repeat(np.repeat(img, 2, axis=1), 2, axis=2))
    assert torch.allclose(big.landmarks, nhwc.landmarks * 2, atol=0.5)


@pytest.mark.parametrize("bad, match", [
    (np.zeros((2, 32, 32), np.float32), "float images"),
    (np.zeros((2, 32, 32, 4), np.uint8), "3 channels"),
    (np.zeros((0, 3, 32, 32), np.float32), "empty"),
    (np.zeros((1, 3, 4, 4), np.float32), "too small"),
    (np.zeros((1, 3, 8, 8), np.int64), "uint8 or floating"),
    ([1, 2, 3], "numpy array or torch tensor"),
])
def test_bad_inputs_are_clear_errors(bad, match):
    net = A.AttributeNet(TINY)
    with pytest.raises(ValueError, match=match):
        net.predict(bad)


def test_bad_configs():
    with pytest.raises(ValueError, match="multiple of 16"):
        A.AttributeNetConfig(input_size=40)
    with pytest.raises(ValueError, match="strides"):
        A.AttributeNetConfig(widths=(4, 8), strides=(2,))
    with pytest.raises(ValueError, match="train_seeds"):
        A.TrainConfig(train_seeds=(5, 3))
    with pytest.raises(ValueError, match="train_seeds"):
        A.TrainConfig(train_seeds=(0, A.HELD_OUT_SEED_START + 1))


def test_tiny_training_lowers_the_loss(tiny_data):
    cfg = A.TrainConfig(train_seeds=(0, 48), steps=40, batch_size=16, lr=3e-3, warmup=5, net=TINY, augment=False)
    torch.manual_seed(0)
    x, t = tiny_data.batch(np.arange(48))

    def loss_of(model):
        model.eval()
        with torch.no_grad():
            out, _ = model(x)
            return A.attribute_loss(model, out, t)[0].item()

    torch.manual_seed(cfg.seed)
    before = loss_of(A.AttributeNet(TINY))  # the same init the trainer starts from
    seen = []
    model, summary = A.train_attribute_model(cfg, tiny_data, on_step=lambda s, l: seen.append(s))
    assert summary["steps"] == 40 and seen == list(range(1, 41))
    assert loss_of(model) < 0.8 * before


def test_render_cache_is_reused(tmp_path):
    a = A.RenderedSet.render(range(5), 16, cache=tmp_path, chunk=3)
    assert len(list(tmp_path.glob("*.npz"))) == 2
    b = A.RenderedSet.render(range(5), 16, cache=tmp_path, chunk=3)
    assert np.array_equal(a.images, b.images) and a.attrs == b.attrs


def test_resume_reproduces_an_uninterrupted_run(tiny_data, tmp_path):
    cfg = A.TrainConfig(train_seeds=(0, 48), steps=6, batch_size=8, warmup=2, net=TINY)
    full, _ = A.train_attribute_model(cfg, tiny_data)
    state = tmp_path / "state.pt"
    A.train_attribute_model(cfg, tiny_data, state_path=state, stop_after=3)
    resumed, summary = A.train_attribute_model(cfg, tiny_data, state_path=state, resume=True)
    assert summary["steps"] == 6
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-6), k
    other = A.TrainConfig(train_seeds=(0, 48), steps=7, batch_size=8, warmup=2, net=TINY)
    with pytest.raises(ValueError, match="different training configuration"):
        A.train_attribute_model(other, tiny_data, state_path=state, resume=True)


def test_save_load_roundtrip(tmp_path, tiny_data):
    torch.manual_seed(1)
    net = A.AttributeNet(TINY).eval()
    path = tmp_path / "m.safetensors"
    A.save_attribute_model(net, path, metadata={"note": "test"})
    loaded = A.load_attribute_model(path)
    assert loaded.info == {"note": "test"} and not loaded.training
    a, b = net.predict(tiny_data.images[:4]), loaded.predict(tiny_data.images[:4])
    assert torch.allclose(a.embedding, b.embedding)
    with pytest.raises(FileNotFoundError):
        A.load_attribute_model(tmp_path / "missing.safetensors")
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="not a toon attribute checkpoint"):
        A.load_attribute_model(tmp_path / "other.safetensors")


def test_evaluation_and_ece(tiny_data):
    assert A.expected_calibration_error(np.array([0.9, 0.9]), np.array([1, 1])) == pytest.approx(0.1)
    assert A.expected_calibration_error(np.array([1.0, 0.5]), np.array([1, 0])) == pytest.approx(0.25)
    net = A.AttributeNet(TINY)
    metrics = A.evaluate_attribute_model(net, tiny_data)
    assert set(metrics) == {s.name for s in ATTRIBUTES} | {"landmarks"}
    assert 0 <= metrics["smiling"]["accuracy"] <= 1 and "ece" in metrics["hair_color"]
    assert min(A.held_out_seeds(10)) >= A.HELD_OUT_SEED_START


def test_bundled_checkpoint_if_present():
    if not A.DEFAULT_CHECKPOINT.is_file():
        pytest.skip("bundled attribute model not trained yet")
    from editor.toonfaces import render_batch

    model = A.load_attribute_model()
    imgs, attrs, lms = render_batch(range(A.HELD_OUT_SEED_START, A.HELD_OUT_SEED_START + 16), 64)
    pred = model.predict(imgs)
    acc = (pred.labels()["beard"].numpy() == np.array([a["beard"] for a in attrs])).mean()
    assert acc >= 0.85
    err = (pred.landmarks.numpy() - lms).__abs__().max()
    assert err < 64 * 0.1
    # any input size: a 128 px render gives landmarks in 128 px coordinates
    big, _, lms_big = render_batch([A.HELD_OUT_SEED_START], 128)
    assert np.abs(model.predict(big).landmarks.numpy() - lms_big).max() < 128 * 0.1


def test_geometric_augmentation_moves_landmarks_with_the_pixels():
    """A blob drawn at a landmark is found at the transformed landmark after zoom/shift/rotation."""
    s = 64
    lm = torch.tensor([[0.3, 0.4, 0.7, 0.4, 0.5, 0.6, 0.35, 0.75, 0.65, 0.75]] * 3)  # [3, 10] units of the side
    yy, xx = torch.meshgrid(torch.arange(s) + 0.5, torch.arange(s) + 0.5, indexing="ij")
    blob = torch.exp(-((xx - 0.3 * s) ** 2 + (yy - 0.4 * s) ** 2) / 4.0)  # at landmark 0
    x = blob.expand(3, 3, s, s).clone() * 2 - 1
    x2, lm2 = A._augment_geometric(x, lm, 1.0, torch.Generator().manual_seed(5))
    assert not torch.allclose(lm2, lm)
    for i in range(3):
        w = (x2[i, 0] + 1).clamp(min=0)
        w = w * (w > 0.3 * w.max())
        cx, cy = float((w * xx).sum() / w.sum()), float((w * yy).sum() / w.sum())
        assert abs(cx - lm2[i, 0] * s) < 0.6 and abs(cy - lm2[i, 1] * s) < 0.6


def test_outliers_and_their_loss():
    x = torch.zeros(40, 3, 32, 32)
    x2, valid = A._outliers(x, 0.5, torch.Generator().manual_seed(0))
    changed = (x2 != 0).flatten(1).any(1)
    assert 5 < int((valid == 0).sum()) < 35
    assert bool((changed <= (valid == 0)).all())  # only non-faces changed (shuffled zeros stay zero)
    # a non-face row pulls binaries to 0.5 and ignores its (meaningless) regression targets
    torch.manual_seed(0)
    net = A.AttributeNet(TINY)
    out = torch.zeros(2, net.n_out)
    data = A.RenderedSet.render(range(2), 32)
    _, t = data.batch(np.arange(2))
    t["valid"] = torch.tensor([0.0, 0.0])
    loss, parts = A.attribute_loss(net, out, t)
    assert parts["continuous"] == 0 and parts["landmarks"] == 0
    assert parts["binary"] == pytest.approx(math.log(2), abs=1e-5)


def test_per_sample_weights_of_a_binary_head():
    torch.manual_seed(0)
    net = A.AttributeNet(TINY)
    data = A.RenderedSet.render(range(4), 32)
    _, t = data.batch(np.arange(4))
    out = torch.randn(4, net.n_out)
    base = A.attribute_loss(net, out, t)[1]["binary"]
    t["weight_old"] = torch.zeros(4)
    assert A.attribute_loss(net, out, t)[1]["binary"] < base
