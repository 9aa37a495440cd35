"""PNG copies of the report's plotly figures, redrawn with matplotlib.

Plotly's own PNG export (kaleido) drives a Chrome browser, which servers often lack, so the
report redraws each figure's traces with matplotlib's Agg canvas: no display, no browser. The
figures are built from `matplotlib.figure.Figure` directly, never through pyplot, so nothing is
registered globally: no pyplot state shared between calls or threads, and a figure is freed
with its last reference (nothing to close).

Drawn: `scatter`/`scattergl` traces (modes `markers`, `lines`, `lines+markers`; marker color as
one color, a color per point or numbers on a colorscale with its colorbar; marker size, symbol,
outline and opacity; line color, width, dash and shape), `bar` traces (vertical and horizontal,
with `base`, `width` and `offset`) placed as `barmode` says ("group", plotly's default, side by
side; "stack" and "relative" piled up per position; "overlay" over one another; `offsetgroup`,
`bargap`, `bargroupgap`), several traces per axes, subplots placed by the layout's axis domains,
secondary y axes (`overlaying`) on a twin axes with its ticks at the right, the title, axis
titles, log/category/date axes, axis ranges, reversed axes and the legend (under the plots when
its `orientation` is "h"). Layout shapes of type "line", "rect" and "circle" (what `add_hline`,
`add_vline`, `add_hrect` and `add_vrect` add), in data coordinates or fractions of an axis
domain or of the paper, with their line color, width and dash, fill color, opacity and layer.
Layout annotations (the labels those add with `annotation_text`, subplot titles, ...) at their
x and y by the same references, anchored as plotly anchors them, with font size and color,
angle, shifts, background and border colors, and their arrow.
Missing values (None, NaN, non-positive values on a log axis) are skipped and break lines, as in
plotly. Not drawn: other trace types (heatmap, contour, pie, ...: the image says "heatmap trace
not drawn" instead), other shapes ("path", and shapes sized in pixels: noted in the image the
same way), shape labels, arrow tails placed in axis coordinates (`axref`/`ayref`: plotly's
default tail offset instead), `barnorm`, text labels of traces, hover text, `fill`, error bars,
and the template's styling other than its colorway and font (the background stays white;
numbers on no colorscale use plotly's default, Plasma).
"""

from __future__ import annotations

import colorsys
import math
import numbers
import os
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import plotly.colors
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Colormap, LinearSegmentedColormap, Normalize, to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Ellipse, Rectangle
from matplotlib.text import Annotation
from matplotlib.transforms import Affine2D, Transform, blended_transform_factory

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = ["save_png", "to_matplotlib"]

RGBA = tuple[float, float, float, float]
AxisPair = tuple[str, str]

# Plotly's default colorway and sequential colorscale, for figures whose template sets none.
_PLOTLY_COLORWAY = ("#636efa", "#EF553B", "#00cc96", "#ab63fa", "#FFA15A", "#19d3f3", "#FF6692",
                    "#B6E880", "#FF97FF", "#FECB52")
_PLOTLY_COLORSCALE = "Plasma"
_SCATTER_TYPES = ("scatter", "scattergl")
_DRAWN_TYPES = (*_SCATTER_TYPES, "bar")
_SYMBOLS = {"circle": "o", "square": "s", "diamond": "D", "cross": "P", "x": "X",
            "triangle-up": "^", "triangle-down": "v", "triangle-left": "<",
            "triangle-right": ">", "pentagon": "p", "hexagon": "h", "star": "*"}
_DASHES: dict[str, Any] = {"solid": "-", "dot": ":", "dash": "--", "dashdot": "-.",
                           "longdash": (0, (8, 3)), "longdashdot": (0, (8, 3, 2, 3))}
_LINE_SHAPES = {"hv": "steps-post", "vh": "steps-pre", "hvh": "steps-mid"}
_AXIS_TYPES = {"linear": "linear", "log": "log", "date": "date", "category": "category",
               "multicategory": "category"}
_COLOR_FUNCTION = re.compile(r"(rgba?|hsla?)\((.*)\)")
# Shapes' `layer` as matplotlib z-orders: under the grid lines (0.5), between them and the
# traces (bars 1, lines 2), over the traces (plotly's default).
_SHAPE_LAYERS = {"below": 0.1, "between": 0.8, "above": 2.5}
_SHAPE_KINDS = ("line", "rect", "circle")
_ANNOTATION_ZORDER = 3.5
_PLOTLY_LINE = (0.267, 0.267, 0.267, 1.0)  # plotly's "#444", its shapes' and text's default
_MS_PER_DAY = 86_400_000.0  # plotly counts date spans in ms, matplotlib in days


def save_png(figure: go.Figure, path: Path, *, width: int = 900, height: int = 560,
             dpi: int = 100) -> Path:
    """Write `figure` as a `width` x `height` pixel PNG at `path` and return the path.

    The image goes to a temporary file in the same folder first and is then renamed over
    `path`, so a crash never leaves a half-written PNG (an earlier file stays as it was).
    """
    path = Path(path)
    drawn = to_matplotlib(figure, width=width, height=height, dpi=dpi)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with partial.open("xb") as out:
            drawn.savefig(out, format="png", dpi=dpi)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return path


