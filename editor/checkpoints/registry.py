"""Named models the loader knows: the registry (name -> URL, licence, size), the bundled demo, the download cache,
and the fingerprints of verified registry downloads (what a generator *is*, independent of its file name)."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_DIR = REPO_ROOT / "checkpoints" / "demo"
CACHE_ENV = "STYLEGAN2_EDITOR_CACHE"

NVIDIA_LICENSE_NAME = "NVIDIA Source Code License-NC (non-commercial)"
NVIDIA_LICENSE_URL = "https://nvlabs.github.io/stylegan2/license.html"
NVIDIA_LICENSE_TEXT = (
    "Copyright (c) NVIDIA Corporation. Licensed under the NVIDIA Source Code License-NC.\n"
    "Section 3.3, Use Limitation: \"The Work and any derivative works thereof only may be used or intended for use "
    "non-commercially. Notwithstanding the foregoing, NVIDIA Corporation and its affiliates may use the Work and any "
    "derivative works commercially. As used herein, 'non-commercially' means for research or evaluation purposes "
    "only.\"\n"
    "Redistribution must include a copy of the licence. Images generated with these weights are derivative works: "
    f"research or evaluation use only. Full text: {NVIDIA_LICENSE_URL}"
)
ADA_LICENSE_NAME = "NVIDIA Source Code License for StyleGAN2 with Adaptive Discriminator Augmentation (ADA) (non-commercial)"
ADA_LICENSE_URL = "https://github.com/NVlabs/stylegan2-ada-pytorch/blob/main/LICENSE.txt"
ADA_LICENSE_TEXT = (
    "Copyright (c) 2021, NVIDIA Corporation. Released with NVlabs/stylegan2-ada-pytorch under the NVIDIA Source Code "
    "License for StyleGAN2 with Adaptive Discriminator Augmentation (ADA). Its Section 3.3 limits use of the Work and "
    "any derivative works to non-commercial use, i.e. research or evaluation purposes only. Images generated with "
    f"these weights are derivative works: research or evaluation use only. Full text: {ADA_LICENSE_URL}"
)
NGC_STYLEGAN2 = "https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan2/versions/1/files/"
ADA_PRETRAINED = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/"
ADA_README = "https://github.com/NVlabs/stylegan2-ada-pytorch#data-repository"
ADA_TRAIN_PY = "https://github.com/NVlabs/stylegan2-ada-pytorch/blob/main/train.py (resume_specs)"
SIZE_UNKNOWN = "size not published where this project could check (no internet here)"
ESTIMATE = {1024: 359, 512: 295, 256: 294}  # MB of float32 G + G_ema + D in the CONFIGS of that resolution


def _size(res: int) -> str:
    return f"not published; ~{ESTIMATE[res]} MB estimated (float32 G, G_ema and D of that architecture)"


@dataclass(frozen=True)
class ModelInfo:
    """A named model the loader knows how to fetch."""

    name: str  # registry name, as passed to load_generator
    description: str  # one line for listings
    resolution: int  # output image size in pixels (0: read from the checkpoint)
    url: str | None  # where it is downloaded from (None: bundled with the repository)
    filename: str | None  # file name inside the cache directory (None: bundled)
    license_name: str  # short licence name, shown next to the model
    license_text: str  # the terms users must see before using the weights
    license_url: str | None  # the full licence
    size: str = SIZE_UNKNOWN  # download size as published, or why it is not known
    published_at: str = ""  # where NVIDIA lists the URL
    z_dim: int = 512  # input latent size
    w_dim: int = 512  # intermediate latent size
    bank_name: str | None = None  # the direction bank that fits these weights: directions/<bank_name>.safetensors
    sha256: str | None = None  # the file's sha256 where the publisher gives one (none of NVIDIA's pages do)

    @property
    def num_ws(self) -> int:
        """W+ layers of a StyleGAN2 generator at this resolution (two per resolution from 4 px)."""
        return 2 * int(round(math.log2(self.resolution))) - 2 if self.resolution else 0


def _nvidia(name, description, resolution, url, filename, published_at, size=None, bank_name=None,
            ada=False) -> ModelInfo:
    return ModelInfo(name=name, description=description, resolution=resolution, url=url, filename=filename,
                     license_name=ADA_LICENSE_NAME if ada else NVIDIA_LICENSE_NAME,
                     license_text=ADA_LICENSE_TEXT if ada else NVIDIA_LICENSE_TEXT,
                     license_url=ADA_LICENSE_URL if ada else NVIDIA_LICENSE_URL, size=size or _size(resolution),
                     published_at=published_at,
                     bank_name=bank_name)


REGISTRY: dict[str, ModelInfo] = {
    f"ffhq-{res}": _nvidia(
        f"ffhq-{res}", f"NVIDIA StyleGAN2 trained on FFHQ faces, {res}x{res} (published network pickle)", res,
        f"{NGC_STYLEGAN2}stylegan2-ffhq-{res}x{res}.pkl", f"stylegan2-ffhq-{res}x{res}.pkl",
        "NVIDIA NGC, model nvidia/research/stylegan2 version 1",
        size=_size(res),
        bank_name="ffhq-1024" if res == 1024 else None)
    for res in (1024, 512, 256)
}
REGISTRY.update({
    "ada-ffhq": _nvidia(
        "ada-ffhq", "NVIDIA stylegan2-ada-pytorch ffhq.pkl: FFHQ at 1024x1024, trained using original StyleGAN2 "
        "(the network e4e / PTI edit; the FFHQ bank is for it)", 1024, f"{ADA_PRETRAINED}ffhq.pkl",
        "stylegan2-ada-pytorch-ffhq.pkl", ADA_README, bank_name="ffhq-1024", ada=True),
    "ada-metfaces": _nvidia(
        "ada-metfaces", "NVIDIA stylegan2-ada-pytorch metfaces.pkl: MetFaces (portraits in art) at 1024x1024, "
        "transfer learning from FFHQ using ADA", 1024, f"{ADA_PRETRAINED}metfaces.pkl",
        "stylegan2-ada-pytorch-metfaces.pkl", ADA_README, ada=True),
    **{f"ada-ffhq-{res}-tl": _nvidia(
        f"ada-ffhq-{res}-tl", f"NVIDIA stylegan2-ada-pytorch transfer-learning source net: FFHQ {res}x{res}, "
        f"mirrored, no augmentation ({cfg} config; the --resume=ffhq{res} start point)", res,
        f"{ADA_PRETRAINED}transfer-learning-source-nets/ffhq-res{res}-mirror-{cfg}-noaug.pkl",
        f"ffhq-res{res}-mirror-{cfg}-noaug.pkl", ADA_TRAIN_PY, ada=True)
       for res, cfg in ((256, "paper256"), (512, "stylegan2"), (1024, "stylegan2"))},
})
REGISTRY["demo"] = ModelInfo(
    name="demo",
    description="small generator trained by this project on procedural toon faces (bundled, no download)",
    resolution=0,  # read from the checkpoint
    url=None,
    filename=None,
    license_name="project weights (no third-party terms)",
    license_text="Trained by this project on its own procedural toon-face renderer; no third-party data or weights.",
    license_url=None,
    size="bundled",
)


def list_models() -> list[ModelInfo]:
    """All registry entries, in a stable order."""
    return list(REGISTRY.values())


def model_info(name: str) -> ModelInfo:
    """The registry entry for `name`; ValueError listing the known names otherwise."""
    if name not in REGISTRY:
        raise ValueError(f"unknown model name {name!r}; known names: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def registry_entry_for(source: str | os.PathLike) -> ModelInfo | None:
    """The registry entry a source *names* (its registry name or URL), else None. A file is never taken for a
    registry model because of its name: what a file is comes from `verified_name`."""
    text = os.fspath(source)
    for info in REGISTRY.values():
        if text in (info.name, info.url):
            return info
    return None


def cache_dir() -> Path:
    """Where downloads are kept: $STYLEGAN2_EDITOR_CACHE, else $XDG_CACHE_HOME/stylegan2-editor, else
    ~/.cache/stylegan2-editor. Not created here."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "stylegan2-editor"


