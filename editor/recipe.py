"""Edit recipes and exports: PNG with the recipe in a text chunk, latent .npz, GIF / MP4 of a walk.

A recipe is a small JSON document that is enough to reproduce an edited image exactly with the same generator and
bank:

    {"format": "stylegan2-editor-recipe", "version": 1,
     "model": {"id": ..., "name": ..., "resolution": ..., "num_ws": ..., "w_dim": ...},
     "bank": "bank id",
     "latent": {"ws": base64 float32 [num_ws, w_dim] (little endian), "shape": [...], "kind": "w" | "w+",
                "origin": ..., "seed": int | null, "psi": float | null, "z": base64 float32 [z_dim] | null},
     "edit": {"sliders": {"smile": 1.5, ...}, "method": ..., "space": "w" | "w+", "layers": [lo, hi] | null,
              "locked": [...]}}

For hand-written API calls the latent may instead be just {"seed": 3, "psi": 0.7}: it is then sampled.
"""

from __future__ import annotations

import base64
import io
import json
import math
import zipfile
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from editor.engine import EditState, Latent

if TYPE_CHECKING:
    from editor.engine import Engine

RECIPE_FORMAT = "stylegan2-editor-recipe"
RECIPE_VERSION = 1
PNG_KEY = "stylegan2-editor-recipe"  # the PNG zTXt chunk keyword


def _b64(arr: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(arr, dtype="<f4").tobytes()).decode("ascii")


def _unb64(text: Any, what: str) -> np.ndarray:
    if not isinstance(text, str):
        raise ValueError(f"recipe field {what} must be a base64 string")
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError):
        raise ValueError(f"recipe field {what} is not valid base64") from None
    if len(raw) % 4:
        raise ValueError(f"recipe field {what} does not hold float32 values")
    return np.frombuffer(raw, dtype="<f4").astype(np.float32)


def state_to_recipe(state: EditState, engine: "Engine") -> dict:
    """The recipe of an edit state rendered by `engine` (a JSON-serialisable dict)."""
    lat = state.latent
    return {
        "format": RECIPE_FORMAT,
        "version": RECIPE_VERSION,
        "model": {
            "id": engine.model_id,
            "name": engine.model_name,
            "resolution": engine.resolution,
            "num_ws": engine.num_ws,
            "w_dim": engine.w_dim,
        },
        "bank": engine.bank.bank_id,
        "latent": {
            "ws": _b64(lat.ws),
            "shape": list(lat.ws.shape),
            "kind": lat.kind,
            "origin": lat.origin,
            "seed": lat.seed,
            "psi": lat.psi,
            "z": None if lat.z is None else _b64(lat.z),
        },
        "edit": {
            "sliders": {k: v for k, v in state.sliders},
            "method": state.method,
            "space": state.space,
            "layers": None if state.layers is None else list(state.layers),
            "locked": list(state.locked),
        },
    }


def encode_recipe(recipe: dict) -> str:
    return json.dumps(recipe, separators=(",", ":"), allow_nan=False)


def decode_recipe(text: str | bytes | dict) -> dict:
    """Parse a recipe from JSON text (or pass a dict through) and check its outline."""
    if isinstance(text, dict):
        recipe = text
    else:
        try:
            recipe = json.loads(text)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"the recipe is not valid JSON ({exc})") from None
    if not isinstance(recipe, dict):
        raise ValueError("the recipe must be a JSON object")
    fmt = recipe.get("format", RECIPE_FORMAT)
    if fmt != RECIPE_FORMAT:
        raise ValueError(f"not an editor recipe (format {fmt!r})")
    version = recipe.get("version", RECIPE_VERSION)
    if version != RECIPE_VERSION:
        raise ValueError(f"recipe version {version!r} is not supported (this editor reads version {RECIPE_VERSION})")
    if not isinstance(recipe.get("latent"), dict):
        raise ValueError("the recipe has no 'latent' object")
    if not isinstance(recipe.get("edit", {}), dict):
        raise ValueError("the recipe's 'edit' must be an object")
    return recipe


