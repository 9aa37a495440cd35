"""`orca-search` as a command: bad input exits 2 with one line and writes nothing; an existing
study is refused for other data or another space unless --new-study; the output."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from orca_automl.cli import (
    Progress,
    build_parser,
    progress_line,
    run_command,
    search_command,
    search_main,
)
from orca_automl.cli._progress import compact_seconds
from orca_automl.search import (
    SearchOptions,
    Snapshot,
    TrialPlan,
    TrialRecord,
    TrialResult,
    redact_url,
)
from tests.search.fakes import (
    SPACES,
    FakeClock,
    FakeRunner,
    FakeTask,
    args,
    fake_toolkit,
    simulated_execution,
)


def _command(tmp_path: Path, fake_task: FakeTask | None = None, **flags: Any) -> int:
    clock = FakeClock()
    toolkit = fake_toolkit(FakeRunner(clock), fake_task)
    flags.setdefault("storage", f"sqlite:///{tmp_path}/study.db")
    parsed = args(**flags)
    return run_command("orca-search", lambda a: search_command(
        a, toolkit=toolkit, execution=simulated_execution(clock), out=io.StringIO(),
        progress=Progress(io.StringIO(), out=io.StringIO()),
    ), parsed)


def _files(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.rglob("*") if p.is_file()}


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("orca-search: error: ")
    return err


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        ({"budget": "8 parsecs"}, "budget '8 parsecs' is not understood"),
        ({"budget": "2gpu-hours"}, "no GPU is visible"),
        ({"workers": 0}, "--workers must be 1 or more"),
        ({"workers": 10_000}, "more than the"),
        ({"top_k": 0}, "--top-k must be 1 or more"),
        ({"search_space": "no-such-space"}, "unknown search space 'no-such-space'"),
        ({"search_space": str(SPACES / "missing.yaml")}, "does not exist"),
        ({"task": "gunpoint-typo"}, "unknown task 'gunpoint-typo'"),
        ({"storage": "not a url"}, "is malformed"),
        ({"storage": "nosuchdb://host/x"}, "unknown database kind"),
        ({"storage": "sqlite://"}, "not a database file"),
        ({"storage": "sqlite:///:memory:"}, "not a database file"),
        ({"storage": "postgresql://me@127.0.0.1:1/orca"}, "storage URL"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    flags: dict[str, Any], words: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert _command(tmp_path, **flags) == 2
    assert words in _one_line(capsys)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("url", [
    "postgresql://me:s3cret-pw@127.0.0.1:1/orca",            # well formed, unreachable
    "nosuchdb://me:s3cret-pw@host/x",                        # unknown kind
    "postgresql://me:s3cret-pw@127.0.0.1:notaport/orca",     # malformed
])
def test_a_refused_storage_url_never_shows_its_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], url: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert _command(tmp_path, storage=url) == 2
    line = _one_line(capsys)
    assert "s3cret-pw" not in line and "me:***@" in line


def test_redact_url() -> None:
    assert redact_url("postgresql+psycopg://u:p%40ss@db:5432/orca") == (
        "postgresql+psycopg://u:***@db:5432/orca")
    assert redact_url("sqlite:///studies/x.db") == "sqlite:///studies/x.db"
    assert redact_url("not a url://u:secret@h") == "not a url://u:***@h"


def test_unusable_sqlite_paths_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "not-sqlite.db").write_text("hello, not a database")
    before = _files(tmp_path)
    assert _command(tmp_path, storage=f"sqlite:///{tmp_path}/a-file/study.db") == 2
    assert "is not a writable folder" in _one_line(capsys)
    assert _command(tmp_path, storage=f"sqlite:///{tmp_path}/not-sqlite.db") == 2
    assert "is not an SQLite database" in _one_line(capsys)
    assert _files(tmp_path) == before


def test_malformed_space_is_refused_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    space = tmp_path / "space.yaml"
    space.write_text((SPACES / "tiny.yaml").read_text().replace("[20, 80]", "[80, 20]"))
    assert _command(tmp_path, search_space=str(space)) == 2
    assert "params.align.steps: low 80 is above high 20" in _one_line(capsys)
    assert [p.name for p in tmp_path.iterdir()] == ["space.yaml"]


def test_an_existing_study_is_refused_for_other_data_or_space_unless_new_study(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _command(tmp_path, budget="20s") == 0
    capsys.readouterr()
    study_files = _files(tmp_path)

    assert _command(tmp_path, fake_task=FakeTask("fake-1d", data="v2"), budget="20s") == 2
    assert "made for different task data" in _one_line(capsys)
    changed = tmp_path / "changed.yaml"
    changed.write_text((SPACES / "tiny.yaml").read_text().replace("[16, 32]", "[16, 64]"))
    assert _command(tmp_path, search_space=str(changed), budget="20s") == 2
    assert "made with another search space" in _one_line(capsys)
    assert _command(tmp_path, budget="0s") == 2
    _one_line(capsys)
    assert {k: v for k, v in _files(tmp_path).items() if k != "changed.yaml"} == study_files

    assert _command(tmp_path, fake_task=FakeTask("fake-1d", data="v2"), budget="20s", new_study=True) == 0
    names = optuna.study.get_all_study_names(f"sqlite:///{tmp_path}/study.db")
    assert sorted(names) == ["fake-1d", "fake-1d-2"]
    new = optuna.load_study(study_name="fake-1d-2", storage=f"sqlite:///{tmp_path}/study.db")
    assert new.user_attrs["task_fingerprint"] == FakeTask("fake-1d", data="v2").fingerprint()
    assert (tmp_path / "fake-1d-2" / "winners").is_dir()


def test_a_study_resumes_with_its_recorded_copy_of_a_packaged_space_that_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An upgrade may change a packaged space; the study goes on with the space it began with
    (a user's own file that changed is still refused: the test above)."""
    from orca_automl.search import _resume

    packaged = tmp_path / "packaged"
    packaged.mkdir()
    space = packaged / "tiny.yaml"
    space.write_text((SPACES / "tiny.yaml").read_text())
    monkeypatch.setattr(_resume, "is_packaged", lambda path: path.parent == packaged)
    url = f"sqlite:///{tmp_path}/study.db"
    assert _command(tmp_path, search_space=str(space), budget="20s") == 0
    study = optuna.load_study(study_name="fake-1d", storage=url)
    before = len(study.trials)
    recorded = dict(study.user_attrs["search_space"])

    space.write_text(space.read_text().replace("[1e-5, 1e-3]", "[0.5, 0.9]"))  # "the upgrade"
    out = io.StringIO()
    clock = FakeClock()
    code = run_command("orca-search", lambda a: search_command(
        a, toolkit=fake_toolkit(FakeRunner(clock)), execution=simulated_execution(clock),
        out=io.StringIO(), progress=Progress(out, out=out),
    ), args(storage=url, search_space=str(space), budget="40s"))
    assert code == 0, capsys.readouterr().err
    assert "resumes with the copy it recorded" in out.getvalue()
    study = optuna.load_study(study_name="fake-1d", storage=url)
    assert len(study.trials) > before
    assert all(1e-5 <= t.params["refine.lr"] <= 1e-3 for t in study.trials if "refine.lr" in t.params)
    assert study.user_attrs["search_space"] == recorded

    attrs = optuna.storages.RDBStorage(url)  # a study made before spaces were recorded: refused
    attrs.set_study_user_attr(study._study_id, "search_space",
                              {k: v for k, v in recorded.items() if k != "content"})
    assert _command(tmp_path, search_space=str(space), budget="60s") == 2
    assert "made with another search space" in _one_line(capsys)


