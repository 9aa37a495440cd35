"""Helpers every alignment metric shares: parameter and batch checks, squared distances.

Parameter checks raise `OrcaInputError` with one line naming the metric, the parameter, what
it must be and what was given, because metric parameters come from search spaces and configs.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from numbers import Integral, Real

import torch

from orca_automl.errors import OrcaInputError


def check_number(metric: str, name: str, value: object, *, minimum: float, inclusive: bool) -> None:
    """Require a finite real number above `minimum` (or equal to it when `inclusive`)."""
    number = float(value) if isinstance(value, Real) and not isinstance(value, bool) else math.nan
    if not math.isfinite(number) or (number < minimum if inclusive else number <= minimum):
        bound = f">= {minimum:g}" if inclusive else f"> {minimum:g}"
        raise OrcaInputError(
            f"alignment metric {metric!r}: {name} must be a finite number {bound}, got {value!r}"
        )


def check_integer(metric: str, name: str, value: object, *, minimum: int) -> None:
    """Require an integer >= `minimum` (bools are rejected: they are almost always a typo)."""
    if not isinstance(value, Integral) or isinstance(value, bool) or value < minimum:
        raise OrcaInputError(
            f"alignment metric {metric!r}: {name} must be an integer >= {minimum}, got {value!r}"
        )


def check_choice(metric: str, name: str, value: object, choices: Collection[str]) -> None:
    """Require one of a few names."""
    if value not in choices:
        raise OrcaInputError(
            f"alignment metric {metric!r}: {name} must be one of {', '.join(sorted(choices))},"
            f" got {value!r}"
        )


def check_batch(features: torch.Tensor, labels: torch.Tensor, dim: int | None = None) -> None:
    """Require float features (n, d) with n >= 1, matching int labels (n,) and, if given, d == dim."""
    if features.ndim != 2 or len(features) == 0 or not features.is_floating_point():
        raise OrcaInputError(
            f"alignment features must be a non-empty float tensor (n, d), got dtype "
            f"{features.dtype} and shape {tuple(features.shape)}: mean-pool tokens first"
        )
    if labels.shape != (len(features),) or labels.is_floating_point():
        raise OrcaInputError(
            f"alignment labels must be an integer tensor ({len(features)},), got dtype "
            f"{labels.dtype} and shape {tuple(labels.shape)}: use pseudo_labels for "
            "regression, dense or multilabel targets"
        )
    if dim is not None and features.shape[1] != dim:
        raise OrcaInputError(
            f"target features have {features.shape[1]} dims but the source has {dim}: align "
            "the features the backbone body receives"
        )


def squared_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """||a_i - b_j||^2 for all pairs with one matmul (the cdist expansion), clamped at 0.

    The expansion is ~3x faster than `torch.cdist` squared and differentiable; rounding can
    make it slightly negative, hence the clamp.
    """
    norms_a = (a * a).sum(1, keepdim=True)
    norms_b = (b * b).sum(1)
    return torch.addmm(norms_a, a, b.T, alpha=-2.0).add_(norms_b).clamp_min_(0.0)
