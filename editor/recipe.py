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
import struct
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
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_RECIPE_BYTES = 4 * 2**20  # a recipe of a 1024 px W+ latent is ~ 50 KB
MAX_PNG_PIXELS = 64 * 10**6  # a re-opened PNG may declare at most this many pixels (never decoded anyway)
MAX_NPZ_MEMBER_BYTES = 16 * 2**20  # per array of a latent .npz (a 1024 px W+ latent is 36 KB)


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


def _whole(value: Any, what: str) -> int:
    """A whole number from JSON (an int, or a float with no fraction); ValueError naming the field otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"the recipe's {what} must be a whole number, got {value!r}")
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise ValueError(f"the recipe's {what} must be a whole number, got {value!r}")
    return int(value)


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
        latent = engine.sample(_whole(lat["seed"], "latent.seed"), lat.get("psi", 0.7))
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
        layers = (_whole(layers[0], "edit.layers"), _whole(layers[1], "edit.layers"))
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


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) declared by a PNG's header, read without decoding anything; ValueError when `data` does not
    start like a PNG."""
    if data[:8] != PNG_SIGNATURE:
        raise ValueError("expected a PNG exported by the editor (this file is not a PNG)")
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise ValueError("the file is not a readable PNG (no header chunk)")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def read_png_recipe(source: str | Path | bytes) -> dict:
    """The recipe embedded in a PNG file (path or bytes); ValueError when unreadable or absent.

    Reads the chunk structure only (lengths, CRCs, the recipe's text chunk, decompressed to at most
    MAX_RECIPE_BYTES); the pixels are never decoded, so a PNG declaring a huge size costs nothing, and one declaring
    more than MAX_PNG_PIXELS is refused from its header.
    """
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    width, height = png_size(data)
    if width * height > MAX_PNG_PIXELS or not (width and height):
        raise ValueError(f"the PNG declares {width}x{height} pixels; an image exported by the editor has at most "
                         f"{MAX_PNG_PIXELS // 10**6} million")
    pos, text, ended = 8, None, False
    while pos < len(data):
        if pos + 12 > len(data):
            raise ValueError("the file is not a readable PNG (truncated)")
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if len(body) != length or pos + 12 + length > len(data):
            raise ValueError("the file is not a readable PNG (truncated)")
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        if zlib.crc32(kind + body) != crc:
            raise ValueError(f"the file is not a readable PNG (chunk {kind!r} is corrupt)")
        pos += 12 + length
        if kind == b"IEND":
            ended = True
            break
        if kind in (b"tEXt", b"zTXt", b"iTXt") and text is None:
            text = _png_text(kind, body)
    if not ended:
        raise ValueError("the file is not a readable PNG (truncated: no end chunk)")
    if text is None:
        raise ValueError("this PNG carries no edit recipe (was it exported by the editor?)")
    return decode_recipe(text)


def _png_text(kind: bytes, body: bytes) -> str | None:
    """The recipe text of one PNG text chunk, or None when the chunk holds another keyword."""
    keyword, _, rest = body.partition(b"\0")
    if keyword != PNG_KEY.encode("latin-1"):
        return None
    if kind == b"tEXt":
        raw = rest
    elif kind == b"zTXt":
        raw = _inflate(rest[1:])
    else:  # iTXt: compression flag, method, language tag, translated keyword, text
        flag = rest[:1]
        _, _, rest = rest[2:].partition(b"\0")
        _, _, rest = rest.partition(b"\0")
        raw = _inflate(rest) if flag == b"\1" else rest
    if len(raw) > MAX_RECIPE_BYTES:
        raise ValueError(f"the PNG's recipe is larger than {MAX_RECIPE_BYTES // 2**20} MB")
    return raw.decode("utf-8", "replace")


def _inflate(data: bytes) -> bytes:
    """zlib data decompressed to at most MAX_RECIPE_BYTES + 1 bytes (a compression bomb stops there)."""
    try:
        return zlib.decompressobj().decompress(data, MAX_RECIPE_BYTES + 1)
    except zlib.error as exc:
        raise ValueError(f"the file is not a readable PNG (its recipe chunk is corrupt: {exc})") from None


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
    """The arrays of a latent .npz (no pickles): {'ws': ..., 'edited_ws': ..., 'recipe': str, ...}.

    Memory stays bounded whatever the file claims: every member's declared size and every array's header (dtype,
    shape) are checked before anything is read, and reading stops at the declared size (a zip bomb's member is
    refused from its size, one that lies about it fails its CRC after at most MAX_NPZ_MEMBER_BYTES).
    """
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    out = {}
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            members = [i for i in zf.infolist() if i.filename.endswith(".npy")]
            if len(members) > 16:
                raise ValueError(f"the .npz has {len(members)} arrays; a latent file has at most 4")
            for info in members:
                if info.file_size > MAX_NPZ_MEMBER_BYTES:
                    raise ValueError(f"the .npz array {info.filename[:-4]!r} declares {info.file_size:,} bytes; "
                                     f"a latent file's arrays have at most {MAX_NPZ_MEMBER_BYTES:,}")
                with zf.open(info) as f:
                    out[info.filename[:-4]] = _read_npy(f, info.filename[:-4])
    except (OSError, zlib.error, EOFError, zipfile.BadZipFile, struct.error) as exc:
        raise ValueError(f"not a readable .npz latent file ({exc})") from None
    if "ws" not in out:
        raise ValueError("the .npz file has no 'ws' array")
    if "recipe" in out:
        out["recipe"] = str(out["recipe"])
    return out


def _read_npy(f, name: str) -> np.ndarray:
    """One .npy member: its header checked (plain numeric or text dtype, at most MAX_NPZ_MEMBER_BYTES) before the
    data is read."""
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except ValueError as exc:
        raise ValueError(f"the .npz array {name!r} has an unreadable header ({exc})") from None
    if dtype.hasobject or dtype.kind not in "fiuU":
        raise ValueError(f"the .npz array {name!r} has dtype {dtype}; a latent file holds numbers and text only")
    count = math.prod(shape)
    if count * dtype.itemsize > MAX_NPZ_MEMBER_BYTES:
        raise ValueError(f"the .npz array {name!r} declares shape {tuple(shape)} ({count:,} values); a latent "
                         f"file's arrays have at most {MAX_NPZ_MEMBER_BYTES:,} bytes")
    raw = f.read(count * dtype.itemsize)
    if len(raw) != count * dtype.itemsize:
        raise ValueError(f"the .npz array {name!r} is truncated")
    arr = np.frombuffer(raw, dtype=dtype)
    return arr.reshape(shape, order="F" if fortran else "C")


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
