"""Browser fixtures: a Chromium driven through Playwright, a study made by a real `orca-search`
(real training of a tiny model, its report and dashboard figures written by the command
itself), and optuna-dashboard serving that study on 127.0.0.1.

Browser tests need Chromium: `ORCA_AUTOML_CHROMIUM`, or chromium / chromium-browser /
google-chrome on PATH (`export ORCA_AUTOML_CHROMIUM="$(bash scripts/browser.sh)"` installs
Debian's package and sets it). Without one they skip and say why; with
`ORCA_AUTOML_REQUIRE_BROWSER=1` (as `.ci/run` sets) they fail. Screenshots go to
`ORCA_AUTOML_TEST_ARTIFACTS` (default: <repo>/test-artifacts/).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.tiny_bert import search_space

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_ENV = "ORCA_AUTOML_CHROMIUM"
REQUIRE_BROWSER_ENV = "ORCA_AUTOML_REQUIRE_BROWSER"
ARTIFACTS_ENV = "ORCA_AUTOML_TEST_ARTIFACTS"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
STUDY = "browser-check"


def _skip_or_fail(reason: str) -> None:
    if os.environ.get(REQUIRE_BROWSER_ENV) == "1":
        pytest.fail(f"{REQUIRE_BROWSER_ENV}=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium() -> str:
    """The Chromium executable the browser tests drive."""
    given = os.environ.get(CHROMIUM_ENV)
    if given:
        if not os.access(given, os.X_OK):
            pytest.fail(f"{CHROMIUM_ENV}={given} is not an executable file")
        return given
    found = next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)
    if found is None:
        _skip_or_fail(f"browser tests need Chromium ({CHROMIUM_ENV}, or {'/'.join(CHROMIUM_NAMES)} "
                      f"on PATH): run `export {CHROMIUM_ENV}=\"$(bash scripts/browser.sh)\"` first")
    return str(found)


@pytest.fixture(scope="session")
def browser(chromium: str) -> Iterator[Browser]:
    """Headless Chromium under Playwright (the system binary: Playwright's own browser
    download is not needed)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _skip_or_fail("browser tests need Playwright: pip install -e '.[dev]'")
    driver = sync_playwright().start()
    try:
        launched = driver.chromium.launch(executable_path=chromium, headless=True,
                                          args=["--no-sandbox", "--disable-gpu"])
        yield launched
        launched.close()
    finally:
        driver.stop()


@dataclass(frozen=True)
class WatchedPage:
    """A page and what went wrong on it: console errors and uncaught exceptions, in order."""

    page: Page
    errors: list[str] = field(default_factory=list)


