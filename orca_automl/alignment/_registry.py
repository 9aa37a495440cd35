"""The alignment-metric registry and its one factory, `create_metric`."""

from __future__ import annotations

import inspect

from orca_automl.alignment._base import AlignmentMetric
from orca_automl.errors import OrcaInputError
from orca_automl.registry import Registry

ALIGNMENT_METRICS: Registry[type[AlignmentMetric], None] = Registry("alignment metric")


def create_metric(name: str, **params: object) -> AlignmentMetric:
    """Build the registered metric `name` with keyword parameters.

    Unknown names or parameters and invalid values raise `OrcaInputError` with one line
    saying what to change.

    Example:
        >>> from orca_automl.alignment import create_metric
        >>> create_metric("otdd_gaussian", reg=0.05).reg
        0.05
    """
    cls = ALIGNMENT_METRICS.get(name)
    accepted = list(inspect.signature(cls).parameters)
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        valid = ", ".join(accepted) if accepted else "none"
        raise OrcaInputError(
            f"alignment metric {name!r} has no parameter {unknown[0]!r}: valid ones are {valid}"
        )
    return cls(**params)
