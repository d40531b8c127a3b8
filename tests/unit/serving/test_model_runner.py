"""The served model: a pinned checkpoint writes drafts with their confidence, in batches."""

from __future__ import annotations

import numpy as np
import pytest

from securemed.data.synthetic import SyntheticChestXRays
from securemed.errors import CheckpointError
from securemed.report_training.config import ReportDataConfig
from securemed.report_training.dataset import load_texts
from securemed.serving.model_runner import ReportModelRunner, served_checkpoint, training_reports
from securemed.serving.settings import ServiceSettings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runner(trained_report_checkpoint) -> ReportModelRunner:
    directory, digest = trained_report_checkpoint
    return ReportModelRunner.from_settings(
        ServiceSettings(checkpoint=directory, checkpoint_digest=digest)
    )


def test_drafts_have_both_sections_and_a_confidence_in_range(runner) -> None:
    films = SyntheticChestXRays(image_size=200, seed=5).images(np.arange(3))[:, 0]
    drafts = runner.write([runner.model_input(film) for film in films])
    assert len(drafts) == 3
    for draft in drafts:
        assert "FINDINGS:" in draft.text and "IMPRESSION:" in draft.text
        assert draft.mean_token_logprob <= 0 and 0 < draft.min_token_prob <= 1


def test_a_batch_writes_what_each_film_gets_alone(runner) -> None:
    films = SyntheticChestXRays(image_size=32, seed=6).images(np.arange(4))[:, 0]
    inputs = [runner.model_input(film) for film in films]
    together = runner.write(inputs)
    alone = [runner.write([one])[0] for one in inputs]
    assert [d.text for d in together] == [d.text for d in alone]
    assert np.allclose([d.mean_token_logprob for d in together],
                       [d.mean_token_logprob for d in alone], atol=1e-4)  # fmt: skip


def test_films_of_any_size_are_resized_to_the_models_input(runner) -> None:
    assert runner.model_input(np.random.default_rng(0).random((300, 250))).shape == (1, 32, 32)


def test_a_pinned_digest_that_differs_is_refused(trained_report_checkpoint) -> None:
    directory, digest = trained_report_checkpoint
    other = ("0" if digest[0] != "0" else "1") + digest[1:]
    with pytest.raises(CheckpointError, match="pinned"):
        ReportModelRunner.from_settings(
            ServiceSettings(checkpoint=directory, checkpoint_digest=other)
        )


def test_the_training_reports_are_the_ones_the_facts_name(trained_report_checkpoint) -> None:
    directory, _ = trained_report_checkpoint
    texts = training_reports(served_checkpoint(ServiceSettings(checkpoint=directory)))
    expected = load_texts(
        ReportDataConfig(image_size=32, train_samples=512, private_samples=0, test_samples=8),
        "train",
    )
    assert texts == expected
