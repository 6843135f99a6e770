"""The cached edit-and-synthesize backend (editor/engine.py) on a tiny random generator and a synthetic bank."""

import threading

import numpy as np
import pytest
import torch

from _engine_fixtures import synthetic_bank, tiny_engine, tiny_generator
from editor.engine import (
    Direction,
    EditBank,
    EditState,
    Engine,
    EngineConfig,
    layer_preset,
    slerp,
)
from editor.memory import ByteLRU


@pytest.fixture(scope="module")
def engine():
    return tiny_engine()


def test_alpha_zero_is_identity(engine):
    lat = engine.sample(3)
    base = engine.render(EditState.create(lat))
    zero = EditState.create(lat, {"smile": 0.0, "age": 0.0}, locked=["glasses"])
    assert torch.equal(engine.edited_ws(zero), torch.from_numpy(np.array(lat.ws)))
    engine.frames.clear()
    assert np.array_equal(engine.render(zero), base)


def test_edit_changes_image_and_ws(engine):
    lat = engine.sample(4)
    state = EditState.create(lat, {"smile": 2.0})
    ws = engine.edited_ws(state)
    expected = lat.ws + 2.0 * engine.bank.find("smile", None, "w").sigma * engine.bank.find(
        "smile", None, "w").unit(engine.num_ws, engine.w_dim)
    np.testing.assert_allclose(ws.numpy(), expected, rtol=1e-5, atol=1e-5)
    assert not np.array_equal(engine.render(state), engine.render(EditState.create(lat)))


def test_cache_returns_identical_frames(engine):
    state = EditState.create(engine.sample(5), {"smile": 1.5, "age": -1.0})
    first = engine.render(state)
    hits = engine.frames.hits
    again = engine.render(state)
    assert engine.frames.hits == hits + 1
    assert again is first
    engine.clear_caches()
    recomputed = engine.render(state)
    assert np.array_equal(recomputed, first)
    assert not recomputed.flags.writeable


def test_style_cache_matches_plain_ws_path():
    styled = tiny_engine()
    plain = tiny_engine(use_style_cache=False)
    assert styled._has_styles and not plain._has_styles
    state_s = EditState.create(styled.sample(6), {"smile": 2.5, "glasses": -1.0})
    state_p = EditState.create(plain.sample(6), {"smile": 2.5, "glasses": -1.0})
    a, b = styled.render(state_s).astype(int), plain.render(state_p).astype(int)
    assert np.abs(a - b).max() <= 1  # same maths, different float rounding order


def test_lock_makes_edit_orthogonal(engine):
    lat = engine.sample(7)
    state = EditState.create(lat, {"smile": 3.0, "glasses": 2.0}, locked=["age", "glasses"])
    age = engine.bank.find("age", None, "w").unit(engine.num_ws, engine.w_dim)
    glasses = engine.bank.find("glasses", None, "w").unit(engine.num_ws, engine.w_dim)
    smile_delta = engine.direction_delta(state, "smile").double().numpy()
    assert abs((smile_delta * age).sum()) < 1e-4
    assert abs((smile_delta * glasses).sum()) < 1e-4
    # the locked attribute's own slider still moves along its own direction, orthogonal to the other locks only
    glasses_delta = engine.direction_delta(state, "glasses").double().numpy()
    assert abs((glasses_delta * age).sum()) < 1e-4
    assert (glasses_delta * glasses).sum() > 0.1
    # total edit has no component along 'age'
    moved = (engine.edited_ws(state).double().numpy() - lat.ws) * age
    assert abs(moved.sum()) < 1e-3