def test_default_layout_and_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    clock = FakeClock()
    out = io.StringIO()
    parsed = args(budget="60s", workers=2)
    assert search_command(parsed, toolkit=fake_toolkit(FakeRunner(clock)),
                          execution=simulated_execution(clock), out=out,
                          progress=Progress(io.StringIO(), out=out)) == 0
    assert (tmp_path / "studies" / "fake-1d.db").is_file()
    winners = list((tmp_path / "studies" / "fake-1d" / "winners").iterdir())
    assert winners and all((w / "meta.json").is_file() for w in winners)
    text = out.getvalue()
    assert "test accuracy" in text and "short val accuracy" in text
    assert str(winners[0]) in text or winners[0].name in text
    assert "optuna-dashboard sqlite:///studies/fake-1d.db" in text


def test_progress_lines_carry_the_counters(tmp_path: Path) -> None:
    assert _command(tmp_path, budget="30s") == 0
    records = [TrialRecord.from_frozen(t) for t in optuna.load_study(
        study_name="fake-1d", storage=f"sqlite:///{tmp_path}/study.db").trials]
    stream = io.StringIO()
    progress = Progress(stream, out=io.StringIO())
    progress.on_progress(Snapshot.of(records, used=12.0, total=30.0, running=1, phase="search"))
    assert stream.getvalue() == ""  # not a terminal: no bar redraws, only trial lines
    pruned = next((r for r in records if r.state.name == "PRUNED"), records[0])
    progress.on_trial_end(pruned)
    line = stream.getvalue()
    assert line.count("\n") == 1 and f"trial {pruned.number:3d}" in line
    assert "40%" in line and "done" in line and "pruned" in line and "best 0." in line


