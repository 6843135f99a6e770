"""Request-level operations shared by the web app, its HTTP API and scripts.

`app.py` only lays out widgets and wires events; every handler calls one function here. These functions take plain
values (numbers, strings, JSON text, file paths), validate them with clear `ValueError` messages, call the `Engine`,
and return images, recipes and files. Choosing and opening the model and bank (`open_engine`) also lives here.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import numpy as np
import torch

from editor.engine import (
    LAYER_PRESETS,
    Direction,
    EditBank,
    EditState,
    Engine,
    EngineConfig,
    Latent,
    layer_preset,
)
from editor.recipe import (
    encode_recipe,
    gif_bytes,
    latent_npz_bytes,
    png_bytes,
    png_size,
    read_latent_npz,
    read_png_recipe,
    recipe_to_state,
    state_to_recipe,
    write_mp4,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
DIRECTIONS_DIR = REPO_ROOT / "directions"
FALLBACK_RANDOM = "random:toon-64"  # what runs when neither FFHQ nor the demo generator is available
EXPORT_FORMATS = ("png", "npz", "gif", "mp4")


# ----------------------------------------------------------------------------------------------------------------
# Choosing the model and the bank


@dataclass(frozen=True)
class ModelCard:
    """What runs, shown at the top of the app."""

    source: str  # what was loaded: 'ffhq-1024', 'demo', 'random:toon-64', a path
    description: str  # one line
    license_name: str
    license_text: str
    notices: tuple[str, ...]  # why this model / bank runs when it is not the one asked for; shown prominently


def pca_bank(G: torch.nn.Module, n_components: int = 8, n_samples: int = 4000, seed: int = 0,
             device: str | torch.device = "cpu", psi: float = 1.0) -> EditBank:
    """GANSpace-style fallback bank: the leading principal components of W (from seeded samples) as sliders.

    Used when no direction bank exists for a generator, so the editor always has meaningful sliders.
    """
    from editor.directions import pca_directions

    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n_samples, G.z_dim, generator=gen)  # [n_samples, z_dim]
    c = torch.zeros(n_samples, getattr(G, "c_dim", 0))
    ws = []
    with torch.inference_mode():
        for i in range(0, n_samples, 512):
            ws.append(G.mapping(z[i:i + 512].to(device), c[i:i + 512].to(device), truncation_psi=psi)[:, 0].cpu())
    w = torch.cat(ws).double().numpy()  # [n_samples, w_dim]
    pca = pca_directions(w, min(n_components, w.shape[1]))
    dirs = tuple(
        Direction(f"pc{i}", pca.components[i], sigma=float(pca.stds[i]), method="pca", space="w")
        for i in range(pca.components.shape[0])
    )
    return EditBank(dirs, bank_id=f"pca-{n_components}-{n_samples}-{seed}",
                    description=f"principal components of W ({n_samples} samples): no labelled bank for this model")


def _load_bank_file(path: Path, G: torch.nn.Module, source: str | None = None, *, verify: bool = True,
                    info=None, distill_root: Path | None = None, device: str | torch.device = "cpu") -> EditBank:
    """A bank file as the engine's bank. verify=False checks only the architecture (an explicit --bank). With
    `distill_root`, the bank's Z-only boundaries are distilled into W directions for G (once; cached there)."""
    from editor.bank import generator_info, load_bank, to_engine_bank

    info = info or generator_info(G, source)
    bank = load_bank(path, info, check_identity=verify, source=source)
    if distill_root is not None:
        from editor.public_banks import as_bank, distill_for_generator

        extra = distill_for_generator(G, bank, info.model_id, distill_root, device=device)
        if extra:
            bank = as_bank(bank.generator, list(bank.entries) + extra, bank.command)
    engine_bank = to_engine_bank(bank, description=f"{path.name}\n{bank.command or ''}".rstrip())
    if not engine_bank.directions:
        raise ValueError(f"{path} holds no linear W / W+ directions the editor can use")
    return engine_bank


