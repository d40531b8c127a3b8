"""The core hospital loop decides for the hospital, on its own machine: it declines rounds its
budget or its policy refuses, writes its ledger before any byte of an update leaves, sends only
public values besides the update, keeps one budget per data set across runs, and never
overspends after a ``kill -9`` at any point. The aggregator is played by a scripted fake that
records every message, as a curious aggregator would."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from fake_aggregator import FakeAggregator, toy_site_data

from securemed.config import parse_config
from securemed.errors import BudgetExhausted
from securemed.federation.coordinator import HospitalReport
from securemed.hospital import HospitalPolicy, HospitalSite
from securemed.models import build_model
from securemed.privacy import PrivacyLedger, project_epsilon
from securemed.secagg.params import SecAggParams

ROOT = Path(__file__).resolve().parents[3]


def _epsilon(rounds: int, noise: float = 1.0) -> float:
    """The epsilon of ``rounds`` rounds of the toy site's plan (6 steps at rate 1/6)."""
    return project_epsilon(
        [], noise_multiplier=noise, sample_rate=1 / 6, steps=6 * rounds, delta=1e-5,
        accountant="rdp",
    )  # fmt: skip


def _config(**privacy: Any) -> Any:
    return parse_config(
        {
            "training": {"batch_size": 8, "local_epochs": 1, "model": "simple_cnn"},
            "privacy": {
                "target_epsilon": None,
                "noise_multiplier": 1.0,
                "budget_epsilon": 50.0,
                "accountant": "rdp",
                "unit": "record",
                **privacy,
            },
            "federation": {"hospitals": 2, "rounds": 3},
            "secure_aggregation": {"enabled": False},
        }
    )


def _site(config: Any, tmp_path: Path, *, run_id: str = "run-1", data_file=None) -> HospitalSite:
    images, labels = toy_site_data()
    return HospitalSite(
        config,
        hospital="hospital-1",
        images=images,
        labels=labels,
        patient_ids=None,
        run_id=run_id,
        data_file=data_file,
        run_folder=tmp_path,
    )


def _global_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return build_model("simple_cnn", num_classes=2).state_dict()


def _aggregator(rounds: list[tuple[int, bool]], **kwargs: Any) -> FakeAggregator:
    return FakeAggregator(global_state=_global_state(), rounds=rounds, **kwargs)


def _updates(aggregator: FakeAggregator) -> list[tuple[int, dict, HospitalReport]]:
    return [value for kind, value in aggregator.sent if kind == "update"]


def _declines(aggregator: FakeAggregator) -> list[tuple[int, str]]:
    return [value for kind, value in aggregator.sent if kind == "decline"]


def test_the_ledger_is_written_before_the_update_leaves_and_released_after(tmp_path) -> None:
    with _site(_config(), tmp_path) as site:
        assert site.privacy is not None
        aggregator = _aggregator([(1, False), (2, False)], ledger=site.privacy.ledger)
        summary = site.run(aggregator)  # type: ignore[arg-type]
        assert summary.rounds_submitted == [1, 2]
        assert aggregator.status_at_send == ["reserved", "reserved"]
        rows = site.privacy.ledger.entries()
        assert [(row.round, row.status) for row in rows] == [(1, "released"), (2, "released")]
        assert rows[0].parameters == {
            "noise_multiplier": 1.0,
            "sample_rate": pytest.approx(1 / 6),
            "steps": 6,
        }


def test_only_public_values_leave_with_the_update(tmp_path) -> None:
    """No loss, no norm of the raw update, no timing: the report holds the declared count, the
    epsilon and the unit, and the epsilon is what anyone can compute from public values."""
    with _site(_config(), tmp_path) as site:
        aggregator = _aggregator([(1, False)])
        site.run(aggregator)  # type: ignore[arg-type]
    [(_, update, report)] = _updates(aggregator)
    assert set(vars(report)) == {"num_samples", "epsilon", "privacy_unit", "update_bytes"}
    assert report.num_samples == 48 and report.privacy_unit == "record"
    assert report.epsilon == pytest.approx(_epsilon(1), rel=1e-9)
    assert set(update) == set(_global_state())


