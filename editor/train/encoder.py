"""Train an encoder (``editor.encoder``) for any generator from the generator's own samples: no data set needed.

Training draws from a pool of samples with known latents. Each sample is a latent (with style mixing, so the
encoder sees W+ codes that are not one w repeated) and the generator's image of it, rendered without gradients.
Each step replaces ``refresh`` random samples of the pool with new ones, so every sample is seen a few times and
the generator's forward pass does not dominate a CPU run. Checkpoints distilled from the toon world
(``LatentWorld.for_model``) can also put aligned toon *photos* of T(z) in the pool (``photo_share``), with the
latent of z as the target: these are what a user uploads, sharper than the generator's own samples and with a room
behind the head. The losses:

* latent: the squared error of the predicted W+ against the true one, in units of W's variance. This one is cheap,
  since no gradient flows through the generator.
* image: L1 at three scales between G(predicted W+) and the sample. The gradient flows through the frozen
  generator to the latent.
* offsets: the squared per-layer offsets from the encoder's base w (e4e's delta regulariser). It keeps codes near W,
  where edits behave.

The run directory holds encoder_config.json, encoder_state.pt (resume: the encoder, Adam and the random state; the
pool is redrawn), log.jsonl, eval.jsonl (held-out latent error and PSNR) and encoder.safetensors (the float32
encoder of the latest snapshot).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from editor.encoder import Encoder, EncoderConfig, save_encoder
from editor.projection import w_statistics
from editor.train.loop import save_atomic

__all__ = ["EncoderTrainConfig", "EncoderTrainer", "run_train_encoder", "evaluate_encoder"]

STATE_FILE = "encoder_state.pt"
CONFIG_FILE = "encoder_config.json"
HELD_OUT_SEED = 2_000_003  # held-out latents: numpy RandomState(HELD_OUT_SEED)


@dataclass(frozen=True)
class EncoderTrainConfig:
    batch: int = 16
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.99)
    latent_weight: float = 1.0
    image_weight: float = 1.0
    delta_weight: float = 0.02
    mix_prob: float = 0.5  # share of samples whose W+ switches to a second w at a random layer
    pool: int = 2048  # samples kept for training
    refresh: int = 4  # pool samples replaced by new ones each step
    photo_share: float = 0.0  # share of new samples that are aligned photos of the toon world (distilled models)
    align_jitter: float = 0.0  # landmark noise of those photos' alignment, in eye distances (a face finder's error)
    image_batch: int = 4  # samples of each batch that also get the image loss (it costs a generator backward)
    resolution: int = 128  # encoder input side
    bf16: bool = True  # bfloat16 autocast for the generator and the encoder (CPU and CUDA)
    seed: int = 0


def _w_statistics(G) -> tuple[torch.Tensor, float]:
    """Mean w [w_dim] and the mean per-dimension variance of W (``projection.w_statistics`` on 10,000 samples)."""
    mean, sigma = w_statistics(G, 10_000, seed=1, device=G.mapping.w_avg.device)
    return mean[0].cpu(), sigma ** 2 / G.w_dim


def _multiscale_l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    loss = (a - b).abs().mean()
    for _ in range(2):
        a, b = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
        loss = loss + (a - b).abs().mean()
    return loss / 3


class EncoderTrainer:
    """One encoder being trained for one frozen generator."""

    def __init__(self, G, cfg: EncoderTrainConfig, device="cpu", encoder_config: EncoderConfig | None = None,
                 world=None):
        if cfg.photo_share > 0 and world is None:
            raise ValueError("photo_share > 0 needs the toon world the generator was distilled from")
        self.G = G.eval().requires_grad_(False).to(device)
        self.world = world
        self.cfg = cfg
        self.device = torch.device(device)
        w_avg, self.w_var = _w_statistics(G)
        self.encoder_config = encoder_config or EncoderConfig(num_ws=G.num_ws, w_dim=G.w_dim,
                                                              resolution=min(cfg.resolution, G.img_resolution))
        self.encoder = Encoder(self.encoder_config, w_avg).to(self.device)
        self.opt = torch.optim.Adam(self.encoder.parameters(), lr=cfg.lr, betas=cfg.betas)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.step_count = 0
        self.images_seen = 0
        self.seconds = 0.0
        self.pool_ws: torch.Tensor | None = None  # [pool, num_ws, w_dim] float32
        self.pool_images: torch.Tensor | None = None  # [pool, 3, R, R] float16 at the encoder's resolution

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.bf16)

    def sample(self, n: int, gen: torch.Generator, mix_prob: float,
               photo_share: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
        """(ws [n, num_ws, w_dim] float32, images [n, 3, r, r] float32 in [-1, 1] at the encoder's resolution r):
        generated samples, and toon-world photos for a ``photo_share`` of them."""
        G = self.G
        z = torch.randn([2 * n, G.z_dim], generator=gen)
        mix = torch.rand([n], generator=gen) < mix_prob
        cut = torch.randint(1, G.num_ws, [n], generator=gen)
        photo = torch.rand([n], generator=gen) < photo_share
        r = self.encoder_config.resolution
        with torch.no_grad():
            w = G.mapping(z.to(self.device), None).float()  # [2n, num_ws, w_dim]
            rows = torch.arange(G.num_ws)[None]  # [1, num_ws]
            second = (mix & ~photo)[:, None] & (rows >= cut[:, None])  # [n, num_ws]; photos keep one w
            ws = torch.where(second[..., None].to(self.device), w[n:], w[:n])
            images = torch.empty([n, 3, r, r])
            gen_rows = (~photo).nonzero().flatten()
            if len(gen_rows):
                with self._autocast():
                    img = G.synthesis(ws[gen_rows], noise_mode="const").float()
                if img.shape[-1] != r:
                    img = F.interpolate(img, size=(r, r), mode="area")
                images[gen_rows] = img.cpu().clamp(-1, 1)
            photo_rows = photo.nonzero().flatten()
            if len(photo_rows):
                seed = int(torch.randint(0, 2**31 - 1, [1], generator=gen))
                u8 = self.world.aligned_photos(z[photo_rows].double().numpy(), r, jitter=self.cfg.align_jitter,
                                               rng=np.random.default_rng(seed))  # [k, r, r, 3]
                images[photo_rows] = torch.from_numpy(u8).permute(0, 3, 1, 2).float() / 127.5 - 1
        return ws, images.to(self.device)

    def _fill_pool(self) -> None:
        cfg = self.cfg
        chunks = [self.sample(min(64, cfg.pool - i), self.gen, cfg.mix_prob, cfg.photo_share)
                  for i in range(0, cfg.pool, 64)]
        self.pool_ws = torch.cat([c[0] for c in chunks])
        self.pool_images = torch.cat([c[1] for c in chunks]).half()

    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Refresh ``refresh`` pool slots with new samples, then draw a batch from the pool."""
        cfg = self.cfg
        if self.pool_ws is None:
            self._fill_pool()
        if cfg.refresh:
            ws, images = self.sample(cfg.refresh, self.gen, cfg.mix_prob, cfg.photo_share)
            slots = torch.randint(0, cfg.pool, [cfg.refresh], generator=self.gen)
            self.pool_ws[slots], self.pool_images[slots] = ws, images.half()
        pick = torch.randint(0, cfg.pool, [cfg.batch], generator=self.gen)
        return self.pool_ws[pick], self.pool_images[pick].float()

    def losses(self, ws: torch.Tensor, images: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        with self._autocast():
            pred, delta = self.encoder(images, return_deltas=True)
            pred, delta = pred.float(), delta.float()
            out = {"latent": (pred - ws).square().mean() / self.w_var,
                   "delta": delta[:, 1:].square().mean() / self.w_var}
            if cfg.image_weight > 0 and cfg.image_batch > 0:
                k = min(cfg.image_batch, len(pred))
                recon = self.G.synthesis(pred[:k], noise_mode="const").float()
                if recon.shape[-1] != images.shape[-1]:
                    recon = F.interpolate(recon, size=images.shape[-2:], mode="area")
                out["image"] = _multiscale_l1(recon, images[:k])
        out["total"] = (cfg.latent_weight * out["latent"] + cfg.delta_weight * out["delta"]
                        + cfg.image_weight * out.get("image", torch.zeros([])))
        return out

    def step(self) -> dict[str, float]:
        t0 = time.perf_counter()
        self.encoder.train()
        ws, images = self.batch()
        out = self.losses(ws, images)
        self.opt.zero_grad(set_to_none=True)
        out["total"].backward()
        self.opt.step()
        self.step_count += 1
        self.images_seen += self.cfg.batch
        self.seconds += time.perf_counter() - t0
        return {k: float(v.detach()) for k, v in out.items()}

    # -------------------------------------------------------------------------------------------------------------
    # State

    def state(self) -> dict:
        return {"encoder": self.encoder.state_dict(), "opt": self.opt.state_dict(), "gen": self.gen.get_state(),
                "step": self.step_count, "images_seen": self.images_seen, "seconds": self.seconds,
                "config": asdict(self.cfg), "encoder_config": asdict(self.encoder_config)}

    def load_state(self, state: dict) -> None:
        self.encoder.load_state_dict(state["encoder"])
        self.opt.load_state_dict(state["opt"])
        self.gen.set_state(state["gen"])
        self.step_count, self.images_seen, self.seconds = state["step"], state["images_seen"], state["seconds"]


@torch.no_grad()
def evaluate_encoder(G, encoder: Encoder, n: int = 64, w_var: float | None = None, batch: int = 16) -> dict:
    """Held-out generated faces (z from RandomState(HELD_OUT_SEED), psi 1, no mixing), float32:
    latent error (RMS over rows and dims, in units of W's std) and PSNR of G(encoder(image)) against the image."""
    encoder.eval()
    if w_var is None:
        w_var = _w_statistics(G)[1]
    z_all = torch.from_numpy(np.random.RandomState(HELD_OUT_SEED).randn(n, G.z_dim).astype(np.float32))
    sq, psnrs = [], []
    device = G.mapping.w_avg.device
    for i in range(0, n, batch):
        ws = G.mapping(z_all[i:i + batch].to(device), None)
        img = G.synthesis(ws, noise_mode="const").clamp(-1, 1)
        pred = encoder(img)
        rec = G.synthesis(pred, noise_mode="const").clamp(-1, 1)
        sq.append(((pred - ws).square().mean(dim=(1, 2)) / w_var).cpu())
        mse = ((rec - img) / 2).square().mean(dim=(1, 2, 3)).clamp_min(1e-10)  # images in [0, 1] units
        psnrs.append((-10 * torch.log10(mse)).cpu())
    return {"latent_rmse_sigma": float(torch.cat(sq).mean().sqrt()), "psnr": float(torch.cat(psnrs).mean()), "n": n}


def run_train_encoder(G, out: str | Path, cfg: EncoderTrainConfig, *, generator_id: str, world=None,
                      resume: bool = False, init: Encoder | None = None,
                      minutes: float | None = None, kimg: float | None = None, snap_minutes: float = 10.0,
                      eval_minutes: float = 10.0, device="cpu", log: Callable[[str], None] = print,
                      stop: Callable[[], bool] = lambda: False) -> Path:
    """Train (or resume) in ``out`` until ``minutes`` of this process or ``kimg`` thousand images; snapshot every
    ``snap_minutes`` and at the end. ``init``: a new run starts from this encoder's weights (its config wins).
    Returns the path of the float32 encoder file."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    trainer = None
    if resume:
        saved = json.loads((out / CONFIG_FILE).read_text())
        if saved["generator_model_id"] != generator_id:
            raise ValueError(f"{out} trains an encoder for generator {saved['generator_model_id']}, not {generator_id}")
        trainer = EncoderTrainer(G, EncoderTrainConfig(**{**saved["train"], "betas": tuple(saved["train"]["betas"])}),
                                 device, EncoderConfig(**{**saved["encoder"],
                                                          "channels": tuple(saved["encoder"]["channels"])}),
                                 world=world)
        trainer.load_state(torch.load(out / STATE_FILE, weights_only=False))
        log(f"resumed at {trainer.images_seen} images ({trainer.seconds / 60:.1f} min of training)")
    else:
        trainer = EncoderTrainer(G, cfg, device, encoder_config=init.config if init is not None else None, world=world)
        if init is not None:
            trainer.encoder.load_state_dict(init.state_dict())
            trainer.images_seen = int((getattr(init, "meta", {}).get("facts") or {}).get("images_seen", 0))
        (out / CONFIG_FILE).write_text(json.dumps({"generator_model_id": generator_id, "train": asdict(cfg),
                                                   "encoder": asdict(trainer.encoder_config)}, indent=2) + "\n")

    def snapshot() -> Path:
        save_atomic(trainer.state(), out / STATE_FILE)
        facts = {"images_seen": trainer.images_seen, "train_seconds": round(trainer.seconds, 1),
                 "train": asdict(trainer.cfg)}
        return save_encoder(trainer.encoder, out / "encoder.safetensors", generator_id, facts)

    def evaluate() -> None:
        metrics = evaluate_encoder(trainer.G, trainer.encoder, w_var=trainer.w_var)
        metrics.update(images=trainer.images_seen, seconds=round(trainer.seconds, 1))
        with open(out / "eval.jsonl", "a") as f:
            f.write(json.dumps(metrics) + "\n")
        log(f"eval at {trainer.images_seen} images: latent error {metrics['latent_rmse_sigma']:.3f} sigma, "
            f"PSNR {metrics['psnr']:.2f} dB")

    t_start = time.perf_counter()
    last_snap = last_eval = last_log = t_start
    sums: dict[str, float] = {}
    count = 0
    while True:
        now = time.perf_counter()
        if (minutes is not None and now - t_start >= minutes * 60) or \
                (kimg is not None and trainer.images_seen >= kimg * 1000) or stop():
            break
        values = trainer.step()
        for k, v in values.items():
            if not math.isfinite(v):
                raise FloatingPointError(f"loss {k} is {v} at step {trainer.step_count}; last snapshot is kept")
            sums[k] = sums.get(k, 0.0) + v
        count += 1
        now = time.perf_counter()
        if now - last_log >= 60:
            rec = {k: round(v / count, 5) for k, v in sums.items()}
            rec.update(images=trainer.images_seen, seconds=round(trainer.seconds, 1),
                       img_per_s=round(count * trainer.cfg.batch / (now - last_log), 2))
            with open(out / "log.jsonl", "a") as f:
                f.write(json.dumps(rec) + "\n")
            log(json.dumps(rec))
            sums, count, last_log = {}, 0, now
        if now - last_eval >= eval_minutes * 60:
            evaluate()
            last_eval = time.perf_counter()
        if now - last_snap >= snap_minutes * 60:
            snapshot()
            last_snap = time.perf_counter()
    path = snapshot()
    evaluate()
    return path
