"""The security contract, kept right by tests: what users hand us loads as data only (no
unpickling, no unsafe YAML, no model code), archives stay inside their folder, study names
are never paths, and storage URL passwords are never printed."""

from __future__ import annotations

import argparse
import ast
import contextlib
import io
import json
import shutil
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

import orca_automl
from orca_automl.cli import run_command
from orca_automl.cli._common import one_line
from orca_automl.credentials import mask
from orca_automl.errors import OrcaInputError
from orca_automl.search._storage import check_study_name, default_study_name

PACKAGE = Path(orca_automl.__file__).parent
YAML_READERS = {"safe_load", "safe_load_all", "safe_dump", "safe_dump_all", "YAMLError",
                "SafeLoader"}
#: YAML readers that are safe only with the safe loader named.
YAML_WITH_LOADER = {"compose", "load", "load_all", "compose_all"}
UNPICKLING_MODULES = {"pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}


def _dotted(node: ast.expr) -> str:
    """`torch.load` for the call target torch.load (the last parts of longer chains)."""
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    if isinstance(node, ast.Name):
        return node.id
    return "?"


def _keyword(call: ast.Call, name: str) -> object:
    """The constant value of keyword `name`, or a marker when absent or not a constant."""
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value.value if isinstance(kw.value, ast.Constant) else "<not a constant>"
    return "<absent>"


def unsafe_loads(source: str, where: str = "<source>") -> tuple[list[str], set[str]]:
    """The loading calls in `source` that could run code from a file, and the kinds of
    loading calls seen (so a scan that finds nothing is noticed)."""
    problems: list[str] = []
    seen: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom)
                                                    and node.module else [])
            bad = sorted({n.split(".")[0] for n in names} & UNPICKLING_MODULES)
            if bad:
                problems.append(f"{where}:{node.lineno}: imports {bad[0]}")
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        line = f"{where}:{node.lineno}: {name}"
        if name.endswith("torch.load"):
            seen.add("torch.load")
            if _keyword(node, "weights_only") is not True:
                problems.append(f"{line} without weights_only=True")
        elif name in ("np.load", "numpy.load"):
            seen.add("np.load")
            if _keyword(node, "allow_pickle") is not False:
                problems.append(f"{line} without allow_pickle=False")
        elif name.startswith("yaml."):
            seen.add("yaml")
            reader = name.removeprefix("yaml.")
            loader = next((_dotted(kw.value) for kw in node.keywords if kw.arg == "Loader"), "")
            if reader not in YAML_READERS and not (reader in YAML_WITH_LOADER
                                                   and loader == "yaml.SafeLoader"):
                problems.append(f"{line}: use yaml.safe_load / safe_dump")
        elif name.endswith((".from_pretrained", ".from_config")) and (
                name.endswith(".from_pretrained") or name.split(".")[-2].startswith("Auto")):
            seen.add("from_pretrained")
            if _keyword(node, "trust_remote_code") is not False:
                problems.append(f"{line} without trust_remote_code=False")
        elif name.endswith((".extractall", ".extract")):
            seen.add("extract")
            if _keyword(node, "filter") != "data":
                problems.append(f'{line} without filter="data"')
        elif name.endswith(("read_pickle", ".unsafe_load", ".full_load")):
            problems.append(f"{line} can run code")
    return problems, seen


def test_the_package_loads_files_as_data_only() -> None:
    """Every torch.load passes weights_only=True, every np.load allow_pickle=False, YAML is
    read with safe_load, transformers never trusts remote code, archives extract with the
    "data" filter, and nothing imports an unpickler."""
    problems: list[str] = []
    seen: set[str] = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        found, kinds = unsafe_loads(path.read_text(), str(path.relative_to(PACKAGE.parent)))
        problems += found
        seen |= kinds
    assert problems == []
    assert seen == {"torch.load", "np.load", "yaml", "from_pretrained", "extract"}


