"""Named models the loader knows: the registry (name -> URL, licence), the bundled demo, the download cache."""

from __future__ import annotations

import os
from dataclasses import dataclass
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
NGC_STYLEGAN2 = "https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan2/versions/1/files/"


@dataclass(frozen=True)
class ModelInfo:
    """A named model the loader knows how to fetch."""

    name: str  # registry name, as passed to load_generator
    description: str  # one line for listings
    resolution: int  # output image size in pixels
    url: str | None  # where it is downloaded from (None: bundled with the repository)
    filename: str | None  # file name inside the cache directory (None: bundled)
    license_name: str  # short licence name, shown next to the model
    license_text: str  # the terms users must see before using the weights
    license_url: str | None  # the full licence


REGISTRY: dict[str, ModelInfo] = {
    f"ffhq-{res}": ModelInfo(
        name=f"ffhq-{res}",
        description=f"NVIDIA StyleGAN2 trained on FFHQ faces, {res}x{res} (published network pickle, ~360 MB)",
        resolution=res,
        url=f"{NGC_STYLEGAN2}stylegan2-ffhq-{res}x{res}.pkl",
        filename=f"stylegan2-ffhq-{res}x{res}.pkl",
        license_name=NVIDIA_LICENSE_NAME,
        license_text=NVIDIA_LICENSE_TEXT,
        license_url=NVIDIA_LICENSE_URL,
    )
    for res in (1024, 512, 256)
}
REGISTRY["demo"] = ModelInfo(
    name="demo",
    description="small generator trained by this project on procedural toon faces (bundled, no download)",
    resolution=0,  # read from the checkpoint
    url=None,
    filename=None,
    license_name="project weights (no third-party terms)",
    license_text="Trained by this project on its own procedural toon-face renderer; no third-party data or weights.",
    license_url=None,
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
    """The registry entry a source refers to (by name, by URL, or as the cached download), else None."""
    text = os.fspath(source)
    for info in REGISTRY.values():
        if text in (info.name, info.url) or (info.filename and Path(text).name == info.filename):
            return info
    return None


def cache_dir() -> Path:
    """Where downloads are kept: $STYLEGAN2_EDITOR_CACHE, else $XDG_CACHE_HOME/stylegan2-editor, else
    ~/.cache/stylegan2-editor. Not created here."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "stylegan2-editor"