def test_a_hospital_that_keeps_its_size_private_sends_neither_size_nor_epsilon(tmp_path) -> None:
    with _site(_config(public_dataset_size=False), tmp_path) as site:
        aggregator = _aggregator([(1, False)])
        site.run(aggregator)  # type: ignore[arg-type]
    assert aggregator.sent[0] == ("join", 0)
    [(_, _, report)] = _updates(aggregator)
    assert report.num_samples == 0 and report.epsilon is None


def test_a_round_the_budget_cannot_afford_is_declined_without_an_upload(tmp_path) -> None:
    budget = (_epsilon(1) + _epsilon(2)) / 2  # one round fits, two do not
    with _site(_config(budget_epsilon=budget), tmp_path) as site:
        aggregator = _aggregator([(1, False), (2, False), (3, False)])
        summary = site.run(aggregator)  # type: ignore[arg-type]
        assert site.privacy is not None and site.privacy.spent() <= budget
    assert summary.rounds_submitted == [1] and summary.rounds_declined == [2, 3]
    assert _declines(aggregator) == [(2, "budget"), (3, "budget")]
    assert [number for number, _, _ in _updates(aggregator)] == [1]


def test_raise_noise_trains_with_the_smallest_noise_that_fits(tmp_path) -> None:
    budget = (_epsilon(1) + _epsilon(2)) / 2
    config = _config(budget_epsilon=budget, on_budget_exhausted="raise_noise")
    with _site(config, tmp_path) as site:
        summary = site.run(_aggregator([(1, False), (2, False)]))  # type: ignore[arg-type]
        assert site.privacy is not None
        rows = site.privacy.ledger.entries()
    assert summary.rounds_submitted == [1, 2]
    assert rows[1].parameters["noise_multiplier"] > 1.0
    assert rows[1].cumulative_epsilon <= budget + 1e-9


def test_a_clear_round_is_refused_by_a_hospital_that_requires_secure_aggregation(
    tmp_path,
) -> None:
    config = _config().model_copy(
        update={"secure_aggregation": parse_config({}).secure_aggregation}
    )
    with _site(config, tmp_path) as site:
        aggregator = _aggregator([(1, False)])
        summary = site.run(aggregator)  # type: ignore[arg-type]
        assert site.privacy is not None and site.privacy.ledger.entries() == []
    assert summary.rounds_declined == [1] and _declines(aggregator) == [(1, "policy")]
    assert _updates(aggregator) == []


@pytest.mark.parametrize(
    "demand",
    [
        {"min_participants": 2, "min_survivors": 3},
        {"min_participants": 2, "threshold": 3},
        {"min_participants": 2, "neighbours": 3, "threshold": 2},
        {},  # the default floor: at least 3 hospitals in a secure sum
    ],
)
def test_a_secure_round_weaker_than_the_policy_is_refused(tmp_path, demand) -> None:
    """The aggregator offers 2 hospitals with k = 1, t = 1, 2 survivors (it could then
    recover one hospital's masks); a hospital that demands more declines, uploading nothing."""
    config = parse_config(
        {
            **_config().model_dump(mode="json", exclude={"secure_aggregation", "federation"}),
            "federation": {"hospitals": 3, "rounds": 3},
            "secure_aggregation": demand,
        }
    )
    with _site(config, tmp_path) as site:
        aggregator = _aggregator([(1, True)], secure_survivors=2)
        site.run(aggregator)  # type: ignore[arg-type]
    assert _declines(aggregator) == [(1, "policy")] and _updates(aggregator) == []


