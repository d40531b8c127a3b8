"""`make bench`: every benchmark of the federated core, written as one JSON file.

    python -m benchmarks.run --output bench-results/bench.json [--smoke-test]

Targets are checked here against the measured numbers and recorded beside them, never in a
timed test: the machine is shared, so a number is only meaningful with the run it came from.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.bench_dp_step import measure_dp_step
from benchmarks.bench_phi import measure_anonymizer
from benchmarks.bench_report import measure_generation, measure_report_dp_step
from benchmarks.bench_round import measure_round, measure_secure_overhead
from benchmarks.bench_secagg import measure_mask_throughput, measure_protocol, measure_unmask
from benchmarks.bench_serve import ROOT, measure_service
from securemed.models.report_generator import ReportModelConfig

DP_STEP_RATIO_TARGET = 2.0  # DP-SGD step over the plain step, SimpleCNN, same batch
#: a report model small enough for smoke runs (same code paths as the default)
SMOKE_REPORT_MODEL = ReportModelConfig(
    image_size=32, vision_width=8, d_model=32, d_ff=64, encoder_layers=1, decoder_layers=1,
    heads=2, vocab_size=300, max_report_tokens=16,
)  # fmt: skip


def run_all(*, smoke_test: bool) -> dict[str, Any]:
    """Measure everything; ``smoke_test`` shrinks each run to seconds (same code paths)."""
    if smoke_test:
        dp_step = measure_dp_step(batch_size=8, image_size=16, repeats=2, warmup=1)
        round_split = measure_round(hospitals=2, samples_per_hospital=64)
        secure_round = measure_secure_overhead(hospitals=3, samples_per_hospital=64)
        protocol = measure_protocol((3, 8), length=1000)
        unmask = measure_unmask(hospitals=10, length=1000, dropout=0.1)
        masks = measure_mask_throughput(length=1000, repeats=3)
        generation = measure_generation(config=SMOKE_REPORT_MODEL, batch_sizes=(1, 2), repeats=1)
        report_step = measure_report_dp_step(
            model=SMOKE_REPORT_MODEL, batch_size=8, steps_per_epoch=2, repeats=1
        )
        phi = measure_anonymizer(notes=8, repeats=1)
        # the service needs its own Ray and a trained model: its smoke run is
        # tests/integration/test_serve_job.py, not this seconds-long pass
        service: dict[str, Any] = {"skipped": "smoke test"}
    else:
        dp_step = measure_dp_step()
        round_split = measure_round()
        secure_round = measure_secure_overhead()
        protocol = measure_protocol((8, 32, 128, 512), length=1_000_000)
        unmask = measure_unmask(hospitals=50, length=1_000_000, dropout=0.1)
        masks = measure_mask_throughput(length=1_000_000, repeats=50)
        generation = measure_generation()
        report_step = measure_report_dp_step()
        phi = measure_anonymizer()
        service = measure_service(runs_dir=ROOT / "runs")
    dp_step["target_ratio"] = DP_STEP_RATIO_TARGET
    dp_step["meets_target"] = dp_step["ratio"] <= DP_STEP_RATIO_TARGET
    return {
        "smoke_test": smoke_test,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "torch": torch.__version__,
        },
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "dp_step": dp_step,
        "federated_round": round_split,
        "secure_round": secure_round,
        "secagg_protocol": protocol,
        "secagg_unmask": unmask,
        "secagg_masks": masks,
        "report_generation": generation,
        "report_dp_step": report_step,
        "phi_anonymizer": phi,
        "report_service": service,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--smoke-test", action="store_true", help="seconds-long runs")
    args = parser.parse_args(argv)
    results = run_all(smoke_test=args.smoke_test)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    step, split = results["dp_step"], results["federated_round"]
    print(
        f"DP step {step['dp_step_s'] * 1e3:.1f} ms / plain {step['non_dp_step_s'] * 1e3:.1f} ms "
        f"= {step['ratio']:.2f} (target <= {DP_STEP_RATIO_TARGET})"
    )
    print(
        f"federated round {split['round_seconds']:.2f} s: "
        + ", ".join(f"{name} {value:.3f} s" for name, value in split["time_split_s"].items())
    )
    secure = results["secure_round"]
    print(
        f"secure round {secure['secure_round_s']:.2f} s / plain {secure['plain_round_s']:.2f} s "
        f"= {secure['ratio']:.2f} (target <= {secure['target_ratio']})"
    )
    for row in results["secagg_protocol"]:
        print(
            f"secagg n={row['hospitals']} k={row['neighbours']}: client "
            f"{row['client_seconds_mean'] * 1e3:.1f} ms, {row['client_bytes_sent_mean'] / 1e6:.2f}"
            f" MB sent; server {row['server_seconds']:.3f} s ({row['server_over_plain']:.0f}x "
            f"plain); consistency check {row['consistency_share_of_round']:.1%} of the round "
            f"(target < {row['consistency_target']:.0%})"
        )
    unmask, masks = results["secagg_unmask"], results["secagg_masks"]
    print(
        f"unmask {unmask['hospitals']} hospitals, {unmask['dropped']} dropped: "
        f"{unmask['unmask_seconds']:.3f} s (target < {unmask['target_s']} s); masks "
        f"{masks['mask_generator_gb_per_s']:.2f} GB/s, raw AES-CTR "
        f"{masks['raw_aes256_ctr_gb_per_s']:.2f} GB/s"
    )
    for row in results["report_generation"]:
        print(
            f"report generation, batch {row['batch_size']}: {row['tokens_per_second']:.0f} "
            f"tokens/s, {row['reports_per_second']:.2f} reports/s"
        )
    report_step = results["report_dp_step"]
    print(
        f"report model DP step {report_step['dp_step_s'] * 1e3:.0f} ms / plain "
        f"{report_step['non_dp_step_s'] * 1e3:.0f} ms = {report_step['ratio']:.2f}"
    )
    phi = results["phi_anonymizer"]
    print(
        f"PHI anonymizer {phi['phi_anonymizer_docs_per_s']:.1f} docs/s (recall "
        f"{phi['phi_anonymizer_recall']:.3f}) / plain Presidio {phi['presidio_docs_per_s']:.1f} "
        f"docs/s (recall {phi['presidio_recall']:.3f})"
    )
    for clients, level in results["report_service"].get("concurrency", {}).items():
        stages = ", ".join(f"{k} {v:.0f}" for k, v in level["stage_p50_ms"].items())
        print(
            f"report service, {clients} clients: p50 {level['p50_ms']:.0f} ms, p99 "
            f"{level['p99_ms']:.0f} ms, {level['requests_per_second']:.1f} req/s, "
            f"{level['failed']} failed, {level['backpressure_503']} x 503; stage p50 ms: {stages}"
        )
    print(f"written to {args.output}")
    return results


if __name__ == "__main__":
    main()
