"""What a leakage study leaves on disk: REPORT.md, comparison.json, scores, plots, and the
scalars it logs for TensorBoard.

Only numbers leave the study: losses, attack scores and metrics keyed by example index. No
example (a note carries PHI, a film is a patient's image; fake here but real in a hospital's
run) is written anywhere, and no trained weights are kept. What differs between studies (the
title, the set-up, what an example and the utility are) comes in a :class:`StudyDescription`.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from securemed.audit.leakage import LOW_FPRS
from securemed.audit.study_analysis import ATTACKS, AUDIT_ATTACK, MemberOutcome, VariantAudit
from securemed.durable import atomic_write
from securemed.federation.results import write_json

#: the attack the report's headline numbers come from (the strongest, as in Carlini et al.)
HEADLINE_ATTACK = "lira_online"
ATTACK_TITLES = {
    "loss": "loss threshold",
    "nll_gap": "NLL gap (against the reference model)",
    "lira_online": "LiRA online",
    "lira_offline": "LiRA offline",
    "rmia": "RMIA",
}
#: how the canary audit's bound is computed, as comparison.json names it
AUDIT_METHOD = "one-run audit (Steinke, Nasr and Jagielski 2023)"
_GUESS_NAMES = {1: "in", -1: "out", 0: "abstain"}


@dataclass(frozen=True)
class StudyDescription:
    """What a study's report says about it, beyond the numbers."""

    title: str
    #: the paragraph that says what was trained on what, and how it was attacked
    setup: str
    #: what one audited example is ("note", "film"), and in the plural
    example: str
    examples: str
    #: the utility's column heading and its key in comparison.json
    utility_name: str
    utility_key: str
    #: a model the variants start from or compare with, and its utility (the notes' base LM)
    reference_model: tuple[str, float] | None = None


@dataclass(frozen=True)
class VariantRecord:
    """One variant's audit and the fine-tuned copies it was computed from."""

    audit: VariantAudit
    outcomes: Sequence[MemberOutcome]

    @property
    def name(self) -> str:
        return self.audit.name

    @property
    def utility(self) -> float:
        return float(np.mean([outcome.utility for outcome in self.outcomes]))

    @property
    def epsilon(self) -> float | None:
        spent = [outcome.epsilon for outcome in self.outcomes if outcome.epsilon is not None]
        return max(spent) if spent else None


def copy_scalars(outcome: MemberOutcome, members: np.ndarray) -> dict[str, float | None]:
    """One trained copy's TensorBoard scalars: its utility and epsilon, and its mean loss on
    the audited examples it trained on and on those it did not (``members``: its row of the
    study's masks), whose gap is what the attacks exploit. Means only, no example's loss."""
    losses = np.asarray(outcome.audit_nll, dtype=float)
    members = np.asarray(members, dtype=bool)
    return {
        "audit/copy_utility": outcome.utility,
        "audit/copy_train_loss": float(np.mean(losses[members])),
        "audit/copy_heldout_loss": float(np.mean(losses[~members])),
        "audit/copy_epsilon": outcome.epsilon,
        "audit/copy_epochs_run": outcome.epochs_run,
        "audit/copy_seconds": outcome.seconds,
    }


def variant_scalars(record: VariantRecord) -> dict[str, float | None]:
    """A variant's audit results as TensorBoard scalars: mean utility, the accountant's epsilon
    and the canaries' lower bound on it, and every attack's AUC, success and TPR at low FPR."""
    canaries = record.audit.canary_audit
    scalars: dict[str, float | None] = {
        "audit/utility": record.utility,
        "audit/accountant_epsilon": record.epsilon,
        "audit/canary_epsilon_lower_bound": None
        if canaries is None
        else canaries.epsilon_lower_bound,
    }
    for name, result in record.audit.attacks.items():
        scalars[f"audit/{name}/roc_auc"] = result.metrics.roc_auc
        scalars[f"audit/{name}/attack_success"] = result.metrics.balanced_accuracy
        for fpr, tpr in result.metrics.tpr_at_fpr.items():
            # comparison.json's key, with "pct" for "%" (tpr_at_1pct_fpr), as the sweep names it
            scalars[f"audit/{name}/{_tpr_key(fpr).replace('%', 'pct')}"] = tpr
    return scalars