def default_bank_path(source: str) -> Path:
    """directions/<slug>.safetensors, named the way `python -m editor build-bank` names its output."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", str(source).split("/")[-1].replace(".safetensors", "")).strip("-")
    return DIRECTIONS_DIR / f"{slug or 'model'}.safetensors"


def distill_dir() -> Path:
    """Where banks' Z boundaries distilled into W for a generator are cached (by its model_id)."""
    from editor.checkpoints import cache_dir

    return cache_dir() / "distilled"


def available_models() -> list[str]:
    """The named models this machine can run without a download: the bundled demo (when in the checkout) and every
    registry model whose file is in the cache."""
    from editor.checkpoints import CONFIG_FILE, DEMO_DIR, STATE_FILE, list_models
    from editor.checkpoints.registry import cached_path

    out = []
    for info in list_models():
        if info.filename is None:
            if (DEMO_DIR / STATE_FILE).is_file() and (DEMO_DIR / CONFIG_FILE).is_file():
                out.append(info.name)
        elif cached_path(info).is_file():
            out.append(info.name)
    return out


def _load_first(candidates: Sequence[str], device) -> tuple[torch.nn.Module | None, str | None, list[str]]:
    """The first candidate that loads, its name, and why the ones before it did not."""
    import logging

    from editor import checkpoints

    errors = []
    for candidate in candidates:
        try:
            return checkpoints.load_generator(candidate, device, progress=False), candidate, errors
        except (FileNotFoundError, ValueError, OSError) as exc:
            errors.append(f"{candidate}: {exc}")
        except Exception as exc:  # a crafted or broken file must not stop the app: fall back, and log the details
            logging.getLogger(__name__).exception("loading %s failed", candidate)
            errors.append(f"{candidate}: {type(exc).__name__}: {exc}"[:500])
    return None, None, errors


