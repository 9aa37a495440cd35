"""The winner rule: the incumbent (the best validated competing baseline, or the engine
default's full run when none competes or when it beats that baseline beyond noise) stays the
winner unless a challenger beats it beyond noise (paired bootstrap on the samples both
predicted), checked on synthetic predictions with known answers."""

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


def test_the_best_validated_baseline_is_the_incumbent_challengers_must_beat() -> None:
    y = TASK.development.y
    rows = np.arange(len(y))
    stored = {0: StoredPredictions(_right_on(24, y), rows),   # the default: 60% right
              1: StoredPredictions(_right_on(28, y), rows),   # a baseline: 70%
              2: StoredPredictions(_right_on(29, y), rows),   # a challenger: one sample more
              3: StoredPredictions(_right_on(40, y), rows),   # a challenger: all right
              5: StoredPredictions(_right_on(23, y), rows)}   # another baseline: 57.5%
    default, baseline = _full(0, 0.6, default=True), _baseline(1, 0.7)
    decision = decide_winner([default, baseline, _baseline(5, 0.575), _full(2, 0.725)],
                             lambda r: stored[r.number], TASK)
    assert decision is not None and (decision.incumbent, decision.default) == (1, 0)
    assert decision.winner == 1 and {c.trial for c in decision.comparisons} == {0, 2, 5}
    assert all(c.incumbent == 1 and not c.beats for c in decision.comparisons)
    assert "incumbent: the field's method" in decision.reason(1)
    assert "(winner)" in decision.reason(1) and "not beyond noise" in decision.reason(0)
    beaten = decide_winner([default, baseline, _full(3, 1.0)], lambda r: stored[r.number], TASK)
    assert beaten is not None and (beaten.incumbent, beaten.winner) == (1, 3)
    assert "beats the incumbent" in beaten.reason(3)


def test_a_baseline_validated_below_the_default_stays_the_incumbent_unless_beaten() -> None:
    """Hand-computed: the default is right on 24 of 40 samples, the baseline on 23 of them
    (its right samples a subset of the default's). The only discordant sample favours the
    default, so every bootstrap draw gives it a difference of k/40 with k the draws of that
    sample: k = 0 in about e^-1 = 37% of draws, so the 10% quantile, the lower bound, is 0 and
    the default does not beat the baseline, which stays the winner."""
    y = TASK.development.y
    rows = np.arange(len(y))
    stored = {0: StoredPredictions(_right_on(24, y), rows),
              4: StoredPredictions(_right_on(23, y), rows)}
    decision = decide_winner([_full(0, 0.6, default=True), _baseline(4, 0.575)],
                             lambda r: stored[r.number], TASK)
    assert decision is not None and (decision.incumbent, decision.winner) == (4, 4)
    (duel,) = decision.comparisons
    assert (duel.trial, duel.incumbent, duel.beats) == (0, 4, False)
    assert duel.difference == pytest.approx(1 / 40) and duel.lower_bound == 0.0


def test_a_default_that_beats_the_baseline_beyond_noise_becomes_the_incumbent() -> None:
    """The default right on all 40 samples, the baseline on 24: 16 discordant samples all
    favour the default, so every draw's difference is above 0. It takes the incumbency, and
    the search's own finds are then measured against it: one as good does not replace it."""
    y = TASK.development.y
    rows = np.arange(len(y))
    stored = {0: StoredPredictions(_right_on(40, y), rows),
              1: StoredPredictions(_right_on(24, y), rows),
              2: StoredPredictions(_right_on(40, y), rows)}
    decision = decide_winner([_full(0, 1.0, default=True), _baseline(1, 0.6), _full(2, 1.0)],
                             lambda r: stored[r.number], TASK)
    assert decision is not None and (decision.incumbent, decision.winner) == (0, 0)
    by_trial = {c.trial: c for c in decision.comparisons}
    assert by_trial[0].incumbent == 1 and by_trial[0].beats
    assert by_trial[0].difference == pytest.approx(0.4) and by_trial[0].lower_bound > 0
    assert (by_trial[2].incumbent, by_trial[2].beats) == (0, False)
    assert "incumbent: the engine default, which beats the field's method" in (
        decision.reason(0))
    assert (by_trial[1].incumbent, by_trial[1].beats) == (0, False)
    assert "not beyond noise" in decision.reason(1)


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


def test_cross_fitted_blends_never_choose_a_rows_weights_on_that_row() -> None:
    from orca_automl.search._ensemble import cross_fitted

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 40)
    candidates = [rng.dirichlet((1, 1), 40) for _ in range(4)]

    def accuracy(target: np.ndarray, p: np.ndarray) -> float:
        return float((p.argmax(1) == target).mean())

    blend = cross_fitted(candidates, y, accuracy, parts=5, seed=0)
    assert blend.shape == (40, 2) and np.allclose(blend.sum(1), 1.0)
    for row in range(40):  # another label on a row changes other rows' weights, not its own
        flipped = y.copy()
        flipped[row] = 1 - flipped[row]
        assert np.array_equal(cross_fitted(candidates, flipped, accuracy, parts=5, seed=0)[row],
                              blend[row])
    right = np.eye(2)[y]  # right everywhere, and first of equal scores: every part's blend
    assert np.array_equal(cross_fitted([right, *candidates], y, accuracy), right)
    assert np.array_equal(cross_fitted([right[:3]], y[:3], accuracy), right[:3])  # under 4 rows


def test_ensembles_with_and_without_the_baselines_are_saved_and_compete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from orca_automl.search import _ensemble, _loop

    def equal(candidates, score, rounds=25):  # type: ignore[no-untyped-def]
        return np.full(len(candidates), 1.0 / len(candidates))  # every candidate, equally

    monkeypatch.setattr(_loop, "greedy_weights", equal)
    monkeypatch.setattr(_ensemble, "greedy_weights", equal)  # the cross-fitted blend's too
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