def test_locks_on_mean_difference_sliders_remove_the_partners_mean_difference():
    """A partial or meandiff slider with a partner locked moves orthogonally to the partner's mean difference (the
    direction the generator follows); other methods lock along the partner's direction of their own method."""
    G = tiny_generator()
    rng = np.random.default_rng(11)
    dirs = {(a, m): Direction(a, rng.standard_normal(G.w_dim), method=m)
            for a in ("smile", "age") for m in ("partial", "meandiff", "svm")}
    eng = Engine(G, EditBank(tuple(dirs.values())))
    lat = eng.sample(3)
    for method, lock_method in (("partial", "meandiff"), ("meandiff", "meandiff"), ("svm", "svm")):
        state = EditState.create(lat, {"smile": 2.0}, method=method, locked=["age"])
        delta = eng.direction_delta(state, "smile").double().numpy()[0]
        assert abs(delta @ dirs[("age", lock_method)].unit(eng.num_ws, eng.w_dim)[0]) < 1e-6
        other = "partial" if lock_method != "partial" else "svm"
        assert abs(delta @ dirs[("age", other)].unit(eng.num_ws, eng.w_dim)[0]) > 1e-3


def test_engine_edit_equals_bank_apply_edit():
    """The engine's cached deltas give the same codes as editor.bank.apply_edit (W and W+ entries, several locks)."""
    from editor.bank import Bank, BankEntry, GeneratorInfo, apply_edit, to_engine_bank
    from editor.directions import Space

    G = tiny_generator()
    rng = np.random.default_rng(5)
    entries = (
        BankEntry("smile", "svm", Space("w"), rng.standard_normal((1, G.w_dim)), sigma=1.5),
        BankEntry("age", "svm", Space("w"), rng.standard_normal((1, G.w_dim)), sigma=0.7),
        BankEntry("pose", "svm", Space("w+", 0, 4), rng.standard_normal((G.num_ws, G.w_dim)), sigma=2.0),
        BankEntry("hair", "svm", Space("w+", 2, 6), rng.standard_normal((1, G.w_dim)), sigma=1.1),
    )
    bank = Bank(GeneratorInfo("tiny", G.z_dim, G.w_dim, G.num_ws), entries)
    engine = Engine(G, to_engine_bank(bank))
    lat = engine.sample(2)
    alphas = {"smile": 1.3, "pose": -0.8, "hair": 2.0}
    for locked in ((), ("age",), ("age", "hair"), ("age", "pose")):
        state = EditState.create(lat, alphas, locked=locked)
        want = apply_edit(lat.ws[None], [(bank.find(a), v) for a, v in alphas.items()],
                          locked=[bank.find(n) for n in locked])[0]
        np.testing.assert_allclose(engine.edited_ws(state).numpy(), want, atol=1e-5)
    with pytest.raises(ValueError, match="span of the locked"):
        Engine(G, EditBank((Direction("a", np.ones(G.w_dim)), Direction("b", 2 * np.ones(G.w_dim))))).edited_ws(
            EditState.create(lat, {"a": 1.0}, locked=["b"]))


def test_wplus_layer_range_only_touches_those_layers(engine):
    lat = engine.sample(8)
    layers = layer_preset("middle", engine.num_ws)
    state = EditState.create(lat, {"age": 2.0}, space="w+", layers=layers)
    moved = np.abs(engine.edited_ws(state).numpy() - lat.ws).sum(axis=1)
    lo, hi = layers
    assert (moved[lo:hi] > 0).all()
    assert (moved[:lo] == 0).all() and (moved[hi:] == 0).all()
    # the W+ direction of 'smile' (method 'pca') is used when asked for
    d = engine.bank.find("smile", "pca", "w+")
    assert d.space == "w+" and d.vector.shape == (engine.num_ws, engine.w_dim)


def test_direction_own_layers_are_respected():
    G = tiny_generator()
    rng = np.random.default_rng(3)
    bank = EditBank((Direction("pose", rng.standard_normal(G.w_dim), space="w+", layers=(0, 2)),
                     Direction("hair", rng.standard_normal(G.w_dim), space="w+", layers=(4, 6))))
    engine = Engine(G, bank)
    lat = engine.sample(0)
    moved = np.abs(engine.edited_ws(EditState.create(lat, {"pose": 1.0})).numpy() - lat.ws).sum(axis=1)
    assert (moved[:2] > 0).all() and (moved[2:] == 0).all()
    with pytest.raises(ValueError, match="outside the chosen layer range"):
        engine.edited_ws(EditState.create(lat, {"pose": 1.0}, space="w+", layers=(4, 8)))
    # locking a direction that acts on other layers removes nothing
    free = engine.direction_delta(EditState.create(lat), "pose")
    locked = engine.direction_delta(EditState.create(lat, locked=["hair"]), "pose")
    assert torch.equal(free, locked)


