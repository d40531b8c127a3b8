"""Weight snapshots stay put while training goes on; fingerprints see any change."""

from __future__ import annotations

import torch

from securemed.models.snapshot import snapshot_weights, weights_fingerprint


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))


def test_a_snapshot_is_not_changed_by_later_updates() -> None:
    model = _model()
    snapshot = snapshot_weights(model)
    with torch.no_grad():
        model[0].weight.add_(1.0)
    assert not torch.equal(snapshot["0.weight"], model[0].weight)
    model.load_state_dict(snapshot)
    assert torch.equal(snapshot["0.weight"], model[0].weight)


def test_the_fingerprint_follows_the_weights_and_their_dtype() -> None:
    first, second = _model(), _model()
    assert weights_fingerprint(first) == weights_fingerprint(second)
    with torch.no_grad():
        second[0].bias[0] += 1e-6
    assert weights_fingerprint(first) != weights_fingerprint(second)
    assert weights_fingerprint(_model().to(torch.bfloat16)) != weights_fingerprint(first)
