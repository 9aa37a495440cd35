"""When to stop a trial early: on its alignment loss (before refine), or on its validation score.

The search is multi-objective, so Optuna's pruners do not apply; the driver decides here and
tells Optuna PRUNED with the reason. Both rules are computed by the driver from the finished
trials in the study and shipped, as small frozen snapshots, with each trial it launches; the
worker applies them through a `TrialMonitor`.

Alignment pruning calibrates itself. Alignment losses are comparable only like with like
(same backbone and weights, same reference data, same distance), so trials are grouped. Within
a group, the Spearman rank correlation between final alignment loss and validation score of
the finished trials says how well the loss predicts the outcome. With too few trials, no
significant negative correlation, or none at all, nothing is pruned; otherwise the worst-aligned
fraction `max_fraction * |rho|` is pruned, and never a loss as low as that of one of the
group's best trials. The evidence is recorded on the study (user attr `pruning_evidence`).
"""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from optuna.trial import TrialState

from orca_automl.config import OrcaConfig, Stage
from orca_automl.search._records import PruneKind, PruneReason, TrialRecord


def alignment_group(config: OrcaConfig) -> str | None:
    """The like-for-like key of a trial's alignment loss (None when it does not align).

    Example:
        >>> from orca_automl.config import OrcaConfig
        >>> alignment_group(OrcaConfig().with_overrides({"model.backbone": "minilm"}))
        'minilm | otdd_gaussian | 2000 reference samples'
    """
    model, align = config.model, config.align
    if align.metric == "none" or align.steps == 0:
        return None
    body = str(model.backbone)
    if model.backbone_args:
        body += json.dumps(model.backbone_args, sort_keys=True)
    if not model.pretrained:
        body += " (random weights)"
    metric = str(align.metric)
    if align.metric_args:
        metric += json.dumps(align.metric_args, sort_keys=True)
    if align.label_weight > 0:  # a label term moves the distance it ends at by design
        metric += f" + label term {align.label_weight:g}"
    return " | ".join([body, metric, f"{align.source_samples} reference samples"])


@dataclass(frozen=True)
class AlignmentEvidence:
    """How well final alignment loss predicted validation score in one group."""

    group: str
    trials: int
    spearman_rho: float | None
    p_value: float | None
    prune_fraction: float
    loss_threshold: float | None

    def to_attr(self) -> dict[str, Any]:
        return {
            "trials": self.trials,
            "spearman_rho": self.spearman_rho,
            "p_value": self.p_value,
            "prune_fraction": self.prune_fraction,
            "loss_threshold": self.loss_threshold,
        }


@dataclass(frozen=True)
class AlignPruneRule:
    """Shipped with a trial: prune when its final alignment loss exceeds `threshold`."""

    evidence: AlignmentEvidence
    threshold: float

    def reason(self, final_loss: float) -> PruneReason | None:
        """Why a trial with this loss is pruned, or None to let it refine."""
        if math.isfinite(final_loss) and final_loss <= self.threshold:
            return None
        e = self.evidence
        return PruneReason(PruneKind.ALIGNMENT, (
            f"final alignment loss {final_loss:.4g} > {self.threshold:.4g}: among {e.trials} "
            f"finished '{e.group}' trials lower loss predicted higher validation score "
            f"(Spearman rho={e.spearman_rho:.2f}, p={e.p_value:.3f}), so the worst-aligned "
            f"{e.prune_fraction:.0%} are pruned before refine"
        ))


