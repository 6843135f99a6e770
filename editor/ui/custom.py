"""The "New slider" tab: a slider from words (CLIP) or from a few clicks, previewed on the current face, saved for
this generator and shown at once among the page's sliders ("Your sliders"). Gradio layout and wiring only; the work is
in `CustomSliderBackend` (testable without a browser).

    backend = backend_from_env(engine)             # once per engine; reads EDITOR_WORDS_SAMPLES / EDITOR_WORDS_CLIP
    build_demo(engine, card, custom=backend)       # the page adds the tab and its "Your sliders" group

`build_custom_demo(backend)` builds the tab alone (tests, trying it out).

Saved sliders go into the user data folder (`editor.user_sliders`: one bank file per generator, written atomically),
never into the tracked `directions/*.safetensors`, and into the running engine, so they can be used at once. Per-user
data lives in `gr.State` as plain dicts (the marks); the pool of latents and the CLIP embeddings are shared read-only.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from editor import user_sliders
from editor.bank import BankEntry
from editor.custom_sliders import ClickOptions, ClickSession, WordSliderMaker, fmt_accuracy
from editor.ui.common import for_display, ui_guard

STRIP_ALPHAS = (-3.0, -1.5, 0.0, 1.5, 3.0)
WORDS_CLIP = "clip:ViT-B-32:laion2b_s34b_b79k"  # the CLIP model for sliders from words (env EDITOR_WORDS_CLIP)
WORDS_N = 2000  # samples embedded on demand (env EDITOR_WORDS_N): ~ 2 minutes on a 2-core CPU for ViT-B-32
WORDS_MISSING = ("Sliders from words are off: no CLIP model is configured for this app (EDITOR_WORDS_CLIP).")


def words_needs(clip_spec: str) -> str:
    """What sliders from words need on this machine, exactly (shown in the tab while they are off)."""
    model, _, pretrained = clip_spec.partition(":")[2].partition(":")
    return (f"Sliders from words need the OpenCLIP weights `{model or 'ViT-B-32'}` / `{pretrained or 'default'}` "
            "(about 600 MB for ViT-B-32) in the Hugging Face cache; they are not on this machine and cannot be "
            "downloaded here. Where the internet is reachable, run `python -c \"import open_clip; "
            f"open_clip.create_model_and_transforms('{model or 'ViT-B-32'}', pretrained='{pretrained}')\"` (or copy "
            "`~/.cache/huggingface/hub` from a machine that has them; a local checkpoint works too: "
            "`EDITOR_WORDS_CLIP=clip:MODEL:/path/to/weights.bin`). Then press “Compute sample embeddings” (once "
            "per generator; cached in the user data folder), or start the app with `EDITOR_WORDS_SAMPLES=FOLDER` made "
            f"by `python -m editor sample --model MODEL --n 10000 --labeler {clip_spec} --out FOLDER`.")


def clip_weights_present(clip_spec: str) -> bool | None:
    """Whether the CLIP weights of a labeller spec are on this machine: True / False, None when it cannot tell
    (then loading them is the only test). Cheap: looks at files, loads nothing."""
    model, _, pretrained = clip_spec.partition(":")[2].partition(":")
    if not pretrained or pretrained.lower() == "none" or model.endswith(".json") and not pretrained:
        return True  # random weights (tests) or a config file: nothing to download
    if Path(pretrained).expanduser().is_file():
        return True
    try:
        import open_clip
        from huggingface_hub import try_to_load_from_cache

        cfg = open_clip.get_pretrained_cfg(model or "ViT-B-32", pretrained) or {}
    except ImportError:
        return False
    repo = str(cfg.get("hf_hub", "")).strip("/")
    if not repo:
        return None
    for name in ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"):
        if isinstance(try_to_load_from_cache(repo, name), str):
            return True
    return False


class CustomSliderBackend:
    """Everything the tab computes, for one shared engine.

    Args:
        engine: the app's `editor.engine.Engine`.
        words: a `WordSliderMaker` over this generator's cached samples, or None (words disabled).
        bank_path: the user-slider bank to save into (`user_sliders.bank_path(engine)`; None: saving disabled).
            Sliders already in it are added to the engine now.
        pool_size / pool_seed0 / psi: the click pool: seeds pool_seed0.. mapped with truncation psi.
        click_options: grid size, marks before the first fit, fit method.
        clip_spec / words_dir / words_n: sliders from words on demand (`prepare_words`): the CLIP labeller spec, the
            folder for the sample embeddings (a `editor.samples` cache), how many samples.
    """

    def __init__(self, engine, words: WordSliderMaker | None = None, bank_path: str | Path | None = None,
                 pool_size: int = 2000, pool_seed0: int = 10**6, psi: float = 0.7,
                 click_options: ClickOptions = ClickOptions(), clip_spec: str | None = None,
                 words_dir: str | Path | None = None, words_n: int = WORDS_N):
        if words is not None and (words.w_dim != engine.w_dim or words.num_ws not in (1, engine.num_ws)):
            raise ValueError(f"the word-slider samples have num_ws={words.num_ws}, w_dim={words.w_dim} but the "
                             f"generator has num_ws={engine.num_ws}, w_dim={engine.w_dim}")
        if pool_size < click_options.min_labels * 2:
            raise ValueError(f"pool_size must be at least {click_options.min_labels * 2}, got {pool_size}")
        self.engine = engine
        self.words = words
        self.bank_path = None if bank_path is None else Path(bank_path)
        self.pool_size, self.pool_seed0, self.psi = int(pool_size), int(pool_seed0), float(psi)
        self.click_options = click_options
        self.clip_spec = clip_spec  # words on demand: this CLIP model embeds `words_n` samples into `words_dir`
        self.words_dir = None if words_dir is None else Path(words_dir)
        self.words_n = int(words_n)
        self._words_lock = threading.Lock()
        self.info = user_sliders.generator_info(engine)
        self.bank_names = set(engine.bank.attributes)  # the loaded bank's sliders: user sliders may not reuse them
        self.saved: list[str] = []  # user sliders in the engine, oldest first
        if self.bank_path is not None:
            entries = [e for e in user_sliders.load_entries(self.bank_path, self.info)
                       if e.attribute not in self.bank_names]
            self._add_to_engine(entries)
        self._pool: np.ndarray | None = None  # [pool_size, w_dim] W codes, made on first use
        self._lock = threading.Lock()
        self._fits: dict = {}  # marks -> fitted direction / CV accuracy, shared by every user's rebuilt session
        self.words_problem = ""  # why words are off, shown in the tab (see backend_from_env)

    # -- shared data -----------------------------------------------------------------------------------------------

    def pool(self) -> np.ndarray:
        """The click pool's W codes [P, w_dim] (mapped once, in batches; every W+ layer holds the same w)."""
        with self._lock:
            if self._pool is None:
                from editor.samples import z_from_seeds

                e = self.engine
                z = z_from_seeds(range(self.pool_seed0, self.pool_seed0 + self.pool_size), e.z_dim)
                parts = []
                for i in range(0, len(z), 500):
                    zb = torch.from_numpy(z[i:i + 500]).to(e.device)
                    c = torch.zeros(zb.shape[0], e.c_dim, device=e.device)
                    with torch.no_grad():
                        parts.append(e.G.mapping(zb, c, truncation_psi=self.psi)[:, 0].float().cpu().numpy())
                pool = np.concatenate(parts)
                pool.flags.writeable = False
                self._pool = pool
            return self._pool

    def session(self, marks: dict | None) -> ClickSession:
        """The click session of one user, rebuilt from their plain-data marks {"marks": {i: bool}, "round": n}."""
        marks = marks or {}
        return ClickSession(self.pool(), self.click_options,
                            marks={int(k): bool(v) for k, v in (marks.get("marks") or {}).items()},
                            ids=np.arange(self.pool_seed0, self.pool_seed0 + self.pool_size),
                            round=int(marks.get("round", 0)), cache=self._fits)

    # -- words ------------------------------------------------------------------------------------------------------

    def words_status(self) -> str:
        """What the "From words" tab says: ready, ready to compute, or exactly what is missing."""
        if self.words is not None:
            return f"Ready: CLIP embeddings of {self.words.n} samples of this generator."
        if self.words_problem:
            return self.words_problem
        if self.clip_spec is None or self.words_dir is None:
            return WORDS_MISSING
        if clip_weights_present(self.clip_spec) is False:
            return words_needs(self.clip_spec)
        if (self.words_dir / "meta.json").is_file():
            return "CLIP embeddings of this generator's samples are cached: press “Compute sample embeddings” to load them."
        return (f"Press “Compute sample embeddings” once: {self.words_n} samples of this generator are rendered and "
                "embedded with CLIP (minutes on a CPU; cached in the user data folder for next time).")

    def prepare_words(self, progress: Callable[[float, str], None] = lambda f, m: None) -> str:
        """Make sliders from words possible: load CLIP, embed `words_n` samples (or reuse the cached embeddings),
        build the word-slider maker. ValueError with exactly what is missing when it cannot."""
        with self._words_lock:  # one user computes, the others wait and then find it ready
            if self.words is not None:
                return self.words_status()
            if self.clip_spec is None or self.words_dir is None:
                raise ValueError(WORDS_MISSING)
            if clip_weights_present(self.clip_spec) is False:
                raise ValueError(words_needs(self.clip_spec))
            from editor.custom_sliders import open_word_maker
            from editor.labelers import make_labeler
            from editor.samples import SampleCache, SampleSpec

            progress(0.0, "loading CLIP")
            try:
                clip = make_labeler(self.clip_spec, device=str(self.engine.device))
            except (ValueError, OSError) as exc:
                raise ValueError(f"{words_needs(self.clip_spec)} (Loading it said: {exc})") from None
            e = self.engine
            cache = SampleCache(self.words_dir, SampleSpec(n=self.words_n, seed0=0, psi=1.0),
                                {"model_id": str(e.model_id), "source": str(e.model_name), "z_dim": e.z_dim,
                                 "w_dim": e.w_dim, "num_ws": e.num_ws})
            cache.fill(e.G, [clip], device=str(e.device),
                       progress=lambda done, total: progress(done / max(total, 1), f"embedding samples {done}/{total}"))
            self.words = open_word_maker(self.words_dir, clip, model_id=str(e.model_id))
            self.words_problem = ""
            return self.words_status()

    def from_words(self, positive: str, negative: str = "", name: str = "") -> tuple[BankEntry, str]:
        if self.words is None:
            raise ValueError(self.words_status())
        t0 = time.perf_counter()
        entry = self.words.make(positive, negative or None, attribute=(name or "").strip() or None)
        dt = time.perf_counter() - t0
        msg = (f"**{entry.attribute}**: '{entry.extra['positive']}' vs '{entry.extra['negative']}': validation "
               f"accuracy {fmt_accuracy(entry.val_accuracy)} on the confident {int(100 * entry.extra['share'])} % "
               f"ends of {self.words.n} samples; fitted in {dt:.2f} s.")
        if entry.val_accuracy is not None and entry.val_accuracy < 0.75:
            msg += " ⚠️ Low accuracy: CLIP hardly separates these prompts on this generator's images."
        return entry, msg

    # -- clicks -----------------------------------------------------------------------------------------------------

    def next_grid(self, marks: dict | None) -> tuple[dict, list[np.ndarray]]:
        """The next grid for this user: (new marks state with the grid, images)."""
        s = self.session(marks)
        grid = s.next_grid()
        state = {"marks": dict(s.marks), "round": s.round, "grid": [int(i) for i in grid]}
        w = torch.from_numpy(np.array(self.pool()[grid], dtype=np.float32))  # [G, w_dim]
        ws = w[:, None, :].repeat(1, self.engine.num_ws, 1)  # [G, num_ws, w_dim]
        return state, (self.engine.render_ws(ws, resolution=self.engine.thumbnail_resolution) if len(grid) else [])

    def submit(self, marks: dict | None, has_it: Sequence[int]) -> dict:
        """Record the shown grid: positions in `has_it` (0-based) have the attribute, the others do not."""
        marks = dict(marks or {})
        grid = list(marks.get("grid") or [])
        if not grid:
            raise ValueError("show a grid first")
        bad = [p for p in has_it if not 0 <= int(p) < len(grid)]
        if bad:
            raise ValueError(f"grid positions {bad} are not shown (the grid has {len(grid)})")
        chosen = {int(p) for p in has_it}
        new = {int(k): bool(v) for k, v in (marks.get("marks") or {}).items()}
        new.update({int(i): (p in chosen) for p, i in enumerate(grid)})
        return {"marks": new, "round": int(marks.get("round", 0)), "grid": []}

    def click_status(self, marks: dict | None) -> str:
        s = self.session(marks)
        pos, neg = s.counts
        if not s.ready:
            return (f"{s.n_marks} marks ({pos} has it, {neg} doesn't). A direction is fitted after "
                    f"{self.click_options.min_labels} marks with both answers.")
        return (f"{s.n_marks} marks ({pos} has it, {neg} doesn't): cross-validated accuracy "
                f"{fmt_accuracy(s.cv_accuracy())}. The next grid shows the samples the direction is least sure of.")

    def from_clicks(self, marks: dict | None, name: str) -> BankEntry:
        return self.session(marks).entry(name)

    # -- preview and saving -----------------------------------------------------------------------------------------

    def strip(self, entry: BankEntry, base_ws: np.ndarray | None = None,
              alphas: Sequence[float] = STRIP_ALPHAS) -> list[np.ndarray]:
        """The face `base_ws` [num_ws, w_dim] (default: seed 0) moved along the entry by each alpha (σ units)."""
        e = self.engine
        base = np.asarray(e.sample(0).ws if base_ws is None else base_ws, dtype=np.float64)
        rows = entry.rows(e.num_ws)  # [num_ws, w_dim] unit, zero on layers it does not edit
        ws = np.stack([base + a * entry.sigma * rows for a in alphas]).astype(np.float32)
        return e.render_ws(torch.from_numpy(ws), resolution=e.thumbnail_resolution)

    def save(self, entry: BankEntry) -> str:
        """Save `entry` into the user-slider bank and add it to the running engine (for every user at once)."""
        if self.bank_path is None:
            raise ValueError("saving is disabled: the app was started without a bank file to write")
        if entry.attribute in self.bank_names:
            raise ValueError(f"{entry.attribute!r} is already a slider of the model's bank; choose another name")
        user_sliders.save_entries(self.bank_path, [entry], self.info)
        self._add_to_engine([entry])
        return (f"Saved {entry.name}: it is under “Your sliders” now (kept in {self.bank_path.name}, in the "
                "user data folder).")

    def _add_to_engine(self, entries: Sequence[BankEntry]) -> None:
        dirs = user_sliders.to_directions(entries, self.info)
        if dirs:
            self.engine.add_directions(dirs, replace_existing=True)
        for d in dirs:
            if d.attribute in self.saved:
                self.saved.remove(d.attribute)
            self.saved.append(d.attribute)


