"""Portable training state: networks survive export -> import; the imported run resumes."""

import torch

from editor.stylegan2 import CONFIGS
from editor.train.loop import STATE_FILE, Trainer, TrainConfig
from editor.train.portable import export_state, import_state


def test_export_import_round_trip(tmp_path):
    cfg = TrainConfig(network=CONFIGS["small"], batch=4, pl_weight=0.0)
    trainer = Trainer(cfg)
    trainer.step(torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8))
    trainer.augment.p = 0.25
    run = tmp_path / "run"
    run.mkdir()
    trainer.save_state(run / STATE_FILE)

    shards = export_state(run, tmp_path / "portable", torch.float32, max_mb=0.5)
    assert len(shards) > 1  # sharded below the size limit
    import_state(tmp_path / "portable", tmp_path / "run2")
    restored = Trainer.from_state(tmp_path / "run2" / STATE_FILE)
    for name in ("G", "D", "G_ema"):
        a, b = getattr(trainer, name).state_dict(), getattr(restored, name).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert restored.cur_nimg == trainer.cur_nimg and abs(restored.augment_p - 0.25) < 1e-7
    restored.step(torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8))  # continues training
