"""A job's run folder: a fresh one holding the config it ran with, or one to resume."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel

from securemed.durable import atomic_write
from securemed.errors import SecureMedError

CONFIG_FILE = "config.yaml"
Config = TypeVar("Config", bound=BaseModel)


def resolve_run(
    args: argparse.Namespace,
    *,
    load: Callable[[Path | None], Config],
    smoke: Callable[[Config], Config],
    prefix: str,
) -> tuple[Config, Path]:
    """The config and output folder from ``--config/--output/--smoke-test`` or ``--resume``.

    A resumed run reuses the config it was started with (saved in the folder), so a run
    cannot change shape half-way; a new run refuses a folder that already holds one.
    """
    if args.resume:
        if args.config or args.output:
            raise SecureMedError(
                "--resume takes the config and output of the run it continues; "
                "drop --config/--output"
            )
        saved = args.resume / CONFIG_FILE
        if not saved.is_file():
            raise SecureMedError(
                f"{args.resume} holds no {CONFIG_FILE}: not a SecureMed run folder"
            )
        return load(saved), args.resume
    config = load(args.config)
    if args.smoke_test:
        config = smoke(config)
    output = args.output or Path("runs") / time.strftime(f"{prefix}-%Y%m%d-%H%M%S")
    if (output / CONFIG_FILE).exists():
        raise SecureMedError(
            f"{output} already holds a run; use --resume {output} or a new --output"
        )
    output.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
    atomic_write(output / CONFIG_FILE, lambda temporary: temporary.write_text(text))
    return config, output
