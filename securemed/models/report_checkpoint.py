"""The report model's checkpoint: what the training job writes and the serving graph loads.

A checkpoint is a directory of plain files, none of them pickled, so loading one runs no code
from it:

- ``model.safetensors``: the weights (tied T5 embeddings stored once);
- ``model_config.json``: the :class:`ReportModelConfig` that builds the model;
- ``tokenizer.json``: the tokenizer the model was trained with;
- ``training.json``: :class:`TrainingFacts`, how the weights were made (DP guarantee, data);
- ``manifest.json``: the format, its version, the sha256 of each file above and the library
  versions that wrote it.

The sha256 of the manifest's bytes is the checkpoint's *digest*. The manifest catches a file
changed on its own; whoever can rewrite a file can rewrite the manifest too, so the server pins
the digest it was told to serve (``expected_digest``) and the loader refuses any other.

It deliberately does not hold optimizer state: a checkpoint is a released model, not a way to
resume training.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import open_clip
import safetensors.torch
import torch
import transformers

from securemed.durable import fsync_directory, fsync_file
from securemed.errors import CheckpointError, ConfigError
from securemed.models.report_generator import ReportGenerator, ReportModelConfig
from securemed.text.tokenizer import ReportTokenizer

logger = logging.getLogger(__name__)
T = TypeVar("T")

FORMAT = "securemed-report-checkpoint"
VERSION = 1
MODEL_FILE = "model.safetensors"
CONFIG_FILE = "model_config.json"
TOKENIZER_FILE = "tokenizer.json"
TRAINING_FILE = "training.json"
MANIFEST_FILE = "manifest.json"
#: the files the manifest vouches for; anything else in the directory is ignored
CHECKPOINT_FILES = (MODEL_FILE, CONFIG_FILE, TOKENIZER_FILE, TRAINING_FILE)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True, kw_only=True)
class TrainingFacts:
    """How a checkpoint's weights were made; the serving graph shows these to clinicians.

    ``modes`` names the training regimes that were combined, e.g. ``("standard",)`` or
    ``("dp", "adversarial")``. A ``"dp"`` run must state its guarantee (epsilon, delta, the
    accountant, the noise and the clipping norm) and which parameters it covers; parameters
    neither trained under DP nor frozen came from elsewhere (a pretrained folder) and the
    guarantee does not extend to what they learnt.
    """

    modes: tuple[str, ...]
    epsilon: float | None = None
    delta: float | None = None
    accountant: str | None = None
    noise_multiplier: float | None = None
    max_grad_norm: float | None = None
    #: Poisson sampling rate q of each step (DP only)
    sample_rate: float | None = None
    dp_parameters: tuple[str, ...] = ()
    frozen_parameters: tuple[str, ...] = ()
    steps: int
    epochs: int
    train_examples: int
    #: data-parallel workers that trained it (Ray Train's world size)
    workers: int = 1
    #: the training data: source, seed, sizes
    data: dict[str, Any]
    adversarial: dict[str, Any] | None = None
    created_at: str = field(default_factory=_now)

    def __post_init__(self) -> None:
        for name in ("modes", "dp_parameters", "frozen_parameters"):
            value = getattr(self, name)
            if isinstance(value, str):  # tuple("dp") would be ("d", "p")
                raise ConfigError(f"{name} must be a list of names, got the string {value!r}")
            object.__setattr__(self, name, tuple(str(v) for v in value))
        if not self.modes:
            raise ConfigError("modes must name at least one training regime, e.g. ['standard']")
        if "dp" in self.modes:
            stated = (
                "epsilon", "delta", "accountant", "noise_multiplier", "max_grad_norm", "sample_rate"
            )  # fmt: skip
            unstated = [name for name in stated if getattr(self, name) is None]
            if unstated or not self.dp_parameters:
                raise ConfigError(
                    "a DP run must state its guarantee and what it covers: give "
                    + ", ".join([*unstated, *([] if self.dp_parameters else ["dp_parameters"])])
                )
        if "adversarial" in self.modes and self.adversarial is None:
            raise ConfigError("an adversarial run must describe its attack in 'adversarial'")
        if min(self.steps, self.epochs, self.train_examples) < 0 or self.workers < 1:
            raise ConfigError(
                "steps, epochs and train_examples cannot be negative, nor workers below 1"
            )

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        for name in ("modes", "dp_parameters", "frozen_parameters"):
            values[name] = list(values[name])
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainingFacts:
        unknown = sorted(set(values) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"unknown training facts: {', '.join(unknown)}")
        try:
            return cls(**values)
        except TypeError as error:  # a required fact is missing
            raise ConfigError(f"incomplete training facts: {error}") from None


@dataclass(frozen=True)
class LoadedReportModel:
    """A verified checkpoint, ready to serve: the model is in eval mode."""

    model: ReportGenerator
    tokenizer: ReportTokenizer
    facts: TrainingFacts
    config: ReportModelConfig
    #: sha256 of the manifest: what a server pins and an audit log records
    digest: str


def save_report_checkpoint(
    directory: str | Path,
    model: ReportGenerator,
    tokenizer: ReportTokenizer,
    facts: TrainingFacts,
) -> str:
    """Write ``model`` with its tokenizer and training facts to ``directory``; return the digest.

    The checkpoint is written to a temporary directory beside ``directory`` and renamed into
    place once complete, so a crash leaves either the old checkpoint or the new one, never half
    of one. An existing ``directory`` is replaced only if it is empty or a checkpoint.

    Args:
        directory: where the checkpoint goes; its parent is created if needed.
        model: the bare model (unwrap Opacus' ``GradSampleModule._module`` or DDP's ``.module``).
        tokenizer: the tokenizer the model was trained with.
        facts: how the weights were made.

    Returns:
        The checkpoint digest, to pin in the serving config.

    Example:
        >>> digest = save_report_checkpoint("runs/report/checkpoint", model, tokenizer, facts)
        >>> load_report_checkpoint("runs/report/checkpoint", expected_digest=digest)
    """
    if not isinstance(model, ReportGenerator):
        raise ConfigError(
            f"save the bare ReportGenerator, not a {type(model).__name__}: unwrap Opacus' "
            "GradSampleModule (._module) or DDP (.module) first"
        )
    if tokenizer.vocab_size > model.config.vocab_size:
        raise ConfigError(
            f"the tokenizer has {tokenizer.vocab_size} tokens but the model only "
            f"{model.config.vocab_size}: save the tokenizer the model was trained with"
        )
    target = Path(directory)
    _check_replaceable(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        safetensors.torch.save_file(_deduplicated(model.state_dict()), staging / MODEL_FILE)
        fsync_file(staging / MODEL_FILE)
        _write_text(staging / CONFIG_FILE, _json(model.config.to_dict()))
        _write_text(staging / TOKENIZER_FILE, tokenizer.to_json())
        _write_text(staging / TRAINING_FILE, _json(facts.to_dict()))
        manifest = _json(
            {
                "format": FORMAT,
                "version": VERSION,
                "files": {name: _sha256_file(staging / name) for name in CHECKPOINT_FILES},
                "software": {
                    "torch": torch.__version__,
                    "transformers": transformers.__version__,
                    "open_clip": open_clip.__version__,
                },
            }
        )
        _write_text(staging / MANIFEST_FILE, manifest)
        fsync_directory(staging)
        _move_into_place(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    digest = hashlib.sha256(manifest.encode("utf-8")).hexdigest()
    logger.info("report checkpoint saved", extra={"checkpoint": str(target), "digest": digest})
    return digest


def load_report_checkpoint(
    directory: str | Path,
    *,
    expected_digest: str | None = None,
    map_location: str | torch.device = "cpu",
) -> LoadedReportModel:
    """Verify and load a checkpoint written by :func:`save_report_checkpoint`.

    Every file is read once, hashed and parsed from the same bytes, so a file swapped between
    the check and the use is still caught. Nothing is unpickled.

    Args:
        directory: the checkpoint directory.
        expected_digest: the digest the server was told to serve; any other is refused. Without
            it a consistently rewritten checkpoint (files and manifest) cannot be detected.
        map_location: the device the model is moved to.

    Raises:
        CheckpointError: the directory or a file is missing, the manifest is of another format
            or a newer version, a file's hash or the digest differs, or the parts do not fit
            together (tokenizer larger than the vocabulary, weights of another architecture).
    """
    root = Path(directory)
    if not root.is_dir():
        raise CheckpointError(
            f"checkpoint directory {root} does not exist: pass the directory the training job "
            "wrote (it holds manifest.json)"
        )
    manifest_bytes = _read(root, MANIFEST_FILE)
    digest = hashlib.sha256(manifest_bytes).hexdigest()
    if expected_digest is not None and digest != expected_digest.lower():
        raise CheckpointError(
            f"{root / MANIFEST_FILE} has digest {digest}, not the pinned {expected_digest}: the "
            "checkpoint was replaced or rewritten; serve only the checkpoint the training run "
            "reported, or pin the new digest after reviewing it"
        )
    hashes = _verified_hashes(root, manifest_bytes)
    contents = {}
    for name in CHECKPOINT_FILES:
        data = _read(root, name)
        if hashlib.sha256(data).hexdigest() != hashes[name]:
            raise CheckpointError(
                f"{root / name} does not match the sha256 in its manifest: it was changed after "
                "saving (tampered or corrupted); do not serve it, restore the checkpoint from "
                "the training run's output"
            )
        contents[name] = data

    config = _parse(
        root / CONFIG_FILE, lambda: ReportModelConfig.from_dict(_loads(contents[CONFIG_FILE]))
    )
    tokenizer = _parse(
        root / TOKENIZER_FILE,
        lambda: ReportTokenizer.from_json(contents[TOKENIZER_FILE].decode("utf-8")),
    )
    facts = _parse(
        root / TRAINING_FILE, lambda: TrainingFacts.from_dict(_loads(contents[TRAINING_FILE]))
    )
    if tokenizer.vocab_size > config.vocab_size:
        raise CheckpointError(
            f"{root / TOKENIZER_FILE} has {tokenizer.vocab_size} tokens but {root / CONFIG_FILE} "
            f"only {config.vocab_size}: the tokenizer belongs to another model; save the "
            "checkpoint again from the training run"
        )
    try:
        state = safetensors.torch.load(contents[MODEL_FILE])
    except Exception as error:  # safetensors raises its own SafetensorError
        raise CheckpointError(f"{root / MODEL_FILE} is not a safetensors file: {error}") from None
    model = ReportGenerator(_offline(config))
    model.load_state_dict(_complete_state(model, state, root / MODEL_FILE), strict=True)
    model.to(map_location).eval()
    return LoadedReportModel(model, tokenizer, facts, config, digest)


def checkpoint_digest(directory: str | Path) -> str:
    """The digest :func:`load_report_checkpoint` would report, from the manifest alone: what a
    server pins before its replicas load (they verify every file against it)."""
    return hashlib.sha256(_read(Path(directory), MANIFEST_FILE)).hexdigest()


def copy_report_checkpoint(source: Path, target: Path) -> str:
    """Copy a checkpoint (out of a Ray Train checkpoint, say) to ``target``; its digest.

    The copy is checked against the source's manifest and published by the same fsync and
    rename as a fresh save, so a crash never leaves a ``target`` that looks complete.
    """
    source, target = Path(source), Path(target)
    _check_replaceable(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        for name in (*CHECKPOINT_FILES, MANIFEST_FILE):
            shutil.copyfile(_existing(source, name), staging / name)
            fsync_file(staging / name)
        manifest = (staging / MANIFEST_FILE).read_bytes()
        for name, expected in _verified_hashes(staging, manifest).items():
            if _sha256_file(staging / name) != expected:
                raise CheckpointError(
                    f"{source / name} does not match its manifest: the source is damaged or "
                    "was altered; train the variant again"
                )
        fsync_directory(staging)
        _move_into_place(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return hashlib.sha256(manifest).hexdigest()


def _existing(root: Path, name: str) -> Path:
    path = root / name
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: {root} is not a complete report checkpoint")
    return path


def _deduplicated(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Each group of tied tensors once, under its first name; safetensors refuses aliases."""
    return {names[0]: state[names[0]].detach().contiguous() for names in _alias_groups(state)}