class _Terminal(io.StringIO):
    """What Progress writes to a terminal, kept as text."""

    def isatty(self) -> bool:
        return True


def _best(number: int, score: float) -> TrialRecord:
    return TrialRecord(number, TrialState.COMPLETE, {}, {}, (score, 1.0), None, TrialPlan(),
                       TrialResult())


def _snapshot(used: float, total: float = 8 * 3600.0, **counts: Any) -> Snapshot:
    defaults: dict[str, Any] = {"complete": 0, "pruned": 0, "failed": 0, "running": 2,
                                "best": None, "phase": "search"}
    return Snapshot(used, total, **{**defaults, **counts})


def _rows(text: str) -> list[str]:
    """What a terminal shows of `text`: each line as its last redraw ("\\r\\x1b[K") left it."""
    return [line.split("\r\x1b[K")[-1] for line in text.split("\n")]


def test_the_progress_line_fits_80_columns_with_every_counter() -> None:
    # hours of budget, hundreds of trials: every counter whole in 79 columns
    snapshot = _snapshot(3600 * 3.2, complete=512, pruned=431, failed=56, running=8,
                         best=_best(999, 0.9563), phase="promotion")
    line = progress_line(snapshot, eta=4320.0, width=79)
    assert line == "40% 4h48m left ETA 1h12m  512 done 431 pruned 56 failed 8 run  best 0.9563 #999"
    assert len(line) <= 79
    small = _snapshot(12.0, 60.0, complete=3, pruned=1, running=2, best=_best(2, 0.8123))
    assert progress_line(small, width=79) == (
        "20% 48s left ETA -  3 done 1 pruned 0 failed 2 run  best 0.8123 #2  search")
    over = _snapshot(70.0, 60.0, running=1)  # a promoted trial may overrun the budget
    assert progress_line(over, eta=None).startswith("117% 0s left ETA -  ")
    assert [compact_seconds(s) for s in (0.2, 42, 59.6, 245, 2520, 11520, 400_000)] == [
        "0s", "42s", "1m00s", "4m05s", "42m", "3h12m", "111h"]


def test_on_a_terminal_one_line_is_redrawn_in_place_and_every_row_fits() -> None:
    clock = FakeClock()
    stream = _Terminal()
    progress = Progress(stream, out=_Terminal(), clock=clock, width=80)
    progress.on_progress(_snapshot(0.0))
    clock.sleep(3.0)
    progress.on_progress(_snapshot(6.0))
    assert "ETA -" in _rows(stream.getvalue())[-1]  # too early to tell
    clock.sleep(7.0)
    progress.on_progress(_snapshot(20.0))  # 2 device-seconds per second
    assert _rows(stream.getvalue())[-1].startswith("0% 7h59m left ETA 3h59m  0 done")
    progress.note("trial  12 short COMPLETE val 0.9563  " + "minilm/conv1d/otdd_gaussian lr=0.001 " * 5)
    clock.sleep(1.0)
    progress.on_progress(_snapshot(15.0, complete=1, best=_best(12, 0.9563)))  # a smaller charge
    rows = _rows(stream.getvalue())
    assert rows[0].startswith("trial  12 short COMPLETE") and rows[1].startswith("    minilm")
    assert all(len(row) <= 79 for row in rows)
    assert sum("left ETA" in row for row in rows) == 1  # one progress line, the last row
    assert rows[-1].startswith("0% 7h59m left ETA 4h23m  1 done 0 pruned 0 failed 2 run  best 0.9563 #12")
    progress.on_interrupt()  # Ctrl-C: the line ends, what follows starts a row of its own
    assert stream.getvalue().endswith(" best 0.9563 #12\n")


