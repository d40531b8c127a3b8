"""How unusual a report is next to the training reports: a smoothed word-trigram model.

A report model that has drifted (bad checkpoint, adversarial film, a prompt that got through)
tends to write text unlike anything it was trained on: shuffled phrases, another style, words
the training reports never use. :class:`ReportProfile` is an interpolated absolute-discounting
trigram language model of the training reports (Ney, Essen & Kneser 1994; discount 0.75), over
lower-cased words with every number read as one token, since sizes legitimately vary. A
report's anomaly score is its mean per-token negative log-likelihood (nats); words never seen
in training get the unknown-word share of the add-one unigram floor, and their rate is reported
beside the score.

The thresholds are not absolute: ``fit`` holds out part of the training reports, fits on the
rest and keeps the held-out reports' scores, so "unusual" means "beyond what this model gives
reports it has not seen but that come from the training distribution"; the profile then counts
all the reports (see ``fit``). It stores n-gram counts, never the reports themselves; still,
fit it on de-identified reports only, since a rare name in a report would survive as a unigram.
Serialisation is plain JSON (no pickle: a profile file is data, and loading it must not run
code).
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from securemed.errors import DataError

_FORMAT = "securemed.safety.report_profile/1"
_TOKEN = re.compile(r"[^\W\d_]+|\d+(?:[.,]\d+)?|[^\w\s]")
NUMBER, BOS, EOS = "<num>", "<s>", "</s>"
_MIN_TEXTS = 20


def tokenize(text: str) -> list[str]:
    """Lower-cased words and punctuation, every number as :data:`NUMBER`."""
    return [NUMBER if t[0].isdigit() else t for t in _TOKEN.findall(text.lower())]


@dataclass(frozen=True)
class ReportScore:
    """A report's mean negative log-likelihood per token (nats) and its unknown-word rate."""

    nll: float
    oov_rate: float
    tokens: int


