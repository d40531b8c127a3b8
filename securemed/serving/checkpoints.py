"""Finding the checkpoint to serve when the operator names none: the newest trained one."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from securemed.errors import ConfigError
from securemed.models.report_checkpoint import MANIFEST_FILE


def newest_checkpoint(runs_dir: Path, variants: Sequence[str]) -> Path:
    """The model folder of the newest finished report run, of the first variant it has.

    A run's variants are ``<run>/<variant>/model``; a run still training has no manifest
    yet for its current variant and is passed over for that variant.
    """
    runs = sorted(
        (path for path in Path(runs_dir).glob("*") if path.is_dir()),
        key=lambda path: path.stat().st_mtime,
        reverse=True,
    )
    for run in runs:
        for variant in variants:
            model = run / variant / "model"
            if (model / MANIFEST_FILE).is_file():
                return model
    raise ConfigError(
        f"no trained report model under {runs_dir} (looked for variants "
        f"{', '.join(variants)}): run `make train-report`, or `make serve` trains a small one"
    )
