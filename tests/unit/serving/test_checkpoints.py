"""Which checkpoint is served when none is named: the newest run's preferred variant."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from securemed.errors import ConfigError
from securemed.serving.checkpoints import newest_checkpoint


def _model(run: Path, variant: str, mtime: float) -> Path:
    model = run / variant / "model"
    model.mkdir(parents=True)
    (model / "manifest.json").write_text("{}")
    os.utime(run, (mtime, mtime))
    return model


def test_the_newest_run_wins_and_its_preferred_variant(tmp_path: Path) -> None:
    _model(tmp_path / "old", "dp", 1_000)
    new = tmp_path / "new"
    standard = _model(new, "standard", 2_000)
    _model(new, "adversarial", 2_000)
    os.utime(new, (2_000, 2_000))
    assert newest_checkpoint(tmp_path, ("dp", "standard", "adversarial")) == standard


def test_a_variant_still_training_is_passed_over(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "dp" / "model").mkdir(parents=True)  # no manifest yet
    standard = _model(run, "standard", 1_000)
    assert newest_checkpoint(tmp_path, ("dp", "standard")) == standard


def test_no_checkpoint_says_how_to_get_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="make train-report"):
        newest_checkpoint(tmp_path, ("standard",))
