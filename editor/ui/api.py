"""The named HTTP endpoints (`gr.api`: typed functions, no hidden components), documented in the README.

    /sample (seed, psi) -> image, recipe            /edit (recipe, edits, method, layers, locked, preview) -> image, recipe
    /export (recipe, format, attribute, walk_from, walk_to, steps) -> file
    /project (photo) -> aligned, reconstruction, recipe     /open_recipe (file) -> image, recipe     /info () -> dict

Every endpoint calls one `editor.service` function; user errors come back as the error's message, programming
errors as a generic message (and a traceback in the server log). `/noop` (same inputs and outputs as /edit, no
rendering: the API benchmark's baseline) exists only with `bench_endpoints=True`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
from gradio.data_classes import FileData
from gradio.utils import get_upload_folder

from editor import service
from editor.engine import Engine
from editor.ui.common import api_guard, image_file


def _image_file(image: np.ndarray) -> FileData:
    """An image as a fast PNG in Gradio's cache (`common.image_file`; exports keep `recipe.png_bytes`)."""
    return FileData(path=image_file(image), mime_type="image/png")


def uploaded_path(file: Any) -> str:
    """The server path of a file a client uploaded (`gradio_client.handle_file`); only Gradio's upload folder is
    accepted, so a request cannot make the server read its own files."""
    if isinstance(file, dict):
        path = file.get("path")
    else:
        path = getattr(file, "path", None) or (file if isinstance(file, str) else None)
    if not path:
        raise ValueError("send a file (gradio_client.handle_file(PATH))")
    resolved = Path(path).resolve()
    root = Path(get_upload_folder()).resolve()
    if root not in resolved.parents or not resolved.is_file():
        raise ValueError("send the file itself (gradio_client.handle_file(PATH)), not a path on the server")
    return str(resolved)


def add_api(engine: Engine, card: service.ModelCard, projector: service.Projector | None,
            bench_endpoints: bool = False) -> None:
    """Register the endpoints in the enclosing `gr.Blocks`."""

    @api_guard
    def sample(seed: int, psi: float = 0.7) -> tuple[FileData, str]:
        """A sampled face: its image and its recipe (JSON text)."""
        st = service.sample(engine, seed, psi)
        return _image_file(engine.render(st)), service.recipe_text(engine, st)

    @api_guard
    def edit(recipe: str, edits: str = "", method: str = "", layers: str = "", locked: str = "",
             preview: bool = False) -> tuple[FileData, str]:
        """Edit a recipe: `edits` {"smile": 1.5} (σ units, merged over the recipe's), method ('' keeps, 'auto'),
        layers ('' keeps, all, coarse, middle, fine, 2-5), locked (["age"] or 'age, eyeglasses'), preview."""
        image, text = service.api_edit(engine, recipe, edits, method, layers, locked, preview)
        return _image_file(image), text

    @api_guard
    def export(recipe: str, format: str = "png", attribute: str = "", walk_from: float = -3.0,
               walk_to: float = 3.0, steps: int | None = None) -> FileData:
        """A file of the recipe's edit: png (recipe inside), npz, or a gif / mp4 walk of `attribute`."""
        return FileData(path=str(service.export_recipe(engine, recipe, format, attribute or None, walk_from,
                                                       walk_to, steps)))

    @api_guard
    def project(photo: FileData) -> tuple[FileData, FileData, str]:
        """A photo -> the aligned crop, its reconstruction and its recipe (tens of seconds on a CPU)."""
        if projector is None:
            raise ValueError(service.PROJECTOR_MISSING)
        aligned, image, text = service.project_photo(engine, projector, uploaded_path(photo))
        return _image_file(aligned), _image_file(image), text

    @api_guard
    def open_recipe(file: FileData) -> tuple[FileData, str]:
        """Re-open an exported PNG, a latent .npz or a recipe .json: its image and recipe."""
        st, _ = service.read_recipe_file(engine, uploaded_path(file))
        return _image_file(engine.render(st)), service.recipe_text(engine, st)

    @api_guard
    def info() -> dict:
        """The model, licence, notices, sliders, methods and layer presets."""
        return service.info(engine, card)

    gr.api(sample, api_name="sample")
    gr.api(edit, api_name="edit")
    gr.api(export, api_name="export")
    gr.api(project, api_name="project", concurrency_limit=1, concurrency_id="project")  # one at a time
    gr.api(open_recipe, api_name="open_recipe")
    gr.api(info, api_name="info")
    if bench_endpoints:
        blank = np.zeros((engine.resolution, engine.resolution, 3), np.uint8)

        def noop(recipe: str, edits: str = "", method: str = "", layers: str = "", locked: str = "",
                 preview: bool = False) -> tuple[FileData, str]:
            """/edit's inputs and outputs without the edit (benchmark baseline)."""
            return _image_file(blank), recipe

        gr.api(noop, api_name="noop", api_visibility="undocumented")
