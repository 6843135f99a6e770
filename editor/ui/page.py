"""The editor's web page: layout, and one small handler per event that calls `editor.service` / the engine.

    demo = build_demo(engine, card, projector)      # a gr.Blocks, not launched (tests build it too)

Layout: the model notice on top; on the left the face sources and outputs as tabs (Face, Photo, Open recipe, Mix,
Export, New slider, ...); on the right Before / After, the status line, the edit settings (method, W / W+ and the
layer range) and the sliders in groups, each group with its own lock list.

Per-user data lives only in `gr.State` (the `EditState`, face B, the uploaded photo's path, the names of the user's
own sliders); the engine (weights, bank, caches) is shared. Handlers take their inputs as one dict (Gradio's set
inputs) and return a dict of the outputs they change, so a failing handler changes only its message line.

Slider events: `.input` (every move: drags, arrow keys, typed digits) renders a preview, then `.then` renders the
full-size image once the slider has stopped on the value the preview showed; `RenderOrder` drops any render that
finishes after a newer one was shown. Settings (method, space, layers, locks) re-check which sliders can act on the
chosen layers: those that cannot are disabled with the reason, before anyone moves them.
"""

from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import gradio as gr

from editor import service
from editor.checkpoints import REPO_ROOT
from editor.engine import EditState, Engine
from editor.ui.api import add_api
from editor.ui.common import RenderOrder, compare_position, for_display, session_of, ui_guard, warning
from editor.ui.serving import tune_gradio

TOON_PHOTOS = sorted(str(p) for p in (REPO_ROOT / "assets" / "toon-photos").glob("*.png"))  # renderer photos

CSS = """
#before-image img, #after-image img { width: 100%; height: 100%; object-fit: contain; }
#model-notice blockquote { border-left: 4px solid #f59e0b; background: #fffbeb; padding: 0.4em 0.8em; }
.message-line p { margin: 0.2em 0; }
"""  # pass to launch(css=CSS)
SLIDER_LIMIT = 5.0  # UI sliders span +-5 sigma (the API accepts up to +-20)
N_CANDIDATES = 6
PRIMARY_SLIDERS = 16  # a group with more sliders shows the first 16 and the rest in a collapsed accordion
LAYER_PRESETS = ("coarse", "middle", "fine", "custom")
USER_SLOTS = 8  # user-made sliders shown at once ("Your sliders"; the newest 8)


# ----------------------------------------------------------------------------------------------------------------
# Slider groups


@dataclass(frozen=True)
class SliderGroup:
    title: str
    names: tuple[str, ...]
    open: bool


def slider_groups(engine: Engine) -> list[SliderGroup]:
    """The bank's sliders in groups: named attributes, categories ('hair_color=black'), unlabelled components
    (attributes whose only methods are PCA / SeFa)."""
    bank = engine.bank
    methods = {a: {d.method for d in bank.directions if d.attribute == a} for a in bank.attributes}
    components = [a for a in bank.attributes if methods[a] <= {"pca", "sefa"}]
    categories = [a for a in bank.attributes if "=" in a and a not in components]
    named = [a for a in bank.attributes if a not in components and a not in categories]
    groups = [SliderGroup("Attributes", tuple(named), True),
              SliderGroup(f"Categories ({len(categories)})", tuple(categories), not named),
              SliderGroup(f"Unlabelled components: PCA / SeFa ({len(components)})", tuple(components),
                          not named and not categories)]
    return [g for g in groups if g.names]


def split_sliders(names) -> tuple[list[str], list[str]]:
    """The first PRIMARY_SLIDERS names, and the rest."""
    names = list(names)
    return names[:PRIMARY_SLIDERS], names[PRIMARY_SLIDERS:]


def slider_id(attribute: str) -> str:
    """The HTML id of an attribute's slider (safe in CSS selectors)."""
    return "slider-" + re.sub(r"[^A-Za-z0-9_-]", "-", attribute)


