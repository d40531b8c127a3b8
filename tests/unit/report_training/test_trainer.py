"""One worker's training, in-process: standard, adversarial mix, DP-SGD, and resuming."""

from __future__ import annotations

import copy

import pytest
import torch

from securemed.config import DPSGDConfig
from securemed.models.report_generator import ReportGenerator, ReportModelConfig
from securemed.report_training.config import AdversarialConfig, OptimisationConfig, ReportDataConfig
from securemed.report_training.dataset import PairedReports, load_split
from securemed.report_training.trainer import ReportTrainer, craft_adversarial
from securemed.text import ReportTokenizer

MODEL = ReportModelConfig(
    image_size=32, vision_width=8, d_model=32, d_ff=64, encoder_layers=1, decoder_layers=1,
    heads=2, vocab_size=300, max_report_tokens=64,
)  # fmt: skip
OPTIMISATION = OptimisationConfig(batch_size=16, learning_rate=3e-3, workers=1)


@pytest.fixture(scope="module")
def data() -> PairedReports:
    return load_split(ReportDataConfig(image_size=32, train_samples=64, private_samples=0), "train")


@pytest.fixture(scope="module")
def tokenizer(data: PairedReports) -> ReportTokenizer:
    return ReportTokenizer.train(data.texts, vocab_size=300)


def _trainer(data, tokenizer, **kwargs) -> ReportTrainer:
    torch.manual_seed(0)
    kwargs.setdefault("optimisation", OPTIMISATION)
    kwargs.setdefault("epochs", 2)
    return ReportTrainer(ReportGenerator(MODEL), data, tokenizer, **kwargs)


def test_standard_training_lowers_the_loss(data, tokenizer) -> None:
    trainer = _trainer(data, tokenizer, epochs=3)
    first = trainer.train_epoch()
    trainer.train_epoch()
    last = trainer.train_epoch()
    assert (first.steps, first.examples, first.adversarial_examples) == (4, 64, 0)
    assert last.loss < 0.9 * first.loss
    assert first.epsilon is None and trainer.privacy_facts() is None


@pytest.mark.parametrize("privacy", [None, DPSGDConfig(target_epsilon=8.0)], ids=["plain", "dp"])
def test_a_resumed_trainer_continues_exactly_where_the_first_stopped(
    data, tokenizer, privacy
) -> None:
    """Weights, optimizer, accountant and every random stream (films drawn, dropout, DP
    noise: derived from seed, rank and epoch) continue as if never stopped."""
    straight = _trainer(data, tokenizer, privacy=privacy)
    straight.train_epoch()
    state = copy.deepcopy(straight.state_dict())  # as saved to disk: no live references
    straight.train_epoch()
    resumed = _trainer(data, tokenizer, privacy=privacy)
    resumed.load_state_dict(state)
    assert resumed.epoch == 1
    resumed.train_epoch()
    for name, value in straight.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[name], value, msg=name)
    assert resumed.epsilon() == straight.epsilon()


@pytest.mark.parametrize(("share", "per_batch"), [(0.05, 1), (0.5, 8)])
def test_adversarial_films_replace_the_configured_share_of_each_batch(
    data, tokenizer, share, per_batch
) -> None:
    trainer = _trainer(data, tokenizer, adversarial=AdversarialConfig(share=share, pgd_steps=2))
    stats = trainer.train_epoch()
    assert stats.adversarial_examples == stats.steps * per_batch
    # same seeds, same batches: only the replaced films can make the loss differ
    assert stats.loss != pytest.approx(_trainer(data, tokenizer).train_epoch().loss, abs=1e-7)


@pytest.mark.parametrize("attack", ["fgsm", "pgd", "deepfool"])
def test_each_training_attack_stays_in_its_budget_and_hurts(data, tokenizer, attack) -> None:
    torch.manual_seed(0)
    model = ReportGenerator(MODEL).eval()
    config = AdversarialConfig(epsilon=8 / 255, pgd_steps=5, deepfool_max_norm=0.5)
    images, findings = data.images[:8], data.findings[:8]
    tokens = data.subset(range(8)).tokens(tokenizer, 64)
    crafted = craft_adversarial(model, attack, images, tokens, findings, config)
    change = (crafted - images).flatten(1)
    if attack == "deepfool":
        assert float(change.norm(dim=1).max()) <= 0.5 + 1e-5
        # DeepFool pushes the finding head's weakest call towards (or over) its boundary
        margin = lambda x: (model.finding_logits(x) * (2 * findings - 1)).min(dim=1).values  # noqa: E731
        assert bool((margin(crafted) < margin(images) + 1e-6).all())
    else:
        assert float(change.abs().max()) <= config.epsilon + 1e-6
        clean = model.per_example_loss(images, tokens, findings).mean()
        attacked = model.per_example_loss(crafted, tokens, findings).mean()
        assert float(attacked) > float(clean)
    assert float(crafted.min()) >= 0.0 and float(crafted.max()) <= 1.0


def test_dp_training_spends_at_most_the_target_and_lists_what_it_covers(data, tokenizer) -> None:
    privacy = DPSGDConfig(target_epsilon=4.0, accountant="rdp")
    trainer = _trainer(data, tokenizer, privacy=privacy)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    for _ in range(2):
        stats = trainer.train_epoch()
    facts = trainer.privacy_facts()
    assert facts is not None and stats.epsilon == pytest.approx(facts.epsilon)
    assert 2.0 < facts.epsilon <= 4.0 + 1e-6  # calibrated to the target over the variant
    assert facts.frozen_parameters and all(
        "relative_attention_bias" in name for name in facts.frozen_parameters
    )
    assert set(facts.dp_parameters).isdisjoint(facts.frozen_parameters)
    assert len(facts.dp_parameters) + len(facts.frozen_parameters) == len(
        list(trainer.model.parameters())
    )
    after = trainer.model.state_dict()
    for name in facts.frozen_parameters:
        torch.testing.assert_close(after[name], before[name])
    assert any(not torch.equal(after[n], before[n]) for n in facts.dp_parameters)


def test_dp_and_adversarial_training_combine(data, tokenizer) -> None:
    trainer = _trainer(
        data,
        tokenizer,
        epochs=1,
        privacy=DPSGDConfig(target_epsilon=8.0),
        adversarial=AdversarialConfig(share=0.25, pgd_steps=2),
    )
    stats = trainer.train_epoch()
    assert stats.adversarial_examples > 0 and stats.epsilon is not None


def test_a_split_smaller_than_one_batch_is_refused(data, tokenizer) -> None:
    with pytest.raises(ValueError, match="cannot fill one batch"):
        _trainer(data.subset(range(8)), tokenizer)


def test_empty_poisson_draws_are_steps_too(data, tokenizer) -> None:
    """At an expected batch of 2, about one draw in seven is empty: each is still a step
    (noise, accountant, and in a federation of workers the same all-reduce), so the epoch
    takes exactly 1/q steps and epsilon is that of 1/q steps."""
    from opacus.accountants import RDPAccountant

    optimisation = OptimisationConfig(batch_size=2, learning_rate=1e-3, workers=1)
    privacy = DPSGDConfig(target_epsilon=8.0, accountant="rdp")
    trainer = _trainer(data, tokenizer, optimisation=optimisation, epochs=1, privacy=privacy)
    stats = trainer.train_epoch()
    assert stats.steps == 32 and stats.empty_batches > 0
    expected = RDPAccountant()
    facts = trainer.privacy_facts()
    assert facts is not None
    expected.history = [(facts.noise_multiplier, facts.sample_rate, 32)]
    assert stats.epsilon == pytest.approx(expected.get_epsilon(privacy.delta))
