"""The self-calibrating alignment-loss pruner and the refine median rule."""

from __future__ import annotations

import math

import numpy as np
import pytest
from optuna.trial import TrialState

from orca_automl.config import OrcaConfig
from orca_automl.search import (
    AlignLossPruner,
    PruneKind,
    RefineMedianPruner,
    Stage,
    TrialMonitor,
    TrialPlan,
    TrialRecord,
    TrialResult,
    alignment_group,
    pruners,
)

MMD = OrcaConfig().with_overrides({"model.backbone": "minilm", "align.metric": "mmd"})
OTDD = OrcaConfig().with_overrides({"model.backbone": "minilm"})
MMD_GROUP = str(alignment_group(MMD))


def _record(number: int, loss: float | None, score: float | None, config: OrcaConfig = MMD,
            state: TrialState = TrialState.COMPLETE, stage: Stage = Stage.SHORT,
            curve: tuple[tuple[int, float], ...] = ()) -> TrialRecord:
    return TrialRecord(
        number=number, state=state, params={}, distributions={},
        values=(score, 1.0) if score is not None else None, started=None,
        plan=TrialPlan(stage, config=config),
        result=TrialResult(final_align_loss=loss, val_curve=curve),
    )


def test_groups_compare_like_with_like() -> None:
    assert alignment_group(MMD) != alignment_group(OTDD)
    random_weights = MMD.with_overrides({"model.pretrained": False})
    assert alignment_group(random_weights) != alignment_group(MMD)
    other_reference = MMD.with_overrides({"model.backbone_args": {"reference": "mine.npz"}})
    assert alignment_group(other_reference) != alignment_group(MMD)
    label_term = MMD.with_overrides({"align.label_weight": 0.5})  # it ends at another distance
    assert alignment_group(label_term) != alignment_group(MMD)
    assert alignment_group(MMD.with_overrides({"align.metric": "none"})) is None


def test_no_pruning_without_enough_evidence() -> None:
    pruner = AlignLossPruner(min_trials=5)
    records = [_record(i, 1.0 + i, 0.9 - 0.1 * i) for i in range(4)]
    evidence = pruner.evidence(records)
    (found,) = evidence.values()
    assert found.trials == 4 and found.loss_threshold is None and found.prune_fraction == 0.0
    assert pruner.rule(MMD, evidence) is None


def test_no_pruning_when_loss_does_not_predict_score() -> None:
    pruner = AlignLossPruner(min_trials=5)
    positive = [_record(i, 1.0 + i, 0.5 + 0.05 * i) for i in range(10)]  # worse loss, better score
    found = pruner.evidence(positive)[MMD_GROUP]
    assert found.spearman_rho == pytest.approx(1.0)
    assert pruner.rule(MMD, pruner.evidence(positive)) is None
    weak = [_record(i, float(i), [0.6, 0.9, 0.5, 0.8, 0.7, 0.6, 0.9, 0.5][i]) for i in range(8)]
    assert pruner.rule(MMD, pruner.evidence(weak)) is None


def test_strong_correlation_prunes_the_worst_aligned_and_records_why() -> None:
    pruner = AlignLossPruner(min_trials=5, max_fraction=0.5)
    records = [_record(i, 1.0 + i, 0.95 - 0.05 * i) for i in range(10)]
    records.append(_record(10, 2.0, 0.99, config=OTDD))  # another group: not evidence here
    records.append(_record(11, 20.0, None, state=TrialState.PRUNED))  # no score: not evidence
    evidence = pruner.evidence(records)
    found = evidence[MMD_GROUP]
    assert found.trials == 10
    assert found.spearman_rho == pytest.approx(-1.0)
    assert found.p_value is not None and found.p_value < 0.01
    assert found.prune_fraction == pytest.approx(0.5)
    assert found.loss_threshold == pytest.approx(5.5)  # the median loss of 1..10
    assert found.to_attr()["loss_threshold"] == found.loss_threshold
    rule = pruner.rule(MMD, evidence)
    assert rule is not None
    assert rule.reason(3.0) is None
    reason = rule.reason(8.0)
    assert reason is not None and reason.kind == PruneKind.ALIGNMENT
    assert "Spearman rho=-1.00" in reason.message and "8 > 5.5" in reason.message
    assert rule.reason(math.nan) is not None
    assert pruner.rule(OTDD, evidence) is None  # one trial in that group


