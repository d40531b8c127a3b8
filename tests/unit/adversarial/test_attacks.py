"""Each attack raises the loss (or flips the decision) and stays within its norm budget."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F  # noqa: N812

from securemed.adversarial import deepfool, fgsm, pgd
from securemed.models import build_model

EPSILON = 4 / 255


@pytest.fixture(scope="module")
def setting():
    torch.manual_seed(0)
    model = build_model("simple_cnn", num_classes=5).eval()
    images = torch.rand(6, 1, 32, 32)
    labels = (torch.rand(6, 5) < 0.4).float()

    def loss_fn(x: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(model(x), labels, reduction="none").mean(1)

    return model, images, labels, loss_fn


@pytest.mark.parametrize("attack", ["fgsm", "pgd"])
def test_linf_attacks_raise_the_loss_within_the_budget(setting, attack: str) -> None:
    model, images, _, loss_fn = setting
    if attack == "fgsm":
        adversarial = fgsm(loss_fn, images, epsilon=EPSILON)
    else:
        adversarial = pgd(
            loss_fn, images, epsilon=EPSILON, steps=5, generator=torch.Generator().manual_seed(0)
        )
    assert (adversarial - images).abs().max() <= EPSILON + 1e-6
    assert adversarial.min() >= 0 and adversarial.max() <= 1
    with torch.no_grad():
        assert (loss_fn(adversarial) > loss_fn(images)).all()
    assert all(p.grad is None for p in model.parameters())


def test_pgd_climbs_at_least_as_high_as_fgsm(setting) -> None:
    _, images, _, loss_fn = setting
    with torch.no_grad():
        one = loss_fn(fgsm(loss_fn, images, epsilon=EPSILON)).mean()
        many = loss_fn(pgd(loss_fn, images, epsilon=EPSILON, steps=10, random_start=False)).mean()
    assert many >= one - 1e-6


def test_deepfool_finds_the_analytic_minimal_step_of_a_linear_model() -> None:
    # margin f(x) = w.x + b; the closest boundary point is |f| / ||w|| away along -w
    w = torch.tensor([3.0, 4.0])
    images = torch.tensor([[0.5, 0.5]])

    def margin(x: torch.Tensor) -> torch.Tensor:
        return (x @ w - 2.0).unsqueeze(1)  # f = 1.5 at the image

    adversarial = deepfool(margin, images, overshoot=0.0, low=-10, high=10)
    assert float(margin(adversarial)) <= 0
    assert (adversarial - images).norm() == pytest.approx(1.5 / 5.0, rel=1e-2)


def test_deepfool_flips_a_classifier_and_respects_max_norm(setting) -> None:
    model, images, _, _ = setting

    def margins(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            signs = torch.where(model(images) > 0, 1.0, -1.0)  # the model's own decisions
        return model(x) * signs

    flipped = deepfool(margins, images, max_iter=50)
    with torch.no_grad():
        assert ((margins(flipped) <= 0).any(dim=1)).float().mean() >= 0.8
    capped = deepfool(margins, images, max_norm=0.05)
    assert ((capped - images).reshape(6, -1).norm(dim=1) <= 0.05 + 1e-5).all()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda f, x: fgsm(f, x, epsilon=-0.1), "non-negative"),
        (lambda f, x: pgd(f, x, epsilon=0.1, steps=0), "at least one step"),
        (lambda f, x: deepfool(lambda y: f(y).unsqueeze(1), x, max_iter=0), "iteration"),
    ],
)
def test_bad_parameters_are_refused(setting, call, message: str) -> None:
    _, images, _, loss_fn = setting
    with pytest.raises(ValueError, match=message):
        call(loss_fn, images)