class AlignLossPruner:
    """Calibrates alignment pruning on finished short-schedule trials.

    Args:
        min_trials: finished trials a group needs before its evidence is tested.
        alpha: one-sided significance level of the negative rank correlation.
        max_fraction: fraction pruned at perfect correlation (|rho| = 1).
        guard_top: the best `guard_top` fraction of a group (by score, at least its best
            trial) is never out-aligned by the threshold: losses those winners had are kept.
        enabled: False keeps collecting the evidence (recorded on the study) but prunes nothing.
    """

    def __init__(
        self, min_trials: int = 5, alpha: float = 0.1, max_fraction: float = 0.5,
        guard_top: float = 0.25, enabled: bool = True,
    ) -> None:
        self.min_trials = min_trials
        self.alpha = alpha
        self.max_fraction = max_fraction
        self.guard_top = guard_top
        self.enabled = enabled

    def evidence(self, records: Iterable[TrialRecord]) -> dict[str, AlignmentEvidence]:
        """Evidence per alignment group, from COMPLETE short trials with both numbers."""
        pairs: dict[str, list[tuple[float, float]]] = defaultdict(list)
        for r in records:
            config, loss = r.plan.config, r.result.final_align_loss
            if r.plan.stage != Stage.SHORT or r.state != TrialState.COMPLETE or config is None:
                continue
            group = alignment_group(config)
            if group is None or loss is None or r.val_score is None:
                continue
            if math.isfinite(loss) and math.isfinite(r.val_score):
                pairs[group].append((loss, r.val_score))
        return {g: self._calibrate(g, p) for g, p in sorted(pairs.items())}

    def rule(
        self, config: OrcaConfig, evidence: Mapping[str, AlignmentEvidence]
    ) -> AlignPruneRule | None:
        """The rule for a trial about to start, or None when the evidence allows no pruning."""
        if not self.enabled:
            return None
        group = alignment_group(config)
        found = evidence.get(group) if group is not None else None
        if found is None or found.loss_threshold is None:
            return None
        return AlignPruneRule(found, found.loss_threshold)

    def _calibrate(self, group: str, pairs: list[tuple[float, float]]) -> AlignmentEvidence:
        losses = np.array([p[0] for p in pairs])
        scores = np.array([p[1] for p in pairs])
        if len(pairs) < self.min_trials or np.ptp(losses) == 0 or np.ptp(scores) == 0:
            return AlignmentEvidence(group, len(pairs), None, None, 0.0, None)
        from scipy import stats  # driver only: keeps trial workers' imports light

        result = stats.spearmanr(losses, scores, alternative="less")
        rho, p = float(result.statistic), float(result.pvalue)
        if not (math.isfinite(rho) and math.isfinite(p)) or rho >= 0 or p > self.alpha:
            return AlignmentEvidence(group, len(pairs), _clean(rho), _clean(p), 0.0, None)
        fraction = self.max_fraction * -rho
        threshold = float(np.quantile(losses, 1.0 - fraction))
        best = scores >= np.quantile(scores, 1.0 - self.guard_top)
        threshold = max(threshold, float(losses[best].max()))
        return AlignmentEvidence(group, len(pairs), rho, p, fraction, threshold)


@dataclass(frozen=True)
class RefinePruneRule:
    """Median stopping during refine, shipped with a trial.

    At an evaluation at refine step s (from `start_step` on, and before the last step, where
    stopping saves nothing), the trial stops when its best validation score so far is below
    the median of the best-so-far scores that the finished trials had reached by step s.
    """

    curves: tuple[tuple[tuple[int, float], ...], ...]
    start_step: int
    last_step: int
    min_trials: int

    def reason(self, step: int, best_so_far: float) -> PruneReason | None:
        if step < self.start_step or step >= self.last_step:
            return None
        reached = [max(v for s, v in c if s <= step) for c in self.curves if c and c[0][0] <= step]
        if len(reached) < self.min_trials:
            return None
        median = statistics.median(reached)
        if best_so_far >= median:
            return None
        return PruneReason(PruneKind.MEDIAN, (
            f"validation score {best_so_far:.4g} by refine step {step} is below the median "
            f"{median:.4g} that {len(reached)} finished trials had reached by then (median stopping)"
        ))


class RefineMedianPruner:
    """Builds `RefinePruneRule`s from finished short trials' validation curves.

    Args:
        min_trials: finished curves needed at a step before anything is stopped there.
        start_fraction: no stopping before this fraction of the refine steps (early scores
            are noise).
        enabled: False stops nothing.
    """

    def __init__(
        self, min_trials: int = 4, start_fraction: float = 0.3, enabled: bool = True
    ) -> None:
        self.min_trials = min_trials
        self.start_fraction = start_fraction
        self.enabled = enabled

    def rule(self, refine_steps: int, records: Iterable[TrialRecord]) -> RefinePruneRule | None:
        if not self.enabled:
            return None
        finished = (r for r in records
                    if r.plan.stage == Stage.SHORT and r.state == TrialState.COMPLETE)
        curves = tuple(
            c for c in (tuple(sorted((s, v) for s, v in r.result.val_curve if math.isfinite(v)))
                        for r in finished)
            if c
        )
        if len(curves) < self.min_trials:
            return None
        start = max(1, math.ceil(self.start_fraction * refine_steps))
        return RefinePruneRule(curves, start, refine_steps, self.min_trials)


