"""The search: budgeted Optuna studies whose trials run on Ray, with alignment-loss pruning,
promotion of the best configurations to full training, and resumable state.

`orca-search` (in `_command`) is the product; the pieces below are public so that a Python
user can run the same search, and so each can be tested alone.

Example:
    >>> from orca_automl.search import parse_budget, SearchSpace
    >>> parse_budget("20cpu-minutes").seconds
    1200.0
    >>> space = SearchSpace.load("cpu-small")                 # doctest: +SKIP
"""

from orca_automl.search._budget import Budget, BudgetLedger, format_seconds, parse_budget
from orca_automl.search._command import build_parser, main, search
from orca_automl.search._executor import (
    ExecutionPlan,
    Executor,
    RayExecutor,
    check_resources,
    ray_execution,
)
from orca_automl.search._loop import LoopSettings, SearchFailed, SearchLoop
from orca_automl.search._progress import Progress, Snapshot, describe_trial, winners_table
from orca_automl.search._promotion import Promotion, full_cost_estimate, select_promotions
from orca_automl.search._pruning import (
    AlignLossPruner,
    AlignmentEvidence,
    AlignPruneRule,
    RefineMedianPruner,
    RefinePruneRule,
    TrialMonitor,
    alignment_group,
)
from orca_automl.search._records import TrialRecord
from orca_automl.search._runner import (
    CycleRunner,
    RunReport,
    Toolkit,
    TrialOutcome,
    TrialRequest,
    TrialRunner,
    cycle_toolkit,
    execute_trial,
)
from orca_automl.search._space import Condition, Param, PromotionSettings, SearchSpace
from orca_automl.search._storage import (
    Session,
    StudyHandle,
    begin_session,
    check_resumable,
    check_storage_url,
    default_storage_url,
    end_session,
    read_existing,
    reconcile_interrupted,
    study_folder,
)

__all__ = [
    "AlignLossPruner",
    "AlignPruneRule",
    "AlignmentEvidence",
    "Budget",
    "BudgetLedger",
    "Condition",
    "CycleRunner",
    "ExecutionPlan",
    "Executor",
    "LoopSettings",
    "Param",
    "Progress",
    "Promotion",
    "PromotionSettings",
    "RayExecutor",
    "RefineMedianPruner",
    "RefinePruneRule",
    "RunReport",
    "SearchFailed",
    "SearchLoop",
    "SearchSpace",
    "Session",
    "Snapshot",
    "StudyHandle",
    "Toolkit",
    "TrialMonitor",
    "TrialOutcome",
    "TrialRecord",
    "TrialRequest",
    "TrialRunner",
    "alignment_group",
    "begin_session",
    "build_parser",
    "check_resources",
    "check_resumable",
    "check_storage_url",
    "cycle_toolkit",
    "default_storage_url",
    "describe_trial",
    "end_session",
    "execute_trial",
    "format_seconds",
    "full_cost_estimate",
    "main",
    "parse_budget",
    "ray_execution",
    "read_existing",
    "reconcile_interrupted",
    "search",
    "select_promotions",
    "study_folder",
    "winners_table",
]
