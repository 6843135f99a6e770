"""Tests of the demo-world renderer: determinism, ground truth, landmarks against drawn features, correlations."""

import dataclasses
import json

import numpy as np
import pytest

from editor import toonfaces
from editor.toonfaces import ATTRIBUTES, LANDMARK_NAMES, render, render_batch, sample_params


def test_same_seed_same_pixels_attributes_landmarks():
    a, b = render(7, 48), render(7, 48)
    assert a.image.dtype == np.uint8 and a.image.shape == (48, 48, 3)
    assert np.array_equal(a.image, b.image)
    assert a.attributes == b.attributes
    assert np.array_equal(a.landmarks, b.landmarks)
    c = render(sample_params(7), 48)
    assert np.array_equal(a.image, c.image)
    assert not np.array_equal(a.image, render(8, 48).image)


def test_params_are_frozen_and_seeded():
    p = sample_params(3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.age = 0.5
    assert p == sample_params(3) and p.seed == 3


@pytest.mark.parametrize("bad", [-1, 1.5, "3", None, True])
def test_bad_seed_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="seed"):
        render(bad)


def test_bad_size_framing_supersample():
    with pytest.raises(ValueError, match="size"):
        render(0, size=4)
    with pytest.raises(ValueError, match="framing"):
        render(0, framing="selfie")
    with pytest.raises(ValueError, match="supersample"):
        render(0, supersample=0)
    with pytest.raises(ValueError, match="seed"):
        render_batch([])


def test_attributes_follow_their_specs():
    for seed in range(40):
        attrs = render(seed, 16).attributes
        for spec in ATTRIBUTES:
            v = attrs[spec.name]
            if spec.kind == "binary":
                assert v in (0, 1)
            elif spec.kind == "categorical":
                assert 0 <= v < len(spec.classes) and attrs[spec.name + "_name"] == spec.classes[v]
            else:
                assert spec.low <= v <= spec.high, (spec.name, v)
        json.dumps(attrs)  # JSON-friendly
    assert toonfaces.attribute_spec("smiling").kind == "binary"
    with pytest.raises(ValueError, match="unknown attribute"):
        toonfaces.attribute_spec("nope")


def test_render_batch_matches_render_and_workers():
    imgs, attrs, lms = render_batch(range(6), 32)
    assert imgs.shape == (6, 32, 32, 3) and lms.shape == (6, 5, 2) and len(attrs) == 6
    assert np.array_equal(imgs[4], render(4, 32).image)
    imgs2, attrs2, lms2 = render_batch(range(6), 32, workers=2)
    assert np.array_equal(imgs, imgs2) and attrs == attrs2 and np.array_equal(lms, lms2)


def _run_through(line: np.ndarray, i: int) -> tuple[int, int]:
    """[start, stop) of the run of True values in a 1-d mask that contains index i."""
    assert line[i], "the landmark is not on the drawn feature"
    lo, hi = i, i + 1
    while lo > 0 and line[lo - 1]:
        lo -= 1
    while hi < len(line) and line[hi]:
        hi += 1
    return lo, hi


@pytest.mark.parametrize("seed", [0, 1, 2, 5, 9])
def test_eye_landmarks_are_the_centres_of_the_drawn_eyes(seed):
    """The eye landmark is the centre of the eye (the white's ellipse), as FFHQ alignment uses: on the landmark's
    row the drawn eye extends equally far left and right of it, and the landmark is inside the eye."""
    size = 200
    lm = render(seed, size).landmarks
    canvas = toonfaces._render_parts(seed, size, ["eyes"], background=(1.0, 0.0, 1.0))
    drawn = np.abs(canvas - np.array([1.0, 0.0, 1.0])).sum(-1) > 0.5  # [S, S] the eye pixels
    for x, y in lm[:2]:
        lo, hi = _run_through(drawn[int(y)], int(x))
        assert abs(0.5 * (lo + hi) - x) < 1.5, (lo, hi, x)  # 0.75 % of the width
        top, bottom = _run_through(drawn[:, int(x)], int(y))
        assert top < y < bottom


@pytest.mark.parametrize("seed", [0, 1, 2, 5])
def test_photo_landmarks_follow_the_drawn_pupils(seed):
    """In photo framing (rotated, scaled, moved) the eye landmarks stay on the drawn eyes, next to the pupils."""
    size = 480
    lm = render(seed, size, "photo").landmarks
    canvas = toonfaces._render_parts(seed, size, ["eyes"], "photo", background=(1.0, 0.0, 1.0))
    pupils = canvas.sum(-1) < 0.2  # pupils (0.17) are darker than the lid lines (0.28) and the rest
    ys, xs = np.nonzero(pupils)
    eye_width = np.linalg.norm(lm[1] - lm[0])
    for x, y in lm[:2]:
        near = (xs - x) ** 2 + (ys - y) ** 2 < (0.35 * eye_width) ** 2
        assert near.sum() > 3
        centre = np.array([xs[near].mean() + 0.5, ys[near].mean() + 0.5])
        assert np.linalg.norm(centre - [x, y]) < 0.12 * eye_width  # gaze shifts the pupil a little with yaw


