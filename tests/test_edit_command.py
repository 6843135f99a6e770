"""`python -m editor edit` (editor/commands/edit.py) on random weights with the PCA fallback bank."""

import numpy as np
from PIL import Image

from editor.commands import main
from editor.recipe import read_png_recipe


def test_edit_export_and_continue(tmp_path, capsys):
    first = tmp_path / "a.png"
    assert main(["edit", "--model", "random:small", "--seed", "3", "--set", "pc0=2,pc1=-1", "--lock", "pc2",
                 "--layers", "coarse", "--out", str(first), "--device", "cpu"]) == 0
    recipe = read_png_recipe(first)
    assert recipe["edit"]["sliders"] == {"pc0": 2.0, "pc1": -1.0} and recipe["edit"]["layers"] == [0, 4]
    second = tmp_path / "b.png"
    assert main(["edit", "--model", "random:small", "--recipe", str(first), "--set", "pc0=0", "--out", str(second),
                 "--device", "cpu"]) == 0
    assert read_png_recipe(second)["edit"]["sliders"] == {"pc1": -1.0}
    assert not np.array_equal(np.asarray(Image.open(first)), np.asarray(Image.open(second)))
    walk = tmp_path / "w.gif"
    assert main(["edit", "--model", "random:small", "--seed", "1", "--walk", "pc0", "--frames", "4",
                 "--out", str(walk), "--device", "cpu"]) == 0
    assert Image.open(walk).n_frames == 6
    assert main(["edit", "--model", "random:small", "--list", "--device", "cpu"]) == 0
    assert "pc0" in capsys.readouterr().out


def test_edit_bad_input(tmp_path, capsys):
    out = tmp_path / "x.png"
    assert main(["edit", "--model", "random:small", "--set", "wings=1", "--out", str(out), "--device", "cpu"]) == 1
    assert "unknown attribute 'wings'" in capsys.readouterr().err
    assert main(["edit", "--model", "random:small", "--set", "pc0=nan", "--out", str(out), "--device", "cpu"]) == 1
    assert "not a finite number" in capsys.readouterr().err
    assert main(["edit", "--model", "random:small", "--out", str(tmp_path / "x.bmp"), "--device", "cpu"]) == 1
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    assert main(["edit", "--model", "random:small", "--recipe", str(bad), "--out", str(out), "--device", "cpu"]) == 1
    assert "not a readable PNG" in capsys.readouterr().err
