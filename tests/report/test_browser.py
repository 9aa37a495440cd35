"""What a user sees, rendered by a real Chromium: optuna-dashboard's study page (Pareto front,
our figures) and note (the leaderboard) for a study made by `orca-search`, and the report's
HTML page opened offline. Each page's screenshot is kept under the test artifacts."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import plotly.graph_objects as go
import plotly.io
import plotly.offline
import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Page, Route

    from tests.report.conftest import Dashboard, SearchedStudy, WatchedPage

pytestmark = pytest.mark.integration

#: Plotly's drawn marks inside one graph: markers and bars, lines, pie slices, heatmap images.
MARKS_JS = """ids => Object.fromEntries(ids.map(id => {
    const el = document.getElementById(id);
    if (el === null) return [id, null];
    if (el.querySelector('.main-svg') === null) return [id, 0];
    const marks = [...el.querySelectorAll('.trace .point, .trace .js-line, .trace .slice, .trace image')]
        .filter(m => m.tagName !== 'path' || (m.getAttribute('d') || '').length > 2);
    return [id, marks.length];
}))"""


def drawn_marks(page: Page, element_ids: Sequence[str]) -> dict[str, int | None]:
    """Marks plotly drew inside each element (None: no such element; 0: nothing drawn)."""
    return dict(page.evaluate(MARKS_JS, list(element_ids)))


def assert_figures_render(page: Page, names: Sequence[str], element_id: str = "figure-{}",
                          timeout_s: float = 15.0) -> dict[str, int]:
    """Wait until the element of each named figure holds a plotly graph with drawn marks;
    else fail naming the figures that are missing and those drawn empty. Returns the marks."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    ids = {name: element_id.format(name) for name in names}
    with contextlib.suppress(PlaywrightTimeout):  # the assertion below says which
        page.wait_for_function(f"ids => Object.values(({MARKS_JS})(ids)).every(n => n > 0)",
                               arg=list(ids.values()), timeout=timeout_s * 1000)
    marks = drawn_marks(page, list(ids.values()))
    missing = [name for name, i in ids.items() if marks[i] is None]
    empty = [name for name, i in ids.items() if marks[i] == 0]
    assert not missing and not empty, (
        f"figures not on the page: {missing}; figures without drawn marks: {empty}")
    return {name: int(marks[i] or 0) for name, i in ids.items()}


def assert_no_errors(watched: WatchedPage) -> None:
    assert not watched.errors, "\n".join(watched.errors)


def wait_for_text(page: Page, text: str) -> None:
    page.wait_for_function("t => document.body.innerText.includes(t)", arg=text, timeout=15_000)


def test_assert_figures_render_names_a_missing_and_an_empty_figure(
    watched_page: WatchedPage, tmp_path: Path
) -> None:
    """The check can fail: one figure is absent, another is a plotly graph with no data."""
    drawn = go.Figure(go.Scatter(x=[1, 2, 3], y=[3, 1, 2], mode="markers"))
    sections = [f'<section id="figure-{name}">{plotly.io.to_html(fig, full_html=False, include_plotlyjs=False)}</section>'
                for name, fig in (("pareto", drawn), ("budget", go.Figure()))]
    html = tmp_path / "page.html"
    html.write_text(f"<html><head><script>{plotly.offline.get_plotlyjs()}</script></head>"
                    f"<body>{''.join(sections)}</body></html>", encoding="utf-8")
    page = watched_page.page
    page.goto(html.as_uri())
    assert assert_figures_render(page, ["pareto"]) == {"pareto": 3}
    with pytest.raises(AssertionError) as info:
        assert_figures_render(page, ["pareto", "budget", "importances"], timeout_s=0.5)
    assert "figures not on the page: ['importances']; figures without drawn marks: ['budget']" in str(info.value)
    assert_no_errors(watched_page)


def test_dashboard_study_page_shows_the_pareto_front_and_our_figures(
    watched_page: WatchedPage, dashboard: Dashboard, searched_study: SearchedStudy, artifacts: Path
) -> None:
    page = watched_page.page
    page.goto(f"{dashboard.url}/dashboard/studies/{dashboard.study_id}")
    wait_for_text(page, searched_study.name)
    # optuna-dashboard draws every complete trial on the Pareto front plot, the front in colour
    pareto = assert_figures_render(page, ["pareto-front"], element_id="graph-{}")
    assert pareto["pareto-front"] == searched_study.complete_trials
    # our figures, registered by orca-search, as user-defined plots
    assert_figures_render(page, searched_study.figures, element_id="user-defined-plot:orca-{}")
    page.screenshot(path=artifacts / "dashboard-study.png", full_page=True)
    page.locator("#graph-pareto-front").screenshot(path=artifacts / "dashboard-pareto.png")
    assert_no_errors(watched_page)


def test_dashboard_note_shows_the_leaderboard(
    watched_page: WatchedPage, dashboard: Dashboard, searched_study: SearchedStudy, artifacts: Path
) -> None:
    page = watched_page.page
    page.goto(f"{dashboard.url}/dashboard/studies/{dashboard.study_id}/note")
    wait_for_text(page, "Leaderboard")
    assert page.locator("table").count() >= 1
    for line in ("orca-automl report", "MiniRocket", "1-NN"):
        assert line in page.inner_text("body"), line
    page.screenshot(path=artifacts / "dashboard-note.png", full_page=True)
    assert_no_errors(watched_page)


def test_report_page_renders_offline(
    watched_page: WatchedPage, searched_study: SearchedStudy, artifacts: Path
) -> None:
    """The report orca-search wrote opens with every request but file:// ones refused: each
    figure section holds a drawn plotly graph, the figures the report API names, in order."""
    blocked: list[str] = []

    def file_only(route: Route) -> None:
        if route.request.url.startswith("file:"):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    page = watched_page.page
    page.context.route("**/*", file_only)
    page.goto(searched_study.report_html.as_uri())
    figures = searched_study.figures
    assert figures
    assert_figures_render(page, figures)
    sections = page.eval_on_selector_all("section.orca-figure", "els => els.map(e => e.id)")
    assert sections == [f"figure-{name}" for name in figures]
    page.screenshot(path=artifacts / "report.png", full_page=True)
    assert not blocked, f"the report fetched from the network: {blocked}"
    assert_no_errors(watched_page)
