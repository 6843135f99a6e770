"""The StyleGAN2-ADA training loop: a `Trainer` that owns the networks and optimisers and does one iteration per
`step(reals)`, and `run_training` that drives it with data, snapshots, sample grids and a metric.

Reproducibility and resume: all randomness (latents, noise, style mixing, augmentation) comes from the global torch
RNG seeded once with `TrainConfig.seed`; batch k of the data is a pure function of (seed, k). A snapshot stores the
networks, optimisers, augmentation p and ADA accumulators, path-length mean, images seen, iteration count and the RNG
states, so a run killed and resumed from its last snapshot continues exactly as the uninterrupted run would have
(bit-identical on CPU).

Run directory layout (`out`):
    train_config.json       the TrainConfig (a resumed run reads it back)
    training_state.pt       everything needed to resume (torch.save of tensors and plain containers)
    G_ema/                  latest averaged generator, native checkpoint (load_generator('out/G_ema'))
    snapshots/G_ema-KKKKKK/ kept snapshots (kimg in the name) when keep_snapshots is on
    samples/reals.png, samples/fakes-KKKKKK.png   fixed-seed grids
    log.jsonl, metrics.jsonl
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from editor.stylegan2 import CONFIGS, Discriminator, Generator, NetworkConfig
from editor.train.augment import AdaController, AugmentConfig, AugmentPipe
from editor.train.loss import StyleGAN2Loss

__all__ = ["TrainConfig", "RunOptions", "Trainer", "run_training", "network_config_for", "image_grid",
           "STATE_FILE", "CONFIG_FILE"]

STATE_FILE = "training_state.pt"
CONFIG_FILE = "train_config.json"
STATE_VERSION = 1


def network_config_for(resolution: int, config: str | None = None, **overrides) -> NetworkConfig:
    """The network configuration to train: a named one from stylegan2.CONFIGS (default 'toon-<resolution>' when it
    exists, else toon-64's shape scaled to the resolution), with field overrides (None values ignored)."""
    if config is not None:
        if config not in CONFIGS:
            raise ValueError(f"unknown network config {config!r}; choose from {sorted(CONFIGS)}")
        net = CONFIGS[config]
        if resolution is not None and net.img_resolution != resolution:
            net = replace(net, img_resolution=resolution)
    else:
        if resolution is None or resolution < 8 or resolution & (resolution - 1):
            raise ValueError(f"resolution must be a power of two >= 8, got {resolution}")
        name = f"toon-{resolution}"
        net = CONFIGS[name] if name in CONFIGS else replace(CONFIGS["toon-64"], img_resolution=resolution,
                                                            channel_base=128 * resolution)
    return replace(net, **{k: v for k, v in overrides.items() if v is not None})


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines the training mathematics (a resumed run keeps it)."""

    network: NetworkConfig = field(default_factory=lambda: CONFIGS["toon-64"])  # G and D shapes
    data: str = "toon"  # 'toon' (the demo world, rendered on the fly) or a folder of images
    mirror: bool = False  # folder data: random x-flips of the dataset (each image flipped with prob. 1/2 per epoch)
    toon_seed_offset: int = 0  # toon data: image n is toon seed offset + n
    toon_supersample: int | None = None  # toon data: renderer oversampling (None = its default; 1 renders 128 px
    # faces 3.4x faster, mean difference 0.2/255: docs/training.md)
    batch: int = 32  # images per iteration
    g_lr: float = 0.0025
    d_lr: float = 0.0025
    betas: tuple[float, float] = (0.0, 0.99)  # Adam betas (before the lazy-regularisation adjustment)
    r1_gamma: float | None = None  # R1 weight; None = 0.0002 * resolution^2 / batch (the ADA paper's heuristic)
    pl_weight: float = 2.0  # path-length regularisation weight (0 = off)
    pl_batch_shrink: int = 2
    pl_decay: float = 0.01
    style_mixing: float = 0.9  # probability of style mixing per batch
    g_reg_interval: int = 4  # lazy regularisation: path length every 4 iterations
    d_reg_interval: int = 16  # lazy regularisation: R1 every 16 iterations
    ema_kimg: float | None = None  # EMA half-life in thousands of images; None = batch * 10 / 32
    ema_rampup: float | None = 0.05  # half-life at most this fraction of the images seen (None = no ramp-up)
    augment: bool = True  # ADA on/off
    augment_p: float = 0.0  # initial p
    ada_target: float = 0.6
    ada_interval: int = 4  # iterations between p adjustments
    ada_kimg: float = 500.0  # p can move from 0 to 1 in this many thousand images
    lumaflip: bool = False  # include luma flips among the colour transforms
    fuse_d: bool | None = None  # Dmain: one D pass over fakes + reals (same result, half the kernel launches; see
    # loss.run_D_pair). None = on CUDA only (on CPU it measured no faster: docs/training.md)
    seed: int = 0

    def __post_init__(self):
        if self.batch < 1:
            raise ValueError(f"batch must be >= 1, got {self.batch}")
        g = self.network.mbstd_group_size
        if g and self.batch % min(g, self.batch):
            raise ValueError(f"batch {self.batch} must be a multiple of the minibatch-std group size {g}")
        if self.g_reg_interval < 1 or self.d_reg_interval < 1:
            raise ValueError("regularisation intervals must be >= 1")
        if self.g_lr <= 0 or self.d_lr <= 0:
            raise ValueError("learning rates must be > 0")

    @property
    def resolved_r1_gamma(self) -> float:
        if self.r1_gamma is not None:
            return self.r1_gamma
        return 0.0002 * self.network.img_resolution ** 2 / self.batch

    @property
    def resolved_ema_kimg(self) -> float:
        return self.ema_kimg if self.ema_kimg is not None else self.batch * 10 / 32

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "TrainConfig":
        data = dict(data)
        net = dict(data.pop("network"))
        data["betas"] = tuple(data["betas"])
        return cls(network=NetworkConfig(**net), **data)


class Trainer:
    """Networks, optimisers and the ADA state of one training run; `step(reals)` performs one iteration."""

    def __init__(self, cfg: TrainConfig, device: str | torch.device = "cpu"):
        self.cfg = cfg
        self.device = torch.device(device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            G = Generator(**cfg.network.generator_kwargs())
            D = Discriminator(**cfg.network.discriminator_kwargs())
        self.G = G.train().requires_grad_(False).to(self.device)
        self.D = D.train().requires_grad_(False).to(self.device)
        self.G_ema = copy.deepcopy(self.G).eval()
        self.augment = AugmentPipe(AugmentConfig(lumaflip=cfg.lumaflip), p=cfg.augment_p).to(self.device) \
            if cfg.augment else None
        self.ada = AdaController(cfg.ada_target, cfg.ada_interval, cfg.ada_kimg) if cfg.augment else None
        self.loss = StyleGAN2Loss(self.G, self.D, self.augment, r1_gamma=cfg.resolved_r1_gamma,
                                  style_mixing=cfg.style_mixing, pl_weight=cfg.pl_weight,
                                  pl_batch_shrink=cfg.pl_batch_shrink, pl_decay=cfg.pl_decay,
                                  fuse_d=cfg.fuse_d if cfg.fuse_d is not None else self.device.type == "cuda")
        self.opt_G = self._adam(self.G, cfg.g_lr, cfg.g_reg_interval if cfg.pl_weight > 0 else None)
        self.opt_D = self._adam(self.D, cfg.d_lr, cfg.d_reg_interval if self.loss.r1_gamma > 0 else None)
        self.cur_nimg = 0  # images shown to D so far
        self.batch_idx = 0  # iterations done
        self.seconds = 0.0  # training wall time over all sessions of this run (kept by run_training)
        torch.manual_seed(cfg.seed)  # the global RNG drives latents, noise, style mixing and augmentation

    def _adam(self, net: torch.nn.Module, lr: float, reg_interval: int | None) -> torch.optim.Adam:
        beta1, beta2 = self.cfg.betas
        if reg_interval is not None:  # lazy regularisation adds one step per interval: keep the per-image rates
            ratio = reg_interval / (reg_interval + 1)
            lr, beta1, beta2 = lr * ratio, beta1 ** ratio, beta2 ** ratio
        fused = self.device.type == "cuda"  # one kernel per step on CUDA
        return torch.optim.Adam(net.parameters(), lr=lr, betas=(beta1, beta2), eps=1e-8, fused=fused)

    @property
    def augment_p(self) -> float:
        return self.augment.p if self.augment is not None else 0.0

    def phases(self) -> list[tuple[str, int]]:
        """(phase, interval) in execution order."""
        out = [("Gmain", 1)]
        if self.cfg.pl_weight > 0:
            out.append(("Greg", self.cfg.g_reg_interval))
        out.append(("Dmain", 1))
        if self.loss.r1_gamma > 0:
            out.append(("Dreg", self.cfg.d_reg_interval))
        return out

    def step(self, reals: torch.Tensor) -> dict[str, torch.Tensor]:
        """One iteration on a batch of reals (uint8 [N, 3, H, W] or float in [-1, 1]); returns detached statistics."""
        cfg = self.cfg
        res = cfg.network.img_resolution
        if reals.ndim != 4 or reals.shape[0] != cfg.batch or tuple(reals.shape[1:]) != (3, res, res):
            raise ValueError(f"reals must be [{cfg.batch}, 3, {res}, {res}], got {tuple(reals.shape)}")
        reals = reals.to(self.device, non_blocking=True)
        if reals.dtype == torch.uint8:
            reals = reals.to(torch.float32) / 127.5 - 1
        stats: dict[str, torch.Tensor] = {}
        for phase, interval in self.phases():
            if self.batch_idx % interval:
                continue
            stats.update(self.run_phase(phase, reals, gain=float(interval)))
        self._update_ema()
        self.cur_nimg += cfg.batch
        self.batch_idx += 1
        if self.ada is not None:
            self.ada.update(self.augment, cfg.batch)
        return stats

    def run_phase(self, phase: str, reals: torch.Tensor, gain: float = 1.0) -> dict[str, torch.Tensor]:
        """One phase's optimiser step (zero grads, loss and backward, sanitise grads, Adam step) on float reals."""
        net, opt = (self.G, self.opt_G) if phase.startswith("G") else (self.D, self.opt_D)
        net.requires_grad_(True)  # only the trained network builds weight gradients
        opt.zero_grad(set_to_none=True)
        z = torch.randn([self.cfg.batch, self.G.z_dim], device=self.device)
        out = self.loss.accumulate_gradients(phase, reals, z, gain=gain)
        for p in net.parameters():
            if p.grad is not None:
                torch.nan_to_num(p.grad, nan=0.0, posinf=1e5, neginf=-1e5, out=p.grad)
        opt.step()
        net.requires_grad_(False)
        real_logits = out.pop("real_logits", None)
        if real_logits is not None and self.ada is not None:
            self.ada.accumulate(real_logits)
        return out

    @torch.no_grad()
    def _update_ema(self) -> None:
        ema_nimg = self.cfg.resolved_ema_kimg * 1000
        if self.cfg.ema_rampup is not None:
            ema_nimg = min(ema_nimg, self.cur_nimg * self.cfg.ema_rampup)
        beta = 0.5 ** (self.cfg.batch / max(ema_nimg, 1e-8))
        # p_ema <- lerp(p, p_ema, beta), as fused multi-tensor kernels
        torch._foreach_lerp_(list(self.G_ema.parameters()), list(self.G.parameters()), 1.0 - beta)
        torch._foreach_copy_(list(self.G_ema.buffers()), list(self.G.buffers()))

    # -- state
    def state_dict(self) -> dict:
        state = {
            "version": STATE_VERSION,
            "config": self.cfg.to_json(),
            "G": self.G.state_dict(), "D": self.D.state_dict(), "G_ema": self.G_ema.state_dict(),
            "opt_G": self.opt_G.state_dict(), "opt_D": self.opt_D.state_dict(),
            "augment_p": self.augment_p, "ada": self.ada.state_dict() if self.ada is not None else None,
            "pl_mean": self.loss.pl_mean.detach().cpu().clone(),
            "cur_nimg": self.cur_nimg, "batch_idx": self.batch_idx, "seconds": float(self.seconds),
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
        }
        return state

    def load_state_dict(self, state: dict) -> None:
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"training state version {state.get('version')} is not {STATE_VERSION}")
        if TrainConfig.from_json(state["config"]) != self.cfg:
            raise ValueError("training state was written for a different TrainConfig")
        self.G.load_state_dict(state["G"], strict=True)
        self.D.load_state_dict(state["D"], strict=True)
        self.G_ema.load_state_dict(state["G_ema"], strict=True)
        self.opt_G.load_state_dict(state["opt_G"])
        self.opt_D.load_state_dict(state["opt_D"])
        if self.augment is not None:
            self.augment.p = float(state["augment_p"])
            self.ada.load_state_dict(state["ada"])
        self.loss.pl_mean.copy_(state["pl_mean"])
        self.cur_nimg = int(state["cur_nimg"])
        self.batch_idx = int(state["batch_idx"])
        self.seconds = float(state.get("seconds", 0.0))
        torch.set_rng_state(state["rng_cpu"])
        if self.device.type == "cuda" and state.get("rng_cuda") is not None:
            torch.cuda.set_rng_state(state["rng_cuda"], self.device)

    def save_state(self, path: str | os.PathLike) -> None:
        """Write the full training state atomically."""
        save_atomic(self.state_dict(), path)

    @classmethod
    def from_state(cls, path: str | os.PathLike, device: str | torch.device = "cpu") -> "Trainer":
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
        trainer = cls(TrainConfig.from_json(state["config"]), device=device)
        trainer.load_state_dict(state)
        return trainer


