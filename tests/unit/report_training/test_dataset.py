"""Paired splits: disjoint, deterministic, labelled by the labeler; Open-I folders too."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from securemed.data.reports import ReportWriter
from securemed.data.synthetic import SyntheticChestXRays
from securemed.errors import DataError
from securemed.report_training.config import ReportDataConfig
from securemed.report_training.dataset import load_split, load_texts, pad_token_ids
from securemed.text import ReportTokenizer
from securemed.text.tokenizer import EOS_ID, PAD_ID

SMALL = ReportDataConfig(image_size=32, train_samples=12, private_samples=6, test_samples=5)


def test_synthetic_splits_are_disjoint_consecutive_films_with_their_reports() -> None:
    train, private, test = (load_split(SMALL, s) for s in ("train", "private", "test"))
    assert (len(train), len(private), len(test)) == (12, 6, 5)
    generator = SyntheticChestXRays(image_size=32, difficulty=SMALL.difficulty, seed=SMALL.seed)
    writer = ReportWriter(generator)
    assert private.texts[0] == writer.report(12).text
    assert test.texts[-1] == writer.report(22).text
    np.testing.assert_array_equal(test.images.numpy(), generator.images(np.arange(18, 23)))
    # the labeler reads the synthetic reports back exactly: labels are the ground truth
    truth = torch.tensor([writer.report(i).labels for i in range(12)], dtype=torch.float32)
    torch.testing.assert_close(train.findings, truth)
    assert load_split(SMALL, "test").texts == test.texts  # deterministic
    assert load_texts(SMALL, "private") == private.texts  # the same reports, no films rendered


def test_an_empty_split_is_refused() -> None:
    with pytest.raises(DataError, match="private split is empty"):
        load_split(SMALL.model_copy(update={"private_samples": 0}), "private")


def test_tokens_end_with_eos_and_are_padded() -> None:
    train = load_split(SMALL, "train")
    tokenizer = ReportTokenizer.train(train.texts, vocab_size=300)
    tokens = train.tokens(tokenizer, max_length=200)
    lengths = (tokens != PAD_ID).sum(dim=1)
    assert all(tokens[row, length - 1] == EOS_ID for row, length in enumerate(lengths))
    assert pad_token_ids([[5, 1], [7, 8, 1]]).tolist() == [[5, 1, 0], [7, 8, 1]]


def _openi_folder(tmp_path: Path, studies: int) -> Path:
    (tmp_path / "img").mkdir()
    path = tmp_path / "reports.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["image", "findings", "impression"])
        writer.writeheader()
        for i in range(studies):
            Image.fromarray(np.full((20, 20), i * 10, dtype=np.uint8)).save(
                tmp_path / f"img/{i}.png"
            )
            effusion = "Small left pleural effusion." if i % 2 else "No pleural effusion."
            writer.writerow(
                {"image": f"img/{i}.png", "findings": effusion, "impression": f"Study {i}."}
            )
    return path


def test_openi_folders_split_by_seed_with_labels_read_from_the_reports(tmp_path: Path) -> None:
    config = ReportDataConfig(
        source="openi", path=_openi_folder(tmp_path, 20), image_size=32, test_samples=4,
        private_samples=3,
    )  # fmt: skip
    splits = {s: load_split(config, s) for s in ("train", "private", "test")}
    assert [len(splits[s]) for s in ("train", "private", "test")] == [13, 3, 4]
    assert load_texts(config, "train") == splits["train"].texts
    texts = [t for split in splits.values() for t in split.texts]
    assert len(set(texts)) == 20  # disjoint, all studies used
    for split in splits.values():
        assert split.images.shape[1:] == (1, 32, 32)
        for text, findings in zip(split.texts, split.findings, strict=True):
            assert bool(findings[1]) == ("Small left" in text)  # pleural effusion


def test_an_openi_file_too_small_for_a_split_is_refused(tmp_path: Path) -> None:
    config = ReportDataConfig(source="openi", path=_openi_folder(tmp_path, 2), image_size=32)
    with pytest.raises(DataError, match="too few studies for a test split"):
        load_split(config, "test")
