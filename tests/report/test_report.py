"""The study report: what it reads from a study (leaderboard, budget, sessions) checked against
the study's own records, the figures it draws, its files, and its registration with
optuna-dashboard."""

from __future__ import annotations

import io
import math
import shutil
import statistics
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from orca_automl.cli import Progress, report_main, run_command, search_command
from orca_automl.config import Stage
from orca_automl.report import (
    FIGURES,
    REPORT_MARKER,
    Missing,
    Report,
    read_study,
    register_dashboard,
    write_report,
)
from orca_automl.report._facts import facts_of
from orca_automl.report._figures import SPENDING, pareto_front, spending_category
from orca_automl.report._page import page
from orca_automl.search import TrialRecord, run_search
from tests.search.fakes import (
    FakeClock,
    FakeRunner,
    args,
    fake_toolkit,
    options,
    simulated_execution,
)


def _search(url: str, budget: str = "120s", **flags: object) -> None:
    clock = FakeClock()
    run_search(options(storage=url, budget=budget, workers=2, validation="cv:4/2", **flags),
               toolkit=fake_toolkit(FakeRunner(clock), baselines=["strong", "weak"]),
               execution=simulated_execution(clock))


@dataclass(frozen=True)
class Searched:
    """The module's study: its URL, and what `orca-search` printed when its second session
    ended (the command writes the report then)."""

    url: str
    folder: Path
    printed: str


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> Searched:
    """A two-session study (a resume with a second budget) with baselines, full runs and an
    ensemble, made by the real search loop on the fake runner; the second session runs as the
    `orca-search` command, which ends by writing the report."""
    folder = tmp_path_factory.mktemp("study")
    url = f"sqlite:///{folder}/study.db"
    _search(url, "120s")
    clock = FakeClock()
    toolkit = fake_toolkit(FakeRunner(clock), baselines=["strong", "weak"])
    parsed = args(storage=url, no_report=None, budget="60s", workers=2, validation="cv:4/2")
    out = io.StringIO()
    code = run_command("orca-search", lambda a: search_command(
        a, toolkit=toolkit, execution=simulated_execution(clock), out=out,
        progress=Progress(io.StringIO(), out=io.StringIO())), parsed)
    assert code == 0
    return Searched(url, folder, out.getvalue())


@pytest.fixture(scope="module")
def study(searched: Searched) -> str:
    return searched.url


def test_the_leaderboard_holds_every_promoted_run_ensemble_and_baseline(study: str) -> None:
    facts = read_study(study, "fake-1d")
    records = {r.number: r for r in facts.records}
    expected = {r.number for r in facts.records
                if r.plan.stage in (Stage.FULL, Stage.ENSEMBLE, Stage.BASELINE) and r.finished}
    board = facts.leaderboard
    assert {row.trial for row in board} == expected
    assert {row.kind for row in board} >= {"full", "baseline"}
    winner = optuna.load_study(study_name="fake-1d", storage=study).user_attrs["winner"]["winner"]
    assert board[0].winner and board[0].trial == winner
    assert sum(row.winner for row in board) == 1
    kinds = [row.kind for row in board[1:]]  # after the winner, which may be a baseline
    assert "baseline" not in kinds or kinds.index("baseline") > max(
        (i for i, kind in enumerate(kinds) if kind != "baseline"), default=-1)  # baselines last
    for row in board:
        r = records[row.trial]
        assert row.val == r.val_score and row.device_seconds == r.result.device_seconds
        folds = [v.score for v in r.result.fold_vals]
        if len(folds) > 1:  # the spread is the folds' standard deviation
            assert row.val_spread == pytest.approx(statistics.stdev(folds))
            assert row.folds == len(folds)
        if row.kind == "full" and r.state == TrialState.COMPLETE:
            source = records[r.plan.promoted_from]
            assert f"promoted from short trial {source.number}" in row.decision
            assert row.test == r.result.test.value
        if row.kind == "baseline":
            assert row.cost is None
            assert ("saved to compete" if r.servable else "not served") in row.decision


