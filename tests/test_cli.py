"""CLI: generate (grid PNG from seeds), convert (any source -> native), models (registry and licences)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from editor import checkpoints as ck
from editor.commands import build_parser, main
from editor.commands.generate import latents_for_seeds, make_grid, to_uint8

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(ck.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv(ck.OFFLINE_ENV, "1")


def test_generate_grid_and_single_images(tmp_path, capsys):
    out, outdir = tmp_path / "grid.png", tmp_path / "single"
    rc = main(["generate", "--model", "random:small", "--seeds", "0,3,5-9", "--trunc", "0.7", "--out", str(out),
               "--outdir", str(outdir), "--device", "auto", "--no-progress"])
    assert rc == 0
    grid = Image.open(out)
    assert grid.size == (3 * 32, 3 * 32)  # 7 images -> 3 columns x 3 rows
    assert grid.text["seeds"] == "0,3,5,6,7,8,9" and grid.text["truncation_psi"] == "0.7"
    assert grid.text["model_id"] == ck.model_id(ck.load_generator("random:small"))
    assert sorted(p.name for p in outdir.iterdir()) == [f"seed{s:04d}.png" for s in (0, 3, 5, 6, 7, 8, 9)]
    assert "wrote" in capsys.readouterr().out


def test_generate_matches_the_library(tmp_path, fixtures_dir):
    out = tmp_path / "grid.png"
    assert main(["generate", "--model", str(fixtures_dir / "small"), "--seeds", "2,4", "--cols", "2",
                 "--trunc", "0.5", "--batch", "1", "--out", str(out), "--no-progress"]) == 0
    G = ck.load_generator(fixtures_dir / "small")
    z = torch.from_numpy(latents_for_seeds([2, 4], G.z_dim))
    with torch.no_grad():
        expected = make_grid(to_uint8(G.synthesis(G.mapping(z, None, truncation_psi=0.5), noise_mode="const")), 2)
    assert np.array_equal(np.asarray(Image.open(out)), expected)


def test_seed_convention_is_the_reference_one():
    z = latents_for_seeds([5], 512)
    assert np.allclose(z[0], np.random.RandomState(5).randn(512).astype(np.float32))


def test_make_grid_layout():
    imgs = np.stack([np.full((2, 3, 3), i, np.uint8) for i in range(5)])
    grid = make_grid(imgs, cols=2)
    assert grid.shape == (6, 6, 3)
    assert grid[0, 3, 0] == 1 and grid[4, 0, 0] == 4 and grid[4, 3, 0] == 0


@pytest.mark.parametrize("argv,message", [
    (["--seeds", "5-2"], "runs backwards"),
    (["--seeds", "-1"], "seeds must be in"),
    (["--batch", "0"], "--batch"),
    (["--class", "1"], "unconditional"),
    (["--trunc-cutoff", "99"], "--trunc-cutoff"),
    (["--model", "random:nope"], "unknown configuration"),
    (["--model", "ffhq-1024"], "stylegan2-ffhq-1024x1024.pkl"),
    (["--model", "demo-or-typo"], "not an existing path"),
])
def test_generate_errors_are_one_line(tmp_path, capsys, argv, message):
    base = ["generate", "--model", "random:small", "--seeds", "0", "--out", str(tmp_path / "g.png"), "--no-progress"]
    rc = main(base + argv)
    err = capsys.readouterr().err
    assert rc == 1 and message in err and "Traceback" not in err
    assert not (tmp_path / "g.png").exists()


def test_convert_pickle_to_native_and_back(tmp_path, fixtures_dir, capsys):
    import _refpickle as rp

    G = ck.load_generator(fixtures_dir / "small")
    D = ck.load_network(fixtures_dir / "small_D", kind="D")
    pkl = rp.write_reference_pickle(tmp_path / "snap.pkl", {"G_ema": G, "D": D})
    assert main(["convert", str(pkl), str(tmp_path / "native")]) == 0
    assert main(["convert", str(pkl), str(tmp_path / "D.safetensors"), "--kind", "D"]) == 0
    assert ck.model_id(ck.load_generator(tmp_path / "native")) == ck.model_id(G)
    assert ck.model_id(ck.load_network(tmp_path / "D.safetensors", kind="D")) == ck.model_id(D)
    assert "model id" in capsys.readouterr().out
    # refuses to overwrite without --force
    assert main(["convert", str(pkl), str(tmp_path / "native")]) == 1
    assert "already exists" in capsys.readouterr().err
    assert main(["convert", "random:small:1", str(tmp_path / "native"), "--force"]) == 0


def test_convert_registry_model_records_its_licence(tmp_path, fixtures_dir):
    import json

    import _refpickle as rp

    G = ck.load_generator(fixtures_dir / "small")
    (tmp_path / "cache").mkdir()
    rp.write_reference_pickle(tmp_path / "cache" / "stylegan2-ffhq-256x256.pkl", {"G_ema": G})
    assert main(["convert", "ffhq-256", str(tmp_path / "out")]) == 0
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["source"] == "ffhq-256" and "non-commercially" in config["license"]["text"]


def test_models_lists_registry_and_licence(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in ("ffhq-1024", "ffhq-512", "ffhq-256", "demo"):
        assert name in out
    assert "not downloaded" in out
    assert main(["models", "--license", "ffhq-512"]) == 0
    assert "research or evaluation purposes only" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["generate", "convert", "models"])
def test_help_has_examples(command):
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    text = sub.format_help()
    assert "examples:" in text and f"python -m editor {command}" in text


def test_module_entry_point(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), ck.CACHE_ENV: str(tmp_path / "cache"), ck.OFFLINE_ENV: "1"}
    result = subprocess.run([sys.executable, "-m", "editor", "generate", "--model", "random:small", "--seeds", "0-1",
                             "--out", str(tmp_path / "g.png")], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert Image.open(tmp_path / "g.png").size == (64, 32)
