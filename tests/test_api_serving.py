"""editor.ui.serving: Gradio's per-request session configs built lazily must equal Gradio's own, and an app that uses
them still serves the page's events and the HTTP API (the full API is tested in test_app.py)."""

import os

import pytest

gr = pytest.importorskip("gradio")

import app  # noqa: E402
from _engine_fixtures import tiny_engine  # noqa: E402
from editor.ui import serving  # noqa: E402


@pytest.fixture(scope="module")
def demo():
    return app.build_demo(tiny_engine())  # build_demo applies the tuning


def _eager(demo):
    """A SessionState built by Gradio's own constructor."""
    from gradio.state_holder import SessionState

    s = SessionState.__new__(SessionState)
    SessionState._editor_original_init(s, demo)
    return s


def test_lazy_configs_applied_and_idempotent(demo):
    from gradio.state_holder import SessionState

    assert serving.lazy_session_configs() is True
    assert SessionState._editor_lazy_configs
    s = SessionState(demo)
    assert isinstance(s.config_values, serving.LazyBlockConfigs)
    assert "0 built" in repr(s.config_values)  # nothing rendered until read


def test_lazy_configs_equal_gradios_own(demo):
    from gradio.state_holder import SessionState

    lazy, eager = SessionState(demo), _eager(demo)
    assert set(vars(lazy)) == set(vars(eager))  # every attribute Gradio's constructor sets
    assert list(lazy.config_values) == list(eager.config_values)  # same blocks, same order
    assert list(lazy.components) == list(eager.components)  # what the page's deep links read
    assert lazy.state_data == eager.state_data and lazy.is_closed == eager.is_closed


def test_lazy_configs_follow_updates_like_gradios_own(demo):
    """Gradio's writes (a State's value, a component's value in its config) give the same configs either way."""
    from gradio.state_holder import SessionState

    state_id = next(k for k, b in demo.blocks.items() if isinstance(b, gr.State))
    comp_id = next(k for k, b in demo.blocks.items() if isinstance(b, gr.Slider))
    sessions = [SessionState(demo), _eager(demo)]
    for s in sessions:
        s[state_id] = {"x": 1}
        s._update_value_in_config(comp_id, 0.25)
    lazy, eager = sessions
    assert lazy.config_values[comp_id] == eager.config_values[comp_id]
    assert lazy.config_values[comp_id]["props"]["value"] == 0.25
    assert list(lazy.components) == list(eager.components)
    assert lazy[state_id] == {"x": 1}


def test_queue_analytics_refresh_is_spaced_out(demo):
    assert int(os.environ["GRADIO_ANALYTICS_CACHE_FREQUENCY"]) >= 100