def _notice_markdown(card: service.ModelCard, engine: Engine) -> str:
    bank = engine.bank
    lines = [f"**Model:** `{card.source}`: {card.description} ({engine.resolution} px). "
             f"**Licence:** {card.license_name}. **Sliders:** {len(bank.attributes)} from "
             f"{service.bank_title(bank)}."]
    lines += [f"> ⚠️ {n}" for n in card.notices]
    return "\n\n".join(lines)


# ----------------------------------------------------------------------------------------------------------------
# The edit controls


class EditControls:
    """The widgets that decide the edit (method, space, layers, locks, sliders) and how to read them into an
    `EditState`. Build inside the Blocks with `build()`."""

    def __init__(self, engine: Engine, slots: UserSlots | None = None):
        self.engine = engine
        self.groups = slider_groups(engine)
        self.sliders: dict[str, gr.Slider] = {}
        self.locks: list[gr.Dropdown] = []
        self.slots = slots

    def build_settings(self) -> None:
        e = self.engine
        with gr.Row():
            self.method = gr.Dropdown(["auto", *e.bank.methods], value="auto", label="Method", elem_id="method",
                                      info="auto: each slider's best direction")
            self.space = gr.Radio(["w", "w+"], value="w", label="Space", elem_id="space",
                                  info="W: every layer; W+: only the layer range")
        with gr.Row():
            self.preset = gr.Radio(list(LAYER_PRESETS), value="middle", label="W+ layer range",
                                   elem_id="layer-preset", info="coarse: pose, shape; middle: features; fine: colour")
            self.lo = gr.Slider(0, e.num_ws - 1, value=0, step=1, label="custom: first layer", elem_id="layer-lo")
            self.hi = gr.Slider(0, e.num_ws - 1, value=e.num_ws - 1, step=1, label="custom: last layer",
                                elem_id="layer-hi")

    def build_sliders(self) -> None:
        for g in self.groups:
            with gr.Accordion(g.title, open=g.open, elem_id=slider_id("group-" + g.title.split(" ")[0].lower())):
                primary, more = split_sliders(g.names)
                self._columns(primary)
                if more:
                    with gr.Accordion(f"{len(more)} more", open=False):
                        self._columns(more)
                self.locks.append(gr.Dropdown(list(g.names), value=[], multiselect=True,
                                              label="Lock: keep these unchanged while moving the others",
                                              elem_id="locks" if len(self.locks) == 0 else f"locks-{len(self.locks)}"))

    def _columns(self, names: Sequence[str]) -> None:
        with gr.Row():
            for half in (names[0::2], names[1::2]):
                with gr.Column(min_width=220):
                    for n in half:
                        problem = self.engine.slider_problem(n)  # with the default settings (auto, W)
                        self.sliders[n] = gr.Slider(-SLIDER_LIMIT, SLIDER_LIMIT, value=0.0, step=0.1,
                                                    label=f"{n} (σ)", elem_id=slider_id(n),
                                                    interactive=problem is None, info=_problem_note(problem))

    @property
    def names(self) -> list[str]:
        return list(self.sliders)

    @property
    def settings(self) -> list[gr.components.Component]:
        return [self.method, self.space, self.preset, self.lo, self.hi, *self.locks]

    @property
    def components(self) -> set:
        extra = {self.slots.names, *self.slots.sliders} if self.slots is not None else set()
        return {*self.settings, *self.sliders.values(), *extra}

    @property
    def all_sliders(self) -> list:
        """Every slider component whose move is an edit (the bank's and the user slots)."""
        return [*self.sliders.values(), *(self.slots.sliders if self.slots is not None else [])]

    def layers(self, data: dict) -> tuple[str, tuple[int, int] | None]:
        """(space, [lo, hi) or None) from the widgets."""
        if data[self.space] != "w+":
            return "w", None
        return "w+", service.preset_layers(data[self.preset], self.engine.num_ws, data[self.lo], data[self.hi])

    def method_of(self, data: dict) -> str | None:
        m = data[self.method]
        return None if m in (None, "", "auto") else m

    def locked(self, data: dict) -> list[str]:
        return [n for box in self.locks for n in (data[box] or [])]

    def edit_state(self, latent, data: dict, zeroed: Sequence[str] = ()) -> EditState:
        space, layers = self.layers(data)
        values = {n: (0.0 if n in zeroed or data[s] is None else data[s]) for n, s in self.sliders.items()}
        if self.slots is not None:
            values.update({n: v for n, v in self.slots.values(data).items() if n not in zeroed})
        return EditState.create(latent, values, method=self.method_of(data), space=space, layers=layers,
                                locked=self.locked(data))

    def problems(self, data: dict) -> dict[str, str]:
        """{slider: why it cannot act} under the widgets' method, space and layers."""
        space, layers = self.layers(data)
        method = self.method_of(data)
        out = {}
        names = list(self.sliders) + (list(data[self.slots.names] or []) if self.slots is not None else [])
        for n in names:
            p = self.engine.slider_problem(n, method, space, layers)
            if p is not None:
                out[n] = p
        return out

    def values_of(self, state: EditState) -> dict:
        """Widget values that show `state` (for a re-opened recipe)."""
        values = dict(state.sliders)
        lo, hi = (state.layers[0], state.layers[1] - 1) if state.layers else (0, self.engine.num_ws - 1)
        out = {self.method: state.method or "auto", self.space: state.space,
               self.preset: service.preset_name(state.layers, self.engine.num_ws), self.lo: lo, self.hi: hi}
        for box, g in zip(self.locks, self.groups):
            out[box] = [n for n in state.locked if n in g.names]
        out.update({s: values.get(n, 0.0) for n, s in self.sliders.items()})
        return out