def to_matplotlib(figure: go.Figure, *, width: int = 900, height: int = 560,
                  dpi: int = 100) -> Figure:
    """Redraw `figure` as a matplotlib Figure of `width` x `height` pixels (see the module
    docstring for what is drawn)."""
    if width <= 0 or height <= 0 or dpi <= 0:
        raise ValueError(f"width, height and dpi must be positive, got {width}, {height}, {dpi}")
    layout = figure.layout
    drawn = Figure(figsize=(width / dpi, height / dpi), dpi=dpi, layout="constrained")
    FigureCanvasAgg(drawn)
    shown = [(index, trace) for index, trace in enumerate(figure.data)
             if getattr(trace, "visible", None) in (None, True)]
    pairs = {_pair(trace): None for _, trace in shown}
    axes = _make_axes(drawn, layout, list(pairs) or [("x", "y")])
    traces = [(index, trace) for index, trace in shown if trace.type in _DRAWN_TYPES]
    columns = {index: _columns(trace) for index, trace in traces}
    kinds = _axis_kinds(layout, traces, columns)
    prepared = _prepare_axes(layout, axes, kinds, traces, columns)
    bars = _place_bars(layout, axes, kinds, traces, columns)

    template = layout.template.layout.colorway if layout.template is not None else None
    colorway = layout.colorway or template or _PLOTLY_COLORWAY
    px = 72 / dpi  # plotly sizes are pixels, matplotlib's are points
    skipped: dict[Axes, list[str]] = {}
    colorbars: list[tuple[ScalarMappable, str]] = []
    legend_entries = 0
    for _, trace in shown:
        if trace.type not in _DRAWN_TYPES:
            skipped.setdefault(axes[_pair(trace)], []).append(f"{trace.type} trace not drawn")
    for index, trace in traces:
        ax = axes[_pair(trace)]
        axis_kinds = (kinds[_pair(trace)[0]], kinds[_pair(trace)[1]])
        default = _rgba(colorway[index % len(colorway)], (0.0, 0.0, 0.0, 1.0))
        in_legend = trace.showlegend is not False
        legend_entries += in_legend
        name = trace.name if trace.name is not None else f"trace {index}"
        label = _plain(name) if in_legend else "_nolegend_"
        if index in bars:
            colorbar = _draw_bar(ax, trace, bars[index], default=default, label=label, px=px)
        else:
            colorbar = _draw_scatter(ax, trace, columns[index], axis_kinds, default=default,
                                     label=label, px=px)
        if colorbar is not None:
            colorbars.append(colorbar)
    for shape in layout.shapes:
        host, note = _draw_shape(layout, axes, kinds, shape, px)
        if note is not None:
            skipped.setdefault(host or next(iter(axes.values())), []).append(note)
    font = _annotation_font(layout)
    labels = [_draw_annotation(layout, axes, kinds, annotation, font, px)
              for annotation in layout.annotations]

    for ax, letter, name in prepared:
        _set_range(ax, letter, _axis_layout(layout, name), kinds.get(name, "linear"))
    for placed, anchors in filter(None, labels):  # once the ranges are final
        if not all(ref.shows(letter, value) for ref, letter, value in anchors):
            placed.set_visible(False)  # plotly hides an annotation whose data is off its axis
            placed.set_in_layout(False)
    for ax, notes in skipped.items():
        ax.text(0.99, 0.01, "\n".join(notes), transform=ax.transAxes, ha="right", va="bottom",
                fontsize=8, color="0.35")
    distinct = list(dict.fromkeys(axes.values()))
    for mappable, title in colorbars:  # at the right of all plots, as plotly draws them
        drawn.colorbar(mappable, ax=distinct, label=_plain(title))
    _title_and_legend(drawn, layout, distinct, legend_entries)
    return drawn


def _pair(trace: Any) -> AxisPair:
    """The (x axis, y axis) a trace is drawn on; traces without axes go on the first pair."""
    return (getattr(trace, "xaxis", None) or "x", getattr(trace, "yaxis", None) or "y")


def _axis_layout(layout: Any, name: str) -> Any:
    """The layout object of axis `name` ("x", "y2", ...), or None when the layout has none."""
    return getattr(layout, f"{name[0]}axis{name[1:]}", None)


def _domain(layout: Any, name: str) -> tuple[float, float]:
    axis = _axis_layout(layout, name)
    domain = axis.domain if axis is not None and axis.domain is not None else (0.0, 1.0)
    return float(domain[0]), float(domain[1])


def _cell(layout: Any, pair: AxisPair) -> tuple[tuple[float, float], tuple[float, float]]:
    """The (x, y) domains of an axis pair's plotting area: a y axis `overlaying` another is
    drawn in that one's area."""
    overlaid = getattr(_axis_layout(layout, pair[1]), "overlaying", None)
    return _domain(layout, pair[0]), _domain(layout, overlaid or pair[1])


def _make_axes(drawn: Figure, layout: Any, pairs: list[AxisPair]) -> dict[AxisPair, Axes]:
    """One matplotlib Axes per plotting area, placed by the axes' domains (a grid of subplots);
    a y axis `overlaying` another (a secondary y axis) gets a twin Axes with its ticks at the
    right; other pairs with the same domains share one Axes."""
    overlaid = {pair: getattr(_axis_layout(layout, pair[1]), "overlaying", None) for pair in pairs}
    cells = {pair: _cell(layout, pair) for pair in pairs}
    columns = sorted({cell[0] for cell in cells.values()})
    rows = sorted({cell[1] for cell in cells.values()}, reverse=True)  # plotly's y grows upwards
    grid = drawn.add_gridspec(
        len(rows), len(columns),
        width_ratios=[max(end - start, 1e-3) for start, end in columns],
        height_ratios=[max(end - start, 1e-3) for start, end in rows])
    made: dict[tuple[int, int], Axes] = {}
    twins: dict[str, Axes] = {}
    axes: dict[AxisPair, Axes] = {}
    for pair, (xdomain, ydomain) in cells.items():
        where = (rows.index(ydomain), columns.index(xdomain))
        if where not in made:
            made[where] = drawn.add_subplot(grid[where])
        axes[pair] = made[where]
        if overlaid[pair] and overlaid[pair] != pair[1]:
            if pair[1] not in twins:
                twins[pair[1]] = made[where].twinx()
            axes[pair] = twins[pair[1]]
    return axes