def test_in_a_log_no_control_character_and_a_plain_progress_line_every_interval() -> None:
    clock = FakeClock()
    stream = io.StringIO()
    progress = Progress(stream, out=io.StringIO(), clock=clock, plain_interval=30.0)
    progress.on_progress(_snapshot(0.0, 600.0))
    clock.sleep(20.0)
    progress.on_progress(_snapshot(40.0, 600.0))
    assert stream.getvalue() == ""  # 20 s: not yet
    clock.sleep(11.0)
    progress.on_progress(_snapshot(62.0, 600.0))
    assert stream.getvalue() == "progress: 10% 8m58s left ETA 4m29s  0 done 0 pruned 0 failed 2 run  best -  search\n"
    clock.sleep(20.0)
    progress.note("trial   3 short FAIL     1s  (RuntimeError: two\nlines\r\x1b[31mred\x1b[0m)")
    clock.sleep(20.0)
    progress.on_progress(_snapshot(140.0, 600.0))  # 20 s after a trial line with the counters
    text = stream.getvalue()
    assert text.count("\n") == 2 and text.splitlines()[1].startswith("trial   3 short FAIL")
    assert "left ETA" in text.splitlines()[1]
    clock.sleep(11.0)
    progress.on_progress(_snapshot(162.0, 600.0))
    progress.on_interrupt()
    text = stream.getvalue()
    assert text.count("\n") == 3 and text.splitlines()[2].startswith("progress: 27% ")
    assert not [c for c in text if ord(c) < 0x20 and c != "\n"]


def test_help_explains_every_flag_with_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        search_main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for action in build_parser()._actions:
        if action.dest in ("help",):
            continue
        assert action.help, action.dest
        if action.option_strings[0] not in ("--new-study", "--no-baselines", "--no-ensemble",
                                            "--baselines-as-reference", "--refit", "--no-report",
                                            "--debug"):
            assert "e.g." in action.help, action.dest
    for flag in ("--task", "--budget", "--search-space", "--storage", "--study", "--workers",
                 "--address", "--gpus-per-trial", "--seed", "--top-k", "--sampler", "--pruning",
                 "--new-study", "--plugin", "--validation", "--no-baselines",
                 "--baselines-as-reference", "--refit", "--no-report", "--debug"):
        assert flag in text
    assert "orca-search --task gunpoint --budget 10cpu-minutes --workers 2" in text
    assert "studies/<study>/winners/trial-<N>/" in text
    assert "studies/<study>/report/report.html" in text


def test_usage_errors_are_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        search_main(["--budget", "1h"])
    assert info.value.code == 2
    assert "--task" in _one_line(capsys)
    assert search_main(["--task", "gunpoint", "--budget", "1 fortnight"]) == 2
    assert "not understood" in _one_line(capsys)
    assert list(tmp_path.iterdir()) == []


def test_a_study_made_elsewhere_is_refused_and_left_byte_identical(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    other = optuna.create_study(storage=f"sqlite:///{tmp_path}/study.db", study_name="fake-1d")
    other.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=2)
    before = (tmp_path / "study.db").read_bytes()
    assert _command(tmp_path, budget="20s") == 2
    assert "was not made by orca-search" in _one_line(capsys)
    assert (tmp_path / "study.db").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["study.db"]


@pytest.mark.parametrize(
    ("sampler", "pruning", "sampler_class", "align_rule", "refine_on"),
    [
        ("tpe", "all", optuna.samplers.TPESampler, True, True),
        ("tpe", "refine", optuna.samplers.TPESampler, False, True),
        ("random", "off", optuna.samplers.RandomSampler, False, False),
    ],
)
def test_sampler_and_pruning_modes_are_applied_and_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sampler: str, pruning: str,
    sampler_class: type, align_rule: bool, refine_on: bool,
) -> None:
    from orca_automl.search import _search as search_module

    used: list[object] = []
    original = search_module._sampler
    monkeypatch.setattr(search_module, "_sampler",
                        lambda *a: used.append(original(*a)) or used[-1])
    assert _command(tmp_path, budget="20s", sampler=sampler, pruning=pruning) == 0
    assert used and all(isinstance(s, sampler_class) for s in used)
    study = optuna.load_study(study_name="fake-1d", storage=f"sqlite:///{tmp_path}/study.db")
    evidence = study.user_attrs["pruning_evidence"]
    assert (evidence["alignment_rule"] != "off") is align_rule
    assert (evidence["refine_rule"] != "off") is refine_on
    assert "groups" in evidence  # the alignment evidence is collected in every mode


