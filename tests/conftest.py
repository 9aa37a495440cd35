"""Shared fixtures: a tiny BERT saved to disk (loaded through the real `from_pretrained`
path), a tiny timm checkpoint, a private cache folder for reference features, and study
storages: SQLite, and PostgreSQL when a server is given.

PostgreSQL tests need `ORCA_AUTOML_TEST_POSTGRES` (the URL of a role that may create databases;
`eval "$(bash scripts/postgres.sh start)"` starts a throwaway server and sets it). Without it
they skip and say why; with `ORCA_AUTOML_REQUIRE_POSTGRES=1` (as `.ci/run` sets) they fail.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    os.environ["ORCA_AUTOML_CACHE"] = str(tmp_path_factory.mktemp("orca-cache"))


@pytest.fixture(scope="session")
def minirocket_compiled() -> None:
    """MiniRocket's numba kernels compiled and cached on disk (sktime caches them), for tests
    whose short budget would otherwise pay the first compile of a fresh install (about 40 s
    on 2 cores) inside the search instead of running trials; later processes load the cache."""
    from orca_automl.baselines import fit_baseline

    fit_baseline("minirocket", make_task(n=16), 0)


POSTGRES_ENV = "ORCA_AUTOML_TEST_POSTGRES"
REQUIRE_POSTGRES_ENV = "ORCA_AUTOML_REQUIRE_POSTGRES"


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The URL of the test PostgreSQL server's admin role; skips (or fails, when required)
    without a server."""
    import sqlalchemy

    url = os.environ.get(POSTGRES_ENV)
    required = os.environ.get(REQUIRE_POSTGRES_ENV) == "1"
    if not url:
        reason = (f"PostgreSQL tests need a server: run `eval \"$(bash scripts/postgres.sh "
                  f"start)\"` (sets {POSTGRES_ENV}) first")
        if required:
            pytest.fail(f"{REQUIRE_POSTGRES_ENV}=1 but {POSTGRES_ENV} is not set: {reason}")
        pytest.skip(reason)
    engine = sqlalchemy.create_engine(url, connect_args={"connect_timeout": 10})
    try:
        with engine.connect():
            pass
    except sqlalchemy.exc.SQLAlchemyError as exc:  # given but not there: always a failure
        shown = sqlalchemy.make_url(url).render_as_string(hide_password=True)
        pytest.fail(f"the PostgreSQL server at {shown} is not reachable: {type(exc).__name__}")
    finally:
        engine.dispose()
    return url


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test (dropped afterwards)."""
    import sqlalchemy

    name = f"orca_test_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(postgres_server, isolation_level="AUTOCOMMIT",
                                     poolclass=sqlalchemy.pool.NullPool)
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield sqlalchemy.make_url(postgres_server).set(database=name).render_as_string(
            hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path,
                monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh study storage of each kind: an SQLite file, and a PostgreSQL database. The test
    runs in tmp_path, where a server database's study folder (./studies/<study>/) goes; Ray
    workers it starts there still import the tests' fakes through PYTHONPATH."""
    monkeypatch.chdir(tmp_path)
    root = str(Path(__file__).resolve().parents[1])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/study.db"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, width-32 BERT with a word-level vocabulary from Python's docs."""
    from pydoc_data.topics import topics

    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-bert")
    words = re.findall(r"[a-z]+", " ".join(topics.values()).lower())
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(set(words))[:2000]
    (folder / "vocab.txt").write_text("\n".join(vocab))
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt")).save_pretrained(folder)
    config = BertConfig(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=128,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_timm_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A resnet10t state_dict file standing in for a user's local checkpoint."""
    import timm

    torch.manual_seed(0)
    model = timm.create_model("resnet10t", pretrained=False, num_classes=0)
    path = tmp_path_factory.mktemp("timm") / "resnet10t.pth"
    torch.save(model.state_dict(), path)
    return path


def make_task(
    task_type: str = "classification", modality: str = "1d", n: int = 48, seed: int = 0,
    shape: tuple[int, ...] = (2, 32), classes: int = 3,
):
    """A small learnable task: the class shifts the signal's level and frequency."""
    from orca_automl.tasks import Normalizer, Split, Task

    rng = np.random.default_rng(seed)

    def split(m: int) -> Split:
        y = rng.integers(0, classes, size=m)
        grid = np.linspace(0, 1, int(np.prod(shape)), dtype=np.float32).reshape(shape)
        X = np.stack([np.sin((k + 1) * 6.28 * grid) + k for k in y]).astype(np.float32)
        X += 0.1 * rng.standard_normal(X.shape).astype(np.float32)
        if task_type == "classification":
            return Split(X, y.astype(np.int64))
        if task_type == "regression":
            return Split(X, (y[:, None] * 1.5 + 0.3).astype(np.float32))
        if task_type == "multilabel":
            return Split(X, np.stack([y == 0, y > 0], axis=1).astype(np.float32))
        return Split(X, np.cumsum(X, axis=-1).astype(np.float32) / 10)  # dense

    ones = np.ones((shape[0],) + (1,) * (len(shape) - 1), np.float32)
    norm = Normalizer(0 * ones, ones)
    if task_type in ("regression", "dense"):
        norm = Normalizer(0 * ones, ones, y_mean=np.float32(0.5), y_std=np.float32(2.0))
    outputs = {"classification": classes, "regression": 1, "multilabel": 2, "dense": shape[0]}
    return Task(
        f"toy-{task_type}", task_type, modality, split(n), split(n // 2), split(n // 2),
        outputs[task_type], norm, description="synthetic test task",
    )


@pytest.fixture
def toy_task():  # type: ignore[no-untyped-def]
    """The `make_task` builder, for tests that need small synthetic tasks."""
    return make_task
