"""PNG copies of plotly figures drawn with matplotlib: the pixels, the matplotlib figure behind
them (checked against figures Optuna builds from real studies) and the atomic write."""

from __future__ import annotations

import gc
import threading
import weakref
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import plotly.graph_objects as go
import pytest
from matplotlib import _pylab_helpers, dates
from matplotlib.axes import Axes
from matplotlib.collections import PathCollection
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.markers import MarkerStyle
from matplotlib.patches import Rectangle
from matplotlib.text import Annotation
from PIL import Image
from plotly.subplots import make_subplots

from orca_automl.report._png import save_png, to_matplotlib

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB")).astype(int)


def _colored(pixels: np.ndarray) -> int:
    """Pixels with a clear hue (not white, grey or black): drawn data, never axes or text."""
    return int(((pixels.max(axis=2) - pixels.min(axis=2)) > 60).sum())


def _near(pixels: np.ndarray, rgb: tuple[int, int, int]) -> int:
    return int((np.abs(pixels - np.array(rgb)).max(axis=2) < 60).sum())


def _only_axes(drawn: Figure) -> Axes:
    plots = [ax for ax in drawn.axes if ax.get_label() != "<colorbar>"]
    assert len(plots) == 1
    return plots[0]


def _offsets(ax: Axes) -> list[tuple[float, float]]:
    return sorted(tuple(map(float, point)) for collection in ax.collections
                  if isinstance(collection, PathCollection)
                  for point in np.asarray(collection.get_offsets()))


def _tick_texts(ax: Axes, letter: str) -> list[str]:
    ax.figure.canvas.draw()
    labels = ax.get_xticklabels() if letter == "x" else ax.get_yticklabels()
    return [label.get_text() for label in labels]


def _two_objective_study(n_trials: int = 12) -> optuna.Study:
    def objective(trial: optuna.Trial) -> tuple[float, float]:
        x = trial.suggest_float("x", 1e-3, 1.0, log=True)
        depth = trial.suggest_int("depth", 0, 5)
        return x + depth, (1 - x) ** 2

    study = optuna.create_study(directions=["minimize", "minimize"],
                                sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=n_trials)
    return study


def _single_objective_study(n_trials: int = 15) -> optuna.Study:
    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 1e-3, 1.0, log=True)
        depth = trial.suggest_int("depth", 0, 5)
        kind = trial.suggest_categorical("kind", ["a", "b"])
        return x + depth + (kind == "a")

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=n_trials)
    return study


# --- the PNG file ---------------------------------------------------------------------------

def test_the_png_has_the_requested_pixel_size_and_shows_the_data(tmp_path: Path) -> None:
    figure = go.Figure(go.Scatter(x=[0, 1, 2, 3], y=[3, 1, 2, 0], mode="lines+markers"))
    written = save_png(figure, tmp_path / "nested" / "folder" / "plot.png", width=640,
                       height=400, dpi=80)
    assert written == tmp_path / "nested" / "folder" / "plot.png"
    pixels = _pixels(written)
    assert pixels.shape == (400, 640, 3)
    assert _colored(pixels) > 500
    # the same count on a figure without data: axes, grid and text have no hue
    empty = save_png(go.Figure(layout={"title": {"text": "Nothing"}}), tmp_path / "empty.png")
    assert _pixels(empty).shape == (560, 900, 3)
    assert _colored(_pixels(empty)) == 0


def test_a_red_line_and_blue_markers_come_out_red_and_blue(tmp_path: Path) -> None:
    figure = go.Figure([
        go.Scatter(x=[0, 1, 2, 3], y=[0, 1, 0, 1], mode="lines", line={"color": "red", "width": 4}),
        go.Scatter(x=[0.5, 1.5, 2.5], y=[0.8, 0.2, 0.8], mode="markers",
                   marker={"color": "rgb(0, 0, 255)", "size": 14}),
    ])
    pixels = _pixels(save_png(figure, tmp_path / "colors.png"))
    assert _near(pixels, (255, 0, 0)) > 300
    assert _near(pixels, (0, 0, 255)) > 300
    assert _near(pixels, (0, 128, 0)) == 0  # no colour the figure does not ask for


def test_an_existing_png_is_replaced_and_no_temporary_file_is_left(tmp_path: Path) -> None:
    target = tmp_path / "plot.png"
    target.write_bytes(b"an older file")
    save_png(go.Figure(go.Bar(x=["a", "b"], y=[1, 2])), target)
    assert _pixels(target).shape == (560, 900, 3)
    assert [path.name for path in tmp_path.iterdir()] == ["plot.png"]