class TrialMonitor:
    """Applies a trial's rules inside the worker and remembers why it stopped."""

    def __init__(self, align_rule: AlignPruneRule | None, refine_rule: RefinePruneRule | None) -> None:
        self.align_rule = align_rule
        self.refine_rule = refine_rule
        self.reason: PruneReason | None = None
        self.val_curve: list[tuple[int, float]] = []

    def align_finished(self, curve: list[float]) -> bool:
        """False stops the trial before refine."""
        if self.align_rule is None or not curve:
            return True
        return self._stop_if(self.align_rule.reason(curve[-1]))

    def evaluated(self, step: int, score: float) -> bool:
        """False stops refine."""
        self.val_curve.append((step, score))
        if self.refine_rule is None or not math.isfinite(score):
            return True
        best = max(v for _, v in self.val_curve if math.isfinite(v))
        return self._stop_if(self.refine_rule.reason(step, best))

    def _stop_if(self, reason: PruneReason | None) -> bool:
        self.reason = self.reason or reason
        return reason is None


def signed_rank_p(difference: np.ndarray) -> float:
    """SciPy's one-sided ("greater") Wilcoxon signed-rank p-value of paired differences.

    With ties or zeros among at most 13 differences SciPy runs the exact sign-flip
    permutation test with one Python call per flip (2^13 of them: up to 2 s, and predictions
    that saturate make equal losses common). The same test with the statistic vectorised
    gives the same p-value in milliseconds; every other case is SciPy's own call.
    """
    from scipy import stats  # driver only: keeps trial workers' imports light

    nonzero = difference[difference != 0]
    tied = len(np.unique(np.abs(nonzero))) < len(nonzero)
    if len(difference) > 13 or not (tied or len(nonzero) < len(difference)):
        return float(stats.wilcoxon(difference, alternative="greater").pvalue)
    ranks = stats.rankdata(np.abs(nonzero))  # zeros dropped, ties averaged: SciPy's "wilcox"

    def positive_rank_sum(d: np.ndarray, axis: int) -> np.ndarray:
        return np.sum(np.where(d > 0, ranks, 0.0), axis=axis)

    # a zero's sign flip changes nothing, so flipping the others alone gives the same p-value
    return float(stats.permutation_test(
        (nonzero,), positive_rank_sum, permutation_type="samples", vectorized=True,
        alternative="greater", n_resamples=np.inf).pvalue)


def _clean(value: float) -> float | None:
    return value if math.isfinite(value) else None


class FoldPruner:
    """Stops a cross-validated short trial between its folds when the folds it finished lose to
    the best short trial so far on the same samples: a one-sided Wilcoxon signed-rank test of
    the per-sample loss differences (Optuna's `WilcoxonPruner` idea, over samples; Optuna's
    pruners refuse multi-objective studies, hence this rule).

    Args:
        alpha: one-sided significance level of "the challenger's losses are larger".
        min_samples: shared samples needed before the test is trusted.
        enabled: False never stops a trial.
    """

    def __init__(self, alpha: float = 0.1, min_samples: int = 8, enabled: bool = True) -> None:
        self.alpha = alpha
        self.min_samples = min_samples
        self.enabled = enabled

    def reason(
        self, challenger: np.ndarray, incumbent: np.ndarray, incumbent_trial: int
    ) -> PruneReason | None:
        """Why to stop, given both trials' per-sample losses on the same samples, or None."""
        if not self.enabled or len(challenger) < self.min_samples:
            return None
        difference = challenger - incumbent
        if not np.any(difference):
            return None
        p = signed_rank_p(difference)
        if not math.isfinite(p) or p > self.alpha:
            return None
        return PruneReason(PruneKind.FOLDS, (
            f"on its first {len(challenger)} out-of-fold samples its loss is higher than best "
            f"trial {incumbent_trial}'s (mean {challenger.mean():.4g} vs {incumbent.mean():.4g}; "
            f"Wilcoxon one-sided p={p:.3f} <= {self.alpha}): its other folds are not run"
        ))

    def describe(self) -> str:
        if not self.enabled:
            return "off"
        return (f"between the folds of a short trial: one-sided Wilcoxon signed-rank test of "
                f"per-sample losses against the best short trial on the same samples, "
                f"p <= {self.alpha}, from {self.min_samples} samples")


#: `--pruning` modes: which rules run (the alignment evidence is recorded in every mode).
PRUNING_MODES = {
    "all": (True, True, True),  # alignment loss, median stopping, and between folds
    "refine": (False, True, False),  # median stopping only
    "off": (False, False, False),
}


def pruners(mode: str) -> tuple[AlignLossPruner, RefineMedianPruner, FoldPruner]:
    """The pruners of a `--pruning` mode."""
    align_on, refine_on, folds_on = PRUNING_MODES[mode]
    return (AlignLossPruner(enabled=align_on), RefineMedianPruner(enabled=refine_on),
            FoldPruner(enabled=folds_on))