@pytest.mark.parametrize(("neighbours", "declined"), [(2, True), (None, False)])
def test_a_hospital_without_a_k_of_its_own_demands_the_secagg_plus_default(
    tmp_path, neighbours, declined
) -> None:
    """With k and t left unset in its config a hospital still has a floor: the SecAgg+ k for
    the announced n (7 for 8 hospitals). An aggregator announcing k = 2, t = 2 (two colluding
    neighbours would hold both of a hospital's secrets) is refused; the default is taken."""
    config = parse_config(
        {
            **_config().model_dump(mode="json", exclude={"secure_aggregation", "federation"}),
            "federation": {"hospitals": 8, "rounds": 3},
            "secure_aggregation": {},
        }
    )
    aggregator = _aggregator([(1, True)], secure_survivors=8, secure_neighbours=neighbours)
    view = aggregator.round_status(after_round=0, wait_s=0)
    refusal = HospitalPolicy.from_config(config).refusal(view, dimension=10)
    assert (refusal is not None) is declined
    if declined:
        assert refusal is not None and "2 neighbours (k), fewer than the 7" in refusal


def test_every_run_on_the_same_data_file_spends_one_lifetime_budget(tmp_path) -> None:
    """A real data file's ledger lives in the hospital's state folder, keyed by the file's
    digest: a second run that would pass the lifetime budget is refused, naming the spend."""
    data = tmp_path / "films.npz"
    data.write_bytes(b"the hospital's own data file")
    # run-a's two rounds fit; two more plus run-b's three planned do not
    budget = (_epsilon(2) + _epsilon(5)) / 2
    config = _config(budget_epsilon=budget, state_dir=str(tmp_path / "state"))
    with _site(config, tmp_path, run_id="run-a", data_file=data) as site:
        site.run(_aggregator([(1, False), (2, False)]))  # type: ignore[arg-type]
        assert site.privacy is not None
        ledger_path = site.privacy.ledger.path
        published = site.accounting()
        assert published is not None
        assert published["ledger_covers"] == "every run on this data set"
        assert published["dataset_id"] == f"sha256:{hashlib.sha256(data.read_bytes()).hexdigest()}"
    assert ledger_path.is_relative_to(tmp_path / "state")
    with pytest.raises(BudgetExhausted) as refused:
        _site(config, tmp_path, run_id="run-b", data_file=data)
    message = str(refused.value)
    assert "run-a: 2 rounds" in message and str(ledger_path) in message
    # the same file under another name is the same data set
    copy = tmp_path / "renamed.npz"
    copy.write_bytes(data.read_bytes())
    with pytest.raises(BudgetExhausted):
        _site(config, tmp_path, run_id="run-c", data_file=copy)


def test_a_restarted_site_rebuilds_its_accountant_from_its_ledger(tmp_path) -> None:
    with _site(_config(), tmp_path) as site:
        site.run(_aggregator([(1, False)]))  # type: ignore[arg-type]
        before = site.trainer.epsilon
    with _site(_config(), tmp_path) as restarted:
        assert restarted.trainer.epsilon == pytest.approx(before, rel=1e-9)


_CHILD = """
    import sys
    sys.path[:0] = [{root!r}, {tests!r}]
    import securemed.transport  # TLS setting before grpc, as the product does
    from pathlib import Path
    import torch
    from fake_aggregator import FakeAggregator
    from test_hospital_loop import _config, _global_state, _site
    site = _site(_config(), Path({folder!r}))
    crash = {crash!r}
    if crash == "training":
        def boom(state):
            import os, signal
            os.kill(os.getpid(), signal.SIGKILL)
        site.trainer.train_round = boom
    aggregator = FakeAggregator(
        global_state=_global_state(), rounds=[(1, False)], crash_on_submit=crash == "submit"
    )
    site.run(aggregator)
"""