def test_a_crash_while_writing_keeps_the_old_png_and_leaves_no_partial_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "plot.png"
    target.write_bytes(b"the previous image")

    def crash_half_way(self: Figure, out: Any, **kwargs: Any) -> None:
        out.write(b"\x89PNG half an image")
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", crash_half_way)
    with pytest.raises(OSError, match="disk full"):
        save_png(go.Figure(go.Scatter(y=[1, 2])), target)
    assert target.read_bytes() == b"the previous image"
    assert [path.name for path in tmp_path.iterdir()] == ["plot.png"]


def test_figures_are_not_kept_by_pyplot_and_render_from_several_threads(tmp_path: Path) -> None:
    drawn = to_matplotlib(go.Figure(go.Scatter(y=[1, 2, 3])))
    collected = weakref.ref(drawn)
    del drawn
    gc.collect()
    assert collected() is None
    errors: list[BaseException] = []

    def render(number: int) -> None:
        try:
            figure = go.Figure(go.Scatter(y=np.arange(number + 3) ** 2, name=f"run {number}"))
            save_png(figure, tmp_path / f"plot{number}.png", width=300, height=200)
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=render, args=(number,)) for number in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert all(_pixels(tmp_path / f"plot{n}.png").shape == (200, 300, 3) for n in range(4))
    assert _pylab_helpers.Gcf.get_all_fig_managers() == []


def test_a_size_that_is_not_positive_is_refused() -> None:
    with pytest.raises(ValueError, match="must be positive"):
        to_matplotlib(go.Figure(), width=0)


# --- what is drawn --------------------------------------------------------------------------

def test_titles_log_axis_ranges_and_legend_follow_the_layout() -> None:
    figure = go.Figure(
        [go.Scatter(x=[1, 10, 100], y=[1, 2, 3], mode="lines", name="loss"),
         go.Scatter(x=[1, 10, 100], y=[3, 2, 1], mode="markers", name="accuracy"),
         go.Scatter(x=[1, 100], y=[2, 2], mode="lines", name="hidden", showlegend=False)],
        layout={"title": {"text": "Training <b>curves</b>"},
                "xaxis": {"title": {"text": "steps"}, "type": "log", "range": [0, 3]},
                "yaxis": {"title": {"text": "value"}, "range": [0, 4]}})
    ax = _only_axes(to_matplotlib(figure))
    assert ax.get_title() == "Training curves"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("steps", "value")
    assert (ax.get_xscale(), ax.get_yscale()) == ("log", "linear")
    assert ax.get_xlim() == pytest.approx((1, 1000))  # plotly gives log ranges as exponents
    assert ax.get_ylim() == pytest.approx((0, 4))
    assert len(ax.lines) == 2 and len(ax.collections) == 1
    legend = ax.get_legend()
    assert legend is not None
    assert [text.get_text() for text in legend.get_texts()] == ["loss", "accuracy"]


def test_a_range_end_left_as_none_follows_the_data_and_date_ranges_apply() -> None:
    figure = go.Figure(go.Scatter(x=["2024-01-01", "2024-02-01"], y=[1, 2], mode="lines"),
                       layout={"xaxis": {"type": "date", "range": ["2023-12-01", "2024-03-01"]},
                               "yaxis": {"range": [None, 5]}})
    ax = _only_axes(to_matplotlib(figure))
    assert [dates.num2date(end).date() for end in ax.get_xlim()] == \
        [datetime(2023, 12, 1).date(), datetime(2024, 3, 1).date()]
    low, high = ax.get_ylim()
    assert 0.9 < low < 1 and high == 5  # the low end from the data (plus a margin), not 0


def test_one_trace_gets_no_legend_unless_the_layout_asks() -> None:
    assert _only_axes(to_matplotlib(go.Figure(go.Scatter(y=[1, 2], name="a")))).get_legend() \
        is None
    asked = go.Figure(go.Scatter(y=[1, 2], name="a"), layout={"showlegend": True})
    legend = _only_axes(to_matplotlib(asked)).get_legend()
    assert legend is not None and [t.get_text() for t in legend.get_texts()] == ["a"]


