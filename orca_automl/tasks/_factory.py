"""`load_task`: the one way every caller (CLI, search, tests) turns a task spec into a Task."""

from __future__ import annotations

from pathlib import Path

from orca_automl.errors import OrcaInputError
from orca_automl.tasks._base import Task
from orca_automl.tasks._builtin import TASKS
from orca_automl.tasks._files import load_file_task, looks_like_path


def load_task(
    spec: str,
    *,
    task_type: str | None = None,
    target: str | None = None,
    seed: int = 0,
    val_fraction: float | None = None,
) -> Task:
    """A built-in task by name, or the user's data file or folder by path.

    Args:
        spec: a name registered in `TASKS`, or a path to .npz / .csv / .parquet or a folder
            (layouts in `orca_automl.tasks._files`). A registered name wins over a file or
            folder of the same name in the working directory: write `./digits` for that.
        task_type: classification, multilabel, regression or dense; None infers it from the
            targets. An explicit type the targets contradict raises `OrcaInputError`.
        target: the target column of a csv / parquet table (default "target", else the last).
        seed: chooses the validation split (test splits never depend on it).
        val_fraction: share of the training data held out for validation where the source
            gives no validation split (default 0.2; 0.3 for the tiny UCR tasks).

    Raises:
        OrcaInputError: unknown name, unreadable or inconsistent data; one line saying what to fix.

    Example:
        >>> task = load_task("gunpoint", seed=1)
        >>> task.input_shape, task.num_outputs
        ((1, 150), 2)
    """
    if spec not in TASKS:
        if looks_like_path(spec):
            return load_file_task(
                Path(spec).expanduser(),
                task_type=task_type,
                target=target,
                seed=seed,
                val_fraction=val_fraction,
            )
        raise OrcaInputError(
            f"unknown task {spec!r}: choose one of {', '.join(TASKS.names())}, "
            "or give the path of a .npz / .csv / .parquet file or a data folder"
        )
    if target is not None:
        raise OrcaInputError(
            f"task {spec!r} is built in; target= applies to csv / parquet files only"
        )
    task = TASKS.get(spec)(seed, val_fraction)
    if task_type is not None and task_type != task.task_type:
        raise OrcaInputError(
            f"task {spec!r} is a {task.task_type} task, not {task_type}; drop task_type"
        )
    return task
