"""Distillation of the toon renderer into a StyleGAN2 generator (the demo generator's training route on a CPU).

The renderer is a deterministic function of its random draws, so the generator can learn it by regression instead of
a game: ``G(z)`` is trained to equal ``render(T(z))``, where T (``editor.toonlatent.LatentWorld``) maps z to the toon
parameters through a fixed nonlinear mixing (Z is not the parameters, but every sample has exact ground truth). The
loss is a multi-scale L1 on pixels plus a perceptual term: the L1 distance between the toon attribute model's
feature maps (stem and each residual stage, at 64 px) of the two images, each normalised by the render's mean
magnitude. Optionally (``adv_weight`` > 0) an adversarial term sharpens what the regression blurs: a StyleGAN2
discriminator learns to tell the batch's renders from its generated faces (non-saturating logistic loss, lazy R1),
and G is pushed towards renders it cannot tell apart (pix2pix's L1 + GAN recipe): where L1 alone averages
the outlines it is not yet sure of into a blur, the adversary makes it commit to sharp ones. A run may switch it on
when resumed.

Speed on a 2-core AVX-512 CPU (batch 16, 128 px, channel_base 4096): the step runs under bfloat16 autocast (weights,
optimiser and EMA stay float32) and ``torch.compile`` (about 2 minutes of compilation per process): ~34 img/s
against ~7 img/s in plain float32 eager mode.

Resume is exact within a machine: batch k's latents are ``default_rng([seed, k])`` normals and ``distill_state.pt``
holds G, G_ema, Adam, images seen and the iteration. ``export_portable`` / ``import_portable`` move a run between
machines (and sessions) as small float16 safetensors of G and G_ema, with fresh Adam moments.

Run directory: ``distill_config.json``, ``distill_state.pt``, ``G_ema/`` (native checkpoint), ``samples/`` (fixed
held-out latents: generated row over rendered row), ``log.jsonl`` (loss, img/s) and ``eval.jsonl`` (held-out L1 and
the attribute model's agreement with the truth on generated faces).
"""

from __future__ import annotations

import copy
import json
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from editor.stylegan2 import CONFIGS, Generator, NetworkConfig
from editor.toonfaces import ATTRIBUTES
from editor.toonlatent import MIXING_STRENGTH, LatentWorld
from editor.train.loop import _save_png, _to_uint8, image_grid, save_atomic

__all__ = ["DistillConfig", "Distiller", "run_distill", "export_portable", "import_portable", "evaluate_generator",
           "HELD_OUT_SEED"]

STATE_FILE = "distill_state.pt"
CONFIG_FILE = "distill_config.json"
HELD_OUT_SEED = 1_000_003  # latents for evaluation and sample grids (training batches use default_rng([seed, k]))
BINARY = tuple(s.name for s in ATTRIBUTES if s.kind == "binary")


