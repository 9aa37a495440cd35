"""The bad-input contract of the three commands, as a user meets it: every malformed input
(files, labels, budgets, workers, storage URLs, search spaces, study names, model folders,
--set values, prediction inputs) exits with code 2, prints exactly one line on stderr that
never shows a password, and writes nothing to the working folder (where the default
`studies/` and `models/` would appear).

The commands run in-process through their console entry points (fast); a few run again as
real subprocesses of the installed console scripts, end to end.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import make_task

from orca_automl.cli import predict_main, search_main, train_main

PASSWORD = "s3cret-pw"
MAINS: dict[str, Callable[[list[str]], int]] = {
    "orca-search": search_main, "orca-train": train_main, "orca-predict": predict_main,
}
#: An orca-search command line that would be valid; each case replaces one part of it.
SEARCH = ["--task", "gunpoint", "--budget", "1cpu-minutes"]
MODEL = "model"  # the saved model folder each predict case works on, in the working folder


@dataclass(frozen=True)
class Case:
    """One malformed input: the command, its arguments, the files it needs in the working
    folder (written before the snapshot), and words the error line must hold."""

    command: str
    argv: tuple[str, ...]
    words: str
    files: Callable[[Path, Path], None] | None = None


def series(n: int = 40, length: int = 16) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(n, 1, length)).astype(np.float32)


def npz(name: str, **arrays: np.ndarray) -> Callable[[Path, Path], None]:
    def write(work: Path, model: Path) -> None:
        np.savez(work / name, **arrays)  # type: ignore[arg-type]
    return write


def text(name: str, content: str) -> Callable[[Path, Path], None]:
    def write(work: Path, model: Path) -> None:
        (work / name).write_text(content)
    return write


def folder(name: str) -> Callable[[Path, Path], None]:
    def write(work: Path, model: Path) -> None:
        (work / name).mkdir()
    return write


def model_folder(change: Callable[[Path], None] | None = None) -> Callable[[Path, Path], None]:
    """A copy of the saved model in the working folder, changed by `change`."""
    def write(work: Path, model: Path) -> None:
        shutil.copytree(model, work / MODEL)
        if change is not None:
            change(work / MODEL)
    return write


def both(*writers: Callable[[Path, Path], None]) -> Callable[[Path, Path], None]:
    def write(work: Path, model: Path) -> None:
        for w in writers:
            w(work, model)
    return write


def with_nan() -> np.ndarray:
    X = series()
    X[3, 0, 5] = np.nan
    return X


def space(**changes: object) -> Callable[[Path, Path], None]:
    """A search space file: the shipped cpu-small with `changes` to its params (keyword
    `model__backbone` for the key model.backbone)."""
    def write(work: Path, model: Path) -> None:
        data = yaml.safe_load((Path(__file__).parents[1] / "search_spaces" / "cpu-small.yaml")
                              .read_text())
        for key, value in changes.items():
            data["params"][key.replace("__", ".")] = value
        (work / "space.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return write


def remote_code(where: str) -> Callable[[Path], None]:
    """An `auto_map` in the config.json at `where` (relative to the model folder), pointing
    at a module that would write a marker file if it ever ran."""
    def change(model: Path) -> None:
        plant_remote_code(model / where)
    return change


def plant_remote_code(target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    config_path = target / "config.json"
    config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    config["model_type"] = "evil"
    config["auto_map"] = {"AutoConfig": "evil.EvilConfig", "AutoModel": "evil.EvilModel"}
    config_path.write_text(json.dumps(config))
    marker = target / "EXECUTED"
    (target / "evil.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n"
        "from transformers import BertConfig, BertModel\n"
        "class EvilConfig(BertConfig):\n    model_type = 'evil'\n"
        "class EvilModel(BertModel):\n    config_class = EvilConfig\n"
    )


def fifo(name: str) -> Callable[[Path, Path], None]:
    """A named pipe no one writes to: a reader that opens it blocks forever."""
    def write(work: Path, model: Path) -> None:
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(work / name)
    return write


def raw(name: str, content: bytes) -> Callable[[Path, Path], None]:
    def write(work: Path, model: Path) -> None:
        (work / name).write_bytes(content)
    return write


def foreign_sqlite(name: str) -> Callable[[Path, Path], None]:
    """Another application's SQLite database."""
    def write(work: Path, model: Path) -> None:
        import sqlite3

        connection = sqlite3.connect(work / name)
        connection.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
        connection.execute("INSERT INTO invoices (total) VALUES (12.5)")
        connection.commit()
        connection.close()
    return write