def open_engine(model: str = "auto", bank: str | None = None, device: str = "cpu",
                config: EngineConfig = EngineConfig(), pca_samples: int = 4000,
                distill: bool = True) -> tuple[Engine, ModelCard]:
    """Load the generator and its bank and build the engine. Never fails for a bad model or bank: falls back
    (requested model -> bundled demo -> random weights; bank -> PCA directions) and says why in `ModelCard.notices`.

    model: 'auto' (FFHQ-1024 if reachable or cached, else the bundled demo, else random weights), a registry name,
        a path, a URL or 'random:<config>'.
    bank: a bank file, attached when its architecture fits (with an "unverified" notice unless it was built for
        these weights); None looks for the bank of what the generator verifiably is (`bank.generator_info`), else
        directions/<model>.safetensors.
    distill: turn the bank's Z-only boundaries into W sliders for this generator (cached by its identity).
    """
    from editor import checkpoints
    from editor.bank import generator_info

    notices: list[str] = []
    tried = ["ffhq-1024", "demo", FALLBACK_RANDOM] if model == "auto" else [model, "demo", FALLBACK_RANDOM]
    G, source, errors = _load_first(tried, device)
    if G is None:
        raise RuntimeError("no generator could be loaded: " + " | ".join(errors))
    if model == "auto" and source != "ffhq-1024":
        why = "the FFHQ weights are unavailable"
        if source == "demo":
            notices.append(f"Running the small bundled demo model (toon faces) because {why}. "
                           "Set EDITOR_MODEL=ffhq-1024 (or --model PATH) where they can be downloaded or are cached.")
        else:
            notices.append(f"Running a random-weight generator ({source}) because {why} and the bundled demo "
                           "model is not in this checkout yet: images are abstract patterns, not faces.")
    elif model != "auto" and source != model:
        notices.append(f"The requested model could not be loaded ({errors[0]}). Running "
                       + ("the bundled demo model instead." if source == "demo" else f"random weights ({source}) "
                          "instead: the bundled demo model is not in this checkout."))

    info = generator_info(G, source)
    description, lic_name, lic_text = _describe(source, info.verified_as, notices)
    registry_bank = None
    if info.verified_as:
        entry = checkpoints.REGISTRY[info.verified_as]
        registry_bank = DIRECTIONS_DIR / f"{entry.bank_name or entry.name}.safetensors"
    bank_path = Path(bank) if bank else (registry_bank or default_bank_path(source))
    engine_bank = None
    root = distill_dir() if distill else None
    if bank or bank_path.is_file():
        try:
            engine_bank = _load_bank_file(bank_path, G, source, info=info, distill_root=root, device=device)
        except (FileNotFoundError, ValueError) as exc:
            if bank and "another generator" in str(exc):
                try:  # an explicit --bank of the same architecture: attach it, and say it is not verified
                    engine_bank = _load_bank_file(bank_path, G, source, verify=False, info=info, distill_root=root,
                                                  device=device)
                    notices.append(f"Unverified bank: {bank_path.name} was built for other weights (or for "
                                   "published weights this generator is not verified to be). It is attached because "
                                   "its architecture fits; its sliders may not do what their names say.")
                except (FileNotFoundError, ValueError) as exc2:
                    exc = exc2
            if engine_bank is None:
                notices.append(f"The direction bank could not be used ({exc}). "
                               "Sliders show principal components of W.")
        except Exception as exc:  # a crafted bank must not stop the app either
            import logging

            logging.getLogger(__name__).exception("loading the bank %s failed", bank_path)
            notices.append(f"The direction bank could not be used ({type(exc).__name__}: {exc}). "
                           "Sliders show principal components of W.")
    elif not source.startswith("random:"):
        notices.append(f"No direction bank for this model (looked for {_shown(bank_path)}). "
                       "Sliders show principal components of W.")
    if engine_bank is None:
        engine_bank = pca_bank(G, n_samples=pca_samples, device=device)
    engine = Engine(G, engine_bank, device=device, config=config, model_id=info.model_id, model_name=source)
    return engine, ModelCard(source, description, lic_name, lic_text, tuple(notices))


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def _describe(source: str, verified_as: str | None, notices: list[str]) -> tuple[str, str, str]:
    """(description, licence name, licence text) of what runs: a registry model's only when the weights are
    verified to be it (or for the bundled demo); never from a file name. Adds a notice for unverified registry files."""
    from editor import checkpoints

    if verified_as:
        entry = checkpoints.REGISTRY[verified_as]
        return f"{entry.description} [verified: fingerprint of its download]", entry.license_name, entry.license_text
    if source == "demo":
        entry = checkpoints.REGISTRY["demo"]
        return entry.description, entry.license_name, entry.license_text
    if source.startswith("random:"):
        return f"random weights ({source})", "none (random weights)", ""
    named = checkpoints.registry_entry_for(source)
    if named is not None:
        bank_note = (f" and its bank is not attached (pass --bank directions/{named.bank_name}.safetensors to use it "
                     "anyway)") if named.bank_name else ""
        notices.append(f"The file in the cache for {named.name} was not downloaded by this program, so it is not "
                       f"verified to be {named.name}: it is shown as an unknown generator{bank_note}. If it is "
                       f"NVIDIA's file, its licence applies: {named.license_name}.")
        return (f"unverified generator from the cache file for {named.name}",
                f"unknown (unverified; if these are NVIDIA's weights: {named.license_name})", named.license_text)
    return f"generator from {source}", "see the checkpoint's model card", ""


# ----------------------------------------------------------------------------------------------------------------
# Projector seam (filled by the photo pipeline: align + project)


@dataclass(frozen=True)
class Projection:
    """What a projector returns for one photo."""

    aligned: np.ndarray  # [S, S, 3] uint8: the face aligned the FFHQ way
    ws: np.ndarray  # [num_ws, w_dim] the latent that reconstructs it
    paste_back: Callable[[np.ndarray], np.ndarray] | None = None  # edited aligned face -> whole photo