def test_line_style_and_marker_size_symbol_and_colorscale_are_kept() -> None:
    figure = go.Figure(go.Scatter(
        x=[0, 1, 2], y=[0, 1, 4], mode="lines+markers",
        line={"color": "#00ff00", "width": 5, "dash": "dash"},
        marker={"size": 20, "symbol": "diamond", "color": [0.0, 5.0, 10.0],
                "colorscale": "Viridis", "colorbar": {"title": {"text": "Trial"}}}))
    drawn = to_matplotlib(figure, dpi=100)
    ax = _only_axes(drawn)
    (line,) = ax.lines
    assert to_rgba(line.get_color()) == to_rgba("#00ff00")
    assert line.get_linewidth() == pytest.approx(5 * 72 / 100)
    assert line.get_linestyle() == "--"
    (markers,) = ax.collections
    assert isinstance(markers, PathCollection)
    assert markers.get_sizes() == pytest.approx([(20 * 72 / 100) ** 2] * 3)
    diamond = MarkerStyle("D")
    assert np.allclose(markers.get_paths()[0].vertices,
                       diamond.get_path().transformed(diamond.get_transform()).vertices)
    faces = markers.get_facecolors()
    assert faces[0] == pytest.approx(to_rgba("#440154"))  # Viridis' ends, from plotly
    assert faces[2] == pytest.approx(to_rgba("#fde725"))
    colorbars = [other for other in drawn.axes if other.get_label() == "<colorbar>"]
    assert len(colorbars) == 1 and colorbars[0].get_ylabel() == "Trial"


def test_missing_values_break_lines_and_are_left_out_of_markers() -> None:
    x = [0, 1, 2, 3, 4, 5]
    y = [1.0, 2.0, None, 4.0, float("nan"), 6.0]
    ax = _only_axes(to_matplotlib(go.Figure(go.Scatter(x=x, y=y, mode="lines"))))
    assert [list(line.get_ydata()) for line in ax.lines] == [[1, 2], [4], [6]]
    joined = _only_axes(to_matplotlib(go.Figure(go.Scatter(x=x, y=y, mode="lines",
                                                           connectgaps=True))))
    assert [list(line.get_ydata()) for line in joined.lines] == [[1, 2, 4, 6]]
    markers = _only_axes(to_matplotlib(go.Figure(go.Scatter(x=x, y=y, mode="markers"))))
    assert _offsets(markers) == [(0, 1), (1, 2), (3, 4), (5, 6)]
    logged = go.Figure(go.Scatter(x=x, y=[1, 0, -1, 10, 100, 1000], mode="markers"),
                       layout={"yaxis": {"type": "log"}})  # a log axis cannot show 0 or -1
    assert _offsets(_only_axes(to_matplotlib(logged))) == [(0, 1), (3, 10), (4, 100), (5, 1000)]


@pytest.mark.parametrize("kind", [list, tuple, np.array])
def test_lists_tuples_and_numpy_arrays_draw_the_same(kind: Any) -> None:
    figure = go.Figure(go.Scatter(x=kind([0.5, 1.5, 2.5]), y=kind([3, 1, 2]), mode="markers"))
    assert _offsets(_only_axes(to_matplotlib(figure))) == [(0.5, 3), (1.5, 1), (2.5, 2)]


def test_text_values_are_categories_in_the_order_given() -> None:
    figure = go.Figure(go.Scatter(x=["b", "a", "c"], y=[1, 2, 3], mode="markers"))
    assert _tick_texts(_only_axes(to_matplotlib(figure)), "x") == ["b", "a", "c"]
    ordered = go.Figure(go.Scatter(x=["b", "a", "c"], y=[1, 2, 3], mode="markers"),
                        layout={"xaxis": {"categoryorder": "array",
                                          "categoryarray": ["c", "b", "a"]}})
    assert _tick_texts(_only_axes(to_matplotlib(ordered)), "x") == ["c", "b", "a"]
    # numbers on an axis declared as categories are categories too, as in plotly
    numbered = go.Figure(go.Scatter(x=[32, 8, 16], y=[1, 2, 3], mode="markers"),
                         layout={"xaxis": {"type": "category"}})
    assert _tick_texts(_only_axes(to_matplotlib(numbered)), "x") == ["32", "8", "16"]


def test_dates_go_on_a_date_axis() -> None:
    start = datetime(2024, 5, 1, 12, 0)
    times = [start + timedelta(minutes=minutes) for minutes in (0, 30, 90)]
    ax = _only_axes(to_matplotlib(go.Figure(go.Scatter(x=times, y=[1, 2, 3], mode="lines"))))
    (line,) = ax.lines
    assert list(line.get_xdata()) == [np.datetime64(time, "ns") for time in times]