class UserSlots:
    """The "Your sliders" group: a fixed number of slider slots shown for the user-made sliders (from the "New
    slider" tab), so a saved slider can be used at once without rebuilding the page. Which slot holds which
    slider is per session (`names`, a gr.State)."""

    def __init__(self, engine: Engine, n: int = USER_SLOTS):
        self.engine = engine
        self.n = n

    def build(self) -> None:
        with gr.Accordion("Your sliders", open=True, visible=False, elem_id="user-sliders") as self.group:
            with gr.Row():
                self.sliders = [gr.Slider(-SLIDER_LIMIT, SLIDER_LIMIT, value=0.0, step=0.1, visible=False,
                                          label=f"slot {i}", elem_id=f"user-slider-{i}", min_width=220)
                                for i in range(self.n)]
        self.names = gr.State([])

    @property
    def outputs(self) -> list:
        return [self.names, self.group, *self.sliders]

    def show(self, names: Sequence[str]) -> dict:
        """Updates that show the newest `n` of `names` (values back to 0)."""
        names = list(names)[-self.n:]
        out = {self.names: names, self.group: gr.update(visible=bool(names))}
        for i, s in enumerate(self.sliders):
            out[s] = (gr.update(visible=True, label=f"{names[i]} (σ, yours)", value=0.0) if i < len(names)
                      else gr.update(visible=False, value=0.0))
        return out

    def values(self, data: dict) -> dict[str, float]:
        return {n: data[s] or 0.0 for n, s in zip(data[self.names] or [], self.sliders)}


# ----------------------------------------------------------------------------------------------------------------
# The page


