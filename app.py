"""The web app: layout and event wiring only; every handler calls `editor.service` / `editor.engine`.

    python app.py                         # FFHQ-1024 if reachable or cached, else the bundled demo, else random
    python app.py --model demo --port 7860
    EDITOR_MODEL=random:small python app.py

`build_demo(engine, card, projector)` builds the `gr.Blocks` without launching it (tests use it). Per-user data lives
only in `gr.State` (an `EditState`: plain frozen data); the engine (weights, bank, caches) is shared read-only.

Named API endpoints (see README): /sample, /project, /edit, /export, /open_recipe, /info, /noop.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import random
import re
from typing import Callable, Sequence

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402

from editor import service  # noqa: E402
from editor.engine import EditState, Engine, EngineConfig  # noqa: E402
from editor.recipe import recipe_to_state  # noqa: E402

CSS = """
#before-image img, #after-image img { width: 100%; height: 100%; object-fit: contain; }
#model-notice blockquote { border-left: 4px solid #f59e0b; background: #fffbeb; padding: 0.4em 0.8em; }
"""  # pass to launch(css=CSS): small generators' images fill their boxes; notices stand out
SLIDER_LIMIT = 5.0  # UI sliders span +-5 sigma (the API accepts up to +-20)
N_CANDIDATES = 6


def _guard(fn: Callable) -> Callable:
    """Turn bad input (ValueError) into a message shown to this user; the app keeps serving everyone."""

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise gr.Error(str(exc), print_exception=False) from None

    return wrapped


PRIMARY_SLIDERS = 16  # shown open; the rest of a large bank goes into a collapsed accordion


def split_sliders(names) -> tuple[list[str], list[str]]:
    """Attributes first (binary / continuous), then per-class, PCA and SeFa sliders, which a large bank has many of."""
    def secondary(n: str) -> bool:
        return "=" in n or n.startswith(("pc", "sefa"))

    names = list(names)
    if len(names) <= PRIMARY_SLIDERS:
        return names, []
    first = [n for n in names if not secondary(n)][:PRIMARY_SLIDERS]
    return first, [n for n in names if n not in first]


def slider_id(attribute: str) -> str:
    """The HTML id of an attribute's slider (safe in CSS selectors)."""
    return "slider-" + re.sub(r"[^A-Za-z0-9_-]", "-", attribute)


def _notice_markdown(card: service.ModelCard, engine: Engine) -> str:
    lines = [f"**Model:** `{card.source}`: {card.description} ({engine.resolution} px). "
             f"**Licence:** {card.license_name}. **Sliders:** {engine.bank.description or engine.bank.bank_id}."]
    lines += [f"> ⚠️ {n}" for n in card.notices]
    return "\n\n".join(lines)