class Projector(Protocol):
    """photo [H, W, 3] uint8, progress(fraction, message) -> Projection. Raises ValueError (e.g. no face found)."""

    def __call__(self, photo: np.ndarray, progress: Callable[[float, str], None]) -> Projection: ...


def read_photo(path: str | Path) -> np.ndarray:
    """A photo file as [H, W, 3] uint8 RGB, upright (EXIF orientation applied); ValueError when it is not a
    readable image or is too large: `editor.align.load_image` reads the size from the header and refuses more than
    `align.MAX_PIXELS` before decoding. Messages name the file, never the folder it is in."""
    from editor.align import MAX_PIXELS, ImageError, load_image

    path = Path(path)
    size = photo_size(path)
    if size == (0, 0) or (size is not None and size[0] * size[1] > MAX_PIXELS):
        shown = "more than 179 million" if size == (0, 0) else f"{size[0]}x{size[1]}"
        raise ImageError(f"the photo {path.name!r} is {shown} pixels; the limit is {MAX_PIXELS // 10**6} million. "
                         "Downscale it first.")
    try:
        return load_image(str(path))
    except ImageError as exc:
        raise ImageError(str(exc).replace(str(path), f"the photo {path.name!r}")) from None


def photo_size(path: str | Path) -> tuple[int, int] | None:
    """(width, height) from an image file's header, without decoding it: (0, 0) when Pillow refuses to even open
    it as a decompression bomb, None when it is not an image Pillow knows (the decoder then says what is wrong)."""
    import warnings

    from PIL import Image

    with open(path, "rb") as f:
        head = f.read(64)
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        try:
            return png_size(head)
        except ValueError:
            return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(path) as im:
                return im.size
        except Image.DecompressionBombError:
            return (0, 0)
        except Exception:  # not an image, or a broken one: load_image gives the message
            return None


def downscale(image: np.ndarray, max_side: int) -> np.ndarray:
    """An [H, W, 3] uint8 image shrunk (area filter) so that its longer side is at most `max_side`."""
    from PIL import Image

    h, w = image.shape[:2]
    if max(h, w) <= max_side:
        return image
    f = max_side / max(h, w)
    return np.asarray(Image.fromarray(image).resize((max(1, round(w * f)), max(1, round(h * f))), Image.BOX))


def project_photo(engine: Engine, projector: Projector, path: str | Path,
                  progress: Callable[[float, str], None] = lambda f, m: None) -> tuple[np.ndarray, np.ndarray, str]:
    """A photo file -> (aligned crop, reconstruction, recipe)."""
    result = projector(read_photo(path), progress)
    st = EditState.create(engine.latent_from_array(result.ws, origin="projected photo"))
    return result.aligned, engine.render(st), recipe_text(engine, st)


PROJECTOR_MISSING = ("Photo upload is not available yet in this app: no face projector is configured. "
                     "Sample a face instead.")


# ----------------------------------------------------------------------------------------------------------------
# Parsing plain inputs


