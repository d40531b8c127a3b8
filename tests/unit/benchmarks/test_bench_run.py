"""`make bench` runs end to end at smoke size and writes the promised JSON (no timing checks)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from benchmarks.bench_report import generated_tokens
from benchmarks.run import DP_STEP_RATIO_TARGET, main

DP_STEP_KEYS = {
    "model",
    "batch_size",
    "image_size",
    "threads",
    "repeats",
    "warmup",
    "grad_sample_mode",
    "dp_step_s",
    "non_dp_step_s",
    "ratio",
    "torch",
    "opacus",
    "target_ratio",
    "meets_target",
}
SPLIT_KEYS = {"local_training_s", "serialization_s", "transport_s", "aggregation_s"}


def test_smoke_run_writes_step_ratio_and_round_split(tmp_path: Path) -> None:
    output = tmp_path / "nested" / "bench.json"
    returned = main(["--smoke-test", "--output", str(output)])
    written = json.loads(output.read_text())
    assert written == json.loads(json.dumps(returned))
    step = written["dp_step"]
    assert set(step) == DP_STEP_KEYS
    assert step["grad_sample_mode"] == "ew"  # SimpleCNN's own mode
    assert step["ratio"] == step["dp_step_s"] / step["non_dp_step_s"]
    assert step["meets_target"] == (step["ratio"] <= DP_STEP_RATIO_TARGET)
    split = written["federated_round"]
    assert set(split["time_split_s"]) == SPLIT_KEYS
    assert all(value >= 0 for value in split["time_split_s"].values())
    assert split["time_split_s"]["local_training_s"] > 0
    assert split["update_bytes_per_hospital"] > 0
    secure = written["secure_round"]
    assert secure["ratio"] == secure["secure_round_s"] / secure["plain_round_s"]
    assert [row["hospitals"] for row in written["secagg_protocol"]] == [3, 8]
    for row in written["secagg_protocol"]:
        assert row["client_bytes_sent_mean"] > row["plain_client_bytes_sent"]
        assert row["server_seconds"] > 0 and row["plain_server_seconds"] > 0
        assert 0 < row["consistency_share_of_round"] < 1
        assert row["consistency_meets_target"] == (
            row["consistency_share_of_round"] < row["consistency_target"]
        )
    assert written["secagg_unmask"]["dropped"] == 1
    assert written["secagg_masks"]["mask_generator_gb_per_s"] > 0
    generation = written["report_generation"]
    assert [row["batch_size"] for row in generation] == [1, 2]
    for row in generation:
        assert 1 <= row["tokens_per_batch"] <= 16 * row["batch_size"]  # max_report_tokens 16
        assert row["tokens_per_second"] == row["tokens_per_batch"] / row["seconds_per_batch"]
    report_step = written["report_dp_step"]
    assert report_step["ratio"] == report_step["dp_step_s"] / report_step["non_dp_step_s"]
    assert report_step["dp_step_s"] > 0 and report_step["non_dp_step_s"] > 0


def test_generated_tokens_count_each_row_up_to_its_first_end_of_sequence() -> None:
    ids = torch.tensor([[5, 0, 1, 0, 0], [7, 8, 9, 4, 4], [1, 3, 3, 3, 3]])
    assert generated_tokens(ids) == 3 + 5 + 1