def test_vertical_bars_keep_heights_colors_and_names() -> None:
    figure = go.Figure([
        go.Bar(x=["knn", "orca", "rocket"], y=[0.7, 0.9, 0.8], name="accuracy",
               marker={"color": ["red", "green", "blue"]}),
        go.Bar(x=["knn", "orca", "rocket"], y=[0.1, 0.2, 0.3], name="time", marker_color="black"),
    ])
    ax = _only_axes(to_matplotlib(figure))
    heights = [patch.get_height() for patch in ax.patches]
    assert heights == pytest.approx([0.7, 0.9, 0.8, 0.1, 0.2, 0.3])
    assert [tuple(patch.get_facecolor()) for patch in ax.patches[:3]] == \
        [to_rgba("red"), to_rgba("green"), to_rgba("blue")]
    assert _tick_texts(ax, "x") == ["knn", "orca", "rocket"]
    legend = ax.get_legend()
    assert legend is not None and [t.get_text() for t in legend.get_texts()] == ["accuracy", "time"]


def test_subplots_are_placed_as_the_layout_says() -> None:
    figure = make_subplots(rows=1, cols=2, shared_yaxes=True, subplot_titles=("a", "b"))
    figure.add_trace(go.Scatter(x=[1, 2], y=[1, 2], mode="markers"), row=1, col=1)
    figure.add_trace(go.Scatter(x=[1, 100], y=[5, 6], mode="markers"), row=1, col=2)
    figure.update_xaxes(type="log", row=1, col=2)
    drawn = to_matplotlib(figure)
    left, right = sorted(drawn.axes, key=lambda ax: ax.get_position().x0)
    assert _offsets(left) == [(1, 1), (2, 2)] and _offsets(right) == [(1, 5), (100, 6)]
    assert (left.get_xscale(), right.get_xscale()) == ("linear", "log")
    assert right.get_shared_y_axes().joined(left, right)  # plotly's `matches`


def test_a_secondary_y_axis_gets_its_own_scale_at_the_right() -> None:
    figure = make_subplots(specs=[[{"secondary_y": True}]])
    figure.add_trace(go.Scatter(x=[0, 1], y=[1, 2], name="loss"), secondary_y=False)
    figure.add_trace(go.Scatter(x=[0, 1], y=[200, 100], name="seconds"), secondary_y=True)
    first, second = to_matplotlib(figure).axes
    assert [list(line.get_ydata()) for line in first.lines] == [[1, 2]]
    assert [list(line.get_ydata()) for line in second.lines] == [[200, 100]]
    assert second.get_shared_x_axes().joined(first, second)
    assert second.yaxis.get_ticks_position() == "right"


def test_an_unsupported_trace_is_noted_in_the_image_not_drawn(tmp_path: Path) -> None:
    figure = go.Figure([go.Heatmap(z=[[1, 2], [3, 4]]),
                        go.Scatter(x=[0, 1], y=[0, 1], mode="markers")])
    ax = _only_axes(to_matplotlib(figure))
    assert [text.get_text() for text in ax.texts] == ["heatmap trace not drawn"]
    assert _offsets(ax) == [(0, 0), (1, 1)]
    pie = go.Figure(go.Pie(values=[1, 2], labels=["a", "b"]))  # a trace without axes
    assert [text.get_text() for text in _only_axes(to_matplotlib(pie)).texts] == \
        ["pie trace not drawn"]
    assert _pixels(save_png(pie, tmp_path / "pie.png")).shape == (560, 900, 3)


# --- shapes and annotations -----------------------------------------------------------------

def _labels(ax: Axes) -> dict[str, Annotation]:
    return {text.get_text(): text for text in ax.texts if isinstance(text, Annotation)}


def _rectangles(ax: Axes) -> list[Rectangle]:
    return [patch for patch in ax.patches if isinstance(patch, Rectangle)]


def _xy(line: Any) -> tuple[list[float], list[float]]:
    return np.asarray(line.get_xdata()).tolist(), np.asarray(line.get_ydata()).tolist()


def test_an_hline_spans_the_axes_at_its_y_with_its_style_and_its_label_below_the_right_end(
        ) -> None:
    figure = go.Figure(go.Scatter(x=[0, 10], y=[0.5, 0.7], mode="markers"))
    figure.add_hline(y=0.9, line_dash="dash", line_color="#ff7f0e", line_width=3,
                     annotation_text="knn 0.9000", annotation_position="bottom right")
    drawn = to_matplotlib(figure, dpi=100)
    ax = _only_axes(drawn)
    (line,) = ax.lines
    assert _xy(line) == ([0, 1], [0.9, 0.9])
    # x in fractions of the axes' width, y in data: where matplotlib's own axhline would be
    ends = [(0.0, 0.9), (1.0, 0.9)]
    assert np.allclose(line.get_transform().transform(ends),
                       ax.get_yaxis_transform().transform(ends))
    assert ax.get_ylim()[1] > 0.9  # the axis range takes the line in, as plotly's autorange
    assert to_rgba(line.get_color()) == to_rgba("#ff7f0e")
    assert line.get_linestyle() == "--" and line.get_linewidth() == pytest.approx(3 * 0.72)
    label = _labels(ax)["knn 0.9000"]
    assert label.xy == (1.0, 0.9)
    assert (label.get_horizontalalignment(), label.get_verticalalignment()) == ("right", "top")
    drawn.canvas.draw()
    box, plot = label.get_window_extent(), ax.get_window_extent()
    line_y = ax.transData.transform((0, 0.9))[1]
    assert plot.x1 - 10 < box.x1 <= plot.x1 and line_y - 10 < box.y1 <= line_y
    assert float(label.get_fontsize()) < 10  # plotly's 12 px: smaller than the tick labels


