"""HTTP API latency of the app: /edit (slider -> new image) against /noop (same inputs and outputs, no rendering) and
against the engine alone, then N concurrent clients x M edits.

    nice -n 10 python -m benchmarks.bench_api --model random:toon-64 --calls 100 --clients 8 --edits 50
    python -m benchmarks.bench_api --model demo --client gradio      # through gradio_client, as before

The server (the app's `build_demo` with the benchmark's /noop endpoint) runs in this process; the clients run in a
separate process (as remote users would: their own CPU time, no shared interpreter lock). `--client http` (default)
speaks Gradio's documented REST protocol with httpx: POST /gradio_api/call/<api>, read the server-sent result, GET
the returned PNG (what any HTTP client must do); `--client gradio` uses gradio_client.Client.predict (which costs
~140 ms of client CPU per call here: that is the client library, not the server).

Prints markdown: the engine's own p50 (`Engine.render` of new slider values in this process, and
`service.api_edit`, which adds the recipe parsing), /edit and /noop p50 / p95 and their paired difference, the API's
cost over the engine (/edit p50 - engine p50), then the concurrent run's error count, p50 / p95, the server
process's resident memory, and per round (`--rounds N` repeats the clients x edits run; the median row is the one to
quote): p50 / p95, throughput, and the CPU time per edit of the server process (sampled every 20 ms) and of the
clients' process. `--concurrency` sets the app's default concurrency limit (app.py's option); `--in-process`
renders in the server's process (the app renders in a child process on a CPU: `EngineConfig.render_process`).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(xs, q):
    return float(np.percentile(np.asarray(xs) * 1000, q))


# ----------------------------------------------------------------------------------------------------------------
# Client side (a separate process)


class HttpClient:
    """Gradio's REST protocol over one keep-alive httpx connection."""

    def __init__(self, url: str):
        import httpx

        self.http = httpx.Client(base_url=url, timeout=120)

    def predict(self, api: str, *data):
        r = self.http.post(f"gradio_api/call/{api.strip('/')}", json={"data": list(data)})
        r.raise_for_status()
        event_id = r.json()["event_id"]
        event, payload = None, None
        with self.http.stream("GET", f"gradio_api/call/{api.strip('/')}/{event_id}") as resp:
            for line in resp.iter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:") and event in ("complete", "error"):
                    payload = line[5:].strip()
                    break
        if event != "complete":
            raise RuntimeError(f"{api}: {event}: {payload}")
        out = json.loads(payload)
        if len(out) == 1 and isinstance(out[0], list):  # gr.api: a function's tuple is one output
            out = out[0]
        files = [o for o in out if isinstance(o, dict) and o.get("path")]
        for f in files:  # the image, as a user's client fetches it
            self.http.get(f"gradio_api/file={f['path']}").raise_for_status()
        return out


class GradioClient:
    def __init__(self, url: str, downloads: str):
        from gradio_client import Client

        self.client = Client(url, verbose=False, download_files=downloads)

    def predict(self, api: str, *data):
        return self.client.predict(*data, api_name=api)


