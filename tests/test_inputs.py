"""The checks every loader makes of a user's input: regular files, UTF-8, bounded YAML, real
arrays, seeds and devices; each refuses with one line, never blocks or expands."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from orca_automl.errors import OrcaInputError
from orca_automl.inputs import (
    MAX_SEED,
    MAX_YAML_NODES,
    check_finite,
    check_seed,
    load_yaml,
    read_text,
    real_array,
    regular_file,
    resolve_device,
)


def alias_bomb(levels: int, width: int = 9) -> str:
    """The 'billion laughs' of YAML: each level lists the previous one `width` times."""
    lines = ["a0: &a0 [" + ", ".join(["lol"] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def test_a_regular_file_passes_and_everything_else_is_one_line(tmp_path: Path) -> None:
    file = tmp_path / "f.yaml"
    file.write_text("a: 1\n")
    assert regular_file(file, "x", "fix") == file
    (tmp_path / "link.yaml").symlink_to(file)
    assert regular_file(tmp_path / "link.yaml", "x", "fix") == tmp_path / "link.yaml"
    os.mkfifo(tmp_path / "pipe.yaml")
    for path, words in [(tmp_path / "missing.yaml", "does not exist"),
                        (tmp_path, "is a folder"),
                        (tmp_path / "pipe.yaml", "not a regular file"),
                        (Path("/dev/null"), "not a regular file")]:
        with pytest.raises(OrcaInputError, match=words):
            regular_file(path, "search space", "give a YAML file")


def test_a_named_pipe_is_refused_without_blocking(tmp_path: Path) -> None:
    """Opening a pipe that no one writes to blocks forever: the check never opens it."""
    pipe = tmp_path / "data.yaml"
    os.mkfifo(pipe)
    errors: list[BaseException] = []
    reader = threading.Thread(target=lambda: errors.append(
        pytest.raises(OrcaInputError, read_text, pipe, "config file", "fix").value), daemon=True)
    reader.start()
    reader.join(timeout=30)
    assert not reader.is_alive() and "not a regular file" in str(errors[0])


def test_text_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "space.yaml"
    path.write_bytes(b"params:\n  a: \xff\xfe\n")
    with pytest.raises(OrcaInputError, match=r"is not UTF-8 text \(byte 13\)"):
        read_text(path, "search space", "save it as UTF-8")


def test_yaml_reads_as_safe_load_does() -> None:
    text = "base: &b {lr: 0.001}\nother: *b\nlist: [1, 2.5, x, true, null]\n"
    assert load_yaml(text, "t") == yaml.safe_load(text)
    assert load_yaml("", "t") is None


def test_an_alias_bomb_is_refused_without_expanding_it() -> None:
    with pytest.raises(OrcaInputError, match="more than 100,000 nodes"):
        load_yaml(alias_bomb(10), "search space bomb.yaml")  # 9**9: about 387 million leaves
    small = alias_bomb(3)  # 9**3 leaves: fine
    assert len(load_yaml(small, "t")["a2"]) == 9


def test_the_bound_counts_every_use_of_an_alias() -> None:
    width = 400  # 400 uses of a 400-item list: 160,000 leaves from 800 lines of nodes
    text = "a: &a [" + ", ".join(["x"] * width) + "]\nb: [" + ", ".join(["*a"] * width) + "]\n"
    assert width * width > MAX_YAML_NODES
    with pytest.raises(OrcaInputError, match="aliases"):
        load_yaml(text, "t")


@pytest.mark.parametrize(("text", "words"), [
    ("a: [unclosed\n", "not valid YAML (line 2)"),
    ("[" * 5000, "nests too deeply"),
    ("a: !!python/object/apply:os.system [echo hi]\n", "not valid YAML"),
    ("--- 1\n--- 2\n", "not valid YAML"),
])
def test_bad_yaml_is_one_line(text: str, words: str) -> None:
    with pytest.raises(OrcaInputError, match=words.replace("(", r"\(").replace(")", r"\)")):
        load_yaml(text, "config file c.yaml")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_any_text_loads_or_is_one_line(text: str) -> None:
    try:
        load_yaml(text, "t")
    except OrcaInputError as exc:
        assert "\n" not in str(exc)


@pytest.mark.parametrize("array", [
    np.zeros(3, np.complex64), np.array(["a", "b"]), np.array([b"a"]),
    np.array(["2020-01-01"], dtype="datetime64[D]"), np.zeros(2, dtype=[("a", "f4")]),
])
def test_arrays_of_anything_but_real_numbers_are_refused(array: np.ndarray) -> None:
    with pytest.raises(OrcaInputError, match="X_train"):
        real_array(array, "X_train")


@pytest.mark.parametrize("dtype", [np.bool_, np.int8, np.uint64, np.float16, np.float64])
def test_real_arrays_pass(dtype: type) -> None:
    array = np.ones(3, dtype)
    assert real_array(array, "X") is array


@pytest.mark.parametrize("seed", [-1, MAX_SEED + 1, 2**64, True, 1.5, "3"])
def test_seeds_outside_numpys_range_are_refused(seed: object) -> None:
    with pytest.raises(OrcaInputError, match="--seed must be a whole number from 0"):
        check_seed(seed)


def test_seeds_inside_the_range_pass() -> None:
    assert check_seed(0) == 0 and check_seed(MAX_SEED) == MAX_SEED
    np.random.default_rng(MAX_SEED)  # what the range is for
    np.random.RandomState(MAX_SEED)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_numbers_must_be_finite(value: float) -> None:
    with pytest.raises(OrcaInputError, match="--gpus-per-trial must be a finite number"):
        check_finite(value, "--gpus-per-trial")


def test_devices_resolve_against_this_machine() -> None:
    import torch

    assert resolve_device(None) == torch.device("cpu") == resolve_device("cpu")
    absent = ["cuda", "cuda:0", "cuda:7"] if not torch.cuda.is_available() else [
        f"cuda:{torch.cuda.device_count()}"]
    for name in [*absent, "nonsense", "cuda:x", "", "meta", "xla"]:
        with pytest.raises(OrcaInputError, match="--device"):
            resolve_device(name)
