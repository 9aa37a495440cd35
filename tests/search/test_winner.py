"""The winner rule: the engine default's full run stays the winner unless a challenger beats it
beyond noise (paired bootstrap on the samples both predicted), checked on synthetic
predictions with known answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from orca_automl.config import OrcaConfig
from orca_automl.search import (
    Stage,
    StoredPredictions,
    StudyHandle,
    TrialPlan,
    TrialRecord,
    TrialResult,
    baseline_leads,
    decide_winner,
    on_rows,
    paired_bootstrap,
    run_search,
)
from tests.search.fakes import (
    FakeClock,
    FakeRunner,
    FakeTask,
    fake_toolkit,
    options,
    simulated_execution,
)

TASK = FakeTask("fake-1d", size=40)


def _full(number: int, score: float, default: bool = False) -> TrialRecord:
    return TrialRecord(number=number, state=TrialState.COMPLETE, params={}, distributions={},
                       values=(score, 1.0), started=None,
                       plan=TrialPlan(Stage.FULL, config=OrcaConfig(), engine_default=default),
                       result=TrialResult(model_dir=f"winners/trial-{number}"))


def _right_on(count: int, y: np.ndarray) -> np.ndarray:
    """Probabilities that put 0.8 on the true class for the first `count` samples, on the
    wrong class for the others."""
    p = np.full((len(y), 2), 0.2)
    right = np.arange(len(y)) < count
    p[np.arange(len(y)), np.where(right, y, 1 - y)] = 0.8
    return p


def test_paired_bootstrap_of_a_constant_difference() -> None:
    difference, lower = paired_bootstrap(lambda rows: 0.25, 30, 0.9, rounds=50, seed=0)
    assert difference == lower == 0.25


def test_a_challenger_better_beyond_noise_wins_and_one_within_noise_does_not() -> None:
    y = TASK.development.y
    rows = np.arange(len(y))
    stored = {0: StoredPredictions(_right_on(24, y), rows),   # the default: 60% right
              1: StoredPredictions(_right_on(38, y), rows),   # 95% right: better beyond noise
              2: StoredPredictions(_right_on(25, y), rows)}   # one sample more: noise
    records = [_full(0, 0.6, default=True), _full(1, 0.95), _full(2, 0.625)]
    decision = decide_winner(records, lambda r: stored[r.number], TASK, confidence=0.9)
    assert decision is not None and decision.incumbent == 0 and decision.winner == 1
    by_trial = {c.trial: c for c in decision.comparisons}
    assert by_trial[1].beats and by_trial[1].difference == pytest.approx(0.35)
    assert not by_trial[2].beats and by_trial[2].difference == pytest.approx(0.025)
    assert by_trial[2].samples == 40 and by_trial[2].lower_bound <= 0
    assert "beats the default" in decision.reason(1) and "(winner)" in decision.reason(1)
    assert "not beyond noise" in decision.reason(2)
    alone = decide_winner([records[0], records[2]], lambda r: stored[r.number], TASK)
    assert alone is not None and alone.winner == 0  # the higher validation score is not enough


def _baseline(number: int, score: float) -> TrialRecord:
    return TrialRecord(number=number, state=TrialState.COMPLETE, params={}, distributions={},
                       values=(score, 0.0), started=None,
                       plan=TrialPlan(Stage.BASELINE, baseline="minirocket"),
                       result=TrialResult(model_dir=f"winners/trial-{number}"))


def test_a_baseline_validated_above_the_default_is_the_incumbent_challengers_must_beat() -> None:
    y = TASK.development.y
    rows = np.arange(len(y))
    stored = {0: StoredPredictions(_right_on(24, y), rows),   # the default: 60% right
              1: StoredPredictions(_right_on(28, y), rows),   # a baseline: 70%, just above
              2: StoredPredictions(_right_on(29, y), rows),   # a challenger: one sample more
              3: StoredPredictions(_right_on(40, y), rows),   # a challenger: all right
              4: StoredPredictions(_right_on(24, y[::-1])[::-1], rows)}  # 60%, other samples
    default, baseline = _full(0, 0.6, default=True), _baseline(1, 0.7)
    decision = decide_winner([default, baseline, _full(2, 0.725)], lambda r: stored[r.number],
                             TASK)
    # no bootstrap between the two fixed beforehand: the higher validation score holds
    assert decision is not None and (decision.incumbent, decision.default) == (1, 0)
    assert decision.winner == 1 and {c.trial for c in decision.comparisons} == {0, 2}
    assert all(c.incumbent == 1 and not c.beats for c in decision.comparisons)
    assert "a reference baseline validated at least as high as the engine default" in (
        decision.reason(1))
    beaten = decide_winner([default, baseline, _full(3, 1.0)], lambda r: stored[r.number], TASK)
    assert beaten is not None and beaten.winner == 3
    assert "beats the incumbent" in beaten.reason(3)
    # an exact tie goes to the baseline (the field's method), which then stays the winner: the
    # default, right on other samples, does not beat it beyond noise
    tie = decide_winner([default, _baseline(4, 0.6)], lambda r: stored[r.number], TASK)
    assert tie is not None and (tie.incumbent, tie.winner, tie.default) == (4, 4, 0)
    assert [(c.trial, c.beats) for c in tie.comparisons] == [(0, False)]
    assert "a reference baseline" in tie.reason(4) and "(winner)" in tie.reason(4)
    # one validated below the default leaves it the incumbent
    below = decide_winner([default, _baseline(4, 0.575)], lambda r: stored[r.number], TASK)
    assert below is not None and below.incumbent == below.winner == 0
    assert "incumbent: the engine default" in below.reason(0)


def test_a_baseline_takes_the_incumbency_at_an_equal_or_higher_validation_score() -> None:
    assert baseline_leads(0.98, 0.96) and baseline_leads(1.0, 1.0)
    assert not baseline_leads(0.975, 1.0)


def test_out_of_fold_rows_are_matched_and_hold_out_uses_the_validation_split() -> None:
    y = TASK.development.y
    order = np.random.default_rng(0).permutation(len(y))  # the challenger stored rows shuffled
    good = _right_on(len(y), y)
    stored = {0: StoredPredictions(_right_on(20, y), np.arange(len(y))),
              1: StoredPredictions(good[order], order)}
    decision = decide_winner([_full(0, 0.5, True), _full(1, 1.0)], lambda r: stored[r.number], TASK)
    assert decision is not None and decision.winner == 1
    assert decision.comparisons[0].difference == pytest.approx(0.5)
    val = TASK.val.y
    held = {0: StoredPredictions(_right_on(len(val), val)), 1: StoredPredictions(_right_on(0, val))}
    decision = decide_winner([_full(0, 1.0, True), _full(1, 0.0)], lambda r: held[r.number], TASK)
    assert decision is not None and decision.winner == 0 and decision.comparisons[0].samples == 10


def test_without_the_default_full_run_the_best_score_wins() -> None:
    decision = decide_winner([_full(3, 0.7), _full(4, 0.9)], lambda r: None, TASK)
    assert decision is not None and decision.winner == 4 and decision.incumbent is None
    assert decide_winner([], lambda r: None, TASK) is None


def test_the_search_records_its_decision_and_ranks_the_winner_first(tmp_path: Path) -> None:
    clock = FakeClock()
    url = f"sqlite:///{tmp_path}/study.db"
    result = run_search(options(storage=url, budget="120s", workers=2),
                        toolkit=fake_toolkit(FakeRunner(clock)),
                        execution=simulated_execution(clock))
    stored = optuna.load_study(study_name="fake-1d", storage=url).user_attrs["winner"]
    assert result.decision is not None and stored["winner"] == result.decision.winner
    assert result.winners[0].number == result.decision.winner
    assert stored["incumbent"] == next(r.number for r in result.winners if r.plan.engine_default)
    assert stored["confidence"] == 0.9 and "beyond noise" in stored["rule"]


def test_only_saved_models_compete() -> None:
    """A trial without a model folder (an ensemble with baselines) is never the winner."""
    unsaved = TrialRecord(number=9, state=TrialState.COMPLETE, params={}, distributions={},
                          values=(1.0, 0.0), started=None, plan=TrialPlan(Stage.ENSEMBLE),
                          result=TrialResult())
    decision = decide_winner([_full(3, 0.7, True), unsaved], lambda r: None, TASK)
    assert decision is not None and decision.winner == 3 and decision.comparisons == ()


def test_greedy_weights_mix_complementary_candidates_and_keep_a_dominant_one_alone() -> None:
    from orca_automl.search import greedy_weights

    y = np.array([0, 1, 1, 0])
    a = np.array([[0.9, 0.1], [0.4, 0.6], [0.6, 0.4], [0.8, 0.2]])  # wrong on sample 2
    b = np.array([[0.4, 0.6], [0.3, 0.7], [0.2, 0.8], [0.7, 0.3]])  # wrong on sample 0
    both_wrong = np.array([[0.1, 0.9], [0.9, 0.1], [0.9, 0.1], [0.1, 0.9]])

    def accuracy(p: np.ndarray) -> float:
        return float((p.argmax(1) == y).mean())

    weights = greedy_weights([a, b, both_wrong], accuracy, rounds=4)
    assert weights.sum() == pytest.approx(1.0) and weights[2] == 0
    assert accuracy(weights[0] * a + weights[1] * b) == 1.0 > max(accuracy(a), accuracy(b))
    assert list(greedy_weights([a, both_wrong], accuracy, rounds=5)) == [1.0, 0.0]


def test_ensembles_with_and_without_the_baselines_are_saved_and_compete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from orca_automl.search import _loop

    def equal(candidates, score, rounds=25):  # type: ignore[no-untyped-def]
        return np.full(len(candidates), 1.0 / len(candidates))  # every candidate, equally

    monkeypatch.setattr(_loop, "greedy_weights", equal)
    clock = FakeClock()
    url = f"sqlite:///{tmp_path}/study.db"
    result = run_search(options(storage=url, budget="400s", workers=2, validation="cv:4/2"),
                        toolkit=fake_toolkit(FakeRunner(clock, noise=0.5), baselines=["strong"]),
                        execution=simulated_execution(clock))
    by_number = {r.number: r for r in result.records}
    ensembles = [r for r in result.records if r.plan.stage == Stage.ENSEMBLE]
    assert len(ensembles) == 2 and all(e.servable for e in ensembles)
    own, mixed = sorted(ensembles, key=lambda e: Stage.BASELINE in {
        by_number[m].plan.stage for m in e.plan.members})
    full = [r for r in result.records if r.plan.stage == Stage.FULL]
    assert set(own.plan.members) == {r.number for r in full}
    assert {by_number[m].plan.stage for m in mixed.plan.members} == {Stage.FULL, Stage.BASELINE}
    handle = StudyHandle.open(url, "fake-1d", optuna.samplers.RandomSampler(0), {})
    for e in ensembles:
        assert sum(e.plan.weights) == pytest.approx(1.0)
        stored = handle.predictions(e)
        assert stored is not None
        blend = sum(w * on_rows(handle.predictions(by_number[m]), stored.rows).val  # type: ignore[arg-type]
                    for m, w in zip(e.plan.members, e.plan.weights, strict=True))
        assert np.allclose(stored.val, blend, atol=1e-6)
        assert e.val_score == pytest.approx(
            TASK.score(TASK.development.y[stored.rows], blend).score)
        assert e.cost == pytest.approx(sum(by_number[m].cost or 0.0 for m in e.plan.members))
        bag = json.loads((Path(e.result.model_dir or "") / "bag.json").read_text())
        assert bag["weights"] == list(e.plan.weights)
    decision = result.decision
    assert decision is not None
    baseline = next(r for r in result.records if r.plan.stage == Stage.BASELINE)
    default = next(r for r in full if r.plan.engine_default)
    assert decision.default == default.number
    # the strong baseline validated above the default: it is the incumbent the others face
    assert baseline.val_score > default.val_score and decision.incumbent == baseline.number
    compared = {c.trial for c in decision.comparisons}
    assert compared == {r.number for r in result.records if r.servable} - {baseline.number}
    # the measurement among the search's own models: the default is the incumbent, and
    # neither the baseline nor the ensemble that uses it is among the compared challengers
    measured = handle.study.user_attrs["winner_without_baselines"]
    compared = {c["trial"] for c in measured["comparisons"]}
    assert own.number in compared and not {baseline.number, mixed.number} & compared
    assert measured["winner"] not in (baseline.number, mixed.number)
    assert measured["incumbent"] == measured["default"] == default.number