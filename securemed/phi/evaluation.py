"""How well the anonymizer removes PHI: per-entity recall, precision and F2 on annotated notes.

Scoring is character based, over letters and digits only (spaces and punctuation inside a span
identify nobody, and detectors legitimately differ on whether "(555)" includes its brackets):

* **recall** of a type: the fraction of its true spans *entirely removed*, every letter and
  digit covered by some detected span, of any type (a name removed as a place is still
  removed). A span removed but for one character counts as missed: leaked PHI is leaked.
* **precision** of a type: of the characters detected as that type, the fraction inside some
  true PHI span (of any type). Over-removal of clinical text is what it measures.
* **typed precision**: the same, counting only characters inside a true span *of the same
  type*: how often the label is right (it matters for tags and pseudonyms, not for privacy).
* **F2** weights recall four times as much as precision: missing PHI costs more than removing
  a clinical word.

"overall" pools every span and character (micro average). The targets a run is held to are
recall >= 0.99 and precision >= 0.90 for every entity type.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from securemed.phi.corpus import AnnotatedNote
from securemed.phi.entities import PHI_ENTITY_TYPES, PhiEntity

RECALL_TARGET = 0.99
PRECISION_TARGET = 0.90


@dataclass(frozen=True)
class EntityScore:
    """Scores of one entity type (or "overall"); counts let runs be pooled later."""

    entity_type: str
    true_spans: int
    recalled_spans: int
    predicted_chars: int
    correct_chars: int
    typed_correct_chars: int

    @property
    def recall(self) -> float:
        """Fully removed true spans over true spans (1.0 when there are none)."""
        return self.recalled_spans / self.true_spans if self.true_spans else 1.0

    @property
    def precision(self) -> float:
        """Detected characters that are PHI over detected characters (1.0 when none)."""
        return self.correct_chars / self.predicted_chars if self.predicted_chars else 1.0

    @property
    def typed_precision(self) -> float:
        """Detected characters inside a true span of the same type."""
        return self.typed_correct_chars / self.predicted_chars if self.predicted_chars else 1.0

    @property
    def f2(self) -> float:
        """F-beta with beta 2: recall weighs four times precision."""
        p, r = self.precision, self.recall
        return 5 * p * r / (4 * p + r) if p + r else 0.0

    def meets_targets(
        self, recall: float = RECALL_TARGET, precision: float = PRECISION_TARGET
    ) -> bool:
        """Both targets met (an entity never seen nor predicted meets them trivially)."""
        return self.recall >= recall and self.precision >= precision

    def to_dict(self) -> dict[str, Any]:
        """Counts and scores, for a JSON results file (no text, so no PHI)."""
        return {
            **asdict(self),
            "recall": self.recall,
            "precision": self.precision,
            "typed_precision": self.typed_precision,
            "f2": self.f2,
        }


def _alnum_positions(text: str, start: int, end: int) -> set[int]:
    return {i for i in range(start, end) if text[i].isalnum()}


def score_notes(
    notes: Sequence[AnnotatedNote], predictions: Sequence[Sequence[PhiEntity]]
) -> dict[str, EntityScore]:
    """Per-type scores plus "overall", from ground truth and detected spans of each note."""
    if len(notes) != len(predictions):
        raise ValueError(f"{len(notes)} notes but {len(predictions)} prediction lists")
    counts = {t: [0, 0, 0, 0, 0] for t in (*PHI_ENTITY_TYPES, "overall")}
    for note, predicted in zip(notes, predictions, strict=True):
        covered: set[int] = set()
        for entity in predicted:
            covered |= _alnum_positions(note.text, entity.start, entity.end)
        true_any: set[int] = set()
        true_by_type: dict[str, set[int]] = {}
        for entity_type, start, end in note.spans:
            positions = _alnum_positions(note.text, start, end)
            true_any |= positions
            true_by_type.setdefault(entity_type, set()).update(positions)
            for key in (entity_type, "overall"):
                counts[key][0] += 1
                counts[key][1] += positions <= covered
        for entity in predicted:
            positions = _alnum_positions(note.text, entity.start, entity.end)
            typed = true_by_type.get(entity.entity_type, set())
            for key in (entity.entity_type, "overall"):
                counts[key][2] += len(positions)
                counts[key][3] += len(positions & true_any)
                counts[key][4] += len(positions & typed)
    return {key: EntityScore(key, *values) for key, values in counts.items()}


def evaluate(
    find: Callable[[str], Sequence[PhiEntity]], notes: Sequence[AnnotatedNote]
) -> dict[str, Any]:
    """Run ``find`` on every note and score it; the result holds counts and scores only."""
    started = time.perf_counter()
    predictions = [list(find(note.text)) for note in notes]
    seconds = time.perf_counter() - started
    scores = score_notes(notes, predictions)
    per_type = {t: scores[t] for t in PHI_ENTITY_TYPES}
    return {
        "notes": len(notes),
        "seconds": seconds,
        "notes_per_second": len(notes) / seconds if seconds else float("inf"),
        "recall_target": RECALL_TARGET,
        "precision_target": PRECISION_TARGET,
        "meets_targets": all(s.meets_targets() for s in per_type.values()),
        "entities": {t: s.to_dict() for t, s in per_type.items()},
        "overall": scores["overall"].to_dict(),
    }


def format_table(report: dict[str, Any]) -> str:
    """A fixed-width table of the report, one row per entity type and an overall row."""
    header = f"{'entity':<12} {'spans':>6} {'recall':>7} {'prec.':>7} {'typed':>7} {'F2':>7}  ok"
    lines = [header, "-" * len(header)]
    rows = [*report["entities"].items(), ("overall", report["overall"])]
    for name, row in rows:
        ok = (
            row["recall"] >= report["recall_target"]
            and row["precision"] >= report["precision_target"]
        )
        lines.append(
            f"{name:<12} {row['true_spans']:>6} {row['recall']:>7.4f} {row['precision']:>7.4f} "
            f"{row['typed_precision']:>7.4f} {row['f2']:>7.4f}  {'yes' if ok else 'NO'}"
        )
    lines.append(
        f"{report['notes']} notes in {report['seconds']:.1f} s "
        f"({report['notes_per_second']:.1f} notes/s); targets recall >= "
        f"{report['recall_target']}, precision >= {report['precision_target']}"
    )
    return "\n".join(lines)