def _alias_groups(state: dict[str, torch.Tensor]) -> list[list[str]]:
    """Names grouped by the memory they share: T5 ties its embeddings and ``lm_head``."""
    groups: dict[tuple[Any, ...], list[str]] = {}
    for name, tensor in state.items():
        if tensor.numel() == 0:  # empty tensors may share a null pointer without being tied
            key: tuple[Any, ...] = (name,)
        else:
            key = (
                tensor.device,
                tensor.untyped_storage().data_ptr(),
                tensor.storage_offset(),
                tuple(tensor.shape),
                tuple(tensor.stride()),
                tensor.dtype,
            )
        groups.setdefault(key, []).append(name)
    return list(groups.values())


def _complete_state(
    model: ReportGenerator, stored: dict[str, torch.Tensor], path: Path
) -> dict[str, torch.Tensor]:
    """The stored tensors under every name the model expects, tied names filled in."""
    expected = model.state_dict()
    given = dict(stored)
    for names in _alias_groups(expected):
        present = [name for name in names if name in stored]
        if not present:
            continue  # reported as missing below
        tensor = stored[present[0]]
        if any(not torch.equal(stored[other], tensor) for other in present[1:]):
            raise CheckpointError(
                f"{path} stores tied weights {', '.join(present)} with different values: the "
                "model it came from did not tie them as this one does; retrain or re-export it"
            )
        given.update(dict.fromkeys(names, tensor))
    problems = state_mismatches(expected, given)
    if problems:
        raise CheckpointError(
            f"{path} does not fit the model its {CONFIG_FILE} describes ({'; '.join(problems)}): "
            "the checkpoint is incompatible with this SecureMed version or was assembled from "
            "different runs; save it again from the training run"
        )
    return given