def build_demo(engine: Engine, card: service.ModelCard | None = None,
               projector: service.Projector | None = None, concurrency: int = 4,
               extra_tabs: Sequence[Callable[[gr.State], None]] = ()) -> gr.Blocks:
    """The Gradio app around one shared engine. `projector` (photo -> latent) may be None until it exists.
    `extra_tabs`: functions called inside the Blocks with the user's `gr.State` (EditState) to add more tabs."""
    card = card or service.ModelCard(engine.model_name, engine.model_name, "unknown", "", ())
    names = list(engine.bank.attributes)
    methods = ["auto"] + list(engine.bank.methods)

    with gr.Blocks(title="StyleGAN2 face editor", delete_cache=(300, 900)) as demo:
        state = gr.State(None)  # EditState of this user
        face_b = gr.State(None)  # Latent of the second face (interpolate / mix)
        projection = gr.State(None)  # service.Projection of this user's uploaded photo
        gr.Markdown("# StyleGAN2 face editor")
        gr.Markdown(_notice_markdown(card, engine), elem_id="model-notice")
        if card.license_text:
            with gr.Accordion("Model licence", open=False):
                gr.Markdown(card.license_text)

        with gr.Row():
            with gr.Column(scale=1, min_width=300):
                with gr.Tab("Sample"):
                    seed = gr.Number(value=0, precision=0, minimum=0, maximum=2**32 - 1, label="Seed", elem_id="seed")
                    psi = gr.Slider(-1.0, 1.5, value=0.7, step=0.05, label="Truncation ψ", elem_id="psi")
                    with gr.Row():
                        sample_btn = gr.Button("Sample", variant="primary", elem_id="sample-btn")
                        random_btn = gr.Button("Random seed", elem_id="random-btn")
                    gallery = gr.Gallery(label="Candidates (click one)", columns=3, height="auto", allow_preview=False,
                                         elem_id="candidates")
                    more_btn = gr.Button("More candidates", size="sm")
                    candidate_seeds = gr.State([])
                with gr.Tab("Upload photo"):
                    photo = gr.Image(label="Photo", type="numpy", sources=["upload", "clipboard"])
                    project_btn = gr.Button("Align and project", interactive=projector is not None)
                    if projector is None:
                        gr.Markdown(f"ℹ️ {service.PROJECTOR_MISSING}", elem_id="upload-missing")
                    with gr.Row():
                        aligned = gr.Image(label="Aligned crop", interactive=False)
                        recon = gr.Image(label="Reconstruction", interactive=False)
                    paste_btn = gr.Button("Paste the edited face back into the photo", interactive=False)
                    pasted = gr.Image(label="Edited photo", interactive=False, format="png")
                with gr.Tab("Open recipe"):
                    recipe_file = gr.File(label="PNG exported by the editor, latent .npz or recipe .json",
                                          file_types=[".png", ".npz", ".json"], elem_id="recipe-upload")

            with gr.Column(scale=2):
                with gr.Row():
                    before = gr.Image(label="Before", interactive=False, format="png", height=320,
                                      elem_id="before-image")
                    after = gr.Image(label="After", interactive=False, format="png", height=320,
                                     elem_id="after-image")
                status = gr.Markdown("", elem_id="status")
                by_name = {}
                primary, more = split_sliders(names)

                def slider_columns(group):  # two columns of sliders, in bank order
                    with gr.Row():
                        for half in (group[0::2], group[1::2]):
                            with gr.Column(min_width=240):
                                for n in half:
                                    by_name[n] = gr.Slider(-SLIDER_LIMIT, SLIDER_LIMIT, value=0.0, step=0.1,
                                                           label=f"{n} (σ)", elem_id=slider_id(n))

                slider_columns(primary)
                if more:
                    with gr.Accordion(f"More sliders ({len(more)}: categories, identity, PCA / SeFa)", open=False):
                        slider_columns(more)
                sliders = [by_name[n] for n in names]
                with gr.Row():
                    method = gr.Dropdown(methods, value="auto", label="Method", elem_id="method")
                    space = gr.Radio(["w", "w+"], value="w", label="Space (W: all layers, W+: a layer range)",
                                     elem_id="space")
                with gr.Row():
                    preset = gr.Radio(["coarse", "middle", "fine", "custom"], value="middle",
                                      label="W+ layer range", elem_id="layer-preset")
                    lo = gr.Slider(0, engine.num_ws - 1, value=0, step=1, label="custom: first layer")
                    hi = gr.Slider(0, engine.num_ws - 1, value=engine.num_ws - 1, step=1, label="custom: last layer")
                locks = gr.CheckboxGroup(names, label="Lock (other edits keep these unchanged)", elem_id="locks")
                reset_btn = gr.Button("Reset sliders", elem_id="reset-btn")

        with gr.Tab("Interpolate / style-mix"):
            with gr.Row():
                seed_b = gr.Number(value=1, precision=0, minimum=0, label="Face B seed")
                mode = gr.Radio(["w lerp", "z slerp"], value="w lerp", label="Interpolation")
                steps = gr.Slider(4, 48, value=16, step=1, label="Frames")
                mix_preset = gr.Radio(["coarse", "middle", "fine"], value="coarse", label="Style-mix layers from B")
            with gr.Row():
                image_b = gr.Image(label="Face B", interactive=False, format="png", height=200, elem_id="face-b")
                mixed = gr.Image(label="Mix: A with B's layers", interactive=False, format="png", height=200,
                                 elem_id="mixed")
                anim = gr.File(label="Animation A → B", elem_id="animation")
            with gr.Row():
                b_btn = gr.Button("Load face B")
                mix_btn = gr.Button("Style-mix")
                use_mix_btn = gr.Button("Edit the mix")
                anim_btn = gr.Button("Make GIF A → B")

        with gr.Tab("Export"):
            with gr.Row():
                walk_attr = gr.Dropdown(names, value=names[0] if names else None, label="Walk attribute")
                walk_lo = gr.Number(value=-3, label="from (σ)")
                walk_hi = gr.Number(value=3, label="to (σ)")
                walk_steps = gr.Slider(4, 64, value=24, step=1, label="Frames")
            with gr.Row():
                png_btn = gr.Button("PNG with recipe", elem_id="export-png-btn")
                npz_btn = gr.Button("Latent .npz")
                gif_btn = gr.Button("GIF of walk")
                mp4_btn = gr.Button("MP4 of walk")
            export_file = gr.File(label="Download", elem_id="export-file")

        for add_tab in extra_tabs:
            add_tab(state)

        controls = [state, method, space, preset, lo, hi, locks, *sliders]

        # -- handlers: a few lines each ------------------------------------------------------------------------
        def current(st, m, sp, pr, l, h, lk, *values) -> EditState:
            if st is None:
                raise ValueError("sample a face first")
            return service.controls_to_state(engine, st.latent, names, values, m, sp, pr, l, h, lk)

        @_guard
        def on_sample(sd, p, *ctl):
            st = ctl[0]
            like = current(*ctl) if st is not None else None
            new = service.sample(engine, sd, p, like)
            return new, engine.render(new.reset()), engine.render(new), f"Face: {new.latent.origin}"

        @_guard
        def on_random(p, *ctl):
            sd = random.randrange(2**31)
            return (sd, *on_sample(sd, p, *ctl))

        @_guard
        def on_candidates(p):
            seeds = [random.randrange(2**31) for _ in range(N_CANDIDATES)]
            images = [img for _, img in engine.candidates(seeds, p)]
            return seeds, [(img, f"seed {s}") for img, s in zip(images, seeds)]

        def on_pick(seeds, evt: gr.SelectData):
            return seeds[evt.index]

        @_guard
        def on_preview(*ctl):
            return engine.render(current(*ctl), preview=True)

        @_guard
        def on_full(*ctl):
            st = current(*ctl)
            return st, engine.render(st)

        @_guard
        def on_reset(*ctl):
            st = current(*ctl).reset()
            return (st, engine.render(st), *[0.0] * len(sliders))

        @_guard
        def on_open(path):
            if not path:
                return (gr.skip(),) * (len(sliders) + 10)
            st, warnings = service.read_recipe_file(engine, path)
            values = dict(st.sliders)
            msg = "Opened: " + (st.latent.origin or "recipe") + "".join(f"\n\n⚠️ {w}" for w in warnings)
            lo_v, hi_v = (st.layers[0], st.layers[1] - 1) if st.layers else (0, engine.num_ws - 1)
            return (st, engine.render(st.reset()), engine.render(st), msg, st.method or "auto", st.space,
                    service.preset_name(st.layers, engine.num_ws), lo_v, hi_v, list(st.locked),
                    *[values.get(n, 0.0) for n in names])

        @_guard
        def on_project(img, progress=gr.Progress()):
            if projector is None:
                raise ValueError(service.PROJECTOR_MISSING)
            if img is None:
                raise ValueError("upload a photo first")
            result = projector(img, lambda f, m: progress(f, desc=m))
            new = EditState.create(engine.latent_from_array(result.ws, origin="projected photo"))
            image = engine.render(new)
            return (new, result, gr.update(interactive=result.paste_back is not None), result.aligned, image,
                    image, image, "Face: projected photo", *[0.0] * len(sliders))

        @_guard
        def on_paste(proj, *ctl):
            if proj is None or proj.paste_back is None:
                raise ValueError("project a photo first")
            return proj.paste_back(engine.render(current(*ctl)))

        @_guard
        def on_face_b(sd, p):
            b = engine.sample(sd, p)
            return b, engine.render(EditState.create(b))

        def style_mixed(b, pr, ctl):
            """(current state, face A with face B's layers of preset pr)."""
            if b is None:
                raise ValueError("load face B first")
            st = current(*ctl)
            return st, engine.style_mix(st.latent, b, service.layer_preset(pr, engine.num_ws))

        @_guard
        def on_mix(b, pr, *ctl):
            return engine.render(EditState.create(style_mixed(b, pr, ctl)[1]))

        @_guard
        def on_use_mix(b, pr, *ctl):
            st, m = style_mixed(b, pr, ctl)
            new = EditState(m, st.sliders, st.method, st.space, st.layers, st.locked)
            return new, engine.render(new.reset()), engine.render(new), f"Face: {m.origin}"

        @_guard
        def on_anim(b, md, n, *ctl):
            if b is None:
                raise ValueError("load face B first")
            return str(service.animation(engine, current(*ctl).latent, b, md.split()[0], int(n)))

        def exporter(fmt):
            @_guard
            def on_export(attr, a, z, n, *ctl):
                return str(service.export(engine, current(*ctl), fmt, attr, a, z, int(n)))

            return on_export

        # -- wiring ---------------------------------------------------------------------------------------------
        face_outputs = [state, before, after, status]
        sample_btn.click(on_sample, [seed, psi, *controls], face_outputs, api_visibility="private")
        seed.submit(on_sample, [seed, psi, *controls], face_outputs, api_visibility="private")
        random_btn.click(on_random, [psi, *controls], [seed, *face_outputs], api_visibility="private")
        more_btn.click(on_candidates, [psi], [candidate_seeds, gallery], api_visibility="private")
        gallery.select(on_pick, [candidate_seeds], seed, api_visibility="private").then(
            on_sample, [seed, psi, *controls], face_outputs, api_visibility="private")
        for s in sliders:
            s.input(on_preview, controls, after, trigger_mode="always_last", show_progress="hidden",
                    api_visibility="private")
            s.release(on_full, controls, [state, after], trigger_mode="always_last", show_progress="hidden",
                      api_visibility="private")
        for c in (method, space, preset, lo, hi, locks):
            c.change(on_full, controls, [state, after], trigger_mode="always_last", show_progress="hidden",
                     api_visibility="private")
        reset_btn.click(on_reset, controls, [state, after, *sliders], api_visibility="private")
        recipe_file.upload(on_open, [recipe_file],
                           [state, before, after, status, method, space, preset, lo, hi, locks, *sliders],
                           api_visibility="private")
        project_btn.click(on_project, [photo],
                          [state, projection, paste_btn, aligned, recon, before, after, status, *sliders],
                          api_visibility="private", concurrency_limit=1, concurrency_id="project")
        paste_btn.click(on_paste, [projection, *controls], pasted, api_visibility="private")
        b_btn.click(on_face_b, [seed_b, psi], [face_b, image_b], api_visibility="private")
        mix_btn.click(on_mix, [face_b, mix_preset, *controls], mixed, api_visibility="private")
        use_mix_btn.click(on_use_mix, [face_b, mix_preset, *controls], face_outputs, api_visibility="private")
        anim_btn.click(on_anim, [face_b, mode, steps, *controls], anim, api_visibility="private")
        for btn, fmt in ((png_btn, "png"), (npz_btn, "npz"), (gif_btn, "gif"), (mp4_btn, "mp4")):
            btn.click(exporter(fmt), [walk_attr, walk_lo, walk_hi, walk_steps, *controls], export_file,
                      api_visibility="private")
        demo.load(lambda p: (*on_sample(0, p, None, "auto", "w", "middle", 0, 0, [], *[0.0] * len(sliders)),
                             *on_candidates(p)),
                  [psi], [*face_outputs, candidate_seeds, gallery], api_visibility="private")

        _api(engine, card, projector)
    demo.queue(default_concurrency_limit=concurrency, max_size=256)
    return demo