def recipe_to_state(recipe: str | bytes | dict, engine: "Engine") -> tuple[EditState, list[str]]:
    """Rebuild the edit state of a recipe for `engine`; returns (state, warnings).

    Raises ValueError when the recipe was made with another generator or is malformed. A recipe made with another
    bank still loads (the warnings say so) as long as its attributes exist in this bank.
    """
    recipe = decode_recipe(recipe)
    warnings: list[str] = []
    model = recipe.get("model") or {}
    if not isinstance(model, dict):
        raise ValueError("the recipe's 'model' must be an object")
    if model.get("id") not in (None, engine.model_id):
        raise ValueError(
            f"this recipe was made with model {model.get('name') or model.get('id')!r} "
            f"(id {model.get('id')}), but this app runs {engine.model_name!r} (id {engine.model_id})"
        )
    bank = recipe.get("bank")
    if bank is not None and bank != engine.bank.bank_id:
        warnings.append(f"recipe made with direction bank {bank!r}; this app uses {engine.bank.bank_id!r}")
    lat = recipe["latent"]
    if lat.get("ws") is not None:
        ws = _unb64(lat["ws"], "latent.ws")
        shape = lat.get("shape") or [engine.num_ws, engine.w_dim]
        if not (isinstance(shape, list) and all(isinstance(s, int) for s in shape)) or math.prod(shape) != ws.size:
            raise ValueError(f"recipe latent has {ws.size} values, which does not match its shape {shape!r}")
        z = _unb64(lat["z"], "latent.z") if lat.get("z") else None
        latent = Latent.from_array(
            ws.reshape(shape), engine.num_ws, engine.w_dim, origin=str(lat.get("origin") or "recipe"),
            seed=lat.get("seed"), psi=lat.get("psi"), z=z,
        )
    elif lat.get("seed") is not None:
        latent = engine.sample(lat["seed"], lat.get("psi", 0.7))
    else:
        raise ValueError("the recipe's latent needs either 'ws' or 'seed'")
    edit = recipe.get("edit") or {}
    sliders = edit.get("sliders") or {}
    if not isinstance(sliders, dict):
        raise ValueError("the recipe's 'edit.sliders' must map attribute names to numbers")
    layers = edit.get("layers")
    if layers is not None:
        if not (isinstance(layers, (list, tuple)) and len(layers) == 2):
            raise ValueError(f"the recipe's 'edit.layers' must be [lo, hi], got {layers!r}")
        layers = (int(layers[0]), int(layers[1]))
    locked = edit.get("locked") or []
    if not isinstance(locked, (list, tuple)):
        raise ValueError("the recipe's 'edit.locked' must be a list of attribute names")
    state = EditState.create(
        latent, sliders, method=edit.get("method"), space=edit.get("space", "w"), layers=layers, locked=locked
    )
    engine.check_state(state)
    return state, warnings


# ---------------------------------------------------------------------------------------------------------------
# Files


def png_bytes(image: np.ndarray, recipe: dict | None = None) -> bytes:
    """Encode an [H, W, 3] uint8 image as PNG with the recipe in a compressed text chunk."""
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    if recipe is not None:
        info.add_text(PNG_KEY, encode_recipe(recipe), zip=True)
    buf = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def read_png_recipe(source: str | Path | bytes) -> dict:
    """The recipe embedded in a PNG file (path or bytes); ValueError when unreadable or absent."""
    from PIL import Image, UnidentifiedImageError

    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.format != "PNG":
                raise ValueError(f"expected a PNG exported by the editor, got {im.format or 'an unknown'} image")
            im.load()
            text = dict(getattr(im, "text", {}) or {})
    except (UnidentifiedImageError, OSError, SyntaxError, zlib.error, EOFError) as exc:
        raise ValueError(f"the file is not a readable PNG ({exc})") from None
    if PNG_KEY not in text:
        raise ValueError("this PNG carries no edit recipe (was it exported by the editor?)")
    return decode_recipe(text[PNG_KEY])


def latent_npz_bytes(state: EditState, engine: "Engine") -> bytes:
    """The base and edited latents as .npz: ws [num_ws, w_dim], edited_ws, z (if sampled), recipe JSON."""
    buf = io.BytesIO()
    arrays = {
        "ws": np.asarray(state.latent.ws, np.float32),
        "edited_ws": engine.edited_ws(state).numpy(),
        "recipe": np.array(encode_recipe(state_to_recipe(state, engine))),
    }
    if state.latent.z is not None:
        arrays["z"] = np.asarray(state.latent.z, np.float32)
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def read_latent_npz(source: str | Path | bytes) -> dict:
    """The arrays of a latent .npz (no pickles): {'ws': ..., 'edited_ws': ..., 'recipe': str, ...}."""
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as f:
            out = {k: f[k] for k in f.files}
    except (OSError, ValueError, zlib.error, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"not a readable .npz latent file ({exc})") from None
    if "ws" not in out:
        raise ValueError("the .npz file has no 'ws' array")
    if "recipe" in out:
        out["recipe"] = str(out["recipe"])
    return out


def gif_bytes(frames: Sequence[np.ndarray], fps: float = 12.0, bounce: bool = True) -> bytes:
    """An animated GIF of [H, W, 3] uint8 frames (played forward then back when bounce)."""
    from PIL import Image

    if not frames:
        raise ValueError("no frames to write")
    seq = list(frames) + (list(frames[-2:0:-1]) if bounce else [])
    images = [Image.fromarray(np.asarray(f, np.uint8)) for f in seq]
    buf = io.BytesIO()
    images[0].save(
        buf, format="GIF", save_all=True, append_images=images[1:], duration=int(round(1000 / fps)), loop=0
    )
    return buf.getvalue()


def write_mp4(frames: Sequence[np.ndarray], path: str | Path, fps: float = 24.0, bounce: bool = True) -> None:
    """An H.264 MP4 of [H, W, 3] uint8 frames via imageio-ffmpeg (its wheel ships ffmpeg)."""
    try:
        import imageio_ffmpeg
    except ImportError:
        raise RuntimeError("MP4 export needs the imageio-ffmpeg package (pip install imageio-ffmpeg)") from None
    if not frames:
        raise ValueError("no frames to write")
    seq = list(frames) + (list(frames[-2:0:-1]) if bounce else [])
    h, w = seq[0].shape[:2]
    writer = imageio_ffmpeg.write_frames(
        str(path), (w, h), fps=fps, codec="libx264", pix_fmt_out="yuv420p", macro_block_size=2,
        output_params=["-movflags", "+faststart"], ffmpeg_log_level="error",
    )
    writer.send(None)
    for f in seq:
        writer.send(np.ascontiguousarray(f, dtype=np.uint8))
    writer.close()
