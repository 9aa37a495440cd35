"""The report's figures, one plotly figure each, registered in `FIGURES` where they are
defined; Optuna's visualization draws what it offers (Pareto front, importances).

A figure that has nothing to show for a study (no full run yet, no alignment group with two
scored trials, ...) returns `Missing` with the reason, which the report prints in its place.
"""

from __future__ import annotations

import math
import re
import textwrap
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import optuna
import plotly.graph_objects as go
from optuna.trial import TrialState

from orca_automl.config import Stage
from orca_automl.report._facts import StudyFacts
from orca_automl.search import TrialRecord, alignment_group, summarize

#: Colours of the record kinds, the same in every figure.
COLORS = {"short": "#9aa5b1", "full": "#1f77b4", "ensemble": "#2ca02c", "baseline": "#ff7f0e",
          "pruned": "#d62728", "failed": "#7f7f7f", "winner": "#e6b800"}
#: How many trials the curve figures draw.
TOP_CURVES = 5
#: Longest line of a legend entry: a longer one squeezes the plot (a dashboard card is 450 px).
LEGEND_LINE = 60


@dataclass(frozen=True)
class Missing:
    """Why a figure is not drawn for this study."""

    reason: str


Build = Callable[[StudyFacts], "go.Figure | Missing"]


@dataclass(frozen=True)
class FigureSpec:
    name: str
    title: str
    caption: str
    build: Build


FIGURES: dict[str, FigureSpec] = {}


def figure(name: str, title: str, caption: str) -> Callable[[Build], Build]:
    """Register a figure builder under `name` (the report shows them in registration order)."""
    def register(build: Build) -> Build:
        if name in FIGURES:
            raise ValueError(f"figure {name!r} is registered twice")
        FIGURES[name] = FigureSpec(name, title, caption, build)
        return build
    return register


def _layout(fig: go.Figure, title: str, x: str, y: str) -> go.Figure:
    fig.update_layout(title={"text": title}, xaxis_title=x, yaxis_title=y, template="plotly_white",
                      legend={"orientation": "h", "y": -0.2}, showlegend=True,
                      margin={"t": 60, "b": 90},
                      width=900, height=520)
    return fig


def _study_of(facts: StudyFacts, records: list[TrialRecord]) -> optuna.Study:
    """An in-memory two-objective study holding `records`' trials, for Optuna's plots."""
    verbosity = optuna.logging.get_verbosity()  # quiet its "study created" line, then restore
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(directions=["maximize", "minimize"])
    finally:
        optuna.logging.set_verbosity(verbosity)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([facts.metric, "GFLOPs per sample"])
    wanted = {r.number for r in records}
    study.add_trials([t for t in facts.frozen if t.number in wanted])
    return study


@figure("pareto", "Pareto front: validation score against inference cost",
        "Every fully trained configuration and ensemble, with the short (screening) runs in "
        "grey; the line joins the full runs no other full run beats on both score and cost; "
        "the winner is the star (or the baseline line marked winner), the baselines are the "
        "dashed lines (their cost is not measured). optuna-dashboard draws Optuna's own Pareto front of all trials beside it.")
def pareto(facts: StudyFacts) -> go.Figure | Missing:
    served = facts.of_stage(Stage.FULL, Stage.ENSEMBLE)
    if not served:
        return Missing("no configuration has been trained in full yet")
    fig = go.Figure()
    for kind, records in (("short", facts.of_stage(Stage.SHORT)),
                          ("full", facts.of_stage(Stage.FULL)),
                          ("ensemble", facts.of_stage(Stage.ENSEMBLE))):
        if records:
            fig.add_trace(go.Scatter(
                x=[r.cost for r in records], y=[r.val_score for r in records], mode="markers",
                name=f"{kind} runs", text=[f"trial {r.number}: {summarize(r)}" for r in records],
                marker={"color": COLORS[kind], "size": 7 if kind == "short" else 11}))
    front = pareto_front(served)
    fig.add_trace(go.Scatter(x=[r.cost for r in front], y=[r.val_score for r in front],
                             mode="lines", line_shape="hv", name="Pareto front (full runs)",
                             line={"color": COLORS["full"]}))
    win = facts.winner
    if win is not None and win.val is not None and win.cost is not None:
        fig.add_trace(go.Scatter(x=[win.cost], y=[win.val], mode="markers",
                                 name=f"winner (trial {win.trial})",
                                 marker={"symbol": "star", "size": 18, "color": COLORS["winner"],
                                         "line": {"width": 1, "color": "black"}}))
    _baselines(fig, facts)
    return _layout(fig, "Pareto front: validation score against inference cost",
                   "GFLOPs per sample (lower is cheaper)", f"validation {facts.metric}")


def pareto_front(records: list[TrialRecord]) -> list[TrialRecord]:
    """The records no other record beats on both objectives (higher score, lower cost), by
    cost."""
    def dominated(r: TrialRecord) -> bool:
        assert r.val_score is not None and r.cost is not None
        return any(o.val_score is not None and o.cost is not None and o.val_score >= r.val_score
                   and o.cost <= r.cost and (o.val_score > r.val_score or o.cost < r.cost)
                   for o in records)
    return sorted((r for r in records if not dominated(r)),
                  key=lambda r: (r.cost, -(r.val_score or 0.0)))