@dataclass(frozen=True)
class DistillConfig:
    """The training mathematics (stored with the run; a resumed run keeps it)."""

    network: NetworkConfig = field(default_factory=lambda: CONFIGS["toon-128"])
    world_seed: int = 0  # fixes T's mixing (part of the model: the truth labeller needs it)
    mixing_strength: float = MIXING_STRENGTH
    batch: int = 16
    lr: float = 0.002
    betas: tuple[float, float] = (0.9, 0.99)
    l1_scales: tuple[int, ...] = (1, 2, 4)  # L1 at full, half and quarter resolution (box-downsampled)
    mapping_pretrain_kimg: float = 0.0  # first fit the mapping network alone (plus a throw-away linear head) to
    #                                     predict T's draws from z, on this many thousand latents (no synthesis:
    #                                     ~5k latents/s), so that W starts out carrying the draws linearly
    low_res_kimg: float = 0.0  # train the half-resolution image only (the skip output before the last block) until
    #                            this many thousand images: every layer but the last block learns at ~2x the speed
    feature_weight: float = 1.0  # attribute-model feature term (0 = pixels only)
    ema_kimg: float = 10.0  # G_ema half-life in thousands of images
    ema_rampup: float = 0.05  # early on the half-life is at most this share of the images seen (as StyleGAN2-ADA)
    seed: int = 0
    supersample: int = 1  # the renderer's oversampling for targets (1: 3.4x faster at 128 px, 0.2/255 from default)
    bf16: bool = True  # bfloat16 autocast for the step on CPU
    compile: bool = True  # torch.compile the loss (forward and backward)
    adv_weight: float = 0.0  # weight of the adversarial term (0: regression only, no discriminator)
    r1_gamma: float = 0.2  # R1 weight of the discriminator (StyleGAN2-ADA's 0.0002 * res^2 / batch at 128 px, 16)
    d_reg_interval: int = 16  # lazy R1: every this many steps, scaled by it
    adv_patch: int = 0  # the discriminator judges random crops of this side (0: whole images); a patch judge is
    #                     what sharpening needs (blur is local; L1 keeps the whole face right) at a fraction of the cost
    d_channel_base: int = 0  # the discriminator's channel_base (0: the generator's)

    def __post_init__(self):
        if self.batch < 1 or self.lr <= 0 or self.ema_kimg <= 0 or self.feature_weight < 0:
            raise ValueError("batch >= 1, lr > 0, ema_kimg > 0 and feature_weight >= 0 are required")
        if self.adv_weight < 0 or self.r1_gamma < 0 or self.d_reg_interval < 1 or self.d_channel_base < 0:
            raise ValueError("adv_weight >= 0, r1_gamma >= 0, d_reg_interval >= 1 and d_channel_base >= 0 are required")
        side = self.adv_patch
        if side and (side < 8 or side > self.network.img_resolution or side & (side - 1)):
            raise ValueError(f"adv_patch must be 0 or a power of two in [8, {self.network.img_resolution}], got {side}")
        if not self.l1_scales or any(s < 1 or self.network.img_resolution % s for s in self.l1_scales):
            raise ValueError(f"l1_scales must divide the resolution, got {self.l1_scales}")

    def discriminator_kwargs(self) -> dict:
        kwargs = self.network.discriminator_kwargs()
        kwargs["img_resolution"] = self.adv_patch or self.network.img_resolution
        if self.d_channel_base:
            kwargs["channel_base"] = self.d_channel_base
        return kwargs

    @property
    def d_lr_ratio(self) -> float:
        """Lazy regularisation's correction of D's learning rate and betas (StyleGAN2)."""
        return self.d_reg_interval / (self.d_reg_interval + 1)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "DistillConfig":
        data = dict(data)
        data["network"] = NetworkConfig(**data["network"])
        data["betas"] = tuple(data["betas"])
        data["l1_scales"] = tuple(data["l1_scales"])
        return cls(**data)


# What a resumed run may change (the rest of the config is the run's mathematics and stays).
RESUME_CHANGES = ("lr", "adv_weight", "r1_gamma", "adv_patch", "d_channel_base")


def _judge_features(judge, x: torch.Tensor) -> list[torch.Tensor]:
    """Feature maps of the attribute model (stem, then every residual stage) for images in [-1, 1]."""
    side = judge.config.input_size
    if x.shape[-1] != side:
        x = F.adaptive_avg_pool2d(x, side) if x.shape[-1] > side else F.interpolate(x, size=side, mode="bilinear")
    h = judge.stem(x)
    feats = [h]
    for block in judge.blocks:
        h = block(h)
        feats.append(h)
    return feats


