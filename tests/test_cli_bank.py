"""The sample and build-bank sub-commands on a tiny random generator."""

from editor.bank import load_bank
from editor.commands import main


def test_sample_then_build_bank(tmp_path, capsys):
    samples = tmp_path / "samples" / "tiny"
    assert main(["sample", "--model", "random:small", "--n", "40", "--chunk", "20", "--labeler", "stats",
                 "--out", str(samples), "--device", "cpu"]) == 0
    assert (samples / "chunk_00001.stats.npz").is_file()
    bank_path = tmp_path / "directions" / "tiny.safetensors"
    assert main(["build-bank", "--model", "random:small", "--n", "40", "--chunk", "20", "--labeler", "stats",
                 "--samples", str(samples), "--out", str(bank_path), "--methods", "svm,logreg,pca,sefa",
                 "--spaces", "z,w,coarse", "--attributes", "brightness,redness", "--components", "2",
                 "--device", "cpu"]) == 0
    bank = load_bank(bank_path)
    names = {e.name for e in bank.entries}
    assert {"brightness/svm/z", "redness/logreg/w+:0-3", "pc1/pca/w", "sefa0/sefa/w+:0-3"} <= names
    assert bank.command.startswith("python -m editor build-bank --model random:small --n 40")
    assert "--methods svm,logreg,pca,sefa" in bank.command
    assert "wrote" in capsys.readouterr().out

    report = tmp_path / "eval"
    assert main(["evaluate", "--model", "random:small", "--bank", str(bank_path), "--judge", "stats",
                 "--attributes", "brightness", "--methods", "svm,logreg", "--spaces", "z,w,coarse", "--n-seeds", "2",
                 "--n-reference", "2", "--alphas=-1,0,1", "--lock", "brightness:redness", "--out", str(report),
                 "--device", "cpu"]) == 0
    assert (report / "report.md").is_file() and (report / "strip_brightness.png").is_file()
    assert "brightness/svm/w+:0-3" in (report / "report.md").read_text()
    assert "W is more disentangled than Z" in capsys.readouterr().out
    assert main(["evaluate", "--model", "random:small", "--bank", str(bank_path), "--judge", "stats",
                 "--attributes", "smile", "--out", str(report)]) == 1
    assert "no supervised directions for ['smile']" in capsys.readouterr().err


def test_build_bank_errors_are_clear(tmp_path, capsys):
    assert main(["build-bank", "--model", "random:small", "--methods", "magic", "--labeler", "stats",
                 "--samples", str(tmp_path / "s")]) == 1
    assert "unknown method" in capsys.readouterr().err
    assert main(["build-bank", "--model", "random:small", "--methods", "svm", "--samples", str(tmp_path / "s")]) == 1
    assert "need labels" in capsys.readouterr().err
    assert main(["build-bank", "--model", "random:small", "--labeler", "stats", "--spaces", "w+:3-20",
                 "--samples", str(tmp_path / "s")]) == 1
    assert "num_ws=8" in capsys.readouterr().err