def parse_edits(text: str | dict | None) -> dict[str, float]:
    """'{"smile": 1.5}' (JSON object) or 'smile=1.5, age=-1' -> {'smile': 1.5, 'age': -1.0}."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return {}
    if isinstance(text, dict):
        items = text
    else:
        t = text.strip()
        if t.startswith("{"):
            try:
                items = json.loads(t)
            except ValueError as exc:
                raise ValueError(f"edits must be a JSON object like {{\"smile\": 1.5}} ({exc})") from None
        else:
            items = {}
            for part in t.split(","):
                name, sep, value = part.partition("=")
                if not sep or not name.strip():
                    raise ValueError(f"edits must look like 'smile=1.5, age=-1'; cannot read {part.strip()!r}")
                items[name.strip()] = value.strip()
    if not isinstance(items, dict):
        raise ValueError("edits must be a JSON object mapping attribute names to numbers")
    out = {}
    for name, value in items.items():
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise ValueError(f"slider {name!r}: {value!r} is not a number") from None
        out[str(name)] = value
    return out


def parse_locked(text: str | Sequence[str] | None) -> list[str]:
    """'["age", "glasses"]' or 'age, glasses' or a list -> ['age', 'glasses']."""
    if text is None:
        return []
    if isinstance(text, (list, tuple)):
        return [str(t) for t in text]
    t = str(text).strip()
    if not t:
        return []
    if t.startswith("["):
        try:
            items = json.loads(t)
        except ValueError as exc:
            raise ValueError(f"locked must be a JSON list of attribute names ({exc})") from None
        if not isinstance(items, list):
            raise ValueError("locked must be a list of attribute names")
        return [str(i) for i in items]
    return [p.strip() for p in t.split(",") if p.strip()]


def parse_layers(text: str | None, num_ws: int) -> tuple[str, tuple[int, int] | None]:
    """'all' | 'coarse' | 'middle' | 'fine' | 'LO-HI' (inclusive, like the CLI) -> (space, [lo, hi) or None)."""
    t = (text or "all").strip().lower()
    if t in ("all", "w"):
        return "w", None
    if t in LAYER_PRESETS:
        return "w+", layer_preset(t, num_ws)
    lo, sep, hi = t.partition("-")
    try:
        lo_i = int(lo)
        hi_i = int(hi) if sep else lo_i
    except ValueError:
        raise ValueError(f"layers must be all, coarse, middle, fine or a range like '2-5', got {text!r}") from None
    return "w+", layer_preset("custom", num_ws, (lo_i, hi_i + 1))


def preset_layers(preset: str, num_ws: int, first: Any = None, last: Any = None) -> tuple[int, int]:
    """The [lo, hi) range of a preset ('all', 'coarse', 'middle', 'fine') or of 'custom' with the inclusive layer
    numbers first..last (as the app's two layer sliders and the CLI's '2-5' give them)."""
    if preset != "custom":
        return layer_preset(preset or "all", num_ws)
    try:
        lo, hi = _whole_number(first), _whole_number(last) + 1
    except (TypeError, ValueError, OverflowError):
        raise ValueError("the custom layer range needs two layer numbers") from None
    return layer_preset("custom", num_ws, (lo, hi))


def _whole_number(value: Any) -> int:
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise ValueError(f"{value!r} is not a whole number")
    return int(value)


def bank_title(bank: EditBank) -> str:
    """A bank's name for the page header (its file name, or what it is)."""
    return (bank.description or bank.bank_id).splitlines()[0]


def bank_details(bank: EditBank) -> str:
    """Markdown about a bank: where it comes from, its methods, how many directions (for a details accordion)."""
    lines = (bank.description or "").splitlines()
    out = [f"**Direction bank:** {lines[0] if lines else bank.bank_id} ({len(bank.directions)} directions for "
           f"{len(bank.attributes)} sliders; methods: {', '.join(bank.methods)})."]
    if len(lines) > 1:
        out.append("Made with:\n\n```\n" + "\n".join(lines[1:]) + "\n```")
    return "\n\n".join(out)


def preset_name(layers: tuple[int, int] | None, num_ws: int) -> str:
    """The layer preset whose range is `layers` ('coarse', 'middle', 'fine'), else 'custom' (or 'middle' for None)."""
    if layers is None:
        return "middle"
    for name in ("coarse", "middle", "fine"):
        if layer_preset(name, num_ws) == tuple(layers):
            return name
    return "custom"


def controls_to_state(engine: Engine, latent: Latent, names: Sequence[str], values: Sequence[Any],
                      method: str | None, space: str, preset: str, lo: Any, hi: Any,
                      locked: Sequence[str] | None) -> EditState:
    """The edit state described by the app's widgets (slider values in `names` order; lo/hi inclusive layers)."""
    if len(names) != len(values):
        raise ValueError(f"{len(values)} slider values for {len(names)} attributes")
    layers = preset_layers(preset, engine.num_ws, lo, hi) if space == "w+" else None
    method = None if method in (None, "", "auto") else method
    return EditState.create(latent, dict(zip(names, (0.0 if v is None else v for v in values))), method=method,
                            space=space, layers=layers, locked=locked or ())


