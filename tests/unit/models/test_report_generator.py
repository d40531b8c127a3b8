"""The report model: forward, greedy and beam generation, and that it learns a tiny set."""

from __future__ import annotations

import pytest
import torch

from securemed.data.reports import ReportWriter
from securemed.data.synthetic import SyntheticChestXRays
from securemed.errors import ConfigError
from securemed.models.report_generator import ReportGenerator, ReportModelConfig
from securemed.text import ReportTokenizer
from securemed.text.tokenizer import PAD_ID

SMALL = ReportModelConfig(
    image_size=32, patch_size=8, vision_width=64, vision_layers=1, d_model=64, d_ff=128,
    encoder_layers=1, decoder_layers=1, vocab_size=400, max_report_tokens=40,
)  # fmt: skip


@pytest.fixture(scope="module")
def batch():
    generator = SyntheticChestXRays(image_size=32, seed=0)
    reports = ReportWriter(generator).reports(range(4))
    tokenizer = ReportTokenizer.train(
        [r.text for r in ReportWriter(generator).reports(range(300))], vocab_size=400
    )
    ids = [tokenizer.encode(r.text, max_length=40) for r in reports]
    labels = torch.full((4, max(map(len, ids))), PAD_ID)
    for row, sequence in enumerate(ids):
        labels[row, : len(sequence)] = torch.tensor(sequence)
    images = torch.from_numpy(generator.images(torch.arange(4).numpy()))
    return images, labels, tokenizer, reports


def test_forward_gives_a_finite_loss_with_gradients_everywhere(batch) -> None:
    torch.manual_seed(0)
    model = ReportGenerator(SMALL)
    images, labels, _, _ = batch
    loss = model(images, labels)
    assert torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    assert model.per_example_loss(images, labels).shape == (4,)


@pytest.mark.parametrize("beams", [1, 3])
def test_generation_returns_token_ids_greedy_and_beam(batch, beams: int) -> None:
    torch.manual_seed(0)
    model = ReportGenerator(SMALL).eval()
    images, _, tokenizer, _ = batch
    out = model.generate(images, num_beams=beams, max_new_tokens=12)
    assert out.shape[0] == 4 and out.shape[1] <= 12
    assert all(isinstance(tokenizer.decode(row.tolist()), str) for row in out)


def test_the_model_fits_a_tiny_set_of_reports(batch) -> None:
    torch.manual_seed(0)
    model = ReportGenerator(SMALL)
    images, labels, tokenizer, reports = batch
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = float(model(images, labels).detach())
    for _ in range(400):
        optimizer.zero_grad()
        model(images, labels).backward()
        optimizer.step()
    assert float(model(images, labels).detach()) < 0.05 * first
    model.eval()
    # greedy decoding follows what the decoder learnt: every output opens like a training
    # report (tying each film to its own report is the training job's evaluation, not this)
    openings = {" ".join(r.text.split()[:6]) for r in reports}
    for row in model.generate(images, max_new_tokens=40):
        assert " ".join(tokenizer.decode(row.tolist()).split()[:6]) in openings


def test_inconsistent_configs_are_refused() -> None:
    with pytest.raises(ConfigError, match="multiple of patch_size"):
        ReportModelConfig(image_size=30, patch_size=8)