def test_a_vrect_shades_between_its_xs_under_the_grid_and_a_vline_is_labelled_at_its_top(
        ) -> None:
    figure = go.Figure(go.Scatter(x=[0, 10], y=[1, 2], mode="markers"))
    figure.add_vrect(x0=2, x1=5, fillcolor="#eeeeee", line_width=0, layer="below")
    figure.add_vline(x=2, line_dash="dot", line_color="#555555",
                     annotation_text="session 2 (1h)", annotation_position="top right")
    drawn = to_matplotlib(figure)
    ax = _only_axes(drawn)
    (shade,) = _rectangles(ax)
    assert (shade.get_x(), shade.get_width(), shade.get_y(), shade.get_height()) == (2, 3, 0, 1)
    corners = shade.get_transform().transform([(0, 0), (1, 1)])  # of the unit square
    assert np.allclose(corners, ax.get_xaxis_transform().transform([(2, 0), (5, 1)]))
    assert shade.get_facecolor() == pytest.approx(to_rgba("#eeeeee"))
    assert shade.get_linewidth() == 0
    assert shade.get_zorder() < ax.xaxis.get_zorder()  # layer "below": under the grid lines
    (line,) = ax.lines
    ends = [(2.0, 0.0), (2.0, 1.0)]
    assert _xy(line) == ([2, 2], [0, 1])
    assert np.allclose(line.get_transform().transform(ends),
                       ax.get_xaxis_transform().transform(ends))
    assert line.get_linestyle() == ":" and to_rgba(line.get_color()) == to_rgba("#555555")
    label = _labels(ax)["session 2 (1h)"]
    assert label.xy == (2.0, 1.0)
    drawn.canvas.draw()
    box, plot = label.get_window_extent(), ax.get_window_extent()
    line_x = ax.transData.transform((2, 0))[0]
    assert line_x <= box.x0 < line_x + 10 and plot.y1 - 10 < box.y1 <= plot.y1


def test_shapes_in_data_coordinates_widen_the_range_are_clipped_and_fade_with_opacity() -> None:
    figure = go.Figure(go.Scatter(x=[0, 10], y=[0, 10], mode="markers"))
    figure.add_shape(type="rect", x0=1, x1=3, y0=2, y1=12, fillcolor="red", opacity=0.5,
                     line={"color": "blue", "width": 3})
    figure.add_hrect(y0=4, y1=5, fillcolor="green", opacity=0.25, line_width=0)
    figure.add_shape(type="circle", x0=6, x1=8, y0=6, y1=8, line={"color": "black"})
    ax = _only_axes(to_matplotlib(figure, dpi=100))
    box, band = _rectangles(ax)
    assert (box.get_x(), box.get_width(), box.get_y(), box.get_height()) == (1, 2, 2, 10)
    assert np.allclose(box.get_transform().transform([(0, 0), (1, 1)]),
                       ax.transData.transform([(1, 2), (3, 12)]))
    assert ax.get_ylim()[1] >= 12 and box.get_clip_on()
    assert box.get_facecolor() == pytest.approx((1, 0, 0, 0.5))
    assert box.get_edgecolor() == pytest.approx((0, 0, 1, 0.5))
    assert box.get_linewidth() == pytest.approx(3 * 0.72)
    assert box.get_zorder() > max(c.get_zorder() for c in ax.collections)  # plotly: above
    assert (band.get_x(), band.get_width(), band.get_y(), band.get_height()) == (0, 1, 4, 1)
    assert band.get_facecolor() == pytest.approx((0, 128 / 255, 0, 0.25))
    (circle,) = [patch for patch in ax.patches if patch not in (box, band)]
    assert np.allclose(circle.get_transform().transform([(0, 0)]),
                       ax.transData.transform([(7, 7)]))  # the ellipse's centre
    alone = go.Figure()
    alone.add_hline(y=2)  # no trace: the range still shows the line
    low, high = _only_axes(to_matplotlib(alone)).get_ylim()
    assert low < 2 < high


