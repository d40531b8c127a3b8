"""The privacy-utility frontier of a sweep, the setting to use for an epsilon budget, and the
files that show them.

A sweep's trials report once per round or epoch, and every report is a model that could be
released as it stands (the model after r rounds, with the epsilon spent in r rounds). So the
frontier is built from *all* reported points of all trials, including trials ASHA stopped
early: a trial stopped at round 2 for low utility still contributes its round-1 and round-2
models, which spent less privacy than any longer run. That is why early stopping, which
favours the trials that learn fastest, does not bias the frontier towards the high-epsilon end.

A point is on the frontier when no other point has at most its epsilon and at least its
utility with one of the two strictly better. Points with the same epsilon and utility are one
point on the frontier: the one with the lower attack TPR is kept (then the earlier trial and
step). A point without a DP guarantee (no noise) has infinite epsilon: it sits at the right end
of the frontier if nothing private matches its utility, and never fits a budget. Points whose
utility is undefined (NaN, e.g. a diverged model) are left out.

Pure functions over :class:`SweepPoint` plus writers of CSV, Markdown, JSON and a PNG; Ray-free.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from securemed.federation.results import write_json

#: the columns every trials.csv and frontier.csv row starts with (the utility and step columns
#: are named after the sweep's kind, e.g. ``auroc`` and ``round``)
METRIC_COLUMNS = ("epsilon", "tpr_at_1pct_fpr", "attack_auc")
_NICE_TICKS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)


@dataclass(frozen=True)
class SweepPoint:
    """One reported model: where it stands, and the setting that releases it.

    Attributes:
        trial: the trial's id.
        step: the round (or epoch) after which the model was reported.
        utility: AUROC or clinical F1, higher is better; NaN when undefined.
        epsilon: privacy spent so far; ``math.inf`` without a DP guarantee.
        tpr_at_1pct_fpr: the membership attack's TPR at 1 % FPR (NaN if not measured).
        attack_auc: the membership attack's ROC AUC.
        setting: the parameters that train this model: the trial's, with its length
            (``rounds`` or ``epochs``) set to ``step``.
        params: the trial's parameters as sampled (its planned length included).
        extra: any other reported values (seconds, batch size), kept for trials.csv.
    """

    trial: str
    step: int
    utility: float
    epsilon: float
    tpr_at_1pct_fpr: float = math.nan
    attack_auc: float = math.nan
    setting: Mapping[str, Any] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def private(self) -> bool:
        """Whether the point carries a finite DP guarantee."""
        return math.isfinite(self.epsilon)


def as_epsilon(value: Any) -> float:
    """A reported epsilon as a float: ``None``, NaN or a non-number mean no guarantee (inf)."""
    if value is None:
        return math.inf
    try:
        epsilon = float(value)
    except (TypeError, ValueError):
        return math.inf
    return math.inf if math.isnan(epsilon) else epsilon


def point_from_report(
    trial: str,
    params: Mapping[str, Any],
    metrics: Mapping[str, Any],
    *,
    utility: str,
    step: str,
    length: str,
) -> SweepPoint:
    """A :class:`SweepPoint` from one trial's parameters and one of its reports.

    ``utility``, ``step`` and ``length`` name the kind's metric (``auroc``), step key
    (``round``) and length parameter (``rounds``).
    """
    number = int(metrics[step])
    known = {utility, step, *METRIC_COLUMNS}
    return SweepPoint(
        trial=trial,
        step=number,
        utility=_number(metrics.get(utility)),
        epsilon=as_epsilon(metrics.get("epsilon")),
        tpr_at_1pct_fpr=_number(metrics.get("tpr_at_1pct_fpr")),
        attack_auc=_number(metrics.get("attack_auc")),
        setting={**params, length: number},
        params=dict(params),
        extra={k: v for k, v in metrics.items() if k not in known},
    )


def dominates(a: SweepPoint, b: SweepPoint) -> bool:
    """Whether ``a`` is at least as good as ``b`` in both epsilon and utility, and better in one."""
    return (
        a.epsilon <= b.epsilon
        and a.utility >= b.utility
        and (a.epsilon < b.epsilon or a.utility > b.utility)
    )


def _preference(point: SweepPoint) -> tuple[float, float, float, str, int]:
    # lowest epsilon first; at equal epsilon the best utility, then the least attackable,
    # then the earliest report (deterministic whatever order the trials finished in)
    tpr = point.tpr_at_1pct_fpr if not math.isnan(point.tpr_at_1pct_fpr) else math.inf
    return (point.epsilon, -point.utility, tpr, point.trial, point.step)


def pareto_frontier(points: Iterable[SweepPoint]) -> list[SweepPoint]:
    """The non-dominated points, from the smallest epsilon up (utility rises along it)."""
    frontier: list[SweepPoint] = []
    best = -math.inf
    for point in sorted((p for p in points if not math.isnan(p.utility)), key=_preference):
        if point.utility > best:
            frontier.append(point)
            best = point.utility
    return frontier


@dataclass(frozen=True)
class Recommendation:
    """The setting to use for an epsilon budget, or why none fits."""

    budget: float
    point: SweepPoint | None
    reason: str = ""

    def to_dict(self, *, utility: str, step: str) -> dict[str, Any]:
        if self.point is None:
            return {"budget": self.budget, "fits": False, "reason": self.reason}
        point = self.point
        return {
            "budget": self.budget,
            "fits": True,
            utility: point.utility,
            "epsilon": point.epsilon,
            "tpr_at_1pct_fpr": _json_number(point.tpr_at_1pct_fpr),
            "attack_auc": _json_number(point.attack_auc),
            "trial": point.trial,
            step: point.step,
            "setting": dict(point.setting),
        }


def recommend(points: Iterable[SweepPoint], budgets: Sequence[float]) -> list[Recommendation]:
    """For each budget, the best-utility point whose epsilon is at most the budget.

    Ties in utility go to the smaller epsilon, then the lower attack TPR; that is the frontier
    point with the largest epsilon within the budget. A budget nothing fits says so and names
    the smallest epsilon the sweep reached.
    """
    frontier = pareto_frontier(points)
    private = [p.epsilon for p in frontier if p.private]
    recommendations = []
    for budget in budgets:
        fitting = [p for p in frontier if p.epsilon <= budget]
        if fitting:
            recommendations.append(Recommendation(budget=float(budget), point=fitting[-1]))
            continue
        if private:
            reason = (
                f"no reported model has epsilon <= {budget:g}; the smallest reached is "
                f"{min(private):.3g}: search larger noise multipliers, lower sampling rates or "
                "fewer rounds"
            )
        else:
            reason = "no reported model carries a DP guarantee (or none reported a utility)"
        recommendations.append(Recommendation(budget=float(budget), point=None, reason=reason))
    return recommendations


# -- files -----------------------------------------------------------------------------------


def write_points_csv(
    path: Path,
    points: Sequence[SweepPoint],
    *,
    utility: str,
    step: str,
    on_frontier: set[tuple[str, int]] | None = None,
    trial_notes: Mapping[str, Mapping[str, Any]] | None = None,
) -> None:
    """Every point as a row: trial, step, utility, epsilon, attack metrics, the trial's
    parameters (``param_*``, as sampled), any per-trial notes and the other reported values."""
    param_names = _ordered_keys(p.params for p in points)
    extra_names = _ordered_keys(p.extra for p in points)
    note_names = _ordered_keys((trial_notes or {}).values())
    header = ["trial", step, utility, *METRIC_COLUMNS]
    if on_frontier is not None:
        header.append("on_frontier")
    header += [*note_names, *(f"param_{n}" for n in param_names), *extra_names]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for p in points:
            row: list[Any] = [p.trial, p.step, p.utility, p.epsilon, p.tpr_at_1pct_fpr]
            row.append(p.attack_auc)
            if on_frontier is not None:
                row.append((p.trial, p.step) in on_frontier)
            notes = (trial_notes or {}).get(p.trial, {})
            row += [notes.get(n, "") for n in note_names]
            row += [p.params.get(n, "") for n in param_names]
            row += [p.extra.get(n, "") for n in extra_names]
            writer.writerow(row)


def frontier_table(
    frontier: Sequence[SweepPoint], *, utility: str, step: str, setting_keys: Sequence[str]
) -> str:
    """The frontier as a Markdown table: epsilon, utility, attack TPR and the setting."""
    head = ["epsilon", utility, "TPR@1%FPR", "attack AUC", *setting_keys, "trial"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for p in frontier:
        cells = [
            _fmt_epsilon(p.epsilon),
            f"{p.utility:.3f}",
            _fmt(p.tpr_at_1pct_fpr),
            _fmt(p.attack_auc),
            *(_fmt_setting(p.setting.get(key)) for key in setting_keys),
            f"{p.trial} ({step} {p.step})",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def recommendations_table(recommendations: Sequence[Recommendation], *, utility: str) -> str:
    """One line per budget: the recommended point, or why none fits."""
    lines = [
        f"| epsilon budget | {utility} | epsilon | TPR@1%FPR | setting |",
        "|---|---|---|---|---|",
    ]
    for r in recommendations:
        if r.point is None:
            lines.append(f"| {r.budget:g} | none fits | - | - | {r.reason} |")
            continue
        setting = ", ".join(f"{k} {_fmt_setting(v)}" for k, v in r.point.setting.items())
        lines.append(
            f"| {r.budget:g} | {r.point.utility:.3f} | {_fmt_epsilon(r.point.epsilon)} | "
            f"{_fmt(r.point.tpr_at_1pct_fpr)} | {setting} |"
        )
    return "\n".join(lines) + "\n"


def plot_frontier(
    points: Sequence[SweepPoint],
    frontier: Sequence[SweepPoint],
    path: Path,
    *,
    utility: str,
    budgets: Sequence[float] = (),
    title: str = "",
) -> None:
    """Utility against epsilon (log scale): every point grey, the frontier highlighted, the
    budgets as dotted lines, and a model without DP as a dashed line (its epsilon is infinite)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    figure, axes = plt.subplots(figsize=(7, 4.5))
    private = [p for p in points if 0 < p.epsilon < math.inf and not math.isnan(p.utility)]
    axes.scatter(
        [p.epsilon for p in private],
        [p.utility for p in private],
        s=14,
        color="0.65",
        label="every reported model",
    )
    curve = [p for p in frontier if 0 < p.epsilon < math.inf]
    if curve:
        axes.step(
            [p.epsilon for p in curve],
            [p.utility for p in curve],
            where="post",
            color="tab:red",
            linewidth=1.5,
        )
        axes.scatter(
            [p.epsilon for p in curve],
            [p.utility for p in curve],
            s=36,
            color="tab:red",
            zorder=3,
            label="Pareto frontier",
        )
    # a log axis has no room for epsilon 0 (a model that saw no private data) or infinity (no
    # DP): each is drawn as a horizontal line at its best utility
    free = [p.utility for p in points if p.epsilon == 0 and not math.isnan(p.utility)]
    if free:
        axes.axhline(
            max(free), color="tab:green", linestyle="-.", linewidth=1, label="epsilon 0 (start)"
        )
    unbounded = [p.utility for p in points if not p.private and not math.isnan(p.utility)]
    if unbounded:
        axes.axhline(max(unbounded), color="0.3", linestyle="--", linewidth=1, label="no DP (best)")
    for index, budget in enumerate(budgets):
        label = "epsilon budgets" if index == 0 else None
        axes.axvline(budget, color="tab:blue", linestyle=":", linewidth=0.8, label=label)
    if private:
        axes.set_xscale("log")
        epsilons = [p.epsilon for p in private]
        low, high = min(epsilons), max([*epsilons, *budgets])
        ticks = sorted({*_NICE_TICKS, *budgets})
        axes.set_xticks([t for t in ticks if low / 1.5 <= t <= high * 1.5])
        axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        axes.xaxis.set_minor_formatter(NullFormatter())
    axes.set_xlabel("epsilon (record level)")
    axes.set_ylabel(utility)
    if title:
        axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