def test_layer_presets():
    assert layer_preset("coarse", 18) == (0, 4)
    assert layer_preset("middle", 18) == (4, 8)
    assert layer_preset("fine", 18) == (8, 18)
    assert layer_preset("all", 8) == (0, 8)
    assert layer_preset("fine", 8) == (7, 8)  # a small generator still gets a non-empty range
    assert layer_preset("custom", 18, (2, 5)) == (2, 5)
    with pytest.raises(ValueError, match="custom layer range"):
        layer_preset("custom", 18, (5, 2))
    with pytest.raises(ValueError, match="layer range must be one of"):
        layer_preset("medium", 18)


def test_progressive_preview_resolution(engine):
    state = EditState.create(engine.sample(9), {"smile": 1.0})
    assert engine.render(state, preview=True).shape == (16, 16, 3)
    assert engine.render(state).shape == (32, 32, 3)


def test_preview_budget_calibration():
    from editor.stylegan2 import build_generator

    G = build_generator("toon-128")  # 128 px: preview candidates 128 (full), 64 and 32
    bank = synthetic_bank(G.num_ws, G.w_dim)
    assert Engine(G, bank, config=EngineConfig(preview_budget_s=60.0)).preview_resolution == 128
    assert Engine(G, bank, config=EngineConfig(preview_budget_s=0.0)).preview_resolution == 32  # smallest allowed
    assert Engine(G, bank).preview_resolution == 128  # no budget: small generators preview in full
    assert Engine(G, bank, config=EngineConfig(preview_resolution=64)).preview_resolution == 64


def test_bad_slider_values(engine):
    lat = engine.sample(1)
    for bad in (float("nan"), float("inf"), -float("inf"), 1e9, "abc", None):
        with pytest.raises(ValueError, match="slider 'smile'"):
            EditState.create(lat, {"smile": bad})
    with pytest.raises(ValueError, match="unknown attribute 'wings'"):
        engine.render(EditState.create(lat, {"wings": 1.0}))
    with pytest.raises(ValueError, match="cannot lock unknown"):
        engine.render(EditState.create(lat, locked=["wings"]))
    with pytest.raises(ValueError, match="seed"):
        engine.sample(-1)
    with pytest.raises(ValueError, match="psi"):
        engine.sample(1, float("nan"))


def test_bank_that_does_not_fit():
    G = tiny_generator()
    bad = EditBank((Direction("smile", np.ones(G.w_dim + 1)),), bank_id="bad")
    with pytest.raises(ValueError, match="direction 'smile' has shape"):
        Engine(G, bad)
    with pytest.raises(ValueError, match="sigma"):
        EditBank((Direction("smile", np.ones(4), sigma=float("nan")),))


def test_latent_shapes(engine):
    w = np.random.default_rng(0).standard_normal(engine.w_dim)
    lat = engine.latent_from_array(w)
    assert lat.ws.shape == (engine.num_ws, engine.w_dim) and lat.kind == "w"
    plus = np.random.default_rng(1).standard_normal((engine.num_ws, engine.w_dim))
    assert engine.latent_from_array(plus).kind == "w+"
    with pytest.raises(ValueError, match="latent has shape"):
        engine.latent_from_array(np.zeros(engine.w_dim + 2))
    with pytest.raises(ValueError, match="NaN"):
        engine.latent_from_array(np.full(engine.w_dim, np.nan))


def test_strips_and_interpolation_batched(engine):
    state = EditState.create(engine.sample(2), {"age": 1.0})
    frames = engine.slider_walk(state, "smile", -2, 2, steps=5)
    assert len(frames) == 5 and frames[0].shape == (32, 32, 3)
    # the middle frame (smile = 0) equals the single render of the state
    assert np.abs(frames[2].astype(int) - engine.render(state).astype(int)).max() <= 1
    a, b = engine.sample(10), engine.sample(11)
    w_frames = engine.interpolate(a, b, steps=3, mode="w")
    z_frames = engine.interpolate(a, b, steps=3, mode="z")
    assert len(w_frames) == len(z_frames) == 3
    assert np.abs(w_frames[0].astype(int) - engine.render(EditState.create(a)).astype(int)).max() <= 1
    mixed = engine.style_mix(a, b, (0, 4))
    np.testing.assert_array_equal(mixed.ws[:4], b.ws[:4])
    np.testing.assert_array_equal(mixed.ws[4:], a.ws[4:])
    with pytest.raises(ValueError, match="Z interpolation needs two sampled"):
        engine.interpolate(mixed, b, steps=3, mode="z")


