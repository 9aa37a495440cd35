"""The search: budgeted Optuna studies whose trials run on Ray, with alignment-loss pruning,
promotion of the best configurations to full training, and resumable state.

`run_search(SearchOptions(...))` is the entry point (`orca-search` is a thin face over it);
the pieces below are public so each can be used and tested alone. Nothing here prints or
parses arguments: a running search reports through a `SearchCallback`.

Example:
    >>> from orca_automl.search import SearchOptions, parse_budget, run_search
    >>> parse_budget("20cpu-minutes").seconds
    1200.0
    >>> result = run_search(SearchOptions(task="gunpoint", budget="10cpu-minutes"))  # doctest: +SKIP
"""

from orca_automl.config import Stage
from orca_automl.search._budget import Budget, BudgetLedger, format_seconds, parse_budget
from orca_automl.search._callbacks import Resumed, SearchCallback, SearchStart, Snapshot
from orca_automl.search._ensemble import greedy_weights
from orca_automl.search._executor import (
    ExecutionPlan,
    Executor,
    RayExecutor,
    RunKey,
    check_resources,
    ray_execution,
)
from orca_automl.search._folds import CombinedRuns, combine_runs
from orca_automl.search._loop import LoopSettings, SearchFailed, SearchLoop
from orca_automl.search._promotion import Promotion, full_cost_estimate, select_promotions
from orca_automl.search._pruning import (
    PRUNING_MODES,
    AlignLossPruner,
    AlignmentEvidence,
    AlignPruneRule,
    FoldPruner,
    RefineMedianPruner,
    RefinePruneRule,
    TrialMonitor,
    alignment_group,
    pruners,
)
from orca_automl.search._records import (
    PruneKind,
    PruneReason,
    RunLog,
    StudyKey,
    TrialPlan,
    TrialRecord,
    TrialResult,
    from_attrs,
    short_value,
    summarize,
    to_attrs,
)
from orca_automl.search._resume import (
    check_resumable,
    fresh_study_name,
    pending_retries,
    reconcile_interrupted,
)
from orca_automl.search._runner import (
    REFIT,
    CycleRunner,
    FoldSpec,
    TrialOutcome,
    TrialRequest,
    TrialRunner,
    execute_trial,
    pack_folder,
)
from orca_automl.search._search import (
    SAMPLERS,
    Execution,
    SearchOptions,
    SearchResult,
    run_search,
)
from orca_automl.search._sessions import Session, begin_session, end_session
from orca_automl.search._space import Condition, Param, PromotionSettings, SearchSpace
from orca_automl.search._space_file import (
    available_spaces,
    load_space,
    parse_space,
    resolve_space,
)
from orca_automl.search._storage import (
    StoredPredictions,
    StudyHandle,
    check_storage_url,
    check_study_name,
    default_storage_url,
    on_rows,
    read_existing,
    redact_url,
    shared_validation_rows,
    study_folder,
)
from orca_automl.search._toolkit import Toolkit, cycle_toolkit, engine_choices
from orca_automl.search._validation import AUTO_CV_BELOW, Validation, parse_validation
from orca_automl.search._winner import (
    Comparison,
    WinnerDecision,
    decide_winner,
    paired_bootstrap,
)

__all__ = [
    "AUTO_CV_BELOW",
    "PRUNING_MODES",
    "SAMPLERS",
    "AlignLossPruner",
    "AlignPruneRule",
    "AlignmentEvidence",
    "Budget",
    "BudgetLedger",
    "Comparison",
    "Condition",
    "CombinedRuns",
    "CycleRunner",
    "Execution",
    "FoldSpec",
    "REFIT",
    "ExecutionPlan",
    "FoldPruner",
    "Executor",
    "LoopSettings",
    "Param",
    "Promotion",
    "PromotionSettings",
    "PruneKind",
    "PruneReason",
    "RayExecutor",
    "RunKey",
    "RefineMedianPruner",
    "RefinePruneRule",
    "Resumed",
    "RunLog",
    "SearchCallback",
    "SearchFailed",
    "SearchLoop",
    "SearchOptions",
    "SearchResult",
    "SearchSpace",
    "SearchStart",
    "Session",
    "Snapshot",
    "Stage",
    "StoredPredictions",
    "StudyHandle",
    "StudyKey",
    "Toolkit",
    "TrialMonitor",
    "TrialOutcome",
    "TrialPlan",
    "TrialRecord",
    "TrialRequest",
    "TrialResult",
    "TrialRunner",
    "Validation",
    "WinnerDecision",
    "alignment_group",
    "available_spaces",
    "begin_session",
    "check_resources",
    "check_resumable",
    "check_storage_url",
    "check_study_name",
    "combine_runs",
    "cycle_toolkit",
    "decide_winner",
    "default_storage_url",
    "end_session",
    "engine_choices",
    "execute_trial",
    "format_seconds",
    "fresh_study_name",
    "from_attrs",
    "full_cost_estimate",
    "greedy_weights",
    "load_space",
    "pack_folder",
    "paired_bootstrap",
    "parse_budget",
    "parse_space",
    "parse_validation",
    "pending_retries",
    "pruners",
    "ray_execution",
    "on_rows",
    "read_existing",
    "reconcile_interrupted",
    "redact_url",
    "resolve_space",
    "run_search",
    "select_promotions",
    "shared_validation_rows",
    "short_value",
    "study_folder",
    "summarize",
    "to_attrs",
]