def test_a_fresh_study_runs_the_engine_defaults_first_and_a_resume_does_not_repeat_them(
    tmp_path: Path,
) -> None:
    assert _command(tmp_path, budget="20s") == 0
    study = optuna.load_study(study_name="fake-1d", storage=f"sqlite:///{tmp_path}/study.db")
    first = min(study.trials, key=lambda t: t.number)
    # tiny.yaml holds OrcaConfig()'s otdd_gaussian and 20 align steps; its lr ranges do not
    # hold the defaults, so those are sampled
    assert first.params["align.metric"] == "otdd_gaussian" and first.params["align.steps"] == 20
    assert first.params["model.backbone"] == "minilm"
    enqueued = [t for t in study.trials if "fixed_params" in t.system_attrs]
    assert len(enqueued) == 1
    # it is marked as the default (it wins exact ties), and so are its retries and full runs
    assert study.user_attrs["engine_default_trial"] == first.number
    assert first.user_attrs["engine_default"] is True
    lineage = {first.number}
    for t in sorted(study.trials, key=lambda t: t.number):
        if {t.user_attrs.get("retry_of"), t.user_attrs.get("promoted_from")} & lineage:
            lineage.add(t.number)
    marked = {t.number for t in study.trials if t.user_attrs.get("engine_default")}
    assert marked == lineage
    assert _command(tmp_path, budget="40s") == 0  # resume: adds trials, not the default again
    study = optuna.load_study(study_name="fake-1d", storage=f"sqlite:///{tmp_path}/study.db")
    assert [t.number for t in study.trials if "fixed_params" in t.system_attrs] == [first.number]


def test_on_equal_scores_the_engine_default_is_promoted_and_wins(tmp_path: Path) -> None:
    """Without alignment and without noise every configuration scores the same: an exact tie,
    which goes to the engine's default at promotion and in the winners table."""
    space = tmp_path / "flat.yaml"
    space.write_text(
        "description: every configuration scores the same under the fake runner\n"
        "base: {short_fraction: 0.25, align: {metric: none}, refine: {steps: 80, eval_every: 20}}\n"
        "promotion: {top_k: 1, share: 0.3}\n"
        "params:\n"
        "  model.backbone: {choices: [minilm]}\n"
        "  model.embedder: {choices: [conv1d, patch_mlp]}\n"
        "  model.embedder_args.target_seq_len: {choices: [16, 64]}\n"
        "  refine.lr: {float: [1.0e-5, 1.0e-3], log: true}\n"
    )
    clock = FakeClock()
    toolkit = fake_toolkit(FakeRunner(clock, noise=0.0))
    url = f"sqlite:///{tmp_path}/study.db"
    out = io.StringIO()
    code = run_command("orca-search", lambda a: search_command(
        a, toolkit=toolkit, execution=simulated_execution(clock), out=out,
        progress=Progress(io.StringIO(), out=out),
    ), args(storage=url, search_space=str(space), budget="60s"))
    assert code == 0
    study = optuna.load_study(study_name="fake-1d", storage=url)
    short = [t for t in study.trials if t.user_attrs.get("stage") == "short"
             and t.state == optuna.trial.TrialState.COMPLETE]
    assert len(short) > 2 and len({t.values[0] for t in short}) == 1  # all tied
    default = study.user_attrs["engine_default_trial"]
    # the default's 64 tokens cost more than 16: cost alone would rank it below the others
    assert study.trials[default].params["model.embedder_args.target_seq_len"] == 64
    assert any(t.params["model.embedder_args.target_seq_len"] == 16 for t in short)
    full = [t for t in study.trials if t.user_attrs.get("stage") == "full"]
    assert [t.user_attrs["promoted_from"] for t in full] == [default]
    assert full[0].user_attrs["engine_default"] is True
    records = [TrialRecord.from_frozen(t) for t in study.trials]
    assert Snapshot.of(records, 0.0, 1.0, 0, "done").best.plan.engine_default


def test_small_data_is_cross_validated_unless_asked_otherwise() -> None:
    parsed = build_parser().parse_args(["--task", "gunpoint", "--budget", "10cpu-minutes"])
    assert parsed.validation == "auto"
    assert SearchOptions(task="gunpoint", budget="10cpu-minutes").validation == "auto"
