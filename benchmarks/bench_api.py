"""HTTP API latency of the app: /edit (slider -> new image) against /noop (same inputs and outputs, no rendering),
interleaved in one run, then N concurrent clients x M edits each.

    nice -n 10 python benchmarks/bench_api.py --model random:toon-64 --calls 100 --clients 8 --edits 50

Prints markdown: p50 / p95 of /edit, /noop and the paired difference (the time the edit adds over the app's own
request overhead), then the concurrent run's error count, p50 / p95 and the process's resident memory.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="random:toon-64")
    parser.add_argument("--calls", type=int, default=100, help="interleaved /edit + /noop pairs")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--edits", type=int, default=50, help="edits per concurrent client")
    parser.add_argument("--preview", action="store_true", help="ask for the preview resolution")
    args = parser.parse_args()

    import app
    from gradio_client import Client

    from editor import service

    engine, card = service.open_engine(args.model, pca_samples=1000)
    demo = app.build_demo(engine, card, bench_endpoints=True)  # /noop: the baseline
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    url = f"http://127.0.0.1:{port}/"
    downloads = tempfile.mkdtemp(prefix="bench-api-")
    attr = engine.bank.attributes[0]
    rng = np.random.default_rng(0)
    try:
        client = Client(url, verbose=False, download_files=downloads)
        _, recipe = client.predict(0, 0.7, api_name="/sample")
        for _ in range(3):  # warm-up
            client.predict(recipe, json.dumps({attr: 0.1}), "", "", "", args.preview, api_name="/edit")
            client.predict(recipe, json.dumps({attr: 0.1}), "", "", "", args.preview, api_name="/noop")
        edit_t, noop_t = [], []
        for i in range(args.calls):
            edits = json.dumps({attr: round(float(rng.uniform(-3, 3)), 4)})  # a new value: a cache miss
            order = ("/edit", "/noop") if i % 2 == 0 else ("/noop", "/edit")
            for name in order:
                t0 = time.perf_counter()
                client.predict(recipe, edits, "", "", "", args.preview, api_name=name)
                (edit_t if name == "/edit" else noop_t).append(time.perf_counter() - t0)
        diff = [e - n for e, n in zip(edit_t, noop_t)]
        print(f"model {card.source}, {engine.resolution} px, preview={args.preview}, {args.calls} interleaved pairs\n")
        print("| endpoint | p50 ms | p95 ms |\n|---|---|---|")
        print(f"| /edit | {pct(edit_t, 50):.1f} | {pct(edit_t, 95):.1f} |")
        print(f"| /noop | {pct(noop_t, 50):.1f} | {pct(noop_t, 95):.1f} |")
        print(f"| /edit − /noop (paired) | {pct(diff, 50):.1f} | {pct(diff, 95):.1f} |\n", flush=True)

        # Process CPU time per call (client and server share this process; the client's share is the same for both
        # endpoints, so the difference is the CPU an edit adds, independent of other load on the machine).
        cpu = {"/edit": [], "/noop": []}
        for block in range(6):
            name = ("/noop", "/edit")[block % 2]
            c0 = time.process_time()
            for _ in range(10):
                edits = json.dumps({attr: round(float(rng.uniform(-3, 3)), 4)})
                client.predict(recipe, edits, "", "", "", args.preview, api_name=name)
            cpu[name].append((time.process_time() - c0) / 10)
        e_cpu, n_cpu = 1000 * float(np.median(cpu["/edit"])), 1000 * float(np.median(cpu["/noop"]))
        print(f"process CPU per call: /edit {e_cpu:.1f} ms, /noop {n_cpu:.1f} ms, added by the edit "
              f"{e_cpu - n_cpu:.1f} ms\n", flush=True)

        rss0 = rss_mb()
        lat, errors, lock = [], [], threading.Lock()

        def worker(k: int) -> None:
            c = Client(url, verbose=False, download_files=downloads)
            r = np.random.default_rng(100 + k)
            for _ in range(args.edits):
                edits = json.dumps({attr: round(float(r.uniform(-3, 3)), 4)})
                t0 = time.perf_counter()
                try:
                    c.predict(recipe, edits, "", "", "", args.preview, api_name="/edit")
                    with lock:
                        lat.append(time.perf_counter() - t0)
                except Exception as exc:  # counted and reported
                    with lock:
                        errors.append(repr(exc))

        t0 = time.perf_counter()
        threads = [threading.Thread(target=worker, args=(k,)) for k in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        print(f"{args.clients} concurrent clients x {args.edits} edits: {len(errors)} errors, "
              f"p50 {pct(lat, 50):.0f} ms, p95 {pct(lat, 95):.0f} ms, {len(lat) / wall:.1f} edits/s; "
              f"RSS {rss0:.0f} -> {rss_mb():.0f} MB, frame cache {engine.frames.nbytes / 2**20:.1f} MB "
              f"({len(engine.frames)} frames, bound {engine.config.frame_cache_bytes / 2**20:.0f} MB)")
        if errors:
            print("first error:", errors[0])
    finally:
        demo.close()


if __name__ == "__main__":
    main()
