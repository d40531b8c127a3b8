"""The report model as the service runs it: a pinned checkpoint, batches of films in, drafts out.

A draft is the generated report and the model's confidence in it (the mean log-probability of
its tokens and the probability of its least likely one), which the safety validator judges.
Loading verifies every file of the checkpoint against its manifest and, when the operator
pinned one, the manifest's digest: a swapped or tampered model is refused at start.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from securemed.models.report_checkpoint import (
    LoadedReportModel,
    checkpoint_digest,
    load_report_checkpoint,
)
from securemed.report_training.config import ReportDataConfig
from securemed.report_training.dataset import load_texts
from securemed.serving.checkpoints import newest_checkpoint
from securemed.serving.settings import ServiceSettings


@dataclass(frozen=True)
class DraftReport:
    """A generated report before validation, with the model's confidence in it."""

    text: str
    mean_token_logprob: float
    min_token_prob: float
    #: the checkpoint that wrote it (what the sealed envelope names)
    model_version: str


def pin_checkpoint(settings: ServiceSettings) -> ServiceSettings:
    """The settings with the checkpoint found once and its digest pinned, so every replica
    (and every restart of one) loads the same model, whatever is trained meanwhile."""
    path = settings.checkpoint or newest_checkpoint(settings.runs_dir, settings.variant_preference)
    digest = settings.checkpoint_digest or checkpoint_digest(path)
    return settings.model_copy(update={"checkpoint": Path(path), "checkpoint_digest": digest})


def served_checkpoint(settings: ServiceSettings) -> LoadedReportModel:
    """The checkpoint the settings name (or the newest trained), verified and pinned."""
    path = settings.checkpoint or newest_checkpoint(settings.runs_dir, settings.variant_preference)
    return load_report_checkpoint(Path(path), expected_digest=settings.checkpoint_digest)


def training_reports(loaded: LoadedReportModel) -> tuple[str, ...]:
    """The report texts the checkpoint was trained on, re-read from the data its facts name:
    the distribution the safety validator's anomaly profile is fitted to."""
    data = dict(loaded.facts.data)
    split = data.pop("split", "train")
    data.pop("init_from", None)
    return load_texts(ReportDataConfig.model_validate(data), split)


class ReportModelRunner:
    """Loads one checkpoint and writes reports for batches of films."""

    def __init__(self, loaded: LoadedReportModel, *, num_beams: int = 1) -> None:
        self._loaded = loaded
        self._num_beams = num_beams
        self.image_size = loaded.config.image_size
        #: what every envelope names: the checkpoint's digest, pinnable by operators
        self.model_version = f"sha256:{loaded.digest}"

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> ReportModelRunner:
        return cls(served_checkpoint(settings), num_beams=settings.num_beams)

    def model_input(self, pixels: np.ndarray) -> np.ndarray:
        """A (H, W) film in [0, 1] as the model's (1, S, S) input: resized, as in training."""
        resized = Image.fromarray(np.asarray(pixels, dtype=np.float32)).resize(
            (self.image_size, self.image_size), Image.Resampling.BILINEAR
        )
        return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)[None]

    def write(self, films: Sequence[np.ndarray]) -> list[DraftReport]:
        """Drafts for (1, S, S) model inputs, in order, in one batched decoding pass."""
        if not films:
            return []
        images = torch.from_numpy(np.stack(films))
        scored = self._loaded.model.generate_scored(images, num_beams=self._num_beams)
        means, minima = scored.mean_logprob().tolist(), scored.min_prob().tolist()
        return [
            DraftReport(self._loaded.tokenizer.decode(ids.tolist()), mean, low, self.model_version)
            for ids, mean, low in zip(scored.token_ids, means, minima, strict=True)
        ]
