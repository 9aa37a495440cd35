"""Saved folders as untrusted data: every tampering of a model, baseline or ensemble folder
(a missing block, a field of the wrong type or out of range, shapes that no longer fit the
weights, damaged or hostile weights, files that are named pipes, JSON nested too deeply) is
refused by `load_model` with one `OrcaInputError` line naming the file and what is wrong;
never another exception, never a hang, never code run from the folder."""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import shlex
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import pytest
import torch
from conftest import make_task
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from orca_automl.baselines import BASELINES, fit_baseline, save_baseline
from orca_automl.config import OrcaConfig
from orca_automl.cycle import build_model, load_model, save_ensemble, save_model
from orca_automl.errors import OrcaInputError

Tamper = Callable[[Path], None]
#: What a pickle that names code would create if it ran, inside the tampered folder.
RAN = "ran-code"


@contextlib.contextmanager
def within(seconds: float) -> Iterator[None]:
    """Fail, instead of hanging, when the block blocks (as a reader of a named pipe would)."""
    def expire(signum: int, frame: FrameType | None) -> None:
        raise TimeoutError(f"still running after {seconds} s: blocked")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def assert_refused(folder: Path, words: str) -> None:
    with within(60), pytest.raises(OrcaInputError) as info:
        load_model(folder)
    message = str(info.value)
    assert "\n" not in message and message.strip(), message
    assert words in message, message
    assert not list(folder.rglob(RAN)), "the folder's pickle ran code"


# -- tamperings --------------------------------------------------------------------------------


def edit_json(name: str, change: Callable[[Any], object]) -> Tamper:
    def tamper(folder: Path) -> None:
        data = json.loads((folder / name).read_text())
        change(data)
        (folder / name).write_text(json.dumps(data))
    return tamper


def meta(**blocks: object) -> Tamper:
    return edit_json("meta.json", lambda m: m.update(blocks))


def drop(block: str) -> Tamper:
    return edit_json("meta.json", lambda m: m.pop(block))


def task(**fields: object) -> Tamper:
    return edit_json("meta.json", lambda m: m["task"].update(fields))


def drop_field(field: str) -> Tamper:
    return edit_json("meta.json", lambda m: m["task"].pop(field))


def normalizer(**fields: object) -> Tamper:
    return edit_json("meta.json", lambda m: m["task"]["normalizer"].update(fields))


def rebuild(**fields: object) -> Tamper:
    return edit_json("meta.json", lambda m: m["rebuild"].update(fields))


def write(name: str, content: str | bytes) -> Tamper:
    def tamper(folder: Path) -> None:
        path = folder / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return tamper


def remove(name: str) -> Tamper:
    def tamper(folder: Path) -> None:
        (folder / name).unlink()
    return tamper


def named_pipe(name: str) -> Tamper:
    def tamper(folder: Path) -> None:
        path = folder / name
        if path.exists():
            path.unlink()
        os.mkfifo(path)
    return tamper


def a_folder(name: str) -> Tamper:
    def tamper(folder: Path) -> None:
        (folder / name).unlink()
        (folder / name).mkdir()
    return tamper