def _baselines(fig: go.Figure, facts: StudyFacts) -> None:
    """The baselines' validation scores as dashed horizontal lines."""
    winner = facts.decision.winner if facts.decision else None
    for b in facts.of_stage(Stage.BASELINE):
        if b.val_score is not None:
            won = " (winner)" if b.number == winner else ""
            fig.add_hline(y=b.val_score, line_dash="dash", line_color=COLORS["baseline"],
                          annotation_text=f"{b.plan.baseline} {b.val_score:.4f}{won}",
                          annotation_position="bottom right")


@figure("best_vs_budget", "Best validation score against device time spent",
        "Best score so far of the short (screening) and full runs, against the study's device "
        "time in the order trials finished; each budget session (a resume) is shaded.")
def best_vs_budget(facts: StudyFacts) -> go.Figure | Missing:
    order = facts.in_finishing_order()
    if not any(r.val_score is not None for r in order if r.plan.stage != Stage.BASELINE):
        return Missing("no trial has a validation score yet")
    fig = go.Figure()
    lines: dict[str, tuple[list[float], list[float]]] = {"short": ([], []), "full": ([], [])}
    best = {"short": -math.inf, "full": -math.inf}
    spent = 0.0
    for r in order:
        spent += r.result.device_seconds
        stage = "full" if r.plan.stage in (Stage.FULL, Stage.ENSEMBLE) else r.plan.stage.value
        if stage not in lines or r.val_score is None:
            continue
        best[stage] = max(best[stage], r.val_score)
        lines[stage][0].append(spent)
        lines[stage][1].append(best[stage])
    for stage, (x, y) in lines.items():
        if x:
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", line_shape="hv",
                                     name=f"best {stage} run", line={"color": COLORS[stage]}))
    _baselines(fig, facts)
    for span in facts.sessions:
        if span.index % 2 == 1 and span.end > span.start:
            fig.add_vrect(x0=span.start, x1=span.end, fillcolor="#eeeeee", line_width=0,
                          layer="below")
        fig.add_vline(x=span.start, line_dash="dot", line_color="#555555",
                      annotation_text=f"session {span.index + 1} ({span.budget})",
                      annotation_position="top right")
    return _layout(fig, "Best validation score against device time spent",
                   "device seconds spent (all sessions)", f"best validation {facts.metric}")


@figure("alignment_vs_score", "Final alignment loss against validation score",
        "Short trials per alignment group (backbone, distance, reference data): the pruner "
        "prunes before refine only where lower loss has predicted a higher score (Spearman "
        "rho < 0 at one-sided p <= 0.1); its threshold is the dotted line.")
def alignment_vs_score(facts: StudyFacts) -> go.Figure | Missing:
    groups: dict[str, list[TrialRecord]] = {}
    for r in facts.of_stage(Stage.SHORT, state=None):
        if r.plan.config is None or r.result.final_align_loss is None:
            continue
        if not math.isfinite(r.result.final_align_loss):
            continue
        group = alignment_group(r.plan.config)
        if group is not None:
            groups.setdefault(group, []).append(r)
    if not groups:
        return Missing("no short trial recorded a final alignment loss")
    evidence = (facts.pruning.get("groups") or {}) if facts.pruning else {}
    scored = [r.val_score for rs in groups.values() for r in rs if r.val_score is not None]
    floor = min(scored) if scored else 0.0
    fig = go.Figure()
    for k, (group, rs) in enumerate(sorted(groups.items())):
        e = evidence.get(group) or {}
        rho, p = e.get("spearman_rho"), e.get("p_value")
        said = (f"rho={rho:.2f}, p={p:.3f}" if rho is not None and p is not None
                else f"{len(rs)} trials: too few to calibrate")
        prunes = e.get("loss_threshold") is not None and (e.get("prune_fraction") or 0) > 0
        verdict = "prunes above the line" if prunes else "does not prune"
        ok = [r for r in rs if r.val_score is not None]
        fig.add_trace(go.Scatter(
            x=[r.result.final_align_loss for r in ok], y=[r.val_score for r in ok],
            mode="markers", name=legend_label(f"{group} ({said}; {verdict})"), legendgroup=str(k),
            text=[f"trial {r.number}: {summarize(r)}" for r in ok],
            marker={"size": 9}))
        cut = [r for r in rs if r.val_score is None]
        if cut:
            fig.add_trace(go.Scatter(
                x=[r.result.final_align_loss for r in cut], y=[floor] * len(cut),
                mode="markers", name=f"pruned or failed before a score ({len(cut)})",
                legendgroup=str(k), text=[f"trial {r.number}: {r.state.name}" for r in cut],
                marker={"symbol": "x", "size": 9, "color": COLORS["pruned"]}))
        if prunes:
            fig.add_vline(x=e["loss_threshold"], line_dash="dot", line_color=COLORS["pruned"])
    return _layout(fig, "Final alignment loss against validation score (short trials)",
                   "final alignment loss", f"validation {facts.metric}")


