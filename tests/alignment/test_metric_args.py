"""Every metric parameter a search space may set (`align.metric_args.<key>`) refuses bad values
with one line naming the metric, the key and what it must be; unknown keys name the valid ones."""

from __future__ import annotations

import inspect
import math
from typing import Any

import numpy as np
import pytest

from orca_automl.alignment import ALIGNMENT_METRICS, create_metric
from orca_automl.errors import OrcaInputError

_OTDD = {
    "outer": ["greedy", 1, None],
    "reg": [0, 0.0, -0.1, "0.1", True, math.nan, math.inf, None],
    "label_weight": [-1.0, "1", math.inf, None],
    "max_iter": [0, -5, 100.0, "100", True],
    "tol": [0.0, -1e-6, "1e-6", math.nan],
}
_SEED = {"seed": [-1, 1.5, "0", True]}
#: Bad values per metric and parameter; every parameter of every metric must be listed.
BAD: dict[str, dict[str, list[object]]] = {
    "otdd_gaussian": _OTDD,
    "otdd_exact": {**_OTDD, "max_points_per_class": [0, -1, 2.5, "200"], **_SEED},
    "mmd": {"bandwidth_scales": [[], (), "1", 1.0, None, [1.0, -2.0], [0.0], [True], ["1"]]},
    "sliced_wasserstein": {"n_projections": [0, -1, 64.0, "64", True], **_SEED},
    "l2": _SEED,
    "none": {},
}
#: Values inside the ranges worth searching, which must be accepted as given.
GOOD: dict[str, dict[str, list[object]]] = {
    "otdd_gaussian": {"reg": [0.05, 0.2, np.float64(0.1)], "label_weight": [0, 0.5, 2]},
    "otdd_exact": {"reg": [0.05, 0.2], "label_weight": [0.5, 2.0]},
    "sliced_wasserstein": {"n_projections": [64, 256, np.int64(128)]},
    "mmd": {"bandwidth_scales": [[1], (0.25, 0.5, 1.0), [1.0, 2.0, 4.0]]},
}


def _parameters(name: str) -> list[str]:
    return list(inspect.signature(ALIGNMENT_METRICS.get(name)).parameters)


@pytest.mark.parametrize("name", ALIGNMENT_METRICS.names())
def test_every_parameter_has_bad_value_cases(name: str) -> None:
    assert name in BAD, f"add the bad values of the new metric {name!r} to BAD"
    assert sorted(BAD[name]) == sorted(_parameters(name))


@pytest.mark.parametrize(
    ("name", "key", "value"),
    [
        (name, key, value)
        for name, keys in BAD.items()
        for key, values in keys.items()
        for value in values
    ],
)
def test_bad_values_give_one_line_naming_the_key_and_the_fix(
    name: str, key: str, value: object
) -> None:
    with pytest.raises(OrcaInputError) as error:
        create_metric(name, **{key: value})
    message = str(error.value)
    assert "\n" not in message
    assert f"alignment metric {name!r}" in message and key in message and "must be" in message


@pytest.mark.parametrize("name", ALIGNMENT_METRICS.names())
def test_unknown_keys_name_the_valid_ones(name: str) -> None:
    for key in ("blur", "epsilon", "n_proj"):
        with pytest.raises(OrcaInputError) as error:
            create_metric(name, **{key: 0.1})
        message = str(error.value)
        assert "\n" not in message and f"no parameter {key!r}" in message
        assert all(valid in message for valid in _parameters(name))


@pytest.mark.parametrize(
    ("name", "key", "value"),
    [
        (name, key, value)
        for name, keys in GOOD.items()
        for key, values in keys.items()
        for value in values
    ],
)
def test_searchable_values_are_accepted(name: str, key: str, value: Any) -> None:
    metric = create_metric(name, **{key: value})
    kept = getattr(metric, key)
    if key == "bandwidth_scales":
        assert kept == tuple(float(s) for s in value)
    else:
        assert kept == value
