"""The report model built from pretrained weights in local folders; nothing is downloaded.

Two folder layouts, as their hub repositories hold them (fetch them once, outside SecureMed,
and point the training job at the copies):

- an **open_clip** folder (BiomedCLIP's, from
  ``microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224``): ``open_clip_config.json``,
  whose ``model_cfg.vision_cfg`` becomes the vision tower, and ``open_clip_model.safetensors``
  or ``open_clip_pytorch_model.bin``, whose ``visual.*`` weights fill it. The text tower in
  the same files is not used: reports come from T5.
- a **T5** folder as ``save_pretrained`` writes it (``t5-base``): ``config.json``, the weights,
  and ``tokenizer.json``, which becomes the report tokenizer (T5's weights only make sense with
  T5's vocabulary).

:func:`build_report_model` is the entry point the training job calls. The loaders refuse any
mismatch between a folder and the model, except the tower's pooling head, which the report model
drops on purpose (it reads the feature grid): those keys are skipped and named in the log.

It does not normalise images: the pretrained tower sees the same [0, 1] films the model is
given (see ``preprocess_cfg`` in ``open_clip_config.json`` for what it was trained on).
"""

from __future__ import annotations

import json
import logging
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from open_clip.model import CLIPVisionCfg
from tokenizers import Tokenizer
from torch import nn
from transformers import T5Config, T5ForConditionalGeneration

from securemed.errors import CheckpointError, ConfigError
from securemed.models.report_checkpoint import state_mismatches
from securemed.models.report_generator import ReportGenerator, ReportModelConfig
from securemed.text.tokenizer import EOS_ID, PAD_ID, ReportTokenizer

logger = logging.getLogger(__name__)

OPEN_CLIP_CONFIG = "open_clip_config.json"
#: in order of preference: safetensors needs no unpickler at all
OPEN_CLIP_WEIGHTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
VISION_PREFIX = "visual."
_ABSENT = object()
T5_CONFIG = "config.json"
T5_TOKENIZER = "tokenizer.json"


def build_report_model(
    base: ReportModelConfig,
    *,
    vision: Path | None = None,
    text: Path | None = None,
    tokenizer: ReportTokenizer | None = None,
) -> tuple[ReportGenerator, ReportTokenizer | None]:
    """A report model whose halves come from local pretrained folders where given.

    Args:
        base: the sizes of whatever is not pretrained; a pretrained half replaces its sizes
            (``image_size`` comes from the vision folder, the T5 sizes and ``vocab_size`` from
            the T5 folder).
        vision: an open_clip folder (BiomedCLIP layout); ``None`` trains the tower from scratch.
        text: a T5 folder; ``None`` trains T5 from scratch.
        tokenizer: the tokenizer for a from-scratch T5; a T5 folder brings its own, so giving
            both is refused.

    Returns:
        The model (in training mode) and its tokenizer: the T5 folder's, else ``tokenizer``.

    Example:
        >>> model, tokenizer = build_report_model(
        ...     ReportModelConfig(), vision=Path("models/biomedclip"), text=Path("models/t5-base")
        ... )
    """
    config = base
    if vision is not None:
        config = with_open_clip_vision(config, vision)
    if text is not None:
        if tokenizer is not None:
            raise ConfigError(
                "a T5 folder brings its own tokenizer (its weights are tied to that vocabulary): "
                "pass either text or tokenizer, not both"
            )
        config = with_t5(config, text)
        tokenizer = load_t5_tokenizer(text)
    if tokenizer is not None and tokenizer.vocab_size > config.vocab_size:
        raise ConfigError(
            f"the tokenizer has {tokenizer.vocab_size} tokens but the model {config.vocab_size}: "
            "raise vocab_size to at least the tokenizer's"
        )
    model = ReportGenerator(config)
    if vision is not None:
        skipped = load_open_clip_vision(model, vision)
        logger.info("vision tower loaded", extra={"folder": str(vision), "skipped": skipped})
    if text is not None:
        load_t5_text(model, text)
        logger.info("T5 loaded", extra={"folder": str(text)})
    return model, tokenizer


def with_open_clip_vision(base: ReportModelConfig, folder: Path) -> ReportModelConfig:
    """``base`` with the vision tower and image size of ``folder``'s open_clip config."""
    path = Path(folder) / OPEN_CLIP_CONFIG
    raw = _read_json(path)
    model_cfg = raw.get("model_cfg") if isinstance(raw, dict) else None
    vision = model_cfg.get("vision_cfg") if isinstance(model_cfg, dict) else None
    if not isinstance(vision, dict):
        raise ConfigError(f"{path} has no model_cfg.vision_cfg: is it an open_clip config?")
    unknown = sorted(set(vision) - {f.name for f in fields(CLIPVisionCfg)})
    if unknown:
        raise ConfigError(
            f"{path} has vision settings this open_clip does not know: {', '.join(unknown)}"
        )
    # the folder's weights replace whatever timm would fetch, so timm must not fetch any
    vision = {**vision, "timm_model_pretrained": False}
    preprocess = raw.get("preprocess_cfg") or {}
    return replace(
        base,
        open_clip_vision=vision,
        image_size=_square_size(vision, path),
        image_mean=preprocess.get("mean"),
        image_std=preprocess.get("std"),
    )