def test_the_budget_and_sessions_add_up_to_what_the_trials_were_charged(study: str) -> None:
    facts = read_study(study, "fake-1d")
    frozen = optuna.load_study(study_name="fake-1d", storage=study).trials
    charged = math.fsum(t.user_attrs.get("device_seconds", 0.0) for t in frozen
                        if t.state.is_finished())
    assert facts.spent == pytest.approx(charged)
    assert facts.budget_total == 180.0
    assert [s.budget for s in facts.sessions] == ["120s", "60s"]
    assert facts.sessions[0].start == 0 and facts.sessions[-1].end == pytest.approx(charged)
    assert facts.sessions[0].end == pytest.approx(facts.sessions[1].start)
    fig = FIGURES["budget"].build(facts)
    assert not isinstance(fig, Missing)
    assert [bar.name for bar in fig.data] == ["session 1", "session 2"]
    assert math.fsum(x for bar in fig.data for x in bar.x) == pytest.approx(charged)
    per_category = {c: 0.0 for c in SPENDING}
    for r in facts.records:
        if r.finished:
            per_category[spending_category(r)] += r.result.device_seconds
    drawn = {c: math.fsum(bar.x[i] for bar in fig.data) for i, c in enumerate(SPENDING)}
    assert drawn == pytest.approx(per_category)
    assert per_category["baselines"] > 0 and per_category["full runs"] > 0


def test_best_score_against_budget_is_the_running_best_in_finishing_order(study: str) -> None:
    facts = read_study(study, "fake-1d")
    fig = FIGURES["best_vs_budget"].build(facts)
    assert not isinstance(fig, Missing)
    short = next(t for t in fig.data if t.name == "best short run")
    assert list(short.y) == sorted(short.y) and list(short.x) == sorted(short.x)
    best = max(r.val_score for r in facts.of_stage(Stage.SHORT))
    assert short.y[-1] == best
    assert max(fig.data[-1].x) <= facts.spent + 1e-9
    sessions = [s for s in fig.layout.shapes if s.type == "line" and s.xref == "x"]
    assert len(sessions) == 2  # one marker per budget session


def _record(number: int, score: float, cost: float) -> TrialRecord:
    from orca_automl.search import TrialPlan, TrialResult

    return TrialRecord(number, TrialState.COMPLETE, {}, {}, (score, cost), None,
                       TrialPlan(Stage.FULL), TrialResult())


def test_the_pareto_front_on_a_hand_made_case() -> None:
    runs = [_record(0, 0.90, 10.0), _record(1, 0.95, 20.0), _record(2, 0.85, 30.0),
            _record(3, 0.95, 25.0), _record(4, 0.80, 5.0), _record(5, 0.90, 10.0)]
    # 2 is beaten by 0 (better and cheaper), 3 by 1 (same score, cheaper); 0 and 5 tie
    assert [r.number for r in pareto_front(runs)] == [4, 0, 5, 1]


