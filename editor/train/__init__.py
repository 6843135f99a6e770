"""StyleGAN2-ADA training: data sources, augmentation (ADA), losses and the training loop.

    from editor.train import TrainConfig, RunOptions, run_training, network_config_for
    cfg = TrainConfig(network=network_config_for(64), data="toon", batch=32)
    run_training(cfg, "runs/toon64", RunOptions(minutes=8), device="cuda")

The CLI is `python -m editor train` (editor/commands/train.py); numbers and usage are in docs/training.md.
"""

from editor.train.augment import AdaController, AugmentConfig, AugmentPipe
from editor.train.loop import RunOptions, TrainConfig, Trainer, image_grid, network_config_for, run_training
from editor.train.loss import StyleGAN2Loss

__all__ = ["AdaController", "AugmentConfig", "AugmentPipe", "RunOptions", "StyleGAN2Loss", "TrainConfig", "Trainer",
           "image_grid", "network_config_for", "run_training"]