class Distiller:
    """G, G_ema, Adam and the loss; ``step(k)`` trains on batch k."""

    def __init__(self, cfg: DistillConfig):
        from editor.attributes import load_attribute_model

        self.cfg = cfg
        torch.manual_seed(cfg.seed)
        self.G = Generator(**cfg.network.generator_kwargs()).train().requires_grad_(True)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        self.world = LatentWorld(cfg.network.z_dim, cfg.world_seed, cfg.mixing_strength)
        self.judge = None
        if cfg.feature_weight > 0:
            self.judge = load_attribute_model().requires_grad_(False).eval()
        self.opt = torch.optim.Adam(self.G.parameters(), lr=cfg.lr, betas=cfg.betas)
        self.D = self.d_opt = None
        if cfg.adv_weight > 0:
            from editor.stylegan2 import Discriminator

            self.D = Discriminator(**cfg.discriminator_kwargs()).train().requires_grad_(False)
            self.d_opt = torch.optim.Adam(self.D.parameters(), lr=cfg.lr * cfg.d_lr_ratio,
                                          betas=tuple(b ** cfg.d_lr_ratio for b in cfg.betas))
        self.nimg = 0
        self.it = 0
        self.seconds = 0.0
        self.mapping_pretrained = cfg.mapping_pretrain_kimg <= 0
        self._loss = torch.compile(self._loss_terms) if cfg.compile else self._loss_terms

    # -- data
    def latents(self, k: int) -> np.ndarray:
        """The latents of training batch k (float32 [batch, z_dim])."""
        rng = np.random.default_rng([self.cfg.seed, k])
        return rng.standard_normal((self.cfg.batch, self.cfg.network.z_dim)).astype(np.float32)

    @property
    def resolution(self) -> int:
        """The resolution trained now (half the output during the low-resolution phase)."""
        full = self.cfg.network.img_resolution
        return full // 2 if self.nimg < self.cfg.low_res_kimg * 1000 else full

    def targets(self, z: np.ndarray, resolution: int | None = None) -> torch.Tensor:
        """Renders of T(z) as float [N, 3, H, W] in [-1, 1]."""
        imgs = self.world.render(z, resolution or self.resolution, supersample=self.cfg.supersample)
        return torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 127.5 - 1.0

    # -- loss
    def _loss_terms(self, z: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        ws = self.G.mapping(z, None, update_emas=True)  # float32 (cheap; tracks w_avg for truncation)
        res = target.shape[-1]
        stop = res if res != self.cfg.network.img_resolution else None
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.cfg.bf16):
            img = self.G.synthesis(ws, noise_mode="const", stop_resolution=stop)
        img = img.float()
        l1 = img.new_zeros(())
        for s in self.cfg.l1_scales:
            if res % s or res // s < 4:
                continue
            a, b = (img, target) if s == 1 else (F.avg_pool2d(img, s), F.avg_pool2d(target, s))
            l1 = l1 + (a - b).abs().mean()
        feat = img.new_zeros(())
        if self.judge is not None:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.cfg.bf16):
                fa = _judge_features(self.judge, img)
                with torch.no_grad():
                    fb = _judge_features(self.judge, target)
            for x, y in zip(fa, fb):
                x, y = x.float(), y.float()
                feat = feat + (x - y).abs().mean() / (y.abs().mean() + 1e-6)
        return l1, feat, img

    def pretrain_mapping(self, batch: int = 256, progress=None) -> float:
        """Fit the mapping network (and a temporary linear head on w) to T's draws, mean squared error on the mixed
        coordinates the story reads; returns the final R^2 on held-out latents. Deterministic for a config."""
        n_total = int(self.cfg.mapping_pretrain_kimg * 1000)
        slots = self.world.slots
        torch.manual_seed(self.cfg.seed + 1)
        head = torch.nn.Linear(self.cfg.network.w_dim, slots)
        params = list(self.G.mapping.parameters()) + list(head.parameters())
        opt = torch.optim.Adam(params, lr=self.cfg.lr, betas=self.cfg.betas)
        rng = np.random.default_rng([self.cfg.seed, 2 ** 31 - 1])
        for k in range(max(1, n_total // batch)):
            z = rng.standard_normal((batch, self.cfg.network.z_dim))
            g = torch.from_numpy(self.world.mix(z)[:, :slots]).float()
            w = self.G.mapping(torch.from_numpy(z).float(), None, update_emas=True)[:, 0]
            loss = (head(w) - g).square().mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if progress is not None and k % 200 == 0:
                progress(k * batch, float(loss))
        z = held_out_latents(2000, self.cfg.network.z_dim)
        with torch.no_grad():
            pred = head(self.G.mapping(torch.from_numpy(z), None)[:, 0]).double().numpy()
        g = self.world.mix(z)[:, :slots]
        self.G_ema.mapping.load_state_dict(self.G.mapping.state_dict())
        self.mapping_pretrained = True
        return float(1 - ((pred - g) ** 2).mean() / g.var())

    def step(self, k: int | None = None) -> dict[str, float]:
        """One optimiser step on batch k (default: the next one)."""
        k = self.it if k is None else k
        z = self.latents(k)
        target = self.targets(z)
        l1, feat, img = self._loss(torch.from_numpy(z), target)
        loss = l1 + self.cfg.feature_weight * feat
        adversarial = self.D is not None and img.shape[-1] == self.cfg.network.img_resolution
        stats = {}
        if adversarial:
            crops = self._crops(k)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.cfg.bf16):
                logits = self.D(self._crop(img, crops))
            g_adv = F.softplus(-logits.float()).mean()  # D's parameters are frozen here: only G learns from it
            loss = loss + self.cfg.adv_weight * g_adv
            stats["g_adv"] = g_adv.item()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.it = k + 1
        self.nimg += self.cfg.batch
        self._update_ema()
        if adversarial:
            real_crops = self._crops(k, real=True)
            stats.update(self._discriminator_step(self._crop(img.detach(), crops), self._crop(target, real_crops), k))
        return {"loss": loss.item(), "l1": l1.item(), "feat": feat.item(), **stats}

    def _crops(self, k: int, real: bool = False) -> np.ndarray | None:
        """Top-left corners [batch, 2] of batch k's patches for the discriminator (None: whole images)."""
        side = self.cfg.adv_patch
        if not side or side == self.cfg.network.img_resolution:
            return None
        rng = np.random.default_rng([self.cfg.seed, k, 2 if real else 1])
        return rng.integers(0, self.cfg.network.img_resolution - side + 1, size=(self.cfg.batch, 2))

    def _crop(self, x: torch.Tensor, corners: np.ndarray | None) -> torch.Tensor:
        if corners is None:
            return x
        side = self.cfg.adv_patch
        return torch.stack([x[i, :, y:y + side, c:c + side] for i, (y, c) in enumerate(corners)])

    def _discriminator_step(self, fake: torch.Tensor, real: torch.Tensor, k: int) -> dict[str, float]:
        """One step of D: fakes down, renders up; every ``d_reg_interval`` steps also R1 on the renders."""
        D, cfg = self.D, self.cfg
        D.requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
            fake_logits, real_logits = D(fake).float(), D(real).float()
        loss = F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()
        out = {"d_loss": loss.item(), "d_real": real_logits.mean().item(), "d_fake": fake_logits.mean().item()}
        if cfg.r1_gamma > 0 and k % cfg.d_reg_interval == 0:
            x = real.detach().requires_grad_(True)  # float32: the gradient penalty wants exact input gradients
            (grads,) = torch.autograd.grad(D(x).sum(), x, create_graph=True)
            r1 = grads.square().sum([1, 2, 3]).mean()
            loss = loss + r1 * (cfg.r1_gamma / 2) * cfg.d_reg_interval
            out["r1"] = r1.item()
        self.d_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.d_opt.step()
        D.requires_grad_(False)
        return out

    @torch.no_grad()
    def _update_ema(self) -> None:
        half_life = self.cfg.ema_kimg * 1000
        if self.cfg.ema_rampup:
            half_life = min(half_life, self.nimg * self.cfg.ema_rampup)
        beta = 0.5 ** (self.cfg.batch / max(half_life, 1e-8))
        for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters()):
            p_ema.lerp_(p, 1 - beta)
        for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers()):
            b_ema.copy_(b)

    # -- state
    def state_dict(self) -> dict:
        state = {"config": self.cfg.to_json(), "G": self.G.state_dict(), "G_ema": self.G_ema.state_dict(),
                 "opt": self.opt.state_dict(), "nimg": self.nimg, "it": self.it, "seconds": self.seconds,
                 "mapping_pretrained": self.mapping_pretrained}
        if self.D is not None:
            state.update(D=self.D.state_dict(), d_opt=self.d_opt.state_dict())
        return state

    def load_state_dict(self, state: dict) -> None:
        """Load a state; this Distiller's config wins over the state's learning rate, and a discriminator the state
        lacks (the adversarial term switched on at a resume) or of another shape starts fresh."""
        self.G.load_state_dict(state["G"], strict=True)
        self.G_ema.load_state_dict(state["G_ema"], strict=True)
        if state.get("opt") is not None:
            self.opt.load_state_dict(state["opt"])
        for group in self.opt.param_groups:
            group["lr"] = self.cfg.lr
        saved = DistillConfig.from_json(state["config"]) if "config" in state else self.cfg
        same_d = (saved.adv_patch, saved.d_channel_base) == (self.cfg.adv_patch, self.cfg.d_channel_base)
        if self.D is not None and state.get("D") is not None and same_d:
            self.D.load_state_dict(state["D"], strict=True)
            if state.get("d_opt") is not None:
                self.d_opt.load_state_dict(state["d_opt"])
        if self.d_opt is not None:
            for group in self.d_opt.param_groups:
                group["lr"] = self.cfg.lr * self.cfg.d_lr_ratio
        self.nimg, self.it, self.seconds = int(state["nimg"]), int(state["it"]), float(state["seconds"])
        self.mapping_pretrained = bool(state.get("mapping_pretrained", True))

    def save(self, path: str | os.PathLike) -> None:
        save_atomic(self.state_dict(), path)

    @classmethod
    def from_state(cls, path: str | os.PathLike, **changes) -> "Distiller":
        """The run saved at ``path``; ``changes``: new values of the fields in ``RESUME_CHANGES``."""
        return cls.from_state_dict(torch.load(path, map_location="cpu", weights_only=True), **changes)

    @classmethod
    def from_state_dict(cls, state: dict, **changes) -> "Distiller":
        bad = set(changes) - set(RESUME_CHANGES)
        if bad:
            raise ValueError(f"a resumed run cannot change {sorted(bad)}; only {list(RESUME_CHANGES)}")
        d = cls(replace(DistillConfig.from_json(state["config"]), **changes))
        d.load_state_dict(state)
        return d


