"""Start the report service on Ray Serve: `make serve`.

    python jobs/serve.py [--config deploy/serve.yaml] [--port 8000] [--state DIR] [--runs DIR]

The story: read the Serve config, create the service state folder if it does not exist yet
(signing key, de-identification key, clinician registry; the administrator token is written
once to ``STATE/admin.token``, readable by its owner only), find the checkpoint to serve (the
one the config names, else the newest trained under ``runs/``; with none at all, train a small
one first with ``configs/report-serve.yaml``, saying so), pin its digest, write the resolved
config to ``STATE/serve.resolved.yaml`` and hand over to ``serve run`` with it, which starts a
local Ray (or joins ``RAY_ADDRESS``) and serves until interrupted.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import yaml
from ray.serve.schema import ServeDeploySchema

from securemed.config import describe_errors, read_yaml_mapping
from securemed.errors import ConfigError, SecureMedError
from securemed.models.report_checkpoint import load_report_checkpoint
from securemed.serving.checkpoints import newest_checkpoint
from securemed.serving.settings import parse_service_settings
from securemed.serving.state import SIGNING_KEY, init_serving_state_with_token_file

ROOT = Path(__file__).resolve().parents[1]
RESOLVED_CONFIG = "serve.resolved.yaml"


def load_serve_config(path: Path) -> dict[str, Any]:
    """The Serve config as a mapping, validated by Serve's own schema."""
    raw = read_yaml_mapping(path)
    try:
        ServeDeploySchema.model_validate(raw)
    except Exception as error:  # pydantic's ValidationError from Ray's vendored schema
        detail = describe_errors(error) if hasattr(error, "errors") else str(error)
        raise ConfigError(f"{path} is not a valid Serve config:\n{detail}") from None
    if len(raw.get("applications", ())) != 1:
        raise ConfigError(f"{path} must hold exactly one application, the report service")
    return raw


def ensure_state(state_dir: Path) -> None:
    """Create the service state on first start; the admin token goes to a 0600 file."""
    if (state_dir / SIGNING_KEY).exists():
        return
    token_file = init_serving_state_with_token_file(state_dir)
    print(
        f"created the service state in {state_dir}; the administrator token is in "
        f"{token_file} (mode 0600): move it to your secret store"
    )


def ensure_checkpoint(checkpoint: Path | None, runs_dir: Path, variants: tuple[str, ...]) -> Path:
    """The checkpoint to serve; trains a small one when there is none at all."""
    if checkpoint is not None:
        return checkpoint
    try:
        return newest_checkpoint(runs_dir, variants)
    except ConfigError:
        pass
    output = runs_dir / f"report-serve-{time.strftime('%Y%m%d-%H%M%S')}"
    print(
        f"no trained report model under {runs_dir}: training a small one first with "
        f"configs/report-serve.yaml into {output} (a few minutes on 2 cores); "
        "`make train-report` trains the full model"
    )
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "jobs" / "train_report.py"),
            "--config",
            str(ROOT / "configs" / "report-serve.yaml"),
            "--output",
            str(output),
        ],
        check=True,
    )
    return newest_checkpoint(runs_dir, variants)


def resolve_config(config: dict[str, Any], args: argparse.Namespace) -> tuple[dict[str, Any], Path]:
    """The config with the state folder made, the checkpoint found and its digest pinned."""
    application = config["applications"][0]
    raw_args = dict(application.get("args") or {})
    if args.state is not None:
        raw_args["state_dir"] = str(args.state)
    if args.runs is not None:
        raw_args["runs_dir"] = str(args.runs)
    if args.checkpoint is not None:
        raw_args["checkpoint"] = str(args.checkpoint)
    settings = parse_service_settings(raw_args, origin=f"{args.config} args")
    state_dir = settings.state_dir.resolve()
    ensure_state(state_dir)
    checkpoint = ensure_checkpoint(
        settings.checkpoint, settings.runs_dir, settings.variant_preference
    ).resolve()
    loaded = load_report_checkpoint(checkpoint, expected_digest=settings.checkpoint_digest)
    raw_args.update(
        state_dir=str(state_dir), checkpoint=str(checkpoint), checkpoint_digest=loaded.digest
    )
    resolved = {**config, "applications": [{**application, "args": raw_args}]}
    if args.port is not None:
        resolved["http_options"] = {**config.get("http_options", {}), "port": args.port}
    print(f"serving {checkpoint} (digest {loaded.digest}, modes {', '.join(loaded.facts.modes)})")
    return resolved, state_dir


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "deploy" / "serve.yaml")
    parser.add_argument("--state", type=Path, help="service state folder (overrides the config)")
    parser.add_argument("--runs", type=Path, help="where trained models are looked for")
    parser.add_argument("--checkpoint", type=Path, help="serve this checkpoint folder")
    parser.add_argument("--port", type=int, help="HTTP port (overrides the config)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        resolved, state_dir = resolve_config(load_serve_config(args.config), args)
    except (SecureMedError, subprocess.CalledProcessError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    path = state_dir / RESOLVED_CONFIG
    path.write_text(yaml.safe_dump(resolved, sort_keys=False))
    os.chdir(ROOT)  # import_path services.app resolves from the repository root
    # Serve's own CLI, from this interpreter (no reliance on a `serve` script on PATH)
    serve_cli = "from ray.serve.scripts import cli; cli()"
    os.execv(sys.executable, [sys.executable, "-c", serve_cli, "run", str(path)])
    return 0  # not reached: serve run replaces this process


if __name__ == "__main__":
    sys.exit(main())
