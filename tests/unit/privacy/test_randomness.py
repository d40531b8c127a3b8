"""Where DP noise comes from: a torch generator's whole MT19937 state from the OS, every
word of it, never a seed (torch keeps only 32 bits of one); a loud, seeded insecure mode."""

from __future__ import annotations

import os
import types

import pytest
import torch

from securemed.privacy import randomness
from securemed.privacy.randomness import NoiseSource


def _draws_with_os_bytes(monkeypatch, chunk: bytes) -> torch.Tensor:
    fake_os = types.SimpleNamespace(urandom=lambda n: (chunk * n)[:n])
    monkeypatch.setattr(randomness, "os", fake_os)
    generator = torch.Generator()
    NoiseSource().reseed(generator)
    return torch.rand(2000, generator=generator)


def test_bytes_beyond_a_32_or_64_bit_seed_change_the_noise(monkeypatch) -> None:
    """Two OS draws equal in their first 64 bits but not after give different noise: a seeded
    generator (manual_seed keeps 32 bits) would give the same, so 2^32 guesses would find it."""
    first = _draws_with_os_bytes(monkeypatch, b"\x01" * 8 + b"\x02" * 8)
    second = _draws_with_os_bytes(monkeypatch, b"\x01" * 8 + b"\x03" * 8)
    assert not torch.equal(first, second)


def test_the_last_state_word_matters_too(monkeypatch) -> None:
    base = bytearray(os.urandom(4 * 624))
    changed = bytearray(base)
    changed[-1] ^= 0xFF
    draws = []
    for state in (base, changed):
        fake_os = types.SimpleNamespace(urandom=lambda n, s=bytes(state): s[:n])
        monkeypatch.setattr(randomness, "os", fake_os)
        generator = torch.Generator()
        NoiseSource().reseed(generator)
        draws.append(torch.rand(2000, generator=generator))
    assert not torch.equal(*draws)


def test_secure_reseeds_never_repeat() -> None:
    generator = torch.Generator()
    source = NoiseSource()
    outputs = set()
    for _ in range(20):
        source.reseed(generator)
        outputs.add(tuple(torch.randn(4, generator=generator).tolist()))
    assert len(outputs) == 20 and source.secure


def test_the_insecure_mode_is_reproducible_and_says_so() -> None:
    first, second = torch.Generator(), torch.Generator()
    NoiseSource(7).reseed(first)
    NoiseSource(7).reseed(second)
    assert torch.equal(torch.randn(5, generator=first), torch.randn(5, generator=second))
    assert not NoiseSource(7).secure
    assert "not a privacy guarantee" in randomness.NOT_A_GUARANTEE


def test_a_negative_insecure_seed_is_refused() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        NoiseSource(-1)