def state_mismatches(
    expected: dict[str, torch.Tensor], given: dict[str, torch.Tensor], *, prefix: str = ""
) -> list[str]:
    """Why ``given`` would not load into a module whose state dict is ``expected``: missing
    and unexpected names and wrong shapes (names shown with ``prefix``); empty if it fits.

    ``load_state_dict`` finds the same, but stops at the first shape and names no file.
    """
    missing = sorted(prefix + name for name in set(expected) - set(given))
    unexpected = sorted(prefix + name for name in set(given) - set(expected))
    shapes = sorted(
        f"{prefix}{name} {list(tensor.shape)} (the model needs {list(expected[name].shape)})"
        for name, tensor in given.items()
        if name in expected and tensor.shape != expected[name].shape
    )
    listed = {"missing": missing, "unexpected": unexpected, "wrong shapes": shapes}
    return [f"{kind} {_listing(names)}" for kind, names in listed.items() if names]


def _listing(names: list[str], shown: int = 5) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def _offline(config: ReportModelConfig) -> ReportModelConfig:
    """The config with timm's own pretrained download off: the weights come from the file."""
    vision = config.open_clip_vision
    if vision is None or not vision.get("timm_model_pretrained"):
        return config
    return replace(config, open_clip_vision={**vision, "timm_model_pretrained": False})