def _columns(trace: Any) -> tuple[list[Any], list[Any]]:
    """A trace's x and y values as lists of equal length; a missing one counts from x0/y0 by
    dx/dy, as plotly does; longer data is cut to the shorter, as plotly does."""
    x = [] if trace.x is None else list(trace.x)
    y = [] if trace.y is None else list(trace.y)
    if trace.x is None and trace.y is not None:
        x = [(trace.x0 or 0) + (trace.dx or 1) * i for i in range(len(y))]
    if trace.y is None and trace.x is not None:
        y = [(trace.y0 or 0) + (trace.dy or 1) * i for i in range(len(x))]
    n = min(len(x), len(y))
    return x[:n], y[:n]


def _value_kind(value: Any) -> str | None:
    """"number", "date" or "category" for one data value; None when it is missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, np.datetime64):
        return None if np.isnat(value) else "date"
    if isinstance(value, date):
        return "date"
    if isinstance(value, numbers.Number):
        return "number"
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return "category"
        return "number"
    return "category"


def _axis_kinds(layout: Any, traces: list[tuple[int, Any]],
                columns: dict[int, tuple[list[Any], list[Any]]]) -> dict[str, str]:
    """Each axis's type: the layout's when set, else "category" when any value on it is text,
    "date" when any is a date, "linear" otherwise (plotly guesses date strings too; we don't)."""
    seen: dict[str, set[str | None]] = {}
    for index, trace in traces:
        for name, values in zip(_pair(trace), columns[index], strict=True):
            seen.setdefault(name, set()).update(_value_kind(value) for value in values)
    kinds = {}
    for name, found in seen.items():
        axis = _axis_layout(layout, name)
        declared = _AXIS_TYPES.get(axis.type) if axis is not None and axis.type else None
        if declared is not None:
            kinds[name] = declared
        else:
            kinds[name] = next((kind for kind in ("category", "date") if kind in found), "linear")
    return kinds


def _convert(values: list[Any], kind: str) -> np.ndarray:
    """Values ready for matplotlib: floats (NaN where missing) on linear and log axes, text
    (None where missing) on category axes, datetime64 (NaT where missing) on date axes."""
    if kind == "category":
        return np.array([None if _value_kind(value) is None else str(value) for value in values],
                        dtype=object)
    if kind == "date":
        import pandas as pd  # only date axes need its parser

        return np.asarray(pd.to_datetime(pd.Series(values, dtype=object), errors="coerce",
                                         format="mixed").to_numpy(dtype="datetime64[ns]"))
    numbers_ = np.array([_float(value) for value in values], dtype=float)
    if kind == "log":
        numbers_[numbers_ <= 0] = np.nan  # plotly leaves out what a log axis cannot show
    return numbers_


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _present(values: np.ndarray) -> np.ndarray:
    """Which entries of a `_convert` result are not missing."""
    if values.dtype == object:
        return np.array([value is not None for value in values], dtype=bool)
    if np.issubdtype(values.dtype, np.datetime64):
        return ~np.isnat(values)
    return ~np.isnan(values)


def _plottable(values: np.ndarray) -> Any:
    """Text goes to matplotlib as a list (its category axes want plain strings)."""
    return list(values) if values.dtype == object else values


def _prepare_axes(layout: Any, axes: dict[AxisPair, Axes], kinds: dict[str, str],
                  traces: list[tuple[int, Any]],
                  columns: dict[int, tuple[list[Any], list[Any]]],
                  ) -> list[tuple[Axes, str, str]]:
    """Scales, category order, titles and shared axes, before any trace is drawn (the category
    order must be known before the first text value reaches matplotlib); returns the
    (Axes, "x" or "y", axis name) of each axis prepared, for `_set_range` after drawing."""
    first: dict[str, Axes] = {}
    for pair, ax in axes.items():
        for name in pair:
            first.setdefault(name, ax)
    done: set[tuple[Axes, str]] = set()
    prepared: list[tuple[Axes, str, str]] = []
    for pair, ax in axes.items():
        for letter, name in zip("xy", pair, strict=True):
            if (ax, letter) in done:  # an overlaid axis: the first pair on this Axes decides
                continue
            done.add((ax, letter))
            prepared.append((ax, letter, name))
            side = "xy".index(letter)
            values = [value for index, trace in traces if _pair(trace)[side] == name
                      for value in columns[index][side]]
            _prepare_axis(ax, letter, _axis_layout(layout, name), kinds.get(name, "linear"),
                          values)
    for pair, ax in axes.items():  # once every axis has its scale and range
        for letter, name in zip("xy", pair, strict=True):
            matches = getattr(_axis_layout(layout, name), "matches", None)
            target = first.get(matches) if matches else None
            if target is not None and target is not ax:
                shared = ax.get_shared_x_axes() if letter == "x" else ax.get_shared_y_axes()
                if not shared.get_siblings(ax)[1:]:
                    (ax.sharex if letter == "x" else ax.sharey)(target)
    return prepared


def _prepare_axis(ax: Axes, letter: str, axis: Any, kind: str, values: list[Any]) -> None:
    mpl_axis = ax.xaxis if letter == "x" else ax.yaxis
    ax.grid(True, color="0.9", linewidth=0.8)
    ax.set_axisbelow(True)
    if kind == "log":
        (ax.set_xscale if letter == "x" else ax.set_yscale)("log")
    if kind == "category":  # the order first, then the values in the order the traces give them
        order = getattr(axis, "categoryorder", None)
        texts = [str(value) for value in values if _value_kind(value) is not None]
        if order == "array" and axis.categoryarray is not None:
            mpl_axis.update_units(np.array([str(value) for value in axis.categoryarray]))
        elif order in ("category ascending", "category descending"):
            texts = sorted(set(texts), reverse=order == "category descending")
        if texts:
            mpl_axis.update_units(np.array(list(dict.fromkeys(texts))))
    if axis is None:
        return
    if axis.title is not None and axis.title.text:
        (ax.set_xlabel if letter == "x" else ax.set_ylabel)(_plain(axis.title.text))
    if axis.autorange == "reversed":
        (ax.invert_xaxis if letter == "x" else ax.invert_yaxis)()
    if axis.showticklabels is False:
        if letter == "x":
            ax.tick_params(axis="x", labelbottom=False)
        else:
            ax.tick_params(axis="y", labelleft=False)


def _set_range(ax: Axes, letter: str, axis: Any, kind: str) -> None:
    """The layout's range of one axis, once the traces are drawn (an end given as None stays
    where the data put it)."""
    if axis is None or axis.range is None:
        return
    limits: list[Any]
    if kind == "date":
        limits = [None if np.isnat(end) else end for end in _convert(list(axis.range), "date")]
    else:  # plotly gives a log axis's range as powers of ten
        limits = [None if math.isnan(end) else 10 ** end if kind == "log" else end
                  for end in map(_float, axis.range)]
    (ax.set_xlim if letter == "x" else ax.set_ylim)(*limits)


def _draw_scatter(ax: Axes, trace: Any, columns: tuple[list[Any], list[Any]],
                  axis_kinds: tuple[str, str], *, default: RGBA, label: str,
                  px: float) -> tuple[ScalarMappable, str] | None:
    """Lines (broken at missing values unless `connectgaps`) and markers of one scatter trace."""
    x, y = (_convert(values, kind) for values, kind in zip(columns, axis_kinds, strict=True))
    present = _present(x) & _present(y)
    mode = trace.mode or ("lines+markers" if len(x) < 20 else "lines")
    opacity = 1.0 if trace.opacity is None else float(trace.opacity)
    line_color = _rgba(trace.line.color, default)
    if "lines" in mode:
        kept = np.flatnonzero(present)
        runs = [kept] if trace.connectgaps else _runs(present)
        for number, run in enumerate(runs):
            ax.plot(_plottable(x[run]), _plottable(y[run]), color=line_color, alpha=opacity,
                    linewidth=(2 if trace.line.width is None else trace.line.width) * px,
                    linestyle=_dash(trace.line.dash),
                    drawstyle=_LINE_SHAPES.get(trace.line.shape, "default"),
                    label=label if number == 0 else "_nolegend_")
        label = "_nolegend_"  # one legend entry per trace, on its line
    if "markers" not in mode:
        return None
    marker = trace.marker
    marker_default = line_color if trace.line.color is not None else default
    colors, colorbar = _colors(marker, len(x), marker_default)
    colors[:, 3] *= opacity * (marker.opacity if isinstance(marker.opacity, int | float) else 1)
    sizes = _per_point(marker.size, len(x), 6.0)
    symbols = _per_point(marker.symbol, len(x), "circle")
    edge = _rgba(marker.line.color, (0.0, 0.0, 0.0, 0.0))
    edge_width = (marker.line.width if isinstance(marker.line.width, int | float) else 0) * px
    for symbol in dict.fromkeys(symbols[present]):
        chosen = present & (symbols == symbol)
        shape, hollow = _symbol(symbol)
        ax.scatter(_plottable(x[chosen]), _plottable(y[chosen]),
                   s=(sizes[chosen].astype(float) * px) ** 2, marker=shape,
                   facecolors="none" if hollow else colors[chosen],
                   edgecolors=colors[chosen] if hollow else [edge],
                   linewidths=max(edge_width, px) if hollow else edge_width, label=label)
        label = "_nolegend_"
    return colorbar


@dataclass(frozen=True)
class _Bars:
    """One bar trace's bars as matplotlib draws them, floats in the axes' units (a category's
    index, a date's days; NaN where missing): centre and width on the position axis, start and
    length on the other."""

    horizontal: bool
    center: np.ndarray
    width: np.ndarray
    start: np.ndarray
    length: np.ndarray

    @property
    def present(self) -> np.ndarray:
        return ~(np.isnan(self.center) | np.isnan(self.width) | np.isnan(self.start)
                 | np.isnan(self.length))


# A bar trace's values: (index, trace, (positions, lengths, bases) as floats in the axes' units).
_BarValues = tuple[int, Any, tuple[np.ndarray, np.ndarray, np.ndarray]]


def _place_bars(layout: Any, axes: dict[AxisPair, Axes], kinds: dict[str, str],
                traces: list[tuple[int, Any]],
                columns: dict[int, tuple[list[Any], list[Any]]]) -> dict[int, _Bars]:
    """Every bar trace's bars, placed as plotly places them for `layout.barmode`, among the bar
    traces of one plotting area and orientation: "group" (plotly's default) side by side in
    each position's slot, "stack" on one another, "relative" with positive and negative values
    on separate piles, "overlay" over one another. Traces that set `offsetgroup` share a slot
    (in "stack" and "relative" a pile per slot); a trace with its own `offset` (group) or `base`
    (stack) keeps out of the arrangement and overlays, as in plotly."""
    mode = layout.barmode or "group"
    gap = 0.2 if layout.bargap is None else float(layout.bargap)
    group_gap = float(layout.bargroupgap or 0.0)
    areas: dict[tuple[AxisPair, bool], list[_BarValues]] = {}
    for index, trace in traces:
        if trace.type == "bar":
            pair, horizontal = _pair(trace), trace.orientation == "h"
            values = _bar_values(axes[pair], trace, columns[index],
                                 (kinds[pair[0]], kinds[pair[1]]))
            areas.setdefault((pair, horizontal), []).append((index, trace, values))
    placed: dict[int, _Bars] = {}
    for (pair, horizontal), members in areas.items():
        category = kinds[pair[1] if horizontal else pair[0]] == "category"
        own = "offset" if mode == "group" else "base"
        arranged: list[_BarValues] = []
        for member in members:
            if mode == "overlay" or getattr(member[1], own) is not None:
                placed.update(_arrange([member], "overlay", gap, group_gap, horizontal, category))
            else:
                arranged.append(member)
        if arranged:
            placed.update(_arrange(arranged, mode, gap, group_gap, horizontal, category))
    return placed


def _bar_values(ax: Axes, trace: Any, columns: tuple[list[Any], list[Any]],
                axis_kinds: tuple[str, str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A bar trace's positions, lengths and bases as floats in the axes' units."""
    horizontal = trace.orientation == "h"
    (raw_position, raw_length), (position_kind, length_kind) = (
        (columns[::-1], axis_kinds[::-1]) if horizontal else (columns, axis_kinds))
    position_axis, length_axis = (ax.yaxis, ax.xaxis) if horizontal else (ax.xaxis, ax.yaxis)
    position = _as_floats(position_axis, _convert(raw_position, position_kind))
    raw_base = list(_per_point(trace.base, len(raw_position), 0))
    if length_kind == "date":  # plotly: on a date axis a bar spans `base` + length in ms
        length = _convert(raw_length, "linear") / _MS_PER_DAY
        base = _as_floats(length_axis, _convert(raw_base, "date"))
    else:
        length = _as_floats(length_axis, _convert(raw_length, length_kind))
        base = _convert(raw_base, "linear")
    return position, length, base


def _arrange(members: list[_BarValues], mode: str, gap: float, group_gap: float,
             horizontal: bool, category: bool) -> dict[int, _Bars]:
    """Bar traces placed together: each position's slot (1 - `gap` of the closest spacing of
    the positions) is shared by the traces' offset groups side by side ("group", or traces that
    set `offsetgroup`), and in "stack"/"relative" the bars of one group pile up per position."""
    positions = np.concatenate([values[0] for _, _, values in members])
    positions = positions[~np.isnan(positions)]
    distinct = np.unique(positions)
    spacing = 1.0 if category or len(distinct) < 2 else float(np.diff(distinct).min())
    slot = spacing * (1 - gap)
    keys: list[Any] = [0] * len(members)
    if mode != "overlay" and any(trace.offsetgroup for _, trace, _ in members):
        keys = [trace.offsetgroup or "" for _, trace, _ in members]
    elif mode == "group" and len(positions) > len(distinct):  # plotly: only bars that meet
        keys = [index for index, _, _ in members]
    groups = list(dict.fromkeys(keys))
    share = slot / len(groups)
    piles: dict[tuple[Any, float, bool], float] = {}
    placed = {}
    for (index, trace, (position, length, base)), key in zip(members, keys, strict=True):
        n = len(position)
        middle = (groups.index(key) + 0.5) * share - slot / 2  # of this group's share of a slot
        default_width = share * (1 - group_gap)
        width = _numbers_or(trace.width, n, default_width)
        if trace.offset is None:
            center = position + middle
        else:
            center = position + _numbers_or(trace.offset, n, middle - default_width / 2) + width / 2
        start = base.copy()
        if mode in ("stack", "relative"):
            for i in np.flatnonzero(~np.isnan(position) & ~np.isnan(length)):
                pile = (key, float(position[i]), mode == "relative" and bool(length[i] < 0))
                start[i] = piles.get(pile, 0.0)
                piles[pile] = start[i] + length[i]
        placed[index] = _Bars(horizontal, center, width, start, length)
    return placed


def _numbers_or(value: Any, n: int, default: float) -> np.ndarray:
    """A trace attribute that is one number or one per point (`_per_point`) as n floats,
    `default` where it is unset or not a number."""
    numbers_ = np.array([_float(item) for item in _per_point(value, n, default)], dtype=float)
    numbers_[np.isnan(numbers_)] = default
    return numbers_


def _as_floats(axis: Axis, values: np.ndarray) -> np.ndarray:
    """`_convert`'s values as matplotlib's floats on `axis` (a category's index, a date's days;
    NaN where missing); text and dates are registered with the axis, which then labels them."""
    floats = np.full(len(values), np.nan)
    present = _present(values)
    if present.any():
        kept = values[present]
        axis.update_units(kept)
        floats[present] = np.asarray(axis.convert_units(kept), dtype=float)
    return floats


def _draw_bar(ax: Axes, trace: Any, bars: _Bars, *, default: RGBA, label: str,
              px: float) -> tuple[ScalarMappable, str] | None:
    """The bars of one bar trace, where `_place_bars` put them."""
    present = bars.present
    colors, colorbar = _colors(trace.marker, len(present), default)
    if trace.opacity is not None:
        colors[:, 3] *= float(trace.opacity)
    edge = _rgba(trace.marker.line.color, (0.0, 0.0, 0.0, 0.0))
    edge_width = trace.marker.line.width
    common = {"color": colors[present], "edgecolor": edge, "label": label,
              "linewidth": (edge_width if isinstance(edge_width, int | float) else 0) * px}
    if bars.horizontal:
        ax.barh(bars.center[present], bars.length[present], height=bars.width[present],
                left=bars.start[present], **common)
    else:
        ax.bar(bars.center[present], bars.length[present], width=bars.width[present],
               bottom=bars.start[present], **common)
    return colorbar


@dataclass(frozen=True)
class _Ref:
    """How one coordinate of a shape or annotation reaches the image: as data on an axis of
    `ax` (`kind` that axis's type), or as a fraction (`kind` None) of `ax`'s area, where
    `domain` is the span of the whole plotting area ("paper") that the area covers."""

    ax: Axes
    kind: str | None
    domain: tuple[float, float] = (0.0, 1.0)

    def transform(self) -> Transform:
        if self.kind is not None:
            return self.ax.transData
        low, high = self.domain
        if (low, high) == (0.0, 1.0):
            return self.ax.transAxes
        return Affine2D().translate(-low, -low).scale(1 / max(high - low, 1e-9)) \
            + self.ax.transAxes

    def shows(self, letter: str, value: float) -> bool:
        """Whether a data coordinate lies within the axis's range (a fraction always does)."""
        if self.kind is None:
            return True
        low, high = sorted(self.ax.get_xlim() if letter == "x" else self.ax.get_ylim())
        margin = 1e-9 * (high - low)
        return bool(low - margin <= value <= high + margin)

    def value(self, letter: str, value: Any, *, log_exponent: bool) -> float:
        """A coordinate as a float for `transform` (NaN where it cannot be placed): a
        category's name or serial number, a date (or ms since 1970), a number on a log axis
        (its exponent where `log_exponent`, as plotly's annotations give it)."""
        if self.kind is None or self.kind == "linear":
            return _float(value)
        if self.kind == "log":
            number = _float(value)
            return float(10 ** number) if log_exponent else number if number > 0 else math.nan
        if self.kind == "date" and _value_kind(value) == "number":
            value = np.datetime64(int(_float(value)), "ms")
        elif self.kind == "category" and not isinstance(value, str):
            return _float(value)
        axis = self.ax.xaxis if letter == "x" else self.ax.yaxis
        return float(_as_floats(axis, _convert([value], self.kind))[0])


def _locate(layout: Any, axes: dict[AxisPair, Axes], kinds: dict[str, str], xref: Any,
            yref: Any, at: tuple[Any, Any]) -> tuple[Axes, _Ref, _Ref] | None:
    """The Axes that draws a shape or annotation with these references (its axes' pair, else
    the Axes of its y or x axis, else the area nearest to `at` on the paper) and its x and y
    references; None when a reference names an axis the figure does not draw."""
    names: list[str | None] = []
    fractions: list[bool] = []
    for side, ref in enumerate((xref, yref)):
        ref = ref or next(iter(axes))[side]  # plotly's default: the first axis
        if not isinstance(ref, str):
            return None
        name = None if ref == "paper" else ref.split(" ")[0]
        if name is not None and all(pair[side] != name for pair in axes):
            return None
        names.append(name)
        fractions.append(ref == "paper" or ref.endswith(" domain"))
    host: AxisPair
    if names[0] is not None and names[1] is not None and (names[0], names[1]) in axes:
        host = (names[0], names[1])
    elif names[1] is not None or names[0] is not None:
        side = 1 if names[1] is not None else 0
        host = next(pair for pair in axes if pair[side] == names[side])
    else:
        point = (_float(at[0]), _float(at[1]))
        host = min(axes, key=lambda pair: _paper_distance(_cell(layout, pair), point))
    refs = []
    for side, name in enumerate(names):
        if name is None:
            refs.append(_Ref(axes[host], None, _cell(layout, host)[side]))
            continue
        owner = host if host[side] == name else next(pair for pair in axes if pair[side] == name)
        refs.append(_Ref(axes[owner], None if fractions[side] else kinds.get(name, "linear")))
    return axes[host], refs[0], refs[1]


def _paper_distance(cell: tuple[tuple[float, float], tuple[float, float]],
                    point: tuple[float, float]) -> float:
    """How far a point on the paper lies outside a plotting area (0 inside it)."""
    return math.hypot(*(max(low - value, 0.0, value - high) if not math.isnan(value) else 0.0
                        for (low, high), value in zip(cell, point, strict=True)))


def _draw_shape(layout: Any, axes: dict[AxisPair, Axes], kinds: dict[str, str], shape: Any,
                px: float) -> tuple[Axes | None, str | None]:
    """One layout shape (a line, rectangle or circle, e.g. from `add_hline` or `add_vrect`)
    on the Axes its references name; returns that Axes and a note when it is not drawn."""
    if shape.visible is not None and shape.visible is not True:
        return None, None
    kind = shape.type or ("path" if shape.path else "rect")
    place = _locate(layout, axes, kinds, shape.xref, shape.yref,
                    (_middle(shape.x0, shape.x1), _middle(shape.y0, shape.y1)))
    if kind not in _SHAPE_KINDS or place is None or "pixel" in (shape.xsizemode, shape.ysizemode):
        return (place[0] if place else None), f"{kind} shape not drawn"
    host, xref, yref = place
    x0, x1 = (xref.value("x", end, log_exponent=False) for end in (shape.x0, shape.x1))
    y0, y1 = (yref.value("y", end, log_exponent=False) for end in (shape.y0, shape.y1))
    if any(math.isnan(end) for end in (x0, x1, y0, y1)):
        return host, None  # plotly draws nothing where an end is missing
    opacity = 1.0 if shape.opacity is None else float(shape.opacity)
    width = (2 if shape.line.width is None else shape.line.width) * px
    line = _faded(_rgba(shape.line.color, _PLOTLY_LINE), opacity)
    # the transform before the Axes takes the shape: it widens the data limits by it
    where: dict[str, Any] = {
        "transform": blended_transform_factory(xref.transform(), yref.transform()),
        "zorder": _SHAPE_LAYERS.get(shape.layer or "above", _SHAPE_LAYERS["above"])}
    artist: Artist
    if kind == "line":
        artist = Line2D([x0, x1], [y0, y1], color=line, linewidth=width,
                        linestyle=_dash(shape.line.dash), **where)
        host.add_line(artist)
    else:
        style: dict[str, Any] = {
            "facecolor": _faded(_rgba(shape.fillcolor, (0.0, 0.0, 0.0, 0.0)), opacity),
            "edgecolor": line if width > 0 else "none", "linewidth": width,
            "linestyle": _dash(shape.line.dash), **where}
        artist = (Rectangle((x0, y0), x1 - x0, y1 - y0, **style) if kind == "rect" else
                  Ellipse(((x0 + x1) / 2, (y0 + y1) / 2), x1 - x0, y1 - y0, **style))
        host.add_patch(artist)
    on_data = xref.kind is not None or yref.kind is not None
    artist.set_clip_on(on_data)  # plotly clips a shape to its plot where it is on data
    artist.set_in_layout(False)
    if on_data:  # the range takes the shape in, as plotly's autorange (also with no trace)
        host.autoscale_view()
    return host, None


def _middle(low: Any, high: Any) -> float:
    return (_float(low) + _float(high)) / 2


def _faded(color: RGBA, opacity: float) -> RGBA:
    return (color[0], color[1], color[2], color[3] * opacity)


def _annotation_font(layout: Any) -> tuple[float, RGBA]:
    """The figure's text size (pixels) and color, for annotations that set none."""
    template = layout.template.layout.font if layout.template is not None else None
    size = layout.font.size or (template.size if template is not None else None) or 12
    color = layout.font.color or (template.color if template is not None else None)
    return float(size), _rgba(color, _PLOTLY_LINE)


def _draw_annotation(layout: Any, axes: dict[AxisPair, Axes], kinds: dict[str, str],
                     annotation: Any, font: tuple[float, RGBA], px: float,
                     ) -> tuple[Annotation, list[tuple[_Ref, str, float]]] | None:
    """One layout annotation (e.g. the label of `add_hline`'s line): its text anchored at its
    x and y as plotly anchors it, and its arrow; returns it with its (reference, "x" or "y",
    value) for `_Ref.shows` once the axis ranges are known."""
    arrow = annotation.showarrow is not False
    if annotation.visible is False or not (annotation.text or arrow):
        return None
    place = _locate(layout, axes, kinds, annotation.xref, annotation.yref,
                    (annotation.x, annotation.y))
    if place is None:
        return None
    host, xref, yref = place
    given = [annotation.x, annotation.y]
    for side, ref in enumerate((xref, yref)):
        if given[side] is None and ref.kind is None:
            given[side] = 0.5  # plotly: the middle
    x = xref.value("x", given[0], log_exponent=True)
    y = yref.value("y", given[1], log_exponent=True)
    if math.isnan(x) or math.isnan(y):
        return None
    size = (annotation.font.size or font[0]) * px
    color = _rgba(annotation.font.color, font[1])
    if annotation.opacity is not None:
        color = _faded(color, float(annotation.opacity))
    ha = _anchor(annotation.xanchor, given[0], xref, arrow, ("left", "center", "right"))
    va = _anchor(annotation.yanchor, given[1], yref, arrow, ("bottom", "center", "top"))
    pad = (1 if annotation.borderpad is None else annotation.borderpad) + (
        1 if annotation.borderwidth is None else annotation.borderwidth)  # plotly's text box
    offset = ((annotation.xshift or 0.0) + pad * {"left": 1, "center": 0, "right": -1}[ha],
              (annotation.yshift or 0.0) + pad * {"bottom": 1, "center": 0, "top": -1}[va])
    arrowprops = None
    if arrow:  # the text sits at the arrow's tail, `ax`, `ay` pixels from its head (y down)
        in_pixels = {annotation.axref, annotation.ayref} <= {None, "pixel"}
        offset = (-10.0 if annotation.ax is None or not in_pixels else _float(annotation.ax),
                  30.0 if annotation.ay is None or not in_pixels else -_float(annotation.ay))
        arrowprops = {"arrowstyle": "-|>", "color": _rgba(annotation.arrowcolor, color),
                      "linewidth": (annotation.arrowwidth or 1) * px, "shrinkA": 0,
                      "shrinkB": (annotation.standoff or 0) * px}
    bbox = None
    if annotation.bgcolor or annotation.bordercolor:
        bbox = {"boxstyle": "square,pad=0.2",
                "facecolor": _rgba(annotation.bgcolor, (0.0, 0.0, 0.0, 0.0)),
                "edgecolor": _rgba(annotation.bordercolor, (0.0, 0.0, 0.0, 0.0))}
    label = host.annotate(
        _plain(annotation.text or ""), xy=(x, y),
        xycoords=blended_transform_factory(xref.transform(), yref.transform()),
        xytext=(offset[0] * px, offset[1] * px), textcoords="offset points", ha=ha, va=va,
        fontsize=size, color=color, rotation=-(annotation.textangle or 0),
        multialignment=annotation.align or "center", arrowprops=arrowprops, bbox=bbox,
        annotation_clip=False, zorder=_ANNOTATION_ZORDER)
    return label, [(xref, "x", x), (yref, "y", y)]


def _anchor(anchor: Any, value: Any, ref: _Ref, arrow: bool, names: tuple[str, str, str]) -> str:
    """A plotly text anchor as matplotlib's alignment; "auto" is the centre for data or with an
    arrow, else the side of the plotting area the position is nearest to (by thirds)."""
    plotly_names = {"left": 0, "bottom": 0, "center": 1, "middle": 1, "right": 2, "top": 2}
    if anchor in plotly_names:
        return names[plotly_names[anchor]]
    position = _float(value)
    if arrow or ref.kind is not None or math.isnan(position):
        return names[1]
    return names[0] if position <= 1 / 3 else names[2] if position >= 2 / 3 else names[1]


def _runs(present: np.ndarray) -> list[np.ndarray]:
    """Index runs of consecutive present values: the pieces of a line broken at gaps."""
    kept = np.flatnonzero(present)
    if len(kept) == 0:
        return []
    breaks = np.flatnonzero(np.diff(kept) > 1) + 1
    return np.split(kept, breaks)


def _per_point(value: Any, n: int, default: Any) -> np.ndarray:
    """A trace attribute that is one value or one per point, as an array of n (plotly falls back
    to the default where an array is short)."""
    if value is None or isinstance(value, str | numbers.Number):
        return np.array([default if value is None else value] * n, dtype=object)
    given = list(value)[:n]
    given = [default if item is None else item for item in given]
    return np.array(given + [default] * (n - len(given)), dtype=object)


def _colors(marker: Any, n: int, default: RGBA) -> tuple[np.ndarray,
                                                        tuple[ScalarMappable, str] | None]:
    """RGBA per point of a marker's `color`, and the colorbar (mappable, title) to draw when the
    colors are numbers on a colorscale that is shown (plotly's default for numeric colors)."""
    color = marker.color
    if color is None or isinstance(color, str):
        return np.tile(_rgba(color, default), (n, 1)), None
    given = _per_point(color, n, None)
    kinds = {_value_kind(value) for value in given}
    if not kinds <= {"number", None} or kinds == {None}:
        return np.array([_rgba(value, default) for value in given]), None
    values = np.array([_float(value) for value in given])
    low = marker.cmin if marker.cmin is not None else np.nanmin(values)
    high = marker.cmax if marker.cmax is not None else np.nanmax(values)
    norm = Normalize(vmin=float(low), vmax=float(high))
    cmap = _colormap(marker.colorscale, bool(marker.reversescale))
    rgba = np.array(cmap(norm(values)))
    rgba[np.isnan(values)] = default
    if marker.showscale is False:
        return rgba, None
    title = marker.colorbar.title.text if marker.colorbar.title is not None else None
    return rgba, (ScalarMappable(norm=norm, cmap=cmap), title or "")


def _colormap(scale: Any, reverse: bool) -> Colormap:
    """A matplotlib colormap from a plotly colorscale (its name or its (position, color) stops);
    plotly's default sequential scale when none is given."""
    if scale is None:
        scale = _PLOTLY_COLORSCALE
    if isinstance(scale, str):
        try:
            scale = plotly.colors.get_colorscale(scale)
        except Exception:  # an unknown name: plotly would not draw it either; use its default
            scale = plotly.colors.get_colorscale(_PLOTLY_COLORSCALE)
    stops = [(float(position), _rgba(color, (0.0, 0.0, 0.0, 1.0))) for position, color in scale]
    cmap = LinearSegmentedColormap.from_list("plotly", stops)
    return cmap.reversed() if reverse else cmap


def _rgba(color: Any, default: RGBA) -> RGBA:
    """A plotly color (a CSS name, "#rrggbb[aa]", "rgb(...)", "rgba(...)", "hsl(...)",
    "hsla(...)") as RGBA; `default` for anything else (other CSS 4 color functions)."""
    if not isinstance(color, str):
        return default
    function = _COLOR_FUNCTION.fullmatch(color.strip().lower())
    if function is None:
        try:
            return to_rgba(color)
        except ValueError:
            return default
    parts = [part for part in re.split(r"[\s,/]+", function.group(2).strip()) if part]
    if len(parts) not in (3, 4):
        return default
    try:
        alpha = _fraction(parts[3], 1.0) if len(parts) == 4 else 1.0
        if function.group(1).startswith("rgb"):
            red, green, blue = (_fraction(part, 255.0) for part in parts[:3])
        else:
            hue = float(parts[0].removesuffix("deg")) / 360 % 1.0
            red, green, blue = colorsys.hls_to_rgb(hue, _fraction(parts[2], 1.0),
                                                   _fraction(parts[1], 1.0))
    except ValueError:
        return default
    return (red, green, blue, alpha)


def _fraction(part: str, scale: float) -> float:
    """One color component in [0, 1]: "50%" is 0.5, a number is divided by `scale`."""
    value = float(part[:-1]) / 100 if part.endswith("%") else float(part) / scale
    return min(max(value, 0.0), 1.0)


def _dash(dash: Any) -> Any:
    """A plotly dash name, or a dash list in pixels ("5px,10px"), as a matplotlib line style."""
    if dash is None:
        return "-"
    if dash in _DASHES:
        return _DASHES[dash]
    try:
        lengths = tuple(float(part.strip().removesuffix("px").removesuffix("%"))
                        for part in str(dash).split(","))
    except ValueError:
        return "-"
    return (0, lengths) if lengths and all(length > 0 for length in lengths) else "-"


def _symbol(symbol: Any) -> tuple[str, bool]:
    """A plotly marker symbol name as (matplotlib marker, hollow); unknown ones are circles."""
    name = str(symbol)
    hollow = name.endswith("-open")
    return _SYMBOLS.get(name.removesuffix("-open"), "o"), hollow


def _plain(text: str) -> str:
    """Plotly's HTML-ish text as plain matplotlib text (no tags, no math mode)."""
    text = re.sub(r"<br\s*/?>", "\n", str(text), flags=re.IGNORECASE)
    return re.sub(r"<[^>]+>", "", text).replace("$", r"\$")


def _title_and_legend(drawn: Figure, layout: Any, axes: Sequence[Axes],
                      legend_entries: int) -> None:
    title = layout.title.text if layout.title is not None else None
    if title:
        if len(axes) == 1:
            axes[0].set_title(_plain(title))
        else:
            drawn.suptitle(_plain(title))
    show = layout.showlegend if layout.showlegend is not None else legend_entries > 1
    if not show:
        return
    labels = [label for ax in axes for label in ax.get_legend_handles_labels()[1]]
    if labels and layout.legend is not None and layout.legend.orientation == "h":
        # plotly's horizontal legend: in rows under the plots, as many columns as fit
        width = drawn.get_figwidth() * 72  # points
        fit = max(1, int(width // (7 * max(len(label) for label in labels) + 40)))
        rows = math.ceil(len(labels) / fit)
        drawn.legend(loc="outside lower center", ncols=math.ceil(len(labels) / rows),
                     frameon=False)
    elif len(axes) == 1:
        if axes[0].get_legend_handles_labels()[0]:
            axes[0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    elif any(ax.get_legend_handles_labels()[0] for ax in axes):
        drawn.legend(loc="outside right upper", frameon=False)
