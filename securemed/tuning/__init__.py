"""Privacy-utility sweeps without Ray: the search space, the trial bodies and the frontier.

``jobs/sweep.py`` runs the trials under Ray Tune (ASHA early stopping); everything it runs and
everything it writes is here, so a trial or a frontier can be tested in-process in seconds.
"""

from securemed.tuning.frontier import (
    Recommendation,
    SweepPoint,
    dominates,
    pareto_frontier,
    point_from_report,
    recommend,
    write_frontier_outputs,
)
from securemed.tuning.space import (
    AshaConfig,
    ClassifierSettings,
    ClassifierSpace,
    ClassifierSweepConfig,
    Dimension,
    ReportSettings,
    ReportSpace,
    ReportSweepConfig,
    SearchSpace,
)
from securemed.tuning.trials import (
    CLASSIFIER,
    REPORT,
    ClassifierData,
    TrialKind,
    measure_report_start,
    prepare_classifier_data,
    prepare_report_start,
    run_classifier_trial,
    run_report_trial,
)

__all__ = [
    "CLASSIFIER",
    "REPORT",
    "AshaConfig",
    "ClassifierData",
    "ClassifierSettings",
    "ClassifierSpace",
    "ClassifierSweepConfig",
    "Dimension",
    "Recommendation",
    "ReportSettings",
    "ReportSpace",
    "ReportSweepConfig",
    "SearchSpace",
    "SweepPoint",
    "TrialKind",
    "dominates",
    "measure_report_start",
    "pareto_frontier",
    "point_from_report",
    "prepare_classifier_data",
    "prepare_report_start",
    "recommend",
    "run_classifier_trial",
    "run_report_trial",
    "write_frontier_outputs",
]