def _verified_hashes(root: Path, manifest_bytes: bytes) -> dict[str, str]:
    path = root / MANIFEST_FILE
    try:
        manifest = _loads(manifest_bytes)
    except ValueError as error:
        raise CheckpointError(f"{path} is not JSON ({error}): save the checkpoint again") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise CheckpointError(
            f"{path} describes a {found!r} checkpoint, not a {FORMAT!r}: load it with the tool "
            "that wrote it, or point to a report model checkpoint"
        )
    version = manifest.get("version")
    if not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{path} has no valid format version: save the checkpoint again")
    if version > VERSION:
        raise CheckpointError(
            f"{path} is format version {version}; this SecureMed reads up to {VERSION}: upgrade "
            "SecureMed to load it"
        )
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise CheckpointError(f"{path} lists no files: save the checkpoint again")
    unlisted = [name for name in CHECKPOINT_FILES if not isinstance(files.get(name), str)]
    if unlisted:
        raise CheckpointError(
            f"{path} gives no sha256 for {', '.join(unlisted)}: save the checkpoint again"
        )
    return {name: files[name] for name in CHECKPOINT_FILES}


def _read(root: Path, name: str) -> bytes:
    try:
        return (root / name).read_bytes()
    except FileNotFoundError:
        raise CheckpointError(
            f"{root / name} is missing: the checkpoint is incomplete; copy the whole directory "
            "the training job wrote"
        ) from None


def _parse(path: Path, parse: Callable[[], T]) -> T:
    try:
        return parse()
    except (ConfigError, ValueError, TypeError) as error:
        raise CheckpointError(
            f"{path} cannot be read ({error}): the checkpoint was written by an incompatible "
            "SecureMed version; save it again from the training run"
        ) from None


def _loads(data: bytes) -> Any:
    return json.loads(data.decode("utf-8"))


def _json(values: dict[str, Any]) -> str:
    return json.dumps(values, indent=2, sort_keys=True) + "\n"


def _write_text(path: Path, text: str) -> None:
    with path.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _check_replaceable(target: Path) -> None:
    """Refuse to replace anything but an empty directory or an earlier checkpoint."""
    if not target.exists():
        return
    if not target.is_dir():
        raise CheckpointError(
            f"{target} is a file, not a checkpoint directory: choose another path"
        )
    if any(target.iterdir()) and not (target / MANIFEST_FILE).is_file():
        raise CheckpointError(
            f"{target} holds other files and is not a checkpoint: choose an empty or new "
            "directory (saving replaces the whole directory)"
        )


def _move_into_place(staging: Path, target: Path) -> None:
    """Rename ``staging`` to ``target``; an old ``target`` is removed only after that worked."""
    if not target.exists():
        staging.rename(target)
    else:
        retired = staging.with_suffix(".old")  # unique: the staging name is
        target.rename(retired)
        try:
            staging.rename(target)
        except BaseException:
            retired.rename(target)
            raise
        shutil.rmtree(retired, ignore_errors=True)
    fsync_directory(target.parent)
