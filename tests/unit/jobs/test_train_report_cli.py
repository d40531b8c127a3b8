"""The report job's command line refuses bad input before starting Ray, with a clear message."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from jobs.train_report import main, results_table


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"variants": [{"name": "dp", "dp": True, "init_from": "base"}]}, "earlier variant"),
        ({"optimisation": {"batch_size": 0}}, "optimisation.batch_size"),
    ],
)
def test_an_invalid_config_is_refused_with_the_field_named(
    tmp_path: Path, capsys, config, message
) -> None:
    path = tmp_path / "report.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["--config", str(path), "--output", str(tmp_path / "run")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_resume_needs_a_run_folder_and_no_other_config(tmp_path: Path, capsys) -> None:
    assert main(["--resume", str(tmp_path)]) == 2
    assert "not a SecureMed run folder" in capsys.readouterr().err
    assert main(["--resume", str(tmp_path), "--config", "x.yaml"]) == 2
    assert "drop --config/--output" in capsys.readouterr().err


def test_a_folder_that_holds_a_run_is_not_overwritten(tmp_path: Path, capsys) -> None:
    (tmp_path / "config.yaml").write_text("{}\n")
    assert main(["--output", str(tmp_path)]) == 2
    assert "already holds a run" in capsys.readouterr().err


def test_the_results_table_shows_clean_and_robust_metrics_and_epsilon() -> None:
    scores = {"clinical_macro_f1": 0.9, "bleu1": 0.7, "bleu4": 0.5, "rouge_l": 0.6}
    evaluation = {
        "pgd": {"epsilon": 4 / 255, "steps": 10},
        "robust_films": 200,
        "test_films": 300,
        "results": {
            "baseline_most_common_report": scores,
            "dp": {"clean": scores, "robust": {**scores, "bleu4": 0.25}, "epsilon": 7.99},
        },
    }
    table = results_table(evaluation)
    assert "4.0/255" in table
    assert (
        "| baseline_most_common_report | 0.900 | 0.700 | 0.500 | 0.600 | - | - | - | no DP |"
        in table
    )
    assert "| dp | 0.900 | 0.700 | 0.500 | 0.600 | 0.900 | 0.700 | 0.250 | 7.99 |" in table