@dataclass(frozen=True)
class FrontierFiles:
    """What :func:`write_frontier_outputs` wrote and found."""

    frontier: list[SweepPoint]
    recommendations: list[Recommendation]
    table: str
    recommendations_table: str


def write_frontier_outputs(
    output: Path,
    points: Sequence[SweepPoint],
    *,
    utility: str,
    step: str,
    setting_keys: Sequence[str],
    budgets: Sequence[float],
    trial_notes: Mapping[str, Mapping[str, Any]] | None = None,
    title: str = "",
) -> FrontierFiles:
    """Write trials.csv, frontier.csv, frontier.md, frontier.png and recommendation.json."""
    frontier = pareto_frontier(points)
    chosen = recommend(points, budgets)
    on_frontier = {(p.trial, p.step) for p in frontier}
    write_points_csv(
        output / "trials.csv",
        points,
        utility=utility,
        step=step,
        on_frontier=on_frontier,
        trial_notes=trial_notes,
    )
    write_points_csv(output / "frontier.csv", frontier, utility=utility, step=step)
    table = frontier_table(frontier, utility=utility, step=step, setting_keys=setting_keys)
    advice = recommendations_table(chosen, utility=utility)
    (output / "frontier.md").write_text(
        f"# {title or 'Privacy-utility frontier'}\n\n"
        f"{len(frontier)} of {len(points)} reported models are on the frontier (no other has "
        f"at most their epsilon and at least their {utility}).\n\n"
        f"{table}\n## Recommended settings by epsilon budget\n\n{advice}"
    )
    plot_frontier(
        points, frontier, output / "frontier.png", utility=utility, budgets=budgets, title=title
    )
    write_json(
        output / "recommendation.json",
        json_safe(
            {
                "utility": utility,
                "recommendations": [r.to_dict(utility=utility, step=step) for r in chosen],
            }
        ),
    )
    return FrontierFiles(frontier, chosen, table, advice)


# -- formatting helpers ----------------------------------------------------------------------


def _number(value: Any) -> float:
    try:
        return math.nan if value is None else float(value)
    except (TypeError, ValueError):
        return math.nan


def _json_number(value: float) -> float | None:
    return value if math.isfinite(value) else None


def json_safe(value: Any) -> Any:
    """The value with NaN and infinities (not JSON) as null, ready for :func:`write_json`."""
    if isinstance(value, float):
        return _json_number(value)
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def _ordered_keys(mappings: Iterable[Mapping[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for mapping in mappings:
        seen.update(dict.fromkeys(mapping))
    return list(seen)


def _fmt(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.3f}"


def _fmt_epsilon(value: float) -> str:
    return f"{value:.2f}" if math.isfinite(value) else "inf (no DP)"


def _fmt_setting(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return "" if value is None else str(value)
