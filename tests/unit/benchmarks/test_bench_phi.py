"""The PHI anonymizer benchmark runs at smoke size and reports both engines (no timing checks)."""

from __future__ import annotations

from benchmarks.bench_phi import measure_anonymizer


def test_smoke_measure_reports_throughput_and_recall_of_both_engines() -> None:
    result = measure_anonymizer(notes=4, repeats=1)
    assert result["notes"] == 4 and result["repeats"] == 1
    assert result["phi_anonymizer_docs_per_s"] > 0 and result["presidio_docs_per_s"] > 0
    assert (
        result["time_ratio"] == result["presidio_docs_per_s"] / result["phi_anonymizer_docs_per_s"]
    )
    assert 0.0 <= result["presidio_recall"] <= 1.0
    assert 0.0 <= result["phi_anonymizer_recall"] <= 1.0