class ReportProfile:
    """An anomaly model of the training reports' wording.

    Example:
        >>> profile = ReportProfile.fit(training_texts)            # doctest: +SKIP
        >>> profile.score("FINDINGS: ... IMPRESSION: ...").nll      # doctest: +SKIP
    """

    def __init__(
        self,
        unigrams: dict[str, int],
        bigrams: dict[tuple[str, str], int],
        trigrams: dict[tuple[str, str, str], int],
        heldout_nll: Sequence[float],
        *,
        discount: float = 0.75,
    ) -> None:
        if not unigrams or not heldout_nll:
            raise DataError("a report profile needs n-gram counts and held-out scores")
        if not 0.0 < discount < 1.0:
            raise DataError(f"the discount must lie in (0, 1), got {discount}")
        self.discount = float(discount)
        self._unigrams = dict(unigrams)
        self._bigrams = dict(bigrams)
        self._trigrams = dict(trigrams)
        self.heldout_nll: tuple[float, ...] = tuple(sorted(float(s) for s in heldout_nll))
        self._total = sum(self._unigrams.values())
        self._types = len(self._unigrams)
        # per context: total count following it, and how many distinct words follow it
        self._bigram_context = _context_stats(self._bigrams)
        self._trigram_context = _context_stats(self._trigrams)

    # --- fitting -----------------------------------------------------------------------------

    @classmethod
    def fit(
        cls,
        texts: Iterable[str],
        *,
        holdout_fraction: float = 0.2,
        seed: int = 0,
        discount: float = 0.75,
    ) -> ReportProfile:
        """Fit on the training reports, keeping a held-out share's scores for the thresholds.

        Args:
            texts: the reports the generator was trained on (de-identified).
            holdout_fraction: share of ``texts`` scored rather than counted; 0.2 of 8,000
                reports gives 1,600 scores, enough for a 99.5th percentile.
            seed: which reports are held out.
        """
        texts = [t for t in texts if t.strip()]
        if len(texts) < _MIN_TEXTS:
            raise DataError(
                f"a report profile needs at least {_MIN_TEXTS} training reports, got {len(texts)}"
            )
        if not 0.0 < holdout_fraction < 1.0:
            raise DataError(f"holdout_fraction must lie in (0, 1), got {holdout_fraction}")
        order = np.random.default_rng(seed).permutation(len(texts))
        n_heldout = max(1, round(holdout_fraction * len(texts)))
        heldout, fitted = order[:n_heldout], order[n_heldout:]
        counts = _count([texts[i] for i in fitted])
        calibration = cls(*counts, heldout_nll=[0.0], discount=discount)
        scores = [calibration.score(texts[i]).nll for i in heldout]
        # The thresholds come from a model that never saw the held-out reports; the profile
        # itself counts every report, as the generator saw every report: words and phrasings
        # rare enough to fall only in the held-out share are then known. Its scores of
        # in-distribution reports are no higher than the calibration model's, so it flags
        # at most the nominal share of them.
        return cls(*_count(texts), heldout_nll=scores, discount=discount)

    # --- scoring -----------------------------------------------------------------------------

    def _unigram(self, word: str) -> float:
        # add-one over the vocabulary plus one unknown-word type
        return (self._unigrams.get(word, 0) + 1.0) / (self._total + self._types + 1.0)

    def _interpolate(self, count: int, context: tuple[int, int] | None, lower: float) -> float:
        if context is None:
            return lower
        total, distinct = context
        return max(count - self.discount, 0.0) / total + self.discount * distinct / total * lower

    def probability(self, u: str, v: str, w: str) -> float:
        """P(w | u v), backed off to the bigram and unigram estimates."""
        p_bigram = self._interpolate(
            self._bigrams.get((v, w), 0), self._bigram_context.get((v,)), self._unigram(w)
        )
        return self._interpolate(
            self._trigrams.get((u, v, w), 0), self._trigram_context.get((u, v)), p_bigram
        )

    def score(self, text: str) -> ReportScore:
        """Mean negative log-likelihood per token (end of report included) and OOV rate."""
        words = tokenize(text)
        padded = [BOS, BOS, *words, EOS]
        nll = -sum(
            math.log(self.probability(u, v, w))
            for u, v, w in zip(padded, padded[1:], padded[2:], strict=False)
        )
        unknown = sum(1 for w in words if w not in self._unigrams)
        return ReportScore(
            nll=nll / (len(words) + 1),
            oov_rate=unknown / len(words) if words else 0.0,
            tokens=len(words),
        )

    # --- thresholds --------------------------------------------------------------------------

    def flag_threshold(self, quantile: float) -> float:
        """The ``quantile`` of the held-out reports' scores."""
        return float(np.quantile(self.heldout_nll, quantile))

    def block_threshold(self, margin: float) -> float:
        """The held-out maximum plus ``margin`` times its distance from the median."""
        highest = self.heldout_nll[-1]
        return highest + margin * (highest - float(np.median(self.heldout_nll)))

    # --- serialisation -----------------------------------------------------------------------

    def to_json(self) -> str:
        """Plain JSON: counts as ``[word..., count]`` rows and the held-out scores."""
        payload: dict[str, Any] = {
            "format": _FORMAT,
            "discount": self.discount,
            "unigrams": sorted([w, c] for w, c in self._unigrams.items()),
            "bigrams": sorted([*k, c] for k, c in self._bigrams.items()),
            "trigrams": sorted([*k, c] for k, c in self._trigrams.items()),
            "heldout_nll": list(self.heldout_nll),
        }
        return json.dumps(payload, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> ReportProfile:
        """The profile :meth:`to_json` wrote; :class:`DataError` for anything else."""
        try:
            payload = json.loads(text)
            if payload.get("format") != _FORMAT:
                raise DataError(
                    f"not a report profile of format {_FORMAT}; refit it with ReportProfile.fit"
                )
            return cls(
                {str(w): int(c) for w, c in payload["unigrams"]},
                {(str(v), str(w)): int(c) for v, w, c in payload["bigrams"]},
                {(str(u), str(v), str(w)): int(c) for u, v, w, c in payload["trigrams"]},
                [float(s) for s in payload["heldout_nll"]],
                discount=float(payload["discount"]),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise DataError(
                f"the report profile is malformed ({type(error).__name__}); refit it with "
                "ReportProfile.fit"
            ) from error


def _count(
    texts: Iterable[str],
) -> tuple[Counter[str], Counter[tuple[str, str]], Counter[tuple[str, str, str]]]:
    """Unigram, bigram and trigram counts, each report padded with two starts and an end."""
    unigrams: Counter[str] = Counter()
    bigrams: Counter[tuple[str, str]] = Counter()
    trigrams: Counter[tuple[str, str, str]] = Counter()
    for text in texts:
        padded = [BOS, BOS, *tokenize(text), EOS]
        unigrams.update(padded[2:])
        bigrams.update(itertools.pairwise(padded[1:]))
        trigrams.update(zip(padded, padded[1:], padded[2:], strict=False))
    return unigrams, bigrams, trigrams


def _context_stats(counts: dict[Any, int]) -> dict[tuple[str, ...], tuple[int, int]]:
    """Per context (all but the last word): total count and number of distinct next words."""
    stats: dict[tuple[str, ...], list[int]] = {}
    for key, count in counts.items():
        entry = stats.setdefault(key[:-1], [0, 0])
        entry[0] += count
        entry[1] += 1
    return {context: (total, distinct) for context, (total, distinct) in stats.items()}