# ----------------------------------------------------------------------------------------------------------------
# Operations


def sample(engine: Engine, seed: Any, psi: Any, like: EditState | None = None) -> EditState:
    """A sampled face; keeps the edit of `like` (sliders, method, layers, locks) when given."""
    latent = engine.sample(seed, psi)
    if like is None:
        return EditState.create(latent)
    return EditState(latent, like.sliders, like.method, like.space, like.layers, like.locked)


def recipe_text(engine: Engine, state: EditState) -> str:
    return encode_recipe(state_to_recipe(state, engine))


def api_edit(engine: Engine, recipe: str, edits: Any = None, method: str | None = None, layers: str | None = None,
             locked: Any = None, preview: bool = False) -> tuple[np.ndarray, str]:
    """Edit the state of a recipe (JSON text): set `edits` sliders (merged over the recipe's), and when given
    replace the method ('' keeps it; 'auto' = bank default), layers ('all', 'coarse', ..., '2-5') and locked list."""
    state, _ = recipe_to_state(recipe, engine)
    space, rng = (state.space, state.layers) if not layers else parse_layers(layers, engine.num_ws)
    new_method = state.method if not method else (None if method == "auto" else method)
    if new_method is not None and new_method not in engine.bank.methods:
        raise ValueError(f"unknown method {new_method!r}; this bank has: {', '.join(engine.bank.methods)}")
    lock = state.locked if locked in (None, "") else parse_locked(locked)
    sliders = dict(state.sliders)
    sliders.update(parse_edits(edits))
    new = EditState.create(state.latent, sliders, method=new_method, space=space, layers=rng, locked=lock)
    return engine.render(new, preview=bool(preview)), recipe_text(engine, new)


MAX_RECIPE_FILE_BYTES = 64 * 2**20  # an exported PNG of a 1024 px face is ~ 2 MB


def read_recipe_file(engine: Engine, path: str | Path) -> tuple[EditState, list[str]]:
    """Re-open an exported PNG (recipe in its text chunk), a latent .npz or a recipe .json. Sizes are checked
    before anything is decoded (`recipe.read_png_recipe`, `recipe.read_latent_npz`)."""
    path = Path(path)
    size = path.stat().st_size
    if size > MAX_RECIPE_FILE_BYTES:
        raise ValueError(f"{path.name} is {size / 2**20:.0f} MB; recipes, latents and exported PNGs are smaller "
                         f"than {MAX_RECIPE_FILE_BYTES // 2**20} MB")
    data = path.read_bytes()
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return recipe_to_state(read_png_recipe(data), engine)
    if data[:2] == b"PK":  # .npz is a zip archive
        arrays = read_latent_npz(data)
        if "recipe" in arrays:
            return recipe_to_state(arrays["recipe"], engine)
        return EditState.create(engine.latent_from_array(arrays["ws"], origin=path.name)), [
            "the .npz had no recipe: loaded its latent only"]
    if data.lstrip()[:1] == b"{":
        return recipe_to_state(data.decode("utf-8", "replace"), engine)
    raise ValueError(f"{path.name}: expected a PNG exported by the editor, a latent .npz or a recipe .json")


def export_dir() -> Path:
    """A per-process folder under the system temp folder for exported files (Gradio copies them to its cache)."""
    d = Path(tempfile.gettempdir()) / f"stylegan2-editor-exports-{os.getpid()}"
    d.mkdir(parents=True, exist_ok=True)
    return d


DEFAULT_WALK_STEPS = 24
MAX_WALK_STEPS = 240