def add_custom_slider_tab(backend: CustomSliderBackend, state=None) -> Callable:
    """Add the "New slider" tab to the enclosing `gr.Blocks`. `state`: the app's gr.State holding an EditState (its
    latent is the preview face), or None (seed 0).

    Returns `connect(slots)`, to be called once the page's "Your sliders" group (`editor.ui.page.UserSlots`) exists:
    it wires the Save buttons, which then show the saved slider there (slots=None: only the message)."""
    import gradio as gr

    def base_of(st):
        return None if st is None else np.asarray(st.latent.ws)

    grid_n = backend.click_options.grid
    can_save = backend.bank_path is not None
    with gr.Tab("New slider", elem_id="tab-new-slider"):
        with gr.Tab("From words"):
            words_note = gr.Markdown(f"ℹ️ {backend.words_status()}", elem_id="words-missing",
                                     elem_classes="message-line")
            can_prepare = (backend.words is None and backend.clip_spec is not None and backend.words_dir is not None
                           and clip_weights_present(backend.clip_spec) is not False)
            words_prepare = gr.Button("Compute sample embeddings", visible=can_prepare, elem_id="words-prepare")
            with gr.Row():
                positive = gr.Textbox(label="Has the attribute", placeholder="a photo of a smiling face",
                                      elem_id="words-positive")
                negative = gr.Textbox(label="Doesn't (optional: else 'a photo of a face')",
                                      placeholder="a photo of a face with a neutral expression",
                                      elem_id="words-negative")
                words_name = gr.Textbox(label="Slider name (optional)", elem_id="words-name")
            words_btn = gr.Button("Make slider", variant="primary", elem_id="words-btn")
            words_msg = gr.Markdown("", elem_id="words-msg", elem_classes="message-line")
            words_strip = gr.Gallery(label="−3σ … +3σ on the current face", columns=len(STRIP_ALPHAS),
                                     height="auto", allow_preview=False, object_fit="contain", elem_id="words-strip")
            words_entry = gr.State(None)
            words_save = gr.Button("Save: use it as a slider", interactive=can_save, elem_id="words-save")
        with gr.Tab("From clicks"):
            gr.Markdown(f"Tick the samples that **have** the attribute; the others count as **don't**. After "
                        f"{backend.click_options.min_labels} marks a direction is fitted and the next grids show the "
                        "samples it is least sure of.")
            marks = gr.State({})
            grid = gr.Gallery(label="Samples", columns=min(grid_n, 4), height="auto", allow_preview=False,
                              object_fit="contain", elem_id="click-grid")
            has_it = gr.CheckboxGroup([(str(i + 1), i) for i in range(grid_n)], label="Has it (grid positions)",
                                      elem_id="click-has-it")
            with gr.Row():
                show_btn = gr.Button("Show samples", elem_id="click-show")
                submit_btn = gr.Button("Submit marks and show more", variant="primary", elem_id="click-submit")
            click_msg = gr.Markdown("", elem_id="click-msg", elem_classes="message-line")
            with gr.Row():
                click_name = gr.Textbox(label="Slider name", elem_id="click-name")
                fit_btn = gr.Button("Preview slider", elem_id="click-fit")
            click_strip = gr.Gallery(label="−3σ … +3σ on the current face", columns=len(STRIP_ALPHAS),
                                     height="auto", allow_preview=False, object_fit="contain", elem_id="click-strip")
            click_entry = gr.State(None)
            click_save = gr.Button("Save: use it as a slider", interactive=can_save, elem_id="click-save")
        save_msg = gr.Markdown("" if can_save else "ℹ️ Saving is off in this app.", elem_id="custom-save-msg",
                               elem_classes="message-line")

    def labelled(images):
        return [(for_display(img, 160), f"{i + 1}") for i, img in enumerate(images)]

    @ui_guard(words_msg)
    def on_words(pos, neg, name, st):
        entry, msg = backend.from_words(pos, neg, name)
        return {words_entry: entry, words_msg: msg, words_strip: labelled(backend.strip(entry, base_of(st)))}

    @ui_guard(words_note)
    def on_prepare(progress=gr.Progress()):
        msg = backend.prepare_words(lambda f, m: progress(f, desc=m))
        return {words_note: f"✅ {msg}", words_prepare: gr.update(visible=False)}

    @ui_guard(click_msg)
    def on_show(m):
        m, images = backend.next_grid(m)
        return {marks: m, grid: labelled(images), has_it: [], click_msg: backend.click_status(m)}

    @ui_guard(click_msg)
    def on_submit(m, checked):
        m = backend.submit(m, checked or [])
        m, images = backend.next_grid(m)
        return {marks: m, grid: labelled(images), has_it: [], click_msg: backend.click_status(m)}

    @ui_guard(click_msg)
    def on_fit(m, name, st):
        entry = backend.from_clicks(m, name)
        return {click_entry: entry, click_strip: labelled(backend.strip(entry, base_of(st))), click_msg: ""}

    st_in = [state] if state is not None else [gr.State(None)]
    private = dict(api_visibility="private")
    words_prepare.click(on_prepare, None, [words_note, words_prepare], concurrency_limit=1,
                        concurrency_id="words-prepare", **private)
    words_btn.click(on_words, [positive, negative, words_name, *st_in], [words_entry, words_msg, words_strip],
                    **private)
    show_btn.click(on_show, [marks], [marks, grid, has_it, click_msg], **private)
    submit_btn.click(on_submit, [marks, has_it], [marks, grid, has_it, click_msg], **private)
    fit_btn.click(on_fit, [marks, click_name, *st_in], [click_entry, click_strip, click_msg], **private)

    def connect(slots=None) -> None:
        @ui_guard(save_msg)
        def on_save(entry):
            if entry is None:
                raise ValueError("make a slider first")
            out = {save_msg: backend.save(entry)}
            if slots is not None:
                out.update(slots.show(backend.saved))
            return out

        slot_outputs = slots.outputs if slots is not None else []
        words_save.click(on_save, [words_entry], [save_msg, *slot_outputs], **private)
        click_save.click(on_save, [click_entry], [save_msg, *slot_outputs], **private)

    return connect


