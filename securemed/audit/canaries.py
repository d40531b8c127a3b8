"""Canaries: notes carrying a random secret, put into training with probability 1/2 each.

A DP audit needs examples whose inclusion is decided by a coin the auditor controls: then
"was this canary in the training set?" is exactly the hypothesis test DP bounds, and the
attack's guesses on canaries give an empirical lower bound on epsilon
(:func:`securemed.audit.leakage.one_run_audit`). Each canary is an ordinary
short note followed by a secret of random digits (a portal PIN): the digits cannot be
predicted from anything else, so a model that scores them well has seen them, which makes
canaries the examples most exposed to memorisation (Carlini et al. 2019, "The Secret Sharer").
"""

from __future__ import annotations

import random

from securemed.data.clinical_notes import generate_clinical_notes

#: groups of digits in each canary's secret
SECRET_GROUPS = 3


def make_canaries(count: int, *, seed: int) -> list[str]:
    """``count`` canary notes: a short note, then ``Portal PIN: dddd-dddd-dddd.``."""
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    rng = random.Random(seed)
    notes = generate_clinical_notes(count, seed=seed, style="simple")
    canaries = []
    for note in notes:
        secret = "-".join(f"{rng.randrange(10_000):04d}" for _ in range(SECRET_GROUPS))
        canaries.append(f"{note.text.rstrip()}\nPortal PIN: {secret}.")
    return canaries