@pytest.mark.parametrize("seed", [0, 3, 4, 6])
def test_mouth_corners_are_the_ends_of_the_drawn_mouth(seed):
    size = 200
    lm = render(seed, size).landmarks
    canvas = toonfaces._render_parts(seed, size, ["mouth"])
    ys, xs = np.nonzero(canvas.sum(-1) > 0.2)
    left = np.array([xs.min(), ys[xs == xs.min()].mean()])
    right = np.array([xs.max() + 1, ys[xs == xs.max()].mean()])
    # the ends of the drawn lips/line lie within a few pixels of the corner landmarks
    assert np.abs(left - lm[3]).max() < 0.03 * size, (left, lm[3])
    assert np.abs(right - lm[4]).max() < 0.03 * size, (right, lm[4])
    # the nose tip lies between the eyes and the mouth, horizontally between the corners
    assert lm[0, 1] < lm[2, 1] < lm[3, 1] and lm[3, 0] < lm[2, 0] < lm[4, 0]


def test_portrait_is_ffhq_aligned():
    """With no roll, the FFHQ crop rule applied to the portrait's own landmarks gives the whole image."""
    size = 128
    for seed in range(5):
        p = dataclasses.replace(sample_params(seed), roll=0.0)
        lm = render(p, size).landmarks.astype(np.float64)
        centre, side, angle = toonfaces._ffhq_quad(lm)
        assert np.allclose(centre, [size / 2, size / 2], atol=0.05)
        assert abs(side - size) < 0.05 and abs(angle) < 0.05


def test_landmarks_scale_with_size():
    a, b = render(11, 64).landmarks, render(11, 256).landmarks
    assert np.allclose(a * 4, b, atol=1e-3)
    assert LANDMARK_NAMES[0] == "left_eye"
    r = render(11, 64)
    assert r.landmarks[0, 0] < r.landmarks[1, 0] and r.landmarks[3, 0] < r.landmarks[4, 0]
    assert set(r.landmark_dict()) == set(LANDMARK_NAMES)


def test_photo_landmarks_inside_and_room_differs():
    for seed in range(10):
        r = render(seed, 96, "photo")
        assert (r.landmarks > 0).all() and (r.landmarks < 96).all()
    assert not np.array_equal(render(3, 64, "photo").image, render(3, 64).image)


@pytest.fixture(scope="module")
def population():
    """Parameters of 4000 seeds (no rendering: fast)."""
    params = [sample_params(s) for s in range(4000)]
    return [toonfaces.attributes_of(p) for p in params]


def test_binary_attributes_are_balanced(population):
    for spec in ATTRIBUTES:
        if spec.kind == "binary":
            rate = np.mean([a[spec.name] for a in population])
            assert 0.2 <= rate <= 0.8, (spec.name, rate)


def _p(population, target, cond):
    sel = [a for a in population if cond(a)]
    return np.mean([a[target] for a in sel]), len(sel)


def test_documented_correlations(population):
    pop = population
    # age -> grey hair: P(grey | old) is high, P(grey | young) is low
    p_old, _ = _p(pop, "grey_hair", lambda a: a["old"] == 1)
    p_young, _ = _p(pop, "grey_hair", lambda a: a["old"] == 0)
    assert p_old > 0.6 and p_young < 0.06
    # beard -> short hair and no lipstick
    p_long_beard, _ = _p(pop, "long_hair", lambda a: a["beard"] == 1)
    p_long_nobeard, _ = _p(pop, "long_hair", lambda a: a["beard"] == 0)
    assert p_long_beard == pytest.approx(0.03, abs=0.02) and p_long_nobeard == pytest.approx(0.38, abs=0.04)
    p_lip_beard, _ = _p(pop, "lipstick", lambda a: a["beard"] == 1)
    assert p_lip_beard < 0.05
    # long hair -> lipstick (among the beardless)
    p_lip_long, _ = _p(pop, "lipstick", lambda a: a["beard"] == 0 and a["long_hair"] == 1)
    p_lip_other, _ = _p(pop, "lipstick", lambda a: a["beard"] == 0 and a["long_hair"] == 0)
    assert p_lip_long == pytest.approx(0.75, abs=0.05) and p_lip_other == pytest.approx(0.30, abs=0.05)
    # smiling -> mouth open
    p_open_smile, _ = _p(pop, "mouth_open", lambda a: a["smiling"] == 1)
    p_open_flat, _ = _p(pop, "mouth_open", lambda a: a["smiling"] == 0)
    assert p_open_smile == pytest.approx(0.55, abs=0.05) and p_open_flat == pytest.approx(0.15, abs=0.04)
    # identity traits are independent of the edited attributes
    r = np.corrcoef([a["face_width"] for a in pop], [a["smile"] for a in pop])[0, 1]
    assert abs(r) < 0.06


def test_label_gaps(population):
    """Binary labels derived from continuous values keep a margin, so they are learnable."""
    for a in population:
        assert (a["smile"] >= 0.35) == bool(a["smiling"]) and (a["smile"] <= 0.15 or a["smiling"])
        assert (a["age"] >= 0.55) == bool(a["old"]) and (a["age"] <= 0.45 or a["old"])
        assert (a["hair_length"] == 0) == bool(a["bald"])


def test_toons_command(tmp_path):
    from editor.commands import main

    assert main(["toons", "--seeds", "0-3", "--size", "32", "--out", str(tmp_path), "--landmarks"]) == 0
    lines = (tmp_path / "attributes.jsonl").read_text().splitlines()
    assert len(lines) == 4
    rec = json.loads(lines[2])
    assert rec["seed"] == 2 and rec["file"] == "toon_000002.png" and set(rec["landmarks"]) == set(LANDMARK_NAMES)
    assert (tmp_path / "toon_000003.png").is_file() and (tmp_path / "contact_sheet.png").is_file()
    assert main(["toons", "--seeds", "0", "--size", "3", "--out", str(tmp_path)]) == 1
