"""A storage URL's password appears in no output, log file, study folder or database row."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import sqlalchemy

from orca_automl.credentials import parse_url
from orca_automl.search import study_folder
from tests.search.fakes import SPACES

ROOT = Path(__file__).resolve().parents[2]


def _database_text(url: str) -> str:
    """Every row of every table of the database, as text."""
    engine = sqlalchemy.create_engine(parse_url(url), poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as connection:
            return "\n".join(
                repr(row) for table in sqlalchemy.inspect(connection).get_table_names()
                for row in connection.execute(sqlalchemy.text(f'SELECT * FROM "{table}"'))
            )
    finally:
        engine.dispose()


#: A password that holds every character a URL reserves, typed unencoded.
ODD_PASSWORD = "p@ss/w:0 r?d#x"


@pytest.fixture
def odd_role_url(postgres_url: str) -> Iterator[sqlalchemy.URL]:
    """A role with `ODD_PASSWORD` owning a fresh database (the URL, password unencoded in
    no form yet)."""
    role = f"orca_odd_{uuid.uuid4().hex[:8]}"
    admin = sqlalchemy.create_engine(postgres_url, isolation_level="AUTOCOMMIT",
                                     poolclass=sqlalchemy.pool.NullPool)
    database = sqlalchemy.make_url(postgres_url).database
    with admin.connect() as connection:
        connection.exec_driver_sql(f"CREATE ROLE {role} LOGIN PASSWORD '{ODD_PASSWORD}'")
        connection.exec_driver_sql(f'ALTER DATABASE "{database}" OWNER TO {role}')
    try:
        yield sqlalchemy.make_url(postgres_url).set(username=role, password=ODD_PASSWORD)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'ALTER DATABASE "{database}" OWNER TO CURRENT_USER')
            connection.exec_driver_sql(f"DROP OWNED BY {role}")
            connection.exec_driver_sql(f"DROP ROLE {role}")
        admin.dispose()


def _typed(url: sqlalchemy.URL, form: str) -> str:
    """`url` as a user may type it: the password raw in the user part, or as a query
    parameter."""
    host = f"{url.host}:{url.port}/{url.database}"
    if form == "user part":
        return f"postgresql://{url.username}:{url.password}@{host}"
    return f"postgresql://{url.username}@{host}?password={quote(url.password or '')}"


@pytest.mark.integration
@pytest.mark.parametrize("form", ["user part", "query"])
def test_an_unencoded_password_of_any_shape_connects_and_never_shows(
        form: str, tmp_path: Path, odd_role_url: sqlalchemy.URL) -> None:
    _search_shows_no_password(tmp_path, _typed(odd_role_url, form), ODD_PASSWORD)


@pytest.mark.integration
def test_a_search_on_postgresql_never_shows_or_stores_the_password(tmp_path: Path,
                                                                    postgres_url: str) -> None:
    password = sqlalchemy.make_url(postgres_url).password
    assert password and len(password) >= 8
    _search_shows_no_password(tmp_path, postgres_url, password)


def _search_shows_no_password(tmp_path: Path, postgres_url: str, password: str) -> None:
    """A search with its report: the password in no output, file or database row."""
    command = [sys.executable, "-m", "tests.search.fake_cli", "--task", "fake-1d", "--budget", "6s",
               "--storage", postgres_url, "--search-space", str(SPACES / "tiny.yaml"),
               "--validation", "holdout", "--debug", "--with-report"]  # the report too
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=240)
    assert run.returncode == 0, run.stderr[-2000:]
    user = parse_url(postgres_url).username
    assert f"postgresql+psycopg://{user}" in run.stdout  # the study is named, masked
    assert "report: " in run.stdout  # its files are among those searched below
    assert password not in run.stdout + run.stderr
    ray = (tmp_path / study_folder(postgres_url, "fake-1d") / "ray").resolve()  # maybe a link
    files = [p for folder in (tmp_path, ray) for p in folder.rglob("*")
             if p.is_file() and not p.is_socket()]
    assert any(p.suffix in (".out", ".err", ".log") for p in ray.rglob("*"))  # Ray's logs too
    secrets = {password, quote(password, safe=""), quote(password)}
    leaked = [p for p in files for s in secrets if s.encode() in p.read_bytes()]
    assert not leaked
    assert not [s for s in secrets if s in run.stdout + run.stderr]
    text = _database_text(postgres_url)
    assert "fake-1d" in text and not [s for s in secrets if s in text]
