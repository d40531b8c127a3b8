"""Adversarial examples for any differentiable image model: FGSM, PGD and DeepFool."""

from securemed.adversarial.attacks import deepfool, fgsm, pgd

__all__ = ["deepfool", "fgsm", "pgd"]