def truncated(name: str) -> Tamper:
    def tamper(folder: Path) -> None:
        data = (folder / name).read_bytes()
        (folder / name).write_bytes(data[: len(data) // 2])
    return tamper


def random_bytes(name: str) -> Tamper:
    return write(name, np.random.default_rng(0).bytes(4096))


def weights(change: Callable[[dict[str, torch.Tensor]], object]) -> Tamper:
    """model.pt's tensors changed in place by `change`."""
    def tamper(folder: Path) -> None:
        state = torch.load(folder / "model.pt", weights_only=True)
        change(state)
        torch.save(state, folder / "model.pt")
    return tamper


def saved_object(make: Callable[[dict[str, torch.Tensor]], object]) -> Tamper:
    """model.pt replaced by what `make` makes of its tensors."""
    def tamper(folder: Path) -> None:
        state = torch.load(folder / "model.pt", weights_only=True)
        torch.save(make(state), folder / "model.pt")
    return tamper


def in_member(index: int, tamper: Tamper) -> Tamper:
    """`tamper` applied to an ensemble's member folder."""
    return lambda folder: tamper(folder / "members" / str(index))


class RunsCode:
    """Unpickled, it would run a shell command that creates `RAN` in the folder."""

    def __init__(self, folder: Path) -> None:
        self.command = f"touch {shlex.quote(str(folder / RAN))}"

    def __reduce__(self) -> tuple[Callable[[str], int], tuple[str]]:
        return os.system, (self.command,)


def code_pickle(plain: bool = False) -> Tamper:
    """model.pt as a pickle whose global is os.system: in torch's zip format, or plain."""
    def tamper(folder: Path) -> None:
        hostile = {"head.linear.weight": RunsCode(folder)}
        if plain:
            (folder / "model.pt").write_bytes(pickle.dumps(hostile))
        else:
            torch.save(hostile, folder / "model.pt")
    return tamper


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def deep_list(depth: int) -> Any:
    return json.loads("[" * depth + "1" + "]" * depth)


# -- a network's folder ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def network(tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny model folder for a (2, 32) series task of 3 classes, written by the
    real save path."""
    config = OrcaConfig().with_overrides({
        "model.backbone": "hf", "model.backbone_args": {"name_or_path": str(tiny_bert_dir)},
        "model.embedder_args": {"target_seq_len": 8},
    })
    model_task = make_task()
    model = build_model(model_task, config.model, seed=0).eval()
    return save_model(model, model_task, config, tmp_path_factory.mktemp("network") / "model")


NETWORK_CASES: dict[str, tuple[Tamper, str]] = {
    # meta.json as a file
    "meta.json missing": (remove("meta.json"), "not a saved model folder"),
    "meta.json a named pipe": (named_pipe("meta.json"), "not a regular file"),
    "meta.json a folder": (a_folder("meta.json"), "is a folder"),
    "meta.json not UTF-8": (write("meta.json", b'{"task": "\xff\xfe"}'), "not UTF-8"),
    "meta.json not JSON": (write("meta.json", "{oops"), "bad JSON"),
    "meta.json empty": (write("meta.json", ""), "bad JSON"),
    "meta.json nested too deeply": (write("meta.json", nested(100_000)), "nests too deeply"),
    "meta.json a list": (write("meta.json", "[1, 2]"), "must be a JSON object"),
    # its blocks
    "format_version missing": (drop("format_version"), "format_version must be 1"),
    "format_version 2": (meta(format_version=2), "format_version must be 1"),
    "format_version true": (meta(format_version=True), "format_version must be 1"),
    "task block missing": (drop("task"), "task must be a JSON object"),
    "task block a list": (meta(task=[1]), "task must be a JSON object"),
    "rebuild block missing": (drop("rebuild"), "rebuild must be a JSON object"),
    "rebuild block a list": (meta(rebuild=["hf"]), "rebuild must be a JSON object"),
    "scores missing": (drop("scores"), "scores must be a JSON object"),
    "scores a list": (meta(scores=[1]), "scores must be a JSON object"),
    "notes missing": (drop("notes"), "notes must be a list"),
    "notes not strings": (meta(notes=[{"a": 1}]), "notes must be a list of strings"),
    "adapters of an unknown kind": (meta(adapters={"kind": "dora"}), "adapters must be"),
    "adapters a string": (meta(adapters="lora"), "adapters must be"),
    "adapters of rank 0": (meta(adapters={"kind": "lora", "rank": 0, "alpha": 16, "base": "x"}),
                           "adapters.rank must be a positive whole number"),
    "adapters without base": (meta(adapters={"kind": "lora", "rank": 8, "alpha": 16}),
                              "adapters.base must be a string"),
    # the task block's fields
    "task name missing": (drop_field("name"), "task.name must be a string"),
    "task name a number": (task(name=5), "task.name must be a string"),
    "task type unknown": (task(task_type="clustering"), "task.task_type must be one of"),
    "task type a list": (task(task_type=["classification"]), "task.task_type must be one of"),
    "modality unknown": (task(modality="3d"), "task.modality must be one of"),
    "input_shape missing": (drop_field("input_shape"), "task.input_shape must be a list of 2"),
    "input_shape empty": (task(input_shape=[]), "task.input_shape must be a list of 2"),
    "input_shape a string": (task(input_shape="2x32"), "task.input_shape must be a list"),
    "input_shape fractional": (task(input_shape=[2.5, 32]), "task.input_shape must be a list"),
    "input_shape true": (task(input_shape=[True, 32]), "task.input_shape must be a list"),
    "input_shape zero": (task(input_shape=[0, 32]), "task.input_shape must be a list"),
    "input_shape negative": (task(input_shape=[2, -32]), "task.input_shape must be a list"),
    "input_shape of another rank": (task(input_shape=[2, 32, 1]),
                                    "task.input_shape must be a list of 2"),
    "input_shape huge": (task(input_shape=[2, 10**12]), "at most 4,194,304 values per sample"),
    "input_shape huge in total": (task(input_shape=[4096, 4096]), "at most 4,194,304 values"),
    "input_shape longer than the weights fit": (
        task(input_shape=[2, 64]),
        "model.pt holds embedder.conv.weight of shape (32, 2, 4) (float32), the model built "
        "from meta.json needs (32, 2, 8)"),
    "input_shape with channels the weights lack": (
        edit_json("meta.json", lambda m: m["task"].update(
            input_shape=[3, 32], normalizer={**m["task"]["normalizer"], "x_mean": [[0.0]] * 3,
                                             "x_std": [[1.0]] * 3})),
        "model.pt holds embedder.conv.weight of shape (32, 2, 4)"),
    "num_outputs and output_shape changed": (
        task(num_outputs=5, output_shape=[5], class_names=None),
        "model.pt holds head.linear.weight of shape (3, 32) (float32), the model built from "
        "meta.json needs (5, 32)"),
    "num_outputs changed alone": (task(num_outputs=5), "task.output_shape must be [5]"),
    "num_outputs zero": (task(num_outputs=0), "task.num_outputs must be a whole number"),
    "num_outputs huge": (task(num_outputs=10**9), "task.num_outputs must be a whole number"),
    "num_outputs a string": (task(num_outputs="3"), "task.num_outputs must be a whole number"),
    "output_shape other": (task(output_shape=[4]), "task.output_shape must be [3]"),
    "output_shape negative": (task(output_shape=[-3]), "task.output_shape must be [3]"),
    "output_shape missing": (drop_field("output_shape"), "task.output_shape must be [3]"),
    "class_names too few": (task(class_names=["a", "b"]), "task.class_names must be null or"),
    "class_names not strings": (task(class_names=[1, 2, 3]), "task.class_names must be"),
    "fingerprint missing": (drop_field("fingerprint"), "task.fingerprint must be a string"),
    "data_fingerprint a list": (task(data_fingerprint=[]), "task.data_fingerprint must be"),
    "normalizer missing": (drop_field("normalizer"), "task.normalizer must be a JSON object"),
    "normalizer without x_std": (edit_json("meta.json",
                                           lambda m: m["task"]["normalizer"].pop("x_std")),
                                 "task.normalizer must be a JSON object with"),
    "normalizer null statistics": (normalizer(x_mean=None), "x_mean/x_std must be numbers"),
    "normalizer text": (normalizer(x_mean="abc"), "task.normalizer must hold arrays of numbers"),
    "normalizer ragged": (normalizer(x_std=[[1.0], [1.0, 2.0]]), "must hold arrays of numbers"),
    "normalizer nested deeply": (normalizer(x_mean=deep_list(500)),
                                 "must hold arrays of numbers"),
    "normalizer NaN": (normalizer(x_std=[[float("nan")], [1.0]]),
                       "task.normalizer.x_std must be finite numbers"),
    "normalizer infinite": (normalizer(x_mean=[[1e39], [0.0]]),
                            "task.normalizer.x_mean must be finite numbers"),
    "normalizer zero std": (normalizer(x_std=[[0.0], [1.0]]), "x_std must be positive"),
    "normalizer of other channels": (normalizer(x_mean=[[0.0], [0.0], [0.0]]),
                                     "broadcast against shape (2, 32)"),
    "normalizer per_sample text": (normalizer(per_sample="yes"), "per_sample must be true"),
    "normalizer y_mean alone": (normalizer(y_mean=0.5), "y_mean/y_std must be both null"),
    "table encoding on a series task": (task(table_encoding={"numeric": ["a"], "categorical": {}}),
                                        "task.table_encoding must be null for a 1d task"),
    "table encoding malformed": (task(table_encoding=[1]), "task.table_encoding must be null"),
    # the rebuild block's fields
    "rebuild unknown key": (rebuild(colour="red"), "unknown config key 'model.colour'"),
    "rebuild wrong type": (rebuild(pretrained="no"), "'model.pretrained' must be true or false"),
    "rebuild backbone_args a list": (rebuild(backbone_args=[1]), "must be a mapping"),
    "rebuild unknown backbone": (rebuild(backbone="bert9"), "unknown backbone 'bert9'"),
    "rebuild embedder_args of a wrong type": (rebuild(embedder_args={"target_seq_len": "x"}),
                                              "bad embedder_args"),
    "rebuild unknown embedder_args": (rebuild(embedder_args={"colour": 1}), "embedder_args"),
    "rebuild head_dropout out of range": (rebuild(head_dropout=5.0), "cannot be built"),
    "rebuild another embedder": (rebuild(embedder="patch_mlp"),
                                 "model.pt holds embedder.conv.weight, which the model"),
    # model.pt
    "model.pt missing": (remove("model.pt"), "model.pt does not exist"),
    "model.pt a folder": (a_folder("model.pt"), "is a folder"),
    "model.pt a named pipe": (named_pipe("model.pt"), "not a regular file"),
    "model.pt empty": (write("model.pt", b""), "cannot be loaded as tensors"),
    "model.pt truncated": (truncated("model.pt"), "cannot be loaded as tensors"),
    "model.pt random bytes": (random_bytes("model.pt"), "cannot be loaded as tensors"),
    "model.pt a pickle naming os.system": (code_pickle(), "cannot be loaded as tensors"),
    "model.pt a plain pickle naming os.system": (code_pickle(plain=True),
                                                 "cannot be loaded as tensors"),
    "model.pt of lists": (saved_object(lambda s: {"head.linear.weight": [1, 2]}),
                          "does not hold a mapping of names to tensors"),
    "model.pt a list of tensors": (saved_object(lambda s: list(s.values())),
                                   "does not hold a mapping of names to tensors"),
    "model.pt with number keys": (saved_object(lambda s: {1: torch.zeros(1)}),
                                  "does not hold a mapping of names to tensors"),
    "model.pt with an extra tensor": (weights(lambda s: s.update(extra=torch.zeros(1))),
                                      "model.pt holds extra, which the model built from"),
    "model.pt missing a tensor": (weights(lambda s: s.pop("head.linear.bias")),
                                  "lacks 1 tensors of the model built from meta.json, e.g. "
                                  "head.linear.bias"),
    "model.pt a tensor of another shape": (
        weights(lambda s: s.update({"head.linear.weight": torch.zeros(4, 32)})),
        "head.linear.weight of shape (4, 32) (float32), the model built from meta.json needs "
        "(3, 32) (float32)"),
    "model.pt a tensor of another type": (
        weights(lambda s: s.update({"head.linear.weight": s["head.linear.weight"].double()})),
        "head.linear.weight of shape (3, 32) (float64)"),
    "model.pt a complex tensor": (
        weights(lambda s: s.update({"head.linear.bias": torch.zeros(3, dtype=torch.complex64)})),
        "(complex64)"),
    # the other files
    "config.yaml a named pipe": (named_pipe("config.yaml"), "not a regular file"),
    "config.yaml not UTF-8": (write("config.yaml", b"seed: \xff\n"), "not UTF-8"),
    "config.yaml not YAML": (write("config.yaml", "model: [\n"), "not valid YAML"),
    "config.yaml a list": (write("config.yaml", "- 1\n"), "must be a mapping"),
    "config.yaml unknown key": (write("config.yaml", "colour: red\n"), "unknown config key"),
    "backbone config a named pipe": (named_pipe("backbone/config.json"), "not a regular file"),
    "a named pipe elsewhere in the folder": (named_pipe("backbone/notes.txt"),
                                             "not a regular file"),
}


def test_the_untampered_folder_loads(network: Path, tmp_path: Path) -> None:
    """The cases below tamper with a folder that loads."""
    folder = shutil.copytree(network, tmp_path / "model")
    X = make_task().test.X
    np.testing.assert_array_equal(load_model(folder).predictions(X),
                                  load_model(network).predictions(X))


@pytest.mark.parametrize("case", list(NETWORK_CASES))
def test_a_tampered_model_folder_is_refused_in_one_line(case: str, network: Path,
                                                        tmp_path: Path) -> None:
    refused_once_tampered(network, *NETWORK_CASES[case], tmp_path)


def refused_once_tampered(original: Path, tamper: Tamper, words: str, tmp_path: Path,
                          loads_first: bool = False) -> None:
    """A copy of `original` (loaded first, to show it was fine, when `loads_first`) is
    refused in one line holding `words` once `tamper` changed it."""
    folder = shutil.copytree(original, tmp_path / original.name)
    if loads_first:
        load_model(folder)
    tamper(folder)
    assert_refused(folder, words)


# -- a baseline's folder -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1-NN saved for the same task as `network`: baseline.npz holds train_X (48, 2, 32),
    train_y (48,), val_X (24, 2, 32), val_y (24,) and val_predictions (24, 3)."""
    model_task = make_task()
    return save_baseline(fit_baseline("one_nn", model_task, 0), model_task, 0,
                         tmp_path_factory.mktemp("baseline") / "model")


def arrays(change: Callable[[dict[str, np.ndarray]], object]) -> Tamper:
    def tamper(folder: Path) -> None:
        with np.load(folder / "baseline.npz", allow_pickle=False) as data:
            found = dict(data)
        change(found)
        np.savez(folder / "baseline.npz", **found)
    return tamper


def replace(key: str, make: Callable[[np.ndarray], np.ndarray]) -> Tamper:
    return arrays(lambda a: a.update({key: make(a[key])}))


def with_value(key: str, value: float) -> Tamper:
    def make(array: np.ndarray) -> np.ndarray:
        array = array.astype(np.float64)
        array.flat[0] = value
        return array
    return replace(key, make)


def npy_in_place(folder: Path) -> None:
    """baseline.npz replaced by a lone array in .npy format."""
    with (folder / "baseline.npz").open("wb") as file:
        np.save(file, np.zeros(3))


def baseline_block(**fields: object) -> Tamper:
    return edit_json("meta.json", lambda m: m["baseline"].update(fields))


BASELINE_CASES: dict[str, tuple[Tamper, str]] = {
    # meta.json
    "meta.json nested too deeply": (write("meta.json", nested(100_000)), "nests too deeply"),
    "meta.json a named pipe": (named_pipe("meta.json"), "not a regular file"),
    "baseline block a number": (meta(baseline=5), "baseline must be a JSON object"),
    "baseline name unknown": (baseline_block(name="nope"), "not registered here"),
    "baseline seed text": (baseline_block(seed="x"), "baseline.seed must be a whole number"),
    "baseline seed negative": (baseline_block(seed=-1), "baseline.seed must be a whole number"),
    "baseline versions a list": (baseline_block(versions=[]), "baseline.versions must be"),
    "task block broken": (task(num_outputs="3"), "task.num_outputs must be a whole number"),
    "task block missing": (drop("task"), "task must be a JSON object"),
    "input_shape the data do not have": (task(input_shape=[2, 16]),
                                         "train_X must be finite numbers of shape (48, 2, 16)"),
    "num_outputs the predictions do not have": (
        task(num_outputs=2, output_shape=[2]),
        "val_predictions must be finite numbers of shape (24, 2)"),
    "task type the labels do not fit": (task(task_type="regression"),
                                        "train_y must be finite numbers of shape (48, 3)"),
    # baseline.npz as a file
    "baseline.npz missing": (remove("baseline.npz"), "baseline.npz does not exist"),
    "baseline.npz a named pipe": (named_pipe("baseline.npz"), "not a regular file"),
    "baseline.npz empty": (write("baseline.npz", b""), "is not a saved baseline's data"),
    "baseline.npz random bytes": (random_bytes("baseline.npz"), "is not a saved baseline's data"),
    "baseline.npz truncated": (truncated("baseline.npz"), "is not a saved baseline's data"),
    "baseline.npz one .npy array": (npy_in_place, "not an .npz archive"),
    # its arrays
    "an array missing": (arrays(lambda a: a.pop("val_y")), "is not a saved baseline's data"),
    "an array of text": (replace("train_X", lambda x: x.astype(str)), "not numbers"),
    "an array of complex numbers": (replace("val_X", lambda x: x.astype(np.complex64)),
                                    "complex numbers"),
    "an array of objects": (replace("val_y", lambda y: np.array([{"a": 1}] * len(y))),
                            "is not a saved baseline's data"),
    "rows of another shape": (replace("train_X", lambda x: x[:, :, :16]),
                              "train_X must be finite numbers of shape (48, 2, 32)"),
    "no rows": (arrays(lambda a: a.update(train_X=a["train_X"][:0], train_y=a["train_y"][:0])),
                "train_X must be finite numbers of shape (0, 2, 32)"),
    "NaN in the inputs": (with_value("train_X", float("nan")), "train_X must be finite"),
    "inputs beyond float32": (with_value("val_X", 1e300), "val_X must be finite"),
    "fewer labels than rows": (replace("train_y", lambda y: y[:-1]),
                               "train_y must be finite numbers of shape (48,)"),
    "a label out of range": (with_value("train_y", 7), "train_y must be class indices from 0 to 2"),
    "a negative label": (with_value("val_y", -1), "val_y must be class indices"),
    "a fractional label": (with_value("train_y", 0.5), "train_y must be class indices"),
    "predictions of another shape": (replace("val_predictions", lambda p: p[:, :2]),
                                     "val_predictions must be finite numbers of shape (24, 3)"),
    "NaN in the predictions": (with_value("val_predictions", float("nan")),
                               "val_predictions must be finite"),
    "predictions that the refit does not make": (
        replace("val_predictions", lambda p: np.roll(p, 1, axis=1)),
        "predicts 24 of its 24 validation samples differently"),
}


@pytest.mark.parametrize("case", list(BASELINE_CASES))
def test_a_tampered_baseline_folder_is_refused_in_one_line(case: str, baseline: Path,
                                                           tmp_path: Path) -> None:
    refused_once_tampered(baseline, *BASELINE_CASES[case], tmp_path, loads_first=True)


def test_a_refit_that_fails_on_the_saved_data_is_bad_input(
        baseline: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fails(task: object, seed: int) -> None:
        raise ValueError("Found array with 0 feature(s)\nmore detail")

    monkeypatch.setattr(BASELINES, "get", lambda name: fails)
    assert_refused(baseline, "cannot be refitted on its saved data (ValueError: Found array "
                             "with 0 feature(s)): save the model again")


# -- an ensemble's folder ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def ensemble(network: Path, baseline: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The network (members/0) and the baseline (members/1) of one task, weighted 2:1."""
    return save_ensemble([network, baseline], tmp_path_factory.mktemp("ensemble") / "ens",
                         weights=[2, 1])


def record(**fields: object) -> Tamper:
    return edit_json("ensemble.json", lambda r: r.update(fields))


def link_loop(folder: Path) -> None:
    (folder / "loop").symlink_to("loop")
    record(members=["members/0", "loop"])(folder)


ENSEMBLE_CASES: dict[str, tuple[Tamper, str]] = {
    "ensemble.json a named pipe": (named_pipe("ensemble.json"), "not a regular file"),
    "ensemble.json a folder": (a_folder("ensemble.json"), "is a folder"),
    "ensemble.json not UTF-8": (write("ensemble.json", b'{"\xff": 1}'), "not UTF-8"),
    "ensemble.json nested too deeply": (write("ensemble.json", nested(100_000)),
                                        "nests too deeply"),
    "ensemble.json not JSON": (write("ensemble.json", "{oops"), "not a valid ensemble file"),
    "task block missing": (record(task=None), "no task block"),
    "task input_shape broken": (edit_json("ensemble.json",
                                          lambda r: r["task"].update(input_shape=[0, 32])),
                                "ensemble.json: task.input_shape must be"),
    "task normalizer broken": (edit_json("ensemble.json",
                                         lambda r: r["task"]["normalizer"].update(x_std=[[0.0]])),
                               "ensemble.json: task.normalizer.x_std must be positive"),
    "task of other shapes": (edit_json("ensemble.json",
                                       lambda r: r["task"].update(input_shape=[2, 64])),
                             "ensemble members were made for different tasks"),
    "weights nested": (record(weights=deep_list(50)), "ensemble weights"),
    "members not paths": (record(members=[["members/0"]]), "members must be a non-empty list"),
    "a member a link loop": (link_loop, "lies outside the ensemble folder"),
    "a member's meta.json a named pipe": (named_pipe("members/0/meta.json"), "not a regular file"),
    "a member's model.pt truncated": (truncated("members/0/model.pt"),
                                      "cannot be loaded as tensors"),
    "a member's model.pt naming os.system": (in_member(0, code_pickle()),
                                             "cannot be loaded as tensors"),
    "a member's task broken": (edit_json("members/0/meta.json",
                                         lambda m: m["task"].update(num_outputs=None)),
                               "members/0/meta.json: task.num_outputs must be"),
    "a member's array of text": (in_member(1, replace("val_X", lambda x: x.astype(str))),
                                 "not numbers"),
}


@pytest.mark.parametrize("case", list(ENSEMBLE_CASES))
def test_a_tampered_ensemble_folder_is_refused_in_one_line(case: str, ensemble: Path,
                                                           tmp_path: Path) -> None:
    refused_once_tampered(ensemble, *ENSEMBLE_CASES[case], tmp_path, loads_first=True)


@pytest.mark.parametrize("device", ["cuda", "cuda:7", "nonsense", "cpu:x"])
def test_an_absent_device_is_refused_before_loading(device: str, network: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if (device == "cuda" and gpus > 0) or (device == "cuda:7" and gpus > 7):
        pytest.skip("this machine has that GPU")
    loads: list[object] = []
    monkeypatch.setattr(torch, "load", lambda *args, **kwargs: loads.append(args))
    with pytest.raises(OrcaInputError, match="--device") as info:
        load_model(network, device=device)
    assert "\n" not in str(info.value) and loads == []


# -- any value in any field: loads, or one line ------------------------------------------------

#: JSON values of every kind, with shapes and numbers near the real ones among them.
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats() | st.text(max_size=8)
    | st.lists(st.integers(-2, 70), max_size=4),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                 max_size=4),
    max_leaves=12,
)
META_FIELDS = [
    "format_version", "task", "rebuild", "adapters", "scores", "notes", "baseline",
    *(f"task.{key}" for key in ("name", "task_type", "modality", "input_shape", "output_shape",
                                "num_outputs", "class_names", "normalizer", "fingerprint",
                                "data_fingerprint", "table_encoding")),
    *(f"task.normalizer.{key}" for key in ("x_mean", "x_std", "per_sample", "y_mean", "y_std")),
    *(f"rebuild.{key}" for key in ("backbone", "backbone_args", "pretrained", "embedder",
                                   "embedder_args", "head", "head_dropout", "colour")),
    "rebuild.embedder_args.target_seq_len",
]


def set_field(data: dict[str, Any], dotted: str, value: object) -> None:
    *parents, leaf = dotted.split(".")
    for key in parents:
        data = data[key]
    data[leaf] = value


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(META_FIELDS), JSON_VALUES)
def test_any_value_in_any_meta_field_loads_or_is_one_line(network: Path, field: str,
                                                          value: object) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = shutil.copytree(network, Path(tmp) / "model")
        data = json.loads((folder / "meta.json").read_text())
        set_field(data, field, value)
        (folder / "meta.json").write_text(json.dumps(data))
        try:
            with within(60):
                load_model(folder)
            event("loaded")
        except OrcaInputError as exc:
            assert "\n" not in str(exc) and str(exc).strip()
            event("refused")
