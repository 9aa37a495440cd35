"""Where a report may be written: a new folder, an empty one, or one holding only an earlier
report of the same study and storage (its marker says so; the default folder also when it
holds a report written before the marker). Anything else is refused, through the API and
through `orca-report`, with one line and nothing changed on disk."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from orca_automl.cli import report_main
from orca_automl.errors import OrcaInputError
from orca_automl.report import REPORT_MARKER, default_folder, write_report
from orca_automl.report import _storage_identity as storage_identity
from tests.report.test_report import _search
from tests.test_bad_input import snapshot

STUDY = "fake-1d"
OTHER = "other"


@dataclass(frozen=True)
class Made:
    """The module's storage (studies fake-1d and other) and a report of each, written once
    into folders of the module (copied where a test needs an earlier report)."""

    db: Path
    url: str
    earlier: Path
    others: Path


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Made:
    folder = tmp_path_factory.mktemp("made")
    url = f"sqlite:///{folder}/study.db"
    _search(url, "8s", baselines=False)
    _search(url, "8s", baselines=False, study=OTHER)
    earlier = write_report(url, STUDY, folder / "earlier" / "report").folder
    others = write_report(url, OTHER, folder / "others" / "report").folder
    return Made(folder / "study.db", url, earlier, others)


def copy_study(made: Made, folder: Path) -> str:
    """A copy of the module's database at <folder>/fake-1d.db (another storage); its URL."""
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / f"{STUDY}.db"
    with closing(sqlite3.connect(made.db)) as source, closing(sqlite3.connect(db)) as copy:
        source.backup(copy)
        copy.execute("PRAGMA journal_mode=DELETE")  # reading it then leaves no -wal/-shm files
    return f"sqlite:///{db}"


def copy_report(report: Path, folder: Path, marker: bool = True) -> Path:
    shutil.copytree(report, folder, ignore=None if marker else shutil.ignore_patterns(REPORT_MARKER))
    return folder


def user_files(folder: Path) -> Path:
    (folder / "sub").mkdir(parents=True)
    (folder / "notes.txt").write_text("mine")
    (folder / "sub" / "data.csv").write_text("1,2\n")
    return folder


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def marker_of(folder: Path) -> dict[str, Any]:
    marker: dict[str, Any] = json.loads((folder / REPORT_MARKER).read_text())
    return marker


# ---- refused: each case builds its target under tmp_path and returns (--out, storage URL) ----

Setup = Callable[[Path, Made, pytest.MonkeyPatch], tuple[Path, str]]


def _a_file(tmp: Path, made: Made, _: pytest.MonkeyPatch) -> tuple[Path, str]:
    (tmp / "notes.txt").write_text("mine")
    return tmp / "notes.txt", made.url


def _a_link_to_an_empty_folder(tmp: Path, made: Made, _: pytest.MonkeyPatch) -> tuple[Path, str]:
    (tmp / "empty").mkdir()
    (tmp / "link").symlink_to(tmp / "empty", target_is_directory=True)
    return tmp / "link", made.url


def _a_link_to_an_earlier_report(tmp: Path, made: Made, _: pytest.MonkeyPatch) -> tuple[Path, str]:
    copy_report(made.earlier, tmp / "report")
    (tmp / "link").symlink_to(tmp / "report", target_is_directory=True)
    return tmp / "link", made.url


def _a_folder_of_user_files(tmp: Path, made: Made, _: pytest.MonkeyPatch) -> tuple[Path, str]:
    return user_files(tmp / "mine"), made.url


def _the_studies_folder(tmp: Path, made: Made, _: pytest.MonkeyPatch) -> tuple[Path, str]:
    url = copy_study(made, tmp / "studies")
    copy_report(made.earlier, tmp / "studies" / STUDY / "report")
    (tmp / "studies" / STUDY / "winners").mkdir()
    return tmp / "studies", url


def _the_study_folder(tmp: Path, made: Made, _: pytest.MonkeyPatch) -> tuple[Path, str]:
    url = copy_study(made, tmp / "studies")
    copy_report(made.earlier, tmp / "studies" / STUDY / "report")
    user_files(tmp / "studies" / STUDY / "artifacts")
    return tmp / "studies" / STUDY, url


def _an_earlier_report_and_a_user_file(tmp: Path, made: Made,
                                       _: pytest.MonkeyPatch) -> tuple[Path, str]:
    (copy_report(made.earlier, tmp / "report") / "notes.txt").write_text("mine")
    return tmp / "report", made.url


def _an_earlier_report_and_a_subfolder(tmp: Path, made: Made,
                                       _: pytest.MonkeyPatch) -> tuple[Path, str]:
    (copy_report(made.earlier, tmp / "report") / "report.md.d").mkdir()
    return tmp / "report", made.url


def _an_earlier_report_with_a_link(tmp: Path, made: Made, _: pytest.MonkeyPatch) -> tuple[Path, str]:
    (tmp / "mine.md").write_text("mine")
    folder = copy_report(made.earlier, tmp / "report")
    (folder / "report.md").unlink()
    (folder / "report.md").symlink_to(tmp / "mine.md")
    return folder, made.url


