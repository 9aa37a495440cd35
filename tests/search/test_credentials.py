"""A storage URL's password appears in no output, log file, study folder or database row."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy

from orca_automl.search import study_folder
from tests.search.fakes import SPACES

ROOT = Path(__file__).resolve().parents[2]


def _database_text(url: str) -> str:
    """Every row of every table of the database, as text."""
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as connection:
            return "\n".join(
                repr(row) for table in sqlalchemy.inspect(connection).get_table_names()
                for row in connection.execute(sqlalchemy.text(f'SELECT * FROM "{table}"'))
            )
    finally:
        engine.dispose()


@pytest.mark.integration
def test_a_search_on_postgresql_never_shows_or_stores_the_password(tmp_path: Path,
                                                                    postgres_url: str) -> None:
    password = sqlalchemy.make_url(postgres_url).password
    assert password and len(password) >= 8
    command = [sys.executable, "-m", "tests.search.fake_cli", "--task", "fake-1d", "--budget", "6s",
               "--storage", postgres_url, "--search-space", str(SPACES / "tiny.yaml"),
               "--validation", "holdout", "--debug", "--with-report"]  # the report too
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=240)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "postgresql+psycopg://orca:***@" in run.stdout  # the study is named, masked
    assert "report: " in run.stdout  # its files are among those searched below
    assert password not in run.stdout + run.stderr
    ray = (tmp_path / study_folder(postgres_url, "fake-1d") / "ray").resolve()  # maybe a link
    files = [p for folder in (tmp_path, ray) for p in folder.rglob("*")
             if p.is_file() and not p.is_socket()]
    assert any(p.suffix in (".out", ".err", ".log") for p in ray.rglob("*"))  # Ray's logs too
    leaked = [p for p in files if password.encode() in p.read_bytes()]
    assert not leaked
    text = _database_text(postgres_url)
    assert "fake-1d" in text and password not in text