def walk_steps(steps: Any) -> int:
    """The frame count of a walk: DEFAULT_WALK_STEPS when not given (None / ''), else a whole number in
    [2, MAX_WALK_STEPS] (0 is an error, not the default)."""
    if steps is None or steps == "":
        return DEFAULT_WALK_STEPS
    try:
        n = _whole_number(float(steps) if isinstance(steps, str) else steps)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"steps must be a whole number of frames, got {steps!r}") from None
    if not 2 <= n <= MAX_WALK_STEPS:
        raise ValueError(f"steps must be in [2, {MAX_WALK_STEPS}] frames, got {n}")
    return n


def export(engine: Engine, state: EditState, fmt: str, attribute: str | None = None, lo: float = -3.0,
           hi: float = 3.0, steps: Any = DEFAULT_WALK_STEPS, fps: float = 12.0, out_dir: Path | None = None) -> Path:
    """Write one export and return its path: 'png' (image + recipe), 'npz' (latents), 'gif' / 'mp4' (slider walk
    of `attribute` from lo to hi in `steps` frames, other sliders as in the state)."""
    fmt = (fmt or "").lower().lstrip(".")
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"export format must be one of {EXPORT_FORMATS}, got {fmt!r}")
    steps = walk_steps(steps)
    out = (out_dir or export_dir()) / f"edit-{state.latent.key[:8]}-{uuid.uuid4().hex[:8]}.{fmt}"
    if fmt == "png":
        out.write_bytes(png_bytes(engine.render(state), state_to_recipe(state, engine)))
    elif fmt == "npz":
        out.write_bytes(latent_npz_bytes(state, engine))
    else:
        if not attribute:
            raise ValueError("a GIF / MP4 walk needs an attribute to move")
        for name, v in (("from", lo), ("to", hi)):
            if v is None or not math.isfinite(float(v)):
                raise ValueError(f"walk {name} value must be a finite number")
        frames = engine.slider_walk(state, attribute, float(lo), float(hi), steps=steps)
        if fmt == "gif":
            out.write_bytes(gif_bytes(frames, fps=fps))
        else:
            write_mp4(frames, out, fps=fps)
    return out


def export_recipe(engine: Engine, recipe: str, fmt: str, attribute: str | None = None, lo: float = -3.0,
                  hi: float = 3.0, steps: Any = None) -> Path:
    """`export` of a recipe's state (the HTTP API's /export)."""
    state, _ = recipe_to_state(recipe, engine)
    return export(engine, state, fmt, attribute, lo, hi, steps)


def animation(engine: Engine, a: Latent, b: Latent, mode: str, steps: int, fmt: str = "gif", fps: float = 12.0,
              out_dir: Path | None = None) -> Path:
    """A GIF / MP4 from face a to face b ('w' lerp or 'z' slerp)."""
    frames = engine.interpolate(a, b, steps=steps, mode=mode)
    out = (out_dir or export_dir()) / f"interp-{a.key[:6]}-{b.key[:6]}-{uuid.uuid4().hex[:6]}.{fmt}"
    if fmt == "gif":
        out.write_bytes(gif_bytes(frames, fps=fps))
    elif fmt == "mp4":
        write_mp4(frames, out, fps=fps)
    else:
        raise ValueError(f"animation format must be gif or mp4, got {fmt!r}")
    return out


def info(engine: Engine, card: ModelCard) -> dict:
    """What the API's /info endpoint returns."""
    return {
        "model": card.source,
        "model_id": engine.model_id,
        "description": card.description,
        "license": card.license_name,
        "notices": list(card.notices),
        "resolution": engine.resolution,
        "preview_resolution": engine.preview_resolution,
        "num_ws": engine.num_ws,
        "w_dim": engine.w_dim,
        "bank": engine.bank.bank_id,
        "attributes": list(engine.bank.attributes),
        "methods": list(engine.bank.methods),
        "layer_presets": {p: list(layer_preset(p, engine.num_ws)) for p in ("all", "coarse", "middle", "fine")},
    }