def comparison(records: Sequence[VariantRecord], description: StudyDescription) -> dict[str, Any]:
    """The machine-readable result: utility, epsilon and every attack's metrics per variant."""
    variants = {}
    for record in records:
        audit = record.audit.canary_audit
        variants[record.name] = {
            "utility": {description.utility_key: record.utility},
            "accountant_epsilon": record.epsilon,
            "epochs_run": [outcome.epochs_run for outcome in record.outcomes],
            "attacks": {
                name: {
                    "roc_auc": result.metrics.roc_auc,
                    "attack_success": result.metrics.balanced_accuracy,
                    **{_tpr_key(fpr): tpr for fpr, tpr in result.metrics.tpr_at_fpr.items()},
                }
                for name, result in record.audit.attacks.items()
            },
            "canary_audit": None
            if audit is None
            else {
                "method": AUDIT_METHOD,
                "attack": audit.attack,
                "epsilon_lower_bound": audit.epsilon_lower_bound,
                "accountant_epsilon": audit.accountant_epsilon,
                "canaries": audit.canaries,
                "audited_copies": audit.audited_copies,
                "coins": audit.coins,
                "guesses": audit.guesses,
                "correct_guesses": audit.correct,
                "confidence": 1 - audit.alpha,
                "delta": audit.delta,
            },
        }
    headline = {
        record.name: record.audit.attacks[HEADLINE_ATTACK].metrics.tpr_at_fpr[0.01]
        for record in records
    }
    reference = description.reference_model
    return {
        "reference_model": None
        if reference is None
        else {"name": reference[0], "utility": {description.utility_key: reference[1]}},
        "variants": variants,
        "headline": {"attack": HEADLINE_ATTACK, "tpr_at_1%_fpr": headline},
    }


def write_study(
    output: Path,
    records: Sequence[VariantRecord],
    description: StudyDescription,
    *,
    reference: np.ndarray | None,
    masks: np.ndarray,
    population: int,
    metadata: Mapping[str, Any],
) -> dict[str, Any]:
    """Every file of the study under ``output``; returns ``comparison.json``'s content."""
    output.mkdir(parents=True, exist_ok=True)
    result = comparison(records, description)
    write_json(output / "comparison.json", result)
    write_json(output / "metadata.json", metadata)
    for record in records:
        _write_scores(
            output / f"scores-{record.name}.csv",
            record,
            reference,
            masks,
            population,
            example=description.example,
        )
        _plot_roc(
            output / f"roc-{record.name}.png",
            {ATTACK_TITLES[name]: result for name, result in record.audit.attacks.items()},
            title=f"{record.name}: membership inference on its training {description.examples}",
        )
    _plot_roc(
        output / "roc-comparison.png",
        {record.name: record.audit.attacks[HEADLINE_ATTACK] for record in records},
        title=f"{ATTACK_TITLES[HEADLINE_ATTACK]} against each fine-tuning",
    )
    report = render_report(records, result, description, metadata)
    atomic_write(output / "REPORT.md", lambda temporary: temporary.write_text(report))
    return result


