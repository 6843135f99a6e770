"""The web app's entry point: read the options, open the model and bank, build the page, launch.

    python app.py                         # FFHQ-1024 if reachable or cached, else the bundled demo, else random
    python app.py --model demo --port 7860
    EDITOR_MODEL=random:small python app.py

A bad --model or --bank never stops it: it falls back (bundled demo, PCA sliders) and says why in the page and the
log. The "Model" accordion switches among the bundled demo and the registry models in the cache: the chosen model is
loaded, the page is closed and served again on the same port, and the browser reloads.

The page and its handlers live in `editor.ui` (`build_demo(engine, card, projector)` builds the `gr.Blocks` without
launching it; tests use it); the HTTP endpoints (README) in `editor.ui.api`.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import queue
import time

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from editor import service  # noqa: E402
from editor.engine import EngineConfig  # noqa: E402
from editor.ui import CSS, build_demo, slider_id  # noqa: E402,F401  (re-exported for scripts and tests)

MAX_UPLOAD = os.environ.get("EDITOR_MAX_UPLOAD", "64mb")  # Gradio refuses larger uploads before they reach a handler


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

    # Drag previews: the largest size <= 256 px that renders within a quarter second on this machine. Renders run
    # in a child process on a CPU (editor.render_worker; EDITOR_RENDER_PROCESS=0: in the server's own process), clear
    # of the server's threads: 8 concurrent API clients p95 201-268 ms against 330-436 in process (docs/benchmarks.md).
    config = EngineConfig(preview_budget_s=float(os.environ.get("EDITOR_PREVIEW_BUDGET_S", "0.25")),
                          render_process=os.environ.get("EDITOR_RENDER_PROCESS", "1") != "0")
    device = resolve_device(args.device)
    opened = service.open_engine(args.model, args.bank, device, config)
    switches: queue.Queue = queue.Queue()

    def switch_model(name: str, progress) -> str:
        """Load `name` (no bank option: its own bank) for the whole server; the main loop relaunches the page."""
        progress(0.1, f"loading {name}")
        engine, card = service.open_engine(name, None, device, config)
        if card.source != name:
            raise ValueError(f"{name} could not be loaded: " + " ".join(card.notices))
        switches.put((engine, card))
        return f"Loaded {name}: the page reloads in a few seconds (reload it yourself if it does not)."

    while True:  # one page per model; a switch closes it and serves the next on the same port
        previous = opened[0]
        demo = _page(*opened, device=device, concurrency=args.concurrency, switch_model=switch_model)
        demo.launch(server_name=args.host, server_port=args.port, css=CSS, max_file_size=MAX_UPLOAD,
                    prevent_thread_lock=True)
        try:
            while True:
                try:
                    opened = switches.get(timeout=1.0)
                    break
                except queue.Empty:
                    continue
        except KeyboardInterrupt:
            demo.close()
            return
        time.sleep(1.0)  # let the switch handler's reply reach the page
        demo.close()
        previous.close()  # its render process, if any


def _page(engine, card, device: str, concurrency: int, switch_model):
    """The page of one opened model: notices logged, photo upload and the "New slider" tab set up."""
    for n in card.notices:
        print(f"notice: {n}")
    print(f"model {card.source} ({engine.resolution} px, previews {engine.preview_resolution} px), "
          f"bank {engine.bank.bank_id} ({len(engine.bank.attributes)} sliders)")
    from editor.ui.custom import backend_from_env

    projector = None
    try:  # photo upload: find the face, align, project (editor.align + editor.projection)
        from editor.projection import PhotoProjector

        projector = PhotoProjector(engine.G, source=card.source, device=str(engine.device))
        import threading  # the first photo should not pay for the one-time set-up

        threading.Thread(target=projector.warm_up, name="photo-warm-up", daemon=True).start()
    except (ImportError, ValueError, OSError) as exc:
        card = dataclasses.replace(card, notices=card.notices + (f"Photo upload is off: {exc}",))

    # "New slider" tab: saved sliders go to $EDITOR_USER_DIR (words need EDITOR_WORDS_SAMPLES)
    custom = backend_from_env(engine, device=str(engine.device))
    models = service.available_models()
    return build_demo(engine, card, projector=projector, concurrency=concurrency, custom=custom,
                      switch_model=switch_model, models=models)


if __name__ == "__main__":
    main()