def _another_studys_report(tmp: Path, made: Made, _: pytest.MonkeyPatch) -> tuple[Path, str]:
    return copy_report(made.others, tmp / "report"), made.url


def _another_storages_report(tmp: Path, made: Made, _: pytest.MonkeyPatch) -> tuple[Path, str]:
    return copy_report(made.earlier, tmp / "report"), copy_study(made, tmp / "elsewhere")


def _a_legacy_report_elsewhere(tmp: Path, made: Made, _: pytest.MonkeyPatch) -> tuple[Path, str]:
    return copy_report(made.earlier, tmp / "report", marker=False), made.url


def _pictures_in_the_default_folder(tmp: Path, made: Made,
                                    _: pytest.MonkeyPatch) -> tuple[Path, str]:
    url = copy_study(made, tmp / "studies")
    folder = default_folder(url, STUDY)
    folder.mkdir(parents=True)
    (folder / "holiday.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    return folder, url


def _a_legacy_default_folder_and_a_user_file(tmp: Path, made: Made,
                                             _: pytest.MonkeyPatch) -> tuple[Path, str]:
    url = copy_study(made, tmp / "studies")
    folder = copy_report(made.earlier, default_folder(url, STUDY), marker=False)
    (folder / "notes.txt").write_text("mine")
    return folder, url


def _the_working_folder(tmp: Path, made: Made, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    monkeypatch.chdir(user_files(tmp / "work"))
    return Path("."), made.url


def _the_empty_working_folder(tmp: Path, made: Made,
                              monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    (tmp / "work").mkdir()
    monkeypatch.chdir(tmp / "work")
    return Path("."), made.url


def _the_folder_above_the_working_folder(tmp: Path, made: Made,
                                         monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    (tmp / "work").mkdir()
    monkeypatch.chdir(tmp / "work")
    return Path(".."), made.url


def _a_path_under_a_file(tmp: Path, made: Made, _: pytest.MonkeyPatch) -> tuple[Path, str]:
    (tmp / "notes.txt").write_text("mine")
    return tmp / "notes.txt" / "report", made.url


def _bad_marker(content: str) -> Setup:
    def setup(tmp: Path, made: Made, _: pytest.MonkeyPatch) -> tuple[Path, str]:
        folder = copy_report(made.earlier, tmp / "report")
        (folder / REPORT_MARKER).write_text(content)
        return folder, made.url
    return setup


REFUSED: dict[str, tuple[Setup, str]] = {
    "a file": (_a_file, "is a file"),
    "a link to an empty folder": (_a_link_to_an_empty_folder, "symbolic link"),
    "a link to an earlier report": (_a_link_to_an_earlier_report, "symbolic link"),
    "a folder of user files": (_a_folder_of_user_files, "'notes.txt', 'sub'"),
    "the studies folder": (_the_studies_folder, f"'{STUDY}', '{STUDY}.db'"),
    "the study folder": (_the_study_folder, "'artifacts'"),
    "an earlier report and a user file": (_an_earlier_report_and_a_user_file, "'notes.txt'"),
    "an earlier report and a subfolder": (_an_earlier_report_and_a_subfolder, "'report.md.d'"),
    "an earlier report with a link": (_an_earlier_report_with_a_link, "'report.md'"),
    "another study's report": (_another_studys_report, "another study or storage"),
    "another storage's report": (_another_storages_report, "another study or storage"),
    "a report without marker, not the default folder": (_a_legacy_report_elsewhere, "without a report marker"),
    "the default folder without marker and a user file": (
        _a_legacy_default_folder_and_a_user_file, "'notes.txt'"),
    "pictures in the default folder": (_pictures_in_the_default_folder, "'holiday.png'"),
    "the working folder": (_the_working_folder, "is or holds the working folder"),
    "the empty working folder": (_the_empty_working_folder, "is or holds the working folder"),
    "the folder above the working folder": (_the_folder_above_the_working_folder,
                                            "is or holds the working folder"),
    "a path under a file": (_a_path_under_a_file, "cannot be made"),
    "a marker that is not JSON": (_bad_marker("{not json"), "not a valid orca-report marker"),
    "a marker that is a list": (_bad_marker("[]"), "not a valid orca-report marker"),
    "a marker without files": (_bad_marker('{"study": "fake-1d", "storage": "x"}'),
                               "not a valid orca-report marker"),
    "a marker listing a path": (
        _bad_marker('{"study": "fake-1d", "storage": "x", "files": ["../notes.txt"]}'),
        "not a valid orca-report marker"),
    "a marker too deep to parse": (_bad_marker("[" * 20000), "not a valid orca-report marker"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_write_report_refuses_and_changes_nothing(case: str, made: Made, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    setup, words = REFUSED[case]
    out, url = setup(tmp_path, made, monkeypatch)
    before = snapshot(tmp_path)
    with pytest.raises(OrcaInputError) as refused:
        write_report(url, STUDY, out)
    message = str(refused.value)
    assert "\n" not in message and f"report folder {str(out)!r}" in message, message
    assert words in message, message
    assert snapshot(tmp_path) == before


CLI_REFUSED = ["the studies folder", "a folder of user files", "a file", "the working folder",
               "a link to an earlier report", "another study's report",
               "an earlier report and a user file"]


@pytest.mark.parametrize("case", CLI_REFUSED)
def test_orca_report_refuses_with_one_line_and_changes_nothing(
    case: str, made: Made, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    setup, words = REFUSED[case]
    out, url = setup(tmp_path, made, monkeypatch)
    before = snapshot(tmp_path)
    capsys.readouterr()
    code = report_main(["--study", STUDY, "--storage", url, "--out", str(out)])
    printed, err = capsys.readouterr()
    lines = err.splitlines()
    assert code == 2 and printed == "", err
    assert len(lines) == 1 and lines[0].startswith("orca-report: error: report folder "), err
    assert repr(str(out)) in lines[0] and words in lines[0], err
    assert snapshot(tmp_path) == before
    if case == "the studies folder":
        assert {f"{STUDY}.db", STUDY} <= set(listing(out))
        assert (out / STUDY / "report" / "report.html").is_file()


# ---- taken ----


def test_a_new_folder_is_made_with_its_parents(made: Made, tmp_path: Path) -> None:
    report = write_report(made.url, STUDY, tmp_path / "a" / "b" / "report")
    assert report.folder == tmp_path / "a" / "b" / "report" and report.html.is_file()
    assert listing(tmp_path / "a" / "b") == ["report"]  # no staging folder left beside it
    marker = marker_of(report.folder)
    assert marker == {"study": STUDY, "storage": str(made.db.resolve()),
                      "files": sorted(p for p in listing(report.folder) if p != REPORT_MARKER)}
    assert set(marker["files"]) == {
        "report.html", "report.md", *(p.name for p in report.pngs.values())}


def test_an_empty_folder_is_taken(made: Made, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    report = write_report(made.url, STUDY, tmp_path / "out")
    assert report.html.is_file() and REPORT_MARKER in listing(report.folder)
    assert listing(tmp_path) == ["out"]


def test_the_same_studys_report_is_replaced(made: Made, tmp_path: Path) -> None:
    # the names the old code used for its staging and old folders are a user's, left alone
    for name in (f".report.tmp-{os.getpid()}", f".report.old-{os.getpid()}"):
        user_files(tmp_path / name)
    first = write_report(made.url, STUDY, tmp_path / "report")
    first.markdown.write_text("stale")
    first.pngs[first.figures[0]].unlink()  # a report missing one of its files is still its own
    second = write_report(made.url, STUDY, tmp_path / "report")
    assert second.markdown.read_text() != "stale" and second.pngs[second.figures[0]].is_file()
    assert listing(second.folder) == listing(made.earlier)
    assert listing(tmp_path) == sorted(
        ["report", f".report.tmp-{os.getpid()}", f".report.old-{os.getpid()}"])
    for name in (f".report.tmp-{os.getpid()}", f".report.old-{os.getpid()}"):
        assert (tmp_path / name / "notes.txt").read_text() == "mine"


def test_a_default_folder_written_before_the_marker_is_replaced(made: Made, tmp_path: Path) -> None:
    url = copy_study(made, tmp_path / "studies")
    legacy = copy_report(made.earlier, default_folder(url, STUDY), marker=False)
    report = write_report(url, STUDY)
    assert report.folder == legacy and marker_of(legacy)["study"] == STUDY
    assert listing(legacy) == listing(made.earlier)
    assert listing(legacy.parent) == ["report"]


def test_a_failed_swap_puts_the_previous_report_back(made: Made, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    folder = copy_report(made.earlier, tmp_path / "report")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    rename = Path.rename

    def failing(self: Path, target: Path) -> Path:
        if self.name == "new":  # the staged report, moving in
            raise OSError("rename failed")
        return rename(self, target)

    monkeypatch.setattr(Path, "rename", failing)
    with pytest.raises(OSError, match="rename failed"):
        write_report(made.url, STUDY, folder)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert listing(tmp_path) == ["report"]


def test_orca_report_writes_a_new_folder_and_rewrites_it(made: Made, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "new" / "report"
    for _ in range(2):
        code = report_main(["--study", STUDY, "--storage", made.url, "--out", str(out),
                            "--no-dashboard"])
        printed, err = capsys.readouterr()
        assert code == 0 and err == "" and f"report: {out / 'report.html'}" in printed
    assert listing(out) == listing(made.earlier) and listing(tmp_path / "new") == ["report"]


def test_the_marker_names_a_server_storage_without_its_password() -> None:
    assert storage_identity("postgresql+psycopg://me:s3cret@dbhost:5432/orca") == (
        "postgresql://me:***@dbhost:5432/orca")
    assert storage_identity("postgresql://me:s3cret@dbhost:5432/orca") == (
        "postgresql://me:***@dbhost:5432/orca")
    assert storage_identity("sqlite:///studies/x.db") == str(Path("studies/x.db").resolve())