def render_report(
    records: Sequence[VariantRecord],
    result: Mapping[str, Any],
    description: StudyDescription,
    metadata: Mapping[str, Any],
) -> str:
    """REPORT.md: the set-up, the comparison table, every attack, the DP audit, what it means."""
    config = metadata["config"]
    non_members = config["models"] * config["population"] // 2
    example, examples = description.example, description.examples
    lines = [
        f"# {description.title}",
        "",
        description.setup,
        "",
        "## Utility and leakage",
        "",
        f"Attack: {ATTACK_TITLES[HEADLINE_ATTACK]}. Attack success is the best balanced accuracy "
        f"over thresholds; TPR at a low FPR is how many training {examples} the attacker names "
        "with "
        "few false accusations, the number that matters for privacy. With "
        f"{non_members:,} non-member pairs the smallest FPR measured is {1 / non_members:.2%}: "
        "a TPR at a lower FPR is the TPR at zero false positives.",
        "",
        f"| variant | {description.utility_name} | accountant epsilon | attack success "
        "| ROC AUC | TPR @ 0.1% FPR | TPR @ 1% FPR |",
        "|---|---|---|---|---|---|---|",
    ]
    if description.reference_model is not None:
        name, utility = description.reference_model
        lines.append(f"| {name} | {utility:.3f} | - | - | - | - | - |")
    for record in records:
        entry = result["variants"][record.name]
        attack = entry["attacks"][HEADLINE_ATTACK]
        lines.append(
            f"| {record.name} | {entry['utility'][description.utility_key]:.3f} | "
            f"{_epsilon(entry['accountant_epsilon'])} | "
            f"{attack['attack_success']:.1%} | {attack['roc_auc']:.3f} | "
            f"{attack['tpr_at_0.1%_fpr']:.1%} | {attack['tpr_at_1%_fpr']:.1%} |"
        )
    lines += ["", "## Every attack", "", "ROC AUC / attack success / TPR at 1% FPR.", ""]
    names = [record.name for record in records]
    lines += ["| attack | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    present = [a for a in ATTACKS if any(a in result["variants"][n]["attacks"] for n in names)]
    for attack in present:
        cells = []
        for name in names:
            metrics = result["variants"][name]["attacks"].get(attack)
            cells.append(
                "-"
                if metrics is None
                else f"{metrics['roc_auc']:.3f} / {metrics['attack_success']:.1%} / "
                f"{metrics['tpr_at_1%_fpr']:.1%}"
            )
        lines.append(f"| {ATTACK_TITLES[attack]} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## DP audit with canaries",
        "",
        f"An empirical lower bound on epsilon by the {AUDIT_METHOD}. The first half of each "
        "variant's copies are references, holding each canary in about half of them; in the "
        "other (audited) copies each canary is in or out by its own fair coin. "
        f"{ATTACK_TITLES[AUDIT_ATTACK]} scores every audited (copy, canary) membership against "
        "the references alone, so no guess reads an audited coin; the surest guesses are "
        "counted and the bound is the largest epsilon that could not have produced that many "
        "right guesses (their theorem; Bonferroni over the numbers of guesses tried). It is "
        "what the attack proves at least leaks; the accountant's epsilon is what DP-SGD "
        "guarantees at most.",
        "",
        "| variant | canaries | audited copies | coins | right guesses | "
        "empirical epsilon (lower bound) | accountant epsilon |",
        "|---|---|---|---|---|---|---|",
    ]
    for record in records:
        audit = result["variants"][record.name]["canary_audit"]
        if audit is not None:
            lines.append(
                f"| {record.name} | {audit['canaries']} | {audit['audited_copies']} | "
                f"{audit['coins']} | {audit['correct_guesses']} of {audit['guesses']} | "
                f">= {audit['epsilon_lower_bound']:.2f} ({audit['confidence']:.0%} confidence) | "
                f"{_epsilon(audit['accountant_epsilon'])} |"
            )
    lines += ["", "## What it shows", "", *_findings(result, examples), "", "## Files", ""]
    lines += [
        "- `comparison.json`: the numbers above; `metadata.json`: the run's parameters.",
        f"- `scores-<variant>.csv`: every (model, {example}) pair's loss (NLL) and every "
        "attack's score; on canaries, the audit's score and guess (`in`, `out`, `abstain`; "
        "none on reference copies).",
        "- `roc-<variant>.png`, `roc-comparison.png`: ROC curves on log-log axes.",
        "",
    ]
    return "\n".join(lines)


def _findings(result: Mapping[str, Any], examples: str) -> list[str]:
    variants = result["variants"]
    tpr = {
        name: entry["attacks"][HEADLINE_ATTACK]["tpr_at_1%_fpr"] for name, entry in variants.items()
    }
    success = {
        name: entry["attacks"][HEADLINE_ATTACK]["attack_success"]
        for name, entry in variants.items()
    }
    ordered = sorted(tpr, key=tpr.__getitem__, reverse=True)
    lines = [
        "- At 1% FPR the attacker names "
        + ", ".join(f"{tpr[name]:.1%} of {name}'s training {examples}" for name in ordered)
        + f" (leaking most to least: {' > '.join(ordered)}).",
        "- Attack success (balanced accuracy): "
        + ", ".join(f"{name} {success[name]:.1%}" for name in variants)
        + " (50% is guessing).",
    ]
    for name, entry in variants.items():
        audit = entry["canary_audit"]
        if audit is not None and audit["accountant_epsilon"] is not None:
            holds = audit["epsilon_lower_bound"] <= audit["accountant_epsilon"]
            lines.append(
                f"- {name}: the audit's lower bound {audit['epsilon_lower_bound']:.2f} "
                f"{'stays below' if holds else 'EXCEEDS'} the accountant's epsilon "
                f"{audit['accountant_epsilon']:.2f}"
                + ("." if holds else ": the DP training or its accounting is broken.")
            )
    return lines


def _write_scores(
    path: Path,
    record: VariantRecord,
    reference: np.ndarray | None,
    masks: np.ndarray,
    population: int,
    *,
    example: str,
) -> None:
    attacks = list(record.audit.scores)
    audit = record.audit.canary_audit

    def canary_cells(model: int, column: int) -> list[str]:
        canary = column - population
        if audit is None or canary < 0 or np.isnan(audit.scores[model, canary]):
            return ["", ""]
        guess = int(audit.guess[model, canary])
        return [f"{audit.scores[model, canary]:.6f}", _GUESS_NAMES[guess]]

    def write(temporary: Path) -> None:
        with temporary.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(
                ["model", "example", "kind", "member", "nll", "reference_nll", *attacks,
                 "canary_score", "canary_guess"]
            )  # fmt: skip
            for outcome in record.outcomes:
                for column, nll in enumerate(outcome.audit_nll):
                    on_population = column < population
                    writer.writerow(
                        [
                            outcome.index,
                            column,
                            example if on_population else "canary",
                            int(masks[outcome.index, column]),
                            f"{nll:.6f}",
                            "" if reference is None else f"{reference[column]:.6f}",
                            *(
                                f"{record.audit.scores[a][outcome.index, column]:.6f}"
                                if on_population
                                else ""
                                for a in attacks
                            ),
                            *canary_cells(outcome.index, column),
                        ]
                    )

    atomic_write(path, write)


def _plot_roc(path: Path, curves: Mapping[str, Any], *, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5.5, 5))
    floor = 1e-4
    for label, result in curves.items():
        axis.plot(
            np.maximum(result.fpr, floor),
            np.maximum(result.tpr, floor),
            label=f"{label} (AUC {result.metrics.roc_auc:.2f}, "
            f"TPR@1% {result.metrics.tpr_at_fpr[LOW_FPRS[1]]:.1%})",
        )
    axis.plot([floor, 1], [floor, 1], linestyle="--", color="grey", label="guessing")
    axis.set(xscale="log", yscale="log", xlim=(floor, 1), ylim=(floor, 1.05))
    axis.set(xlabel="false positive rate", ylabel="true positive rate", title=title)
    axis.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    atomic_write(path, lambda temporary: figure.savefig(temporary, format="png", dpi=120))
    plt.close(figure)


def _tpr_key(fpr: float) -> str:
    return f"tpr_at_{fpr:.1%}_fpr".replace(".0%", "%")


def _epsilon(value: float | None) -> str:
    return "- (no DP)" if value is None else f"{value:.2f}"