@pytest.mark.parametrize(("source", "problem"), [
    ("torch.load(path)", "without weights_only=True"),
    ("torch.load(path, weights_only=False)", "without weights_only=True"),
    ("np.load(path)", "without allow_pickle=False"),
    ("numpy.load(path, allow_pickle=True)", "without allow_pickle=False"),
    ("yaml.load(text, Loader=yaml.Loader)", "use yaml.safe_load"),
    ("yaml.unsafe_load(text)", "use yaml.safe_load"),
    ("yaml.compose(text)", "use yaml.safe_load"),
    ("yaml.compose(text, Loader=yaml.FullLoader)", "use yaml.safe_load"),
    ("AutoModel.from_pretrained(name)", "without trust_remote_code=False"),
    ("AutoTokenizer.from_pretrained(name, trust_remote_code=True)", "without trust_remote_code"),
    ("AutoModel.from_config(config)", "without trust_remote_code=False"),
    ("tar.extractall(folder)", 'without filter="data"'),
    ("tar.extractall(folder, filter='fully_trusted')", 'without filter="data"'),
    ("pd.read_pickle(path)", "can run code"),
    ("import pickle", "imports pickle"),
    ("from joblib import load", "imports joblib"),
])
def test_the_scan_catches_unsafe_loads(source: str, problem: str) -> None:
    problems, _ = unsafe_loads(source)
    assert len(problems) == 1 and problem in problems[0]


# --- archives: unpack_folder keeps every member inside its folder ---------------------------