def legend_label(text: str) -> str:
    """`text` for a legend: a local folder by its last name (a model path can be 100
    characters long), wrapped into lines of at most `LEGEND_LINE` characters."""
    text = re.sub(r'"/[^"]*/([^"/]+)/?"', r'".../\1"', text)
    return "<br>".join(textwrap.wrap(text, LEGEND_LINE, break_on_hyphens=False))


def _top(facts: StudyFacts, stages: tuple[Stage, ...]) -> list[TrialRecord]:
    return sorted(facts.of_stage(*stages), key=TrialRecord.rank_key)[:TOP_CURVES]


@figure("alignment_curves", "Alignment curves of the top trials",
        "The distance between the embedded task data and the reference data during the align "
        "stage, for the best short and full trials that align.")
def alignment_curves(facts: StudyFacts) -> go.Figure | Missing:
    top = [r for r in _top(facts, (Stage.FULL,)) + _top(facts, (Stage.SHORT,))
           if len(r.result.align_curve) > 1]
    if not top:
        return Missing("none of the top trials ran an align stage")
    fig = go.Figure()
    for r in top:
        curve = r.result.align_curve
        fig.add_trace(go.Scatter(x=list(range(len(curve))), y=list(curve), mode="lines",
                                 name=f"trial {r.number} ({r.plan.stage.value})",
                                 line={"dash": "solid" if r.plan.stage == Stage.FULL else "dot"}))
    return _layout(fig, "Alignment curves of the top trials", "align step", "alignment loss")


@figure("refine_curves", "Validation curves of the top trials during refine",
        "Validation score at each evaluation of the refine stage (the mean over the trial's "
        "folds under cross-validation), for the best short and full trials.")
def refine_curves(facts: StudyFacts) -> go.Figure | Missing:
    top = [r for r in _top(facts, (Stage.FULL,)) + _top(facts, (Stage.SHORT,))
           if r.result.val_curve]
    if not top:
        return Missing("none of the top trials recorded a validation curve")
    fig = go.Figure()
    for r in top:
        steps, scores = zip(*r.result.val_curve, strict=True)
        fig.add_trace(go.Scatter(x=list(steps), y=list(scores), mode="lines+markers",
                                 name=f"trial {r.number} ({r.plan.stage.value})",
                                 line={"dash": "solid" if r.plan.stage == Stage.FULL else "dot"}))
    return _layout(fig, "Validation curves of the top trials during refine", "refine step",
                   f"validation {facts.metric}")


@figure("importances", "Parameter importances",
        "How much of the variation of the short trials' validation score each searched "
        "parameter explains (Optuna's fANOVA evaluator).")
def importances(facts: StudyFacts) -> go.Figure | Missing:
    short = [r for r in facts.of_stage(Stage.SHORT) if r.params and r.val_score is not None]
    varied = {k for k in {k for r in short for k in r.params}
              if len({repr(r.params.get(k)) for r in short}) > 1}
    if len(short) < 3 or not varied:
        return Missing(f"{len(short)} scored short trials: importances need 3 or more with "
                       "parameters that vary")
    try:
        fig = optuna.visualization.plot_param_importances(
            _study_of(facts, short), target=lambda t: t.values[0],
            evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0),
            target_name=f"validation {facts.metric}")
    except (RuntimeError, ValueError) as exc:  # e.g. a search space that changed in between
        return Missing(f"Optuna could not evaluate importances: {exc}")
    fig.update_layout(width=900, height=520, template="plotly_white")
    return fig


#: The budget's categories, in the order the figure lists them.
SPENDING = ("short, completed", "short, pruned", "full runs", "baselines", "ensembles",
            "failed or interrupted")


def spending_category(record: TrialRecord) -> str:
    """Where a finished trial's device time goes in the budget figure."""
    if record.state == TrialState.FAIL:
        return "failed or interrupted"
    if record.plan.stage == Stage.SHORT:
        return "short, pruned" if record.state == TrialState.PRUNED else "short, completed"
    return {Stage.FULL: "full runs", Stage.BASELINE: "baselines",
            Stage.ENSEMBLE: "ensembles"}[record.plan.stage]


@figure("budget", "Where the budget went",
        "Device seconds charged to the budget, by kind of run and budget session.")
def budget(facts: StudyFacts) -> go.Figure | Missing:
    done = [r for r in facts.records if r.finished]
    if not done:
        return Missing("no trial has finished yet")
    fig = go.Figure()
    sessions = sorted({r.plan.session for r in done})
    for session in sessions:
        seconds = {c: 0.0 for c in SPENDING}
        for r in done:
            if r.plan.session == session:
                seconds[spending_category(r)] += r.result.device_seconds
        fig.add_trace(go.Bar(x=[seconds[c] for c in SPENDING], y=list(SPENDING), orientation="h",
                             name=f"session {session + 1}"))
    fig.update_layout(barmode="stack", yaxis={"autorange": "reversed"})
    total = f"{facts.spent:.0f} of {facts.budget_total:.0f} device seconds spent"
    return _layout(fig, f"Where the budget went ({total})", "device seconds", "")
