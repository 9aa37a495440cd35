"""Tasks: what is predicted from what, split and normalised, with its loss and metric.

`load_task(spec)` is the one factory: a built-in name from `TASKS` (real data shipped inside
installed packages, plus a generated Burgers PDE task) or the path of the user's own data.

Example:
    >>> from orca_automl.tasks import load_task
    >>> task = load_task("digits", seed=0)
    >>> task.modality, task.input_shape, task.num_outputs
    ('2d', (1, 8, 8), 10)
"""

from orca_automl.tasks._base import MODALITIES, TASK_TYPES, Normalizer, Split, Task
from orca_automl.tasks._build import RawData, build_task
from orca_automl.tasks._builtin import TASKS, TaskBuilder
from orca_automl.tasks._factory import load_task
from orca_automl.tasks._metrics import Metric, loss_for, metric_for, to_predictions
from orca_automl.tasks._tables import TableEncoding

__all__ = [
    "MODALITIES",
    "TASKS",
    "TASK_TYPES",
    "Metric",
    "Normalizer",
    "RawData",
    "Split",
    "TableEncoding",
    "Task",
    "TaskBuilder",
    "build_task",
    "load_task",
    "loss_for",
    "metric_for",
    "to_predictions",
]