def test_each_figure_draws_what_the_study_holds(study: str) -> None:
    facts = read_study(study, "fake-1d")
    figs = {name: spec.build(facts) for name, spec in FIGURES.items()}
    missing = {name: f.reason for name, f in figs.items() if isinstance(f, Missing)}
    assert not missing
    pareto = figs["pareto"]
    served = facts.of_stage(Stage.FULL, Stage.ENSEMBLE)
    full = next(t for t in pareto.data if t.name == "full runs")
    assert sorted(full.y) == sorted(r.val_score for r in facts.of_stage(Stage.FULL))
    assert facts.winner is not None
    winning = [a.text for a in pareto.layout.annotations if a.text.endswith("(winner)")]
    if facts.winner.kind == "baseline":  # no cost to place a star at: its line says so
        baseline = next(r for r in facts.records if r.number == facts.winner.trial).plan.baseline
        assert winning == [f"{baseline} {facts.winner.val:.4f} (winner)"]
    else:
        star = next(t for t in pareto.data if str(t.name).startswith("winner"))
        assert (star.x[0], star.y[0]) == (facts.winner.cost, facts.winner.val) and not winning
    front = next(t for t in pareto.data if str(t.name).startswith("Pareto"))
    assert len(front.x) == len(pareto_front(served))
    assert {a.text.split()[0] for a in pareto.layout.annotations} == {"strong", "weak"}
    align = figs["alignment_vs_score"]
    aligned = [r for r in facts.of_stage(Stage.SHORT) if r.result.final_align_loss is not None
               and r.plan.config.align.metric != "none"]
    assert sum(len(t.x) for t in align.data if "pruned" not in str(t.name)) == len(aligned)
    assert all("rho" in str(t.name) or "too few" in str(t.name) or "pruned" in str(t.name)
               for t in align.data)
    curves = figs["refine_curves"]
    top_full = sorted(facts.of_stage(Stage.FULL), key=TrialRecord.rank_key)[0]
    first = curves.data[0]
    assert first.name == f"trial {top_full.number} (full)"
    assert list(first.y) == [score for _, score in top_full.result.val_curve]
    importances = figs["importances"]
    assert importances.data[0].type == "bar" and len(importances.data[0].y) >= 2


def test_drawing_the_figures_leaves_optunas_log_level_as_the_caller_set_it(study: str) -> None:
    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.DEBUG)
    try:
        facts = read_study(study, "fake-1d")
        assert not isinstance(FIGURES["importances"].build(facts), Missing)  # an Optuna study
        assert optuna.logging.get_verbosity() == optuna.logging.DEBUG
    finally:
        optuna.logging.set_verbosity(before)


def test_legend_labels_name_a_local_model_folder_by_its_last_name_and_wrap() -> None:
    from orca_automl.config import OrcaConfig
    from orca_automl.report._figures import LEGEND_LINE, legend_label
    from orca_automl.search import alignment_group

    config = OrcaConfig().with_overrides({
        "model.backbone": "hf", "align.metric": "l2",
        "model.backbone_args": {"name_or_path": "/tmp/pytest-of-root/pytest-8/browser-study0/tiny-bert0/"}})
    label = legend_label(f"{alignment_group(config)} (1 trials: too few to calibrate; does not prune)")
    assert label.replace("<br>", " ") == (
        'hf{"name_or_path": ".../tiny-bert0"} | l2 | 2000 reference samples '
        "(1 trials: too few to calibrate; does not prune)")
    assert all(len(line) <= LEGEND_LINE for line in label.split("<br>"))
    hub = 'hf{"name_or_path": "sentence-transformers/all-MiniLM-L6-v2"}'
    assert legend_label(hub) == hub  # a hub name is kept whole


def test_a_study_without_full_runs_says_why_figures_are_missing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/study.db"
    _search(url, "8s", baselines=False)
    report = write_report(url, "fake-1d", tmp_path / "out")
    assert "pareto" in report.missing and "trained in full" in report.missing["pareto"]
    html = report.html.read_text()
    assert "Not drawn: no configuration has been trained in full yet" in html
    assert "No configuration has been promoted" in html
    assert set(report.pngs) == set(report.figures)


@pytest.fixture(scope="module")
def written(searched: Searched) -> Report:
    """The report the command wrote, as the API describes it (rewritten in place)."""
    return write_report(searched.url, "fake-1d")


