"""Adversarial examples that work on any differentiable image model.

The attacks see the model only through a function of the images, so the same code attacks the
chest X-ray classifier and the report generator:

* :func:`fgsm` (Goodfellow et al. 2015) and :func:`pgd` (Madry et al. 2018) take
  ``loss_fn(images) -> per-example loss`` and climb it inside an L-infinity ball of radius
  ``epsilon``; PGD repeats projected sign steps from a random start.
* :func:`deepfool` (Moosavi-Dezfooli et al. 2016) takes ``margin_fn(images) -> (batch, k)``
  margins, positive while the model's decision stands (for a classifier: the true logit minus
  each other logit; for multi-label outputs, each logit signed by its label), and finds the
  smallest L2 step that, with the model linearised, drives the smallest margin through zero;
  ``max_norm`` caps the step so it can join a training batch under an L2 budget.

Images stay in ``[low, high]`` (the pixel range); the model's own parameters get no gradients.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

LossFn = Callable[[torch.Tensor], torch.Tensor]
MarginFn = Callable[[torch.Tensor], torch.Tensor]


def _gradient(fn: LossFn, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(values, d sum(values) / d images) without touching parameter gradients.

    Gradients are switched on here, so an attack works inside a caller's ``torch.no_grad()``.
    """
    with torch.enable_grad():
        x = images.detach().requires_grad_(True)
        values = fn(x)
        (grad,) = torch.autograd.grad(values.sum(), x)
    return values.detach(), grad


def _check_budget(epsilon: float) -> None:
    if not epsilon >= 0:
        raise ValueError(f"the attack budget epsilon must be non-negative, got {epsilon}")


def fgsm(
    loss_fn: LossFn,
    images: torch.Tensor,
    *,
    epsilon: float,
    low: float = 0.0,
    high: float = 1.0,
) -> torch.Tensor:
    """One signed-gradient step of size ``epsilon``: ``x + epsilon * sign(grad loss)``."""
    _check_budget(epsilon)
    _, grad = _gradient(loss_fn, images)
    return (images + epsilon * grad.sign()).clamp(low, high).detach()


def pgd(
    loss_fn: LossFn,
    images: torch.Tensor,
    *,
    epsilon: float,
    steps: int = 10,
    step_size: float | None = None,
    random_start: bool = True,
    generator: torch.Generator | None = None,
    low: float = 0.0,
    high: float = 1.0,
) -> torch.Tensor:
    """Projected gradient ascent on the loss inside the L-infinity ball of radius ``epsilon``.

    ``step_size`` defaults to ``2.5 * epsilon / steps`` (Madry et al.), so the walk can reach
    any corner of the ball.
    """
    _check_budget(epsilon)
    if steps < 1:
        raise ValueError(f"PGD needs at least one step, got {steps}")
    alpha = 2.5 * epsilon / steps if step_size is None else step_size
    x = images.detach()
    if random_start and epsilon > 0:
        noise = torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        x = (x + (2 * noise - 1) * epsilon).clamp(low, high)
    for _ in range(steps):
        _, grad = _gradient(loss_fn, x)
        x = x + alpha * grad.sign()
        x = torch.min(torch.max(x, images - epsilon), images + epsilon).clamp(low, high)
    return x.detach()


def deepfool(
    margin_fn: MarginFn,
    images: torch.Tensor,
    *,
    overshoot: float = 0.02,
    max_iter: int = 50,
    max_norm: float | None = None,
    low: float = 0.0,
    high: float = 1.0,
) -> torch.Tensor:
    """The smallest (linearised) L2 perturbation that flips each image's weakest decision.

    Every iteration, per image: take the margin ``m`` closest to zero relative to its gradient
    ``g`` (``|m| / ||g||``) and step ``(|m| / ||g||^2 + tiny) * -g``; stop for an image once any
    margin is negative. The total step is scaled by ``1 + overshoot`` (to land past the boundary)
    and cut to ``max_norm`` if given.
    """
    if max_iter < 1:
        raise ValueError(f"DeepFool needs at least one iteration, got {max_iter}")
    if max_norm is not None and not max_norm >= 0:
        raise ValueError(f"max_norm must be non-negative, got {max_norm}")
    x0 = images.detach()
    total = torch.zeros_like(x0)
    active = torch.ones(len(x0), dtype=torch.bool, device=x0.device)
    flat = (len(x0), -1)
    for _ in range(max_iter):
        with torch.enable_grad():
            x = (x0 + (1 + overshoot) * total).clamp(low, high).requires_grad_(True)
            margins = margin_fn(x)
        if margins.dim() != 2 or margins.shape[0] != len(x0):
            raise ValueError("margin_fn must return a (batch, k) tensor of margins")
        active &= (margins.detach() > 0).all(dim=1)
        if not bool(active.any()):
            break
        steps = torch.zeros_like(x0)
        best = torch.full((len(x0),), float("inf"), device=x0.device)
        for k in range(margins.shape[1]):
            with torch.enable_grad():
                (grad,) = torch.autograd.grad(margins[:, k].sum(), x, retain_graph=True)
            norms = grad.reshape(flat).norm(dim=1).clamp_min(1e-12)
            distance = margins[:, k].detach().abs() / norms
            closer = active & (distance < best)
            best = torch.where(closer, distance, best)
            step = -(distance / norms + 1e-4).view(-1, *[1] * (x0.dim() - 1)) * grad
            steps = torch.where(closer.view(-1, *[1] * (x0.dim() - 1)), step, steps)
        total = total + steps
    delta = (1 + overshoot) * total
    if max_norm is not None:
        norms = delta.reshape(flat).norm(dim=1).clamp_min(1e-12)
        delta = delta * (max_norm / norms).clamp(max=1.0).view(-1, *[1] * (x0.dim() - 1))
    return (x0 + delta).clamp(low, high).detach()