def test_shape_and_annotation_coordinates_on_log_category_and_date_axes() -> None:
    logged = go.Figure(go.Scatter(x=[1, 2], y=[1, 1000], mode="markers"),
                       layout={"yaxis": {"type": "log"}})
    logged.add_hline(y=100, annotation_text="at 10**100")  # shapes: values
    logged.add_annotation(x=1.5, y=2, text="at 100", showarrow=False)  # annotations: exponents
    ax = _only_axes(to_matplotlib(logged))
    (line,) = ax.lines
    assert _xy(line)[1] == [100, 100]
    # add_hline's label keeps the line's y, so on a log axis plotly puts it off the axis and
    # hides it, as plotly hides any annotation whose data lies off its axis
    assert _labels(ax)["at 10**100"].xy[1] == 1e100
    assert not _labels(ax)["at 10**100"].get_visible()
    assert _labels(ax)["at 100"].xy == (1.5, pytest.approx(100))
    assert _labels(ax)["at 100"].get_visible()
    categories = go.Figure(go.Bar(x=["a", "b", "c"], y=[1, 2, 3]))
    categories.add_vline(x="b")
    categories.add_annotation(x=2, y=3, text="c by its number", showarrow=False)
    ax = _only_axes(to_matplotlib(categories))
    (line,) = ax.lines
    assert _xy(line)[0] == [1, 1]
    assert _labels(ax)["c by its number"].xy == (2, 3)
    start = datetime(2024, 1, 1)
    timed = go.Figure(go.Scatter(x=[start, start + timedelta(days=4)], y=[1, 2], mode="lines"))
    timed.add_vrect(x0="2024-01-02", x1=start + timedelta(days=3))
    (span,) = _rectangles(_only_axes(to_matplotlib(timed)))
    assert span.get_x() == pytest.approx(dates.date2num(datetime(2024, 1, 2)))
    assert span.get_width() == pytest.approx(2.0)  # days


def test_subplot_titles_and_annotations_go_to_their_own_plotting_area() -> None:
    figure = make_subplots(rows=1, cols=2, subplot_titles=("left plot", "right plot"))
    figure.add_trace(go.Scatter(x=[1, 2], y=[1, 2], mode="markers"), row=1, col=1)
    figure.add_trace(go.Scatter(x=[1, 3], y=[4, 6], mode="markers"), row=1, col=2)
    figure.add_annotation(x=3, y=6, xref="x2", yref="y2", text="peak")
    drawn = to_matplotlib(figure)
    left, right = sorted(drawn.axes, key=lambda ax: ax.get_position().x0)
    assert list(_labels(left)) == ["left plot"]
    assert list(_labels(right)) == ["right plot", "peak"]
    peak = _labels(right)["peak"]
    assert peak.xy == (3, 6) and peak.arrow_patch is not None  # plotly's default arrow
    drawn.canvas.draw()
    for ax, name in ((left, "left plot"), (right, "right plot")):
        box, plot = _labels(ax)[name].get_window_extent(), ax.get_window_extent()
        assert box.y0 >= plot.y1  # above its plot, centred over it
        assert abs((box.x0 + box.x1) / 2 - (plot.x0 + plot.x1) / 2) < 2
    text, head = peak.get_window_extent(), right.transData.transform((3, 6))
    assert (text.x0 + text.x1) / 2 < head[0] and text.y0 > head[1]  # up and left of its point


def test_shapes_that_are_not_drawn_are_noted_in_the_image() -> None:
    figure = go.Figure(go.Scatter(x=[0, 1], y=[0, 1], mode="markers"))
    figure.add_shape(type="path", path="M 0 0 L 1 1 L 1 0 Z")
    figure.add_shape(type="line", x0=0, x1=1, y0=0, y1=1, xref="x5")  # no such axis
    ax = _only_axes(to_matplotlib(figure))
    assert [text.get_text() for text in ax.texts] == ["path shape not drawn\nline shape not drawn"]
    assert len(ax.lines) == 0 and _rectangles(ax) == []


def test_shapes_and_labels_show_in_the_png(tmp_path: Path) -> None:
    figure = go.Figure(go.Scatter(x=[0, 10], y=[0, 1], mode="markers",
                                  marker={"color": "black"}))
    figure.add_vrect(x0=2, x1=4, fillcolor="rgb(0, 200, 0)", line_width=0, layer="below")
    figure.add_hline(y=0.5, line_color="red", line_width=4, annotation_text="threshold")
    pixels = _pixels(save_png(figure, tmp_path / "shapes.png"))
    assert _near(pixels, (0, 200, 0)) > 5000  # the band, the plot's whole height
    assert _near(pixels, (255, 0, 0)) > 1500  # the line, across the plot