def _crash(tmp_path: Path, crash: str) -> None:
    script = textwrap.dedent(_CHILD).format(
        root=str(ROOT), tests=str(Path(__file__).parent), folder=str(tmp_path), crash=crash
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == -9, done.stderr[-2000:]


@pytest.mark.slow  # a child Python that imports torch, killed with SIGKILL
def test_kill_between_the_ledger_write_and_the_release_never_overspends(tmp_path) -> None:
    """Killed after reserving round 1 and while sending it: the restarted hospital counts
    round 1 (it may have left), sits round 1 out if offered again, and round 2 costs what a
    second round costs on top of it."""
    _crash(tmp_path, "submit")
    with PrivacyLedger(tmp_path / "privacy" / "hospital-1.sqlite") as ledger:
        [row] = ledger.entries()
        assert (row.round, row.status) == (1, "reserved")
    with _site(_config(), tmp_path) as site:
        assert site.privacy is not None
        assert site.trainer.epsilon == pytest.approx(row.cumulative_epsilon, rel=1e-9)
        aggregator = _aggregator([(1, False), (2, False)])
        summary = site.run(aggregator)  # type: ignore[arg-type]
        rows = site.privacy.ledger.entries()
    assert summary.rounds_declined == [1] and summary.rounds_submitted == [2]
    assert [(r.round, r.status) for r in rows] == [(1, "reserved"), (2, "released")]
    assert rows[1].cumulative_epsilon == pytest.approx(_epsilon(2), rel=1e-9)


@pytest.mark.slow
def test_kill_during_training_spends_nothing(tmp_path) -> None:
    """Killed before the reservation: nothing could have left, so nothing is charged and the
    restarted hospital takes round 1."""
    _crash(tmp_path, "training")
    with _site(_config(), tmp_path) as site:
        assert site.privacy is not None and site.privacy.ledger.entries() == []
        summary = site.run(_aggregator([(1, False)]))  # type: ignore[arg-type]
    assert summary.rounds_submitted == [1]


def test_a_hospital_without_dp_keeps_no_ledger(tmp_path) -> None:
    config = _config(enabled=False)
    with _site(config, tmp_path) as site:
        assert site.privacy is None and site.accounting() is None
        summary = site.run(_aggregator([(1, False)]))  # type: ignore[arg-type]
    assert summary.rounds_submitted == [1]
    assert not (tmp_path / "privacy").exists()


def test_a_round_whose_ring_cannot_carry_the_noise_is_declined_not_fatal(tmp_path) -> None:
    """Client-level noise too large for the ring the aggregator offers: the hospital declines
    (policy) and keeps serving; an aggregator's parameters never crash it."""
    config = parse_config(
        {
            **_config().model_dump(mode="json", exclude={"secure_aggregation"}),
            "secure_aggregation": {
                "norm_bound": 1.0,
                "client_dp_noise_multiplier": 1.0e6,
                "min_participants": 2,
            },
        }
    )
    with _site(config, tmp_path) as site:
        aggregator = _aggregator([(1, True), (2, False)])
        summary = site.run(aggregator)  # type: ignore[arg-type]
    assert _declines(aggregator) == [(1, "policy"), (2, "policy")]  # 2: not secure
    assert summary.rounds_declined == [1, 2]


def test_a_global_model_that_does_not_fit_is_declined_not_fatal(tmp_path) -> None:
    torch.manual_seed(0)
    other = build_model("simple_cnn", num_classes=5).state_dict()
    with _site(_config(), tmp_path) as site:
        aggregator = FakeAggregator(global_state=other, rounds=[(1, False)])
        summary = site.run(aggregator)  # type: ignore[arg-type]
        assert site.privacy is not None and site.privacy.ledger.entries() == []
    assert summary.rounds_declined == [1] and _declines(aggregator) == [(1, "policy")]


def test_a_private_size_is_not_published_through_the_sampling_rate(tmp_path) -> None:
    with _site(_config(public_dataset_size=False), tmp_path) as site:
        site.run(_aggregator([(1, False)]))  # type: ignore[arg-type]
        assert site.accounting() == {"dataset_size": "private", "epsilon": None, "history": []}


def test_client_level_rows_of_an_insecure_run_say_they_are_no_guarantee(tmp_path) -> None:
    from securemed.privacy.client_dp import ClientDPPolicy
    from securemed.privacy.hospital_privacy import HospitalPrivacy

    policy = ClientDPPolicy(noise_multiplier=1.0, norm_bound=1.0, min_survivors=2, delta=1e-5)
    parameters = policy.round_parameters(SecAggParams.for_round(4), dimension=100)
    with PrivacyLedger(tmp_path / "ledger.sqlite") as ledger:
        privacy = HospitalPrivacy(
            ledger,
            privacy=_config(enabled=False).privacy,
            hospital="hospital-1",
            dataset_id="ds",
            run_id="run-1",
            privacy_unit="record",
            secure_noise=False,
            client_dp=policy,
        )
        assert privacy.decide_client_dp(1, parameters) is None
        [row] = privacy.reserve(1, None)
        assert row.mechanism == "client-dp" and row.guarantee is False
        assert not privacy.guaranteed()


def test_the_cli_keeps_the_budget_of_a_data_file_named_in_its_config(tmp_path, pki, capsys) -> None:
    """`python -m securemed.hospital --config` whose data section names a real file (no
    --data): that file's lifetime budget applies, as with --data."""
    from securemed.hospital import main

    data = tmp_path / "films.npz"
    rng = np.random.default_rng(0)
    arrays = {}
    for split in ("train", "val", "test"):
        arrays[f"{split}_images"] = rng.integers(0, 256, size=(48, 16, 16), dtype=np.uint8)
        arrays[f"{split}_labels"] = rng.integers(0, 2, size=(48, 2), dtype=np.uint8)
    np.savez(data, **arrays)
    settings = _config(budget_epsilon=_epsilon(1) * 1.01, state_dir=str(tmp_path / "state"))
    settings = settings.model_copy(
        update={"data": parse_config({"data": {"source": "medmnist", "path": str(data)}}).data}
    )
    config_file = tmp_path / "hospital.yaml"
    config_file.write_text(yaml.safe_dump(settings.model_dump(mode="json")))
    # an earlier run spent the file's budget
    with _site(settings, tmp_path, run_id="earlier", data_file=data) as site:
        site.run(_aggregator([(1, False)]))  # type: ignore[arg-type]
    layout = pki.layout
    status = main(
        [
            "--aggregator", "127.0.0.1:1",
            "--cert", str(layout.hospital_cert("hospital-1")),
            "--key", str(layout.hospital_key("hospital-1")),
            "--ca", str(layout.ca_cert),
            "--config", str(config_file),
        ]
    )  # fmt: skip
    assert status == 2
    # refused for the earlier run's spend, not for a bad config or data file
    err = capsys.readouterr().err
    assert "earlier runs (earlier: 1 round" in err and "Traceback" not in err


class _Events:
    """Records what the site tells its host, as the Ray actor's metrics would."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int, str | None]] = []

    def round_declined(self, round_number: int, reason: str) -> None:
        self.seen.append(("declined", round_number, reason))

    def round_released(self, round_number: int) -> None:
        self.seen.append(("released", round_number, None))


def test_the_host_hears_of_every_released_and_declined_round_and_the_spend(tmp_path) -> None:
    """A budget of two rounds and three offered: rounds 1 and 2 are released, round 3 is
    declined for the budget; the status then says what was spent and that the plan for the
    round left would pass the budget (what the alert on a hospital's budget watches)."""
    budget = (_epsilon(2) + _epsilon(3)) / 2
    with _site(_config(budget_epsilon=budget), tmp_path) as site:
        start = site.privacy_status(rounds_left=2)
        assert start is not None and start.budget == budget
        assert start.spent == {"dp-sgd": 0.0}
        assert start.projected == pytest.approx(_epsilon(2)) and start.projected < budget
        events = _Events()
        site.run(_aggregator([(1, False), (2, False), (3, False)]), events=events)  # type: ignore[arg-type]
        assert events.seen == [
            ("released", 1, None),
            ("released", 2, None),
            ("declined", 3, "budget"),
        ]
        after = site.privacy_status(rounds_left=1)
        assert after is not None and after.spent["dp-sgd"] == pytest.approx(_epsilon(2))
        assert after.projected == pytest.approx(_epsilon(3)) and after.projected > budget
