"""Films paired with their reports, split into train, private and test sets.

Every split is a pure function of the data config, so each Ray Train worker loads its own
training split without shipping hundreds of megabytes of pixels through the object store, and
the driver loads only the test split. The finding labels that the model's finding head learns
(and that clinical F1 is scored against) are read out of each reference report by the
CheXpert-style labeler, so a real archive needs nothing but its reports; on synthetic data they
equal the generator's ground truth (the labeler reads those reports exactly).

``private`` is a disjoint set that DP variants train on: the public ``train`` split plays the
part of public pre-training data, the private split the hospital's data that epsilon covers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from securemed.data.openi import PairedRecord, load_image, read_openi_csv
from securemed.data.reports import ReportWriter
from securemed.data.synthetic import SyntheticChestXRays
from securemed.errors import DataError
from securemed.evaluation.report_labeler import Mention, label_report
from securemed.report_training.config import ReportDataConfig
from securemed.text.tokenizer import PAD_ID, ReportTokenizer

Split = Literal["train", "private", "test"]


@dataclass(frozen=True)
class PairedReports:
    """Images (N, 1, S, S) in [0, 1], their report texts, and the findings those assert."""

    images: torch.Tensor
    texts: tuple[str, ...]
    findings: torch.Tensor  # (N, 5) float32, uncertain mentions counted as positive

    def __post_init__(self) -> None:
        if not len(self.images) == len(self.texts) == len(self.findings):
            raise DataError("images, reports and findings must be as many")

    def __len__(self) -> int:
        return len(self.texts)

    def tokens(self, tokenizer: ReportTokenizer, max_length: int) -> torch.Tensor:
        """(N, T) token ids, each report ending in EOS and padded with ``PAD_ID``."""
        return pad_token_ids([tokenizer.encode(text, max_length=max_length) for text in self.texts])

    def subset(self, indices: Sequence[int] | np.ndarray) -> PairedReports:
        index = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        return PairedReports(
            self.images[index], tuple(self.texts[i] for i in index.tolist()), self.findings[index]
        )


def pad_token_ids(sequences: Sequence[Sequence[int]]) -> torch.Tensor:
    """(N, longest) ids padded with ``PAD_ID``."""
    out = torch.full((len(sequences), max(map(len, sequences), default=1)), PAD_ID)
    for row, sequence in enumerate(sequences):
        out[row, : len(sequence)] = torch.as_tensor(list(sequence), dtype=torch.long)
    return out


def finding_labels(texts: Sequence[str]) -> torch.Tensor:
    """What each report asserts, as (N, 5) floats: positive or uncertain counts as 1."""
    rows = [[m != Mention.NEGATIVE for m in label_report(text)] for text in texts]
    return torch.tensor(rows, dtype=torch.float32).reshape(len(rows), -1)


def load_split(config: ReportDataConfig, split: Split) -> PairedReports:
    """One split of the configured data: films, reports and the findings they assert."""
    if config.source == "synthetic":
        generator, indices = _synthetic_selection(config, split)
        texts = tuple(report.text for report in ReportWriter(generator).reports(indices))
        images = torch.from_numpy(generator.images(indices))
    else:
        records = _openi_selection(config, split)
        texts = tuple(record.text for record in records)
        images = torch.from_numpy(np.stack([load_image(r, config.image_size) for r in records]))
    return PairedReports(images, texts, finding_labels(texts))


def load_texts(config: ReportDataConfig, split: Split) -> tuple[str, ...]:
    """The reports of one split without reading or rendering a film (tokenizer, baseline)."""
    if config.source == "synthetic":
        generator, indices = _synthetic_selection(config, split)
        return tuple(report.text for report in ReportWriter(generator).reports(indices))
    return tuple(record.text for record in _openi_selection(config, split))


def _check_split(config: ReportDataConfig, split: Split) -> None:
    if split == "private" and config.private_samples == 0:
        raise DataError("the private split is empty: set data.private_samples above 0")


def _synthetic_selection(
    config: ReportDataConfig, split: Split
) -> tuple[SyntheticChestXRays, np.ndarray]:
    _check_split(config, split)
    start, size = {
        "train": (0, config.train_samples),
        "private": (config.train_samples, config.private_samples),
        "test": (config.train_samples + config.private_samples, config.test_samples),
    }[split]
    generator = SyntheticChestXRays(
        image_size=config.image_size, difficulty=config.difficulty, seed=config.seed
    )
    return generator, np.arange(start, start + size)


def _openi_selection(config: ReportDataConfig, split: Split) -> list[PairedRecord]:
    _check_split(config, split)
    assert config.path is not None  # ReportDataConfig guarantees it for openi
    records = read_openi_csv(config.path)
    order = np.random.default_rng(config.seed).permutation(len(records))
    test = min(config.test_samples, len(records) // 5)
    private = min(config.private_samples, (len(records) - test) // 2)
    bounds = {
        "test": (0, test),
        "private": (test, test + private),
        "train": (test + private, len(records)),
    }[split]
    chosen = [records[i] for i in order[bounds[0] : bounds[1]]]
    if not chosen:
        raise DataError(
            f"{config.path} has too few studies for a {split} split ({len(records)} in all)"
        )
    return chosen