def test_slerp_endpoints():
    a, b = np.array([1.0, 0.0]), np.array([0.0, 2.0])
    out = slerp(a, b, np.array([0.0, 1.0]))
    np.testing.assert_allclose(out, [a, b], atol=1e-12)


def test_byte_lru_bound():
    lru = ByteLRU(max_bytes=1000)
    for i in range(10):
        lru.put(i, np.zeros(200, np.uint8))
    assert lru.nbytes <= 1000 and len(lru) == 5
    assert lru.get(0) is None and lru.get(9) is not None
    lru.put("big", np.zeros(2000, np.uint8))  # larger than the bound: not kept
    assert lru.get("big") is None
    latent = tiny_engine().sample(0)
    assert ByteLRU._nbytes(latent) >= latent.ws.nbytes  # cached latents count their codes


def test_concurrent_renders_match_serial(engine):
    states = [EditState.create(engine.sample(20 + i % 3), {"smile": 0.5 * i}) for i in range(8)]
    engine.clear_caches()
    expected = [engine.render(s).copy() for s in states]
    engine.clear_caches()
    results = [None] * len(states)

    def work(i):
        results[i] = engine.render(states[i], preview=bool(i % 2))
        results[i] = engine.render(states[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(states))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got, want in zip(results, expected):
        assert np.array_equal(got, want)


def test_add_directions_at_run_time():
    engine = tiny_engine()
    lat = engine.sample(4)
    old = engine.render(EditState.create(lat, {"smile": 1.0}))
    rng = np.random.default_rng(9)
    engine.add_directions([Direction("freckles", rng.standard_normal(engine.w_dim), sigma=0.5, method="lda")])
    assert "freckles" in engine.bank.attributes
    assert not np.array_equal(engine.render(EditState.create(lat, {"freckles": 2.0})), engine.render(
        EditState.create(lat)))
    replacement = Direction("smile", rng.standard_normal(engine.w_dim), method="svm")
    with pytest.raises(ValueError, match="already has smile/svm/w"):
        engine.add_directions([replacement])
    engine.add_directions([replacement], replace_existing=True)
    assert not np.array_equal(engine.render(EditState.create(lat, {"smile": 1.0})), old)
    with pytest.raises(ValueError, match="has shape"):
        engine.add_directions([Direction("bad", np.ones(3))])


def build_bank_like(num_ws: int, w_dim: int) -> EditBank:
    """A bank shaped like build-bank's: per attribute and method a W direction and W+ directions fitted on the
    coarse, middle and fine layers; unlabelled components with method 'pca' only."""
    rng = np.random.default_rng(4)
    dirs = []
    for name, methods in (("smiling", ("svm", "logreg")), ("age", ("svm", "logreg")), ("pc0", ("pca",))):
        for m in methods:
            dirs.append(Direction(name, rng.standard_normal(w_dim), method=m, space="w"))
            for preset in ("coarse", "middle", "fine"):
                dirs.append(Direction(name, rng.standard_normal((num_ws, w_dim)), method=m, space="w+",
                                      layers=layer_preset(preset, num_ws)))
    return EditBank(tuple(dirs))


def test_every_preset_works_for_every_slider_and_methods_are_never_swapped():
    G = tiny_generator()
    engine = Engine(G, build_bank_like(G.num_ws, G.w_dim))
    lat = engine.sample(1)
    for preset in ("coarse", "middle", "fine"):
        layers = layer_preset(preset, engine.num_ws)
        for name in engine.bank.attributes:
            assert engine.slider_problem(name, None, "w+", layers) is None
        state = EditState.create(lat, {"smiling": 2.0, "pc0": 1.0}, space="w+", layers=layers, locked=["age"])
        d = engine.choose(state, "smiling")
        assert (d.method, d.space, d.layers) == ("svm", "w+", layers)  # the direction fitted on those layers
        moved = np.abs(engine.edited_ws(state).numpy() - lat.ws).sum(axis=1)
        assert (moved[layers[0]:layers[1]] > 0).all() and moved[:layers[0]].sum() == moved[layers[1]:].sum() == 0
    # a custom range no direction was fitted on: the W direction, applied on those layers
    assert engine.choose(EditState.create(lat, space="w+", layers=(2, 6)), "age").space == "w"
    # a method the slider does not have is an error that says which it has, never another method's direction
    assert "has no 'pca' direction (it has: svm, logreg)" in engine.slider_problem("smiling", "pca")
    assert "has no 'svm' direction" in engine.slider_problem("pc0", "svm")
    with pytest.raises(ValueError, match="no 'pca' direction"):
        engine.render(EditState.create(lat, {"smiling": 1.0}, method="pca"))
    assert engine.choose(EditState.create(lat, method="logreg"), "smiling").method == "logreg"
    # a lock keeps its attribute with the best direction it has when it lacks the chosen method
    locked = EditState.create(lat, {"pc0": 1.0}, method="pca", locked=["smiling"])
    assert abs(engine.direction_delta(locked, "pc0").double().numpy()[0]
               @ engine.choose(EditState.create(lat), "smiling").unit(engine.num_ws, engine.w_dim)[0]) < 1e-4


def test_slider_problem_names_the_layers_a_direction_acts_on():
    G = tiny_generator()
    rng = np.random.default_rng(3)
    engine = Engine(G, EditBank((Direction("pose", rng.standard_normal(G.w_dim), space="w+", layers=(0, 2)),)))
    assert engine.slider_problem("pose") is None  # W: it acts on its own layers
    assert engine.slider_problem("pose", None, "w+", (0, 4)) is None
    problem = engine.slider_problem("pose", None, "w+", (4, 8))
    assert "acts only on layers 0-1" in problem and "4-7" in problem


# ----------------------------------------------------------------------------------------------------------------
# Speed paths: resuming after unchanged blocks, bfloat16 previews, one sample at a time on a CPU


def test_w_plus_edit_resumes_after_unchanged_blocks():
    engine = tiny_engine(preview_dtype="float32")
    plain = tiny_engine(preview_dtype="float32", use_style_cache=False)  # renders every block from ws
    assert engine._can_resume and not plain._can_resume
    lo = engine._layer_index["b16.conv1"]  # blocks 4 and 8 read only earlier codes
    for layers, resumed in (((lo, engine.num_ws), True), ((0, engine.num_ws), False)):
        state = EditState.create(engine.sample(11), {"smile": 2.0, "age": -1.0}, space="w+", layers=layers)
        before = len(engine._prefixes)
        frame = engine.render(state)
        assert len(engine._prefixes) == before + int(resumed)
        other = plain.render(EditState.create(plain.sample(11), {"smile": 2.0, "age": -1.0}, space="w+",
                                              layers=layers))
        assert np.abs(frame.astype(int) - other.astype(int)).max() <= 1
    # a second edit of the same latent and range reuses the cached blocks: same result as a fresh engine
    state = EditState.create(engine.sample(11), {"smile": -1.5}, space="w+", layers=(lo, engine.num_ws))
    hits = engine._prefixes.hits
    again = engine.render(state)
    assert engine._prefixes.hits == hits + 1
    fresh = tiny_engine(preview_dtype="float32")
    assert np.array_equal(again, fresh.render(EditState.create(fresh.sample(11), {"smile": -1.5}, space="w+",
                                                               layers=(lo, fresh.num_ws))))


def test_bfloat16_previews_are_close_and_full_renders_exact():
    bf = tiny_engine(preview_dtype="bfloat16")
    fp = tiny_engine(preview_dtype="float32")
    assert bf.preview_dtype == torch.bfloat16 and fp.preview_dtype is None
    for seed in (1, 2, 3):
        a = EditState.create(bf.sample(seed), {"smile": 1.0})
        b = EditState.create(fp.sample(seed), {"smile": 1.0})
        diff = np.abs(bf.render(a, preview=True).astype(int) - fp.render(b, preview=True).astype(int))
        assert diff.mean() < 3 and diff.max() < 40  # approximate (tiny random net: large activations)
        assert np.array_equal(bf.render(a), fp.render(b))  # full renders stay float32
    with pytest.raises(ValueError, match="preview_dtype"):
        tiny_engine(preview_dtype="float16")


def test_batches_render_one_sample_at_a_time_on_cpu(engine):
    assert engine._fast
    ws = torch.stack([torch.from_numpy(np.array(engine.sample(s).ws)) for s in (1, 2, 3)])
    frames = engine.render_ws(ws)
    with torch.no_grad():
        batched = engine.G.synthesis(ws, noise_mode="const")  # the reference path (grouped convolution)
    expected = ((batched * 127.5 + 128).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)).numpy()
    assert np.abs(np.stack(frames).astype(int) - expected.astype(int)).max() <= 1


