"""Where a hospital's secret randomness comes from: DP noise, Poisson sampling, rounding.

DP-SGD's epsilon holds only if nobody can predict the noise: anyone who can regenerate it can
subtract it and read the clipped gradients underneath. The aggregator and whoever runs the job
know the config and the code, so no part of the noise may follow from them.

:class:`NoiseSource` therefore fills torch generators' whole state, and seeds numpy generators,
from the operating system's CSPRNG (:func:`os.urandom`) **afresh before every step**, and never
stores, logs or sends any of it. Why that is secret:

* torch's CPU generator is MT19937, and ``manual_seed`` keeps only 32 bits of a seed: a seeded
  step could be found by trying 2^32 seeds against the update. So the generator's state is set
  directly, all 624 of its 32-bit words from the OS (19,968 bits a step); numpy's PCG64 gets a
  128-bit seed;
* MT19937 can be reconstructed from 624 consecutive raw outputs, but nobody outside sees raw
  outputs: the aggregator sees only clipped gradients plus noise, summed and mixed into
  weights; and since every step starts from a new state, no step's draws share one;
* Opacus' ``secure_mode`` would do the same with ``torchcsprng``, which does not build for the
  torch this project pins.

An *insecure* reproducible mode exists for experiments and tests only
(``privacy.insecure_reproducible_seed``): the streams then follow from the seed and a step
counter, so a run can be repeated exactly, and every results file says its epsilon is not a
guarantee (:data:`NOT_A_GUARANTEE`).

What it does not do: pick experiment randomness (data generation, splits, initialisation take
a config seed on purpose) or cryptographic keys (:mod:`securemed.secagg.crypto`).
"""

from __future__ import annotations

import os
import struct

import numpy as np
import torch

#: what results files say about the epsilon of a run whose noise followed from a config seed
NOT_A_GUARANTEE = (
    "insecure reproducible mode: DP noise and sampling follow from a seed in the config, so "
    "anyone holding the config can regenerate them; this epsilon is not a privacy guarantee"
)


class NoiseSource:
    """Seeds a hospital's generators before every step: from the OS, or (insecure) a seed.

    Args:
        insecure_seed: ``None`` (the default and the only private choice) draws every seed
            from the OS. An integer makes the streams a function of it and of the step
            counter: reproducible, and predictable by anyone who knows it.

    Example:
        >>> source = NoiseSource()
        >>> noise = torch.Generator()
        >>> source.reseed(noise)          # before each step
        >>> rng = source.numpy_generator()  # for stochastic rounding, integer noise
    """

    def __init__(self, insecure_seed: int | None = None) -> None:
        if insecure_seed is not None and (isinstance(insecure_seed, bool) or insecure_seed < 0):
            raise ValueError(f"insecure_seed must be a non-negative integer, got {insecure_seed}")
        self._seed = insecure_seed
        self._counter = 0

    @property
    def secure(self) -> bool:
        """Whether draws come from the OS (the epsilon then means something)."""
        return self._seed is None

    def skip_to(self, counter: int) -> None:
        """Insecure mode: continue the streams at ``counter`` (a trainer restored after a
        crash must not replay the noise of its first steps). No effect in secure mode."""
        self._counter = max(self._counter, int(counter))

    def reseed(self, *generators: torch.Generator) -> None:
        """Give each generator a fresh state (one step's worth of sampling or noise)."""
        for generator in generators:
            if self._seed is None:
                generator.set_state(_os_random_state())
            else:
                generator.manual_seed(self._next_seed())

    def numpy_generator(self) -> np.random.Generator:
        """A numpy generator for one use (stochastic rounding, integer noise)."""
        if self._seed is None:
            return np.random.default_rng(int.from_bytes(os.urandom(16), "little"))
        return np.random.default_rng(self._next_seed())

    def _next_seed(self) -> int:
        assert self._seed is not None, "secure draws never go through a seed"
        seed = np.random.SeedSequence(self._seed, spawn_key=(self._counter,)).generate_state(
            1, np.uint64
        )[0]
        self._counter += 1
        return int(seed)


#: torch's CPU generator state: MT19937's initial seed, left, seeded, next, then its 624 words
#: (each in 64 bits), then cached normal samples; checked against torch at first use
_MT_WORDS = 624
_HEADER = struct.Struct("<QiiQ")
_STATE_BYTES = 5056


def _os_random_state() -> torch.Tensor:
    """A CPU generator state whose 624 MT19937 words all come from the OS.

    ``left = 1`` makes the generator twist the words before its first draw, as after a seed;
    the cached normal samples are marked invalid, so nothing of an earlier state survives.
    """
    template = torch.Generator().get_state()
    if template.numel() != _STATE_BYTES:  # pragma: no cover - guards a torch change
        raise RuntimeError(
            f"torch's CPU generator state is {template.numel()} bytes, not {_STATE_BYTES}: "
            "securemed.privacy.randomness must be updated for this torch"
        )
    state = bytearray(_STATE_BYTES)
    _HEADER.pack_into(state, 0, 0, 1, 1, 0)
    words = np.frombuffer(os.urandom(4 * _MT_WORDS), dtype="<u4").astype("<u8")
    state[_HEADER.size : _HEADER.size + 8 * _MT_WORDS] = words.tobytes()
    return torch.frombuffer(state, dtype=torch.uint8).clone()