@pytest.fixture
def watched_page(browser: Browser) -> Iterator[WatchedPage]:
    """A fresh page (its own context, 1400 x 1000) whose errors are collected."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    watched = WatchedPage(context.new_page())
    watched.page.on("console", lambda m: m.type == "error" and watched.errors.append(
        f"console error: {m.text} ({m.location.get('url', '')})"))
    watched.page.on("pageerror", lambda e: watched.errors.append(f"page error: {e}"))
    yield watched
    context.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where screenshots go, to be looked at after a run (CI keeps the folder)."""
    folder = Path(os.environ.get(ARTIFACTS_ENV) or ROOT / "test-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@dataclass(frozen=True)
class SearchedStudy:
    """A study made by `orca-search`: where it lives, the report that command wrote, and the
    figures the report draws for it, in page order, as the Python API builds them."""

    storage: str
    name: str
    report_html: Path
    figures: tuple[str, ...]
    complete_trials: int


@pytest.fixture(scope="session")
def searched_study(chromium: str, tiny_bert_dir: Path, minirocket_compiled: None,
                   tmp_path_factory: pytest.TempPathFactory) -> SearchedStudy:
    """`orca-search` run for real (a subprocess, Ray, real training) on ItalyPowerDemand with a
    40 s budget: baselines, short trials, a promoted winner, then the report and the dashboard
    figures it writes at the end. Asks for Chromium first, so that a run without one skips
    before the search."""
    import optuna

    from orca_automl.report import FIGURES, Missing, default_folder, read_study

    folder = tmp_path_factory.mktemp("browser-study")
    storage = f"sqlite:///{folder}/study.db"
    command = [str(Path(sys.executable).with_name("orca-search")), "--task", "italy_power_demand",
               "--budget", "40s", "--storage", storage, "--study", STUDY, "--validation", "holdout",
               "--search-space", str(search_space(folder / "tiny-space.yaml", tiny_bert_dir))]
    done = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{' '.join(command)} exited {done.returncode}:\n{done.stderr[-3000:]}"
    html = default_folder(storage, STUDY) / "report.html"
    assert html.is_file() and f"report: {html}" in done.stdout, done.stdout
    study = optuna.load_study(study_name=STUDY, storage=storage)
    complete = sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    _check_real_cycle(study)
    facts = read_study(storage, STUDY)
    drawn = tuple(name for name, spec in FIGURES.items()
                  if not isinstance(spec.build(facts), Missing))
    # every trial of this space aligns, and the budget promotes a winner: each figure applies,
    # but importances need three scored short trials (a loaded machine may finish fewer)
    short = sum(t.state == optuna.trial.TrialState.COMPLETE
                and t.user_attrs.get("stage") == "short" for t in study.trials)
    expected = [name for name in FIGURES if name != "importances" or short >= 3]
    assert list(drawn) == expected, f"figures drawn: {drawn}; expected {expected}"
    return SearchedStudy(storage, STUDY, html, drawn, complete)


def _check_real_cycle(study: Any) -> None:
    """The hold-out real cycle through the command: no trial failed or left running, short
    trials charged and costed, aligned ones with their curves, baselines scored, the winner
    tested once and its saved model predicting (the cross-validated path: test_integration)."""
    import numpy as np

    from orca_automl.config import Stage
    from orca_automl.cycle import load_model
    from orca_automl.search import TrialRecord
    from orca_automl.tasks import load_task

    records = [TrialRecord.from_frozen(t) for t in study.trials]
    assert not {r.state.name for r in records} & {"FAIL", "RUNNING"}, [
        r.result.error for r in records]
    short = [r for r in records if r.plan.stage == Stage.SHORT and r.val_score is not None]
    assert short and all(r.result.device_seconds > 0 and r.cost for r in short)
    assert all(r.result.align_curve and r.result.final_align_loss is not None for r in short)
    assert {r.plan.baseline for r in records if r.plan.stage == Stage.BASELINE} == {
        "minirocket", "one_nn"}
    winner = study.user_attrs["winner"]["winner"]
    (served,) = [r for r in records if r.number == winner]
    assert served.result.test is not None and served.result.model_dir
    task = load_task("italy_power_demand", seed=0)
    predicted = load_model(served.result.model_dir).predict(task.test.X[:4])
    assert np.asarray(predicted).shape[0] == 4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


@dataclass(frozen=True)
class Dashboard:
    """optuna-dashboard serving the searched study: its base URL and the study's id there."""

    url: str
    study_id: int


@pytest.fixture(scope="session")
def dashboard(searched_study: SearchedStudy,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    """optuna-dashboard on a free port of 127.0.0.1, up once `/api/studies` answers; the
    process started here (and only it) is terminated afterwards."""
    port = _free_port()
    log = tmp_path_factory.mktemp("dashboard") / "dashboard.log"
    command = [str(Path(sys.executable).with_name("optuna-dashboard")), searched_study.storage,
               "--host", "127.0.0.1", "--port", str(port), "--server", "wsgiref"]
    url = f"http://127.0.0.1:{port}"
    with log.open("w") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                studies = _get_json(f"{url}/api/studies")["study_summaries"]
                break
            except (urllib.error.URLError, ConnectionError):
                assert server.poll() is None, f"optuna-dashboard exited:\n{log.read_text()[-3000:]}"
                assert time.monotonic() < deadline, f"optuna-dashboard did not answer in 30 s:\n{log.read_text()[-3000:]}"
                time.sleep(0.2)
        (study_id,) = [s["study_id"] for s in studies if s["study_name"] == searched_study.name]
        yield Dashboard(url, int(study_id))
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
