"""The report's two documents: one self-contained HTML page (plotly.js inline, so it opens
offline and from an archive) and a Markdown summary that links the PNG copies.

Every text that comes from the study (names, configurations, errors) is escaped: a study
name is user input and the page must never run it.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Mapping

import plotly.graph_objects as go
import plotly.io
import plotly.offline

from orca_automl.report._facts import LeaderRow, StudyFacts, spread_text
from orca_automl.report._figures import FIGURES, Missing
from orca_automl.search import format_seconds, short_value

LEADERBOARD_COLUMNS = ("trial", "kind", "configuration", "validation", "test", "GFLOPs",
                       "device time", "decision")

STYLE = """
body { font-family: system-ui, -apple-system, Segoe UI, sans-serif; margin: 2em auto;
       max-width: 1100px; color: #222; padding: 0 1em; }
h1 { margin-bottom: 0.2em; } .meta { color: #555; }
table { border-collapse: collapse; width: 100%; font-size: 0.9em; margin: 1em 0 2em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.35em 0.5em; text-align: left;
         vertical-align: top; }
th { background: #f5f5f5; } tr.winner { background: #fff7d6; font-weight: 600; }
tr.baseline { color: #8a4b00; } section.orca-figure { margin: 2em 0; }
p.caption { color: #555; max-width: 900px; } p.missing { color: #a33; }
"""


def summary_lines(facts: StudyFacts) -> list[str]:
    """The study in a few sentences: task, protocol, budget, trials, winner."""
    counts: dict[str, int] = {}
    for r in facts.records:
        counts[r.state.name.lower()] = counts.get(r.state.name.lower(), 0) + 1
    trials = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    lines = [
        f"Task {facts.task}, scored by {facts.metric} with {facts.validation}.",
        f"Device time spent: {format_seconds(facts.spent)} of {format_seconds(facts.budget_total)}"
        f" over {len(facts.sessions)} budget session(s); {len(facts.records)} trials "
        f"({trials}).",
    ]
    win = facts.winner
    if win is None:
        lines.append("No winner yet: no configuration has been trained in full.")
    else:
        test = f", test {win.test:.4f}" if win.test is not None else ""
        lines.append(f"Winner: trial {win.trial}, {win.configuration}: validation "
                     f"{spread_text(win)}{test}; model folder {win.model_dir or '-'}.")
    return lines


def _cells(row: LeaderRow) -> list[str]:
    return [str(row.trial), row.kind + ("" if row.state == "COMPLETE" else f" ({row.state})"),
            row.configuration, spread_text(row), short_value(row.test), short_value(row.cost),
            format_seconds(row.device_seconds), row.decision]


def leaderboard_markdown(facts: StudyFacts) -> str:
    """The leaderboard as a Markdown table (also the study's note in optuna-dashboard)."""
    if not facts.leaderboard:
        return "_No configuration has been promoted to full training yet._"
    rows = ["| " + " | ".join(LEADERBOARD_COLUMNS) + " |",
            "|" + "---|" * len(LEADERBOARD_COLUMNS)]
    for row in facts.leaderboard:
        cells = [c.replace("|", "\\|") for c in _cells(row)]
        if row.winner:
            cells[0] = f"**{cells[0]} (winner)**"
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def markdown(facts: StudyFacts, figures: Mapping[str, go.Figure | Missing],
             pngs: Mapping[str, str]) -> str:
    """The Markdown summary: the study, its leaderboard, and each figure's PNG."""
    parts = [f"# Study {facts.study_name}", "", *summary_lines(facts), "",
             f"Storage: `{facts.storage}`. Written {_now()}.", "", "## Leaderboard", "",
             leaderboard_markdown(facts), ""]
    for name, fig in figures.items():
        spec = FIGURES[name]
        parts += [f"## {spec.title}", "", spec.caption, ""]
        if isinstance(fig, Missing):
            parts += [f"_Not drawn: {fig.reason}._", ""]
        else:
            parts += [f"![{spec.title}]({pngs[name]})", ""]
    return "\n".join(parts)


def page(facts: StudyFacts, figures: Mapping[str, go.Figure | Missing]) -> str:
    """The HTML page: summary, leaderboard, then one section per figure."""
    e = html.escape
    head = "".join(f"<th>{e(c)}</th>" for c in LEADERBOARD_COLUMNS)
    body_rows = []
    for row in facts.leaderboard:
        kind = "winner" if row.winner else row.kind
        cells = "".join(f"<td>{e(c)}</td>" for c in _cells(row))
        body_rows.append(f'<tr class="{kind}">{cells}</tr>')
    table = (f'<table id="leaderboard"><thead><tr>{head}</tr></thead><tbody>'
             f'{"".join(body_rows)}</tbody></table>' if body_rows else
             '<p id="leaderboard">No configuration has been promoted to full training yet.</p>')
    sections = []
    for name, fig in figures.items():
        spec = FIGURES[name]
        if isinstance(fig, Missing):
            content = f'<p class="missing">Not drawn: {e(fig.reason)}.</p>'
        else:
            content = plotly.io.to_html(fig, full_html=False, include_plotlyjs=False,
                                        div_id=f"plot-{name}", config={"responsive": True})
        cls = "orca-figure" if not isinstance(fig, Missing) else "orca-figure-missing"
        sections.append(f'<section class="{cls}" id="figure-{e(name)}"><h2>{e(spec.title)}</h2>'
                        f'<p class="caption">{e(spec.caption)}</p>{content}</section>')
    summary = "".join(f"<p>{e(line)}</p>" for line in summary_lines(facts))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>orca-automl report: {e(facts.study_name)}</title>
<style>{STYLE}</style>
<script type="text/javascript">{plotly.offline.get_plotlyjs()}</script>
</head><body>
<h1>Study {e(facts.study_name)}</h1>
<p class="meta">{e(facts.storage)} &middot; written {e(_now())}</p>
{summary}
<h2>Leaderboard</h2>
{table}
{"".join(sections)}
</body></html>
"""


def _now() -> str:
    return dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