def test_keep_freed_memory_reports_whether_applied():
    from editor.memory import keep_freed_memory

    assert isinstance(keep_freed_memory(), bool)  # True with glibc (Linux), False elsewhere; idempotent


def test_render_threads_for_small_generators_and_restored(engine):
    assert engine.render_threads == 1  # 32 px: one thread per render
    before = torch.get_num_threads()
    engine.render(EditState.create(engine.sample(21), {"age": 0.7}))
    assert torch.get_num_threads() == before
    assert tiny_engine(render_threads=2).render_threads == 2


def test_fifo_lock_serves_waiters_in_arrival_order():
    from editor.engine import FifoLock

    lock, order, started = FifoLock(), [], []
    lock.acquire()  # held: every thread below queues up

    def waiter(i):
        started.append(i)
        with lock:
            order.append(i)

    threads = []
    for i in range(6):
        t = threading.Thread(target=waiter, args=(i,))
        t.start()
        threads.append(t)
        while len(lock._waiters) < i + 1:  # wait until thread i is queued before starting the next
            threading.Event().wait(0.001)
    assert lock.locked()
    lock.release()
    for t in threads:
        t.join(timeout=10)
    assert order == list(range(6))
    assert not lock.locked()
    with pytest.raises(RuntimeError):
        lock.release()