# ----------------------------------------------------------------------------------------------------------------
# Evaluation


def held_out_latents(count: int, z_dim: int) -> np.ndarray:
    return np.random.default_rng(HELD_OUT_SEED).standard_normal((count, z_dim)).astype(np.float32)


@torch.no_grad()
def generate(G, z: np.ndarray, batch: int = 32) -> torch.Tensor:
    """G(z) with constant noise, float [N, 3, H, W] in [-1, 1]."""
    out = [G(torch.from_numpy(z[i:i + batch]), None, noise_mode="const").float() for i in range(0, len(z), batch)]
    return torch.cat(out)


@torch.no_grad()
def evaluate_generator(G, world: LatentWorld, z: np.ndarray, judge=None, renders: np.ndarray | None = None) -> dict:
    """Held-out numbers for a generator that should draw render(T(z)).

    l1: mean |G(z) - render| in [-1, 1] units at full resolution; judge_acc_<attr>: how often the attribute model's
    label of G(z) equals the truth of T(z), per binary attribute (and their mean and minimum).
    """
    fakes = generate(G, z)
    if renders is None:
        renders = world.render(z, G.img_resolution)
    target = torch.from_numpy(renders).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    out = {"l1": float((fakes - target).abs().mean())}
    if judge is not None:
        labels = judge.predict(_to_uint8(fakes)).labels()
        truth = world.attributes(z)
        accs = {}
        for name in BINARY:
            t = torch.tensor([a[name] for a in truth])
            accs[name] = float((labels[name].cpu() == t).float().mean())
        out.update({f"judge_acc_{k}": v for k, v in accs.items()})
        out["judge_acc_mean"] = float(np.mean(list(accs.values())))
        out["judge_acc_min"] = float(min(accs.values()))
    return out