def backend_from_env(engine, bank_path: str | Path | None = None, device: str = "cpu",
                     environ: dict | None = None) -> CustomSliderBackend:
    """The tab's backend as the app would configure it; never fails (a problem disables words, with the reason).

    - Saving goes to `bank_path`, by default this generator's user-slider bank (`editor.user_sliders`, in
      $EDITOR_USER_DIR); sliders already saved there are added to the engine.
    - Words: EDITOR_WORDS_CLIP names the CLIP labeller (default clip:ViT-B-32:laion2b_s34b_b79k). With
      EDITOR_WORDS_SAMPLES (a sample cache folder with its embeddings of this generator) words are ready at once;
      else the tab computes EDITOR_WORDS_N (2000) embeddings on demand into the user data folder, when the CLIP
      weights are on this machine, and says exactly what is missing when they are not.
    """
    import os

    env = os.environ if environ is None else environ
    if bank_path is None:
        bank_path = user_sliders.bank_path(engine)
    clip_spec = env.get("EDITOR_WORDS_CLIP", WORDS_CLIP)
    words_n = int(env.get("EDITOR_WORDS_N", WORDS_N))
    words_dir = user_sliders.samples_path(engine, clip_spec, words_n)
    words, problem = None, ""
    samples = env.get("EDITOR_WORDS_SAMPLES")
    if samples:
        try:
            from editor.custom_sliders import open_word_maker
            from editor.labelers import make_labeler

            clip = make_labeler(clip_spec, device=device)
            words = open_word_maker(samples, clip, model_id=str(engine.model_id))
        except (ValueError, FileNotFoundError, OSError) as exc:
            problem = f"Sliders from words are off: {exc}"
    kw = dict(clip_spec=clip_spec, words_dir=words_dir, words_n=words_n)
    try:
        backend = CustomSliderBackend(engine, words, bank_path=bank_path, **kw)
    except (ValueError, OSError) as exc:  # an unreadable user bank: start without it, and say so
        backend = CustomSliderBackend(engine, words, bank_path=None, **kw)
        problem = (problem + " " if problem else "") + f"Your saved sliders could not be loaded: {exc}"
    backend.words_problem = problem
    return backend


def build_custom_demo(backend: CustomSliderBackend):
    """A `gr.Blocks` with only the "New slider" tab (tests, trying it out)."""
    import gradio as gr

    with gr.Blocks(title="New slider") as demo:
        add_custom_slider_tab(backend)()
    return demo

