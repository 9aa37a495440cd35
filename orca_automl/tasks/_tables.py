"""Tables (csv / parquet) to feature matrices: numeric columns as they are, categorical one-hot.

The encoding is fitted on the training split only and kept in the task (`extras
["table_encoding"]`, a JSON-able dict), so a saved model turns new rows into the same
columns. A category never seen in training encodes as all zeros in its column group.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from orca_automl.errors import OrcaInputError


@dataclass(frozen=True)
class TableEncoding:
    """Which input columns are numeric and which categorical (with their training categories).

    Example:
        >>> df = pd.DataFrame({"age": [30, 40], "city": ["Oslo", "Rome"]})
        >>> enc = TableEncoding.fit(df, source="people.csv")
        >>> enc.transform(df, source="people.csv").tolist()
        [[30.0, 1.0, 0.0], [40.0, 0.0, 1.0]]
    """

    numeric: tuple[str, ...]
    categorical: tuple[tuple[str, tuple[str, ...]], ...]

    @classmethod
    def fit(cls, df: pd.DataFrame, *, source: str) -> TableEncoding:
        """Numeric and boolean columns stay numeric; any other column is categorical."""
        if df.shape[1] == 0:
            raise OrcaInputError(f"{source}: no input columns besides the target; add features")
        numeric = tuple(
            str(c)
            for c in df.columns
            if pd.api.types.is_numeric_dtype(df[c]) or pd.api.types.is_bool_dtype(df[c])
        )
        categorical = tuple(
            (str(c), tuple(sorted(df[c].astype(str).unique())))
            for c in df.columns
            if str(c) not in numeric
        )
        return cls(numeric, categorical)

    @property
    def columns(self) -> tuple[str, ...]:
        return self.numeric + tuple(name for name, _ in self.categorical)

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Names of the encoded features, `column=category` for one-hot ones."""
        one_hot = tuple(f"{name}={cat}" for name, cats in self.categorical for cat in cats)
        return self.numeric + one_hot

    def transform(self, df: pd.DataFrame, *, source: str) -> np.ndarray:
        """(rows, features) float32; `source` names the table in error messages."""
        missing = [c for c in self.columns if c not in df.columns]
        if missing:
            raise OrcaInputError(
                f"{source}: missing input columns {missing}; give every split the same columns"
            )
        check_complete(df[list(self.columns)], source=source)
        try:
            parts = [df[list(self.numeric)].to_numpy(dtype=np.float64)]
        except (TypeError, ValueError):
            raise OrcaInputError(
                f"{source}: numeric columns {list(self.numeric)} hold non-numbers; "
                "give them numbers as in the training data"
            ) from None
        for name, cats in self.categorical:
            values = df[name].astype(str).to_numpy()
            parts.append((values[:, None] == np.asarray(cats)[None, :]).astype(np.float64))
        X = np.concatenate(parts, axis=1)
        if not np.isfinite(X).all():
            raise OrcaInputError(
                f"{source}: {int((~np.isfinite(X)).sum())} infinite values in numeric columns; "
                "remove or clip them"
            )
        return X.astype(np.float32)

    def to_dict(self) -> dict[str, object]:
        return {
            "numeric": list(self.numeric),
            "categorical": {n: list(c) for n, c in self.categorical},
        }

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> TableEncoding:
        numeric = d["numeric"]
        categorical = d["categorical"]
        assert isinstance(numeric, list) and isinstance(categorical, dict)
        return cls(
            tuple(str(c) for c in numeric),
            tuple((str(n), tuple(str(c) for c in cats)) for n, cats in categorical.items()),
        )


def check_complete(df: pd.DataFrame, *, source: str) -> None:
    """Refuse missing values, naming the columns and counts (imputation is the user's call)."""
    counts = df.isna().sum()
    bad = {str(c): int(n) for c, n in counts.items() if n}
    if bad:
        raise OrcaInputError(
            f"{source}: missing (NaN) values in columns {bad}; fill or drop those rows"
        )