# ----------------------------------------------------------------------------------------------------------------
# The run


def run_distill(cfg: DistillConfig | None, out: str | os.PathLike, *, resume: bool = False,
                changes: dict | None = None, minutes: float | None = None,
                kimg: float | None = None, snapshot_minutes: float = 10.0, eval_minutes: float = 15.0,
                eval_count: int = 256, report_seconds: float = 60.0,
                progress: Callable[[dict], None] | None = None, should_stop: Callable[[], bool] | None = None) -> dict:
    """Train until ``kimg`` (total images seen) or ``minutes`` (of this call) or ``should_stop()``; snapshots and
    evaluations on the way and at the end. Returns the last evaluation with kimg and seconds. ``changes`` with
    ``resume``: new values of ``RESUME_CHANGES`` fields (e.g. a lower learning rate for the end of a long run, or the
    adversarial term switched on), stored in the run's config; log.jsonl records them."""
    from editor.checkpoints import save_generator

    out = Path(out)
    state_path = out / STATE_FILE
    if resume:
        if not state_path.is_file():
            raise FileNotFoundError(f"nothing to resume: {state_path} does not exist")
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        before = DistillConfig.from_json(state["config"])
        d = Distiller.from_state_dict(state, **(changes or {}))
        del state
        changed = {k: getattr(d.cfg, k) for k in RESUME_CHANGES if getattr(d.cfg, k) != getattr(before, k)}
        if changed:
            with open(out / "log.jsonl", "a") as f:
                f.write(json.dumps({"kimg": d.nimg / 1000, "changed": changed,
                                    "was": {k: getattr(before, k) for k in changed}}) + "\n")
    else:
        if state_path.exists():
            raise ValueError(f"{out} already holds a run; resume it or choose another directory")
        if cfg is None:
            raise ValueError("cfg is required for a new run")
        out.mkdir(parents=True, exist_ok=True)
        d = Distiller(cfg)
    cfg = d.cfg
    (out / CONFIG_FILE).write_text(json.dumps(cfg.to_json(), indent=2) + "\n")
    (out / "samples").mkdir(exist_ok=True)
    emit = progress or (lambda info: None)
    stop = should_stop or (lambda: False)
    z_eval = held_out_latents(eval_count, cfg.network.z_dim)
    renders = d.world.render(z_eval, cfg.network.img_resolution)
    judge = d.judge
    if judge is None:
        from editor.attributes import load_attribute_model

        judge = load_attribute_model()

    def append(name: str, record: dict) -> None:
        with open(out / name, "a") as f:
            f.write(json.dumps(record) + "\n")

    start = time.time()
    seconds_before = d.seconds

    def snapshot() -> None:
        d.seconds = seconds_before + time.time() - start
        d.save(state_path)
        provenance = {"training": {"route": "distillation", "kimg": d.nimg / 1000, "seconds": round(d.seconds, 1),
                                   "device": "cpu", "world_seed": cfg.world_seed,
                                   "mixing_strength": cfg.mixing_strength, "data": "toon-latent",
                                   "mapping_pretrain_kimg": cfg.mapping_pretrain_kimg,
                                   "config": cfg.to_json()}}
        save_generator(d.G_ema, out / "G_ema", provenance=provenance)

    def evaluate() -> dict:
        record = {"kimg": d.nimg / 1000, **evaluate_generator(d.G_ema, d.world, z_eval, judge, renders)}
        append("eval.jsonl", record)
        fakes = _to_uint8(generate(d.G_ema, z_eval[:16]))
        rows = np.concatenate([fakes[:8], renders[:8], fakes[8:16], renders[8:16]])
        _save_png(image_grid(rows, 8), out / "samples" / f"fakes-{d.nimg // 1000:06d}.png")
        return record

    if not d.mapping_pretrained:
        r2 = d.pretrain_mapping(progress=lambda n, loss: emit({"event": "pretrain", "n": n, "loss": loss}))
        append("log.jsonl", {"mapping_pretrain_kimg": cfg.mapping_pretrain_kimg, "heldout_r2": round(r2, 4)})
        emit({"event": "pretrain", "n": int(cfg.mapping_pretrain_kimg * 1000), "loss": float("nan"), "r2": r2})
    last_snap = last_eval = last_report = time.time()
    sums: dict[str, float] = {}
    n_sum, tick_nimg, tick_time = 0, d.nimg, time.time()
    record: dict = {}
    while True:
        if kimg is not None and d.nimg >= kimg * 1000:
            break
        if minutes is not None and time.time() - start >= minutes * 60:
            break
        if stop():
            break
        losses = d.step()
        for k, v in losses.items():
            sums[k] = sums.get(k, 0.0) + v
        n_sum += 1
        now = time.time()
        if now - last_report >= report_seconds:
            info = {"kimg": round(d.nimg / 1000, 3), "it": d.it, "img_s": round((d.nimg - tick_nimg) / (now - tick_time), 2),
                    **{k: round(v / n_sum, 5) for k, v in sums.items()}}
            append("log.jsonl", info)
            emit({"event": "tick", **info})
            sums, n_sum, tick_nimg, tick_time, last_report = {}, 0, d.nimg, now, now
        if now - last_snap >= snapshot_minutes * 60:
            snapshot()
            last_snap = time.time()
        if now - last_eval >= eval_minutes * 60:
            record = evaluate()
            emit({"event": "eval", **record})
            last_eval = time.time()
            tick_time += last_eval - now
    snapshot()
    record = evaluate()
    emit({"event": "eval", **record})
    return {**record, "seconds": d.seconds}


