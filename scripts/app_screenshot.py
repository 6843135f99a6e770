"""Start the app in-process on a model, open it in headless Chromium, move some sliders, save a screenshot.

    python scripts/app_screenshot.py --model demo --out docs/app-demo-model.png --set eyeglasses=3 --set smiling=2
    python scripts/app_screenshot.py --model demo --photo assets/toon-photos/toon-photo-1.png --set smiling=3 \
        --out docs/app-photo.png     # upload, project, edit, paste back (the Photo tab)

Needs Playwright and Debian's chromium (/usr/bin/chromium), as tests/test_browser.py does.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="demo")
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=None, help="sample this seed first")
    p.add_argument("--set", action="append", default=[], help="slider=value (its number box, then a full render)")
    p.add_argument("--photo", default=None, help="upload this photo in the Photo tab, project it, then edit it")
    args = p.parse_args()

    from playwright.sync_api import sync_playwright

    import app
    from editor import service

    engine, card = service.open_engine(args.model)
    projector = None
    if args.photo:
        from editor.projection import PhotoProjector

        projector = PhotoProjector(engine.G, source=card.source, device=str(engine.device))
        projector.warm_up()
    demo = app.build_demo(engine, card, projector=projector)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, css=app.CSS)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=os.environ.get("EDITOR_CHROMIUM", "/usr/bin/chromium"),
                                         args=ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(120_000)
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_selector("#after-image img")
            page.wait_for_timeout(1500)
            if args.seed is not None:
                page.locator("#seed input").fill(str(args.seed))
                page.locator("#sample-btn").click()
                page.wait_for_timeout(3000)
            if args.photo:
                page.locator("#tab-photo-button").click()
                page.locator("#photo-upload input[type=file]").set_input_files(args.photo)
                page.wait_for_function("() => !document.querySelector('#project-btn').disabled")
                page.locator("#project-btn").click()
                page.wait_for_function("() => (document.querySelector('#photo-msg')?.innerText || '')"
                                       ".includes('in the editor')", timeout=300_000)
                print(page.locator("#photo-msg").inner_text())
            for item in args.set:
                name, value = item.split("=")
                box = page.locator(f"#slider-{name} input[type=number]")
                box.fill(value)
                box.press("Enter")
                page.wait_for_timeout(3000)
            if args.photo:
                page.locator("button:has-text('Paste the edited face back')").click()
                page.wait_for_selector("#pasted img", timeout=120_000)
                page.wait_for_timeout(2000)
            page.screenshot(path=args.out, full_page=True)
            browser.close()
    finally:
        demo.close()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
