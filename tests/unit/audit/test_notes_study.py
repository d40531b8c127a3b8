"""The notes study's pieces in-process: canaries, the data it prepares, one fine-tuned copy,
a base loaded from a folder, and the report it writes."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from securemed.audit.canaries import make_canaries
from securemed.audit.notes_study import (
    BaseTraining,
    NotesAuditConfig,
    NotesModelSettings,
    NotesVariant,
    describe_study,
    prepare_study,
    pretrain_base,
    reference_nll,
    train_member_model,
)
from securemed.audit.study_analysis import MemberOutcome, audit_variant
from securemed.audit.study_report import VariantRecord, write_study

TINY = NotesAuditConfig(
    population=24,
    canaries=8,
    public_notes=60,
    validation_notes=8,
    test_notes=8,
    models=6,
    model=NotesModelSettings(vocab_size=400, hidden_size=16, layers=1, heads=2,
                             intermediate_size=32, max_length=96),
    base=BaseTraining(epochs=1),
    variants=(
        NotesVariant(name="plain", epochs=2, learning_rate=0.01, batch_size=4),
        NotesVariant(name="private", epochs=1, learning_rate=0.01, batch_size=4,
                        target_epsilon=4.0),
    ),
)  # fmt: skip


def test_canaries_end_in_a_random_secret_and_reproduce() -> None:
    canaries = make_canaries(20, seed=0)
    secrets = [re.search(r"Portal PIN: (\d{4}-\d{4}-\d{4})\.$", text) for text in canaries]
    assert all(secrets)
    assert len({match.group(1) for match in secrets if match}) == 20
    assert canaries == make_canaries(20, seed=0) != make_canaries(20, seed=1)


@pytest.fixture(scope="module")
def study():
    return prepare_study(TINY)


def test_the_study_keeps_public_and_audited_notes_apart(study) -> None:
    assert len(study.audit_set) == 32 and study.masks.shape == (6, 32)
    # the population in halves; the canaries as the one-run audit draws them (audit_masks)
    assert np.all(study.masks[:, :24].sum(axis=0) == 3)
    public = {tuple(row) for row in study.public.ids.tolist()}
    assert not public & {tuple(row) for row in study.audit_set.ids.tolist()}
    assert study.canary_columns == slice(24, 32)


def test_a_copy_trains_on_its_half_and_reports_what_the_audit_needs(study) -> None:
    base = study.with_base(pretrain_base(study).state)
    plain = train_member_model(base, "plain", 0)
    private = train_member_model(base, "private", 0)
    assert plain.audit_nll.shape == (32,) and np.all(np.isfinite(plain.audit_nll))
    assert plain.epsilon is None and private.epsilon is not None and private.epsilon <= 4.0
    assert reference_nll(base).shape == (32,)
    with pytest.raises(ValueError, match="unknown variant"):
        train_member_model(base, "other", 0)
    with pytest.raises(ValueError, match="model index"):
        train_member_model(base, "plain", 6)


def test_a_base_loaded_from_a_folder_brings_its_own_tokenizer(study, tmp_path) -> None:
    study.lm.save(tmp_path / "lm")
    loaded = prepare_study(
        TINY.model_copy(
            update={"model": TINY.model.model_copy(update={"path": str(tmp_path / "lm")})}
        )
    )
    assert loaded.lm.tokenizer.to_str() == study.lm.tokenizer.to_str()
    assert np.allclose(reference_nll(loaded), reference_nll(study), atol=1e-5)


def test_the_report_carries_every_number_and_no_note_text(study, tmp_path) -> None:
    rng = np.random.default_rng(0)
    records = []
    for name, shift, epsilon in (("plain", 1.5, None), ("private", 0.0, 4.0)):
        nll = 2.0 - shift * study.masks + rng.normal(0, 0.2, study.masks.shape)
        outcomes = [_outcome(name, index, row, epsilon) for index, row in enumerate(nll)]
        audit = audit_variant(
            name, -nll, study.masks, population=24, reference=-np.full(32, 2.0),
            accountant_epsilon=epsilon, delta=1e-5, alpha=0.05,
        )  # fmt: skip
        records.append(VariantRecord(audit, outcomes))
    description = describe_study(TINY, parameters=1234, base_test_nll=2.5)
    result = write_study(
        tmp_path, records, description, reference=np.full(32, 2.0), masks=study.masks,
        population=24, metadata={"config": TINY.model_dump(mode="json")},
    )  # fmt: skip
    assert (
        result["headline"]["tpr_at_1%_fpr"]["plain"]
        > result["headline"]["tpr_at_1%_fpr"]["private"]
    )
    assert json.loads((tmp_path / "comparison.json").read_text()) == result
    report = (tmp_path / "REPORT.md").read_text()
    assert "| plain | 2.200 |" in report and "| base (not fine-tuned) | 2.500 |" in report
    assert "1,234 parameters" in report and "(model, note) pairs" in report
    assert "leaking most to least: plain > private" in report
    assert "stays below the accountant's epsilon 4.00" in report
    rows = (tmp_path / "scores-plain.csv").read_text().splitlines()
    assert len(rows) == 1 + 6 * 32 and rows[0].startswith("model,example,kind,member,nll")
    assert rows[0].endswith(",canary_score,canary_guess")
    # canaries carry the audit's score and guess on the three audited copies, none elsewhere
    guesses = [row.split(",")[-1] for row in rows[1:]]
    assert guesses[: 3 * 32] == [""] * (3 * 32)
    audited = {guesses[32 * copy + 24 + canary] for copy in (3, 4, 5) for canary in range(8)}
    assert audited <= {"in", "out", "abstain"}
    assert "| plain | 8 | 3 | 24 |" in report and "one-run audit" in report
    for path in tmp_path.iterdir():
        if path.suffix in (".md", ".csv", ".json"):
            assert "Portal PIN" not in path.read_text() and "MRN" not in path.read_text()


def _outcome(name: str, index: int, nll: np.ndarray, epsilon: float | None) -> MemberOutcome:
    return MemberOutcome(
        variant=name, index=index, audit_nll=nll, utility=2.2, epsilon=epsilon,
        noise_multiplier=None, epochs_run=1, best_epoch=1, seconds=0.1, pid=1,
    )  # fmt: skip