# --- bar modes ------------------------------------------------------------------------------

def _spans(ax: Axes, horizontal: bool) -> np.ndarray:
    """(start, length, centre, width) of each bar, in drawing order."""
    return np.array([(p.get_x(), p.get_width(), p.get_y() + p.get_height() / 2, p.get_height())
                     if horizontal else
                     (p.get_y(), p.get_height(), p.get_x() + p.get_width() / 2, p.get_width())
                     for p in _rectangles(ax)])


def test_stacked_horizontal_bars_start_where_the_previous_trace_ended() -> None:
    kinds = ["short runs", "full runs", "baselines"]
    seconds = [[10.0, 20.0, 2.0], [5.0, 15.0, 0.0], [2.0, 8.0, 1.0]]
    figure = go.Figure([go.Bar(x=row, y=kinds, orientation="h", name=f"session {n + 1}")
                        for n, row in enumerate(seconds)],
                       layout={"barmode": "stack", "yaxis": {"autorange": "reversed"}})
    ax = _only_axes(to_matplotlib(figure))
    spans = _spans(ax, horizontal=True).reshape(3, 3, 4)  # trace, category, field
    assert spans[:, :, 1] == pytest.approx(np.array(seconds))
    starts = np.vstack([np.zeros(3), np.cumsum(seconds, axis=0)[:-1]])
    assert spans[:, :, 0] == pytest.approx(starts)
    assert spans[:, :, 2] == pytest.approx(np.tile([0, 1, 2], (3, 1)))  # one bar per category
    assert spans[:, :, 3] == pytest.approx(np.full((3, 3), 0.8))
    assert ax.yaxis_inverted() and _tick_texts(ax, "y") == kinds
    legend = ax.get_legend()
    assert legend is not None
    assert [t.get_text() for t in legend.get_texts()] == ["session 1", "session 2", "session 3"]


def test_stack_piles_every_value_and_relative_piles_signs_apart() -> None:
    traces = [[2, -1], [-3, 4], [1, -2]]

    def spans(mode: str) -> np.ndarray:
        figure = go.Figure([go.Bar(x=["a", "b"], y=values) for values in traces],
                           layout={"barmode": mode})
        return _spans(_only_axes(to_matplotlib(figure)), horizontal=False)[:, :2]

    # (start, length) per bar: trace 1 at a, b, then trace 2, then trace 3
    assert spans("stack") == pytest.approx(
        np.array([(0, 2), (0, -1), (2, -3), (-1, 4), (-1, 1), (3, -2)]))
    assert spans("relative") == pytest.approx(
        np.array([(0, 2), (0, -1), (0, -3), (0, 4), (2, 1), (-1, -2)]))


def test_stacks_with_offset_groups_stand_side_by_side() -> None:
    figure = go.Figure([go.Bar(x=["a"], y=[1], offsetgroup="one"),
                        go.Bar(x=["a"], y=[2], offsetgroup="one"),
                        go.Bar(x=["a"], y=[5], offsetgroup="two")],
                       layout={"barmode": "stack"})
    spans = _spans(_only_axes(to_matplotlib(figure)), horizontal=False)
    assert spans[:, 0] == pytest.approx([0, 1, 0])  # the second piles on the first only
    assert spans[:, 2] == pytest.approx([-0.2, -0.2, 0.2]) and spans[:, 3] == pytest.approx(0.4)


def test_grouped_bars_sit_side_by_side_in_each_category_in_trace_order() -> None:
    heights = [[1, 2, 3], [2, 1, 2], [3, 3, 1]]
    figure = go.Figure([go.Bar(x=["a", "b", "c"], y=row, name=f"t{n}")
                        for n, row in enumerate(heights)])  # plotly's default barmode: group
    spans = _spans(_only_axes(to_matplotlib(figure)), horizontal=False).reshape(3, 3, 4)
    assert spans[:, :, 1] == pytest.approx(np.array(heights)) and np.all(spans[:, :, 0] == 0)
    for category in range(3):
        centres, widths = spans[:, category, 2], spans[:, category, 3]
        lefts, rights = centres - widths / 2, centres + widths / 2
        assert list(centres) == sorted(centres)  # first trace at the left
        assert np.all(rights[:-1] <= lefts[1:] + 1e-9)  # no overlap
        assert (lefts[0], rights[-1]) == pytest.approx((category - 0.4, category + 0.4))
    gapped = go.Figure(figure).update_layout(bargroupgap=0.5)
    gapped_spans = _spans(_only_axes(to_matplotlib(gapped)), horizontal=False).reshape(3, 3, 4)
    assert gapped_spans[:, :, 3] == pytest.approx(spans[:, :, 3] / 2)
    assert gapped_spans[:, :, 2] == pytest.approx(spans[:, :, 2])  # centred in their share


