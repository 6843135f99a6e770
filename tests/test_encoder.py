"""The photo encoder: network, files bound to their generator, training, the photo pipeline with it, paste-back."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from editor.checkpoints import load_generator, model_id
from editor.encoder import Encoder, EncoderConfig, EncoderError, layer_groups, load_encoder, save_encoder
from editor.train.encoder import EncoderTrainConfig, EncoderTrainer, evaluate_encoder, run_train_encoder

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = dict(resolution=32, group_dim=64, reduce_dim=16)


@pytest.fixture(scope="module")
def G():
    return load_generator("random:small:3")


def _config(G) -> EncoderConfig:
    return EncoderConfig(num_ws=G.num_ws, w_dim=G.w_dim, **SMALL)


def test_layer_groups_cover_every_row_once():
    for n in (1, 3, 6, 12, 14, 18):
        rows = [i for g in layer_groups(n) for i in g]
        assert rows == list(range(n))
    assert [len(g) for g in layer_groups(18)] == [4, 4, 10]


def test_encoder_starts_at_the_mean_face_and_keeps_row_zero_offset_free(G):
    w_avg = torch.randn(G.w_dim)
    enc = Encoder(_config(G), w_avg)
    ws, delta = enc(torch.rand(3, 3, 64, 64) * 2 - 1, return_deltas=True)  # resized to 32 inside
    assert ws.shape == (3, G.num_ws, G.w_dim)
    assert torch.all(delta[:, 0] == 0)
    assert (ws - w_avg).abs().max() < 0.5  # heads start near zero: the mean face


def test_encoder_file_round_trip_and_binding_to_its_generator(G, tmp_path):
    enc = Encoder(_config(G), torch.randn(G.w_dim))
    path = save_encoder(enc, tmp_path / "encoder.safetensors", model_id(G), {"images_seen": 5}, half=True)
    back = load_encoder(path, G)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert torch.allclose(back(x), enc(x), atol=2e-2)  # float16 weights
    assert back.meta["facts"]["images_seen"] == 5
    with pytest.raises(EncoderError, match="trained for generator"):
        load_encoder(path, load_generator("random:small:4"))
    (tmp_path / "junk.safetensors").write_bytes(b"not a file")
    with pytest.raises(EncoderError, match="not a readable encoder"):
        load_encoder(tmp_path / "junk.safetensors")


def test_training_steps_lower_the_loss(G):
    cfg = EncoderTrainConfig(batch=16, lr=2e-3, pool=64, refresh=4, image_batch=2, bf16=False)
    trainer = EncoderTrainer(G, cfg, encoder_config=_config(G))
    trainer.batch()  # fills the pool
    ws, images = trainer.pool_ws[:32].clone(), trainer.pool_images[:32].float()

    def loss() -> float:
        with torch.no_grad():
            return float(trainer.losses(ws, images)["total"])

    before = loss()
    for _ in range(40):
        values = trainer.step()
    assert set(values) == {"latent", "delta", "image", "total"}
    assert loss() < 0.8 * before
    assert trainer.images_seen == 40 * 16
    metrics = evaluate_encoder(G, trainer.encoder, n=8, w_var=trainer.w_var)
    assert metrics["n"] == 8 and np.isfinite(metrics["psnr"]) and metrics["latent_rmse_sigma"] > 0


def test_run_resumes_and_exports(G, tmp_path):
    cfg = EncoderTrainConfig(batch=8, pool=16, refresh=2, image_batch=1, bf16=False)
    gid = model_id(G)
    run_train_encoder(G, tmp_path / "run", cfg, generator_id=gid, kimg=0.016, log=lambda m: None)
    run_train_encoder(G, tmp_path / "run", cfg, generator_id=gid, resume=True, kimg=0.032, log=lambda m: None)
    enc = load_encoder(tmp_path / "run" / "encoder.safetensors", G)
    assert enc.meta["facts"]["images_seen"] == 32
    assert len((tmp_path / "run" / "eval.jsonl").read_text().splitlines()) == 2
    with pytest.raises(ValueError, match="not other"):
        run_train_encoder(G, tmp_path / "run", cfg, generator_id="other", resume=True, kimg=1, log=lambda m: None)


def test_photo_share_needs_the_toon_world(G):
    with pytest.raises(ValueError, match="toon world"):
        EncoderTrainer(G, EncoderTrainConfig(photo_share=0.5), encoder_config=_config(G))


def test_toon_world_photos_are_aligned_faces_with_known_latents():
    from editor.toonlatent import LatentWorld

    world = LatentWorld(128)
    z = np.random.RandomState(0).randn(2, 128)
    photos = world.aligned_photos(z, 64)
    portraits = world.render(z, 64)
    assert photos.shape == portraits.shape == (2, 64, 64, 3) and photos.dtype == np.uint8
    # the same face: the aligned photo is much closer to its own portrait than to the other one's
    d = lambda a, b: np.abs(a.astype(float) - b.astype(float))[16:48, 16:48].mean()  # noqa: E731 (face centre)
    assert d(photos[0], portraits[0]) < d(photos[0], portraits[1])


def test_photo_projector_with_an_encoder_encodes_then_refines(G):
    from dataclasses import replace

    from editor.projection import REFINE, PhotoProjector

    enc = Encoder(_config(G), G.mapping.w_avg)

    class Finder:  # the whole image is the face
        def detect(self, image):
            raise AssertionError("not used by invert")

    proj = PhotoProjector(G, "random:small", landmarker=Finder(), encoder=enc,
                          refine=replace(REFINE, steps=3, perceptual="none", w_avg_samples=100))
    proj.config = replace(proj.config, w_avg_samples=100)
    proj.warm_up()  # what the app does at start-up: the first photo then finds the mean w ready
    assert proj._w_stats is not None
    messages = []
    with torch.no_grad():
        target = (G.synthesis(G.mapping(torch.randn(1, G.z_dim), None), noise_mode="const")[0] * 127.5 + 128) \
            .clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    ws, recon = proj.invert(target, lambda f, m: messages.append(m))
    assert ws.shape == (1, G.num_ws, G.w_dim) and recon.shape == target.shape
    assert messages[0] == "encoding" and messages[-1] == "refining: step 3/3"
    proj.refine = None
    ws2, _ = proj.invert(target)
    assert torch.allclose(ws2, enc(torch.from_numpy(target).permute(2, 0, 1)[None].float() / 127.5 - 1), atol=1e-5)


def test_bundled_encoder_is_used_only_for_its_generator(G, tmp_path):
    from editor.checkpoints import save_generator
    from editor.projection import _bundled_encoder

    ckpt = save_generator(G, tmp_path / "model")
    save_encoder(Encoder(_config(G)), ckpt / "encoder.safetensors", model_id(G))
    assert _bundled_encoder(G, str(ckpt), "cpu") is not None
    assert _bundled_encoder(load_generator("random:small:9"), str(ckpt), "cpu") is None  # other weights: ignored
    assert _bundled_encoder(G, "random:small", "cpu") is None


def test_human_photo_on_the_toon_model_says_what_to_do():
    from editor.align import NoFaceError, ToonLandmarker
    from editor.projection import PhotoProjector

    G = load_generator("random:toon-64")
    proj = PhotoProjector(G, "random:toon-64", encoder=None)
    assert isinstance(proj.landmarker, ToonLandmarker)
    photo = np.full((200, 200, 3), 128, np.uint8)  # nothing toon-like in it
    with pytest.raises(NoFaceError, match="FFHQ model"):
        proj(photo)


def test_paste_back_with_the_reconstruction_pastes_only_the_edit():
    from editor import toonfaces
    from editor.align import align_face, paste_back

    r = toonfaces.render(5, 256, "photo")
    aligned = align_face(r.image, r.landmarks, 64)
    recon = np.clip(aligned.image.astype(int) + 20, 0, 255).astype(np.uint8)  # a reconstruction with an error
    same = paste_back(r.image, aligned, recon, reference=recon)
    assert np.array_equal(same, r.image)  # no edit: the photo, untouched (no seam, no blur, no colour shift)
    edited = recon.copy()
    edited[24:40, 24:40] = 255  # an edit in the face
    out = paste_back(r.image, aligned, edited, reference=recon)
    changed = np.abs(out.astype(int) - r.image.astype(int)).sum(axis=2) > 10
    assert changed.any()
    ys, xs = np.nonzero(changed)
    quad = aligned.quad
    assert quad[:, 0].min() - 2 <= xs.min() and xs.max() <= quad[:, 0].max() + 2
    with pytest.raises(ValueError, match="differ in size"):
        paste_back(r.image, aligned, edited, reference=recon[:32, :32])


def test_project_command_starts_from_the_bundled_encoder(G, tmp_path):
    import json

    from PIL import Image

    from editor.checkpoints import save_generator
    from editor.commands import main

    ckpt = save_generator(G, tmp_path / "model")
    save_encoder(Encoder(_config(G), G.mapping.w_avg), ckpt / "encoder.safetensors", model_id(G))
    crop = tmp_path / "crop.png"
    Image.fromarray(np.full((32, 32, 3), 90, np.uint8)).save(crop)
    args = ["project", str(crop), "--no-align", "--model", str(ckpt), "--steps", "2", "--perceptual", "none",
            "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    summary = json.loads((tmp_path / "a" / "projection.json").read_text())
    assert summary["preset"] == "refine" and summary["encoder"] is True and summary["steps"] == 2
    assert main([*args, "--encoder", "none", "--out", str(tmp_path / "b")]) == 0
    assert json.loads((tmp_path / "b" / "projection.json").read_text())["preset"] == "default"
    assert main([*args, "--encoder", "none", "--preset", "refine", "--out", str(tmp_path / "c")]) == 1


def test_a_new_run_can_start_from_an_exported_encoder(G, tmp_path):
    cfg = EncoderTrainConfig(batch=8, pool=16, refresh=2, image_batch=1, bf16=False)
    gid = model_id(G)
    first = load_encoder(run_train_encoder(G, tmp_path / "a", cfg, generator_id=gid, kimg=0.016, log=lambda m: None),
                         G)
    exported = save_encoder(first, tmp_path / "exported.safetensors", gid, first.meta["facts"], half=True)
    start = load_encoder(exported, G)
    run_train_encoder(G, tmp_path / "b", cfg, generator_id=gid, init=start, kimg=0.024, log=lambda m: None)
    assert load_encoder(tmp_path / "b" / "encoder.safetensors", G).meta["facts"]["images_seen"] == 24


def test_init_warm_starts_from_an_encoder_of_other_weights(G, tmp_path):
    """`train-encoder --init` takes an encoder trained for other weights of the same architecture (an earlier snapshot
    of the generator); the new run and its export are bound to the new weights, and the old file stays refused."""
    from editor.commands import main

    other = load_generator("random:small:4")
    old = save_encoder(Encoder(_config(other), other.mapping.w_avg), tmp_path / "old.safetensors", model_id(other))
    out = tmp_path / "run"
    args = ["train-encoder", "--model", "random:small:3", "--out", str(out), "--resolution", "32", "--batch", "8",
            "--pool", "16", "--refresh", "2", "--image-batch", "1", "--fp32", "--device", "cpu"]
    assert main([*args, "--init", str(old), "--kimg", "0.016"]) == 0
    assert main([*args, "--export", str(tmp_path / "new.safetensors")]) == 0
    new = load_encoder(tmp_path / "new.safetensors", G)
    assert new.meta["generator_model_id"] == model_id(G) and new.config == _config(other)
    with pytest.raises(EncoderError, match="was trained for generator"):
        load_encoder(old, G)