def test_render_process_gives_the_same_images_and_falls_back_when_it_dies():
    """EngineConfig.render_process: the child's frames equal in-process renders (W, W+ resuming after unchanged
    blocks, bf16 previews, batches); when the child dies, the engine renders in its own process."""
    local = tiny_engine(preview_dtype="bfloat16")
    remote = tiny_engine(preview_dtype="bfloat16", render_process=True)
    try:
        assert remote._worker is not None and remote._worker.alive and local._worker is None
        lo = local._layer_index["b16.conv1"]
        states = [
            lambda e: EditState.create(e.sample(3), {"smile": 1.5, "age": -0.5}),
            lambda e: EditState.create(e.sample(3), {"smile": 2.0}, space="w+", layers=(lo, e.num_ws)),
            lambda e: EditState.create(e.sample(3), {"smile": -1.0}, space="w+", layers=(lo, e.num_ws)),
        ]
        for make in states:
            for preview in (False, True):
                assert np.array_equal(local.render(make(local), preview=True if preview else False),
                                      remote.render(make(remote), preview=preview))
        assert len(remote._prefixes) == 0  # the child keeps the resumed blocks, not the server
        latents = [local.sample(s) for s in (1, 2)]
        for a, b in zip(local.thumbnails(latents), remote.thumbnails([remote.sample(s) for s in (1, 2)])):
            assert np.array_equal(a, b)
        remote._worker._proc.kill()
        remote._worker._proc.join(timeout=10)
        state = EditState.create(remote.sample(4), {"age": 1.25})
        assert np.array_equal(remote.render(state), local.render(EditState.create(local.sample(4), {"age": 1.25})))
        assert not remote._worker.alive
    finally:
        remote.close()
