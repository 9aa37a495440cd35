"""Fuzzing the data-file loader: any .npz, .csv or .parquet a user can hand us either loads
as a task or raises the project's one-line error, and reading it writes nothing."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from orca_automl.errors import OrcaInputError
from orca_automl.tasks import Task, load_task
from orca_automl.tasks._files import NPZ_KEYS

FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

DTYPES = st.sampled_from([np.float32, np.float64, np.float16, np.int64, np.uint8, np.bool_,
                          np.complex64, np.dtype("<U3"), np.dtype("S2"),
                          np.dtype("datetime64[s]")])


def arrays() -> st.SearchStrategy[np.ndarray]:
    """Arrays of any of the dtypes above, 0 to 4 dimensions, with NaN and infinities."""
    return DTYPES.flatmap(lambda dtype: hnp.arrays(
        dtype, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=7)))


def series_arrays(rows: int) -> st.SearchStrategy[np.ndarray]:
    """Arrays that look almost right: `rows` samples of small series with odd values."""
    return hnp.arrays(np.float32, (rows, 1, 8),
                      elements=st.one_of(st.floats(-1e6, 1e6, width=32), st.just(np.nan)))


NPZ_CONTENT = st.one_of(
    st.dictionaries(st.sampled_from([*NPZ_KEYS, "X", "junk"]), arrays(), max_size=6),
    st.integers(6, 30).flatmap(lambda n: st.fixed_dictionaries({
        "X_train": series_arrays(n),
        "y_train": hnp.arrays(st.sampled_from([np.int64, np.float32, np.dtype("<U2")]), (n,),
                              elements=None),
    })),
)


def load_or_refuse(path: Path) -> Task | None:
    """The property: a task, or `OrcaInputError` with one line; nothing written beside it."""
    before = sorted(p.name for p in path.parent.iterdir())
    try:
        task = load_task(str(path), seed=0)
        event("loaded")
        return task
    except OrcaInputError as exc:
        assert "\n" not in str(exc).strip()
        event("refused")
        return None
    finally:
        assert sorted(p.name for p in path.parent.iterdir()) == before


@FUZZ
@given(NPZ_CONTENT)
def test_any_npz_loads_or_is_one_line(content: dict[str, np.ndarray]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.npz"
        np.savez(path, **content)  # type: ignore[arg-type]
        load_or_refuse(path)


@FUZZ
@given(st.binary(max_size=2000), st.sampled_from([".npz", ".csv", ".parquet"]))
def test_any_bytes_load_or_are_one_line(content: bytes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"data{suffix}"
        path.write_bytes(content)
        load_or_refuse(path)


CELLS = st.one_of(st.integers(-5, 5), st.floats(allow_nan=True, allow_infinity=True),
                  st.text(max_size=4), st.booleans(), st.none())
NUMBERS = st.one_of(st.floats(-1e3, 1e3), st.sampled_from([np.nan, np.inf]))
CATEGORIES = st.sampled_from(["a", "b", "c", "ü", "", " "])


@st.composite
def tables(draw: st.DrawFn) -> pd.DataFrame:
    """Tables that are often valid: numeric, categorical or mixed columns and a target of
    class labels or numbers, with the odd NaN, empty string or unseen type."""
    rows = draw(st.integers(0, 40))

    def column(cells: st.SearchStrategy[object]) -> list[object]:
        return draw(st.lists(cells, min_size=rows, max_size=rows))

    kinds = {"number": NUMBERS, "category": CATEGORIES, "mixed": CELLS}
    frame = {f"c{i}": column(kinds[draw(st.sampled_from(list(kinds)))])
             for i in range(draw(st.integers(0, 3)))}
    frame["target"] = column(draw(st.sampled_from(
        [st.integers(0, 2), st.sampled_from(["yes", "no"]), NUMBERS, CELLS])))
    return pd.DataFrame(frame)


@FUZZ
@given(tables(), st.booleans())
def test_any_table_loads_or_is_one_line(frame: pd.DataFrame, parquet: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ("data.parquet" if parquet else "data.csv")
        if parquet:
            try:
                frame.to_parquet(path)
            except Exception as exc:  # mixed columns pyarrow cannot store: no user's file
                if "arrow" not in type(exc).__module__ and not isinstance(exc, TypeError | ValueError):
                    raise
                return
        else:
            frame.to_csv(path, index=False)
        load_or_refuse(path)


@FUZZ
@given(st.text(max_size=400))
def test_any_csv_text_loads_or_is_one_line(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.csv"
        path.write_text(text, encoding="utf-8")
        load_or_refuse(path)


def test_the_fuzzed_loader_still_loads_good_files() -> None:
    """The strategies reach real tasks too (a fuzz that only ever refused would be vacuous)."""
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    X = rng.normal(size=(30, 1, 8)).astype(np.float32)
    np.savez(buffer, X_train=X, y_train=np.arange(30) % 2)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.npz"
        path.write_bytes(buffer.getvalue())
        assert isinstance(load_task(str(path), seed=0), Task)
