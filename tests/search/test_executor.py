"""How a trial run that Ray lost is described: by the first line of Ray's error (which node or
worker died, and why) and its last (the cause), without terminal colour codes."""

from __future__ import annotations

from ray.exceptions import NodeDiedError

from orca_automl.search._executor import describe_ray_error


def test_a_ray_error_is_told_by_its_first_line_and_its_cause() -> None:
    text = ("\x1b[36mray::_execute_in_worker()\x1b[39m (pid=7, ip=10.0.0.2)\n"
            "  At least one of the input arguments for this task could not be computed:\n"
            "ray.exceptions.RaySystemError: System error: No module named 'my_plugin'\n"
            "traceback: Traceback (most recent call last):\n"
            "ModuleNotFoundError: No module named 'my_plugin'\n")
    error, details = describe_ray_error(RuntimeError(text))
    assert error == ("RuntimeError: ray::_execute_in_worker() (pid=7, ip=10.0.0.2) ... "
                     "ModuleNotFoundError: No module named 'my_plugin'")
    assert "\x1b" not in details and "could not be computed" in details


def test_a_one_line_ray_error_is_kept_whole() -> None:
    message = ("Task failed because the node it was running on is dead or unavailable. "
               "Node IP: 10.0.0.2, node ID: ab12")
    assert describe_ray_error(NodeDiedError(message)) == (f"NodeDiedError: {message}", message)
