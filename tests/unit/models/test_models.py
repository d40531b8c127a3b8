"""Every model SecureMed offers is DP-compatible: no BatchNorm, right shapes, per-example
gradients in the mode the factory names for it."""

from __future__ import annotations

import pytest
import torch
from opacus.grad_sample import wrap_model
from opacus.validators import ModuleValidator
from torch import nn

from securemed.errors import ConfigError
from securemed.models import MODEL_NAMES, build_model, grad_sample_mode_for
from securemed.models.simple_cnn import SimpleCNN


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_models_pass_opacus_validation_and_output_logits(name: str) -> None:
    model = build_model(name, num_classes=5)
    assert ModuleValidator.validate(model, strict=True) == []
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    assert not any(isinstance(m, nn.ReLU) and m.inplace for m in model.modules())
    model.eval()
    with torch.no_grad():
        assert model(torch.rand(2, 1, 64, 64)).shape == (2, 5)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_per_example_gradients_match_one_example_at_a_time(name: str) -> None:
    """The factory's grad-sample mode gives each example its own, correct gradient."""
    torch.manual_seed(0)
    model = build_model(name, num_classes=3)
    images = torch.rand(2, 1, 32, 32)
    reference = []
    for image in images:
        model.zero_grad()
        model(image[None]).sum().backward()
        reference.append({n: p.grad.clone() for n, p in model.named_parameters()})
    model.zero_grad()
    wrapped = wrap_model(model, grad_sample_mode_for(name), loss_reduction="sum")
    wrapped(images).sum().backward()
    for n, param in model.named_parameters():
        for i in range(2):
            torch.testing.assert_close(param.grad_sample[i], reference[i][n], atol=1e-5, rtol=1e-4)


def test_max_pooled_head_sees_a_small_spot_that_average_pooling_dilutes() -> None:
    """A 2x2 bright spot moves the max-pooled half of the head's input far more than the mean."""
    torch.manual_seed(0)
    model = SimpleCNN(num_classes=1).eval()
    blank = torch.zeros(1, 1, 64, 64)
    spot = blank.clone()
    spot[0, 0, 30:32, 30:32] = 1.0
    with torch.no_grad():
        maps = [model.features(x) for x in (blank, spot)]
    mean_shift = (maps[1].mean(dim=(2, 3)) - maps[0].mean(dim=(2, 3))).abs().max()
    max_shift = (maps[1].amax(dim=(2, 3)) - maps[0].amax(dim=(2, 3))).abs().max()
    assert model.head.in_features == 2 * maps[0].shape[1]
    assert max_shift > 5 * mean_shift


def test_unknown_model_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="simple_cnn"):
        build_model("vgg16", num_classes=5)
    with pytest.raises(ConfigError, match="unknown model"):
        grad_sample_mode_for("vgg16")