def cached_path(info: ModelInfo) -> Path | None:
    """Where a registry model's download is (or would be) cached; None for the bundled demo."""
    return cache_dir() / info.filename if info.filename else None


# ----------------------------------------------------------------------------------------------------------------
# Fingerprints of verified downloads


FINGERPRINTS_FILE = "verified-models.json"
_fingerprints_lock = threading.Lock()


@dataclass(frozen=True)
class Fingerprint:
    """What a registry model's weights are, recorded when this program downloaded them from the registry URL."""

    name: str  # registry name
    url: str  # where the file came from (https, the publisher's host)
    sha256: str  # of the downloaded file
    size: int  # bytes
    recorded: str  # ISO date-time (UTC) of the download
    model_id: str | None = None  # editor.checkpoints.model_id of the G_ema network, learned at its first load


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fingerprints() -> dict[str, Fingerprint]:
    """The recorded fingerprints ({} when none, or when the file is unreadable: nothing is then verified)."""
    path = cache_dir() / FINGERPRINTS_FILE
    try:
        data = json.loads(path.read_text())
        return {name: Fingerprint(**rec) for name, rec in data.items()
                if name in REGISTRY and isinstance(rec, dict) and rec.get("name") == name}
    except (OSError, ValueError, TypeError):
        return {}


def _write_fingerprints(records: dict[str, Fingerprint]) -> None:
    from editor.checkpoints.native import atomic_target, publish

    path = cache_dir() / FINGERPRINTS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = atomic_target(path)
    try:
        tmp.write_text(json.dumps({n: asdict(f) for n, f in sorted(records.items())}, indent=1))
        publish(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def record_download(name: str, path: str | os.PathLike) -> Fingerprint:
    """Record the file this program just downloaded from registry model `name`'s URL as that model's weights. When
    the registry gives a publisher sha256, a different file is refused (ValueError)."""
    info = model_info(name)
    digest = file_sha256(path)
    if info.sha256 and digest != info.sha256:
        raise ValueError(f"{path}: sha256 {digest} is not the published {info.sha256} of {name}")
    fp = Fingerprint(name=name, url=str(info.url), sha256=digest, size=Path(path).stat().st_size,
                     recorded=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    with _fingerprints_lock:
        records = fingerprints()
        records[name] = fp
        _write_fingerprints(records)
    return fp


def verified_name(model_id: str, path: str | os.PathLike | None = None) -> str | None:
    """The registry model a generator verifiably is: its model_id was recorded for that model, or the file it was
    loaded from (`path`) has the sha256 of a verified download (its model_id is then recorded too). Else None."""
    records = fingerprints()
    for fp in records.values():
        if fp.model_id == model_id:
            return fp.name
    if path is None or not Path(path).is_file():
        return None
    size = Path(path).stat().st_size
    candidates = [fp for fp in records.values() if fp.size == size]
    if not candidates:
        return None
    digest = file_sha256(path)
    for fp in candidates:
        if fp.sha256 == digest:
            with _fingerprints_lock:
                records = fingerprints()
                records[fp.name] = Fingerprint(**{**asdict(fp), "model_id": model_id})
                _write_fingerprints(records)
            return fp.name
    return None
