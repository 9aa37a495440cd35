"""orca-predict's inputs, and tables predicted from their raw rows.

A model trained on a table with a categorical column predicts the raw rows of that table
(target column included) through the column encoding saved with it, by the command and by
the Python API, for networks, baselines and ensembles alike. Bad inputs (a device this
machine lacks, an --output that cannot be written, strings or pipes given as inputs) exit
with code 2 and one line, checked before anything is predicted."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import make_task

from orca_automl.baselines import fit_baseline, save_baseline
from orca_automl.cli import predict_main, train_main
from orca_automl.cycle import load_model, save_ensemble
from orca_automl.errors import OrcaInputError
from orca_automl.tasks import load_task

#: The encoding orca-train fits on `people`: numeric columns first, then one-hot cities.
ENCODING = {"numeric": ["age", "size"], "categorical": {"city": ["Lima", "Oslo", "Rome"]}}
KINDS = ("network", "baseline", "ensemble")


def people(n: int = 80) -> pd.DataFrame:
    """A table with a categorical column between numeric ones, and a text target."""
    rng = np.random.default_rng(0)
    city = rng.choice(["Lima", "Oslo", "Rome"], n)
    size = rng.normal(size=n).round(3)
    target = np.where((city == "Oslo") | (size > 0.5), "yes", "no")
    return pd.DataFrame({"age": rng.integers(18, 80, n), "city": city, "size": size,
                         "target": target})


def encoded(df: pd.DataFrame) -> np.ndarray:
    """`people` rows encoded by hand as `ENCODING` says (an unseen city: all zeros)."""
    cities = [(df["city"] == c).to_numpy() for c in ENCODING["categorical"]["city"]]
    return np.column_stack([df["age"], df["size"], *cities]).astype(np.float32)


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("table") / "people.csv"
    people().to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def models(table: Path, tiny_bert_dir: Path,
           tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A network trained by orca-train on the table, 1-NN saved for the same task, and an
    ensemble of both."""
    root = tmp_path_factory.mktemp("models")
    code = train_main([
        "--task", str(table), "--output", str(root / "network"), "--quiet",
        "--set", "model.backbone=hf", "--set", f"model.backbone_args={{name_or_path: {tiny_bert_dir}}}",
        "--set", "align.steps=2", "--set", "align.source_samples=50",
        "--set", "refine.steps=4", "--set", "refine.eval_every=2",
    ])
    assert code == 0
    task = load_task(str(table), seed=0)
    save_baseline(fit_baseline("one_nn", task, 0), task, 0, root / "baseline")
    save_ensemble([root / "network", root / "baseline"], root / "ensemble", weights=[1, 1])
    return {kind: root / kind for kind in KINDS}


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1-NN for a tabular task of 5 features given as an array: no table encoding."""
    task = make_task(modality="tabular", shape=(5,))
    return save_baseline(fit_baseline("one_nn", task, 0), task, 0,
                         tmp_path_factory.mktemp("plain") / "model")


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    code = predict_main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_refused(code: int, err: str, words: str) -> None:
    lines = err.splitlines()
    assert code == 2, err
    assert len(lines) == 1 and words in lines[0], err


# -- tables: raw rows through the saved encoding -----------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_raw_rows_of_the_training_table_predict_as_their_encoding(
        kind: str, models: dict[str, Path], table: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    saved = load_model(models[kind])
    assert saved.meta["task"]["table_encoding"] == ENCODING
    rows = pd.read_csv(table)  # the target column included
    expected = saved.predictions(encoded(rows))

    np.testing.assert_array_equal(saved.predictions(saved.table_features(rows)), expected)
    shuffled = rows[["target", "size", "city", "age"]]  # by name, not by position
    np.testing.assert_array_equal(saved.predictions(saved.table_features(shuffled)), expected)
    np.testing.assert_array_equal(
        saved.predictions(saved.table_features(rows.drop(columns="target"))), expected)

    code, out, err = run(["--model", models[kind], "--input", table], capsys)
    assert code == 0, err
    assert out.split() == [["no", "yes"][i] for i in expected.argmax(axis=1)]
    rows.to_parquet(tmp_path / "rows.parquet")
    for source in (table, tmp_path / "rows.parquet"):
        code, _, err = run(["--model", models[kind], "--input", source, "--proba",
                            "--output", tmp_path / "p.npy"], capsys)
        assert code == 0, err
        np.testing.assert_array_equal(np.load(tmp_path / "p.npy"), expected.astype(np.float32))


@pytest.mark.parametrize("kind", KINDS)
def test_an_unseen_category_still_predicts(kind: str, models: dict[str, Path], table: Path,
                                           tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    rows = pd.read_csv(table)
    rows.loc[:4, "city"] = "Paris"
    rows.to_csv(tmp_path / "new.csv", index=False)
    features = encoded(rows)
    assert not features[:5, 2:].any()  # Paris encodes as no known city
    saved = load_model(models[kind])
    code, out, err = run(["--model", models[kind], "--input", tmp_path / "new.csv"], capsys)
    assert code == 0, err
    assert out.split() == [["no", "yes"][i] for i in saved.predict(features)]


@pytest.mark.parametrize("kind", KINDS)
def test_a_missing_column_is_one_line(kind: str, models: dict[str, Path], table: Path,
                                      tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = pd.read_csv(table).drop(columns="city")
    rows.to_csv(tmp_path / "new.csv", index=False)
    code, _, err = run(["--model", models[kind], "--input", tmp_path / "new.csv"], capsys)
    assert_refused(code, err, "no columns ['city'], which the model was trained on")
    with pytest.raises(OrcaInputError, match=r"the table: no columns \['city'\]"):
        load_model(models[kind]).table_features(rows)


def test_text_in_a_numeric_column_is_one_line(models: dict[str, Path], table: Path,
                                              tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    rows = pd.read_csv(table)
    rows["age"] = rows["age"].astype(str)
    rows.loc[3, "age"] = "old"
    rows.to_csv(tmp_path / "new.csv", index=False)
    code, _, err = run(["--model", models["network"], "--input", tmp_path / "new.csv"], capsys)
    assert_refused(code, err, "hold non-numbers")


@pytest.mark.parametrize(("encoding", "words"), [
    ({**ENCODING, "categorical": {"city": ["Lima", "Oslo", "Rome", "Paris"]}},
     "task.table_encoding must be an encoding into input_shape's 5 features, not 6"),
    ({**ENCODING, "numeric": ["age", 7]}, "task.table_encoding must be column names"),
    ({"numeric": ENCODING["numeric"]}, "task.table_encoding must be null or a JSON object"),
])
def test_a_tampered_encoding_is_one_line(encoding: object, words: str, models: dict[str, Path],
                                         tmp_path: Path) -> None:
    folder = shutil.copytree(models["baseline"], tmp_path / "model")
    meta = json.loads((folder / "meta.json").read_text())
    meta["task"]["table_encoding"] = encoding
    (folder / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(OrcaInputError, match=re.escape(words)) as info:
        load_model(folder)
    assert "\n" not in str(info.value)


def test_a_model_without_an_encoding_takes_numeric_columns(
        plain: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    X = make_task(modality="tabular", shape=(5,)).test.X
    pd.DataFrame(X, columns=list("abcde")).to_csv(tmp_path / "x.csv", index=False)
    saved = load_model(plain)
    assert saved.meta["task"]["table_encoding"] is None
    code, out, err = run(["--model", plain, "--input", tmp_path / "x.csv"], capsys)
    assert code == 0, err
    assert out.split() == [str(i) for i in saved.predict(X)]


# -- bad inputs: one line, exit 2, checked before predicting -----------------------------------


@pytest.mark.parametrize("device", ["cuda", "cuda:7", "nonsense"])
def test_an_absent_device_is_one_line(device: str, plain: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if (device == "cuda" and gpus > 0) or (device == "cuda:7" and gpus > 7):
        pytest.skip("this machine has that GPU")
    np.save(tmp_path / "x.npy", np.zeros((2, 5), np.float32))
    code, _, err = run(["--model", plain, "--input", tmp_path / "x.npy", "--device", device],
                       capsys)
    assert_refused(code, err, "--device")
    assert device in err


def output_cases(work: Path) -> dict[str, tuple[Path, str]]:
    (work / "a folder").mkdir()
    (work / "p.npy").mkdir()
    os.mkfifo(work / "pipe.csv")
    return {
        "in a missing folder": (work / "nowhere" / "p.csv", "the folder"),
        "an existing folder": (work / "a folder", "is a folder"),
        "a folder named like a file": (work / "p.npy", "is a folder"),
        "a named pipe": (work / "pipe.csv", "is not a regular file"),
        "of an unknown kind": (work / "p.txt", "use a .csv, .npy or .json file name"),
    }


@pytest.mark.parametrize("case", ["in a missing folder", "an existing folder",
                                  "a folder named like a file", "a named pipe",
                                  "of an unknown kind"])
def test_an_unwritable_output_is_refused_first(case: str, plain: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    dest, words = output_cases(tmp_path)[case]
    before = sorted(tmp_path.rglob("*"))
    for model in (plain, tmp_path / "no-model"):  # refused before the model is looked at
        code, _, err = run(["--model", model, "--input", tmp_path / "no-input.npy",
                            "--output", dest], capsys)
        assert_refused(code, err, f"--output {dest}")
        assert words in err
    assert sorted(tmp_path.rglob("*")) == before


def write_input(path: Path, content: object) -> None:
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, pd.DataFrame):
        content.to_csv(path, index=False)
    elif path.suffix == ".npz":
        np.savez(path, X=content)
    else:
        np.save(path, np.asarray(content), allow_pickle=True)


INPUT_CASES: dict[str, tuple[str, object, str]] = {
    "strings in a .npy": ("x.npy", np.array([["a", "b", "c", "d", "e"]]),
                          "holds <U1 values, not numbers"),
    "strings in a .npz": ("x.npz", np.array([["abc"] * 5]), "holds <U3 values, not numbers"),
    "complex numbers": ("x.npy", np.zeros((2, 5), np.complex64), "holds complex numbers"),
    "dates": ("x.npy", np.zeros((2, 5), "datetime64[s]"), "not numbers"),
    "objects in a .npy": ("x.npy", np.array([{"a": 1}] * 5, dtype=object),
                          "pickled Python objects, which are never loaded"),
    "text in a CSV": ("x.csv", pd.DataFrame({"a": ["x", "y"], "b": [1, 2]}),
                      "non-numeric columns ['a']"),
    "random bytes": ("x.npy", bytes(range(256)) * 4, "cannot read"),
    "a .npz that is no archive": ("x.npz", b"PK\x03\x04 not really", "cannot read"),
    "an empty file": ("x.npy", b"", "cannot read"),
    "an unknown kind": ("x.txt", b"1,2,3,4,5\n", "unsupported extension '.txt'"),
}


@pytest.mark.parametrize("case", list(INPUT_CASES))
def test_an_unusable_input_is_one_line(case: str, plain: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    name, content, words = INPUT_CASES[case]
    write_input(tmp_path / name, content)
    code, _, err = run(["--model", plain, "--input", tmp_path / name], capsys)
    assert_refused(code, err, words)


def test_an_npz_without_inputs_names_the_arrays(plain: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    np.savez(tmp_path / "x.npz", y=np.zeros(3))
    code, _, err = run(["--model", plain, "--input", tmp_path / "x.npz"], capsys)
    assert_refused(code, err, "has no array named X or X_test")


@pytest.mark.parametrize("kind", ["a named pipe", "a folder"])
def test_an_input_that_is_no_file_returns_at_once(kind: str, plain: Path, tmp_path: Path) -> None:
    """The installed command, so that a reader blocked on a pipe fails the test by timing
    out instead of hanging it."""
    source = tmp_path / "x.npy"
    if kind == "a named pipe":
        os.mkfifo(source)
    else:
        source.mkdir()
    script = Path(sys.executable).parent / "orca-predict"
    done = subprocess.run([str(script), "--model", str(plain), "--input", str(source)],
                          capture_output=True, text=True, timeout=120)
    words = "is not a regular file" if kind == "a named pipe" else "is a folder"
    assert_refused(done.returncode, done.stderr, words)


def test_the_python_api_refuses_strings_in_one_line(plain: Path) -> None:
    saved = load_model(plain)
    for bad in (np.array([["a"] * 5]), [[1, 2], [3]], np.array([[1j] * 5])):
        with pytest.raises(OrcaInputError) as info:
            saved.predict(bad)  # type: ignore[arg-type]
        assert "\n" not in str(info.value)