def test_grouped_bars_that_never_meet_and_overlaid_bars_keep_the_full_width() -> None:
    apart = go.Figure([go.Bar(x=[0, 2], y=[1, 1]), go.Bar(x=[1, 3], y=[2, 2])])
    spans = _spans(_only_axes(to_matplotlib(apart)), horizontal=False)
    assert spans[:, 2] == pytest.approx([0, 2, 1, 3]) and spans[:, 3] == pytest.approx(0.8)
    overlaid = go.Figure([go.Bar(x=["a", "b"], y=[1, 2]), go.Bar(x=["a", "b"], y=[2, 1])],
                         layout={"barmode": "overlay"})
    spans = _spans(_only_axes(to_matplotlib(overlaid)), horizontal=False)
    assert spans[:, 2] == pytest.approx([0, 1, 0, 1]) and spans[:, 3] == pytest.approx(0.8)
    assert spans[:, 0] == pytest.approx(0)
    offset = go.Figure([go.Bar(x=[0, 1], y=[1, 1]), go.Bar(x=[0, 1], y=[1, 1], offset=-0.1,
                                                            width=0.2)])
    spans = _spans(_only_axes(to_matplotlib(offset)), horizontal=False)
    assert spans[2:, 2] == pytest.approx([0, 1]) and spans[2:, 3] == pytest.approx(0.2)


def test_a_horizontal_legend_goes_under_the_plot_not_over_the_data() -> None:
    names = [f"run number {n}" for n in range(5)]
    figure = go.Figure([go.Scatter(x=[0, 1], y=[n, n + 1], name=name)
                        for n, name in enumerate(names)],
                       layout={"legend": {"orientation": "h", "y": -0.2},
                               "xaxis": {"title": {"text": "steps"}}})
    drawn = to_matplotlib(figure)
    ax = _only_axes(drawn)
    assert ax.get_legend() is None
    (legend,) = drawn.legends
    assert [text.get_text() for text in legend.get_texts()] == names
    drawn.canvas.draw()
    box = legend.get_window_extent()
    assert box.y1 <= ax.xaxis.label.get_window_extent().y0  # under the axis title
    assert box.y0 >= 0 and box.x0 >= 0 and box.x1 <= drawn.bbox.width
    assert box.width > 3 * box.height  # in a row, not one long column


# --- Optuna's figures -----------------------------------------------------------------------

def test_param_importances_are_one_horizontal_bar_per_parameter() -> None:
    study = _single_objective_study()
    evaluator = optuna.importance.PedAnovaImportanceEvaluator()  # fast; the figure is the same
    figure = optuna.visualization.plot_param_importances(study, evaluator=evaluator)
    (trace,) = figure.data
    ax = _only_axes(to_matplotlib(figure))
    assert len(ax.patches) == 3
    assert _tick_texts(ax, "y") == list(trace.y)
    assert set(trace.y) == {"x", "depth", "kind"}
    assert [patch.get_width() for patch in ax.patches] == pytest.approx(list(trace.x))
    assert ax.get_title() == "Hyperparameter Importances"
    assert ax.get_xlabel() == "Hyperparameter Importance"


def test_pareto_front_draws_every_trial_at_its_objective_values() -> None:
    study = _two_objective_study()
    drawn = to_matplotlib(optuna.visualization.plot_pareto_front(study))
    ax = _only_axes(drawn)
    expected = sorted((trial.values[0], trial.values[1]) for trial in study.trials)
    assert np.allclose(_offsets(ax), expected)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("Objective 0", "Objective 1")
    colorbars = [other.get_ylabel() for other in drawn.axes if other.get_label() == "<colorbar>"]
    assert sorted(colorbars) == ["Best Trial", "Trial"]


def test_optimization_history_draws_values_and_the_best_so_far() -> None:
    study = _single_objective_study()
    ax = _only_axes(to_matplotlib(optuna.visualization.plot_optimization_history(study)))
    values = [trial.value for trial in study.trials]
    assert _offsets(ax) == sorted((float(n), value) for n, value in enumerate(values))
    (best,) = ax.lines
    assert list(best.get_ydata()) == pytest.approx(np.minimum.accumulate(values))
    legend = ax.get_legend()
    assert legend is not None
    assert [text.get_text() for text in legend.get_texts()] == ["Objective Value", "Best Value"]