def run_clients(url: str, kind: str, calls: int, clients: int, edits: int, preview: bool, rounds: int = 1) -> dict:
    downloads = tempfile.mkdtemp(prefix="bench-api-")
    make = (lambda: HttpClient(url)) if kind == "http" else (lambda: GradioClient(url, downloads))  # noqa: E731
    client = make()
    out = client.predict("/sample", 0, 0.7)
    recipe = out[1]
    info = client.predict("/info")
    attr = (info[0] if isinstance(info, list) else info)["attributes"][0]
    rng = np.random.default_rng(0)
    for _ in range(3):  # warm-up
        for api in ("/edit", "/noop"):
            client.predict(api, recipe, json.dumps({attr: 0.1}), "", "", "", preview)
    edit_t, noop_t, edit_spans = [], [], []
    for i in range(calls):
        edits_json = json.dumps({attr: round(float(rng.uniform(-3, 3)), 4)})  # a new value: a cache miss
        for api in (("/edit", "/noop") if i % 2 == 0 else ("/noop", "/edit")):
            t0, w0 = time.perf_counter(), time.time()
            client.predict(api, recipe, edits_json, "", "", "", preview)
            (edit_t if api == "/edit" else noop_t).append(time.perf_counter() - t0)
            if api == "/edit":
                edit_spans.append((w0, time.time()))

    lat, errors, lock = [], [], threading.Lock()

    def worker(k: int, seed: int) -> None:
        c = make()
        r = np.random.default_rng(seed)
        for _ in range(edits):
            edits_json = json.dumps({attr: round(float(r.uniform(-3, 3)), 4)})
            t0 = time.perf_counter()
            try:
                c.predict("/edit", recipe, edits_json, "", "", "", preview)
                with lock:
                    lat[-1].append(time.perf_counter() - t0)
            except Exception as exc:  # counted and reported
                with lock:
                    errors.append(repr(exc))

    spans = []  # per round: (start, end) on the shared wall clock (time.time), client CPU seconds
    for rnd in range(rounds):
        lat.append([])
        t0, c0 = time.time(), time.process_time()
        threads = [threading.Thread(target=worker, args=(k, 100 + k + 1000 * rnd)) for k in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        spans.append((t0, time.time(), time.process_time() - c0))
    return {"attr": attr, "recipe": recipe, "edit": edit_t, "noop": noop_t, "edit_spans": edit_spans,
            "concurrent": lat, "errors": errors, "spans": spans}


class CpuSampler:
    """The server process's CPU time, sampled every 20 ms in a thread (to attribute it to the clients' rounds)."""

    def __init__(self):
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            t = os.times()
            self.samples.append((time.time(), t.user + t.system))
            time.sleep(0.02)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def cpu_between(self, t0: float, t1: float) -> float:
        ts, cs = zip(*self.samples)
        return float(np.interp(t1, ts, cs) - np.interp(t0, ts, cs))


# ----------------------------------------------------------------------------------------------------------------
# Server side (this process)


class RenderLog:
    """Wraps `engine.render` to record when each render ran (time.time spans): the API's cost over the engine can
    then be paired per request (client-seen /edit time minus the renders inside it), which load drift cannot bias."""

    def __init__(self, engine):
        self.spans: list[tuple[float, float]] = []
        self._render = engine.render
        engine.render = self

    def __call__(self, *args, **kwargs):
        t0 = time.time()
        try:
            return self._render(*args, **kwargs)
        finally:
            self.spans.append((t0, time.time()))

    def paired_overhead(self, edit_spans) -> tuple[list[float], list[float]]:
        """Per /edit call: (API time - render time inside it) in seconds, and that as a share of the render time."""
        over, share = [], []
        for s0, s1 in edit_spans:
            inside = sum(r1 - r0 for r0, r1 in self.spans if r0 >= s0 and r1 <= s1)
            if inside > 0:
                over.append((s1 - s0) - inside)
                share.append(((s1 - s0) - inside) / inside)
        return over, share


def engine_latency(engine, recipe: str, attr: str, n: int, preview: bool) -> tuple[list[float], list[float]]:
    """Engine.render and service.api_edit of new slider values (frame-cache misses), in this process."""
    from editor import service
    from editor.recipe import recipe_to_state

    state, _ = recipe_to_state(recipe, engine)
    rng = np.random.default_rng(1)
    render_t, service_t = [], []
    for _ in range(n):
        v = round(float(rng.uniform(-3, 3)), 4)
        t0 = time.perf_counter()
        engine.render(state.with_sliders({attr: v}), preview=preview)
        render_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        service.api_edit(engine, recipe, json.dumps({attr: v + 1e-3}), "", "", "", preview)
        service_t.append(time.perf_counter() - t0)
    return render_t, service_t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="random:toon-64")
    parser.add_argument("--calls", type=int, default=100, help="interleaved /edit + /noop pairs")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (0: skip the concurrent run)")
    parser.add_argument("--edits", type=int, default=50, help="edits per concurrent client")
    parser.add_argument("--preview", action="store_true", help="ask for the preview resolution")
    parser.add_argument("--client", choices=["http", "gradio"], default="http")
    parser.add_argument("--rounds", type=int, default=1, help="concurrent rounds (clients x edits each)")
    parser.add_argument("--in-process", action="store_true", help="render in the server's process "
                        "(app.py with EDITOR_RENDER_PROCESS=0; default: a render process, as app.py)")
    parser.add_argument("--concurrency", type=int, default=4, help="the app's default concurrency limit (app.py "
                        "--concurrency, default 4)")
    parser.add_argument("--render-threads", type=int, default=None,
                        help="torch threads per render (EngineConfig.render_threads; default: the engine's choice)")
    parser.add_argument("--client-process", default=None, help=argparse.SUPPRESS)  # internal: URL to drive
    args = parser.parse_args()

    if args.client_process:  # the client process: run, print JSON
        print(json.dumps(run_clients(args.client_process, args.client, args.calls, args.clients, args.edits,
                                     args.preview, args.rounds)))
        return

    import app
    from editor import service

    from editor.engine import EngineConfig

    config = EngineConfig(render_process=not args.in_process,  # as app.py: renders in a child process on a CPU
                          render_threads=args.render_threads)
    engine, card = service.open_engine(args.model, config=config, pca_samples=1000)
    render_log = RenderLog(engine)
    demo = app.build_demo(engine, card, concurrency=args.concurrency, bench_endpoints=True)  # /noop: the baseline
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        rss0 = rss_mb()
        cmd = [sys.executable, "-m", "benchmarks.bench_api", "--client-process", url, "--client", args.client,
               "--calls", str(args.calls), "--clients", str(args.clients), "--edits", str(args.edits),
               "--rounds", str(args.rounds)]
        sampler = CpuSampler()
        proc = subprocess.run(cmd + (["--preview"] if args.preview else []), capture_output=True, text=True,
                              check=False, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        if proc.returncode != 0:
            raise SystemExit(f"client process failed:\n{proc.stderr[-3000:]}")
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        sampler.stop()
        rss1 = rss_mb()
        over, share = render_log.paired_overhead(r["edit_spans"])
        render_t, service_t = engine_latency(engine, r["recipe"], r["attr"], max(20, args.calls // 2), args.preview)
    finally:
        demo.close()
    diff = [e - n for e, n in zip(r["edit"], r["noop"])]
    eng = statistics.median(render_t)
    print(f"model {card.source}, {engine.resolution} px, preview={args.preview}, client {args.client} (separate "
          f"process), {args.calls} interleaved pairs; engine render threads {engine.render_threads}, render process "
          f"{engine._worker is not None}\n")
    print("| what | p50 ms | p95 ms |\n|---|---|---|")
    print(f"| Engine.render (in process, new slider values) | {pct(render_t, 50):.1f} | {pct(render_t, 95):.1f} |")
    print(f"| service.api_edit (render + recipe in/out) | {pct(service_t, 50):.1f} | {pct(service_t, 95):.1f} |")
    print(f"| /edit | {pct(r['edit'], 50):.1f} | {pct(r['edit'], 95):.1f} |")
    print(f"| /noop | {pct(r['noop'], 50):.1f} | {pct(r['noop'], 95):.1f} |")
    print(f"| /edit − /noop (paired) | {pct(diff, 50):.1f} | {pct(diff, 95):.1f} |")
    print(f"| **API over the engine** (/edit p50 − render p50) | **{pct(r['edit'], 50) - 1000 * eng:.1f}** | |")
    if over:
        print(f"| **API over the engine, paired per request** (/edit − the render inside it) | **{pct(over, 50):.1f}** "
              f"({100 * statistics.median(share):.1f} % of the render) | {pct(over, 95):.1f} |")
    print()
    if not args.clients * args.edits or args.rounds < 1:  # --clients 0: the serial comparison only
        return
    rounds = []
    for lat_k, (t0, t1, client_cpu) in zip(r["concurrent"], r["spans"]):
        n = max(len(lat_k), 1)
        rounds.append((pct(lat_k, 50), pct(lat_k, 95), len(lat_k) / (t1 - t0),
                       1000 * sampler.cpu_between(t0, t1) / n, 1000 * client_cpu / n))
    lat = [x for lat_k in r["concurrent"] for x in lat_k]
    print(f"{args.clients} concurrent clients x {args.edits} edits, {len(rounds)} round(s): {len(r['errors'])} errors, "
          f"p50 {pct(lat, 50):.0f} ms, p95 {pct(lat, 95):.0f} ms (all rounds pooled); server RSS {rss0:.0f} -> "
          f"{rss1:.0f} MB, frame cache {engine.frames.nbytes / 2**20:.1f} MB ({len(engine.frames)} frames, bound "
          f"{engine.config.frame_cache_bytes / 2**20:.0f} MB)\n")
    print("| round | p50 ms | p95 ms | edits/s | server CPU ms / edit | client CPU ms / edit |")
    print("|---|---|---|---|---|---|")
    for i, row in enumerate(rounds):
        print(f"| {i + 1} | {row[0]:.0f} | {row[1]:.0f} | {row[2]:.1f} | {row[3]:.1f} | {row[4]:.1f} |")
    if len(rounds) > 1:
        med = [statistics.median(col) for col in zip(*rounds)]
        print(f"| **median** | **{med[0]:.0f}** | **{med[1]:.0f}** | {med[2]:.1f} | {med[3]:.1f} | {med[4]:.1f} |")
    if r["errors"]:
        print("first error:", r["errors"][0])


if __name__ == "__main__":
    main()
