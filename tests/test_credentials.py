"""Passwords are never shown: storage URLs of every shape, parsed as their users mean them,
rendered without secrets, and fed through every command in every place a user might type
them, with all output and every file the command writes searched for the password."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orca_automl.cli import predict_main, report_main, search_main, train_main
from orca_automl.credentials import (
    mask,
    parse_url,
    redact_url,
    remember,
    url_secrets,
)
from orca_automl.errors import OrcaInputError
from orca_automl.search import check_storage_url

#: Passwords a user may type unencoded: each holds something a URL reserves.
PASSWORDS = {
    "plain": "Plain-s3cret",
    "slash": "pa/ss-w0rd",
    "at": "p@ss-w0rd",
    "space": "Spaced w0rd!",
    "colon and question mark": "pa:ss?w0rd",
    "all of them": "p@ss/w:0 r?d#x",
}


def shapes(password: str) -> dict[str, str]:
    """Storage URLs holding `password`, unreachable (port 1) so a command refuses them fast."""
    return {
        "in the user part": f"postgresql://orca:{password}@127.0.0.1:1/orca",
        "percent-encoded": f"postgresql://orca:{quote(password, safe='')}@127.0.0.1:1/orca",
        "with a driver": f"postgresql+psycopg://orca:{password}@127.0.0.1:1/orca",
        "port not a number": f"postgresql://orca:{password}@127.0.0.1:port/orca",
        "as a query parameter": f"postgresql://orca@127.0.0.1:1/orca?password={quote(password)}",
        "no user": f"mysql://:{password}@127.0.0.1:1/orca",
        "unknown database kind": f"nosuchdb://orca:{password}@host/orca",
        "sqlite": f"sqlite://orca:{password}@/no/such/folder/x.db",
    }


def pieces(password: str) -> list[str]:
    """The password and what would show if it were cut at one of its reserved characters."""
    found = {password, quote(password, safe="")}
    for sep in "@/: ?#":
        found.update(part for part in password.split(sep) if len(part) >= 4)
    return sorted(found)


MAINS: dict[str, Callable[[list[str]], int]] = {
    "orca-search": search_main, "orca-report": report_main, "orca-train": train_main,
    "orca-predict": predict_main,
}


def placements(url: str) -> dict[str, tuple[str, list[str]]]:
    """Every place a URL may be typed, right or wrong: (command, argv)."""
    search = ["--task", "gunpoint", "--budget", "1cpu-minutes"]
    return {
        "search --storage": ("orca-search", [*search, "--storage", url]),
        "search --storage=": ("orca-search", [*search, f"--storage={url}", "--debug"]),
        "search misspelt flag": ("orca-search", [*search, "--storage-url", url]),
        "search stray value": ("orca-search", [*search, url]),
        "search --workers": ("orca-search", [*search, "--workers", url]),
        "search --seed": ("orca-search", [*search, "--seed", url]),
        "search --budget": ("orca-search", ["--task", "gunpoint", "--budget", url]),
        "search --study": ("orca-search", [*search, "--study", url]),
        "search --task": ("orca-search", ["--task", url, "--budget", "1cpu-minutes"]),
        "search --plugin": ("orca-search", [*search, "--plugin", url]),
        "search --address": ("orca-search", [*search, "--address", url]),
        "report --storage": ("orca-report", ["--study", "gunpoint", "--storage", url]),
        "report stray value": ("orca-report", ["--study", "gunpoint", url]),
        "train --task": ("orca-train", ["--task", url]),
        "train --set": ("orca-train", ["--task", "gunpoint", "--set", f"refine.lr={url}"]),
        "train --config": ("orca-train", ["--task", "gunpoint", "--config", url, "--debug"]),
        "predict --model": ("orca-predict", ["--model", url, "--input", "x.npy"]),
        "predict --input": ("orca-predict", ["--model", "m", "--input", url]),
    }


def written_text(folder: Path) -> str:
    """Every file under `folder`, as text."""
    return "\n".join(p.read_bytes().decode("utf-8", "replace") for p in folder.rglob("*")
                     if p.is_file())


@pytest.mark.parametrize("kind", list(PASSWORDS))
def test_every_command_refuses_without_showing_the_password(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    password = PASSWORDS[kind]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    for shape, url in shapes(password).items():
        for where, (command, argv) in placements(url).items():
            try:
                code = MAINS[command](argv)
            except SystemExit as exc:  # argparse usage errors
                code = exc.code  # type: ignore[assignment]
            out, err = capsys.readouterr()
            shown = out + err + written_text(tmp_path)
            leaked = [piece for piece in pieces(password) if piece in shown]
            assert not leaked, f"{shape}, {where}: {leaked} in {shown!r}"
            assert code == 2, f"{shape}, {where}: exit {code}: {err}"
            assert len(err.splitlines()) == 1, f"{shape}, {where}: {err}"


@pytest.mark.parametrize("where", ["search misspelt flag", "search --storage"])
def test_the_installed_commands_never_show_the_password(where: str, tmp_path: Path) -> None:
    """End to end, as a shell runs them (a usage error, and a refusal after parsing)."""
    password = PASSWORDS["all of them"]
    command, argv = placements(shapes(password)["in the user part"])[where]
    script = Path(sys.executable).parent / command
    done = subprocess.run([str(script), *argv], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert done.returncode == 2, done.stderr
    shown = done.stdout + done.stderr + written_text(tmp_path)
    assert not [piece for piece in pieces(password) if piece in shown], shown


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://me:p@ss/w rd@db:5432/orca", "postgresql://me:***@db:5432/orca"),
    ("postgresql://me@db/orca?password=pw&sslmode=require",
     "postgresql://me@db/orca?password=***&sslmode=require"),
    ("postgresql://me@db/orca?sslmode=require&PASSWORD=pw", "postgresql://me@db/orca?sslmode=require&PASSWORD=***"),
    ("mysql://:pw@db/orca", "mysql://:***@db/orca"),
    ("sqlite:////home/me/a@b/studies/x.db", "sqlite:////home/me/a@b/studies/x.db"),
    ("postgresql://me@db/orca", "postgresql://me@db/orca"),
    ("not a url", "not a url"),
])
def test_redacted_urls(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize(("url", "user", "password", "host", "port", "database"), [
    ("postgresql://me:p@ss/w rd@db:5432/orca", "me", "p@ss/w rd", "db", 5432, "orca"),
    ("postgresql://me:pa%40ss@db/orca", "me", "pa@ss", "db", None, "orca"),
    ("postgresql://me@db/orca", "me", None, "db", None, "orca"),
    ("sqlite:////home/me/a@b/x.db", None, None, None, None, "/home/me/a@b/x.db"),
    ("sqlite:///studies/x.db", None, None, None, None, "studies/x.db"),
])
def test_urls_are_parsed_as_meant(url: str, user: str | None, password: str | None,
                                  host: str | None, port: int | None, database: str) -> None:
    parsed = parse_url(url)
    assert (parsed.username, parsed.password, parsed.host, parsed.port, parsed.database) == (
        user, password, host, port, database)


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="%"),
               min_size=1, max_size=24))
def test_any_password_parses_whole_and_never_renders(text: str) -> None:
    password = "Zq" + text  # nothing else in the URL holds "Zq"
    url = f"postgresql://me:{password}@db.example:5432/orca?password={quote(password)}"
    parsed = parse_url(url)
    assert (parsed.password, parsed.host, parsed.port) == (password, "db.example", 5432)
    canonical = parsed.render_as_string(hide_password=False)
    assert parse_url(canonical).password == password
    for form in (url, canonical):
        assert password not in redact_url(form) and quote(password) not in redact_url(form)
    remember([url])
    assert password not in mask(f"error: could not log in with {password!r}")


def test_secrets_of_a_command_line_are_masked_wherever_they_appear() -> None:
    url = "postgresql://me:Wh0le s3cret@db/orca?sslpassword=K3y-pass"
    assert url_secrets(url) >= {"Wh0le s3cret", "K3y-pass"}
    remember(["--storage=" + url])
    assert mask("password 'Wh0le s3cret' and K3y-pass were refused") == (
        "password '***' and *** were refused")


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["sqlite://", "sqlite:///", "sqlite:////", "nosuchdb://", "", "://"]),
       st.one_of(st.none(), st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)),
       st.text(st.characters(blacklist_categories=("Cs",)), max_size=40))
def test_any_storage_url_is_taken_or_refused_in_one_line_writing_nothing(
        scheme: str, password: str | None, rest: str) -> None:
    """The storage URL parser on anything: a URL to use, or one line without the password;
    read-only either way. (Server URLs are left out: their check connects to whatever host
    the text names.)"""
    secret = None if password is None else "Zq" + password.replace("%", "")
    url = scheme + ("" if secret is None else f"me:{secret}@") + rest
    with tempfile.TemporaryDirectory() as tmp:
        before = os.getcwd()
        os.chdir(tmp)
        try:
            check_storage_url(url)
        except OrcaInputError as exc:
            assert "\n" not in str(exc)
            assert secret is None or secret not in str(exc) or secret in rest
        finally:
            os.chdir(before)
            assert not os.listdir(tmp)