def build_demo(engine: Engine, card: service.ModelCard | None = None,
               projector: service.Projector | None = None, concurrency: int = 4,
               extra_tabs: Sequence[Callable[[gr.State], None]] = (), bench_endpoints: bool = False,
               custom=None, switch_model: Callable[[str, Callable], str] | None = None,
               models: Sequence[str] = ()) -> gr.Blocks:
    """The Gradio app around one shared engine. `projector` (photo -> latent) may be None (upload is then off).
    `custom`: an `editor.ui.custom.CustomSliderBackend` adds the "New slider" tab, whose saved sliders appear at
    once under "Your sliders". `extra_tabs`: functions called inside the left column's tabs with the user's
    `gr.State` (EditState). `bench_endpoints`: also serve /noop (a benchmark's baseline; not for users).
    `switch_model(name, progress) -> message` with `models` (names it can load) adds the model chooser: it loads the
    chosen model for the whole server (raising ValueError when it cannot), and the page then reloads."""
    card = card or service.ModelCard(engine.model_name, engine.model_name, "unknown", "", ())
    tune_gradio()  # Gradio's per-request costs the API measured (editor.ui.serving)
    order = RenderOrder()
    slots = UserSlots(engine) if custom is not None else None
    ctl = EditControls(engine, slots)

    with gr.Blocks(title="StyleGAN2 face editor", delete_cache=(300, 900)) as demo:
        state = gr.State(None)  # EditState of this user (its latent is the face being edited)
        pending = gr.State(None)  # the edit a slider preview showed; the full render follows when it still holds
        face_b = gr.State(None)  # Latent of the second face (interpolate / mix)
        photo_path = gr.State(None)  # the uploaded photo (checked), as a file in Gradio's cache
        projection = gr.State(None)  # service.Projection of this user's uploaded photo
        gr.Markdown("# StyleGAN2 face editor")
        gr.Markdown(_notice_markdown(card, engine), elem_id="model-notice")
        with gr.Accordion("Model licence and direction bank", open=False):
            gr.Markdown(service.bank_details(engine.bank) + ("\n\n" + card.license_text if card.license_text else ""))
        if switch_model is not None and models:
            with gr.Accordion("Model", open=False, elem_id="model-chooser"):
                choices = list(dict.fromkeys([card.source, *models]))
                with gr.Row():
                    model_pick = gr.Dropdown(choices, value=card.source, label="Model (bundled or in the cache)",
                                             elem_id="model-pick", scale=3,
                                             info="switching reloads the page, for every user of this server")
                    model_btn = gr.Button("Switch model", elem_id="model-switch", scale=1)
                model_msg = gr.Markdown("", elem_id="model-msg", elem_classes="message-line")

            @ui_guard(model_msg)
            def on_switch(name, progress=gr.Progress()):
                if name == card.source:
                    return {model_msg: f"{name} is already running."}
                return {model_msg: switch_model(name, lambda f, m: progress(f, desc=m))}

            model_btn.click(on_switch, model_pick, [model_msg], concurrency_limit=1, concurrency_id="switch",
                            api_visibility="private").then(
                None, model_msg, None, api_visibility="private",
                js="(msg) => { if (String(msg).startsWith('Loaded')) setTimeout(() => location.reload(), 5000); }")

        with gr.Row():
            with gr.Column(scale=5, min_width=400):
                with gr.Tabs():
                    with gr.Tab("Face", elem_id="tab-face"):
                        seed = gr.Number(value=0, precision=0, minimum=0, maximum=2**32 - 1, label="Seed",
                                         elem_id="seed")
                        psi = gr.Slider(-1.0, 1.5, value=0.7, step=0.05, label="Truncation ψ", elem_id="psi")
                        with gr.Row():
                            sample_btn = gr.Button("Sample", variant="primary", elem_id="sample-btn")
                            random_btn = gr.Button("Random seed", elem_id="random-btn")
                        gallery = gr.Gallery(label="Candidates (click one)", columns=3, height="auto",
                                             allow_preview=False, object_fit="contain", elem_id="candidates")
                        more_btn = gr.Button("More candidates", size="sm")
                        candidate_seeds = gr.State([])
                    with gr.Tab("Photo", elem_id="tab-photo"):
                        # no file_types: the handler checks the file and says what is wrong in photo_msg
                        photo_file = gr.File(label="Photo (JPEG, PNG, WebP, ...)", elem_id="photo-upload")
                        if getattr(projector, "landmarker_name", None) == "toon":  # the demo model: toon photos
                            gr.Examples(TOON_PHOTOS, inputs=[photo_file], label="Toon photos to try (this model "
                                        "edits toon faces; a person's photo needs an FFHQ model)")
                        photo_msg = gr.Markdown("" if projector is not None else f"ℹ️ {service.PROJECTOR_MISSING}",
                                                elem_id="photo-msg", elem_classes="message-line")
                        photo_view = gr.Image(label="Your photo", interactive=False, height=240,
                                              elem_id="photo-view")
                        project_btn = gr.Button("Align and project", interactive=False, elem_id="project-btn")
                        with gr.Row():
                            aligned = gr.Image(label="Aligned crop", interactive=False, elem_id="aligned",
                                               height=256)
                            recon = gr.Image(label="Reconstruction (edit it with the sliders)", interactive=False,
                                             elem_id="recon", height=256)
                        paste_btn = gr.Button("Paste the edited face back into the photo", interactive=False)
                        pasted = gr.ImageSlider(label="Your photo | edited (drag to compare)", interactive=False,
                                                format="png", elem_id="pasted")
                    with gr.Tab("Recipe", elem_id="tab-open"):
                        recipe_file = gr.File(label="PNG exported by the editor, latent .npz or recipe .json",
                                              elem_id="recipe-upload")
                        recipe_msg = gr.Markdown("", elem_id="recipe-msg", elem_classes="message-line")
                    with gr.Tab("Mix", elem_id="tab-mix"):
                        with gr.Row():
                            seed_b = gr.Number(value=1, precision=0, minimum=0, label="Face B seed")
                            b_btn = gr.Button("Load face B")
                        with gr.Row():
                            mode = gr.Radio(["w lerp", "z slerp"], value="w lerp", label="Interpolation")
                            steps = gr.Slider(4, 48, value=16, step=1, label="Frames")
                        mix_preset = gr.Radio(["coarse", "middle", "fine"], value="coarse",
                                              label="Style-mix: layers taken from B")
                        with gr.Row():
                            image_b = gr.Image(label="Face B", interactive=False, format="png", height=200,
                                               elem_id="face-b")
                            mixed = gr.Image(label="A with B's layers", interactive=False, format="png", height=200,
                                             elem_id="mixed")
                        with gr.Row():
                            mix_btn = gr.Button("Style-mix")
                            use_mix_btn = gr.Button("Edit the mix")
                            anim_btn = gr.Button("Animate A → B")
                        anim_view = gr.Image(label="Animation A → B", interactive=False, height=240,
                                             elem_id="animation-view")
                        anim = gr.File(label="Download", elem_id="animation")
                        mix_msg = gr.Markdown("", elem_id="mix-msg", elem_classes="message-line")
                    with gr.Tab("Export", elem_id="tab-export"):
                        walk_names = ctl_names_for_walk(engine)
                        walk_attr = gr.Dropdown(walk_names, value=walk_names[0] if walk_names else None,
                                                label="Walk attribute (GIF / MP4)")
                        with gr.Row():
                            walk_lo = gr.Number(value=-3, label="from (σ)")
                            walk_hi = gr.Number(value=3, label="to (σ)")
                            walk_steps = gr.Slider(4, 64, value=24, step=1, label="Frames")
                        with gr.Row():
                            png_btn = gr.Button("PNG with recipe", elem_id="export-png-btn")
                            npz_btn = gr.Button("Latent .npz", elem_id="export-npz-btn")
                            gif_btn = gr.Button("GIF of walk", elem_id="export-gif-btn")
                            mp4_btn = gr.Button("MP4 of walk", elem_id="export-mp4-btn")
                        export_view = gr.Image(label="Exported image / GIF", interactive=False, height=240,
                                               visible=False, elem_id="export-view")
                        export_video = gr.Video(label="Exported MP4", interactive=False, height=240, visible=False,
                                                elem_id="export-video")
                        export_file = gr.File(label="Download", elem_id="export-file")
                        export_msg = gr.Markdown("", elem_id="export-msg", elem_classes="message-line")
                    if custom is not None:
                        from editor.ui.custom import add_custom_slider_tab

                        connect_custom = add_custom_slider_tab(custom, state)
                    for add_tab in extra_tabs:
                        add_tab(state)

            with gr.Column(scale=7, min_width=480):
                with gr.Row():
                    before = gr.Image(label="Before", interactive=False, format="png", height=320,
                                      elem_id="before-image")
                    after = gr.Image(label="After", interactive=False, format="png", height=320,
                                     elem_id="after-image")
                status = gr.Markdown("", elem_id="status", elem_classes="message-line")
                ctl.build_settings()
                reset_btn = gr.Button("Reset sliders", size="sm", elem_id="reset-btn")
                if slots is not None:
                    slots.build()
                    connect_custom(slots)  # saving shows the new slider in "Your sliders" at once
                ctl.build_sliders()

        sliders = ctl.sliders
        all_sliders = ctl.all_sliders
        edit_in = {state, *ctl.components}

        # -- handlers -------------------------------------------------------------------------------------------
        def latent_of(data):
            st = data[state]
            if st is None:
                raise ValueError("sample a face first")
            return st.latent

        def face_shown(new: EditState, request, ticket) -> dict:
            """Outputs that show a new face (always shown; hides older renders still running)."""
            order.show(session_of(request), ticket, newest_only=False)
            return {state: new, before: for_display(engine.render(new.reset())),
                    after: for_display(engine.render(new)), status: f"Face: {new.latent.origin}"}

        @ui_guard(status)
        def on_sample(data, request: gr.Request = None):
            ticket = order.ticket()
            like = ctl.edit_state(data[state].latent, data) if data[state] is not None else None
            return face_shown(service.sample(engine, data[seed], data[psi], like), request, ticket)

        @ui_guard(status)
        def on_random(data, request: gr.Request = None):
            data = {**data, seed: random.randrange(2**31)}
            return {seed: data[seed], **on_sample(data, request)}

        @ui_guard(status)
        def on_candidates(data):
            seeds = [random.randrange(2**31) for _ in range(N_CANDIDATES)]
            images = engine.thumbnails([engine.sample(s, data[psi]) for s in seeds])
            return {candidate_seeds: seeds,
                    gallery: [(for_display(img, 192), f"seed {s}") for img, s in zip(images, seeds)]}

        def on_pick(seeds, evt: gr.SelectData):
            return seeds[evt.index]

        @ui_guard(status)
        def on_preview(data, request: gr.Request = None):
            ticket = order.ticket()
            st = ctl.edit_state(latent_of(data), data)
            img = engine.render(st, preview=True)
            out = {pending: (st.latent.key, st.edit_key())}
            if order.show(session_of(request), ticket):
                out[after] = for_display(img)
            return out

        @ui_guard(status)
        def on_settle(data, request: gr.Request = None):
            st = ctl.edit_state(latent_of(data), data)
            if data[pending] != (st.latent.key, st.edit_key()):
                return {}  # the slider moved on: its own preview and settle are coming
            ticket = order.ticket()
            img = engine.render(st)
            if not order.show(session_of(request), ticket):
                return {}
            return {state: st, after: for_display(img), status: f"Face: {st.latent.origin}"}

        @ui_guard(status)
        def on_settings(data, request: gr.Request = None):
            problems = ctl.problems(data)
            named = {**sliders, **(dict(zip(data[slots.names] or [], slots.sliders)) if slots is not None else {})}
            moved = [n for n in problems if data[named[n]]]
            out = {s: gr.update(interactive=n not in problems, info=_problem_note(problems.get(n)),
                                **({"value": 0.0} if n in moved else {}))
                   for n, s in named.items()}
            if data[state] is None:
                return out
            ticket = order.ticket()
            st = ctl.edit_state(data[state].latent, data, zeroed=problems)
            img = engine.render(st)
            if order.show(session_of(request), ticket):
                out.update({state: st, after: for_display(img)})
            note = (f" {', '.join(moved)} set to 0: no direction for these settings." if moved else "")
            out[status] = f"Face: {st.latent.origin}.{note}"
            return out

        @ui_guard(status)
        def on_reset(data, request: gr.Request = None):
            ticket = order.ticket()
            st = ctl.edit_state(latent_of(data), data).reset()
            order.show(session_of(request), ticket, newest_only=False)
            return {state: st, after: for_display(engine.render(st)), **{s: 0.0 for s in all_sliders}}

        @ui_guard(recipe_msg)
        def on_open(data, request: gr.Request = None):
            path = data[recipe_file]
            if not path:
                return {}
            ticket = order.ticket()
            st, warnings = service.read_recipe_file(engine, path)
            out = face_shown(st, request, ticket)
            out.update(ctl.values_of(st))
            out[recipe_msg] = "Opened: " + (st.latent.origin or "recipe") + "".join(
                f"\n\n{warning(w)}" for w in warnings)
            return out

        @ui_guard(photo_msg)
        def on_photo(data):
            path = data[photo_file]
            if not path:
                return {photo_path: None, photo_view: None, project_btn: gr.update(interactive=False),
                        photo_msg: ""}
            image = service.read_photo(path)  # checks the size from the header before decoding
            if projector is None:
                note = f"ℹ️ {service.PROJECTOR_MISSING}"
            else:
                note = f"{image.shape[1]}×{image.shape[0]} px. Press “Align and project”."
            return {photo_path: path, photo_view: service.downscale(image, 1024),
                    project_btn: gr.update(interactive=projector is not None), photo_msg: note}

        @ui_guard(photo_msg)
        def on_project(data, request: gr.Request = None, progress=gr.Progress()):
            if projector is None:
                raise ValueError(service.PROJECTOR_MISSING)
            if not data[photo_path]:
                raise ValueError("upload a photo first")
            ticket = order.ticket()
            started = time.perf_counter()
            result = projector(service.read_photo(data[photo_path]), lambda f, m: progress(f, desc=m))
            took = time.perf_counter() - started
            new = EditState.create(engine.latent_from_array(result.ws, origin="projected photo"))
            out = face_shown(new, request, ticket)
            out.update({s: 0.0 for s in all_sliders})
            out.update({projection: result, paste_btn: gr.update(interactive=result.paste_back is not None),
                        aligned: for_display(result.aligned, 256), recon: for_display(engine.render(new), 256),
                        photo_msg: f"Your face is in the editor ({took:.1f} s): move the sliders, then paste "
                                   "the edit back into the photo."})
            return out

        @ui_guard(photo_msg)
        def on_paste(data):
            proj = data[projection]
            if proj is None or proj.paste_back is None:
                raise ValueError("project a photo first")
            edited = proj.paste_back(engine.render(ctl.edit_state(latent_of(data), data)))
            photo = service.read_photo(data[photo_path])
            return {pasted: gr.update(value=(photo, edited), slider_position=compare_position(photo, edited)),
                    photo_msg: ""}

        @ui_guard(mix_msg)
        def on_face_b(data):
            b = engine.sample(data[seed_b], data[psi])
            return {face_b: b, image_b: for_display(engine.render(EditState.create(b)), 192), mix_msg: ""}

        def style_mixed(data):
            if data[face_b] is None:
                raise ValueError("load face B first")
            st = ctl.edit_state(latent_of(data), data)
            return st, engine.style_mix(st.latent, data[face_b],
                                        service.preset_layers(data[mix_preset], engine.num_ws))

        @ui_guard(mix_msg)
        def on_mix(data):
            return {mixed: for_display(engine.render(EditState.create(style_mixed(data)[1])), 192), mix_msg: ""}

        @ui_guard(mix_msg)
        def on_use_mix(data, request: gr.Request = None):
            ticket = order.ticket()
            st, m = style_mixed(data)
            new = EditState(m, st.sliders, st.method, st.space, st.layers, st.locked)
            return {**face_shown(new, request, ticket), mix_msg: ""}

        @ui_guard(mix_msg)
        def on_anim(data):
            if data[face_b] is None:
                raise ValueError("load face B first")
            path = str(service.animation(engine, latent_of(data), data[face_b], data[mode].split()[0],
                                         int(data[steps])))
            return {anim: path, anim_view: path, mix_msg: ""}

        def exporter(fmt):
            @ui_guard(export_msg)
            def on_export(data):
                st = ctl.edit_state(latent_of(data), data)
                path = str(service.export(engine, st, fmt, data[walk_attr], data[walk_lo], data[walk_hi],
                                          data[walk_steps]))
                return {export_file: path, export_msg: "",
                        export_view: gr.update(value=path if fmt in ("png", "gif") else None,
                                               visible=fmt in ("png", "gif")),
                        export_video: gr.update(value=path if fmt == "mp4" else None, visible=fmt == "mp4")}

            on_export.__name__ = f"on_export_{fmt}"
            return on_export

        # -- wiring ---------------------------------------------------------------------------------------------
        private = dict(api_visibility="private")
        face_out = [state, before, after, status]
        sample_in = {seed, psi, *edit_in}
        sample_btn.click(on_sample, sample_in, face_out, **private)
        seed.submit(on_sample, sample_in, face_out, **private)
        random_btn.click(on_random, sample_in, [seed, *face_out], **private)
        more_btn.click(on_candidates, {psi}, [candidate_seeds, gallery, status], **private)
        gallery.select(on_pick, [candidate_seeds], seed, **private).then(on_sample, sample_in, face_out, **private)
        slider_in = {pending, *edit_in}
        for s in all_sliders:
            s.input(on_preview, edit_in, [pending, after, status], trigger_mode="always_last",
                    show_progress="hidden", **private).then(
                on_settle, slider_in, [state, after, status], show_progress="hidden", **private)
        for c in ctl.settings:
            c.change(on_settings, edit_in, [state, after, status, *all_sliders], trigger_mode="always_last",
                     show_progress="hidden", **private)
        reset_btn.click(on_reset, edit_in, [state, after, status, *all_sliders], **private)
        recipe_file.upload(on_open, {recipe_file, *edit_in},
                           [*face_out, recipe_msg, *ctl.settings, *sliders.values()], **private)
        photo_file.change(on_photo, {photo_file}, [photo_path, photo_view, project_btn, photo_msg], **private)
        project_btn.click(on_project, {photo_path, *edit_in},
                          [*face_out, projection, paste_btn, aligned, recon, photo_msg, *all_sliders],
                          concurrency_limit=1, concurrency_id="project", show_progress_on=[recon], **private)
        paste_btn.click(on_paste, {projection, photo_path, *edit_in}, [pasted, photo_msg], show_progress_on=[pasted],
                        **private)
        b_btn.click(on_face_b, {seed_b, psi}, [face_b, image_b, mix_msg], **private)
        mix_btn.click(on_mix, {face_b, mix_preset, *edit_in}, [mixed, mix_msg], **private)
        use_mix_btn.click(on_use_mix, {face_b, mix_preset, *edit_in}, [*face_out, mix_msg], **private)
        anim_btn.click(on_anim, {face_b, mode, steps, *edit_in}, [anim, anim_view, mix_msg], **private)
        for btn, fmt in ((png_btn, "png"), (npz_btn, "npz"), (gif_btn, "gif"), (mp4_btn, "mp4")):
            btn.click(exporter(fmt), {walk_attr, walk_lo, walk_hi, walk_steps, *edit_in},
                      [export_file, export_view, export_video, export_msg], **private)

        def on_load(data, request: gr.Request = None):
            first = on_sample({**data, state: None, seed: 0}, request)
            shown = slots.show(custom.saved) if slots is not None else {}
            return {**first, **on_candidates(data), **shown}

        demo.load(on_load, sample_in, [*face_out, candidate_seeds, gallery, *(slots.outputs if slots else [])],
                  **private)
        add_api(engine, card, projector, bench_endpoints=bench_endpoints)
    demo.queue(default_concurrency_limit=concurrency, max_size=256)
    return demo


def ctl_names_for_walk(engine: Engine) -> list[str]:
    return list(engine.bank.attributes)


def _problem_note(problem: str | None) -> str | None:
    """A slider's note when it cannot act: the engine's reason without the slider's own name."""
    return None if problem is None else "⛔ " + re.sub(r"^slider '[^']*' ", "", problem)