def test_the_report_files(study: str, written: Report) -> None:
    report = written
    assert report.figures == tuple(FIGURES) and not report.missing
    html = report.html.read_text()
    assert html.count('<section class="orca-figure"') == len(FIGURES)
    assert "<script src=" not in html and "<link" not in html  # plotly.js inline: opens offline
    for name in FIGURES:
        assert f'id="figure-{name}"' in html and f'id="plot-{name}"' in html
        assert report.pngs[name].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = report.markdown.read_text()
    facts = read_study(study, "fake-1d")
    assert md.count("\n| ") == len(facts.leaderboard) + 1  # header and one row per entry
    assert f"**{facts.winner.trial} (winner)**" in md
    for name in FIGURES:
        assert f"]({name}.png)" in md
    assert sorted(p.name for p in report.folder.iterdir()) == sorted(
        ["report.html", "report.md", REPORT_MARKER, *(f"{n}.png" for n in FIGURES)])


def test_a_failed_write_keeps_the_previous_report(study: str, written: Report, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "report"
    shutil.copytree(written.folder, folder)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    calls = []

    def failing(fig: object, path: Path) -> Path:
        calls.append(path)
        if len(calls) > 2:
            raise OSError("disk full")
        path.write_bytes(b"partial")
        return path

    monkeypatch.setattr("orca_automl.report.save_png", failing)
    with pytest.raises(OSError, match="disk full"):
        write_report(study, "fake-1d", folder)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]  # no staging folder left


def test_study_text_is_escaped_in_the_page() -> None:
    hostile = "<script>alert(1)</script>"
    facts = facts_of("x", "sqlite:///x.db", {"task": hostile}, [])
    html = page(facts, {})
    assert hostile not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_the_dashboard_shows_the_figures_and_the_leaderboard(study: str, written: Report) -> None:
    from optuna_dashboard import get_note

    report = written
    for _ in range(2):  # registering again replaces, never duplicates
        register_dashboard(study, "fake-1d", report)
    loaded = optuna.load_study(study_name="fake-1d", storage=study)
    plots = {k.split(":")[2] for k in _system_attrs(study) if k.startswith("dashboard:plot_data:")}
    assert plots == {f"orca-{name}" for name in FIGURES}
    note = get_note(loaded)
    assert "| trial | kind |" in note and f"**{report_winner(study)} (winner)**" in note
    versions = [k for k in _system_attrs(study) if k.startswith("dashboard:note")]
    register_dashboard(study, "fake-1d", report)
    assert [k for k in _system_attrs(study) if k.startswith("dashboard:note")] == versions


def _system_attrs(url: str) -> dict[str, object]:
    storage = optuna.storages.RDBStorage(url)
    return dict(storage.get_study_system_attrs(storage.get_study_id_from_name("fake-1d")))


def report_winner(url: str) -> int:
    return int(optuna.load_study(study_name="fake-1d", storage=url).user_attrs["winner"]["winner"])


def test_orca_report_command(study: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r"
    assert report_main(["--study", "fake-1d", "--storage", study, "--out", str(out),
                        "--no-dashboard"]) == 0
    text = capsys.readouterr().out
    assert f"report: {out / 'report.html'}" in text and (out / "report.md").is_file()
    for argv, words in [
        (["--study", "nope", "--storage", study], "holds no study 'nope' (studies there: 'fake-1d')"),
        (["--study", "../x", "--storage", study], "is not a plain name"),
        (["--study", "x", "--storage", "postgresql://u:secret@127.0.0.1:1/x"], "secret"),
    ]:
        assert report_main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("orca-report: error: ")
        if words == "secret":
            assert "secret" not in err
        else:
            assert words in err


def test_orca_search_ends_by_writing_the_report(searched: Searched) -> None:
    html = searched.folder / "fake-1d" / "report" / "report.html"
    assert f"report: {html}" in searched.printed and html.is_file()
    assert "7 figures, PNGs and report.md in" in searched.printed
    attrs = _system_attrs(searched.url)
    assert {k.split(":")[2] for k in attrs if k.startswith("dashboard:plot_data:")} == {
        f"orca-{name}" for name in FIGURES}


def test_orca_report_help_explains_every_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        report_main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--study", "--storage", "--out", "--no-dashboard", "--debug"):
        assert flag in text
    assert "orca-report --study gunpoint" in text and "exit codes: 0 written, 2 bad input" in text
