"""Server-side costs of Gradio that the editor's HTTP API measured, and what the app does about them.

Measured with `benchmarks/bench_api.py` (8 concurrent clients on the demo model, py-spy on the server process):

- **A new session per API call.** Every `POST /gradio_api/call/<api>` gets a fresh session hash, so Gradio builds a
  `SessionState` for each request, and its constructor renders the config of every component of the page (214 here)
  up front: 9.5 ms of Python per request, holding the interpreter lock the render also needs, and ~340 KB kept per
  session (Gradio keeps up to 10 000 sessions: gigabytes on a busy server). Only the web page's deep links read all
  of those configs, and only a few request handlers read one or two. `lazy_session_configs()` makes Gradio build
  each component's config on first use instead: the same configs, in the same order, when they are read.
- **Queue analytics recomputed on every event.** Gradio's queue rebuilds a pandas summary of up to 10 000 recent
  events after each one (`GRADIO_ANALYTICS_CACHE_FREQUENCY`, default 1): 1.3 ms per request after 500 events, 5.6 ms
  after 10 000. `quiet_queue_analytics()` refreshes it every `ANALYTICS_EVERY` events unless the variable is set.

Both are applied by `build_demo` (idempotent, process-wide; `tests/test_api_serving.py` checks that the lazy configs
equal Gradio's own).
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from typing import Any, Iterator

ANALYTICS_EVERY = 500  # events between two refreshes of Gradio's queue analytics summary (monitoring page)

_PENDING = object()


class LazyBlockConfigs(MutableMapping):
    """A session's `config_values` (block id -> config dict) whose entries are built on first read, in the order of
    the page's blocks; entries written before they were read are kept as written."""

    __slots__ = ("_blocks_config", "_data")

    def __init__(self, blocks_config: Any, keys: Iterator[int]):
        self._blocks_config = blocks_config
        self._data: dict[int, Any] = dict.fromkeys(keys, _PENDING)

    def __getitem__(self, key: int) -> Any:
        value = self._data[key]
        if value is _PENDING:
            value = self._data[key] = self._blocks_config.config_for_block(key, [], self._blocks_config.blocks[key])
        return value

    def __setitem__(self, key: int, value: Any) -> None:
        self._data[key] = value

    def __delitem__(self, key: int) -> None:
        del self._data[key]

    def __iter__(self) -> Iterator[int]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        built = sum(v is not _PENDING for v in self._data.values())
        return f"LazyBlockConfigs({len(self._data)} blocks, {built} built)"


def lazy_session_configs() -> bool:
    """Make Gradio's `SessionState` build its per-component configs on first use (process-wide, idempotent).
    Returns whether it applies (False, and nothing changed, when this Gradio's SessionState is not the one this
    was written for)."""
    from copy import copy

    from gradio import state_holder

    cls = state_holder.SessionState
    if getattr(cls, "_editor_lazy_configs", False):
        return True
    original = cls.__init__
    names = set(original.__code__.co_names)
    for const in original.__code__.co_consts:  # comprehensions are nested code objects before Python 3.12
        names.update(getattr(const, "co_names", ()))
    if "config_for_block" not in names or "config_values" not in names or "default_config" not in names:
        return False

    def __init__(self, blocks):
        original_config = blocks.default_config
        # Gradio's own constructor, with the config rendering left out: run it against an empty view of the page...
        self.blocks_config = copy(original_config)
        probe = _EmptyBlocks(blocks)
        original(self, probe)
        # ...then restore what it copied and make the configs lazy, over the same blocks in the same order.
        self.blocks_config = copy(original_config)
        self.config_values = LazyBlockConfigs(
            self.blocks_config, (k for k in self.blocks_config.blocks if k in blocks.blocks))

    cls.__init__ = __init__
    cls._editor_lazy_configs = True
    cls._editor_original_init = original
    return True


class _EmptyBlocks:
    """What `SessionState.__init__` reads of a `Blocks` (`default_config`, `blocks`), with no blocks: its
    constructor then sets every other attribute as usual without rendering a component config."""

    def __init__(self, blocks: Any):
        from copy import copy

        config = copy(blocks.default_config)
        config.blocks = {}
        self.default_config = config
        self.blocks = {}
        self._real = blocks

    def __getattr__(self, name: str) -> Any:  # anything else a later Gradio reads: the real page's
        return getattr(self._real, name)


def quiet_queue_analytics() -> None:
    """Refresh Gradio's queue analytics summary every `ANALYTICS_EVERY` events instead of after each (unless
    GRADIO_ANALYTICS_CACHE_FREQUENCY is set). Read when a queue is created: call before `Blocks.queue()`."""
    os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", str(ANALYTICS_EVERY))


def tune_gradio() -> None:
    """Everything above (called by `build_demo`)."""
    lazy_session_configs()
    quiet_queue_analytics()