def test_pruning_never_cuts_below_a_winners_loss() -> None:
    pruner = AlignLossPruner(min_trials=5, alpha=0.2, max_fraction=0.5, guard_top=0.1)
    losses = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]
    scores = [0.90, 0.85, 0.80, 0.75, 0.70, 0.65, 0.60, 0.55, 0.50, 0.95]  # the best had loss 10
    found = pruner.evidence([_record(i, loss, score) for i, (loss, score)
                             in enumerate(zip(losses, scores, strict=True))])
    (evidence,) = found.values()
    assert evidence.spearman_rho == pytest.approx(-0.4545, abs=1e-3)
    assert evidence.prune_fraction > 0  # the correlation is significant at alpha=0.2 ...
    assert evidence.loss_threshold == 10.0  # ... but a trial with loss 10 won: nothing is cut


def test_prune_fraction_follows_the_strength_of_the_evidence() -> None:
    pruner = AlignLossPruner(min_trials=5, alpha=0.2, max_fraction=0.5, guard_top=0.0)
    scores = [0.9, 0.8, 0.85, 0.7, 0.75, 0.6, 0.65, 0.5, 0.55, 0.4]  # rho about -0.94
    (evidence,) = pruner.evidence([_record(i, float(i), s) for i, s in enumerate(scores)]).values()
    rho = evidence.spearman_rho
    assert rho is not None and -1.0 < rho < -0.8
    assert evidence.prune_fraction == pytest.approx(0.5 * -rho)


def test_refine_median_rule() -> None:
    curves = [((10, 0.5), (20, 0.7), (30, 0.8)), ((10, 0.6), (20, 0.6), (30, 0.9)),
              ((10, 0.4), (20, 0.8), (30, 0.85)), ((10, 0.7), (20, 0.75), (30, 0.8))]
    records = [_record(i, None, 0.8, curve=c) for i, c in enumerate(curves)]
    pruner = RefineMedianPruner(min_trials=4, start_fraction=0.3)
    assert pruner.rule(40, records[:3]) is None
    rule = pruner.rule(40, records)
    assert rule is not None and rule.start_step == 12 and rule.last_step == 40
    assert rule.reason(10, 0.1) is None  # too early
    assert rule.reason(20, 0.74) is None  # median of best-so-far at 20 is 0.725
    reason = rule.reason(20, 0.70)
    assert reason is not None and reason.kind == PruneKind.MEDIAN and "median" in reason.message
    assert rule.reason(40, 0.1) is None  # the last step: stopping saves nothing


def test_monitor_stops_and_keeps_the_reason() -> None:
    pruner = AlignLossPruner(min_trials=5)
    evidence = pruner.evidence([_record(i, 1.0 + i, 0.95 - 0.05 * i) for i in range(10)])
    monitor = TrialMonitor(pruner.rule(MMD, evidence), None)
    assert monitor.align_finished([9.0, 4.0])
    assert monitor.reason is None
    assert not monitor.align_finished([9.0, 9.5])
    assert monitor.reason is not None and monitor.reason.kind == PruneKind.ALIGNMENT
    quiet = TrialMonitor(None, None)
    assert quiet.align_finished([1.0]) and quiet.evaluated(5, 0.5)
    assert quiet.val_curve == [(5, 0.5)]


@pytest.mark.parametrize(("mode", "align_on", "refine_on"),
                         [("all", True, True), ("refine", False, True), ("off", False, False)])
def test_disabled_pruners_keep_the_evidence_but_prune_nothing(
    mode: str, align_on: bool, refine_on: bool
) -> None:
    align, refine, folds = pruners(mode)
    assert folds.enabled is (mode == "all")
    records = [_record(i, 1.0 + i, 0.95 - 0.05 * i, curve=((10, 0.5), (20, 0.9 - 0.1 * i)))
               for i in range(10)]
    evidence = align.evidence(records)
    assert evidence[MMD_GROUP].loss_threshold is not None  # strong evidence either way
    assert (align.rule(MMD, evidence) is not None) is align_on
    assert (refine.rule(40, records) is not None) is refine_on


def test_the_fold_rules_signed_rank_p_is_scipys() -> None:
    """The vectorised exact test used with ties or zeros among at most 13 differences gives
    SciPy's own p-value (which runs it one sign flip at a time); other cases are SciPy's call."""
    from scipy import stats

    from orca_automl.search._pruning import signed_rank_p

    rng = np.random.default_rng(0)
    cases = [np.array([1.0, 1.0, 1.0, 2.0, 2.0, 0.0, 0.0, -1.0, -1.0, 3.0, 3.0, 1.0, 2.0])]
    for n in (8, 11, 14, 30):
        cases += [rng.integers(-2, 3, n).astype(float), rng.normal(size=n),
                  np.round(rng.normal(size=n), 1), np.r_[np.zeros(3), rng.normal(size=n - 3)]]
    for d in cases:
        if d.any():
            expected = float(stats.wilcoxon(d, alternative="greater").pvalue)
            assert signed_rank_p(d) == pytest.approx(expected, rel=1e-12, abs=1e-15), d