def load_open_clip_vision(model: ReportGenerator, folder: Path) -> tuple[str, ...]:
    """Load the ``visual.*`` weights of ``folder`` into ``model.vision``.

    Returns:
        The keys skipped because the model dropped the module they belong to (the pooling or
        projection head); every other difference raises :class:`CheckpointError`.
    """
    path = _open_clip_weights(Path(folder))
    weights = {
        name.removeprefix(VISION_PREFIX): tensor
        for name, tensor in _read_weights(path).items()
        if name.startswith(VISION_PREFIX)
    }
    if not weights:
        raise CheckpointError(
            f"{path} holds no {VISION_PREFIX}* weights: is it an open_clip model?"
        )
    skipped = tuple(sorted(name for name in weights if _in_dropped_module(model.vision, name)))
    kept = {name: tensor for name, tensor in weights.items() if name not in skipped}
    _check_fits(model.vision, kept, path, VISION_PREFIX)
    model.vision.load_state_dict(kept, strict=True)
    return skipped


def with_t5(base: ReportModelConfig, folder: Path) -> ReportModelConfig:
    """``base`` with ``folder``'s T5 config (``config.json``) and its vocabulary size."""
    path = Path(folder) / T5_CONFIG
    raw = _read_json(path)
    if not isinstance(raw, dict) or raw.get("model_type") != "t5":
        found = raw.get("model_type") if isinstance(raw, dict) else None
        raise ConfigError(f"{path} describes a {found!r} model, not T5: point to a T5 folder")
    config = T5Config.from_dict(raw)
    ids = {"pad_token_id": PAD_ID, "eos_token_id": EOS_ID, "decoder_start_token_id": PAD_ID}
    wrong = [
        f"{key}={getattr(config, key)}" for key, want in ids.items() if getattr(config, key) != want
    ]
    if wrong:
        raise ConfigError(
            f"{path} sets {', '.join(wrong)}; the report model needs T5's own ids (pad 0, end 1, "
            "decoder start 0)"
        )
    # through JSON, so the config equals itself after a checkpoint round trip (id2label's keys)
    t5 = json.loads(config.to_json_string(use_diff=False))
    return replace(base, t5=t5, vocab_size=config.vocab_size)


def load_t5_text(model: ReportGenerator, folder: Path) -> None:
    """Load the weights of the T5 ``folder`` into ``model.text``."""
    try:
        pretrained = T5ForConditionalGeneration.from_pretrained(Path(folder), local_files_only=True)
    except OSError as error:  # transformers reports missing files as OSError
        raise CheckpointError(f"{folder} holds no T5 weights: {error}") from None
    _check_fits(model.text, pretrained.state_dict(), Path(folder), "")
    model.text.load_state_dict(pretrained.state_dict(), strict=True)


def load_t5_tokenizer(folder: Path) -> ReportTokenizer:
    """``folder``'s ``tokenizer.json`` (T5's Unigram model) as a report tokenizer."""
    path = Path(folder) / T5_TOKENIZER
    if not path.is_file():
        raise CheckpointError(
            f"{path} is missing: save the fast tokenizer into the folder "
            "(AutoTokenizer.from_pretrained(...).save_pretrained(folder) writes it)"
        )
    tokenizer = Tokenizer.from_file(str(path))
    # ReportTokenizer pads and truncates itself; padding here would put pads inside a report
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return ReportTokenizer(tokenizer)


def _square_size(vision: dict[str, Any], path: Path) -> int:
    size = vision.get("image_size", CLIPVisionCfg.image_size)
    if isinstance(size, list | tuple):
        if len(size) != 2 or size[0] != size[1]:
            raise ConfigError(f"{path} sets image_size {size}; the report model takes square films")
        size = size[0]
    return int(size)


def _open_clip_weights(folder: Path) -> Path:
    for name in OPEN_CLIP_WEIGHTS:
        if (folder / name).is_file():
            return folder / name
    raise CheckpointError(
        f"{folder} holds neither {' nor '.join(OPEN_CLIP_WEIGHTS)}: copy the open_clip weights "
        "into it"
    )


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        return safetensors.torch.load_file(path)
    # weights_only: tensors and containers only, never arbitrary objects from the pickle
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} is not a state dict of tensors")
    return state


def _in_dropped_module(tower: nn.Module, name: str) -> bool:
    """Whether ``name`` belongs to a head the report model removed (set to None or Identity)."""
    owner = getattr(tower, name.split(".")[0], _ABSENT)
    return owner is None or isinstance(owner, nn.Identity)


def _check_fits(
    module: nn.Module, weights: dict[str, torch.Tensor], path: Path, prefix: str
) -> None:
    problems = state_mismatches(module.state_dict(), weights, prefix=prefix)
    if problems:
        raise CheckpointError(
            f"{path} does not fit the model built from its config ({'; '.join(problems)}): "
            "the weights and the config come from different models"
        )


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path} is missing: point to a complete pretrained folder") from None
    except ValueError as error:
        raise ConfigError(f"{path} is not JSON: {error}") from None