# ----------------------------------------------------------------------------------------------------------------
# Moving a run between machines and sessions


def export_portable(run: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """G, G_ema (and D when the run has an adversary) as float16 safetensors plus the config and counters
    (``dest/portable.json``)."""
    from safetensors.torch import save_file

    run, dest = Path(run), Path(dest)
    state = torch.load(run / STATE_FILE, map_location="cpu", weights_only=True)
    dest.mkdir(parents=True, exist_ok=True)
    for net in ("G", "G_ema", "D"):
        if net not in state:  # no adversary in this run
            (dest / f"{net}.safetensors").unlink(missing_ok=True)
            continue
        tensors = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in state[net].items()}
        tmp = dest / f"{net}.safetensors.part"
        save_file(tensors, str(tmp))
        os.chmod(tmp, 0o666 & ~_umask())  # readable like any other file of the checkout (the temp file is 0600)
        os.replace(tmp, dest / f"{net}.safetensors")
    meta = {"config": state["config"], "nimg": state["nimg"], "it": state["it"], "seconds": state["seconds"]}
    (dest / "portable.json").write_text(json.dumps(meta, indent=2) + "\n")
    return dest


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def import_portable(src: str | os.PathLike, run: str | os.PathLike) -> Path:
    """Turn an exported state back into a resumable run directory (fresh Adam moments)."""
    from safetensors.torch import load_file

    src, run = Path(src), Path(run)
    meta = json.loads((src / "portable.json").read_text())
    d = Distiller(replace(DistillConfig.from_json(meta["config"]), compile=False))

    def float32(net: str) -> dict:
        return {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(src / f"{net}.safetensors")).items()}

    state = {"G": float32("G"), "G_ema": float32("G_ema"), "opt": None, "nimg": meta["nimg"], "it": meta["it"],
             "seconds": meta["seconds"]}
    if (src / "D.safetensors").is_file() and d.D is not None:  # the adversary's discriminator (fresh Adam too)
        state.update(D=float32("D"), d_opt=None)
    d.load_state_dict(state)
    run.mkdir(parents=True, exist_ok=True)
    d.cfg = DistillConfig.from_json(meta["config"])
    d.save(run / STATE_FILE)
    (run / CONFIG_FILE).write_text(json.dumps(meta["config"], indent=2) + "\n")
    return run / STATE_FILE