#: A few lines of YAML that expand to 9**9 (about 387 million) nodes.
ALIAS_BOMB = "".join(
    [f"a0: &a0 [{', '.join(['lol'] * 9)}]\n"]
    + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 10)])


def remove(name: str) -> Callable[[Path], None]:
    def change(model: Path) -> None:
        (model / name).unlink()
    return change


CASES: dict[str, Case] = {
    # data files
    "task file missing": Case("orca-search", ("--task", "missing.npz", "--budget", "1cpu-minutes"),
                              "missing.npz: no such file"),
    "task file not npz": Case("orca-search", ("--task", "fake.npz", "--budget", "1cpu-minutes"),
                              "cannot read it as .npz", text("fake.npz", "not a zip archive")),
    "NaN in X": Case("orca-search", ("--task", "nan.npz", "--budget", "1cpu-minutes"), "NaN",
                     npz("nan.npz", X_train=with_nan(), y_train=np.arange(40) % 2)),
    "X and y lengths differ": Case("orca-train", ("--task", "short.npz"), "30",
                                   npz("short.npz", X_train=series(), y_train=np.arange(30) % 2)),
    "X of wrong dims": Case("orca-search", ("--task", "flat.npz", "--budget", "1cpu-minutes"),
                            "X_train has shape (40,)",
                            npz("flat.npz", X_train=np.zeros(40, np.float32),
                                y_train=np.arange(40) % 2)),
    "task folder without data": Case("orca-train", ("--task", "empty/"), "neither data.npz",
                                     folder("empty")),
    "task path too long": Case("orca-search", ("--task", "x" * 5000, "--budget", "1cpu-minutes"),
                               "too long for the file system"),
    "space name too long": Case("orca-search", (*SEARCH, "--search-space", "s" * 5000),
                                "too long for the file system"),
    "task file is a named pipe": Case("orca-search", ("--task", "pipe.npz", "--budget", "1cpu-minutes"),
                                      "not a regular file", fifo("pipe.npz")),
    "task folder's data.npz is a named pipe": Case(
        "orca-train", ("--task", "piped/"), "not a regular file", fifo("piped/data.npz")),
    "task csv is a named pipe": Case("orca-train", ("--task", "pipe.csv"), "not a regular file",
                                     fifo("pipe.csv")),
    "complex X": Case("orca-search", ("--task", "complex.npz", "--budget", "1cpu-minutes"),
                      "complex numbers",
                      npz("complex.npz", X_train=series().astype(np.complex64) * 1j,
                          y_train=np.arange(40) % 2)),
    "text X": Case("orca-train", ("--task", "text.npz"), "not numbers",
                   npz("text.npz", X_train=np.full((40, 1, 16), "a"), y_train=np.arange(40) % 2)),
    "complex y": Case("orca-train", ("--task", "cy.npz"), "y_train holds complex",
                      npz("cy.npz", X_train=series(), y_train=np.arange(40) + 0j)),
    # labels
    "non-integer class labels": Case(
        "orca-train", ("--task", "frac.npz", "--task-type", "classification"),
        "does not fit task type 'classification'",
        npz("frac.npz", X_train=series(), y_train=np.arange(40) % 3 + 0.5)),
    "non-integer validation labels": Case(
        "orca-search", ("--task", "frac_val.npz", "--budget", "1cpu-minutes"), "not whole numbers",
        npz("frac_val.npz", X_train=series(), y_train=np.arange(40) % 2,
            X_val=series(10), y_val=np.arange(10) % 2 + 0.5)),
    "a single class": Case("orca-search", ("--task", "one.npz", "--budget", "1cpu-minutes"),
                           "only 1 class",
                           npz("one.npz", X_train=series(), y_train=np.zeros(40, np.int64))),
    # budgets
    "budget malformed": Case("orca-search", ("--task", "gunpoint", "--budget", "lots"),
                             "budget 'lots' is not understood"),
    "budget zero": Case("orca-search", ("--task", "gunpoint", "--budget", "0s"),
                        "must be more than zero"),
    "budget negative": Case("orca-search", ("--task", "gunpoint", "--budget=-1h"),
                            "budget '-1h' is not understood"),
    "budget unknown unit": Case("orca-search", ("--task", "gunpoint", "--budget", "3fortnights"),
                                "not understood"),
    "gpu budget without a GPU": Case("orca-search", ("--task", "gunpoint", "--budget", "1gpu-hours"),
                                     "no GPU is visible"),
    # workers
    "workers 0": Case("orca-search", (*SEARCH, "--workers", "0"), "--workers must be 1 or more"),
    "workers -1": Case("orca-search", (*SEARCH, "--workers", "-1"), "--workers must be 1 or more"),
    "workers above the CPUs": Case("orca-search", (*SEARCH, "--workers", "100000"), "CPUs"),
    "workers not a number": Case("orca-search", (*SEARCH, "--workers", "two"),
                                 "invalid int value"),
    # seeds and numbers
    "seed negative": Case("orca-search", (*SEARCH, "--seed", "-1"), "--seed must be a whole number"),
    "seed beyond 2**32": Case("orca-search", (*SEARCH, "--seed", str(2**32)), "from 0 to 4294967295"),
    "train seed beyond 2**32": Case("orca-train", ("--task", "gunpoint", "--seed", str(2**40)),
                                    "--seed must be a whole number"),
    "train seed set negative": Case("orca-train", ("--task", "gunpoint", "--set", "seed=-5"),
                                    "seed must be a whole number"),
    "gpus-per-trial nan": Case("orca-search", (*SEARCH, "--gpus-per-trial", "nan"),
                               "--gpus-per-trial must be a finite number"),
    "gpus-per-trial inf": Case("orca-search", (*SEARCH, "--gpus-per-trial", "inf"),
                               "--gpus-per-trial must be a finite number"),
    # devices
    "train device absent": Case("orca-train", ("--task", "gunpoint", "--device", "cuda:3"),
                                "--device cuda:3"),
    "train device unknown": Case("orca-train", ("--task", "gunpoint", "--device", "gpu0"),
                                 "is not a device name"),
    # plugins
    "plugin missing": Case("orca-search", (*SEARCH, "--plugin", "no_such_orca_plugin"),
                           "--plugin no_such_orca_plugin: importing it failed"),
    "plugin empty": Case("orca-search", (*SEARCH, "--plugin", ""), "is not a module name"),
    "plugin relative": Case("orca-train", ("--task", "gunpoint", "--plugin", ".parts"),
                            "is not a module name"),
    "plugin a path": Case("orca-predict", ("--model", MODEL, "--input", "x.npy", "--plugin",
                                           "my_lab/parts.py"), "is not a module name"),
    # storage URLs
    "storage another application's SQLite file": Case(
        "orca-search", (*SEARCH, "--storage", "sqlite:///app.db"), "another application's database",
        foreign_sqlite("app.db")),
    "storage sqlite URL with a user": Case(
        "orca-search", (*SEARCH, "--storage", f"sqlite://u:{PASSWORD}@/x.db"), "names a file only"),
    "storage password with a slash": Case(
        "orca-search", (*SEARCH, "--storage", f"postgresql://u:a/{PASSWORD}@127.0.0.1:1/db"),
        "unreachable"),
    "storage password with an @": Case(
        "orca-search", (*SEARCH, "--storage", f"postgresql://u:{PASSWORD}@x@127.0.0.1:1/db"),
        "unreachable"),
    "storage password as a query parameter": Case(
        "orca-search", (*SEARCH, "--storage", f"postgresql://u@127.0.0.1:1/db?password={PASSWORD}"),
        "unreachable"),
    "storage URL as a stray value": Case(
        "orca-search", (*SEARCH, f"postgresql://u:{PASSWORD}@127.0.0.1/db"), "unrecognized arguments"),
    "storage malformed": Case("orca-search", (*SEARCH, "--storage", "not a url"), "malformed"),
    "storage unknown driver": Case("orca-search", (*SEARCH, "--storage", f"foo://u:{PASSWORD}@h/x"),
                                   "unknown database kind"),
    "storage sqlite path is a folder": Case("orca-search", (*SEARCH, "--storage", "sqlite:///adir"),
                                            "is not a file", folder("adir")),
    "storage sqlite URL with a password": Case(
        "orca-search", (*SEARCH, "--storage", f"sqlite://u:{PASSWORD}@/adir"), "names a file only",
        folder("adir")),
    "storage unreachable": Case(
        "orca-search", (*SEARCH, "--storage", f"postgresql://u:{PASSWORD}@127.0.0.1:1/db"),
        "unreachable"),
    "storage port not a number": Case(
        "orca-search", (*SEARCH, "--storage", f"postgresql://u:{PASSWORD}@127.0.0.1:port/db"),
        "malformed"),
    "storage flag misspelt": Case(
        "orca-search", (*SEARCH, "--storage-url", f"postgresql://u:{PASSWORD}@127.0.0.1/db"),
        "unrecognized arguments"),
    # search spaces
    "space file missing": Case("orca-search", (*SEARCH, "--search-space", "nope.yaml"),
                               "does not exist"),
    "space invalid YAML": Case("orca-search", (*SEARCH, "--search-space", "space.yaml"),
                               "not valid YAML", text("space.yaml", "params: [unclosed\n")),
    "space not UTF-8": Case("orca-search", (*SEARCH, "--search-space", "space.yaml"),
                            "is not UTF-8 text", raw("space.yaml", b"params:\n  a: \xff\n")),
    "space alias bomb": Case("orca-search", (*SEARCH, "--search-space", "space.yaml"),
                             "more than 100,000 nodes", text("space.yaml", ALIAS_BOMB)),
    "space a named pipe": Case("orca-search", (*SEARCH, "--search-space", "space.yaml"),
                               "not a regular file", fifo("space.yaml")),
    "space a folder": Case("orca-search", (*SEARCH, "--search-space", "sp.yaml"), "is a folder",
                           folder("sp.yaml")),
    "space unknown key": Case("orca-search", (*SEARCH, "--search-space", "space.yaml"),
                              "refine.lrate", space(refine__lrate={"float": [1e-5, 1e-3]})),
    "space unknown registry name": Case(
        "orca-search", (*SEARCH, "--search-space", "space.yaml"), "bert9",
        space(model__backbone={"choices": ["minilm", "bert9"]})),
    # study names
    "study ../x": Case("orca-search", (*SEARCH, "--study", "../x"), "plain name"),
    "study a/b": Case("orca-search", (*SEARCH, "--study", "a/b"), "plain name"),
    "study absolute": Case("orca-search", (*SEARCH, "--study", "/tmp/x"), "plain name"),
    "study empty": Case("orca-search", (*SEARCH, "--study", ""), "plain name"),
    "study hidden": Case("orca-search", (*SEARCH, "--study", ".x"), "plain name"),
    "study with NUL": Case("orca-search", (*SEARCH, "--study", "a\x00b"), "plain name"),
    "study backslash": Case("orca-search", (*SEARCH, "--study", "a\\b"), "plain name"),
    "task name not plain": Case("orca-search", ("--task", "..npz", "--budget", "1cpu-minutes"),
                                "give --study NAME",
                                npz("..npz", X_train=series(), y_train=np.arange(40) % 2)),
    # --set values
    "set unknown key": Case("orca-train", ("--task", "gunpoint", "--set", "refine.stepz=3"),
                            "unknown config key"),
    "set bad type": Case("orca-train", ("--task", "gunpoint", "--set", "refine.lr=fast"),
                         "refine.lr"),
    "set without value": Case("orca-train", ("--task", "gunpoint", "--set", "refine.lr"),
                              "KEY=VALUE"),
    "config alias bomb": Case("orca-train", ("--task", "gunpoint", "--config", "bomb.yaml"),
                              "more than 100,000 nodes", text("bomb.yaml", ALIAS_BOMB)),
    "config not UTF-8": Case("orca-train", ("--task", "gunpoint", "--config", "c.yaml"),
                             "is not UTF-8", raw("c.yaml", b"refine:\n  lr: \xe9\n")),
    "config a named pipe": Case("orca-train", ("--task", "gunpoint", "--config", "c.yaml"),
                                "not a regular file", fifo("c.yaml")),
    "set value nests too deeply": Case("orca-train", ("--task", "gunpoint", "--set",
                                                      "refine.lr=" + "[" * 3000),
                                       "nests too deeply"),
    "train output under a file": Case("orca-train", ("--task", "gunpoint", "--output", "f.txt/m"),
                                      "is not a writable folder", text("f.txt", "mine")),
    "train output a file": Case("orca-train", ("--task", "gunpoint", "--output", "f.txt"),
                                "is not a model folder", text("f.txt", "mine")),
    "backbone folder holding a named pipe": Case(
        "orca-train", ("--task", "gunpoint", "--set", "model.backbone=hf",
                       "--set", "model.backbone_args={name_or_path: piped-bert}"),
        "not a regular file", lambda work, model: (shutil.copytree(model / "backbone", work / "piped-bert"),
                                                   os.mkfifo(work / "piped-bert" / "vocab.txt"))),
    "config file missing": Case("orca-train", ("--task", "gunpoint", "--config", "nope.yaml"),
                                "does not exist"),
    # model folders
    "model folder missing": Case("orca-predict", ("--model", "nowhere", "--input", "x.npy"),
                                 "not a saved model folder"),
    "model without config.yaml": Case("orca-predict", ("--model", MODEL, "--input", "x.npy"),
                                      "config.yaml", model_folder(remove("config.yaml"))),
    "model without backbone config": Case(
        "orca-predict", ("--model", MODEL, "--input", "x.npy"), "backbone",
        model_folder(remove("backbone/config.json"))),
    "model with auto_map": Case("orca-predict", ("--model", MODEL, "--input", "x.npy"),
                                "custom code", model_folder(remote_code("backbone"))),
    "model with auto_map at its root": Case("orca-predict", ("--model", MODEL, "--input", "x.npy"),
                                            "custom code", model_folder(remote_code("."))),
    "backbone folder with auto_map": Case(
        "orca-train", ("--task", "gunpoint", "--set", "model.backbone=hf",
                       "--set", "model.backbone_args={name_or_path: evil-bert}"),
        "custom code", lambda work, model: (shutil.copytree(model / "backbone", work / "evil-bert"),
                                            plant_remote_code(work / "evil-bert"))),
    # prediction inputs
    "predict input missing": Case("orca-predict", ("--model", MODEL, "--input", "x.npy"),
                                  "does not exist", model_folder()),
    "predict input shape mismatch": Case(
        "orca-predict", ("--model", MODEL, "--input", "x.npy"), "per-sample shape",
        both(model_folder(), lambda work, model: np.save(work / "x.npy", np.zeros((3, 2, 5))))),
    "predict input with NaN": Case(
        "orca-predict", ("--model", MODEL, "--input", "x.npy"), "NaN",
        both(model_folder(), lambda work, model: np.save(
            work / "x.npy", np.full((3, *make_task().input_shape), np.nan, np.float32)))),
    "predict input pickled": Case(
        "orca-predict", ("--model", MODEL, "--input", "x.npy"), "cannot read",
        both(model_folder(), lambda work, model: np.save(
            work / "x.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True))),
    "predict output unknown kind": Case(
        "orca-predict", ("--model", MODEL, "--input", "x.npy", "--output", "p.txt"), "--output",
        both(model_folder(), lambda work, model: np.save(
            work / "x.npy", make_task().test.X[:3]))),
}


@pytest.fixture(scope="session")
def saved_model(tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny model folder written by the real save path (enough to be refused)."""
    from orca_automl.config import OrcaConfig
    from orca_automl.cycle import build_model, save_model

    task = make_task()
    config = OrcaConfig().with_overrides({
        "model.backbone": "hf", "model.backbone_args": {"name_or_path": str(tiny_bert_dir)},
        "model.embedder_args": {"target_seq_len": 8},
    })
    model = build_model(task, config.model, seed=0).eval()
    return save_model(model, task, config, tmp_path_factory.mktemp("saved") / "model")


def snapshot(root: Path) -> dict[str, tuple[bool, int, int]]:
    """Every path under `root`, folders included: kind, size and modification time."""
    found = {}
    for path in root.rglob("*"):
        stat = path.lstat()
        found[str(path.relative_to(root))] = (path.is_dir(), stat.st_size, stat.st_mtime_ns)
    return found


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The working folder a command runs in (nothing of it may change)."""
    folder = tmp_path / "work"
    folder.mkdir()
    monkeypatch.chdir(folder)
    yield folder


def assert_refused(code: int | str | None, out: str, err: str, words: str) -> None:
    """Exit 2, one non-empty line on stderr holding `words`, no password, no prompt (stdout
    holds at most what orca-train prints of the task before the refusal)."""
    lines = err.splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].strip() and err.endswith("\n"), err
    assert words in lines[0], lines[0]
    assert PASSWORD not in err and PASSWORD not in out
    assert "[y/N]" not in out + err


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    name: str, work: Path, saved_model: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    case = CASES[name]
    if case.files is not None:
        case.files(work, saved_model)
    before = snapshot(work)
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n" * 5))  # yes to any prompt to run code
    capsys.readouterr()
    try:
        code: int | str | None = MAINS[case.command](list(case.argv))
    except SystemExit as exc:  # argparse usage errors
        code = exc.code
    out, err = capsys.readouterr()
    assert_refused(code, out, err, case.words)
    assert snapshot(work) == before


END_TO_END = ["workers 0", "storage unreachable", "storage flag misspelt", "study ../x",
              "NaN in X", "model with auto_map", "set unknown key", "task file is a named pipe",
              "space alias bomb", "storage password with an @", "plugin missing"]


@pytest.mark.parametrize("name", END_TO_END)
def test_bad_input_end_to_end(name: str, work: Path, saved_model: Path) -> None:
    """The installed console scripts, as a shell runs them."""
    case = CASES[name]
    if case.files is not None:
        case.files(work, saved_model)
    before = snapshot(work)
    script = Path(sys.executable).parent / case.command
    done = subprocess.run([str(script), *case.argv], input="y\n" * 5, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert_refused(done.returncode, done.stdout, done.stderr, case.words)
    assert snapshot(work) == before
