"""One model's evaluation on one split, in a module free of torch: the search records it per
trial in its study, and the driver never imports torch.

No `from __future__ import annotations` here: the search's record codec reads these field types
as live objects.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Evaluation:
    """metric: its name (e.g. "accuracy"); value: the metric itself; score: what the search
    maximises (the value, negated when lower is better); loss: the task loss."""

    metric: str
    value: float
    score: float
    loss: float
