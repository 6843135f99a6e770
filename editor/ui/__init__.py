"""The web UI (Gradio): the page (`page.build_demo`), the HTTP endpoints (`api.add_api`), what they share
(`common`: error handling, render order, display sizes). `app.py` at the repository root only launches it."""

from editor.ui.page import CSS, build_demo, slider_groups, slider_id, split_sliders

__all__ = ["CSS", "build_demo", "slider_groups", "slider_id", "split_sliders"]
