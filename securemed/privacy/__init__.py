"""Record-level differential privacy: the DP-SGD local trainer and its accounting."""

from securemed.privacy.local_training import (
    LocalResult,
    LocalTrainer,
    train_central,
)

__all__ = ["LocalResult", "LocalTrainer", "train_central"]
