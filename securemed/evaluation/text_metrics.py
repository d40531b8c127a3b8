"""BLEU-1..4 and ROUGE-L for generated reports, written out so their definitions are explicit.

* BLEU (Papineni et al. 2002), corpus level: clipped n-gram precisions pooled over all
  reports, their geometric mean up to n, times the brevity penalty exp(1 - r/c) when the
  generated text is shorter than the references. BLEU-n is 0 when some order up to n has no
  match, as in the original definition (no smoothing).
* ROUGE-L (Lin 2004): the F-measure of the longest common subsequence, per report, averaged
  (beta = 1).

Texts are lowercased and split into words and punctuation marks, the same way on both sides.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

_TOKEN = re.compile(r"[a-z0-9]+(?:\.[0-9]+)?|[^\sa-z0-9]")


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def _ngrams(tokens: list[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def corpus_bleu(
    hypotheses: Sequence[str], references: Sequence[str], *, max_order: int = 4
) -> dict[str, float]:
    """BLEU-1 .. BLEU-``max_order`` of generated reports against one reference each."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} generated reports but {len(references)} references")
    if not hypotheses:
        raise ValueError("BLEU needs at least one report")
    matches = [0] * max_order
    totals = [0] * max_order
    hypothesis_length = reference_length = 0
    for hypothesis, reference in zip(hypotheses, references, strict=True):
        hyp, ref = tokenize(hypothesis), tokenize(reference)
        hypothesis_length += len(hyp)
        reference_length += len(ref)
        for n in range(1, max_order + 1):
            hyp_counts, ref_counts = _ngrams(hyp, n), _ngrams(ref, n)
            matches[n - 1] += sum(min(c, ref_counts[g]) for g, c in hyp_counts.items())
            totals[n - 1] += max(0, len(hyp) - n + 1)
    if hypothesis_length == 0:
        return {f"bleu{n}": 0.0 for n in range(1, max_order + 1)}
    penalty = (
        1.0
        if hypothesis_length > reference_length
        else math.exp(1 - reference_length / hypothesis_length)
    )
    scores = {}
    for n in range(1, max_order + 1):
        precisions = [matches[k] / totals[k] if totals[k] else 0.0 for k in range(n)]
        if min(precisions) == 0:
            scores[f"bleu{n}"] = 0.0
        else:
            scores[f"bleu{n}"] = penalty * math.exp(sum(math.log(p) for p in precisions) / n)
    return scores


def _lcs_length(a: list[str], b: list[str]) -> int:
    previous = [0] * (len(b) + 1)
    for token in a:
        current = [0]
        for j, other in enumerate(b, start=1):
            current.append(previous[j - 1] + 1 if token == other else max(previous[j], current[-1]))
        previous = current
    return previous[-1]


def rouge_l(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Mean ROUGE-L F-measure over the pairs."""
    if len(hypotheses) != len(references) or not hypotheses:
        raise ValueError("ROUGE-L needs as many generated reports as references, at least one")
    scores = []
    for hypothesis, reference in zip(hypotheses, references, strict=True):
        hyp, ref = tokenize(hypothesis), tokenize(reference)
        lcs = _lcs_length(hyp, ref)
        if lcs == 0:
            scores.append(0.0)
            continue
        precision, recall = lcs / len(hyp), lcs / len(ref)
        scores.append(2 * precision * recall / (precision + recall))
    return sum(scores) / len(scores)