def _api(engine: Engine, card: service.ModelCard, projector: service.Projector | None) -> None:
    """Named endpoints with stable, plain signatures (hidden components; documented in README)."""
    with gr.Group(visible=False):
        a_seed = gr.Number(precision=0, label="seed")
        a_psi = gr.Number(value=0.7, label="psi")
        a_recipe = gr.Textbox(label="recipe")
        a_edits = gr.Textbox(label="edits")
        a_method = gr.Textbox(label="method")
        a_layers = gr.Textbox(label="layers")
        a_locked = gr.Textbox(label="locked")
        a_preview = gr.Checkbox(label="preview")
        a_format = gr.Textbox(label="format")
        a_attr = gr.Textbox(label="attribute")
        a_lo = gr.Number(value=-3, label="walk_from")
        a_hi = gr.Number(value=3, label="walk_to")
        a_steps = gr.Number(value=24, precision=0, label="steps")
        a_photo = gr.File(label="photo")
        a_file = gr.File(label="file")
        o_image = gr.Image(format="png", label="image")
        o_image2 = gr.Image(format="png", label="image2")
        o_recipe = gr.Textbox(label="recipe")
        o_file = gr.File(label="file")
        o_json = gr.JSON(label="info")
        buttons = [gr.Button(visible=False) for _ in range(7)]
    noop_image = np.zeros((engine.resolution, engine.resolution, 3), np.uint8)

    @_guard
    def sample(seed, psi):
        st = service.sample(engine, seed, psi)
        return engine.render(st), service.recipe_text(engine, st)

    @_guard
    def edit(recipe, edits, method, layers, locked, preview):
        return service.api_edit(engine, recipe, edits, method, layers, locked, preview)

    @_guard
    def noop(recipe, edits, method, layers, locked, preview):
        return noop_image, recipe

    @_guard
    def export(recipe, fmt, attribute, lo, hi, steps):
        st, _ = recipe_to_state(recipe, engine)
        return str(service.export(engine, st, fmt, attribute or None, lo, hi, int(steps or 24)))

    @_guard
    def project(photo_path):
        if projector is None:
            raise ValueError(service.PROJECTOR_MISSING)
        if not photo_path:
            raise ValueError("send a photo")
        result = projector(service.read_photo(photo_path), lambda f, m: None)
        st = EditState.create(engine.latent_from_array(result.ws, origin="projected photo"))
        return result.aligned, engine.render(st), service.recipe_text(engine, st)

    @_guard
    def open_recipe(path):
        if not path:
            raise ValueError("send a PNG exported by the editor, a latent .npz or a recipe .json")
        st, warnings = service.read_recipe_file(engine, path)
        return engine.render(st), service.recipe_text(engine, st)

    def info():
        return service.info(engine, card)

    b = iter(buttons)
    next(b).click(sample, [a_seed, a_psi], [o_image, o_recipe], api_name="sample")
    edit_inputs = [a_recipe, a_edits, a_method, a_layers, a_locked, a_preview]
    next(b).click(edit, edit_inputs, [o_image, o_recipe], api_name="edit", show_progress="hidden")
    next(b).click(noop, edit_inputs, [o_image, o_recipe], api_name="noop", show_progress="hidden")
    next(b).click(export, [a_recipe, a_format, a_attr, a_lo, a_hi, a_steps], o_file, api_name="export")
    next(b).click(project, [a_photo], [o_image, o_image2, o_recipe], api_name="project", concurrency_limit=1,
                  concurrency_id="project")  # one projection at a time (seconds to minutes of CPU each)
    next(b).click(open_recipe, [a_file], [o_image, o_recipe], api_name="open_recipe")
    next(b).click(info, None, o_json, api_name="info")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="StyleGAN2 face editor web app")
    parser.add_argument("--model", default=os.environ.get("EDITOR_MODEL", "auto"),
                        help="auto | ffhq-1024 | demo | random:<config> | PATH | URL (env EDITOR_MODEL)")
    parser.add_argument("--bank", default=os.environ.get("EDITOR_BANK") or None,
                        help="direction bank file (env EDITOR_BANK; default directions/<model>.safetensors)")
    parser.add_argument("--device", default=os.environ.get("EDITOR_DEVICE", "auto"))
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    parser.add_argument("--concurrency", type=int, default=int(os.environ.get("EDITOR_CONCURRENCY", "4")))
    args = parser.parse_args(argv)
    from editor.commands._util import resolve_device

    # Drag previews: the largest size <= 256 px that renders within a quarter second on this machine.
    config = EngineConfig(preview_budget_s=float(os.environ.get("EDITOR_PREVIEW_BUDGET_S", "0.25")))
    engine, card = service.open_engine(args.model, args.bank, resolve_device(args.device), config)
    for n in card.notices:
        print(f"notice: {n}")
    print(f"model {card.source} ({engine.resolution} px, previews {engine.preview_resolution} px), "
          f"bank {engine.bank.bank_id} ({len(engine.bank.attributes)} sliders)")
    from editor.ui_custom import add_custom_slider_tab, backend_from_env

    projector = None
    try:  # photo upload: find the face, align, project (editor.align + editor.projection)
        from editor.projection import PhotoProjector

        projector = PhotoProjector(engine.G, source=card.source, device=str(engine.device))
    except (ImportError, ValueError, OSError) as exc:
        card = dataclasses.replace(card, notices=card.notices + (f"Photo upload is off: {exc}",))

    custom = backend_from_env(engine, device=str(engine.device))  # "New slider" tab (words need EDITOR_WORDS_SAMPLES)
    build_demo(engine, card, projector=projector, concurrency=args.concurrency,
               extra_tabs=[lambda st: add_custom_slider_tab(custom, st)]).launch(
        server_name=args.host, server_port=args.port, css=CSS)


if __name__ == "__main__":
    main()