def _member(tar: tarfile.TarFile, name: str, data: bytes = b"x", link: str | None = None) -> None:
    info = tarfile.TarInfo(name)
    if link is not None:
        info.type, info.linkname = tarfile.SYMTYPE, link
        tar.addfile(info)
    else:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def _hostile_archive(kind: str, root: Path) -> bytes:
    """An archive that, extracted into root/dest without a filter, writes root/escaped."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        _member(tar, "model.pt")
        if kind == "dot-dot":
            _member(tar, "../escaped")
        elif kind == "absolute":
            _member(tar, str(root / "escaped"))
        elif kind == "symlink out":
            _member(tar, "link", link="..")
            _member(tar, "link/escaped")
        elif kind == "absolute symlink":
            _member(tar, "link", link=str(root))
            _member(tar, "link/escaped")
    return buffer.getvalue()


@pytest.mark.parametrize("kind", ["dot-dot", "absolute", "symlink out", "absolute symlink"])
def test_an_archive_cannot_write_outside_its_folder(kind: str, tmp_path: Path) -> None:
    from orca_automl.search._runner import unpack_folder

    trusting = tmp_path / "trusting"  # the archive is a real attack: unfiltered, it escapes
    (trusting / "dest").mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(_hostile_archive(kind, trusting))) as tar:
        tar.extractall(trusting / "dest", filter="fully_trusted")
    assert (trusting / "escaped").exists()

    root = tmp_path / "guarded"
    root.mkdir()
    with contextlib.suppress(tarfile.FilterError):  # refused, or kept inside
        unpack_folder(_hostile_archive(kind, root), root / "dest")
    assert sorted(p.name for p in root.iterdir()) == ["dest"]
    assert not any(p.is_symlink() for p in (root / "dest").rglob("*"))


def test_a_plain_archive_round_trips(tmp_path: Path) -> None:
    from orca_automl.search._runner import pack_folder, unpack_folder

    (tmp_path / "model" / "backbone").mkdir(parents=True)
    (tmp_path / "model" / "meta.json").write_text("{}")
    (tmp_path / "model" / "backbone" / "config.json").write_text("{}")
    out = unpack_folder(pack_folder(tmp_path / "model"), tmp_path / "copy")
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == [
        "backbone", "backbone/config.json", "meta.json"]


# --- model folders never run code ------------------------------------------------------------

def _with_remote_code(folder: Path, file: str = "config.json") -> Path:
    """`folder` with an auto_map in `file` naming a module that writes a marker if it runs."""
    path = folder / file
    data = json.loads(path.read_text()) if path.is_file() else {}
    if file == "config.json":
        data["model_type"] = "evil"
    data["auto_map"] = {"AutoConfig": "evil.EvilConfig", "AutoModel": "evil.EvilModel",
                        "AutoTokenizer": ["evil.EvilTokenizer", None]}
    path.write_text(json.dumps(data))
    (folder / "evil.py").write_text(
        f"from pathlib import Path\nPath({str(folder / 'EXECUTED')!r}).write_text('ran')\n")
    return folder


@pytest.mark.parametrize("file", ["config.json", "tokenizer_config.json"])
def test_a_backbone_folder_with_custom_code_is_refused_before_any_prompt(
    file: str, tiny_bert_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from orca_automl.backbones import create_backbone

    folder = _with_remote_code(Path(shutil.copytree(tiny_bert_dir, tmp_path / "bert")), file)
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n" * 5))  # yes to any prompt
    for pretrained in (True, False):
        with pytest.raises(OrcaInputError, match="never runs a model's custom code") as info:
            create_backbone("hf", {"name_or_path": str(folder)}, pretrained=pretrained)
        assert "\n" not in str(info.value) and file in str(info.value)
    assert not (folder / "EXECUTED").exists()
    assert "[y/N]" not in capsys.readouterr().out


def test_a_hub_id_is_loaded_without_trusting_remote_code(monkeypatch: pytest.MonkeyPatch) -> None:
    """A name that is not a local folder goes to transformers with trust_remote_code=False."""
    import transformers

    from orca_automl.backbones import create_backbone

    calls: list[dict[str, object]] = []

    def refuse(name: str, **kwargs: object) -> None:
        calls.append(kwargs)
        raise ValueError(f"The repository {name} contains custom code which must be executed")

    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", refuse)
    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", refuse)
    for pretrained in (True, False):
        with pytest.raises(OrcaInputError, match="contains custom code"):
            create_backbone("hf", {"name_or_path": "someone/custom-model"}, pretrained=pretrained)
    assert calls == [{"trust_remote_code": False}] * 2


# --- study names are plain names ------------------------------------------------------------

@pytest.mark.parametrize("name", ["gunpoint-wide", "digits_v2", "my.study", "fake-1d-2", "Run7"])
def test_plain_study_names_are_kept(name: str) -> None:
    check_study_name(name)


@pytest.mark.parametrize("name", ["../x", "a/b", "/tmp/x", "", ".x", "..", "a\x00b", "a\\b",
                                  "-x", "a b", "x\n", "x" * 129])
def test_study_names_that_are_not_plain_are_refused(name: str) -> None:
    with pytest.raises(OrcaInputError, match="not a plain name") as info:
        check_study_name(name)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("task", "study"), [("gunpoint", "gunpoint"), ("my data", "my-data"),
                                              (".hidden", "hidden"), ("a/../b", "a-..-b")])
def test_a_task_name_gives_a_plain_default_study_name(task: str, study: str) -> None:
    assert default_study_name(task) == study
    check_study_name(study)


def test_a_task_folder_given_as_dot_is_named_after_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orca_automl.tasks import load_task

    folder = tmp_path / "my_data"
    folder.mkdir()
    X = np.random.default_rng(0).normal(size=(40, 6)).astype(np.float32)
    np.savez(folder / "data.npz", X_train=X, y_train=np.arange(40) % 2)
    monkeypatch.chdir(folder)
    assert load_task(".").name == "my_data"
    assert load_task("../my_data/").name == "my_data"


# --- storage URL passwords are never printed -------------------------------------------------

@pytest.mark.parametrize(("text", "shown"), [
    ("unrecognized arguments: --storage-url postgresql://u:pw@db/orca",
     "unrecognized arguments: --storage-url postgresql://u:***@db/orca"),
    ("postgresql+psycopg://u:p@ss@db:5432/o", "postgresql+psycopg://u:***@db:5432/o"),
    ("mysql://:pw@db/o and redis://u:pw2@h", "mysql://:***@db/o and redis://u:***@h"),
    ("sqlite:///studies/x.db", "sqlite:///studies/x.db"),
    ("postgresql://me@db/orca", "postgresql://me@db/orca"),
])
def test_url_passwords_are_masked(text: str, shown: str) -> None:
    assert mask(text) == shown


def test_printed_errors_are_one_line_without_passwords(capsys: pytest.CaptureFixture[str]) -> None:
    url = "postgresql://u:s3cret-pw@db/orca"

    def input_error(args: argparse.Namespace) -> int:
        raise OrcaInputError(f"storage {url}\nis broken")

    def internal_error(args: argparse.Namespace) -> int:
        raise RuntimeError(f"cannot reach {url}")

    assert run_command("orca-x", input_error, argparse.Namespace()) == 2
    assert capsys.readouterr().err == "orca-x: error: storage postgresql://u:***@db/orca is broken\n"
    for debug in (False, True):  # the traceback under --debug too
        assert run_command("orca-x", internal_error, argparse.Namespace(debug=debug)) == 1
        err = capsys.readouterr().err
        assert "s3cret-pw" not in err and "u:***@db" in err
        assert ("Traceback" in err) == debug
    assert one_line("a\n\n  b  \n") == "a b"