# ----------------------------------------------------------------------------------------------------------------
# Running


@dataclass(frozen=True)
class RunOptions:
    """How long and how a run proceeds (may change between resumes; the training maths does not)."""

    kimg: float | None = None  # stop after this many thousand images in total (None: no limit)
    minutes: float | None = None  # stop this many minutes after starting (this process), with a snapshot
    snapshot_minutes: float = 10.0  # write a snapshot at least this often (wall clock)
    snapshot_kimg: float | None = None  # ... and every this many kimg (None: only by time and at the end)
    keep_snapshots: bool = False  # keep a G_ema copy per snapshot under snapshots/
    sample_kimg: float | None = 50.0  # write a fixed-seed sample grid this often (None: only at the end)
    grid: tuple[int, int] = (8, 8)  # rows, columns of the sample grids
    metric: str | None = "fd"  # 'fd' (FD + KID in the default feature space) or None
    metric_kimg: float | None = None  # compute the metric this often (None: only at the end)
    metric_samples: int = 1000  # generated (and real) images per metric evaluation
    workers: int = 1  # data worker processes (0: prepare batches in the training thread)
    report_seconds: float = 2.0  # how often progress is reported

    def __post_init__(self):
        for name in ("kimg", "minutes", "snapshot_kimg", "sample_kimg", "metric_kimg"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be > 0 (or None), got {value}")
        for name in ("snapshot_kimg", "sample_kimg", "metric_kimg"):
            value = getattr(self, name)
            if value is not None and value < 0.001:
                raise ValueError(f"{name} must be at least 0.001 (one image), got {value}")
        if self.snapshot_minutes <= 0 or self.report_seconds <= 0:
            raise ValueError("snapshot_minutes and report_seconds must be > 0")
        if self.metric not in (None, "fd"):
            raise ValueError(f"metric must be 'fd' or None, got {self.metric!r}")
        if self.metric_samples < 2 or self.workers < 0 or min(self.grid) < 1:
            raise ValueError("metric_samples must be >= 2, workers >= 0 and the grid at least 1x1")


def save_atomic(obj, path: str | os.PathLike) -> None:
    """torch.save through a temporary file and a rename: a killed process never leaves a half-written state."""
    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def image_grid(images: np.ndarray, cols: int) -> np.ndarray:
    """uint8 [N, H, W, 3] -> one uint8 image [rows*H, cols*W, 3] (row-major, blank cells black)."""
    n, h, w, c = images.shape
    rows = math.ceil(n / cols)
    grid = np.zeros((rows * h, cols * w, c), np.uint8)
    for i in range(n):
        r, q = divmod(i, cols)
        grid[r * h:(r + 1) * h, q * w:(q + 1) * w] = images[i]
    return grid


def _to_uint8(img: torch.Tensor) -> np.ndarray:
    """float [N, C, H, W] in [-1, 1] -> uint8 [N, H, W, C]."""
    return (img.float().clamp(-1, 1) * 127.5 + 128).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def _make_source(cfg: TrainConfig, workers: int):
    from editor.train.data import FolderSource, ToonSource, load_image_folder

    res = cfg.network.img_resolution
    if cfg.data == "toon":
        return ToonSource(res, seed_offset=cfg.toon_seed_offset, workers=max(workers, 1),
                          supersample=cfg.toon_supersample)
    images = load_image_folder(cfg.data, res, workers=max(workers, 1))
    return FolderSource(images, seed=cfg.seed, mirror=cfg.mirror)


class _MetricRunner:
    """FD/KID against reals in a fixed feature space; real features computed once per process."""

    METRIC_REAL_SEED = 20_000_000  # toon seeds for metric reals (disjoint from training and held-out seeds)

    def __init__(self, cfg: TrainConfig, source, num: int, device: torch.device, workers: int = 1):
        from editor.metrics import default_feature_extractor, image_features

        self.extractor = default_feature_extractor(device)
        self.num = num
        self.device = device
        if cfg.data == "toon":
            from editor.train.data import ToonSource

            reals = ToonSource(cfg.network.img_resolution, seed_offset=self.METRIC_REAL_SEED,
                               workers=workers).images(0, num)
        else:
            reals = source.images(0, min(num, len(source)))
        self.real_features = image_features(reals, self.extractor)

    def __call__(self, G) -> dict:
        from editor.metrics import frechet_distance_from_features, generator_features, kernel_inception_distance

        feats = generator_features(G, self.extractor, self.num, batch_size=64, seed=123, device=self.device)
        name = self.extractor.name
        return {f"fd_{name}": frechet_distance_from_features(feats, self.real_features),
                f"kid_{name}": kernel_inception_distance(feats, self.real_features, num_subsets=50)}


def run_training(cfg: TrainConfig | None, out: str | os.PathLike, opts: RunOptions = RunOptions(),
                 device: str | torch.device = "cpu", resume: bool = False,
                 progress: Callable[[dict], None] | None = None,
                 should_stop: Callable[[], bool] | None = None) -> dict:
    """Train until opts.kimg / opts.minutes / should_stop(), writing snapshots, grids and metrics under `out`.

    cfg: the training configuration (ignored with resume=True, where out/train_config.json is used).
    progress: called every opts.report_seconds (and at events) with a dict: kimg, nimg, it, loss_G, loss_D, p,
        img_s, sec, and 'event' ('tick', 'snapshot', 'metric', 'done') with event fields.
    Returns a summary dict (kimg, seconds, img_s, last metrics, paths).
    """
    from editor.checkpoints import save_generator

    out = Path(out)
    device = torch.device(device)
    state_path, cfg_path = out / STATE_FILE, out / CONFIG_FILE
    if resume:
        if not state_path.is_file():
            raise FileNotFoundError(f"nothing to resume: {state_path} does not exist")
        trainer = Trainer.from_state(state_path, device=device)
        cfg = trainer.cfg
    else:
        if state_path.exists():
            raise ValueError(f"{out} already holds a training run; pass resume=True (--resume) or choose another --out")
        if cfg is None:
            raise ValueError("cfg is required for a new run")
        out.mkdir(parents=True, exist_ok=True)
        cfg_path.write_text(json.dumps(cfg.to_json(), indent=2) + "\n")
        trainer = Trainer(cfg, device=device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    (out / "samples").mkdir(parents=True, exist_ok=True)
    emit = progress or (lambda info: None)
    stop = should_stop or (lambda: False)

    source = _make_source(cfg, opts.workers)
    from editor.train.data import BatchStream

    stream = BatchStream(source, cfg.batch, start_batch=trainer.batch_idx, workers=opts.workers,
                         pin_memory=device.type == "cuda")
    rows, cols = opts.grid
    grid_z = torch.randn([rows * cols, cfg.network.z_dim], generator=torch.Generator().manual_seed(cfg.seed + 1))
    if not (out / "samples" / "reals.png").exists():
        _save_png(image_grid(source.images(0, rows * cols), cols), out / "samples" / "reals.png")
    metric_runner = None

    def write_grid() -> Path:
        with torch.no_grad():
            imgs = [trainer.G_ema(z.to(device), None, noise_mode="const") for z in grid_z.split(16)]
        path = out / "samples" / f"fakes-{trainer.cur_nimg // 1000:06d}.png"
        _save_png(image_grid(_to_uint8(torch.cat(imgs)), cols), path)
        return path

    seconds_before = trainer.seconds

    def snapshot() -> None:
        trainer.seconds = seconds_before + (time.time() - start)
        trainer.save_state(state_path)
        provenance = {"training": {"kimg": trainer.cur_nimg / 1000, "seconds": round(trainer.seconds, 1),
                                   "data": cfg.data, "batch": cfg.batch, "device": device.type,
                                   "config": cfg.to_json()["network"]}}
        save_generator(trainer.G_ema, out / "G_ema", provenance=provenance)
        if opts.keep_snapshots:
            save_generator(trainer.G_ema, out / "snapshots" / f"G_ema-{trainer.cur_nimg // 1000:06d}",
                           provenance=provenance)

    def evaluate() -> dict:
        nonlocal metric_runner
        if metric_runner is None:
            metric_runner = _MetricRunner(cfg, source, opts.metric_samples, device, workers=max(opts.workers, 1))
        values = metric_runner(trainer.G_ema)
        record = {"kimg": trainer.cur_nimg / 1000, **values}
        with open(out / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        return values

    def log(record: dict) -> None:
        with open(out / "log.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")

    start = time.time()
    last_report = last_snapshot = start
    tick_nimg, tick_time = trainer.cur_nimg, start
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    pending: list[dict] = []
    last_sample_k = trainer.cur_nimg // int(opts.sample_kimg * 1000) if opts.sample_kimg else 0
    last_snap_k = trainer.cur_nimg // int(opts.snapshot_kimg * 1000) if opts.snapshot_kimg else 0
    last_metric_k = trainer.cur_nimg // int(opts.metric_kimg * 1000) if opts.metric_kimg else 0
    data_wait = 0.0
    metrics: dict = {}
    reason = "kimg"
    try:
        while True:
            if opts.kimg is not None and trainer.cur_nimg >= opts.kimg * 1000:
                reason = "kimg"
                break
            if opts.minutes is not None and time.time() - start >= opts.minutes * 60:
                reason = "minutes"
                break
            if stop():
                reason = "stopped"
                break
            t0 = time.time()
            reals = next(stream)
            data_wait += time.time() - t0
            pending.append(trainer.step(reals))
            now = time.time()
            if opts.sample_kimg and trainer.cur_nimg // int(opts.sample_kimg * 1000) > last_sample_k:
                last_sample_k = trainer.cur_nimg // int(opts.sample_kimg * 1000)
                emit({"event": "grid", "path": str(write_grid())})
            if opts.metric and opts.metric_kimg and trainer.cur_nimg // int(opts.metric_kimg * 1000) > last_metric_k:
                last_metric_k = trainer.cur_nimg // int(opts.metric_kimg * 1000)
                metrics = evaluate()
                emit({"event": "metric", "kimg": trainer.cur_nimg / 1000, **metrics})
                tick_time += time.time() - now  # keep img/s about training
                now = time.time()
            snap_due = now - last_snapshot >= opts.snapshot_minutes * 60
            if opts.snapshot_kimg and trainer.cur_nimg // int(opts.snapshot_kimg * 1000) > last_snap_k:
                last_snap_k = trainer.cur_nimg // int(opts.snapshot_kimg * 1000)
                snap_due = True
            if snap_due:
                snapshot()
                last_snapshot = time.time()
                emit({"event": "snapshot", "kimg": trainer.cur_nimg / 1000})
            if now - last_report >= opts.report_seconds:
                for s in pending:  # host sync happens here, not every iteration
                    for k, v in s.items():
                        sums[k] = sums.get(k, 0.0) + float(v)
                        counts[k] = counts.get(k, 0) + 1
                pending.clear()
                elapsed = now - tick_time
                info = {"event": "tick", "kimg": trainer.cur_nimg / 1000, "it": trainer.batch_idx,
                        "img_s": (trainer.cur_nimg - tick_nimg) / max(elapsed, 1e-9), "p": trainer.augment_p,
                        "data_wait": data_wait / max(elapsed, 1e-9), "sec": now - start,
                        **{k: sums[k] / counts[k] for k in sums}}
                emit(info)
                log({k: (round(v, 5) if isinstance(v, float) else v) for k, v in info.items() if k != "event"})
                sums.clear()
                counts.clear()
                tick_nimg, tick_time, last_report, data_wait = trainer.cur_nimg, now, now, 0.0
    finally:
        stream.close()
    seconds = time.time() - start
    snapshot()
    grid_path = write_grid()
    if opts.metric:
        metrics = evaluate()
        emit({"event": "metric", "kimg": trainer.cur_nimg / 1000, **metrics})
    summary = {"event": "done", "reason": reason, "kimg": trainer.cur_nimg / 1000, "seconds": seconds,
               "total_seconds": trainer.seconds,
               "it": trainer.batch_idx, "p": trainer.augment_p, "grid": str(grid_path),
               "G_ema": str(out / "G_ema"), **metrics}
    emit(summary)
    return summary


def _save_png(array: np.ndarray, path: Path) -> None:
    from PIL import Image

    tmp = path.with_name(path.name + ".part.png")
    Image.fromarray(array).save(tmp)
    os.replace(tmp, path)
