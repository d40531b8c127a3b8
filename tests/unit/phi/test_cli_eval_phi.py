"""`securemed eval-phi` (and `make eval-phi`): exit status, table, JSON, and no PHI printed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from securemed.cli import main
from securemed.phi import PhiAnonymizer
from securemed.phi.corpus import generate_phi_notes
from securemed.phi.entities import PHI_ENTITY_TYPES


def _phi_values(notes: int, seed: int) -> set[str]:
    values = set()
    for note in generate_phi_notes(notes, seed):
        values.update(note.text[s:e] for _, s, e in note.spans if e - s >= 4)
    return values


def test_eval_phi_passes_and_writes_scores_without_phi(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "out" / "phi.json"
    code = main(["eval-phi", "--notes", "24", "--seed", "5", "--output", str(output)])
    printed = capsys.readouterr()
    report = json.loads(output.read_text())
    assert code == 0 and report["meets_targets"] is True
    assert set(report["entities"]) == set(PHI_ENTITY_TYPES)
    assert report["notes"] == 24 and report["seed"] == 5
    assert "overall" in printed.out and "recall" in printed.out
    written = output.read_text() + printed.out + printed.err
    leaked = [value for value in _phi_values(24, 5) if value in written]
    assert leaked == []


def test_eval_phi_exits_non_zero_below_target(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(PhiAnonymizer, "__init__", lambda self, config=None: None)
    monkeypatch.setattr(PhiAnonymizer, "find", lambda self, text, known_identifiers=(): [])
    assert main(["eval-phi", "--notes", "8"]) == 1
    assert "below target" in capsys.readouterr().err


def test_eval_phi_refuses_zero_notes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval-phi", "--notes", "0"]) == 2
    assert "--notes" in capsys.readouterr().err


@pytest.mark.slow
def test_500_generated_notes_meet_the_targets_for_every_entity_type(tmp_path: Path) -> None:
    output = tmp_path / "phi.json"
    assert main(["eval-phi", "--notes", "500", "--seed", "0", "--output", str(output)]) == 0
    report = json.loads(output.read_text())
    for entity_type, row in report["entities"].items():
        assert row["true_spans"] > 0, entity_type
        assert row["recall"] >= 0.99 and row["precision"] >= 0.90, entity_type
