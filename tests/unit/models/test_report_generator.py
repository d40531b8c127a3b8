"""The report model: forward, greedy and beam generation, and that it learns a tiny set."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from opacus import GradSampleModule

from securemed.data.reports import ReportWriter
from securemed.data.synthetic import SyntheticChestXRays
from securemed.errors import ConfigError
from securemed.evaluation.report_labeler import Mention, label_report
from securemed.models.report_generator import ReportGenerator, ReportModelConfig
from securemed.report_training.trainer import freeze_for_dp
from securemed.text import ReportTokenizer
from securemed.text.tokenizer import PAD_ID

SMALL = ReportModelConfig(
    image_size=32, vision_width=8, d_model=64, d_ff=128, encoder_layers=1, decoder_layers=1,
    vocab_size=400, max_report_tokens=100,
)  # fmt: skip
SMALL_VIT = dataclasses.replace(SMALL, vision="vit", vision_width=64, vision_layers=(1,))


@pytest.fixture(scope="module")
def batch():
    generator = SyntheticChestXRays(image_size=32, seed=0)
    reports = ReportWriter(generator).reports(range(4))
    tokenizer = ReportTokenizer.train(
        [r.text for r in ReportWriter(generator).reports(range(300))], vocab_size=400
    )
    ids = [tokenizer.encode(r.text, max_length=100) for r in reports]
    labels = torch.full((4, max(map(len, ids))), PAD_ID)
    for row, sequence in enumerate(ids):
        labels[row, : len(sequence)] = torch.tensor(sequence)
    images = torch.from_numpy(generator.images(torch.arange(4).numpy()))
    return images, labels, tokenizer, reports


@pytest.mark.parametrize("config", [SMALL, SMALL_VIT], ids=["resnet", "vit"])
def test_forward_gives_a_finite_loss_with_gradients_everywhere(batch, config) -> None:
    torch.manual_seed(0)
    model = ReportGenerator(config)
    images, labels, _, reports = batch
    findings = torch.tensor([r.labels for r in reports], dtype=torch.float32)
    loss = model(images, labels, findings)
    assert torch.isfinite(loss)
    loss.backward()
    # the towers' pooling heads are dropped, so every parameter left is trained
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    assert model.per_example_loss(images, labels).shape == (4,)
    assert model.finding_logits(images).shape == (4, 5)


def test_the_finding_loss_is_added_per_example(batch) -> None:
    torch.manual_seed(0)
    model = ReportGenerator(SMALL).eval()
    images, labels, _, reports = batch
    findings = torch.tensor([r.labels for r in reports], dtype=torch.float32)
    text_only = model.per_example_loss(images, labels)
    head = torch.nn.functional.binary_cross_entropy_with_logits(
        model.finding_logits(images), findings, reduction="none"
    ).mean(dim=1)
    both = model.per_example_loss(images, labels, findings, finding_weight=0.5)
    torch.testing.assert_close(both, text_only + 0.5 * head)


@pytest.mark.parametrize("config", [SMALL, SMALL_VIT], ids=["resnet", "vit"])
def test_opacus_per_example_gradients_equal_each_examples_own_gradient(batch, config) -> None:
    """Group norm, out-of-place residuals and no in-place ReLU make the model DP-trainable:
    Opacus's per-example gradient of every parameter DP trains equals the gradient of that
    example's loss alone (dropout off, T5's functional attention dropout too, so both passes
    compute the same function)."""
    torch.manual_seed(0)
    model = ReportGenerator(config)
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
        if isinstance(getattr(module, "dropout", None), float):
            module.dropout = 0.0
    frozen = freeze_for_dp(model)
    assert any("relative_attention_bias" in name for name in frozen)
    private = GradSampleModule(model)
    images, labels, _, reports = batch
    findings = torch.tensor([r.labels for r in reports], dtype=torch.float32)
    private(images, labels, findings).backward()
    per_example = {n: p.grad_sample.clone() for n, p in model.named_parameters() if p.requires_grad}
    assert set(per_example) | set(frozen) == {n for n, _ in model.named_parameters()}
    private.disable_hooks()
    for row in (0, 3):
        own = torch.autograd.grad(
            private._module(images[row : row + 1], labels[row : row + 1], findings[row : row + 1]),
            [p for p in model.parameters() if p.requires_grad],
        )
        for (name, expected), actual in zip(per_example.items(), own, strict=True):
            torch.testing.assert_close(expected[row], actual, atol=1e-5, rtol=1e-4, msg=name)


@pytest.mark.parametrize("beams", [1, 3])
def test_generation_returns_token_ids_greedy_and_beam(batch, beams: int) -> None:
    torch.manual_seed(0)
    model = ReportGenerator(SMALL).eval()
    images, _, tokenizer, _ = batch
    out = model.generate(images, num_beams=beams, max_new_tokens=12)
    assert out.shape[0] == 4 and out.shape[1] <= 12
    assert all(isinstance(tokenizer.decode(row.tolist()), str) for row in out)


@pytest.mark.parametrize("beams", [1, 3])
def test_scored_generation_gives_each_chosen_tokens_log_probability(batch, beams: int) -> None:
    """The scores match a teacher-forced pass over the generated report, token by token, so
    the confidence a validator reads is the model's own probability of what it wrote."""
    torch.manual_seed(0)
    model = ReportGenerator(SMALL).eval()
    images = batch[0]
    scored = model.generate_scored(images, num_beams=beams, max_new_tokens=12)
    assert torch.equal(scored.token_ids, model.generate(images, num_beams=beams, max_new_tokens=12))
    with torch.no_grad():
        logits = model.text(inputs_embeds=model.features(images)[1], labels=scored.token_ids).logits
    forced = logits.log_softmax(-1).gather(-1, scored.token_ids.unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(scored.token_logprobs[scored.mask], forced[scored.mask], atol=1e-4)
    assert bool((scored.mean_logprob() <= 0).all())
    assert bool(((scored.min_prob() > 0) & (scored.min_prob() <= 1)).all())


def test_report_confidence_ignores_the_padding_after_eos() -> None:
    from securemed.models.report_generator import ScoredReports
    from securemed.text.tokenizer import EOS_ID

    ids = torch.tensor([[5, EOS_ID, PAD_ID], [5, 6, EOS_ID]])
    logprobs = torch.tensor([[-1.0, -3.0, -50.0], [-1.0, -2.0, -3.0]])
    scored = ScoredReports(ids, logprobs, torch.tensor([[True, True, False], [True, True, True]]))
    assert scored.mean_logprob().tolist() == [-2.0, -2.0]
    assert torch.allclose(scored.min_prob(), torch.tensor([0.0498, 0.0498]), atol=1e-4)


def test_the_model_learns_to_write_each_film_its_own_report(batch) -> None:
    """Four films, four reports: after fitting, the report greedy decoding writes for each
    film asserts that film's findings, so the decoder reads the image rather than writing
    one report for all (the wording is the report writer's free choice, so not compared)."""
    torch.manual_seed(0)
    model = ReportGenerator(SMALL)
    images, labels, tokenizer, reports = batch
    findings = torch.tensor([r.labels for r in reports], dtype=torch.float32)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = float(model(images, labels).detach())
    for _ in range(600):
        optimizer.zero_grad()
        model(images, labels, findings).backward()
        optimizer.step()
    assert float(model(images, labels).detach()) < 0.05 * first
    model.eval()
    assert len({r.labels for r in reports}) >= 3
    for row, report in zip(model.generate(images), reports, strict=True):
        said = label_report(tokenizer.decode(row.tolist()))
        assert tuple(m != Mention.NEGATIVE for m in said) == report.labels


def test_inconsistent_configs_are_refused() -> None:
    with pytest.raises(ConfigError, match="multiple of patch_size"):
        ReportModelConfig(vision="vit", vision_layers=(2,), image_size=30, patch_size=8)
    with pytest.raises(ConfigError, match="multiple of 32"):
        ReportModelConfig(image_size=48)
    with pytest.raises(ConfigError, match="four stage depths"):
        ReportModelConfig(vision_layers=(1, 1))
    with pytest.raises(ConfigError, match="unknown report model settings: colour"):
        ReportModelConfig.from_dict({"colour": 1})


def test_a_pretrained_towers_normalisation_is_applied_before_it() -> None:
    torch.manual_seed(0)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.5)
    plain = ReportGenerator(SMALL).eval()
    normalised = ReportGenerator(dataclasses.replace(SMALL, image_mean=mean, image_std=std))
    normalised.load_state_dict(plain.state_dict())
    normalised.eval()
    images = torch.rand(2, 1, 32, 32)
    shifted = (images.expand(-1, 3, -1, -1) - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(
        std
    ).view(1, 3, 1, 1)
    torch.testing.assert_close(normalised.features(images)[1], plain.features(shifted)[1])
    with pytest.raises(ConfigError, match="come together"):
        ReportModelConfig(image_mean=mean)
    round_trip = ReportModelConfig.from_dict(normalised.config.to_dict())
    assert round_trip == normalised.config
