"""Render in a separate process: the synthesis network's copy in a child process, so a render does not share the
web server's interpreter lock (`EngineConfig.render_process`).

Why: on a CPU the server's Python work (Gradio's request handling, ~15 ms of CPU per API call) and a render's
Python-level steps (~500 small torch calls per image, each one giving the interpreter lock up and taking it back)
take turns on one lock. Measured with 8 concurrent API clients on the demo model (`benchmarks/bench_api.py`): a
17 ms render held the generator for 36 ms under that load. In its own process it runs on the other core untouched.

    worker = RenderWorker(G, threads=1)          # spawns the child (a few seconds: it imports torch)
    img = worker.render(ws, styles=..., kwargs={"noise_mode": "const", "stop_resolution": 64}, prefix=None)
    worker.close()

One request at a time (the caller holds its lock); requests and images travel as numpy arrays through a pipe (an
FFHQ-1024 image is 12 MB: ~10 ms against a 2 s render). A W+ edit that resumes after unchanged blocks names its
prefix `(key, block resolution)`: the child keeps those features in its own bounded cache and computes them on a
miss. The child's images are the same as in-process renders (same code, same weights). When the child dies, the
call raises `WorkerDied` and the engine renders in its own process from then on.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import threading
import traceback

import numpy as np
import torch

log = logging.getLogger("editor.render_worker")

_DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32}


class WorkerDied(RuntimeError):
    """The render process is gone (killed, out of memory); the engine falls back to rendering in-process."""


def _serve(conn, threads: int | None, keep_memory: bool, prefix_bytes: int) -> None:
    """The child's loop: receive the network's arguments and weights, build it, then answer render requests until
    the pipe closes."""
    from editor.memory import ByteLRU, keep_freed_memory
    from editor.stylegan2 import SynthesisNetwork

    try:
        init_kwargs, state = conn.recv()
    except (EOFError, OSError):
        return
    if threads:
        torch.set_num_threads(int(threads))
    if keep_memory:
        keep_freed_memory()
    syn = SynthesisNetwork(w_dim=init_kwargs["w_dim"], img_resolution=init_kwargs["img_resolution"],
                           img_channels=init_kwargs["img_channels"], **init_kwargs.get("synthesis_kwargs", {}))
    syn.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)
    syn.eval().requires_grad_(False)
    del state
    prefixes = ByteLRU(prefix_bytes)
    conn.send(("ready", None))
    with torch.inference_mode():
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                return
            if msg is None:
                return
            try:
                conn.send(("ok", _render(syn, prefixes, *msg)))
            except Exception as exc:  # the parent re-raises it
                conn.send(("error", (type(exc).__name__, str(exc), traceback.format_exc())))


def _render(syn, prefixes, ws, styles, kwargs: dict, prefix) -> np.ndarray:
    ws_t = None if ws is None else torch.from_numpy(ws)
    styles_t = None if styles is None else {k: torch.from_numpy(v) for k, v in styles.items()}
    kwargs = dict(kwargs)
    if kwargs.get("dtype") is not None:
        kwargs["dtype"] = _DTYPES[kwargs["dtype"]]
    if prefix is None:
        return syn.run_blocks(ws_t, styles=styles_t, **kwargs)[1].numpy()
    key, clean = prefix
    start = prefixes.get(key)
    if start is None:
        x, img = syn.run_blocks(ws_t, styles=styles_t, stop_resolution=clean, noise_mode=kwargs["noise_mode"],
                                dtype=kwargs.get("dtype"))
        start = (clean, x, img)
        prefixes.put(key, start)
    return syn.run_blocks(ws_t, styles=styles_t, start=start, **kwargs)[1].numpy()


class RenderWorker:
    """A child process with a copy of `G.synthesis` (the project's `SynthesisNetwork`), rendering on request."""

    def __init__(self, G: torch.nn.Module, threads: int | None = None, keep_memory: bool = True,
                 prefix_bytes: int = 256 * 2**20, start_timeout_s: float = 300.0):
        ctx = mp.get_context("spawn")  # never fork a process that has started torch's thread pools
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, name="editor-render", args=(child, threads, keep_memory,
                                                                            prefix_bytes), daemon=True)
        self._proc.start()
        child.close()  # the child's end lives in the child only: if it dies, sending fails instead of blocking
        self._lock = threading.Lock()
        self.alive = False
        # The weights go through the pipe, not the process arguments: spawn writes those while it still holds the
        # pipe's other end, so a child that died starting up (e.g. a main module without a __main__ guard) would
        # leave that write blocked forever.
        state = {k: v.detach().cpu().numpy().copy() for k, v in G.synthesis.state_dict().items()}
        try:
            self._conn.send((dict(G.init_kwargs), state))
        except (OSError, EOFError):
            self.close()
            raise WorkerDied("the render process failed to start (see its output)") from None
        del state
        if not self._conn.poll(start_timeout_s):
            self.close()
            raise WorkerDied("the render process did not start")
        try:
            kind, _ = self._conn.recv()
        except (EOFError, OSError):
            kind = "died"
        if kind != "ready":
            self.close()
            raise WorkerDied("the render process failed to start (see its output)")
        self.alive = True

    def render(self, ws: torch.Tensor | None, styles: dict[str, torch.Tensor] | None, kwargs: dict,
               prefix: tuple | None = None) -> torch.Tensor:
        """`SynthesisNetwork.run_blocks(ws, styles=styles, **kwargs)[1]` in the child (kwargs: noise_mode,
        stop_resolution, dtype); prefix=(key, block resolution): resume after that block from the child's cache."""
        kw = dict(kwargs)
        if kw.get("dtype") is not None:
            kw["dtype"] = str(kw["dtype"]).replace("torch.", "")
        msg = (None if ws is None else ws.detach().cpu().numpy(),
               None if styles is None else {k: v.detach().cpu().numpy() for k, v in styles.items()}, kw, prefix)
        with self._lock:
            if not self.alive:
                raise WorkerDied("the render process has stopped")
            try:
                self._conn.send(msg)
                kind, payload = self._conn.recv()
            except (EOFError, OSError, BrokenPipeError) as exc:
                self.alive = False
                raise WorkerDied(f"the render process died ({exc!r})") from None
        if kind == "ok":
            return torch.from_numpy(payload)
        name, text, trace = payload
        if name == "ValueError":
            raise ValueError(text)
        raise RuntimeError(f"render process: {name}: {text}\n{trace}")

    def close(self) -> None:
        """Stop the child (idempotent)."""
        self.alive = False
        try:
            self._conn.send(None)
        except (OSError, ValueError):
            pass
        self._proc.join(timeout=5)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(timeout=5)
        self._conn.close()

    @staticmethod
    def applies(G: torch.nn.Module) -> bool:
        """Whether G's synthesis network can be rebuilt in a child (the project's own classes)."""
        from editor.stylegan2 import Generator, SynthesisNetwork

        return isinstance(G, Generator) and type(G.synthesis) is SynthesisNetwork and hasattr(G, "init_kwargs")

